//! `interop_js`: two Node.js clients built on the npm packages `@automerge/automerge-repo` and
//! `@automerge/automerge-repo-network-websocket` (pinned in tests/js/package-lock.json) sync one
//! school document through the real server with valid tokens; a client holding another school's
//! token gets `doc-unavailable`.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bitacora_core::model::escuela;
use bitacora_server::hub::assemble;
use bitacora_tests::server::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_js() -> Result<()> {
    let js = Path::new(env!("CARGO_MANIFEST_DIR")).join("js");
    if !js.join("node_modules/@automerge/automerge-repo").exists() {
        bail!(
            "JavaScript peers not installed: run `npm ci` in tests/js (scripts/test and .ci/run do)"
        );
    }
    let srv = TestServer::start().await?;
    let (doc_a, [t_a1, t_a2, t_b]) = srv.escena_interop().await?;

    let out = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::new("node")
            .arg("interop.mjs")
            .args([&srv.url, &doc_a.id.url(), &t_a1, &t_a2, &t_b])
            .current_dir(&js)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .context("node interop timed out")??;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or("{}");
    let r: serde_json::Value =
        serde_json::from_str(line).with_context(|| format!("stdout: {stdout}"))?;
    assert!(
        out.status.success(),
        "node failed: {r}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        r["a1_tipo"], "escuela",
        "the JS client loaded the server's genesis: {r}"
    );
    assert_eq!(r["a2_saw_a1"], true);
    assert_eq!(r["a1_saw_a2"], true);
    assert_eq!(r["heads_equal"], true);
    assert_eq!(r["other_school"], "unavailable", "{r}");

    // The server holds (durably) what the JS clients wrote, readable by the Rust model.
    let stored = srv.db.load(&doc_a.id).await?;
    let doc = assemble(&stored).map_err(anyhow::Error::msg)?;
    let e = escuela::leer(&bitacora_core::automerge::AutoCommit::load(&doc.save())?)?;
    let a1 = e
        .acuerdos
        .iter()
        .find(|a| a.id == "jsana00001")
        .context("JS acuerdo stored")?;
    assert_eq!(a1.texto, "Nuevo: Acuerdo escrito desde JavaScript");
    assert_eq!(a1.responsables, vec!["Ana (JS)".to_string()]);
    assert!(
        e.acuerdos
            .iter()
            .any(|a| a.id == "jsalma0001" && a.estado == "en_proceso")
    );
    // Access decisions were audited, including the refusal of school B.
    let audit = srv.db.audit_tail(200).await?;
    assert!(
        audit
            .iter()
            .any(|r| r.1 == "beto" && r.3 == "acceso" && r.4 == "denegado"),
        "{audit:?}"
    );
    assert!(
        audit
            .iter()
            .any(|r| r.1 == "ana" && r.3 == "escritura" && r.4 == "aceptada")
    );
    srv.stop().await?;
    Ok(())
}
