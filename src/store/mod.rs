//! The DynamoDB repository: the only module that knows the SDK.
//!
//! Every request path uses GetItem, Query, TransactWriteItems or BatchGetItem (never Scan), builds its keys
//! with [`keys`], and converts items with the persistence structs of [`items`]. Every call asks for consumed
//! capacity and records it with [`usage`], so a request can report what it cost.

pub mod audit;
pub mod bookings;
pub mod bootstrap;
pub mod catalog;
pub mod client;
#[cfg(feature = "embedded")]
pub mod engine;
pub mod items;
pub mod keys;
pub mod migrate;
pub mod patients;
pub mod usage;

use std::{collections::HashMap, fmt, sync::Arc};

use aws_sdk_dynamodb::{
    Client,
    error::{ProvideErrorMetadata, SdkError},
    operation::{
        delete_item::builders::DeleteItemFluentBuilder,
        put_item::builders::PutItemFluentBuilder,
        query::{QueryOutput, builders::QueryFluentBuilder},
        transact_write_items::TransactWriteItemsError,
    },
    types::{
        AttributeValue, CancellationReason, Put, ReturnConsumedCapacity, ReturnValuesOnConditionCheckFailure,
        TransactWriteItem,
    },
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
    table: Arc<str>,
    audit_retention_days: u32,
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
    /// A transaction was cancelled; one reason code per action, in order (`None` where that action was fine).
    #[error("transaction cancelled: {0:?}")]
    TransactionCanceled(Vec<Option<String>>),
    /// The engine could not be reached, timed out, or throttled us after the SDK's retries.
    #[error("engine unavailable: {0}")]
    Unavailable(String),
    /// The transaction's ClientRequestToken was used within 10 minutes for a transaction with other
    /// parameters (a concurrent or repeated request with the same idempotency key).
    #[error("client request token reused with other parameters")]
    TokenReused,
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

    /// The reason codes of a transaction cancellation. DynamoDB evaluates every action and gives a reason for
    /// each one that failed, so callers can tell conditions apart without another read. A conflict with
    /// another transaction or throttling is not the caller's fault: it becomes [`StoreError::Unavailable`].
    pub(crate) fn canceled(reasons: &[CancellationReason]) -> Self {
        let codes: Vec<Option<String>> = reasons
            .iter()
            .map(|r| r.code().filter(|c| *c != "None").map(str::to_owned))
            .collect();
        let retryable = |c: &str| {
            matches!(
                c,
                "TransactionConflict" | "ThrottlingError" | "ProvisionedThroughputExceeded"
            )
        };
        for code in codes.iter().flatten() {
            metrics::counter!("medbook_dynamodb_transaction_cancellations_total", "reason" => code.clone())
                .increment(1);
        }
        if codes.iter().flatten().any(|c| retryable(c)) {
            return Self::Unavailable(format!("transaction cancelled: {codes:?}"));
        }
        Self::TransactionCanceled(codes)
    }

    /// Whether the `index`-th action of a cancelled transaction failed its condition.
    pub fn condition_failed(&self, index: usize) -> bool {
        matches!(self, Self::TransactionCanceled(reasons)
            if reasons.get(index).and_then(|r| r.as_deref()) == Some("ConditionalCheckFailed"))
    }
}

impl Store {
    /// A store on `table` through `client`.
    pub fn new(client: Client, table: impl Into<Arc<str>>) -> Self {
        Self {
            client,
            table: table.into(),
            audit_retention_days: 2555,
        }
    }

    /// This store, keeping audit events `days` days (TTL).
    pub fn with_audit_retention(mut self, days: u32) -> Self {
        self.audit_retention_days = days;
        self
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// GetItem by primary key.
    pub(crate) async fn get(&self, pk: String, sk: String) -> Result<Option<Item>, StoreError> {
        let call = Call::start("GetItem", &self.table, None);
        let result = self
            .client
            .get_item()
            .table_name(self.table.as_ref())
            .set_key(Some(key(pk, sk)))
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
                    .set_exclusive_start_key(start.map(|k| k.to_item(key_attributes))),
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

    /// Sends one TransactWriteItems, all or nothing, and records its cost. `token` makes retries of the same
    /// logical request idempotent for 10 minutes (ClientRequestToken). A cancellation comes back as
    /// [`StoreError::TransactionCanceled`] with one reason per action, so callers can tell conditions apart
    /// without another read.
    pub(crate) async fn transact(
        &self,
        actions: Vec<TransactWriteItem>,
        token: Option<String>,
    ) -> Result<(), StoreError> {
        let call = Call::start("TransactWriteItems", &self.table, None);
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(actions))
            .set_client_request_token(token)
            .return_consumed_capacity(ReturnConsumedCapacity::Indexes)
            .send()
            .instrument(call.span())
            .await;
        let result = match result {
            Ok(out) => Ok(out),
            Err(e) => Err(match e.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(c)) => {
                    StoreError::canceled(c.cancellation_reasons())
                }
                Some(TransactWriteItemsError::IdempotentParameterMismatchException(_)) => StoreError::TokenReused,
                _ => StoreError::from_sdk(e),
            }),
        };
        match result {
            Ok(out) => {
                call.finish(Kind::Write, out.consumed_capacity().iter().collect(), None);
                Ok(())
            }
            Err(e) => {
                call.finish(Kind::Write, Vec::new(), Some(&e));
                Err(e)
            }
        }
    }

    /// A Put action for a transaction on this table.
    pub(crate) fn tx_put(&self, item: Item, condition: Option<&str>, values: Option<Item>) -> TransactWriteItem {
        let put = Put::builder()
            .table_name(self.table.as_ref())
            .set_item(Some(item))
            .set_condition_expression(condition.map(str::to_owned))
            .set_expression_attribute_values(values)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::None)
            .build()
            .expect("put action is complete");
        TransactWriteItem::builder().put(put).build()
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

/// A number attribute value.
pub(crate) fn n(value: impl fmt::Display) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// The primary key of an item.
pub(crate) fn key(pk: impl Into<String>, sk: impl Into<String>) -> Item {
    HashMap::from([(keys::PK.to_owned(), s(pk)), (keys::SK.to_owned(), s(sk))])
}

/// Where a page of a Query ended: the LastEvaluatedKey, as plain strings (every key attribute of this table
/// is a string). Opaque to callers; the API signs it into a cursor.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct PageKey(pub std::collections::BTreeMap<String, String>);

impl PageKey {
    pub(crate) fn from_item(item: Option<Item>) -> Option<Self> {
        let item = item?;
        Some(Self(
            item.into_iter()
                .filter_map(|(k, v)| v.as_s().ok().map(|s| (k, s.clone())))
                .collect(),
        ))
    }

    /// The key as ExclusiveStartKey, keeping only `attributes` (a cursor cannot smuggle other attributes in).
    pub(crate) fn to_item(&self, attributes: &[&str]) -> Item {
        self.0
            .iter()
            .filter(|(k, _)| attributes.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), s(v)))
            .collect()
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
