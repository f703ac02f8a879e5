//! `bitacora-server`: the zone server.
//!
//! - [`config`]: layered configuration (defaults, TOML, environment) with secrets that never print.
//! - [`db`]: storage on SQLite or PostgreSQL through sqlx; the only module that runs SQL.
//! - [`auth`]: JWT verification, principals and the access matrix.
//! - [`hub`]: the shared document cache; applies sync messages and makes them durable.
//! - [`connection`]: the WebSocket loop of one peer, driving the protocol state machine.
//! - [`http`]: the axum router; the only module that knows HTTP status codes.
//! - [`admin`]: zones, schools, users, tokens (the `admin` subcommands).
//! - [`bundles`]: importing schools' USB bundles and exporting the return trip.
//!
//! Startup is [`run`]`(listener, config, shutdown)`, shared by `main` and the tests.

pub mod admin;
pub mod auth;
pub mod bundles;
pub mod config;
pub mod connection;
pub mod db;
pub mod http;
pub mod hub;

use std::future::Future;
use std::ops::Deref;
use std::sync::Arc;

use anyhow::Context;
use bitacora_core::protocol::PeerId;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::auth::Keys;
use crate::config::Config;
use crate::db::Database;
use crate::hub::Hub;

/// What every request and connection shares.
pub struct Inner {
    pub config: Config,
    pub hub: Hub,
    pub keys: Keys,
    /// This process's peer id in the sync protocol.
    pub peer_id: PeerId,
    /// The storage id of this server's database (stable across restarts and processes).
    pub storage_id: String,
    shutdown: watch::Receiver<bool>,
    /// Each live connection holds a clone; shutdown waits until all are dropped.
    alive: mpsc::Sender<()>,
}

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.clone()
    }

    pub fn alive_token(&self) -> mpsc::Sender<()> {
        self.alive.clone()
    }
}

/// Opens the configured database (creating the data directory for SQLite).
pub async fn open_database(config: &Config) -> anyhow::Result<Database> {
    if config.database_url.is_none() {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    }
    Database::connect(&config.database_url())
        .await
        .context("opening the database")
}

/// Serves until `shutdown` resolves, then stops accepting, lets every connection finish the
/// message it is handling (so in-flight writes commit) and persist its sync state, and returns.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let db = open_database(&config).await?;
    run_with_db(listener, config, db, shutdown).await
}

pub async fn run_with_db(
    listener: TcpListener,
    config: Config,
    db: Database,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let keys = Keys::from_config(&config.jwt, &config.data_dir)?;
    let storage_id = db
        .meta_or_init("storage_id", &format!("bitacora-{}", random_hex(16)))
        .await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    let state = AppState(Arc::new(Inner {
        hub: Hub::new(db.clone(), config.cache_budget_bytes),
        keys,
        peer_id: PeerId(format!("bitacora-server-{}", random_hex(8))),
        storage_id,
        shutdown: stop_rx,
        alive: alive_tx,
        config,
    }));
    let addr = listener.local_addr()?;
    tracing::info!(%addr, backend = db.backend(), "listening");
    let app = http::router(state.clone());
    let mut stop = stop_tx.subscribe();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        let _ = stop.changed().await;
    });
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down: finishing in-flight messages");
        let _ = stop_tx.send(true);
    };
    let (served, ()) = tokio::join!(server.into_future(), signal);
    served?;
    drop(state);
    // Every connection task holds an `alive` sender; wait for the last one.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(30), alive_rx.recv()).await;
    db.close().await;
    Ok(())
}

fn random_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}
