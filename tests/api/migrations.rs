//! Migrations on the real engine.

use medbook::{
    config::CapacityMode,
    store::{
        Store,
        migrate::{MigrateError, Migration, embedded},
    },
};

use crate::helpers::fresh_store;

async fn bootstrapped() -> Store {
    let store = fresh_store();
    store.bootstrap(CapacityMode::OnDemand).await.expect("bootstrap");
    store
}

#[tokio::test]
async fn four_concurrent_migrate_runs_apply_each_migration_once() {
    let store = bootstrapped().await;
    let mut extra = embedded();
    extra.push(
        Migration::new(
            "0003_extra_test.json",
            r#"{"description": "one more", "createTestTypes": [{"code": "ZZZ", "name": "Test", "category": "x",
                "loinc": "1-1", "specimen": "serum", "durationMinutes": 5, "priceCents": 1, "currency": "EUR",
                "analytes": [{"code": "Z", "name": "Z", "loinc": "1-1", "unit": "mg/dL", "referenceRange": {"high": 1}}]}]}"#,
        )
        .unwrap(),
    );
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let (store, migrations) = (store.clone(), extra.clone());
            tokio::spawn(async move { store.migrate(&migrations).await })
        })
        .collect();
    let mut applied = Vec::new();
    for run in runs {
        applied.extend(run.await.expect("task").expect("migrate"));
    }
    applied.sort();
    assert_eq!(
        applied,
        ["0001_test_catalog.json", "0002_sites.json", "0003_extra_test.json"],
        "each applied exactly once"
    );

    let status = store.migration_status(&extra).await.unwrap();
    assert!(status.iter().all(|s| s.applied_at.is_some()), "{status:?}");
    let catalog = store.list_catalog().await.unwrap();
    assert!(catalog.len() >= 9, "{}", catalog.len());
    assert!(catalog.iter().all(|t| t.version == 1));
    assert!(
        store.migrate(&extra).await.unwrap().is_empty(),
        "a later run applies nothing"
    );
}

#[tokio::test]
async fn an_edited_applied_migration_is_refused() {
    let store = bootstrapped().await;
    let original = Migration::new("0001_x.json", r#"{"description": "original"}"#).unwrap();
    assert_eq!(
        store.migrate(std::slice::from_ref(&original)).await.unwrap(),
        ["0001_x.json"]
    );

    let edited = Migration::new("0001_x.json", r#"{"description": "edited"}"#).unwrap();
    let err = store.migrate(std::slice::from_ref(&edited)).await.unwrap_err();
    assert!(matches!(err, MigrateError::Edited { .. }), "{err:?}");
    assert!(
        err.to_string().contains("0001_x.json was edited after it was applied"),
        "{err}"
    );
    assert!(store.migration_status(&[edited]).await.is_err(), "status refuses too");
}

#[tokio::test]
async fn pending_migrations_are_listed_until_applied() {
    let store = bootstrapped().await;
    let status = store.migration_status(&embedded()).await.unwrap();
    assert_eq!(status.len(), 2);
    assert_eq!(status[0].name, "0001_test_catalog.json");
    assert_eq!(status[1].name, "0002_sites.json");
    assert!(status[0].applied_at.is_none());
}

#[tokio::test]
async fn an_invalid_migration_file_is_refused_before_anything_is_written() {
    let store = bootstrapped().await;
    let bad = Migration::new(
        "0001_bad.json",
        r#"{"description": "bad", "createTestTypes": [{"code": "lower", "name": "", "category": "x",
            "loinc": "1-1", "specimen": "s", "durationMinutes": 5, "priceCents": 1, "currency": "EUR", "analytes": []}]}"#,
    )
    .unwrap();
    let err = store.migrate(std::slice::from_ref(&bad)).await.unwrap_err();
    assert!(matches!(err, MigrateError::Invalid { .. }), "{err:?}");
    assert!(store.list_catalog().await.unwrap().is_empty());
    assert!(store.migration_status(&[bad]).await.unwrap()[0].applied_at.is_none());
}

/// A booking as the release before sites stored it: no site, no place, the UTC day's index key.
fn legacy_booking(patient: uuid::Uuid, slot: &str, status: &str) -> (uuid::Uuid, serde_json::Value) {
    let id = uuid::Uuid::now_v7();
    let test = uuid::Uuid::now_v7();
    let item = serde_json::json!({
        "PK": format!("PATIENT#{patient}"), "SK": format!("BOOKING#{id}"), "LSI1SK": format!("{slot}#{id}"),
        "GSI3PK": format!("DAY#{}", &slot[..10]), "GSI3SK": format!("{slot}#{id}"), "entity": "Booking",
        "bookingId": id, "patientId": patient, "slotStart": slot, "status": status,
        "tests": [{"id": test, "testTypeCode": "CBC", "testTypeVersion": 1, "name": "Complete blood count"}],
        "version": 1, "createdAt": "2026-11-01T07:00:00.000Z", "updatedAt": "2026-11-01T07:00:00.000Z"
    });
    (id, item)
}

#[tokio::test]
async fn the_sites_migration_moves_bookings_made_before_sites_onto_the_default_site() {
    use aws_sdk_dynamodb::types::AttributeValue;
    let store = bootstrapped().await;
    let client = crate::helpers::engine_client();
    let patient = uuid::Uuid::now_v7();
    let date = crate::helpers::day(20);
    let slot = format!("{date}T08:00:00Z");
    let (first, a) = legacy_booking(patient, &slot, "booked");
    let (second, b) = legacy_booking(uuid::Uuid::now_v7(), &slot, "booked");
    let (_, c) = legacy_booking(uuid::Uuid::now_v7(), &slot, "cancelled");
    let counter = serde_json::json!({"PK": format!("SLOTS#{date}"), "SK": format!("SLOT#{slot}"),
        "slotStart": slot, "booked": 2, "capacity": 4});
    for item in [a, b, c, counter] {
        client
            .put_item()
            .table_name(store.table())
            .set_item(Some(serde_dynamo::to_item(item).unwrap()))
            .send()
            .await
            .unwrap();
    }
    let applied = store.migrate(&embedded()).await.unwrap();
    assert!(applied.contains(&"0002_sites.json".to_owned()), "{applied:?}");

    let day = store
        .site_day("MAIN", medbook::domain::timefmt::parse_date(&date).unwrap(), true)
        .await
        .unwrap();
    let places =
        &day.places[&medbook::domain::booking::SlotStart::new(medbook::domain::timefmt::parse_instant(&slot).unwrap())];
    assert_eq!(
        places.booked(),
        2,
        "each live booking has a place, the cancelled one none"
    );
    let tree = store.booking_tree(patient, first).await.unwrap().unwrap();
    assert_eq!(tree.booking.site, "MAIN");
    assert!(
        tree.booking.takes_results(),
        "made before check-in existed: results without one"
    );
    assert_eq!(tree.booking.local_slot_start, format!("{date}T08:00:00+00:00"));
    assert!(
        places
            .0
            .values()
            .any(|t| *t == medbook::domain::site::Taker::Booking(second))
    );
    let old_counter = client
        .get_item()
        .table_name(store.table())
        .key("PK", AttributeValue::S(format!("SLOTS#{date}")))
        .key("SK", AttributeValue::S(format!("SLOT#{slot}")))
        .send()
        .await
        .unwrap();
    assert!(old_counter.item.is_none(), "the old counter is gone");
    let schedule = store
        .schedule("MAIN", medbook::domain::timefmt::parse_date(&date).unwrap(), 10, None)
        .await
        .unwrap();
    assert_eq!(schedule.items.len(), 3, "all three under the default site's day");
    // A cancellation after the move gives its place back like any other (this legacy booking was written
    // without its test items, so the cancellation leaves them out).
    let cancelled = medbook::domain::booking::Booking {
        status: medbook::domain::booking::BookingStatus::Cancelled,
        version: 2,
        tests: Vec::new(),
        ..tree.booking.clone()
    };
    let audit = medbook::domain::audit::AuditDraft {
        actor: medbook::domain::audit::Actor {
            sub: "admin".into(),
            role: "admin".into(),
        },
        action: "POST".into(),
        resource: "/".into(),
        outcome: 200,
        request_id: "r".into(),
    }
    .event(patient);
    let outcome = store.cancel_booking(&cancelled, 1, None, &audit).await.unwrap();
    assert_eq!(outcome, medbook::store::bookings::CancelOutcome::Cancelled);
    let day = store
        .site_day("MAIN", medbook::domain::timefmt::parse_date(&date).unwrap(), true)
        .await
        .unwrap();
    assert_eq!(day.places.values().map(|p| p.booked()).sum::<u32>(), 1);
}
