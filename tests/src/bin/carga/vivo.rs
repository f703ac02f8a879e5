//! The live scenario: T teachers connected at once type into the same acuerdo (one word per
//! edit, every `intervalo`); measured is the time from an edit (its change committed locally)
//! to its application by each other teacher, through the server.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bitacora_core::automerge::{AutoCommit, ChangeHash};
use bitacora_core::ids::{DocumentId, RecordId};
use bitacora_core::model::Ctx;
use bitacora_core::model::escuela::{self, NuevoAcuerdo};
use bitacora_escenario::ciclo::{Azar, DOCENTES, Escritor, INICIO_CICLO, frase};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::cliente::{Conexion, Destino};
use crate::medida::{Muestreo, Percentiles, Proceso};
use crate::plan::{self, Credenciales, ESCUELA_VIVO};

#[derive(Debug, Clone)]
pub struct Opciones {
    pub maestros: usize,
    pub ediciones: usize,
    /// Operations of the school's history before the session (the document they edit).
    pub base: usize,
    pub intervalo: Duration,
    pub plazo: Duration,
    pub pid: Option<u32>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Informe {
    pub servidor: String,
    pub generico: bool,
    pub maestros: usize,
    pub ediciones: usize,
    #[serde(default)]
    pub base: usize,
    pub intervalo_ms: u64,
    /// From an edit to its application by another teacher; one sample per (edit, other
    /// teacher).
    pub latencia_ms: Percentiles,
    /// Samples expected: ediciones × maestros × (maestros − 1).
    pub esperadas: usize,
    pub duracion_s: f64,
    pub proceso: Option<Proceso>,
}

impl Informe {
    pub fn tabla(&self) -> String {
        let l = &self.latencia_ms;
        let mut s = format!(
            "vivo — {} ({}): {} maestros × {} ediciones, una cada {} ms, historia de {} operaciones\n",
            self.servidor,
            if self.generico {
                "genérico"
            } else {
                "bitácora"
            },
            self.maestros,
            self.ediciones,
            self.intervalo_ms,
            self.base
        );
        s.push_str(&format!(
            "  {:<30} {:.1} / {:.1} / {:.1} / {:.1} ms ({} de {} muestras)\n",
            "edición → otro p50/p95/p99/max", l.p50, l.p95, l.p99, l.max, l.n, self.esperadas
        ));
        if let Some(p) = &self.proceso {
            s.push_str(&p.tabla());
        }
        s
    }
}

type Registro = Arc<Mutex<HashMap<ChangeHash, Instant>>>;

/// Inserts one word at a word boundary.
fn tecleo(az: &mut Azar, texto: &str) -> String {
    let palabra = frase(az, 1);
    let palabra = palabra.trim_end_matches(". ").to_lowercase();
    let fronteras: Vec<usize> = std::iter::once(0)
        .chain(
            texto
                .char_indices()
                .filter(|(_, c)| *c == ' ')
                .map(|(i, _)| i + 1),
        )
        .collect();
    let at = *az.elegir(&fronteras);
    format!("{}{palabra} {}", &texto[..at], &texto[at..])
}

/// The acuerdo's text, read directly (not through `escuela::leer`, which reads everything).
fn texto_acuerdo(doc: &AutoCommit, id: &RecordId) -> Result<String> {
    use bitacora_core::automerge::{ObjType, ROOT, ReadDoc, Value};
    let objeto = |o: &bitacora_core::automerge::ObjId, k: &str| match doc.get(o, k) {
        Ok(Some((Value::Object(_), x))) => Some(x),
        _ => None,
    };
    let texto = objeto(&ROOT, "acuerdos")
        .and_then(|a| objeto(&a, id.as_str()))
        .and_then(|r| match doc.get(&r, "texto") {
            Ok(Some((Value::Object(ObjType::Text), t))) => doc.text(&t).ok(),
            _ => None,
        });
    texto.context("the acuerdo's text is in the document")
}

#[allow(clippy::too_many_arguments)]
async fn maestro(
    mut c: Conexion,
    t: usize,
    id: DocumentId,
    acuerdo: RecordId,
    mut doc: AutoCommit,
    o: Opciones,
    registro: Registro,
    limite: Instant,
) -> Result<Vec<Duration>> {
    let mut az = Azar::new(plan::semilla_de(7, ESCUELA_VIVO, t));
    let mut latencias = Vec::new();
    let escalon = o.intervalo.as_secs_f64() / o.maestros as f64;
    let mut siguiente = Instant::now() + Duration::from_secs_f64(escalon * t as f64);
    let (mut hechas, mut recibidos) = (0usize, 0usize);
    let ajenas = o.ediciones * (o.maestros - 1);
    let mut texto = texto_acuerdo(&doc, &acuerdo)?;
    loop {
        if hechas == o.ediciones && recibidos >= ajenas && c.en_sync(&id, &mut doc) {
            c.cerrar().await;
            return Ok(latencias);
        }
        tokio::select! {
            _ = tokio::time::sleep_until(siguiente), if hechas < o.ediciones => {
                texto = tecleo(&mut az, &texto);
                let ctx = Ctx { ahora: INICIO_CICLO + hechas as i64, autor: Some(DOCENTES[t % 6]) };
                escuela::editar_texto_acuerdo(&mut doc, &ctx, &acuerdo, &texto)?;
                let hash = doc.get_last_local_change().map(|ch| ch.hash()).context("a change")?;
                registro.lock().expect("registro").insert(hash, Instant::now());
                c.empujar(id, &mut doc).await?;
                hechas += 1;
                // ±20 % around the interval, so that edits are not in lockstep.
                let j = 0.8 + 0.4 * (az.below(1000) as f64 / 1000.0);
                siguiente += Duration::from_secs_f64(o.intervalo.as_secs_f64() * j);
            }
            m = c.recibir() => {
                if let Some(m) = m? {
                    let nuevos = c.atender(id, &mut doc, m, true).await?;
                    let ahora = Instant::now();
                    if !nuevos.is_empty() {
                        let r = registro.lock().expect("registro");
                        for h in &nuevos {
                            if let Some(t0) = r.get(h) {
                                latencias.push(ahora - *t0);
                                recibidos += 1;
                            }
                        }
                        drop(r);
                        texto = texto_acuerdo(&doc, &acuerdo)?;
                    }
                }
            }
            _ = tokio::time::sleep_until(limite) => {
                bail!("teacher {t}: {hechas} edits made, {recibidos} of {ajenas} received when time ran out");
            }
        }
    }
}

pub async fn correr(
    nombre: &str,
    destino: Destino,
    cred: &mut Credenciales,
    o: &Opciones,
) -> Result<Informe> {
    if o.maestros < 2 {
        bail!("at least two teachers");
    }
    if let Some(p) = cred.preparado()
        && p.maestros < o.maestros
    {
        bail!("carga.json registers {} teachers", p.maestros);
    }
    let semilla = cred.semilla;
    let id = cred.documento(ESCUELA_VIVO);
    let base = escuela::genesis_escuela(&plan::cct(ESCUELA_VIVO), plan::ciclo())?
        .with_actor(plan::actor(semilla, ESCUELA_VIVO, 0));
    let base_pasos = o.base;
    let base = tokio::task::spawn_blocking(move || {
        let mut base = base;
        Escritor::nuevo(
            &base,
            plan::semilla_de(semilla, ESCUELA_VIVO, usize::MAX),
            DOCENTES[0],
        )
        .pasos(&mut base, base_pasos)
        .map(|_| base)
    })
    .await??;
    let mut base = base;
    let acuerdo = RecordId::from_random(semilla ^ 0xAC0E);
    let mut az = Azar::new(semilla);
    escuela::agregar_acuerdo(
        &mut base,
        &Ctx {
            ahora: INICIO_CICLO,
            autor: Some(DOCENTES[0]),
        },
        &acuerdo,
        &NuevoAcuerdo {
            texto: frase(&mut az, 150),
            responsables: vec![DOCENTES[0].to_string()],
            fecha_compromiso: None,
            sesion_origen: None,
        },
    )?;
    let limite = Instant::now() + o.plazo;
    // Everyone connects and holds the acuerdo (teacher 0 brings it to the server first).
    let mut conexiones = Vec::new();
    for t in 0..o.maestros {
        let mut doc = base
            .fork()
            .with_actor(plan::actor(semilla, ESCUELA_VIVO, t));
        let mut c = Conexion::abrir(
            &destino,
            cred.token(ESCUELA_VIVO, t)?.as_deref(),
            &plan::storage_id(semilla, ESCUELA_VIVO, t),
            limite,
        )
        .await?;
        c.sincronizar(id, &mut doc, limite).await?;
        conexiones.push((c, doc));
    }
    let registro: Registro = Arc::default();
    let muestreo = o.pid.map(Muestreo::iniciar).transpose()?;
    let inicio = Instant::now();
    let mut tareas = Vec::new();
    for (t, (c, doc)) in conexiones.into_iter().enumerate() {
        tareas.push(tokio::spawn(maestro(
            c,
            t,
            id,
            acuerdo.clone(),
            doc,
            o.clone(),
            registro.clone(),
            limite,
        )));
    }
    let mut latencias = Vec::new();
    for t in tareas {
        latencias.extend(t.await??);
    }
    let duracion = inicio.elapsed();
    let proceso = match muestreo {
        Some(m) => Some(m.terminar().await),
        None => None,
    };
    Ok(Informe {
        servidor: nombre.to_string(),
        generico: cred.generico,
        maestros: o.maestros,
        ediciones: o.ediciones,
        base: o.base,
        intervalo_ms: o.intervalo.as_millis() as u64,
        latencia_ms: Percentiles::de(&latencias),
        esperadas: o.ediciones * o.maestros * (o.maestros - 1),
        duracion_s: duracion.as_secs_f64(),
        proceso,
    })
}
