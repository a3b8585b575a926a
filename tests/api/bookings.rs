//! Booking tests into slots: no overbooking, idempotency, cancellation, pagination.

use std::collections::HashSet;

use medbook::auth::Role;
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, assert_problem, day, slot, spawn_app, spawn_app_with, usage};

async fn slot_booked(app: &TestApp, date: &str, start: &str) -> u64 {
    let res = app.get(&format!("/v1/slots?date={date}"), &app.staff(Role::Lab)).await;
    assert_eq!(usage(&res).0, 1);
    let slots: Vec<Value> = res.json().await.unwrap();
    assert_eq!(slots.len(), 44, "07:00-18:00 in 15-minute slots");
    let found = slots.iter().find(|s| s["start"] == start).expect("slot on the grid");
    assert_eq!(
        found["booked"].as_u64().unwrap() + found["available"].as_u64().unwrap(),
        found["capacity"].as_u64().unwrap()
    );
    found["booked"].as_u64().unwrap()
}

#[tokio::test]
async fn a_booking_is_201_with_location_etag_and_the_catalog_versions_it_booked() {
    let app = spawn_app().await;
    let patient = app.create_patient().await;
    let (date, start) = (day(30), slot(&day(30), "07:15"));
    let me = app.token(Role::Patient, &patient.to_string());
    let res = app
        .request(Method::POST, &format!("/v1/patients/{patient}/bookings"), Some(&me))
        .header("idempotency-key", "first-booking")
        .json(&json!({"slotStart": start, "tests": ["CBC", "LIPID"], "note": "first visit"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(
        usage(&res).0,
        2,
        "one strongly consistent Query of the site's day, one transaction"
    );
    assert_eq!(res.headers()["etag"], "\"1\"");
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let booking: Value = res.json().await.unwrap();
    assert_eq!(
        location,
        format!("/v1/patients/{patient}/bookings/{}", booking["id"].as_str().unwrap())
    );
    assert_eq!(booking["status"], "booked");
    assert_eq!(booking["slotStart"], start);
    assert_eq!(booking["note"], "first visit");
    let tests = booking["tests"].as_array().unwrap();
    assert_eq!(tests.len(), 2);
    assert_eq!(tests[0]["testTypeCode"], "CBC");
    assert_eq!(
        tests[0]["testTypeVersion"], 2,
        "the CBC with ranges by sex and age (migration 0003)"
    );
    assert_eq!(tests[0]["status"], "ordered");
    assert_eq!(tests[1]["name"], "Lipid panel");

    let detail = app.get(&location, &me).await;
    assert_eq!(usage(&detail).0, 1, "the booking tree is one Query");
    let detail: Value = detail.json().await.unwrap();
    assert_eq!(detail["tests"][0]["notes"], json!([]));
    assert_eq!(detail["id"], booking["id"]);
    assert_eq!(slot_booked(&app, &date, &start).await, 1);
}

#[tokio::test]
async fn bad_booking_requests_are_4xx_naming_the_field_and_write_nothing() {
    let app = spawn_app().await;
    let patient = app.create_patient().await;
    let date = day(30);
    let admin = app.staff(Role::Admin);
    let post = |body: Value, key: Option<&'static str>| {
        let mut rb = app
            .request(Method::POST, &format!("/v1/patients/{patient}/bookings"), Some(&admin))
            .json(&body);
        if let Some(k) = key {
            rb = rb.header("idempotency-key", k);
        }
        rb.send()
    };
    let good = json!({"slotStart": slot(&date, "08:00"), "tests": ["CBC"]});
    assert_problem(post(good.clone(), None).await.unwrap(), 400, "bad-request").await;

    let past = slot(&day(-1), "08:00");
    let cases = [
        (
            "tests[0]",
            json!({"slotStart": slot(&date, "08:00"), "tests": ["NOPE"]}),
            "NOPE",
        ),
        (
            "tests[1]",
            json!({"slotStart": slot(&date, "08:00"), "tests": ["CBC", "CBC"]}),
            "twice",
        ),
        ("tests", json!({"slotStart": slot(&date, "08:00"), "tests": []}), ""),
        (
            "tests",
            json!({"slotStart": slot(&date, "08:00"), "tests": ["A","B","C","D","E","F","G","H","I","J","K"]}),
            "",
        ),
        (
            "slotStart",
            json!({"slotStart": slot(&date, "08:05"), "tests": ["CBC"]}),
            "slot start",
        ),
        (
            "slotStart",
            json!({"slotStart": slot(&date, "06:45"), "tests": ["CBC"]}),
            "opening hours",
        ),
        (
            "slotStart",
            json!({"slotStart": slot(&date, "18:00"), "tests": ["CBC"]}),
            "opening hours",
        ),
        ("slotStart", json!({"slotStart": past, "tests": ["CBC"]}), "past"),
        (
            "slotStart",
            json!({"slotStart": "tomorrow", "tests": ["CBC"]}),
            "RFC 3339",
        ),
        (
            "note",
            json!({"slotStart": slot(&date, "08:00"), "tests": ["CBC"], "note": "x".repeat(1001)}),
            "",
        ),
        (
            "patientId",
            json!({"slotStart": slot(&date, "08:00"), "tests": ["CBC"], "patientId": "x"}),
            "unknown field",
        ),
    ];
    for (i, (field, body, says)) in cases.into_iter().enumerate() {
        let key: &'static str = Box::leak(format!("bad-{i}").into_boxed_str());
        let problem = assert_problem(post(body, Some(key)).await.unwrap(), 422, "validation").await;
        let error = problem["errors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["field"] == field);
        let error = error.unwrap_or_else(|| panic!("{field}: {problem}"));
        assert!(error["message"].as_str().unwrap().contains(says), "{field}: {problem}");
    }
    let res = app
        .request(
            Method::POST,
            &format!("/v1/patients/{}/bookings", Uuid::now_v7()),
            Some(&admin),
        )
        .header("idempotency-key", "ghost")
        .json(&good)
        .send()
        .await
        .unwrap();
    assert_problem(res, 404, "not-found").await;
    assert_eq!(
        slot_booked(&app, &date, &slot(&date, "08:00")).await,
        0,
        "nothing half-written"
    );
    let list: Value = app
        .get(&format!("/v1/patients/{patient}/bookings"), &admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"], json!([]));
}

#[tokio::test]
async fn fifty_concurrent_bookings_into_a_slot_of_five_give_five_201_and_forty_five_409() {
    let app = spawn_app_with(&[("MEDBOOK_SLOT_CAPACITY", "5")]).await;
    let mut patients = Vec::new();
    for _ in 0..50 {
        patients.push(app.create_patient().await);
    }
    let (date, start) = (day(31), slot(&day(31), "09:00"));
    let handles: Vec<_> = patients
        .iter()
        .map(|p| {
            let (http, url, token, start) = (
                app.http.clone(),
                format!("{}/v1/patients/{p}/bookings", app.base),
                app.staff(Role::Lab),
                start.clone(),
            );
            tokio::spawn(async move {
                let res = http
                    .post(url)
                    .bearer_auth(token)
                    .header("idempotency-key", Uuid::now_v7().to_string())
                    .json(&json!({"slotStart": start, "tests": ["TSH"]}))
                    .send()
                    .await
                    .unwrap();
                let status = res.status().as_u16();
                let body: Value = res.json().await.unwrap();
                (status, body)
            })
        })
        .collect();
    let mut created = Vec::new();
    let mut full = 0;
    for h in handles {
        let (status, body) = h.await.unwrap();
        match status {
            201 => created.push(body),
            409 => {
                assert!(body["type"].as_str().unwrap().ends_with("slot-full"), "{body}");
                full += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!((created.len(), full), (5, 45));
    assert_eq!(slot_booked(&app, &date, &start).await, 5);

    // Cancellations mixed with new attempts: the counter always equals the live bookings.
    let lab = app.staff(Role::Lab);
    let mut handles = Vec::new();
    for booking in &created[..3] {
        let url = format!(
            "{}/v1/patients/{}/bookings/{}/cancel",
            app.base,
            booking["patientId"].as_str().unwrap(),
            booking["id"].as_str().unwrap()
        );
        let (http, token) = (app.http.clone(), lab.clone());
        handles.push(tokio::spawn(async move {
            http.post(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    for p in &patients[10..20] {
        let (http, url, token, start) = (
            app.http.clone(),
            format!("{}/v1/patients/{p}/bookings", app.base),
            lab.clone(),
            start.clone(),
        );
        handles.push(tokio::spawn(async move {
            http.post(url)
                .bearer_auth(token)
                .header("idempotency-key", Uuid::now_v7().to_string())
                .json(&json!({"slotStart": start, "tests": ["CRP"]}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let statuses: Vec<u16> = futures_all(handles).await;
    assert!(statuses[..3].iter().all(|s| *s == 200), "{statuses:?}");
    assert!(statuses[3..].iter().all(|s| matches!(s, 201 | 409)), "{statuses:?}");

    let schedule: Value = app
        .get(&format!("/v1/schedule?date={date}"), &lab)
        .await
        .json()
        .await
        .unwrap();
    let live = schedule["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["status"] == "booked")
        .count() as u64;
    let refills = statuses[3..].iter().filter(|s| **s == 201).count() as u64;
    assert_eq!(live, 2 + refills, "2 kept + the new bookings that got a freed place");
    assert!(live <= 5, "never over capacity");
    assert_eq!(
        slot_booked(&app, &date, &start).await,
        live,
        "the counter equals the live bookings"
    );
}

async fn futures_all<T>(handles: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn the_same_idempotency_key_twenty_times_at_once_makes_one_booking() {
    let app = spawn_app().await;
    let patient = app.create_patient().await;
    let (date, start) = (day(32), slot(&day(32), "10:00"));
    let handles: Vec<_> = (0..20)
        .map(|_| {
            let (http, url, token, start) = (
                app.http.clone(),
                format!("{}/v1/patients/{patient}/bookings", app.base),
                app.staff(Role::Admin),
                start.clone(),
            );
            tokio::spawn(async move {
                let res = http
                    .post(url)
                    .bearer_auth(token)
                    .header("idempotency-key", "same-key-1")
                    .json(&json!({"slotStart": start, "tests": ["CBC", "TSH"]}))
                    .send()
                    .await
                    .unwrap();
                (res.status().as_u16(), res.text().await.unwrap())
            })
        })
        .collect();
    let responses = futures_all(handles).await;
    let distinct: HashSet<&(u16, String)> = responses.iter().collect();
    assert_eq!(distinct.len(), 1, "20 identical responses: {distinct:?}");
    assert_eq!(responses[0].0, 201);
    assert_eq!(slot_booked(&app, &date, &start).await, 1);
    let list: Value = app
        .get(&format!("/v1/patients/{patient}/bookings"), &app.staff(Role::Lab))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);

    let again = app.book(patient, &start, &["CBC", "TSH"], "same-key-1").await;
    assert_eq!(
        (again.status().as_u16(), again.text().await.unwrap()),
        responses[0].clone(),
        "later repeat too"
    );
    let other = app.book(patient, &start, &["CBC"], "same-key-1").await;
    let problem = assert_problem(other, 422, "validation").await;
    assert_eq!(problem["errors"][0]["field"], "Idempotency-Key");
}

#[tokio::test]
async fn cancelling_frees_the_place_once_honours_if_match_and_replays_with_the_same_key() {
    let app = spawn_app().await;
    let patient = app.create_patient().await;
    let me = app.token(Role::Patient, &patient.to_string());
    let (date, start) = (day(33), slot(&day(33), "11:00"));
    let booking = app.booked(patient, &start, &["CBC", "CRP"]).await;
    let cancel_url = format!(
        "/v1/patients/{patient}/bookings/{}/cancel",
        booking["id"].as_str().unwrap()
    );
    let cancel = |if_match: Option<&'static str>, key: Option<&'static str>| {
        let mut rb = app.request(Method::POST, &cancel_url, Some(&me));
        if let Some(v) = if_match {
            rb = rb.header("if-match", v);
        }
        if let Some(k) = key {
            rb = rb.header("idempotency-key", k);
        }
        rb.send()
    };
    assert_problem(cancel(Some("\"7\""), None).await.unwrap(), 412, "precondition-failed").await;

    let res = cancel(Some("\"1\""), Some("cancel-1")).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(usage(&res).0, 2, "read the tree, then one transaction");
    assert_eq!(res.headers()["etag"], "\"2\"");
    let first = res.text().await.unwrap();
    let cancelled: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(cancelled["status"], "cancelled");
    assert!(
        cancelled["tests"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["status"] == "cancelled")
    );
    assert_eq!(slot_booked(&app, &date, &start).await, 0);

    let replay = cancel(None, Some("cancel-1")).await.unwrap();
    assert_eq!(
        (replay.status().as_u16(), replay.text().await.unwrap()),
        (200, first),
        "same key, same result"
    );
    assert_problem(cancel(None, None).await.unwrap(), 409, "already-cancelled").await;
    assert_eq!(
        slot_booked(&app, &date, &start).await,
        0,
        "the place is given back once"
    );

    let detail: Value = app
        .get(
            &format!("/v1/patients/{patient}/bookings/{}", booking["id"].as_str().unwrap()),
            &me,
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(
        detail["tests"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["status"] == "cancelled")
    );
}

#[tokio::test]
async fn bookings_list_in_slot_order_with_filters_and_tamper_proof_cursors() {
    let app = spawn_app().await;
    let (patient, other) = (app.create_patient().await, app.create_patient().await);
    let lab = app.staff(Role::Lab);
    let mut ids = Vec::new();
    for (d, t) in [
        (40, "09:00"),
        (34, "12:00"),
        (36, "07:00"),
        (34, "08:00"),
        (38, "17:45"),
    ] {
        ids.push(
            app.booked(patient, &slot(&day(d), t), &["TSH"]).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    app.booked(other, &slot(&day(34), "08:00"), &["TSH"]).await;
    let base = format!("/v1/patients/{patient}/bookings");

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let url = match &cursor {
            Some(c) => format!("{base}?limit=2&cursor={c}"),
            None => format!("{base}?limit=2"),
        };
        let res = app.get(&url, &lab).await;
        assert_eq!(res.status(), 200);
        assert_eq!(usage(&res).0, 1, "one Query per page");
        let page: Value = res.json().await.unwrap();
        pages += 1;
        for b in page["items"].as_array().unwrap() {
            seen.push(b["slotStart"].as_str().unwrap().to_owned());
        }
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5);
    assert!(pages >= 3);
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "ordered by slot start");

    let first: Value = app.get(&format!("{base}?limit=2"), &lab).await.json().await.unwrap();
    let cursor = first["nextCursor"].as_str().unwrap();
    let foreign = app
        .get(&format!("/v1/patients/{other}/bookings?cursor={cursor}"), &lab)
        .await;
    assert_problem(foreign, 400, "bad-request").await;
    let mut forged = cursor.to_owned();
    forged.replace_range(0..1, if forged.starts_with('e') { "f" } else { "e" });
    assert_problem(
        app.get(&format!("{base}?cursor={forged}"), &lab).await,
        400,
        "bad-request",
    )
    .await;

    let ranged: Value = app
        .get(&format!("{base}?from={}&to={}", day(34), day(36)), &lab)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ranged["items"].as_array().unwrap().len(), 3, "{ranged}");
    let cancel = format!("{base}/{}/cancel", ids[0]);
    assert_eq!(
        app.request(Method::POST, &cancel, Some(&lab))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let booked: Value = app
        .get(&format!("{base}?status=booked"), &lab)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(booked["items"].as_array().unwrap().len(), 4);
    let cancelled: Value = app
        .get(&format!("{base}?status=cancelled"), &lab)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(cancelled["items"].as_array().unwrap().len(), 1);
    assert_problem(app.get(&format!("{base}?limit=0"), &lab).await, 422, "validation").await;
    assert_problem(
        app.get(&format!("{base}?from=yesterday"), &lab).await,
        422,
        "validation",
    )
    .await;
}

#[tokio::test]
async fn repeating_a_booking_after_its_slot_filled_returns_the_first_answer_not_409() {
    let app = spawn_app_with(&[("MEDBOOK_SLOT_CAPACITY", "1")]).await;
    let (a, b) = (app.create_patient().await, app.create_patient().await);
    let start = slot(&day(37), "13:00");
    let first = app.book(a, &start, &["TSH"], "only-place").await;
    assert_eq!(first.status(), 201);
    let first = first.text().await.unwrap();
    assert_problem(app.book(b, &start, &["TSH"], "too-late").await, 409, "slot-full").await;
    let repeat = app.book(a, &start, &["TSH"], "only-place").await;
    assert_eq!(repeat.status(), 201, "the key's record wins over the full slot");
    assert_eq!(repeat.text().await.unwrap(), first);
}

#[tokio::test]
async fn a_bookings_cursor_is_refused_when_any_filter_differs() {
    let app = spawn_app().await;
    let patient = app.create_patient().await;
    let lab = app.staff(Role::Lab);
    for (d, t) in [(34, "08:00"), (35, "08:00"), (36, "08:00")] {
        app.booked(patient, &slot(&day(d), t), &["TSH"]).await;
    }
    let base = format!("/v1/patients/{patient}/bookings");
    let range = format!("from={}&to={}", day(30), day(40));
    let first: Value = app
        .get(&format!("{base}?limit=1&status=booked&{range}"), &lab)
        .await
        .json()
        .await
        .unwrap();
    let cursor = first["nextCursor"].as_str().expect("a second page");
    let same = app
        .get(&format!("{base}?limit=1&status=booked&{range}&cursor={cursor}"), &lab)
        .await;
    assert_eq!(same.status(), 200, "the same list and filters");
    for other in [
        format!("status=cancelled&{range}"),
        range.clone(),
        format!("status=booked&from={}&to={}", day(31), day(40)),
        format!("status=booked&from={}", day(30)),
        "status=booked".to_owned(),
    ] {
        let res = app.get(&format!("{base}?limit=1&{other}&cursor={cursor}"), &lab).await;
        assert_problem(res, 400, "bad-request").await;
    }
}
