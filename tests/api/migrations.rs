//! Migrations on the real engine.

use medbook::{
    config::CapacityMode,
    store::{
        Store,
        migrate::{MigrateError, Migration, embedded},
    },
};

use crate::helpers::fresh_store;

async fn bootstrapped() -> Store {
    let store = fresh_store();
    store.bootstrap(CapacityMode::OnDemand).await.expect("bootstrap");
    store
}

#[tokio::test]
async fn four_concurrent_migrate_runs_apply_each_migration_once() {
    let store = bootstrapped().await;
    let mut extra = embedded();
    extra.push(
        Migration::new(
            "0003_extra_test.json",
            r#"{"description": "one more", "createTestTypes": [{"code": "ZZZ", "name": "Test", "category": "x",
                "loinc": "1-1", "specimen": "serum", "durationMinutes": 5, "priceCents": 1, "currency": "EUR",
                "analytes": [{"code": "Z", "name": "Z", "loinc": "1-1", "unit": "mg/dL", "referenceRange": {"high": 1}}]}]}"#,
        )
        .unwrap(),
    );
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let (store, migrations) = (store.clone(), extra.clone());
            tokio::spawn(async move { store.migrate(&migrations).await })
        })
        .collect();
    let mut applied = Vec::new();
    for run in runs {
        applied.extend(run.await.expect("task").expect("migrate"));
    }
    applied.sort();
    assert_eq!(
        applied,
        ["0001_test_catalog.json", "0002_sites.json", "0003_extra_test.json"],
        "each applied exactly once"
    );

    let status = store.migration_status(&extra).await.unwrap();
    assert!(status.iter().all(|s| s.applied_at.is_some()), "{status:?}");
    let catalog = store.list_catalog().await.unwrap();
    assert!(catalog.len() >= 9, "{}", catalog.len());
    assert!(catalog.iter().all(|t| t.version == 1));
    assert!(
        store.migrate(&extra).await.unwrap().is_empty(),
        "a later run applies nothing"
    );
}

#[tokio::test]
async fn an_edited_applied_migration_is_refused() {
    let store = bootstrapped().await;
    let original = Migration::new("0001_x.json", r#"{"description": "original"}"#).unwrap();
    assert_eq!(
        store.migrate(std::slice::from_ref(&original)).await.unwrap(),
        ["0001_x.json"]
    );

    let edited = Migration::new("0001_x.json", r#"{"description": "edited"}"#).unwrap();
    let err = store.migrate(std::slice::from_ref(&edited)).await.unwrap_err();
    assert!(matches!(err, MigrateError::Edited { .. }), "{err:?}");
    assert!(
        err.to_string().contains("0001_x.json was edited after it was applied"),
        "{err}"
    );
    assert!(store.migration_status(&[edited]).await.is_err(), "status refuses too");
}

#[tokio::test]
async fn pending_migrations_are_listed_until_applied() {
    let store = bootstrapped().await;
    let status = store.migration_status(&embedded()).await.unwrap();
    assert_eq!(status.len(), 2);
    assert_eq!(status[0].name, "0001_test_catalog.json");
    assert_eq!(status[1].name, "0002_sites.json");
    assert!(status[0].applied_at.is_none());
}

#[tokio::test]
async fn an_invalid_migration_file_is_refused_before_anything_is_written() {
    let store = bootstrapped().await;
    let bad = Migration::new(
        "0001_bad.json",
        r#"{"description": "bad", "createTestTypes": [{"code": "lower", "name": "", "category": "x",
            "loinc": "1-1", "specimen": "s", "durationMinutes": 5, "priceCents": 1, "currency": "EUR", "analytes": []}]}"#,
    )
    .unwrap();
    let err = store.migrate(std::slice::from_ref(&bad)).await.unwrap_err();
    assert!(matches!(err, MigrateError::Invalid { .. }), "{err:?}");
    assert!(store.list_catalog().await.unwrap().is_empty());
    assert!(store.migration_status(&[bad]).await.unwrap()[0].applied_at.is_none());
}
