//! Patient records.

use uuid::Uuid;

use super::{Cursor, Expected, FieldError, Page, ServiceError};
use crate::{
    domain::{
        audit::AuditDraft,
        event::{DomainEvent, EventType},
        patient::{Identifier, NewPatient, Patient, PatientPatch, normalise_email, search_name},
        timefmt,
    },
    store::{
        Store,
        patients::{CreatePatientOutcome, PatientSearch, ReplacePatientOutcome},
    },
};

pub(super) fn email_taken() -> ServiceError {
    ServiceError::conflict(
        "email-taken",
        "another patient has this e-mail address (addresses are unique, compared trimmed and lower-cased)",
    )
}

fn identifier_taken(identifier: &Identifier) -> ServiceError {
    ServiceError::conflict(
        "identifier-taken",
        format!(
            "another patient has identifier {}|{} (an identifier is one patient's within its system)",
            identifier.system, identifier.value
        ),
    )
}

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
        let created = DomainEvent::new(EventType::PatientCreated, patient.id, &patient.created_at).with("by", "staff");
        match self
            .store
            .create_patient(&patient, &audit.event(patient.id), &[created])
            .await?
        {
            CreatePatientOutcome::Created => Ok(patient),
            // A fresh UUID v7 collided: a defect, not the caller's fault.
            CreatePatientOutcome::IdTaken => Err(ServiceError::Internal("patient id taken".into())),
            CreatePatientOutcome::EmailTaken => Err(email_taken()),
            CreatePatientOutcome::IdentifierTaken(identifier) => Err(identifier_taken(&identifier)),
        }
    }

    /// The patient with e-mail address `email` (trimmed, lower-cased before the lookup): two GetItems, the
    /// address's guard and the profile.
    ///
    /// # Errors
    /// Engine failures.
    pub async fn by_email(&self, email: &str) -> Result<Option<Patient>, ServiceError> {
        Ok(self.store.patient_by_email(&normalise_email(email)).await?)
    }

    /// The patient with `identifier`: two GetItems, the identifier's guard and the profile.
    ///
    /// # Errors
    /// Engine failures.
    pub async fn by_identifier(&self, identifier: &Identifier) -> Result<Option<Patient>, ServiceError> {
        Ok(self.store.patient_by_identifier(identifier).await?)
    }

    /// A page of patients born on `birth_date` whose family name begins with `family` (and given name with
    /// `given`), compared case- and accent-insensitively: one Query on the search index.
    ///
    /// # Errors
    /// [`ServiceError::Invalid`] for a name with no letter or digit; engine failures.
    pub async fn search(
        &self,
        birth_date: time::Date,
        family: &str,
        given: Option<&str>,
        limit: i32,
        start: Option<&Cursor>,
    ) -> Result<Page<Patient>, ServiceError> {
        let folded = search_name(family);
        if folded.is_empty() {
            return Err(ServiceError::Invalid(vec![FieldError::new(
                "familyName",
                "needs a letter or a digit",
            )]));
        }
        let search = PatientSearch {
            birth_date,
            family: folded,
            given: given.map(search_name).filter(|g| !g.is_empty()),
        };
        Ok(self
            .store
            .find_patients(&search, limit, Cursor::key(start))
            .await?
            .into())
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
        match self
            .store
            .replace_patient(&current, &patched, &audit.event(id), &[])
            .await?
        {
            ReplacePatientOutcome::Replaced => Ok((patched, true)),
            ReplacePatientOutcome::VersionMoved => Err(ServiceError::VersionMismatch),
            ReplacePatientOutcome::EmailTaken => Err(email_taken()),
            ReplacePatientOutcome::IdentifierTaken(identifier) => Err(identifier_taken(&identifier)),
        }
    }
}
