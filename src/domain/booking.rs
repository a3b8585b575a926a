//! Slots, bookings, booked tests, results and notes: the types and the rules that need no I/O.

use std::{collections::HashMap, fmt};

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime, Time, UtcOffset};
use uuid::Uuid;

use super::{
    release::{ReleaseFacts, ReleasePolicy},
    test_type::{Analyte, Flag, ReferenceRange, Subject, TestType},
    timefmt,
};

/// The start of a booking slot: a UTC instant to the second, stored and shown as `2026-12-01T07:15:00Z`
/// (fixed width, so keys that begin with it sort by time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SlotStart(OffsetDateTime);

impl SlotStart {
    /// The slot starting at `at` (any offset; kept in UTC, to the second).
    pub fn new(at: OffsetDateTime) -> Self {
        let at = at.to_offset(UtcOffset::UTC);
        Self(at.replace_nanosecond(0).unwrap_or(at))
    }

    /// The instant.
    pub fn at(self) -> OffsetDateTime {
        self.0
    }

    /// The (UTC) day the slot is on.
    pub fn date(self) -> Date {
        self.0.date()
    }
}

impl fmt::Display for SlotStart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&timefmt::second(self.0))
    }
}

impl Serialize for SlotStart {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SlotStart {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        timefmt::parse_instant(&text)
            .map(Self::new)
            .ok_or_else(|| serde::de::Error::custom(format!("`{text}` is not a slot start")))
    }
}

/// Days from `from` to `to`, both inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateRange {
    from: Date,
    to: Date,
}

/// `to` lies before `from`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must not be before `from`")]
pub struct BackwardsRange;

impl DateRange {
    /// The days from `from` to `to`.
    ///
    /// # Errors
    /// [`BackwardsRange`] when `to` is before `from`.
    pub fn new(from: Date, to: Date) -> Result<Self, BackwardsRange> {
        if to < from {
            return Err(BackwardsRange);
        }
        Ok(Self { from, to })
    }

    /// The days from `from` (or the earliest) to `to` (or the latest).
    ///
    /// # Errors
    /// [`BackwardsRange`] when `to` is before `from`.
    pub fn open(from: Option<Date>, to: Option<Date>) -> Result<Self, BackwardsRange> {
        Self::new(from.unwrap_or(Date::MIN), to.unwrap_or(Date::MAX))
    }

    /// First day.
    pub fn from(self) -> Date {
        self.from
    }

    /// Last day.
    pub fn to(self) -> Date {
        self.to
    }

    /// How many calendar months the range touches.
    pub fn month_count(self) -> i64 {
        let index = |d: Date| i64::from(d.year()) * 12 + i64::from(u8::from(d.month()));
        index(self.to) - index(self.from) + 1
    }
}

/// Daily opening hours, inside which slots are offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpeningHours {
    /// First slot starts here.
    pub open: Time,
    /// The last slot ends at or before this time.
    pub close: Time,
}

/// The grid the `MEDBOOK_SLOT_*` settings describe: what the default site is created with
/// ([`super::site::SiteDefinition::from_grid`]); every other rule of slots lives with sites.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotGrid {
    /// Slot length in minutes; divides a day.
    pub minutes: u32,
    /// Patients per slot.
    pub capacity: u32,
    /// Opening hours (UTC).
    pub hours: OpeningHours,
    /// How many days ahead a slot may be booked.
    pub horizon_days: u32,
}

/// Where a test (and its result) belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestAddress {
    /// Patient id.
    pub patient_id: Uuid,
    /// Booking id.
    pub booking_id: Uuid,
    /// Test id.
    pub test_id: Uuid,
}

/// A booking with everything under it, as one read returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct BookingTree {
    /// The booking, its tests with their states.
    pub booking: Booking,
    /// Current result per test id.
    pub results: HashMap<Uuid, LabResult>,
    /// Notes per test id, oldest first.
    pub notes: HashMap<Uuid, Vec<Note>>,
}

/// State of a booking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum BookingStatus {
    /// Holds a place in its slot.
    Booked,
    /// The patient arrived and the lab checked them in: results can be recorded.
    CheckedIn,
    /// Cancelled; its place was given back.
    Cancelled,
    /// The patient did not come.
    NoShow,
}

/// State of one booked test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TestStatus {
    /// Booked, no result yet.
    Ordered,
    /// A result is recorded and awaits verification.
    Resulted,
    /// The current result is verified (final, corrected or amended) and awaits a doctor's review.
    Verified,
    /// A doctor reviewed the current result.
    Reviewed,
    /// The booking was cancelled.
    Cancelled,
}

/// One test in a booking, pinned to the catalog version it was booked with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BookedTest {
    /// Test id.
    pub id: Uuid,
    /// Test type code.
    pub test_type_code: String,
    /// Test type version booked.
    pub test_type_version: u32,
    /// Test type name at that version.
    pub name: String,
    /// State.
    pub status: TestStatus,
}

/// A booked test as lists show it (without its state, which lives on the test).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = crate::examples::test_ref)]
pub struct TestRef {
    /// Test id.
    pub id: Uuid,
    /// Test type code.
    #[schema(example = "CBC")]
    pub test_type_code: String,
    /// Test type version booked.
    #[schema(example = 1)]
    pub test_type_version: u32,
    /// Test type name at that version.
    #[schema(example = "Complete blood count")]
    pub name: String,
}

/// A booking as lists show it: the booking item alone.
#[derive(Debug, Clone, PartialEq)]
pub struct BookingSummary {
    /// Booking id.
    pub id: Uuid,
    /// Patient.
    pub patient_id: Uuid,
    /// Site code.
    pub site: String,
    /// Slot start.
    pub slot_start: SlotStart,
    /// The slot start in the site's local time.
    pub local_slot_start: String,
    /// Where the booking was before each reschedule, oldest first.
    pub rescheduled_from: Vec<Rescheduled>,
    /// When the lab checked the patient in.
    pub checked_in_at: Option<String>,
    /// The accession number given at check-in.
    pub accession: Option<String>,
    /// State.
    pub status: BookingStatus,
    /// Booked tests.
    pub tests: Vec<TestRef>,
    /// Booker's note.
    pub note: Option<String>,
    /// Version.
    pub version: u64,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

/// Where a booking was before it was rescheduled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"site": "MAIN", "slotStart": "2026-12-05T07:15:00Z", "localSlotStart": "2026-12-05T07:15:00+00:00", "movedAt": "2026-12-01T09:00:00.000Z"}))]
pub struct Rescheduled {
    /// Site code.
    pub site: String,
    /// Slot start (UTC).
    #[schema(value_type = String)]
    pub slot_start: SlotStart,
    /// Slot start in the site's local time.
    pub local_slot_start: String,
    /// When it was moved.
    pub moved_at: String,
}

/// A booked test with where it belongs, as the lab's tests-by-type view shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduledTest {
    /// Patient.
    pub patient_id: Uuid,
    /// Booking.
    pub booking_id: Uuid,
    /// Slot start.
    pub slot_start: SlotStart,
    /// The test.
    pub test: BookedTest,
}

/// A result waiting for verification or review, as the two worklists show it.
#[derive(Debug, Clone, PartialEq)]
pub struct WorklistEntry {
    /// Patient.
    pub patient_id: Uuid,
    /// Booking.
    pub booking_id: Uuid,
    /// Test.
    pub test_id: Uuid,
    /// Test type code.
    pub test_type_code: String,
    /// The result's status.
    pub status: ResultStatus,
    /// Whether any value is critical.
    pub critical: bool,
    /// Whether any value failed its delta check.
    pub delta_flag: bool,
    /// When the result was recorded.
    pub recorded_at: String,
    /// When it was verified (the doctor's worklist only).
    pub verified_at: Option<String>,
}

/// A booking: a patient, a slot at a site, several tests.
#[derive(Debug, Clone, PartialEq)]
pub struct Booking {
    /// Booking id.
    pub id: Uuid,
    /// Patient.
    pub patient_id: Uuid,
    /// Site code.
    pub site: String,
    /// Slot start.
    pub slot_start: SlotStart,
    /// The slot start in the site's local time with its offset (`2027-03-28T07:00:00+02:00`).
    pub local_slot_start: String,
    /// The place of the slot the booking takes (0 to capacity − 1).
    pub place: u32,
    /// Where the booking was before each reschedule, oldest first.
    pub rescheduled_from: Vec<Rescheduled>,
    /// When the lab checked the patient in.
    pub checked_in_at: Option<String>,
    /// The accession number given at check-in (`<SITE>-<YYYYMMDD>-<0001>`), unique per site and day, gapless.
    pub accession: Option<String>,
    /// Made before check-in existed (moved by the sites migration): results may be recorded while `booked`.
    pub results_without_check_in: bool,
    /// State.
    pub status: BookingStatus,
    /// Booked tests.
    pub tests: Vec<BookedTest>,
    /// Free-text note from the booker.
    pub note: Option<String>,
    /// Optimistic-concurrency version; the ETag.
    pub version: u64,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

impl Booking {
    /// Whether results may be recorded: once checked in (or, for a booking made before check-in existed,
    /// while booked).
    pub fn takes_results(&self) -> bool {
        self.status == BookingStatus::CheckedIn
            || (self.status == BookingStatus::Booked && self.results_without_check_in)
    }

    /// The site's local date of the slot (the date of `local_slot_start`).
    pub fn local_date(&self) -> Date {
        self.local_slot_start
            .get(..10)
            .and_then(timefmt::parse_date)
            .unwrap_or_else(|| self.slot_start.date())
    }
}

/// State of a result, as laboratories (and FHIR) report it. Verification by a second lab user makes a result
/// final; a doctor's review is separate (`review`) and changes no status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ResultStatus {
    /// Recorded, not verified yet.
    Preliminary,
    /// Verified (technical validation by a second lab user).
    Final,
    /// A new revision whose values differ from the last verified one (verified or not: see `verification`).
    Corrected,
    /// A new revision after a verified one with the same values: only the comment changed.
    Amended,
}

/// One measured value with its flag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = crate::examples::result_value)]
pub struct ResultValue {
    /// Analyte code.
    #[schema(example = "HGB")]
    pub analyte: String,
    /// Value.
    #[schema(example = 13.5)]
    pub value: f64,
    /// UCUM unit (the analyte's).
    #[schema(example = "g/dL")]
    pub unit: String,
    /// Comparison with the analyte's ranges.
    pub flag: Flag,
    /// The reference range the value was judged against (by the patient's sex and age at collection).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_range: Option<ReferenceRange>,
    /// The change from the patient's previous final value, when it failed the analyte's delta check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<Delta>,
}

/// A value that moved beyond its analyte's delta check since the patient's previous final value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"previous": 13.9, "previousAt": "2026-11-02T08:10:00Z", "change": -4.2}))]
pub struct Delta {
    /// The previous final value.
    pub previous: f64,
    /// When its specimen was collected.
    pub previous_at: String,
    /// This value minus the previous one.
    pub change: f64,
}

/// The patient's previous final value of one LOINC code, as a delta check compares with it.
#[derive(Debug, Clone, PartialEq)]
pub struct PreviousValue {
    /// Value.
    pub value: f64,
    /// Its unit (a value in another unit is not compared).
    pub unit: String,
    /// When its specimen was collected.
    pub collected_at: String,
}

/// A lab user's verification of a result revision (the second pair of eyes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"verifierId": "lab-2", "verifiedAt": "2026-12-01T09:30:00.000Z"}))]
pub struct Verification {
    /// Verifying lab user (token subject); never the one who recorded the revision.
    pub verifier_id: String,
    /// When.
    pub verified_at: String,
    /// True for a result reviewed before verification existed: its review counts as its verification.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub legacy: bool,
}

/// A doctor's hold of one result from the patient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"doctorId": "doctor-1", "heldAt": "2026-12-01T09:40:00.000Z", "reason": "to discuss in person first"}))]
pub struct ReleaseHold {
    /// The holding doctor (token subject).
    pub doctor_id: String,
    /// When.
    pub held_at: String,
    /// Why (recorded, audited).
    pub reason: String,
}

/// A doctor's sign-off of a result revision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = crate::examples::review)]
pub struct Review {
    /// Reviewing doctor (token subject).
    pub reviewer_id: String,
    /// When.
    pub reviewed_at: String,
    /// The doctor's conclusion.
    pub conclusion: String,
}

/// A test's result (one revision of it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabResult {
    /// State.
    pub status: ResultStatus,
    /// Revision: 1 for the first recording, +1 for each recording after it.
    pub revision: u32,
    /// Optimistic-concurrency version (every change); the ETag.
    pub version: u64,
    /// Measured values.
    pub values: Vec<ResultValue>,
    /// Whether any value is critical (LL or HH).
    pub critical: bool,
    /// Whether any value failed its delta check.
    #[serde(default)]
    pub delta_flag: bool,
    /// When the specimen was analysed.
    pub performed_at: String,
    /// When the specimen was collected (check-in; the slot for bookings from before check-in): the time of
    /// the patient's observations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collected_at: Option<String>,
    /// Lab comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// When this revision was recorded.
    pub recorded_at: String,
    /// Who recorded it.
    pub recorded_by: String,
    /// The verification of this revision, once there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
    /// The doctor's review of this revision, once there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<Review>,
    /// A doctor's hold from the patient; kept across revisions until lifted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<ReleaseHold>,
    /// When the last hold was lifted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_lifted_at: Option<String>,
    /// The booked test type version's own release rule, overriding the service's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<ReleasePolicy>,
    /// The last verified revision this one replaces (corrections and amendments).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corrects: Option<u32>,
}

impl LabResult {
    /// What this result's release depends on.
    pub fn release_facts(&self) -> ReleaseFacts {
        ReleaseFacts {
            verified_at: self.verification.as_ref().map(|v| v.verified_at.clone()),
            reviewed_at: self.review.as_ref().map(|r| r.reviewed_at.clone()),
            held: self.hold.is_some(),
            hold_lifted_at: self.hold_lifted_at.clone(),
            release: self.release,
        }
    }

    /// The observations of this (verified) result: one per value whose analyte `test_type` knows, at
    /// `collected_at`.
    pub fn observations(&self, at: TestAddress, test_type: &TestType) -> Vec<Observation> {
        let Some(collected_at) = self.collected_at.clone() else {
            return Vec::new();
        };
        self.values
            .iter()
            .filter_map(|v| {
                let analyte = test_type.definition.analytes.iter().find(|a| a.code == v.analyte)?;
                Some(Observation {
                    booking_id: at.booking_id,
                    test_id: at.test_id,
                    test_type_code: test_type.definition.code.clone(),
                    analyte: v.analyte.clone(),
                    loinc: analyte.loinc.clone(),
                    value: v.value,
                    unit: v.unit.clone(),
                    flag: v.flag,
                    reference_range: v.reference_range,
                    collected_at: collected_at.clone(),
                    status: self.status,
                    revision: self.revision,
                    facts: self.release_facts(),
                })
            })
            .collect()
    }

    /// Whether a second lab user has verified this revision.
    pub fn is_verified(&self) -> bool {
        self.verification.is_some()
    }

    /// Whether the result waits for a doctor: verified, not reviewed.
    pub fn awaits_review(&self) -> bool {
        self.is_verified() && self.review.is_none()
    }

    /// Whether the result waits for a lab user's verification.
    pub fn awaits_verification(&self) -> bool {
        !self.is_verified()
    }

    /// The result as today's rules read it. Before verification existed, a doctor's review was the only
    /// sign-off and made a result `final`: such a result counts as verified by its reviewer at review time
    /// (marked `legacy`). Nothing else changes.
    #[must_use]
    pub fn interpreted(mut self) -> Self {
        if self.verification.is_none()
            && self.status != ResultStatus::Preliminary
            && let Some(review) = &self.review
        {
            self.verification = Some(Verification {
                verifier_id: review.reviewer_id.clone(),
                verified_at: review.reviewed_at.clone(),
                legacy: true,
            });
        }
        self
    }

    /// Whether `values` are the same measurements as this revision's (analyte, value, unit; any order).
    pub fn same_values(&self, values: &[ResultValue]) -> bool {
        let key = |v: &ResultValue| (v.analyte.clone(), v.value.to_bits(), v.unit.clone());
        let mut mine: Vec<_> = self.values.iter().map(key).collect();
        let mut theirs: Vec<_> = values.iter().map(key).collect();
        mine.sort();
        theirs.sort();
        mine == theirs
    }
}

/// One verified value in a patient's series of its LOINC code: the cumulative view doctors use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Observation {
    /// Booking.
    pub booking_id: Uuid,
    /// Test.
    pub test_id: Uuid,
    /// Test type code.
    pub test_type_code: String,
    /// Analyte code.
    pub analyte: String,
    /// LOINC code.
    pub loinc: String,
    /// Value.
    pub value: f64,
    /// UCUM unit.
    pub unit: String,
    /// Flag.
    pub flag: Flag,
    /// The reference range applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_range: Option<ReferenceRange>,
    /// When the specimen was collected.
    pub collected_at: String,
    /// Status of the result revision it comes from.
    pub status: ResultStatus,
    /// That revision.
    pub revision: u32,
    /// What its release depends on (a copy of the result's).
    pub facts: ReleaseFacts,
}

/// A value as the lab sends it.
#[derive(Debug, Clone, PartialEq)]
pub struct RawValue {
    /// Analyte code.
    pub analyte: String,
    /// Value.
    pub value: f64,
    /// Unit.
    pub unit: String,
}

/// Why a value does not fit the booked test type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueError {
    /// Index in `values`.
    pub index: usize,
    /// Field (`analyte`, `unit`, `value`).
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

/// Values checked and flagged.
#[derive(Debug, Clone, PartialEq)]
pub struct Flagged {
    /// The values with their flags, ranges and deltas.
    pub values: Vec<ResultValue>,
    /// Whether any is critical (LL/HH).
    pub critical: bool,
    /// Whether any failed its delta check.
    pub delta_flag: bool,
}

/// Checks `values` against the analytes of `test_type` and flags each: against the reference range for `who`
/// (the catch-all when `None`), and against the patient's `previous` final value of its LOINC code where the
/// analyte has a delta check.
///
/// # Errors
/// Every value that names an unknown or repeated analyte, uses another unit, or is not finite.
pub fn flag_values(
    test_type: &TestType,
    values: &[RawValue],
    who: Option<&Subject>,
    previous: &HashMap<String, PreviousValue>,
) -> Result<Flagged, Vec<ValueError>> {
    let mut errors = Vec::new();
    let mut flagged = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (index, raw) in values.iter().enumerate() {
        let analyte: Option<&Analyte> = test_type.definition.analytes.iter().find(|a| a.code == raw.analyte);
        let Some(analyte) = analyte else {
            let known: Vec<&str> = test_type.definition.analytes.iter().map(|a| a.code.as_str()).collect();
            errors.push(ValueError {
                index,
                field: "analyte",
                message: format!(
                    "`{}` is not an analyte of {} version {} (one of: {})",
                    raw.analyte,
                    test_type.definition.code,
                    test_type.version,
                    known.join(", ")
                ),
            });
            continue;
        };
        if !seen.insert(raw.analyte.as_str()) {
            errors.push(ValueError {
                index,
                field: "analyte",
                message: format!("`{}` appears twice", raw.analyte),
            });
        }
        if raw.unit != analyte.unit {
            errors.push(ValueError {
                index,
                field: "unit",
                message: format!("must be `{}` (UCUM)", analyte.unit),
            });
        }
        if !super::test_type::is_storable(raw.value) {
            errors.push(ValueError {
                index,
                field: "value",
                message: "must be 0 or of magnitude 1e-15 to 1e15".into(),
            });
        }
        let reference = analyte.reference_for(who);
        let delta = analyte.delta_check.and_then(|check| {
            let before = previous.get(&analyte.loinc).filter(|p| p.unit == raw.unit)?;
            check.exceeded(before.value, raw.value).then(|| Delta {
                previous: before.value,
                previous_at: before.collected_at.clone(),
                change: raw.value - before.value,
            })
        });
        flagged.push(ResultValue {
            analyte: raw.analyte.clone(),
            value: raw.value,
            unit: raw.unit.clone(),
            flag: analyte.flag_against(raw.value, reference.map(|r| r.range()).as_ref()),
            reference_range: reference,
            delta,
        });
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Flagged {
        critical: flagged.iter().any(|v| matches!(v.flag, Flag::LL | Flag::HH)),
        delta_flag: flagged.iter().any(|v| v.delta.is_some()),
        values: flagged,
    })
}

/// Who may read a doctor's note.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum NoteVisibility {
    /// Staff only.
    #[default]
    Internal,
    /// The patient too, once the test's result is released.
    Patient,
}

/// A doctor's note on a test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = crate::examples::note)]
pub struct Note {
    /// Note id (UUID v7: notes sort by time).
    pub id: Uuid,
    /// Author (token subject).
    pub author_id: String,
    /// Text.
    pub text: String,
    /// `internal` (staff only; notes from before visibility existed) or `patient`.
    #[serde(default)]
    pub visibility: NoteVisibility,
    /// When.
    pub created_at: String,
}

#[cfg(test)]
mod tests {
    use time::macros::{date, datetime};

    use super::*;
    use crate::domain::test_type::{Range, TestTypeDefinition};

    fn hm(hour: u8, minute: u8) -> Time {
        Time::from_hms(hour, minute, 0).expect("valid time")
    }

    fn grid() -> SlotGrid {
        SlotGrid {
            minutes: 15,
            capacity: 4,
            hours: OpeningHours {
                open: hm(7, 0),
                close: hm(18, 0),
            },
            horizon_days: 180,
        }
    }

    /// The default site the grid settings seed.
    fn main_site() -> crate::domain::site::Site {
        crate::domain::site::Site {
            definition: crate::domain::site::SiteDefinition::from_grid(&grid()),
            version: 1,
            created_at: String::new(),
            updated_at: String::new(),
        }
    }

    #[test]
    fn the_default_site_from_the_grid_has_44_quarter_hour_slots_from_seven_to_six_utc() {
        let slots = main_site().slots(date!(2026 - 12 - 01), None);
        assert_eq!(slots.len(), 44);
        assert_eq!(slots[0].start.to_string(), "2026-12-01T07:00:00Z");
        assert_eq!(slots[0].local_start(), "2026-12-01T07:00:00+00:00");
        assert_eq!(slots.last().unwrap().start.to_string(), "2026-12-01T17:45:00Z");
    }

    #[test]
    fn a_slot_start_is_utc_to_the_second_and_round_trips_as_text() {
        let slot = SlotStart::new(datetime!(2026-12-01 08:15:00.25 +01:00));
        assert_eq!(slot.to_string(), "2026-12-01T07:15:00Z");
        assert_eq!(slot.date(), date!(2026 - 12 - 01));
        let json = serde_json::to_string(&slot).unwrap();
        assert_eq!(json, "\"2026-12-01T07:15:00Z\"");
        assert_eq!(serde_json::from_str::<SlotStart>(&json).unwrap(), slot);
    }

    #[test]
    fn a_range_runs_forwards_and_counts_the_months_it_touches() {
        assert!(DateRange::new(date!(2026 - 11 - 02), date!(2026 - 11 - 01)).is_err());
        let range = DateRange::new(date!(2026 - 11 - 30), date!(2027 - 01 - 02)).unwrap();
        assert_eq!(range.month_count(), 3);
        assert_eq!(DateRange::open(None, None).unwrap().from(), Date::MIN);
    }

    #[test]
    fn slots_off_the_grid_outside_hours_or_past_are_refused_at_the_default_site() {
        use crate::domain::site::SiteSlotError;
        let now = datetime!(2026-11-28 07:00 UTC);
        let site = main_site();
        let check = |at| site.check(at, now, None, true).map(|s| s.start);
        let quarter_past = SlotStart::new(datetime!(2026-12-01 07:15 UTC));
        assert_eq!(check(datetime!(2026-12-01 07:15 UTC)), Ok(quarter_past));
        assert_eq!(
            check(datetime!(2026-12-01 08:15 +01:00)),
            Ok(quarter_past),
            "any offset, same instant"
        );
        assert_eq!(check(datetime!(2026-12-01 07:10 UTC)), Err(SiteSlotError::OffGrid(15)));
        assert_eq!(
            check(datetime!(2026-12-01 07:15:30 UTC)),
            Err(SiteSlotError::OffGrid(15))
        );
        assert_eq!(check(datetime!(2026-12-01 06:45 UTC)), Err(SiteSlotError::Closed));
        assert_eq!(check(datetime!(2026-12-01 18:00 UTC)), Err(SiteSlotError::Closed));
        assert!(check(datetime!(2026-12-01 17:45 UTC)).is_ok());
        assert_eq!(check(datetime!(2026-11-27 09:00 UTC)), Err(SiteSlotError::Past));
        assert!(check(datetime!(2027-05-27 07:00 UTC)).is_ok(), "day 180");
        assert_eq!(
            check(datetime!(2027-05-27 07:15 UTC)),
            Err(SiteSlotError::BeyondHorizon(180))
        );
        assert_eq!(
            check(datetime!(9999-12-31 09:00 UTC)),
            Err(SiteSlotError::BeyondHorizon(180))
        );
    }

    fn cbc() -> TestType {
        TestType {
            version: 3,
            definition: TestTypeDefinition {
                code: "CBC".into(),
                name: "CBC".into(),
                category: "hematology".into(),
                loinc: "58410-2".into(),
                specimen: "blood".into(),
                preparation: None,
                duration_minutes: 10,
                price_cents: 100,
                currency: "EUR".into(),
                active: true,
                release: None,
                analytes: vec![Analyte {
                    code: "HGB".into(),
                    name: "Hemoglobin".into(),
                    loinc: "718-7".into(),
                    unit: "g/dL".into(),
                    reference_range: Some(Range {
                        low: Some(12.0),
                        high: Some(17.5),
                    }),
                    reference_ranges: Vec::new(),
                    critical_range: Some(Range {
                        low: Some(7.0),
                        high: Some(20.0),
                    }),
                    delta_check: Some(crate::domain::test_type::DeltaCheck {
                        percent: Some(20.0),
                        absolute: None,
                        within_days: 30,
                    }),
                }],
            },
            created_at: "t".into(),
        }
    }

    fn raw(analyte: &str, value: f64, unit: &str) -> RawValue {
        RawValue {
            analyte: analyte.into(),
            value,
            unit: unit.into(),
        }
    }

    #[test]
    fn values_are_flagged_and_a_critical_one_marks_the_result() {
        let none = HashMap::new();
        let f = flag_values(&cbc(), &[raw("HGB", 13.0, "g/dL")], None, &none).unwrap();
        assert_eq!((f.values[0].flag, f.critical, f.delta_flag), (Flag::N, false, false));
        assert_eq!(
            f.values[0].reference_range.and_then(|r| r.high),
            Some(17.5),
            "the range applied"
        );
        let f = flag_values(&cbc(), &[raw("HGB", 6.5, "g/dL")], None, &none).unwrap();
        assert_eq!((f.values[0].flag, f.critical), (Flag::LL, true));
    }

    #[test]
    fn a_value_beyond_its_delta_check_carries_the_previous_one() {
        let previous = |value: f64, unit: &str| {
            HashMap::from([(
                "718-7".to_owned(),
                PreviousValue {
                    value,
                    unit: unit.into(),
                    collected_at: "2026-11-20T08:00:00Z".into(),
                },
            )])
        };
        let f = flag_values(&cbc(), &[raw("HGB", 13.0, "g/dL")], None, &previous(14.0, "g/dL")).unwrap();
        assert!(!f.delta_flag && f.values[0].delta.is_none(), "7 % is inside 20 %");
        let f = flag_values(&cbc(), &[raw("HGB", 10.0, "g/dL")], None, &previous(14.0, "g/dL")).unwrap();
        assert!(f.delta_flag);
        assert_eq!(
            f.values[0].delta.as_ref().map(|d| (d.previous, d.change)),
            Some((14.0, -4.0))
        );
        let f = flag_values(&cbc(), &[raw("HGB", 10.0, "g/dL")], None, &previous(140.0, "g/L")).unwrap();
        assert!(!f.delta_flag, "another unit is not compared");
    }

    #[test]
    fn a_result_reviewed_before_verification_existed_reads_as_verified_by_its_reviewer() {
        let old: LabResult = serde_json::from_value(serde_json::json!({
            "status": "final", "revision": 1, "version": 2, "values": [], "critical": false,
            "performedAt": "2026-11-01T08:00:00Z", "recordedAt": "2026-11-01T09:00:00.000Z", "recordedBy": "lab-1",
            "review": {"reviewerId": "doctor-1", "reviewedAt": "2026-11-01T10:00:00.000Z", "conclusion": "ok"}
        }))
        .unwrap();
        let now = old.clone().interpreted();
        let v = now.verification.as_ref().unwrap();
        assert_eq!(
            (v.verifier_id.as_str(), v.verified_at.as_str(), v.legacy),
            ("doctor-1", "2026-11-01T10:00:00.000Z", true)
        );
        assert!(!now.awaits_review() && !now.awaits_verification());
        let waiting = LabResult {
            status: ResultStatus::Preliminary,
            review: None,
            ..old
        }
        .interpreted();
        assert!(
            waiting.awaits_verification(),
            "an unreviewed result was never signed off"
        );
    }

    #[test]
    fn unknown_analytes_wrong_units_and_repeats_are_named() {
        let errors = flag_values(
            &cbc(),
            &[
                raw("XYZ", 1.0, "g/dL"),
                raw("HGB", 13.0, "g/L"),
                raw("HGB", 13.0, "g/dL"),
            ],
            None,
            &HashMap::new(),
        )
        .unwrap_err();
        let fields: Vec<(usize, &str)> = errors.iter().map(|e| (e.index, e.field)).collect();
        assert_eq!(fields, [(0, "analyte"), (1, "unit"), (2, "analyte")]);
        assert!(errors[0].message.contains("CBC version 3"), "{}", errors[0].message);
    }
}
