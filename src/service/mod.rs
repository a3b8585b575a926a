//! Use cases and rules. Services take domain types, call the store, and return [`ServiceError`]s that the
//! API maps to HTTP; they know neither HTTP nor the SDK.

pub mod audit;
pub mod bookings;
pub mod catalog;
pub mod health;
pub mod patients;
pub mod results;

use std::future::Future;

use time::Date;

use crate::store::{Page, PageKey, StoreError};

/// Page-key entry naming the month partition a month-paged list continues in.
const MONTH_KEY: &str = "_month";

/// Most months one ranged read may span.
const MAX_MONTHS: usize = 24;

/// The months (`YYYY-MM`) from `from` to `to`, in order.
///
/// # Errors
/// [`ServiceError::Invalid`] when `to` is before `from` or the range spans more than 24 months.
pub(crate) fn months_in_range(from: Date, to: Date) -> Result<Vec<String>, ServiceError> {
    if to < from {
        return Err(ServiceError::Invalid(vec![FieldError::new(
            "to",
            "must not be before `from`",
        )]));
    }
    let months = audit::months_between(from, to);
    if months.len() > MAX_MONTHS {
        return Err(ServiceError::Invalid(vec![FieldError::new(
            "to",
            "the range may span at most 24 months",
        )]));
    }
    Ok(months)
}

/// One page of a list kept in month partitions, read in the order of `months`: each page is one Query
/// (`query(month, resume_key)`) on one month; the page key carries the month, so the next page continues
/// there, and moves on to the next month when one is exhausted (a page can then hold fewer items than asked).
///
/// # Errors
/// [`ServiceError::Invalid`] for a cursor of another range; engine failures.
pub(crate) async fn month_paged<T, F, Fut>(
    months: &[String],
    start: Option<&PageKey>,
    query: F,
) -> Result<Page<T>, ServiceError>
where
    F: FnOnce(String, Option<PageKey>) -> Fut,
    Fut: Future<Output = Result<Page<T>, StoreError>>,
{
    let month = start
        .and_then(|k| k.0.get(MONTH_KEY).cloned())
        .unwrap_or_else(|| months[0].clone());
    let Some(position) = months.iter().position(|m| *m == month) else {
        return Err(ServiceError::Invalid(vec![FieldError::new(
            "cursor",
            "does not belong to this range",
        )]));
    };
    let resume = start.filter(|k| k.0.len() > 1).cloned();
    let page = query(month.clone(), resume).await?;
    let next = match page.next {
        Some(mut key) => {
            key.0.insert(MONTH_KEY.to_owned(), month);
            Some(key)
        }
        None => months
            .get(position + 1)
            .map(|m| PageKey([(MONTH_KEY.to_owned(), m.clone())].into())),
    };
    Ok(Page {
        items: page.items,
        next,
    })
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
    fn field_paths_are_camel_case() {
        assert_eq!(
            camel_path("analytes[0].reference_range.low"),
            "analytes[0].referenceRange.low"
        );
        assert_eq!(camel_path("given_name"), "givenName");
    }
}
