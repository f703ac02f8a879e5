//! `backup_restore`: the backup and restore procedures of docs/operations.md ("Backup and
//! restore"), run as written, on the real `bitacora-server` binary.
//!
//! A teacher writes acuerdos and syncs; the server's database is backed up while it serves;
//! she writes once more and the server confirms it; the server is gone. The backup is restored
//! into a fresh place and a server started on it: a new laptop of the same teacher (same token:
//! the registry came back too) syncs and holds every change the backup had; the first laptop
//! syncs and gives the server back the change the backup missed; then both laptops hold the
//! same changes.
//!
//! - `backup_restore_sqlite`: `bitacora-server admin respaldo --salida FILE` (VACUUM INTO), then
//!   the file copied in as `servidor.db` of a new data directory.
//! - `backup_restore_postgres`: `pg_dump --format=custom`, `createdb`, `pg_restore` into a
//!   database `restore_test_<random>` (dropped at the end, as is the source database). Needs
//!   `BITACORA_TEST_DATABASE_URL` (a database whose server lets this user create databases) and
//!   the PostgreSQL client programs; without the variable it says loudly that it skipped.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use bitacora_tests::Replica;
use bitacora_tests::server::{PG_URL_VAR, ServerInstall};

const CCT: &str = "07DPR0001A";
const ZONA: &str = "07FIZ0014";
const PLAZO: Duration = Duration::from_secs(60);
const ACUERDOS: [&str; 3] = [
    "Revisar la asistencia cada viernes",
    "Leer 20 minutos diarios en todos los grupos",
    "Informar a las familias en la junta de noviembre",
];

/// Sets up the registry through `admin`, as an operator does; returns the teacher's token.
async fn registro(srv: &ServerInstall) -> Result<String> {
    srv.escena_docente(ZONA, CCT, "ana").await
}

fn laptop(dir: &Path, url: &str, token: &str) -> Result<Replica> {
    let r = Replica::new(dir);
    r.ok(&[
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
    r.ok(&["login", "--servidor", url, "--token", token])?;
    Ok(r)
}

fn textos(r: &Replica) -> Result<Vec<String>> {
    let mut v: Vec<String> = r
        .json(&["acuerdo", "list"])?
        .as_array()
        .context("acuerdo list")?
        .iter()
        .filter_map(|a| a["texto"].as_str().map(str::to_string))
        .collect();
    v.sort();
    Ok(v)
}

/// Before the backup: acuerdos written and confirmed by the server (`sync` exits 0 only then).
fn escribir(ana: &Replica) -> Result<()> {
    for t in ACUERDOS {
        ana.ok(&["acuerdo", "add", "--texto", t])?;
    }
    let id = ana.json(&["acuerdo", "list"])?[0]["id"]
        .as_str()
        .context("id")?
        .to_string();
    ana.ok(&["acuerdo", "estado", &id, "en_proceso"])?;
    ana.ok(&["sync"])?;
    Ok(())
}

/// After the backup, before the old server goes: one more change, confirmed by it. The backup
/// does not have it; the laptop does.
fn despues_del_respaldo(ana: &Replica) -> Result<()> {
    ana.ok(&["acuerdo", "add", "--texto", POSTERIOR])?;
    ana.ok(&["sync"])?;
    Ok(())
}

const POSTERIOR: &str = "Escrito después del respaldo";

/// After the restore: a new laptop gets everything the backup held; the first laptop, at its
/// next sync, gives the restored server back what the backup missed; then both hold the same.
fn comprobar(
    tmp: &Path,
    url: &str,
    token: &str,
    ana: &Replica,
    respaldado: &BTreeSet<String>,
) -> Result<()> {
    let nueva = laptop(&tmp.join("laptop-nueva"), url, token)?;
    nueva.ok(&["sync"])?;
    // (The new laptop also holds its own `init` change, which it has just sent.)
    let de_nueva = nueva.hashes()?;
    ensure!(
        de_nueva.is_superset(respaldado),
        "the restored server gave the new laptop every change it had; missing: {:?}",
        respaldado.difference(&de_nueva).collect::<Vec<_>>()
    );
    let mut esperados: Vec<String> = ACUERDOS.iter().map(|s| s.to_string()).collect();
    esperados.sort();
    assert_eq!(textos(&nueva)?, esperados, "what the backup held, no more");

    // The first laptop still holds the change the backup missed, and sends it.
    ana.ok(&["login", "--servidor", url, "--token", token])?;
    ana.ok(&["sync"])?;
    nueva.ok(&["sync"])?;
    let (de_nueva, de_ana) = (nueva.hashes()?, ana.hashes()?);
    ensure!(
        de_nueva.is_superset(&de_ana),
        "missing after the first laptop synced: {:?}",
        de_ana.difference(&de_nueva).collect::<Vec<_>>()
    );
    esperados.push(POSTERIOR.to_string());
    esperados.sort();
    assert_eq!(textos(&nueva)?, esperados);
    ana.ok(&["sync"])?;
    assert_eq!(nueva.hashes()?, ana.hashes()?, "both laptops hold the same");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_restore_sqlite() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    std::fs::create_dir_all(tmp.path().join("origen"))?;
    let origen = ServerInstall::new(&tmp.path().join("origen"), None)?;
    let token = registro(&origen).await?;
    let srv = origen.serve(PLAZO).await?;
    let ana = laptop(&tmp.path().join("ana"), &srv.url, &token)?;
    escribir(&ana)?;
    let respaldado = ana.hashes()?;

    // The backup, taken while the server keeps serving.
    let respaldo = tmp.path().join("respaldo-2025-11-22.db");
    let dicho = origen
        .admin(&["respaldo", "--salida", &respaldo.to_string_lossy()])
        .await?;
    ensure!(dicho.starts_with("Respaldo escrito en"), "{dicho}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let modo = std::fs::metadata(&respaldo)?.permissions().mode() & 0o777;
        assert_eq!(modo, 0o600, "the backup is readable by the operator only");
    }
    // A second backup never overwrites the first.
    let otra = origen
        .command()
        .args(["admin", "respaldo", "--salida"])
        .arg(&respaldo)
        .output()
        .await?;
    assert_eq!(otra.status.code(), Some(2), "an existing file is refused");
    despues_del_respaldo(&ana)?;
    srv.kill().await?;

    // The restore: a new machine, the file copied in as the server's database.
    let destino = tmp.path().join("destino");
    std::fs::create_dir_all(&destino)?;
    let nuevo = ServerInstall::new(&destino, None)?;
    std::fs::create_dir_all(&nuevo.data)?;
    std::fs::copy(&respaldo, nuevo.data.join("servidor.db"))?;
    let srv = nuevo.serve(PLAZO).await?;
    comprobar(tmp.path(), &srv.url, &token, &ana, &respaldado)?;
    srv.kill().await?;
    Ok(())
}

/// `postgres://user@host:port/db?params` with another database name.
fn con_base(url: &str, base: &str) -> Result<String> {
    let (sin_query, query) = match url.split_once('?') {
        Some((u, q)) => (u, format!("?{q}")),
        None => (url, String::new()),
    };
    let inicio = sin_query.find("://").context("a URL")? + 3;
    let raiz = match sin_query[inicio..].find('/') {
        Some(i) => &sin_query[..inicio + i],
        None => sin_query,
    };
    Ok(format!("{raiz}/{base}{query}"))
}

fn correr(programa: &str, args: &[&str]) -> Result<()> {
    let out = Command::new(programa)
        .args(args)
        .output()
        .with_context(|| format!("running {programa} (PostgreSQL client programs)"))?;
    ensure!(
        out.status.success(),
        "{programa} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// Databases this test created; dropped when it ends, whatever happened.
struct Bases {
    mantenimiento: String,
    nombres: Vec<String>,
}

impl Bases {
    fn crear(&mut self, nombre: &str) -> Result<()> {
        correr(
            "createdb",
            &[&format!("--maintenance-db={}", self.mantenimiento), nombre],
        )?;
        self.nombres.push(nombre.to_string());
        Ok(())
    }
}

impl Drop for Bases {
    fn drop(&mut self) {
        for n in &self.nombres {
            let r = correr(
                "dropdb",
                &[
                    "--if-exists",
                    "--force",
                    &format!("--maintenance-db={}", self.mantenimiento),
                    n,
                ],
            );
            if let Err(e) = r {
                eprintln!("could not drop the test database {n}: {e:#}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_restore_postgres() -> Result<()> {
    let Ok(url) = std::env::var(PG_URL_VAR) else {
        let aviso = format!(
            "\n{borde}\n* backup_restore_postgres SKIPPED: {PG_URL_VAR} is unset.\n\
             * The PostgreSQL backup and restore were NOT tested.\n{borde}\n\n",
            borde = "*".repeat(72)
        );
        let _ = std::io::Write::write_all(&mut std::io::stderr(), aviso.as_bytes());
        return Ok(());
    };
    let sufijo = format!("{:016x}", rand::random::<u64>());
    let (fuente, restaurada) = (
        format!("restore_src_{sufijo}"),
        format!("restore_test_{sufijo}"),
    );
    let mut bases = Bases {
        mantenimiento: url.clone(),
        nombres: Vec::new(),
    };
    bases.crear(&fuente)?;
    let url_fuente = con_base(&url, &fuente)?;
    let url_restaurada = con_base(&url, &restaurada)?;

    let tmp = tempfile::tempdir()?;
    std::fs::create_dir_all(tmp.path().join("origen"))?;
    let origen = ServerInstall::new(&tmp.path().join("origen"), Some(url_fuente.clone()))?;
    let token = registro(&origen).await?;
    let srv = origen.serve(PLAZO).await?;
    let ana = laptop(&tmp.path().join("ana"), &srv.url, &token)?;
    escribir(&ana)?;
    let respaldado = ana.hashes()?;

    // The backup, while the server serves (pg_dump reads one consistent snapshot).
    let volcado = tmp.path().join("bitacora.dump");
    correr(
        "pg_dump",
        &[
            "--format=custom",
            &format!("--file={}", volcado.display()),
            &format!("--dbname={url_fuente}"),
        ],
    )?;
    despues_del_respaldo(&ana)?;
    srv.kill().await?;

    // The restore, into a database that did not exist.
    bases.crear(&restaurada)?;
    correr(
        "pg_restore",
        &[
            "--no-owner",
            "--exit-on-error",
            &format!("--dbname={url_restaurada}"),
            &volcado.to_string_lossy(),
        ],
    )?;
    std::fs::create_dir_all(tmp.path().join("destino"))?;
    let nuevo = ServerInstall::new(&tmp.path().join("destino"), Some(url_restaurada))?;
    let srv = nuevo.serve(PLAZO).await?;
    comprobar(tmp.path(), &srv.url, &token, &ana, &respaldado)?;
    srv.kill().await?;
    drop(bases);
    Ok(())
}
