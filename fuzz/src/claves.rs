//! The keys of the `token` target and a minimal JWT writer for its seeds, independent of
//! jsonwebtoken (which the server verifies with), so the target can check what the server
//! accepts against signatures it computes itself.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bitacora_server::auth::Keys;
use bitacora_server::config::JwtConfig;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::escena;

/// `exp` of the seed tokens: 2100-01-01.
pub const EXP: i64 = 4_102_444_800;

/// A throw-away Ed25519 key pair made for these fuzz targets (`openssl genpkey -algorithm
/// ed25519`); it protects nothing.
pub const ED25519_PRIVADA_PEM: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIIZqvw7t20I89QWz2Ac4kLXyOgayI2ZACmhPXlZUOSW7
-----END PRIVATE KEY-----
";
pub const ED25519_PUBLICA_PEM: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAYCbtEYnLbxcILpIyvyuLtUf99q4X/J+/LZ5x+aPWNtM=
-----END PUBLIC KEY-----
";

/// The `jti` of a user's seed token.
pub fn jti(usuario: &str) -> String {
    format!("jti-fuzz-{usuario}")
}

/// The last 32 bytes of a PEM's DER: the key itself, for Ed25519 PKCS#8 and SPKI alike.
fn ultimos_32(pem: &str) -> [u8; 32] {
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = STANDARD.decode(b64).expect("PEM literal");
    der[der.len() - 32..].try_into().expect("32 bytes")
}

pub fn clave_firma() -> SigningKey {
    SigningKey::from_bytes(&ultimos_32(ED25519_PRIVADA_PEM))
}

pub fn clave_verificacion() -> VerifyingKey {
    VerifyingKey::from_bytes(&ultimos_32(ED25519_PUBLICA_PEM)).expect("public key literal")
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn hmac_sha256(secreto: &[u8], mensaje: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(secreto).expect("any key length");
    m.update(mensaje);
    m.finalize().into_bytes().to_vec()
}

/// `header.claims.signature` with HS256 over the given JSON texts.
pub fn firmar_hs256(header: &str, claims: &str, secreto: &[u8]) -> String {
    let entrada = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
    let firma = hmac_sha256(secreto, entrada.as_bytes());
    format!("{entrada}.{}", b64(&firma))
}

/// `header.claims.signature` with Ed25519 over the given JSON texts.
pub fn firmar_eddsa(header: &str, claims: &str) -> String {
    let entrada = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
    let firma = clave_firma().sign(entrada.as_bytes());
    format!("{entrada}.{}", b64(&firma.to_bytes()))
}

/// The claims of a seed token for a user of the scene, as JSON.
pub fn claims(usuario: &escena::Usuario) -> String {
    let mut c = serde_json::json!({
        "iss": "bitacora",
        "aud": "bitacora-sync",
        "sub": usuario.id,
        "exp": EXP,
        "iat": 1_700_000_000,
        "jti": jti(usuario.id),
        "rol": usuario.rol,
    });
    if let Some(cct) = usuario.cct {
        c["cct"] = cct.into();
    }
    if let Some(z) = usuario.zona {
        c["zona"] = z.into();
    }
    c.to_string()
}

/// The server's keys for HS256 with the scene's secret.
pub fn keys_hs256(dir: &Path) -> Keys {
    Keys::from_config(&crate::config(dir).jwt, dir).expect("HS256 keys")
}

/// The server's keys for EdDSA with the key pair above (written into `dir`).
pub fn keys_eddsa(dir: &Path) -> Keys {
    let publica = dir.join("ed25519-publica.pem");
    let privada = dir.join("ed25519-privada.pem");
    std::fs::write(&publica, ED25519_PUBLICA_PEM).expect("write PEM");
    std::fs::write(&privada, ED25519_PRIVADA_PEM).expect("write PEM");
    let cfg = JwtConfig {
        algorithm: "EdDSA".into(),
        secret: None,
        public_key_file: Some(publica),
        private_key_file: Some(privada),
        ..crate::config(dir).jwt
    };
    Keys::from_config(&cfg, dir).expect("EdDSA keys")
}
