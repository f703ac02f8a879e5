//! `bitacora-server`: the zone server.
pub mod auth;
pub mod config;
pub mod db;
