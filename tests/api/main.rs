//! Black-box tests: the real application over HTTP on 127.0.0.1:0, against the real embedded engine through
//! aws-sdk-dynamodb, one fresh table per test, run in parallel.

mod alerts;
mod audit;
mod auth;
mod bookings;
mod bootstrap;
mod cli;
mod code_rules;
mod email;
mod events;
mod faults;
mod fhir;
mod hardening;
mod health;
mod helpers;
mod lab;
mod limits;
mod metrics;
mod migrations;
mod oidc;
mod openapi;
mod outcomes;
mod patients;
mod process;
mod proxy;
mod release;
mod reminders;
mod results;
mod scheduling;
mod sites;
mod test_types;
mod usage;
mod webhooks;

/// A valid definition of a test type whose code (CBC) exists already.
pub fn test_types_definition() -> serde_json::Value {
    serde_json::json!({
        "code": "CBC", "name": "Again", "category": "chemistry", "loinc": "2276-4", "specimen": "serum",
        "durationMinutes": 5, "priceCents": 1700, "currency": "EUR",
        "analytes": [{"code": "FERR", "name": "Ferritin", "loinc": "2276-4", "unit": "ng/mL",
                      "referenceRange": {"low": 24, "high": 336}}]
    })
}
