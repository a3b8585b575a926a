//! Booking tests into slots, listing and cancelling bookings, and the lab's day views.
//!
//! No overbooking: a booking takes one free place of its slot (an attribute of the slot item) in the same
//! transaction that writes its items, conditioned on that place being free (see `service::sites::pick_place`
//! and docs/data-model.md). Idempotency: the key's record is written in that same transaction, so a booking exists exactly
//! when its record does; a repeated or concurrent request finds the record and gets the first answer again.

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use time::{Date, OffsetDateTime};
use uuid::Uuid;

use super::{
    Cursor, Expected, FieldError, Page, ServiceError,
    catalog::Catalog,
    month_range,
    sites::{PLACE_ATTEMPTS, Sites, SlotAvailability, pick_place, slot_full},
};
use crate::{
    domain::{
        audit::AuditDraft,
        booking::{
            BookedTest, Booking, BookingStatus, BookingSummary, BookingTree, DateRange, ScheduledTest, TestStatus,
        },
        event::{DomainEvent, EventType},
        idempotency::{IdempotencyKey, IdempotencyRecord},
        patient::Patient,
        test_type::TestType,
        timefmt,
    },
    store::{
        Store,
        bookings::{BookOutcome, CancelOutcome, PlaceTake, RescheduleOutcome, StatusOutcome},
        sites::Unchanged,
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
    /// Site code (the default site when absent).
    pub site: Option<String>,
    /// The hold whose place the booking takes.
    pub hold_id: Option<Uuid>,
}

/// How often a check-in reads the day's accession counter again after racing check-ins took the next number.
const ACCESSION_ATTEMPTS: usize = 64;

/// A booking changed between the read and the write: 412 when the caller named a version, else 409.
fn changed_meanwhile(expected: Option<Expected>) -> ServiceError {
    if expected.is_some() {
        ServiceError::VersionMismatch
    } else {
        ServiceError::conflict("booking-changed", "the booking changed meanwhile; read it again")
    }
}

/// A booking status as the API writes it.
fn status_word(status: BookingStatus) -> String {
    serde_json::to_string(&status)
        .unwrap_or_default()
        .trim_matches('"')
        .to_owned()
}

fn hold_expired() -> ServiceError {
    ServiceError::conflict(
        "hold-expired",
        "the hold expired and its place may be someone else's; hold the slot again or book it directly",
    )
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
    sites: Sites,
}

impl Bookings {
    /// Bookings over `store`, resolving tests in `catalog`, at the sites of `sites`.
    pub fn new(store: Store, catalog: Catalog, sites: Sites) -> Self {
        Self { store, catalog, sites }
    }

    /// Every slot of the default site's `date` with its free places (one Query).
    ///
    /// # Errors
    /// Engine failures.
    pub async fn slots(&self, date: Date) -> Result<Vec<SlotAvailability>, ServiceError> {
        self.sites.slots(crate::domain::site::DEFAULT_SITE, date).await
    }

    /// Books `new` for `patient_id` at its site: a strongly consistent read of the site's day (its rule and
    /// places; with a hold, the hold's place is found there) and one transaction that takes a free place under
    /// the capacity condition, or turns the hold's place into the booking's. A racing writer that took the
    /// place first makes it read again (at most [`PLACE_ATTEMPTS`] times). Staff skip the minimum notice.
    ///
    /// A request refused before its transaction (the slot is full now, its hold is gone, the notice has passed)
    /// may be the repeat of one that booked: the key's record is looked up then, and wins.
    ///
    /// # Errors
    /// [`ServiceError::Invalid`] for a bad site, slot or tests, [`ServiceError::Conflict`] `slot-full`,
    /// `already-booked` or `hold-expired`, [`ServiceError::NotFound`] for an unknown patient or hold,
    /// [`ServiceError::Invalid`] on `Idempotency-Key` when the key was used for another request.
    pub async fn create(
        &self,
        patient_id: Uuid,
        idempotency: &IdempotencyKey,
        new: NewBooking,
        staff: bool,
        audit: &AuditDraft,
    ) -> Result<Booked, ServiceError> {
        match self.book(patient_id, idempotency, new, staff, audit).await {
            Err(e @ (ServiceError::Invalid(_) | ServiceError::Conflict { .. } | ServiceError::NotFound(_))) => {
                match self.store.idempotency_record(idempotency).await? {
                    Some(record) => replayed(record, idempotency),
                    None => Err(e),
                }
            }
            other => other,
        }
    }

    async fn book(
        &self,
        patient_id: Uuid,
        idempotency: &IdempotencyKey,
        new: NewBooking,
        staff: bool,
        audit: &AuditDraft,
    ) -> Result<Booked, ServiceError> {
        let mut errors = Vec::new();
        let site = match self.sites.named(new.site.as_deref()).await {
            Ok(site) => Some(site),
            Err(ServiceError::Invalid(e)) => {
                errors.extend(e);
                None
            }
            Err(e) => return Err(e),
        };
        let tests = self.booked_tests(&new.tests, &mut errors).await?;
        if new.tests.is_empty() || new.tests.len() > MAX_TESTS {
            errors.push(FieldError::new(
                "tests",
                format!("must hold 1 to {MAX_TESTS} test type codes"),
            ));
        }
        let Some(mut site) = site.filter(|_| errors.is_empty()) else {
            return Err(ServiceError::Invalid(errors));
        };

        let mut attempt = 0;
        while attempt < PLACE_ATTEMPTS {
            attempt += 1;
            let now = OffsetDateTime::now_utc();
            // A hold was checked against the minimum notice when it was made; the day may have closed since.
            let (slot, day) = self
                .sites
                .day_for(&site, new.slot_start, now, !staff && new.hold_id.is_none())
                .await?;
            let (place, take) = match new.hold_id {
                Some(id) => {
                    let empty = crate::domain::site::Places::default();
                    let places = day.places.get(&slot.start).unwrap_or(&empty);
                    let Some((place, _, until)) = places.hold(id).filter(|(_, p, _)| *p == patient_id) else {
                        return Err(ServiceError::NotFound("hold"));
                    };
                    if until < now.unix_timestamp() {
                        return Err(hold_expired());
                    }
                    let unchanged = Unchanged {
                        site_version: site.version,
                        rule_version: day.rule.as_ref().map(|(_, v)| *v),
                        slot_version: None,
                    };
                    (place, PlaceTake::Hold { id, unchanged })
                }
                None => {
                    let Some((place, unchanged)) = pick_place(&day, &site, slot.start, now.unix_timestamp()) else {
                        return Err(slot_full(slot.start));
                    };
                    (place, PlaceTake::Free(unchanged))
                }
            };
            let created = timefmt::now();
            let booking = Booking {
                id: Uuid::now_v7(),
                patient_id,
                site: site.definition.code.clone(),
                slot_start: slot.start,
                local_slot_start: slot.local_start(),
                place,
                rescheduled_from: Vec::new(),
                checked_in_at: None,
                accession: None,
                results_without_check_in: false,
                status: BookingStatus::Booked,
                tests: tests.clone(),
                note: new.note.clone(),
                version: 1,
                created_at: created.clone(),
                updated_at: created,
            };
            let outcome = self
                .store
                .create_booking(
                    &booking,
                    take,
                    now.unix_timestamp(),
                    idempotency,
                    idempotency_expiry(),
                    &audit.event(patient_id),
                    &[
                        DomainEvent::booking(EventType::BookingCreated, patient_id, booking.id, &booking.created_at)
                            .with("site", &booking.site)
                            .with("slotStart", booking.slot_start)
                            .with("tests", booking.tests.len()),
                    ],
                    attempt == 1,
                )
                .await?;
            return match outcome {
                BookOutcome::Booked => Ok(Booked {
                    booking,
                    replayed: false,
                }),
                BookOutcome::PlaceTaken | BookOutcome::RuleMoved => continue,
                BookOutcome::SiteMoved => {
                    site = self.sites.refresh(&site.definition.code).await?;
                    continue;
                }
                BookOutcome::KeyUsed(record) => match record {
                    Some(record) => replayed(*record, idempotency),
                    None => match self.store.idempotency_record(idempotency).await? {
                        Some(record) => replayed(record, idempotency),
                        // The token was used by a request that did not book (a cancelled transaction binds it
                        // too, for 10 minutes): try again without it; the record's own condition still stops
                        // a repeat of a request that did book.
                        None if attempt == 1 => continue,
                        None => self.replay(idempotency, None).await,
                    },
                },
                BookOutcome::AlreadyBooked => Err(ServiceError::conflict(
                    "already-booked",
                    format!(
                        "this patient has a booking at {} already; add tests to it or cancel it first",
                        booking.slot_start
                    ),
                )),
                BookOutcome::HoldLost => Err(hold_expired()),
                BookOutcome::NoPatient => Err(ServiceError::NotFound("patient")),
            };
        }
        Err(ServiceError::Unavailable("the slot is contended; retry".into()))
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
        staff: bool,
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
        if booking.status != BookingStatus::Booked {
            return Err(ServiceError::conflict(
                "not-booked",
                format!(
                    "the booking is {} and can no longer be cancelled",
                    status_word(booking.status)
                ),
            ));
        }
        if !staff {
            let site = self.sites.get(&booking.site).await?;
            if site.within_notice(booking.slot_start.at(), OffsetDateTime::now_utc()) {
                return Err(ServiceError::conflict(
                    "too-late",
                    format!(
                        "the slot starts within the site's minimum notice of {} minutes; ask the lab to cancel it",
                        site.definition.minimum_notice_minutes
                    ),
                ));
            }
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
                &[DomainEvent::booking(
                    EventType::BookingCancelled,
                    patient_id,
                    cancelled.id,
                    &cancelled.updated_at,
                )
                .with("site", &cancelled.site)
                .with("slotStart", cancelled.slot_start)],
            )
            .await?;
        match (outcome, idempotency) {
            (CancelOutcome::Cancelled, _) => Ok(Booked {
                booking: cancelled,
                replayed: false,
            }),
            (CancelOutcome::KeyUsed(record), Some(key)) => self.replay(key, record.map(|r| *r)).await,
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

    /// Moves a booking to `slot_start` at `site` (its own site when `None`): one read of the booking tree, a
    /// strongly consistent read of the new day, and ONE transaction that gives the old place back, takes a new
    /// one under the capacity condition and moves every key derived from the slot. A patient may not move a
    /// booking within the minimum notice of its old slot, nor into a slot within it; staff may.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`]; [`ServiceError::VersionMismatch`]; [`ServiceError::Invalid`] for a slot the
    /// site does not offer (or the slot it is in); [`ServiceError::Conflict`] `slot-full`, `already-cancelled`,
    /// `results-recorded`, `already-booked`, `too-late`, `not-booked`.
    #[expect(
        clippy::too_many_arguments,
        reason = "one use case's inputs, each named by its caller"
    )]
    pub async fn reschedule(
        &self,
        patient_id: Uuid,
        booking_id: Uuid,
        expected: Expected,
        slot_start: OffsetDateTime,
        site: Option<&str>,
        staff: bool,
        audit: &AuditDraft,
    ) -> Result<Booking, ServiceError> {
        let tree = self.tree(patient_id, booking_id).await?;
        let old = tree.booking;
        if !expected.admits(old.version) {
            return Err(ServiceError::VersionMismatch);
        }
        match old.status {
            BookingStatus::Booked => {}
            BookingStatus::Cancelled => {
                return Err(ServiceError::conflict("already-cancelled", "the booking is cancelled"));
            }
            other => {
                return Err(ServiceError::conflict(
                    "not-booked",
                    format!("the booking is {} and can no longer be moved", status_word(other)),
                ));
            }
        }
        if old.tests.iter().any(|t| t.status != TestStatus::Ordered) || !tree.results.is_empty() {
            return Err(ServiceError::conflict(
                "results-recorded",
                "a result has been recorded for this booking; it can no longer be moved",
            ));
        }
        let mut site = self.sites.named(Some(site.unwrap_or(&old.site))).await?;
        if !staff {
            let old_site = self.sites.get(&old.site).await?;
            if old_site.within_notice(old.slot_start.at(), OffsetDateTime::now_utc()) {
                return Err(ServiceError::conflict(
                    "too-late",
                    format!(
                        "the booked slot starts within the site's minimum notice of {} minutes; ask the lab to move it",
                        old_site.definition.minimum_notice_minutes
                    ),
                ));
            }
        }
        for _ in 0..PLACE_ATTEMPTS {
            let now = OffsetDateTime::now_utc();
            let (slot, day) = self.sites.day_for(&site, slot_start, now, !staff).await?;
            if slot.start == old.slot_start && site.definition.code == old.site {
                return Err(ServiceError::Invalid(vec![FieldError::new(
                    "slotStart",
                    "is the slot the booking is in already",
                )]));
            }
            let (place, unchanged) =
                pick_place(&day, &site, slot.start, now.unix_timestamp()).ok_or_else(|| slot_full(slot.start))?;
            let moved_at = timefmt::now();
            let mut history = old.rescheduled_from.clone();
            history.push(crate::domain::booking::Rescheduled {
                site: old.site.clone(),
                slot_start: old.slot_start,
                local_slot_start: old.local_slot_start.clone(),
                moved_at: moved_at.clone(),
            });
            let moved = Booking {
                site: site.definition.code.clone(),
                slot_start: slot.start,
                local_slot_start: slot.local_start(),
                place,
                rescheduled_from: history,
                version: old.version + 1,
                updated_at: moved_at,
                ..old.clone()
            };
            match self
                .store
                .reschedule_booking(
                    &old,
                    &moved,
                    unchanged,
                    now.unix_timestamp(),
                    &audit.event(patient_id),
                    &[
                        DomainEvent::booking(EventType::BookingRescheduled, patient_id, moved.id, &moved.updated_at)
                            .with("from", old.slot_start)
                            .with("fromSite", &old.site)
                            .with("site", &moved.site)
                            .with("slotStart", moved.slot_start),
                    ],
                )
                .await?
            {
                RescheduleOutcome::Moved => return Ok(moved),
                RescheduleOutcome::PlaceTaken | RescheduleOutcome::RuleMoved => continue,
                RescheduleOutcome::SiteMoved => site = self.sites.refresh(&site.definition.code).await?,
                RescheduleOutcome::BookingChanged => return Err(ServiceError::VersionMismatch),
                RescheduleOutcome::ResultRecorded => {
                    return Err(ServiceError::conflict(
                        "results-recorded",
                        "a result has been recorded for this booking; it can no longer be moved",
                    ));
                }
                RescheduleOutcome::AlreadyBooked => {
                    return Err(ServiceError::conflict(
                        "already-booked",
                        format!("this patient has another booking at {} already", moved.slot_start),
                    ));
                }
            }
        }
        Err(ServiceError::Unavailable("the slot is contended; retry".into()))
    }

    /// Checks the patient in (lab): `checked-in`, `checkedInAt`, and the next accession number of the site's
    /// day (`<SITE>-<YYYYMMDD>-<0001>`), taken in the same transaction that checks in. Not before the slot's
    /// local day; never for a cancelled booking.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`]; [`ServiceError::VersionMismatch`]; [`ServiceError::Conflict`] `too-early`,
    /// `already-cancelled`, `not-booked`.
    pub async fn check_in(
        &self,
        patient_id: Uuid,
        booking_id: Uuid,
        expected: Option<Expected>,
        audit: &AuditDraft,
    ) -> Result<Booking, ServiceError> {
        let booking = self.bookable(patient_id, booking_id, expected, "checked in").await?;
        let site = self.sites.get(&booking.site).await?;
        let today = site.local_date(OffsetDateTime::now_utc());
        let day = booking.local_date();
        if day > today {
            return Err(ServiceError::conflict(
                "too-early",
                format!("check-in opens on the slot's day, {day} at the site"),
            ));
        }
        // Each lost race means another check-in of that day committed, so a check-in can lose once per
        // concurrent check-in: allow more attempts than for a place.
        for _ in 0..ACCESSION_ATTEMPTS {
            let last = self.store.last_accession(&booking.site, day).await?;
            let number = format!(
                "{}-{:04}{:02}{:02}-{:04}",
                booking.site,
                day.year(),
                u8::from(day.month()),
                day.day(),
                last + 1
            );
            let now = timefmt::now();
            let checked = Booking {
                status: BookingStatus::CheckedIn,
                checked_in_at: Some(now.clone()),
                accession: Some(number),
                version: booking.version + 1,
                updated_at: now,
                ..booking.clone()
            };
            match self
                .store
                .change_booking_status(
                    &booking,
                    &checked,
                    Some(last),
                    &audit.event(patient_id),
                    &[
                        DomainEvent::booking(EventType::BookingCheckedIn, patient_id, checked.id, &checked.updated_at)
                            .with("accession", checked.accession.as_deref().unwrap_or_default()),
                    ],
                )
                .await?
            {
                StatusOutcome::Changed => return Ok(checked),
                StatusOutcome::NumberTaken => continue,
                StatusOutcome::BookingChanged => return Err(changed_meanwhile(expected)),
            }
        }
        Err(ServiceError::Unavailable(
            "the accession counter is contended; retry".into(),
        ))
    }

    /// Marks a booking whose slot has started as a no-show (lab).
    ///
    /// # Errors
    /// [`ServiceError::NotFound`]; [`ServiceError::VersionMismatch`]; [`ServiceError::Conflict`] `too-early`,
    /// `already-cancelled`, `not-booked`.
    pub async fn no_show(
        &self,
        patient_id: Uuid,
        booking_id: Uuid,
        expected: Option<Expected>,
        audit: &AuditDraft,
    ) -> Result<Booking, ServiceError> {
        let booking = self
            .bookable(patient_id, booking_id, expected, "marked a no-show")
            .await?;
        if booking.slot_start.at() > OffsetDateTime::now_utc() {
            return Err(ServiceError::conflict(
                "too-early",
                format!(
                    "the slot starts at {}; a no-show can be recorded only after that",
                    booking.slot_start
                ),
            ));
        }
        let now = timefmt::now();
        let missed = Booking {
            status: BookingStatus::NoShow,
            version: booking.version + 1,
            updated_at: now,
            ..booking.clone()
        };
        match self
            .store
            .change_booking_status(
                &booking,
                &missed,
                None,
                &audit.event(patient_id),
                &[DomainEvent::booking(
                    EventType::BookingNoShow,
                    patient_id,
                    missed.id,
                    &missed.updated_at,
                )],
            )
            .await?
        {
            StatusOutcome::Changed => Ok(missed),
            StatusOutcome::NumberTaken => Err(ServiceError::Internal("a no-show takes no number".into())),
            StatusOutcome::BookingChanged => Err(changed_meanwhile(expected)),
        }
    }

    /// The booking, if it is still `booked` at `expected`; else the answer why `what` cannot happen to it.
    async fn bookable(
        &self,
        patient_id: Uuid,
        booking_id: Uuid,
        expected: Option<Expected>,
        what: &str,
    ) -> Result<Booking, ServiceError> {
        let booking = self.tree(patient_id, booking_id).await?.booking;
        if expected.is_some_and(|e| !e.admits(booking.version)) {
            return Err(ServiceError::VersionMismatch);
        }
        match booking.status {
            BookingStatus::Booked => Ok(booking),
            BookingStatus::Cancelled => Err(ServiceError::conflict(
                "already-cancelled",
                format!("the booking is cancelled and cannot be {what}"),
            )),
            other => Err(ServiceError::conflict(
                "not-booked",
                format!("the booking is {} and cannot be {what}", status_word(other)),
            )),
        }
    }

    /// A page of one site's local day's bookings in slot order (one Query on the day index).
    ///
    /// # Errors
    /// [`ServiceError::Invalid`] naming `site` for an unknown site; engine failures.
    pub async fn schedule(
        &self,
        site: Option<&str>,
        date: Date,
        limit: i32,
        start: Option<&Cursor>,
    ) -> Result<Page<BookingSummary>, ServiceError> {
        let site = self.sites.named(site).await?;
        Ok(self
            .store
            .schedule(&site.definition.code, date, limit, Cursor::key(start))
            .await?
            .into())
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
