//! A real zone server for tests: in-process on 127.0.0.1 port 0 over a fresh SQLite (or the
//! PostgreSQL of `BITACORA_TEST_DATABASE_URL` in a fresh schema); dropping it shuts it down.
//! [`ServerInstall`] runs the real `bitacora-server` binary instead, as a child process that a
//! test can kill with SIGKILL.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::str::FromStr;

use anyhow::{Context, Result, bail, ensure};
use bitacora_core::ids::CicloEscolar;
use bitacora_core::store::DocInfo;
use bitacora_server::admin;
use bitacora_server::auth::Keys;
use bitacora_server::config::{Config, Secret};
use bitacora_server::db::Database;
use sqlx::postgres::PgConnectOptions;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdout};
use tokio::sync::oneshot;

pub const SECRETO: &str = "secreto-de-pruebas-de-bitacora-de-32-bytes-o-mas";
pub const CICLO: &str = "2025-2026";

pub struct TestServer {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    pub db: Database,
    pub keys: Keys,
    pub config: Config,
    pub dir: tempfile::TempDir,
    /// How [`TestServer::restart`] reconnects to PostgreSQL (`None`: SQLite in `config`).
    pg: Option<PgConnectOptions>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

type Running = (
    String,
    oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
);

/// Serves `db` on a new listener on 127.0.0.1 port 0.
async fn serve(config: &Config, db: &Database) -> Result<Running> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let (stop, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(bitacora_server::run_with_db(
        listener,
        config.clone(),
        db.clone(),
        async move {
            let _ = rx.await;
        },
    ));
    Ok((url, stop, task))
}

pub fn test_config(dir: PathBuf) -> Config {
    let mut c = Config {
        listen: "127.0.0.1:0".parse().expect("literal"),
        data_dir: dir,
        ..Default::default()
    };
    c.jwt.secret = Some(Secret::new(SECRETO));
    c
}

impl TestServer {
    /// A server on SQLite in a temporary directory.
    pub async fn start() -> Result<TestServer> {
        let dir = tempfile::tempdir()?;
        let config = test_config(dir.path().to_path_buf());
        let db = Database::connect(&config.database_url()).await?;
        Self::start_on(dir, config, db).await
    }

    pub async fn start_on(
        dir: tempfile::TempDir,
        config: Config,
        db: Database,
    ) -> Result<TestServer> {
        let keys = Keys::from_config(&config.jwt, &config.data_dir)?;
        let (url, stop, task) = serve(&config, &db).await?;
        Ok(TestServer {
            url,
            db,
            keys,
            config,
            dir,
            pg: None,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// Stops the server as [`TestServer::stop`] does, then starts a new one on the same data
    /// directory and database, on a new port ([`TestServer::url`] and [`TestServer::db`]
    /// change).
    pub async fn restart(&mut self) -> Result<()> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await??;
        }
        let db = match &self.pg {
            Some(opts) => {
                let db = Database::connect_pg(opts.clone()).await?;
                db.migrate().await?;
                db
            }
            None => Database::connect(&self.config.database_url()).await?,
        };
        let (url, stop, task) = serve(&self.config, &db).await?;
        self.url = url;
        self.db = db;
        self.stop = Some(stop);
        self.task = Some(task);
        Ok(())
    }

    pub fn ciclo() -> CicloEscolar {
        CicloEscolar::parse(CICLO).expect("literal")
    }

    pub async fn zona(&self, clave: &str) -> Result<DocInfo> {
        Ok(admin::zona_add(&self.db, clave, &format!("Zona {clave}"), Self::ciclo()).await?)
    }

    pub async fn escuela(&self, cct: &str, zona: &str) -> Result<DocInfo> {
        Ok(admin::escuela_add(
            &self.db,
            cct,
            &format!("Escuela {cct}"),
            zona,
            Self::ciclo(),
        )
        .await?)
    }

    /// Adds a user and returns a fresh token for it.
    pub async fn usuario(
        &self,
        id: &str,
        rol: &str,
        cct: Option<&str>,
        zona: Option<&str>,
    ) -> Result<String> {
        admin::usuario_add(&self.db, id, id, rol, cct, zona).await?;
        self.token(id).await
    }

    pub async fn token(&self, usuario: &str) -> Result<String> {
        Ok(admin::token_emitir(&self.db, &self.keys, usuario, 30)
            .await?
            .0)
    }

    /// Enrols an actor id (hex) to a user, as `POST /v1/actores` does.
    pub async fn enrolar(&self, actor: &str, usuario: &str) -> Result<()> {
        self.db.enrol_actor(actor, usuario).await?;
        Ok(())
    }

    /// A server on the PostgreSQL schema `schema` (see [`PgSchema`]).
    pub async fn start_postgres(schema: &PgSchema) -> Result<TestServer> {
        let dir = tempfile::tempdir()?;
        let config = test_config(dir.path().to_path_buf());
        let db = schema.database().await?;
        let mut srv = Self::start_on(dir, config, db).await?;
        srv.pg = Some(schema.connect_options()?);
        Ok(srv)
    }

    /// The interop scene: a zone with schools A (`07DPR0001A`) and B (`07DPR0002B`), A's
    /// document, and tokens for two people of A (docente `ana`, director `alma`) and one of B
    /// (docente `beto`).
    pub async fn escena_interop(&self) -> Result<(DocInfo, [String; 3])> {
        self.zona("07FIZ0014").await?;
        let doc_a = self.escuela("07DPR0001A", "07FIZ0014").await?;
        self.escuela("07DPR0002B", "07FIZ0014").await?;
        let a1 = self
            .usuario("ana", "docente", Some("07DPR0001A"), None)
            .await?;
        let a2 = self
            .usuario("alma", "director", Some("07DPR0001A"), None)
            .await?;
        let b = self
            .usuario("beto", "docente", Some("07DPR0002B"), None)
            .await?;
        Ok((doc_a, [a1, a2, b]))
    }

    /// Stops the server and waits for it to finish its connections.
    pub async fn stop(mut self) -> Result<()> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await??;
        }
        Ok(())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// The variable naming the PostgreSQL database the `*_postgres` stories run against.
pub const PG_URL_VAR: &str = "BITACORA_TEST_DATABASE_URL";

/// A fresh schema in the PostgreSQL database of [`PG_URL_VAR`], for one test. Stop every server
/// and close every [`Database`] using it, then [`PgSchema::drop_schema`].
pub struct PgSchema {
    pub name: String,
    url: String,
    admin: sqlx::PgPool,
}

impl PgSchema {
    /// Creates a schema `<prefix>_<random>`; `None`, after a loud notice on stderr naming
    /// `test`, when [`PG_URL_VAR`] is unset.
    pub async fn from_env(test: &str, prefix: &str) -> Result<Option<PgSchema>> {
        let Ok(url) = std::env::var(PG_URL_VAR) else {
            // Straight to stderr, not `eprintln!`, so the test harness does not swallow it.
            let aviso = format!(
                "\n{borde}\n* {test} SKIPPED: {PG_URL_VAR} is unset.\n\
                 * e.g. {PG_URL_VAR}=postgres://postgres@127.0.0.1:5432/test\n\
                 * The PostgreSQL back-end was NOT tested.\n{borde}\n\n",
                borde = "*".repeat(72)
            );
            let _ = std::io::Write::write_all(&mut std::io::stderr(), aviso.as_bytes());
            return Ok(None);
        };
        Ok(Some(PgSchema::create(&url, prefix).await?))
    }

    pub async fn create(url: &str, prefix: &str) -> Result<PgSchema> {
        let name = format!("{prefix}_{:016x}", rand::random::<u64>());
        let admin = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(url)
            .await
            .with_context(|| format!("connect to {PG_URL_VAR}"))?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
            .execute(&admin)
            .await
            .context("create the test schema")?;
        Ok(PgSchema {
            name,
            url: url.to_string(),
            admin,
        })
    }

    /// Connection options that use only this schema.
    pub fn connect_options(&self) -> Result<PgConnectOptions> {
        Ok(PgConnectOptions::from_str(&self.url)
            .with_context(|| format!("parse {PG_URL_VAR}"))?
            .options([("search_path", self.name.as_str())]))
    }

    /// A `postgres://` URL whose connections use only this schema, for a server process
    /// (`bitacora-server --database-url`).
    pub fn url(&self) -> String {
        let sep = if self.url.contains('?') { '&' } else { '?' };
        format!("{}{sep}options[search_path]={}", self.url, self.name)
    }

    /// A migrated database whose connections use only this schema.
    pub async fn database(&self) -> Result<Database> {
        let opts = self.connect_options()?;
        let db = Database::connect_pg(opts)
            .await
            .with_context(|| format!("connect to the test schema {}", self.name))?;
        db.migrate().await.context("migrate the test schema")?;
        Ok(db)
    }

    pub async fn drop_schema(&self) -> Result<()> {
        let r = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA {} CASCADE",
            self.name
        )))
        .execute(&self.admin)
        .await;
        self.admin.close().await;
        r.with_context(|| format!("drop the test schema {}", self.name))?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The real server binary, as a child process.

/// Where a `bitacora-server` process runs from: a private copy of the binary (so every restart
/// runs the same build even if the workspace binary is rebuilt meanwhile), its data directory
/// and, for PostgreSQL, its database URL. Set up through [`ServerInstall::admin`], started with
/// [`ServerInstall::serve`].
pub struct ServerInstall {
    pub bin: PathBuf,
    pub data: PathBuf,
    /// `postgres://…` (see [`PgSchema::url`]); `None` for SQLite in `data`.
    pub database_url: Option<String>,
}

impl ServerInstall {
    /// Links (or, across file systems, copies) the binary into `tmp`; the data directory is
    /// `tmp/servidor`.
    ///
    /// A hard link, not a copy, wherever possible: copying opens the new file for writing, and a
    /// child forked meanwhile by another test thread inherits that descriptor until it execs, so
    /// running the copy right away can fail with ETXTBSY ("Text file busy"). A link never opens
    /// the file, and cargo replaces a rebuilt binary by a new inode, so the link still runs the
    /// build this test started with.
    pub fn new(tmp: &Path, database_url: Option<String>) -> Result<ServerInstall> {
        let bin = tmp.join(format!("bitacora-server{}", std::env::consts::EXE_SUFFIX));
        let origen = crate::bin("bitacora-server");
        if std::fs::hard_link(&origen, &bin).is_err() {
            std::fs::copy(&origen, &bin).context("copying the bitacora-server binary")?;
        }
        Ok(ServerInstall {
            bin,
            data: tmp.join("servidor"),
            database_url,
        })
    }

    /// A command for the binary with only this test's configuration (the JWT secret
    /// [`SECRETO`], the data directory, the database), no stray `BITACORA_*` from the caller's
    /// environment, and killed if dropped.
    pub fn command(&self) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(&self.bin);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("BITACORA_") {
                c.env_remove(k);
            }
        }
        c.env("BITACORA_JWT__SECRET", SECRETO)
            .env("BITACORA_LOG", "warn")
            .arg("--data-dir")
            .arg(&self.data)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        if let Some(u) = &self.database_url {
            c.arg("--database-url").arg(u);
        }
        c
    }

    /// Runs `bitacora-server admin …`; returns stdout.
    pub async fn admin(&self, args: &[&str]) -> Result<String> {
        let out = self.command().arg("admin").args(args).output().await?;
        ensure!(
            out.status.success(),
            "bitacora-server admin {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8(out.stdout)?)
    }

    /// The operator's registry for one teacher, through `admin`: zone `zona` and school `cct`
    /// of ciclo [`CICLO`], and the docente `usuario` of that school; returns her token.
    pub async fn escena_docente(&self, zona: &str, cct: &str, usuario: &str) -> Result<String> {
        self.admin(&[
            "zona", "add", "--clave", zona, "--nombre", "Zona 14", "--ciclo", CICLO,
        ])
        .await?;
        self.admin(&[
            "escuela",
            "add",
            "--cct",
            cct,
            "--nombre",
            "Escuela A",
            "--zona",
            zona,
            "--ciclo",
            CICLO,
        ])
        .await?;
        self.admin(&[
            "usuario", "add", "--id", usuario, "--nombre", usuario, "--rol", "docente", "--cct",
            cct,
        ])
        .await?;
        self.token(usuario).await
    }

    /// A token for `usuario`, from `admin token emitir`.
    pub async fn token(&self, usuario: &str) -> Result<String> {
        Ok(self
            .admin(&["token", "emitir", "--usuario", usuario])
            .await?
            .trim()
            .to_string())
    }

    /// Starts `bitacora-server serve` on a free port; returns once it listens (it prints its
    /// address on stdout), or fails if it does not within `plazo`.
    pub async fn serve(&self, plazo: std::time::Duration) -> Result<ServerProcess> {
        let mut child = self
            .command()
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .spawn()
            .context("spawning bitacora-server")?;
        let mut stdout = BufReader::new(child.stdout.take().context("stdout is piped")?);
        let mut line = String::new();
        tokio::time::timeout(plazo, stdout.read_line(&mut line))
            .await
            .context("bitacora-server did not report its address")??;
        let Some(url) = line.trim().strip_prefix("escuchando en ") else {
            let status = child.try_wait()?;
            bail!("bitacora-server did not start (status {status:?}); first line {line:?}");
        };
        Ok(ServerProcess {
            url: url.to_string(),
            child,
            _stdout: stdout,
        })
    }

    /// The server's database, opened directly (run no server on it meanwhile if it is SQLite
    /// and you want a quiet file).
    pub async fn database(&self) -> Result<Database> {
        let url = match &self.database_url {
            Some(u) => u.clone(),
            None => format!("sqlite://{}", self.data.join("servidor.db").display()),
        };
        Database::connect(&url)
            .await
            .context("opening the server's database")
    }
}

/// A running `bitacora-server serve` process.
pub struct ServerProcess {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    child: Child,
    /// Kept open so the server never writes to a closed pipe.
    _stdout: BufReader<ChildStdout>,
}

impl ServerProcess {
    /// SIGKILL, and reap the process.
    pub async fn kill(mut self) -> Result<()> {
        self.child.kill().await.context("killing bitacora-server")
    }

    pub fn id(&self) -> Option<u32> {
        self.child.id()
    }
}

/// `POST /v1/actores {"actor": hex}` with a user's token, over a bare TCP stream: enrols a
/// device's actor as `bitacora login` does.
pub async fn enrolar_http(url: &str, token: &str, actor: &str) -> Result<()> {
    let addr = url.strip_prefix("http://").context("http URL")?;
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let body = serde_json::json!({ "actor": actor }).to_string();
    let req = format!(
        "POST /v1/actores HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).await?;
    ensure!(
        resp.starts_with("HTTP/1.1 200"),
        "actor enrolment refused: {resp}"
    );
    Ok(())
}
