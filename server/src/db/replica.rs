//! The zone server's database as a replica's storage: the contract of
//! `bitacora_core::storage::Storage` over the same tables the hub uses (`documentos`, `chunks`,
//! `snapshots`, `sync_states`, and the server's own actor in `meta`). What only a zone server has
//! (the registry of zones, schools and users, tokens, enrolled actors, projections, audit) stays
//! in [`Database`]'s other methods.

use automerge::ActorId;
use bitacora_core::ids::DocumentId;
use bitacora_core::model::DocInfo;
use bitacora_core::storage::{self, Storage, Stored};

use super::{Database, DbError};

impl Storage for Database {
    type Error = DbError;

    async fn documents(&self) -> Result<Vec<DocInfo>, DbError> {
        Database::documents(self).await
    }

    async fn document(&self, id: &DocumentId) -> Result<Option<DocInfo>, DbError> {
        Database::document(self, id).await
    }

    async fn register(&self, info: &DocInfo, genesis: &[u8]) -> Result<(), DbError> {
        self.register_document(info, genesis).await
    }

    async fn load(&self, id: &DocumentId) -> Result<Option<Stored>, DbError> {
        if Database::document(self, id).await?.is_none() {
            return Ok(None);
        }
        Ok(Some(Database::load(self, id).await?))
    }

    async fn append(&self, id: &DocumentId, chunk: &[u8]) -> Result<u64, DbError> {
        if Database::document(self, id).await?.is_none() {
            return Err(DbError::Damaged(format!("document {id} is not registered")));
        }
        if chunk.is_empty() {
            return Ok(u64::try_from(self.chunk_count(id).await?).unwrap_or(0));
        }
        Ok(u64::try_from(Database::append(self, id, chunk).await?).unwrap_or(0))
    }

    async fn compact(&self, id: &DocumentId) -> Result<(), DbError> {
        self.compact_covered(id, |snapshot, chunks| async move {
            tokio::task::spawn_blocking(move || {
                let f = storage::fold(&Stored { snapshot, chunks }).map_err(DbError::Damaged)?;
                Ok((
                    f.snapshot,
                    bitacora_core::store::hex_heads(&f.heads),
                    f.covered,
                ))
            })
            .await
            .map_err(|e| DbError::Damaged(e.to_string()))?
        })
        .await
    }

    async fn save_sync_state(
        &self,
        peer: &str,
        id: &DocumentId,
        state: &[u8],
    ) -> Result<(), DbError> {
        Database::save_sync_state(self, peer, id, state).await
    }

    async fn load_sync_state(
        &self,
        peer: &str,
        id: &DocumentId,
    ) -> Result<Option<Vec<u8>>, DbError> {
        Database::load_sync_state(self, peer, id).await
    }

    async fn storage_id(&self) -> Result<String, DbError> {
        // The same key `bitacora-server` announces in its handshakes (lib.rs).
        self.meta_or_init(
            "storage_id",
            &format!("bitacora-{:032x}", rand::random::<u128>()),
        )
        .await
    }

    async fn version(&self, id: &DocumentId) -> Result<(i64, i64), DbError> {
        let stored = Database::version(self, id).await?.unwrap_or(0);
        let compactado = self.snapshot_creado(id).await?.unwrap_or(0);
        Ok((stored, compactado))
    }

    async fn actor(&self) -> Result<ActorId, DbError> {
        let hex = self
            .meta_or_init("actor_id", &ActorId::random().to_hex_string())
            .await?;
        hex.parse::<ActorId>().map_err(|e| {
            DbError::Damaged(format!("stored actor_id {hex:?} is not an actor id: {e}"))
        })
    }
}
