//! Versioned data migrations (`migrations/NNNN_name.json`), each applied exactly once.
//!
//! The ledger lives in the table: one item per applied migration (written with `attribute_not_exists`) with
//! the file's SHA-256. A lease item with an expiry lets one process at a time apply migrations, so replicas
//! starting together apply each once; a lease left by a crashed process expires and is taken over, and every
//! step is itself idempotent so a half-applied migration can be finished by the next holder. An applied file
//! whose checksum changed is refused: applied migrations are history, fix forward with a new file.

use std::{
    collections::{BTreeMap, HashMap},
    time::{Duration, Instant},
};

use garde::Validate;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    Store, StoreError,
    catalog::TestTypeOutcome,
    expr::Expr,
    from_item,
    items::{
        BookingItem, GuardItem, MigrationItem, MigrationLeaseItem, PatientItem, PlaceItem, ResultItem, attr, entity,
    },
    key, keys, s, to_item,
    tx::{Sent, Tx},
};
use crate::domain::{
    test_type::{TestType, TestTypeDefinition},
    timefmt,
};

/// The actions of moving one booking to a site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MoveAction {
    /// The booking has no site yet.
    Booking,
    /// Its place in the slot is free.
    Place,
}

/// The actions of indexing one patient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IndexAction {
    /// The profile, still at the version read, gets its index attributes.
    Profile,
    /// The e-mail guard: absent, or this patient's already.
    Guard,
}

/// Patients indexed at once within a Scan page.
const INDEX_CONCURRENCY: usize = 16;
/// Items a backfill Scan page reads at most (its progress is recorded after each page).
const INDEX_PAGE: i32 = 100;

/// Where a patient backfill resumes: the Scan's last key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProgressItem {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
    entity: String,
    /// The last key's `PK`.
    last_pk: String,
    /// The last key's `SK`.
    last_sk: String,
    /// Profiles indexed so far.
    indexed: u64,
}

/// The one action of moving a result from the worklist to the verification queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QueueMoveAction {
    /// The result is still in the worklist at the version read.
    Result,
}

/// How long a lease is valid without renewal.
const LEASE_SECONDS: i64 = 60;
/// How long a process waits for another's lease before giving up.
const LEASE_WAIT: Duration = Duration::from_secs(180);

/// One migration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    /// Version: the file name's numeric prefix.
    pub version: u32,
    /// File name, e.g. `0001_test_catalog.json`.
    pub name: String,
    /// File contents.
    pub body: String,
}

impl Migration {
    /// A migration named `NNNN_name.json` with `body`.
    ///
    /// # Errors
    /// When the name does not start with a version number.
    pub fn new(name: &str, body: &str) -> Result<Self, MigrateError> {
        let version = name
            .split('_')
            .next()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| MigrateError::Invalid {
                name: name.to_owned(),
                reason: "name must start with NNNN_".into(),
            })?;
        Ok(Self {
            version,
            name: name.to_owned(),
            body: body.to_owned(),
        })
    }

    /// SHA-256 of the file, hex.
    pub fn checksum(&self) -> String {
        Sha256::digest(self.body.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn parse(&self) -> Result<MigrationFile, MigrateError> {
        let file: MigrationFile = serde_json::from_str(&self.body).map_err(|e| MigrateError::Invalid {
            name: self.name.clone(),
            reason: e.to_string(),
        })?;
        for def in file.create_test_types.iter().chain(&file.new_test_type_versions) {
            def.validate().map_err(|e| MigrateError::Invalid {
                name: self.name.clone(),
                reason: format!("{}: {e}", def.code),
            })?;
        }
        Ok(file)
    }
}

/// The migrations compiled into this binary, in version order.
pub fn embedded() -> Vec<Migration> {
    [
        (
            "0001_test_catalog.json",
            include_str!("../../migrations/0001_test_catalog.json"),
        ),
        ("0002_sites.json", include_str!("../../migrations/0002_sites.json")),
        (
            "0003_verification.json",
            include_str!("../../migrations/0003_verification.json"),
        ),
        (
            "0004_patient_search.json",
            include_str!("../../migrations/0004_patient_search.json"),
        ),
    ]
    .into_iter()
    .map(|(name, body)| Migration::new(name, body).expect("embedded migration names are valid"))
    .collect()
}

/// What a migration file may contain. New kinds of step are new optional sections.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MigrationFile {
    #[expect(dead_code, reason = "documentation for readers of the file")]
    description: String,
    #[serde(default)]
    #[expect(dead_code, reason = "documentation for readers of the file")]
    notice: Option<String>,
    /// Test types to create at version 1 (skipped where the code exists already).
    #[serde(default)]
    create_test_types: Vec<TestTypeDefinition>,
    /// Move every booking made before sites to this site (which must be in UTC, as the old grid was): give it
    /// the site, its local start, a place in its slot and the site's day index key, and delete the old
    /// per-day slot counters. A one-off Scan.
    #[serde(default)]
    move_bookings_to_site: Option<String>,
    /// Test types that get a new version with this definition (skipped where the current version has it).
    #[serde(default)]
    new_test_type_versions: Vec<TestTypeDefinition>,
    /// Move every result on the review worklist that no one verified (every one there before verification
    /// existed) to the verification queue. A Query of the sparse index, not a Scan.
    #[serde(default)]
    move_unverified_to_verification_queue: bool,
    /// Give every patient profile written before the search index its index attributes and its e-mail guard.
    /// A one-off Scan that records its progress, so a rerun resumes where an interrupted run stopped.
    #[serde(default)]
    index_patients: bool,
}

/// Why migrations could not run.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// An applied migration's file changed since.
    #[error(
        "migration {name} was edited after it was applied (applied checksum {applied}, file checksum {file}); \
         applied migrations are history: restore the file and add a new migration instead"
    )]
    Edited {
        /// File name.
        name: String,
        /// Checksum recorded when applied.
        applied: String,
        /// Checksum of the file now.
        file: String,
    },
    /// A migration file cannot be parsed or validated.
    #[error("migration {name} is invalid: {reason}")]
    Invalid {
        /// File name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// Another process held the lease for too long.
    #[error("timed out after {0:?} waiting for the migration lease held by another process")]
    LeaseTimeout(Duration),
    /// The engine failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Whether one migration is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationStatus {
    /// Version.
    pub version: u32,
    /// File name.
    pub name: String,
    /// When it was applied, if it was.
    pub applied_at: Option<String>,
}

impl Store {
    /// Applied and pending state of `migrations`, after checking applied checksums.
    ///
    /// # Errors
    /// [`MigrateError::Edited`] when an applied file changed; engine failures.
    pub async fn migration_status(&self, migrations: &[Migration]) -> Result<Vec<MigrationStatus>, MigrateError> {
        let applied = self.applied_migrations().await?;
        check_checksums(migrations, &applied)?;
        Ok(migrations
            .iter()
            .map(|m| MigrationStatus {
                version: m.version,
                name: m.name.clone(),
                applied_at: applied.get(&m.version).map(|a| a.applied_at.clone()),
            })
            .collect())
    }

    /// Applies every pending migration in version order, each exactly once across all processes; returns the
    /// names this call applied (empty when another process applied them).
    ///
    /// # Errors
    /// [`MigrateError`] when a file was edited or is invalid, the lease cannot be had, or the engine fails.
    pub async fn migrate(&self, migrations: &[Migration]) -> Result<Vec<String>, MigrateError> {
        let mut sorted = migrations.to_vec();
        sorted.sort_by_key(|m| m.version);
        let files = sorted
            .iter()
            .map(|m| m.parse().map(|f| (m, f)))
            .collect::<Result<Vec<_>, _>>()?;

        let applied = self.applied_migrations().await?;
        check_checksums(&sorted, &applied)?;
        if sorted.iter().all(|m| applied.contains_key(&m.version)) {
            return Ok(Vec::new());
        }

        let owner = Uuid::now_v7().to_string();
        self.acquire_lease(&owner).await?;
        let result = self.apply_pending(&owner, &files).await;
        if let Err(e) = self.release_lease(&owner).await {
            tracing::warn!(error = %e, "could not release the migration lease; it expires by itself");
        }
        result
    }

    async fn apply_pending(
        &self,
        owner: &str,
        files: &[(&Migration, MigrationFile)],
    ) -> Result<Vec<String>, MigrateError> {
        // Re-read under the lease: another process may have applied some while we waited.
        let applied = self.applied_migrations().await?;
        let mut done = Vec::new();
        for (migration, file) in files {
            if applied.contains_key(&migration.version) {
                continue;
            }
            self.renew_lease(owner).await?;
            tracing::info!(migration = %migration.name, "applying migration");
            for def in &file.create_test_types {
                let test_type = TestType {
                    version: 1,
                    definition: def.clone(),
                    created_at: timefmt::now(),
                };
                match self.put_test_type_version(&test_type).await? {
                    // Present already: created by an earlier, interrupted run of this migration, or by an admin.
                    TestTypeOutcome::Written | TestTypeOutcome::CurrentMoved => {}
                    TestTypeOutcome::VersionTaken => {
                        return Err(StoreError::Corrupt(format!(
                            "test type {}: version 1 exists without its catalog entry",
                            def.code
                        ))
                        .into());
                    }
                }
            }
            if let Some(site) = &file.move_bookings_to_site {
                self.move_bookings_to_site(site).await?;
            }
            for def in &file.new_test_type_versions {
                self.new_test_type_version(def).await?;
            }
            if file.move_unverified_to_verification_queue {
                self.move_unverified_to_verification_queue().await?;
            }
            if file.index_patients {
                self.index_patients(migration.version, owner).await?;
            }
            let record = MigrationItem {
                pk: keys::MIGRATIONS_PK.to_owned(),
                sk: keys::migration_sk(migration.version),
                entity: entity::MIGRATION.to_owned(),
                version: migration.version,
                name: migration.name.clone(),
                checksum: migration.checksum(),
                applied_at: timefmt::now(),
                applied_by: owner.to_owned(),
            };
            self.put_if(to_item(&record)?, Expr::new().not_exists(keys::PK)).await?;
            done.push(migration.name.clone());
        }
        Ok(done)
    }

    /// Version 2 of `def.code` with `def`, when the test type is still at the version the catalog seed made:
    /// a laboratory's own changes are never overwritten by a seed (that type is left as it is, and logged).
    /// Skipped when the current version has `def` already (a run interrupted after writing it).
    async fn new_test_type_version(&self, def: &TestTypeDefinition) -> Result<(), StoreError> {
        let Some(current) = self.get_test_type(&def.code).await? else {
            tracing::warn!(code = %def.code, "test type absent: the migration's new version is not written");
            return Ok(());
        };
        if &current.definition == def {
            return Ok(());
        }
        if current.version != 1 {
            tracing::warn!(
                code = %def.code,
                version = current.version,
                "test type changed since it was seeded: its ranges and checks are left as the laboratory set them"
            );
            return Ok(());
        }
        let next = TestType {
            version: current.version + 1,
            definition: def.clone(),
            created_at: timefmt::now(),
        };
        match self.put_test_type_version(&next).await? {
            TestTypeOutcome::Written => Ok(()),
            TestTypeOutcome::CurrentMoved | TestTypeOutcome::VersionTaken => Err(StoreError::Corrupt(format!(
                "test type {} changed while the migration versioned it; run it again",
                def.code
            ))),
        }
    }

    /// Before verification existed, the worklist partition of the sparse queue index held every result no
    /// doctor had reviewed, and a review was the only sign-off. Those results were never verified: each moves
    /// to the verification partition (same sort key), conditioned on still being in the worklist at the
    /// version read, so a rerun moves nothing twice. Results verified since (by a new replica) stay.
    async fn move_unverified_to_verification_queue(&self) -> Result<(), StoreError> {
        let mut moved = 0usize;
        let mut start = None;
        loop {
            let out = self
                .query(
                    self.query_builder()
                        .index_name(keys::GSI_AWAITING_REVIEW)
                        .key_condition_expression("#pk = :pk")
                        .expression_attribute_names("#pk", keys::GSI2_PK)
                        .expression_attribute_values(":pk", s(keys::AWAITING_REVIEW_PK))
                        .set_exclusive_start_key(start),
                )
                .await?;
            for item in out.items.unwrap_or_default() {
                let result: ResultItem = from_item(item)?;
                if result.result.verification.is_some() {
                    continue;
                }
                let mut tx = Tx::new(self);
                tx.update(
                    QueueMoveAction::Result,
                    key(result.pk.clone(), result.sk.clone()),
                    Expr::new()
                        .set(keys::GSI2_PK, keys::AWAITING_VERIFICATION_PK)
                        .eq(keys::GSI2_PK, keys::AWAITING_REVIEW_PK)
                        .eq(attr::VERSION, result.version),
                )?;
                match self.send(tx).await? {
                    Sent::Committed => moved += 1,
                    // Changed since the index was read (the index lags): left as it is now.
                    Sent::Rejected(r) if r.has(QueueMoveAction::Result) => {}
                    Sent::Rejected(r) => return Err(r.unexpected()),
                }
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        tracing::info!(moved, "unverified results moved to the verification queue");
        Ok(())
    }

    /// The patient backfill: every profile gets the search index attributes (`GSI4PK`, `GSI4SK`,
    /// `searchGiven`) and its address's e-mail guard, each patient in one transaction conditioned on the
    /// version read (a profile changed meanwhile is read again and indexed as it is now). A guard another
    /// patient holds already (two patients shared an address before guards existed) is left to the first and
    /// counted; that second patient is indexed without one.
    ///
    /// This is a one-off **Scan** (the second in medbook, named in the code-rule test), pages of
    /// [`INDEX_PAGE`] profiles, [`INDEX_CONCURRENCY`] patients at a time. After each page its last key is put in
    /// the progress item `MIGRATIONS` / `PROGRESS#<version>`, and the lease is renewed: a run killed half-way
    /// is resumed from there by the next holder of the lease. Every step is idempotent, so a page done again
    /// changes nothing.
    async fn index_patients(&self, version: u32, owner: &str) -> Result<(), StoreError> {
        use futures_util::StreamExt as _;
        let saved = self
            .get_consistent(keys::MIGRATIONS_PK.to_owned(), keys::migration_progress_sk(version))
            .await?
            .map(from_item::<ProgressItem>)
            .transpose()?;
        let (mut start, mut indexed) = match saved {
            Some(p) => (Some(key(p.last_pk, p.last_sk)), p.indexed),
            None => (None, 0),
        };
        let mut shared_addresses = 0u64;
        let started = Instant::now();
        loop {
            let out = self
                .client
                .scan()
                .table_name(self.table.as_ref())
                .filter_expression("#entity = :patient")
                .expression_attribute_names("#entity", attr::ENTITY)
                .expression_attribute_values(":patient", s(entity::PATIENT))
                .consistent_read(true)
                .limit(INDEX_PAGE)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(StoreError::from_sdk)?;
            let patients = out
                .items
                .unwrap_or_default()
                .into_iter()
                .map(from_item::<PatientItem>)
                .collect::<Result<Vec<_>, _>>()?;
            let count = patients.len() as u64;
            let outcomes: Vec<Result<bool, StoreError>> = futures_util::stream::iter(patients)
                .map(|p| self.index_patient(p))
                .buffer_unordered(INDEX_CONCURRENCY)
                .collect()
                .await;
            for outcome in outcomes {
                if !outcome? {
                    shared_addresses += 1;
                }
            }
            indexed += count;
            start = out.last_evaluated_key;
            let Some(last) = &start else {
                break;
            };
            let part = |name: &str| last.get(name).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
            let progress = ProgressItem {
                pk: keys::MIGRATIONS_PK.to_owned(),
                sk: keys::migration_progress_sk(version),
                entity: entity::MIGRATION.to_owned(),
                last_pk: part(keys::PK),
                last_sk: part(keys::SK),
                indexed,
            };
            self.put_if(to_item(&progress)?, Expr::new()).await?;
            self.renew_lease(owner).await?;
        }
        tracing::info!(
            indexed,
            shared_addresses,
            seconds = started.elapsed().as_secs_f64(),
            "patients indexed for search"
        );
        Ok(())
    }

    /// Indexes one patient; `false` when its address's guard was another patient's. A profile changed since
    /// the Scan read it is read again and indexed as it is now (a change that kept its address wrote no
    /// guard); a transaction conflict with a concurrent write is retried with backoff.
    async fn index_patient(&self, mut patient: PatientItem) -> Result<bool, StoreError> {
        let mut attempt = 0u32;
        loop {
            match self.index_patient_once(&patient).await {
                Ok(Some(guarded)) => return Ok(guarded),
                // Changed meanwhile: index the profile as it is now (or nothing, if it is gone).
                Ok(None) => {
                    let Some(item) = self.get_consistent(patient.pk.clone(), patient.sk.clone()).await? else {
                        return Ok(true);
                    };
                    patient = from_item(item)?;
                }
                Err(StoreError::Unavailable(_)) if attempt < 5 => {
                    tokio::time::sleep(Duration::from_millis(20 << attempt)).await;
                }
                Err(e) => return Err(e),
            }
            attempt += 1;
            if attempt > 8 {
                return Err(StoreError::Unavailable(format!(
                    "patient {} kept changing during the backfill",
                    patient.patient_id
                )));
            }
        }
    }

    /// One attempt of [`Store::index_patient`]: `None` when the profile is no longer at the version read.
    async fn index_patient_once(&self, patient: &PatientItem) -> Result<Option<bool>, StoreError> {
        let domain = crate::domain::patient::Patient::try_from(patient.clone())?;
        let indexed = PatientItem::from(&domain);
        let profile = Expr::new()
            .set(keys::GSI4_PK, &indexed.gsi4_pk)
            .set(keys::GSI4_SK, &indexed.gsi4_sk)
            .set(attr::SEARCH_GIVEN, &indexed.search_given)
            .eq(attr::VERSION, patient.version);
        let email = domain.email.as_deref().map(crate::domain::patient::normalise_email);
        for with_guard in [true, false] {
            let mut tx = Tx::new(self);
            tx.update(
                IndexAction::Profile,
                key(patient.pk.clone(), patient.sk.clone()),
                profile.clone(),
            )?;
            if let (true, Some(email)) = (with_guard, &email) {
                tx.put(
                    IndexAction::Guard,
                    to_item(&GuardItem::email(email, domain.id))?,
                    Expr::new().absent_or_eq(attr::PATIENT_ID, domain.id),
                )?;
            }
            match self.send(tx).await? {
                Sent::Committed => return Ok(Some(with_guard || email.is_none())),
                Sent::Rejected(r) if r.has(IndexAction::Profile) => return Ok(None),
                Sent::Rejected(r) if r.has(IndexAction::Guard) => {
                    tracing::warn!(patient = %domain.id, "e-mail address shared with another patient: no guard");
                }
                Sent::Rejected(r) => return Err(r.unexpected()),
            }
        }
        Ok(Some(false))
    }

    /// The sites migration: every booking without a site gets `site` (its slot's UTC date is its local date),
    /// and each live one a place of its slot; then the old `SLOTS#<date>` counters go. Each booking is one
    /// transaction conditioned on the booking still having no site, so a run interrupted half-way is finished
    /// by the next one without moving anything twice.
    ///
    /// This is the one Scan in medbook, allowed because it runs once, in a migration, before the service
    /// answers: it reads the whole table (1 MB a page), which a request path must never do.
    async fn move_bookings_to_site(&self, site: &str) -> Result<(), StoreError> {
        let mut next_place: HashMap<crate::domain::booking::SlotStart, u32> = HashMap::new();
        let mut moved = 0usize;
        let mut start = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(self.table.as_ref())
                .filter_expression("#entity = :booking AND attribute_not_exists(#site)")
                .expression_attribute_names("#entity", attr::ENTITY)
                .expression_attribute_names("#site", attr::SITE)
                .expression_attribute_values(":booking", s(entity::BOOKING))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(StoreError::from_sdk)?;
            for item in out.items.unwrap_or_default() {
                let booking: BookingItem = from_item(item)?;
                let place = next_place.entry(booking.slot_start).or_insert(0);
                while !self.move_booking(site, &booking, *place).await? {
                    *place += 1;
                }
                *place += 1;
                moved += 1;
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        let mut start = None;
        let mut deleted = 0usize;
        loop {
            let out = self
                .client
                .scan()
                .table_name(self.table.as_ref())
                .filter_expression("begins_with(#pk, :slots)")
                .expression_attribute_names("#pk", keys::PK)
                .expression_attribute_values(":slots", s(keys::LEGACY_SLOTS_PREFIX))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(StoreError::from_sdk)?;
            for item in out.items.unwrap_or_default() {
                let (Some(pk), Some(sk)) = (item.get(keys::PK).cloned(), item.get(keys::SK).cloned()) else {
                    continue;
                };
                self.delete(self.client.delete_item().key(keys::PK, pk).key(keys::SK, sk))
                    .await?;
                deleted += 1;
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        tracing::info!(
            site,
            moved,
            deleted_counters = deleted,
            "moved the bookings made before sites"
        );
        Ok(())
    }

    /// Moves one booking to `site` with `place` (live bookings only take one). False when that place is
    /// taken; true when moved, or moved already.
    async fn move_booking(&self, site: &str, booking: &BookingItem, place: u32) -> Result<bool, StoreError> {
        let date = booking.slot_start.date();
        let live = booking.status == crate::domain::booking::BookingStatus::Booked;
        let mut update = Expr::new()
            .set(attr::SITE, site)
            .set(
                attr::LOCAL_SLOT_START,
                crate::domain::site::local_text(booking.slot_start.at(), 0),
            )
            .set(keys::GSI3_PK, keys::bookings_by_day_pk(site, date))
            .set(attr::RESULTS_WITHOUT_CHECK_IN, true)
            .not_exists(attr::SITE);
        if live {
            update = update.set(attr::PLACE, place);
        }
        let mut tx = Tx::new(self);
        tx.update(MoveAction::Booking, key(booking.pk.clone(), booking.sk.clone()), update)?;
        if live {
            let name = keys::place_attribute(place);
            tx.update(
                MoveAction::Place,
                key(keys::site_day_pk(site, date), keys::site_slot_sk(booking.slot_start)),
                Expr::new()
                    .set(attr::ENTITY, entity::SLOT)
                    .set(attr::SLOT_START, booking.slot_start)
                    .set(
                        &name,
                        PlaceItem {
                            booking: Some(booking.booking_id),
                            hold: None,
                            until: None,
                            patient: None,
                        },
                    )
                    .not_exists(&name),
            )?;
        }
        match self.send(tx).await? {
            Sent::Committed => Ok(true),
            Sent::Rejected(r) if r.has(MoveAction::Booking) => Ok(true),
            Sent::Rejected(r) if r.has(MoveAction::Place) => Ok(false),
            Sent::Rejected(r) => Err(r.unexpected()),
        }
    }

    async fn applied_migrations(&self) -> Result<BTreeMap<u32, MigrationItem>, StoreError> {
        let items = self
            .query_all(
                self.query_builder()
                    .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                    .expression_attribute_names("#pk", keys::PK)
                    .expression_attribute_names("#sk", keys::SK)
                    .expression_attribute_values(":pk", s(keys::MIGRATIONS_PK))
                    .expression_attribute_values(":prefix", s(keys::MIGRATION_SK_PREFIX))
                    .consistent_read(true),
            )
            .await?;
        let mut applied = BTreeMap::new();
        for item in items {
            let record: MigrationItem = from_item(item)?;
            applied.insert(record.version, record);
        }
        Ok(applied)
    }

    async fn acquire_lease(&self, owner: &str) -> Result<(), MigrateError> {
        let deadline = Instant::now() + LEASE_WAIT;
        loop {
            match self.write_lease(owner, Expr::new().absent_or_expired()).await {
                Ok(()) => return Ok(()),
                Err(StoreError::ConditionFailed) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(StoreError::ConditionFailed) => return Err(MigrateError::LeaseTimeout(LEASE_WAIT)),
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn renew_lease(&self, owner: &str) -> Result<(), StoreError> {
        self.write_lease(owner, Expr::new().eq(attr::OWNER, owner)).await
    }

    async fn write_lease(&self, owner: &str, condition: Expr) -> Result<(), StoreError> {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let lease = MigrationLeaseItem {
            pk: keys::MIGRATIONS_PK.to_owned(),
            sk: keys::MIGRATION_LEASE_SK.to_owned(),
            entity: entity::MIGRATION_LEASE.to_owned(),
            owner: owner.to_owned(),
            expires_at: now + LEASE_SECONDS,
        };
        self.put_if(to_item(&lease)?, condition).await
    }

    async fn release_lease(&self, owner: &str) -> Result<(), StoreError> {
        let condition = Expr::new().eq(attr::OWNER, owner);
        let text = condition.condition();
        let (names, values) = condition.placeholders()?;
        self.delete(
            self.client
                .delete_item()
                .set_key(Some(key(keys::MIGRATIONS_PK, keys::MIGRATION_LEASE_SK)))
                .set_condition_expression(text)
                .set_expression_attribute_names(names)
                .set_expression_attribute_values(values),
        )
        .await
    }
}

fn check_checksums(migrations: &[Migration], applied: &BTreeMap<u32, MigrationItem>) -> Result<(), MigrateError> {
    let files: HashMap<u32, &Migration> = migrations.iter().map(|m| (m.version, m)).collect();
    for record in applied.values() {
        match files.get(&record.version) {
            Some(file) if file.checksum() != record.checksum => {
                return Err(MigrateError::Edited {
                    name: file.name.clone(),
                    applied: record.checksum.clone(),
                    file: file.checksum(),
                });
            }
            Some(_) => {}
            None => tracing::warn!(
                migration = %record.name,
                "applied migration is unknown to this binary (a newer release applied it)"
            ),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lease_has_the_attributes_its_conditions_name() {
        let lease = to_item(&MigrationLeaseItem {
            pk: keys::MIGRATIONS_PK.to_owned(),
            sk: keys::MIGRATION_LEASE_SK.to_owned(),
            entity: entity::MIGRATION_LEASE.to_owned(),
            owner: "me".into(),
            expires_at: 1,
        })
        .unwrap();
        for attribute in [attr::OWNER, keys::EXPIRES_AT, keys::PK] {
            assert!(lease.contains_key(attribute), "{attribute}");
        }
    }

    #[test]
    fn every_file_in_migrations_is_embedded_valid_and_in_order() {
        let embedded = embedded();
        let mut on_disk: Vec<String> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".json"))
            .collect();
        on_disk.sort();
        let names: Vec<String> = embedded.iter().map(|m| m.name.clone()).collect();
        assert_eq!(
            names, on_disk,
            "add each file in migrations/ to store::migrate::embedded()"
        );
        for (i, m) in embedded.iter().enumerate() {
            assert_eq!(m.version as usize, i + 1, "{}", m.name);
            m.parse().unwrap();
        }
    }

    #[test]
    fn the_catalog_seed_has_at_least_eight_tests_with_loinc_and_ucum_units() {
        let file = embedded()[0].parse().unwrap();
        assert!(file.create_test_types.len() >= 8);
        for def in &file.create_test_types {
            assert!(!def.analytes.is_empty(), "{}", def.code);
            assert!(def.analytes.iter().all(|a| !a.unit.is_empty()), "{}", def.code);
        }
    }

    #[test]
    fn checksum_is_sha256_hex() {
        let m = Migration::new("0009_x.json", "abc").unwrap();
        assert_eq!(m.version, 9);
        assert_eq!(
            m.checksum(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(Migration::new("x.json", "").is_err());
    }
}
