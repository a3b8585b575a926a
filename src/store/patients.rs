//! Patient profiles.

use std::collections::HashMap;

use uuid::Uuid;

use super::{Store, StoreError, from_item, items::PatientItem, keys, n, to_item};
use crate::domain::{audit::AuditEvent, patient::Patient};

impl Store {
    /// Stores a new patient and its audit event in one transaction; the id must be free.
    ///
    /// # Errors
    /// [`StoreError::TransactionCanceled`] when the id is taken; engine failures.
    pub async fn create_patient(&self, patient: &Patient, audit: &AuditEvent) -> Result<(), StoreError> {
        let item = to_item(&PatientItem::from(patient))?;
        let actions = vec![
            self.tx_put(item, Some("attribute_not_exists(PK)"), None),
            self.tx_audit(audit)?,
        ];
        self.transact(actions, None).await
    }

    /// A patient's profile (GetItem).
    ///
    /// # Errors
    /// When the engine fails or the item is malformed.
    pub async fn get_patient(&self, id: Uuid) -> Result<Option<Patient>, StoreError> {
        self.get(keys::patient_pk(id), keys::PATIENT_PROFILE_SK.to_owned())
            .await?
            .map(|item| from_item::<PatientItem>(item).and_then(Patient::try_from))
            .transpose()
    }

    /// Replaces a patient whose stored version is still `patient.version - 1`, with its audit event, in one
    /// transaction.
    ///
    /// # Errors
    /// [`StoreError::TransactionCanceled`] (action 0) when the version moved on or the patient is gone.
    pub async fn replace_patient(&self, patient: &Patient, audit: &AuditEvent) -> Result<(), StoreError> {
        let item = to_item(&PatientItem::from(patient))?;
        let previous = HashMap::from([(":previous".to_owned(), n(patient.version - 1))]);
        let actions = vec![
            self.tx_put(item, Some("version = :previous"), Some(previous)),
            self.tx_audit(audit)?,
        ];
        self.transact(actions, None).await
    }
}
