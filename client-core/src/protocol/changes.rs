//! Reading the changes inside a sync message before applying it, so a server can check who
//! authored them (actor binding) without touching its document.
//!
//! A sync message's `changes` are automerge storage chunks: single changes (V1), or in V2 a
//! concatenation of changes or a whole saved document. Each chunk starts with the 4 magic bytes,
//! a 4-byte checksum, a type byte (0 document, 1 change, 2 compressed change, 3 bundle) and the
//! body length as unsigned LEB128.
//!
//! automerge 0.12 still panics on some malformed chunks instead of returning an error (an op
//! counter that does not fit in 32 bits: `OpId::new` unwraps the conversion; found by fuzzing,
//! docs/fuzzing.md), so every parse of bytes from outside runs under [`sin_panico`].

use automerge::{ActorId, Automerge, Bundle, Change, ChangeHash};
use thiserror::Error;

const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];

#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("undecodable changes at byte {offset}: {reason}")]
pub struct ChangesError {
    pub offset: usize,
    pub reason: String,
}

/// One change found in a payload: who wrote it and its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Autoria {
    pub actor: ActorId,
    pub hash: ChangeHash,
}

fn uleb(data: &[u8]) -> Option<(u64, usize)> {
    let mut v: u64 = 0;
    for (i, b) in data.iter().enumerate().take(10) {
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

/// Runs automerge on bytes that came from outside (a peer's sync message, a bundle), turning a
/// panic inside it into an error, so a malformed chunk can neither crash the CLI nor fail a
/// server task. Whatever `f` was modifying is in an unknown state on `Err`: discard it.
pub fn sin_panico<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|p| {
        let motivo = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        format!("automerge failed on malformed input: {motivo}")
    })
}

/// Every change contained in `data` (one or more concatenated storage chunks).
pub fn autorias(data: &[u8]) -> Result<Vec<Autoria>, ChangesError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let err = |reason: &str| ChangesError {
            offset: pos,
            reason: reason.to_string(),
        };
        let rest = &data[pos..];
        if rest.len() < 10 || rest[..4] != MAGIC {
            return Err(err("not an automerge chunk"));
        }
        let (len, n) = uleb(&rest[9..]).ok_or_else(|| err("bad length"))?;
        let total = usize::try_from(len)
            .ok()
            .and_then(|l| l.checked_add(9 + n))
            .filter(|t| *t <= rest.len())
            .ok_or_else(|| err("truncated chunk"))?;
        let chunk = &rest[..total];
        let found = sin_panico(|| de_un_chunk(rest[8], chunk))
            .map_err(|m| err(&m))?
            .map_err(|m| err(&m))?;
        out.extend(found);
        pos += total;
    }
    Ok(out)
}

/// The changes of one chunk of type `tipo`.
fn de_un_chunk(tipo: u8, chunk: &[u8]) -> Result<Vec<Autoria>, String> {
    let autoria = |c: &Change| Autoria {
        actor: c.actor_id().clone(),
        hash: c.hash(),
    };
    Ok(match tipo {
        0 => Automerge::load(chunk)
            .map_err(|e| e.to_string())?
            .get_changes(&[])
            .iter()
            .map(autoria)
            .collect(),
        1 | 2 => vec![autoria(
            &Change::try_from(chunk).map_err(|e| e.to_string())?,
        )],
        3 => Bundle::try_from(chunk)
            .map_err(|e| e.to_string())?
            .to_changes()
            .map_err(|e| e.to_string())?
            .iter()
            .map(autoria)
            .collect(),
        t => return Err(format!("unknown chunk type {t}")),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use automerge::transaction::Transactable;
    use automerge::{AutoCommit, ROOT};

    #[test]
    fn finds_authors_in_changes_and_documents() {
        let a = ActorId::from([1u8; 16]);
        let b = ActorId::from([2u8; 16]);
        let mut doc = AutoCommit::new().with_actor(a.clone());
        doc.put(ROOT, "x", 1).unwrap();
        doc.commit();
        let mut other = doc.fork().with_actor(b.clone());
        other.put(ROOT, "y", 2).unwrap();
        other.commit();
        let heads = doc.get_heads();
        // A change chunk sequence.
        let chunks = other.save_after(&heads);
        let found = autorias(&chunks).unwrap();
        assert_eq!(
            found.iter().map(|x| x.actor.clone()).collect::<Vec<_>>(),
            vec![b.clone()]
        );
        // A whole document.
        let whole = other.save();
        let mut actors: Vec<_> = autorias(&whole)
            .unwrap()
            .into_iter()
            .map(|x| x.actor)
            .collect();
        actors.sort();
        assert_eq!(actors, vec![a, b]);
        // Junk and truncation are errors, not panics.
        assert!(autorias(b"hola").is_err());
        assert!(autorias(&whole[..whole.len() - 3]).is_err());
    }

    /// A school's genesis change whose object-counter column was rewritten with negative
    /// deltas, so the counters decode past 32 bits (found by fuzz/, target `bundle_import`).
    pub(crate) fn cambio_que_hace_entrar_en_panico_a_automerge() -> Vec<u8> {
        use crate::ids::{Cct, CicloEscolar};
        let cct = Cct::parse("07DPR0001A").unwrap();
        let ciclo = CicloEscolar::parse("2025-2026").unwrap();
        let mut g = crate::model::escuela::genesis_escuela(&cct, ciclo).unwrap();
        let mut bytes = g.get_changes(&[])[0].raw_bytes().to_vec();
        assert_eq!(
            bytes[69..77],
            [0x07, 0x08, 0x09, 0x08, 0x0b, 0x08, 0x0d, 0x08]
        );
        bytes[69..77].copy_from_slice(&[0xf9, 0xf7, 0xf6, 0xf7, 0xf4, 0xf7, 0xf2, 0xf0]);
        bytes
    }

    #[test]
    fn a_chunk_automerge_panics_on_is_an_error() {
        let bytes = cambio_que_hace_entrar_en_panico_a_automerge();
        let e = autorias(&bytes).unwrap_err();
        assert_eq!(e.offset, 0);
        // The same chunk after a good one: the offset points at it.
        let mut doc = AutoCommit::new();
        doc.put(ROOT, "x", 1).unwrap();
        let mut two = doc.save_after(&[]);
        let n = two.len();
        two.extend_from_slice(&bytes);
        assert_eq!(autorias(&two).unwrap_err().offset, n);
    }
}
