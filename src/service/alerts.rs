//! Critical-value alerts: what doctors must see now, until one of them acknowledges it.

use uuid::Uuid;

use super::{Cursor, Page, ServiceError};
use crate::{
    domain::{
        audit::AuditDraft,
        event::{Alert, DomainEvent, EventType},
        timefmt,
    },
    store::{Store, alerts::AckOutcome},
};

/// Alert use cases.
#[derive(Debug, Clone)]
pub struct Alerts {
    store: Store,
}

impl Alerts {
    /// Alerts over `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// A page of the open alerts, oldest first.
    ///
    /// # Errors
    /// Engine failures.
    pub async fn open(&self, limit: i32, start: Option<&Cursor>) -> Result<Page<Alert>, ServiceError> {
        Ok(self.store.open_alerts(limit, Cursor::key(start)).await?.into())
    }

    /// Acknowledges alert `id` as `actor`, audited (`audit`) in the same transaction, with an
    /// `alert.acknowledged` event.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`] for an alert that is not open; engine failures.
    pub async fn acknowledge(&self, id: Uuid, actor: &str, audit: &AuditDraft) -> Result<Alert, ServiceError> {
        let Some(open) = self.store.open_alert(id).await? else {
            return Err(ServiceError::NotFound("open alert"));
        };
        let now = timefmt::now();
        let event = DomainEvent::test(
            EventType::AlertAcknowledged,
            crate::domain::booking::TestAddress {
                patient_id: open.patient_id,
                booking_id: open.booking_id,
                test_id: open.test_id,
            },
            &now,
        )
        .with("alertId", id);
        match self
            .store
            .acknowledge_alert(&open, actor, &now, &audit.event(open.patient_id), &[event])
            .await?
        {
            AckOutcome::Acknowledged(alert) => Ok(alert),
            AckOutcome::NotOpen => Err(ServiceError::NotFound("open alert")),
        }
    }
}
