//! The domain-event feed: what changed, in time order, for other systems to follow.

use std::time::Duration;

use time::{Date, OffsetDateTime};

use super::{Cursor, FieldError, Page, ServiceError};
use crate::{
    domain::{
        event::{DomainEvent, EventType},
        timefmt,
    },
    store::{Store, events::EventFeed},
};

/// Event use cases.
#[derive(Debug, Clone)]
pub struct Events {
    store: Store,
    retention_days: u32,
    settle: Duration,
}

impl Events {
    /// The feed over `store`, whose events are kept `retention_days`, staying `settle` behind now.
    pub fn new(store: Store, retention_days: u32, settle: Duration) -> Self {
        Self {
            store,
            retention_days,
            settle,
        }
    }

    /// A page of the feed from the day `from` (default: today), of `types` (all when empty), in time order,
    /// and whether it reached the end (caught up); the next cursor is always there (at the end: where to poll
    /// from).
    ///
    /// # Errors
    /// [`ServiceError::Invalid`] for `from` in the future or before the retention period; engine failures.
    pub async fn feed(
        &self,
        from: Option<Date>,
        types: Vec<EventType>,
        limit: i32,
        start: Option<&Cursor>,
    ) -> Result<(Page<DomainEvent>, bool), ServiceError> {
        let now = OffsetDateTime::now_utc();
        let today = now.date();
        let oldest = today - time::Duration::days(i64::from(self.retention_days));
        // With a cursor, `from` has done its work (it chose the first day): the cursor's day only has to be
        // one whose events are still kept, so a consumer's cursor keeps working tomorrow and next month.
        let from = match start {
            Some(_) => oldest,
            None => from.unwrap_or(today),
        };
        if start.is_none() && (from > today || from < oldest) {
            return Err(ServiceError::Invalid(vec![FieldError::new(
                "from",
                format!(
                    "must be a day from {} (events are kept {} days) to today",
                    timefmt::date(oldest),
                    self.retention_days
                ),
            )]));
        }
        let feed = EventFeed {
            from,
            today,
            settled: timefmt::instant(now - self.settle),
            types,
        };
        let (page, caught_up) = self.store.events_page(&feed, limit, Cursor::key(start)).await?;
        Ok((page.into(), caught_up))
    }
}
