//! Webhook endpoints (`WEBHOOKS` / `WEBHOOK#<id>`, with their counter), each endpoint's outbox
//! (`OUTBOX#<webhookId>` / `<occurredAt>#<eventId>`: the events still to deliver, in occurrence order) and its
//! deliveries log (`DELIVERIES#<webhookId>` / `ATTEMPT#<attemptId>`).

use uuid::Uuid;

use super::{
    Page, PageKey, Store, StoreError,
    expr::Expr,
    from_item,
    items::{AttemptItem, CountItem, EventItem, OutboxItem, WebhookItem, attr, entity},
    key, keys, s, to_item,
    tx::{Sent, Tx},
};
use crate::domain::{
    event::DomainEvent,
    webhook::{Attempt, MAX_WEBHOOKS, Webhook},
};

/// The actions of the webhook writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WebhookAction {
    /// The webhook item.
    Webhook,
    /// The counter of webhooks.
    Count,
    /// A domain event.
    Event,
    /// The outbox entry.
    Outbox,
    /// The attempt's log entry.
    Attempt,
}

/// How [`Store::create_webhook`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateWebhookOutcome {
    /// Written.
    Created,
    /// There are [`MAX_WEBHOOKS`] already.
    TooMany,
    /// The fresh id is taken.
    IdTaken,
}

/// How [`Store::replace_webhook`] and [`Store::delete_webhook`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookWriteOutcome {
    /// Written.
    Done,
    /// No such webhook.
    NotFound,
    /// Its version moved on since it was read.
    VersionMismatch,
}

/// How an outbox entry's attempt was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordOutcome {
    /// The entry was changed (or deleted) and the attempt logged.
    Recorded,
    /// The entry is gone or changed: another replica delivered it meanwhile (its lease ran out under this
    /// one), or it was queued again. Nothing written.
    Stale,
}

/// How [`Store::requeue`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequeueOutcome {
    /// The event is in the outbox again.
    Queued,
    /// It is in the outbox already (still waiting for delivery).
    AlreadyQueued,
}

/// One outbox entry: an event to deliver to one webhook, and its attempts so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    /// The webhook.
    pub webhook_id: Uuid,
    /// The event.
    pub event: DomainEvent,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Due time, epoch milliseconds.
    pub next_at: i64,
    /// The first attempt's time, once there was one.
    pub first_attempt_at: Option<String>,
}

impl From<OutboxItem> for Queued {
    fn from(item: OutboxItem) -> Self {
        Self {
            webhook_id: item.webhook_id,
            event: item.event.into(),
            attempts: item.attempts,
            next_at: item.next_at,
            first_attempt_at: item.first_attempt_at,
        }
    }
}

impl Queued {
    fn key(&self) -> super::Item {
        key(
            keys::outbox_pk(self.webhook_id),
            keys::event_sk(&self.event.occurred_at, self.event.id),
        )
    }
}

impl Store {
    /// Every webhook: one strongly consistent Query of the `WEBHOOKS` partition (a webhook created a moment
    /// ago is in it: the relay reads it before fanning an event out).
    ///
    /// # Errors
    /// Engine failures, malformed items.
    pub async fn webhooks(&self) -> Result<Vec<Webhook>, StoreError> {
        let items = self
            .query_all(
                self.query_builder()
                    .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                    .expression_attribute_names("#pk", keys::PK)
                    .expression_attribute_names("#sk", keys::SK)
                    .expression_attribute_values(":pk", s(keys::WEBHOOKS_PK))
                    .expression_attribute_values(":prefix", s(keys::WEBHOOK_PREFIX))
                    .consistent_read(true),
            )
            .await?;
        items
            .into_iter()
            .map(|item| from_item::<WebhookItem>(item).map(WebhookItem::into_webhook))
            .collect()
    }

    /// One webhook (a strongly consistent GetItem).
    ///
    /// # Errors
    /// Engine failures, a malformed item.
    pub async fn webhook(&self, id: Uuid) -> Result<Option<Webhook>, StoreError> {
        self.get_consistent(keys::WEBHOOKS_PK.to_owned(), keys::webhook_sk(id))
            .await?
            .map(|item| from_item::<WebhookItem>(item).map(WebhookItem::into_webhook))
            .transpose()
    }

    /// Writes a new webhook and counts it, in one transaction: at most [`MAX_WEBHOOKS`].
    ///
    /// # Errors
    /// Engine failures.
    pub async fn create_webhook(&self, webhook: &Webhook) -> Result<CreateWebhookOutcome, StoreError> {
        let mut tx = Tx::new(self);
        tx.put_new(WebhookAction::Webhook, to_item(&WebhookItem::new(webhook))?)?;
        tx.update(
            WebhookAction::Count,
            key(keys::WEBHOOKS_PK, keys::WEBHOOK_COUNT_SK),
            Expr::new()
                .absent_or_lt(attr::COUNT, MAX_WEBHOOKS)
                .set(attr::ENTITY, entity::WEBHOOK_COUNT)
                .increment(attr::COUNT),
        )?;
        match self.send(tx).await? {
            Sent::Committed => Ok(CreateWebhookOutcome::Created),
            Sent::Rejected(r) if r.has(WebhookAction::Count) => Ok(CreateWebhookOutcome::TooMany),
            Sent::Rejected(r) if r.has(WebhookAction::Webhook) => Ok(CreateWebhookOutcome::IdTaken),
            Sent::Rejected(r) => Err(r.unexpected()),
        }
    }

    /// Replaces webhook `webhook.id` where its version is `expected` (the new item has `expected + 1`).
    /// `events` (a `webhook.disabled`) are written in the same transaction.
    ///
    /// # Errors
    /// Engine failures.
    pub async fn replace_webhook(
        &self,
        webhook: &Webhook,
        expected: u64,
        events: &[DomainEvent],
    ) -> Result<WebhookWriteOutcome, StoreError> {
        let mut tx = Tx::new(self);
        tx.put_returning_old(
            WebhookAction::Webhook,
            to_item(&WebhookItem::new(webhook))?,
            Expr::new().exists(keys::PK).eq(attr::VERSION, expected),
        )?;
        self.put_events(&mut tx, WebhookAction::Event, events)?;
        match self.send(tx).await? {
            Sent::Committed => Ok(WebhookWriteOutcome::Done),
            Sent::Rejected(mut r) if r.has(WebhookAction::Webhook) => Ok(match r.take_item(WebhookAction::Webhook) {
                Some(_) => WebhookWriteOutcome::VersionMismatch,
                None => WebhookWriteOutcome::NotFound,
            }),
            Sent::Rejected(r) => Err(r.unexpected()),
        }
    }

    /// Deletes webhook `id` and uncounts it, in one transaction. Its outbox and log are left to TTL (the
    /// deliverer skips the entries of a webhook that is gone).
    ///
    /// # Errors
    /// Engine failures.
    pub async fn delete_webhook(&self, id: Uuid) -> Result<WebhookWriteOutcome, StoreError> {
        let mut tx = Tx::new(self);
        tx.delete(
            WebhookAction::Webhook,
            key(keys::WEBHOOKS_PK, keys::webhook_sk(id)),
            Expr::new().exists(keys::PK),
        )?;
        tx.update(
            WebhookAction::Count,
            key(keys::WEBHOOKS_PK, keys::WEBHOOK_COUNT_SK),
            Expr::new().exists(keys::PK).decrement(attr::COUNT),
        )?;
        match self.send(tx).await? {
            Sent::Committed => Ok(WebhookWriteOutcome::Done),
            Sent::Rejected(r) if r.has(WebhookAction::Webhook) => Ok(WebhookWriteOutcome::NotFound),
            Sent::Rejected(r) => Err(r.unexpected()),
        }
    }

    /// Sets webhook `id` failing since `since`, unless it is marked already (one single-action transaction).
    ///
    /// # Errors
    /// Engine failures.
    pub async fn mark_webhook_failing(&self, id: Uuid, since: &str) -> Result<(), StoreError> {
        let mut tx = Tx::new(self);
        tx.update(
            WebhookAction::Webhook,
            key(keys::WEBHOOKS_PK, keys::webhook_sk(id)),
            Expr::new().exists(keys::PK).set_once(attr::FAILING_SINCE, since),
        )?;
        match self.send(tx).await? {
            // Gone meanwhile: nothing to mark.
            Sent::Committed | Sent::Rejected(_) => Ok(()),
        }
    }

    /// Clears webhook `id`'s failing mark (it answered 2xx).
    ///
    /// # Errors
    /// Engine failures.
    pub async fn clear_webhook_failing(&self, id: Uuid) -> Result<(), StoreError> {
        let mut tx = Tx::new(self);
        tx.update(
            WebhookAction::Webhook,
            key(keys::WEBHOOKS_PK, keys::webhook_sk(id)),
            Expr::new().exists(keys::PK).remove(attr::FAILING_SINCE),
        )?;
        match self.send(tx).await? {
            Sent::Committed | Sent::Rejected(_) => Ok(()),
        }
    }

    /// Disables webhook `id` for `reason` where it is enabled, with the `webhook.disabled` event, in one
    /// transaction. `false` when it was disabled (or deleted) already.
    ///
    /// # Errors
    /// Engine failures.
    pub async fn disable_webhook(&self, id: Uuid, reason: &str, event: &DomainEvent) -> Result<bool, StoreError> {
        let mut tx = Tx::new(self);
        tx.update(
            WebhookAction::Webhook,
            key(keys::WEBHOOKS_PK, keys::webhook_sk(id)),
            Expr::new()
                .eq(attr::ENABLED, true)
                .set(attr::ENABLED, false)
                .set(attr::DISABLED_REASON, reason)
                .increment(attr::VERSION),
        )?;
        self.put_events(&mut tx, WebhookAction::Event, std::slice::from_ref(event))?;
        match self.send(tx).await? {
            Sent::Committed => Ok(true),
            Sent::Rejected(r) if r.has(WebhookAction::Webhook) => Ok(false),
            Sent::Rejected(r) => Err(r.unexpected()),
        }
    }

    /// A page of up to `limit` entries of webhook `id`'s outbox, in occurrence order, from `start` (one strongly
    /// consistent Query: an entry just deleted by a delivery is not read again).
    ///
    /// # Errors
    /// Engine failures, malformed items.
    pub async fn outbox(&self, id: Uuid, limit: i32, start: Option<&PageKey>) -> Result<Page<Queued>, StoreError> {
        self.query_page(
            self.query_builder()
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", keys::PK)
                .expression_attribute_values(":pk", s(keys::outbox_pk(id)))
                .consistent_read(true),
            limit,
            start,
            &[keys::PK, keys::SK],
            |item: OutboxItem| Queued::from(item),
        )
        .await
    }

    /// Records a delivered entry: deletes it (where its attempts are still those read) and logs the attempt,
    /// in one transaction. Once this commits the event is never sent again from this entry.
    ///
    /// # Errors
    /// Engine failures.
    pub async fn record_delivered(&self, queued: &Queued, attempt: &Attempt) -> Result<RecordOutcome, StoreError> {
        let mut tx = Tx::new(self);
        tx.delete(
            WebhookAction::Outbox,
            queued.key(),
            Expr::new().eq(attr::ATTEMPTS, queued.attempts),
        )?;
        self.log_attempt(&mut tx, queued.webhook_id, attempt)?;
        self.send_record(tx).await
    }

    /// Records a failed attempt after which the entry is retried at `next_at` (epoch ms), in one transaction.
    ///
    /// # Errors
    /// Engine failures.
    pub async fn record_retry(
        &self,
        queued: &Queued,
        attempt: &Attempt,
        next_at: i64,
    ) -> Result<RecordOutcome, StoreError> {
        let mut tx = Tx::new(self);
        tx.update(
            WebhookAction::Outbox,
            queued.key(),
            Expr::new()
                .eq(attr::ATTEMPTS, queued.attempts)
                .set(attr::ATTEMPTS, queued.attempts + 1)
                .set(attr::NEXT_AT, next_at)
                .set_once(attr::FIRST_ATTEMPT_AT, &attempt.attempted_at),
        )?;
        self.log_attempt(&mut tx, queued.webhook_id, attempt)?;
        self.send_record(tx).await
    }

    /// Records a last failed attempt (the retry period is over, or the endpoint is gone): the entry is
    /// deleted and the attempt logged, in one transaction.
    ///
    /// # Errors
    /// Engine failures.
    pub async fn record_given_up(&self, queued: &Queued, attempt: &Attempt) -> Result<RecordOutcome, StoreError> {
        self.record_delivered(queued, attempt).await
    }

    fn log_attempt(&self, tx: &mut Tx<WebhookAction>, webhook_id: Uuid, attempt: &Attempt) -> Result<(), StoreError> {
        tx.put_new(
            WebhookAction::Attempt,
            to_item(&AttemptItem::new(webhook_id, attempt, self.event_retention_days))?,
        )
    }

    async fn send_record(&self, tx: Tx<WebhookAction>) -> Result<RecordOutcome, StoreError> {
        match self.send(tx).await? {
            Sent::Committed => Ok(RecordOutcome::Recorded),
            Sent::Rejected(r) if r.only(WebhookAction::Outbox) => Ok(RecordOutcome::Stale),
            Sent::Rejected(r) => Err(r.unexpected()),
        }
    }

    /// A page of webhook `id`'s deliveries log, newest first (one Query).
    ///
    /// # Errors
    /// Engine failures, malformed items.
    pub async fn attempts_page(
        &self,
        id: Uuid,
        limit: i32,
        start: Option<&PageKey>,
    ) -> Result<Page<Attempt>, StoreError> {
        self.query_page(
            self.query_builder()
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", keys::PK)
                .expression_attribute_values(":pk", s(keys::deliveries_pk(id)))
                .scan_index_forward(false),
            limit,
            start,
            &[keys::PK, keys::SK],
            AttemptItem::into_attempt,
        )
        .await
    }

    /// One logged attempt.
    ///
    /// # Errors
    /// Engine failures, a malformed item.
    pub async fn attempt(&self, webhook_id: Uuid, attempt_id: Uuid) -> Result<Option<Attempt>, StoreError> {
        self.get_consistent(keys::deliveries_pk(webhook_id), keys::attempt_sk(attempt_id))
            .await?
            .map(|item| from_item::<AttemptItem>(item).map(AttemptItem::into_attempt))
            .transpose()
    }

    /// The event that occurred at `occurred_at` with id `id`, while it is kept (one GetItem).
    ///
    /// # Errors
    /// Engine failures, a malformed item.
    pub async fn event(&self, occurred_at: &str, id: Uuid) -> Result<Option<DomainEvent>, StoreError> {
        self.get_consistent(
            keys::events_pk(occurred_at.get(..10).unwrap_or_default()),
            keys::event_sk(occurred_at, id),
        )
        .await?
        .map(|item| from_item::<EventItem>(item).map(EventItem::into_event))
        .transpose()
    }

    /// Puts `event` in webhook `webhook_id`'s outbox again, due now, unless it is there already.
    ///
    /// # Errors
    /// Engine failures.
    pub async fn requeue(&self, webhook_id: Uuid, event: &DomainEvent) -> Result<RequeueOutcome, StoreError> {
        let mut tx = Tx::new(self);
        tx.put_new(
            WebhookAction::Outbox,
            to_item(&OutboxItem::new(webhook_id, event, self.event_retention_days))?,
        )?;
        match self.send(tx).await? {
            Sent::Committed => Ok(RequeueOutcome::Queued),
            Sent::Rejected(r) if r.has(WebhookAction::Outbox) => Ok(RequeueOutcome::AlreadyQueued),
            Sent::Rejected(r) => Err(r.unexpected()),
        }
    }

    /// The outbox entry of `event` for `webhook_id`, as an item for the relay's transaction.
    pub(crate) fn outbox_item(&self, webhook_id: Uuid, event: &DomainEvent) -> Result<super::Item, StoreError> {
        to_item(&OutboxItem::new(webhook_id, event, self.event_retention_days))
    }

    /// The counter item's current value (for tests and the planner).
    ///
    /// # Errors
    /// Engine failures.
    pub async fn webhook_count(&self) -> Result<u32, StoreError> {
        Ok(self
            .get_consistent(keys::WEBHOOKS_PK.to_owned(), keys::WEBHOOK_COUNT_SK.to_owned())
            .await?
            .map(from_item::<CountItem>)
            .transpose()?
            .map_or(0, |c| c.count))
    }
}
