//! `…/bookings/{bookingId}/tests/{testId}/…`: results, notes and reviews.

use axum::{
    Extension,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::IntoResponse,
};
use garde::Validate;
use serde::{Deserialize, Serialize};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    AppState,
    audit::{AuditContext, AuditRecorded},
    error::ApiError,
    extract::{IfMatch, Json, Path, etag},
};
use crate::{
    auth::{Caller, Role},
    domain::{
        booking::{LabResult, Note, RawValue, ResultStatus, ResultValue, Review, TestAddress},
        text, timefmt,
    },
    service::{ServiceError, results::ResultInput},
};

/// Result routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(record_result, get_result))
        .routes(routes!(result_history))
        .routes(routes!(add_note))
        .routes(routes!(review_result))
}

/// A test's result as a caller may see it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = crate::examples::result_view)]
pub struct ResultView {
    /// `preliminary` (not reviewed), `final` (reviewed), `amended` (changed after a review).
    pub status: ResultStatus,
    /// Revision, from 1; +1 for each amendment after a review.
    #[schema(example = 1)]
    pub revision: u32,
    /// Version of the current result; also its ETag (If-Match for replacing or reviewing).
    #[schema(example = 1)]
    pub version: u64,
    /// Values with flags; absent for a patient until a doctor has reviewed them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<ResultValue>>,
    /// Whether any value is critical (LL/HH); absent when the values are.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub critical: Option<bool>,
    /// True when the values are withheld because no doctor has reviewed them yet.
    pub values_withheld: bool,
    /// When the specimen was analysed.
    #[schema(example = "2026-12-01T08:00:00Z")]
    pub performed_at: String,
    /// Lab comment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// When this revision was recorded.
    pub recorded_at: String,
    /// Who recorded it.
    pub recorded_by: String,
    /// The doctor's review of this revision.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub review: Option<Review>,
}

impl ResultView {
    /// The result as `caller` may see it: a patient sees values only once reviewed.
    pub fn for_caller(result: LabResult, caller: &Caller) -> Self {
        let withheld = caller.role == Role::Patient && result.review.is_none();
        Self {
            status: result.status,
            revision: result.revision,
            version: result.version,
            values: (!withheld).then_some(result.values),
            critical: (!withheld).then_some(result.critical),
            values_withheld: withheld,
            performed_at: result.performed_at,
            // The lab's comment can carry the value ("K+ 6.9, called ward"): withheld with the values.
            comment: result.comment.filter(|_| !withheld),
            recorded_at: result.recorded_at,
            recorded_by: result.recorded_by,
            review: result.review,
        }
    }
}

/// Every revision of a result, oldest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = crate::examples::result_history)]
pub struct ResultHistory {
    /// Revisions, oldest first.
    pub items: Vec<ResultView>,
}

/// One value as the lab sends it.
#[derive(Debug, Deserialize, Validate, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = crate::examples::value_body)]
pub struct ValueBody {
    /// Analyte code of the booked test type version.
    #[garde(length(min = 1, max = 32), custom(text::single_line))]
    #[schema(example = "HGB", min_length = 1, max_length = 32)]
    pub analyte: String,
    /// The measured value.
    #[garde(skip)]
    #[schema(example = 13.5)]
    pub value: f64,
    /// UCUM unit; must be the analyte's.
    #[garde(length(min = 1, max = 32), custom(text::single_line))]
    #[schema(example = "g/dL", min_length = 1, max_length = 32)]
    pub unit: String,
}

/// A result to record.
#[derive(Debug, Deserialize, Validate, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({
    "values": [{"analyte": "HGB", "value": 13.5, "unit": "g/dL"}, {"analyte": "WBC", "value": 6.1, "unit": "10*3/uL"}],
    "performedAt": "2026-12-01T08:00:00Z", "comment": "haemolysed sample redrawn"
}))]
pub struct RecordResultBody {
    /// Values, 1 to 50.
    #[garde(length(min = 1, max = 50), dive)]
    #[schema(min_items = 1, max_items = 50)]
    pub values: Vec<ValueBody>,
    /// When the specimen was analysed (RFC 3339).
    #[garde(length(max = 64))]
    #[schema(format = DateTime, max_length = 64)]
    pub performed_at: String,
    /// Lab comment.
    #[serde(default)]
    #[garde(inner(length(chars, max = 2000), custom(text::multi_line)))]
    #[schema(max_length = 2000)]
    pub comment: Option<String>,
}

/// A doctor's note.
#[derive(Debug, Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"text": "Repeat in 3 months."}))]
pub struct NoteBody {
    /// Text, 1 to 4000 characters.
    #[garde(length(chars, min = 1, max = 4000), custom(text::visible_text))]
    #[schema(min_length = 1, max_length = 4000)]
    pub text: String,
}

/// A doctor's review.
#[derive(Debug, Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"conclusion": "Mild anaemia; iron studies advised."}))]
pub struct ReviewBody {
    /// The doctor's conclusion, 1 to 4000 characters.
    #[garde(length(chars, min = 1, max = 4000), custom(text::visible_text))]
    #[schema(min_length = 1, max_length = 4000)]
    pub conclusion: String,
}

fn address(patient_id: Uuid, booking_id: Uuid, test_id: Uuid) -> TestAddress {
    TestAddress {
        patient_id,
        booking_id,
        test_id,
    }
}

fn validate(body: &impl Validate<Context = ()>) -> Result<(), ApiError> {
    body.validate().map_err(|r| ApiError::from(ServiceError::from(r)))
}

fn with_etag(version: u64) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&etag(version)) {
        headers.insert(header::ETAG, v);
    }
    headers
}

const READERS: &[Role] = &[Role::Patient, Role::Lab, Role::Doctor, Role::Admin];

/// Records a test's result (lab, admin). The first recording needs no If-Match and answers 201; replacing
/// (before review) or amending (after review) needs If-Match with the current version and answers 200.
#[utoipa::path(
    put,
    path = "/v1/patients/{patientId}/bookings/{bookingId}/tests/{testId}/result",
    tag = "results",
    security(("bearer" = [])),
    params(
        ("patientId" = Uuid, Path, description = "patient id"),
        ("bookingId" = Uuid, Path, description = "booking id"),
        ("testId" = Uuid, Path, description = "test id"),
        ("If-Match" = Option<String>, Header, description = "version of the current result; required once one exists"),
    ),
    request_body = RecordResultBody,
    responses(
        (status = 200, description = "replaced or amended", body = ResultView, headers(("ETag" = String))),
        (status = 201, description = "first recording", body = ResultView, headers(("ETag" = String))),
        (status = 400, description = "malformed JSON or id"),
        (status = 401, description = "no valid token"),
        (status = 403, description = "role may not record results"),
        (status = 404, description = "no such booking or test"),
        (status = 409, description = "booking cancelled"),
        (status = 412, description = "stale If-Match"),
        (status = 415, description = "not JSON"),
        (status = 422, description = "analyte or unit does not fit the booked test type"),
        (status = 428, description = "If-Match missing on an existing result"),
    )
)]
async fn record_result(
    State(state): State<AppState>,
    caller: Caller,
    audit: AuditContext,
    Path((patient_id, booking_id, test_id)): Path<(Uuid, Uuid, Uuid)>,
    if_match: Result<IfMatch, ApiError>,
    body: Result<Json<RecordResultBody>, ApiError>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require_patient_access(patient_id, &[Role::Lab, Role::Admin])?;
    let expected = match if_match {
        Ok(IfMatch(v)) => Some(v),
        Err(ApiError::PreconditionRequired) => None,
        Err(e) => return Err(e),
    };
    let Json(body) = body?;
    validate(&body)?;
    let performed_at = timefmt::parse_instant(&body.performed_at)
        .ok_or_else(|| ApiError::invalid("performedAt", "must be an RFC 3339 date-time"))?;
    let input = ResultInput {
        values: body
            .values
            .into_iter()
            .map(|v| RawValue {
                analyte: v.analyte,
                value: v.value,
                unit: v.unit,
            })
            .collect(),
        performed_at,
        comment: body.comment,
    };
    let status = if expected.is_none() {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let draft = audit.draft(&caller, status);
    let result = state
        .results
        .record(
            &caller.sub,
            address(patient_id, booking_id, test_id),
            expected,
            input,
            &draft,
        )
        .await?;
    Ok((
        status,
        Extension(AuditRecorded),
        with_etag(result.version),
        axum::Json(ResultView::for_caller(result, &caller)),
    ))
}

/// A test's current result (the patient themself, lab, doctor, admin; a patient sees values once reviewed).
#[utoipa::path(
    get,
    path = "/v1/patients/{patientId}/bookings/{bookingId}/tests/{testId}/result",
    tag = "results",
    security(("bearer" = [])),
    params(
        ("patientId" = Uuid, Path, description = "patient id"),
        ("bookingId" = Uuid, Path, description = "booking id"),
        ("testId" = Uuid, Path, description = "test id"),
    ),
    responses(
        (status = 200, description = "the current result", body = ResultView, headers(("ETag" = String))),
        (status = 400, description = "malformed id"),
        (status = 401, description = "no valid token"),
        (status = 404, description = "no result (or not yours)"),
    )
)]
async fn get_result(
    State(state): State<AppState>,
    caller: Caller,
    Path((patient_id, booking_id, test_id)): Path<(Uuid, Uuid, Uuid)>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require_patient_access(patient_id, READERS)?;
    let result = state.results.current(address(patient_id, booking_id, test_id)).await?;
    Ok((
        with_etag(result.version),
        axum::Json(ResultView::for_caller(result, &caller)),
    ))
}

/// Every revision of a test's result, oldest first: one Query.
#[utoipa::path(
    get,
    path = "/v1/patients/{patientId}/bookings/{bookingId}/tests/{testId}/result/history",
    tag = "results",
    security(("bearer" = [])),
    params(
        ("patientId" = Uuid, Path, description = "patient id"),
        ("bookingId" = Uuid, Path, description = "booking id"),
        ("testId" = Uuid, Path, description = "test id"),
    ),
    responses(
        (status = 200, description = "every revision", body = ResultHistory),
        (status = 400, description = "malformed id"),
        (status = 401, description = "no valid token"),
        (status = 404, description = "no result (or not yours)"),
    )
)]
async fn result_history(
    State(state): State<AppState>,
    caller: Caller,
    Path((patient_id, booking_id, test_id)): Path<(Uuid, Uuid, Uuid)>,
) -> Result<axum::Json<ResultHistory>, ApiError> {
    caller.require_patient_access(patient_id, READERS)?;
    let history = state.results.history(address(patient_id, booking_id, test_id)).await?;
    Ok(axum::Json(ResultHistory {
        items: history
            .into_iter()
            .map(|r| ResultView::for_caller(r, &caller))
            .collect(),
    }))
}

/// Adds a doctor's note to a test (doctor). Notes are part of the booking tree.
#[utoipa::path(
    post,
    path = "/v1/patients/{patientId}/bookings/{bookingId}/tests/{testId}/notes",
    tag = "results",
    security(("bearer" = [])),
    params(
        ("patientId" = Uuid, Path, description = "patient id"),
        ("bookingId" = Uuid, Path, description = "booking id"),
        ("testId" = Uuid, Path, description = "test id"),
    ),
    request_body = NoteBody,
    responses(
        (status = 201, description = "added", body = Note),
        (status = 400, description = "malformed JSON or id"),
        (status = 401, description = "no valid token"),
        (status = 403, description = "not a doctor"),
        (status = 404, description = "no such test"),
        (status = 415, description = "not JSON"),
        (status = 422, description = "text empty or too long"),
    )
)]
async fn add_note(
    State(state): State<AppState>,
    caller: Caller,
    audit: AuditContext,
    Path((patient_id, booking_id, test_id)): Path<(Uuid, Uuid, Uuid)>,
    body: Result<Json<NoteBody>, ApiError>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require_patient_access(patient_id, &[Role::Doctor])?;
    let Json(body) = body?;
    validate(&body)?;
    let draft = audit.draft(&caller, StatusCode::CREATED);
    let note = state
        .results
        .add_note(&caller.sub, address(patient_id, booking_id, test_id), body.text, &draft)
        .await?;
    Ok((StatusCode::CREATED, Extension(AuditRecorded), axum::Json(note)))
}

/// Signs off the current result (doctor, If-Match required: the version the doctor saw). The result becomes
/// `final` (an amendment stays `amended` with the review recorded) and leaves the worklist.
#[utoipa::path(
    post,
    path = "/v1/patients/{patientId}/bookings/{bookingId}/tests/{testId}/review",
    tag = "results",
    security(("bearer" = [])),
    params(
        ("patientId" = Uuid, Path, description = "patient id"),
        ("bookingId" = Uuid, Path, description = "booking id"),
        ("testId" = Uuid, Path, description = "test id"),
        ("If-Match" = String, Header, description = "version of the result the doctor reviewed"),
    ),
    request_body = ReviewBody,
    responses(
        (status = 200, description = "reviewed", body = ResultView, headers(("ETag" = String))),
        (status = 400, description = "malformed JSON or id"),
        (status = 401, description = "no valid token"),
        (status = 403, description = "not a doctor"),
        (status = 404, description = "no such booking or test"),
        (status = 409, description = "no result yet, or reviewed already"),
        (status = 412, description = "a newer version arrived"),
        (status = 415, description = "not JSON"),
        (status = 422, description = "conclusion empty or too long"),
        (status = 428, description = "If-Match missing"),
    )
)]
async fn review_result(
    State(state): State<AppState>,
    caller: Caller,
    audit: AuditContext,
    Path((patient_id, booking_id, test_id)): Path<(Uuid, Uuid, Uuid)>,
    if_match: Result<IfMatch, ApiError>,
    body: Result<Json<ReviewBody>, ApiError>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require_patient_access(patient_id, &[Role::Doctor])?;
    let IfMatch(expected) = if_match?;
    let Json(body) = body?;
    validate(&body)?;
    let draft = audit.draft(&caller, StatusCode::OK);
    let at = address(patient_id, booking_id, test_id);
    let result = state
        .results
        .review(&caller.sub, at, expected, body.conclusion, &draft)
        .await?;
    Ok((
        Extension(AuditRecorded),
        with_etag(result.version),
        axum::Json(ResultView::for_caller(result, &caller)),
    ))
}
