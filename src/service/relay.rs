//! The relay: reads the table's DynamoDB Stream and delivers domain events to webhooks.
//!
//! Three loops run on every replica that has `MEDBOOK_RELAY=on`:
//! - **stream → outboxes.** For each shard of the stream, the replica holding the shard's lease reads its
//!   records and, for each new event item, writes one outbox entry per subscribed webhook, in the same
//!   transaction that moves the shard's checkpoint (conditional on still holding the lease). A record is
//!   fanned out exactly once; a crash before the commit means the next holder reads it again.
//! - **outbox → endpoint.** For each enabled webhook, the replica holding the outbox's lease sends the
//!   entries in occurrence order, at most one per patient at a time (so each patient's events arrive in
//!   order), several patients at once. A 2xx deletes the entry in the transaction that logs the attempt; a
//!   failure logs it and schedules a retry with exponential backoff and jitter, for `retry_for` (24 h); a
//!   410 disables the webhook. A crash between the receiver's 2xx and the commit sends that event again, with
//!   the same `webhook-id`: receivers dedupe on it.
//!
//! - **reminders.** The replica holding the `REMINDERS` lease reads the due-time index one hour's partition
//!   at a time and fires each due reminder once, as a `booking.reminder` event.
//!
//! E-mail to patients is one more outbox (the e-mail channel, [`EMAIL_CHANNEL`]), fanned out and sent like a
//! webhook's, by [`Mailer`] instead of an HTTP POST.
//!
//! Leases run out `lease` (5 s) after their last renewal, so a replica that dies loses its shards and
//! outboxes within seconds and another takes them over.

use std::{
    collections::{HashMap, HashSet},
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use futures_util::{StreamExt, stream};
use time::OffsetDateTime;
use tokio::sync::{Notify, watch};
use uuid::Uuid;

use crate::{
    domain::{
        event::{DomainEvent, EventType},
        timefmt,
        webhook::{Attempt, AttemptOutcome, EMAIL_CHANNEL, TargetPolicy, Webhook, backoff, signature},
    },
    service::email::{EmailSettings, Mailed, Mailer},
    store::{
        Store, keys,
        relay::{CheckpointOutcome, Shard, StreamError},
        webhooks::Queued,
    },
};

/// The relay: reads the table's stream and delivers events to webhooks.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// Whether this replica runs it (`MEDBOOK_RELAY`, `on` or `off`; default `on`). With it on, startup
    /// fails when the table's stream cannot be read.
    pub enabled: bool,
    /// Pause between reads of an idle stream shard or outbox (`MEDBOOK_RELAY_POLL_MS`, default 250).
    pub poll: Duration,
    /// How long a lease holds without renewal (`MEDBOOK_RELAY_LEASE_MS`, default 5 000): a replica that dies
    /// loses its shards and outboxes within it.
    pub lease: Duration,
    /// Which endpoints may be called (`MEDBOOK_WEBHOOK_TARGETS`: `public`, the default with `aws`;
    /// `loopback`, the default with `embedded`; `any`, the override that allows private networks).
    pub targets: crate::domain::webhook::TargetPolicy,
    /// Time an endpoint has to answer (`MEDBOOK_WEBHOOK_TIMEOUT_MS`, default 10 000).
    pub timeout: Duration,
    /// First retry wait, doubled per attempt (`MEDBOOK_WEBHOOK_RETRY_BASE_MS`, default 5 000).
    pub retry_base: Duration,
    /// Longest retry wait (`MEDBOOK_WEBHOOK_RETRY_MAX_MS`, default 3 600 000: an hour).
    pub retry_max: Duration,
    /// How long an event is retried after its first attempt (`MEDBOOK_WEBHOOK_RETRY_HOURS`, default 24).
    pub retry_for: Duration,
    /// How long an endpoint may fail every attempt before it is disabled
    /// (`MEDBOOK_WEBHOOK_DISABLE_AFTER_HOURS`, default 72).
    pub disable_after: Duration,
    /// Deliveries in flight per endpoint, one per patient at most (`MEDBOOK_WEBHOOK_CONCURRENCY`, default 8).
    pub concurrency: usize,
    /// E-mail to patients, when `MEDBOOK_SMTP_URL` is set.
    pub email: Option<EmailSettings>,
}

/// A part of a page's fan-out: the sequence number it ends at, and its outbox entries (channel, event).
type Chunk<'a> = (Option<String>, Vec<(Uuid, &'a DomainEvent)>);

/// Outbox entries read per Query.
const OUTBOX_PAGE: i32 = 100;

/// Most pages a round reads looking for due entries.
const OUTBOX_PAGES: usize = 10;

/// How often the outbox loop reads the webhooks again.
const WEBHOOKS_EVERY: Duration = Duration::from_secs(1);

/// How often the shard list is read again.
const SHARD_LIST_EVERY: Duration = Duration::from_secs(10);

/// The relay of one replica.
#[derive(Debug)]
pub struct Relay {
    store: Store,
    settings: RelaySettings,
    owner: String,
    http: reqwest::Client,
    mailer: Option<Mailer>,
    wake: Notify,
    /// A webhook was changed by this relay (disabled, marked failing or cleared): read them again.
    changed: std::sync::atomic::AtomicBool,
}

/// A shard this replica holds.
#[derive(Debug)]
struct HeldShard {
    iterator: Option<String>,
    checkpoint: Option<String>,
    renewed: Instant,
}

/// What one delivery attempt got.
#[derive(Debug)]
struct Answer {
    status: Option<u16>,
    error: Option<String>,
    latency: Duration,
    /// Nothing was sent, and nothing needs to be (an e-mail channel's answer).
    skipped: bool,
    /// Trying again cannot help (an SMTP 5xx).
    permanent: bool,
    /// When to try again, if not by the backoff (epoch ms: a mail waiting for its quiet period).
    retry_at: Option<i64>,
}

impl Relay {
    /// The relay over `store` (which must have a streams client), as `settings` say.
    ///
    /// # Errors
    /// When the HTTP client or the mailer cannot be built.
    pub fn new(store: Store, settings: RelaySettings) -> Result<Arc<Self>, String> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("medbook-webhooks/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(GuardedResolver(settings.targets)))
            .build()
            .map_err(|e| e.to_string())?;
        let mailer = settings
            .email
            .as_ref()
            .map(|email| Mailer::new(email, settings.timeout))
            .transpose()?;
        Ok(Arc::new(Self {
            store,
            settings,
            owner: format!("relay-{}", Uuid::now_v7()),
            http,
            mailer,
            wake: Notify::new(),
            changed: std::sync::atomic::AtomicBool::new(false),
        }))
    }

    /// Whether the table's stream can be read (startup refuses to run the relay without it).
    ///
    /// # Errors
    /// [`StreamError`] when it cannot.
    pub async fn check_stream(&self) -> Result<(), StreamError> {
        let arn = self.store.stream_arn().await?;
        self.store.shards(&arn).await?;
        Ok(())
    }

    /// Runs both loops until `stop` turns true, then gives up this replica's leases.
    pub async fn run(self: Arc<Self>, stop: watch::Receiver<bool>) {
        tracing::info!(owner = %self.owner, "relay started");
        let streams = tokio::spawn(self.clone().stream_loop(stop.clone()));
        let outboxes = tokio::spawn(self.clone().outbox_loop(stop.clone()));
        let reminders = tokio::spawn(self.clone().reminder_loop(stop));
        let _ = tokio::join!(streams, outboxes, reminders);
        tracing::info!(owner = %self.owner, "relay stopped");
    }

    fn lease_until(&self) -> (i64, i64) {
        let now = now_ms();
        (
            now,
            now + i64::try_from(self.settings.lease.as_millis()).unwrap_or(i64::MAX),
        )
    }

    async fn pause(&self, stop: &mut watch::Receiver<bool>) {
        tokio::select! {
            () = tokio::time::sleep(self.settings.poll) => {}
            _ = stop.changed() => {}
        }
    }

    /// The outbox loop's pause: also ends when the stream loop has queued entries.
    async fn pause_for_outboxes(&self, stop: &mut watch::Receiver<bool>) {
        tokio::select! {
            () = tokio::time::sleep(self.settings.poll) => {}
            () = self.wake.notified() => {}
            _ = stop.changed() => {}
        }
    }

    async fn stream_loop(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut arn: Option<String> = None;
        let mut shards: Vec<Shard> = Vec::new();
        let mut listed: Option<Instant> = None;
        let mut tried: Option<Instant> = None;
        let mut held: HashMap<String, HeldShard> = HashMap::new();
        while !*stop.borrow() {
            if arn.is_none() || listed.is_none_or(|t| t.elapsed() >= SHARD_LIST_EVERY) {
                match self.list_shards().await {
                    Ok((a, s)) => {
                        if arn.as_deref() != Some(a.as_str()) {
                            held.clear();
                        }
                        (arn, shards, listed) = (Some(a), s, Some(Instant::now()));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "relay: cannot list the stream's shards");
                        self.pause(&mut stop).await;
                        continue;
                    }
                }
            }
            let Some(arn) = arn.clone() else { continue };
            // Shards held by others are asked for again only every half lease.
            if tried.is_none_or(|t| t.elapsed() >= self.settings.lease / 2) {
                tried = Some(Instant::now());
                self.take_shards(&shards, &mut held).await;
            }
            let mut busy = false;
            let ids: Vec<String> = held.keys().cloned().collect();
            for id in ids {
                match self.relay_page(&arn, &id, &mut held).await {
                    Ok(read) => busy |= read,
                    Err(e) => {
                        tracing::warn!(shard = %id, error = %e, "relay: reading the stream failed; retrying");
                        if let Some(h) = held.get_mut(&id) {
                            h.iterator = None;
                        }
                    }
                }
            }
            if !busy {
                self.pause(&mut stop).await;
            }
        }
        for id in held.keys() {
            let _ = self.store.give_up_lease(&keys::stream_lease_sk(id), &self.owner).await;
        }
    }

    async fn list_shards(&self) -> Result<(String, Vec<Shard>), StreamError> {
        let arn = self.store.stream_arn().await?;
        let shards = self.store.shards(&arn).await?;
        Ok((arn, shards))
    }

    /// Takes the lease of each shard whose parent is done (or gone) and that no live replica holds.
    async fn take_shards(&self, shards: &[Shard], held: &mut HashMap<String, HeldShard>) {
        let listed: HashSet<&str> = shards.iter().map(|s| s.id.as_str()).collect();
        for shard in shards {
            if held.contains_key(&shard.id) {
                continue;
            }
            let name = keys::stream_lease_sk(&shard.id);
            if let Some(parent) = shard.parent.as_deref().filter(|p| listed.contains(p)) {
                match self.store.lease_finished(&keys::stream_lease_sk(parent)).await {
                    Ok(true) => {}
                    Ok(false) | Err(_) => continue,
                }
            }
            let (now, until) = self.lease_until();
            match self.store.take_lease(&name, &self.owner, now, until).await {
                Ok(Some(lease)) if !lease.finished => {
                    tracing::info!(shard = %shard.id, checkpoint = ?lease.checkpoint, "relay: took the shard's lease");
                    held.insert(
                        shard.id.clone(),
                        HeldShard {
                            iterator: None,
                            checkpoint: lease.checkpoint,
                            renewed: Instant::now(),
                        },
                    );
                }
                Ok(Some(_)) => {
                    let _ = self.store.give_up_lease(&name, &self.owner).await;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(shard = %shard.id, error = %e, "relay: taking a shard's lease failed"),
            }
        }
    }

    /// Reads one page of shard `id` and relays it; whether it had records.
    async fn relay_page(
        &self,
        arn: &str,
        id: &str,
        held: &mut HashMap<String, HeldShard>,
    ) -> Result<bool, StreamError> {
        let name = keys::stream_lease_sk(id);
        let Some(shard) = held.get_mut(id) else {
            return Ok(false);
        };
        let iterator = match shard.iterator.take() {
            Some(i) => i,
            None => match self.store.shard_iterator(arn, id, shard.checkpoint.as_deref()).await {
                Ok(i) => i,
                Err(StreamError::IteratorExpired) => {
                    tracing::error!(shard = %id, checkpoint = ?shard.checkpoint,
                        "relay: the stream no longer has the records after the checkpoint (they were kept 24 h); reading from the oldest kept");
                    self.store.shard_iterator(arn, id, None).await?
                }
                Err(e) => return Err(e),
            },
        };
        let records = match self.store.records(&iterator).await {
            Ok(r) => r,
            Err(StreamError::IteratorExpired) => return Ok(true),
            Err(e) => return Err(e),
        };
        let finished = records.next.is_none();
        let renew_due = shard.renewed.elapsed() >= self.settings.lease / 3;
        if records.last_sequence.is_none() && !finished && !renew_due {
            shard.iterator = records.next;
            return Ok(false);
        }
        let webhooks = if records.events.is_empty() {
            Vec::new()
        } else {
            self.channels().await?
        };
        // Chunks of at most 99 entries, each ending at an event's sequence number; the last chunk ends at the
        // page's last record.
        let mut chunks: Vec<Chunk<'_>> = vec![(None, Vec::new())];
        for (sequence, event) in &records.events {
            let targets: Vec<(Uuid, &DomainEvent)> = webhooks
                .iter()
                .filter(|w| {
                    if w.id == EMAIL_CHANNEL {
                        Mailer::wants(event)
                    } else {
                        w.wants(event)
                    }
                })
                .map(|w| (w.id, event))
                .collect();
            let current = chunks.last_mut().expect("one chunk at least");
            if current.1.len() + targets.len() > 99 {
                chunks.push((None, Vec::new()));
            }
            let current = chunks.last_mut().expect("one chunk at least");
            current.1.extend(targets);
            current.0 = Some(sequence.clone());
        }
        let last = chunks.len() - 1;
        let mut queued = 0;
        for (i, (sequence, fan_out)) in chunks.iter().enumerate() {
            let sequence = if i == last {
                records.last_sequence.as_ref().or(sequence.as_ref())
            } else {
                sequence.as_ref()
            };
            let (_, until) = self.lease_until();
            let done = finished && i == last;
            match self
                .store
                .checkpoint(&name, &self.owner, until, sequence.map(String::as_str), done, fan_out)
                .await?
            {
                CheckpointOutcome::Moved => {
                    queued += fan_out.len();
                    shard.renewed = Instant::now();
                    if let Some(s) = sequence {
                        shard.checkpoint = Some(s.clone());
                    }
                }
                CheckpointOutcome::LeaseLost => {
                    tracing::warn!(shard = %id, "relay: lost the shard's lease to another replica");
                    held.remove(id);
                    return Ok(false);
                }
            }
        }
        if queued > 0 {
            metrics::counter!("medbook_relay_outbox_entries_total").increment(queued as u64);
            self.wake.notify_one();
        }
        if finished {
            tracing::info!(shard = %id, "relay: shard closed and relayed to its end");
            held.remove(id);
        } else {
            shard.iterator = records.next;
        }
        Ok(records.last_sequence.is_some())
    }

    /// Fires due booking reminders, holding the one `REMINDERS` lease: each hour's partition from the oldest
    /// that may still hold one (48 h back at start) to the current hour, one Query each.
    async fn reminder_loop(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        if self.store.reminder_before().is_none() {
            return;
        }
        let every = self.settings.poll.max(Duration::from_secs(1));
        let hour_of = |at: OffsetDateTime| {
            at.replace_minute(0)
                .and_then(|a| a.replace_second(0))
                .and_then(|a| a.replace_nanosecond(0))
        };
        let mut from = hour_of(OffsetDateTime::now_utc() - time::Duration::hours(48)).ok();
        let mut held: Option<Instant> = None;
        let mut tried: Option<Instant> = None;
        while !*stop.borrow() {
            let renew = held.is_some_and(|t| t.elapsed() >= self.settings.lease / 3);
            let ask = held.is_none() && tried.is_none_or(|t| t.elapsed() >= self.settings.lease / 2);
            if renew || ask {
                tried = Some(Instant::now());
                let (now, until) = self.lease_until();
                held = match self
                    .store
                    .take_lease(keys::REMINDERS_LEASE_SK, &self.owner, now, until)
                    .await
                {
                    Ok(Some(_)) => Some(Instant::now()),
                    Ok(None) => None,
                    Err(e) => {
                        tracing::warn!(error = %e, "relay: taking the reminders lease failed");
                        None
                    }
                };
            }
            if held.is_some()
                && let Some(start) = from
                && let Err(e) = self.fire_due(start, hour_of, &mut from).await
            {
                tracing::warn!(error = %e, "relay: firing reminders failed");
            }
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                _ = stop.changed() => {}
            }
        }
        if held.is_some() {
            let _ = self.store.give_up_lease(keys::REMINDERS_LEASE_SK, &self.owner).await;
        }
    }

    async fn fire_due(
        &self,
        start: OffsetDateTime,
        hour_of: impl Fn(OffsetDateTime) -> Result<OffsetDateTime, time::error::ComponentRange>,
        from: &mut Option<OffsetDateTime>,
    ) -> Result<(), crate::store::StoreError> {
        let now = OffsetDateTime::now_utc();
        let now_text = timefmt::instant(now);
        let current = hour_of(now).unwrap_or(now);
        let mut hour = start;
        while hour <= current {
            let text = timefmt::instant(hour);
            let due = self.store.due_reminders(&text[..13], &now_text).await?;
            for reminder in &due {
                let event = DomainEvent::booking(
                    EventType::BookingReminder,
                    reminder.patient_id,
                    reminder.booking_id,
                    &timefmt::now(),
                )
                .with("site", &reminder.site)
                .with("slotStart", &reminder.slot_start);
                if self.store.fire_reminder(reminder, &event).await? {
                    metrics::counter!("medbook_reminders_fired_total").increment(1);
                }
            }
            if due.len() >= 100 {
                // More in this hour: the next pass goes on from here.
                return Ok(());
            }
            if hour < current {
                // A past hour read to its end: nothing more can become due in it.
                *from = Some(hour + time::Duration::hours(1));
            }
            hour += time::Duration::hours(1);
        }
        Ok(())
    }

    async fn outbox_loop(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut held: HashMap<Uuid, Instant> = HashMap::new();
        let mut tried: HashMap<Uuid, Instant> = HashMap::new();
        let mut webhooks: Vec<Webhook> = Vec::new();
        let mut listed: Option<Instant> = None;
        while !*stop.borrow() {
            // The webhooks change rarely: read again every second, not every poll (the stream loop reads them
            // fresh for each fan-out, so no event misses a new webhook; its deliveries start within a second).
            let changed = self.changed.swap(false, std::sync::atomic::Ordering::Relaxed);
            if changed || listed.is_none_or(|t| t.elapsed() >= WEBHOOKS_EVERY) {
                match self.channels().await {
                    Ok(w) => (webhooks, listed) = (w, Some(Instant::now())),
                    Err(e) => {
                        tracing::warn!(error = %e, "relay: cannot read the webhooks");
                        self.pause(&mut stop).await;
                        continue;
                    }
                }
            }
            let mut busy = false;
            let enabled: HashSet<Uuid> = webhooks.iter().filter(|w| w.enabled).map(|w| w.id).collect();
            for gone in held
                .keys()
                .copied()
                .filter(|id| !enabled.contains(id))
                .collect::<Vec<_>>()
            {
                held.remove(&gone);
                let _ = self
                    .store
                    .give_up_lease(&keys::outbox_lease_sk(gone), &self.owner)
                    .await;
            }
            let mut rounds = Vec::new();
            for webhook in webhooks.iter().filter(|w| w.enabled) {
                let renew = held
                    .get(&webhook.id)
                    .is_some_and(|t| t.elapsed() >= self.settings.lease / 3);
                let ask = !held.contains_key(&webhook.id)
                    && tried
                        .get(&webhook.id)
                        .is_none_or(|t| t.elapsed() >= self.settings.lease / 2);
                if renew || ask {
                    tried.insert(webhook.id, Instant::now());
                    let (now, until) = self.lease_until();
                    match self
                        .store
                        .take_lease(&keys::outbox_lease_sk(webhook.id), &self.owner, now, until)
                        .await
                    {
                        Ok(Some(_)) => {
                            held.insert(webhook.id, Instant::now());
                        }
                        Ok(None) => {
                            held.remove(&webhook.id);
                        }
                        Err(e) => {
                            tracing::warn!(webhook = %webhook.id, error = %e, "relay: taking an outbox lease failed");
                            continue;
                        }
                    }
                }
                if held.contains_key(&webhook.id) {
                    rounds.push(webhook);
                }
            }
            // The held outboxes' rounds run side by side: a slow endpoint holds up its own outbox only.
            let results = futures_util::future::join_all(rounds.iter().map(|w| self.held_round(w))).await;
            for (webhook, result) in rounds.iter().zip(results) {
                match result {
                    Ok(sent) => busy |= sent,
                    Err(e) => tracing::warn!(webhook = %webhook.id, error = %e, "relay: an outbox round failed"),
                }
            }
            if !busy {
                self.pause_for_outboxes(&mut stop).await;
            }
        }
        for id in held.keys() {
            let _ = self.store.give_up_lease(&keys::outbox_lease_sk(*id), &self.owner).await;
        }
    }

    /// The webhooks, and the e-mail channel when e-mail is on.
    async fn channels(&self) -> Result<Vec<Webhook>, crate::store::StoreError> {
        let mut channels = self.store.webhooks().await?;
        if self.mailer.is_some() {
            channels.push(Mailer::channel());
        }
        Ok(channels)
    }

    /// One round of `webhook`'s outbox, renewing its lease every `lease / 3` while the round lasts (slow
    /// endpoints can keep a round busy for longer than the lease): another replica never takes the outbox
    /// over from a replica that is alive and sending.
    async fn held_round(&self, webhook: &Webhook) -> Result<bool, crate::store::StoreError> {
        let round = self.deliver_round(webhook);
        tokio::pin!(round);
        let mut renew = tokio::time::interval(self.settings.lease / 3);
        renew.tick().await;
        loop {
            tokio::select! {
                done = &mut round => return done,
                _ = renew.tick() => {
                    let (now, until) = self.lease_until();
                    match self
                        .store
                        .take_lease(&keys::outbox_lease_sk(webhook.id), &self.owner, now, until)
                        .await
                    {
                        Ok(Some(_)) => {}
                        Ok(None) => {
                            // Another replica holds it now: stop here (what is in flight is sent again by
                            // it, with the same webhook-id), so that one replica at a time keeps each
                            // patient's order.
                            tracing::warn!(webhook = %webhook.id, "relay: lost an outbox's lease mid-round");
                            return Ok(false);
                        }
                        Err(e) => {
                            tracing::warn!(webhook = %webhook.id, error = %e, "relay: renewing an outbox lease failed");
                        }
                    }
                }
            }
        }
    }

    /// Sends the due head entry of each patient in `webhook`'s outbox; whether it sent any. Reads on past a
    /// page whose heads are all waiting for a retry (up to `OUTBOX_PAGES` pages), so one patient's failing
    /// events do not hold back the patients queued behind them.
    async fn deliver_round(&self, webhook: &Webhook) -> Result<bool, crate::store::StoreError> {
        let now = now_ms();
        // One lane per patient; for e-mail, a patient's results-ready mails have a lane of their own, so one
        // waiting for its quiet period holds back no other mail.
        let lane = |e: &Queued| {
            (
                e.event.patient_id,
                webhook.id == EMAIL_CHANNEL && e.event.kind == EventType::ResultReleased,
            )
        };
        let mut lanes = HashSet::new();
        let mut due: Vec<Queued> = Vec::new();
        let mut start = None;
        for _ in 0..OUTBOX_PAGES {
            let page = self.store.outbox(webhook.id, OUTBOX_PAGE, start.as_ref()).await?;
            due.extend(
                page.items
                    .into_iter()
                    .filter(|e| lanes.insert(lane(e)))
                    .filter(|e| e.next_at <= now),
            );
            start = page.next;
            if start.is_none() || due.len() >= self.settings.concurrency {
                break;
            }
        }
        if due.is_empty() {
            return Ok(false);
        }
        let cleared = std::sync::atomic::AtomicBool::new(false);
        stream::iter(due)
            .map(|entry| self.deliver(webhook, entry, &cleared))
            .buffer_unordered(self.settings.concurrency)
            .collect::<Vec<()>>()
            .await;
        Ok(true)
    }

    async fn deliver(&self, webhook: &Webhook, entry: Queued, cleared: &std::sync::atomic::AtomicBool) {
        let attempted_at = timefmt::now();
        let answer = match &self.mailer {
            Some(mailer) if webhook.id == EMAIL_CHANNEL => self.mail(mailer, &entry.event).await,
            _ => self.send(webhook, &entry.event).await,
        };
        let status = answer.status;
        let retry_over = entry
            .first_attempt_at
            .as_deref()
            .and_then(timefmt::parse_instant)
            .is_some_and(|first| OffsetDateTime::now_utc() - first >= self.settings.retry_for);
        let outcome = match status {
            _ if answer.skipped => AttemptOutcome::Skipped,
            Some(200..=299) if answer.error.is_none() => AttemptOutcome::Delivered,
            Some(410) if webhook.id != EMAIL_CHANNEL => AttemptOutcome::Gone,
            _ if retry_over || answer.permanent => AttemptOutcome::GaveUp,
            _ => AttemptOutcome::Retrying,
        };
        metrics::counter!("medbook_webhook_attempts_total", "outcome" => outcome_name(outcome)).increment(1);
        let attempt = Attempt {
            id: Uuid::now_v7(),
            event_id: entry.event.id,
            event_type: entry.event.kind,
            patient_id: entry.event.patient_id,
            occurred_at: entry.event.occurred_at.clone(),
            attempted_at: attempted_at.clone(),
            status,
            latency_ms: u64::try_from(answer.latency.as_millis()).unwrap_or(u64::MAX),
            error: answer.error,
            outcome,
            attempt: entry.attempts + 1,
        };
        let recorded = match outcome {
            AttemptOutcome::Delivered => {
                if let Some(at) = timefmt::parse_instant(&entry.event.occurred_at) {
                    let lag = (OffsetDateTime::now_utc() - at).as_seconds_f64().max(0.0);
                    metrics::histogram!("medbook_webhook_delivery_lag_seconds").record(lag);
                }
                if let Some(mailer) = &self.mailer
                    && webhook.id == EMAIL_CHANNEL
                    && let Err(e) = mailer.sent(&self.store, &entry.event).await
                {
                    tracing::warn!(event = %entry.event.id, error = %e, "relay: could not note a results-ready mail");
                }
                let r = self.store.record_delivered(&entry, &attempt).await;
                if webhook.failing_since.is_some() && !cleared.swap(true, std::sync::atomic::Ordering::Relaxed) {
                    let _ = self.store.clear_webhook_failing(webhook.id).await;
                    self.changed.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                r
            }
            AttemptOutcome::Skipped => self.store.record_delivered(&entry, &attempt).await,
            AttemptOutcome::Gone => {
                let r = self.store.record_given_up(&entry, &attempt).await;
                self.disable(webhook, "the endpoint answered 410 Gone").await;
                r
            }
            AttemptOutcome::GaveUp => {
                tracing::warn!(webhook = %webhook.id, event = %entry.event.id, "relay: retry period over; the event is not delivered");
                let r = self.store.record_given_up(&entry, &attempt).await;
                self.note_failure(webhook, &attempted_at).await;
                r
            }
            AttemptOutcome::Retrying => {
                let wait = backoff(
                    entry.attempts + 1,
                    self.settings.retry_base,
                    self.settings.retry_max,
                    rand::random::<f64>(),
                );
                let next = answer
                    .retry_at
                    .unwrap_or_else(|| now_ms() + i64::try_from(wait.as_millis()).unwrap_or(i64::MAX));
                let r = self.store.record_retry(&entry, &attempt, next).await;
                self.note_failure(webhook, &attempted_at).await;
                r
            }
        };
        if let Err(e) = recorded {
            tracing::warn!(webhook = %webhook.id, event = %entry.event.id, error = %e,
                "relay: could not record a delivery attempt; the entry is tried again");
        }
    }

    /// Marks the webhook failing, or disables it when it has failed for longer than `disable_after`.
    async fn note_failure(&self, webhook: &Webhook, at: &str) {
        if webhook.id == EMAIL_CHANNEL {
            // The e-mail channel is not an item: it is never disabled, only its mails give up.
            return;
        }
        match webhook.failing_since.as_deref().and_then(timefmt::parse_instant) {
            None => {
                let _ = self.store.mark_webhook_failing(webhook.id, at).await;
                self.changed.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            Some(since) if OffsetDateTime::now_utc() - since >= self.settings.disable_after => {
                let hours = self.settings.disable_after.as_secs_f64() / 3600.0;
                self.disable(webhook, &format!("every attempt failed for {hours} hours"))
                    .await;
            }
            Some(_) => {}
        }
    }

    async fn disable(&self, webhook: &Webhook, reason: &str) {
        let event = DomainEvent::system(EventType::WebhookDisabled, &timefmt::now())
            .with("webhookId", webhook.id)
            .with("reason", reason);
        self.changed.store(true, std::sync::atomic::Ordering::Relaxed);
        match self.store.disable_webhook(webhook.id, reason, &event).await {
            Ok(true) => {
                tracing::warn!(webhook = %webhook.id, host = %host_of(&webhook.url), reason, "relay: webhook disabled")
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(webhook = %webhook.id, error = %e, "relay: could not disable the webhook"),
        }
    }

    /// POSTs `event` to `webhook`, signed.
    async fn send(&self, webhook: &Webhook, event: &DomainEvent) -> Answer {
        let started = Instant::now();
        let failed = |error: String| Answer {
            status: None,
            error: Some(error),
            latency: started.elapsed(),
            skipped: false,
            permanent: false,
            retry_at: None,
        };
        if let Err(e) = self.settings.targets.check_url(&webhook.url) {
            return failed(format!("url {e}"));
        }
        let body = payload(event);
        let id = event.id.to_string();
        let timestamp = OffsetDateTime::now_utc().unix_timestamp();
        let Some(signature) = signature(&webhook.secret, &id, timestamp, &body) else {
            return failed("the webhook's secret is malformed".into());
        };
        let sent = self
            .http
            .post(&webhook.url)
            .header("content-type", "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await;
        match sent {
            Ok(response) => {
                let status = response.status().as_u16();
                let error = (!response.status().is_success()).then(|| format!("HTTP {status}"));
                Answer {
                    status: Some(status),
                    error,
                    latency: started.elapsed(),
                    skipped: false,
                    permanent: false,
                    retry_at: None,
                }
            }
            Err(e) => {
                use std::error::Error as _;
                let mut text = e.to_string();
                let mut source = e.source();
                while let Some(s) = source {
                    text.push_str(": ");
                    text.push_str(&s.to_string());
                    source = s.source();
                }
                failed(text.chars().take(500).collect())
            }
        }
    }
}

impl Relay {
    /// Sends the e-mail of `event`; the SMTP reply code stands where a webhook's HTTP status does.
    async fn mail(&self, mailer: &Mailer, event: &DomainEvent) -> Answer {
        let started = Instant::now();
        let mut retry_at = None;
        let (status, error, skipped, permanent) = match mailer.send(&self.store, event).await {
            Mailed::Sent(code) => (Some(code), None, false, false),
            Mailed::Skipped(why) => (None, Some(why), true, false),
            Mailed::Later(at, why) => {
                retry_at = i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok();
                (None, Some(why), false, false)
            }
            Mailed::Failed { code, error, permanent } => (code, Some(error), false, permanent),
        };
        Answer {
            status,
            error,
            latency: started.elapsed(),
            skipped,
            permanent,
            retry_at,
        }
    }
}

/// The body of a delivery, in the Standard Webhooks shape: `{type, timestamp, data}`, `data` being the event
/// as the feed shows it (ids and statuses, never clinical values).
pub fn payload(event: &DomainEvent) -> Vec<u8> {
    let mut data = serde_json::json!({
        "id": event.id,
        "type": event.kind.name(),
        "occurredAt": event.occurred_at,
        "data": event.data,
    });
    let fields = data.as_object_mut().expect("an object");
    if let Some(p) = event.patient_id {
        fields.insert("patientId".into(), serde_json::json!(p));
    }
    if let Some(b) = event.booking_id {
        fields.insert("bookingId".into(), serde_json::json!(b));
    }
    if let Some(t) = event.test_id {
        fields.insert("testId".into(), serde_json::json!(t));
    }
    serde_json::to_vec(&serde_json::json!({
        "type": event.kind.name(),
        "timestamp": event.occurred_at,
        "data": data,
    }))
    .expect("JSON serialises")
}

fn outcome_name(outcome: AttemptOutcome) -> &'static str {
    match outcome {
        AttemptOutcome::Delivered => "delivered",
        AttemptOutcome::Retrying => "retrying",
        AttemptOutcome::GaveUp => "gave-up",
        AttemptOutcome::Gone => "gone",
        AttemptOutcome::Skipped => "skipped",
    }
}

/// The host of `url`, for logs (a URL's path, query or user part may carry a token).
fn host_of(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default()
}

fn now_ms() -> i64 {
    i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// Resolves endpoint host names, keeping only the addresses the target policy allows: a name that resolves
/// to an inner address (DNS rebinding included: it is checked at each connection) is refused.
#[derive(Debug)]
struct GuardedResolver(TargetPolicy);

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found.into_iter().filter(|a| policy.allows(a.ip())).collect();
            if allowed.is_empty() {
                return Err(format!(
                    "{host} resolves only to addresses MEDBOOK_WEBHOOK_TARGETS={} refuses",
                    policy.name()
                )
                .into());
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}
