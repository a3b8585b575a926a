//! Recording, verifying, reviewing and holding results; doctors' notes; the two queues; a patient's series.
//!
//! A result is recorded by one lab user (`preliminary`), verified by another (`final`), and reviewed by a
//! doctor (the review changes no status). Every recording is a revision of its own: after a verified one it
//! is `corrected` (values changed) or `amended` (only the comment), and waits for verification again. Each
//! change is one transaction conditioned on the version the caller saw, so no update is lost. When a patient
//! sees a result follows from the release policy ([`crate::domain::release`]).

use std::collections::HashMap;

use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::{Cursor, Expected, FieldError, Page, ServiceError, catalog::Catalog};
use crate::{
    domain::{
        audit::{AuditDraft, AuditEvent},
        booking::{
            BookedTest, BookingTree, Flagged, LabResult, Note, NoteVisibility, Observation, RawValue, ReleaseHold,
            ResultStatus, Review, TestAddress, TestStatus, Verification, WorklistEntry, flag_values,
        },
        event::result_events,
        patient::Sex,
        release::{Release, ReleasePolicy, release},
        test_type::{RangeSex, Subject, TestType},
        timefmt,
    },
    store::{
        Store,
        bookings::{NoteOutcome, PreviousQuery, Queue, SaveResultOutcome},
    },
};

/// A result as the lab sends it.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultInput {
    /// Values.
    pub values: Vec<RawValue>,
    /// When the specimen was analysed.
    pub performed_at: OffsetDateTime,
    /// Lab comment.
    pub comment: Option<String>,
}

/// Clock skew tolerated on `performedAt`.
pub const PERFORMED_AT_SKEW: time::Duration = time::Duration::minutes(5);

/// A specimen is analysed after it was booked and not in the future: `performedAt` lies between the day the
/// booking was made and now (plus clock skew). Year 0000 and the far future never reach the record (or the
/// FHIR export, whose schema refuses them).
fn check_performed_at(performed_at: OffsetDateTime, booked_at: &str) -> Result<(), ServiceError> {
    let invalid = |message: String| ServiceError::Invalid(vec![FieldError::new("performedAt", message)]);
    let now = OffsetDateTime::now_utc();
    if performed_at > now + PERFORMED_AT_SKEW {
        return Err(invalid("must not be in the future".into()));
    }
    let booked = timefmt::parse_instant(booked_at).map_or(now.date(), |at| at.date());
    if performed_at.to_offset(time::UtcOffset::UTC).date() < booked {
        return Err(invalid(format!(
            "must not be before the booking was made ({})",
            timefmt::date(booked)
        )));
    }
    Ok(())
}

/// Result, note and review use cases.
#[derive(Debug, Clone)]
pub struct Results {
    store: Store,
    catalog: Catalog,
    policy: ReleasePolicy,
}

/// How often a hold or a lift re-reads and tries again when a recording moved the result meanwhile.
const HOLD_ATTEMPTS: usize = 3;

/// The instant a booking's specimen was collected, as observations store it (to the second): the check-in,
/// or the slot for a booking from before check-in existed.
fn collected_at(tree: &BookingTree) -> String {
    tree.booking
        .checked_in_at
        .as_deref()
        .and_then(timefmt::parse_instant)
        .map_or_else(|| tree.booking.slot_start.to_string(), timefmt::second)
}

impl Results {
    /// Results over `store`, flagging with `catalog`, releasing to patients under `policy`.
    pub fn new(store: Store, catalog: Catalog, policy: ReleasePolicy) -> Self {
        Self { store, catalog, policy }
    }

    /// The service's release policy (`MEDBOOK_RESULT_RELEASE`).
    pub fn policy(&self) -> ReleasePolicy {
        self.policy
    }

    /// Whether, and since when, `result` is released to its patient now.
    pub fn release_of(&self, result: &LabResult) -> Release {
        release(&result.release_facts(), self.policy, OffsetDateTime::now_utc())
    }

    /// Records (or replaces, or amends) a test's result. `expected_version` is the If-Match of the caller:
    /// required once a result exists, refused before.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`] for an unknown booking or test, [`ServiceError::Invalid`] for values that
    /// do not fit the booked test type version, [`ServiceError::Conflict`] `booking-cancelled`,
    /// [`ServiceError::VersionMismatch`] for a stale or missing If-Match.
    pub async fn record(
        &self,
        recorder: &str,
        at: TestAddress,
        expected: Option<Expected>,
        input: ResultInput,
        audit: &AuditDraft,
    ) -> Result<LabResult, ServiceError> {
        let (tree, test) = self.tree_and_test(at).await?;
        if test.status == TestStatus::Cancelled {
            return Err(ServiceError::conflict(
                "booking-cancelled",
                "the booking is cancelled; no result can be recorded",
            ));
        }
        if !tree.booking.takes_results() {
            return Err(ServiceError::conflict(
                "not-checked-in",
                "results are recorded for checked-in bookings: check the patient in first (POST …/check-in)",
            ));
        }
        // The specimen is taken at check-in; bookings from before check-in existed keep the booking day.
        let earliest = tree
            .booking
            .checked_in_at
            .as_deref()
            .unwrap_or(&tree.booking.created_at);
        check_performed_at(input.performed_at, earliest)?;
        let test_type = self
            .catalog
            .version(&test.test_type_code, test.test_type_version)
            .await?;
        let collected_at = collected_at(&tree);
        let flagged = self
            .flag(&tree, &test_type, &input.values, &collected_at)
            .await?
            .map_err(|errors| {
                ServiceError::Invalid(
                    errors
                        .into_iter()
                        .map(|e| FieldError::new(format!("values[{}].{}", e.index, e.field), e.message))
                        .collect(),
                )
            })?;
        let current = tree.results.get(&at.test_id);
        let new = |revision, status, version, corrects, carried: Option<&LabResult>| LabResult {
            status,
            revision,
            version,
            values: flagged.values.clone(),
            critical: flagged.critical,
            delta_flag: flagged.delta_flag,
            performed_at: timefmt::second(input.performed_at),
            collected_at: Some(collected_at.clone()),
            comment: input.comment.clone(),
            recorded_at: timefmt::now(),
            recorded_by: recorder.to_owned(),
            verification: None,
            review: None,
            // A doctor's hold is on the test's result, whichever revision is current.
            hold: carried.and_then(|c| c.hold.clone()),
            hold_lifted_at: carried.and_then(|c| c.hold_lifted_at.clone()),
            release: test_type.definition.release,
            corrects,
        };
        let result = match (current, expected) {
            (None, None) => new(1, ResultStatus::Preliminary, 1, None, None),
            (None, Some(_)) => return Err(ServiceError::VersionMismatch),
            (Some(_), None) => return Err(ServiceError::PreconditionRequired),
            (Some(cur), Some(e)) if !e.admits(cur.version) => return Err(ServiceError::VersionMismatch),
            (Some(cur), Some(_)) => {
                // Compared with the last verified revision: this one's values changed (corrected) or only
                // its comment (amended). Never verified: still preliminary.
                let base = match (cur.is_verified(), cur.corrects) {
                    (true, _) => Some((cur.revision, cur.values.clone())),
                    (false, Some(n)) => Some((n, self.revision_values(at, n).await?)),
                    (false, None) => None,
                };
                let (status, corrects) = match base {
                    None => (ResultStatus::Preliminary, None),
                    Some((n, values)) => {
                        let verified = LabResult { values, ..cur.clone() };
                        if verified.same_values(&flagged.values) {
                            (ResultStatus::Amended, Some(n))
                        } else {
                            (ResultStatus::Corrected, Some(n))
                        }
                    }
                };
                new(cur.revision + 1, status, cur.version + 1, corrects, Some(cur))
            }
        };
        let outcome = self
            .store
            .save_result(
                at,
                &test_type,
                &result,
                current.map(|c| c.version),
                &audit.event(at.patient_id),
                &result_events(
                    at,
                    current,
                    &result,
                    self.policy,
                    OffsetDateTime::now_utc(),
                    &result.recorded_at,
                ),
            )
            .await?;
        match outcome {
            SaveResultOutcome::Saved => Ok(result),
            // A first recording that lost to another first recording: the same answer a later request without
            // If-Match gets (428), not a 412 for a version it never sent.
            SaveResultOutcome::VersionMoved if expected.is_none() => Err(ServiceError::PreconditionRequired),
            SaveResultOutcome::VersionMoved => Err(ServiceError::VersionMismatch),
            SaveResultOutcome::TestCancelled => Err(ServiceError::conflict(
                "booking-cancelled",
                "the booking was cancelled meanwhile",
            )),
        }
    }

    /// Flags `values` for this booking's patient: their sex and age at collection pick the reference range
    /// (one GetItem of the patient, only when an analyte has ranges by sex or age), and each delta-checked
    /// analyte is compared with the patient's previous final value (one Query each), all issued together.
    async fn flag(
        &self,
        tree: &BookingTree,
        test_type: &TestType,
        values: &[RawValue],
        collected_at: &str,
    ) -> Result<Result<Flagged, Vec<crate::domain::booking::ValueError>>, ServiceError> {
        let analytes = &test_type.definition.analytes;
        let needs_patient = analytes.iter().any(|a| !a.reference_ranges.is_empty());
        let collected = timefmt::parse_instant(collected_at).unwrap_or_else(OffsetDateTime::now_utc);
        let queries: Vec<PreviousQuery> = analytes
            .iter()
            .filter(|a| values.iter().any(|v| v.analyte == a.code))
            .filter_map(|a| {
                let check = a.delta_check?;
                Some(PreviousQuery {
                    loinc: a.loinc.clone(),
                    from: timefmt::second(collected - Duration::days(i64::from(check.within_days))),
                    before: collected_at.to_owned(),
                })
            })
            .collect();
        let patient_id = tree.booking.patient_id;
        let patient = async {
            if needs_patient {
                self.store.get_patient(patient_id).await
            } else {
                Ok(None)
            }
        };
        let previous = async {
            if queries.is_empty() {
                Ok(HashMap::new())
            } else {
                self.store.previous_values(patient_id, queries).await
            }
        };
        let (patient, previous) = tokio::join!(patient, previous);
        let (patient, previous) = (patient?, previous?);
        let who = patient.map(|p| Subject {
            sex: match p.sex {
                Sex::Female => Some(RangeSex::Female),
                Sex::Male => Some(RangeSex::Male),
                Sex::Other | Sex::Unknown => None,
            },
            birth_date: p.birth_date,
            collected_on: tree.booking.local_date(),
        });
        Ok(flag_values(test_type, values, who.as_ref(), &previous))
    }

    /// The values of one kept revision (one Query of the history: only when a correction is recorded over
    /// another unverified correction).
    async fn revision_values(
        &self,
        at: TestAddress,
        revision: u32,
    ) -> Result<Vec<crate::domain::booking::ResultValue>, ServiceError> {
        let history = self.store.result_history(at).await?;
        history
            .into_iter()
            .find(|r| r.revision == revision)
            .map(|r| r.values)
            .ok_or_else(|| ServiceError::Internal(format!("revision {revision} of a result is missing")))
    }

    /// Verifies the current result at `expected` (the version the verifier saw): `final`, or the correction
    /// or amendment it is, verified; into the doctors' worklist; its values into the patient's series, in one
    /// transaction conditioned on that version.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`]; [`ServiceError::Conflict`] `no-result`, `already-verified`, `same-user`
    /// (the verifier recorded this revision); [`ServiceError::VersionMismatch`] when a newer revision arrived.
    pub async fn verify(
        &self,
        verifier: &str,
        at: TestAddress,
        expected: Expected,
        audit: &AuditDraft,
    ) -> Result<LabResult, ServiceError> {
        let (tree, test) = self.tree_and_test(at).await?;
        let current = current_of(&tree, at)?;
        if !expected.admits(current.version) {
            return Err(ServiceError::VersionMismatch);
        }
        if current.is_verified() {
            return Err(ServiceError::conflict(
                "already-verified",
                "this revision has been verified already",
            ));
        }
        if current.recorded_by == verifier {
            return Err(ServiceError::conflict(
                "same-user",
                "a result is verified by another lab user than the one who recorded it (four eyes)",
            ));
        }
        let verified = LabResult {
            status: match current.status {
                ResultStatus::Preliminary => ResultStatus::Final,
                other => other,
            },
            version: current.version + 1,
            verification: Some(Verification {
                verifier_id: verifier.to_owned(),
                verified_at: timefmt::now(),
                legacy: false,
            }),
            ..current.clone()
        };
        self.save(at, &test, current, &verified, &audit.event(at.patient_id))
            .await
    }

    /// Writes `changed` over `current` at its version (verification, review, hold, lift), with the events of
    /// the change.
    async fn save(
        &self,
        at: TestAddress,
        test: &BookedTest,
        current: &LabResult,
        changed: &LabResult,
        audit: &AuditEvent,
    ) -> Result<LabResult, ServiceError> {
        let test_type = self
            .catalog
            .version(&test.test_type_code, test.test_type_version)
            .await?;
        let events = result_events(
            at,
            Some(current),
            changed,
            self.policy,
            OffsetDateTime::now_utc(),
            &timefmt::now(),
        );
        match self
            .store
            .save_result(at, &test_type, changed, Some(current.version), audit, &events)
            .await?
        {
            SaveResultOutcome::Saved => Ok(changed.clone()),
            SaveResultOutcome::VersionMoved => Err(ServiceError::VersionMismatch),
            SaveResultOutcome::TestCancelled => Err(ServiceError::conflict(
                "booking-cancelled",
                "the booking was cancelled meanwhile",
            )),
        }
    }

    /// Holds the current result from the patient for `reason` (a doctor's decision, audited with the
    /// reason). Needs no If-Match: a recording that moved the result meanwhile is read again and the hold
    /// applied to it (the hold stays with every later revision until lifted).
    ///
    /// # Errors
    /// [`ServiceError::NotFound`]; [`ServiceError::Conflict`] `no-result` or `already-held`.
    pub async fn hold(
        &self,
        doctor: &str,
        at: TestAddress,
        reason: String,
        audit: &AuditDraft,
    ) -> Result<LabResult, ServiceError> {
        self.change_hold(at, audit, |current| {
            if current.hold.is_some() {
                return Err(ServiceError::conflict(
                    "already-held",
                    "this result is held already; lift the hold first to change its reason",
                ));
            }
            let held = LabResult {
                version: current.version + 1,
                hold: Some(ReleaseHold {
                    doctor_id: doctor.to_owned(),
                    held_at: timefmt::now(),
                    reason: reason.clone(),
                }),
                ..current.clone()
            };
            Ok((held, reason.clone()))
        })
        .await
    }

    /// Lifts a doctor's hold: the result is released as the policy says, from now at the earliest.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`]; [`ServiceError::Conflict`] `no-result` or `not-held`.
    pub async fn lift_hold(&self, at: TestAddress, audit: &AuditDraft) -> Result<LabResult, ServiceError> {
        self.change_hold(at, audit, |current| {
            let Some(hold) = &current.hold else {
                return Err(ServiceError::conflict("not-held", "this result is not held"));
            };
            let lifted = LabResult {
                version: current.version + 1,
                hold: None,
                hold_lifted_at: Some(timefmt::now()),
                ..current.clone()
            };
            Ok((lifted, hold.reason.clone()))
        })
        .await
    }

    /// Reads the current result, applies `change` (the changed result and the reason to audit), and saves it
    /// at the version read; a recording that moved it meanwhile is read again, up to [`HOLD_ATTEMPTS`] times.
    async fn change_hold(
        &self,
        at: TestAddress,
        audit: &AuditDraft,
        change: impl Fn(&LabResult) -> Result<(LabResult, String), ServiceError>,
    ) -> Result<LabResult, ServiceError> {
        for _ in 0..HOLD_ATTEMPTS {
            let (tree, test) = self.tree_and_test(at).await?;
            let current = current_of(&tree, at)?;
            let (changed, reason) = change(current)?;
            let event = audit.event_with_reason(at.patient_id, &reason);
            match self.save(at, &test, current, &changed, &event).await {
                Err(ServiceError::VersionMismatch) => {}
                other => return other,
            }
        }
        Err(ServiceError::Unavailable("the result kept changing; try again".into()))
    }

    /// A page of a patient's verified values of one LOINC code collected from `from` to `to` (days,
    /// inclusive), oldest first: one Query. `released_only` (a patient's own view) leaves out what is not
    /// released to them now, so such a page may hold fewer than `limit` items.
    ///
    /// # Errors
    /// Engine failures.
    #[expect(
        clippy::too_many_arguments,
        reason = "one list's filters and page, each named by its caller"
    )]
    pub async fn observations(
        &self,
        patient_id: Uuid,
        loinc: &str,
        from: time::Date,
        to: time::Date,
        released_only: bool,
        limit: i32,
        start: Option<&Cursor>,
    ) -> Result<Page<(Observation, Release)>, ServiceError> {
        let before = to
            .next_day()
            .map_or_else(|| "9999-12-31T23:59:59Z".to_owned(), timefmt::date);
        let page = self
            .store
            .observations(
                patient_id,
                loinc,
                &timefmt::date(from),
                &before,
                limit,
                Cursor::key(start),
            )
            .await?;
        let now = OffsetDateTime::now_utc();
        let mut page = Page::from(page).map(|o| {
            let state = release(&o.facts, self.policy, now);
            (o, state)
        });
        if released_only {
            page.items.retain(|(_, state)| state.is_released());
        }
        Ok(page)
    }

    /// The booking tree a test belongs to (one Query), and the test.
    async fn tree_and_test(&self, at: TestAddress) -> Result<(BookingTree, BookedTest), ServiceError> {
        let tree = self
            .store
            .booking_tree(at.patient_id, at.booking_id)
            .await?
            .ok_or(ServiceError::NotFound("booking"))?;
        let test = tree
            .booking
            .tests
            .iter()
            .find(|t| t.id == at.test_id)
            .cloned()
            .ok_or(ServiceError::NotFound("test"))?;
        Ok((tree, test))
    }

    /// A test's current result (GetItem).
    ///
    /// # Errors
    /// [`ServiceError::NotFound`] when there is none.
    pub async fn current(&self, at: TestAddress) -> Result<LabResult, ServiceError> {
        self.store
            .current_result(at)
            .await?
            .ok_or(ServiceError::NotFound("result"))
    }

    /// Every revision of a test's result, oldest first (one Query).
    ///
    /// # Errors
    /// [`ServiceError::NotFound`] when there is none.
    pub async fn history(&self, at: TestAddress) -> Result<Vec<LabResult>, ServiceError> {
        let history = self.store.result_history(at).await?;
        if history.is_empty() {
            return Err(ServiceError::NotFound("result"));
        }
        Ok(history)
    }

    /// Adds a doctor's note to a test (one transaction: the test must exist).
    ///
    /// # Errors
    /// [`ServiceError::NotFound`] when the test does not exist.
    pub async fn add_note(
        &self,
        author: &str,
        at: TestAddress,
        text: String,
        visibility: NoteVisibility,
        audit: &AuditDraft,
    ) -> Result<Note, ServiceError> {
        let note = Note {
            id: Uuid::now_v7(),
            author_id: author.to_owned(),
            text,
            visibility,
            created_at: timefmt::now(),
        };
        match self.store.add_note(at, &note, &audit.event(at.patient_id)).await? {
            NoteOutcome::Added => Ok(note),
            NoteOutcome::NoTest => Err(ServiceError::NotFound("test")),
            NoteOutcome::TestCancelled => Err(ServiceError::conflict(
                "booking-cancelled",
                "the booking is cancelled; its tests take no notes",
            )),
        }
    }

    /// The doctor's review of the current, verified result at `expected` (the version the doctor saw): the
    /// review is recorded on the revision (no status changes) and the result leaves the worklist, in one
    /// transaction conditioned on that version.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`], [`ServiceError::Conflict`] `no-result`, `not-verified` or
    /// `already-reviewed`, [`ServiceError::VersionMismatch`] when a newer revision arrived.
    pub async fn review(
        &self,
        reviewer: &str,
        at: TestAddress,
        expected: Expected,
        conclusion: String,
        audit: &AuditDraft,
    ) -> Result<LabResult, ServiceError> {
        let (tree, test) = self.tree_and_test(at).await?;
        let current = current_of(&tree, at)?;
        if !expected.admits(current.version) {
            return Err(ServiceError::VersionMismatch);
        }
        if !current.is_verified() {
            return Err(ServiceError::conflict(
                "not-verified",
                "a result is reviewed once a second lab user has verified it (POST …/result/verify)",
            ));
        }
        if current.review.is_some() {
            return Err(ServiceError::conflict(
                "already-reviewed",
                "this revision has been reviewed already",
            ));
        }
        let reviewed = LabResult {
            version: current.version + 1,
            review: Some(Review {
                reviewer_id: reviewer.to_owned(),
                reviewed_at: timefmt::now(),
                conclusion,
            }),
            ..current.clone()
        };
        self.save(at, &test, current, &reviewed, &audit.event(at.patient_id))
            .await
    }

    /// A page of the doctors' worklist: verified results awaiting review, critical first then oldest first
    /// (one Query on the sparse index).
    ///
    /// # Errors
    /// Engine failures.
    pub async fn worklist(&self, limit: i32, start: Option<&Cursor>) -> Result<Page<WorklistEntry>, ServiceError> {
        Ok(self.store.queue(Queue::Review, limit, Cursor::key(start)).await?.into())
    }

    /// A page of the lab's verification queue: results awaiting verification, critical first then oldest
    /// first (one Query on the other partition of the same sparse index).
    ///
    /// # Errors
    /// Engine failures.
    pub async fn verification_queue(
        &self,
        limit: i32,
        start: Option<&Cursor>,
    ) -> Result<Page<WorklistEntry>, ServiceError> {
        Ok(self
            .store
            .queue(Queue::Verification, limit, Cursor::key(start))
            .await?
            .into())
    }
}

/// The current result of the test `at` names, in its tree.
fn current_of(tree: &BookingTree, at: TestAddress) -> Result<&LabResult, ServiceError> {
    tree.results
        .get(&at.test_id)
        .ok_or_else(|| ServiceError::conflict("no-result", "no result has been recorded for this test yet"))
}
