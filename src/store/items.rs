//! Persistence structs: the exact shape of each item type in the table, converted with serde_dynamo.
//!
//! Each struct carries its key attributes (built by [`super::keys`]) and an `entity` discriminator, and
//! converts to and from its domain type at the store boundary. Index attributes are `Option`s: an item
//! carries an index's keys only while it should appear in that index (sparse indexes).

use serde::{Deserialize, Serialize};
use time::Date;
use uuid::Uuid;

use super::{StoreError, keys};
use crate::domain::{
    patient::{Patient, Sex},
    test_type::{TestType, TestTypeDefinition},
};

/// Entity discriminators stored in the `entity` attribute.
pub mod entity {
    /// A patient's profile.
    pub const PATIENT: &str = "Patient";
    /// The current version of a test type, in the catalog partition.
    pub const CATALOG_ENTRY: &str = "CatalogEntry";
    /// One version of a test type.
    pub const TEST_TYPE_VERSION: &str = "TestTypeVersion";
    /// An applied migration.
    pub const MIGRATION: &str = "Migration";
    /// The migration lease.
    pub const MIGRATION_LEASE: &str = "MigrationLease";
}

/// A patient's profile: `PATIENT#<id>` / `PROFILE`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PatientItem {
    /// `PATIENT#<id>`.
    #[serde(rename = "PK")]
    pub pk: String,
    /// `PROFILE`.
    #[serde(rename = "SK")]
    pub sk: String,
    /// [`entity::PATIENT`].
    pub entity: String,
    /// Patient id.
    pub patient_id: Uuid,
    /// Given name.
    pub given_name: String,
    /// Family name.
    pub family_name: String,
    /// Date of birth, `YYYY-MM-DD`.
    pub birth_date: String,
    /// Administrative sex.
    pub sex: Sex,
    /// E-mail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Phone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// Optimistic-concurrency version.
    pub version: u64,
    /// Creation time.
    pub created_at: String,
    /// Last change time.
    pub updated_at: String,
}

const DATE: &[time::format_description::FormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]");

impl PatientItem {
    /// The stored form of a date of birth.
    pub fn format_date(date: Date) -> String {
        date.format(DATE).expect("a date formats")
    }
}

impl From<&Patient> for PatientItem {
    fn from(p: &Patient) -> Self {
        Self {
            pk: keys::patient_pk(p.id),
            sk: keys::PATIENT_PROFILE_SK.to_owned(),
            entity: entity::PATIENT.to_owned(),
            patient_id: p.id,
            given_name: p.given_name.clone(),
            family_name: p.family_name.clone(),
            birth_date: Self::format_date(p.birth_date),
            sex: p.sex,
            email: p.email.clone(),
            phone: p.phone.clone(),
            version: p.version,
            created_at: p.created_at.clone(),
            updated_at: p.updated_at.clone(),
        }
    }
}

impl TryFrom<PatientItem> for Patient {
    type Error = StoreError;

    fn try_from(item: PatientItem) -> Result<Self, StoreError> {
        let birth_date = Date::parse(&item.birth_date, DATE)
            .map_err(|e| StoreError::Corrupt(format!("patient {}: birthDate: {e}", item.patient_id)))?;
        Ok(Self {
            id: item.patient_id,
            given_name: item.given_name,
            family_name: item.family_name,
            birth_date,
            sex: item.sex,
            email: item.email,
            phone: item.phone,
            version: item.version,
            created_at: item.created_at,
            updated_at: item.updated_at,
        })
    }
}

/// A test type version. Stored twice: as the current entry of the catalog (`CATALOG` / `TESTTYPE#<code>`,
/// overwritten by each new version) and as an immutable version (`TESTTYPE#<code>` / `VERSION#<n>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TestTypeItem {
    /// `CATALOG` or `TESTTYPE#<code>`.
    #[serde(rename = "PK")]
    pub pk: String,
    /// `TESTTYPE#<code>` or `VERSION#<n>`.
    #[serde(rename = "SK")]
    pub sk: String,
    /// [`entity::CATALOG_ENTRY`] or [`entity::TEST_TYPE_VERSION`].
    pub entity: String,
    /// Test type code.
    pub code: String,
    /// Version number.
    pub version: u32,
    /// The definition, as a nested map.
    pub definition: TestTypeDefinition,
    /// When this version was created.
    pub created_at: String,
}

impl TestTypeItem {
    /// The catalog entry for `test_type`.
    pub fn catalog_entry(test_type: &TestType) -> Self {
        Self::new(
            test_type,
            keys::CATALOG_PK.to_owned(),
            keys::catalog_sk(&test_type.definition.code),
            entity::CATALOG_ENTRY,
        )
    }

    /// The immutable version item for `test_type`.
    pub fn version(test_type: &TestType) -> Self {
        let code = &test_type.definition.code;
        Self::new(
            test_type,
            keys::test_type_pk(code),
            keys::test_type_version_sk(test_type.version),
            entity::TEST_TYPE_VERSION,
        )
    }

    fn new(test_type: &TestType, pk: String, sk: String, entity: &str) -> Self {
        Self {
            pk,
            sk,
            entity: entity.to_owned(),
            code: test_type.definition.code.clone(),
            version: test_type.version,
            definition: test_type.definition.clone(),
            created_at: test_type.created_at.clone(),
        }
    }
}

impl From<TestTypeItem> for TestType {
    fn from(item: TestTypeItem) -> Self {
        Self {
            version: item.version,
            definition: item.definition,
            created_at: item.created_at,
        }
    }
}

/// An applied migration: `MIGRATIONS` / `MIGRATION#<version>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MigrationItem {
    /// `MIGRATIONS`.
    #[serde(rename = "PK")]
    pub pk: String,
    /// `MIGRATION#<version>`.
    #[serde(rename = "SK")]
    pub sk: String,
    /// [`entity::MIGRATION`].
    pub entity: String,
    /// Version number (the file name's prefix).
    pub version: u32,
    /// File name.
    pub name: String,
    /// SHA-256 of the file, hex.
    pub checksum: String,
    /// When it was applied.
    pub applied_at: String,
    /// Who applied it (the lease owner).
    pub applied_by: String,
}

/// The migration lease: `MIGRATIONS` / `LEASE`; whoever holds an unexpired lease may apply migrations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MigrationLeaseItem {
    /// `MIGRATIONS`.
    #[serde(rename = "PK")]
    pub pk: String,
    /// `LEASE`.
    #[serde(rename = "SK")]
    pub sk: String,
    /// [`entity::MIGRATION_LEASE`].
    pub entity: String,
    /// Random id of the holder.
    pub owner: String,
    /// Epoch seconds after which the lease is free (also the TTL attribute).
    pub expires_at: i64,
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;
    use crate::{
        domain::test_type::{Analyte, Range},
        store::{Item, from_item, to_item},
    };

    fn round_trip<T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(value: &T) -> Item {
        let item: Item = to_item(value).unwrap();
        let back: T = from_item(item.clone()).unwrap();
        assert_eq!(&back, value);
        item
    }

    #[test]
    fn patient_item_round_trips_and_omits_absent_fields() {
        let patient = Patient {
            id: Uuid::now_v7(),
            given_name: "Ada".into(),
            family_name: "Lovelace".into(),
            birth_date: date!(1815 - 12 - 10),
            sex: Sex::Female,
            email: None,
            phone: Some("+44 20 7946 0000".into()),
            version: 3,
            created_at: "2026-11-28T07:00:00.000Z".into(),
            updated_at: "2026-11-28T08:00:00.000Z".into(),
        };
        let item = round_trip(&PatientItem::from(&patient));
        assert_eq!(item["PK"].as_s().unwrap(), &keys::patient_pk(patient.id));
        assert_eq!(item["birthDate"].as_s().unwrap(), "1815-12-10");
        assert!(!item.contains_key("email"));
        let back = Patient::try_from(from_item::<PatientItem>(item).unwrap()).unwrap();
        assert_eq!(back, patient);
    }

    #[test]
    fn test_type_items_round_trip_in_both_places() {
        let tt = TestType {
            version: 2,
            definition: TestTypeDefinition {
                code: "TSH".into(),
                name: "Thyroid stimulating hormone".into(),
                category: "endocrinology".into(),
                loinc: "3016-3".into(),
                specimen: "serum".into(),
                preparation: None,
                duration_minutes: 5,
                price_cents: 1900,
                currency: "EUR".into(),
                active: true,
                analytes: vec![Analyte {
                    code: "TSH".into(),
                    name: "Thyrotropin".into(),
                    loinc: "3016-3".into(),
                    unit: "m[IU]/L".into(),
                    reference_range: Range {
                        low: Some(0.4),
                        high: Some(4.0),
                    },
                    critical_range: None,
                }],
            },
            created_at: "2026-11-28T07:00:00.000Z".into(),
        };
        let entry = round_trip(&TestTypeItem::catalog_entry(&tt));
        assert_eq!(entry["SK"].as_s().unwrap(), "TESTTYPE#TSH");
        let version = round_trip(&TestTypeItem::version(&tt));
        assert_eq!(version["PK"].as_s().unwrap(), "TESTTYPE#TSH");
        assert_eq!(version["SK"].as_s().unwrap(), "VERSION#000002");
        assert_eq!(TestType::from(from_item::<TestTypeItem>(version).unwrap()), tt);
    }

    #[test]
    fn migration_items_round_trip() {
        round_trip(&MigrationItem {
            pk: keys::MIGRATIONS_PK.into(),
            sk: keys::migration_sk(1),
            entity: entity::MIGRATION.into(),
            version: 1,
            name: "0001_test_catalog.json".into(),
            checksum: "ab".into(),
            applied_at: "t".into(),
            applied_by: "me".into(),
        });
        let lease = round_trip(&MigrationLeaseItem {
            pk: keys::MIGRATIONS_PK.into(),
            sk: keys::MIGRATION_LEASE_SK.into(),
            entity: entity::MIGRATION_LEASE.into(),
            owner: "me".into(),
            expires_at: 1_800_000_000,
        });
        assert_eq!(lease[keys::EXPIRES_AT].as_n().unwrap(), "1800000000");
    }
}
