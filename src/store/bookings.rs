//! Slots, bookings, results, notes, and the lab's and doctors' index views.
//!
//! Every multi-item change is one TransactWriteItems whose conditions carry the invariant (slot capacity,
//! versions, "no result yet"). Each action carries a label, and each write returns its own outcome type
//! built from the labels whose condition failed: the service never sees positions or reason codes.

use std::collections::HashMap;

use time::{Date, OffsetDateTime};
use uuid::Uuid;

use super::{
    Page, PageKey, Store, StoreError,
    expr::Expr,
    from_item,
    items::{
        AccessionItem, BookingItem, IdempotencyItem, NoteItem, ObservationItem, PatientSlotItem, PlaceItem, ResultItem,
        ResultRevisionItem, TestItem, attr, entity,
    },
    key, keys, s,
    sites::{Unchanged, site_unchanged, take_free_place},
    to_item,
    tx::{Sent, Tx, TxResult},
};
use crate::domain::{
    audit::AuditEvent,
    booking::{
        Booking, BookingStatus, BookingSummary, BookingTree, DateRange, LabResult, Note, Observation, PreviousValue,
        ScheduledTest, TestAddress, TestStatus, WorklistEntry,
    },
    event::DomainEvent,
    idempotency::{IdempotencyKey, IdempotencyRecord},
    test_type::TestType,
};

/// One of the two queues of results someone must act on (partitions of one sparse index).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queue {
    /// Recorded, awaiting a second lab user's verification.
    Verification,
    /// Verified, awaiting a doctor's review.
    Review,
}

/// What a delta check asks of a patient's series: the latest value of `loinc` collected from `from` up to,
/// not including, `before`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviousQuery {
    /// LOINC code.
    pub loinc: String,
    /// Earliest collection instant (as stored).
    pub from: String,
    /// Collection instant of the new value: only earlier ones count.
    pub before: String,
}

/// How a booking takes its place in the slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaceTake {
    /// A free place (absent, or an expired hold's), with the site, day and (over capacity) slot as read.
    Free(Unchanged),
    /// The place this live hold has, on a site and day as read; the hold goes with it.
    Hold {
        /// The hold.
        id: Uuid,
        /// The site and day as read.
        unchanged: Unchanged,
    },
}

/// The actions of [`Store::create_booking`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BookAction {
    /// Takes the booking's place: free, or held by the booking's own live hold.
    Slot,
    /// The site is what was read.
    Site,
    /// The day's rule is what was read.
    Rule,
    /// The converted hold's item goes (unconditional).
    Hold,
    /// The patient's marker of the converted hold goes (only that hold's).
    HoldMarker,
    /// The patient exists.
    Patient,
    /// The idempotency record is new (or its predecessor expired).
    Key,
    /// The patient holds no booking of this slot yet.
    PatientSlot,
    /// The booking item is new.
    Booking,
    /// A test item is new.
    Test,
    /// The audit event is new.
    Audit,
    /// A domain event is new.
    Event,
}

/// How [`Store::create_booking`] ended.
#[derive(Debug, Clone, PartialEq)]
pub enum BookOutcome {
    /// Written.
    Booked,
    /// The idempotency key was used before: the record of its first request, when the engine returned it
    /// with the rejection (else read it with [`Store::idempotency_record`]). Wins over the other rejections: a
    /// repeat of a request that succeeded before the slot filled must get its first answer.
    KeyUsed(Option<Box<IdempotencyRecord>>),
    /// The patient has a booking of this slot already.
    AlreadyBooked,
    /// The place was taken since the day was read: read again and pick another.
    PlaceTaken,
    /// The day's rule changed since it was read: read again.
    RuleMoved,
    /// The site changed since it was read (on another replica): read it again.
    SiteMoved,
    /// The hold expired (its place may be someone else's now) or is not this booking's.
    HoldLost,
    /// No such patient.
    NoPatient,
}

/// The actions of [`Store::cancel_booking`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CancelAction {
    /// The booking is still `booked`, at the version the caller read.
    Booking,
    /// The booking's place is given back (it must be this booking's).
    Slot,
    /// The idempotency record is new (or its predecessor expired).
    Key,
    /// The patient's hold on the slot goes (unconditional).
    PatientSlot,
    /// A test is still `ordered` (no result recorded).
    Test,
    /// The audit event is new.
    Audit,
    /// A domain event is new.
    Event,
}

/// How [`Store::cancel_booking`] ended.
#[derive(Debug, Clone, PartialEq)]
pub enum CancelOutcome {
    /// Written.
    Cancelled,
    /// The idempotency key was used before (see [`BookOutcome::KeyUsed`]).
    KeyUsed(Option<Box<IdempotencyRecord>>),
    /// The booking was cancelled or changed since it was read.
    BookingChanged,
    /// A result was recorded for one of its tests since it was read.
    ResultRecorded,
}

/// The actions of [`Store::reschedule_booking`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MoveAction {
    /// The booking is still `booked`, at the version the caller read.
    Booking,
    /// The old place is given back (it must be this booking's).
    OldPlace,
    /// The new place is free.
    NewPlace,
    /// The new site is what was read.
    Site,
    /// The new day's rule is what was read.
    Rule,
    /// The patient's hold on the old slot goes (only this booking's).
    OldPatientSlot,
    /// The patient holds no booking of the new slot.
    NewPatientSlot,
    /// A test is still `ordered` (no result) and moves its tests-by-type keys.
    Test,
    /// The audit event is new.
    Audit,
    /// A domain event is new.
    Event,
}

/// How [`Store::reschedule_booking`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RescheduleOutcome {
    /// Moved.
    Moved,
    /// The booking was cancelled or changed since it was read.
    BookingChanged,
    /// The new place was taken since the day was read: read again and pick another.
    PlaceTaken,
    /// The new day's rule changed since it was read: read again.
    RuleMoved,
    /// The new site changed since it was read (on another replica): read it again.
    SiteMoved,
    /// The patient has another booking in the new slot.
    AlreadyBooked,
    /// A result was recorded for one of its tests since it was read.
    ResultRecorded,
}

/// The actions of a booking's status change (check-in, no-show).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StatusAction {
    /// The booking is still `booked`, at the version the caller read.
    Booking,
    /// The day's accession counter is still at the number read (check-in only).
    Counter,
    /// The audit event is new.
    Audit,
    /// A domain event is new.
    Event,
}

/// How a booking's status change ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusOutcome {
    /// Written.
    Changed,
    /// The booking was changed since it was read.
    BookingChanged,
    /// Another check-in took the next accession number meanwhile: read the counter again.
    NumberTaken,
}

/// The actions of [`Store::save_result`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ResultAction {
    /// The current result is new, or still at the version the caller read.
    Current,
    /// The revision's kept copy (unconditional).
    Revision,
    /// An observation of a verified value, written or removed (unconditional).
    Observation,
    /// The test exists and is not cancelled.
    Test,
    /// The audit event is new.
    Audit,
    /// A domain event is new.
    Event,
}

/// How [`Store::save_result`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveResultOutcome {
    /// Written.
    Saved,
    /// The current result is not at the version the caller read (or appeared meanwhile).
    VersionMoved,
    /// The test was cancelled meanwhile.
    TestCancelled,
}

/// The actions of [`Store::add_note`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NoteAction {
    /// The test exists and is not cancelled (the item comes back when it fails).
    Test,
    /// The note is new.
    Note,
    /// The audit event is new.
    Audit,
}

/// How [`Store::add_note`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoteOutcome {
    /// Written.
    Added,
    /// No such test.
    NoTest,
    /// The test was cancelled with its booking.
    TestCancelled,
}

impl Store {
    #[expect(
        clippy::too_many_arguments,
        reason = "one transaction's inputs, each named by its caller"
    )]
    fn book_tx(
        &self,
        booking: &Booking,
        take: PlaceTake,
        now: i64,
        idempotency: &IdempotencyKey,
        expires_at: i64,
        audit: &AuditEvent,
        events: &[DomainEvent],
    ) -> Result<Tx<BookAction>, StoreError> {
        let day = keys::site_day_pk(&booking.site, booking.local_date());
        let place = keys::place_attribute(booking.place);
        let taken = Expr::new()
            .set(attr::ENTITY, entity::SLOT)
            .set(attr::SLOT_START, booking.slot_start)
            .set(
                &place,
                PlaceItem {
                    booking: Some(booking.id),
                    hold: None,
                    until: None,
                    patient: None,
                },
            );
        let mut tx = Tx::new(self);
        let unchanged = match take {
            PlaceTake::Free(unchanged) => {
                tx.update(
                    BookAction::Slot,
                    key(day.clone(), keys::site_slot_sk(booking.slot_start)),
                    take_free_place(taken, &place, now, unchanged.slot_version),
                )?;
                unchanged
            }
            PlaceTake::Hold { id, unchanged } => {
                tx.update(
                    BookAction::Slot,
                    key(day.clone(), keys::site_slot_sk(booking.slot_start)),
                    taken
                        .field_eq(&place, attr::PLACE_HOLD, id)
                        .field_ge(&place, attr::PLACE_UNTIL, now),
                )?;
                tx.delete(BookAction::Hold, key(keys::hold_pk(id), keys::HOLD_SK), Expr::new())?;
                tx.delete(
                    BookAction::HoldMarker,
                    key(
                        keys::patient_pk(booking.patient_id),
                        keys::patient_hold_sk(&booking.site),
                    ),
                    Expr::new().absent_or_eq(attr::HOLD_ID, id),
                )?;
                unchanged
            }
        };
        tx.check(
            BookAction::Site,
            key(keys::SITES_PK, keys::site_sk(&booking.site)),
            site_unchanged(unchanged.site_version),
        )?;
        tx.check(
            BookAction::Rule,
            key(day, keys::DAY_RULE_SK),
            super::sites::rule_unchanged(unchanged.rule_version),
        )?;
        tx.check(
            BookAction::Patient,
            key(keys::patient_pk(booking.patient_id), keys::PATIENT_PROFILE_SK),
            Expr::new().exists(keys::PK),
        )?;
        let record = IdempotencyItem::new(idempotency, booking, expires_at);
        tx.put_returning_old(BookAction::Key, to_item(&record)?, Expr::new().absent_or_expired())?;
        tx.put_new(BookAction::PatientSlot, to_item(&PatientSlotItem::new(booking))?)?;
        tx.put_new(BookAction::Booking, to_item(&BookingItem::from(booking))?)?;
        for test in &booking.tests {
            tx.put_new(BookAction::Test, to_item(&TestItem::new(booking, test))?)?;
        }
        tx.put_new(BookAction::Audit, self.audit_item(audit)?)?;
        self.put_events(&mut tx, BookAction::Event, events)?;
        Ok(tx)
    }

    /// Writes a new booking in one transaction: it takes its place (`booking.place`) as `take` says (free at
    /// `now`, epoch seconds, on an unchanged day; or from its own live hold), the patient must exist, the
    /// idempotency record (kept until `expires_at`, epoch seconds) must be new or its predecessor expired,
    /// the patient's hold on the slot must be new, then the booking, each test and the audit event.
    /// `first_attempt` sends the key's ClientRequestToken; a retry with another place goes without it (the
    /// idempotency record's own condition keeps it idempotent).
    ///
    /// # Errors
    /// Engine failures.
    #[expect(
        clippy::too_many_arguments,
        reason = "one transaction's inputs, each named by its caller"
    )]
    pub async fn create_booking(
        &self,
        booking: &Booking,
        take: PlaceTake,
        now: i64,
        idempotency: &IdempotencyKey,
        expires_at: i64,
        audit: &AuditEvent,
        events: &[DomainEvent],
        first_attempt: bool,
    ) -> Result<BookOutcome, StoreError> {
        let tx = self.book_tx(booking, take, now, idempotency, expires_at, audit, events)?;
        let token = first_attempt.then(|| idempotency.token());
        Ok(match self.send_keyed(tx, token).await? {
            TxResult::Committed => BookOutcome::Booked,
            TxResult::TokenReused => BookOutcome::KeyUsed(None),
            TxResult::Rejected(mut r) if r.has(BookAction::Key) => {
                BookOutcome::KeyUsed(record_of(r.take_item(BookAction::Key))?.map(Box::new))
            }
            TxResult::Rejected(r) if r.has(BookAction::PatientSlot) => BookOutcome::AlreadyBooked,
            TxResult::Rejected(r) if r.has(BookAction::Site) => BookOutcome::SiteMoved,
            TxResult::Rejected(r) if r.has(BookAction::Rule) => BookOutcome::RuleMoved,
            TxResult::Rejected(r)
                if (r.has(BookAction::Slot) || r.has(BookAction::HoldMarker))
                    && matches!(take, PlaceTake::Hold { .. }) =>
            {
                BookOutcome::HoldLost
            }
            TxResult::Rejected(r) if r.has(BookAction::Slot) => BookOutcome::PlaceTaken,
            TxResult::Rejected(r) if r.has(BookAction::Patient) => BookOutcome::NoPatient,
            TxResult::Rejected(r) => return Err(r.unexpected()),
        })
    }

    /// The idempotency record of `key`, unless it expired (TTL deletes lazily).
    ///
    /// # Errors
    /// Engine failures.
    pub async fn idempotency_record(&self, key: &IdempotencyKey) -> Result<Option<IdempotencyRecord>, StoreError> {
        let item = self
            .get(
                keys::idempotency_pk(&key.caller, &key.key),
                keys::IDEMPOTENCY_SK.to_owned(),
            )
            .await?;
        record_of(item)
    }

    /// A page of a patient's bookings in slot order with slots in `range`, optionally of one status (one
    /// Query on the LSI; the status is a filter).
    ///
    /// # Errors
    /// Engine failures.
    pub async fn list_bookings(
        &self,
        patient_id: Uuid,
        range: DateRange,
        status: Option<BookingStatus>,
        limit: i32,
        start: Option<&PageKey>,
    ) -> Result<Page<BookingSummary>, StoreError> {
        let (lo, hi) = keys::day_bounds(range);
        let query = self
            .query_builder()
            .index_name(keys::LSI_BOOKINGS_BY_SLOT)
            .key_condition_expression("#pk = :pk AND #sk BETWEEN :lo AND :hi")
            .expression_attribute_names("#pk", keys::PK)
            .expression_attribute_names("#sk", keys::LSI1_SK)
            .expression_attribute_values(":pk", s(keys::patient_pk(patient_id)))
            .expression_attribute_values(":lo", s(lo))
            .expression_attribute_values(":hi", s(hi));
        let query = match status {
            Some(status) => Self::filtered(query, Expr::new().eq(attr::STATUS, status))?,
            None => query,
        };
        let key = [keys::PK, keys::SK, keys::LSI1_SK];
        self.query_page(query, limit, start, &key, BookingItem::into_summary)
            .await
    }

    /// A booking with its tests, current results and notes: one Query on the booking's key prefix.
    ///
    /// # Errors
    /// Engine failures, malformed items.
    pub async fn booking_tree(&self, patient_id: Uuid, booking_id: Uuid) -> Result<Option<BookingTree>, StoreError> {
        let mut booking = None;
        let mut tests = HashMap::new();
        let mut results = HashMap::new();
        let mut notes: HashMap<Uuid, Vec<Note>> = HashMap::new();
        let items = self
            .query_all(
                self.query_builder()
                    .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                    .expression_attribute_names("#pk", keys::PK)
                    .expression_attribute_names("#sk", keys::SK)
                    .expression_attribute_values(":pk", s(keys::patient_pk(patient_id)))
                    .expression_attribute_values(":prefix", s(keys::booking_sk(booking_id))),
            )
            .await?;
        for item in items {
            let kind = item
                .get(attr::ENTITY)
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default();
            match kind.as_str() {
                entity::BOOKING => booking = Some(from_item::<BookingItem>(item)?),
                entity::TEST => {
                    let test: TestItem = from_item(item)?;
                    tests.insert(test.test_id, test.status);
                }
                entity::RESULT => {
                    let result: ResultItem = from_item(item)?;
                    results.insert(result.test_id, result.result.interpreted());
                }
                entity::NOTE => {
                    let note: NoteItem = from_item(item)?;
                    notes.entry(note.test_id).or_default().push(note.note);
                }
                other => return Err(StoreError::Corrupt(format!("unexpected {other} in a booking tree"))),
            }
        }
        Ok(booking.map(|b| BookingTree {
            booking: b.into_booking(|id| tests.get(&id).copied(), TestStatus::Ordered),
            results,
            notes,
        }))
    }

    fn cancel_tx(
        &self,
        cancelled: &Booking,
        expected_version: u64,
        idempotency: Option<(&IdempotencyKey, i64)>,
        release_hold: bool,
        audit: &AuditEvent,
        events: &[DomainEvent],
    ) -> Result<Tx<CancelAction>, StoreError> {
        let patient_pk = keys::patient_pk(cancelled.patient_id);
        let mut tx = Tx::new(self);
        tx.update(
            CancelAction::Booking,
            key(patient_pk.clone(), keys::booking_sk(cancelled.id)),
            Expr::new()
                .set(attr::STATUS, BookingStatus::Cancelled)
                .set(attr::VERSION, cancelled.version)
                .set(attr::UPDATED_AT, &cancelled.updated_at)
                .eq(attr::STATUS, BookingStatus::Booked)
                .eq(attr::VERSION, expected_version),
        )?;
        let place = keys::place_attribute(cancelled.place);
        tx.update(
            CancelAction::Slot,
            key(
                keys::site_day_pk(&cancelled.site, cancelled.local_date()),
                keys::site_slot_sk(cancelled.slot_start),
            ),
            Expr::new()
                .remove(&place)
                .field_eq(&place, attr::PLACE_BOOKING, cancelled.id),
        )?;
        if let Some((key, expires_at)) = idempotency {
            let record = IdempotencyItem::new(key, cancelled, expires_at);
            tx.put_returning_old(CancelAction::Key, to_item(&record)?, Expr::new().absent_or_expired())?;
        }
        if release_hold {
            // Only this booking's hold: a booking made before holds existed has none, and the hold there may
            // be a newer booking's.
            tx.delete(
                CancelAction::PatientSlot,
                key(patient_pk.clone(), keys::patient_slot_sk(cancelled.slot_start)),
                Expr::new().absent_or_eq(attr::BOOKING_ID, cancelled.id),
            )?;
        }
        for test in &cancelled.tests {
            tx.update(
                CancelAction::Test,
                key(patient_pk.clone(), keys::test_sk(cancelled.id, test.id)),
                Expr::new()
                    .set(attr::STATUS, TestStatus::Cancelled)
                    .remove(keys::GSI1_PK)
                    .remove(keys::GSI1_SK)
                    .eq(attr::STATUS, TestStatus::Ordered),
            )?;
        }
        tx.put_new(CancelAction::Audit, self.audit_item(audit)?)?;
        self.put_events(&mut tx, CancelAction::Event, events)?;
        Ok(tx)
    }

    /// Cancels a booking in one transaction: the booking (still `booked`, at `expected_version`), its place
    /// (given back), the idempotency record when there is one (kept until its expiry,
    /// epoch seconds), the patient's hold on the slot, each test (still `ordered`: no result recorded; it
    /// also leaves the tests-by-type index) and the audit event.
    ///
    /// # Errors
    /// Engine failures; a place that is not this booking's (data no booking could have left) is an engine error.
    pub async fn cancel_booking(
        &self,
        cancelled: &Booking,
        expected_version: u64,
        idempotency: Option<(&IdempotencyKey, i64)>,
        audit: &AuditEvent,
        events: &[DomainEvent],
    ) -> Result<CancelOutcome, StoreError> {
        let tx = self.cancel_tx(cancelled, expected_version, idempotency, true, audit, events)?;
        let mut sent = self.send_keyed(tx, idempotency.map(|(k, _)| k.token())).await?;
        if let TxResult::Rejected(r) = &sent
            && r.only(CancelAction::PatientSlot)
        {
            // The slot's hold is another booking's (this one predates holds): cancel without touching it.
            // The idempotency record's own condition keeps this retry idempotent.
            // Stamped again: the feed's settle window counts from the send that commits.
            let events = super::events::restamped(events);
            let tx = self.cancel_tx(cancelled, expected_version, idempotency, false, audit, &events)?;
            sent = self.send_keyed(tx, None).await?;
        }
        Ok(match sent {
            TxResult::Committed => CancelOutcome::Cancelled,
            TxResult::TokenReused => CancelOutcome::KeyUsed(None),
            TxResult::Rejected(mut r) if r.has(CancelAction::Key) => {
                CancelOutcome::KeyUsed(record_of(r.take_item(CancelAction::Key))?.map(Box::new))
            }
            TxResult::Rejected(r) if r.has(CancelAction::Booking) => CancelOutcome::BookingChanged,
            TxResult::Rejected(r) if r.has(CancelAction::Test) => CancelOutcome::ResultRecorded,
            TxResult::Rejected(r) => return Err(r.unexpected()),
        })
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "one transaction's inputs, each named by its caller"
    )]
    fn reschedule_tx(
        &self,
        old: &Booking,
        moved: &Booking,
        unchanged: Unchanged,
        now: i64,
        release_old_slot: bool,
        audit: &AuditEvent,
        events: &[DomainEvent],
    ) -> Result<Tx<MoveAction>, StoreError> {
        let patient_pk = keys::patient_pk(old.patient_id);
        let mut tx = Tx::new(self);
        tx.put(
            MoveAction::Booking,
            to_item(&BookingItem::from(moved))?,
            Expr::new()
                .eq(attr::STATUS, BookingStatus::Booked)
                .eq(attr::VERSION, old.version),
        )?;
        let old_place = keys::place_attribute(old.place);
        tx.update(
            MoveAction::OldPlace,
            key(
                keys::site_day_pk(&old.site, old.local_date()),
                keys::site_slot_sk(old.slot_start),
            ),
            Expr::new()
                .remove(&old_place)
                .field_eq(&old_place, attr::PLACE_BOOKING, old.id),
        )?;
        let new_day = keys::site_day_pk(&moved.site, moved.local_date());
        let new_place = keys::place_attribute(moved.place);
        let taken = Expr::new()
            .set(attr::ENTITY, entity::SLOT)
            .set(attr::SLOT_START, moved.slot_start)
            .set(
                &new_place,
                PlaceItem {
                    booking: Some(moved.id),
                    hold: None,
                    until: None,
                    patient: None,
                },
            );
        tx.update(
            MoveAction::NewPlace,
            key(new_day.clone(), keys::site_slot_sk(moved.slot_start)),
            take_free_place(taken, &new_place, now, unchanged.slot_version),
        )?;
        tx.check(
            MoveAction::Site,
            key(keys::SITES_PK, keys::site_sk(&moved.site)),
            site_unchanged(unchanged.site_version),
        )?;
        tx.check(
            MoveAction::Rule,
            key(new_day, keys::DAY_RULE_SK),
            super::sites::rule_unchanged(unchanged.rule_version),
        )?;
        if old.slot_start != moved.slot_start {
            if release_old_slot {
                tx.delete(
                    MoveAction::OldPatientSlot,
                    key(patient_pk.clone(), keys::patient_slot_sk(old.slot_start)),
                    Expr::new().absent_or_eq(attr::BOOKING_ID, old.id),
                )?;
            }
            tx.put_new(MoveAction::NewPatientSlot, to_item(&PatientSlotItem::new(moved))?)?;
        }
        for test in &moved.tests {
            let item = TestItem::new(moved, test);
            tx.update(
                MoveAction::Test,
                key(patient_pk.clone(), keys::test_sk(moved.id, test.id)),
                Expr::new()
                    .set(keys::GSI1_PK, item.gsi1_pk)
                    .set(keys::GSI1_SK, item.gsi1_sk)
                    .set(attr::SLOT_START, moved.slot_start)
                    .eq(attr::STATUS, TestStatus::Ordered),
            )?;
        }
        tx.put_new(MoveAction::Audit, self.audit_item(audit)?)?;
        self.put_events(&mut tx, MoveAction::Event, events)?;
        Ok(tx)
    }

    /// Moves a booking to another slot in ONE transaction: the booking itself (still `booked`, at the version
    /// of `old`; the new slot, site, place, LSI sort key and day index key), the old place given back, the new
    /// place taken (free at `now`, on a day whose rule is at `rule_version`), the patient's slot hold moved,
    /// each test's tests-by-type keys moved (every test still `ordered`), and the audit event: 7 + tests
    /// actions, at most 17 of DynamoDB's 100.
    ///
    /// # Errors
    /// Engine failures; an old place that is not this booking's is an engine error.
    pub async fn reschedule_booking(
        &self,
        old: &Booking,
        moved: &Booking,
        unchanged: Unchanged,
        now: i64,
        audit: &AuditEvent,
        events: &[DomainEvent],
    ) -> Result<RescheduleOutcome, StoreError> {
        let tx = self.reschedule_tx(old, moved, unchanged, now, true, audit, events)?;
        let mut sent = self.send(tx).await?;
        if let Sent::Rejected(r) = &sent
            && r.only(MoveAction::OldPatientSlot)
        {
            // The old slot's hold is another booking's (this one predates holds): move without touching it.
            // Stamped again: the feed's settle window counts from the send that commits.
            let events = super::events::restamped(events);
            let tx = self.reschedule_tx(old, moved, unchanged, now, false, audit, &events)?;
            sent = self.send(tx).await?;
        }
        Ok(match sent {
            Sent::Committed => RescheduleOutcome::Moved,
            Sent::Rejected(r) if r.has(MoveAction::Site) => RescheduleOutcome::SiteMoved,
            Sent::Rejected(r) if r.has(MoveAction::Booking) => RescheduleOutcome::BookingChanged,
            Sent::Rejected(r) if r.has(MoveAction::Test) => RescheduleOutcome::ResultRecorded,
            Sent::Rejected(r) if r.has(MoveAction::NewPatientSlot) => RescheduleOutcome::AlreadyBooked,
            Sent::Rejected(r) if r.has(MoveAction::Rule) => RescheduleOutcome::RuleMoved,
            Sent::Rejected(r) if r.has(MoveAction::NewPlace) => RescheduleOutcome::PlaceTaken,
            Sent::Rejected(r) => return Err(r.unexpected()),
        })
    }

    /// The last accession number given out at `site` on `date` (0 for none), strongly consistent.
    ///
    /// # Errors
    /// Engine failures, a malformed item.
    pub async fn last_accession(&self, site: &str, date: Date) -> Result<u32, StoreError> {
        let item = self
            .get_consistent(keys::accession_pk(site, date), keys::ACCESSION_SK.to_owned())
            .await?;
        Ok(item
            .map(from_item::<AccessionItem>)
            .transpose()?
            .map_or(0, |counter| counter.last))
    }

    fn status_tx(
        &self,
        old: &Booking,
        changed: &Booking,
        accession: Option<u32>,
        audit: &AuditEvent,
        events: &[DomainEvent],
    ) -> Result<Tx<StatusAction>, StoreError> {
        let mut tx = Tx::new(self);
        tx.put(
            StatusAction::Booking,
            to_item(&BookingItem::from(changed))?,
            Expr::new()
                .eq(attr::STATUS, BookingStatus::Booked)
                .eq(attr::VERSION, old.version),
        )?;
        if let Some(last) = accession {
            let counter = AccessionItem {
                pk: keys::accession_pk(&changed.site, changed.local_date()),
                sk: keys::ACCESSION_SK.to_owned(),
                entity: entity::ACCESSION.to_owned(),
                last: last + 1,
            };
            let unchanged = if last == 0 {
                Expr::new().not_exists(keys::PK)
            } else {
                Expr::new().eq(attr::LAST, last)
            };
            tx.put(StatusAction::Counter, to_item(&counter)?, unchanged)?;
        }
        tx.put_new(StatusAction::Audit, self.audit_item(audit)?)?;
        self.put_events(&mut tx, StatusAction::Event, events)?;
        Ok(tx)
    }

    /// Changes a `booked` booking at `old`'s version to `changed` (checked in, or a no-show) in one
    /// transaction with its audit event. A check-in passes the accession number it read (`accession`): the
    /// counter moves from it to the next in the same transaction, so a number is given out exactly when a
    /// check-in commits — unique per site and day, and gapless.
    ///
    /// # Errors
    /// Engine failures.
    pub async fn change_booking_status(
        &self,
        old: &Booking,
        changed: &Booking,
        accession: Option<u32>,
        audit: &AuditEvent,
        events: &[DomainEvent],
    ) -> Result<StatusOutcome, StoreError> {
        let tx = self.status_tx(old, changed, accession, audit, events)?;
        Ok(match self.send(tx).await? {
            Sent::Committed => StatusOutcome::Changed,
            Sent::Rejected(r) if r.has(StatusAction::Booking) => StatusOutcome::BookingChanged,
            Sent::Rejected(r) if r.has(StatusAction::Counter) => StatusOutcome::NumberTaken,
            Sent::Rejected(r) => return Err(r.unexpected()),
        })
    }

    fn result_tx(
        &self,
        at: TestAddress,
        test_type: &TestType,
        result: &LabResult,
        expected_version: Option<u64>,
        audit: &AuditEvent,
        events: &[DomainEvent],
    ) -> Result<Tx<ResultAction>, StoreError> {
        let mut tx = Tx::new(self);
        let current = match expected_version {
            None => Expr::new().not_exists(keys::PK),
            Some(v) => Expr::new().eq(attr::VERSION, v),
        };
        tx.put(
            ResultAction::Current,
            to_item(&ResultItem::new(at, &test_type.definition.code, result))?,
            current,
        )?;
        tx.put(
            ResultAction::Revision,
            to_item(&ResultRevisionItem::new(at, result))?,
            Expr::new(),
        )?;
        // A verified result's values are the patient's observations, each carrying the result's release
        // state: every write of a verified result rewrites them (at most one per analyte, 50), and removes
        // the observation of an analyte this revision no longer has. A correction awaiting verification takes
        // the test's observations out of the series until it is verified: the series never shows values the
        // result itself withholds (nor the old values of a result a doctor holds meanwhile).
        if !result.is_verified()
            && result.corrects.is_some()
            && let Some(collected_at) = &result.collected_at
        {
            for analyte in &test_type.definition.analytes {
                tx.delete(
                    ResultAction::Observation,
                    key(
                        keys::patient_pk(at.patient_id),
                        keys::observation_sk(&analyte.loinc, collected_at, at.test_id),
                    ),
                    Expr::new(),
                )?;
            }
        }
        if result.is_verified()
            && let Some(collected_at) = &result.collected_at
        {
            let observations = result.observations(at, test_type);
            for analyte in &test_type.definition.analytes {
                match observations.iter().find(|o| o.analyte == analyte.code) {
                    Some(o) => tx.put(
                        ResultAction::Observation,
                        to_item(&ObservationItem::new(at.patient_id, o))?,
                        Expr::new(),
                    )?,
                    None => tx.delete(
                        ResultAction::Observation,
                        key(
                            keys::patient_pk(at.patient_id),
                            keys::observation_sk(&analyte.loinc, collected_at, at.test_id),
                        ),
                        Expr::new(),
                    )?,
                }
            }
        }
        let status = match (result.is_verified(), result.review.is_some()) {
            (false, _) => TestStatus::Resulted,
            (true, false) => TestStatus::Verified,
            (true, true) => TestStatus::Reviewed,
        };
        tx.update(
            ResultAction::Test,
            key(
                keys::patient_pk(at.patient_id),
                keys::test_sk(at.booking_id, at.test_id),
            ),
            Expr::new()
                .set(attr::STATUS, status)
                .exists(keys::PK)
                .ne(attr::STATUS, TestStatus::Cancelled),
        )?;
        tx.put_new(ResultAction::Audit, self.audit_item(audit)?)?;
        self.put_events(&mut tx, ResultAction::Event, events)?;
        Ok(tx)
    }

    /// Writes a test's result in one transaction: the current result (new: must not exist; otherwise at
    /// `expected_version`), the revision's kept copy, the observations of a verified result, the test's status
    /// (`resulted`, `verified` or `reviewed`; never on a cancelled test) and the audit event. `test_type` is
    /// the booked version (its analytes name the observations).
    ///
    /// # Errors
    /// Engine failures.
    pub async fn save_result(
        &self,
        at: TestAddress,
        test_type: &TestType,
        result: &LabResult,
        expected_version: Option<u64>,
        audit: &AuditEvent,
        events: &[DomainEvent],
    ) -> Result<SaveResultOutcome, StoreError> {
        let tx = self.result_tx(at, test_type, result, expected_version, audit, events)?;
        Ok(match self.send(tx).await? {
            Sent::Committed => SaveResultOutcome::Saved,
            Sent::Rejected(r) if r.has(ResultAction::Current) => SaveResultOutcome::VersionMoved,
            Sent::Rejected(r) if r.has(ResultAction::Test) => SaveResultOutcome::TestCancelled,
            Sent::Rejected(r) => return Err(r.unexpected()),
        })
    }

    /// A test's current result (GetItem).
    ///
    /// # Errors
    /// Engine failures.
    pub async fn current_result(&self, at: TestAddress) -> Result<Option<LabResult>, StoreError> {
        self.get(
            keys::patient_pk(at.patient_id),
            keys::result_sk(at.booking_id, at.test_id),
        )
        .await?
        .map(|item| from_item::<ResultItem>(item).map(|r| r.result.interpreted()))
        .transpose()
    }

    /// Every kept revision of a test's result, oldest first (one Query).
    ///
    /// # Errors
    /// Engine failures.
    pub async fn result_history(&self, at: TestAddress) -> Result<Vec<LabResult>, StoreError> {
        self.query_all(
            self.query_builder()
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                .expression_attribute_names("#pk", keys::PK)
                .expression_attribute_names("#sk", keys::SK)
                .expression_attribute_values(":pk", s(keys::patient_pk(at.patient_id)))
                .expression_attribute_values(":prefix", s(keys::result_revision_prefix(at.booking_id, at.test_id))),
        )
        .await?
        .into_iter()
        .map(|item| from_item::<ResultRevisionItem>(item).map(|r| r.result.interpreted()))
        .collect()
    }

    /// The patient's previous observation for each query (one Query each, issued together): the latest value
    /// of the LOINC code collected in the window, newest first, Limit 1.
    ///
    /// # Errors
    /// Engine failures.
    pub async fn previous_values(
        &self,
        patient_id: Uuid,
        queries: Vec<PreviousQuery>,
    ) -> Result<HashMap<String, PreviousValue>, StoreError> {
        // Issued together, in this task (a spawned task would leave the request's usage accounting).
        let reads = queries.into_iter().map(|q| async move {
            let (lo, hi) = keys::observation_bounds(&q.loinc, &q.from, &q.before);
            let query = self
                .query_builder()
                .key_condition_expression("#pk = :pk AND #sk BETWEEN :lo AND :hi")
                .expression_attribute_names("#pk", keys::PK)
                .expression_attribute_names("#sk", keys::SK)
                .expression_attribute_values(":pk", s(keys::patient_pk(patient_id)))
                .expression_attribute_values(":lo", s(lo))
                .expression_attribute_values(":hi", s(hi))
                .scan_index_forward(false)
                .consistent_read(true)
                .limit(1);
            let out = self.query(query).await?;
            let latest = out.items.unwrap_or_default().into_iter().next();
            latest
                .map(|item| from_item::<ObservationItem>(item).map(|o| o.observation))
                .transpose()
                .map(|o| (q.loinc, o))
        });
        let mut previous = HashMap::new();
        for (loinc, observation) in futures_util::future::try_join_all(reads).await? {
            if let Some(o) = observation {
                previous.insert(
                    loinc,
                    PreviousValue {
                        value: o.value,
                        unit: o.unit,
                        collected_at: o.collected_at,
                    },
                );
            }
        }
        Ok(previous)
    }

    /// A page of a patient's observations of `loinc` collected from `from` up to, not including, `before`
    /// (instants or dates as stored), oldest first: one Query.
    ///
    /// # Errors
    /// Engine failures.
    pub async fn observations(
        &self,
        patient_id: Uuid,
        loinc: &str,
        from: &str,
        before: &str,
        limit: i32,
        start: Option<&PageKey>,
    ) -> Result<Page<Observation>, StoreError> {
        let (lo, hi) = keys::observation_bounds(loinc, from, before);
        let query = self
            .query_builder()
            .key_condition_expression("#pk = :pk AND #sk BETWEEN :lo AND :hi")
            .expression_attribute_names("#pk", keys::PK)
            .expression_attribute_names("#sk", keys::SK)
            .expression_attribute_values(":pk", s(keys::patient_pk(patient_id)))
            .expression_attribute_values(":lo", s(lo))
            .expression_attribute_values(":hi", s(hi));
        self.query_page(query, limit, start, &[keys::PK, keys::SK], |o: ObservationItem| {
            o.observation
        })
        .await
    }

    fn note_tx(&self, at: TestAddress, note: &Note, audit: &AuditEvent) -> Result<Tx<NoteAction>, StoreError> {
        let pk = keys::patient_pk(at.patient_id);
        let item = NoteItem {
            pk: pk.clone(),
            sk: keys::note_sk(at.booking_id, at.test_id, note.id),
            entity: entity::NOTE.to_owned(),
            test_id: at.test_id,
            note: note.clone(),
        };
        let mut tx = Tx::new(self);
        tx.check_returning_old(
            NoteAction::Test,
            key(pk, keys::test_sk(at.booking_id, at.test_id)),
            Expr::new().exists(keys::PK).ne(attr::STATUS, TestStatus::Cancelled),
        )?;
        tx.put_new(NoteAction::Note, to_item(&item)?)?;
        tx.put_new(NoteAction::Audit, self.audit_item(audit)?)?;
        Ok(tx)
    }

    /// Adds a note to a test that exists and is not cancelled (one transaction: check the test, put the note
    /// and the audit event).
    ///
    /// # Errors
    /// Engine failures.
    pub async fn add_note(&self, at: TestAddress, note: &Note, audit: &AuditEvent) -> Result<NoteOutcome, StoreError> {
        let tx = self.note_tx(at, note, audit)?;
        Ok(match self.send(tx).await? {
            Sent::Committed => NoteOutcome::Added,
            Sent::Rejected(mut r) if r.has(NoteAction::Test) => match r.take_item(NoteAction::Test) {
                Some(_) => NoteOutcome::TestCancelled,
                None => NoteOutcome::NoTest,
            },
            Sent::Rejected(r) => return Err(r.unexpected()),
        })
    }

    /// A page of one queue, critical first then oldest first (one Query on one partition of the sparse GSI).
    ///
    /// # Errors
    /// Engine failures.
    pub async fn queue(
        &self,
        queue: Queue,
        limit: i32,
        start: Option<&PageKey>,
    ) -> Result<Page<WorklistEntry>, StoreError> {
        let pk = match queue {
            Queue::Verification => keys::AWAITING_VERIFICATION_PK,
            Queue::Review => keys::AWAITING_REVIEW_PK,
        };
        let query = self
            .query_builder()
            .index_name(keys::GSI_AWAITING_REVIEW)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", keys::GSI2_PK)
            .expression_attribute_values(":pk", s(pk));
        let key = [keys::PK, keys::SK, keys::GSI2_PK, keys::GSI2_SK];
        self.query_page(query, limit, start, &key, |r: ResultItem| WorklistEntry {
            patient_id: r.patient_id,
            booking_id: r.booking_id,
            test_id: r.test_id,
            test_type_code: r.test_type_code,
            status: r.result.status,
            critical: r.result.critical,
            delta_flag: r.result.delta_flag,
            verified_at: r.result.verification.map(|v| v.verified_at),
            recorded_at: r.result.recorded_at,
        })
        .await
    }

    /// A page of one site's local day's bookings in slot order (one Query on the day GSI).
    ///
    /// # Errors
    /// Engine failures.
    pub async fn schedule(
        &self,
        site: &str,
        date: Date,
        limit: i32,
        start: Option<&PageKey>,
    ) -> Result<Page<BookingSummary>, StoreError> {
        let query = self
            .query_builder()
            .index_name(keys::GSI_BOOKINGS_BY_DAY)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", keys::GSI3_PK)
            .expression_attribute_values(":pk", s(keys::bookings_by_day_pk(site, date)));
        let key = [keys::PK, keys::SK, keys::GSI3_PK, keys::GSI3_SK];
        self.query_page(query, limit, start, &key, BookingItem::into_summary)
            .await
    }

    /// A page of booked tests of one type with slots in `range`. Each page is one Query on one month's
    /// partition of the tests-by-type GSI; the page key carries the month, so the next page continues there,
    /// and moves to the next month when one is exhausted.
    ///
    /// # Errors
    /// [`StoreError::ForeignKey`] for a page key of another range; engine failures.
    pub async fn tests_by_type(
        &self,
        code: &str,
        range: DateRange,
        limit: i32,
        start: Option<&PageKey>,
    ) -> Result<Page<ScheduledTest>, StoreError> {
        let (lo, hi) = keys::day_bounds(range);
        Self::bucket_paged(&keys::months(range), start, |month, resume| async move {
            let query = self
                .query_builder()
                .index_name(keys::GSI_TESTS_BY_TYPE)
                .key_condition_expression("#pk = :pk AND #sk BETWEEN :lo AND :hi")
                .expression_attribute_names("#pk", keys::GSI1_PK)
                .expression_attribute_names("#sk", keys::GSI1_SK)
                .expression_attribute_values(":pk", s(keys::tests_by_type_pk(code, month)))
                .expression_attribute_values(":lo", s(&lo))
                .expression_attribute_values(":hi", s(&hi));
            let key = [keys::PK, keys::SK, keys::GSI1_PK, keys::GSI1_SK];
            self.query_page(query, limit, resume.as_ref(), &key, |t: TestItem| ScheduledTest {
                patient_id: t.patient_id,
                booking_id: t.booking_id,
                slot_start: t.slot_start,
                test: t.test(),
            })
            .await
        })
        .await
    }
}

/// The unexpired record in an idempotency item, if there is one.
fn record_of(item: Option<super::Item>) -> Result<Option<IdempotencyRecord>, StoreError> {
    let Some(item) = item else {
        return Ok(None);
    };
    let record: IdempotencyItem = from_item(item)?;
    let now = OffsetDateTime::now_utc().unix_timestamp();
    Ok((record.expires_at > now).then(|| record.into_record()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        domain::{
            booking::{BookedTest, SlotStart},
            patient::{Patient, Sex},
        },
        store::{
            items::{PatientItem, SlotItem},
            tx::assert_names_in_targets as check,
        },
    };

    fn booking() -> Booking {
        let slot_start = SlotStart::new(time::macros::datetime!(2026-12-01 07:15 UTC));
        Booking {
            id: Uuid::now_v7(),
            patient_id: Uuid::now_v7(),
            site: "MAIN".into(),
            slot_start,
            local_slot_start: "2026-12-01T07:15:00+00:00".into(),
            place: 1,
            rescheduled_from: Vec::new(),
            checked_in_at: None,
            accession: None,
            results_without_check_in: false,
            status: BookingStatus::Booked,
            tests: (0..2)
                .map(|_| BookedTest {
                    id: Uuid::now_v7(),
                    test_type_code: "CBC".into(),
                    test_type_version: 1,
                    name: "Complete blood count".into(),
                    status: TestStatus::Ordered,
                })
                .collect(),
            note: None,
            version: 1,
            created_at: "2026-11-28T07:00:00.000Z".into(),
            updated_at: "2026-11-28T07:00:00.000Z".into(),
        }
    }

    fn result() -> LabResult {
        LabResult {
            status: crate::domain::booking::ResultStatus::Preliminary,
            revision: 1,
            version: 1,
            values: vec![],
            critical: false,
            delta_flag: false,
            performed_at: "2026-12-01T08:00:00Z".into(),
            collected_at: Some("2026-12-01T07:16:00Z".into()),
            comment: None,
            recorded_at: "2026-12-01T09:00:00.000Z".into(),
            recorded_by: "lab".into(),
            verification: None,
            review: None,
            hold: None,
            hold_lifted_at: None,
            release: None,
            corrects: None,
        }
    }

    fn cbc() -> TestType {
        serde_json::from_value(serde_json::json!({
            "version": 1, "createdAt": "t", "code": "CBC", "name": "CBC", "category": "hematology",
            "loinc": "58410-2", "specimen": "blood", "durationMinutes": 10, "priceCents": 100, "currency": "EUR",
            "analytes": [{"code": "HGB", "name": "Hemoglobin", "loinc": "718-7", "unit": "g/dL",
                          "referenceRange": {"low": 12.0, "high": 17.5}}]
        }))
        .unwrap()
    }

    /// The stored items a booking's writes target, by primary key, as the item structs serialise them.
    fn stored(b: &Booking) -> HashMap<(String, String), super::super::Item> {
        let patient = Patient {
            id: b.patient_id,
            given_name: "Ada".into(),
            family_name: "Lovelace".into(),
            birth_date: time::macros::date!(1990 - 01 - 01),
            sex: Sex::Female,
            email: None,
            phone: None,
            identifiers: Vec::new(),
            version: 1,
            created_at: "t".into(),
            updated_at: "t".into(),
        };
        let slot = SlotItem {
            pk: keys::site_day_pk(&b.site, b.local_date()),
            sk: keys::site_slot_sk(b.slot_start),
            entity: entity::SLOT.into(),
            slot_start: b.slot_start,
            version: 1,
            places: [(
                keys::place_attribute(b.place),
                // Every field a place can have, so each condition's names are found.
                PlaceItem {
                    booking: Some(b.id),
                    hold: Some(Uuid::nil()),
                    until: Some(0),
                    patient: None,
                },
            )]
            .into(),
        };
        let rule = crate::store::items::DayRuleItem {
            pk: keys::site_day_pk(&b.site, b.local_date()),
            sk: keys::DAY_RULE_SK.into(),
            entity: entity::DAY_RULE.into(),
            site: b.site.clone(),
            date: "2026-12-01".into(),
            rule: crate::domain::site::DayRule {
                closed: false,
                opening_hours: None,
                capacity: Some(1),
            },
            version: 1,
            updated_at: "t".into(),
        };
        let site = crate::store::items::SiteItem::from(&crate::domain::site::Site {
            definition: serde_json::from_value(crate::examples::site_definition()).unwrap(),
            version: 1,
            created_at: "t".into(),
            updated_at: "t".into(),
        });
        let site = crate::store::items::SiteItem {
            sk: keys::site_sk(&b.site),
            ..site
        };
        let mut items = vec![
            to_item(&site).unwrap(),
            to_item(&rule).unwrap(),
            to_item(&PatientItem::from(&patient)).unwrap(),
            to_item(&BookingItem::from(b)).unwrap(),
            to_item(&slot).unwrap(),
            to_item(&PatientSlotItem::new(b)).unwrap(),
        ];
        items.extend(b.tests.iter().map(|t| to_item(&TestItem::new(b, t)).unwrap()));
        items
            .into_iter()
            .map(|item| {
                let key = |name: &str| item[name].as_s().unwrap().clone();
                ((key(keys::PK), key(keys::SK)), item)
            })
            .collect()
    }

    use crate::store::tests::audit_event as audit;

    /// Within 10 minutes a repeated key is refused by its ClientRequestToken, which carries nothing. After
    /// that, the record's own condition refuses it, and `ALL_OLD` brings the record along: no extra read.
    /// Sending without the token is that later request.
    #[cfg(feature = "embedded")]
    #[tokio::test]
    async fn a_used_key_past_its_token_comes_back_with_its_record() {
        let engine = crate::engine::EmbeddedEngine::start_memory().await.unwrap();
        let client = crate::store::client::local_client(engine.endpoint(), engine.credentials(), &Default::default());
        let store = Store::new(client, "outcome");
        store
            .bootstrap(crate::config::CapacityMode::OnDemand, false)
            .await
            .unwrap();
        let first = booking();
        let patient = Patient {
            id: first.patient_id,
            given_name: "Ada".into(),
            family_name: "Lovelace".into(),
            birth_date: time::macros::date!(1990 - 01 - 01),
            sex: Sex::Female,
            email: None,
            phone: None,
            identifiers: Vec::new(),
            version: 1,
            created_at: "t".into(),
            updated_at: "t".into(),
        };
        store.create_patient(&patient, &audit(patient.id), &[]).await.unwrap();
        let mut definition: crate::domain::site::SiteDefinition =
            serde_json::from_value(crate::examples::site_definition()).unwrap();
        definition.code = first.site.clone();
        let site = crate::domain::site::Site {
            definition,
            version: 1,
            created_at: "t".into(),
            updated_at: "t".into(),
        };
        store.create_site(&site).await.unwrap();
        let key = IdempotencyKey::new("admin:s", "k", &[b"x"]);
        let expires = OffsetDateTime::now_utc().unix_timestamp() + 60;
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let free = PlaceTake::Free(Unchanged {
            site_version: 1,
            rule_version: None,
            slot_version: None,
        });
        let booked = store
            .create_booking(&first, free, now, &key, expires, &audit(patient.id), &[], true)
            .await;
        assert_eq!(booked.unwrap(), BookOutcome::Booked);
        let again = Booking {
            id: Uuid::now_v7(),
            ..first.clone()
        };
        let tx = store
            .book_tx(&again, free, now, &key, expires, &audit(patient.id), &[])
            .unwrap();
        let Sent::Rejected(mut rejected) = store.send(tx).await.unwrap() else {
            panic!("the repeat must be rejected");
        };
        assert!(rejected.has(BookAction::Key));
        let record = record_of(rejected.take_item(BookAction::Key)).unwrap().unwrap();
        assert_eq!(record.booking.id, first.id);
        assert!(key.matches(&record));
    }

    #[test]
    fn every_attribute_an_expression_names_exists_in_the_item_it_targets() {
        let (store, b) = (crate::store::tests::offline_store(), booking());
        let stored = stored(&b);
        let audit = audit(b.patient_id);
        let key = IdempotencyKey::new("admin:s", "k", &[b"x"]);
        let unchanged = |slot_version| Unchanged {
            site_version: 1,
            rule_version: Some(1),
            slot_version,
        };
        for take in [
            PlaceTake::Free(unchanged(None)),
            PlaceTake::Free(unchanged(Some(3))),
            PlaceTake::Hold {
                id: Uuid::now_v7(),
                unchanged: unchanged(None),
            },
        ] {
            let mut stored = stored.clone();
            if let PlaceTake::Hold { id, .. } = take {
                stored.insert(
                    (keys::hold_pk(id), keys::HOLD_SK.into()),
                    super::super::key(keys::hold_pk(id), keys::HOLD_SK),
                );
                let marker = crate::store::items::PatientHoldItem {
                    pk: keys::patient_pk(b.patient_id),
                    sk: keys::patient_hold_sk(&b.site),
                    entity: entity::PATIENT_HOLD.into(),
                    hold_id: id,
                    until: 1,
                };
                stored.insert((marker.pk.clone(), marker.sk.clone()), to_item(&marker).unwrap());
            }
            check(&store.book_tx(&b, take, 1, &key, 1, &audit, &[]).unwrap(), &stored);
        }
        let cancelled = Booking {
            status: BookingStatus::Cancelled,
            version: 2,
            ..b.clone()
        };
        check(
            &store
                .cancel_tx(&cancelled, 1, Some((&key, 1)), true, &audit, &[])
                .unwrap(),
            &stored,
        );
        check(
            &store.cancel_tx(&cancelled, 1, None, false, &audit, &[]).unwrap(),
            &stored,
        );
        let moved = Booking {
            slot_start: SlotStart::new(b.slot_start.at() + time::Duration::minutes(15)),
            local_slot_start: "2026-12-01T07:30:00+00:00".into(),
            version: 2,
            ..b.clone()
        };
        let mut with_new_slot = stored.clone();
        let (new_pk, new_sk) = (
            keys::site_day_pk(&moved.site, moved.local_date()),
            keys::site_slot_sk(moved.slot_start),
        );
        let mut new_slot = stored[&(new_pk.clone(), keys::site_slot_sk(b.slot_start))].clone();
        new_slot.insert(keys::SK.into(), s(new_sk.clone()));
        with_new_slot.insert((new_pk, new_sk), new_slot);
        let unchanged = Unchanged {
            site_version: 1,
            rule_version: Some(1),
            slot_version: Some(2),
        };
        check(
            &store
                .reschedule_tx(&b, &moved, unchanged, 1, true, &audit, &[])
                .unwrap(),
            &with_new_slot,
        );
        let at = TestAddress {
            patient_id: b.patient_id,
            booking_id: b.id,
            test_id: b.tests[0].id,
        };
        check(
            &store.result_tx(at, &cbc(), &result(), None, &audit, &[]).unwrap(),
            &stored,
        );
        check(
            &store.result_tx(at, &cbc(), &result(), Some(1), &audit, &[]).unwrap(),
            &stored,
        );
        let note = Note {
            id: Uuid::now_v7(),
            author_id: "doc".into(),
            text: "ok".into(),
            visibility: crate::domain::booking::NoteVisibility::Internal,
            created_at: "t".into(),
        };
        check(&store.note_tx(at, &note, &audit).unwrap(), &stored);
    }
}
