//! The DynamoDB floor of every endpoint: `Dynamodb-Usage` calls asserted against docs/data-model.md.
//!
//! `cargo test --test api usage -- --nocapture` prints the measured calls, RCU and WCU of each endpoint.

use medbook::auth::Role;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{day, slot, spawn_app, usage};

#[tokio::test]
async fn every_endpoint_makes_no_more_dynamodb_calls_than_its_floor() {
    let app = spawn_app().await;
    let (admin, lab, doctor) = (app.staff(Role::Admin), app.staff(Role::Lab), app.staff(Role::Doctor));
    let date = day(30);
    let mut rows: Vec<(String, u32, (u32, f64, f64))> = Vec::new();

    macro_rules! measure {
        ($name:expr, $floor:expr, $request:expr) => {{
            let res = $request.send().await.unwrap();
            assert!(res.status().is_success(), "{}: {}", $name, res.status());
            let measured = usage(&res);
            rows.push(($name.to_string(), $floor, measured));
            let body: Value = res.json().await.unwrap_or(Value::Null);
            body
        }};
    }

    measure!(
        "GET /v1/test-types (cached)",
        0,
        app.request(Method::GET, "/v1/test-types", None)
    );
    measure!(
        "GET /v1/test-types/{code} (cached)",
        0,
        app.request(Method::GET, "/v1/test-types/CBC", None)
    );
    measure!(
        "GET /v1/test-types/{code}/versions/{n} (cached)",
        0,
        app.request(Method::GET, "/v1/test-types/CBC/versions/2", None)
    );
    let patient = measure!(
        "POST /v1/patients",
        1,
        app.request(Method::POST, "/v1/patients", Some(&lab)).json(&json!({
        "givenName": "Ada", "familyName": "Lovelace", "birthDate": "1990-12-10", "sex": "female"}))
    );
    let p = patient["id"].as_str().unwrap().to_owned();
    measure!("GET /v1/me", 0, app.request(Method::GET, "/v1/me", Some(&lab)));
    measure!(
        "POST /v1/patients/{id}/identities",
        1,
        app.request(Method::POST, &format!("/v1/patients/{p}/identities"), Some(&lab))
            .json(&json!({"issuer": "https://id.example.org/realms/lab", "sub": "usage-1"}))
    );
    measure!(
        "GET /v1/patients/{id}/identities",
        1,
        app.request(Method::GET, &format!("/v1/patients/{p}/identities"), Some(&lab))
    );
    measure!(
        "DELETE /v1/patients/{id}/identities",
        1,
        app.request(
            Method::DELETE,
            &format!("/v1/patients/{p}/identities?issuer=https://id.example.org/realms/lab&sub=usage-1"),
            Some(&lab)
        )
    );
    measure!(
        "GET /v1/patients/{id}",
        1,
        app.request(Method::GET, &format!("/v1/patients/{p}"), Some(&lab))
    );
    measure!(
        "PATCH /v1/patients/{id}",
        2,
        app.request(Method::PATCH, &format!("/v1/patients/{p}"), Some(&lab))
            .header("if-match", "\"1\"")
            .json(&json!({"familyName": "King"}))
    );
    // A strongly consistent Query of the site's day (its rule and places), then the transaction.
    let booking = measure!(
        "POST …/bookings",
        2,
        app.request(Method::POST, &format!("/v1/patients/{p}/bookings"), Some(&lab))
            .header("idempotency-key", "k1")
            .json(&json!({"slotStart": slot(&date, "07:00"), "tests": ["CBC", "LIPID", "TSH"]}))
    );
    let b = booking["id"].as_str().unwrap().to_owned();
    let t = booking["tests"][0]["id"].as_str().unwrap().to_owned();
    app.check_in(p.parse().unwrap(), &b).await;
    let other = app.booked(p.parse().unwrap(), &slot(&date, "08:00"), &["CRP"]).await;
    let base = format!("/v1/patients/{p}/bookings/{b}/tests/{t}");
    measure!(
        "GET /v1/slots",
        1,
        app.request(Method::GET, &format!("/v1/slots?date={date}"), Some(&lab))
    );
    measure!("GET /v1/sites", 0, app.request(Method::GET, "/v1/sites", None));
    measure!(
        "GET /v1/sites/{code}",
        0,
        app.request(Method::GET, "/v1/sites/MAIN", None)
    );
    measure!(
        "GET /v1/sites/{code}/slots",
        1,
        app.request(Method::GET, &format!("/v1/sites/MAIN/slots?date={date}"), Some(&lab))
    );
    let hold = measure!(
        "POST /v1/sites/{code}/holds",
        2,
        app.request(Method::POST, "/v1/sites/MAIN/holds", Some(&lab))
            .json(&json!({"slotStart": slot(&date, "09:00"), "patientId": p}))
    );
    measure!(
        "POST …/bookings with holdId",
        2,
        app.request(Method::POST, &format!("/v1/patients/{p}/bookings"), Some(&lab))
            .header("idempotency-key", "k-hold")
            .json(&json!({"slotStart": slot(&date, "09:00"), "tests": ["CRP"], "holdId": hold["id"]}))
    );
    let released = app
        .request(Method::POST, "/v1/sites/MAIN/holds", Some(&lab))
        .json(&json!({"slotStart": slot(&date, "09:15"), "patientId": p}))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    measure!(
        "DELETE /v1/sites/{code}/holds/{id}",
        2,
        app.request(
            Method::DELETE,
            &format!("/v1/sites/MAIN/holds/{}", released["id"].as_str().unwrap()),
            Some(&lab)
        )
    );
    measure!(
        "GET …/bookings (page)",
        1,
        app.request(Method::GET, &format!("/v1/patients/{p}/bookings"), Some(&lab))
    );
    measure!(
        "GET …/bookings/{bookingId}/fhir",
        2,
        app.request(Method::GET, &format!("/v1/patients/{p}/bookings/{b}/fhir"), Some(&lab))
    );
    let values = json!({"values": [{"analyte": "HGB", "value": 13.5, "unit": "g/dL"}, {"analyte": "WBC", "value": 6.1, "unit": "10*3/uL"},
        {"analyte": "PLT", "value": 250, "unit": "10*3/uL"}, {"analyte": "HCT", "value": 41, "unit": "%"}], "performedAt": crate::helpers::performed_now()});
    // The tree; then the patient (CBC has ranges by sex and age) and the HGB and PLT delta checks, issued
    // together; then the transaction.
    measure!(
        "PUT …/result (first)",
        5,
        app.request(Method::PUT, &format!("{base}/result"), Some(&lab))
            .json(&values)
    );
    measure!(
        "PUT …/result (replace)",
        5,
        app.request(Method::PUT, &format!("{base}/result"), Some(&lab))
            .header("if-match", "\"1\"")
            .json(&values)
    );
    measure!(
        "GET …/result",
        1,
        app.request(Method::GET, &format!("{base}/result"), Some(&lab))
    );
    measure!(
        "POST …/notes",
        1,
        app.request(Method::POST, &format!("{base}/notes"), Some(&doctor))
            .json(&json!({"text": "Fasting next time."}))
    );
    measure!(
        "GET /v1/verification-queue (page)",
        1,
        app.request(Method::GET, "/v1/verification-queue", Some(&lab))
    );
    measure!(
        "POST …/result/verify",
        2,
        app.request(
            Method::POST,
            &format!("{base}/result/verify"),
            Some(&app.token(Role::Lab, "lab-2"))
        )
        .header("if-match", "\"2\"")
    );
    measure!(
        "GET /v1/worklist (page)",
        1,
        app.request(Method::GET, "/v1/worklist", Some(&doctor))
    );
    measure!(
        "POST …/release-hold",
        2,
        app.request(Method::POST, &format!("{base}/release-hold"), Some(&doctor))
            .json(&json!({"reason": "Discuss first."}))
    );
    measure!(
        "DELETE …/release-hold",
        2,
        app.request(Method::DELETE, &format!("{base}/release-hold"), Some(&doctor))
    );
    measure!(
        "POST …/review",
        2,
        app.request(Method::POST, &format!("{base}/review"), Some(&doctor))
            .header("if-match", "\"5\"")
            .json(&json!({"conclusion": "Normal."}))
    );
    measure!(
        "GET …/report.pdf",
        2,
        app.request(
            Method::GET,
            &format!("/v1/patients/{p}/bookings/{b}/report.pdf"),
            Some(&doctor)
        )
    );
    measure!(
        "GET …/observations (page)",
        1,
        app.request(
            Method::GET,
            &format!("/v1/patients/{p}/observations?loinc=718-7&from={date}&to={date}"),
            Some(&doctor)
        )
    );
    measure!(
        "GET …/result/history",
        1,
        app.request(Method::GET, &format!("{base}/result/history"), Some(&lab))
    );
    measure!(
        "GET …/bookings/{id} (tree)",
        1,
        app.request(Method::GET, &format!("/v1/patients/{p}/bookings/{b}"), Some(&lab))
    );
    measure!(
        "GET /v1/schedule",
        1,
        app.request(Method::GET, &format!("/v1/schedule?date={date}"), Some(&lab))
    );
    measure!(
        "GET /v1/test-types/{code}/tests (page)",
        1,
        app.request(
            Method::GET,
            &format!("/v1/test-types/CBC/tests?from={date}&to={date}"),
            Some(&lab)
        )
    );
    // Read the tree and the new day, then the one transaction.
    let moving = app.booked(p.parse().unwrap(), &slot(&date, "10:00"), &["CRP"]).await;
    measure!(
        "POST …/reschedule",
        3,
        app.request(
            Method::POST,
            &format!(
                "/v1/patients/{p}/bookings/{}/reschedule",
                moving["id"].as_str().unwrap()
            ),
            Some(&lab)
        )
        .header("if-match", "\"1\"")
        .json(&json!({"slotStart": slot(&date, "10:15")}))
    );
    measure!(
        "POST …/cancel",
        2,
        app.request(
            Method::POST,
            &format!("/v1/patients/{p}/bookings/{}/cancel", other["id"].as_str().unwrap()),
            Some(&lab)
        )
    );
    measure!(
        "GET …/audit (page)",
        1,
        app.request(Method::GET, &format!("/v1/patients/{p}/audit"), Some(&admin))
    );
    // Catalog writes last: they invalidate the cache the booking above relied on.
    let definition = json!({"code": "FE", "name": "Iron", "category": "chemistry", "loinc": "2498-4",
        "specimen": "serum", "durationMinutes": 5, "priceCents": 900, "currency": "EUR",
        "analytes": [{"code": "FE", "name": "Iron", "loinc": "2498-4", "unit": "ug/dL", "referenceRange": {"low": 60, "high": 170}}]});
    measure!(
        "POST /v1/test-types",
        1,
        app.request(Method::POST, "/v1/test-types", Some(&admin))
            .json(&definition)
    );
    measure!(
        "PUT /v1/test-types/{code}",
        1,
        app.request(Method::PUT, "/v1/test-types/FE", Some(&admin))
            .header("if-match", "\"1\"")
            .json(&definition)
    );
    // Site writes last too: they clear the sites cache.
    let site = json!({"code": "BER", "name": "Berlin", "timeZone": "Europe/Berlin", "slotMinutes": 15, "capacity": 2,
        "openingHours": {"mon": [{"from": "07:00", "to": "12:00"}]}});
    measure!(
        "POST /v1/sites",
        1,
        app.request(Method::POST, "/v1/sites", Some(&admin)).json(&site)
    );
    measure!(
        "PUT /v1/sites/{code}",
        2,
        app.request(Method::PUT, "/v1/sites/BER", Some(&admin))
            .header("if-match", "\"1\"")
            .json(&site)
    );
    // Write the rule, read the day for bookings it would leave outside (none here), and one more read of the
    // sites after the change above cleared the cache.
    measure!(
        "PUT /v1/sites/{code}/days/{date}",
        4,
        app.request(Method::PUT, &format!("/v1/sites/BER/days/{date}"), Some(&admin))
            .json(&json!({"capacity": 1}))
    );
    measure!(
        "GET /v1/sites/{code}/days (page)",
        1,
        app.request(Method::GET, "/v1/sites/BER/days", Some(&admin))
    );
    measure!(
        "DELETE /v1/sites/{code}/days/{date}",
        2,
        app.request(Method::DELETE, &format!("/v1/sites/BER/days/{date}"), Some(&admin))
    );
    let webhook = measure!(
        "POST /v1/webhooks",
        1,
        app.request(Method::POST, "/v1/webhooks", Some(&admin))
            .json(&json!({"url": "http://127.0.0.1:9/hook", "types": ["result.released"]}))
    );
    let w = webhook["id"].as_str().unwrap().to_owned();
    measure!(
        "GET /v1/webhooks",
        1,
        app.request(Method::GET, "/v1/webhooks", Some(&admin))
    );
    measure!(
        "GET /v1/webhooks/{id}",
        1,
        app.request(Method::GET, &format!("/v1/webhooks/{w}"), Some(&admin))
    );
    measure!(
        "PUT /v1/webhooks/{id}",
        2,
        app.request(Method::PUT, &format!("/v1/webhooks/{w}"), Some(&admin))
            .header("if-match", "\"1\"")
            .json(&json!({"url": "http://127.0.0.1:9/hook", "types": [], "enabled": true}))
    );
    measure!(
        "GET /v1/webhooks/{id}/deliveries (page)",
        2,
        app.request(Method::GET, &format!("/v1/webhooks/{w}/deliveries"), Some(&admin))
    );
    measure!(
        "DELETE /v1/webhooks/{id}",
        1,
        app.request(Method::DELETE, &format!("/v1/webhooks/{w}"), Some(&admin))
    );
    measure!(
        "GET /v1/alerts (page)",
        1,
        app.request(Method::GET, "/v1/alerts", Some(&doctor))
    );
    measure!("GET /health/live", 0, app.request(Method::GET, "/health/live", None));
    measure!("GET /health/ready", 1, app.request(Method::GET, "/health/ready", None));

    println!("| endpoint | floor | calls | RCU | WCU |\n|---|---|---|---|---|");
    for (name, floor, (calls, rcu, wcu)) in &rows {
        println!("| {name} | {floor} | {calls} | {rcu} | {wcu} |");
    }
    for (name, floor, (calls, _, _)) in &rows {
        assert_eq!(calls, floor, "{name}: calls={calls}, floor {floor}");
    }
}
