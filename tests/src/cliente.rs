//! A raw automerge-repo protocol client for tests that must send what a well-behaved client
//! never would (`authz_matrix`, `hostile_inputs`): the WebSocket upgrade by header or `?token=`
//! with the refusal kept when there is one, the handshake, reading a document to the end,
//! sending changes as they are, and a bare HTTP GET. Every wait is bounded by [`PLAZO`].

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail, ensure};
use automerge::sync::{self, ChunkList, MessageVersion};
use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, Change, ChangeHash, ROOT};
use bitacora_core::engine::sync_url;
use bitacora_core::ids::DocumentId;
use bitacora_core::protocol::{Inbound, Message, PeerId, PeerMetadata, Role, Session};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message as WsMessage};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A new change on top of `base`, authored by `actor`.
pub fn cambio_sobre(base: &mut AutoCommit, actor: &ActorId, etiqueta: &str) -> Result<Change> {
    let mut doc = base.fork().with_actor(actor.clone());
    doc.put(ROOT, "prueba_authz", etiqueta)?;
    doc.commit();
    doc.get_last_local_change().context("a local change")
}

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Every wait for the server is bounded by this.
pub const PLAZO: Duration = Duration::from_secs(20);

/// Where the bearer token goes on the upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Cabecera,
    Query,
}
pub const VIAS: [Via; 2] = [Via::Cabecera, Via::Query];

/// An upgrade the server did not accept.
#[derive(Debug)]
pub struct Rechazo {
    pub status: u16,
    pub www_authenticate: Option<String>,
    pub cuerpo: String,
}

/// Tries the WebSocket upgrade of `/sync`.
pub async fn upgrade(url: &str, token: Option<&str>, via: Via) -> Result<Result<Ws, Rechazo>> {
    let mut ws_url = sync_url(url);
    if let (Some(t), Via::Query) = (token, via) {
        ws_url = format!("{ws_url}?token={t}");
    }
    let mut req = ws_url.as_str().into_client_request()?;
    if let (Some(t), Via::Cabecera) = (token, via) {
        req.headers_mut().insert(
            "Authorization",
            HeaderValue::from_str(&format!("Bearer {t}"))?,
        );
    }
    match tokio::time::timeout(PLAZO, tokio_tungstenite::connect_async(req))
        .await
        .context("the upgrade did not finish in time")?
    {
        Ok((ws, resp)) => {
            ensure!(
                resp.status().as_u16() == 101,
                "upgrade status {}",
                resp.status()
            );
            Ok(Ok(ws))
        }
        Err(tungstenite::Error::Http(resp)) => Ok(Err(Rechazo {
            status: resp.status().as_u16(),
            www_authenticate: resp
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            cuerpo: String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default())
                .into_owned(),
        })),
        Err(e) => Err(e.into()),
    }
}

/// What reading a document gave.
pub enum Lectura {
    /// The server's document, fully synced.
    Documento(Box<AutoCommit>),
    /// `doc-unavailable`, as the raw frame.
    NoDisponible(Vec<u8>),
}

/// What sending changes gave.
#[derive(Debug)]
pub enum Escritura {
    /// The server's next `sync` for the document has the change among its heads.
    Confirmada,
    /// `error` (with its message), then the server closed the connection.
    Rechazada(String),
    /// `doc-unavailable`, as the raw frame; the connection stays open.
    NoDisponible(Vec<u8>),
}

pub struct Cliente {
    pub ws: Ws,
    pub session: Session,
}

impl Cliente {
    /// Connects and does the handshake (`join` → `peer`).
    pub async fn conectar(url: &str, token: &str, via: Via) -> Result<Cliente> {
        let ws = upgrade(url, Some(token), via)
            .await?
            .map_err(|r| anyhow!("upgrade refused: {r:?}"))?;
        let session = Session::new(
            Role::Initiator,
            PeerId(format!("authz-{:016x}", rand::random::<u64>())),
            // No storage id: the server keeps no sync state between these connections.
            PeerMetadata {
                storage_id: None,
                is_ephemeral: true,
            },
        );
        let mut c = Cliente { ws, session };
        let join = c.session.join();
        c.enviar(&join).await?;
        let (_, peer) = c.frame().await?.context("closed during the handshake")?;
        match c.session.receive(peer)? {
            Inbound::Ready => Ok(c),
            other => bail!("unexpected handshake answer {other:?}"),
        }
    }

    pub fn servidor(&self) -> PeerId {
        self.session
            .peer()
            .map(|(p, _)| p.clone())
            .expect("handshake done")
    }

    pub async fn enviar(&mut self, m: &Message) -> Result<()> {
        self.ws.send(WsMessage::Binary(m.encode().into())).await?;
        Ok(())
    }

    /// The next protocol message (raw frame and decoded), or `None` once the server closed.
    pub async fn frame(&mut self) -> Result<Option<(Vec<u8>, Message)>> {
        // One deadline for the message, however many pings come first.
        let deadline = tokio::time::Instant::now() + PLAZO;
        loop {
            let next = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .context("no frame from the server in time")?;
            match next {
                // A reset after the close is a close too.
                None | Some(Err(_)) | Some(Ok(WsMessage::Close(_))) => return Ok(None),
                Some(Ok(WsMessage::Binary(b))) => {
                    let m = Message::decode(&b)?;
                    return Ok(Some((b.to_vec(), m)));
                }
                Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_))) => {}
                Some(Ok(WsMessage::Text(t))) => bail!("text frame from the server: {t}"),
            }
        }
    }

    /// Reads messages until `f` picks one; fails if the connection closes first.
    pub async fn hasta<T>(
        &mut self,
        que: &str,
        mut f: impl FnMut(&[u8], &Message) -> Option<T>,
    ) -> Result<T> {
        loop {
            let (raw, m) = self
                .frame()
                .await?
                .with_context(|| format!("connection closed while waiting for {que}"))?;
            if let Some(v) = f(&raw, &m) {
                return Ok(v);
            }
        }
    }

    /// The server closes the connection without sending anything else.
    pub async fn cerrada(&mut self) -> Result<()> {
        if let Some((_, m)) = self.frame().await? {
            bail!("expected the server to close, got {m:?}");
        }
        Ok(())
    }

    /// Asks for a document (`request` from an empty document) and syncs it to the end.
    pub async fn leer(&mut self, id: DocumentId) -> Result<Lectura> {
        let mut doc = AutoCommit::new();
        let m = self.session.request(id, &doc.sync());
        self.enviar(&m).await?;
        loop {
            let (raw, m) = self
                .frame()
                .await?
                .with_context(|| format!("closed while reading {id}"))?;
            match m {
                Message::DocUnavailable { document_id, .. } if document_id == id => {
                    return Ok(Lectura::NoDisponible(raw));
                }
                Message::Sync {
                    document_id, data, ..
                } if document_id == id => {
                    let msg = Session::decode_sync(&data)?;
                    self.session.apply(id, &mut doc.sync(), msg)?;
                    if let Some(r) = self.session.generate(id, &doc.sync()) {
                        self.enviar(&r).await?;
                    }
                    if self.session.in_sync(&id, &doc.get_heads()) {
                        return Ok(Lectura::Documento(Box::new(doc)));
                    }
                }
                Message::Error { message } => bail!("error while reading {id}: {message}"),
                _ => {}
            }
        }
    }

    /// Sends a `sync` carrying `cambios` as they are (no negotiation first: what a hostile or
    /// hurried client can do), then waits for the verdict.
    pub async fn escribir(&mut self, id: DocumentId, cambios: &[Change]) -> Result<Escritura> {
        // The wire format wants sorted hashes.
        let mut heads: Vec<ChangeHash> = cambios.iter().map(Change::hash).collect();
        heads.sort();
        let data = sync::Message {
            heads,
            need: Vec::new(),
            have: Vec::new(),
            changes: ChunkList::from(
                cambios
                    .iter()
                    .map(|c| c.raw_bytes().to_vec())
                    .collect::<Vec<_>>(),
            ),
            flags: None,
            version: MessageVersion::V1,
        }
        .encode();
        let m = Message::Sync {
            sender_id: self.session.our_id().clone(),
            target_id: self.servidor(),
            document_id: id,
            data,
        };
        self.enviar(&m).await?;
        let ultimo = cambios.last().context("at least one change")?.hash();
        self.veredicto(id, ultimo).await
    }

    /// Local changes to a document read from the server, sent the way a real client does
    /// (sync messages generated from the sync state), until a verdict on `hash`.
    pub async fn sincronizar(
        &mut self,
        id: DocumentId,
        doc: &mut AutoCommit,
        hash: ChangeHash,
    ) -> Result<Escritura> {
        let m = self
            .session
            .generate(id, &doc.sync())
            .context("a local change gives a sync message")?;
        self.enviar(&m).await?;
        loop {
            let (raw, m) = self
                .frame()
                .await?
                .context("closed without `error` or confirmation")?;
            match m {
                Message::DocUnavailable { document_id, .. } if document_id == id => {
                    return Ok(Escritura::NoDisponible(raw));
                }
                Message::Sync {
                    document_id, data, ..
                } if document_id == id => {
                    let msg = Session::decode_sync(&data)?;
                    if msg.heads.contains(&hash) {
                        return Ok(Escritura::Confirmada);
                    }
                    self.session.apply(id, &mut doc.sync(), msg)?;
                    if let Some(r) = self.session.generate(id, &doc.sync()) {
                        self.enviar(&r).await?;
                    }
                }
                Message::Error { message } => {
                    self.cerrada().await?;
                    return Ok(Escritura::Rechazada(message));
                }
                _ => {}
            }
        }
    }

    /// Whether the server told this peer it is read-only for `id` (automerge's READ_ONLY flag).
    pub fn par_de_solo_lectura(&mut self, id: DocumentId) -> bool {
        let st = self.session.take_state(&id);
        let ro = st.is_peer_read_only();
        self.session.put_state(id, st);
        ro
    }

    pub async fn veredicto(&mut self, id: DocumentId, hash: ChangeHash) -> Result<Escritura> {
        let (raw, m) = self
            .hasta("a verdict on the change", |raw, m| match m {
                Message::DocUnavailable { document_id, .. } if *document_id == id => {
                    Some((raw.to_vec(), m.clone()))
                }
                Message::Sync {
                    document_id, data, ..
                } if *document_id == id => Session::decode_sync(data)
                    .ok()
                    .filter(|s| s.heads.contains(&hash))
                    .map(|_| (raw.to_vec(), m.clone())),
                Message::Error { .. } => Some((raw.to_vec(), m.clone())),
                _ => None,
            })
            .await?;
        Ok(match m {
            Message::DocUnavailable { .. } => Escritura::NoDisponible(raw),
            Message::Error { message } => {
                self.cerrada().await?;
                Escritura::Rechazada(message)
            }
            _ => Escritura::Confirmada,
        })
    }
}

/// The `host:port` of an `http://` base URL.
pub fn direccion(base: &str) -> Result<&str> {
    base.strip_prefix("http://").context("http:// URL")
}

/// HTTP without a client library: GET with an optional bearer header; (status, body), a chunked
/// body reassembled.
pub async fn http_get(base: &str, path: &str, bearer: Option<&str>) -> Result<(u16, String)> {
    let addr = direccion(base)?;
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = bearer {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    req.push_str("\r\n");
    let r = http_crudo(base, req.as_bytes()).await?;
    Ok((r.status, r.cuerpo))
}

/// An HTTP response as [`http_crudo`] read it.
#[derive(Debug)]
pub struct Respuesta {
    pub status: u16,
    /// The status line and headers, as sent.
    pub cabeceras: String,
    /// The body (reassembled if chunked; bytes that are not UTF-8 replaced).
    pub cuerpo: String,
}

impl Respuesta {
    /// The value of a header, by case-insensitive name.
    pub fn cabecera(&self, nombre: &str) -> Option<&str> {
        self.cabeceras.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(nombre).then(|| v.trim())
        })
    }
}

/// Sends `peticion` byte for byte (it should ask for `Connection: close`) and reads the response
/// until the server closes the connection.
pub async fn http_crudo(base: &str, peticion: &[u8]) -> Result<Respuesta> {
    let mut s = TcpStream::connect(direccion(base)?).await?;
    s.write_all(peticion).await?;
    let mut buf = Vec::new();
    tokio::time::timeout(PLAZO, s.read_to_end(&mut buf))
        .await
        .context("HTTP response in time")??;
    let fin = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("HTTP head")?;
    let head = String::from_utf8_lossy(&buf[..fin]).into_owned();
    let mut rest = &buf[fin + 4..];
    let status: u16 = head.split_whitespace().nth(1).context("status")?.parse()?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = Vec::new();
        loop {
            let eol = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .context("chunk size")?;
            let len = usize::from_str_radix(std::str::from_utf8(&rest[..eol])?.trim(), 16)?;
            if len == 0 {
                break;
            }
            let datos = rest
                .get(eol + 2..eol + 2 + len)
                .context("chunk shorter than its size")?;
            out.extend_from_slice(datos);
            rest = rest.get(eol + 4 + len..).unwrap_or_default();
        }
        String::from_utf8_lossy(&out).into_owned()
    } else {
        String::from_utf8_lossy(rest).into_owned()
    };
    Ok(Respuesta {
        status,
        cabeceras: head,
        cuerpo: body,
    })
}
