//! The automerge-repo wire protocol, version "1": one CBOR map per WebSocket binary frame.
//!
//! Follows the automerge-repo-network-websocket README ("Wire Protocol") and the TypeScript
//! message types. Decoding is lenient where real peers differ (the JS client sends
//! `peerMetadata` where the README says `metadata`; cbor-x writes `undefined` for absent
//! fields; JS numbers may arrive as floats; unknown keys are skipped) and strict where it
//! matters (every message has a known `type`, required fields are present and typed).

use std::fmt;

use minicbor::data::Type;
use minicbor::{Decoder, Encoder};
use thiserror::Error;

use crate::ids::DocumentId;

/// The only protocol version this implementation speaks.
pub const PROTOCOL_VERSION: &str = "1";

/// A peer id: any non-empty string chosen by the peer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub String);

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `newHeads` of `remote-heads-changed`: (storage id, heads, timestamp in ms).
pub type NewHeads = Vec<(String, Vec<String>, u64)>;

/// `peerMetadata` of `join` and `peer`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PeerMetadata {
    /// The peer's storage id: sync state is persisted per storage id.
    pub storage_id: Option<String>,
    /// Whether the peer will forget everything when it disconnects.
    pub is_ephemeral: bool,
}

/// Every message of the protocol.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Join {
        sender_id: PeerId,
        supported_protocol_versions: Vec<String>,
        metadata: Option<PeerMetadata>,
    },
    Peer {
        sender_id: PeerId,
        target_id: PeerId,
        selected_protocol_version: String,
        metadata: Option<PeerMetadata>,
    },
    Leave {
        sender_id: PeerId,
    },
    Sync {
        sender_id: PeerId,
        target_id: PeerId,
        document_id: DocumentId,
        data: Vec<u8>,
    },
    Request {
        sender_id: PeerId,
        target_id: PeerId,
        document_id: DocumentId,
        data: Vec<u8>,
    },
    DocUnavailable {
        sender_id: PeerId,
        target_id: PeerId,
        document_id: DocumentId,
    },
    Ephemeral {
        sender_id: PeerId,
        target_id: PeerId,
        document_id: DocumentId,
        count: u64,
        session_id: String,
        data: Vec<u8>,
    },
    RemoteSubscriptionChange {
        sender_id: PeerId,
        target_id: PeerId,
        add: Vec<String>,
        remove: Vec<String>,
    },
    RemoteHeadsChanged {
        sender_id: PeerId,
        target_id: PeerId,
        document_id: DocumentId,
        new_heads: NewHeads,
    },
    Error {
        message: String,
    },
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CodecError {
    #[error("not a CBOR map: {0}")]
    NotAMap(String),
    #[error("malformed CBOR: {0}")]
    Cbor(String),
    #[error("missing field `{0}`")]
    Missing(&'static str),
    #[error("field `{0}` has the wrong type")]
    WrongType(&'static str),
    #[error("unknown message type `{0}`")]
    UnknownType(String),
    #[error("invalid document id `{0}`")]
    BadDocumentId(String),
    #[error("trailing bytes after the message")]
    Trailing,
}

impl From<minicbor::decode::Error> for CodecError {
    fn from(e: minicbor::decode::Error) -> Self {
        CodecError::Cbor(e.to_string())
    }
}

#[derive(Debug, Default)]
struct Fields {
    r#type: Option<String>,
    sender_id: Option<String>,
    target_id: Option<String>,
    document_id: Option<String>,
    data: Option<Vec<u8>>,
    versions: Option<Vec<String>>,
    selected: Option<String>,
    metadata: Option<PeerMetadata>,
    message: Option<String>,
    session_id: Option<String>,
    count: Option<u64>,
    add: Option<Vec<String>>,
    remove: Option<Vec<String>>,
    new_heads: Option<NewHeads>,
}

/// Treats `null` and `undefined` as an absent field. Returns true when it consumed one.
fn absent(d: &mut Decoder<'_>) -> Result<bool, CodecError> {
    match d.datatype()? {
        Type::Null => d.null().map(|_| true).map_err(Into::into),
        Type::Undefined => d.undefined().map(|_| true).map_err(Into::into),
        _ => Ok(false),
    }
}

fn text(d: &mut Decoder<'_>, f: &'static str) -> Result<Option<String>, CodecError> {
    if absent(d)? {
        return Ok(None);
    }
    match d.datatype()? {
        Type::String => Ok(Some(d.str()?.to_string())),
        Type::StringIndef => {
            let mut s = String::new();
            for part in d.str_iter()? {
                s.push_str(part?);
            }
            Ok(Some(s))
        }
        _ => Err(CodecError::WrongType(f)),
    }
}

fn bytes(d: &mut Decoder<'_>, f: &'static str) -> Result<Option<Vec<u8>>, CodecError> {
    // cbor-x may tag typed arrays (tag 64 = uint8 array). Tags are skipped in a loop, not by
    // recursion: a frame of nothing but tags must not overflow the stack.
    loop {
        if absent(d)? {
            return Ok(None);
        }
        if d.datatype()? != Type::Tag {
            break;
        }
        d.tag()?;
    }
    match d.datatype()? {
        Type::Bytes => Ok(Some(d.bytes()?.to_vec())),
        Type::BytesIndef => {
            let mut v = Vec::new();
            for part in d.bytes_iter()? {
                v.extend_from_slice(part?);
            }
            Ok(Some(v))
        }
        _ => Err(CodecError::WrongType(f)),
    }
}

fn number(d: &mut Decoder<'_>, f: &'static str) -> Result<Option<u64>, CodecError> {
    if absent(d)? {
        return Ok(None);
    }
    match d.datatype()? {
        Type::U8 | Type::U16 | Type::U32 | Type::U64 => Ok(Some(d.u64()?)),
        Type::F16 | Type::F32 | Type::F64 => {
            let v = d.f64()?;
            if v.is_finite() && v >= 0.0 {
                Ok(Some(v as u64))
            } else {
                Err(CodecError::WrongType(f))
            }
        }
        _ => Err(CodecError::WrongType(f)),
    }
}

/// Iterates a definite or indefinite container, calling `item` for each entry.
fn each(
    d: &mut Decoder<'_>,
    len: Option<u64>,
    mut item: impl FnMut(&mut Decoder<'_>) -> Result<(), CodecError>,
) -> Result<(), CodecError> {
    match len {
        Some(n) => {
            for _ in 0..n {
                item(d)?;
            }
        }
        None => loop {
            if d.datatype()? == Type::Break {
                d.skip()?;
                break;
            }
            item(d)?;
        },
    }
    Ok(())
}

fn strings(d: &mut Decoder<'_>, f: &'static str) -> Result<Option<Vec<String>>, CodecError> {
    if absent(d)? {
        return Ok(None);
    }
    if !matches!(d.datatype()?, Type::Array | Type::ArrayIndef) {
        return Err(CodecError::WrongType(f));
    }
    let len = d.array()?;
    let mut out = Vec::new();
    each(d, len, |d| {
        out.push(text(d, f)?.ok_or(CodecError::WrongType(f))?);
        Ok(())
    })?;
    Ok(Some(out))
}

fn map_len(d: &mut Decoder<'_>, f: &'static str) -> Result<Option<u64>, CodecError> {
    if !matches!(d.datatype()?, Type::Map | Type::MapIndef) {
        return Err(CodecError::WrongType(f));
    }
    Ok(d.map()?)
}

fn metadata(d: &mut Decoder<'_>) -> Result<Option<PeerMetadata>, CodecError> {
    if absent(d)? {
        return Ok(None);
    }
    let len = map_len(d, "peerMetadata")?;
    let mut m = PeerMetadata::default();
    each(d, len, |d| {
        let key = text(d, "peerMetadata")?.unwrap_or_default();
        match key.as_str() {
            "storageId" => m.storage_id = text(d, "storageId")?,
            "isEphemeral" => {
                m.is_ephemeral = if absent(d)? {
                    false
                } else {
                    d.bool().map_err(|_| CodecError::WrongType("isEphemeral"))?
                }
            }
            _ => d.skip()?,
        }
        Ok(())
    })?;
    Ok(Some(m))
}

fn new_heads(d: &mut Decoder<'_>) -> Result<Option<NewHeads>, CodecError> {
    if absent(d)? {
        return Ok(None);
    }
    let len = map_len(d, "newHeads")?;
    let mut out = Vec::new();
    each(d, len, |d| {
        let storage = text(d, "newHeads")?.ok_or(CodecError::WrongType("newHeads"))?;
        let inner = map_len(d, "newHeads")?;
        let (mut heads, mut ts) = (Vec::new(), 0);
        each(d, inner, |d| {
            match text(d, "newHeads")?.as_deref() {
                Some("heads") => heads = strings(d, "heads")?.unwrap_or_default(),
                Some("timestamp") => ts = number(d, "timestamp")?.unwrap_or(0),
                _ => d.skip()?,
            }
            Ok(())
        })?;
        out.push((storage, heads, ts));
        Ok(())
    })?;
    Ok(Some(out))
}

impl Message {
    /// Decodes one frame.
    pub fn decode(input: &[u8]) -> Result<Message, CodecError> {
        let mut d = Decoder::new(input);
        let len = match d.datatype() {
            Ok(Type::Map | Type::MapIndef) => d.map()?,
            Ok(t) => return Err(CodecError::NotAMap(format!("{t}"))),
            Err(e) => return Err(CodecError::NotAMap(e.to_string())),
        };
        let mut f = Fields::default();
        each(&mut d, len, |d| {
            let key = text(d, "key")?.ok_or(CodecError::WrongType("key"))?;
            match key.as_str() {
                "type" => f.r#type = text(d, "type")?,
                "senderId" => f.sender_id = text(d, "senderId")?,
                "targetId" => f.target_id = text(d, "targetId")?,
                "documentId" => f.document_id = text(d, "documentId")?,
                "data" => f.data = bytes(d, "data")?,
                "supportedProtocolVersions" => {
                    f.versions = strings(d, "supportedProtocolVersions")?
                }
                "selectedProtocolVersion" => f.selected = text(d, "selectedProtocolVersion")?,
                "peerMetadata" | "metadata" => f.metadata = metadata(d)?,
                "message" => f.message = text(d, "message")?,
                "sessionId" => f.session_id = text(d, "sessionId")?,
                "count" => f.count = number(d, "count")?,
                "add" => f.add = strings(d, "add")?,
                "remove" => f.remove = strings(d, "remove")?,
                "newHeads" => f.new_heads = new_heads(d)?,
                _ => d.skip()?,
            }
            Ok(())
        })?;
        if d.position() != input.len() {
            return Err(CodecError::Trailing);
        }
        let ty = f.r#type.take().ok_or(CodecError::Missing("type"))?;
        let peer = |v: Option<String>, n: &'static str| {
            v.filter(|s| !s.is_empty())
                .map(PeerId)
                .ok_or(CodecError::Missing(n))
        };
        let doc = |v: Option<String>| {
            let s = v.ok_or(CodecError::Missing("documentId"))?;
            DocumentId::parse(&s).map_err(|_| CodecError::BadDocumentId(s))
        };
        Ok(match ty.as_str() {
            "join" => Message::Join {
                sender_id: peer(f.sender_id, "senderId")?,
                supported_protocol_versions: f
                    .versions
                    .ok_or(CodecError::Missing("supportedProtocolVersions"))?,
                metadata: f.metadata,
            },
            "peer" => Message::Peer {
                sender_id: peer(f.sender_id, "senderId")?,
                target_id: peer(f.target_id, "targetId")?,
                selected_protocol_version: f
                    .selected
                    .ok_or(CodecError::Missing("selectedProtocolVersion"))?,
                metadata: f.metadata,
            },
            "leave" => Message::Leave {
                sender_id: peer(f.sender_id, "senderId")?,
            },
            "sync" | "request" => {
                let (sender_id, target_id) = (
                    peer(f.sender_id, "senderId")?,
                    peer(f.target_id, "targetId")?,
                );
                let document_id = doc(f.document_id)?;
                let data = f.data.ok_or(CodecError::Missing("data"))?;
                if ty == "sync" {
                    Message::Sync {
                        sender_id,
                        target_id,
                        document_id,
                        data,
                    }
                } else {
                    Message::Request {
                        sender_id,
                        target_id,
                        document_id,
                        data,
                    }
                }
            }
            "doc-unavailable" => Message::DocUnavailable {
                sender_id: peer(f.sender_id, "senderId")?,
                target_id: peer(f.target_id, "targetId")?,
                document_id: doc(f.document_id)?,
            },
            "ephemeral" => Message::Ephemeral {
                sender_id: peer(f.sender_id, "senderId")?,
                target_id: peer(f.target_id, "targetId")?,
                document_id: doc(f.document_id)?,
                count: f.count.ok_or(CodecError::Missing("count"))?,
                session_id: f.session_id.ok_or(CodecError::Missing("sessionId"))?,
                data: f.data.ok_or(CodecError::Missing("data"))?,
            },
            "remote-subscription-change" => Message::RemoteSubscriptionChange {
                sender_id: peer(f.sender_id, "senderId")?,
                target_id: peer(f.target_id, "targetId")?,
                add: f.add.unwrap_or_default(),
                remove: f.remove.unwrap_or_default(),
            },
            "remote-heads-changed" => Message::RemoteHeadsChanged {
                sender_id: peer(f.sender_id, "senderId")?,
                target_id: peer(f.target_id, "targetId")?,
                document_id: doc(f.document_id)?,
                new_heads: f.new_heads.ok_or(CodecError::Missing("newHeads"))?,
            },
            "error" => Message::Error {
                message: f.message.ok_or(CodecError::Missing("message"))?,
            },
            other => return Err(CodecError::UnknownType(other.chars().take(64).collect())),
        })
    }

    /// Encodes one frame (definite-length map, as the JS client expects).
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::new(Vec::new());
        self.encode_into(&mut e)
            .expect("writing to a Vec cannot fail");
        e.into_writer()
    }

    fn encode_into(
        &self,
        e: &mut Encoder<Vec<u8>>,
    ) -> Result<(), minicbor::encode::Error<std::convert::Infallible>> {
        fn meta(
            e: &mut Encoder<Vec<u8>>,
            m: &PeerMetadata,
        ) -> Result<(), minicbor::encode::Error<std::convert::Infallible>> {
            e.map(if m.storage_id.is_some() { 2 } else { 1 })?;
            if let Some(s) = &m.storage_id {
                e.str("storageId")?.str(s)?;
            }
            e.str("isEphemeral")?.bool(m.is_ephemeral)?;
            Ok(())
        }
        match self {
            Message::Join {
                sender_id,
                supported_protocol_versions,
                metadata,
            } => {
                e.map(3 + metadata.is_some() as u64)?;
                e.str("type")?.str("join")?;
                e.str("senderId")?.str(&sender_id.0)?;
                e.str("supportedProtocolVersions")?
                    .array(supported_protocol_versions.len() as u64)?;
                for v in supported_protocol_versions {
                    e.str(v)?;
                }
                if let Some(m) = metadata {
                    e.str("peerMetadata")?;
                    meta(e, m)?;
                }
            }
            Message::Peer {
                sender_id,
                target_id,
                selected_protocol_version,
                metadata,
            } => {
                e.map(4 + metadata.is_some() as u64)?;
                e.str("type")?.str("peer")?;
                e.str("senderId")?.str(&sender_id.0)?;
                e.str("targetId")?.str(&target_id.0)?;
                e.str("selectedProtocolVersion")?
                    .str(selected_protocol_version)?;
                if let Some(m) = metadata {
                    e.str("peerMetadata")?;
                    meta(e, m)?;
                }
            }
            Message::Leave { sender_id } => {
                e.map(2)?
                    .str("type")?
                    .str("leave")?
                    .str("senderId")?
                    .str(&sender_id.0)?;
            }
            Message::Sync {
                sender_id,
                target_id,
                document_id,
                data,
            }
            | Message::Request {
                sender_id,
                target_id,
                document_id,
                data,
            } => {
                let ty = if matches!(self, Message::Sync { .. }) {
                    "sync"
                } else {
                    "request"
                };
                e.map(5)?;
                e.str("type")?.str(ty)?;
                e.str("senderId")?.str(&sender_id.0)?;
                e.str("targetId")?.str(&target_id.0)?;
                e.str("documentId")?.str(&document_id.to_string())?;
                e.str("data")?.bytes(data)?;
            }
            Message::DocUnavailable {
                sender_id,
                target_id,
                document_id,
            } => {
                e.map(4)?;
                e.str("type")?.str("doc-unavailable")?;
                e.str("senderId")?.str(&sender_id.0)?;
                e.str("targetId")?.str(&target_id.0)?;
                e.str("documentId")?.str(&document_id.to_string())?;
            }
            Message::Ephemeral {
                sender_id,
                target_id,
                document_id,
                count,
                session_id,
                data,
            } => {
                e.map(7)?;
                e.str("type")?.str("ephemeral")?;
                e.str("senderId")?.str(&sender_id.0)?;
                e.str("targetId")?.str(&target_id.0)?;
                e.str("documentId")?.str(&document_id.to_string())?;
                e.str("count")?.u64(*count)?;
                e.str("sessionId")?.str(session_id)?;
                e.str("data")?.bytes(data)?;
            }
            Message::RemoteSubscriptionChange {
                sender_id,
                target_id,
                add,
                remove,
            } => {
                e.map(5)?;
                e.str("type")?.str("remote-subscription-change")?;
                e.str("senderId")?.str(&sender_id.0)?;
                e.str("targetId")?.str(&target_id.0)?;
                e.str("add")?.array(add.len() as u64)?;
                for a in add {
                    e.str(a)?;
                }
                e.str("remove")?.array(remove.len() as u64)?;
                for r in remove {
                    e.str(r)?;
                }
            }
            Message::RemoteHeadsChanged {
                sender_id,
                target_id,
                document_id,
                new_heads,
            } => {
                e.map(5)?;
                e.str("type")?.str("remote-heads-changed")?;
                e.str("senderId")?.str(&sender_id.0)?;
                e.str("targetId")?.str(&target_id.0)?;
                e.str("documentId")?.str(&document_id.to_string())?;
                e.str("newHeads")?.map(new_heads.len() as u64)?;
                for (storage, heads, ts) in new_heads {
                    e.str(storage)?.map(2)?;
                    e.str("heads")?.array(heads.len() as u64)?;
                    for h in heads {
                        e.str(h)?;
                    }
                    e.str("timestamp")?.u64(*ts)?;
                }
            }
            Message::Error { message } => {
                e.map(2)?
                    .str("type")?
                    .str("error")?
                    .str("message")?
                    .str(message)?;
            }
        }
        Ok(())
    }

    /// The `type` string of this message, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Join { .. } => "join",
            Message::Peer { .. } => "peer",
            Message::Leave { .. } => "leave",
            Message::Sync { .. } => "sync",
            Message::Request { .. } => "request",
            Message::DocUnavailable { .. } => "doc-unavailable",
            Message::Ephemeral { .. } => "ephemeral",
            Message::RemoteSubscriptionChange { .. } => "remote-subscription-change",
            Message::RemoteHeadsChanged { .. } => "remote-heads-changed",
            Message::Error { .. } => "error",
        }
    }
}
