//! Measuring: the server process's memory and CPU from `/proc/<pid>`, sampled while a scenario
//! runs, and percentiles.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::task::JoinHandle;

/// Clock ticks per second of `/proc/<pid>/stat` (`getconf CLK_TCK`; 100 on Linux).
fn ticks_por_segundo() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// `VmRSS` and `VmHWM` of a process, in KiB.
fn memoria(pid: u32) -> Option<(u64, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let campo = |nombre: &str| {
        s.lines()
            .find(|l| l.starts_with(nombre))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((campo("VmRSS:")?, campo("VmHWM:")?))
}

/// utime + stime of a process (all its threads), in clock ticks.
fn cpu(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: fields are counted after its closing parenthesis.
    let resto = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = resto.split_whitespace().collect();
    // Fields 14 and 15 of stat(5) are the 12th and 13th after the name.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// What the server process used while a scenario ran.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct Proceso {
    pub pid: u32,
    /// Largest `VmRSS` seen by the sampler during the run, KiB.
    pub rss_pico_kib: u64,
    /// `VmRSS` when the run started, KiB.
    pub rss_inicio_kib: u64,
    /// `VmHWM` at the end: the peak over the process's whole life, KiB.
    pub vmhwm_kib: u64,
    /// CPU time used during the run (user + system), seconds.
    pub cpu_s: f64,
    /// `cpu_s` over the run's wall time, in percent of one core.
    pub cpu_pct: f64,
    pub muestras: u64,
}

pub struct Muestreo {
    pid: u32,
    parar: Arc<AtomicBool>,
    tarea: JoinHandle<(u64, u64)>,
    inicio_cpu: u64,
    inicio_rss: u64,
    inicio: std::time::Instant,
}

impl Muestreo {
    /// Starts sampling `pid` every 20 ms.
    pub fn iniciar(pid: u32) -> anyhow::Result<Muestreo> {
        let (rss, _) = memoria(pid)
            .ok_or_else(|| anyhow::anyhow!("cannot read /proc/{pid}/status: no such process?"))?;
        let inicio_cpu = cpu(pid).unwrap_or(0);
        let parar = Arc::new(AtomicBool::new(false));
        let p = parar.clone();
        let tarea = tokio::spawn(async move {
            let (mut pico, mut n) = (rss, 0u64);
            let mut cada = tokio::time::interval(Duration::from_millis(20));
            while !p.load(Ordering::Relaxed) {
                cada.tick().await;
                if let Some((r, _)) = memoria(pid) {
                    pico = pico.max(r);
                    n += 1;
                }
            }
            (pico, n)
        });
        Ok(Muestreo {
            pid,
            parar,
            tarea,
            inicio_cpu,
            inicio_rss: rss,
            inicio: std::time::Instant::now(),
        })
    }

    pub async fn terminar(self) -> Proceso {
        self.parar.store(true, Ordering::Relaxed);
        let (mut pico, muestras) = self.tarea.await.unwrap_or((0, 0));
        let segundos = self.inicio.elapsed().as_secs_f64();
        let (rss, hwm) = memoria(self.pid).unwrap_or((0, 0));
        pico = pico.max(rss);
        let cpu_s = cpu(self.pid)
            .map(|c| c.saturating_sub(self.inicio_cpu) as f64 / ticks_por_segundo())
            .unwrap_or(0.0);
        Proceso {
            pid: self.pid,
            rss_pico_kib: pico,
            rss_inicio_kib: self.inicio_rss,
            vmhwm_kib: hwm,
            cpu_s,
            cpu_pct: if segundos > 0.0 {
                100.0 * cpu_s / segundos
            } else {
                0.0
            },
            muestras,
        }
    }
}

/// Percentiles of a set of durations, in milliseconds.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct Percentiles {
    pub n: usize,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl Percentiles {
    pub fn de(v: &[Duration]) -> Percentiles {
        let mut ms: Vec<f64> = v.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
        ms.sort_by(f64::total_cmp);
        // Nearest rank.
        let p = |q: f64| {
            if ms.is_empty() {
                return 0.0;
            }
            let k = ((q * ms.len() as f64).ceil() as usize).clamp(1, ms.len());
            ms[k - 1]
        };
        Percentiles {
            n: ms.len(),
            p50: p(0.50),
            p95: p(0.95),
            p99: p(0.99),
            max: ms.last().copied().unwrap_or(0.0),
        }
    }
}

impl Proceso {
    /// Lines for the human table.
    pub fn tabla(&self) -> String {
        let mib = |k: u64| k as f64 / 1024.0;
        format!(
            "  {:<30} {:.1} MiB (al inicio {:.1} MiB; VmHWM {:.1} MiB)\n  {:<30} {:.2} s ({:.0} % de un núcleo)\n",
            format!("servidor pid {}: RSS pico", self.pid),
            mib(self.rss_pico_kib),
            mib(self.rss_inicio_kib),
            mib(self.vmhwm_kib),
            "servidor: CPU",
            self.cpu_s,
            self.cpu_pct
        )
    }
}
