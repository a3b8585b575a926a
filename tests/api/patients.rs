//! Patient records: create, read, conditional update, and problem+json for bad input.

use medbook::auth::Role;
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{assert_problem, spawn_app, usage};

fn ada() -> Value {
    json!({"givenName": "Ada", "familyName": "Lovelace", "birthDate": "1990-12-10", "sex": "female",
           "email": "ada@example.org"})
}

#[tokio::test]
async fn create_get_and_patch_a_patient_with_etags() {
    let app = spawn_app().await;
    let lab = app.staff(Role::Lab);
    let res = app
        .request(Method::POST, "/v1/patients", Some(&lab))
        .json(&ada())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(usage(&res).0, 1);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(res.headers()["etag"], "\"1\"");
    let created: Value = res.json().await.unwrap();
    let id: Uuid = created["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(id.get_version_num(), 7);
    assert_eq!(location, format!("/v1/patients/{id}"));

    let res = app.request(Method::GET, &location, Some(&lab)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        usage(&res),
        (1, 0.5, 0.0),
        "one eventually consistent GetItem of an item under 4 KB"
    );
    assert_eq!(res.json::<Value>().await.unwrap(), created);

    let patch = json!({"familyName": "King", "email": null, "phone": "+44 20 7946 0000"});
    let res = app
        .request(Method::PATCH, &location, Some(&lab))
        .json(&patch)
        .send()
        .await
        .unwrap();
    assert_problem(res, 428, "precondition-required").await;

    let res = app
        .request(Method::PATCH, &location, Some(&lab))
        .header("if-match", "\"1\"")
        .json(&patch)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        usage(&res).0,
        2,
        "read the version, then the change and its audit event in one transaction"
    );
    assert_eq!(res.headers()["etag"], "\"2\"");
    let patched: Value = res.json().await.unwrap();
    assert_eq!(patched["familyName"], "King");
    assert_eq!(patched["givenName"], "Ada");
    assert!(patched.get("email").is_none(), "null removes the email");
    assert_eq!(patched["phone"], "+44 20 7946 0000");
    assert_eq!(patched["version"], 2);

    let res = app
        .request(Method::PATCH, &location, Some(&lab))
        .header("if-match", "\"1\"")
        .json(&patch)
        .send()
        .await
        .unwrap();
    assert_problem(res, 412, "precondition-failed").await;
    let res = app
        .request(Method::PATCH, &format!("/v1/patients/{}", Uuid::now_v7()), Some(&lab))
        .header("if-match", "\"1\"")
        .json(&patch)
        .send()
        .await
        .unwrap();
    assert_problem(res, 404, "not-found").await;
}

#[tokio::test]
async fn racing_patches_with_the_same_if_match_let_exactly_one_win() {
    let app = spawn_app().await;
    let id = app.create_patient().await;
    let lab = app.staff(Role::Lab);
    let requests = (0..20).map(|i| {
        app.request(Method::PATCH, &format!("/v1/patients/{id}"), Some(&lab))
            .header("if-match", "\"1\"")
            .json(&json!({"givenName": format!("Racer {i}")}))
            .send()
    });
    let mut statuses = Vec::new();
    for handle in requests.map(tokio::spawn).collect::<Vec<_>>() {
        statuses.push(handle.await.unwrap().unwrap().status().as_u16());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 412).count(), 19, "{statuses:?}");
    let res = app
        .request(Method::GET, &format!("/v1/patients/{id}"), Some(&lab))
        .send()
        .await
        .unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["version"], 2);
}

#[tokio::test]
async fn bad_input_gets_problem_json_naming_the_field_and_writes_nothing() {
    let app = spawn_app().await;
    let admin = app.staff(Role::Admin);
    let post = |body: String, content_type: &'static str| {
        app.request(Method::POST, "/v1/patients", Some(&admin))
            .header("content-type", content_type)
            .body(body)
            .send()
    };

    assert_problem(
        post("{\"givenName\": ".into(), "application/json").await.unwrap(),
        400,
        "bad-request",
    )
    .await;
    assert_problem(
        post(ada().to_string(), "text/plain").await.unwrap(),
        415,
        "unsupported-media-type",
    )
    .await;

    let field_cases = [
        ("isAdmin", json!({"isAdmin": true})),
        ("birthDate", json!({"birthDate": "1990-13-40"})),
        ("birthDate", json!({"birthDate": "2999-01-01"})),
        ("givenName", json!({"givenName": ""})),
        ("givenName", json!({"givenName": 42})),
        ("sex", json!({"sex": "robot"})),
        ("email", json!({"email": "not an email"})),
    ];
    for (field, change) in field_cases {
        let mut body = ada();
        body.as_object_mut()
            .unwrap()
            .extend(change.as_object().unwrap().clone());
        let problem = assert_problem(
            post(body.to_string(), "application/json").await.unwrap(),
            422,
            "validation",
        )
        .await;
        let fields: Vec<&str> = problem["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert!(fields.contains(&field), "{field}: {problem}");
    }
    let mut missing = ada();
    missing.as_object_mut().unwrap().remove("familyName");
    let problem = assert_problem(
        post(missing.to_string(), "application/json").await.unwrap(),
        422,
        "validation",
    )
    .await;
    assert_eq!(problem["errors"][0]["field"], "familyName");

    let res = app
        .request(Method::GET, "/v1/patients/not-a-uuid", Some(&admin))
        .send()
        .await
        .unwrap();
    assert_problem(res, 400, "bad-request").await;
    let res = app
        .request(Method::GET, "/v1/nowhere", Some(&admin))
        .send()
        .await
        .unwrap();
    assert_problem(res, 404, "not-found").await;
    let res = app
        .request(Method::DELETE, "/v1/patients", Some(&admin))
        .send()
        .await
        .unwrap();
    assert_problem(res, 405, "method-not-allowed").await;
}
