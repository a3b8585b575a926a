//! `…/bookings/{bookingId}/tests/{testId}/…`: results, their verification, review and release holds, notes;
//! and a patient's series of one analyte (`/v1/patients/{patientId}/observations`).

use axum::{
    Extension,
    extract::{OriginalUri, State},
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
    extract::{IfMatch, Json, Path, Query, etag},
    paging::{ListRequest, Page, PageParams, required_date},
};
use crate::{
    auth::{Caller, Role},
    domain::{
        booking::{
            LabResult, Note, NoteVisibility, RawValue, ReleaseHold, ResultStatus, ResultValue, Review, TestAddress,
            Verification,
        },
        release::{Release, Withheld},
        test_type::{Flag, ReferenceRange},
        text, timefmt,
    },
    service::{ServiceError, results::ResultInput},
};

/// Result routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(record_result, get_result))
        .routes(routes!(result_history))
        .routes(routes!(verify_result))
        .routes(routes!(hold_result, lift_hold))
        .routes(routes!(add_note))
        .routes(routes!(review_result))
        .routes(routes!(observations))
}

/// Where a result stands with its patient.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"state": "released", "releasedAt": "2026-12-01T09:30:00.000Z"}))]
pub struct ReleaseView {
    /// `released`, or why not: `not-verified`, `held`, `awaiting-review`, `scheduled`. A patient sees only
    /// `released` or `withheld`.
    #[schema(example = "released")]
    pub state: String,
    /// Since when it is released.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub released_at: Option<String>,
    /// When the policy releases it (`scheduled`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub due_at: Option<String>,
}

impl ReleaseView {
    fn new(release: Release, patient: bool) -> Self {
        match release {
            Release::Released { at } => Self {
                state: "released".into(),
                released_at: Some(timefmt::instant(at)),
                due_at: None,
            },
            Release::Withheld { .. } if patient => Self {
                state: "withheld".into(),
                released_at: None,
                due_at: None,
            },
            Release::Withheld { why, due } => Self {
                state: match why {
                    Withheld::NotVerified => "not-verified",
                    Withheld::Held => "held",
                    Withheld::AwaitingReview => "awaiting-review",
                    Withheld::Scheduled => "scheduled",
                }
                .into(),
                released_at: None,
                due_at: due.map(timefmt::instant),
            },
        }
    }
}

/// A test's result as a caller may see it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = crate::examples::result_view)]
pub struct ResultView {
    /// `preliminary` (recorded), `final` (verified), `corrected` (values changed after a verified revision),
    /// `amended` (only the comment changed); a correction or amendment is verified again (`verification`).
    pub status: ResultStatus,
    /// Revision, from 1; +1 for each recording.
    #[schema(example = 1)]
    pub revision: u32,
    /// Version of the current result; also its ETag (If-Match for replacing, verifying or reviewing).
    #[schema(example = 1)]
    pub version: u64,
    /// Values with flags, the range applied and any delta; absent for a patient until released.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<ResultValue>>,
    /// Whether any value is critical (LL/HH); absent when the values are.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub critical: Option<bool>,
    /// Whether any value failed its delta check; absent when the values are.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta_flag: Option<bool>,
    /// True when the values are withheld from this caller (a patient, before release).
    pub values_withheld: bool,
    /// Where the result stands with the patient.
    pub release: ReleaseView,
    /// When the specimen was analysed.
    #[schema(example = "2026-12-01T08:00:00Z")]
    pub performed_at: String,
    /// When the specimen was collected (check-in).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collected_at: Option<String>,
    /// Lab comment; withheld with the values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// When this revision was recorded.
    pub recorded_at: String,
    /// Who recorded it.
    pub recorded_by: String,
    /// The verification of this revision.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
    /// The doctor's review of this revision; withheld with the values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub review: Option<Review>,
    /// A doctor's hold from the patient (staff only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold: Option<ReleaseHold>,
    /// The last verified revision this one corrects or amends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub corrects: Option<u32>,
}

impl ResultView {
    /// The result as `caller` may see it, `release` being its release state now: a patient sees only its
    /// status until it is released.
    pub fn for_caller(result: LabResult, caller: &Caller, release: Release) -> Self {
        let patient = caller.role == Role::Patient;
        let withheld = patient && !release.is_released();
        let shown = |show: bool| !withheld && show;
        Self {
            status: result.status,
            revision: result.revision,
            version: result.version,
            values: shown(true).then_some(result.values),
            critical: shown(true).then_some(result.critical),
            delta_flag: shown(true).then_some(result.delta_flag),
            values_withheld: withheld,
            release: ReleaseView::new(release, patient),
            performed_at: result.performed_at,
            collected_at: result.collected_at,
            // The lab's comment can carry the value ("K+ 6.9, called ward"): withheld with the values.
            comment: result.comment.filter(|_| !withheld),
            recorded_at: result.recorded_at,
            recorded_by: result.recorded_by,
            // Under on-final, "verified but withheld" would tell the patient a doctor holds it.
            verification: result.verification.filter(|_| !withheld),
            review: result.review.filter(|_| !withheld),
            hold: result.hold.filter(|_| !patient),
            corrects: result.corrects,
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
#[schema(example = json!({"text": "Repeat in 3 months.", "visibility": "patient"}))]
pub struct NoteBody {
    /// Text, 1 to 4000 characters.
    #[garde(length(chars, min = 1, max = 4000), custom(text::visible_text))]
    #[schema(min_length = 1, max_length = 4000)]
    pub text: String,
    /// `internal` (default: staff only) or `patient` (the patient too, once the result is released).
    #[serde(default)]
    #[garde(skip)]
    pub visibility: NoteVisibility,
}

/// Why a doctor holds a result from the patient.
#[derive(Debug, Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"reason": "Discuss the diagnosis in person first."}))]
pub struct HoldBody {
    /// The reason, 1 to 1000 characters (recorded with the hold and in the audit trail).
    #[garde(length(chars, min = 1, max = 1000), custom(text::visible_text))]
    #[schema(min_length = 1, max_length = 1000)]
    pub reason: String,
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
    let release = state.results.release_of(&result);
    Ok((
        status,
        Extension(AuditRecorded),
        with_etag(result.version),
        axum::Json(ResultView::for_caller(result, &caller, release)),
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
    let release = state.results.release_of(&result);
    Ok((
        with_etag(result.version),
        axum::Json(ResultView::for_caller(result, &caller, release)),
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
    // A patient sees the history as released as the current revision is: nothing of it before then.
    let current = history.last().map(|r| state.results.release_of(r));
    Ok(axum::Json(ResultHistory {
        items: history
            .into_iter()
            .map(|r| {
                let own = state.results.release_of(&r);
                let release = match current {
                    Some(c) if !c.is_released() => c,
                    _ => own,
                };
                ResultView::for_caller(r, &caller, release)
            })
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
        .add_note(
            &caller.sub,
            address(patient_id, booking_id, test_id),
            body.text,
            body.visibility,
            &draft,
        )
        .await?;
    Ok((StatusCode::CREATED, Extension(AuditRecorded), axum::Json(note)))
}

/// Reviews the current, verified result (doctor, If-Match required: the version the doctor saw). The review
/// is recorded on the revision (its status does not change) and the result leaves the worklist.
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
        (status = 409, description = "no result yet, not verified yet, or reviewed already"),
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
    let release = state.results.release_of(&result);
    Ok((
        Extension(AuditRecorded),
        with_etag(result.version),
        axum::Json(ResultView::for_caller(result, &caller, release)),
    ))
}

/// Verifies the current result (lab, admin; If-Match required: the version the verifier checked). Four eyes:
/// the verifier must not be the user who recorded this revision. The result becomes `final` (a correction
/// or amendment keeps its status, now verified), joins the doctors' worklist, its values join the
/// patient's series, and under `on-final` the patient sees it.
#[utoipa::path(
    post,
    path = "/v1/patients/{patientId}/bookings/{bookingId}/tests/{testId}/result/verify",
    tag = "results",
    security(("bearer" = [])),
    params(
        ("patientId" = Uuid, Path, description = "patient id"),
        ("bookingId" = Uuid, Path, description = "booking id"),
        ("testId" = Uuid, Path, description = "test id"),
        ("If-Match" = String, Header, description = "version of the result the verifier checked"),
    ),
    responses(
        (status = 200, description = "verified", body = ResultView, headers(("ETag" = String))),
        (status = 400, description = "malformed id"),
        (status = 401, description = "no valid token"),
        (status = 403, description = "role may not verify"),
        (status = 404, description = "no such booking or test"),
        (status = 409, description = "no result, verified already, or recorded by the same user (`same-user`)"),
        (status = 412, description = "a newer version arrived"),
        (status = 428, description = "If-Match missing"),
    )
)]
async fn verify_result(
    State(state): State<AppState>,
    caller: Caller,
    audit: AuditContext,
    Path((patient_id, booking_id, test_id)): Path<(Uuid, Uuid, Uuid)>,
    if_match: Result<IfMatch, ApiError>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require_patient_access(patient_id, &[Role::Lab, Role::Admin])?;
    let IfMatch(expected) = if_match?;
    let draft = audit.draft(&caller, StatusCode::OK);
    let result = state
        .results
        .verify(&caller.sub, address(patient_id, booking_id, test_id), expected, &draft)
        .await?;
    let release = state.results.release_of(&result);
    Ok((
        Extension(AuditRecorded),
        with_etag(result.version),
        axum::Json(ResultView::for_caller(result, &caller, release)),
    ))
}

/// Holds the result from the patient, for a reason (doctor). The patient sees its status only until the hold
/// is lifted, whatever the release policy; the hold stays with later revisions. Audited with the reason.
#[utoipa::path(
    post,
    path = "/v1/patients/{patientId}/bookings/{bookingId}/tests/{testId}/release-hold",
    tag = "results",
    security(("bearer" = [])),
    params(
        ("patientId" = Uuid, Path, description = "patient id"),
        ("bookingId" = Uuid, Path, description = "booking id"),
        ("testId" = Uuid, Path, description = "test id"),
    ),
    request_body = HoldBody,
    responses(
        (status = 200, description = "held", body = ResultView, headers(("ETag" = String))),
        (status = 400, description = "malformed JSON or id"),
        (status = 401, description = "no valid token"),
        (status = 403, description = "not a doctor"),
        (status = 404, description = "no such booking or test"),
        (status = 409, description = "no result yet, or held already"),
        (status = 415, description = "not JSON"),
        (status = 422, description = "reason empty or too long"),
    )
)]
async fn hold_result(
    State(state): State<AppState>,
    caller: Caller,
    audit: AuditContext,
    Path((patient_id, booking_id, test_id)): Path<(Uuid, Uuid, Uuid)>,
    body: Result<Json<HoldBody>, ApiError>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require_patient_access(patient_id, &[Role::Doctor])?;
    let Json(body) = body?;
    validate(&body)?;
    let draft = audit.draft(&caller, StatusCode::OK);
    let result = state
        .results
        .hold(
            &caller.sub,
            address(patient_id, booking_id, test_id),
            body.reason,
            &draft,
        )
        .await?;
    let release = state.results.release_of(&result);
    Ok((
        Extension(AuditRecorded),
        with_etag(result.version),
        axum::Json(ResultView::for_caller(result, &caller, release)),
    ))
}

/// Lifts a doctor's hold (doctor): the result is released as the policy says, from now at the earliest.
#[utoipa::path(
    delete,
    path = "/v1/patients/{patientId}/bookings/{bookingId}/tests/{testId}/release-hold",
    tag = "results",
    security(("bearer" = [])),
    params(
        ("patientId" = Uuid, Path, description = "patient id"),
        ("bookingId" = Uuid, Path, description = "booking id"),
        ("testId" = Uuid, Path, description = "test id"),
    ),
    responses(
        (status = 200, description = "lifted", body = ResultView, headers(("ETag" = String))),
        (status = 400, description = "malformed id"),
        (status = 401, description = "no valid token"),
        (status = 403, description = "not a doctor"),
        (status = 404, description = "no such booking or test"),
        (status = 409, description = "no result, or not held"),
    )
)]
async fn lift_hold(
    State(state): State<AppState>,
    caller: Caller,
    audit: AuditContext,
    Path((patient_id, booking_id, test_id)): Path<(Uuid, Uuid, Uuid)>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require_patient_access(patient_id, &[Role::Doctor])?;
    let draft = audit.draft(&caller, StatusCode::OK);
    let result = state
        .results
        .lift_hold(address(patient_id, booking_id, test_id), &draft)
        .await?;
    let release = state.results.release_of(&result);
    Ok((
        Extension(AuditRecorded),
        with_etag(result.version),
        axum::Json(ResultView::for_caller(result, &caller, release)),
    ))
}

/// The filters of a patient's series.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ObservationParams {
    /// LOINC code of the analyte.
    #[param(example = "718-7", pattern = r"^[0-9]{1,7}-[0-9]$")]
    pub loinc: Option<String>,
    /// First day of collection (inclusive), `YYYY-MM-DD`.
    #[param(format = Date, example = "2026-01-01")]
    pub from: Option<String>,
    /// Last day of collection (inclusive), `YYYY-MM-DD`.
    #[param(format = Date, example = "2026-12-31")]
    pub to: Option<String>,
}

/// One value in a patient's series.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({
    "bookingId": "01a2211b-c460-76bf-9070-8e02374c400f", "testId": "01a2211b-c460-76bf-9070-8e0014ee55c8",
    "testTypeCode": "CBC", "analyte": "HGB", "loinc": "718-7", "value": 13.5, "unit": "g/dL", "flag": "N",
    "referenceRange": {"sex": "female", "ageFrom": {"value": 18, "unit": "a"}, "low": 11.6, "high": 15.0},
    "collectedAt": "2026-12-01T08:10:00Z", "status": "final", "revision": 1,
    "release": {"state": "released", "releasedAt": "2026-12-01T09:30:00.000Z"}
}))]
pub struct ObservationView {
    /// Booking.
    pub booking_id: Uuid,
    /// Test.
    pub test_id: Uuid,
    /// Test type code.
    pub test_type_code: String,
    /// Analyte code.
    pub analyte: String,
    /// LOINC code.
    pub loinc: String,
    /// Value.
    pub value: f64,
    /// UCUM unit.
    pub unit: String,
    /// Flag.
    pub flag: Flag,
    /// The reference range applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference_range: Option<ReferenceRange>,
    /// When the specimen was collected.
    pub collected_at: String,
    /// Status of the result revision.
    pub status: ResultStatus,
    /// That revision.
    pub revision: u32,
    /// Where it stands with the patient.
    pub release: ReleaseView,
}

/// A patient's verified values of one analyte (by LOINC code) over time, oldest first: the cumulative view
/// doctors use (the patient themself, lab, doctor, admin). One Query per page on the patient's partition
/// (`OBS#<loinc>#<collectedAt>#<testId>`). A patient sees released values only (a page may then hold fewer
/// than `limit`).
#[utoipa::path(
    get,
    path = "/v1/patients/{patientId}/observations",
    tag = "results",
    security(("bearer" = [])),
    params(("patientId" = Uuid, Path, description = "patient id"), ObservationParams, PageParams),
    responses(
        (status = 200, description = "a page of the series", body = Page<ObservationView>),
        (status = 400, description = "bad parameter or cursor"),
        (status = 401, description = "no valid token"),
        (status = 404, description = "not yours"),
        (status = 422, description = "missing or invalid loinc, from or to"),
    )
)]
async fn observations(
    State(state): State<AppState>,
    caller: Caller,
    Path(patient_id): Path<Uuid>,
    OriginalUri(uri): OriginalUri,
    Query(params): Query<ObservationParams>,
    Query(page): Query<PageParams>,
) -> Result<axum::Json<Page<ObservationView>>, ApiError> {
    caller.require_patient_access(patient_id, READERS)?;
    let loinc = params
        .loinc
        .filter(|l| crate::domain::test_type::is_loinc(l))
        .ok_or_else(|| ApiError::invalid("loinc", "is required: a LOINC code such as 718-7"))?;
    let from = required_date("from", params.from.as_deref())?;
    let to = required_date("to", params.to.as_deref())?;
    if to < from {
        return Err(ApiError::invalid("to", "must not be before `from`"));
    }
    let filters = [
        ("loinc", Some(loinc.clone())),
        ("from", Some(timefmt::date(from))),
        ("to", Some(timefmt::date(to))),
    ];
    let list = ListRequest::new(&state, uri.path(), &filters, &page, 20)?;
    let patient = caller.role == Role::Patient;
    let page = state
        .results
        .observations(patient_id, &loinc, from, to, patient, list.limit(), list.start())
        .await?;
    Ok(axum::Json(list.page(&state, page, |(o, release)| ObservationView {
        booking_id: o.booking_id,
        test_id: o.test_id,
        test_type_code: o.test_type_code,
        analyte: o.analyte,
        loinc: o.loinc,
        value: o.value,
        unit: o.unit,
        flag: o.flag,
        reference_range: o.reference_range,
        collected_at: o.collected_at,
        status: o.status,
        revision: o.revision,
        release: ReleaseView::new(release, patient),
    })))
}
