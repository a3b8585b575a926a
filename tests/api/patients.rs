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

async fn register(app: &crate::helpers::TestApp, body: Value) -> reqwest::Response {
    app.request(Method::POST, "/v1/patients", Some(&app.staff(Role::Lab)))
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn registered(
    app: &crate::helpers::TestApp,
    given: &str,
    family: &str,
    birth: &str,
    email: Option<&str>,
) -> Value {
    let mut body = json!({"givenName": given, "familyName": family, "birthDate": birth, "sex": "female"});
    if let Some(email) = email {
        body["email"] = json!(email);
    }
    let res = register(app, body).await;
    assert_eq!(res.status(), 201);
    res.json().await.unwrap()
}

#[tokio::test]
async fn an_email_address_belongs_to_one_patient_and_moves_with_a_change() {
    let app = spawn_app().await;
    let lab = app.staff(Role::Lab);
    let ada = registered(&app, "Ada", "Lovelace", "1990-12-10", Some("Ada.Lovelace@Example.org")).await;
    let taken = register(
        &app,
        json!({"givenName": "Eve", "familyName": "Other", "birthDate": "1991-01-01", "sex": "female",
               "email": "ADA.lovelace@EXAMPLE.org"}),
    )
    .await;
    assert_problem(taken, 409, "email-taken").await;
    let eve = registered(&app, "Eve", "Other", "1991-01-01", Some("eve@example.org")).await;
    let patch = |id: &str, version: u64, email: &str| {
        app.request(Method::PATCH, &format!("/v1/patients/{id}"), Some(&lab))
            .header("if-match", format!("\"{version}\""))
            .json(&json!({"email": email}))
            .send()
    };
    let eve_id = eve["id"].as_str().unwrap();
    assert_problem(
        patch(eve_id, 1, "ADA.lovelace@example.org").await.unwrap(),
        409,
        "email-taken",
    )
    .await;

    let find = |email: &str| {
        let url = format!("/v1/patients?email={}", urlencode(email));
        let token = lab.clone();
        let app = &app;
        async move {
            let res = app.get(&url, &token).await;
            assert_eq!(res.status(), 200);
            let calls = usage(&res).0;
            let page: Value = res.json().await.unwrap();
            (page, calls)
        }
    };
    let (page, calls) = find("ada.lovelace@example.org").await;
    assert_eq!(calls, 2, "the address's guard, then the profile");
    assert_eq!(page["items"][0]["id"], ada["id"]);
    assert!(page["nextCursor"].is_null());

    // Ada moves to a new address: the old one is free for Eve, in the same transaction as the change.
    let res = patch(ada["id"].as_str().unwrap(), 1, "ada@new.example").await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        usage(&res).0,
        2,
        "read, then one transaction (profile, new guard, old guard, audit)"
    );
    assert_eq!(find("Ada@New.Example").await.0["items"][0]["id"], ada["id"]);
    assert_eq!(find("ada.lovelace@example.org").await.0["items"], json!([]));
    assert_eq!(
        patch(eve_id, 1, "ada.lovelace@example.org").await.unwrap().status(),
        200
    );
    assert_eq!(find("ada.lovelace@example.org").await.0["items"][0]["id"], eve["id"]);
    assert_eq!(find("eve@example.org").await.0["items"], json!([]), "Eve gave hers up");
}

pub fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn the_front_desk_finds_a_patient_by_family_name_and_birth_date_ignoring_case_and_accents() {
    let app = spawn_app().await;
    let lab = app.staff(Role::Lab);
    let muller = registered(&app, "Jürgen", "Müller", "1970-03-01", None).await;
    let lukasik = registered(&app, "Zoë", "Łukasik", "1970-03-01", None).await;
    let _muller_other_day = registered(&app, "Jürgen", "Müller", "1970-03-02", None).await;
    let anna = registered(&app, "Anna", "Müller-Schmidt", "1970-03-01", None).await;
    let search = |query: &str| {
        let url = format!("/v1/patients?{query}");
        let token = lab.clone();
        let app = &app;
        async move { app.get(&url, &token).await }
    };
    let ids = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let res = search("familyName=muller&birthDate=1970-03-01").await;
    assert_eq!(usage(&res).0, 1, "one Query on the birth date's partition");
    let page: Value = res.json().await.unwrap();
    assert_eq!(
        ids(&page),
        [muller["id"].as_str().unwrap(), anna["id"].as_str().unwrap()],
        "prefix, in name order, one birth date only"
    );
    let page: Value = search("familyName=%C5%81UKA&birthDate=1970-03-01")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ids(&page), [lukasik["id"].as_str().unwrap()], "ŁUKA finds Łukasik");
    let page: Value = search("familyName=lukasik&birthDate=1970-03-01")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ids(&page), [lukasik["id"].as_str().unwrap()]);
    let page: Value = search("familyName=MULLER&givenName=an&birthDate=1970-03-01")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ids(&page), [anna["id"].as_str().unwrap()], "the given name narrows");

    let first: Value = search("familyName=mul&birthDate=1970-03-01&limit=1")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ids(&first), [muller["id"].as_str().unwrap()]);
    let cursor = first["nextCursor"].as_str().unwrap().to_owned();
    let second = search(&format!("familyName=mul&birthDate=1970-03-01&limit=1&cursor={cursor}")).await;
    assert_eq!(usage(&second).0, 1);
    let second: Value = second.json().await.unwrap();
    assert_eq!(ids(&second), [anna["id"].as_str().unwrap()]);
    assert_problem(
        search(&format!("familyName=luk&birthDate=1970-03-01&limit=1&cursor={cursor}")).await,
        400,
        "bad-request",
    )
    .await;

    for bad in [
        "",
        "familyName=muller",
        "birthDate=1970-03-01",
        "familyName=%20-%20&birthDate=1970-03-01",
        "email=a@b.c&familyName=muller&birthDate=1970-03-01",
        "familyName=muller&birthDate=1970-13-01",
    ] {
        assert_problem(search(bad).await, 422, "validation").await;
    }
    let patient = app.token(Role::Patient, muller["id"].as_str().unwrap());
    let res = app
        .get("/v1/patients?familyName=muller&birthDate=1970-03-01", &patient)
        .await;
    assert_problem(res, 403, "forbidden").await;
    let res = app
        .get(
            "/v1/patients?familyName=muller&birthDate=1970-03-01",
            &app.staff(Role::Doctor),
        )
        .await;
    assert_problem(res, 403, "forbidden").await;

    // Who searched for what is in the found patient's trail.
    let mut polls = 0;
    let trail: Value = loop {
        polls += 1;
        assert!(polls < 200, "the search's audit events never arrived");
        let trail: Value = app
            .get(
                &format!("/v1/patients/{}/audit", lukasik["id"].as_str().unwrap()),
                &app.staff(Role::Admin),
            )
            .await
            .json()
            .await
            .unwrap();
        if trail["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e.get("query").is_some())
        {
            break trail;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let queries: Vec<&str> = trail["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["query"].as_str())
        .collect();
    assert!(queries.contains(&"familyName=ŁUKA&birthDate=1970-03-01"), "{queries:?}");
    assert!(
        trail["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["actor"]["sub"] == "lab-1"),
        "{trail}"
    );
}

#[tokio::test]
async fn an_identifier_belongs_to_one_patient_per_system_and_finds_them() {
    let app = spawn_app().await;
    let lab = app.staff(Role::Lab);
    const MRN: &str = "https://hospital.example.org/mrn";
    const NATIONAL: &str = "urn:oid:2.16.840.1.113883.4.1";
    let mut body = json!({"givenName": "Ada", "familyName": "Lovelace", "birthDate": "1990-12-10", "sex": "female",
                          "identifiers": [{"system": MRN, "value": "MRN-1"}, {"system": NATIONAL, "value": "123-45-6789"}]});
    let res = register(&app, body.clone()).await;
    assert_eq!(res.status(), 201);
    let ada: Value = res.json().await.unwrap();
    assert_eq!(ada["identifiers"][1]["value"], "123-45-6789");

    body["givenName"] = "Eve".into();
    body["identifiers"] = json!([{"system": MRN, "value": "MRN-2"}, {"system": MRN, "value": "MRN-1"}]);
    let taken = register(&app, body.clone()).await;
    assert_eq!(taken.status(), 409);
    let problem: Value = taken.json().await.unwrap();
    assert!(
        problem["type"].as_str().unwrap().ends_with("identifier-taken"),
        "{problem}"
    );
    assert!(
        problem["detail"].as_str().unwrap().contains("MRN-1"),
        "names the identifier: {problem}"
    );
    // The same value in another system is another identifier.
    body["identifiers"] = json!([{"system": "https://other.example.org/mrn", "value": "MRN-1"}]);
    let eve: Value = register(&app, body.clone()).await.json().await.unwrap();

    for (bad, why) in [
        (json!([{"system": "no-colon", "value": "1"}]), "system without a scheme"),
        (json!([{"system": "urn:a#b", "value": "1"}]), "system with #"),
        (json!([{"system": "urn:a|b", "value": "1"}]), "system with |"),
        (json!([{"system": MRN, "value": "a b"}]), "value with a space"),
        (
            json!([{"system": MRN, "value": "1"}, {"system": MRN, "value": "1"}]),
            "twice",
        ),
        (
            json!(
                (0..6)
                    .map(|i| json!({"system": MRN, "value": format!("v{i}")}))
                    .collect::<Vec<_>>()
            ),
            "six",
        ),
    ] {
        body["identifiers"] = bad;
        let res = register(&app, body.clone()).await;
        assert_eq!(res.status(), 422, "{why}");
        let problem: Value = res.json().await.unwrap();
        assert_eq!(problem["errors"][0]["field"], "identifiers", "{why}: {problem}");
    }

    let find = |token: &str| {
        let url = format!("/v1/patients?identifier={}", urlencode(&format!("{MRN}|MRN-1")));
        let (app, token) = (&app, token.to_owned());
        async move { app.get(&url, &token).await }
    };
    let res = find(&lab).await;
    assert_eq!(res.status(), 200);
    assert_eq!(usage(&res).0, 2, "the identifier's guard, then the profile");
    let page: Value = res.json().await.unwrap();
    assert_eq!(page["items"][0]["id"], ada["id"]);
    assert_eq!(
        find(&app.token(Role::Patient, ada["id"].as_str().unwrap()))
            .await
            .status(),
        403
    );
    assert_eq!(find(&app.staff(Role::Doctor)).await.status(), 403);
    for bad in ["nobar", "urn:x|", "|1", "urn:x|a b"] {
        let res = app
            .get(&format!("/v1/patients?identifier={}", urlencode(bad)), &lab)
            .await;
        assert_problem(res, 422, "validation").await;
    }
    let both = app
        .get(
            &format!("/v1/patients?identifier={}&email=a@b.c", urlencode("urn:x|1")),
            &lab,
        )
        .await;
    assert_eq!(both.status(), 422);

    // The search is in the patient's audit trail, with what was searched for.
    let trail: Value = app
        .get(
            &format!("/v1/patients/{}/audit", ada["id"].as_str().unwrap()),
            &app.staff(Role::Admin),
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(
        trail["items"].as_array().unwrap().iter().any(|e| e["query"]
            .as_str()
            .is_some_and(|q| q.starts_with("identifier=") && q.ends_with("MRN-1"))),
        "{trail}"
    );

    // A new number moves the guard in the change's transaction: the old one is free for Eve.
    let patch = |id: &Value, version: u64, identifiers: Value, token: &str| {
        app.request(
            Method::PATCH,
            &format!("/v1/patients/{}", id.as_str().unwrap()),
            Some(token),
        )
        .header("if-match", format!("\"{version}\""))
        .json(&json!({"identifiers": identifiers}))
        .send()
    };
    let res = patch(&ada["id"], 1, json!([{"system": MRN, "value": "MRN-9"}]), &lab)
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = find(&lab).await;
    assert_eq!(
        res.json::<Value>().await.unwrap()["items"],
        json!([]),
        "MRN-1 is nobody's now"
    );
    let res = patch(&eve["id"], 1, json!([{"system": MRN, "value": "MRN-1"}]), &lab)
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = find(&lab).await;
    assert_eq!(res.json::<Value>().await.unwrap()["items"][0]["id"], eve["id"]);
    let res = patch(&ada["id"], 2, json!([{"system": MRN, "value": "MRN-1"}]), &lab)
        .await
        .unwrap();
    assert_problem(res, 409, "identifier-taken").await;

    // A patient cannot set their own identifiers (they could claim another person's).
    let own = app.token(Role::Patient, ada["id"].as_str().unwrap());
    let res = patch(&ada["id"], 2, json!([]), &own).await.unwrap();
    assert_eq!(res.status(), 422);
    assert_eq!(res.json::<Value>().await.unwrap()["errors"][0]["field"], "identifiers");

    // The record lists them.
    let record: Value = app
        .get(&format!("/v1/patients/{}", eve["id"].as_str().unwrap()), &lab)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(record["identifiers"], json!([{"system": MRN, "value": "MRN-1"}]));
}
