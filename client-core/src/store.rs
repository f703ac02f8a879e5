//! The local store of a replica: SQLite through sqlx, one file in the data directory.
//!
//! Each document is a snapshot (a compacted `save()`) plus append-only change chunks
//! (`save_after(heads)` of each operation). Behaviour under concurrent access:
//! - Several processes may open the same store (the CLI, `bitacora sync --watch`). Appends are
//!   independent inserts, so two writers never overwrite each other; the next load merges both.
//! - [`Store::append`] returns only after the SQLite transaction commits with
//!   `synchronous = FULL` in WAL mode: a change reported saved survives a killed process and a
//!   power cut.
//! - The device's own changes go through [`Store::escribir`], which reads the latest state and
//!   appends the new change under one write lock: two processes writing as the same actor
//!   (two commands at once) would otherwise both build on the same state, give their changes
//!   the same sequence number, and leave a document that no longer loads.
//! - [`Store::compact`] runs in a `BEGIN IMMEDIATE` transaction (it holds the write lock from the
//!   start), builds the snapshot from exactly the chunks it read and deletes only those.
//! - A file that is not a SQLite database, or a stored document that does not load, is reported
//!   as [`StoreError::Corrupt`] and never written to.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use automerge::{ActorId, AutoCommit};
use sha2::{Digest, Sha256};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use thiserror::Error;

use crate::ids::DocumentId;
use crate::model::DocKind;
use crate::storage::{self, Storage};

/// The file name of the store inside the data directory.
pub const DB_FILE: &str = "bitacora.db";

/// Compact a document once it has this many chunks.
pub const COMPACT_AFTER_CHUNKS: i64 = storage::COMPACT_AFTER_CHUNKS as i64;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error(
        "el archivo {path} no es una base de datos de Bitácora o está dañado; no se modificó (detalle técnico: {detalle})"
    )]
    Corrupt { path: PathBuf, detalle: String },
    #[error(
        "el documento {doc} guardado en {path} está dañado y no se puede cargar; no se modificó (detalle técnico: {detalle})"
    )]
    CorruptDocument {
        path: PathBuf,
        doc: String,
        detalle: String,
    },
    #[error("no se pudo usar el directorio de datos {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("error de la base de datos local: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("no se pudo preparar la base de datos local: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("el documento {0} no está en el almacén local")]
    Desconocido(DocumentId),
}

pub use crate::model::DocInfo;

#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
    path: PathBuf,
}

const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// The first 16 bytes of a file, if it exists.
fn file_header(path: &Path) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).ok()?;
    let mut buf = Vec::with_capacity(16);
    f.by_ref().take(16).read_to_end(&mut buf).ok()?;
    Some(buf)
}

fn is_corruption(e: &sqlx::Error) -> Option<String> {
    if let sqlx::Error::Database(d) = e {
        // SQLITE_CORRUPT (11) and SQLITE_NOTADB (26), possibly extended.
        let code = d.code().and_then(|c| c.parse::<i64>().ok()).unwrap_or(0) & 0xff;
        if code == 11 || code == 26 {
            return Some(d.message().to_string());
        }
    }
    None
}

pub use crate::storage::{hex_heads, parse_heads};

impl Store {
    /// Opens (creating if needed) the store in `dir`.
    pub async fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(DB_FILE);
        // Refuse a file that is not SQLite before SQLite touches it.
        if let Some(bytes) = file_header(&path)
            && !bytes.is_empty()
            && bytes.as_slice() != SQLITE_MAGIC
        {
            return Err(StoreError::Corrupt {
                path,
                detalle: "cabecera desconocida".into(),
            });
        }
        let opts = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30));
        let corrupt = |e: sqlx::Error, path: &Path| match is_corruption(&e) {
            Some(detalle) => StoreError::Corrupt {
                path: path.to_path_buf(),
                detalle,
            },
            None => StoreError::Sql(e),
        };
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await
            .map_err(|e| corrupt(e, &path))?;
        if let Err(e) = sqlx::migrate!("./migrations").run(&pool).await {
            if let sqlx::migrate::MigrateError::Execute(inner) = &e
                && let Some(detalle) = is_corruption(inner)
            {
                return Err(StoreError::Corrupt { path, detalle });
            }
            return Err(e.into());
        }
        Ok(Store { pool, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// This device's actor id: generated once, then kept.
    pub async fn actor(&self) -> Result<ActorId, StoreError> {
        let candidate = ActorId::random().to_hex_string();
        sqlx::query("INSERT OR IGNORE INTO meta (key, value) VALUES ('actor_id', ?)")
            .bind(&candidate)
            .execute(&self.pool)
            .await?;
        let hex = self.get_meta("actor_id").await?.unwrap_or(candidate);
        ActorId::from_str(&hex).map_err(|e| StoreError::Corrupt {
            path: self.path.clone(),
            detalle: format!("actor_id inválido: {e}"),
        })
    }

    pub async fn get_meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT value FROM meta WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?)
    }

    pub async fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value")
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Registers a document and stores its genesis (idempotent: the genesis is deterministic).
    pub async fn create(
        &self,
        info: &DocInfo,
        genesis: &mut AutoCommit,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT OR IGNORE INTO documents (id, kind, owner, ciclo, created_at) VALUES (?, ?, ?, ?, ?)")
            .bind(info.id.to_string())
            .bind(info.kind.as_str())
            .bind(&info.owner)
            .bind(&info.ciclo)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        insert_chunk(&mut tx, &info.id, &genesis.save()).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn documents(&self) -> Result<Vec<DocInfo>, StoreError> {
        let rows =
            sqlx::query("SELECT id, kind, owner, ciclo FROM documents ORDER BY created_at, id")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                Some(DocInfo {
                    id: DocumentId::parse(r.get::<&str, _>("id")).ok()?,
                    kind: DocKind::parse(r.get::<&str, _>("kind"))?,
                    owner: r.get("owner"),
                    ciclo: r.get("ciclo"),
                })
            })
            .collect())
    }

    pub async fn document(&self, id: &DocumentId) -> Result<Option<DocInfo>, StoreError> {
        Ok(self.documents().await?.into_iter().find(|d| &d.id == id))
    }

    /// Loads a document (snapshot, then chunks in append order), or `None` if unknown.
    pub async fn load(&self, id: &DocumentId) -> Result<Option<AutoCommit>, StoreError> {
        let Some(stored) = self.load_stored(id).await? else {
            return Ok(None);
        };
        self.assemble(
            id,
            stored.snapshot.as_deref(),
            stored.chunks.iter().map(Vec::as_slice),
        )
        .map(Some)
    }

    /// Applies `op` (no I/O) to the latest stored state of a document, as `actor`, and appends
    /// the changes it makes, holding the store's write lock from the read to the commit; returns
    /// what `op` returned and the document as it now stands. This is how the device's own
    /// changes are saved: a document loaded earlier may be stale (another command may have
    /// written since), and a change made on it would reuse a sequence number of this actor. If
    /// `op` fails nothing is written.
    pub async fn escribir<T, E: From<StoreError>>(
        &self,
        id: &DocumentId,
        actor: &ActorId,
        op: impl FnOnce(&mut AutoCommit) -> Result<T, E>,
    ) -> Result<(T, AutoCommit), E> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(StoreError::from)?;
        let known: Option<String> = sqlx::query_scalar("SELECT id FROM documents WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(StoreError::from)?;
        if known.is_none() {
            return Err(StoreError::Desconocido(*id).into());
        }
        let (snapshot, chunks) = stored_parts(&mut tx, id).await.map_err(StoreError::from)?;
        let mut doc = self
            .assemble(id, snapshot.as_deref(), chunks.iter().map(Vec::as_slice))?
            .with_actor(actor.clone());
        let before = doc.get_heads();
        // On error the transaction is dropped, and with it the lock; nothing was written.
        let r = op(&mut doc)?;
        let data = doc.save_after(&before);
        if !data.is_empty() {
            insert_chunk(&mut tx, id, &data).await?;
        }
        tx.commit().await.map_err(StoreError::from)?;
        self.compact_if_due(id).await?;
        Ok((r, doc))
    }

    fn assemble<'a>(
        &self,
        id: &DocumentId,
        snapshot: Option<&[u8]>,
        chunks: impl Iterator<Item = &'a [u8]>,
    ) -> Result<AutoCommit, StoreError> {
        let bad = |e: automerge::AutomergeError| StoreError::CorruptDocument {
            path: self.path.clone(),
            doc: id.to_string(),
            detalle: e.to_string(),
        };
        let mut doc = match snapshot {
            Some(s) => AutoCommit::load(s).map_err(bad)?,
            None => AutoCommit::new(),
        };
        for c in chunks {
            doc.load_incremental(c).map_err(bad)?;
        }
        Ok(doc)
    }

    /// Appends changes (the output of `save_after`/`save_incremental`, or changes received from
    /// elsewhere) to a known document. Durable when this returns. Empty input is a no-op.
    pub async fn append(&self, id: &DocumentId, data: &[u8]) -> Result<(), StoreError> {
        self.append_many(&[(*id, data)]).await
    }

    /// Appends to several documents in one transaction: all or nothing.
    pub async fn append_many(&self, items: &[(DocumentId, &[u8])]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for (id, data) in items {
            if !data.is_empty() {
                insert_chunk(&mut tx, id, data).await?;
            }
        }
        tx.commit().await?;
        for (id, _) in items {
            self.compact_if_due(id).await?;
        }
        Ok(())
    }

    /// Compacts a document once it has [`COMPACT_AFTER_CHUNKS`] chunks.
    async fn compact_if_due(&self, id: &DocumentId) -> Result<(), StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM chunks WHERE doc_id = ?")
            .bind(id.to_string())
            .fetch_one(&self.pool)
            .await?;
        if n >= COMPACT_AFTER_CHUNKS {
            self.compact(id).await?;
        }
        Ok(())
    }

    /// Folds the snapshot and every chunk into a new snapshot ([`storage::fold`]) and deletes
    /// exactly the chunks it covers, in one transaction that holds the write lock throughout. A
    /// chunk with a change whose dependencies are not stored stays.
    pub async fn compact(&self, id: &DocumentId) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let snapshot: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT data FROM snapshots WHERE doc_id = ?")
                .bind(id.to_string())
                .fetch_optional(&mut *tx)
                .await?;
        let rows = sqlx::query("SELECT seq, data FROM chunks WHERE doc_id = ? ORDER BY seq")
            .bind(id.to_string())
            .fetch_all(&mut *tx)
            .await?;
        if rows.is_empty() {
            return Ok(());
        }
        let seqs: Vec<i64> = rows.iter().map(|r| r.get("seq")).collect();
        let stored = storage::Stored {
            snapshot,
            chunks: rows.iter().map(|r| r.get("data")).collect(),
        };
        let folded = storage::fold(&stored).map_err(|detalle| StoreError::CorruptDocument {
            path: self.path.clone(),
            doc: id.to_string(),
            detalle,
        })?;
        let data = folded.snapshot;
        let heads = hex_heads(&folded.heads);
        sqlx::query(
            "INSERT INTO snapshots (doc_id, data, heads, updated_at) VALUES (?, ?, ?, strftime('%s','now')) \
             ON CONFLICT(doc_id) DO UPDATE SET data = excluded.data, heads = excluded.heads, updated_at = excluded.updated_at",
        )
        .bind(id.to_string())
        .bind(&data)
        .bind(&heads)
        .execute(&mut *tx)
        .await?;
        for (seq, covered) in seqs.iter().zip(&folded.covered) {
            if *covered {
                sqlx::query("DELETE FROM chunks WHERE doc_id = ? AND seq = ?")
                    .bind(id.to_string())
                    .bind(seq)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// The stored parts of a document (snapshot, then chunks in append order), read in one
    /// transaction, or `None` if unknown.
    pub async fn load_stored(
        &self,
        id: &DocumentId,
    ) -> Result<Option<storage::Stored>, StoreError> {
        let mut conn = self.pool.begin().await?;
        let known: Option<String> = sqlx::query_scalar("SELECT id FROM documents WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&mut *conn)
            .await?;
        if known.is_none() {
            return Ok(None);
        }
        let (snapshot, chunks) = stored_parts(&mut conn, id).await?;
        conn.commit().await?;
        Ok(Some(storage::Stored { snapshot, chunks }))
    }

    /// Registers a document with its genesis bytes (idempotent).
    async fn register_bytes(&self, info: &DocInfo, genesis: &[u8]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT OR IGNORE INTO documents (id, kind, owner, ciclo, created_at) VALUES (?, ?, ?, ?, strftime('%s','now'))")
            .bind(info.id.to_string())
            .bind(info.kind.as_str())
            .bind(&info.owner)
            .bind(&info.ciclo)
            .execute(&mut *tx)
            .await?;
        insert_chunk(&mut tx, &info.id, genesis).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Counts of stored pieces per document, for `estado` and tests.
    pub async fn chunk_counts(&self) -> Result<HashMap<String, i64>, StoreError> {
        let rows = sqlx::query("SELECT doc_id, COUNT(*) AS n FROM chunks GROUP BY doc_id")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.get("doc_id"), r.get("n")))
            .collect())
    }

    /// A cheap fingerprint of a document's stored state (last chunk and snapshot), to notice
    /// writes by other processes without loading the document.
    pub async fn version(&self, id: &DocumentId) -> Result<(i64, i64), StoreError> {
        let (seq, snap): (i64, i64) = sqlx::query_as(
            "SELECT COALESCE((SELECT MAX(seq) FROM chunks WHERE doc_id = ?1), 0), \
                    COALESCE((SELECT updated_at FROM snapshots WHERE doc_id = ?1), 0)",
        )
        .bind(id.to_string())
        .fetch_one(&self.pool)
        .await?;
        Ok((seq, snap))
    }

    /// This replica's storage id for the sync protocol: generated once, then kept.
    pub async fn storage_id(&self) -> Result<String, StoreError> {
        let candidate: String = (0..16)
            .map(|_| format!("{:02x}", rand::random::<u8>()))
            .collect();
        sqlx::query("INSERT OR IGNORE INTO meta (key, value) VALUES ('storage_id', ?)")
            .bind(&candidate)
            .execute(&self.pool)
            .await?;
        Ok(self.get_meta("storage_id").await?.unwrap_or(candidate))
    }

    pub async fn save_sync_state(
        &self,
        peer: &str,
        id: &DocumentId,
        state: &[u8],
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sync_states (peer, doc_id, state) VALUES (?, ?, ?) \
             ON CONFLICT(peer, doc_id) DO UPDATE SET state = excluded.state",
        )
        .bind(peer)
        .bind(id.to_string())
        .bind(state)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn load_sync_state(
        &self,
        peer: &str,
        id: &DocumentId,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT state FROM sync_states WHERE peer = ? AND doc_id = ?")
                .bind(peer)
                .bind(id.to_string())
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Runs SQLite's integrity check; `Ok(())` when the file is sound.
    pub async fn integrity_check(&self) -> Result<(), StoreError> {
        let r: String = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(&self.pool)
            .await?;
        if r == "ok" {
            Ok(())
        } else {
            Err(StoreError::Corrupt {
                path: self.path.clone(),
                detalle: r,
            })
        }
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The laptop's store as a replica's storage (the contract in [`storage`]).
impl Storage for Store {
    type Error = StoreError;

    async fn documents(&self) -> Result<Vec<DocInfo>, StoreError> {
        Store::documents(self).await
    }

    async fn document(&self, id: &DocumentId) -> Result<Option<DocInfo>, StoreError> {
        Store::document(self, id).await
    }

    async fn register(&self, info: &DocInfo, genesis: &[u8]) -> Result<(), StoreError> {
        self.register_bytes(info, genesis).await
    }

    async fn load(&self, id: &DocumentId) -> Result<Option<storage::Stored>, StoreError> {
        self.load_stored(id).await
    }

    async fn append(&self, id: &DocumentId, chunk: &[u8]) -> Result<u64, StoreError> {
        if self.document(id).await?.is_none() {
            return Err(StoreError::Desconocido(*id));
        }
        let mut tx = self.pool.begin().await?;
        if !chunk.is_empty() {
            insert_chunk(&mut tx, id, chunk).await?;
        }
        tx.commit().await?;
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM chunks WHERE doc_id = ?")
            .bind(id.to_string())
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn compact(&self, id: &DocumentId) -> Result<(), StoreError> {
        Store::compact(self, id).await
    }

    async fn save_sync_state(
        &self,
        peer: &str,
        id: &DocumentId,
        state: &[u8],
    ) -> Result<(), StoreError> {
        Store::save_sync_state(self, peer, id, state).await
    }

    async fn load_sync_state(
        &self,
        peer: &str,
        id: &DocumentId,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Store::load_sync_state(self, peer, id).await
    }

    async fn actor(&self) -> Result<ActorId, StoreError> {
        Store::actor(self).await
    }

    async fn storage_id(&self) -> Result<String, StoreError> {
        Store::storage_id(self).await
    }

    async fn version(&self, id: &DocumentId) -> Result<(i64, i64), StoreError> {
        Store::version(self, id).await
    }
}

/// A document's snapshot and chunks (in append order), read on `conn` (inside the caller's
/// transaction).
async fn stored_parts(
    conn: &mut sqlx::SqliteConnection,
    id: &DocumentId,
) -> Result<(Option<Vec<u8>>, Vec<Vec<u8>>), sqlx::Error> {
    let snapshot: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT data FROM snapshots WHERE doc_id = ?")
            .bind(id.to_string())
            .fetch_optional(&mut *conn)
            .await?;
    let chunks: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT data FROM chunks WHERE doc_id = ? ORDER BY seq")
            .bind(id.to_string())
            .fetch_all(&mut *conn)
            .await?;
    Ok((snapshot, chunks))
}

async fn insert_chunk(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    id: &DocumentId,
    data: &[u8],
) -> Result<(), StoreError> {
    let hash = Sha256::digest(data).to_vec();
    sqlx::query("INSERT OR IGNORE INTO chunks (doc_id, hash, data) VALUES (?, ?, ?)")
        .bind(id.to_string())
        .bind(hash)
        .bind(data)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{Cct, CicloEscolar, RecordId};
    use crate::model::Ctx;
    use crate::model::escuela::{self, NuevoAcuerdo};

    fn info() -> (DocInfo, AutoCommit) {
        let cct = Cct::parse("07DPR0123X").unwrap();
        let ciclo = CicloEscolar::parse("2025-2026").unwrap();
        let g = escuela::genesis_escuela(&cct, ciclo).unwrap();
        let info = DocInfo {
            id: DocumentId::escuela(&cct, ciclo),
            kind: DocKind::Escuela,
            owner: cct.to_string(),
            ciclo: ciclo.to_string(),
        };
        (info, g)
    }

    #[tokio::test]
    async fn append_load_and_compact_keep_every_change() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).await.unwrap();
        let actor = store.actor().await.unwrap();
        assert_eq!(
            store.actor().await.unwrap(),
            actor,
            "actor is generated once"
        );
        let (info, mut g) = info();
        store.create(&info, &mut g, 1).await.unwrap();
        let mut doc = store
            .load(&info.id)
            .await
            .unwrap()
            .unwrap()
            .with_actor(actor);
        let ctx = Ctx {
            ahora: 1_700_000_000,
            autor: Some("Ana"),
        };
        for i in 0..(COMPACT_AFTER_CHUNKS + 5) {
            let before = doc.get_heads();
            let a = NuevoAcuerdo {
                texto: format!("acuerdo {i}"),
                responsables: vec![],
                fecha_compromiso: None,
                sesion_origen: None,
            };
            escuela::agregar_acuerdo(&mut doc, &ctx, &RecordId::from_random(i as u64 + 1), &a)
                .unwrap();
            store
                .append(&info.id, &doc.save_after(&before))
                .await
                .unwrap();
        }
        let counts = store.chunk_counts().await.unwrap();
        assert!(
            counts.get(&info.id.to_string()).copied().unwrap_or(0) < COMPACT_AFTER_CHUNKS,
            "compacted"
        );
        let mut again = store.load(&info.id).await.unwrap().unwrap();
        assert_eq!(again.get_heads(), doc.get_heads());
        assert_eq!(
            escuela::leer(&again).unwrap().acuerdos.len(),
            COMPACT_AFTER_CHUNKS as usize + 5
        );
        store.integrity_check().await.unwrap();
    }

    /// Two processes write as the same actor (the device's), the second from a state it loaded
    /// before the first wrote (a command waiting in `$EDITOR` while another records an
    /// acuerdo). Built on the stale state, the second change would reuse the first one's
    /// sequence number and the document would no longer load; `escribir` builds it on what is
    /// stored.
    #[tokio::test]
    async fn own_changes_from_two_processes_never_share_a_sequence_number() {
        let dir = tempfile::tempdir().unwrap();
        let (info, mut g) = info();
        let uno = Store::open(dir.path()).await.unwrap();
        let dos = Store::open(dir.path()).await.unwrap();
        uno.create(&info, &mut g, 1).await.unwrap();
        let actor = uno.actor().await.unwrap();
        let ctx = Ctx {
            ahora: 1_700_000_000,
            autor: None,
        };
        let acuerdo = |i: u64| NuevoAcuerdo {
            texto: format!("acuerdo {i}"),
            responsables: vec![],
            fecha_compromiso: None,
            sesion_origen: None,
        };
        // The hazard: both build on the same state as the same actor.
        let stale = dos.load(&info.id).await.unwrap().unwrap();
        let mut a = stale.clone().with_actor(actor.clone());
        let mut b = stale.with_actor(actor.clone());
        let h = a.get_heads();
        escuela::agregar_acuerdo(&mut a, &ctx, &RecordId::from_random(1), &acuerdo(1)).unwrap();
        escuela::agregar_acuerdo(&mut b, &ctx, &RecordId::from_random(2), &acuerdo(2)).unwrap();
        let mut junto = AutoCommit::load(&a.save()).unwrap();
        assert!(
            junto.load_incremental(&b.save_after(&h)).is_err(),
            "automerge refuses a second change with the same actor and sequence number"
        );

        // `escribir` from both handles, the second with inputs read from a stale load.
        let viejo = escuela::leer(&dos.load(&info.id).await.unwrap().unwrap()).unwrap();
        uno.escribir(&info.id, &actor, |doc| {
            escuela::agregar_acuerdo(doc, &ctx, &RecordId::from_random(3), &acuerdo(3)).unwrap();
            Ok::<_, StoreError>(())
        })
        .await
        .unwrap();
        let ((), mut doc) = dos
            .escribir(&info.id, &actor, |doc| {
                assert_eq!(escuela::leer(doc).unwrap().acuerdos.len(), 1, "fresh state");
                escuela::agregar_acuerdo(doc, &ctx, &RecordId::from_random(4), &acuerdo(4))
                    .unwrap();
                Ok::<_, StoreError>(())
            })
            .await
            .unwrap();
        assert!(viejo.acuerdos.is_empty());
        let mut cargado = uno.load(&info.id).await.unwrap().unwrap();
        assert_eq!(escuela::leer(&cargado).unwrap().acuerdos.len(), 2);
        assert_eq!(cargado.get_heads(), doc.get_heads());

        // A failed operation writes nothing and releases the lock.
        let antes = uno.version(&info.id).await.unwrap();
        let e = uno
            .escribir(&info.id, &actor, |doc| {
                // No such acuerdo: the model refuses (mapped to any error type `escribir` takes).
                escuela::editar_texto_acuerdo(doc, &ctx, &RecordId::from_random(9), "nada")
                    .map_err(|_| StoreError::Desconocido(info.id))
            })
            .await;
        assert!(e.is_err());
        assert_eq!(uno.version(&info.id).await.unwrap(), antes);
        dos.escribir(&info.id, &actor, |_| Ok::<_, StoreError>(()))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_file_that_is_not_sqlite_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DB_FILE);
        std::fs::write(
            &path,
            b"esto no es una base de datos, son las notas de la maestra",
        )
        .unwrap();
        let before = std::fs::read(&path).unwrap();
        let err = Store::open(dir.path()).await.unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }
}
