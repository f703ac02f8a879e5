//! The automerge-repo sync protocol: the wire codec ([`message`]) and the per-connection state
//! machine ([`session`]). Neither does I/O; the server's socket loop and the client's sync
//! engine drive them.

pub mod changes;
pub mod message;
pub mod session;

pub use message::{CodecError, Message, PROTOCOL_VERSION, PeerId, PeerMetadata};
pub use session::{Inbound, ProtocolError, Role, Session};
