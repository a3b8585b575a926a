//! Sites over HTTP: local-time slots across DST, day rules, holds that expire without cleanup, minimum notice.

use std::time::Duration;

use medbook::auth::Role;
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, assert_problem, day, slot, spawn_app};

fn every_day(from: &str, to: &str) -> Value {
    let day = json!([{"from": from, "to": to}]);
    json!({"mon": day, "tue": day, "wed": day, "thu": day, "fri": day, "sat": day, "sun": day})
}

async fn create_site(app: &TestApp, site: Value) -> Value {
    let res = app
        .request(Method::POST, "/v1/sites", Some(&app.staff(Role::Admin)))
        .json(&site)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "site");
    res.json().await.unwrap()
}

async fn slots(app: &TestApp, site: &str, date: &str) -> Vec<Value> {
    let res = app
        .get(&format!("/v1/sites/{site}/slots?date={date}"), &app.staff(Role::Lab))
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    body["items"].as_array().unwrap().clone()
}

fn starts(slots: &[Value]) -> Vec<(String, String)> {
    slots
        .iter()
        .map(|s| {
            (
                s["start"].as_str().unwrap().to_owned(),
                s["localStart"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn book_at(app: &TestApp, patient: Uuid, site: &str, start: &str, token: &str) -> reqwest::Response {
    app.request(Method::POST, &format!("/v1/patients/{patient}/bookings"), Some(token))
        .header("idempotency-key", Uuid::now_v7().to_string())
        .json(&json!({"slotStart": start, "tests": ["CBC"], "site": site}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn slots_follow_each_sites_local_hours_across_both_dst_changes() {
    let app = spawn_app().await;
    let site = |code: &str, zone: &str, from: &str, to: &str| {
        json!({"code": code, "name": code, "timeZone": zone, "slotMinutes": 60, "capacity": 2,
               "openingHours": every_day(from, to), "bookingHorizonDays": 730})
    };
    create_site(&app, site("BER", "Europe/Berlin", "07:00", "09:00")).await;
    create_site(&app, site("NYC", "America/New_York", "07:00", "08:00")).await;
    create_site(&app, site("NIGHT", "Europe/Berlin", "01:00", "04:00")).await;

    let pair = |start: &str, local: &str| (start.to_owned(), local.to_owned());
    assert_eq!(
        starts(&slots(&app, "BER", "2027-03-27").await),
        [
            pair("2027-03-27T06:00:00Z", "2027-03-27T07:00:00+01:00"),
            pair("2027-03-27T07:00:00Z", "2027-03-27T08:00:00+01:00")
        ]
    );
    assert_eq!(
        starts(&slots(&app, "BER", "2027-03-28").await)[0],
        pair("2027-03-28T05:00:00Z", "2027-03-28T07:00:00+02:00"),
        "the same 07:00, an hour earlier in UTC"
    );
    assert_eq!(
        starts(&slots(&app, "BER", "2027-10-31").await)[0],
        pair("2027-10-31T06:00:00Z", "2027-10-31T07:00:00+01:00")
    );
    assert_eq!(
        starts(&slots(&app, "NYC", "2027-03-14").await),
        [pair("2027-03-14T11:00:00Z", "2027-03-14T07:00:00-04:00")]
    );
    assert_eq!(
        starts(&slots(&app, "NYC", "2027-11-07").await),
        [pair("2027-11-07T12:00:00Z", "2027-11-07T07:00:00-05:00")]
    );
    // Hours across the change: 02:00 does not exist in spring and happens twice in autumn.
    let spring: Vec<String> = starts(&slots(&app, "NIGHT", "2027-03-28").await)
        .into_iter()
        .map(|(_, local)| local)
        .collect();
    assert_eq!(spring, ["2027-03-28T01:00:00+01:00", "2027-03-28T03:00:00+02:00"]);
    let autumn = starts(&slots(&app, "NIGHT", "2027-10-31").await);
    assert_eq!(
        autumn,
        [
            pair("2027-10-30T23:00:00Z", "2027-10-31T01:00:00+02:00"),
            pair("2027-10-31T00:00:00Z", "2027-10-31T02:00:00+02:00"),
            pair("2027-10-31T01:00:00Z", "2027-10-31T02:00:00+01:00"),
            pair("2027-10-31T02:00:00Z", "2027-10-31T03:00:00+01:00"),
        ]
    );
    // The two 02:00s are two slots: one patient can book both.
    let patient = app.create_patient().await;
    let admin = app.staff(Role::Admin);
    for (start, local) in &autumn[1..3] {
        let res = book_at(&app, patient, "NIGHT", start, &admin).await;
        assert_eq!(res.status(), 201);
        let booking: Value = res.json().await.unwrap();
        assert_eq!(
            (booking["site"].as_str(), booking["localSlotStart"].as_str()),
            (Some("NIGHT"), Some(local.as_str()))
        );
    }
    // The skipped hour is no slot.
    let res = book_at(&app, patient, "NIGHT", "2027-03-28T01:30:00Z", &admin).await;
    let problem = assert_problem(res, 422, "validation").await;
    assert_eq!(problem["errors"][0]["field"], "slotStart");
    let schedule: Value = app
        .get("/v1/schedule?site=NIGHT&date=2027-10-31", &app.staff(Role::Lab))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        schedule["items"].as_array().unwrap().len(),
        2,
        "both under the local day"
    );
}

#[tokio::test]
async fn site_definitions_are_checked_by_field() {
    let app = spawn_app().await;
    let admin = app.staff(Role::Admin);
    let res = app
        .request(Method::POST, "/v1/sites", Some(&admin))
        .json(
            &json!({"code": "X1", "name": "X", "timeZone": "Mars/Olympus", "slotMinutes": 7, "capacity": 0,
                      "openingHours": {"mon": [{"from": "09:00", "to": "08:00"}]}}),
        )
        .send()
        .await
        .unwrap();
    let problem = assert_problem(res, 422, "validation").await;
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    for field in ["timeZone", "slotMinutes", "capacity", "openingHours.mon"] {
        assert!(fields.contains(&field), "{field}: {problem}");
    }
    assert_eq!(app.get("/v1/sites/X1", &admin).await.status(), 404, "nothing written");
    let main: Value = app.get("/v1/sites/MAIN", &admin).await.json().await.unwrap();
    assert_eq!(
        (main["timeZone"].as_str(), main["capacity"].as_u64()),
        (Some("UTC"), Some(4))
    );
    let mut changed = main.clone();
    for key in ["version", "createdAt", "updatedAt"] {
        changed.as_object_mut().unwrap().remove(key);
    }
    changed["capacity"] = json!(3);
    let put = |tag: &'static str| {
        app.request(Method::PUT, "/v1/sites/MAIN", Some(&admin))
            .header("if-match", tag)
            .json(&changed)
            .send()
    };
    assert_eq!(put("\"1\"").await.unwrap().status(), 200);
    assert_eq!(put("\"1\"").await.unwrap().status(), 412, "stale");
    let slots = slots(&app, "MAIN", &day(10)).await;
    assert_eq!(slots[0]["capacity"], 3, "the new version at once on this replica");
}

#[tokio::test]
async fn live_holds_and_bookings_never_exceed_capacity_and_expired_holds_free_their_places_at_once() {
    let app = spawn_app().await;
    create_site(
        &app,
        json!({"code": "RACE", "name": "Race", "timeZone": "Europe/Berlin", "slotMinutes": 30, "capacity": 5,
               "openingHours": every_day("07:00", "12:00"), "holdSeconds": 2}),
    )
    .await;
    let date = day(5);
    let start = slots(&app, "RACE", &date).await[0]["start"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut patients = Vec::new();
    for _ in 0..60 {
        patients.push(app.create_patient().await);
    }
    let lab = app.staff(Role::Lab);
    let mut tasks = Vec::new();
    for (i, patient) in patients.iter().copied().enumerate() {
        let (http, base, lab, start) = (app.http.clone(), app.base.clone(), lab.clone(), start.clone());
        tasks.push(tokio::spawn(async move {
            let res = if i % 2 == 0 {
                http.post(format!("{base}/v1/sites/RACE/holds"))
                    .bearer_auth(&lab)
                    .json(&json!({"slotStart": start, "patientId": patient}))
                    .send()
                    .await
            } else {
                http.post(format!("{base}/v1/patients/{patient}/bookings"))
                    .bearer_auth(&lab)
                    .header("idempotency-key", Uuid::now_v7().to_string())
                    .json(&json!({"slotStart": start, "tests": ["CBC"], "site": "RACE"}))
                    .send()
                    .await
            };
            (i % 2 == 0, res.unwrap().status().as_u16())
        }));
    }
    let (mut holds, mut bookings) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            (true, 201) => holds += 1,
            (false, 201) => bookings += 1,
            (_, 409 | 503) => {}
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert!(holds + bookings <= 5, "{holds} holds + {bookings} bookings in 5 places");
    assert_eq!(holds + bookings, 5, "every place was taken by someone");
    let now = &slots(&app, "RACE", &date).await[0];
    assert_eq!(
        (now["booked"].as_u64(), now["held"].as_u64()),
        (Some(bookings), Some(holds))
    );
    assert_eq!(now["available"], 0);

    tokio::time::sleep(Duration::from_millis(3100)).await;
    let later = &slots(&app, "RACE", &date).await[0];
    assert_eq!(
        (later["held"].as_u64(), later["available"].as_u64()),
        (Some(0), Some(holds))
    );
    // No cleanup ran (TTL deletes days late): the capacity condition itself takes expired holds as free.
    let mut rebooked = 0;
    // The patients who only held (a booking patient has this slot already).
    for patient in patients.iter().step_by(2).take(holds as usize + 1) {
        let res = book_at(&app, *patient, "RACE", &start, &lab).await;
        match res.status().as_u16() {
            201 => rebooked += 1,
            409 => {}
            other => panic!("{other}"),
        }
    }
    assert_eq!(rebooked, holds, "each expired hold's place, and not one more");
}

#[tokio::test]
async fn a_hold_becomes_its_patients_booking_and_an_expired_or_foreign_hold_does_not() {
    let app = spawn_app().await;
    create_site(
        &app,
        json!({"code": "HOLD", "name": "Hold", "timeZone": "UTC", "slotMinutes": 30, "capacity": 1,
               "openingHours": every_day("07:00", "12:00"), "holdSeconds": 1}),
    )
    .await;
    let (me, other) = (app.create_patient().await, app.create_patient().await);
    let my_token = app.token(Role::Patient, &me.to_string());
    let start = slot(&day(6), "07:00");
    let hold = |patient: Uuid, token: String, at: String| {
        let app = &app;
        async move {
            app.request(Method::POST, "/v1/sites/HOLD/holds", Some(&token))
                .json(&json!({"slotStart": at, "patientId": patient}))
                .send()
                .await
                .unwrap()
        }
    };
    let res = hold(other, my_token.clone(), start.clone()).await;
    assert_eq!(res.status(), 404, "a patient holds only for themself");
    let res = hold(me, my_token.clone(), start.clone()).await;
    assert_eq!(res.status(), 201);
    let held: Value = res.json().await.unwrap();
    assert_problem(hold(other, app.staff(Role::Lab), start.clone()).await, 409, "slot-full").await;
    let with_hold = |patient: Uuid, token: &str, id: &Value| {
        app.request(Method::POST, &format!("/v1/patients/{patient}/bookings"), Some(token))
            .header("idempotency-key", Uuid::now_v7().to_string())
            .json(&json!({"slotStart": start, "tests": ["CBC"], "site": "HOLD", "holdId": id}))
            .send()
    };
    assert_eq!(
        with_hold(other, &app.staff(Role::Lab), &held["id"])
            .await
            .unwrap()
            .status(),
        404,
        "another patient's hold"
    );
    let res = with_hold(me, &my_token, &held["id"]).await.unwrap();
    assert_eq!(res.status(), 201);
    let slot_now = &slots(&app, "HOLD", &day(6)).await[0];
    assert_eq!(
        (slot_now["booked"].as_u64(), slot_now["held"].as_u64()),
        (Some(1), Some(0))
    );

    // A hold that expires before it is used.
    let later = slot(&day(6), "07:30");
    let res = hold(me, my_token.clone(), later.clone()).await;
    let expired: Value = res.json().await.unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let res = app
        .request(Method::POST, &format!("/v1/patients/{me}/bookings"), Some(&my_token))
        .header("idempotency-key", Uuid::now_v7().to_string())
        .json(&json!({"slotStart": later, "tests": ["CBC"], "site": "HOLD", "holdId": expired["id"]}))
        .send()
        .await
        .unwrap();
    assert_problem(res, 409, "hold-expired").await;

    // Released: free at once.
    let third = slot(&day(6), "08:00");
    let res = hold(me, my_token.clone(), third.clone()).await;
    let released: Value = res.json().await.unwrap();
    let path = format!("/v1/sites/HOLD/holds/{}", released["id"].as_str().unwrap());
    let stranger = app.token(Role::Patient, &other.to_string());
    assert_eq!(
        app.request(Method::DELETE, &path, Some(&stranger))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        app.request(Method::DELETE, &path, Some(&my_token))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(slots(&app, "HOLD", &day(6)).await[2]["available"], 1);
}

#[tokio::test]
async fn closing_a_day_that_has_bookings_needs_force_and_reports_them() {
    let app = spawn_app().await;
    let (admin, lab) = (app.staff(Role::Admin), app.staff(Role::Lab));
    let date = day(8);
    let patient = app.create_patient().await;
    app.booked(patient, &slot(&date, "08:00"), &["CBC"]).await;
    let close = |force: bool| {
        app.request(
            Method::PUT,
            &format!("/v1/sites/MAIN/days/{date}{}", if force { "?force=true" } else { "" }),
            Some(&admin),
        )
        .json(&json!({"closed": true}))
        .send()
    };
    assert_problem(close(false).await.unwrap(), 409, "day-has-bookings").await;
    assert!(!slots(&app, "MAIN", &date).await.is_empty(), "refused: nothing changed");
    let days: Value = app.get("/v1/sites/MAIN/days", &lab).await.json().await.unwrap();
    assert!(
        days["items"].as_array().unwrap().is_empty(),
        "the refused rule was undone"
    );

    let res = close(true).await.unwrap();
    assert_eq!(res.status(), 200);
    let rule: Value = res.json().await.unwrap();
    assert_eq!(
        rule["bookingsLeft"],
        json!([{"slotStart": slot(&date, "08:00"), "bookings": 1}])
    );
    assert!(slots(&app, "MAIN", &date).await.is_empty());
    let other = app.create_patient().await;
    let problem = assert_problem(
        app.book(other, &slot(&date, "09:00"), &["CBC"], "closed").await,
        422,
        "validation",
    )
    .await;
    assert!(problem["detail"].as_str().unwrap().contains("closed"), "{problem}");
    let schedule: Value = app
        .get(&format!("/v1/schedule?date={date}"), &lab)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(schedule["items"].as_array().unwrap().len(), 1, "the booking is kept");

    let days: Value = app.get("/v1/sites/MAIN/days", &lab).await.json().await.unwrap();
    assert_eq!(days["items"][0]["date"], date.as_str());
    let path = format!("/v1/sites/MAIN/days/{date}");
    assert_eq!(
        app.request(Method::DELETE, &path, Some(&admin))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        app.request(Method::DELETE, &path, Some(&admin))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        app.book(other, &slot(&date, "09:00"), &["CBC"], "open").await.status(),
        201
    );

    // Other hours and capacity for one day.
    let res = app
        .request(Method::PUT, &format!("/v1/sites/MAIN/days/{}", day(9)), Some(&admin))
        .json(&json!({"openingHours": [{"from": "10:00", "to": "11:00"}], "capacity": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let short = slots(&app, "MAIN", &day(9)).await;
    assert_eq!(short.len(), 4);
    assert_eq!(
        (short[0]["start"].as_str(), short[0]["capacity"].as_u64()),
        (Some(slot(&day(9), "10:00").as_str()), Some(1))
    );
    let incoherent = app
        .request(Method::PUT, &format!("/v1/sites/MAIN/days/{}", day(9)), Some(&admin))
        .json(&json!({"closed": true, "capacity": 1}))
        .send()
        .await
        .unwrap();
    assert_problem(incoherent, 422, "validation").await;
}

#[tokio::test]
async fn a_patient_may_not_book_or_cancel_within_the_minimum_notice_but_the_lab_may() {
    let app = spawn_app().await;
    create_site(
        &app,
        json!({"code": "SOON", "name": "Soon", "timeZone": "UTC", "slotMinutes": 15, "capacity": 3,
               "openingHours": every_day("00:00", "24:00"), "minimumNoticeMinutes": 600}),
    )
    .await;
    let patient = app.create_patient().await;
    let me = app.token(Role::Patient, &patient.to_string());
    // A slot about two hours ahead: inside the ten hours' notice.
    let soon = time::OffsetDateTime::now_utc() + time::Duration::hours(2);
    let start = medbook::domain::timefmt::second(
        soon.replace_minute(0)
            .unwrap()
            .replace_second(0)
            .unwrap()
            .replace_nanosecond(0)
            .unwrap(),
    );
    let problem = assert_problem(book_at(&app, patient, "SOON", &start, &me).await, 422, "validation").await;
    assert!(
        problem["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("600 minutes"),
        "{problem}"
    );
    let res = book_at(&app, patient, "SOON", &start, &app.staff(Role::Lab)).await;
    assert_eq!(res.status(), 201, "staff may book at short notice");
    let booking: Value = res.json().await.unwrap();
    let cancel = |token: String| {
        app.request(
            Method::POST,
            &format!(
                "/v1/patients/{patient}/bookings/{}/cancel",
                booking["id"].as_str().unwrap()
            ),
            Some(&token),
        )
        .send()
    };
    assert_problem(cancel(me.clone()).await.unwrap(), 409, "too-late").await;
    assert_eq!(cancel(app.staff(Role::Lab)).await.unwrap().status(), 200);
}

#[tokio::test]
async fn with_places_left_above_a_lowered_capacity_racing_bookings_still_fit_the_new_capacity() {
    let app = spawn_app().await;
    let date = day(15);
    let start = slot(&date, "09:00");
    let mut booked = Vec::new();
    for _ in 0..4 {
        let patient = app.create_patient().await;
        booked.push((patient, app.booked(patient, &start, &["CBC"]).await));
    }
    // Give back places 0 and 1; places 2 and 3 stay taken.
    let admin = app.staff(Role::Admin);
    for (patient, booking) in &booked {
        let tree = app
            .store
            .booking_tree(*patient, booking["id"].as_str().unwrap().parse().unwrap())
            .await
            .unwrap()
            .unwrap();
        if tree.booking.place < 2 {
            let res = app
                .request(
                    Method::POST,
                    &format!(
                        "/v1/patients/{patient}/bookings/{}/cancel",
                        booking["id"].as_str().unwrap()
                    ),
                    Some(&admin),
                )
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
        }
    }
    // Capacity 3 that day: one seat is left, though places 0 and 1 are both free.
    let res = app
        .request(
            Method::PUT,
            &format!("/v1/sites/MAIN/days/{date}?force=true"),
            Some(&admin),
        )
        .json(&json!({"capacity": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut patients = Vec::new();
    for _ in 0..30 {
        patients.push(app.create_patient().await);
    }
    let tasks: Vec<_> = patients
        .into_iter()
        .map(|patient| {
            let (http, base, admin, start) = (app.http.clone(), app.base.clone(), admin.clone(), start.clone());
            tokio::spawn(async move {
                http.post(format!("{base}/v1/patients/{patient}/bookings"))
                    .bearer_auth(admin)
                    .header("idempotency-key", Uuid::now_v7().to_string())
                    .json(&json!({"slotStart": start, "tests": ["CBC"]}))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            201 => won += 1,
            409 | 503 => {}
            other => panic!("{other}"),
        }
    }
    assert_eq!(won, 1, "three seats: two taken above the line, one left");
    let seats = &slots(&app, "MAIN", &date).await;
    let nine = seats.iter().find(|s| s["start"] == start.as_str()).unwrap();
    assert_eq!(
        (nine["booked"].as_u64(), nine["available"].as_u64()),
        (Some(3), Some(0))
    );
}

#[tokio::test]
async fn a_replica_with_the_site_cached_books_by_the_sites_new_version() {
    let first = spawn_app().await;
    let table = first.store.table().to_owned();
    let second = crate::helpers::spawn_app_with(&[("MEDBOOK_TABLE", &table)]).await;
    let admin = first.staff(Role::Admin);
    // Both replicas have MAIN (version 1, capacity 4) cached; the first changes it to one place a slot.
    let mut main: Value = first.get("/v1/sites/MAIN", &admin).await.json().await.unwrap();
    assert_eq!(second.get("/v1/sites/MAIN", &admin).await.status(), 200);
    for key in ["version", "createdAt", "updatedAt"] {
        main.as_object_mut().unwrap().remove(key);
    }
    main["capacity"] = json!(1);
    let res = first
        .request(Method::PUT, "/v1/sites/MAIN", Some(&admin))
        .header("if-match", "\"1\"")
        .json(&main)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let start = slot(&day(16), "09:00");
    let (a, b) = (second.create_patient().await, second.create_patient().await);
    assert_eq!(second.book(a, &start, &["CBC"], "a").await.status(), 201);
    assert_problem(second.book(b, &start, &["CBC"], "b").await, 409, "slot-full").await;
}

#[tokio::test]
async fn holds_count_when_a_day_closes_a_closed_day_takes_no_hold_and_a_patient_holds_one_place_per_site() {
    let app = spawn_app().await;
    let admin = app.staff(Role::Admin);
    let patient = app.create_patient().await;
    let me = app.token(Role::Patient, &patient.to_string());
    let date = day(17);
    let hold = |at: String| {
        app.request(Method::POST, "/v1/sites/MAIN/holds", Some(&me))
            .json(&json!({"slotStart": at, "patientId": patient}))
            .send()
    };
    let res = hold(slot(&date, "09:00")).await.unwrap();
    assert_eq!(res.status(), 201);
    let held: Value = res.json().await.unwrap();
    assert_problem(hold(slot(&date, "10:00")).await.unwrap(), 409, "already-holding").await;

    let close = |force: bool| {
        app.request(
            Method::PUT,
            &format!("/v1/sites/MAIN/days/{date}{}", if force { "?force=true" } else { "" }),
            Some(&admin),
        )
        .json(&json!({"closed": true}))
        .send()
    };
    assert_problem(close(false).await.unwrap(), 409, "day-has-bookings").await;
    assert_eq!(close(true).await.unwrap().status(), 200);
    let res = app
        .request(Method::POST, &format!("/v1/patients/{patient}/bookings"), Some(&me))
        .header("idempotency-key", "from-hold")
        .json(&json!({"slotStart": slot(&date, "09:00"), "tests": ["CBC"], "holdId": held["id"]}))
        .send()
        .await
        .unwrap();
    let problem = assert_problem(res, 422, "validation").await;
    assert!(problem["detail"].as_str().unwrap().contains("closed"), "{problem}");

    let path = format!("/v1/sites/MAIN/holds/{}", held["id"].as_str().unwrap());
    assert_eq!(
        app.request(Method::DELETE, &path, Some(&me))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    let res = hold(slot(&day(18), "10:00")).await.unwrap();
    assert_eq!(res.status(), 201, "released: the patient may hold again");
}

#[tokio::test]
async fn a_repeated_booking_from_a_hold_returns_the_first_answer_and_a_sites_time_zone_stays() {
    let app = spawn_app().await;
    let patient = app.create_patient().await;
    let me = app.token(Role::Patient, &patient.to_string());
    let start = slot(&day(19), "09:00");
    let held: Value = app
        .request(Method::POST, "/v1/sites/MAIN/holds", Some(&me))
        .json(&json!({"slotStart": start, "patientId": patient}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let book = || {
        app.request(Method::POST, &format!("/v1/patients/{patient}/bookings"), Some(&me))
            .header("idempotency-key", "hold-once")
            .json(&json!({"slotStart": start, "tests": ["CBC"], "holdId": held["id"]}))
            .send()
    };
    let first = book().await.unwrap();
    assert_eq!(first.status(), 201);
    let first = first.text().await.unwrap();
    let again = book().await.unwrap();
    assert_eq!(again.status(), 201, "the hold is gone, the key's record answers");
    assert_eq!(again.text().await.unwrap(), first);

    let admin = app.staff(Role::Admin);
    let mut main: Value = app.get("/v1/sites/MAIN", &admin).await.json().await.unwrap();
    for key in ["version", "createdAt", "updatedAt"] {
        main.as_object_mut().unwrap().remove(key);
    }
    main["timeZone"] = json!("Europe/Berlin");
    let res = app
        .request(Method::PUT, "/v1/sites/MAIN", Some(&admin))
        .header("if-match", "\"1\"")
        .json(&main)
        .send()
        .await
        .unwrap();
    let problem = assert_problem(res, 422, "validation").await;
    assert_eq!(problem["errors"][0]["field"], "timeZone");
}
