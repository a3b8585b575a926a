//! Each store write's outcome type, proved on the real engine by forcing every condition of its
//! transaction to fail: a rejection maps to its own outcome, never to another's (and never to a 500).

use medbook::{
    config::CapacityMode,
    domain::{
        audit::{Actor, AuditDraft, AuditEvent},
        booking::{BookedTest, Booking, BookingStatus, LabResult, ResultStatus, SlotStart, TestAddress, TestStatus},
        idempotency::IdempotencyKey,
        patient::{Identifier, LinkedIdentity, NewPatient, Patient, Sex},
        test_type::{TestType, TestTypeDefinition},
        timefmt,
    },
    store::{
        Store,
        bookings::{BookOutcome, CancelOutcome, NoteOutcome, PlaceTake, SaveResultOutcome},
        catalog::TestTypeOutcome,
        identities::{LinkOutcome, RegisterOutcome, UnlinkOutcome},
        keys,
        patients::{CreatePatientOutcome, ReplacePatientOutcome},
        sites::Unchanged,
    },
};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::helpers::fresh_store;

/// A bootstrapped table with the default site `MAIN` at version 1 (a booking checks the site it read).
async fn store() -> Store {
    let store = fresh_store();
    store.bootstrap(CapacityMode::OnDemand, false).await.unwrap();
    let grid = medbook::domain::booking::SlotGrid {
        minutes: 15,
        capacity: 4,
        hours: medbook::domain::booking::OpeningHours {
            open: time::Time::from_hms(7, 0, 0).unwrap(),
            close: time::Time::from_hms(18, 0, 0).unwrap(),
        },
        horizon_days: 180,
    };
    let site = medbook::domain::site::Site {
        definition: medbook::domain::site::SiteDefinition::from_grid(&grid),
        version: 1,
        created_at: timefmt::now(),
        updated_at: timefmt::now(),
    };
    store.create_site(&site).await.unwrap();
    store
}

fn audit(patient: Uuid) -> AuditEvent {
    AuditDraft {
        actor: Actor {
            sub: "outcome-test".into(),
            role: "admin".into(),
        },
        action: "TEST".into(),
        resource: "/".into(),
        outcome: 200,
        request_id: Uuid::now_v7().to_string(),
    }
    .event(patient)
}

async fn patient(store: &Store) -> Patient {
    let patient = Patient::create(
        NewPatient {
            given_name: "Ada".into(),
            family_name: "Lovelace".into(),
            birth_date: time::macros::date!(1990 - 12 - 10),
            sex: Sex::Female,
            email: Some(format!("ada.{}@example.org", Uuid::now_v7().simple())),
            phone: None,
            identifiers: Vec::new(),
        },
        &timefmt::now(),
    );
    let outcome = store.create_patient(&patient, &audit(patient.id), &[]).await.unwrap();
    assert_eq!(outcome, CreatePatientOutcome::Created);
    patient
}

fn slot() -> SlotStart {
    slot_at(0)
}

/// The `n`-th quarter hour after 09:00 three days from now.
fn slot_at(n: i64) -> SlotStart {
    let day = OffsetDateTime::now_utc().date() + Duration::days(3);
    SlotStart::new(day.with_hms(9, 0, 0).unwrap().assume_utc() + Duration::minutes(15 * n))
}

fn booking(patient_id: Uuid, slot_start: SlotStart) -> Booking {
    let now = timefmt::now();
    Booking {
        id: Uuid::now_v7(),
        patient_id,
        site: "MAIN".into(),
        slot_start,
        local_slot_start: slot_start.to_string().replace('Z', "+00:00"),
        place: 0,
        rescheduled_from: Vec::new(),
        checked_in_at: None,
        accession: None,
        results_without_check_in: false,
        status: BookingStatus::Booked,
        tests: (0..2)
            .map(|i| BookedTest {
                id: Uuid::now_v7(),
                test_type_code: format!("T{i}"),
                test_type_version: 1,
                name: "a test".into(),
                status: TestStatus::Ordered,
            })
            .collect(),
        note: None,
        version: 1,
        created_at: now.clone(),
        updated_at: now,
    }
}

fn key(name: &str) -> IdempotencyKey {
    IdempotencyKey::new(
        "admin:outcomes",
        &format!("{name}-{}", Uuid::now_v7()),
        &[name.as_bytes()],
    )
}

/// A free place on a day without a rule.
fn free() -> PlaceTake {
    PlaceTake::Free(Unchanged {
        site_version: 1,
        rule_version: None,
        slot_version: None,
    })
}

fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

fn expiry() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp() + 3600
}

fn cancelled(booking: &Booking) -> Booking {
    Booking {
        status: BookingStatus::Cancelled,
        tests: booking
            .tests
            .iter()
            .map(|t| BookedTest {
                status: TestStatus::Cancelled,
                ..t.clone()
            })
            .collect(),
        version: booking.version + 1,
        ..booking.clone()
    }
}

fn result(version: u64) -> LabResult {
    LabResult {
        status: ResultStatus::Preliminary,
        revision: 1,
        version,
        values: vec![],
        critical: false,
        delta_flag: false,
        performed_at: "2026-12-01T08:00:00Z".into(),
        collected_at: None,
        comment: None,
        recorded_at: timefmt::now(),
        recorded_by: "lab".into(),
        verification: None,
        review: None,
        hold: None,
        hold_lifted_at: None,
        release: None,
        corrects: None,
    }
}

/// The test type `T0` the outcome tests' bookings name.
fn t0() -> medbook::domain::test_type::TestType {
    serde_json::from_value(serde_json::json!({
        "version": 1, "createdAt": "t", "code": "T0", "name": "T0", "category": "c", "loinc": "1-8",
        "specimen": "blood", "durationMinutes": 5, "priceCents": 1, "currency": "EUR",
        "analytes": [{"code": "A", "name": "A", "loinc": "2-6", "unit": "1", "referenceRange": {"low": 1}}]
    }))
    .unwrap()
}

fn first_test(booking: &Booking) -> TestAddress {
    TestAddress {
        patient_id: booking.patient_id,
        booking_id: booking.id,
        test_id: booking.tests[0].id,
    }
}

#[tokio::test]
async fn each_failed_condition_of_a_booking_has_its_own_outcome() {
    let store = store().await;
    let p = patient(&store).await;
    let (first, first_key) = (booking(p.id, slot()), key("first"));
    let book = |b: &Booking, k: &IdempotencyKey| {
        let (store, b, k) = (store.clone(), b.clone(), k.clone());
        async move {
            store
                .create_booking(&b, free(), now(), &k, expiry(), &audit(b.patient_id), &[], true)
                .await
                .unwrap()
        }
    };
    assert_eq!(book(&first, &first_key).await, BookOutcome::Booked);
    assert_eq!(
        book(&booking(p.id, slot()), &key("again")).await,
        BookOutcome::AlreadyBooked,
        "the same patient, the same slot, another key"
    );
    // The same place for anyone else: taken (the service then reads the day again and picks another, or
    // answers slot-full when there is none).
    let q = patient(&store).await;
    assert_eq!(
        book(&booking(q.id, slot()), &key("second")).await,
        BookOutcome::PlaceTaken
    );
    let other_place = Booking {
        place: 1,
        rescheduled_from: Vec::new(),
        checked_in_at: None,
        accession: None,
        results_without_check_in: false,
        ..booking(q.id, slot())
    };
    let (b, k) = (other_place.clone(), key("rule"));
    let moved = store
        .create_booking(
            &b,
            PlaceTake::Free(Unchanged {
                site_version: 1,
                rule_version: Some(1),
                slot_version: None,
            }),
            now(),
            &k,
            expiry(),
            &audit(q.id),
            &[],
            true,
        )
        .await
        .unwrap();
    assert_eq!(moved, BookOutcome::RuleMoved, "the day got no rule at version 1");
    let lost = store
        .create_booking(
            &b,
            PlaceTake::Hold {
                id: Uuid::now_v7(),
                unchanged: Unchanged {
                    site_version: 1,
                    rule_version: None,
                    slot_version: None,
                },
            },
            now(),
            &key("hold"),
            expiry(),
            &audit(q.id),
            &[],
            true,
        )
        .await
        .unwrap();
    assert_eq!(lost, BookOutcome::HoldLost, "no such hold has that place");
    let elsewhere = SlotStart::new(slot().at() + Duration::hours(1));
    assert_eq!(
        book(&booking(Uuid::now_v7(), elsewhere), &key("nobody")).await,
        BookOutcome::NoPatient
    );
    // The same key again, as a retry after the slot filled: the key wins. Within 10 minutes DynamoDB knows
    // the transaction's ClientRequestToken and refuses it without a record (`KeyUsed(None)`); later the
    // record's condition answers and carries it (a unit test of store::bookings covers that path).
    let repeat = book(&booking(p.id, slot()), &first_key).await;
    assert!(matches!(repeat, BookOutcome::KeyUsed(_)), "{repeat:?}");
    let record = store.idempotency_record(&first_key).await.unwrap().unwrap();
    assert_eq!((record.booking.id, record.booking.tests.len()), (first.id, 2));
    assert!(first_key.matches(&record));
}

#[tokio::test]
async fn each_failed_condition_of_a_cancellation_has_its_own_outcome() {
    let store = store().await;
    let p = patient(&store).await;
    let cancel = |b: &Booking, expected: u64, k: Option<&IdempotencyKey>| {
        let (store, b, k) = (store.clone(), b.clone(), k.cloned());
        async move {
            store
                .cancel_booking(
                    &cancelled(&b),
                    expected,
                    k.as_ref().map(|k| (k, expiry())),
                    &audit(b.patient_id),
                    &[],
                )
                .await
                .unwrap()
        }
    };
    let mut made = Vec::new();
    for n in 0..3 {
        let b = booking(p.id, slot_at(n));
        let outcome = store
            .create_booking(&b, free(), now(), &key("book"), expiry(), &audit(p.id), &[], true)
            .await
            .unwrap();
        assert_eq!(outcome, BookOutcome::Booked);
        made.push(b);
    }
    assert_eq!(cancel(&made[0], 7, None).await, CancelOutcome::BookingChanged);

    let at = first_test(&made[1]);
    let saved = store
        .save_result(at, &t0(), &result(1), None, &audit(p.id), &[])
        .await
        .unwrap();
    assert_eq!(saved, SaveResultOutcome::Saved);
    assert_eq!(cancel(&made[1], 1, None).await, CancelOutcome::ResultRecorded);

    let k = key("cancel");
    assert_eq!(cancel(&made[0], 1, Some(&k)).await, CancelOutcome::Cancelled);
    // Another booking cancelled with the same key: refused as a used key, and nothing of it is written.
    let outcome = cancel(&made[2], 1, Some(&k)).await;
    assert!(matches!(outcome, CancelOutcome::KeyUsed(_)), "{outcome:?}");
    let record = store.idempotency_record(&k).await.unwrap().unwrap();
    assert_eq!(
        (record.booking.id, record.booking.status),
        (made[0].id, BookingStatus::Cancelled)
    );
    assert_eq!(
        cancel(&made[0], 2, None).await,
        CancelOutcome::BookingChanged,
        "cancelled already"
    );
}

#[tokio::test]
async fn each_failed_condition_of_a_result_and_a_note_has_its_own_outcome() {
    let store = store().await;
    let p = patient(&store).await;
    let b = booking(p.id, slot());
    let booked = store
        .create_booking(&b, free(), now(), &key("r"), expiry(), &audit(p.id), &[], true)
        .await
        .unwrap();
    assert_eq!(booked, BookOutcome::Booked);
    let at = first_test(&b);
    let save = |version: u64, expected: Option<u64>, at: TestAddress| {
        let store = store.clone();
        async move {
            store
                .save_result(at, &t0(), &result(version), expected, &audit(at.patient_id), &[])
                .await
                .unwrap()
        }
    };
    assert_eq!(save(1, None, at).await, SaveResultOutcome::Saved);
    assert_eq!(
        save(1, None, at).await,
        SaveResultOutcome::VersionMoved,
        "exists already"
    );
    assert_eq!(
        save(2, Some(5), at).await,
        SaveResultOutcome::VersionMoved,
        "stale version"
    );
    assert_eq!(save(2, Some(1), at).await, SaveResultOutcome::Saved);

    let other = booking(p.id, slot_at(1));
    let booked = store
        .create_booking(&other, free(), now(), &key("c"), expiry(), &audit(p.id), &[], true)
        .await
        .unwrap();
    assert_eq!(booked, BookOutcome::Booked);
    let outcome = store
        .cancel_booking(&cancelled(&other), 1, None, &audit(p.id), &[])
        .await
        .unwrap();
    assert_eq!(outcome, CancelOutcome::Cancelled);
    assert_eq!(
        save(1, None, first_test(&other)).await,
        SaveResultOutcome::TestCancelled
    );

    let note = medbook::domain::booking::Note {
        id: Uuid::now_v7(),
        author_id: "doc".into(),
        text: "ok".into(),
        visibility: medbook::domain::booking::NoteVisibility::Internal,
        created_at: timefmt::now(),
    };
    assert_eq!(
        store.add_note(at, &note, &audit(p.id)).await.unwrap(),
        NoteOutcome::Added
    );
    let nowhere = TestAddress {
        test_id: Uuid::now_v7(),
        ..at
    };
    assert_eq!(
        store.add_note(nowhere, &note, &audit(p.id)).await.unwrap(),
        NoteOutcome::NoTest
    );
}

#[tokio::test]
async fn each_failed_condition_of_a_patient_write_has_its_own_outcome() {
    let store = store().await;
    let p = patient(&store).await;
    let again = store.create_patient(&p, &audit(p.id), &[]).await.unwrap();
    assert_eq!(again, CreatePatientOutcome::IdTaken);
    let next = Patient {
        version: p.version + 1,
        ..p.clone()
    };
    assert_eq!(
        store.replace_patient(&p, &next, &audit(p.id), &[]).await.unwrap(),
        ReplacePatientOutcome::Replaced
    );
    assert_eq!(
        store.replace_patient(&p, &next, &audit(p.id), &[]).await.unwrap(),
        ReplacePatientOutcome::VersionMoved,
        "stale: the stored version is now {}",
        next.version
    );
    // Another patient with the same address (any case, any spaces): its own outcome, and nothing written.
    let other = Patient {
        id: Uuid::now_v7(),
        email: p.email.as_deref().map(|e| format!("  {}  ", e.to_uppercase())),
        ..p.clone()
    };
    assert!(other.email.is_some(), "the test patient has an address");
    assert_eq!(
        store.create_patient(&other, &audit(other.id), &[]).await.unwrap(),
        CreatePatientOutcome::EmailTaken
    );
    assert!(store.get_patient(other.id).await.unwrap().is_none());
    let plain = Patient {
        email: Some("someone.else@example.org".into()),
        ..other.clone()
    };
    assert_eq!(
        store.create_patient(&plain, &audit(plain.id), &[]).await.unwrap(),
        CreatePatientOutcome::Created
    );
    let taking = Patient {
        version: plain.version + 1,
        email: p.email.clone(),
        ..plain.clone()
    };
    assert_eq!(
        store
            .replace_patient(&plain, &taking, &audit(plain.id), &[])
            .await
            .unwrap(),
        ReplacePatientOutcome::EmailTaken
    );
    // An identifier is one patient's: the second identifier of the list is the one named.
    let mrn = |v: &str| Identifier {
        system: "https://hospital.example/mrn".into(),
        value: v.into(),
    };
    let with_mrn = Patient {
        version: next.version + 1,
        identifiers: vec![mrn("1")],
        ..next.clone()
    };
    assert_eq!(
        store
            .replace_patient(&next, &with_mrn, &audit(p.id), &[])
            .await
            .unwrap(),
        ReplacePatientOutcome::Replaced
    );
    let third = Patient {
        id: Uuid::now_v7(),
        email: None,
        identifiers: vec![mrn("2"), mrn("1")],
        ..p.clone()
    };
    assert_eq!(
        store.create_patient(&third, &audit(third.id), &[]).await.unwrap(),
        CreatePatientOutcome::IdentifierTaken(mrn("1"))
    );
    let plain_mrn = Patient {
        version: plain.version + 1,
        identifiers: vec![mrn("3"), mrn("1")],
        ..plain.clone()
    };
    assert_eq!(
        store
            .replace_patient(&plain, &plain_mrn, &audit(plain.id), &[])
            .await
            .unwrap(),
        ReplacePatientOutcome::IdentifierTaken(mrn("1"))
    );
    assert_eq!(store.patient_by_identifier(&mrn("3")).await.unwrap(), None);
    let fourth = Patient {
        id: Uuid::now_v7(),
        email: None,
        identifiers: vec![mrn("3")],
        ..p.clone()
    };
    assert_eq!(
        store.create_patient(&fourth, &audit(fourth.id), &[]).await.unwrap(),
        CreatePatientOutcome::Created,
        "the refused change left no guard of MRN 3 behind"
    );
}

#[tokio::test]
async fn each_failed_condition_of_an_identity_write_has_its_own_outcome() {
    let store = store().await;
    let p = patient(&store).await;
    let issuer = "https://id.example.org";
    let a = LinkedIdentity {
        issuer: issuer.into(),
        sub: "a".into(),
        linked_at: timefmt::now(),
        linked_by: "lab-1".into(),
    };
    assert_eq!(
        store.link_identity(Uuid::now_v7(), &a, &audit(p.id)).await.unwrap(),
        LinkOutcome::NoPatient
    );
    assert_eq!(
        store.link_identity(p.id, &a, &audit(p.id)).await.unwrap(),
        LinkOutcome::Linked
    );
    assert_eq!(
        store.link_identity(p.id, &a, &audit(p.id)).await.unwrap(),
        LinkOutcome::IdentityLinked
    );
    assert_eq!(store.identity_patient(issuer, "a").await.unwrap(), Some(p.id));
    assert_eq!(store.patient_identities(p.id).await.unwrap(), vec![a.clone()]);
    let other = Uuid::now_v7();
    assert_eq!(
        store.unlink_identity(other, issuer, "a", &audit(other)).await.unwrap(),
        UnlinkOutcome::NotLinked,
        "another patient's link stays"
    );
    assert_eq!(store.identity_patient(issuer, "a").await.unwrap(), Some(p.id));
    assert_eq!(
        store.unlink_identity(p.id, issuer, "a", &audit(p.id)).await.unwrap(),
        UnlinkOutcome::Unlinked
    );
    assert_eq!(store.identity_patient(issuer, "a").await.unwrap(), None);
    assert_eq!(store.patient_identities(p.id).await.unwrap(), vec![]);
    assert_eq!(
        store.link_identity(p.id, &a, &audit(p.id)).await.unwrap(),
        LinkOutcome::Linked,
        "linked again"
    );
    let new = |email: Option<String>| Patient {
        id: Uuid::now_v7(),
        email,
        ..p.clone()
    };
    let fresh = new(None);
    assert_eq!(
        store
            .register_patient(&fresh, issuer, "a", &audit(fresh.id), &[])
            .await
            .unwrap(),
        RegisterOutcome::IdentityLinked
    );
    let taken = new(p.email.clone());
    assert_eq!(
        store
            .register_patient(&taken, issuer, "b", &audit(taken.id), &[])
            .await
            .unwrap(),
        RegisterOutcome::EmailTaken
    );
    assert_eq!(
        store.identity_patient(issuer, "b").await.unwrap(),
        None,
        "nothing half-written"
    );
    assert_eq!(
        store
            .register_patient(&p, issuer, "c", &audit(p.id), &[])
            .await
            .unwrap(),
        RegisterOutcome::IdTaken
    );
    assert_eq!(
        store
            .register_patient(&fresh, issuer, "b", &audit(fresh.id), &[])
            .await
            .unwrap(),
        RegisterOutcome::Registered
    );
    assert_eq!(store.identity_patient(issuer, "b").await.unwrap(), Some(fresh.id));
}

#[tokio::test]
async fn each_failed_condition_of_a_test_type_version_has_its_own_outcome() {
    let store = store().await;
    let mut definition: TestTypeDefinition = serde_json::from_value(crate::test_types_definition()).unwrap();
    definition.code = "OUTC".into();
    let version = |n: u32| TestType {
        version: n,
        definition: definition.clone(),
        created_at: timefmt::now(),
    };
    assert_eq!(
        store.put_test_type_version(&version(1)).await.unwrap(),
        TestTypeOutcome::Written
    );
    assert_eq!(
        store.put_test_type_version(&version(1)).await.unwrap(),
        TestTypeOutcome::CurrentMoved
    );
    assert_eq!(
        store.put_test_type_version(&version(2)).await.unwrap(),
        TestTypeOutcome::Written
    );
    // Wind the catalog entry back to version 1 by hand: now only the version item's condition fails.
    crate::helpers::engine_client()
        .update_item()
        .table_name(store.table())
        .key(
            keys::PK,
            aws_sdk_dynamodb::types::AttributeValue::S(keys::CATALOG_PK.into()),
        )
        .key(
            keys::SK,
            aws_sdk_dynamodb::types::AttributeValue::S(keys::catalog_sk("OUTC")),
        )
        .update_expression("SET #v = :one")
        .expression_attribute_names("#v", "version")
        .expression_attribute_values(":one", aws_sdk_dynamodb::types::AttributeValue::N("1".into()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        store.put_test_type_version(&version(2)).await.unwrap(),
        TestTypeOutcome::VersionTaken
    );
}

#[tokio::test]
async fn cancelling_a_booking_made_before_slot_holds_leaves_a_newer_bookings_hold() {
    let store = store().await;
    let p = patient(&store).await;
    let old = booking(p.id, slot_at(5));
    let booked = store
        .create_booking(&old, free(), now(), &key("old"), expiry(), &audit(p.id), &[], true)
        .await
        .unwrap();
    assert_eq!(booked, BookOutcome::Booked);
    // As if it were made before holds existed: no hold.
    crate::helpers::engine_client()
        .delete_item()
        .table_name(store.table())
        .key(
            keys::PK,
            aws_sdk_dynamodb::types::AttributeValue::S(keys::patient_pk(p.id)),
        )
        .key(
            keys::SK,
            aws_sdk_dynamodb::types::AttributeValue::S(keys::patient_slot_sk(old.slot_start)),
        )
        .send()
        .await
        .unwrap();
    let newer = Booking {
        place: 1,
        rescheduled_from: Vec::new(),
        checked_in_at: None,
        accession: None,
        results_without_check_in: false,
        ..booking(p.id, old.slot_start)
    };
    let booked = store
        .create_booking(&newer, free(), now(), &key("newer"), expiry(), &audit(p.id), &[], true)
        .await
        .unwrap();
    assert_eq!(booked, BookOutcome::Booked);
    let outcome = store
        .cancel_booking(
            &cancelled(&old),
            1,
            Some((&key("cancel-old"), expiry())),
            &audit(p.id),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(outcome, CancelOutcome::Cancelled);
    let third = store
        .create_booking(
            &Booking {
                place: 2,
                rescheduled_from: Vec::new(),
                checked_in_at: None,
                accession: None,
                results_without_check_in: false,
                ..booking(p.id, old.slot_start)
            },
            free(),
            now(),
            &key("third"),
            expiry(),
            &audit(p.id),
            &[],
            true,
        )
        .await
        .unwrap();
    assert_eq!(
        third,
        BookOutcome::AlreadyBooked,
        "the newer booking still holds the slot"
    );
}
