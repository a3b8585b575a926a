//! Patients.

use serde::{Deserialize, Serialize};
use time::Date;
use uuid::Uuid;

/// Administrative sex, as in FHIR's AdministrativeGender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Sex {
    /// Female.
    Female,
    /// Male.
    Male,
    /// Other.
    Other,
    /// Unknown.
    Unknown,
}

/// A patient record.
#[derive(Debug, Clone, PartialEq)]
pub struct Patient {
    /// Server-generated id (UUID v7).
    pub id: Uuid,
    /// Given name.
    pub given_name: String,
    /// Family name.
    pub family_name: String,
    /// Date of birth.
    pub birth_date: Date,
    /// Administrative sex.
    pub sex: Sex,
    /// E-mail address.
    pub email: Option<String>,
    /// Phone number.
    pub phone: Option<String>,
    /// Optimistic-concurrency version, starting at 1; the ETag.
    pub version: u64,
    /// Creation time.
    pub created_at: String,
    /// Last change time.
    pub updated_at: String,
}

/// The fields of a new patient.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPatient {
    /// Given name.
    pub given_name: String,
    /// Family name.
    pub family_name: String,
    /// Date of birth.
    pub birth_date: Date,
    /// Administrative sex.
    pub sex: Sex,
    /// E-mail address.
    pub email: Option<String>,
    /// Phone number.
    pub phone: Option<String>,
}

/// A partial update: `None` leaves a field as it is; for email and phone `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PatientPatch {
    /// New given name.
    pub given_name: Option<String>,
    /// New family name.
    pub family_name: Option<String>,
    /// New date of birth.
    pub birth_date: Option<Date>,
    /// New sex.
    pub sex: Option<Sex>,
    /// New or cleared e-mail.
    pub email: Option<Option<String>>,
    /// New or cleared phone.
    pub phone: Option<Option<String>>,
}

impl Patient {
    /// A new patient with a fresh id at version 1.
    pub fn create(new: NewPatient, now: &str) -> Self {
        Self {
            id: Uuid::now_v7(),
            given_name: new.given_name,
            family_name: new.family_name,
            birth_date: new.birth_date,
            sex: new.sex,
            email: new.email,
            phone: new.phone,
            version: 1,
            created_at: now.to_owned(),
            updated_at: now.to_owned(),
        }
    }
}
