//! The sync engine: the only code in client-core that does network I/O. It drives the protocol
//! [`Session`] over a WebSocket (tokio-tungstenite) against a zone server, for documents kept in
//! the local [`Store`].
//!
//! One-shot sync ([`sync_once`]): connect with the bearer token, handshake, then for each
//! document restore the persisted sync state, exchange sync messages until both sides report the
//! same heads, and persist what arrived (durably, before answering) and the new sync state. A
//! change is *confirmed* when the server's heads include it: the server only advertises heads it
//! has committed.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use automerge::AutoCommit;
use futures_util::{SinkExt, StreamExt};
use thiserror::Error;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::ids::DocumentId;
use crate::protocol::{Inbound, Message, PeerId, PeerMetadata, ProtocolError, Role, Session};
use crate::store::{Store, StoreError};

#[derive(Debug, Error)]
pub enum EngineError {
    #[error("no se pudo conectar con el servidor {url}: {detalle}")]
    Conexion { url: String, detalle: String },
    #[error("el servidor rechazó el token (vuelva a ejecutar `bitacora login`)")]
    NoAutorizado,
    #[error("el servidor no tiene o no comparte el documento {0}")]
    NoDisponible(DocumentId),
    #[error("el servidor respondió con un error: {0}")]
    Servidor(String),
    #[error("error de protocolo: {0}")]
    Protocolo(#[from] ProtocolError),
    #[error("la conexión se cerró antes de terminar")]
    Cerrada,
    #[error("la sincronización no terminó en {0:?}")]
    TiempoAgotado(Duration),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("documento {0} no está en el almacén local")]
    Desconocido(DocumentId),
}

/// What a sync did, for the summary shown to the teacher.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Informe {
    pub documentos: usize,
    pub cambios_enviados: usize,
    pub cambios_recibidos: usize,
    pub bytes_enviados: u64,
    pub bytes_recibidos: u64,
    /// Sync messages sent (each one waits for an answer: a round trip).
    pub mensajes: u64,
    pub duracion_ms: u64,
}

/// A document the server lets this user sync (`GET /v1/documentos`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct DocRemoto {
    pub id: String,
    pub tipo: String,
    pub owner: String,
    pub ciclo: String,
    pub acceso: String,
}

/// The HTTP base URL of a server given as `http(s)://…` or `ws(s)://…[/sync]`.
pub fn http_url(servidor: &str) -> String {
    let s = servidor.trim().trim_end_matches('/');
    let s = s.strip_suffix("/sync").unwrap_or(s);
    if let Some(r) = s.strip_prefix("ws://") {
        format!("http://{r}")
    } else if let Some(r) = s.strip_prefix("wss://") {
        format!("https://{r}")
    } else {
        s.to_string()
    }
}

fn http_error(url: &str, e: reqwest::Error) -> EngineError {
    EngineError::Conexion {
        url: url.to_string(),
        detalle: e.without_url().to_string(),
    }
}

async fn check(url: &str, r: reqwest::Response) -> Result<reqwest::Response, EngineError> {
    match r.status().as_u16() {
        200..=299 => Ok(r),
        401 => Err(EngineError::NoAutorizado),
        409 => Err(EngineError::Servidor(
            "este equipo ya está registrado a otro usuario".into(),
        )),
        s => Err(EngineError::Servidor(format!("{url} respondió {s}"))),
    }
}

fn client(limite: Duration) -> Result<reqwest::Client, EngineError> {
    reqwest::Client::builder()
        .timeout(limite)
        .build()
        .map_err(|e| EngineError::Conexion {
            url: String::new(),
            detalle: e.to_string(),
        })
}

/// The documents this token may sync.
pub async fn documentos(
    servidor: &str,
    token: &str,
    limite: Duration,
) -> Result<Vec<DocRemoto>, EngineError> {
    let url = format!("{}/v1/documentos", http_url(servidor));
    let r = client(limite)?
        .get(&url)
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| http_error(&url, e))?;
    check(&url, r)
        .await?
        .json()
        .await
        .map_err(|e| http_error(&url, e))
}

/// Enrols this device's actor id to the token's user, so the server accepts its changes.
pub async fn enrolar(
    servidor: &str,
    token: &str,
    actor: &automerge::ActorId,
    limite: Duration,
) -> Result<(), EngineError> {
    let url = format!("{}/v1/actores", http_url(servidor));
    let r = client(limite)?
        .post(&url)
        .bearer_auth(token)
        .json(&serde_json::json!({ "actor": actor.to_hex_string() }))
        .send()
        .await
        .map_err(|e| http_error(&url, e))?;
    check(&url, r).await.map(|_| ())
}

/// Whether the server answers `GET /healthz`.
pub async fn alcanzable(servidor: &str, limite: Duration) -> bool {
    let url = format!("{}/healthz", http_url(servidor));
    match client(limite) {
        Ok(c) => c
            .get(&url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success()),
        Err(_) => false,
    }
}

/// `http(s)://host[:port][/]` or `ws(s)://…` to the sync endpoint URL.
pub fn sync_url(servidor: &str) -> String {
    let s = servidor.trim().trim_end_matches('/');
    let s = if let Some(r) = s.strip_prefix("http://") {
        format!("ws://{r}")
    } else if let Some(r) = s.strip_prefix("https://") {
        format!("wss://{r}")
    } else {
        s.to_string()
    };
    if s.ends_with("/sync") {
        s
    } else {
        format!("{s}/sync")
    }
}

struct Doc {
    doc: AutoCommit,
    done: bool,
}

/// Syncs `docs` with the server once, until every one holds the same heads on both sides.
pub async fn sync_once(
    store: &Store,
    servidor: &str,
    token: &str,
    docs: &[DocumentId],
    limite: Duration,
) -> Result<Informe, EngineError> {
    let started = Instant::now();
    let url = sync_url(servidor);
    let mut req = url
        .as_str()
        .into_client_request()
        .map_err(|e| EngineError::Conexion {
            url: url.clone(),
            detalle: e.to_string(),
        })?;
    req.headers_mut().insert(
        "Authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| EngineError::NoAutorizado)?,
    );
    let (ws, _) = match tokio::time::timeout(limite, tokio_tungstenite::connect_async(req)).await {
        Err(_) => return Err(EngineError::TiempoAgotado(limite)),
        Ok(Err(tokio_tungstenite::tungstenite::Error::Http(r))) if r.status().as_u16() == 401 => {
            return Err(EngineError::NoAutorizado);
        }
        Ok(Err(e)) => {
            return Err(EngineError::Conexion {
                url,
                detalle: e.to_string(),
            });
        }
        Ok(Ok(ok)) => ok,
    };
    let (mut tx, mut rx) = ws.split();
    let actor = store.actor().await?;
    let storage_id = store.storage_id().await?;
    let mut session = Session::new(
        Role::Initiator,
        PeerId(format!(
            "bitacora-{}-{}",
            actor.to_hex_string(),
            rand::random::<u32>()
        )),
        PeerMetadata {
            storage_id: Some(storage_id),
            is_ephemeral: false,
        },
    );
    let mut informe = Informe {
        documentos: docs.len(),
        ..Default::default()
    };
    let mut loaded: HashMap<DocumentId, Doc> = HashMap::new();
    for id in docs {
        let doc = store
            .load(id)
            .await?
            .ok_or(EngineError::Desconocido(*id))?
            .with_actor(actor.clone());
        loaded.insert(*id, Doc { doc, done: false });
    }

    macro_rules! send {
        ($m:expr) => {{
            let bytes = $m.encode();
            informe.bytes_enviados += bytes.len() as u64;
            tx.send(WsMessage::Binary(bytes.into()))
                .await
                .map_err(|_| EngineError::Cerrada)?;
        }};
    }

    send!(session.join());
    let deadline = tokio::time::Instant::now() + limite;
    let mut server_storage: Option<String> = None;
    let mut sent_hashes: HashSet<automerge::ChangeHash> = HashSet::new();
    loop {
        let frame = match tokio::time::timeout_at(deadline, rx.next()).await {
            Err(_) => return Err(EngineError::TiempoAgotado(limite)),
            Ok(None) | Ok(Some(Err(_))) => return Err(EngineError::Cerrada),
            Ok(Some(Ok(f))) => f,
        };
        let data = match frame {
            WsMessage::Binary(b) => b,
            WsMessage::Close(_) => return Err(EngineError::Cerrada),
            _ => continue,
        };
        informe.bytes_recibidos += data.len() as u64;
        match session.receive_frame(&data)? {
            Inbound::Ready => {
                server_storage = session.peer_storage_id().map(str::to_string);
                for (id, d) in loaded.iter_mut() {
                    if let Some(peer) = &server_storage
                        && let Some(state) = store.load_sync_state(peer, id).await?
                    {
                        session.restore_state(*id, &state);
                    }
                    let generated = session.generate(*id, &d.doc.sync());
                    let m = match generated {
                        Some(m) => m,
                        // Nothing to say (restored state thinks we are in sync): ask anyway.
                        None => session.request(*id, &d.doc.sync()),
                    };
                    count_sent(&m, &mut sent_hashes);
                    informe.mensajes += 1;
                    send!(m);
                }
            }
            Inbound::Sync {
                document_id, data, ..
            } => {
                let Some(d) = loaded.get_mut(&document_id) else {
                    continue;
                };
                let msg = Session::decode_sync(&data)?;
                let before = d.doc.get_heads();
                session.apply(document_id, &mut d.doc.sync(), msg)?;
                let after = d.doc.get_heads();
                if after != before {
                    informe.cambios_recibidos += d.doc.get_changes(&before).len();
                    // Durable before we answer.
                    store
                        .append(&document_id, &d.doc.save_after(&before))
                        .await?;
                }
                if let Some(m) = session.generate(document_id, &d.doc.sync()) {
                    count_sent(&m, &mut sent_hashes);
                    informe.mensajes += 1;
                    send!(m);
                }
                d.done = session.in_sync(&document_id, &d.doc.get_heads());
                if loaded.values().all(|d| d.done) {
                    break;
                }
            }
            Inbound::Unavailable { document_id } => {
                return Err(EngineError::NoDisponible(document_id));
            }
            Inbound::PeerError(m) => return Err(EngineError::Servidor(m)),
            Inbound::Leave => return Err(EngineError::Cerrada),
            Inbound::Reply(_) | Inbound::Ephemeral { .. } | Inbound::Ignore => {}
        }
    }
    if let Some(peer) = &server_storage {
        for id in loaded.keys() {
            if let Some(state) = session.encode_state(id) {
                store.save_sync_state(peer, id, &state).await?;
            }
        }
    }
    let _ = tx.send(WsMessage::Close(None)).await;
    informe.cambios_enviados = sent_hashes.len();
    informe.duracion_ms = started.elapsed().as_millis() as u64;
    Ok(informe)
}

/// Counts the distinct changes carried by an outgoing sync message.
fn count_sent(m: &Message, sent: &mut HashSet<automerge::ChangeHash>) {
    if let Message::Sync { data, .. } | Message::Request { data, .. } = m
        && let Ok(msg) = Session::decode_sync(data)
    {
        let joined: Vec<u8> = msg.changes.iter().flatten().copied().collect();
        if let Ok(a) = crate::protocol::changes::autorias(&joined) {
            sent.extend(a.into_iter().map(|x| x.hash));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::sync_url;

    #[test]
    fn urls() {
        assert_eq!(
            sync_url("http://127.0.0.1:8787"),
            "ws://127.0.0.1:8787/sync"
        );
        assert_eq!(
            sync_url("https://zona14.example.mx/"),
            "wss://zona14.example.mx/sync"
        );
        assert_eq!(sync_url("ws://h/sync"), "ws://h/sync");
        assert_eq!(super::http_url("ws://h:1/sync"), "http://h:1");
        assert_eq!(super::http_url("https://z.mx/"), "https://z.mx");
    }
}
