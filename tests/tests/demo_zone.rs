//! `demo_zone`: the real `bitacora-server demo` binary, on port 0 in a temporary data directory.
//! Its stdout is read up to the dashboard's URL (no sleeps: every step waits on the process's
//! output, its exit or a request). With the supervisor token it printed, `GET /v1/documentos`
//! lists the zone's school documents; a sync with the ATP's token (read-only: it sends nothing)
//! brings every document down, and they hold a school cycle's real work: sessions, acuerdos in
//! several estados (some overdue), metas with their nivel de logro, the concentrado (counts
//! only), two unresolved conflicts, the zone's prácticas. Killed and run again on the same
//! directory, the demo generates nothing: the same documents, and the ATP's next sync receives no
//! change. Bad `--semilla` or `--hoy`: exit code 2 and nothing written.
//!
//! The demo runs with `--hoy 2026-03-20` so that what it generates (a cycle up to that day) does
//! not depend on when the test runs: on the real date, early August has no session yet.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use bitacora_core::bundle::genesis_de;
use bitacora_core::engine::{self, DocRemoto};
use bitacora_core::ids::DocumentId;
use bitacora_core::model::{DocKind, conflictos, escuela, zona};
use bitacora_core::store::{DocInfo, Store};
use bitacora_tests::bin;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tokio::task::JoinHandle;

const ZONA: &str = "07FIZ0052W";
const HOY: &str = "2026-03-20";
const CICLO: &str = "2025-2026";
/// Generation takes about ten seconds in a debug build; this only bounds a hung process.
const PLAZO: Duration = Duration::from_secs(300);
const LIMITE: Duration = Duration::from_secs(60);

/// A running `bitacora-server demo` and what it printed.
struct Demo {
    child: Child,
    /// `http://127.0.0.1:PORT`
    servidor: String,
    supervision: String,
    atp: String,
    salida: String,
    /// Kept open: the demo still prints after the URL line.
    _stdout: Lines<BufReader<ChildStdout>>,
    stderr: JoinHandle<String>,
}

fn demo_cmd(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(bin("bitacora-server"));
    c.arg("demo")
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .args(args)
        .env_remove("BITACORA_CONFIG")
        .env_remove("BITACORA_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    c
}

/// Starts the demo and reads its stdout until the dashboard's URL.
async fn arrancar(dir: &Path, args: &[&str]) -> Result<Demo> {
    let mut child = demo_cmd(dir, args)
        .spawn()
        .context("starting bitacora-server demo")?;
    let mut err = child.stderr.take().context("stderr is piped")?;
    let stderr = tokio::spawn(async move {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s).await;
        s
    });
    let mut lineas = BufReader::new(child.stdout.take().context("stdout is piped")?).lines();
    let mut salida = String::new();
    let (mut sup, mut atp, mut tablero) = (None, None, None);
    let leer = async {
        while let Some(l) = lineas.next_line().await? {
            salida.push_str(&l);
            salida.push('\n');
            if let Some(t) = l.strip_prefix("token de supervisión: ") {
                sup = Some(t.trim().to_string());
            } else if let Some(t) = l.strip_prefix("token de ATP: ") {
                atp = Some(t.trim().to_string());
            } else if let Some(u) = l.strip_prefix("Tablero de la zona: ") {
                tablero = Some(u.trim().to_string());
                return anyhow::Ok(true);
            }
        }
        Ok(false)
    };
    let listo = tokio::time::timeout(PLAZO, leer)
        .await
        .context("the demo printed no dashboard URL in time")??;
    if !listo {
        let status = child.wait().await?;
        bail!(
            "the demo ended ({status}) before printing the dashboard URL.\nstdout:\n{salida}\nstderr:\n{}",
            stderr.await?
        );
    }
    let tablero = tablero.context("dashboard URL")?;
    let servidor = tablero
        .strip_suffix(&format!("/zonas/{ZONA}"))
        .with_context(|| format!("dashboard URL of zone {ZONA}: {tablero}"))?
        .to_string();
    ensure!(
        salida.contains(&format!("{servidor}/entrar")),
        "sign-in page: {salida}"
    );
    Ok(Demo {
        child,
        servidor,
        supervision: sup.context("supervisor token printed before the URL")?,
        atp: atp.context("ATP token printed before the URL")?,
        salida,
        _stdout: lineas,
        stderr,
    })
}

impl Demo {
    /// Kills the process (SIGKILL) and returns what it wrote on stderr.
    async fn matar(mut self) -> Result<String> {
        self.child.kill().await?;
        Ok(self.stderr.await?)
    }
}

fn info(d: &DocRemoto) -> Result<DocInfo> {
    Ok(DocInfo {
        id: DocumentId::parse(&d.id)?,
        kind: DocKind::parse(&d.tipo).context("document kind")?,
        owner: d.owner.clone(),
        ciclo: d.ciclo.clone(),
    })
}

fn ordenados(
    mut h: Vec<bitacora_core::automerge::ChangeHash>,
) -> Vec<bitacora_core::automerge::ChangeHash> {
    h.sort();
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_zone_is_real_work_and_a_rerun_does_not_duplicate() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let datos = tmp.path().join("demo");
    let demo = arrancar(&datos, &["--hoy", HOY]).await?;
    ensure!(
        demo.salida.contains(&format!("ciclo {CICLO}")),
        "{}",
        demo.salida
    );

    // The supervisor sees every document of the zone.
    let docs = engine::documentos(&demo.servidor, &demo.supervision, LIMITE).await?;
    let escuelas: Vec<&DocRemoto> = docs.iter().filter(|d| d.tipo == "escuela").collect();
    ensure!(escuelas.len() >= 20, "school documents: {docs:?}");
    ensure!(
        escuelas.iter().all(|d| d.ciclo == CICLO),
        "ciclo of the reference date: {docs:?}"
    );
    let zona_remota = docs
        .iter()
        .find(|d| d.tipo == "zona" && d.owner == ZONA)
        .with_context(|| format!("the zone document: {docs:?}"))?;

    // The ATP syncs everything down, read-only.
    let store = Store::open(&tmp.path().join("atp")).await?;
    let atp_docs = engine::documentos(&demo.servidor, &demo.atp, LIMITE).await?;
    ensure!(atp_docs.len() == docs.len(), "{atp_docs:?}");
    ensure!(
        atp_docs.iter().all(|d| d.acceso == "lectura"),
        "{atp_docs:?}"
    );
    let mut ids = Vec::new();
    for d in &atp_docs {
        let info = info(d)?;
        store.create(&info, &mut genesis_de(&info)?, 0).await?;
        ids.push(info.id);
    }
    let informe = engine::sync_once(&store, &demo.servidor, &demo.atp, &ids, LIMITE).await?;
    ensure!(
        informe.cambios_enviados == 0 && informe.cambios_recibidos > 500,
        "{informe:?}"
    );

    let mut heads = Vec::new();
    let (mut con_metas, mut con_logro, mut con_intermedio, mut con_conflicto) = (0, 0, 0, 0);
    let mut estados = std::collections::BTreeSet::new();
    let mut vencidos = 0;
    for d in &escuelas {
        let id = DocumentId::parse(&d.id)?;
        let mut doc = store.load(&id).await?.context("school at the ATP")?;
        heads.push((id, ordenados(doc.get_heads())));
        let e = escuela::leer(&doc)?;
        let quien = format!("{} {:?}", d.owner, e.nombre);
        ensure!(
            e.nombre.is_some() && e.zona.as_deref() == Some(ZONA),
            "{quien}"
        );
        ensure!(e.autores.len() >= 2, "a director and teachers: {quien}");
        ensure!(
            e.sesiones.iter().filter(|s| s.fase == "intensiva").count() == 5,
            "fase intensiva: {quien}"
        );
        ensure!(e.sesiones.iter().any(|s| s.fase == "ordinaria"), "{quien}");
        ensure!(!e.acuerdos.is_empty(), "acuerdos: {quien}");
        ensure!(
            e.acuerdos
                .iter()
                .all(|a| !a.texto.is_empty() && !a.responsables.is_empty()),
            "{quien}"
        );
        ensure!(
            e.diagnostico.iter().any(|x| !x.texto.is_empty()),
            "diagnóstico: {quien}"
        );
        ensure!(
            e.concentrado
                .iter()
                .any(|c| c.corte == "diagnostico" && c.get("inscritos_inicio").unwrap_or(0) > 0),
            "concentrado: {quien}"
        );
        for c in &e.concentrado {
            escuela::validar_concentrado(c)?;
        }
        for a in &e.acuerdos {
            estados.insert(a.estado.clone());
            let abierto = a.estado == "pendiente" || a.estado == "en_proceso";
            if abierto && a.fecha_compromiso.as_deref().is_some_and(|f| f < HOY) {
                vencidos += 1;
            }
        }
        con_metas += usize::from(!e.metas.is_empty());
        con_logro += usize::from(e.metas.iter().any(|m| m.nivel_logro.is_some()));
        con_intermedio += usize::from(e.concentrado.iter().any(|c| c.corte == "intermedio"));
        let c = conflictos::listar(&doc);
        if !c.is_empty() {
            con_conflicto += 1;
            ensure!(
                c.iter().all(|c| c.ruta.ends_with("/estado")
                    && c.valores.len() == 2
                    && c.valores.iter().all(|v| v.autor.is_some())),
                "an acuerdo's estado set by two people: {c:?}"
            );
        }
    }
    ensure!(con_metas >= 15, "schools with metas: {con_metas}");
    ensure!(
        con_logro >= 10,
        "schools with a nivel de logro: {con_logro}"
    );
    ensure!(con_intermedio >= 3, "intermedio: {con_intermedio}");
    ensure!(
        con_conflicto == 2,
        "schools with a conflict: {con_conflicto}"
    );
    ensure!(vencidos >= 5, "overdue acuerdos: {vencidos}");
    for e in ["pendiente", "en_proceso", "cumplido"] {
        ensure!(estados.contains(e), "acuerdos {e}: {estados:?}");
    }
    let zona_id = DocumentId::parse(&zona_remota.id)?;
    let mut zona_doc = store.load(&zona_id).await?.context("the zone")?;
    heads.push((zona_id, ordenados(zona_doc.get_heads())));
    let z = zona::leer(&zona_doc)?;
    ensure!(z.practicas.len() >= 3, "prácticas: {:?}", z.practicas);
    ensure!(
        !z.sesiones.is_empty() && !z.acuerdos.is_empty(),
        "CTZ: {z:?}"
    );

    // Run again on the same directory (without --hoy: the data directory remembers it).
    let stderr = demo.matar().await?;
    ensure!(stderr.contains("zona generada"), "{stderr}");
    let demo = arrancar(&datos, &[]).await?;
    let docs2 = engine::documentos(&demo.servidor, &demo.supervision, LIMITE).await?;
    ensure!(docs2.len() == docs.len(), "{docs2:?}");
    let informe = engine::sync_once(&store, &demo.servidor, &demo.atp, &ids, LIMITE).await?;
    ensure!(
        informe.cambios_recibidos == 0 && informe.cambios_enviados == 0,
        "nothing generated again: {informe:?}"
    );
    for (id, h) in &heads {
        let mut doc = store.load(id).await?.context("document")?;
        ensure!(
            ordenados(doc.get_heads()) == *h,
            "{id} changed on the rerun"
        );
    }
    store.close().await;
    let stderr = demo.matar().await?;
    ensure!(
        stderr.contains("no se genera de nuevo") && !stderr.contains("zona generada"),
        "{stderr}"
    );
    Ok(())
}

#[tokio::test]
async fn bad_semilla_or_hoy_is_refused_with_exit_code_2() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    for (args, campo) in [
        (["--semilla", "abc"], "semilla"),
        (["--hoy", "2026-02-30"], "--hoy"),
    ] {
        let datos = tmp.path().join(campo.trim_start_matches('-'));
        let out = tokio::time::timeout(PLAZO, demo_cmd(&datos, &args).output())
            .await
            .context("the demo did not exit")??;
        let stderr = String::from_utf8_lossy(&out.stderr);
        ensure!(out.status.code() == Some(2), "{args:?}: {out:?}");
        ensure!(
            stderr.contains(campo) && stderr.contains(args[1]) && stderr.starts_with("error: "),
            "{args:?}: {stderr}"
        );
        ensure!(out.stdout.is_empty(), "{args:?}: {out:?}");
        ensure!(!datos.exists(), "{args:?} wrote {}", datos.display());
    }
    Ok(())
}
