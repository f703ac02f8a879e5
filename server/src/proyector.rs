//! Keeps the dashboard's projections (client-core's `proyeccion`) up to date in SQL.
//!
//! The hub marks a document whenever it commits new changes to it; one background task drains
//! the marks, loads each document from the database (not from the hub's cache, so it never
//! waits on a connection and sees exactly what is durable), computes its projection on the
//! blocking pool and stores it. Marks coalesce: a document changed ten times while the task was
//! busy is projected once; after each batch the task rests three times as long as the batch
//! took, so projections take at most a quarter of a core. Storing is idempotent and never
//! replaces a projection computed from more changes (`Database::guardar_proyeccion`), so two
//! server processes on one PostgreSQL may both project the same document. At startup every school document is marked, which repairs
//! anything a crash left between a commit and its projection.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use bitacora_core::ids::DocumentId;
use bitacora_core::model::DocKind;
use bitacora_core::proyeccion::proyectar;
use thiserror::Error;
use tokio::sync::{Notify, watch};

use crate::db::{Database, DbError, now};

#[derive(Debug, Error)]
pub enum ProyError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("document {0} cannot be projected: {1}")]
    Documento(String, String),
    #[error("internal task failed: {0}")]
    Join(String),
}

/// After each batch the projector rests this many times as long as the batch took.
const PAUSA_POR_TRABAJO: u32 = 3;

/// The projection queue and its counters.
#[derive(Debug)]
pub struct Proyector {
    pendientes: Mutex<BTreeSet<DocumentId>>,
    aviso: Notify,
    /// Incremented after each projection stored (tests and metrics wait on it).
    hechas: watch::Sender<u64>,
    /// When the oldest mark still waiting was made (0: none waiting), for the lag metric.
    pendiente_desde: AtomicI64,
    pub fallidas: AtomicU64,
}

impl Default for Proyector {
    fn default() -> Self {
        Proyector {
            pendientes: Mutex::new(BTreeSet::new()),
            aviso: Notify::new(),
            hechas: watch::Sender::new(0),
            pendiente_desde: AtomicI64::new(0),
            fallidas: AtomicU64::new(0),
        }
    }
}

impl Proyector {
    /// Asks for a document's projection to be recomputed.
    pub fn marcar(&self, id: DocumentId) {
        self.pendientes.lock().expect("proyector lock").insert(id);
        let _ =
            self.pendiente_desde
                .compare_exchange(0, now(), Ordering::Relaxed, Ordering::Relaxed);
        self.aviso.notify_one();
    }

    /// Number of projections stored so far; `changed()` fires after each.
    pub fn suscribir(&self) -> watch::Receiver<u64> {
        self.hechas.subscribe()
    }

    /// Seconds the oldest waiting mark has waited (0 when the queue is empty).
    pub fn retraso(&self) -> i64 {
        match self.pendiente_desde.load(Ordering::Relaxed) {
            0 => 0,
            t => (now() - t).max(0),
        }
    }

    /// Documents waiting.
    pub fn en_cola(&self) -> usize {
        self.pendientes.lock().expect("proyector lock").len()
    }

    /// Marks every school document the database holds.
    pub async fn marcar_todos(&self, db: &Database) -> Result<usize, DbError> {
        let docs = db.documents().await?;
        let mut n = 0;
        for d in docs.into_iter().filter(|d| d.kind == DocKind::Escuela) {
            self.marcar(d.id);
            n += 1;
        }
        Ok(n)
    }

    /// Drains the queue until `shutdown` turns true.
    pub async fn ejecutar(&self, db: Database, mut shutdown: watch::Receiver<bool>) {
        loop {
            let lote: Vec<DocumentId> = {
                let mut p = self.pendientes.lock().expect("proyector lock");
                let v = std::mem::take(&mut *p).into_iter().collect();
                self.pendiente_desde.store(0, Ordering::Relaxed);
                v
            };
            if lote.is_empty() {
                tokio::select! {
                    _ = self.aviso.notified() => continue,
                    _ = shutdown.changed() => return,
                }
            }
            let inicio = tokio::time::Instant::now();
            for id in lote {
                if *shutdown.borrow() {
                    return;
                }
                match proyectar_documento(&db, &id).await {
                    Ok(_) => {
                        self.hechas.send_modify(|n| *n += 1);
                    }
                    Err(e) => {
                        self.fallidas.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(doc = %id, error = %e, "projection not updated");
                        // Still counts as handled, so waiters see progress.
                        self.hechas.send_modify(|n| *n += 1);
                    }
                }
            }
            // Projecting a school's full cycle takes about half a second of CPU, and live
            // editing marks the document after every commit: back to back, the projector kept a
            // core busy while three teachers typed (docs/performance.md). Resting three times as
            // long as the batch took holds it under a quarter of a core; marks made meanwhile
            // coalesce into the next batch.
            tokio::select! {
                _ = tokio::time::sleep(inicio.elapsed() * PAUSA_POR_TRABAJO) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// Loads a school document from the database, projects it and stores the projection.
/// Returns whether it was written (false: not a school document, or a projection of more
/// changes was already stored).
pub async fn proyectar_documento(db: &Database, id: &DocumentId) -> Result<bool, ProyError> {
    let Some(info) = db.document(id).await? else {
        return Ok(false);
    };
    if info.kind != DocKind::Escuela {
        return Ok(false);
    }
    let stored = db.load(id).await?;
    let doc_id = id.to_string();
    let p = tokio::task::spawn_blocking(move || {
        let mut doc = match &stored.snapshot {
            Some(s) => automerge::AutoCommit::load(s).map_err(|e| e.to_string())?,
            None => automerge::AutoCommit::new(),
        };
        for c in &stored.chunks {
            doc.load_incremental(c).map_err(|e| e.to_string())?;
        }
        proyectar(&mut doc).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| ProyError::Join(e.to_string()))?
    .map_err(|e| ProyError::Documento(doc_id, e))?;
    Ok(db.guardar_proyeccion(&p, now()).await?)
}
