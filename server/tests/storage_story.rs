//! The storage layer's story, told once and run against both back-ends (as atuin does):
//! `storage_story_sqlite` on a temporary SQLite file, `storage_story_postgres` on the PostgreSQL
//! named by `BITACORA_TEST_DATABASE_URL`, inside a fresh schema dropped at the end.
//!
//! The story: the registry (zones, schools, users, tokens, actors) written through
//! `bitacora_server::admin` and read back; a school document whose genesis loads to the frozen
//! genesis; change chunks made with the real document model, appended idempotently; compaction
//! (never losing a chunk, not even when the fold fails); appends after compaction; loading gives
//! exactly the in-memory document; two compactions racing with appends and loads lose nothing;
//! sync states; the append-only audit log; `meta_or_init`, `ping`, `integrity_check`.

use std::io::Write;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use automerge::sync::{self, SyncDoc};
use automerge::{ActorId, AutoCommit, ChangeHash, ReadDoc};
use bitacora_core::ids::{Cct, CicloEscolar, DocumentId, Fecha, RecordId};
use bitacora_core::model::escuela::{self, EstadoAcuerdo, Fase, NuevaSesion, NuevoAcuerdo};
use bitacora_core::model::{Ctx, DocKind};
use bitacora_core::store::{DocInfo, hex_heads};
use bitacora_server::admin;
use bitacora_server::auth::Keys;
use bitacora_server::config::{JwtConfig, Secret};
use bitacora_server::db::{Auditoria, Database, DbError, Stored, Usuario};
use bitacora_server::hub;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::sync::Barrier;

// ---------------------------------------------------------------------------------------------
// The two back-ends.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn storage_story_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("bitacora.db").display());
    let db = Database::connect(&url).await.expect("open SQLite");
    assert_eq!(db.backend(), "sqlite");
    story(&db, dir.path()).await;
    db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn storage_story_postgres() {
    let Ok(url) = std::env::var("BITACORA_TEST_DATABASE_URL") else {
        // Straight to stderr, not `eprintln!`, so the test harness does not swallow it.
        let _ = std::io::stderr().write_all(
            b"\n\
              ************************************************************************\n\
              * storage_story_postgres SKIPPED: BITACORA_TEST_DATABASE_URL is unset. *\n\
              * e.g. BITACORA_TEST_DATABASE_URL=postgres://postgres@127.0.0.1/test   *\n\
              * The PostgreSQL back-end was NOT tested.                              *\n\
              ************************************************************************\n\n",
        );
        return;
    };
    let schema = format!("storage_story_{:016x}", rand::random::<u64>());
    let admin_pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .expect("connect to BITACORA_TEST_DATABASE_URL");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&admin_pool)
        .await
        .expect("create the test schema");

    // Everything that may fail runs in its own task, so the schema is dropped whatever happens.
    let opts = PgConnectOptions::from_str(&url)
        .expect("parse BITACORA_TEST_DATABASE_URL")
        .options([("search_path", schema.as_str())]);
    let db = Database::connect_pg(opts).await;
    let outcome = match &db {
        Ok(db) => {
            let db = db.clone();
            tokio::spawn(async move {
                db.migrate().await.expect("migrate the test schema");
                assert_eq!(db.backend(), "postgres");
                let dir = tempfile::tempdir().expect("tempdir");
                story(&db, dir.path()).await;
            })
            .await
        }
        Err(_) => Ok(()),
    };
    if let Ok(db) = &db {
        db.close().await;
    }
    let dropped = sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&admin_pool)
        .await;
    admin_pool.close().await;

    if let Err(e) = db {
        panic!("connect to the test schema {schema}: {e}");
    }
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
    dropped.expect("drop the test schema");
}

// ---------------------------------------------------------------------------------------------
// Helpers.

/// Runs the same expression on whichever pool the database is.
macro_rules! on {
    ($db:expr, $p:ident => $e:expr) => {
        match $db {
            Database::Sqlite($p) => $e,
            Database::Postgres($p) => $e,
        }
    };
}

const ZONA: &str = "07FIZ0014";
const OTRA_ZONA: &str = "07FIZ0015";
const CCT: &str = "07DPR0123X";
const OTRA_CCT: &str = "07DPR0456Y";

fn ciclo() -> CicloEscolar {
    CicloEscolar::parse("2025-2026").unwrap()
}

fn actor(n: u8) -> ActorId {
    ActorId::from([n; 16])
}

/// What the server's compaction does: assemble and save, on the blocking pool.
async fn fold(
    snapshot: Option<Vec<u8>>,
    chunks: Vec<Vec<u8>>,
) -> Result<(Vec<u8>, String), DbError> {
    tokio::task::spawn_blocking(move || {
        let doc = hub::assemble(&Stored { snapshot, chunks }).map_err(DbError::Damaged)?;
        Ok((doc.save(), hex_heads(&doc.get_heads())))
    })
    .await
    .map_err(|e| DbError::Damaged(e.to_string()))?
}

/// One user operation on the school document, with the real model, as the chunk a replica would
/// send. Steps cycle through: add an acuerdo, edit its text, change its status, add a session.
fn paso(doc: &mut AutoCommit, seed: u64, k: u64) -> Vec<u8> {
    let before = doc.get_heads();
    let ctx = Ctx {
        ahora: 1_760_000_000 + (seed * 1000 + k) as i64,
        autor: Some(["Mtra. Rosa", "Prof. Luis", "Mtra. Ana"][(seed % 3) as usize]),
    };
    let acuerdo = RecordId::from_random((seed << 20) | (k / 4));
    match k % 4 {
        0 => escuela::agregar_acuerdo(
            doc,
            &ctx,
            &acuerdo,
            &NuevoAcuerdo {
                texto: format!("Acuerdo {seed}-{k}: revisar la lectura"),
                responsables: vec!["Mtra. Rosa".into()],
                fecha_compromiso: Some(Fecha::parse("2025-12-12").unwrap()),
                sesion_origen: None,
            },
        ),
        1 => escuela::editar_texto_acuerdo(
            doc,
            &ctx,
            &acuerdo,
            &format!("Acuerdo {seed}-{k}: revisar la lectura y la escritura"),
        ),
        2 => escuela::estado_acuerdo(doc, &ctx, &acuerdo, EstadoAcuerdo::EnProceso, None),
        _ => escuela::agregar_sesion(
            doc,
            &ctx,
            &RecordId::from_random((seed << 40) | k),
            &NuevaSesion {
                fase: Fase::Ordinaria,
                numero: 1 + (k / 4) % 8,
                fecha: Fecha::parse("2025-10-31").unwrap(),
                asistentes: vec!["Mtra. Rosa".into(), "Prof. Luis".into()],
                proposito: format!("Sesión {seed}-{k}"),
                productos: String::new(),
                practicas: "Lectura en voz alta".into(),
            },
        ),
    }
    .unwrap();
    doc.save_after(&before)
}

/// How many acuerdos `pasos` steps of one writer add.
fn acuerdos_en(pasos: u64) -> usize {
    pasos.div_ceil(4) as usize
}

/// The hashes of the changes made in `doc` since `before`.
fn hashes_since(doc: &mut AutoCommit, before: &[ChangeHash]) -> Vec<ChangeHash> {
    doc.get_changes(before).iter().map(|c| c.hash()).collect()
}

fn sorted(mut h: Vec<ChangeHash>) -> Vec<ChangeHash> {
    h.sort();
    h
}

/// Loads the document from the database and checks it is exactly `doc`: same heads, same
/// changes, same content as the model reads it.
async fn assert_loads_as(db: &Database, id: &DocumentId, doc: &mut AutoCommit) {
    let stored = db.load(id).await.unwrap();
    let loaded = tokio::task::spawn_blocking(move || hub::assemble(&stored))
        .await
        .unwrap()
        .expect("the stored document assembles");
    assert_eq!(sorted(loaded.get_heads()), sorted(doc.get_heads()), "heads");
    let stored_changes: Vec<ChangeHash> =
        loaded.get_changes(&[]).iter().map(|c| c.hash()).collect();
    let memory_changes: Vec<ChangeHash> = doc.get_changes(&[]).iter().map(|c| c.hash()).collect();
    assert_eq!(sorted(stored_changes), sorted(memory_changes), "changes");
    let view = escuela::leer(&AutoCommit::load(&loaded.save()).unwrap()).unwrap();
    assert_eq!(view, escuela::leer(doc).unwrap(), "content");
}

async fn snapshot_row(db: &Database, id: &DocumentId) -> Option<(Vec<u8>, String)> {
    on!(db, p => sqlx::query_as("SELECT data, heads FROM snapshots WHERE doc_id = $1")
        .bind(id.to_string()).fetch_optional(p).await.unwrap())
}

// ---------------------------------------------------------------------------------------------
// The story.

async fn story(db: &Database, data_dir: &std::path::Path) {
    // The database answers and is sound.
    db.ping().await.unwrap();
    db.integrity_check().await.unwrap();

    meta(db).await;
    let escuela = registry(db, data_dir).await;
    let mut doc = documents(db, &escuela).await;
    concurrency(db, &escuela.id, &mut doc).await;
    sync_states(db, &escuela.id).await;
    audit(db, &escuela.id).await;

    db.ping().await.unwrap();
    db.integrity_check().await.unwrap();
}

/// `meta_or_init`: the first writer wins, also when several race.
async fn meta(db: &Database) {
    assert_eq!(
        db.meta_or_init("storage_id", "primero").await.unwrap(),
        "primero"
    );
    assert_eq!(
        db.meta_or_init("storage_id", "segundo").await.unwrap(),
        "primero"
    );
    let racers: Vec<_> = (0..6)
        .map(|i| {
            let db = db.clone();
            tokio::spawn(async move { db.meta_or_init("carrera", &format!("v{i}")).await })
        })
        .collect();
    let mut seen = Vec::new();
    for r in racers {
        seen.push(r.await.unwrap().unwrap());
    }
    assert!(
        seen.iter().all(|v| *v == seen[0]),
        "racers disagree: {seen:?}"
    );
    assert_eq!(db.meta_or_init("carrera", "tarde").await.unwrap(), seen[0]);
}

/// Zones, schools, users, tokens and actors through `admin`, read back.
async fn registry(db: &Database, data_dir: &std::path::Path) -> DocInfo {
    // Zones (idempotent; keys are normalised).
    let zona = admin::zona_add(db, "07fiz0014", " Zona 14 ", ciclo())
        .await
        .unwrap();
    assert_eq!(zona.kind, DocKind::Zona);
    assert_eq!(zona.owner, ZONA);
    assert_eq!(
        admin::zona_add(db, ZONA, "Zona 14", ciclo()).await.unwrap(),
        zona
    );
    admin::zona_add(db, OTRA_ZONA, "Zona 15", ciclo())
        .await
        .unwrap();
    assert!(db.zona_existe(ZONA).await.unwrap());
    assert!(!db.zona_existe("07FIZ9999").await.unwrap());

    // Schools.
    let escuela = admin::escuela_add(db, CCT, " Escuela Benito Juárez ", ZONA, ciclo())
        .await
        .unwrap();
    assert_eq!(escuela.kind, DocKind::Escuela);
    assert_eq!(escuela.owner, CCT);
    assert_eq!(escuela.ciclo, "2025-2026");
    assert_eq!(
        escuela.id,
        DocumentId::escuela(&Cct::parse(CCT).unwrap(), ciclo())
    );
    admin::escuela_add(db, OTRA_CCT, "Escuela Leona Vicario", ZONA, ciclo())
        .await
        .unwrap();
    assert_eq!(
        db.zona_de_escuela(CCT).await.unwrap().as_deref(),
        Some(ZONA)
    );
    assert_eq!(db.zona_de_escuela("07DPR9999Z").await.unwrap(), None);
    assert_eq!(
        db.escuelas_de_zona(ZONA).await.unwrap(),
        vec![
            (CCT.to_string(), "Escuela Benito Juárez".to_string()),
            (OTRA_CCT.to_string(), "Escuela Leona Vicario".to_string()),
        ]
    );
    assert!(db.escuelas_de_zona(OTRA_ZONA).await.unwrap().is_empty());
    // A school belongs to one zone; an unknown zone is refused.
    let e = admin::escuela_add(db, CCT, "Otra", OTRA_ZONA, ciclo())
        .await
        .unwrap_err();
    assert!(e.is_bad_input(), "{e}");
    assert_eq!(
        db.zona_de_escuela(CCT).await.unwrap().as_deref(),
        Some(ZONA)
    );
    let e = admin::escuela_add(db, "07DPR0789Z", "Sin zona", "07FIZ9999", ciclo())
        .await
        .unwrap_err();
    assert!(e.is_bad_input(), "{e}");

    // Documents registered with them.
    assert_eq!(
        db.document(&escuela.id).await.unwrap(),
        Some(escuela.clone())
    );
    assert_eq!(db.document(&zona.id).await.unwrap(), Some(zona.clone()));
    let otro = DocumentId::escuela(&Cct::parse("07DPR0789Z").unwrap(), ciclo());
    assert_eq!(db.document(&otro).await.unwrap(), None);
    let docs = db.documents().await.unwrap();
    let kinds: Vec<(DocKind, &str)> = docs.iter().map(|d| (d.kind, d.owner.as_str())).collect();
    assert_eq!(
        kinds,
        vec![
            (DocKind::Escuela, CCT),
            (DocKind::Escuela, OTRA_CCT),
            (DocKind::Zona, ZONA),
            (DocKind::Zona, OTRA_ZONA),
        ]
    );

    // Users.
    let rosa = admin::usuario_add(db, "rosa", " Mtra. Rosa ", "docente", Some(CCT), None)
        .await
        .unwrap();
    assert_eq!(
        rosa,
        Usuario {
            id: "rosa".into(),
            nombre: "Mtra. Rosa".into(),
            rol: "docente".into(),
            cct: Some(CCT.into()),
            zona: None,
        }
    );
    let luis = admin::usuario_add(db, "luis", "Prof. Luis", "director", Some(CCT), None)
        .await
        .unwrap();
    let ana = admin::usuario_add(db, "ana", "Mtra. Ana", "supervisor", None, Some(ZONA))
        .await
        .unwrap();
    admin::usuario_add(db, "raiz", "Administración", "admin", None, None)
        .await
        .unwrap();
    assert_eq!(db.usuario("rosa").await.unwrap(), Some(rosa.clone()));
    assert_eq!(db.usuario("luis").await.unwrap(), Some(luis.clone()));
    assert_eq!(db.usuario("ana").await.unwrap(), Some(ana.clone()));
    assert_eq!(db.usuario("raiz").await.unwrap().unwrap().rol, "admin");
    assert_eq!(db.usuario("nadie").await.unwrap(), None);
    let e = admin::usuario_add(db, "rosa", "Otra Rosa", "docente", Some(CCT), None)
        .await
        .unwrap_err();
    assert!(e.is_bad_input(), "{e}");
    assert_eq!(db.usuario("rosa").await.unwrap(), Some(rosa.clone()));
    let e = admin::usuario_add(db, "pedro", "Pedro", "docente", Some("07DPR0789Z"), None)
        .await
        .unwrap_err();
    assert!(e.is_bad_input(), "{e}");
    assert_eq!(db.usuario("pedro").await.unwrap(), None);

    // Tokens: issued, bound to their user, revocable once.
    let keys = Keys::from_config(
        &JwtConfig {
            algorithm: "HS256".into(),
            secret: Some(Secret::new("0123456789abcdef0123456789abcdef-historia")),
            public_key_file: None,
            private_key_file: None,
            issuer: "bitacora-test".into(),
            audience: "bitacora".into(),
            previous_secrets: Vec::new(),
            previous_public_key_files: Vec::new(),
        },
        data_dir,
    )
    .unwrap();
    let (_token, claims) = admin::token_emitir(db, &keys, "rosa", 30).await.unwrap();
    let (_token, otro_claims) = admin::token_emitir(db, &keys, "rosa", 30).await.unwrap();
    assert_ne!(claims.jti, otro_claims.jti);
    assert!(db.token_vigente(&claims.jti, "rosa").await.unwrap());
    assert!(!db.token_vigente(&claims.jti, "luis").await.unwrap());
    assert!(!db.token_vigente("no-emitido", "rosa").await.unwrap());
    db.add_token("jti-luis", "luis", 1_760_000_000, 1_760_086_400)
        .await
        .unwrap();
    assert!(db.token_vigente("jti-luis", "luis").await.unwrap());
    assert!(
        db.add_token("jti-luis", "luis", 1, 2).await.is_err(),
        "a token id is unique"
    );
    assert!(
        db.add_token("jti-fantasma", "nadie", 1, 2).await.is_err(),
        "a token names a registered user"
    );
    admin::token_revocar(db, &claims.jti).await.unwrap();
    assert!(!db.token_vigente(&claims.jti, "rosa").await.unwrap());
    assert!(db.token_vigente(&otro_claims.jti, "rosa").await.unwrap());
    assert!(admin::token_revocar(db, &claims.jti).await.is_err());
    assert!(!db.revoke_token("no-emitido").await.unwrap());
    assert!(db.revoke_token("jti-luis").await.unwrap());
    assert!(!db.token_vigente("jti-luis", "luis").await.unwrap());

    // Actors: the first enrolment wins.
    let a = actor(7).to_hex_string();
    assert_eq!(db.enrol_actor(&a, "rosa").await.unwrap(), "rosa");
    assert_eq!(db.enrol_actor(&a, "luis").await.unwrap(), "rosa");
    assert_eq!(db.enrol_actor(&a, "rosa").await.unwrap(), "rosa");
    assert_eq!(db.actor_usuario(&a).await.unwrap(), Some(rosa));
    let b = actor(8).to_hex_string();
    assert_eq!(db.enrol_actor(&b, "luis").await.unwrap(), "luis");
    assert_eq!(db.actor_usuario(&b).await.unwrap(), Some(luis));
    assert_eq!(
        db.actor_usuario(&actor(9).to_hex_string()).await.unwrap(),
        None
    );
    assert!(
        db.enrol_actor(&actor(9).to_hex_string(), "nadie")
            .await
            .is_err(),
        "an actor is enrolled to a registered user"
    );

    escuela
}

/// The school document: genesis, appends (idempotent), compaction, appends after it.
async fn documents(db: &Database, escuela: &DocInfo) -> AutoCommit {
    let id = &escuela.id;
    let cct = Cct::parse(CCT).unwrap();

    // Genesis: one chunk, loading to the frozen genesis.
    let mut genesis = escuela::genesis_escuela(&cct, ciclo()).unwrap();
    assert_eq!(db.chunk_count(id).await.unwrap(), 1);
    let stored = db.load(id).await.unwrap();
    assert!(stored.snapshot.is_none());
    assert_eq!(stored.chunks.len(), 1);
    let loaded = hub::assemble(&stored).unwrap();
    assert_eq!(loaded.get_heads(), genesis.get_heads());
    // Registering again stores nothing new.
    admin::escuela_add(db, CCT, "Escuela Benito Juárez", ZONA, ciclo())
        .await
        .unwrap();
    assert_eq!(db.chunk_count(id).await.unwrap(), 1);
    // An unknown document loads empty.
    let nada = DocumentId::escuela(&Cct::parse("07DPR0789Z").unwrap(), ciclo());
    let stored = db.load(&nada).await.unwrap();
    assert!(stored.snapshot.is_none() && stored.chunks.is_empty());

    // A device writes: one chunk per operation, each durable when `append` returns.
    let mut doc = genesis.fork().with_actor(actor(7));
    let mut chunks = Vec::new();
    for k in 0..30 {
        let chunk = paso(&mut doc, 1, k);
        let n = db.append(id, &chunk).await.unwrap();
        assert_eq!(n, 2 + k as i64, "chunks waiting after append {k}");
        chunks.push(chunk);
    }
    // One chunk holding several changes.
    let before = doc.get_heads();
    for k in 30..33 {
        paso(&mut doc, 1, k);
    }
    let batch = doc.save_after(&before);
    assert_eq!(hashes_since(&mut doc, &before).len(), 3);
    assert_eq!(db.append(id, &batch).await.unwrap(), 32);
    // The same chunk again (a retransmission): nothing new.
    assert_eq!(db.append(id, &chunks[5]).await.unwrap(), 32);
    assert_eq!(db.append(id, &batch).await.unwrap(), 32);
    assert_eq!(db.chunk_count(id).await.unwrap(), 32);
    assert_loads_as(db, id, &mut doc).await;
    assert!(snapshot_row(db, id).await.is_none());

    // A fold that fails leaves everything as it was.
    let r = db
        .compact(id, |_, _| async {
            Err::<(Vec<u8>, String), _>(DbError::Damaged("pliegue fallido".into()))
        })
        .await;
    assert!(matches!(r, Err(DbError::Damaged(_))), "{r:?}");
    assert_eq!(db.chunk_count(id).await.unwrap(), 32);
    assert!(snapshot_row(db, id).await.is_none());
    assert_loads_as(db, id, &mut doc).await;

    // Compaction folds every chunk (the genesis too) into the snapshot.
    db.compact(id, fold).await.unwrap();
    assert_eq!(db.chunk_count(id).await.unwrap(), 0);
    let stored = db.load(id).await.unwrap();
    assert!(stored.snapshot.is_some());
    assert!(stored.chunks.is_empty());
    let (snapshot, heads) = snapshot_row(db, id).await.unwrap();
    assert_eq!(heads, hex_heads(&doc.get_heads()));
    assert_loads_as(db, id, &mut doc).await;
    // Nothing to fold: a no-op.
    db.compact(id, fold).await.unwrap();
    assert_eq!(snapshot_row(db, id).await.unwrap().0, snapshot);

    // One chunk after the snapshot is not worth a compaction.
    let chunk = paso(&mut doc, 1, 33);
    assert_eq!(db.append(id, &chunk).await.unwrap(), 1);
    db.compact(id, fold).await.unwrap();
    assert_eq!(db.chunk_count(id).await.unwrap(), 1);
    assert_eq!(snapshot_row(db, id).await.unwrap().0, snapshot);

    // Appends after compaction: snapshot plus chunks load as the document.
    for k in 34..50 {
        let chunk = paso(&mut doc, 1, k);
        assert_eq!(db.append(id, &chunk).await.unwrap(), k as i64 - 32);
    }
    assert_loads_as(db, id, &mut doc).await;
    // A chunk already folded into the snapshot, sent again (an old device reconnecting): it is
    // stored again, and the document is still the same.
    db.append(id, &chunks[0]).await.unwrap();
    assert_loads_as(db, id, &mut doc).await;
    db.compact(id, fold).await.unwrap();
    assert_eq!(db.chunk_count(id).await.unwrap(), 0);
    let (_, heads) = snapshot_row(db, id).await.unwrap();
    assert_eq!(heads, hex_heads(&doc.get_heads()));
    assert_loads_as(db, id, &mut doc).await;

    // The other school's document was not touched.
    let otro = DocumentId::escuela(&Cct::parse(OTRA_CCT).unwrap(), ciclo());
    assert_eq!(db.chunk_count(&otro).await.unwrap(), 1);
    assert!(snapshot_row(db, &otro).await.is_none());

    doc
}

/// Four devices append while two compactions run at the same time and two readers keep loading:
/// no change is ever lost, neither from a load nor from the store.
async fn concurrency(db: &Database, id: &DocumentId, doc: &mut AutoCommit) {
    const WRITERS: u64 = 4;
    const STEPS: u64 = 40;
    const COMPACTIONS: usize = 20;
    const READERS: usize = 2;

    let changes_before = doc.get_changes(&[]).len();
    let committed: Arc<Mutex<Vec<ChangeHash>>> = Arc::new(Mutex::new(doc.get_heads()));
    let done = Arc::new(AtomicBool::new(false));
    let start = Arc::new(Barrier::new(WRITERS as usize + 2 + READERS));

    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let db = db.clone();
        let id = *id;
        let mut replica = doc.fork().with_actor(actor(0x20 + w as u8));
        let committed = committed.clone();
        let start = start.clone();
        writers.push(tokio::spawn(async move {
            start.wait().await;
            for k in 0..STEPS {
                let before = replica.get_heads();
                let chunk = paso(&mut replica, 10 + w, k);
                let new = hashes_since(&mut replica, &before);
                assert_eq!(new.len(), 1);
                db.append(&id, &chunk).await.unwrap();
                // Durable now: from here on, every load must contain it.
                committed.lock().unwrap().extend(new);
            }
            replica
        }));
    }
    let compactors: Vec<_> = (0..2)
        .map(|_| {
            let db = db.clone();
            let id = *id;
            let start = start.clone();
            tokio::spawn(async move {
                start.wait().await;
                for _ in 0..COMPACTIONS {
                    db.compact(&id, fold).await.unwrap();
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let db = db.clone();
            let id = *id;
            let committed = committed.clone();
            let done = done.clone();
            let start = start.clone();
            tokio::spawn(async move {
                start.wait().await;
                let mut loads = 0;
                // Until the writers and the compactions are over, and at least ten times.
                while loads < 10 || !done.load(Ordering::SeqCst) {
                    let expected = committed.lock().unwrap().clone();
                    let stored = db.load(&id).await.unwrap();
                    let missing = tokio::task::spawn_blocking(move || {
                        let loaded = hub::assemble(&stored).expect("assembles");
                        expected
                            .iter()
                            .filter(|h| loaded.get_change_by_hash(h).is_none())
                            .count()
                    })
                    .await
                    .unwrap();
                    assert_eq!(missing, 0, "load {loads} lost committed changes");
                    loads += 1;
                }
            })
        })
        .collect();

    let mut replicas = Vec::new();
    for w in writers {
        replicas.push(w.await.unwrap());
    }
    for c in compactors {
        c.await.unwrap();
    }
    done.store(true, Ordering::SeqCst);
    for r in readers {
        r.await.unwrap();
    }

    for mut r in replicas {
        doc.merge(&mut r).unwrap();
    }
    assert_eq!(
        doc.get_changes(&[]).len(),
        changes_before + (WRITERS * STEPS) as usize
    );
    for h in committed.lock().unwrap().iter() {
        assert!(doc.get_change_by_hash(h).is_some());
    }
    assert_eq!(doc.get_heads().len(), WRITERS as usize);
    let view = escuela::leer(doc).unwrap();
    assert_eq!(
        view.acuerdos.len(),
        acuerdos_en(50) + WRITERS as usize * acuerdos_en(STEPS)
    );
    assert_loads_as(db, id, doc).await;

    // A last compaction folds everything; still the same document.
    db.compact(id, fold).await.unwrap();
    assert!(db.chunk_count(id).await.unwrap() <= 1);
    db.compact(id, fold).await.unwrap();
    assert_loads_as(db, id, doc).await;
}

/// Sync states per (peer, document): saved, reloaded, overwritten.
async fn sync_states(db: &Database, id: &DocumentId) {
    let otro = DocumentId::escuela(&Cct::parse(OTRA_CCT).unwrap(), ciclo());
    assert_eq!(db.load_sync_state("peer-a", id).await.unwrap(), None);

    // A real state: the server's, after hearing from a peer that has nothing and replying.
    let stored = db.load(id).await.unwrap();
    let mut doc = hub::assemble(&stored).unwrap();
    let mut state = sync::State::new();
    let their = automerge::Automerge::new();
    let mut their_state = sync::State::new();
    let m = their.generate_sync_message(&mut their_state).unwrap();
    doc.receive_sync_message(&mut state, m).unwrap();
    assert!(doc.generate_sync_message(&mut state).is_some());
    let primero = state.encode();

    db.save_sync_state("peer-a", id, &primero).await.unwrap();
    let back = db.load_sync_state("peer-a", id).await.unwrap().unwrap();
    assert_eq!(back, primero);
    let decoded = sync::State::decode(&back).unwrap();
    assert_eq!(decoded.shared_heads, state.shared_heads);

    db.save_sync_state("peer-a", id, b"segundo").await.unwrap();
    assert_eq!(
        db.load_sync_state("peer-a", id).await.unwrap().as_deref(),
        Some(b"segundo".as_slice())
    );
    db.save_sync_state("peer-b", id, b"de b").await.unwrap();
    db.save_sync_state("peer-a", &otro, b"otro doc")
        .await
        .unwrap();
    assert_eq!(
        db.load_sync_state("peer-a", id).await.unwrap().as_deref(),
        Some(b"segundo".as_slice())
    );
    assert_eq!(
        db.load_sync_state("peer-b", id).await.unwrap().as_deref(),
        Some(b"de b".as_slice())
    );
    assert_eq!(
        db.load_sync_state("peer-a", &otro)
            .await
            .unwrap()
            .as_deref(),
        Some(b"otro doc".as_slice())
    );
    assert_eq!(db.load_sync_state("peer-c", id).await.unwrap(), None);
    // Only for registered documents.
    let nada = DocumentId::escuela(&Cct::parse("07DPR0789Z").unwrap(), ciclo());
    assert!(db.save_sync_state("peer-a", &nada, b"x").await.is_err());
}

/// The audit log takes rows and refuses to change or lose them, on both back-ends.
async fn audit(db: &Database, id: &DocumentId) {
    let doc = id.to_string();
    let filas = [
        ("rosa", "sync", "ok", "3 cambios"),
        ("pedro", "acceso", "denegado", "sin permiso"),
        ("ana", "bundle", "ok", "12 cambios"),
    ];
    for (usuario, accion, resultado, detalle) in filas {
        db.audit(&Auditoria {
            usuario,
            documento: &doc,
            accion,
            resultado,
            detalle,
        })
        .await
        .unwrap();
    }
    let tail = db.audit_tail(10).await.unwrap();
    let got: Vec<(&str, &str, &str, &str, &str)> = tail
        .iter()
        .map(|(_, u, d, a, r, x)| (u.as_str(), d.as_str(), a.as_str(), r.as_str(), x.as_str()))
        .collect();
    let want: Vec<(&str, &str, &str, &str, &str)> = filas
        .iter()
        .map(|(u, a, r, x)| (*u, doc.as_str(), *a, *r, *x))
        .collect();
    assert_eq!(got, want);
    assert!(tail.windows(2).all(|w| w[0].0 <= w[1].0), "oldest first");
    let last = db.audit_tail(1).await.unwrap();
    assert_eq!(last.len(), 1);
    assert_eq!(last[0].1, "ana");

    let update = on!(db, p => sqlx::query("UPDATE auditoria SET detalle = 'borrado' WHERE usuario = 'pedro'")
        .execute(p).await.map(|r| r.rows_affected()));
    let e = update.expect_err("UPDATE on auditoria must fail");
    assert!(e.to_string().contains("append-only"), "{e}");
    let delete = on!(db, p => sqlx::query("DELETE FROM auditoria").execute(p).await.map(|r| r.rows_affected()));
    let e = delete.expect_err("DELETE on auditoria must fail");
    assert!(e.to_string().contains("append-only"), "{e}");
    assert_eq!(db.audit_tail(10).await.unwrap(), tail);
}
