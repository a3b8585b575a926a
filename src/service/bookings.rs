//! Booking tests into slots, listing and cancelling bookings, and the lab's day views.
//!
//! No overbooking: a booking's slot counter and items are one transaction conditioned on `booked <
//! capacity`. Idempotency: the key's record is written in that same transaction, so a booking exists exactly
//! when its record does; a repeated or concurrent request finds the record and gets the first answer again.

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use sha2::{Digest, Sha256};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use super::{FieldError, ServiceError, catalog::Catalog, month_paged, months_in_range};
use crate::{
    domain::{
        audit::AuditDraft,
        booking::{
            BookedTest, Booking, BookingStatus, BookingSummary, ScheduledTest, SlotGrid, TestStatus, format_date,
            format_slot,
        },
        patient::Patient,
        test_type::TestType,
        timefmt,
    },
    store::{
        Page, PageKey, Store, StoreError,
        bookings::{BOOK_IDEMPOTENCY, BOOK_PATIENT, BOOK_SLOT, BookingTree, CANCEL_BOOKING, IdempotencyWrite},
        items::IdempotencyItem,
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
    pub start: String,
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

/// A request's idempotency key and fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    /// The caller that sent it (keys are per caller).
    pub caller: String,
    /// The key.
    pub key: String,
    /// SHA-256 of what the request asked for; another request with the same key is refused.
    pub request_hash: String,
}

impl IdempotencyKey {
    /// A key for `caller`, fingerprinting the request by its `parts` (method, path, body).
    pub fn new(caller: &str, key: &str, parts: &[&[u8]]) -> Self {
        let mut hash = Sha256::new();
        for part in parts {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part);
        }
        Self {
            caller: caller.to_owned(),
            key: key.to_owned(),
            request_hash: hex(&hash.finalize()),
        }
    }

    /// The ClientRequestToken of the transaction (at most 36 characters), derived from caller and key, so a
    /// retried transaction is recognised by DynamoDB itself for 10 minutes.
    fn token(&self) -> String {
        let digest = Sha256::digest(format!("{}\n{}", self.caller, self.key));
        hex(&digest)[..36].to_owned()
    }

    fn write(&self) -> IdempotencyWrite {
        IdempotencyWrite {
            caller: self.caller.clone(),
            key: self.key.clone(),
            request_hash: self.request_hash.clone(),
            expires_at: OffsetDateTime::now_utc().unix_timestamp() + IDEMPOTENCY_TTL.as_secs() as i64,
            token: self.token(),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
        let counters = self.store.slot_counters(&format_date(date)).await?;
        Ok(self
            .grid
            .slots(date)
            .into_iter()
            .map(|at| {
                let start = format_slot(at);
                let booked = counters.iter().find(|c| c.slot_start == start).map_or(0, |c| c.booked);
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
        if let Err(e) = self.grid.check(new.slot_start, OffsetDateTime::now_utc()) {
            errors.push(FieldError::new("slotStart", e.to_string()));
        }
        let mut seen = HashSet::new();
        let mut tests = Vec::new();
        for (i, code) in new.tests.iter().enumerate() {
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
        if new.tests.is_empty() || new.tests.len() > MAX_TESTS {
            errors.push(FieldError::new(
                "tests",
                format!("must hold 1 to {MAX_TESTS} test type codes"),
            ));
        }
        if !errors.is_empty() {
            return Err(ServiceError::Invalid(errors));
        }

        let now = timefmt::now();
        let booking = Booking {
            id: Uuid::now_v7(),
            patient_id,
            slot_start: format_slot(new.slot_start),
            status: BookingStatus::Booked,
            tests,
            note: new.note,
            version: 1,
            created_at: now.clone(),
            updated_at: now,
        };
        match self
            .store
            .create_booking(
                &booking,
                self.grid.capacity,
                &idempotency.write(),
                &audit.event(patient_id),
            )
            .await
        {
            Ok(()) => Ok(Booked {
                booking,
                replayed: false,
            }),
            Err(e) if e.condition_failed(BOOK_IDEMPOTENCY) || matches!(e, StoreError::TokenReused) => {
                self.replay(idempotency).await
            }
            // Checked after the idempotency key: a repeat of a request that succeeded before the slot filled
            // fails both conditions and must get its first answer, not a 409.
            Err(e) if e.condition_failed(BOOK_SLOT) => Err(ServiceError::conflict(
                "slot-full",
                format!(
                    "slot {} has no free place; pick another from GET /v1/slots",
                    booking.slot_start
                ),
            )),
            Err(e) if e.condition_failed(BOOK_PATIENT) => Err(ServiceError::NotFound("patient")),
            Err(e) => Err(e.into()),
        }
    }

    /// The first answer to an idempotency key, read back. On Amazon DynamoDB the winning transaction may
    /// still be in flight for a moment, so a missing record is read again briefly.
    async fn replay(&self, idempotency: &IdempotencyKey) -> Result<Booked, ServiceError> {
        for attempt in 0..5u64 {
            if let Some(record) = self
                .store
                .idempotency_record(&idempotency.caller, &idempotency.key)
                .await?
            {
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
        start: Option<&PageKey>,
    ) -> Result<Page<BookingSummary>, ServiceError> {
        if let (Some(from), Some(to)) = (from, to)
            && to < from
        {
            return Err(ServiceError::Invalid(vec![FieldError::new(
                "to",
                "must not be before `from`",
            )]));
        }
        // LSI1SK is `<slotStart>#<id>`: a bare date sorts before every slot of that day, and `~` after.
        let lo = from.map_or_else(|| "0".to_owned(), format_date);
        let hi = to.map_or_else(|| "~".to_owned(), |d| format!("{}~", format_date(d)));
        Ok(self
            .store
            .list_bookings(patient_id, (&lo, &hi), status, limit, start)
            .await?)
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
    /// [`ServiceError::NotFound`]; [`ServiceError::VersionMismatch`] when `expected_version` is stale;
    /// [`ServiceError::Conflict`] `already-cancelled` or `results-recorded`.
    pub async fn cancel(
        &self,
        patient_id: Uuid,
        booking_id: Uuid,
        expected_version: Option<u64>,
        idempotency: Option<&IdempotencyKey>,
        audit: &AuditDraft,
    ) -> Result<Booked, ServiceError> {
        let tree = self.tree(patient_id, booking_id).await?;
        let booking = tree.booking;
        if booking.status == BookingStatus::Cancelled {
            if let Some(key) = idempotency
                && let Some(record) = self.store.idempotency_record(&key.caller, &key.key).await?
            {
                return replayed(record, key);
            }
            return Err(ServiceError::conflict(
                "already-cancelled",
                "the booking is cancelled already",
            ));
        }
        if expected_version.is_some_and(|v| v != booking.version) {
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
        match self
            .store
            .cancel_booking(
                &cancelled,
                booking.version,
                idempotency.map(IdempotencyKey::write).as_ref(),
                &audit.event(patient_id),
            )
            .await
        {
            Ok(()) => Ok(Booked {
                booking: cancelled,
                replayed: false,
            }),
            Err(e)
                if idempotency.is_some()
                    && (e.condition_failed(BOOK_IDEMPOTENCY) || matches!(e, StoreError::TokenReused)) =>
            {
                self.replay(idempotency.expect("checked")).await
            }
            Err(e) if e.condition_failed(CANCEL_BOOKING) => {
                // Changed between our read and our write: cancelled or updated by someone else.
                if expected_version.is_some() {
                    Err(ServiceError::VersionMismatch)
                } else {
                    Err(ServiceError::conflict(
                        "already-cancelled",
                        "the booking changed or was cancelled meanwhile",
                    ))
                }
            }
            Err(e @ StoreError::TransactionCanceled(_)) => {
                tracing::debug!(error = %e, "cancel lost to a result");
                Err(ServiceError::conflict(
                    "results-recorded",
                    "a result has been recorded for this booking; it can no longer be cancelled",
                ))
            }
            Err(e) => Err(e.into()),
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
        start: Option<&PageKey>,
    ) -> Result<Page<BookingSummary>, ServiceError> {
        Ok(self.store.schedule(&format_date(date), limit, start).await?)
    }

    /// A page of booked tests of one type with slots from `from` to `to` (inclusive dates). Each page is one
    /// Query on one month's partition of the index; the page key carries the month (`_month`) so the next
    /// page continues there, and moves to the next month when one is exhausted.
    ///
    /// # Errors
    /// [`ServiceError::Invalid`] when `to` is before `from` or the range spans more than 24 months.
    pub async fn tests_by_type(
        &self,
        code: &str,
        from: Date,
        to: Date,
        limit: i32,
        start: Option<&PageKey>,
    ) -> Result<Page<ScheduledTest>, ServiceError> {
        let months = months_in_range(from, to)?;
        let (lo, hi) = (format_date(from), format!("{}~", format_date(to)));
        month_paged(&months, start, |month, resume| async move {
            self.store
                .tests_by_type(code, &month, (&lo, &hi), limit, resume.as_ref())
                .await
        })
        .await
    }
}

fn replayed(record: IdempotencyItem, key: &IdempotencyKey) -> Result<Booked, ServiceError> {
    if record.request_hash != key.request_hash {
        return Err(ServiceError::Invalid(vec![FieldError::new(
            "Idempotency-Key",
            "was already used for a different request; send a new key",
        )]));
    }
    // A record holds the booking as that request left it: booked with ordered tests, or cancelled.
    let tests = match record.booking.status {
        BookingStatus::Booked => TestStatus::Ordered,
        BookingStatus::Cancelled => TestStatus::Cancelled,
    };
    Ok(Booked {
        booking: record.booking.into_booking(|_| None, tests),
        replayed: true,
    })
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn the_request_fingerprint_and_token_depend_on_caller_key_and_request() {
        let a = IdempotencyKey::new("u1", "k1", &[b"POST", b"/x", b"{}"]);
        assert_eq!(a, IdempotencyKey::new("u1", "k1", &[b"POST", b"/x", b"{}"]));
        assert_ne!(
            a.request_hash,
            IdempotencyKey::new("u1", "k1", &[b"POST", b"/x", b"{ }"]).request_hash
        );
        assert_ne!(
            a.request_hash,
            IdempotencyKey::new("u1", "k1", &[b"POST/", b"x", b"{}"]).request_hash
        );
        assert_eq!(a.token().len(), 36);
        assert_ne!(a.token(), IdempotencyKey::new("u2", "k1", &[]).token());
    }
}
