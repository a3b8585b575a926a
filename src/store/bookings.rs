//! Slots, bookings, results, notes, and the lab's and doctors' index views.
//!
//! Every multi-item change is one TransactWriteItems whose conditions carry the invariant (slot capacity,
//! versions, "no result yet"); the action order of each transaction is documented on its function so callers
//! can read cancellation reasons without another read.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{ConditionCheck, TransactWriteItem, Update};
use uuid::Uuid;

use super::{
    Item, Page, PageKey, Store, StoreError, from_item,
    items::{
        BookingItem, IdempotencyItem, NoteItem, ResultItem, ResultRevisionItem, SlotItem, TestAddress, TestItem, entity,
    },
    key, keys, n, s, to_item,
};
use crate::domain::audit::AuditEvent;
use crate::domain::booking::{
    Booking, BookingStatus, BookingSummary, LabResult, Note, ScheduledTest, TestStatus, WorklistEntry,
};

/// Action index of the slot counter in [`Store::create_booking`].
pub const BOOK_SLOT: usize = 0;
/// Action index of the patient check in [`Store::create_booking`].
pub const BOOK_PATIENT: usize = 1;
/// Action index of the idempotency record in [`Store::create_booking`] and [`Store::cancel_booking`].
pub const BOOK_IDEMPOTENCY: usize = 2;
/// Action index of the booking in [`Store::cancel_booking`].
pub const CANCEL_BOOKING: usize = 0;
/// Action index of the first test in [`Store::cancel_booking`].
pub const CANCEL_FIRST_TEST: usize = 3;
/// Action index of the current result in [`Store::save_result`].
pub const RESULT_CURRENT: usize = 0;
/// Action index of the test in [`Store::save_result`].
pub const RESULT_TEST: usize = 2;

/// A booking with everything under it, read in one Query.
#[derive(Debug, Clone, PartialEq)]
pub struct BookingTree {
    /// The booking, its tests with their states.
    pub booking: Booking,
    /// Current result per test id.
    pub results: HashMap<Uuid, LabResult>,
    /// Notes per test id, oldest first.
    pub notes: HashMap<Uuid, Vec<Note>>,
}

/// An idempotency record to write with a change.
#[derive(Debug, Clone)]
pub struct IdempotencyWrite {
    /// Who sent the key (records are per caller).
    pub caller: String,
    /// The key.
    pub key: String,
    /// Hash of the request.
    pub request_hash: String,
    /// Epoch seconds after which the record may be deleted.
    pub expires_at: i64,
    /// ClientRequestToken for the transaction, derived from the key.
    pub token: String,
}

impl Store {
    /// The counters of a day's booked slots (one Query).
    ///
    /// # Errors
    /// Engine failures.
    pub async fn slot_counters(&self, date: &str) -> Result<Vec<SlotItem>, StoreError> {
        let out = self
            .query(
                self.query_builder()
                    .key_condition_expression("#pk = :pk")
                    .expression_attribute_names("#pk", keys::PK)
                    .expression_attribute_values(":pk", s(keys::slots_pk(date))),
            )
            .await?;
        out.items.unwrap_or_default().into_iter().map(from_item).collect()
    }

    /// Writes a new booking in one transaction, in this action order: [`BOOK_SLOT`] takes a place in the
    /// slot (`booked < capacity`), [`BOOK_PATIENT`] checks the patient exists, [`BOOK_IDEMPOTENCY`] records
    /// the idempotency key (`attribute_not_exists`), then the booking and each test.
    ///
    /// # Errors
    /// [`StoreError::TransactionCanceled`] with the failing actions; engine failures.
    pub async fn create_booking(
        &self,
        booking: &Booking,
        capacity: u32,
        idempotency: &IdempotencyWrite,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let date = &booking.slot_start[..10];
        let booking_item = BookingItem::from(booking);
        let record = IdempotencyItem {
            pk: keys::idempotency_pk(&idempotency.caller, &idempotency.key),
            sk: keys::IDEMPOTENCY_SK.to_owned(),
            entity: entity::IDEMPOTENCY.to_owned(),
            request_hash: idempotency.request_hash.clone(),
            booking: booking_item.clone(),
            expires_at: idempotency.expires_at,
        };
        let mut actions = vec![
            self.tx_update(
                key(keys::slots_pk(date), keys::slot_sk(&booking.slot_start)),
                "ADD #booked :one SET #capacity = :capacity, #slotStart = :start",
                "attribute_not_exists(#booked) OR #booked < :capacity",
                &[
                    ("#booked", "booked"),
                    ("#capacity", "capacity"),
                    ("#slotStart", "slotStart"),
                ],
                vec![
                    (":one", n(1)),
                    (":capacity", n(capacity)),
                    (":start", s(&booking.slot_start)),
                ],
            ),
            self.tx_check(
                key(keys::patient_pk(booking.patient_id), keys::PATIENT_PROFILE_SK),
                "attribute_exists(PK)",
            ),
            self.tx_put(to_item(&record)?, Some("attribute_not_exists(PK)"), None),
            self.tx_put(to_item(&booking_item)?, Some("attribute_not_exists(PK)"), None),
        ];
        for test in &booking.tests {
            actions.push(self.tx_put(
                to_item(&TestItem::new(booking, test))?,
                Some("attribute_not_exists(PK)"),
                None,
            ));
        }
        actions.push(self.tx_audit(audit)?);
        self.transact(actions, Some(idempotency.token.clone())).await
    }

    /// The idempotency record of `caller`'s `key`, unless it expired (TTL deletes lazily).
    ///
    /// # Errors
    /// Engine failures.
    pub async fn idempotency_record(&self, caller: &str, key: &str) -> Result<Option<IdempotencyItem>, StoreError> {
        let Some(item) = self
            .get(keys::idempotency_pk(caller, key), keys::IDEMPOTENCY_SK.to_owned())
            .await?
        else {
            return Ok(None);
        };
        let record: IdempotencyItem = from_item(item)?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        Ok((record.expires_at > now).then_some(record))
    }

    /// A page of a patient's bookings in slot order, between two LSI sort-key bounds (one Query on the LSI).
    ///
    /// # Errors
    /// Engine failures.
    pub async fn list_bookings(
        &self,
        patient_id: Uuid,
        bounds: (&str, &str),
        status: Option<BookingStatus>,
        limit: i32,
        start: Option<&PageKey>,
    ) -> Result<Page<BookingSummary>, StoreError> {
        let mut query = self
            .query_builder()
            .index_name(keys::LSI_BOOKINGS_BY_SLOT)
            .key_condition_expression("#pk = :pk AND #sk BETWEEN :lo AND :hi")
            .expression_attribute_names("#pk", keys::PK)
            .expression_attribute_names("#sk", keys::LSI1_SK)
            .expression_attribute_values(":pk", s(keys::patient_pk(patient_id)))
            .expression_attribute_values(":lo", s(bounds.0))
            .expression_attribute_values(":hi", s(bounds.1));
        if let Some(status) = status {
            query = query
                .filter_expression("#status = :status")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(
                    ":status",
                    serde_dynamo::to_attribute_value(status).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                );
        }
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
        let mut start = None;
        loop {
            let out = self
                .query(
                    self.query_builder()
                        .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                        .expression_attribute_names("#pk", keys::PK)
                        .expression_attribute_names("#sk", keys::SK)
                        .expression_attribute_values(":pk", s(keys::patient_pk(patient_id)))
                        .expression_attribute_values(":prefix", s(keys::booking_sk(booking_id)))
                        .set_exclusive_start_key(start),
                )
                .await?;
            for item in out.items.unwrap_or_default() {
                let kind = item
                    .get("entity")
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
                        results.insert(result.test_id, result.result);
                    }
                    entity::NOTE => {
                        let note: NoteItem = from_item(item)?;
                        notes.entry(note.test_id).or_default().push(note.note);
                    }
                    other => return Err(StoreError::Corrupt(format!("unexpected {other} in a booking tree"))),
                }
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        Ok(booking.map(|b| BookingTree {
            booking: b.into_booking(|id| tests.get(&id).copied(), TestStatus::Ordered),
            results,
            notes,
        }))
    }

    /// Cancels a booking in one transaction, in this action order: [`CANCEL_BOOKING`] (still `booked`, at
    /// `expected_version`), the slot counter (gives the place back), [`BOOK_IDEMPOTENCY`] the idempotency
    /// record when there is one (else a no-op check of the booking), then from [`CANCEL_FIRST_TEST`] each test
    /// (still `ordered`, i.e. no result recorded; it also leaves the tests-by-type index).
    ///
    /// # Errors
    /// [`StoreError::TransactionCanceled`] with the failing actions; engine failures.
    pub async fn cancel_booking(
        &self,
        cancelled: &Booking,
        expected_version: u64,
        idempotency: Option<&IdempotencyWrite>,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let patient_pk = keys::patient_pk(cancelled.patient_id);
        let mut actions = vec![
            self.tx_update(
                key(patient_pk.clone(), keys::booking_sk(cancelled.id)),
                "SET #status = :cancelled, #version = :next, #updatedAt = :now",
                "#status = :booked AND #version = :expected",
                &[
                    ("#status", "status"),
                    ("#version", "version"),
                    ("#updatedAt", "updatedAt"),
                ],
                vec![
                    (":cancelled", s("cancelled")),
                    (":booked", s("booked")),
                    (":next", n(cancelled.version)),
                    (":expected", n(expected_version)),
                    (":now", s(&cancelled.updated_at)),
                ],
            ),
            self.tx_update(
                key(
                    keys::slots_pk(&cancelled.slot_start[..10]),
                    keys::slot_sk(&cancelled.slot_start),
                ),
                "ADD #booked :minus_one",
                "#booked > :zero",
                &[("#booked", "booked")],
                vec![(":minus_one", n(-1)), (":zero", n(0))],
            ),
        ];
        match idempotency {
            Some(record) => {
                let item = IdempotencyItem {
                    pk: keys::idempotency_pk(&record.caller, &record.key),
                    sk: keys::IDEMPOTENCY_SK.to_owned(),
                    entity: entity::IDEMPOTENCY.to_owned(),
                    request_hash: record.request_hash.clone(),
                    booking: BookingItem::from(cancelled),
                    expires_at: record.expires_at,
                };
                actions.push(self.tx_put(to_item(&item)?, Some("attribute_not_exists(PK)"), None));
            }
            None => actions.push(self.tx_check(
                key(patient_pk.clone(), keys::PATIENT_PROFILE_SK),
                "attribute_exists(PK)",
            )),
        }
        for test in &cancelled.tests {
            actions.push(self.tx_update(
                key(patient_pk.clone(), keys::test_sk(cancelled.id, test.id)),
                "SET #status = :cancelled REMOVE #gsi1pk, #gsi1sk",
                "#status = :ordered",
                &[
                    ("#status", "status"),
                    ("#gsi1pk", keys::GSI1_PK),
                    ("#gsi1sk", keys::GSI1_SK),
                ],
                vec![(":cancelled", s("cancelled")), (":ordered", s("ordered"))],
            ));
        }
        actions.push(self.tx_audit(audit)?);
        self.transact(actions, idempotency.map(|r| r.token.clone())).await
    }

    /// Writes a test's result in one transaction, in this action order: [`RESULT_CURRENT`] the current result
    /// (new: must not exist; otherwise at `expected_version`), the revision's kept copy, [`RESULT_TEST`] the
    /// test's status (`resulted`, or `reviewed` when the result carries a review; never on a cancelled test).
    ///
    /// # Errors
    /// [`StoreError::TransactionCanceled`] with the failing actions; engine failures.
    pub async fn save_result(
        &self,
        at: TestAddress,
        test_type_code: &str,
        result: &LabResult,
        expected_version: Option<u64>,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let current = to_item(&ResultItem::new(at, test_type_code, result))?;
        let current = match expected_version {
            None => self.tx_put(current, Some("attribute_not_exists(PK)"), None),
            Some(v) => self.tx_put(
                current,
                Some("version = :expected"),
                Some(HashMap::from([(":expected".into(), n(v))])),
            ),
        };
        let status = if result.review.is_some() {
            "reviewed"
        } else {
            "resulted"
        };
        let actions = vec![
            current,
            self.tx_put(to_item(&ResultRevisionItem::new(at, result))?, None, None),
            self.tx_update(
                key(
                    keys::patient_pk(at.patient_id),
                    keys::test_sk(at.booking_id, at.test_id),
                ),
                "SET #status = :status",
                "attribute_exists(PK) AND #status <> :cancelled",
                &[("#status", "status")],
                vec![(":status", s(status)), (":cancelled", s("cancelled"))],
            ),
            self.tx_audit(audit)?,
        ];
        self.transact(actions, None).await
    }

    /// A test's current result (GetItem).
    ///
    /// # Errors
    /// Engine failures.
    pub async fn current_result(&self, at: TestAddress) -> Result<Option<ResultItem>, StoreError> {
        self.get(
            keys::patient_pk(at.patient_id),
            keys::result_sk(at.booking_id, at.test_id),
        )
        .await?
        .map(from_item)
        .transpose()
    }

    /// Every kept revision of a test's result, oldest first (one Query).
    ///
    /// # Errors
    /// Engine failures.
    pub async fn result_history(&self, at: TestAddress) -> Result<Vec<LabResult>, StoreError> {
        let mut history = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .query(
                    self.query_builder()
                        .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                        .expression_attribute_names("#pk", keys::PK)
                        .expression_attribute_names("#sk", keys::SK)
                        .expression_attribute_values(":pk", s(keys::patient_pk(at.patient_id)))
                        .expression_attribute_values(
                            ":prefix",
                            s(keys::result_revision_prefix(at.booking_id, at.test_id)),
                        )
                        .set_exclusive_start_key(start),
                )
                .await?;
            for item in out.items.unwrap_or_default() {
                history.push(from_item::<ResultRevisionItem>(item)?.result);
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(history);
            }
        }
    }

    /// Adds a note to a test that exists (one transaction: check the test, put the note).
    ///
    /// # Errors
    /// [`StoreError::TransactionCanceled`] (action 0) when the test does not exist; engine failures.
    pub async fn add_note(&self, at: TestAddress, note: &Note, audit: &AuditEvent) -> Result<(), StoreError> {
        let pk = keys::patient_pk(at.patient_id);
        let item = NoteItem {
            pk: pk.clone(),
            sk: keys::note_sk(at.booking_id, at.test_id, note.id),
            entity: entity::NOTE.to_owned(),
            test_id: at.test_id,
            note: note.clone(),
        };
        let actions = vec![
            self.tx_check(
                key(pk, keys::test_sk(at.booking_id, at.test_id)),
                "attribute_exists(PK)",
            ),
            self.tx_put(to_item(&item)?, Some("attribute_not_exists(PK)"), None),
            self.tx_audit(audit)?,
        ];
        self.transact(actions, None).await
    }

    /// A page of results awaiting review, critical first then oldest first (one Query on the sparse GSI).
    ///
    /// # Errors
    /// Engine failures.
    pub async fn worklist(&self, limit: i32, start: Option<&PageKey>) -> Result<Page<WorklistEntry>, StoreError> {
        let query = self
            .query_builder()
            .index_name(keys::GSI_AWAITING_REVIEW)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", keys::GSI2_PK)
            .expression_attribute_values(":pk", s(keys::AWAITING_REVIEW_PK));
        let key = [keys::PK, keys::SK, keys::GSI2_PK, keys::GSI2_SK];
        self.query_page(query, limit, start, &key, |r: ResultItem| WorklistEntry {
            patient_id: r.patient_id,
            booking_id: r.booking_id,
            test_id: r.test_id,
            test_type_code: r.test_type_code,
            critical: r.result.critical,
            recorded_at: r.result.recorded_at,
        })
        .await
    }

    /// A page of one day's bookings in slot order (one Query on the day GSI).
    ///
    /// # Errors
    /// Engine failures.
    pub async fn schedule(
        &self,
        date: &str,
        limit: i32,
        start: Option<&PageKey>,
    ) -> Result<Page<BookingSummary>, StoreError> {
        let query = self
            .query_builder()
            .index_name(keys::GSI_BOOKINGS_BY_DAY)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", keys::GSI3_PK)
            .expression_attribute_values(":pk", s(keys::bookings_by_day_pk(date)));
        let key = [keys::PK, keys::SK, keys::GSI3_PK, keys::GSI3_SK];
        self.query_page(query, limit, start, &key, BookingItem::into_summary)
            .await
    }

    /// A page of booked tests of one type in one month, with slot starts between two bounds (one Query on
    /// the tests-by-type GSI).
    ///
    /// # Errors
    /// Engine failures.
    pub async fn tests_by_type(
        &self,
        code: &str,
        month: &str,
        bounds: (&str, &str),
        limit: i32,
        start: Option<&PageKey>,
    ) -> Result<Page<ScheduledTest>, StoreError> {
        let query = self
            .query_builder()
            .index_name(keys::GSI_TESTS_BY_TYPE)
            .key_condition_expression("#pk = :pk AND #sk BETWEEN :lo AND :hi")
            .expression_attribute_names("#pk", keys::GSI1_PK)
            .expression_attribute_names("#sk", keys::GSI1_SK)
            .expression_attribute_values(":pk", s(keys::tests_by_type_pk(code, month)))
            .expression_attribute_values(":lo", s(bounds.0))
            .expression_attribute_values(":hi", s(bounds.1));
        let key = [keys::PK, keys::SK, keys::GSI1_PK, keys::GSI1_SK];
        self.query_page(query, limit, start, &key, |t: TestItem| ScheduledTest {
            patient_id: t.patient_id,
            booking_id: t.booking_id,
            slot_start: t.slot_start.clone(),
            test: t.test(),
        })
        .await
    }

    fn tx_update(
        &self,
        key: Item,
        update: &str,
        condition: &str,
        names: &[(&str, &str)],
        values: Vec<(&str, aws_sdk_dynamodb::types::AttributeValue)>,
    ) -> TransactWriteItem {
        let update = Update::builder()
            .table_name(self.table())
            .set_key(Some(key))
            .update_expression(update)
            .condition_expression(condition)
            .set_expression_attribute_names(Some(
                names.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            ))
            .set_expression_attribute_values(Some(values.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
            .build()
            .expect("update action is complete");
        TransactWriteItem::builder().update(update).build()
    }

    fn tx_check(&self, key: Item, condition: &str) -> TransactWriteItem {
        let check = ConditionCheck::builder()
            .table_name(self.table())
            .set_key(Some(key))
            .condition_expression(condition)
            .build()
            .expect("condition check is complete");
        TransactWriteItem::builder().condition_check(check).build()
    }
}
