//! The zone document (one per zona x ciclo): the Consejo Técnico de Zona's own sessions and
//! agreements, and the buenas prácticas that schools share with each other (seeds 001, 003).
//! Written by the supervisor and the directors of the zone; read by everyone in it.

use std::collections::BTreeMap;

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjType, ROOT};
use serde::Serialize;

use super::escuela::{Acuerdo, Sesion, leer_acuerdos, leer_autores, leer_coleccion, leer_sesiones};
use super::{
    Campo, Ctx, DocKind, SCHEMA_VERSION, cambio, crear_registro, genesis, get_bool, get_str,
    get_text, schema_version,
};
use crate::catalogo::Catalogo;
use crate::error::ModelError;
use crate::ids::{Cct, CicloEscolar, DocumentId, RecordId, ZonaClave};

/// The zone document, read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Zona {
    pub documento: String,
    pub schema_version: u64,
    pub zona: String,
    pub ciclo: String,
    pub sesiones: Vec<Sesion>,
    pub acuerdos: Vec<Acuerdo>,
    pub practicas: Vec<Practica>,
    pub autores: BTreeMap<String, String>,
}

/// A good practice one school shares with the zone.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Practica {
    pub id: String,
    pub escuela: String,
    pub titulo: String,
    pub descripcion: String,
    pub ambito: Option<String>,
    pub creado: i64,
    pub archivado: bool,
}

/// The deterministic genesis of a zone's document for a ciclo. Frozen.
pub fn genesis_zona(zona: &ZonaClave, ciclo: CicloEscolar) -> Result<AutoCommit, ModelError> {
    let id = DocumentId::zona(zona, ciclo);
    genesis(&id, |doc| {
        doc.put(ROOT, "schema_version", SCHEMA_VERSION)?;
        doc.put(ROOT, super::KEY_TIPO, DocKind::Zona.as_str())?;
        doc.put(ROOT, "zona", zona.as_str())?;
        doc.put(ROOT, "ciclo", ciclo.to_string())?;
        doc.put(ROOT, "catalogo", Catalogo::para_ciclo(ciclo).version)?;
        for c in ["autores", "sesiones", "acuerdos", "practicas"] {
            doc.put_object(ROOT, c, ObjType::Map)?;
        }
        Ok(())
    })
}

pub fn leer(doc: &AutoCommit) -> Result<Zona, ModelError> {
    if super::doc_kind(doc) != Some(DocKind::Zona) {
        return Err(ModelError::Shape("no es un documento de zona".into()));
    }
    let zona = get_str(doc, &ROOT, "zona").unwrap_or_default();
    let ciclo = get_str(doc, &ROOT, "ciclo").unwrap_or_default();
    let documento = match (ZonaClave::parse(&zona), CicloEscolar::parse(&ciclo)) {
        (Ok(z), Ok(c)) => DocumentId::zona(&z, c).to_string(),
        _ => String::new(),
    };
    Ok(Zona {
        documento,
        schema_version: schema_version(doc).unwrap_or(1),
        sesiones: leer_sesiones(doc)?,
        acuerdos: leer_acuerdos(doc)?,
        practicas: leer_coleccion(doc, &ROOT, "practicas", |doc, id, obj| Practica {
            id,
            escuela: get_str(doc, obj, "escuela").unwrap_or_default(),
            titulo: get_str(doc, obj, "titulo").unwrap_or_default(),
            descripcion: get_text(doc, obj, "descripcion"),
            ambito: get_str(doc, obj, "ambito"),
            creado: super::creado(doc, obj),
            archivado: get_bool(doc, obj, "archivado"),
        }),
        autores: leer_autores(doc),
        zona,
        ciclo,
    })
}

/// Shares a school's good practice with the zone ("Compartir buenas prácticas", seed 001).
pub fn agregar_practica(
    doc: &mut AutoCommit,
    ctx: &Ctx<'_>,
    id: &RecordId,
    escuela: &Cct,
    titulo: &str,
    descripcion: &str,
    ambito: Option<&str>,
) -> Result<(), ModelError> {
    if titulo.trim().is_empty() {
        return Err(ModelError::invalid(
            "título de la práctica",
            titulo,
            "no puede estar vacío",
        ));
    }
    let ciclo = get_str(doc, &ROOT, "ciclo").and_then(|c| CicloEscolar::parse(&c).ok());
    let ambito = match (ambito, ciclo) {
        (Some(a), Some(c)) => Some(Catalogo::para_ciclo(c).ambito(a)?.clave),
        (Some(a), None) => {
            return Err(ModelError::Shape(format!(
                "no se puede validar el ámbito {a}: falta el ciclo"
            )));
        }
        (None, _) => None,
    };
    cambio(
        doc,
        ctx,
        &format!("Práctica compartida: {id} ({escuela})"),
        |doc| {
            let mut campos = vec![
                ("escuela", Campo::Str(escuela.as_str())),
                ("titulo", Campo::Str(titulo.trim())),
                ("descripcion", Campo::Texto(descripcion.trim())),
            ];
            if let Some(a) = ambito {
                campos.push(("ambito", Campo::Str(a)));
            }
            crear_registro(doc, ctx, "practicas", id, &campos).map(|_| ())
        },
    )
}
