//! Administration: zones, schools, users and tokens. Used by the `admin` subcommands (on the
//! same database the server uses) and by tests. Every input is parsed with the domain newtypes;
//! errors are Spanish, for the operator.

use bitacora_core::ModelError;
use bitacora_core::ids::{Cct, CicloEscolar, DocumentId, ZonaClave};
use bitacora_core::model::{DocKind, escuela, zona};
use bitacora_core::store::DocInfo;
use thiserror::Error;

use crate::auth::{AuthError, Claims, Keys, Rol};
use crate::db::{Database, DbError, Usuario, now};

#[derive(Debug, Error)]
pub enum AdminError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// A file the command writes (the backup).
    #[error("{0}")]
    Archivo(String),
}

impl AdminError {
    pub fn is_bad_input(&self) -> bool {
        matches!(self, AdminError::Invalid(_))
            || matches!(self, AdminError::Model(m) if m.is_bad_input())
    }
}

fn invalid(m: impl Into<String>) -> AdminError {
    AdminError::Invalid(m.into())
}

/// The ciclo to use when none is given: the one that contains today.
pub fn ciclo_actual() -> CicloEscolar {
    CicloEscolar::que_contiene(bitacora_core::ids::Fecha::from_naive(
        chrono::Local::now().date_naive(),
    ))
}

/// Registers a zone and its document for `ciclo`. Idempotent.
pub async fn zona_add(
    db: &Database,
    clave: &str,
    nombre: &str,
    ciclo: CicloEscolar,
) -> Result<DocInfo, AdminError> {
    let z = ZonaClave::parse(clave)?;
    if nombre.trim().is_empty() {
        return Err(invalid("el nombre de la zona no puede estar vacío"));
    }
    db.add_zona(z.as_str(), nombre.trim()).await?;
    let info = DocInfo {
        id: DocumentId::zona(&z, ciclo),
        kind: DocKind::Zona,
        owner: z.to_string(),
        ciclo: ciclo.to_string(),
    };
    db.register_document(&info, &zona::genesis_zona(&z, ciclo)?.save())
        .await?;
    Ok(info)
}

/// Registers a school of an existing zone and its document for `ciclo`. Idempotent; a school
/// already registered to another zone is refused.
pub async fn escuela_add(
    db: &Database,
    cct: &str,
    nombre: &str,
    zona: &str,
    ciclo: CicloEscolar,
) -> Result<DocInfo, AdminError> {
    let c = Cct::parse(cct)?;
    let z = ZonaClave::parse(zona)?;
    if nombre.trim().is_empty() {
        return Err(invalid("el nombre de la escuela no puede estar vacío"));
    }
    if !db.zona_existe(z.as_str()).await? {
        return Err(invalid(format!(
            "la zona {z} no está registrada; use primero `admin zona add`"
        )));
    }
    db.add_escuela(c.as_str(), nombre.trim(), z.as_str())
        .await?;
    match db.zona_de_escuela(c.as_str()).await? {
        Some(actual) if actual != z.as_str() => {
            return Err(invalid(format!(
                "la escuela {c} ya está registrada en la zona {actual}"
            )));
        }
        _ => {}
    }
    let info = DocInfo {
        id: DocumentId::escuela(&c, ciclo),
        kind: DocKind::Escuela,
        owner: c.to_string(),
        ciclo: ciclo.to_string(),
    };
    db.register_document(&info, &escuela::genesis_escuela(&c, ciclo)?.save())
        .await?;
    Ok(info)
}

/// Adds a user. School roles (docente, director) name a registered CCT; zone roles
/// (supervisor, atp) a registered zone; admin neither.
pub async fn usuario_add(
    db: &Database,
    id: &str,
    nombre: &str,
    rol: &str,
    cct: Option<&str>,
    zona: Option<&str>,
) -> Result<Usuario, AdminError> {
    let id_ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b));
    if !id_ok {
        return Err(invalid(format!(
            "id de usuario inválido «{id}»: use de 1 a 64 letras, dígitos o - _ . @"
        )));
    }
    let r = Rol::parse(rol).ok_or_else(|| {
        invalid(format!(
            "rol desconocido «{rol}»: docente, director, supervisor, atp o admin"
        ))
    })?;
    let (cct, zona) = match (r, cct, zona) {
        (Rol::Docente | Rol::Director, Some(c), None) => {
            let c = Cct::parse(c)?;
            if db.zona_de_escuela(c.as_str()).await?.is_none() {
                return Err(invalid(format!(
                    "la escuela {c} no está registrada; use primero `admin escuela add`"
                )));
            }
            (Some(c.to_string()), None)
        }
        (Rol::Supervisor | Rol::Atp, None, Some(z)) => {
            let z = ZonaClave::parse(z)?;
            if !db.zona_existe(z.as_str()).await? {
                return Err(invalid(format!("la zona {z} no está registrada")));
            }
            (None, Some(z.to_string()))
        }
        (Rol::Admin, None, None) => (None, None),
        (Rol::Docente | Rol::Director, _, _) => {
            return Err(invalid(format!(
                "el rol {rol} requiere --cct (y no --zona)"
            )));
        }
        (Rol::Supervisor | Rol::Atp, _, _) => {
            return Err(invalid(format!(
                "el rol {rol} requiere --zona (y no --cct)"
            )));
        }
        (Rol::Admin, _, _) => return Err(invalid("el rol admin no lleva --cct ni --zona")),
    };
    let u = Usuario {
        id: id.to_string(),
        nombre: nombre.trim().to_string(),
        rol: r.as_str().to_string(),
        cct,
        zona,
    };
    if u.nombre.is_empty() {
        return Err(invalid("el nombre del usuario no puede estar vacío"));
    }
    if !db.add_usuario(&u).await? {
        return Err(invalid(format!("ya existe el usuario «{id}»")));
    }
    Ok(u)
}

/// Issues a token for a user, valid for `dias` days, and records its id for revocation.
pub async fn token_emitir(
    db: &Database,
    keys: &Keys,
    usuario: &str,
    dias: i64,
) -> Result<(String, Claims), AdminError> {
    if !(1..=3650).contains(&dias) {
        return Err(invalid(format!(
            "vigencia inválida «{dias}»: se esperan de 1 a 3650 días"
        )));
    }
    let u = db
        .usuario(usuario)
        .await?
        .ok_or_else(|| invalid(format!("no existe el usuario «{usuario}»")))?;
    let rol = Rol::parse(&u.rol)
        .ok_or_else(|| invalid(format!("rol almacenado desconocido «{}»", u.rol)))?;
    let iat = now();
    let jti: String = (0..16)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect();
    let claims = Claims {
        iss: keys.issuer().to_string(),
        aud: keys.audience().to_string(),
        sub: u.id.clone(),
        exp: iat + dias * 86_400,
        iat,
        jti: jti.clone(),
        rol,
        cct: u.cct.clone(),
        zona: u.zona.clone(),
    };
    let token = keys.issue(&claims)?;
    db.add_token(&jti, &u.id, iat, claims.exp).await?;
    Ok((token, claims))
}

pub async fn token_revocar(db: &Database, jti: &str) -> Result<(), AdminError> {
    if !db.revoke_token(jti.trim()).await? {
        return Err(invalid(format!("no hay un token vigente con id «{jti}»")));
    }
    Ok(())
}

/// `admin respaldo --salida ARCHIVO`: a consistent copy of the SQLite database, safe while the
/// server is serving (`VACUUM INTO` into a temporary file beside `salida`, fsync, rename), so a
/// half-written backup never carries the final name. Returns its size in bytes. PostgreSQL is
/// backed up with `pg_dump` (docs/operations.md).
pub async fn respaldo(db: &Database, salida: &std::path::Path) -> Result<u64, AdminError> {
    if db.backend() != "sqlite" {
        return Err(invalid(
            "esta base es PostgreSQL: respalde con pg_dump (docs/operations.md, «Respaldo»)",
        ));
    }
    if salida.exists() {
        return Err(invalid(format!(
            "{} ya existe; elija un archivo nuevo",
            salida.display()
        )));
    }
    let archivo = |e: std::io::Error| AdminError::Archivo(format!("{}: {e}", salida.display()));
    let nombre = salida
        .file_name()
        .ok_or_else(|| invalid("--salida debe nombrar un archivo"))?
        .to_string_lossy()
        .into_owned();
    let dir = match salida.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let tmp = dir.join(format!(".{nombre}.{:016x}.tmp", rand::random::<u64>()));
    if let Err(e) = db.respaldar_sqlite(&tmp).await {
        let _ = std::fs::remove_file(&tmp);
        return Err(e.into());
    }
    let escrito = (|| {
        // It holds the registry and every document: readable by the operator only.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
        }
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, salida)?;
        // The rename itself durable too.
        std::fs::File::open(&dir)?.sync_all()?;
        std::fs::metadata(salida).map(|m| m.len())
    })();
    if escrito.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    escrito.map_err(archivo)
}
