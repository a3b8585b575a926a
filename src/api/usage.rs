//! The one place the API reads the store: the per-request meter behind the `Dynamodb-Usage` header, which the
//! store fills as it calls DynamoDB.

use axum::{
    extract::{MatchedPath, Request},
    http::HeaderValue,
    middleware::Next,
    response::Response,
};

use super::{DYNAMODB_USAGE, method_label};
use crate::store::usage;

/// Adds `Dynamodb-Usage: calls=<n>, rcu=<r>, wcu=<w>` to every response, and records the request in the
/// metrics (`medbook_http_requests_total{method,route,status}`, `medbook_http_request_duration_seconds`).
pub(super) async fn record_usage(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "(unmatched)".to_owned(), |p| p.as_str().to_owned());
    let method = method_label(req.method());
    let started = std::time::Instant::now();
    let (mut response, usage) = usage::measure(next.run(req)).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("medbook_http_requests_total", "method" => method, "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("medbook_http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    if let Ok(value) = HeaderValue::from_str(&usage.header_value()) {
        response.headers_mut().insert(DYNAMODB_USAGE, value);
    }
    response
}
