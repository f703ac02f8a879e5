//! Test helper for `crash_safe_store` and `crash_rounds`: appends acuerdos to a local store in a
//! loop and prints `guardado <id>` after each append returns (i.e. after the change is reported
//! saved), until killed.
//!
//! `store_writer DIR [PREFIX] [ajeno]`: with `ajeno` the changes are written by a fresh random
//! actor instead of the store's own, as the sync engine saves changes received from other
//! devices; so two writers can share one store, as `bitacora sync --watch` and the other
//! commands do.

use anyhow::Result;
use bitacora_core::ids::{Cct, CicloEscolar, DocumentId, RecordId};
use bitacora_core::model::escuela::{self, NuevoAcuerdo};
use bitacora_core::model::{Ctx, DocKind};
use bitacora_core::store::{DocInfo, Store};
use std::io::Write;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().expect("data dir");
    let prefix = args.next().unwrap_or_else(|| "w".into());
    let ajeno = args.next().as_deref() == Some("ajeno");
    let store = Store::open(std::path::Path::new(&dir)).await?;
    let cct = Cct::parse("07DPR0123X")?;
    let ciclo = CicloEscolar::parse("2025-2026")?;
    let info = DocInfo {
        id: DocumentId::escuela(&cct, ciclo),
        kind: DocKind::Escuela,
        owner: cct.to_string(),
        ciclo: ciclo.to_string(),
    };
    store
        .create(&info, &mut escuela::genesis_escuela(&cct, ciclo)?, 0)
        .await?;
    let actor = if ajeno {
        bitacora_core::automerge::ActorId::random()
    } else {
        store.actor().await?
    };
    let mut doc = store
        .load(&info.id)
        .await?
        .expect("created")
        .with_actor(actor);
    let mut out = std::io::stdout().lock();
    for i in 0u64.. {
        let id = RecordId::parse(&format!("{prefix}-{i}"))?;
        let before = doc.get_heads();
        let a = NuevoAcuerdo {
            texto: format!("acuerdo {i} {}", "x".repeat((i % 50) as usize)),
            responsables: vec![],
            fecha_compromiso: None,
            sesion_origen: None,
        };
        escuela::agregar_acuerdo(
            &mut doc,
            &Ctx {
                ahora: 1_750_000_000 + i as i64,
                autor: None,
            },
            &id,
            &a,
        )?;
        store.append(&info.id, &doc.save_after(&before)).await?;
        writeln!(out, "guardado {id}")?;
        out.flush()?;
    }
    Ok(())
}
