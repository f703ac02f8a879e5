//! A real zone server for tests: in-process on 127.0.0.1 port 0 over a fresh SQLite (or the
//! PostgreSQL of `BITACORA_TEST_DATABASE_URL` in a fresh schema); dropping it shuts it down.

use std::path::PathBuf;
use std::str::FromStr;

use anyhow::{Context, Result};
use bitacora_core::ids::CicloEscolar;
use bitacora_core::store::DocInfo;
use bitacora_server::admin;
use bitacora_server::auth::Keys;
use bitacora_server::config::{Config, Secret};
use bitacora_server::db::Database;
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
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
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
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let keys = Keys::from_config(&config.jwt, &config.data_dir)?;
        let (stop, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(bitacora_server::run_with_db(
            listener,
            config.clone(),
            db.clone(),
            async move {
                let _ = rx.await;
            },
        ));
        Ok(TestServer {
            url,
            db,
            keys,
            config,
            dir,
            stop: Some(stop),
            task: Some(task),
        })
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
        Self::start_on(dir, config, db).await
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

    /// A migrated database whose connections use only this schema.
    pub async fn database(&self) -> Result<Database> {
        let opts = sqlx::postgres::PgConnectOptions::from_str(&self.url)
            .with_context(|| format!("parse {PG_URL_VAR}"))?
            .options([("search_path", self.name.as_str())]);
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
