//! Patient records.

use uuid::Uuid;

use super::ServiceError;
use crate::{
    domain::{
        patient::{NewPatient, Patient, PatientPatch},
        timefmt,
    },
    store::{Store, patients::PatchOutcome},
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
    pub async fn create(&self, new: NewPatient) -> Result<Patient, ServiceError> {
        let patient = Patient::create(new, &timefmt::now());
        self.store.create_patient(&patient).await?;
        Ok(patient)
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

    /// Changes a patient whose version is still `expected_version` (one conditional UpdateItem).
    ///
    /// # Errors
    /// [`ServiceError::VersionMismatch`] when it changed since, [`ServiceError::NotFound`] when there is none.
    pub async fn patch(&self, id: Uuid, expected_version: u64, patch: PatientPatch) -> Result<Patient, ServiceError> {
        match self
            .store
            .patch_patient(id, expected_version, &patch, &timefmt::now())
            .await?
        {
            PatchOutcome::Updated(patient) => Ok(patient),
            PatchOutcome::Stale => Err(ServiceError::VersionMismatch),
            PatchOutcome::Missing => Err(ServiceError::NotFound("patient")),
        }
    }
}
