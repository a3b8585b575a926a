//! Recording results, doctors' notes and reviews, and the review worklist.
//!
//! A result is flagged against the test type version the test was booked with. Before review, recording
//! again replaces the current revision; after review, it is an amendment (revision + 1, back on the
//! worklist) and every revision stays readable. Each change is one transaction conditioned on the version
//! the caller saw, so no update is lost.

use time::OffsetDateTime;
use uuid::Uuid;

use super::{Cursor, Expected, FieldError, Page, ServiceError, catalog::Catalog};
use crate::{
    domain::{
        audit::AuditDraft,
        booking::{
            BookedTest, BookingTree, LabResult, Note, RawValue, ResultStatus, Review, TestAddress, TestStatus,
            WorklistEntry, flag_values,
        },
        timefmt,
    },
    store::{
        Store,
        bookings::{NoteOutcome, SaveResultOutcome},
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
}

impl Results {
    /// Results over `store`, flagging with `catalog`.
    pub fn new(store: Store, catalog: Catalog) -> Self {
        Self { store, catalog }
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
        let (values, critical) = flag_values(&test_type, &input.values).map_err(|errors| {
            ServiceError::Invalid(
                errors
                    .into_iter()
                    .map(|e| FieldError::new(format!("values[{}].{}", e.index, e.field), e.message))
                    .collect(),
            )
        })?;
        let current = tree.results.get(&at.test_id);
        let (revision, status, version) = match (current, expected) {
            (None, None) => (1, ResultStatus::Preliminary, 1),
            (None, Some(_)) => return Err(ServiceError::VersionMismatch),
            (Some(_), None) => return Err(ServiceError::PreconditionRequired),
            (Some(cur), Some(e)) if !e.admits(cur.version) => return Err(ServiceError::VersionMismatch),
            // Every recorded set of values is a revision of its own and stays in the history. Not reviewed
            // yet: a new revision in the same status; reviewed: an amendment.
            (Some(cur), Some(_)) if cur.awaits_review() => (cur.revision + 1, cur.status, cur.version + 1),
            (Some(cur), Some(_)) => (cur.revision + 1, ResultStatus::Amended, cur.version + 1),
        };
        let result = LabResult {
            status,
            revision,
            version,
            values,
            critical,
            performed_at: timefmt::second(input.performed_at),
            comment: input.comment,
            recorded_at: timefmt::now(),
            recorded_by: recorder.to_owned(),
            review: None,
        };
        let outcome = self
            .store
            .save_result(
                at,
                &test.test_type_code,
                &result,
                current.map(|c| c.version),
                &audit.event(at.patient_id),
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
        audit: &AuditDraft,
    ) -> Result<Note, ServiceError> {
        let note = Note {
            id: Uuid::now_v7(),
            author_id: author.to_owned(),
            text,
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

    /// Signs off the current result at `expected_version`: `final` (or stays `amended`), test `reviewed`, off
    /// the worklist, in one transaction conditioned on that version.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`], [`ServiceError::Conflict`] `no-result` or `already-reviewed`,
    /// [`ServiceError::VersionMismatch`] when a newer revision arrived.
    pub async fn review(
        &self,
        reviewer: &str,
        at: TestAddress,
        expected: Expected,
        conclusion: String,
        audit: &AuditDraft,
    ) -> Result<LabResult, ServiceError> {
        let (tree, test) = self.tree_and_test(at).await?;
        let Some(current) = tree.results.get(&at.test_id) else {
            return Err(ServiceError::conflict(
                "no-result",
                "no result has been recorded for this test yet",
            ));
        };
        if !expected.admits(current.version) {
            return Err(ServiceError::VersionMismatch);
        }
        if !current.awaits_review() {
            return Err(ServiceError::conflict(
                "already-reviewed",
                "this revision has been reviewed already",
            ));
        }
        let reviewed = LabResult {
            status: if current.status == ResultStatus::Preliminary {
                ResultStatus::Final
            } else {
                ResultStatus::Amended
            },
            version: current.version + 1,
            review: Some(Review {
                reviewer_id: reviewer.to_owned(),
                reviewed_at: timefmt::now(),
                conclusion,
            }),
            ..current.clone()
        };
        let outcome = self
            .store
            .save_result(
                at,
                &test.test_type_code,
                &reviewed,
                Some(current.version),
                &audit.event(at.patient_id),
            )
            .await?;
        match outcome {
            SaveResultOutcome::Saved => Ok(reviewed),
            SaveResultOutcome::VersionMoved => Err(ServiceError::VersionMismatch),
            SaveResultOutcome::TestCancelled => Err(ServiceError::conflict(
                "booking-cancelled",
                "the booking was cancelled meanwhile",
            )),
        }
    }

    /// A page of results awaiting review, critical first then oldest first (one Query on the sparse index).
    ///
    /// # Errors
    /// Engine failures.
    pub async fn worklist(&self, limit: i32, start: Option<&Cursor>) -> Result<Page<WorklistEntry>, ServiceError> {
        Ok(self.store.worklist(limit, Cursor::key(start)).await?.into())
    }
}
