//! Benchmarks of a school document after a full cycle (docs/performance.md): saving and
//! loading it, and applying a sync message that brings another teacher's session of work.
//!
//! The document is built with the model's real operations (`bitacora_escenario::ciclo`):
//! 5,000 operations, about 200 KB of text. Run with `cargo bench -p bitacora-core --bench
//! documento`; CI only builds it (`cargo clippy --all-targets`).

use std::hint::black_box;
use std::time::Duration;

use bitacora_core::automerge::sync::{self, SyncDoc};
use bitacora_core::automerge::{ActorId, AutoCommit, Automerge};
use bitacora_core::ids::{Cct, CicloEscolar};
use bitacora_core::model::{conflictos, escuela};
use bitacora_core::proyeccion::proyectar;
use bitacora_escenario::ciclo::{Escritor, bytes_de_texto, escuela_tras_ciclo};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

const PASOS_CICLO: usize = 5_000;
/// One teacher's work during one CTE session, sent in one sync message.
const PASOS_SESION: usize = 50;

fn escuela() -> AutoCommit {
    let cct = Cct::parse("07DPR0123X").expect("literal");
    let ciclo = CicloEscolar::parse("2025-2026").expect("literal");
    let mut doc = escuela_tras_ciclo(&cct, ciclo, ActorId::from(&[1u8; 16][..]), PASOS_CICLO, 1)
        .expect("the cycle builds");
    eprintln!(
        "school document: {} changes, {} bytes of text, save() {} bytes",
        doc.get_changes(&[]).len(),
        bytes_de_texto(&doc).expect("reads"),
        doc.save().len()
    );
    doc
}

fn documento(c: &mut Criterion) {
    let mut doc = escuela();
    let bytes = doc.save();
    let am: Automerge = Automerge::load(&bytes).expect("loads");

    let mut g = c.benchmark_group("escuela_ciclo");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    g.bench_function("save", |b| b.iter(|| black_box(am.save())));
    g.bench_function("load", |b| {
        b.iter(|| black_box(Automerge::load(black_box(&bytes)).expect("loads")))
    });

    // A sync message from a peer holding 50 more changes by another teacher: the first
    // message of the receiving side (heads and bloom filter), the peer's answer carrying the
    // changes, and the cost of applying that answer.
    let mut otro = doc.fork().with_actor(ActorId::from(&[2u8; 16][..]));
    Escritor::nuevo(&otro, 2, "Mtra. Rosa Elena Díaz")
        .pasos(&mut otro, PASOS_SESION)
        .expect("steps apply");
    let otro = Automerge::load(&otro.save()).expect("loads");
    let mut estado = sync::State::new();
    let hola = am
        .generate_sync_message(&mut estado)
        .expect("first message");
    let mut estado_otro = sync::State::new();
    let mut otro_rx = otro.clone();
    otro_rx
        .receive_sync_message(&mut estado_otro, hola)
        .expect("applies");
    let con_cambios = otro_rx
        .generate_sync_message(&mut estado_otro)
        .expect("an answer");
    eprintln!(
        "sync message with {PASOS_SESION} operations: {} bytes",
        con_cambios.clone().encode().len()
    );
    g.bench_function("aplicar_sync_50_cambios", |b| {
        b.iter_batched(
            || (am.clone(), estado.clone(), con_cambios.clone()),
            |(mut d, mut s, m)| {
                d.receive_sync_message(&mut s, m).expect("applies");
                d
            },
            BatchSize::LargeInput,
        )
    });
    // The dashboard's projection of the document (server/src/proyector.rs runs it after every
    // change), and its three parts: reading the model, listing conflicts, counting changes.
    g.bench_function("proyectar", |b| {
        b.iter(|| black_box(proyectar(&mut doc).expect("projects")))
    });
    g.bench_function("proyectar/leer", |b| {
        b.iter(|| black_box(escuela::leer(&doc).expect("reads")))
    });
    g.bench_function("proyectar/conflictos", |b| {
        b.iter(|| black_box(conflictos::listar(&doc)))
    });
    g.bench_function("proyectar/cambios", |b| {
        b.iter(|| black_box(doc.get_changes_meta(&[]).len()))
    });
    g.finish();
}

criterion_group!(benches, documento);
criterion_main!(benches);
