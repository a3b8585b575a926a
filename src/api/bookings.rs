//! `/v1/patients/{patientId}/bookings`: booking tests into slots.

use axum::{
    extract::{OriginalUri, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use garde::Validate;
use serde::{Deserialize, Serialize};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    AppState,
    audit::{AuditContext, mark_recorded},
    error::ApiError,
    extract::{IfMatch, Json, Path, Query, etag},
    paging::{ListRequest, Page, PageParams, date_param},
    results::ResultView,
};
use crate::{
    auth::{Caller, Role},
    domain::{
        booking::{
            BookedTest, Booking, BookingStatus, BookingSummary, BookingTree, Note, NoteVisibility, Rescheduled,
            TestRef, TestStatus,
        },
        idempotency::IdempotencyKey,
        text, timefmt,
    },
    service::bookings::NewBooking,
};

/// Booking routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_booking, list_bookings))
        .routes(routes!(get_booking))
        .routes(routes!(cancel_booking))
        .routes(routes!(reschedule_booking))
        .routes(routes!(check_in))
        .routes(routes!(no_show))
}

/// Longest accepted Idempotency-Key.
pub const MAX_IDEMPOTENCY_KEY: usize = 128;

/// A booking request.
#[derive(Debug, Deserialize, Validate, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"slotStart": "2026-12-01T07:15:00Z", "tests": ["CBC", "LIPID"], "note": "first visit", "site": "MAIN"}))]
pub struct CreateBookingBody {
    /// Start of the slot (RFC 3339, any offset), one of the site's slots: on its grid in local time, open that
    /// day, at least its minimum notice ahead (staff may book sooner), within its booking horizon.
    #[garde(length(max = 64))]
    #[schema(format = DateTime, max_length = 64)]
    pub slot_start: String,
    /// Test type codes, 1 to 10, no duplicates.
    #[garde(length(min = 1, max = 10), inner(length(min = 1, max = 32)))]
    #[schema(schema_with = test_codes_schema)]
    pub tests: Vec<String>,
    /// A note for the lab.
    #[serde(default)]
    #[garde(inner(length(chars, max = 1000), custom(text::multi_line)))]
    #[schema(max_length = 1000)]
    pub note: Option<String>,
    /// Site code; the default site (`MAIN`) when absent.
    #[serde(default)]
    #[garde(inner(length(min = 1, max = 32)))]
    #[schema(example = "MAIN", max_length = 32)]
    pub site: Option<String>,
    /// A live hold of this patient on this slot (`POST /v1/sites/{code}/holds`): the booking takes the hold's
    /// place, in the same transaction that ends the hold.
    #[serde(default)]
    #[garde(skip)]
    pub hold_id: Option<Uuid>,
}

/// `tests`: 1 to 10 test type codes.
fn test_codes_schema() -> utoipa::openapi::Array {
    use utoipa::openapi::{ArrayBuilder, ObjectBuilder, Type};
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(32))
                .examples(["CBC"]),
        )
        .min_items(Some(1))
        .max_items(Some(10))
        .description(Some("Test type codes, 1 to 10, no duplicates."))
        .build()
}

/// A booked test.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = crate::examples::test_view)]
pub struct TestView {
    /// Test id.
    pub id: Uuid,
    /// Test type code.
    #[schema(example = "CBC")]
    pub test_type_code: String,
    /// Catalog version booked.
    #[schema(example = 1)]
    pub test_type_version: u32,
    /// Test type name at that version.
    #[schema(example = "Complete blood count")]
    pub name: String,
    /// State.
    pub status: TestStatus,
    /// Current result (booking detail only; values hidden from a patient until reviewed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<ResultView>,
    /// Doctors' notes, oldest first (booking detail only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notes: Option<Vec<Note>>,
}

/// A booking.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = crate::examples::booking_view)]
pub struct BookingView {
    /// Booking id.
    pub id: Uuid,
    /// Patient id.
    pub patient_id: Uuid,
    /// Site code.
    #[schema(example = "MAIN")]
    pub site: String,
    /// Slot start (UTC).
    #[schema(example = "2026-12-01T07:15:00Z")]
    pub slot_start: String,
    /// Slot start in the site's local time, with its offset.
    #[schema(example = "2026-12-01T07:15:00+00:00")]
    pub local_slot_start: String,
    /// Where the booking was before each reschedule, oldest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rescheduled_from: Vec<Rescheduled>,
    /// When the lab checked the patient in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checked_in_at: Option<String>,
    /// Accession number given at check-in, unique per site and day.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "MAIN-20261201-0001")]
    pub accession: Option<String>,
    /// State.
    pub status: BookingStatus,
    /// Booked tests.
    pub tests: Vec<TestView>,
    /// Note for the lab.
    pub note: Option<String>,
    /// Version; also the ETag.
    pub version: u64,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

impl BookingView {
    fn new(booking: Booking, detail: impl Fn(&BookedTest) -> (Option<ResultView>, Option<Vec<Note>>)) -> Self {
        Self {
            id: booking.id,
            patient_id: booking.patient_id,
            site: booking.site,
            slot_start: booking.slot_start.to_string(),
            local_slot_start: booking.local_slot_start,
            rescheduled_from: booking.rescheduled_from,
            checked_in_at: booking.checked_in_at,
            accession: booking.accession,
            status: booking.status,
            tests: booking
                .tests
                .iter()
                .map(|t| {
                    let (result, notes) = detail(t);
                    TestView {
                        id: t.id,
                        test_type_code: t.test_type_code.clone(),
                        test_type_version: t.test_type_version,
                        name: t.name.clone(),
                        status: t.status,
                        result,
                        notes,
                    }
                })
                .collect(),
            note: booking.note,
            version: booking.version,
            created_at: booking.created_at,
            updated_at: booking.updated_at,
        }
    }

    /// The booking alone.
    pub fn plain(booking: Booking) -> Self {
        Self::new(booking, |_| (None, None))
    }

    /// The whole tree, as `caller` may see it: a patient sees each result as its release allows, and only
    /// the notes meant for them (`visibility: patient`) once that result is released.
    fn tree(tree: BookingTree, caller: &Caller, results: &crate::service::results::Results) -> Self {
        let BookingTree {
            booking,
            results: current,
            notes,
        } = tree;
        let patient = caller.role == Role::Patient;
        Self::new(booking, |t| {
            let result = current.get(&t.id);
            let release = result.map(|r| results.release_of(r));
            let released = release.is_some_and(|r| r.is_released());
            let notes = notes
                .get(&t.id)
                .into_iter()
                .flatten()
                .filter(|n| !patient || (released && n.visibility == NoteVisibility::Patient))
                .cloned()
                .collect();
            (
                result
                    .zip(release)
                    .map(|(r, release)| ResultView::for_caller(r.clone(), caller, release)),
                Some(notes),
            )
        })
    }
}

/// A booking in a list (its tests without their states).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = crate::examples::booking_summary)]
pub struct BookingSummaryView {
    /// Booking id.
    pub id: Uuid,
    /// Patient id.
    pub patient_id: Uuid,
    /// Site code.
    #[schema(example = "MAIN")]
    pub site: String,
    /// Slot start (UTC).
    #[schema(example = "2026-12-01T07:15:00Z")]
    pub slot_start: String,
    /// Slot start in the site's local time, with its offset.
    #[schema(example = "2026-12-01T07:15:00+00:00")]
    pub local_slot_start: String,
    /// Where the booking was before each reschedule, oldest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rescheduled_from: Vec<Rescheduled>,
    /// When the lab checked the patient in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checked_in_at: Option<String>,
    /// Accession number given at check-in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accession: Option<String>,
    /// State.
    pub status: BookingStatus,
    /// Booked tests.
    pub tests: Vec<TestRef>,
    /// Note for the lab.
    pub note: Option<String>,
    /// Version.
    pub version: u64,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

impl From<BookingSummary> for BookingSummaryView {
    fn from(b: BookingSummary) -> Self {
        Self {
            id: b.id,
            patient_id: b.patient_id,
            site: b.site,
            slot_start: b.slot_start.to_string(),
            local_slot_start: b.local_slot_start,
            rescheduled_from: b.rescheduled_from,
            checked_in_at: b.checked_in_at,
            accession: b.accession,
            status: b.status,
            tests: b.tests,
            note: b.note,
            version: b.version,
            created_at: b.created_at,
            updated_at: b.updated_at,
        }
    }
}

/// List filters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// First day (inclusive), `YYYY-MM-DD`.
    #[param(format = Date, example = "2026-12-01")]
    pub from: Option<String>,
    /// Last day (inclusive), `YYYY-MM-DD`.
    #[param(format = Date, example = "2026-12-31")]
    pub to: Option<String>,
    /// Only bookings in this state.
    pub status: Option<BookingStatus>,
}

fn idempotency_key(headers: &HeaderMap, required: bool) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return if required {
            Err(ApiError::BadRequest(
                "Idempotency-Key header is required: send a unique key per booking".into(),
            ))
        } else {
            Ok(None)
        };
    };
    match value.to_str() {
        Ok(k) if !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY && k.bytes().all(|b| b.is_ascii_graphic()) => {
            Ok(Some(k.to_owned()))
        }
        _ => Err(ApiError::BadRequest(format!(
            "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"
        ))),
    }
}

fn caller_scope(caller: &Caller) -> String {
    if caller.issuer == crate::auth::ISSUER {
        format!("{}:{}", caller.role, caller.sub)
    } else {
        format!("{}:{}:{}", caller.role, caller.issuer, caller.sub)
    }
}

fn booking_headers(booking: &BookingView, location: bool) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&etag(booking.version)) {
        headers.insert(header::ETAG, v);
    }
    if location
        && let Ok(v) = HeaderValue::from_str(&format!("/v1/patients/{}/bookings/{}", booking.patient_id, booking.id))
    {
        headers.insert(header::LOCATION, v);
    }
    headers
}

/// Books tests into a slot (the patient themself, lab, admin). `Idempotency-Key` is required: the same key
/// and body return the first response again; the same key with another body is a 422.
#[utoipa::path(
    post,
    path = "/v1/patients/{patientId}/bookings",
    tag = "bookings",
    security(("bearer" = [])),
    params(
        ("patientId" = Uuid, Path, description = "patient id"),
        ("Idempotency-Key" = String, Header, description = "unique key of this booking request (1-128 visible ASCII)"),
    ),
    request_body = CreateBookingBody,
    responses(
        (status = 201, description = "booked", body = BookingView, headers(("Location" = String), ("ETag" = String))),
        (status = 400, description = "malformed JSON or missing Idempotency-Key"),
        (status = 401, description = "no valid token"),
        (status = 403, description = "role may not book"),
        (status = 404, description = "no such patient (or not yours)"),
        (status = 409, description = "slot full (`slot-full`), this patient has this slot already (`already-booked`), or the hold expired (`hold-expired`)"),
        (status = 415, description = "not JSON"),
        (status = 422, description = "invalid slot, tests, or key reused with another body"),
    )
)]
async fn create_booking(
    State(state): State<AppState>,
    caller: Caller,
    audit: AuditContext,
    Path(patient_id): Path<Uuid>,
    headers: HeaderMap,
    body: Result<Json<CreateBookingBody>, ApiError>,
) -> Result<Response, ApiError> {
    caller.require_patient_access(patient_id, &[Role::Patient, Role::Lab, Role::Admin])?;
    let key = idempotency_key(&headers, true)?.expect("required");
    let Json(body) = body?;
    body.validate()
        .map_err(|r| ApiError::from(crate::service::ServiceError::from(r)))?;
    let slot_start = timefmt::parse_instant(&body.slot_start)
        .ok_or_else(|| ApiError::invalid("slotStart", "must be an RFC 3339 date-time, e.g. 2026-12-01T07:15:00Z"))?;
    let slot = timefmt::second(slot_start);
    let path = format!("/v1/patients/{patient_id}/bookings");
    let fingerprint = IdempotencyKey::new(
        &caller_scope(&caller),
        &key,
        &[
            b"POST",
            path.as_bytes(),
            slot.as_bytes(),
            body.tests.join("\n").as_bytes(),
            body.note.as_deref().unwrap_or("\u{0}").as_bytes(),
            body.site.as_deref().unwrap_or("\u{0}").as_bytes(),
            body.hold_id.map(|h| h.to_string()).unwrap_or_default().as_bytes(),
        ],
    );
    let new = NewBooking {
        slot_start,
        tests: body.tests,
        note: body.note,
        site: body.site,
        hold_id: body.hold_id,
    };
    let draft = audit.draft(&caller, StatusCode::CREATED);
    let staff = caller.role != Role::Patient;
    let booked = state
        .bookings
        .create(patient_id, &fingerprint, new, staff, &draft)
        .await?;
    let view = BookingView::plain(booked.booking);
    let response = (StatusCode::CREATED, booking_headers(&view, true), axum::Json(view)).into_response();
    Ok(mark_recorded(response, !booked.replayed))
}

/// A patient's bookings in slot order (the patient themself, lab, doctor, admin); one Query on the LSI per
/// page.
#[utoipa::path(
    get,
    path = "/v1/patients/{patientId}/bookings",
    tag = "bookings",
    security(("bearer" = [])),
    params(("patientId" = Uuid, Path, description = "patient id"), ListParams, PageParams),
    responses(
        (status = 200, description = "a page of bookings", body = Page<BookingSummaryView>),
        (status = 400, description = "bad parameter or cursor"),
        (status = 401, description = "no valid token"),
        (status = 404, description = "not yours"),
        (status = 422, description = "invalid filter"),
    )
)]
async fn list_bookings(
    State(state): State<AppState>,
    caller: Caller,
    Path(patient_id): Path<Uuid>,
    OriginalUri(uri): OriginalUri,
    Query(params): Query<ListParams>,
    Query(page): Query<PageParams>,
) -> Result<axum::Json<Page<BookingSummaryView>>, ApiError> {
    caller.require_patient_access(patient_id, &[Role::Patient, Role::Lab, Role::Doctor, Role::Admin])?;
    let from = date_param("from", params.from.as_deref())?;
    let to = date_param("to", params.to.as_deref())?;
    let filters = [
        ("from", from.map(timefmt::date)),
        ("to", to.map(timefmt::date)),
        (
            "status",
            params
                .status
                .map(|s| serde_json::to_string(&s).expect("a status serialises")),
        ),
    ];
    let list = ListRequest::new(&state, uri.path(), &filters, &page, 20)?;
    let page = state
        .bookings
        .list(patient_id, from, to, params.status, list.limit(), list.start())
        .await?;
    Ok(axum::Json(list.page(&state, page, BookingSummaryView::from)))
}

/// One booking with its tests, current results and notes: one Query (the patient themself, lab, doctor,
/// admin). A patient sees result values only once a doctor has reviewed them.
#[utoipa::path(
    get,
    path = "/v1/patients/{patientId}/bookings/{bookingId}",
    tag = "bookings",
    security(("bearer" = [])),
    params(("patientId" = Uuid, Path, description = "patient id"), ("bookingId" = Uuid, Path, description = "booking id")),
    responses(
        (status = 200, description = "the booking tree", body = BookingView, headers(("ETag" = String))),
        (status = 400, description = "malformed id"),
        (status = 401, description = "no valid token"),
        (status = 404, description = "no such booking (or not yours)"),
    )
)]
async fn get_booking(
    State(state): State<AppState>,
    caller: Caller,
    Path((patient_id, booking_id)): Path<(Uuid, Uuid)>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require_patient_access(patient_id, &[Role::Patient, Role::Lab, Role::Doctor, Role::Admin])?;
    let view = BookingView::tree(
        state.bookings.tree(patient_id, booking_id).await?,
        &caller,
        &state.results,
    );
    Ok((booking_headers(&view, false), axum::Json(view)))
}

/// A move to another slot.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"slotStart": "2026-12-02T09:00:00Z", "site": "MAIN"}))]
pub struct RescheduleBody {
    /// The new slot's start (RFC 3339), one of the site's slots.
    #[schema(format = DateTime, max_length = 64)]
    pub slot_start: String,
    /// The new site; the booking's own when absent.
    #[serde(default)]
    #[schema(example = "MAIN", max_length = 32)]
    pub site: Option<String>,
}

/// Moves a booking to another slot, at its site or another (the patient themself, lab, admin; If-Match
/// required): ONE transaction gives the old place back, takes the new one under the capacity condition and
/// moves every key derived from the slot. The booking keeps its id; `rescheduledFrom` shows where it was.
#[utoipa::path(
    post,
    path = "/v1/patients/{patientId}/bookings/{bookingId}/reschedule",
    tag = "bookings",
    security(("bearer" = [])),
    params(
        ("patientId" = Uuid, Path, description = "patient id"),
        ("bookingId" = Uuid, Path, description = "booking id"),
        ("If-Match" = String, Header, description = "ETag of the booking as read", example = "\"1\""),
    ),
    request_body = RescheduleBody,
    responses(
        (status = 200, description = "moved", body = BookingView, headers(("ETag" = String))),
        (status = 400, description = "malformed JSON"),
        (status = 401, description = "no valid token"),
        (status = 403, description = "role may not move bookings"),
        (status = 404, description = "no such booking (or not yours)"),
        (status = 409, description = "`slot-full`, `already-cancelled`, `not-booked` (checked in or a no-show), `results-recorded`, `already-booked`, or `too-late` (a patient within the minimum notice)"),
        (status = 412, description = "stale If-Match"),
        (status = 415, description = "not JSON"),
        (status = 422, description = "not a slot the site offers"),
        (status = 428, description = "If-Match missing"),
    )
)]
async fn reschedule_booking(
    State(state): State<AppState>,
    caller: Caller,
    audit: AuditContext,
    Path((patient_id, booking_id)): Path<(Uuid, Uuid)>,
    if_match: Result<IfMatch, ApiError>,
    body: Result<Json<RescheduleBody>, ApiError>,
) -> Result<Response, ApiError> {
    caller.require_patient_access(patient_id, &[Role::Patient, Role::Lab, Role::Admin])?;
    let IfMatch(expected) = if_match?;
    let Json(body) = body?;
    let slot_start = timefmt::parse_instant(&body.slot_start)
        .ok_or_else(|| ApiError::invalid("slotStart", "must be an RFC 3339 date-time, e.g. 2026-12-01T07:15:00Z"))?;
    let draft = audit.draft(&caller, StatusCode::OK);
    let moved = state
        .bookings
        .reschedule(
            patient_id,
            booking_id,
            expected,
            slot_start,
            body.site.as_deref(),
            caller.role != Role::Patient,
            &draft,
        )
        .await?;
    let view = BookingView::plain(moved);
    let response = (booking_headers(&view, false), axum::Json(view)).into_response();
    Ok(mark_recorded(response, true))
}

/// Checks the patient in (lab, admin): `checked-in`, `checkedInAt` and an accession number unique per site and
/// day, gapless (`<SITE>-<YYYYMMDD>-<0001>`), taken in the check-in's transaction. From the slot's local day on.
#[utoipa::path(
    post,
    path = "/v1/patients/{patientId}/bookings/{bookingId}/check-in",
    tag = "bookings",
    security(("bearer" = [])),
    params(
        ("patientId" = Uuid, Path, description = "patient id"),
        ("bookingId" = Uuid, Path, description = "booking id"),
        ("If-Match" = Option<String>, Header, description = "ETag of the booking as read"),
    ),
    responses(
        (status = 200, description = "checked in", body = BookingView, headers(("ETag" = String))),
        (status = 400, description = "malformed id or If-Match"),
        (status = 401, description = "no valid token"),
        (status = 403, description = "not lab staff"),
        (status = 404, description = "no such booking"),
        (status = 409, description = "`too-early` (before the slot's day), `already-cancelled`, `not-booked`"),
        (status = 412, description = "stale If-Match"),
    )
)]
async fn check_in(
    State(state): State<AppState>,
    caller: Caller,
    audit: AuditContext,
    Path((patient_id, booking_id)): Path<(Uuid, Uuid)>,
    if_match: Result<IfMatch, ApiError>,
) -> Result<Response, ApiError> {
    caller.require_patient_access(patient_id, &[Role::Lab, Role::Admin])?;
    let expected = optional_if_match(if_match)?;
    let draft = audit.draft(&caller, StatusCode::OK);
    let booking = state
        .bookings
        .check_in(patient_id, booking_id, expected, &draft)
        .await?;
    let view = BookingView::plain(booking);
    Ok(mark_recorded(
        (booking_headers(&view, false), axum::Json(view)).into_response(),
        true,
    ))
}

/// Records that the patient did not come (lab, admin), once the slot has started.
#[utoipa::path(
    post,
    path = "/v1/patients/{patientId}/bookings/{bookingId}/no-show",
    tag = "bookings",
    security(("bearer" = [])),
    params(
        ("patientId" = Uuid, Path, description = "patient id"),
        ("bookingId" = Uuid, Path, description = "booking id"),
        ("If-Match" = Option<String>, Header, description = "ETag of the booking as read"),
    ),
    responses(
        (status = 200, description = "a no-show", body = BookingView, headers(("ETag" = String))),
        (status = 400, description = "malformed id or If-Match"),
        (status = 401, description = "no valid token"),
        (status = 403, description = "not lab staff"),
        (status = 404, description = "no such booking"),
        (status = 409, description = "`too-early` (the slot has not started), `already-cancelled`, `not-booked`"),
        (status = 412, description = "stale If-Match"),
    )
)]
async fn no_show(
    State(state): State<AppState>,
    caller: Caller,
    audit: AuditContext,
    Path((patient_id, booking_id)): Path<(Uuid, Uuid)>,
    if_match: Result<IfMatch, ApiError>,
) -> Result<Response, ApiError> {
    caller.require_patient_access(patient_id, &[Role::Lab, Role::Admin])?;
    let expected = optional_if_match(if_match)?;
    let draft = audit.draft(&caller, StatusCode::OK);
    let booking = state.bookings.no_show(patient_id, booking_id, expected, &draft).await?;
    let view = BookingView::plain(booking);
    Ok(mark_recorded(
        (booking_headers(&view, false), axum::Json(view)).into_response(),
        true,
    ))
}

/// `If-Match` when sent (a missing one is fine, a malformed one is not).
fn optional_if_match(if_match: Result<IfMatch, ApiError>) -> Result<Option<crate::service::Expected>, ApiError> {
    match if_match {
        Ok(IfMatch(v)) => Ok(Some(v)),
        Err(ApiError::PreconditionRequired) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Cancels a booking (the patient themself, lab, admin): booking and tests cancelled and the slot's place
/// given back in one transaction. `If-Match` is honoured when sent; with the same `Idempotency-Key` a repeat
/// returns the same result, without one it is a 409.
#[utoipa::path(
    post,
    path = "/v1/patients/{patientId}/bookings/{bookingId}/cancel",
    tag = "bookings",
    security(("bearer" = [])),
    params(
        ("patientId" = Uuid, Path, description = "patient id"),
        ("bookingId" = Uuid, Path, description = "booking id"),
        ("If-Match" = Option<String>, Header, description = "ETag of the booking as read"),
        ("Idempotency-Key" = Option<String>, Header, description = "makes a repeated cancel return the same result"),
    ),
    responses(
        (status = 200, description = "cancelled", body = BookingView, headers(("ETag" = String))),
        (status = 400, description = "malformed id or key"),
        (status = 401, description = "no valid token"),
        (status = 403, description = "role may not cancel"),
        (status = 404, description = "no such booking (or not yours)"),
        (status = 409, description = "cancelled already, or a result is recorded"),
        (status = 412, description = "stale If-Match"),
        (status = 422, description = "key reused for another request"),
    )
)]
async fn cancel_booking(
    State(state): State<AppState>,
    caller: Caller,
    audit: AuditContext,
    Path((patient_id, booking_id)): Path<(Uuid, Uuid)>,
    headers: HeaderMap,
    if_match: Result<IfMatch, ApiError>,
) -> Result<Response, ApiError> {
    caller.require_patient_access(patient_id, &[Role::Patient, Role::Lab, Role::Admin])?;
    let expected = match if_match {
        Ok(IfMatch(v)) => Some(v),
        Err(ApiError::PreconditionRequired) => None,
        Err(e) => return Err(e),
    };
    let path = format!("/v1/patients/{patient_id}/bookings/{booking_id}/cancel");
    let fingerprint = idempotency_key(&headers, false)?
        .map(|key| IdempotencyKey::new(&caller_scope(&caller), &key, &[b"POST", path.as_bytes()]));
    let draft = audit.draft(&caller, StatusCode::OK);
    let booked = state
        .bookings
        .cancel(
            patient_id,
            booking_id,
            expected,
            fingerprint.as_ref(),
            caller.role != Role::Patient,
            &draft,
        )
        .await?;
    let view = BookingView::plain(booked.booking);
    let response = (booking_headers(&view, false), axum::Json(view)).into_response();
    Ok(mark_recorded(response, !booked.replayed))
}
