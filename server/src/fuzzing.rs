//! Support for the fuzz targets in `fuzz/` (cargo-fuzz, see docs/fuzzing.md); nothing else uses
//! it and it is hidden from the docs.
//!
//! [`Server`] is the state a running server shares between its connections ([`AppState`]:
//! configuration, hub, keys, peer and storage ids), built over a database the caller opened, with
//! no listener. [`Connection`] is one sync connection without its WebSocket: each binary frame
//! goes through `connection::Conn::on_frame`, the same code `connection::run` calls for every
//! frame it reads, and comes back as the messages the server would send, or as the `error` it
//! would send before closing the socket. What `connection::run` does around that (text frames,
//! pings, the idle timeout, shutdown) needs a socket and is not reached from here.

use bitacora_core::protocol::Message;

use crate::auth::Principal;
use crate::config::Config;
use crate::connection::Conn;
use crate::db::Database;
use crate::{AppState, Reloj};

/// A server's shared state without a listener or background tasks ([`AppState::sin_red`]).
pub struct Server {
    state: AppState,
}

impl Server {
    /// The state `run_with_db` builds, over `db` (already migrated). Projections are not kept
    /// up to date (the fuzz target runs `proyector::proyectar_documento` itself).
    pub async fn new(config: Config, db: Database) -> anyhow::Result<Server> {
        Ok(Server {
            state: AppState::sin_red(config, db, Reloj::default()).await?,
        })
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// A new connection of an authenticated principal, before its first frame.
    pub fn connect(&self, principal: Principal) -> Connection {
        Connection(Conn::new(self.state.clone(), principal))
    }
}

/// One sync connection, fed frame by frame.
pub struct Connection(Conn);

impl Connection {
    /// One binary frame: `Ok` with the messages the server sends back, or `Err` with the message
    /// of the `error` it sends before closing the socket (call [`Connection::close`] then).
    pub async fn frame(&mut self, frame: &[u8]) -> Result<Vec<Message>, String> {
        self.0.on_frame(frame).await.map_err(|f| f.0)
    }

    /// What the socket loop sends when the hub wakes this connection (another connection changed
    /// a document it follows, or relayed an ephemeral message).
    pub async fn notified(&mut self) -> Vec<Message> {
        self.0.on_notified().await
    }

    /// The end of the connection: its sync states are persisted, as when the socket closes.
    pub async fn close(self) {
        self.0.persist_sync_states().await;
    }
}
