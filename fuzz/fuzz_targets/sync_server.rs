//! Sync frames through the server's own connection handling (`Conn::on_frame`, via
//! `bitacora_server::fuzzing`), over a fresh copy of a registered scene for every input.
//!
//! The input is a script ([`bitacora_fuzz::guion`]): up to five connections (one per user of the
//! scene: docente, director, docente of another school, supervisor, ATP) that join, edit their
//! own copies of the documents with enrolled, foreign or genesis actors, sync them with the real
//! protocol, push all their changes at once (optionally with flipped bytes), send arbitrary
//! frames and payloads, relay ephemeral messages, get notified and reconnect.
//!
//! Checked after every input, besides "no panic":
//! - every registered document still loads from the database and still holds its genesis;
//! - every stored change is by the genesis actor (the genesis itself and nothing else) or by the
//!   actor of a user who may write that document (the access matrix, written out again by hand
//!   in `escena::puede_escribir`);
//! - every head the server advertised in a `sync` is stored (confirmed means durable);
//! - the hub's copy has the stored heads, and compacting the stored document keeps them;
//! - no internal server error (the database is fine, so one would be the server's own bug);
//! - the model's readers (`leer`, `conflictos::listar`, `historial`) and the dashboard's
//!   projection (`proyector::proyectar_documento`) accept whatever was stored.

#![no_main]

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use automerge::sync::{self, SyncDoc};
use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, AutoCommit, ChangeHash, ObjType, ROOT, ReadDoc, ScalarValue};
use bitacora_core::bundle::genesis_de;
use bitacora_core::ids::{DocumentId, RecordId};
use bitacora_core::model::{Ctx, DocKind, conflictos, escuela, genesis_actor, historial, zona};
use bitacora_core::protocol::{Message, PROTOCOL_VERSION, PeerId, PeerMetadata};
use bitacora_core::store::DocInfo;
use bitacora_fuzz::escena::{self, USUARIOS};
use bitacora_fuzz::guion::{self, CLAVES, COLECCIONES, Op, Paso};
use bitacora_fuzz::{Plantilla, runtime};
use bitacora_server::auth::Principal;
use bitacora_server::config::Config;
use bitacora_server::db::{Database, Stored};
use bitacora_server::fuzzing::{Connection, Server};
use bitacora_server::hub::assemble;
use bitacora_server::proyector;
use libfuzzer_sys::fuzz_target;

struct Global {
    rt: tokio::runtime::Runtime,
    plantilla: Plantilla,
    config: Config,
    docs: [DocInfo; 4],
    /// The genesis of each document (the unregistered school's too, for the clients' copies).
    genesis: Vec<AutoCommit>,
}

static G: LazyLock<Global> = LazyLock::new(|| {
    bitacora_fuzz::tolerar_panicos_atrapados_de_automerge();
    let rt = runtime();
    let plantilla = rt.block_on(Plantilla::crear());
    let config = bitacora_fuzz::config(plantilla.dir());
    let docs = escena::documentos();
    let genesis = docs
        .iter()
        .map(|d| genesis_de(d).expect("genesis"))
        .collect();
    Global {
        rt,
        plantilla,
        config,
        docs,
        genesis,
    }
});

/// `BITACORA_FUZZ_TRAZA=1`: print each step and what the server answered (to read what an
/// input does: `cargo fuzz run sync_server <input>`).
static TRAZA: LazyLock<bool> = LazyLock::new(|| std::env::var_os("BITACORA_FUZZ_TRAZA").is_some());

fuzz_target!(|data: &[u8]| {
    let g = &*G;
    let pasos = guion::leer(data);
    g.rt.block_on(async {
        let copia = g.plantilla.abrir().await;
        let server = Server::new(g.config.clone(), copia.db.clone())
            .await
            .expect("server state");
        let mut m = Mundo::new(g, &server, &copia.db);
        for (i, p) in pasos.into_iter().enumerate() {
            m.paso(i as i64, p).await;
        }
        for c in &mut m.clientes {
            if let Some(conn) = c.conn.take() {
                conn.close().await;
            }
        }
        verificar(g, &server, &copia.db, &m.anunciados, &m.nombrados).await;
        drop(m);
        drop(server);
        copia.cerrar().await;
    });
});

/// One device of one user: its connection (if open) and its copies of the documents.
struct Cliente {
    conn: Option<Connection>,
    principal: Option<Principal>,
    copias: Vec<AutoCommit>,
    estados: Vec<sync::State>,
    peer: PeerId,
}

struct Mundo<'a> {
    g: &'a Global,
    server: &'a Server,
    db: &'a Database,
    clientes: Vec<Cliente>,
    /// Heads the server advertised per document.
    anunciados: HashMap<DocumentId, HashSet<ChangeHash>>,
    /// Documents some frame named (only those can be in the hub's cache).
    nombrados: HashSet<DocumentId>,
    registros: u64,
}

impl<'a> Mundo<'a> {
    fn new(g: &'a Global, server: &'a Server, db: &'a Database) -> Mundo<'a> {
        let clientes = (0..USUARIOS.len())
            .map(|i| Cliente {
                conn: None,
                principal: None,
                copias: g.genesis.clone(),
                estados: (0..g.docs.len()).map(|_| sync::State::new()).collect(),
                peer: PeerId(format!("cliente-{i}")),
            })
            .collect();
        Mundo {
            g,
            server,
            db,
            clientes,
            anunciados: HashMap::new(),
            nombrados: HashSet::new(),
            registros: 0,
        }
    }

    fn server_peer(&self) -> PeerId {
        self.server.state().peer_id.clone()
    }

    async fn conexion(&mut self, slot: usize) -> &mut Connection {
        if self.clientes[slot].principal.is_none() {
            let u = self
                .db
                .usuario(USUARIOS[slot].id)
                .await
                .expect("db")
                .expect("scene user");
            self.clientes[slot].principal =
                Some(Principal::de_usuario(self.db, &u).await.expect("principal"));
        }
        let c = &mut self.clientes[slot];
        if c.conn.is_none() {
            let p = c.principal.clone().expect("set above");
            c.conn = Some(self.server.connect(p));
        }
        c.conn.as_mut().expect("set above")
    }

    async fn enviar(&mut self, slot: usize, frame: &[u8]) {
        if let Ok(
            Message::Sync { document_id, .. }
            | Message::Request { document_id, .. }
            | Message::Ephemeral { document_id, .. }
            | Message::DocUnavailable { document_id, .. }
            | Message::RemoteHeadsChanged { document_id, .. },
        ) = Message::decode(frame)
        {
            self.nombrados.insert(document_id);
        }
        let r = self.conexion(slot).await.frame(frame).await;
        if *TRAZA {
            let enviado =
                Message::decode(frame).map_or_else(|e| format!("({e})"), |m| m.kind().into());
            match &r {
                Ok(msgs) => {
                    let kinds: Vec<&str> = msgs.iter().map(Message::kind).collect();
                    eprintln!("  {} → {enviado} ← {kinds:?}", USUARIOS[slot].id);
                }
                Err(e) => eprintln!("  {} → {enviado} ← error: {e}", USUARIOS[slot].id),
            }
        }
        match r {
            Ok(msgs) => self.recibir(slot, msgs),
            // The server sent `error` and closes the socket. An internal error means the server
            // failed on its own side (the database here is fine): a bug, whatever the input.
            Err(e) => {
                assert!(
                    !e.starts_with("internal server error"),
                    "internal error: {e}"
                );
                self.cerrar(slot).await
            }
        }
    }

    async fn cerrar(&mut self, slot: usize) {
        let c = &mut self.clientes[slot];
        if let Some(conn) = c.conn.take() {
            conn.close().await;
        }
        // A client keeps only what a persisted sync state keeps.
        for e in &mut c.estados {
            *e = sync::State::decode(&e.encode()).expect("a sync state round-trips");
        }
    }

    fn recibir(&mut self, slot: usize, msgs: Vec<Message>) {
        for m in msgs {
            let bytes = m.encode();
            let m = Message::decode(&bytes).expect("what the server sends decodes");
            if let Message::Sync {
                document_id, data, ..
            } = m
            {
                let sm = sync::Message::decode(&data).expect("the server's sync data decodes");
                self.anunciados
                    .entry(document_id)
                    .or_default()
                    .extend(sm.heads.iter().copied());
                if let Some(i) = self.g.docs.iter().position(|d| d.id == document_id) {
                    let c = &mut self.clientes[slot];
                    let _ = c.copias[i]
                        .sync()
                        .receive_sync_message(&mut c.estados[i], sm);
                }
            }
        }
    }

    fn sync_frame(&self, slot: usize, doc: usize, request: bool, data: Vec<u8>) -> Vec<u8> {
        let (sender_id, target_id, document_id) = (
            self.clientes[slot].peer.clone(),
            self.server_peer(),
            self.g.docs[doc].id,
        );
        if request {
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
        .encode()
    }

    async fn paso(&mut self, t: i64, p: Paso) {
        if *TRAZA {
            eprintln!("{p:?}");
        }
        match p {
            Paso::Frame { slot, bytes } => self.enviar(slot as usize, &bytes).await,
            Paso::Join { slot, flags } => {
                let slot = slot as usize;
                let metadata = (flags & 8 == 0).then(|| PeerMetadata {
                    storage_id: (flags & 2 != 0).then(|| format!("almacen-{slot}")),
                    is_ephemeral: flags & 4 != 0,
                });
                let version = if flags & 1 == 0 {
                    PROTOCOL_VERSION
                } else {
                    "2"
                };
                let f = Message::Join {
                    sender_id: self.clientes[slot].peer.clone(),
                    supported_protocol_versions: vec![version.into()],
                    metadata,
                }
                .encode();
                self.enviar(slot, &f).await;
            }
            Paso::Editar {
                slot,
                doc,
                actor,
                ops,
            } => self.editar(slot as usize, doc as usize, actor, &ops, t),
            Paso::Sincronizar { slot, doc, request } => {
                let (slot, doc) = (slot as usize, doc as usize);
                let c = &mut self.clientes[slot];
                let data = c.copias[doc]
                    .sync()
                    .generate_sync_message(&mut c.estados[doc])
                    .map(sync::Message::encode);
                let Some(data) = data.or_else(|| {
                    request.then(|| {
                        AutoCommit::new()
                            .sync()
                            .generate_sync_message(&mut sync::State::new())
                            .map(sync::Message::encode)
                            .unwrap_or_default()
                    })
                }) else {
                    return;
                };
                let f = self.sync_frame(slot, doc, request, data);
                self.enviar(slot, &f).await;
            }
            Paso::Empujar {
                slot,
                doc,
                flags,
                flips,
            } => {
                let (slot, doc) = (slot as usize, doc as usize);
                let copia = &mut self.clientes[slot].copias[doc];
                let changes: sync::ChunkList = if flags & 1 == 0 {
                    copia.save().into()
                } else {
                    copia
                        .get_changes(&[])
                        .iter()
                        .map(|c| c.raw_bytes().to_vec())
                        .collect::<Vec<_>>()
                        .into()
                };
                let msg = sync::Message {
                    heads: if flags & 2 == 0 {
                        copia.get_heads()
                    } else {
                        Vec::new()
                    },
                    need: Vec::new(),
                    have: vec![sync::Have::default()],
                    changes,
                    flags: None,
                    version: sync::MessageVersion::V1,
                };
                let mut data = msg.encode();
                for (pos, x) in flips {
                    let n = data.len();
                    data[pos as usize % n] ^= x;
                }
                let f = self.sync_frame(slot, doc, false, data);
                self.enviar(slot, &f).await;
            }
            Paso::Datos {
                slot,
                doc,
                request,
                data,
            } => {
                let f = self.sync_frame(slot as usize, doc as usize, request, data);
                self.enviar(slot as usize, &f).await;
            }
            Paso::Efimero { slot, doc, data } => {
                let slot = slot as usize;
                let f = Message::Ephemeral {
                    sender_id: self.clientes[slot].peer.clone(),
                    target_id: self.server_peer(),
                    document_id: self.g.docs[doc as usize].id,
                    count: t as u64,
                    session_id: format!("sesion-{slot}"),
                    data,
                }
                .encode();
                self.enviar(slot, &f).await;
            }
            Paso::Otro { slot, tipo, doc } => {
                let slot = slot as usize;
                let sender_id = self.clientes[slot].peer.clone();
                let target_id = self.server_peer();
                let document_id = self.g.docs[doc as usize].id;
                let m = match tipo {
                    0 => Message::Leave { sender_id },
                    1 => Message::Error {
                        message: "algo falló".into(),
                    },
                    2 => Message::DocUnavailable {
                        sender_id,
                        target_id,
                        document_id,
                    },
                    3 => Message::RemoteSubscriptionChange {
                        sender_id,
                        target_id,
                        add: vec!["almacen-1".into()],
                        remove: vec![],
                    },
                    4 => Message::RemoteHeadsChanged {
                        sender_id,
                        target_id,
                        document_id,
                        new_heads: vec![("almacen-1".into(), vec!["00".repeat(32)], 5)],
                    },
                    5 => Message::Sync {
                        sender_id: PeerId("intruso".into()),
                        target_id,
                        document_id,
                        data: Vec::new(),
                    },
                    6 => Message::Peer {
                        sender_id,
                        target_id,
                        selected_protocol_version: PROTOCOL_VERSION.into(),
                        metadata: None,
                    },
                    _ => Message::Join {
                        sender_id,
                        supported_protocol_versions: vec![PROTOCOL_VERSION.into()],
                        metadata: None,
                    },
                };
                self.enviar(slot, &m.encode()).await;
            }
            Paso::Notificar { slot } => {
                let slot = slot as usize;
                if let Some(conn) = self.clientes[slot].conn.as_mut() {
                    let msgs = conn.notified().await;
                    self.recibir(slot, msgs);
                }
            }
            Paso::Cerrar { slot } => self.cerrar(slot as usize).await,
        }
    }

    /// One change in the slot's copy of a document by the chosen actor.
    fn editar(&mut self, slot: usize, doc: usize, actor: u8, ops: &[u8], t: i64) {
        let actor = match actor {
            0..=4 => USUARIOS[actor as usize].actor(),
            5 => escena::actor_desconocido(),
            _ => genesis_actor(&self.g.docs[doc].id),
        };
        let ahora = 1_700_000_000 + t;
        let copia = &mut self.clientes[slot].copias[doc];
        copia.set_actor(actor);
        for op in guion::ops(ops) {
            let _ = aplicar_op(copia, &op, ahora, &mut self.registros);
        }
        copia.commit_with(CommitOptions::default().with_time(ahora));
    }
}

fn aplicar_op(
    doc: &mut AutoCommit,
    op: &Op,
    ahora: i64,
    registros: &mut u64,
) -> Result<(), Box<dyn std::error::Error>> {
    match op {
        Op::Acuerdo { texto } => {
            *registros += 1;
            let a = escuela::NuevoAcuerdo {
                texto: texto.clone(),
                responsables: vec!["Ana".into()],
                fecha_compromiso: None,
                sesion_origen: None,
            };
            let ctx = Ctx {
                ahora,
                autor: Some("fuzz"),
            };
            escuela::agregar_acuerdo(doc, &ctx, &RecordId::from_random(*registros), &a)?;
        }
        Op::Escalar { clave, valor } => {
            let k = CLAVES[*clave as usize % CLAVES.len()];
            let v = match valor % 4 {
                0 => ScalarValue::Str(format!("v{valor}").into()),
                1 => ScalarValue::Uint(u64::from(*valor)),
                2 => ScalarValue::Int(-i64::from(*valor)),
                _ => ScalarValue::Null,
            };
            doc.put(ROOT, k, v)?;
        }
        Op::Registro {
            coleccion,
            id,
            texto,
        } => {
            let c = COLECCIONES[*coleccion as usize % COLECCIONES.len()];
            let col = match doc.get(ROOT, c)? {
                Some((automerge::Value::Object(ObjType::Map), o)) => o,
                _ => doc.put_object(ROOT, c, ObjType::Map)?,
            };
            let r = doc.put_object(&col, format!("r{id}"), ObjType::Map)?;
            let t = doc.put_object(&r, "texto", ObjType::Text)?;
            doc.splice_text(&t, 0, 0, texto)?;
            doc.put(&r, "archivado", id % 2 == 0)?;
        }
        Op::Texto { pos, borrar, texto } => {
            let t = match doc.get(ROOT, "notas")? {
                Some((automerge::Value::Object(ObjType::Text), o)) => o,
                _ => doc.put_object(ROOT, "notas", ObjType::Text)?,
            };
            let len = doc.length(&t);
            let pos = *pos as usize % (len + 1);
            let borrar = (*borrar as usize).min(len - pos) as isize;
            doc.splice_text(&t, pos, borrar, texto)?;
        }
        Op::Borrar { clave } => doc.delete(ROOT, CLAVES[*clave as usize % CLAVES.len()])?,
        Op::Contador { delta } => match doc.get(ROOT, "contador")? {
            Some((automerge::Value::Scalar(s), _)) if matches!(*s, ScalarValue::Counter(_)) => {
                doc.increment(ROOT, "contador", i64::from(*delta))?
            }
            _ => doc.put(ROOT, "contador", ScalarValue::counter(i64::from(*delta)))?,
        },
    }
    Ok(())
}

async fn verificar(
    g: &Global,
    server: &Server,
    db: &Database,
    anunciados: &HashMap<DocumentId, HashSet<ChangeHash>>,
    nombrados: &HashSet<DocumentId>,
) {
    for (i, info) in g.docs.iter().enumerate().take(3) {
        let quien = &info.owner;
        let stored = db.load(&info.id).await.expect("load");
        let doc = assemble(&stored)
            .unwrap_or_else(|e| panic!("{quien}: the stored copy does not load: {e}"));
        // Change metadata, not `get_changes`, which re-encodes (and compresses) every change.
        let cambios = doc.get_changes_meta(&[]);
        let hashes: HashSet<ChangeHash> = cambios.iter().map(|c| c.hash).collect();
        if *TRAZA {
            eprintln!("{quien}: {} changes stored", cambios.len());
        }
        let genesis = g.genesis[i].clone().get_heads()[0];
        assert!(hashes.contains(&genesis), "{quien}: the genesis is gone");
        let ga = genesis_actor(&info.id);
        for c in &cambios {
            let actor: &ActorId = &c.actor;
            if *actor == ga {
                assert_eq!(
                    c.hash, genesis,
                    "{quien}: a second change by the genesis actor was stored"
                );
                continue;
            }
            let u = escena::usuario_de(actor).unwrap_or_else(|| {
                panic!("{quien}: stored change {} by unknown actor {actor}", c.hash)
            });
            assert!(
                u.puede_escribir(info),
                "{quien}: stored change {} by {}, who may not write it",
                c.hash,
                u.id
            );
        }
        for h in anunciados.get(&info.id).into_iter().flatten() {
            assert!(
                hashes.contains(h),
                "{quien}: the server advertised head {h}, which is not stored"
            );
        }
        let mut heads = doc.get_heads();
        heads.sort();
        if nombrados.contains(&info.id) {
            let hub = &server.state().hub;
            let entry = hub.entry(&info.id).await.expect("hub").expect("registered");
            let mut en_memoria = hub.heads(&entry).await.expect("hub heads");
            en_memoria.sort();
            assert_eq!(
                en_memoria, heads,
                "{quien}: the hub's copy differs from the stored one"
            );
        }
        if cambios.len() == 1 {
            continue;
        }
        // Compaction (as the hub runs it after 64 chunks) keeps every change.
        db.compact(&info.id, |snapshot, chunks| async move {
            let d = assemble(&Stored { snapshot, chunks }).expect("assembles");
            let h = bitacora_core::store::hex_heads(&d.get_heads());
            Ok((d.save(), h))
        })
        .await
        .expect("compact");
        let compactado = assemble(&db.load(&info.id).await.expect("load"))
            .unwrap_or_else(|e| panic!("{quien}: the compacted copy does not load: {e}"));
        let mut despues = compactado.get_heads();
        despues.sort();
        assert_eq!(despues, heads, "{quien}: compaction changed the heads");

        // The model reads whatever an allowed writer stored, and so does the dashboard's
        // projection (the server runs it after each commit).
        let mut ac = AutoCommit::load(&doc.save()).expect("a saved copy loads");
        match info.kind {
            DocKind::Escuela => {
                let _ = escuela::leer(&ac);
                let _ = proyector::proyectar_documento(db, &info.id).await;
            }
            DocKind::Zona => {
                let _ = zona::leer(&ac);
            }
        }
        let _ = conflictos::listar(&ac);
        let _ = historial::historial(&mut ac);
    }
}
