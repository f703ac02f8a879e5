//! `bitacora-server`: the zone server.
//!
//! - [`config`]: layered configuration (defaults, TOML, environment) with secrets that never print.
//! - [`db`]: storage on SQLite or PostgreSQL through sqlx; the only module that runs SQL.
//! - [`auth`]: JWT verification, principals and the access matrix.
//! - [`hub`]: the shared document cache; applies sync messages and makes them durable.
//! - [`limites`]: message rates per connection and per token, connections per token.
//! - [`metrics`]: Prometheus metrics, on a listener of their own.
//! - [`connection`]: the WebSocket loop of one peer, driving the protocol state machine.
//! - [`http`]: the axum router; the only module that knows HTTP status codes.
//! - [`admin`]: zones, schools, users, tokens (the `admin` subcommands).
//! - [`bundles`]: importing schools' USB bundles and exporting the return trip.
//! - [`demo`]: `bitacora-server demo`, a generated zone served for a first look.
//! - [`difusion`]: hears other server processes' changes on a shared PostgreSQL (LISTEN/NOTIFY).
//! - [`proyector`]: keeps the dashboard's SQL projections of school documents up to date.
//! - [`tablero`]: the CTZ dashboard (HTML, JSON API, CSV) over those projections.
//!
//! Startup is [`run`]`(listener, config, shutdown)`, shared by `main` and the tests.

pub mod admin;
pub mod auth;
pub mod bundles;
pub mod config;
pub mod connection;
pub mod db;
pub mod demo;
pub mod difusion;
/// For the fuzz targets in `fuzz/` only (docs/fuzzing.md).
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod hub;
pub mod limites;
pub mod metrics;
pub mod proyector;
pub mod tablero;

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
    /// The server's clock for what it records about the world (last sync of a school).
    pub reloj: Reloj,
    pub hub: Hub,
    pub keys: Keys,
    /// This process's peer id in the sync protocol.
    pub peer_id: PeerId,
    /// The storage id of this server's database (stable across restarts and processes).
    pub storage_id: String,
    /// Prometheus counters ([`metrics`]), served on the separate `metrics_listen`.
    pub metrics: Arc<metrics::Metrics>,
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

    /// The rate and connection limits of this process (`config.limits`).
    pub fn limites(&self) -> &Arc<limites::Limitador> {
        self.hub
            .limites
            .get_or_init(|| Arc::new(limites::Limitador::new(&self.config.limits)))
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
    run_with_clock(listener, config, db, Reloj::default(), shutdown).await
}

/// [`run_with_db`] with a clock the caller controls (`demo` replays weeks of history with it).
pub async fn run_with_clock(
    listener: TcpListener,
    config: Config,
    db: Database,
    reloj: Reloj,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    run_with_metrics(listener, None, config, db, reloj, shutdown).await
}

/// [`run_with_clock`] with a second listener that serves only `GET /metrics`
/// ([`metrics::router`]); `bitacora-server serve` binds it from `metrics_listen`.
pub async fn run_with_metrics(
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    config: Config,
    db: Database,
    reloj: Reloj,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (state, stop_tx, mut alive_rx) = construir(config, db.clone(), reloj).await?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, backend = db.backend(), "listening");
    // Projections: catch up on every school document, then follow the hub's commits.
    let proyector = state.hub.proyector.clone();
    proyector.marcar_todos(&db).await?;
    let proyeccion = tokio::spawn({
        let db = db.clone();
        let stop = stop_tx.subscribe();
        async move { proyector.ejecutar(db, stop).await }
    });
    // Other processes on the same PostgreSQL: listen before serving anything.
    let oyente = match db.escuchar_cambios().await? {
        Some(escucha) => {
            let st = state.clone();
            let stop = stop_tx.subscribe();
            Some(tokio::spawn(async move {
                difusion::seguir(&st.hub, escucha, stop).await
            }))
        }
        None => None,
    };
    let metricas = match metrics_listener {
        Some(l) => {
            tracing::info!(addr = %l.local_addr()?, "metrics listening");
            let app = metrics::router(state.clone());
            // Through `http::servir` too, so a stalled scraper cannot hold up shutdown.
            let serve = http::servir(
                l,
                app,
                stop_tx.subscribe(),
                std::time::Duration::from_secs(state.config.limits.http_header_timeout_secs),
            );
            Some(tokio::spawn(serve))
        }
        None => None,
    };
    let app = http::router(state.clone());
    let server = http::servir(
        listener,
        app,
        stop_tx.subscribe(),
        std::time::Duration::from_secs(state.config.limits.http_header_timeout_secs),
    );
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down: finishing in-flight messages");
        let _ = stop_tx.send(true);
    };
    tokio::join!(server, signal);
    if let Some(m) = metricas {
        let _ = m.await;
    }
    let _ = proyeccion.await;
    if let Some(d) = oyente {
        let _ = d.await;
    }
    drop(state);
    // Every connection task holds an `alive` sender; wait for the last one.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(30), alive_rx.recv()).await;
    db.close().await;
    Ok(())
}

/// The shared state of a server, its stop switch and the receiver that hears the last live
/// connection go.
async fn construir(
    config: Config,
    db: Database,
    reloj: Reloj,
) -> anyhow::Result<(AppState, watch::Sender<bool>, mpsc::Receiver<()>)> {
    let keys = Keys::from_config(&config.jwt, &config.data_dir)?;
    let storage_id = db
        .meta_or_init("storage_id", &format!("bitacora-{}", random_hex(16)))
        .await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let (alive_tx, alive_rx) = mpsc::channel::<()>(1);
    let state = AppState(Arc::new(Inner {
        hub: {
            let mut hub = Hub::con_reloj(db, config.cache_budget_bytes, reloj.clone());
            hub.proyector = Arc::new(proyector::Proyector::con_barrido(
                std::time::Duration::from_secs(config.projection_sweep_secs.max(1)),
            ));
            hub
        },
        keys,
        peer_id: PeerId(format!("bitacora-server-{}", random_hex(8))),
        storage_id,
        metrics: Default::default(),
        shutdown: stop_rx,
        alive: alive_tx,
        reloj,
        config,
    }));
    Ok((state, stop_tx, alive_rx))
}

impl AppState {
    /// A server's state without a listener or background tasks, for driving [`http::router`]
    /// directly (router tests with `tower::ServiceExt::oneshot`). Projections are not kept up
    /// to date: call [`proyector::proyectar_documento`] where a test needs them.
    pub async fn sin_red(config: Config, db: Database, reloj: Reloj) -> anyhow::Result<AppState> {
        Ok(construir(config, db, reloj).await?.0)
    }
}

/// Wall-clock time in seconds since the epoch, shifted by an offset the owner may change.
/// Only what the server records about the world uses it (when a school last synced); token
/// expiry and timeouts use the real clock.
#[derive(Debug, Clone, Default)]
pub struct Reloj(Arc<std::sync::atomic::AtomicI64>);

impl Reloj {
    pub fn ahora(&self) -> i64 {
        db::now() + self.0.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Sets the clock to `segundos` since the epoch (the offset from the real clock is kept).
    pub fn fijar(&self, segundos: i64) {
        self.0
            .store(segundos - db::now(), std::sync::atomic::Ordering::Relaxed);
    }

    /// Back to the real clock.
    pub fn real(&self) {
        self.0.store(0, std::sync::atomic::Ordering::Relaxed);
    }
}

fn random_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}
