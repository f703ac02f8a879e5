//! The fleet scenario: Z schools × D devices, each device E operations offline on top of the
//! school's shared history, then every device syncs at once; each stays connected until it
//! holds every change of its school (the server relays what the others uploaded).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bitacora_core::automerge::{AutoCommit, ChangeHash};
use bitacora_core::ids::DocumentId;
use bitacora_core::model::escuela;
use bitacora_escenario::ciclo::{DOCENTES, Escritor, INICIO_CICLO};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::cliente::{Conexion, Destino, cabezas};
use crate::medida::{Muestreo, Percentiles, Proceso};
use crate::plan::{self, Credenciales};

#[derive(Debug, Clone)]
pub struct Opciones {
    pub escuelas: usize,
    pub dispositivos: usize,
    pub ediciones: usize,
    pub base: usize,
    pub plazo: Duration,
    pub pid: Option<u32>,
}

/// One school's documents, built before anything is sent.
struct Escuela {
    z: usize,
    id: DocumentId,
    base: AutoCommit,
    dispositivos: Vec<AutoCommit>,
    /// The heads of the merge of everything: where every device must end.
    esperado: Vec<ChangeHash>,
    /// Σ over devices of (its own new changes + the others' it lacks), as `save_after` bytes:
    /// the least a sync can move for this school.
    cota_save_after: u64,
    /// The same changes in the compressed document format: `save()` of the merged document
    /// minus `save()` of the shared history, counted once per device that uploads or downloads
    /// them (for reference).
    cota_documento: u64,
}

fn construir(
    z: usize,
    id: DocumentId,
    semilla: u64,
    o: &Opciones,
) -> Result<Escuela, bitacora_core::ModelError> {
    let mut base = escuela::genesis_escuela(&plan::cct(z), plan::ciclo())?
        .with_actor(plan::actor(semilla, z, 0));
    let mut w = Escritor::nuevo(&base, plan::semilla_de(semilla, z, usize::MAX), DOCENTES[0]);
    w.pasos(&mut base, o.base)?;
    let ahora = w.ahora.max(INICIO_CICLO);
    let cabezas_base = base.get_heads();
    let mut dispositivos = Vec::new();
    for d in 0..o.dispositivos {
        let mut doc = base.fork().with_actor(plan::actor(semilla, z, d));
        let mut w = Escritor::nuevo(&doc, plan::semilla_de(semilla, z, d), DOCENTES[d % 6]);
        w.ahora = ahora;
        w.pasos(&mut doc, o.ediciones)?;
        dispositivos.push(doc);
    }
    let mut todo = base.clone();
    for d in &dispositivos {
        todo.merge(&mut d.clone())?;
    }
    let mut cota = 0u64;
    for d in &mut dispositivos {
        cota += d.save_after(&cabezas_base).len() as u64;
        cota += todo.save_after(&d.get_heads()).len() as u64;
    }
    let marginal = todo.save().len().saturating_sub(base.save().len()) as u64;
    Ok(Escuela {
        z,
        id,
        esperado: cabezas(&mut todo),
        base,
        dispositivos,
        cota_save_after: cota,
        // Each device uploads its share and downloads the rest: every change crosses the wire
        // once up and (D - 1) times down, D times in all.
        cota_documento: marginal * o.dispositivos as u64,
    })
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Informe {
    pub servidor: String,
    pub generico: bool,
    pub escuelas: usize,
    pub dispositivos: usize,
    pub ediciones: usize,
    pub base: usize,
    /// From the moment every device starts connecting until the last one holds every change of
    /// its school, seconds.
    pub convergencia_s: f64,
    /// Device syncs (connect, handshake, exchange until both sides hold the same heads).
    pub sincronizaciones: usize,
    /// `sincronizaciones` over the time until the last one finished.
    pub sincronizaciones_por_s: f64,
    /// Per device: from starting to connect until its first in-sync state.
    pub latencia_ms: Percentiles,
    /// Per school, mean over schools: TCP bytes both ways (HTTP upgrade and WebSocket framing
    /// included) of all its devices.
    pub bytes_por_escuela: f64,
    /// Per school, mean: the `save_after` bound (see `Escuela::cota_save_after`).
    pub cambios_por_escuela: f64,
    /// `bytes_por_escuela / cambios_por_escuela`.
    pub razon_bytes: f64,
    /// Per school, mean: the document-format bound.
    pub cambios_documento_por_escuela: f64,
    /// Per school, mean: `sync`/`request` messages its devices sent (each waits for an answer).
    pub viajes_por_escuela: f64,
    pub viajes_por_dispositivo: f64,
    pub proceso: Option<Proceso>,
    /// Seconds spent building the documents (not part of any figure).
    pub preparacion_s: f64,
}

struct Resultado {
    z: usize,
    latencia: Duration,
    convergencia: Duration,
    bytes: u64,
    mensajes: u64,
}

#[allow(clippy::too_many_arguments)]
async fn dispositivo(
    destino: Arc<Destino>,
    token: Option<String>,
    storage: String,
    z: usize,
    id: DocumentId,
    mut doc: AutoCommit,
    esperado: Vec<ChangeHash>,
    t0: Instant,
    limite: Instant,
) -> Result<Resultado> {
    let inicio = Instant::now();
    let mut c = Conexion::abrir(&destino, token.as_deref(), &storage, limite).await?;
    c.ofrecer(id, &mut doc).await?;
    let (mut latencia, mut convergencia) = (None, None);
    loop {
        let m = tokio::time::timeout_at(limite, c.recibir())
            .await
            .with_context(|| {
                format!(
                    "school {z}: not converged in time ({} of {} heads)",
                    cabezas(&mut doc)
                        .iter()
                        .filter(|h| esperado.contains(h))
                        .count(),
                    esperado.len()
                )
            })??;
        if let Some(m) = m {
            c.atender(id, &mut doc, m, false).await?;
        }
        if latencia.is_none() && c.en_sync(&id, &mut doc) {
            latencia = Some(inicio.elapsed());
        }
        if convergencia.is_none() && cabezas(&mut doc) == esperado {
            convergencia = Some(t0.elapsed());
        }
        if let (Some(l), Some(cv)) = (latencia, convergencia) {
            let (bytes, mensajes) = (c.bytes.total(), c.mensajes);
            c.cerrar().await;
            return Ok(Resultado {
                z,
                latencia: l,
                convergencia: cv,
                bytes,
                mensajes,
            });
        }
    }
}

pub async fn correr(
    nombre: &str,
    destino: Destino,
    cred: &mut Credenciales,
    o: &Opciones,
) -> Result<Informe> {
    let semilla = cred.semilla;
    if let Some(p) = cred.preparado()
        && (p.escuelas < o.escuelas || p.dispositivos < o.dispositivos)
    {
        bail!(
            "carga.json registers {} schools × {} devices; asked for {} × {}",
            p.escuelas,
            p.dispositivos,
            o.escuelas,
            o.dispositivos
        );
    }
    let preparacion = std::time::Instant::now();
    let mut tareas = Vec::new();
    for z in 0..o.escuelas {
        let id = cred.documento(z);
        let o = o.clone();
        tareas.push(tokio::task::spawn_blocking(move || {
            construir(z, id, semilla, &o)
        }));
    }
    let mut escuelas = Vec::new();
    for t in tareas {
        escuelas.push(t.await??);
    }
    let preparacion_s = preparacion.elapsed().as_secs_f64();
    eprintln!(
        "flota: {} schools × {} devices × {} operations on a history of {} built in {preparacion_s:.1} s",
        o.escuelas, o.dispositivos, o.ediciones, o.base
    );
    let destino = Arc::new(destino);

    // The shared history reaches the server first (device 0 of each school), untimed.
    let limite = Instant::now() + o.plazo;
    let cupo = Arc::new(Semaphore::new(8));
    let mut siembra = Vec::new();
    for e in &escuelas {
        let (destino, cupo) = (destino.clone(), cupo.clone());
        let token = cred.token(e.z, 0)?;
        let storage = plan::storage_id(semilla, e.z, 0);
        let (id, mut doc) = (e.id, e.base.clone());
        siembra.push(tokio::spawn(async move {
            let _permiso = cupo.acquire().await?;
            let mut c = Conexion::abrir(&destino, token.as_deref(), &storage, limite).await?;
            c.sincronizar(id, &mut doc, limite).await?;
            c.cerrar().await;
            anyhow::Ok(())
        }));
    }
    for s in siembra {
        s.await?.context("uploading the shared history")?;
    }
    eprintln!("flota: shared history on the server; every device syncs now");

    let muestreo = o.pid.map(Muestreo::iniciar).transpose()?;
    let t0 = Instant::now();
    let limite = t0 + o.plazo;
    let mut tareas = Vec::new();
    for e in &mut escuelas {
        for (d, doc) in std::mem::take(&mut e.dispositivos).into_iter().enumerate() {
            tareas.push(tokio::spawn(dispositivo(
                destino.clone(),
                cred.token(e.z, d)?,
                plan::storage_id(semilla, e.z, d),
                e.z,
                e.id,
                doc,
                e.esperado.clone(),
                t0,
                limite,
            )));
        }
    }
    let mut resultados = Vec::new();
    let mut fallos = Vec::new();
    for t in tareas {
        match t.await? {
            Ok(r) => resultados.push(r),
            Err(e) => fallos.push(format!("{e:#}")),
        }
    }
    let proceso = match muestreo {
        Some(m) => Some(m.terminar().await),
        None => None,
    };
    if !fallos.is_empty() {
        bail!(
            "{} of {} devices failed; first: {}",
            fallos.len(),
            fallos.len() + resultados.len(),
            fallos[0]
        );
    }

    let n = resultados.len();
    let z = o.escuelas as f64;
    let latencias: Vec<Duration> = resultados.iter().map(|r| r.latencia).collect();
    let ultima = latencias.iter().max().copied().unwrap_or_default();
    let convergencia = resultados
        .iter()
        .map(|r| r.convergencia)
        .max()
        .unwrap_or_default();
    let bytes: u64 = resultados.iter().map(|r| r.bytes).sum();
    let mensajes: u64 = resultados.iter().map(|r| r.mensajes).sum();
    let cota: u64 = escuelas.iter().map(|e| e.cota_save_after).sum();
    let cota_doc: u64 = escuelas.iter().map(|e| e.cota_documento).sum();
    debug_assert!(resultados.iter().all(|r| r.z < o.escuelas));
    Ok(Informe {
        servidor: nombre.to_string(),
        generico: cred.generico,
        escuelas: o.escuelas,
        dispositivos: o.dispositivos,
        ediciones: o.ediciones,
        base: o.base,
        convergencia_s: convergencia.as_secs_f64(),
        sincronizaciones: n,
        sincronizaciones_por_s: n as f64 / ultima.as_secs_f64().max(1e-9),
        latencia_ms: Percentiles::de(&latencias),
        bytes_por_escuela: bytes as f64 / z,
        cambios_por_escuela: cota as f64 / z,
        razon_bytes: bytes as f64 / cota.max(1) as f64,
        cambios_documento_por_escuela: cota_doc as f64 / z,
        viajes_por_escuela: mensajes as f64 / z,
        viajes_por_dispositivo: mensajes as f64 / n.max(1) as f64,
        proceso,
        preparacion_s,
    })
}

impl Informe {
    pub fn tabla(&self) -> String {
        let mut s = format!(
            "flota — {} ({}): {} escuelas × {} dispositivos × {} operaciones (historia común de {})\n",
            self.servidor,
            if self.generico {
                "genérico"
            } else {
                "bitácora"
            },
            self.escuelas,
            self.dispositivos,
            self.ediciones,
            self.base
        );
        let l = &self.latencia_ms;
        let filas = [
            ("convergencia", format!("{:.2} s", self.convergencia_s)),
            (
                "sincronizaciones / s",
                format!(
                    "{:.1} ({} en total)",
                    self.sincronizaciones_por_s, self.sincronizaciones
                ),
            ),
            (
                "latencia p50 / p95 / p99",
                format!("{:.0} / {:.0} / {:.0} ms", l.p50, l.p95, l.p99),
            ),
            (
                "bytes por escuela (cable)",
                format!("{:.0}", self.bytes_por_escuela),
            ),
            (
                "cambios nuevos (save_after)",
                format!(
                    "{:.0} (razón {:.2})",
                    self.cambios_por_escuela, self.razon_bytes
                ),
            ),
            (
                "viajes por escuela",
                format!(
                    "{:.1} ({:.1} por dispositivo)",
                    self.viajes_por_escuela, self.viajes_por_dispositivo
                ),
            ),
        ];
        for (k, v) in filas {
            s.push_str(&format!("  {k:<30} {v}\n"));
        }
        if let Some(p) = &self.proceso {
            s.push_str(&p.tabla());
        }
        s
    }
}
