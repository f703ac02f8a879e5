//! One device's connection: a WebSocket over a byte-counting TCP stream, driving client-core's
//! protocol [`Session`] (the same state machine as `bitacora sync`). Plain automerge-repo
//! protocol: `join`/`peer`, then `sync`/`request`; a bearer token only when one is given.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use anyhow::{Context as _, Result, bail};
use bitacora_core::automerge::{AutoCommit, ChangeHash};
use bitacora_core::ids::DocumentId;
use bitacora_core::protocol::{Inbound, Message, PeerId, PeerMetadata, Role, Session};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as Ws;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// Bytes that crossed a TCP connection (HTTP upgrade and WebSocket framing included).
#[derive(Debug, Default)]
pub struct Contador {
    pub enviados: AtomicU64,
    pub recibidos: AtomicU64,
}

impl Contador {
    pub fn total(&self) -> u64 {
        self.enviados.load(Ordering::Relaxed) + self.recibidos.load(Ordering::Relaxed)
    }
}

/// A TCP stream that counts what it reads and writes.
pub struct Contado {
    s: TcpStream,
    c: Arc<Contador>,
}

impl AsyncRead for Contado {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let antes = buf.filled().len();
        let r = Pin::new(&mut self.s).poll_read(cx, buf);
        let n = buf.filled().len() - antes;
        self.c.recibidos.fetch_add(n as u64, Ordering::Relaxed);
        r
    }
}

impl AsyncWrite for Contado {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.s).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &r {
            self.c.enviados.fetch_add(*n as u64, Ordering::Relaxed);
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.s).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.s).poll_shutdown(cx)
    }
}

/// Where to connect and how to present oneself.
#[derive(Debug, Clone)]
pub struct Destino {
    /// `ws://host:port/path`.
    pub ws_url: String,
    /// `host:port`.
    pub addr: String,
}

impl Destino {
    /// `http://host:port[/path]` (or `ws://…`). Bitácora's endpoint is `/sync`; a generic
    /// automerge-repo server takes the path as given (`/` when none).
    pub fn new(url: &str, generico: bool) -> Result<Destino> {
        let u = url.trim().trim_end_matches('/');
        let resto = u
            .strip_prefix("http://")
            .or_else(|| u.strip_prefix("ws://"))
            .with_context(|| format!("expected http://host:port or ws://host:port, got {url}"))?;
        let (addr, path) = match resto.find('/') {
            Some(i) => (&resto[..i], &resto[i..]),
            None => (resto, ""),
        };
        let path = match (path, generico) {
            ("", false) => "/sync",
            ("", true) => "/",
            (p, _) => p,
        };
        Ok(Destino {
            ws_url: format!("ws://{addr}{path}"),
            addr: addr.to_string(),
        })
    }

    /// The same server reached through another address (a proxy).
    pub fn via(&self, addr: &str) -> Destino {
        let path = self
            .ws_url
            .strip_prefix("ws://")
            .and_then(|r| r.find('/').map(|i| r[i..].to_string()))
            .unwrap_or_else(|| "/".into());
        Destino {
            ws_url: format!("ws://{addr}{path}"),
            addr: addr.to_string(),
        }
    }
}

pub struct Conexion {
    ws: WebSocketStream<Contado>,
    pub session: Session,
    pub bytes: Arc<Contador>,
    /// `sync`/`request` messages sent: each waits for an answer (a round trip).
    pub mensajes: u64,
}

impl Conexion {
    /// TCP connect, WebSocket upgrade (with `Authorization: Bearer` when a token is given),
    /// `join`, and wait for `peer`.
    pub async fn abrir(
        destino: &Destino,
        token: Option<&str>,
        storage_id: &str,
        limite: Instant,
    ) -> Result<Conexion> {
        tokio::time::timeout_at(limite, Self::abrir_sin_plazo(destino, token, storage_id))
            .await
            .context("connection and handshake timed out")?
    }

    async fn abrir_sin_plazo(
        destino: &Destino,
        token: Option<&str>,
        storage_id: &str,
    ) -> Result<Conexion> {
        let tcp = TcpStream::connect(&destino.addr)
            .await
            .with_context(|| format!("connecting to {}", destino.addr))?;
        tcp.set_nodelay(true)?;
        let bytes = Arc::new(Contador::default());
        let mut req = destino.ws_url.as_str().into_client_request()?;
        if let Some(t) = token {
            req.headers_mut().insert(
                "Authorization",
                HeaderValue::from_str(&format!("Bearer {t}"))?,
            );
        }
        let (ws, _) = tokio_tungstenite::client_async(
            req,
            Contado {
                s: tcp,
                c: bytes.clone(),
            },
        )
        .await
        .with_context(|| format!("WebSocket upgrade at {}", destino.ws_url))?;
        let session = Session::new(
            Role::Initiator,
            PeerId(format!("carga-{:016x}", rand::random::<u64>())),
            PeerMetadata {
                storage_id: Some(storage_id.to_string()),
                is_ephemeral: false,
            },
        );
        let mut c = Conexion {
            ws,
            session,
            bytes,
            mensajes: 0,
        };
        let join = c.session.join();
        c.enviar(join).await?;
        loop {
            match c.recibir().await? {
                Some(Inbound::Ready) => return Ok(c),
                Some(Inbound::PeerError(m)) => bail!("the server refused the handshake: {m}"),
                _ => {}
            }
        }
    }

    pub async fn enviar(&mut self, m: Message) -> Result<()> {
        if matches!(m, Message::Sync { .. } | Message::Request { .. }) {
            self.mensajes += 1;
        }
        self.ws
            .send(Ws::Binary(m.encode().into()))
            .await
            .context("sending")?;
        Ok(())
    }

    /// The next protocol message (None for control frames). Cancel-safe.
    pub async fn recibir(&mut self) -> Result<Option<Inbound>> {
        match self.ws.next().await {
            None => bail!("the server closed the connection"),
            Some(Err(e)) => bail!("connection failed: {e}"),
            Some(Ok(Ws::Binary(b))) => Ok(Some(self.session.receive_frame(&b)?)),
            Some(Ok(Ws::Close(f))) => bail!("the server closed the connection: {f:?}"),
            Some(Ok(_)) => Ok(None),
        }
    }

    /// Offers a document: a `sync` if automerge has something to say, else a `request`.
    pub async fn ofrecer(&mut self, id: DocumentId, doc: &mut AutoCommit) -> Result<()> {
        let generado = self.session.generate(id, &doc.sync());
        let m = match generado {
            Some(m) => m,
            None => self.session.request(id, &doc.sync()),
        };
        self.enviar(m).await
    }

    /// Sends what automerge has to say about a document after a local change, if anything.
    pub async fn empujar(&mut self, id: DocumentId, doc: &mut AutoCommit) -> Result<()> {
        if let Some(m) = self.session.generate(id, &doc.sync()) {
            self.enviar(m).await?;
        }
        Ok(())
    }

    /// Handles one incoming message for `id`: applies it and answers. With `hashes`, returns
    /// the hashes of the changes it brought (automerge rebuilds changes to list them: not free).
    pub async fn atender(
        &mut self,
        id: DocumentId,
        doc: &mut AutoCommit,
        m: Inbound,
        hashes: bool,
    ) -> Result<Vec<ChangeHash>> {
        match m {
            Inbound::Sync {
                document_id, data, ..
            } if document_id == id => {
                let msg = Session::decode_sync(&data)?;
                let antes = doc.get_heads();
                self.session.apply(id, &mut doc.sync(), msg)?;
                let nuevos = if !hashes || doc.get_heads() == antes {
                    Vec::new()
                } else {
                    doc.get_changes(&antes).iter().map(|c| c.hash()).collect()
                };
                self.empujar(id, doc).await?;
                Ok(nuevos)
            }
            Inbound::Unavailable { document_id } => {
                bail!("the server says document {document_id} is unavailable")
            }
            Inbound::PeerError(m) => bail!("the server sent an error: {m}"),
            Inbound::Leave => bail!("the server left"),
            _ => Ok(Vec::new()),
        }
    }

    /// Whether both sides hold the same heads for `id`.
    pub fn en_sync(&self, id: &DocumentId, doc: &mut AutoCommit) -> bool {
        self.session.in_sync(id, &doc.get_heads())
    }

    /// One-shot sync of one document: offer it, then answer until both sides hold the same
    /// heads.
    pub async fn sincronizar(
        &mut self,
        id: DocumentId,
        doc: &mut AutoCommit,
        limite: Instant,
    ) -> Result<()> {
        self.ofrecer(id, doc).await?;
        while !self.en_sync(&id, doc) {
            let m = tokio::time::timeout_at(limite, self.recibir())
                .await
                .context("sync timed out")??;
            if let Some(m) = m {
                self.atender(id, doc, m, false).await?;
            }
        }
        Ok(())
    }

    pub async fn cerrar(mut self) {
        let _ = self.ws.close(None).await;
    }
}

/// Sorted heads.
pub fn cabezas(doc: &mut AutoCommit) -> Vec<ChangeHash> {
    let mut h = doc.get_heads();
    h.sort();
    h
}
