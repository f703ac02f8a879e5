//! A real headless Chromium for dashboard tests, driven over the Chrome DevTools Protocol.
//!
//! Only what the tests need: open a page and wait for its `load` event, evaluate an expression,
//! clear cookies, take a screenshot. A dozen CDP commands over one WebSocket do not justify
//! `chromiumoxide` or `headless_chrome` (each compiles the whole generated protocol); see
//! docs/architecture.md.
//!
//! The binary is `$BITACORA_CHROMIUM`, else `chromium`, else `chromium-browser` (Debian's
//! package, installed by `.ci/run`), started with the flags the project runs it with plus a
//! throwaway profile and `--remote-debugging-port=0`; the DevTools address is read from the line
//! Chromium prints on stderr.

use std::collections::VecDeque;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const PLAZO: Duration = Duration::from_secs(60);

/// The Chromium binary to use, if one is installed.
pub fn chromium() -> Option<String> {
    if let Ok(b) = std::env::var("BITACORA_CHROMIUM") {
        return Some(b);
    }
    ["chromium", "chromium-browser"].into_iter().find_map(|b| {
        std::process::Command::new(b)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .ok()
            .filter(|s| s.success())
            .map(|_| b.to_string())
    })
}

pub struct Navegador {
    hijo: Child,
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    sesion: String,
    siguiente: u64,
    eventos: VecDeque<Value>,
    _perfil: tempfile::TempDir,
}

impl Navegador {
    /// Starts Chromium with one blank tab.
    pub async fn abrir(binario: &str) -> Result<Navegador> {
        let perfil = tempfile::tempdir()?;
        let mut hijo = Command::new(binario)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--remote-debugging-port=0",
                "--window-size=1400,1000",
            ])
            .arg(format!("--user-data-dir={}", perfil.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {binario}"))?;
        let stderr = hijo.stderr.take().context("chromium stderr")?;
        let mut lineas = BufReader::new(stderr).lines();
        let url = tokio::time::timeout(PLAZO, async {
            while let Some(l) = lineas.next_line().await? {
                if let Some(u) = l.split("DevTools listening on ").nth(1) {
                    return Ok(u.trim().to_string());
                }
            }
            Err(anyhow!("chromium exited before listening"))
        })
        .await
        .context("chromium did not open its DevTools port")??;
        // Keep draining stderr so Chromium never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lineas.next_line().await {} });
        let (ws, _) = tokio_tungstenite::connect_async(url.as_str()).await?;
        let mut n = Navegador {
            hijo,
            ws,
            sesion: String::new(),
            siguiente: 0,
            eventos: VecDeque::new(),
            _perfil: perfil,
        };
        let t = n
            .enviar(None, "Target.createTarget", json!({ "url": "about:blank" }))
            .await?;
        let target = t["targetId"].as_str().context("targetId")?.to_string();
        let a = n
            .enviar(
                None,
                "Target.attachToTarget",
                json!({ "targetId": target, "flatten": true }),
            )
            .await?;
        n.sesion = a["sessionId"].as_str().context("sessionId")?.to_string();
        n.cmd("Page.enable", json!({})).await?;
        n.cmd(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": 1400, "height": 1000, "deviceScaleFactor": 1, "mobile": false }),
        )
        .await?;
        Ok(n)
    }

    async fn enviar(&mut self, sesion: Option<&str>, metodo: &str, params: Value) -> Result<Value> {
        self.siguiente += 1;
        let id = self.siguiente;
        let mut m = json!({ "id": id, "method": metodo, "params": params });
        if let Some(s) = sesion {
            m["sessionId"] = json!(s);
        }
        self.ws.send(WsMessage::Text(m.to_string().into())).await?;
        tokio::time::timeout(PLAZO, async {
            loop {
                let v = self.leer().await?;
                if v["id"] == json!(id) {
                    if let Some(e) = v.get("error") {
                        bail!("{metodo}: {e}");
                    }
                    return Ok(v["result"].clone());
                }
                if v.get("method").is_some() {
                    self.eventos.push_back(v);
                }
            }
        })
        .await
        .with_context(|| format!("no answer to {metodo}"))?
    }

    async fn leer(&mut self) -> Result<Value> {
        loop {
            match self.ws.next().await {
                Some(Ok(WsMessage::Text(t))) => return Ok(serde_json::from_str(&t)?),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.into()),
                None => bail!("chromium closed the DevTools connection"),
            }
        }
    }

    /// A command to the tab.
    pub async fn cmd(&mut self, metodo: &str, params: Value) -> Result<Value> {
        let s = self.sesion.clone();
        self.enviar(Some(&s), metodo, params).await
    }

    /// Waits for an event of the tab (already received or to come).
    pub async fn esperar_evento(&mut self, metodo: &str) -> Result<Value> {
        if let Some(i) = self.eventos.iter().position(|e| e["method"] == metodo) {
            return Ok(self.eventos.remove(i).expect("present"));
        }
        tokio::time::timeout(PLAZO, async {
            loop {
                let v = self.leer().await?;
                if v["method"] == metodo {
                    return Ok(v);
                }
                if v.get("method").is_some() {
                    self.eventos.push_back(v);
                }
            }
        })
        .await
        .with_context(|| format!("no {metodo} event"))?
    }

    /// Runs `accion` (something that navigates) and waits for the new page's `load` event.
    async fn navegando(&mut self, accion: impl AsyncFnOnce(&mut Self) -> Result<()>) -> Result<()> {
        self.eventos
            .retain(|e| e["method"] != "Page.loadEventFired");
        accion(self).await?;
        self.esperar_evento("Page.loadEventFired").await?;
        Ok(())
    }

    /// Opens a URL and waits until it has loaded.
    pub async fn ir(&mut self, url: &str) -> Result<()> {
        let url = url.to_string();
        self.navegando(async move |n| {
            let r = n.cmd("Page.navigate", json!({ "url": url })).await?;
            if let Some(e) = r.get("errorText") {
                bail!("navigating to {url}: {e}");
            }
            Ok(())
        })
        .await
    }

    /// Evaluates an expression that navigates (a click, a form submit) and waits for the load.
    pub async fn eval_y_esperar(&mut self, expr: &str) -> Result<()> {
        let expr = expr.to_string();
        self.navegando(async move |n| n.eval(&expr).await.map(|_| ()))
            .await
    }

    /// The value of a JavaScript expression in the page (JSON-serialisable values only).
    pub async fn eval(&mut self, expr: &str) -> Result<Value> {
        let r = self
            .cmd(
                "Runtime.evaluate",
                json!({ "expression": expr, "returnByValue": true, "awaitPromise": true }),
            )
            .await?;
        if let Some(e) = r.get("exceptionDetails") {
            bail!("evaluating {expr}: {e}");
        }
        Ok(r["result"]["value"].clone())
    }

    /// The page's HTTP status (of its main document).
    pub async fn estado_http(&mut self) -> Result<u64> {
        self.eval("performance.getEntriesByType('navigation')[0].responseStatus")
            .await?
            .as_u64()
            .context("responseStatus")
    }

    pub async fn borrar_cookies(&mut self) -> Result<()> {
        self.cmd("Network.clearBrowserCookies", json!({})).await?;
        Ok(())
    }

    /// Saves a PNG of the whole page.
    pub async fn captura(&mut self, ruta: &Path) -> Result<usize> {
        let r = self
            .cmd(
                "Page.captureScreenshot",
                json!({ "format": "png", "captureBeyondViewport": true }),
            )
            .await?;
        let datos = r["data"].as_str().context("screenshot data")?;
        let png = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, datos)?;
        if let Some(d) = ruta.parent() {
            std::fs::create_dir_all(d)?;
        }
        std::fs::write(ruta, &png)?;
        Ok(png.len())
    }

    pub async fn cerrar(mut self) {
        let _ = self.ws.close(None).await;
        let _ = self.hijo.kill().await;
    }
}
