//! Use cases and rules. Services take domain types, call the store, and return [`ServiceError`]s that the
//! API maps to HTTP; they know neither HTTP nor the SDK.

pub mod alerts;
pub mod audit;
pub mod bookings;
pub mod catalog;
pub mod email;
pub mod events;
pub mod health;
pub mod identities;
pub mod patients;
pub mod relay;
pub mod results;
pub mod sites;
pub mod webhooks;

use time::Date;

use crate::{
    domain::booking::DateRange,
    store::{self, PageKey, StoreError},
};

/// Where the next page of a list starts. Opaque: the API seals its bytes into a cursor bound to the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor(PageKey);

impl Cursor {
    /// The bytes to seal.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.to_bytes()
    }

    /// The cursor of [`Cursor::to_bytes`], if these are such bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        PageKey::from_bytes(bytes).map(Self)
    }

    fn key(start: Option<&Self>) -> Option<&PageKey> {
        start.map(|c| &c.0)
    }
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// Items of this page.
    pub items: Vec<T>,
    /// Where the next page starts, if there is one.
    pub next: Option<Cursor>,
}

impl<T> From<store::Page<T>> for Page<T> {
    fn from(page: store::Page<T>) -> Self {
        Self {
            items: page.items,
            next: page.next.map(Cursor),
        }
    }
}

impl<T> Page<T> {
    /// The same page with each item mapped.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next: self.next,
        }
    }
}

/// Most months one ranged read over a month-partitioned index may span.
const MAX_MONTHS: i64 = 24;

/// The days from `from` to `to`, for a read that visits one partition per month.
///
/// # Errors
/// [`ServiceError::Invalid`] when `to` is before `from` or the range spans more than 24 months.
pub(crate) fn month_range(from: Date, to: Date) -> Result<DateRange, ServiceError> {
    let range =
        DateRange::new(from, to).map_err(|e| ServiceError::Invalid(vec![FieldError::new("to", e.to_string())]))?;
    if range.month_count() > MAX_MONTHS {
        return Err(ServiceError::Invalid(vec![FieldError::new(
            "to",
            "the range may span at most 24 months",
        )]));
    }
    Ok(range)
}

/// What the caller's `If-Match` says the current version must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// `*`: any current version (the resource must exist).
    Any,
    /// `"<n>"`: exactly this version.
    Version(u64),
}

impl Expected {
    /// Whether a resource at `current` satisfies the precondition.
    pub fn admits(self, current: u64) -> bool {
        match self {
            Self::Any => true,
            Self::Version(v) => v == current,
        }
    }
}

/// One invalid field of an input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// JSON path of the field, e.g. `analytes[0].unit`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    /// A field error.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Why a use case did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The thing asked for does not exist (or the caller may not know it does).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The resource's state forbids this (it exists already, the slot is full, a result is recorded, ...).
    #[error("{detail}")]
    Conflict {
        /// Machine-readable kind, the suffix of the problem type (e.g. `slot-full`).
        kind: &'static str,
        /// What happened.
        detail: String,
    },
    /// The caller's version (If-Match) is not the stored one.
    #[error("the resource has changed since it was read")]
    VersionMismatch,
    /// The change needs the caller's version (If-Match) and none was given.
    #[error("the current version is required (If-Match)")]
    PreconditionRequired,
    /// The input breaks a rule; each field says which.
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    /// The engine is unreachable or throttling; retry later.
    #[error("storage unavailable")]
    Unavailable(String),
    /// The table is gone: nothing works until an operator recreates it (`medbook migrate`).
    #[error("table not found")]
    TableMissing,
    /// A defect or malformed data: logged, never shown.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ServiceError {
    /// A conflict of `kind`.
    pub fn conflict(kind: &'static str, detail: impl Into<String>) -> Self {
        Self::Conflict {
            kind,
            detail: detail.into(),
        }
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(detail) => Self::Unavailable(detail),
            StoreError::TableMissing => Self::TableMissing,
            StoreError::ForeignKey => Self::Invalid(vec![FieldError::new("cursor", "does not belong to this list")]),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<garde::Report> for ServiceError {
    fn from(report: garde::Report) -> Self {
        Self::Invalid(
            report
                .iter()
                .map(|(path, error)| FieldError::new(camel_path(&path.to_string()), error.message().to_owned()))
                .collect(),
        )
    }
}

/// Rust field paths (`analytes[0].reference_range`) in the API's camelCase (`analytes[0].referenceRange`).
fn camel_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut upper = false;
    for c in path.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_month_range_runs_forwards_and_spans_at_most_24_months() {
        use time::macros::date;
        assert!(month_range(date!(2026 - 11 - 02), date!(2026 - 11 - 01)).is_err());
        assert!(month_range(date!(2026 - 01 - 01), date!(2028 - 01 - 01)).is_err());
        assert!(month_range(date!(2026 - 01 - 01), date!(2027 - 12 - 31)).is_ok());
    }

    #[test]
    fn field_paths_are_camel_case() {
        assert_eq!(
            camel_path("analytes[0].reference_range.low"),
            "analytes[0].referenceRange.low"
        );
        assert_eq!(camel_path("given_name"), "givenName");
    }
}
