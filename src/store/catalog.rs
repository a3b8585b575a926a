//! Test type catalog: current versions in one partition, every version in its own.

use std::collections::HashMap;

use super::{Store, StoreError, from_item, items::TestTypeItem, keys, n, s, to_item};
use crate::domain::test_type::TestType;

impl Store {
    /// Every test type's current version (active or not), ordered by code: one Query on the catalog partition
    /// (more only if the catalog outgrows a 1 MB page).
    ///
    /// # Errors
    /// When the engine fails or an item is malformed.
    pub async fn list_catalog(&self) -> Result<Vec<TestType>, StoreError> {
        let mut types = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .query(
                    self.query_builder()
                        .key_condition_expression("#pk = :pk")
                        .expression_attribute_names("#pk", keys::PK)
                        .expression_attribute_values(":pk", s(keys::CATALOG_PK))
                        .set_exclusive_start_key(start),
                )
                .await?;
            for item in out.items.unwrap_or_default() {
                types.push(TestType::from(from_item::<TestTypeItem>(item)?));
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(types);
            }
        }
    }

    /// A test type's current version (GetItem).
    ///
    /// # Errors
    /// When the engine fails or the item is malformed.
    pub async fn get_test_type(&self, code: &str) -> Result<Option<TestType>, StoreError> {
        self.get(keys::CATALOG_PK.to_owned(), keys::catalog_sk(code))
            .await?
            .map(|item| from_item::<TestTypeItem>(item).map(TestType::from))
            .transpose()
    }

    /// One version of a test type (GetItem).
    ///
    /// # Errors
    /// When the engine fails or the item is malformed.
    pub async fn get_test_type_version(&self, code: &str, version: u32) -> Result<Option<TestType>, StoreError> {
        self.get(keys::test_type_pk(code), keys::test_type_version_sk(version))
            .await?
            .map(|item| from_item::<TestTypeItem>(item).map(TestType::from))
            .transpose()
    }

    /// Writes version `test_type.version` of a test type: the catalog entry and the immutable version item in
    /// one transaction. For version 1 the entry must not exist; after that the stored entry must still be at
    /// `version - 1` (optimistic concurrency). The version item must never exist already.
    ///
    /// # Errors
    /// [`StoreError::TransactionCanceled`]: reason 0 is the catalog entry's condition, reason 1 the version's.
    pub async fn put_test_type_version(&self, test_type: &TestType) -> Result<(), StoreError> {
        let entry = to_item(&TestTypeItem::catalog_entry(test_type))?;
        let version = to_item(&TestTypeItem::version(test_type))?;
        let entry_put = if test_type.version == 1 {
            self.tx_put(entry, Some("attribute_not_exists(PK)"), None)
        } else {
            self.tx_put(
                entry,
                Some("version = :previous"),
                Some(HashMap::from([(":previous".to_owned(), n(test_type.version - 1))])),
            )
        };
        let version_put = self.tx_put(version, Some("attribute_not_exists(PK)"), None);
        self.transact(vec![entry_put, version_put], None).await
    }
}
