//! Rescheduling, check-in with accession numbers, and no-shows, over HTTP.

use std::collections::BTreeSet;

use medbook::{auth::Role, domain::timefmt};
use reqwest::Method;
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::helpers::{TestApp, assert_problem, day, slot, spawn_app};

async fn reschedule(app: &TestApp, booking: &Value, to: &str, token: &str) -> reqwest::Response {
    app.request(
        Method::POST,
        &format!(
            "/v1/patients/{}/bookings/{}/reschedule",
            booking["patientId"].as_str().unwrap(),
            booking["id"].as_str().unwrap()
        ),
        Some(token),
    )
    .header("if-match", format!("\"{}\"", booking["version"]))
    .json(&json!({"slotStart": to}))
    .send()
    .await
    .unwrap()
}

async fn items(app: &TestApp, path: &str) -> Vec<Value> {
    let body: Value = app.get(path, &app.staff(Role::Lab)).await.json().await.unwrap();
    body["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn twenty_racing_reschedules_into_three_free_places_move_exactly_three_and_every_index_follows() {
    let app = spawn_app().await;
    let (from_day, to_day) = (day(12), day(13));
    let target = slot(&to_day, "10:00");
    app.booked(app.create_patient().await, &target, &["CBC"]).await;
    let mut bookings = Vec::new();
    for i in 0..20 {
        let at = slot(&from_day, &format!("{:02}:00", 7 + i / 4));
        bookings.push(app.booked(app.create_patient().await, &at, &["CBC"]).await);
    }
    let lab = app.staff(Role::Lab);
    let tasks: Vec<_> = bookings
        .iter()
        .cloned()
        .map(|b| {
            let (app_base, http, lab, target) = (app.base.clone(), app.http.clone(), lab.clone(), target.clone());
            tokio::spawn(async move {
                let res = http
                    .post(format!(
                        "{app_base}/v1/patients/{}/bookings/{}/reschedule",
                        b["patientId"].as_str().unwrap(),
                        b["id"].as_str().unwrap()
                    ))
                    .bearer_auth(lab)
                    .header("if-match", "\"1\"")
                    .json(&json!({"slotStart": target}))
                    .send()
                    .await
                    .unwrap();
                let status = res.status().as_u16();
                (
                    b["id"].as_str().unwrap().to_owned(),
                    status,
                    res.json::<Value>().await.unwrap(),
                )
            })
        })
        .collect();
    let mut moved = BTreeSet::new();
    for task in tasks {
        let (id, status, body) = task.await.unwrap();
        match status {
            200 => {
                assert_eq!(body["slotStart"], target.as_str());
                assert_eq!(body["rescheduledFrom"].as_array().unwrap().len(), 1);
                assert_eq!(body["version"], 2);
                moved.insert(id);
            }
            409 => assert_eq!(body["type"], "urn:medbook:problem:slot-full", "{body}"),
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!(moved.len(), 3, "exactly the three free places");

    // Every slot's places equal its live bookings, on both days.
    for date in [&from_day, &to_day] {
        let schedule = items(&app, &format!("/v1/schedule?date={date}")).await;
        for slot in items(&app, &format!("/v1/sites/MAIN/slots?date={date}")).await {
            let live = schedule.iter().filter(|b| b["slotStart"] == slot["start"]).count() as u64;
            assert_eq!(slot["booked"].as_u64().unwrap(), live, "{date} {}", slot["start"]);
        }
    }
    let new_day = items(&app, &format!("/v1/schedule?date={to_day}")).await;
    assert_eq!(new_day.len(), 4);
    let old_day = items(&app, &format!("/v1/schedule?date={from_day}")).await;
    assert_eq!(old_day.len(), 17);
    assert!(old_day.iter().all(|b| !moved.contains(b["id"].as_str().unwrap())));
    let by_type = |date: &str| format!("/v1/test-types/CBC/tests?from={date}&to={date}&limit=100");
    let new_tests = items(&app, &by_type(&to_day)).await;
    assert_eq!(new_tests.len(), 4, "the moved tests are under their new day");
    assert_eq!(
        items(&app, &by_type(&from_day)).await.len(),
        17,
        "and not under the old"
    );
    let in_slot = &items(&app, &format!("/v1/sites/MAIN/slots?date={to_day}")).await;
    let t = in_slot.iter().find(|s| s["start"] == target.as_str()).unwrap();
    assert_eq!((t["booked"].as_u64(), t["available"].as_u64()), (Some(4), Some(0)));
}

#[tokio::test]
async fn a_reschedule_keeps_the_booking_and_refuses_what_it_must() {
    let app = spawn_app().await;
    let patient = app.create_patient().await;
    let me = app.token(Role::Patient, &patient.to_string());
    let first = app.booked(patient, &slot(&day(14), "08:00"), &["CBC"]).await;
    let res = reschedule(&app, &first, &slot(&day(14), "09:00"), &me).await;
    assert_eq!(res.status(), 200);
    let moved: Value = res.json().await.unwrap();
    assert_eq!(moved["id"], first["id"]);
    assert_eq!(
        moved["rescheduledFrom"][0]["slotStart"],
        slot(&day(14), "08:00").as_str()
    );
    assert_eq!(
        res_status(reschedule(&app, &first, &slot(&day(14), "10:00"), &me).await),
        412,
        "stale version"
    );
    let res = reschedule(&app, &moved, &slot(&day(14), "09:00"), &me).await;
    assert_problem(res, 422, "validation").await;
    let res = reschedule(&app, &moved, &slot(&day(14), "09:07"), &me).await;
    assert_problem(res, 422, "validation").await;
    // The old slot is free again, the same patient may book it.
    assert_eq!(
        app.book(patient, &slot(&day(14), "08:00"), &["TSH"], "again")
            .await
            .status(),
        201
    );
    let path = format!(
        "/v1/patients/{patient}/bookings/{}/reschedule",
        first["id"].as_str().unwrap()
    );
    let without = app
        .request(Method::POST, &path, Some(&me))
        .json(&json!({"slotStart": slot(&day(14), "11:00")}))
        .send()
        .await
        .unwrap();
    assert_eq!(without.status(), 428, "If-Match is required");
    let cancelled = app
        .request(
            Method::POST,
            &format!(
                "/v1/patients/{patient}/bookings/{}/cancel",
                first["id"].as_str().unwrap()
            ),
            Some(&me),
        )
        .send()
        .await
        .unwrap();
    let cancelled: Value = cancelled.json().await.unwrap();
    assert_problem(
        reschedule(&app, &cancelled, &slot(&day(14), "12:00"), &me).await,
        409,
        "already-cancelled",
    )
    .await;
}

fn res_status(res: reqwest::Response) -> u16 {
    res.status().as_u16()
}

/// A site whose local time is around noon now, open all day: a slot an hour ahead is on today's local date.
pub async fn noon_site(app: &TestApp) -> (String, String) {
    let hour = OffsetDateTime::now_utc().hour() as i32;
    let shift = 12 - hour;
    let zone = match shift {
        0 => "Etc/GMT".to_owned(),
        k if k > 0 => format!("Etc/GMT-{k}"),
        k => format!("Etc/GMT+{}", -k),
    };
    let day = json!([{"from": "00:00", "to": "24:00"}]);
    let res = app
        .request(Method::POST, "/v1/sites", Some(&app.staff(Role::Admin)))
        .json(&json!({"code": "NOON", "name": "Noon", "timeZone": zone, "slotMinutes": 60, "capacity": 50,
                      "openingHours": {"mon": day, "tue": day, "wed": day, "thu": day, "fri": day, "sat": day, "sun": day}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let next = OffsetDateTime::now_utc() + Duration::hours(1);
    let start = timefmt::second(
        next.replace_minute(0)
            .unwrap()
            .replace_second(0)
            .unwrap()
            .replace_nanosecond(0)
            .unwrap(),
    );
    (start, zone)
}

pub async fn book_noon(app: &TestApp, start: &str) -> Value {
    let patient = app.create_patient().await;
    let res = app
        .request(
            Method::POST,
            &format!("/v1/patients/{patient}/bookings"),
            Some(&app.staff(Role::Lab)),
        )
        .header("idempotency-key", Uuid::now_v7().to_string())
        .json(&json!({"slotStart": start, "tests": ["CBC"], "site": "NOON"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    res.json().await.unwrap()
}

pub async fn act(app: &TestApp, booking: &Value, action: &str, token: &str) -> reqwest::Response {
    app.request(
        Method::POST,
        &format!(
            "/v1/patients/{}/bookings/{}/{action}",
            booking["patientId"].as_str().unwrap(),
            booking["id"].as_str().unwrap()
        ),
        Some(token),
    )
    .send()
    .await
    .unwrap()
}

#[tokio::test]
async fn check_in_numbers_samples_per_site_and_day_without_gaps_even_when_racing() {
    let app = spawn_app().await;
    let (start, _) = noon_site(&app).await;
    let lab = app.staff(Role::Lab);
    let local_day: String = {
        let b = book_noon(&app, &start).await;
        let local = b["localSlotStart"].as_str().unwrap()[..10].replace('-', "");
        let result = format!(
            "/v1/patients/{}/bookings/{}/tests/{}/result",
            b["patientId"].as_str().unwrap(),
            b["id"].as_str().unwrap(),
            b["tests"][0]["id"].as_str().unwrap()
        );
        let record = || {
            app.request(Method::PUT, &result, Some(&lab))
                .json(&json!({"values": [{"analyte": "HGB", "value": 13, "unit": "g/dL"}],
                              "performedAt": crate::helpers::performed_now()}))
                .send()
        };
        assert_problem(record().await.unwrap(), 409, "not-checked-in").await;
        let res = act(&app, &b, "check-in", &lab).await;
        assert_eq!(res.status(), 200);
        assert_eq!(
            crate::helpers::usage(&res).0,
            3,
            "the tree, the counter, one transaction"
        );
        let checked: Value = res.json().await.unwrap();
        assert_eq!(checked["status"], "checked-in");
        assert!(checked["checkedInAt"].is_string());
        assert_eq!(checked["accession"], format!("NOON-{local}-0001"));
        assert_problem(act(&app, &checked, "check-in", &lab).await, 409, "not-booked").await;
        assert_problem(act(&app, &checked, "cancel", &lab).await, 409, "not-booked").await;
        assert_eq!(record().await.unwrap().status(), 201, "results once checked in");
        local
    };
    let mut racing = Vec::new();
    for _ in 0..10 {
        racing.push(book_noon(&app, &start).await);
    }
    let tasks: Vec<_> = racing
        .into_iter()
        .map(|b| {
            let (base, http, lab) = (app.base.clone(), app.http.clone(), lab.clone());
            tokio::spawn(async move {
                let res = http
                    .post(format!(
                        "{base}/v1/patients/{}/bookings/{}/check-in",
                        b["patientId"].as_str().unwrap(),
                        b["id"].as_str().unwrap()
                    ))
                    .bearer_auth(lab)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 200);
                res.json::<Value>().await.unwrap()["accession"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
        })
        .collect();
    let mut numbers = BTreeSet::new();
    for task in tasks {
        numbers.insert(task.await.unwrap());
    }
    let expected: BTreeSet<String> = (2..=11).map(|n| format!("NOON-{local_day}-{n:04}")).collect();
    assert_eq!(numbers, expected, "unique and gapless");

    // Not before the slot's day, and only by the lab.
    let tomorrow = book_noon(
        &app,
        &timefmt::second(timefmt::parse_instant(&start).unwrap() + Duration::days(1)),
    )
    .await;
    assert_problem(act(&app, &tomorrow, "check-in", &lab).await, 409, "too-early").await;
    let cancelled = book_noon(&app, &start).await;
    assert_eq!(act(&app, &cancelled, "cancel", &lab).await.status(), 200);
    assert_problem(act(&app, &cancelled, "check-in", &lab).await, 409, "already-cancelled").await;
    let patient_token = app.token(Role::Patient, tomorrow["patientId"].as_str().unwrap());
    assert_eq!(act(&app, &tomorrow, "check-in", &patient_token).await.status(), 403);
}

#[tokio::test]
async fn a_no_show_is_recorded_only_once_the_slot_has_started() {
    let app = spawn_app().await;
    let (start, _) = noon_site(&app).await;
    let lab = app.staff(Role::Lab);
    let future = book_noon(&app, &start).await;
    assert_problem(act(&app, &future, "no-show", &lab).await, 409, "too-early").await;
    // A booking whose slot has started (written through the store: the API books only future slots).
    let patient = app.create_patient().await;
    let started = medbook::domain::booking::SlotStart::new(
        (OffsetDateTime::now_utc() - Duration::hours(2))
            .replace_minute(0)
            .unwrap()
            .replace_second(0)
            .unwrap(),
    );
    let booking = medbook::domain::booking::Booking {
        id: Uuid::now_v7(),
        patient_id: patient,
        site: "MAIN".into(),
        slot_start: started,
        local_slot_start: medbook::domain::site::local_text(started.at(), 0),
        place: 0,
        rescheduled_from: Vec::new(),
        checked_in_at: None,
        accession: None,
        results_without_check_in: false,
        status: medbook::domain::booking::BookingStatus::Booked,
        tests: Vec::new(),
        note: None,
        version: 1,
        created_at: timefmt::now(),
        updated_at: timefmt::now(),
    };
    let key = medbook::domain::idempotency::IdempotencyKey::new("lab:t", &Uuid::now_v7().to_string(), &[b"x"]);
    let audit = medbook::domain::audit::AuditDraft {
        actor: medbook::domain::audit::Actor {
            sub: "lab".into(),
            role: "lab".into(),
        },
        action: "POST".into(),
        resource: "/".into(),
        outcome: 201,
        request_id: "r".into(),
    }
    .event(patient);
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let outcome = app
        .store
        .create_booking(
            &booking,
            medbook::store::bookings::PlaceTake::Free(medbook::store::sites::Unchanged {
                site_version: 1,
                rule_version: None,
                slot_version: None,
            }),
            now,
            &key,
            now + 60,
            &audit,
            &[],
            true,
        )
        .await
        .unwrap();
    assert_eq!(outcome, medbook::store::bookings::BookOutcome::Booked);
    let past = json!({"patientId": patient, "id": booking.id});
    let res = act(&app, &past, "no-show", &lab).await;
    assert_eq!(res.status(), 200);
    assert_eq!(crate::helpers::usage(&res).0, 2, "the tree, one transaction");
    let missed: Value = res.json().await.unwrap();
    assert_eq!(
        (missed["status"].as_str(), missed["version"].as_u64()),
        (Some("no-show"), Some(2))
    );
    assert_problem(act(&app, &past, "no-show", &lab).await, 409, "not-booked").await;
    assert_eq!(
        act(&app, &missed, "reschedule", &lab).await.status(),
        428,
        "If-Match is required"
    );
}
