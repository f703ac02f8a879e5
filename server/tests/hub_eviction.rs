//! The document cache stays within its memory budget: idle documents (no connection subscribed)
//! are unloaded, least recently used first, and load again unchanged on next use; a document a
//! connection follows is never unloaded under it.

use std::sync::atomic::Ordering;

use bitacora_core::ids::CicloEscolar;
use bitacora_server::admin;
use bitacora_server::db::Database;
use bitacora_server::hub::{Hub, Inbox};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_documents_are_evicted_under_the_budget() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = Database::connect(&format!("sqlite://{}", dir.path().join("s.db").display())).await?;
    let ciclo = CicloEscolar::parse("2025-2026")?;
    admin::zona_add(&db, "07FIZ0014", "Zona", ciclo).await?;
    let mut ids = Vec::new();
    for cct in ["07DPR0001A", "07DPR0002B", "07DPR0003C"] {
        ids.push(
            admin::escuela_add(&db, cct, "Escuela", "07FIZ0014", ciclo)
                .await?
                .id,
        );
    }
    // A budget smaller than one document: everything idle must go.
    let hub = Hub::new(db.clone(), 1);
    let mut heads = Vec::new();
    for id in &ids {
        let e = hub.entry(id).await?.expect("registered");
        heads.push(hub.heads(&e).await?);
    }
    assert_eq!(hub.loaded_docs.load(Ordering::Relaxed), 3);
    assert!(hub.loaded_bytes() > 1);

    // A connection follows the first document.
    let inbox = Inbox::new(7);
    let seguido = hub.entry(&ids[0]).await?.expect("registered");
    seguido.subscribe(&inbox);

    hub.evict_if_needed();
    assert_eq!(
        hub.evictions.load(Ordering::Relaxed),
        2,
        "the two idle documents are unloaded"
    );
    assert_eq!(
        hub.loaded_docs.load(Ordering::Relaxed),
        1,
        "the followed one stays"
    );

    // Unloaded documents load again, unchanged.
    for (id, h) in ids.iter().zip(&heads) {
        let e = hub.entry(id).await?.expect("registered");
        assert_eq!(&hub.heads(&e).await?, h);
    }
    // Once nobody follows it, the first one can go too.
    drop(inbox);
    hub.evict_if_needed();
    assert_eq!(hub.loaded_docs.load(Ordering::Relaxed), 0);
    db.close().await;
    Ok(())
}
