//! Reading the changes inside a sync message before applying it, so a server can check who
//! authored them (actor binding) without touching its document.
//!
//! A sync message's `changes` are automerge storage chunks: single changes (V1), or in V2 a
//! concatenation of changes or a whole saved document. Each chunk starts with the 4 magic bytes,
//! a 4-byte checksum, a type byte (0 document, 1 change, 2 compressed change, 3 bundle) and the
//! body length as unsigned LEB128.

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
        match rest[8] {
            0 => {
                let doc = Automerge::load(chunk).map_err(|e| err(&e.to_string()))?;
                for c in doc.get_changes(&[]) {
                    out.push(Autoria {
                        actor: c.actor_id().clone(),
                        hash: c.hash(),
                    });
                }
            }
            1 | 2 => {
                let c = Change::try_from(chunk).map_err(|e| err(&e.to_string()))?;
                out.push(Autoria {
                    actor: c.actor_id().clone(),
                    hash: c.hash(),
                });
            }
            3 => {
                let b = Bundle::try_from(chunk).map_err(|e| err(&e.to_string()))?;
                for c in b.to_changes().map_err(|e| err(&e.to_string()))? {
                    out.push(Autoria {
                        actor: c.actor_id().clone(),
                        hash: c.hash(),
                    });
                }
            }
            t => return Err(err(&format!("unknown chunk type {t}"))),
        }
        pos += total;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
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
}
