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

/// Parses `YYYY-MM-DD`, exactly: four digits, two, two (no sign, no extended years).
pub fn parse_date(text: &str) -> Option<Date> {
    let shape = text.len() == 10
        && text.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    shape.then(|| Date::parse(text, DATE).ok()).flatten()
}

/// Parses a time of day `HH:MM`.
pub fn parse_hour_minute(text: &str) -> Option<Time> {
    Time::parse(text, HOUR_MINUTE).ok()
}

/// Parses an RFC 3339 instant (any offset).
pub fn parse_instant(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()
}

/// Parses a duration like `90s`, `15m`, `1h` (a bare number is hours), `7d`: 1 s to 366 days.
///
/// # Errors
/// A message when the text is not a number followed by s, m, h or d, or is out of range.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{text}`: expected e.g. 90s, 15m, 1h, 7d"))?;
    let seconds = match unit {
        "s" => Some(number),
        "m" => number.checked_mul(60),
        "h" | "" => number.checked_mul(3600),
        "d" => number.checked_mul(86_400),
        _ => return Err(format!("`{text}`: unit must be s, m, h or d")),
    };
    match seconds {
        Some(s @ 1..=31_622_400) => Ok(std::time::Duration::from_secs(s)),
        _ => Err(format!("`{text}`: must be between 1s and 366d")),
    }
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
    fn durations_parse_with_their_units() {
        assert_eq!(parse_duration("1h").unwrap().as_secs(), 3600);
        assert_eq!(parse_duration("15m").unwrap().as_secs(), 900);
        assert_eq!(parse_duration("24").unwrap().as_secs(), 86_400);
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("1y").is_err());
        assert!(parse_duration("99999999999999999d").is_err());
    }

    #[test]
    fn dates_round_trip_as_yyyy_mm_dd() {
        assert_eq!(date(date!(0815 - 01 - 02)), "0815-01-02");
        assert_eq!(parse_date("2026-12-01"), Some(date!(2026 - 12 - 01)));
        assert_eq!(parse_date("2026-12-1"), None);
        assert_eq!(parse_date("+1990-12-10"), None);
        assert_eq!(parse_date("1990-12-10 "), None);
        assert!(parse_instant("2026-12-01T07:15:00+01:00").is_some());
    }
}
