//! Booking tests into slots, listing and cancelling bookings, and the lab's day views.
//!
//! No overbooking: a booking's slot counter and items are one transaction conditioned on `booked <
//! capacity`. Idempotency: the key's record is written in that same transaction, so a booking exists exactly
//! when its record does; a repeated or concurrent request finds the record and gets the first answer again.

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use time::{Date, OffsetDateTime};
use uuid::Uuid;

use super::{Cursor, Expected, FieldError, Page, ServiceError, catalog::Catalog, month_range};
use crate::{
    domain::{
        audit::AuditDraft,
        booking::{
            BookedTest, Booking, BookingStatus, BookingSummary, BookingTree, DateRange, ScheduledTest, SlotGrid,
            SlotStart, TestStatus,
        },
        idempotency::{IdempotencyKey, IdempotencyRecord},
        patient::Patient,
        test_type::TestType,
        timefmt,
    },
    store::{
        Store,
        bookings::{BookOutcome, CancelOutcome},
    },
};

/// One booking with what it refers to, for an export.
#[derive(Debug, Clone)]
pub struct BookingExport {
    /// The patient.
    pub patient: Patient,
    /// The booking, its tests, current results and notes.
    pub tree: BookingTree,
    /// The catalog version of each booked test, by code and version.
    pub test_types: HashMap<(String, u32), TestType>,
}

/// How long an idempotency record answers repeats.
pub const IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 3600);
/// Most tests in one booking.
pub const MAX_TESTS: usize = 10;

/// One slot of a day as the slots view shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotAvailability {
    /// Slot start.
    pub start: SlotStart,
    /// Places.
    pub capacity: u32,
    /// Places taken.
    pub booked: u32,
    /// Places free.
    pub available: u32,
}

/// A booking as a create or cancel left it.
#[derive(Debug, Clone, PartialEq)]
pub struct Booked {
    /// The booking.
    pub booking: Booking,
    /// True when this answers a repeated Idempotency-Key from its record: nothing was written this time.
    pub replayed: bool,
}

/// A booking request.
#[derive(Debug, Clone, PartialEq)]
pub struct NewBooking {
    /// Slot start.
    pub slot_start: OffsetDateTime,
    /// Test type codes.
    pub tests: Vec<String>,
    /// Note.
    pub note: Option<String>,
}

/// Epoch seconds until which an idempotency record written now answers repeats.
fn idempotency_expiry() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp() + IDEMPOTENCY_TTL.as_secs() as i64
}

/// Booking use cases.
#[derive(Debug, Clone)]
pub struct Bookings {
    store: Store,
    catalog: Catalog,
    grid: SlotGrid,
}

impl Bookings {
    /// Bookings over `store`, resolving tests in `catalog`, on `grid`.
    pub fn new(store: Store, catalog: Catalog, grid: SlotGrid) -> Self {
        Self { store, catalog, grid }
    }

    /// Every slot of `date` with its free places (one Query).
    ///
    /// # Errors
    /// Engine failures.
    pub async fn slots(&self, date: Date) -> Result<Vec<SlotAvailability>, ServiceError> {
        let counters = self.store.slot_counters(date).await?;
        Ok(self
            .grid
            .slots(date)
            .into_iter()
            .map(|start| {
                let booked = counters.get(&start).copied().unwrap_or(0);
                SlotAvailability {
                    start,
                    capacity: self.grid.capacity,
                    booked,
                    available: self.grid.capacity.saturating_sub(booked),
                }
            })
            .collect())
    }

    /// Books `new` for `patient_id` (one transaction on the happy path).
    ///
    /// # Errors
    /// [`ServiceError::Invalid`] for a bad slot or tests, [`ServiceError::Conflict`] `slot-full`,
    /// [`ServiceError::NotFound`] for an unknown patient, [`ServiceError::Invalid`] on `Idempotency-Key` when
    /// the key was used for another request.
    pub async fn create(
        &self,
        patient_id: Uuid,
        idempotency: &IdempotencyKey,
        new: NewBooking,
        audit: &AuditDraft,
    ) -> Result<Booked, ServiceError> {
        let mut errors = Vec::new();
        let slot_start = self
            .grid
            .check(new.slot_start, OffsetDateTime::now_utc())
            .map_err(|e| errors.push(FieldError::new("slotStart", e.to_string())))
            .ok();
        let tests = self.booked_tests(&new.tests, &mut errors).await?;
        if new.tests.is_empty() || new.tests.len() > MAX_TESTS {
            errors.push(FieldError::new(
                "tests",
                format!("must hold 1 to {MAX_TESTS} test type codes"),
            ));
        }
        let Some(slot_start) = slot_start.filter(|_| errors.is_empty()) else {
            return Err(ServiceError::Invalid(errors));
        };

        let now = timefmt::now();
        let booking = Booking {
            id: Uuid::now_v7(),
            patient_id,
            slot_start,
            status: BookingStatus::Booked,
            tests,
            note: new.note,
            version: 1,
            created_at: now.clone(),
            updated_at: now,
        };
        let outcome = self
            .store
            .create_booking(
                &booking,
                self.grid.capacity,
                idempotency,
                idempotency_expiry(),
                &audit.event(patient_id),
            )
            .await?;
        match outcome {
            BookOutcome::Booked => Ok(Booked {
                booking,
                replayed: false,
            }),
            BookOutcome::KeyUsed(record) => self.replay(idempotency, record).await,
            BookOutcome::AlreadyBooked => Err(ServiceError::conflict(
                "already-booked",
                format!(
                    "this patient has a booking at {} already; add tests to it or cancel it first",
                    booking.slot_start
                ),
            )),
            BookOutcome::SlotFull => Err(ServiceError::conflict(
                "slot-full",
                format!(
                    "slot {} has no free place; pick another from GET /v1/slots",
                    booking.slot_start
                ),
            )),
            BookOutcome::NoPatient => Err(ServiceError::NotFound("patient")),
        }
    }

    /// The tests of `codes` at their current catalog versions; each code that is repeated, unknown or not
    /// bookable adds an error naming it.
    async fn booked_tests(
        &self,
        codes: &[String],
        errors: &mut Vec<FieldError>,
    ) -> Result<Vec<BookedTest>, ServiceError> {
        let mut seen = HashSet::new();
        let mut tests = Vec::new();
        for (i, code) in codes.iter().enumerate() {
            if !seen.insert(code.as_str()) {
                errors.push(FieldError::new(
                    format!("tests[{i}]"),
                    format!("`{code}` appears twice"),
                ));
                continue;
            }
            match self.catalog.current(code).await {
                Ok(t) if t.definition.active => tests.push(BookedTest {
                    id: Uuid::now_v7(),
                    test_type_code: t.definition.code.clone(),
                    test_type_version: t.version,
                    name: t.definition.name.clone(),
                    status: TestStatus::Ordered,
                }),
                Ok(_) => errors.push(FieldError::new(
                    format!("tests[{i}]"),
                    format!("`{code}` is not bookable"),
                )),
                Err(ServiceError::NotFound(_)) => errors.push(FieldError::new(
                    format!("tests[{i}]"),
                    format!("unknown test type `{code}`"),
                )),
                Err(e) => return Err(e),
            }
        }
        Ok(tests)
    }

    /// The first answer to an idempotency key: the record the rejection carried, or read back. On Amazon
    /// DynamoDB the winning transaction may still be in flight for a moment, so a missing record is read
    /// again briefly.
    async fn replay(
        &self,
        idempotency: &IdempotencyKey,
        record: Option<IdempotencyRecord>,
    ) -> Result<Booked, ServiceError> {
        if let Some(record) = record {
            return replayed(record, idempotency);
        }
        for attempt in 0..5u64 {
            if let Some(record) = self.store.idempotency_record(idempotency).await? {
                return replayed(record, idempotency);
            }
            tokio::time::sleep(Duration::from_millis(20 * (attempt + 1))).await;
        }
        Err(ServiceError::Unavailable("idempotency record not readable yet".into()))
    }

    /// A page of a patient's bookings in slot order, optionally from/to a date and of one status.
    ///
    /// # Errors
    /// Engine failures.
    pub async fn list(
        &self,
        patient_id: Uuid,
        from: Option<Date>,
        to: Option<Date>,
        status: Option<BookingStatus>,
        limit: i32,
        start: Option<&Cursor>,
    ) -> Result<Page<BookingSummary>, ServiceError> {
        let range =
            DateRange::open(from, to).map_err(|e| ServiceError::Invalid(vec![FieldError::new("to", e.to_string())]))?;
        Ok(self
            .store
            .list_bookings(patient_id, range, status, limit, Cursor::key(start))
            .await?
            .into())
    }

    /// A booking with its tests, current results and notes (one Query).
    ///
    /// # Errors
    /// [`ServiceError::NotFound`] when there is no such booking for this patient.
    pub async fn tree(&self, patient_id: Uuid, booking_id: Uuid) -> Result<BookingTree, ServiceError> {
        self.store
            .booking_tree(patient_id, booking_id)
            .await?
            .ok_or(ServiceError::NotFound("booking"))
    }

    /// Everything an export of one booking needs: the patient, the booking tree and the catalog version
    /// each test was booked with. The profile and the booking tree are two ranges of the patient's partition,
    /// so this is one GetItem and one Query, issued together; catalog versions come from the cache.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`] when there is no such booking (or patient).
    pub async fn export(&self, patient_id: Uuid, booking_id: Uuid) -> Result<BookingExport, ServiceError> {
        let (patient, tree) = tokio::join!(self.store.get_patient(patient_id), self.tree(patient_id, booking_id));
        let tree = tree?;
        let patient = patient?.ok_or(ServiceError::NotFound("patient"))?;
        let mut test_types = HashMap::new();
        for test in &tree.booking.tests {
            if let std::collections::hash_map::Entry::Vacant(slot) =
                test_types.entry((test.test_type_code.clone(), test.test_type_version))
            {
                slot.insert(
                    self.catalog
                        .version(&test.test_type_code, test.test_type_version)
                        .await?,
                );
            }
        }
        Ok(BookingExport {
            patient,
            tree,
            test_types,
        })
    }

    /// Cancels a booking: booking and tests `cancelled`, the slot's place given back, in one transaction
    /// after one read of the booking tree.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`]; [`ServiceError::VersionMismatch`] when `expected` does not hold;
    /// [`ServiceError::Conflict`] `already-cancelled` or `results-recorded`.
    pub async fn cancel(
        &self,
        patient_id: Uuid,
        booking_id: Uuid,
        expected: Option<Expected>,
        idempotency: Option<&IdempotencyKey>,
        audit: &AuditDraft,
    ) -> Result<Booked, ServiceError> {
        let tree = self.tree(patient_id, booking_id).await?;
        let booking = tree.booking;
        if booking.status == BookingStatus::Cancelled {
            if let Some(key) = idempotency
                && let Some(record) = self.store.idempotency_record(key).await?
            {
                return replayed(record, key);
            }
            return Err(ServiceError::conflict(
                "already-cancelled",
                "the booking is cancelled already",
            ));
        }
        if expected.is_some_and(|e| !e.admits(booking.version)) {
            return Err(ServiceError::VersionMismatch);
        }
        if booking.tests.iter().any(|t| t.status != TestStatus::Ordered) || !tree.results.is_empty() {
            return Err(ServiceError::conflict(
                "results-recorded",
                "a result has been recorded for this booking; it can no longer be cancelled",
            ));
        }
        let cancelled = Booking {
            status: BookingStatus::Cancelled,
            tests: booking
                .tests
                .iter()
                .map(|t| BookedTest {
                    status: TestStatus::Cancelled,
                    ..t.clone()
                })
                .collect(),
            version: booking.version + 1,
            updated_at: timefmt::now(),
            ..booking.clone()
        };
        let outcome = self
            .store
            .cancel_booking(
                &cancelled,
                booking.version,
                idempotency.map(|key| (key, idempotency_expiry())),
                &audit.event(patient_id),
            )
            .await?;
        match (outcome, idempotency) {
            (CancelOutcome::Cancelled, _) => Ok(Booked {
                booking: cancelled,
                replayed: false,
            }),
            (CancelOutcome::KeyUsed(record), Some(key)) => self.replay(key, record).await,
            (CancelOutcome::KeyUsed(_), None) => Err(ServiceError::Internal("key used without a key".into())),
            // Changed between our read and our write: cancelled or updated by someone else.
            (CancelOutcome::BookingChanged, _) if expected.is_some() => Err(ServiceError::VersionMismatch),
            (CancelOutcome::BookingChanged, _) => Err(ServiceError::conflict(
                "already-cancelled",
                "the booking changed or was cancelled meanwhile",
            )),
            (CancelOutcome::ResultRecorded, _) => Err(ServiceError::conflict(
                "results-recorded",
                "a result has been recorded for this booking; it can no longer be cancelled",
            )),
        }
    }

    /// A page of one day's bookings in slot order (one Query on the day index).
    ///
    /// # Errors
    /// Engine failures.
    pub async fn schedule(
        &self,
        date: Date,
        limit: i32,
        start: Option<&Cursor>,
    ) -> Result<Page<BookingSummary>, ServiceError> {
        Ok(self.store.schedule(date, limit, Cursor::key(start)).await?.into())
    }

    /// A page of booked tests of one type with slots from `from` to `to` (inclusive dates). Each page is one
    /// Query on one month's partition of the index; the cursor continues month by month.
    ///
    /// # Errors
    /// [`ServiceError::Invalid`] when `to` is before `from` or the range spans more than 24 months.
    pub async fn tests_by_type(
        &self,
        code: &str,
        from: Date,
        to: Date,
        limit: i32,
        start: Option<&Cursor>,
    ) -> Result<Page<ScheduledTest>, ServiceError> {
        let range = month_range(from, to)?;
        Ok(self
            .store
            .tests_by_type(code, range, limit, Cursor::key(start))
            .await?
            .into())
    }
}

fn replayed(record: IdempotencyRecord, key: &IdempotencyKey) -> Result<Booked, ServiceError> {
    if !key.matches(&record) {
        return Err(ServiceError::Invalid(vec![FieldError::new(
            "Idempotency-Key",
            "was already used for a different request; send a new key",
        )]));
    }
    Ok(Booked {
        booking: record.booking,
        replayed: true,
    })
}
