//! Patient profiles.

use uuid::Uuid;

use super::{
    Store, StoreError,
    expr::Expr,
    from_item,
    items::{PatientItem, attr},
    keys, to_item,
    tx::{Tx, TxResult},
};
use crate::domain::{audit::AuditEvent, patient::Patient};

/// The actions of the patient writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PatientAction {
    /// The profile: new, or still at the version the caller read.
    Profile,
    /// The audit event is new.
    Audit,
}

/// How [`Store::create_patient`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreatePatientOutcome {
    /// Written.
    Created,
    /// The id is taken.
    IdTaken,
}

/// How [`Store::replace_patient`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplacePatientOutcome {
    /// Written.
    Replaced,
    /// The stored version moved on, or the patient is gone.
    VersionMoved,
}

impl Store {
    fn patient_tx(
        &self,
        patient: &Patient,
        profile: Expr,
        audit: &AuditEvent,
    ) -> Result<Tx<PatientAction>, StoreError> {
        let mut tx = Tx::new(self);
        tx.put(PatientAction::Profile, to_item(&PatientItem::from(patient))?, profile)?;
        tx.put(
            PatientAction::Audit,
            self.audit_item(audit)?,
            Expr::new().not_exists(keys::PK),
        )?;
        Ok(tx)
    }

    /// Stores a new patient and its audit event in one transaction; the id must be free.
    ///
    /// # Errors
    /// Engine failures.
    pub async fn create_patient(
        &self,
        patient: &Patient,
        audit: &AuditEvent,
    ) -> Result<CreatePatientOutcome, StoreError> {
        let tx = self.patient_tx(patient, Expr::new().not_exists(keys::PK), audit)?;
        match self.send(tx, None).await? {
            TxResult::Committed => Ok(CreatePatientOutcome::Created),
            TxResult::Rejected(r) if r.has(PatientAction::Profile) => Ok(CreatePatientOutcome::IdTaken),
            other => Err(StoreError::Engine(format!("patient create: {other:?}"))),
        }
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
    /// Engine failures.
    pub async fn replace_patient(
        &self,
        patient: &Patient,
        audit: &AuditEvent,
    ) -> Result<ReplacePatientOutcome, StoreError> {
        let previous = Expr::new().eq(attr::VERSION, patient.version - 1);
        let tx = self.patient_tx(patient, previous, audit)?;
        match self.send(tx, None).await? {
            TxResult::Committed => Ok(ReplacePatientOutcome::Replaced),
            TxResult::Rejected(r) if r.has(PatientAction::Profile) => Ok(ReplacePatientOutcome::VersionMoved),
            other => Err(StoreError::Engine(format!("patient replace: {other:?}"))),
        }
    }
}
