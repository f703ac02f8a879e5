//! The protocol state machine of one connection, with no I/O: messages in, messages out.
//!
//! A [`Session`] does the handshake (`join` / `peer`), routes each incoming message to what the
//! caller must do ([`Inbound`]), and keeps one automerge [`sync::State`] per document. The
//! documents themselves stay with the caller, who passes them in for each step, so the caller
//! decides about access, locking, durability and threads: the server applies a message, commits
//! the new changes and only then calls [`Session::generate`], which is what makes "confirmed"
//! mean "durable" (docs/protocol.md).

use std::collections::HashMap;

use automerge::sync::{self, SyncDoc};
use thiserror::Error;

use super::message::{CodecError, Message, PROTOCOL_VERSION, PeerId, PeerMetadata};
use crate::ids::DocumentId;

/// Which side of the handshake this session plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sends `join` (a client).
    Initiator,
    /// Answers `join` with `peer` (the server).
    Acceptor,
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    #[error("undecodable message: {0}")]
    Codec(#[from] CodecError),
    #[error("`{0}` received before the handshake")]
    NotJoined(&'static str),
    #[error("`{0}` received after the handshake")]
    AlreadyJoined(&'static str),
    #[error("the peer supports none of our protocol versions ({0})")]
    UnsupportedVersion(String),
    #[error("message from `{got}` on a connection with `{expected}`")]
    WrongSender { expected: String, got: String },
    #[error("invalid automerge sync message: {0}")]
    SyncMessage(String),
    #[error("automerge rejected the changes: {0}")]
    Apply(String),
}

/// What the caller must do with an incoming message.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    /// Send this reply (the handshake's `peer`).
    Reply(Message),
    /// The handshake finished (initiator side).
    Ready,
    /// The peer sent sync data for a document. `request` is true for `request` messages,
    /// which expect `doc-unavailable` if the document cannot be served.
    Sync {
        document_id: DocumentId,
        data: Vec<u8>,
        request: bool,
    },
    /// The peer does not have (or will not give) this document.
    Unavailable { document_id: DocumentId },
    /// An ephemeral message to relay to the document's other peers.
    Ephemeral {
        document_id: DocumentId,
        message: Message,
    },
    /// The peer said it is leaving.
    Leave,
    /// The peer reported an error; the connection should close.
    PeerError(String),
    /// Nothing to do (gossip this implementation does not use).
    Ignore,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    Handshake,
    Ready {
        them: PeerId,
        metadata: Option<PeerMetadata>,
    },
}

/// Counters of one session, for the sync summary and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub sync_messages_in: u64,
    pub sync_messages_out: u64,
}

#[derive(Debug)]
pub struct Session {
    role: Role,
    us: PeerId,
    our_metadata: PeerMetadata,
    phase: Phase,
    docs: HashMap<DocumentId, sync::State>,
    pub stats: Stats,
}

impl Session {
    pub fn new(role: Role, us: PeerId, our_metadata: PeerMetadata) -> Session {
        Session {
            role,
            us,
            our_metadata,
            phase: Phase::Handshake,
            docs: HashMap::new(),
            stats: Stats::default(),
        }
    }

    /// The `join` an initiator sends first.
    pub fn join(&self) -> Message {
        Message::Join {
            sender_id: self.us.clone(),
            supported_protocol_versions: vec![PROTOCOL_VERSION.to_string()],
            metadata: Some(self.our_metadata.clone()),
        }
    }

    pub fn our_id(&self) -> &PeerId {
        &self.us
    }

    /// The remote peer, once the handshake is done.
    pub fn peer(&self) -> Option<(&PeerId, Option<&PeerMetadata>)> {
        match &self.phase {
            Phase::Ready { them, metadata } => Some((them, metadata.as_ref())),
            Phase::Handshake => None,
        }
    }

    /// The remote peer's storage id, if it has one and is not ephemeral: the key under which
    /// sync state may be persisted.
    pub fn peer_storage_id(&self) -> Option<&str> {
        match self.peer()? {
            (_, Some(m)) if !m.is_ephemeral => m.storage_id.as_deref(),
            _ => None,
        }
    }

    fn them(&self) -> PeerId {
        match &self.phase {
            Phase::Ready { them, .. } => them.clone(),
            Phase::Handshake => PeerId(String::new()),
        }
    }

    fn check_sender(&self, sender: &PeerId) -> Result<(), ProtocolError> {
        match &self.phase {
            Phase::Ready { them, .. } if them == sender => Ok(()),
            Phase::Ready { them, .. } => Err(ProtocolError::WrongSender {
                expected: them.0.clone(),
                got: sender.0.clone(),
            }),
            Phase::Handshake => Err(ProtocolError::NotJoined("sync")),
        }
    }

    /// Decodes and routes one frame.
    pub fn receive_frame(&mut self, frame: &[u8]) -> Result<Inbound, ProtocolError> {
        self.receive(Message::decode(frame)?)
    }

    /// Routes one message.
    pub fn receive(&mut self, msg: Message) -> Result<Inbound, ProtocolError> {
        let ready = matches!(self.phase, Phase::Ready { .. });
        match msg {
            Message::Join {
                sender_id,
                supported_protocol_versions,
                metadata,
            } => {
                if self.role != Role::Acceptor || ready {
                    return Err(ProtocolError::AlreadyJoined("join"));
                }
                if !supported_protocol_versions
                    .iter()
                    .any(|v| v == PROTOCOL_VERSION)
                {
                    return Err(ProtocolError::UnsupportedVersion(
                        supported_protocol_versions.join(","),
                    ));
                }
                let reply = Message::Peer {
                    sender_id: self.us.clone(),
                    target_id: sender_id.clone(),
                    selected_protocol_version: PROTOCOL_VERSION.to_string(),
                    metadata: Some(self.our_metadata.clone()),
                };
                self.phase = Phase::Ready {
                    them: sender_id,
                    metadata,
                };
                Ok(Inbound::Reply(reply))
            }
            Message::Peer {
                sender_id,
                selected_protocol_version,
                metadata,
                ..
            } => {
                if self.role != Role::Initiator || ready {
                    return Err(ProtocolError::AlreadyJoined("peer"));
                }
                if selected_protocol_version != PROTOCOL_VERSION {
                    return Err(ProtocolError::UnsupportedVersion(selected_protocol_version));
                }
                self.phase = Phase::Ready {
                    them: sender_id,
                    metadata,
                };
                Ok(Inbound::Ready)
            }
            Message::Error { message } => Ok(Inbound::PeerError(message)),
            _ if !ready => Err(ProtocolError::NotJoined(msg.kind())),
            Message::Leave { .. } => Ok(Inbound::Leave),
            Message::Sync {
                sender_id,
                document_id,
                data,
                ..
            } => {
                self.check_sender(&sender_id)?;
                self.stats.sync_messages_in += 1;
                Ok(Inbound::Sync {
                    document_id,
                    data,
                    request: false,
                })
            }
            Message::Request {
                sender_id,
                document_id,
                data,
                ..
            } => {
                self.check_sender(&sender_id)?;
                self.stats.sync_messages_in += 1;
                Ok(Inbound::Sync {
                    document_id,
                    data,
                    request: true,
                })
            }
            Message::DocUnavailable {
                sender_id,
                document_id,
                ..
            } => {
                self.check_sender(&sender_id)?;
                Ok(Inbound::Unavailable { document_id })
            }
            m @ Message::Ephemeral { .. } => {
                let Message::Ephemeral {
                    sender_id,
                    document_id,
                    ..
                } = &m
                else {
                    unreachable!()
                };
                self.check_sender(sender_id)?;
                Ok(Inbound::Ephemeral {
                    document_id: *document_id,
                    message: m,
                })
            }
            Message::RemoteSubscriptionChange { .. } | Message::RemoteHeadsChanged { .. } => {
                Ok(Inbound::Ignore)
            }
        }
    }

    /// Decodes the payload of a `sync`/`request` so the caller can inspect its changes (access
    /// control, actor binding) before applying it.
    pub fn decode_sync(data: &[u8]) -> Result<sync::Message, ProtocolError> {
        sync::Message::decode(data).map_err(|e| ProtocolError::SyncMessage(e.to_string()))
    }

    /// Applies a decoded sync message to the caller's document.
    pub fn apply(
        &mut self,
        document_id: DocumentId,
        doc: &mut impl SyncDoc,
        msg: sync::Message,
    ) -> Result<(), ProtocolError> {
        let state = self.docs.entry(document_id).or_default();
        doc.receive_sync_message(state, msg)
            .map_err(|e| ProtocolError::Apply(e.to_string()))
    }

    /// The next sync message for a document, if the peer needs one.
    pub fn generate(&mut self, document_id: DocumentId, doc: &impl SyncDoc) -> Option<Message> {
        let state = self.docs.entry(document_id).or_default();
        let msg = doc.generate_sync_message(state)?;
        self.stats.sync_messages_out += 1;
        Some(Message::Sync {
            sender_id: self.us.clone(),
            target_id: self.them(),
            document_id,
            data: msg.encode(),
        })
    }

    /// Like [`Session::generate`] but as a `request` (an initiator asking for a document it may
    /// not have): always produces a message.
    pub fn request(&mut self, document_id: DocumentId, doc: &impl SyncDoc) -> Message {
        let state = self.docs.entry(document_id).or_default();
        let data = doc
            .generate_sync_message(state)
            .map(|m| m.encode())
            .unwrap_or_else(|| {
                // Nothing new to say: an empty-doc hello still asks for the document.
                automerge::Automerge::new()
                    .generate_sync_message(&mut sync::State::new())
                    .map(|m| m.encode())
                    .unwrap_or_default()
            });
        self.stats.sync_messages_out += 1;
        Message::Request {
            sender_id: self.us.clone(),
            target_id: self.them(),
            document_id,
            data,
        }
    }

    /// `doc-unavailable` for a document this side cannot or will not serve.
    pub fn unavailable(&self, document_id: DocumentId) -> Message {
        Message::DocUnavailable {
            sender_id: self.us.clone(),
            target_id: self.them(),
            document_id,
        }
    }

    /// Whether the sync state of a document says both sides hold the same heads.
    pub fn in_sync(&self, document_id: &DocumentId, our_heads: &[automerge::ChangeHash]) -> bool {
        self.docs.get(document_id).is_some_and(|s| {
            let mut a = s.shared_heads.clone();
            let mut b = our_heads.to_vec();
            a.sort();
            b.sort();
            s.their_heads.as_ref().is_some_and(|t| {
                let mut t = t.clone();
                t.sort();
                t == b
            }) && a == b
        })
    }

    /// Whether the peer said it holds a document read-only: it ignores our changes, so the two
    /// sides never reach the same heads while we hold changes it lacks.
    pub fn peer_read_only(&self, document_id: &DocumentId) -> bool {
        self.docs
            .get(document_id)
            .is_some_and(|s| s.is_peer_read_only())
    }

    /// The heads the peer last said it has, if any.
    pub fn their_heads(&self, document_id: &DocumentId) -> Option<Vec<automerge::ChangeHash>> {
        self.docs.get(document_id)?.their_heads.clone()
    }

    /// Persistable sync state of a document (only the shared heads survive encoding).
    pub fn encode_state(&self, document_id: &DocumentId) -> Option<Vec<u8>> {
        self.docs.get(document_id).map(|s| s.encode())
    }

    /// Restores persisted sync state, e.g. on reconnect. Undecodable state is ignored: a fresh
    /// state only costs an extra round trip.
    pub fn restore_state(&mut self, document_id: DocumentId, encoded: &[u8]) {
        if let Ok(s) = sync::State::decode(encoded) {
            self.docs.insert(document_id, s);
        }
    }

    /// Documents this session has sync state for.
    pub fn documents(&self) -> impl Iterator<Item = &DocumentId> {
        self.docs.keys()
    }

    /// Takes a document's sync state out (to move it, with the document, to a blocking thread);
    /// give it back with [`Session::put_state`].
    pub fn take_state(&mut self, document_id: &DocumentId) -> sync::State {
        self.docs.remove(document_id).unwrap_or_default()
    }

    pub fn put_state(&mut self, document_id: DocumentId, state: sync::State) {
        self.docs.insert(document_id, state);
    }

    /// Wraps an automerge sync message generated outside the session as a `sync` to the peer.
    pub fn wrap(&mut self, document_id: DocumentId, msg: sync::Message) -> Message {
        self.stats.sync_messages_out += 1;
        Message::Sync {
            sender_id: self.us.clone(),
            target_id: self.them(),
            document_id,
            data: msg.encode(),
        }
    }

    /// Whether this session has touched a document.
    pub fn knows(&self, document_id: &DocumentId) -> bool {
        self.docs.contains_key(document_id)
    }

    /// Drops the in-memory state of a document (e.g. after refusing its changes).
    pub fn forget(&mut self, document_id: &DocumentId) {
        self.docs.remove(document_id);
    }
}
