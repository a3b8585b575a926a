//! The audit trail: one partition per patient and month, outside the patient's item collection.

use aws_sdk_dynamodb::types::TransactWriteItem;
use uuid::Uuid;

use super::{Page, PageKey, Store, StoreError, from_item, items::AuditItem, keys, s, to_item};
use crate::domain::audit::AuditEvent;

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

    /// The Put action that writes an audit event inside the transaction of the change it records.
    pub(crate) fn tx_audit(&self, event: &AuditEvent) -> Result<TransactWriteItem, StoreError> {
        let item = to_item(&AuditItem::new(event, self.audit_retention_days))?;
        Ok(self.tx_put(item, Some("attribute_not_exists(PK)"), None))
    }

    /// A page of a patient's audit events of one month (`YYYY-MM`) between two sort-key bounds, newest
    /// first (one Query).
    ///
    /// # Errors
    /// Engine failures.
    pub async fn audit_page(
        &self,
        patient_id: Uuid,
        month: &str,
        bounds: (&str, &str),
        limit: i32,
        start: Option<&PageKey>,
    ) -> Result<Page<AuditEvent>, StoreError> {
        let out = self
            .query(
                self.query_builder()
                    .key_condition_expression("#pk = :pk AND #sk BETWEEN :lo AND :hi")
                    .expression_attribute_names("#pk", keys::PK)
                    .expression_attribute_names("#sk", keys::SK)
                    .expression_attribute_values(":pk", s(keys::audit_pk(patient_id, month)))
                    .expression_attribute_values(":lo", s(bounds.0))
                    .expression_attribute_values(":hi", s(bounds.1))
                    .scan_index_forward(false)
                    .limit(limit)
                    .set_exclusive_start_key(start.map(|k| k.to_item(&[keys::PK, keys::SK]))),
            )
            .await?;
        let items = out
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|item| from_item::<AuditItem>(item).map(AuditItem::into_event))
            .collect::<Result<_, _>>()?;
        Ok(Page {
            items,
            next: PageKey::from_item(out.last_evaluated_key),
        })
    }
}
