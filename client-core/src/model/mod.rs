//! The typed document model over automerge: the school document ([`escuela`]) and the zone
//! document ([`zona`]), their deterministic genesis, and the low-level reading and writing helpers
//! both share.
//!
//! Rules this module keeps (see docs/architecture.md, "Invariants"):
//! - No I/O. Time (`Ctx::ahora`) and record ids come from the caller.
//! - A map object is created only in genesis or under a freshly generated record id, so two
//!   replicas never create different objects under the same key. Records with a natural key
//!   (the concentrado of a group and corte) are flattened into scalar keys instead.
//! - Text people write together is automerge `Text`, edited by character splices.
//! - Nothing is deleted: records carry `archivado`.
//! - One user operation is one automerge change, with a Spanish message and the caller's time.

pub mod conflictos;
pub mod escuela;
pub mod historial;
pub mod zona;

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, AutoCommit, ObjType, ROOT, ReadDoc, ScalarValue, Value};
use sha2::{Digest, Sha256};

use crate::error::ModelError;
use crate::ids::{DocumentId, RecordId};

/// The schema version this code writes. Readers accept every version up to this one and read
/// newer ones on a best-effort basis (unknown fields are ignored, never removed).
pub const SCHEMA_VERSION: u64 = 1;

/// The root key that records which kind of document this is.
pub const KEY_TIPO: &str = "tipo";

/// The two kinds of synced documents.
/// A document a replica holds: its id, kind, owner (a school's CCT or a zone's clave) and
/// ciclo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocInfo {
    pub id: DocumentId,
    pub kind: DocKind,
    pub owner: String,
    pub ciclo: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocKind {
    Escuela,
    Zona,
}

impl DocKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DocKind::Escuela => "escuela",
            DocKind::Zona => "zona",
        }
    }

    pub fn parse(s: &str) -> Option<DocKind> {
        match s {
            "escuela" => Some(DocKind::Escuela),
            "zona" => Some(DocKind::Zona),
            _ => None,
        }
    }
}

/// What an operation needs from the outside world: the time and who is typing.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    /// Seconds since the Unix epoch.
    pub ahora: i64,
    /// The person's display name, recorded once per actor in the document's `autores` map.
    pub autor: Option<&'a str>,
}

/// The actor that writes the genesis change of a document: derived from the document id, so
/// every device produces the byte-identical first change.
pub fn genesis_actor(id: &DocumentId) -> ActorId {
    let digest = Sha256::digest([b"bitacora/genesis/".as_slice(), id.as_bytes()].concat());
    ActorId::from(&digest[..16])
}

/// Builds a genesis document: `build` runs with the genesis actor and the commit uses time 0.
/// The content of every genesis function is frozen forever (a test pins its hash).
pub(crate) fn genesis(
    id: &DocumentId,
    build: impl FnOnce(&mut AutoCommit) -> Result<(), ModelError>,
) -> Result<AutoCommit, ModelError> {
    let mut doc = AutoCommit::new().with_actor(genesis_actor(id));
    build(&mut doc)?;
    doc.commit_with(
        CommitOptions::default()
            .with_time(0)
            .with_message("génesis"),
    );
    Ok(doc)
}

/// Runs one user operation as one change. On error nothing stays in the document.
pub fn cambio<T>(
    doc: &mut AutoCommit,
    ctx: &Ctx<'_>,
    mensaje: &str,
    f: impl FnOnce(&mut AutoCommit) -> Result<T, ModelError>,
) -> Result<T, ModelError> {
    match f(doc).and_then(|v| registrar_autor(doc, ctx).map(|_| v)) {
        Ok(v) => {
            doc.commit_with(
                CommitOptions::default()
                    .with_time(ctx.ahora)
                    .with_message(mensaje.to_string()),
            );
            Ok(v)
        }
        Err(e) => {
            doc.rollback();
            Err(e)
        }
    }
}

fn registrar_autor(doc: &mut AutoCommit, ctx: &Ctx<'_>) -> Result<(), ModelError> {
    let Some(nombre) = ctx.autor else {
        return Ok(());
    };
    let autores = mapa(doc, &ROOT, "autores")?;
    let actor = doc.get_actor().to_hex_string();
    if get_str(doc, &autores, &actor).as_deref() != Some(nombre) {
        doc.put(&autores, actor, nombre)?;
    }
    Ok(())
}

/// The `schema_version` stored at the root, if any.
pub fn schema_version(doc: &AutoCommit) -> Option<u64> {
    get_u64(doc, &ROOT, "schema_version")
}

/// The kind stored at the root, if it is one this code knows.
pub fn doc_kind(doc: &AutoCommit) -> Option<DocKind> {
    get_str(doc, &ROOT, KEY_TIPO).and_then(|s| DocKind::parse(&s))
}

// ---------------------------------------------------------------------------------------------
// Reading helpers: tolerant of missing keys and of values of another type (older or foreign
// writers), never panicking.

pub(crate) type ObjId = automerge::ObjId;

/// The map object under `key`, or a shape error naming the key.
pub(crate) fn mapa(doc: &AutoCommit, obj: &ObjId, key: &str) -> Result<ObjId, ModelError> {
    match doc.get(obj, key)? {
        Some((Value::Object(ObjType::Map), id)) => Ok(id),
        _ => Err(ModelError::Shape(format!("falta el mapa «{key}»"))),
    }
}

pub(crate) fn get_scalar(doc: &AutoCommit, obj: &ObjId, key: &str) -> Option<ScalarValue> {
    match doc.get(obj, key).ok()?? {
        (Value::Scalar(s), _) => Some(s.into_owned()),
        _ => None,
    }
}

/// A short string field. Clients such as automerge-repo's JavaScript (automerge 3) write plain
/// strings as Text objects by default; those are read as their content.
pub(crate) fn get_str(doc: &AutoCommit, obj: &ObjId, key: &str) -> Option<String> {
    match doc.get(obj, key).ok()?? {
        (Value::Scalar(s), _) => match s.as_ref() {
            ScalarValue::Str(s) => Some(s.to_string()),
            _ => None,
        },
        (Value::Object(ObjType::Text), id) => doc.text(&id).ok(),
        _ => None,
    }
}

pub(crate) fn get_u64(doc: &AutoCommit, obj: &ObjId, key: &str) -> Option<u64> {
    match get_scalar(doc, obj, key)? {
        ScalarValue::Uint(n) => Some(n),
        ScalarValue::Int(n) if n >= 0 => Some(n as u64),
        ScalarValue::F64(f) if f >= 0.0 && f.fract() == 0.0 => Some(f as u64),
        _ => None,
    }
}

pub(crate) fn get_i64(doc: &AutoCommit, obj: &ObjId, key: &str) -> Option<i64> {
    match get_scalar(doc, obj, key)? {
        ScalarValue::Int(n) | ScalarValue::Timestamp(n) => Some(n),
        ScalarValue::Uint(n) => i64::try_from(n).ok(),
        ScalarValue::F64(f) if f.fract() == 0.0 => Some(f as i64),
        _ => None,
    }
}

pub(crate) fn get_f64(doc: &AutoCommit, obj: &ObjId, key: &str) -> Option<f64> {
    match get_scalar(doc, obj, key)? {
        ScalarValue::F64(f) => Some(f),
        ScalarValue::Int(n) => Some(n as f64),
        ScalarValue::Uint(n) => Some(n as f64),
        _ => None,
    }
}

pub(crate) fn get_bool(doc: &AutoCommit, obj: &ObjId, key: &str) -> bool {
    matches!(get_scalar(doc, obj, key), Some(ScalarValue::Boolean(true)))
}

/// Text under `key`: an automerge Text object, or a plain string written by another client.
pub(crate) fn get_text(doc: &AutoCommit, obj: &ObjId, key: &str) -> String {
    match doc.get(obj, key) {
        Ok(Some((Value::Object(ObjType::Text), id))) => doc.text(&id).unwrap_or_default(),
        Ok(Some((Value::Scalar(s), _))) => s.as_str().unwrap_or_default().to_string(),
        _ => String::new(),
    }
}

/// The keys of a map used as a set (`{nombre: true}`), sorted.
pub(crate) fn get_set(doc: &AutoCommit, obj: &ObjId, key: &str) -> Vec<String> {
    match doc.get(obj, key) {
        Ok(Some((Value::Object(ObjType::Map), id))) => doc.keys(&id).collect(),
        _ => Vec::new(),
    }
}

/// The records of a collection: `(id, object)` for every key whose value is a map.
pub(crate) fn registros(doc: &AutoCommit, coleccion: &ObjId) -> Vec<(String, ObjId)> {
    doc.keys(coleccion)
        .filter_map(|key| match doc.get(coleccion, key.as_str()) {
            Ok(Some((Value::Object(ObjType::Map), id))) => Some((key, id)),
            _ => None,
        })
        .collect()
}

/// True when a key holds several concurrent values that differ (an unresolved conflict).
/// Concurrent writes of the same scalar value are agreement, not conflict; two objects under
/// one key always conflict.
pub(crate) fn en_conflicto(doc: &AutoCommit, obj: &ObjId, key: &str) -> bool {
    let all = doc.get_all(obj, key).unwrap_or_default();
    if all.len() < 2 {
        return false;
    }
    all.iter().any(|(v, _)| v.is_object()) || all.iter().any(|(v, _)| *v != all[0].0)
}

// ---------------------------------------------------------------------------------------------
// Writing helpers.

/// A field value to write into a record.
#[derive(Debug, Clone)]
pub(crate) enum Campo<'a> {
    /// Collaborative text: created as automerge Text, later edited by splices.
    Texto(&'a str),
    Str(&'a str),
    Uint(u64),
    F64(f64),
    Bool(bool),
    /// A set of names, stored as a map `{name: true}` so concurrent additions merge.
    Conjunto(&'a [String]),
}

/// Writes one field of a record. Text and sets are updated in place when they exist.
pub(crate) fn escribir(
    doc: &mut AutoCommit,
    obj: &ObjId,
    key: &str,
    campo: Campo<'_>,
) -> Result<(), ModelError> {
    match campo {
        Campo::Texto(t) => match doc.get(obj, key)? {
            Some((Value::Object(ObjType::Text), id)) => doc.update_text(&id, t)?,
            _ => {
                let id = doc.put_object(obj, key, ObjType::Text)?;
                doc.splice_text(&id, 0, 0, t)?;
            }
        },
        Campo::Str(s) => {
            if get_str(doc, obj, key).as_deref() != Some(s) || en_conflicto(doc, obj, key) {
                doc.put(obj, key, s)?
            }
        }
        Campo::Uint(n) => {
            if get_u64(doc, obj, key) != Some(n) || en_conflicto(doc, obj, key) {
                doc.put(obj, key, n)?
            }
        }
        Campo::F64(f) => {
            if get_f64(doc, obj, key) != Some(f) || en_conflicto(doc, obj, key) {
                doc.put(obj, key, f)?
            }
        }
        Campo::Bool(b) => {
            if get_bool(doc, obj, key) != b || en_conflicto(doc, obj, key) {
                doc.put(obj, key, b)?
            }
        }
        Campo::Conjunto(nombres) => {
            let set = match doc.get(obj, key)? {
                Some((Value::Object(ObjType::Map), id)) => id,
                _ => doc.put_object(obj, key, ObjType::Map)?,
            };
            let actuales: Vec<String> = doc.keys(&set).collect();
            for n in nombres {
                if !actuales.contains(n) {
                    doc.put(&set, n.as_str(), true)?;
                }
            }
            for a in actuales {
                if !nombres.contains(&a) {
                    doc.delete(&set, a.as_str())?;
                }
            }
        }
    }
    Ok(())
}

/// Creates a record under a fresh id in a root collection and writes its fields, plus
/// `creado` (the caller's time) and `archivado: false`.
pub(crate) fn crear_registro(
    doc: &mut AutoCommit,
    ctx: &Ctx<'_>,
    coleccion: &str,
    id: &RecordId,
    campos: &[(&str, Campo<'_>)],
) -> Result<ObjId, ModelError> {
    let coll = coleccion_obj(doc, coleccion)?;
    if doc.get(&coll, id.as_str())?.is_some() {
        return Err(ModelError::Inconsistent(format!(
            "el id «{id}» ya existe en {coleccion}"
        )));
    }
    let obj = doc.put_object(&coll, id.as_str(), ObjType::Map)?;
    doc.put(&obj, "creado", ScalarValue::Timestamp(ctx.ahora * 1000))?;
    doc.put(&obj, "archivado", false)?;
    for (k, v) in campos {
        escribir(doc, &obj, k, v.clone())?;
    }
    Ok(obj)
}

/// The object of a collection given as a `/`-separated path from the root (`pemc/metas`).
pub(crate) fn coleccion_obj(doc: &AutoCommit, ruta: &str) -> Result<ObjId, ModelError> {
    let mut obj = ROOT;
    for seg in ruta.split('/') {
        obj = mapa(doc, &obj, seg)?;
    }
    Ok(obj)
}

/// The record `id` of a collection, or `NotFound` naming what was looked for.
pub(crate) fn registro(
    doc: &AutoCommit,
    coleccion: &str,
    tipo: &'static str,
    id: &RecordId,
) -> Result<ObjId, ModelError> {
    let coll = coleccion_obj(doc, coleccion)?;
    match doc.get(&coll, id.as_str())? {
        Some((Value::Object(ObjType::Map), obj)) => Ok(obj),
        _ => Err(ModelError::NotFound {
            tipo,
            id: id.to_string(),
        }),
    }
}

/// Marks a record archived (or restores it). Records are never deleted.
pub(crate) fn archivar(
    doc: &mut AutoCommit,
    coleccion: &str,
    tipo: &'static str,
    id: &RecordId,
    archivado: bool,
) -> Result<(), ModelError> {
    let obj = registro(doc, coleccion, tipo, id)?;
    escribir(doc, &obj, "archivado", Campo::Bool(archivado))
}

/// Seconds from a record's `creado` timestamp (stored in milliseconds).
pub(crate) fn creado(doc: &AutoCommit, obj: &ObjId) -> i64 {
    get_i64(doc, obj, "creado").map(|ms| ms / 1000).unwrap_or(0)
}
