//! The test type catalog, served from an in-process cache.
//!
//! The whole catalog (tens of items) is one Query; the cache keeps it for [`CACHE_TTL`], and a change made
//! through this process clears it at once. Another replica's change is seen here within [`CACHE_TTL`]: that
//! is the bounded staleness across replicas (bookings record the version they booked, so a booking made
//! against a version just replaced is still well defined).

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use garde::Validate;

use super::{Expected, FieldError, ServiceError};
use crate::{
    domain::{
        test_type::{TestType, TestTypeDefinition},
        timefmt,
    },
    store::{Store, catalog::TestTypeOutcome},
};

/// How long a cached catalog is served before it is read again.
pub const CACHE_TTL: Duration = Duration::from_secs(30);

/// The cached catalog and when it was read.
type Cached = Option<(Instant, Arc<Vec<TestType>>)>;

/// Catalog use cases.
#[derive(Debug, Clone)]
pub struct Catalog {
    store: Store,
    cache: Arc<RwLock<Cached>>,
    /// Versions never change once written, so they are cached without expiry.
    versions: Arc<RwLock<HashMap<(String, u32), TestType>>>,
}

impl Catalog {
    /// A catalog over `store` with an empty cache.
    pub fn new(store: Store) -> Self {
        Self {
            store,
            cache: Arc::default(),
            versions: Arc::default(),
        }
    }

    /// Every test type's current version (active or not), ordered by code: 0 calls on a cache hit, 1 Query
    /// on a miss.
    ///
    /// # Errors
    /// When the engine fails.
    pub async fn all(&self) -> Result<Arc<Vec<TestType>>, ServiceError> {
        if let Some((at, types)) = self.cache.read().unwrap_or_else(|e| e.into_inner()).as_ref()
            && at.elapsed() < CACHE_TTL
        {
            return Ok(types.clone());
        }
        let types = Arc::new(self.store.list_catalog().await?);
        *self.cache.write().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), types.clone()));
        // Current versions are immutable versions too: recording a result against them needs no read.
        let mut versions = self.versions.write().unwrap_or_else(|e| e.into_inner());
        for t in types.iter() {
            versions
                .entry((t.definition.code.clone(), t.version))
                .or_insert_with(|| t.clone());
        }
        Ok(types)
    }

    /// The active test types.
    ///
    /// # Errors
    /// When the engine fails.
    pub async fn active(&self) -> Result<Vec<TestType>, ServiceError> {
        Ok(self
            .all()
            .await?
            .iter()
            .filter(|t| t.definition.active)
            .cloned()
            .collect())
    }

    /// A test type's current version (from the cache).
    ///
    /// # Errors
    /// [`ServiceError::NotFound`] when no test type has `code`.
    pub async fn current(&self, code: &str) -> Result<TestType, ServiceError> {
        self.all()
            .await?
            .iter()
            .find(|t| t.definition.code == code)
            .cloned()
            .ok_or(ServiceError::NotFound("test type"))
    }

    /// One version of a test type: from the version cache, else one GetItem (versions are immutable, so
    /// caching them is always correct).
    ///
    /// # Errors
    /// [`ServiceError::NotFound`] when that version does not exist.
    pub async fn version(&self, code: &str, version: u32) -> Result<TestType, ServiceError> {
        let cache_key = (code.to_owned(), version);
        if let Some(found) = self.versions.read().unwrap_or_else(|e| e.into_inner()).get(&cache_key) {
            return Ok(found.clone());
        }
        let found = self
            .store
            .get_test_type_version(code, version)
            .await?
            .ok_or(ServiceError::NotFound("test type version"))?;
        self.versions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(cache_key, found.clone());
        Ok(found)
    }

    /// Creates a test type at version 1.
    ///
    /// # Errors
    /// [`ServiceError::Invalid`] for a bad definition, [`ServiceError::Conflict`] when the code is taken.
    pub async fn create(&self, definition: TestTypeDefinition) -> Result<TestType, ServiceError> {
        definition.validate()?;
        let test_type = TestType {
            version: 1,
            definition,
            created_at: timefmt::now(),
        };
        match self.store.put_test_type_version(&test_type).await? {
            TestTypeOutcome::Written => {}
            TestTypeOutcome::CurrentMoved | TestTypeOutcome::VersionTaken => {
                return Err(ServiceError::conflict(
                    "already-exists",
                    format!(
                        "test type {} exists already; change it with PUT",
                        test_type.definition.code
                    ),
                ));
            }
        }
        self.invalidate();
        Ok(test_type)
    }

    /// Replaces test type `code`, whose current version must be the one `expected` names, with a new version.
    /// Earlier versions stay readable.
    ///
    /// # Errors
    /// [`ServiceError::Invalid`], [`ServiceError::NotFound`], or [`ServiceError::VersionMismatch`] when the
    /// current version is not the one `expected` names (`*` takes the current one).
    pub async fn replace(
        &self,
        code: &str,
        expected: Expected,
        definition: TestTypeDefinition,
    ) -> Result<TestType, ServiceError> {
        if definition.code != code {
            return Err(ServiceError::Invalid(vec![FieldError::new(
                "code",
                format!("must be `{code}`, as in the URL"),
            )]));
        }
        definition.validate()?;
        let expected_version = match expected {
            Expected::Version(v) => u32::try_from(v).map_err(|_| ServiceError::VersionMismatch)?,
            // A fresh read, not the cache: another replica may have moved it on.
            Expected::Any => {
                self.store
                    .get_test_type(code)
                    .await?
                    .ok_or(ServiceError::NotFound("test type"))?
                    .version
            }
        };
        if expected_version == 0 {
            return Err(ServiceError::VersionMismatch);
        }
        let test_type = TestType {
            version: expected_version + 1,
            definition,
            created_at: timefmt::now(),
        };
        match self.store.put_test_type_version(&test_type).await? {
            TestTypeOutcome::Written => {}
            TestTypeOutcome::CurrentMoved | TestTypeOutcome::VersionTaken => {
                // Distinguish "gone" from "moved on" only on this rare path.
                self.invalidate();
                return match self.store.get_test_type(code).await? {
                    None => Err(ServiceError::NotFound("test type")),
                    Some(_) => Err(ServiceError::VersionMismatch),
                };
            }
        }
        self.invalidate();
        Ok(test_type)
    }

    fn invalidate(&self) {
        *self.cache.write().unwrap_or_else(|e| e.into_inner()) = None;
    }
}
