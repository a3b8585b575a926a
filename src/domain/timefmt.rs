//! Fixed-width UTC timestamps. Keys sort these strings, so every timestamp of one kind has the same width.

use time::{OffsetDateTime, UtcOffset, format_description::FormatItem, macros::format_description};

/// `2026-12-01T07:15:00.123Z`: record times (createdAt, recordedAt), millisecond precision.
const INSTANT: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

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

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn instants_are_fixed_width_utc() {
        assert_eq!(
            instant(datetime!(2026-12-01 08:15:00.5 +01:00)),
            "2026-12-01T07:15:00.500Z"
        );
        assert_eq!(now().len(), "2026-12-01T07:15:00.500Z".len());
    }
}
