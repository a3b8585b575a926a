//! Domain events: written in the change's own transaction, read back as a feed (admin), in time order.

use std::time::Duration;

use medbook::auth::Role;
use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    helpers::{TestApp, day, slot, spawn_app_with, usage},
    release::{hold, lift},
    results::{booked_cbc, put, review, values},
    scheduling::{act, book_noon, noon_site},
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
    // Two lab users verify at once from the same version: one commits; the other loses, at its read or at
    // its transaction's condition, and writes no event (the feed below has one `result.verified`).
    let racing = |user: &'static str| {
        app.request(
            Method::POST,
            &format!("{base}/result/verify"),
            Some(&app.token(Role::Lab, user)),
        )
        .header("if-match", "\"1\"")
        .send()
    };
    let (a, b) = tokio::join!(racing("lab-2"), racing("lab-3"));
    let mut statuses = [a.unwrap().status().as_u16(), b.unwrap().status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 412], "one verification wins");
    // A hold takes the release back (no event); lifting it releases again.
    assert_eq!(hold(&app, &base).await.status(), 200);
    assert_eq!(lift(&app, &base).await.status(), 200);
    assert_eq!(review(&app, &base, "\"4\"").await.status(), 200);
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
            "result.released",
            "result.reviewed",
            "booking.created",
            "booking.cancelled",
        ],
        "on-final: the verification releases (WBC 30.1 is critical), the lifted hold releases again"
    );
    // Ids and statuses only: every data entry is one of these, and nothing else is on an event.
    let allowed = [
        "status",
        "revision",
        "site",
        "slotStart",
        "tests",
        "from",
        "fromSite",
        "accession",
        "by",
    ];
    let fields = ["id", "type", "occurredAt", "patientId", "bookingId", "testId", "data"];
    for e in &events {
        assert_eq!(e["patientId"], patient.to_string());
        assert!(
            e.as_object().unwrap().keys().all(|f| fields.contains(&f.as_str())),
            "{e}"
        );
        assert!(
            e["data"]
                .as_object()
                .unwrap()
                .keys()
                .all(|k| allowed.contains(&k.as_str())),
            "{e}"
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
    assert_eq!(
        types(&released),
        ["result.critical", "result.released", "result.released"]
    );
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

#[tokio::test]
async fn the_services_own_check_in_and_reschedule_write_their_events() {
    let app = spawn_app_with(&[("MEDBOOK_EVENT_SETTLE_MS", "0")]).await;
    let (start, _) = noon_site(&app).await;
    let lab = app.staff(Role::Lab);
    let booked = book_noon(&app, &start).await;
    assert_eq!(act(&app, &booked, "check-in", &lab).await.status(), 200);
    let other = book_noon(&app, &start).await;
    let later = medbook::domain::timefmt::second(
        medbook::domain::timefmt::parse_instant(&start).unwrap() + time::Duration::hours(1),
    );
    let res = app
        .request(
            Method::POST,
            &format!(
                "/v1/patients/{}/bookings/{}/reschedule",
                other["patientId"].as_str().unwrap(),
                other["id"].as_str().unwrap()
            ),
            Some(&lab),
        )
        .header("if-match", "\"1\"")
        .json(&json!({"slotStart": later, "site": "NOON"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let (events, _) = drain(&app, 100, "&types=booking.checked-in,booking.rescheduled").await;
    assert_eq!(types(&events), ["booking.checked-in", "booking.rescheduled"]);
    assert_eq!(events[0]["bookingId"], booked["id"]);
    assert!(events[0]["data"]["accession"].as_str().unwrap().starts_with("NOON-"));
    assert_eq!(events[1]["data"]["from"], start.as_str());
    assert_eq!(events[1]["data"]["slotStart"], later.as_str());
}

#[tokio::test]
async fn at_midnight_the_feed_reads_the_day_to_its_settled_end_before_moving_on_and_never_rereads() {
    use medbook::{
        domain::{
            audit::{Actor, AuditDraft},
            event::{DomainEvent, EventType},
            patient::{NewPatient, Patient, Sex},
            timefmt,
        },
        store::events::EventFeed,
    };
    let app = spawn_app_with(&[]).await;
    let today = time::OffsetDateTime::now_utc().date();
    let yesterday = today.previous_day().unwrap();
    let (y, t) = (timefmt::date(yesterday), timefmt::date(today));
    // Events written as their changes would write them, stamped around midnight: the last one of yesterday
    // is stamped after the moment the first poll below has settled at.
    let stamps = [
        format!("{y}T23:59:50.000Z"),
        format!("{y}T23:59:59.990Z"),
        format!("{t}T00:00:01.000Z"),
    ];
    for at in &stamps {
        let p = Patient::create(
            NewPatient {
                given_name: "M".into(),
                family_name: "N".into(),
                birth_date: time::macros::date!(1990 - 01 - 01),
                sex: Sex::Other,
                email: None,
                phone: None,
                identifiers: Vec::new(),
            },
            &timefmt::now(),
        );
        let audit = AuditDraft {
            actor: Actor {
                sub: "t".into(),
                role: "admin".into(),
            },
            action: "test".into(),
            resource: "test".into(),
            outcome: 201,
            request_id: "t".into(),
        }
        .event(p.id);
        let event = DomainEvent::new(EventType::PatientCreated, p.id, at);
        app.store.create_patient(&p, &audit, &[event]).await.unwrap();
    }
    let feed = |settled: String| EventFeed {
        from: yesterday,
        today,
        settled,
        types: Vec::new(),
    };
    let stamps_of = |items: &[DomainEvent]| items.iter().map(|e| e.occurred_at.clone()).collect::<Vec<_>>();
    // A poll at 00:00:05 with a 10 s settle: yesterday up to 23:59:55 only, and caught up there, not on to
    // today (which would skip the event of 23:59:59.990 for good).
    let first = feed(format!("{y}T23:59:55.000Z"));
    let (page, caught_up) = app.store.events_page(&first, 100, None).await.unwrap();
    assert_eq!(stamps_of(&page.items), [stamps[0].clone()]);
    assert!(caught_up);
    // Later polls from that cursor: the rest of yesterday (not the first event again), then today.
    let later = feed(format!("{t}T00:00:20.000Z"));
    let (page, caught_up) = app.store.events_page(&later, 100, page.next.as_ref()).await.unwrap();
    assert_eq!(stamps_of(&page.items), [stamps[1].clone()]);
    assert!(!caught_up, "yesterday is over: on to today");
    let (page, caught_up) = app.store.events_page(&later, 100, page.next.as_ref()).await.unwrap();
    assert_eq!(stamps_of(&page.items), [stamps[2].clone()]);
    assert!(caught_up);
    let tail = page.next;
    let (page, caught_up) = app.store.events_page(&later, 100, tail.as_ref()).await.unwrap();
    assert!(
        page.items.is_empty() && caught_up,
        "a poll with nothing new reads nothing again"
    );
    // The tail still works tomorrow (its day is kept); today has nothing more, so on to tomorrow.
    let next_day = today.next_day().unwrap();
    let tomorrow = EventFeed {
        from: today,
        today: next_day,
        settled: format!("{}T08:00:00.000Z", timefmt::date(next_day)),
        types: Vec::new(),
    };
    let (page, caught_up) = app.store.events_page(&tomorrow, 100, tail.as_ref()).await.unwrap();
    assert!(page.items.is_empty() && !caught_up);
}
