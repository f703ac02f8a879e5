//! The commands: parse the arguments with the domain newtypes, apply one model operation
//! through [`App::escribir`], print Spanish text or `--json`.

use std::io::{IsTerminal, Write};
use std::path::Path;

use anyhow::{Context, Result};
use bitacora_core::ModelError;
use bitacora_core::bundle::{self, Bundle};
use bitacora_core::catalogo::Catalogo;
use bitacora_core::engine;
use bitacora_core::ids::{Cct, CicloEscolar, DocumentId, Fecha, RecordId, ZonaClave};
use bitacora_core::model::escuela::{
    self, Acuerdo, Corte, EstadoAccion, EstadoAcuerdo, Fase, NivelLogro,
};
use bitacora_core::model::{DocKind, historial};
// The model's conflicts module; `conflictos` here is the command group.
use bitacora_core::model::conflictos as model_conflictos;
use bitacora_core::resumen;
use bitacora_core::store::{DocInfo, Store};
use serde::Serialize;

use crate::app::{self, App, ahora, claves, nuevo_id, uso};
use crate::cli::*;

// One file per command group; what several groups share (argument parsing, printing,
// archiving, atomic file writes) stays here.
mod acuerdo;
mod concentrado;
mod conflictos;
mod informes;
mod init;
mod paquete;
mod pemc;
mod sesion;
mod sync;
mod zona;

use acuerdo::cmd_acuerdo;
use concentrado::cmd_concentrado;
use conflictos::cmd_conflictos;
use informes::{cmd_export_json, cmd_historial, cmd_resumen};
use init::cmd_init;
use paquete::cmd_bundle;
use pemc::cmd_pemc;
use sesion::cmd_sesion;
use sync::{cmd_estado, cmd_login, cmd_sync, cmd_sync_watch, credenciales};
use zona::cmd_practica;

pub async fn run(cli: Cli) -> Result<()> {
    let dir = app::data_dir(cli.data_dir.as_deref())?;
    let json = cli.json;
    if let Comando::Init(init) = &cli.comando {
        return cmd_init(&dir, init, cli.ciclo.as_deref(), json).await;
    }
    let mut app = App::abrir(&dir, cli.ciclo.as_deref()).await?;
    match cli.comando {
        Comando::Init(_) => unreachable!("handled above"),
        Comando::Pemc(p) => cmd_pemc(&mut app, p, json).await,
        Comando::Sesion(s) => cmd_sesion(&mut app, s, json).await,
        Comando::Acuerdo(a) => cmd_acuerdo(&mut app, a, json).await,
        Comando::Grupo(GrupoCmd::Concentrado(c)) => cmd_concentrado(&mut app, c, json).await,
        Comando::Conflictos(c) => cmd_conflictos(&mut app, c, json).await,
        Comando::Historial(h) => cmd_historial(&mut app, h, json),
        Comando::Resumen(r) => cmd_resumen(&app, r, json),
        Comando::Export(ExportCmd::Json { salida }) => cmd_export_json(&app, salida.as_deref()),
        Comando::Bundle(b) => cmd_bundle(&app, b, json).await,
        Comando::Zona(ZonaCmd::Practica(p)) => cmd_practica(&app, p, json).await,
        Comando::Login { servidor, token } => cmd_login(&app, &servidor, &token, json).await,
        Comando::Sync { watch: false } => cmd_sync(&app, json).await,
        Comando::Sync { watch: true } => cmd_sync_watch(&app).await,
        Comando::Estado => cmd_estado(&app, json).await,
    }
}

fn imprimir_json<T: Serialize>(v: &T) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v)?;
    writeln!(out)?;
    Ok(())
}

fn id(s: &str) -> Result<RecordId> {
    Ok(RecordId::parse(s)?)
}

/// Makes a model error about a typed value name the field as the person knows it (e.g.
/// "fecha compromiso" rather than the model's "fecha"); other errors pass through.
fn rotular(campo: &'static str) -> impl Fn(ModelError) -> ModelError {
    move |e| match e {
        ModelError::Invalid {
            valor, esperado, ..
        } => ModelError::Invalid {
            campo,
            valor,
            esperado,
        },
        otro => otro,
    }
}

/// A date typed in the option that `campo` names.
fn fecha(s: &str, campo: &'static str) -> Result<Fecha> {
    Ok(Fecha::parse(s).map_err(rotular(campo))?)
}

fn fecha_opt(s: Option<&str>, campo: &'static str) -> Result<Option<Fecha>> {
    s.map(|s| fecha(s, campo)).transpose()
}

/// A model error about a count names the option that sets it (`--apoyo-lectura`), not the
/// model's key (`apoyo_lectura`).
fn rotular_conteo(e: ModelError) -> ModelError {
    match &e {
        ModelError::Invalid { campo, .. } => match Conteos::opcion(campo) {
            Some(opcion) => rotular(opcion)(e),
            None => e,
        },
        _ => e,
    }
}

fn hoy() -> Fecha {
    Fecha::from_naive(chrono::Local::now().date_naive())
}

fn corto(s: &str, n: usize) -> String {
    let una_linea = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if una_linea.chars().count() <= n {
        una_linea
    } else {
        format!("{}…", una_linea.chars().take(n - 1).collect::<String>())
    }
}

fn o_guion(s: Option<&str>) -> &str {
    s.unwrap_or("—")
}

/// Archives a record of the school document (PEMC items, sessions, acuerdos).
async fn archivar(app: &mut App, tipo: &str, rid: &str) -> Result<()> {
    let rid = id(rid)?;
    app.escribir(|doc, ctx| escuela::archivar_registro(doc, ctx, tipo, &rid, true))
        .await?;
    println!("Archivado {tipo} {rid} (se conserva en el historial y con --archivados).");
    Ok(())
}

/// Writes a file completely or not at all: a temporary file beside it, then a rename.
fn escribir_atomico(destino: &Path, datos: &[u8]) -> Result<()> {
    if destino.is_dir() {
        return Err(uso(format!(
            "{} es un directorio; indique un nombre de archivo",
            destino.display()
        )));
    }
    let dir = destino
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("no se puede escribir en {}", dir.display()))?;
    tmp.write_all(datos)?;
    tmp.as_file().sync_all()?;
    tmp.persist(destino)
        .with_context(|| format!("no se pudo escribir {}", destino.display()))?;
    Ok(())
}

/// How long a plain HTTP call to the server (documents, enrolment) may take.
const LIMITE_HTTP: std::time::Duration = std::time::Duration::from_secs(30);
/// How long a sync or a bundle transfer may take.
const LIMITE_SYNC: std::time::Duration = std::time::Duration::from_secs(300);
