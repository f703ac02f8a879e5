//! `bitacora-server`: `serve` runs the zone server; `admin …` manages zones, schools, users and
//! tokens on the same database; `demo` serves a generated zone to look at. Errors are printed
//! once; exit code 2 for bad input, 1 otherwise.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use bitacora_core::ids::CicloEscolar;
use bitacora_server::admin::{self, AdminError};
use bitacora_server::auth::Keys;
use bitacora_server::config::{Config, Secret};
use bitacora_server::demo;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "bitacora-server",
    version,
    about = "Servidor de zona de Bitácora"
)]
struct Cli {
    /// Archivo de configuración TOML (también BITACORA_CONFIG).
    #[arg(long, global = true, env = "BITACORA_CONFIG")]
    config: Option<PathBuf>,
    /// Directorio de datos (base SQLite y claves generadas).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// postgres://… para usar PostgreSQL en lugar de SQLite.
    #[arg(long, global = true)]
    database_url: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Inicia el servidor.
    Serve {
        /// Dirección de escucha, p. ej. 127.0.0.1:8787 (0 elige un puerto libre).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Administración: zonas, escuelas, usuarios, tokens.
    #[command(subcommand)]
    Admin(Admin),
    /// Sonda de salud (para HEALTHCHECK de contenedores): sale con 0 si GET /readyz del
    /// servidor responde 200, con 1 si no.
    Salud {
        /// URL a consultar (por omisión http://127.0.0.1:<puerto de listen>/readyz).
        #[arg(long)]
        url: Option<String>,
    },
    /// Genera una zona de demostración (24 escuelas con un ciclo de trabajo, todo por
    /// sincronización real) en ./bitacora-demo y la sirve; si ya existe, solo la sirve.
    Demo {
        /// Dirección de escucha (por omisión 127.0.0.1:8787; el puerto 0 elige uno libre).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Semilla de los datos generados: la misma semilla da la misma zona.
        #[arg(long)]
        semilla: Option<String>,
        /// Fecha de referencia (AAAA-MM-DD): la demo se genera y se sirve como si hoy fuera
        /// ese día (por omisión, hoy).
        #[arg(long)]
        hoy: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum Admin {
    #[command(subcommand)]
    Zona(ZonaCmd),
    #[command(subcommand)]
    Escuela(EscuelaCmd),
    #[command(subcommand)]
    Usuario(UsuarioCmd),
    #[command(subcommand)]
    Token(TokenCmd),
    /// Paquetes de cambios traídos en memoria USB.
    #[command(subcommand)]
    Bundle(BundleCmd),
    /// Respaldo consistente de la base SQLite (VACUUM INTO), aun con el servidor en marcha.
    /// Con PostgreSQL use pg_dump (docs/operations.md).
    Respaldo {
        /// Archivo nuevo donde escribir el respaldo.
        #[arg(long)]
        salida: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum BundleCmd {
    /// Aplica el paquete de una escuela (aplicarlo dos veces no cambia nada).
    Importar { archivo: PathBuf },
    /// Escribe el paquete de regreso: lo que a la escuela le falta desde su último paquete.
    Exportar {
        #[arg(long)]
        cct: String,
        #[arg(long)]
        salida: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum ZonaCmd {
    Add {
        #[arg(long)]
        clave: String,
        #[arg(long)]
        nombre: String,
        /// Ciclo escolar del documento de la zona (por omisión, el actual).
        #[arg(long)]
        ciclo: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum EscuelaCmd {
    Add {
        #[arg(long)]
        cct: String,
        #[arg(long)]
        nombre: String,
        #[arg(long)]
        zona: String,
        #[arg(long)]
        ciclo: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum UsuarioCmd {
    Add {
        #[arg(long)]
        id: String,
        #[arg(long)]
        nombre: String,
        /// docente, director, supervisor, atp o admin.
        #[arg(long)]
        rol: String,
        #[arg(long)]
        cct: Option<String>,
        #[arg(long)]
        zona: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCmd {
    /// Emite un token (JWT) e imprime solo el token en la salida estándar.
    Emitir {
        #[arg(long)]
        usuario: String,
        /// Vigencia en días.
        #[arg(long, default_value_t = 365)]
        dias: i64,
    },
    /// Revoca un token por su id (jti); aplica en la siguiente conexión.
    Revocar {
        #[arg(long)]
        jti: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Automerge work runs on the blocking pool and is CPU-bound: threads past the cores only
    // queue. With tokio's default (512), 210 devices syncing at once grew the pool to ~50 threads,
    // each with its own malloc arena: about 45 MiB more peak memory (docs/performance.md).
    let bloqueantes = std::thread::available_parallelism().map_or(8, |n| (2 * n.get()).max(8));
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(bloqueantes)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: no se pudo iniciar el runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            let bad_input = e.chain().any(|c| {
                c.downcast_ref::<AdminError>()
                    .is_some_and(AdminError::is_bad_input)
            });
            ExitCode::from(if bad_input { 2 } else { 1 })
        }
    }
}

fn config(cli: &Cli) -> Result<Config> {
    let mut c = Config::load(cli.config.as_deref())
        .map_err(|e| anyhow::anyhow!("configuración inválida: {e}"))?;
    if let Some(d) = &cli.data_dir {
        c.data_dir = d.clone();
    }
    if let Some(u) = &cli.database_url {
        c.database_url = Some(Secret::new(u.clone()));
    }
    Ok(c)
}

fn init_tracing(json: bool, nivel: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BITACORA_LOG")
        .unwrap_or_else(|_| nivel.into());
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        b.json().init();
    } else {
        b.init();
    }
}

fn ciclo(c: Option<&str>) -> Result<CicloEscolar> {
    Ok(match c {
        Some(c) => CicloEscolar::parse(c).map_err(AdminError::from)?,
        None => admin::ciclo_actual(),
    })
}

async fn run(cli: Cli) -> Result<()> {
    let mut cfg = config(&cli)?;
    match cli.cmd {
        Cmd::Serve { listen } => {
            init_tracing(cfg.log_json, "info");
            if let Some(l) = listen {
                cfg.listen = l;
            }
            let listener = tokio::net::TcpListener::bind(cfg.listen)
                .await
                .with_context(|| format!("no se pudo escuchar en {}", cfg.listen))?;
            // The real address (with port 0 resolved) on stdout, for scripts and tests.
            println!("escuchando en http://{}", listener.local_addr()?);
            // Metrics on their own listener (never the public one), when configured.
            let metricas = match cfg.metrics_listen {
                Some(a) => {
                    let l = tokio::net::TcpListener::bind(a)
                        .await
                        .with_context(|| format!("no se pudo escuchar en {a} (metrics_listen)"))?;
                    println!("métricas en http://{}/metrics", l.local_addr()?);
                    Some(l)
                }
                None => None,
            };
            let db = bitacora_server::open_database(&cfg).await?;
            let reloj = bitacora_server::Reloj::default();
            bitacora_server::run_with_metrics(listener, metricas, cfg, db, reloj, shutdown_signal())
                .await
        }
        Cmd::Salud { url } => {
            let url =
                url.unwrap_or_else(|| format!("http://127.0.0.1:{}/readyz", cfg.listen.port()));
            sonda(&url)
                .await
                .with_context(|| format!("{url} no está listo"))
        }
        Cmd::Admin(a) => {
            let db = bitacora_server::open_database(&cfg).await?;
            let r = admin_cmd(&cfg, &db, a).await;
            db.close().await;
            r
        }
        Cmd::Demo {
            listen,
            semilla,
            hoy,
        } => {
            let semilla = demo::semilla(semilla.as_deref())?;
            let hoy = demo::hoy(hoy.as_deref())?;
            if cli.database_url.is_some() {
                return Err(AdminError::Invalid(
                    "la demo usa su propia base SQLite en --data-dir; quite --database-url".into(),
                )
                .into());
            }
            // Only the demo's own directory: never a data directory configured for a real server.
            cfg.data_dir = cli
                .data_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(demo::DATA_DIR));
            cfg.database_url = None;
            cfg.listen = match listen {
                Some(l) => l,
                None => demo::LISTEN.parse().context("demo::LISTEN")?,
            };
            init_tracing(cfg.log_json, "warn");
            demo::run(cfg, semilla, hoy, shutdown_signal()).await
        }
    }
}

async fn admin_cmd(cfg: &Config, db: &bitacora_server::db::Database, a: Admin) -> Result<()> {
    match a {
        Admin::Zona(ZonaCmd::Add {
            clave,
            nombre,
            ciclo: c,
        }) => {
            let info = admin::zona_add(db, &clave, &nombre, ciclo(c.as_deref())?).await?;
            println!(
                "Zona {} registrada; documento {} ({})",
                info.owner,
                info.id.url(),
                info.ciclo
            );
        }
        Admin::Escuela(EscuelaCmd::Add {
            cct,
            nombre,
            zona,
            ciclo: c,
        }) => {
            let info = admin::escuela_add(db, &cct, &nombre, &zona, ciclo(c.as_deref())?).await?;
            println!(
                "Escuela {} registrada; documento {} ({})",
                info.owner,
                info.id.url(),
                info.ciclo
            );
        }
        Admin::Usuario(UsuarioCmd::Add {
            id,
            nombre,
            rol,
            cct,
            zona,
        }) => {
            let u =
                admin::usuario_add(db, &id, &nombre, &rol, cct.as_deref(), zona.as_deref()).await?;
            println!("Usuario {} ({}) registrado.", u.id, u.rol);
        }
        Admin::Token(TokenCmd::Emitir { usuario, dias }) => {
            let keys = Keys::from_config(&cfg.jwt, &cfg.data_dir)?;
            let (token, claims) = admin::token_emitir(db, &keys, &usuario, dias).await?;
            eprintln!(
                "token {} para {} ({}), vence en {dias} días",
                claims.jti,
                claims.sub,
                claims.rol.as_str()
            );
            println!("{token}");
        }
        Admin::Bundle(BundleCmd::Importar { archivo }) => {
            let bytes = std::fs::read(&archivo).map_err(|e| {
                AdminError::Invalid(format!("no se pudo leer {}: {e}", archivo.display()))
            })?;
            for d in bitacora_server::bundles::importar(db, &bytes).await? {
                println!(
                    "{} ({}): {} cambio(s) nuevo(s), {} equipo(s) registrados",
                    d.owner, d.documento, d.cambios_nuevos, d.actores_registrados
                );
            }
        }
        Admin::Bundle(BundleCmd::Exportar { cct, salida }) => {
            let b = bitacora_server::bundles::exportar(db, &cct).await?;
            let bytes = b.encode();
            let tmp = salida.with_extension("tmp");
            std::fs::write(&tmp, &bytes)
                .and_then(|_| std::fs::rename(&tmp, &salida))
                .with_context(|| format!("escribiendo {}", salida.display()))?;
            println!(
                "Paquete para {cct} escrito en {} ({} documento(s), {} bytes).",
                salida.display(),
                b.header.documentos.len(),
                bytes.len()
            );
        }
        Admin::Respaldo { salida } => {
            let bytes = admin::respaldo(db, &salida).await?;
            println!("Respaldo escrito en {} ({bytes} bytes).", salida.display());
        }
        Admin::Token(TokenCmd::Revocar { jti }) => {
            admin::token_revocar(db, &jti).await?;
            println!("Token {jti} revocado.");
        }
    }
    Ok(())
}

/// `GET url` over plain HTTP/1.0 (a container's healthcheck has no curl): `Ok` on status 200.
async fn sonda(url: &str) -> Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let resto = url.strip_prefix("http://").context("solo URLs http://")?;
    let (host, ruta) = match resto.find('/') {
        Some(i) => (&resto[..i], &resto[i..]),
        None => (resto, "/"),
    };
    let pedir = async {
        let mut s = tokio::net::TcpStream::connect(host).await?;
        s.write_all(format!("GET {ruta} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
            .await?;
        let mut r = Vec::new();
        s.read_to_end(&mut r).await?;
        std::io::Result::Ok(r)
    };
    let r = tokio::time::timeout(std::time::Duration::from_secs(5), pedir)
        .await
        .context("sin respuesta en 5 s")??;
    let linea = String::from_utf8_lossy(&r);
    let estado = linea.lines().next().unwrap_or_default();
    anyhow::ensure!(
        estado.split_whitespace().nth(1) == Some("200"),
        "respondió «{estado}»"
    );
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
