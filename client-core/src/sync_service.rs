//! The sync service: the accepting side of the automerge-repo sync protocol over any replica's
//! storage ([`Storage`]), so a replica that is not the zone server (a laptop, a school hub) can
//! serve sync to other replicas (brief §4, "Replicas"; issue 12).
//!
//! Per connection: the handshake and routing of [`Session`] (acceptor role); for each `sync` or
//! `request` of a document the storage holds, under that document's lock:
//! 1. apply the message to the loaded document on the blocking pool,
//! 2. append the new changes to the storage and wait until they are durable,
//! 3. only then generate the reply (whose heads tell the peer its changes are confirmed) and
//!    tell the other connections syncing the document, which each send their peer what it lacks.
//!
//! If the append fails, the in-memory document (which already holds the changes) is dropped and
//! reloaded from the storage on next use, so nothing unconfirmed is ever served. Whoever writes
//! to the storage behind the service's back calls [`SyncService::reload`]; a connection that is
//! the only one syncing a document also starts from what is stored. A document the
//! storage does not hold gets `doc-unavailable`: peers cannot create documents. Sync states are
//! restored per (peer storage id, document) and saved when the connection ends.
//!
//! What it does not do (the zone server's `connection.rs` and `hub.rs` do, over their own
//! database, and a school hub will add what it needs): authentication and access control,
//! actor binding, ephemeral relay, rate limits, memory budget. Use it only where every peer may
//! read and write every document the storage holds.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use automerge::Automerge;
use automerge::sync::SyncDoc;
use futures_util::{SinkExt, StreamExt};
use thiserror::Error;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex as AsyncMutex, mpsc, watch};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::ids::DocumentId;
use crate::protocol::{Inbound, Message, PeerId, PeerMetadata, ProtocolError, Role, Session};
use crate::storage::{Storage, assemble};

use crate::storage::COMPACT_AFTER_CHUNKS;

#[derive(Debug, Error)]
pub enum ServiceError {
    #[error("storage: {0}")]
    Storage(String),
    #[error("stored document {0} does not load: {1}")]
    Corrupt(DocumentId, String),
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    #[error("internal task failed: {0}")]
    Join(String),
}

/// One document the service has loaded, shared by its connections.
struct Slot {
    doc: Arc<AsyncMutex<Option<Automerge>>>,
    /// Connections syncing this document: their id and their mailbox of changed documents.
    subscribers: Mutex<Vec<(u64, mpsc::UnboundedSender<DocumentId>)>>,
}

impl Slot {
    /// Subscribes a connection; returns whether other live connections sync the document.
    fn subscribe(&self, conn: u64, tx: &mpsc::UnboundedSender<DocumentId>) -> bool {
        let mut s = self.subscribers.lock().unwrap_or_else(|p| p.into_inner());
        s.retain(|(_, t)| !t.is_closed());
        if !s.iter().any(|(c, _)| *c == conn) {
            s.push((conn, tx.clone()));
        }
        s.iter().any(|(c, _)| *c != conn)
    }

    fn notify_others(&self, conn: u64, id: DocumentId) {
        let s = self.subscribers.lock().unwrap_or_else(|p| p.into_inner());
        for (c, tx) in s.iter() {
            if *c != conn {
                let _ = tx.send(id);
            }
        }
    }
}

/// The sync service of one replica (module docs).
pub struct SyncService<S> {
    storage: Arc<S>,
    peer_id: PeerId,
    metadata: PeerMetadata,
    slots: Mutex<HashMap<DocumentId, Arc<Slot>>>,
    next_conn: AtomicU64,
}

impl<S: Storage + 'static> SyncService<S> {
    /// A service over `storage`, announcing `peer_id` and `storage_id` in its handshakes.
    pub fn new(storage: Arc<S>, peer_id: PeerId, storage_id: String) -> Arc<SyncService<S>> {
        Arc::new(SyncService {
            storage,
            peer_id,
            metadata: PeerMetadata {
                storage_id: Some(storage_id),
                is_ephemeral: false,
            },
            slots: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(1),
        })
    }

    pub fn storage(&self) -> &Arc<S> {
        &self.storage
    }

    /// Changes were written to the storage behind the service's back (this replica's own
    /// upstream sync, a bundle import, the device's own edits): drop the cached copy, so the
    /// next use reloads it, and tell the connections syncing the document, which each send
    /// their peer what it lacks.
    pub async fn reload(&self, id: &DocumentId) {
        let slot = self
            .slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned();
        if let Some(slot) = slot {
            *slot.doc.lock().await = None;
            // Connection ids start at 1: 0 tells every connection.
            slot.notify_others(0, *id);
        }
    }

    /// Accepts WebSocket connections on `listener` (any path) until `shutdown` turns true.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            tokio::select! {
                r = listener.accept() => match r {
                    Ok((stream, _)) => {
                        let svc = self.clone();
                        tokio::spawn(async move {
                            if let Err(e) = svc.connection(stream).await {
                                tracing::debug!(error = %e, "sync connection ended");
                            }
                        });
                    }
                    Err(e) => tracing::warn!(error = %e, "accept failed"),
                },
                _ = shutdown.changed() => return,
            }
        }
    }

    /// The document's slot, loading nothing yet; `None` if the storage does not hold it.
    async fn slot(&self, id: &DocumentId) -> Result<Option<Arc<Slot>>, ServiceError> {
        if let Some(s) = self.slots.lock().unwrap_or_else(|p| p.into_inner()).get(id) {
            return Ok(Some(s.clone()));
        }
        if self
            .storage
            .document(id)
            .await
            .map_err(|e| ServiceError::Storage(e.to_string()))?
            .is_none()
        {
            return Ok(None);
        }
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        Ok(Some(
            slots
                .entry(*id)
                .or_insert_with(|| {
                    Arc::new(Slot {
                        doc: Arc::new(AsyncMutex::new(None)),
                        subscribers: Mutex::new(Vec::new()),
                    })
                })
                .clone(),
        ))
    }

    /// Locks a document, loading it from the storage if needed.
    async fn lock_loaded(
        &self,
        id: &DocumentId,
        slot: &Slot,
    ) -> Result<tokio::sync::OwnedMutexGuard<Option<Automerge>>, ServiceError> {
        let mut guard = slot.doc.clone().lock_owned().await;
        if guard.is_none() {
            let stored = self
                .storage
                .load(id)
                .await
                .map_err(|e| ServiceError::Storage(e.to_string()))?
                .unwrap_or_default();
            let id2 = *id;
            let doc = tokio::task::spawn_blocking(move || assemble(&stored))
                .await
                .map_err(|e| ServiceError::Join(e.to_string()))?
                .map_err(|e| ServiceError::Corrupt(id2, e))?;
            *guard = Some(doc);
        }
        Ok(guard)
    }

    /// Serves one WebSocket connection to its end.
    pub async fn connection(self: Arc<Self>, stream: TcpStream) -> Result<(), ServiceError> {
        let ws = tokio_tungstenite::accept_async(stream)
            .await
            .map_err(|e| ServiceError::Storage(format!("websocket handshake: {e}")))?;
        let (mut tx, mut rx) = ws.split();
        let conn = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let (buzon_tx, mut buzon) = mpsc::unbounded_channel::<DocumentId>();
        let mut session = Session::new(Role::Acceptor, self.peer_id.clone(), self.metadata.clone());
        let mut restored: std::collections::HashSet<DocumentId> = Default::default();
        let r: Result<(), ServiceError> = async {
            loop {
                let frame = tokio::select! {
                    f = rx.next() => match f {
                        Some(Ok(WsMessage::Binary(b))) => b.to_vec(),
                        Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => return Ok(()),
                        Some(Ok(_)) => continue,
                    },
                    Some(id) = buzon.recv() => {
                        // Another connection changed a document this peer syncs.
                        if let Some(slot) = self.slot(&id).await? {
                            let guard = self.lock_loaded(&id, &slot).await?;
                            let state = session.take_state(&id);
                            let (guard, state, msg) = generar(guard, state).await?;
                            drop(guard);
                            session.put_state(id, state);
                            if let Some(m) = msg {
                                let m = session.wrap(id, m);
                                if !enviar(&mut tx, m).await {
                                    return Ok(());
                                }
                            }
                        }
                        continue;
                    }
                };
                let inbound = match session.receive_frame(&frame) {
                    Ok(i) => i,
                    Err(e) => {
                        let _ = enviar(&mut tx, Message::Error { message: e.to_string() }).await;
                        return Err(e.into());
                    }
                };
                match inbound {
                    Inbound::Reply(m) => {
                        if !enviar(&mut tx, m).await {
                            return Ok(());
                        }
                    }
                    Inbound::Sync { document_id: id, data, .. } => {
                        let Some(slot) = self.slot(&id).await? else {
                            let m = session.unavailable(id);
                            if !enviar(&mut tx, m).await {
                                return Ok(());
                            }
                            continue;
                        };
                        let acompanado = slot.subscribe(conn, &buzon_tx);
                        let primera_vez = restored.insert(id);
                        if primera_vez && !acompanado {
                            // Nobody else keeps the cached copy current: start this peer from
                            // what is stored (another writer, such as this replica's own
                            // upstream sync, may have added changes).
                            *slot.doc.lock().await = None;
                        }
                        if primera_vez
                            && let Some(peer) = session.peer_storage_id().map(str::to_string)
                            && let Some(s) = self
                                .storage
                                .load_sync_state(&peer, &id)
                                .await
                                .map_err(|e| ServiceError::Storage(e.to_string()))?
                        {
                            session.restore_state(id, &s);
                        }
                        let mut msg = Session::decode_sync(&data)?;
                        // automerge asserts the order of hash lists it copies into its state.
                        msg.heads.sort();
                        msg.need.sort();
                        for h in &mut msg.have {
                            h.last_sync.sort();
                        }
                        let guard = self.lock_loaded(&id, &slot).await?;
                        let state = session.take_state(&id);
                        let (mut guard, state, applied) = tokio::task::spawn_blocking(move || {
                            let (mut guard, mut state) = (guard, state);
                            let r = crate::protocol::changes::sin_panico(|| {
                                let doc = guard.as_mut().expect("loaded");
                                let before = doc.get_heads();
                                doc.receive_sync_message(&mut state, msg).map(|()| {
                                    let changes = doc.get_changes(&before);
                                    let mut bytes = Vec::new();
                                    for c in &changes {
                                        bytes.extend_from_slice(c.raw_bytes());
                                    }
                                    bytes
                                })
                            });
                            (guard, state, r)
                        })
                        .await
                        .map_err(|e| ServiceError::Join(e.to_string()))?;
                        session.put_state(id, state);
                        let bytes = match applied {
                            Ok(Ok(b)) => b,
                            Ok(Err(e)) => {
                                *guard = None;
                                let _ = enviar(&mut tx, Message::Error { message: e.to_string() }).await;
                                return Err(ProtocolError::Apply(e.to_string()).into());
                            }
                            Err(e) => {
                                *guard = None;
                                let _ = enviar(&mut tx, Message::Error { message: e.clone() }).await;
                                return Err(ProtocolError::Apply(e).into());
                            }
                        };
                        if !bytes.is_empty() {
                            // Durable before we answer.
                            match self.storage.append(&id, &bytes).await {
                                Ok(n) if n >= COMPACT_AFTER_CHUNKS => {
                                    let storage = self.storage.clone();
                                    tokio::spawn(async move {
                                        if let Err(e) = storage.compact(&id).await {
                                            tracing::warn!(doc = %id, error = %e, "compaction failed; chunks kept");
                                        }
                                    });
                                }
                                Ok(_) => {}
                                Err(e) => {
                                    *guard = None;
                                    return Err(ServiceError::Storage(e.to_string()));
                                }
                            }
                        }
                        let state = session.take_state(&id);
                        let (guard, state, reply) = generar(guard, state).await?;
                        drop(guard);
                        session.put_state(id, state);
                        if !bytes.is_empty() {
                            slot.notify_others(conn, id);
                        }
                        if let Some(m) = reply {
                            let m = session.wrap(id, m);
                            if !enviar(&mut tx, m).await {
                                return Ok(());
                            }
                        }
                    }
                    Inbound::Leave | Inbound::PeerError(_) => return Ok(()),
                    Inbound::Ready
                    | Inbound::Unavailable { .. }
                    | Inbound::Ephemeral { .. }
                    | Inbound::Ignore => {}
                }
            }
        }
        .await;
        // Save what each document's sync state learned, for a shorter next sync.
        if let Some(peer) = session.peer_storage_id().map(str::to_string) {
            let ids: Vec<DocumentId> = session.documents().copied().collect();
            for id in ids {
                if let Some(s) = session.encode_state(&id) {
                    let _ = self.storage.save_sync_state(&peer, &id, &s).await;
                }
            }
        }
        let _ = tx.close().await;
        r
    }
}

type Guard = tokio::sync::OwnedMutexGuard<Option<Automerge>>;
type WsSink =
    futures_util::stream::SplitSink<tokio_tungstenite::WebSocketStream<TcpStream>, WsMessage>;

/// Sends one message; false when the connection is gone.
async fn enviar(tx: &mut WsSink, m: Message) -> bool {
    tx.send(WsMessage::Binary(m.encode().into())).await.is_ok()
}

/// The next sync message for a peer, generated on the blocking pool.
async fn generar(
    guard: Guard,
    state: automerge::sync::State,
) -> Result<
    (
        Guard,
        automerge::sync::State,
        Option<automerge::sync::Message>,
    ),
    ServiceError,
> {
    tokio::task::spawn_blocking(move || {
        let mut state = state;
        let msg = guard
            .as_ref()
            .and_then(|d| d.generate_sync_message(&mut state));
        (guard, state, msg)
    })
    .await
    .map_err(|e| ServiceError::Join(e.to_string()))
}
