//! `/v1/events`: the domain-event feed (admin), for systems that follow what happens in medbook.

use axum::extract::{OriginalUri, State};
use serde::{Deserialize, Serialize};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    AppState,
    error::ApiError,
    extract::Query,
    paging::{ListRequest, PageParams, date_param},
};
use crate::{
    auth::{Caller, Role},
    domain::event::{DomainEvent, EventType},
};

/// Event routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(events))
}

/// One domain event: ids and statuses, never clinical values.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({
    "id": "0194f3a2-7c1e-7d2a-9b1f-3c4d5e6f7a8b", "type": "booking.created",
    "occurredAt": "2026-12-01T09:00:00.000Z", "patientId": "0194f3a2-7c1e-7d2a-9b1f-3c4d5e6f0000",
    "bookingId": "0194f3a2-7c1e-7d2a-9b1f-3c4d5e6f1111",
    "data": {"site": "MAIN", "slotStart": "2026-12-02T08:00:00Z", "tests": "2"}
}))]
pub struct EventView {
    /// Event id (the same on every delivery of this event).
    pub id: Uuid,
    /// What happened.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// When.
    pub occurred_at: String,
    /// Whose (absent for an event about medbook itself: `webhook.disabled`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patient_id: Option<Uuid>,
    /// The booking, for booking and result events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub booking_id: Option<Uuid>,
    /// The booked test, for result events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_id: Option<Uuid>,
    /// Ids and statuses that say more.
    pub data: std::collections::BTreeMap<String, String>,
}

impl From<DomainEvent> for EventView {
    fn from(e: DomainEvent) -> Self {
        Self {
            id: e.id,
            kind: e.kind,
            occurred_at: e.occurred_at,
            patient_id: e.patient_id,
            booking_id: e.booking_id,
            test_id: e.test_id,
            data: e.data,
        }
    }
}

/// A page of the feed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"items": [], "nextCursor": "AbC…", "caughtUp": true}))]
pub struct EventPage {
    /// The events, in time order.
    pub items: Vec<EventView>,
    /// Where the next page starts; always there (caught up: where to poll from later).
    pub next_cursor: String,
    /// Whether this page reached the end of the feed (then wait, and ask again with `nextCursor`). A page can
    /// hold fewer events than the limit, or none, before the end: a type filter, a day without events.
    pub caught_up: bool,
}

/// Which events.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventParams {
    /// First day (UTC), `YYYY-MM-DD`; default today; at most the retention period back
    /// (`MEDBOOK_EVENT_RETENTION_DAYS`).
    #[param(format = Date, example = "2026-12-01")]
    pub from: Option<String>,
    /// Only these types, comma-separated (`booking.created,result.released`); default all.
    #[param(max_length = 300, example = "booking.created,result.released")]
    pub types: Option<String>,
}

/// The feed of domain events (admin), in time order: one strongly consistent Query of one day's partition per
/// page. Each event was written in the transaction of the change it tells of, so none is lost and none tells
/// of a change that did not happen. The next cursor is always there: follow it until `caughtUp`, then poll
/// with it later. The feed stays `MEDBOOK_EVENT_SETTLE_MS` (default 10 s) behind now, so a transaction still
/// committing cannot land before a position it handed out, and a cursor keeps working across days for as
/// long as its day's events are kept.
#[utoipa::path(
    get,
    path = "/v1/events",
    tag = "events",
    security(("bearer" = [])),
    params(EventParams, PageParams),
    responses(
        (status = 200, description = "a page of the feed", body = EventPage),
        (status = 400, description = "bad parameter or cursor"),
        (status = 401, description = "no valid token"),
        (status = 403, description = "only an admin reads the feed"),
        (status = 422, description = "an unknown type, `from` outside the retention period, or a cursor whose day's events are no longer kept"),
    )
)]
async fn events(
    State(state): State<AppState>,
    caller: Caller,
    OriginalUri(uri): OriginalUri,
    Query(params): Query<EventParams>,
    Query(page): Query<PageParams>,
) -> Result<axum::Json<EventPage>, ApiError> {
    caller.require(&[Role::Admin])?;
    let from = date_param("from", params.from.as_deref())?;
    let mut types = Vec::new();
    for name in params.types.as_deref().unwrap_or_default().split(',').map(str::trim) {
        if name.is_empty() {
            continue;
        }
        let kind = EventType::parse(name).ok_or_else(|| {
            let known: Vec<&str> = EventType::ALL.iter().map(|t| t.name()).collect();
            ApiError::invalid("types", format!("`{name}` is none of: {}", known.join(", ")))
        })?;
        if !types.contains(&kind) {
            types.push(kind);
        }
    }
    let filters = [("from", params.from.clone()), ("types", params.types.clone())];
    let list = ListRequest::new(&state, uri.path(), &filters, &page, 100)?;
    let (found, caught_up) = state.events.feed(from, types, list.limit(), list.start()).await?;
    let page = list.page(&state, found, EventView::from);
    Ok(axum::Json(EventPage {
        items: page.items,
        next_cursor: page
            .next_cursor
            .ok_or_else(|| ApiError::Internal("a feed page without its next cursor".into()))?,
        caught_up,
    }))
}
