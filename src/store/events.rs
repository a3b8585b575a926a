//! Domain events: written in the transaction of the change they tell of (never a second write that can fail on
//! its own), one partition per UTC day, and read back as a feed.

use std::collections::BTreeMap;

use time::Date;

use super::{Page, PageKey, Store, StoreError, items::EventItem, keys, s, to_item, tx::Tx};
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

impl Store {
    /// Adds a Put of each of `events` (new items) to `tx`, under `label`.
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
        }
        Ok(())
    }

    /// One page of the feed: one strongly consistent Query of one day's partition, in `occurredAt` order, and
    /// whether it read to the end of today (caught up). The next page key is always there: after the last event
    /// read, or (a day read to its end) the next day, or (today read to its end) where this page stopped, to
    /// poll from later.
    ///
    /// # Errors
    /// [`StoreError::ForeignKey`] for a page key outside the days; engine failures.
    pub async fn events_page(
        &self,
        feed: &EventFeed,
        limit: i32,
        start: Option<&PageKey>,
    ) -> Result<(Page<DomainEvent>, bool), StoreError> {
        let day = match start.and_then(|k| k.bucket.as_deref()) {
            None if start.is_none() => feed.from,
            None => return Err(StoreError::ForeignKey),
            Some(text) => timefmt::parse_date(text)
                .filter(|d| *d >= feed.from && *d <= feed.today)
                .ok_or(StoreError::ForeignKey)?,
        };
        let day_text = timefmt::date(day);
        let mut query = self
            .query_builder()
            .key_condition_expression("#pk = :pk AND #sk < :settled")
            .expression_attribute_names("#pk", keys::PK)
            .expression_attribute_names("#sk", keys::SK)
            .expression_attribute_values(":pk", s(keys::events_pk(&day_text)))
            .expression_attribute_values(":settled", s(&feed.settled))
            .consistent_read(true);
        if !feed.types.is_empty() {
            let names: Vec<String> = (0..feed.types.len()).map(|i| format!(":t{i}")).collect();
            query = query
                .filter_expression(format!("#type IN ({})", names.join(", ")))
                .expression_attribute_names("#type", "type");
            for (name, kind) in names.iter().zip(&feed.types) {
                query = query.expression_attribute_values(name, s(kind.name()));
            }
        }
        let resume = start.filter(|k| !k.key.is_empty());
        let page = self
            .query_page(query, limit, resume, &[keys::PK, keys::SK], EventItem::into_event)
            .await?;
        let caught_up = page.next.is_none() && day >= feed.today;
        let next = match page.next {
            Some(mut key) => {
                key.bucket = Some(day_text);
                key
            }
            None if day < feed.today => PageKey {
                key: BTreeMap::new(),
                bucket: day.next_day().map(timefmt::date),
            },
            None => match page.items.last() {
                // Poll from after the last event seen today.
                Some(last) => PageKey {
                    key: BTreeMap::from([
                        (keys::PK.to_owned(), keys::events_pk(&day_text)),
                        (keys::SK.to_owned(), keys::event_sk(&last.occurred_at, last.id)),
                    ]),
                    bucket: Some(day_text),
                },
                // Nothing new: from where this page started.
                None => start.cloned().unwrap_or(PageKey {
                    key: BTreeMap::new(),
                    bucket: Some(day_text),
                }),
            },
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
