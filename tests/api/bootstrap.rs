//! Table bootstrap on the real engine.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, LocalSecondaryIndex, Projection,
    ProjectionType, ScalarAttributeType, TableDescription, TimeToLiveStatus,
};
use medbook::{
    config::CapacityMode,
    store::{Store, bootstrap::BootstrapError, keys},
};

use crate::helpers::table_name;

fn client() -> aws_sdk_dynamodb::Client {
    crate::helpers::engine_client()
}

async fn describe(table: &str) -> TableDescription {
    client()
        .describe_table()
        .table_name(table)
        .send()
        .await
        .expect("describe")
        .table
        .expect("table")
}

fn key(name: &str, key_type: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(key_type)
        .build()
        .unwrap()
}

fn attr(name: &str) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .unwrap()
}

fn all() -> Projection {
    Projection::builder().projection_type(ProjectionType::All).build()
}

/// Creates a table by hand: PK/SK, an LSI named `lsi_name` on `lsi_sk`, and the GSIs in `gsis`.
async fn create_by_hand(table: &str, lsi_name: &str, lsi_sk: &str, gsis: &[keys::GsiSpec]) {
    let mut request = client()
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr(keys::PK))
        .attribute_definitions(attr(keys::SK))
        .attribute_definitions(attr(lsi_sk))
        .key_schema(key(keys::PK, KeyType::Hash))
        .key_schema(key(keys::SK, KeyType::Range))
        .local_secondary_indexes(
            LocalSecondaryIndex::builder()
                .index_name(lsi_name)
                .key_schema(key(keys::PK, KeyType::Hash))
                .key_schema(key(lsi_sk, KeyType::Range))
                .projection(all())
                .build()
                .unwrap(),
        );
    for g in gsis {
        request = request
            .attribute_definitions(attr(g.pk))
            .attribute_definitions(attr(g.sk))
            .global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(g.name)
                    .key_schema(key(g.pk, KeyType::Hash))
                    .key_schema(key(g.sk, KeyType::Range))
                    .projection(all())
                    .build()
                    .unwrap(),
            );
    }
    request.send().await.expect("create by hand");
}

fn assert_complete(table: &TableDescription) {
    let keys_of = |schema: &[KeySchemaElement]| {
        schema
            .iter()
            .map(|k| format!("{}:{}", k.attribute_name(), k.key_type().as_str()))
            .collect::<Vec<_>>()
    };
    assert_eq!(keys_of(table.key_schema()), ["PK:HASH", "SK:RANGE"]);
    let lsis = table.local_secondary_indexes();
    assert_eq!(lsis.len(), 1);
    assert_eq!(lsis[0].index_name(), Some(keys::LSI_BOOKINGS_BY_SLOT));
    assert_eq!(keys_of(lsis[0].key_schema()), ["PK:HASH", "LSI1SK:RANGE"]);
    let mut gsis: Vec<(String, Vec<String>)> = table
        .global_secondary_indexes()
        .iter()
        .map(|g| (g.index_name().unwrap().to_owned(), keys_of(g.key_schema())))
        .collect();
    gsis.sort();
    let mut expected: Vec<(String, Vec<String>)> = keys::GSIS
        .iter()
        .map(|g| {
            (
                g.name.to_owned(),
                vec![format!("{}:HASH", g.pk), format!("{}:RANGE", g.sk)],
            )
        })
        .collect();
    expected.sort();
    assert_eq!(gsis, expected);
}

#[tokio::test]
async fn bootstrap_twice_and_from_four_concurrent_tasks_ends_with_one_correct_table() {
    let table = table_name();
    let store = Store::new(client(), table.clone());
    let runs = (0..4).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { store.bootstrap(CapacityMode::OnDemand, true).await })
    });
    for run in futures_join(runs).await {
        run.expect("task").expect("bootstrap");
    }
    store
        .bootstrap(CapacityMode::OnDemand, true)
        .await
        .expect("second bootstrap");

    let description = describe(&table).await;
    assert_complete(&description);
    let listed = client().list_tables().send().await.unwrap();
    assert_eq!(listed.table_names().iter().filter(|t| **t == table).count(), 1);
    let ttl = client()
        .describe_time_to_live()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let ttl = ttl.time_to_live_description().unwrap();
    assert_eq!(ttl.time_to_live_status(), Some(&TimeToLiveStatus::Enabled));
    assert_eq!(ttl.attribute_name(), Some(keys::EXPIRES_AT));
    assert!(store.is_ready().await.unwrap());
}

async fn futures_join<T>(
    handles: impl Iterator<Item = tokio::task::JoinHandle<T>>,
) -> Vec<Result<T, tokio::task::JoinError>> {
    let mut out = Vec::new();
    for h in handles.collect::<Vec<_>>() {
        out.push(h.await);
    }
    out
}

#[tokio::test]
async fn an_existing_table_missing_gsis_gets_them_added() {
    let table = table_name();
    // Two missing, added one after the other. DynamoDB Local builds each added index for minutes, and with
    // the rest of the suite beside it two took over the 600 s bootstrap allows: there one is missing (adding
    // one index on Amazon's engine), and the embedded engine, which adds them at once, checks the sequence.
    let missing = if std::env::var(crate::helpers::EXTERNAL_ENGINE).is_ok() {
        1
    } else {
        2
    };
    let present = keys::GSIS.len() - missing;
    create_by_hand(
        &table,
        keys::LSI_BOOKINGS_BY_SLOT,
        keys::LSI1_SK,
        &keys::GSIS[..present],
    )
    .await;
    assert_eq!(describe(&table).await.global_secondary_indexes().len(), present);

    // Without the stream: under the whole suite, DynamoDB Local let the stream's UpdateTable right after an
    // added index run past the 5 s a call may take (the stream has a test of its own, on a complete table).
    Store::new(client(), table.clone())
        .bootstrap(CapacityMode::OnDemand, false)
        .await
        .expect("bootstrap adds GSIs");
    assert_complete(&describe(&table).await);
}

#[tokio::test]
async fn a_table_with_another_lsi_is_refused_with_a_clear_error() {
    let table = table_name();
    create_by_hand(&table, "ByCreatedAt", "createdAt", &keys::GSIS).await;
    let err = Store::new(client(), table.clone())
        .bootstrap(CapacityMode::OnDemand, true)
        .await
        .unwrap_err();
    assert!(matches!(err, BootstrapError::Lsi { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("ByCreatedAt") && message.contains(keys::LSI_BOOKINGS_BY_SLOT),
        "{message}"
    );
    assert!(
        message.contains("An LSI can only be created with the table"),
        "{message}"
    );
}

#[tokio::test]
async fn a_table_with_another_key_schema_is_refused() {
    let table = table_name();
    client()
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("id"))
        .key_schema(key("id", KeyType::Hash))
        .send()
        .await
        .unwrap();
    let err = Store::new(client(), table)
        .bootstrap(CapacityMode::OnDemand, true)
        .await
        .unwrap_err();
    assert!(matches!(err, BootstrapError::KeySchema { .. }), "{err:?}");
    assert!(err.to_string().contains("id:HASH"), "{err}");
}

#[tokio::test]
async fn provisioned_mode_sets_units_on_the_table_and_every_gsi() {
    let table = table_name();
    Store::new(client(), table.clone())
        .bootstrap(CapacityMode::Provisioned { rcu: 7, wcu: 3 }, true)
        .await
        .unwrap();
    let description = describe(&table).await;
    let units = |t: Option<&aws_sdk_dynamodb::types::ProvisionedThroughputDescription>| {
        t.map(|t| (t.read_capacity_units(), t.write_capacity_units()))
    };
    assert_eq!(units(description.provisioned_throughput()), Some((Some(7), Some(3))));
    for g in description.global_secondary_indexes() {
        assert_eq!(
            units(g.provisioned_throughput()),
            Some((Some(7), Some(3))),
            "{:?}",
            g.index_name()
        );
    }
}

#[tokio::test]
async fn the_stream_is_turned_on_for_the_relay_and_one_without_new_images_is_refused() {
    use aws_sdk_dynamodb::types::{StreamSpecification, StreamViewType};
    let table = table_name();
    let store = Store::new(client(), table.clone());
    store.bootstrap(CapacityMode::OnDemand, false).await.expect("bootstrap");
    let enabled = |d: &TableDescription| d.stream_specification().is_some_and(|s| s.stream_enabled());
    assert!(!enabled(&describe(&table).await), "no relay, no stream");
    store
        .bootstrap(CapacityMode::OnDemand, true)
        .await
        .expect("bootstrap for the relay");
    let described = describe(&table).await;
    assert!(enabled(&described));
    assert_eq!(
        described.stream_specification().unwrap().stream_view_type(),
        Some(&StreamViewType::NewImage)
    );

    let other = table_name();
    let store = Store::new(client(), other.clone());
    store.bootstrap(CapacityMode::OnDemand, false).await.expect("bootstrap");
    client()
        .update_table()
        .table_name(&other)
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::KeysOnly)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("a keys-only stream");
    let err = store.bootstrap(CapacityMode::OnDemand, true).await.unwrap_err();
    assert!(matches!(err, BootstrapError::StreamView { .. }), "{err:?}");
    assert!(err.to_string().contains("NEW_IMAGE"), "{err}");
}
