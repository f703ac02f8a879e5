//! The history of a document from its changes: who (actor and the name registered for it) did
//! what (the change message) and when (the change time, supplied by the writer's clock).

use automerge::AutoCommit;
use serde::Serialize;

use super::escuela::leer_autores;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entrada {
    pub hash: String,
    pub actor: String,
    pub autor: Option<String>,
    /// Seconds since the Unix epoch, as recorded by the writing device (0 for the genesis).
    pub fecha: i64,
    pub mensaje: String,
    pub operaciones: usize,
}

/// Every change in causal order (oldest first).
pub fn historial(doc: &mut AutoCommit) -> Vec<Entrada> {
    let autores = leer_autores(doc);
    doc.get_changes(&[])
        .iter()
        .map(|c| {
            let actor = c.actor_id().to_hex_string();
            Entrada {
                hash: c.hash().to_string(),
                autor: autores.get(&actor).cloned(),
                actor,
                fecha: c.timestamp(),
                mensaje: c.message().unwrap_or("(sin descripción)").to_string(),
                operaciones: c.len(),
            }
        })
        .collect()
}
