//! `/v1/alerts`: critical values a clinician must hear of now, listed until a doctor acknowledges them.

use axum::{
    extract::{OriginalUri, State},
    http::StatusCode,
    response::IntoResponse,
};
use serde::Serialize;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    AppState,
    audit::{AuditContext, AuditRecorded},
    error::ApiError,
    extract::{Path, Query},
    paging::{ListRequest, Page, PageParams},
};
use crate::{
    auth::{Caller, Role},
    domain::event::Alert,
};

/// Alert routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(open_alerts))
        .routes(routes!(acknowledge))
}

/// A critical-value alert.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({
    "id": "0194f3a2-7c1e-7d2a-9b1f-3c4d5e6f7a8b", "patientId": "0194f3a2-7c1e-7d2a-9b1f-3c4d5e6f0000",
    "bookingId": "0194f3a2-7c1e-7d2a-9b1f-3c4d5e6f1111", "testId": "0194f3a2-7c1e-7d2a-9b1f-3c4d5e6f2222",
    "raisedAt": "2026-12-01T09:00:00.000Z"
}))]
pub struct AlertView {
    /// Alert id (the `result.critical` event's id).
    pub id: Uuid,
    /// Whose result.
    pub patient_id: Uuid,
    /// The booking.
    pub booking_id: Uuid,
    /// The test whose verified result has a critical value (read it with the booking).
    pub test_id: Uuid,
    /// When the critical value was verified.
    pub raised_at: String,
    /// Who acknowledged it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acknowledged_by: Option<String>,
    /// When.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acknowledged_at: Option<String>,
}

impl From<Alert> for AlertView {
    fn from(a: Alert) -> Self {
        Self {
            id: a.id,
            patient_id: a.patient_id,
            booking_id: a.booking_id,
            test_id: a.test_id,
            raised_at: a.raised_at,
            acknowledged_by: a.acknowledged_by,
            acknowledged_at: a.acknowledged_at,
        }
    }
}

/// The open critical-value alerts (doctors, admins), oldest first: each raised in the transaction of the
/// verification that found the critical value, listed until a doctor acknowledges it. One Query per page.
#[utoipa::path(
    get,
    path = "/v1/alerts",
    tag = "alerts",
    security(("bearer" = [])),
    params(PageParams),
    responses(
        (status = 200, description = "a page of open alerts", body = Page<AlertView>),
        (status = 400, description = "bad cursor"),
        (status = 401, description = "no valid token"),
        (status = 403, description = "only doctors and admins read the alerts"),
        (status = 422, description = "invalid limit"),
    )
)]
async fn open_alerts(
    State(state): State<AppState>,
    caller: Caller,
    OriginalUri(uri): OriginalUri,
    Query(page): Query<PageParams>,
) -> Result<axum::Json<Page<AlertView>>, ApiError> {
    caller.require(&[Role::Doctor, Role::Admin])?;
    let list = ListRequest::new(&state, uri.path(), &[], &page, 50)?;
    let found = state.alerts.open(list.limit(), list.start()).await?;
    Ok(axum::Json(list.page(&state, found, AlertView::from)))
}

/// Acknowledges an alert (doctor): it leaves the open list, its record with who and when stays in the
/// patient's data, and the acknowledgement is audited and an `alert.acknowledged` event, all in one
/// transaction. Proof that the critical value reached a clinician.
#[utoipa::path(
    post,
    path = "/v1/alerts/{alertId}/ack",
    tag = "alerts",
    security(("bearer" = [])),
    params(("alertId" = Uuid, Path, description = "Alert")),
    responses(
        (status = 200, description = "acknowledged", body = AlertView),
        (status = 400, description = "malformed id"),
        (status = 401, description = "no valid token"),
        (status = 403, description = "only a doctor acknowledges"),
        (status = 404, description = "no open alert of this id (acknowledged already, or never raised)"),
    )
)]
async fn acknowledge(
    State(state): State<AppState>,
    caller: Caller,
    audit: AuditContext,
    Path(id): Path<Uuid>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require(&[Role::Doctor])?;
    let alert = state
        .alerts
        .acknowledge(id, &caller.actor_id(), &audit.draft(&caller, StatusCode::OK))
        .await?;
    Ok((axum::Extension(AuditRecorded), axum::Json(AlertView::from(alert))))
}
