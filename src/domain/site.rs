//! Sites: where patients come, in their own time zone, with weekly opening hours, day exceptions and the rules
//! a booking must meet there. Slots are generated in the site's local time, so a site that opens at 07:00 opens
//! at 07:00 on both sides of a daylight-saving change; the UTC instant of that slot moves instead.
//!
//! Time zones come from the IANA database bundled with `jiff` (no hand-written offsets). Local times that do not
//! exist (the hour skipped in spring) have no slot; local times that occur twice (the hour repeated in autumn)
//! are two slots with different offsets.

use garde::Validate;
use jiff::tz::{AmbiguousOffset, TimeZone};
use serde::{Deserialize, Serialize};
use time::{Date, Duration, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset, macros::format_description};

use super::booking::SlotStart;

/// The site of requests that name none, and of every booking made before sites existed. Created at startup
/// from the `MEDBOOK_SLOT_*` / `MEDBOOK_OPENING_HOURS` settings when it does not exist; edited like any other
/// site after that.
pub const DEFAULT_SITE: &str = "MAIN";

/// Longest slot, in minutes.
pub const MAX_SLOT_MINUTES: u32 = 240;
/// Most places in one slot.
pub const MAX_CAPACITY: u32 = 50;
/// Most opening intervals on one day.
pub const MAX_INTERVALS: usize = 8;

/// One opening interval of a day, local wall-clock time: `from` inclusive, `to` exclusive (`24:00` is the end
/// of the day).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"from": "07:00", "to": "12:00"}))]
pub struct Interval {
    /// Opens, `HH:MM`.
    #[schema(example = "07:00", pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    pub from: String,
    /// Closes, `HH:MM` (`24:00` for midnight at the end of the day).
    #[schema(example = "12:00", pattern = r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$")]
    pub to: String,
}

impl Interval {
    /// The interval as minutes of the day, `from < to`, if both times are well formed.
    pub fn minutes(&self) -> Option<(u32, u32)> {
        let parse = |t: &str, end: bool| -> Option<u32> {
            if end && t == "24:00" {
                return Some(24 * 60);
            }
            let (h, m) = t.split_once(':')?;
            if h.len() != 2 || m.len() != 2 {
                return None;
            }
            let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
            (h < 24 && m < 60).then_some(h * 60 + m)
        };
        let (from, to) = (parse(&self.from, false)?, parse(&self.to, true)?);
        (from < to).then_some((from, to))
    }
}

/// Checks a day's intervals: each well formed, in order, not overlapping, at most [`MAX_INTERVALS`].
///
/// # Errors
/// A message naming the first interval that is not.
pub fn check_intervals(intervals: &[Interval], _: &()) -> garde::Result {
    if intervals.len() > MAX_INTERVALS {
        return Err(garde::Error::new(format!("at most {MAX_INTERVALS} intervals a day")));
    }
    let mut end = 0;
    for (i, interval) in intervals.iter().enumerate() {
        let Some((from, to)) = interval.minutes() else {
            return Err(garde::Error::new(format!(
                "[{i}]: needs `from` and `to` as HH:MM (`to` may be 24:00) with from < to"
            )));
        };
        if i > 0 && from < end {
            return Err(garde::Error::new(format!(
                "[{i}]: intervals must be in order and must not overlap"
            )));
        }
        end = to;
    }
    Ok(())
}

/// Opening hours per weekday, in the site's local time. A day left out is closed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"mon": [{"from": "07:00", "to": "12:00"}, {"from": "13:00", "to": "17:00"}], "sat": [{"from": "08:00", "to": "12:00"}]}))]
pub struct WeeklyHours {
    /// Monday.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[garde(custom(check_intervals))]
    #[schema(max_items = 8)]
    pub mon: Vec<Interval>,
    /// Tuesday.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[garde(custom(check_intervals))]
    #[schema(max_items = 8)]
    pub tue: Vec<Interval>,
    /// Wednesday.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[garde(custom(check_intervals))]
    #[schema(max_items = 8)]
    pub wed: Vec<Interval>,
    /// Thursday.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[garde(custom(check_intervals))]
    #[schema(max_items = 8)]
    pub thu: Vec<Interval>,
    /// Friday.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[garde(custom(check_intervals))]
    #[schema(max_items = 8)]
    pub fri: Vec<Interval>,
    /// Saturday.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[garde(custom(check_intervals))]
    #[schema(max_items = 8)]
    pub sat: Vec<Interval>,
    /// Sunday.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[garde(custom(check_intervals))]
    #[schema(max_items = 8)]
    pub sun: Vec<Interval>,
}

impl WeeklyHours {
    /// The same intervals every day of the week.
    pub fn every_day(intervals: Vec<Interval>) -> Self {
        Self {
            mon: intervals.clone(),
            tue: intervals.clone(),
            wed: intervals.clone(),
            thu: intervals.clone(),
            fri: intervals.clone(),
            sat: intervals.clone(),
            sun: intervals,
        }
    }

    /// The intervals of `date`'s weekday.
    pub fn of(&self, date: Date) -> &[Interval] {
        use time::Weekday::*;
        match date.weekday() {
            Monday => &self.mon,
            Tuesday => &self.tue,
            Wednesday => &self.wed,
            Thursday => &self.thu,
            Friday => &self.fri,
            Saturday => &self.sat,
            Sunday => &self.sun,
        }
    }
}

fn known_time_zone(name: &str, _: &()) -> garde::Result {
    TimeZone::get(name)
        .map(|_| ())
        .map_err(|_| garde::Error::new(format!("`{name}` is not an IANA time zone (e.g. Europe/Berlin)")))
}

fn divides_a_day(minutes: &u32, _: &()) -> garde::Result {
    if *minutes > 0 && (24 * 60) % minutes == 0 {
        Ok(())
    } else {
        Err(garde::Error::new("must divide a day (5, 10, 15, 20, 30, 60, …)"))
    }
}

fn default_horizon() -> u32 {
    180
}

fn default_hold_seconds() -> u32 {
    300
}

/// A site as the admin defines it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Validate, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = crate::examples::site_definition)]
pub struct SiteDefinition {
    /// Site code (upper case), the site's identity.
    #[garde(pattern(r"^[A-Z0-9][A-Z0-9_-]{1,31}$"))]
    #[schema(example = "BER", pattern = r"^[A-Z0-9][A-Z0-9_-]{1,31}$")]
    pub code: String,
    /// Display name.
    #[garde(length(min = 1, max = 200), custom(super::text::name))]
    #[schema(example = "Berlin Mitte", min_length = 1, max_length = 200)]
    pub name: String,
    /// IANA time zone of the site; opening hours and dates are local to it.
    #[garde(length(max = 64), custom(known_time_zone))]
    #[schema(example = "Europe/Berlin", max_length = 64)]
    pub time_zone: String,
    /// Slot length in minutes; divides a day.
    #[garde(range(min = 5, max = MAX_SLOT_MINUTES), custom(divides_a_day))]
    #[schema(example = 15, minimum = 5, maximum = 240)]
    pub slot_minutes: u32,
    /// Patients per slot.
    #[garde(range(min = 1, max = MAX_CAPACITY))]
    #[schema(example = 4, minimum = 1, maximum = 50)]
    pub capacity: u32,
    /// Opening hours per weekday (local time); a day left out is closed.
    #[garde(dive)]
    pub opening_hours: WeeklyHours,
    /// How long before a slot starts a patient may book or cancel it, in minutes.
    #[serde(default)]
    #[garde(range(max = 10_080))]
    #[schema(example = 60, maximum = 10_080)]
    pub minimum_notice_minutes: u32,
    /// How many days ahead a slot may be booked.
    #[serde(default = "default_horizon")]
    #[garde(range(min = 1, max = 3650))]
    #[schema(example = 180, minimum = 1, maximum = 3650)]
    pub booking_horizon_days: u32,
    /// How long a hold keeps a place, in seconds.
    #[serde(default = "default_hold_seconds")]
    #[garde(range(min = 1, max = 3600))]
    #[schema(example = 300, minimum = 1, maximum = 3600)]
    pub hold_seconds: u32,
}

impl SiteDefinition {
    /// The default site as the `MEDBOOK_SLOT_*` settings describe the grid before sites: UTC, the same hours
    /// every day, no minimum notice.
    pub fn from_grid(grid: &super::booking::SlotGrid) -> Self {
        let hm = |t: Time| format!("{:02}:{:02}", t.hour(), t.minute());
        let close = if grid.hours.close == Time::MIDNIGHT {
            "24:00".to_owned()
        } else {
            hm(grid.hours.close)
        };
        Self {
            code: DEFAULT_SITE.to_owned(),
            name: "Main site".to_owned(),
            time_zone: "UTC".to_owned(),
            slot_minutes: grid.minutes,
            capacity: grid.capacity.min(MAX_CAPACITY),
            opening_hours: WeeklyHours::every_day(vec![Interval {
                from: hm(grid.hours.open),
                to: close,
            }]),
            minimum_notice_minutes: 0,
            booking_horizon_days: grid.horizon_days,
            hold_seconds: default_hold_seconds(),
        }
    }
}

/// A site at its current version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// The definition.
    pub definition: SiteDefinition,
    /// Version, from 1.
    pub version: u64,
    /// When it was created.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

/// A day that differs from the weekly hours: closed, other hours, other capacity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Validate, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"openingHours": [{"from": "08:00", "to": "12:00"}], "capacity": 2}))]
pub struct DayRule {
    /// Closed all day (alone: no hours, no capacity).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[garde(skip)]
    pub closed: bool,
    /// The day's opening hours instead of the weekday's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(inner(custom(check_intervals)))]
    #[schema(max_items = 8)]
    pub opening_hours: Option<Vec<Interval>>,
    /// The day's capacity per slot instead of the site's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(inner(range(min = 1, max = MAX_CAPACITY)))]
    pub capacity: Option<u32>,
}

impl DayRule {
    /// Whether the rule says one thing: closed alone, or hours and/or capacity.
    pub fn is_coherent(&self) -> bool {
        if self.closed {
            self.opening_hours.is_none() && self.capacity.is_none()
        } else {
            self.opening_hours.is_some() || self.capacity.is_some()
        }
    }
}

/// One slot of a site's day: its instant and its local wall-clock time with the offset in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct LocalSlot {
    /// The instant (UTC).
    pub start: SlotStart,
    /// The site's UTC offset at that instant, in seconds.
    pub offset_seconds: i32,
}

impl LocalSlot {
    /// `2027-03-28T07:00:00+02:00`.
    pub fn local_start(&self) -> String {
        local_text(self.start.at(), self.offset_seconds)
    }

    /// The site's local date of the slot.
    pub fn local_date(&self) -> Date {
        let offset = UtcOffset::from_whole_seconds(self.offset_seconds).unwrap_or(UtcOffset::UTC);
        self.start
            .at()
            .checked_to_offset(offset)
            .unwrap_or(self.start.at())
            .date()
    }
}

/// `at` in the offset of `offset_seconds`, RFC 3339 to the second.
pub fn local_text(at: OffsetDateTime, offset_seconds: i32) -> String {
    let offset = UtcOffset::from_whole_seconds(offset_seconds).unwrap_or(UtcOffset::UTC);
    at.checked_to_offset(offset)
        .unwrap_or(at)
        .format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second][offset_hour sign:mandatory]:[offset_minute]"
        ))
        .unwrap_or_default()
}

/// Who has a place of a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taker {
    /// A booking, for as long as it lives.
    Booking(uuid::Uuid),
    /// A hold, until `until` (epoch seconds) and not a second longer.
    Hold {
        /// Hold id.
        id: uuid::Uuid,
        /// For whom.
        patient: uuid::Uuid,
        /// Epoch seconds.
        until: i64,
    },
}

/// The taken places of one slot, by place index. A hold past its `until` is no longer taken, whatever is stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Places(pub std::collections::BTreeMap<u32, Taker>);

impl Places {
    /// Places held by bookings.
    pub fn booked(&self) -> u32 {
        self.0.values().filter(|t| matches!(t, Taker::Booking(_))).count() as u32
    }

    /// Places held by holds still live at `now`.
    pub fn held(&self, now: i64) -> u32 {
        self.0
            .values()
            .filter(|t| matches!(t, Taker::Hold { until, .. } if *until >= now))
            .count() as u32
    }

    /// Free place indexes below `capacity` at `now` (never used, or an expired hold's).
    pub fn free(&self, capacity: u32, now: i64) -> Vec<u32> {
        (0..capacity)
            .filter(|i| match self.0.get(i) {
                None => true,
                Some(Taker::Booking(_)) => false,
                Some(Taker::Hold { until, .. }) => *until < now,
            })
            .collect()
    }

    /// Places free at `now` out of `capacity` (a place above a lowered capacity that is still taken counts).
    pub fn available(&self, capacity: u32, now: i64) -> u32 {
        capacity.saturating_sub(self.booked() + self.held(now))
    }

    /// Whether a place at or above `capacity` is taken at `now` (the capacity was lowered under it): then a
    /// free place below `capacity` does not mean a free seat, and writers must see each other.
    pub fn over_capacity(&self, capacity: u32, now: i64) -> bool {
        self.0.iter().any(|(i, t)| {
            *i >= capacity
                && match t {
                    Taker::Booking(_) => true,
                    Taker::Hold { until, .. } => *until >= now,
                }
        })
    }

    /// The place `hold` has in this slot, with its patient and end.
    pub fn hold(&self, hold: uuid::Uuid) -> Option<(u32, uuid::Uuid, i64)> {
        self.0.iter().find_map(|(i, t)| match t {
            Taker::Hold { id, patient, until } if *id == hold => Some((*i, *patient, *until)),
            _ => None,
        })
    }
}

/// A hold on one place of a slot, for one patient, until it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    /// Hold id.
    pub id: uuid::Uuid,
    /// Site code.
    pub site: String,
    /// The slot.
    pub slot: LocalSlot,
    /// The place held.
    pub place: u32,
    /// For whom.
    pub patient_id: uuid::Uuid,
    /// Epoch seconds when it stops holding.
    pub expires_at: i64,
    /// Creation time.
    pub created_at: String,
}

/// Why a slot cannot be booked at a site.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SiteSlotError {
    /// Not one of the day's slot starts.
    #[error("is not a slot start of the site (slots start every {0} minutes from the opening time, local time)")]
    OffGrid(u32),
    /// The site is closed that day.
    #[error("is on a day the site is closed")]
    DayClosed,
    /// Outside the day's opening hours.
    #[error("is outside the site's opening hours that day (local time)")]
    Closed,
    /// Already started.
    #[error("is in the past")]
    Past,
    /// Sooner than the site's minimum notice.
    #[error("is less than {0} minutes ahead (the site's minimum notice)")]
    TooSoon(u32),
    /// Further ahead than the site takes bookings.
    #[error("is more than {0} days ahead")]
    BeyondHorizon(u32),
}

impl Site {
    /// The site's time zone (validated when the definition was).
    pub fn zone(&self) -> TimeZone {
        TimeZone::get(&self.definition.time_zone).unwrap_or(TimeZone::UTC)
    }

    /// The site's UTC offset at `at`, in seconds.
    pub fn offset_at(&self, at: OffsetDateTime) -> i32 {
        let ts = jiff::Timestamp::from_second(at.unix_timestamp()).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        self.zone().to_offset(ts).seconds()
    }

    /// The site's local date at `at`.
    pub fn local_date(&self, at: OffsetDateTime) -> Date {
        let offset = UtcOffset::from_whole_seconds(self.offset_at(at)).unwrap_or(UtcOffset::UTC);
        at.checked_to_offset(offset).unwrap_or(at).date()
    }

    /// Places per slot on `date` under `rule`.
    pub fn capacity(&self, rule: Option<&DayRule>) -> u32 {
        rule.and_then(|r| r.capacity).unwrap_or(self.definition.capacity)
    }

    /// Every slot of the local `date` under `rule` (the day's exception, if any), in time order. A wall-clock
    /// time the clocks skip has no slot; one they repeat has two.
    pub fn slots(&self, date: Date, rule: Option<&DayRule>) -> Vec<LocalSlot> {
        if rule.is_some_and(|r| r.closed) {
            return Vec::new();
        }
        let intervals = rule
            .and_then(|r| r.opening_hours.as_deref())
            .unwrap_or_else(|| self.definition.opening_hours.of(date));
        let step = self.definition.slot_minutes;
        let zone = self.zone();
        let midnight = PrimitiveDateTime::new(date, Time::MIDNIGHT)
            .assume_utc()
            .unix_timestamp();
        let mut slots = Vec::new();
        for (from, to) in intervals.iter().filter_map(Interval::minutes) {
            let mut minute = from;
            while minute + step <= to {
                let wall = midnight + i64::from(minute) * 60;
                let civil = jiff::civil::DateTime::new(
                    date.year() as i16,
                    u8::from(date.month()) as i8,
                    date.day() as i8,
                    (minute / 60) as i8,
                    (minute % 60) as i8,
                    0,
                    0,
                );
                let offsets = match civil.map(|c| zone.to_ambiguous_timestamp(c).offset()) {
                    Ok(AmbiguousOffset::Unambiguous { offset }) => vec![offset.seconds()],
                    Ok(AmbiguousOffset::Gap { .. }) | Err(_) => vec![],
                    Ok(AmbiguousOffset::Fold { before, after }) => vec![before.seconds(), after.seconds()],
                };
                for offset_seconds in offsets {
                    if let Ok(at) = OffsetDateTime::from_unix_timestamp(wall - i64::from(offset_seconds)) {
                        slots.push(LocalSlot {
                            start: SlotStart::new(at),
                            offset_seconds,
                        });
                    }
                }
                minute += step;
            }
        }
        slots.sort();
        slots.dedup_by_key(|s| s.start);
        slots
    }

    /// The slot starting at `start` if it can be booked at `now` under `rule` (the exception of its local day).
    /// Staff skip the minimum notice (`enforce_notice` false).
    ///
    /// # Errors
    /// [`SiteSlotError`] naming the rule it breaks.
    pub fn check(
        &self,
        start: OffsetDateTime,
        now: OffsetDateTime,
        rule: Option<&DayRule>,
        enforce_notice: bool,
    ) -> Result<LocalSlot, SiteSlotError> {
        let date = self.local_date(start);
        if rule.is_some_and(|r| r.closed) {
            return Err(SiteSlotError::DayClosed);
        }
        let start = SlotStart::new(start);
        let Some(slot) = self.slots(date, rule).into_iter().find(|s| s.start == start) else {
            let offset = UtcOffset::from_whole_seconds(self.offset_at(start.at())).unwrap_or(UtcOffset::UTC);
            let local = start.at().checked_to_offset(offset).unwrap_or(start.at());
            let minute = u32::from(local.hour()) * 60 + u32::from(local.minute());
            let intervals = rule
                .and_then(|r| r.opening_hours.as_deref())
                .unwrap_or_else(|| self.definition.opening_hours.of(date));
            let step = self.definition.slot_minutes;
            let open = intervals
                .iter()
                .filter_map(Interval::minutes)
                .any(|(from, to)| from <= minute && minute + step <= to);
            return Err(if open {
                SiteSlotError::OffGrid(step)
            } else {
                SiteSlotError::Closed
            });
        };
        let at = slot.start.at();
        if at <= now {
            return Err(SiteSlotError::Past);
        }
        let notice = self.definition.minimum_notice_minutes;
        if enforce_notice && at < now + Duration::minutes(notice.into()) {
            return Err(SiteSlotError::TooSoon(notice));
        }
        let horizon = self.definition.booking_horizon_days;
        if at > now + Duration::days(horizon.into()) {
            return Err(SiteSlotError::BeyondHorizon(horizon));
        }
        Ok(slot)
    }

    /// Whether `start` is less than the minimum notice away from `now` (a patient may not cancel or move it).
    pub fn within_notice(&self, start: OffsetDateTime, now: OffsetDateTime) -> bool {
        start < now + Duration::minutes(self.definition.minimum_notice_minutes.into())
    }
}

#[cfg(test)]
mod tests {
    use time::macros::{date, datetime};

    use super::*;

    fn interval(from: &str, to: &str) -> Interval {
        Interval {
            from: from.into(),
            to: to.into(),
        }
    }

    fn site(zone: &str, hours: Vec<Interval>, minutes: u32) -> Site {
        Site {
            definition: SiteDefinition {
                code: "S1".into(),
                name: "Site".into(),
                time_zone: zone.into(),
                slot_minutes: minutes,
                capacity: 4,
                opening_hours: WeeklyHours::every_day(hours),
                minimum_notice_minutes: 0,
                booking_horizon_days: 730,
                hold_seconds: 300,
            },
            version: 1,
            created_at: String::new(),
            updated_at: String::new(),
        }
    }

    fn texts(slots: &[LocalSlot]) -> Vec<(String, String)> {
        slots.iter().map(|s| (s.start.to_string(), s.local_start())).collect()
    }

    #[test]
    fn berlin_opens_at_seven_local_on_both_sides_of_the_spring_change() {
        let berlin = site("Europe/Berlin", vec![interval("07:00", "09:00")], 60);
        assert_eq!(
            texts(&berlin.slots(date!(2027 - 03 - 27), None)),
            [
                ("2027-03-27T06:00:00Z".into(), "2027-03-27T07:00:00+01:00".into()),
                ("2027-03-27T07:00:00Z".into(), "2027-03-27T08:00:00+01:00".into()),
            ]
        );
        assert_eq!(
            texts(&berlin.slots(date!(2027 - 03 - 28), None)),
            [
                ("2027-03-28T05:00:00Z".into(), "2027-03-28T07:00:00+02:00".into()),
                ("2027-03-28T06:00:00Z".into(), "2027-03-28T08:00:00+02:00".into()),
            ]
        );
    }

    #[test]
    fn hours_across_the_transition_skip_the_missing_hour_and_repeat_the_doubled_one() {
        // Berlin: 02:00–03:00 does not exist on 2027-03-28 and happens twice on 2027-10-31.
        let berlin = site("Europe/Berlin", vec![interval("01:00", "04:00")], 30);
        let spring: Vec<String> = berlin
            .slots(date!(2027 - 03 - 28), None)
            .iter()
            .map(LocalSlot::local_start)
            .collect();
        assert_eq!(
            spring,
            [
                "2027-03-28T01:00:00+01:00",
                "2027-03-28T01:30:00+01:00",
                "2027-03-28T03:00:00+02:00",
                "2027-03-28T03:30:00+02:00"
            ]
        );
        let autumn = berlin.slots(date!(2027 - 10 - 31), None);
        assert_eq!(
            texts(&autumn)[1..6],
            [
                ("2027-10-30T23:30:00Z".into(), "2027-10-31T01:30:00+02:00".into()),
                ("2027-10-31T00:00:00Z".into(), "2027-10-31T02:00:00+02:00".into()),
                ("2027-10-31T00:30:00Z".into(), "2027-10-31T02:30:00+02:00".into()),
                ("2027-10-31T01:00:00Z".into(), "2027-10-31T02:00:00+01:00".into()),
                ("2027-10-31T01:30:00Z".into(), "2027-10-31T02:30:00+01:00".into()),
            ]
        );
        assert_eq!(autumn.len(), 8, "6 wall-clock slots, two of them twice");
        assert!(autumn.iter().all(|s| s.local_date() == date!(2027 - 10 - 31)));
    }

    #[test]
    fn new_york_changes_on_its_own_dates() {
        // US: second Sunday of March, first Sunday of November (2027-03-14, 2027-11-07), at 02:00 local.
        let ny = site("America/New_York", vec![interval("07:00", "08:00")], 60);
        let first = |d| ny.slots(d, None)[0].start.to_string();
        assert_eq!(first(date!(2027 - 03 - 13)), "2027-03-13T12:00:00Z");
        assert_eq!(first(date!(2027 - 03 - 14)), "2027-03-14T11:00:00Z");
        assert_eq!(first(date!(2027 - 11 - 06)), "2027-11-06T11:00:00Z");
        assert_eq!(first(date!(2027 - 11 - 07)), "2027-11-07T12:00:00Z");
        let night = site("America/New_York", vec![interval("00:00", "04:00")], 60);
        assert_eq!(
            night.slots(date!(2027 - 03 - 14), None).len(),
            3,
            "02:00 does not exist"
        );
        assert_eq!(night.slots(date!(2027 - 11 - 07), None).len(), 5, "01:00 happens twice");
        // Berlin changed two weeks later: on 2027-03-14 it is still +01:00.
        let berlin = site("Europe/Berlin", vec![interval("07:00", "08:00")], 60);
        assert_eq!(
            berlin.slots(date!(2027 - 03 - 14), None)[0].local_start(),
            "2027-03-14T07:00:00+01:00"
        );
    }

    #[test]
    fn a_day_rule_closes_the_day_or_changes_its_hours_and_capacity() {
        let s = site("UTC", vec![interval("07:00", "09:00")], 30);
        let day = date!(2027 - 01 - 04);
        let closed = DayRule {
            closed: true,
            opening_hours: None,
            capacity: None,
        };
        assert!(s.slots(day, Some(&closed)).is_empty());
        let short = DayRule {
            closed: false,
            opening_hours: Some(vec![interval("08:00", "09:00")]),
            capacity: Some(2),
        };
        assert_eq!(s.slots(day, Some(&short)).len(), 2);
        assert_eq!(s.capacity(Some(&short)), 2);
        assert_eq!(s.capacity(None), 4);
        assert!(closed.is_coherent() && short.is_coherent());
        assert!(
            !DayRule {
                closed: false,
                opening_hours: None,
                capacity: None
            }
            .is_coherent()
        );
        assert!(
            !DayRule {
                closed: true,
                opening_hours: None,
                capacity: Some(1)
            }
            .is_coherent()
        );
    }

    #[test]
    fn a_slot_is_checked_against_the_grid_the_day_notice_and_horizon() {
        let mut s = site("Europe/Berlin", vec![interval("07:00", "09:00")], 30);
        s.definition.minimum_notice_minutes = 120;
        s.definition.booking_horizon_days = 10;
        let now = datetime!(2027-03-27 05:00 UTC);
        let first = datetime!(2027-03-27 06:00 UTC);
        assert_eq!(s.check(first, now, None, true), Err(SiteSlotError::TooSoon(120)));
        assert!(s.check(first, now, None, false).is_ok(), "staff skip the notice");
        assert_eq!(
            s.check(datetime!(2027-03-27 06:10 UTC), now, None, false),
            Err(SiteSlotError::OffGrid(30))
        );
        assert_eq!(
            s.check(datetime!(2027-03-27 08:00 UTC), now, None, false),
            Err(SiteSlotError::Closed),
            "09:00 local, closing time"
        );
        assert_eq!(
            s.check(first, datetime!(2027-03-27 06:30 UTC), None, false),
            Err(SiteSlotError::Past)
        );
        let next_day = s.check(datetime!(2027-03-28 05:00 UTC), now, None, true).unwrap();
        assert_eq!(next_day.local_start(), "2027-03-28T07:00:00+02:00");
        assert_eq!(
            s.check(datetime!(2027-03-28 06:00 UTC), now, None, true)
                .map(|s| s.local_start()),
            Ok("2027-03-28T08:00:00+02:00".into())
        );
        assert_eq!(
            s.check(datetime!(2027-04-27 05:00 UTC), now, None, true),
            Err(SiteSlotError::BeyondHorizon(10))
        );
        let closed = DayRule {
            closed: true,
            opening_hours: None,
            capacity: None,
        };
        assert_eq!(
            s.check(datetime!(2027-03-28 05:00 UTC), now, Some(&closed), true),
            Err(SiteSlotError::DayClosed)
        );
    }

    #[test]
    fn the_last_representable_instant_neither_panics_nor_becomes_a_slot() {
        let s = site("Pacific/Kiritimati", vec![interval("00:00", "24:00")], 60);
        let last = datetime!(9999-12-31 23:00 UTC);
        assert_eq!(
            s.local_date(last),
            date!(9999 - 12 - 31),
            "year 10000 does not exist: kept in UTC"
        );
        assert!(s.check(last, datetime!(2026-12-01 00:00 UTC), None, false).is_err());
        assert!(local_text(last, 14 * 3600).starts_with("9999-12-31T23:00:00"));
    }

    #[test]
    fn definitions_are_validated_by_field() {
        let mut d = site("Europe/Berlin", vec![interval("07:00", "09:00")], 30).definition;
        assert!(d.validate().is_ok());
        d.time_zone = "Mars/Olympus_Mons".into();
        d.slot_minutes = 7;
        d.opening_hours.mon = vec![interval("09:00", "08:00")];
        d.opening_hours.tue = vec![interval("07:00", "09:00"), interval("08:00", "10:00")];
        let report = d.validate().unwrap_err().to_string();
        for field in ["time_zone", "slot_minutes", "opening_hours.mon", "opening_hours.tue"] {
            assert!(report.contains(field), "{field}: {report}");
        }
        assert_eq!(interval("07:00", "24:00").minutes(), Some((420, 1440)));
        assert_eq!(interval("24:00", "24:00").minutes(), None);
        assert_eq!(interval("7:00", "09:00").minutes(), None);
    }
}
