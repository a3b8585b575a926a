//! Audit events: who read or changed whose data, when, and with what outcome (HIPAA-style audit controls).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::timefmt;

/// Who acted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"sub": "lab-1", "role": "lab"}))]
pub struct Actor {
    /// Token subject.
    #[schema(example = "lab-1")]
    pub sub: String,
    /// Role.
    #[schema(example = "lab")]
    pub role: String,
}

/// One audited request on a patient's data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({
    "id": "01a2211c-0a10-7a4e-8f00-1c2d3e4f5a6b", "at": "2026-12-05T09:05:00.000Z",
    "actor": {"sub": "lab-1", "role": "lab"},
    "action": "PUT /v1/patients/{patientId}/bookings/{bookingId}/tests/{testId}/result",
    "resource": "/v1/patients/01a2211b-c410-77bd-aaa8-8ebafa84bbb9/bookings/01a2211b-c460-76bf-9070-8e02374c400f/tests/01a2211b-c460-76bf-9070-8e0014ee55c8/result",
    "outcome": 201, "requestId": "6aacc2a5-507f-478e-9f61-a22b67c906fc"
}))]
pub struct AuditEvent {
    /// Event id (UUID v7).
    pub id: Uuid,
    /// When.
    pub at: String,
    /// Whose data.
    #[serde(skip)]
    pub patient_id: Uuid,
    /// Who.
    pub actor: Actor,
    /// What: method and route template.
    pub action: String,
    /// Which: the request path.
    pub resource: String,
    /// The HTTP status answered.
    pub outcome: u16,
    /// The request id (`x-request-id`).
    pub request_id: String,
    /// The reason the actor gave, where the action takes one (a doctor's hold of a result, and its lift).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The search that found this patient (a front-desk lookup: what was searched for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
}

/// What a patient's own view of their trail shows in place of another patient's id.
pub const ANOTHER_PATIENT: &str = "(another patient)";

impl AuditEvent {
    /// The event as `patient` may see it in their own trail: another patient who tried to reach this
    /// patient's data is shown, but not who they are (staff are shown as they are).
    pub fn as_seen_by(mut self, patient: Uuid) -> Self {
        if self.actor.role == "patient" && self.actor.sub != patient.to_string() {
            ANOTHER_PATIENT.clone_into(&mut self.actor.sub);
        }
        // A doctor's reason for holding a result from the patient is not theirs to read before the doctor
        // talks to them (the result view hides the hold too).
        self.reason = None;
        self
    }
}

/// An audit event before it knows whose data it concerns (a new patient's id is made by the service).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditDraft {
    /// Who.
    pub actor: Actor,
    /// What.
    pub action: String,
    /// Which.
    pub resource: String,
    /// The status the request answers when the change succeeds.
    pub outcome: u16,
    /// The request id.
    pub request_id: String,
}

impl AuditDraft {
    /// The event for `patient_id`, stamped now.
    pub fn event(&self, patient_id: Uuid) -> AuditEvent {
        AuditEvent {
            id: Uuid::now_v7(),
            at: timefmt::now(),
            patient_id,
            actor: self.actor.clone(),
            action: self.action.clone(),
            resource: self.resource.clone(),
            outcome: self.outcome,
            request_id: self.request_id.clone(),
            reason: None,
            query: None,
        }
    }

    /// The event for `patient_id` with the `reason` the actor gave.
    pub fn event_with_reason(&self, patient_id: Uuid, reason: &str) -> AuditEvent {
        AuditEvent {
            reason: Some(reason.to_owned()),
            ..self.event(patient_id)
        }
    }
}
