//! `carga`: the load generator of docs/performance.md.
//!
//! It speaks the plain automerge-repo sync protocol (client-core's `Session` over a WebSocket)
//! against a server URL: bitacora-server (bearer tokens and registered documents from
//! `carga preparar`), or with `--generico` any automerge-repo sync server (random document ids,
//! no token, no actor enrolment), so the same workload runs against the reference
//! `@automerge/automerge-repo-sync-server`. The changes are the document model's real
//! operations (`bitacora_escenario::ciclo`), drawn from a seed: the same bytes on every server.
//!
//! - `carga preparar --datos DIR`: registers the workload's zone, schools, docentes (tokens)
//!   and actors in a bitacora-server data directory (SQLite), and writes `DIR/carga.json`.
//! - `carga flota`: Z schools × D devices, E operations offline each, all sync at once.
//!   Time to converge, syncs per second, sync latency, bytes on the wire per school against
//!   the new changes, round trips, server memory and CPU.
//! - `carga vivo`: T teachers co-edit one acuerdo; edit → remote apply latency.
//! - `carga satelite`: one laptop after a cycle offline through the fault proxy at 256 kbit/s
//!   and 600 ms RTT, against the physical bound.
//! - `carga tabla --bitacora DIR --referencia DIR`: the side-by-side markdown table.
//!
//! `--pid` names the server process whose `/proc/<pid>` is sampled during the run. Each run
//! prints a table for people and, with `--json FILE`, writes its report.

#[path = "carga/cliente.rs"]
mod cliente;
#[path = "carga/flota.rs"]
mod flota;
#[path = "carga/medida.rs"]
mod medida;
#[path = "carga/plan.rs"]
mod plan;
#[path = "carga/satelite.rs"]
mod satelite;
#[path = "carga/tabla.rs"]
mod tabla;
#[path = "carga/vivo.rs"]
mod vivo;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use crate::cliente::Destino;
use crate::plan::Credenciales;

#[derive(Parser)]
#[command(
    name = "carga",
    about = "Load generator for automerge-repo sync servers"
)]
struct Cli {
    #[command(subcommand)]
    orden: Orden,
}

#[derive(Subcommand)]
enum Orden {
    /// Register the workload in a bitacora-server data directory (SQLite).
    Preparar {
        #[arg(long)]
        datos: PathBuf,
        #[arg(long, default_value_t = 70)]
        escuelas: usize,
        #[arg(long, default_value_t = 3)]
        dispositivos: usize,
        #[arg(long, default_value_t = 3)]
        maestros: usize,
        #[arg(long, default_value_t = 1)]
        semilla: u64,
    },
    /// Z schools × D devices with E offline operations each, all syncing at once.
    Flota {
        #[command(flatten)]
        comun: Comun,
        #[arg(long, default_value_t = 70)]
        escuelas: usize,
        #[arg(long, default_value_t = 3)]
        dispositivos: usize,
        /// Operations each device makes offline.
        #[arg(long, default_value_t = 50)]
        ediciones: usize,
        /// Operations of the school's shared history, on the server before the run.
        #[arg(long, default_value_t = 300)]
        base: usize,
    },
    /// T teachers typing into one acuerdo at once.
    Vivo {
        #[command(flatten)]
        comun: Comun,
        #[arg(long, default_value_t = 3)]
        maestros: usize,
        /// Edits per teacher.
        #[arg(long, default_value_t = 60)]
        ediciones: usize,
        #[arg(long, default_value_t = 200)]
        intervalo_ms: u64,
        /// Operations of the school's history before the session.
        #[arg(long, default_value_t = 0)]
        base: usize,
    },
    /// One laptop after a cycle offline, through a slow, long link.
    Satelite {
        #[command(flatten)]
        comun: Comun,
        #[arg(long, default_value_t = 256)]
        kbps: u64,
        #[arg(long, default_value_t = 600)]
        rtt_ms: u64,
        /// Operations of the cycle.
        #[arg(long, default_value_t = 5000)]
        pasos: usize,
    },
    /// The side-by-side markdown table from two directories of JSON reports.
    Tabla {
        #[arg(long)]
        bitacora: PathBuf,
        #[arg(long)]
        referencia: PathBuf,
    },
}

#[derive(Args, Clone)]
struct Comun {
    /// The server: `http://127.0.0.1:PORT` (bitacora-server: `/sync` is added).
    #[arg(long)]
    url: String,
    /// Plain automerge-repo: random document ids, no token, no actor enrolment.
    #[arg(long)]
    generico: bool,
    /// bitacora-server: the `carga.json` written by `carga preparar`.
    #[arg(long)]
    preparado: Option<PathBuf>,
    /// A name for the server in the reports.
    #[arg(long, default_value = "servidor")]
    nombre: String,
    /// The seed of the workload (with --preparado, the one it was prepared with).
    #[arg(long, default_value_t = 1)]
    semilla: u64,
    /// The server's process id, sampled in /proc during the run.
    #[arg(long)]
    pid: Option<u32>,
    /// Write the report here as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 600)]
    plazo_s: u64,
}

impl Comun {
    fn preparar(&self) -> Result<(Destino, Credenciales)> {
        Ok((
            Destino::new(&self.url, self.generico)?,
            Credenciales::new(self.generico, self.preparado.as_deref(), self.semilla)?,
        ))
    }

    fn guardar(&self, informe: &impl Serialize, tabla: String) -> Result<()> {
        print!("{tabla}");
        if let Some(p) = &self.json {
            std::fs::write(p, serde_json::to_string_pretty(informe)?)?;
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    match Cli::parse().orden {
        Orden::Preparar {
            datos,
            escuelas,
            dispositivos,
            maestros,
            semilla,
        } => {
            plan::preparar(&datos, escuelas, dispositivos, maestros, semilla).await?;
            println!("preparado: {}", plan::Preparado::archivo(&datos).display());
        }
        Orden::Flota {
            comun,
            escuelas,
            dispositivos,
            ediciones,
            base,
        } => {
            let (destino, mut cred) = comun.preparar()?;
            let o = flota::Opciones {
                escuelas,
                dispositivos,
                ediciones,
                base,
                plazo: Duration::from_secs(comun.plazo_s),
                pid: comun.pid,
            };
            let i = flota::correr(&comun.nombre, destino, &mut cred, &o).await?;
            comun.guardar(&i, i.tabla())?;
        }
        Orden::Vivo {
            comun,
            maestros,
            ediciones,
            intervalo_ms,
            base,
        } => {
            let (destino, mut cred) = comun.preparar()?;
            let o = vivo::Opciones {
                maestros,
                ediciones,
                base,
                intervalo: Duration::from_millis(intervalo_ms),
                plazo: Duration::from_secs(comun.plazo_s),
                pid: comun.pid,
            };
            let i = vivo::correr(&comun.nombre, destino, &mut cred, &o).await?;
            comun.guardar(&i, i.tabla())?;
        }
        Orden::Satelite {
            comun,
            kbps,
            rtt_ms,
            pasos,
        } => {
            let (destino, mut cred) = comun.preparar()?;
            let o = satelite::Opciones {
                kbps,
                rtt: Duration::from_millis(rtt_ms),
                pasos,
                plazo: Duration::from_secs(comun.plazo_s),
                pid: comun.pid,
            };
            let i = satelite::correr(&comun.nombre, destino, &mut cred, &o).await?;
            comun.guardar(&i, i.tabla())?;
        }
        Orden::Tabla {
            bitacora,
            referencia,
        } => print!("{}", tabla::tabla(&bitacora, &referencia)?),
    }
    Ok(())
}
