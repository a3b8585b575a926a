//! Examples for the OpenAPI document, shared by the schemas that nest each other (kept outside `domain` and
//! `api` so both can point at them).

use serde_json::{Value, json};

const PATIENT: &str = "01a2211b-c410-77bd-aaa8-8ebafa84bbb9";
const BOOKING: &str = "01a2211b-c460-76bf-9070-8e02374c400f";
const TEST: &str = "01a2211b-c460-76bf-9070-8e0014ee55c8";

/// A range.
pub fn range() -> Value {
    json!({"low": 12.0, "high": 17.5})
}

/// An analyte.
pub fn analyte() -> Value {
    json!({"code": "HGB", "name": "Hemoglobin", "loinc": "718-7", "unit": "g/dL",
           "referenceRanges": [
               {"low": 12.0, "high": 17.5},
               {"sex": "female", "ageFrom": {"value": 18, "unit": "a"}, "low": 11.6, "high": 15.0},
               {"sex": "male", "ageFrom": {"value": 18, "unit": "a"}, "low": 13.2, "high": 16.6}
           ],
           "criticalRange": {"low": 7.0, "high": 20.0},
           "deltaCheck": {"percent": 20, "withinDays": 30}})
}

/// A test type definition.
pub fn test_type_definition() -> Value {
    json!({"code": "CBC", "name": "Complete blood count", "category": "hematology", "loinc": "58410-2",
           "specimen": "venous blood (EDTA)", "durationMinutes": 10, "priceCents": 1800, "currency": "EUR",
           "active": true, "analytes": [analyte()]})
}

/// A site definition.
pub fn site_definition() -> Value {
    json!({"code": "BER", "name": "Berlin Mitte", "timeZone": "Europe/Berlin", "slotMinutes": 15, "capacity": 4,
           "openingHours": {"mon": [{"from": "07:00", "to": "12:00"}, {"from": "13:00", "to": "17:00"}],
                            "tue": [{"from": "07:00", "to": "17:00"}], "sat": [{"from": "08:00", "to": "12:00"}]},
           "minimumNoticeMinutes": 60, "bookingHorizonDays": 180, "holdSeconds": 300})
}

/// A site at its current version.
pub fn site() -> Value {
    let mut v = site_definition();
    v["version"] = json!(1);
    v["createdAt"] = json!("2026-12-01T07:00:00.000Z");
    v["updatedAt"] = json!("2026-12-01T07:00:00.000Z");
    v
}

/// A test type version.
pub fn test_type() -> Value {
    let mut v = test_type_definition();
    v["version"] = json!(1);
    v["createdAt"] = json!("2026-11-28T07:00:00.000Z");
    v
}

/// The catalog.
pub fn test_type_list() -> Value {
    json!({"items": [test_type()]})
}

/// A problem's field.
pub fn problem_field() -> Value {
    json!({"field": "birthDate", "message": "must not be in the future"})
}

/// A flagged value.
pub fn result_value() -> Value {
    json!({"analyte": "HGB", "value": 11.2, "unit": "g/dL", "flag": "L",
           "referenceRange": {"sex": "female", "ageFrom": {"value": 18, "unit": "a"}, "low": 11.6, "high": 15.0},
           "delta": {"previous": 13.9, "previousAt": "2026-11-02T08:10:00Z", "change": -2.7}})
}

/// A value as sent.
pub fn value_body() -> Value {
    json!({"analyte": "HGB", "value": 11.2, "unit": "g/dL"})
}

/// A review.
pub fn review() -> Value {
    json!({"reviewerId": "dr-house", "reviewedAt": "2026-12-05T10:00:00.000Z",
           "conclusion": "Mild anaemia; iron studies advised."})
}

/// A reviewed result.
pub fn result_view() -> Value {
    json!({"status": "final", "revision": 1, "version": 3, "values": [result_value()], "critical": false,
           "deltaFlag": true, "valuesWithheld": false,
           "release": {"state": "released", "releasedAt": "2026-12-05T09:30:00.000Z"},
           "performedAt": "2026-12-05T09:00:00Z", "collectedAt": "2026-12-05T07:16:00Z",
           "recordedAt": "2026-12-05T09:05:00.000Z", "recordedBy": "lab-1",
           "verification": {"verifierId": "lab-2", "verifiedAt": "2026-12-05T09:30:00.000Z"}, "review": review()})
}

/// A result history.
pub fn result_history() -> Value {
    json!({"items": [result_view()]})
}

/// A note.
pub fn note() -> Value {
    json!({"id": "01a2211c-0a10-7a4e-8f00-1c2d3e4f5a6b", "authorId": "dr-house", "text": "Fasting sample next time.",
           "visibility": "patient", "createdAt": "2026-12-05T10:01:00.000Z"})
}

/// A booked test in a list.
pub fn test_ref() -> Value {
    json!({"id": TEST, "testTypeCode": "CBC", "testTypeVersion": 1, "name": "Complete blood count"})
}

/// A booked test with its result and notes.
pub fn test_view() -> Value {
    let mut v = test_ref();
    v["status"] = json!("reviewed");
    v["result"] = result_view();
    v["notes"] = json!([note()]);
    v
}

/// A booking tree.
pub fn booking_view() -> Value {
    json!({"id": BOOKING, "patientId": PATIENT, "site": "MAIN", "slotStart": "2026-12-05T07:15:00Z",
           "localSlotStart": "2026-12-05T07:15:00+00:00", "status": "booked",
           "tests": [test_view()], "note": "first visit", "version": 1,
           "createdAt": "2026-11-28T07:43:17.700Z", "updatedAt": "2026-11-28T07:43:17.700Z"})
}

/// A booking in a list.
pub fn booking_summary() -> Value {
    json!({"id": BOOKING, "patientId": PATIENT, "site": "MAIN", "slotStart": "2026-12-05T07:15:00Z",
           "localSlotStart": "2026-12-05T07:15:00+00:00", "status": "booked",
           "tests": [test_ref()], "note": "first visit", "version": 1,
           "createdAt": "2026-11-28T07:43:17.700Z", "updatedAt": "2026-11-28T07:43:17.700Z"})
}

/// A slot.
pub fn slot() -> Value {
    json!({"start": "2026-12-05T07:15:00Z", "localStart": "2026-12-05T08:15:00+01:00", "capacity": 4, "booked": 1,
           "held": 1, "available": 2})
}

/// A worklist entry.
pub fn worklist_item() -> Value {
    json!({"patientId": PATIENT, "bookingId": BOOKING, "testId": TEST, "testTypeCode": "CBC", "status": "final",
           "critical": true, "deltaFlag": false, "recordedAt": "2026-12-05T09:05:00.000Z",
           "verifiedAt": "2026-12-05T09:30:00.000Z"})
}

/// A booked test of one type.
pub fn typed_test() -> Value {
    json!({"patientId": PATIENT, "bookingId": BOOKING, "testId": TEST, "slotStart": "2026-12-05T07:15:00Z",
           "testTypeCode": "CBC", "testTypeVersion": 1, "status": "ordered"})
}
