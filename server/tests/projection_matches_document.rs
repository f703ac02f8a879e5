//! `projection_matches_document` (part of issue 5's contract): the dashboard's stored summary of
//! a school document equals a recomputation from the merged document, for random documents
//! (scenarios of `bitacora-escenario`: several devices editing offline, concurrent edits and
//! conflicts) and random arrival orders of their changes.
//!
//! Each case: the replicas' changes reach the server's hub one batch at a time, in a random
//! order (causal order not respected: automerge holds a change until its dependencies arrive),
//! while the real projection task runs in the background; once the server holds everything, the
//! test waits for the projection of those heads (on the projector's event, no sleeps) and reads
//! it back from SQL. Then: replaying the projection is idempotent, and a projection of fewer
//! changes never replaces it.
//!
//! SQLite always (24 cases; `PROPTEST_CASES` overrides); PostgreSQL too when
//! `BITACORA_TEST_DATABASE_URL` is set (6 cases, each in a fresh schema).

use std::io::Write;
use std::str::FromStr;
use std::time::Duration;

use bitacora_core::automerge::AutoCommit;
use bitacora_core::ids::{Cct, CicloEscolar, DocumentId};
use bitacora_core::proyeccion::proyectar;
use bitacora_escenario::{Escenario, ejecutar, escenario, sorted_heads};
use bitacora_server::admin;
use bitacora_server::db::Database;
use bitacora_server::hub::Hub;
use bitacora_server::proyector::proyectar_documento;
use proptest::prelude::*;
use rand::SeedableRng;
use rand::seq::SliceRandom;

const CCT: &str = "07DPR0123X";
const CICLO: &str = "2025-2026";
/// How long a case waits for the projection of the merged heads.
const ESPERA: Duration = Duration::from_secs(20);
/// Shrinking a failure stops after this long (each step can wait [`ESPERA`]).
const MAX_SHRINK_MS: u32 = 60_000;

fn casos(defecto: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(defecto)
}

async fn caso(
    db: Database,
    esc: Escenario,
    semilla: u64,
    lote: usize,
) -> Result<(), TestCaseError> {
    let fallo = |e: &dyn std::fmt::Display| TestCaseError::fail(e.to_string());
    let ciclo = CicloEscolar::parse(CICLO).unwrap();
    admin::zona_add(&db, "07FIZ0001", "Zona de prueba", ciclo)
        .await
        .map_err(|e| fallo(&e))?;
    admin::escuela_add(&db, CCT, "Escuela de prueba", "07FIZ0001", ciclo)
        .await
        .map_err(|e| fallo(&e))?;
    let doc_id = DocumentId::escuela(&Cct::parse(CCT).unwrap(), ciclo);

    let (mut reps, _) = ejecutar(&esc)?;
    // Every change any replica made, once each, in a random order.
    let mut cambios = Vec::new();
    let mut vistos = std::collections::HashSet::new();
    for r in reps.iter_mut() {
        for c in r.get_changes(&[]) {
            if vistos.insert(c.hash()) {
                cambios.push(c.raw_bytes().to_vec());
            }
        }
    }
    cambios.shuffle(&mut rand::rngs::StdRng::seed_from_u64(semilla));

    let hub = Hub::new(db.clone(), u64::MAX);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let proyector = hub.proyector.clone();
    let mut hechas = proyector.suscribir();
    let tarea = tokio::spawn({
        let db = db.clone();
        async move { proyector.ejecutar(db, stop_rx).await }
    });
    let entry = hub
        .entry(&doc_id)
        .await
        .map_err(|e| fallo(&e))?
        .ok_or_else(|| TestCaseError::fail("school document not registered"))?;
    for bloque in cambios.chunks(lote.max(1)) {
        hub.apply_changes(&entry, bloque.concat())
            .await
            .map_err(|e| fallo(&e))?;
    }

    // The merged document, as every replica would hold it after syncing.
    let mut merged = reps[0].clone();
    for r in reps.iter_mut().skip(1) {
        merged.merge(r).map_err(|e| fallo(&e))?;
    }
    let heads = sorted_heads(&mut merged);
    let server_heads = {
        let mut h = hub.heads(&entry).await.map_err(|e| fallo(&e))?;
        h.sort();
        h
    };
    prop_assert_eq!(&server_heads, &heads, "the server holds every change");
    let esperado = proyectar(&mut merged).map_err(|e| fallo(&e))?;

    // Wait for the projection of exactly these heads.
    let espera = async {
        loop {
            let v = db
                .proyeccion_version(&doc_id.to_string())
                .await
                .map_err(|e| fallo(&e))?;
            if v.as_ref().map(|(h, _)| h) == Some(&esperado.heads) {
                return Ok::<(), TestCaseError>(());
            }
            hechas
                .changed()
                .await
                .map_err(|_| TestCaseError::fail("projector stopped"))?;
        }
    };
    // Bounded: a projection that does not arrive fails the case in seconds, with what was
    // stored, instead of holding the run (and every shrink step) for minutes.
    if tokio::time::timeout(ESPERA, espera).await.is_err() {
        let guardada = db.proyeccion_version(&doc_id.to_string()).await;
        return Err(TestCaseError::fail(format!(
            "projection never reached the merged heads: waited {ESPERA:?} for heads {} ({} changes); \
             stored (heads, changes): {guardada:?}; failed attempts {}; queued {}",
            esperado.heads,
            esperado.cambios,
            hub.proyector
                .fallidas
                .load(std::sync::atomic::Ordering::Relaxed),
            hub.proyector.en_cola(),
        )));
    }
    let guardado = db
        .proyeccion(&doc_id.to_string())
        .await
        .map_err(|e| fallo(&e))?
        .ok_or_else(|| TestCaseError::fail("no stored projection"))?;
    prop_assert_eq!(&guardado, &esperado);

    // Idempotent: projecting again stores the same rows.
    prop_assert!(
        proyectar_documento(&db, &doc_id)
            .await
            .map_err(|e| fallo(&e))?
    );
    let otra_vez = db
        .proyeccion(&doc_id.to_string())
        .await
        .map_err(|e| fallo(&e))?;
    prop_assert_eq!(otra_vez.as_ref(), Some(&esperado));

    // A projection of fewer changes (the bare genesis) never replaces it.
    if esperado.cambios > 1 {
        let mut genesis: AutoCommit =
            bitacora_core::model::escuela::genesis_escuela(&Cct::parse(CCT).unwrap(), ciclo)
                .map_err(|e| fallo(&e))?;
        let viejo = proyectar(&mut genesis).map_err(|e| fallo(&e))?;
        prop_assert!(
            !db.guardar_proyeccion(&viejo, 0)
                .await
                .map_err(|e| fallo(&e))?
        );
        let sigue = db
            .proyeccion(&doc_id.to_string())
            .await
            .map_err(|e| fallo(&e))?;
        prop_assert_eq!(sigue.as_ref(), Some(&esperado));
    }

    let _ = stop_tx.send(true);
    let _ = tarea.await;
    Ok(())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: casos(24), max_shrink_time: MAX_SHRINK_MS, ..ProptestConfig::default() })]

    #[test]
    fn projection_matches_document(esc in escenario(), semilla in any::<u64>(), lote in 1..8usize) {
        runtime().block_on(async {
            let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
            let db = Database::connect(&format!("sqlite://{}", dir.path().join("zona.db").display()))
                .await
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let r = caso(db.clone(), esc, semilla, lote).await;
            db.close().await;
            r
        })?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: casos(6).min(6), max_shrink_time: MAX_SHRINK_MS, ..ProptestConfig::default() })]

    #[test]
    fn projection_matches_document_postgres(esc in escenario(), semilla in any::<u64>(), lote in 1..8usize) {
        let Ok(url) = std::env::var("BITACORA_TEST_DATABASE_URL") else {
            let _ = std::io::stderr().write_all(
                b"\n* projection_matches_document_postgres SKIPPED: BITACORA_TEST_DATABASE_URL is unset. *\n\n",
            );
            return Ok(());
        };
        runtime().block_on(async {
            let f = |e: &dyn std::fmt::Display| TestCaseError::fail(e.to_string());
            let admin_pool = sqlx::PgPool::connect(&url).await.map_err(|e| f(&e))?;
            let schema = format!("proy_{:016x}", rand::random::<u64>());
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                .execute(&admin_pool)
                .await
                .map_err(|e| f(&e))?;
            let opts = sqlx::postgres::PgConnectOptions::from_str(&url)
                .map_err(|e| f(&e))?
                .options([("search_path", schema.as_str())]);
            let r = match Database::connect_pg(opts).await {
                Ok(db) => match db.migrate().await {
                    Ok(()) => {
                        let r = caso(db.clone(), esc, semilla, lote).await;
                        db.close().await;
                        r
                    }
                    Err(e) => Err(f(&e)),
                },
                Err(e) => Err(f(&e)),
            };
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                .execute(&admin_pool)
                .await;
            r
        })?;
    }
}
