//! Test type catalog: current versions in one partition, every version in its own.

use super::{
    Store, StoreError,
    expr::Expr,
    from_item,
    items::{TestTypeItem, attr},
    keys, s, to_item,
    tx::{Sent, Tx},
};
use crate::domain::test_type::TestType;
#[cfg(test)]
use crate::domain::test_type::TestTypeDefinition;

/// The actions of [`Store::put_test_type_version`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TestTypeAction {
    /// The catalog entry: new for version 1, else still at the previous version.
    Current,
    /// The immutable version item is new.
    Version,
}

/// How [`Store::put_test_type_version`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestTypeOutcome {
    /// Written.
    Written,
    /// The catalog entry exists (for version 1) or is not at the previous version (or is gone).
    CurrentMoved,
    /// That version exists already.
    VersionTaken,
}

impl Store {
    /// Every test type's current version (active or not), ordered by code: one Query on the catalog partition
    /// (more only if the catalog outgrows a 1 MB page).
    ///
    /// # Errors
    /// When the engine fails or an item is malformed.
    pub async fn list_catalog(&self) -> Result<Vec<TestType>, StoreError> {
        self.query_all(
            self.query_builder()
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", keys::PK)
                .expression_attribute_values(":pk", s(keys::CATALOG_PK)),
        )
        .await?
        .into_iter()
        .map(|item| from_item::<TestTypeItem>(item).map(TestType::from))
        .collect()
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
    /// Engine failures.
    pub async fn put_test_type_version(&self, test_type: &TestType) -> Result<TestTypeOutcome, StoreError> {
        let tx = self.test_type_tx(test_type)?;
        match self.send(tx).await? {
            Sent::Committed => Ok(TestTypeOutcome::Written),
            Sent::Rejected(r) if r.has(TestTypeAction::Current) => Ok(TestTypeOutcome::CurrentMoved),
            Sent::Rejected(r) if r.has(TestTypeAction::Version) => Ok(TestTypeOutcome::VersionTaken),
            Sent::Rejected(r) => Err(r.unexpected()),
        }
    }

    fn test_type_tx(&self, test_type: &TestType) -> Result<Tx<TestTypeAction>, StoreError> {
        let current = if test_type.version == 1 {
            Expr::new().not_exists(keys::PK)
        } else {
            Expr::new().eq(attr::VERSION, test_type.version - 1)
        };
        let mut tx = Tx::new(self);
        tx.put(
            TestTypeAction::Current,
            to_item(&TestTypeItem::catalog_entry(test_type))?,
            current,
        )?;
        tx.put_new(TestTypeAction::Version, to_item(&TestTypeItem::version(test_type))?)?;
        Ok(tx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tx::assert_names_in_targets;

    #[test]
    fn every_attribute_a_test_type_write_names_exists_in_its_item() {
        let definition = serde_json::from_value(crate::examples::test_type_definition()).unwrap();
        let store = crate::store::tests::offline_store();
        for version in [1, 2] {
            let test_type = TestType {
                version,
                definition: TestTypeDefinition::clone(&definition),
                created_at: "t".into(),
            };
            assert_names_in_targets(&store.test_type_tx(&test_type).unwrap(), &Default::default());
        }
    }
}
