//! The audit trail: one partition per patient and month, outside the patient's item collection.

use tracing::Instrument;
use uuid::Uuid;

use super::{Item, Page, PageKey, Store, StoreError, items::AuditItem, keys, s, to_item};
use crate::domain::{audit::AuditEvent, booking::DateRange};

impl Store {
    /// Writes an audit event on its own (PutItem): for reads and refused requests, after the response is
    /// decided.
    ///
    /// # Errors
    /// Engine failures.
    pub async fn put_audit(&self, event: &AuditEvent) -> Result<(), StoreError> {
        let item = to_item(&AuditItem::new(event, self.audit_retention_days))?;
        self.put(self.put_builder(item)).await
    }

    /// Writes several audit events with BatchWriteItem (25 a call), for a view that shows many patients.
    ///
    /// # Errors
    /// Engine failures.
    pub async fn put_audits(&self, events: &[AuditEvent]) -> Result<(), StoreError> {
        use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
        for chunk in events.chunks(25) {
            let mut requests = chunk
                .iter()
                .map(|e| {
                    let item = to_item(&AuditItem::new(e, self.audit_retention_days))?;
                    let put = PutRequest::builder()
                        .set_item(Some(item))
                        .build()
                        .expect("put request is complete");
                    Ok(WriteRequest::builder().put_request(put).build())
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            for _ in 0..5 {
                if requests.is_empty() {
                    break;
                }
                let call = super::usage::Call::start("BatchWriteItem", &self.table, None);
                let result = self
                    .client
                    .batch_write_item()
                    .request_items(self.table.as_ref(), requests.clone())
                    .return_consumed_capacity(aws_sdk_dynamodb::types::ReturnConsumedCapacity::Total)
                    .send()
                    .instrument(call.span())
                    .await
                    .map_err(StoreError::from_sdk);
                match result {
                    Ok(out) => {
                        call.finish(
                            super::usage::Kind::Write,
                            out.consumed_capacity().iter().collect(),
                            None,
                        );
                        requests = out
                            .unprocessed_items
                            .and_then(|mut m| m.remove(self.table.as_ref()))
                            .unwrap_or_default();
                    }
                    Err(e) => {
                        call.finish(super::usage::Kind::Write, Vec::new(), Some(&e));
                        return Err(e);
                    }
                }
            }
            if !requests.is_empty() {
                return Err(StoreError::Unavailable(format!(
                    "{} audit events left unprocessed",
                    requests.len()
                )));
            }
        }
        Ok(())
    }

    /// The item of an audit event, for the transaction of the change it records.
    pub(crate) fn audit_item(&self, event: &AuditEvent) -> Result<Item, StoreError> {
        to_item(&AuditItem::new(event, self.audit_retention_days))
    }

    /// A page of a patient's audit events in `range`, newest first. Each page is one Query on one month's
    /// partition, newest month first; the page key carries the month.
    ///
    /// # Errors
    /// [`StoreError::ForeignKey`] for a page key of another range; engine failures.
    pub async fn audit_page(
        &self,
        patient_id: Uuid,
        range: DateRange,
        limit: i32,
        start: Option<&PageKey>,
    ) -> Result<Page<AuditEvent>, StoreError> {
        let mut months = keys::months(range);
        months.reverse();
        let (lo, hi) = keys::day_bounds(range);
        Self::bucket_paged(&months, start, |month, resume| async move {
            let query = self
                .query_builder()
                .key_condition_expression("#pk = :pk AND #sk BETWEEN :lo AND :hi")
                .expression_attribute_names("#pk", keys::PK)
                .expression_attribute_names("#sk", keys::SK)
                .expression_attribute_values(":pk", s(keys::audit_pk(patient_id, month)))
                .expression_attribute_values(":lo", s(&lo))
                .expression_attribute_values(":hi", s(&hi))
                .scan_index_forward(false);
            self.query_page(
                query,
                limit,
                resume.as_ref(),
                &[keys::PK, keys::SK],
                AuditItem::into_event,
            )
            .await
        })
        .await
    }
}
