//! Bundles: the file that carries changes where no network reaches (a USB stick).
//!
//! Layout (all integers big-endian):
//! ```text
//! magic   "BITACORA-BUNDLE\0"   16 bytes
//! u32     header length
//! header  JSON (BundleHeader): origin, creation time, and per document its id, kind, owner,
//!         ciclo, the heads the payload starts from (`desde`), the heads it reaches and its size
//! payload the automerge changes of each document, concatenated in header order
//! sha256  of everything above, 32 bytes
//! ```
//! Decoding checks every part before anything is applied; importing applies all documents in
//! one store transaction, and is idempotent (chunks are keyed by their hash, and automerge
//! ignores changes it already has).

use std::str::FromStr;

use automerge::{AutoCommit, ChangeHash};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::ids::{Cct, CicloEscolar, DocumentId, ZonaClave};
use crate::model::DocInfo;
use crate::model::{DocKind, escuela, zona};
use crate::protocol::changes::{Autoria, autorias};
use crate::storage::parse_heads;
#[cfg(feature = "sqlite")]
use crate::{
    storage::hex_heads,
    store::{Store, StoreError},
};

pub const MAGIC: &[u8; 16] = b"BITACORA-BUNDLE\0";
pub const VERSION: u32 = 1;
/// `origen` prefix of bundles written by a zone server (return trips).
pub const ORIGEN_SERVIDOR: &str = "servidor";
/// Refuse headers larger than this (a header lists documents, not data).
const MAX_HEADER: usize = 1 << 20;

#[derive(Debug, Error)]
pub enum BundleError {
    #[error("el archivo no es un paquete de Bitácora")]
    NotABundle,
    #[error("el paquete está incompleto o dañado: {0}")]
    Damaged(String),
    #[error("el paquete es de la versión {0}, que esta versión de Bitácora no conoce")]
    UnknownVersion(u32),
    #[error(
        "el paquete trae el documento {0}, que no corresponde a este equipo (otra escuela o zona); no se aplicó nada"
    )]
    Forbidden(String),
    #[error(
        "el paquete depende de cambios que este equipo todavía no tiene; importe primero el paquete anterior (documento {0}; no se aplicó nada)"
    )]
    MissingDeps(String),
    #[cfg(feature = "sqlite")]
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleHeader {
    pub version: u32,
    /// Seconds since the Unix epoch.
    pub creado: i64,
    /// Who made it: a CCT, a zone key or a server name.
    pub origen: String,
    pub documentos: Vec<BundleDoc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleDoc {
    pub id: String,
    pub tipo: DocKind,
    pub owner: String,
    pub ciclo: String,
    /// Heads the payload starts from (empty: the whole history).
    pub desde: Vec<String>,
    /// Heads of the document once the payload is applied.
    pub heads: Vec<String>,
    pub bytes: u64,
}

impl BundleDoc {
    /// Checks that the id is the deterministic id of (tipo, owner, ciclo).
    pub fn info(&self) -> Result<DocInfo, BundleError> {
        let bad = |m: &str| BundleError::Damaged(format!("documento {}: {m}", self.id));
        let ciclo = CicloEscolar::parse(&self.ciclo).map_err(|e| bad(&e.to_string()))?;
        let id = match self.tipo {
            DocKind::Escuela => DocumentId::escuela(
                &Cct::parse(&self.owner).map_err(|e| bad(&e.to_string()))?,
                ciclo,
            ),
            DocKind::Zona => DocumentId::zona(
                &ZonaClave::parse(&self.owner).map_err(|e| bad(&e.to_string()))?,
                ciclo,
            ),
        };
        if id.to_string() != self.id {
            return Err(bad("el id no corresponde a su escuela o zona y ciclo"));
        }
        Ok(DocInfo {
            id,
            kind: self.tipo,
            owner: self.owner.clone(),
            ciclo: self.ciclo.clone(),
        })
    }
}

#[derive(Debug, Clone)]
pub struct Bundle {
    pub header: BundleHeader,
    pub payloads: Vec<Vec<u8>>,
}

impl Bundle {
    pub fn encode(&self) -> Vec<u8> {
        let header = serde_json::to_vec(&self.header).expect("header serialises");
        let mut out = Vec::with_capacity(
            16 + 4 + header.len() + self.payloads.iter().map(Vec::len).sum::<usize>() + 32,
        );
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(header.len() as u32).to_be_bytes());
        out.extend_from_slice(&header);
        for p in &self.payloads {
            out.extend_from_slice(p);
        }
        let sum = Sha256::digest(&out);
        out.extend_from_slice(&sum);
        out
    }

    pub fn decode(data: &[u8]) -> Result<Bundle, BundleError> {
        if data.len() < 16 || &data[..16] != MAGIC {
            return Err(BundleError::NotABundle);
        }
        if data.len() < 16 + 4 + 32 {
            return Err(BundleError::Damaged("demasiado corto".into()));
        }
        let (body, sum) = data.split_at(data.len() - 32);
        if Sha256::digest(body)[..] != *sum {
            return Err(BundleError::Damaged(
                "la suma de verificación no coincide".into(),
            ));
        }
        let hlen = u32::from_be_bytes(body[16..20].try_into().expect("4 bytes")) as usize;
        if hlen > MAX_HEADER || 20 + hlen > body.len() {
            return Err(BundleError::Damaged("cabecera de tamaño inválido".into()));
        }
        let header: BundleHeader = serde_json::from_slice(&body[20..20 + hlen])
            .map_err(|e| BundleError::Damaged(format!("cabecera ilegible: {e}")))?;
        if header.version != VERSION {
            return Err(BundleError::UnknownVersion(header.version));
        }
        let mut rest = &body[20 + hlen..];
        let mut payloads = Vec::with_capacity(header.documentos.len());
        for d in &header.documentos {
            let n = usize::try_from(d.bytes)
                .ok()
                .filter(|n| *n <= rest.len())
                .ok_or_else(|| {
                    BundleError::Damaged(format!("faltan datos del documento {}", d.id))
                })?;
            payloads.push(rest[..n].to_vec());
            rest = &rest[n..];
        }
        if !rest.is_empty() {
            return Err(BundleError::Damaged("sobran datos al final".into()));
        }
        Ok(Bundle { header, payloads })
    }
}

/// Builds a bundle of the given documents, each from the heads the receiver is known to have
/// (empty: everything).
#[cfg(feature = "sqlite")]
pub async fn exportar(
    store: &Store,
    docs: &[(DocInfo, Vec<ChangeHash>)],
    origen: &str,
    ahora: i64,
) -> Result<Bundle, BundleError> {
    let mut header = BundleHeader {
        version: VERSION,
        creado: ahora,
        origen: origen.to_string(),
        documentos: Vec::new(),
    };
    let mut payloads = Vec::new();
    for (info, desde) in docs {
        let Some(mut doc) = store.load(&info.id).await? else {
            continue;
        };
        let payload = doc.save_after(desde);
        header.documentos.push(BundleDoc {
            id: info.id.to_string(),
            tipo: info.kind,
            owner: info.owner.clone(),
            ciclo: info.ciclo.clone(),
            desde: desde.iter().map(|h| h.to_string()).collect(),
            heads: doc.get_heads().iter().map(|h| h.to_string()).collect(),
            bytes: payload.len() as u64,
        });
        payloads.push(payload);
    }
    Ok(Bundle { header, payloads })
}

/// What an import did to one document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Importado {
    pub id: String,
    pub owner: String,
    /// Changes that were new to this replica.
    pub cambios_nuevos: usize,
    /// Changes that wait for earlier changes this replica does not have yet.
    pub cambios_en_espera: usize,
    pub heads: String,
}

/// Applies a bundle to a store. `permitido` decides, per document, whether this replica may
/// hold it; one refused document refuses the whole bundle. Nothing is written unless every
/// payload decodes strictly (automerge's `load_incremental` alone would skip chunks it cannot
/// read) and, once applied in memory, reaches every head its header declares: a payload whose
/// changes wait for earlier ones this replica lacks is refused with
/// [`BundleError::MissingDeps`].
#[cfg(feature = "sqlite")]
pub async fn importar(
    store: &Store,
    bundle: &Bundle,
    ahora: i64,
    permitido: impl Fn(&DocInfo) -> bool,
) -> Result<Vec<Importado>, BundleError> {
    let mut plan = Vec::new();
    for (d, payload) in bundle.header.documentos.iter().zip(&bundle.payloads) {
        let info = d.info()?;
        if !permitido(&info) {
            return Err(BundleError::Forbidden(format!(
                "{} ({})",
                info.owner, info.ciclo
            )));
        }
        let (mut doc, nuevo) = match store.load(&info.id).await? {
            Some(doc) => (doc, false),
            None => (genesis_de(&info)?, true),
        };
        let aplicado = aplicar(&mut doc, d, payload)?;
        let (antes, despues) = (0, aplicado.nuevos);
        let heads = doc.get_heads();
        let en_espera = doc.get_missing_deps(&heads).len();
        plan.push((
            info,
            nuevo,
            payload,
            Importado {
                id: d.id.clone(),
                owner: d.owner.clone(),
                cambios_nuevos: despues - antes,
                cambios_en_espera: en_espera,
                heads: hex_heads(&heads),
            },
        ));
    }
    for (info, nuevo, _, _) in &plan {
        if *nuevo {
            store.create(info, &mut genesis_de(info)?, ahora).await?;
        }
    }
    let items: Vec<(DocumentId, &[u8])> = plan
        .iter()
        .map(|(i, _, p, _)| (i.id, p.as_slice()))
        .collect();
    store.append_many(&items).await?;
    Ok(plan.into_iter().map(|(_, _, _, r)| r).collect())
}

/// What applying one document's payload did to an in-memory copy.
#[derive(Debug, Clone)]
pub struct Aplicado {
    /// Every change the payload carries (author and hash), new or not.
    pub autorias: Vec<Autoria>,
    /// Changes that were new to the copy.
    pub nuevos: usize,
}

/// Applies one document's payload to an in-memory copy, strictly: the payload must decode
/// completely (automerge's `load_incremental` alone would skip chunks it cannot read) and the
/// copy must then reach every head the header declares. Used by every importer (replicas and
/// the server), so the rules are the same everywhere. On error the copy must be discarded.
pub fn aplicar(
    doc: &mut AutoCommit,
    d: &BundleDoc,
    payload: &[u8],
) -> Result<Aplicado, BundleError> {
    let danado = |m: String| BundleError::Damaged(format!("documento {}: {m}", d.id));
    let autorias = autorias(payload)
        .map_err(|e| danado(format!("cambios ilegibles (detalle técnico: {e})")))?;
    let heads_declarados = d
        .heads
        .iter()
        .map(|h| ChangeHash::from_str(h).map_err(|_| danado(format!("cabecera ilegible «{h}»"))))
        .collect::<Result<Vec<_>, _>>()?;
    let antes = doc.get_changes(&[]).len();
    crate::protocol::changes::sin_panico(|| doc.load_incremental(payload))
        .map_err(danado)?
        .map_err(|e| danado(e.to_string()))?;
    let nuevos = doc.get_changes(&[]).len() - antes;
    let faltan: Vec<_> = heads_declarados
        .iter()
        .filter(|h| doc.get_change_by_hash(h).is_none())
        .collect();
    if !faltan.is_empty() {
        // A head the payload carries but could not apply waits for earlier changes; a head the
        // payload does not carry at all means header and payload disagree.
        return Err(
            if faltan
                .iter()
                .all(|h| autorias.iter().any(|a| a.hash == **h))
            {
                BundleError::MissingDeps(d.id.clone())
            } else {
                danado("faltan cambios que la cabecera declara".into())
            },
        );
    }
    Ok(Aplicado { autorias, nuevos })
}

/// The deterministic genesis of a document described by its info.
pub fn genesis_de(info: &DocInfo) -> Result<AutoCommit, BundleError> {
    let bad = |e: crate::ModelError| BundleError::Damaged(e.to_string());
    let ciclo = CicloEscolar::parse(&info.ciclo).map_err(bad)?;
    match info.kind {
        DocKind::Escuela => {
            escuela::genesis_escuela(&Cct::parse(&info.owner).map_err(bad)?, ciclo).map_err(bad)
        }
        DocKind::Zona => {
            zona::genesis_zona(&ZonaClave::parse(&info.owner).map_err(bad)?, ciclo).map_err(bad)
        }
    }
}

/// Parses the `desde` heads of a header entry.
pub fn desde(d: &BundleDoc) -> Vec<ChangeHash> {
    parse_heads(&d.desde.join(","))
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use super::*;
    use crate::ids::RecordId;
    use crate::model::Ctx;
    use crate::model::escuela::NuevoAcuerdo;

    const CCT: &str = "07DPR0123X";

    fn info_escuela() -> DocInfo {
        let cct = Cct::parse(CCT).unwrap();
        let ciclo = CicloEscolar::parse("2025-2026").unwrap();
        DocInfo {
            id: DocumentId::escuela(&cct, ciclo),
            kind: DocKind::Escuela,
            owner: CCT.into(),
            ciclo: ciclo.to_string(),
        }
    }

    /// The school's genesis plus one acuerdo per text; returns the heads after each one.
    fn con_acuerdos(textos: &[&str]) -> (AutoCommit, Vec<Vec<ChangeHash>>) {
        let mut doc = genesis_de(&info_escuela()).unwrap();
        let ctx = Ctx {
            ahora: 1_700_000_000,
            autor: Some("Ana"),
        };
        let mut heads = Vec::new();
        for (i, t) in textos.iter().enumerate() {
            let a = NuevoAcuerdo {
                texto: t.to_string(),
                responsables: vec![],
                fecha_compromiso: None,
                sesion_origen: None,
            };
            escuela::agregar_acuerdo(&mut doc, &ctx, &RecordId::from_random(i as u64 + 1), &a)
                .unwrap();
            heads.push(doc.get_heads());
        }
        (doc, heads)
    }

    /// A bundle of `doc` from the heads `desde`, as `exportar` writes it.
    fn paquete(doc: &mut AutoCommit, desde: &[ChangeHash]) -> Bundle {
        let info = info_escuela();
        let payload = doc.save_after(desde);
        Bundle {
            header: BundleHeader {
                version: VERSION,
                creado: 1,
                origen: CCT.into(),
                documentos: vec![BundleDoc {
                    id: info.id.to_string(),
                    tipo: info.kind,
                    owner: info.owner,
                    ciclo: info.ciclo,
                    desde: desde.iter().map(|h| h.to_string()).collect(),
                    heads: doc.get_heads().iter().map(|h| h.to_string()).collect(),
                    bytes: payload.len() as u64,
                }],
            },
            payloads: vec![payload],
        }
    }

    async fn importar_en(store: &Store, b: &Bundle) -> Result<Vec<Importado>, BundleError> {
        importar(store, b, 2, |_| true).await
    }

    #[tokio::test]
    async fn importar_rechaza_datos_ilegibles_con_suma_valida_sin_escribir_nada() {
        let (mut doc, _) = con_acuerdos(&["uno", "dos", "tres"]);
        let bueno = paquete(&mut doc, &[]);
        let mut truncado = bueno.clone();
        let n = truncado.payloads[0].len();
        truncado.payloads[0].truncate(n - n / 3);
        truncado.header.documentos[0].bytes = truncado.payloads[0].len() as u64;
        let mut volteado = bueno.clone();
        let n = volteado.payloads[0].len();
        volteado.payloads[0][n - 10] ^= 0x40;
        let mut cabecera_falsa = bueno.clone();
        cabecera_falsa.header.documentos[0].heads = vec![ChangeHash([7; 32]).to_string()];

        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).await.unwrap();
        for (nombre, b) in [
            ("truncado", truncado),
            ("volteado", volteado),
            ("cabecera falsa", cabecera_falsa),
        ] {
            let b = Bundle::decode(&b.encode()).expect("the envelope is intact");
            let err = importar_en(&store, &b).await.unwrap_err();
            assert!(matches!(err, BundleError::Damaged(_)), "{nombre}: {err}");
            assert!(
                err.to_string()
                    .starts_with("el paquete está incompleto o dañado"),
                "{nombre}: {err}"
            );
            assert!(store.documents().await.unwrap().is_empty(), "{nombre}");
        }
        let r = importar_en(&store, &bueno).await.unwrap();
        assert_eq!(r[0].cambios_nuevos, 3);
    }

    #[tokio::test]
    async fn importar_rechaza_cambios_que_esperan_un_paquete_anterior() {
        let (mut doc, heads) = con_acuerdos(&["uno", "dos"]);
        // Only the second acuerdo: it depends on the first.
        let segundo = paquete(&mut doc, &heads[0]);
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).await.unwrap();
        let err = importar_en(&store, &segundo).await.unwrap_err();
        assert!(matches!(err, BundleError::MissingDeps(_)), "{err}");
        assert!(
            err.to_string().contains(
                "depende de cambios que este equipo todavía no tiene; importe primero el paquete anterior"
            ),
            "{err}"
        );
        assert!(store.documents().await.unwrap().is_empty());

        // With the first one already imported, the second applies.
        let (mut primero_doc, _) = con_acuerdos(&["uno"]);
        importar_en(&store, &paquete(&mut primero_doc, &[]))
            .await
            .unwrap();
        let err = importar_en(&store, &segundo).await;
        assert_eq!(err.unwrap()[0].cambios_nuevos, 1);
        let mut cargado = store.load(&info_escuela().id).await.unwrap().unwrap();
        assert_eq!(cargado.get_heads(), doc.get_heads());
    }

    #[tokio::test]
    async fn importar_rechaza_un_cambio_con_el_que_automerge_entra_en_panico() {
        // Found by fuzz/ (target `bundle_import`): automerge 0.12 panics on this change instead
        // of returning an error; the import must refuse the bundle as damaged, not crash.
        let malo = crate::protocol::changes::tests::cambio_que_hace_entrar_en_panico_a_automerge();
        let mut b = paquete(&mut con_acuerdos(&[]).0, &[]);
        b.header.documentos[0].bytes = malo.len() as u64;
        b.payloads[0] = malo;
        let b = Bundle::decode(&b.encode()).expect("the envelope is intact");
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).await.unwrap();
        let err = importar_en(&store, &b).await.unwrap_err();
        assert!(matches!(err, BundleError::Damaged(_)), "{err}");
        assert!(store.documents().await.unwrap().is_empty());
    }

    fn sample() -> Bundle {
        Bundle {
            header: BundleHeader {
                version: VERSION,
                creado: 5,
                origen: "07DPR0123X".into(),
                documentos: vec![BundleDoc {
                    id: "x".into(),
                    tipo: DocKind::Escuela,
                    owner: "07DPR0123X".into(),
                    ciclo: "2025-2026".into(),
                    desde: vec![],
                    heads: vec![],
                    bytes: 3,
                }],
            },
            payloads: vec![vec![1, 2, 3]],
        }
    }

    #[test]
    fn roundtrip_and_every_truncation_is_refused() {
        let bytes = sample().encode();
        let back = Bundle::decode(&bytes).unwrap();
        assert_eq!(back.header, sample().header);
        assert_eq!(back.payloads, sample().payloads);
        for cut in 0..bytes.len() {
            assert!(Bundle::decode(&bytes[..cut]).is_err(), "truncated at {cut}");
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x40;
            assert!(Bundle::decode(&b).is_err(), "flipped byte {i}");
        }
    }
}
