//! The audit trail: recording events outside a change's transaction, and reading a patient's trail.

use time::{Date, OffsetDateTime};
use uuid::Uuid;

use super::{FieldError, ServiceError};
use crate::{
    domain::{audit::AuditEvent, booking::format_date},
    store::{Page, PageKey, Store},
};

/// Page-key entry naming the month partition an audit page continues in.
const MONTH_KEY: &str = "_month";

/// Audit use cases.
#[derive(Debug, Clone)]
pub struct AuditTrail {
    store: Store,
}

impl AuditTrail {
    /// The trail over `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
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
        start: Option<&PageKey>,
    ) -> Result<Page<AuditEvent>, ServiceError> {
        let to = to.unwrap_or_else(|| OffsetDateTime::now_utc().date());
        let from = from.unwrap_or_else(|| to.saturating_sub(time::Duration::days(365)));
        if to < from {
            return Err(ServiceError::Invalid(vec![FieldError::new(
                "to",
                "must not be before `from`",
            )]));
        }
        let mut months = months_between(from, to);
        if months.len() > 24 {
            return Err(ServiceError::Invalid(vec![FieldError::new(
                "from",
                "the range may span at most 24 months",
            )]));
        }
        months.reverse();
        let month = start
            .and_then(|k| k.0.get(MONTH_KEY).cloned())
            .unwrap_or_else(|| months[0].clone());
        let Some(position) = months.iter().position(|m| *m == month) else {
            return Err(ServiceError::Invalid(vec![FieldError::new(
                "cursor",
                "does not belong to this range",
            )]));
        };
        let resume = start.filter(|k| k.0.len() > 1);
        let (lo, hi) = (format_date(from), format!("{}~", format_date(to)));
        let page = self
            .store
            .audit_page(patient_id, &month, (&lo, &hi), limit, resume)
            .await?;
        let next = match page.next {
            Some(mut key) => {
                key.0.insert(MONTH_KEY.to_owned(), month);
                Some(key)
            }
            None => months
                .get(position + 1)
                .map(|m| PageKey([(MONTH_KEY.to_owned(), m.clone())].into())),
        };
        Ok(Page {
            items: page.items,
            next,
        })
    }
}

/// `YYYY-MM` of every month from `from` to `to`, in order.
pub fn months_between(from: Date, to: Date) -> Vec<String> {
    let mut months = Vec::new();
    let (mut year, mut month) = (from.year(), u8::from(from.month()));
    while (year, month) <= (to.year(), u8::from(to.month())) {
        months.push(format!("{year:04}-{month:02}"));
        if month == 12 {
            (year, month) = (year + 1, 1);
        } else {
            month += 1;
        }
    }
    months
}
