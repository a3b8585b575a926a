//! Engine faults: unreachable, slow, throttling. The service answers 503 with Retry-After in time and
//! recovers by itself.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::{
    error::ErrorMetadata,
    operation::{get_item::GetItemError, transact_write_items::TransactWriteItemsError},
    types::{
        CancellationReason,
        error::{ProvisionedThroughputExceededException, TransactionCanceledException},
    },
};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use axum::response::IntoResponse;
use medbook::{
    api::error::ApiError,
    auth::Role,
    service::ServiceError,
    store::{Store, StoreError, client::ClientOptions},
};
use reqwest::Method;

use crate::{
    helpers::{assert_problem, engine_endpoint, spawn_app_on},
    proxy::{Mode, Proxy},
};

#[tokio::test]
async fn an_unreachable_engine_gives_503_and_the_service_recovers_without_restart() {
    let proxy = Proxy::start(engine_endpoint()).await;
    let app = spawn_app_on(&proxy.endpoint, &[("MEDBOOK_DYNAMODB_TIMEOUT_MS", "1500")]).await;
    let id = app.create_patient().await;
    let admin = app.staff(Role::Admin);

    proxy.set(Mode::Down);
    let started = Instant::now();
    let res = app.get(&format!("/v1/patients/{id}"), &admin).await;
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    assert_eq!(res.headers()["retry-after"], "1");
    assert_problem(res, 503, "unavailable").await;
    let ready = app.request(Method::GET, "/health/ready", None).send().await.unwrap();
    assert_problem(ready, 503, "unavailable").await;

    proxy.set(Mode::Pass);
    let res = app.get(&format!("/v1/patients/{id}"), &admin).await;
    assert_eq!(res.status(), 200, "recovered");
    assert_eq!(
        app.request(Method::GET, "/health/ready", None)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn a_hanging_engine_gives_503_within_the_request_timeout() {
    let proxy = Proxy::start(engine_endpoint()).await;
    // The DynamoDB budget is longer than the request timeout: the request timeout answers first.
    let app = spawn_app_on(
        &proxy.endpoint,
        &[
            ("MEDBOOK_DYNAMODB_TIMEOUT_MS", "5000"),
            ("MEDBOOK_REQUEST_TIMEOUT_MS", "800"),
        ],
    )
    .await;
    let id = app.create_patient().await;
    proxy.set(Mode::Hang);
    let started = Instant::now();
    let res = app.get(&format!("/v1/patients/{id}"), &app.staff(Role::Lab)).await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(700) && took < Duration::from_millis(2500),
        "{took:?}"
    );
    assert_eq!(res.headers()["retry-after"], "1");
    assert_problem(res, 503, "unavailable").await;
    proxy.set(Mode::Pass);
    assert_eq!(
        app.get(&format!("/v1/patients/{id}"), &app.staff(Role::Lab))
            .await
            .status(),
        200
    );
}

/// The error DynamoDB answers when a table or index is over its provisioned throughput (with the error code
/// the SDK's retry classifier and our mapping read, as on the wire).
fn throttled() -> GetItemError {
    let message = "The level of configured provisioned throughput for the table was exceeded";
    GetItemError::ProvisionedThroughputExceededException(
        ProvisionedThroughputExceededException::builder()
            .message(message)
            .meta(
                ErrorMetadata::builder()
                    .code("ProvisionedThroughputExceededException")
                    .message(message)
                    .build(),
            )
            .build(),
    )
}

#[tokio::test]
async fn throttling_is_retried_max_attempts_times_then_answered_503() {
    let options = ClientOptions {
        max_attempts: 4,
        timeout: Duration::from_secs(5),
    };
    let rule = mock!(aws_sdk_dynamodb::Client::get_item)
        .sequence()
        .error(throttled)
        .times(10)
        .build();
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&rule], |c| c
        .retry_config(options.retry_config()));
    let store = Store::new(client, "medbook");

    let err = store.get_patient(uuid::Uuid::now_v7()).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert_eq!(
        rule.num_calls(),
        4,
        "MEDBOOK_DYNAMODB_MAX_ATTEMPTS attempts, then give up"
    );

    let response = ApiError::from(ServiceError::from(err)).into_response();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
}

#[tokio::test]
async fn throttling_that_clears_within_the_attempts_is_invisible() {
    let rule = mock!(aws_sdk_dynamodb::Client::get_item)
        .sequence()
        .error(throttled)
        .times(2)
        .output(|| aws_sdk_dynamodb::operation::get_item::GetItemOutput::builder().build())
        .build();
    let options = ClientOptions::default();
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&rule], |c| c
        .retry_config(options.retry_config()));
    let found = Store::new(client, "medbook")
        .get_patient(uuid::Uuid::now_v7())
        .await
        .unwrap();
    assert_eq!(found, None);
    assert_eq!(rule.num_calls(), 3);
}

#[tokio::test]
async fn a_transaction_conflict_is_a_retryable_503_not_a_domain_error() {
    let conflict = || {
        TransactWriteItemsError::TransactionCanceledException(
            TransactionCanceledException::builder()
                .cancellation_reasons(CancellationReason::builder().code("None").build())
                .cancellation_reasons(CancellationReason::builder().code("TransactionConflict").build())
                .build(),
        )
    };
    let rule = mock!(aws_sdk_dynamodb::Client::transact_write_items).then_error(conflict);
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&rule]);
    let store = Store::new(client, "medbook");
    let def: medbook::domain::test_type::TestTypeDefinition =
        serde_json::from_value(crate::test_types_definition()).unwrap();
    let err = store
        .put_test_type_version(&medbook::domain::test_type::TestType {
            version: 1,
            definition: def,
            created_at: "t".into(),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
}
