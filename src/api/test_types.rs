//! `/v1/test-types`: the catalog.

use axum::{
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::IntoResponse,
};
use serde::Serialize;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    AppState,
    error::ApiError,
    extract::{IfMatch, Json, Path, etag},
};
use crate::{
    auth::{Caller, Role},
    domain::test_type::{Analyte, TestType, TestTypeDefinition},
};

/// Catalog routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_test_types, create_test_type))
        .routes(routes!(get_test_type, replace_test_type))
        .routes(routes!(get_test_type_version))
}

/// One version of a test type.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = crate::examples::test_type)]
pub struct TestTypeView {
    /// Version number, from 1; bookings point at the version they booked.
    pub version: u32,
    /// Catalog code.
    pub code: String,
    /// Display name.
    pub name: String,
    /// Category.
    pub category: String,
    /// LOINC code of the panel or test.
    pub loinc: String,
    /// Specimen collected.
    pub specimen: String,
    /// What the patient must do beforehand, if anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preparation: Option<String>,
    /// Minutes the collection takes.
    pub duration_minutes: u32,
    /// Price in minor units of `currency`.
    pub price_cents: u32,
    /// ISO 4217 currency code.
    pub currency: String,
    /// Whether it can be booked.
    pub active: bool,
    /// What is measured.
    pub analytes: Vec<Analyte>,
    /// When this version was created.
    pub created_at: String,
}

impl From<TestType> for TestTypeView {
    fn from(t: TestType) -> Self {
        let d = t.definition;
        Self {
            version: t.version,
            code: d.code,
            name: d.name,
            category: d.category,
            loinc: d.loinc,
            specimen: d.specimen,
            preparation: d.preparation,
            duration_minutes: d.duration_minutes,
            price_cents: d.price_cents,
            currency: d.currency,
            active: d.active,
            analytes: d.analytes,
            created_at: t.created_at,
        }
    }
}

/// The active catalog.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = crate::examples::test_type_list)]
pub struct TestTypeList {
    /// Active test types, ordered by code.
    pub items: Vec<TestTypeView>,
}

/// The catalog holds no patient data: shared caches may keep it as long as this process does.
const CATALOG_CACHE_CONTROL: &str = "public, max-age=30";

fn with_etag(test_type: &TestType) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(CATALOG_CACHE_CONTROL));
    if let Ok(v) = HeaderValue::from_str(&etag(test_type.version.into())) {
        headers.insert(header::ETAG, v);
    }
    headers
}

/// Lists the active test types (no authentication needed). Served from an in-process cache.
#[utoipa::path(
    get,
    path = "/v1/test-types",
    tag = "test-types",
    responses(
        (status = 200, description = "the active catalog", body = TestTypeList),
        (status = 503, description = "database unavailable"),
    )
)]
async fn list_test_types(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let items = state.catalog.active().await?;
    Ok((
        [(header::CACHE_CONTROL, CATALOG_CACHE_CONTROL)],
        axum::Json(TestTypeList {
            items: items.into_iter().map(TestTypeView::from).collect(),
        }),
    ))
}

/// A test type's current version.
#[utoipa::path(
    get,
    path = "/v1/test-types/{code}",
    tag = "test-types",
    params(("code" = String, Path, description = "test type code", example = "CBC")),
    responses(
        (status = 200, description = "current version", body = TestTypeView, headers(("ETag" = String, description = "the version"))),
        (status = 404, description = "no such test type"),
    )
)]
async fn get_test_type(State(state): State<AppState>, Path(code): Path<String>) -> Result<impl IntoResponse, ApiError> {
    let test_type = state.catalog.current(&code).await?;
    Ok((with_etag(&test_type), axum::Json(TestTypeView::from(test_type))))
}

/// One version of a test type; bookings point at the version they booked.
#[utoipa::path(
    get,
    path = "/v1/test-types/{code}/versions/{version}",
    tag = "test-types",
    params(
        ("code" = String, Path, description = "test type code", example = "CBC"),
        ("version" = u32, Path, description = "version number", example = 1),
    ),
    responses(
        (status = 200, description = "that version", body = TestTypeView),
        (status = 400, description = "malformed version"),
        (status = 404, description = "no such version"),
    )
)]
async fn get_test_type_version(
    State(state): State<AppState>,
    Path((code, version)): Path<(String, u32)>,
) -> Result<impl IntoResponse, ApiError> {
    let test_type = state.catalog.version(&code, version).await?;
    Ok((with_etag(&test_type), axum::Json(TestTypeView::from(test_type))))
}

/// Adds a test type at version 1 (admin).
#[utoipa::path(
    post,
    path = "/v1/test-types",
    tag = "test-types",
    security(("bearer" = [])),
    request_body = TestTypeDefinition,
    responses(
        (status = 201, description = "created", body = TestTypeView, headers(("Location" = String), ("ETag" = String))),
        (status = 400, description = "malformed JSON"),
        (status = 401, description = "no valid token"),
        (status = 403, description = "not an admin"),
        (status = 409, description = "code exists already"),
        (status = 415, description = "not JSON"),
        (status = 422, description = "invalid definition"),
    )
)]
async fn create_test_type(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<TestTypeDefinition>, ApiError>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require(&[Role::Admin])?;
    let Json(definition) = body?;
    let test_type = state.catalog.create(definition).await?;
    let mut headers = with_etag(&test_type);
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/test-types/{}", test_type.definition.code)) {
        headers.insert(header::LOCATION, v);
    }
    Ok((StatusCode::CREATED, headers, axum::Json(TestTypeView::from(test_type))))
}

/// Replaces a test type with a new version (admin, If-Match required). Earlier versions stay readable.
#[utoipa::path(
    put,
    path = "/v1/test-types/{code}",
    tag = "test-types",
    security(("bearer" = [])),
    params(
        ("code" = String, Path, description = "test type code", example = "CBC"),
        ("If-Match" = String, Header, description = "ETag of the current version", example = "\"1\""),
    ),
    request_body = TestTypeDefinition,
    responses(
        (status = 200, description = "the new version", body = TestTypeView, headers(("ETag" = String))),
        (status = 400, description = "malformed JSON"),
        (status = 401, description = "no valid token"),
        (status = 403, description = "not an admin"),
        (status = 404, description = "no such test type"),
        (status = 412, description = "stale If-Match"),
        (status = 415, description = "not JSON"),
        (status = 422, description = "invalid definition"),
        (status = 428, description = "If-Match missing"),
    )
)]
async fn replace_test_type(
    State(state): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
    if_match: Result<IfMatch, ApiError>,
    body: Result<Json<TestTypeDefinition>, ApiError>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require(&[Role::Admin])?;
    let IfMatch(expected) = if_match?;
    let Json(definition) = body?;
    let test_type = state.catalog.replace(&code, expected, definition).await?;
    Ok((with_etag(&test_type), axum::Json(TestTypeView::from(test_type))))
}
