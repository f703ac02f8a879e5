//! Bytes → the CBOR codec of the sync protocol (`bitacora_core::protocol::Message`).
//!
//! Checked: decoding never panics; whatever decodes re-encodes to a frame that decodes to the
//! same message, and encoding that again gives the same bytes; a decoded frame routed through
//! a protocol session (either role, before and after a handshake) never panics either.

#![no_main]

use bitacora_core::protocol::{Message, PeerId, PeerMetadata, Role, Session};
use libfuzzer_sys::fuzz_target;

fn session(role: Role, joined: bool) -> Session {
    let mut s = Session::new(
        role,
        PeerId("servidor".into()),
        PeerMetadata {
            storage_id: Some("almacen".into()),
            is_ephemeral: false,
        },
    );
    if joined {
        let hello = match role {
            Role::Acceptor => Message::Join {
                sender_id: PeerId("cliente".into()),
                supported_protocol_versions: vec!["1".into()],
                metadata: None,
            },
            Role::Initiator => Message::Peer {
                sender_id: PeerId("cliente".into()),
                target_id: PeerId("servidor".into()),
                selected_protocol_version: "1".into(),
                metadata: None,
            },
        };
        s.receive(hello).expect("handshake");
    }
    s
}

fuzz_target!(|data: &[u8]| {
    let Ok(m) = Message::decode(data) else {
        return;
    };
    let encoded = m.encode();
    let back = Message::decode(&encoded)
        .unwrap_or_else(|e| panic!("re-encoded {m:?} does not decode: {e}"));
    assert_eq!(back, m, "decode(encode(m)) != m");
    assert_eq!(back.encode(), encoded, "encoding is not stable");
    for role in [Role::Acceptor, Role::Initiator] {
        for joined in [false, true] {
            let _ = session(role, joined).receive_frame(data);
        }
    }
    if let Message::Sync { data, .. } | Message::Request { data, .. } = &m {
        let _ = Session::decode_sync(data);
    }
});
