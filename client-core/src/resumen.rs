//! The school's own summary (`bitacora resumen`), a pure function of the read document and the
//! date it is asked on. The zone dashboard computes the same figures per school.
//!
//! Definitions (docs/cli.md repeats them for users):
//! - PEMC completeness: the mean of five parts, each from 0 to 1: ámbitos with diagnóstico text
//!   over ámbitos of the catalogue; at least one ámbito prioritised; at least one objetivo;
//!   objetivos with at least one meta over objetivos; metas with at least one acción over metas.
//!   Archived records do not count.
//! - Nivel de logro of a meta: that of its latest seguimiento entry ("sin_registro" if none).
//! - Acuerdo vencido: status `pendiente` or `en_proceso` and due date before today.
//! - % requieren apoyo (seed 002): (students counted / total students) x 100, over the groups of
//!   the most advanced corte recorded (cierre, else intermedio, else diagnóstico); a group's
//!   total is its enrolment at the end of the cycle, else at its start. Each figure counts only
//!   the groups that recorded it, in the numerator and in the denominator.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::catalogo::Catalogo;
use crate::ids::Fecha;
use crate::model::escuela::{CAMPOS_CONCENTRADO, Corte, Escuela};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Resumen {
    pub cct: String,
    pub nombre: Option<String>,
    pub ciclo: String,
    pub fecha: String,
    pub pemc: Completitud,
    pub metas_por_logro: BTreeMap<String, usize>,
    pub acciones_por_estado: BTreeMap<String, usize>,
    pub acuerdos_por_estado: BTreeMap<String, usize>,
    pub acuerdos_vencidos: Vec<AcuerdoVencido>,
    pub sesiones: usize,
    pub apoyo: Option<Apoyo>,
    pub conflictos: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Completitud {
    pub porcentaje: u32,
    pub ambitos_con_diagnostico: usize,
    pub ambitos_total: usize,
    pub ambitos_priorizados: usize,
    pub objetivos: usize,
    pub objetivos_con_meta: usize,
    pub metas: usize,
    pub metas_con_accion: usize,
    pub acciones: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AcuerdoVencido {
    pub id: String,
    pub texto: String,
    pub fecha_compromiso: String,
    pub dias_vencido: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Apoyo {
    pub corte: String,
    pub grupos: usize,
    pub total_alumnos: u64,
    pub indicadores: Vec<Indicador>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Indicador {
    pub campo: String,
    pub nombre: String,
    pub alumnos: u64,
    /// Groups of the corte that recorded this count (0: nobody recorded it, so `alumnos` is
    /// "sin registro", not zero).
    pub grupos_con_registro: usize,
    /// The students of the groups that recorded this count (the denominator).
    pub alumnos_base: u64,
    /// (alumnos / alumnos_base) x 100, one decimal.
    pub porcentaje: f64,
}

fn fraccion(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// PEMC completeness (see the module's definitions).
pub fn completitud(e: &Escuela) -> Completitud {
    let catalogo = Catalogo::por_version(&e.catalogo);
    let ambitos_total = catalogo
        .map(|c| c.ambitos.len())
        .unwrap_or(e.diagnostico.len());
    let ambitos_con_diagnostico = e
        .diagnostico
        .iter()
        .filter(|d| !d.texto.trim().is_empty())
        .count();
    let ambitos_priorizados = e
        .diagnostico
        .iter()
        .filter(|d| d.prioridad.is_some())
        .count();
    let objetivos: Vec<_> = e.objetivos.iter().filter(|o| !o.archivado).collect();
    let metas: Vec<_> = e.metas.iter().filter(|m| !m.archivado).collect();
    let acciones: Vec<_> = e.acciones.iter().filter(|a| !a.archivado).collect();
    let objetivos_con_meta = objetivos
        .iter()
        .filter(|o| metas.iter().any(|m| m.objetivo == o.id))
        .count();
    let metas_con_accion = metas
        .iter()
        .filter(|m| acciones.iter().any(|a| a.meta == m.id))
        .count();
    let partes = [
        fraccion(ambitos_con_diagnostico, ambitos_total),
        if ambitos_priorizados > 0 { 1.0 } else { 0.0 },
        if objetivos.is_empty() { 0.0 } else { 1.0 },
        fraccion(objetivos_con_meta, objetivos.len()),
        fraccion(metas_con_accion, metas.len()),
    ];
    let porcentaje = (partes.iter().sum::<f64>() / partes.len() as f64 * 100.0).round() as u32;
    Completitud {
        porcentaje,
        ambitos_con_diagnostico,
        ambitos_total,
        ambitos_priorizados,
        objetivos: objetivos.len(),
        objetivos_con_meta,
        metas: metas.len(),
        metas_con_accion,
        acciones: acciones.len(),
    }
}

pub fn resumir(e: &Escuela, conflictos: usize, hoy: Fecha) -> Resumen {
    let metas: Vec<_> = e.metas.iter().filter(|m| !m.archivado).collect();
    let acciones: Vec<_> = e.acciones.iter().filter(|a| !a.archivado).collect();
    let mut metas_por_logro: BTreeMap<String, usize> = [
        "cumplida",
        "avance_significativo",
        "escaso_o_nulo",
        "sin_registro",
    ]
    .iter()
    .map(|k| (k.to_string(), 0))
    .collect();
    for m in &metas {
        *metas_por_logro
            .entry(
                m.nivel_logro
                    .clone()
                    .unwrap_or_else(|| "sin_registro".into()),
            )
            .or_default() += 1;
    }
    let mut acciones_por_estado: BTreeMap<String, usize> = BTreeMap::new();
    for a in &acciones {
        *acciones_por_estado.entry(a.estado.clone()).or_default() += 1;
    }
    let acuerdos: Vec<_> = e.acuerdos.iter().filter(|a| !a.archivado).collect();
    let mut acuerdos_por_estado: BTreeMap<String, usize> = BTreeMap::new();
    for a in &acuerdos {
        *acuerdos_por_estado.entry(a.estado.clone()).or_default() += 1;
    }
    let acuerdos_vencidos = acuerdos
        .iter()
        .filter(|a| a.estado == "pendiente" || a.estado == "en_proceso")
        .filter_map(|a| {
            let f = Fecha::parse(a.fecha_compromiso.as_deref()?).ok()?;
            (f < hoy).then(|| AcuerdoVencido {
                id: a.id.clone(),
                texto: a.texto.clone(),
                fecha_compromiso: f.to_string(),
                dias_vencido: f.dias_hasta(hoy),
            })
        })
        .collect();

    Resumen {
        cct: e.cct.clone(),
        nombre: e.nombre.clone(),
        ciclo: e.ciclo.clone(),
        fecha: hoy.to_string(),
        pemc: completitud(e),
        metas_por_logro,
        acciones_por_estado,
        acuerdos_por_estado,
        acuerdos_vencidos,
        sesiones: e.sesiones.iter().filter(|s| !s.archivado).count(),
        apoyo: apoyo(e),
        conflictos,
    }
}

/// The "requieren apoyo" figures of the most advanced corte recorded.
pub fn apoyo(e: &Escuela) -> Option<Apoyo> {
    let corte = [Corte::Cierre, Corte::Intermedio, Corte::Diagnostico]
        .into_iter()
        .find(|c| {
            e.concentrado
                .iter()
                .any(|g| g.corte == c.as_str() && g.total_alumnos().is_some())
        })?;
    let grupos: Vec<_> = e
        .concentrado
        .iter()
        .filter(|g| g.corte == corte.as_str())
        .collect();
    let total_alumnos: u64 = grupos.iter().filter_map(|g| g.total_alumnos()).sum();
    let indicadores = CAMPOS_CONCENTRADO
        .iter()
        .skip(8)
        .map(|(campo, nombre)| {
            // Only the groups that recorded this count: a group that did not answer is not
            // a group with zero students needing support.
            let con_registro: Vec<_> = grupos.iter().filter(|g| g.get(campo).is_some()).collect();
            let alumnos: u64 = con_registro.iter().filter_map(|g| g.get(campo)).sum();
            let base: u64 = con_registro.iter().filter_map(|g| g.total_alumnos()).sum();
            Indicador {
                campo: campo.to_string(),
                nombre: nombre.to_string(),
                alumnos,
                grupos_con_registro: con_registro.len(),
                alumnos_base: base,
                porcentaje: porcentaje(alumnos, base),
            }
        })
        .collect();
    Some(Apoyo {
        corte: corte.as_str().into(),
        grupos: grupos.len(),
        total_alumnos,
        indicadores,
    })
}

/// Seed 002's formula, (count / total) x 100, rounded to one decimal; 0 when total is 0.
pub fn porcentaje(count: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        (count as f64 / total as f64 * 1000.0).round() / 10.0
    }
}
