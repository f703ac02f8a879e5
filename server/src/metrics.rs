//! Prometheus metrics, served at `GET /metrics` on a listener of their own (`metrics_listen`),
//! never on the public one.
//!
//! [`Metrics`] holds the counters that events move (sync messages and bytes, connections, auth
//! failures, HTTP requests) in a `prometheus-client` registry; the values other modules already
//! keep (the hub's cache and evictions, the projection queue) are read at scrape time by
//! [`Metrics::encode`], so they have one source of truth. Every name and its meaning is listed
//! in docs/operations.md ("Monitoring").
//!
//! - [`ConnMetrics`]: one sync connection's share: open-connection gauge, bytes, sync messages,
//!   and its round trips per document, observed when it is dropped.
//! - [`registrar_http`]: middleware of the public router counting requests by route template
//!   and status.
//! - [`router`]: the metrics listener's router.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bitacora_core::ids::DocumentId;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::auth::AuthError;
use crate::{AppState, Inner};

/// The OpenMetrics text format, which Prometheus reads.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SyncLabels {
    direction: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DocumentLabels {
    document: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn http_duration_histogram() -> Histogram {
    Histogram::new([
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    ])
}

/// What became of a `sync` (or `request`) message a peer sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recibido {
    /// Applied (changes durable before the reply) or nothing to apply.
    Aplicado,
    /// Unknown or denied document: answered with `doc-unavailable`.
    NoDisponible,
    /// Refused by the rules (read-only access, actor not enrolled, undecodable payload): the
    /// connection is closed with `error`.
    Rechazado,
    /// The server failed to apply or store it; nothing was confirmed.
    Fallido,
}

impl Recibido {
    fn as_str(self) -> &'static str {
        match self {
            Recibido::Aplicado => "applied",
            Recibido::NoDisponible => "unavailable",
            Recibido::Rechazado => "refused",
            Recibido::Fallido => "failed",
        }
    }
}

/// Why a message is sent to a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Envio {
    /// In answer to a frame the peer sent.
    Respuesta,
    /// Pushed after another connection changed a followed document.
    Aviso,
}

/// The server's metrics (one per process, in [`crate::AppState`]).
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    sync_messages: Family<SyncLabels, Counter>,
    sync_bytes: Family<DirectionLabels, Counter>,
    round_trips: Histogram,
    connections_open: Gauge,
    connections: Counter,
    auth_failures: Family<ReasonLabels, Counter>,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: HistogramFamily<RouteLabels>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let m = Metrics {
            registry: Registry::with_prefix("bitacora"),
            sync_messages: Family::default(),
            sync_bytes: Family::default(),
            round_trips: Histogram::new([1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 32.0, 64.0]),
            connections_open: Gauge::default(),
            connections: Counter::default(),
            auth_failures: Family::default(),
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(http_duration_histogram),
        };
        let mut r = m.registry;
        r.register(
            "sync_messages",
            "Sync protocol `sync`/`request` messages: received by outcome (applied, \
             unavailable, refused, failed) and sent (reply, push)",
            m.sync_messages.clone(),
        );
        r.register_with_unit(
            "sync",
            "Bytes of WebSocket binary frames on sync connections, in and out",
            Unit::Bytes,
            m.sync_bytes.clone(),
        );
        r.register(
            "sync_round_trips",
            "Sync messages received per document per connection, observed when the \
             connection closes",
            m.round_trips.clone(),
        );
        r.register(
            "connections_open",
            "Sync WebSocket connections open now",
            m.connections_open.clone(),
        );
        r.register(
            "connections",
            "Sync WebSocket connections accepted",
            m.connections.clone(),
        );
        r.register(
            "auth_failures",
            "Refused authentications by reason (missing, invalid, revoked, unknown_user, error)",
            m.auth_failures.clone(),
        );
        r.register(
            "http_requests",
            "HTTP requests on the public listener by route template and status",
            m.http_requests.clone(),
        );
        r.register_with_unit(
            "http_request_duration",
            "Time to the response head of HTTP requests on the public listener, by route",
            Unit::Seconds,
            m.http_duration.clone(),
        );
        Metrics { registry: r, ..m }
    }

    /// A new sync connection: counted open until the returned value is dropped.
    pub fn conexion(self: &Arc<Self>) -> ConnMetrics {
        self.connections.inc();
        self.connections_open.inc();
        ConnMetrics {
            metrics: self.clone(),
            rondas: HashMap::new(),
        }
    }

    /// A refused authentication, by the error that refused it.
    pub fn auth_failure(&self, e: &AuthError) {
        self.auth_failure_reason(match e {
            AuthError::Missing => "missing",
            AuthError::Invalid(_) => "invalid",
            AuthError::Revoked => "revoked",
            AuthError::UnknownUser => "unknown_user",
            AuthError::Config(_) | AuthError::Db(_) => "error",
        });
    }

    /// A refused authentication with no [`AuthError`] (`"missing"`: no token at all).
    pub fn auth_failure_reason(&self, reason: &'static str) {
        self.auth_failures
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    /// The OpenMetrics text of every metric, the sampled ones read from `state` now.
    pub fn encode(&self, state: &Inner) -> Result<String, std::fmt::Error> {
        let hub = &state.hub;
        let proyector = &hub.proyector;
        let mut sampled = Registry::with_prefix("bitacora");
        sampled.register(
            "documents_cached",
            "Documents loaded in the hub's memory cache",
            ConstGauge::new(hub.loaded_docs.load(Ordering::Relaxed) as i64),
        );
        sampled.register_with_unit(
            "document_cache",
            "Estimated memory of the loaded documents",
            Unit::Bytes,
            ConstGauge::new(saturating_i64(hub.loaded_bytes())),
        );
        sampled.register_with_unit(
            "document_cache_budget",
            "The cache budget (cache_budget_bytes); idle documents are evicted above it",
            Unit::Bytes,
            ConstGauge::new(saturating_i64(state.config.cache_budget_bytes)),
        );
        sampled.register(
            "document_evictions",
            "Idle documents unloaded to stay under the cache budget",
            ConstCounter::new(hub.evictions.load(Ordering::Relaxed)),
        );
        sampled.register_with_unit(
            "projection_lag",
            "How long the oldest document waiting for its dashboard projection has waited",
            Unit::Seconds,
            ConstGauge::new(proyector.retraso()),
        );
        sampled.register(
            "projection_queue",
            "School documents waiting for their dashboard projection",
            ConstGauge::new(proyector.en_cola() as i64),
        );
        sampled.register(
            "projection_failures",
            "Projection attempts that failed (each is retried; the document stays as last projected meanwhile)",
            ConstCounter::new(proyector.fallidas.load(Ordering::Relaxed)),
        );
        // Per document, only those the projector's last sweep found behind (so the number of
        // series stays small however many documents the server holds).
        let atrasos = proyector.atrasos();
        sampled.register(
            "projection_behind_documents",
            "School documents whose dashboard projection does not include every stored change (as of the projector's last sweep)",
            ConstGauge::new(atrasos.len() as i64),
        );
        let behind_versions = Family::<DocumentLabels, Gauge>::default();
        let behind_seconds = Family::<DocumentLabels, Gauge>::default();
        let ahora = crate::db::now();
        for a in &atrasos {
            let l = DocumentLabels {
                document: a.documento.clone(),
            };
            behind_versions.get_or_create(&l).set(a.versiones_detras());
            behind_seconds.get_or_create(&l).set(a.segundos(ahora));
        }
        sampled.register(
            "projection_behind_appends",
            "Per document behind: stored appends of new changes its projection does not include",
            behind_versions,
        );
        sampled.register_with_unit(
            "projection_behind",
            "Per document behind: seconds since its projection was computed (at most this much of its recent changes are missing)",
            Unit::Seconds,
            behind_seconds,
        );
        let mut out = String::new();
        encode_registry(&mut out, &self.registry)?;
        encode_registry(&mut out, &sampled)?;
        encode_eof(&mut out)?;
        Ok(out)
    }
}

fn saturating_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// One sync connection's metrics; dropping it closes the connection's account.
#[derive(Debug)]
pub struct ConnMetrics {
    metrics: Arc<Metrics>,
    /// Sync messages received per document on this connection.
    rondas: HashMap<DocumentId, u64>,
}

impl ConnMetrics {
    /// A binary frame of `n` bytes arrived.
    pub fn entrada(&self, n: usize) {
        self.metrics
            .sync_bytes
            .get_or_create(&DirectionLabels { direction: "in" })
            .inc_by(n as u64);
    }

    /// A frame of `n` bytes is being sent; `sync` when it carries a `sync` message.
    pub fn salida(&self, n: usize, sync: bool, por: Envio) {
        self.metrics
            .sync_bytes
            .get_or_create(&DirectionLabels { direction: "out" })
            .inc_by(n as u64);
        if sync {
            let outcome = match por {
                Envio::Respuesta => "reply",
                Envio::Aviso => "push",
            };
            self.metrics
                .sync_messages
                .get_or_create(&SyncLabels {
                    direction: "sent",
                    outcome,
                })
                .inc();
        }
    }

    /// A `sync` message for `doc` was handled with this outcome.
    pub fn recibido(&mut self, doc: DocumentId, r: Recibido) {
        self.metrics
            .sync_messages
            .get_or_create(&SyncLabels {
                direction: "received",
                outcome: r.as_str(),
            })
            .inc();
        if r != Recibido::NoDisponible {
            *self.rondas.entry(doc).or_default() += 1;
        }
    }
}

impl Drop for ConnMetrics {
    fn drop(&mut self) {
        self.metrics.connections_open.dec();
        for n in self.rondas.values() {
            self.metrics.round_trips.observe(*n as f64);
        }
    }
}

/// Middleware of the public router: every request by route template (never the raw path, so
/// ids do not multiply the series) and status.
pub async fn registrar_http(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let start = Instant::now();
    let resp = next.run(req).await;
    state
        .metrics
        .http_duration
        .get_or_create(&RouteLabels {
            route: route.clone(),
        })
        .observe(start.elapsed().as_secs_f64());
    state
        .metrics
        .http_requests
        .get_or_create(&HttpLabels {
            route,
            status: resp.status().as_u16(),
        })
        .inc();
    resp
}

/// The metrics listener: `GET /metrics` and nothing else.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(state)
}

async fn scrape(State(state): State<AppState>) -> Response {
    match state.metrics.encode(&state) {
        Ok(body) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response(),
        Err(_) => {
            tracing::error!("metrics could not be encoded");
            axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_suffixes() {
        let m = Arc::new(Metrics::new());
        {
            let mut c = m.conexion();
            c.entrada(10);
            c.salida(7, true, Envio::Respuesta);
            c.recibido(DocumentId::from_bytes([1; 16]), Recibido::Aplicado);
            c.recibido(DocumentId::from_bytes([1; 16]), Recibido::Aplicado);
        }
        m.auth_failure(&AuthError::Revoked);
        let mut out = String::new();
        encode_registry(&mut out, &m.registry).expect("encode");
        for needle in [
            "bitacora_sync_messages_total{direction=\"received\",outcome=\"applied\"} 2",
            "bitacora_sync_messages_total{direction=\"sent\",outcome=\"reply\"} 1",
            "bitacora_sync_bytes_total{direction=\"in\"} 10",
            "bitacora_sync_bytes_total{direction=\"out\"} 7",
            "bitacora_sync_round_trips_count 1",
            "bitacora_sync_round_trips_sum 2.0",
            "bitacora_connections_open 0",
            "bitacora_connections_total 1",
            "bitacora_auth_failures_total{reason=\"revoked\"} 1",
        ] {
            assert!(out.contains(needle), "{needle} not in\n{out}");
        }
    }
}
