//! Writes the committed seed corpus (`fuzz/corpus/<target>/`) and the `protocol_codec`
//! dictionary (`fuzz/protocol_codec.dict`): frames written by the codec's own encoder and as the
//! JavaScript client writes them, sync scripts, real bundles and real tokens, plus a few broken
//! ones of each. Deterministic: running it again rewrites the same files (and keeps the
//! `regression-*` inputs, crashes found by fuzzing, which are not generated).
//!
//! ```sh
//! cd fuzz && cargo run --example seeds
//! ```

use std::path::{Path, PathBuf};

use automerge::sync::{self, SyncDoc};
use automerge::{AutoCommit, ChangeHash};
use bitacora_core::bundle::{self, Bundle, BundleDoc, BundleHeader, genesis_de};
use bitacora_core::ids::{Cct, DocumentId, RecordId};
use bitacora_core::model::{Ctx, escuela, genesis_actor, zona};
use bitacora_core::protocol::{Message, PeerId, PeerMetadata};
use bitacora_core::store::DocInfo;
use bitacora_fuzz::claves::{self, firmar_eddsa, firmar_hs256};
use bitacora_fuzz::escena::{self, USUARIOS};
use bitacora_fuzz::guion::{Op, Paso, escribir, escribir_ops};
use minicbor::Encoder;
use sha2::{Digest, Sha256};

fn main() {
    let raiz = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "corpus".into()));
    let codec = frames();
    escribir_todos(&raiz.join("protocol_codec"), &codec);
    escribir_todos(&raiz.join("sync_server"), &guiones(&codec));
    escribir_todos(&raiz.join("bundle_import"), &paquetes());
    escribir_todos(&raiz.join("token"), &tokens());
    std::fs::write(
        raiz.parent()
            .unwrap_or(Path::new("."))
            .join("protocol_codec.dict"),
        diccionario(),
    )
    .expect("write the dictionary");
}

/// Replaces the generated seeds of a directory; inputs saved by hand (`regression-*`, crashes
/// found by fuzzing) stay.
fn escribir_todos(dir: &Path, seeds: &[(&str, Vec<u8>)]) {
    std::fs::create_dir_all(dir).expect("seed directory");
    for e in std::fs::read_dir(dir).expect("seed directory") {
        let p = e.expect("directory entry").path();
        if !p
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("regression-"))
        {
            std::fs::remove_file(&p).expect("remove an old seed");
        }
    }
    for (nombre, bytes) in seeds {
        std::fs::write(dir.join(nombre), bytes).expect("write a seed");
    }
    println!("{}: {} seeds", dir.display(), seeds.len());
}

fn pid(s: &str) -> PeerId {
    PeerId(s.into())
}

fn doc_a() -> DocInfo {
    escena::documentos()[0].clone()
}

fn doc_zona() -> DocInfo {
    escena::documentos()[2].clone()
}

/// School A's document with `n` acuerdos by `actor`.
fn con_acuerdos(info: &DocInfo, actor: &automerge::ActorId, n: u64) -> AutoCommit {
    let mut doc = genesis_de(info).expect("genesis");
    doc.set_actor(actor.clone());
    for i in 0..n {
        let a = escuela::NuevoAcuerdo {
            texto: format!("Acuerdo {i}"),
            responsables: vec!["Ana".into()],
            fecha_compromiso: None,
            sesion_origen: None,
        };
        let ctx = Ctx {
            ahora: 1_700_000_000 + i as i64,
            autor: Some("Ana"),
        };
        escuela::agregar_acuerdo(&mut doc, &ctx, &RecordId::from_random(i + 1), &a)
            .expect("acuerdo");
    }
    doc
}

fn sync_data(doc: &mut AutoCommit) -> Vec<u8> {
    doc.sync()
        .generate_sync_message(&mut sync::State::new())
        .expect("a first message")
        .encode()
}

type Enc = Encoder<Vec<u8>>;
type R = Result<(), minicbor::encode::Error<std::convert::Infallible>>;

fn cbor(f: impl FnOnce(&mut Enc) -> R) -> Vec<u8> {
    let mut e = Encoder::new(Vec::new());
    f(&mut e).expect("writing to a Vec");
    e.into_writer()
}

/// Protocol frames: every message type from the encoder, the JavaScript client's dialect, and
/// broken ones.
fn frames() -> Vec<(&'static str, Vec<u8>)> {
    let id = doc_a().id;
    let ids = id.to_string();
    let mut doc = con_acuerdos(&doc_a(), &USUARIOS[0].actor(), 2);
    let data = sync_data(&mut doc);
    let meta = Some(PeerMetadata {
        storage_id: Some("almacen-0".into()),
        is_ephemeral: false,
    });
    let mut v: Vec<(&str, Vec<u8>)> = vec![
        (
            "join",
            Message::Join {
                sender_id: pid("cliente-0"),
                supported_protocol_versions: vec!["1".into()],
                metadata: meta.clone(),
            },
        ),
        (
            "peer",
            Message::Peer {
                sender_id: pid("bitacora-server-fuzzing"),
                target_id: pid("cliente-0"),
                selected_protocol_version: "1".into(),
                metadata: meta,
            },
        ),
        (
            "leave",
            Message::Leave {
                sender_id: pid("cliente-0"),
            },
        ),
        (
            "sync",
            Message::Sync {
                sender_id: pid("cliente-0"),
                target_id: pid("bitacora-server-fuzzing"),
                document_id: id,
                data: data.clone(),
            },
        ),
        (
            "request",
            Message::Request {
                sender_id: pid("cliente-0"),
                target_id: pid("bitacora-server-fuzzing"),
                document_id: id,
                data: data.clone(),
            },
        ),
        (
            "doc-unavailable",
            Message::DocUnavailable {
                sender_id: pid("bitacora-server-fuzzing"),
                target_id: pid("cliente-0"),
                document_id: id,
            },
        ),
        (
            "ephemeral",
            Message::Ephemeral {
                sender_id: pid("cliente-0"),
                target_id: pid("bitacora-server-fuzzing"),
                document_id: id,
                count: 3,
                session_id: "sesion".into(),
                data: vec![1, 2, 3],
            },
        ),
        (
            "remote-subscription-change",
            Message::RemoteSubscriptionChange {
                sender_id: pid("cliente-0"),
                target_id: pid("bitacora-server-fuzzing"),
                add: vec!["almacen-1".into()],
                remove: vec!["almacen-2".into()],
            },
        ),
        (
            "remote-heads-changed",
            Message::RemoteHeadsChanged {
                sender_id: pid("cliente-0"),
                target_id: pid("bitacora-server-fuzzing"),
                document_id: id,
                new_heads: vec![(
                    "almacen-1".into(),
                    doc.get_heads().iter().map(|h| h.to_string()).collect(),
                    1_700_000_000_000,
                )],
            },
        ),
        (
            "error",
            Message::Error {
                message: "algo falló".into(),
            },
        ),
    ]
    .into_iter()
    .map(|(n, m)| (n, m.encode()))
    .collect();

    // As cbor-x (the JavaScript client) writes them.
    v.push((
        "js-join-undefined-metadata",
        cbor(|e| {
            e.map(4)?;
            e.str("type")?.str("join")?;
            e.str("senderId")?.str("js-peer")?;
            e.str("supportedProtocolVersions")?.array(1)?.str("1")?;
            e.str("peerMetadata")?.map(2)?;
            e.str("storageId")?.undefined()?;
            e.str("isEphemeral")?.bool(true)?;
            Ok(())
        }),
    ));
    v.push((
        "readme-metadata-key",
        cbor(|e| {
            e.map(4)?;
            e.str("type")?.str("join")?;
            e.str("senderId")?.str("js-peer")?;
            e.str("supportedProtocolVersions")?
                .array(2)?
                .str("1")?
                .str("2")?;
            e.str("metadata")?.map(1)?.str("storageId")?.str("s")?;
            Ok(())
        }),
    ));
    v.push((
        "js-sync-tagged-indefinite",
        cbor(|e| {
            e.begin_map()?;
            e.str("type")?.str("sync")?;
            e.begin_str()?.str("sender")?.str("Id")?.end()?;
            e.str("js-peer")?;
            e.str("targetId")?.str("bitacora-server-fuzzing")?;
            e.str("documentId")?.str(&format!("automerge:{ids}"))?;
            e.str("data")?.tag(minicbor::data::Tag::new(64))?;
            e.begin_bytes()?
                .bytes(&data[..data.len() / 2])?
                .bytes(&data[data.len() / 2..])?
                .end()?;
            e.str("timestamp")?.undefined()?;
            e.str("extra")?
                .array(2)?
                .map(1)?
                .str("a")?
                .null()?
                .f64(1.5)?;
            e.end()?;
            Ok(())
        }),
    ));
    v.push((
        "js-ephemeral-float-count",
        cbor(|e| {
            e.map(7)?;
            e.str("type")?.str("ephemeral")?;
            e.str("senderId")?.str("js-peer")?;
            e.str("targetId")?.str("bitacora-server-fuzzing")?;
            e.str("documentId")?.str(&ids)?;
            e.str("count")?.f64(7.0)?;
            e.str("sessionId")?.str("s")?;
            e.str("data")?.bytes(b"{}")?;
            Ok(())
        }),
    ));
    v.push((
        "js-remote-heads-float-timestamp",
        cbor(|e| {
            e.map(5)?;
            e.str("type")?.str("remote-heads-changed")?;
            e.str("senderId")?.str("js-peer")?;
            e.str("targetId")?.str("t")?;
            e.str("documentId")?.str(&ids)?;
            e.str("newHeads")?.begin_map()?.str("almacen")?.map(2)?;
            e.str("heads")?.begin_array()?.str("00")?.end()?;
            e.str("timestamp")?.f32(1.0e9)?;
            e.end()?;
            Ok(())
        }),
    ));

    // Broken.
    let mut truncado = v[3].1.clone();
    truncado.truncate(truncado.len() / 2);
    v.push(("broken-truncated-sync", truncado));
    let mut sobra = v[0].1.clone();
    sobra.push(0);
    v.push(("broken-trailing-byte", sobra));
    v.push((
        "broken-array",
        cbor(|e| {
            e.array(1)?.str("join")?;
            Ok(())
        }),
    ));
    v.push((
        "broken-unknown-type",
        cbor(|e| {
            e.map(2)?
                .str("type")?
                .str("hola")?
                .str("senderId")?
                .str("x")?;
            Ok(())
        }),
    ));
    v.push((
        "broken-document-id",
        cbor(|e| {
            e.map(5)?;
            e.str("type")?.str("sync")?;
            e.str("senderId")?.str("a")?;
            e.str("targetId")?.str("b")?;
            e.str("documentId")?.str("no-es-un-id")?;
            e.str("data")?.bytes(&[])?;
            Ok(())
        }),
    ));
    v.push((
        "broken-deep-nesting",
        [
            vec![0xa2, 0x64],
            b"type".to_vec(),
            vec![0x61, b'x'],
            vec![0x63],
            b"zzz".to_vec(),
            vec![0x81; 200],
            vec![0xc6; 100],
            vec![0x00],
        ]
        .concat(),
    ));
    v.push(("broken-empty", Vec::new()));
    v
}

fn guiones(codec: &[(&str, Vec<u8>)]) -> Vec<(&'static str, Vec<u8>)> {
    use Paso::*;
    let acuerdo = |t: &str| escribir_ops(&[Op::Acuerdo { texto: t.into() }]);
    let sync = |slot, doc| Sincronizar {
        slot,
        doc,
        request: false,
    };
    let rondas = |slot, doc, n| (0..n).map(move |_| sync(slot, doc));
    let mut v: Vec<(&str, Vec<Paso>)> = vec![
        (
            "docente-writes-her-school",
            [
                vec![
                    Join { slot: 0, flags: 2 },
                    Editar {
                        slot: 0,
                        doc: 0,
                        actor: 0,
                        ops: acuerdo("Leer 20 minutos diarios"),
                    },
                ],
                rondas(0, 0, 4).collect(),
                vec![Cerrar { slot: 0 }],
            ]
            .concat(),
        ),
        (
            "two-teachers-and-a-notification",
            [
                vec![Join { slot: 0, flags: 2 }, Join { slot: 1, flags: 2 }],
                rondas(1, 0, 2).collect(),
                vec![Editar {
                    slot: 0,
                    doc: 0,
                    actor: 0,
                    ops: acuerdo("uno"),
                }],
                rondas(0, 0, 3).collect(),
                vec![Notificar { slot: 1 }],
                rondas(1, 0, 2).collect(),
                vec![Editar {
                    slot: 1,
                    doc: 2,
                    actor: 1,
                    ops: escribir_ops(&[Op::Registro {
                        coleccion: 3,
                        id: 1,
                        texto: "buena práctica".into(),
                    }]),
                }],
                rondas(1, 2, 3).collect(),
            ]
            .concat(),
        ),
        (
            "push-with-schema-junk",
            vec![
                Join { slot: 3, flags: 0 },
                Editar {
                    slot: 3,
                    doc: 0,
                    actor: 3,
                    ops: escribir_ops(&[
                        Op::Escalar { clave: 0, valor: 1 },
                        Op::Escalar { clave: 3, valor: 0 },
                        Op::Registro {
                            coleccion: 0,
                            id: 2,
                            texto: "x".into(),
                        },
                        Op::Texto {
                            pos: 0,
                            borrar: 0,
                            texto: "notas".into(),
                        },
                        Op::Borrar { clave: 1 },
                        Op::Contador { delta: 5 },
                    ]),
                },
                Empujar {
                    slot: 3,
                    doc: 0,
                    flags: 0,
                    flips: vec![],
                },
                Empujar {
                    slot: 3,
                    doc: 0,
                    flags: 1,
                    flips: vec![],
                },
            ],
        ),
        (
            "foreign-actors-refused",
            vec![
                Join { slot: 2, flags: 2 },
                Editar {
                    slot: 2,
                    doc: 1,
                    actor: 5,
                    ops: acuerdo("de un equipo sin registrar"),
                },
                Empujar {
                    slot: 2,
                    doc: 1,
                    flags: 0,
                    flips: vec![],
                },
                Join { slot: 0, flags: 0 },
                Editar {
                    slot: 0,
                    doc: 0,
                    actor: 6,
                    ops: acuerdo("con el actor de génesis"),
                },
                Empujar {
                    slot: 0,
                    doc: 0,
                    flags: 1,
                    flips: vec![],
                },
                Join { slot: 1, flags: 0 },
                Editar {
                    slot: 1,
                    doc: 0,
                    actor: 2,
                    ops: acuerdo("con el equipo de beto"),
                },
                Empujar {
                    slot: 1,
                    doc: 0,
                    flags: 0,
                    flips: vec![],
                },
            ],
        ),
        (
            "read-only-and-denied",
            vec![
                Join { slot: 4, flags: 0 },
                sync(4, 0),
                Editar {
                    slot: 4,
                    doc: 0,
                    actor: 4,
                    ops: acuerdo("la ATP solo lee"),
                },
                Empujar {
                    slot: 4,
                    doc: 0,
                    flags: 0,
                    flips: vec![],
                },
                Join { slot: 0, flags: 0 },
                Editar {
                    slot: 0,
                    doc: 2,
                    actor: 0,
                    ops: acuerdo("la docente lee la zona"),
                },
                Empujar {
                    slot: 0,
                    doc: 2,
                    flags: 0,
                    flips: vec![],
                },
                Join { slot: 2, flags: 0 },
                sync(2, 0),
                sync(2, 3),
                Sincronizar {
                    slot: 2,
                    doc: 3,
                    request: true,
                },
            ],
        ),
        (
            "reconnect-with-saved-state",
            [
                vec![
                    Join { slot: 1, flags: 2 },
                    Editar {
                        slot: 1,
                        doc: 0,
                        actor: 1,
                        ops: acuerdo("antes"),
                    },
                ],
                rondas(1, 0, 3).collect(),
                vec![
                    Cerrar { slot: 1 },
                    Join { slot: 1, flags: 2 },
                    Editar {
                        slot: 1,
                        doc: 0,
                        actor: 1,
                        ops: acuerdo("después"),
                    },
                ],
                rondas(1, 0, 3).collect(),
            ]
            .concat(),
        ),
        (
            "ephemeral-relay",
            vec![
                Join {
                    slot: 0,
                    flags: 4 | 2,
                },
                sync(0, 0),
                Join { slot: 3, flags: 8 },
                sync(3, 0),
                Efimero {
                    slot: 0,
                    doc: 0,
                    data: b"cursor".to_vec(),
                },
                Notificar { slot: 3 },
                Efimero {
                    slot: 3,
                    doc: 1,
                    data: vec![],
                },
            ],
        ),
        (
            "flipped-push-and-junk-data",
            vec![
                Join { slot: 0, flags: 2 },
                Editar {
                    slot: 0,
                    doc: 0,
                    actor: 0,
                    ops: acuerdo("volteado"),
                },
                Empujar {
                    slot: 0,
                    doc: 0,
                    flags: 0,
                    flips: vec![(40, 0x10), (77, 0x01)],
                },
                Join { slot: 1, flags: 0 },
                Datos {
                    slot: 1,
                    doc: 0,
                    request: false,
                    data: vec![0x42, 0, 0, 0],
                },
                Join { slot: 3, flags: 0 },
                Datos {
                    slot: 3,
                    doc: 2,
                    request: true,
                    data: vec![],
                },
            ],
        ),
        (
            "protocol-violations",
            vec![
                sync(0, 0),
                Join { slot: 1, flags: 1 },
                Join { slot: 2, flags: 0 },
                Otro {
                    slot: 2,
                    tipo: 5,
                    doc: 1,
                },
                Join { slot: 3, flags: 0 },
                Otro {
                    slot: 3,
                    tipo: 6,
                    doc: 0,
                },
                Join { slot: 4, flags: 0 },
                Otro {
                    slot: 4,
                    tipo: 7,
                    doc: 0,
                },
            ],
        ),
        (
            "gossip-and-goodbyes",
            vec![
                Join { slot: 0, flags: 2 },
                Otro {
                    slot: 0,
                    tipo: 2,
                    doc: 0,
                },
                Otro {
                    slot: 0,
                    tipo: 3,
                    doc: 0,
                },
                Otro {
                    slot: 0,
                    tipo: 4,
                    doc: 0,
                },
                Otro {
                    slot: 0,
                    tipo: 1,
                    doc: 0,
                },
                Otro {
                    slot: 0,
                    tipo: 0,
                    doc: 0,
                },
            ],
        ),
    ];
    // The codec seeds as raw frames after a handshake.
    for (nombre, f) in codec {
        let pasos = vec![
            Join { slot: 0, flags: 2 },
            Frame {
                slot: 0,
                bytes: f.clone(),
            },
        ];
        v.push((Box::leak(format!("frame-{nombre}").into_boxed_str()), pasos));
    }
    v.into_iter().map(|(n, p)| (n, escribir(&p))).collect()
}

/// A bundle as `exportar` writes it, without its trailing SHA-256 (the target appends it).
fn cuerpo(origen: &str, docs: Vec<(DocInfo, &mut AutoCommit, Vec<ChangeHash>)>) -> Vec<u8> {
    let mut header = BundleHeader {
        version: bundle::VERSION,
        creado: 1_700_000_000,
        origen: origen.into(),
        documentos: Vec::new(),
    };
    let mut payloads = Vec::new();
    for (info, doc, desde) in docs {
        let payload = doc.save_after(&desde);
        header.documentos.push(BundleDoc {
            id: info.id.to_string(),
            tipo: info.kind,
            owner: info.owner.clone(),
            ciclo: info.ciclo.clone(),
            desde: desde.iter().map(|h| h.to_string()).collect(),
            heads: doc.get_heads().iter().map(|h| h.to_string()).collect(),
            bytes: payload.len() as u64,
        });
        payloads.push(payload);
    }
    let mut b = Bundle { header, payloads }.encode();
    let sum = b.split_off(b.len() - 32);
    assert_eq!(sum, Sha256::digest(&b).to_vec());
    b
}

fn paquetes() -> Vec<(&'static str, Vec<u8>)> {
    let a = doc_a();
    let z = doc_zona();
    let ana = USUARIOS[0].actor();
    let alma = USUARIOS[1].actor();
    let mut escuela_a = con_acuerdos(&a, &ana, 3);
    let mut zona_doc = genesis_de(&z).expect("genesis");
    zona_doc.set_actor(alma.clone());
    zona::agregar_practica(
        &mut zona_doc,
        &Ctx {
            ahora: 1_700_000_100,
            autor: Some("Alma"),
        },
        &RecordId::from_random(77),
        &Cct::parse(escena::CCT_A).expect("literal"),
        "Lectura en voz alta",
        "Cada mañana",
        None,
    )
    .expect("práctica");
    let mut nuevo_equipo = con_acuerdos(&a, &escena::actor_desconocido(), 1);
    let mut de_beto = con_acuerdos(&a, &USUARIOS[2].actor(), 1);
    let mut falso_genesis = con_acuerdos(&a, &genesis_actor(&a.id), 1);
    let primero = {
        let mut d = con_acuerdos(&a, &ana, 1);
        d.get_heads()
    };
    let mut zona_docente = genesis_de(&z).expect("genesis");
    zona_docente.set_actor(ana.clone());
    zona::agregar_practica(
        &mut zona_docente,
        &Ctx {
            ahora: 1_700_000_200,
            autor: Some("Ana"),
        },
        &RecordId::from_random(78),
        &Cct::parse(escena::CCT_A).expect("literal"),
        "Huerto",
        "",
        None,
    )
    .expect("práctica");

    let mut v = vec![
        (
            "school-and-zone",
            cuerpo(
                escena::CCT_A,
                vec![
                    (a.clone(), &mut escuela_a, vec![]),
                    (z.clone(), &mut zona_doc, vec![]),
                ],
            ),
        ),
        (
            "new-device-enrolled",
            cuerpo(escena::CCT_A, vec![(a.clone(), &mut nuevo_equipo, vec![])]),
        ),
        (
            "delta-after-first-acuerdo",
            cuerpo(escena::CCT_A, vec![(a.clone(), &mut escuela_a, primero)]),
        ),
        (
            "refused-other-school",
            cuerpo(escena::CCT_B, vec![(a.clone(), &mut escuela_a, vec![])]),
        ),
        (
            "refused-actor-of-other-school",
            cuerpo(escena::CCT_A, vec![(a.clone(), &mut de_beto, vec![])]),
        ),
        (
            "refused-forged-genesis-actor",
            cuerpo(escena::CCT_A, vec![(a.clone(), &mut falso_genesis, vec![])]),
        ),
        (
            "refused-docente-writes-zone",
            cuerpo(escena::CCT_A, vec![(z.clone(), &mut zona_docente, vec![])]),
        ),
        (
            "refused-server-origin",
            cuerpo(
                &format!("{}:{}", bundle::ORIGEN_SERVIDOR, escena::CCT_A),
                vec![(a.clone(), &mut escuela_a, vec![])],
            ),
        ),
        ("empty", cuerpo(escena::CCT_A, vec![])),
    ];
    // Header and payload disagree: a declared head the payload lacks.
    let mut b = cuerpo(escena::CCT_A, vec![(a.clone(), &mut escuela_a, vec![])]);
    let h = escuela_a.get_heads()[0].to_string();
    let pos = b
        .windows(h.len())
        .position(|w| w == h.as_bytes())
        .expect("head in header");
    b[pos] = if b[pos] == b'0' { b'1' } else { b'0' };
    v.push(("broken-declared-head", b));
    // The whole file, checksum included (what `bundle export` writes).
    let mut completo = cuerpo(escena::CCT_A, vec![(a, &mut escuela_a, vec![])]);
    let sum = Sha256::digest(&completo);
    completo.extend_from_slice(&sum);
    v.push(("whole-file-with-checksum", completo));
    v.push((
        "broken-not-a-bundle",
        b"PK\x03\x04 no es un paquete".to_vec(),
    ));
    v
}

fn tokens() -> Vec<(&'static str, Vec<u8>)> {
    let hs = r#"{"alg":"HS256","typ":"JWT"}"#;
    let ed = r#"{"alg":"EdDSA","typ":"JWT"}"#;
    let secreto = escena::SECRETO.as_bytes();
    let ana = claves::claims(&USUARIOS[0]);
    let con = |cambio: &dyn Fn(&mut serde_json::Value)| {
        let mut c: serde_json::Value = serde_json::from_str(&ana).expect("json");
        cambio(&mut c);
        c.to_string()
    };
    let rita = claves::claims(&escena::Usuario {
        id: escena::REVOCADO,
        rol: "docente",
        cct: Some(escena::CCT_A),
        zona: None,
        ..USUARIOS[0]
    });
    let mut v: Vec<(&str, String)> = USUARIOS
        .iter()
        .map(|u| {
            (
                Box::leak(format!("hs256-{}", u.id).into_boxed_str()) as &str,
                firmar_hs256(hs, &claves::claims(u), secreto),
            )
        })
        .collect();
    v.extend([
        ("eddsa-ana", firmar_eddsa(ed, &ana)),
        ("hs256-revoked", firmar_hs256(hs, &rita, secreto)),
        (
            "hs256-other-secret",
            firmar_hs256(hs, &ana, b"otro-secreto-de-al-menos-32-bytes-de-largo"),
        ),
        (
            "hs256-expired",
            firmar_hs256(hs, &con(&|c| c["exp"] = 1000.into()), secreto),
        ),
        (
            "hs256-wrong-audience",
            firmar_hs256(hs, &con(&|c| c["aud"] = "otro".into()), secreto),
        ),
        (
            "hs256-wrong-issuer",
            firmar_hs256(hs, &con(&|c| c["iss"] = "otro".into()), secreto),
        ),
        (
            "hs256-role-mismatch",
            firmar_hs256(hs, &con(&|c| c["rol"] = "director".into()), secreto),
        ),
        (
            "hs256-unknown-jti",
            firmar_hs256(hs, &con(&|c| c["jti"] = "jti-inventado".into()), secreto),
        ),
        (
            "hs256-no-jti",
            firmar_hs256(
                hs,
                &con(&|c| {
                    c.as_object_mut().expect("object").remove("jti");
                }),
                secreto,
            ),
        ),
        (
            "hs256-unknown-role",
            firmar_hs256(hs, &con(&|c| c["rol"] = "rector".into()), secreto),
        ),
        (
            "alg-none",
            format!(
                "{}.{}.",
                claves::b64(br#"{"alg":"none","typ":"JWT"}"#),
                claves::b64(ana.as_bytes())
            ),
        ),
        (
            // HS256 keyed with the EdDSA public key: must not pass the EdDSA verifier.
            "alg-confusion-hs256-with-public-key",
            firmar_hs256(hs, &ana, claves::ED25519_PUBLICA_PEM.as_bytes()),
        ),
        (
            "rs256-header",
            format!(
                "{}.{}.{}",
                claves::b64(br#"{"alg":"RS256","typ":"JWT"}"#),
                claves::b64(ana.as_bytes()),
                claves::b64(&[7; 256])
            ),
        ),
        (
            "four-parts",
            format!("{}.extra", firmar_hs256(hs, &ana, secreto)),
        ),
        ("garbage", "Bearer eyJ.no.es".into()),
        ("empty", String::new()),
    ]);
    v.into_iter().map(|(n, t)| (n, t.into_bytes())).collect()
}

/// Map keys and values of the protocol as CBOR text strings, for libFuzzer's `-dict`.
fn diccionario() -> String {
    let palabras = [
        "type",
        "senderId",
        "targetId",
        "documentId",
        "data",
        "supportedProtocolVersions",
        "selectedProtocolVersion",
        "peerMetadata",
        "metadata",
        "storageId",
        "isEphemeral",
        "message",
        "sessionId",
        "count",
        "add",
        "remove",
        "newHeads",
        "heads",
        "timestamp",
        "join",
        "peer",
        "leave",
        "sync",
        "request",
        "doc-unavailable",
        "ephemeral",
        "remote-subscription-change",
        "remote-heads-changed",
        "error",
        "1",
    ];
    let mut out = String::from(
        "# CBOR text strings of the sync protocol (written by fuzz/examples/seeds.rs).\n",
    );
    for p in palabras {
        let mut e = Encoder::new(Vec::new());
        e.str(p).expect("writing to a Vec");
        let bytes = e.into_writer();
        let escapado: String = bytes
            .iter()
            .map(|b| {
                if b.is_ascii_alphanumeric() || *b == b'-' {
                    (*b as char).to_string()
                } else {
                    format!("\\x{b:02x}")
                }
            })
            .collect();
        out.push_str(&format!("\"{escapado}\"\n"));
    }
    out.push_str("\"\\xd8\\x40\"\n\"\\xf7\"\n\"\\xf6\"\n\"\\xbf\"\n\"\\xff\"\n\"\\xfb\"\n");
    let _ = DocumentId::from_bytes([0; 16]);
    out
}
