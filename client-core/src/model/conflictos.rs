//! Conflicts: keys where replicas wrote different values concurrently. Automerge keeps every
//! such value; this module finds them all (walking every map, so fields written by other
//! versions are covered too), says who wrote each, and resolves one by writing the chosen value
//! as a new operation that supersedes all of them.

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjType, ROOT, ReadDoc, ScalarValue, Value};
use serde::Serialize;

use super::{Ctx, ObjId, cambio, en_conflicto, escuela::leer_autores};
use crate::error::ModelError;

/// One conflicting key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Conflicto {
    /// `/`-separated path from the root, e.g. `acuerdos/k3v9x0m2ab/estado`.
    pub ruta: String,
    /// The values, in automerge's deterministic order; option N of `resolver` is `valores[N-1]`.
    pub valores: Vec<ValorEnConflicto>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ValorEnConflicto {
    pub valor: serde_json::Value,
    pub actor: String,
    pub autor: Option<String>,
}

fn a_json(doc: &AutoCommit, v: &Value<'_>, id: &automerge::ObjId) -> serde_json::Value {
    match v {
        Value::Object(ObjType::Text) => doc.text(id).unwrap_or_default().into(),
        Value::Object(t) => format!("({t})").into(),
        Value::Scalar(s) => match s.as_ref() {
            ScalarValue::Str(s) => s.to_string().into(),
            ScalarValue::Int(n) => (*n).into(),
            ScalarValue::Uint(n) => (*n).into(),
            ScalarValue::F64(f) => (*f).into(),
            ScalarValue::Boolean(b) => (*b).into(),
            ScalarValue::Timestamp(t) => (*t).into(),
            ScalarValue::Null => serde_json::Value::Null,
            other => format!("{other}").into(),
        },
    }
}

fn actor_de(id: &automerge::ObjId) -> String {
    match id {
        automerge::ObjId::Id(_, actor, _) => actor.to_hex_string(),
        automerge::ObjId::Root => String::new(),
    }
}

/// Every unresolved conflict in the document, in path order.
pub fn listar(doc: &AutoCommit) -> Vec<Conflicto> {
    let autores = leer_autores(doc);
    let mut out = Vec::new();
    let mut pila: Vec<(String, ObjId)> = vec![(String::new(), ROOT)];
    while let Some((ruta, obj)) = pila.pop() {
        for key in doc.keys(&obj).collect::<Vec<_>>() {
            let sub = if ruta.is_empty() {
                key.clone()
            } else {
                format!("{ruta}/{key}")
            };
            if en_conflicto(doc, &obj, &key) {
                let valores = doc
                    .get_all(&obj, key.as_str())
                    .unwrap_or_default()
                    .iter()
                    .map(|(v, id)| {
                        let actor = actor_de(id);
                        ValorEnConflicto {
                            valor: a_json(doc, v, id),
                            autor: autores.get(&actor).cloned(),
                            actor,
                        }
                    })
                    .collect();
                out.push(Conflicto {
                    ruta: sub.clone(),
                    valores,
                });
            }
            if let Ok(Some((Value::Object(ObjType::Map), child))) = doc.get(&obj, key.as_str()) {
                pila.push((sub, child));
            }
        }
    }
    out.sort_by(|a, b| a.ruta.cmp(&b.ruta));
    out
}

/// Resolves the conflict at `ruta` by choosing option `opcion` (1-based, as listed).
pub fn resolver(
    doc: &mut AutoCommit,
    ctx: &Ctx<'_>,
    ruta: &str,
    opcion: usize,
) -> Result<(), ModelError> {
    let no_hay = || ModelError::NotFound {
        tipo: "conflicto",
        id: ruta.to_string(),
    };
    let (padre, key) = ruta
        .rsplit_once('/')
        .map(|(p, k)| (Some(p), k))
        .unwrap_or((None, ruta));
    let mut obj = ROOT;
    for seg in padre.into_iter().flat_map(|p| p.split('/')) {
        obj = match doc.get(&obj, seg)? {
            Some((Value::Object(ObjType::Map), id)) => id,
            _ => return Err(no_hay()),
        };
    }
    if !en_conflicto(doc, &obj, key) {
        return Err(no_hay());
    }
    let valores = doc.get_all(&obj, key)?;
    let n = valores.len();
    let (elegido, id) = valores
        .into_iter()
        .nth(opcion.wrapping_sub(1))
        .map(|(v, id)| (v.into_owned(), id))
        .ok_or_else(|| {
            ModelError::invalid(
                "opción",
                opcion.to_string(),
                format!("se espera un número de 1 a {n}"),
            )
        })?;
    let texto = match &elegido {
        Value::Object(ObjType::Text) => Some(doc.text(&id)?),
        Value::Object(_) => {
            return Err(ModelError::Inconsistent(format!(
                "«{ruta}» tiene objetos en conflicto; archive el registro que sobra en lugar de resolverlo"
            )));
        }
        Value::Scalar(_) => None,
    };
    cambio(doc, ctx, &format!("Conflicto resuelto: {ruta}"), |doc| {
        match (elegido, texto) {
            (_, Some(t)) => {
                let nuevo = doc.put_object(&obj, key, ObjType::Text)?;
                doc.splice_text(&nuevo, 0, 0, &t)?;
            }
            (Value::Scalar(s), None) => doc.put(&obj, key, s.into_owned())?,
            (Value::Object(_), None) => unreachable!("objects other than text were refused above"),
        }
        Ok(())
    })
}
