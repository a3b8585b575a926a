//! Readiness of the service's dependencies, and of the service itself while it shuts down.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use crate::store::Store;

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
    pub async fn ready(&self) -> bool {
        if self.draining.load(Ordering::SeqCst) {
            return false;
        }
        match self.store.is_ready().await {
            Ok(ready) => ready,
            Err(e) => {
                tracing::warn!(error = %e, "readiness check failed");
                false
            }
        }
    }
}
