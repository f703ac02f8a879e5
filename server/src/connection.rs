//! One WebSocket connection: the socket loop that drives a protocol [`Session`] for an
//! authenticated principal. Access is checked per document before anything is read or written;
//! the authors of incoming changes are checked against the actors enrolled to the document's
//! school or zone before they are applied.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::ws::{Message as WsMessage, WebSocket};
use bitacora_core::ids::DocumentId;
use bitacora_core::protocol::changes::autorias;
use bitacora_core::protocol::{Inbound, Message, PeerId, PeerMetadata, Role, Session};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::AppState;
use crate::auth::{Acceso, Principal, acceso};
use crate::db::Auditoria;
use crate::hub::{DocEntry, Inbox};
use crate::limites::Conexion;
use crate::metrics::Envio;

static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

/// Why a connection is being closed after sending an `error`.
pub(crate) struct Fatal(pub(crate) String);

/// An internal failure: logged in full, reported to the peer without details.
fn internal(e: impl std::fmt::Display) -> Fatal {
    tracing::error!(error = %e, "internal error on a sync connection");
    Fatal(format!("internal server error; {NOTHING_CONFIRMED}"))
}

/// How every `error` for a server-side failure ends (a refusal by the rules never says it);
/// the metrics tell the two apart by it.
pub(crate) const NOTHING_CONFIRMED: &str = "nothing was confirmed";

/// One connection's state; [`run`] feeds it frames from the socket ([`crate::fuzzing`] without
/// one).
pub(crate) struct Conn {
    state: AppState,
    principal: Principal,
    session: Session,
    inbox: Arc<Inbox>,
    /// Documents this connection has been granted, with the access level.
    granted: HashMap<DocumentId, (Arc<DocEntry>, Acceso)>,
    /// Every document this connection has named, granted or not (`limits.max_docs_per_peer`).
    named: HashSet<DocumentId>,
    /// Actors already verified for a document on this connection.
    actors_ok: HashMap<(DocumentId, automerge::ActorId), bool>,
    /// This connection's share of the metrics (open while it lives).
    medidas: crate::metrics::ConnMetrics,
}

/// The metrics' outcome of one `sync` message.
fn recibido(r: &Result<Vec<Message>, Fatal>) -> crate::metrics::Recibido {
    use crate::metrics::Recibido;
    let no_disponible = |m: &Message| matches!(m, Message::DocUnavailable { .. });
    match r {
        Ok(m) if m.iter().any(no_disponible) => Recibido::NoDisponible,
        Ok(_) => Recibido::Aplicado,
        Err(Fatal(m)) if m.ends_with(NOTHING_CONFIRMED) => Recibido::Fallido,
        Err(_) => Recibido::Rechazado,
    }
}

/// Serves one upgraded socket until either side ends it. `limite` is this connection's place in
/// the rate and connection limits; every frame the peer sends counts against it.
pub async fn run(
    socket: WebSocket,
    state: AppState,
    principal: Principal,
    limite: Conexion,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conn = Conn::new(state, principal);
    let id = conn.inbox.id;
    let (mut tx, mut rx) = socket.split();
    let ping_every = Duration::from_secs(conn.state.config.ping_interval_secs.max(1));
    let idle = Duration::from_secs(conn.state.config.idle_timeout_secs.max(2));
    let mut ping = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
    let mut last_seen = Instant::now();
    tracing::debug!(conn = id, usuario = %conn.principal.usuario, "connection open");

    let outcome: Result<(), Fatal> = loop {
        tokio::select! {
            frame = rx.next() => {
                let Some(Ok(frame)) = frame else { break Ok(()) };
                last_seen = Instant::now();
                if let Err(e) = limite.mensaje() {
                    break Err(Fatal(e.to_string()));
                }
                let out = match frame {
                    WsMessage::Binary(b) => {
                        conn.medidas.entrada(b.len());
                        conn.on_frame(&b).await
                    }
                    WsMessage::Text(_) => Err(Fatal("text frames are not part of the protocol; send CBOR in binary frames".into())),
                    WsMessage::Close(_) => break Ok(()),
                    WsMessage::Ping(_) | WsMessage::Pong(_) => Ok(Vec::new()),
                };
                match out {
                    Ok(msgs) => {
                        if send_all(&mut tx, msgs, &conn.medidas, Envio::Respuesta).await.is_err() { break Ok(()) }
                    }
                    Err(f) => break Err(f),
                }
            }
            _ = conn.inbox.notify.notified() => {
                let msgs = conn.on_notified().await;
                if send_all(&mut tx, msgs, &conn.medidas, Envio::Aviso).await.is_err() { break Ok(()) }
            }
            _ = ping.tick() => {
                if last_seen.elapsed() > idle {
                    tracing::debug!(conn = id, "idle connection closed");
                    break Ok(());
                }
                if tx.send(WsMessage::Ping(Vec::new().into())).await.is_err() { break Ok(()) }
            }
            _ = shutdown.changed() => break Ok(()),
        }
    };
    if let Err(Fatal(reason)) = &outcome {
        tracing::info!(conn = id, usuario = %conn.principal.usuario, %reason, "closing connection after protocol error");
        let _ = tx
            .send(WsMessage::Binary(
                Message::Error {
                    message: reason.clone(),
                }
                .encode()
                .into(),
            ))
            .await;
    }
    let _ = tx.send(WsMessage::Close(None)).await;
    conn.persist_sync_states().await;
}

async fn send_all(
    tx: &mut futures_util::stream::SplitSink<WebSocket, WsMessage>,
    msgs: Vec<Message>,
    medidas: &crate::metrics::ConnMetrics,
    por: Envio,
) -> Result<(), axum::Error> {
    for m in msgs {
        let bytes = m.encode();
        medidas.salida(bytes.len(), matches!(m, Message::Sync { .. }), por);
        tx.send(WsMessage::Binary(bytes.into())).await?;
    }
    Ok(())
}

impl Conn {
    pub(crate) fn new(state: AppState, principal: Principal) -> Conn {
        let id = NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed);
        let session = Session::new(
            Role::Acceptor,
            state.peer_id.clone(),
            PeerMetadata {
                storage_id: Some(state.storage_id.clone()),
                is_ephemeral: false,
            },
        );
        let medidas = state.metrics.conexion();
        Conn {
            inbox: Inbox::new(id),
            state,
            principal,
            session,
            granted: HashMap::new(),
            named: HashSet::new(),
            actors_ok: HashMap::new(),
            medidas,
        }
    }

    async fn audit(&self, documento: &DocumentId, accion: &str, resultado: &str, detalle: &str) {
        let a = Auditoria {
            usuario: &self.principal.usuario,
            documento: &documento.to_string(),
            accion,
            resultado,
            detalle,
        };
        if let Err(e) = self.state.hub.db().audit(&a).await {
            tracing::error!(error = %e, "audit log write failed");
        }
    }

    pub(crate) async fn on_frame(&mut self, frame: &[u8]) -> Result<Vec<Message>, Fatal> {
        let limit = self.state.config.limits.max_message_bytes;
        if frame.len() > limit {
            return Err(Fatal(format!(
                "message of {} bytes exceeds the limit of {limit} bytes",
                frame.len()
            )));
        }
        let inbound = self
            .session
            .receive_frame(frame)
            .map_err(|e| Fatal(e.to_string()))?;
        match inbound {
            Inbound::Reply(m) => Ok(vec![m]),
            Inbound::Ready | Inbound::Ignore | Inbound::Unavailable { .. } => Ok(Vec::new()),
            // The peer closes the socket after `leave`.
            Inbound::Leave => Ok(Vec::new()),
            Inbound::PeerError(m) => {
                tracing::info!(usuario = %self.principal.usuario, error = %m, "peer reported an error");
                Ok(Vec::new())
            }
            Inbound::Ephemeral {
                document_id,
                message,
            } => {
                if let Some((entry, _)) = self.granted.get(&document_id) {
                    entry.relay_ephemeral(self.inbox.id, &message);
                }
                Ok(Vec::new())
            }
            Inbound::Sync {
                document_id, data, ..
            } => {
                let r = self.on_sync(document_id, &data).await;
                self.medidas.recibido(document_id, recibido(&r));
                r
            }
        }
    }

    /// Access to a document for this connection: looked up once, denied unless granted.
    async fn grant(&mut self, id: DocumentId) -> Result<Option<(Arc<DocEntry>, Acceso)>, Fatal> {
        if let Some(g) = self.granted.get(&id) {
            return Ok(Some(g.clone()));
        }
        let max = self.state.config.limits.max_docs_per_peer;
        if max > 0 && !self.named.contains(&id) && self.named.len() >= max {
            return Err(Fatal(format!(
                "too many documents on one connection: at most {max} \
                 (limits.max_docs_per_peer)"
            )));
        }
        self.named.insert(id);
        let entry = self.state.hub.entry(&id).await.map_err(internal)?;
        let Some(entry) = entry else {
            self.audit(&id, "acceso", "denegado", "documento desconocido")
                .await;
            return Ok(None);
        };
        let a = acceso(&self.principal, &entry.info, entry.zona.as_deref());
        if a == Acceso::Ninguno {
            self.audit(&id, "acceso", "denegado", "sin permiso").await;
            return Ok(None);
        }
        self.audit(
            &id,
            "acceso",
            "concedido",
            if a == Acceso::Escritura {
                "escritura"
            } else {
                "lectura"
            },
        )
        .await;
        // Resume from the sync state persisted for this peer's storage, if any.
        if let Some(peer) = self.session.peer_storage_id().map(str::to_string)
            && !self.session.knows(&id)
            && let Ok(Some(bytes)) = self.state.hub.db().load_sync_state(&peer, &id).await
        {
            self.session.restore_state(id, &bytes);
        }
        if a == Acceso::Lectura {
            // automerge's read-only mode: we ignore the peer's changes and tell it so (the
            // READ_ONLY flag), so a well-behaved client does not send them. One that still does
            // is refused in `on_sync`.
            let mut st = self.session.take_state(&id);
            st.set_read_only(true);
            self.session.put_state(id, st);
        }
        entry.subscribe(&self.inbox);
        // A device of the school's own staff is syncing its document: the school's last sync
        // for the dashboard (the supervisor relaying is not the school syncing).
        if entry.info.kind == bitacora_core::model::DocKind::Escuela
            && self.principal.cct.as_deref() == Some(entry.info.owner.as_str())
            && let Err(e) = self
                .state
                .hub
                .db()
                .registrar_sync(&id.to_string(), self.state.reloj.ahora())
                .await
        {
            tracing::warn!(doc = %id, error = %e, "last sync not recorded");
        }
        self.granted.insert(id, (entry.clone(), a));
        Ok(Some((entry, a)))
    }

    async fn on_sync(&mut self, id: DocumentId, data: &[u8]) -> Result<Vec<Message>, Fatal> {
        let Some((entry, access)) = self.grant(id).await? else {
            // Missing and denied look the same.
            return Ok(vec![self.session.unavailable(id)]);
        };
        let msg = Session::decode_sync(data).map_err(|e| Fatal(e.to_string()))?;
        if !msg.changes.is_empty() {
            if access != Acceso::Escritura {
                self.audit(&id, "escritura", "rechazada", "acceso de solo lectura")
                    .await;
                return Err(Fatal(format!(
                    "read-only access to document {id}: changes refused"
                )));
            }
            let joined: Vec<u8> = msg.changes.iter().flatten().copied().collect();
            // Parsing changes (a whole saved document, in a first V2 sync) is automerge work:
            // off the reactor, like applying them.
            let authors = tokio::task::spawn_blocking(move || autorias(&joined))
                .await
                .map_err(internal)?
                .map_err(|e| Fatal(e.to_string()))?;
            for a in authors {
                if !self.actor_allowed(&entry, &a.actor, &a.hash).await? {
                    let detalle = format!(
                        "actor {} no registrado para este documento",
                        a.actor.to_hex_string()
                    );
                    self.audit(&id, "escritura", "rechazada", &detalle).await;
                    return Err(Fatal(format!(
                        "change {} by actor {} refused: actor not enrolled for this document",
                        a.hash, a.actor
                    )));
                }
            }
        }
        let state = self.session.take_state(&id);
        match self.state.hub.receive(&entry, state, msg).await {
            Ok(r) => {
                self.session.put_state(id, r.state);
                if r.new_changes > 0 {
                    self.audit(
                        &id,
                        "escritura",
                        "aceptada",
                        &format!("{} cambios", r.new_changes),
                    )
                    .await;
                    entry.notify_others(self.inbox.id);
                }
                Ok(r.reply
                    .map(|m| self.session.wrap(id, m))
                    .into_iter()
                    .collect())
            }
            Err(e) => {
                tracing::error!(doc = %id, error = %e, "sync message not applied");
                Err(Fatal(format!(
                    "document {id} could not be updated; {NOTHING_CONFIRMED}"
                )))
            }
        }
    }

    /// Whether a change's author may write this document: the deterministic genesis, or an
    /// actor enrolled to a user who has write access to it.
    async fn actor_allowed(
        &mut self,
        entry: &DocEntry,
        actor: &automerge::ActorId,
        hash: &automerge::ChangeHash,
    ) -> Result<bool, Fatal> {
        if *actor == entry.genesis_actor() {
            return Ok(*hash == entry.genesis);
        }
        let key = (entry.info.id, actor.clone());
        if let Some(ok) = self.actors_ok.get(&key) {
            return Ok(*ok);
        }
        let db = self.state.hub.db();
        let ok = match db
            .actor_usuario(&actor.to_hex_string())
            .await
            .map_err(internal)?
        {
            Some(u) => match Principal::de_usuario(db, &u).await {
                Ok(p) => acceso(&p, &entry.info, entry.zona.as_deref()) == Acceso::Escritura,
                Err(_) => false,
            },
            None => false,
        };
        self.actors_ok.insert(key, ok);
        Ok(ok)
    }

    /// Other connections changed documents this one follows: send what the peer now lacks, and
    /// relay ephemeral messages.
    pub(crate) async fn on_notified(&mut self) -> Vec<Message> {
        let mut out = Vec::new();
        for id in self.inbox.take_dirty() {
            let Some((entry, _)) = self.granted.get(&id).cloned() else {
                continue;
            };
            let state = self.session.take_state(&id);
            match self.state.hub.generate(&entry, state).await {
                Ok((state, reply)) => {
                    self.session.put_state(id, state);
                    if let Some(m) = reply {
                        out.push(self.session.wrap(id, m));
                    }
                }
                Err(e) => tracing::error!(doc = %id, error = %e, "could not generate sync message"),
            }
        }
        let them = self
            .session
            .peer()
            .map(|(p, _)| p.clone())
            .unwrap_or(PeerId(String::new()));
        for m in self.inbox.take_ephemeral() {
            if let Message::Ephemeral {
                sender_id,
                document_id,
                count,
                session_id,
                data,
                ..
            } = m
            {
                out.push(Message::Ephemeral {
                    sender_id,
                    target_id: them.clone(),
                    document_id,
                    count,
                    session_id,
                    data,
                });
            }
        }
        out
    }

    pub(crate) async fn persist_sync_states(&self) {
        let Some(peer) = self.session.peer_storage_id() else {
            return;
        };
        for id in self.session.documents() {
            if let Some(bytes) = self.session.encode_state(id)
                && let Err(e) = self.state.hub.db().save_sync_state(peer, id, &bytes).await
            {
                tracing::warn!(doc = %id, error = %e, "sync state not saved");
            }
        }
    }
}
