//! Server benchmarks (docs/performance.md): a sync message applied through `Hub::receive` on
//! SQLite (apply, durable append, reply), and recomputing a school's dashboard projection, pure
//! (`bitacora_core::proyeccion::proyectar`) and from the database to the `proy_*` tables
//! (`bitacora_server::proyector::proyectar_documento`).
//!
//! The school document is the one of a full cycle built with the model's real operations
//! (`bitacora_escenario::ciclo`, 5,000 operations). Run with `cargo bench -p bitacora-server
//! --bench servidor`; CI only builds it (`cargo clippy --all-targets`).

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use automerge::sync::{self, SyncDoc};
use automerge::{ActorId, AutoCommit, Automerge};
use bitacora_core::ids::{CicloEscolar, DocumentId};
use bitacora_core::proyeccion::proyectar;
use bitacora_escenario::ciclo::{Escritor, escuela_tras_ciclo};
use bitacora_server::admin;
use bitacora_server::db::Database;
use bitacora_server::hub::{DocEntry, Hub};
use bitacora_server::proyector::proyectar_documento;
use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};

const CCT: &str = "07DPR0123X";
const ZONA: &str = "07FIZ0001";
const PASOS_CICLO: usize = 5_000;
/// One teacher's work during one CTE session, sent in one sync message.
const PASOS_SESION: usize = 50;

fn ciclo() -> CicloEscolar {
    CicloEscolar::parse("2025-2026").expect("literal")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// A fresh server database in `dir` with the zone, the school and its full-cycle document
/// (`ciclo_bytes` appended as one chunk after the genesis).
async fn base_de_datos(dir: &Path, ciclo_bytes: &[u8]) -> (Database, DocumentId) {
    let url = format!("sqlite://{}", dir.join("servidor.db").display());
    let db = Database::connect(&url).await.expect("database");
    admin::zona_add(&db, ZONA, "Zona de pruebas", ciclo())
        .await
        .expect("zone");
    let info = admin::escuela_add(&db, CCT, "Escuela de pruebas", ZONA, ciclo())
        .await
        .expect("school");
    db.append(&info.id, ciclo_bytes).await.expect("append");
    (db, info.id)
}

struct Datos {
    escuela: AutoCommit,
    bytes: Vec<u8>,
    /// The server's sync state after the first exchange of heads with a device that holds 50
    /// more changes, and that device's answer carrying them.
    estado: sync::State,
    mensaje: sync::Message,
}

fn datos() -> Datos {
    let cct = bitacora_core::ids::Cct::parse(CCT).expect("literal");
    let mut escuela =
        escuela_tras_ciclo(&cct, ciclo(), ActorId::from(&[1u8; 16][..]), PASOS_CICLO, 1)
            .expect("the cycle builds");
    let bytes = escuela.save();
    let servidor = Automerge::load(&bytes).expect("loads");
    let mut dispositivo = escuela.fork().with_actor(ActorId::from(&[2u8; 16][..]));
    Escritor::nuevo(&dispositivo, 2, "Mtra. Rosa Elena Díaz")
        .pasos(&mut dispositivo, PASOS_SESION)
        .expect("steps apply");
    let mut dispositivo = Automerge::load(&dispositivo.save()).expect("loads");
    let (mut s_srv, mut s_disp) = (sync::State::new(), sync::State::new());
    let mut srv = servidor.clone();
    let hola = dispositivo
        .generate_sync_message(&mut s_disp)
        .expect("hello");
    srv.receive_sync_message(&mut s_srv, hola).expect("applies");
    let respuesta = srv.generate_sync_message(&mut s_srv).expect("answer");
    dispositivo
        .receive_sync_message(&mut s_disp, respuesta)
        .expect("applies");
    let mensaje = dispositivo
        .generate_sync_message(&mut s_disp)
        .expect("the changes");
    assert!(!mensaje.changes.is_empty(), "the message carries changes");
    Datos {
        escuela,
        bytes,
        estado: s_srv,
        mensaje,
    }
}

fn servidor(c: &mut Criterion) {
    let rt = runtime();
    let d = datos();
    let mut g = c.benchmark_group("servidor");
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));

    // Each iteration gets a fresh database and hub with the full-cycle document loaded
    // (untimed); the time is `Hub::receive` alone: apply, append + COMMIT (synchronous=FULL),
    // generate the reply.
    g.bench_function("hub_receive_50_cambios_sqlite", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let dir = tempfile::tempdir().expect("tempdir");
                    let (db, id) = base_de_datos(dir.path(), &d.bytes).await;
                    let hub = Hub::new(db.clone(), 256 * 1024 * 1024);
                    let entry: Arc<DocEntry> = hub.entry(&id).await.expect("entry").expect("known");
                    hub.heads(&entry).await.expect("loads");
                    let (estado, mensaje) = (d.estado.clone(), d.mensaje.clone());
                    let t = Instant::now();
                    let r = hub.receive(&entry, estado, mensaje).await.expect("receive");
                    total += t.elapsed();
                    assert!(r.new_changes > 0, "the changes are new to the server");
                    black_box(r.reply);
                    db.close().await;
                }
                total
            })
        })
    });

    g.bench_function("proyectar_pura", |b| {
        let mut doc = d.escuela.clone();
        b.iter(|| black_box(proyectar(&mut doc).expect("projects")))
    });

    let dir = tempfile::tempdir().expect("tempdir");
    let (db, id) = rt.block_on(base_de_datos(dir.path(), &d.bytes));
    g.bench_function("proyectar_documento_sqlite", |b| {
        b.iter(|| {
            rt.block_on(async { black_box(proyectar_documento(&db, &id).await.expect("projects")) })
        })
    });
    g.finish();
    rt.block_on(db.close());
}

criterion_group!(benches, servidor);
criterion_main!(benches);
