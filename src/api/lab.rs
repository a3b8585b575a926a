//! The lab's and doctors' views: slots, the day's schedule, tests by type, the verification queue and the
//! review worklist.

use axum::extract::{OriginalUri, State};
use serde::{Deserialize, Serialize};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    AppState,
    audit::AuditContext,
    bookings::BookingSummaryView,
    error::ApiError,
    extract::{Path, Query},
    paging::{ListRequest, Page, PageParams, required_date},
};
use crate::{
    auth::{Caller, Role},
    domain::{
        booking::{ResultStatus, TestStatus, WorklistEntry},
        timefmt,
    },
};

/// Lab and doctor routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(slots))
        .routes(routes!(schedule))
        .routes(routes!(worklist))
        .routes(routes!(verification_queue))
        .routes(routes!(tests_by_type))
}

/// A lab view shows several patients' data at once: each patient on the page gets one audit event, written
/// in the background like any read (BatchWriteItem, 25 events a call).
fn record_views(state: &AppState, audit: &AuditContext, caller: &Caller, patients: impl Iterator<Item = Uuid>) {
    let mut seen = std::collections::HashSet::new();
    let events = patients
        .filter(|p| seen.insert(*p))
        .map(|patient| audit.draft(caller, axum::http::StatusCode::OK).event(patient))
        .collect();
    state.audit.record_many_detached(events);
}

/// One slot of a day.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = crate::examples::slot)]
pub struct SlotView {
    /// Slot start (UTC).
    #[schema(example = "2026-12-01T07:15:00Z")]
    pub start: String,
    /// Slot start in the site's local time, with the offset in force then.
    #[schema(example = "2026-12-01T07:15:00+00:00")]
    pub local_start: String,
    /// Places.
    #[schema(example = 4)]
    pub capacity: u32,
    /// Places bookings have.
    #[schema(example = 1)]
    pub booked: u32,
    /// Places live holds have (an expired hold is free at once).
    #[schema(example = 0)]
    pub held: u32,
    /// Places free.
    #[schema(example = 3)]
    pub available: u32,
}

impl From<crate::service::sites::SlotAvailability> for SlotView {
    fn from(s: crate::service::sites::SlotAvailability) -> Self {
        Self {
            start: s.slot.start.to_string(),
            local_start: s.slot.local_start(),
            capacity: s.capacity,
            booked: s.booked,
            held: s.held,
            available: s.available,
        }
    }
}

/// A day.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DayParams {
    /// The day, `YYYY-MM-DD` (the site's local date).
    #[param(format = Date, example = "2026-12-01")]
    pub date: Option<String>,
}

/// A site's day.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SiteDayParams {
    /// Site code; the default site (`MAIN`) when absent.
    #[param(example = "MAIN")]
    pub site: Option<String>,
    /// The day, `YYYY-MM-DD` (the site's local date).
    #[param(format = Date, example = "2026-12-01")]
    pub date: Option<String>,
}

/// Every slot of the default site's day with its free places (any authenticated caller); one Query. The same
/// as `GET /v1/sites/MAIN/slots`.
#[utoipa::path(
    get,
    path = "/v1/slots",
    tag = "lab",
    security(("bearer" = [])),
    params(DayParams),
    responses(
        (status = 200, description = "the day's slots", body = [SlotView]),
        (status = 400, description = "bad parameter"),
        (status = 401, description = "no valid token"),
        (status = 422, description = "missing or invalid date"),
    )
)]
async fn slots(
    State(state): State<AppState>,
    _caller: Caller,
    Query(params): Query<DayParams>,
) -> Result<axum::Json<Vec<SlotView>>, ApiError> {
    let date = required_date("date", params.date.as_deref())?;
    let slots = state.bookings.slots(date).await?;
    Ok(axum::Json(slots.into_iter().map(SlotView::from).collect()))
}

/// A site's day's bookings in slot order (lab, doctor, admin): one Query on the day index.
#[utoipa::path(
    get,
    path = "/v1/schedule",
    tag = "lab",
    security(("bearer" = [])),
    params(SiteDayParams, PageParams),
    responses(
        (status = 200, description = "the day's bookings", body = Page<BookingSummaryView>),
        (status = 400, description = "bad parameter or cursor"),
        (status = 401, description = "no valid token"),
        (status = 403, description = "role may not see the schedule"),
        (status = 422, description = "missing or invalid date"),
    )
)]
async fn schedule(
    State(state): State<AppState>,
    caller: Caller,
    audit: AuditContext,
    OriginalUri(uri): OriginalUri,
    Query(params): Query<SiteDayParams>,
    Query(page): Query<PageParams>,
) -> Result<axum::Json<Page<BookingSummaryView>>, ApiError> {
    caller.require(&[Role::Lab, Role::Doctor, Role::Admin])?;
    let date = required_date("date", params.date.as_deref())?;
    let filters = [("date", Some(timefmt::date(date))), ("site", params.site.clone())];
    let list = ListRequest::new(&state, uri.path(), &filters, &page, 100)?;
    let page = state
        .bookings
        .schedule(params.site.as_deref(), date, list.limit(), list.start())
        .await?;
    record_views(&state, &audit, &caller, page.items.iter().map(|b| b.patient_id));
    Ok(axum::Json(list.page(&state, page, BookingSummaryView::from)))
}

/// A result awaiting verification or review.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = crate::examples::worklist_item)]
pub struct WorklistItem {
    /// Patient.
    pub patient_id: Uuid,
    /// Booking.
    pub booking_id: Uuid,
    /// Test.
    pub test_id: Uuid,
    /// Test type code.
    #[schema(example = "CBC")]
    pub test_type_code: String,
    /// The result's status (`preliminary`, or `corrected`/`amended` when a correction awaits verification).
    pub status: ResultStatus,
    /// Whether any value is critical.
    pub critical: bool,
    /// Whether any value failed its delta check.
    pub delta_flag: bool,
    /// When the result was recorded.
    pub recorded_at: String,
    /// When it was verified (the doctors' worklist).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified_at: Option<String>,
}

impl From<WorklistEntry> for WorklistItem {
    fn from(e: WorklistEntry) -> Self {
        Self {
            patient_id: e.patient_id,
            booking_id: e.booking_id,
            test_id: e.test_id,
            test_type_code: e.test_type_code,
            status: e.status,
            critical: e.critical,
            delta_flag: e.delta_flag,
            recorded_at: e.recorded_at,
            verified_at: e.verified_at,
        }
    }
}

/// Verified results awaiting a doctor's review, critical first, then oldest verified first (doctor, admin):
/// one Query on the sparse index.
#[utoipa::path(
    get,
    path = "/v1/worklist",
    tag = "results",
    security(("bearer" = [])),
    params(PageParams),
    responses(
        (status = 200, description = "a page of the worklist", body = Page<WorklistItem>),
        (status = 400, description = "bad parameter or cursor"),
        (status = 401, description = "no valid token"),
        (status = 403, description = "role may not see the worklist"),
        (status = 422, description = "invalid limit"),
    )
)]
async fn worklist(
    State(state): State<AppState>,
    caller: Caller,
    audit: AuditContext,
    OriginalUri(uri): OriginalUri,
    Query(page): Query<PageParams>,
) -> Result<axum::Json<Page<WorklistItem>>, ApiError> {
    caller.require(&[Role::Doctor, Role::Admin])?;
    let list = ListRequest::new(&state, uri.path(), &[], &page, 20)?;
    let page = state.results.worklist(list.limit(), list.start()).await?;
    record_views(&state, &audit, &caller, page.items.iter().map(|e| e.patient_id));
    Ok(axum::Json(list.page(&state, page, WorklistItem::from)))
}

/// Results awaiting verification by a second lab user, critical first, then oldest recorded first (lab,
/// admin): one Query on the other partition of the same sparse index.
#[utoipa::path(
    get,
    path = "/v1/verification-queue",
    tag = "results",
    security(("bearer" = [])),
    params(PageParams),
    responses(
        (status = 200, description = "a page of the verification queue", body = Page<WorklistItem>),
        (status = 400, description = "bad parameter or cursor"),
        (status = 401, description = "no valid token"),
        (status = 403, description = "role may not see the queue"),
        (status = 422, description = "invalid limit"),
    )
)]
async fn verification_queue(
    State(state): State<AppState>,
    caller: Caller,
    audit: AuditContext,
    OriginalUri(uri): OriginalUri,
    Query(page): Query<PageParams>,
) -> Result<axum::Json<Page<WorklistItem>>, ApiError> {
    caller.require(&[Role::Lab, Role::Admin])?;
    let list = ListRequest::new(&state, uri.path(), &[], &page, 20)?;
    let page = state.results.verification_queue(list.limit(), list.start()).await?;
    record_views(&state, &audit, &caller, page.items.iter().map(|e| e.patient_id));
    Ok(axum::Json(list.page(&state, page, WorklistItem::from)))
}

/// A date range.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RangeParams {
    /// First day (inclusive), `YYYY-MM-DD`.
    #[param(format = Date, example = "2026-12-01")]
    pub from: Option<String>,
    /// Last day (inclusive), `YYYY-MM-DD`; at most 24 months after `from`.
    #[param(format = Date, example = "2026-12-31")]
    pub to: Option<String>,
}

/// A booked test of one type.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = crate::examples::typed_test)]
pub struct TypedTestView {
    /// Patient.
    pub patient_id: Uuid,
    /// Booking.
    pub booking_id: Uuid,
    /// Test.
    pub test_id: Uuid,
    /// Slot start.
    pub slot_start: String,
    /// Test type code.
    pub test_type_code: String,
    /// Catalog version booked.
    pub test_type_version: u32,
    /// State.
    pub status: TestStatus,
}

/// Booked tests of one type between two days (lab, doctor, admin). Each page is one Query on one month's
/// partition of the tests-by-type index; a range over several months continues month by month through the
/// cursor (a page may then hold fewer items than `limit`).
#[utoipa::path(
    get,
    path = "/v1/test-types/{code}/tests",
    tag = "lab",
    security(("bearer" = [])),
    params(("code" = String, Path, description = "test type code", example = "CBC"), RangeParams, PageParams),
    responses(
        (status = 200, description = "a page of booked tests", body = Page<TypedTestView>),
        (status = 400, description = "bad parameter or cursor"),
        (status = 401, description = "no valid token"),
        (status = 403, description = "role may not see this"),
        (status = 422, description = "missing or invalid range"),
    )
)]
async fn tests_by_type(
    State(state): State<AppState>,
    caller: Caller,
    audit: AuditContext,
    Path(code): Path<String>,
    OriginalUri(uri): OriginalUri,
    Query(params): Query<RangeParams>,
    Query(page): Query<PageParams>,
) -> Result<axum::Json<Page<TypedTestView>>, ApiError> {
    caller.require(&[Role::Lab, Role::Doctor, Role::Admin])?;
    let from = required_date("from", params.from.as_deref())?;
    let to = required_date("to", params.to.as_deref())?;
    // The cursor carries a month of this range: bind it to the range as well as the path.
    let filters = [("from", Some(timefmt::date(from))), ("to", Some(timefmt::date(to)))];
    let list = ListRequest::new(&state, uri.path(), &filters, &page, 20)?;
    let page = state
        .bookings
        .tests_by_type(&code, from, to, list.limit(), list.start())
        .await?;
    record_views(&state, &audit, &caller, page.items.iter().map(|t| t.patient_id));
    Ok(axum::Json(list.page(&state, page, |t| TypedTestView {
        patient_id: t.patient_id,
        booking_id: t.booking_id,
        test_id: t.test.id,
        slot_start: t.slot_start.to_string(),
        test_type_code: t.test.test_type_code,
        test_type_version: t.test.test_type_version,
        status: t.test.status,
    })))
}
