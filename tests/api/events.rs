//! Domain events: written in the change's own transaction, read back as a feed (admin), in time order.

use std::time::Duration;

use medbook::auth::Role;
use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    helpers::{TestApp, day, slot, spawn_app_with, usage},
    results::{booked_cbc, put, review, values},
};

/// The whole feed of today as admin, `limit` at a time, following cursors until caught up; the events and the
/// cursor to poll from.
async fn drain(app: &TestApp, limit: u32, query: &str) -> (Vec<Value>, String) {
    let admin = app.staff(Role::Admin);
    let (mut events, mut cursor) = (Vec::new(), None::<String>);
    loop {
        let url = match &cursor {
            None => format!("/v1/events?limit={limit}{query}"),
            Some(c) => format!("/v1/events?limit={limit}{query}&cursor={c}"),
        };
        let res = app.get(&url, &admin).await;
        assert_eq!(res.status(), 200, "{url}");
        assert_eq!(usage(&res).0, 1, "one Query per page");
        let page: Value = res.json().await.unwrap();
        events.extend(page["items"].as_array().unwrap().iter().cloned());
        cursor = Some(
            page["nextCursor"]
                .as_str()
                .expect("a feed always has a next cursor")
                .to_owned(),
        );
        if page["caughtUp"] == true {
            return (events, cursor.unwrap());
        }
    }
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn every_change_writes_its_events_in_its_transaction_and_the_feed_replays_them_in_order() {
    let app = spawn_app_with(&[("MEDBOOK_EVENT_SETTLE_MS", "0")]).await;
    let (patient, booking, test, base) = booked_cbc(&app, "07:30").await;
    assert_eq!(put(&app, &base, &values(7.0), None).await.status(), 201);
    // Four eyes refused: no event of a change that did not happen.
    let same = app
        .request(
            Method::POST,
            &format!("{base}/result/verify"),
            Some(&app.staff(Role::Lab)),
        )
        .header("if-match", "\"1\"")
        .send()
        .await
        .unwrap();
    assert_eq!(same.status(), 409);
    assert_eq!(app.verify(&base, 1).await.status(), 200);
    assert_eq!(review(&app, &base, "\"2\"").await.status(), 200);
    let other = app.booked(patient, &slot(&day(31), "09:00"), &["TSH"]).await;
    let other_id = other["id"].as_str().unwrap();
    let cancel = app
        .request(
            Method::POST,
            &format!("/v1/patients/{patient}/bookings/{other_id}/cancel"),
            Some(&app.staff(Role::Admin)),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(cancel.status(), 200);

    let (events, poll) = drain(&app, 3, "").await;
    assert_eq!(
        types(&events),
        [
            "patient.created",
            "booking.created",
            "booking.checked-in",
            "result.recorded",
            "result.verified",
            "result.critical",
            "result.released",
            "result.reviewed",
            "booking.created",
            "booking.cancelled",
        ],
        "on-final: the verification releases; WBC 30.1 is critical"
    );
    let times: Vec<&str> = events.iter().map(|e| e["occurredAt"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "time order: {times:?}");
    for e in &events {
        assert_eq!(e["patientId"], patient.to_string());
        assert!(
            e.get("values").is_none() && !e["data"].to_string().contains("30.1"),
            "no values: {e}"
        );
    }
    let verified = &events[4];
    assert_eq!(
        (verified["bookingId"].as_str(), verified["testId"].as_str()),
        (Some(booking.as_str()), Some(test.as_str()))
    );
    assert_eq!(verified["data"]["status"], "final");
    assert_eq!(
        events[1]["data"],
        json!({"site": "MAIN", "slotStart": format!("{}T07:30:00Z", day(30)), "tests": "1"})
    );

    // From yesterday: its empty partition first (an empty page, not caught up), then today's.
    let (again, _) = drain(&app, 3, &format!("&from={}", day(-1))).await;
    assert_eq!(again, events);

    // A consumer polls from its last cursor and gets only what happened since.
    let next = app.booked(patient, &slot(&day(32), "10:00"), &["TSH"]).await;
    let res = app
        .get(&format!("/v1/events?limit=3&cursor={poll}"), &app.staff(Role::Admin))
        .await;
    let page: Value = res.json().await.unwrap();
    assert_eq!(types(page["items"].as_array().unwrap()), ["booking.created"]);
    assert_eq!(page["items"][0]["bookingId"], next["id"]);
    assert_eq!(page["caughtUp"], true);

    // Filters, bound to the cursor like any list's.
    let (released, _) = drain(&app, 2, "&types=result.released,result.critical").await;
    assert_eq!(types(&released), ["result.critical", "result.released"]);
    let res = app
        .get(
            &format!("/v1/events?types=result.released&cursor={poll}"),
            &app.staff(Role::Admin),
        )
        .await;
    assert_eq!(res.status(), 400, "a cursor of another filter");
    let res = app
        .get("/v1/events?types=booking.exploded", &app.staff(Role::Admin))
        .await;
    assert_eq!(res.status(), 422);
    assert_eq!(res.json::<Value>().await.unwrap()["errors"][0]["field"], "types");
    let res = app.get("/v1/events?from=2020-01-01", &app.staff(Role::Admin)).await;
    assert_eq!(
        res.json::<Value>().await.unwrap()["errors"][0]["field"],
        "from",
        "older than the retention"
    );
    for role in [Role::Lab, Role::Doctor] {
        assert_eq!(app.get("/v1/events", &app.staff(role)).await.status(), 403, "{role}");
    }
    let me = app.token(Role::Patient, &patient.to_string());
    assert_eq!(app.get("/v1/events", &me).await.status(), 403);
}

#[tokio::test]
async fn the_feed_stays_behind_now_so_a_transaction_still_committing_cannot_land_before_a_position() {
    let app = spawn_app_with(&[("MEDBOOK_EVENT_SETTLE_MS", "1500")]).await;
    let admin = app.staff(Role::Admin);
    let patient = app.create_patient().await;
    let page: Value = app.get("/v1/events", &admin).await.json().await.unwrap();
    assert_eq!(
        page["items"],
        json!([]),
        "the patient's creation is too recent to hand out"
    );
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let page: Value = app.get("/v1/events", &admin).await.json().await.unwrap();
    assert_eq!(types(page["items"].as_array().unwrap()), ["patient.created"]);
    assert_eq!(page["items"][0]["patientId"], patient.to_string());
}

#[tokio::test]
async fn an_event_expires_by_ttl_after_the_retention_period() {
    let app = spawn_app_with(&[("MEDBOOK_EVENT_RETENTION_DAYS", "7")]).await;
    app.create_patient().await;
    let today = day(0);
    let out = crate::helpers::engine_client()
        .query()
        .table_name(app.store.table())
        .key_condition_expression("PK = :pk")
        .expression_attribute_values(
            ":pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("EVENTS#{today}")),
        )
        .send()
        .await
        .unwrap();
    let items = out.items();
    assert_eq!(items.len(), 1);
    let expires: i64 = items[0]["expiresAt"].as_n().unwrap().parse().unwrap();
    let in_seven_days = time::OffsetDateTime::now_utc().unix_timestamp() + 7 * 86_400;
    assert!((expires - in_seven_days).abs() < 60, "{expires} vs {in_seven_days}");
    assert_eq!(items[0]["type"].as_s().unwrap(), "patient.created");
}
