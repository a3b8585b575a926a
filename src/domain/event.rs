//! Domain events: what changed, written in the change's own transaction, for other systems to follow.
//!
//! An event carries ids and statuses, never clinical values (no result values, no names, no notes): what a
//! receiver may need to decide whether to fetch more, through the API and its rules.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    booking::{LabResult, ResultStatus, TestAddress},
    release::{ReleasePolicy, release},
};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum EventType {
    /// A patient record was created (by staff, or by the patient's self-registration).
    #[serde(rename = "patient.created")]
    PatientCreated,
    /// Tests were booked into a slot.
    #[serde(rename = "booking.created")]
    BookingCreated,
    /// A booking was cancelled.
    #[serde(rename = "booking.cancelled")]
    BookingCancelled,
    /// A booking moved to another slot.
    #[serde(rename = "booking.rescheduled")]
    BookingRescheduled,
    /// A booked slot is `MEDBOOK_REMINDER_HOURS` (24) away: time to remind the patient. Fired once per
    /// booking and slot; a cancellation takes it back, a reschedule moves it.
    #[serde(rename = "booking.reminder")]
    BookingReminder,
    /// The lab checked the patient in.
    #[serde(rename = "booking.checked-in")]
    BookingCheckedIn,
    /// The patient did not come.
    #[serde(rename = "booking.no-show")]
    BookingNoShow,
    /// A result (or a new revision of it) was recorded.
    #[serde(rename = "result.recorded")]
    ResultRecorded,
    /// A second lab user verified a result.
    #[serde(rename = "result.verified")]
    ResultVerified,
    /// A verified result was corrected or amended, and the new revision verified.
    #[serde(rename = "result.corrected")]
    ResultCorrected,
    /// A verified result has a critical value: a clinician must hear of it now.
    #[serde(rename = "result.critical")]
    ResultCritical,
    /// A doctor reviewed a result.
    #[serde(rename = "result.reviewed")]
    ResultReviewed,
    /// A write made a result visible to its patient: a verification (on-final), a review (on-review), a
    /// lifted hold. A release that comes with time alone (`on-final-after:<h>`, nobody writing) has none yet.
    #[serde(rename = "result.released")]
    ResultReleased,
    /// A webhook endpoint was disabled by medbook: it answered 410 Gone, or failed for longer than
    /// `MEDBOOK_WEBHOOK_DISABLE_AFTER_HOURS`. The event has no patient; its data names the webhook.
    #[serde(rename = "webhook.disabled")]
    WebhookDisabled,
    /// A clinician acknowledged a critical-value alert (`result.critical`): the value reached them.
    #[serde(rename = "alert.acknowledged")]
    AlertAcknowledged,
}

impl EventType {
    /// Every type, in the order of the list above.
    pub const ALL: [Self; 15] = [
        Self::PatientCreated,
        Self::BookingCreated,
        Self::BookingCancelled,
        Self::BookingRescheduled,
        Self::BookingReminder,
        Self::BookingCheckedIn,
        Self::BookingNoShow,
        Self::ResultRecorded,
        Self::ResultVerified,
        Self::ResultCorrected,
        Self::ResultCritical,
        Self::ResultReviewed,
        Self::ResultReleased,
        Self::WebhookDisabled,
        Self::AlertAcknowledged,
    ];

    /// The type's name, as events and filters spell it (`booking.created`).
    pub fn name(self) -> &'static str {
        match self {
            Self::PatientCreated => "patient.created",
            Self::BookingCreated => "booking.created",
            Self::BookingCancelled => "booking.cancelled",
            Self::BookingRescheduled => "booking.rescheduled",
            Self::BookingReminder => "booking.reminder",
            Self::BookingCheckedIn => "booking.checked-in",
            Self::BookingNoShow => "booking.no-show",
            Self::ResultRecorded => "result.recorded",
            Self::ResultVerified => "result.verified",
            Self::ResultCorrected => "result.corrected",
            Self::ResultCritical => "result.critical",
            Self::ResultReviewed => "result.reviewed",
            Self::ResultReleased => "result.released",
            Self::WebhookDisabled => "webhook.disabled",
            Self::AlertAcknowledged => "alert.acknowledged",
        }
    }

    /// The type named `name`, if there is one.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }
}

/// One domain event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainEvent {
    /// Event id (UUID v7, so ids sort by time).
    pub id: Uuid,
    /// What happened.
    pub kind: EventType,
    /// When, as the writer's clock read it just before its transaction.
    pub occurred_at: String,
    /// Whose (none for an event about medbook itself, `webhook.disabled`).
    pub patient_id: Option<Uuid>,
    /// The booking, for booking and result events.
    pub booking_id: Option<Uuid>,
    /// The booked test, for result events.
    pub test_id: Option<Uuid>,
    /// Ids and statuses that say more (`status`, `site`, `slotStart`, …); never clinical values.
    pub data: BTreeMap<String, String>,
}

impl DomainEvent {
    /// An event of `kind` about `patient_id`, at `now`, with no booking, test or data.
    pub fn new(kind: EventType, patient_id: Uuid, now: &str) -> Self {
        Self {
            id: Uuid::now_v7(),
            kind,
            occurred_at: now.to_owned(),
            patient_id: Some(patient_id),
            booking_id: None,
            test_id: None,
            data: BTreeMap::new(),
        }
    }

    /// An event about medbook itself (no patient).
    pub fn system(kind: EventType, now: &str) -> Self {
        Self {
            patient_id: None,
            ..Self::new(kind, Uuid::nil(), now)
        }
    }

    /// An event of `kind` about booking `booking_id`.
    pub fn booking(kind: EventType, patient_id: Uuid, booking_id: Uuid, now: &str) -> Self {
        Self {
            booking_id: Some(booking_id),
            ..Self::new(kind, patient_id, now)
        }
    }

    /// An event of `kind` about the test at `at`.
    pub fn test(kind: EventType, at: TestAddress, now: &str) -> Self {
        Self {
            booking_id: Some(at.booking_id),
            test_id: Some(at.test_id),
            ..Self::new(kind, at.patient_id, now)
        }
    }

    /// This event with `key` = `value` in its data.
    #[must_use]
    pub fn with(mut self, key: &str, value: impl ToString) -> Self {
        self.data.insert(key.to_owned(), value.to_string());
        self
    }
}

/// A critical-value alert: raised with `result.critical`, listed for doctors until one acknowledges it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// Id (the `result.critical` event's).
    pub id: Uuid,
    /// Whose result.
    pub patient_id: Uuid,
    /// The booking.
    pub booking_id: Uuid,
    /// The test.
    pub test_id: Uuid,
    /// When the critical value was verified.
    pub raised_at: String,
    /// Who acknowledged it, once someone did.
    pub acknowledged_by: Option<String>,
    /// When.
    pub acknowledged_at: Option<String>,
}

/// The name of a result status in event data.
fn status_name(status: ResultStatus) -> &'static str {
    match status {
        ResultStatus::Preliminary => "preliminary",
        ResultStatus::Final => "final",
        ResultStatus::Corrected => "corrected",
        ResultStatus::Amended => "amended",
    }
}

/// The events of a result's change from `previous` (none for a first recording) to `changed` at `now`, under
/// the release policy `policy`: recorded (a new revision), verified (and corrected, and critical), reviewed,
/// and released when the patient may see it now and could not before.
pub fn result_events(
    at: TestAddress,
    previous: Option<&LabResult>,
    changed: &LabResult,
    policy: ReleasePolicy,
    now: OffsetDateTime,
    now_text: &str,
) -> Vec<DomainEvent> {
    let event = |kind| DomainEvent::test(kind, at, now_text).with("status", status_name(changed.status));
    let mut events = Vec::new();
    let revision = |r: &LabResult| r.revision;
    if previous.is_none_or(|p| revision(p) != revision(changed)) {
        events.push(event(EventType::ResultRecorded).with("revision", changed.revision));
    }
    let verified = |r: &LabResult| r.verification.is_some();
    if verified(changed) && !previous.is_some_and(verified) {
        events.push(event(EventType::ResultVerified));
        if matches!(changed.status, ResultStatus::Corrected | ResultStatus::Amended) {
            events.push(event(EventType::ResultCorrected));
        }
        // An amendment has the verified values again (only the comment changed): their criticality was
        // announced with them.
        if changed.critical && changed.status != ResultStatus::Amended {
            events.push(event(EventType::ResultCritical));
        }
    }
    let reviewed = |r: &LabResult| r.review.is_some();
    if reviewed(changed) && !previous.is_some_and(reviewed) {
        events.push(event(EventType::ResultReviewed));
    }
    let released = |r: &LabResult| release(&r.release_facts(), policy, now).is_released();
    if released(changed) && !previous.is_some_and(released) {
        events.push(event(EventType::ResultReleased));
    }
    events
}
