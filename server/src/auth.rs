//! Authentication (JWT) and authorisation (who may read or write which document).
//!
//! Tokens: jsonwebtoken with the algorithm fixed by configuration (HS256 with a secret, or
//! EdDSA / RS256 with PEM keys); `iss`, `aud`, `exp`, `sub` and `jti` required. A token is
//! accepted only if its `jti` was issued by this server (`admin token emitir`) and is not
//! revoked, and its user still exists: revocation applies at the next connection.
//!
//! The access matrix ([`acceso`]) is a pure function; docs/security.md reproduces it.

use std::path::Path;

use bitacora_core::model::DocKind;
use bitacora_core::store::DocInfo;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::config::{JwtConfig, Secret};
use crate::db::{Database, DbError, Usuario};

#[derive(Debug, Error)]
pub enum AuthError {
    #[error("missing token")]
    Missing,
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("token revoked or unknown")]
    Revoked,
    #[error("token user does not exist or changed")]
    UnknownUser,
    #[error("JWT configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The roles of brief §4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rol {
    Docente,
    Director,
    Supervisor,
    Atp,
    Admin,
}

impl Rol {
    pub const TODOS: [Rol; 5] = [
        Rol::Docente,
        Rol::Director,
        Rol::Supervisor,
        Rol::Atp,
        Rol::Admin,
    ];

    pub fn parse(s: &str) -> Option<Rol> {
        Some(match s {
            "docente" => Rol::Docente,
            "director" => Rol::Director,
            "supervisor" => Rol::Supervisor,
            "atp" => Rol::Atp,
            "admin" => Rol::Admin,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Rol::Docente => "docente",
            Rol::Director => "director",
            Rol::Supervisor => "supervisor",
            Rol::Atp => "atp",
            Rol::Admin => "admin",
        }
    }

    /// Roles scoped to a school (claims name a CCT); the others are scoped to a zone.
    pub fn de_escuela(self) -> bool {
        matches!(self, Rol::Docente | Rol::Director)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub rol: Rol,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cct: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zona: Option<String>,
}

/// Who is calling, as established from a valid token and the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub usuario: String,
    pub rol: Rol,
    pub cct: Option<String>,
    /// The zone: the user's own for zone roles, the school's zone for school roles.
    pub zona: Option<String>,
}

impl Principal {
    /// The principal of a user as stored (used for actor binding too).
    pub async fn de_usuario(db: &Database, u: &Usuario) -> Result<Principal, AuthError> {
        let rol = Rol::parse(&u.rol).ok_or(AuthError::UnknownUser)?;
        let zona = match (&u.cct, rol.de_escuela()) {
            (Some(cct), true) => db.zona_de_escuela(cct).await?,
            _ => u.zona.clone(),
        };
        Ok(Principal {
            usuario: u.id.clone(),
            rol,
            cct: u.cct.clone(),
            zona,
        })
    }
}

/// Signing and verifying keys for the configured algorithm.
pub struct Keys {
    alg: Algorithm,
    /// The current key first, then those of a rotation in progress (`jwt.previous_*`).
    decoding: Vec<DecodingKey>,
    encoding: Option<EncodingKey>,
    issuer: String,
    audience: String,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("alg", &self.alg)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl Keys {
    /// Builds keys from configuration. For HS256 without a configured secret, a random secret
    /// is generated once into `data_dir/jwt-secret` (mode 0600) and reused.
    pub fn from_config(cfg: &JwtConfig, data_dir: &Path) -> Result<Keys, AuthError> {
        let bad = |m: String| AuthError::Config(m);
        let (alg, decoding, encoding) = match cfg.algorithm.as_str() {
            "HS256" => {
                let secret = match &cfg.secret {
                    Some(s) => s.clone(),
                    None => {
                        generated_secret(data_dir).map_err(|e| bad(format!("jwt-secret: {e}")))?
                    }
                };
                if secret.expose().len() < 32 {
                    return Err(bad("the HS256 secret must be at least 32 bytes".into()));
                }
                let mut decoding = vec![DecodingKey::from_secret(secret.expose().as_bytes())];
                for (i, old) in cfg.previous_secrets.iter().enumerate() {
                    if old.expose().len() < 32 {
                        return Err(bad(format!(
                            "jwt.previous_secrets[{i}] must be at least 32 bytes"
                        )));
                    }
                    decoding.push(DecodingKey::from_secret(old.expose().as_bytes()));
                }
                (
                    Algorithm::HS256,
                    decoding,
                    Some(EncodingKey::from_secret(secret.expose().as_bytes())),
                )
            }
            "EdDSA" | "RS256" => {
                let alg = if cfg.algorithm == "EdDSA" {
                    Algorithm::EdDSA
                } else {
                    Algorithm::RS256
                };
                let public = cfg
                    .public_key_file
                    .as_ref()
                    .ok_or_else(|| bad("jwt.public_key_file is required".into()))?;
                let mut decoding = Vec::new();
                for path in std::iter::once(public).chain(&cfg.previous_public_key_files) {
                    let pem =
                        std::fs::read(path).map_err(|e| bad(format!("{}: {e}", path.display())))?;
                    decoding.push(
                        if alg == Algorithm::EdDSA {
                            DecodingKey::from_ed_pem(&pem)
                        } else {
                            DecodingKey::from_rsa_pem(&pem)
                        }
                        .map_err(|e| bad(format!("public key {}: {e}", path.display())))?,
                    );
                }
                let encoding = match &cfg.private_key_file {
                    Some(p) => {
                        let pem =
                            std::fs::read(p).map_err(|e| bad(format!("{}: {e}", p.display())))?;
                        Some(
                            if alg == Algorithm::EdDSA {
                                EncodingKey::from_ed_pem(&pem)
                            } else {
                                EncodingKey::from_rsa_pem(&pem)
                            }
                            .map_err(|e| bad(format!("private key: {e}")))?,
                        )
                    }
                    None => None,
                };
                (alg, decoding, encoding)
            }
            other => {
                return Err(bad(format!(
                    "unsupported jwt.algorithm `{other}` (HS256, EdDSA or RS256)"
                )));
            }
        };
        Ok(Keys {
            alg,
            decoding,
            encoding,
            issuer: cfg.issuer.clone(),
            audience: cfg.audience.clone(),
        })
    }

    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// Signs claims (admin `token emitir`).
    pub fn issue(&self, claims: &Claims) -> Result<String, AuthError> {
        let key = self
            .encoding
            .as_ref()
            .ok_or_else(|| AuthError::Config("no private key configured to sign tokens".into()))?;
        encode(&Header::new(self.alg), claims, key).map_err(|e| AuthError::Config(e.to_string()))
    }

    /// Verifies signature, algorithm, issuer, audience and expiry, with the current key or one
    /// of a rotation in progress.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let mut v = Validation::new(self.alg);
        v.algorithms = vec![self.alg];
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&[&self.audience]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        v.leeway = 30;
        let mut first_error = None;
        for key in &self.decoding {
            match decode::<Claims>(token, key, &v) {
                Ok(d) => return Ok(d.claims),
                // Another key may have signed it: try the next.
                Err(e) if *e.kind() == jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                    first_error.get_or_insert(e);
                }
                // Signed by this key but refused (expired, wrong audience…), or malformed.
                Err(e) => return Err(AuthError::Invalid(e.to_string())),
            }
        }
        Err(AuthError::Invalid(first_error.map_or_else(
            || "no verification key".to_string(),
            |e| e.to_string(),
        )))
    }

    /// Full authentication: a valid token, issued here, not revoked, of an existing user whose
    /// role and scope still match the claims.
    pub async fn authenticate(&self, db: &Database, token: &str) -> Result<Principal, AuthError> {
        let c = self.verify(token)?;
        self.authenticate_claims(db, &c).await
    }

    /// The database half of [`Keys::authenticate`], for claims [`Keys::verify`] accepted (the
    /// HTTP layer checks the token's rate limit in between, before any database work).
    pub async fn authenticate_claims(
        &self,
        db: &Database,
        c: &Claims,
    ) -> Result<Principal, AuthError> {
        if !db.token_vigente(&c.jti, &c.sub).await? {
            return Err(AuthError::Revoked);
        }
        let u = db.usuario(&c.sub).await?.ok_or(AuthError::UnknownUser)?;
        if u.rol != c.rol.as_str() || u.cct != c.cct || u.zona != c.zona {
            return Err(AuthError::UnknownUser);
        }
        Principal::de_usuario(db, &u).await
    }
}

fn generated_secret(dir: &Path) -> std::io::Result<Secret> {
    let path = dir.join("jwt-secret");
    if let Ok(s) = std::fs::read_to_string(&path) {
        return Ok(Secret::new(s.trim()));
    }
    std::fs::create_dir_all(dir)?;
    let bytes: [u8; 32] = rand::random();
    let s: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    #[cfg(unix)]
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        f.write_all(s.as_bytes())?;
        f.sync_all()?;
    }
    #[cfg(not(unix))]
    std::fs::write(&path, &s)?;
    Ok(Secret::new(s))
}

/// What a principal may do with a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Acceso {
    Ninguno,
    Lectura,
    Escritura,
}

/// The access matrix. `zona_del_documento` is the zone of the document: the school's zone for a
/// school document (from the database), the zone itself for a zone document. Deny by default.
///
/// | role       | own school | other school | school of own zone | own zone doc | other zone doc |
/// |------------|------------|--------------|--------------------|--------------|----------------|
/// | docente    | write      | -            | -                  | read         | -              |
/// | director   | write      | -            | -                  | write        | -              |
/// | supervisor | n/a        | -            | write              | write        | -              |
/// | atp        | n/a        | -            | read               | read         | -              |
/// | admin      | -          | -            | -                  | -            | -              |
pub fn acceso(p: &Principal, doc: &DocInfo, zona_del_documento: Option<&str>) -> Acceso {
    let misma_zona = p.zona.is_some() && p.zona.as_deref() == zona_del_documento;
    match (doc.kind, p.rol) {
        (DocKind::Escuela, Rol::Docente | Rol::Director)
            if p.cct.as_deref() == Some(doc.owner.as_str()) =>
        {
            Acceso::Escritura
        }
        (DocKind::Escuela, Rol::Supervisor) if misma_zona => Acceso::Escritura,
        (DocKind::Escuela, Rol::Atp) if misma_zona => Acceso::Lectura,
        (DocKind::Zona, Rol::Director | Rol::Supervisor) if misma_zona => Acceso::Escritura,
        (DocKind::Zona, Rol::Docente | Rol::Atp) if misma_zona => Acceso::Lectura,
        _ => Acceso::Ninguno,
    }
}

/// Whether a principal may see a zone's dashboard page: its supervisor and ATPs, and the
/// directors of its schools (with the supervisor they are the Consejo Técnico de Zona).
pub fn ve_zona(p: &Principal, zona: &str) -> bool {
    matches!(p.rol, Rol::Supervisor | Rol::Atp | Rol::Director) && p.zona.as_deref() == Some(zona)
}

/// Whether a principal may see a school's dashboard page: the zone's supervisor and ATPs, and
/// the school's own staff.
pub fn ve_escuela(p: &Principal, cct: &str, zona_de_la_escuela: &str) -> bool {
    match p.rol {
        Rol::Supervisor | Rol::Atp => p.zona.as_deref() == Some(zona_de_la_escuela),
        Rol::Director | Rol::Docente => p.cct.as_deref() == Some(cct),
        Rol::Admin => false,
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use bitacora_core::ids::DocumentId;

    fn doc(kind: DocKind, owner: &str) -> DocInfo {
        DocInfo {
            id: DocumentId::from_bytes([0; 16]),
            kind,
            owner: owner.into(),
            ciclo: "2025-2026".into(),
        }
    }

    #[test]
    fn matrix() {
        let p = |rol, cct: Option<&str>, zona: &str| Principal {
            usuario: "u".into(),
            rol,
            cct: cct.map(Into::into),
            zona: Some(zona.into()),
        };
        let escuela_a = doc(DocKind::Escuela, "07DPR0001A");
        let zona_1 = doc(DocKind::Zona, "ZONA1");
        let docente = p(Rol::Docente, Some("07DPR0001A"), "ZONA1");
        assert_eq!(
            acceso(&docente, &escuela_a, Some("ZONA1")),
            Acceso::Escritura
        );
        assert_eq!(
            acceso(
                &docente,
                &doc(DocKind::Escuela, "07DPR0002B"),
                Some("ZONA1")
            ),
            Acceso::Ninguno
        );
        assert_eq!(acceso(&docente, &zona_1, Some("ZONA1")), Acceso::Lectura);
        let atp = p(Rol::Atp, None, "ZONA1");
        assert_eq!(acceso(&atp, &escuela_a, Some("ZONA1")), Acceso::Lectura);
        assert_eq!(acceso(&atp, &escuela_a, Some("ZONA2")), Acceso::Ninguno);
        let admin = p(Rol::Admin, None, "ZONA1");
        assert_eq!(acceso(&admin, &zona_1, Some("ZONA1")), Acceso::Ninguno);
        let sin_zona = Principal {
            usuario: "x".into(),
            rol: Rol::Supervisor,
            cct: None,
            zona: None,
        };
        assert_eq!(
            acceso(&sin_zona, &zona_1, None),
            Acceso::Ninguno,
            "None == None is not a match"
        );
    }

    fn claims(jti: &str) -> Claims {
        Claims {
            iss: "bitacora".into(),
            aud: "bitacora-sync".into(),
            sub: "ana".into(),
            exp: crate::db::now() + 3600,
            iat: crate::db::now(),
            jti: jti.into(),
            rol: Rol::Docente,
            cct: Some("07DPR0001A".into()),
            zona: None,
        }
    }

    fn hs256(secret: &str, previous: &[&str]) -> Keys {
        let mut cfg = crate::config::Config::default().jwt;
        cfg.secret = Some(Secret::new(secret));
        cfg.previous_secrets = previous.iter().map(|s| Secret::new(*s)).collect();
        Keys::from_config(&cfg, Path::new("/nonexistent")).expect("keys")
    }

    /// docs/operations.md, "Rotating the JWT key": tokens signed with the old secret keep
    /// working while it is listed in `previous_secrets`, and stop when it is removed; new
    /// tokens are signed with the new one; a previous key never rescues an expired token.
    #[test]
    fn hs256_rotation_window() {
        const OLD: &str = "secreto-anterior-de-bitacora-32-bytes-o-mas";
        const NEW: &str = "secreto-nuevo-de-bitacora-de-32-bytes-o-mas";
        let before = hs256(OLD, &[]);
        let old_token = before.issue(&claims("t-old")).unwrap();

        let during = hs256(NEW, &[OLD]);
        assert_eq!(during.verify(&old_token).unwrap().jti, "t-old");
        let new_token = during.issue(&claims("t-new")).unwrap();
        assert!(
            before.verify(&new_token).is_err(),
            "signed with the new secret"
        );

        let after = hs256(NEW, &[]);
        assert_eq!(after.verify(&new_token).unwrap().jti, "t-new");
        assert!(matches!(
            after.verify(&old_token),
            Err(AuthError::Invalid(m)) if m.contains("InvalidSignature")
        ));

        let mut expired = claims("t-exp");
        expired.exp = crate::db::now() - 3600;
        let expired = before.issue(&expired).unwrap();
        assert!(matches!(
            during.verify(&expired),
            Err(AuthError::Invalid(m)) if m.contains("Expired")
        ));
        let mut short = crate::config::Config::default().jwt;
        short.secret = Some(Secret::new(NEW));
        short.previous_secrets = vec![Secret::new("corto")];
        assert!(matches!(
            Keys::from_config(&short, Path::new("/nonexistent")),
            Err(AuthError::Config(_))
        ));
    }

    // Ed25519 key pairs made for these tests with `openssl genpkey -algorithm ed25519`.
    const ED1: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIF8wz7NAgSKtN9iBa75z6WaKO4kUUwlLWV7svKT+e0ZV\n-----END PRIVATE KEY-----\n";
    const ED1_PUB: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA4oEOwYHh5luXa45UzoMPCvrIDs87orpkObFwdbuXzBU=\n-----END PUBLIC KEY-----\n";
    const ED2: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIEm3IRSkaJ55X637k9hCvA2YNmRkhcRJaWOkiQFryElC\n-----END PRIVATE KEY-----\n";
    const ED2_PUB: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA+54jviM4bgCscLIvzHSGdGL9/Mb5djSdxhXHiSt96Hk=\n-----END PUBLIC KEY-----\n";

    /// The same window with EdDSA key pairs: the old public key in `previous_public_key_files`.
    #[test]
    fn eddsa_rotation_window() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, pem: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, pem).unwrap();
            p
        };
        let (k1, p1, k2, p2) = (
            file("k1.pem", ED1),
            file("p1.pem", ED1_PUB),
            file("k2.pem", ED2),
            file("p2.pem", ED2_PUB),
        );
        let keys = |private: &PathBuf, public: &PathBuf, previous: Vec<PathBuf>| {
            let mut cfg = crate::config::Config::default().jwt;
            cfg.algorithm = "EdDSA".into();
            cfg.private_key_file = Some(private.clone());
            cfg.public_key_file = Some(public.clone());
            cfg.previous_public_key_files = previous;
            Keys::from_config(&cfg, dir.path()).expect("keys")
        };
        let before = keys(&k1, &p1, vec![]);
        let old_token = before.issue(&claims("e-old")).unwrap();
        let during = keys(&k2, &p2, vec![p1.clone()]);
        assert_eq!(during.verify(&old_token).unwrap().jti, "e-old");
        let new_token = during.issue(&claims("e-new")).unwrap();
        let after = keys(&k2, &p2, vec![]);
        assert_eq!(after.verify(&new_token).unwrap().jti, "e-new");
        assert!(after.verify(&old_token).is_err());
        // An HS256 token is refused whatever the keys: the algorithm is fixed.
        assert!(
            during
                .verify(&hs256(&"x".repeat(32), &[]).issue(&claims("h")).unwrap())
                .is_err()
        );
    }
}
