//! The one place that formats and parses times. Keys sort these strings, so every timestamp of one kind has
//! the same width: record times with milliseconds, slot starts and performed times to the second, dates as
//! `YYYY-MM-DD`.

use time::{Date, OffsetDateTime, Time, UtcOffset, format_description::FormatItem, macros::format_description};

/// `2026-12-01T07:15:00.123Z`: record times (createdAt, recordedAt), millisecond precision.
const INSTANT: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
/// `2026-12-01T07:15:00Z`: slot starts and performed times, second precision.
const SECOND: &[FormatItem<'static>] = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
/// `07:30`: opening hours.
const HOUR_MINUTE: &[FormatItem<'static>] = format_description!("[hour]:[minute]");
/// `2026-12-01`.
const DATE: &[FormatItem<'static>] = format_description!("[year]-[month]-[day]");

/// Formats an instant as a fixed-width UTC string with milliseconds.
pub fn instant(at: OffsetDateTime) -> String {
    at.to_offset(UtcOffset::UTC)
        .format(INSTANT)
        .expect("a UTC date formats")
}

/// The current instant, formatted by [`instant`].
pub fn now() -> String {
    instant(OffsetDateTime::now_utc())
}

/// Formats an instant as a fixed-width UTC string to the second (`2026-12-01T07:15:00Z`).
pub fn second(at: OffsetDateTime) -> String {
    at.to_offset(UtcOffset::UTC).format(SECOND).expect("a UTC date formats")
}

/// Formats a date as `YYYY-MM-DD`.
pub fn date(date: Date) -> String {
    date.format(DATE).expect("a date formats")
}

/// Parses `YYYY-MM-DD`.
pub fn parse_date(text: &str) -> Option<Date> {
    Date::parse(text, DATE).ok()
}

/// Parses a time of day `HH:MM`.
pub fn parse_hour_minute(text: &str) -> Option<Time> {
    Time::parse(text, HOUR_MINUTE).ok()
}

/// Parses an RFC 3339 instant (any offset).
pub fn parse_instant(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()
}

#[cfg(test)]
mod tests {
    use time::macros::{date, datetime};

    use super::*;

    #[test]
    fn instants_are_fixed_width_utc() {
        assert_eq!(
            instant(datetime!(2026-12-01 08:15:00.5 +01:00)),
            "2026-12-01T07:15:00.500Z"
        );
        assert_eq!(now().len(), "2026-12-01T07:15:00.500Z".len());
        assert_eq!(second(datetime!(2026-12-01 08:15:00 +01:00)), "2026-12-01T07:15:00Z");
    }

    #[test]
    fn dates_round_trip_as_yyyy_mm_dd() {
        assert_eq!(date(date!(0815 - 01 - 02)), "0815-01-02");
        assert_eq!(parse_date("2026-12-01"), Some(date!(2026 - 12 - 01)));
        assert_eq!(parse_date("2026-12-1"), None);
        assert!(parse_instant("2026-12-01T07:15:00+01:00").is_some());
    }
}
