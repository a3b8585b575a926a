//! Every key format and index name of the single table, in one place.
//!
//! A typo in a key is a silent data-loss bug, so business code never writes a key string: it calls a function
//! here, and each function has a unit test pinning its exact output. `docs/data-model.md` describes the same
//! layout as a table of access patterns.
//!
//! Ids are UUID v7 in their 36-character hyphenated form. Because every id has the same length, the prefix
//! `BOOKING#<id>` of one booking can never be the prefix of another booking's keys, so `begins_with` on it
//! reads exactly one booking tree.

use std::fmt;

use time::{Date, Month as CalendarMonth};
use uuid::Uuid;

use crate::domain::{
    booking::{DateRange, SlotStart},
    timefmt,
};

/// Partition key attribute.
pub const PK: &str = "PK";
/// Sort key attribute.
pub const SK: &str = "SK";
/// Sort key of the local secondary index [`LSI_BOOKINGS_BY_SLOT`].
pub const LSI1_SK: &str = "LSI1SK";
/// Partition key of [`GSI_TESTS_BY_TYPE`].
pub const GSI1_PK: &str = "GSI1PK";
/// Sort key of [`GSI_TESTS_BY_TYPE`].
pub const GSI1_SK: &str = "GSI1SK";
/// Partition key of [`GSI_AWAITING_REVIEW`] (sparse: only results awaiting review carry it).
pub const GSI2_PK: &str = "GSI2PK";
/// Sort key of [`GSI_AWAITING_REVIEW`].
pub const GSI2_SK: &str = "GSI2SK";
/// Partition key of [`GSI_BOOKINGS_BY_DAY`].
pub const GSI3_PK: &str = "GSI3PK";
/// Sort key of [`GSI_BOOKINGS_BY_DAY`].
pub const GSI3_SK: &str = "GSI3SK";
/// Partition key of [`GSI_PATIENTS_BY_NAME`] (patient profiles only).
pub const GSI4_PK: &str = "GSI4PK";
/// Sort key of [`GSI_PATIENTS_BY_NAME`].
pub const GSI4_SK: &str = "GSI4SK";
/// TTL attribute (epoch seconds); DynamoDB deletes an item some time after it passes.
pub const EXPIRES_AT: &str = "expiresAt";

/// LSI on the patient partition: a patient's bookings ordered by slot start.
pub const LSI_BOOKINGS_BY_SLOT: &str = "BookingsBySlot";
/// GSI: booked tests of one test type, partitioned by test type and month.
pub const GSI_TESTS_BY_TYPE: &str = "TestsByType";
/// Sparse GSI: results awaiting a doctor's review, critical first then oldest first.
pub const GSI_AWAITING_REVIEW: &str = "AwaitingReview";
/// GSI: bookings of one day in slot order, the lab's schedule.
pub const GSI_BOOKINGS_BY_DAY: &str = "BookingsByDay";
/// GSI: patients by birth date and folded family and given name, the front desk's search.
pub const GSI_PATIENTS_BY_NAME: &str = "PatientsByName";

/// One global secondary index: its name and key attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GsiSpec {
    /// Index name.
    pub name: &'static str,
    /// Partition key attribute.
    pub pk: &'static str,
    /// Sort key attribute.
    pub sk: &'static str,
}

/// Every GSI the product needs. Bootstrap creates or adds each of them.
pub const GSIS: [GsiSpec; 4] = [
    GsiSpec {
        name: GSI_TESTS_BY_TYPE,
        pk: GSI1_PK,
        sk: GSI1_SK,
    },
    GsiSpec {
        name: GSI_AWAITING_REVIEW,
        pk: GSI2_PK,
        sk: GSI2_SK,
    },
    GsiSpec {
        name: GSI_BOOKINGS_BY_DAY,
        pk: GSI3_PK,
        sk: GSI3_SK,
    },
    GsiSpec {
        name: GSI_PATIENTS_BY_NAME,
        pk: GSI4_PK,
        sk: GSI4_SK,
    },
];

/// GSI partition of the patients born on one day: birth dates spread the search index over many partitions,
/// and a front desk always knows the date it asks for.
pub fn patients_by_name_pk(birth_date: Date) -> String {
    format!("BIRTH#{}", timefmt::date(birth_date))
}

/// GSI sort key of a patient in their birth date's partition: folded family name, folded given name, id
/// (`lovelace#ada#<id>`), so a family-name prefix is a `begins_with`. Folded names hold no `#`.
pub fn patients_by_name_sk(family: &str, given: &str, patient_id: Uuid) -> String {
    format!("{family}#{given}#{patient_id}")
}

/// Partition of the guard that makes an e-mail address unique: `EMAIL#<normalised address>`; its item names
/// the patient, so it is also the lookup by address.
pub fn email_guard_pk(normalised: &str) -> String {
    format!("EMAIL#{normalised}")
}

/// Sort key of an e-mail guard.
pub const EMAIL_GUARD_SK: &str = "EMAIL";

/// Partition of one UTC day's domain events: `EVENTS#<YYYY-MM-DD>` (the day of `occurredAt`). A base-table
/// partition, not an index, so the feed reads strongly consistent and never misses its own writes.
pub fn events_pk(day: &str) -> String {
    format!("EVENTS#{day}")
}

/// Sort key of one domain event: `<occurredAt>#<eventId>`.
pub fn event_sk(occurred_at: &str, event_id: Uuid) -> String {
    format!("{occurred_at}#{event_id}")
}

/// Partition of the guard that makes an external identifier unique within its system:
/// `IDENTIFIER#<system>#<value>` (systems never contain `#`); its item names the patient, so it is also the lookup.
pub fn identifier_guard_pk(system: &str, value: &str) -> String {
    format!("IDENTIFIER#{system}#{value}")
}

/// Sort key of an identifier guard.
pub const IDENTIFIER_GUARD_SK: &str = "IDENTIFIER";

/// Partition of the link from a sign-in identity to its patient: `IDENTITY#<issuer>#<sub>`. Issuers never
/// contain `#` (checked), so the split is unambiguous whatever the provider's `sub`.
pub fn identity_pk(issuer: &str, sub: &str) -> String {
    format!("IDENTITY#{issuer}#{sub}")
}

/// Sort key of an identity link.
pub const IDENTITY_SK: &str = "IDENTITY";

/// Sort key of the copy of an identity link in its patient's partition (the patient's list of identities):
/// `IDENTITY#<issuer>#<sub>`.
pub fn patient_identity_sk(issuer: &str, sub: &str) -> String {
    format!("{PATIENT_IDENTITY_PREFIX}{issuer}#{sub}")
}

/// Prefix of every identity copy in a patient's partition.
pub const PATIENT_IDENTITY_PREFIX: &str = "IDENTITY#";

/// Partition of one patient: profile, bookings, tests, results, notes.
pub fn patient_pk(patient_id: Uuid) -> String {
    format!("PATIENT#{patient_id}")
}

/// Sort key of the patient's profile item.
pub const PATIENT_PROFILE_SK: &str = "PROFILE";

/// Sort key of a booking item; also the prefix of every item in the booking's tree.
pub fn booking_sk(booking_id: Uuid) -> String {
    format!("BOOKING#{booking_id}")
}

/// Sort key of a patient's hold on one slot start (outside the `BOOKING#` prefix): it exists while one of the
/// patient's bookings holds that slot, so the same patient cannot book the same slot twice.
pub fn patient_slot_sk(slot_start: SlotStart) -> String {
    format!("SLOTBOOKING#{slot_start}")
}

/// Sort key of one booked test inside a booking's tree.
pub fn test_sk(booking_id: Uuid, test_id: Uuid) -> String {
    format!("BOOKING#{booking_id}#TEST#{test_id}")
}

/// Sort key of a test's current result (the revision the booking tree shows).
pub fn result_sk(booking_id: Uuid, test_id: Uuid) -> String {
    format!("BOOKING#{booking_id}#TEST#{test_id}#RESULT")
}

/// Sort key of one doctor's note on a test. Note ids are UUID v7, so notes sort by creation time.
pub fn note_sk(booking_id: Uuid, test_id: Uuid, note_id: Uuid) -> String {
    format!("BOOKING#{booking_id}#TEST#{test_id}#NOTE#{note_id}")
}

/// Prefix of the kept revisions of one test's result. Deliberately outside the `BOOKING#` prefix, so that
/// reading a booking tree does not pay for the history of every result in it.
pub fn result_revision_prefix(booking_id: Uuid, test_id: Uuid) -> String {
    format!("RESULTREV#{booking_id}#{test_id}#")
}

/// Sort key of one kept result revision (zero-padded so revisions sort numerically).
pub fn result_revision_sk(booking_id: Uuid, test_id: Uuid, revision: u32) -> String {
    format!("{}{revision:06}", result_revision_prefix(booking_id, test_id))
}

/// A calendar month, the bucket of month-partitioned items (`YYYY-MM`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Month {
    year: i32,
    month: u8,
}

impl Month {
    /// The month of `date`.
    pub fn of(date: Date) -> Self {
        Self {
            year: date.year(),
            month: u8::from(date.month()),
        }
    }

    /// The month of a record time as [`timefmt::instant`] writes it (`YYYY-MM-…`).
    pub fn of_instant(at: &str) -> Option<Self> {
        let year = at.get(..4)?.parse().ok()?;
        let month = at.get(5..7)?.parse().ok()?;
        CalendarMonth::try_from(month).ok()?;
        Some(Self { year, month })
    }

    fn next(self) -> Self {
        if self.month == 12 {
            Self {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Self {
                month: self.month + 1,
                ..self
            }
        }
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// The months `range` touches, in order: the buckets a ranged read over a month-partitioned index visits.
pub fn months(range: DateRange) -> Vec<Month> {
    let (mut month, last) = (Month::of(range.from()), Month::of(range.to()));
    let mut months = Vec::new();
    while month <= last {
        months.push(month);
        month = month.next();
    }
    months
}

/// Sort-key bounds (`BETWEEN lo AND hi`) of the days of `range` on a sort key that begins with a slot start
/// or a record time: a bare date sorts before every time of that day, and `~` after all of them.
pub fn day_bounds(range: DateRange) -> (String, String) {
    let lo = if range.from() == Date::MIN {
        "0".to_owned()
    } else {
        timefmt::date(range.from())
    };
    let hi = if range.to() == Date::MAX {
        "~".to_owned()
    } else {
        format!("{}~", timefmt::date(range.to()))
    };
    (lo, hi)
}

/// LSI sort key of a booking: slot start (RFC 3339, UTC, fixed width) then the booking id.
pub fn booking_by_slot_sk(slot_start: SlotStart, booking_id: Uuid) -> String {
    format!("{slot_start}#{booking_id}")
}

/// GSI partition of booked tests of one test type in one month: spreading a busy test type by month keeps
/// it from being one hot partition. A date range reads one partition per month it touches.
pub fn tests_by_type_pk(test_type_code: &str, month: Month) -> String {
    format!("TESTTYPE#{test_type_code}#{month}")
}

/// GSI sort key of a booked test: slot start, booking id, test id.
pub fn tests_by_type_sk(slot_start: SlotStart, booking_id: Uuid, test_id: Uuid) -> String {
    format!("{slot_start}#{booking_id}#{test_id}")
}

/// GSI partition of the doctors' worklist: verified results awaiting review. One partition: it holds only
/// results waiting for someone, never history.
pub const AWAITING_REVIEW_PK: &str = "WORKLIST";

/// GSI partition of the lab's verification queue: results awaiting verification. The same sparse index as
/// the worklist (index overloading): a result is in at most one of the two partitions at a time.
pub const AWAITING_VERIFICATION_PK: &str = "VERIFY";

/// GSI sort key of a result in either queue: critical results (`0`) before the others (`1`), then oldest
/// first (by `since`: recorded for verification, verified for review).
pub fn awaiting_review_sk(critical: bool, since: &str, test_id: Uuid) -> String {
    let rank = if critical { 0 } else { 1 };
    format!("{rank}#{since}#{test_id}")
}

/// Prefix of a patient's observations of one LOINC code (`OBS#<loinc>#`), in the patient's partition.
pub fn observation_prefix(loinc: &str) -> String {
    format!("OBS#{loinc}#")
}

/// Sort key of one observation: LOINC code, collection time, test (`OBS#718-7#2026-12-01T08:10:00Z#<test>`),
/// so one Query reads a patient's series of one analyte in time order, and the previous value before a
/// time is the first item of a descending Query.
pub fn observation_sk(loinc: &str, collected_at: &str, test_id: Uuid) -> String {
    format!("{}{collected_at}#{test_id}", observation_prefix(loinc))
}

/// Bounds of a patient's observations of `loinc` collected from `from` up to, not including, `before`
/// (instants as stored, `YYYY-MM-DDTHH:MM:SSZ`). `#` sorts before every digit, so `OBS#<loinc>#<before>`
/// is below every observation collected at `before`.
pub fn observation_bounds(loinc: &str, from: &str, before: &str) -> (String, String) {
    let prefix = observation_prefix(loinc);
    (format!("{prefix}{from}"), format!("{prefix}{before}"))
}

/// GSI partition of the bookings of one site's local day (`DAY#<site>#YYYY-MM-DD`).
pub fn bookings_by_day_pk(site: &str, local_date: Date) -> String {
    format!("DAY#{site}#{}", timefmt::date(local_date))
}

/// Before sites (read only by the sites migration): prefix of the partitions of the UTC day slot counters (`SLOTS#YYYY-MM-DD`).
pub const LEGACY_SLOTS_PREFIX: &str = "SLOTS#";

/// GSI sort key of a booking in its day: slot start then booking id.
pub fn bookings_by_day_sk(slot_start: SlotStart, booking_id: Uuid) -> String {
    format!("{slot_start}#{booking_id}")
}

/// Partition holding every site: the list of sites is one Query.
pub const SITES_PK: &str = "SITES";

/// Sort key of one site in [`SITES_PK`].
pub fn site_sk(code: &str) -> String {
    format!("SITE#{code}")
}

/// Partition of one site's local day: the day's rule (if any) and its slots, so the slots view and a booking's
/// read of the day are one Query, strongly consistent when a booking needs it.
pub fn site_day_pk(site: &str, local_date: Date) -> String {
    format!("SITEDAY#{site}#{}", timefmt::date(local_date))
}

/// Sort key of a day's rule (closed, other hours, other capacity) in its [`site_day_pk`] partition.
pub const DAY_RULE_SK: &str = "RULE";

/// Sort key of one slot of a site's day: its start (UTC).
pub fn site_slot_sk(slot_start: SlotStart) -> String {
    format!("SLOT#{slot_start}")
}

/// Attribute of place `index` on a slot item (`P0`, `P1`, …): absent when free, else the booking or the
/// hold (with its expiry) that has it.
pub fn place_attribute(index: u32) -> String {
    format!("P{index}")
}

/// Partition listing a site's day rules by date (a copy of each rule, written in the same transaction).
pub fn site_rules_pk(site: &str) -> String {
    format!("SITERULES#{site}")
}

/// Sort key of one day rule in [`site_rules_pk`].
pub fn site_rule_sk(local_date: Date) -> String {
    format!("DAY#{}", timefmt::date(local_date))
}

/// A [`day_bounds`] bound as a bound on [`site_rule_sk`] (`DAY#` + the bound).
pub fn site_rule_sk_bound(bound: &str) -> String {
    format!("DAY#{bound}")
}

/// Partition of a site's accession counter for one local day: check-ins number their samples from it.
pub fn accession_pk(site: &str, local_date: Date) -> String {
    format!("ACCESSION#{site}#{}", timefmt::date(local_date))
}

/// Sort key of an accession counter.
pub const ACCESSION_SK: &str = "ACCESSION";

/// Sort key of a patient's live hold at `site`, in the patient's partition: one place held per site at a time.
pub fn patient_hold_sk(site: &str) -> String {
    format!("HOLD#{site}")
}

/// Partition of one hold on a place.
pub fn hold_pk(hold_id: Uuid) -> String {
    format!("HOLD#{hold_id}")
}

/// Sort key of a hold.
pub const HOLD_SK: &str = "HOLD";

/// Partition holding the current version of every test type: the catalog is one Query.
pub const CATALOG_PK: &str = "CATALOG";

/// Sort key of a test type's current version in the catalog partition.
pub fn catalog_sk(code: &str) -> String {
    format!("TESTTYPE#{code}")
}

/// Partition of every version of one test type.
pub fn test_type_pk(code: &str) -> String {
    format!("TESTTYPE#{code}")
}

/// Sort key of one test type version (zero-padded so versions sort numerically).
pub fn test_type_version_sk(version: u32) -> String {
    format!("VERSION#{version:06}")
}

/// Partition of every webhook endpoint: `WEBHOOKS` (at most [`MAX_WEBHOOKS`](crate::domain::webhook::MAX_WEBHOOKS)
/// items and their counter, so one Query lists them all).
pub const WEBHOOKS_PK: &str = "WEBHOOKS";

/// Sort key of the webhook counter in [`WEBHOOKS_PK`].
pub const WEBHOOK_COUNT_SK: &str = "COUNT";

/// Sort key of a webhook: `WEBHOOK#<id>`.
pub fn webhook_sk(webhook_id: Uuid) -> String {
    format!("WEBHOOK#{webhook_id}")
}

/// Sort-key prefix of the webhooks in [`WEBHOOKS_PK`].
pub const WEBHOOK_PREFIX: &str = "WEBHOOK#";

/// Partition of a webhook's outbox, the events still to deliver to it: `OUTBOX#<webhookId>`, sorted by
/// [`event_sk`] (occurrence order).
pub fn outbox_pk(webhook_id: Uuid) -> String {
    format!("OUTBOX#{webhook_id}")
}

/// Partition of a webhook's deliveries log: `DELIVERIES#<webhookId>`, sorted by [`attempt_sk`].
pub fn deliveries_pk(webhook_id: Uuid) -> String {
    format!("DELIVERIES#{webhook_id}")
}

/// Sort key of one delivery attempt: `ATTEMPT#<attemptId>` (a UUID v7, so the log sorts by time).
pub fn attempt_sk(attempt_id: Uuid) -> String {
    format!("ATTEMPT#{attempt_id}")
}

/// Partition of the open critical-value alerts: `ALERTS`, sorted by [`alert_sk`] (oldest first). Critical
/// results are a few in a hundred, so one partition holds every open one.
pub const ALERTS_PK: &str = "ALERTS";

/// Sort key of an open alert: `ALERT#<alertId>` (the `result.critical` event's id, a UUID v7: time order).
pub fn alert_sk(alert_id: Uuid) -> String {
    format!("ALERT#{alert_id}")
}

/// Sort key of an acknowledged alert, kept in its patient's partition: `ALERTACK#<alertId>`.
pub fn alert_ack_sk(alert_id: Uuid) -> String {
    format!("ALERTACK#{alert_id}")
}

/// Partition of the reminders due in one UTC hour: `REMINDERS#<YYYY-MM-DDTHH>`, sorted by [`reminder_sk`]. The
/// due-time index: a reminder is written, moved and deleted in its booking's transactions, and the reminder
/// worker reads one hour's partition with one Query.
pub fn reminders_pk(due_at: &str) -> String {
    format!("REMINDERS#{}", due_at.get(..13).unwrap_or(due_at))
}

/// Sort key of a reminder: `<dueAt>#<bookingId>`.
pub fn reminder_sk(due_at: &str, booking_id: Uuid) -> String {
    format!("{due_at}#{booking_id}")
}

/// Partition of the e-mails sent to one patient that must not repeat soon: `MAILED#<patientId>`.
pub fn mailed_pk(patient_id: Uuid) -> String {
    format!("MAILED#{patient_id}")
}

/// Sort key of the last "results ready" e-mail of a booking: `RESULTS#<bookingId>` (one mail per booking
/// per quiet period, however many of its tests are released together).
pub fn results_mailed_sk(booking_id: Uuid) -> String {
    format!("RESULTS#{booking_id}")
}

/// Partition of the background workers' leases: `LEASES`.
pub const LEASES_PK: &str = "LEASES";

/// Lease (and checkpoint) of one shard of the table's stream: `STREAM#<shardId>`.
pub fn stream_lease_sk(shard_id: &str) -> String {
    format!("STREAM#{shard_id}")
}

/// Lease of the reminder worker: `REMINDERS`.
pub const REMINDERS_LEASE_SK: &str = "REMINDERS";

/// Lease of one webhook's outbox (the replica that delivers to it): `OUTBOX#<webhookId>`.
pub fn outbox_lease_sk(webhook_id: Uuid) -> String {
    format!("OUTBOX#{webhook_id}")
}

/// Partition of an idempotency record, scoped to the caller that sent the key: a SHA-256 of the
/// length-prefixed caller and key, so no caller's key can name another caller's record (with `#` allowed in
/// both, `a` + `b#c` and `a#b` + `c` were one key once) and the key's text is not stored in a key.
pub fn idempotency_pk(caller: &str, key: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    for part in [caller, key] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    let hex: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
    format!("IDEMPOTENCY#{hex}")
}

/// Sort key of an idempotency record.
pub const IDEMPOTENCY_SK: &str = "IDEMPOTENCY";

/// Partition of the migration ledger and its lease.
pub const MIGRATIONS_PK: &str = "MIGRATIONS";

/// Sort key of one applied migration (its version, zero-padded).
pub fn migration_sk(version: u32) -> String {
    format!("MIGRATION#{version:04}")
}

/// Sort key prefix of applied migrations.
pub const MIGRATION_SK_PREFIX: &str = "MIGRATION#";

/// Sort key of the lease that lets one process at a time apply migrations.
pub const MIGRATION_LEASE_SK: &str = "LEASE";

/// Sort key of a long migration's progress (where its Scan resumes), beside the ledger.
pub fn migration_progress_sk(version: u32) -> String {
    format!("PROGRESS#{version:04}")
}

/// Partition of a patient's audit events in one month: kept out of the patient's item collection, whose size
/// an LSI caps at 10 GB.
pub fn audit_pk(patient_id: Uuid, month: Month) -> String {
    format!("AUDIT#{patient_id}#{month}")
}

/// Sort key of one audit event: time then id.
pub fn audit_sk(at: &str, event_id: Uuid) -> String {
    format!("{at}#{event_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    #[test]
    fn event_delivery_keys_have_their_exact_formats() {
        let (w, a, p, b) = (id(1), id(2), id(3), id(4));
        let one = "00000000-0000-0000-0000-000000000001";
        assert_eq!((WEBHOOKS_PK, WEBHOOK_COUNT_SK), ("WEBHOOKS", "COUNT"));
        assert_eq!(webhook_sk(w), format!("WEBHOOK#{one}"));
        assert!(webhook_sk(w).starts_with(WEBHOOK_PREFIX) && !WEBHOOK_COUNT_SK.starts_with(WEBHOOK_PREFIX));
        assert_eq!(outbox_pk(w), format!("OUTBOX#{one}"));
        assert_eq!(deliveries_pk(w), format!("DELIVERIES#{one}"));
        assert_eq!(attempt_sk(a), "ATTEMPT#00000000-0000-0000-0000-000000000002");
        assert_eq!(ALERTS_PK, "ALERTS");
        assert_eq!(alert_sk(a), "ALERT#00000000-0000-0000-0000-000000000002");
        assert_eq!(alert_ack_sk(a), "ALERTACK#00000000-0000-0000-0000-000000000002");
        assert_eq!(reminders_pk("2026-12-01T07:15:00.000Z"), "REMINDERS#2026-12-01T07");
        assert_eq!(
            reminder_sk("2026-12-01T07:15:00.000Z", b),
            "2026-12-01T07:15:00.000Z#00000000-0000-0000-0000-000000000004"
        );
        assert_eq!(mailed_pk(p), "MAILED#00000000-0000-0000-0000-000000000003");
        assert_eq!(results_mailed_sk(b), "RESULTS#00000000-0000-0000-0000-000000000004");
        assert_eq!((LEASES_PK, REMINDERS_LEASE_SK), ("LEASES", "REMINDERS"));
        assert_eq!(stream_lease_sk("shardId-0001"), "STREAM#shardId-0001");
        assert_eq!(outbox_lease_sk(w), format!("OUTBOX#{one}"));
    }

    #[test]
    fn patient_and_booking_tree_keys_have_their_exact_formats() {
        let (p, b, t, n) = (id(1), id(2), id(3), id(4));
        assert_eq!(patient_pk(p), "PATIENT#00000000-0000-0000-0000-000000000001");
        assert_eq!(booking_sk(b), "BOOKING#00000000-0000-0000-0000-000000000002");
        assert_eq!(
            test_sk(b, t),
            "BOOKING#00000000-0000-0000-0000-000000000002#TEST#00000000-0000-0000-0000-000000000003"
        );
        assert_eq!(result_sk(b, t), format!("{}#RESULT", test_sk(b, t)));
        assert_eq!(
            note_sk(b, t, n),
            format!("{}#NOTE#00000000-0000-0000-0000-000000000004", test_sk(b, t))
        );
        assert_eq!(PATIENT_PROFILE_SK, "PROFILE");
    }

    #[test]
    fn every_item_of_a_booking_tree_starts_with_the_booking_key_and_no_other_booking_does() {
        let (b, other, t) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let prefix = booking_sk(b);
        for sk in [test_sk(b, t), result_sk(b, t), note_sk(b, t, Uuid::now_v7())] {
            assert!(sk.starts_with(&prefix), "{sk}");
        }
        for sk in [booking_sk(other), test_sk(other, t), result_revision_sk(b, t, 1)] {
            assert!(!sk.starts_with(&prefix), "{sk}");
        }
    }

    #[test]
    fn revisions_and_versions_sort_numerically() {
        let (b, t) = (id(2), id(3));
        assert_eq!(
            result_revision_sk(b, t, 7),
            "RESULTREV#00000000-0000-0000-0000-000000000002#00000000-0000-0000-0000-000000000003#000007"
        );
        assert!(result_revision_sk(b, t, 9) < result_revision_sk(b, t, 10));
        assert_eq!(test_type_version_sk(3), "VERSION#000003");
        assert!(test_type_version_sk(9) < test_type_version_sk(10));
        assert_eq!(migration_sk(1), "MIGRATION#0001");
        assert!(migration_sk(1).starts_with(MIGRATION_SK_PREFIX));
    }

    #[test]
    fn index_keys_have_their_exact_formats() {
        let (b, t) = (id(2), id(3));
        let slot = SlotStart::new(time::macros::datetime!(2026-12-01 07:15 UTC));
        let (day, month) = (slot.date(), Month::of(slot.date()));
        assert_eq!(
            booking_by_slot_sk(slot, b),
            "2026-12-01T07:15:00Z#00000000-0000-0000-0000-000000000002"
        );
        assert_eq!(tests_by_type_pk("CBC", month), "TESTTYPE#CBC#2026-12");
        assert_eq!(
            tests_by_type_sk(slot, b, t),
            "2026-12-01T07:15:00Z#00000000-0000-0000-0000-000000000002#00000000-0000-0000-0000-000000000003"
        );
        assert_eq!(bookings_by_day_pk("BER", day), "DAY#BER#2026-12-01");
        assert_eq!(bookings_by_day_sk(slot, b), booking_by_slot_sk(slot, b));
        assert_eq!(site_day_pk("BER", day), "SITEDAY#BER#2026-12-01");
        assert_eq!(site_slot_sk(slot), "SLOT#2026-12-01T07:15:00Z");
        assert_eq!(DAY_RULE_SK, "RULE");
        assert!(
            DAY_RULE_SK < site_slot_sk(slot).as_str(),
            "the rule comes first in the day's Query"
        );
        assert_eq!(place_attribute(7), "P7");
        assert_eq!((SITES_PK, site_sk("BER")), ("SITES", "SITE#BER".to_owned()));
        assert_eq!(site_rules_pk("BER"), "SITERULES#BER");
        assert_eq!(site_rule_sk(day), "DAY#2026-12-01");
        assert_eq!(hold_pk(b), "HOLD#00000000-0000-0000-0000-000000000002");
        assert_eq!(HOLD_SK, "HOLD");
        assert_eq!(patient_hold_sk("BER"), "HOLD#BER");
        assert_eq!(accession_pk("BER", day), "ACCESSION#BER#2026-12-01");
        assert_eq!(ACCESSION_SK, "ACCESSION");
        assert_eq!(patient_slot_sk(slot), "SLOTBOOKING#2026-12-01T07:15:00Z");
        assert!(
            !patient_slot_sk(slot).starts_with(&booking_sk(b)[..8]),
            "outside every booking tree"
        );
        assert_eq!(AWAITING_REVIEW_PK, "WORKLIST");
    }

    #[test]
    fn ranges_become_month_buckets_and_sort_key_bounds() {
        use time::macros::date;
        let range = DateRange::new(date!(2026 - 11 - 30), date!(2027 - 01 - 02)).unwrap();
        let months: Vec<String> = months(range).iter().map(Month::to_string).collect();
        assert_eq!(months, ["2026-11", "2026-12", "2027-01"]);
        assert_eq!(day_bounds(range), ("2026-11-30".into(), "2027-01-02~".into()));
        assert_eq!(
            day_bounds(DateRange::open(None, None).unwrap()),
            ("0".into(), "~".into())
        );
        let slot = "2027-01-02T17:45:00Z";
        assert!(day_bounds(range).0.as_str() < slot && slot < day_bounds(range).1.as_str());
        assert_eq!(Month::of_instant("2026-13-01T00:00:00Z"), None);
        assert_eq!(
            Month::of_instant("0815-01-01T00:00:00Z").unwrap().to_string(),
            "0815-01"
        );
    }

    #[test]
    fn critical_results_sort_before_older_normal_ones_on_the_worklist() {
        let t = id(3);
        let critical_late = awaiting_review_sk(true, "2026-12-02T10:00:00Z", t);
        let normal_early = awaiting_review_sk(false, "2026-12-01T10:00:00Z", t);
        assert_eq!(
            critical_late,
            "0#2026-12-02T10:00:00Z#00000000-0000-0000-0000-000000000003"
        );
        assert!(critical_late < normal_early);
        assert!(awaiting_review_sk(false, "2026-12-01T09:00:00Z", t) < normal_early);
    }

    #[test]
    fn catalog_idempotency_and_audit_keys_have_their_exact_formats() {
        assert_eq!(CATALOG_PK, "CATALOG");
        assert_eq!(catalog_sk("CBC"), "TESTTYPE#CBC");
        assert_eq!(test_type_pk("CBC"), "TESTTYPE#CBC");
        assert_eq!(
            idempotency_pk("u1", "k1"),
            "IDEMPOTENCY#df9810e22e9da6fe1d8e020cea2ff2c7aa6fa2fd9c17dcf76537e51ebe368d3b"
        );
        assert_ne!(idempotency_pk("lab:a", "b#c"), idempotency_pk("lab:a#b", "c"));
        assert_eq!(
            audit_pk(id(1), Month::of_instant("2026-12-01T00:00:00.000Z").unwrap()),
            "AUDIT#00000000-0000-0000-0000-000000000001#2026-12"
        );
        assert_eq!(
            audit_sk("2026-12-01T00:00:00Z", id(5)),
            "2026-12-01T00:00:00Z#00000000-0000-0000-0000-000000000005"
        );
    }
}
