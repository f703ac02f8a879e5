//! The dashboard through the router (`tower::ServiceExt::oneshot`): the JSON API, the CSV, the
//! OpenAPI document, sign-in with its cookie and CSRF rules, access (a zone or school one may
//! not see is a 404), privacy (zone-level student counts below 5), and the weight of a zone
//! page of 70 schools.
//!
//! The scene: zone 07FIZ0001 with a primaria (A), a jardín de niños (B) and a telesecundaria (C);
//! zone 07FIZ0002 with one more school. Documents are written through the model, applied
//! through the hub (the durable path), and projected; the server's clock is fixed on
//! 2026-03-16 so overdue and stale figures are exact.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use bitacora_core::automerge::AutoCommit;
use bitacora_core::ids::{Cct, CicloEscolar, DocumentId, Fecha, RecordId};
use bitacora_core::model::Ctx;
use bitacora_core::model::escuela::{
    self, Corte, EstadoAcuerdo, NivelLogro, NuevaAccion, NuevaMeta, NuevoAcuerdo, NuevoObjetivo,
};
use bitacora_server::config::{Config, Secret};
use bitacora_server::db::Database;
use bitacora_server::{AppState, Reloj, admin, http, proyector};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

const Z1: &str = "07FIZ0001";
const Z2: &str = "07FIZ0002";
const A: &str = "07DPR0001A";
const B: &str = "07DJN0002B";
const C: &str = "07DTV0003C";
const D: &str = "07DPR0009D";
const CICLO: &str = "2025-2026";
/// 2026-03-16 12:00 UTC.
const AHORA: i64 = 1_773_662_400;
const DIA: i64 = 86_400;

struct Escena {
    app: Router,
    db: Database,
    tokens: BTreeMap<&'static str, String>,
    jti: BTreeMap<&'static str, String>,
    state: AppState,
    _dir: tempfile::TempDir,
}

fn ciclo() -> CicloEscolar {
    CicloEscolar::parse(CICLO).unwrap()
}

fn f(s: &str) -> Fecha {
    Fecha::parse(s).unwrap()
}

fn id(s: &str) -> RecordId {
    RecordId::parse(s).unwrap()
}

/// School A: a PEMC under way, three acuerdos (one overdue), one meta at escaso o nulo avance,
/// a diagnóstico concentrado where 3 students need support in lectura (fewer than 5).
fn escuela_a() -> Result<AutoCommit> {
    let mut d = escuela::genesis_escuela(&Cct::parse(A)?, ciclo())?;
    let ctx = Ctx {
        ahora: AHORA - 30 * DIA,
        autor: Some("Mtra. Rosa"),
    };
    escuela::registrar(&mut d, &ctx, "Escuela Primaria Benito Juárez", Z1)?;
    escuela::diagnostico(
        &mut d,
        &ctx,
        "aprovechamiento_asistencia",
        Some("La mitad del grupo no lee con fluidez."),
        Some(1),
    )?;
    escuela::diagnostico(
        &mut d,
        &ctx,
        "participacion_comunidad",
        Some("Pocas familias asisten."),
        Some(2),
    )?;
    escuela::agregar_objetivo(
        &mut d,
        &ctx,
        &id("obj1"),
        &NuevoObjetivo {
            texto: "Mejorar la comprensión lectora".into(),
            para_que: "Para que aprendan en todas las asignaturas".into(),
            ambitos: vec!["aprovechamiento_asistencia".into()],
        },
    )?;
    escuela::agregar_meta(
        &mut d,
        &ctx,
        &id("meta1"),
        &NuevaMeta {
            objetivo: id("obj1"),
            descripcion: "Que 80 % lea con fluidez".into(),
            indicador: "% de alumnos que leen con fluidez".into(),
            linea_base: Some(45.0),
            valor_meta: Some(80.0),
            unidad: "%".into(),
            fecha_limite: Some(f("2026-06-30")),
        },
    )?;
    escuela::agregar_accion(
        &mut d,
        &ctx,
        &id("acc1"),
        &NuevaAccion {
            meta: id("meta1"),
            descripcion: "Lectura diaria de 20 minutos".into(),
            responsables: vec!["Mtra. Rosa".into()],
            recursos: "Biblioteca de aula".into(),
            costo: None,
            inicio: Some(f("2025-09-01")),
            fin: Some(f("2026-06-30")),
        },
    )?;
    escuela::registrar_logro(
        &mut d,
        &ctx,
        &id("seg1"),
        &id("meta1"),
        NivelLogro::EscasoONulo,
        "Registro de lectura de febrero",
        f("2026-02-27"),
    )?;
    for (k, texto, fecha) in [
        ("acu1", "Entregar las listas de lectura", "2026-03-01"),
        ("acu2", "Reunión con familias", "2026-04-20"),
        ("acu3", "Revisar cuadernos", "2026-02-01"),
    ] {
        escuela::agregar_acuerdo(
            &mut d,
            &ctx,
            &id(k),
            &NuevoAcuerdo {
                texto: texto.into(),
                responsables: vec!["Mtra. Rosa".into(), "Mtro. Iván".into()],
                fecha_compromiso: Some(f(fecha)),
                sesion_origen: None,
            },
        )?;
    }
    escuela::estado_acuerdo(&mut d, &ctx, &id("acu3"), EstadoAcuerdo::Cumplido, None)?;
    escuela::estado_acuerdo(&mut d, &ctx, &id("acu2"), EstadoAcuerdo::EnProceso, None)?;
    escuela::concentrado_set(
        &mut d,
        &ctx,
        1,
        "A",
        Corte::Diagnostico,
        &[("inscritos_inicio", 30), ("apoyo_lectura", 3)],
    )?;
    Ok(d)
}

/// School B: two groups with 6 and 4 students needing support in matemáticas (10 in all).
fn escuela_b() -> Result<AutoCommit> {
    let mut d = escuela::genesis_escuela(&Cct::parse(B)?, ciclo())?;
    let ctx = Ctx {
        ahora: AHORA - 40 * DIA,
        autor: Some("Mtra. Elena"),
    };
    escuela::registrar(&mut d, &ctx, "Jardín de Niños Rosario Castellanos", Z1)?;
    escuela::concentrado_set(
        &mut d,
        &ctx,
        2,
        "A",
        Corte::Intermedio,
        &[("inscritos_inicio", 20), ("apoyo_matematicas", 6)],
    )?;
    escuela::concentrado_set(
        &mut d,
        &ctx,
        3,
        "A",
        Corte::Intermedio,
        &[("inscritos_inicio", 20), ("apoyo_matematicas", 4)],
    )?;
    Ok(d)
}

async fn escribir(state: &AppState, db: &Database, cct: &str, doc: &mut AutoCommit) -> Result<()> {
    let id = DocumentId::escuela(&Cct::parse(cct)?, ciclo());
    let entry = state.hub.entry(&id).await?.context("registered")?;
    state.hub.apply_changes(&entry, doc.save()).await?;
    proyector::proyectar_documento(db, &id).await?;
    Ok(())
}

async fn escena() -> Result<Escena> {
    let dir = tempfile::tempdir()?;
    let mut config = Config {
        data_dir: dir.path().to_path_buf(),
        ..Default::default()
    };
    config.jwt.secret = Some(Secret::new("secreto-de-pruebas-del-tablero-de-32-bytes"));
    let db = Database::connect(&config.database_url()).await?;
    let reloj = Reloj::default();
    reloj.fijar(AHORA);
    admin::zona_add(&db, Z1, "Zona Escolar 001 Los Altos", ciclo()).await?;
    admin::zona_add(&db, Z2, "Zona Escolar 002 Selva", ciclo()).await?;
    admin::escuela_add(&db, A, "Esc. Prim. Benito Juárez", Z1, ciclo()).await?;
    admin::escuela_add(&db, B, "J. N. Rosario Castellanos", Z1, ciclo()).await?;
    admin::escuela_add(&db, C, "Telesecundaria Emiliano Zapata", Z1, ciclo()).await?;
    admin::escuela_add(&db, D, "Esc. Prim. Lázaro Cárdenas", Z2, ciclo()).await?;
    let usuarios: [(&str, &str, Option<&str>, Option<&str>); 6] = [
        ("sup1", "supervisor", None, Some(Z1)),
        ("atp1", "atp", None, Some(Z1)),
        ("atp2", "atp", None, Some(Z2)),
        ("dirA", "director", Some(A), None),
        ("docB", "docente", Some(B), None),
        ("admin", "admin", None, None),
    ];
    let keys = bitacora_server::auth::Keys::from_config(&config.jwt, &config.data_dir)?;
    let mut tokens = BTreeMap::new();
    let mut jti = BTreeMap::new();
    for (u, rol, cct, zona) in usuarios {
        admin::usuario_add(&db, u, u, rol, cct, zona).await?;
        let (t, c) = admin::token_emitir(&db, &keys, u, 30).await?;
        tokens.insert(u, t);
        jti.insert(u, c.jti);
    }
    let state = AppState::sin_red(config, db.clone(), reloj).await?;
    escribir(&state, &db, A, &mut escuela_a()?).await?;
    escribir(&state, &db, B, &mut escuela_b()?).await?;
    // C has only its genesis (registered, never synced).
    proyector::proyectar_documento(&db, &DocumentId::escuela(&Cct::parse(C)?, ciclo())).await?;
    let doc = |c: &str| DocumentId::escuela(&Cct::parse(c).unwrap(), ciclo()).to_string();
    db.registrar_sync(&doc(A), AHORA - 2 * DIA).await?;
    db.registrar_sync(&doc(B), AHORA - 20 * DIA).await?;
    Ok(Escena {
        app: http::router(state.clone()),
        state,
        db,
        tokens,
        jti,
        _dir: dir,
    })
}

struct Resp {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("UTF-8 body")
    }
    fn header(&self, h: header::HeaderName) -> String {
        self.headers
            .get(h)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    }
}

async fn call(app: &Router, req: Request<Body>) -> Resp {
    let r = app.clone().oneshot(req).await.expect("infallible");
    let status = r.status();
    let headers = r.headers().clone();
    let body = r.into_body().collect().await.unwrap().to_bytes().to_vec();
    Resp {
        status,
        headers,
        body,
    }
}

async fn get(app: &Router, uri: &str, token: Option<&str>) -> Resp {
    let mut b = Request::get(uri);
    if let Some(t) = token {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    call(app, b.body(Body::empty()).unwrap()).await
}

fn escuela<'a>(r: &'a Value, cct: &str) -> &'a Value {
    r["escuelas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["cct"] == cct)
        .unwrap_or_else(|| panic!("{cct} in the zone table"))
}

#[tokio::test]
async fn zone_json_has_the_figures() -> Result<()> {
    let e = escena().await?;
    let r = get(
        &e.app,
        &format!("/v1/zonas/{Z1}/resumen?ciclo={CICLO}"),
        Some(&e.tokens["sup1"]),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let j = r.json();
    assert_eq!(j["zona"], Z1);
    assert_eq!(j["fecha"], "2026-03-16");
    assert_eq!(j["totales"]["escuelas"], 3, "zone 2's school is not here");
    let a = escuela(&j, A);
    assert_eq!(a["nivel"], "primaria");
    assert_eq!(a["acuerdos_pendientes"], 2);
    assert_eq!(a["acuerdos_vencidos"], 1, "acu1 was due 2026-03-01");
    assert_eq!(a["metas_por_logro"]["escaso_o_nulo"], 1);
    assert_eq!(a["sincronizacion"]["dias"], 2);
    assert_eq!(a["sincronizacion"]["estado"], "al_dia");
    // 3 students: suppressed, and no percentage that would reveal them.
    assert_eq!(a["apoyo"]["apoyo_lectura"]["alumnos"], "<5");
    assert_eq!(a["apoyo"]["apoyo_lectura"]["porcentaje"], Value::Null);
    // Calendar: by 2026-03-16 the fase intensiva and 5 ordinarias (Sep, Oct, Nov, Jan, Feb).
    assert_eq!(a["sesiones"]["ordinaria_esperadas"], 5);
    assert_eq!(a["sesiones"]["intensiva_esperadas"], 5);
    let b = escuela(&j, B);
    assert_eq!(b["nivel"], "preescolar");
    assert_eq!(b["sincronizacion"]["estado"], "desactualizada");
    assert_eq!(b["apoyo"]["apoyo_matematicas"]["alumnos"], 10);
    assert_eq!(b["apoyo"]["apoyo_matematicas"]["porcentaje"], 25.0);
    assert_eq!(b["apoyo_corte"], "intermedio");
    let c = escuela(&j, C);
    assert_eq!(c["sincronizacion"]["estado"], "nunca");
    assert_eq!(c["pemc_porcentaje"], 0);
    assert_eq!(j["totales"]["desactualizadas"], 1);
    assert_eq!(j["totales"]["nunca_sincronizadas"], 1);
    assert_eq!(j["totales"]["acuerdos_vencidos"], 1);
    assert_eq!(j["totales"]["alumnos"], 70);
    let sit = |campo: &str| {
        j["situacion"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["campo"] == campo)
            .unwrap()
            .clone()
    };
    assert_eq!(sit("apoyo_lectura")["cifra"]["alumnos"], "<5");
    assert_eq!(sit("apoyo_matematicas")["cifra"]["alumnos"], 10);
    assert_eq!(sit("apoyo_matematicas")["cifra"]["porcentaje"], 25.0);
    assert_eq!(sit("apoyo_matematicas")["escuelas"], 1);
    assert_eq!(
        j["ambitos_a_fortalecer"][0]["ambito"], "aprovechamiento_asistencia",
        "{}",
        j["ambitos_a_fortalecer"]
    );
    assert_eq!(j["ambitos_a_fortalecer"][0]["escuelas_con_escaso"], 1);
    // Never synced and an empty PEMC rank first; every listed school has its reasons.
    let acomp = j["acompanamiento"].as_array().unwrap();
    assert_eq!(acomp[0]["cct"], C, "{acomp:?}");
    assert!(
        acomp
            .iter()
            .all(|a| !a["motivos"].as_array().unwrap().is_empty())
    );
    Ok(())
}

#[tokio::test]
async fn who_sees_what() -> Result<()> {
    let e = escena().await?;
    let zona = format!("/v1/zonas/{Z1}/resumen");
    let status = |r: Resp| r.status;
    assert_eq!(
        status(get(&e.app, &zona, Some(&e.tokens["sup1"])).await),
        StatusCode::OK
    );
    assert_eq!(
        status(get(&e.app, &zona, Some(&e.tokens["atp1"])).await),
        StatusCode::OK
    );
    // Directors sit on the CTZ.
    assert_eq!(
        status(get(&e.app, &zona, Some(&e.tokens["dirA"])).await),
        StatusCode::OK
    );
    // Denied looks exactly like missing.
    for u in ["atp2", "docB", "admin"] {
        let r = get(&e.app, &zona, Some(&e.tokens[u])).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{u}");
        assert_eq!(r.json()["error"], "no_encontrado");
    }
    let missing = get(
        &e.app,
        "/v1/zonas/07FIZ9999/resumen",
        Some(&e.tokens["sup1"]),
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(
        missing.body,
        get(&e.app, &zona, Some(&e.tokens["atp2"])).await.body
    );
    assert_eq!(
        status(get(&e.app, &zona, None).await),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(get(&e.app, &zona, Some("no.es.un.token")).await),
        StatusCode::UNAUTHORIZED
    );
    let r = get(
        &e.app,
        &format!("{zona}?ciclo=2025"),
        Some(&e.tokens["sup1"]),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.json()["mensaje"]
            .as_str()
            .unwrap()
            .contains("ciclo escolar"),
        "{}",
        r.text()
    );

    let esc = |cct: &str| format!("/v1/escuelas/{cct}/resumen?ciclo={CICLO}");
    assert_eq!(
        status(get(&e.app, &esc(A), Some(&e.tokens["sup1"])).await),
        StatusCode::OK
    );
    assert_eq!(
        status(get(&e.app, &esc(A), Some(&e.tokens["dirA"])).await),
        StatusCode::OK
    );
    assert_eq!(
        status(get(&e.app, &esc(B), Some(&e.tokens["docB"])).await),
        StatusCode::OK
    );
    assert_eq!(
        status(get(&e.app, &esc(B), Some(&e.tokens["dirA"])).await),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        status(get(&e.app, &esc(A), Some(&e.tokens["atp2"])).await),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        status(get(&e.app, &esc(D), Some(&e.tokens["sup1"])).await),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        status(
            get(
                &e.app,
                "/v1/escuelas/NOESUNCCT/resumen",
                Some(&e.tokens["sup1"])
            )
            .await
        ),
        StatusCode::NOT_FOUND
    );
    // A revoked token is refused at once.
    admin::token_revocar(&e.db, &e.jti["atp1"]).await?;
    assert_eq!(
        status(get(&e.app, &zona, Some(&e.tokens["atp1"])).await),
        StatusCode::UNAUTHORIZED
    );
    Ok(())
}

#[tokio::test]
async fn school_json_has_the_tree() -> Result<()> {
    let e = escena().await?;
    let r = get(
        &e.app,
        &format!("/v1/escuelas/{A}/resumen"),
        Some(&e.tokens["sup1"]),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let j = r.json();
    assert_eq!(j["nombre"], "Escuela Primaria Benito Juárez");
    assert_eq!(j["zona"], Z1);
    let vencidos: Vec<&str> = j["acuerdos"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["vencido"] == true)
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(vencidos, ["acu1"]);
    let acu1 = j["acuerdos"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == "acu1")
        .unwrap();
    assert_eq!(acu1["dias_vencido"], 15);
    assert_eq!(acu1["responsables"].as_array().unwrap().len(), 2);
    // At school level the exact count is shown to those who may see the school.
    let lectura = j["apoyo"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["campo"] == "apoyo_lectura")
        .unwrap();
    assert_eq!(lectura["alumnos"], 3);
    assert_eq!(lectura["porcentaje"], 10.0);
    assert_eq!(
        j["documento"]["objetivos"][0]["texto"],
        "Mejorar la comprensión lectora"
    );
    assert!(j["heads"].as_str().unwrap().len() >= 64);
    Ok(())
}

#[tokio::test]
async fn zone_csv() -> Result<()> {
    let e = escena().await?;
    let r = get(
        &e.app,
        &format!("/v1/zonas/{Z1}/escuelas.csv?ciclo={CICLO}"),
        Some(&e.tokens["atp1"]),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.header(header::CONTENT_TYPE).starts_with("text/csv"));
    assert!(
        r.header(header::CONTENT_DISPOSITION)
            .contains("zona-07FIZ0001-2025-2026.csv")
    );
    let mut rd = csv::Reader::from_reader(r.body.as_slice());
    let cols: Vec<String> = rd.headers()?.iter().map(str::to_string).collect();
    assert_eq!(cols, bitacora_server::tablero::api::columnas_csv());
    let filas: Vec<BTreeMap<String, String>> = rd.deserialize().collect::<Result<_, _>>()?;
    assert_eq!(filas.len(), 3);
    let a = filas.iter().find(|f| f["cct"] == A).unwrap();
    assert_eq!(a["nombre"], "Esc. Prim. Benito Juárez");
    assert_eq!(a["acuerdos_vencidos"], "1");
    assert_eq!(a["apoyo_lectura_alumnos"], "<5");
    assert_eq!(a["apoyo_lectura_porcentaje"], "");
    let b = filas.iter().find(|f| f["cct"] == B).unwrap();
    assert_eq!(b["apoyo_matematicas_alumnos"], "10");
    assert_eq!(b["apoyo_matematicas_porcentaje"], "25");
    assert_eq!(b["estado_sincronizacion"], "desactualizada");
    let r = get(
        &e.app,
        &format!("/v1/zonas/{Z1}/escuelas.csv"),
        Some(&e.tokens["atp2"]),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    Ok(())
}

/// Every property of `v` is declared in `schema` (following `$ref`s into the components).
fn declarado(v: &Value, schema: &Value, doc: &Value, ruta: &str) {
    let schema = match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let nombre = r.rsplit('/').next().unwrap();
            &doc["components"]["schemas"][nombre]
        }
        None => schema,
    };
    if let (Some(obj), Some(props)) = (v.as_object(), schema.get("properties")) {
        for (k, sub) in obj {
            let s = props
                .get(k)
                .unwrap_or_else(|| panic!("{ruta}.{k} is not in the OpenAPI schema"));
            declarado(sub, s, doc, &format!("{ruta}.{k}"));
        }
    }
    if let (Some(items), Some(s)) = (v.as_array(), schema.get("items")) {
        for (i, it) in items.iter().enumerate() {
            declarado(it, s, doc, &format!("{ruta}[{i}]"));
        }
    }
}

#[tokio::test]
async fn openapi_describes_the_responses() -> Result<()> {
    let e = escena().await?;
    let r = get(&e.app, "/v1/openapi.json", None).await;
    assert_eq!(r.status, StatusCode::OK);
    let doc = r.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for p in [
        "/v1/zonas/{clave}/resumen",
        "/v1/zonas/{clave}/escuelas.csv",
        "/v1/escuelas/{cct}/resumen",
    ] {
        assert!(
            doc["paths"][p]["get"].is_object(),
            "{p} in {}",
            doc["paths"]
        );
    }
    let zona = get(
        &e.app,
        &format!("/v1/zonas/{Z1}/resumen"),
        Some(&e.tokens["sup1"]),
    )
    .await;
    declarado(
        &zona.json(),
        &doc["components"]["schemas"]["ResumenZona"],
        &doc,
        "ResumenZona",
    );
    let esc = get(
        &e.app,
        &format!("/v1/escuelas/{A}/resumen"),
        Some(&e.tokens["sup1"]),
    )
    .await;
    declarado(
        &esc.json(),
        &doc["components"]["schemas"]["ResumenEscuela"],
        &doc,
        "ResumenEscuela",
    );
    Ok(())
}

fn form(uri: &str, body: &str, origin: Option<&str>, cookie: Option<&str>) -> Request<Body> {
    let mut b = Request::post(uri)
        .header(header::HOST, "tablero.local")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(o) = origin {
        b = b.header(header::ORIGIN, o);
    }
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    b.body(Body::from(body.to_string())).unwrap()
}

async fn pagina(app: &Router, uri: &str, cookie: &str) -> Resp {
    call(
        app,
        Request::get(uri)
            .header(header::COOKIE, cookie)
            .body(Body::empty())
            .unwrap(),
    )
    .await
}

fn urlenc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn entrar(app: &Router, token: &str) -> String {
    let r = call(
        app,
        form(
            "/entrar",
            &format!("token={}", urlenc(token)),
            Some("http://tablero.local"),
            None,
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let c = r.header(header::SET_COOKIE);
    assert!(c.contains("HttpOnly") && c.contains("SameSite=Lax"), "{c}");
    c.split(';').next().unwrap().to_string()
}

#[tokio::test]
async fn sign_in_session_and_csrf() -> Result<()> {
    let e = escena().await?;
    // Pages without a session go to the sign-in, remembering where they were going.
    let r = call(
        &e.app,
        Request::get(format!("/zonas/{Z1}")).body(Body::empty())?,
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        r.header(header::LOCATION),
        format!("/entrar?siguiente=/zonas/{Z1}")
    );
    let r = call(&e.app, Request::get("/entrar").body(Body::empty())?).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text().contains("name=\"token\""));

    // A sign-in posted from another site is refused; so is a bad token, with a clear message.
    let token = e.tokens["sup1"].clone();
    let r = call(
        &e.app,
        form(
            "/entrar",
            &format!("token={}", urlenc(&token)),
            Some("https://malo.example"),
            None,
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.header(header::SET_COOKIE).is_empty());
    let r = call(
        &e.app,
        form("/entrar", "token=xyz", Some("http://tablero.local"), None),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.text().contains("El token no es válido"));
    let r = call(
        &e.app,
        form("/entrar", "sin=campo", Some("http://tablero.local"), None),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = call(
        &e.app,
        form(
            "/entrar",
            &format!("token={}", urlenc(&e.tokens["admin"])),
            None,
            None,
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "admin has no dashboard");

    let cookie = entrar(&e.app, &token).await;
    let r = pagina(&e.app, &format!("/zonas/{Z1}"), &cookie).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.header(header::CONTENT_SECURITY_POLICY)
            .contains("default-src 'none'")
    );
    assert_eq!(r.header(header::CACHE_CONTROL), "no-store");
    let html = r.text();
    assert!(html.contains(r#"data-total="escuelas">3<"#), "{html}");
    let fila_a = html
        .split(&format!(r#"<tr data-cct="{A}""#))
        .nth(1)
        .and_then(|s| s.split("</tr>").next())
        .unwrap();
    assert!(
        fila_a.contains(r#"<td data-c="apoyo_lectura">&#60;5</td>"#),
        "{fila_a}"
    );
    assert!(!html.contains("<script"), "no JavaScript");
    assert!(html.contains("<svg"), "server-drawn chart");
    // The cookie works for the JSON API too (same figures the page shows).
    let j = pagina(&e.app, &format!("/v1/zonas/{Z1}/resumen"), &cookie)
        .await
        .json();
    assert!(html.contains(&format!(
        r#"data-total="acuerdos_pendientes">{}<"#,
        j["totales"]["acuerdos_pendientes"]
    )));
    let r = pagina(&e.app, &format!("/escuelas/{A}"), &cookie).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text().contains("Mejorar la comprensión lectora"));
    let r = pagina(&e.app, &format!("/zonas/{Z2}"), &cookie).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.text().contains("no existe o su cuenta no tiene acceso"));

    // Signing out needs the session's CSRF token.
    let csrf = html
        .split(r#"name="csrf" value=""#)
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string();
    let r = call(
        &e.app,
        form(
            "/salir",
            "csrf=otro",
            Some("http://tablero.local"),
            Some(&cookie),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        pagina(&e.app, &format!("/zonas/{Z1}"), &cookie)
            .await
            .status,
        StatusCode::OK
    );
    let r = call(
        &e.app,
        form(
            "/salir",
            &format!("csrf={csrf}"),
            Some("http://tablero.local"),
            Some(&cookie),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(r.header(header::SET_COOKIE).contains("Max-Age=0"));
    assert_eq!(
        pagina(&e.app, &format!("/zonas/{Z1}"), &cookie)
            .await
            .status,
        StatusCode::SEE_OTHER
    );

    // Revoking the token ends its sessions.
    let cookie = entrar(&e.app, &token).await;
    assert_eq!(
        pagina(&e.app, &format!("/zonas/{Z1}"), &cookie)
            .await
            .status,
        StatusCode::OK
    );
    admin::token_revocar(&e.db, &e.jti["sup1"]).await?;
    assert_eq!(
        pagina(&e.app, &format!("/zonas/{Z1}"), &cookie)
            .await
            .status,
        StatusCode::SEE_OTHER
    );
    // A forged cookie is no session.
    let r = pagina(
        &e.app,
        &format!("/zonas/{Z1}"),
        &format!("bitacora_sesion={}", "0".repeat(64)),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    Ok(())
}

#[tokio::test]
async fn zone_page_of_70_schools_is_light() -> Result<()> {
    let e = escena().await?;
    let state_db = e.db.clone();
    // 67 more schools with PEMC, acuerdos and concentrado, for 70 in the zone.
    let dir = tempfile::tempdir()?;
    let mut config = Config {
        data_dir: dir.path().to_path_buf(),
        ..Default::default()
    };
    config.jwt.secret = Some(Secret::new("secreto-de-pruebas-del-tablero-de-32-bytes"));
    let reloj = Reloj::default();
    reloj.fijar(AHORA);
    let state = AppState::sin_red(config, state_db.clone(), reloj).await?;
    for i in 0..67 {
        let cct = format!("07DPR{:04}{}", 100 + i, (b'A' + (i % 26) as u8) as char);
        admin::escuela_add(
            &state_db,
            &cct,
            &format!("Escuela Primaria Rural Número {i} «Benito Juárez García»"),
            Z1,
            ciclo(),
        )
        .await?;
        let d = escuela_a()?;
        // The same acuerdos, in this school's document.
        let mut otro = escuela::genesis_escuela(&Cct::parse(&cct)?, ciclo())?;
        let leido = escuela::leer(&d)?;
        let ctx = Ctx {
            ahora: AHORA - DIA,
            autor: Some("Dir."),
        };
        for a in &leido.acuerdos {
            escuela::agregar_acuerdo(
                &mut otro,
                &ctx,
                &id(&a.id),
                &NuevoAcuerdo {
                    texto: a.texto.clone(),
                    responsables: a.responsables.clone(),
                    fecha_compromiso: a.fecha_compromiso.as_deref().map(f),
                    sesion_origen: None,
                },
            )?;
        }
        escuela::concentrado_set(
            &mut otro,
            &ctx,
            1,
            "A",
            Corte::Cierre,
            &[
                ("inscritos_fin", 28),
                ("apoyo_lectura", 7),
                ("apoyo_escritura", 2),
                ("apoyo_matematicas", 9),
                ("faltan_constantemente", 1),
            ],
        )?;
        escribir(&state, &state_db, &cct, &mut otro).await?;
    }
    let app = http::router(state);
    let cookie = entrar(&app, &e.tokens["sup1"]).await;
    let r = pagina(&app, &format!("/zonas/{Z1}"), &cookie).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text().matches("<tr data-cct=").count() == 70);
    assert!(
        r.body.len() < 100 * 1024,
        "zone page of 70 schools is {} bytes",
        r.body.len()
    );
    eprintln!("zone page of 70 schools: {} bytes", r.body.len());
    Ok(())
}

/// Issue 11: when the server holds changes a school's figures do not include yet (here: a
/// change committed with no projection after it, as a lost wake-up would leave it), the zone
/// page, the school page, their JSON and `/metrics` say so, per school; once projected, they
/// say nothing.
#[tokio::test]
async fn a_projection_behind_its_document_is_shown() -> Result<()> {
    let e = escena().await?;
    let id_a = DocumentId::escuela(&Cct::parse(A)?, ciclo());
    // D (zone 2) was registered and never projected: the sweep would list it too.
    assert_eq!(e.state.hub.proyector.barrer(&e.db).await?, 1);
    proyector::proyectar_documento(&e.db, &DocumentId::escuela(&Cct::parse(D)?, ciclo())).await?;
    assert_eq!(e.state.hub.proyector.barrer(&e.db).await?, 0);
    // One more acuerdo in A's document, committed without a projection.
    let stored = e.db.load(&id_a).await?;
    let mut doc = AutoCommit::load(
        &bitacora_server::hub::assemble(&stored)
            .map_err(anyhow::Error::msg)?
            .save(),
    )?;
    let antes = doc.get_heads();
    escuela::agregar_acuerdo(
        &mut doc,
        &Ctx {
            ahora: AHORA,
            autor: Some("Mtra. Rosa"),
        },
        &id("acuerdo-tardio"),
        &NuevoAcuerdo {
            texto: "Invitar a las familias a la lectura".into(),
            responsables: vec!["Director".into()],
            fecha_compromiso: Some(f("2026-04-30")),
            sesion_origen: None,
        },
    )?;
    e.db.append(&id_a, &doc.save_after(&antes)).await?;

    let sup = e.tokens["sup1"].as_str();
    let z = get(
        &e.app,
        &format!("/v1/zonas/{Z1}/resumen?ciclo={CICLO}"),
        Some(sup),
    )
    .await;
    assert_eq!(z.status, StatusCode::OK, "{}", z.text());
    let z = z.json();
    assert_eq!(z["totales"]["cifras_en_actualizacion"], 1);
    assert_eq!(escuela(&z, A)["cifras_en_actualizacion"], true);
    assert_eq!(escuela(&z, B)["cifras_en_actualizacion"], false);
    assert_eq!(escuela(&z, C)["cifras_en_actualizacion"], false);
    let ra = get(
        &e.app,
        &format!("/v1/escuelas/{A}/resumen?ciclo={CICLO}"),
        Some(sup),
    )
    .await;
    let ra = ra.json();
    assert_eq!(
        ra["en_actualizacion"]["envios_pendientes"], 1,
        "{}",
        ra["en_actualizacion"]
    );
    let rb = get(
        &e.app,
        &format!("/v1/escuelas/{B}/resumen?ciclo={CICLO}"),
        Some(sup),
    )
    .await;
    assert!(rb.json()["en_actualizacion"].is_null());

    let cookie = entrar(&e.app, sup).await;
    let zona = pagina(&e.app, &format!("/zonas/{Z1}?ciclo={CICLO}"), &cookie).await;
    assert_eq!(zona.status, StatusCode::OK);
    let html = zona.text();
    assert!(
        html.contains("Las cifras de 1 escuela aún no incluyen los últimos cambios recibidos"),
        "zone page: {html}"
    );
    let fila_a = html
        .split("<tr data-cct=")
        .find(|f| f.starts_with(&format!("\"{A}\"")))
        .context("A's row")?;
    assert!(fila_a.contains("(cifras en actualización)"), "{fila_a}");
    let fila_b = html
        .split("<tr data-cct=")
        .find(|f| f.starts_with(&format!("\"{B}\"")))
        .context("B's row")?;
    assert!(!fila_b.contains("cifras en actualización"), "{fila_b}");
    let pa = pagina(&e.app, &format!("/escuelas/{A}?ciclo={CICLO}"), &cookie).await;
    assert!(
        pa.text()
            .contains("Cifras en actualización:</b> el servidor ya recibió 1 envío de cambios"),
        "{}",
        pa.text()
    );

    // /metrics, after the projector's sweep looked.
    assert_eq!(e.state.hub.proyector.barrer(&e.db).await?, 1);
    let m = call(
        &bitacora_server::metrics::router(e.state.clone()),
        Request::get("/metrics").body(Body::empty()).unwrap(),
    )
    .await
    .text();
    assert!(m.contains("bitacora_projection_behind_documents 1"), "{m}");
    assert!(
        m.contains(&format!(
            "bitacora_projection_behind_appends{{document=\"{id_a}\"}} 1"
        )),
        "{m}"
    );
    assert!(
        m.contains(&format!(
            "bitacora_projection_behind_seconds{{document=\"{id_a}\"}}"
        )),
        "{m}"
    );

    // Projected: nothing behind anywhere.
    proyector::proyectar_documento(&e.db, &id_a).await?;
    let z = get(
        &e.app,
        &format!("/v1/zonas/{Z1}/resumen?ciclo={CICLO}"),
        Some(sup),
    )
    .await
    .json();
    assert_eq!(z["totales"]["cifras_en_actualizacion"], 0);
    let ra = get(
        &e.app,
        &format!("/v1/escuelas/{A}/resumen?ciclo={CICLO}"),
        Some(sup),
    )
    .await
    .json();
    assert!(ra["en_actualizacion"].is_null());
    assert!(
        ra["acuerdos"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["id"] == "acuerdo-tardio")
    );
    let zona = pagina(&e.app, &format!("/zonas/{Z1}?ciclo={CICLO}"), &cookie)
        .await
        .text();
    assert!(!zona.contains("cifras en actualización") && !zona.contains("aún no incluyen"));
    assert_eq!(e.state.hub.proyector.barrer(&e.db).await?, 0);
    Ok(())
}
