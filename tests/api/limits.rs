//! Abuse limits and response hygiene: body size, rate limit, CORS, security headers, error bodies.

use medbook::auth::Role;
use reqwest::Method;
use serde_json::json;

use crate::helpers::{assert_problem, spawn_app, spawn_app_with};

#[tokio::test]
async fn a_body_over_the_limit_is_413_problem_json() {
    let app = spawn_app_with(&[("MEDBOOK_MAX_BODY_BYTES", "2048")]).await;
    let res = app
        .request(Method::POST, "/v1/patients", Some(&app.staff(Role::Admin)))
        .json(&json!({"givenName": "A".repeat(4000), "familyName": "B", "birthDate": "2000-01-01", "sex": "other"}))
        .send()
        .await
        .unwrap();
    assert_problem(res, 413, "payload-too-large").await;
}

#[tokio::test]
async fn each_client_has_its_own_rate_budget_and_gets_429_with_retry_after() {
    let app = spawn_app_with(&[("MEDBOOK_RATE_PER_SEC", "1"), ("MEDBOOK_RATE_BURST", "3")]).await;
    let lab = app.staff(Role::Lab);
    let mut statuses = Vec::new();
    let mut limited = None;
    for _ in 0..6 {
        let res = app
            .request(Method::GET, "/v1/test-types", Some(&lab))
            .send()
            .await
            .unwrap();
        statuses.push(res.status().as_u16());
        if res.status() == 429 && limited.is_none() {
            limited = Some(res);
        }
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 3, "{statuses:?}");
    let limited = limited.expect("a 429");
    let retry_after: u64 = limited.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    assert_problem(limited, 429, "rate-limited").await;

    // Another subject has its own budget; so does an anonymous caller (by address).
    let doctor = app.staff(Role::Doctor);
    assert_eq!(
        app.request(Method::GET, "/v1/test-types", Some(&doctor))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        app.request(Method::GET, "/v1/test-types", None)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // A forged token does not buy a fresh budget: it counts against the address.
    for _ in 0..3 {
        app.request(Method::GET, "/v1/test-types", Some("forged.token.value"))
            .send()
            .await
            .unwrap();
    }
    assert_eq!(
        app.request(Method::GET, "/v1/test-types", Some("another.forged.token"))
            .send()
            .await
            .unwrap()
            .status(),
        429
    );
}

#[tokio::test]
async fn cors_is_off_by_default_and_allows_only_configured_origins() {
    let app = spawn_app().await;
    let preflight = |app_base: String, origin: &'static str| {
        reqwest::Client::new()
            .request(Method::OPTIONS, format!("{app_base}/v1/patients"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization,content-type")
            .send()
    };
    let res = preflight(app.base.clone(), "https://app.example").await.unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());

    let app = spawn_app_with(&[("MEDBOOK_CORS_ORIGINS", "https://app.example, https://admin.example")]).await;
    let res = preflight(app.base.clone(), "https://app.example").await.unwrap();
    assert_eq!(res.headers()["access-control-allow-origin"], "https://app.example");
    // Every method the API has, DELETE included (a browser front desk unlinks identities, frees holds).
    let methods = res.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .to_owned();
    for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
        assert!(methods.contains(method), "{method} in {methods}");
    }
    let res = preflight(app.base.clone(), "https://evil.example").await.unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn every_response_has_security_headers_and_clinical_data_is_not_cached() {
    let app = spawn_app().await;
    let id = app.create_patient().await;
    let admin = app.staff(Role::Admin);
    for (path, token, cache) in [
        (format!("/v1/patients/{id}"), Some(admin.as_str()), "no-store"),
        ("/v1/nowhere".to_owned(), None, "no-store"),
        ("/v1/test-types".to_owned(), None, "public, max-age=30"),
        ("/health/live".to_owned(), None, "no-store"),
    ] {
        let res = app.request(Method::GET, &path, token).send().await.unwrap();
        assert_eq!(res.headers()["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(res.headers()["x-frame-options"], "DENY", "{path}");
        assert_eq!(res.headers()["cache-control"], cache, "{path}");
    }
}

#[tokio::test]
async fn no_error_body_leaks_internals() {
    let app = spawn_app_with(&[("MEDBOOK_MAX_BODY_BYTES", "1024")]).await;
    let id = app.create_patient().await;
    let (admin, patient) = (app.staff(Role::Admin), app.token(Role::Patient, &id.to_string()));
    let requests = vec![
        app.request(Method::GET, "/v1/patients/x", Some(&admin)),
        app.request(Method::GET, &format!("/v1/patients/{id}"), None),
        app.request(Method::GET, &format!("/v1/patients/{id}"), Some("bad")),
        app.request(Method::POST, "/v1/test-types", Some(&patient))
            .json(&json!({})),
        app.request(
            Method::GET,
            &format!("/v1/patients/{}", uuid::Uuid::now_v7()),
            Some(&admin),
        ),
        app.request(Method::DELETE, "/v1/patients", Some(&admin)),
        app.request(Method::POST, "/v1/test-types", Some(&admin))
            .json(&crate::test_types_definition()),
        app.request(Method::PATCH, &format!("/v1/patients/{id}"), Some(&admin))
            .header("if-match", "\"9\"")
            .json(&json!({})),
        app.request(Method::POST, "/v1/patients", Some(&admin))
            .json(&json!({"x": "y".repeat(2000)})),
        app.request(Method::POST, "/v1/patients", Some(&admin))
            .header("content-type", "text/plain")
            .body("hi"),
        app.request(Method::POST, "/v1/patients", Some(&admin))
            .json(&json!({"givenName": 1})),
        app.request(Method::POST, "/v1/patients", Some(&admin))
            .header("content-type", "application/json")
            .body("{"),
        app.request(Method::PATCH, &format!("/v1/patients/{id}"), Some(&admin))
            .json(&json!({})),
        app.request(
            Method::GET,
            "/v1/patients/00000000-0000-0000-0000-000000000000/bookings?cursor=eyJQSyI6IlBBVElFTlQjMSJ9.AAAA",
            Some(&admin),
        ),
    ];
    let forbidden = [
        "PATIENT#",
        "BOOKING#",
        "TESTTYPE#",
        "Exception",
        "exception",
        "panicked",
        "backtrace",
        "src/",
        ".rs:",
        "smithy",
        "dispatch",
        "medbook-test-",
        "PK",
        "SK",
    ];
    let mut statuses = Vec::new();
    for rb in requests {
        let res = rb.send().await.unwrap();
        let status = res.status().as_u16();
        statuses.push(status);
        assert!(status >= 400, "{status}");
        assert_eq!(res.headers()["content-type"], "application/problem+json", "{status}");
        let body = res.text().await.unwrap();
        for word in forbidden {
            assert!(!body.contains(word), "{status} body leaks `{word}`: {body}");
        }
    }
    statuses.sort();
    statuses.dedup();
    assert_eq!(statuses, [400, 401, 403, 404, 405, 409, 412, 413, 415, 422, 428]);
}
