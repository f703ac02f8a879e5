//! The context every command runs in: the opened store, this device's actor, the school this
//! data directory belongs to, and the one place where an operation is applied and made durable.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use bitacora_core::ModelError;
use bitacora_core::automerge::AutoCommit;
use bitacora_core::ids::{Cct, CicloEscolar, DocumentId, RecordId, ZonaClave};
use bitacora_core::model::{Ctx, DocKind};
use bitacora_core::store::{DB_FILE, DocInfo, Store};

/// An error caused by what the person typed: printed as is, exit code 2.
#[derive(Debug)]
pub struct Uso(pub String);

impl std::fmt::Display for Uso {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for Uso {}

pub fn uso(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Uso(msg.into()))
}

/// Keys of this device's settings in the store's `meta` table.
pub mod claves {
    pub const CCT: &str = "escuela.cct";
    pub const ZONA: &str = "escuela.zona";
    pub const CICLO: &str = "escuela.ciclo";
    pub const AUTOR: &str = "autor";
    pub const SERVIDOR: &str = "servidor";
    pub const TOKEN: &str = "token";
    pub const ULTIMA_SYNC: &str = "ultima_sync";
    /// Prefix of the access level (`lectura`/`escritura`) the server grants, per document id.
    pub const ACCESO: &str = "acceso.";
    /// Prefix of the heads the server confirmed, per document id.
    pub const CONFIRMADO: &str = "confirmado.";
}

pub fn data_dir(opt: Option<&Path>) -> Result<PathBuf> {
    match opt {
        Some(p) => Ok(p.to_path_buf()),
        None => dirs::data_dir().map(|d| d.join("bitacora")).ok_or_else(|| {
            anyhow::anyhow!(
                "no se encontró el directorio de datos de la plataforma; use --data-dir"
            )
        }),
    }
}

pub fn ahora() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub fn nuevo_id() -> RecordId {
    RecordId::from_random(rand::random::<u64>())
}

/// The school document of this data directory, loaded and ready to edit.
pub struct App {
    pub store: Store,
    pub cct: Cct,
    pub zona: Option<ZonaClave>,
    pub ciclo: CicloEscolar,
    pub info: DocInfo,
    pub doc: AutoCommit,
    pub autor: Option<String>,
}

impl App {
    /// Opens the data directory of an initialised school.
    pub async fn abrir(dir: &Path, ciclo: Option<&str>) -> Result<App> {
        let sin_escuela = || {
            uso(format!(
                "el directorio de datos {} no tiene escuela; ejecute primero `bitacora init --cct … --nombre … --zona … --ciclo …`",
                dir.display()
            ))
        };
        // Only `init` creates a data directory: any other command on a missing store is refused
        // before `Store::open` would create the directory and an empty database.
        if !dir.join(DB_FILE).exists() {
            return Err(sin_escuela());
        }
        let store = Store::open(dir).await?;
        let Some(cct) = store.get_meta(claves::CCT).await? else {
            return Err(sin_escuela());
        };
        let cct = Cct::parse(&cct)?;
        let ciclo = match ciclo {
            Some(c) => CicloEscolar::parse(c)?,
            None => CicloEscolar::parse(&store.get_meta(claves::CICLO).await?.unwrap_or_default())?,
        };
        let zona = store
            .get_meta(claves::ZONA)
            .await?
            .and_then(|z| ZonaClave::parse(&z).ok());
        let id = DocumentId::escuela(&cct, ciclo);
        let Some(info) = store.document(&id).await? else {
            return Err(uso(format!(
                "este equipo no tiene el ciclo {ciclo} de la escuela {cct}; ejecute `bitacora init` con --ciclo {ciclo}"
            )));
        };
        let actor = store.actor().await?;
        let doc = store
            .load(&id)
            .await?
            .context("el documento desapareció del almacén")?
            .with_actor(actor);
        let autor = store.get_meta(claves::AUTOR).await?;
        Ok(App {
            store,
            cct,
            zona,
            ciclo,
            info,
            doc,
            autor,
        })
    }

    /// Applies one operation and returns only after its change is durably stored. The
    /// operation runs on the document as stored at that moment (`Store::escribir`), not on
    /// `self.doc` as loaded at start: another command may have written since (e.g. while this
    /// one waited for `$EDITOR`), and a change built on the older state would reuse this
    /// device's sequence number and leave a document that no longer loads.
    pub async fn escribir<T>(
        &mut self,
        op: impl FnOnce(&mut AutoCommit, &Ctx<'_>) -> Result<T, ModelError>,
    ) -> Result<T> {
        let ctx = Ctx {
            ahora: ahora(),
            autor: self.autor.as_deref(),
        };
        let actor = self.doc.get_actor().clone();
        let (r, doc) = self
            .store
            .escribir(&self.info.id, &actor, |doc| {
                op(doc, &ctx).map_err(anyhow::Error::from)
            })
            .await?;
        self.doc = doc;
        Ok(r)
    }

    /// The zone's document for this ciclo, created from its deterministic genesis the first time
    /// (so a director can share a práctica before ever syncing).
    pub async fn documento_zona(&self) -> Result<(DocInfo, AutoCommit)> {
        let zona = self.zona.clone().ok_or_else(|| {
            uso("este equipo no tiene zona registrada; ejecute `bitacora init … --zona CLAVE`")
        })?;
        let id = DocumentId::zona(&zona, self.ciclo);
        let info = DocInfo {
            id,
            kind: DocKind::Zona,
            owner: zona.to_string(),
            ciclo: self.ciclo.to_string(),
        };
        if self.store.document(&id).await?.is_none() {
            let mut g = bitacora_core::model::zona::genesis_zona(&zona, self.ciclo)?;
            self.store.create(&info, &mut g, ahora()).await?;
        }
        let actor = self.store.actor().await?;
        let doc = self
            .store
            .load(&id)
            .await?
            .context("el documento de la zona desapareció del almacén")?
            .with_actor(actor);
        Ok((info, doc))
    }

    /// Applies one operation to another document of this store (the zone's), durably, on its
    /// stored state as [`App::escribir`] does; `doc` is updated to it.
    pub async fn escribir_en<T>(
        &self,
        info: &DocInfo,
        doc: &mut AutoCommit,
        op: impl FnOnce(&mut AutoCommit, &Ctx<'_>) -> Result<T, ModelError>,
    ) -> Result<T> {
        let ctx = Ctx {
            ahora: ahora(),
            autor: self.autor.as_deref(),
        };
        let actor = doc.get_actor().clone();
        let (r, nuevo) = self
            .store
            .escribir(&info.id, &actor, |d| {
                op(d, &ctx).map_err(anyhow::Error::from)
            })
            .await?;
        *doc = nuevo;
        Ok(r)
    }

    /// Whether this replica may hold a document arriving in a bundle: its own school's, or its
    /// zone's.
    pub fn permitido(&self, info: &DocInfo) -> bool {
        match info.kind {
            DocKind::Escuela => info.owner == self.cct.as_str(),
            DocKind::Zona => self.zona.as_ref().is_some_and(|z| z.as_str() == info.owner),
        }
    }
}
