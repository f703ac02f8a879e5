//! `server_crash_durability`: the real `bitacora-server` binary is killed with SIGKILL at random
//! moments while several teachers of one school write and sync through it; every change a
//! client saw confirmed (its sync ended with both sides on the same heads, and the server only
//! advertises committed heads) must still be in the server's database after the crash.
//!
//! Setup goes through `bitacora-server admin …` and `POST /v1/actores`, syncing through the real
//! client engine (`sync_once`) over each teacher's own local store. Each round waits for a random
//! number of confirmed syncs (read from a channel, no sleeps), kills the server, checks the
//! database it left behind (SQLite integrity and every confirmed acuerdo present), and restarts
//! it on a new port, which the clients learn through a watch channel. At the end the clients
//! sync once more (so everything they wrote is confirmed), the server is killed and restarted
//! once more, and a fresh store syncs the school down: it must hold every acuerdo written.
//!
//! `CRASH_SEED` and `CRASH_ROUNDS` (default 5) reproduce or lengthen a run.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use bitacora_core::automerge::AutoCommit;
use bitacora_core::engine::{EngineError, sync_once};
use bitacora_core::ids::{Cct, CicloEscolar, DocumentId, RecordId};
use bitacora_core::model::escuela::{self, NuevoAcuerdo};
use bitacora_core::model::{Ctx, DocKind};
use bitacora_core::store::{DocInfo, Store};
use bitacora_server::hub::assemble;
use bitacora_tests::server::{ServerInstall, enrolar_http};
use rand::{Rng, SeedableRng};
use tokio::sync::{mpsc, watch};

const ZONA: &str = "07FIZ0014";
const CCT: &str = "07DPR0123X";
const CICLO: &str = "2025-2026";
const DOCENTES: usize = 3;
/// Time limit of one `sync_once`.
const LIMITE_SYNC: Duration = Duration::from_secs(30);
/// Longest wait for any one event (a server start, the next confirmed sync): a hang fails.
const PLAZO: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------------------------
// The documents.

fn escuela_info() -> Result<(DocInfo, AutoCommit)> {
    let cct = Cct::parse(CCT)?;
    let ciclo = CicloEscolar::parse(CICLO)?;
    let info = DocInfo {
        id: DocumentId::escuela(&cct, ciclo),
        kind: DocKind::Escuela,
        owner: cct.to_string(),
        ciclo: ciclo.to_string(),
    };
    Ok((info, escuela::genesis_escuela(&cct, ciclo)?))
}

/// A local store in `dir` holding the deterministic genesis of the school.
async fn store_nuevo(dir: &Path) -> Result<Store> {
    let store = Store::open(dir).await?;
    let (info, mut genesis) = escuela_info()?;
    store.create(&info, &mut genesis, 0).await?;
    Ok(store)
}

async fn acuerdos_del_store(store: &Store, id: &DocumentId) -> Result<BTreeSet<String>> {
    let doc = store.load(id).await?.context("school document in store")?;
    Ok(escuela::leer(&doc)?
        .acuerdos
        .into_iter()
        .map(|a| a.id)
        .collect())
}

/// What the server's database holds (read directly, with no server running).
struct EnDisco {
    acuerdos: BTreeSet<String>,
    chunks: i64,
    escrituras: usize,
}

async fn en_disco(inst: &ServerInstall, id: &DocumentId) -> Result<EnDisco> {
    let db = inst.database().await?;
    db.integrity_check().await?;
    let stored = db.load(id).await?;
    let chunks = db.chunk_count(id).await?;
    let escrituras = db
        .audit_tail(i64::MAX)
        .await?
        .iter()
        .filter(|r| r.3 == "escritura" && r.4 == "aceptada")
        .count();
    db.close().await;
    let doc = assemble(&stored).map_err(anyhow::Error::msg)?;
    let doc = AutoCommit::load(&doc.save())?;
    let acuerdos = escuela::leer(&doc)?
        .acuerdos
        .into_iter()
        .map(|a| a.id)
        .collect();
    Ok(EnDisco {
        acuerdos,
        chunks,
        escrituras,
    })
}

fn faltantes<'a>(
    esperados: impl IntoIterator<Item = &'a String>,
    hay: &BTreeSet<String>,
) -> Vec<String> {
    esperados
        .into_iter()
        .filter(|id| !hay.contains(*id))
        .cloned()
        .collect()
}

// ---------------------------------------------------------------------------------------------
// A teacher.

enum Evento {
    /// A sync ended in agreement with the server: these acuerdos are confirmed.
    Confirmado(BTreeSet<String>),
    /// The client hit an error that is not a lost connection.
    Fallo(String),
}

#[derive(Debug, Default)]
struct Resultado {
    creados: Vec<String>,
    syncs: usize,
    errores_de_conexion: usize,
}

struct Docente {
    n: usize,
    store: Store,
    token: String,
    rng: rand::rngs::StdRng,
    url: watch::Receiver<String>,
    parar: watch::Receiver<bool>,
    eventos: mpsc::UnboundedSender<Evento>,
}

impl Docente {
    async fn correr(mut self) -> Result<Resultado> {
        let r = self.bucle().await;
        if let Err(e) = &r {
            let _ = self
                .eventos
                .send(Evento::Fallo(format!("docente {}: {e:#}", self.n)));
        }
        r
    }

    async fn bucle(&mut self) -> Result<Resultado> {
        let (info, _) = escuela_info()?;
        let id = info.id;
        let actor = self.store.actor().await?;
        let autor = format!("Docente {}", self.n);
        let mut res = Resultado::default();
        while !*self.parar.borrow() {
            // One to three acuerdos, each saved locally on its own (as the CLI does).
            let mut doc = self
                .store
                .load(&id)
                .await?
                .context("school document")?
                .with_actor(actor.clone());
            for _ in 0..self.rng.random_range(1..=3) {
                let rid = RecordId::parse(&format!("d{}-{}", self.n, res.creados.len()))?;
                let before = doc.get_heads();
                let ctx = Ctx {
                    ahora: 1_750_000_000 + res.creados.len() as i64,
                    autor: Some(&autor),
                };
                let a = NuevoAcuerdo {
                    texto: format!("Acuerdo {rid} de la {autor}"),
                    responsables: vec![autor.clone()],
                    fecha_compromiso: None,
                    sesion_origen: None,
                };
                escuela::agregar_acuerdo(&mut doc, &ctx, &rid, &a)?;
                self.store.append(&id, &doc.save_after(&before)).await?;
                res.creados.push(rid.to_string());
            }
            let url = self.url.borrow_and_update().clone();
            match sync_once(&self.store, &url, &self.token, &[id], LIMITE_SYNC).await {
                Ok(_) => self.confirmar(&id, &mut res).await?,
                Err(
                    EngineError::Conexion { .. }
                    | EngineError::Cerrada
                    | EngineError::TiempoAgotado(_),
                ) => {
                    // The server is down: wait for it to come back (or for the end).
                    res.errores_de_conexion += 1;
                    tokio::select! {
                        r = self.url.changed() => r.context("controller gone")?,
                        r = self.parar.changed() => r.context("controller gone")?,
                    }
                }
                Err(e) => return Err(e).context("sync against a live server"),
            }
        }
        // The end: the server is up; one last sync confirms everything this teacher wrote.
        let url = self.url.borrow().clone();
        sync_once(&self.store, &url, &self.token, &[id], LIMITE_SYNC)
            .await
            .context("final sync")?;
        self.confirmar(&id, &mut res).await?;
        Ok(res)
    }

    /// After a sync that ended in agreement, every acuerdo in the local document is confirmed.
    async fn confirmar(&mut self, id: &DocumentId, res: &mut Resultado) -> Result<()> {
        res.syncs += 1;
        let ids = acuerdos_del_store(&self.store, id).await?;
        let _ = self.eventos.send(Evento::Confirmado(ids));
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------

/// Waits for the next event; a client failure or a long silence fails the test.
async fn siguiente(
    rx: &mut mpsc::UnboundedReceiver<Evento>,
    confirmados: &mut BTreeSet<String>,
) -> Result<()> {
    match tokio::time::timeout(PLAZO, rx.recv()).await {
        Err(_) => bail!("no sync was confirmed for {PLAZO:?}"),
        Ok(None) => bail!("every client stopped"),
        Ok(Some(Evento::Fallo(e))) => bail!("client failed: {e}"),
        Ok(Some(Evento::Confirmado(ids))) => {
            confirmados.extend(ids);
            Ok(())
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn server_crash_durability() -> Result<()> {
    let seed: u64 = bitacora_tests::env_or("CRASH_SEED", rand::random);
    let rounds: usize = bitacora_tests::env_or("CRASH_ROUNDS", || 5);
    eprintln!("server_crash_durability seed={seed} rounds={rounds}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let tmp = tempfile::tempdir()?;
    let inst = ServerInstall::new(tmp.path(), None)?;
    let (info, _) = escuela_info()?;

    // The zone, the school and its teachers, through the admin commands.
    inst.admin(&[
        "zona", "add", "--clave", ZONA, "--nombre", "Zona 14", "--ciclo", CICLO,
    ])
    .await?;
    inst.admin(&[
        "escuela",
        "add",
        "--cct",
        CCT,
        "--nombre",
        "Escuela Primaria Rural Benito Juárez",
        "--zona",
        ZONA,
        "--ciclo",
        CICLO,
    ])
    .await?;
    let mut srv = inst.serve(PLAZO).await?;
    let (url_tx, url_rx) = watch::channel(srv.url.clone());
    let (parar_tx, parar_rx) = watch::channel(false);
    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel();
    let mut tareas = Vec::new();
    for n in 1..=DOCENTES {
        let usuario = format!("docente{n}");
        inst.admin(&[
            "usuario",
            "add",
            "--id",
            &usuario,
            "--nombre",
            &format!("Docente {n}"),
            "--rol",
            "docente",
            "--cct",
            CCT,
        ])
        .await?;
        let token = inst.token(&usuario).await?;
        let store = store_nuevo(&tmp.path().join(&usuario)).await?;
        enrolar_http(&srv.url, &token, &store.actor().await?.to_hex_string()).await?;
        let d = Docente {
            n,
            store,
            token,
            rng: rand::rngs::StdRng::seed_from_u64(seed ^ n as u64),
            url: url_rx.clone(),
            parar: parar_rx.clone(),
            eventos: ev_tx.clone(),
        };
        tareas.push(tokio::spawn(d.correr()));
    }
    drop(ev_tx);

    // The crashes.
    let mut confirmados = BTreeSet::new();
    let mut syncs = 0usize;
    for round in 1..=rounds {
        let kill_after = rng.random_range(3..=15);
        for _ in 0..kill_after {
            siguiente(&mut ev_rx, &mut confirmados).await?;
            syncs += 1;
        }
        srv.kill().await?;
        // Syncs that ended before the kill and were not read yet.
        while let Ok(ev) = ev_rx.try_recv() {
            match ev {
                Evento::Confirmado(ids) => {
                    confirmados.extend(ids);
                    syncs += 1;
                }
                Evento::Fallo(e) => bail!("client failed: {e}"),
            }
        }
        let disco = en_disco(&inst, &info.id).await?;
        let perdidos = faltantes(&confirmados, &disco.acuerdos);
        ensure!(
            perdidos.is_empty(),
            "round {round} (seed {seed}): {} confirmed acuerdos missing after the crash: {perdidos:?}",
            perdidos.len()
        );
        eprintln!(
            "round {round}: killed after {kill_after} confirmed syncs; {} confirmed, {} on disk \
             ({} chunks, {} accepted writes)",
            confirmados.len(),
            disco.acuerdos.len(),
            disco.chunks,
            disco.escrituras
        );
        srv = inst.serve(PLAZO).await?;
        url_tx.send(srv.url.clone())?;
    }

    // The restarted server works; then the clients stop, each after one last sync.
    for _ in 0..DOCENTES {
        siguiente(&mut ev_rx, &mut confirmados).await?;
        syncs += 1;
    }
    parar_tx.send(true)?;
    let mut creados = Vec::new();
    let mut errores = 0;
    for t in tareas {
        let r = t.await??;
        errores += r.errores_de_conexion;
        creados.extend(r.creados);
    }
    while let Some(ev) = ev_rx.recv().await {
        match ev {
            Evento::Confirmado(ids) => {
                confirmados.extend(ids);
                syncs += 1;
            }
            Evento::Fallo(e) => bail!("client failed: {e}"),
        }
    }
    let sin_confirmar = faltantes(&creados, &confirmados);
    ensure!(
        sin_confirmar.is_empty(),
        "after the final syncs some acuerdos are still unconfirmed: {sin_confirmar:?}"
    );

    // One last crash and restart; a fresh replica syncs the school down.
    srv.kill().await?;
    let srv = inst.serve(PLAZO).await?;
    let nuevo = store_nuevo(&tmp.path().join("verificador")).await?;
    let token = inst.token("docente1").await?;
    sync_once(&nuevo, &srv.url, &token, &[info.id], LIMITE_SYNC)
        .await
        .context("fresh replica sync")?;
    let bajados = acuerdos_del_store(&nuevo, &info.id).await?;
    let perdidos = faltantes(&confirmados, &bajados);
    ensure!(
        perdidos.is_empty(),
        "seed {seed}: {} confirmed acuerdos missing from the server: {perdidos:?}",
        perdidos.len()
    );
    ensure!(
        bajados.len() == creados.len(),
        "the server holds {} acuerdos, the clients wrote {}",
        bajados.len(),
        creados.len()
    );
    nuevo.integrity_check().await?;
    nuevo.close().await;
    srv.kill().await?;
    let disco = en_disco(&inst, &info.id).await?;
    ensure!(faltantes(&confirmados, &disco.acuerdos).is_empty());
    eprintln!(
        "server_crash_durability seed={seed}: {rounds} crashes, {} acuerdos written and \
         confirmed by {DOCENTES} teachers in {syncs} confirmed syncs ({errores} syncs cut by \
         crashes); server: {} accepted writes, {} chunks stored (compaction folds them at 64)",
        creados.len(),
        disco.escrituras,
        disco.chunks
    );
    Ok(())
}
