//! The sync engine: the only code in client-core that does network I/O. It drives the protocol
//! [`Session`] over a WebSocket (tokio-tungstenite) against a zone server, for documents kept in
//! the replica's storage (any [`Storage`]: the laptop's store, or another replica's).
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
use crate::storage::Storage;

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
    #[error("el servidor dejó de responder durante {0:?}; la conexión se dio por perdida")]
    SinRespuesta(Duration),
    /// The replica's storage failed (its message, already in Spanish for the laptop's store).
    #[error("{0}")]
    Almacen(String),
    #[error("documento {0} no está en el almacén local")]
    Desconocido(DocumentId),
}

/// A storage error as the engine reports it.
fn almacen(e: impl std::error::Error) -> EngineError {
    EngineError::Almacen(e.to_string())
}

/// Compact a document once it has this many chunks (as the laptop's store does).
const COMPACTAR_TRAS: u64 = crate::storage::COMPACT_AFTER_CHUNKS;

/// A document as the replica's storage holds it, ready to sync, or `None` if it holds none.
async fn cargar<S: Storage>(store: &S, id: &DocumentId) -> Result<Option<AutoCommit>, EngineError> {
    let Some(stored) = store.load(id).await.map_err(almacen)? else {
        return Ok(None);
    };
    let mut doc = match &stored.snapshot {
        Some(s) => AutoCommit::load(s).map_err(|e| {
            EngineError::Almacen(format!(
                "el documento {id} guardado no se puede cargar: {e}"
            ))
        })?,
        None => AutoCommit::new(),
    };
    for c in &stored.chunks {
        doc.load_incremental(c).map_err(|e| {
            EngineError::Almacen(format!(
                "el documento {id} guardado no se puede cargar: {e}"
            ))
        })?;
    }
    Ok(Some(doc))
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
    /// Per document, the heads the server holds at the end: what it confirmed. These are the
    /// local heads, except for a document the server holds read-only for this user while this
    /// device has changes to it (the server never takes them).
    #[serde(skip)]
    pub confirmados: HashMap<DocumentId, Vec<automerge::ChangeHash>>,
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

/// An authenticated `GET` of `path` on the server, checked for success.
async fn get(
    servidor: &str,
    token: &str,
    path: &str,
    limite: Duration,
) -> Result<(String, reqwest::Response), EngineError> {
    let url = format!("{}{path}", http_url(servidor));
    let r = client(limite)?
        .get(&url)
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| http_error(&url, e))?;
    let r = check(&url, r).await?;
    Ok((url, r))
}

/// The documents this token may sync.
pub async fn documentos(
    servidor: &str,
    token: &str,
    limite: Duration,
) -> Result<Vec<DocRemoto>, EngineError> {
    let (url, r) = get(servidor, token, "/v1/documentos", limite).await?;
    r.json().await.map_err(|e| http_error(&url, e))
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

/// Uploads a bundle (`POST /v1/paquetes`); returns the server's JSON report.
pub async fn subir_paquete(
    servidor: &str,
    token: &str,
    bytes: Vec<u8>,
    limite: Duration,
) -> Result<serde_json::Value, EngineError> {
    let url = format!("{}/v1/paquetes", http_url(servidor));
    let r = client(limite)?
        .post(&url)
        .bearer_auth(token)
        .header("content-type", "application/octet-stream")
        .body(bytes)
        .send()
        .await
        .map_err(|e| http_error(&url, e))?;
    if r.status().as_u16() == 400 {
        let m: serde_json::Value = r.json().await.unwrap_or_default();
        return Err(EngineError::Servidor(
            m["mensaje"]
                .as_str()
                .unwrap_or("paquete rechazado")
                .to_string(),
        ));
    }
    check(&url, r)
        .await?
        .json()
        .await
        .map_err(|e| http_error(&url, e))
}

/// Downloads a school's return bundle (`GET /v1/paquetes/{cct}`).
pub async fn bajar_paquete(
    servidor: &str,
    token: &str,
    cct: &str,
    limite: Duration,
) -> Result<Vec<u8>, EngineError> {
    let (url, r) = get(servidor, token, &format!("/v1/paquetes/{cct}"), limite).await?;
    Ok(r.bytes().await.map_err(|e| http_error(&url, e))?.to_vec())
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
    /// The store's version of the document when last loaded (to notice other processes' writes).
    version: (i64, i64),
}

type WsStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One live connection to the server, with the documents it syncs.
struct Enlace {
    tx: futures_util::stream::SplitSink<WsStream, WsMessage>,
    rx: futures_util::stream::SplitStream<WsStream>,
    session: Session,
    docs: HashMap<DocumentId, Doc>,
    server_storage: Option<String>,
    sent: HashSet<automerge::ChangeHash>,
    informe: Informe,
}

impl Enlace {
    /// Connects, handshakes, restores persisted sync state and opens sync for every document.
    async fn conectar<S: Storage>(
        store: &S,
        servidor: &str,
        token: &str,
        ids: &[DocumentId],
        limite: Duration,
    ) -> Result<Enlace, EngineError> {
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
            HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| EngineError::NoAutorizado)?,
        );
        let (ws, _) =
            match tokio::time::timeout(limite, tokio_tungstenite::connect_async(req)).await {
                Err(_) => return Err(EngineError::TiempoAgotado(limite)),
                Ok(Err(tokio_tungstenite::tungstenite::Error::Http(r)))
                    if r.status().as_u16() == 401 =>
                {
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
        let (tx, rx) = ws.split();
        let actor = store.actor().await.map_err(almacen)?;
        let session = Session::new(
            Role::Initiator,
            PeerId(format!(
                "bitacora-{}-{}",
                actor.to_hex_string(),
                rand::random::<u32>()
            )),
            PeerMetadata {
                storage_id: Some(store.storage_id().await.map_err(almacen)?),
                is_ephemeral: false,
            },
        );
        let mut docs = HashMap::new();
        for id in ids {
            let version = store.version(id).await.map_err(almacen)?;
            let doc = cargar(store, id)
                .await?
                .ok_or(EngineError::Desconocido(*id))?
                .with_actor(actor.clone());
            docs.insert(
                *id,
                Doc {
                    doc,
                    done: false,
                    version,
                },
            );
        }
        let mut e = Enlace {
            tx,
            rx,
            session,
            docs,
            server_storage: None,
            sent: HashSet::new(),
            informe: Informe {
                documentos: ids.len(),
                ..Default::default()
            },
        };
        let join = e.session.join();
        e.send(join).await?;
        let deadline = tokio::time::Instant::now() + limite;
        loop {
            let Some(frame) = e.next_frame(deadline, limite).await? else {
                continue;
            };
            match e.session.receive_frame(&frame)? {
                Inbound::Ready => break,
                Inbound::PeerError(m) => return Err(EngineError::Servidor(m)),
                _ => {}
            }
        }
        e.server_storage = e.session.peer_storage_id().map(str::to_string);
        for id in ids {
            if let Some(peer) = &e.server_storage
                && let Some(state) = store.load_sync_state(peer, id).await.map_err(almacen)?
            {
                e.session.restore_state(*id, &state);
            }
            let d = e.docs.get_mut(id).expect("loaded above");
            let generated = e.session.generate(*id, &d.doc.sync());
            // Nothing to say (the restored state thinks we are in sync): ask anyway.
            let m = generated.unwrap_or_else(|| e.session.request(*id, &d.doc.sync()));
            e.send(m).await?;
        }
        Ok(e)
    }

    async fn send(&mut self, m: Message) -> Result<(), EngineError> {
        count_sent(&m, &mut self.sent);
        if matches!(m, Message::Sync { .. } | Message::Request { .. }) {
            self.informe.mensajes += 1;
        }
        let bytes = m.encode();
        self.informe.bytes_enviados += bytes.len() as u64;
        self.tx
            .send(WsMessage::Binary(bytes.into()))
            .await
            .map_err(|_| EngineError::Cerrada)
    }

    /// The next binary frame (None for control frames), or an error at the deadline or on close.
    async fn next_frame(
        &mut self,
        deadline: tokio::time::Instant,
        limite: Duration,
    ) -> Result<Option<Vec<u8>>, EngineError> {
        // The server pings every 20 s by default: a longer silence is a dead (e.g. half-open)
        // connection, not a slow one.
        let silencio = tokio::time::Instant::now() + SILENCIO_MAXIMO;
        match tokio::time::timeout_at(deadline.min(silencio), self.rx.next()).await {
            Err(_) if silencio < deadline => Err(EngineError::SinRespuesta(SILENCIO_MAXIMO)),
            Err(_) => Err(EngineError::TiempoAgotado(limite)),
            Ok(None) | Ok(Some(Err(_))) => Err(EngineError::Cerrada),
            Ok(Some(Ok(WsMessage::Binary(b)))) => {
                self.informe.bytes_recibidos += b.len() as u64;
                Ok(Some(b.to_vec()))
            }
            Ok(Some(Ok(WsMessage::Close(_)))) => Err(EngineError::Cerrada),
            Ok(Some(Ok(_))) => Ok(None),
        }
    }

    /// Handles one frame; returns the number of changes received (already durable).
    async fn manejar<S: Storage>(&mut self, store: &S, frame: &[u8]) -> Result<usize, EngineError> {
        match self.session.receive_frame(frame)? {
            Inbound::Sync {
                document_id, data, ..
            } => {
                let Some(d) = self.docs.get_mut(&document_id) else {
                    return Ok(0);
                };
                let msg = Session::decode_sync(&data)?;
                let before = d.doc.get_heads();
                self.session.apply(document_id, &mut d.doc.sync(), msg)?;
                let after = d.doc.get_heads();
                // A server that holds the document read-only for us takes none of our changes:
                // the two sides never hold the same heads if we have changes it lacks. We are
                // done once we hold everything it has.
                let todo_lo_suyo = self.session.peer_read_only(&document_id)
                    && self
                        .session
                        .their_heads(&document_id)
                        .is_some_and(|t| t.iter().all(|h| d.doc.get_change_by_hash(h).is_some()));
                let mut nuevos = 0;
                if after != before {
                    nuevos = d.doc.get_changes(&before).len();
                    // Durable before we answer.
                    let n = store
                        .append(&document_id, &d.doc.save_after(&before))
                        .await
                        .map_err(almacen)?;
                    if n >= COMPACTAR_TRAS {
                        store.compact(&document_id).await.map_err(almacen)?;
                    }
                    d.version = store.version(&document_id).await.map_err(almacen)?;
                }
                self.informe.cambios_recibidos += nuevos;
                let reply = self.session.generate(document_id, &d.doc.sync());
                let heads = d.doc.get_heads();
                if let Some(m) = reply {
                    self.send(m).await?;
                }
                let done = todo_lo_suyo || self.session.in_sync(&document_id, &heads);
                if let Some(d) = self.docs.get_mut(&document_id) {
                    d.done = done;
                }
                Ok(nuevos)
            }
            Inbound::Unavailable { document_id } => Err(EngineError::NoDisponible(document_id)),
            Inbound::PeerError(m) => Err(EngineError::Servidor(m)),
            Inbound::Leave => Err(EngineError::Cerrada),
            Inbound::Ready | Inbound::Reply(_) | Inbound::Ephemeral { .. } | Inbound::Ignore => {
                Ok(0)
            }
        }
    }

    /// Picks up changes other processes wrote to the local store and offers them to the server.
    async fn cambios_locales<S: Storage>(&mut self, store: &S) -> Result<(), EngineError> {
        let ids: Vec<DocumentId> = self.docs.keys().copied().collect();
        for id in ids {
            let version = store.version(&id).await.map_err(almacen)?;
            let d = self.docs.get_mut(&id).expect("known");
            if version == d.version {
                continue;
            }
            d.version = version;
            if let Some(mut fresh) = cargar(store, &id).await? {
                d.doc
                    .merge(&mut fresh)
                    .map_err(|e| EngineError::Protocolo(ProtocolError::Apply(e.to_string())))?;
            }
            let m = self.session.generate(id, &d.doc.sync());
            if let Some(m) = m {
                self.send(m).await?;
            }
        }
        Ok(())
    }

    fn todos_sincronizados(&self) -> bool {
        self.docs.values().all(|d| d.done)
    }

    async fn guardar_estados<S: Storage>(&self, store: &S) -> Result<(), EngineError> {
        if let Some(peer) = &self.server_storage {
            for id in self.docs.keys() {
                if let Some(state) = self.session.encode_state(id) {
                    store
                        .save_sync_state(peer, id, &state)
                        .await
                        .map_err(almacen)?;
                }
            }
        }
        Ok(())
    }

    async fn cerrar<S: Storage>(mut self, store: &S) -> Result<Informe, EngineError> {
        self.guardar_estados(store).await?;
        let _ = self.tx.send(WsMessage::Close(None)).await;
        self.informe.cambios_enviados = self.sent.len();
        for id in self.docs.keys() {
            if let Some(h) = self.session.their_heads(id) {
                self.informe.confirmados.insert(*id, h);
            }
        }
        Ok(self.informe)
    }
}

/// Syncs `docs` with the server once, until every one holds the same heads on both sides.
pub async fn sync_once<S: Storage>(
    store: &S,
    servidor: &str,
    token: &str,
    docs: &[DocumentId],
    limite: Duration,
) -> Result<Informe, EngineError> {
    sync_once_con_progreso(store, servidor, token, docs, limite, |_| {}).await
}

/// Progress of a one-shot sync, after each message received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progreso {
    pub documentos: usize,
    pub sincronizados: usize,
    pub mensajes: u64,
    pub bytes: u64,
}

/// [`sync_once`], calling `progreso` after each message received (for a progress bar).
pub async fn sync_once_con_progreso<S: Storage>(
    store: &S,
    servidor: &str,
    token: &str,
    docs: &[DocumentId],
    limite: Duration,
    mut progreso: impl FnMut(Progreso),
) -> Result<Informe, EngineError> {
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + limite;
    let mut e = Enlace::conectar(store, servidor, token, docs, limite).await?;
    while !e.todos_sincronizados() {
        let Some(frame) = e.next_frame(deadline, limite).await? else {
            continue;
        };
        e.manejar(store, &frame).await?;
        progreso(Progreso {
            documentos: e.docs.len(),
            sincronizados: e.docs.values().filter(|d| d.done).count(),
            mensajes: e.informe.mensajes,
            bytes: e.informe.bytes_enviados + e.informe.bytes_recibidos,
        });
    }
    let mut informe = e.cerrar(store).await?;
    informe.duracion_ms = started.elapsed().as_millis() as u64;
    Ok(informe)
}

/// What happened during live sync, for the user's screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evento {
    Conectado,
    /// Changes received from the server, already saved locally.
    Recibidos(usize),
    /// Local changes (from this or another process) were offered to the server.
    Sincronizado,
    /// The connection failed; retrying after the delay.
    Reintento {
        error: String,
        espera: Duration,
    },
}

/// A connection silent for this long (no frame, not even a ping) is given up as dead.
pub const SILENCIO_MAXIMO: Duration = Duration::from_secs(60);

/// How often live sync looks for changes other processes wrote to the local store.
pub const SONDEO_LOCAL: Duration = Duration::from_millis(250);

/// Live sync: stays connected, applying the server's changes as they come and offering local
/// changes (written by any `bitacora` process) within [`SONDEO_LOCAL`]; reconnects with
/// exponential backoff and jitter (1 s doubling to 60 s) and resumes from the persisted sync
/// state. Returns when `stop` resolves, with the heads the server holds per document (empty if
/// it was not connected at that moment), or on an error that retrying cannot fix (the token was
/// refused, a document is unavailable).
pub async fn sync_live<S: Storage>(
    store: &S,
    servidor: &str,
    token: &str,
    docs: &[DocumentId],
    stop: impl std::future::Future<Output = ()>,
    mut on_event: impl FnMut(Evento),
) -> Result<Informe, EngineError> {
    tokio::pin!(stop);
    let limite = Duration::from_secs(30);
    let mut espera = Duration::from_secs(1);
    loop {
        let r: Result<Informe, EngineError> = async {
            let mut e = tokio::select! {
                e = Enlace::conectar(store, servidor, token, docs, limite) => e?,
                _ = &mut stop => return Ok(Informe::default()),
            };
            on_event(Evento::Conectado);
            espera = Duration::from_secs(1);
            let mut sondeo = tokio::time::interval(SONDEO_LOCAL);
            let mut ping = tokio::time::interval(Duration::from_secs(20));
            let mut era_sincronizado = false;
            let mut ultima_senal = Instant::now();
            loop {
                tokio::select! {
                    frame = e.rx.next() => {
                        ultima_senal = Instant::now();
                        let data = match frame {
                            None | Some(Err(_)) | Some(Ok(WsMessage::Close(_))) => return Err(EngineError::Cerrada),
                            Some(Ok(WsMessage::Binary(b))) => b,
                            Some(Ok(WsMessage::Ping(p))) => {
                                let _ = e.tx.send(WsMessage::Pong(p)).await;
                                continue;
                            }
                            Some(Ok(_)) => continue,
                        };
                        e.informe.bytes_recibidos += data.len() as u64;
                        let n = e.manejar(store, &data).await?;
                        if n > 0 {
                            on_event(Evento::Recibidos(n));
                        }
                        let ahora = e.todos_sincronizados();
                        if ahora && !era_sincronizado {
                            on_event(Evento::Sincronizado);
                        }
                        era_sincronizado = ahora;
                    }
                    _ = sondeo.tick() => e.cambios_locales(store).await?,
                    _ = ping.tick() => {
                        // Our pings are answered with pongs: silence means a dead link.
                        if ultima_senal.elapsed() > SILENCIO_MAXIMO {
                            return Err(EngineError::SinRespuesta(SILENCIO_MAXIMO));
                        }
                        e.tx.send(WsMessage::Ping(Vec::new().into())).await.map_err(|_| EngineError::Cerrada)?;
                        e.guardar_estados(store).await?;
                    }
                    _ = &mut stop => {
                        // What the server holds at this moment is what is confirmed.
                        return e.cerrar(store).await;
                    }
                }
            }
        }
        .await;
        match r {
            Ok(informe) => return Ok(informe),
            Err(
                err @ (EngineError::NoAutorizado
                | EngineError::NoDisponible(_)
                | EngineError::Almacen(_)
                | EngineError::Desconocido(_)),
            ) => {
                return Err(err);
            }
            Err(err) => {
                let jitter = Duration::from_millis(
                    rand::random::<u64>() % (espera.as_millis() as u64 / 2 + 1),
                );
                let pausa = espera + jitter;
                on_event(Evento::Reintento {
                    error: err.to_string(),
                    espera: pausa,
                });
                tokio::select! {
                    _ = tokio::time::sleep(pausa) => {}
                    _ = &mut stop => return Ok(Informe::default()),
                }
                espera = (espera * 2).min(Duration::from_secs(60));
            }
        }
    }
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
