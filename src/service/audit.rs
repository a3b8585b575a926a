//! The audit trail: recording events outside a change's transaction, and reading a patient's trail.

use time::{Date, OffsetDateTime};
use uuid::Uuid;

use super::{Cursor, Page, ServiceError, month_range};
use crate::{domain::audit::AuditEvent, store::Store};

type RefusalLimiter =
    governor::RateLimiter<String, governor::state::keyed::HashMapStateStore<String>, governor::clock::DefaultClock>;

/// Audit use cases.
#[derive(Clone)]
pub struct AuditTrail {
    store: Store,
    refusals: std::sync::Arc<RefusalLimiter>,
}

impl std::fmt::Debug for AuditTrail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditTrail").finish_non_exhaustive()
    }
}

impl AuditTrail {
    /// The trail over `store`, recording at most `refusals_per_minute` refused requests per caller.
    pub fn new(store: Store, refusals_per_minute: u32) -> Self {
        let per_minute = std::num::NonZeroU32::new(refusals_per_minute.max(1)).expect("at least 1");
        Self {
            store,
            refusals: std::sync::Arc::new(governor::RateLimiter::hashmap(governor::Quota::per_minute(per_minute))),
        }
    }

    /// Writes the event of a refused request (403, 404) in the background, within the caller's budget: each one
    /// goes to the partition of the patient id in the URL, which may not exist, so an unbounded stream of
    /// refusals would make partitions without bound. Past the budget the event is counted
    /// (`medbook_audit_refusals_suppressed_total`) and logged, not stored.
    pub fn record_refusal_detached(&self, event: AuditEvent) {
        let caller = format!("{}:{}", event.actor.role, event.actor.sub);
        if self.refusals.check_key(&caller).is_err() {
            metrics::counter!("medbook_audit_refusals_suppressed_total").increment(1);
            tracing::warn!(
                %caller,
                action = %event.action,
                resource = %event.resource,
                outcome = event.outcome,
                request_id = %event.request_id,
                "refused request not stored in the audit trail: over the caller's budget"
            );
            return;
        }
        self.record_detached(event);
    }

    /// Writes `event` in the background, after the response is decided: a failure is logged and counted
    /// (`medbook_audit_write_failures_total`), never shown to the caller and never undoes their request.
    pub fn record_detached(&self, event: AuditEvent) {
        let store = self.store.clone();
        tokio::spawn(async move {
            if let Err(e) = store.put_audit(&event).await {
                metrics::counter!("medbook_audit_write_failures_total").increment(1);
                tracing::error!(error = %e, action = %event.action, request_id = %event.request_id, "audit event lost");
            }
        });
    }

    /// Writes `events` in the background with BatchWriteItem: for a view that shows many patients at once.
    pub fn record_many_detached(&self, events: Vec<AuditEvent>) {
        if events.is_empty() {
            return;
        }
        let store = self.store.clone();
        tokio::spawn(async move {
            if let Err(e) = store.put_audits(&events).await {
                metrics::counter!("medbook_audit_write_failures_total").increment(events.len() as u64);
                tracing::error!(error = %e, lost = events.len(), "audit events lost");
            }
        });
    }

    /// A page of a patient's events between two days (inclusive), newest first. Each page is one Query on
    /// one month's partition; the page key carries the month.
    ///
    /// # Errors
    /// [`ServiceError::Invalid`] when `to` is before `from` or the range spans more than 24 months.
    pub async fn page(
        &self,
        patient_id: Uuid,
        from: Option<Date>,
        to: Option<Date>,
        limit: i32,
        start: Option<&Cursor>,
    ) -> Result<Page<AuditEvent>, ServiceError> {
        let to = to.unwrap_or_else(|| OffsetDateTime::now_utc().date());
        let from = from.unwrap_or_else(|| to.saturating_sub(time::Duration::days(365)));
        let range = month_range(from, to)?;
        Ok(self
            .store
            .audit_page(patient_id, range, limit, Cursor::key(start))
            .await?
            .into())
    }
}
