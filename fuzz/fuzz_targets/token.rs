//! Strings → the server's JWT verification (`auth::Keys::verify` with HS256 and with EdDSA,
//! and `Keys::authenticate` against the registered scene).
//!
//! Checked, besides "no panic": a token is accepted only if it is exactly three base64url parts
//! whose header names the configured algorithm and whose signature this target verifies itself
//! (HMAC-SHA256 with the scene's secret, computed with `hmac`; Ed25519 with `ed25519-dalek`'s
//! strict verification), with this server's issuer and audience and not expired; and
//! `authenticate` accepts only a token whose `jti` was issued to that user and not revoked, for
//! a user whose role and scope match the claims.

#![no_main]

use std::sync::LazyLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bitacora_fuzz::claves::{self, hmac_sha256};
use bitacora_fuzz::escena::{self, USUARIOS};
use bitacora_fuzz::{Copia, Plantilla, runtime};
use bitacora_server::auth::{Claims, Keys};
use libfuzzer_sys::fuzz_target;

struct Global {
    rt: tokio::runtime::Runtime,
    _plantilla: Plantilla,
    copia: Copia,
    hs: Keys,
    ed: Keys,
}

static G: LazyLock<Global> = LazyLock::new(|| {
    let rt = runtime();
    let plantilla = rt.block_on(Plantilla::crear());
    // Authentication only reads the database: one copy serves every input.
    let copia = rt.block_on(plantilla.abrir());
    let hs = claves::keys_hs256(plantilla.dir());
    let ed = claves::keys_eddsa(plantilla.dir());
    Global {
        rt,
        _plantilla: plantilla,
        copia,
        hs,
        ed,
    }
});

/// The parts of an accepted token: signing input, header, claims (JSON) and signature bytes.
fn partes(token: &str) -> (&str, serde_json::Value, serde_json::Value, Vec<u8>) {
    let p: Vec<&str> = token.split('.').collect();
    assert_eq!(
        p.len(),
        3,
        "accepted a token of {} parts: {token:?}",
        p.len()
    );
    let dec = |s: &str, que: &str| {
        URL_SAFE_NO_PAD.decode(s).unwrap_or_else(|e| {
            panic!("accepted a token whose {que} is not base64url ({e}): {token:?}")
        })
    };
    let json = |s: &str, que: &str| -> serde_json::Value {
        serde_json::from_slice(&dec(s, que))
            .unwrap_or_else(|e| panic!("accepted a token whose {que} is not JSON ({e}): {token:?}"))
    };
    let entrada = &token[..p[0].len() + 1 + p[1].len()];
    (
        entrada,
        json(p[0], "header"),
        json(p[1], "claims"),
        dec(p[2], "signature"),
    )
}

fn comun(token: &str, c: &Claims, alg: &str) -> (String, Vec<u8>) {
    let (entrada, header, claims, firma) = partes(token);
    assert_eq!(
        header["alg"], alg,
        "accepted a token whose header says {header}: {token:?}"
    );
    assert_eq!(c.iss, "bitacora", "wrong issuer accepted: {token:?}");
    assert_eq!(c.aud, "bitacora-sync", "wrong audience accepted: {token:?}");
    assert_eq!(
        claims["sub"],
        c.sub.as_str(),
        "claims differ from the token's: {token:?}"
    );
    let ahora = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    assert!(c.exp + 60 >= ahora, "expired token accepted: {token:?}");
    (entrada.to_string(), firma)
}

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let g = &*G;
    let hs = g.hs.verify(token);
    if let Ok(c) = &hs {
        let (entrada, firma) = comun(token, c, "HS256");
        assert_eq!(
            hmac_sha256(escena::SECRETO.as_bytes(), entrada.as_bytes()),
            firma,
            "HS256 token accepted with a signature that is not ours: {token:?}"
        );
    }
    if let Ok(c) = g.ed.verify(token) {
        let (entrada, firma) = comun(token, &c, "EdDSA");
        let firma = ed25519_dalek::Signature::from_slice(&firma).unwrap_or_else(|e| {
            panic!("EdDSA token accepted with a malformed signature ({e}): {token:?}")
        });
        claves::clave_verificacion()
            .verify_strict(entrada.as_bytes(), &firma)
            .unwrap_or_else(|e| {
                panic!("EdDSA token accepted with a signature that is not ours ({e}): {token:?}")
            });
    }
    if let Ok(p) = g.rt.block_on(g.hs.authenticate(&g.copia.db, token)) {
        let c = hs.expect("authenticate accepted a token verify refuses");
        assert_eq!(p.usuario, c.sub, "authenticated as someone else: {token:?}");
        assert_eq!(
            c.jti,
            claves::jti(&c.sub),
            "authenticated with a jti never issued: {token:?}"
        );
        assert_ne!(
            c.sub,
            escena::REVOCADO,
            "authenticated with a revoked token: {token:?}"
        );
        let u = USUARIOS
            .iter()
            .find(|u| u.id == c.sub)
            .unwrap_or_else(|| panic!("authenticated an unknown user: {token:?}"));
        assert_eq!(
            c.rol.as_str(),
            u.rol,
            "role differs from the user's: {token:?}"
        );
        assert_eq!(
            c.cct.as_deref(),
            u.cct,
            "CCT differs from the user's: {token:?}"
        );
        assert_eq!(
            c.zona.as_deref(),
            u.zona,
            "zone differs from the user's: {token:?}"
        );
    }
});
