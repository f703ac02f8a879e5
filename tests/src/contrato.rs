//! The replica storage contract (`bitacora_core::storage`), told once and run against every
//! implementation by `tests/tests/storage_contract.rs`: the laptop's SQLite store, the zone
//! server's SQLite and PostgreSQL database, and the in-memory storage.
//!
//! Each step states one guarantee of the trait's documentation and checks it with documents
//! made by the real model.

use std::sync::Arc;

use anyhow::{Context, Result, ensure};
use automerge::{AutoCommit, ChangeHash};
use bitacora_core::ids::{Cct, CicloEscolar, DocumentId, Fecha, RecordId};
use bitacora_core::model::escuela::{self, NuevoAcuerdo};
use bitacora_core::model::{Ctx, DocInfo, DocKind};
use bitacora_core::storage::{Storage, assemble};

fn ciclo() -> CicloEscolar {
    CicloEscolar::parse("2025-2026").expect("ciclo")
}

/// A school's registry data and its genesis document.
pub fn escuela(cct: &str) -> Result<(DocInfo, AutoCommit)> {
    let cct = Cct::parse(cct)?;
    let genesis = escuela::genesis_escuela(&cct, ciclo())?;
    Ok((
        DocInfo {
            id: DocumentId::escuela(&cct, ciclo()),
            kind: DocKind::Escuela,
            owner: cct.to_string(),
            ciclo: ciclo().to_string(),
        },
        genesis,
    ))
}

/// One acuerdo more in `doc`, returned as the chunk a replica would append.
pub fn acuerdo(doc: &mut AutoCommit, k: u64) -> Result<Vec<u8>> {
    let antes = doc.get_heads();
    escuela::agregar_acuerdo(
        doc,
        &Ctx {
            ahora: 1_760_000_000 + k as i64,
            autor: Some("Mtra. Rosa"),
        },
        &RecordId::from_random(7_000 + k),
        &NuevoAcuerdo {
            texto: format!("Acuerdo {k}: revisar la asistencia"),
            responsables: vec!["Director".into()],
            fecha_compromiso: Some(Fecha::parse("2025-12-12")?),
            sesion_origen: None,
        },
    )?;
    Ok(doc.save_after(&antes))
}

fn sorted(mut h: Vec<ChangeHash>) -> Vec<ChangeHash> {
    h.sort();
    h
}

/// The stored document assembled, with its heads and change hashes.
async fn cargado<S: Storage>(s: &S, id: &DocumentId) -> Result<(Vec<ChangeHash>, usize)> {
    let stored = s
        .load(id)
        .await?
        .with_context(|| format!("{id} is registered"))?;
    let doc = assemble(&stored).map_err(anyhow::Error::msg)?;
    Ok((sorted(doc.get_heads()), doc.get_changes(&[]).len()))
}

/// The whole contract, on a fresh storage.
pub async fn contrato<S>(s: Arc<S>) -> Result<()>
where
    S: Storage + 'static,
{
    // Registration: idempotent, listed, and the genesis loads.
    let (info, mut doc) = escuela("07DPR0123X")?;
    ensure!(s.document(&info.id).await?.is_none(), "not there before");
    ensure!(s.load(&info.id).await?.is_none(), "no parts before");
    s.register(&info, &doc.save()).await?;
    s.register(&info, &doc.save()).await?;
    ensure!(s.document(&info.id).await?.as_ref() == Some(&info));
    ensure!(s.documents().await? == vec![info.clone()]);
    ensure!(cargado(&*s, &info.id).await? == (sorted(doc.get_heads()), 1));

    // Appends: durable once returned (read back), idempotent, in any order.
    let mut chunks = Vec::new();
    for k in 0..6 {
        chunks.push(acuerdo(&mut doc, k)?);
    }
    for c in &chunks {
        s.append(&info.id, c).await?;
    }
    let n = s.append(&info.id, &chunks[2]).await?;
    ensure!(
        n == 7,
        "genesis + 6 chunks, the repeated one stored once: {n}"
    );
    ensure!(cargado(&*s, &info.id).await? == (sorted(doc.get_heads()), 7));

    // An append to an unknown document is refused and stores nothing.
    let (otra, mut otra_doc) = escuela("07DJN0002B")?;
    let c = acuerdo(&mut otra_doc, 99)?;
    ensure!(s.append(&otra.id, &c).await.is_err(), "unknown document");
    ensure!(s.load(&otra.id).await?.is_none());

    // Compaction: one snapshot, everything still loads.
    s.compact(&info.id).await?;
    let stored = s.load(&info.id).await?.context("registered")?;
    ensure!(stored.snapshot.is_some(), "a snapshot after compaction");
    ensure!(
        stored.chunks.is_empty(),
        "every chunk covered: {}",
        stored.chunks.len()
    );
    ensure!(cargado(&*s, &info.id).await? == (sorted(doc.get_heads()), 7));

    // A chunk whose dependency is not stored is never deleted by compaction: the change stays,
    // and once the dependency arrives it applies.
    let falta = acuerdo(&mut doc, 10)?;
    let despues = acuerdo(&mut doc, 11)?;
    s.append(&info.id, &despues).await?;
    let extra = acuerdo(&mut doc, 12)?;
    s.compact(&info.id).await?;
    let stored = s.load(&info.id).await?.context("registered")?;
    ensure!(
        stored.chunks.contains(&despues),
        "the uncovered chunk survived compaction"
    );
    s.append(&info.id, &falta).await?;
    s.append(&info.id, &extra).await?;
    s.compact(&info.id).await?;
    ensure!(cargado(&*s, &info.id).await? == (sorted(doc.get_heads()), 10));
    ensure!(
        s.load(&info.id)
            .await?
            .context("registered")?
            .chunks
            .is_empty()
    );

    // Appends racing compactions and loads lose nothing.
    let mut tareas = Vec::new();
    let mut esperados = Vec::new();
    for k in 20..36 {
        esperados.push(acuerdo(&mut doc, k)?);
    }
    for (k, c) in esperados.into_iter().enumerate() {
        let (s, id) = (s.clone(), info.id);
        tareas.push(tokio::spawn(async move {
            s.append(&id, &c).await.map(|_| ())?;
            if k % 4 == 0 {
                s.compact(&id).await?;
            }
            let _ = s.load(&id).await?;
            Ok::<(), S::Error>(())
        }));
    }
    for t in tareas {
        t.await??;
    }
    s.compact(&info.id).await?;
    ensure!(cargado(&*s, &info.id).await? == (sorted(doc.get_heads()), 26));

    // Sync states: per (peer, document), last writer wins.
    ensure!(s.load_sync_state("par-a", &info.id).await?.is_none());
    s.save_sync_state("par-a", &info.id, b"uno").await?;
    s.save_sync_state("par-b", &info.id, b"otro").await?;
    s.save_sync_state("par-a", &info.id, b"dos").await?;
    ensure!(s.load_sync_state("par-a", &info.id).await?.as_deref() == Some(&b"dos"[..]));
    ensure!(s.load_sync_state("par-b", &info.id).await?.as_deref() == Some(&b"otro"[..]));

    // The replica's actor: made once, then the same.
    let a = s.actor().await?;
    ensure!(s.actor().await? == a, "the actor is stable");
    Ok(())
}
