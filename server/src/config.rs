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
    /// How often the projector looks for school documents whose dashboard projection is behind
    /// their stored changes (and catches them up), seconds; at least 1.
    pub projection_sweep_secs: u64,
    /// Emit logs as JSON lines.
    pub log_json: bool,
    /// Address of the Prometheus listener (`GET /metrics`), apart from `listen` so the public
    /// port never exposes metrics. Unset (the default), `""` or `"off"`: no metrics listener.
    #[serde(default, with = "direccion_opcional")]
    pub metrics_listen: Option<SocketAddr>,
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
    /// HS256: secrets of a key rotation in progress, still accepted to verify tokens (never to
    /// sign). Empty once every device has a token signed with `secret`.
    #[serde(default)]
    pub previous_secrets: Vec<Secret>,
    /// EdDSA/RS256: public keys (PEM files) of a rotation in progress, still accepted to verify.
    #[serde(default)]
    pub previous_public_key_files: Vec<PathBuf>,
}

/// What one client may ask of the server (docs/security.md#limits). For the counts and rates, 0
/// means "no limit".
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Limits {
    /// Largest protocol message accepted, bytes; larger ones get `error` and a closed socket.
    pub max_message_bytes: usize,
    /// Largest HTTP request body, bytes.
    pub max_body_bytes: usize,
    /// Protocol messages one connection may send per second, sustained; past it (and the
    /// burst), `error` and a closed socket.
    pub messages_per_sec: u32,
    /// Protocol messages one connection may send at once, above the sustained rate.
    pub message_burst: u32,
    /// Protocol messages and HTTP requests one token (JWT `jti`) may make per second, summed
    /// over all its connections and requests in this process; past it (and the burst), `error`
    /// and a closed socket, or HTTP 429.
    pub token_requests_per_sec: u32,
    /// What one token may make at once, above its sustained rate.
    pub token_burst: u32,
    /// Distinct documents one connection may name (join, sync, request); the next one gets
    /// `error` and a closed socket.
    pub max_docs_per_peer: usize,
    /// WebSocket connections open at once with one token; the next upgrade gets HTTP 429.
    pub max_connections_per_token: usize,
    /// A client must send a whole HTTP request head (the WebSocket upgrade included) within this
    /// many seconds of connecting or of its previous response, or the connection is closed.
    pub http_header_timeout_secs: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_message_bytes: 16 * 1024 * 1024,
            max_body_bytes: 1024 * 1024,
            messages_per_sec: 50,
            message_burst: 500,
            token_requests_per_sec: 100,
            token_burst: 1000,
            max_docs_per_peer: 256,
            max_connections_per_token: 16,
            http_header_timeout_secs: 30,
        }
    }
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
                previous_secrets: Vec::new(),
                previous_public_key_files: Vec::new(),
            },
            limits: Limits::default(),
            ping_interval_secs: 20,
            idle_timeout_secs: 90,
            cache_budget_bytes: 256 * 1024 * 1024,
            projection_sweep_secs: 30,
            log_json: false,
            metrics_listen: None,
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

/// `metrics_listen`: an address, or unset, `""`, `"off"` or `false` for none (a TOML file
/// cannot write `null`, and an environment variable must be able to turn a file's value off).
mod direccion_opcional {
    use std::net::SocketAddr;

    use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

    pub fn serialize<S: Serializer>(v: &Option<SocketAddr>, s: S) -> Result<S::Ok, S::Error> {
        v.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Valor {
            Texto(String),
            Bandera(bool),
        }
        match Option::<Valor>::deserialize(d)? {
            None | Some(Valor::Bandera(false)) => Ok(None),
            Some(Valor::Bandera(true)) => Err(de::Error::custom(
                "metrics_listen: an address such as 127.0.0.1:9187, or \"off\"",
            )),
            Some(Valor::Texto(t)) => match t.trim() {
                "" | "off" => Ok(None),
                a => a.parse().map(Some).map_err(|e| {
                    de::Error::custom(format!("metrics_listen: `{a}` is not an address: {e}"))
                }),
            },
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

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's closure signature
    fn every_limit_from_file_or_env() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "b.toml",
                "[limits]\nmessages_per_sec = 7\nmax_docs_per_peer = 9\n",
            )?;
            jail.set_env("BITACORA_LIMITS__MESSAGE_BURST", "70");
            jail.set_env("BITACORA_LIMITS__TOKEN_REQUESTS_PER_SEC", "11");
            jail.set_env("BITACORA_LIMITS__TOKEN_BURST", "110");
            jail.set_env("BITACORA_LIMITS__MAX_CONNECTIONS_PER_TOKEN", "3");
            jail.set_env("BITACORA_LIMITS__HTTP_HEADER_TIMEOUT_SECS", "5");
            jail.set_env("BITACORA_LIMITS__MAX_DOCS_PER_PEER", "12");
            let c = Config::load(Some(Path::new("b.toml"))).map_err(|e| *e)?;
            let l = c.limits;
            assert_eq!(
                (l.messages_per_sec, l.message_burst),
                (7, 70),
                "file, then environment"
            );
            assert_eq!((l.token_requests_per_sec, l.token_burst), (11, 110));
            assert_eq!(
                l.max_docs_per_peer, 12,
                "the environment wins over the file"
            );
            assert_eq!(l.max_connections_per_token, 3);
            assert_eq!(l.http_header_timeout_secs, 5);
            assert_eq!(l.max_message_bytes, Limits::default().max_message_bytes);
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's closure signature
    fn metrics_listen_is_off_unless_given() {
        figment::Jail::expect_with(|jail| {
            assert_eq!(Config::load(None).map_err(|e| *e)?.metrics_listen, None);
            jail.create_file("m.toml", "metrics_listen = \"127.0.0.1:9187\"\n")?;
            let c = Config::load(Some(Path::new("m.toml"))).map_err(|e| *e)?;
            assert_eq!(c.metrics_listen, Some("127.0.0.1:9187".parse().unwrap()));
            for off in ["off", "", "false"] {
                jail.set_env("BITACORA_METRICS_LISTEN", off);
                let c = Config::load(Some(Path::new("m.toml"))).map_err(|e| *e)?;
                assert_eq!(c.metrics_listen, None, "{off:?} turns the file's value off");
            }
            jail.set_env("BITACORA_METRICS_LISTEN", "0.0.0.0:9100");
            let c = Config::load(None).map_err(|e| *e)?;
            assert_eq!(c.metrics_listen, Some("0.0.0.0:9100".parse().unwrap()));
            jail.set_env("BITACORA_METRICS_LISTEN", "9187");
            assert!(
                Config::load(None).is_err(),
                "a port alone is not an address"
            );
            Ok(())
        });
    }
}
