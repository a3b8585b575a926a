//! `/v1/me` and `/v1/patients/{patientId}/identities`: who a signed-in caller is, a patient registering
//! themselves, and staff linking a sign-in identity to an existing patient, listing and unlinking them.

use axum::{
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::IntoResponse,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    AppState,
    audit::{AuditContext, AuditRecorded},
    error::ApiError,
    extract::{Json, Path, Query},
    patients::{CreatePatient, claims_own_email, created, new_patient, staff_sets_identifiers},
};
use crate::{
    auth::{Caller, ISSUER, Role, oidc::check_issuer},
    service::FieldError,
};
use utoipa_axum::{router::OpenApiRouter, routes};

/// Identity routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(me))
        .routes(routes!(register_me))
        .routes(routes!(link_identity, list_identities, unlink_identity))
}

/// The signed-in caller.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({
    "issuer": "https://id.example.org/realms/lab", "sub": "5f0c8e1e-2f4b-4d51-9e57-8c0f3b7f1a2d",
    "role": "patient", "patientId": "0194f3a2-7c1e-7d2a-9b1f-3c4d5e6f7a8b"
}))]
pub struct Me {
    /// The token's issuer (`medbook` for medbook's own tokens).
    pub issuer: String,
    /// The issuer's subject.
    pub sub: String,
    /// The medbook role.
    pub role: Role,
    /// For a patient: their record, once registered or linked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patient_id: Option<Uuid>,
}

/// Who the token's caller is: issuer, subject, role and, for a patient, their record (absent until they
/// register or staff link them). No DynamoDB call while the identity's link is cached.
#[utoipa::path(
    get,
    path = "/v1/me",
    tag = "identities",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the caller", body = Me),
        (status = 401, description = "no valid token"),
        (status = 403, description = "the token's roles map to no medbook role"),
    )
)]
async fn me(caller: Caller) -> axum::Json<Me> {
    axum::Json(Me {
        patient_id: caller.patient,
        issuer: caller.issuer,
        sub: caller.sub,
        role: caller.role,
    })
}

/// Registers the signed-in patient: a new patient record and the link of this sign-in identity to it, in one
/// transaction. Only for a patient identity of the OpenID provider with no record yet; an `email` must be the
/// address the provider verified (the token's `email` with `email_verified: true`), so nobody takes another
/// person's address; `identifiers` are the lab's to record.
#[utoipa::path(
    post,
    path = "/v1/me/patient",
    tag = "identities",
    security(("bearer" = [])),
    request_body = CreatePatient,
    responses(
        (status = 201, description = "registered", body = super::patients::PatientResponse, headers(("Location" = String), ("ETag" = String))),
        (status = 400, description = "malformed JSON"),
        (status = 401, description = "no valid token"),
        (status = 403, description = "not a patient identity"),
        (status = 409, description = "this identity is a patient already (`identity-linked`), or another patient has this e-mail address (`email-taken`)"),
        (status = 415, description = "not JSON"),
        (status = 422, description = "invalid field"),
    )
)]
async fn register_me(
    State(state): State<AppState>,
    caller: Caller,
    audit: AuditContext,
    body: Result<Json<CreatePatient>, ApiError>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require(&[Role::Patient])?;
    if caller.patient.is_some() {
        // A medbook token names its patient; a linked identity has one.
        return Err(ApiError::Conflict {
            kind: "identity-linked",
            detail: "this sign-in identity is a patient already".into(),
        });
    }
    let Json(body) = body?;
    staff_sets_identifiers(&caller, !body.identifiers.is_empty())?;
    claims_own_email(&caller, body.email.as_deref())?;
    let new = new_patient(body)?;
    let patient = state
        .identities
        .register(
            &caller.issuer,
            &caller.sub,
            new,
            &audit.draft(&caller, StatusCode::CREATED),
        )
        .await?;
    Ok(created(patient))
}

/// An identity to link: an OpenID provider's issuer and subject.
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"issuer": "https://id.example.org/realms/lab", "sub": "5f0c8e1e-2f4b-4d51-9e57-8c0f3b7f1a2d"}))]
pub struct IdentityLink {
    /// The provider's issuer URL, as its tokens carry it (https, or http on a loopback address).
    #[schema(max_length = 256)]
    pub issuer: String,
    /// The provider's subject for this person.
    #[schema(min_length = 1, max_length = 255)]
    pub sub: String,
}

/// Links a sign-in identity to an existing patient (admin, lab): their tokens then reach this patient's
/// record. An identity links to at most one patient.
#[utoipa::path(
    post,
    path = "/v1/patients/{patientId}/identities",
    tag = "identities",
    security(("bearer" = [])),
    params(("patientId" = Uuid, Path, description = "Patient")),
    request_body = IdentityLink,
    responses(
        (status = 201, description = "linked", body = IdentityLink, headers(("Location" = String))),
        (status = 400, description = "malformed JSON or path"),
        (status = 401, description = "no valid token"),
        (status = 403, description = "role may not link identities"),
        (status = 404, description = "no such patient (or, for a patient, not theirs)"),
        (status = 409, description = "the identity is linked to a patient already (`identity-linked`)"),
        (status = 415, description = "not JSON"),
        (status = 422, description = "invalid field"),
    )
)]
async fn link_identity(
    State(state): State<AppState>,
    caller: Caller,
    audit: AuditContext,
    Path(patient_id): Path<Uuid>,
    body: Result<Json<IdentityLink>, ApiError>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require_patient_access(patient_id, &[Role::Admin, Role::Lab])?;
    let Json(body) = body?;
    check_identity(&body.issuer, &body.sub)?;
    state
        .identities
        .link(
            patient_id,
            &body.issuer,
            &body.sub,
            &caller.actor_id(),
            &audit.draft(&caller, StatusCode::CREATED),
        )
        .await?;
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/patients/{patient_id}/identities")) {
        headers.insert(header::LOCATION, v);
    }
    Ok((
        StatusCode::CREATED,
        axum::Extension(AuditRecorded),
        headers,
        axum::Json(body),
    ))
}

/// An identity to link or unlink: a provider's issuer (not medbook's own) and a subject.
fn check_identity(issuer: &str, sub: &str) -> Result<(), ApiError> {
    let mut errors = Vec::new();
    if issuer == ISSUER {
        errors.push(FieldError::new(
            "issuer",
            "medbook's own tokens name their patient; link identities of the OpenID provider",
        ));
    } else if let Err(e) = check_issuer(issuer) {
        errors.push(FieldError::new("issuer", e.0));
    }
    if sub.is_empty() || sub.len() > 255 || !sub.bytes().all(|b| b.is_ascii_graphic()) {
        errors.push(FieldError::new("sub", "must be 1 to 255 visible ASCII characters"));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errors))
    }
}

/// A sign-in identity linked to a patient.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({
    "issuer": "https://id.example.org/realms/lab", "sub": "5f0c8e1e-2f4b-4d51-9e57-8c0f3b7f1a2d",
    "linkedAt": "2026-12-01T09:00:00.000Z", "linkedBy": "lab-1"
}))]
pub struct LinkedIdentityView {
    /// The provider's issuer.
    pub issuer: String,
    /// The provider's subject.
    pub sub: String,
    /// When it was linked.
    pub linked_at: String,
    /// Who linked it: `self` for a self-registration, else the staff member's subject.
    pub linked_by: String,
}

/// The identities linked to a patient.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"items": [{
    "issuer": "https://id.example.org/realms/lab", "sub": "5f0c8e1e-2f4b-4d51-9e57-8c0f3b7f1a2d",
    "linkedAt": "2026-12-01T09:00:00.000Z", "linkedBy": "lab-1"
}]}))]
pub struct LinkedIdentities {
    /// Every linked identity (a handful at most: one patient, a few providers).
    pub items: Vec<LinkedIdentityView>,
}

/// The sign-in identities linked to a patient (the patient themself, lab, admin): one Query of the patient's
/// partition.
#[utoipa::path(
    get,
    path = "/v1/patients/{patientId}/identities",
    tag = "identities",
    security(("bearer" = [])),
    params(("patientId" = Uuid, Path, description = "Patient")),
    responses(
        (status = 200, description = "the linked identities", body = LinkedIdentities),
        (status = 400, description = "malformed path"),
        (status = 401, description = "no valid token"),
        (status = 403, description = "role may not read identities"),
        (status = 404, description = "not this patient's caller"),
    )
)]
async fn list_identities(
    State(state): State<AppState>,
    caller: Caller,
    Path(patient_id): Path<Uuid>,
) -> Result<axum::Json<LinkedIdentities>, ApiError> {
    caller.require_patient_access(patient_id, &[Role::Patient, Role::Admin, Role::Lab])?;
    let items = state
        .identities
        .of_patient(patient_id)
        .await?
        .into_iter()
        .map(|l| LinkedIdentityView {
            issuer: l.issuer,
            sub: l.sub,
            linked_at: l.linked_at,
            linked_by: l.linked_by,
        })
        .collect();
    Ok(axum::Json(LinkedIdentities { items }))
}

/// Which identity to unlink.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UnlinkParams {
    /// The provider's issuer.
    #[param(max_length = 256)]
    pub issuer: Option<String>,
    /// The provider's subject.
    #[param(max_length = 255)]
    pub sub: Option<String>,
}

/// Unlinks a sign-in identity from a patient (admin, lab): for a link made by mistake, or an account the
/// patient lost. Its tokens stop reaching the record at once on this replica and within
/// `MEDBOOK_IDENTITY_CACHE_S` on the others.
#[utoipa::path(
    delete,
    path = "/v1/patients/{patientId}/identities",
    tag = "identities",
    security(("bearer" = [])),
    params(("patientId" = Uuid, Path, description = "Patient"), UnlinkParams),
    responses(
        (status = 204, description = "unlinked"),
        (status = 400, description = "malformed path or query"),
        (status = 401, description = "no valid token"),
        (status = 403, description = "role may not unlink identities"),
        (status = 404, description = "the identity is not linked to this patient"),
        (status = 422, description = "issuer or sub missing or invalid"),
    )
)]
async fn unlink_identity(
    State(state): State<AppState>,
    caller: Caller,
    audit: AuditContext,
    Path(patient_id): Path<Uuid>,
    Query(params): Query<UnlinkParams>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require_patient_access(patient_id, &[Role::Admin, Role::Lab])?;
    let issuer = params.issuer.unwrap_or_default();
    let sub = params.sub.unwrap_or_default();
    check_identity(&issuer, &sub)?;
    state
        .identities
        .unlink(patient_id, &issuer, &sub, &audit.draft(&caller, StatusCode::NO_CONTENT))
        .await?;
    Ok((StatusCode::NO_CONTENT, axum::Extension(AuditRecorded)))
}
