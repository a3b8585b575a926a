//! Auditing every request on a patient's data, and `GET /v1/patients/{patientId}/audit`.
//!
//! A change that succeeds writes its event inside its own transaction (the handler builds an
//! [`AuditDraft`] with [`AuditContext`] and marks the response [`AuditRecorded`]). Every other authenticated
//! request under `/v1/patients/{patientId}` (reads, refused or failed changes) is recorded by
//! [`audit_patient_requests`] after the response is decided, in the background: the caller's response
//! never waits for it and never fails because of it.

use axum::{
    extract::{FromRequestParts, MatchedPath, OriginalUri, Request, State},
    http::{Method, StatusCode, request::Parts},
    middleware::Next,
    response::Response,
};
use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    AppState, REQUEST_ID,
    error::ApiError,
    extract::{Authentication, Path, Query},
    paging::{ListRequest, Page, PageParams, date_param},
};
use crate::{
    auth::{Caller, Role},
    domain::{
        audit::{Actor, AuditDraft, AuditEvent},
        timefmt,
    },
};

/// Audit routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(audit_trail))
}

/// Response marker: this request's audit event was written with its change.
#[derive(Debug, Clone, Copy)]
pub struct AuditRecorded;

/// Marks `response` as recorded with its change (when `recorded`), so the middleware does not record it
/// again.
pub fn mark_recorded(mut response: Response, recorded: bool) -> Response {
    if recorded {
        response.extensions_mut().insert(AuditRecorded);
    }
    response
}

/// What an audit event says about the request: action (method and route template), resource (path) and
/// request id.
#[derive(Debug, Clone)]
pub struct AuditContext {
    method: Method,
    route: String,
    path: String,
    request_id: String,
}

impl AuditContext {
    /// The draft of this request's event by `caller`, answering `outcome` if the change succeeds.
    pub fn draft(&self, caller: &Caller, outcome: StatusCode) -> AuditDraft {
        AuditDraft {
            actor: Actor {
                sub: caller.actor_id(),
                role: caller.role.to_string(),
            },
            action: format!("{} {}", super::method_label(&self.method), self.route),
            resource: self.path.clone(),
            outcome: outcome.as_u16(),
            request_id: self.request_id.clone(),
        }
    }

    fn from_parts(parts: &Parts) -> Self {
        Self {
            method: parts.method.clone(),
            // The route template, never the path a client chose (that is `resource`, bounded).
            route: parts
                .extensions
                .get::<MatchedPath>()
                .map_or_else(|| "(unmatched)".to_owned(), |p| p.as_str().to_owned()),
            path: bounded(
                parts
                    .extensions
                    .get::<OriginalUri>()
                    .map_or_else(|| parts.uri.path(), |u| u.path()),
            ),
            request_id: parts
                .headers
                .get(REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for AuditContext {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::from_parts(parts))
    }
}

/// Longest path an audit event keeps (the API's longest real path is under 200 characters).
const MAX_AUDITED_PATH: usize = 512;

/// `path`, cut to [`MAX_AUDITED_PATH`] bytes at a character boundary.
fn bounded(path: &str) -> String {
    let mut end = path.len().min(MAX_AUDITED_PATH);
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    path[..end].to_owned()
}

/// The patient a path under `/v1/patients/{patientId}` concerns.
fn patient_of(path: &str) -> Option<Uuid> {
    path.strip_prefix("/v1/patients/")?.split('/').next()?.parse().ok()
}

/// Records every authenticated request on a patient's data that its handler did not record with its change.
pub async fn audit_patient_requests(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let patient = patient_of(parts.uri.path());
    let caller = match parts.extensions.get::<Authentication>() {
        Some(Authentication::Caller(caller)) => Some(caller.clone()),
        _ => None,
    };
    let context = AuditContext::from_parts(&parts);
    let response = next.run(Request::from_parts(parts, body)).await;
    if let (Some(patient), Some(caller)) = (patient, caller)
        && response.extensions().get::<AuditRecorded>().is_none()
    {
        let event = context.draft(&caller, response.status()).event(patient);
        // A 403 or 404 may name a patient who does not exist: those are the refusals with a budget.
        if matches!(response.status(), StatusCode::FORBIDDEN | StatusCode::NOT_FOUND) {
            state.audit.record_refusal_detached(event);
        } else {
            state.audit.record_detached(event);
        }
    }
    response
}

/// Audit query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// First day (inclusive), `YYYY-MM-DD`; default a year before `to`.
    #[param(format = Date, example = "2026-11-01")]
    pub from: Option<String>,
    /// Last day (inclusive), `YYYY-MM-DD`; default today.
    #[param(format = Date, example = "2026-11-30")]
    pub to: Option<String>,
}

/// Who read or changed this patient's data (admin; the patient themself): newest first, one Query per
/// page on one month's audit partition.
#[utoipa::path(
    get,
    path = "/v1/patients/{patientId}/audit",
    tag = "patients",
    security(("bearer" = [])),
    params(("patientId" = Uuid, Path, description = "patient id"), AuditParams, PageParams),
    responses(
        (status = 200, description = "a page of audit events", body = Page<AuditEvent>),
        (status = 400, description = "bad parameter or cursor"),
        (status = 401, description = "no valid token"),
        (status = 403, description = "role may not read the audit trail"),
        (status = 404, description = "not yours"),
        (status = 422, description = "invalid range"),
    )
)]
async fn audit_trail(
    State(state): State<AppState>,
    caller: Caller,
    Path(patient_id): Path<Uuid>,
    OriginalUri(uri): OriginalUri,
    Query(params): Query<AuditParams>,
    Query(page): Query<PageParams>,
) -> Result<axum::Json<Page<AuditEvent>>, ApiError> {
    caller.require_patient_access(patient_id, &[Role::Patient, Role::Admin])?;
    let from = date_param("from", params.from.as_deref())?;
    let to = date_param("to", params.to.as_deref())?;
    let filters = [("from", from.map(timefmt::date)), ("to", to.map(timefmt::date))];
    let list = ListRequest::new(&state, uri.path(), &filters, &page, 20)?;
    let page = state
        .audit
        .page(patient_id, from, to, list.limit(), list.start())
        .await?;
    let own_view = caller.role == Role::Patient;
    Ok(axum::Json(list.page(&state, page, |event| {
        if own_view { event.as_seen_by(patient_id) } else { event }
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_patient_is_read_from_patient_paths_only() {
        let id = Uuid::now_v7();
        assert_eq!(patient_of(&format!("/v1/patients/{id}")), Some(id));
        assert_eq!(patient_of(&format!("/v1/patients/{id}/bookings/x")), Some(id));
        assert_eq!(patient_of("/v1/patients"), None);
        assert_eq!(patient_of("/v1/patients/not-an-id"), None);
        assert_eq!(patient_of(&format!("/v1/schedule/{id}")), None);
    }
}
