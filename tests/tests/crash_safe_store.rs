//! `crash_safe_store`: a child process appending to the local store is killed with SIGKILL at
//! random moments (mid-append and mid-compaction included, since it compacts every 64 chunks);
//! every change it reported saved must load again, and SQLite's integrity check must pass.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use anyhow::Result;
use bitacora_core::ids::{Cct, CicloEscolar, DocumentId};
use bitacora_core::model::escuela;
use bitacora_core::store::Store;
use rand::{Rng, SeedableRng};

#[tokio::test]
async fn crash_safe_store() -> Result<()> {
    let seed: u64 = bitacora_tests::env_or("CRASH_SEED", rand::random);
    let rounds: usize = bitacora_tests::env_or("CRASH_ROUNDS", || 8);
    eprintln!("crash_safe_store seed={seed} rounds={rounds}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir()?;
    let mut reported: Vec<String> = Vec::new();
    for round in 0..rounds {
        let mut child = Command::new(env!("CARGO_BIN_EXE_store_writer"))
            .arg(dir.path())
            .arg(format!("r{round}"))
            .stdout(Stdio::piped())
            .spawn()?;
        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        let kill_after = rng.random_range(1..150);
        for _ in 0..kill_after {
            match lines.next() {
                Some(l) => reported.push(l?),
                None => break,
            }
        }
        child.kill()?; // SIGKILL on Unix
        // Lines already written before the kill were reported saved too.
        for l in lines {
            match l {
                Ok(l) if l.starts_with("guardado ") => reported.push(l),
                _ => break,
            }
        }
        child.wait()?;

        let store = Store::open(dir.path()).await?;
        store.integrity_check().await?;
        let id = DocumentId::escuela(
            &Cct::parse("07DPR0123X")?,
            CicloEscolar::parse("2025-2026")?,
        );
        let doc = store.load(&id).await?.expect("document exists");
        let e = escuela::leer(&doc)?;
        for l in &reported {
            let rid = l.trim_start_matches("guardado ");
            assert!(
                e.acuerdos.iter().any(|a| a.id == rid),
                "round {round} (seed {seed}): change {rid} was reported saved but is missing"
            );
        }
        store.close().await;
    }
    assert!(!reported.is_empty());
    Ok(())
}
