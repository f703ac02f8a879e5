//! The CTZ dashboard: the zone's consolidated figures and each school's page, as HTML
//! ([`web`]), JSON and CSV ([`api`]). Every figure comes from the SQL projections
//! ([`crate::proyector`]) plus the date it is asked on; no request loads a CRDT.
//! docs/dashboard.md lists every figure and how it is computed.
//!
//! This module turns the rows of [`crate::db::DatosZona`] and a stored projection into the
//! response types shared by the HTML pages and the JSON API (so both always show the same
//! numbers), and holds the rules: staleness, privacy (student counts below 5 at zone level),
//! and the ranking of schools that need accompaniment.

pub mod api;
pub mod web;

use std::collections::BTreeMap;

use bitacora_core::catalogo::Catalogo;
use bitacora_core::ids::{Cct, CicloEscolar, Fecha};
use bitacora_core::model::escuela::CAMPOS_CONCENTRADO;
use bitacora_core::proyeccion::{Calendario, Proyeccion, campos_situacion};
use bitacora_core::resumen::{Completitud, porcentaje};
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::{DatosZona, FilaEscuela};

/// Days without a sync after which a school shows as stale.
pub const DIAS_DESACTUALIZADA: i64 = 14;
/// Student counts below this show as "<5" at zone level.
pub const UMBRAL_PRIVACIDAD: u64 = 5;
/// Schools with at least this many points are listed as needing accompaniment.
pub const PUNTOS_ACOMPANAMIENTO: u32 = 4;

/// A count of students as shown at zone level: exact, or "<5" when between 1 and 4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(untagged)]
pub enum Conteo {
    Exacto(u64),
    /// Always the string `"<5"`.
    #[schema(value_type = String, example = "<5")]
    Suprimido(MenosDeCinco),
}

/// Serialises as `"<5"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MenosDeCinco;

impl Serialize for MenosDeCinco {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<5")
    }
}

impl Conteo {
    pub fn zona(n: u64) -> Conteo {
        if n > 0 && n < UMBRAL_PRIVACIDAD {
            Conteo::Suprimido(MenosDeCinco)
        } else {
            Conteo::Exacto(n)
        }
    }

    pub fn suprimido(&self) -> bool {
        matches!(self, Conteo::Suprimido(_))
    }
}

impl std::fmt::Display for Conteo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Conteo::Exacto(n) => write!(f, "{n}"),
            Conteo::Suprimido(_) => f.write_str("<5"),
        }
    }
}

/// A zone-level share of students: the count (maybe suppressed) and its percentage (absent
/// when the count is suppressed, since the base would reveal it, or when nobody recorded it).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Cifra {
    pub alumnos: Conteo,
    /// Enrolment of the groups that recorded this count.
    pub base: u64,
    pub porcentaje: Option<f64>,
}

impl Cifra {
    fn de(alumnos: u64, base: u64) -> Cifra {
        let c = Conteo::zona(alumnos);
        Cifra {
            porcentaje: (!c.suprimido() && base > 0).then(|| porcentaje(alumnos, base)),
            alumnos: c,
            base,
        }
    }

    /// The percentage alone ("12.5"), or "—".
    pub fn pct(&self) -> String {
        self.porcentaje.map(decimal).unwrap_or_else(|| "—".into())
    }

    /// For tables: "12.5 % (8)", "<5", or "—" when nothing was recorded.
    pub fn texto(&self) -> String {
        match (self.alumnos, self.porcentaje) {
            (Conteo::Suprimido(_), _) => "<5".into(),
            (_, None) => "—".into(),
            (Conteo::Exacto(n), Some(p)) => format!("{} % ({n})", decimal(p)),
        }
    }
}

/// `12.5` → `"12.5"`, `12.0` → `"12"`.
pub fn decimal(p: f64) -> String {
    let s = format!("{p:.1}");
    s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
}

/// The four support counts the zone table shows per school.
pub const CAMPOS_TABLA: &[&str] = &[
    "apoyo_lectura",
    "apoyo_escritura",
    "apoyo_matematicas",
    "faltan_constantemente",
];

pub fn nombre_campo(campo: &str) -> &'static str {
    CAMPOS_CONCENTRADO
        .iter()
        .find(|c| c.0 == campo)
        .map(|c| c.1)
        .unwrap_or("otro")
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Sincronizacion {
    /// When a device of the school last synced its document (server time, RFC 3339).
    pub ultima: Option<String>,
    pub dias: Option<i64>,
    /// `al_dia`, `desactualizada` (14 days or more) or `nunca`.
    pub estado: String,
}

impl Sincronizacion {
    fn de(ultima: Option<i64>, ahora: i64) -> Sincronizacion {
        match ultima {
            None => Sincronizacion {
                ultima: None,
                dias: None,
                estado: "nunca".into(),
            },
            Some(t) => {
                let dias = ((ahora - t) / 86_400).max(0);
                Sincronizacion {
                    ultima: chrono::DateTime::from_timestamp(t, 0).map(|d| d.to_rfc3339()),
                    dias: Some(dias),
                    estado: if dias >= DIAS_DESACTUALIZADA {
                        "desactualizada"
                    } else {
                        "al_dia"
                    }
                    .into(),
                }
            }
        }
    }

    pub fn texto(&self) -> String {
        match self.dias {
            None => "nunca".into(),
            Some(0) => "hoy".into(),
            Some(1) => "hace 1 día".into(),
            Some(d) => format!("hace {d} días"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Sesiones {
    pub intensiva: u64,
    pub ordinaria: u64,
    pub extraordinaria: u64,
    /// Expected by the reference calendar on the date asked.
    pub intensiva_esperadas: u64,
    pub ordinaria_esperadas: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct EscuelaZona {
    pub cct: String,
    pub nombre: String,
    /// `preescolar`, `primaria`, `secundaria` or `otro` (from the CCT).
    pub nivel: String,
    /// Whether the school has a document for this ciclo on the server.
    pub con_documento: bool,
    pub sincronizacion: Sincronizacion,
    pub pemc_porcentaje: Option<u32>,
    /// Metas by nivel de logro: cumplida, avance_significativo, escaso_o_nulo, sin_registro.
    pub metas_por_logro: BTreeMap<String, u64>,
    pub acciones_por_estado: BTreeMap<String, u64>,
    /// Acuerdos pendiente or en_proceso.
    pub acuerdos_pendientes: u64,
    /// Of those, past their due date.
    pub acuerdos_vencidos: u64,
    pub sesiones: Sesiones,
    /// Students needing support by campo (`apoyo_lectura`, `apoyo_escritura`,
    /// `apoyo_matematicas`, `faltan_constantemente`), at the school's latest corte.
    pub apoyo: BTreeMap<String, Cifra>,
    pub apoyo_corte: Option<String>,
    pub conflictos: u64,
    /// The heads the figures were computed from (hex, comma-separated).
    pub heads: Option<String>,
    /// The server holds changes of this school that its figures do not include yet (they are
    /// being recomputed; docs/dashboard.md, "Cifras en actualización").
    pub cifras_en_actualizacion: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TotalesZona {
    pub escuelas: u64,
    pub con_documento: u64,
    pub desactualizadas: u64,
    pub nunca_sincronizadas: u64,
    /// Schools whose figures do not include all the changes the server holds yet.
    pub cifras_en_actualizacion: u64,
    /// Mean PEMC completeness over the schools with a document.
    pub pemc_promedio: Option<u32>,
    pub metas_por_logro: BTreeMap<String, u64>,
    pub acciones_por_estado: BTreeMap<String, u64>,
    pub acuerdos_pendientes: u64,
    pub acuerdos_vencidos: u64,
    pub sesiones_registradas: u64,
    pub conflictos: u64,
    /// Students in the groups of the schools' latest corte.
    pub alumnos: Conteo,
}

/// One bar of the zone's "situación actual" chart (seed 002).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct IndicadorZona {
    pub campo: String,
    pub nombre: String,
    pub cifra: Cifra,
    /// Schools that recorded this count.
    pub escuelas: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AmbitoFortalecer {
    pub ambito: String,
    pub nombre: String,
    /// Schools with at least one meta in this ámbito at "escaso o nulo avance".
    pub escuelas_con_escaso: u64,
    pub escuelas_con_metas: u64,
    pub escuelas_que_priorizan: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Acompanamiento {
    pub cct: String,
    pub nombre: String,
    pub puntos: u32,
    pub motivos: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ResumenZona {
    pub zona: String,
    pub nombre: String,
    pub ciclo: String,
    /// The date the figures that depend on it were computed for (`AAAA-MM-DD`).
    pub fecha: String,
    pub escuelas: Vec<EscuelaZona>,
    pub totales: TotalesZona,
    pub situacion: Vec<IndicadorZona>,
    pub ambitos_a_fortalecer: Vec<AmbitoFortalecer>,
    pub acompanamiento: Vec<Acompanamiento>,
}

/// Builds the zone summary from its rows.
pub fn resumen_zona(
    zona: &str,
    nombre: &str,
    ciclo: CicloEscolar,
    hoy: Fecha,
    ahora: i64,
    d: &DatosZona,
) -> ResumenZona {
    let (int_esp, ord_esp) = Calendario::de(ciclo).esperadas(hoy);
    let escuelas: Vec<EscuelaZona> = d
        .escuelas
        .iter()
        .map(|f| escuela_zona(f, d, ahora, int_esp, ord_esp))
        .collect();

    let mut metas_por_logro = BTreeMap::new();
    let mut acciones_por_estado = BTreeMap::new();
    for e in &escuelas {
        for (k, v) in &e.metas_por_logro {
            *metas_por_logro.entry(k.clone()).or_insert(0) += v;
        }
        for (k, v) in &e.acciones_por_estado {
            *acciones_por_estado.entry(k.clone()).or_insert(0) += v;
        }
    }
    let pemcs: Vec<u32> = escuelas.iter().filter_map(|e| e.pemc_porcentaje).collect();
    let totales = TotalesZona {
        escuelas: escuelas.len() as u64,
        con_documento: escuelas.iter().filter(|e| e.con_documento).count() as u64,
        desactualizadas: escuelas
            .iter()
            .filter(|e| e.sincronizacion.estado == "desactualizada")
            .count() as u64,
        nunca_sincronizadas: escuelas
            .iter()
            .filter(|e| e.sincronizacion.estado == "nunca")
            .count() as u64,
        cifras_en_actualizacion: escuelas
            .iter()
            .filter(|e| e.cifras_en_actualizacion)
            .count() as u64,
        pemc_promedio: (!pemcs.is_empty()).then(|| {
            (pemcs.iter().map(|p| f64::from(*p)).sum::<f64>() / pemcs.len() as f64).round() as u32
        }),
        metas_por_logro,
        acciones_por_estado,
        acuerdos_pendientes: escuelas.iter().map(|e| e.acuerdos_pendientes).sum(),
        acuerdos_vencidos: escuelas.iter().map(|e| e.acuerdos_vencidos).sum(),
        sesiones_registradas: escuelas
            .iter()
            .map(|e| e.sesiones.intensiva + e.sesiones.ordinaria + e.sesiones.extraordinaria)
            .sum(),
        conflictos: escuelas.iter().map(|e| e.conflictos).sum(),
        alumnos: Conteo::zona(
            d.escuelas
                .iter()
                .filter_map(|f| f.proyeccion.as_ref())
                .map(|c| u64::try_from(c.apoyo_total_alumnos).unwrap_or(0))
                .sum(),
        ),
    };

    let situacion = campos_situacion()
        .map(|(campo, nombre)| {
            let z = d.apoyo_zona.iter().find(|a| a.campo == campo);
            let (alumnos, base, esc) = z.map_or((0, 0, 0), |z| {
                (
                    u64::try_from(z.alumnos).unwrap_or(0),
                    u64::try_from(z.base).unwrap_or(0),
                    u64::try_from(z.escuelas).unwrap_or(0),
                )
            });
            IndicadorZona {
                campo: campo.to_string(),
                nombre: nombre.to_string(),
                cifra: Cifra::de(alumnos, base),
                escuelas: esc,
            }
        })
        .collect();

    let catalogo = Catalogo::para_ciclo(ciclo);
    let mut ambitos_a_fortalecer: Vec<AmbitoFortalecer> = d
        .ambitos
        .iter()
        .filter(|a| a.escuelas_con_escaso > 0)
        .map(|a| AmbitoFortalecer {
            nombre: catalogo.nombre(&a.ambito),
            ambito: a.ambito.clone(),
            escuelas_con_escaso: u64::try_from(a.escuelas_con_escaso).unwrap_or(0),
            escuelas_con_metas: u64::try_from(a.escuelas_con_metas).unwrap_or(0),
            escuelas_que_priorizan: u64::try_from(a.escuelas_que_priorizan).unwrap_or(0),
        })
        .collect();
    ambitos_a_fortalecer.sort_by(|a, b| {
        b.escuelas_con_escaso
            .cmp(&a.escuelas_con_escaso)
            .then(b.escuelas_que_priorizan.cmp(&a.escuelas_que_priorizan))
            .then(a.ambito.cmp(&b.ambito))
    });

    let mut acompanamiento: Vec<Acompanamiento> = escuelas
        .iter()
        .filter_map(|e| {
            let (puntos, motivos) = puntos_acompanamiento(e);
            (puntos >= PUNTOS_ACOMPANAMIENTO).then(|| Acompanamiento {
                cct: e.cct.clone(),
                nombre: e.nombre.clone(),
                puntos,
                motivos,
            })
        })
        .collect();
    let dias = |cct: &str| {
        escuelas
            .iter()
            .find(|e| e.cct == cct)
            .and_then(|e| e.sincronizacion.dias)
            .unwrap_or(i64::MAX)
    };
    acompanamiento.sort_by(|a, b| {
        b.puntos
            .cmp(&a.puntos)
            .then(dias(&b.cct).cmp(&dias(&a.cct)))
            .then(a.cct.cmp(&b.cct))
    });

    ResumenZona {
        zona: zona.to_string(),
        nombre: nombre.to_string(),
        ciclo: ciclo.to_string(),
        fecha: hoy.to_string(),
        escuelas,
        totales,
        situacion,
        ambitos_a_fortalecer,
        acompanamiento,
    }
}

fn nivel_de(cct: &str) -> String {
    Cct::parse(cct)
        .map(|c| c.nivel().as_str())
        .unwrap_or("otro")
        .to_string()
}

fn escuela_zona(
    f: &FilaEscuela,
    d: &DatosZona,
    ahora: i64,
    int_esp: u64,
    ord_esp: u64,
) -> EscuelaZona {
    let doc = f.documento.clone().unwrap_or_default();
    let conteos = d.conteos.get(&doc);
    let mapa = |g: &str| -> BTreeMap<String, u64> {
        conteos
            .and_then(|c| c.get(g))
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), u64::try_from(*v).unwrap_or(0)))
                    .collect()
            })
            .unwrap_or_default()
    };
    let acuerdos = d.acuerdos.get(&doc).cloned().unwrap_or_default();
    let ses = d.sesiones.get(&doc);
    let s = |fase: &str| {
        ses.and_then(|m| m.get(fase))
            .map_or(0, |n| u64::try_from(*n).unwrap_or(0))
    };
    let apoyo = CAMPOS_TABLA
        .iter()
        .filter_map(|campo| {
            let a = d.apoyo.get(&doc)?.get(*campo)?;
            (a.grupos > 0).then(|| (campo.to_string(), Cifra::de(a.alumnos, a.base)))
        })
        .collect();
    let cifras = f.proyeccion.as_ref();
    EscuelaZona {
        cct: f.cct.clone(),
        nombre: f.nombre.clone(),
        nivel: nivel_de(&f.cct),
        con_documento: f.documento.is_some(),
        sincronizacion: Sincronizacion::de(f.ultima_sync, ahora),
        pemc_porcentaje: cifras.map(|c| c.pemc.porcentaje),
        metas_por_logro: mapa("logro"),
        acciones_por_estado: mapa("accion"),
        acuerdos_pendientes: u64::try_from(acuerdos.abiertos).unwrap_or(0),
        acuerdos_vencidos: u64::try_from(acuerdos.vencidos).unwrap_or(0),
        sesiones: Sesiones {
            intensiva: s("intensiva"),
            ordinaria: s("ordinaria"),
            extraordinaria: s("extraordinaria"),
            intensiva_esperadas: int_esp,
            ordinaria_esperadas: ord_esp,
        },
        apoyo,
        apoyo_corte: cifras.and_then(|c| c.apoyo_corte.clone()),
        conflictos: cifras.map_or(0, |c| u64::try_from(c.conflictos).unwrap_or(0)),
        heads: cifras.map(|c| c.heads.clone()),
        cifras_en_actualizacion: match (f.version_guardada, cifras) {
            (Some(guardada), Some(c)) => c.version < guardada,
            (Some(_), None) => true,
            (None, _) => false,
        },
    }
}

/// The accompaniment rule (docs/dashboard.md repeats it): points per school, listed from 4.
/// - Days since the last sync: 14 or more, 2 points; 28 or more or never, 3.
/// - Acuerdos vencidos: 1 or 2, 1 point; 3 or more, 2.
/// - PEMC completeness under 50 %, 2 points; under 80 %, 1.
/// - A third or more of the metas with a recorded nivel de logro at escaso o nulo avance: 2.
/// - Fewer sesiones ordinarias recorded than the calendar expects, by 2 or more: 1.
/// - 30 % or more of students needing support in lectura, escritura or matemáticas: 1.
/// - Unresolved conflicts in its document: 1.
pub fn puntos_acompanamiento(e: &EscuelaZona) -> (u32, Vec<String>) {
    let mut puntos = 0;
    let mut motivos = Vec::new();
    match e.sincronizacion.dias {
        None => {
            puntos += 3;
            motivos.push("nunca ha sincronizado".to_string());
        }
        Some(d) if d >= 2 * DIAS_DESACTUALIZADA => {
            puntos += 3;
            motivos.push(format!("{d} días sin sincronizar"));
        }
        Some(d) if d >= DIAS_DESACTUALIZADA => {
            puntos += 2;
            motivos.push(format!("{d} días sin sincronizar"));
        }
        _ => {}
    }
    if e.acuerdos_vencidos > 0 {
        puntos += if e.acuerdos_vencidos >= 3 { 2 } else { 1 };
        motivos.push(format!("{} acuerdos vencidos", e.acuerdos_vencidos));
    }
    match e.pemc_porcentaje {
        Some(p) if p < 50 => {
            puntos += 2;
            motivos.push(format!("PEMC al {p} %"));
        }
        Some(p) if p < 80 => {
            puntos += 1;
            motivos.push(format!("PEMC al {p} %"));
        }
        _ => {}
    }
    let g = |k: &str| e.metas_por_logro.get(k).copied().unwrap_or(0);
    let con_logro = g("cumplida") + g("avance_significativo") + g("escaso_o_nulo");
    if g("escaso_o_nulo") > 0 && g("escaso_o_nulo") * 3 >= con_logro {
        puntos += 2;
        motivos.push(format!(
            "{} de {con_logro} metas con escaso o nulo avance",
            g("escaso_o_nulo")
        ));
    }
    if e.con_documento && e.sesiones.ordinaria + 2 <= e.sesiones.ordinaria_esperadas {
        puntos += 1;
        motivos.push(format!(
            "{} de {} sesiones ordinarias registradas",
            e.sesiones.ordinaria, e.sesiones.ordinaria_esperadas
        ));
    }
    let alto = ["apoyo_lectura", "apoyo_escritura", "apoyo_matematicas"]
        .iter()
        .filter_map(|c| {
            let p = e.apoyo.get(*c)?.porcentaje?;
            (p >= 30.0).then(|| format!("{} % requiere apoyo en {}", decimal(p), &c[6..]))
        })
        .collect::<Vec<_>>();
    if !alto.is_empty() {
        puntos += 1;
        motivos.extend(alto);
    }
    if e.conflictos > 0 {
        puntos += 1;
        motivos.push(format!("{} conflictos sin resolver", e.conflictos));
    }
    (puntos, motivos)
}

// ---------------------------------------------------------------------------------------------
// One school.

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AcuerdoEscuela {
    pub id: String,
    pub texto: String,
    pub responsables: Vec<String>,
    pub fecha_compromiso: Option<String>,
    pub estado: String,
    pub vencido: bool,
    pub dias_vencido: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct IndicadorEscuela {
    pub campo: String,
    pub nombre: String,
    pub alumnos: u64,
    pub base: u64,
    pub grupos: u64,
    pub porcentaje: Option<f64>,
}

impl IndicadorEscuela {
    pub fn pct(&self) -> String {
        self.porcentaje.map(decimal).unwrap_or_else(|| "—".into())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AmbitoEscuela {
    pub ambito: String,
    pub nombre: String,
    pub prioridad: Option<u64>,
    pub tiene_diagnostico: bool,
    pub objetivos: u64,
    pub metas: u64,
    pub metas_cumplida: u64,
    pub metas_avance: u64,
    pub metas_escaso: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ResumenEscuela {
    pub cct: String,
    pub nombre: String,
    pub nivel: String,
    pub zona: String,
    pub ciclo: String,
    pub fecha: String,
    pub sincronizacion: Sincronizacion,
    /// Heads and number of changes of the document the figures come from, and when (RFC 3339)
    /// they were computed.
    pub heads: String,
    pub cambios: u64,
    pub calculado: Option<String>,
    /// Present when the server holds changes these figures do not include yet.
    pub en_actualizacion: Option<EnActualizacion>,
    pub pemc: Completitud,
    pub metas_por_logro: BTreeMap<String, u64>,
    pub acciones_por_estado: BTreeMap<String, u64>,
    pub acuerdos: Vec<AcuerdoEscuela>,
    pub acuerdos_pendientes: u64,
    pub acuerdos_vencidos: u64,
    pub sesiones: Sesiones,
    pub apoyo_corte: Option<String>,
    pub apoyo_grupos: u64,
    pub apoyo_total_alumnos: u64,
    pub apoyo: Vec<IndicadorEscuela>,
    pub ambitos: Vec<AmbitoEscuela>,
    pub conflictos: u64,
    /// The whole read document (PEMC tree, sessions, concentrado por grupo): the shape of
    /// `bitacora export json`.
    #[schema(value_type = Object)]
    pub documento: serde_json::Value,
}

/// A school's figures lag behind what the server holds: how far, and since when.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct EnActualizacion {
    /// Arrivals of new changes (syncs or bundles) the figures do not include yet.
    pub envios_pendientes: u64,
    /// At most this many seconds of changes are missing (since the figures were computed).
    pub segundos: u64,
}

impl EnActualizacion {
    pub fn de(a: &crate::db::Atraso, ahora: i64) -> EnActualizacion {
        EnActualizacion {
            envios_pendientes: u64::try_from(a.versiones_detras()).unwrap_or(0),
            segundos: u64::try_from(a.segundos(ahora)).unwrap_or(0),
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub fn resumen_escuela(
    p: &Proyeccion,
    nombre_registro: &str,
    zona: &str,
    ciclo: CicloEscolar,
    hoy: Fecha,
    ahora: i64,
    ultima_sync: Option<i64>,
    calculado: Option<i64>,
) -> ResumenEscuela {
    let acuerdos: Vec<AcuerdoEscuela> = p
        .acuerdos
        .iter()
        .map(|a| {
            let abierto = a.estado == "pendiente" || a.estado == "en_proceso";
            let f = a
                .fecha_compromiso
                .as_deref()
                .and_then(|f| Fecha::parse(f).ok());
            let vencido = abierto && f.is_some_and(|f| f < hoy);
            AcuerdoEscuela {
                id: a.id.clone(),
                texto: a.texto.clone(),
                responsables: a.responsables.clone(),
                fecha_compromiso: a.fecha_compromiso.clone(),
                estado: a.estado.clone(),
                vencido,
                dias_vencido: if vencido {
                    f.map(|f| f.dias_hasta(hoy))
                } else {
                    None
                },
            }
        })
        .collect();
    let (int_esp, ord_esp) = Calendario::de(ciclo).esperadas(hoy);
    let s = |fase: &str| p.sesiones.iter().filter(|s| s.fase == fase).count() as u64;
    let catalogo = Catalogo::por_version(&p.detalle.catalogo);
    ResumenEscuela {
        cct: p.cct.clone(),
        nombre: p
            .nombre
            .clone()
            .unwrap_or_else(|| nombre_registro.to_string()),
        nivel: nivel_de(&p.cct),
        zona: zona.to_string(),
        ciclo: p.ciclo.clone(),
        fecha: hoy.to_string(),
        sincronizacion: Sincronizacion::de(ultima_sync, ahora),
        heads: p.heads.clone(),
        cambios: p.cambios,
        calculado: calculado
            .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
            .map(|d| d.to_rfc3339()),
        en_actualizacion: None,
        pemc: p.pemc.clone(),
        metas_por_logro: p.metas_por_logro.clone(),
        acciones_por_estado: p.acciones_por_estado.clone(),
        acuerdos_pendientes: acuerdos
            .iter()
            .filter(|a| a.estado == "pendiente" || a.estado == "en_proceso")
            .count() as u64,
        acuerdos_vencidos: acuerdos.iter().filter(|a| a.vencido).count() as u64,
        acuerdos,
        sesiones: Sesiones {
            intensiva: s("intensiva"),
            ordinaria: s("ordinaria"),
            extraordinaria: s("extraordinaria"),
            intensiva_esperadas: int_esp,
            ordinaria_esperadas: ord_esp,
        },
        apoyo_corte: p.apoyo_corte.clone(),
        apoyo_grupos: p.apoyo_grupos,
        apoyo_total_alumnos: p.apoyo_total_alumnos,
        apoyo: p
            .apoyo
            .iter()
            .map(|a| IndicadorEscuela {
                campo: a.campo.clone(),
                nombre: nombre_campo(&a.campo).to_string(),
                alumnos: a.alumnos,
                base: a.base,
                grupos: a.grupos,
                porcentaje: (a.grupos > 0).then(|| a.porcentaje()),
            })
            .collect(),
        ambitos: p
            .ambitos
            .iter()
            .map(|a| AmbitoEscuela {
                nombre: catalogo
                    .map(|c| c.nombre(&a.ambito))
                    .unwrap_or_else(|| a.ambito.clone()),
                ambito: a.ambito.clone(),
                prioridad: a.prioridad,
                tiene_diagnostico: a.tiene_diagnostico,
                objetivos: a.objetivos,
                metas: a.metas,
                metas_cumplida: a.metas_cumplida,
                metas_avance: a.metas_avance,
                metas_escaso: a.metas_escaso,
            })
            .collect(),
        conflictos: p.conflictos,
        documento: serde_json::to_value(&p.detalle).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_counts_are_suppressed_at_zone_level() {
        assert_eq!(Conteo::zona(0), Conteo::Exacto(0));
        assert!(Conteo::zona(1).suprimido());
        assert!(Conteo::zona(4).suprimido());
        assert_eq!(Conteo::zona(5), Conteo::Exacto(5));
        assert_eq!(serde_json::to_string(&Conteo::zona(3)).unwrap(), "\"<5\"");
        assert_eq!(serde_json::to_string(&Conteo::zona(7)).unwrap(), "7");
        let c = Cifra::de(3, 40);
        assert_eq!(c.porcentaje, None, "a percentage would reveal the count");
        assert_eq!(c.texto(), "<5");
        assert_eq!(Cifra::de(8, 64).texto(), "12.5 % (8)");
    }

    #[test]
    fn staleness() {
        let ahora = 1_800_000_000;
        assert_eq!(Sincronizacion::de(None, ahora).estado, "nunca");
        assert_eq!(
            Sincronizacion::de(Some(ahora - 13 * 86_400), ahora).estado,
            "al_dia"
        );
        let s = Sincronizacion::de(Some(ahora - 14 * 86_400), ahora);
        assert_eq!((s.estado.as_str(), s.dias), ("desactualizada", Some(14)));
    }
}
