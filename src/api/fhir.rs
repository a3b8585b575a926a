//! FHIR R4 export of one booking: a `collection` Bundle with the Patient, a ServiceRequest per test, an
//! Observation per analyte value and a DiagnosticReport per reviewed test. docs/fhir.md has the mapping.
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
        test_type::{Analyte, Flag, Range, TestType},
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
/// booking: a patient sees result values (Observations) only once a doctor has reviewed them. One Query for
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
    let bundle = bundle(&export, &caller, &crate::domain::timefmt::now());
    let mut response = axum::Json(bundle).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    Ok(response)
}

/// The Bundle for `export` as `caller` may see it, stamped `timestamp`.
pub fn bundle(export: &BookingExport, caller: &Caller, timestamp: &str) -> Value {
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
        if caller.role == Role::Patient && result.review.is_none() {
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
        if let Some(review) = &result.review {
            let id = Uuid::new_v5(&test.id, b"diagnostic-report");
            let status = match result.status {
                ResultStatus::Amended => "amended",
                ResultStatus::Preliminary | ResultStatus::Final => "final",
            };
            entries.push(entry(
                id,
                json!({
                    "resourceType": "DiagnosticReport",
                    "id": id,
                    "status": status,
                    "category": [{"coding": [{"system": DIAGNOSTIC_SERVICE, "code": "LAB", "display": "Laboratory"}]}],
                    "code": loinc(&test_type.definition.loinc, &test_type.definition.name),
                    "subject": {"reference": patient_url},
                    "basedOn": [{"reference": request_url}],
                    "effectiveDateTime": result.performed_at,
                    "issued": review.reviewed_at,
                    "resultsInterpreter": [{
                        "identifier": {"system": SUBJECT_SYSTEM, "value": review.reviewer_id},
                        "display": review.reviewer_id,
                    }],
                    "result": observation_urls.iter().map(|u| json!({"reference": u})).collect::<Vec<_>>(),
                    "conclusion": review.conclusion,
                }),
            ));
        }
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
        "identifier": [{"system": URI_SYSTEM, "value": urn(patient.id)}],
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
        TestStatus::Reviewed => "completed",
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
    let status = match result.status {
        ResultStatus::Preliminary => "preliminary",
        ResultStatus::Final => "final",
        ResultStatus::Amended => "amended",
    };
    let (code, display) = match value.flag {
        Flag::N => ("N", "Normal"),
        Flag::L => ("L", "Low"),
        Flag::H => ("H", "High"),
        Flag::LL => ("LL", "Critical low"),
        Flag::HH => ("HH", "Critical high"),
    };
    let quantity = |v: f64| json!({"value": v, "unit": value.unit, "system": UCUM, "code": value.unit});
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
        "interpretation": [{"coding": [{"system": INTERPRETATION, "code": code, "display": display}]}],
    });
    if let Some(Range { low, high }) = analyte.map(|a| &a.reference_range) {
        let mut range = serde_json::Map::new();
        if let Some(low) = low {
            range.insert("low".into(), quantity(*low));
        }
        if let Some(high) = high {
            range.insert("high".into(), quantity(*high));
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
