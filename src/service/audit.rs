//! The audit trail: recording events outside a change's transaction, and reading a patient's trail.

use time::{Date, OffsetDateTime};
use uuid::Uuid;

use super::{ServiceError, month_paged, months_in_range};
use crate::{
    domain::{audit::AuditEvent, booking::format_date},
    store::{Page, PageKey, Store},
};

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
        let mut months = months_in_range(from, to)?;
        months.reverse();
        let (lo, hi) = (format_date(from), format!("{}~", format_date(to)));
        month_paged(&months, start, |month, resume| async move {
            self.store
                .audit_page(patient_id, &month, (&lo, &hi), limit, resume.as_ref())
                .await
        })
        .await
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

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;

    #[test]
    fn months_between_spans_year_ends() {
        assert_eq!(
            months_between(date!(2026 - 11 - 30), date!(2027 - 01 - 02)),
            ["2026-11", "2026-12", "2027-01"]
        );
        assert_eq!(
            months_between(date!(2026 - 11 - 01), date!(2026 - 11 - 30)),
            ["2026-11"]
        );
    }

    #[test]
    fn a_range_must_run_forwards_and_span_at_most_24_months() {
        assert!(months_in_range(date!(2026 - 11 - 02), date!(2026 - 11 - 01)).is_err());
        assert!(months_in_range(date!(2026 - 01 - 01), date!(2028 - 01 - 01)).is_err());
        assert_eq!(
            months_in_range(date!(2026 - 01 - 01), date!(2027 - 12 - 31))
                .unwrap()
                .len(),
            24
        );
    }
}
