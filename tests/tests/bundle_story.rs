//! `bundle_story`: a school with no network at all. Its changes travel to the zone server on a
//! USB stick (`bitacora bundle export`, `bitacora-server admin bundle importar`, twice), the
//! return bundle (`admin bundle exportar`) travels back, and the school ends exactly where
//! online sync would have left it. Damaged, forged and foreign bundles are refused with nothing
//! applied. Runs on SQLite and, when `BITACORA_TEST_DATABASE_URL` is set, on PostgreSQL.

use std::path::Path;

use anyhow::{Context, Result};
use bitacora_core::bundle::Bundle;
use bitacora_server::bundles;
use bitacora_server::db::Database;
use bitacora_server::hub::assemble;
use bitacora_tests::Replica;
use bitacora_tests::server::{TestServer, test_config};

const A: &str = "07DPR0001A";
const B: &str = "07DPR0002B";
const ZONA: &str = "07FIZ0014";

fn init(r: &Replica, cct: &str, autor: &str) -> Result<()> {
    r.ok(&[
        "init",
        "--cct",
        cct,
        "--nombre",
        &format!("Escuela {cct}"),
        "--zona",
        ZONA,
        "--ciclo",
        "2025-2026",
        "--autor",
        autor,
    ])?;
    Ok(())
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

async fn heads_servidor(db: &Database, id: &bitacora_core::ids::DocumentId) -> Result<Vec<String>> {
    let doc = assemble(&db.load(id).await?).map_err(anyhow::Error::msg)?;
    let mut h: Vec<String> = doc.get_heads().iter().map(|h| h.to_string()).collect();
    h.sort();
    Ok(h)
}

async fn story(srv: TestServer) -> Result<()> {
    srv.zona(ZONA).await?;
    let doc_a = srv.escuela(A, ZONA).await?;
    srv.escuela(B, ZONA).await?;
    let tmp = tempfile::tempdir()?;
    let escuela = Replica::new(tmp.path().join("escuela-a"));
    let otra = Replica::new(tmp.path().join("escuela-b"));
    init(&escuela, A, "Mtra. Ana")?;
    init(&otra, B, "Mtro. Beto")?;

    // A whole stretch offline.
    for i in 0..12 {
        escuela.ok(&[
            "acuerdo",
            "add",
            "--texto",
            &format!("Acuerdo fuera de línea {i}"),
            "--responsable",
            "Director",
        ])?;
    }
    escuela.ok(&[
        "pemc",
        "objetivo",
        "add",
        "--texto",
        "Mejorar la lectura",
        "--ambito",
        "aprovechamiento_asistencia",
    ])?;
    escuela.ok(&[
        "zona",
        "practica",
        "add",
        "--titulo",
        "Lectura con familias",
        "--descripcion",
        "Los viernes.",
    ])?;

    // To the zone office.
    let ida = tmp.path().join("ida.bitacora");
    escuela.ok(&["bundle", "export", "--salida", path(&ida)])?;
    let bytes = std::fs::read(&ida)?;
    let primera = bundles::importar(&srv.db, &bytes).await?;
    assert!(
        primera
            .iter()
            .any(|d| d.owner == A && d.cambios_nuevos >= 14),
        "{primera:?}"
    );
    let segunda = bundles::importar(&srv.db, &bytes).await?;
    assert!(
        segunda.iter().all(|d| d.cambios_nuevos == 0),
        "importing twice changes nothing: {segunda:?}"
    );

    // Refused, with nothing applied: a damaged bundle, a bundle relabelled as another school's,
    // and another school's bundle carrying this school's document.
    let antes = heads_servidor(&srv.db, &doc_a.id).await?;
    let mut danado = bytes.clone();
    let mitad = danado.len() / 2;
    danado[mitad] ^= 0x55;
    let e = bundles::importar(&srv.db, &danado)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("dañado") || e.contains("suma de verificación"),
        "{e}"
    );
    let mut falso = Bundle::decode(&bytes)?;
    falso.header.origen = B.to_string();
    let e = bundles::importar(&srv.db, &falso.encode())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("no puede escribir"), "{e}");
    assert!(
        bundles::importar(&srv.db, &bytes[..bytes.len() - 7])
            .await
            .is_err(),
        "truncated"
    );
    assert_eq!(
        heads_servidor(&srv.db, &doc_a.id).await?,
        antes,
        "refused bundles change nothing"
    );

    // Back to the school with what it lacks; the other school learns the shared práctica.
    let vuelta = tmp.path().join("vuelta.bitacora");
    std::fs::write(&vuelta, bundles::exportar(&srv.db, A).await?.encode())?;
    escuela.ok(&["bundle", "import", path(&vuelta)])?;
    let estado = escuela.json(&["estado"])?;
    for d in estado["documentos"].as_array().context("documentos")? {
        assert_eq!(
            d["cambios_sin_confirmar"], 0,
            "the return bundle confirms everything: {estado}"
        );
    }
    let vuelta_b = tmp.path().join("vuelta-b.bitacora");
    std::fs::write(&vuelta_b, bundles::exportar(&srv.db, B).await?.encode())?;
    otra.ok(&["bundle", "import", path(&vuelta_b)])?;
    let practicas = otra.json(&["zona", "practica", "list"])?;
    assert!(
        practicas
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["titulo"] == "Lectura con familias" && p["escuela"] == A),
        "{practicas}"
    );
    // The return bundle is not for school B's own document store: B never receives A's document.
    let e = otra.run(&["bundle", "import", path(&vuelta)])?;
    assert_eq!(
        e.status.code(),
        Some(2),
        "another school's return bundle is refused"
    );

    // The school now holds every change the server has.
    let server_heads = heads_servidor(&srv.db, &doc_a.id).await?;
    let hist = escuela.hashes()?;
    assert!(
        server_heads.iter().all(|h| hist.contains(h)),
        "the school holds every change the server has"
    );

    // Exactly as online: a second teacher who syncs online gets the same document.
    let ana2 = Replica::new(tmp.path().join("escuela-a-2"));
    init(&ana2, A, "Mtra. Alma")?;
    let token = srv.usuario("alma", "docente", Some(A), None).await?;
    ana2.ok(&["login", "--servidor", &srv.url, "--token", &token])?;
    ana2.ok(&["sync"])?;
    let (ea, eb) = (
        escuela.json(&["export", "json"])?,
        ana2.json(&["export", "json"])?,
    );
    assert_eq!(ea["escuela"]["acuerdos"], eb["escuela"]["acuerdos"]);
    assert_eq!(ea["escuela"]["objetivos"], eb["escuela"]["objetivos"]);

    // The next trip carries only what is new.
    escuela.ok(&["acuerdo", "add", "--texto", "Un acuerdo más"])?;
    let ida2 = tmp.path().join("ida2.bitacora");
    escuela.ok(&["bundle", "export", "--salida", path(&ida2)])?;
    let b2 = Bundle::decode(&std::fs::read(&ida2)?)?;
    let doc = b2
        .header
        .documentos
        .iter()
        .find(|d| d.owner == A)
        .context("A in bundle")?;
    assert!(
        !doc.desde.is_empty(),
        "starts from the heads the server confirmed"
    );
    assert!(
        std::fs::metadata(&ida2)?.len() < bytes.len() as u64 / 2,
        "much smaller than the first bundle"
    );
    let r = bundles::importar(&srv.db, &std::fs::read(&ida2)?).await?;
    assert!(
        r.iter().any(|d| d.owner == A && d.cambios_nuevos == 1),
        "{r:?}"
    );

    // The same trip over HTTP (`bundle subir` / `bundle bajar`, e.g. from a cybercafé): the
    // server reloads the documents, so a teacher syncing online sees the uploaded change.
    let token_ana = srv.usuario("ana", "docente", Some(A), None).await?;
    escuela.ok(&["login", "--servidor", &srv.url, "--token", &token_ana])?;
    ana2.ok(&["sync"])?; // the server's copy is now loaded in memory
    escuela.ok(&["acuerdo", "add", "--texto", "Subido por HTTP"])?;
    let ida3 = tmp.path().join("ida3.bitacora");
    escuela.ok(&["bundle", "export", "--salida", path(&ida3)])?;
    let subida = escuela.json(&["bundle", "subir", path(&ida3)])?;
    assert!(
        subida
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["owner"] == A && d["cambios_nuevos"] == 1),
        "{subida}"
    );
    ana2.ok(&["sync"])?;
    let l = ana2.json(&["acuerdo", "list"])?;
    assert!(
        l.as_array()
            .unwrap()
            .iter()
            .any(|a| a["texto"] == "Subido por HTTP"),
        "the running server serves the uploaded change"
    );
    let vuelta3 = tmp.path().join("vuelta3.bitacora");
    escuela.ok(&["bundle", "bajar", "--salida", path(&vuelta3)])?;
    escuela.ok(&["bundle", "import", path(&vuelta3)])?;
    // Another school's token can neither upload nor download this school's bundles.
    let token_b = srv.usuario("beto", "docente", Some(B), None).await?;
    otra.ok(&["login", "--servidor", &srv.url, "--token", &token_b])?;
    let antes = heads_servidor(&srv.db, &doc_a.id).await?;
    escuela.ok(&["acuerdo", "add", "--texto", "No debe llegar"])?;
    let ida4 = tmp.path().join("ida4.bitacora");
    escuela.ok(&["bundle", "export", "--salida", path(&ida4)])?;
    let fuera = otra.run(&["bundle", "subir", path(&ida4)])?;
    assert!(
        !fuera.status.success(),
        "school B cannot upload school A's bundle"
    );
    assert_eq!(
        heads_servidor(&srv.db, &doc_a.id).await?,
        antes,
        "nothing applied"
    );
    srv.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundle_story() -> Result<()> {
    story(TestServer::start().await?).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundle_story_postgres() -> Result<()> {
    let Ok(url) = std::env::var("BITACORA_TEST_DATABASE_URL") else {
        eprintln!(
            "\n*** bundle_story_postgres SKIPPED: BITACORA_TEST_DATABASE_URL is not set ***\n"
        );
        return Ok(());
    };
    let schema = format!("bundle_story_{:016x}", rand::random::<u64>());
    let admin = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&admin)
        .await?;
    let opts: sqlx::postgres::PgConnectOptions = url.parse()?;
    let r = async {
        let db = Database::connect_pg(opts.options([("search_path", schema.as_str())])).await?;
        db.migrate().await?;
        let dir = tempfile::tempdir()?;
        let config = test_config(dir.path().to_path_buf());
        story(TestServer::start_on(dir, config, db).await?).await
    }
    .await;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&admin)
        .await?;
    r
}
