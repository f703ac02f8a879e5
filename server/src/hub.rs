//! The document hub: the in-memory cache of documents shared by every connection, and the one
//! place where a received sync message becomes durable.
//!
//! Each document has an entry with its registry data (kind, owner, zone) and an async mutex over
//! the loaded automerge document. Receiving a sync message, under that mutex:
//! 1. apply it on the blocking pool,
//! 2. append the new changes to the database and wait for the commit,
//! 3. only then generate the reply (whose heads tell the peer its changes are confirmed) and
//!    notify the other connections subscribed to the document.
//!
//! If the commit fails, the in-memory document (which already holds the changes) is discarded
//! and reloaded from the database on next use, so nothing unconfirmed is ever served.
//!
//! Memory: each loaded document's size is estimated (10x its stored bytes, a measured ballpark
//! for automerge's in-memory op set); when the total passes the budget, the least recently used
//! documents with no subscribed connection are unloaded.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use automerge::sync::{self, SyncDoc};
use automerge::{Automerge, ChangeHash};
use bitacora_core::bundle::genesis_de;
use bitacora_core::ids::DocumentId;
use bitacora_core::model::{DocKind, genesis_actor};
use bitacora_core::protocol::Message;
use bitacora_core::store::DocInfo;
use thiserror::Error;
use tokio::sync::{Mutex as AsyncMutex, Notify, OwnedMutexGuard};

use crate::Reloj;
use crate::db::{Database, DbError};
use crate::proyector::Proyector;

/// Compact a document once it has this many chunks.
pub const COMPACT_AFTER_CHUNKS: i64 = 64;
/// Estimated in-memory bytes per stored byte.
const MEMORY_FACTOR: u64 = 10;

#[derive(Debug, Error)]
pub enum HubError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("stored document {0} does not load: {1}")]
    Corrupt(String, String),
    #[error("automerge rejected the message: {0}")]
    Apply(String),
    #[error("internal task failed: {0}")]
    Join(String),
}

/// A connection's mailbox: which documents changed since it last looked, and ephemeral
/// messages to relay. Bounded by the number of documents and a fixed ephemeral queue.
#[derive(Debug, Default)]
pub struct Inbox {
    pub id: u64,
    dirty: Mutex<HashSet<DocumentId>>,
    ephemeral: Mutex<VecDeque<Message>>,
    pub notify: Notify,
}

const EPHEMERAL_QUEUE: usize = 256;

impl Inbox {
    pub fn new(id: u64) -> Arc<Inbox> {
        Arc::new(Inbox {
            id,
            ..Default::default()
        })
    }

    pub fn take_dirty(&self) -> Vec<DocumentId> {
        self.dirty.lock().expect("inbox lock").drain().collect()
    }

    pub fn take_ephemeral(&self) -> Vec<Message> {
        self.ephemeral
            .lock()
            .expect("inbox lock")
            .drain(..)
            .collect()
    }
}

/// One document of the registry, loaded or not.
pub struct DocEntry {
    pub info: DocInfo,
    /// The zone the document belongs to (a school's zone, or the zone itself).
    pub zona: Option<String>,
    /// The hash of its deterministic genesis change: the one change the genesis actor may write.
    pub genesis: ChangeHash,
    doc: Arc<AsyncMutex<Option<Automerge>>>,
    subscribers: Mutex<Vec<Weak<Inbox>>>,
    last_used: AtomicI64,
    estimated: AtomicU64,
    /// A compaction of this document is running (at most one at a time: each append past the
    /// threshold asks for one, and a fold outside the database lock takes a while).
    compacting: AtomicBool,
}

impl DocEntry {
    pub fn genesis_actor(&self) -> automerge::ActorId {
        genesis_actor(&self.info.id)
    }

    pub fn subscribe(&self, inbox: &Arc<Inbox>) {
        let mut subs = self.subscribers.lock().expect("subscribers lock");
        subs.retain(|w| w.strong_count() > 0);
        if !subs
            .iter()
            .any(|w| w.upgrade().is_some_and(|i| i.id == inbox.id))
        {
            subs.push(Arc::downgrade(inbox));
        }
    }

    fn live_subscribers(&self) -> Vec<Arc<Inbox>> {
        let mut subs = self.subscribers.lock().expect("subscribers lock");
        subs.retain(|w| w.strong_count() > 0);
        subs.iter().filter_map(Weak::upgrade).collect()
    }

    /// Tells every other subscribed connection that the document changed.
    pub fn notify_others(&self, except: u64) {
        for inbox in self.live_subscribers() {
            if inbox.id != except {
                inbox.dirty.lock().expect("inbox lock").insert(self.info.id);
                inbox.notify.notify_one();
            }
        }
    }

    /// Relays an ephemeral message to every other subscribed connection.
    pub fn relay_ephemeral(&self, except: u64, msg: &Message) {
        for inbox in self.live_subscribers() {
            if inbox.id != except {
                let mut q = inbox.ephemeral.lock().expect("inbox lock");
                if q.len() >= EPHEMERAL_QUEUE {
                    q.pop_front();
                }
                q.push_back(msg.clone());
                inbox.notify.notify_one();
            }
        }
    }
}

/// What receiving a sync message did.
pub struct Received {
    pub state: sync::State,
    /// The reply to send (generated after the commit).
    pub reply: Option<sync::Message>,
    /// Changes that were new to the server (and are now durable).
    pub new_changes: usize,
}

pub struct Hub {
    db: Database,
    /// Recomputes the dashboard's projection of each document this hub changes.
    pub proyector: Arc<Proyector>,
    /// The rate and connection limits of this process, made from the configuration on first
    /// use ([`crate::AppState::limites`]).
    pub limites: std::sync::OnceLock<Arc<crate::limites::Limitador>>,
    reloj: Reloj,
    entries: Mutex<HashMap<DocumentId, Arc<DocEntry>>>,
    budget: u64,
    loaded_bytes: AtomicU64,
    pub loaded_docs: AtomicUsize,
    pub evictions: AtomicU64,
}

fn now() -> i64 {
    crate::db::now()
}

impl Hub {
    pub fn new(db: Database, budget: u64) -> Hub {
        Hub::con_reloj(db, budget, Reloj::default())
    }

    /// A hub that dates what it records about documents with `reloj`.
    pub fn con_reloj(db: Database, budget: u64, reloj: Reloj) -> Hub {
        Hub {
            db,
            proyector: Arc::new(Proyector::default()),
            limites: std::sync::OnceLock::new(),
            reloj,
            entries: Mutex::new(HashMap::new()),
            budget,
            loaded_bytes: AtomicU64::new(0),
            loaded_docs: AtomicUsize::new(0),
            evictions: AtomicU64::new(0),
        }
    }

    pub fn db(&self) -> &Database {
        &self.db
    }

    /// The registry entry of a document, or `None` if the server does not know it.
    pub async fn entry(&self, id: &DocumentId) -> Result<Option<Arc<DocEntry>>, HubError> {
        if let Some(e) = self.entries.lock().expect("entries lock").get(id) {
            return Ok(Some(e.clone()));
        }
        let Some(info) = self.db.document(id).await? else {
            return Ok(None);
        };
        let zona = match info.kind {
            DocKind::Escuela => self.db.zona_de_escuela(&info.owner).await?,
            DocKind::Zona => Some(info.owner.clone()),
        };
        let mut g =
            genesis_de(&info).map_err(|e| HubError::Corrupt(id.to_string(), e.to_string()))?;
        let genesis = g
            .get_heads()
            .first()
            .copied()
            .ok_or_else(|| HubError::Corrupt(id.to_string(), "empty genesis".into()))?;
        let entry = Arc::new(DocEntry {
            info,
            zona,
            genesis,
            doc: Arc::new(AsyncMutex::new(None)),
            subscribers: Mutex::new(Vec::new()),
            last_used: AtomicI64::new(now()),
            estimated: AtomicU64::new(0),
            compacting: AtomicBool::new(false),
        });
        let mut entries = self.entries.lock().expect("entries lock");
        Ok(Some(entries.entry(*id).or_insert(entry).clone()))
    }

    /// Locks a document, loading it from the database if needed.
    async fn lock_loaded(
        &self,
        entry: &DocEntry,
    ) -> Result<OwnedMutexGuard<Option<Automerge>>, HubError> {
        let mut guard = entry.doc.clone().lock_owned().await;
        entry.last_used.store(now(), Ordering::Relaxed);
        if guard.is_none() {
            let stored = self.db.load(&entry.info.id).await?;
            let size = stored.snapshot.as_ref().map_or(0, Vec::len) as u64
                + stored.chunks.iter().map(|c| c.len() as u64).sum::<u64>();
            let id = entry.info.id.to_string();
            let doc = tokio::task::spawn_blocking(move || assemble(&stored))
                .await
                .map_err(|e| HubError::Join(e.to_string()))?
                .map_err(|e| HubError::Corrupt(id, e))?;
            *guard = Some(doc);
            let est = size * MEMORY_FACTOR + 64 * 1024;
            entry.estimated.store(est, Ordering::Relaxed);
            self.loaded_bytes.fetch_add(est, Ordering::Relaxed);
            self.loaded_docs.fetch_add(1, Ordering::Relaxed);
        }
        Ok(guard)
    }

    fn unload(&self, entry: &DocEntry, guard: &mut Option<Automerge>) {
        if guard.take().is_some() {
            self.loaded_bytes.fetch_sub(
                entry.estimated.swap(0, Ordering::Relaxed),
                Ordering::Relaxed,
            );
            self.loaded_docs.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Applies a sync message from a peer, makes new changes durable, then generates the reply.
    pub async fn receive(
        &self,
        entry: &Arc<DocEntry>,
        state: sync::State,
        mut msg: sync::Message,
    ) -> Result<Received, HubError> {
        // Peers send their hash lists sorted, but nothing enforces it: automerge copies the
        // peer's heads into the sync state as received and asserts their order when it encodes
        // the reply and the persisted state (a panic in debug builds). Sort them here.
        msg.heads.sort();
        msg.need.sort();
        for h in &mut msg.have {
            h.last_sync.sort();
        }
        let guard = self.lock_loaded(entry).await?;
        let (mut guard, state, applied) = tokio::task::spawn_blocking(move || {
            let mut guard = guard;
            let mut state = state;
            // A panic inside automerge must not release the lock over a half-updated document:
            // catch it here so the caller unloads the document while still holding the lock.
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let doc = guard.as_mut().expect("loaded");
                let before = doc.get_heads();
                doc.receive_sync_message(&mut state, msg).map(|()| {
                    let after = doc.get_heads();
                    if after == before {
                        (Vec::new(), 0)
                    } else {
                        nuevos_desde(doc, &before)
                    }
                })
            }))
            .unwrap_or_else(|_| Err(automerge::AutomergeError::Fail));
            (guard, state, r)
        })
        .await
        .map_err(|e| HubError::Join(e.to_string()))?;
        let (bytes, new_changes) = match applied {
            Ok(v) => v,
            Err(e) => {
                // The document may be half-updated: drop it, the database is the truth.
                self.unload(entry, &mut guard);
                return Err(HubError::Apply(e.to_string()));
            }
        };
        let mut compact = false;
        if !bytes.is_empty() {
            match self.db.append(&entry.info.id, &bytes).await {
                Ok(n) => {
                    compact = n >= COMPACT_AFTER_CHUNKS;
                    self.cambio_durable(entry.info.id);
                }
                Err(e) => {
                    self.unload(entry, &mut guard);
                    return Err(e.into());
                }
            }
            entry
                .estimated
                .fetch_add(bytes.len() as u64 * MEMORY_FACTOR, Ordering::Relaxed);
            self.loaded_bytes
                .fetch_add(bytes.len() as u64 * MEMORY_FACTOR, Ordering::Relaxed);
        }
        let (guard, state, reply) = generate_blocking(guard, state).await?;
        drop(guard);
        if compact {
            self.compact_in_background(entry);
        }
        self.evict_if_needed();
        Ok(Received {
            state,
            reply,
            new_changes,
        })
    }

    /// The next sync message for a peer (after another connection changed the document).
    pub async fn generate(
        &self,
        entry: &Arc<DocEntry>,
        state: sync::State,
    ) -> Result<(sync::State, Option<sync::Message>), HubError> {
        let guard = self.lock_loaded(entry).await?;
        let (_guard, state, reply) = generate_blocking(guard, state).await?;
        Ok((state, reply))
    }

    /// Current heads (loading the document if needed).
    pub async fn heads(&self, entry: &Arc<DocEntry>) -> Result<Vec<ChangeHash>, HubError> {
        let guard = self.lock_loaded(entry).await?;
        Ok(guard.as_ref().map(|d| d.get_heads()).unwrap_or_default())
    }

    /// Applies changes that arrived outside the sync protocol (a bundle), durably, and notifies
    /// subscribed connections. Returns the number of new changes.
    pub async fn apply_changes(
        &self,
        entry: &Arc<DocEntry>,
        data: Vec<u8>,
    ) -> Result<usize, HubError> {
        let guard = self.lock_loaded(entry).await?;
        let (mut guard, r) = tokio::task::spawn_blocking(move || {
            let mut guard = guard;
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let doc = guard.as_mut().expect("loaded");
                let before = doc.get_heads();
                doc.load_incremental(&data)
                    .map(|_| nuevos_desde(doc, &before))
            }))
            .unwrap_or_else(|_| Err(automerge::AutomergeError::Fail));
            (guard, r)
        })
        .await
        .map_err(|e| HubError::Join(e.to_string()))?;
        let (bytes, n) = match r {
            Ok(v) => v,
            Err(e) => {
                self.unload(entry, &mut guard);
                return Err(HubError::Apply(e.to_string()));
            }
        };
        if n > 0
            && let Err(e) = self.db.append(&entry.info.id, &bytes).await
        {
            self.unload(entry, &mut guard);
            return Err(e.into());
        }
        drop(guard);
        if n > 0 {
            self.cambio_durable(entry.info.id);
            entry.notify_others(u64::MAX);
        }
        Ok(n)
    }

    /// After new changes to a document are committed: date them (off the reply path) and queue
    /// the document's projection.
    fn cambio_durable(&self, id: DocumentId) {
        let db = self.db.clone();
        let ts = self.reloj.ahora();
        tokio::spawn(async move {
            if let Err(e) = db.registrar_cambio(&id.to_string(), ts).await {
                tracing::warn!(doc = %id, error = %e, "last change time not recorded");
            }
        });
        self.proyector.marcar(id);
    }

    fn compact_in_background(&self, entry: &Arc<DocEntry>) {
        if entry.compacting.swap(true, Ordering::AcqRel) {
            return;
        }
        let (db, entry) = (self.db.clone(), entry.clone());
        let id = entry.info.id;
        tokio::spawn(async move {
            // The storage contract's compaction: chunks the snapshot does not cover stay.
            let r = bitacora_core::storage::Storage::compact(&db, &id).await;
            entry.compacting.store(false, Ordering::Release);
            if let Err(e) = r {
                tracing::warn!(doc = %id, error = %e, "compaction failed; chunks kept");
            }
        });
    }

    /// Drops the in-memory copy of a document whose stored changes were written behind the hub's
    /// back (a bundle import), so the next use reloads it, and tells subscribed connections.
    pub async fn reload(&self, id: &DocumentId) -> Result<(), HubError> {
        if let Some(entry) = self.entry(id).await? {
            let mut guard = entry.doc.clone().lock_owned().await;
            self.unload(&entry, &mut guard);
            drop(guard);
            self.cambio_durable(*id);
            entry.notify_others(u64::MAX);
        }
        Ok(())
    }

    /// Another server process (or an `admin` command) committed new changes to a document
    /// (`difusion.rs`): drop the in-memory copy if there is one, so the next use reloads it
    /// with them, tell the subscribed connections (each then sends its peer what it lacks), and
    /// queue the projection. Unlike [`Hub::reload`] it records nothing: the writer did.
    pub async fn cambio_externo(&self, id: &DocumentId) {
        let entry = self.entries.lock().expect("entries lock").get(id).cloned();
        if let Some(entry) = entry {
            let mut guard = entry.doc.clone().lock_owned().await;
            self.unload(&entry, &mut guard);
            drop(guard);
            entry.notify_others(u64::MAX);
        }
        self.proyector.marcar(*id);
    }

    /// Announcements from other processes may have been lost: treat every document this hub
    /// knows as changed elsewhere, and every school document as needing its projection.
    pub async fn todo_posiblemente_cambiado(&self) -> Result<(), HubError> {
        let ids: Vec<DocumentId> = self
            .entries
            .lock()
            .expect("entries lock")
            .keys()
            .copied()
            .collect();
        for id in &ids {
            self.cambio_externo(id).await;
        }
        self.proyector.marcar_todos(&self.db).await?;
        Ok(())
    }

    /// Unloads least recently used documents nobody is subscribed to until under budget.
    pub fn evict_if_needed(&self) {
        if self.loaded_bytes.load(Ordering::Relaxed) <= self.budget {
            return;
        }
        let mut candidates: Vec<Arc<DocEntry>> = self
            .entries
            .lock()
            .expect("entries lock")
            .values()
            .filter(|e| e.estimated.load(Ordering::Relaxed) > 0 && e.live_subscribers().is_empty())
            .cloned()
            .collect();
        candidates.sort_by_key(|e| e.last_used.load(Ordering::Relaxed));
        for e in candidates {
            if self.loaded_bytes.load(Ordering::Relaxed) <= self.budget {
                break;
            }
            if let Ok(mut g) = e.doc.clone().try_lock_owned() {
                self.unload(&e, &mut g);
                self.evictions.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub fn loaded_bytes(&self) -> u64 {
        self.loaded_bytes.load(Ordering::Relaxed)
    }
}

/// The changes since `before`, as `save_after(before)` would write them, and how many, in one
/// pass: automerge 0.12 rebuilds changes from its op set on every `get_changes` (which
/// `save_after` calls too), so counting and saving separately did that work twice
/// (docs/performance.md).
fn nuevos_desde(doc: &Automerge, before: &[ChangeHash]) -> (Vec<u8>, usize) {
    let changes = doc.get_changes(before);
    let mut bytes = Vec::with_capacity(changes.iter().map(|c| c.raw_bytes().len()).sum());
    for c in &changes {
        bytes.extend_from_slice(c.raw_bytes());
    }
    (bytes, changes.len())
}

async fn generate_blocking(
    guard: OwnedMutexGuard<Option<Automerge>>,
    state: sync::State,
) -> Result<
    (
        OwnedMutexGuard<Option<Automerge>>,
        sync::State,
        Option<sync::Message>,
    ),
    HubError,
> {
    tokio::task::spawn_blocking(move || {
        let mut state = state;
        let reply = guard
            .as_ref()
            .and_then(|d| d.generate_sync_message(&mut state));
        (guard, state, reply)
    })
    .await
    .map_err(|e| HubError::Join(e.to_string()))
}

/// Builds a document from its snapshot and chunks (the storage contract's own).
pub use bitacora_core::storage::assemble;

#[cfg(test)]
mod tests {
    use automerge::transaction::Transactable;
    use automerge::{Automerge, ROOT};

    #[test]
    fn nuevos_desde_is_save_after_in_one_pass() {
        let mut doc = Automerge::new();
        let mut tx = doc.transaction();
        tx.put(ROOT, "a", 1).unwrap();
        tx.commit();
        let before = doc.get_heads();
        for i in 0..3 {
            let mut tx = doc.transaction();
            tx.put(ROOT, "b", i).unwrap();
            tx.commit();
        }
        let (bytes, n) = super::nuevos_desde(&doc, &before);
        assert_eq!(n, 3);
        assert_eq!(bytes, doc.save_after(&before));
        assert_eq!(super::nuevos_desde(&doc, &doc.get_heads()), (Vec::new(), 0));
    }
}
