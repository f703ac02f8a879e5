//! The projection of a school document: what the zone dashboard needs from it, as plain rows
//! the server keeps in SQL so that dashboard requests never load a CRDT.
//!
//! A projection depends only on the document (never on the date it is computed): figures that
//! depend on "today" (acuerdos vencidos, sessions expected by the calendar, days since the last
//! sync) are computed when the dashboard is asked, from these rows. It records the heads and
//! the number of changes it was computed from; the number of changes only grows as changes
//! merge, so a writer can refuse to replace a projection with one computed from fewer changes.
//!
//! Pure: no I/O, no clock.

use std::collections::BTreeMap;

use automerge::{AutoCommit, ChangeHash};
use serde::{Deserialize, Serialize};

use crate::catalogo::Catalogo;
use crate::error::ModelError;
use crate::ids::{CicloEscolar, Fecha};
use crate::model::conflictos;
use crate::model::escuela::{self, CAMPOS_CONCENTRADO, Corte, Escuela};
use crate::resumen::{Completitud, completitud, porcentaje};
use crate::storage::hex_heads;

/// The levels of logro a meta can be in, in display order (`sin_registro`: no follow-up yet).
pub const NIVELES_LOGRO: [&str; 4] = [
    "cumplida",
    "avance_significativo",
    "escaso_o_nulo",
    "sin_registro",
];

/// The concentrado counts the zone aggregates (every count except enrolment), in seed 002's
/// order. Their denominators are enrolment.
pub fn campos_situacion() -> impl Iterator<Item = (&'static str, &'static str)> {
    CAMPOS_CONCENTRADO.iter().skip(2).copied()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Proyeccion {
    pub documento: String,
    pub cct: String,
    pub ciclo: String,
    pub nombre: Option<String>,
    /// Sorted hex heads of the document the projection was computed from.
    pub heads: String,
    /// Number of changes in that document.
    pub cambios: u64,
    pub pemc: Completitud,
    /// Metas (not archived) by the nivel de logro of their latest follow-up.
    pub metas_por_logro: BTreeMap<String, u64>,
    pub acciones_por_estado: BTreeMap<String, u64>,
    pub acuerdos: Vec<AcuerdoP>,
    pub sesiones: Vec<SesionP>,
    /// The concentrado's most advanced corte recorded (`None`: nothing recorded).
    pub apoyo_corte: Option<String>,
    pub apoyo_grupos: u64,
    pub apoyo_total_alumnos: u64,
    /// One row per count of [`campos_situacion`] at that corte.
    pub apoyo: Vec<ApoyoP>,
    /// One row per ámbito of the document's catalogue.
    pub ambitos: Vec<AmbitoP>,
    pub conflictos: u64,
    /// The whole read document, for the school page (counts only: no student names exist).
    pub detalle: Escuela,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcuerdoP {
    pub id: String,
    pub texto: String,
    pub estado: String,
    /// `AAAA-MM-DD`, or `None` if absent or not a valid date.
    pub fecha_compromiso: Option<String>,
    pub responsables: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SesionP {
    pub id: String,
    pub fase: String,
    pub numero: Option<u64>,
    pub fecha: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApoyoP {
    pub campo: String,
    /// Students counted, over the groups that recorded this count.
    pub alumnos: u64,
    /// Enrolment of those groups.
    pub base: u64,
    /// Groups that recorded this count.
    pub grupos: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AmbitoP {
    pub ambito: String,
    pub prioridad: Option<u64>,
    pub tiene_diagnostico: bool,
    /// Objetivos (not archived) tied to this ámbito.
    pub objetivos: u64,
    /// Metas (not archived) of those objetivos, and how many are at each level.
    pub metas: u64,
    pub metas_cumplida: u64,
    pub metas_avance: u64,
    pub metas_escaso: u64,
}

/// Projects a school document. Errors only if it is not a readable school document.
pub fn proyectar(doc: &mut AutoCommit) -> Result<Proyeccion, ModelError> {
    let e = escuela::leer(doc)?;
    let conflictos = conflictos::listar(doc).len() as u64;
    let heads: Vec<ChangeHash> = doc.get_heads();
    let cambios = doc.get_changes_meta(&[]).len() as u64;
    Ok(desde_escuela(e, hex_heads(&heads), cambios, conflictos))
}

fn desde_escuela(e: Escuela, heads: String, cambios: u64, conflictos: u64) -> Proyeccion {
    let pemc = completitud(&e);
    let metas: Vec<_> = e.metas.iter().filter(|m| !m.archivado).collect();
    let objetivos: Vec<_> = e.objetivos.iter().filter(|o| !o.archivado).collect();

    let mut metas_por_logro: BTreeMap<String, u64> =
        NIVELES_LOGRO.iter().map(|k| (k.to_string(), 0)).collect();
    for m in &metas {
        *metas_por_logro.entry(logro(m)).or_default() += 1;
    }
    let mut acciones_por_estado: BTreeMap<String, u64> = BTreeMap::new();
    for a in e.acciones.iter().filter(|a| !a.archivado) {
        *acciones_por_estado.entry(a.estado.clone()).or_default() += 1;
    }
    let acuerdos = e
        .acuerdos
        .iter()
        .filter(|a| !a.archivado)
        .map(|a| AcuerdoP {
            id: a.id.clone(),
            texto: a.texto.clone(),
            estado: a.estado.clone(),
            fecha_compromiso: a
                .fecha_compromiso
                .as_deref()
                .and_then(|f| Fecha::parse(f).ok())
                .map(|f| f.to_string()),
            responsables: a.responsables.clone(),
        })
        .collect();
    let sesiones = e
        .sesiones
        .iter()
        .filter(|s| !s.archivado)
        .map(|s| SesionP {
            id: s.id.clone(),
            fase: s.fase.clone(),
            numero: s.numero,
            fecha: s
                .fecha
                .as_deref()
                .and_then(|f| Fecha::parse(f).ok())
                .map(|f| f.to_string()),
        })
        .collect();

    let (apoyo_corte, apoyo_grupos, apoyo_total_alumnos, apoyo) = situacion(&e);

    let catalogo = Catalogo::por_version(&e.catalogo);
    let mut claves: Vec<String> = catalogo
        .map(|c| c.ambitos.iter().map(|a| a.clave.to_string()).collect())
        .unwrap_or_default();
    // Keys written by a newer catalogue are kept, after the known ones.
    for k in e
        .diagnostico
        .iter()
        .map(|d| &d.ambito)
        .chain(objetivos.iter().flat_map(|o| o.ambitos.iter()))
    {
        if !claves.contains(k) {
            claves.push(k.clone());
        }
    }
    let ambitos = claves
        .into_iter()
        .map(|clave| {
            let d = e.diagnostico.iter().find(|d| d.ambito == clave);
            let objs: Vec<_> = objetivos
                .iter()
                .filter(|o| o.ambitos.contains(&clave))
                .collect();
            let ms: Vec<_> = metas
                .iter()
                .filter(|m| objs.iter().any(|o| o.id == m.objetivo))
                .collect();
            let cuenta = |nivel: &str| ms.iter().filter(|m| logro(m) == nivel).count() as u64;
            AmbitoP {
                prioridad: d.and_then(|d| d.prioridad),
                tiene_diagnostico: d.is_some_and(|d| !d.texto.trim().is_empty()),
                objetivos: objs.len() as u64,
                metas: ms.len() as u64,
                metas_cumplida: cuenta("cumplida"),
                metas_avance: cuenta("avance_significativo"),
                metas_escaso: cuenta("escaso_o_nulo"),
                ambito: clave,
            }
        })
        .collect();

    Proyeccion {
        documento: e.documento.clone(),
        cct: e.cct.clone(),
        ciclo: e.ciclo.clone(),
        nombre: e.nombre.clone(),
        heads,
        cambios,
        pemc,
        metas_por_logro,
        acciones_por_estado,
        acuerdos,
        sesiones,
        apoyo_corte,
        apoyo_grupos,
        apoyo_total_alumnos,
        apoyo,
        ambitos,
        conflictos,
        detalle: e,
    }
}

fn logro(m: &escuela::Meta) -> String {
    m.nivel_logro
        .clone()
        .unwrap_or_else(|| "sin_registro".into())
}

/// The concentrado at its most advanced corte: every count with its own denominator (the
/// groups that recorded it), as `resumen::apoyo` does for the school's own summary.
fn situacion(e: &Escuela) -> (Option<String>, u64, u64, Vec<ApoyoP>) {
    let Some(corte) = [Corte::Cierre, Corte::Intermedio, Corte::Diagnostico]
        .into_iter()
        .find(|c| {
            e.concentrado
                .iter()
                .any(|g| g.corte == c.as_str() && g.total_alumnos().is_some())
        })
    else {
        return (None, 0, 0, Vec::new());
    };
    let grupos: Vec<_> = e
        .concentrado
        .iter()
        .filter(|g| g.corte == corte.as_str())
        .collect();
    let total: u64 = grupos.iter().filter_map(|g| g.total_alumnos()).sum();
    let filas = campos_situacion()
        .map(|(campo, _)| {
            let con: Vec<_> = grupos.iter().filter(|g| g.get(campo).is_some()).collect();
            ApoyoP {
                campo: campo.to_string(),
                alumnos: con.iter().filter_map(|g| g.get(campo)).sum(),
                base: con.iter().filter_map(|g| g.total_alumnos()).sum(),
                grupos: con.len() as u64,
            }
        })
        .collect();
    (
        Some(corte.as_str().to_string()),
        grupos.len() as u64,
        total,
        filas,
    )
}

impl ApoyoP {
    /// Seed 002's percentage: (alumnos / base) x 100, one decimal.
    pub fn porcentaje(&self) -> f64 {
        porcentaje(self.alumnos, self.base)
    }
}

// ---------------------------------------------------------------------------------------------
// The CTE calendar.

/// The reference calendar of CTE sessions of a ciclo, used to say how many sessions a school
/// should have recorded by a date: the fase intensiva (5 sessions) in the last weeks of August
/// of the cycle's first year, and the 8 sesiones ordinarias on the last Friday of September,
/// October, November, January, February, March, May and June (SEP's usual pattern; December,
/// April and July have none). The official dates change each year; this is a reference, and
/// the dashboard says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calendario {
    /// The day the fase intensiva is over (5 sessions expected from then on).
    pub fin_intensiva: Fecha,
    pub ordinarias: Vec<Fecha>,
}

pub const SESIONES_INTENSIVA: u64 = 5;

impl Calendario {
    pub fn de(ciclo: CicloEscolar) -> Calendario {
        let y = i32::from(ciclo.inicio());
        let ultimo_viernes = |anio: i32, mes: u32| {
            let primero_siguiente = if mes == 12 {
                chrono::NaiveDate::from_ymd_opt(anio + 1, 1, 1)
            } else {
                chrono::NaiveDate::from_ymd_opt(anio, mes + 1, 1)
            }
            .expect("valid date");
            let mut d = primero_siguiente.pred_opt().expect("valid date");
            while chrono::Datelike::weekday(&d) != chrono::Weekday::Fri {
                d = d.pred_opt().expect("valid date");
            }
            Fecha::from_naive(d)
        };
        let ordinarias = [(y, 9), (y, 10), (y, 11), (y + 1, 1), (y + 1, 2), (y + 1, 3)]
            .into_iter()
            .chain([(y + 1, 5), (y + 1, 6)])
            .map(|(a, m)| ultimo_viernes(a, m))
            .collect();
        Calendario {
            fin_intensiva: ultimo_viernes(y, 8),
            ordinarias,
        }
    }

    /// Sessions (intensiva, ordinarias) expected to have happened on or before `hoy`.
    pub fn esperadas(&self, hoy: Fecha) -> (u64, u64) {
        let intensiva = if hoy >= self.fin_intensiva {
            SESIONES_INTENSIVA
        } else {
            0
        };
        let ordinarias = self.ordinarias.iter().filter(|f| **f <= hoy).count() as u64;
        (intensiva, ordinarias)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{Cct, CicloEscolar};
    use crate::model::escuela::genesis_escuela;

    #[test]
    fn calendar_of_a_cycle() {
        let c = Calendario::de(CicloEscolar::parse("2025-2026").unwrap());
        assert_eq!(c.fin_intensiva.to_string(), "2025-08-29");
        assert_eq!(c.ordinarias[0].to_string(), "2025-09-26");
        assert_eq!(c.ordinarias[3].to_string(), "2026-01-30");
        assert_eq!(c.ordinarias[7].to_string(), "2026-06-26");
        let f = |s| Fecha::parse(s).unwrap();
        assert_eq!(c.esperadas(f("2025-08-01")), (0, 0));
        assert_eq!(c.esperadas(f("2025-09-26")), (5, 1));
        assert_eq!(c.esperadas(f("2026-04-15")), (5, 6));
        assert_eq!(c.esperadas(f("2026-07-31")), (5, 8));
    }

    #[test]
    fn empty_school_projects_to_zeros() {
        let cct = Cct::parse("07DPR0001A").unwrap();
        let mut doc = genesis_escuela(&cct, CicloEscolar::parse("2025-2026").unwrap()).unwrap();
        let p = proyectar(&mut doc).unwrap();
        assert_eq!(p.cct, "07DPR0001A");
        assert_eq!(p.cambios, 1);
        assert_eq!(p.pemc.porcentaje, 0);
        assert_eq!(p.apoyo_corte, None);
        assert_eq!(p.ambitos.len(), 8);
        assert!(p.metas_por_logro.values().all(|n| *n == 0));
    }
}
