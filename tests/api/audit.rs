//! The audit trail: every request on a patient's data leaves exactly one event.

use std::time::Duration;

use medbook::{auth::Role, domain::audit::AuditEvent};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, assert_problem, day, slot, spawn_app, usage};

/// Every event of `patient` this month, oldest first, read straight from the store (an HTTP read of the
/// trail would itself be audited).
async fn events(app: &TestApp, patient: Uuid) -> Vec<AuditEvent> {
    let today = time::OffsetDateTime::now_utc().date();
    let month = medbook::domain::booking::DateRange::new(today.replace_day(1).unwrap(), today).unwrap();
    let page = app.store.audit_page(patient, month, 100, None).await.unwrap();
    let mut items = page.items;
    items.reverse();
    items
}

/// Waits until `patient` has `count` events (reads are recorded in the background), then makes sure no more
/// arrive.
async fn expect_events(app: &TestApp, patient: Uuid, count: usize) -> Vec<AuditEvent> {
    for _ in 0..100 {
        let now = events(app, patient).await;
        if now.len() >= count {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let now = events(app, patient).await;
    assert_eq!(now.len(), count, "{now:#?}");
    now
}

#[tokio::test]
async fn every_request_on_a_patients_data_leaves_exactly_one_event() {
    let app = spawn_app().await;
    let (admin, lab, doctor) = (app.staff(Role::Admin), app.staff(Role::Lab), app.staff(Role::Doctor));
    let res = app
        .request(Method::POST, "/v1/patients", Some(&lab))
        .header("x-request-id", "create-1")
        .json(&json!({"givenName": "Ada", "familyName": "Lovelace", "birthDate": "1990-12-10", "sex": "female"}))
        .send()
        .await
        .unwrap();
    let p: Uuid = res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let mut expected = 1;
    let first = expect_events(&app, p, expected).await;
    assert_eq!(first[0].action, "POST /v1/patients");
    assert_eq!(
        (first[0].actor.sub.as_str(), first[0].actor.role.as_str()),
        ("lab-1", "lab")
    );
    assert_eq!((first[0].outcome, first[0].request_id.as_str()), (201, "create-1"));

    let booking = app.booked(p, &slot(&day(30), "07:00"), &["CBC"]).await;
    expected += 1;
    app.check_in(p, booking["id"].as_str().unwrap()).await;
    expected += 1;
    let (b, t) = (
        booking["id"].as_str().unwrap().to_owned(),
        booking["tests"][0]["id"].as_str().unwrap().to_owned(),
    );
    let test = format!("/v1/patients/{p}/bookings/{b}/tests/{t}");
    let values = json!({"values": [{"analyte": "HGB", "value": 13, "unit": "g/dL"}], "performedAt": crate::helpers::performed_now()});
    let me = app.token(Role::Patient, &p.to_string());
    let stranger = app.token(Role::Patient, &Uuid::now_v7().to_string());

    let steps: Vec<(String, u16, reqwest::RequestBuilder)> = vec![
        (
            "GET /v1/patients/{patientId}".into(),
            200,
            app.request(Method::GET, &format!("/v1/patients/{p}"), Some(&me)),
        ),
        (
            "PATCH /v1/patients/{patientId}".into(),
            200,
            app.request(Method::PATCH, &format!("/v1/patients/{p}"), Some(&lab))
                .header("if-match", "\"1\"")
                .json(&json!({"familyName": "King"})),
        ),
        (
            "PATCH /v1/patients/{patientId}".into(),
            412,
            app.request(Method::PATCH, &format!("/v1/patients/{p}"), Some(&lab))
                .header("if-match", "\"1\"")
                .json(&json!({"familyName": "X"})),
        ),
        (
            "GET /v1/patients/{patientId}/bookings".into(),
            200,
            app.request(Method::GET, &format!("/v1/patients/{p}/bookings"), Some(&doctor)),
        ),
        (
            "GET /v1/patients/{patientId}/bookings/{bookingId}".into(),
            200,
            app.request(Method::GET, &format!("/v1/patients/{p}/bookings/{b}"), Some(&me)),
        ),
        (
            "PUT /v1/patients/{patientId}/bookings/{bookingId}/tests/{testId}/result".into(),
            201,
            app.request(Method::PUT, &format!("{test}/result"), Some(&lab))
                .json(&values),
        ),
        (
            "GET /v1/patients/{patientId}/bookings/{bookingId}/tests/{testId}/result".into(),
            200,
            app.request(Method::GET, &format!("{test}/result"), Some(&me)),
        ),
        (
            "GET /v1/patients/{patientId}/bookings/{bookingId}/tests/{testId}/result/history".into(),
            200,
            app.request(Method::GET, &format!("{test}/result/history"), Some(&doctor)),
        ),
        (
            "POST /v1/patients/{patientId}/bookings/{bookingId}/tests/{testId}/notes".into(),
            201,
            app.request(Method::POST, &format!("{test}/notes"), Some(&doctor))
                .json(&json!({"text": "ok"})),
        ),
        (
            "POST /v1/patients/{patientId}/bookings/{bookingId}/tests/{testId}/result/verify".into(),
            200,
            app.request(
                Method::POST,
                &format!("{test}/result/verify"),
                Some(&app.token(Role::Lab, "lab-2")),
            )
            .header("if-match", "\"1\""),
        ),
        (
            "POST /v1/patients/{patientId}/bookings/{bookingId}/tests/{testId}/review".into(),
            200,
            app.request(Method::POST, &format!("{test}/review"), Some(&doctor))
                .header("if-match", "\"2\"")
                .json(&json!({"conclusion": "fine"})),
        ),
        (
            "POST /v1/patients/{patientId}/bookings/{bookingId}/cancel".into(),
            409,
            app.request(
                Method::POST,
                &format!("/v1/patients/{p}/bookings/{b}/cancel"),
                Some(&me),
            ),
        ),
        (
            "GET /v1/patients/{patientId}".into(),
            404,
            app.request(Method::GET, &format!("/v1/patients/{p}"), Some(&stranger)),
        ),
        (
            "POST /v1/patients/{patientId}/bookings/{bookingId}/tests/{testId}/notes".into(),
            403,
            app.request(Method::POST, &format!("{test}/notes"), Some(&lab))
                .json(&json!({"text": "no"})),
        ),
        (
            "GET /v1/schedule".into(),
            200,
            app.request(Method::GET, &format!("/v1/schedule?date={}", day(30)), Some(&lab)),
        ),
        (
            "GET /v1/test-types/{code}/tests".into(),
            200,
            app.request(
                Method::GET,
                &format!("/v1/test-types/CBC/tests?from={0}&to={0}", day(30)),
                Some(&doctor),
            ),
        ),
        (
            "GET /v1/patients/{patientId}/audit".into(),
            200,
            app.request(Method::GET, &format!("/v1/patients/{p}/audit"), Some(&admin)),
        ),
    ];
    for (action, status, request) in steps {
        let res = request.send().await.unwrap();
        assert_eq!(res.status().as_u16(), status, "{action}");
        expected += 1;
        let all = expect_events(&app, p, expected).await;
        let last = all.last().unwrap();
        assert_eq!(
            (last.action.as_str(), last.outcome),
            (action.as_str(), status),
            "{all:#?}"
        );
    }
    // A request without a valid token touched nothing and is not attributed to anyone.
    let res = app
        .request(Method::GET, &format!("/v1/patients/{p}"), None)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    expect_events(&app, p, expected).await;
}

#[tokio::test]
async fn the_patient_reads_who_looked_at_their_data_newest_first_one_query_per_page() {
    let app = spawn_app().await;
    let p = app.create_patient().await;
    let lab = app.staff(Role::Lab);
    for _ in 0..3 {
        app.get(&format!("/v1/patients/{p}"), &lab).await;
    }
    expect_events(&app, p, 4).await;
    let me = app.token(Role::Patient, &p.to_string());
    let res = app.get(&format!("/v1/patients/{p}/audit?limit=2"), &me).await;
    assert_eq!(usage(&res).0, 1);
    let page: Value = res.json().await.unwrap();
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert!(items[0]["at"].as_str() >= items[1]["at"].as_str(), "newest first");
    assert_eq!(items[0]["actor"], json!({"sub": "lab-1", "role": "lab"}));
    let cursor = page["nextCursor"].as_str().unwrap();
    let next: Value = app
        .get(&format!("/v1/patients/{p}/audit?limit=2&cursor={cursor}"), &me)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(next["items"].as_array().unwrap().len(), 2, "{next}");
    assert_problem(
        app.get(&format!("/v1/patients/{p}/audit"), &lab).await,
        403,
        "forbidden",
    )
    .await;
}

#[tokio::test]
async fn a_patients_own_trail_shows_another_patients_probe_but_not_who_it_was() {
    let app = spawn_app().await;
    let (a, b) = (app.create_patient().await, app.create_patient().await);
    let intruder = app.token(Role::Patient, &a.to_string());
    assert_eq!(app.get(&format!("/v1/patients/{b}"), &intruder).await.status(), 404);
    // The probe is recorded under B, in the background.
    let events = expect_events(&app, b, 2).await;
    assert!(
        events.iter().any(|e| e.actor.sub == a.to_string()),
        "the admin's record keeps it"
    );

    let own: Value = app
        .get(
            &format!("/v1/patients/{b}/audit"),
            &app.token(Role::Patient, &b.to_string()),
        )
        .await
        .json()
        .await
        .unwrap();
    let text = own.to_string();
    assert!(!text.contains(&a.to_string()), "{text}");
    assert!(text.contains(medbook::domain::audit::ANOTHER_PATIENT), "{text}");
    let admin: Value = app
        .get(&format!("/v1/patients/{b}/audit"), &app.staff(Role::Admin))
        .await
        .json()
        .await
        .unwrap();
    assert!(admin.to_string().contains(&a.to_string()));
}

#[tokio::test]
async fn refused_requests_are_audited_within_a_budget_per_caller() {
    let app = crate::helpers::spawn_app_with(&[("MEDBOOK_AUDIT_REFUSALS_PER_MINUTE", "3")]).await;
    let me = app.create_patient().await;
    let token = app.token(Role::Patient, &me.to_string());
    let probed: Vec<Uuid> = (0..10).map(|_| Uuid::now_v7()).collect();
    for id in &probed {
        assert_eq!(app.get(&format!("/v1/patients/{id}"), &token).await.status(), 404);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut stored = 0;
    for id in &probed {
        stored += events(&app, *id).await.len();
    }
    assert_eq!(stored, 3, "ten probes of ids that may not exist, three events");
    // The caller's own reads are audited as before.
    assert_eq!(app.get(&format!("/v1/patients/{me}"), &token).await.status(), 200);
    expect_events(&app, me, 2).await;
}

#[tokio::test]
async fn an_audit_event_keeps_no_client_chosen_method_or_endless_path() {
    let app = spawn_app().await;
    let patient = app.create_patient().await;
    let admin = app.staff(Role::Admin);
    let odd = reqwest::Method::from_bytes("Y".repeat(5000).as_bytes()).unwrap();
    let res = app
        .request(odd, &format!("/v1/patients/{patient}"), Some(&admin))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_client_error());
    let long = format!("/v1/patients/{patient}/{}", "x".repeat(3000));
    assert_eq!(app.get(&long, &admin).await.status(), 404);
    let events = expect_events(&app, patient, 3).await;
    assert!(events.iter().any(|e| e.action.starts_with("other ")), "{events:#?}");
    assert!(
        events.iter().all(|e| e.action.len() < 100 && e.resource.len() <= 512),
        "{events:#?}"
    );
}
