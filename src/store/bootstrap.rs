//! Table bootstrap: create the table with every index, or bring an existing one up to date.
//!
//! Safe to run from several processes at once: `ResourceInUseException` from a concurrent starter counts as
//! success, and everyone then waits until the table and its indexes are ACTIVE. An LSI can only be created
//! with the table, so an existing table whose key schema or LSI differs is refused rather than "fixed".

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, GlobalSecondaryIndexUpdate, IndexStatus, KeySchemaElement,
    KeyType, LocalSecondaryIndex, Projection, ProjectionType, ProvisionedThroughput, ScalarAttributeType,
    StreamSpecification, StreamViewType, TableDescription, TableStatus, TimeToLiveSpecification, TimeToLiveStatus,
};

use tracing::Instrument;

use super::{Store, StoreError, keys};
use crate::config::CapacityMode;

/// How long bootstrap waits for the table and a new index to become ACTIVE (index backfills on a large
/// table in Amazon DynamoDB can take minutes).
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(600);

/// Why the table cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// The table's stream is on without new images, which the webhook relay needs.
    #[error(
        "table {table} has a stream without new images ({found}); the webhook relay needs NEW_IMAGE or NEW_AND_OLD_IMAGES"
    )]
    StreamView {
        /// Table name.
        table: String,
        /// Its view type.
        found: String,
    },
    /// The existing table's primary key is not `PK` (hash) + `SK` (range), both strings.
    #[error("table {table} exists with another key schema ({found}); expected PK (HASH, S) + SK (RANGE, S)")]
    KeySchema {
        /// Table name.
        table: String,
        /// What the table has.
        found: String,
    },
    /// The existing table lacks the LSI or has it with another key; an LSI can only be created with the table.
    #[error(
        "table {table} has a different local secondary index ({found}); expected {expected} on PK + {lsi_sk}. \
         An LSI can only be created with the table: migrate the data to a new table"
    )]
    Lsi {
        /// Table name.
        table: String,
        /// What the table has.
        found: String,
        /// Expected index name.
        expected: &'static str,
        /// Expected LSI sort key.
        lsi_sk: &'static str,
    },
    /// An existing GSI of ours has another key schema.
    #[error("index {index} on table {table} has another key schema ({found}); expected {pk} + {sk}")]
    Gsi {
        /// Table name.
        table: String,
        /// Index name.
        index: &'static str,
        /// What the index has.
        found: String,
        /// Expected partition key.
        pk: &'static str,
        /// Expected sort key.
        sk: &'static str,
    },
    /// The table or an index did not become ACTIVE in time.
    #[error("table {0} did not become ACTIVE within {1:?}")]
    Timeout(String, Duration),
    /// The engine failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The table as DescribeTable sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableState {
    /// It and every index are ACTIVE.
    Active,
    /// Being created or updated.
    NotActive,
    /// It does not exist.
    Missing,
}

impl Store {
    /// Creates the table with every index, or adds what an existing table lacks; returns when the table and
    /// all its indexes are ACTIVE and TTL is enabled on `expiresAt`. With `stream` (the relay is on), the
    /// table's stream is turned on with new images where it is off; without, a stream is left as it is.
    ///
    /// # Errors
    /// [`BootstrapError`] when the existing table cannot be used or the engine fails.
    pub async fn bootstrap(&self, capacity: CapacityMode, stream: bool) -> Result<(), BootstrapError> {
        let mut table = match self.describe().await? {
            Some(t) => t,
            None => {
                self.create_table(capacity, stream).await?;
                self.wait_active().await?
            }
        };
        if table.table_status() != Some(&TableStatus::Active) {
            table = self.wait_active().await?;
        }
        self.check_schema(&table)?;
        for gsi in keys::GSIS {
            let existing = table
                .global_secondary_indexes()
                .iter()
                .find(|g| g.index_name() == Some(gsi.name));
            match existing {
                Some(index) => {
                    let found = describe_keys(index.key_schema());
                    if found != format!("{}:HASH,{}:RANGE", gsi.pk, gsi.sk) {
                        return Err(BootstrapError::Gsi {
                            table: self.table.to_string(),
                            index: gsi.name,
                            found,
                            pk: gsi.pk,
                            sk: gsi.sk,
                        });
                    }
                }
                None => {
                    tracing::info!(table = %self.table, index = gsi.name, "adding missing global secondary index");
                    self.add_gsi(gsi, capacity).await?;
                    table = self.wait_active().await?;
                }
            }
        }
        if stream {
            self.enable_stream(&table, 1).await?;
        }
        self.enable_ttl().await?;
        Ok(())
    }

    /// Whether the table exists and it and its indexes are ACTIVE (one DescribeTable call).
    ///
    /// # Errors
    /// When the engine cannot be reached.
    pub async fn is_ready(&self) -> Result<bool, StoreError> {
        Ok(self.table_state().await? == TableState::Active)
    }

    /// Whether the table exists and is ACTIVE with its indexes (one DescribeTable).
    ///
    /// # Errors
    /// When the engine cannot be reached.
    pub async fn table_state(&self) -> Result<TableState, StoreError> {
        Ok(match self.describe().await? {
            None => TableState::Missing,
            Some(t) if is_active(&t) => TableState::Active,
            Some(_) => TableState::NotActive,
        })
    }

    async fn describe(&self) -> Result<Option<TableDescription>, StoreError> {
        let call = super::usage::Call::start("DescribeTable", &self.table, None);
        let sent = self
            .client
            .describe_table()
            .table_name(self.table.as_ref())
            .send()
            .instrument(call.span())
            .await;
        let result = match sent {
            Ok(out) => Ok(out.table),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(StoreError::from_sdk(e)),
        };
        call.finish(super::usage::Kind::Read, Vec::new(), result.as_ref().err());
        result
    }

    async fn create_table(&self, capacity: CapacityMode, stream: bool) -> Result<(), StoreError> {
        tracing::info!(table = %self.table, ?capacity, "creating table");
        let mut request = self
            .client
            .create_table()
            .table_name(self.table.as_ref())
            .set_attribute_definitions(Some(
                [keys::PK, keys::SK, keys::LSI1_SK]
                    .into_iter()
                    .chain(keys::GSIS.iter().flat_map(|g| [g.pk, g.sk]))
                    .map(string_attribute)
                    .collect(),
            ))
            .key_schema(key(keys::PK, KeyType::Hash))
            .key_schema(key(keys::SK, KeyType::Range))
            .set_stream_specification(stream.then(new_images))
            .local_secondary_indexes(
                LocalSecondaryIndex::builder()
                    .index_name(keys::LSI_BOOKINGS_BY_SLOT)
                    .key_schema(key(keys::PK, KeyType::Hash))
                    .key_schema(key(keys::LSI1_SK, KeyType::Range))
                    .projection(all())
                    .build()
                    .expect("LSI has every required field"),
            );
        for gsi in keys::GSIS {
            let mut index = GlobalSecondaryIndex::builder()
                .index_name(gsi.name)
                .key_schema(key(gsi.pk, KeyType::Hash))
                .key_schema(key(gsi.sk, KeyType::Range))
                .projection(all());
            if let CapacityMode::Provisioned { rcu, wcu } = capacity {
                index = index.provisioned_throughput(throughput(rcu, wcu));
            }
            request = request.global_secondary_indexes(index.build().expect("GSI has every required field"));
        }
        request = match capacity {
            CapacityMode::OnDemand => request.billing_mode(BillingMode::PayPerRequest),
            CapacityMode::Provisioned { rcu, wcu } => request
                .billing_mode(BillingMode::Provisioned)
                .provisioned_throughput(throughput(rcu, wcu)),
        };
        match request.send().await {
            Ok(_) => Ok(()),
            // Another process created it first: that is what we wanted.
            Err(e) if e.as_service_error().is_some_and(|e| e.is_resource_in_use_exception()) => Ok(()),
            Err(e) => Err(StoreError::from_sdk(e)),
        }
    }

    async fn add_gsi(&self, gsi: keys::GsiSpec, capacity: CapacityMode) -> Result<(), StoreError> {
        let mut create = aws_sdk_dynamodb::types::CreateGlobalSecondaryIndexAction::builder()
            .index_name(gsi.name)
            .key_schema(key(gsi.pk, KeyType::Hash))
            .key_schema(key(gsi.sk, KeyType::Range))
            .projection(all());
        if let CapacityMode::Provisioned { rcu, wcu } = capacity {
            create = create.provisioned_throughput(throughput(rcu, wcu));
        }
        let result = self
            .client
            .update_table()
            .table_name(self.table.as_ref())
            .attribute_definitions(string_attribute(gsi.pk))
            .attribute_definitions(string_attribute(gsi.sk))
            .global_secondary_index_updates(
                GlobalSecondaryIndexUpdate::builder()
                    .create(create.build().expect("GSI action is complete"))
                    .build(),
            )
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Another process is adding it (or another index) right now; wait_active covers both.
            Err(e) if e.as_service_error().is_some_and(|e| e.is_resource_in_use_exception()) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_limit_exceeded_exception()) => Ok(()),
            Err(e) => {
                let err = StoreError::from_sdk(e);
                // Amazon DynamoDB answers a duplicate index creation with a ValidationException.
                if err.to_string().contains("already exists") {
                    Ok(())
                } else {
                    Err(err)
                }
            }
        }
    }

    async fn wait_active(&self) -> Result<TableDescription, BootstrapError> {
        let deadline = Instant::now() + ACTIVE_TIMEOUT;
        let mut pause = Duration::from_millis(50);
        loop {
            if let Some(table) = self.describe().await?
                && is_active(&table)
            {
                return Ok(table);
            }
            if Instant::now() >= deadline {
                return Err(BootstrapError::Timeout(self.table.to_string(), ACTIVE_TIMEOUT));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }

    fn check_schema(&self, table: &TableDescription) -> Result<(), BootstrapError> {
        let found = describe_keys(table.key_schema());
        let strings = |name: &str| {
            table
                .attribute_definitions()
                .iter()
                .any(|a| a.attribute_name() == name && a.attribute_type() == &ScalarAttributeType::S)
        };
        if found != format!("{}:HASH,{}:RANGE", keys::PK, keys::SK) || !strings(keys::PK) || !strings(keys::SK) {
            return Err(BootstrapError::KeySchema {
                table: self.table.to_string(),
                found,
            });
        }
        let lsis = table.local_secondary_indexes();
        let expected = format!("{}:HASH,{}:RANGE", keys::PK, keys::LSI1_SK);
        let ok = lsis.len() == 1
            && lsis[0].index_name() == Some(keys::LSI_BOOKINGS_BY_SLOT)
            && describe_keys(lsis[0].key_schema()) == expected;
        if !ok {
            let found = if lsis.is_empty() {
                "none".to_owned()
            } else {
                lsis.iter()
                    .map(|l| format!("{}({})", l.index_name().unwrap_or("?"), describe_keys(l.key_schema())))
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            return Err(BootstrapError::Lsi {
                table: self.table.to_string(),
                found,
                expected: keys::LSI_BOOKINGS_BY_SLOT,
                lsi_sk: keys::LSI1_SK,
            });
        }
        Ok(())
    }

    /// Turns the table's stream on (new images: what the webhook relay reads) where it is off. A stream that
    /// is on with another view keeps it if it has new images (`NEW_AND_OLD_IMAGES`); one without them
    /// (`KEYS_ONLY`, `OLD_IMAGE`) is an error, since changing it would cut off whatever else reads it.
    async fn enable_stream(&self, table: &TableDescription, attempt: u32) -> Result<(), BootstrapError> {
        match table.stream_specification() {
            Some(spec) if spec.stream_enabled() => match spec.stream_view_type() {
                Some(StreamViewType::NewImage | StreamViewType::NewAndOldImages) => Ok(()),
                other => Err(BootstrapError::StreamView {
                    table: self.table.to_string(),
                    found: other.map_or("none".to_owned(), |v| v.as_str().to_owned()),
                }),
            },
            _ => {
                tracing::info!(table = %self.table, "enabling the table's stream (NEW_IMAGE)");
                let result = self
                    .client
                    .update_table()
                    .table_name(self.table.as_ref())
                    .stream_specification(new_images())
                    .send()
                    .await
                    .map_err(StoreError::from_sdk);
                match result {
                    Ok(_) => {}
                    // A concurrent starter enabled it first ("already"), or is updating the table right now
                    // (ResourceInUse): wait for the table, then look at the stream again.
                    Err(e) => {
                        let text = e.to_string();
                        if !(text.contains("already") || text.contains("ResourceInUse") || text.contains("in use")) {
                            return Err(e.into());
                        }
                        let table = self.wait_active().await?;
                        if !table.stream_specification().is_some_and(|s| s.stream_enabled()) && attempt >= 3 {
                            return Err(e.into());
                        }
                        // Enabled by the other starter (then its view is checked), or asked for again.
                        return Box::pin(self.enable_stream(&table, attempt + 1)).await;
                    }
                }
                self.wait_active().await?;
                Ok(())
            }
        }
    }

    async fn enable_ttl(&self) -> Result<(), StoreError> {
        let current = self
            .client
            .describe_time_to_live()
            .table_name(self.table.as_ref())
            .send()
            .await
            .map_err(StoreError::from_sdk)?;
        let status = current.time_to_live_description().and_then(|d| d.time_to_live_status());
        if matches!(status, Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)) {
            return Ok(());
        }
        let result = self
            .client
            .update_time_to_live()
            .table_name(self.table.as_ref())
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name(keys::EXPIRES_AT)
                    .build()
                    .expect("TTL spec is complete"),
            )
            .send()
            .await;
        match result.map_err(StoreError::from_sdk) {
            Ok(_) => Ok(()),
            // A concurrent starter enabled it between our describe and update.
            Err(e) if e.to_string().contains("already enabled") => Ok(()),
            Err(e) => Err(e),
        }
    }
}

fn new_images() -> StreamSpecification {
    StreamSpecification::builder()
        .stream_enabled(true)
        .stream_view_type(StreamViewType::NewImage)
        .build()
        .expect("stream spec is complete")
}

fn is_active(table: &TableDescription) -> bool {
    table.table_status() == Some(&TableStatus::Active)
        && table
            .global_secondary_indexes()
            .iter()
            .all(|g| g.index_status() == Some(&IndexStatus::Active))
}

fn describe_keys(schema: &[KeySchemaElement]) -> String {
    schema
        .iter()
        .map(|k| format!("{}:{}", k.attribute_name(), k.key_type().as_str()))
        .collect::<Vec<_>>()
        .join(",")
}

fn key(name: &str, key_type: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(key_type)
        .build()
        .expect("key element is complete")
}

fn string_attribute(name: &str) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .expect("attribute definition is complete")
}

fn all() -> Projection {
    Projection::builder().projection_type(ProjectionType::All).build()
}

fn throughput(rcu: i64, wcu: i64) -> ProvisionedThroughput {
    ProvisionedThroughput::builder()
        .read_capacity_units(rcu)
        .write_capacity_units(wcu)
        .build()
        .expect("throughput is complete")
}
