//! Storage of the zone server: the only module that runs SQL.
//!
//! One [`Database`] with two back-ends through sqlx, SQLite (the default, a file in the data
//! directory, WAL) and PostgreSQL, and one set of queries: every statement is written once
//! with `$N` placeholders, which both drivers accept, and the [`on!`] macro instantiates it
//! for each pool type. The schemas differ only in column types (migrations/sqlite and
//! migrations/postgres).
//!
//! Documents are append-only change chunks keyed by their hash plus at most one snapshot.
//! Behaviour under concurrent access (several tasks, or several server processes on one
//! PostgreSQL):
//! - [`Database::append`] is an idempotent insert; it returns after the commit, and only then
//!   may the caller tell a peer its changes are confirmed.
//! - [`Database::compact`] serialises per document (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: a
//!   transaction-scoped advisory lock), folds the snapshot and the chunks it read into a new
//!   snapshot and deletes exactly those chunks, so a chunk committed meanwhile is never lost.
//! - On PostgreSQL, an append of a new chunk also announces it to the other processes
//!   (`NOTIFY`, in the same transaction, so only committed changes are announced); see
//!   [`avisos`].

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use bitacora_core::ids::DocumentId;
use bitacora_core::model::DocKind;
use bitacora_core::store::DocInfo;
use sha2::{Digest, Sha256};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, Row, SqlitePool};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum DbError {
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("invalid database URL: {0}")]
    Url(String),
    #[error("stored data is damaged: {0}")]
    Damaged(String),
}

#[derive(Debug, Clone)]
pub enum Database {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs the same expression against whichever pool this is.
macro_rules! on {
    ($db:expr, $p:ident => $e:expr) => {
        match $db {
            Database::Sqlite($p) => $e,
            Database::Postgres($p) => $e,
        }
    };
}

pub mod avisos;
mod proyecciones;
mod replica;
pub use avisos::{Aviso, Escucha};
pub use proyecciones::{
    AcuerdosEscuela, AmbitoZona, ApoyoZona, Atraso, Cifras, DatosZona, FilaEscuela, SesionWeb,
};

/// A registered user (from `admin usuario add`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usuario {
    pub id: String,
    pub nombre: String,
    pub rol: String,
    pub cct: Option<String>,
    pub zona: Option<String>,
}

/// One row of the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auditoria<'a> {
    pub usuario: &'a str,
    pub documento: &'a str,
    pub accion: &'a str,
    pub resultado: &'a str,
    pub detalle: &'a str,
}

/// A document as stored (the replica storage contract's type).
pub use bitacora_core::storage::Stored;

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn usuario_de_fila<R: Row>(r: &R) -> Usuario
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    String: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    Option<String>: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    Usuario {
        id: r.get("id"),
        nombre: r.get("nombre"),
        rol: r.get("rol"),
        cct: r.get("cct"),
        zona: r.get("zona"),
    }
}

impl Database {
    /// Connects to `url` (`sqlite://…` or `postgres://…`) and runs the migrations.
    pub async fn connect(url: &str) -> Result<Database, DbError> {
        let db = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let opts = PgConnectOptions::from_str(url).map_err(|e| DbError::Url(e.to_string()))?;
            Database::connect_pg(opts).await?
        } else {
            let path = url.strip_prefix("sqlite://").unwrap_or(url);
            Database::connect_sqlite(Path::new(path)).await?
        };
        db.migrate().await?;
        Ok(db)
    }

    pub async fn connect_sqlite(path: &Path) -> Result<Database, DbError> {
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(opts)
            .await?;
        Ok(Database::Sqlite(pool))
    }

    /// Each pool gets its own origin id, so its change announcements can be told from other
    /// processes' ([`avisos`]).
    pub async fn connect_pg(opts: PgConnectOptions) -> Result<Database, DbError> {
        let opts = avisos::opciones_de_origen(opts);
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts)
            .await?;
        Ok(Database::Postgres(pool))
    }

    pub async fn migrate(&self) -> Result<(), DbError> {
        match self {
            Database::Sqlite(p) => sqlx::migrate!("./migrations/sqlite").run(p).await?,
            Database::Postgres(p) => sqlx::migrate!("./migrations/postgres").run(p).await?,
        }
        Ok(())
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Database::Sqlite(_) => "sqlite",
            Database::Postgres(_) => "postgres",
        }
    }

    /// Readiness: the database answers.
    pub async fn ping(&self) -> Result<(), DbError> {
        on!(self, p => sqlx::query("SELECT 1").execute(p).await.map(|_| ()))?;
        Ok(())
    }

    pub async fn close(&self) {
        on!(self, p => p.close().await)
    }

    pub async fn get_meta(&self, key: &str) -> Result<Option<String>, DbError> {
        Ok(
            on!(self, p => sqlx::query_scalar("SELECT value FROM meta WHERE key = $1").bind(key).fetch_optional(p).await?),
        )
    }

    pub async fn set_meta(&self, key: &str, value: &str) -> Result<(), DbError> {
        on!(self, p => sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
            .bind(key).bind(value).execute(p).await.map(|_| ()))?;
        Ok(())
    }

    /// A server-wide value, created with `default` the first time (first writer wins, so
    /// several processes on one database agree).
    pub async fn meta_or_init(&self, key: &str, default: &str) -> Result<String, DbError> {
        on!(self, p => sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
            .bind(key).bind(default).execute(p).await.map(|_| ()))?;
        Ok(
            on!(self, p => sqlx::query_scalar("SELECT value FROM meta WHERE key = $1").bind(key).fetch_one(p).await?),
        )
    }

    // -----------------------------------------------------------------------------------------
    // Zones, schools, users, tokens, actors.

    pub async fn add_zona(&self, clave: &str, nombre: &str) -> Result<bool, DbError> {
        let n = on!(self, p => sqlx::query("INSERT INTO zonas (clave, nombre, creado) VALUES ($1, $2, $3) ON CONFLICT (clave) DO NOTHING")
            .bind(clave).bind(nombre).bind(now()).execute(p).await?.rows_affected());
        Ok(n == 1)
    }

    pub async fn zona_existe(&self, clave: &str) -> Result<bool, DbError> {
        let n: i64 = on!(self, p => sqlx::query_scalar("SELECT COUNT(*) FROM zonas WHERE clave = $1").bind(clave).fetch_one(p).await?);
        Ok(n > 0)
    }

    pub async fn add_escuela(&self, cct: &str, nombre: &str, zona: &str) -> Result<bool, DbError> {
        let n = on!(self, p => sqlx::query("INSERT INTO escuelas (cct, nombre, zona, creado) VALUES ($1, $2, $3, $4) ON CONFLICT (cct) DO NOTHING")
            .bind(cct).bind(nombre).bind(zona).bind(now()).execute(p).await?.rows_affected());
        Ok(n == 1)
    }

    /// The zone of a school, if the school is registered.
    pub async fn zona_de_escuela(&self, cct: &str) -> Result<Option<String>, DbError> {
        Ok(
            on!(self, p => sqlx::query_scalar("SELECT zona FROM escuelas WHERE cct = $1").bind(cct).fetch_optional(p).await?),
        )
    }

    pub async fn escuelas_de_zona(&self, zona: &str) -> Result<Vec<(String, String)>, DbError> {
        Ok(
            on!(self, p => sqlx::query_as("SELECT cct, nombre FROM escuelas WHERE zona = $1 ORDER BY cct").bind(zona).fetch_all(p).await?),
        )
    }

    pub async fn add_usuario(&self, u: &Usuario) -> Result<bool, DbError> {
        let n = on!(self, p => sqlx::query("INSERT INTO usuarios (id, nombre, rol, cct, zona, creado) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING")
            .bind(&u.id).bind(&u.nombre).bind(&u.rol).bind(&u.cct).bind(&u.zona).bind(now()).execute(p).await?.rows_affected());
        Ok(n == 1)
    }

    pub async fn usuario(&self, id: &str) -> Result<Option<Usuario>, DbError> {
        Ok(
            on!(self, p => sqlx::query("SELECT id, nombre, rol, cct, zona FROM usuarios WHERE id = $1").bind(id).fetch_optional(p).await?.map(|r| usuario_de_fila(&r))),
        )
    }

    pub async fn add_token(
        &self,
        jti: &str,
        usuario: &str,
        emitido: i64,
        expira: i64,
    ) -> Result<(), DbError> {
        on!(self, p => sqlx::query("INSERT INTO tokens (jti, usuario, emitido, expira) VALUES ($1, $2, $3, $4)")
            .bind(jti).bind(usuario).bind(emitido).bind(expira).execute(p).await.map(|_| ()))?;
        Ok(())
    }

    /// Revokes a token; false if no such token.
    pub async fn revoke_token(&self, jti: &str) -> Result<bool, DbError> {
        let n = on!(self, p => sqlx::query("UPDATE tokens SET revocado = $2 WHERE jti = $1 AND revocado IS NULL")
            .bind(jti).bind(now()).execute(p).await?.rows_affected());
        Ok(n == 1)
    }

    /// Whether a token id was issued here and is not revoked.
    pub async fn token_vigente(&self, jti: &str, usuario: &str) -> Result<bool, DbError> {
        let n: i64 = on!(self, p => sqlx::query_scalar("SELECT COUNT(*) FROM tokens WHERE jti = $1 AND usuario = $2 AND revocado IS NULL")
            .bind(jti).bind(usuario).fetch_one(p).await?);
        Ok(n > 0)
    }

    /// Binds an actor id to a user. Returns the user it is bound to (which is not `usuario` if
    /// another user enrolled it first).
    pub async fn enrol_actor(&self, actor: &str, usuario: &str) -> Result<String, DbError> {
        on!(self, p => sqlx::query("INSERT INTO actores (actor, usuario, registrado) VALUES ($1, $2, $3) ON CONFLICT (actor) DO NOTHING")
            .bind(actor).bind(usuario).bind(now()).execute(p).await.map(|_| ()))?;
        let owner: String = on!(self, p => sqlx::query_scalar("SELECT usuario FROM actores WHERE actor = $1").bind(actor).fetch_one(p).await?);
        Ok(owner)
    }

    /// Moves an actor from one user to another (only if it still belongs to `from`).
    pub async fn reassign_actor(&self, actor: &str, from: &str, to: &str) -> Result<bool, DbError> {
        let n = on!(self, p => sqlx::query("UPDATE actores SET usuario = $3 WHERE actor = $1 AND usuario = $2")
            .bind(actor).bind(from).bind(to).execute(p).await?.rows_affected());
        Ok(n == 1)
    }

    /// The user an actor is enrolled to.
    pub async fn actor_usuario(&self, actor: &str) -> Result<Option<Usuario>, DbError> {
        Ok(
            on!(self, p => sqlx::query("SELECT u.id, u.nombre, u.rol, u.cct, u.zona FROM actores a JOIN usuarios u ON u.id = a.usuario WHERE a.actor = $1")
            .bind(actor).fetch_optional(p).await?.map(|r| usuario_de_fila(&r))),
        )
    }

    // -----------------------------------------------------------------------------------------
    // Documents.

    /// Registers a document and stores its deterministic genesis (idempotent).
    pub async fn register_document(&self, info: &DocInfo, genesis: &[u8]) -> Result<(), DbError> {
        let id = info.id.to_string();
        let hash = Sha256::digest(genesis).to_vec();
        on!(self, p => {
            let mut tx = p.begin().await?;
            sqlx::query("INSERT INTO documentos (id, tipo, owner, ciclo, creado) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING")
                .bind(&id).bind(info.kind.as_str()).bind(&info.owner).bind(&info.ciclo).bind(now()).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO chunks (doc_id, hash, data) VALUES ($1, $2, $3) ON CONFLICT (doc_id, hash) DO NOTHING")
                .bind(&id).bind(&hash).bind(genesis).execute(&mut *tx).await?;
            tx.commit().await
        })?;
        Ok(())
    }

    fn info_de(id: String, tipo: String, owner: String, ciclo: String) -> Option<DocInfo> {
        Some(DocInfo {
            id: DocumentId::parse(&id).ok()?,
            kind: DocKind::parse(&tipo)?,
            owner,
            ciclo,
        })
    }

    pub async fn document(&self, id: &DocumentId) -> Result<Option<DocInfo>, DbError> {
        let row: Option<(String, String, String, String)> = on!(self, p => sqlx::query_as("SELECT id, tipo, owner, ciclo FROM documentos WHERE id = $1")
            .bind(id.to_string()).fetch_optional(p).await?);
        Ok(row.and_then(|(i, t, o, c)| Self::info_de(i, t, o, c)))
    }

    pub async fn documents(&self) -> Result<Vec<DocInfo>, DbError> {
        let rows: Vec<(String, String, String, String)> = on!(self, p => sqlx::query_as("SELECT id, tipo, owner, ciclo FROM documentos ORDER BY tipo, owner, ciclo")
            .fetch_all(p).await?);
        Ok(rows
            .into_iter()
            .filter_map(|(i, t, o, c)| Self::info_de(i, t, o, c))
            .collect())
    }

    pub async fn load(&self, id: &DocumentId) -> Result<Stored, DbError> {
        Ok(self.load_version(id).await?.0)
    }

    /// [`Database::load`], with the document's stored version read in the same transaction
    /// (the number of appends of new chunks, [`Database::append`]): what a projection of these
    /// chunks covers.
    pub async fn load_version(&self, id: &DocumentId) -> Result<(Stored, i64), DbError> {
        let id = id.to_string();
        // One transaction, so the snapshot and the chunks are from the same moment. A SQLite read
        // transaction is one snapshot; PostgreSQL needs REPEATABLE READ for that: under its
        // default READ COMMITTED each statement sees its own moment, and a compaction committing
        // between the two SELECTs would hide the chunks it folded into the new snapshot.
        macro_rules! body {
            ($tx:ident) => {{
                let snapshot: Option<Vec<u8>> =
                    sqlx::query_scalar("SELECT data FROM snapshots WHERE doc_id = $1")
                        .bind(&id)
                        .fetch_optional(&mut *$tx)
                        .await?;
                let chunks: Vec<Vec<u8>> =
                    sqlx::query_scalar("SELECT data FROM chunks WHERE doc_id = $1 ORDER BY seq")
                        .bind(&id)
                        .fetch_all(&mut *$tx)
                        .await?;
                let version: Option<i64> =
                    sqlx::query_scalar("SELECT version FROM documentos WHERE id = $1")
                        .bind(&id)
                        .fetch_optional(&mut *$tx)
                        .await?;
                $tx.commit().await?;
                Ok((Stored { snapshot, chunks }, version.unwrap_or(0)))
            }};
        }
        match self {
            Database::Sqlite(p) => {
                let mut tx = p.begin().await?;
                body!(tx)
            }
            Database::Postgres(p) => {
                let mut tx = p
                    .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    .await?;
                body!(tx)
            }
        }
    }

    /// Appends a chunk of changes; durable when this returns. Returns the number of chunks now
    /// waiting for compaction. On PostgreSQL a new chunk is announced to the other processes in
    /// the same transaction (delivered on commit; [`avisos`]).
    ///
    /// A new chunk also increments the document's stored version in the same transaction
    /// (the row lock on `documentos` orders the appends of one document, so a reader that sees
    /// version v sees exactly the chunks of the first v appends).
    pub async fn append(&self, id: &DocumentId, data: &[u8]) -> Result<i64, DbError> {
        let id = id.to_string();
        let hash = Sha256::digest(data).to_vec();
        const INSERT: &str = "INSERT INTO chunks (doc_id, hash, data) VALUES ($1, $2, $3) ON CONFLICT (doc_id, hash) DO NOTHING";
        const VERSION: &str = "UPDATE documentos SET version = version + 1 WHERE id = $1";
        const COUNT: &str = "SELECT COUNT(*) FROM chunks WHERE doc_id = $1";
        macro_rules! body {
            ($tx:ident $(, $avisar:expr)?) => {{
                let nuevo = sqlx::query(INSERT)
                    .bind(&id)
                    .bind(&hash)
                    .bind(data)
                    .execute(&mut *$tx)
                    .await?
                    .rows_affected()
                    == 1;
                if nuevo {
                    sqlx::query(VERSION).bind(&id).execute(&mut *$tx).await?;
                    $($avisar;)?
                }
                let n: i64 = sqlx::query_scalar(COUNT)
                    .bind(&id)
                    .fetch_one(&mut *$tx)
                    .await?;
                $tx.commit().await?;
                n
            }};
        }
        let n = match self {
            Database::Sqlite(p) => {
                let mut tx = p.begin_with("BEGIN IMMEDIATE").await?;
                body!(tx)
            }
            Database::Postgres(p) => {
                let mut tx = p.begin().await?;
                body!(tx, avisos::avisar(&mut tx, &id).await?)
            }
        };
        Ok(n)
    }

    /// When a document's snapshot was last written (its last compaction), if it has one.
    pub async fn snapshot_creado(&self, id: &DocumentId) -> Result<Option<i64>, DbError> {
        Ok(
            on!(self, p => sqlx::query_scalar("SELECT creado FROM snapshots WHERE doc_id = $1")
                .bind(id.to_string()).fetch_optional(p).await?),
        )
    }

    /// A document's stored version (the number of appends of new chunks), or `None` if the
    /// document is not registered.
    pub async fn version(&self, id: &DocumentId) -> Result<Option<i64>, DbError> {
        Ok(
            on!(self, p => sqlx::query_scalar("SELECT version FROM documentos WHERE id = $1")
                .bind(id.to_string()).fetch_optional(p).await?),
        )
    }

    /// Folds the snapshot and the chunks into a new snapshot with `fold`, deleting exactly the
    /// chunks folded. `fold` gets (snapshot, chunks) and returns (snapshot bytes, heads); it may
    /// take long (a school's full cycle stored as loose changes takes ~0.4 s to load), so it
    /// should move CPU work to the blocking pool.
    ///
    /// PostgreSQL: one transaction holding a per-document advisory lock throughout. SQLite has
    /// one writer for the whole database, so the fold runs outside any write transaction
    /// (holding `BEGIN IMMEDIATE` through it stalled every commit of every document for the
    /// whole fold; docs/performance.md): read the snapshot and chunks in one read transaction,
    /// fold, then under `BEGIN IMMEDIATE` write the snapshot and delete the chunks read, unless
    /// another compaction replaced the snapshot meanwhile (then nothing is written). Chunks
    /// appended after the read have higher `seq`s and stay.
    pub async fn compact<F>(
        &self,
        id: &DocumentId,
        fold: impl FnOnce(Option<Vec<u8>>, Vec<Vec<u8>>) -> F,
    ) -> Result<(), DbError>
    where
        F: std::future::Future<Output = Result<(Vec<u8>, String), DbError>>,
    {
        self.compact_covered(id, |snapshot, chunks| {
            let n = chunks.len();
            let f = fold(snapshot, chunks);
            async move {
                let (data, heads) = f.await?;
                Ok((data, heads, vec![true; n]))
            }
        })
        .await
    }

    /// [`Database::compact`] where `fold` also says which chunks the new snapshot covers
    /// (`bitacora_core::storage::fold`): only those are deleted.
    pub async fn compact_covered<F>(
        &self,
        id: &DocumentId,
        fold: impl FnOnce(Option<Vec<u8>>, Vec<Vec<u8>>) -> F,
    ) -> Result<(), DbError>
    where
        F: std::future::Future<Output = Result<(Vec<u8>, String, Vec<bool>), DbError>>,
    {
        let id = id.to_string();
        const SNAPSHOT: &str = "SELECT data, max_seq FROM snapshots WHERE doc_id = $1";
        const CHUNKS: &str = "SELECT seq, data FROM chunks WHERE doc_id = $1 ORDER BY seq";
        const UPSERT: &str = "INSERT INTO snapshots (doc_id, data, heads, max_seq, creado) VALUES ($1, $2, $3, $4, $5) \
                              ON CONFLICT (doc_id) DO UPDATE SET data = excluded.data, heads = excluded.heads, max_seq = excluded.max_seq, creado = excluded.creado";
        const DELETE: &str = "DELETE FROM chunks WHERE doc_id = $1 AND seq = $2";
        let nada_que_hacer = |snapshot: &Option<(Vec<u8>, i64)>, rows: &[(i64, Vec<u8>)]| {
            rows.len() < 2 && snapshot.is_some() || rows.is_empty()
        };
        match self {
            Database::Sqlite(p) => {
                let mut tx = p.begin().await?;
                let snapshot: Option<(Vec<u8>, i64)> = sqlx::query_as(SNAPSHOT)
                    .bind(&id)
                    .fetch_optional(&mut *tx)
                    .await?;
                let rows: Vec<(i64, Vec<u8>)> =
                    sqlx::query_as(CHUNKS).bind(&id).fetch_all(&mut *tx).await?;
                tx.commit().await?;
                if nada_que_hacer(&snapshot, &rows) {
                    return Ok(());
                }
                let antes = snapshot.as_ref().map(|s| s.1);
                let max_seq = rows.iter().map(|r| r.0).max().unwrap_or(0);
                let seqs: Vec<i64> = rows.iter().map(|r| r.0).collect();
                let chunks: Vec<Vec<u8>> = rows.into_iter().map(|r| r.1).collect();
                let (data, heads, covered) = fold(snapshot.map(|s| s.0), chunks).await?;
                let mut tx = p.begin_with("BEGIN IMMEDIATE").await?;
                let ahora: Option<i64> =
                    sqlx::query_scalar("SELECT max_seq FROM snapshots WHERE doc_id = $1")
                        .bind(&id)
                        .fetch_optional(&mut *tx)
                        .await?;
                if ahora != antes {
                    // Another compaction folded these chunks first.
                    tx.rollback().await?;
                    return Ok(());
                }
                sqlx::query(UPSERT)
                    .bind(&id)
                    .bind(&data)
                    .bind(&heads)
                    .bind(max_seq)
                    .bind(now())
                    .execute(&mut *tx)
                    .await?;
                for (seq, _) in seqs.into_iter().zip(covered).filter(|(_, c)| *c) {
                    sqlx::query(DELETE)
                        .bind(&id)
                        .bind(seq)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
            }
            Database::Postgres(p) => {
                let mut tx = p.begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
                    .bind(&id)
                    .execute(&mut *tx)
                    .await?;
                let snapshot: Option<(Vec<u8>, i64)> = sqlx::query_as(SNAPSHOT)
                    .bind(&id)
                    .fetch_optional(&mut *tx)
                    .await?;
                let rows: Vec<(i64, Vec<u8>)> =
                    sqlx::query_as(CHUNKS).bind(&id).fetch_all(&mut *tx).await?;
                if nada_que_hacer(&snapshot, &rows) {
                    return Ok(());
                }
                let max_seq = rows.iter().map(|r| r.0).max().unwrap_or(0);
                let chunks: Vec<Vec<u8>> = rows.iter().map(|r| r.1.clone()).collect();
                let (data, heads, covered) = fold(snapshot.map(|s| s.0), chunks).await?;
                sqlx::query(UPSERT)
                    .bind(&id)
                    .bind(&data)
                    .bind(&heads)
                    .bind(max_seq)
                    .bind(now())
                    .execute(&mut *tx)
                    .await?;
                for ((seq, _), _) in rows.iter().zip(covered).filter(|(_, c)| *c) {
                    sqlx::query(DELETE)
                        .bind(&id)
                        .bind(*seq)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
            }
        }
        Ok(())
    }

    pub async fn chunk_count(&self, id: &DocumentId) -> Result<i64, DbError> {
        Ok(
            on!(self, p => sqlx::query_scalar("SELECT COUNT(*) FROM chunks WHERE doc_id = $1").bind(id.to_string()).fetch_one(p).await?),
        )
    }

    // -----------------------------------------------------------------------------------------
    // Sync state per (peer storage id, document).

    pub async fn save_sync_state(
        &self,
        peer: &str,
        id: &DocumentId,
        state: &[u8],
    ) -> Result<(), DbError> {
        on!(self, p => sqlx::query("INSERT INTO sync_states (peer, doc_id, state, updated) VALUES ($1, $2, $3, $4) \
                                    ON CONFLICT (peer, doc_id) DO UPDATE SET state = excluded.state, updated = excluded.updated")
            .bind(peer).bind(id.to_string()).bind(state).bind(now()).execute(p).await.map(|_| ()))?;
        Ok(())
    }

    pub async fn load_sync_state(
        &self,
        peer: &str,
        id: &DocumentId,
    ) -> Result<Option<Vec<u8>>, DbError> {
        Ok(
            on!(self, p => sqlx::query_scalar("SELECT state FROM sync_states WHERE peer = $1 AND doc_id = $2")
            .bind(peer).bind(id.to_string()).fetch_optional(p).await?),
        )
    }

    // -----------------------------------------------------------------------------------------
    // Audit log (append-only: the schema refuses UPDATE and DELETE).

    pub async fn audit(&self, a: &Auditoria<'_>) -> Result<(), DbError> {
        on!(self, p => sqlx::query("INSERT INTO auditoria (ts, usuario, documento, accion, resultado, detalle) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(now()).bind(a.usuario).bind(a.documento).bind(a.accion).bind(a.resultado).bind(a.detalle).execute(p).await.map(|_| ()))?;
        Ok(())
    }

    /// The last `n` audit rows, newest last: (ts, usuario, documento, accion, resultado, detalle).
    pub async fn audit_tail(
        &self,
        n: i64,
    ) -> Result<Vec<(i64, String, String, String, String, String)>, DbError> {
        let mut v: Vec<(i64, String, String, String, String, String)> = on!(self, p => sqlx::query_as(
            "SELECT ts, usuario, documento, accion, resultado, detalle FROM auditoria ORDER BY seq DESC LIMIT $1")
            .bind(n).fetch_all(p).await?);
        v.reverse();
        Ok(v)
    }

    /// A consistent copy of the SQLite database into the new file `destino`, by `VACUUM INTO`
    /// (one read transaction: the server keeps serving meanwhile). Not for PostgreSQL
    /// (`pg_dump`, docs/operations.md): [`DbError::Url`] there.
    pub async fn respaldar_sqlite(&self, destino: &Path) -> Result<(), DbError> {
        let Database::Sqlite(p) = self else {
            return Err(DbError::Url(
                "VACUUM INTO is SQLite's; back PostgreSQL up with pg_dump".into(),
            ));
        };
        sqlx::query("VACUUM INTO $1")
            .bind(destino.to_string_lossy().into_owned())
            .execute(p)
            .await?;
        Ok(())
    }

    pub async fn integrity_check(&self) -> Result<(), DbError> {
        match self {
            Database::Sqlite(p) => {
                let r: String = sqlx::query_scalar("PRAGMA integrity_check")
                    .fetch_one(p)
                    .await?;
                if r != "ok" {
                    return Err(DbError::Damaged(r));
                }
            }
            Database::Postgres(p) => {
                sqlx::query("SELECT 1").execute(p).await?;
            }
        }
        Ok(())
    }
}
