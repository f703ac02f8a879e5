//! Fan-out of live changes between server processes that share one PostgreSQL database.
//!
//! Every append of a new chunk is announced with `NOTIFY` in its own transaction
//! (`db/avisos.rs`), so other processes hear of exactly the changes that committed. This task
//! listens: for each change made elsewhere it calls [`Hub::cambio_externo`] (the document's
//! in-memory copy is dropped and reloaded on next use, subscribed connections are told, the
//! projection is queued). When the listening connection drops, announcements made meanwhile are
//! lost; so after every reconnection (sqlx's `PgListener` re-LISTENs first) every document is
//! treated as changed ([`Hub::todo_posiblemente_cambiado`]). If reconnecting fails, it retries
//! with backoff (1 s doubling to 30 s) and does the same once it listens again.
//!
//! On SQLite there is one process per database and nothing to listen to.

use std::time::Duration;

use tokio::sync::watch;

use crate::db::{Aviso, Database, Escucha};
use crate::hub::Hub;

/// Longest pause between attempts to listen again.
const ESPERA_MAXIMA: Duration = Duration::from_secs(30);

/// Follows other processes' changes until `shutdown` turns true. `escucha` must have been
/// opened (`Database::escuchar_cambios`) before the hub served any document, so nothing
/// committed after a document was loaded goes unheard.
pub async fn seguir(hub: &Hub, mut escucha: Escucha, mut shutdown: watch::Receiver<bool>) {
    loop {
        let aviso = tokio::select! {
            a = escucha.siguiente() => a,
            _ = shutdown.changed() => return,
        };
        match aviso {
            Ok(Aviso::Cambio(id)) => {
                tracing::debug!(doc = %id, "changed by another process");
                hub.cambio_externo(&id).await;
            }
            Ok(Aviso::Perdidos) => {
                tracing::warn!("change listener reconnected; reloading every document");
                todo_cambiado(hub).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "change listener lost its connection");
                drop(escucha);
                let Some(nueva) = escuchar_de_nuevo(hub.db(), &mut shutdown).await else {
                    return;
                };
                escucha = nueva;
                tracing::info!("change listener listening again; reloading every document");
                todo_cambiado(hub).await;
            }
        }
    }
}

async fn todo_cambiado(hub: &Hub) {
    if let Err(e) = hub.todo_posiblemente_cambiado().await {
        tracing::warn!(error = %e, "projections not re-queued after a reconnection");
    }
}

/// Opens a new listener, retrying with backoff; `None` if shutdown came first.
async fn escuchar_de_nuevo(db: &Database, shutdown: &mut watch::Receiver<bool>) -> Option<Escucha> {
    let mut espera = Duration::from_secs(1);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(espera) => {}
            _ = shutdown.changed() => return None,
        }
        match db.escuchar_cambios().await {
            Ok(Some(e)) => return Some(e),
            Ok(None) => return None,
            Err(e) => {
                espera = (espera * 2).min(ESPERA_MAXIMA);
                tracing::warn!(error = %e, retry_in = ?espera, "change listener cannot reconnect");
            }
        }
    }
}
