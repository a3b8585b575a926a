//! The embedded engine: dynoxide (a DynamoDB emulator on SQLite) served over HTTP on a loopback port, so the
//! service still talks to it through aws-sdk-dynamodb exactly as it would to Amazon DynamoDB.

use std::path::Path;

use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

/// A running embedded engine. Dropping it without [`EmbeddedEngine::shutdown`] stops it with the runtime.
#[derive(Debug)]
pub struct EmbeddedEngine {
    endpoint: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), String>>>,
}

/// The embedded engine could not start.
#[derive(Debug, thiserror::Error)]
#[error("embedded engine: {0}")]
pub struct EngineError(String);

impl EmbeddedEngine {
    /// Opens (or creates) the SQLite file at `path` and serves it on `127.0.0.1:0` on the current runtime.
    ///
    /// # Errors
    /// When the file cannot be opened or no port can be bound.
    pub async fn start_file(path: &Path) -> Result<Self, EngineError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| EngineError(format!("{}: {e}", dir.display())))?;
        }
        let path_text = path
            .to_str()
            .ok_or_else(|| EngineError(format!("{} is not UTF-8", path.display())))?;
        let db = dynoxide::Database::new(path_text).map_err(|e| EngineError(format!("{}: {e}", path.display())))?;
        Self::serve(db).await
    }

    /// Serves a fresh in-memory database on `127.0.0.1:0` on the current runtime.
    ///
    /// # Errors
    /// When no port can be bound.
    pub async fn start_memory() -> Result<Self, EngineError> {
        let db = dynoxide::Database::memory().map_err(|e| EngineError(e.to_string()))?;
        Self::serve(db).await
    }

    async fn serve(db: dynoxide::Database) -> Result<Self, EngineError> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| EngineError(e.to_string()))?;
        let addr = listener.local_addr().map_err(|e| EngineError(e.to_string()))?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(dynoxide::server::serve_with_shutdown(listener, db, async move {
            let _ = stopped.await;
        }));
        Ok(Self {
            endpoint: format!("http://{addr}"),
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The engine's URL, for `endpoint_url`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Stops accepting, lets running requests finish, and waits for the engine to close.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "embedded engine stopped with an error"),
                Err(e) => tracing::warn!(error = %e, "embedded engine task failed"),
            }
        }
    }
}
