//! `crash_rounds` (issue 6): processes killed with SIGKILL, round after round, lose nothing they
//! acknowledged.
//!
//! **The server** (`server_crash_rounds`, and `server_crash_rounds_postgres` on the PostgreSQL
//! of `BITACORA_TEST_DATABASE_URL`, in a fresh schema; skipped loudly when it is unset): the real
//! `bitacora-server serve` binary, set up through its `admin` commands, serves two schools of a
//! zone. Six people (two docentes and the director of each school), each with a local store,
//! write in a loop (acuerdos, edits of their text, and the directors' buenas prácticas in the
//! zone document) and sync with `engine::sync_once`, all at once. Each round waits for a random
//! number of sync messages to arrive at the clients (so several syncs are in flight), kills the
//! server with SIGKILL, waits until every client has noticed (its sync failed, or ended before
//! the kill), and then, with no server running, opens the database: it must pass
//! `Database::integrity_check`, every document must load, and every change a client saw
//! confirmed must be there. A change is confirmed when a sync report says so: it is an ancestor
//! of the heads in `Informe::confirmados`, the heads the server held when the sync ended (the
//! server only advertises what it has committed). Then the server starts again on the same data.
//! At the end every client syncs once more (so everything it wrote is confirmed), the server is
//! killed and restarted once more, and a fresh store syncs every document down: it must hold
//! every change written.
//!
//! **The client store** (`client_store_crash_rounds`): two `store_writer` processes append to
//! one local store at once, one as the device's own actor and one as another device's (as
//! `bitacora sync --watch` saves what it receives while the teacher records with another
//! command; both compact every 64 chunks). Each round kills each of them with SIGKILL after its
//! own random number of reported writes (none included: killed while opening the store); then
//! the store must open, pass `Store::integrity_check`, and hold every write either process
//! reported saved.
//!
//! `BITACORA_CRASH_ROUNDS` sets the rounds (4 for the server, 8 for the store by default) and
//! `BITACORA_CRASH_SEED` replays the kill points (the seed is printed). No sleeps: every step
//! waits for an event (a count of sync messages, a client's report, a line of output, a
//! process's exit), each bounded by a time limit.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use bitacora_core::automerge::{AutoCommit, ChangeHash};
use bitacora_core::bundle::genesis_de;
use bitacora_core::engine::{EngineError, Informe, sync_once, sync_once_con_progreso};
use bitacora_core::ids::{Cct, CicloEscolar, DocumentId, RecordId, ZonaClave};
use bitacora_core::model::escuela::{self, NuevoAcuerdo};
use bitacora_core::model::{Ctx, DocKind, zona};
use bitacora_core::store::{DocInfo, Store};
use bitacora_server::hub::assemble;
use bitacora_tests::server::{PgSchema, ServerInstall, ServerProcess, enrolar_http};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::sync::{mpsc, watch};

const ZONA: &str = "07FIZ0014";
const CCTS: [&str; 2] = ["07DPR0123X", "07DPR0456K"];
const CICLO: &str = "2025-2026";
/// Time limit of one `sync_once`.
const LIMITE_SYNC: Duration = Duration::from_secs(30);
/// Longest wait for any one event (a server start, a client's report): a hang fails.
const PLAZO: Duration = Duration::from_secs(120);

fn semilla() -> u64 {
    bitacora_tests::env_or("BITACORA_CRASH_SEED", rand::random)
}

fn rondas(por_defecto: usize) -> usize {
    bitacora_tests::env_or("BITACORA_CRASH_ROUNDS", || por_defecto)
}

// ---------------------------------------------------------------------------------------------
// The server.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn server_crash_rounds() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let inst = ServerInstall::new(tmp.path(), None)?;
    rondas_del_servidor("server_crash_rounds", &inst, tmp.path()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn server_crash_rounds_postgres() -> Result<()> {
    let Some(schema) = PgSchema::from_env("server_crash_rounds_postgres", "crash_rounds").await?
    else {
        return Ok(());
    };
    let tmp = tempfile::tempdir()?;
    let r = async {
        let inst = ServerInstall::new(tmp.path(), Some(schema.url()))?;
        rondas_del_servidor("server_crash_rounds_postgres", &inst, tmp.path()).await
    }
    .await;
    let dropped = schema.drop_schema().await;
    r?;
    dropped
}

/// Who writes: `escuela` 0 or 1; directors also write the zone's document.
#[derive(Debug, Clone)]
struct Persona {
    usuario: String,
    rol: &'static str,
    escuela: usize,
}

fn personas() -> Vec<Persona> {
    let mut v = Vec::new();
    for escuela in 0..2 {
        for (i, rol) in ["docente", "docente", "director"].into_iter().enumerate() {
            v.push(Persona {
                usuario: format!("{rol}{escuela}{i}"),
                rol,
                escuela,
            });
        }
    }
    v
}

fn infos() -> Result<([DocInfo; 2], DocInfo)> {
    let ciclo = CicloEscolar::parse(CICLO)?;
    let escuela = |cct: &str| -> Result<DocInfo> {
        let cct = Cct::parse(cct)?;
        Ok(DocInfo {
            id: DocumentId::escuela(&cct, ciclo),
            kind: DocKind::Escuela,
            owner: cct.to_string(),
            ciclo: ciclo.to_string(),
        })
    };
    let z = ZonaClave::parse(ZONA)?;
    let zona = DocInfo {
        id: DocumentId::zona(&z, ciclo),
        kind: DocKind::Zona,
        owner: z.to_string(),
        ciclo: ciclo.to_string(),
    };
    Ok(([escuela(CCTS[0])?, escuela(CCTS[1])?], zona))
}

/// Changes per document.
type Cambios = BTreeMap<DocumentId, BTreeSet<ChangeHash>>;

enum Evento {
    /// A sync ended: these changes are confirmed (ancestors of `Informe::confirmados`).
    Confirmado(Cambios),
    /// Client `n` could not reach the server of generation `gen` and waits for the next one.
    Parado { n: usize, generacion: u64 },
    /// A client failed in a way no crash excuses.
    Fallo(String),
}

#[derive(Debug, Default)]
struct Resultado {
    escritos: Cambios,
    syncs: usize,
    cortados: usize,
}

struct Cliente {
    n: usize,
    persona: Persona,
    store: Store,
    token: String,
    docs: Vec<DocumentId>,
    escuela: DocumentId,
    zona: DocumentId,
    rng: StdRng,
    /// The server's URL and its generation (bumped at every restart).
    url: watch::Receiver<(u64, String)>,
    parar: watch::Receiver<bool>,
    eventos: mpsc::UnboundedSender<Evento>,
    /// Sync messages received by every client, in all.
    mensajes: Arc<watch::Sender<u64>>,
}

impl Cliente {
    async fn correr(mut self) -> Result<Resultado> {
        let r = self.bucle().await;
        if let Err(e) = &r {
            let _ = self
                .eventos
                .send(Evento::Fallo(format!("client {}: {e:#}", self.n)));
        }
        r
    }

    async fn bucle(&mut self) -> Result<Resultado> {
        let mut res = Resultado::default();
        let mut k = 0u64;
        while !*self.parar.borrow() {
            for _ in 0..self.rng.random_range(1..=3) {
                k += 1;
                self.escribir(k, &mut res).await?;
            }
            let (generacion, url) = self.url.borrow_and_update().clone();
            let mensajes = self.mensajes.clone();
            let r = sync_once_con_progreso(
                &self.store,
                &url,
                &self.token,
                &self.docs,
                LIMITE_SYNC,
                move |_| mensajes.send_modify(|n| *n += 1),
            )
            .await;
            match r {
                Ok(informe) => self.confirmar(&informe, &mut res).await?,
                Err(EngineError::Conexion { .. } | EngineError::Cerrada) => {
                    // The server is down: wait for the next one (or for the end).
                    res.cortados += 1;
                    let _ = self.eventos.send(Evento::Parado {
                        n: self.n,
                        generacion,
                    });
                    tokio::select! {
                        r = self.url.changed() => r.context("controller gone")?,
                        r = self.parar.changed() => r.context("controller gone")?,
                    }
                }
                Err(e) => return Err(e).context("sync against a live server"),
            }
        }
        // The end: the server is up; one last sync confirms everything this client wrote.
        let url = self.url.borrow().1.clone();
        let informe = sync_once(&self.store, &url, &self.token, &self.docs, LIMITE_SYNC)
            .await
            .context("final sync")?;
        self.confirmar(&informe, &mut res).await?;
        Ok(res)
    }

    /// One change, saved locally as the CLI does: an acuerdo, an edit of an acuerdo's text, or
    /// (directors) a práctica in the zone document.
    async fn escribir(&mut self, k: u64, res: &mut Resultado) -> Result<()> {
        let practica = self.persona.rol == "director" && self.rng.random_bool(0.3);
        let id = if practica { self.zona } else { self.escuela };
        let actor = self.store.actor().await?;
        let mut doc = self
            .store
            .load(&id)
            .await?
            .context("document in the store")?
            .with_actor(actor);
        let before = doc.get_heads();
        let rid = RecordId::parse(&format!("c{}-{k}", self.n))?;
        let autor = self.persona.usuario.clone();
        let ctx = Ctx {
            ahora: 1_757_000_000 + k as i64,
            autor: Some(&autor),
        };
        if practica {
            let cct = Cct::parse(CCTS[self.persona.escuela])?;
            zona::agregar_practica(
                &mut doc,
                &ctx,
                &rid,
                &cct,
                &format!("Práctica {rid}"),
                "Lectura en voz alta cada mañana",
                None,
            )?;
        } else {
            let mios: Vec<_> = escuela::leer(&doc)?
                .acuerdos
                .into_iter()
                .filter(|a| a.id.starts_with(&format!("c{}-", self.n)))
                .collect();
            if !mios.is_empty() && self.rng.random_bool(0.3) {
                let a = &mios[self.rng.random_range(0..mios.len())];
                let texto = format!("{} (revisado {k})", a.texto);
                escuela::editar_texto_acuerdo(&mut doc, &ctx, &RecordId::parse(&a.id)?, &texto)?;
            } else {
                let a = NuevoAcuerdo {
                    texto: format!("Acuerdo {rid} de {autor}"),
                    responsables: vec![autor.clone()],
                    fecha_compromiso: None,
                    sesion_origen: None,
                };
                escuela::agregar_acuerdo(&mut doc, &ctx, &rid, &a)?;
            }
        }
        let nuevos = doc
            .get_changes(&before)
            .iter()
            .map(|c| c.hash())
            .collect::<Vec<_>>();
        self.store.append(&id, &doc.save_after(&before)).await?;
        res.escritos.entry(id).or_default().extend(nuevos);
        Ok(())
    }

    /// Reports the changes a sync confirmed: the ancestors of the server's heads.
    async fn confirmar(&mut self, informe: &Informe, res: &mut Resultado) -> Result<()> {
        res.syncs += 1;
        let mut cambios = Cambios::new();
        for (id, heads) in &informe.confirmados {
            let mut doc = self.store.load(id).await?.context("synced document")?;
            let mut hasta = doc.fork_at(heads)?;
            cambios.insert(
                *id,
                hasta.get_changes(&[]).iter().map(|c| c.hash()).collect(),
            );
        }
        let _ = self.eventos.send(Evento::Confirmado(cambios));
        Ok(())
    }
}

/// What the controller knows.
#[derive(Default)]
struct Control {
    confirmados: Cambios,
    /// Clients waiting for the server of the current generation to be replaced.
    parados: BTreeSet<usize>,
    generacion: u64,
    syncs: usize,
}

impl Control {
    fn evento(&mut self, ev: Option<Evento>) -> Result<()> {
        match ev {
            None => bail!("every client stopped"),
            Some(Evento::Fallo(e)) => bail!("{e}"),
            Some(Evento::Confirmado(c)) => {
                self.syncs += 1;
                for (id, h) in c {
                    self.confirmados.entry(id).or_default().extend(h);
                }
            }
            Some(Evento::Parado { n, generacion }) => {
                if generacion == self.generacion {
                    self.parados.insert(n);
                }
            }
        }
        Ok(())
    }

    fn total(&self) -> usize {
        self.confirmados.values().map(BTreeSet::len).sum()
    }
}

/// Opens the database of a stopped server: integrity check, every document loads, every
/// `esperados` change is there. Returns the number of changes stored per document.
async fn revisar(inst: &ServerInstall, esperados: &Cambios) -> Result<BTreeMap<DocumentId, usize>> {
    let db = inst.database().await?;
    let r = async {
        db.integrity_check().await?;
        let mut guardados = BTreeMap::new();
        for info in db.documents().await? {
            let doc = assemble(&db.load(&info.id).await?).map_err(anyhow::Error::msg)?;
            let mut doc = AutoCommit::load(&doc.save())?;
            let hay: BTreeSet<ChangeHash> = doc.get_changes(&[]).iter().map(|c| c.hash()).collect();
            let faltan: Vec<_> = esperados
                .get(&info.id)
                .into_iter()
                .flatten()
                .filter(|h| !hay.contains(*h))
                .collect();
            ensure!(
                faltan.is_empty(),
                "{}: {} confirmed change(s) lost: {faltan:?}",
                info.id,
                faltan.len()
            );
            guardados.insert(info.id, hay.len());
        }
        for id in esperados.keys() {
            ensure!(guardados.contains_key(id), "document {id} missing");
        }
        anyhow::Ok(guardados)
    }
    .await;
    db.close().await;
    r
}

async fn rondas_del_servidor(nombre: &str, inst: &ServerInstall, tmp: &Path) -> Result<()> {
    let seed = semilla();
    let rondas = rondas(4);
    eprintln!(
        "{nombre}: seed {seed} (BITACORA_CRASH_SEED), {rondas} rounds (BITACORA_CRASH_ROUNDS)"
    );
    let mut rng = StdRng::seed_from_u64(seed);
    let inicio = Instant::now();
    let (escuelas, zona) = infos()?;

    inst.admin(&[
        "zona", "add", "--clave", ZONA, "--nombre", "Zona 14", "--ciclo", CICLO,
    ])
    .await?;
    for cct in CCTS {
        inst.admin(&[
            "escuela",
            "add",
            "--cct",
            cct,
            "--nombre",
            &format!("Escuela {cct}"),
            "--zona",
            ZONA,
            "--ciclo",
            CICLO,
        ])
        .await?;
    }
    inst.admin(&[
        "usuario",
        "add",
        "--id",
        "supervisora",
        "--nombre",
        "Supervisora",
        "--rol",
        "supervisor",
        "--zona",
        ZONA,
    ])
    .await?;
    let mut srv = inst.serve(PLAZO).await?;
    let (url_tx, url_rx) = watch::channel((0u64, srv.url.clone()));
    let (parar_tx, parar_rx) = watch::channel(false);
    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel();
    let mensajes = Arc::new(watch::Sender::new(0u64));
    let gente = personas();
    let mut tareas = Vec::new();
    for (n, p) in gente.iter().enumerate() {
        inst.admin(&[
            "usuario",
            "add",
            "--id",
            &p.usuario,
            "--nombre",
            &p.usuario,
            "--rol",
            p.rol,
            "--cct",
            CCTS[p.escuela],
        ])
        .await?;
        let token = inst.token(&p.usuario).await?;
        let store = Store::open(&tmp.join(&p.usuario)).await?;
        for info in [&escuelas[p.escuela], &zona] {
            store.create(info, &mut genesis_de(info)?, 0).await?;
        }
        enrolar_http(&srv.url, &token, &store.actor().await?.to_hex_string()).await?;
        let c = Cliente {
            n,
            persona: p.clone(),
            store,
            token,
            docs: vec![escuelas[p.escuela].id, zona.id],
            escuela: escuelas[p.escuela].id,
            zona: zona.id,
            rng: StdRng::seed_from_u64(seed ^ (n as u64 + 1)),
            url: url_rx.clone(),
            parar: parar_rx.clone(),
            eventos: ev_tx.clone(),
            mensajes: mensajes.clone(),
        };
        tareas.push(tokio::spawn(c.correr()));
    }
    drop(ev_tx);
    let clientes = gente.len();

    let mut ctl = Control::default();
    let mut puntos = Vec::new();
    for ronda in 1..=rondas {
        // Kill after a random number of sync messages from now (or once every client is
        // waiting, should that come first).
        let tras = rng.random_range(1..=80u64);
        let objetivo = *mensajes.borrow() + tras;
        let mut visto = mensajes.subscribe();
        let espera = async {
            loop {
                tokio::select! {
                    _ = visto.wait_for(|n| *n >= objetivo) => return anyhow::Ok(()),
                    ev = ev_rx.recv() => {
                        ctl.evento(ev)?;
                        if ctl.parados.len() == clientes {
                            return Ok(());
                        }
                    }
                }
            }
        };
        tokio::time::timeout(PLAZO, espera)
            .await
            .context("no sync message for too long")??;
        let pid = srv.id();
        srv.kill().await?;
        puntos.push(tras);
        // Every client notices: what it confirmed before the kill is reported before that.
        while ctl.parados.len() < clientes {
            let ev = tokio::time::timeout(PLAZO, ev_rx.recv())
                .await
                .context("a client never noticed the crash")?;
            ctl.evento(ev)?;
        }
        let guardados = revisar(inst, &ctl.confirmados)
            .await
            .with_context(|| format!("round {ronda} (seed {seed})"))?;
        let guardados: Vec<String> = guardados
            .iter()
            .map(|(id, n)| format!("{n} in {id}"))
            .collect();
        eprintln!(
            "{nombre} round {ronda}: SIGKILL (pid {pid:?}) after {tras} more sync messages; \
             {} changes confirmed so far, all in the database (changes stored: {})",
            ctl.total(),
            guardados.join(", ")
        );
        srv = inst.serve(PLAZO).await?;
        ctl.generacion += 1;
        ctl.parados.clear();
        url_tx.send((ctl.generacion, srv.url.clone()))?;
    }

    // The clients stop, each after one last sync with the running server.
    parar_tx.send(true)?;
    let mut escritos = Cambios::new();
    let (mut syncs, mut cortados) = (0, 0);
    for t in tareas {
        let r = tokio::time::timeout(PLAZO, t)
            .await
            .context("a client did not stop")???;
        syncs += r.syncs;
        cortados += r.cortados;
        for (id, h) in r.escritos {
            escritos.entry(id).or_default().extend(h);
        }
    }
    while let Some(ev) = ev_rx.recv().await {
        ctl.evento(Some(ev))?;
    }
    for (id, h) in &escritos {
        let sin = h
            .difference(ctl.confirmados.get(id).unwrap_or(&BTreeSet::new()))
            .count();
        ensure!(
            sin == 0,
            "{id}: {sin} change(s) still unconfirmed after the final syncs"
        );
    }

    // One last crash; a fresh store (the supervisor's) syncs every document down.
    srv.kill().await?;
    revisar(inst, &ctl.confirmados).await?;
    let srv: ServerProcess = inst.serve(PLAZO).await?;
    let nuevo = Store::open(&tmp.join("verificador")).await?;
    for info in [&escuelas[0], &escuelas[1], &zona] {
        nuevo.create(info, &mut genesis_de(info)?, 0).await?;
    }
    let token = inst.token("supervisora").await?;
    let ids = [escuelas[0].id, escuelas[1].id, zona.id];
    sync_once(&nuevo, &srv.url, &token, &ids, LIMITE_SYNC)
        .await
        .context("fresh replica sync")?;
    for id in ids {
        let mut doc = nuevo.load(&id).await?.context("synced down")?;
        let hay: BTreeSet<ChangeHash> = doc.get_changes(&[]).iter().map(|c| c.hash()).collect();
        let faltan = escritos
            .get(&id)
            .into_iter()
            .flatten()
            .filter(|h| !hay.contains(*h))
            .count();
        ensure!(
            faltan == 0,
            "{id}: {faltan} written change(s) missing from the server"
        );
    }
    nuevo.integrity_check().await?;
    nuevo.close().await;
    srv.kill().await?;
    let escritos_total: usize = escritos.values().map(BTreeSet::len).sum();
    eprintln!(
        "{nombre}: seed {seed}, {rondas} SIGKILLs (after {puntos:?} sync messages), {clientes} \
         clients, {escritos_total} changes written and confirmed in {syncs} syncs ({cortados} \
         cut by crashes), 0 lost, in {:.1} s",
        inicio.elapsed().as_secs_f64()
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The client store.

/// One `store_writer` process: spawned, killed after `matar_tras` reported writes (or when it
/// exits by itself, which fails), its reported writes collected.
async fn escritor(
    dir: &Path,
    prefijo: String,
    ajeno: bool,
    matar_tras: usize,
) -> Result<Vec<String>> {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_store_writer"));
    cmd.arg(dir).arg(&prefijo);
    if ajeno {
        cmd.arg("ajeno");
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = BufReader::new(child.stdout.take().context("piped")?).lines();
    let mut stderr = child.stderr.take().context("piped")?;
    let mut guardados = Vec::new();
    while guardados.len() < matar_tras {
        match tokio::time::timeout(PLAZO, lines.next_line())
            .await
            .context("writer silent")??
        {
            Some(l) => guardados.push(l),
            None => break,
        }
    }
    if guardados.len() < matar_tras {
        let status = child.wait().await?;
        let mut err = String::new();
        stderr.read_to_string(&mut err).await?;
        bail!("store_writer {prefijo} stopped by itself ({status}): {err}");
    }
    child.kill().await?; // SIGKILL on Unix, and reaped
    // Lines written before the kill were reported saved too.
    while let Ok(Some(l)) = lines.next_line().await {
        if l.starts_with("guardado ") {
            guardados.push(l);
        }
    }
    Ok(guardados
        .into_iter()
        .filter_map(|l| l.strip_prefix("guardado ").map(str::to_string))
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_store_crash_rounds() -> Result<()> {
    let seed = semilla();
    let rondas = rondas(8);
    eprintln!("client_store_crash_rounds: seed {seed}, {rondas} rounds");
    let inicio = Instant::now();
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir()?;
    // The store exists before the writers start, as after `bitacora init`.
    Store::open(dir.path()).await?.close().await;
    let id = infos()?.0[0].id;
    let mut reportados: Vec<String> = Vec::new();
    for ronda in 0..rondas {
        // Zero kills a writer while it opens the store; 64 chunks trigger a compaction.
        let (a, b) = (rng.random_range(0..150), rng.random_range(0..150));
        let (propios, ajenos) = tokio::join!(
            escritor(dir.path(), format!("r{ronda}a"), false, a),
            escritor(dir.path(), format!("r{ronda}b"), true, b),
        );
        let (propios, ajenos) = (propios?, ajenos?);
        reportados.extend(propios.iter().cloned());
        reportados.extend(ajenos.iter().cloned());

        let store = Store::open(dir.path()).await?;
        store.integrity_check().await?;
        let doc = store.load(&id).await?;
        let chunks = store.chunk_counts().await?;
        store.close().await;
        let hay: BTreeSet<String> = match doc {
            Some(d) => escuela::leer(&d)?
                .acuerdos
                .into_iter()
                .map(|a| a.id)
                .collect(),
            None => BTreeSet::new(),
        };
        let faltan: Vec<&String> = reportados.iter().filter(|r| !hay.contains(*r)).collect();
        ensure!(
            faltan.is_empty(),
            "round {ronda} (seed {seed}): {} write(s) reported saved are missing: {faltan:?}",
            faltan.len()
        );
        eprintln!(
            "round {ronda}: writers killed after {} and {} reported writes (asked {a} and {b}); \
             {} reported in all, all present; chunks now {chunks:?}",
            propios.len(),
            ajenos.len(),
            reportados.len()
        );
    }
    eprintln!(
        "client_store_crash_rounds: seed {seed}, {} SIGKILLs, {} writes reported saved, 0 lost, \
         in {:.1} s",
        2 * rondas,
        reportados.len(),
        inicio.elapsed().as_secs_f64()
    );
    Ok(())
}
