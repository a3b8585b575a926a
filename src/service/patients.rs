//! Patient records.

use uuid::Uuid;

use super::{Expected, ServiceError};
use crate::{
    domain::{
        audit::AuditDraft,
        patient::{NewPatient, Patient, PatientPatch},
        timefmt,
    },
    store::{
        Store,
        patients::{CreatePatientOutcome, ReplacePatientOutcome},
    },
};

/// Patient use cases.
#[derive(Debug, Clone)]
pub struct Patients {
    store: Store,
}

impl Patients {
    /// Patients over `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Registers a patient with a server-generated id.
    ///
    /// # Errors
    /// When the engine fails.
    pub async fn create(&self, new: NewPatient, audit: &AuditDraft) -> Result<Patient, ServiceError> {
        let patient = Patient::create(new, &timefmt::now());
        match self.store.create_patient(&patient, &audit.event(patient.id)).await? {
            CreatePatientOutcome::Created => Ok(patient),
            // A fresh UUID v7 collided: a defect, not the caller's fault.
            CreatePatientOutcome::IdTaken => Err(ServiceError::Internal("patient id taken".into())),
        }
    }

    /// One patient.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`] when there is none.
    pub async fn get(&self, id: Uuid) -> Result<Patient, ServiceError> {
        self.store
            .get_patient(id)
            .await?
            .ok_or(ServiceError::NotFound("patient"))
    }

    /// Changes a patient whose version is still `expected_version`: one read, then the new version and its
    /// audit event in one transaction conditioned on that version (so a concurrent change is a 412, never
    /// lost).
    ///
    /// A patch that changes nothing writes nothing: the patient comes back as it is, same version (and the
    /// second value is `false`).
    ///
    /// # Errors
    /// [`ServiceError::VersionMismatch`] when it changed since, [`ServiceError::NotFound`] when there is none.
    pub async fn patch(
        &self,
        id: Uuid,
        expected: Expected,
        patch: PatientPatch,
        audit: &AuditDraft,
    ) -> Result<(Patient, bool), ServiceError> {
        let current = self.get(id).await?;
        if !expected.admits(current.version) {
            return Err(ServiceError::VersionMismatch);
        }
        let patched = current.patched(patch, &timefmt::now());
        if patched.same_record(&current) {
            return Ok((current, false));
        }
        match self.store.replace_patient(&patched, &audit.event(id)).await? {
            ReplacePatientOutcome::Replaced => Ok((patched, true)),
            ReplacePatientOutcome::VersionMoved => Err(ServiceError::VersionMismatch),
        }
    }
}
