//! Liveness and readiness probes.

use axum::{extract::State, http::StatusCode, response::IntoResponse};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{AppState, error::ApiError};

/// Health routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(live)).routes(routes!(ready))
}

/// Liveness: 200 while the process runs.
#[utoipa::path(get, path = "/health/live", tag = "health", responses((status = 200, description = "alive")))]
async fn live() -> StatusCode {
    StatusCode::OK
}

/// Readiness: 200 when the table and its indexes are ACTIVE and the engine answers.
#[utoipa::path(
    get,
    path = "/health/ready",
    tag = "health",
    responses(
        (status = 200, description = "ready"),
        (status = 503, description = "not ready"),
    )
)]
async fn ready(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    use crate::service::health::Readiness;
    match state.health.ready().await {
        Readiness::Ready => Ok(StatusCode::OK),
        // For the operator's probe: which table is missing. Data endpoints do not name it.
        Readiness::TableMissing(table) => Err(ApiError::NotReady(format!(
            "table `{table}` does not exist; recreate it with `medbook migrate`"
        ))),
        Readiness::Draining => Err(ApiError::NotReady("shutting down".into())),
        Readiness::NotActive => Err(ApiError::NotReady("the table or an index is not ACTIVE yet".into())),
        Readiness::Unreachable => Err(ApiError::Unavailable),
    }
}
