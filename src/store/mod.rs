//! The DynamoDB repository: the only module that knows the SDK.
//!
//! Every request path uses GetItem, Query, TransactWriteItems or BatchGetItem (never Scan), builds its keys
//! with [`keys`], and converts items with the persistence structs of `items` (private to the store: callers
//! see domain types only). Every write returns an outcome type of its own, built from labelled transaction
//! actions (`tx`). Every call asks for consumed capacity and records it with [`usage`], so a request can
//! report what it cost.

pub mod alerts;
pub mod audit;
pub mod bookings;
pub mod bootstrap;
pub mod catalog;
pub mod client;
pub mod email;
pub mod events;
mod expr;
pub mod identities;
mod items;
pub mod keys;
pub mod migrate;
pub mod patients;
pub mod relay;
pub mod reminders;
pub mod seed;
pub mod sites;
mod tx;
pub mod usage;
pub mod webhooks;

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    future::Future,
    sync::Arc,
};

use aws_sdk_dynamodb::{
    Client,
    error::{ProvideErrorMetadata, SdkError},
    operation::{
        delete_item::builders::DeleteItemFluentBuilder,
        put_item::builders::PutItemFluentBuilder,
        query::{QueryOutput, builders::QueryFluentBuilder},
    },
    types::{AttributeValue, ReturnConsumedCapacity},
};
use serde::{Serialize, de::DeserializeOwned};
use tracing::Instrument;
use usage::{Call, Kind};

/// A DynamoDB item as the SDK sees it.
pub type Item = HashMap<String, AttributeValue>;

/// Handle on the single table. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    client: Client,
    streams: Option<aws_sdk_dynamodbstreams::Client>,
    table: Arc<str>,
    audit_retention_days: u32,
    event_retention_days: u32,
    reminder_before: Option<time::Duration>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

/// Why a store operation failed, in terms the service layer can act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A condition expression did not hold (the item exists already, or its version moved on).
    #[error("condition failed")]
    ConditionFailed,
    /// The engine could not be reached, timed out, or throttled us after the SDK's retries.
    #[error("engine unavailable: {0}")]
    Unavailable(String),
    /// The table does not exist (deleted under the running service, or an in-memory engine restarted).
    #[error("table not found")]
    TableMissing,
    /// A page key (cursor) that belongs to another list.
    #[error("page key of another list")]
    ForeignKey,
    /// A stored item does not have the shape this code expects.
    #[error("stored item is malformed: {0}")]
    Corrupt(String),
    /// Anything else the engine answered.
    #[error("engine error: {0}")]
    Engine(String),
}

impl StoreError {
    /// Classifies an SDK error without knowing the operation.
    pub(crate) fn from_sdk<E, R>(err: SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: fmt::Debug,
    {
        match &err {
            SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_) => {
                Self::Unavailable(aws_smithy_types::error::display::DisplayErrorContext(&err).to_string())
            }
            SdkError::ServiceError(service) => {
                let e = service.err();
                match e.code() {
                    Some("ConditionalCheckFailedException") => Self::ConditionFailed,
                    Some("ResourceNotFoundException") => Self::TableMissing,
                    Some(
                        "ProvisionedThroughputExceededException"
                        | "ThrottlingException"
                        | "RequestLimitExceeded"
                        | "InternalServerError"
                        | "ServiceUnavailable"
                        | "TransactionConflictException"
                        | "TransactionInProgressException",
                    ) => Self::Unavailable(format!("{}: {}", e.code().unwrap_or("?"), e.message().unwrap_or(""))),
                    code => Self::Engine(format!("{}: {}", code.unwrap_or("unknown"), e.message().unwrap_or(""))),
                }
            }
            _ => Self::Engine(aws_smithy_types::error::display::DisplayErrorContext(&err).to_string()),
        }
    }
}

impl Store {
    /// A store on `table` through `client`.
    pub fn new(client: Client, table: impl Into<Arc<str>>) -> Self {
        Self {
            client,
            streams: None,
            table: table.into(),
            audit_retention_days: 2555,
            event_retention_days: 30,
            reminder_before: None,
        }
    }

    /// This store, keeping audit events `days` days (TTL).
    pub fn with_audit_retention(mut self, days: u32) -> Self {
        self.audit_retention_days = days;
        self
    }

    /// This store, keeping domain events `days` days (TTL).
    pub fn with_event_retention(mut self, days: u32) -> Self {
        self.event_retention_days = days;
        self
    }

    /// This store, keeping a reminder `before` each booked slot (none: no reminders).
    pub fn with_reminders(mut self, before: Option<std::time::Duration>) -> Self {
        self.reminder_before = before.and_then(|d| time::Duration::try_from(d).ok());
        self
    }

    /// How long before its slot a booking's reminder is due, if reminders are on.
    pub fn reminder_before(&self) -> Option<std::time::Duration> {
        self.reminder_before.and_then(|d| std::time::Duration::try_from(d).ok())
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// GetItem by primary key (eventually consistent).
    pub(crate) async fn get(&self, pk: String, sk: String) -> Result<Option<Item>, StoreError> {
        self.get_item(pk, sk, false).await
    }

    /// GetItem with a strongly consistent read, for a write that decides on what it reads.
    pub(crate) async fn get_consistent(&self, pk: String, sk: String) -> Result<Option<Item>, StoreError> {
        self.get_item(pk, sk, true).await
    }

    async fn get_item(&self, pk: String, sk: String, consistent: bool) -> Result<Option<Item>, StoreError> {
        let call = Call::start("GetItem", &self.table, None);
        let result = self
            .client
            .get_item()
            .table_name(self.table.as_ref())
            .set_key(Some(key(pk, sk)))
            .consistent_read(consistent)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .instrument(call.span())
            .await
            .map_err(StoreError::from_sdk);
        match result {
            Ok(out) => {
                call.finish(Kind::Read, out.consumed_capacity().into_iter().collect(), None);
                Ok(out.item)
            }
            Err(e) => {
                call.finish(Kind::Read, Vec::new(), Some(&e));
                Err(e)
            }
        }
    }

    /// A Query builder on this table that reports consumed capacity per index; send it with [`Store::query`].
    pub(crate) fn query_builder(&self) -> QueryFluentBuilder {
        self.client
            .query()
            .table_name(self.table.as_ref())
            .return_consumed_capacity(ReturnConsumedCapacity::Indexes)
    }

    /// Sends one Query and records its cost.
    pub(crate) async fn query(&self, query: QueryFluentBuilder) -> Result<QueryOutput, StoreError> {
        let call = Call::start("Query", &self.table, query.get_index_name().as_deref());
        let result = query.send().instrument(call.span()).await.map_err(StoreError::from_sdk);
        match result {
            Ok(out) => {
                call.finish(Kind::Read, out.consumed_capacity().into_iter().collect(), None);
                Ok(out)
            }
            Err(e) => {
                call.finish(Kind::Read, Vec::new(), Some(&e));
                Err(e)
            }
        }
    }

    /// Every item a Query matches, following LastEvaluatedKey (one call unless the result passes 1 MB).
    pub(crate) async fn query_all(&self, query: QueryFluentBuilder) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = self.query(query.clone().set_exclusive_start_key(start)).await?;
            items.extend(out.items.unwrap_or_default());
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(items);
            }
        }
    }

    /// `query` with `filter`'s condition as its FilterExpression.
    pub(crate) fn filtered(query: QueryFluentBuilder, filter: expr::Expr) -> Result<QueryFluentBuilder, StoreError> {
        if filter.has_update() {
            return Err(StoreError::Engine("update clauses in a filter".into()));
        }
        let text = filter.condition();
        let (names, values) = filter.placeholders()?;
        let mut query = query.set_filter_expression(text);
        for (k, v) in names.into_iter().flatten() {
            query = query.expression_attribute_names(k, v);
        }
        for (k, v) in values.into_iter().flatten() {
            query = query.expression_attribute_values(k, v);
        }
        Ok(query)
    }

    /// Sends one Query for a page of `limit` items from `start` (the cursor's key, cut to `key_attributes`),
    /// reading each item as `R` and mapping it to `T`.
    pub(crate) async fn query_page<R: DeserializeOwned, T>(
        &self,
        query: QueryFluentBuilder,
        limit: i32,
        start: Option<&PageKey>,
        key_attributes: &[&str],
        map: impl Fn(R) -> T,
    ) -> Result<Page<T>, StoreError> {
        let out = self
            .query(
                query
                    .limit(limit)
                    .set_exclusive_start_key(start.and_then(|k| k.to_item(key_attributes))),
            )
            .await?;
        let items = out
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|item| from_item::<R>(item).map(&map))
            .collect::<Result<_, _>>()?;
        Ok(Page {
            items,
            next: PageKey::from_item(out.last_evaluated_key),
        })
    }

    /// PutItem with an optional condition (values given by the caller on the builder).
    pub(crate) fn put_builder(&self, item: Item) -> PutItemFluentBuilder {
        self.client
            .put_item()
            .table_name(self.table.as_ref())
            .set_item(Some(item))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
    }

    /// Sends one PutItem of `item` where `condition` holds (a failed condition is
    /// [`StoreError::ConditionFailed`]).
    pub(crate) async fn put_if(&self, item: Item, condition: expr::Expr) -> Result<(), StoreError> {
        let text = condition.condition();
        let (names, values) = condition.placeholders()?;
        self.put(
            self.put_builder(item)
                .set_condition_expression(text)
                .set_expression_attribute_names(names)
                .set_expression_attribute_values(values),
        )
        .await
    }

    /// Sends one PutItem and records its cost.
    pub(crate) async fn put(&self, put: PutItemFluentBuilder) -> Result<(), StoreError> {
        let call = Call::start("PutItem", &self.table, None);
        let result = put.send().instrument(call.span()).await.map_err(StoreError::from_sdk);
        match result {
            Ok(out) => {
                call.finish(Kind::Write, out.consumed_capacity().into_iter().collect(), None);
                Ok(())
            }
            Err(e) => {
                call.finish(Kind::Write, Vec::new(), Some(&e));
                Err(e)
            }
        }
    }

    /// DeleteItem with an optional condition.
    pub(crate) async fn delete(&self, delete: DeleteItemFluentBuilder) -> Result<(), StoreError> {
        let call = Call::start("DeleteItem", &self.table, None);
        let result = delete
            .table_name(self.table.as_ref())
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .instrument(call.span())
            .await
            .map_err(StoreError::from_sdk);
        match result {
            Ok(out) => {
                call.finish(Kind::Write, out.consumed_capacity().into_iter().collect(), None);
                Ok(())
            }
            Err(e) => {
                call.finish(Kind::Write, Vec::new(), Some(&e));
                Err(e)
            }
        }
    }
}

/// Serialises a persistence struct into an item.
pub(crate) fn to_item<T: Serialize>(value: &T) -> Result<Item, StoreError> {
    serde_dynamo::to_item(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Deserialises an item into a persistence struct.
pub(crate) fn from_item<T: DeserializeOwned>(item: Item) -> Result<T, StoreError> {
    serde_dynamo::from_item(item).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// A string attribute value.
pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

/// The primary key of an item.
pub(crate) fn key(pk: impl Into<String>, sk: impl Into<String>) -> Item {
    HashMap::from([(keys::PK.to_owned(), s(pk)), (keys::SK.to_owned(), s(sk))])
}

/// Where a page of a Query ended: the LastEvaluatedKey as plain strings (every key attribute of this table is
/// a string) and, for a list kept in buckets (month partitions), the bucket it continues in. Opaque outside
/// the store: the service wraps it in its cursor and the API seals that.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageKey {
    #[serde(rename = "k", default, skip_serializing_if = "BTreeMap::is_empty")]
    key: BTreeMap<String, String>,
    #[serde(rename = "b", default, skip_serializing_if = "Option::is_none")]
    bucket: Option<String>,
}

impl PageKey {
    fn from_item(item: Option<Item>) -> Option<Self> {
        let item = item?;
        Some(Self {
            key: item
                .into_iter()
                .filter_map(|(k, v)| v.as_s().ok().map(|s| (k, s.clone())))
                .collect(),
            bucket: None,
        })
    }

    /// The key as ExclusiveStartKey, keeping only `attributes` (a cursor cannot smuggle other attributes in);
    /// `None` for a key that only names a bucket.
    fn to_item(&self, attributes: &[&str]) -> Option<Item> {
        let item: Item = self
            .key
            .iter()
            .filter(|(k, _)| attributes.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), s(v)))
            .collect();
        (!item.is_empty()).then_some(item)
    }

    /// The key's bytes, for a cursor.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a page key serialises")
    }

    /// A key from [`PageKey::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }
}

/// One page of a Query.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// Items of this page.
    pub items: Vec<T>,
    /// Where the next page starts, if there is one.
    pub next: Option<PageKey>,
}

impl Store {
    /// One page of a list kept in buckets (month partitions), read in the order of `buckets`: each page is one
    /// Query (`query(bucket, resume_key)`) on one bucket; the page key carries the bucket, so the next page
    /// continues there, and moves on to the next bucket when one is exhausted (a page can then hold fewer
    /// items than asked).
    ///
    /// # Errors
    /// [`StoreError::ForeignKey`] for a key of another list; engine failures.
    pub(crate) async fn bucket_paged<B, T, F, Fut>(
        buckets: &[B],
        start: Option<&PageKey>,
        query: F,
    ) -> Result<Page<T>, StoreError>
    where
        B: fmt::Display + Copy,
        F: FnOnce(B, Option<PageKey>) -> Fut,
        Fut: Future<Output = Result<Page<T>, StoreError>>,
    {
        let position = match start {
            None if !buckets.is_empty() => 0,
            Some(PageKey {
                bucket: Some(bucket), ..
            }) => buckets
                .iter()
                .position(|b| b.to_string() == *bucket)
                .ok_or(StoreError::ForeignKey)?,
            _ => return Err(StoreError::ForeignKey),
        };
        let bucket = buckets[position];
        let resume = start.filter(|k| !k.key.is_empty()).cloned();
        let page = query(bucket, resume).await?;
        let next = match page.next {
            Some(mut key) => {
                key.bucket = Some(bucket.to_string());
                Some(key)
            }
            None => buckets.get(position + 1).map(|b| PageKey {
                key: BTreeMap::new(),
                bucket: Some(b.to_string()),
            }),
        };
        Ok(Page {
            items: page.items,
            next,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An audit event on `patient`, for tests of writes that carry one.
    pub(crate) fn audit_event(patient: uuid::Uuid) -> crate::domain::audit::AuditEvent {
        use crate::domain::audit::{Actor, AuditDraft};
        AuditDraft {
            actor: Actor {
                sub: "s".into(),
                role: "admin".into(),
            },
            action: "a".into(),
            resource: "r".into(),
            outcome: 200,
            request_id: "q".into(),
        }
        .event(patient)
    }

    /// A store whose client is never sent anything: for tests of what a write would send.
    pub(crate) fn offline_store() -> Store {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new("eu-central-1"))
            .build();
        Store::new(Client::from_conf(config), "offline")
    }
}
