//! Release to the patient (policies, a test type's own rule, doctors' holds), what each patient-facing view
//! shows before and after, the races around them, ranges by sex and age, delta checks and the series.

use medbook::auth::Role;
use reqwest::{Method, Response};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, assert_problem, day, performed_now, slot, spawn_app, spawn_app_with, usage};

/// A booked, checked-in CBC of `patient`: the base URL of its test.
async fn cbc_of(app: &TestApp, patient: Uuid, hhmm: &str, days: i64) -> String {
    let booking = app.booked(patient, &slot(&day(days), hhmm), &["CBC"]).await;
    let id = booking["id"].as_str().unwrap();
    app.check_in(patient, id).await;
    format!(
        "/v1/patients/{patient}/bookings/{id}/tests/{}",
        booking["tests"][0]["id"].as_str().unwrap()
    )
}

fn hgb(value: f64) -> Value {
    json!({"values": [{"analyte": "HGB", "value": value, "unit": "g/dL"}], "performedAt": performed_now(),
           "comment": "lab comment"})
}

async fn record(app: &TestApp, base: &str, body: &Value) -> Response {
    app.request(Method::PUT, &format!("{base}/result"), Some(&app.staff(Role::Lab)))
        .json(body)
        .send()
        .await
        .unwrap()
}

pub async fn hold(app: &TestApp, base: &str) -> Response {
    app.request(
        Method::POST,
        &format!("{base}/release-hold"),
        Some(&app.staff(Role::Doctor)),
    )
    .json(&json!({"reason": "Discuss the diagnosis in person first."}))
    .send()
    .await
    .unwrap()
}

pub async fn lift(app: &TestApp, base: &str) -> Response {
    app.request(
        Method::DELETE,
        &format!("{base}/release-hold"),
        Some(&app.staff(Role::Doctor)),
    )
    .send()
    .await
    .unwrap()
}

async fn review(app: &TestApp, base: &str, version: u64) -> Response {
    app.request(Method::POST, &format!("{base}/review"), Some(&app.staff(Role::Doctor)))
        .header("if-match", format!("\"{version}\""))
        .json(&json!({"conclusion": "Discussed with the patient."}))
        .send()
        .await
        .unwrap()
}

async fn note(app: &TestApp, base: &str, text: &str, visibility: &str) {
    let res = app
        .request(Method::POST, &format!("{base}/notes"), Some(&app.staff(Role::Doctor)))
        .json(&json!({"text": text, "visibility": visibility}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
}

async fn json_of(app: &TestApp, path: &str, token: &str) -> Value {
    let res = app.get(path, token).await;
    assert_eq!(res.status(), 200, "{path}");
    res.json().await.unwrap()
}

/// What each patient-facing view shows of the one result at `base`, for `token`: (JSON result has values,
/// booking tree has values, history has values, FHIR has Observations, series has the value, notes seen).
async fn views(app: &TestApp, patient: Uuid, base: &str, token: &str) -> [bool; 6] {
    let booking = &base[..base.find("/tests/").unwrap()];
    let result = json_of(app, &format!("{base}/result"), token).await;
    let tree = json_of(app, booking, token).await;
    let history = json_of(app, &format!("{base}/result/history"), token).await;
    let fhir = json_of(app, &format!("{booking}/fhir"), token).await;
    let series = json_of(
        app,
        &format!(
            "/v1/patients/{patient}/observations?loinc=718-7&from={}&to={}",
            day(-400),
            day(400)
        ),
        token,
    )
    .await;
    let observations = fhir["entry"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["resource"]["resourceType"] == "Observation")
        .count();
    [
        result.get("values").is_some() && result.get("comment").is_some(),
        tree["tests"][0]["result"].get("values").is_some(),
        history["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r.get("values").is_some()),
        observations > 0,
        !series["items"].as_array().unwrap().is_empty(),
        tree["tests"][0]["notes"].as_array().unwrap().len() == 1,
    ]
}

#[tokio::test]
async fn every_patient_view_follows_one_release_rule_through_verification_hold_and_lift() {
    let app = spawn_app().await;
    let patient = app.create_patient().await;
    let base = cbc_of(&app, patient, "07:00", 30).await;
    let me = app.token(Role::Patient, &patient.to_string());
    let doctor = app.staff(Role::Doctor);
    assert_eq!(record(&app, &base, &hgb(13.0)).await.status(), 201);
    note(&app, &base, "Only for the team.", "internal").await;
    note(&app, &base, "All fine, see you in a year.", "patient").await;

    // One table: the stage, then what the patient sees in every view, then what a doctor sees.
    let hidden = [false, false, false, false, false, false];
    let shown = [true, true, true, true, true, true];
    assert_eq!(views(&app, patient, &base, &me).await, hidden, "recorded: nothing");
    let staff = views(&app, patient, &base, &doctor).await;
    assert_eq!(
        staff,
        [true, true, true, true, false, false],
        "staff see everything recorded (and both notes); the series holds verified values only"
    );

    let held = hold(&app, &base).await;
    assert_eq!(held.status(), 200);
    assert_eq!(usage(&held).0, 2, "the booking tree, then one transaction");
    let held: Value = held.json().await.unwrap();
    assert_eq!(held["hold"]["reason"], "Discuss the diagnosis in person first.");
    assert_problem(hold(&app, &base).await, 409, "already-held").await;
    let verified: Value = app.verify(&base, 2).await.json().await.unwrap();
    assert_eq!(verified["release"]["state"], "held");
    assert_eq!(
        views(&app, patient, &base, &me).await,
        hidden,
        "verified but held: nothing"
    );
    let mine = json_of(&app, &format!("{base}/result"), &me).await;
    assert!(mine.get("hold").is_none(), "a patient is not shown the hold: {mine}");
    assert!(views(&app, patient, &base, &doctor).await[4], "staff see the series");

    let lifted = lift(&app, &base).await;
    assert_eq!(lifted.status(), 200);
    let lifted: Value = lifted.json().await.unwrap();
    assert_eq!(lifted["release"]["state"], "released");
    assert_problem(lift(&app, &base).await, 409, "not-held").await;
    assert_eq!(
        views(&app, patient, &base, &me).await,
        shown,
        "released: everything meant for them"
    );
    let tree = json_of(&app, &base[..base.find("/tests/").unwrap()], &me).await;
    assert_eq!(tree["tests"][0]["notes"][0]["text"], "All fine, see you in a year.");
    let mine = json_of(&app, &format!("{base}/result"), &me).await;
    assert_eq!(
        mine["release"]["releasedAt"], lifted["release"]["releasedAt"],
        "released when the hold was lifted, after verification"
    );

    // Both the hold and the lift are in the patient's audit trail with the reason.
    let trail = json_of(
        &app,
        &format!("/v1/patients/{patient}/audit?limit=100"),
        &app.staff(Role::Admin),
    )
    .await;
    let reasons: Vec<&str> = trail["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"].as_str().unwrap().ends_with("/release-hold") && e["outcome"] == 200)
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["Discuss the diagnosis in person first."; 2]);
    let own = json_of(&app, &format!("/v1/patients/{patient}/audit?limit=100"), &me).await;
    assert!(
        own["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e.get("reason").is_none()),
        "the patient's own trail does not tell them why a doctor holds a result: {own}"
    );
    assert_problem(
        app.request(
            Method::POST,
            &format!("{base}/release-hold"),
            Some(&app.staff(Role::Lab)),
        )
        .json(&json!({"reason": "x"}))
        .send()
        .await
        .unwrap(),
        403,
        "forbidden",
    )
    .await;
}

#[tokio::test]
async fn on_review_releases_only_after_the_doctors_review() {
    let app = spawn_app_with(&[("MEDBOOK_RESULT_RELEASE", "on-review")]).await;
    let patient = app.create_patient().await;
    let base = cbc_of(&app, patient, "07:15", 30).await;
    let me = app.token(Role::Patient, &patient.to_string());
    record(&app, &base, &hgb(13.0)).await;
    let verified: Value = app.verify(&base, 1).await.json().await.unwrap();
    assert_eq!(verified["release"]["state"], "awaiting-review");
    let mine = json_of(&app, &format!("{base}/result"), &me).await;
    assert_eq!(
        (mine["status"].as_str(), mine["valuesWithheld"].as_bool()),
        (Some("final"), Some(true))
    );
    assert_eq!(review(&app, &base, 2).await.status(), 200);
    let mine = json_of(&app, &format!("{base}/result"), &me).await;
    assert_eq!(mine["valuesWithheld"], false);
    assert_eq!(mine["release"]["releasedAt"], mine["review"]["reviewedAt"]);
}

#[tokio::test]
async fn on_final_after_hours_waits_unless_a_doctor_reviews_first_and_a_test_type_may_override_it() {
    let app = spawn_app_with(&[("MEDBOOK_RESULT_RELEASE", "on-final-after:48")]).await;
    let patient = app.create_patient().await;
    let base = cbc_of(&app, patient, "07:30", 30).await;
    let me = app.token(Role::Patient, &patient.to_string());
    record(&app, &base, &hgb(13.0)).await;
    let verified: Value = app.verify(&base, 1).await.json().await.unwrap();
    assert_eq!(verified["release"]["state"], "scheduled");
    assert!(verified["release"]["dueAt"].is_string());
    assert_eq!(
        json_of(&app, &format!("{base}/result"), &me).await["valuesWithheld"],
        true
    );
    assert_eq!(review(&app, &base, 2).await.status(), 200);
    assert_eq!(
        json_of(&app, &format!("{base}/result"), &me).await["valuesWithheld"],
        false,
        "the review came first"
    );

    // A sensitive test releases on review whatever the service's policy.
    let admin = app.staff(Role::Admin);
    let res = app
        .request(Method::POST, "/v1/test-types", Some(&admin))
        .json(&json!({
            "code": "HIV", "name": "HIV-1/2 antibodies", "category": "serology", "loinc": "7917-8",
            "specimen": "serum", "durationMinutes": 5, "priceCents": 2000, "currency": "EUR",
            "release": "on-review",
            "analytes": [{"code": "HIVAB", "name": "HIV-1/2 Ab", "loinc": "7917-8", "unit": "1",
                          "referenceRange": {"high": 1.0}}]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let booking = app.booked(patient, &slot(&day(31), "08:00"), &["HIV"]).await;
    let id = booking["id"].as_str().unwrap();
    app.check_in(patient, id).await;
    let hiv = format!(
        "/v1/patients/{patient}/bookings/{id}/tests/{}",
        booking["tests"][0]["id"].as_str().unwrap()
    );
    let body = json!({"values": [{"analyte": "HIVAB", "value": 0.2, "unit": "1"}], "performedAt": performed_now()});
    assert_eq!(record(&app, &hiv, &body).await.status(), 201);
    let verified: Value = app.verify(&hiv, 1).await.json().await.unwrap();
    assert_eq!(
        verified["release"]["state"], "awaiting-review",
        "the test type's own rule"
    );
    let res = app
        .request(Method::POST, "/v1/test-types", Some(&admin))
        .json(&json!({
            "code": "BAD", "name": "Bad", "category": "serology", "loinc": "7917-8", "specimen": "serum",
            "durationMinutes": 5, "priceCents": 2000, "currency": "EUR", "release": "on-final-after:0",
            "analytes": [{"code": "X", "name": "X", "loinc": "7917-8", "unit": "1", "referenceRange": {"high": 1.0}}]
        }))
        .send()
        .await
        .unwrap();
    let problem = assert_problem(res, 422, "validation").await;
    assert!(problem.to_string().contains("release"), "{problem}");
}

#[tokio::test]
async fn a_setting_that_is_no_policy_stops_the_service_with_the_variable_named() {
    let error = medbook::config::Settings::from_lookup(|name| {
        (name == "MEDBOOK_RESULT_RELEASE").then(|| "on-final-after:two-days".to_owned())
    })
    .unwrap_err();
    assert!(error.to_string().contains("MEDBOOK_RESULT_RELEASE"), "{error}");
}

#[tokio::test]
async fn verification_racing_a_new_recording_has_one_winner_and_loses_no_revision() {
    let app = spawn_app().await;
    let patient = app.create_patient().await;
    let base = cbc_of(&app, patient, "08:15", 30).await;
    record(&app, &base, &hgb(13.0)).await;
    let lab = app.staff(Role::Lab);
    let mut version = 1u64;
    let mut recorded = 1u64;
    for round in 0..20u64 {
        let current = json_of(&app, &format!("{base}/result"), &lab).await;
        assert_eq!(current["version"], version);
        let verify = app.verify(&base, version);
        let mut body = hgb(12.0 + (round % 3) as f64);
        body["comment"] = json!(format!("round {round}"));
        let put = app
            .request(Method::PUT, &format!("{base}/result"), Some(&lab))
            .header("if-match", format!("\"{version}\""))
            .json(&body)
            .send();
        let (verify, put) = tokio::join!(verify, put);
        let mut statuses = [verify.status().as_u16(), put.unwrap().status().as_u16()];
        // A round that starts on a verified result has nothing to verify (409); else one of the two wins.
        statuses.sort_unstable();
        assert!(
            matches!(statuses, [200, 412] | [200, 409]),
            "round {round}: {statuses:?}"
        );
        let after = json_of(&app, &format!("{base}/result"), &lab).await;
        version = after["version"].as_u64().unwrap();
        recorded = after["revision"].as_u64().unwrap().max(recorded);
    }
    let history = json_of(&app, &format!("{base}/result/history"), &lab).await;
    let revisions: Vec<u64> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["revision"].as_u64().unwrap())
        .collect();
    assert_eq!(revisions, (1..=recorded).collect::<Vec<_>>(), "every recording kept");
}

#[tokio::test]
async fn a_hold_racing_verification_is_never_released() {
    let app = spawn_app().await;
    let patient = app.create_patient().await;
    let me = app.token(Role::Patient, &patient.to_string());
    for round in 0..8i64 {
        let base = cbc_of(&app, patient, &format!("{:02}:00", 7 + round), 30).await;
        record(&app, &base, &hgb(13.0)).await;
        let (held, verified) = tokio::join!(hold(&app, &base), app.verify(&base, 1));
        assert_eq!(held.status(), 200, "round {round}: a hold always lands");
        let verified = verified.status().as_u16();
        assert!(matches!(verified, 200 | 412), "round {round}: {verified}");
        let mine = json_of(&app, &format!("{base}/result"), &me).await;
        assert_eq!(mine["valuesWithheld"], true, "round {round}: {mine}");
        if verified == 412 {
            let current = json_of(&app, &format!("{base}/result"), &app.staff(Role::Lab)).await;
            let version = current["version"].as_u64().unwrap();
            assert_eq!(app.verify(&base, version).await.status(), 200);
        }
        let mine = json_of(&app, &format!("{base}/result"), &me).await;
        assert_eq!(mine["valuesWithheld"], true, "round {round}: verified, still held");
    }
}

#[tokio::test]
async fn ranges_follow_the_patients_sex_and_age_at_collection() {
    let app = spawn_app().await;
    let admin = app.staff(Role::Admin);
    let person = |sex: &str, birth: &str| {
        let body = json!({"givenName": "Zoë", "familyName": "Ångström-Łukasik", "birthDate": birth, "sex": sex});
        let rb = app.request(Method::POST, "/v1/patients", Some(&admin)).json(&body);
        async move {
            let res = rb.send().await.unwrap();
            assert_eq!(res.status(), 201);
            let body: Value = res.json().await.unwrap();
            body["id"].as_str().unwrap().parse::<Uuid>().unwrap()
        }
    };
    let (woman, man, child) = (
        person("female", "1980-05-01").await,
        person("male", "1980-05-01").await,
        person("male", &day(-365 * 4)).await,
    );
    let mut flags = Vec::new();
    for (who, hhmm) in [(woman, "07:00"), (man, "07:15")] {
        let base = cbc_of(&app, who, hhmm, 30).await;
        let result: Value = record(&app, &base, &hgb(13.0)).await.json().await.unwrap();
        flags.push((
            result["values"][0]["flag"].clone(),
            result["values"][0]["referenceRange"]["sex"].clone(),
        ));
    }
    assert_eq!(
        flags,
        [(json!("N"), json!("female")), (json!("L"), json!("male"))],
        "13.0 g/dL is normal for a woman (11.6-15.0), low for a man (13.2-16.6)"
    );
    let booking = app.booked(child, &slot(&day(30), "07:30"), &["BMP"]).await;
    let id = booking["id"].as_str().unwrap();
    app.check_in(child, id).await;
    let base = format!(
        "/v1/patients/{child}/bookings/{id}/tests/{}",
        booking["tests"][0]["id"].as_str().unwrap()
    );
    let body = json!({"values": [{"analyte": "CREA", "value": 0.8, "unit": "mg/dL"}], "performedAt": performed_now()});
    let result: Value = record(&app, &base, &body).await.json().await.unwrap();
    assert_eq!(
        result["values"][0]["flag"], "H",
        "0.8 mg/dL is high for a child of four"
    );
    assert_eq!(
        result["values"][0]["referenceRange"],
        json!({"ageFrom": {"value": 1, "unit": "a"}, "ageTo": {"value": 6, "unit": "a"}, "low": 0.19, "high": 0.49})
    );

    // A catalog entry needs exactly one catch-all range.
    let res = app
        .request(Method::POST, "/v1/test-types", Some(&admin))
        .json(&json!({
            "code": "HB2", "name": "Hb", "category": "hematology", "loinc": "718-7", "specimen": "blood",
            "durationMinutes": 5, "priceCents": 100, "currency": "EUR",
            "analytes": [{"code": "HGB", "name": "Hemoglobin", "loinc": "718-7", "unit": "g/dL",
                          "referenceRanges": [{"sex": "female", "low": 11.6, "high": 15.0}]}]
        }))
        .send()
        .await
        .unwrap();
    let problem = assert_problem(res, 422, "validation").await;
    assert_eq!(
        problem["errors"][0]["field"], "analytes[0].referenceRanges",
        "{problem}"
    );
}

#[tokio::test]
async fn a_value_far_from_the_previous_final_one_is_delta_flagged_and_the_series_is_one_query() {
    let app = spawn_app().await;
    let patient = app.create_patient().await;
    let me = app.token(Role::Patient, &patient.to_string());
    let doctor = app.staff(Role::Doctor);
    // The first specimen was collected two days ago; the second now.
    let first = app.booked(patient, &slot(&day(30), "07:00"), &["CBC"]).await;
    let first_id = first["id"].as_str().unwrap();
    let two_days_ago = medbook::domain::timefmt::instant(time::OffsetDateTime::now_utc() - time::Duration::days(2));
    app.check_in_at(patient, first_id, &two_days_ago).await;
    let first = format!(
        "/v1/patients/{patient}/bookings/{first_id}/tests/{}",
        first["tests"][0]["id"].as_str().unwrap()
    );
    let earlier: Value = record(&app, &first, &hgb(14.0)).await.json().await.unwrap();
    assert_eq!(earlier["deltaFlag"], false, "nothing to compare with");
    let second = cbc_of(&app, patient, "07:15", 30).await;
    let unverified: Value = record(&app, &second, &hgb(10.0)).await.json().await.unwrap();
    assert_eq!(unverified["deltaFlag"], false, "the first value is not final yet");
    assert_eq!(app.verify(&first, 1).await.status(), 200);

    let res = app
        .request(Method::PUT, &format!("{second}/result"), Some(&app.staff(Role::Lab)))
        .header("if-match", "\"1\"")
        .json(&hgb(10.0))
        .send()
        .await
        .unwrap();
    let flagged: Value = res.json().await.unwrap();
    assert_eq!(flagged["deltaFlag"], true);
    let delta = &flagged["values"][0]["delta"];
    assert_eq!(
        (delta["previous"].as_f64(), delta["change"].as_f64()),
        (Some(14.0), Some(-4.0))
    );
    let queue = json_of(&app, "/v1/verification-queue", &app.staff(Role::Lab)).await;
    assert_eq!(queue["items"][0]["deltaFlag"], true);
    assert_eq!(app.verify(&second, 2).await.status(), 200);
    let worklist = json_of(&app, "/v1/worklist", &doctor).await;
    let deltas: Vec<bool> = worklist["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["deltaFlag"].as_bool().unwrap())
        .collect();
    assert_eq!(deltas, [false, true], "oldest verified first");

    let series = format!(
        "/v1/patients/{patient}/observations?loinc=718-7&from={}&to={}",
        day(-3),
        day(0)
    );
    let res = app.get(&series, &doctor).await;
    assert_eq!(usage(&res).0, 1, "one Query on the patient's partition");
    let page: Value = res.json().await.unwrap();
    let values: Vec<f64> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["value"].as_f64().unwrap())
        .collect();
    assert_eq!(values, [14.0, 10.0], "oldest first");
    let page: Value = app
        .get(&format!("{series}&limit=1"), &doctor)
        .await
        .json()
        .await
        .unwrap();
    let cursor = page["nextCursor"].as_str().unwrap();
    let res = app
        .get(
            &format!(
                "/v1/patients/{patient}/observations?loinc=2345-7&from={}&to={}&cursor={cursor}",
                day(-3),
                day(0)
            ),
            &doctor,
        )
        .await;
    assert_problem(res, 400, "bad-request").await;

    // The FHIR export says so too: the value's second interpretation is a significant change down.
    let bundle = json_of(
        &app,
        &format!("{}/fhir", &second[..second.find("/tests/").unwrap()]),
        &doctor,
    )
    .await;
    assert_eq!(crate::fhir::schema_errors(&bundle), "", "{bundle:#}");
    let hgb = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .find(|r| r["resourceType"] == "Observation" && r["code"]["coding"][0]["code"] == "718-7")
        .unwrap();
    assert_eq!(hgb["interpretation"][1]["coding"][0]["code"], "D", "{hgb:#}");

    // Held from the patient: gone from their series, not from the doctor's.
    assert_eq!(hold(&app, &second).await.status(), 200);
    let mine = json_of(&app, &series, &me).await;
    assert_eq!(mine["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        json_of(&app, &series, &doctor).await["items"].as_array().unwrap().len(),
        2
    );

    for bad in [
        format!("/v1/patients/{patient}/observations?from={}&to={}", day(-3), day(0)),
        format!(
            "/v1/patients/{patient}/observations?loinc=hgb&from={}&to={}",
            day(-3),
            day(0)
        ),
        format!(
            "/v1/patients/{patient}/observations?loinc=718-7&from={}&to={}",
            day(0),
            day(-3)
        ),
    ] {
        assert_problem(app.get(&bad, &doctor).await, 422, "validation").await;
    }
    let other = app.token(Role::Patient, &Uuid::now_v7().to_string());
    assert_problem(app.get(&series, &other).await, 404, "not-found").await;
}

#[tokio::test]
async fn the_printed_report_shows_released_results_with_flags_and_leaves_withheld_ones_out() {
    let app = spawn_app().await;
    let admin = app.staff(Role::Admin);
    let res = app
        .request(Method::POST, "/v1/patients", Some(&admin))
        .json(
            &json!({"givenName": "Zoë", "familyName": "Ångström-Łukasik", "birthDate": "1984-02-29", "sex": "female"}),
        )
        .send()
        .await
        .unwrap();
    let patient: Uuid = res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let me = app.token(Role::Patient, &patient.to_string());
    let booking = app.booked(patient, &slot(&day(30), "09:00"), &["CBC", "LIPID"]).await;
    let id = booking["id"].as_str().unwrap();
    app.check_in(patient, id).await;
    let test = |i: usize| {
        format!(
            "/v1/patients/{patient}/bookings/{id}/tests/{}",
            booking["tests"][i]["id"].as_str().unwrap()
        )
    };
    let report = format!("/v1/patients/{patient}/bookings/{id}/report.pdf");
    let cbc = json!({"values": [
        {"analyte": "HGB", "value": 7.0, "unit": "g/dL"},
        {"analyte": "WBC", "value": 6.1, "unit": "10*3/uL"}
    ], "performedAt": performed_now(), "comment": "Sample slightly haemolysed."});
    assert_eq!(record(&app, &test(0), &cbc).await.status(), 201);
    let lipid = json!({"values": [{"analyte": "CHOL", "value": 231, "unit": "mg/dL"}], "performedAt": performed_now()});
    assert_eq!(record(&app, &test(1), &lipid).await.status(), 201);
    assert_problem(app.get(&report, &me).await, 409, "not-released").await;

    assert_eq!(app.verify(&test(0), 1).await.status(), 200);
    note(&app, &test(0), "Please book an iron panel.", "patient").await;
    note(&app, &test(0), "Consider GI bleeding.", "internal").await;
    let res = app.get(&report, &me).await;
    assert_eq!(res.status(), 200);
    assert_eq!(usage(&res).0, 2, "the tree and the patient, together");
    assert_eq!(res.headers()["content-type"], "application/pdf");
    let pdf = res.bytes().await.unwrap();
    assert!(pdf.starts_with(b"%PDF-"));
    let text = pdf_extract::extract_text_from_mem(&pdf).unwrap();
    for expected in [
        "medbook laboratory",
        "Zoë Ångström-Łukasik",
        "1984-02-29",
        "female",
        "MAIN-TEST-0001",
        "Hemoglobin",
        "g/dL",
        "11.6–15 (female, ≥ 18 a)",
        "L !",
        "Status: final · verified by lab-2",
        "Released to the patient at",
        "Sample slightly haemolysed.",
        "Please book an iron panel.",
        "Lipid panel",
        "Not released yet.",
    ] {
        assert!(text.contains(expected), "`{expected}` missing from:\n{text}");
    }
    for absent in ["Consider GI bleeding.", "Cholesterol", "231"] {
        assert!(!text.contains(absent), "`{absent}` in the patient's report:\n{text}");
    }
    let staff = app.get(&report, &app.staff(Role::Doctor)).await.bytes().await.unwrap();
    let text = pdf_extract::extract_text_from_mem(&staff).unwrap();
    for expected in [
        "Cholesterol",
        "231",
        "preliminary (not verified)",
        "Consider GI bleeding.",
    ] {
        assert!(
            text.contains(expected),
            "`{expected}` missing from the doctor's report:\n{text}"
        );
    }
    let stranger = app.token(Role::Patient, &Uuid::now_v7().to_string());
    assert_problem(app.get(&report, &stranger).await, 404, "not-found").await;
}

#[tokio::test]
async fn a_correction_awaiting_verification_leaves_the_series_until_it_is_verified() {
    let app = spawn_app().await;
    let patient = app.create_patient().await;
    let me = app.token(Role::Patient, &patient.to_string());
    let doctor = app.staff(Role::Doctor);
    let base = cbc_of(&app, patient, "10:30", 30).await;
    record(&app, &base, &hgb(13.0)).await;
    assert_eq!(app.verify(&base, 1).await.status(), 200);
    let series = format!(
        "/v1/patients/{patient}/observations?loinc=718-7&from={}&to={}",
        day(-1),
        day(1)
    );
    let values = |page: Value| -> Vec<f64> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["value"].as_f64().unwrap())
            .collect()
    };
    assert_eq!(values(json_of(&app, &series, &me).await), [13.0]);
    let res = app
        .request(Method::PUT, &format!("{base}/result"), Some(&app.staff(Role::Lab)))
        .header("if-match", "\"2\"")
        .json(&hgb(11.0))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(hold(&app, &base).await.status(), 200);
    for token in [&me, &doctor] {
        assert!(
            values(json_of(&app, &series, token).await).is_empty(),
            "neither the old values nor the unverified correction"
        );
    }
    assert_eq!(app.verify(&base, 4).await.status(), 200);
    assert_eq!(
        values(json_of(&app, &series, &doctor).await),
        [11.0],
        "the corrected value"
    );
    assert!(
        values(json_of(&app, &series, &me).await).is_empty(),
        "still held from the patient"
    );
    let mine = json_of(&app, &format!("{base}/result"), &me).await;
    assert!(
        mine.get("verification").is_none(),
        "withheld: not even that it was verified: {mine}"
    );
}
