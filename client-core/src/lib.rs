//! `bitacora-core`: what every Bitácora replica needs, the server included.
//!
//! - [`ids`] and [`catalogo`]: domain newtypes parsed once at the edge, and the versioned
//!   catalogue of ámbitos.
//! - [`model`]: the typed school and zone documents over automerge; pure, no I/O.
//! - [`protocol`]: the automerge-repo wire codec and sync state machine; pure, no I/O.
//! - [`resumen`]: the school's own summary, computed from a read document.
//! - [`proyeccion`]: what the zone dashboard keeps of a school document (pure), and the CTE
//!   calendar.
//! - [`storage`]: the storage contract every replica implements ([`storage::Storage`]), and its
//!   in-memory implementation.
//! - [`store`]: the local store (SQLite through sqlx): snapshots plus change chunks, crash-safe.
//! - [`engine`]: the sync engine, the client side of network I/O (WebSocket to a server).
//! - [`sync_service`]: the serving side of sync over any [`storage::Storage`], so any replica
//!   can serve sync to others.
//! - [`bundle`]: the file format that carries changes on a USB stick.
//!
//! See docs/architecture.md for the code map and the invariants.

pub mod bundle;
pub mod catalogo;
#[cfg(feature = "network")]
pub mod engine;
pub mod error;
pub mod ids;
pub mod model;
pub mod protocol;
pub mod proyeccion;
pub mod resumen;
pub mod storage;
#[cfg(feature = "sqlite")]
pub mod store;
#[cfg(feature = "network")]
pub mod sync_service;

pub use automerge;
pub use error::ModelError;
