//! Sneakernet on the server side: importing the bundle a school sent on a USB stick, and
//! exporting the return bundle with what the school lacks.
//!
//! Import follows the online rules: the documents must be registered here; every change is
//! parsed before anything is written and its author must be allowed to write the document
//! (the deterministic genesis; an actor enrolled to a user with write access). Actors nobody has
//! enrolled yet (devices of a school that never had a link) are enrolled to the school's
//! bundle user `paquete-<CCT>`, a director of that school created on first use: the supervisor
//! carrying the stick vouches for them. Actors enrolled to anyone without write access (another
//! school) refuse the whole bundle. Importing twice changes nothing.
//!
//! The heads each school's bundle declares are remembered, so the return bundle carries only
//! the changes after them.

use automerge::AutoCommit;
use bitacora_core::bundle::{self, Bundle, BundleDoc, BundleHeader, ORIGEN_SERVIDOR};
use bitacora_core::ids::Cct;
use bitacora_core::model::{DocKind, genesis_actor};
use bitacora_core::store::{DocInfo, parse_heads};
use serde::Serialize;

use crate::admin::AdminError;
use crate::auth::{Acceso, Principal, acceso};
use crate::db::{Auditoria, Database, Usuario, now};
use crate::hub::assemble;

fn invalid(m: impl Into<String>) -> AdminError {
    AdminError::Invalid(m.into())
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ImportadoServidor {
    pub documento: String,
    pub owner: String,
    pub cambios_nuevos: usize,
    pub actores_registrados: usize,
}

async fn zona_del(db: &Database, info: &DocInfo) -> Result<Option<String>, AdminError> {
    Ok(match info.kind {
        DocKind::Escuela => db.zona_de_escuela(&info.owner).await?,
        DocKind::Zona => Some(info.owner.clone()),
    })
}

async fn cargar(db: &Database, info: &DocInfo) -> Result<AutoCommit, AdminError> {
    let stored = db.load(&info.id).await?;
    let doc = assemble(&stored)
        .map_err(|e| invalid(format!("el documento {} guardado no carga: {e}", info.id)))?;
    AutoCommit::load(&doc.save()).map_err(|e| invalid(e.to_string()))
}

/// The user unknown actors of a school's bundle are enrolled to.
async fn usuario_paquete(db: &Database, cct: &str) -> Result<Usuario, AdminError> {
    let id = format!("paquete-{cct}");
    if let Some(u) = db.usuario(&id).await? {
        return Ok(u);
    }
    let u = Usuario {
        id: id.clone(),
        nombre: format!("Equipos de la escuela {cct} (por paquete)"),
        rol: "director".into(),
        cct: Some(cct.to_string()),
        zona: None,
    };
    db.add_usuario(&u).await?;
    Ok(db.usuario(&id).await?.unwrap_or(u))
}

/// Imports a school's bundle. Validates everything first; writes only if all of it is allowed.
pub async fn importar(db: &Database, bytes: &[u8]) -> Result<Vec<ImportadoServidor>, AdminError> {
    let b = Bundle::decode(bytes).map_err(|e| invalid(e.to_string()))?;
    let origen = Cct::parse(&b.header.origen).map_err(|_| {
        invalid(format!(
            "el paquete no viene de una escuela (origen «{}»)",
            b.header.origen
        ))
    })?;
    let paquete = usuario_paquete_si_hace_falta(db, &origen).await?;
    let mut plan = Vec::new();
    for (d, payload) in b.header.documentos.iter().zip(&b.payloads) {
        let info = d.info().map_err(|e| invalid(e.to_string()))?;
        if db.document(&info.id).await?.is_none() {
            return Err(invalid(format!(
                "el documento {} ({} {}) no está registrado en este servidor",
                info.id, info.owner, info.ciclo
            )));
        }
        let zona = zona_del(db, &info).await?;
        // The bundle's school must be allowed to write this document (its own, or its zone's).
        let escuela = Principal {
            usuario: paquete.id.clone(),
            rol: crate::auth::Rol::Director,
            cct: Some(origen.to_string()),
            zona: db.zona_de_escuela(origen.as_str()).await?,
        };
        if acceso(&escuela, &info, zona.as_deref()) != Acceso::Escritura {
            return Err(invalid(format!(
                "el paquete de {origen} trae el documento {} de {}, que esa escuela no puede escribir; no se aplicó nada",
                info.id, info.owner
            )));
        }
        let mut doc = cargar(db, &info).await?;
        let antes = doc.get_heads();
        let aplicado = bundle::aplicar(&mut doc, d, payload).map_err(|e| invalid(e.to_string()))?;
        let mut nuevos_actores = Vec::new();
        let genesis = bundle::genesis_de(&info)
            .map_err(|e| invalid(e.to_string()))?
            .get_heads();
        for a in &aplicado.autorias {
            if a.actor == genesis_actor(&info.id) {
                if !genesis.contains(&a.hash) {
                    return Err(invalid(format!(
                        "el cambio {} usa el actor de génesis sin ser la génesis; no se aplicó nada",
                        a.hash
                    )));
                }
                continue;
            }
            match db.actor_usuario(&a.actor.to_hex_string()).await? {
                Some(u) => {
                    let p = Principal::de_usuario(db, &u).await?;
                    if acceso(&p, &info, zona.as_deref()) != Acceso::Escritura {
                        return Err(invalid(format!(
                            "el cambio {} es de un equipo registrado a «{}», que no puede escribir este documento; no se aplicó nada",
                            a.hash, u.id
                        )));
                    }
                }
                None => nuevos_actores.push(a.actor.to_hex_string()),
            }
        }
        nuevos_actores.sort();
        nuevos_actores.dedup();
        let cambios = doc.save_after(&antes);
        plan.push((info, d.clone(), cambios, aplicado.nuevos, nuevos_actores));
    }
    let mut out = Vec::new();
    for (info, d, cambios, nuevos, actores) in plan {
        for a in &actores {
            db.enrol_actor(a, &paquete.id).await?;
        }
        if nuevos > 0 {
            db.append(&info.id, &cambios).await?;
            db.registrar_cambio(&info.id.to_string(), now()).await?;
        }
        if info.kind == DocKind::Escuela && info.owner == origen.as_str() {
            // The school's own document arrived: for the dashboard, the school synced.
            db.registrar_sync(&info.id.to_string(), now()).await?;
        }
        db.set_meta(&clave_heads(origen.as_str(), &info), &d.heads.join(","))
            .await?;
        let detalle = format!(
            "paquete de {origen}: {nuevos} cambios, {} actores registrados",
            actores.len()
        );
        db.audit(&Auditoria {
            usuario: &paquete.id,
            documento: &info.id.to_string(),
            accion: "paquete_importado",
            resultado: "aceptado",
            detalle: &detalle,
        })
        .await?;
        out.push(ImportadoServidor {
            documento: info.id.to_string(),
            owner: info.owner,
            cambios_nuevos: nuevos,
            actores_registrados: actores.len(),
        });
    }
    Ok(out)
}

async fn usuario_paquete_si_hace_falta(db: &Database, cct: &Cct) -> Result<Usuario, AdminError> {
    if db.zona_de_escuela(cct.as_str()).await?.is_none() {
        return Err(invalid(format!(
            "la escuela {cct} no está registrada en este servidor"
        )));
    }
    usuario_paquete(db, cct.as_str()).await
}

fn clave_heads(cct: &str, info: &DocInfo) -> String {
    format!("paquete.{cct}.{}", info.id)
}

/// The return bundle for a school: its documents and its zone's, each from the heads its last
/// bundle declared (everything, if it never sent one).
pub async fn exportar(db: &Database, cct: &str) -> Result<Bundle, AdminError> {
    let c = Cct::parse(cct)?;
    let zona = db.zona_de_escuela(c.as_str()).await?.ok_or_else(|| {
        invalid(format!(
            "la escuela {c} no está registrada en este servidor"
        ))
    })?;
    let mut header = BundleHeader {
        version: bundle::VERSION,
        creado: now(),
        origen: format!("{ORIGEN_SERVIDOR}:{c}"),
        documentos: Vec::new(),
    };
    let mut payloads = Vec::new();
    for info in db.documents().await? {
        let mine = match info.kind {
            DocKind::Escuela => info.owner == c.as_str(),
            DocKind::Zona => info.owner == zona,
        };
        if !mine {
            continue;
        }
        let mut doc = cargar(db, &info).await?;
        let desde: Vec<_> = db
            .get_meta(&clave_heads(c.as_str(), &info))
            .await?
            .map(|h| parse_heads(&h))
            .unwrap_or_default()
            .into_iter()
            .filter(|h| doc.get_change_by_hash(h).is_some())
            .collect();
        let payload = doc.save_after(&desde);
        header.documentos.push(BundleDoc {
            id: info.id.to_string(),
            tipo: info.kind,
            owner: info.owner.clone(),
            ciclo: info.ciclo.clone(),
            desde: desde.iter().map(|h| h.to_string()).collect(),
            heads: doc.get_heads().iter().map(|h| h.to_string()).collect(),
            bytes: payload.len() as u64,
        });
        payloads.push(payload);
    }
    Ok(Bundle { header, payloads })
}
