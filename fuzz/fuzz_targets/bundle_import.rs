//! Bytes → bundles: `Bundle::decode`, the strict `bundle::aplicar` of each document onto its
//! genesis, and the server's `bundles::importar` against a fresh copy of the registered scene.
//!
//! The input is a bundle *without* its trailing SHA-256: the target appends the right sum, so
//! the fuzzer explores the header and the payloads instead of the checksum (the input is also
//! decoded as it is, which covers the magic, length and checksum checks).
//!
//! Checked, besides "no panic": a decoded bundle re-encodes to the same bytes; `aplicar` only
//! succeeds when every head the header declares is in the document; the server's import is all
//! or nothing (a refused bundle leaves every stored document as it was), stores only changes by
//! the genesis (itself) or by actors of users who may write the document (a device the bundle
//! brings is enrolled to the school's `paquete-<CCT>` user), and a second import of the same
//! bundle adds nothing.

#![no_main]

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::LazyLock;

use automerge::{ChangeHash, ReadDoc};
use bitacora_core::bundle::{self, Bundle, genesis_de};
use bitacora_core::model::genesis_actor;
use bitacora_fuzz::escena;
use bitacora_fuzz::{Plantilla, runtime};
use bitacora_server::bundles::importar;
use bitacora_server::db::Database;
use bitacora_server::hub::assemble;
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

struct Global {
    rt: tokio::runtime::Runtime,
    plantilla: Plantilla,
}

static G: LazyLock<Global> = LazyLock::new(|| {
    bitacora_fuzz::tolerar_panicos_atrapados_de_automerge();
    let rt = runtime();
    let plantilla = rt.block_on(Plantilla::crear());
    Global { rt, plantilla }
});

fuzz_target!(|data: &[u8]| {
    let g = &*G;
    let _ = Bundle::decode(data);
    let mut con_suma = data.to_vec();
    con_suma.extend_from_slice(&Sha256::digest(data));
    let Ok(b) = Bundle::decode(&con_suma) else {
        return;
    };
    assert_eq!(
        b.encode(),
        con_suma,
        "a decoded bundle re-encodes differently"
    );

    // The replicas' strict path, on each document's genesis.
    for (d, payload) in b.header.documentos.iter().zip(&b.payloads) {
        let Ok(info) = d.info() else { continue };
        let mut doc = genesis_de(&info).expect("genesis of a valid info");
        if bundle::aplicar(&mut doc, d, payload).is_ok() {
            for h in &d.heads {
                let h = ChangeHash::from_str(h).expect("aplicar parsed it");
                assert!(
                    doc.get_change_by_hash(&h).is_some(),
                    "declared head {h} missing after aplicar"
                );
            }
        }
        let _ = bundle::desde(d);
    }

    // The server's import, on a fresh copy of the scene.
    g.rt.block_on(async {
        let copia = g.plantilla.abrir().await;
        let antes = guardados(&copia.db).await;
        match importar(&copia.db, &con_suma).await {
            Ok(_) => {
                verificar(&copia.db).await;
                let otra = importar(&copia.db, &con_suma)
                    .await
                    .expect("a second import of an accepted bundle");
                assert!(
                    otra.iter().all(|d| d.cambios_nuevos == 0),
                    "a second import added changes: {otra:?}"
                );
            }
            Err(_) => assert_eq!(
                guardados(&copia.db).await,
                antes,
                "a refused import changed stored documents"
            ),
        }
        copia.cerrar().await;
    });
});

/// The heads of every registered document, as stored.
async fn guardados(db: &Database) -> HashMap<String, Vec<ChangeHash>> {
    let mut out = HashMap::new();
    for info in &escena::documentos()[..3] {
        let doc = assemble(&db.load(&info.id).await.expect("load")).expect("stored copy loads");
        let mut h = doc.get_heads();
        h.sort();
        out.insert(info.owner.clone(), h);
    }
    out
}

async fn verificar(db: &Database) {
    for info in &escena::documentos()[..3] {
        let doc = assemble(&db.load(&info.id).await.expect("load"))
            .unwrap_or_else(|e| panic!("{}: stored copy does not load: {e}", info.owner));
        let genesis = genesis_de(info).expect("genesis").get_heads()[0];
        assert!(
            doc.get_change_by_hash(&genesis).is_some(),
            "{}: the genesis is gone",
            info.owner
        );
        let ga = genesis_actor(&info.id);
        for ch in doc.get_changes(&[]) {
            if *ch.actor_id() == ga {
                assert_eq!(
                    ch.hash(),
                    genesis,
                    "{}: a second change by the genesis actor",
                    info.owner
                );
                continue;
            }
            let u = db
                .actor_usuario(&ch.actor_id().to_hex_string())
                .await
                .expect("db")
                .unwrap_or_else(|| {
                    panic!(
                        "{}: change {} by an actor nobody enrolled",
                        info.owner,
                        ch.hash()
                    )
                });
            let escribe = escena::puede_escribir(&u.rol, u.cct.as_deref(), u.zona.as_deref(), info);
            assert!(
                escribe,
                "{}: change {} by {}, who may not write it",
                info.owner,
                ch.hash(),
                u.id
            );
        }
    }
}
