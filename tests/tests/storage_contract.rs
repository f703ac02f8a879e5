//! The replica storage contract (`bitacora_core::storage::Storage`, issue 12) on every
//! implementation: the laptop's SQLite store, the zone server's database on SQLite and on
//! PostgreSQL (a fresh schema; skipped loudly when `BITACORA_TEST_DATABASE_URL` is unset), and
//! the in-memory storage of property tests and fuzz targets. The steps are in
//! `tests/src/contrato.rs`.

use std::sync::Arc;

use anyhow::Result;
use bitacora_core::storage::MemoryStorage;
use bitacora_core::store::Store;
use bitacora_server::db::Database;
use bitacora_tests::contrato::contrato;
use bitacora_tests::server::PgSchema;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory() -> Result<()> {
    contrato(Arc::new(MemoryStorage::new())).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn laptop_store() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path()).await?;
    let r = contrato(Arc::new(store.clone())).await;
    store.close().await;
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zone_database_sqlite() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = Database::connect(&format!(
        "sqlite://{}",
        dir.path().join("zona.db").display()
    ))
    .await?;
    let r = contrato(Arc::new(db.clone())).await;
    db.close().await;
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zone_database_postgres() -> Result<()> {
    let Some(schema) = PgSchema::from_env("zone_database_postgres", "contrato").await? else {
        return Ok(());
    };
    let r = async {
        let db = schema.database().await?;
        let r = contrato(Arc::new(db.clone())).await;
        db.close().await;
        r
    }
    .await;
    schema.drop_schema().await?;
    r
}
