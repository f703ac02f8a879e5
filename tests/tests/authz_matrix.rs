//! `authz_matrix`: the access matrix of `bitacora_server::auth::acceso`, end to end against a
//! real server, with a raw protocol client written here (not the sync engine), so the test can
//! also send what a well-behaved client never would.
//!
//! - Every role reads (`request` → `sync` or `doc-unavailable`) and writes (a `sync` carrying a
//!   new change by the user's enrolled actor) every kind of document; the observed access is
//!   compared with the table [`ESPERADO`]. A denied document is answered byte for byte like a
//!   document that was never registered.
//! - Bad tokens are refused at the upgrade with 401 and never reach the WebSocket; `?token=`
//!   works exactly like the header; `GET /v1/documentos` lists what the matrix allows.
//! - Changes authored by actors not enrolled to someone who may write the document (another
//!   school's teacher, no one, the genesis actor writing something other than the genesis) are
//!   refused with `error`, not stored, and audited; a supervisor's actor is accepted in a school
//!   of his zone, whoever relays it; an ATP's change is not even sent by a client that follows
//!   the protocol (the server flags itself read-only) and is refused as read-only if sent.
//! - A sync message with its heads out of order is handled like any other.

use std::collections::{BTreeSet, HashMap};

use anyhow::{Context, Result, bail, ensure};
use automerge::sync::{self, ChunkList, MessageVersion};
use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, Change, ChangeHash, ROOT, ReadDoc};
use bitacora_core::ids::{Cct, DocumentId, ZonaClave};
use bitacora_core::model::{DocKind, doc_kind, escuela, genesis_actor, zona};
use bitacora_core::protocol::{Message, Session};
use bitacora_server::admin;
use bitacora_server::auth::Claims;
use bitacora_server::hub::assemble;
use bitacora_tests::cliente::{
    Cliente, Escritura, Lectura, VIAS, Via, cambio_sobre, http_get, upgrade,
};
use bitacora_tests::server::{SECRETO, TestServer};
use jsonwebtoken::{Algorithm, EncodingKey, Header};

// ---------------------------------------------------------------------------------------------
// The world and the expected matrix.

const ZONA_1: &str = "07FIZ0014";
const ZONA_2: &str = "07FIZ0099";
const CCT_A: &str = "07DPR0001A";
const CCT_B: &str = "07DPR0002B";
const CCT_C: &str = "07DPR0003C";

/// Access level, as observed or expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Acc {
    /// Neither read nor write: the document does not exist for this user.
    N,
    /// Read only: `sync` comes back, changes are refused with `error`.
    R,
    /// Read and write: changes are confirmed and stored.
    W,
}
use Acc::{N, R, W};

/// The documents every role is tried against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Destino {
    /// School A of zone 1: the own school of the docente and the director; for the supervisor
    /// and the ATP of zone 1, a school of their zone.
    EscuelaA,
    /// School B: another school of the same zone 1.
    EscuelaB,
    /// School C: a school of zone 2.
    EscuelaC,
    /// The zone document of zone 1: the own zone of every role but admin.
    Zona1,
    /// The zone document of zone 2.
    Zona2,
}
use Destino::{EscuelaA, EscuelaB, EscuelaC, Zona1, Zona2};

const DESTINOS: [Destino; 5] = [EscuelaA, EscuelaB, EscuelaC, Zona1, Zona2];

/// The expected matrix: auth.rs's doc comment, per document. Columns are [`DESTINOS`]:
///
/// | role       | school A (own / of own zone) | school B (same zone) | school C (zone 2) | zone 1 doc | zone 2 doc |
/// |------------|------------------------------|----------------------|-------------------|------------|------------|
/// | docente    | write                        | -                    | -                 | read       | -          |
/// | director   | write                        | -                    | -                 | write      | -          |
/// | supervisor | write                        | write                | -                 | write      | -          |
/// | atp        | read                         | read                 | -                 | read       | -          |
/// | admin      | -                            | -                    | -                 | -          | -          |
const ESPERADO: [(&str, [Acc; 5]); 5] = [
    ("docente", [W, N, N, R, N]),
    ("director", [W, N, N, W, N]),
    ("supervisor", [W, W, N, W, N]),
    ("atp", [R, R, N, R, N]),
    ("admin", [N, N, N, N, N]),
];

/// (user id, role, cct, zone). The first five are the matrix's roles (in [`ESPERADO`]'s order).
const USUARIOS: [(&str, &str, Option<&str>, Option<&str>); 8] = [
    ("ana", "docente", Some(CCT_A), None),
    ("alma", "director", Some(CCT_A), None),
    ("sergio", "supervisor", None, Some(ZONA_1)),
    ("tere", "atp", None, Some(ZONA_1)),
    ("root", "admin", None, None),
    ("beto", "docente", Some(CCT_B), None),
    ("carla", "docente", Some(CCT_C), None),
    ("sara", "supervisor", None, Some(ZONA_2)),
];

fn usuario_de_rol(rol: &str) -> &'static str {
    USUARIOS
        .iter()
        .find(|u| u.1 == rol)
        .map(|u| u.0)
        .expect("every role has a user")
}

struct Mundo {
    srv: TestServer,
    docs: HashMap<Destino, DocumentId>,
    tokens: HashMap<&'static str, String>,
    /// The actor enrolled to each user.
    actores: HashMap<&'static str, ActorId>,
}

impl Mundo {
    async fn nuevo() -> Result<Mundo> {
        let srv = TestServer::start().await?;
        let mut docs = HashMap::new();
        docs.insert(Zona1, srv.zona(ZONA_1).await?.id);
        docs.insert(Zona2, srv.zona(ZONA_2).await?.id);
        docs.insert(EscuelaA, srv.escuela(CCT_A, ZONA_1).await?.id);
        docs.insert(EscuelaB, srv.escuela(CCT_B, ZONA_1).await?.id);
        docs.insert(EscuelaC, srv.escuela(CCT_C, ZONA_2).await?.id);
        let mut tokens = HashMap::new();
        let mut actores = HashMap::new();
        for (id, rol, cct, zona) in USUARIOS {
            tokens.insert(id, srv.usuario(id, rol, cct, zona).await?);
            let actor = ActorId::random();
            srv.enrolar(&actor.to_hex_string(), id).await?;
            actores.insert(id, actor);
        }
        let m = Mundo {
            srv,
            docs,
            tokens,
            actores,
        };
        // The deterministic genesis of each document is the one the server registered.
        for d in DESTINOS {
            let mut g = genesis(d)?;
            ensure!(
                m.srv.db.load(&m.id(d)).await?.chunks.len() == 1
                    && assemble(&m.srv.db.load(&m.id(d)).await?)
                        .map_err(anyhow::Error::msg)?
                        .get_heads()
                        == g.get_heads(),
                "the server's {d:?} is the deterministic genesis"
            );
        }
        Ok(m)
    }

    fn id(&self, d: Destino) -> DocumentId {
        self.docs[&d]
    }

    fn token(&self, usuario: &str) -> &str {
        &self.tokens[usuario]
    }

    fn actor(&self, usuario: &str) -> ActorId {
        self.actores[usuario].clone()
    }

    async fn conectar(&self, usuario: &str) -> Result<Cliente> {
        Cliente::conectar(&self.srv.url, self.token(usuario), Via::Cabecera).await
    }

    async fn almacenado(&self, id: DocumentId, h: &ChangeHash) -> Result<bool> {
        almacenado(&self.srv, id, h).await
    }

    /// The audit rows written since `desde` rows.
    async fn auditoria_desde(&self, desde: usize) -> Result<Vec<Fila>> {
        Ok(self.srv.db.audit_tail(1_000_000).await?.split_off(desde))
    }

    async fn auditoria_len(&self) -> Result<usize> {
        Ok(self.srv.db.audit_tail(1_000_000).await?.len())
    }
}

type Fila = (i64, String, String, String, String, String);

fn genesis(d: Destino) -> Result<AutoCommit> {
    let ciclo = TestServer::ciclo();
    Ok(match d {
        EscuelaA => escuela::genesis_escuela(&Cct::parse(CCT_A)?, ciclo)?,
        EscuelaB => escuela::genesis_escuela(&Cct::parse(CCT_B)?, ciclo)?,
        EscuelaC => escuela::genesis_escuela(&Cct::parse(CCT_C)?, ciclo)?,
        Zona1 => zona::genesis_zona(&ZonaClave::parse(ZONA_1)?, ciclo)?,
        Zona2 => zona::genesis_zona(&ZonaClave::parse(ZONA_2)?, ciclo)?,
    })
}

fn tipo(d: Destino) -> DocKind {
    match d {
        EscuelaA | EscuelaB | EscuelaC => DocKind::Escuela,
        Zona1 | Zona2 => DocKind::Zona,
    }
}

/// A new change on the deterministic genesis of `d`, authored by `actor`.
fn cambio(d: Destino, actor: &ActorId, etiqueta: &str) -> Result<Change> {
    cambio_sobre(&mut genesis(d)?, actor, etiqueta)
}

async fn almacenado(srv: &TestServer, id: DocumentId, h: &ChangeHash) -> Result<bool> {
    let doc = assemble(&srv.db.load(&id).await?).map_err(anyhow::Error::msg)?;
    Ok(doc.get_change_by_hash(h).is_some())
}

fn documento_al_azar() -> DocumentId {
    DocumentId::from_bytes(rand::random())
}

/// A denial must be the very frame the server sends for a document it never heard of: same
/// message type and fields, only the document id differs.
fn como_desconocido(
    denegado: &[u8],
    id_denegado: DocumentId,
    desconocido: &[u8],
    id_desconocido: DocumentId,
) -> Result<()> {
    let m = Message::decode(denegado)?;
    let Message::DocUnavailable {
        sender_id,
        target_id,
        document_id,
    } = m.clone()
    else {
        bail!("a denial is `doc-unavailable`, got {m:?}");
    };
    ensure!(document_id == id_denegado, "denial for the wrong document");
    ensure!(
        m.encode() == denegado,
        "the denial re-encodes to the same bytes (nothing beyond the known fields)"
    );
    ensure!(
        matches!(Message::decode(desconocido)?, Message::DocUnavailable { document_id, .. } if document_id == id_desconocido),
        "the unknown document is answered with `doc-unavailable`"
    );
    let sustituido = Message::DocUnavailable {
        sender_id,
        target_id,
        document_id: id_desconocido,
    }
    .encode();
    ensure!(
        sustituido == desconocido,
        "a denial differs from a missing document beyond the id:\n denied  {denegado:02x?}\n unknown {desconocido:02x?}"
    );
    Ok(())
}

fn tabla(filas: &[(&str, [Acc; 5])]) -> String {
    let mut s = format!(
        "{:<11} {:?}\n",
        "",
        DESTINOS.map(|d| format!("{d:?}")).join(" ")
    );
    for (rol, accs) in filas {
        s.push_str(&format!("{rol:<11} {accs:?}\n"));
    }
    s
}

/// `GET /v1/documentos` as (id, acceso), by header or `?token=`.
async fn documentos(srv: &TestServer, token: &str, via: Via) -> Result<(u16, String)> {
    match via {
        Via::Cabecera => http_get(&srv.url, "/v1/documentos", Some(token)).await,
        Via::Query => http_get(&srv.url, &format!("/v1/documentos?token={token}"), None).await,
    }
}

// ---------------------------------------------------------------------------------------------
// 1. The matrix.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authz_matrix() -> Result<()> {
    let m = Mundo::nuevo().await?;
    let mut observado: Vec<(&str, [Acc; 5])> = Vec::new();
    for (rol, _) in ESPERADO {
        let usuario = usuario_de_rol(rol);

        // Read, over a connection authenticated by header and one by `?token=`: both must see
        // the same thing.
        let mut legible = [false; 5];
        for via in VIAS {
            let mut c = Cliente::conectar(&m.srv.url, m.token(usuario), via).await?;
            for (i, d) in DESTINOS.into_iter().enumerate() {
                let id = m.id(d);
                let puede = match c.leer(id).await? {
                    Lectura::Documento(doc) => {
                        ensure!(
                            doc_kind(&doc) == Some(tipo(d)),
                            "{rol} read {d:?} as a {:?} document",
                            doc_kind(&doc)
                        );
                        let g = genesis(d)?.get_heads()[0];
                        ensure!(doc.get_change_by_hash(&g).is_some(), "{rol}: {d:?} genesis");
                        true
                    }
                    Lectura::NoDisponible(raw) => {
                        // On the same connection, a document no one ever registered.
                        let otro = documento_al_azar();
                        let Lectura::NoDisponible(raw_otro) = c.leer(otro).await? else {
                            bail!("a random document id is served");
                        };
                        como_desconocido(&raw, id, &raw_otro, otro)
                            .with_context(|| format!("{rol} reading {d:?} by {via:?}"))?;
                        false
                    }
                };
                if via == Via::Cabecera {
                    legible[i] = puede;
                } else {
                    ensure!(
                        legible[i] == puede,
                        "{rol} {d:?}: `?token=` differs from the header"
                    );
                }
            }
        }

        // Write: one connection per attempt (a refusal closes it), a change by the user's own
        // enrolled actor on the deterministic genesis.
        let mut fila = [N; 5];
        for (i, d) in DESTINOS.into_iter().enumerate() {
            let id = m.id(d);
            let ch = cambio(d, &m.actor(usuario), &format!("{rol} -> {d:?}"))?;
            let antes = m.auditoria_len().await?;
            let mut c = m.conectar(usuario).await?;
            let r = c.escribir(id, std::slice::from_ref(&ch)).await?;
            let guardado = m.almacenado(id, &ch.hash()).await?;
            let audit = m.auditoria_desde(antes).await?;
            let fila_de = |accion: &str, resultado: &str| {
                audit.iter().any(|f| {
                    f.1 == usuario && f.2 == id.to_string() && f.3 == accion && f.4 == resultado
                })
            };
            fila[i] = match r {
                Escritura::Confirmada => {
                    ensure!(guardado, "{rol} {d:?}: confirmed but not stored");
                    ensure!(
                        fila_de("escritura", "aceptada"),
                        "{rol} {d:?}: accepted write audited: {audit:?}"
                    );
                    W
                }
                Escritura::Rechazada(msg) => {
                    ensure!(!guardado, "{rol} {d:?}: refused ({msg}) but stored");
                    ensure!(
                        legible[i],
                        "{rol} {d:?}: `error` for an unreadable document reveals it: {msg}"
                    );
                    ensure!(
                        fila_de("escritura", "rechazada"),
                        "{rol} {d:?}: refused write audited: {audit:?}"
                    );
                    R
                }
                Escritura::NoDisponible(raw) => {
                    ensure!(!guardado, "{rol} {d:?}: unavailable but stored");
                    ensure!(
                        !legible[i],
                        "{rol} {d:?}: readable, but a write got doc-unavailable"
                    );
                    // The same write to a document no one registered: the same answer, and the
                    // connection is still usable.
                    let otro = documento_al_azar();
                    let Escritura::NoDisponible(raw_otro) =
                        c.escribir(otro, std::slice::from_ref(&ch)).await?
                    else {
                        bail!("a write to a random document id was not `doc-unavailable`");
                    };
                    como_desconocido(&raw, id, &raw_otro, otro)
                        .with_context(|| format!("{rol} writing {d:?}"))?;
                    ensure!(
                        fila_de("acceso", "denegado") && !fila_de("escritura", "aceptada"),
                        "{rol} {d:?}: denial audited: {audit:?}"
                    );
                    N
                }
            };
            if fila[i] != W {
                ensure!(
                    matches!((legible[i], fila[i]), (true, R) | (false, N)),
                    "{rol} {d:?}: read and write disagree"
                );
            }
        }
        observado.push((rol, fila));
    }
    ensure!(
        observado == ESPERADO,
        "access matrix\nexpected:\n{}observed:\n{}",
        tabla(&ESPERADO),
        tabla(&observado)
    );
    m.srv.stop().await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 2. Authentication at the upgrade, and the listing.

fn b64url(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn firmar(claims: &Claims, alg: Algorithm) -> Result<String> {
    Ok(jsonwebtoken::encode(
        &Header::new(alg),
        claims,
        &EncodingKey::from_secret(SECRETO.as_bytes()),
    )?)
}

fn jti_nuevo() -> String {
    format!("{:032x}", rand::random::<u128>())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_rechazados_en_el_upgrade() -> Result<()> {
    let m = Mundo::nuevo().await?;
    let srv = &m.srv;
    let (valido, claims) = admin::token_emitir(&srv.db, &srv.keys, "ana", 30).await?;
    let ahora = claims.iat;

    // Control: the issued token, and the same claims signed here, are accepted both ways; so
    // every refusal below is due to the one thing each case changes.
    let resignado = firmar(&claims, Algorithm::HS256)?;
    for t in [&valido, &resignado] {
        for via in VIAS {
            let c = Cliente::conectar(&srv.url, t, via).await?;
            drop(c);
            let (st, _) = documentos(srv, t, via).await?;
            ensure!(st == 200, "control token listing: {st}");
        }
    }

    let con = |f: &dyn Fn(&mut Claims)| {
        let mut c = claims.clone();
        f(&mut c);
        c
    };
    let cabecera_y_cuerpo = |header: &str, c: &Claims| -> Result<String> {
        Ok(format!(
            "{}.{}",
            b64url(header.as_bytes()),
            b64url(&serde_json::to_vec(c)?)
        ))
    };
    let alterado = {
        let partes: Vec<&str> = valido.split('.').collect();
        let mut cuerpo: Vec<char> = partes[1].chars().collect();
        let i = cuerpo.len() / 2;
        cuerpo[i] = if cuerpo[i] == 'A' { 'B' } else { 'A' };
        format!(
            "{}.{}.{}",
            partes[0],
            cuerpo.into_iter().collect::<String>(),
            partes[2]
        )
    };
    let rs256 = {
        let msg = cabecera_y_cuerpo(r#"{"alg":"RS256","typ":"JWT"}"#, &claims)?;
        let firma = jsonwebtoken::crypto::sign(
            msg.as_bytes(),
            &EncodingKey::from_secret(SECRETO.as_bytes()),
            Algorithm::HS256,
        )?;
        format!("{msg}.{firma}")
    };
    let otra_clave = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(b"otra-clave-secreta-de-32-bytes-o-mas!!"),
    )?;
    let (revocado, claims_r) = admin::token_emitir(&srv.db, &srv.keys, "ana", 30).await?;
    Cliente::conectar(&srv.url, &revocado, Via::Cabecera)
        .await
        .context("the token to revoke works before")?;
    admin::token_revocar(&srv.db, &claims_r.jti).await?;

    let casos: Vec<(&str, Option<String>)> = vec![
        (
            "caducado (exp más allá del margen)",
            Some(firmar(
                &con(&|c| {
                    c.iat = ahora - 7200;
                    c.exp = ahora - 120;
                }),
                Algorithm::HS256,
            )?),
        ),
        (
            "emisor ajeno",
            Some(firmar(
                &con(&|c| c.iss = "otro-emisor".into()),
                Algorithm::HS256,
            )?),
        ),
        (
            "audiencia ajena",
            Some(firmar(
                &con(&|c| c.aud = "otra-audiencia".into()),
                Algorithm::HS256,
            )?),
        ),
        (
            "alg none",
            Some(format!(
                "{}.",
                cabecera_y_cuerpo(r#"{"alg":"none","typ":"JWT"}"#, &claims)?
            )),
        ),
        ("HS384", Some(firmar(&claims, Algorithm::HS384)?)),
        ("HS512", Some(firmar(&claims, Algorithm::HS512)?)),
        ("cabecera RS256 con firma HMAC", Some(rs256)),
        ("firmado con otra clave", Some(otra_clave)),
        ("cuerpo alterado", Some(alterado)),
        (
            "usuario inexistente",
            Some(firmar(
                &con(&|c| {
                    c.sub = "fantasma".into();
                    c.jti = jti_nuevo();
                }),
                Algorithm::HS256,
            )?),
        ),
        (
            "usuario inexistente con un jti emitido",
            Some(firmar(
                &con(&|c| c.sub = "fantasma".into()),
                Algorithm::HS256,
            )?),
        ),
        (
            "jti nunca emitido",
            Some(firmar(&con(&|c| c.jti = jti_nuevo()), Algorithm::HS256)?),
        ),
        (
            "rol elevado en las claims",
            Some(firmar(
                &con(&|c| {
                    c.rol = bitacora_server::auth::Rol::Supervisor;
                    c.cct = None;
                    c.zona = Some(ZONA_1.into());
                }),
                Algorithm::HS256,
            )?),
        ),
        (
            "escuela cambiada en las claims",
            Some(firmar(
                &con(&|c| c.cct = Some(CCT_B.into())),
                Algorithm::HS256,
            )?),
        ),
        ("revocado", Some(revocado)),
        ("sin token", None),
        ("basura", Some("esto-no-es-un-jwt".into())),
    ];

    let antes = m.auditoria_len().await?;
    let mut con_token = 0;
    for (caso, token) in &casos {
        for via in VIAS {
            let r = upgrade(&srv.url, token.as_deref(), via).await?;
            let Err(rechazo) = r else {
                bail!("{caso} by {via:?}: the WebSocket was opened");
            };
            ensure!(
                rechazo.status == 401
                    && rechazo.www_authenticate.as_deref() == Some("Bearer")
                    && rechazo.cuerpo.contains("no_autorizado"),
                "{caso} by {via:?}: {rechazo:?}"
            );
            let (st, cuerpo) = match (token, via) {
                (Some(t), via) => documentos(srv, t, via).await?,
                (None, _) => http_get(&srv.url, "/v1/documentos", None).await?,
            };
            ensure!(st == 401, "{caso} by {via:?}: listing gave {st} {cuerpo}");
            if token.is_some() {
                con_token += 2;
            }
        }
    }
    // Every refused token is audited (a missing token is not an attempt).
    let negadas = m
        .auditoria_desde(antes)
        .await?
        .into_iter()
        .filter(|f| f.3 == "autenticacion" && f.4 == "denegada")
        .count();
    ensure!(
        negadas == con_token,
        "{negadas} audited refusals for {con_token} attempts"
    );
    m.srv.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documentos_visibles_por_rol() -> Result<()> {
    let m = Mundo::nuevo().await?;
    for (rol, accs) in ESPERADO {
        let usuario = usuario_de_rol(rol);
        let esperado: BTreeSet<(String, String)> = DESTINOS
            .into_iter()
            .zip(accs)
            .filter_map(|(d, a)| match a {
                N => None,
                R => Some((m.id(d).to_string(), "lectura".to_string())),
                W => Some((m.id(d).to_string(), "escritura".to_string())),
            })
            .collect();
        for via in VIAS {
            let (st, cuerpo) = documentos(&m.srv, m.token(usuario), via).await?;
            ensure!(st == 200, "{rol} by {via:?}: {st} {cuerpo}");
            let lista: Vec<serde_json::Value> = serde_json::from_str(&cuerpo)?;
            let visto: BTreeSet<(String, String)> = lista
                .iter()
                .map(|v| {
                    (
                        v["id"].as_str().unwrap_or_default().to_string(),
                        v["acceso"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect();
            ensure!(
                lista.len() == visto.len() && visto == esperado,
                "{rol} by {via:?} lists {visto:?}, expected {esperado:?}"
            );
        }
    }
    m.srv.stop().await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 3. Actor binding.

/// Asserts a write was refused as not enrolled: `error`, nothing stored, audited.
async fn rechazo_de_actor(
    m: &Mundo,
    usuario: &str,
    d: Destino,
    caso: &str,
    cambios: &[Change],
    actor_falso: &ActorId,
) -> Result<()> {
    let id = m.id(d);
    let antes = m.auditoria_len().await?;
    let mut c = m.conectar(usuario).await?;
    let r = c.escribir(id, cambios).await?;
    let Escritura::Rechazada(msg) = r else {
        bail!("{caso}: expected `error`, got {r:?}");
    };
    ensure!(
        msg.contains("not enrolled") && msg.contains(&actor_falso.to_string()),
        "{caso}: {msg}"
    );
    for ch in cambios {
        ensure!(
            !m.almacenado(id, &ch.hash()).await?,
            "{caso}: change {} stored",
            ch.hash()
        );
    }
    let audit = m.auditoria_desde(antes).await?;
    ensure!(
        audit.iter().any(|f| f.1 == usuario
            && f.2 == id.to_string()
            && f.3 == "escritura"
            && f.4 == "rechazada"
            && f.5.contains(&actor_falso.to_hex_string())),
        "{caso}: refusal audited: {audit:?}"
    );
    ensure!(
        !audit
            .iter()
            .any(|f| f.3 == "escritura" && f.4 == "aceptada"),
        "{caso}: {audit:?}"
    );
    Ok(())
}

async fn aceptado(m: &Mundo, usuario: &str, d: Destino, caso: &str, ch: &Change) -> Result<()> {
    let id = m.id(d);
    let antes = m.auditoria_len().await?;
    let mut c = m.conectar(usuario).await?;
    let r = c.escribir(id, std::slice::from_ref(ch)).await?;
    ensure!(matches!(r, Escritura::Confirmada), "{caso}: {r:?}");
    ensure!(m.almacenado(id, &ch.hash()).await?, "{caso}: not stored");
    let audit = m.auditoria_desde(antes).await?;
    ensure!(
        audit.iter().any(|f| f.1 == usuario
            && f.2 == id.to_string()
            && f.3 == "escritura"
            && f.4 == "aceptada"),
        "{caso}: {audit:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actores_falsificados() -> Result<()> {
    let m = Mundo::nuevo().await?;
    let a = m.id(EscuelaA);

    // The genesis change itself, sent again by its genesis actor, is fine (every device
    // creates it offline).
    {
        let mut g = genesis(EscuelaA)?;
        let h = g.get_heads()[0];
        let gen_change = g.get_change_by_hash(&h).context("genesis change")?;
        let mut c = m.conectar("ana").await?;
        let r = c.escribir(a, &[gen_change]).await?;
        ensure!(matches!(r, Escritura::Confirmada), "genesis resent: {r:?}");
    }

    let nunca = ActorId::random();
    rechazo_de_actor(
        &m,
        "ana",
        EscuelaA,
        "(a) actor never enrolled",
        &[cambio(EscuelaA, &nunca, "a")?],
        &nunca,
    )
    .await?;
    rechazo_de_actor(
        &m,
        "ana",
        EscuelaA,
        "(b) actor of a teacher of school B",
        &[cambio(EscuelaA, &m.actor("beto"), "b")?],
        &m.actor("beto"),
    )
    .await?;
    let ga = genesis_actor(&a);
    rechazo_de_actor(
        &m,
        "ana",
        EscuelaA,
        "(c) genesis actor, a change after the genesis",
        &[cambio(EscuelaA, &ga, "c")?],
        &ga,
    )
    .await?;
    let falsa_genesis = {
        let mut d = AutoCommit::new().with_actor(ga.clone());
        d.put(ROOT, "tipo", "escuela")?;
        d.put(ROOT, "cct", CCT_A)?;
        d.commit();
        d.get_last_local_change().context("change")?
    };
    rechazo_de_actor(
        &m,
        "ana",
        EscuelaA,
        "(c') genesis actor, another first change",
        &[falsa_genesis],
        &ga,
    )
    .await?;
    rechazo_de_actor(
        &m,
        "ana",
        EscuelaA,
        "actor of the supervisor of another zone",
        &[cambio(EscuelaA, &m.actor("sara"), "sara")?],
        &m.actor("sara"),
    )
    .await?;
    rechazo_de_actor(
        &m,
        "ana",
        EscuelaA,
        "actor of the zone's ATP (read-only), relayed by a teacher",
        &[cambio(EscuelaA, &m.actor("tere"), "tere")?],
        &m.actor("tere"),
    )
    .await?;
    rechazo_de_actor(
        &m,
        "ana",
        EscuelaA,
        "an admin's actor",
        &[cambio(EscuelaA, &m.actor("root"), "root")?],
        &m.actor("root"),
    )
    .await?;
    // All or nothing: the teacher's own change travels with a forged one; neither is stored.
    rechazo_de_actor(
        &m,
        "ana",
        EscuelaA,
        "own change plus a forged one in one message",
        &[
            cambio(EscuelaA, &m.actor("ana"), "propio")?,
            cambio(EscuelaA, &m.actor("carla"), "ajeno")?,
        ],
        &m.actor("carla"),
    )
    .await?;
    // The zone document: a director may write it, but not relay a teacher's change into it.
    rechazo_de_actor(
        &m,
        "alma",
        Zona1,
        "a teacher's actor relayed into the zone document by her director",
        &[cambio(Zona1, &m.actor("ana"), "ana en zona")?],
        &m.actor("ana"),
    )
    .await?;

    // Nothing forged reached the document: only the genesis is stored.
    let doc = assemble(&m.srv.db.load(&a).await?).map_err(anyhow::Error::msg)?;
    ensure!(
        doc.get_changes(&[]).len() == 1,
        "school A holds only its genesis"
    );

    // The legitimate counterparts are accepted.
    aceptado(
        &m,
        "ana",
        EscuelaA,
        "own actor",
        &cambio(EscuelaA, &m.actor("ana"), "ana")?,
    )
    .await?;
    aceptado(
        &m,
        "alma",
        Zona1,
        "the supervisor's change relayed into the zone document by a director",
        &cambio(Zona1, &m.actor("sergio"), "sergio en zona")?,
    )
    .await?;
    m.srv.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relevo_del_supervisor_y_atp_de_solo_lectura() -> Result<()> {
    let m = Mundo::nuevo().await?;
    let a = m.id(EscuelaA);

    // The supervisor syncs school A (of his zone), edits it with his enrolled actor and sends
    // it back the way a client does: confirmed and stored.
    let mut c = m.conectar("sergio").await?;
    let Lectura::Documento(doc) = c.leer(a).await? else {
        bail!("the supervisor reads a school of his zone");
    };
    let mut doc = (*doc).with_actor(m.actor("sergio"));
    doc.put(ROOT, "visita_supervision", "2025-10-01")?;
    let h = doc.commit().context("a change")?;
    let r = c.sincronizar(a, &mut doc, h).await?;
    ensure!(matches!(r, Escritura::Confirmada), "supervisor: {r:?}");
    ensure!(m.almacenado(a, &h).await?, "supervisor's change stored");

    // USB relay: a change the supervisor made offline (after the one above: an actor's changes
    // are a sequence) reaches the server through a teacher of the school, and a teacher's
    // change through the supervisor.
    aceptado(
        &m,
        "ana",
        EscuelaA,
        "the supervisor's change relayed by a teacher",
        &cambio_sobre(&mut doc, &m.actor("sergio"), "usb sergio")?,
    )
    .await?;
    aceptado(
        &m,
        "sergio",
        EscuelaA,
        "a teacher's change relayed by the supervisor",
        &cambio(EscuelaA, &m.actor("ana"), "usb ana")?,
    )
    .await?;
    aceptado(
        &m,
        "sergio",
        EscuelaB,
        "the supervisor in another school of his zone",
        &cambio(EscuelaB, &m.actor("sergio"), "sergio en B")?,
    )
    .await?;

    // The ATP reads the school and edits a copy. The server flagged itself read-only for her
    // (automerge's READ_ONLY), so a client following the protocol does not even send it.
    let antes = m.auditoria_len().await?;
    let mut c = m.conectar("tere").await?;
    let Lectura::Documento(doc) = c.leer(a).await? else {
        bail!("the ATP reads a school of her zone");
    };
    ensure!(c.par_de_solo_lectura(a), "the server says it is read-only");
    let mut doc = (*doc).with_actor(m.actor("tere"));
    doc.put(ROOT, "nota_atp", "sugerencia")?;
    let h = doc.commit().context("a change")?;
    let hola = c
        .session
        .generate(a, &doc.sync())
        .context("new heads give a sync message")?;
    let Message::Sync { data, .. } = &hola else {
        bail!("{hola:?}");
    };
    ensure!(
        Session::decode_sync(data)?.changes.is_empty(),
        "automerge sends no changes to a read-only peer"
    );
    c.enviar(&hola).await?;
    // The server answers a connection's frames in order: once another document is read, it has
    // handled the heads-only message (no `error`: it carried no change).
    let Lectura::Documento(_) = c.leer(m.id(Zona1)).await? else {
        bail!("the ATP reads her zone's document");
    };
    ensure!(
        !m.almacenado(a, &h).await?,
        "the ATP's change is not stored"
    );
    // Sent anyway, on the same connection: refused as read-only, and the connection closed.
    let ch = doc.get_change_by_hash(&h).context("the ATP's change")?;
    let r = c.escribir(a, &[ch]).await?;
    let Escritura::Rechazada(msg) = r else {
        bail!("ATP change sent anyway: {r:?}");
    };
    ensure!(msg.contains("read-only"), "{msg}");
    ensure!(
        !m.almacenado(a, &h).await?,
        "the ATP's change is not stored"
    );
    let audit = m.auditoria_desde(antes).await?;
    ensure!(
        audit.iter().any(|f| f.1 == "tere"
            && f.2 == a.to_string()
            && f.3 == "escritura"
            && f.4 == "rechazada"),
        "{audit:?}"
    );
    // Even a change by an actor that may write, relayed by the ATP, is refused: her access is
    // read-only.
    let mut c = m.conectar("tere").await?;
    let ch = cambio(EscuelaA, &m.actor("ana"), "relevo atp")?;
    let r = c.escribir(a, std::slice::from_ref(&ch)).await?;
    ensure!(matches!(r, Escritura::Rechazada(_)), "ATP relay: {r:?}");
    ensure!(!m.almacenado(a, &ch.hash()).await?);
    m.srv.stop().await?;
    Ok(())
}

/// A sync message whose heads are not in the order the wire format wants (automerge's encoder
/// asserts it, its decoder does not): the changes are confirmed like any others and the
/// connection stays usable. Before the hub sorted incoming hash lists, the server copied the
/// peer's order into its sync state and its reply panicked the connection (debug builds).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cabezas_desordenadas() -> Result<()> {
    let m = Mundo::nuevo().await?;
    let a = m.id(EscuelaA);
    let c1 = cambio(EscuelaA, &m.actor("ana"), "ana")?;
    let c2 = cambio(EscuelaA, &m.actor("alma"), "alma")?;
    let mut heads = vec![c1.hash(), c2.hash()];
    heads.sort();
    let mut data = sync::Message {
        heads,
        need: Vec::new(),
        have: Vec::new(),
        changes: ChunkList::from(vec![c1.raw_bytes().to_vec(), c2.raw_bytes().to_vec()]),
        flags: None,
        version: MessageVersion::V1,
    }
    .encode();
    // V1: message type 0x42, the number of heads (2), then the two 32-byte hashes: swap them.
    ensure!(data[..2] == [0x42, 2], "V1 layout: {:02x?}", &data[..2]);
    let primero = data[2..34].to_vec();
    data.copy_within(34..66, 2);
    data[34..66].copy_from_slice(&primero);
    let desordenado = Session::decode_sync(&data)?;
    ensure!(
        desordenado.heads[0] > desordenado.heads[1],
        "heads out of order"
    );

    let mut c = m.conectar("ana").await?;
    let msg = Message::Sync {
        sender_id: c.session.our_id().clone(),
        target_id: c.servidor(),
        document_id: a,
        data,
    };
    c.enviar(&msg).await?;
    let r = c.veredicto(a, c1.hash()).await?;
    ensure!(matches!(r, Escritura::Confirmada), "{r:?}");
    for ch in [&c1, &c2] {
        ensure!(m.almacenado(a, &ch.hash()).await?, "{} stored", ch.hash());
    }
    // The same connection still serves.
    let Lectura::Documento(_) = c.leer(m.id(Zona1)).await? else {
        bail!("the connection no longer serves");
    };
    m.srv.stop().await?;
    Ok(())
}
