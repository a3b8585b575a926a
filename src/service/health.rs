//! Readiness of the service's dependencies, and of the service itself while it shuts down.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use crate::store::{Store, bootstrap::TableState};

/// Readiness checks.
#[derive(Debug, Clone)]
pub struct Health {
    store: Store,
    draining: Arc<AtomicBool>,
}

impl Health {
    /// Checks over `store`.
    pub fn new(store: Store) -> Self {
        Self {
            store,
            draining: Arc::default(),
        }
    }

    /// From now on, report not ready: the process is shutting down and load balancers should stop sending.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Ready when not shutting down, the engine answers, and the table and its indexes are ACTIVE.
    pub async fn ready(&self) -> Readiness {
        if self.draining.load(Ordering::SeqCst) {
            return Readiness::Draining;
        }
        match self.store.table_state().await {
            Ok(TableState::Active) => Readiness::Ready,
            Ok(TableState::Missing) => {
                tracing::error!(
                    table = self.store.table(),
                    "readiness: the table does not exist; recreate it with `medbook migrate`"
                );
                Readiness::TableMissing(self.store.table().to_owned())
            }
            Ok(TableState::NotActive) => Readiness::NotActive,
            Err(e) => {
                tracing::warn!(error = %e, "readiness check failed");
                Readiness::Unreachable
            }
        }
    }
}

/// Why the service is or is not ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// Serving.
    Ready,
    /// Shutting down.
    Draining,
    /// The table does not exist (its name).
    TableMissing(String),
    /// The table or an index is being created or updated.
    NotActive,
    /// The engine does not answer.
    Unreachable,
}
