//! Layered configuration: defaults, then a TOML file (`--config` or `BITACORA_CONFIG`), then
//! `BITACORA_…` environment variables (nested keys with `__`, e.g. `BITACORA_JWT__SECRET`).
//! Secrets are [`Secret`]s: their `Debug` and `Display` never show the value.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// A value that must never be printed.
#[derive(Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Config {
    /// Address of the HTTP and WebSocket listener.
    pub listen: SocketAddr,
    /// Where the SQLite database and generated keys live.
    pub data_dir: PathBuf,
    /// `postgres://…` for PostgreSQL; unset means SQLite in `data_dir`. May hold a password.
    pub database_url: Option<Secret>,
    pub jwt: JwtConfig,
    pub limits: Limits,
    /// Interval of WebSocket pings, seconds.
    pub ping_interval_secs: u64,
    /// A socket silent (no frame, no pong) for this long is closed, seconds.
    pub idle_timeout_secs: u64,
    /// Memory budget of the document cache, bytes (estimated; idle documents are evicted).
    pub cache_budget_bytes: u64,
    /// Emit logs as JSON lines.
    pub log_json: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct JwtConfig {
    /// `HS256`, `EdDSA` or `RS256`. Tokens with any other algorithm are refused.
    pub algorithm: String,
    /// HS256 shared secret. Unset: generated on first run into `data_dir/jwt-secret`.
    pub secret: Option<Secret>,
    /// EdDSA/RS256: PEM file of the public key that verifies tokens.
    pub public_key_file: Option<PathBuf>,
    /// EdDSA/RS256: PEM file of the private key `admin token emitir` signs with.
    pub private_key_file: Option<PathBuf>,
    pub issuer: String,
    pub audience: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Limits {
    /// Largest protocol message accepted, bytes; larger ones get `error` and a closed socket.
    pub max_message_bytes: usize,
    /// Largest HTTP request body, bytes.
    pub max_body_bytes: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: "127.0.0.1:8787".parse().expect("literal"),
            data_dir: PathBuf::from("bitacora-datos"),
            database_url: None,
            jwt: JwtConfig {
                algorithm: "HS256".into(),
                secret: None,
                public_key_file: None,
                private_key_file: None,
                issuer: "bitacora".into(),
                audience: "bitacora-sync".into(),
            },
            limits: Limits {
                max_message_bytes: 16 * 1024 * 1024,
                max_body_bytes: 1024 * 1024,
            },
            ping_interval_secs: 20,
            idle_timeout_secs: 90,
            cache_budget_bytes: 256 * 1024 * 1024,
            log_json: false,
        }
    }
}

impl Config {
    /// Defaults, then the TOML file if given, then the environment.
    pub fn load(file: Option<&Path>) -> Result<Config, Box<figment::Error>> {
        Self::figment(file).extract().map_err(Box::new)
    }

    pub fn figment(file: Option<&Path>) -> Figment {
        let mut f = Figment::from(Serialized::defaults(Config::default()));
        if let Some(p) = file {
            f = f.merge(Toml::file_exact(p));
        }
        f.merge(Env::prefixed("BITACORA_").split("__").ignore(&[
            "config",
            "test_database_url",
            "data_dir_cli",
        ]))
    }

    /// The database URL to use: the configured one, or the SQLite file in the data directory.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(u) => u.expose().to_string(),
            None => format!("sqlite://{}", self.data_dir.join("servidor.db").display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let mut c = Config::default();
        c.jwt.secret = Some(Secret::new("super-secreto"));
        c.database_url = Some(Secret::new("postgres://u:clave@h/db"));
        let dbg = format!("{c:?}");
        assert!(
            !dbg.contains("super-secreto") && !dbg.contains("clave"),
            "{dbg}"
        );
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's closure signature
    fn layers_file_then_env() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "b.toml",
                "listen = \"127.0.0.1:9000\"\n[limits]\nmax_message_bytes = 1000\n",
            )?;
            jail.set_env("BITACORA_LIMITS__MAX_MESSAGE_BYTES", "2000");
            let c = Config::load(Some(Path::new("b.toml"))).map_err(|e| *e)?;
            assert_eq!(c.listen.port(), 9000);
            assert_eq!(c.limits.max_message_bytes, 2000);
            assert_eq!(c.jwt.algorithm, "HS256");
            Ok(())
        });
    }
}
