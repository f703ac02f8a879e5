//! `dashboard_browser` (part of issue 5's contract): a real headless Chromium signs in to the
//! demo zone's dashboard with the supervisor's token (typing it into the sign-in form), checks
//! the figures in the page's DOM against the JSON API, follows a link to a school, saves a
//! screenshot as a test artefact, and an ATP of another zone gets 404 for the zone's page.
//!
//! The zone is the real `bitacora-server demo` (24 schools written through the document model
//! and synced through the protocol) on a fixed reference date, in a temporary directory. The
//! ATP of another zone is registered with `bitacora-server admin` on the same database while
//! the demo serves.
//!
//! Screenshots go to `$BITACORA_ARTEFACTOS` (default: `target/artefactos`). Without Chromium
//! the test says so loudly and passes, unless `BITACORA_REQUIRE_BROWSER=1` (set by `.ci/run`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::Stdio;

use anyhow::{Context, Result, bail, ensure};
use bitacora_tests::bin;
use bitacora_tests::navegador::{Navegador, chromium};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

const HOY: &str = "2026-03-16";

struct Demo {
    _hijo: tokio::process::Child,
    dir: tempfile::TempDir,
    url: String,
    zona_url: String,
    token_sup: String,
}

async fn demo() -> Result<Demo> {
    let dir = tempfile::tempdir()?;
    let mut hijo = tokio::process::Command::new(bin("bitacora-server"))
        .args(["--data-dir"])
        .arg(dir.path())
        .args(["demo", "--listen", "127.0.0.1:0", "--hoy", HOY])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()?;
    let mut lineas = BufReader::new(hijo.stdout.take().context("stdout")?).lines();
    let (mut token_sup, mut zona_url, mut url) = (None, None, None);
    while let Some(l) = lineas.next_line().await? {
        if let Some(t) = l.strip_prefix("token de supervisión: ") {
            token_sup = Some(t.trim().to_string());
        } else if let Some(u) = l.strip_prefix("Tablero de la zona: ") {
            zona_url = Some(u.trim().to_string());
        } else if let Some(u) = l.strip_prefix("Servidor en ") {
            url = u.split(';').next().map(|s| s.trim().to_string());
            break;
        }
    }
    tokio::spawn(async move { while let Ok(Some(_)) = lineas.next_line().await {} });
    Ok(Demo {
        _hijo: hijo,
        dir,
        url: url.context("demo did not print its address")?,
        zona_url: zona_url.context("demo did not print the zone's dashboard")?,
        token_sup: token_sup.context("demo did not print the supervisor's token")?,
    })
}

/// `bitacora-server admin …` on the demo's database; its stdout.
fn admin(d: &Demo, args: &[&str]) -> Result<String> {
    let out = std::process::Command::new(bin("bitacora-server"))
        .arg("--data-dir")
        .arg(d.dir.path())
        .arg("admin")
        .args(args)
        .output()?;
    ensure!(
        out.status.success(),
        "admin {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

async fn api(url: &str, token: &str) -> Result<Value> {
    let r = reqwest::Client::new()
        .get(url)
        .bearer_auth(token)
        .send()
        .await?;
    ensure!(r.status().is_success(), "{url}: {}", r.status());
    Ok(r.json().await?)
}

/// How the page writes a zone-level share of students (see `Cifra::texto`).
fn cifra(c: &Value) -> String {
    if c["alumnos"] == "<5" {
        return "<5".into();
    }
    match c["porcentaje"].as_f64() {
        None => "—".into(),
        Some(p) => {
            let s = format!("{p:.1}");
            let s = s.strip_suffix(".0").unwrap_or(&s).to_string();
            format!("{s} % ({})", c["alumnos"])
        }
    }
}

fn artefactos() -> PathBuf {
    std::env::var_os("BITACORA_ARTEFACTOS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("target")
                .join("artefactos")
        })
}

const DOM_ZONA: &str = r#"JSON.stringify({
  zona: document.querySelector('#zona').dataset.zona,
  totales: Object.fromEntries([...document.querySelectorAll('#totales [data-total]')]
    .map(e => [e.dataset.total, e.textContent.trim()])),
  filas: Object.fromEntries([...document.querySelectorAll('#escuelas tr[data-cct]')]
    .map(tr => [tr.dataset.cct, Object.fromEntries([...tr.querySelectorAll('td[data-c]')]
      .map(td => [td.dataset.c, td.textContent.trim()]))])),
  situacion: Object.fromEntries([...document.querySelectorAll('#situacion tr[data-campo]')]
    .map(tr => [tr.dataset.campo, tr.querySelector('[data-c=alumnos]').textContent.trim()])),
  acompanamiento: [...document.querySelectorAll('#acompanamiento li')].map(li => li.dataset.cct),
  bytes: document.documentElement.outerHTML.length,
  scripts: document.scripts.length,
})"#;

#[tokio::test]
async fn dashboard_browser() -> Result<()> {
    let Some(binario) = chromium() else {
        if std::env::var("BITACORA_REQUIRE_BROWSER").as_deref() == Ok("1") {
            bail!("Chromium is required (BITACORA_REQUIRE_BROWSER=1) but not installed");
        }
        let _ = std::io::stderr().write_all(
            b"\n* dashboard_browser SKIPPED: no chromium. `apt-get install chromium`, or set BITACORA_CHROMIUM. *\n\n",
        );
        return Ok(());
    };
    let d = demo().await?;
    let zona = d.zona_url.rsplit('/').next().unwrap().to_string();
    let mut nav = Navegador::abrir(&binario).await?;

    // Sign in as a person would: the page that asks for the token, the form, the redirect.
    nav.ir(&d.zona_url).await?;
    let donde = nav.eval("location.pathname").await?;
    ensure!(
        donde == "/entrar",
        "unsigned visit should land on the sign-in, got {donde}"
    );
    let token = serde_json::to_string(&d.token_sup)?;
    nav.eval_y_esperar(&format!(
        "document.getElementById('token').value = {token}; document.querySelector('form').submit()"
    ))
    .await?;
    ensure!(nav.estado_http().await? == 200);
    ensure!(
        nav.eval("location.pathname").await? == format!("/zonas/{zona}"),
        "after signing in the supervisor lands on the zone"
    );

    // The figures in the DOM are the JSON API's.
    let dom: Value = serde_json::from_str(nav.eval(DOM_ZONA).await?.as_str().context("dom")?)?;
    let j = api(&format!("{}/v1/zonas/{zona}/resumen", d.url), &d.token_sup).await?;
    ensure!(dom["zona"] == zona);
    ensure!(dom["scripts"] == 0, "the dashboard needs no JavaScript");
    let bytes = dom["bytes"].as_u64().unwrap_or(u64::MAX);
    ensure!(bytes < 100 * 1024, "zone page is {bytes} bytes");
    let t = &j["totales"];
    let totales: BTreeMap<&str, String> = [
        ("escuelas", t["escuelas"].to_string()),
        ("desactualizadas", t["desactualizadas"].to_string()),
        ("nunca_sincronizadas", t["nunca_sincronizadas"].to_string()),
        ("acuerdos_pendientes", t["acuerdos_pendientes"].to_string()),
        ("acuerdos_vencidos", t["acuerdos_vencidos"].to_string()),
        (
            "sesiones_registradas",
            t["sesiones_registradas"].to_string(),
        ),
        ("conflictos", t["conflictos"].to_string()),
        (
            "alumnos",
            t["alumnos"]
                .as_str()
                .map_or(t["alumnos"].to_string(), str::to_string),
        ),
    ]
    .into_iter()
    .collect();
    for (k, v) in &totales {
        ensure!(
            dom["totales"][*k] == *v.as_str(),
            "total {k}: DOM {} vs API {v}",
            dom["totales"][*k]
        );
    }
    ensure!(
        t["escuelas"].as_u64() >= Some(20),
        "a believable zone: {}",
        t["escuelas"]
    );
    let escuelas = j["escuelas"].as_array().context("escuelas")?;
    ensure!(dom["filas"].as_object().map(|o| o.len()) == Some(escuelas.len()));
    for e in escuelas {
        let cct = e["cct"].as_str().unwrap();
        let f = &dom["filas"][cct];
        let n = |k: &str| e[k].to_string();
        ensure!(
            f["pendientes"] == n("acuerdos_pendientes"),
            "{cct} pendientes"
        );
        ensure!(f["vencidos"] == n("acuerdos_vencidos"), "{cct} vencidos");
        ensure!(f["conflictos"] == n("conflictos"), "{cct} conflictos");
        let pemc = e["pemc_porcentaje"]
            .as_u64()
            .map_or("—".into(), |p| format!("{p} %"));
        ensure!(
            f["pemc"] == pemc.as_str(),
            "{cct} pemc: {} vs {pemc}",
            f["pemc"]
        );
        let m = &e["metas_por_logro"];
        let metas = format!(
            "{}/{}/{}/{}",
            m["cumplida"], m["avance_significativo"], m["escaso_o_nulo"], m["sin_registro"]
        );
        ensure!(f["metas"] == metas.as_str(), "{cct} metas");
        for campo in [
            "apoyo_lectura",
            "apoyo_escritura",
            "apoyo_matematicas",
            "faltan_constantemente",
        ] {
            let esperado = e["apoyo"].get(campo).map_or("—".to_string(), cifra);
            ensure!(
                f[campo] == esperado.as_str(),
                "{cct} {campo}: DOM {} vs API {esperado}",
                f[campo]
            );
        }
    }
    for i in j["situacion"].as_array().context("situacion")? {
        let a = &i["cifra"]["alumnos"];
        let v = a.as_str().map_or(a.to_string(), str::to_string);
        ensure!(
            dom["situacion"][i["campo"].as_str().unwrap()] == v.as_str(),
            "situación {}",
            i["campo"]
        );
    }
    let orden: Vec<&Value> = j["acompanamiento"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["cct"])
        .collect();
    ensure!(
        dom["acompanamiento"]
            .as_array()
            .map(|v| v.iter().collect::<Vec<_>>())
            == Some(orden)
    );

    let dir = artefactos();
    let png = dir.join("dashboard_zona.png");
    let n = nav.captura(&png).await?;
    ensure!(n > 10_000, "screenshot of {n} bytes");
    eprintln!(
        "dashboard_browser: zone page {bytes} bytes; screenshot {}",
        png.display()
    );

    // Follow the first school's link.
    let cct = nav
        .eval("document.querySelector('#escuelas tr[data-cct] a').closest('tr').dataset.cct")
        .await?;
    nav.eval_y_esperar("document.querySelector('#escuelas tr[data-cct] a').click()")
        .await?;
    ensure!(nav.estado_http().await? == 200);
    ensure!(
        nav.eval("document.querySelector('#escuela').dataset.cct")
            .await?
            == cct
    );
    let je = api(
        &format!("{}/v1/escuelas/{}/resumen", d.url, cct.as_str().unwrap()),
        &d.token_sup,
    )
    .await?;
    let vencidos = nav
        .eval("document.querySelector('[data-total=acuerdos_vencidos]').textContent.trim()")
        .await?;
    ensure!(
        vencidos.as_str() == Some(je["acuerdos_vencidos"].to_string().as_str()),
        "school vencidos"
    );
    let filas_acuerdos = nav
        .eval("document.querySelectorAll('#acuerdos tr[data-id]').length")
        .await?;
    ensure!(filas_acuerdos == je["acuerdos"].as_array().map(|a| a.len()).unwrap_or(0));
    nav.captura(&dir.join("dashboard_escuela.png")).await?;

    // An ATP of another zone: signs in, lands on their zone, and the demo zone is a 404.
    admin(
        &d,
        &[
            "zona",
            "add",
            "--clave",
            "07FIZ0099Z",
            "--nombre",
            "Zona Escolar 099",
        ],
    )?;
    admin(
        &d,
        &[
            "usuario",
            "add",
            "--id",
            "atp.099",
            "--nombre",
            "ATP de la 099",
            "--rol",
            "atp",
            "--zona",
            "07FIZ0099Z",
        ],
    )?;
    let salida = admin(&d, &["token", "emitir", "--usuario", "atp.099"])?;
    let token_atp = salida
        .lines()
        .map(str::trim)
        .find(|l| l.matches('.').count() == 2 && !l.contains(' '))
        .context("token in the admin's output")?
        .to_string();
    nav.borrar_cookies().await?;
    nav.ir(&format!("{}/entrar", d.url)).await?;
    let token = serde_json::to_string(&token_atp)?;
    nav.eval_y_esperar(&format!(
        "document.getElementById('token').value = {token}; document.querySelector('form').submit()"
    ))
    .await?;
    ensure!(nav.eval("location.pathname").await? == "/zonas/07FIZ0099Z");
    nav.ir(&d.zona_url).await?;
    ensure!(
        nav.estado_http().await? == 404,
        "another zone's ATP must get 404"
    );
    let titulo = nav.eval("document.querySelector('h1').textContent").await?;
    ensure!(titulo == "No encontrado", "{titulo}");
    nav.cerrar().await;
    Ok(())
}
