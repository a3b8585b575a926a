//! FHIR R4 export, validated against HL7's FHIR R4 JSON schema (tests/fixtures/fhir).

use std::sync::OnceLock;

use medbook::auth::Role;
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, day, slot, spawn_app, usage_of};

/// The official schema, compiled once per test binary (it has ~750 definitions).
fn fhir_schema() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/fhir/fhir.schema.json");
        let schema: Value = serde_json::from_slice(&std::fs::read(path).expect("schema file")).expect("schema json");
        jsonschema::draft6::new(&schema).expect("the FHIR schema compiles")
    })
}

/// Every schema error of `bundle`, one per line (empty when valid).
pub(crate) fn schema_errors(bundle: &Value) -> String {
    fhir_schema()
        .iter_errors(bundle)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect::<Vec<_>>()
        .join("\n")
}

fn resources<'a>(bundle: &'a Value, kind: &str) -> Vec<&'a Value> {
    bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .filter(|r| r["resourceType"] == kind)
        .collect()
}

/// Status, headers and JSON body of an export.
struct Exported {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

async fn export(app: &TestApp, patient: Uuid, booking: &str, token: &str) -> Exported {
    let res = app
        .request(
            Method::GET,
            &format!("/v1/patients/{patient}/bookings/{booking}/fhir"),
            Some(token),
        )
        .send()
        .await
        .unwrap();
    Exported {
        status: res.status().as_u16(),
        headers: res.headers().clone(),
        body: res.json().await.unwrap_or(Value::Null),
    }
}

async fn put_result(app: &TestApp, patient: Uuid, booking: &str, test: &str, values: Value) {
    let res = app
        .request(
            Method::PUT,
            &format!("/v1/patients/{patient}/bookings/{booking}/tests/{test}/result"),
            Some(&app.staff(Role::Lab)),
        )
        .json(&json!({"values": values, "performedAt": crate::helpers::performed_now(), "comment": "haemolysed? no"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
}

/// A patient with CBC (resulted and reviewed), LIPID (resulted, not reviewed) and TSH (no result).
async fn scenario(app: &TestApp) -> (Uuid, String, Value) {
    let patient = app.create_patient().await;
    let booking = app
        .booked(patient, &slot(&day(30), "08:15"), &["CBC", "LIPID", "TSH"])
        .await;
    app.check_in(patient, booking["id"].as_str().unwrap()).await;
    let id = booking["id"].as_str().unwrap().to_owned();
    let test = |code: &str| {
        booking["tests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["testTypeCode"] == code)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let cbc = test("CBC");
    put_result(
        app,
        patient,
        &id,
        &cbc,
        json!([
            {"analyte": "HGB", "value": 6.5, "unit": "g/dL"},
            {"analyte": "WBC", "value": 12.0, "unit": "10*3/uL"},
            {"analyte": "PLT", "value": 140, "unit": "10*3/uL"},
            {"analyte": "HCT", "value": 40, "unit": "%"}
        ]),
    )
    .await;
    let verified = app
        .verify(&format!("/v1/patients/{patient}/bookings/{id}/tests/{cbc}"), 1)
        .await;
    assert_eq!(verified.status(), 200);
    let res = app
        .request(
            Method::POST,
            &format!("/v1/patients/{patient}/bookings/{id}/tests/{cbc}/review"),
            Some(&app.token(Role::Doctor, "dr-house")),
        )
        .header("if-match", "\"2\"")
        .json(&json!({"conclusion": "Severe anaemia: repeat and refer."}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    put_result(
        app,
        patient,
        &id,
        &test("LIPID"),
        json!([
            {"analyte": "CHOL", "value": 180, "unit": "mg/dL"},
            {"analyte": "HDL", "value": 55, "unit": "mg/dL"},
            {"analyte": "LDL", "value": 130, "unit": "mg/dL"},
            {"analyte": "TRIG", "value": 90, "unit": "mg/dL"}
        ]),
    )
    .await;
    (patient, id, booking)
}

#[tokio::test]
async fn a_booking_exports_as_a_valid_fhir_r4_bundle() {
    let app = spawn_app().await;
    let (patient, booking, booked) = scenario(&app).await;
    let Exported {
        status,
        headers,
        body: bundle,
    } = export(&app, patient, &booking, &app.staff(Role::Doctor)).await;
    assert_eq!(status, 200, "{bundle}");
    assert_eq!(headers["content-type"], "application/fhir+json");
    assert_eq!(
        usage_of(&headers).0,
        2,
        "one Query (booking tree) and one GetItem (patient)"
    );
    assert_eq!(schema_errors(&bundle), "", "{bundle:#}");
    assert_eq!(bundle["resourceType"], "Bundle");
    assert_eq!(bundle["type"], "collection");

    // Every reference resolves to an entry of the bundle.
    let urls: Vec<&str> = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["fullUrl"].as_str().unwrap())
        .collect();
    let text = bundle.to_string();
    for reference in text.split("\"reference\":\"").skip(1) {
        let target = &reference[..reference.find('"').unwrap()];
        assert!(urls.contains(&target), "dangling reference {target}");
    }

    let patients = resources(&bundle, "Patient");
    assert_eq!(patients.len(), 1);
    assert_eq!(patients[0]["id"], patient.to_string());
    assert_eq!(patients[0]["gender"], "female");
    assert_eq!(patients[0]["birthDate"], "1990-12-10");
    assert_eq!(patients[0]["name"][0]["family"], "Lovelace");

    let requests = resources(&bundle, "ServiceRequest");
    assert_eq!(requests.len(), 3);
    let request = |loinc: &str| {
        *requests
            .iter()
            .find(|r| r["code"]["coding"][0]["code"] == loinc)
            .unwrap()
    };
    let cbc = request("58410-2");
    assert_eq!(cbc["status"], "completed", "reviewed");
    assert_eq!(request("24331-1")["status"], "active", "resulted, awaiting review");
    assert_eq!(request("3016-3")["status"], "active", "ordered");
    assert_eq!(cbc["code"]["coding"][0]["system"], "http://loinc.org");
    assert_eq!(cbc["intent"], "order");
    assert_eq!(cbc["occurrenceDateTime"], booked["slotStart"]);
    assert_eq!(cbc["requisition"]["value"], format!("urn:uuid:{booking}"));
    assert_eq!(cbc["subject"]["reference"], format!("urn:uuid:{patient}"));

    let observations = resources(&bundle, "Observation");
    assert_eq!(observations.len(), 8, "4 CBC + 4 LIPID values");
    let observation = |loinc: &str| {
        *observations
            .iter()
            .find(|o| o["code"]["coding"][0]["code"] == loinc)
            .unwrap_or_else(|| panic!("no observation {loinc}"))
    };
    let hgb = observation("718-7");
    assert_eq!(hgb["status"], "final");
    assert_eq!(hgb["interpretation"][0]["coding"][0]["code"], "LL");
    assert_eq!(
        hgb["interpretation"][0]["coding"][0]["system"],
        "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
    );
    assert_eq!(
        hgb["valueQuantity"],
        json!({"value": 6.5, "unit": "g/dL", "system": "http://unitsofmeasure.org", "code": "g/dL"})
    );
    // The range applied: Ada is a woman of 35.
    assert_eq!(hgb["referenceRange"][0]["low"]["value"], 11.6);
    assert_eq!(hgb["referenceRange"][0]["high"]["value"], 15.0);
    assert_eq!(hgb["referenceRange"][0]["appliesTo"][0]["coding"][0]["code"], "female");
    assert_eq!(
        hgb["referenceRange"][0]["age"],
        json!({"low": {"value": 18, "unit": "a", "system": "http://unitsofmeasure.org", "code": "a"}})
    );
    assert_eq!(
        hgb["basedOn"][0]["reference"],
        format!("urn:uuid:{}", cbc["id"].as_str().unwrap())
    );
    assert_eq!(
        observation("6690-2")["interpretation"][0]["coding"][0]["code"],
        "H",
        "WBC 12.0"
    );
    assert_eq!(
        observation("777-3")["interpretation"][0]["coding"][0]["code"],
        "L",
        "PLT 140"
    );
    assert_eq!(
        observation("4544-3")["interpretation"][0]["coding"][0]["code"],
        "N",
        "HCT 40"
    );
    let ldl = observation("13457-7");
    assert_eq!(ldl["status"], "preliminary");
    assert_eq!(ldl["interpretation"][0]["coding"][0]["code"], "H");
    assert_eq!(
        ldl["referenceRange"][0],
        json!({"high": {"value": 100.0, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"}})
    );

    let reports = resources(&bundle, "DiagnosticReport");
    assert_eq!(reports.len(), 2, "one per resulted test");
    let report = |loinc: &str| {
        *reports
            .iter()
            .find(|r| r["code"]["coding"][0]["code"] == loinc)
            .unwrap()
    };
    let cbc_report = report("58410-2");
    assert_eq!(cbc_report["status"], "final", "verified");
    assert_eq!(
        cbc_report["performer"][0]["identifier"]["value"], "lab-2",
        "the verifier"
    );
    assert_eq!(cbc_report["conclusion"], "Severe anaemia: repeat and refer.");
    assert_eq!(cbc_report["resultsInterpreter"][0]["identifier"]["value"], "dr-house");
    assert_eq!(cbc_report["result"].as_array().unwrap().len(), 4);
    let lipid_report = report("24331-1");
    assert_eq!(lipid_report["status"], "partial", "recorded, not verified");
    assert!(lipid_report.get("conclusion").is_none());

    // A second export names every resource the same: receivers can update instead of duplicating.
    let again = export(&app, patient, &booking, &app.staff(Role::Admin)).await.body;
    assert_eq!(again["entry"], bundle["entry"]);
}

#[tokio::test]
async fn the_patient_sees_only_released_values_and_others_see_nothing() {
    let app = spawn_app().await;
    let (patient, booking, _) = scenario(&app).await;
    let mine = export(&app, patient, &booking, &app.token(Role::Patient, &patient.to_string())).await;
    assert_eq!(mine.status, 200);
    let bundle = mine.body;
    assert_eq!(schema_errors(&bundle), "", "{bundle:#}");
    assert_eq!(resources(&bundle, "ServiceRequest").len(), 3);
    assert_eq!(
        resources(&bundle, "Observation").len(),
        4,
        "CBC only: LIPID awaits verification"
    );
    assert_eq!(resources(&bundle, "DiagnosticReport").len(), 1);

    let stranger = app.create_patient().await;
    let theirs = export(
        &app,
        patient,
        &booking,
        &app.token(Role::Patient, &stranger.to_string()),
    )
    .await;
    assert!(matches!(theirs.status, 403 | 404), "{}", theirs.body);
    assert_eq!(
        export(&app, patient, &Uuid::now_v7().to_string(), &app.staff(Role::Doctor))
            .await
            .status,
        404
    );
    assert_eq!(export(&app, patient, &booking, "not-a-token").await.status, 401);
}

#[tokio::test]
async fn a_cancelled_booking_exports_revoked_requests() {
    let app = spawn_app().await;
    let patient = app.create_patient().await;
    let booking = app.booked(patient, &slot(&day(31), "09:00"), &["TSH", "CRP"]).await;
    let id = booking["id"].as_str().unwrap();
    let res = app
        .request(
            Method::POST,
            &format!("/v1/patients/{patient}/bookings/{id}/cancel"),
            Some(&app.staff(Role::Admin)),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let bundle = export(&app, patient, id, &app.staff(Role::Lab)).await.body;
    assert_eq!(schema_errors(&bundle), "");
    let requests = resources(&bundle, "ServiceRequest");
    assert_eq!(requests.len(), 2);
    assert!(requests.iter().all(|r| r["status"] == "revoked"), "{bundle:#}");
    assert!(resources(&bundle, "Observation").is_empty());
}

/// Changes a valid bundle into an invalid one.
type Breaker = fn(&mut Value);

/// The validator is a real check: bundles that break FHIR R4 in small ways are refused.
#[tokio::test]
async fn the_schema_check_refuses_bundles_that_are_not_fhir() {
    let app = spawn_app().await;
    let (patient, booking, _) = scenario(&app).await;
    let bundle = export(&app, patient, &booking, &app.staff(Role::Doctor)).await.body;
    assert_eq!(schema_errors(&bundle), "");
    let broken: [(&str, Breaker); 5] = [
        ("unknown Bundle.type", |b| b["type"] = json!("bag")),
        ("unknown Observation.status", |b| {
            observation_mut(b)["status"] = json!("done");
        }),
        ("misspelt field", |b| {
            let o = observation_mut(b);
            let q = o["valueQuantity"].take();
            o.as_object_mut().unwrap().remove("valueQuantity");
            o["valueQuanity"] = q;
        }),
        ("birthDate not a date", |b| {
            b["entry"][0]["resource"]["birthDate"] = json!("10/12/1990")
        }),
        ("quantity value as a string", |b| {
            observation_mut(b)["valueQuantity"]["value"] = json!("6.5");
        }),
    ];
    for (what, breaks) in broken {
        let mut copy = bundle.clone();
        breaks(&mut copy);
        assert_ne!(schema_errors(&copy), "", "{what} passed the schema");
    }
}

fn observation_mut(bundle: &mut Value) -> &mut Value {
    bundle["entry"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .map(|e| &mut e["resource"])
        .find(|r| r["resourceType"] == "Observation")
        .unwrap()
}
