//! Sites, their day rules, the slots view of a site's day, and holds on places.
//!
//! Sites are read through an in-process cache like the catalog ([`CACHE_TTL`]); a change made through this
//! process clears it at once, another replica's is seen within the TTL. A day's rule and its places are never
//! cached: a booking or a hold reads them strongly consistent, and its transaction checks they did not move.

use std::{
    sync::{Arc, RwLock},
    time::Instant,
};

use garde::Validate;
use rand::seq::IndexedRandom;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use super::{Cursor, Expected, FieldError, Page, ServiceError, catalog::CACHE_TTL};
use crate::{
    domain::{
        audit::AuditDraft,
        booking::{DateRange, SlotStart},
        site::{DEFAULT_SITE, DayRule, Hold, LocalSlot, Places, Site, SiteDefinition, SiteSlotError},
        timefmt,
    },
    store::{
        Store,
        sites::{HoldOutcome, RuleOutcome, SiteDay, SiteOutcome, Unchanged},
    },
};

/// How often a write that lost its place to a racing one reads the day again before it answers 503.
pub const PLACE_ATTEMPTS: usize = 8;

/// One slot of a site's day as the slots view shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotAvailability {
    /// The slot (UTC start and local time).
    pub slot: LocalSlot,
    /// Places.
    pub capacity: u32,
    /// Places bookings have.
    pub booked: u32,
    /// Places live holds have.
    pub held: u32,
    /// Places free.
    pub available: u32,
}

/// A day's rule as the days list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayEntry {
    /// The site's local date.
    pub date: Date,
    /// The rule.
    pub rule: DayRule,
    /// Its version.
    pub version: u64,
}

/// A day rule as written, with the bookings a forced closing left in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaySet {
    /// The rule.
    pub entry: DayEntry,
    /// Slots of that day that still hold bookings (after `force`), with how many each.
    pub bookings_left: Vec<(SlotStart, u32)>,
}

type Cached = Option<(Instant, Arc<Vec<Site>>)>;

/// Site use cases.
#[derive(Debug, Clone)]
pub struct Sites {
    store: Store,
    cache: Arc<RwLock<Cached>>,
    default: SiteDefinition,
}

fn epoch(at: OffsetDateTime) -> i64 {
    at.unix_timestamp()
}

fn slot_error(e: SiteSlotError) -> ServiceError {
    ServiceError::Invalid(vec![FieldError::new("slotStart", e.to_string())])
}

impl Sites {
    /// Sites over `store`; `default` defines [`DEFAULT_SITE`] when it does not exist yet.
    pub fn new(store: Store, default: SiteDefinition) -> Self {
        Self {
            store,
            cache: Arc::default(),
            default,
        }
    }

    /// Creates the default site from the settings it was given, unless it exists (startup; after that it is
    /// edited like any other site).
    ///
    /// # Errors
    /// Engine failures.
    pub async fn ensure_default(&self) -> Result<(), ServiceError> {
        let now = timefmt::now();
        let site = Site {
            definition: self.default.clone(),
            version: 1,
            created_at: now.clone(),
            updated_at: now,
        };
        match self.store.create_site(&site).await? {
            SiteOutcome::Written => tracing::info!(site = DEFAULT_SITE, "created the default site from the settings"),
            SiteOutcome::Moved => {}
        }
        self.forget();
        Ok(())
    }

    fn forget(&self) {
        *self.cache.write().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// The site read again, after a transaction found the cached one stale (changed on another replica).
    ///
    /// # Errors
    /// [`ServiceError::NotFound`] when it is gone.
    pub(crate) async fn refresh(&self, code: &str) -> Result<Site, ServiceError> {
        self.forget();
        self.get(code).await
    }

    /// Every site, ordered by code: 0 calls on a cache hit, 1 Query on a miss.
    ///
    /// # Errors
    /// Engine failures.
    pub async fn all(&self) -> Result<Arc<Vec<Site>>, ServiceError> {
        if let Some((at, sites)) = self.cache.read().unwrap_or_else(|e| e.into_inner()).as_ref()
            && at.elapsed() < CACHE_TTL
        {
            return Ok(sites.clone());
        }
        let sites = Arc::new(self.store.sites().await?);
        *self.cache.write().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), sites.clone()));
        Ok(sites)
    }

    /// One site, from the cache (a site created on another replica since is read directly).
    ///
    /// # Errors
    /// [`ServiceError::NotFound`] when there is no such site.
    pub async fn get(&self, code: &str) -> Result<Site, ServiceError> {
        if let Some(site) = self.all().await?.iter().find(|s| s.definition.code == code) {
            return Ok(site.clone());
        }
        let site = self.store.site(code).await?.ok_or(ServiceError::NotFound("site"))?;
        self.forget();
        Ok(site)
    }

    /// The site a request names, or the default site.
    ///
    /// # Errors
    /// [`ServiceError::Invalid`] naming `site` when there is no such site.
    pub async fn named(&self, code: Option<&str>) -> Result<Site, ServiceError> {
        match self.get(code.unwrap_or(DEFAULT_SITE)).await {
            Err(ServiceError::NotFound(_)) => Err(ServiceError::Invalid(vec![FieldError::new(
                "site",
                format!("no site `{}`", code.unwrap_or(DEFAULT_SITE)),
            )])),
            other => other,
        }
    }

    /// Adds a site at version 1 (its code must be new).
    ///
    /// # Errors
    /// [`ServiceError::Invalid`] by field; [`ServiceError::Conflict`] `site-exists`.
    pub async fn create(&self, definition: SiteDefinition) -> Result<Site, ServiceError> {
        definition.validate()?;
        let now = timefmt::now();
        let site = Site {
            definition,
            version: 1,
            created_at: now.clone(),
            updated_at: now,
        };
        match self.store.create_site(&site).await? {
            SiteOutcome::Written => {
                self.forget();
                Ok(site)
            }
            SiteOutcome::Moved => Err(ServiceError::conflict(
                "site-exists",
                format!("site {} exists already", site.definition.code),
            )),
        }
    }

    /// Replaces a site (If-Match). Existing bookings keep their slots; new bookings follow the new definition.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`], [`ServiceError::VersionMismatch`], [`ServiceError::Invalid`] (also when the
    /// body's code is not the path's).
    pub async fn replace(
        &self,
        code: &str,
        expected: Expected,
        definition: SiteDefinition,
    ) -> Result<Site, ServiceError> {
        definition.validate()?;
        if definition.code != code {
            return Err(ServiceError::Invalid(vec![FieldError::new(
                "code",
                format!("must be `{code}`, the site in the path"),
            )]));
        }
        let current = self.store.site(code).await?.ok_or(ServiceError::NotFound("site"))?;
        if !expected.admits(current.version) {
            return Err(ServiceError::VersionMismatch);
        }
        if definition.time_zone != current.definition.time_zone {
            // A site's days are partitioned by its local date: the same instant would fall on another day's
            // places, and every booking's local time would change under it.
            return Err(ServiceError::Invalid(vec![FieldError::new(
                "timeZone",
                format!(
                    "cannot change from {} (bookings and days are local to it); add a new site instead",
                    current.definition.time_zone
                ),
            )]));
        }
        let site = Site {
            definition,
            version: current.version + 1,
            created_at: current.created_at,
            updated_at: timefmt::now(),
        };
        match self.store.replace_site(&site, current.version).await? {
            SiteOutcome::Written => {
                self.forget();
                Ok(site)
            }
            SiteOutcome::Moved => Err(ServiceError::VersionMismatch),
        }
    }

    /// Every slot of the site's local `date` with its places (the site from the cache, one Query of the day).
    ///
    /// # Errors
    /// [`ServiceError::NotFound`] for an unknown site; engine failures.
    pub async fn slots(&self, code: &str, date: Date) -> Result<Vec<SlotAvailability>, ServiceError> {
        let site = self.get(code).await?;
        let day = self.store.site_day(code, date, false).await?;
        let rule = day.rule.as_ref().map(|(r, _)| r);
        let capacity = site.capacity(rule);
        let now = epoch(OffsetDateTime::now_utc());
        Ok(site
            .slots(date, rule)
            .into_iter()
            .map(|slot| {
                let places = day.places.get(&slot.start).cloned().unwrap_or_default();
                SlotAvailability {
                    slot,
                    capacity,
                    booked: places.booked(),
                    held: places.held(now),
                    available: places.available(capacity, now),
                }
            })
            .collect())
    }

    /// Reads the site's day for a write (strongly consistent) and checks `start` against it.
    ///
    /// # Errors
    /// [`ServiceError::Invalid`] naming `slotStart` with the rule it breaks.
    pub(crate) async fn day_for(
        &self,
        site: &Site,
        start: OffsetDateTime,
        now: OffsetDateTime,
        enforce_notice: bool,
    ) -> Result<(LocalSlot, SiteDay), ServiceError> {
        let date = site.local_date(start);
        let day = self.store.site_day(&site.definition.code, date, true).await?;
        let slot = site
            .check(start, now, day.rule.as_ref().map(|(r, _)| r), enforce_notice)
            .map_err(slot_error)?;
        Ok((slot, day))
    }

    /// Holds a place of `start` at site `code` for `patient_id` for the site's `holdSeconds`. Staff skip the
    /// minimum notice.
    ///
    /// # Errors
    /// [`ServiceError::Invalid`] for a slot the site does not offer; [`ServiceError::Conflict`] `slot-full`;
    /// [`ServiceError::NotFound`] for an unknown site.
    pub async fn hold(
        &self,
        code: &str,
        start: OffsetDateTime,
        patient_id: Uuid,
        staff: bool,
        audit: &AuditDraft,
    ) -> Result<Hold, ServiceError> {
        let mut site = self.get(code).await?;
        for _ in 0..PLACE_ATTEMPTS {
            let now = OffsetDateTime::now_utc();
            let (slot, day) = self.day_for(&site, start, now, !staff).await?;
            let Some((place, unchanged)) = pick_place(&day, &site, slot.start, epoch(now)) else {
                return Err(slot_full(slot.start));
            };
            let hold = Hold {
                id: Uuid::now_v7(),
                site: site.definition.code.clone(),
                slot,
                place,
                patient_id,
                expires_at: epoch(now) + i64::from(site.definition.hold_seconds),
                created_at: timefmt::now(),
            };
            match self
                .store
                .create_hold(&hold, unchanged, epoch(now), &audit.event(patient_id))
                .await?
            {
                HoldOutcome::Held => return Ok(hold),
                HoldOutcome::PlaceTaken | HoldOutcome::RuleMoved => continue,
                HoldOutcome::SiteMoved => site = self.refresh(code).await?,
                HoldOutcome::PatientHolds => {
                    return Err(ServiceError::conflict(
                        "already-holding",
                        "this patient holds a place at this site already; book it or release it first",
                    ));
                }
            }
        }
        Err(ServiceError::Unavailable("the slot is contended; retry".into()))
    }

    /// A hold of site `code` (expired or not).
    ///
    /// # Errors
    /// [`ServiceError::NotFound`] when there is none at that site.
    pub async fn find_hold(&self, code: &str, id: Uuid) -> Result<Hold, ServiceError> {
        self.store
            .hold(id)
            .await?
            .filter(|h| h.site == code)
            .ok_or(ServiceError::NotFound("hold"))
    }

    /// Releases a hold: its place is free at once (if it is still the hold's) and the hold is gone.
    ///
    /// # Errors
    /// Engine failures.
    pub async fn release(&self, hold: &Hold) -> Result<(), ServiceError> {
        self.store.release_hold(hold).await?;
        Ok(())
    }

    /// Sets the rule of the site's local `date`. Closing a day (or changing its hours or capacity) that has
    /// bookings is refused unless `force`, which keeps the bookings and reports them.
    ///
    /// The rule is written first, so that from that moment no booking can land on the old rule (each booking's
    /// transaction checks the rule's version); then the day is read: with bookings and no `force`, the previous
    /// rule is put back and the answer is 409. A booking racing the change in between is refused as on a
    /// changed day, never silently kept on a closed one.
    ///
    /// # Errors
    /// [`ServiceError::Invalid`] for an incoherent rule; [`ServiceError::Conflict`] `day-has-bookings`.
    pub async fn set_day(&self, code: &str, date: Date, rule: DayRule, force: bool) -> Result<DaySet, ServiceError> {
        rule.validate()?;
        if !rule.is_coherent() {
            return Err(ServiceError::Invalid(vec![FieldError::new(
                "closed",
                "give `closed: true` alone, or `openingHours` and/or `capacity`",
            )]));
        }
        let site = self.get(code).await?;
        for _ in 0..PLACE_ATTEMPTS {
            let before = self.store.site_day(code, date, true).await?;
            let previous = before.rule.clone();
            let expected = previous.as_ref().map(|(_, v)| *v);
            if self.store.put_day_rule(code, date, &rule, expected).await? == RuleOutcome::Moved {
                continue;
            }
            let version = expected.map_or(1, |v| v + 1);
            let after = self.store.site_day(code, date, true).await?;
            let left = bookings_off_the_rule(&site, date, &rule, &after);
            if !left.is_empty() && !force {
                let undo = match &previous {
                    Some((old, _)) => self.store.put_day_rule(code, date, old, Some(version)).await?,
                    None => self.store.delete_day_rule(code, date, version).await?,
                };
                if undo == RuleOutcome::Moved {
                    tracing::warn!(site = code, %date, "a day rule changed while its refused change was undone");
                }
                let count: u32 = left.iter().map(|(_, n)| n).sum();
                return Err(ServiceError::conflict(
                    "day-has-bookings",
                    format!(
                        "{count} booking(s) on {date} would be outside the new rule; cancel or move them, or send ?force=true to keep them"
                    ),
                ));
            }
            return Ok(DaySet {
                entry: DayEntry { date, rule, version },
                bookings_left: left,
            });
        }
        Err(ServiceError::Unavailable("the day's rule is contended; retry".into()))
    }

    /// Removes the rule of the site's local `date`: the weekly hours apply again.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`] when the day has no rule.
    pub async fn clear_day(&self, code: &str, date: Date) -> Result<(), ServiceError> {
        self.get(code).await?;
        for _ in 0..PLACE_ATTEMPTS {
            let day = self.store.site_day(code, date, true).await?;
            let (_, version) = day.rule.ok_or(ServiceError::NotFound("day rule"))?;
            if self.store.delete_day_rule(code, date, version).await? == RuleOutcome::Written {
                return Ok(());
            }
        }
        Err(ServiceError::Unavailable("the day's rule is contended; retry".into()))
    }

    /// A page of the site's day rules from `from` to `to`.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`] for an unknown site; [`ServiceError::Invalid`] for a backwards range.
    pub async fn days(
        &self,
        code: &str,
        from: Option<Date>,
        to: Option<Date>,
        limit: i32,
        start: Option<&Cursor>,
    ) -> Result<Page<DayEntry>, ServiceError> {
        self.get(code).await?;
        let range =
            DateRange::open(from, to).map_err(|e| ServiceError::Invalid(vec![FieldError::new("to", e.to_string())]))?;
        let page = self.store.day_rules(code, range, limit, Cursor::key(start)).await?;
        Ok(Page::from(page).map(|(date, rule, version)| DayEntry { date, rule, version }))
    }
}

/// The slots of `date` whose bookings (and live holds) the rule would leave outside the site's offer.
fn bookings_off_the_rule(site: &Site, date: Date, rule: &DayRule, day: &SiteDay) -> Vec<(SlotStart, u32)> {
    let offered = site.slots(date, Some(rule));
    let capacity = site.capacity(Some(rule));
    let now = epoch(OffsetDateTime::now_utc());
    let mut left: Vec<(SlotStart, u32)> = day
        .places
        .iter()
        .filter_map(|(start, places)| {
            let booked = places.booked() + places.held(now);
            let outside = !offered.iter().any(|s| s.start == *start);
            let over = places.0.keys().any(|i| *i >= capacity);
            (booked > 0 && (outside || over)).then_some((*start, booked))
        })
        .collect();
    left.sort();
    left
}

/// A random free place of `start` (random, so racing writers rarely pick the same one) and what its write must
/// find unchanged, or none. Each place's own condition keeps racing writers apart while every taken place lies
/// below the capacity; when places at or above it are still taken (the capacity was lowered under them), a
/// free place below it is no proof of a free seat, so the write also conditions on the slot's version.
pub(crate) fn pick_place(day: &SiteDay, site: &Site, start: SlotStart, now: i64) -> Option<(u32, Unchanged)> {
    let capacity = site.capacity(day.rule.as_ref().map(|(r, _)| r));
    let empty = Places::default();
    let places = day.places.get(&start).unwrap_or(&empty);
    if places.available(capacity, now) == 0 {
        return None;
    }
    let place = places.free(capacity, now).choose(&mut rand::rng()).copied()?;
    let slot_version = places
        .over_capacity(capacity, now)
        .then(|| day.versions.get(&start).copied().unwrap_or(0));
    Some((
        place,
        Unchanged {
            site_version: site.version,
            rule_version: day.rule.as_ref().map(|(_, v)| *v),
            slot_version,
        },
    ))
}

/// The answer for a slot without a free place.
pub(crate) fn slot_full(start: SlotStart) -> ServiceError {
    ServiceError::conflict(
        "slot-full",
        format!("slot {start} has no free place; pick another from the site's slots"),
    )
}
