//! `sync_survives_drops`: two teachers of one school sync with a real server through a
//! fault-injecting proxy that cuts connections after a random number of bytes, in either
//! direction and in the middle of messages. Each teacher records many acuerdos and edits one
//! shared acuerdo; then runs `bitacora sync` again and again (and keeps working between failed
//! attempts) until it succeeds. Every failed sync exits non-zero with a Spanish message and leaves
//! the local store intact; once the network is clean again both laptops and the server hold the
//! same heads and content, every acuerdo exactly once, both concurrent edits of the shared
//! acuerdo, and nothing unconfirmed. A sync with nothing new afterwards sends only a few bytes:
//! the persisted sync state spares resending what the server confirmed.
//!
//! The cuts come from a seeded generator: the seed is printed, and `BITACORA_TEST_SEED=<seed>`
//! replays the same cut points. No sleeps: every step waits for a command to finish.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use bitacora_core::automerge::{AutoCommit, ChangeHash};
use bitacora_core::ids::DocumentId;
use bitacora_core::model::{conflictos, escuela};
use bitacora_core::store::Store;
use bitacora_server::hub::assemble;
use bitacora_tests::Replica;
use bitacora_tests::proxy::{FaultProxy, Faults};
use bitacora_tests::server::{CICLO, TestServer};
use serde_json::{Value, json};

const ZONA: &str = "07FIZ0014";
const CCT: &str = "07DPR0123X";
const NOMBRE: &str = "Escuela Primaria Rural Benito Juárez";
/// Acuerdos each teacher records before syncing.
const ACUERDOS: usize = 30;
/// `bitacora sync` attempts allowed per teacher while the proxy cuts connections.
const MAX_ATTEMPTS: u32 = 50;
/// The hostile stretch: attempts per teacher, and where each connection is cut (bytes, both
/// directions counted).
const ATTEMPTS_HOSTIL: u32 = 3;
const HOSTIL: std::ops::Range<u64> = 1_000..4_000;

const TEXTO: &str = "Revisar la asistencia de cada grupo todos los viernes";
const TEXTO_ANA: &str = "Revisar la asistencia de cada grupo todos los lunes";
const TEXTO_LUIS: &str =
    "Revisar la asistencia de cada grupo todos los viernes y avisar a las familias";
const TEXTO_UNIDO: &str =
    "Revisar la asistencia de cada grupo todos los lunes y avisar a las familias";

/// The beginnings of the errors a sync may fail with when its connection is cut: the Spanish
/// messages of `EngineError` (after `error: `).
const ERRORES_DE_RED: &[&str] = &[
    "no se pudo conectar con el servidor",
    "la conexión se cerró antes de terminar",
    "la sincronización no terminó",
];

struct Teacher {
    name: &'static str,
    r: Replica,
    /// Acuerdos this teacher recorded.
    ids: Vec<String>,
    attempts: u32,
    failures: BTreeMap<String, u32>,
    /// The report of the first sync that succeeded under faults.
    ok: Option<Value>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sync_survives_drops() -> Result<()> {
    story(TestServer::start().await?).await
}

/// The same story with the server on PostgreSQL (a fresh schema, dropped at the end).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sync_survives_drops_postgres() -> Result<()> {
    let Some(schema) =
        bitacora_tests::server::PgSchema::from_env("sync_survives_drops_postgres", "drops").await?
    else {
        return Ok(());
    };
    let schema = std::sync::Arc::new(schema);
    let s = schema.clone();
    let outcome = tokio::spawn(async move {
        let srv = TestServer::start_postgres(&s).await?;
        assert_eq!(srv.db.backend(), "postgres");
        let db = srv.db.clone();
        let r = story(srv).await;
        db.close().await;
        r
    })
    .await;
    let dropped = schema.drop_schema().await;
    match outcome {
        Err(e) => std::panic::resume_unwind(e.into_panic()),
        Ok(r) => r?,
    }
    dropped
}

async fn story(srv: TestServer) -> Result<()> {
    let seed = match std::env::var("BITACORA_TEST_SEED") {
        Ok(s) => s.parse().context("BITACORA_TEST_SEED")?,
        Err(_) => rand::random::<u64>(),
    };
    eprintln!("sync_survives_drops: seed {seed} (BITACORA_TEST_SEED={seed} replays it)");

    srv.zona(ZONA).await?;
    let doc = srv.escuela(CCT, ZONA).await?;
    let t_ana = srv.usuario("ana", "docente", Some(CCT), None).await?;
    let t_luis = srv.usuario("luis", "docente", Some(CCT), None).await?;
    let target: SocketAddr = srv
        .url
        .strip_prefix("http://")
        .context("server url")?
        .parse()?;
    let proxy = FaultProxy::start(
        target,
        Faults {
            seed,
            ..Faults::default()
        },
    )
    .await?;

    let tmp = tempfile::tempdir()?;
    let mut ana = Teacher::new("ana", tmp.path(), "Mtra. Ana López")?;
    let mut luis = Teacher::new("luis", tmp.path(), "Mtro. Luis Gómez")?;

    // ---- Clean network: log in through the proxy, share one acuerdo. ---------------------------
    cli(
        &ana.r,
        &["login", "--servidor", &proxy.url(), "--token", &t_ana],
    )?;
    cli(
        &luis.r,
        &["login", "--servidor", &proxy.url(), "--token", &t_luis],
    )?;
    let comun = new_id(
        &ana.r,
        &[
            "acuerdo",
            "add",
            "--texto",
            TEXTO,
            "--responsable",
            "Director",
            "--fecha-compromiso",
            "2025-10-31",
        ],
    )?;
    sync(&ana.r)?;
    sync(&luis.r)?;
    ensure!(
        find_id(&cli_json(&luis.r, &["acuerdo", "list"])?, &comun).is_some(),
        "Luis holds the shared acuerdo"
    );

    // ---- Both work: many acuerdos each, and concurrent edits of the shared one. ----------------
    for i in 0..ACUERDOS {
        for t in [&mut ana, &mut luis] {
            t.add(&format!("Acuerdo {i} de {}", t.name))?;
        }
        match i {
            5 => {
                cli(&ana.r, &["acuerdo", "edit", &comun, "--texto", TEXTO_ANA])?;
                cli(&luis.r, &["acuerdo", "edit", &comun, "--texto", TEXTO_LUIS])?;
            }
            15 => {
                cli(
                    &ana.r,
                    &[
                        "acuerdo",
                        "edit",
                        &comun,
                        "--fecha-compromiso",
                        "2026-03-31",
                    ],
                )?;
                cli(
                    &luis.r,
                    &[
                        "acuerdo",
                        "edit",
                        &comun,
                        "--responsable",
                        "Director",
                        "--responsable",
                        "Mtro. Luis Gómez",
                    ],
                )?;
            }
            _ => {}
        }
    }
    // What a full sync has to carry: the changes each laptop made.
    let pendiente_ana = own_change_bytes(&ana.r.dir, &doc.id).await?;
    let pendiente_luis = own_change_bytes(&luis.r.dir, &doc.id).await?;
    eprintln!("own change bytes: ana {pendiente_ana}, luis {pendiente_luis}");

    // ---- Flaky network: sync until it works, working on between attempts. ----------------------
    // First a hostile stretch: every connection is cut within its first 4 kB, before a sync of
    // this much work can finish (the HTTP request before it, under 1 kB, gets through), so
    // each teacher's sync is cut, mostly in the middle of a sync message. Then cut points up to
    // the size of both teachers' changes: some syncs are cut, some get through.
    let before = proxy.counters();
    let faults = |cut: std::ops::Range<u64>| Faults {
        cut_after_bytes: Some(cut),
        latency: Duration::from_millis(1),
        bytes_per_sec: Some(2_000_000),
        seed,
        ..Faults::default()
    };
    proxy.set_faults(faults(HOSTIL));
    for _ in 0..ATTEMPTS_HOSTIL {
        for t in [&mut ana, &mut luis] {
            if t.ok.is_none() {
                t.attempt()?;
            }
        }
    }
    proxy.set_faults(faults(0..pendiente_ana + pendiente_luis));
    while ana.ok.is_none() || luis.ok.is_none() {
        for t in [&mut ana, &mut luis] {
            if t.ok.is_none() {
                ensure!(
                    t.attempts < MAX_ATTEMPTS,
                    "{} never synced in {MAX_ATTEMPTS} attempts (seed {seed}); failures: {:?}",
                    t.name,
                    t.failures
                );
                t.attempt()?;
            }
        }
    }
    let flaky = proxy.counters();
    let log = proxy.connections();
    let cortadas: Vec<String> = log
        .iter()
        .filter(|c| c.cut)
        .map(|c| format!("{}+{}", c.bytes_to_target, c.bytes_to_client))
        .collect();
    for t in [&ana, &luis] {
        eprintln!(
            "{}: {} attempt(s), failures {:?}, report of the successful one: {}",
            t.name,
            t.attempts,
            t.failures,
            t.ok.as_ref().map_or("none".into(), Value::to_string)
        );
    }
    eprintln!(
        "proxy under faults: {} connections, {} cut (bytes up+down at the cut: {}), \
         {} bytes to the server, {} to the clients",
        flaky.connections - before.connections,
        flaky.cuts - before.cuts,
        cortadas.join(", "),
        flaky.bytes_to_target - before.bytes_to_target,
        flaky.bytes_to_client - before.bytes_to_client
    );
    for t in [&ana, &luis] {
        ensure!(
            !t.failures.is_empty(),
            "{}'s sync was never cut (seed {seed})",
            t.name
        );
    }

    // ---- Clean network again: one more sync each, then one with nothing new. -------------------
    proxy.set_faults(Faults {
        seed,
        ..Faults::default()
    });
    sync(&ana.r)?;
    sync(&luis.r)?;
    for (t, pendiente) in [(&ana, pendiente_ana), (&luis, pendiente_luis)] {
        let again = sync(&t.r)?;
        eprintln!("{}: sync with nothing new: {again}", t.name);
        let bytes = again["bytes_enviados"].as_u64().context("bytes_enviados")?;
        let docs = again["documentos"].as_u64().context("documentos")?;
        ensure!(
            again["cambios_enviados"] == 0 && again["cambios_recibidos"] == 0,
            "{}: nothing left to exchange: {again}",
            t.name
        );
        ensure!(
            bytes * 5 < pendiente && bytes < 1024 * docs,
            "{}: a sync with nothing new sent {bytes} bytes for {docs} document(s); the full \
             sync had {pendiente} bytes of changes to send",
            t.name
        );
    }

    // ---- Everything converged, nothing lost, nothing twice. ------------------------------------
    let export = cli_json(&ana.r, &["export", "json"])?;
    ensure!(
        cli_json(&luis.r, &["export", "json"])? == export,
        "both laptops hold the same content"
    );
    let hist_ana = historial(&ana.r)?;
    let hist_luis = historial(&luis.r)?;
    for h in [&hist_ana, &hist_luis] {
        let set: BTreeSet<&String> = h.iter().collect();
        ensure!(set.len() == h.len(), "no change listed twice");
    }
    let set_ana: BTreeSet<String> = hist_ana.iter().cloned().collect();
    let set_luis: BTreeSet<String> = hist_luis.iter().cloned().collect();
    ensure!(set_ana == set_luis, "same change set on both laptops");

    let heads_ana = ana.r.heads(&doc.id).await?;
    ensure!(luis.r.heads(&doc.id).await? == heads_ana, "same heads");
    let en_servidor = assemble(&srv.db.load(&doc.id).await?).map_err(anyhow::Error::msg)?;
    let mut en_servidor = AutoCommit::load(&en_servidor.save())?;
    ensure!(
        sorted(en_servidor.get_heads()) == heads_ana,
        "the server holds the laptops' heads"
    );
    let set_srv: BTreeSet<String> = en_servidor
        .get_changes(&[])
        .iter()
        .map(|c| c.hash().to_string())
        .collect();
    ensure!(set_srv == set_ana, "the server holds the same change set");
    ensure!(
        json!({
            "escuela": escuela::leer(&en_servidor)?,
            "conflictos": conflictos::listar(&en_servidor),
        }) == export,
        "the server holds the same content"
    );

    // Every acuerdo exactly once.
    let acuerdos = export["escuela"]["acuerdos"]
        .as_array()
        .context("acuerdos")?;
    let mut veces: BTreeMap<&str, usize> = BTreeMap::new();
    for a in acuerdos {
        *veces.entry(a["id"].as_str().context("id")?).or_default() += 1;
    }
    let esperados: BTreeSet<&str> = ana
        .ids
        .iter()
        .chain(&luis.ids)
        .map(String::as_str)
        .chain([comun.as_str()])
        .collect();
    ensure!(
        esperados.len() == ana.ids.len() + luis.ids.len() + 1,
        "distinct ids"
    );
    ensure!(
        veces.keys().copied().collect::<BTreeSet<_>>() == esperados,
        "exactly the acuerdos recorded: {} listed, {} recorded",
        veces.len(),
        esperados.len()
    );
    ensure!(
        veces.values().all(|n| *n == 1),
        "every acuerdo once: {veces:?}"
    );
    for t in [&ana, &luis] {
        for (i, id) in t.ids.iter().enumerate() {
            let a = find_id(&export["escuela"]["acuerdos"], id).context("acuerdo")?;
            ensure!(
                a["texto"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("Acuerdo ")),
                "{} #{i}: {a}",
                t.name
            );
        }
    }

    // Both teachers' edits of the shared acuerdo.
    let c = find_id(&export["escuela"]["acuerdos"], &comun).context("shared acuerdo")?;
    ensure!(c["texto"] == TEXTO_UNIDO, "both text edits merged: {c}");
    ensure!(c["fecha_compromiso"] == "2026-03-31", "Ana's date: {c}");
    ensure!(
        c["responsables"] == json!(["Director", "Mtro. Luis Gómez"]),
        "Luis's responsables: {c}"
    );
    ensure!(
        export["conflictos"] == json!([]),
        "no conflict: {}",
        export["conflictos"]
    );

    // Nothing unconfirmed.
    for t in [&ana, &luis] {
        let estado = cli_json(&t.r, &["estado"])?;
        for d in estado["documentos"].as_array().context("documentos")? {
            ensure!(
                d["cambios_sin_confirmar"] == 0,
                "{}: unconfirmed changes: {estado}",
                t.name
            );
        }
    }

    let total = proxy.counters();
    eprintln!("proxy in all: {total:?}");
    proxy.stop().await;
    srv.stop().await
}

impl Teacher {
    fn new(name: &'static str, dir: &Path, autor: &str) -> Result<Teacher> {
        let r = Replica::new(dir.join(name));
        cli(
            &r,
            &[
                "init", "--cct", CCT, "--nombre", NOMBRE, "--zona", ZONA, "--ciclo", CICLO,
                "--autor", autor,
            ],
        )?;
        Ok(Teacher {
            name,
            r,
            ids: Vec::new(),
            attempts: 0,
            failures: BTreeMap::new(),
            ok: None,
        })
    }

    fn add(&mut self, texto: &str) -> Result<()> {
        let id = new_id(&self.r, &["acuerdo", "add", "--texto", texto])?;
        self.ids.push(id);
        Ok(())
    }

    /// One `bitacora sync` through the flaky network. A failure must say why in Spanish, exit 1
    /// and leave every change in place; the teacher then records one more acuerdo every third
    /// failure, as people keep working while the network is bad.
    fn attempt(&mut self) -> Result<()> {
        let antes = historial(&self.r)?;
        self.attempts += 1;
        let out = tokio::task::block_in_place(|| self.r.run(&["--json", "sync"]))?;
        if out.status.success() {
            let v: Value = serde_json::from_slice(&out.stdout)?;
            self.ok = Some(v);
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        ensure!(
            out.status.code() == Some(1),
            "{}: a failed sync exits 1, not {}: {stderr}",
            self.name,
            out.status
        );
        let Some(msg) = stderr.trim().strip_prefix("error: ") else {
            bail!("{}: unexpected error output: {stderr:?}", self.name);
        };
        let Some(kind) = ERRORES_DE_RED.iter().find(|k| msg.starts_with(**k)) else {
            bail!(
                "{}: a cut connection must fail with a network error in Spanish, got: {msg}",
                self.name
            );
        };
        *self.failures.entry(kind.to_string()).or_default() += 1;
        ensure!(
            out.stdout.is_empty(),
            "{}: no report after a failure: {}",
            self.name,
            String::from_utf8_lossy(&out.stdout)
        );
        // The local store is intact: every change still there, every acuerdo still listed.
        let despues = historial(&self.r)?;
        let despues: BTreeSet<&String> = despues.iter().collect();
        ensure!(
            antes.iter().all(|h| despues.contains(h)),
            "{}: a failed sync lost local changes",
            self.name
        );
        let lista = cli_json(&self.r, &["acuerdo", "list"])?;
        for id in &self.ids {
            ensure!(
                find_id(&lista, id).is_some(),
                "{}: acuerdo {id} gone after a failed sync",
                self.name
            );
        }
        let fallas: u32 = self.failures.values().sum();
        if fallas.is_multiple_of(3) {
            self.add(&format!(
                "Acuerdo de {} tras el fallo {fallas} de la red",
                self.name
            ))?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers. The CLI runs as a child process; `block_in_place` lets the in-process server and the
// proxy keep serving on the other workers while this one waits for it.

fn cli(r: &Replica, args: &[&str]) -> Result<String> {
    tokio::task::block_in_place(|| r.ok(args))
}

fn cli_json(r: &Replica, args: &[&str]) -> Result<Value> {
    tokio::task::block_in_place(|| r.json(args))
}

fn sync(r: &Replica) -> Result<Value> {
    cli_json(r, &["sync"])
}

/// Runs an `… add --json` and returns the new record's id.
fn new_id(r: &Replica, args: &[&str]) -> Result<String> {
    let v = cli_json(r, args)?;
    Ok(v["id"]
        .as_str()
        .with_context(|| format!("no id in {v}"))?
        .to_string())
}

fn find_id<'a>(list: &'a Value, id: &str) -> Option<&'a Value> {
    list.as_array()?.iter().find(|x| x["id"] == id)
}

/// The change hashes of `historial --json`, in its order.
fn historial(r: &Replica) -> Result<Vec<String>> {
    let h = cli_json(r, &["historial"])?;
    Ok(h.as_array()
        .context("historial")?
        .iter()
        .filter_map(|e| e["hash"].as_str().map(str::to_string))
        .collect())
}

fn sorted(mut h: Vec<ChangeHash>) -> Vec<ChangeHash> {
    h.sort();
    h
}

/// The encoded size of the changes this laptop made: about what its first full sync sends.
async fn own_change_bytes(dir: &Path, id: &DocumentId) -> Result<u64> {
    let store = Store::open(dir).await?;
    let actor = store.actor().await;
    let doc = store.load(id).await;
    store.close().await;
    let (actor, mut doc) = (actor?, doc?.context("document")?);
    Ok(doc
        .get_changes(&[])
        .iter()
        .filter(|c| *c.actor_id() == actor)
        .map(|c| c.raw_bytes().len() as u64)
        .sum())
}
