//! What the fuzz targets (`fuzz_targets/`) and the seed generator (`examples/seeds.rs`) share:
//! the scene every server-side target runs in ([`escena`]), a template database with that scene
//! copied fresh for every input ([`Plantilla`]), the input format of `sync_server`
//! ([`guion`]) and the keys of `token` ([`claves`]). See docs/fuzzing.md.

pub mod claves;
pub mod escena;
pub mod guion;

use std::path::{Path, PathBuf};
use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};

use bitacora_core::ids::CicloEscolar;
use bitacora_server::config::{Config, Secret};
use bitacora_server::db::Database;

/// A single-threaded runtime: each input runs to completion inside one `block_on`, so what the
/// server spawns (its blocking pool aside) runs in a deterministic order.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A server configuration for the scene: HS256 with [`escena::SECRETO`], a small frame limit
/// (so the fuzzer can reach the "exceeds the limit" path) and data in `dir`.
pub fn config(dir: &Path) -> Config {
    let mut c = Config {
        data_dir: dir.to_path_buf(),
        ..Default::default()
    };
    c.jwt.secret = Some(Secret::new(escena::SECRETO));
    c.limits.max_message_bytes = escena::LIMITE_MENSAJE;
    c
}

/// A migrated SQLite database holding the scene, built once per process; every input gets a
/// copy of it ([`Plantilla::abrir`]), so every input starts from the same state and a crashing
/// input replays the same way on its own.
pub struct Plantilla {
    /// Removed with the process's temporary directory (`scripts/fuzz` points `TMPDIR` at a
    /// scratch directory, on `/dev/shm` when there is one, and removes it afterwards).
    dir: tempfile::TempDir,
    archivo: PathBuf,
    copias: AtomicU64,
}

/// One input's copy of the template database.
pub struct Copia {
    pub db: Database,
    archivo: PathBuf,
}

impl Plantilla {
    pub async fn crear() -> Plantilla {
        let dir = tempfile::Builder::new()
            .prefix("bitacora-fuzz-")
            .tempdir()
            .expect("temporary directory");
        let archivo = dir.path().join("plantilla.db");
        let db = Database::connect(&format!("sqlite://{}", archivo.display()))
            .await
            .expect("template database");
        escena::registrar(&db).await;
        db.close().await;
        Plantilla {
            dir,
            archivo,
            copias: AtomicU64::new(0),
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A fresh copy of the template, open.
    pub async fn abrir(&self) -> Copia {
        let n = self.copias.fetch_add(1, Ordering::Relaxed);
        let archivo = self.dir.path().join(format!("copia-{n}.db"));
        std::fs::copy(&self.archivo, &archivo).expect("copy the template database");
        let db = Database::connect_sqlite(&archivo)
            .await
            .expect("open the copy");
        Copia { db, archivo }
    }
}

impl Copia {
    pub async fn cerrar(self) {
        self.db.close().await;
        for sufijo in ["", "-wal", "-shm"] {
            let mut p = self.archivo.clone().into_os_string();
            p.push(sufijo);
            let _ = std::fs::remove_file(p);
        }
    }
}

/// The ciclo of every document of the scene.
pub fn ciclo() -> CicloEscolar {
    CicloEscolar::parse(escena::CICLO).expect("literal")
}

/// Panics raised inside automerge (or its column codec, hexane) so far.
pub static PANICOS_DE_AUTOMERGE: AtomicU64 = AtomicU64::new(0);

/// The panic policy of the targets that hand outside bytes to automerge (`sync_server`,
/// `bundle_import`). automerge 0.12 still panics on some malformed input instead of returning an
/// error, and the code under test catches that where it parses outside bytes
/// (`protocol::changes::sin_panico`, the hub's `catch_unwind`). libfuzzer-sys's hook aborts at
/// the panic itself, before anything can catch it; this one lets a panic *located in automerge*
/// unwind, so the code under test gets to handle it. If nothing does, it still reaches the
/// fuzz target's own `catch_unwind` and aborts there, a crash like any other. Every other panic
/// aborts at once, as before.
pub fn tolerar_panicos_atrapados_de_automerge() {
    static UNA_VEZ: Once = Once::new();
    UNA_VEZ.call_once(|| {
        let previo = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let de_automerge = info.location().is_some_and(|l| {
                l.file().split(['/', '\\']).any(|parte| {
                    ["automerge-", "hexane-"].iter().any(|c| {
                        parte
                            .strip_prefix(c)
                            .is_some_and(|v| v.starts_with(|d: char| d.is_ascii_digit()))
                    })
                })
            });
            if de_automerge {
                let n = PANICOS_DE_AUTOMERGE.fetch_add(1, Ordering::Relaxed);
                if n < 3 {
                    eprintln!("automerge panicked ({info}); letting the code under test catch it");
                }
                return;
            }
            previo(info);
        }));
    });
}
