//! Issue 12: any replica can serve sync. A teacher's laptop syncs with a second replica that is
//! not the zone server (a store of its own, served by `bitacora_core::sync_service` over the
//! storage contract), and that replica syncs on to the zone server; a change made at the zone
//! comes back the same way. Every hop is the real protocol over a WebSocket on 127.0.0.1:0 and
//! the real sync engine. Nothing is lost and the heads are equal everywhere.
//!
//! Also: what the service does with wrong input (a frame that is not a protocol message, a
//! document it does not hold).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use automerge::{AutoCommit, ChangeHash};
use bitacora_core::engine;
use bitacora_core::ids::{Cct, DocumentId, Fecha, RecordId};
use bitacora_core::model::escuela::{self, NuevoAcuerdo};
use bitacora_core::model::{Ctx, DocInfo};
use bitacora_core::protocol::{Message, PeerId, PeerMetadata};
use bitacora_core::storage::Storage;
use bitacora_core::store::Store;
use bitacora_core::sync_service::SyncService;
use bitacora_tests::server::TestServer;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message as WsMessage;

const ZONA: &str = "07FIZ0014";
const CCT: &str = "07DPR0123X";
/// Every sync in this test is bounded by this.
const LIMITE: Duration = Duration::from_secs(20);

/// A replica's store holding the school's document (its deterministic genesis).
async fn replica(dir: &std::path::Path, info: &DocInfo) -> Result<Store> {
    let store = Store::open(dir).await?;
    let mut genesis = escuela::genesis_escuela(&Cct::parse(CCT)?, TestServer::ciclo())?;
    store.create(info, &mut genesis, 1_760_000_000).await?;
    Ok(store)
}

/// One acuerdo written on `store` as its own device would.
async fn acuerdo(store: &Store, id: &DocumentId, k: u64, autor: &str) -> Result<()> {
    let actor = store.actor().await?;
    store
        .escribir(id, &actor, |doc: &mut AutoCommit| {
            escuela::agregar_acuerdo(
                doc,
                &Ctx {
                    ahora: 1_760_000_000 + k as i64,
                    autor: Some(autor),
                },
                &RecordId::from_random(50_000 + k),
                &NuevoAcuerdo {
                    texto: format!("Acuerdo {k} de {autor}"),
                    responsables: vec![autor.into()],
                    fecha_compromiso: Some(Fecha::parse("2026-03-13").expect("fecha")),
                    sesion_origen: None,
                },
            )
            .map_err(anyhow::Error::from)
        })
        .await?;
    Ok(())
}

async fn heads<S: Storage>(s: &S, id: &DocumentId) -> Result<Vec<ChangeHash>> {
    let stored = s
        .load(id)
        .await?
        .context("the replica holds the document")?;
    let mut h = bitacora_core::storage::assemble(&stored)
        .map_err(anyhow::Error::msg)?
        .get_heads();
    h.sort();
    Ok(h)
}

async fn acuerdos<S: Storage>(store: &S, id: &DocumentId) -> Result<Vec<String>> {
    let stored = store.load(id).await?.context("loaded")?;
    let doc = AutoCommit::load(
        &bitacora_core::storage::assemble(&stored)
            .map_err(anyhow::Error::msg)?
            .save(),
    )?;
    let mut v: Vec<String> = escuela::leer(&doc)?
        .acuerdos
        .into_iter()
        .map(|a| a.texto)
        .collect();
    v.sort();
    Ok(v)
}

/// The sync service over `store` on 127.0.0.1:0; returns its `http://` address and the stop
/// switch.
async fn servir<S: Storage + 'static>(store: Arc<S>) -> Result<(String, watch::Sender<bool>)> {
    let storage_id = store.storage_id().await?;
    let svc = SyncService::new(store, PeerId("replica-intermedia".into()), storage_id);
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let (stop, rx) = watch::channel(false);
    tokio::spawn(svc.serve(listener, rx));
    Ok((url, stop))
}

/// The middle replica is a laptop-type store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_laptop_syncs_through_another_replica_to_the_zone() -> Result<()> {
    let dir_h = tempfile::tempdir()?;
    let h = Arc::new(Store::open(dir_h.path()).await?);
    relevo(h).await
}

/// The middle replica keeps everything in memory (the same contract, no database).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_middle_replica_can_be_any_storage() -> Result<()> {
    relevo(Arc::new(bitacora_core::storage::MemoryStorage::new())).await
}

async fn relevo<S: Storage + 'static>(h: Arc<S>) -> Result<()> {
    let zona = TestServer::start().await?;
    zona.zona(ZONA).await?;
    let info = zona.escuela(CCT, ZONA).await?;
    let token_ana = zona.usuario("ana", "docente", Some(CCT), None).await?;
    let token_luis = zona.usuario("luis", "docente", Some(CCT), None).await?;
    let id = info.id;

    // Ana's laptop, offline: two acuerdos.
    let dir_a = tempfile::tempdir()?;
    let a = replica(dir_a.path(), &info).await?;
    acuerdo(&a, &id, 1, "Mtra. Ana").await?;
    acuerdo(&a, &id, 2, "Mtra. Ana").await?;

    // The middle replica (what a school hub will be): its own storage holding the school's
    // document, served over the storage contract.
    let genesis = escuela::genesis_escuela(&Cct::parse(CCT)?, TestServer::ciclo())?.save();
    h.register(&info, &genesis).await?;
    let (url_h, stop) = servir(h.clone()).await?;

    // Ana's laptop → the middle replica.
    let informe = engine::sync_once(&a, &url_h, "sin-uso", &[id], LIMITE).await?;
    ensure!(informe.documentos == 1);
    ensure!(
        heads(&a, &id).await? == heads(&*h, &id).await?,
        "laptop = middle replica"
    );
    ensure!(acuerdos(&*h, &id).await?.len() == 2);

    // The middle replica → the zone server, relaying Ana's changes with her authorship (her
    // device's actor is enrolled to her, as `bitacora login` on her laptop does).
    zona.enrolar(&a.actor().await?.to_hex_string(), "ana")
        .await?;
    engine::sync_once(&h, &zona.url, &token_ana, &[id], LIMITE).await?;
    let en_zona = heads(&zona.db, &id).await?;
    ensure!(en_zona == heads(&a, &id).await?, "zone server = laptop");

    // Luis syncs with the zone directly from his own laptop.
    let dir_c = tempfile::tempdir()?;
    let c = replica(dir_c.path(), &info).await?;
    zona.enrolar(&c.actor().await?.to_hex_string(), "luis")
        .await?;
    acuerdo(&c, &id, 3, "Prof. Luis").await?;
    engine::sync_once(&c, &zona.url, &token_luis, &[id], LIMITE).await?;

    // Meanwhile Ana writes again, and syncs with the middle replica only.
    acuerdo(&a, &id, 4, "Mtra. Ana").await?;
    engine::sync_once(&a, &url_h, "sin-uso", &[id], LIMITE).await?;

    // The middle replica meets the zone: both ways. Then Ana's laptop meets it again.
    engine::sync_once(&h, &zona.url, &token_ana, &[id], LIMITE).await?;
    engine::sync_once(&a, &url_h, "sin-uso", &[id], LIMITE).await?;
    engine::sync_once(&c, &zona.url, &token_luis, &[id], LIMITE).await?;

    let esperado = heads(&zona.db, &id).await?;
    ensure!(
        heads(&a, &id).await? == esperado,
        "Ana's laptop has everything"
    );
    ensure!(
        heads(&*h, &id).await? == esperado,
        "the middle replica has everything"
    );
    ensure!(
        heads(&c, &id).await? == esperado,
        "Luis's laptop has everything"
    );
    let textos = acuerdos(&a, &id).await?;
    ensure!(
        textos
            == vec![
                "Acuerdo 1 de Mtra. Ana".to_string(),
                "Acuerdo 2 de Mtra. Ana".into(),
                "Acuerdo 3 de Prof. Luis".into(),
                "Acuerdo 4 de Mtra. Ana".into(),
            ],
        "{textos:?}"
    );
    ensure!(acuerdos(&c, &id).await? == textos);

    // Authorship survived both hops: the zone's document names each change's own actor.
    let zdoc =
        bitacora_core::storage::assemble(&zona.db.load(&id).await?).map_err(anyhow::Error::msg)?;
    let actores: std::collections::BTreeSet<String> = zdoc
        .get_changes(&[])
        .iter()
        .map(|c| c.actor_id().to_hex_string())
        .collect();
    ensure!(actores.contains(&a.actor().await?.to_hex_string()));
    ensure!(actores.contains(&c.actor().await?.to_hex_string()));
    ensure!(
        !actores.contains(&h.actor().await?.to_hex_string()),
        "the relay wrote nothing of its own"
    );

    let _ = stop.send(true);
    zona.stop().await?;
    Ok(())
}

/// Wrong input to the service: a frame that is not a protocol message gets an `error` and a
/// closed connection; a document it does not hold gets `doc-unavailable`. The store is intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_input_to_the_service() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let cct = Cct::parse(CCT)?;
    let id = DocumentId::escuela(&cct, TestServer::ciclo());
    let info = DocInfo {
        id,
        kind: bitacora_core::model::DocKind::Escuela,
        owner: CCT.into(),
        ciclo: TestServer::ciclo().to_string(),
    };
    let h = Arc::new(replica(dir.path(), &info).await?);
    let antes = heads(&*h, &id).await?;
    let (url, stop) = servir(h.clone()).await?;
    let ws_url = engine::sync_url(&url);

    // Garbage.
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url.as_str()).await?;
    ws.send(WsMessage::Binary(b"no es CBOR".to_vec().into()))
        .await?;
    let respuesta = tokio::time::timeout(LIMITE, ws.next())
        .await
        .context("waiting for the service's answer to garbage")?;
    let Some(Ok(WsMessage::Binary(b))) = respuesta else {
        anyhow::bail!("expected an error message, got {respuesta:?}");
    };
    ensure!(matches!(Message::decode(&b)?, Message::Error { .. }));
    let fin = tokio::time::timeout(LIMITE, ws.next())
        .await
        .context("waiting for the close")?;
    ensure!(
        matches!(fin, None | Some(Ok(WsMessage::Close(_))) | Some(Err(_))),
        "closed after the error: {fin:?}"
    );

    // A document the service does not hold.
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url.as_str()).await?;
    let yo = PeerId("par-de-prueba".into());
    ws.send(WsMessage::Binary(
        Message::Join {
            sender_id: yo.clone(),
            supported_protocol_versions: vec!["1".into()],
            metadata: Some(PeerMetadata {
                storage_id: None,
                is_ephemeral: true,
            }),
        }
        .encode()
        .into(),
    ))
    .await?;
    let peer = tokio::time::timeout(LIMITE, ws.next())
        .await
        .context("waiting for peer")?;
    let Some(Ok(WsMessage::Binary(b))) = peer else {
        anyhow::bail!("expected peer, got {peer:?}");
    };
    let Message::Peer { sender_id: el, .. } = Message::decode(&b)? else {
        anyhow::bail!("expected peer");
    };
    let otro = DocumentId::escuela(&Cct::parse("07DJN0002B")?, TestServer::ciclo());
    let vacio = automerge::Automerge::new();
    let mut estado = automerge::sync::State::new();
    let datos = automerge::sync::SyncDoc::generate_sync_message(&vacio, &mut estado)
        .context("a first sync message")?
        .encode();
    ws.send(WsMessage::Binary(
        Message::Request {
            sender_id: yo,
            target_id: el,
            document_id: otro,
            data: datos,
        }
        .encode()
        .into(),
    ))
    .await?;
    let r = tokio::time::timeout(LIMITE, ws.next())
        .await
        .context("waiting for doc-unavailable")?;
    let Some(Ok(WsMessage::Binary(b))) = r else {
        anyhow::bail!("expected doc-unavailable, got {r:?}");
    };
    ensure!(
        matches!(Message::decode(&b)?, Message::DocUnavailable { document_id, .. } if document_id == otro)
    );
    ensure!(h.document(&otro).await?.is_none(), "nothing registered");
    ensure!(heads(&*h, &id).await? == antes, "the store is as it was");
    let _ = stop.send(true);
    Ok(())
}
