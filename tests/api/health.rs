//! Probes and cross-cutting headers.

use reqwest::Method;

use crate::helpers::spawn_app;

#[tokio::test]
async fn probes_answer_and_request_ids_are_generated_or_echoed() {
    let app = spawn_app().await;
    let live = app.request(Method::GET, "/health/live", None).send().await.unwrap();
    assert_eq!(live.status(), 200);
    assert_eq!(live.headers()["dynamodb-usage"], "calls=0, rcu=0, wcu=0");
    let generated = live.headers()["x-request-id"].to_str().unwrap();
    assert_eq!(generated.len(), 36, "{generated}");

    let ready = app
        .request(Method::GET, "/health/ready", None)
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.headers()["x-request-id"], "abc-123");
    assert_eq!(
        ready.headers()["dynamodb-usage"],
        "calls=1, rcu=0, wcu=0",
        "one DescribeTable"
    );

    let docs = app.request(Method::GET, "/docs/", None).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    assert_eq!(
        docs.headers()["dynamodb-usage"],
        "calls=0, rcu=0, wcu=0",
        "every response carries it"
    );
    assert!(
        docs.text().await.unwrap().contains("swagger-ui"),
        "Swagger UI is served offline"
    );
}

#[tokio::test]
async fn readiness_is_503_problem_json_when_the_table_is_gone() {
    let app = spawn_app().await;
    crate::helpers::engine_client()
        .delete_table()
        .table_name(app.store.table())
        .send()
        .await
        .unwrap();
    let res = app.request(Method::GET, "/health/ready", None).send().await.unwrap();
    assert!(res.headers().contains_key("retry-after"));
    // Gone, or (on Amazon's DynamoDB Local, which deletes in the background) not ACTIVE any more.
    crate::helpers::assert_problem(res, 503, "not-ready").await;
}
