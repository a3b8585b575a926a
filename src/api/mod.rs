//! HTTP API: one module per resource, each with its own `router()`; request and response types carry
//! utoipa schemas, so the OpenAPI document is generated from the handlers themselves.

pub mod alerts;
pub mod audit;
pub mod bookings;
pub mod cursor;
pub mod error;
pub mod events;
pub mod extract;
pub mod fhir;
pub mod health;
pub mod identities;
pub mod lab;
pub mod layers;
pub mod paging;
pub mod patients;
pub mod report;
pub mod results;
pub mod sites;
pub mod test_types;
mod usage;
pub mod webhooks;

use std::{sync::Arc, time::Duration};

use axum::{
    Router,
    extract::{DefaultBodyLimit, MatchedPath, Request},
    http::{HeaderName, HeaderValue, Method, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use tower_http::{
    catch_panic::CatchPanicLayer,
    compression::CompressionLayer,
    cors::{AllowOrigin, CorsLayer},
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    sensitive_headers::SetSensitiveRequestHeadersLayer,
    timeout::TimeoutLayer,
    trace::TraceLayer,
};
use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use crate::{
    auth::Authenticator,
    service::{
        audit::AuditTrail, bookings::Bookings, catalog::Catalog, health::Health, patients::Patients, results::Results,
    },
};

/// Response header reporting the DynamoDB calls and capacity a request used.
pub const DYNAMODB_USAGE: HeaderName = HeaderName::from_static("dynamodb-usage");
/// Request id header, generated when absent and echoed back.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Shared state of every handler: one pointer, so the clone each extractor and middleware takes costs one
/// atomic increment.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    /// State over `services`.
    pub fn new(services: Services) -> Self {
        Self(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// The use cases and keys the handlers share.
#[derive(Debug)]
pub struct Services {
    /// Test type catalog.
    pub catalog: Catalog,
    /// Patient records.
    pub patients: Patients,
    /// Bookings, slots, the lab's views.
    pub bookings: Bookings,
    /// Results, notes, reviews, the worklist.
    pub results: Results,
    /// Sites, their days, slots and holds.
    pub sites: crate::service::sites::Sites,
    /// The audit trail.
    pub audit: AuditTrail,
    /// Readiness.
    pub health: Health,
    /// Token verification: medbook's own tokens and the OpenID provider's.
    pub auth: Arc<Authenticator>,
    /// Sign-in identities and the patients they are.
    pub identities: crate::service::identities::Identities,
    /// The domain-event feed.
    pub events: crate::service::events::Events,
    /// Critical-value alerts.
    pub alerts: crate::service::alerts::Alerts,
    /// Webhook endpoints and their deliveries.
    pub webhooks: crate::service::webhooks::Webhooks,
    /// Page cursor signing.
    pub cursors: Arc<cursor::CursorKey>,
    /// The laboratory's name on reports.
    pub lab_name: String,
}

/// The OpenAPI document's fixed parts; paths and schemas come from the resource routers.
#[derive(OpenApi)]
#[openapi(
    info(title = "medbook"),
    modifiers(&BearerAuth),
    components(schemas(error::Problem)),
    tags(
        (name = "test-types", description = "The catalog of lab tests, versioned"),
        (name = "patients", description = "Patient records"),
        (name = "identities", description = "Who a signed-in caller is; self-registration; linking sign-in identities to patients"),
        (name = "bookings", description = "Booking tests into slots"),
        (name = "results", description = "Results, doctors' notes and reviews"),
        (name = "lab", description = "Slots, the day's schedule, tests by type"),
        (name = "sites", description = "Sites in their time zones: opening hours, day rules, slots, holds"),
        (name = "events", description = "The feed of domain events, written in each change's own transaction"),
        (name = "alerts", description = "Critical values a clinician must hear of now, until a doctor acknowledges them"),
        (name = "webhooks", description = "Endpoints that receive the events, signed (Standard Webhooks), retried for 24 h, with a deliveries log"),
        (name = "health", description = "Liveness and readiness"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// Every error response is problem+json: the handlers' annotations give each error's status and what it
/// means there, and this adds the one body they share. Then the responses any operation can give because of
/// middleware: the rate limit (429), the request timeout or an unavailable database (503), and, for
/// operations with a body, the body limit (413) and a body that stops short (408).
struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let problem = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    error::PROBLEM_JSON,
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("Problem")))
                        .build(),
                )
                .build()
        };
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.patch,
                &mut item.delete,
            ];
            for operation in operations.into_iter().flatten() {
                let responses = &mut operation.responses.responses;
                for (status, response) in responses.iter_mut() {
                    if let utoipa::openapi::RefOr::T(response) = response
                        && (status.starts_with('4') || status.starts_with('5'))
                        && response.content.is_empty()
                    {
                        response.content.insert(
                            error::PROBLEM_JSON.to_owned(),
                            ContentBuilder::new()
                                .schema(Some(Ref::from_schema_name("Problem")))
                                .build(),
                        );
                    }
                }
                responses
                    .entry("429".into())
                    .or_insert_with(|| problem("too many requests from this client; see Retry-After").into());
                responses
                    .entry("503".into())
                    .or_insert_with(|| problem("timed out, or the database is unavailable; see Retry-After").into());
                if operation.request_body.is_some() {
                    responses
                        .entry("413".into())
                        .or_insert_with(|| problem("request body over the limit").into());
                    responses
                        .entry("408".into())
                        .or_insert_with(|| problem("the request body did not arrive whole").into());
                }
            }
        }
    }
}

fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(test_types::router())
        .merge(patients::router())
        .merge(identities::router())
        .merge(bookings::router())
        .merge(fhir::router())
        .merge(report::router())
        .merge(results::router())
        .merge(lab::router())
        .merge(sites::router())
        .merge(audit::router())
        .merge(events::router())
        .merge(webhooks::router())
        .merge(alerts::router())
        .merge(health::router())
}

/// The routes and the OpenAPI document generated from them.
fn routes_and_spec() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (routes, mut spec) = api_router().split_for_parts();
    // Runs after the routes are in: a modifier on ApiDoc would see no paths yet.
    CommonResponses.modify(&mut spec);
    paging::reference_page_items(&mut spec);
    (routes, spec)
}

/// The generated OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes_and_spec().1
}

/// Who may read `/metrics`. With the production store (`MEDBOOK_STORE=aws`) it is off unless the operator sets
/// `MEDBOOK_METRICS_TOKEN` or says `MEDBOOK_METRICS_PUBLIC=true` (a scraper on a private network).
#[derive(Debug, Clone)]
pub enum MetricsAccess {
    /// Anyone (the embedded development store, or `MEDBOOK_METRICS_PUBLIC=true`).
    Public,
    /// Only `Authorization: Bearer <token>`.
    Token(crate::config::Secret),
    /// Nobody: 404.
    Off,
}

/// Limits the HTTP layer enforces.
#[derive(Debug, Clone)]
pub struct HttpPolicy {
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Time a request may take before a 503.
    pub request_timeout: Duration,
    /// Sustained requests per second per client.
    pub rate_per_sec: u32,
    /// Burst per client.
    pub rate_burst: u32,
    /// CORS origins; empty: no CORS.
    pub cors_origins: Vec<String>,
    /// Who may read `/metrics`.
    pub metrics: MetricsAccess,
}

impl From<&crate::config::Settings> for HttpPolicy {
    fn from(s: &crate::config::Settings) -> Self {
        Self {
            max_body_bytes: s.limits.max_body_bytes,
            request_timeout: s.limits.request_timeout,
            rate_per_sec: s.limits.rate_per_sec,
            rate_burst: s.limits.rate_burst,
            cors_origins: s.limits.cors_origins.clone(),
            metrics: match (&s.server.metrics_token, s.server.metrics_public, s.store.kind) {
                (Some(token), _, _) => MetricsAccess::Token(token.clone()),
                (None, true, _) | (None, false, crate::config::StoreKind::Embedded) => MetricsAccess::Public,
                (None, false, crate::config::StoreKind::Aws) => MetricsAccess::Off,
            },
        }
    }
}

/// The whole HTTP application: routes, Swagger UI at `/docs`, the spec at `/openapi.json`, and middleware.
pub fn router(state: AppState, policy: &HttpPolicy) -> Router {
    let (routes, spec) = routes_and_spec();
    let authenticating = middleware::from_fn_with_state(state.clone(), extract::authenticate);
    let routes = routes
        .fallback(|| async { error::ApiError::NotFound("route") })
        .method_not_allowed_fallback(|| async { error::ApiError::MethodNotAllowed })
        .layer(middleware::from_fn_with_state(
            state.clone(),
            audit::audit_patient_requests,
        ))
        .with_state(state);
    let metrics_access = policy.metrics.clone();
    let mut app = Router::new()
        .route(
            "/metrics",
            axum::routing::get(move |headers: axum::http::HeaderMap| metrics(headers, metrics_access.clone())),
        )
        .merge(SwaggerUi::new("/docs").url("/openapi.json", spec))
        .merge(routes)
        .layer(CompressionLayer::new())
        .layer(DefaultBodyLimit::max(policy.max_body_bytes))
        .layer(layers::rate_limit(policy.rate_per_sec, policy.rate_burst))
        // Outside the rate limit, which counts a request against its caller.
        .layer(authenticating)
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            policy.request_timeout,
        ))
        // Outside the limits, so a 429 or a timeout still says what it cost; every route, docs included.
        .layer(middleware::from_fn(usage::record_usage))
        .layer(middleware::from_fn(refuse_repeated_authorization));
    if !policy.cors_origins.is_empty() {
        let origins: Vec<HeaderValue> = policy
            .cors_origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        app = app.layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(origins))
                .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
                .allow_headers([
                    header::AUTHORIZATION,
                    header::CONTENT_TYPE,
                    header::IF_MATCH,
                    HeaderName::from_static("idempotency-key"),
                    REQUEST_ID,
                ])
                .expose_headers([
                    header::ETAG,
                    header::LOCATION,
                    header::RETRY_AFTER,
                    DYNAMODB_USAGE,
                    REQUEST_ID,
                ])
                .max_age(Duration::from_secs(600)),
        );
    }
    app.layer(middleware::from_fn(layers::security_headers))
        .layer(middleware::map_response(layers::problem_for_bare_errors))
        .layer(CatchPanicLayer::custom(|_| {
            error::ApiError::Internal("handler panicked".into()).into_response()
        }))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
                    let request_id = req
                        .headers()
                        .get(REQUEST_ID)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    tracing::info_span!(
                        "request",
                        method = %req.method(),
                        route = route.as_deref().unwrap_or("(unmatched)"),
                        request_id,
                    )
                })
                .on_response(|res: &Response, latency: Duration, _span: &tracing::Span| {
                    tracing::info!(
                        status = res.status().as_u16(),
                        latency_ms = latency.as_secs_f64() * 1000.0,
                        "response"
                    );
                }),
        )
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
            header::COOKIE,
        ]))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(middleware::from_fn(sanitize_request_id))
}

/// `GET /metrics`: Prometheus text, as [`MetricsAccess`] allows.
async fn metrics(headers: axum::http::HeaderMap, access: MetricsAccess) -> Response {
    if let MetricsAccess::Off = access {
        return error::ApiError::NotFound("route").into_response();
    }
    if let MetricsAccess::Token(token) = access {
        let sent = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !constant_time_eq(sent.as_bytes(), token.expose()) {
            return error::ApiError::Unauthorized.into_response();
        }
    }
    let handle = crate::telemetry::metrics();
    handle.run_upkeep();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render()).into_response()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The `method` label of a request: one of the methods the API knows, or `other` (a client may send any token
/// as a method; none of it becomes a label). Every other label is a route template or a status code.
pub(crate) fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Longest `X-Request-Id` kept as sent.
pub const MAX_REQUEST_ID: usize = 64;

/// Drops an `X-Request-Id` that is not 1 to 64 characters of `[A-Za-z0-9._-]`, so the request-id layer
/// generates one instead: a client cannot store arbitrary text in the audit trail or forge another request's
/// correlation.
async fn sanitize_request_id(mut req: Request, next: Next) -> Response {
    let valid = |v: &HeaderValue| {
        let bytes = v.as_bytes();
        (1..=MAX_REQUEST_ID).contains(&bytes.len())
            && bytes.iter().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(b))
    };
    let values = req.headers().get_all(REQUEST_ID);
    let keep = values.iter().count() == 1 && values.iter().all(valid);
    if !keep {
        req.headers_mut().remove(REQUEST_ID);
    }
    next.run(req).await
}

/// A request with more than one `Authorization` header is refused (400): which one counts would be a guess.
async fn refuse_repeated_authorization(req: Request, next: Next) -> Response {
    if req.headers().get_all(header::AUTHORIZATION).iter().nth(1).is_some() {
        return error::ApiError::BadRequest("send one Authorization header".into()).into_response();
    }
    next.run(req).await
}
