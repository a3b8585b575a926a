//! The table's change stream (DynamoDB Streams, `NEW_IMAGE`) as the relay reads it, and the leases that let
//! one replica at a time read each shard and deliver to each webhook (`LEASES` / `STREAM#<shardId>`,
//! `LEASES` / `OUTBOX#<webhookId>`).
//!
//! A shard's lease item holds its checkpoint: the sequence number of the last record relayed. The relay
//! writes the outbox entries of a batch of records and moves the checkpoint past them in one
//! TransactWriteItems whose condition is that it still holds the lease, so a record is fanned out exactly
//! once however often replicas crash, and a replica that lost its lease writes nothing.

use aws_sdk_dynamodbstreams::{Client as StreamsClient, types::ShardIteratorType};
use tracing::Instrument;
use uuid::Uuid;

use super::{
    Store, StoreError,
    expr::Expr,
    from_item,
    items::{EventItem, LeaseItem, attr, entity},
    key, keys,
    tx::{Sent, Tx},
    usage::{Call, Kind},
};
use crate::domain::event::DomainEvent;

/// One shard of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    /// Shard id.
    pub id: String,
    /// The shard it split from: its records come first, so it is read to its end before this one.
    pub parent: Option<String>,
}

/// A page of one shard's records: the domain events among them (other items' changes are skipped), the
/// last sequence number read, and the iterator to read on from (none: the shard is closed and read to its
/// end).
#[derive(Debug, Default)]
pub struct Records {
    /// The events written, in stream order, each with its record's sequence number.
    pub events: Vec<(String, DomainEvent)>,
    /// The sequence number of the last record of the page (events or not), if it had any.
    pub last_sequence: Option<String>,
    /// Where to read on; `None` when the shard is closed and this was its end.
    pub next: Option<String>,
}

/// A lease as its holder sees it after taking it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Last relayed sequence number (stream leases).
    pub checkpoint: Option<String>,
    /// Whether the shard is relayed to its end.
    pub finished: bool,
}

/// How a checkpoint write ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointOutcome {
    /// The outbox entries are written and the checkpoint moved.
    Moved,
    /// Another replica holds the lease now: nothing was written.
    LeaseLost,
}

/// The actions of the lease writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LeaseAction {
    /// The lease item.
    Lease,
    /// An outbox entry.
    Outbox,
}

/// Why the stream cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// This store was built without a streams client.
    #[error("no DynamoDB Streams client")]
    NoClient,
    /// The table has no stream (or none with new images).
    #[error("the table has no stream with new images")]
    NoStream,
    /// The iterator is older than 15 minutes, or its position was trimmed: get a new one.
    #[error("shard iterator expired or trimmed")]
    IteratorExpired,
    /// The engine failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Store {
    /// This store, reading the table's stream through `streams`.
    #[must_use]
    pub fn with_streams(mut self, streams: StreamsClient) -> Self {
        self.streams = Some(streams);
        self
    }

    fn streams(&self) -> Result<&StreamsClient, StreamError> {
        self.streams.as_ref().ok_or(StreamError::NoClient)
    }

    /// The ARN of the table's latest stream (one DescribeTable).
    ///
    /// # Errors
    /// [`StreamError::NoStream`] when the table has none; engine failures.
    pub async fn stream_arn(&self) -> Result<String, StreamError> {
        self.streams()?;
        let out = self
            .client
            .describe_table()
            .table_name(self.table.as_ref())
            .send()
            .await
            .map_err(StoreError::from_sdk)?;
        let table = out.table.ok_or(StreamError::NoStream)?;
        let enabled = table.stream_specification().is_some_and(|s| s.stream_enabled());
        match table.latest_stream_arn {
            Some(arn) if enabled => Ok(arn),
            _ => Err(StreamError::NoStream),
        }
    }

    /// The shards of stream `arn` (DescribeStream, following its pages).
    ///
    /// # Errors
    /// Engine failures.
    pub async fn shards(&self, arn: &str) -> Result<Vec<Shard>, StreamError> {
        let streams = self.streams()?;
        let mut shards = Vec::new();
        let mut start = None;
        loop {
            let call = Call::start("DescribeStream", &self.table, None);
            let out = streams
                .describe_stream()
                .stream_arn(arn)
                .set_exclusive_start_shard_id(start)
                .send()
                .instrument(call.span())
                .await
                .map_err(StoreError::from_sdk);
            call.finish(Kind::Read, Vec::new(), out.as_ref().err());
            let description = out?.stream_description.ok_or(StreamError::NoStream)?;
            shards.extend(description.shards().iter().filter_map(|s| {
                Some(Shard {
                    id: s.shard_id()?.to_owned(),
                    parent: s.parent_shard_id().map(str::to_owned),
                })
            }));
            start = description.last_evaluated_shard_id;
            if start.is_none() {
                return Ok(shards);
            }
        }
    }

    /// An iterator of shard `shard` of stream `arn`: after `checkpoint`, or from the oldest record kept.
    ///
    /// # Errors
    /// [`StreamError::IteratorExpired`] when the checkpoint's records were trimmed; engine failures.
    pub async fn shard_iterator(
        &self,
        arn: &str,
        shard: &str,
        checkpoint: Option<&str>,
    ) -> Result<String, StreamError> {
        let streams = self.streams()?;
        let request = streams.get_shard_iterator().stream_arn(arn).shard_id(shard);
        let request = match checkpoint {
            Some(sequence) => request
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .sequence_number(sequence),
            None => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
        };
        let call = Call::start("GetShardIterator", &self.table, None);
        let out = request.send().instrument(call.span()).await;
        match out {
            Ok(out) => {
                call.finish(Kind::Read, Vec::new(), None);
                out.shard_iterator.ok_or(StreamError::NoStream)
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_trimmed_data_access_exception()) =>
            {
                call.finish_as(Kind::Read, Vec::new(), "trimmed");
                Err(StreamError::IteratorExpired)
            }
            Err(e) => {
                let error = StoreError::from_sdk(e);
                call.finish(Kind::Read, Vec::new(), Some(&error));
                Err(error.into())
            }
        }
    }

    /// One GetRecords from `iterator` (up to 1 000 records).
    ///
    /// # Errors
    /// [`StreamError::IteratorExpired`]; engine failures. A malformed event image is logged, counted
    /// (`medbook_relay_unreadable_events_total`) and skipped.
    pub async fn records(&self, iterator: &str) -> Result<Records, StreamError> {
        let streams = self.streams()?;
        let call = Call::start("GetRecords", &self.table, None);
        let out = streams
            .get_records()
            .shard_iterator(iterator)
            .limit(1000)
            .send()
            .instrument(call.span())
            .await;
        let out = match out {
            Ok(out) => {
                call.finish(Kind::Read, Vec::new(), None);
                out
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_expired_iterator_exception() || e.is_trimmed_data_access_exception()) =>
            {
                call.finish_as(Kind::Read, Vec::new(), "expired_iterator");
                return Err(StreamError::IteratorExpired);
            }
            Err(e) => {
                let error = StoreError::from_sdk(e);
                call.finish(Kind::Read, Vec::new(), Some(&error));
                return Err(error.into());
            }
        };
        let mut records = Records {
            next: out.next_shard_iterator,
            ..Records::default()
        };
        for record in out.records.unwrap_or_default() {
            let Some(change) = record.dynamodb else { continue };
            let Some(sequence) = change.sequence_number.clone() else {
                continue;
            };
            records.last_sequence = Some(sequence.clone());
            let Some(image) = change.new_image else { continue };
            let is_event = matches!(
                image.get(attr::ENTITY),
                Some(aws_sdk_dynamodbstreams::types::AttributeValue::S(e)) if e == entity::EVENT
            );
            // An event item is only ever inserted (and later deleted by TTL, which has no new image).
            if is_event {
                match serde_dynamo::aws_sdk_dynamodbstreams_1::from_item::<EventItem>(image) {
                    Ok(item) => records.events.push((sequence, item.into_event())),
                    // One malformed item must not stop the shard for good: it is passed over, loudly (the
                    // feed still has the item as it is).
                    Err(e) => {
                        tracing::error!(sequence = %sequence, error = %e, "relay: an event item in the stream cannot be read; skipped");
                        metrics::counter!("medbook_relay_unreadable_events_total").increment(1);
                    }
                }
            }
        }
        Ok(records)
    }

    /// Takes lease `name` for `owner` until `until_ms` (epoch ms) where it is free, ran out before `now_ms`,
    /// or is `owner`'s already; then reads it back (strongly consistent) for its checkpoint. `None` when
    /// another replica holds it.
    ///
    /// # Errors
    /// Engine failures.
    pub async fn take_lease(
        &self,
        name: &str,
        owner: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<Option<Lease>, StoreError> {
        let mut tx = Tx::new(self);
        tx.update(
            LeaseAction::Lease,
            key(keys::LEASES_PK, name),
            Expr::new()
                .lease_free(attr::LEASE_UNTIL, now_ms, attr::OWNER, owner)
                .set(attr::ENTITY, entity::LEASE)
                .set(attr::OWNER, owner)
                .set(attr::LEASE_UNTIL, until_ms)
                .set(keys::EXPIRES_AT, until_ms / 1000 + 2 * 86_400),
        )?;
        match self.send(tx).await? {
            Sent::Committed => {}
            Sent::Rejected(r) if r.has(LeaseAction::Lease) => return Ok(None),
            Sent::Rejected(r) => return Err(r.unexpected()),
        }
        let item = self
            .get_consistent(keys::LEASES_PK.to_owned(), name.to_owned())
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("lease {name} gone after it was taken")))?;
        let lease: LeaseItem = from_item(item)?;
        Ok(Some(Lease {
            checkpoint: lease.checkpoint,
            finished: lease.finished,
        }))
    }

    /// Whether lease `name` is relayed to its end (a closed shard done: its children may start). One
    /// strongly consistent GetItem.
    ///
    /// # Errors
    /// Engine failures.
    pub async fn lease_finished(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self
            .get_consistent(keys::LEASES_PK.to_owned(), name.to_owned())
            .await?
            .map(from_item::<LeaseItem>)
            .transpose()?
            .is_some_and(|l| l.finished))
    }

    /// Gives lease `name` up (its expiry set to 0), where `owner` holds it, so another replica takes it at
    /// once rather than after it runs out.
    ///
    /// # Errors
    /// Engine failures.
    pub async fn give_up_lease(&self, name: &str, owner: &str) -> Result<(), StoreError> {
        let mut tx = Tx::new(self);
        tx.update(
            LeaseAction::Lease,
            key(keys::LEASES_PK, name),
            Expr::new().eq(attr::OWNER, owner).set(attr::LEASE_UNTIL, 0),
        )?;
        match self.send(tx).await? {
            Sent::Committed | Sent::Rejected(_) => Ok(()),
        }
    }

    /// In one transaction, where `owner` still holds lease `name`: renews it until `until_ms`, writes the
    /// outbox entries `fan_out` (webhook, event), and moves the checkpoint to `sequence` (when given),
    /// marking the shard `finished` at its end. At most 99 entries (the transaction's 100 actions).
    ///
    /// # Errors
    /// Engine failures; more than 99 entries.
    pub async fn checkpoint(
        &self,
        name: &str,
        owner: &str,
        until_ms: i64,
        sequence: Option<&str>,
        finished: bool,
        fan_out: &[(Uuid, &DomainEvent)],
    ) -> Result<CheckpointOutcome, StoreError> {
        if fan_out.len() > 99 {
            return Err(StoreError::Engine(format!(
                "{} outbox entries in one transaction",
                fan_out.len()
            )));
        }
        let mut tx = Tx::new(self);
        let mut lease = Expr::new()
            .eq(attr::OWNER, owner)
            .set(attr::LEASE_UNTIL, until_ms)
            .set(keys::EXPIRES_AT, until_ms / 1000 + 2 * 86_400);
        if let Some(sequence) = sequence {
            lease = lease.set(attr::CHECKPOINT, sequence);
        }
        if finished {
            lease = lease.set(attr::FINISHED, true);
        }
        tx.update(LeaseAction::Lease, key(keys::LEASES_PK, name), lease)?;
        for (webhook, event) in fan_out {
            // A plain Put: the checkpoint makes each record fan out once, and an entry a resend queued
            // meanwhile is the same delivery.
            tx.put(LeaseAction::Outbox, self.outbox_item(*webhook, event)?, Expr::new())?;
        }
        match self.send(tx).await? {
            Sent::Committed => Ok(CheckpointOutcome::Moved),
            Sent::Rejected(r) if r.has(LeaseAction::Lease) => Ok(CheckpointOutcome::LeaseLost),
            Sent::Rejected(r) => Err(r.unexpected()),
        }
    }
}
