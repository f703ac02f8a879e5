//! A real zone server for tests: in-process on 127.0.0.1 port 0 over a fresh SQLite (or the
//! PostgreSQL of `BITACORA_TEST_DATABASE_URL` in a fresh schema); dropping it shuts it down.

use std::path::PathBuf;

use anyhow::Result;
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
