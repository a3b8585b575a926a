//! Paging, the same for every list: `limit` and `cursor` parameters, one page schema, and cursors bound to
//! the list they came from.
//!
//! A list request names its path and the value of every filter; [`ListRequest`] binds a cursor to all of
//! them, so a cursor taken from `?status=booked` is refused (400) on `?status=cancelled`, on another
//! patient's list, or on another endpoint. Each page is one Query + Limit + ExclusiveStartKey in the store.

use serde::{Deserialize, Serialize};
use time::Date;

use super::{AppState, error::ApiError};
use crate::{
    domain::timefmt,
    service::{Cursor, Page as ServicePage},
};

/// Largest page.
pub const MAX_LIMIT: u32 = 100;

/// The page parameters every list takes (next to its own filters).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Page size, 1 to 100 (default 20; the schedule's default is 100).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// Cursor from the previous page of the same list and filters.
    #[param(max_length = 2048)]
    pub cursor: Option<String>,
}

/// A page of a list.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"items": [], "nextCursor": null}))]
pub struct Page<T: utoipa::ToSchema> {
    /// The items, in the list's order.
    pub items: Vec<T>,
    /// Cursor of the next page, absent on the last.
    pub next_cursor: Option<String>,
}

/// Parses an optional `YYYY-MM-DD` query parameter.
///
/// # Errors
/// 422 naming `field`.
pub fn date_param(field: &str, value: Option<&str>) -> Result<Option<Date>, ApiError> {
    value
        .map(|v| timefmt::parse_date(v).ok_or_else(|| ApiError::invalid(field, "must be a date YYYY-MM-DD")))
        .transpose()
}

/// Parses a required `YYYY-MM-DD` query parameter.
///
/// # Errors
/// 422 naming `field`.
pub fn required_date(field: &str, value: Option<&str>) -> Result<Date, ApiError> {
    date_param(field, value)?.ok_or_else(|| ApiError::invalid(field, "is required (YYYY-MM-DD)"))
}

/// One page request of a list: its size, where it starts, and the scope its cursors are bound to.
#[derive(Debug)]
pub struct ListRequest {
    scope: String,
    limit: i32,
    start: Option<Cursor>,
}

impl ListRequest {
    /// A request on `path` whose filters have the values in `filters` (`None`: not given), for the page
    /// `page` names (`default_limit` items when it names no limit).
    ///
    /// # Errors
    /// 422 for a limit outside 1 to 100; 400 for a cursor of another list or filter.
    pub fn new(
        state: &AppState,
        path: &str,
        filters: &[(&str, Option<String>)],
        page: &PageParams,
        default_limit: u32,
    ) -> Result<Self, ApiError> {
        let limit = match page.limit.unwrap_or(default_limit) {
            n @ 1..=MAX_LIMIT => n as i32,
            _ => return Err(ApiError::invalid("limit", "must be between 1 and 100")),
        };
        let mut scope = path.to_owned();
        for (name, value) in filters {
            // A NUL marks an absent filter: no query value can hold one, so absent never equals empty.
            scope.push('\n');
            scope.push_str(name);
            scope.push('=');
            scope.push_str(value.as_deref().unwrap_or("\0"));
        }
        let start = page
            .cursor
            .as_deref()
            .map(|c| {
                state
                    .cursors
                    .open(&scope, c)
                    .and_then(|bytes| Cursor::from_bytes(&bytes))
            })
            .map(|c| c.ok_or_else(invalid_cursor))
            .transpose()?;
        Ok(Self { scope, limit, start })
    }

    /// Page size.
    pub fn limit(&self) -> i32 {
        self.limit
    }

    /// Where the page starts.
    pub fn start(&self) -> Option<&Cursor> {
        self.start.as_ref()
    }

    /// The sealed cursor of the page after one that ended at `next`, bound to this list.
    pub fn next_cursor(&self, state: &AppState, next: Option<Cursor>) -> Option<String> {
        next.map(|c| state.cursors.seal(&self.scope, &c.to_bytes()))
    }

    /// The response page: each item mapped by `map`, and the next cursor bound to this list.
    pub fn page<T, V: utoipa::ToSchema>(
        &self,
        state: &AppState,
        page: ServicePage<T>,
        map: impl FnMut(T) -> V,
    ) -> Page<V> {
        Page {
            items: page.items.into_iter().map(map).collect(),
            next_cursor: self.next_cursor(state, page.next),
        }
    }
}

/// utoipa writes each `Page<T>` (`Page_T` in the spec) with `T`'s schema inlined; this points its items at
/// `T`'s own schema instead and gives the page an example made of `T`'s, so every list reads like the others.
pub(super) fn reference_page_items(openapi: &mut utoipa::openapi::OpenApi) {
    let Ok(mut spec) = serde_json::to_value(&*openapi) else {
        return;
    };
    let Some(schemas) = spec.pointer_mut("/components/schemas").and_then(|s| s.as_object_mut()) else {
        return;
    };
    let pages: Vec<String> = schemas.keys().filter(|k| k.starts_with("Page_")).cloned().collect();
    for page in pages {
        let item = page.trim_start_matches("Page_");
        let example = schemas.get(item).and_then(|s| s.get("example")).cloned();
        if let Some(schema) = schemas.get_mut(&page) {
            schema["properties"]["items"]["items"] =
                serde_json::json!({"$ref": format!("#/components/schemas/{item}")});
            if let Some(example) = example {
                schema["example"] =
                    serde_json::json!({"items": [example], "nextCursor": "eyJrIjp7Li4ufX0.c2lnbmF0dXJl"});
            }
        }
    }
    if let Ok(rewritten) = serde_json::from_value(spec) {
        *openapi = rewritten;
    }
}

fn invalid_cursor() -> ApiError {
    ApiError::BadRequest("cursor: not a cursor of this list; start again without it".into())
}
