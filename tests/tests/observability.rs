//! `observability`: what an operator watches, on the real `bitacora-server serve`.
//!
//! - `metrics_on_their_own_listener`: with `metrics_listen` set, the server prints a second
//!   address; after a teacher logs in and syncs once, `GET /metrics` there shows the syncs,
//!   bytes, round trips, connections, the cache, the projection queue, refused tokens and HTTP
//!   requests by route and status, and the public listener answers `/metrics` with 404.
//! - `json_logs`: `BITACORA_LOG_JSON=true` makes every stderr line a JSON object.
//! - `salud_probe`: `bitacora-server salud` (the container healthcheck) exits 0 against a ready
//!   server and 1 against anything else.
//!
//! Each waits on a line of the server's output or on an HTTP answer, never on a timer.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use bitacora_tests::Replica;
use bitacora_tests::server::ServerInstall;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr, ChildStdout};

const CCT: &str = "07DPR0001A";
const ZONA: &str = "07FIZ0014";
const PLAZO: Duration = Duration::from_secs(60);

/// A zone, a school and its teacher `ana`; returns her token.
async fn escena(srv: &ServerInstall) -> Result<String> {
    srv.escena_docente(ZONA, CCT, "ana").await
}

struct Servidor {
    child: Child,
    url: String,
    salida: Lines<BufReader<ChildStdout>>,
    errores: Lines<BufReader<ChildStderr>>,
}

impl Servidor {
    /// `serve` on port 0 with extra environment; returns once it printed its address.
    async fn iniciar(srv: &ServerInstall, env: &[(&str, &str)]) -> Result<Servidor> {
        let mut c = srv.command();
        c.args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            c.env(k, v);
        }
        let mut child = c.spawn().context("spawning bitacora-server")?;
        let mut salida = BufReader::new(child.stdout.take().context("stdout")?).lines();
        let errores = BufReader::new(child.stderr.take().context("stderr")?).lines();
        let primera = siguiente(&mut salida).await?;
        let url = primera
            .strip_prefix("escuchando en ")
            .with_context(|| format!("first line {primera:?}"))?
            .to_string();
        Ok(Servidor {
            child,
            url,
            salida,
            errores,
        })
    }

    async fn parar(mut self) -> Result<()> {
        self.child.kill().await?;
        Ok(())
    }
}

async fn siguiente<R: tokio::io::AsyncBufRead + Unpin>(l: &mut Lines<R>) -> Result<String> {
    tokio::time::timeout(PLAZO, l.next_line())
        .await
        .context("the server printed nothing")??
        .context("the server closed its output")
}

/// The value of one series (`name{labels}`, exactly as the exposition writes it), if present.
fn serie(texto: &str, nombre: &str) -> Option<f64> {
    texto.lines().find_map(|l| {
        let resto = l.strip_prefix(nombre)?;
        resto.strip_prefix(' ')?.trim().parse().ok()
    })
}

fn valor(texto: &str, nombre: &str) -> Result<f64> {
    serie(texto, nombre).with_context(|| format!("{nombre} not in\n{texto}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_on_their_own_listener() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let srv = ServerInstall::new(tmp.path(), None)?;
    let token = escena(&srv).await?;
    let mut s = Servidor::iniciar(&srv, &[("BITACORA_METRICS_LISTEN", "127.0.0.1:0")]).await?;
    let segunda = siguiente(&mut s.salida).await?;
    let metricas = segunda
        .strip_prefix("métricas en ")
        .with_context(|| format!("second line {segunda:?}"))?
        .to_string();
    ensure!(metricas.ends_with("/metrics") && !metricas.starts_with(&s.url));
    let http = reqwest::Client::new();

    // The public listener does not serve them; the metrics listener serves nothing else.
    let r = http.get(format!("{}/metrics", s.url)).send().await?;
    assert_eq!(r.status(), 404, "no /metrics on the public port");
    let solo = metricas.trim_end_matches("/metrics");
    let r = http.get(format!("{solo}/healthz")).send().await?;
    assert_eq!(r.status(), 404, "the metrics port serves only /metrics");

    // Two refused tokens: a forged one and none at all.
    let r = http
        .get(format!("{}/v1/documentos", s.url))
        .bearer_auth("no.es.un-token")
        .send()
        .await?;
    assert_eq!(r.status(), 401);
    let r = http.get(format!("{}/sync", s.url)).send().await?;
    assert_eq!(r.status(), 401);

    // A teacher logs in (enrols her device), writes and syncs once.
    let ana = Replica::new(tmp.path().join("ana"));
    ana.ok(&[
        "init",
        "--cct",
        CCT,
        "--nombre",
        "Escuela A",
        "--zona",
        ZONA,
        "--ciclo",
        "2025-2026",
        "--autor",
        "Ana",
    ])?;
    ana.ok(&["login", "--servidor", &s.url, "--token", &token])?;
    ana.ok(&[
        "acuerdo",
        "add",
        "--texto",
        "Revisar la asistencia cada viernes",
    ])?;
    ana.ok(&["sync"])?;

    // Round trips are observed when the server has closed the connection: scrape until the
    // open-connection gauge says so (each scrape waits on an HTTP answer).
    let texto = tokio::time::timeout(PLAZO, async {
        loop {
            let t = http.get(&metricas).send().await?.text().await?;
            if serie(&t, "bitacora_connections_open") == Some(0.0)
                && serie(&t, "bitacora_sync_round_trips_count").unwrap_or(0.0) >= 1.0
            {
                return anyhow::Ok(t);
            }
        }
    })
    .await
    .context("the sync connection never closed on the server")??;

    let recibidos = valor(
        &texto,
        "bitacora_sync_messages_total{direction=\"received\",outcome=\"applied\"}",
    )?;
    let enviados = valor(
        &texto,
        "bitacora_sync_messages_total{direction=\"sent\",outcome=\"reply\"}",
    )?;
    ensure!(
        recibidos >= 1.0 && enviados >= 1.0,
        "{recibidos} {enviados}"
    );
    ensure!(valor(&texto, "bitacora_sync_bytes_total{direction=\"in\"}")? > 0.0);
    ensure!(valor(&texto, "bitacora_sync_bytes_total{direction=\"out\"}")? > 0.0);
    ensure!(valor(&texto, "bitacora_sync_round_trips_sum")? >= 1.0);
    ensure!(valor(&texto, "bitacora_connections_total")? >= 1.0);
    ensure!(valor(&texto, "bitacora_documents_cached")? >= 1.0);
    ensure!(valor(&texto, "bitacora_document_cache_bytes")? > 0.0);
    assert_eq!(
        valor(&texto, "bitacora_document_cache_budget_bytes")?,
        (256u64 * 1024 * 1024) as f64
    );
    assert_eq!(valor(&texto, "bitacora_document_evictions_total")?, 0.0);
    valor(&texto, "bitacora_projection_lag_seconds")?;
    valor(&texto, "bitacora_projection_queue")?;
    assert_eq!(valor(&texto, "bitacora_projection_failures_total")?, 0.0);
    assert_eq!(
        valor(&texto, "bitacora_auth_failures_total{reason=\"invalid\"}")?,
        1.0
    );
    assert_eq!(
        valor(&texto, "bitacora_auth_failures_total{reason=\"missing\"}")?,
        1.0
    );
    // HTTP by route template and status: the enrolment, the upgrade, the refusals, the 404.
    ensure!(
        valor(
            &texto,
            "bitacora_http_requests_total{route=\"/v1/actores\",status=\"200\"}"
        )? >= 1.0
    );
    ensure!(
        valor(
            &texto,
            "bitacora_http_requests_total{route=\"/sync\",status=\"101\"}"
        )? >= 1.0
    );
    ensure!(
        valor(
            &texto,
            "bitacora_http_requests_total{route=\"/sync\",status=\"401\"}"
        )? >= 1.0
    );
    ensure!(
        valor(
            &texto,
            "bitacora_http_requests_total{route=\"/v1/documentos\",status=\"401\"}"
        )? >= 1.0
    );
    ensure!(
        valor(
            &texto,
            "bitacora_http_request_duration_seconds_count{route=\"/v1/actores\"}"
        )? >= 1.0
    );
    ensure!(texto.trim_end().ends_with("# EOF"), "OpenMetrics text");
    s.parar().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let srv = ServerInstall::new(tmp.path(), None)?;
    let mut s = Servidor::iniciar(
        &srv,
        &[("BITACORA_LOG_JSON", "true"), ("BITACORA_LOG", "info")],
    )
    .await?;
    // The startup line `listening`, as JSON with its fields.
    loop {
        let linea = siguiente(&mut s.errores).await?;
        let v: serde_json::Value = serde_json::from_str(&linea)
            .with_context(|| format!("a stderr line that is not JSON: {linea}"))?;
        ensure!(v["timestamp"].is_string() && v["level"].is_string(), "{v}");
        if v["fields"]["message"] == "listening" {
            assert_eq!(v["level"], "INFO");
            assert_eq!(v["fields"]["backend"], "sqlite");
            let addr = v["fields"]["addr"].as_str().context("addr")?;
            ensure!(s.url.ends_with(addr), "{addr} vs {}", s.url);
            break;
        }
    }
    s.parar().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn salud_probe() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let srv = ServerInstall::new(tmp.path(), None)?;
    let s = Servidor::iniciar(&srv, &[]).await?;
    let sonda = |url: String| {
        let mut c = srv.command();
        c.args(["salud", "--url", &url]);
        async move { c.output().await }
    };
    let ok = sonda(format!("{}/readyz", s.url)).await?;
    ensure!(
        ok.status.success(),
        "ready: {}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let no = sonda(format!("{}/no-existe", s.url)).await?;
    assert_eq!(no.status.code(), Some(1), "a 404 is not ready");
    s.parar().await?;
    let caido = sonda(format!("{}/readyz", srv_url_cerrada()?)).await?;
    if caido.status.success() {
        bail!("a closed port is not ready");
    }
    Ok(())
}

/// An address where nothing listens: a port bound and released.
fn srv_url_cerrada() -> Result<String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    let a = l.local_addr()?;
    drop(l);
    Ok(format!("http://{a}"))
}
