//! Who and what the workload is made of, derived from the seed so that every run and every
//! server sees the same schools, devices, actors and changes; and, for bitacora-server, the
//! registry (`carga preparar`) that lets those devices in: zone, schools, one docente per
//! device with a token, and each device's actor enrolled.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use bitacora_core::automerge::ActorId;
use bitacora_core::ids::{Cct, CicloEscolar, DocumentId};
use bitacora_escenario::ciclo::Azar;
use bitacora_server::admin;
use bitacora_server::auth::Keys;
use bitacora_server::config::Config;
use bitacora_server::db::Database;
use serde::{Deserialize, Serialize};

pub const CICLO: &str = "2025-2026";
pub const ZONA: &str = "07FIZ0999";
/// The school of the live scenario (teachers co-editing one acuerdo).
pub const ESCUELA_VIVO: usize = 9000;
/// The school of the satellite scenario (one laptop after a cycle offline).
pub const ESCUELA_SATELITE: usize = 9001;

pub fn ciclo() -> CicloEscolar {
    CicloEscolar::parse(CICLO).expect("literal")
}

pub fn cct(z: usize) -> Cct {
    let letra = (b'A' + (z % 26) as u8) as char;
    Cct::parse(&format!("07DPR{:04}{letra}", z % 10_000)).expect("a valid CCT")
}

/// The actor of device `d` of school `z`: fixed by the seed, so the changes are the same bytes
/// on every run.
pub fn actor(semilla: u64, z: usize, d: usize) -> ActorId {
    let mut az = Azar::new(semilla ^ ((z as u64) << 24) ^ (d as u64) ^ 0xAC70);
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&az.next_u64().to_le_bytes());
    b[8..].copy_from_slice(&az.next_u64().to_le_bytes());
    ActorId::from(&b[..])
}

/// The seed of what device `d` of school `z` writes (`d = usize::MAX`: the shared history).
pub fn semilla_de(semilla: u64, z: usize, d: usize) -> u64 {
    semilla
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(((z as u64) << 32) ^ d as u64)
}

pub fn usuario(z: usize, d: usize) -> String {
    format!("carga-{z}-{d}")
}

/// The storage id a device announces (the same on every run: a laptop keeps its store).
pub fn storage_id(semilla: u64, z: usize, d: usize) -> String {
    format!("carga-{semilla}-{z}-{d}")
}

/// A random automerge-repo document id (a version-4 UUID), for the generic mode.
pub fn id_aleatorio() -> DocumentId {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    DocumentId::from_bytes(b)
}

/// What `carga preparar` registered in a bitacora-server data directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Preparado {
    pub escuelas: usize,
    pub dispositivos: usize,
    pub maestros: usize,
    pub semilla: u64,
    /// user id -> bearer token.
    pub tokens: BTreeMap<String, String>,
}

impl Preparado {
    pub fn archivo(datos: &Path) -> PathBuf {
        datos.join("carga.json")
    }

    pub fn leer(path: &Path) -> Result<Preparado> {
        let s = std::fs::read_to_string(path)
            .with_context(|| format!("reading {} (run `carga preparar`)", path.display()))?;
        Ok(serde_json::from_str(&s)?)
    }
}

/// How devices present themselves and which document a school is: Bitácora's derived ids and
/// tokens, or (generic) random ids and no token.
pub struct Credenciales {
    pub generico: bool,
    pub semilla: u64,
    preparado: Option<Preparado>,
    ids: BTreeMap<usize, DocumentId>,
}

impl Credenciales {
    pub fn new(generico: bool, preparado: Option<&Path>, semilla: u64) -> Result<Credenciales> {
        let preparado = match (generico, preparado) {
            (true, _) => None,
            (false, Some(p)) => Some(Preparado::leer(p)?),
            (false, None) => {
                anyhow::bail!("bitacora-server needs --preparado carga.json (or use --generico)")
            }
        };
        let semilla = preparado.as_ref().map_or(semilla, |p| p.semilla);
        Ok(Credenciales {
            generico,
            semilla,
            preparado,
            ids: BTreeMap::new(),
        })
    }

    pub fn preparado(&self) -> Option<&Preparado> {
        self.preparado.as_ref()
    }

    pub fn token(&self, z: usize, d: usize) -> Result<Option<String>> {
        match &self.preparado {
            None => Ok(None),
            Some(p) => p
                .tokens
                .get(&usuario(z, d))
                .cloned()
                .map(Some)
                .with_context(|| format!("no token for {} in carga.json", usuario(z, d))),
        }
    }

    /// The document of school `z` (a fresh random id per run in the generic mode).
    pub fn documento(&mut self, z: usize) -> DocumentId {
        let generico = self.generico;
        *self.ids.entry(z).or_insert_with(|| {
            if generico {
                id_aleatorio()
            } else {
                DocumentId::escuela(&cct(z), ciclo())
            }
        })
    }
}

/// Registers the zone, `escuelas` schools with `dispositivos` docentes each (token, enrolled
/// actor), the live school with `maestros` docentes and the satellite school with one, in the
/// SQLite database of the data directory `datos` (created), and writes `datos/carga.json`.
/// The JWT secret is generated into `datos/jwt-secret`, where `bitacora-server --data-dir`
/// finds it.
pub async fn preparar(
    datos: &Path,
    escuelas: usize,
    dispositivos: usize,
    maestros: usize,
    semilla: u64,
) -> Result<()> {
    std::fs::create_dir_all(datos)?;
    let config = Config {
        data_dir: datos.to_path_buf(),
        ..Config::default()
    };
    let db = Database::connect(&config.database_url()).await?;
    let keys = Keys::from_config(&config.jwt, datos)?;
    admin::zona_add(&db, ZONA, "Zona de carga", ciclo()).await?;
    let mut tokens = BTreeMap::new();
    let grupos = (0..escuelas)
        .map(|z| (z, dispositivos))
        .chain([(ESCUELA_VIVO, maestros), (ESCUELA_SATELITE, 1)]);
    for (z, n) in grupos {
        let c = cct(z);
        admin::escuela_add(&db, c.as_str(), &format!("Escuela {z}"), ZONA, ciclo()).await?;
        for d in 0..n {
            let u = usuario(z, d);
            admin::usuario_add(&db, &u, &u, "docente", Some(c.as_str()), None).await?;
            let (t, _) = admin::token_emitir(&db, &keys, &u, 30).await?;
            db.enrol_actor(&actor(semilla, z, d).to_hex_string(), &u)
                .await?;
            tokens.insert(u, t);
        }
    }
    db.close().await;
    let p = Preparado {
        escuelas,
        dispositivos,
        maestros,
        semilla,
        tokens,
    };
    std::fs::write(Preparado::archivo(datos), serde_json::to_string_pretty(&p)?)?;
    Ok(())
}
