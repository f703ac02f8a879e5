//! `zone_sync_story` (issue #4): one zone, told through a real server and the real `bitacora`
//! CLI. Two teachers and the director of school A and one teacher of school B each work offline
//! (PEMC, acuerdos, sesiones, concentrado), then log in and sync in different orders. The two A
//! teachers edit the same acuerdo's text at the same time and set its status to different values.
//! The director of A shares a práctica through the zone document; B receives it. The supervisor,
//! driving the sync engine directly, fetches every document of the zone.
//!
//! Checked: A's replicas converge (same heads, same change set, same export); both text edits
//! survive; the status conflict is listed on every A replica and at the supervisor; B never holds
//! A's document and none of its syncs fails; a docente syncs the zone document read-only;
//! `estado` reports nothing unconfirmed after the last sync; the supervisor holds the same heads
//! as the schools. Last, a docente who wrote to the zone document before her first login: her
//! sync finishes (the server holds the zone read-only for her and never takes the change) and
//! leaves exactly that change unconfirmed.
//!
//! Told once, run twice: `zone_sync_story` on SQLite, `zone_sync_story_postgres` on the
//! PostgreSQL of `BITACORA_TEST_DATABASE_URL` (in a fresh schema, dropped at the end; skipped
//! loudly when the variable is unset). No sleeps: every step waits for a command to finish.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use bitacora_core::automerge::ChangeHash;
use bitacora_core::bundle::genesis_de;
use bitacora_core::engine;
use bitacora_core::ids::DocumentId;
use bitacora_core::model::{DocKind, conflictos, escuela, zona};
use bitacora_core::store::{DocInfo, Store};
use bitacora_tests::Replica;
use bitacora_tests::server::{CICLO, PgSchema, TestServer};
use serde_json::{Value, json};

const ZONA: &str = "07FIZ0014";
const CCT_A: &str = "07DPR0123X";
const CCT_B: &str = "07DPR0456K";
const NOMBRE_A: &str = "Escuela Primaria Rural Benito Juárez";
const NOMBRE_B: &str = "Escuela Primaria Leona Vicario";
const LIMITE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn zone_sync_story() -> Result<()> {
    let srv = TestServer::start().await?;
    story(&srv).await?;
    srv.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn zone_sync_story_postgres() -> Result<()> {
    let Some(schema) = PgSchema::from_env("zone_sync_story_postgres", "zone_sync_story").await?
    else {
        return Ok(());
    };
    // The story runs in its own task so that the schema is dropped whatever happens in it.
    let schema = Arc::new(schema);
    let s = schema.clone();
    let outcome = tokio::spawn(async move {
        let srv = TestServer::start_postgres(&s).await?;
        assert_eq!(srv.db.backend(), "postgres");
        story(&srv).await?;
        let db = srv.db.clone();
        srv.stop().await?;
        db.close().await;
        anyhow::Ok(())
    })
    .await;
    let dropped = schema.drop_schema().await;
    match outcome {
        Err(e) => std::panic::resume_unwind(e.into_panic()),
        Ok(r) => r?,
    }
    dropped
}

// ---------------------------------------------------------------------------------------------
// The story.

async fn story(srv: &TestServer) -> Result<()> {
    // The supervision registers the zone, both schools and their people.
    let doc_zona = srv.zona(ZONA).await?;
    let doc_a = srv.escuela(CCT_A, ZONA).await?;
    let doc_b = srv.escuela(CCT_B, ZONA).await?;
    let t_ana = srv.usuario("ana", "docente", Some(CCT_A), None).await?;
    let t_luis = srv.usuario("luis", "docente", Some(CCT_A), None).await?;
    let t_carmen = srv.usuario("carmen", "director", Some(CCT_A), None).await?;
    let t_beto = srv.usuario("beto", "docente", Some(CCT_B), None).await?;
    let t_sofia = srv.usuario("sofia", "supervisor", None, Some(ZONA)).await?;

    let tmp = tempfile::tempdir()?;
    let ana = Replica::new(tmp.path().join("ana")); // docente, school A
    let luis = Replica::new(tmp.path().join("luis")); // docente, school A
    let carmen = Replica::new(tmp.path().join("carmen")); // directora, school A
    let beto = Replica::new(tmp.path().join("beto")); // docente, school B

    // ---- Offline: every laptop initialises its school and works without a network. ----------
    init(&ana, CCT_A, NOMBRE_A, "Mtra. Ana López")?;
    init(&luis, CCT_A, NOMBRE_A, "Mtro. Luis Gómez")?;
    init(&carmen, CCT_A, NOMBRE_A, "Directora Carmen Ruiz")?;
    init(&beto, CCT_B, NOMBRE_B, "Mtro. Alberto Díaz")?;

    // Ana plans: diagnóstico, objetivo, meta, acción; records a session and an acuerdo.
    cli(
        &ana,
        &[
            "pemc",
            "diagnostico",
            "set",
            "--ambito",
            "aprovechamiento_asistencia",
            "--texto",
            "Un tercio de los alumnos lee por debajo de lo esperado.",
            "--prioridad",
            "1",
        ],
    )?;
    let objetivo = new_id(
        &ana,
        &[
            "pemc",
            "objetivo",
            "add",
            "--texto",
            "Mejorar la comprensión lectora en todos los grados",
            "--para-que",
            "Que los alumnos aprendan en todas las asignaturas",
            "--ambito",
            "aprovechamiento_asistencia",
        ],
    )?;
    let meta = new_id(
        &ana,
        &[
            "pemc",
            "meta",
            "add",
            "--objetivo",
            &objetivo,
            "--descripcion",
            "Reducir alumnos que requieren apoyo en lectura",
            "--indicador",
            "% de alumnos que requieren apoyo en lectura",
            "--linea-base",
            "32",
            "--valor-meta",
            "15",
            "--unidad",
            "%",
            "--fecha-limite",
            "2026-06-30",
        ],
    )?;
    let accion = new_id(
        &ana,
        &[
            "pemc",
            "accion",
            "add",
            "--meta",
            &meta,
            "--descripcion",
            "Círculos de lectura los viernes",
            "--responsable",
            "Mtra. Ana López",
            "--inicio",
            "2025-09-05",
            "--fin",
            "2026-06-26",
        ],
    )?;
    let sesion = new_id(
        &ana,
        &[
            "sesion",
            "add",
            "--fase",
            "ordinaria",
            "--numero",
            "1",
            "--fecha",
            "2025-09-26",
            "--asistente",
            "Mtra. Ana López",
            "--asistente",
            "Mtro. Luis Gómez",
            "--proposito",
            "Revisar el diagnóstico",
        ],
    )?;
    let ac1 = new_id(
        &ana,
        &[
            "acuerdo",
            "add",
            "--texto",
            "Revisar la asistencia de cada grupo todos los viernes",
            "--responsable",
            "Dirección",
            "--fecha-compromiso",
            "2025-10-31",
            "--sesion",
            &sesion,
        ],
    )?;

    // Luis, on his own laptop: another ámbito, the concentrado of his group, an acuerdo; he
    // looks at the zone's prácticas (none yet: he has never synced).
    cli(
        &luis,
        &[
            "pemc",
            "diagnostico",
            "set",
            "--ambito",
            "practicas_docentes",
            "--texto",
            "Pocas estrategias de lectura compartidas entre grados.",
            "--prioridad",
            "2",
        ],
    )?;
    cli(
        &luis,
        &[
            "grupo",
            "concentrado",
            "set",
            "--grado",
            "3",
            "--grupo",
            "A",
            "--corte",
            "diagnostico",
            "--inscritos-inicio",
            "28",
            "--apoyo-lectura",
            "9",
            "--faltan-constantemente",
            "3",
        ],
    )?;
    let ac2 = new_id(
        &luis,
        &[
            "acuerdo",
            "add",
            "--texto",
            "Invitar a las madres y padres a la lectura en voz alta",
            "--responsable",
            "Mtro. Luis Gómez",
        ],
    )?;
    assert_eq!(cli_json(&luis, &["zona", "practica", "list"])?, json!([]));

    // The director shares a práctica with the zone before ever connecting.
    let practica1 = new_id(
        &carmen,
        &[
            "zona",
            "practica",
            "add",
            "--titulo",
            "Círculos de lectura con familias",
            "--descripcion",
            "Cada viernes, una madre o un padre lee en voz alta al grupo.",
            "--ambito",
            "participacion_comunidad",
        ],
    )?;
    let ac_dir = new_id(
        &carmen,
        &[
            "acuerdo",
            "add",
            "--texto",
            "Publicar el PEMC en el periódico mural",
            "--responsable",
            "Dirección",
        ],
    )?;

    // School B, meanwhile.
    let objetivo_b = new_id(
        &beto,
        &[
            "pemc",
            "objetivo",
            "add",
            "--texto",
            "Mejorar la convivencia en el recreo",
            "--ambito",
            "participacion_comunidad",
        ],
    )?;
    let ac_b = new_id(
        &beto,
        &[
            "acuerdo",
            "add",
            "--texto",
            "Organizar juegos dirigidos en el recreo",
            "--responsable",
            "Mtro. Alberto Díaz",
        ],
    )?;
    cli(
        &beto,
        &[
            "grupo",
            "concentrado",
            "set",
            "--grado",
            "2",
            "--grupo",
            "B",
            "--corte",
            "diagnostico",
            "--inscritos-inicio",
            "25",
            "--dificultad-relacionarse",
            "4",
        ],
    )?;

    // Offline, nothing is confirmed and there is no server.
    let e = cli_json(&ana, &["estado"])?;
    assert_eq!(e["servidor"], Value::Null, "{e}");
    assert!(sin_confirmar(&e, &doc_a.id)? >= 6, "{e}");

    // ---- First contact, one laptop after another. --------------------------------------------
    // B first: the zone has nothing yet.
    login(&beto, &srv.url, &t_beto)?;
    let informe = sync(&beto)?;
    assert_eq!(informe["documentos"], 2, "school B and the zone: {informe}");
    assert_eq!(cli_json(&beto, &["zona", "practica", "list"])?, json!([]));

    login(&ana, &srv.url, &t_ana)?;
    sync(&ana)?;
    login(&luis, &srv.url, &t_luis)?;
    let informe = sync(&luis)?;
    assert!(
        informe["cambios_recibidos"].as_u64() >= Some(6),
        "Luis receives Ana's work: {informe}"
    );
    let acuerdos = cli_json(&luis, &["acuerdo", "list"])?;
    assert!(contains_id(&acuerdos, &ac1), "{acuerdos}");

    login(&carmen, &srv.url, &t_carmen)?;
    sync(&carmen)?;

    // B syncs again and receives the práctica from A through the zone document.
    sync(&beto)?;
    let practicas = cli_json(&beto, &["zona", "practica", "list"])?;
    assert_eq!(practicas.as_array().map(Vec::len), Some(1), "{practicas}");
    assert_eq!(practicas[0]["id"], practica1.as_str());
    assert_eq!(practicas[0]["escuela"], CCT_A);
    assert_eq!(practicas[0]["titulo"], "Círculos de lectura con familias");
    assert_eq!(practicas[0]["ambito"], "participacion_comunidad");

    // A docente holds the zone document read-only: her sync brings the práctica in and
    // sends nothing.
    sync(&ana)?;
    let practicas = cli_json(&ana, &["zona", "practica", "list"])?;
    assert!(contains_id(&practicas, &practica1), "{practicas}");

    // ---- Offline again: concurrent edits in school A. ----------------------------------------
    // Both teachers edit the same acuerdo's text, in different places, and set its status to
    // different values.
    let antes = cli_json(&ana, &["acuerdo", "show", &ac1])?;
    assert_eq!(
        antes["texto"],
        "Revisar la asistencia de cada grupo todos los viernes"
    );
    assert_eq!(
        cli_json(&luis, &["acuerdo", "show", &ac1])?["texto"],
        antes["texto"]
    );
    cli(
        &ana,
        &[
            "acuerdo",
            "edit",
            &ac1,
            "--texto",
            "Revisar la asistencia y la puntualidad de cada grupo todos los viernes",
        ],
    )?;
    cli(
        &luis,
        &[
            "acuerdo",
            "edit",
            &ac1,
            "--texto",
            "Revisar la asistencia de cada grupo todos los viernes y avisar a las familias",
        ],
    )?;
    cli(&ana, &["acuerdo", "estado", &ac1, "cumplido"])?;
    cli(&luis, &["acuerdo", "estado", &ac1, "cancelado"])?;
    // And more work on each side.
    cli(
        &ana,
        &[
            "pemc",
            "meta",
            "logro",
            &meta,
            "--nivel",
            "avance_significativo",
            "--evidencia",
            "Lecturas de diciembre",
            "--fecha",
            "2025-12-12",
        ],
    )?;
    cli(&ana, &["pemc", "accion", "estado", &accion, "en_proceso"])?;
    cli(
        &ana,
        &[
            "sesion",
            "edit",
            &sesion,
            "--productos",
            "Diagnóstico por grupo",
        ],
    )?;
    cli(
        &luis,
        &[
            "grupo",
            "concentrado",
            "set",
            "--grado",
            "3",
            "--grupo",
            "A",
            "--corte",
            "intermedio",
            "--inscritos-inicio",
            "28",
            "--apoyo-lectura",
            "6",
        ],
    )?;
    let ac3 = new_id(
        &luis,
        &[
            "acuerdo",
            "add",
            "--texto",
            "Llevar un registro de préstamos de la biblioteca",
        ],
    )?;
    cli(&carmen, &["acuerdo", "estado", &ac2, "en_proceso"])?;
    let practica2 = new_id(
        &carmen,
        &[
            "zona",
            "practica",
            "add",
            "--titulo",
            "Registro de asistencia compartido con las familias",
        ],
    )?;
    cli(&beto, &["acuerdo", "estado", &ac_b, "en_proceso"])?;
    cli(
        &beto,
        &[
            "sesion",
            "add",
            "--fase",
            "ordinaria",
            "--numero",
            "2",
            "--fecha",
            "2025-10-31",
            "--proposito",
            "Seguimiento de la convivencia",
        ],
    )?;
    assert!(sin_confirmar(&cli_json(&ana, &["estado"])?, &doc_a.id)? >= 4);

    // ---- Back online, in another order: Luis, B, Ana, the director, Luis, Ana, B. ------------
    sync(&luis)?;
    sync(&beto)?;
    let informe = sync(&ana)?;
    assert!(
        informe["cambios_recibidos"].as_u64() >= Some(4),
        "Ana receives Luis's concurrent work: {informe}"
    );
    sync(&carmen)?;
    sync(&luis)?;
    sync(&ana)?;
    sync(&beto)?;

    // ---- School A converged. -------------------------------------------------------------------
    let export_a = cli_json(&ana, &["export", "json"])?;
    for r in [&luis, &carmen] {
        assert_eq!(
            cli_json(r, &["export", "json"])?,
            export_a,
            "{} holds the same content as Ana",
            r.dir.display()
        );
    }
    let hist_a = ana.hashes()?;
    assert_eq!(luis.hashes()?, hist_a, "same change set");
    assert_eq!(carmen.hashes()?, hist_a, "same change set");
    let heads_a = ana.heads(&doc_a.id).await?;
    assert_eq!(luis.heads(&doc_a.id).await?, heads_a);
    assert_eq!(carmen.heads(&doc_a.id).await?, heads_a);
    let heads_zona = carmen.heads(&doc_zona.id).await?;
    for r in [&ana, &luis, &beto] {
        assert_eq!(r.heads(&doc_zona.id).await?, heads_zona, "zone heads");
    }

    // Everything is there.
    let e = &export_a["escuela"];
    assert_eq!(e["cct"], CCT_A);
    assert_eq!(e["nombre"], NOMBRE_A);
    for (col, id) in [
        ("objetivos", &objetivo),
        ("metas", &meta),
        ("acciones", &accion),
        ("sesiones", &sesion),
        ("acuerdos", &ac1),
        ("acuerdos", &ac2),
        ("acuerdos", &ac3),
        ("acuerdos", &ac_dir),
    ] {
        assert!(contains_id(&e[col], id), "{col} {id}: {}", e[col]);
    }
    assert_eq!(
        e["concentrado"].as_array().map(Vec::len),
        Some(2),
        "{}",
        e["concentrado"]
    );
    let acuerdo = |id: &str| find_id(&e["acuerdos"], id).cloned().unwrap_or_default();
    assert_eq!(acuerdo(&ac2)["estado"], "en_proceso");

    // Both concurrent text edits survive.
    assert_eq!(
        acuerdo(&ac1)["texto"],
        "Revisar la asistencia y la puntualidad de cada grupo todos los viernes y avisar a las familias"
    );

    // The status conflict is visible on every replica of A, with both values and their authors.
    let ruta = format!("acuerdos/{ac1}/estado");
    for r in [&ana, &luis, &carmen] {
        let c = cli_json(r, &["conflictos", "list"])?;
        check_conflict(&c, &ruta)?;
        assert_eq!(
            cli_json(r, &["acuerdo", "show", &ac1])?["en_conflicto"],
            json!(["estado"])
        );
    }
    check_conflict(&export_a["conflictos"], &ruta)?;

    // ---- School B: never A's document, always successful syncs. ------------------------------
    let e_b = cli_json(&beto, &["estado"])?;
    let docs_b: BTreeSet<String> = e_b["documentos"]
        .as_array()
        .context("documentos")?
        .iter()
        .filter_map(|d| d["documento"].as_str().map(str::to_string))
        .collect();
    assert_eq!(
        docs_b,
        BTreeSet::from([doc_b.id.to_string(), doc_zona.id.to_string()]),
        "{e_b}"
    );
    let store_b = Store::open(&beto.dir).await?;
    let ids_b: Vec<DocumentId> = store_b.documents().await?.iter().map(|d| d.id).collect();
    let a_en_b = store_b.load(&doc_a.id).await?;
    store_b.close().await;
    assert!(!ids_b.contains(&doc_a.id), "{ids_b:?}");
    assert!(a_en_b.is_none(), "B's store holds no document with A's id");
    let export_b = cli_json(&beto, &["export", "json"])?;
    assert_eq!(export_b["escuela"]["cct"], CCT_B);
    assert!(contains_id(&export_b["escuela"]["objetivos"], &objetivo_b));
    assert_eq!(
        find_id(&export_b["escuela"]["acuerdos"], &ac_b).map(|a| &a["estado"]),
        Some(&json!("en_proceso"))
    );
    for id in [&ac1, &ac2, &ac3, &ac_dir, &objetivo] {
        assert!(
            !export_b.to_string().contains(id.as_str()),
            "A's record {id} reached B: {export_b}"
        );
    }
    assert_eq!(export_b["conflictos"], json!([]));
    // The zone's two prácticas, both from A, reached B.
    let practicas = cli_json(&beto, &["zona", "practica", "list"])?;
    let ids: BTreeSet<&str> = practicas
        .as_array()
        .context("prácticas")?
        .iter()
        .filter_map(|p| p["id"].as_str())
        .collect();
    assert_eq!(
        ids,
        BTreeSet::from([practica1.as_str(), practica2.as_str()])
    );
    assert!(
        practicas
            .as_array()
            .into_iter()
            .flatten()
            .all(|p| p["escuela"] == CCT_A)
    );
    let heads_b = beto.heads(&doc_b.id).await?;

    // ---- Nothing left unconfirmed anywhere. ------------------------------------------------------
    for r in [&ana, &luis, &carmen, &beto] {
        let e = cli_json(r, &["estado"])?;
        assert_eq!(e["servidor"], srv.url.as_str(), "{e}");
        assert_eq!(e["alcanzable"], true, "{e}");
        assert!(e["ultima_sincronizacion"].is_i64(), "{e}");
        let docs = e["documentos"].as_array().context("documentos")?;
        assert_eq!(docs.len(), 2, "its school and the zone: {e}");
        for d in docs {
            assert_eq!(d["cambios_sin_confirmar"], 0, "{}: {e}", r.dir.display());
        }
    }

    // ---- The supervisor: every document of the zone, through the engine. --------------------
    let sup = Store::open(&tmp.path().join("sofia")).await?;
    let remotos = engine::documentos(&srv.url, &t_sofia, LIMITE).await?;
    let mut ids = Vec::new();
    for d in &remotos {
        assert_eq!(d.acceso, "escritura", "{d:?}");
        assert_eq!(d.ciclo, CICLO);
        let info = DocInfo {
            id: DocumentId::parse(&d.id)?,
            kind: DocKind::parse(&d.tipo).context("document kind")?,
            owner: d.owner.clone(),
            ciclo: d.ciclo.clone(),
        };
        let mut g = genesis_de(&info)?;
        sup.create(&info, &mut g, 0).await?;
        ids.push(info.id);
    }
    assert_eq!(
        ids.iter().copied().collect::<BTreeSet<_>>(),
        BTreeSet::from([doc_a.id, doc_b.id, doc_zona.id]),
        "{remotos:?}"
    );
    let informe = engine::sync_once(&sup, &srv.url, &t_sofia, &ids, LIMITE).await?;
    assert_eq!(informe.documentos, 3);
    assert_eq!(informe.cambios_enviados, 0, "{informe:?}");
    assert!(informe.cambios_recibidos > 0, "{informe:?}");

    let mut sup_a = sup.load(&doc_a.id).await?.context("A at the supervisor")?;
    let mut sup_b = sup.load(&doc_b.id).await?.context("B at the supervisor")?;
    let mut sup_z = sup.load(&doc_zona.id).await?.context("zone")?;
    sup.close().await;
    assert_eq!(sorted(sup_a.get_heads()), heads_a, "A's heads");
    assert_eq!(sorted(sup_b.get_heads()), heads_b, "B's heads");
    assert_eq!(sorted(sup_z.get_heads()), heads_zona, "the zone's heads");
    // The same content as A's replicas, the conflict included.
    let export_sup = json!({
        "escuela": escuela::leer(&sup_a)?,
        "conflictos": conflictos::listar(&sup_a),
    });
    assert_eq!(export_sup, export_a);
    check_conflict(&serde_json::to_value(conflictos::listar(&sup_a))?, &ruta)?;
    assert_eq!(escuela::leer(&sup_b)?.cct, CCT_B);
    assert!(conflictos::listar(&sup_b).is_empty());
    assert_eq!(zona::leer(&sup_z)?.practicas.len(), 2);

    // ---- A docente who wrote to the zone document before ever connecting. ----------------------
    // The CLI cannot know her access offline; the server holds the zone read-only for her and
    // never takes the change. Her sync still finishes, says so, and leaves exactly that change
    // unconfirmed; from then on the CLI refuses such edits.
    let t_lola = srv.usuario("lola", "docente", Some(CCT_A), None).await?;
    let lola = Replica::new(tmp.path().join("lola"));
    init(&lola, CCT_A, NOMBRE_A, "Mtra. Lola Pérez")?;
    new_id(
        &lola,
        &[
            "zona",
            "practica",
            "add",
            "--titulo",
            "Práctica sin permiso",
        ],
    )?;
    login(&lola, &srv.url, &t_lola)?;
    let out = cli(&lola, &["sync"])?;
    assert!(
        out.contains("solo puede leer el documento zona") && out.contains("1 cambio(s)"),
        "{out}"
    );
    let e = cli_json(&lola, &["estado"])?;
    assert_eq!(sin_confirmar(&e, &doc_a.id)?, 0, "{e}");
    assert_eq!(sin_confirmar(&e, &doc_zona.id)?, 1, "{e}");
    let refused =
        tokio::task::block_in_place(|| lola.run(&["zona", "practica", "add", "--titulo", "Otra"]))?;
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    // Her school work went through; the práctica reached no one.
    assert_eq!(
        cli_json(&lola, &["export", "json"])?["escuela"]["acuerdos"],
        export_a["escuela"]["acuerdos"]
    );
    sync(&beto)?;
    assert_eq!(
        cli_json(&beto, &["zona", "practica", "list"])?
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Helpers. The CLI runs as a child process; `block_in_place` lets the in-process server keep
// serving on the other workers while this one waits for it.

fn cli(r: &Replica, args: &[&str]) -> Result<String> {
    tokio::task::block_in_place(|| r.ok(args))
}

fn cli_json(r: &Replica, args: &[&str]) -> Result<Value> {
    tokio::task::block_in_place(|| r.json(args))
}

fn init(r: &Replica, cct: &str, nombre: &str, autor: &str) -> Result<()> {
    cli(
        r,
        &[
            "init", "--cct", cct, "--nombre", nombre, "--zona", ZONA, "--ciclo", CICLO, "--autor",
            autor,
        ],
    )?;
    Ok(())
}

fn login(r: &Replica, url: &str, token: &str) -> Result<()> {
    cli(r, &["login", "--servidor", url, "--token", token])?;
    Ok(())
}

/// One `bitacora sync`; its report.
fn sync(r: &Replica) -> Result<Value> {
    cli_json(r, &["sync"])
}

/// Runs an `… add --json` and returns the new record's id.
fn new_id(r: &Replica, args: &[&str]) -> Result<String> {
    let v = cli_json(r, args)?;
    Ok(v["id"]
        .as_str()
        .with_context(|| format!("no id in {v}"))?
        .to_string())
}

fn find_id<'a>(list: &'a Value, id: &str) -> Option<&'a Value> {
    list.as_array()?.iter().find(|x| x["id"] == id)
}

fn contains_id(list: &Value, id: &str) -> bool {
    find_id(list, id).is_some()
}

/// The unconfirmed changes `estado --json` reports for one document.
fn sin_confirmar(estado: &Value, id: &DocumentId) -> Result<u64> {
    estado["documentos"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["documento"] == id.to_string().as_str()))
        .and_then(|d| d["cambios_sin_confirmar"].as_u64())
        .with_context(|| format!("{id} not in {estado}"))
}

fn sorted(mut h: Vec<ChangeHash>) -> Vec<ChangeHash> {
    h.sort();
    h
}

/// Exactly one conflict, on the acuerdo's status, with Ana's and Luis's values.
fn check_conflict(c: &Value, ruta: &str) -> Result<()> {
    let c = c.as_array().context("conflicts")?;
    assert_eq!(c.len(), 1, "exactly one conflict: {c:?}");
    assert_eq!(c[0]["ruta"], ruta);
    let mut vals: Vec<(String, String)> = c[0]["valores"]
        .as_array()
        .context("valores")?
        .iter()
        .map(|v| {
            (
                v["valor"].as_str().unwrap_or_default().to_string(),
                v["autor"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    vals.sort();
    assert_eq!(
        vals,
        vec![
            ("cancelado".to_string(), "Mtro. Luis Gómez".to_string()),
            ("cumplido".to_string(), "Mtra. Ana López".to_string()),
        ]
    );
    Ok(())
}
