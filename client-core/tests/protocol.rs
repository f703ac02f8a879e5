//! The automerge-repo wire protocol (version "1"): the CBOR codec of `protocol::message` and the
//! per-connection state machine of `protocol::session`.
//!
//! - Codec: every variant round-trips (unit tests and the `codec_roundtrip` proptest), frames
//!   written the way the JS client (cbor-x) writes them decode, and malformed input of any kind
//!   is a `CodecError`, never a panic.
//! - Session: `two_peer_story` drives two sessions over a simulated network until no message is
//!   in flight, through concurrent edits, a lost message, a disconnect and a reconnect with
//!   restored sync state; the handshake tests pin down the protocol errors.
//!
//! No sleeps and no sockets: the network is two queues of encoded frames.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;

use bitacora_core::automerge::sync::SyncDoc;
use bitacora_core::automerge::transaction::Transactable;
use bitacora_core::automerge::{
    self, ActorId, AutoCommit, ChangeHash, ObjType, ROOT, ReadDoc, ScalarValue, Value,
};
use bitacora_core::ids::DocumentId;
use bitacora_core::protocol::{
    CodecError, Inbound, Message, PROTOCOL_VERSION, PeerId, PeerMetadata, ProtocolError, Role,
    Session,
};
use minicbor::Encoder;
use minicbor::data::{Tag, Type};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

type Enc = Encoder<Vec<u8>>;
type EncResult = Result<(), minicbor::encode::Error<Infallible>>;

/// Builds one frame by hand, the way another implementation would write it.
fn frame(build: impl FnOnce(&mut Enc) -> EncResult) -> Vec<u8> {
    let mut e = Encoder::new(Vec::new());
    build(&mut e).expect("writing to a Vec cannot fail");
    e.into_writer()
}

fn pid(s: &str) -> PeerId {
    PeerId(s.to_string())
}

fn doc_id() -> DocumentId {
    DocumentId::from_bytes(*b"bitacora-test-01")
}

fn other_doc_id() -> DocumentId {
    DocumentId::from_bytes(*b"bitacora-test-02")
}

fn meta(storage: Option<&str>, ephemeral: bool) -> PeerMetadata {
    PeerMetadata {
        storage_id: storage.map(str::to_string),
        is_ephemeral: ephemeral,
    }
}

/// The keys of an encoded frame, in order, and the CBOR type of each value.
fn keys_and_types(frame: &[u8]) -> Vec<(String, Type)> {
    let mut d = minicbor::Decoder::new(frame);
    let n = d.map().unwrap().expect("we encode definite-length maps");
    let mut out = Vec::new();
    for _ in 0..n {
        let k = d.str().unwrap().to_string();
        let t = d.datatype().unwrap();
        d.skip().unwrap();
        out.push((k, t));
    }
    assert_eq!(
        d.position(),
        frame.len(),
        "one map per frame, nothing after it"
    );
    out
}

fn sorted_keys(frame: &[u8]) -> Vec<String> {
    let mut k: Vec<String> = keys_and_types(frame).into_iter().map(|(k, _)| k).collect();
    k.sort();
    k
}

fn roundtrip(m: &Message) -> Message {
    Message::decode(&m.encode()).unwrap_or_else(|e| panic!("{m:?} does not decode: {e}"))
}

/// A real automerge sync message, so that `data` fields carry realistic bytes.
fn some_sync_bytes() -> Vec<u8> {
    let mut doc = AutoCommit::new();
    doc.put(ROOT, "k", "v").unwrap();
    doc.sync()
        .generate_sync_message(&mut automerge::sync::State::new())
        .unwrap()
        .encode()
}

// ---------------------------------------------------------------------------------------------
// 1. Round trips
// ---------------------------------------------------------------------------------------------

#[test]
fn join_roundtrips_and_sends_peer_metadata() {
    for metadata in [
        None,
        Some(meta(None, true)),
        Some(meta(Some("storage-laptop"), false)),
    ] {
        let m = Message::Join {
            sender_id: pid("laptop"),
            supported_protocol_versions: vec!["1".into()],
            metadata: metadata.clone(),
        };
        assert_eq!(roundtrip(&m), m);
        let keys = sorted_keys(&m.encode());
        let mut want = vec!["senderId", "supportedProtocolVersions", "type"];
        if metadata.is_some() {
            // We send the JS client's key, not the README's `metadata`.
            want.push("peerMetadata");
        }
        want.sort();
        assert_eq!(keys, want);
    }
}

#[test]
fn peer_roundtrips() {
    for metadata in [None, Some(meta(Some("storage-server"), false))] {
        let m = Message::Peer {
            sender_id: pid("server"),
            target_id: pid("laptop"),
            selected_protocol_version: "1".into(),
            metadata,
        };
        assert_eq!(roundtrip(&m), m);
    }
}

#[test]
fn leave_roundtrips() {
    let m = Message::Leave {
        sender_id: pid("laptop"),
    };
    assert_eq!(roundtrip(&m), m);
    assert_eq!(sorted_keys(&m.encode()), ["senderId", "type"]);
}

#[test]
fn sync_and_request_roundtrip_with_bytes_and_bs58_ids() {
    let data = some_sync_bytes();
    for m in [
        Message::Sync {
            sender_id: pid("a"),
            target_id: pid("b"),
            document_id: doc_id(),
            data: data.clone(),
        },
        Message::Request {
            sender_id: pid("a"),
            target_id: pid("b"),
            document_id: doc_id(),
            data: data.clone(),
        },
        Message::Sync {
            sender_id: pid("a"),
            target_id: pid("b"),
            document_id: doc_id(),
            data: Vec::new(),
        },
    ] {
        assert_eq!(roundtrip(&m), m);
        let frame = m.encode();
        let kt: HashMap<String, Type> = keys_and_types(&frame).into_iter().collect();
        assert_eq!(
            sorted_keys(&frame),
            ["data", "documentId", "senderId", "targetId", "type"]
        );
        // `data` is a CBOR byte string (a Uint8Array for cbor-x), the id a bs58check string.
        assert_eq!(kt["data"], Type::Bytes);
        assert_eq!(kt["documentId"], Type::String);
        let mut d = minicbor::Decoder::new(&frame);
        d.map().unwrap();
        while d.str().unwrap() != "documentId" {
            d.skip().unwrap();
        }
        assert_eq!(d.str().unwrap(), doc_id().to_string());
    }
}

#[test]
fn doc_unavailable_roundtrips() {
    let m = Message::DocUnavailable {
        sender_id: pid("server"),
        target_id: pid("laptop"),
        document_id: doc_id(),
    };
    assert_eq!(roundtrip(&m), m);
    assert_eq!(
        sorted_keys(&m.encode()),
        ["documentId", "senderId", "targetId", "type"]
    );
}

#[test]
fn ephemeral_roundtrips() {
    for count in [0, 1, 1 << 40, u64::MAX] {
        let m = Message::Ephemeral {
            sender_id: pid("a"),
            target_id: pid("b"),
            document_id: doc_id(),
            count,
            session_id: "sesion-7".into(),
            data: vec![0xa1, 0x61, 0x78, 0x01],
        };
        assert_eq!(roundtrip(&m), m);
    }
}

#[test]
fn remote_subscription_change_roundtrips() {
    for (add, remove) in [
        (vec![], vec![]),
        (vec!["s1".to_string(), "s2".to_string()], vec![]),
        (vec![], vec!["s3".to_string()]),
    ] {
        let m = Message::RemoteSubscriptionChange {
            sender_id: pid("a"),
            target_id: pid("b"),
            add,
            remove,
        };
        assert_eq!(roundtrip(&m), m);
    }
}

#[test]
fn remote_heads_changed_roundtrips() {
    let m = Message::RemoteHeadsChanged {
        sender_id: pid("a"),
        target_id: pid("b"),
        document_id: doc_id(),
        new_heads: vec![
            (
                "storage-1".into(),
                vec!["aGVhZDE=".into(), "aGVhZDI=".into()],
                1_760_000_000_000,
            ),
            ("storage-2".into(), vec![], 0),
        ],
    };
    assert_eq!(roundtrip(&m), m);
}

#[test]
fn error_roundtrips() {
    for message in ["", "unsupported protocol version", "ñandú ✓"] {
        let m = Message::Error {
            message: message.into(),
        };
        assert_eq!(roundtrip(&m), m);
    }
}

#[test]
fn kinds_are_the_wire_type_strings() {
    let id = doc_id();
    let (a, b) = (pid("a"), pid("b"));
    let all = [
        Message::Join {
            sender_id: a.clone(),
            supported_protocol_versions: vec![],
            metadata: None,
        },
        Message::Peer {
            sender_id: a.clone(),
            target_id: b.clone(),
            selected_protocol_version: "1".into(),
            metadata: None,
        },
        Message::Leave {
            sender_id: a.clone(),
        },
        Message::Sync {
            sender_id: a.clone(),
            target_id: b.clone(),
            document_id: id,
            data: vec![],
        },
        Message::Request {
            sender_id: a.clone(),
            target_id: b.clone(),
            document_id: id,
            data: vec![],
        },
        Message::DocUnavailable {
            sender_id: a.clone(),
            target_id: b.clone(),
            document_id: id,
        },
        Message::Ephemeral {
            sender_id: a.clone(),
            target_id: b.clone(),
            document_id: id,
            count: 0,
            session_id: "s".into(),
            data: vec![],
        },
        Message::RemoteSubscriptionChange {
            sender_id: a.clone(),
            target_id: b.clone(),
            add: vec![],
            remove: vec![],
        },
        Message::RemoteHeadsChanged {
            sender_id: a,
            target_id: b,
            document_id: id,
            new_heads: vec![],
        },
        Message::Error {
            message: "x".into(),
        },
    ];
    for m in &all {
        let frame = m.encode();
        let mut d = minicbor::Decoder::new(&frame);
        d.map().unwrap();
        assert_eq!(d.str().unwrap(), "type");
        assert_eq!(d.str().unwrap(), m.kind());
        assert_eq!(&roundtrip(m), m);
    }
}

fn peer_id_strategy() -> impl Strategy<Value = PeerId> {
    // Non-empty: an empty peer id is not a peer id (the decoder rejects it).
    prop_oneof![
        "[a-zA-Z0-9_-]{1,24}".prop_map(PeerId),
        "\\PC{1,12}".prop_map(PeerId),
    ]
}

fn document_id_strategy() -> impl Strategy<Value = DocumentId> {
    any::<[u8; 16]>().prop_map(DocumentId::from_bytes)
}

fn data_strategy() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..200)
}

fn metadata_strategy() -> impl Strategy<Value = Option<PeerMetadata>> {
    proptest::option::of(
        (proptest::option::of("\\PC{0,20}"), any::<bool>()).prop_map(
            |(storage_id, is_ephemeral)| PeerMetadata {
                storage_id,
                is_ephemeral,
            },
        ),
    )
}

fn strings_strategy() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec("\\PC{0,12}", 0..4)
}

fn message_strategy() -> impl Strategy<Value = Message> {
    let p = peer_id_strategy;
    prop_oneof![
        (p(), strings_strategy(), metadata_strategy()).prop_map(|(sender_id, v, metadata)| {
            Message::Join {
                sender_id,
                supported_protocol_versions: v,
                metadata,
            }
        }),
        (p(), p(), "\\PC{0,4}", metadata_strategy()).prop_map(|(s, t, v, metadata)| {
            Message::Peer {
                sender_id: s,
                target_id: t,
                selected_protocol_version: v,
                metadata,
            }
        }),
        p().prop_map(|sender_id| Message::Leave { sender_id }),
        (
            p(),
            p(),
            document_id_strategy(),
            data_strategy(),
            any::<bool>()
        )
            .prop_map(
                |(sender_id, target_id, document_id, data, request)| if request {
                    Message::Request {
                        sender_id,
                        target_id,
                        document_id,
                        data,
                    }
                } else {
                    Message::Sync {
                        sender_id,
                        target_id,
                        document_id,
                        data,
                    }
                }
            ),
        (p(), p(), document_id_strategy()).prop_map(|(sender_id, target_id, document_id)| {
            Message::DocUnavailable {
                sender_id,
                target_id,
                document_id,
            }
        }),
        (
            p(),
            p(),
            document_id_strategy(),
            any::<u64>(),
            "\\PC{0,16}",
            data_strategy()
        )
            .prop_map(
                |(sender_id, target_id, document_id, count, session_id, data)| {
                    Message::Ephemeral {
                        sender_id,
                        target_id,
                        document_id,
                        count,
                        session_id,
                        data,
                    }
                }
            ),
        (p(), p(), strings_strategy(), strings_strategy()).prop_map(
            |(sender_id, target_id, add, remove)| Message::RemoteSubscriptionChange {
                sender_id,
                target_id,
                add,
                remove,
            }
        ),
        (
            p(),
            p(),
            document_id_strategy(),
            proptest::collection::vec(("\\PC{0,12}", strings_strategy(), any::<u64>()), 0..3)
        )
            .prop_map(|(sender_id, target_id, document_id, new_heads)| {
                Message::RemoteHeadsChanged {
                    sender_id,
                    target_id,
                    document_id,
                    new_heads,
                }
            }),
        "\\PC{0,40}".prop_map(|message| Message::Error { message }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn codec_roundtrip(m in message_strategy()) {
        let frame = m.encode();
        prop_assert_eq!(Message::decode(&frame), Ok(m));
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Frames as the JS client (cbor-x) writes them
// ---------------------------------------------------------------------------------------------

/// A `join` exactly as automerge-repo-network-websocket's client sends it.
#[test]
fn js_join_with_peer_metadata() {
    let f = frame(|e| {
        e.map(4)?;
        e.str("type")?.str("join")?;
        e.str("senderId")?.str("peer-js-1")?;
        e.str("peerMetadata")?
            .map(2)?
            .str("storageId")?
            .str("storage-js")?
            .str("isEphemeral")?
            .bool(false)?;
        e.str("supportedProtocolVersions")?.array(1)?.str("1")?;
        Ok(())
    });
    assert_eq!(
        Message::decode(&f),
        Ok(Message::Join {
            sender_id: pid("peer-js-1"),
            supported_protocol_versions: vec!["1".into()],
            metadata: Some(meta(Some("storage-js"), false)),
        })
    );
}

/// The README's CDDL calls the field `metadata`.
#[test]
fn readme_metadata_key_is_accepted() {
    let f = frame(|e| {
        e.map(5)?;
        e.str("type")?.str("peer")?;
        e.str("senderId")?.str("server")?;
        e.str("targetId")?.str("laptop")?;
        e.str("selectedProtocolVersion")?.str("1")?;
        e.str("metadata")?.map(1)?.str("isEphemeral")?.bool(true)?;
        Ok(())
    });
    assert_eq!(
        Message::decode(&f),
        Ok(Message::Peer {
            sender_id: pid("server"),
            target_id: pid("laptop"),
            selected_protocol_version: "1".into(),
            metadata: Some(meta(None, true)),
        })
    );
}

/// cbor-x writes `undefined` for a property that is present with value `undefined`; other
/// writers use `null`. Both mean absent.
#[test]
fn undefined_and_null_mean_absent() {
    for absent in [true, false] {
        let nothing = |e: &mut Enc| -> EncResult {
            if absent {
                e.undefined()?;
            } else {
                e.null()?;
            }
            Ok(())
        };
        // storageId absent inside peerMetadata.
        let f = frame(|e| {
            e.map(4)?;
            e.str("type")?.str("join")?;
            e.str("senderId")?.str("peer-js-1")?;
            e.str("supportedProtocolVersions")?.array(1)?.str("1")?;
            e.str("peerMetadata")?.map(2)?.str("storageId")?;
            nothing(e)?;
            e.str("isEphemeral")?.bool(true)?;
            Ok(())
        });
        assert_eq!(
            Message::decode(&f),
            Ok(Message::Join {
                sender_id: pid("peer-js-1"),
                supported_protocol_versions: vec!["1".into()],
                metadata: Some(meta(None, true)),
            })
        );

        // The whole peerMetadata absent.
        let f = frame(|e| {
            e.map(4)?;
            e.str("type")?.str("join")?;
            e.str("senderId")?.str("peer-js-1")?;
            e.str("supportedProtocolVersions")?.array(1)?.str("1")?;
            e.str("peerMetadata")?;
            nothing(e)?;
            Ok(())
        });
        assert!(matches!(
            Message::decode(&f),
            Ok(Message::Join { metadata: None, .. })
        ));

        // A subscribe-only `remote-subscription-change` with `remove: undefined`, and the
        // reverse.
        for (add_absent, remove_absent) in [(false, true), (true, false), (true, true)] {
            let f = frame(|e| {
                e.map(5)?;
                e.str("type")?.str("remote-subscription-change")?;
                e.str("senderId")?.str("a")?;
                e.str("targetId")?.str("b")?;
                e.str("add")?;
                if add_absent {
                    nothing(e)?;
                } else {
                    e.array(1)?.str("s1")?;
                }
                e.str("remove")?;
                if remove_absent {
                    nothing(e)?;
                } else {
                    e.array(1)?.str("s2")?;
                }
                Ok(())
            });
            let want = |absent: bool, s: &str| {
                if absent { vec![] } else { vec![s.to_string()] }
            };
            assert_eq!(
                Message::decode(&f),
                Ok(Message::RemoteSubscriptionChange {
                    sender_id: pid("a"),
                    target_id: pid("b"),
                    add: want(add_absent, "s1"),
                    remove: want(remove_absent, "s2"),
                })
            );
        }

        // An optional field that is absent does not excuse a required one.
        let f = frame(|e| {
            e.map(5)?;
            e.str("type")?.str("sync")?;
            e.str("senderId")?.str("a")?;
            e.str("targetId")?.str("b")?;
            e.str("documentId")?.str(&doc_id().to_string())?;
            e.str("data")?;
            nothing(e)?;
            Ok(())
        });
        assert_eq!(Message::decode(&f), Err(CodecError::Missing("data")));
    }
}

/// JS numbers may arrive as CBOR floats (cbor-x writes non-32-bit integers as float64).
#[test]
fn count_and_timestamp_as_floats() {
    for count in [0.0, 3.0, 4_294_967_296.0, 1_760_000_000_123.0] {
        let f = frame(|e| {
            e.map(7)?;
            e.str("type")?.str("ephemeral")?;
            e.str("senderId")?.str("a")?;
            e.str("targetId")?.str("b")?;
            e.str("count")?.f64(count)?;
            e.str("sessionId")?.str("s")?;
            e.str("documentId")?.str(&doc_id().to_string())?;
            e.str("data")?.bytes(&[1, 2, 3])?;
            Ok(())
        });
        assert_eq!(
            Message::decode(&f),
            Ok(Message::Ephemeral {
                sender_id: pid("a"),
                target_id: pid("b"),
                document_id: doc_id(),
                count: count as u64,
                session_id: "s".into(),
                data: vec![1, 2, 3],
            })
        );
    }
    // A float32 too, and a timestamp inside newHeads.
    let f = frame(|e| {
        e.map(5)?;
        e.str("type")?.str("remote-heads-changed")?;
        e.str("senderId")?.str("a")?;
        e.str("targetId")?.str("b")?;
        e.str("documentId")?.str(&doc_id().to_string())?;
        e.str("newHeads")?.map(1)?.str("storage-1")?.map(2)?;
        e.str("heads")?.array(1)?.str("aGVhZA==")?;
        e.str("timestamp")?.f64(1_760_000_000_123.0)?;
        Ok(())
    });
    assert_eq!(
        Message::decode(&f),
        Ok(Message::RemoteHeadsChanged {
            sender_id: pid("a"),
            target_id: pid("b"),
            document_id: doc_id(),
            new_heads: vec![(
                "storage-1".into(),
                vec!["aGVhZA==".into()],
                1_760_000_000_123
            )],
        })
    );
    let f32_count = frame(|e| {
        e.map(7)?;
        e.str("type")?.str("ephemeral")?;
        e.str("senderId")?.str("a")?;
        e.str("targetId")?.str("b")?;
        e.str("count")?.f32(5.0)?;
        e.str("sessionId")?.str("s")?;
        e.str("documentId")?.str(&doc_id().to_string())?;
        e.str("data")?.bytes(&[])?;
        Ok(())
    });
    assert!(matches!(
        Message::decode(&f32_count),
        Ok(Message::Ephemeral { count: 5, .. })
    ));
    // Negative, NaN and infinite counts are not counts.
    for bad in [-1.0, f64::NAN, f64::INFINITY] {
        let f = frame(|e| {
            e.map(7)?;
            e.str("type")?.str("ephemeral")?;
            e.str("senderId")?.str("a")?;
            e.str("targetId")?.str("b")?;
            e.str("count")?.f64(bad)?;
            e.str("sessionId")?.str("s")?;
            e.str("documentId")?.str(&doc_id().to_string())?;
            e.str("data")?.bytes(&[])?;
            Ok(())
        });
        assert_eq!(Message::decode(&f), Err(CodecError::WrongType("count")));
    }
}

/// Streaming encoders write indefinite-length maps, arrays, strings and byte strings.
#[test]
fn indefinite_lengths() {
    let data = some_sync_bytes();
    let (head, tail) = data.split_at(data.len() / 2);
    let id = doc_id().to_string();
    let (id_head, id_tail) = id.split_at(5);
    let f = frame(|e| {
        e.begin_map()?;
        e.str("type")?.str("sync")?;
        e.begin_str()?.str("sender")?.str("Id")?.end()?;
        e.str("peer-js-1")?;
        e.str("targetId")?.str("server")?;
        e.str("documentId")?
            .begin_str()?
            .str(id_head)?
            .str(id_tail)?
            .end()?;
        e.str("data")?
            .begin_bytes()?
            .bytes(head)?
            .bytes(tail)?
            .end()?;
        e.end()?;
        Ok(())
    });
    assert_eq!(
        Message::decode(&f),
        Ok(Message::Sync {
            sender_id: pid("peer-js-1"),
            target_id: pid("server"),
            document_id: doc_id(),
            data: data.clone(),
        })
    );

    let f = frame(|e| {
        e.begin_map()?;
        e.str("type")?.str("join")?;
        e.str("senderId")?.str("peer-js-1")?;
        e.str("supportedProtocolVersions")?
            .begin_array()?
            .str("2")?
            .str("1")?
            .end()?;
        e.str("peerMetadata")?
            .begin_map()?
            .str("isEphemeral")?
            .bool(false)?
            .str("storageId")?
            .str("s")?
            .end()?;
        e.end()?;
        Ok(())
    });
    assert_eq!(
        Message::decode(&f),
        Ok(Message::Join {
            sender_id: pid("peer-js-1"),
            supported_protocol_versions: vec!["2".into(), "1".into()],
            metadata: Some(meta(Some("s"), false)),
        })
    );
}

/// Newer peers add keys; they are skipped, whatever their type and wherever they are.
#[test]
fn unknown_keys_are_skipped() {
    let data = some_sync_bytes();
    let f = frame(|e| {
        e.map(9)?;
        e.str("protocolExtension")?
            .map(1)?
            .str("x")?
            .array(2)?
            .u8(1)?
            .null()?;
        e.str("type")?.str("request")?;
        e.str("senderId")?.str("peer-js-1")?;
        e.str("futureFlag")?.bool(true)?;
        e.str("targetId")?.str("server")?;
        e.str("documentId")?.str(&doc_id().to_string())?;
        e.str("blob")?.tag(Tag::new(64))?.bytes(&[1, 2, 3])?;
        e.str("data")?.bytes(&data)?;
        e.str("nested")?
            .begin_array()?
            .begin_map()?
            .str("a")?
            .i64(-7)?
            .end()?
            .f64(1.5)?
            .undefined()?
            .end()?;
        Ok(())
    });
    assert_eq!(
        Message::decode(&f),
        Ok(Message::Request {
            sender_id: pid("peer-js-1"),
            target_id: pid("server"),
            document_id: doc_id(),
            data: data.clone(),
        })
    );
    // Unknown keys inside peerMetadata too.
    let f = frame(|e| {
        e.map(4)?;
        e.str("type")?.str("join")?;
        e.str("senderId")?.str("peer-js-1")?;
        e.str("supportedProtocolVersions")?.array(1)?.str("1")?;
        e.str("peerMetadata")?.map(3)?;
        e.str("isEphemeral")?.bool(false)?;
        e.str("role")?.array(1)?.str("teacher")?;
        e.str("storageId")?.str("s")?;
        Ok(())
    });
    assert_eq!(
        Message::decode(&f),
        Ok(Message::Join {
            sender_id: pid("peer-js-1"),
            supported_protocol_versions: vec!["1".into()],
            metadata: Some(meta(Some("s"), false)),
        })
    );
}

/// cbor-x may tag typed arrays (tag 64 is a Uint8Array); the bytes are the same.
#[test]
fn tagged_uint8array_data_is_bytes() {
    let data = some_sync_bytes();
    let f = frame(|e| {
        e.map(5)?;
        e.str("type")?.str("sync")?;
        e.str("senderId")?.str("a")?;
        e.str("targetId")?.str("b")?;
        e.str("documentId")?.str(&doc_id().to_string())?;
        e.str("data")?.tag(Tag::new(64))?.bytes(&data)?;
        Ok(())
    });
    assert!(matches!(Message::decode(&f), Ok(Message::Sync { data: d, .. }) if d == data));
}

// ---------------------------------------------------------------------------------------------
// 3. Malformed input
// ---------------------------------------------------------------------------------------------

fn sync_frame_with(build_data: impl FnOnce(&mut Enc) -> EncResult) -> Vec<u8> {
    frame(|e| {
        e.map(5)?;
        e.str("type")?.str("sync")?;
        e.str("senderId")?.str("a")?;
        e.str("targetId")?.str("b")?;
        e.str("documentId")?.str(&doc_id().to_string())?;
        e.str("data")?;
        build_data(e)
    })
}

#[test]
fn not_a_map() {
    let cases: Vec<Vec<u8>> = vec![
        vec![],
        frame(|e| e.array(0).map(|_| ())),
        frame(|e| e.u64(7).map(|_| ())),
        frame(|e| e.str("type").map(|_| ())),
        frame(|e| e.bytes(b"{}").map(|_| ())),
        frame(|e| e.null().map(|_| ())),
        b"{\"type\":\"join\"}".to_vec(),
    ];
    for f in cases {
        assert!(
            matches!(Message::decode(&f), Err(CodecError::NotAMap(_))),
            "{f:02x?}: {:?}",
            Message::decode(&f)
        );
    }
}

#[test]
fn missing_or_unknown_type() {
    let f = frame(|e| {
        e.map(2)?
            .str("senderId")?
            .str("a")?
            .str("targetId")?
            .str("b")?;
        Ok(())
    });
    assert_eq!(Message::decode(&f), Err(CodecError::Missing("type")));
    let f = frame(|e| e.map(0).map(|_| ()));
    assert_eq!(Message::decode(&f), Err(CodecError::Missing("type")));
    let f = frame(|e| {
        e.map(2)?
            .str("type")?
            .undefined()?
            .str("senderId")?
            .str("a")?;
        Ok(())
    });
    assert_eq!(Message::decode(&f), Err(CodecError::Missing("type")));

    let f = frame(|e| {
        e.map(2)?
            .str("type")?
            .str("sync-v9")?
            .str("senderId")?
            .str("a")?;
        Ok(())
    });
    assert_eq!(
        Message::decode(&f),
        Err(CodecError::UnknownType("sync-v9".into()))
    );
    // A type that is not a string.
    let f = frame(|e| {
        e.map(1)?.str("type")?.u8(3)?;
        Ok(())
    });
    assert_eq!(Message::decode(&f), Err(CodecError::WrongType("type")));
    // A huge unknown type is reported truncated, not echoed whole.
    let long = "x".repeat(100_000);
    let f = frame(|e| {
        e.map(1)?.str("type")?.str(&long)?;
        Ok(())
    });
    match Message::decode(&f) {
        Err(CodecError::UnknownType(t)) => assert!(t.len() <= 256, "{}", t.len()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn missing_or_invalid_document_id() {
    let f = frame(|e| {
        e.map(4)?;
        e.str("type")?.str("sync")?;
        e.str("senderId")?.str("a")?;
        e.str("targetId")?.str("b")?;
        e.str("data")?.bytes(&[])?;
        Ok(())
    });
    assert_eq!(Message::decode(&f), Err(CodecError::Missing("documentId")));

    let good = doc_id().to_string();
    let mut flipped = good.clone().into_bytes();
    flipped[3] = if flipped[3] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    for bad in [
        "",
        "not-base58-0OIl",
        flipped.as_str(),                                    // bad checksum
        "2j9kzK3PBaZn",                                      // not 16 bytes
        &bs58::encode([7u8; 32]).with_check().into_string(), // 32 bytes
    ] {
        let f = frame(|e| {
            e.map(4)?;
            e.str("type")?.str("doc-unavailable")?;
            e.str("senderId")?.str("a")?;
            e.str("targetId")?.str("b")?;
            e.str("documentId")?.str(bad)?;
            Ok(())
        });
        assert_eq!(
            Message::decode(&f),
            Err(CodecError::BadDocumentId(bad.to_string())),
            "{bad}"
        );
    }
    // A document id that is not a string at all.
    let f = frame(|e| {
        e.map(4)?;
        e.str("type")?.str("doc-unavailable")?;
        e.str("senderId")?.str("a")?;
        e.str("targetId")?.str("b")?;
        e.str("documentId")?.u64(12)?;
        Ok(())
    });
    assert_eq!(
        Message::decode(&f),
        Err(CodecError::WrongType("documentId"))
    );
}

#[test]
fn data_of_the_wrong_type() {
    let cases = [
        sync_frame_with(|e| e.str("AAEC").map(|_| ())),
        sync_frame_with(|e| e.array(2)?.u8(1)?.u8(2).map(|_| ())),
        sync_frame_with(|e| e.u64(5).map(|_| ())),
        sync_frame_with(|e| e.map(0).map(|_| ())),
        sync_frame_with(|e| e.tag(Tag::new(64))?.str("x").map(|_| ())),
    ];
    for f in cases {
        assert_eq!(
            Message::decode(&f),
            Err(CodecError::WrongType("data")),
            "{f:02x?}"
        );
    }
    // Other required fields of the wrong type.
    let f = frame(|e| {
        e.map(3)?;
        e.str("type")?.str("join")?;
        e.str("senderId")?.bytes(b"a")?;
        e.str("supportedProtocolVersions")?.array(1)?.str("1")?;
        Ok(())
    });
    assert_eq!(Message::decode(&f), Err(CodecError::WrongType("senderId")));
    let f = frame(|e| {
        e.map(3)?;
        e.str("type")?.str("join")?;
        e.str("senderId")?.str("a")?;
        e.str("supportedProtocolVersions")?.str("1")?;
        Ok(())
    });
    assert_eq!(
        Message::decode(&f),
        Err(CodecError::WrongType("supportedProtocolVersions"))
    );
    let f = frame(|e| {
        e.map(3)?;
        e.str("type")?.str("join")?;
        e.str("senderId")?.str("a")?;
        e.str("supportedProtocolVersions")?
            .array(2)?
            .str("1")?
            .u8(2)?;
        Ok(())
    });
    assert_eq!(
        Message::decode(&f),
        Err(CodecError::WrongType("supportedProtocolVersions"))
    );
    // An empty sender id is no sender id.
    let f = frame(|e| {
        e.map(2)?
            .str("type")?
            .str("leave")?
            .str("senderId")?
            .str("")?;
        Ok(())
    });
    assert_eq!(Message::decode(&f), Err(CodecError::Missing("senderId")));
    // A non-string key.
    let f = frame(|e| {
        e.map(2)?.str("type")?.str("leave")?.u8(1)?.str("a")?;
        Ok(())
    });
    assert!(Message::decode(&f).is_err());
}

#[test]
fn trailing_bytes_are_rejected() {
    let good = Message::Leave {
        sender_id: pid("a"),
    }
    .encode();
    for extra in [&[0x00][..], &[0xa0], &[0xff], &good] {
        let mut f = good.clone();
        f.extend_from_slice(extra);
        assert_eq!(
            Message::decode(&f),
            Err(CodecError::Trailing),
            "{extra:02x?}"
        );
    }
}

#[test]
fn truncated_frames_are_errors() {
    let m = Message::Sync {
        sender_id: pid("peer-js-1"),
        target_id: pid("server"),
        document_id: doc_id(),
        data: some_sync_bytes(),
    };
    let f = m.encode();
    for n in 0..f.len() {
        assert!(Message::decode(&f[..n]).is_err(), "prefix of {n} bytes");
    }
    assert_eq!(Message::decode(&f), Ok(m));
}

/// Junk of any depth under an unknown key is skipped without recursion; truncated junk is an
/// error.
#[test]
fn deeply_nested_junk_in_an_unknown_key() {
    const DEPTH: usize = 200_000;
    let with_junk = |junk: &[u8]| {
        let mut f = frame(|e| {
            e.map(3)?
                .str("type")?
                .str("leave")?
                .str("senderId")?
                .str("a")?;
            e.str("junk")?;
            Ok(())
        });
        f.extend_from_slice(junk);
        f
    };
    let leave = Ok(Message::Leave {
        sender_id: pid("a"),
    });

    // [[[[...0...]]]] with definite lengths.
    let mut junk = vec![0x81; DEPTH];
    junk.push(0x00);
    assert_eq!(Message::decode(&with_junk(&junk)), leave);

    // The same with indefinite lengths.
    let mut junk = vec![0x9f; DEPTH];
    junk.extend(std::iter::repeat_n(0xff, DEPTH));
    assert_eq!(Message::decode(&with_junk(&junk)), leave);

    // Maps of maps: {"k": {"k": ...}}.
    let mut junk = Vec::new();
    for _ in 0..DEPTH / 4 {
        junk.extend_from_slice(&[0xa1, 0x61, b'k']);
    }
    junk.push(0xf6);
    assert_eq!(Message::decode(&with_junk(&junk)), leave);

    // A long chain of tags.
    let mut junk = vec![0xc0; DEPTH];
    junk.push(0x00);
    assert_eq!(Message::decode(&with_junk(&junk)), leave);

    // Truncated nesting: an error, not a hang or a panic.
    assert!(Message::decode(&with_junk(&vec![0x81; DEPTH])).is_err());
    assert!(Message::decode(&with_junk(&vec![0x9f; DEPTH])).is_err());
    // A declared length far beyond the input.
    let huge = frame(|e| e.array(u64::MAX).map(|_| ()));
    assert!(Message::decode(&with_junk(&huge)).is_err());
    let huge = frame(|e| e.map(u64::MAX).map(|_| ()));
    assert!(Message::decode(&huge).is_err());
}

/// The same in the fields the decoder does look into: a long chain of tags before `data`
/// (cbor-x tags typed arrays) must not recurse once per tag.
#[test]
fn long_tag_chain_in_data_does_not_overflow_the_stack() {
    let data = some_sync_bytes();
    let f = sync_frame_with(|e| {
        for _ in 0..200_000 {
            e.tag(Tag::new(64))?;
        }
        e.bytes(&data)?;
        Ok(())
    });
    // Run on a thread with a small stack, as a server's connection task might have.
    let handle = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || Message::decode(&f).map(|m| matches!(m, Message::Sync { .. })))
        .unwrap();
    // (An overflow aborts the whole test binary: that is the failure this test exists for.)
    let r = handle.join().expect("decoding does not panic");
    assert_eq!(r, Ok(true));
}

/// Typed frames with random junk in every field the decoder reads.
fn junk_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..12),
        Just(vec![0xf7]),
        Just(vec![0xf6]),
        Just(vec![0x9f, 0xff]),
        Just(vec![0xbf, 0xff]),
        Just(vec![0xfb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0]),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    /// Arbitrary bytes: `decode` returns, and never panics.
    #[test]
    fn decode_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Message::decode(&bytes);
    }

    /// Valid frames with bytes flipped, cut or spliced: still Ok or Err, never a panic.
    #[test]
    fn decode_never_panics_on_mutated_frames(
        m in message_strategy(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
        cut_it in any::<bool>(),
    ) {
        let mut f = m.encode();
        for (at, byte) in edits {
            let i = at.index(f.len());
            f[i] = byte;
        }
        if cut_it {
            f.truncate(cut.index(f.len() + 1));
        }
        let _ = Message::decode(&f);
    }

    /// Every known key with a value of a random type.
    #[test]
    fn decode_never_panics_on_junk_values(
        ty in prop::sample::select(vec![
            "join", "peer", "leave", "sync", "request", "doc-unavailable", "ephemeral",
            "remote-subscription-change", "remote-heads-changed", "error",
        ]),
        values in proptest::collection::vec((prop::sample::select(vec![
            "senderId", "targetId", "documentId", "data", "supportedProtocolVersions",
            "selectedProtocolVersion", "peerMetadata", "metadata", "message", "sessionId",
            "count", "add", "remove", "newHeads",
        ]), junk_value()), 0..8),
    ) {
        let mut f = frame(|e| {
            e.map(values.len() as u64 + 1)?.str("type")?.str(ty)?;
            Ok(())
        });
        for (k, v) in &values {
            f.extend_from_slice(&frame(|e| e.str(k).map(|_| ())));
            f.extend_from_slice(v);
        }
        let _ = Message::decode(&f);
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Two peers, one document
// ---------------------------------------------------------------------------------------------

/// One side of the connection: its session, its copy of the document and the sync states it
/// persisted, keyed by the other side's storage id.
struct Side {
    session: Session,
    doc: AutoCommit,
    persisted: HashMap<String, Vec<u8>>,
}

impl Side {
    fn new(role: Role, name: &str, storage: &str, doc: AutoCommit) -> Side {
        Side {
            session: Session::new(role, pid(name), meta(Some(storage), false)),
            doc,
            persisted: HashMap::new(),
        }
    }

    /// Reconnects: a new session, the same document and store.
    fn reconnect(self, role: Role) -> Side {
        let us = self.session.our_id().clone();
        let storage = format!("storage-{us}");
        Side {
            session: Session::new(role, us, meta(Some(&storage), false)),
            ..self
        }
    }

    /// Persists the sync state of the document under the peer's storage id.
    fn persist(&mut self, id: DocumentId) {
        let key = self
            .session
            .peer_storage_id()
            .expect("a non-ephemeral peer with a storage id")
            .to_string();
        let state = self.session.encode_state(&id).expect("state for the doc");
        self.persisted.insert(key, state);
    }

    /// Once the handshake tells who the peer is, restores what we persisted about it.
    fn restore(&mut self, id: DocumentId) {
        let key = self.session.peer_storage_id().map(str::to_string);
        if let Some(state) = key.and_then(|k| self.persisted.get(&k)) {
            self.session.restore_state(id, state);
        }
    }

    fn heads(&mut self) -> Vec<ChangeHash> {
        let mut h = self.doc.get_heads();
        h.sort();
        h
    }

    fn in_sync(&mut self, id: DocumentId) -> bool {
        let heads = self.doc.get_heads();
        self.session.in_sync(&id, &heads)
    }

    /// Handles one incoming frame; returns the frames to send back.
    fn handle(&mut self, id: DocumentId, frame: &[u8]) -> Vec<Message> {
        match self.session.receive_frame(frame).expect("a valid frame") {
            Inbound::Reply(peer) => {
                // The acceptor answered a join: it now knows the peer.
                self.restore(id);
                vec![peer]
            }
            Inbound::Ready => {
                // The initiator finished the handshake and opens the document.
                self.restore(id);
                self.session
                    .generate(id, &self.doc.sync())
                    .into_iter()
                    .collect()
            }
            Inbound::Sync {
                document_id,
                data,
                request,
            } => {
                assert_eq!(document_id, id);
                assert!(!request);
                let msg = Session::decode_sync(&data).expect("a valid sync message");
                self.session
                    .apply(document_id, &mut self.doc.sync(), msg)
                    .expect("applies");
                self.session
                    .generate(document_id, &self.doc.sync())
                    .into_iter()
                    .collect()
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Two queues of encoded frames and what went through them.
#[derive(Default)]
struct Net {
    to_acceptor: VecDeque<Vec<u8>>,
    to_initiator: VecDeque<Vec<u8>>,
    sync_messages: usize,
    sync_bytes: usize,
    handshake_messages: usize,
}

impl Net {
    /// Encodes a message and puts it on the wire towards one side.
    fn send(&mut self, to_acceptor: bool, m: &Message) {
        let frame = m.encode();
        // Everything that goes on the wire must decode on the other side.
        assert_eq!(Message::decode(&frame).as_ref(), Ok(m));
        match m {
            Message::Sync { .. } | Message::Request { .. } => {
                self.sync_messages += 1;
                self.sync_bytes += frame.len();
            }
            _ => self.handshake_messages += 1,
        }
        if to_acceptor {
            self.to_acceptor.push_back(frame);
        } else {
            self.to_initiator.push_back(frame);
        }
    }

    fn send_to_acceptor(&mut self, m: &Message) {
        self.send(true, m);
    }

    fn send_to_initiator(&mut self, m: &Message) {
        self.send(false, m);
    }

    fn in_flight(&self) -> usize {
        self.to_acceptor.len() + self.to_initiator.len()
    }

    /// Delivers one frame to the acceptor, if any; returns whether it did.
    fn deliver_to_acceptor(&mut self, acc: &mut Side, id: DocumentId) -> bool {
        let Some(f) = self.to_acceptor.pop_front() else {
            return false;
        };
        for m in acc.handle(id, &f) {
            self.send_to_initiator(&m);
        }
        true
    }

    fn deliver_to_initiator(&mut self, init: &mut Side, id: DocumentId) -> bool {
        let Some(f) = self.to_initiator.pop_front() else {
            return false;
        };
        for m in init.handle(id, &f) {
            self.send_to_acceptor(&m);
        }
        true
    }

    /// Delivers frames alternately until none is in flight.
    fn run(&mut self, init: &mut Side, acc: &mut Side, id: DocumentId) {
        for _ in 0..200 {
            let a = self.deliver_to_acceptor(acc, id);
            let b = self.deliver_to_initiator(init, id);
            if !a && !b {
                assert_eq!(self.in_flight(), 0);
                return;
            }
        }
        panic!("the sessions did not become quiescent after 400 frames");
    }
}

/// Connects two sides: join, peer, then the initiator's first sync message, until quiescent.
fn connect_and_sync(init: &mut Side, acc: &mut Side, id: DocumentId) -> Net {
    let mut net = Net::default();
    net.send_to_acceptor(&init.session.join());
    net.run(init, acc, id);
    assert_eq!(net.handshake_messages, 2);
    assert!(init.session.peer().is_some() && acc.session.peer().is_some());
    net
}

fn actor(name: &str) -> ActorId {
    ActorId::from(name.as_bytes())
}

fn text_of(doc: &AutoCommit, key: &str) -> String {
    let (_, obj) = doc.get(ROOT, key).unwrap().expect("the text exists");
    doc.text(&obj).unwrap()
}

fn splice(doc: &mut AutoCommit, key: &str, at_end: bool, s: &str) {
    let (_, obj) = doc.get(ROOT, key).unwrap().expect("the text exists");
    let pos = if at_end { doc.length(&obj) } else { 0 };
    doc.splice_text(&obj, pos, 0, s).unwrap();
}

fn assert_converged(init: &mut Side, acc: &mut Side, id: DocumentId) {
    assert_eq!(init.heads(), acc.heads(), "same heads");
    assert_eq!(
        init.doc.hydrate(ROOT, None).unwrap(),
        acc.doc.hydrate(ROOT, None).unwrap(),
        "same contents"
    );
    assert!(init.in_sync(id), "the initiator knows it is in sync");
    assert!(acc.in_sync(id), "the acceptor knows it is in sync");
    assert_eq!(
        init.session.their_heads(&id).map(|mut h| {
            h.sort();
            h
        }),
        Some(init.heads())
    );
    assert_eq!(
        acc.session.their_heads(&id).map(|mut h| {
            h.sort();
            h
        }),
        Some(acc.heads())
    );
}

#[test]
fn two_peer_story() {
    let id = doc_id();

    // A common base: the school's document as both replicas got it (say, from a bundle).
    let mut base = AutoCommit::new().with_actor(actor("base-escuela-01"));
    base.put(ROOT, "cct", "07DPR0123X").unwrap();
    base.put(ROOT, "turno", "matutino").unwrap();
    let notas = base.put_object(ROOT, "notas", ObjType::Text).unwrap();
    base.put_object(ROOT, "acuerdos", ObjType::List).unwrap();
    base.commit();
    // Typed a few characters at a time, as the editor commits: a history of ~150 changes, so
    // that a sync from scratch has something to summarise that a restored one does not.
    let typed = "Sesión de CTE.";
    let mut pos = 0;
    for round in 0..10 {
        for c in typed.chars() {
            base.splice_text(&notas, pos, 0, &c.to_string()).unwrap();
            pos += 1;
            base.commit();
        }
        if round < 9 {
            base.splice_text(
                &notas,
                pos - typed.chars().count(),
                typed.chars().count() as isize,
                "",
            )
            .unwrap();
            pos -= typed.chars().count();
            base.commit();
        }
    }
    let saved = base.save();

    let laptop_doc = AutoCommit::load(&saved)
        .unwrap()
        .with_actor(actor("laptop-direccion"));
    let server_doc = AutoCommit::load(&saved)
        .unwrap()
        .with_actor(actor("servidor-zona-07"));
    let mut init = Side::new(Role::Initiator, "laptop", "storage-laptop", laptop_doc);
    let mut acc = Side::new(Role::Acceptor, "server", "storage-server", server_doc);

    // Concurrent edits: different keys, the same key (a conflict), both ends of the text.
    init.doc.put(ROOT, "director", "Mtra. Lupita").unwrap();
    init.doc.put(ROOT, "turno", "vespertino").unwrap();
    splice(&mut init.doc, "notas", true, " Acuerdo: lectura diaria.");
    init.doc.commit();
    acc.doc.put(ROOT, "zona", "07FIZ0014").unwrap();
    acc.doc.put(ROOT, "turno", "completo").unwrap();
    splice(&mut acc.doc, "notas", false, "[revisado] ");
    let acuerdos = acc.doc.get(ROOT, "acuerdos").unwrap().unwrap().1;
    acc.doc.insert(&acuerdos, 0, "uniformes").unwrap();
    acc.doc.commit();
    assert_ne!(init.heads(), acc.heads());

    let net = connect_and_sync(&mut init, &mut acc, id);
    assert_converged(&mut init, &mut acc, id);
    assert_eq!(
        text_of(&init.doc, "notas"),
        "[revisado] Sesión de CTE. Acuerdo: lectura diaria."
    );
    assert_eq!(
        init.doc.get_all(ROOT, "turno").unwrap().len(),
        2,
        "a conflict, kept"
    );
    for key in ["director", "zona", "cct"] {
        assert!(acc.doc.get(ROOT, key).unwrap().is_some(), "{key}");
    }
    let first_round = net.sync_messages;
    assert!(first_round >= 2, "{first_round}");
    assert_eq!(
        init.session.stats.sync_messages_out,
        acc.session.stats.sync_messages_in
    );
    assert_eq!(
        acc.session.stats.sync_messages_out,
        init.session.stats.sync_messages_in
    );
    println!(
        "round 1: {first_round} sync messages, {} bytes",
        net.sync_bytes
    );

    // Round two: more concurrent edits, a sync that starts on the same connection...
    init.doc.put(ROOT, "fase", "intensiva").unwrap();
    splice(&mut init.doc, "notas", true, " Próxima sesión: viernes.");
    init.doc.commit();
    acc.doc.put(ROOT, "supervisor", "Don Chema").unwrap();
    acc.doc
        .put(&acuerdos, 0, ScalarValue::Str("uniformes limpios".into()))
        .unwrap();
    acc.doc.commit();

    let mut net = Net::default();
    let first = init
        .session
        .generate(id, &init.doc.sync())
        .expect("news to send");
    net.send_to_acceptor(&first);
    assert!(net.deliver_to_acceptor(&mut acc, id));
    // ...whose answer is lost with the connection.
    assert_eq!(net.to_initiator.len(), 1, "the acceptor answered");
    net.to_initiator.clear();
    assert!(
        acc.doc.get(ROOT, "fase").unwrap().is_some(),
        "it got the laptop's edits"
    );
    assert!(
        init.doc.get(ROOT, "supervisor").unwrap().is_none(),
        "the answer was lost"
    );

    // Both persist what they know about the other and the connection drops.
    init.persist(id);
    acc.persist(id);
    assert!(init.persisted.contains_key("storage-server"));
    assert!(acc.persisted.contains_key("storage-laptop"));
    let (laptop_after_drop, server_after_drop) = (init.doc.clone(), acc.doc.clone());
    let mut init = init.reconnect(Role::Initiator);
    let mut acc = acc.reconnect(Role::Acceptor);
    assert!(!init.in_sync(id), "nothing is known before the handshake");

    // Reconnect: the handshake tells each side whose state to restore.
    let restored = connect_and_sync(&mut init, &mut acc, id);
    assert_converged(&mut init, &mut acc, id);
    assert_eq!(
        text_of(&acc.doc, "notas"),
        "[revisado] Sesión de CTE. Acuerdo: lectura diaria. Próxima sesión: viernes."
    );
    assert_eq!(
        init.doc.get(&acuerdos, 0).unwrap().map(|(v, _)| v),
        Some(Value::Scalar(std::borrow::Cow::Owned(ScalarValue::Str(
            "uniformes limpios".into()
        ))))
    );

    // The same documents synced from scratch (no persisted state) need at least as much.
    let mut init0 = Side::new(
        Role::Initiator,
        "laptop",
        "storage-laptop",
        laptop_after_drop,
    );
    let mut acc0 = Side::new(
        Role::Acceptor,
        "server",
        "storage-server",
        server_after_drop,
    );
    let scratch = connect_and_sync(&mut init0, &mut acc0, id);
    assert_converged(&mut init0, &mut acc0, id);
    assert_eq!(init0.heads(), init.heads());
    println!(
        "after reconnect: {} sync messages, {} bytes restored; {} messages, {} bytes from scratch",
        restored.sync_messages, restored.sync_bytes, scratch.sync_messages, scratch.sync_bytes
    );
    assert!(
        restored.sync_messages <= scratch.sync_messages,
        "restored {} > scratch {}",
        restored.sync_messages,
        scratch.sync_messages
    );
    assert!(
        restored.sync_bytes <= scratch.sync_bytes,
        "restored {} bytes > scratch {} bytes",
        restored.sync_bytes,
        scratch.sync_bytes
    );

    // Once in sync, a new connection with restored state still confirms it is in sync.
    init.persist(id);
    acc.persist(id);
    let mut init = init.reconnect(Role::Initiator);
    let mut acc = acc.reconnect(Role::Acceptor);
    let idle = connect_and_sync(&mut init, &mut acc, id);
    assert_converged(&mut init, &mut acc, id);
    assert!(
        idle.sync_messages <= restored.sync_messages,
        "{} {}",
        idle.sync_messages,
        restored.sync_messages
    );
}

/// Undecodable persisted state is ignored: the sync costs a round trip more, nothing else.
#[test]
fn corrupt_persisted_state_is_ignored() {
    let id = doc_id();
    let mut a = AutoCommit::new().with_actor(actor("aaaa"));
    a.put(ROOT, "x", 1).unwrap();
    let b = AutoCommit::new().with_actor(actor("bbbb"));
    let mut init = Side::new(Role::Initiator, "laptop", "storage-laptop", a);
    let mut acc = Side::new(Role::Acceptor, "server", "storage-server", b);
    init.persisted
        .insert("storage-server".into(), vec![0xff, 0x00, 0x13]);
    acc.persisted.insert("storage-laptop".into(), vec![]);
    connect_and_sync(&mut init, &mut acc, id);
    assert_converged(&mut init, &mut acc, id);
}

// ---------------------------------------------------------------------------------------------
// 5. Handshake and routing errors
// ---------------------------------------------------------------------------------------------

fn acceptor() -> Session {
    Session::new(
        Role::Acceptor,
        pid("server"),
        meta(Some("storage-server"), false),
    )
}

fn initiator() -> Session {
    Session::new(
        Role::Initiator,
        pid("laptop"),
        meta(Some("storage-laptop"), false),
    )
}

/// An initiator and an acceptor that completed the handshake.
fn joined() -> (Session, Session) {
    let mut init = initiator();
    let mut acc = acceptor();
    let Inbound::Reply(peer) = acc.receive_frame(&init.join().encode()).unwrap() else {
        panic!("no peer reply")
    };
    assert_eq!(init.receive_frame(&peer.encode()), Ok(Inbound::Ready));
    (init, acc)
}

fn sync_from(sender: &str, target: &str) -> Message {
    Message::Sync {
        sender_id: pid(sender),
        target_id: pid(target),
        document_id: doc_id(),
        data: some_sync_bytes(),
    }
}

#[test]
fn handshake_happy_path() {
    let init = initiator();
    let join = init.join();
    assert_eq!(
        join,
        Message::Join {
            sender_id: pid("laptop"),
            supported_protocol_versions: vec![PROTOCOL_VERSION.to_string()],
            metadata: Some(meta(Some("storage-laptop"), false)),
        }
    );
    let mut acc = acceptor();
    assert!(acc.peer().is_none());
    let reply = acc.receive_frame(&join.encode()).unwrap();
    assert_eq!(
        reply,
        Inbound::Reply(Message::Peer {
            sender_id: pid("server"),
            target_id: pid("laptop"),
            selected_protocol_version: "1".into(),
            metadata: Some(meta(Some("storage-server"), false)),
        })
    );
    assert_eq!(acc.peer_storage_id(), Some("storage-laptop"));
    let (init, _) = joined();
    assert_eq!(init.peer().map(|(p, _)| p.clone()), Some(pid("server")));
    assert_eq!(init.peer_storage_id(), Some("storage-server"));
}

#[test]
fn version_negotiation() {
    // A peer that also speaks a future version gets "1".
    let mut acc = acceptor();
    let join = Message::Join {
        sender_id: pid("js"),
        supported_protocol_versions: vec!["2".into(), "1".into()],
        metadata: None,
    };
    assert!(matches!(
        acc.receive(join),
        Ok(Inbound::Reply(Message::Peer { selected_protocol_version, .. })) if selected_protocol_version == "1"
    ));
    // One that only speaks "2" (or nothing) is refused.
    for versions in [vec!["2".to_string()], vec![]] {
        let mut acc = acceptor();
        let join = Message::Join {
            sender_id: pid("js"),
            supported_protocol_versions: versions,
            metadata: None,
        };
        assert!(matches!(
            acc.receive(join),
            Err(ProtocolError::UnsupportedVersion(_))
        ));
        assert!(acc.peer().is_none(), "no handshake after a refusal");
        assert_eq!(
            acc.receive(sync_from("js", "server")),
            Err(ProtocolError::NotJoined("sync"))
        );
    }
    // An acceptor that answers with another version is refused by the initiator.
    let mut init = initiator();
    let peer = Message::Peer {
        sender_id: pid("server"),
        target_id: pid("laptop"),
        selected_protocol_version: "2".into(),
        metadata: None,
    };
    assert_eq!(
        init.receive(peer),
        Err(ProtocolError::UnsupportedVersion("2".into()))
    );
}

#[test]
fn sync_before_join_is_not_joined() {
    let mut acc = acceptor();
    assert_eq!(
        acc.receive_frame(&sync_from("laptop", "server").encode()),
        Err(ProtocolError::NotJoined("sync"))
    );
    let req = Message::Request {
        sender_id: pid("laptop"),
        target_id: pid("server"),
        document_id: doc_id(),
        data: some_sync_bytes(),
    };
    assert_eq!(acc.receive(req), Err(ProtocolError::NotJoined("request")));
    assert_eq!(
        acc.receive(Message::Leave {
            sender_id: pid("laptop")
        }),
        Err(ProtocolError::NotJoined("leave"))
    );
    // The initiator likewise, before the `peer`.
    let mut init = initiator();
    assert_eq!(
        init.receive(sync_from("server", "laptop")),
        Err(ProtocolError::NotJoined("sync"))
    );
    // An error from the peer is always reported.
    assert_eq!(
        acceptor().receive(Message::Error {
            message: "bye".into()
        }),
        Ok(Inbound::PeerError("bye".into()))
    );
}

#[test]
fn second_join_and_wrong_roles_are_errors() {
    let (mut init, mut acc) = joined();
    let again = init.join();
    assert!(matches!(
        acc.receive(again),
        Err(ProtocolError::AlreadyJoined("join"))
    ));
    // The session still talks to the first peer.
    assert_eq!(acc.peer().map(|(p, _)| p.clone()), Some(pid("laptop")));
    let other = Message::Join {
        sender_id: pid("intruso"),
        supported_protocol_versions: vec!["1".into()],
        metadata: None,
    };
    assert!(acc.receive(other).is_err());
    assert_eq!(acc.peer().map(|(p, _)| p.clone()), Some(pid("laptop")));
    // A second `peer` is refused too.
    let peer = Message::Peer {
        sender_id: pid("server"),
        target_id: pid("laptop"),
        selected_protocol_version: "1".into(),
        metadata: None,
    };
    assert!(init.receive(peer.clone()).is_err());
    // An initiator does not accept joins; an acceptor does not accept peers.
    assert!(initiator().receive(init.join()).is_err());
    assert!(acceptor().receive(peer).is_err());
}

#[test]
fn sync_from_another_sender_is_wrong_sender() {
    let (mut init, mut acc) = joined();
    assert_eq!(
        acc.receive(sync_from("mallory", "server")),
        Err(ProtocolError::WrongSender {
            expected: "laptop".into(),
            got: "mallory".into()
        })
    );
    assert_eq!(
        init.receive_frame(&sync_from("mallory", "laptop").encode()),
        Err(ProtocolError::WrongSender {
            expected: "server".into(),
            got: "mallory".into()
        })
    );
    let unavailable = Message::DocUnavailable {
        sender_id: pid("mallory"),
        target_id: pid("laptop"),
        document_id: doc_id(),
    };
    assert!(matches!(
        init.receive(unavailable),
        Err(ProtocolError::WrongSender { .. })
    ));
    // The right sender still gets through, and is counted.
    assert!(matches!(
        acc.receive(sync_from("laptop", "server")),
        Ok(Inbound::Sync { request: false, .. })
    ));
    assert_eq!(acc.stats.sync_messages_in, 1);
    // An undecodable frame or sync payload is an error, not a panic.
    assert!(matches!(
        acc.receive_frame(&[0x01]),
        Err(ProtocolError::Codec(CodecError::NotAMap(_)))
    ));
    assert!(matches!(
        Session::decode_sync(b"not a sync message"),
        Err(ProtocolError::SyncMessage(_))
    ));
}

#[test]
fn request_for_a_missing_document_gets_unavailable() {
    let (mut init, mut acc) = joined();
    let missing = other_doc_id();

    // The laptop has never seen the document: it asks with an empty one.
    let empty = AutoCommit::new();
    let request = init.request(missing, &empty.clone().sync());
    assert!(matches!(&request, Message::Request { document_id, .. } if *document_id == missing));
    let frame = request.encode();

    // The server does not have it either, so it answers doc-unavailable.
    let answer = match acc.receive_frame(&frame).unwrap() {
        Inbound::Sync {
            document_id,
            data,
            request: true,
        } => {
            assert_eq!(document_id, missing);
            Session::decode_sync(&data).expect("a valid (empty) sync message");
            acc.unavailable(document_id)
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(
        answer,
        Message::DocUnavailable {
            sender_id: pid("server"),
            target_id: pid("laptop"),
            document_id: missing,
        }
    );
    assert_eq!(
        init.receive_frame(&answer.encode()),
        Ok(Inbound::Unavailable {
            document_id: missing
        })
    );
}

#[test]
fn request_for_an_existing_document_syncs_it() {
    let (mut init, mut acc) = joined();
    let id = doc_id();
    let mut server_doc = AutoCommit::new().with_actor(actor("servidor"));
    server_doc.put(ROOT, "cct", "07DPR0123X").unwrap();
    let mut laptop_doc = AutoCommit::new().with_actor(actor("laptop"));

    let mut to_acc = VecDeque::from([init.request(id, &laptop_doc.sync()).encode()]);
    let mut to_init: VecDeque<Vec<u8>> = VecDeque::new();
    let mut rounds = 0;
    while !to_acc.is_empty() || !to_init.is_empty() {
        rounds += 1;
        assert!(rounds < 20, "not quiescent");
        if let Some(f) = to_acc.pop_front() {
            let Inbound::Sync {
                document_id, data, ..
            } = acc.receive_frame(&f).unwrap()
            else {
                panic!()
            };
            let msg = Session::decode_sync(&data).unwrap();
            acc.apply(document_id, &mut server_doc.sync(), msg).unwrap();
            if let Some(m) = acc.generate(document_id, &server_doc.sync()) {
                to_init.push_back(m.encode());
            }
        }
        if let Some(f) = to_init.pop_front() {
            let Inbound::Sync {
                document_id,
                data,
                request,
            } = init.receive_frame(&f).unwrap()
            else {
                panic!()
            };
            assert!(!request, "answers to a request are plain syncs");
            let msg = Session::decode_sync(&data).unwrap();
            init.apply(document_id, &mut laptop_doc.sync(), msg)
                .unwrap();
            if let Some(m) = init.generate(document_id, &laptop_doc.sync()) {
                to_acc.push_back(m.encode());
            }
        }
    }
    assert_eq!(laptop_doc.get_heads(), server_doc.get_heads());
    assert_eq!(
        laptop_doc
            .get(ROOT, "cct")
            .unwrap()
            .map(|(v, _)| v.to_string()),
        Some("\"07DPR0123X\"".to_string())
    );
    let heads = laptop_doc.get_heads();
    assert!(init.in_sync(&id, &heads));
    assert!(acc.in_sync(&id, &heads));
}

#[test]
fn ephemeral_leave_and_gossip_are_routed() {
    let (mut init, mut acc) = joined();
    let eph = Message::Ephemeral {
        sender_id: pid("laptop"),
        target_id: pid("server"),
        document_id: doc_id(),
        count: 1,
        session_id: "s".into(),
        data: vec![0xa0],
    };
    assert_eq!(
        acc.receive(eph.clone()),
        Ok(Inbound::Ephemeral {
            document_id: doc_id(),
            message: eph
        })
    );
    let gossip = Message::RemoteSubscriptionChange {
        sender_id: pid("laptop"),
        target_id: pid("server"),
        add: vec!["s".into()],
        remove: vec![],
    };
    assert_eq!(acc.receive(gossip), Ok(Inbound::Ignore));
    assert_eq!(
        init.receive(Message::Leave {
            sender_id: pid("server")
        }),
        Ok(Inbound::Leave)
    );
}

#[test]
fn ephemeral_peers_have_no_storage_id_to_persist_under() {
    let mut acc = acceptor();
    let join = Message::Join {
        sender_id: pid("browser-tab"),
        supported_protocol_versions: vec!["1".into()],
        metadata: Some(meta(Some("storage-tab"), true)),
    };
    acc.receive(join).unwrap();
    assert_eq!(acc.peer_storage_id(), None);
    let mut acc = acceptor();
    let join = Message::Join {
        sender_id: pid("old-client"),
        supported_protocol_versions: vec!["1".into()],
        metadata: None,
    };
    acc.receive(join).unwrap();
    assert_eq!(acc.peer_storage_id(), None);
}
