//! The storage contract of a replica: what a laptop, a school hub and the zone server each keep
//! of the documents they hold, behind one small trait ([`Storage`]), so one sync core can run
//! over any of them (docs/architecture.md, "Replicas").
//!
//! A document is stored as at most one snapshot (a compacted `save()`) plus append-only change
//! chunks (each the bytes of one or more automerge changes, or a whole saved document). Per peer
//! and document, the replica keeps the automerge sync state it last had with that peer; and it
//! has one actor id of its own, for the changes it makes.
//!
//! Implementations: the laptop's SQLite store ([`crate::store::Store`]), the zone server's
//! SQLite/PostgreSQL database (`bitacora_server::db::Database`), and [`MemoryStorage`], used by
//! property tests and fuzz targets. `tests/tests/storage_contract.rs` runs the same contract
//! against all of them.
//!
//! # What each call guarantees
//!
//! Under concurrent use (several tasks, or several processes on one database):
//! - [`Storage::append`] is durable when it returns (a killed process or a power cut after it
//!   returns loses nothing) and idempotent (the same bytes twice store one chunk). Concurrent
//!   appends never overwrite each other; a later [`Storage::load`] returns all of them.
//! - [`Storage::load`] returns the snapshot and the chunks as they were at one moment: a
//!   compaction committing while it reads can neither hide a chunk (folded into a snapshot the
//!   load does not see) nor show it twice in a way that matters (a chunk and a snapshot holding
//!   the same change load as that change once).
//! - [`Storage::compact`] folds the snapshot and the chunks it read into a new snapshot with
//!   [`fold`] and deletes exactly the chunks whose every change the new snapshot holds: a chunk
//!   appended while it folded stays, and so does a chunk with a change whose dependencies are
//!   not stored (automerge keeps such a change aside and `save()` leaves it out). If it fails or
//!   the process dies, nothing is lost: the old snapshot and every chunk are still there.
//! - Registering a document is idempotent: its genesis is deterministic.
//! - Sync states are last-writer-wins per (peer, document): they are hints that make the next
//!   sync shorter, never the truth about what a peer holds.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Mutex;

use std::str::FromStr;

use automerge::{ActorId, Automerge, ChangeHash};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::ids::DocumentId;
use crate::model::DocInfo;
use crate::protocol::changes::{autorias, sin_panico};

/// Replicas compact a document once it has this many chunks.
pub const COMPACT_AFTER_CHUNKS: u64 = 64;

/// Heads as stored and shown: hex hashes joined by commas.
pub fn hex_heads(heads: &[ChangeHash]) -> String {
    heads
        .iter()
        .map(|h| h.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// [`hex_heads`] read back (unreadable hashes are skipped).
pub fn parse_heads(s: &str) -> Vec<ChangeHash> {
    s.split(',')
        .filter_map(|h| ChangeHash::from_str(h.trim()).ok())
        .collect()
}

/// A document as stored: its snapshot, if any, and its chunks in append order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stored {
    pub snapshot: Option<Vec<u8>>,
    pub chunks: Vec<Vec<u8>>,
}

/// What [`fold`] makes of a stored document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folded {
    /// The new snapshot: `save()` of the whole document.
    pub snapshot: Vec<u8>,
    /// Its heads.
    pub heads: Vec<ChangeHash>,
    /// For each chunk given, whether the new snapshot holds every change in it (only those may
    /// be deleted).
    pub covered: Vec<bool>,
}

/// Builds a document from its snapshot and chunks (a change whose dependencies are missing is
/// kept aside by automerge, not applied).
pub fn assemble(stored: &Stored) -> Result<Automerge, String> {
    sin_panico(|| {
        let mut doc = match &stored.snapshot {
            Some(s) => Automerge::load(s).map_err(|e| e.to_string())?,
            None => Automerge::new(),
        };
        for c in &stored.chunks {
            doc.load_incremental(c).map_err(|e| e.to_string())?;
        }
        Ok(doc)
    })?
}

/// Folds a stored document into one snapshot, and tells which chunks it covers. CPU-bound: a
/// full school cycle takes a fraction of a second, so async callers run it on the blocking pool.
pub fn fold(stored: &Stored) -> Result<Folded, String> {
    let doc = assemble(stored)?;
    let covered = stored
        .chunks
        .iter()
        .map(|c| match autorias(c) {
            Ok(changes) => changes
                .iter()
                .all(|a| doc.get_change_meta_by_hash(&a.hash).is_some()),
            // A chunk we cannot read is never deleted.
            Err(_) => false,
        })
        .collect();
    Ok(Folded {
        snapshot: doc.save(),
        heads: doc.get_heads(),
        covered,
    })
}

/// The storage of a replica (module docs: what each call guarantees).
pub trait Storage: Send + Sync {
    type Error: std::error::Error + Send + Sync + 'static;

    /// The documents this replica holds.
    fn documents(&self) -> impl Future<Output = Result<Vec<DocInfo>, Self::Error>> + Send;

    /// One document's registry data, `None` if the replica does not hold it.
    fn document(
        &self,
        id: &DocumentId,
    ) -> impl Future<Output = Result<Option<DocInfo>, Self::Error>> + Send;

    /// Registers a document with its (deterministic) genesis bytes. Idempotent.
    fn register(
        &self,
        info: &DocInfo,
        genesis: &[u8],
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// The stored parts of a document, read at one moment; `None` if it is not registered.
    fn load(
        &self,
        id: &DocumentId,
    ) -> impl Future<Output = Result<Option<Stored>, Self::Error>> + Send;

    /// Appends a chunk to a registered document; durable and idempotent. Returns how many chunks
    /// the document now has (the caller compacts past a threshold).
    fn append(
        &self,
        id: &DocumentId,
        chunk: &[u8],
    ) -> impl Future<Output = Result<u64, Self::Error>> + Send;

    /// Folds the snapshot and the chunks into a new snapshot ([`fold`]) and deletes exactly the
    /// chunks it covers.
    fn compact(&self, id: &DocumentId) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Stores the sync state this replica has with `peer` (its storage id) for a document.
    fn save_sync_state(
        &self,
        peer: &str,
        id: &DocumentId,
        state: &[u8],
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// The sync state stored for `peer` and a document, if any.
    fn load_sync_state(
        &self,
        peer: &str,
        id: &DocumentId,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, Self::Error>> + Send;

    /// This replica's own actor id: made once, then always the same.
    fn actor(&self) -> impl Future<Output = Result<ActorId, Self::Error>> + Send;

    /// This replica's storage id for the sync protocol (peers keep their sync state with it
    /// under this id): made once, then always the same.
    fn storage_id(&self) -> impl Future<Output = Result<String, Self::Error>> + Send;

    /// A marker of a document's stored state that changes whenever an append or a compaction
    /// changes it, so a reader can notice other writers without loading the document. Equal
    /// markers mean nothing changed; a document it does not hold is `(0, 0)`.
    fn version(
        &self,
        id: &DocumentId,
    ) -> impl Future<Output = Result<(i64, i64), Self::Error>> + Send;
}

/// A shared storage is the same storage.
impl<T: Storage + ?Sized> Storage for std::sync::Arc<T> {
    type Error = T::Error;

    async fn documents(&self) -> Result<Vec<DocInfo>, T::Error> {
        (**self).documents().await
    }

    async fn document(&self, id: &DocumentId) -> Result<Option<DocInfo>, T::Error> {
        (**self).document(id).await
    }

    async fn register(&self, info: &DocInfo, genesis: &[u8]) -> Result<(), T::Error> {
        (**self).register(info, genesis).await
    }

    async fn load(&self, id: &DocumentId) -> Result<Option<Stored>, T::Error> {
        (**self).load(id).await
    }

    async fn append(&self, id: &DocumentId, chunk: &[u8]) -> Result<u64, T::Error> {
        (**self).append(id, chunk).await
    }

    async fn compact(&self, id: &DocumentId) -> Result<(), T::Error> {
        (**self).compact(id).await
    }

    async fn save_sync_state(
        &self,
        peer: &str,
        id: &DocumentId,
        state: &[u8],
    ) -> Result<(), T::Error> {
        (**self).save_sync_state(peer, id, state).await
    }

    async fn load_sync_state(
        &self,
        peer: &str,
        id: &DocumentId,
    ) -> Result<Option<Vec<u8>>, T::Error> {
        (**self).load_sync_state(peer, id).await
    }

    async fn actor(&self) -> Result<ActorId, T::Error> {
        (**self).actor().await
    }

    async fn storage_id(&self) -> Result<String, T::Error> {
        (**self).storage_id().await
    }

    async fn version(&self, id: &DocumentId) -> Result<(i64, i64), T::Error> {
        (**self).version(id).await
    }
}

/// What [`MemoryStorage`] refuses.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum MemoryError {
    #[error("document {0} is not registered")]
    Unknown(DocumentId),
    #[error("stored document {0} does not load: {1}")]
    Corrupt(DocumentId, String),
}

#[derive(Debug, Default)]
struct MemoryDoc {
    info: Option<DocInfo>,
    snapshot: Option<Vec<u8>>,
    /// Chunks by append sequence, with their hash (for idempotence).
    chunks: BTreeMap<u64, ([u8; 32], Vec<u8>)>,
    /// Appends of new chunks and compactions so far ([`Storage::version`]).
    appends: i64,
    compactions: i64,
}

#[derive(Debug, Default)]
struct MemoryInner {
    docs: BTreeMap<DocumentId, MemoryDoc>,
    next_seq: u64,
    sync_states: HashMap<(String, DocumentId), Vec<u8>>,
    actor: Option<ActorId>,
    storage_id: Option<String>,
}

/// A replica's storage in memory: the contract without a database, for property tests and fuzz
/// targets. Every call holds one lock, so each is atomic; nothing survives the process.
#[derive(Debug, Default)]
pub struct MemoryStorage {
    inner: Mutex<MemoryInner>,
}

impl MemoryStorage {
    pub fn new() -> MemoryStorage {
        MemoryStorage::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut MemoryInner) -> T) -> T {
        // A panic while holding the lock leaves the maps consistent (every mutation is one
        // insert or one removal), so a poisoned lock is still usable.
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }
}

impl Storage for MemoryStorage {
    type Error = MemoryError;

    async fn documents(&self) -> Result<Vec<DocInfo>, MemoryError> {
        Ok(self.with(|m| m.docs.values().filter_map(|d| d.info.clone()).collect()))
    }

    async fn document(&self, id: &DocumentId) -> Result<Option<DocInfo>, MemoryError> {
        Ok(self.with(|m| m.docs.get(id).and_then(|d| d.info.clone())))
    }

    async fn register(&self, info: &DocInfo, genesis: &[u8]) -> Result<(), MemoryError> {
        self.with(|m| {
            let seq = m.next_seq;
            let d = m.docs.entry(info.id).or_default();
            if d.info.is_none() {
                d.info = Some(info.clone());
            }
            let hash: [u8; 32] = Sha256::digest(genesis).into();
            if !d.chunks.values().any(|(h, _)| *h == hash) && d.snapshot.is_none() {
                d.chunks.insert(seq, (hash, genesis.to_vec()));
                m.next_seq += 1;
            }
        });
        Ok(())
    }

    async fn load(&self, id: &DocumentId) -> Result<Option<Stored>, MemoryError> {
        Ok(self.with(|m| {
            m.docs.get(id).filter(|d| d.info.is_some()).map(|d| Stored {
                snapshot: d.snapshot.clone(),
                chunks: d.chunks.values().map(|(_, c)| c.clone()).collect(),
            })
        }))
    }

    async fn append(&self, id: &DocumentId, chunk: &[u8]) -> Result<u64, MemoryError> {
        self.with(|m| {
            let seq = m.next_seq;
            let d = m
                .docs
                .get_mut(id)
                .filter(|d| d.info.is_some())
                .ok_or(MemoryError::Unknown(*id))?;
            let hash: [u8; 32] = Sha256::digest(chunk).into();
            if !chunk.is_empty() && !d.chunks.values().any(|(h, _)| *h == hash) {
                d.chunks.insert(seq, (hash, chunk.to_vec()));
                d.appends += 1;
                m.next_seq += 1;
            }
            Ok(d.chunks.len() as u64)
        })
    }

    async fn compact(&self, id: &DocumentId) -> Result<(), MemoryError> {
        // Read, fold outside the lock (as the databases do), then write back only if nothing
        // else compacted meanwhile; chunks appended meanwhile have higher sequence numbers.
        let Some((snapshot, chunks)) = self.with(|m| {
            m.docs.get(id).filter(|d| d.info.is_some()).map(|d| {
                (
                    d.snapshot.clone(),
                    d.chunks
                        .iter()
                        .map(|(s, (_, c))| (*s, c.clone()))
                        .collect::<Vec<_>>(),
                )
            })
        }) else {
            return Err(MemoryError::Unknown(*id));
        };
        if chunks.is_empty() || (chunks.len() < 2 && snapshot.is_some()) {
            return Ok(());
        }
        let stored = Stored {
            snapshot: snapshot.clone(),
            chunks: chunks.iter().map(|(_, c)| c.clone()).collect(),
        };
        let folded = fold(&stored).map_err(|e| MemoryError::Corrupt(*id, e))?;
        self.with(|m| {
            let Some(d) = m.docs.get_mut(id) else {
                return;
            };
            if d.snapshot != snapshot {
                // Another compaction folded these chunks first.
                return;
            }
            d.snapshot = Some(folded.snapshot);
            d.compactions += 1;
            for ((seq, _), covered) in chunks.iter().zip(&folded.covered) {
                if *covered {
                    d.chunks.remove(seq);
                }
            }
        });
        Ok(())
    }

    async fn save_sync_state(
        &self,
        peer: &str,
        id: &DocumentId,
        state: &[u8],
    ) -> Result<(), MemoryError> {
        self.with(|m| {
            m.sync_states
                .insert((peer.to_string(), *id), state.to_vec())
        });
        Ok(())
    }

    async fn load_sync_state(
        &self,
        peer: &str,
        id: &DocumentId,
    ) -> Result<Option<Vec<u8>>, MemoryError> {
        Ok(self.with(|m| m.sync_states.get(&(peer.to_string(), *id)).cloned()))
    }

    async fn actor(&self) -> Result<ActorId, MemoryError> {
        Ok(self.with(|m| m.actor.get_or_insert_with(ActorId::random).clone()))
    }

    async fn storage_id(&self) -> Result<String, MemoryError> {
        Ok(self.with(|m| {
            m.storage_id
                .get_or_insert_with(|| format!("memoria-{:032x}", rand::random::<u128>()))
                .clone()
        }))
    }

    async fn version(&self, id: &DocumentId) -> Result<(i64, i64), MemoryError> {
        Ok(self.with(|m| {
            m.docs
                .get(id)
                .map_or((0, 0), |d| (d.appends, d.compactions))
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::transaction::Transactable;
    use automerge::{AutoCommit, ROOT};

    #[test]
    fn fold_keeps_a_chunk_whose_dependencies_are_missing() {
        let mut doc = AutoCommit::new();
        doc.put(ROOT, "a", 1).unwrap();
        doc.commit();
        let first = doc.save();
        let h1 = doc.get_heads();
        doc.put(ROOT, "b", 2).unwrap();
        doc.commit();
        let h2 = doc.get_heads();
        let second = doc.save_after(&h1);
        doc.put(ROOT, "c", 3).unwrap();
        doc.commit();
        let third = doc.save_after(&h2);
        // The third change arrives without the second: automerge keeps it aside.
        let f = fold(&Stored {
            snapshot: None,
            chunks: vec![first.clone(), third.clone()],
        })
        .unwrap();
        assert_eq!(f.covered, vec![true, false]);
        // Once the second is there, everything is covered.
        let f = fold(&Stored {
            snapshot: None,
            chunks: vec![first, third, second],
        })
        .unwrap();
        assert_eq!(f.covered, vec![true, true, true]);
        assert_eq!(f.heads, doc.get_heads());
    }

    #[test]
    fn an_unreadable_chunk_is_never_covered() {
        let f = fold(&Stored {
            snapshot: None,
            chunks: vec![],
        })
        .unwrap();
        assert!(f.covered.is_empty());
        assert!(
            fold(&Stored {
                snapshot: None,
                chunks: vec![b"not automerge".to_vec()],
            })
            .is_err()
        );
    }
}
