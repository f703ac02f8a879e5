//! `two_servers_one_database`: scale-out. Two zone servers, A and B, each with its own pool on
//! one PostgreSQL schema (two processes, as far as the database can tell). A teacher keeps a
//! live session (`engine::sync_live`) with B; another syncs a new acuerdo through A. The change
//! must reach the live session on B within one second (LISTEN/NOTIFY between the servers; the
//! latency is printed), and the dashboard JSON of both servers must show the acuerdo. Then a
//! director's USB bundle is imported through a third pool, as `bitacora-server admin bundle
//! importar` does from the command line, and must reach the live session on B the same way.
//! Last, B's database connections (which go through a fault-injecting proxy) are cut and kept
//! down while Ana syncs another acuerdo through A: the announcement is lost, and once the link
//! is back B must listen again, treat every document as changed and deliver it anyway.
//!
//! Needs PostgreSQL: skipped, loudly, when `BITACORA_TEST_DATABASE_URL` is unset. No sleeps:
//! every wait for a change is on an event from the live session, with a deadline. Two things
//! have no event to wait on from outside the server process, so they are polled, yielding in
//! between, for at most two seconds: the dashboard (a loop of GETs) and the proxy's log of
//! closed connections.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use bitacora_core::bundle::{self, genesis_de};
use bitacora_core::engine::{self, Evento};
use bitacora_core::ids::{DocumentId, RecordId};
use bitacora_core::model::Ctx;
use bitacora_core::model::escuela::{self, NuevoAcuerdo};
use bitacora_core::store::{DocInfo, Store};
use bitacora_server::db::Database;
use bitacora_tests::proxy::{FaultProxy, Faults};
use bitacora_tests::server::{CICLO, PgSchema, TestServer, test_config};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

const ZONA: &str = "07FIZ0014";
const CCT: &str = "07DPR0123X";
/// How long a change committed through one server may take to reach a live client of another.
const PLAZO_EN_VIVO: Duration = Duration::from_secs(1);
/// How long the dashboard of either server may take to show it.
const PLAZO_TABLERO: Duration = Duration::from_secs(2);
/// How long B may take to listen again and catch up once its database link is back (it
/// retries after 1 s, then 2 s, …).
const PLAZO_RECONEXION: Duration = Duration::from_secs(10);
/// Generous bounds for steps that are not under test (connecting, a one-shot sync).
const LIMITE: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_one_database() -> Result<()> {
    let Some(schema) = PgSchema::from_env("two_servers_one_database", "escala").await? else {
        return Ok(());
    };
    let schema = Arc::new(schema);
    let s = schema.clone();
    let outcome = tokio::spawn(async move { historia(&s).await }).await;
    let dropped = schema.drop_schema().await;
    match outcome {
        Err(e) => std::panic::resume_unwind(e.into_panic()),
        Ok(r) => r?,
    }
    dropped
}

/// A server on the shared schema, with its own pool (so its own origin for announcements).
async fn servidor(db: Database) -> Result<TestServer> {
    let dir = tempfile::tempdir()?;
    let config = test_config(dir.path().to_path_buf());
    let srv = TestServer::start_on(dir, config, db).await?;
    ensure!(srv.db.backend() == "postgres");
    Ok(srv)
}

/// A pool on the shared schema whose connections go through a [`FaultProxy`] to PostgreSQL.
async fn por_proxy(schema: &PgSchema) -> Result<(Database, FaultProxy, SocketAddr)> {
    let opts = schema.connect_options()?;
    let pg = tokio::net::lookup_host((opts.get_host(), opts.get_port()))
        .await?
        .next()
        .context("PostgreSQL's address")?;
    let proxy = FaultProxy::start(pg, Faults::default()).await?;
    let db = Database::connect_pg(opts.host("127.0.0.1").port(proxy.addr.port())).await?;
    Ok((db, proxy, pg))
}

/// Waits (at most two seconds) until every connection the proxy had accepted by `hasta` is
/// closed. The proxy has no event for it, so this polls its log, yielding in between.
async fn cerradas(proxy: &FaultProxy, hasta: u64) -> Result<()> {
    let inicio = Instant::now();
    loop {
        let terminadas = proxy.connections().iter().filter(|c| c.id <= hasta).count() as u64;
        if terminadas == hasta {
            return Ok(());
        }
        ensure!(
            inicio.elapsed() < Duration::from_secs(2),
            "the proxy still has {} of B's database connections open",
            hasta - terminadas
        );
        tokio::task::yield_now().await;
    }
}

/// A laptop holding the school's document from its deterministic genesis.
async fn laptop(dir: &std::path::Path, info: &DocInfo) -> Result<Store> {
    let store = Store::open(dir).await?;
    let mut g = genesis_de(info)?;
    store.create(info, &mut g, 0).await?;
    Ok(store)
}

/// Records an acuerdo on a laptop, saved locally as the CLI does; returns its id.
async fn acuerdo(store: &Store, id: &DocumentId, rid: &str, texto: &str) -> Result<String> {
    let actor = store.actor().await?;
    let mut doc = store
        .load(id)
        .await?
        .context("the school document")?
        .with_actor(actor);
    let before = doc.get_heads();
    let rid = RecordId::parse(rid)?;
    let ctx = Ctx {
        ahora: 1_760_000_000,
        autor: Some("prueba"),
    };
    let a = NuevoAcuerdo {
        texto: texto.into(),
        responsables: vec!["Dirección".into()],
        fecha_compromiso: None,
        sesion_origen: None,
    };
    escuela::agregar_acuerdo(&mut doc, &ctx, &rid, &a)?;
    store.append(id, &doc.save_after(&before)).await?;
    Ok(rid.to_string())
}

type Eventos = mpsc::UnboundedReceiver<(Instant, Evento)>;

/// Waits until `deadline` for the live session to report changes received; returns when.
async fn recibidos(eventos: &mut Eventos, deadline: Instant) -> Result<(Instant, usize)> {
    let espera = async {
        loop {
            match eventos.recv().await {
                Some((t, Evento::Recibidos(n))) => return Ok((t, n)),
                Some((_, Evento::Reintento { error, .. })) => {
                    bail!("the live session on B lost its connection: {error}")
                }
                Some(_) => continue,
                None => bail!("the live session on B ended"),
            }
        }
    };
    tokio::time::timeout_at(deadline, espera)
        .await
        .context("the change did not reach the live client on B in time")?
}

/// Reads the school's dashboard JSON on `url` until it lists acuerdo `rid`, for at most
/// [`PLAZO_TABLERO`]; returns how long it took.
async fn tablero_muestra(url: &str, token: &str, rid: &str) -> Result<Duration> {
    let http = reqwest::Client::new();
    let inicio = Instant::now();
    let pagina = format!("{url}/v1/escuelas/{CCT}/resumen?ciclo={CICLO}");
    loop {
        let r = http.get(&pagina).bearer_auth(token).send().await?;
        let status = r.status();
        let visto = if status.is_success() {
            let j: Value = r.json().await?;
            let ids: Vec<String> = j["acuerdos"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a["id"].as_str().map(String::from))
                .collect();
            if ids.iter().any(|i| i == rid) {
                return Ok(inicio.elapsed());
            }
            format!("acuerdos {ids:?}")
        } else {
            format!("status {status}")
        };
        ensure!(
            inicio.elapsed() < PLAZO_TABLERO,
            "{url}: the dashboard does not show acuerdo {rid} after {PLAZO_TABLERO:?} ({visto})"
        );
        tokio::task::yield_now().await;
    }
}

async fn historia(schema: &PgSchema) -> Result<()> {
    let a = servidor(schema.database().await?).await?;
    // B reaches PostgreSQL through a proxy, so the test can cut its connections (act 3).
    let (db_b, proxy, pg) = por_proxy(schema).await?;
    let b = servidor(db_b).await?;
    a.zona(ZONA).await?;
    let doc = a.escuela(CCT, ZONA).await?;
    let t_ana = a.usuario("ana", "docente", Some(CCT), None).await?;
    let t_luis = a.usuario("luis", "docente", Some(CCT), None).await?;
    let t_sofia = a.usuario("sofia", "supervisor", None, Some(ZONA)).await?;
    let tmp = tempfile::tempdir()?;

    // ---- Luis: a live session with server B. --------------------------------------------------
    let luis = Arc::new(laptop(&tmp.path().join("luis"), &doc).await?);
    let (ev_tx, mut eventos) = mpsc::unbounded_channel();
    let (parar, parado) = oneshot::channel::<()>();
    let vivo = tokio::spawn({
        let (luis, url, id) = (luis.clone(), b.url.clone(), doc.id);
        async move {
            engine::sync_live(
                &luis,
                &url,
                &t_luis,
                &[id],
                async move {
                    let _ = parado.await;
                },
                move |e| {
                    let _ = ev_tx.send((Instant::now(), e));
                },
            )
            .await
        }
    });
    let listo = async {
        loop {
            match eventos.recv().await {
                Some((_, Evento::Sincronizado)) => return Ok(()),
                Some((_, Evento::Reintento { error, .. })) => bail!("live session: {error}"),
                Some(_) => continue,
                None => bail!("the live session ended"),
            }
        }
    };
    tokio::time::timeout(LIMITE, listo)
        .await
        .context("the live session with B did not sync")??;

    // ---- Ana: an acuerdo on her laptop, synced through server A. ------------------------------
    let ana = laptop(&tmp.path().join("ana"), &doc).await?;
    a.enrolar(&ana.actor().await?.to_hex_string(), "ana")
        .await?;
    let rid = acuerdo(&ana, &doc.id, "viaje0001", "Compartir el plan de lectura").await?;
    let inicio = Instant::now();
    let informe = engine::sync_once(&ana, &a.url, &t_ana, &[doc.id], LIMITE).await?;
    let confirmado = Instant::now();
    ensure!(informe.cambios_enviados >= 1, "{informe:?}");

    let (llegada, n) = recibidos(&mut eventos, confirmado + PLAZO_EN_VIVO).await?;
    ensure!(n >= 1, "B's live client received changes");
    let latencia = llegada.saturating_duration_since(confirmado);
    eprintln!(
        "two_servers_one_database: A's change reached the live client on B {:.1} ms after A \
         confirmed it to Ana ({:.1} ms after Ana's one-shot sync with A began)",
        latencia.as_secs_f64() * 1e3,
        llegada.saturating_duration_since(inicio).as_secs_f64() * 1e3,
    );
    let leido = escuela::leer(&luis.load(&doc.id).await?.context("Luis's copy")?)?;
    ensure!(
        leido
            .acuerdos
            .iter()
            .any(|x| x.id == rid && x.texto == "Compartir el plan de lectura"),
        "Luis's laptop holds Ana's acuerdo: {:?}",
        leido.acuerdos
    );

    // ---- The dashboard of both servers. ---------------------------------------------------------
    for (nombre, srv) in [("A", &a), ("B", &b)] {
        let t = tablero_muestra(&srv.url, &t_sofia, &rid).await?;
        eprintln!(
            "two_servers_one_database: dashboard of {nombre} shows it after {:.1} ms more",
            t.as_secs_f64() * 1e3
        );
    }

    // ---- A director's USB bundle, imported from the command line (its own pool). ----------------
    let carmen = laptop(&tmp.path().join("carmen"), &doc).await?;
    let rid2 = acuerdo(&carmen, &doc.id, "paquete001", "Revisar la asistencia").await?;
    let paquete = bundle::exportar(&carmen, &[(doc.clone(), Vec::new())], CCT, 0).await?;
    let admin = schema.database().await?;
    let importado = Instant::now();
    let r = bitacora_server::bundles::importar(&admin, &paquete.encode()).await?;
    let hecho = Instant::now();
    ensure!(
        r.iter().map(|d| d.cambios_nuevos).sum::<usize>() == 1,
        "the bundle brings one new change"
    );
    let (llegada, n) = recibidos(&mut eventos, hecho + PLAZO_EN_VIVO).await?;
    ensure!(n >= 1, "B's live client received changes");
    eprintln!(
        "two_servers_one_database: the bundle's change reached the live client on B {:.1} ms \
         after the import returned ({:.1} ms after it began)",
        llegada.saturating_duration_since(hecho).as_secs_f64() * 1e3,
        llegada.saturating_duration_since(importado).as_secs_f64() * 1e3,
    );
    let leido = escuela::leer(&luis.load(&doc.id).await?.context("Luis's copy")?)?;
    ensure!(
        leido.acuerdos.iter().any(|x| x.id == rid2),
        "Luis's laptop holds the bundle's acuerdo"
    );
    for srv in [&a, &b] {
        tablero_muestra(&srv.url, &t_sofia, &rid2).await?;
    }
    admin.close().await;

    // ---- B loses its database connections while A commits: the announcement is lost. -------
    // Connections opened meanwhile reach nothing (a closed port), so B cannot listen again until
    // the link is back; then it must treat every document as changed and catch up on its own.
    let muerto = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?
    };
    proxy.set_target(muerto);
    let hasta = proxy.counters().connections;
    proxy.drop_all();
    cerradas(&proxy, hasta).await?;
    let rid3 = acuerdo(&ana, &doc.id, "perdido001", "Aviso perdido").await?;
    engine::sync_once(&ana, &a.url, &t_ana, &[doc.id], LIMITE).await?;
    proxy.set_target(pg);
    let restablecido = Instant::now();
    let (llegada, _) = recibidos(&mut eventos, restablecido + PLAZO_RECONEXION).await?;
    eprintln!(
        "two_servers_one_database: after B's database link came back, the change committed while \
         it was down reached the live client on B in {:.1} ms",
        llegada
            .saturating_duration_since(restablecido)
            .as_secs_f64()
            * 1e3,
    );
    let leido = escuela::leer(&luis.load(&doc.id).await?.context("Luis's copy")?)?;
    ensure!(
        leido.acuerdos.iter().any(|x| x.id == rid3),
        "Luis's laptop holds the acuerdo announced while B was cut off"
    );

    // ---- Done: stop the live session and both servers. -----------------------------------------
    let _ = parar.send(());
    tokio::time::timeout(LIMITE, vivo)
        .await
        .context("the live session did not stop")???;
    luis.close().await;
    ana.close().await;
    carmen.close().await;
    let (db_a, db_b) = (a.db.clone(), b.db.clone());
    a.stop().await?;
    b.stop().await?;
    db_a.close().await;
    db_b.close().await;
    proxy.stop().await;
    Ok(())
}
