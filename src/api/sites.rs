//! `/v1/sites`: sites in their time zones, their day rules, slots and holds.

use axum::{
    extract::{OriginalUri, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::IntoResponse,
};
use serde::{Deserialize, Serialize};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    AppState,
    audit::AuditContext,
    error::ApiError,
    extract::{IfMatch, Json, Path, Query, etag},
    lab::{DayParams, SlotView},
    paging::{ListRequest, Page, PageParams, date_param, required_date},
};
use crate::{
    auth::{Caller, Role},
    domain::{
        site::{DayRule, Hold, Interval, Site, SiteDefinition, WeeklyHours, local_text},
        timefmt,
    },
    service::sites::{DayEntry, DaySet},
};

/// Site routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_sites, create_site))
        .routes(routes!(get_site, replace_site))
        .routes(routes!(site_slots))
        .routes(routes!(list_days))
        .routes(routes!(set_day, clear_day))
        .routes(routes!(create_hold))
        .routes(routes!(release_hold))
}

/// A site at its current version.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = crate::examples::site)]
pub struct SiteView {
    /// Site code.
    pub code: String,
    /// Display name.
    pub name: String,
    /// IANA time zone; opening hours and dates are local to it.
    pub time_zone: String,
    /// Slot length in minutes.
    pub slot_minutes: u32,
    /// Patients per slot.
    pub capacity: u32,
    /// Opening hours per weekday (local time).
    pub opening_hours: WeeklyHours,
    /// How long before a slot starts a patient may book, move or cancel it, in minutes.
    pub minimum_notice_minutes: u32,
    /// How many days ahead a slot may be booked.
    pub booking_horizon_days: u32,
    /// How long a hold keeps a place, in seconds.
    pub hold_seconds: u32,
    /// Version; also the ETag.
    pub version: u64,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

impl From<Site> for SiteView {
    fn from(s: Site) -> Self {
        let d = s.definition;
        Self {
            code: d.code,
            name: d.name,
            time_zone: d.time_zone,
            slot_minutes: d.slot_minutes,
            capacity: d.capacity,
            opening_hours: d.opening_hours,
            minimum_notice_minutes: d.minimum_notice_minutes,
            booking_horizon_days: d.booking_horizon_days,
            hold_seconds: d.hold_seconds,
            version: s.version,
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

/// Every site.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"items": [crate::examples::site()]}))]
pub struct SiteList {
    /// Sites, ordered by code.
    pub items: Vec<SiteView>,
}

fn site_headers(site: &Site, created: bool) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&etag(site.version)) {
        headers.insert(header::ETAG, v);
    }
    if created && let Ok(v) = HeaderValue::from_str(&format!("/v1/sites/{}", site.definition.code)) {
        headers.insert(header::LOCATION, v);
    }
    headers
}

/// Lists every site (no authentication needed). Served from an in-process cache.
#[utoipa::path(
    get,
    path = "/v1/sites",
    tag = "sites",
    responses(
        (status = 200, description = "every site", body = SiteList),
        (status = 503, description = "database unavailable"),
    )
)]
async fn list_sites(State(state): State<AppState>) -> Result<axum::Json<SiteList>, ApiError> {
    let sites = state.sites.all().await?;
    Ok(axum::Json(SiteList {
        items: sites.iter().cloned().map(SiteView::from).collect(),
    }))
}

/// One site (no authentication needed).
#[utoipa::path(
    get,
    path = "/v1/sites/{code}",
    tag = "sites",
    params(("code" = String, Path, description = "site code", example = "MAIN")),
    responses(
        (status = 200, description = "the site", body = SiteView, headers(("ETag" = String))),
        (status = 404, description = "no such site"),
    )
)]
async fn get_site(State(state): State<AppState>, Path(code): Path<String>) -> Result<impl IntoResponse, ApiError> {
    let site = state.sites.get(&code).await?;
    Ok((site_headers(&site, false), axum::Json(SiteView::from(site))))
}

/// Adds a site (admin). `timeZone` is an IANA name; opening hours are local to it, per weekday.
#[utoipa::path(
    post,
    path = "/v1/sites",
    tag = "sites",
    security(("bearer" = [])),
    request_body = SiteDefinition,
    responses(
        (status = 201, description = "created", body = SiteView, headers(("Location" = String), ("ETag" = String))),
        (status = 400, description = "malformed JSON"),
        (status = 401, description = "no valid token"),
        (status = 403, description = "not an admin"),
        (status = 409, description = "code exists already (`site-exists`)"),
        (status = 415, description = "not JSON"),
        (status = 422, description = "invalid definition (an unknown time zone, hours that overlap, …)"),
    )
)]
async fn create_site(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<SiteDefinition>, ApiError>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require(&[Role::Admin])?;
    let Json(definition) = body?;
    let site = state.sites.create(definition).await?;
    Ok((
        StatusCode::CREATED,
        site_headers(&site, true),
        axum::Json(SiteView::from(site)),
    ))
}

/// Replaces a site (admin, If-Match). Bookings made keep their slots; new bookings follow the new definition.
#[utoipa::path(
    put,
    path = "/v1/sites/{code}",
    tag = "sites",
    security(("bearer" = [])),
    params(
        ("code" = String, Path, description = "site code", example = "MAIN"),
        ("If-Match" = String, Header, description = "ETag of the current version", example = "\"1\""),
    ),
    request_body = SiteDefinition,
    responses(
        (status = 200, description = "the new version", body = SiteView, headers(("ETag" = String))),
        (status = 400, description = "malformed JSON"),
        (status = 401, description = "no valid token"),
        (status = 403, description = "not an admin"),
        (status = 404, description = "no such site"),
        (status = 412, description = "stale If-Match"),
        (status = 415, description = "not JSON"),
        (status = 422, description = "invalid definition"),
        (status = 428, description = "If-Match missing"),
    )
)]
async fn replace_site(
    State(state): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
    if_match: Result<IfMatch, ApiError>,
    body: Result<Json<SiteDefinition>, ApiError>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require(&[Role::Admin])?;
    let IfMatch(expected) = if_match?;
    let Json(definition) = body?;
    let site = state.sites.replace(&code, expected, definition).await?;
    Ok((site_headers(&site, false), axum::Json(SiteView::from(site))))
}

/// Every slot of a site's local day with its places (any authenticated caller); one Query of the day.
/// `start` is UTC, `localStart` the site's wall-clock time with its offset: across a daylight-saving change the
/// local hours stay and the UTC instants move.
#[utoipa::path(
    get,
    path = "/v1/sites/{code}/slots",
    tag = "sites",
    security(("bearer" = [])),
    params(("code" = String, Path, description = "site code", example = "MAIN"), DayParams),
    responses(
        (status = 200, description = "the day's slots", body = SlotList),
        (status = 400, description = "bad parameter"),
        (status = 401, description = "no valid token"),
        (status = 404, description = "no such site"),
        (status = 422, description = "missing or invalid date"),
    )
)]
async fn site_slots(
    State(state): State<AppState>,
    _caller: Caller,
    Path(code): Path<String>,
    Query(params): Query<DayParams>,
) -> Result<axum::Json<SlotList>, ApiError> {
    let date = required_date("date", params.date.as_deref())?;
    let slots = state.sites.slots(&code, date).await?;
    Ok(axum::Json(SlotList {
        items: slots.into_iter().map(SlotView::from).collect(),
    }))
}

/// A site's slots of one day.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"items": [crate::examples::slot()]}))]
pub struct SlotList {
    /// The slots, in time order.
    pub items: Vec<SlotView>,
}

/// A day rule of a site.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"date": "2026-12-24", "closed": true, "version": 1, "bookingsLeft": []}))]
pub struct DayView {
    /// The site's local date.
    #[schema(format = Date, example = "2026-12-24")]
    pub date: String,
    /// Closed all day.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub closed: bool,
    /// The day's opening hours instead of the weekday's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opening_hours: Option<Vec<Interval>>,
    /// The day's capacity instead of the site's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity: Option<u32>,
    /// Version of the rule.
    pub version: u64,
    /// Slots that keep bookings outside the rule (a change made with `force=true`): nothing is cancelled
    /// silently.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bookings_left: Option<Vec<BookingsLeft>>,
}

/// A slot that keeps bookings outside a day rule.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"slotStart": "2026-12-24T08:00:00Z", "bookings": 2}))]
pub struct BookingsLeft {
    /// Slot start (UTC).
    pub slot_start: String,
    /// Bookings it holds.
    pub bookings: u32,
}

impl DayView {
    fn new(entry: DayEntry, left: Option<Vec<BookingsLeft>>) -> Self {
        Self {
            date: timefmt::date(entry.date),
            closed: entry.rule.closed,
            opening_hours: entry.rule.opening_hours,
            capacity: entry.rule.capacity,
            version: entry.version,
            bookings_left: left,
        }
    }
}

impl From<DaySet> for DayView {
    fn from(set: DaySet) -> Self {
        let left = set
            .bookings_left
            .into_iter()
            .map(|(start, bookings)| BookingsLeft {
                slot_start: start.to_string(),
                bookings,
            })
            .collect();
        Self::new(set.entry, Some(left))
    }
}

/// `?force=true` keeps the bookings a day rule leaves outside.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ForceParams {
    /// Apply the rule even though bookings of that day fall outside it (they stay, and are reported).
    pub force: Option<bool>,
}

/// A range of days.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DaysParams {
    /// First day, `YYYY-MM-DD`.
    #[param(format = Date, example = "2026-12-01")]
    pub from: Option<String>,
    /// Last day, `YYYY-MM-DD`.
    #[param(format = Date, example = "2026-12-31")]
    pub to: Option<String>,
}

/// Sets a rule for one local day of a site (admin): `{closed: true}`, or `openingHours` and/or `capacity`. A
/// rule that leaves bookings outside is refused (409 `day-has-bookings`) unless `?force=true`, which keeps
/// them and lists them in `bookingsLeft`.
#[utoipa::path(
    put,
    path = "/v1/sites/{code}/days/{date}",
    tag = "sites",
    security(("bearer" = [])),
    params(
        ("code" = String, Path, description = "site code", example = "MAIN"),
        ("date" = String, Path, description = "the site's local date", example = "2026-12-24"),
        ForceParams,
    ),
    request_body = DayRule,
    responses(
        (status = 200, description = "the rule", body = DayView),
        (status = 400, description = "malformed JSON or parameter"),
        (status = 401, description = "no valid token"),
        (status = 403, description = "not an admin"),
        (status = 404, description = "no such site"),
        (status = 409, description = "bookings would fall outside the rule (`day-has-bookings`)"),
        (status = 415, description = "not JSON"),
        (status = 422, description = "invalid rule or date"),
    )
)]
async fn set_day(
    State(state): State<AppState>,
    caller: Caller,
    Path((code, date)): Path<(String, String)>,
    Query(force): Query<ForceParams>,
    body: Result<Json<DayRule>, ApiError>,
) -> Result<axum::Json<DayView>, ApiError> {
    caller.require(&[Role::Admin])?;
    let date = required_date("date", Some(&date))?;
    let Json(rule) = body?;
    let set = state
        .sites
        .set_day(&code, date, rule, force.force.unwrap_or(false))
        .await?;
    Ok(axum::Json(DayView::from(set)))
}

/// Removes a day's rule (admin): the weekly hours apply again.
#[utoipa::path(
    delete,
    path = "/v1/sites/{code}/days/{date}",
    tag = "sites",
    security(("bearer" = [])),
    params(
        ("code" = String, Path, description = "site code", example = "MAIN"),
        ("date" = String, Path, description = "the site's local date", example = "2026-12-24"),
    ),
    responses(
        (status = 204, description = "removed"),
        (status = 400, description = "malformed path"),
        (status = 401, description = "no valid token"),
        (status = 403, description = "not an admin"),
        (status = 404, description = "no such site or no rule that day"),
        (status = 422, description = "invalid date"),
    )
)]
async fn clear_day(
    State(state): State<AppState>,
    caller: Caller,
    Path((code, date)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    caller.require(&[Role::Admin])?;
    let date = required_date("date", Some(&date))?;
    state.sites.clear_day(&code, date).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A site's day rules from `from` to `to` (lab, admin); one Query per page.
#[utoipa::path(
    get,
    path = "/v1/sites/{code}/days",
    tag = "sites",
    security(("bearer" = [])),
    params(("code" = String, Path, description = "site code", example = "MAIN"), DaysParams, PageParams),
    responses(
        (status = 200, description = "a page of day rules", body = Page<DayView>),
        (status = 400, description = "bad parameter or cursor"),
        (status = 401, description = "no valid token"),
        (status = 403, description = "role may not see day rules"),
        (status = 404, description = "no such site"),
        (status = 422, description = "invalid range"),
    )
)]
async fn list_days(
    State(state): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
    OriginalUri(uri): OriginalUri,
    Query(params): Query<DaysParams>,
    Query(page): Query<PageParams>,
) -> Result<axum::Json<Page<DayView>>, ApiError> {
    caller.require(&[Role::Lab, Role::Admin])?;
    let from = date_param("from", params.from.as_deref())?;
    let to = date_param("to", params.to.as_deref())?;
    let filters = [("from", from.map(timefmt::date)), ("to", to.map(timefmt::date))];
    let list = ListRequest::new(&state, uri.path(), &filters, &page, 20)?;
    let days = state.sites.days(&code, from, to, list.limit(), list.start()).await?;
    Ok(axum::Json(list.page(&state, days, |entry| DayView::new(entry, None))))
}

/// A hold request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"slotStart": "2026-12-01T07:15:00Z", "patientId": "01a2211b-c410-77bd-aaa8-8ebafa84bbb9"}))]
pub struct CreateHoldBody {
    /// Start of one of the site's slots (RFC 3339).
    #[schema(format = DateTime, max_length = 64)]
    pub slot_start: String,
    /// For whom (a patient holds only for themself).
    pub patient_id: Uuid,
}

/// A hold on one place of a slot.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"id": "01a2211b-c460-76bf-9070-8e02374c4abc", "site": "MAIN", "slotStart": "2026-12-01T07:15:00Z",
    "localSlotStart": "2026-12-01T07:15:00+00:00", "patientId": "01a2211b-c410-77bd-aaa8-8ebafa84bbb9",
    "expiresAt": "2026-12-01T06:05:00Z"}))]
pub struct HoldView {
    /// Hold id: book with it as `holdId`.
    pub id: Uuid,
    /// Site code.
    pub site: String,
    /// Slot start (UTC).
    pub slot_start: String,
    /// Slot start in the site's local time.
    pub local_slot_start: String,
    /// For whom.
    pub patient_id: Uuid,
    /// When the place is free again unless booked (UTC, to the second).
    pub expires_at: String,
}

impl From<Hold> for HoldView {
    fn from(h: Hold) -> Self {
        let expires =
            time::OffsetDateTime::from_unix_timestamp(h.expires_at).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        Self {
            id: h.id,
            site: h.site,
            slot_start: h.slot.start.to_string(),
            local_slot_start: local_text(h.slot.start.at(), h.slot.offset_seconds),
            patient_id: h.patient_id,
            expires_at: timefmt::second(expires),
        }
    }
}

/// Holds one place of a slot for a patient for the site's `holdSeconds` (the patient themself, lab, admin):
/// the place counts as taken until then, and then is free at once, without any cleanup. A patient holds one
/// place per site at a time.
#[utoipa::path(
    post,
    path = "/v1/sites/{code}/holds",
    tag = "sites",
    security(("bearer" = [])),
    params(("code" = String, Path, description = "site code", example = "MAIN")),
    request_body = CreateHoldBody,
    responses(
        (status = 201, description = "held", body = HoldView),
        (status = 400, description = "malformed JSON"),
        (status = 401, description = "no valid token"),
        (status = 403, description = "role may not hold"),
        (status = 404, description = "no such site, or not your patient id"),
        (status = 409, description = "no free place (`slot-full`), or the patient holds a place at this site already (`already-holding`)"),
        (status = 415, description = "not JSON"),
        (status = 422, description = "not a slot the site offers"),
    )
)]
async fn create_hold(
    State(state): State<AppState>,
    caller: Caller,
    audit: AuditContext,
    Path(code): Path<String>,
    body: Result<Json<CreateHoldBody>, ApiError>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require(&[Role::Patient, Role::Lab, Role::Admin])?;
    let Json(body) = body?;
    caller.require_patient_access(body.patient_id, &[Role::Patient, Role::Lab, Role::Admin])?;
    let start = timefmt::parse_instant(&body.slot_start)
        .ok_or_else(|| ApiError::invalid("slotStart", "must be an RFC 3339 date-time, e.g. 2026-12-01T07:15:00Z"))?;
    let draft = audit.draft(&caller, StatusCode::CREATED);
    let hold = state
        .sites
        .hold(&code, start, body.patient_id, caller.role != Role::Patient, &draft)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(HoldView::from(hold))))
}

/// Releases a hold (its patient, lab, admin): the place is free at once.
#[utoipa::path(
    delete,
    path = "/v1/sites/{code}/holds/{holdId}",
    tag = "sites",
    security(("bearer" = [])),
    params(
        ("code" = String, Path, description = "site code", example = "MAIN"),
        ("holdId" = Uuid, Path, description = "hold id"),
    ),
    responses(
        (status = 204, description = "released"),
        (status = 400, description = "malformed hold id"),
        (status = 401, description = "no valid token"),
        (status = 404, description = "no such hold (or not yours)"),
    )
)]
async fn release_hold(
    State(state): State<AppState>,
    caller: Caller,
    Path((code, hold_id)): Path<(String, Uuid)>,
) -> Result<StatusCode, ApiError> {
    caller.require(&[Role::Patient, Role::Lab, Role::Admin])?;
    let hold = state.sites.find_hold(&code, hold_id).await?;
    caller.require_patient_access(hold.patient_id, &[Role::Patient, Role::Lab, Role::Admin])?;
    state.sites.release(&hold).await?;
    Ok(StatusCode::NO_CONTENT)
}
