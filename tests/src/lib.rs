//! Support code for the end-to-end stories in `tests/tests/`: locating and running the real
//! binaries in temporary data directories.

pub mod cliente;
pub mod contrato;
pub mod navegador;
pub mod proxy;
pub mod server;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};

/// The path of a workspace binary (`bitacora`, `bitacora-server`), building it once if this
/// test run did not (e.g. `cargo test -p bitacora-tests` alone).
pub fn bin(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    let dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent()?.parent().map(Path::to_path_buf))
        .expect("test executable lives in target/<profile>/deps");
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "build",
                "--bins",
                "-p",
                "bitacora-cli",
                "-p",
                "bitacora-server",
            ])
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build of the binaries failed");
    });
    path
}

/// A test knob from the environment (a seed, a number of rounds), or its default.
pub fn env_or<T: std::str::FromStr>(name: &str, default: impl FnOnce() -> T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(default)
}

/// One replica: the `bitacora` CLI over its own data directory.
pub struct Replica {
    pub dir: PathBuf,
    pub env: Vec<(String, String)>,
}

impl Replica {
    pub fn new(dir: impl Into<PathBuf>) -> Replica {
        Replica {
            dir: dir.into(),
            env: Vec::new(),
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin("bitacora"));
        c.arg("--data-dir").arg(&self.dir).args(args);
        c.env_remove("BITACORA_DATA_DIR");
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    pub fn run(&self, args: &[&str]) -> Result<Output> {
        self.command(args).output().context("running bitacora")
    }

    /// Runs and requires success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> Result<String> {
        let out = self.run(args)?;
        if !out.status.success() {
            bail!(
                "bitacora {:?} failed ({}): {}{}",
                args,
                out.status,
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout)
            );
        }
        Ok(String::from_utf8(out.stdout)?)
    }

    /// Every change hash this replica holds, from `historial --json`.
    pub fn hashes(&self) -> Result<std::collections::BTreeSet<String>> {
        let h = self.json(&["historial"])?;
        Ok(h.as_array()
            .context("historial is a list")?
            .iter()
            .filter_map(|e| e["hash"].as_str().map(str::to_string))
            .collect())
    }

    /// The sorted heads of a document in this replica's store.
    pub async fn heads(
        &self,
        id: &bitacora_core::ids::DocumentId,
    ) -> Result<Vec<bitacora_core::automerge::ChangeHash>> {
        let store = bitacora_core::store::Store::open(&self.dir).await?;
        let doc = store.load(id).await;
        store.close().await;
        let mut doc = doc?.with_context(|| format!("{id} not in {}", self.dir.display()))?;
        let mut h = doc.get_heads();
        h.sort();
        Ok(h)
    }

    /// Runs with `--json` and parses stdout.
    pub fn json(&self, args: &[&str]) -> Result<serde_json::Value> {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        let s = self.ok(&a)?;
        serde_json::from_str(&s).with_context(|| format!("not JSON: {s}"))
    }
}
