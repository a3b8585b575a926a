//! Hardening II: what an attacker and a second engine found, each with the test that failed before its fix.

use medbook::auth::Role;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{assert_problem, day, slot, spawn_app};

#[tokio::test]
async fn unknown_methods_share_one_metric_label() {
    let app = spawn_app().await;
    let odd = "X".repeat(300);
    for _ in 0..3 {
        let method = Method::from_bytes(odd.as_bytes()).unwrap();
        let res = app.request(method, "/v1/test-types", None).send().await.unwrap();
        assert!(res.status().is_client_error(), "{}", res.status());
    }
    let text = app
        .request(Method::GET, "/metrics", None)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!text.contains(&odd), "a client's method became a label");
    assert!(text.contains(r#"method="other""#), "{text}");
}

#[tokio::test]
async fn a_request_id_is_kept_only_when_short_and_plain() {
    let app = spawn_app().await;
    let sent = |id: &str| {
        let rb = app
            .request(Method::GET, "/health/live", None)
            .header("x-request-id", id.to_owned());
        async move {
            rb.send().await.unwrap().headers()["x-request-id"]
                .to_str()
                .unwrap()
                .to_owned()
        }
    };
    assert_eq!(sent("abc-123_x.y").await, "abc-123_x.y");
    let long = "a".repeat(65);
    for bad in [long.as_str(), "two words", "quote\"d", "ünïcode", "semi;colon"] {
        let answered = sent(bad).await;
        assert_ne!(answered, bad);
        assert!(uuid::Uuid::parse_str(&answered).is_ok(), "{bad:?} -> {answered}");
    }
}

#[tokio::test]
async fn two_authorization_headers_are_a_400_problem_with_the_security_headers() {
    let app = spawn_app().await;
    let admin = app.staff(Role::Admin);
    let res = app
        .request(Method::GET, "/v1/worklist", None)
        .header("authorization", format!("Bearer {admin}"))
        .header("authorization", "Bearer forged")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    assert_problem(res, 400, "bad-request").await;
}

#[tokio::test]
async fn birth_dates_are_exactly_yyyy_mm_dd() {
    let app = spawn_app().await;
    for bad in ["+1990-12-10", "1990-12-1", " 1990-12-10"] {
        let res = app
            .request(Method::POST, "/v1/patients", Some(&app.staff(Role::Admin)))
            .json(&json!({"givenName": "Ada", "familyName": "Lovelace", "birthDate": bad, "sex": "female"}))
            .send()
            .await
            .unwrap();
        let problem = assert_problem(res, 422, "validation").await;
        assert_eq!(problem["errors"][0]["field"], "birthDate", "{bad}");
    }
}

/// A booked and checked-in CBC and the URL of its test.
async fn booked_cbc(app: &crate::helpers::TestApp) -> (uuid::Uuid, String) {
    let (patient, base) = booked_cbc_not_checked_in(app).await;
    let booking = base
        .split("/tests/")
        .next()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    app.check_in(patient, &booking).await;
    (patient, base)
}

/// A booked CBC whose patient has not come yet.
async fn booked_cbc_not_checked_in(app: &crate::helpers::TestApp) -> (uuid::Uuid, String) {
    let patient = app.create_patient().await;
    let booking = app.booked(patient, &slot(&day(31), "10:15"), &["CBC"]).await;
    let base = format!(
        "/v1/patients/{patient}/bookings/{}/tests/{}",
        booking["id"].as_str().unwrap(),
        booking["tests"][0]["id"].as_str().unwrap()
    );
    (patient, base)
}

fn cbc(comment: &str) -> Value {
    json!({"values": [{"analyte": "HGB", "value": 6.1, "unit": "g/dL"}],
           "performedAt": crate::helpers::performed_now(), "comment": comment})
}

#[tokio::test]
async fn a_patient_sees_no_lab_comment_while_the_values_are_withheld() {
    let app = spawn_app().await;
    let (patient, base) = booked_cbc(&app).await;
    let lab = app.staff(Role::Lab);
    let res = app
        .request(Method::PUT, &format!("{base}/result"), Some(&lab))
        .json(&cbc("HGB 6.1, called ward"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let me = app.token(Role::Patient, &patient.to_string());
    let tree_url = base.split("/tests/").next().unwrap().to_owned();
    for url in [format!("{base}/result"), format!("{base}/result/history"), tree_url] {
        let body = app.get(&url, &me).await.text().await.unwrap();
        assert!(!body.contains("called ward"), "{url}: {body}");
        assert!(body.contains("valuesWithheld"), "{url}: {body}");
    }
    let staff: Value = app.get(&format!("{base}/result"), &lab).await.json().await.unwrap();
    assert_eq!(staff["comment"], "HGB 6.1, called ward");
}

#[tokio::test]
async fn concurrent_first_recordings_lose_as_a_late_request_without_if_match_does() {
    let app = spawn_app().await;
    let (_, base) = booked_cbc(&app).await;
    let lab = app.staff(Role::Lab);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let rb = app
                .request(Method::PUT, &format!("{base}/result"), Some(&lab))
                .json(&cbc("x"));
            tokio::spawn(async move { rb.send().await.unwrap().status().as_u16() })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    statuses.sort_unstable();
    assert_eq!(statuses[0], 201, "{statuses:?}");
    assert!(statuses[1..].iter().all(|s| *s == 428), "{statuses:?}");
    let late = app
        .request(Method::PUT, &format!("{base}/result"), Some(&lab))
        .json(&cbc("y"))
        .send()
        .await
        .unwrap();
    assert_problem(late, 428, "precondition-required").await;
}

#[tokio::test]
async fn control_characters_and_invisible_names_are_refused_by_field() {
    let app = spawn_app().await;
    let admin = app.staff(Role::Admin);
    let create = |body: Value| {
        app.request(Method::POST, "/v1/patients", Some(&admin))
            .json(&body)
            .send()
    };
    for (field, body) in [
        (
            "givenName",
            json!({"givenName": "Ada\u{1b}[2J", "familyName": "L", "birthDate": "1990-12-10", "sex": "female"}),
        ),
        (
            "familyName",
            json!({"givenName": "Ada", "familyName": "  \u{200B} ", "birthDate": "1990-12-10", "sex": "female"}),
        ),
        (
            "email",
            json!({"givenName": "Ada", "familyName": "L", "birthDate": "1990-12-10", "sex": "female", "email": "a\u{7}@b.c"}),
        ),
    ] {
        let problem = assert_problem(create(body).await.unwrap(), 422, "validation").await;
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }
    let (patient, base) = booked_cbc(&app).await;
    let note = app
        .request(Method::POST, &format!("{base}/notes"), Some(&app.staff(Role::Doctor)))
        .json(&json!({"text": "nul\u{0}byte"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        assert_problem(note, 422, "validation").await["errors"][0]["field"],
        "text"
    );
    let comment = app
        .request(Method::PUT, &format!("{base}/result"), Some(&app.staff(Role::Lab)))
        .json(&cbc("bell\u{7}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        assert_problem(comment, 422, "validation").await["errors"][0]["field"],
        "comment"
    );
    let booking_note = app
        .request(Method::POST, &format!("/v1/patients/{patient}/bookings"), Some(&admin))
        .header("idempotency-key", "ctl")
        .json(&json!({"slotStart": slot(&day(32), "10:15"), "tests": ["CBC"], "note": "first\nsecond\u{1b}"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        assert_problem(booking_note, 422, "validation").await["errors"][0]["field"],
        "note"
    );
    // Line feeds and tabs are fine where text spans lines.
    let ok = app
        .request(Method::POST, &format!("{base}/notes"), Some(&app.staff(Role::Doctor)))
        .json(&json!({"text": "line one\nline two\tand a tab"}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 201);
}

#[tokio::test]
async fn if_match_star_matches_any_version_weak_tags_never_and_unquoted_is_a_400() {
    let app = spawn_app().await;
    let patient = app.create_patient().await;
    let admin = app.staff(Role::Admin);
    let patch = |if_match: &str, body: Value| {
        app.request(Method::PATCH, &format!("/v1/patients/{patient}"), Some(&admin))
            .header("if-match", if_match.to_owned())
            .json(&body)
            .send()
    };
    assert_problem(
        patch("W/\"1\"", json!({"familyName": "King"})).await.unwrap(),
        412,
        "precondition-failed",
    )
    .await;
    assert_problem(
        patch("1", json!({"familyName": "King"})).await.unwrap(),
        400,
        "bad-request",
    )
    .await;
    for other_tag in ["\"+1\"", "\"01\""] {
        let res = patch(other_tag, json!({"familyName": "King"})).await.unwrap();
        assert_problem(res, 412, "precondition-failed").await;
    }
    let star = patch("*", json!({"familyName": "King"})).await.unwrap();
    assert_eq!(
        (star.status().as_u16(), star.headers()["etag"].to_str().unwrap()),
        (200, "\"2\"")
    );
    // A patch that changes nothing writes nothing: same version, same ETag.
    let same = patch("\"2\"", json!({})).await.unwrap();
    assert_eq!(
        (same.status().as_u16(), same.headers()["etag"].to_str().unwrap()),
        (200, "\"2\"")
    );
    let same = patch("*", json!({"familyName": "King"})).await.unwrap();
    assert_eq!(same.headers()["etag"], "\"2\"");
    let got = app.get(&format!("/v1/patients/{patient}"), &admin).await;
    assert_eq!(got.headers()["etag"], "\"2\"");
}

#[tokio::test]
async fn a_booking_beyond_the_horizon_or_of_a_slot_the_patient_holds_is_refused() {
    let app = spawn_app().await;
    let patient = app.create_patient().await;
    let far = app.book(patient, "9999-12-01T09:00:00Z", &["CBC"], "far").await;
    let problem = assert_problem(far, 422, "validation").await;
    assert_eq!(problem["errors"][0]["field"], "slotStart");
    let beyond = app.book(patient, &slot(&day(181), "09:00"), &["CBC"], "beyond").await;
    assert_problem(beyond, 422, "validation").await;
    let at = slot(&day(40), "09:00");
    let first = app.booked(patient, &at, &["CBC"]).await;
    assert_problem(app.book(patient, &at, &["TSH"], "twice").await, 409, "already-booked").await;
    let cancel = format!(
        "/v1/patients/{patient}/bookings/{}/cancel",
        first["id"].as_str().unwrap()
    );
    let res = app
        .request(Method::POST, &cancel, Some(&app.staff(Role::Admin)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(app.book(patient, &at, &["TSH"], "after-cancel").await.status(), 201);
}

#[tokio::test]
async fn a_cancelled_test_takes_no_note_and_a_critical_range_must_contain_the_reference_range() {
    let app = spawn_app().await;
    let (patient, base) = booked_cbc_not_checked_in(&app).await;
    let booking = base.split("/tests/").next().unwrap().to_owned();
    let res = app
        .request(
            Method::POST,
            &format!("{booking}/cancel"),
            Some(&app.staff(Role::Admin)),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{patient}");
    let note = app
        .request(Method::POST, &format!("{base}/notes"), Some(&app.staff(Role::Doctor)))
        .json(&json!({"text": "too late"}))
        .send()
        .await
        .unwrap();
    assert_problem(note, 409, "booking-cancelled").await;

    let mut definition = crate::test_types_definition();
    definition["code"] = "CRIT".into();
    definition["analytes"][0]["criticalRange"] = json!({"low": 100, "high": 200});
    let res = app
        .request(Method::POST, "/v1/test-types", Some(&app.staff(Role::Admin)))
        .json(&definition)
        .send()
        .await
        .unwrap();
    let problem = assert_problem(res, 422, "validation").await;
    assert_eq!(problem["errors"][0]["field"], "analytes[0].criticalRange", "{problem}");
}

#[tokio::test]
async fn protocol_errors_name_no_internal_types_or_library_messages() {
    let app = spawn_app().await;
    let admin = app.staff(Role::Admin);
    for body in [
        json!(["Ada", "Lovelace", "1990-12-10", "female", null, null]),
        json!(["Ada"]),
    ] {
        let array = app
            .request(Method::POST, "/v1/patients", Some(&admin))
            .json(&body)
            .send()
            .await
            .unwrap();
        let problem = assert_problem(array, 422, "validation").await;
        let text = problem.to_string();
        assert!(!text.contains("CreatePatient") && !text.contains("elements"), "{text}");
        assert_eq!(problem["errors"][0]["field"], "(body)");
    }
    let path = app.get("/v1/patients/not-an-id", &admin).await;
    let problem = assert_problem(path, 400, "bad-request").await;
    let text = problem.to_string();
    assert!(
        !text.contains("Invalid URL") && !text.contains("Cannot parse") && !text.contains("uuid::"),
        "{text}"
    );
    assert!(text.contains("patientId"), "{text}");
}

#[tokio::test]
async fn a_body_that_stops_short_is_a_408_problem_not_a_503() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app().await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let token = app.staff(Role::Admin);
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v1/patients HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\ncontent-length: 200\r\n\r\n{{\"givenName\": \"Ada\""
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.shutdown().await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("x-content-type-options: nosniff"),
        "{answer}"
    );
}

#[tokio::test]
async fn a_slow_or_silent_connection_is_closed_after_the_header_read_timeout() {
    use std::time::{Duration, Instant};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = crate::helpers::spawn_app_with(&[("MEDBOOK_HEADER_READ_TIMEOUT_MS", "300")]).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    // Half a request line, then nothing (slowloris): closed after the timeout, not minutes later.
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /health/li").await.unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "still open after 5 s");
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    drop(slow);
    // A connection that sends nothing at all is closed too.
    let mut silent = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let started = Instant::now();
    let read = tokio::time::timeout(Duration::from_secs(5), silent.read_to_end(&mut buf)).await;
    assert!(
        read.is_ok() && started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn past_the_connection_cap_a_request_waits_until_a_connection_closes() {
    use std::time::Duration;
    let app = crate::helpers::spawn_app_with(&[
        ("MEDBOOK_HEADER_READ_TIMEOUT_MS", "5000"),
        ("MEDBOOK_MAX_CONNECTIONS", "2"),
    ])
    .await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let quiet = [
        tokio::net::TcpStream::connect(&addr).await.unwrap(),
        tokio::net::TcpStream::connect(&addr).await.unwrap(),
    ];
    tokio::time::sleep(Duration::from_millis(100)).await;
    let url = format!("{}/health/live", app.base);
    let waiting = tokio::spawn(async move { reqwest::get(url).await.map(|r| r.status().as_u16()) });
    // Both places are taken for the next second: the request is not served in that time.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!waiting.is_finished(), "served past the connection cap");
    drop(quiet);
    let served = tokio::time::timeout(Duration::from_secs(3), waiting).await;
    assert_eq!(served.unwrap().unwrap().unwrap(), 200, "served once a place is free");
}

#[tokio::test]
async fn idempotency_keys_of_two_callers_never_meet() {
    let app = spawn_app().await;
    let patient = app.create_patient().await;
    // `lab:a` + `b#c` and `lab:a#b` + `c` were one record key once.
    let (first, second) = (app.token(Role::Lab, "a"), app.token(Role::Lab, "a#b"));
    let book = |token: String, key: &str, at: String| {
        app.request(Method::POST, &format!("/v1/patients/{patient}/bookings"), Some(&token))
            .header("idempotency-key", key.to_owned())
            .json(&json!({"slotStart": at, "tests": ["CBC"]}))
            .send()
    };
    let one = book(first, "b#c", slot(&day(33), "09:00")).await.unwrap();
    assert_eq!(one.status(), 201);
    let two = book(second, "c", slot(&day(33), "10:00")).await.unwrap();
    assert_eq!(two.status(), 201, "another caller's key is not this caller's");
    let (one, two): (Value, Value) = (one.json().await.unwrap(), two.json().await.unwrap());
    assert_ne!(one["id"], two["id"]);
}

#[tokio::test]
async fn a_table_deleted_under_the_service_is_a_503_and_the_service_recovers_once_it_is_back() {
    use medbook::{config::CapacityMode, store::migrate};
    let app = spawn_app().await;
    let patient = app.create_patient().await;
    let admin = app.staff(Role::Admin);
    let table = app.store.table().to_owned();
    let client = crate::helpers::engine_client();
    client.delete_table().table_name(&table).send().await.unwrap();
    // Amazon's DynamoDB Local deletes in the background: wait until the table is gone.
    for _ in 0..100 {
        if client.describe_table().table_name(&table).send().await.is_err() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    let res = app.get(&format!("/v1/patients/{patient}"), &admin).await;
    assert!(res.headers().contains_key("retry-after"));
    let body = assert_problem(res, 503, "table-not-found").await.to_string();
    assert!(!body.contains(&table), "data endpoints do not name the table: {body}");
    let ready = app.request(Method::GET, "/health/ready", None).send().await.unwrap();
    let ready = assert_problem(ready, 503, "not-ready").await;
    assert!(ready["detail"].as_str().unwrap().contains(&table), "{ready}");

    // `medbook migrate` does this: the table is back, without restarting the service.
    app.store.bootstrap(CapacityMode::OnDemand, false).await.unwrap();
    app.store.migrate(&migrate::embedded()).await.unwrap();
    let ready = app.request(Method::GET, "/health/ready", None).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let gone = app.get(&format!("/v1/patients/{patient}"), &admin).await;
    assert_problem(gone, 404, "not-found").await;
}

#[tokio::test]
async fn performed_at_lies_between_the_booking_and_now() {
    let app = spawn_app().await;
    let (_, base) = booked_cbc(&app).await;
    let lab = app.staff(Role::Lab);
    for when in ["0000-01-01T00:00:00Z", "1990-01-01T08:00:00Z", "9999-12-31T23:59:59Z"] {
        let mut body = cbc("x");
        body["performedAt"] = when.into();
        let res = app
            .request(Method::PUT, &format!("{base}/result"), Some(&lab))
            .json(&body)
            .send()
            .await
            .unwrap();
        let problem = assert_problem(res, 422, "validation").await;
        assert_eq!(problem["errors"][0]["field"], "performedAt", "{when}");
    }
    let mut body = cbc("x");
    body["performedAt"] = medbook::domain::timefmt::second(time::OffsetDateTime::now_utc()).into();
    let ok = app
        .request(Method::PUT, &format!("{base}/result"), Some(&lab))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 201);
}
