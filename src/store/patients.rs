//! Patient profiles.

use uuid::Uuid;

use super::{
    Store, StoreError,
    expr::Expr,
    from_item,
    items::{PatientItem, attr},
    keys, to_item,
    tx::{Sent, Tx},
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
        tx.put_new(PatientAction::Audit, self.audit_item(audit)?)?;
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
        match self.send(tx).await? {
            Sent::Committed => Ok(CreatePatientOutcome::Created),
            Sent::Rejected(r) if r.has(PatientAction::Profile) => Ok(CreatePatientOutcome::IdTaken),
            Sent::Rejected(r) => Err(r.unexpected()),
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
        match self.send(tx).await? {
            Sent::Committed => Ok(ReplacePatientOutcome::Replaced),
            Sent::Rejected(r) if r.has(PatientAction::Profile) => Ok(ReplacePatientOutcome::VersionMoved),
            Sent::Rejected(r) => Err(r.unexpected()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{domain::patient::Sex, store::tx::assert_names_in_targets};

    #[test]
    fn every_attribute_a_patient_write_names_exists_in_its_item() {
        let patient = Patient {
            id: Uuid::now_v7(),
            given_name: "Ada".into(),
            family_name: "Lovelace".into(),
            birth_date: time::macros::date!(1990 - 01 - 01),
            sex: Sex::Female,
            email: None,
            phone: None,
            version: 2,
            created_at: "t".into(),
            updated_at: "t".into(),
        };
        let audit = crate::store::tests::audit_event(patient.id);
        let store = crate::store::tests::offline_store();
        for profile in [Expr::new().not_exists(keys::PK), Expr::new().eq(attr::VERSION, 1)] {
            let tx = store.patient_tx(&patient, profile, &audit).unwrap();
            assert_names_in_targets(&tx, &Default::default());
        }
    }
}
