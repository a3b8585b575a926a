//! Critical-value alerts: open ones in `ALERTS` / `ALERT#<alertId>` (raised in the transaction of the
//! verification that wrote `result.critical`, see [`Store::put_events`]), acknowledged ones moved to the
//! patient's partition (`PATIENT#<patientId>` / `ALERTACK#<alertId>`) in the transaction that audits it.

use uuid::Uuid;

use super::{
    Page, PageKey, Store, StoreError,
    expr::Expr,
    from_item,
    items::AlertItem,
    key, keys, s, to_item,
    tx::{Sent, Tx},
};
use crate::domain::{
    audit::AuditEvent,
    event::{Alert, DomainEvent},
};

/// The actions of an acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AckAction {
    /// The open alert, deleted.
    Open,
    /// Its acknowledged record.
    Acknowledged,
    /// The audit event.
    Audit,
    /// The `alert.acknowledged` event.
    Event,
}

/// How [`Store::acknowledge_alert`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckOutcome {
    /// Acknowledged now.
    Acknowledged(Alert),
    /// No open alert of this id (never raised, or acknowledged already).
    NotOpen,
}

impl Store {
    /// A page of the open alerts, oldest first (one Query).
    ///
    /// # Errors
    /// Engine failures, malformed items.
    pub async fn open_alerts(&self, limit: i32, start: Option<&PageKey>) -> Result<Page<Alert>, StoreError> {
        self.query_page(
            self.query_builder()
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", keys::PK)
                .expression_attribute_values(":pk", s(keys::ALERTS_PK)),
            limit,
            start,
            &[keys::PK, keys::SK],
            AlertItem::into_alert,
        )
        .await
    }

    /// The open alert `id` (a strongly consistent GetItem).
    ///
    /// # Errors
    /// Engine failures, a malformed item.
    pub async fn open_alert(&self, id: Uuid) -> Result<Option<Alert>, StoreError> {
        self.get_consistent(keys::ALERTS_PK.to_owned(), keys::alert_sk(id))
            .await?
            .map(|item| from_item::<AlertItem>(item).map(AlertItem::into_alert))
            .transpose()
    }

    /// Acknowledges `open` (as read) by `by` at `at`: deletes it from the open list (where it is still there)
    /// and writes its acknowledged record, the audit event and `events`, in one transaction; two doctors
    /// acknowledging at once make one acknowledgement.
    ///
    /// # Errors
    /// Engine failures.
    pub async fn acknowledge_alert(
        &self,
        open: &Alert,
        by: &str,
        at: &str,
        audit: &AuditEvent,
        events: &[DomainEvent],
    ) -> Result<AckOutcome, StoreError> {
        let id = open.id;
        let acknowledged = AlertItem::acknowledged(open, by, at);
        let mut tx = Tx::new(self);
        tx.delete(
            AckAction::Open,
            key(keys::ALERTS_PK, keys::alert_sk(id)),
            Expr::new().exists(keys::PK),
        )?;
        tx.put_new(AckAction::Acknowledged, to_item(&acknowledged)?)?;
        tx.put_new(AckAction::Audit, self.audit_item(audit)?)?;
        self.put_events(&mut tx, AckAction::Event, events)?;
        match self.send(tx).await? {
            Sent::Committed => Ok(AckOutcome::Acknowledged(acknowledged.into_alert())),
            Sent::Rejected(r) if r.has(AckAction::Open) || r.has(AckAction::Acknowledged) => Ok(AckOutcome::NotOpen),
            Sent::Rejected(r) => Err(r.unexpected()),
        }
    }

    /// The acknowledged record of alert `id` of `patient_id`, if acknowledged.
    ///
    /// # Errors
    /// Engine failures, a malformed item.
    pub async fn acknowledged_alert(&self, patient_id: Uuid, id: Uuid) -> Result<Option<Alert>, StoreError> {
        self.get_consistent(keys::patient_pk(patient_id), keys::alert_ack_sk(id))
            .await?
            .map(|item| from_item::<AlertItem>(item).map(AlertItem::into_alert))
            .transpose()
    }
}
