//! The side-by-side table (markdown) from the JSON reports of two runs of the same workload:
//! bitacora-server and the reference automerge-repo sync server. Times are given as ratios
//! only (absolute times on a shared 2-core machine say little); memory and bytes as measured.

use std::path::Path;

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;

use crate::{flota, satelite, vivo};

/// A scenario's report: absent, failed (the script writes `{"fallo": "…"}` when `carga` exits
/// with an error), or the report.
enum Informe<T> {
    Ausente,
    Fallo(String),
    Hecho(T),
}

impl<T> Informe<T> {
    fn hecho(&self) -> Option<&T> {
        match self {
            Informe::Hecho(t) => Some(t),
            _ => None,
        }
    }

    fn fallo(&self) -> Option<&str> {
        match self {
            Informe::Fallo(m) => Some(m),
            _ => None,
        }
    }
}

fn leer<T: DeserializeOwned>(dir: &Path, nombre: &str) -> Result<Informe<T>> {
    let p = dir.join(nombre);
    if !p.exists() {
        return Ok(Informe::Ausente);
    }
    let s = std::fs::read_to_string(&p)?;
    let v: serde_json::Value =
        serde_json::from_str(&s).with_context(|| format!("parsing {}", p.display()))?;
    if let Some(f) = v.get("fallo").and_then(|f| f.as_str()) {
        return Ok(Informe::Fallo(f.to_string()));
    }
    Ok(Informe::Hecho(
        serde_json::from_value(v).with_context(|| format!("reading {}", p.display()))?,
    ))
}

/// Rows for the scenarios a server could not complete.
fn fallos(s: &mut String, quien: &str, escenario: &str, f: &[Option<&str>]) {
    for m in f.iter().flatten() {
        s.push_str(&format!(
            "| {escenario}: **{quien} did not complete** | {} | | |\n",
            m.replace('|', "/")
        ));
    }
}

fn cumple(ok: bool) -> &'static str {
    if ok { "yes" } else { "**no**" }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

pub fn tabla(nuestro: &Path, referencia: &Path) -> Result<String> {
    let mut s = String::new();
    let fa: Informe<flota::Informe> = leer(nuestro, "flota.json")?;
    let fb: Informe<flota::Informe> = leer(referencia, "flota.json")?;
    let va: Informe<vivo::Informe> = leer(nuestro, "vivo.json")?;
    let vb: Informe<vivo::Informe> = leer(referencia, "vivo.json")?;
    let ca: Informe<vivo::Informe> = leer(nuestro, "vivo-ciclo.json")?;
    let cb: Informe<vivo::Informe> = leer(referencia, "vivo-ciclo.json")?;
    let sa: Informe<satelite::Informe> = leer(nuestro, "satelite.json")?;
    let sb: Informe<satelite::Informe> = leer(referencia, "satelite.json")?;
    s.push_str("| measure | Bitácora vs reference | target | met |\n|---|---|---|---|\n");
    for (escenario, a, b) in [
        ("fleet", fa.fallo(), fb.fallo()),
        ("live", va.fallo(), vb.fallo()),
        ("live, full cycle", ca.fallo(), cb.fallo()),
        ("satellite", sa.fallo(), sb.fallo()),
    ] {
        fallos(&mut s, "Bitácora", escenario, &[a]);
        fallos(&mut s, "the reference", escenario, &[b]);
    }
    if let (Some(a), Some(b)) = (fa.hecho(), fb.hecho()) {
        let r = a.sincronizaciones_por_s / b.sincronizaciones_por_s;
        s.push_str(&format!(
            "| fleet: sync throughput (device syncs per second) | **{r:.2}×** the reference's | ≥ 5× | {} |\n",
            cumple(r >= 5.0)
        ));
        s.push_str(&format!(
            "| fleet: time until every device holds its school's changes | {:.2}× the reference's | | |\n",
            a.convergencia_s / b.convergencia_s
        ));
        let (la, lb) = (&a.latencia_ms, &b.latencia_ms);
        s.push_str(&format!(
            "| fleet: sync latency p50 / p95 / p99 | {:.2}× / {:.2}× / {:.2}× the reference's | | |\n",
            la.p50 / lb.p50,
            la.p95 / lb.p95,
            la.p99 / lb.p99
        ));
        if let (Some(pa), Some(pb)) = (&a.proceso, &b.proceso) {
            let r = pa.rss_pico_kib as f64 / pb.rss_pico_kib as f64;
            s.push_str(&format!(
                "| fleet: server peak RSS during the run | **{r:.2}×** ({:.1} MiB vs {:.1} MiB) | ≤ 0.25× | {} |\n",
                mib(pa.rss_pico_kib),
                mib(pb.rss_pico_kib),
                cumple(r <= 0.25)
            ));
            s.push_str(&format!(
                "| fleet: server CPU time during the run | {:.2}× ({:.0} % vs {:.0} % of one core) | | |\n",
                pa.cpu_s / pb.cpu_s,
                pa.cpu_pct,
                pb.cpu_pct
            ));
        }
        s.push_str(&format!(
            "| fleet: bytes on the wire per school / its new changes (`save_after`) | **{:.2}** (reference {:.2}) | ≤ 1.3 | {} |\n",
            a.razon_bytes,
            b.razon_bytes,
            cumple(a.razon_bytes <= 1.3)
        ));
        s.push_str(&format!(
            "| fleet: round trips per school (per device) | {:.1} ({:.1}); reference {:.1} ({:.1}) | | |\n",
            a.viajes_por_escuela,
            a.viajes_por_dispositivo,
            b.viajes_por_escuela,
            b.viajes_por_dispositivo
        ));
    }
    for (nombre, a, b) in [
        ("live", va.hecho(), vb.hecho()),
        ("live on a full cycle's document", ca.hecho(), cb.hecho()),
    ] {
        let (Some(a), Some(b)) = (a, b) else {
            continue;
        };
        let (la, lb) = (&a.latencia_ms, &b.latencia_ms);
        s.push_str(&format!(
            "| {nombre}: edit → other teacher p50 | {:.2}× the reference's | | |\n",
            la.p50 / lb.p50
        ));
        let r = la.p99 / lb.p99;
        s.push_str(&format!(
            "| {nombre}: edit → other teacher p99 | **{r:.2}×** the reference's | ≤ 0.33× | {} |\n",
            cumple(r <= 1.0 / 3.0)
        ));
        if let (Some(pa), Some(pb)) = (&a.proceso, &b.proceso) {
            s.push_str(&format!(
                "| {nombre}: server peak RSS / CPU time | {:.2}× / {:.2}× ({:.1} MiB vs {:.1} MiB) | | |\n",
                pa.rss_pico_kib as f64 / pb.rss_pico_kib as f64,
                pa.cpu_s / pb.cpu_s,
                mib(pa.rss_pico_kib),
                mib(pb.rss_pico_kib)
            ));
        }
    }
    if let Some(a) = sa.hecho() {
        let otro = sb
            .hecho()
            .map(|b| format!(" (reference {:.2})", b.razon))
            .unwrap_or_default();
        s.push_str(&format!(
            "| satellite ({} kbit/s, {} ms RTT): time / physical bound | **{:.2}**{otro} | ≤ 1.5 | {} |\n",
            a.kbps,
            a.rtt_ms,
            a.razon,
            cumple(a.razon <= 1.5)
        ));
        s.push_str(&format!(
            "| satellite: bytes on the wire / new changes (`save_after`) | {:.2}{} | | |\n",
            (a.bytes_subida + a.bytes_bajada) as f64 / a.cambios_save_after as f64,
            sb.hecho()
                .map(|b| format!(
                    " (reference {:.2})",
                    (b.bytes_subida + b.bytes_bajada) as f64 / b.cambios_save_after as f64
                ))
                .unwrap_or_default()
        ));
    }
    if let Some(a) = fa.hecho() {
        s.push_str(&format!(
            "\nWorkload: fleet {} schools × {} devices × {} operations offline each, on a shared history of {} operations; ",
            a.escuelas, a.dispositivos, a.ediciones, a.base
        ));
    }
    if let Some(a) = va.hecho() {
        s.push_str(&format!(
            "live {} teachers × {} edits, one every {} ms; ",
            a.maestros, a.ediciones, a.intervalo_ms
        ));
    }
    if let Some(a) = sa.hecho() {
        s.push_str(&format!(
            "satellite one laptop with {} operations ({} changes).\n",
            a.pasos, a.cambios
        ));
    }
    Ok(s)
}
