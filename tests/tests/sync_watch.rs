//! `sync_watch`: two teachers run `bitacora sync --watch`; an edit made by a separate `bitacora`
//! invocation on one laptop reaches the other live, in both directions, and stopping the watch
//! (SIGINT) leaves everything confirmed. Waits on the watchers' output lines, never on time.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;

use anyhow::{Context, Result, bail};
use bitacora_tests::Replica;
use bitacora_tests::server::TestServer;

const A: &str = "07DPR0001A";

struct Watch {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Watch {
    fn start(r: &Replica) -> Result<Watch> {
        let mut child = r
            .command(&["sync", "--watch"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let out = child.stdout.take().context("stdout")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Ok(Watch { child, lines })
    }

    /// Blocks until a line containing `needle` arrives (bounded: the watcher dies with the test).
    fn wait_for(&self, needle: &str) -> Result<String> {
        loop {
            match self.lines.recv_timeout(std::time::Duration::from_secs(60)) {
                Ok(l) if l.contains(needle) => return Ok(l),
                Ok(_) => {}
                Err(e) => bail!("watcher stopped before printing «{needle}»: {e}"),
            }
        }
    }

    fn interrupt(mut self) -> Result<()> {
        let r = self.interrupt_inner();
        std::mem::forget(self);
        r
    }

    fn interrupt_inner(&mut self) -> Result<()> {
        #[cfg(unix)]
        {
            let pid = self.child.id().to_string();
            std::process::Command::new("kill")
                .args(["-INT", &pid])
                .status()?;
        }
        let status = self.child.wait()?;
        assert!(
            status.success(),
            "sync --watch ends cleanly on SIGINT: {status}"
        );
        Ok(())
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_watch() -> Result<()> {
    let srv = TestServer::start().await?;
    srv.zona("07FIZ0014").await?;
    srv.escuela(A, "07FIZ0014").await?;
    let tmp = tempfile::tempdir()?;
    let ana = Replica::new(tmp.path().join("ana"));
    let luis = Replica::new(tmp.path().join("luis"));
    for (r, u) in [(&ana, "ana"), (&luis, "luis")] {
        r.ok(&[
            "init",
            "--cct",
            A,
            "--nombre",
            "Escuela A",
            "--zona",
            "07FIZ0014",
            "--ciclo",
            "2025-2026",
            "--autor",
            u,
        ])?;
        let t = srv.usuario(u, "docente", Some(A), None).await?;
        r.ok(&["login", "--servidor", &srv.url, "--token", &t])?;
    }
    let w_ana = Watch::start(&ana)?;
    let w_luis = Watch::start(&luis)?;
    w_ana.wait_for("al día")?;
    w_luis.wait_for("al día")?;

    // Ana adds an acuerdo with a separate command; Luis's watcher receives it.
    let id = ana.json(&["acuerdo", "add", "--texto", "Acordado en vivo"])?["id"]
        .as_str()
        .context("id")?
        .to_string();
    loop {
        w_luis.wait_for("recibidos")?;
        let l = luis.json(&["acuerdo", "list"])?;
        if let Some(a) = l
            .as_array()
            .context("list")?
            .iter()
            .find(|a| a["id"] == id.as_str())
        {
            assert_eq!(a["texto"], "Acordado en vivo");
            break;
        }
    }

    // And back: Luis sets its status; Ana's watcher receives it.
    luis.ok(&["acuerdo", "estado", &id, "en_proceso"])?;
    loop {
        w_ana.wait_for("recibidos")?;
        if ana.json(&["acuerdo", "show", &id])?["estado"] == "en_proceso" {
            break;
        }
    }
    w_ana.interrupt()?;
    w_luis.interrupt()?;
    assert_eq!(
        ana.json(&["export", "json"])?,
        luis.json(&["export", "json"])?
    );
    for r in [&ana, &luis] {
        let e = r.json(&["estado"])?;
        for d in e["documentos"].as_array().context("documentos")? {
            assert_eq!(d["cambios_sin_confirmar"], 0, "{e}");
        }
    }
    srv.stop().await?;
    Ok(())
}
