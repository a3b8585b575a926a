//! Sites, their day rules, the places of their slots, and holds on places.
//!
//! A slot's places are attributes of its item (`P0`, `P1`, …): absent when free, `{booking}` when a booking has
//! it, `{hold, until}` while a hold has it. Taking a place is an UpdateItem whose condition is "absent, or a hold
//! whose `until` is past": the capacity condition itself treats an expired hold as free, so a hold stops
//! counting the second it expires, whatever TTL has or has not deleted yet.

use std::collections::{BTreeMap, HashMap};

use time::Date;
use uuid::Uuid;

use super::{
    Page, PageKey, Store, StoreError,
    expr::Expr,
    from_item,
    items::{DayRuleItem, HoldItem, PatientHoldItem, PlaceItem, SiteItem, SlotItem, attr, entity},
    key, keys, s, to_item,
    tx::{Sent, Tx},
};
use crate::domain::{
    audit::AuditEvent,
    booking::{DateRange, SlotStart},
    site::{DayRule, Hold, LocalSlot, Places, Site, Taker},
    timefmt,
};

/// How a site write ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SiteOutcome {
    /// Written.
    Written,
    /// A new site's code is taken, or a replaced site is not at the version read (or is gone).
    Moved,
}

/// The actions of a day-rule write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RuleAction {
    /// The rule in the day's partition: new, or at the version read.
    Rule,
    /// Its copy in the site's list (unconditional).
    Copy,
}

/// How a day-rule write ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleOutcome {
    /// Written.
    Written,
    /// The rule is not at the version read (or appeared, or is gone).
    Moved,
}

/// One local day of a site as its partition holds it: the day's rule and the taken places of each slot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SiteDay {
    /// The day's rule and its version, if the day has one.
    pub rule: Option<(DayRule, u64)>,
    /// The taken places of each slot that ever had one.
    pub places: HashMap<SlotStart, Places>,
    /// Each slot item's version (+1 on every place taken).
    pub versions: HashMap<SlotStart, u64>,
}

/// What a write that takes a free place read, and its transaction checks did not move: the site (served from a
/// cache, so another replica's change is caught here), the day's rule, and — only on a slot with taken places
/// above a lowered capacity — the slot itself, so such writers see each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unchanged {
    /// The site's version as read.
    pub site_version: u64,
    /// The day rule's version as read (`None`: the day had no rule).
    pub rule_version: Option<u64>,
    /// The slot's version, when the slot has taken places at or above the capacity.
    pub slot_version: Option<u64>,
}

/// Condition of a place-taking update: the place is free at `now`, and the slot is at `slot_version` when
/// given; the slot's version moves on either way.
pub(crate) fn take_free_place(expr: Expr, place: &str, now: i64, slot_version: Option<u64>) -> Expr {
    let expr = expr.increment(attr::VERSION).place_free(place, attr::PLACE_UNTIL, now);
    match slot_version {
        Some(v) => expr.absent_or_eq(attr::VERSION, v),
        None => expr,
    }
}

/// The condition of the site: still at the version the write read.
pub(crate) fn site_unchanged(version: u64) -> Expr {
    Expr::new().eq(attr::VERSION, version)
}

/// The actions of [`Store::create_hold`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HoldAction {
    /// The place is free (absent, or a hold that expired).
    Place,
    /// The site is still what was read.
    Site,
    /// The day's rule is still what was read.
    Rule,
    /// The patient has no live hold at this site.
    PatientHold,
    /// The hold item is new.
    Hold,
    /// The audit event is new.
    Audit,
}

/// How [`Store::create_hold`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldOutcome {
    /// The place is held.
    Held,
    /// Someone took the place since the day was read: read again and pick another.
    PlaceTaken,
    /// The day's rule changed since it was read: read again.
    RuleMoved,
    /// The site changed since it was read (on another replica): read it again.
    SiteMoved,
    /// The patient holds another place at this site already.
    PatientHolds,
}

/// The actions of [`Store::release_hold`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReleaseAction {
    /// The place is still this hold's.
    Place,
    /// The hold item goes.
    Hold,
    /// The patient's hold marker goes (only this hold's).
    PatientHold,
}

/// The condition of the day's rule: still absent, or at the version read.
pub(crate) fn rule_unchanged(version: Option<u64>) -> Expr {
    match version {
        None => Expr::new().not_exists(keys::PK),
        Some(v) => Expr::new().eq(attr::VERSION, v),
    }
}

impl Store {
    /// Writes a new site (its code must be free).
    ///
    /// # Errors
    /// Engine failures.
    pub async fn create_site(&self, site: &Site) -> Result<SiteOutcome, StoreError> {
        self.site_write(site, Expr::new().not_exists(keys::PK)).await
    }

    /// Replaces a site, which must still be at `expected` version.
    ///
    /// # Errors
    /// Engine failures.
    pub async fn replace_site(&self, site: &Site, expected: u64) -> Result<SiteOutcome, StoreError> {
        self.site_write(site, Expr::new().eq(attr::VERSION, expected)).await
    }

    async fn site_write(&self, site: &Site, condition: Expr) -> Result<SiteOutcome, StoreError> {
        match self.put_if(to_item(&SiteItem::from(site))?, condition).await {
            Ok(()) => Ok(SiteOutcome::Written),
            Err(StoreError::ConditionFailed) => Ok(SiteOutcome::Moved),
            Err(e) => Err(e),
        }
    }

    /// Every site, ordered by code (one Query).
    ///
    /// # Errors
    /// Engine failures, malformed items.
    pub async fn sites(&self) -> Result<Vec<Site>, StoreError> {
        self.query_all(
            self.query_builder()
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", keys::PK)
                .expression_attribute_values(":pk", s(keys::SITES_PK)),
        )
        .await?
        .into_iter()
        .map(|item| from_item::<SiteItem>(item).map(Site::from))
        .collect()
    }

    /// One site (GetItem).
    ///
    /// # Errors
    /// Engine failures, a malformed item.
    pub async fn site(&self, code: &str) -> Result<Option<Site>, StoreError> {
        self.get(keys::SITES_PK.to_owned(), keys::site_sk(code))
            .await?
            .map(|item| from_item::<SiteItem>(item).map(Site::from))
            .transpose()
    }

    /// A site's local day: its rule and the taken places of its slots (one Query on the day's partition;
    /// `consistent` for a write that decides on it).
    ///
    /// # Errors
    /// Engine failures, malformed items.
    pub async fn site_day(&self, site: &str, date: Date, consistent: bool) -> Result<SiteDay, StoreError> {
        let items = self
            .query_all(
                self.query_builder()
                    .key_condition_expression("#pk = :pk")
                    .expression_attribute_names("#pk", keys::PK)
                    .expression_attribute_values(":pk", s(keys::site_day_pk(site, date)))
                    .consistent_read(consistent),
            )
            .await?;
        let mut day = SiteDay::default();
        for item in items {
            let kind = item.get(attr::ENTITY).and_then(|v| v.as_s().ok()).cloned();
            match kind.as_deref() {
                Some(entity::DAY_RULE) => {
                    let rule: DayRuleItem = from_item(item)?;
                    day.rule = Some((rule.rule, rule.version));
                }
                Some(entity::SLOT) => {
                    let slot: SlotItem = from_item(item)?;
                    day.versions.insert(slot.slot_start, slot.version);
                    day.places.insert(slot.slot_start, places_of(slot.places));
                }
                other => return Err(StoreError::Corrupt(format!("unexpected {other:?} in a site day"))),
            }
        }
        Ok(day)
    }

    /// Sets the rule of a site's day: new when `expected` is `None`, else replacing the rule at that version.
    ///
    /// # Errors
    /// Engine failures.
    pub async fn put_day_rule(
        &self,
        site: &str,
        date: Date,
        rule: &DayRule,
        expected: Option<u64>,
    ) -> Result<RuleOutcome, StoreError> {
        let version = expected.map_or(1, |v| v + 1);
        let item = |pk: String, sk: String| DayRuleItem {
            pk,
            sk,
            entity: entity::DAY_RULE.to_owned(),
            site: site.to_owned(),
            date: timefmt::date(date),
            rule: rule.clone(),
            version,
            updated_at: timefmt::now(),
        };
        let mut tx = Tx::new(self);
        tx.put(
            RuleAction::Rule,
            to_item(&item(keys::site_day_pk(site, date), keys::DAY_RULE_SK.to_owned()))?,
            rule_unchanged(expected),
        )?;
        tx.put(
            RuleAction::Copy,
            to_item(&item(keys::site_rules_pk(site), keys::site_rule_sk(date)))?,
            Expr::new(),
        )?;
        self.rule_outcome(tx).await
    }

    /// Removes the rule of a site's day, which must be at version `expected`.
    ///
    /// # Errors
    /// Engine failures.
    pub async fn delete_day_rule(&self, site: &str, date: Date, expected: u64) -> Result<RuleOutcome, StoreError> {
        let mut tx = Tx::new(self);
        tx.delete(
            RuleAction::Rule,
            key(keys::site_day_pk(site, date), keys::DAY_RULE_SK),
            rule_unchanged(Some(expected)),
        )?;
        tx.delete(
            RuleAction::Copy,
            key(keys::site_rules_pk(site), keys::site_rule_sk(date)),
            Expr::new(),
        )?;
        self.rule_outcome(tx).await
    }

    async fn rule_outcome(&self, tx: Tx<RuleAction>) -> Result<RuleOutcome, StoreError> {
        match self.send(tx).await? {
            Sent::Committed => Ok(RuleOutcome::Written),
            Sent::Rejected(r) if r.has(RuleAction::Rule) => Ok(RuleOutcome::Moved),
            Sent::Rejected(r) => Err(r.unexpected()),
        }
    }

    /// A page of a site's day rules with dates in `range`, in date order (one Query on the site's rule list).
    ///
    /// # Errors
    /// Engine failures, malformed items.
    pub async fn day_rules(
        &self,
        site: &str,
        range: DateRange,
        limit: i32,
        start: Option<&PageKey>,
    ) -> Result<Page<(Date, DayRule, u64)>, StoreError> {
        let (lo, hi) = keys::day_bounds(range);
        let query = self
            .query_builder()
            .key_condition_expression("#pk = :pk AND #sk BETWEEN :lo AND :hi")
            .expression_attribute_names("#pk", keys::PK)
            .expression_attribute_names("#sk", keys::SK)
            .expression_attribute_values(":pk", s(keys::site_rules_pk(site)))
            .expression_attribute_values(":lo", s(keys::site_rule_sk_bound(&lo)))
            .expression_attribute_values(":hi", s(keys::site_rule_sk_bound(&hi)));
        let page = self
            .query_page(query, limit, start, &[keys::PK, keys::SK], |item: DayRuleItem| item)
            .await?;
        let items = page
            .items
            .into_iter()
            .map(|item| {
                timefmt::parse_date(&item.date)
                    .map(|date| (date, item.rule, item.version))
                    .ok_or_else(|| StoreError::Corrupt(format!("day rule date {}", item.date)))
            })
            .collect::<Result<_, _>>()?;
        Ok(Page { items, next: page.next })
    }

    /// Holds a place in one transaction: the place must be free (absent or an expired hold), the day's rule
    /// still at `rule_version`, the hold item new; with the audit event.
    ///
    /// # Errors
    /// Engine failures.
    pub async fn create_hold(
        &self,
        hold: &Hold,
        unchanged: Unchanged,
        now: i64,
        audit: &AuditEvent,
    ) -> Result<HoldOutcome, StoreError> {
        let tx = self.hold_tx(hold, unchanged, now, audit)?;
        Ok(match self.send(tx).await? {
            Sent::Committed => HoldOutcome::Held,
            Sent::Rejected(r) if r.has(HoldAction::Site) => HoldOutcome::SiteMoved,
            Sent::Rejected(r) if r.has(HoldAction::Rule) => HoldOutcome::RuleMoved,
            Sent::Rejected(r) if r.has(HoldAction::PatientHold) => HoldOutcome::PatientHolds,
            Sent::Rejected(r) if r.has(HoldAction::Place) => HoldOutcome::PlaceTaken,
            Sent::Rejected(r) => return Err(r.unexpected()),
        })
    }

    fn hold_tx(
        &self,
        hold: &Hold,
        unchanged: Unchanged,
        now: i64,
        audit: &AuditEvent,
    ) -> Result<Tx<HoldAction>, StoreError> {
        let date = hold.slot.local_date();
        let place = keys::place_attribute(hold.place);
        let mut tx = Tx::new(self);
        let taken = Expr::new()
            .set(attr::ENTITY, entity::SLOT)
            .set(attr::SLOT_START, hold.slot.start)
            .set(
                &place,
                PlaceItem {
                    booking: None,
                    hold: Some(hold.id),
                    until: Some(hold.expires_at),
                    patient: Some(hold.patient_id),
                },
            );
        tx.update(
            HoldAction::Place,
            key(keys::site_day_pk(&hold.site, date), keys::site_slot_sk(hold.slot.start)),
            take_free_place(taken, &place, now, unchanged.slot_version),
        )?;
        tx.check(
            HoldAction::Site,
            key(keys::SITES_PK, keys::site_sk(&hold.site)),
            site_unchanged(unchanged.site_version),
        )?;
        tx.check(
            HoldAction::Rule,
            key(keys::site_day_pk(&hold.site, date), keys::DAY_RULE_SK),
            rule_unchanged(unchanged.rule_version),
        )?;
        let marker = PatientHoldItem {
            pk: keys::patient_pk(hold.patient_id),
            sk: keys::patient_hold_sk(&hold.site),
            entity: entity::PATIENT_HOLD.to_owned(),
            hold_id: hold.id,
            until: hold.expires_at,
        };
        tx.put(
            HoldAction::PatientHold,
            to_item(&marker)?,
            Expr::new().absent_or_lt(attr::PLACE_UNTIL, now),
        )?;
        tx.put_new(HoldAction::Hold, to_item(&hold_item(hold))?)?;
        tx.put_new(HoldAction::Audit, self.audit_item(audit)?)?;
        Ok(tx)
    }

    /// One hold (GetItem), whether or not it expired.
    ///
    /// # Errors
    /// Engine failures, a malformed item.
    pub async fn hold(&self, id: Uuid) -> Result<Option<Hold>, StoreError> {
        self.get(keys::hold_pk(id), keys::HOLD_SK.to_owned())
            .await?
            .map(|item| from_item::<HoldItem>(item).map(hold_of))
            .transpose()
    }

    /// Gives a hold's place back and deletes the hold, in one transaction; a place no longer the hold's (it
    /// expired and someone took it) is left alone. Returns whether the place was still the hold's.
    ///
    /// # Errors
    /// Engine failures.
    pub async fn release_hold(&self, hold: &Hold) -> Result<bool, StoreError> {
        let tx = self.release_tx(hold, true, true)?;
        match self.send(tx).await? {
            Sent::Committed => Ok(true),
            Sent::Rejected(r) if !r.has(ReleaseAction::Hold) => {
                // The place, or the patient's marker, is a newer hold's now: leave those alone.
                let (place, marker) = (!r.has(ReleaseAction::Place), !r.has(ReleaseAction::PatientHold));
                let tx = self.release_tx(hold, place, marker)?;
                match self.send(tx).await? {
                    Sent::Committed => Ok(place),
                    Sent::Rejected(r) => Err(r.unexpected()),
                }
            }
            Sent::Rejected(r) => Err(r.unexpected()),
        }
    }

    fn release_tx(&self, hold: &Hold, with_place: bool, with_marker: bool) -> Result<Tx<ReleaseAction>, StoreError> {
        let place = keys::place_attribute(hold.place);
        let mut tx = Tx::new(self);
        if with_place {
            tx.update(
                ReleaseAction::Place,
                key(
                    keys::site_day_pk(&hold.site, hold.slot.local_date()),
                    keys::site_slot_sk(hold.slot.start),
                ),
                Expr::new().remove(&place).field_eq(&place, attr::PLACE_HOLD, hold.id),
            )?;
        }
        tx.delete(
            ReleaseAction::Hold,
            key(keys::hold_pk(hold.id), keys::HOLD_SK),
            Expr::new(),
        )?;
        if with_marker {
            tx.delete(
                ReleaseAction::PatientHold,
                key(keys::patient_pk(hold.patient_id), keys::patient_hold_sk(&hold.site)),
                Expr::new().absent_or_eq(attr::HOLD_ID, hold.id),
            )?;
        }
        Ok(tx)
    }
}

pub(crate) fn hold_item(hold: &Hold) -> HoldItem {
    HoldItem {
        pk: keys::hold_pk(hold.id),
        sk: keys::HOLD_SK.to_owned(),
        entity: entity::HOLD.to_owned(),
        hold_id: hold.id,
        site: hold.site.clone(),
        slot_start: hold.slot.start,
        offset_seconds: hold.slot.offset_seconds,
        place: hold.place,
        patient_id: hold.patient_id,
        expires_at: hold.expires_at,
        created_at: hold.created_at.clone(),
    }
}

fn hold_of(item: HoldItem) -> Hold {
    Hold {
        id: item.hold_id,
        site: item.site,
        slot: LocalSlot {
            start: item.slot_start,
            offset_seconds: item.offset_seconds,
        },
        place: item.place,
        patient_id: item.patient_id,
        expires_at: item.expires_at,
        created_at: item.created_at,
    }
}

fn places_of(stored: BTreeMap<String, PlaceItem>) -> Places {
    Places(
        stored
            .into_iter()
            .filter_map(|(name, place)| {
                let index = name.strip_prefix('P')?.parse().ok()?;
                let taker = match (place.booking, place.hold, place.until) {
                    (Some(booking), _, _) => Taker::Booking(booking),
                    (None, Some(id), Some(until)) => Taker::Hold {
                        id,
                        patient: place.patient.unwrap_or_default(),
                        until,
                    },
                    _ => return None,
                };
                Some((index, taker))
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tx::assert_names_in_targets;

    fn hold() -> Hold {
        Hold {
            id: Uuid::now_v7(),
            site: "BER".into(),
            slot: LocalSlot {
                start: SlotStart::new(time::macros::datetime!(2027-03-28 05:00 UTC)),
                offset_seconds: 7200,
            },
            place: 3,
            patient_id: Uuid::now_v7(),
            expires_at: 100,
            created_at: "t".into(),
        }
    }

    #[test]
    fn every_attribute_a_hold_names_exists_in_its_item() {
        let store = crate::store::tests::offline_store();
        let h = hold();
        let slot_key = (
            keys::site_day_pk("BER", time::macros::date!(2027 - 03 - 28)),
            keys::site_slot_sk(h.slot.start),
        );
        let slot = to_item(&SlotItem {
            pk: slot_key.0.clone(),
            sk: slot_key.1.clone(),
            entity: entity::SLOT.into(),
            slot_start: h.slot.start,
            version: 1,
            places: [(
                keys::place_attribute(3),
                PlaceItem {
                    booking: None,
                    hold: Some(h.id),
                    until: Some(1),
                    patient: Some(h.patient_id),
                },
            )]
            .into(),
        })
        .unwrap();
        let rule_key = (slot_key.0.clone(), keys::DAY_RULE_SK.to_owned());
        let rule = to_item(&DayRuleItem {
            pk: rule_key.0.clone(),
            sk: rule_key.1.clone(),
            entity: entity::DAY_RULE.into(),
            site: "BER".into(),
            date: "2027-03-28".into(),
            rule: DayRule {
                closed: false,
                opening_hours: None,
                capacity: Some(2),
            },
            version: 1,
            updated_at: "t".into(),
        })
        .unwrap();
        let hold_key = (keys::hold_pk(h.id), keys::HOLD_SK.to_owned());
        let site = SiteItem::from(&Site {
            definition: serde_json::from_value(crate::examples::site_definition()).unwrap(),
            version: 1,
            created_at: "t".into(),
            updated_at: "t".into(),
        });
        let marker = PatientHoldItem {
            pk: keys::patient_pk(h.patient_id),
            sk: keys::patient_hold_sk("BER"),
            entity: entity::PATIENT_HOLD.into(),
            hold_id: h.id,
            until: 1,
        };
        let stored = [
            (slot_key, slot),
            (rule_key, rule),
            (hold_key, to_item(&hold_item(&h)).unwrap()),
            ((site.pk.clone(), site.sk.clone()), to_item(&site).unwrap()),
            ((marker.pk.clone(), marker.sk.clone()), to_item(&marker).unwrap()),
        ]
        .into();
        let audit = crate::store::tests::audit_event(h.patient_id);
        let unchanged = Unchanged {
            site_version: 1,
            rule_version: Some(1),
            slot_version: Some(1),
        };
        assert_names_in_targets(&store.hold_tx(&h, unchanged, 50, &audit).unwrap(), &stored);
        assert_names_in_targets(&store.release_tx(&h, true, true).unwrap(), &stored);
    }

    #[test]
    fn stored_places_become_takers_and_expired_holds_are_free() {
        let (b, h) = (Uuid::now_v7(), Uuid::now_v7());
        let places = places_of(
            [
                (
                    "P0".to_owned(),
                    PlaceItem {
                        booking: Some(b),
                        hold: None,
                        until: None,
                        patient: None,
                    },
                ),
                (
                    "P2".to_owned(),
                    PlaceItem {
                        booking: None,
                        hold: Some(h),
                        until: Some(10),
                        patient: None,
                    },
                ),
            ]
            .into(),
        );
        assert_eq!(places.booked(), 1);
        assert_eq!((places.held(10), places.held(11)), (1, 0));
        assert_eq!(places.free(4, 10), [1, 3]);
        assert_eq!(places.free(4, 11), [1, 2, 3]);
        assert_eq!((places.available(4, 10), places.available(4, 11)), (2, 3));
        assert_eq!(places.available(1, 10), 0, "a lowered capacity never goes negative");
    }
}
