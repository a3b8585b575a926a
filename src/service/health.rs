//! Readiness of the service's dependencies.

use crate::store::Store;

/// Readiness checks.
#[derive(Debug, Clone)]
pub struct Health {
    store: Store,
}

impl Health {
    /// Checks over `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Ready when the engine answers and the table and its indexes are ACTIVE.
    pub async fn ready(&self) -> bool {
        match self.store.is_ready().await {
            Ok(ready) => ready,
            Err(e) => {
                tracing::warn!(error = %e, "readiness check failed");
                false
            }
        }
    }
}
