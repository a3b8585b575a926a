//! The catalog: seeded by the first migration, cached, versioned.

use medbook::auth::Role;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{assert_problem, spawn_app, usage};

fn definition(code: &str, name: &str) -> Value {
    json!({
        "code": code, "name": name, "category": "chemistry", "loinc": "2276-4", "specimen": "serum",
        "durationMinutes": 5, "priceCents": 1700, "currency": "EUR",
        "analytes": [{"code": "FERR", "name": "Ferritin", "loinc": "2276-4", "unit": "ng/mL",
                      "referenceRange": {"low": 24, "high": 336}}]
    })
}

#[tokio::test]
async fn the_seeded_catalog_is_public_and_one_query_then_cached() {
    let app = spawn_app().await;
    let res = app.request(Method::GET, "/v1/test-types", None).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let (calls, _, wcu) = usage(&res);
    assert!(calls <= 1, "calls={calls}");
    assert_eq!(wcu, 0.0);
    let body: Value = res.json().await.unwrap();
    let items = body["items"].as_array().unwrap();
    assert!(items.len() >= 8, "{}", items.len());
    let codes: Vec<&str> = items.iter().map(|t| t["code"].as_str().unwrap()).collect();
    for code in ["CBC", "BMP", "LIPID", "HBA1C", "TSH", "UA", "CRP", "VITD"] {
        assert!(codes.contains(&code), "{code} in {codes:?}");
    }
    let cbc = items.iter().find(|t| t["code"] == "CBC").unwrap();
    assert_eq!(cbc["loinc"], "58410-2");
    assert_eq!(cbc["analytes"][0]["unit"], "g/dL");
    assert_eq!(cbc["analytes"][0]["criticalRange"]["low"], 7.0);

    let again = app.request(Method::GET, "/v1/test-types", None).send().await.unwrap();
    assert_eq!(usage(&again).0, 0, "second read is a cache hit");
    let one = app
        .request(Method::GET, "/v1/test-types/CBC", None)
        .send()
        .await
        .unwrap();
    assert_eq!(usage(&one).0, 0);
    assert_eq!(one.headers()["etag"], "\"2\"", "migration 0003 versioned CBC");
}

#[tokio::test]
async fn an_admin_adds_and_versions_a_test_type_and_old_versions_stay_readable() {
    let app = spawn_app().await;
    let admin = app.staff(Role::Admin);

    let res = app
        .request(Method::POST, "/v1/test-types", Some(&admin))
        .json(&definition("FE2", "Iron"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["location"], "/v1/test-types/FE2");
    assert_eq!(res.headers()["etag"], "\"1\"");
    let (calls, _, wcu) = usage(&res);
    assert_eq!(calls, 1, "one transaction");
    assert!(wcu >= 2.0, "two items transactionally: wcu={wcu}");

    let res = app
        .request(Method::POST, "/v1/test-types", Some(&admin))
        .json(&definition("FE2", "Again"))
        .send()
        .await
        .unwrap();
    assert_problem(res, 409, "already-exists").await;

    let listed: Value = app
        .request(Method::GET, "/v1/test-types", None)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        listed["items"].as_array().unwrap().iter().any(|t| t["code"] == "FE2"),
        "cache was invalidated"
    );

    let put = |if_match: Option<&'static str>, body: Value| {
        let mut rb = app.request(Method::PUT, "/v1/test-types/FE2", Some(&admin)).json(&body);
        if let Some(v) = if_match {
            rb = rb.header("if-match", v);
        }
        rb.send()
    };
    assert_problem(
        put(None, definition("FE2", "Iron v2")).await.unwrap(),
        428,
        "precondition-required",
    )
    .await;
    assert_problem(
        put(Some("\"1\""), definition("OTHER", "Iron v2")).await.unwrap(),
        422,
        "validation",
    )
    .await;
    let res = put(Some("\"1\""), definition("FE2", "Iron v2")).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["etag"], "\"2\"");
    assert_problem(
        put(Some("\"1\""), definition("FE2", "Iron v3")).await.unwrap(),
        412,
        "precondition-failed",
    )
    .await;

    let current: Value = app
        .request(Method::GET, "/v1/test-types/FE2", None)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (current["version"].as_u64(), current["name"].as_str()),
        (Some(2), Some("Iron v2"))
    );
    let v1 = app
        .request(Method::GET, "/v1/test-types/FE2/versions/1", None)
        .send()
        .await
        .unwrap();
    assert!(usage(&v1).0 <= 1, "a GetItem, or none when the version is cached");
    let v1: Value = v1.json().await.unwrap();
    assert_eq!((v1["version"].as_u64(), v1["name"].as_str()), (Some(1), Some("Iron")));
    let res = app
        .request(Method::GET, "/v1/test-types/FE2/versions/3", None)
        .send()
        .await
        .unwrap();
    assert_problem(res, 404, "not-found").await;

    let res = app
        .request(Method::PUT, "/v1/test-types/NOPE", Some(&admin))
        .header("if-match", "\"1\"")
        .json(&definition("NOPE", "x"))
        .send()
        .await
        .unwrap();
    assert_problem(res, 404, "not-found").await;
}

#[tokio::test]
async fn an_invalid_definition_names_each_bad_field() {
    let app = spawn_app().await;
    let admin = app.staff(Role::Admin);
    let mut body = definition("bad code", "");
    body["analytes"][0]["referenceRange"] = json!({"low": 5, "high": 1});
    let res = app
        .request(Method::POST, "/v1/test-types", Some(&admin))
        .json(&body)
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
    for field in ["code", "name", "analytes[0].referenceRange"] {
        assert!(fields.contains(&field), "{field} in {fields:?}");
    }
    let res = app
        .request(Method::GET, "/v1/test-types/bad%20code", None)
        .send()
        .await
        .unwrap();
    assert_problem(res, 404, "not-found").await;
}
