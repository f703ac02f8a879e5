//! The dashboard's projection never freezes (issue 11). Each story runs on SQLite and, when
//! `BITACORA_TEST_DATABASE_URL` is set, on PostgreSQL in a fresh schema.
//!
//! - `genesis_only`: a school registered while the server runs, whose document never receives a
//!   change beyond its genesis, still gets its projection. This is the stall seen in
//!   `projection_matches_document_postgres`: a scenario whose replicas made no change brought
//!   nothing new to the hub, so nothing marked the document and the projector never ran for it
//!   (the seed is committed in `projection_matches_document.proptest-regressions`).
//! - `failure_retried`: a projection that fails (here: one of its tables is missing) is retried
//!   with no new change arriving, once the cause is gone.
//! - `lost_mark`: changes committed behind the hub's back (so nothing marks the document) are
//!   reported as a lag (the sweep lists the document as behind) and then projected.
//!
//! Every wait is on the projector's attempt counter, bounded by [`ESPERA`].

use std::io::Write;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bitacora_core::automerge::AutoCommit;
use bitacora_core::ids::{Cct, CicloEscolar, DocumentId, Fecha, RecordId};
use bitacora_core::model::Ctx;
use bitacora_core::model::escuela::{self, NuevoAcuerdo};
use bitacora_core::proyeccion::proyectar;
use bitacora_server::admin;
use bitacora_server::db::Database;
use bitacora_server::proyector::Proyector;
use tokio::sync::watch;

const CCT: &str = "07DPR0123X";
const CICLO: &str = "2025-2026";
/// Every wait for the projector is bounded by this.
const ESPERA: Duration = Duration::from_secs(15);
/// The sweep runs this often in these tests (30 s in production).
const BARRIDO: Duration = Duration::from_millis(200);

/// A running projector over `db`, stopped on drop.
struct Proyectando {
    proyector: Arc<Proyector>,
    intentos: watch::Receiver<u64>,
    stop: watch::Sender<bool>,
    tarea: Option<tokio::task::JoinHandle<()>>,
}

impl Proyectando {
    fn iniciar(db: &Database) -> Proyectando {
        let proyector = Arc::new(Proyector::con_barrido(BARRIDO));
        let intentos = proyector.suscribir();
        let (stop, stop_rx) = watch::channel(false);
        let tarea = tokio::spawn({
            let (p, db) = (proyector.clone(), db.clone());
            async move { p.ejecutar(db, stop_rx).await }
        });
        Proyectando {
            proyector,
            intentos,
            stop,
            tarea: Some(tarea),
        }
    }

    /// Waits (on each projection attempt, bounded) until `cond` holds.
    async fn hasta<F, Fut>(&mut self, que: &str, mut cond: F) -> Result<()>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<bool>>,
    {
        let espera = async {
            loop {
                if cond().await? {
                    return Ok::<(), anyhow::Error>(());
                }
                self.intentos
                    .changed()
                    .await
                    .context("the projector stopped")?;
            }
        };
        match tokio::time::timeout(ESPERA, espera).await {
            Ok(r) => r,
            Err(_) => bail!(
                "waited {ESPERA:?} for {que}; failed attempts {}, queued {}",
                self.proyector
                    .fallidas
                    .load(std::sync::atomic::Ordering::Relaxed),
                self.proyector.en_cola()
            ),
        }
    }

    async fn parar(mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.tarea.take() {
            let _ = t.await;
        }
    }
}

fn ciclo() -> CicloEscolar {
    CicloEscolar::parse(CICLO).unwrap()
}

fn doc_id() -> DocumentId {
    DocumentId::escuela(&Cct::parse(CCT).unwrap(), ciclo())
}

async fn registrar(db: &Database) -> Result<()> {
    admin::zona_add(db, "07FIZ0001", "Zona de prueba", ciclo()).await?;
    admin::escuela_add(db, CCT, "Escuela de prueba", "07FIZ0001", ciclo()).await?;
    Ok(())
}

/// The school's genesis plus `n` acuerdos made with the real model.
fn documento_con(n: u64) -> Result<AutoCommit> {
    let mut doc = escuela::genesis_escuela(&Cct::parse(CCT).unwrap(), ciclo())?;
    for k in 0..n {
        let ctx = Ctx {
            ahora: 1_760_000_000 + k as i64,
            autor: Some("Mtra. Rosa"),
        };
        escuela::agregar_acuerdo(
            &mut doc,
            &ctx,
            &RecordId::from_random(1000 + k),
            &NuevoAcuerdo {
                texto: format!("Acuerdo {k}: revisar la asistencia"),
                responsables: vec!["Director".into()],
                fecha_compromiso: Some(Fecha::parse("2025-12-12").unwrap()),
                sesion_origen: None,
            },
        )?;
    }
    Ok(doc)
}

/// Whether the stored projection is exactly the projection of `doc`.
async fn proyectado(db: &Database, doc: &mut AutoCommit) -> Result<bool> {
    let esperado = proyectar(doc)?;
    Ok(db.proyeccion_version(&doc_id().to_string()).await?
        == Some((esperado.heads.clone(), esperado.cambios as i64)))
}

async fn genesis_only(db: &Database) -> Result<()> {
    let mut p = Proyectando::iniciar(db);
    // Registered after the projector started: nothing marks it, and it never changes.
    registrar(db).await?;
    let mut genesis = documento_con(0)?;
    p.hasta(
        "the projection of a school that only has its genesis",
        || {
            let mut g = genesis.clone();
            async move { proyectado(db, &mut g).await }
        },
    )
    .await?;
    assert!(proyectado(db, &mut genesis).await?);
    assert!(db.proyecciones_atrasadas().await?.is_empty());
    p.parar().await;
    Ok(())
}

async fn failure_retried(db: &Database) -> Result<()> {
    registrar(db).await?;
    // Break projections: the table of agreements is gone.
    sqlx_exec(
        db,
        "ALTER TABLE proy_acuerdos RENAME TO proy_acuerdos_fuera",
    )
    .await?;
    let mut p = Proyectando::iniciar(db);
    let mut doc = documento_con(3)?;
    db.append(&doc_id(), &doc.save_after(&documento_con(0)?.get_heads()))
        .await?;
    p.proyector.marcar(doc_id());
    {
        let pr = p.proyector.clone();
        p.hasta("a failed projection attempt", || {
            let pr = pr.clone();
            async move { Ok(pr.fallidas.load(std::sync::atomic::Ordering::Relaxed) > 0) }
        })
        .await?;
    }
    assert!(!proyectado(db, &mut doc).await?, "nothing stored yet");
    // The cause goes away; no change arrives and nobody marks the document again.
    sqlx_exec(
        db,
        "ALTER TABLE proy_acuerdos_fuera RENAME TO proy_acuerdos",
    )
    .await?;
    p.hasta("the retried projection", || {
        let mut d = doc.clone();
        async move { proyectado(db, &mut d).await }
    })
    .await?;
    assert!(db.proyecciones_atrasadas().await?.is_empty());
    p.parar().await;
    Ok(())
}

async fn lost_mark(db: &Database) -> Result<()> {
    registrar(db).await?;
    let mut p = Proyectando::iniciar(db);
    let mut uno = documento_con(1)?;
    p.hasta("the first projection", || {
        let mut g = documento_con(0).expect("genesis");
        async move { proyectado(db, &mut g).await }
    })
    .await?;
    p.parar().await;
    // Committed while no projector runs and nothing marks it: a lost wake-up.
    db.append(&doc_id(), &uno.save_after(&documento_con(0)?.get_heads()))
        .await?;
    let atrasos = db.proyecciones_atrasadas().await?;
    assert_eq!(atrasos.len(), 1, "{atrasos:?}");
    assert_eq!(atrasos[0].documento, doc_id().to_string());
    assert_eq!(atrasos[0].versiones_detras(), 1);
    assert!(db.proyeccion_atraso(&doc_id().to_string()).await?.is_some());
    // A projector that was never told about it catches up on its own.
    let mut p = Proyectando::iniciar(db);
    p.hasta("the projection of the unannounced change", || {
        let mut d = uno.clone();
        async move { proyectado(db, &mut d).await }
    })
    .await?;
    assert!(proyectado(db, &mut uno).await?);
    assert!(db.proyecciones_atrasadas().await?.is_empty());
    assert!(db.proyeccion_atraso(&doc_id().to_string()).await?.is_none());
    assert!(p.proyector.atrasos().is_empty());
    p.parar().await;
    Ok(())
}

async fn sqlx_exec(db: &Database, sql: &'static str) -> Result<()> {
    match db {
        Database::Sqlite(p) => sqlx::query(sql).execute(p).await.map(|_| ())?,
        Database::Postgres(p) => sqlx::query(sql).execute(p).await.map(|_| ())?,
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The two back-ends.

async fn en_sqlite<F, Fut>(historia: F) -> Result<()>
where
    F: FnOnce(Database) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let dir = tempfile::tempdir()?;
    let db = Database::connect(&format!(
        "sqlite://{}",
        dir.path().join("zona.db").display()
    ))
    .await?;
    let r = historia(db.clone()).await;
    db.close().await;
    r
}

async fn en_postgres<F, Fut>(nombre: &str, historia: F) -> Result<()>
where
    F: FnOnce(Database) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let Ok(url) = std::env::var("BITACORA_TEST_DATABASE_URL") else {
        let _ = std::io::stderr().write_all(
            format!("\n* {nombre} SKIPPED: BITACORA_TEST_DATABASE_URL is unset. *\n\n").as_bytes(),
        );
        return Ok(());
    };
    let admin_pool = sqlx::PgPool::connect(&url).await?;
    let schema = format!("proy_{:016x}", rand::random::<u64>());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&admin_pool)
        .await?;
    let opts = sqlx::postgres::PgConnectOptions::from_str(&url)?
        .options([("search_path", schema.as_str())]);
    let r = async {
        let db = Database::connect_pg(opts).await?;
        db.migrate().await?;
        let r = historia(db.clone()).await;
        db.close().await;
        r
    }
    .await;
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&admin_pool)
        .await;
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn genesis_only_sqlite() -> Result<()> {
    en_sqlite(|db| async move { genesis_only(&db).await }).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn genesis_only_postgres() -> Result<()> {
    en_postgres("genesis_only_postgres", |db| async move {
        genesis_only(&db).await
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_retried_sqlite() -> Result<()> {
    en_sqlite(|db| async move { failure_retried(&db).await }).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_retried_postgres() -> Result<()> {
    en_postgres("failure_retried_postgres", |db| async move {
        failure_retried(&db).await
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_mark_sqlite() -> Result<()> {
    en_sqlite(|db| async move { lost_mark(&db).await }).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_mark_postgres() -> Result<()> {
    en_postgres(
        "lost_mark_postgres",
        |db| async move { lost_mark(&db).await },
    )
    .await
}
