//! `convergence_model`: random schedules of work, syncs and faults through the real zone server,
//! checked against what the model promises (issue 6).
//!
//! Each case is a zone with two schools: 2 to 6 people of the schools (docentes and directors,
//! each with a laptop: a client-core `Store` in its own directory) plus the zone supervisor. They
//! run a random sequence of steps:
//!
//! - operations of the document model (`model::escuela`, `model::zona`) on the documents each
//!   person may write: acuerdos (added, their text edited character by character, status, due
//!   date and responsables set, archived, conflicts resolved), metas and their nivel de logro,
//!   sesiones and their products, the concentrado, the zone's acuerdos and buenas prácticas. Every
//!   school document starts with one acuerdo everyone holds, and edits favour it, so the same
//!   acuerdo is edited concurrently on several laptops;
//! - syncs with the real WebSocket protocol (`engine::sync_once`) through a [`FaultProxy`] in
//!   front of an in-process `TestServer`: one laptop, or several at once;
//! - faults: a sync whose connection is cut after a number of bytes, or closed in the middle of
//!   a WebSocket frame in either direction; every connection dropped while several laptops sync;
//!   the server stopped and started again on the same data directory and database, between syncs
//!   or while several laptops sync;
//! - probes: a school's docente or director asks for the other school's document; the server
//!   must answer `doc-unavailable` and send nothing of it.
//!
//! A sync may fail only when a fault hit it, and then only with a connection error. At the end
//! the network is clean, every laptop syncs twice, and then, for every document: every laptop
//! allowed to hold it and the server hold the same heads, the same change set and the same
//! content (the read view and the list of conflicts); every change any operation made is there
//! (so is every acuerdo added, exactly those); the last sync confirmed everything; no laptop
//! holds a document it may not; every store passes SQLite's integrity check.
//!
//! `BITACORA_CONVERGENCE_CASES` sets the number of cases (12 by default on SQLite, 3 on
//! PostgreSQL); `BITACORA_CONVERGENCE_SEED` replays a run (the seed is printed), and
//! `BITACORA_CONVERGENCE_SHRINK` bounds the shrinking of a failure (64 by default). The
//! PostgreSQL variant runs when `BITACORA_TEST_DATABASE_URL` is set (a fresh schema per case)
//! and says loudly that it skipped otherwise. No sleeps: every step waits for a sync, a
//! restart or a count of sync messages.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use bitacora_core::ModelError;
use bitacora_core::automerge::{AutoCommit, ChangeHash};
use bitacora_core::bundle::genesis_de;
use bitacora_core::engine::{EngineError, Informe, sync_once, sync_once_con_progreso};
use bitacora_core::ids::{Cct, DocumentId, Fecha, RecordId};
use bitacora_core::model::escuela::{
    self, CAMPOS_CONCENTRADO, Corte, EstadoAcuerdo, Fase, NivelLogro, NuevaMeta, NuevaSesion,
    NuevoAcuerdo, NuevoObjetivo,
};
use bitacora_core::model::{Ctx, DocKind, conflictos, zona};
use bitacora_core::store::{DocInfo, Store};
use bitacora_server::hub::assemble;
use bitacora_tests::proxy::{Direction, FaultProxy, Faults, Truncate};
use bitacora_tests::server::{PgSchema, TestServer};
use futures_util::future::join_all;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use serde_json::{Value, json};
use tokio::sync::watch;

const ZONA: &str = "07FIZ0014";
const CCTS: [&str; 2] = ["07DPR0123X", "07DPR0456K"];
/// Time limit of one sync (a hang fails the case).
const LIMITE: Duration = Duration::from_secs(30);
const PERSONAS: &[&str] = &["Lupita", "Don Chema", "Mtra. Ñusta", "Iván"];

// ---------------------------------------------------------------------------------------------
// The scenario.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rol {
    Docente,
    Director,
    Supervisor,
}

/// Whose laptop a replica is. `escuela` is 0 or 1 (ignored for the supervisor).
#[derive(Debug, Clone, Copy)]
struct Persona {
    rol: Rol,
    escuela: usize,
}

/// Picks one of the items a replica holds when the step runs (shrinks towards the first).
#[derive(Debug, Clone, Copy)]
struct Ix(u16);

impl Ix {
    fn index(self, len: usize) -> usize {
        usize::from(self.0) % len
    }

    fn pick<T>(self, items: &[T]) -> Option<&T> {
        (!items.is_empty()).then(|| &items[self.index(items.len())])
    }
}

fn ix() -> impl Strategy<Value = Ix> {
    any::<u16>().prop_map(Ix)
}

/// Half of the time the first record (the shared acuerdo every laptop holds), so that laptops
/// edit the same fields concurrently.
fn ix_sesgado() -> impl Strategy<Value = Ix> {
    prop_oneof![Just(Ix(0)), ix()]
}

/// Delete `borrar` characters at a position, insert `insertar` there.
#[derive(Debug, Clone)]
struct Splice {
    pos: Ix,
    borrar: usize,
    insertar: String,
}

impl Splice {
    fn aplicar(&self, texto: &str) -> String {
        let chars: Vec<char> = texto.chars().collect();
        let pos = self.pos.index(chars.len() + 1);
        let fin = (pos + self.borrar).min(chars.len());
        chars[..pos]
            .iter()
            .copied()
            .chain(self.insertar.chars())
            .chain(chars[fin..].iter().copied())
            .collect()
    }
}

fn splice() -> impl Strategy<Value = Splice> {
    (ix(), 0..4usize, "[a-zñé👍 ]{0,8}").prop_map(|(pos, borrar, insertar)| Splice {
        pos,
        borrar,
        insertar,
    })
}

/// An operation of the document model. School operations go to the replica's school document
/// (the supervisor's to either school's); zone operations to the zone document, and only for
/// those who may write it (a docente's become no-ops).
#[derive(Debug, Clone)]
enum Op {
    AgregarAcuerdo {
        texto: String,
        dias: Option<u8>,
    },
    EditarTexto {
        k: Ix,
        splice: Splice,
    },
    EstadoAcuerdo {
        k: Ix,
        estado: Ix,
    },
    EditarAcuerdo {
        k: Ix,
        responsables: Vec<Ix>,
        dias: Option<u8>,
    },
    Archivar {
        k: Ix,
        archivado: bool,
    },
    Resolver {
        c: Ix,
        opcion: usize,
    },
    AgregarMeta {
        texto: String,
        valor: u8,
    },
    RegistrarLogro {
        meta: Ix,
        nivel: Ix,
        dias: u8,
    },
    AgregarSesion {
        fase: Ix,
        numero: u64,
    },
    EditarSesion {
        s: Ix,
        splice: Splice,
    },
    Concentrado {
        grado: i64,
        corte: Ix,
        inscritos: u8,
        conteos: Vec<(Ix, u8)>,
    },
    Practica {
        titulo: String,
    },
    AcuerdoZona {
        texto: String,
    },
    EditarTextoZona {
        k: Ix,
        splice: Splice,
    },
}

impl Op {
    fn de_zona(&self) -> bool {
        matches!(
            self,
            Op::Practica { .. } | Op::AcuerdoZona { .. } | Op::EditarTextoZona { .. }
        )
    }
}

fn op() -> impl Strategy<Value = Op> {
    let texto = "[A-Za-zñ][a-zñé ]{0,12}";
    prop_oneof![
        3 => (texto, proptest::option::of(0..120u8))
            .prop_map(|(texto, dias)| Op::AgregarAcuerdo { texto, dias }),
        6 => (ix_sesgado(), splice()).prop_map(|(k, splice)| Op::EditarTexto { k, splice }),
        4 => (ix_sesgado(), ix()).prop_map(|(k, estado)| Op::EstadoAcuerdo { k, estado }),
        2 => (ix_sesgado(), proptest::collection::vec(ix(), 0..3), proptest::option::of(0..120u8))
            .prop_map(|(k, responsables, dias)| Op::EditarAcuerdo { k, responsables, dias }),
        1 => (ix_sesgado(), any::<bool>()).prop_map(|(k, archivado)| Op::Archivar { k, archivado }),
        2 => (ix(), 1..=3usize).prop_map(|(c, opcion)| Op::Resolver { c, opcion }),
        1 => (texto, 0..100u8).prop_map(|(texto, valor)| Op::AgregarMeta { texto, valor }),
        1 => (ix(), ix(), 0..120u8).prop_map(|(meta, nivel, dias)| Op::RegistrarLogro { meta, nivel, dias }),
        1 => (ix(), 1..=5u64).prop_map(|(fase, numero)| Op::AgregarSesion { fase, numero }),
        2 => (ix(), splice()).prop_map(|(s, splice)| Op::EditarSesion { s, splice }),
        2 => (1..=2i64, ix(), 10..40u8, proptest::collection::vec((ix(), 0..12u8), 1..4))
            .prop_map(|(grado, corte, inscritos, conteos)| Op::Concentrado { grado, corte, inscritos, conteos }),
        2 => "[A-Z][a-z ]{0,10}".prop_map(|titulo| Op::Practica { titulo }),
        1 => texto.prop_map(|texto| Op::AcuerdoZona { texto }),
        2 => (ix_sesgado(), splice()).prop_map(|(k, splice)| Op::EditarTextoZona { k, splice }),
    ]
}

/// One step of the schedule. `r` picks a replica (the supervisor included).
#[derive(Debug, Clone)]
enum Paso {
    /// A local operation; `b` picks the school for the supervisor.
    Editar { r: Ix, b: bool, op: Op },
    /// One replica syncs everything it may hold.
    Sync { r: Ix },
    /// Several replicas sync at once.
    SyncJuntos { rs: Vec<Ix> },
    /// A sync whose connection the proxy cuts after `bytes` bytes (both ways counted).
    Cortada { r: Ix, bytes: u16 },
    /// A sync whose connection is closed in the middle of a WebSocket frame.
    Truncada {
        r: Ix,
        al_servidor: bool,
        frames: u8,
    },
    /// Several replicas sync; after `mensajes` sync messages in all, every connection drops.
    CaidaDeRed { rs: Vec<Ix>, mensajes: u8 },
    /// The server stops and starts again on the same data (between syncs).
    Reinicio,
    /// Several replicas sync; after `mensajes` sync messages in all, the server restarts.
    ReinicioDurante { rs: Vec<Ix>, mensajes: u8 },
    /// A replica of a school asks for the other school's document.
    Sonda { r: Ix },
}

fn paso() -> impl Strategy<Value = Paso> {
    let varios = || proptest::collection::vec(ix(), 2..5);
    prop_oneof![
        16 => (ix(), any::<bool>(), op()).prop_map(|(r, b, op)| Paso::Editar { r, b, op }),
        4 => ix().prop_map(|r| Paso::Sync { r }),
        2 => varios().prop_map(|rs| Paso::SyncJuntos { rs }),
        2 => (ix(), prop_oneof![0..1500u16, 0..20_000u16])
            .prop_map(|(r, bytes)| Paso::Cortada { r, bytes }),
        1 => (ix(), any::<bool>(), 0..6u8)
            .prop_map(|(r, al_servidor, frames)| Paso::Truncada { r, al_servidor, frames }),
        1 => (varios(), 0..12u8).prop_map(|(rs, mensajes)| Paso::CaidaDeRed { rs, mensajes }),
        1 => Just(Paso::Reinicio),
        1 => (varios(), 0..12u8).prop_map(|(rs, mensajes)| Paso::ReinicioDurante { rs, mensajes }),
        1 => ix().prop_map(|r| Paso::Sonda { r }),
    ]
}

#[derive(Debug, Clone)]
struct Escenario {
    /// The people of the schools; the supervisor comes after them.
    personas: Vec<Persona>,
    pasos: Vec<Paso>,
}

fn escenario() -> impl Strategy<Value = Escenario> {
    let persona = (
        prop_oneof![3 => Just(Rol::Docente), 1 => Just(Rol::Director)],
        0..2usize,
    )
        .prop_map(|(rol, escuela)| Persona { rol, escuela });
    (
        proptest::collection::vec(persona, 2..=6),
        proptest::collection::vec(paso(), 10..48),
    )
        .prop_map(|(personas, pasos)| Escenario { personas, pasos })
}

// ---------------------------------------------------------------------------------------------
// Running a case.

/// What the runs did, summed over cases (printed at the end).
#[derive(Debug, Default, Clone)]
struct Cuenta {
    casos: u64,
    replicas: u64,
    operaciones: u64,
    operaciones_rechazadas: u64,
    syncs_ok: u64,
    syncs_fallidos: u64,
    cortes: u64,
    truncados: u64,
    caidas: u64,
    reinicios: u64,
    reinicios_durante_sync: u64,
    sondas: u64,
    cambios: u64,
    /// Conflicts listed in the converged documents (concurrent edits of one field).
    conflictos: u64,
}

struct Replica {
    persona: Persona,
    usuario: String,
    token: String,
    store: Store,
    /// What it may hold (and syncs): its school's document or, for the supervisor, both; and
    /// the zone's.
    docs: Vec<DocumentId>,
    /// The last successful sync's report.
    ultimo: Option<Informe>,
}

struct Mundo<'a> {
    srv: TestServer,
    proxy: FaultProxy,
    reps: Vec<Replica>,
    tmp: tempfile::TempDir,
    escuelas: [DocInfo; 2],
    zona: DocInfo,
    /// Every change an operation made, per document: none may be lost.
    hechos: BTreeMap<DocumentId, BTreeSet<ChangeHash>>,
    /// Every acuerdo added, per document.
    acuerdos: BTreeMap<DocumentId, BTreeSet<String>>,
    /// The store a probe syncs from, created on first use.
    sonda: Option<Store>,
    siguiente_id: u64,
    reloj: i64,
    cuenta: &'a mut Cuenta,
}

fn addr(url: &str) -> Result<SocketAddr> {
    Ok(url.strip_prefix("http://").context("http URL")?.parse()?)
}

fn fecha(dias: u8) -> Fecha {
    let d = u32::from(dias);
    Fecha::parse(&format!("2025-{:02}-{:02}", 9 + d / 28 % 4, 1 + d % 28)).expect("valid date")
}

/// Errors a sync may end with when a fault hit it: the connection was refused or closed. (Not
/// a time-out: every fault here closes connections, so a sync that hangs is a bug.)
fn es_de_red(e: &EngineError) -> bool {
    matches!(e, EngineError::Conexion { .. } | EngineError::Cerrada)
}

impl Mundo<'_> {
    async fn nuevo<'a>(
        srv: TestServer,
        personas: &[Persona],
        cuenta: &'a mut Cuenta,
    ) -> Result<Mundo<'a>> {
        let zona = srv.zona(ZONA).await?;
        let escuelas = [
            srv.escuela(CCTS[0], ZONA).await?,
            srv.escuela(CCTS[1], ZONA).await?,
        ];
        let tmp = tempfile::tempdir()?;
        let mut reps = Vec::new();
        let todas = personas.iter().copied().chain([Persona {
            rol: Rol::Supervisor,
            escuela: 0,
        }]);
        for (i, p) in todas.enumerate() {
            let (usuario, token, docs) = match p.rol {
                Rol::Supervisor => (
                    "supervisora".to_string(),
                    srv.usuario("supervisora", "supervisor", None, Some(ZONA))
                        .await?,
                    vec![escuelas[0].id, escuelas[1].id, zona.id],
                ),
                Rol::Docente | Rol::Director => {
                    let u = format!("p{i}");
                    let rol = if p.rol == Rol::Docente {
                        "docente"
                    } else {
                        "director"
                    };
                    let t = srv.usuario(&u, rol, Some(CCTS[p.escuela]), None).await?;
                    (u, t, vec![escuelas[p.escuela].id, zona.id])
                }
            };
            let store = Store::open(&tmp.path().join(&usuario)).await?;
            for info in [&escuelas[0], &escuelas[1], &zona] {
                if docs.contains(&info.id) {
                    store.create(info, &mut genesis_de(info)?, 0).await?;
                }
            }
            srv.enrolar(&store.actor().await?.to_hex_string(), &usuario)
                .await?;
            reps.push(Replica {
                persona: p,
                usuario,
                token,
                store,
                docs,
                ultimo: None,
            });
        }
        let proxy = FaultProxy::start(addr(&srv.url)?, Faults::default()).await?;
        cuenta.replicas += reps.len() as u64;
        Ok(Mundo {
            srv,
            proxy,
            reps,
            tmp,
            escuelas,
            zona,
            hechos: BTreeMap::new(),
            acuerdos: BTreeMap::new(),
            sonda: None,
            siguiente_id: 0,
            reloj: 1_757_000_000,
            cuenta,
        })
    }

    fn supervisora(&self) -> usize {
        self.reps.len() - 1
    }

    /// The shared start: the supervisor records one acuerdo in each school and one práctica
    /// in the zone, and everyone syncs once over a clean network.
    async fn preparar(&mut self) -> Result<()> {
        let s = self.supervisora();
        for b in [false, true] {
            self.editar(
                s,
                b,
                &Op::AgregarAcuerdo {
                    texto: "Revisar la asistencia de cada grupo los viernes".into(),
                    dias: Some(30),
                },
            )
            .await?;
        }
        self.editar(
            s,
            false,
            &Op::Practica {
                titulo: "Lectura en voz alta".into(),
            },
        )
        .await?;
        self.sync_limpio(s).await?;
        for r in 0..self.reps.len() {
            self.sync_limpio(r).await?;
        }
        Ok(())
    }

    async fn paso(&mut self, p: &Paso) -> Result<()> {
        let n = self.reps.len();
        let uno = |r: &Ix| r.index(n);
        let varios = |rs: &[Ix]| -> Vec<usize> {
            let set: BTreeSet<usize> = rs.iter().map(|r| r.index(n)).collect();
            set.into_iter().collect()
        };
        match p {
            Paso::Editar { r, b, op } => self.editar(uno(r), *b, op).await,
            Paso::Sync { r } => self.sync_limpio(uno(r)).await,
            Paso::SyncJuntos { rs } => {
                let rs = varios(rs);
                let res = join_all(rs.iter().map(|&r| self.sync(r))).await;
                for (r, res) in rs.into_iter().zip(res) {
                    let informe = res.with_context(|| format!("clean sync of replica {r}"))?;
                    self.sync_ok(r, informe);
                }
                Ok(())
            }
            Paso::Cortada { r, bytes } => {
                let b = u64::from(*bytes);
                self.con_fallas(
                    uno(r),
                    Faults {
                        cut_after_bytes: Some(b..b + 1),
                        ..Faults::default()
                    },
                )
                .await?;
                self.cuenta.cortes += 1;
                Ok(())
            }
            Paso::Truncada {
                r,
                al_servidor,
                frames,
            } => {
                let direction = if *al_servidor {
                    Direction::ToTarget
                } else {
                    Direction::ToClient
                };
                self.con_fallas(
                    uno(r),
                    Faults {
                        truncate_frame: Some(Truncate {
                            direction,
                            after_frames: u64::from(*frames),
                        }),
                        ..Faults::default()
                    },
                )
                .await?;
                self.cuenta.truncados += 1;
                Ok(())
            }
            Paso::CaidaDeRed { rs, mensajes } => {
                self.durante(&varios(rs), u64::from(*mensajes), false)
                    .await?;
                self.cuenta.caidas += 1;
                Ok(())
            }
            Paso::Reinicio => self.reiniciar().await,
            Paso::ReinicioDurante { rs, mensajes } => {
                self.durante(&varios(rs), u64::from(*mensajes), true)
                    .await?;
                self.cuenta.reinicios_durante_sync += 1;
                Ok(())
            }
            Paso::Sonda { r } => self.sondear(uno(r)).await,
        }
    }

    /// Applies one model operation on a replica, as the CLI does: load, change, append.
    async fn editar(&mut self, r: usize, b: bool, op: &Op) -> Result<()> {
        let rep = &self.reps[r];
        let id = match (op.de_zona(), rep.persona.rol) {
            (true, Rol::Docente) => return Ok(()),
            (true, _) => self.zona.id,
            (false, Rol::Supervisor) => self.escuelas[usize::from(b)].id,
            (false, _) => self.escuelas[rep.persona.escuela].id,
        };
        let actor = rep.store.actor().await?;
        let mut doc = rep
            .store
            .load(&id)
            .await?
            .context("document in the store")?
            .with_actor(actor);
        let before = doc.get_heads();
        self.reloj += 60;
        self.siguiente_id += 1;
        let rid = RecordId::parse(&format!("r{r}x{}", self.siguiente_id))?;
        let ctx = Ctx {
            ahora: self.reloj,
            autor: Some(&rep.usuario),
        };
        let cct = Cct::parse(match rep.persona.rol {
            Rol::Supervisor => CCTS[usize::from(b)],
            _ => CCTS[rep.persona.escuela],
        })?;
        match aplicar(&mut doc, &ctx, &rid, &cct, op) {
            Ok(()) => {}
            Err(e) if e.is_bad_input() => {
                // Refused by the model's rules (e.g. nothing to edit yet): nothing written.
                ensure!(
                    doc.get_heads() == before,
                    "a refused operation left a change"
                );
                self.cuenta.operaciones_rechazadas += 1;
                return Ok(());
            }
            Err(e) => bail!("replica {r}, {op:?}: {e}"),
        }
        let nuevos: Vec<ChangeHash> = doc.get_changes(&before).iter().map(|c| c.hash()).collect();
        if nuevos.is_empty() {
            return Ok(());
        }
        rep.store.append(&id, &doc.save_after(&before)).await?;
        self.cuenta.operaciones += 1;
        self.cuenta.cambios += nuevos.len() as u64;
        self.hechos.entry(id).or_default().extend(nuevos);
        if matches!(op, Op::AgregarAcuerdo { .. } | Op::AcuerdoZona { .. }) {
            self.acuerdos.entry(id).or_default().insert(rid.to_string());
        }
        Ok(())
    }

    async fn sync(&self, r: usize) -> Result<Informe, EngineError> {
        let rep = &self.reps[r];
        sync_once(&rep.store, &self.proxy.url(), &rep.token, &rep.docs, LIMITE).await
    }

    fn sync_ok(&mut self, r: usize, informe: Informe) {
        self.cuenta.syncs_ok += 1;
        self.reps[r].ultimo = Some(informe);
    }

    /// A sync over a clean network: it must succeed.
    async fn sync_limpio(&mut self, r: usize) -> Result<()> {
        let informe = self
            .sync(r)
            .await
            .with_context(|| format!("clean sync of replica {r}"))?;
        self.sync_ok(r, informe);
        Ok(())
    }

    /// The outcome of a sync a fault may have hit: success, or a connection error.
    fn tras_falla(&mut self, r: usize, res: Result<Informe, EngineError>) -> Result<()> {
        match res {
            Ok(i) => self.sync_ok(r, i),
            Err(e) if es_de_red(&e) => self.cuenta.syncs_fallidos += 1,
            Err(e) => bail!("replica {r}: a fault must fail a sync as a lost connection: {e}"),
        }
        Ok(())
    }

    async fn con_fallas(&mut self, r: usize, faults: Faults) -> Result<()> {
        self.proxy.set_faults(faults);
        let res = self.sync(r).await;
        self.proxy.set_faults(Faults::default());
        self.tras_falla(r, res)
    }

    async fn reiniciar(&mut self) -> Result<()> {
        self.srv.restart().await?;
        self.proxy.set_target(addr(&self.srv.url)?);
        self.cuenta.reinicios += 1;
        Ok(())
    }

    /// Replicas `rs` sync at once; once `mensajes` sync messages have arrived in all (or they
    /// all finished first), every connection is dropped (`reiniciar`: the server restarts).
    async fn durante(&mut self, rs: &[usize], mensajes: u64, reiniciar: bool) -> Result<()> {
        let vistos = watch::Sender::new(0u64);
        let url = self.proxy.url();
        let reps = &self.reps;
        let syncs = async {
            let r = join_all(rs.iter().map(|&r| {
                let rep = &reps[r];
                let vistos = &vistos;
                sync_once_con_progreso(&rep.store, &url, &rep.token, &rep.docs, LIMITE, move |_| {
                    vistos.send_modify(|n| *n += 1)
                })
            }))
            .await;
            vistos.send_replace(u64::MAX);
            r
        };
        let srv = &mut self.srv;
        let proxy = &self.proxy;
        let falla = async {
            let _ = vistos.subscribe().wait_for(|n| *n >= mensajes).await;
            if reiniciar {
                srv.restart().await?;
                proxy.set_target(addr(&srv.url)?);
            } else {
                proxy.drop_all();
            }
            anyhow::Ok(())
        };
        let (res, falla) = tokio::join!(syncs, falla);
        falla?;
        if reiniciar {
            self.cuenta.reinicios += 1;
        }
        for (&r, res) in rs.iter().zip(res) {
            self.tras_falla(r, res)?;
        }
        Ok(())
    }

    /// A school's replica asks for the other school's document from a scratch store holding
    /// its genesis: the server must answer that it has no such document, and send nothing.
    async fn sondear(&mut self, r: usize) -> Result<()> {
        let Persona { rol, escuela } = self.reps[r].persona;
        if rol == Rol::Supervisor {
            return Ok(());
        }
        let ajeno = self.escuelas[1 - escuela].clone();
        if self.sonda.is_none() {
            let s = Store::open(&self.tmp.path().join("sonda")).await?;
            for info in &self.escuelas {
                s.create(info, &mut genesis_de(info)?, 0).await?;
            }
            self.sonda = Some(s);
        }
        let sonda = self.sonda.as_ref().expect("created above");
        let token = &self.reps[r].token;
        let res = sync_once(sonda, &self.proxy.url(), token, &[ajeno.id], LIMITE).await;
        match res {
            Err(EngineError::NoDisponible(id)) if id == ajeno.id => {}
            other => bail!(
                "replica {r} ({rol:?} of school {escuela}) asked for the other school's document: {other:?}"
            ),
        }
        let mut doc = sonda.load(&ajeno.id).await?.context("probe document")?;
        ensure!(
            doc.get_changes(&[]).len() == 1,
            "the probe received changes of a document it may not hold"
        );
        self.cuenta.sondas += 1;
        Ok(())
    }

    /// Clean network, everyone syncs twice, then every check.
    async fn verificar(&mut self) -> Result<()> {
        self.proxy.set_faults(Faults::default());
        for _ in 0..2 {
            for r in 0..self.reps.len() {
                self.sync_limpio(r).await?;
            }
        }
        for info in [&self.escuelas[0], &self.escuelas[1], &self.zona] {
            let id = info.id;
            let mut en_servidor = AutoCommit::load(
                &assemble(&self.srv.db.load(&id).await?)
                    .map_err(anyhow::Error::msg)?
                    .save(),
            )?;
            let esperado = Vista::de(&mut en_servidor, info.kind)?;
            self.cuenta.conflictos += esperado.contenido["conflictos"]
                .as_array()
                .map_or(0, |c| c.len() as u64);
            let hechos = self.hechos.get(&id).cloned().unwrap_or_default();
            let faltan: Vec<_> = hechos.difference(&esperado.cambios).collect();
            ensure!(
                faltan.is_empty(),
                "{id}: {} change(s) made by operations are missing on the server: {faltan:?}",
                faltan.len()
            );
            let acuerdos: BTreeSet<String> = esperado.contenido["acuerdos"]
                .as_array()
                .context("acuerdos")?
                .iter()
                .filter_map(|a| a["id"].as_str().map(str::to_string))
                .collect();
            let agregados = self.acuerdos.get(&id).cloned().unwrap_or_default();
            ensure!(
                acuerdos == agregados,
                "{id}: the acuerdos are not exactly those added: {acuerdos:?} vs {agregados:?}"
            );
            for (r, rep) in self.reps.iter().enumerate() {
                let local = rep.store.load(&id).await?;
                if !rep.docs.contains(&id) {
                    ensure!(local.is_none(), "replica {r} holds {id}, which it may not");
                    continue;
                }
                let mut doc = local.with_context(|| format!("replica {r} lacks {id}"))?;
                let v = Vista::de(&mut doc, info.kind)?;
                ensure!(
                    v.heads == esperado.heads,
                    "replica {r} ({:?}): heads of {id} differ from the server's",
                    rep.persona.rol
                );
                ensure!(
                    v.cambios == esperado.cambios,
                    "replica {r}: change set of {id} differs"
                );
                ensure!(
                    v.contenido == esperado.contenido,
                    "replica {r}: content of {id} differs:\n{}\nvs the server's\n{}",
                    v.contenido,
                    esperado.contenido
                );
                let confirmado = rep
                    .ultimo
                    .as_ref()
                    .and_then(|i| i.confirmados.get(&id))
                    .map(|h| {
                        let mut h = h.clone();
                        h.sort();
                        h
                    });
                ensure!(
                    confirmado.as_ref() == Some(&esperado.heads),
                    "replica {r}: the last sync did not confirm the heads of {id}"
                );
            }
        }
        for (r, rep) in self.reps.iter().enumerate() {
            for d in rep.store.documents().await? {
                ensure!(
                    rep.docs.contains(&d.id),
                    "replica {r} holds {}, which it may not",
                    d.id
                );
            }
            rep.store.integrity_check().await?;
        }
        Ok(())
    }

    async fn cerrar(self) -> Result<()> {
        for rep in &self.reps {
            rep.store.close().await;
        }
        if let Some(s) = &self.sonda {
            s.close().await;
        }
        self.proxy.stop().await;
        self.srv.stop().await
    }
}

/// What must be equal on every holder of a document.
struct Vista {
    heads: Vec<ChangeHash>,
    cambios: BTreeSet<ChangeHash>,
    contenido: Value,
}

impl Vista {
    fn de(doc: &mut AutoCommit, kind: DocKind) -> Result<Vista> {
        let mut heads = doc.get_heads();
        heads.sort();
        let cambios = doc.get_changes(&[]).iter().map(|c| c.hash()).collect();
        let vista = match kind {
            DocKind::Escuela => serde_json::to_value(escuela::leer(doc)?)?,
            DocKind::Zona => serde_json::to_value(zona::leer(doc)?)?,
        };
        let contenido = json!({
            "acuerdos": vista["acuerdos"],
            "todo": vista,
            "conflictos": conflictos::listar(doc),
        });
        Ok(Vista {
            heads,
            cambios,
            contenido,
        })
    }
}

/// One operation of the model on `doc`, with the ids and names the schedule chose.
fn aplicar(
    doc: &mut AutoCommit,
    ctx: &Ctx<'_>,
    rid: &RecordId,
    cct: &Cct,
    op: &Op,
) -> Result<(), ModelError> {
    let rec = |s: &str| RecordId::parse(s);
    let nada = || ModelError::NotFound {
        tipo: "registro",
        id: String::new(),
    };
    match op {
        Op::AgregarAcuerdo { .. } | Op::AcuerdoZona { .. } => {
            let (texto, dias) = match op {
                Op::AgregarAcuerdo { texto, dias } => (texto, *dias),
                Op::AcuerdoZona { texto } => (texto, None),
                _ => unreachable!("matched above"),
            };
            escuela::agregar_acuerdo(
                doc,
                ctx,
                rid,
                &NuevoAcuerdo {
                    texto: texto.clone(),
                    responsables: vec![PERSONAS[0].into()],
                    fecha_compromiso: dias.map(fecha),
                    sesion_origen: None,
                },
            )
        }
        Op::EditarTexto { k, splice } | Op::EditarTextoZona { k, splice } => {
            let acuerdos = acuerdos_de(doc)?;
            let (id, texto) = k.pick(&acuerdos).ok_or_else(nada)?;
            escuela::editar_texto_acuerdo(doc, ctx, &rec(id)?, &splice.aplicar(texto))
        }
        Op::EstadoAcuerdo { k, estado } => {
            let acuerdos = acuerdos_de(doc)?;
            let (id, _) = k.pick(&acuerdos).ok_or_else(nada)?;
            let e = *estado.pick(EstadoAcuerdo::TODOS).expect("not empty");
            escuela::estado_acuerdo(doc, ctx, &rec(id)?, e, None)
        }
        Op::EditarAcuerdo {
            k,
            responsables,
            dias,
        } => {
            let acuerdos = acuerdos_de(doc)?;
            let (id, _) = k.pick(&acuerdos).ok_or_else(nada)?;
            let resp: Vec<String> = responsables
                .iter()
                .map(|i| i.pick(PERSONAS).expect("not empty").to_string())
                .collect();
            escuela::editar_acuerdo(
                doc,
                ctx,
                &rec(id)?,
                None,
                (!resp.is_empty()).then_some(resp.as_slice()),
                dias.map(fecha),
            )
        }
        Op::Archivar { k, archivado } => {
            let acuerdos = acuerdos_de(doc)?;
            let (id, _) = k.pick(&acuerdos).ok_or_else(nada)?;
            escuela::archivar_registro(doc, ctx, "acuerdo", &rec(id)?, *archivado)
        }
        Op::Resolver { c, opcion } => {
            let lista = conflictos::listar(doc);
            let conflicto = c.pick(&lista).ok_or_else(nada)?;
            conflictos::resolver(doc, ctx, &conflicto.ruta, *opcion)
        }
        Op::AgregarMeta { texto, valor } => {
            let e = escuela::leer(doc)?;
            let objetivo = match e.objetivos.first() {
                Some(o) => rec(&o.id)?,
                None => {
                    // The first meta of this laptop's view comes with its objetivo.
                    let o = rec(&format!("{rid}o"))?;
                    escuela::agregar_objetivo(
                        doc,
                        ctx,
                        &o,
                        &NuevoObjetivo {
                            texto: "Mejorar la comprensión lectora".into(),
                            para_que: "Para que todos lean con fluidez".into(),
                            ambitos: vec!["aprovechamiento_asistencia".into()],
                        },
                    )?;
                    o
                }
            };
            escuela::agregar_meta(
                doc,
                ctx,
                rid,
                &NuevaMeta {
                    objetivo,
                    descripcion: format!("Meta {texto}"),
                    indicador: "alumnos que leen con fluidez".into(),
                    linea_base: Some(0.0),
                    valor_meta: Some(f64::from(*valor)),
                    unidad: "%".into(),
                    fecha_limite: Some(fecha(*valor)),
                },
            )
        }
        Op::RegistrarLogro { meta, nivel, dias } => {
            let e = escuela::leer(doc)?;
            let m = meta.pick(&e.metas).ok_or_else(nada)?;
            let n = *nivel.pick(NivelLogro::TODOS).expect("not empty");
            escuela::registrar_logro(
                doc,
                ctx,
                rid,
                &rec(&m.id)?,
                n,
                "Registro de lectura del grupo",
                fecha(*dias),
            )
        }
        Op::AgregarSesion { fase, numero } => {
            let f = *fase.pick(Fase::TODOS).expect("not empty");
            escuela::agregar_sesion(
                doc,
                ctx,
                rid,
                &NuevaSesion {
                    fase: f,
                    numero: *numero,
                    fecha: fecha(*numero as u8 * 20),
                    asistentes: PERSONAS.iter().map(|p| p.to_string()).collect(),
                    proposito: "Revisar el avance del PEMC".into(),
                    productos: "Lista de acuerdos".into(),
                    practicas: String::new(),
                },
            )
        }
        Op::EditarSesion { s, splice } => {
            let e = escuela::leer(doc)?;
            let ses = s.pick(&e.sesiones).ok_or_else(nada)?;
            let nuevo = splice.aplicar(&ses.productos);
            escuela::editar_sesion(doc, ctx, &rec(&ses.id)?, Some(&nuevo), None)
        }
        Op::Concentrado {
            grado,
            corte,
            inscritos,
            conteos,
        } => {
            let c = *corte.pick(Corte::TODOS).expect("not empty");
            let mut valores: Vec<(&str, i64)> = vec![("inscritos_inicio", i64::from(*inscritos))];
            for (campo, v) in conteos {
                let (k, _) = campo.pick(&CAMPOS_CONCENTRADO[2..]).expect("not empty");
                valores.push((k, i64::from(*v)));
            }
            escuela::concentrado_set(doc, ctx, *grado, "A", c, &valores).map(|_| ())
        }
        Op::Practica { titulo } => zona::agregar_practica(
            doc,
            ctx,
            rid,
            cct,
            titulo,
            "Cada mañana un alumno lee en voz alta a su grupo",
            Some("aprovechamiento_asistencia"),
        ),
    }
}

/// The acuerdos of a school or zone document, oldest first: (id, text).
fn acuerdos_de(doc: &AutoCommit) -> Result<Vec<(String, String)>, ModelError> {
    let lista = match bitacora_core::model::doc_kind(doc) {
        Some(DocKind::Zona) => zona::leer(doc)?.acuerdos,
        _ => escuela::leer(doc)?.acuerdos,
    };
    Ok(lista.into_iter().map(|a| (a.id, a.texto)).collect())
}

async fn caso(srv: TestServer, esc: &Escenario, cuenta: &mut Cuenta) -> Result<()> {
    let mut m = Mundo::nuevo(srv, &esc.personas, cuenta).await?;
    let r = async {
        m.preparar().await.context("the shared start")?;
        for (i, p) in esc.pasos.iter().enumerate() {
            m.paso(p)
                .await
                .with_context(|| format!("step {i}: {p:?}"))?;
        }
        m.verificar().await
    }
    .await;
    m.cuenta.casos += 1;
    let cerrado = m.cerrar().await;
    r?;
    cerrado
}

// ---------------------------------------------------------------------------------------------
// The runner.

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Runs `casos` cases (or `BITACORA_CONVERGENCE_CASES`), each on a server from `servidor`.
fn correr<F, Fut>(nombre: &str, casos: u32, servidor: F) -> Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(TestServer, Option<PgSchema>)>>,
{
    let casos: u32 = bitacora_tests::env_or("BITACORA_CONVERGENCE_CASES", || casos);
    let seed: u64 = bitacora_tests::env_or("BITACORA_CONVERGENCE_SEED", rand::random);
    let shrink: u32 = bitacora_tests::env_or("BITACORA_CONVERGENCE_SHRINK", || 64);
    eprintln!(
        "{nombre}: {casos} cases, seed {seed} (BITACORA_CONVERGENCE_SEED={seed} replays the schedules)"
    );
    let rt = runtime();
    let config = Config {
        cases: casos,
        max_shrink_iters: shrink,
        // Each step can wait LIMITE for a sync: a failure is reported within a couple of
        // minutes, not after 64 slow steps.
        max_shrink_time: 90_000,
        failure_persistence: None,
        ..Config::default()
    };
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes));
    let cuenta = Mutex::new(Cuenta::default());
    let fallos = Mutex::new(0u64);
    let inicio = Instant::now();
    let r = runner.run(&escenario(), |esc| {
        rt.block_on(async {
            let (srv, schema) = servidor()
                .await
                .map_err(|e| TestCaseError::fail(format!("{e:#}")))?;
            let mut c = Cuenta::default();
            let r = caso(srv, &esc, &mut c).await;
            if let Some(s) = schema {
                s.drop_schema()
                    .await
                    .map_err(|e| TestCaseError::fail(format!("{e:#}")))?;
            }
            let mut total = cuenta.lock().expect("lock");
            total.sumar(&c);
            if total.casos.is_multiple_of(25) {
                eprintln!(
                    "{nombre}: {} case runs, {:.0} s",
                    total.casos,
                    inicio.elapsed().as_secs_f64()
                );
            }
            r.map_err(|e| {
                *fallos.lock().expect("lock") += 1;
                TestCaseError::fail(format!("{e:#}"))
            })
        })
    });
    let c = cuenta.into_inner().expect("lock");
    eprintln!(
        "{nombre}: seed {seed}, {} case runs ({} failed, shrinking included) in {:.1} s: {c:?}",
        c.casos,
        fallos.into_inner().expect("lock"),
        inicio.elapsed().as_secs_f64()
    );
    r.map_err(|e| anyhow::anyhow!("{nombre} (seed {seed}): {e}"))
}

impl Cuenta {
    fn sumar(&mut self, o: &Cuenta) {
        self.casos += o.casos;
        self.replicas += o.replicas;
        self.operaciones += o.operaciones;
        self.operaciones_rechazadas += o.operaciones_rechazadas;
        self.syncs_ok += o.syncs_ok;
        self.syncs_fallidos += o.syncs_fallidos;
        self.cortes += o.cortes;
        self.truncados += o.truncados;
        self.caidas += o.caidas;
        self.reinicios += o.reinicios;
        self.reinicios_durante_sync += o.reinicios_durante_sync;
        self.sondas += o.sondas;
        self.cambios += o.cambios;
        self.conflictos += o.conflictos;
    }
}

#[test]
fn convergence_model() -> Result<()> {
    correr("convergence_model", 12, || async {
        Ok((TestServer::start().await?, None))
    })
}

/// The same model with the server on PostgreSQL, a fresh schema per case.
#[test]
fn convergence_model_postgres() -> Result<()> {
    let Ok(url) = std::env::var(bitacora_tests::server::PG_URL_VAR) else {
        // Prints the loud notice, creates nothing.
        let rt = runtime();
        rt.block_on(PgSchema::from_env("convergence_model_postgres", "conv"))?;
        return Ok(());
    };
    correr("convergence_model_postgres", 3, || {
        let url = url.clone();
        async move {
            let schema = PgSchema::create(&url, "conv").await?;
            let srv = TestServer::start_postgres(&schema).await?;
            Ok((srv, Some(schema)))
        }
    })
}
