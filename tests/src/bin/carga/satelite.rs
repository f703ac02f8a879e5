//! The satellite scenario: one laptop holding a whole cycle of a school's work (built with the
//! model's operations) syncs through the fault proxy (`bitacora_tests::proxy::FaultProxy`) set
//! to a geostationary link: a bandwidth cap per direction and a round trip. Compared with the
//! physical bound: the bytes that crossed over the bandwidth, plus one round trip.

use std::time::Duration;

use anyhow::{Context, Result};
use bitacora_core::model::escuela;
use bitacora_escenario::ciclo::escuela_tras_ciclo;
use bitacora_tests::proxy::{FaultProxy, Faults};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::cliente::{Conexion, Destino};
use crate::medida::{Muestreo, Proceso};
use crate::plan::{self, Credenciales, ESCUELA_SATELITE};

#[derive(Debug, Clone)]
pub struct Opciones {
    pub kbps: u64,
    pub rtt: Duration,
    pub pasos: usize,
    pub plazo: Duration,
    pub pid: Option<u32>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Informe {
    pub servidor: String,
    pub generico: bool,
    pub kbps: u64,
    pub rtt_ms: u64,
    pub pasos: usize,
    pub cambios: usize,
    /// TCP bytes through the proxy, client to server and back (HTTP upgrade included).
    pub bytes_subida: u64,
    pub bytes_bajada: u64,
    /// The new changes as `save_after(genesis)` and as a compressed document (`save()`).
    pub cambios_save_after: u64,
    pub documento_save: u64,
    /// From the TCP connect until both sides hold the same heads.
    pub duracion_s: f64,
    /// (bytes_subida + bytes_bajada) / bandwidth + one round trip.
    pub cota_s: f64,
    pub razon: f64,
    /// The same bound with only the compressed new changes (`save_after`) on the wire.
    pub cota_cambios_s: f64,
    pub viajes: u64,
    pub proceso: Option<Proceso>,
}

impl Informe {
    pub fn tabla(&self) -> String {
        let mut s = format!(
            "satélite — {} ({}): {} kbit/s, RTT {} ms, un ciclo ({} cambios)\n",
            self.servidor,
            if self.generico {
                "genérico"
            } else {
                "bitácora"
            },
            self.kbps,
            self.rtt_ms,
            self.cambios
        );
        let filas = [
            ("duración", format!("{:.2} s", self.duracion_s)),
            (
                "cota física (bytes/ancho + RTT)",
                format!("{:.2} s (razón {:.2})", self.cota_s, self.razon),
            ),
            (
                "bytes subida / bajada",
                format!("{} / {}", self.bytes_subida, self.bytes_bajada),
            ),
            (
                "cambios: save_after / save()",
                format!("{} / {}", self.cambios_save_after, self.documento_save),
            ),
            (
                "cota con solo save_after",
                format!("{:.2} s", self.cota_cambios_s),
            ),
            ("viajes", self.viajes.to_string()),
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

pub async fn correr(
    nombre: &str,
    destino: Destino,
    cred: &mut Credenciales,
    o: &Opciones,
) -> Result<Informe> {
    let semilla = cred.semilla;
    let z = ESCUELA_SATELITE;
    let id = cred.documento(z);
    let pasos = o.pasos;
    let (mut doc, cambios, save_after, save) = tokio::task::spawn_blocking(move || {
        let mut doc = escuela_tras_ciclo(
            &plan::cct(z),
            plan::ciclo(),
            plan::actor(semilla, z, 0),
            pasos,
            plan::semilla_de(semilla, z, 0),
        )?;
        let genesis = escuela::genesis_escuela(&plan::cct(z), plan::ciclo())?.get_heads();
        let cambios = doc.get_changes(&genesis).len();
        let save_after = doc.save_after(&genesis).len() as u64;
        let save = doc.save().len() as u64;
        anyhow::Ok((doc, cambios, save_after, save))
    })
    .await??;
    let objetivo = tokio::net::lookup_host(&destino.addr)
        .await?
        .next()
        .with_context(|| format!("resolving {}", destino.addr))?;
    let bytes_por_s = o.kbps * 1000 / 8;
    let proxy = FaultProxy::start(
        objetivo,
        Faults {
            latency: o.rtt / 2,
            bytes_per_sec: Some(bytes_por_s),
            ..Faults::default()
        },
    )
    .await?;
    let via = destino.via(&proxy.addr.to_string());
    let muestreo = o.pid.map(Muestreo::iniciar).transpose()?;
    let t0 = Instant::now();
    let limite = t0 + o.plazo;
    let mut c = Conexion::abrir(
        &via,
        cred.token(z, 0)?.as_deref(),
        &plan::storage_id(semilla, z, 0),
        limite,
    )
    .await?;
    c.sincronizar(id, &mut doc, limite).await?;
    let duracion = t0.elapsed();
    let contadores = proxy.counters();
    let viajes = c.mensajes;
    c.cerrar().await;
    proxy.stop().await;
    let proceso = match muestreo {
        Some(m) => Some(m.terminar().await),
        None => None,
    };
    let (subida, bajada) = (contadores.bytes_to_target, contadores.bytes_to_client);
    let cota = (subida + bajada) as f64 / bytes_por_s as f64 + o.rtt.as_secs_f64();
    Ok(Informe {
        servidor: nombre.to_string(),
        generico: cred.generico,
        kbps: o.kbps,
        rtt_ms: o.rtt.as_millis() as u64,
        pasos,
        cambios,
        bytes_subida: subida,
        bytes_bajada: bajada,
        cambios_save_after: save_after,
        documento_save: save,
        duracion_s: duracion.as_secs_f64(),
        cota_s: cota,
        razon: duracion.as_secs_f64() / cota,
        cota_cambios_s: save_after as f64 / bytes_por_s as f64 + o.rtt.as_secs_f64(),
        viajes,
        proceso,
    })
}
