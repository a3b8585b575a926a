//! Persistence structs: the exact shape of each item type in the table, converted with serde_dynamo.
//!
//! Each struct carries its key attributes (built by [`super::keys`]) and an `entity` discriminator, and
//! converts to and from its domain type at the store boundary. Index attributes are `Option`s: an item
//! carries an index's keys only while it should appear in that index (sparse indexes). Everything here is
//! private to the store: callers see domain types only.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{StoreError, keys};
use crate::domain::{
    audit::AuditEvent,
    booking::{
        BookedTest, Booking, BookingStatus, BookingSummary, LabResult, Note, Observation, SlotStart, TestAddress,
        TestRef, TestStatus,
    },
    event::{DomainEvent, EventType},
    idempotency::{IdempotencyKey, IdempotencyRecord},
    patient::{Identifier, LinkedIdentity, Patient, Sex, search_name},
    site::{DayRule, Site, SiteDefinition},
    test_type::{TestType, TestTypeDefinition},
    timefmt,
};

/// Attribute names that expressions name, exactly as serde writes them for the structs below (a unit test
/// in `store::bookings` checks every name an expression uses against the item it targets).
pub(crate) mod attr {
    /// The item's kind (every item).
    pub(crate) const ENTITY: &str = "entity";
    /// State of a booking or test.
    pub(crate) const STATUS: &str = "status";
    /// Optimistic-concurrency version.
    pub(crate) const VERSION: &str = "version";
    /// Last change of a booking.
    pub(crate) const UPDATED_AT: &str = "updatedAt";
    /// Slot start of a slot item.
    pub(crate) const SLOT_START: &str = "slotStart";
    /// Holder of the migration lease.
    pub(crate) const OWNER: &str = "owner";
    /// The booking a patient's slot hold belongs to.
    pub(crate) const BOOKING_ID: &str = "bookingId";
    /// A place's booking ([`super::PlaceItem`]).
    pub(crate) const PLACE_BOOKING: &str = "booking";
    /// A place's hold ([`super::PlaceItem`]).
    pub(crate) const PLACE_HOLD: &str = "hold";
    /// Until when a place's hold holds it, epoch seconds ([`super::PlaceItem`]).
    pub(crate) const PLACE_UNTIL: &str = "until";
    /// A booking's site.
    pub(crate) const SITE: &str = "site";
    /// A booking's place in its slot.
    pub(crate) const PLACE: &str = "place";
    /// A booking's local slot start.
    pub(crate) const LOCAL_SLOT_START: &str = "localSlotStart";
    /// The hold a patient's hold marker belongs to.
    pub(crate) const HOLD_ID: &str = "holdId";
    /// A booking made before check-in existed.
    pub(crate) const RESULTS_WITHOUT_CHECK_IN: &str = "resultsWithoutCheckIn";
    /// The last accession number given out of a counter.
    pub(crate) const LAST: &str = "last";
    /// A patient's id (the e-mail guard's).
    pub(crate) const PATIENT_ID: &str = "patientId";
    /// A patient's folded given name (the search's narrowing filter).
    pub(crate) const SEARCH_GIVEN: &str = "searchGiven";
    /// Whether a webhook is enabled ([`super::WebhookItem`]).
    pub(crate) const ENABLED: &str = "enabled";
    /// Why medbook disabled a webhook.
    pub(crate) const DISABLED_REASON: &str = "disabledReason";
    /// Since when a webhook has failed.
    pub(crate) const FAILING_SINCE: &str = "failingSince";
    /// The number of webhooks ([`super::CountItem`]).
    pub(crate) const COUNT: &str = "count";
    /// Failed attempts at an outbox entry ([`super::OutboxItem`]).
    pub(crate) const ATTEMPTS: &str = "attempts";
    /// When an outbox entry is due, epoch milliseconds.
    pub(crate) const NEXT_AT: &str = "nextAt";
    /// When an outbox entry was first tried.
    pub(crate) const FIRST_ATTEMPT_AT: &str = "firstAttemptAt";
    /// Until when a worker lease holds, epoch milliseconds ([`super::LeaseItem`]).
    pub(crate) const LEASE_UNTIL: &str = "leaseUntil";
    /// A stream shard's last relayed sequence number.
    pub(crate) const CHECKPOINT: &str = "checkpoint";
    /// Whether a closed stream shard is relayed to its end.
    pub(crate) const FINISHED: &str = "finished";
}

/// Entity discriminators stored in the `entity` attribute.
pub(crate) mod entity {
    /// A patient's profile.
    pub(crate) const PATIENT: &str = "Patient";
    /// The guard of one e-mail address.
    pub(crate) const EMAIL_GUARD: &str = "EmailGuard";
    /// A domain event.
    pub(crate) const EVENT: &str = "Event";
    /// The guard of one external identifier (system, value).
    pub(crate) const IDENTIFIER_GUARD: &str = "IdentifierGuard";
    /// The link from a sign-in identity (issuer, subject) to its patient.
    pub(crate) const IDENTITY_LINK: &str = "IdentityLink";
    /// The copy of an identity link in its patient's partition.
    pub(crate) const PATIENT_IDENTITY: &str = "PatientIdentity";
    /// The current version of a test type, in the catalog partition.
    pub(crate) const CATALOG_ENTRY: &str = "CatalogEntry";
    /// One version of a test type.
    pub(crate) const TEST_TYPE_VERSION: &str = "TestTypeVersion";
    /// An applied migration.
    pub(crate) const MIGRATION: &str = "Migration";
    /// The migration lease.
    pub(crate) const MIGRATION_LEASE: &str = "MigrationLease";
    /// A booking.
    pub(crate) const BOOKING: &str = "Booking";
    /// A booked test.
    pub(crate) const TEST: &str = "Test";
    /// A test's current result.
    pub(crate) const RESULT: &str = "Result";
    /// A kept result revision.
    pub(crate) const RESULT_REVISION: &str = "ResultRevision";
    /// A doctor's note.
    pub(crate) const NOTE: &str = "Note";
    /// One verified value in a patient's series of its LOINC code.
    pub(crate) const OBSERVATION: &str = "Observation";
    /// An idempotency record.
    pub(crate) const IDEMPOTENCY: &str = "Idempotency";
    /// A patient's hold on one slot start.
    pub(crate) const PATIENT_SLOT: &str = "PatientSlot";
    /// A site.
    pub(crate) const SITE: &str = "Site";
    /// A day rule of a site (in the day's partition, and its copy in the site's rule list).
    pub(crate) const DAY_RULE: &str = "DayRule";
    /// A slot of a site's day, with its places.
    pub(crate) const SLOT: &str = "Slot";
    /// A hold on a place.
    pub(crate) const HOLD: &str = "Hold";
    /// A patient's live hold at a site.
    pub(crate) const PATIENT_HOLD: &str = "PatientHold";
    /// A site's accession counter of one day.
    pub(crate) const ACCESSION: &str = "Accession";
    /// An audit event.
    pub(crate) const AUDIT: &str = "AuditEvent";
    /// A webhook endpoint.
    pub(crate) const WEBHOOK: &str = "Webhook";
    /// The number of webhooks.
    pub(crate) const WEBHOOK_COUNT: &str = "WebhookCount";
    /// An event still to deliver to one webhook.
    pub(crate) const OUTBOX: &str = "OutboxEntry";
    /// One delivery attempt.
    pub(crate) const ATTEMPT: &str = "DeliveryAttempt";
    /// A background worker's lease.
    pub(crate) const LEASE: &str = "Lease";
    /// An open critical-value alert.
    pub(crate) const ALERT: &str = "Alert";
    /// A booking reminder, due.
    pub(crate) const REMINDER: &str = "Reminder";
    /// An acknowledged alert, in its patient's partition.
    pub(crate) const ALERT_ACK: &str = "AlertAcknowledgement";
    /// When a booking's last "results ready" e-mail went out.
    pub(crate) const MAILED: &str = "Mailed";
}

/// A patient's profile: `PATIENT#<id>` / `PROFILE`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PatientItem {
    /// `PATIENT#<id>`.
    #[serde(rename = "PK")]
    pub(crate) pk: String,
    /// `PROFILE`.
    #[serde(rename = "SK")]
    pub(crate) sk: String,
    /// [`entity::PATIENT`].
    pub(crate) entity: String,
    /// Patient id.
    pub(crate) patient_id: Uuid,
    /// Given name.
    pub(crate) given_name: String,
    /// Family name.
    pub(crate) family_name: String,
    /// Date of birth, `YYYY-MM-DD`.
    pub(crate) birth_date: String,
    /// Administrative sex.
    pub(crate) sex: Sex,
    /// E-mail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) email: Option<String>,
    /// Phone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) phone: Option<String>,
    /// Optimistic-concurrency version.
    pub(crate) version: u64,
    /// Creation time.
    pub(crate) created_at: String,
    /// Last change time.
    pub(crate) updated_at: String,
    /// Identifiers other systems give the patient (absent when none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) identifiers: Vec<Identifier>,
    /// `BIRTH#<YYYY-MM-DD>`: the search index's partition (absent on profiles written before the index).
    #[serde(rename = "GSI4PK", default, skip_serializing_if = "Option::is_none")]
    pub(crate) gsi4_pk: Option<String>,
    /// `<folded family>#<folded given>#<id>`.
    #[serde(rename = "GSI4SK", default, skip_serializing_if = "Option::is_none")]
    pub(crate) gsi4_sk: Option<String>,
    /// The folded given name, which a search narrows by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) search_given: Option<String>,
}

/// A uniqueness guard naming the patient who holds a value, since DynamoDB has no unique constraint on an
/// attribute. Written (`attribute_not_exists`, or this patient's already) and released in the transaction of
/// every patient write that takes or gives up the value, so two patients never share one; its key is also the
/// lookup by that value.
/// - an e-mail address: `EMAIL#<normalised address>` / `EMAIL`;
/// - an external identifier: `IDENTIFIER#<system>#<value>` / `IDENTIFIER`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GuardItem {
    /// The guarded value's partition.
    #[serde(rename = "PK")]
    pub(crate) pk: String,
    /// `EMAIL` or `IDENTIFIER`.
    #[serde(rename = "SK")]
    pub(crate) sk: String,
    /// [`entity::EMAIL_GUARD`] or [`entity::IDENTIFIER_GUARD`].
    pub(crate) entity: String,
    /// The patient who holds the value.
    pub(crate) patient_id: Uuid,
}

impl GuardItem {
    /// The guard of the e-mail address `normalised` for `patient_id`.
    pub(crate) fn email(normalised: &str, patient_id: Uuid) -> Self {
        Self {
            pk: keys::email_guard_pk(normalised),
            sk: keys::EMAIL_GUARD_SK.to_owned(),
            entity: entity::EMAIL_GUARD.to_owned(),
            patient_id,
        }
    }

    /// The guard of `identifier` for `patient_id`.
    pub(crate) fn identifier(identifier: &Identifier, patient_id: Uuid) -> Self {
        Self {
            pk: keys::identifier_guard_pk(&identifier.system, &identifier.value),
            sk: keys::IDENTIFIER_GUARD_SK.to_owned(),
            entity: entity::IDENTIFIER_GUARD.to_owned(),
            patient_id,
        }
    }
}

/// The link of one sign-in identity to its patient: `IDENTITY#<issuer>#<sub>` / `IDENTITY`. Written with
/// `attribute_not_exists`, so an identity links to at most one patient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct IdentityLinkItem {
    /// `IDENTITY#<issuer>#<sub>`.
    #[serde(rename = "PK")]
    pub(crate) pk: String,
    /// `IDENTITY`.
    #[serde(rename = "SK")]
    pub(crate) sk: String,
    /// [`entity::IDENTITY_LINK`].
    pub(crate) entity: String,
    /// The provider.
    pub(crate) issuer: String,
    /// The provider's subject.
    pub(crate) sub: String,
    /// The patient this identity is.
    pub(crate) patient_id: Uuid,
    /// When it was linked.
    pub(crate) linked_at: String,
    /// Who linked it (`self` for a self-registration, else the staff member's subject).
    pub(crate) linked_by: String,
}

impl IdentityLinkItem {
    /// The link of `link`'s identity to `patient_id`.
    pub(crate) fn new(link: &LinkedIdentity, patient_id: Uuid) -> Self {
        Self {
            pk: keys::identity_pk(&link.issuer, &link.sub),
            sk: keys::IDENTITY_SK.to_owned(),
            entity: entity::IDENTITY_LINK.to_owned(),
            issuer: link.issuer.clone(),
            sub: link.sub.clone(),
            patient_id,
            linked_at: link.linked_at.clone(),
            linked_by: link.linked_by.clone(),
        }
    }

    /// The copy of this link in its patient's partition (same attributes, the patient's key).
    pub(crate) fn patient_copy(&self) -> Self {
        Self {
            pk: keys::patient_pk(self.patient_id),
            sk: keys::patient_identity_sk(&self.issuer, &self.sub),
            entity: entity::PATIENT_IDENTITY.to_owned(),
            ..self.clone()
        }
    }
}

impl From<IdentityLinkItem> for LinkedIdentity {
    fn from(item: IdentityLinkItem) -> Self {
        Self {
            issuer: item.issuer,
            sub: item.sub,
            linked_at: item.linked_at,
            linked_by: item.linked_by,
        }
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
            birth_date: timefmt::date(p.birth_date),
            sex: p.sex,
            email: p.email.clone(),
            phone: p.phone.clone(),
            identifiers: p.identifiers.clone(),
            version: p.version,
            created_at: p.created_at.clone(),
            updated_at: p.updated_at.clone(),
            gsi4_pk: Some(keys::patients_by_name_pk(p.birth_date)),
            gsi4_sk: Some(keys::patients_by_name_sk(
                &search_name(&p.family_name),
                &search_name(&p.given_name),
                p.id,
            )),
            search_given: Some(search_name(&p.given_name)),
        }
    }
}

impl TryFrom<PatientItem> for Patient {
    type Error = StoreError;

    fn try_from(item: PatientItem) -> Result<Self, StoreError> {
        let birth_date = timefmt::parse_date(&item.birth_date)
            .ok_or_else(|| StoreError::Corrupt(format!("patient {}: birthDate", item.patient_id)))?;
        Ok(Self {
            id: item.patient_id,
            given_name: item.given_name,
            family_name: item.family_name,
            birth_date,
            sex: item.sex,
            email: item.email,
            phone: item.phone,
            identifiers: item.identifiers,
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
pub(crate) struct TestTypeItem {
    /// `CATALOG` or `TESTTYPE#<code>`.
    #[serde(rename = "PK")]
    pub(crate) pk: String,
    /// `TESTTYPE#<code>` or `VERSION#<n>`.
    #[serde(rename = "SK")]
    pub(crate) sk: String,
    /// [`entity::CATALOG_ENTRY`] or [`entity::TEST_TYPE_VERSION`].
    pub(crate) entity: String,
    /// Test type code.
    pub(crate) code: String,
    /// Version number.
    pub(crate) version: u32,
    /// The definition, as a nested map.
    pub(crate) definition: TestTypeDefinition,
    /// When this version was created.
    pub(crate) created_at: String,
}

impl TestTypeItem {
    /// The catalog entry for `test_type`.
    pub(crate) fn catalog_entry(test_type: &TestType) -> Self {
        Self::new(
            test_type,
            keys::CATALOG_PK.to_owned(),
            keys::catalog_sk(&test_type.definition.code),
            entity::CATALOG_ENTRY,
        )
    }

    /// The immutable version item for `test_type`.
    pub(crate) fn version(test_type: &TestType) -> Self {
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
pub(crate) struct MigrationItem {
    /// `MIGRATIONS`.
    #[serde(rename = "PK")]
    pub(crate) pk: String,
    /// `MIGRATION#<version>`.
    #[serde(rename = "SK")]
    pub(crate) sk: String,
    /// [`entity::MIGRATION`].
    pub(crate) entity: String,
    /// Version number (the file name's prefix).
    pub(crate) version: u32,
    /// File name.
    pub(crate) name: String,
    /// SHA-256 of the file, hex.
    pub(crate) checksum: String,
    /// When it was applied.
    pub(crate) applied_at: String,
    /// Who applied it (the lease owner).
    pub(crate) applied_by: String,
}

/// The migration lease: `MIGRATIONS` / `LEASE`; whoever holds an unexpired lease may apply migrations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MigrationLeaseItem {
    /// `MIGRATIONS`.
    #[serde(rename = "PK")]
    pub(crate) pk: String,
    /// `LEASE`.
    #[serde(rename = "SK")]
    pub(crate) sk: String,
    /// [`entity::MIGRATION_LEASE`].
    pub(crate) entity: String,
    /// Random id of the holder.
    pub(crate) owner: String,
    /// Epoch seconds after which the lease is free (also the TTL attribute).
    pub(crate) expires_at: i64,
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;
    use crate::{
        domain::{
            booking::{ResultStatus, ResultValue, Review},
            test_type::{Analyte, Flag, Range},
        },
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
            identifiers: Vec::new(),
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
                release: Some(crate::domain::release::ReleasePolicy::OnFinalAfter { hours: 72 }),
                analytes: vec![Analyte {
                    code: "TSH".into(),
                    name: "Thyrotropin".into(),
                    loinc: "3016-3".into(),
                    unit: "m[IU]/L".into(),
                    reference_range: Some(Range {
                        low: Some(0.4),
                        high: Some(4.0),
                    }),
                    reference_ranges: Vec::new(),
                    critical_range: None,
                    delta_check: None,
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

    fn booking() -> Booking {
        let id = Uuid::now_v7();
        Booking {
            id,
            patient_id: Uuid::now_v7(),
            site: "MAIN".into(),
            slot_start: SlotStart::new(time::macros::datetime!(2026-12-01 07:15 UTC)),
            local_slot_start: "2026-12-01T08:15:00+01:00".into(),
            place: 2,
            rescheduled_from: vec![crate::domain::booking::Rescheduled {
                site: "MAIN".into(),
                slot_start: SlotStart::new(time::macros::datetime!(2026-11-30 07:15 UTC)),
                local_slot_start: "2026-11-30T08:15:00+01:00".into(),
                moved_at: "2026-11-28T08:00:00.000Z".into(),
            }],
            checked_in_at: Some("2026-12-01T07:10:00.000Z".into()),
            accession: Some("MAIN-20261201-0001".into()),
            results_without_check_in: true,
            status: BookingStatus::Booked,
            tests: vec![BookedTest {
                id: Uuid::now_v7(),
                test_type_code: "CBC".into(),
                test_type_version: 2,
                name: "Complete blood count".into(),
                status: TestStatus::Ordered,
            }],
            note: Some("fasting".into()),
            version: 1,
            created_at: "2026-11-28T07:00:00.000Z".into(),
            updated_at: "2026-11-28T07:00:00.000Z".into(),
        }
    }

    fn result(review: bool) -> LabResult {
        LabResult {
            status: if review {
                ResultStatus::Final
            } else {
                ResultStatus::Preliminary
            },
            revision: 1,
            version: 2,
            values: vec![ResultValue {
                analyte: "HGB".into(),
                value: 6.5,
                unit: "g/dL".into(),
                flag: Flag::LL,
                reference_range: None,
                delta: None,
            }],
            critical: true,
            delta_flag: false,
            performed_at: "2026-12-01T08:00:00Z".into(),
            collected_at: None,
            comment: None,
            recorded_at: "2026-12-01T09:00:00.000Z".into(),
            recorded_by: "lab-1".into(),
            verification: None,
            review: review.then(|| Review {
                reviewer_id: "doc-1".into(),
                reviewed_at: "2026-12-01T10:00:00.000Z".into(),
                conclusion: "anaemia".into(),
            }),
            hold: None,
            hold_lifted_at: None,
            release: None,
            corrects: None,
        }
    }

    fn verified(review: bool) -> LabResult {
        LabResult {
            verification: Some(crate::domain::booking::Verification {
                verifier_id: "lab-2".into(),
                verified_at: "2026-12-01T09:30:00.000Z".into(),
                legacy: false,
            }),
            ..result(review)
        }
    }

    #[test]
    fn booking_and_test_items_round_trip_with_their_index_keys() {
        let b = booking();
        let item = round_trip(&BookingItem::from(&b));
        assert_eq!(
            item["LSI1SK"].as_s().unwrap(),
            &format!("2026-12-01T07:15:00Z#{}", b.id)
        );
        assert_eq!(
            item["GSI3PK"].as_s().unwrap(),
            "DAY#MAIN#2026-12-01",
            "the site's local day"
        );
        let back = from_item::<BookingItem>(item)
            .unwrap()
            .into_booking(|_| None, TestStatus::Ordered);
        assert_eq!(back, b);

        let test = round_trip(&TestItem::new(&b, &b.tests[0]));
        assert_eq!(test["GSI1PK"].as_s().unwrap(), "TESTTYPE#CBC#2026-12");
        assert_eq!(from_item::<TestItem>(test).unwrap().test(), b.tests[0]);
    }

    #[test]
    fn a_result_is_in_the_verification_queue_then_the_worklist_then_in_neither() {
        let at = TestAddress {
            patient_id: Uuid::now_v7(),
            booking_id: Uuid::now_v7(),
            test_id: Uuid::now_v7(),
        };
        let recorded = round_trip(&ResultItem::new(at, "CBC", &result(false)));
        assert_eq!(recorded["GSI2PK"].as_s().unwrap(), "VERIFY");
        assert!(
            recorded["GSI2SK"]
                .as_s()
                .unwrap()
                .starts_with("0#2026-12-01T09:00:00.000Z#")
        );
        let waiting = round_trip(&ResultItem::new(at, "CBC", &verified(false)));
        assert_eq!(waiting["GSI2PK"].as_s().unwrap(), "WORKLIST");
        assert!(
            waiting["GSI2SK"]
                .as_s()
                .unwrap()
                .starts_with("0#2026-12-01T09:30:00.000Z#"),
            "oldest by verification"
        );
        let reviewed = round_trip(&ResultItem::new(at, "CBC", &verified(true)));
        assert!(!reviewed.contains_key("GSI2PK") && !reviewed.contains_key("GSI2SK"));
        let revision = round_trip(&ResultRevisionItem::new(at, &result(true)));
        assert!(revision["SK"].as_s().unwrap().ends_with("#000001"));
    }

    #[test]
    fn note_slot_and_idempotency_items_round_trip() {
        round_trip(&NoteItem {
            pk: "p".into(),
            sk: "s".into(),
            entity: entity::NOTE.into(),
            test_id: Uuid::now_v7(),
            note: Note {
                id: Uuid::now_v7(),
                author_id: "doc".into(),
                text: "ok".into(),
                visibility: crate::domain::booking::NoteVisibility::Patient,
                created_at: "t".into(),
            },
        });
        let slot = round_trip(&SlotItem {
            pk: "p".into(),
            sk: "s".into(),
            entity: entity::SLOT.into(),
            slot_start: booking().slot_start,
            version: 2,
            places: [
                (
                    keys::place_attribute(0),
                    PlaceItem {
                        booking: Some(Uuid::nil()),
                        hold: None,
                        until: None,
                        patient: None,
                    },
                ),
                (
                    keys::place_attribute(3),
                    PlaceItem {
                        booking: None,
                        hold: Some(Uuid::nil()),
                        until: Some(9),
                        patient: None,
                    },
                ),
            ]
            .into(),
        });
        assert_eq!(slot["P3"].as_m().unwrap()[attr::PLACE_UNTIL].as_n().unwrap(), "9");
        assert!(slot["P0"].as_m().unwrap().contains_key(attr::PLACE_BOOKING));
        round_trip(&IdempotencyItem {
            pk: "p".into(),
            sk: "s".into(),
            entity: entity::IDEMPOTENCY.into(),
            request_hash: "h".into(),
            booking: BookingItem::from(&booking()),
            expires_at: 1,
        });
    }

    #[test]
    fn an_audit_item_lives_in_its_patients_month_and_expires_after_the_retention() {
        let draft = crate::domain::audit::AuditDraft {
            actor: crate::domain::audit::Actor {
                sub: "lab-1".into(),
                role: "lab".into(),
            },
            action: "GET /v1/patients/{patientId}".into(),
            resource: "/v1/patients/x".into(),
            outcome: 200,
            request_id: "r".into(),
        };
        let patient = Uuid::now_v7();
        let event = draft.event(patient);
        let item = round_trip(&AuditItem::new(&event, 10));
        let month = keys::Month::of_instant(&event.at).unwrap();
        assert_eq!(item["PK"].as_s().unwrap(), &keys::audit_pk(patient, month));
        let expires: i64 = item["expiresAt"].as_n().unwrap().parse().unwrap();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        assert!((now + 10 * 86_400 - expires).abs() < 5);
        assert_eq!(from_item::<AuditItem>(item).unwrap().into_event(), event);
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

/// A booking: `PATIENT#<id>` / `BOOKING#<id>`, in the LSI (slot order) and the day GSI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BookingItem {
    /// `PATIENT#<patientId>`.
    #[serde(rename = "PK")]
    pub(crate) pk: String,
    /// `BOOKING#<bookingId>`.
    #[serde(rename = "SK")]
    pub(crate) sk: String,
    /// `<slotStart>#<bookingId>`.
    #[serde(rename = "LSI1SK")]
    pub(crate) lsi1_sk: String,
    /// `DAY#<site>#<localDate>`.
    #[serde(rename = "GSI3PK")]
    pub(crate) gsi3_pk: String,
    /// `<slotStart>#<bookingId>`.
    #[serde(rename = "GSI3SK")]
    pub(crate) gsi3_sk: String,
    /// [`entity::BOOKING`].
    pub(crate) entity: String,
    /// Booking id.
    pub(crate) booking_id: Uuid,
    /// Patient id.
    pub(crate) patient_id: Uuid,
    /// Site code (absent on bookings from before sites, until the sites migration sets it).
    #[serde(default)]
    pub(crate) site: Option<String>,
    /// Slot start.
    pub(crate) slot_start: SlotStart,
    /// The slot start in the site's local time.
    #[serde(default)]
    pub(crate) local_slot_start: Option<String>,
    /// The place taken in the slot.
    #[serde(default)]
    pub(crate) place: Option<u32>,
    /// Where it was before each reschedule.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) rescheduled_from: Vec<crate::domain::booking::Rescheduled>,
    /// When the lab checked the patient in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) checked_in_at: Option<String>,
    /// The accession number given at check-in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) accession: Option<String>,
    /// Made before check-in existed: results without check-in (set by the sites migration only).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) results_without_check_in: bool,
    /// State.
    pub(crate) status: BookingStatus,
    /// The booked tests.
    pub(crate) tests: Vec<TestRef>,
    /// Booker's note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) note: Option<String>,
    /// Version.
    pub(crate) version: u64,
    /// Creation time.
    pub(crate) created_at: String,
    /// Last change.
    pub(crate) updated_at: String,
}

impl From<&Booking> for BookingItem {
    fn from(b: &Booking) -> Self {
        Self {
            pk: keys::patient_pk(b.patient_id),
            sk: keys::booking_sk(b.id),
            lsi1_sk: keys::booking_by_slot_sk(b.slot_start, b.id),
            gsi3_pk: keys::bookings_by_day_pk(&b.site, b.local_date()),
            gsi3_sk: keys::bookings_by_day_sk(b.slot_start, b.id),
            entity: entity::BOOKING.to_owned(),
            booking_id: b.id,
            patient_id: b.patient_id,
            site: Some(b.site.clone()),
            slot_start: b.slot_start,
            local_slot_start: Some(b.local_slot_start.clone()),
            place: Some(b.place),
            rescheduled_from: b.rescheduled_from.clone(),
            checked_in_at: b.checked_in_at.clone(),
            accession: b.accession.clone(),
            results_without_check_in: b.results_without_check_in,
            status: b.status,
            tests: b
                .tests
                .iter()
                .map(|t| TestRef {
                    id: t.id,
                    test_type_code: t.test_type_code.clone(),
                    test_type_version: t.test_type_version,
                    name: t.name.clone(),
                })
                .collect(),
            note: b.note.clone(),
            version: b.version,
            created_at: b.created_at.clone(),
            updated_at: b.updated_at.clone(),
        }
    }
}

impl BookingItem {
    /// The local slot start; for a booking from before sites (all in UTC), the slot start at `+00:00`.
    fn local_start(&self) -> String {
        self.local_slot_start
            .clone()
            .unwrap_or_else(|| crate::domain::site::local_text(self.slot_start.at(), 0))
    }

    /// The booking as lists show it.
    pub(crate) fn into_summary(self) -> BookingSummary {
        BookingSummary {
            id: self.booking_id,
            patient_id: self.patient_id,
            local_slot_start: self.local_start(),
            site: self
                .site
                .unwrap_or_else(|| crate::domain::site::DEFAULT_SITE.to_owned()),
            rescheduled_from: self.rescheduled_from,
            checked_in_at: self.checked_in_at,
            accession: self.accession,
            slot_start: self.slot_start,
            status: self.status,
            tests: self.tests,
            note: self.note,
            version: self.version,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }

    /// The booking, with each test's status taken from `status_of` (the test items), or `fallback`.
    pub(crate) fn into_booking(self, status_of: impl Fn(Uuid) -> Option<TestStatus>, fallback: TestStatus) -> Booking {
        Booking {
            id: self.booking_id,
            patient_id: self.patient_id,
            local_slot_start: self.local_start(),
            site: self
                .site
                .unwrap_or_else(|| crate::domain::site::DEFAULT_SITE.to_owned()),
            place: self.place.unwrap_or_default(),
            rescheduled_from: self.rescheduled_from,
            checked_in_at: self.checked_in_at,
            accession: self.accession,
            results_without_check_in: self.results_without_check_in,
            slot_start: self.slot_start,
            status: self.status,
            tests: self
                .tests
                .into_iter()
                .map(|t| BookedTest {
                    status: status_of(t.id).unwrap_or(fallback),
                    id: t.id,
                    test_type_code: t.test_type_code,
                    test_type_version: t.test_type_version,
                    name: t.name,
                })
                .collect(),
            note: self.note,
            version: self.version,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// A booked test: `PATIENT#<id>` / `BOOKING#<id>#TEST#<id>`, in the tests-by-type GSI while not cancelled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TestItem {
    /// `PATIENT#<patientId>`.
    #[serde(rename = "PK")]
    pub(crate) pk: String,
    /// `BOOKING#<bookingId>#TEST#<testId>`.
    #[serde(rename = "SK")]
    pub(crate) sk: String,
    /// `TESTTYPE#<code>#<YYYY-MM>`.
    #[serde(rename = "GSI1PK", default, skip_serializing_if = "Option::is_none")]
    pub(crate) gsi1_pk: Option<String>,
    /// `<slotStart>#<bookingId>#<testId>`.
    #[serde(rename = "GSI1SK", default, skip_serializing_if = "Option::is_none")]
    pub(crate) gsi1_sk: Option<String>,
    /// [`entity::TEST`].
    pub(crate) entity: String,
    /// Patient id.
    pub(crate) patient_id: Uuid,
    /// Booking id.
    pub(crate) booking_id: Uuid,
    /// Slot start of the booking.
    pub(crate) slot_start: SlotStart,
    /// Test id.
    pub(crate) test_id: Uuid,
    /// Test type code.
    pub(crate) test_type_code: String,
    /// Test type version booked.
    pub(crate) test_type_version: u32,
    /// Test type name at that version.
    pub(crate) name: String,
    /// State.
    pub(crate) status: TestStatus,
}

impl TestItem {
    /// The item for `test` of `booking`.
    pub(crate) fn new(booking: &Booking, test: &BookedTest) -> Self {
        let month = keys::Month::of(booking.slot_start.date());
        Self {
            pk: keys::patient_pk(booking.patient_id),
            sk: keys::test_sk(booking.id, test.id),
            gsi1_pk: Some(keys::tests_by_type_pk(&test.test_type_code, month)),
            gsi1_sk: Some(keys::tests_by_type_sk(booking.slot_start, booking.id, test.id)),
            entity: entity::TEST.to_owned(),
            patient_id: booking.patient_id,
            booking_id: booking.id,
            slot_start: booking.slot_start,
            test_id: test.id,
            test_type_code: test.test_type_code.clone(),
            test_type_version: test.test_type_version,
            name: test.name.clone(),
            status: test.status,
        }
    }

    /// The booked test.
    pub(crate) fn test(&self) -> BookedTest {
        BookedTest {
            id: self.test_id,
            test_type_code: self.test_type_code.clone(),
            test_type_version: self.test_type_version,
            name: self.name.clone(),
            status: self.status,
        }
    }
}

/// A test's current result: `…#TEST#<id>#RESULT`; in the sparse queue GSI while someone must act on it
/// (`VERIFY` until verified, then `WORKLIST` until reviewed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ResultItem {
    /// `PATIENT#<patientId>`.
    #[serde(rename = "PK")]
    pub(crate) pk: String,
    /// `BOOKING#<bookingId>#TEST#<testId>#RESULT`.
    #[serde(rename = "SK")]
    pub(crate) sk: String,
    /// `VERIFY` while awaiting verification, `WORKLIST` while awaiting review.
    #[serde(rename = "GSI2PK", default, skip_serializing_if = "Option::is_none")]
    pub(crate) gsi2_pk: Option<String>,
    /// `<rank>#<recordedAt or verifiedAt>#<testId>` while in a queue.
    #[serde(rename = "GSI2SK", default, skip_serializing_if = "Option::is_none")]
    pub(crate) gsi2_sk: Option<String>,
    /// [`entity::RESULT`].
    pub(crate) entity: String,
    /// Patient id.
    pub(crate) patient_id: Uuid,
    /// Booking id.
    pub(crate) booking_id: Uuid,
    /// Test id.
    pub(crate) test_id: Uuid,
    /// Test type code.
    pub(crate) test_type_code: String,
    /// Version of the result item (the ETag).
    pub(crate) version: u64,
    /// The result.
    pub(crate) result: LabResult,
}

impl ResultItem {
    /// The current-result item; carries the queue keys only while the result awaits verification or review.
    pub(crate) fn new(at: TestAddress, test_type_code: &str, result: &LabResult) -> Self {
        let queue = match &result.verification {
            None => Some((keys::AWAITING_VERIFICATION_PK, result.recorded_at.as_str())),
            Some(v) if result.review.is_none() => Some((keys::AWAITING_REVIEW_PK, v.verified_at.as_str())),
            Some(_) => None,
        };
        Self {
            pk: keys::patient_pk(at.patient_id),
            sk: keys::result_sk(at.booking_id, at.test_id),
            gsi2_pk: queue.map(|(pk, _)| pk.to_owned()),
            gsi2_sk: queue.map(|(_, since)| keys::awaiting_review_sk(result.critical, since, at.test_id)),
            entity: entity::RESULT.to_owned(),
            patient_id: at.patient_id,
            booking_id: at.booking_id,
            test_id: at.test_id,
            test_type_code: test_type_code.to_owned(),
            version: result.version,
            result: result.clone(),
        }
    }
}

/// A kept result revision: `RESULTREV#<bookingId>#<testId>#<revision>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ResultRevisionItem {
    /// `PATIENT#<patientId>`.
    #[serde(rename = "PK")]
    pub(crate) pk: String,
    /// `RESULTREV#<bookingId>#<testId>#<revision>`.
    #[serde(rename = "SK")]
    pub(crate) sk: String,
    /// [`entity::RESULT_REVISION`].
    pub(crate) entity: String,
    /// The revision as last written.
    pub(crate) result: LabResult,
}

impl ResultRevisionItem {
    /// The kept copy of `result`'s revision.
    pub(crate) fn new(at: TestAddress, result: &LabResult) -> Self {
        Self {
            pk: keys::patient_pk(at.patient_id),
            sk: keys::result_revision_sk(at.booking_id, at.test_id, result.revision),
            entity: entity::RESULT_REVISION.to_owned(),
            result: result.clone(),
        }
    }
}

/// One verified value in its patient's series: `PATIENT#<p>` / `OBS#<loinc>#<collectedAt>#<testId>`. Written
/// (or rewritten) with every change to a verified result, in the same transaction, so it always carries the
/// result's release state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ObservationItem {
    /// `PATIENT#<patientId>`.
    #[serde(rename = "PK")]
    pub(crate) pk: String,
    /// `OBS#<loinc>#<collectedAt>#<testId>`.
    #[serde(rename = "SK")]
    pub(crate) sk: String,
    /// [`entity::OBSERVATION`].
    pub(crate) entity: String,
    /// The observation.
    #[serde(flatten)]
    pub(crate) observation: Observation,
}

impl ObservationItem {
    /// The item of `observation` of `patient_id`.
    pub(crate) fn new(patient_id: Uuid, observation: &Observation) -> Self {
        Self {
            pk: keys::patient_pk(patient_id),
            sk: keys::observation_sk(&observation.loinc, &observation.collected_at, observation.test_id),
            entity: entity::OBSERVATION.to_owned(),
            observation: observation.clone(),
        }
    }
}

/// A doctor's note: `…#TEST#<id>#NOTE#<id>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NoteItem {
    /// `PATIENT#<patientId>`.
    #[serde(rename = "PK")]
    pub(crate) pk: String,
    /// `BOOKING#<bookingId>#TEST#<testId>#NOTE#<noteId>`.
    #[serde(rename = "SK")]
    pub(crate) sk: String,
    /// [`entity::NOTE`].
    pub(crate) entity: String,
    /// Test id.
    pub(crate) test_id: Uuid,
    /// The note.
    pub(crate) note: Note,
}

/// Who has one place of a slot: a booking (for good), or a hold until `until`. A hold past `until` is a free
/// place, whether or not anything has removed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PlaceItem {
    /// The booking that has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) booking: Option<Uuid>,
    /// The hold that has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) hold: Option<Uuid>,
    /// Epoch seconds until which the hold has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) until: Option<i64>,
    /// For whom the hold is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) patient: Option<Uuid>,
}

/// A slot of a site's day: `SITEDAY#<site>#<date>` / `SLOT#<start>`, its places as attributes `P0`, `P1`, …
/// (written with UpdateItem, one place per action).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SlotItem {
    /// `SITEDAY#<site>#<date>`.
    #[serde(rename = "PK")]
    pub(crate) pk: String,
    /// `SLOT#<start>`.
    #[serde(rename = "SK")]
    pub(crate) sk: String,
    /// [`entity::SLOT`].
    pub(crate) entity: String,
    /// Slot start.
    pub(crate) slot_start: SlotStart,
    /// +1 on every place taken: a writer on a slot with places above a lowered capacity conditions on it.
    #[serde(default)]
    pub(crate) version: u64,
    /// The taken places, by attribute name (`P<index>`).
    #[serde(flatten)]
    pub(crate) places: std::collections::BTreeMap<String, PlaceItem>,
}

/// A site: `SITES` / `SITE#<code>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SiteItem {
    /// `SITES`.
    #[serde(rename = "PK")]
    pub(crate) pk: String,
    /// `SITE#<code>`.
    #[serde(rename = "SK")]
    pub(crate) sk: String,
    /// [`entity::SITE`].
    pub(crate) entity: String,
    /// The definition.
    pub(crate) definition: SiteDefinition,
    /// Version.
    pub(crate) version: u64,
    /// Creation time.
    pub(crate) created_at: String,
    /// Last change.
    pub(crate) updated_at: String,
}

impl From<&Site> for SiteItem {
    fn from(site: &Site) -> Self {
        Self {
            pk: keys::SITES_PK.to_owned(),
            sk: keys::site_sk(&site.definition.code),
            entity: entity::SITE.to_owned(),
            definition: site.definition.clone(),
            version: site.version,
            created_at: site.created_at.clone(),
            updated_at: site.updated_at.clone(),
        }
    }
}

impl From<SiteItem> for Site {
    fn from(item: SiteItem) -> Self {
        Self {
            definition: item.definition,
            version: item.version,
            created_at: item.created_at,
            updated_at: item.updated_at,
        }
    }
}

/// A day rule: `SITEDAY#<site>#<date>` / `RULE`, and its copy `SITERULES#<site>` / `DAY#<date>` for the list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DayRuleItem {
    /// Partition.
    #[serde(rename = "PK")]
    pub(crate) pk: String,
    /// Sort key.
    #[serde(rename = "SK")]
    pub(crate) sk: String,
    /// [`entity::DAY_RULE`].
    pub(crate) entity: String,
    /// Site code.
    pub(crate) site: String,
    /// Local date, `YYYY-MM-DD`.
    pub(crate) date: String,
    /// The rule.
    pub(crate) rule: DayRule,
    /// Version (+1 on every change; a booking checks it did not move).
    pub(crate) version: u64,
    /// Last change.
    pub(crate) updated_at: String,
}

/// A site's accession counter of one local day: `ACCESSION#<site>#<date>` / `ACCESSION`, `last` given out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AccessionItem {
    /// `ACCESSION#<site>#<date>`.
    #[serde(rename = "PK")]
    pub(crate) pk: String,
    /// `ACCESSION`.
    #[serde(rename = "SK")]
    pub(crate) sk: String,
    /// [`entity::ACCESSION`].
    pub(crate) entity: String,
    /// The last number given out.
    pub(crate) last: u32,
}

/// A patient's live hold at one site: `PATIENT#<id>` / `HOLD#<site>`, so a patient holds one place per site at a
/// time (a hold past `until` no longer counts, whatever is stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PatientHoldItem {
    /// `PATIENT#<patientId>`.
    #[serde(rename = "PK")]
    pub(crate) pk: String,
    /// `HOLD#<site>`.
    #[serde(rename = "SK")]
    pub(crate) sk: String,
    /// [`entity::PATIENT_HOLD`].
    pub(crate) entity: String,
    /// The hold.
    pub(crate) hold_id: Uuid,
    /// Epoch seconds when it stops holding.
    pub(crate) until: i64,
}

/// A hold on a place: `HOLD#<id>` / `HOLD`. The place itself says until when it holds; this item finds the
/// place again (convert, release) and is deleted by TTL (`expiresAt`) some time after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct HoldItem {
    /// `HOLD#<id>`.
    #[serde(rename = "PK")]
    pub(crate) pk: String,
    /// `HOLD`.
    #[serde(rename = "SK")]
    pub(crate) sk: String,
    /// [`entity::HOLD`].
    pub(crate) entity: String,
    /// Hold id.
    pub(crate) hold_id: Uuid,
    /// Site code.
    pub(crate) site: String,
    /// Slot start.
    pub(crate) slot_start: SlotStart,
    /// The site's UTC offset at the slot, seconds.
    pub(crate) offset_seconds: i32,
    /// The place held.
    pub(crate) place: u32,
    /// For whom.
    pub(crate) patient_id: Uuid,
    /// Epoch seconds when it stops holding; TTL.
    pub(crate) expires_at: i64,
    /// Creation time.
    pub(crate) created_at: String,
}

/// A patient's hold on one slot start: `PATIENT#<id>` / `SLOTBOOKING#<start>`, written with the booking and
/// deleted with its cancellation (bookings made before it existed have none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PatientSlotItem {
    /// `PATIENT#<patientId>`.
    #[serde(rename = "PK")]
    pub(crate) pk: String,
    /// `SLOTBOOKING#<slotStart>`.
    #[serde(rename = "SK")]
    pub(crate) sk: String,
    /// [`entity::PATIENT_SLOT`].
    pub(crate) entity: String,
    /// The booking that holds it.
    pub(crate) booking_id: Uuid,
}

impl PatientSlotItem {
    /// The hold of `booking` on its slot.
    pub(crate) fn new(booking: &Booking) -> Self {
        Self {
            pk: keys::patient_pk(booking.patient_id),
            sk: keys::patient_slot_sk(booking.slot_start),
            entity: entity::PATIENT_SLOT.to_owned(),
            booking_id: booking.id,
        }
    }
}

/// An idempotency record: what a keyed request produced, replayed for 24 h.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct IdempotencyItem {
    /// `IDEMPOTENCY#<caller>#<key>`.
    #[serde(rename = "PK")]
    pub(crate) pk: String,
    /// `IDEMPOTENCY`.
    #[serde(rename = "SK")]
    pub(crate) sk: String,
    /// [`entity::IDEMPOTENCY`].
    pub(crate) entity: String,
    /// SHA-256 of the request (method, path, body).
    pub(crate) request_hash: String,
    /// The booking as the first request answered it.
    pub(crate) booking: BookingItem,
    /// Epoch seconds; TTL.
    pub(crate) expires_at: i64,
}

impl IdempotencyItem {
    /// The record of `key`'s request, which left `booking`; kept until `expires_at` (epoch seconds).
    pub(crate) fn new(key: &IdempotencyKey, booking: &Booking, expires_at: i64) -> Self {
        Self {
            pk: keys::idempotency_pk(&key.caller, &key.key),
            sk: keys::IDEMPOTENCY_SK.to_owned(),
            entity: entity::IDEMPOTENCY.to_owned(),
            request_hash: key.request_hash.clone(),
            booking: BookingItem::from(booking),
            expires_at,
        }
    }

    /// The record. It holds the booking as that request left it: booked with ordered tests, or cancelled.
    pub(crate) fn into_record(self) -> IdempotencyRecord {
        let tests = match self.booking.status {
            BookingStatus::Booked | BookingStatus::CheckedIn | BookingStatus::NoShow => TestStatus::Ordered,
            BookingStatus::Cancelled => TestStatus::Cancelled,
        };
        IdempotencyRecord {
            request_hash: self.request_hash,
            booking: self.booking.into_booking(|_| None, tests),
        }
    }
}

/// A domain event: `EVENTS#<YYYY-MM-DD>` / `<occurredAt>#<id>`, written in the transaction of the change it
/// tells of, deleted by TTL after the retention period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EventItem {
    /// `EVENTS#<YYYY-MM-DD>`.
    #[serde(rename = "PK")]
    pub(crate) pk: String,
    /// `<occurredAt>#<eventId>`.
    #[serde(rename = "SK")]
    pub(crate) sk: String,
    /// [`entity::EVENT`].
    pub(crate) entity: String,
    /// Event id.
    pub(crate) event_id: Uuid,
    /// What happened.
    #[serde(rename = "type")]
    pub(crate) kind: EventType,
    /// When.
    pub(crate) occurred_at: String,
    /// Whose (none for a system event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) patient_id: Option<Uuid>,
    /// The booking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) booking_id: Option<Uuid>,
    /// The test.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) test_id: Option<Uuid>,
    /// Ids and statuses.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub(crate) data: std::collections::BTreeMap<String, String>,
    /// Epoch seconds; TTL.
    pub(crate) expires_at: i64,
}

impl EventItem {
    /// The item of `event`, kept `retention_days`.
    pub(crate) fn new(event: &DomainEvent, retention_days: u32) -> Self {
        let expires_at = time::OffsetDateTime::now_utc().unix_timestamp() + i64::from(retention_days) * 86_400;
        Self {
            pk: keys::events_pk(event.occurred_at.get(..10).unwrap_or_default()),
            sk: keys::event_sk(&event.occurred_at, event.id),
            entity: entity::EVENT.to_owned(),
            event_id: event.id,
            kind: event.kind,
            occurred_at: event.occurred_at.clone(),
            patient_id: event.patient_id,
            booking_id: event.booking_id,
            test_id: event.test_id,
            data: event.data.clone(),
            expires_at,
        }
    }

    /// The event.
    pub(crate) fn into_event(self) -> DomainEvent {
        DomainEvent {
            id: self.event_id,
            kind: self.kind,
            occurred_at: self.occurred_at,
            patient_id: self.patient_id,
            booking_id: self.booking_id,
            test_id: self.test_id,
            data: self.data,
        }
    }
}

/// An audit event: `AUDIT#<patientId>#<YYYY-MM>` / `<at>#<id>`, deleted by TTL after the retention period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AuditItem {
    /// `AUDIT#<patientId>#<YYYY-MM>`.
    #[serde(rename = "PK")]
    pub(crate) pk: String,
    /// `<at>#<eventId>`.
    #[serde(rename = "SK")]
    pub(crate) sk: String,
    /// [`entity::AUDIT`].
    pub(crate) entity: String,
    /// Whose data.
    pub(crate) patient_id: Uuid,
    /// The event.
    pub(crate) event: AuditEvent,
    /// Epoch seconds; TTL.
    pub(crate) expires_at: i64,
}

impl AuditItem {
    /// The item for `event`, kept `retention_days`.
    pub(crate) fn new(event: &AuditEvent, retention_days: u32) -> Self {
        let expires_at = time::OffsetDateTime::now_utc().unix_timestamp() + i64::from(retention_days) * 86_400;
        Self {
            pk: keys::audit_pk(
                event.patient_id,
                keys::Month::of_instant(&event.at)
                    .unwrap_or_else(|| keys::Month::of(time::OffsetDateTime::now_utc().date())),
            ),
            sk: keys::audit_sk(&event.at, event.id),
            entity: entity::AUDIT.to_owned(),
            patient_id: event.patient_id,
            // The patient is the item's own attribute; the nested event does not repeat it.
            event: AuditEvent {
                patient_id: Uuid::nil(),
                ..event.clone()
            },
            expires_at,
        }
    }

    /// The event, with its patient.
    pub(crate) fn into_event(self) -> AuditEvent {
        AuditEvent {
            patient_id: self.patient_id,
            ..self.event
        }
    }
}

/// A webhook endpoint: `WEBHOOKS` / `WEBHOOK#<id>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WebhookItem {
    /// [`keys::WEBHOOKS_PK`].
    #[serde(rename = "PK")]
    pub(crate) pk: String,
    /// `WEBHOOK#<id>`.
    #[serde(rename = "SK")]
    pub(crate) sk: String,
    /// [`entity::WEBHOOK`].
    pub(crate) entity: String,
    /// Id.
    pub(crate) webhook_id: Uuid,
    /// Endpoint URL.
    pub(crate) url: String,
    /// Subscribed types; empty: all.
    pub(crate) types: Vec<EventType>,
    /// What it is for.
    pub(crate) description: String,
    /// Whether events go to it.
    pub(crate) enabled: bool,
    /// Why medbook disabled it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) disabled_reason: Option<String>,
    /// Creation time.
    pub(crate) created_at: String,
    /// Since when every attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) failing_since: Option<String>,
    /// The signing secret (`whsec_…`). DynamoDB encrypts it at rest; the API shows it once, at creation.
    pub(crate) secret: String,
    /// Version.
    pub(crate) version: u64,
}

impl WebhookItem {
    /// The item of `webhook`.
    pub(crate) fn new(webhook: &crate::domain::webhook::Webhook) -> Self {
        Self {
            pk: keys::WEBHOOKS_PK.to_owned(),
            sk: keys::webhook_sk(webhook.id),
            entity: entity::WEBHOOK.to_owned(),
            webhook_id: webhook.id,
            url: webhook.url.clone(),
            types: webhook.types.clone(),
            description: webhook.description.clone(),
            enabled: webhook.enabled,
            disabled_reason: webhook.disabled_reason.clone(),
            created_at: webhook.created_at.clone(),
            failing_since: webhook.failing_since.clone(),
            secret: webhook.secret.clone(),
            version: webhook.version,
        }
    }

    /// The webhook.
    pub(crate) fn into_webhook(self) -> crate::domain::webhook::Webhook {
        crate::domain::webhook::Webhook {
            id: self.webhook_id,
            url: self.url,
            types: self.types,
            description: self.description,
            enabled: self.enabled,
            disabled_reason: self.disabled_reason,
            created_at: self.created_at,
            failing_since: self.failing_since,
            secret: self.secret,
            version: self.version,
        }
    }
}

/// The number of webhooks: `WEBHOOKS` / `COUNT`, kept in the transactions that create and delete them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CountItem {
    /// [`keys::WEBHOOKS_PK`].
    #[serde(rename = "PK")]
    pub(crate) pk: String,
    /// [`keys::WEBHOOK_COUNT_SK`].
    #[serde(rename = "SK")]
    pub(crate) sk: String,
    /// [`entity::WEBHOOK_COUNT`].
    pub(crate) entity: String,
    /// How many.
    pub(crate) count: u32,
}

/// An event as an outbox entry holds it: what a delivery sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StoredEvent {
    /// Event id.
    pub(crate) event_id: Uuid,
    /// Type.
    #[serde(rename = "type")]
    pub(crate) kind: EventType,
    /// When.
    pub(crate) occurred_at: String,
    /// Whose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) patient_id: Option<Uuid>,
    /// The booking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) booking_id: Option<Uuid>,
    /// The test.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) test_id: Option<Uuid>,
    /// Ids and statuses.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub(crate) data: std::collections::BTreeMap<String, String>,
}

impl From<&DomainEvent> for StoredEvent {
    fn from(e: &DomainEvent) -> Self {
        Self {
            event_id: e.id,
            kind: e.kind,
            occurred_at: e.occurred_at.clone(),
            patient_id: e.patient_id,
            booking_id: e.booking_id,
            test_id: e.test_id,
            data: e.data.clone(),
        }
    }
}

impl From<StoredEvent> for DomainEvent {
    fn from(e: StoredEvent) -> Self {
        Self {
            id: e.event_id,
            kind: e.kind,
            occurred_at: e.occurred_at,
            patient_id: e.patient_id,
            booking_id: e.booking_id,
            test_id: e.test_id,
            data: e.data,
        }
    }
}

/// An event still to deliver to one webhook: `OUTBOX#<webhookId>` / `<occurredAt>#<eventId>`. The relay
/// writes it in the transaction that moves its stream checkpoint past the event; the delivery that gets a 2xx
/// deletes it in the transaction that logs the attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OutboxItem {
    /// `OUTBOX#<webhookId>`.
    #[serde(rename = "PK")]
    pub(crate) pk: String,
    /// `<occurredAt>#<eventId>`.
    #[serde(rename = "SK")]
    pub(crate) sk: String,
    /// [`entity::OUTBOX`].
    pub(crate) entity: String,
    /// The webhook.
    pub(crate) webhook_id: Uuid,
    /// The event.
    pub(crate) event: StoredEvent,
    /// Failed attempts so far.
    pub(crate) attempts: u32,
    /// Due time, epoch milliseconds.
    pub(crate) next_at: i64,
    /// The first attempt's time, once there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) first_attempt_at: Option<String>,
    /// Epoch seconds; TTL (the event's retention: an entry is never kept longer than its event).
    pub(crate) expires_at: i64,
}

impl OutboxItem {
    /// A new entry of `event` for `webhook_id`, due now, kept `retention_days`.
    pub(crate) fn new(webhook_id: Uuid, event: &DomainEvent, retention_days: u32) -> Self {
        let now = time::OffsetDateTime::now_utc();
        Self {
            pk: keys::outbox_pk(webhook_id),
            sk: keys::event_sk(&event.occurred_at, event.id),
            entity: entity::OUTBOX.to_owned(),
            webhook_id,
            event: event.into(),
            attempts: 0,
            next_at: 0,
            first_attempt_at: None,
            expires_at: now.unix_timestamp() + i64::from(retention_days) * 86_400,
        }
    }
}

/// One delivery attempt: `DELIVERIES#<webhookId>` / `ATTEMPT#<attemptId>`, deleted by TTL with the events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AttemptItem {
    /// `DELIVERIES#<webhookId>`.
    #[serde(rename = "PK")]
    pub(crate) pk: String,
    /// `ATTEMPT#<attemptId>`.
    #[serde(rename = "SK")]
    pub(crate) sk: String,
    /// [`entity::ATTEMPT`].
    pub(crate) entity: String,
    /// Attempt id.
    pub(crate) attempt_id: Uuid,
    /// The event.
    pub(crate) event_id: Uuid,
    /// Its type.
    pub(crate) event_type: EventType,
    /// Its patient.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) patient_id: Option<Uuid>,
    /// When it occurred.
    pub(crate) occurred_at: String,
    /// When the attempt was sent.
    pub(crate) attempted_at: String,
    /// HTTP status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) status: Option<u16>,
    /// Latency.
    pub(crate) latency_ms: u64,
    /// What went wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
    /// How it ended.
    pub(crate) outcome: crate::domain::webhook::AttemptOutcome,
    /// Which attempt.
    pub(crate) attempt: u32,
    /// Epoch seconds; TTL.
    pub(crate) expires_at: i64,
}

impl AttemptItem {
    /// The item of `attempt` for `webhook_id`, kept `retention_days`.
    pub(crate) fn new(webhook_id: Uuid, attempt: &crate::domain::webhook::Attempt, retention_days: u32) -> Self {
        Self {
            pk: keys::deliveries_pk(webhook_id),
            sk: keys::attempt_sk(attempt.id),
            entity: entity::ATTEMPT.to_owned(),
            attempt_id: attempt.id,
            event_id: attempt.event_id,
            event_type: attempt.event_type,
            patient_id: attempt.patient_id,
            occurred_at: attempt.occurred_at.clone(),
            attempted_at: attempt.attempted_at.clone(),
            status: attempt.status,
            latency_ms: attempt.latency_ms,
            error: attempt.error.clone(),
            outcome: attempt.outcome,
            attempt: attempt.attempt,
            expires_at: time::OffsetDateTime::now_utc().unix_timestamp() + i64::from(retention_days) * 86_400,
        }
    }

    /// The attempt.
    pub(crate) fn into_attempt(self) -> crate::domain::webhook::Attempt {
        crate::domain::webhook::Attempt {
            id: self.attempt_id,
            event_id: self.event_id,
            event_type: self.event_type,
            patient_id: self.patient_id,
            occurred_at: self.occurred_at,
            attempted_at: self.attempted_at,
            status: self.status,
            latency_ms: self.latency_ms,
            error: self.error,
            outcome: self.outcome,
            attempt: self.attempt,
        }
    }
}

/// A background worker's lease: `LEASES` / `STREAM#<shardId>` (with the shard's checkpoint) or
/// `OUTBOX#<webhookId>`. Its expiry is `leaseUntil` (milliseconds), not the TTL attribute: TTL deletes late,
/// and would take the checkpoint with it. `expiresAt` (two days on, moved by every renewal) only clears away
/// the leases of shards long gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LeaseItem {
    /// [`keys::LEASES_PK`].
    #[serde(rename = "PK")]
    pub(crate) pk: String,
    /// The lease's name.
    #[serde(rename = "SK")]
    pub(crate) sk: String,
    /// [`entity::LEASE`].
    #[serde(default)]
    pub(crate) entity: String,
    /// The holder.
    #[serde(default)]
    pub(crate) owner: String,
    /// Held until, epoch milliseconds.
    #[serde(default)]
    pub(crate) lease_until: i64,
    /// The last stream sequence number relayed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) checkpoint: Option<String>,
    /// Whether the (closed) shard is relayed to its end.
    #[serde(default)]
    pub(crate) finished: bool,
}

/// A critical-value alert: `ALERTS` / `ALERT#<alertId>` while open; once acknowledged, the same facts with who
/// and when at `PATIENT#<patientId>` / `ALERTACK#<alertId>`, kept with the patient's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AlertItem {
    /// [`keys::ALERTS_PK`] or `PATIENT#<patientId>`.
    #[serde(rename = "PK")]
    pub(crate) pk: String,
    /// `ALERT#<id>` or `ALERTACK#<id>`.
    #[serde(rename = "SK")]
    pub(crate) sk: String,
    /// [`entity::ALERT`] or [`entity::ALERT_ACK`].
    pub(crate) entity: String,
    /// Alert id: the `result.critical` event's.
    pub(crate) alert_id: Uuid,
    /// Whose result.
    pub(crate) patient_id: Uuid,
    /// The booking.
    pub(crate) booking_id: Uuid,
    /// The test.
    pub(crate) test_id: Uuid,
    /// When the critical value was verified.
    pub(crate) raised_at: String,
    /// Who acknowledged it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) acknowledged_by: Option<String>,
    /// When.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) acknowledged_at: Option<String>,
}

impl AlertItem {
    /// The open alert of a `result.critical` event (`None` for an event without its test).
    pub(crate) fn open(event: &DomainEvent) -> Option<Self> {
        Some(Self {
            pk: keys::ALERTS_PK.to_owned(),
            sk: keys::alert_sk(event.id),
            entity: entity::ALERT.to_owned(),
            alert_id: event.id,
            patient_id: event.patient_id?,
            booking_id: event.booking_id?,
            test_id: event.test_id?,
            raised_at: event.occurred_at.clone(),
            acknowledged_by: None,
            acknowledged_at: None,
        })
    }

    /// The acknowledged record of open alert `open` by `by` at `at`.
    pub(crate) fn acknowledged(open: &crate::domain::event::Alert, by: &str, at: &str) -> Self {
        Self {
            pk: keys::patient_pk(open.patient_id),
            sk: keys::alert_ack_sk(open.id),
            entity: entity::ALERT_ACK.to_owned(),
            alert_id: open.id,
            patient_id: open.patient_id,
            booking_id: open.booking_id,
            test_id: open.test_id,
            raised_at: open.raised_at.clone(),
            acknowledged_by: Some(by.to_owned()),
            acknowledged_at: Some(at.to_owned()),
        }
    }

    /// The alert.
    pub(crate) fn into_alert(self) -> crate::domain::event::Alert {
        crate::domain::event::Alert {
            id: self.alert_id,
            patient_id: self.patient_id,
            booking_id: self.booking_id,
            test_id: self.test_id,
            raised_at: self.raised_at,
            acknowledged_by: self.acknowledged_by,
            acknowledged_at: self.acknowledged_at,
        }
    }
}

/// A booking reminder: `REMINDERS#<YYYY-MM-DDTHH>` / `<dueAt>#<bookingId>` (the UTC hour it is due in). Put
/// with the booking, moved with a reschedule, deleted with a cancellation (all in the booking's own
/// transaction), and deleted by the worker in the transaction that writes `booking.reminder`: fired once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ReminderItem {
    /// `REMINDERS#<YYYY-MM-DDTHH>`.
    #[serde(rename = "PK")]
    pub(crate) pk: String,
    /// `<dueAt>#<bookingId>`.
    #[serde(rename = "SK")]
    pub(crate) sk: String,
    /// [`entity::REMINDER`].
    pub(crate) entity: String,
    /// When it is due.
    pub(crate) due_at: String,
    /// Whose booking.
    pub(crate) patient_id: Uuid,
    /// The booking.
    pub(crate) booking_id: Uuid,
    /// Its site.
    pub(crate) site: String,
    /// Its slot.
    pub(crate) slot_start: String,
    /// Epoch seconds; TTL a week after the slot (a reminder the worker never reached is cleared away).
    pub(crate) expires_at: i64,
}

/// When a booking's last "results ready" e-mail went out: `MAILED#<patientId>` / `RESULTS#<bookingId>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MailedItem {
    /// `MAILED#<patientId>`.
    #[serde(rename = "PK")]
    pub(crate) pk: String,
    /// `RESULTS#<bookingId>`.
    #[serde(rename = "SK")]
    pub(crate) sk: String,
    /// [`entity::MAILED`].
    pub(crate) entity: String,
    /// When the mail was sent.
    pub(crate) sent_at: String,
    /// Epoch seconds; TTL a day after it was sent (the quiet period is read from `sentAt`, not from the
    /// item's absence: TTL deletes late).
    pub(crate) expires_at: i64,
}
