//! `GET /metrics`: Prometheus text with HTTP, DynamoDB and capacity series; optional bearer protection.

use medbook::auth::Role;
use reqwest::Method;

use crate::helpers::{day, slot, spawn_app, spawn_app_with};

#[tokio::test]
async fn metrics_show_requests_dynamodb_calls_capacity_and_cancellations() {
    let app = spawn_app_with(&[("MEDBOOK_SLOT_CAPACITY", "1")]).await;
    let (a, b) = (app.create_patient().await, app.create_patient().await);
    let lab = app.staff(Role::Lab);
    app.get(&format!("/v1/patients/{a}"), &lab).await;
    let start = slot(&day(55), "09:45");
    app.booked(a, &start, &["CBC"]).await;
    assert_eq!(app.book(b, &start, &["CBC"], "full").await.status(), 409);
    app.get(&format!("/v1/patients/{a}/bookings"), &lab).await;

    let res = app.request(Method::GET, "/metrics", None).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    for series in [
        r#"medbook_http_requests_total{method="GET",route="/v1/patients/{patientId}",status="200"}"#,
        r#"medbook_http_request_duration_seconds_bucket{method="GET",route="/v1/patients/{patientId}""#,
        r#"medbook_dynamodb_requests_total{operation="GetItem",outcome="ok"}"#,
        r#"medbook_dynamodb_requests_total{operation="TransactWriteItems",outcome="transaction_canceled"}"#,
        r#"medbook_dynamodb_request_duration_seconds_bucket{operation="Query""#,
        r#"medbook_dynamodb_transaction_cancellations_total{reason="ConditionalCheckFailed"}"#,
        r#"medbook_dynamodb_attempts_total{operation="TransactWriteItems"}"#,
        r#"medbook_dynamodb_consumed_capacity_units_sum{"#,
        r#"kind="write""#,
    ] {
        assert!(text.contains(series), "missing {series}");
    }
    assert!(!text.contains("PATIENT#"), "no keys in labels");
}

#[tokio::test]
async fn metrics_can_require_a_bearer_token() {
    let app = spawn_app_with(&[("MEDBOOK_METRICS_TOKEN", "scrape-secret")]).await;
    let res = app.request(Method::GET, "/metrics", None).send().await.unwrap();
    crate::helpers::assert_problem(res, 401, "unauthorized").await;
    let res = app
        .request(Method::GET, "/metrics", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = app
        .request(Method::GET, "/metrics", Some("scrape-secret"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let open = spawn_app().await;
    assert_eq!(
        open.request(Method::GET, "/metrics", None)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn metrics_are_off_on_the_production_store_unless_the_operator_opens_them() {
    let app = spawn_app_with(&[("MEDBOOK_METRICS_PUBLIC", "false")]).await;
    let res = app.request(Method::GET, "/metrics", None).send().await.unwrap();
    crate::helpers::assert_problem(res, 404, "not-found").await;
}
