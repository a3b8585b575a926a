//! FHIR R4 export of one booking: a `collection` Bundle with the Patient, a ServiceRequest per test, an
//! Observation per analyte value and a DiagnosticReport per resulted test. docs/fhir.md has the mapping.
//!
//! Resources refer to each other by `urn:uuid:` full URLs inside the bundle. Ids are stable across exports:
//! the Patient's and each ServiceRequest's are ours, an Observation's and a DiagnosticReport's are name-based
//! (UUID v5) from the test id, so a receiver can update what it stored before instead of duplicating it.

use axum::{
    extract::State,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{AppState, error::ApiError, extract::Path};
use crate::{
    auth::{Caller, Role},
    domain::{
        booking::{BookedTest, LabResult, ResultStatus, TestStatus},
        patient::{Patient, Sex},
        release::Release,
        test_type::{Age, AgeUnit, Analyte, Flag, RangeSex, TestType},
    },
    service::bookings::BookingExport,
};

/// The media type of a FHIR JSON resource.
pub const FHIR_JSON: &str = "application/fhir+json";

const LOINC: &str = "http://loinc.org";
const UCUM: &str = "http://unitsofmeasure.org";
const INTERPRETATION: &str = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation";
const OBSERVATION_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";
const DIAGNOSTIC_SERVICE: &str = "http://terminology.hl7.org/CodeSystem/v2-0074";
/// An identifier whose value is a URI (here `urn:uuid:`), as FHIR recommends for UUIDs.
const URI_SYSTEM: &str = "urn:ietf:rfc:3986";
/// The system of our callers' subjects (`sub` of their tokens), for the reviewing doctor.
pub const SUBJECT_SYSTEM: &str = "urn:medbook:sub";

/// FHIR routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(booking_bundle))
}

/// One booking as a FHIR R4 `collection` Bundle (`application/fhir+json`), with the same access rules as the
/// booking: a patient sees a result's Observations and DiagnosticReport only once it is released. One Query for
/// the booking tree and one GetItem for the patient, issued together; test types come from the cache.
#[utoipa::path(
    get,
    path = "/v1/patients/{patientId}/bookings/{bookingId}/fhir",
    tag = "bookings",
    security(("bearer" = [])),
    params(("patientId" = Uuid, Path, description = "patient id"), ("bookingId" = Uuid, Path, description = "booking id")),
    responses(
        (status = 200, description = "a FHIR R4 Bundle of type collection (see docs/fhir.md)", body = Object, content_type = "application/fhir+json"),
        (status = 400, description = "malformed id"),
        (status = 401, description = "no valid token"),
        (status = 404, description = "no such booking (or not yours)"),
    )
)]
async fn booking_bundle(
    State(state): State<AppState>,
    caller: Caller,
    Path((patient_id, booking_id)): Path<(Uuid, Uuid)>,
) -> Result<Response, ApiError> {
    caller.require_patient_access(patient_id, &[Role::Patient, Role::Lab, Role::Doctor, Role::Admin])?;
    let export = state.bookings.export(patient_id, booking_id).await?;
    let bundle = bundle(&export, &caller, &crate::domain::timefmt::now(), |r| {
        state.results.release_of(r)
    });
    let mut response = axum::Json(bundle).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    Ok(response)
}

/// The Bundle for `export` as `caller` may see it, stamped `timestamp`; `release` tells each result's release
/// state.
pub fn bundle(
    export: &BookingExport,
    caller: &Caller,
    timestamp: &str,
    release: impl Fn(&LabResult) -> Release,
) -> Value {
    let BookingExport {
        patient,
        tree,
        test_types,
    } = export;
    let patient_url = urn(patient.id);
    let mut entries = vec![entry(patient.id, patient_resource(patient))];
    for test in &tree.booking.tests {
        let Some(test_type) = test_types.get(&(test.test_type_code.clone(), test.test_type_version)) else {
            continue;
        };
        let request_url = urn(test.id);
        entries.push(entry(
            test.id,
            service_request(
                test,
                test_type,
                tree.booking.id,
                &tree.booking.slot_start.to_string(),
                &tree.booking.created_at,
                &patient_url,
            ),
        ));
        let Some(result) = tree.results.get(&test.id) else {
            continue;
        };
        if caller.role == Role::Patient && !release(result).is_released() {
            continue;
        }
        let mut observation_urls = Vec::new();
        for (index, value) in result.values.iter().enumerate() {
            let analyte = test_type.definition.analytes.iter().find(|a| a.code == value.analyte);
            let id = Uuid::new_v5(&test.id, format!("observation/{}", value.analyte).as_bytes());
            observation_urls.push(urn(id));
            entries.push(entry(
                id,
                observation(id, result, index, analyte, &patient_url, &request_url),
            ));
        }
        let id = Uuid::new_v5(&test.id, b"diagnostic-report");
        let status = match (&result.verification, result.status) {
            (None, _) => "partial",
            (Some(_), ResultStatus::Preliminary | ResultStatus::Final) => "final",
            (Some(_), ResultStatus::Corrected) => "corrected",
            (Some(_), ResultStatus::Amended) => "amended",
        };
        let issued = result
            .verification
            .as_ref()
            .map_or(&result.recorded_at, |v| &v.verified_at);
        let mut report = json!({
            "resourceType": "DiagnosticReport",
            "id": id,
            "status": status,
            "category": [{"coding": [{"system": DIAGNOSTIC_SERVICE, "code": "LAB", "display": "Laboratory"}]}],
            "code": loinc(&test_type.definition.loinc, &test_type.definition.name),
            "subject": {"reference": patient_url},
            "basedOn": [{"reference": request_url}],
            "effectiveDateTime": result.performed_at,
            "issued": issued,
            "result": observation_urls.iter().map(|u| json!({"reference": u})).collect::<Vec<_>>(),
        });
        if let Some(v) = &result.verification {
            report["performer"] = json!([{
                "identifier": {"system": SUBJECT_SYSTEM, "value": v.verifier_id},
                "display": v.verifier_id,
            }]);
        }
        if let Some(review) = &result.review {
            report["resultsInterpreter"] = json!([{
                "identifier": {"system": SUBJECT_SYSTEM, "value": review.reviewer_id},
                "display": review.reviewer_id,
            }]);
            report["conclusion"] = json!(review.conclusion);
        }
        entries.push(entry(id, report));
    }
    json!({
        "resourceType": "Bundle",
        "id": tree.booking.id,
        "meta": {"lastUpdated": tree.booking.updated_at},
        "identifier": {"system": URI_SYSTEM, "value": urn(tree.booking.id)},
        "type": "collection",
        "timestamp": timestamp,
        "entry": entries,
    })
}

fn urn(id: Uuid) -> String {
    format!("urn:uuid:{id}")
}

fn entry(id: Uuid, resource: Value) -> Value {
    json!({"fullUrl": urn(id), "resource": resource})
}

fn loinc(code: &str, display: &str) -> Value {
    json!({"coding": [{"system": LOINC, "code": code, "display": display}], "text": display})
}

fn patient_resource(patient: &Patient) -> Value {
    let gender = match patient.sex {
        Sex::Female => "female",
        Sex::Male => "male",
        Sex::Other => "other",
        Sex::Unknown => "unknown",
    };
    let mut telecom = Vec::new();
    if let Some(email) = &patient.email {
        telecom.push(json!({"system": "email", "value": email}));
    }
    if let Some(phone) = &patient.phone {
        telecom.push(json!({"system": "phone", "value": phone}));
    }
    let mut resource = json!({
        "resourceType": "Patient",
        "id": patient.id,
        "meta": {"versionId": patient.version.to_string(), "lastUpdated": patient.updated_at},
        "identifier": std::iter::once(json!({"system": URI_SYSTEM, "value": urn(patient.id)}))
            .chain(patient.identifiers.iter().map(|i| json!({"system": i.system, "value": i.value})))
            .collect::<Vec<_>>(),
        "name": [{"family": patient.family_name, "given": [patient.given_name]}],
        "gender": gender,
        "birthDate": crate::domain::timefmt::date(patient.birth_date),
    });
    if !telecom.is_empty() {
        resource["telecom"] = Value::Array(telecom);
    }
    resource
}

fn service_request(
    test: &BookedTest,
    test_type: &TestType,
    booking_id: Uuid,
    slot_start: &str,
    authored_on: &str,
    patient_url: &str,
) -> Value {
    let status = match test.status {
        TestStatus::Ordered | TestStatus::Resulted => "active",
        TestStatus::Verified | TestStatus::Reviewed => "completed",
        TestStatus::Cancelled => "revoked",
    };
    json!({
        "resourceType": "ServiceRequest",
        "id": test.id,
        "identifier": [{"system": URI_SYSTEM, "value": urn(test.id)}],
        "requisition": {"system": URI_SYSTEM, "value": urn(booking_id)},
        "status": status,
        "intent": "order",
        "category": [{"coding": [{"system": "http://snomed.info/sct", "code": "108252007", "display": "Laboratory procedure"}]}],
        "code": loinc(&test_type.definition.loinc, &test_type.definition.name),
        "subject": {"reference": patient_url},
        "occurrenceDateTime": slot_start,
        "authoredOn": authored_on,
    })
}

fn observation(
    id: Uuid,
    result: &LabResult,
    index: usize,
    analyte: Option<&Analyte>,
    patient_url: &str,
    request_url: &str,
) -> Value {
    let value = &result.values[index];
    // Values no second lab user has verified are preliminary, whatever revision they are.
    let status = match (&result.verification, result.status) {
        (None, _) | (Some(_), ResultStatus::Preliminary) => "preliminary",
        (Some(_), ResultStatus::Final) => "final",
        (Some(_), ResultStatus::Corrected) => "corrected",
        (Some(_), ResultStatus::Amended) => "amended",
    };
    let (code, display) = match value.flag {
        Flag::N => ("N", "Normal"),
        Flag::L => ("L", "Low"),
        Flag::H => ("H", "High"),
        Flag::LL => ("LL", "Critical low"),
        Flag::HH => ("HH", "Critical high"),
    };
    let quantity = |v: f64| json!({"value": v, "unit": value.unit, "system": UCUM, "code": value.unit});
    let mut interpretation = vec![json!({"coding": [{"system": INTERPRETATION, "code": code, "display": display}]})];
    if let Some(delta) = &value.delta {
        let (code, display) = if delta.change >= 0.0 {
            ("U", "Significant change up")
        } else {
            ("D", "Significant change down")
        };
        interpretation.push(json!({
            "coding": [{"system": INTERPRETATION, "code": code, "display": display}],
            "text": format!("delta check: {:+} {} since {} ({})", delta.change, value.unit, delta.previous_at, delta.previous),
        }));
    }
    let mut resource = json!({
        "resourceType": "Observation",
        "id": id,
        "status": status,
        "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": "laboratory", "display": "Laboratory"}]}],
        "code": analyte.map_or_else(|| json!({"text": value.analyte}), |a| loinc(&a.loinc, &a.name)),
        "subject": {"reference": patient_url},
        "basedOn": [{"reference": request_url}],
        "effectiveDateTime": result.performed_at,
        "issued": result.recorded_at,
        "valueQuantity": quantity(value.value),
        "interpretation": interpretation,
    });
    // The range the value was judged against; a result from before ranges were recorded with it falls back
    // to the analyte's catch-all.
    let applied = value
        .reference_range
        .or_else(|| analyte.and_then(|a| a.reference_for(None)));
    if let Some(r) = applied {
        let mut range = serde_json::Map::new();
        if let Some(low) = r.low {
            range.insert("low".into(), quantity(low));
        }
        if let Some(high) = r.high {
            range.insert("high".into(), quantity(high));
        }
        if let Some(sex) = r.sex {
            let (code, display) = match sex {
                RangeSex::Female => ("female", "Female"),
                RangeSex::Male => ("male", "Male"),
            };
            range.insert(
                "appliesTo".into(),
                json!([{"coding": [{"system": "http://hl7.org/fhir/administrative-gender", "code": code, "display": display}]}]),
            );
        }
        if r.age_from.is_some() || r.age_to.is_some() {
            let age = |a: Age| {
                let unit = match a.unit {
                    AgeUnit::Days => "d",
                    AgeUnit::Months => "mo",
                    AgeUnit::Years => "a",
                };
                json!({"value": a.value, "unit": unit, "system": UCUM, "code": unit})
            };
            let mut ages = serde_json::Map::new();
            if let Some(from) = r.age_from {
                ages.insert("low".into(), age(from));
            }
            // medbook's `ageTo` is exclusive, a FHIR Range inclusive: in whole units, "below 18 a" is "17 a".
            if let Some(to) = r.age_to {
                ages.insert(
                    "high".into(),
                    age(Age {
                        value: to.value.saturating_sub(1),
                        ..to
                    }),
                );
            }
            range.insert("age".into(), Value::Object(ages));
        }
        if !range.is_empty() {
            resource["referenceRange"] = json!([range]);
        }
    }
    if let Some(comment) = &result.comment {
        resource["note"] = json!([{"text": comment}]);
    }
    resource
}
