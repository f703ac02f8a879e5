//! Announcing committed changes to other server processes on the same PostgreSQL database
//! (LISTEN/NOTIFY), and hearing theirs. See "Scale-out" in docs/architecture.md.
//!
//! - [`Database::append`] on PostgreSQL calls [`avisar`] inside its transaction whenever the chunk
//!   is new. PostgreSQL delivers a notification only when the transaction commits, so only
//!   durable changes are ever announced, and a rolled-back append announces nothing.
//! - The payload is `<document id> <origin> <schema>`. The origin is a random id given to every
//!   pool at connect time as the custom setting `bitacora.origen` ([`opciones_de_origen`]), so
//!   a process (strictly: a pool) recognises and skips its own announcements; an `admin` command
//!   has its own pool and origin, so a running server hears a bundle imported from the command
//!   line. Channels are per database, not per schema, so the schema (`current_schema()`) is in
//!   the payload and a listener skips announcements from other schemas.
//! - [`Escucha`] holds one connection of the pool (sqlx's `PgListener`) that LISTENs on
//!   [`CANAL`]. Notifications sent while it is disconnected are lost: after it reconnects it
//!   says so ([`Aviso::Perdidos`]) and the caller must treat every document as changed.

use bitacora_core::ids::DocumentId;
use sqlx::postgres::{PgConnectOptions, PgListener};
use sqlx::{PgPool, Postgres, Transaction};

use super::{Database, DbError};

/// The notification channel (one per database; schemas are told apart by the payload).
pub const CANAL: &str = "bitacora_cambios";

/// The custom setting that carries a pool's origin id on each of its connections.
const GUC_ORIGEN: &str = "bitacora.origen";

/// `opts` with a fresh origin id, so this pool's announcements can be told from others'.
pub(super) fn opciones_de_origen(opts: PgConnectOptions) -> PgConnectOptions {
    let origen: String = (0..8)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect();
    opts.options([(GUC_ORIGEN, origen)])
}

/// Queues the announcement that document `id` has a new chunk, in the caller's transaction
/// (sent by PostgreSQL when, and only if, it commits).
pub(super) async fn avisar(tx: &mut Transaction<'_, Postgres>, id: &str) -> Result<(), DbError> {
    sqlx::query(
        "SELECT pg_notify($1, $2 || ' ' || coalesce(current_setting('bitacora.origen', true), '') \
         || ' ' || coalesce(current_schema(), ''))",
    )
    .bind(CANAL)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// What the listener heard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Aviso {
    /// Another process (or an `admin` command) committed new changes to this document.
    Cambio(DocumentId),
    /// The listening connection was lost and has been re-established (LISTEN again):
    /// announcements made meanwhile are lost, so every document may be stale.
    Perdidos,
}

/// A connection listening for other processes' announcements (PostgreSQL only).
pub struct Escucha {
    listener: PgListener,
    origen: String,
    esquema: String,
}

impl std::fmt::Debug for Escucha {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Escucha")
            .field("origen", &self.origen)
            .field("esquema", &self.esquema)
            .finish_non_exhaustive()
    }
}

impl Database {
    /// Starts listening for other processes' changes: `None` on SQLite (one process only).
    /// Returns once the `LISTEN` is in place, so every change committed afterwards is heard.
    pub async fn escuchar_cambios(&self) -> Result<Option<Escucha>, DbError> {
        match self {
            Database::Sqlite(_) => Ok(None),
            Database::Postgres(p) => Ok(Some(Escucha::conectar(p).await?)),
        }
    }
}

impl Escucha {
    async fn conectar(pool: &PgPool) -> Result<Escucha, DbError> {
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(CANAL).await?;
        // The listener's connection has the pool's options: the same origin and search_path.
        let (origen, esquema): (String, String) = sqlx::query_as(
            "SELECT coalesce(current_setting('bitacora.origen', true), ''), \
             coalesce(current_schema(), '')",
        )
        .fetch_one(&mut listener)
        .await?;
        Ok(Escucha {
            listener,
            origen,
            esquema,
        })
    }

    /// The next announcement of a change made elsewhere in this schema (own announcements and
    /// other schemas' are skipped), or [`Aviso::Perdidos`] after a reconnection. An error means
    /// the connection is gone and could not be re-established: drop this and listen anew.
    pub async fn siguiente(&mut self) -> Result<Aviso, DbError> {
        loop {
            match self.listener.try_recv().await? {
                None => return Ok(Aviso::Perdidos),
                Some(n) => {
                    if let Some(id) = self.ajeno(n.payload()) {
                        return Ok(Aviso::Cambio(id));
                    }
                }
            }
        }
    }

    /// The document of a payload from another origin in this schema.
    fn ajeno(&self, payload: &str) -> Option<DocumentId> {
        let mut partes = payload.splitn(3, ' ');
        let (doc, origen, esquema) = (partes.next()?, partes.next()?, partes.next()?);
        if esquema != self.esquema || (!origen.is_empty() && origen == self.origen) {
            return None;
        }
        match DocumentId::parse(doc) {
            Ok(id) => Some(id),
            Err(_) => {
                tracing::warn!(%payload, "ignoring a malformed change announcement");
                None
            }
        }
    }
}
