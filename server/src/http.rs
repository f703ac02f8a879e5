//! The HTTP surface: the only module that knows status codes.
//!
//! - `GET /healthz`: the process is up.
//! - `GET /readyz`: the database answers.
//! - `GET /sync`: WebSocket upgrade to the automerge-repo protocol. The bearer token comes as
//!   `Authorization: Bearer …` or `?token=…` (browsers cannot set headers on a WebSocket).
//! - `GET /v1/documentos`: the documents the caller may sync.
//! - `POST /v1/actores`: enrols this device's automerge actor id to the caller.
//! - `POST /v1/paquetes`, `GET /v1/paquetes/{cct}`: a school's USB bundle uploaded, and its
//!   return bundle downloaded (the same rules as `admin bundle importar|exportar`).
//! - The CTZ dashboard's pages, JSON API, CSV and OpenAPI document: [`crate::tablero`] (its
//!   handlers are part of this HTTP layer).

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::AppState;
use crate::auth::{Acceso, AuthError, Principal, acceso};
use crate::db::{Auditoria, DbError};
use crate::hub::HubError;
use crate::limites::Exceso;
use crate::tablero::{api, web};

/// Every error an HTTP handler can return; mapped to a status and a JSON body here only.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("no autorizado")]
    Unauthorized,
    #[error("no encontrado")]
    NotFound,
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    #[error("servicio no disponible")]
    Unavailable,
    /// A rate or connection limit of the caller's token (`config.limits`): 429, with
    /// `Retry-After`.
    #[error("{mensaje}")]
    TooManyRequests {
        mensaje: String,
        retry_after_secs: u64,
    },
    #[error("error interno")]
    Internal(String),
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Db(d) => ApiError::Internal(d.to_string()),
            AuthError::Config(c) => ApiError::Internal(c),
            _ => ApiError::Unauthorized,
        }
    }
}

impl From<Exceso> for ApiError {
    fn from(e: Exceso) -> Self {
        match e {
            Exceso::Conexiones { max } => ApiError::TooManyRequests {
                mensaje: format!(
                    "este token ya tiene {max} conexiones abiertas con el servidor; cierre alguna \
                     y vuelva a intentar"
                ),
                retry_after_secs: 5,
            },
            Exceso::Token { espera, .. } => {
                let s = espera.as_secs_f64().ceil().max(1.0) as u64;
                ApiError::TooManyRequests {
                    mensaje: format!(
                        "demasiadas solicitudes con este token; espere {s} s y vuelva a intentar"
                    ),
                    retry_after_secs: s,
                }
            }
            Exceso::Conexion { .. } => ApiError::TooManyRequests {
                mensaje: "demasiados mensajes en esta conexión; vuelva a intentar".into(),
                retry_after_secs: 1,
            },
        }
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl From<HubError> for ApiError {
    fn from(e: HubError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "no_autorizado"),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "no_encontrado"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "solicitud_invalida"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflicto"),
            ApiError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "no_disponible"),
            ApiError::TooManyRequests { .. } => {
                (StatusCode::TOO_MANY_REQUESTS, "demasiadas_solicitudes")
            }
            ApiError::Internal(detail) => {
                // Details go to the log, never to the client.
                tracing::error!(%detail, "internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, "interno")
            }
        };
        let mut resp = (
            status,
            Json(json!({ "error": code, "mensaje": self.to_string() })),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        if let ApiError::TooManyRequests {
            retry_after_secs, ..
        } = self
        {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, retry_after_secs.into());
        }
        resp
    }
}

/// The authenticated caller, from `Authorization: Bearer` or `?token=`.
pub struct Auth(pub Principal);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Auth(
            Autenticado::from_request_parts(parts, state)
                .await?
                .principal,
        ))
    }
}

/// [`Auth`] with the token's id (`jti`), which the per-token limits count by. Every request
/// authenticated here counts against its token's rate (`limits.token_requests_per_sec`):
/// checked once the signature is verified, before the database is asked about the token.
pub struct Autenticado {
    pub principal: Principal,
    pub jti: String,
}

/// Logs and audits a refused token.
async fn rechazar(state: &AppState, e: AuthError) -> ApiError {
    tracing::info!(error = %e, "authentication refused");
    state.metrics.auth_failure(&e);
    let detalle = e.to_string();
    let _ = state
        .hub
        .db()
        .audit(&Auditoria {
            usuario: "-",
            documento: "-",
            accion: "autenticacion",
            resultado: "denegada",
            detalle: &detalle,
        })
        .await;
    e.into()
}

impl FromRequestParts<AppState> for Autenticado {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let from_header = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(|s| s.trim().to_string());
        let token = match from_header {
            Some(t) => t,
            None => {
                #[derive(Deserialize)]
                struct Q {
                    token: Option<String>,
                }
                let q: Query<Q> =
                    Query::try_from_uri(&parts.uri).map_err(|_| ApiError::Unauthorized)?;
                let Some(t) = q.0.token else {
                    state.metrics.auth_failure_reason("missing");
                    return Err(ApiError::Unauthorized);
                };
                t
            }
        };
        let claims = match state.keys.verify(&token) {
            Ok(c) => c,
            Err(e) => return Err(rechazar(state, e).await),
        };
        state.limites().solicitud(&claims.jti)?;
        match state
            .keys
            .authenticate_claims(state.hub.db(), &claims)
            .await
        {
            Ok(principal) => Ok(Autenticado {
                principal,
                jti: claims.jti,
            }),
            Err(e) => Err(rechazar(state, e).await),
        }
    }
}

/// Serves `app` on `listener` until `stop` turns true, then lets every HTTP connection finish
/// the request it is handling (for at most [`DRENAJE`]) and returns.
///
/// HTTP/1.1 with upgrades (the WebSocket of `GET /sync`), through hyper directly rather than
/// `axum::serve`, because axum's gives hyper no timer: a client that connects and sends nothing,
/// or half a request head, then stalls (slow loris) would hold its socket and task forever, and
/// would also hold up shutdown. Here a request head (the first one, and each next one on a
/// kept-alive connection) must arrive whole within `plazo_cabeceras`
/// (`limits.http_header_timeout_secs`; 0 disables it), else the connection is closed. Upgraded
/// connections are the connection loop's business (`connection.rs`: keepalive, idle timeout).
pub async fn servir(
    listener: tokio::net::TcpListener,
    app: Router,
    mut stop: tokio::sync::watch::Receiver<bool>,
    plazo_cabeceras: std::time::Duration,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;

    // Every connection task holds a sender; all are gone when the last connection is.
    let (vivas_tx, mut vivas_rx) = tokio::sync::mpsc::channel::<()>(1);
    loop {
        let tcp = tokio::select! {
            r = listener.accept() => match r {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    use std::io::ErrorKind::*;
                    if !matches!(e.kind(), ConnectionAborted | ConnectionReset | ConnectionRefused) {
                        // Out of file descriptors, say: the listener is fine; back off as
                        // axum::serve does instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    }
                    continue;
                }
            },
            // (`wait_for`'s guard is not `Send`: dropped inside.)
            () = async { let _ = stop.wait_for(|s| *s).await; } => break,
        };
        let _ = tcp.set_nodelay(true);
        let svc = TowerToHyperService::new(app.clone());
        let mut stop = stop.clone();
        let viva = vivas_tx.clone();
        tokio::spawn(async move {
            let _viva = viva;
            let mut b = hyper::server::conn::http1::Builder::new();
            b.timer(TokioTimer::new());
            if !plazo_cabeceras.is_zero() {
                b.header_read_timeout(plazo_cabeceras);
            }
            let conn = b.serve_connection(TokioIo::new(tcp), svc).with_upgrades();
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "HTTP connection ended with an error");
                    }
                    return;
                }
                () = async { let _ = stop.wait_for(|s| *s).await; } => {
                    conn.as_mut().graceful_shutdown()
                }
            }
            let _ = conn.await;
        });
    }
    drop(vivas_tx);
    if tokio::time::timeout(DRENAJE, vivas_rx.recv())
        .await
        .is_err()
    {
        tracing::warn!("shutting down with HTTP requests still in progress");
    }
}

/// How long shutdown waits for HTTP requests in progress (a slow upload, say).
pub const DRENAJE: std::time::Duration = std::time::Duration::from_secs(30);

pub fn router(state: AppState) -> Router {
    let body_limit = state.config.limits.max_body_bytes;
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/sync", get(sync))
        .route("/v1/documentos", get(documentos))
        .route("/v1/actores", post(enrolar_actor))
        // The CTZ dashboard (crate::tablero): HTML pages, JSON API, CSV, OpenAPI.
        .route("/", get(web::raiz))
        .route("/entrar", get(web::entrar_form).post(web::entrar))
        .route("/salir", post(web::salir))
        .route("/zonas/{clave}", get(web::pagina_zona))
        .route("/escuelas/{cct}", get(web::pagina_escuela))
        .route("/v1/zonas/{clave}/resumen", get(api::resumen_zona_json))
        .route("/v1/zonas/{clave}/escuelas.csv", get(api::escuelas_csv))
        .route("/v1/escuelas/{cct}/resumen", get(api::resumen_escuela_json))
        .route("/v1/openapi.json", get(api::openapi))
        .layer(DefaultBodyLimit::max(body_limit))
        // Bundles are bigger than API bodies: they get the protocol's message limit.
        .route(
            "/v1/paquetes",
            post(subir_paquete).layer(DefaultBodyLimit::max(state.config.limits.max_message_bytes)),
        )
        .route("/v1/paquetes/{cct}", get(bajar_paquete))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::metrics::registrar_http,
        ))
        .with_state(state)
}

async fn readyz(State(state): State<AppState>) -> Result<&'static str, ApiError> {
    state
        .hub
        .db()
        .ping()
        .await
        .map_err(|_| ApiError::Unavailable)?;
    Ok("ok")
}

/// Read buffer of each sync WebSocket.
const READ_BUFFER: usize = 16 * 1024;

async fn sync(
    State(state): State<AppState>,
    Autenticado { principal, jti }: Autenticado,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    // Counted from here until the connection ends (or the upgrade fails).
    let limite = state.limites().abrir(&jti)?;
    // Frames past the protocol limit are answered with `error` by the connection loop; past
    // twice the limit the WebSocket layer closes the socket before buffering more.
    let limit = state.config.limits.max_message_bytes.saturating_mul(2);
    let shutdown = state.shutdown_signal();
    let alive = state.alive_token();
    Ok(ws
        .max_message_size(limit)
        .max_frame_size(limit)
        // tungstenite's default read buffer (128 KiB) is allocated per connection up front: 210
        // devices connected at once held 38 MiB, 13 MiB with 16 KiB (docs/performance.md).
        // Frames larger than this are still read, in more pieces.
        .read_buffer_size(READ_BUFFER)
        .on_upgrade(move |socket| async move {
            crate::connection::run(socket, state, principal, limite, shutdown).await;
            drop(alive);
        }))
}

#[derive(Serialize)]
struct DocumentoVisible {
    id: String,
    url: String,
    tipo: &'static str,
    owner: String,
    ciclo: String,
    acceso: Acceso,
}

async fn documentos(
    State(state): State<AppState>,
    Auth(p): Auth,
) -> Result<Json<Vec<DocumentoVisible>>, ApiError> {
    let mut out = Vec::new();
    for info in state.hub.db().documents().await? {
        let Some(entry) = state.hub.entry(&info.id).await? else {
            continue;
        };
        let a = acceso(&p, &entry.info, entry.zona.as_deref());
        if a != Acceso::Ninguno {
            out.push(DocumentoVisible {
                id: info.id.to_string(),
                url: info.id.url(),
                tipo: info.kind.as_str(),
                owner: info.owner,
                ciclo: info.ciclo,
                acceso: a,
            });
        }
    }
    Ok(Json(out))
}

/// The caller's access to a school's document of any registered ciclo (the highest).
async fn acceso_a_escuela(state: &AppState, p: &Principal, cct: &str) -> Result<Acceso, ApiError> {
    let mut best = Acceso::Ninguno;
    for info in state.hub.db().documents().await? {
        if info.kind == bitacora_core::model::DocKind::Escuela && info.owner == cct {
            let Some(entry) = state.hub.entry(&info.id).await? else {
                continue;
            };
            best = best.max(acceso(p, &entry.info, entry.zona.as_deref()));
        }
    }
    Ok(best)
}

/// `POST /v1/paquetes`: a school's bundle, uploaded by someone who may write that school's
/// document (its staff, or its zone's supervisor). Same rules as `admin bundle importar`.
async fn subir_paquete(
    State(state): State<AppState>,
    Auth(p): Auth,
    body: axum::body::Bytes,
) -> Result<Json<Vec<crate::bundles::ImportadoServidor>>, ApiError> {
    let bundle = bitacora_core::bundle::Bundle::decode(&body)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let origen = bundle.header.origen.clone();
    if acceso_a_escuela(&state, &p, &origen).await? != Acceso::Escritura {
        // Like a missing document: do not reveal which schools exist.
        return Err(ApiError::NotFound);
    }
    let r = crate::bundles::importar(state.hub.db(), &body)
        .await
        .map_err(|e| match e {
            crate::admin::AdminError::Invalid(m) => ApiError::BadRequest(m),
            crate::admin::AdminError::Model(m) => ApiError::BadRequest(m.to_string()),
            other => ApiError::Internal(other.to_string()),
        })?;
    for d in &r {
        if let Ok(id) = bitacora_core::ids::DocumentId::parse(&d.documento) {
            state.hub.reload(&id).await?;
        }
    }
    Ok(Json(r))
}

/// `GET /v1/paquetes/{cct}`: the return bundle for a school (what it lacks since its last
/// bundle), for someone who may read that school's document.
async fn bajar_paquete(
    State(state): State<AppState>,
    Auth(p): Auth,
    axum::extract::Path(cct): axum::extract::Path<String>,
) -> Result<Response, ApiError> {
    let cct = cct.trim().to_ascii_uppercase();
    if acceso_a_escuela(&state, &p, &cct).await? == Acceso::Ninguno {
        return Err(ApiError::NotFound);
    }
    let b = crate::bundles::exportar(state.hub.db(), &cct)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream")],
        b.encode(),
    )
        .into_response())
}

#[derive(Deserialize)]
struct EnrolarActor {
    actor: String,
}

async fn enrolar_actor(
    State(state): State<AppState>,
    Auth(p): Auth,
    body: Result<Json<EnrolarActor>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Json(body) = body.map_err(|e| ApiError::BadRequest(format!("cuerpo inválido: {e}")))?;
    let hex = body.actor.trim().to_ascii_lowercase();
    let valid = !hex.is_empty()
        && hex.len() <= 64
        && hex.len() % 2 == 0
        && hex.bytes().all(|b| b.is_ascii_hexdigit());
    if !valid {
        return Err(ApiError::BadRequest(
            "«actor» debe ser el id de actor de automerge en hexadecimal (hasta 32 bytes)".into(),
        ));
    }
    let mut owner = state.hub.db().enrol_actor(&hex, &p.usuario).await?;
    // A device first seen in its school's USB bundle was enrolled to the school's bundle user;
    // when one of that school's staff logs in from it, the device becomes theirs.
    if let Some(cct) = &p.cct
        && owner == format!("paquete-{cct}")
        && state
            .hub
            .db()
            .reassign_actor(&hex, &owner, &p.usuario)
            .await?
    {
        owner = p.usuario.clone();
    }
    let ok = owner == p.usuario;
    let detalle = format!("actor {hex}");
    state
        .hub
        .db()
        .audit(&Auditoria {
            usuario: &p.usuario,
            documento: "-",
            accion: "registro_actor",
            resultado: if ok { "aceptado" } else { "rechazado" },
            detalle: &detalle,
        })
        .await?;
    if !ok {
        return Err(ApiError::Conflict(
            "ese actor ya está registrado a otro usuario".into(),
        ));
    }
    Ok(Json(json!({ "actor": hex, "usuario": p.usuario })))
}
