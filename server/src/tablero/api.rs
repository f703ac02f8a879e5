//! The dashboard's JSON API and CSV export, and their OpenAPI document.
//!
//! - `GET /v1/zonas/{clave}/resumen[?ciclo=AAAA-AAAA]`: [`ResumenZona`].
//! - `GET /v1/zonas/{clave}/escuelas.csv[?ciclo=…]`: the zone table as CSV.
//! - `GET /v1/escuelas/{cct}/resumen[?ciclo=…]`: [`ResumenEscuela`].
//! - `GET /v1/openapi.json`: this API's OpenAPI 3.1 document.
//!
//! Callers authenticate with `Authorization: Bearer <token>` or the dashboard's session cookie.
//! A zone or school the caller may not see answers 404, like one that does not exist.

use axum::Json;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use bitacora_core::ids::{CicloEscolar, Fecha};
use serde::Deserialize;
use utoipa::OpenApi;

use super::*;
use crate::AppState;
use crate::auth::{Principal, ve_escuela, ve_zona};
use crate::http::{ApiError, Auth};

/// `?ciclo=` of every dashboard request.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CicloQuery {
    /// Ciclo escolar `AAAA-AAAA`; by default the one containing today.
    pub ciclo: Option<String>,
}

/// The caller of the JSON API: a bearer token, or the dashboard's session cookie.
pub struct Lector(pub Principal);

impl FromRequestParts<AppState> for Lector {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if parts.headers.contains_key(header::AUTHORIZATION) {
            let Auth(p) = Auth::from_request_parts(parts, state).await?;
            return Ok(Lector(p));
        }
        match super::web::principal_de_cookie(&parts.headers, state).await? {
            Some((p, _)) => Ok(Lector(p)),
            None => Err(ApiError::Unauthorized),
        }
    }
}

/// Today and now, by the server's clock (the demo moves it).
pub fn hoy_y_ahora(state: &AppState) -> (Fecha, i64) {
    let ahora = state.reloj.ahora();
    let hoy = chrono::DateTime::from_timestamp(ahora, 0)
        .map(|d| d.with_timezone(&chrono::Local).date_naive())
        .unwrap_or_default();
    (Fecha::from_naive(hoy), ahora)
}

pub fn ciclo_de(q: &CicloQuery, hoy: Fecha) -> Result<CicloEscolar, ApiError> {
    match q.ciclo.as_deref() {
        None | Some("") => Ok(CicloEscolar::que_contiene(hoy)),
        Some(c) => CicloEscolar::parse(c).map_err(|e| ApiError::BadRequest(e.to_string())),
    }
}

/// The zone summary for a caller who may see it; 404 otherwise.
pub async fn cargar_zona(
    state: &AppState,
    p: &Principal,
    clave: &str,
    q: &CicloQuery,
) -> Result<ResumenZona, ApiError> {
    let clave = clave.trim().to_ascii_uppercase();
    if !ve_zona(p, &clave) {
        return Err(ApiError::NotFound);
    }
    let db = state.hub.db();
    let nombre = db.zona_nombre(&clave).await?.ok_or(ApiError::NotFound)?;
    let (hoy, ahora) = hoy_y_ahora(state);
    let ciclo = ciclo_de(q, hoy)?;
    let datos = db
        .datos_zona(&clave, &ciclo.to_string(), &hoy.to_string())
        .await?;
    Ok(resumen_zona(&clave, &nombre, ciclo, hoy, ahora, &datos))
}

/// A school's summary for a caller who may see it; 404 otherwise (or if it has no document
/// for the ciclo yet).
pub async fn cargar_escuela(
    state: &AppState,
    p: &Principal,
    cct: &str,
    q: &CicloQuery,
) -> Result<ResumenEscuela, ApiError> {
    let cct = cct.trim().to_ascii_uppercase();
    let db = state.hub.db();
    let Some((nombre, zona)) = db.escuela(&cct).await? else {
        return Err(ApiError::NotFound);
    };
    if !ve_escuela(p, &cct, &zona) {
        return Err(ApiError::NotFound);
    }
    let (hoy, ahora) = hoy_y_ahora(state);
    let ciclo = ciclo_de(q, hoy)?;
    let parsed = bitacora_core::ids::Cct::parse(&cct).map_err(|_| ApiError::NotFound)?;
    let doc = bitacora_core::ids::DocumentId::escuela(&parsed, ciclo).to_string();
    let Some(proy) = db.proyeccion(&doc).await? else {
        return Err(ApiError::NotFound);
    };
    let (ultima_sync, _) = db.contacto(&doc).await?;
    let calculado = db.proyeccion_calculado(&doc).await?;
    let mut r = resumen_escuela(
        &proy,
        &nombre,
        &zona,
        ciclo,
        hoy,
        ahora,
        ultima_sync,
        calculado,
    );
    r.en_actualizacion = db
        .proyeccion_atraso(&doc)
        .await?
        .map(|a| super::EnActualizacion::de(&a, crate::db::now()));
    Ok(r)
}

#[utoipa::path(
    get,
    path = "/v1/zonas/{clave}/resumen",
    params(("clave" = String, Path, description = "Clave de la zona"), CicloQuery),
    responses(
        (status = 200, description = "Resumen de la zona", body = ResumenZona),
        (status = 400, description = "Ciclo inválido"),
        (status = 401, description = "Sin token o sesión"),
        (status = 404, description = "Zona inexistente o no visible para quien pregunta"),
    ),
    security(("bearer" = []), ("sesion" = []))
)]
pub async fn resumen_zona_json(
    State(state): State<AppState>,
    Lector(p): Lector,
    Path(clave): Path<String>,
    Query(q): Query<CicloQuery>,
) -> Result<Json<ResumenZona>, ApiError> {
    Ok(Json(cargar_zona(&state, &p, &clave, &q).await?))
}

#[utoipa::path(
    get,
    path = "/v1/escuelas/{cct}/resumen",
    params(("cct" = String, Path, description = "CCT de la escuela"), CicloQuery),
    responses(
        (status = 200, description = "Resumen de la escuela", body = ResumenEscuela),
        (status = 400, description = "Ciclo inválido"),
        (status = 401, description = "Sin token o sesión"),
        (status = 404, description = "Escuela inexistente, sin documento del ciclo o no visible"),
    ),
    security(("bearer" = []), ("sesion" = []))
)]
pub async fn resumen_escuela_json(
    State(state): State<AppState>,
    Lector(p): Lector,
    Path(cct): Path<String>,
    Query(q): Query<CicloQuery>,
) -> Result<Json<ResumenEscuela>, ApiError> {
    Ok(Json(cargar_escuela(&state, &p, &cct, &q).await?))
}

/// The CSV's columns, in order.
pub fn columnas_csv() -> Vec<String> {
    let mut c: Vec<String> = [
        "cct",
        "nombre",
        "nivel",
        "ultima_sincronizacion",
        "dias_sin_sincronizar",
        "estado_sincronizacion",
        "pemc_porcentaje",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for n in &bitacora_core::proyeccion::NIVELES_LOGRO {
        c.push(format!("metas_{n}"));
    }
    for e in ESTADOS_ACCION {
        c.push(format!("acciones_{e}"));
    }
    c.extend(
        [
            "acuerdos_pendientes",
            "acuerdos_vencidos",
            "sesiones_intensiva",
            "sesiones_ordinaria",
            "sesiones_ordinaria_esperadas",
            "sesiones_extraordinaria",
            "corte",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    for campo in CAMPOS_TABLA {
        c.push(format!("{campo}_alumnos"));
        c.push(format!("{campo}_porcentaje"));
    }
    c.push("conflictos".into());
    c
}

pub const ESTADOS_ACCION: &[&str] = &["pendiente", "en_proceso", "realizada", "cancelada"];

/// The zone table as CSV (UTF-8, comma-separated, one header row). Student counts below 5 are
/// written `<5` with an empty percentage, as on the page.
pub fn csv_zona(r: &ResumenZona) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(columnas_csv())?;
    for e in &r.escuelas {
        let mut f: Vec<String> = vec![
            e.cct.clone(),
            e.nombre.clone(),
            e.nivel.clone(),
            e.sincronizacion.ultima.clone().unwrap_or_default(),
            e.sincronizacion
                .dias
                .map(|d| d.to_string())
                .unwrap_or_default(),
            e.sincronizacion.estado.clone(),
            e.pemc_porcentaje.map(|p| p.to_string()).unwrap_or_default(),
        ];
        for n in &bitacora_core::proyeccion::NIVELES_LOGRO {
            f.push(e.metas_por_logro.get(*n).copied().unwrap_or(0).to_string());
        }
        for s in ESTADOS_ACCION {
            f.push(
                e.acciones_por_estado
                    .get(*s)
                    .copied()
                    .unwrap_or(0)
                    .to_string(),
            );
        }
        f.extend([
            e.acuerdos_pendientes.to_string(),
            e.acuerdos_vencidos.to_string(),
            e.sesiones.intensiva.to_string(),
            e.sesiones.ordinaria.to_string(),
            e.sesiones.ordinaria_esperadas.to_string(),
            e.sesiones.extraordinaria.to_string(),
            e.apoyo_corte.clone().unwrap_or_default(),
        ]);
        for campo in CAMPOS_TABLA {
            match e.apoyo.get(*campo) {
                Some(c) => {
                    f.push(c.alumnos.to_string());
                    f.push(c.porcentaje.map(decimal).unwrap_or_default());
                }
                None => f.extend([String::new(), String::new()]),
            }
        }
        f.push(e.conflictos.to_string());
        w.write_record(&f)?;
    }
    w.into_inner().map_err(|e| e.into_error().into())
}

#[utoipa::path(
    get,
    path = "/v1/zonas/{clave}/escuelas.csv",
    params(("clave" = String, Path, description = "Clave de la zona"), CicloQuery),
    responses(
        (status = 200, description = "Tabla de escuelas de la zona", content_type = "text/csv"),
        (status = 401, description = "Sin token o sesión"),
        (status = 404, description = "Zona inexistente o no visible para quien pregunta"),
    ),
    security(("bearer" = []), ("sesion" = []))
)]
pub async fn escuelas_csv(
    State(state): State<AppState>,
    Lector(p): Lector,
    Path(clave): Path<String>,
    Query(q): Query<CicloQuery>,
) -> Result<Response, ApiError> {
    let r = cargar_zona(&state, &p, &clave, &q).await?;
    let body = csv_zona(&r).map_err(|e| ApiError::Internal(e.to_string()))?;
    let nombre = format!(
        "attachment; filename=\"zona-{}-{}.csv\"",
        r.zona.replace(|c: char| !c.is_ascii_alphanumeric(), ""),
        r.ciclo
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, nombre),
        ],
        body,
    )
        .into_response())
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Bitácora: tablero de la zona",
        description = "Las cifras del tablero del Consejo Técnico de Zona (docs/dashboard.md).",
        license(name = "AGPL-3.0-or-later")
    ),
    paths(resumen_zona_json, resumen_escuela_json, escuelas_csv),
    modifiers(&Seguridad)
)]
pub struct Documento;

struct Seguridad;

impl utoipa::Modify for Seguridad {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder};
        let c = openapi.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "bearer",
            utoipa::openapi::security::SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        c.add_security_scheme(
            "sesion",
            utoipa::openapi::security::SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(
                super::web::COOKIE,
            ))),
        );
    }
}

pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(Documento::openapi())
}
