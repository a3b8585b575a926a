//! Domain events: written in the transaction of the change they tell of (never a second write that can fail on
//! its own), one partition per UTC day, and read back as a feed.

use std::collections::BTreeMap;

use time::Date;

use super::{
    Page, PageKey, Store, StoreError,
    items::{AlertItem, EventItem, ReminderItem},
    keys, s, to_item,
    tx::Tx,
};
use crate::domain::{
    event::{DomainEvent, EventType},
    timefmt,
};

/// What a feed page asks: events of the days `from` to `today`, of `types` (all when empty), that occurred
/// before `settled` (a moment a little in the past: a transaction still in flight may yet commit an event
/// stamped before it was read, so the feed does not go past what may still change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFeed {
    /// First day.
    pub from: Date,
    /// Today (the last day).
    pub today: Date,
    /// Only events that occurred before this instant (`timefmt` text).
    pub settled: String,
    /// Only these types; empty: all.
    pub types: Vec<EventType>,
}

/// `events` stamped now, with fresh ids: for a transaction sent again after its first send was refused, so
/// the time an event carries is never older than the send that commits it by more than that one call.
pub(crate) fn restamped(events: &[DomainEvent]) -> Vec<DomainEvent> {
    let now = timefmt::now();
    events
        .iter()
        .map(|e| DomainEvent {
            id: uuid::Uuid::now_v7(),
            occurred_at: now.clone(),
            ..e.clone()
        })
        .collect()
}

/// The entry of a tail page key that holds its lower bound (an `SK` value; never sent as a key attribute).
const AFTER: &str = "after";

impl Store {
    /// Adds a Put of each of `events` (new items) to `tx`, under `label`, and of the alert each
    /// `result.critical` raises.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] when an event does not serialise.
    pub(crate) fn put_events<L: Copy + PartialEq + std::fmt::Debug>(
        &self,
        tx: &mut Tx<L>,
        label: L,
        events: &[DomainEvent],
    ) -> Result<(), StoreError> {
        for event in events {
            tx.put_new(label, to_item(&EventItem::new(event, self.event_retention_days))?)?;
            // A critical value raises its alert in the same transaction: it is listed until acknowledged.
            if event.kind == EventType::ResultCritical
                && let Some(alert) = AlertItem::open(event)
            {
                tx.put_new(label, to_item(&alert)?)?;
            }
            self.keep_reminder(tx, label, event)?;
        }
        Ok(())
    }

    /// The reminder of a booking event, in the event's transaction: a booking puts its reminder (when it is
    /// still ahead), a cancellation deletes it, a reschedule moves it.
    fn keep_reminder<L: Copy + PartialEq + std::fmt::Debug>(
        &self,
        tx: &mut Tx<L>,
        label: L,
        event: &DomainEvent,
    ) -> Result<(), StoreError> {
        let Some(before) = self.reminder_before else {
            return Ok(());
        };
        let (Some(patient), Some(booking)) = (event.patient_id, event.booking_id) else {
            return Ok(());
        };
        let due = |slot: &str| {
            timefmt::parse_instant(slot)
                .map(|at| (timefmt::instant(at - before), at))
                .filter(|(_, at)| *at - before > time::OffsetDateTime::now_utc())
        };
        let slot = event.data.get("slotStart").map(String::as_str);
        let (put, delete) = match event.kind {
            EventType::BookingCreated => (slot, None),
            EventType::BookingCancelled => (None, slot),
            EventType::BookingRescheduled => (slot, event.data.get("from").map(String::as_str)),
            _ => (None, None),
        };
        let put_due = put.and_then(due);
        if let Some((due_at, _)) =
            delete.and_then(|s| timefmt::parse_instant(s).map(|at| (timefmt::instant(at - before), at)))
            // Moved to the same time (at another site): the Put below replaces it; a transaction may not
            // name one item twice.
            && put_due.as_ref().is_none_or(|(put_at, _)| *put_at != due_at)
        {
            tx.delete(
                label,
                super::key(keys::reminders_pk(&due_at), keys::reminder_sk(&due_at, booking)),
                super::expr::Expr::new(),
            )?;
        }
        if let (Some(slot), Some((due_at, at))) = (put, put_due) {
            let reminder = ReminderItem {
                pk: keys::reminders_pk(&due_at),
                sk: keys::reminder_sk(&due_at, booking),
                entity: super::items::entity::REMINDER.to_owned(),
                due_at,
                patient_id: patient,
                booking_id: booking,
                site: event.data.get("site").cloned().unwrap_or_default(),
                slot_start: slot.to_owned(),
                expires_at: at.unix_timestamp() + 7 * 86_400,
            };
            // A plain Put: a booking moved back to a slot it had keeps one reminder.
            tx.put(label, to_item(&reminder)?, super::expr::Expr::new())?;
        }
        Ok(())
    }

    /// One page of the feed: one strongly consistent Query of one day's partition, in `occurredAt` order, and
    /// whether it reached the end (caught up). The next page key is always there:
    /// - after the last event read, when the Query stopped at its limit;
    /// - the next day, when this day is read to its end and `feed.settled` has passed the day's end;
    /// - else (caught up) a tail key at `feed.settled`: nothing can commit below it any more, so the next poll
    ///   reads from there (`SK BETWEEN <tail> AND <its settled>`), never the same events again.
    ///
    /// # Errors
    /// [`StoreError::ForeignKey`] for a page key outside the days (before `feed.from`, after tomorrow);
    /// engine failures.
    pub async fn events_page(
        &self,
        feed: &EventFeed,
        limit: i32,
        start: Option<&PageKey>,
    ) -> Result<(Page<DomainEvent>, bool), StoreError> {
        let day = match start.and_then(|k| k.bucket.as_deref()) {
            None if start.is_none() => feed.from,
            None => return Err(StoreError::ForeignKey),
            // Up to tomorrow: a replica whose clock is ahead may have handed out its today.
            Some(text) => timefmt::parse_date(text)
                .filter(|d| *d >= feed.from && Some(*d) <= feed.today.next_day())
                .ok_or(StoreError::ForeignKey)?,
        };
        let day_text = timefmt::date(day);
        let tail = |at: &str| PageKey {
            key: BTreeMap::from([(AFTER.to_owned(), at.to_owned())]),
            bucket: Some(day_text.clone()),
        };
        let after = start.and_then(|k| k.key.get(AFTER)).cloned();
        if after.as_deref().is_some_and(|a| a >= feed.settled.as_str()) {
            // A tail handed out by a replica whose clock is ahead of this one's: nothing new below it yet.
            let next = start.cloned().unwrap_or_else(|| tail(&feed.settled));
            return Ok((
                Page {
                    items: Vec::new(),
                    next: Some(next),
                },
                true,
            ));
        }
        let condition = if after.is_some() {
            "#pk = :pk AND #sk BETWEEN :after AND :settled"
        } else {
            "#pk = :pk AND #sk < :settled"
        };
        let mut query = self
            .query_builder()
            .key_condition_expression(condition)
            .expression_attribute_names("#pk", keys::PK)
            .expression_attribute_names("#sk", keys::SK)
            .expression_attribute_values(":pk", s(keys::events_pk(&day_text)))
            .expression_attribute_values(":settled", s(&feed.settled))
            .consistent_read(true);
        if let Some(after) = &after {
            query = query.expression_attribute_values(":after", s(after));
        }
        if !feed.types.is_empty() {
            let names: Vec<String> = (0..feed.types.len()).map(|i| format!(":t{i}")).collect();
            query = query
                .filter_expression(format!("#type IN ({})", names.join(", ")))
                .expression_attribute_names("#type", "type");
            for (name, kind) in names.iter().zip(&feed.types) {
                query = query.expression_attribute_values(name, s(kind.name()));
            }
        }
        // A tail key carries no key attributes: the Query starts at its bound instead.
        let resume = start.filter(|k| k.key.contains_key(keys::SK));
        let page = self
            .query_page(query, limit, resume, &[keys::PK, keys::SK], EventItem::into_event)
            .await?;
        // The instant the next day starts: once `settled` has passed it, nothing more can land in this day.
        let day_over = day
            .next_day()
            .is_some_and(|next| feed.settled.as_str() >= format!("{}T00:00:00.000Z", timefmt::date(next)).as_str());
        let (next, caught_up) = match page.next {
            Some(mut key) => {
                if let Some(after) = &after {
                    // Keep the bound: the next Query of this poll starts at the key, within the same window.
                    key.key.insert(AFTER.to_owned(), after.clone());
                }
                key.bucket = Some(day_text.clone());
                (key, false)
            }
            None if day_over => (
                PageKey {
                    key: BTreeMap::new(),
                    bucket: day.next_day().map(timefmt::date),
                },
                false,
            ),
            None => (tail(&feed.settled), true),
        };
        Ok((
            Page {
                items: page.items,
                next: Some(next),
            },
            caught_up,
        ))
    }
}
