//! Keeps the dashboard's projections (client-core's `proyeccion`) up to date in SQL.
//!
//! The hub marks a document whenever it commits new changes to it; one background task drains
//! the marks, loads each document from the database (not from the hub's cache, so it never
//! waits on a connection and sees exactly what is durable), computes its projection on the
//! blocking pool and stores it with the stored version it was computed from. Marks coalesce: a
//! document changed ten times while the task was busy is projected once; after each batch the
//! task rests three times as long as the batch took, so projections take at most a quarter of a
//! core. Storing is idempotent and never replaces a projection computed from more changes
//! (`Database::guardar_proyeccion_de`), so two server processes on one PostgreSQL may both
//! project the same document.
//!
//! Nothing may freeze a projection:
//! - A projection that fails (a pool timeout, a transient database error, a load that fails) is
//!   retried with a growing pause (1 s, 2 s, 4 s … at most a minute), not counted as done.
//! - A periodic sweep ([`Proyector::barrer`], every 30 s by default and once at start) asks the
//!   database for school documents whose stored version is past their projection's and marks
//!   them, so a lost mark (a crash between a commit and its projection, a notification from
//!   another process that never came) delays a figure by at most one sweep. The documents it
//!   found behind are what `/metrics` and the dashboard report as projection lag.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use bitacora_core::ids::DocumentId;
use bitacora_core::model::DocKind;
use bitacora_core::proyeccion::proyectar;
use thiserror::Error;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::db::{Atraso, Database, DbError, now};

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
/// How often the sweep looks for projections behind their documents, by default.
pub const BARRIDO: Duration = Duration::from_secs(30);
/// The first retry of a failed projection waits this long; each further one twice as long.
const PRIMER_REINTENTO: Duration = Duration::from_secs(1);
/// Retries never wait longer than this.
const MAX_REINTENTO: Duration = Duration::from_secs(60);

/// A failed projection waiting for its retry.
#[derive(Debug, Clone, Copy)]
struct Reintento {
    cuando: Instant,
    fallos: u32,
}

/// The projection queue and its counters.
#[derive(Debug)]
pub struct Proyector {
    pendientes: Mutex<BTreeSet<DocumentId>>,
    reintentos: Mutex<BTreeMap<DocumentId, Reintento>>,
    aviso: Notify,
    /// Incremented after each attempt, stored or failed (tests and metrics wait on it).
    hechas: watch::Sender<u64>,
    /// When the oldest mark still waiting was made (0: none waiting), for the lag metric.
    pendiente_desde: AtomicI64,
    pub fallidas: AtomicU64,
    /// What the last sweep found behind, minus what was projected since.
    atrasos: Mutex<Vec<Atraso>>,
    barrido: Duration,
}

impl Default for Proyector {
    fn default() -> Self {
        Proyector::con_barrido(BARRIDO)
    }
}

impl Proyector {
    /// A projector whose sweep runs every `barrido`.
    pub fn con_barrido(barrido: Duration) -> Self {
        Proyector {
            pendientes: Mutex::new(BTreeSet::new()),
            reintentos: Mutex::new(BTreeMap::new()),
            aviso: Notify::new(),
            hechas: watch::Sender::new(0),
            pendiente_desde: AtomicI64::new(0),
            fallidas: AtomicU64::new(0),
            atrasos: Mutex::new(Vec::new()),
            barrido,
        }
    }

    /// Asks for a document's projection to be recomputed.
    pub fn marcar(&self, id: DocumentId) {
        self.pendientes.lock().expect("proyector lock").insert(id);
        let _ =
            self.pendiente_desde
                .compare_exchange(0, now(), Ordering::Relaxed, Ordering::Relaxed);
        self.aviso.notify_one();
    }

    /// Number of projection attempts so far (stored or failed); `changed()` fires after each.
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

    /// Documents waiting (marked, or failed and waiting for their retry).
    pub fn en_cola(&self) -> usize {
        let marcados = self.pendientes.lock().expect("proyector lock").clone();
        let reintentos = self.reintentos.lock().expect("proyector lock");
        marcados.len() + reintentos.keys().filter(|k| !marcados.contains(k)).count()
    }

    /// School documents whose projection the last sweep found behind their stored changes and
    /// that have not been projected since.
    pub fn atrasos(&self) -> Vec<Atraso> {
        self.atrasos.lock().expect("proyector lock").clone()
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

    /// Finds the school documents whose projection is behind their stored version and marks
    /// them (except those waiting for a retry: their pause stands). Returns how many were
    /// behind.
    pub async fn barrer(&self, db: &Database) -> Result<usize, DbError> {
        let atrasos = db.proyecciones_atrasadas().await?;
        let ahora = Instant::now();
        let esperando: BTreeSet<DocumentId> = self
            .reintentos
            .lock()
            .expect("proyector lock")
            .iter()
            .filter(|(_, r)| r.cuando > ahora)
            .map(|(id, _)| *id)
            .collect();
        for a in &atrasos {
            match DocumentId::parse(&a.documento) {
                Ok(id) if !esperando.contains(&id) => self.marcar(id),
                Ok(_) => {}
                Err(e) => tracing::warn!(doc = %a.documento, error = %e, "unparseable document id"),
            }
        }
        let n = atrasos.len();
        *self.atrasos.lock().expect("proyector lock") = atrasos;
        Ok(n)
    }

    /// Moves the retries that are due into the queue; returns when the next one is due.
    fn reintentos_vencidos(&self) -> Option<Instant> {
        let ahora = Instant::now();
        let mut vencidos = Vec::new();
        let proximo = {
            let r = self.reintentos.lock().expect("proyector lock");
            for (id, x) in r.iter() {
                if x.cuando <= ahora {
                    vencidos.push(*id);
                }
            }
            r.values().map(|x| x.cuando).filter(|c| *c > ahora).min()
        };
        for id in vencidos {
            self.marcar(id);
        }
        proximo
    }

    fn fallo(&self, id: DocumentId) {
        let mut r = self.reintentos.lock().expect("proyector lock");
        let fallos = r.get(&id).map_or(0, |x| x.fallos).saturating_add(1);
        let pausa = PRIMER_REINTENTO
            .saturating_mul(1u32 << (fallos - 1).min(16))
            .min(MAX_REINTENTO);
        r.insert(
            id,
            Reintento {
                cuando: Instant::now() + pausa,
                fallos,
            },
        );
    }

    fn hecho(&self, id: &DocumentId, version: i64) {
        self.reintentos.lock().expect("proyector lock").remove(id);
        let doc = id.to_string();
        self.atrasos
            .lock()
            .expect("proyector lock")
            .retain(|a| a.documento != doc || a.version_guardada > version);
    }

    /// Drains the queue until `shutdown` turns true, retrying failures and sweeping every
    /// `barrido` (the first sweep at once).
    pub async fn ejecutar(&self, db: Database, mut shutdown: watch::Receiver<bool>) {
        let mut proximo_barrido = Instant::now();
        loop {
            if Instant::now() >= proximo_barrido {
                if let Err(e) = self.barrer(&db).await {
                    tracing::warn!(error = %e, "projection sweep failed");
                }
                proximo_barrido = Instant::now() + self.barrido;
            }
            let proximo_reintento = self.reintentos_vencidos();
            let lote: Vec<DocumentId> = {
                let mut p = self.pendientes.lock().expect("proyector lock");
                let v = std::mem::take(&mut *p).into_iter().collect();
                self.pendiente_desde.store(0, Ordering::Relaxed);
                v
            };
            if lote.is_empty() {
                let despertar =
                    proximo_reintento.map_or(proximo_barrido, |r| r.min(proximo_barrido));
                tokio::select! {
                    _ = self.aviso.notified() => continue,
                    _ = tokio::time::sleep_until(despertar) => continue,
                    _ = shutdown.changed() => return,
                }
            }
            let inicio = Instant::now();
            for id in lote {
                if *shutdown.borrow() {
                    return;
                }
                match proyectar_version(&db, &id).await {
                    Ok((_, version)) => self.hecho(&id, version),
                    Err(e) => {
                        self.fallidas.fetch_add(1, Ordering::Relaxed);
                        self.fallo(id);
                        tracing::warn!(doc = %id, error = %e, "projection not updated; will retry");
                    }
                }
                self.hechas.send_modify(|n| *n += 1);
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
    Ok(proyectar_version(db, id).await?.0)
}

/// [`proyectar_documento`], also returning the stored version the projection was computed
/// from (what it covers, whether or not a projection of more changes was already there).
async fn proyectar_version(db: &Database, id: &DocumentId) -> Result<(bool, i64), ProyError> {
    let Some(info) = db.document(id).await? else {
        return Ok((false, 0));
    };
    if info.kind != DocKind::Escuela {
        return Ok((false, 0));
    }
    let (stored, version) = db.load_version(id).await?;
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
    let escrito = db.guardar_proyeccion_de(&p, Some(version), now()).await?;
    Ok((escrito, version))
}
