//! `server_limits`: what the sync endpoint does with frames it must not accept. An oversized
//! message, a text frame, undecodable CBOR and a sync before the handshake each get an `error`
//! message and a closed socket; the server keeps serving honest clients afterwards.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use bitacora_core::protocol::{Message, PeerId, PeerMetadata, Role, Session};
use bitacora_server::db::Database;
use bitacora_tests::server::{TestServer, test_config};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message as Ws;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(srv: &TestServer, token: &str) -> Result<Socket> {
    let mut req = format!("{}/sync", srv.url.replace("http://", "ws://")).into_client_request()?;
    req.headers_mut()
        .insert("Authorization", format!("Bearer {token}").parse()?);
    Ok(tokio_tungstenite::connect_async(req).await?.0)
}

async fn join(ws: &mut Socket) -> Result<()> {
    let s = Session::new(
        Role::Initiator,
        PeerId("limites".into()),
        PeerMetadata::default(),
    );
    ws.send(Ws::Binary(s.join().encode().into())).await?;
    match next_message(ws).await? {
        Some(Message::Peer { .. }) => Ok(()),
        other => bail!("expected peer, got {other:?}"),
    }
}

/// The next protocol message, or None when the server closed the socket.
async fn next_message(ws: &mut Socket) -> Result<Option<Message>> {
    loop {
        match tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .context("no answer")?
        {
            None | Some(Err(_)) | Some(Ok(Ws::Close(_))) => return Ok(None),
            Some(Ok(Ws::Binary(b))) => return Ok(Some(Message::decode(&b)?)),
            Some(Ok(_)) => continue,
        }
    }
}

/// Expects `error` (with `needle` in it) and then the socket closed.
async fn expect_error_and_close(ws: &mut Socket, needle: &str) -> Result<()> {
    match next_message(ws).await? {
        Some(Message::Error { message }) => assert!(
            message.contains(needle),
            "error «{message}» should mention «{needle}»"
        ),
        other => bail!("expected error, got {other:?}"),
    }
    assert!(
        next_message(ws).await?.is_none(),
        "the socket is closed after the error"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_limits() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut config = test_config(dir.path().to_path_buf());
    config.limits.max_message_bytes = 4096;
    let db = Database::connect(&config.database_url()).await?;
    let srv = TestServer::start_on(dir, config, db).await?;
    srv.zona("07FIZ0014").await?;
    let doc = srv.escuela("07DPR0001A", "07FIZ0014").await?;
    let token = srv
        .usuario("ana", "docente", Some("07DPR0001A"), None)
        .await?;

    // Over the configured limit (but under the WebSocket layer's hard cap of twice it).
    let mut ws = connect(&srv, &token).await?;
    join(&mut ws).await?;
    ws.send(Ws::Binary(vec![0xa0; 6000].into())).await?;
    expect_error_and_close(&mut ws, "exceeds the limit").await?;

    // A text frame is not part of the protocol.
    let mut ws = connect(&srv, &token).await?;
    join(&mut ws).await?;
    ws.send(Ws::Text("{\"type\":\"join\"}".into())).await?;
    expect_error_and_close(&mut ws, "binary").await?;

    // Undecodable CBOR, and a sync before the handshake.
    let mut ws = connect(&srv, &token).await?;
    ws.send(Ws::Binary(vec![0xff, 0x00, 0x13].into())).await?;
    assert!(matches!(
        next_message(&mut ws).await?,
        Some(Message::Error { .. })
    ));
    let mut ws = connect(&srv, &token).await?;
    let sync = Message::Sync {
        sender_id: PeerId("x".into()),
        target_id: PeerId("y".into()),
        document_id: doc.id,
        data: vec![0x42],
    };
    ws.send(Ws::Binary(sync.encode().into())).await?;
    expect_error_and_close(&mut ws, "handshake").await?;

    // The server is still up for an honest client.
    let mut ws = connect(&srv, &token).await?;
    join(&mut ws).await?;
    srv.stop().await?;
    Ok(())
}
