//! The dashboard's HTML: server-rendered pages (askama templates in server/templates), usable
//! without JavaScript, charts drawn as SVG here. Sign-in exchanges a token for a session cookie.
//!
//! - `GET /entrar`, `POST /entrar`: sign-in with a token (supervisors, ATPs, directors, staff).
//! - `POST /salir`: sign-out (needs the session's CSRF token).
//! - `GET /zonas/{clave}`: the zone page. `GET /escuelas/{cct}`: a school's page.
//!
//! CSRF: the cookie is `HttpOnly; SameSite=Lax` (never sent on another site's POST), sign-in
//! refuses a cross-origin `Origin`/`Referer`, and sign-out needs the session's own token. Pages
//! carry a restrictive Content-Security-Policy (no scripts at all) and are never cached.

use askama::Template;
use axum::Form;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use bitacora_core::catalogo::Catalogo;
use bitacora_core::model::escuela::{CAMPOS_CONCENTRADO, Escuela};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::api::{CicloQuery, cargar_escuela, cargar_zona};
use super::*;
use crate::AppState;
use crate::auth::{Principal, Rol, ve_zona};
use crate::db::SesionWeb;
use crate::http::ApiError;

pub const COOKIE: &str = "bitacora_sesion";
/// A dashboard session lasts at most this long (and never past its token's expiry).
pub const DURACION_SESION: i64 = 12 * 3600;

fn hash_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn aleatorio() -> String {
    let b: [u8; 32] = rand::random();
    b.iter().map(|b| format!("{b:02x}")).collect()
}

fn cookie_de(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The principal of the request's session cookie, if it names a live session.
pub async fn principal_de_cookie(
    headers: &HeaderMap,
    state: &AppState,
) -> Result<Option<(Principal, SesionWeb)>, ApiError> {
    let Some(id) = cookie_de(headers) else {
        return Ok(None);
    };
    let db = state.hub.db();
    let Some(s) = db.sesion_web(&hash_hex(&id), crate::db::now()).await? else {
        return Ok(None);
    };
    // A session's requests count against its token's rate, like the token's own requests.
    state.limites().solicitud(&s.jti)?;
    let Some(u) = db.usuario(&s.usuario).await? else {
        return Ok(None);
    };
    match Principal::de_usuario(db, &u).await {
        Ok(p) => Ok(Some((p, s))),
        Err(_) => Ok(None),
    }
}

/// A signed-in dashboard user; pages without one redirect to the sign-in.
pub struct Usuario {
    pub principal: Principal,
    pub csrf: String,
}

pub enum SinSesion {
    Entrar(String),
    Error(ApiError),
}

impl IntoResponse for SinSesion {
    fn into_response(self) -> Response {
        match self {
            SinSesion::Entrar(siguiente) => {
                Redirect::to(&format!("/entrar?siguiente={}", url_escape(&siguiente)))
                    .into_response()
            }
            SinSesion::Error(e) => pagina_error(e),
        }
    }
}

impl FromRequestParts<AppState> for Usuario {
    type Rejection = SinSesion;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match principal_de_cookie(&parts.headers, state).await {
            Ok(Some((principal, s))) => Ok(Usuario {
                principal,
                csrf: s.csrf,
            }),
            Ok(None) => Err(SinSesion::Entrar(
                parts
                    .uri
                    .path_and_query()
                    .map(|p| p.to_string())
                    .unwrap_or_else(|| "/".into()),
            )),
            Err(e) => Err(SinSesion::Error(e)),
        }
    }
}

fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An HTML response with the dashboard's security headers.
fn html(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn render(status: StatusCode, t: &impl Template) -> Response {
    match t.render() {
        Ok(body) => html(status, body),
        Err(e) => {
            tracing::error!(error = %e, "template failed");
            html(
                StatusCode::INTERNAL_SERVER_ERROR,
                "<!doctype html><title>Error</title><p>Error interno.".into(),
            )
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct PaginaError {
    titulo: String,
    mensaje: String,
}

pub fn pagina_error(e: ApiError) -> Response {
    let (status, titulo) = match &e {
        ApiError::NotFound => (StatusCode::NOT_FOUND, "No encontrado"),
        ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "Solicitud inválida"),
        ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "No autorizado"),
        ApiError::Conflict(_) => (StatusCode::CONFLICT, "Conflicto"),
        ApiError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "No disponible"),
        ApiError::TooManyRequests { .. } => {
            (StatusCode::TOO_MANY_REQUESTS, "Demasiadas solicitudes")
        }
        ApiError::Internal(d) => {
            tracing::error!(detail = %d, "internal error");
            (StatusCode::INTERNAL_SERVER_ERROR, "Error interno")
        }
    };
    let mensaje = match &e {
        ApiError::NotFound => "La página no existe o su cuenta no tiene acceso a ella.".to_string(),
        ApiError::Internal(_) => "Ocurrió un error en el servidor; intente más tarde.".to_string(),
        other => other.to_string(),
    };
    render(
        status,
        &PaginaError {
            titulo: titulo.into(),
            mensaje,
        },
    )
}

/// Where a user lands after signing in.
fn inicio(p: &Principal) -> Option<String> {
    match p.rol {
        Rol::Supervisor | Rol::Atp | Rol::Director => {
            p.zona.as_ref().map(|z| format!("/zonas/{z}"))
        }
        Rol::Docente => p.cct.as_ref().map(|c| format!("/escuelas/{c}")),
        Rol::Admin => None,
    }
}

/// A local path to go back to after signing in (never another site).
fn siguiente_seguro(s: Option<&str>) -> Option<String> {
    let s = s?.trim();
    (s.starts_with('/') && !s.starts_with("//") && !s.contains('\\') && s.len() < 512)
        .then(|| s.to_string())
}

/// Whether a form post comes from this same site (by `Origin`, else `Referer`).
fn mismo_origen(h: &HeaderMap) -> bool {
    let Some(host) = h.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let origen = h
        .get(header::ORIGIN)
        .or_else(|| h.get(header::REFERER))
        .and_then(|v| v.to_str().ok());
    match origen {
        None => true, // not a browser cross-site form: those always send one of them
        Some(o) => {
            let sin_esquema = o
                .strip_prefix("https://")
                .or_else(|| o.strip_prefix("http://"))
                .unwrap_or("");
            sin_esquema.split('/').next() == Some(host)
        }
    }
}

#[derive(Template)]
#[template(path = "entrar.html")]
struct PaginaEntrar {
    error: Option<String>,
    siguiente: String,
}

#[derive(Deserialize)]
pub struct SiguienteQuery {
    siguiente: Option<String>,
}

pub async fn raiz(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match principal_de_cookie(&headers, &state).await {
        Ok(Some((p, _))) => match inicio(&p) {
            Some(u) => Redirect::to(&u).into_response(),
            None => pagina_error(ApiError::NotFound),
        },
        Ok(None) => Redirect::to("/entrar").into_response(),
        Err(e) => pagina_error(e),
    }
}

pub async fn entrar_form(Query(q): Query<SiguienteQuery>) -> Response {
    render(
        StatusCode::OK,
        &PaginaEntrar {
            error: None,
            siguiente: siguiente_seguro(q.siguiente.as_deref()).unwrap_or_default(),
        },
    )
}

#[derive(Deserialize)]
pub struct EntrarForm {
    token: String,
    #[serde(default)]
    siguiente: String,
}

pub async fn entrar(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<EntrarForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let rechazo = |status: StatusCode, msg: &str, siguiente: String| {
        render(
            status,
            &PaginaEntrar {
                error: Some(msg.to_string()),
                siguiente,
            },
        )
    };
    if !mismo_origen(&headers) {
        return rechazo(
            StatusCode::FORBIDDEN,
            "El formulario no vino de este sitio; abra la página de entrada y vuelva a intentar.",
            String::new(),
        );
    }
    let Ok(Form(f)) = form else {
        return rechazo(
            StatusCode::BAD_REQUEST,
            "Escriba su token de acceso.",
            String::new(),
        );
    };
    let siguiente = siguiente_seguro(Some(&f.siguiente)).unwrap_or_default();
    let token = f.token.trim();
    if token.is_empty() || token.len() > 8192 {
        return rechazo(
            StatusCode::BAD_REQUEST,
            "Escriba su token de acceso.",
            siguiente,
        );
    }
    let db = state.hub.db();
    let p = match state.keys.authenticate(db, token).await {
        Ok(p) => p,
        Err(e) => {
            state.metrics.auth_failure(&e);
            let detalle = format!("tablero: {e}");
            let _ = db
                .audit(&crate::db::Auditoria {
                    usuario: "-",
                    documento: "-",
                    accion: "autenticacion",
                    resultado: "denegada",
                    detalle: &detalle,
                })
                .await;
            return rechazo(
                StatusCode::UNAUTHORIZED,
                "El token no es válido, venció o fue revocado. Pida uno nuevo a la supervisión.",
                siguiente,
            );
        }
    };
    let Some(destino) = inicio(&p) else {
        return rechazo(
            StatusCode::FORBIDDEN,
            "Esta cuenta no tiene tablero.",
            siguiente,
        );
    };
    let Ok(claims) = state.keys.verify(token) else {
        return pagina_error(ApiError::Unauthorized);
    };
    let ahora = crate::db::now();
    let expira = (ahora + DURACION_SESION).min(claims.exp);
    let id = aleatorio();
    let sesion = SesionWeb {
        usuario: p.usuario.clone(),
        jti: claims.jti.clone(),
        csrf: aleatorio(),
        expira,
    };
    if let Err(e) = db.crear_sesion_web(&hash_hex(&id), &sesion, ahora).await {
        return pagina_error(e.into());
    }
    let _ = db
        .audit(&crate::db::Auditoria {
            usuario: &p.usuario,
            documento: "-",
            accion: "tablero_entrada",
            resultado: "aceptada",
            detalle: "",
        })
        .await;
    let seguro = headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes() == b"https");
    let cookie = format!(
        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{}",
        (expira - ahora).max(0),
        if seguro { "; Secure" } else { "" }
    );
    let destino = if siguiente.is_empty() {
        destino
    } else {
        siguiente
    };
    let mut r = Redirect::to(&destino).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

#[derive(Deserialize)]
pub struct SalirForm {
    #[serde(default)]
    csrf: String,
}

pub async fn salir(
    State(state): State<AppState>,
    u: Usuario,
    headers: HeaderMap,
    form: Result<Form<SalirForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let csrf = form.map(|f| f.0.csrf).unwrap_or_default();
    let igual = csrf.len() == u.csrf.len()
        && csrf
            .bytes()
            .zip(u.csrf.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if !igual || !mismo_origen(&headers) {
        return pagina_error(ApiError::BadRequest(
            "La solicitud para salir no es válida; recargue la página.".into(),
        ));
    }
    if let Some(id) = cookie_de(&headers) {
        let _ = state
            .hub
            .db()
            .borrar_sesion_web(&hash_hex(&id), crate::db::now())
            .await;
    }
    let mut r = Redirect::to("/entrar").into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("bitacora_sesion=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"),
    );
    r
}

// ---------------------------------------------------------------------------------------------
// The zone page.

/// One horizontal bar of an SVG chart.
pub struct Barra {
    pub etiqueta: String,
    pub valor: String,
    pub y: u32,
    pub ancho: u32,
}

pub struct Grafica {
    pub barras: Vec<Barra>,
    pub alto: u32,
    pub escala: String,
}

const ANCHO_BARRAS: f64 = 300.0;

/// The "situación actual" chart of seed 002 for the zone: one bar per count, its percentage of
/// the students of the groups that recorded it.
pub fn grafica_situacion(v: &[IndicadorZona]) -> Grafica {
    let max = v
        .iter()
        .filter_map(|i| i.cifra.porcentaje)
        .fold(10.0_f64, f64::max);
    let tope = (max / 10.0).ceil() * 10.0;
    let barras = v
        .iter()
        .enumerate()
        .map(|(i, ind)| Barra {
            etiqueta: ind.nombre.clone(),
            valor: match (ind.cifra.alumnos, ind.cifra.porcentaje) {
                (Conteo::Suprimido(_), _) => "<5 alumnos".into(),
                (_, None) => "sin registro".into(),
                (_, Some(p)) => format!("{} %", decimal(p)),
            },
            y: 6 + i as u32 * 26,
            ancho: ind
                .cifra
                .porcentaje
                .map(|p| (p / tope * ANCHO_BARRAS).round() as u32)
                .unwrap_or(0),
        })
        .collect::<Vec<_>>();
    Grafica {
        alto: 12 + barras.len() as u32 * 26,
        barras,
        escala: format!("{} %", decimal(tope)),
    }
}

pub struct FilaZona {
    pub cct: String,
    pub nombre: String,
    pub nivel: String,
    pub sync: String,
    pub sync_estado: String,
    /// Its figures do not include every change the server holds yet.
    pub en_actualizacion: bool,
    pub pemc: String,
    pub metas: [u64; 4],
    pub acciones: [u64; 4],
    pub pendientes: u64,
    pub vencidos: u64,
    pub sesiones: String,
    pub apoyo: Vec<(String, String)>,
    pub conflictos: u64,
    pub con_documento: bool,
}

fn fila_zona(e: &EscuelaZona) -> FilaZona {
    let a = |k: &str| e.acciones_por_estado.get(k).copied().unwrap_or(0);
    FilaZona {
        cct: e.cct.clone(),
        nombre: e.nombre.clone(),
        nivel: e.nivel.clone(),
        sync: e.sincronizacion.texto(),
        sync_estado: e.sincronizacion.estado.clone(),
        en_actualizacion: e.cifras_en_actualizacion,
        pemc: e
            .pemc_porcentaje
            .map(|p| format!("{p} %"))
            .unwrap_or_else(|| "—".into()),
        metas: por_logro(&e.metas_por_logro),
        acciones: [
            a("pendiente"),
            a("en_proceso"),
            a("realizada"),
            a("cancelada"),
        ],
        pendientes: e.acuerdos_pendientes,
        vencidos: e.acuerdos_vencidos,
        sesiones: format!(
            "{}/{}",
            e.sesiones.ordinaria, e.sesiones.ordinaria_esperadas
        ),
        apoyo: CAMPOS_TABLA
            .iter()
            .map(|c| {
                (
                    c.to_string(),
                    e.apoyo
                        .get(*c)
                        .map(|x| x.texto())
                        .unwrap_or_else(|| "—".into()),
                )
            })
            .collect(),
        conflictos: e.conflictos,
        con_documento: e.con_documento,
    }
}

#[derive(Template)]
#[template(path = "zona.html")]
struct PaginaZona<'a> {
    r: &'a ResumenZona,
    filas: Vec<FilaZona>,
    grafica: Grafica,
    ciclos: Vec<String>,
    usuario: String,
    csrf: String,
    t: TotalesVista,
}

struct TotalesVista {
    pemc: String,
    metas: [u64; 4],
    alumnos: String,
}

pub async fn pagina_zona(
    State(state): State<AppState>,
    u: Usuario,
    Path(clave): Path<String>,
    Query(q): Query<CicloQuery>,
) -> Response {
    let r = match cargar_zona(&state, &u.principal, &clave, &q).await {
        Ok(r) => r,
        Err(e) => return pagina_error(e),
    };
    let ciclos = state
        .hub
        .db()
        .ciclos_de_zona(&r.zona)
        .await
        .unwrap_or_default();
    let pagina = PaginaZona {
        filas: r.escuelas.iter().map(fila_zona).collect(),
        grafica: grafica_situacion(&r.situacion),
        ciclos,
        usuario: u.principal.usuario.clone(),
        csrf: u.csrf,
        t: TotalesVista {
            pemc: r
                .totales
                .pemc_promedio
                .map(|p| format!("{p} %"))
                .unwrap_or_else(|| "—".into()),
            metas: por_logro(&r.totales.metas_por_logro),
            alumnos: r.totales.alumnos.to_string(),
        },
        r: &r,
    };
    render(StatusCode::OK, &pagina)
}

// ---------------------------------------------------------------------------------------------
// The school page.

pub struct MetaVista {
    pub descripcion: String,
    pub indicador: String,
    pub cuanto: String,
    pub fecha_limite: String,
    pub logro: String,
    pub logro_clave: String,
    pub evidencia: String,
    pub acciones: Vec<AccionVista>,
}

pub struct AccionVista {
    pub descripcion: String,
    pub responsables: String,
    pub estado: String,
    pub periodo: String,
}

pub struct ObjetivoVista {
    pub texto: String,
    pub para_que: String,
    pub ambitos: String,
    pub metas: Vec<MetaVista>,
}

pub struct DiagnosticoVista {
    pub ambito: String,
    pub prioridad: String,
    pub texto: String,
}

pub struct SesionVista {
    pub fase: String,
    pub numero: String,
    pub fecha: String,
    pub proposito: String,
    pub productos: String,
}

pub struct CorteVista {
    pub corte: String,
    pub filas: Vec<(String, Vec<String>)>,
}

/// Metas by logro in the order the pages show them: cumplida, avance significativo, escaso o
/// nulo avance, sin registro.
fn por_logro(m: &std::collections::BTreeMap<String, u64>) -> [u64; 4] {
    bitacora_core::proyeccion::NIVELES_LOGRO.map(|k| m.get(k).copied().unwrap_or(0))
}

/// A status key as people read it: `en_proceso` → "En proceso".
pub fn etiqueta(s: &str) -> String {
    let t = match s {
        "escaso_o_nulo" => "escaso o nulo avance",
        "diagnostico" => "diagnóstico",
        other => other,
    }
    .replace('_', " ");
    let mut c = t.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

fn numero(v: Option<f64>) -> String {
    v.map(decimal).unwrap_or_else(|| "—".into())
}

fn arbol(e: &Escuela) -> (Vec<DiagnosticoVista>, Vec<ObjetivoVista>) {
    let cat = Catalogo::por_version(&e.catalogo);
    let nombre = |k: &str| cat.map(|c| c.nombre(k)).unwrap_or_else(|| k.to_string());
    let mut diag: Vec<_> = e.diagnostico.iter().collect();
    diag.sort_by_key(|d| (d.prioridad.unwrap_or(u64::MAX), d.ambito.clone()));
    let diagnostico = diag
        .into_iter()
        .filter(|d| !d.texto.trim().is_empty() || d.prioridad.is_some())
        .map(|d| DiagnosticoVista {
            ambito: nombre(&d.ambito),
            prioridad: d
                .prioridad
                .map(|p| p.to_string())
                .unwrap_or_else(|| "—".into()),
            texto: d.texto.clone(),
        })
        .collect();
    let objetivos = e
        .objetivos
        .iter()
        .filter(|o| !o.archivado)
        .map(|o| ObjetivoVista {
            texto: o.texto.clone(),
            para_que: o.para_que.clone(),
            ambitos: o
                .ambitos
                .iter()
                .map(|a| nombre(a))
                .collect::<Vec<_>>()
                .join("; "),
            metas: e
                .metas
                .iter()
                .filter(|m| !m.archivado && m.objetivo == o.id)
                .map(|m| {
                    let evidencia = e
                        .seguimiento
                        .iter()
                        .filter(|s| {
                            !s.archivado
                                && s.meta.as_deref() == Some(m.id.as_str())
                                && !s.evidencia.trim().is_empty()
                        })
                        .max_by_key(|s| (s.fecha.clone(), s.creado))
                        .map(|s| s.evidencia.clone())
                        .unwrap_or_default();
                    let logro = m.nivel_logro.as_deref().unwrap_or("sin_registro");
                    MetaVista {
                        descripcion: m.descripcion.clone(),
                        indicador: m.indicador.clone(),
                        cuanto: format!(
                            "{} → {} {}",
                            numero(m.linea_base),
                            numero(m.valor_meta),
                            m.unidad
                        ),
                        fecha_limite: m.fecha_limite.clone().unwrap_or_else(|| "—".into()),
                        logro: etiqueta(logro),
                        logro_clave: logro.to_string(),
                        evidencia,
                        acciones: e
                            .acciones
                            .iter()
                            .filter(|a| !a.archivado && a.meta == m.id)
                            .map(|a| AccionVista {
                                descripcion: a.descripcion.clone(),
                                responsables: a.responsables.join(", "),
                                estado: etiqueta(&a.estado),
                                periodo: format!(
                                    "{} a {}",
                                    a.inicio.as_deref().unwrap_or("—"),
                                    a.fin.as_deref().unwrap_or("—")
                                ),
                            })
                            .collect(),
                    }
                })
                .collect(),
        })
        .collect();
    (diagnostico, objetivos)
}

fn sesiones_vista(e: &Escuela) -> Vec<SesionVista> {
    let mut v: Vec<_> = e.sesiones.iter().filter(|s| !s.archivado).collect();
    v.sort_by_key(|s| (s.fecha.clone(), s.numero));
    v.into_iter()
        .map(|s| SesionVista {
            fase: etiqueta(&s.fase),
            numero: s.numero.map(|n| n.to_string()).unwrap_or_default(),
            fecha: s.fecha.clone().unwrap_or_else(|| "—".into()),
            proposito: s.proposito.clone(),
            productos: s.productos.clone(),
        })
        .collect()
}

fn concentrado_vista(e: &Escuela) -> Vec<CorteVista> {
    ["diagnostico", "intermedio", "cierre"]
        .iter()
        .filter_map(|corte| {
            let mut grupos: Vec<_> = e.concentrado.iter().filter(|g| g.corte == *corte).collect();
            if grupos.is_empty() {
                return None;
            }
            grupos.sort_by_key(|g| (g.grado, g.grupo.clone()));
            Some(CorteVista {
                corte: etiqueta(corte),
                filas: grupos
                    .iter()
                    .map(|g| {
                        (
                            format!("{}° {}", g.grado, g.grupo),
                            CAMPOS_CONCENTRADO
                                .iter()
                                .map(|(c, _)| {
                                    g.get(c)
                                        .map(|n| n.to_string())
                                        .unwrap_or_else(|| "—".into())
                                })
                                .collect(),
                        )
                    })
                    .collect(),
            })
        })
        .collect()
}

#[derive(Template)]
#[template(path = "escuela.html")]
struct PaginaEscuela<'a> {
    r: &'a ResumenEscuela,
    ver_zona: bool,
    usuario: String,
    csrf: String,
    diagnostico: Vec<DiagnosticoVista>,
    objetivos: Vec<ObjetivoVista>,
    sesiones: Vec<SesionVista>,
    concentrado: Vec<CorteVista>,
    columnas: Vec<&'static str>,
    pemc: String,
    metas: [u64; 4],
}

pub async fn pagina_escuela(
    State(state): State<AppState>,
    u: Usuario,
    Path(cct): Path<String>,
    Query(q): Query<CicloQuery>,
) -> Response {
    let r = match cargar_escuela(&state, &u.principal, &cct, &q).await {
        Ok(r) => r,
        Err(e) => return pagina_error(e),
    };
    let e: Escuela = match serde_json::from_value(r.documento.clone()) {
        Ok(e) => e,
        Err(err) => return pagina_error(ApiError::Internal(err.to_string())),
    };
    let (diagnostico, objetivos) = arbol(&e);
    let pagina = PaginaEscuela {
        ver_zona: ve_zona(&u.principal, &r.zona),
        usuario: u.principal.usuario.clone(),
        csrf: u.csrf,
        diagnostico,
        objetivos,
        sesiones: sesiones_vista(&e),
        concentrado: concentrado_vista(&e),
        columnas: CAMPOS_CONCENTRADO.iter().map(|c| c.1).collect(),
        pemc: format!("{} %", r.pemc.porcentaje),
        metas: por_logro(&r.metas_por_logro),
        r: &r,
    };
    render(StatusCode::OK, &pagina)
}
