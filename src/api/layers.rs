//! Cross-cutting protections: per-client rate limit, security headers, and problem+json for errors that
//! middleware (not a handler) produces.

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use axum::{
    body::Body,
    extract::{ConnectInfo, Request},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use governor::middleware::NoOpMiddleware;
use tower_governor::{GovernorError, GovernorLayer, governor::GovernorConfigBuilder, key_extractor::KeyExtractor};

use super::error::{PROBLEM_JSON, Problem};
use super::extract::Authentication;

/// Whom a request counts against: the token's subject when it carries a valid token, else the peer address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ClientKey {
    /// An authenticated caller (`role:issuer:sub`).
    Subject(String),
    /// An anonymous caller or one with a bad token.
    Peer(IpAddr),
    /// No peer address (in-process calls).
    Unknown,
}

/// Extracts a [`ClientKey`] from what [`super::extract::authenticate`] found (a verified token), so a forged
/// subject cannot buy a fresh budget.
#[derive(Debug, Clone, Copy)]
pub struct ClientKeyExtractor;

impl KeyExtractor for ClientKeyExtractor {
    type Key = ClientKey;

    fn extract<T>(&self, req: &axum::http::Request<T>) -> Result<ClientKey, GovernorError> {
        Ok(match req.extensions().get::<Authentication>() {
            Some(Authentication::Caller(c)) => ClientKey::Subject(format!("{}:{}:{}", c.role, c.issuer, c.sub)),
            _ => match req.extensions().get::<ConnectInfo<SocketAddr>>() {
                Some(ConnectInfo(addr)) => ClientKey::Peer(addr.ip()),
                None => ClientKey::Unknown,
            },
        })
    }
}

/// The rate limit: `per_sec` sustained, `burst` at once, per [`ClientKey`]; over it, 429 problem+json with
/// Retry-After.
pub fn rate_limit(per_sec: u32, burst: u32) -> GovernorLayer<ClientKeyExtractor, NoOpMiddleware, Body> {
    let config = GovernorConfigBuilder::default()
        .period(Duration::from_nanos(1_000_000_000 / u64::from(per_sec.max(1))))
        .burst_size(burst.max(1))
        .key_extractor(ClientKeyExtractor)
        .finish()
        .expect("period and burst are non-zero");
    GovernorLayer::new(config).error_handler(|error| {
        let (status, retry_after) = match error {
            GovernorError::TooManyRequests { wait_time, .. } => (StatusCode::TOO_MANY_REQUESTS, wait_time.max(1)),
            _ => (StatusCode::SERVICE_UNAVAILABLE, 1),
        };
        let mut response = problem(status, "too many requests from this client; slow down and retry later");
        if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response
    })
}

fn problem(status: StatusCode, detail: &str) -> Response {
    let kind = match status {
        StatusCode::TOO_MANY_REQUESTS => "rate-limited",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        StatusCode::REQUEST_TIMEOUT => "timeout",
        StatusCode::PAYLOAD_TOO_LARGE => "payload-too-large",
        StatusCode::METHOD_NOT_ALLOWED => "method-not-allowed",
        StatusCode::NOT_FOUND => "not-found",
        s if s.is_server_error() => "internal",
        _ => "bad-request",
    };
    let body = Problem {
        problem_type: format!("{}{kind}", super::error::PROBLEM_TYPE_PREFIX),
        title: status.canonical_reason().unwrap_or("Error").to_owned(),
        status: status.as_u16(),
        detail: detail.to_owned(),
        errors: Vec::new(),
    };
    let mut response = (status, axum::Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    response
}

/// Gives an error response that middleware produced without a body (the timeout's 503, the body limit's
/// 413, ...) a problem+json body, so every error a client sees has the same shape.
pub async fn problem_for_bare_errors(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || response.headers().contains_key(header::CONTENT_TYPE)
    {
        return response;
    }
    let detail = match status {
        StatusCode::SERVICE_UNAVAILABLE => "the request took too long; retry shortly",
        StatusCode::PAYLOAD_TOO_LARGE => "the request body is over the limit",
        _ => "the request could not be served",
    };
    let (parts, _) = response.into_parts();
    let mut fresh = problem(status, detail);
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_LENGTH {
            fresh.headers_mut().insert(name.clone(), value.clone());
        }
    }
    if status == StatusCode::SERVICE_UNAVAILABLE && !fresh.headers().contains_key(header::RETRY_AFTER) {
        fresh
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    fresh
}

/// Security headers on every response: no MIME sniffing, no framing, no referrer, and no caching unless a
/// handler says otherwise (clinical data must not linger in shared caches).
pub async fn security_headers(req: Request, next: axum::middleware::Next) -> Response {
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}
