//! Results, flags, revisions, verification, corrections and amendments, notes, reviews and both queues.

use medbook::auth::Role;
use reqwest::{Method, Response};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, assert_problem, day, slot, spawn_app, usage};

/// A booked CBC: (patient, booking id, test id, base URL of the test).
pub async fn booked_cbc(app: &TestApp, hhmm: &str) -> (Uuid, String, String, String) {
    let patient = app.create_patient().await;
    let booking = app.booked(patient, &slot(&day(30), hhmm), &["CBC"]).await;
    app.check_in(patient, booking["id"].as_str().unwrap()).await;
    let (b, t) = (
        booking["id"].as_str().unwrap().to_owned(),
        booking["tests"][0]["id"].as_str().unwrap().to_owned(),
    );
    let base = format!("/v1/patients/{patient}/bookings/{b}/tests/{t}");
    (patient, b, t, base)
}

pub fn values(hgb: f64) -> Value {
    json!({"values": [
        {"analyte": "HGB", "value": hgb, "unit": "g/dL"},
        {"analyte": "WBC", "value": 30.1, "unit": "10*3/uL"},
        {"analyte": "PLT", "value": 150, "unit": "10*3/uL"},
        {"analyte": "HCT", "value": 60, "unit": "%"}
    ], "performedAt": crate::helpers::performed_now()})
}

pub async fn put(app: &TestApp, base: &str, body: &Value, if_match: Option<String>) -> Response {
    let mut rb = app
        .request(Method::PUT, &format!("{base}/result"), Some(&app.staff(Role::Lab)))
        .json(body);
    if let Some(v) = if_match {
        rb = rb.header("if-match", v);
    }
    rb.send().await.unwrap()
}

pub async fn review(app: &TestApp, base: &str, if_match: &str) -> Response {
    app.request(Method::POST, &format!("{base}/review"), Some(&app.staff(Role::Doctor)))
        .header("if-match", if_match)
        .json(&json!({"conclusion": "Discussed with the patient."}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_result_is_recorded_verified_by_another_lab_user_released_and_then_reviewed() {
    let app = spawn_app().await;
    let (patient, _, test_id, base) = booked_cbc(&app, "07:30").await;
    let me = app.token(Role::Patient, &patient.to_string());
    let doctor = app.staff(Role::Doctor);
    let lab = app.staff(Role::Lab);

    let res = put(&app, &base, &values(7.0), None).await;
    assert_eq!(res.status(), 201);
    assert_eq!(
        usage(&res).0,
        5,
        "the booking tree; then together the patient (CBC has ranges by sex) and a delta check each for HGB and PLT; then one transaction"
    );
    assert_eq!(res.headers()["etag"], "\"1\"");
    let result: Value = res.json().await.unwrap();
    assert_eq!(result["status"], "preliminary");
    let flags: Vec<&str> = result["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["flag"].as_str().unwrap())
        .collect();
    assert_eq!(
        flags,
        ["L", "HH", "N", "H"],
        "7.0 is on the critical bound (L), 30.1 above it (HH)"
    );
    assert_eq!(result["critical"], true);
    assert_eq!(result["release"]["state"], "not-verified");
    assert_eq!(
        result["values"][0]["referenceRange"],
        json!({"sex": "female", "ageFrom": {"value": 18, "unit": "a"}, "low": 11.6, "high": 15.0}),
        "the range the value was judged against: Ada is a woman of 35"
    );

    let cancel = format!("{}/cancel", &base[..base.find("/tests/").unwrap()]);
    let res = app.request(Method::POST, &cancel, Some(&me)).send().await.unwrap();
    assert_problem(res, 409, "results-recorded").await;

    let queue = app.get("/v1/verification-queue", &lab).await;
    assert_eq!(usage(&queue).0, 1);
    let queue: Value = queue.json().await.unwrap();
    assert_eq!(queue["items"][0]["testId"], test_id);
    assert_eq!(queue["items"][0]["status"], "preliminary");
    let worklist: Value = app.get("/v1/worklist", &doctor).await.json().await.unwrap();
    assert_eq!(worklist["items"], json!([]), "nothing verified yet");
    assert_problem(app.get("/v1/verification-queue", &doctor).await, 403, "forbidden").await;

    let mine: Value = app.get(&format!("{base}/result"), &me).await.json().await.unwrap();
    assert_eq!(mine["valuesWithheld"], true);
    assert_eq!(
        mine["release"],
        json!({"state": "withheld"}),
        "a patient is not told why"
    );
    assert!(mine.get("values").is_none() && mine.get("critical").is_none(), "{mine}");
    assert_problem(review(&app, &base, "\"1\"").await, 409, "not-verified").await;

    // Four eyes: the recorder may not verify.
    let same = app
        .request(Method::POST, &format!("{base}/result/verify"), Some(&lab))
        .header("if-match", "\"1\"")
        .send()
        .await
        .unwrap();
    assert_problem(same, 409, "same-user").await;
    assert_problem(app.verify(&base, 7).await, 412, "precondition-failed").await;
    let res = app
        .request(
            Method::POST,
            &format!("{base}/result/verify"),
            Some(&app.token(Role::Lab, "lab-2")),
        )
        .send()
        .await
        .unwrap();
    assert_problem(res, 428, "precondition-required").await;
    let res = app.verify(&base, 1).await;
    assert_eq!(res.status(), 200);
    assert_eq!(usage(&res).0, 2, "the booking tree, then one transaction");
    let verified: Value = res.json().await.unwrap();
    assert_eq!(verified["status"], "final");
    assert_eq!(verified["verification"]["verifierId"], "lab-2");
    assert_eq!(verified["release"]["state"], "released", "on-final, the default");
    assert_problem(app.verify(&base, 2).await, 409, "already-verified").await;

    let mine: Value = app.get(&format!("{base}/result"), &me).await.json().await.unwrap();
    assert_eq!(mine["valuesWithheld"], false);
    assert_eq!(mine["values"][0]["value"], 7.0);
    assert_eq!(mine["release"]["releasedAt"], verified["verification"]["verifiedAt"]);
    let queue: Value = app.get("/v1/verification-queue", &lab).await.json().await.unwrap();
    assert_eq!(queue["items"], json!([]));
    let worklist = app.get("/v1/worklist", &doctor).await;
    assert_eq!(usage(&worklist).0, 1);
    let worklist: Value = worklist.json().await.unwrap();
    assert_eq!(worklist["items"][0]["testId"], test_id);
    assert_eq!(worklist["items"][0]["critical"], true);
    assert!(worklist["items"][0]["verifiedAt"].is_string());

    let res = review(&app, &base, "\"2\"").await;
    assert_eq!(res.status(), 200);
    let reviewed: Value = res.json().await.unwrap();
    assert_eq!(reviewed["status"], "final", "a review changes no status");
    assert_eq!(reviewed["review"]["reviewerId"], "doctor-1");
    assert_problem(review(&app, &base, "\"3\"").await, 409, "already-reviewed").await;
    let worklist: Value = app.get("/v1/worklist", &doctor).await.json().await.unwrap();
    assert_eq!(worklist["items"], json!([]), "the sparse index dropped it");
    let tree: Value = app
        .get(&base[..base.find("/tests/").unwrap()], &me)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(tree["tests"][0]["status"], "reviewed");
}

#[tokio::test]
async fn every_recording_is_a_revision_and_one_after_a_verified_result_is_corrected_or_amended() {
    let app = spawn_app().await;
    let (patient, _, _, base) = booked_cbc(&app, "07:45").await;
    put(&app, &base, &values(13.0), None).await;

    assert_problem(
        put(&app, &base, &values(13.1), None).await,
        428,
        "precondition-required",
    )
    .await;
    assert_problem(
        put(&app, &base, &values(13.1), Some("\"9\"".into())).await,
        412,
        "precondition-failed",
    )
    .await;
    let replaced = put(&app, &base, &values(13.1), Some("\"1\"".into())).await;
    assert_eq!(replaced.status(), 200);
    let replaced: Value = replaced.json().await.unwrap();
    assert_eq!(
        (
            replaced["revision"].as_u64(),
            replaced["version"].as_u64(),
            replaced["status"].as_str()
        ),
        (Some(2), Some(2), Some("preliminary")),
        "the first values stay in the history as revision 1"
    );
    assert_eq!(app.verify(&base, 2).await.status(), 200);

    // Values change after a verified revision: a correction, which waits for verification again.
    let corrected = put(&app, &base, &values(12.5), Some("\"3\"".into())).await;
    assert_eq!(corrected.status(), 200);
    let corrected: Value = corrected.json().await.unwrap();
    assert_eq!(
        (
            corrected["status"].as_str(),
            corrected["revision"].as_u64(),
            corrected["corrects"].as_u64()
        ),
        (Some("corrected"), Some(3), Some(2))
    );
    assert!(corrected.get("verification").is_none() && corrected.get("review").is_none());
    let me = app.token(Role::Patient, &patient.to_string());
    let mine: Value = app.get(&format!("{base}/result"), &me).await.json().await.unwrap();
    assert_eq!(mine["valuesWithheld"], true, "an unverified correction is not released");
    let queue: Value = app
        .get("/v1/verification-queue", &app.staff(Role::Lab))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        queue["items"][0]["status"], "corrected",
        "back in the verification queue"
    );

    // Only the comment changes, compared with the last verified revision (2, HGB 13.1): an amendment.
    let mut same = values(13.1);
    same["comment"] = json!("haemolysis ruled out");
    let amended: Value = put(&app, &base, &same, Some("\"4\"".into()))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (amended["status"].as_str(), amended["corrects"].as_u64()),
        (Some("amended"), Some(2))
    );
    let verified: Value = app.verify(&base, 5).await.json().await.unwrap();
    assert_eq!(verified["status"], "amended", "verified, it stays amended");
    let mine: Value = app.get(&format!("{base}/result"), &me).await.json().await.unwrap();
    assert_eq!(mine["comment"], "haemolysis ruled out");

    let history = app.get(&format!("{base}/result/history"), &app.staff(Role::Lab)).await;
    assert_eq!(usage(&history).0, 1);
    let history: Value = history.json().await.unwrap();
    let items = history["items"].as_array().unwrap();
    let revisions: Vec<(u64, &str, bool)> = items
        .iter()
        .map(|r| {
            (
                r["revision"].as_u64().unwrap(),
                r["status"].as_str().unwrap(),
                r.get("verification").is_some(),
            )
        })
        .collect();
    assert_eq!(
        revisions,
        [
            (1, "preliminary", false),
            (2, "final", true),
            (3, "corrected", false),
            (4, "amended", true)
        ],
        "{history}"
    );
    assert_eq!(
        items[0]["values"][0]["value"], 13.0,
        "the values the lab first reported"
    );
    assert_eq!(items[2]["values"][0]["value"], 12.5);
}

#[tokio::test]
async fn values_that_do_not_fit_the_booked_test_type_are_422_and_nothing_is_written() {
    let app = spawn_app().await;
    let (_, _, _, base) = booked_cbc(&app, "08:15").await;
    let body = json!({"values": [
        {"analyte": "GLU", "value": 90, "unit": "mg/dL"},
        {"analyte": "HGB", "value": 13, "unit": "g/L"}
    ], "performedAt": crate::helpers::performed_now()});
    let problem = assert_problem(put(&app, &base, &body, None).await, 422, "validation").await;
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["values[0].analyte", "values[1].unit"], "{problem}");
    assert!(problem["errors"][1]["message"].as_str().unwrap().contains("g/dL"));
    assert_problem(
        put(&app, &base, &json!({"values": [], "performedAt": "x"}), None).await,
        422,
        "validation",
    )
    .await;
    assert_problem(
        app.get(&format!("{base}/result"), &app.staff(Role::Lab)).await,
        404,
        "not-found",
    )
    .await;
    assert_problem(review(&app, &base, "\"1\"").await, 409, "no-result").await;
    assert_problem(app.verify(&base, 1).await, 409, "no-result").await;
}

#[tokio::test]
async fn doctors_notes_join_the_booking_tree() {
    let app = spawn_app().await;
    let (patient, booking, _, base) = booked_cbc(&app, "08:30").await;
    let doctor = app.staff(Role::Doctor);
    let note = |token: String, text: &str| {
        app.request(Method::POST, &format!("{base}/notes"), Some(&token))
            .json(&json!({"text": text}))
            .send()
    };
    let res = note(doctor.clone(), "Fasting sample, please.").await.unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(usage(&res).0, 1);
    let created: Value = res.json().await.unwrap();
    assert_eq!(created["authorId"], "doctor-1");
    note(doctor.clone(), "Second note.").await.unwrap();
    assert_problem(note(doctor.clone(), "").await.unwrap(), 422, "validation").await;
    assert_problem(
        note(doctor.clone(), &"x".repeat(4001)).await.unwrap(),
        422,
        "validation",
    )
    .await;
    assert_problem(note(app.staff(Role::Lab), "hi").await.unwrap(), 403, "forbidden").await;
    let ghost = format!(
        "/v1/patients/{patient}/bookings/{booking}/tests/{}/notes",
        Uuid::now_v7()
    );
    let res = app
        .request(Method::POST, &ghost, Some(&doctor))
        .json(&json!({"text": "x"}))
        .send()
        .await
        .unwrap();
    assert_problem(res, 404, "not-found").await;

    let tree: Value = app
        .get(&format!("/v1/patients/{patient}/bookings/{booking}"), &doctor)
        .await
        .json()
        .await
        .unwrap();
    let notes = tree["tests"][0]["notes"].as_array().unwrap();
    assert_eq!(notes.len(), 2);
    assert_eq!(notes[0]["text"], "Fasting sample, please.", "oldest first");
    assert_eq!(notes[0]["visibility"], "internal", "the default");
    let res = app
        .request(Method::POST, &format!("{base}/notes"), Some(&doctor))
        .json(&json!({"text": "x", "visibility": "public"}))
        .send()
        .await
        .unwrap();
    assert_problem(res, 422, "validation").await;
}

#[tokio::test]
async fn both_queues_list_critical_results_first_then_oldest_first() {
    let app = spawn_app().await;
    let (_, _, normal_old, a) = booked_cbc(&app, "09:00").await;
    let (_, _, critical, b) = booked_cbc(&app, "09:15").await;
    let (_, _, normal_new, c) = booked_cbc(&app, "09:30").await;
    let normal = json!({"values": [{"analyte": "HGB", "value": 13, "unit": "g/dL"}], "performedAt": crate::helpers::performed_now()});
    let low = json!({"values": [{"analyte": "HGB", "value": 6.9, "unit": "g/dL"}], "performedAt": crate::helpers::performed_now()});
    put(&app, &a, &normal, None).await;
    put(&app, &b, &low, None).await;
    put(&app, &c, &normal, None).await;
    for (queue, token) in [
        ("/v1/verification-queue", app.staff(Role::Lab)),
        ("/v1/worklist", app.staff(Role::Doctor)),
    ] {
        let first: Value = app.get(&format!("{queue}?limit=2"), &token).await.json().await.unwrap();
        let order: Vec<&str> = first["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["testId"].as_str().unwrap())
            .collect();
        assert_eq!(order, [critical.as_str(), normal_old.as_str()], "{queue}");
        let next = first["nextCursor"].as_str().unwrap();
        let second = app.get(&format!("{queue}?limit=2&cursor={next}"), &token).await;
        assert_eq!(usage(&second).0, 1);
        let second: Value = second.json().await.unwrap();
        assert_eq!(second["items"][0]["testId"], normal_new, "{queue}");
        // Verified in the same order, they reach the worklist in it.
        if queue == "/v1/verification-queue" {
            for base in [&a, &b, &c] {
                assert_eq!(app.verify(base, 1).await.status(), 200);
            }
        }
    }
}

#[tokio::test]
async fn a_hundred_racing_if_match_pairs_each_have_one_winner_and_lose_nothing() {
    let app = spawn_app().await;
    let patient = app.create_patient().await;
    let (_, _, _, base) = booked_cbc(&app, "10:15").await;
    put(&app, &base, &values(13.0), None).await;
    let lab = app.staff(Role::Lab);
    let patient_url = format!("{}/v1/patients/{patient}", app.base);
    let result_url = format!("{}{base}/result", app.base);
    for round in 1..=100u64 {
        let send = |i: u64| {
            let (http, token) = (app.http.clone(), lab.clone());
            let (patient_url, result_url) = (patient_url.clone(), result_url.clone());
            tokio::spawn(async move {
                let name = http
                    .patch(patient_url)
                    .bearer_auth(&token)
                    .header("if-match", format!("\"{round}\""))
                    .json(&json!({"givenName": format!("Round {round} writer {i}")}))
                    .send();
                let mut body = values(12.0 + (round % 5) as f64);
                body["comment"] = json!(format!("round {round} writer {i}"));
                let result = http
                    .put(result_url)
                    .bearer_auth(&token)
                    .header("if-match", format!("\"{round}\""))
                    .json(&body)
                    .send();
                let (name, result) = tokio::join!(name, result);
                (name.unwrap().status().as_u16(), result.unwrap().status().as_u16())
            })
        };
        let (a, b) = (send(0), send(1));
        let ((pa, ra), (pb, rb)) = (a.await.unwrap(), b.await.unwrap());
        let mut patch = [pa, pb];
        patch.sort();
        let mut put = [ra, rb];
        put.sort();
        assert_eq!((patch, put), ([200, 412], [200, 412]), "round {round}");
    }
    let stored: Value = app
        .get(&format!("/v1/patients/{patient}"), &lab)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(stored["version"], 101, "every winner's change landed");
    let result: Value = app.get(&format!("{base}/result"), &lab).await.json().await.unwrap();
    assert_eq!(result["version"], 101);
}
