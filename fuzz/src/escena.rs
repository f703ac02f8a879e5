//! The scene: one zone with two registered schools, a third school nobody registered, and one
//! user per role, each with an enrolled device (actor) and a seed token.

use automerge::ActorId;
use bitacora_core::ids::{Cct, DocumentId, ZonaClave};
use bitacora_core::model::DocKind;
use bitacora_core::store::DocInfo;
use bitacora_server::admin;
use bitacora_server::db::Database;

use crate::{ciclo, claves};

pub const CICLO: &str = "2025-2026";
pub const ZONA: &str = "07FIZ0014";
pub const CCT_A: &str = "07DPR0001A";
pub const CCT_B: &str = "07DPR0002B";
/// A well-formed CCT that is not registered on the server.
pub const CCT_FUERA: &str = "07DPR0003C";
pub const SECRETO: &str = "secreto-de-fuzzing-de-bitacora-de-32-bytes-o-mas";
/// `limits.max_message_bytes` of the fuzzed server.
pub const LIMITE_MENSAJE: usize = 16 * 1024;

pub struct Usuario {
    pub id: &'static str,
    pub rol: &'static str,
    pub cct: Option<&'static str>,
    pub zona: Option<&'static str>,
    /// The byte repeated 16 times in the actor id of this user's device.
    pub byte_actor: u8,
}

impl Usuario {
    pub fn puede_escribir(&self, doc: &DocInfo) -> bool {
        puede_escribir(self.rol, self.cct, self.zona, doc)
    }

    pub fn actor(&self) -> ActorId {
        ActorId::from([self.byte_actor; 16].as_slice())
    }
}

/// One user per role; connection slot `i` of `sync_server` is `USUARIOS[i]`.
pub const USUARIOS: [Usuario; 5] = [
    Usuario {
        id: "ana",
        rol: "docente",
        cct: Some(CCT_A),
        zona: None,
        byte_actor: 0xa1,
    },
    Usuario {
        id: "alma",
        rol: "director",
        cct: Some(CCT_A),
        zona: None,
        byte_actor: 0xa2,
    },
    Usuario {
        id: "beto",
        rol: "docente",
        cct: Some(CCT_B),
        zona: None,
        byte_actor: 0xb1,
    },
    Usuario {
        id: "sofia",
        rol: "supervisor",
        cct: None,
        zona: Some(ZONA),
        byte_actor: 0xc1,
    },
    Usuario {
        id: "tere",
        rol: "atp",
        cct: None,
        zona: Some(ZONA),
        byte_actor: 0xc2,
    },
];

/// A user whose only token is revoked (the `token` target's seeds include it).
pub const REVOCADO: &str = "rita";

/// An actor no one enrolled.
pub fn actor_desconocido() -> ActorId {
    ActorId::from([0xee; 16].as_slice())
}

/// The documents of the scene: school A, school B, the zone (registered) and the unregistered
/// school's, in that order.
pub fn documentos() -> [DocInfo; 4] {
    let escuela = |cct: &str| {
        let c = Cct::parse(cct).expect("literal");
        DocInfo {
            id: DocumentId::escuela(&c, ciclo()),
            kind: DocKind::Escuela,
            owner: c.to_string(),
            ciclo: CICLO.into(),
        }
    };
    let z = ZonaClave::parse(ZONA).expect("literal");
    [
        escuela(CCT_A),
        escuela(CCT_B),
        DocInfo {
            id: DocumentId::zona(&z, ciclo()),
            kind: DocKind::Zona,
            owner: z.to_string(),
            ciclo: CICLO.into(),
        },
        escuela(CCT_FUERA),
    ]
}

/// Whether a user with this role and scope may write `doc`: the access matrix of
/// docs/security.md written out again by hand for this scene (both schools are in [`ZONA`]),
/// not computed by the server's `acceso`, which the targets check.
pub fn puede_escribir(rol: &str, cct: Option<&str>, zona: Option<&str>, doc: &DocInfo) -> bool {
    let zona_de = |c: &str| (c == CCT_A || c == CCT_B).then_some(ZONA);
    match (doc.kind, rol) {
        (DocKind::Escuela, "docente" | "director") => cct == Some(doc.owner.as_str()),
        (DocKind::Escuela, "supervisor") => zona.is_some() && zona == zona_de(&doc.owner),
        (DocKind::Zona, "director") => cct.and_then(zona_de) == Some(doc.owner.as_str()),
        (DocKind::Zona, "supervisor") => zona == Some(doc.owner.as_str()),
        _ => false,
    }
}

/// The scene user an actor belongs to.
pub fn usuario_de(actor: &ActorId) -> Option<&'static Usuario> {
    USUARIOS.iter().find(|u| u.actor() == *actor)
}

/// Registers the scene's zone, schools and users, enrols each user's actor and records the
/// `jti` of each seed token (and one revoked token).
pub async fn registrar(db: &Database) {
    admin::zona_add(db, ZONA, "Zona de fuzzing", ciclo())
        .await
        .expect("zona");
    for cct in [CCT_A, CCT_B] {
        admin::escuela_add(db, cct, &format!("Escuela {cct}"), ZONA, ciclo())
            .await
            .expect("escuela");
    }
    for u in &USUARIOS {
        admin::usuario_add(db, u.id, u.id, u.rol, u.cct, u.zona)
            .await
            .expect("usuario");
        db.enrol_actor(&u.actor().to_hex_string(), u.id)
            .await
            .expect("actor");
        db.add_token(&claves::jti(u.id), u.id, 0, claves::EXP)
            .await
            .expect("token");
    }
    admin::usuario_add(db, REVOCADO, REVOCADO, "docente", Some(CCT_A), None)
        .await
        .expect("usuario");
    db.add_token(&claves::jti(REVOCADO), REVOCADO, 0, claves::EXP)
        .await
        .expect("token");
    db.revoke_token(&claves::jti(REVOCADO))
        .await
        .expect("revoke");
}
