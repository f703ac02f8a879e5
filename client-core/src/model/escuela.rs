//! The school document (one per CCT x ciclo): PEMC, sesiones de CTE, acuerdos y compromisos
//! (the Cuaderno de Bitácora) and the concentrado por grupo. Brief section 2.
//!
//! Layout at the root (every collection is a map keyed by a generated [`RecordId`]):
//! `schema_version`, `tipo`, `cct`, `ciclo`, `catalogo`, `nombre`, `zona`, `autores`,
//! `pemc/{diagnostico/<ámbito>, objetivos, metas, acciones, seguimiento}`, `sesiones`,
//! `acuerdos`, `concentrado` (flat scalar keys `<grado><grupo>.<corte>.<campo>`).

use std::collections::BTreeMap;

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjType, ROOT, ReadDoc};
use serde::{Deserialize, Serialize};

use super::{
    Campo, Ctx, DocKind, ObjId, SCHEMA_VERSION, archivar, cambio, coleccion_obj, creado,
    crear_registro, en_conflicto, escribir, genesis, get_bool, get_f64, get_set, get_str, get_text,
    get_u64, mapa, registro, registros, schema_version,
};
use crate::catalogo::Catalogo;
use crate::error::ModelError;
use crate::ids::{Cct, CicloEscolar, DocumentId, Fecha, RecordId};

macro_rules! enum_str {
    ($(#[$m:meta])* $name:ident, $campo:literal, [$($var:ident = $s:literal),+ $(,)?]) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($var),+ }
        impl $name {
            pub const TODOS: &'static [$name] = &[$($name::$var),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$var => $s),+ }
            }
            pub fn parse(s: &str) -> Result<$name, ModelError> {
                match s.trim() {
                    $($s => Ok($name::$var),)+
                    _ => Err(ModelError::invalid($campo, s, concat!("se acepta uno de: ", $($s, " "),+).trim_end().to_string())),
                }
            }
        }
        impl std::str::FromStr for $name {
            type Err = ModelError;
            fn from_str(s: &str) -> Result<Self, ModelError> { $name::parse(s) }
        }
    };
}

enum_str!(
    /// Status of an acuerdo / compromiso.
    EstadoAcuerdo, "estado del acuerdo",
    [Pendiente = "pendiente", EnProceso = "en_proceso", Cumplido = "cumplido", Cancelado = "cancelado"]
);
enum_str!(
    /// Status of a PEMC acción.
    EstadoAccion, "estado de la acción",
    [Pendiente = "pendiente", EnProceso = "en_proceso", Realizada = "realizada", Cancelada = "cancelada"]
);
enum_str!(
    /// Nivel de logro of a meta (seed 002).
    NivelLogro, "nivel de logro",
    [Cumplida = "cumplida", AvanceSignificativo = "avance_significativo", EscasoONulo = "escaso_o_nulo"]
);
enum_str!(
    /// Phase of a CTE session.
    Fase, "fase",
    [Intensiva = "intensiva", Ordinaria = "ordinaria", Extraordinaria = "extraordinaria"]
);
enum_str!(
    /// Cut of the concentrado por grupo.
    Corte, "corte",
    [Diagnostico = "diagnostico", Intermedio = "intermedio", Cierre = "cierre"]
);

/// The counts of the concentrado por grupo (seed 002), in display order.
pub const CAMPOS_CONCENTRADO: &[(&str, &str)] = &[
    ("inscritos_inicio", "alumnos al inicio del ciclo"),
    ("inscritos_fin", "alumnos al final del ciclo"),
    ("promedio_9_10", "promovidos con promedio de 9 a 10"),
    ("promedio_8_9", "promovidos con promedio de 8 a 8.9"),
    ("promedio_7_8", "promovidos con promedio de 7 a 7.9"),
    ("promedio_6_7", "promovidos con promedio de 6 a 6.9"),
    ("promovidos_condiciones", "promovidos con condiciones"),
    ("no_promovidos", "no promovidos"),
    ("apoyo_lectura", "requieren apoyo en lectura"),
    ("apoyo_escritura", "requieren apoyo en escritura"),
    ("apoyo_matematicas", "requieren apoyo en matemáticas"),
    ("faltan_constantemente", "faltan constantemente"),
    ("no_se_involucran", "no se involucran en clase"),
    (
        "dificultad_relacionarse",
        "dificultad para autorregularse o relacionarse",
    ),
];

/// Keys whose sum cannot exceed the students of the group: the outcome categories.
const CATEGORIAS_RESULTADO: &[&str] = &[
    "promedio_9_10",
    "promedio_8_9",
    "promedio_7_8",
    "promedio_6_7",
    "promovidos_condiciones",
    "no_promovidos",
];

// ---------------------------------------------------------------------------------------------
// Views: what readers get. Fields are plain data; statuses stay strings so that a value written
// by a newer version is shown rather than dropped.

/// The whole school document, read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Escuela {
    pub documento: String,
    pub schema_version: u64,
    pub cct: String,
    pub ciclo: String,
    pub catalogo: String,
    pub nombre: Option<String>,
    pub zona: Option<String>,
    pub diagnostico: Vec<Diagnostico>,
    pub objetivos: Vec<Objetivo>,
    pub metas: Vec<Meta>,
    pub acciones: Vec<Accion>,
    pub seguimiento: Vec<Seguimiento>,
    pub sesiones: Vec<Sesion>,
    pub acuerdos: Vec<Acuerdo>,
    pub concentrado: Vec<Concentrado>,
    /// actor id (hex) -> name of the person using that device.
    pub autores: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Diagnostico {
    pub ambito: String,
    pub nombre: String,
    pub texto: String,
    pub prioridad: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Objetivo {
    pub id: String,
    pub texto: String,
    pub para_que: String,
    pub ambitos: Vec<String>,
    pub creado: i64,
    pub archivado: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    pub id: String,
    pub objetivo: String,
    pub descripcion: String,
    pub indicador: String,
    pub linea_base: Option<f64>,
    pub valor_meta: Option<f64>,
    pub unidad: String,
    pub fecha_limite: Option<String>,
    /// Nivel de logro of the latest seguimiento entry, if any.
    pub nivel_logro: Option<String>,
    pub creado: i64,
    pub archivado: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Accion {
    pub id: String,
    pub meta: String,
    pub descripcion: String,
    pub responsables: Vec<String>,
    pub recursos: String,
    pub costo: Option<f64>,
    pub inicio: Option<String>,
    pub fin: Option<String>,
    pub estado: String,
    pub creado: i64,
    pub archivado: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Seguimiento {
    pub id: String,
    pub meta: Option<String>,
    pub accion: Option<String>,
    pub fecha: Option<String>,
    pub nivel_logro: Option<String>,
    pub evidencia: String,
    pub registrado_por: Option<String>,
    pub creado: i64,
    pub archivado: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sesion {
    pub id: String,
    pub fase: String,
    pub numero: Option<u64>,
    pub fecha: Option<String>,
    pub asistentes: Vec<String>,
    pub proposito: String,
    pub productos: String,
    pub practicas: String,
    pub creado: i64,
    pub archivado: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Acuerdo {
    pub id: String,
    pub texto: String,
    pub responsables: Vec<String>,
    pub fecha_compromiso: Option<String>,
    pub sesion_origen: Option<String>,
    pub estado: String,
    pub sesion_revision: Option<String>,
    /// Fields of this acuerdo with unresolved concurrent values (see `conflictos`).
    pub en_conflicto: Vec<String>,
    pub creado: i64,
    pub archivado: bool,
}

/// The counts of one group (grado + grupo) at one corte. `None`: not recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Concentrado {
    pub grado: u64,
    pub grupo: String,
    pub corte: String,
    pub conteos: BTreeMap<String, u64>,
}

impl Concentrado {
    pub fn get(&self, campo: &str) -> Option<u64> {
        self.conteos.get(campo).copied()
    }

    /// The number of students percentages are computed against: at the end of the cycle if
    /// recorded, else at its start.
    pub fn total_alumnos(&self) -> Option<u64> {
        self.get("inscritos_fin").or(self.get("inscritos_inicio"))
    }
}

// ---------------------------------------------------------------------------------------------
// Genesis and reading.

/// The deterministic genesis of a school's document for a ciclo. Frozen: see
/// `genesis_is_frozen` in the tests.
pub fn genesis_escuela(cct: &Cct, ciclo: CicloEscolar) -> Result<AutoCommit, ModelError> {
    let id = DocumentId::escuela(cct, ciclo);
    let catalogo = Catalogo::para_ciclo(ciclo);
    genesis(&id, |doc| {
        doc.put(ROOT, "schema_version", SCHEMA_VERSION)?;
        doc.put(ROOT, super::KEY_TIPO, DocKind::Escuela.as_str())?;
        doc.put(ROOT, "cct", cct.as_str())?;
        doc.put(ROOT, "ciclo", ciclo.to_string())?;
        doc.put(ROOT, "catalogo", catalogo.version)?;
        doc.put_object(ROOT, "autores", ObjType::Map)?;
        let pemc = doc.put_object(ROOT, "pemc", ObjType::Map)?;
        let diag = doc.put_object(&pemc, "diagnostico", ObjType::Map)?;
        for a in catalogo.ambitos {
            let e = doc.put_object(&diag, a.clave, ObjType::Map)?;
            doc.put_object(&e, "texto", ObjType::Text)?;
        }
        for c in ["objetivos", "metas", "acciones", "seguimiento"] {
            doc.put_object(&pemc, c, ObjType::Map)?;
        }
        for c in ["sesiones", "acuerdos", "concentrado"] {
            doc.put_object(ROOT, c, ObjType::Map)?;
        }
        Ok(())
    })
}

fn catalogo_de(doc: &AutoCommit) -> &'static Catalogo {
    get_str(doc, &ROOT, "catalogo")
        .and_then(|v| Catalogo::por_version(&v))
        .unwrap_or_else(|| {
            let ciclo = get_str(doc, &ROOT, "ciclo").and_then(|c| CicloEscolar::parse(&c).ok());
            Catalogo::para_ciclo(
                ciclo.unwrap_or_else(|| CicloEscolar::parse("2019-2020").expect("literal")),
            )
        })
}

fn fecha_opt(doc: &AutoCommit, obj: &ObjId, key: &str) -> Option<String> {
    get_str(doc, obj, key).filter(|s| !s.is_empty())
}

/// Reads the school document into its view.
pub fn leer(doc: &AutoCommit) -> Result<Escuela, ModelError> {
    if super::doc_kind(doc) != Some(DocKind::Escuela) {
        return Err(ModelError::Shape("no es un documento de escuela".into()));
    }
    let cct = get_str(doc, &ROOT, "cct").unwrap_or_default();
    let ciclo = get_str(doc, &ROOT, "ciclo").unwrap_or_default();
    let documento = match (Cct::parse(&cct), CicloEscolar::parse(&ciclo)) {
        (Ok(c), Ok(y)) => DocumentId::escuela(&c, y).to_string(),
        _ => String::new(),
    };
    let catalogo = catalogo_de(doc);
    let pemc = mapa(doc, &ROOT, "pemc")?;
    let diag = mapa(doc, &pemc, "diagnostico")?;
    let mut diagnostico: Vec<Diagnostico> = registros(doc, &diag)
        .into_iter()
        .map(|(ambito, obj)| Diagnostico {
            nombre: catalogo.nombre(&ambito),
            texto: get_text(doc, &obj, "texto"),
            prioridad: get_u64(doc, &obj, "prioridad"),
            ambito,
        })
        .collect();
    let orden = |k: &str| {
        catalogo
            .ambitos
            .iter()
            .position(|a| a.clave == k)
            .unwrap_or(usize::MAX)
    };
    diagnostico.sort_by_key(|d| orden(&d.ambito));

    let mut seguimiento: Vec<Seguimiento> =
        leer_coleccion(doc, &pemc, "seguimiento", |doc, id, obj| Seguimiento {
            id,
            meta: get_str(doc, obj, "meta"),
            accion: get_str(doc, obj, "accion"),
            fecha: fecha_opt(doc, obj, "fecha"),
            nivel_logro: get_str(doc, obj, "nivel_logro"),
            evidencia: get_text(doc, obj, "evidencia"),
            registrado_por: get_str(doc, obj, "registrado_por"),
            creado: creado(doc, obj),
            archivado: get_bool(doc, obj, "archivado"),
        });
    seguimiento.sort_by(|a, b| (&a.fecha, a.creado, &a.id).cmp(&(&b.fecha, b.creado, &b.id)));

    let metas = leer_coleccion(doc, &pemc, "metas", |doc, id, obj| {
        let nivel_logro = seguimiento
            .iter()
            .rfind(|s| {
                !s.archivado && s.meta.as_deref() == Some(id.as_str()) && s.nivel_logro.is_some()
            })
            .and_then(|s| s.nivel_logro.clone());
        Meta {
            objetivo: get_str(doc, obj, "objetivo").unwrap_or_default(),
            descripcion: get_text(doc, obj, "descripcion"),
            indicador: get_str(doc, obj, "indicador").unwrap_or_default(),
            linea_base: get_f64(doc, obj, "linea_base"),
            valor_meta: get_f64(doc, obj, "valor_meta"),
            unidad: get_str(doc, obj, "unidad").unwrap_or_default(),
            fecha_limite: fecha_opt(doc, obj, "fecha_limite"),
            nivel_logro,
            creado: creado(doc, obj),
            archivado: get_bool(doc, obj, "archivado"),
            id,
        }
    });

    Ok(Escuela {
        documento,
        schema_version: schema_version(doc).unwrap_or(1),
        nombre: get_str(doc, &ROOT, "nombre"),
        zona: get_str(doc, &ROOT, "zona"),
        catalogo: catalogo.version.to_string(),
        diagnostico,
        objetivos: leer_coleccion(doc, &pemc, "objetivos", |doc, id, obj| Objetivo {
            id,
            texto: get_text(doc, obj, "texto"),
            para_que: get_text(doc, obj, "para_que"),
            ambitos: get_set(doc, obj, "ambitos"),
            creado: creado(doc, obj),
            archivado: get_bool(doc, obj, "archivado"),
        }),
        metas,
        acciones: leer_coleccion(doc, &pemc, "acciones", |doc, id, obj| Accion {
            id,
            meta: get_str(doc, obj, "meta").unwrap_or_default(),
            descripcion: get_text(doc, obj, "descripcion"),
            responsables: get_set(doc, obj, "responsables"),
            recursos: get_text(doc, obj, "recursos"),
            costo: get_f64(doc, obj, "costo"),
            inicio: fecha_opt(doc, obj, "inicio"),
            fin: fecha_opt(doc, obj, "fin"),
            estado: get_str(doc, obj, "estado").unwrap_or_else(|| "pendiente".into()),
            creado: creado(doc, obj),
            archivado: get_bool(doc, obj, "archivado"),
        }),
        seguimiento,
        sesiones: leer_sesiones(doc)?,
        acuerdos: leer_acuerdos(doc)?,
        concentrado: leer_concentrado(doc)?,
        autores: leer_autores(doc),
        cct,
        ciclo,
    })
}

/// Reads every record of a collection in creation order.
pub(crate) fn leer_coleccion<T>(
    doc: &AutoCommit,
    padre: &ObjId,
    nombre: &str,
    f: impl Fn(&AutoCommit, String, &ObjId) -> T,
) -> Vec<T> {
    let Ok(coll) = mapa(doc, padre, nombre) else {
        return Vec::new();
    };
    let mut items: Vec<(i64, String, ObjId)> = registros(doc, &coll)
        .into_iter()
        .map(|(id, obj)| (creado(doc, &obj), id, obj))
        .collect();
    items.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    items
        .into_iter()
        .map(|(_, id, obj)| f(doc, id, &obj))
        .collect()
}

pub(crate) fn leer_autores(doc: &AutoCommit) -> BTreeMap<String, String> {
    let Ok(autores) = mapa(doc, &ROOT, "autores") else {
        return BTreeMap::new();
    };
    doc.keys(&autores)
        .filter_map(|k| get_str(doc, &autores, &k).map(|v| (k, v)))
        .collect()
}

/// Sesiones at the root (shared by the school and the zone document).
pub(crate) fn leer_sesiones(doc: &AutoCommit) -> Result<Vec<Sesion>, ModelError> {
    Ok(leer_coleccion(doc, &ROOT, "sesiones", |doc, id, obj| {
        Sesion {
            id,
            fase: get_str(doc, obj, "fase").unwrap_or_default(),
            numero: get_u64(doc, obj, "numero"),
            fecha: fecha_opt(doc, obj, "fecha"),
            asistentes: get_set(doc, obj, "asistentes"),
            proposito: get_text(doc, obj, "proposito"),
            productos: get_text(doc, obj, "productos"),
            practicas: get_text(doc, obj, "practicas"),
            creado: creado(doc, obj),
            archivado: get_bool(doc, obj, "archivado"),
        }
    }))
}

/// Acuerdos at the root (shared by the school and the zone document).
pub(crate) fn leer_acuerdos(doc: &AutoCommit) -> Result<Vec<Acuerdo>, ModelError> {
    Ok(leer_coleccion(doc, &ROOT, "acuerdos", |doc, id, obj| {
        Acuerdo {
            id,
            texto: get_text(doc, obj, "texto"),
            responsables: get_set(doc, obj, "responsables"),
            fecha_compromiso: fecha_opt(doc, obj, "fecha_compromiso"),
            sesion_origen: get_str(doc, obj, "sesion_origen"),
            estado: get_str(doc, obj, "estado").unwrap_or_else(|| "pendiente".into()),
            sesion_revision: get_str(doc, obj, "sesion_revision"),
            en_conflicto: [
                "estado",
                "fecha_compromiso",
                "sesion_origen",
                "sesion_revision",
                "archivado",
            ]
            .into_iter()
            .filter(|k| en_conflicto(doc, obj, k))
            .map(String::from)
            .collect(),
            creado: creado(doc, obj),
            archivado: get_bool(doc, obj, "archivado"),
        }
    }))
}

fn clave_concentrado(grado: u64, grupo: &str, corte: Corte, campo: &str) -> String {
    format!("{grado}{grupo}.{}.{campo}", corte.as_str())
}

fn leer_concentrado(doc: &AutoCommit) -> Result<Vec<Concentrado>, ModelError> {
    let obj = mapa(doc, &ROOT, "concentrado")?;
    let mut grupos: BTreeMap<(u64, String, String), Concentrado> = BTreeMap::new();
    for key in doc.keys(&obj) {
        let mut parts = key.splitn(3, '.');
        let (Some(gg), Some(corte), Some(campo)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let split = gg.find(|c: char| !c.is_ascii_digit()).unwrap_or(gg.len());
        let Ok(grado) = gg[..split].parse::<u64>() else {
            continue;
        };
        let Some(n) = get_u64(doc, &obj, &key) else {
            continue;
        };
        let grupo = gg[split..].to_string();
        grupos
            .entry((grado, grupo.clone(), corte.to_string()))
            .or_insert_with(|| Concentrado {
                grado,
                grupo,
                corte: corte.to_string(),
                conteos: BTreeMap::new(),
            })
            .conteos
            .insert(campo.to_string(), n);
    }
    let orden = |c: &str| Corte::parse(c).map(|c| c as usize).unwrap_or(usize::MAX);
    let mut v: Vec<Concentrado> = grupos.into_values().collect();
    v.sort_by(|a, b| {
        (orden(&a.corte), a.grado, &a.grupo).cmp(&(orden(&b.corte), b.grado, &b.grupo))
    });
    Ok(v)
}

// ---------------------------------------------------------------------------------------------
// Operations. Each is one change; inputs are already-parsed newtypes or checked here.

fn no_vacio(campo: &'static str, s: &str) -> Result<(), ModelError> {
    if s.trim().is_empty() {
        return Err(ModelError::invalid(campo, s, "no puede estar vacío"));
    }
    Ok(())
}

fn nombres(campo: &'static str, v: &[String]) -> Result<Vec<String>, ModelError> {
    let mut out: Vec<String> = Vec::new();
    for n in v {
        let t = n.trim();
        if t.is_empty() || t.chars().count() > 120 {
            return Err(ModelError::invalid(
                campo,
                n,
                "se espera un nombre de 1 a 120 caracteres",
            ));
        }
        if !out.iter().any(|o| o == t) {
            out.push(t.to_string());
        }
    }
    Ok(out)
}

/// Records the school's name and zone (set by `init`; a later different value is a conflict
/// visible to everyone until resolved).
pub fn registrar(
    doc: &mut AutoCommit,
    ctx: &Ctx<'_>,
    nombre: &str,
    zona: &str,
) -> Result<(), ModelError> {
    no_vacio("nombre de la escuela", nombre)?;
    cambio(doc, ctx, "Datos de la escuela registrados", |doc| {
        escribir(doc, &ROOT, "nombre", Campo::Str(nombre.trim()))?;
        escribir(doc, &ROOT, "zona", Campo::Str(zona))
    })
}

/// Edits the diagnóstico of one ámbito: its text (merged by character) and/or priority rank.
pub fn diagnostico(
    doc: &mut AutoCommit,
    ctx: &Ctx<'_>,
    ambito: &str,
    texto: Option<&str>,
    prioridad: Option<u64>,
) -> Result<(), ModelError> {
    let cat = catalogo_de(doc);
    let a = cat.ambito(ambito)?;
    if let Some(p) = prioridad
        && !(1..=cat.ambitos.len() as u64).contains(&p)
    {
        return Err(ModelError::invalid(
            "prioridad",
            p.to_string(),
            format!("se espera un número de 1 a {}", cat.ambitos.len()),
        ));
    }
    cambio(
        doc,
        ctx,
        &format!("Diagnóstico editado: {}", a.clave),
        |doc| {
            let obj = registro_diagnostico(doc, a.clave)?;
            if let Some(t) = texto {
                escribir(doc, &obj, "texto", Campo::Texto(t))?;
            }
            if let Some(p) = prioridad {
                escribir(doc, &obj, "prioridad", Campo::Uint(p))?;
            }
            Ok(())
        },
    )
}

fn registro_diagnostico(doc: &AutoCommit, clave: &str) -> Result<ObjId, ModelError> {
    let diag = coleccion_obj(doc, "pemc/diagnostico")?;
    mapa(doc, &diag, clave)
}

/// A new objetivo of the PEMC.
#[derive(Debug, Clone)]
pub struct NuevoObjetivo {
    pub texto: String,
    pub para_que: String,
    pub ambitos: Vec<String>,
}

pub fn agregar_objetivo(
    doc: &mut AutoCommit,
    ctx: &Ctx<'_>,
    id: &RecordId,
    o: &NuevoObjetivo,
) -> Result<(), ModelError> {
    no_vacio("texto del objetivo", &o.texto)?;
    let cat = catalogo_de(doc);
    if o.ambitos.is_empty() {
        return Err(ModelError::invalid(
            "ámbito",
            "",
            "indique al menos un ámbito del objetivo",
        ));
    }
    let ambitos = o
        .ambitos
        .iter()
        .map(|a| cat.ambito(a).map(|a| a.clave.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    cambio(doc, ctx, &format!("Objetivo agregado: {id}"), |doc| {
        crear_registro(
            doc,
            ctx,
            "pemc/objetivos",
            id,
            &[
                ("texto", Campo::Texto(o.texto.trim())),
                ("para_que", Campo::Texto(o.para_que.trim())),
                ("ambitos", Campo::Conjunto(&ambitos)),
            ],
        )
        .map(|_| ())
    })
}

/// A new meta of an objetivo: ¿cuánto? ¿de qué manera? ¿cuándo?
#[derive(Debug, Clone)]
pub struct NuevaMeta {
    pub objetivo: RecordId,
    pub descripcion: String,
    pub indicador: String,
    pub linea_base: Option<f64>,
    pub valor_meta: Option<f64>,
    pub unidad: String,
    pub fecha_limite: Option<Fecha>,
}

fn numero(campo: &'static str, v: Option<f64>) -> Result<(), ModelError> {
    match v {
        Some(f) if !f.is_finite() || f < 0.0 => Err(ModelError::invalid(
            campo,
            f.to_string(),
            "se espera un número mayor o igual a 0",
        )),
        _ => Ok(()),
    }
}

pub fn agregar_meta(
    doc: &mut AutoCommit,
    ctx: &Ctx<'_>,
    id: &RecordId,
    m: &NuevaMeta,
) -> Result<(), ModelError> {
    no_vacio("descripción de la meta", &m.descripcion)?;
    numero("línea base", m.linea_base)?;
    numero("valor meta", m.valor_meta)?;
    registro(doc, "pemc/objetivos", "objetivo", &m.objetivo)?;
    let fecha = m.fecha_limite.map(|f| f.to_string());
    cambio(doc, ctx, &format!("Meta agregada: {id}"), |doc| {
        let mut campos = vec![
            ("objetivo", Campo::Str(m.objetivo.as_str())),
            ("descripcion", Campo::Texto(m.descripcion.trim())),
            ("indicador", Campo::Str(m.indicador.trim())),
            ("unidad", Campo::Str(m.unidad.trim())),
        ];
        if let Some(v) = m.linea_base {
            campos.push(("linea_base", Campo::F64(v)));
        }
        if let Some(v) = m.valor_meta {
            campos.push(("valor_meta", Campo::F64(v)));
        }
        if let Some(f) = &fecha {
            campos.push(("fecha_limite", Campo::Str(f)));
        }
        crear_registro(doc, ctx, "pemc/metas", id, &campos).map(|_| ())
    })
}

/// Records a seguimiento entry with the nivel de logro of a meta and its evidence.
pub fn registrar_logro(
    doc: &mut AutoCommit,
    ctx: &Ctx<'_>,
    id: &RecordId,
    meta: &RecordId,
    nivel: NivelLogro,
    evidencia: &str,
    fecha: Fecha,
) -> Result<(), ModelError> {
    registro(doc, "pemc/metas", "meta", meta)?;
    let actor = doc.get_actor().to_hex_string();
    let fecha = fecha.to_string();
    cambio(
        doc,
        ctx,
        &format!("Logro de la meta {meta}: {}", nivel.as_str()),
        |doc| {
            crear_registro(
                doc,
                ctx,
                "pemc/seguimiento",
                id,
                &[
                    ("meta", Campo::Str(meta.as_str())),
                    ("nivel_logro", Campo::Str(nivel.as_str())),
                    ("evidencia", Campo::Texto(evidencia.trim())),
                    ("fecha", Campo::Str(&fecha)),
                    ("registrado_por", Campo::Str(&actor)),
                ],
            )
            .map(|_| ())
        },
    )
}

/// A new acción of a meta.
#[derive(Debug, Clone)]
pub struct NuevaAccion {
    pub meta: RecordId,
    pub descripcion: String,
    pub responsables: Vec<String>,
    pub recursos: String,
    pub costo: Option<f64>,
    pub inicio: Option<Fecha>,
    pub fin: Option<Fecha>,
}

pub fn agregar_accion(
    doc: &mut AutoCommit,
    ctx: &Ctx<'_>,
    id: &RecordId,
    a: &NuevaAccion,
) -> Result<(), ModelError> {
    no_vacio("descripción de la acción", &a.descripcion)?;
    numero("costo", a.costo)?;
    let responsables = nombres("responsable", &a.responsables)?;
    if let (Some(i), Some(f)) = (a.inicio, a.fin)
        && f < i
    {
        return Err(ModelError::invalid(
            "fecha de fin",
            f.to_string(),
            format!("no puede ser anterior al inicio ({i})"),
        ));
    }
    registro(doc, "pemc/metas", "meta", &a.meta)?;
    let (inicio, fin) = (
        a.inicio.map(|f| f.to_string()),
        a.fin.map(|f| f.to_string()),
    );
    cambio(doc, ctx, &format!("Acción agregada: {id}"), |doc| {
        let mut campos = vec![
            ("meta", Campo::Str(a.meta.as_str())),
            ("descripcion", Campo::Texto(a.descripcion.trim())),
            ("responsables", Campo::Conjunto(&responsables)),
            ("recursos", Campo::Texto(a.recursos.trim())),
            ("estado", Campo::Str(EstadoAccion::Pendiente.as_str())),
        ];
        if let Some(c) = a.costo {
            campos.push(("costo", Campo::F64(c)));
        }
        if let Some(f) = &inicio {
            campos.push(("inicio", Campo::Str(f)));
        }
        if let Some(f) = &fin {
            campos.push(("fin", Campo::Str(f)));
        }
        crear_registro(doc, ctx, "pemc/acciones", id, &campos).map(|_| ())
    })
}

pub fn estado_accion(
    doc: &mut AutoCommit,
    ctx: &Ctx<'_>,
    id: &RecordId,
    estado: EstadoAccion,
) -> Result<(), ModelError> {
    let obj = registro(doc, "pemc/acciones", "acción", id)?;
    cambio(
        doc,
        ctx,
        &format!("Estado de la acción {id}: {}", estado.as_str()),
        |doc| escribir(doc, &obj, "estado", Campo::Str(estado.as_str())),
    )
}

/// A new CTE (or CTZ) session.
#[derive(Debug, Clone)]
pub struct NuevaSesion {
    pub fase: Fase,
    pub numero: u64,
    pub fecha: Fecha,
    pub asistentes: Vec<String>,
    pub proposito: String,
    pub productos: String,
    pub practicas: String,
}

pub fn agregar_sesion(
    doc: &mut AutoCommit,
    ctx: &Ctx<'_>,
    id: &RecordId,
    s: &NuevaSesion,
) -> Result<(), ModelError> {
    let max = match s.fase {
        Fase::Intensiva => 5,
        Fase::Ordinaria => 8,
        Fase::Extraordinaria => 20,
    };
    if !(1..=max).contains(&s.numero) {
        return Err(ModelError::invalid(
            "número de sesión",
            s.numero.to_string(),
            format!(
                "la fase {} tiene sesiones de la 1 a la {max}",
                s.fase.as_str()
            ),
        ));
    }
    let asistentes = nombres("asistente", &s.asistentes)?;
    let fecha = s.fecha.to_string();
    cambio(
        doc,
        ctx,
        &format!("Sesión agregada: {id} ({} {})", s.fase.as_str(), s.numero),
        |doc| {
            crear_registro(
                doc,
                ctx,
                "sesiones",
                id,
                &[
                    ("fase", Campo::Str(s.fase.as_str())),
                    ("numero", Campo::Uint(s.numero)),
                    ("fecha", Campo::Str(&fecha)),
                    ("asistentes", Campo::Conjunto(&asistentes)),
                    ("proposito", Campo::Texto(s.proposito.trim())),
                    ("productos", Campo::Texto(s.productos.trim())),
                    ("practicas", Campo::Texto(s.practicas.trim())),
                ],
            )
            .map(|_| ())
        },
    )
}

/// Edits the free texts of a session (products and practices are written during the session,
/// often by several people).
pub fn editar_sesion(
    doc: &mut AutoCommit,
    ctx: &Ctx<'_>,
    id: &RecordId,
    productos: Option<&str>,
    practicas: Option<&str>,
) -> Result<(), ModelError> {
    let obj = registro(doc, "sesiones", "sesión", id)?;
    cambio(doc, ctx, &format!("Sesión editada: {id}"), |doc| {
        if let Some(t) = productos {
            escribir(doc, &obj, "productos", Campo::Texto(t))?;
        }
        if let Some(t) = practicas {
            escribir(doc, &obj, "practicas", Campo::Texto(t))?;
        }
        Ok(())
    })
}

/// A new acuerdo / compromiso.
#[derive(Debug, Clone)]
pub struct NuevoAcuerdo {
    pub texto: String,
    pub responsables: Vec<String>,
    pub fecha_compromiso: Option<Fecha>,
    pub sesion_origen: Option<RecordId>,
}

pub fn agregar_acuerdo(
    doc: &mut AutoCommit,
    ctx: &Ctx<'_>,
    id: &RecordId,
    a: &NuevoAcuerdo,
) -> Result<(), ModelError> {
    no_vacio("texto del acuerdo", &a.texto)?;
    let responsables = nombres("responsable", &a.responsables)?;
    if let Some(s) = &a.sesion_origen {
        registro(doc, "sesiones", "sesión", s)?;
    }
    let fecha = a.fecha_compromiso.map(|f| f.to_string());
    cambio(doc, ctx, &format!("Acuerdo agregado: {id}"), |doc| {
        let mut campos = vec![
            ("texto", Campo::Texto(a.texto.trim())),
            ("responsables", Campo::Conjunto(&responsables)),
            ("estado", Campo::Str(EstadoAcuerdo::Pendiente.as_str())),
        ];
        if let Some(f) = &fecha {
            campos.push(("fecha_compromiso", Campo::Str(f)));
        }
        if let Some(s) = &a.sesion_origen {
            campos.push(("sesion_origen", Campo::Str(s.as_str())));
        }
        crear_registro(doc, ctx, "acuerdos", id, &campos).map(|_| ())
    })
}

/// Replaces an acuerdo's text. The difference is applied as character splices, so another
/// replica's concurrent edit of other characters survives the merge.
pub fn editar_texto_acuerdo(
    doc: &mut AutoCommit,
    ctx: &Ctx<'_>,
    id: &RecordId,
    texto: &str,
) -> Result<(), ModelError> {
    no_vacio("texto del acuerdo", texto)?;
    let obj = registro(doc, "acuerdos", "acuerdo", id)?;
    cambio(
        doc,
        ctx,
        &format!("Texto del acuerdo editado: {id}"),
        |doc| escribir(doc, &obj, "texto", Campo::Texto(texto)),
    )
}

/// Changes the text (as character splices), responsables and/or due date of an acuerdo, in
/// one change. Everything is validated before anything is written.
pub fn editar_acuerdo(
    doc: &mut AutoCommit,
    ctx: &Ctx<'_>,
    id: &RecordId,
    texto: Option<&str>,
    responsables: Option<&[String]>,
    fecha_compromiso: Option<Fecha>,
) -> Result<(), ModelError> {
    let obj = registro(doc, "acuerdos", "acuerdo", id)?;
    if let Some(t) = texto {
        no_vacio("texto del acuerdo", t)?;
    }
    let responsables = responsables
        .map(|r| nombres("responsable", r))
        .transpose()?;
    let fecha = fecha_compromiso.map(|f| f.to_string());
    cambio(doc, ctx, &format!("Acuerdo editado: {id}"), |doc| {
        if let Some(t) = texto {
            escribir(doc, &obj, "texto", Campo::Texto(t))?;
        }
        if let Some(r) = &responsables {
            escribir(doc, &obj, "responsables", Campo::Conjunto(r))?;
        }
        if let Some(f) = &fecha {
            escribir(doc, &obj, "fecha_compromiso", Campo::Str(f))?;
        }
        Ok(())
    })
}

/// Sets an acuerdo's status, optionally naming the session where it was reviewed.
pub fn estado_acuerdo(
    doc: &mut AutoCommit,
    ctx: &Ctx<'_>,
    id: &RecordId,
    estado: EstadoAcuerdo,
    sesion_revision: Option<&RecordId>,
) -> Result<(), ModelError> {
    let obj = registro(doc, "acuerdos", "acuerdo", id)?;
    if let Some(s) = sesion_revision {
        registro(doc, "sesiones", "sesión", s)?;
    }
    cambio(
        doc,
        ctx,
        &format!("Estado del acuerdo {id}: {}", estado.as_str()),
        |doc| {
            escribir(doc, &obj, "estado", Campo::Str(estado.as_str()))?;
            if let Some(s) = sesion_revision {
                escribir(doc, &obj, "sesion_revision", Campo::Str(s.as_str()))?;
            }
            Ok(())
        },
    )
}

/// The collections whose records can be archived, by the name the CLI uses.
pub fn coleccion_de(tipo: &str) -> Option<(&'static str, &'static str)> {
    Some(match tipo {
        "objetivo" => ("pemc/objetivos", "objetivo"),
        "meta" => ("pemc/metas", "meta"),
        "accion" => ("pemc/acciones", "acción"),
        "seguimiento" => ("pemc/seguimiento", "seguimiento"),
        "sesion" => ("sesiones", "sesión"),
        "acuerdo" => ("acuerdos", "acuerdo"),
        "practica" => ("practicas", "práctica"),
        _ => return None,
    })
}

/// Archives (or restores) a record. Nothing is ever deleted, so no concurrent edit is lost.
pub fn archivar_registro(
    doc: &mut AutoCommit,
    ctx: &Ctx<'_>,
    tipo: &str,
    id: &RecordId,
    archivado: bool,
) -> Result<(), ModelError> {
    let (coll, nombre) = coleccion_de(tipo).ok_or_else(|| {
        ModelError::invalid(
            "tipo de registro",
            tipo,
            "objetivo, meta, accion, seguimiento, sesion, acuerdo o practica",
        )
    })?;
    registro(doc, coll, nombre, id)?;
    let verbo = if archivado { "archivado" } else { "restaurado" };
    cambio(doc, ctx, &format!("Registro {verbo}: {tipo} {id}"), |doc| {
        archivar(doc, coll, nombre, id, archivado)
    })
}

/// Grade and group of a concentrado, e.g. 3 and "A".
pub fn validar_grupo(grado: i64, grupo: &str) -> Result<(u64, String), ModelError> {
    if !(1..=6).contains(&grado) {
        return Err(ModelError::invalid(
            "grado",
            grado.to_string(),
            "se espera un grado de 1 a 6",
        ));
    }
    let g = grupo.trim().to_uppercase();
    if g.is_empty() || g.len() > 3 || !g.chars().all(|c| c.is_ascii_alphabetic()) {
        return Err(ModelError::invalid(
            "grupo",
            grupo,
            "se espera la letra del grupo, p. ej. A",
        ));
    }
    Ok((grado as u64, g))
}

/// Sets counts of the concentrado of one group at one corte. `valores` are checked (known
/// fields, no negatives) and then the merged record must add up: the outcome categories cannot
/// sum past the students of the group, nor can any "requieren apoyo" count exceed them.
pub fn concentrado_set(
    doc: &mut AutoCommit,
    ctx: &Ctx<'_>,
    grado: i64,
    grupo: &str,
    corte: Corte,
    valores: &[(&str, i64)],
) -> Result<Concentrado, ModelError> {
    let (grado, grupo) = validar_grupo(grado, grupo)?;
    if valores.is_empty() {
        return Err(ModelError::invalid(
            "conteos",
            "",
            "indique al menos un conteo",
        ));
    }
    let mut c = leer_concentrado(doc)?
        .into_iter()
        .find(|c| c.grado == grado && c.grupo == grupo && c.corte == corte.as_str())
        .unwrap_or_else(|| Concentrado {
            grado,
            grupo: grupo.clone(),
            corte: corte.as_str().into(),
            ..Default::default()
        });
    for (campo, v) in valores {
        let (k, _) = CAMPOS_CONCENTRADO
            .iter()
            .find(|(k, _)| k == campo)
            .ok_or_else(|| {
                ModelError::invalid("campo del concentrado", *campo, "campo desconocido")
            })?;
        if *v < 0 || *v > 100_000 {
            return Err(ModelError::invalid(
                k,
                v.to_string(),
                "se espera un número entero de alumnos, 0 o mayor",
            ));
        }
        c.conteos.insert(k.to_string(), *v as u64);
    }
    validar_concentrado(&c)?;
    cambio(
        doc,
        ctx,
        &format!(
            "Concentrado {grado}{grupo} ({}) actualizado",
            corte.as_str()
        ),
        |doc| {
            let obj = mapa(doc, &ROOT, "concentrado")?;
            for (campo, v) in valores {
                escribir(
                    doc,
                    &obj,
                    &clave_concentrado(grado, &grupo, corte, campo),
                    Campo::Uint(*v as u64),
                )?;
            }
            Ok(())
        },
    )?;
    Ok(c)
}

/// The consistency rules of a group's counts (seed 002).
pub fn validar_concentrado(c: &Concentrado) -> Result<(), ModelError> {
    let otros = c
        .conteos
        .keys()
        .any(|k| k != "inscritos_inicio" && k != "inscritos_fin");
    let Some(total) = c.total_alumnos() else {
        if otros {
            return Err(ModelError::Inconsistent(
                "registre primero el número de alumnos (--inscritos-inicio o --inscritos-fin)"
                    .into(),
            ));
        }
        return Ok(());
    };
    let suma: u64 = CATEGORIAS_RESULTADO.iter().filter_map(|k| c.get(k)).sum();
    if suma > total {
        return Err(ModelError::Inconsistent(format!(
            "los promovidos por promedio, con condiciones y no promovidos suman {suma}, más que los {total} alumnos del grupo {}{}",
            c.grado, c.grupo
        )));
    }
    for (k, nombre) in CAMPOS_CONCENTRADO.iter().skip(8) {
        if let Some(n) = c.get(k)
            && n > total
        {
            return Err(ModelError::Inconsistent(format!(
                "{n} alumnos que {nombre} es más que los {total} alumnos del grupo {}{}",
                c.grado, c.grupo
            )));
        }
    }
    Ok(())
}
