//! Problem details (RFC 9457): every error response is `application/problem+json`.
//!
//! # Status codes
//! | status | type (suffix)             | when |
//! |--------|---------------------------|------|
//! | 400    | `bad-request`             | malformed JSON, bad path or query parameter, missing required header |
//! | 401    | `unauthorized`            | no, bad or expired bearer token |
//! | 403    | `forbidden`               | the caller's role may not do this |
//! | 404    | `not-found`               | no such resource, or another patient's |
//! | 405    | `method-not-allowed`      | the route exists, the method does not |
//! | 409    | `conflict` (or specific)  | the resource's state forbids it (exists already, slot full, ...) |
//! | 412    | `precondition-failed`     | If-Match does not match the current version |
//! | 413    | `payload-too-large`       | body over the limit |
//! | 415    | `unsupported-media-type`  | body is not JSON |
//! | 422    | `validation`              | well-formed but invalid input; `errors` names each field |
//! | 428    | `precondition-required`   | If-Match is required and missing |
//! | 500    | `internal`                | a defect (details only in the log) |
//! | 503    | `unavailable`             | the database is unreachable or throttling; Retry-After says when to retry |

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;

use crate::{
    auth::Denied,
    service::{FieldError, ServiceError},
};

/// Prefix of every problem `type`.
pub const PROBLEM_TYPE_PREFIX: &str = "urn:medbook:problem:";
/// Media type of problem details.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// A problem details body.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(example = json!({
    "type": "urn:medbook:problem:validation",
    "title": "Invalid request",
    "status": 422,
    "detail": "1 field is invalid",
    "errors": [{"field": "birthDate", "message": "must not be in the future"}]
}))]
pub struct Problem {
    /// URI identifying the problem type.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// Short summary of the problem type.
    pub title: String,
    /// HTTP status code.
    pub status: u16,
    /// What happened in this occurrence.
    pub detail: String,
    /// For validation problems: each invalid field.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ProblemField>,
}

/// One invalid field.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(example = crate::examples::problem_field)]
pub struct ProblemField {
    /// JSON path of the field (or the header or parameter name).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// An error the API answers with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400.
    #[error("{0}")]
    BadRequest(String),
    /// 401.
    #[error("authentication required")]
    Unauthorized,
    /// 403.
    #[error("forbidden")]
    Forbidden,
    /// 404.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// 405.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 409, with a specific type suffix.
    #[error("{detail}")]
    Conflict {
        /// Type suffix, e.g. `slot-full`.
        kind: &'static str,
        /// What happened.
        detail: String,
    },
    /// 408: the request body did not arrive whole.
    #[error("request body incomplete")]
    RequestTimeout,
    /// 412.
    #[error("precondition failed")]
    PreconditionFailed,
    /// 413.
    #[error("payload too large")]
    PayloadTooLarge,
    /// 415.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 422.
    #[error("invalid input")]
    Validation(Vec<FieldError>),
    /// 428.
    #[error("If-Match required")]
    PreconditionRequired,
    /// 503.
    #[error("unavailable")]
    Unavailable,
    /// 503: the table is gone.
    #[error("table not found")]
    TableMissing,
    /// 503 from the readiness probe, saying why.
    #[error("{0}")]
    NotReady(String),
    /// 500; the message is logged, never sent.
    #[error("internal: {0}")]
    Internal(String),
}

impl ApiError {
    /// A 422 for one field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }

    fn parts(&self) -> (StatusCode, &'static str, &'static str, String) {
        match self {
            Self::BadRequest(d) => (StatusCode::BAD_REQUEST, "bad-request", "Bad request", d.clone()),
            Self::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Unauthorized",
                "a valid bearer token is required".into(),
            ),
            Self::Forbidden => (
                StatusCode::FORBIDDEN,
                "forbidden",
                "Forbidden",
                "your role may not do this".into(),
            ),
            Self::NotFound(what) => (
                StatusCode::NOT_FOUND,
                "not-found",
                "Not found",
                format!("{what} not found"),
            ),
            Self::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
                "this resource does not support that method".into(),
            ),
            Self::Conflict { kind, detail } => (StatusCode::CONFLICT, kind, "Conflict", detail.clone()),
            Self::RequestTimeout => (
                StatusCode::REQUEST_TIMEOUT,
                "timeout",
                "Request timeout",
                "the request body did not arrive whole; send it again".into(),
            ),
            Self::PreconditionFailed => (
                StatusCode::PRECONDITION_FAILED,
                "precondition-failed",
                "Precondition failed",
                "If-Match does not match the current version; read it again and retry".into(),
            ),
            Self::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Payload too large",
                "the request body is over the limit".into(),
            ),
            Self::UnsupportedMediaType(d) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
                d.clone(),
            ),
            Self::Validation(errors) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation",
                "Invalid request",
                match errors.as_slice() {
                    [one] => format!("{}: {}", one.field, one.message),
                    many => format!("{} fields are invalid", many.len()),
                },
            ),
            Self::PreconditionRequired => (
                StatusCode::PRECONDITION_REQUIRED,
                "precondition-required",
                "Precondition required",
                "send If-Match with the ETag you read".into(),
            ),
            Self::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Service unavailable",
                "the database is not answering; retry shortly".into(),
            ),
            Self::NotReady(d) => (StatusCode::SERVICE_UNAVAILABLE, "not-ready", "Not ready", d.clone()),
            Self::TableMissing => (
                StatusCode::SERVICE_UNAVAILABLE,
                "table-not-found",
                "Service unavailable",
                "the database table is missing; the operators have been alerted, retry later".into(),
            ),
            Self::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
                "an unexpected error happened; it has been logged".into(),
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, kind, title, detail) = self.parts();
        match &self {
            Self::Internal(message) => tracing::error!(error = %message, "internal error"),
            Self::Unavailable => tracing::warn!("database unavailable"),
            Self::TableMissing => {
                tracing::error!("the DynamoDB table does not exist: recreate it with `medbook migrate`");
            }
            _ => {}
        }
        let errors = match &self {
            Self::Validation(errors) => errors
                .iter()
                .map(|e| ProblemField {
                    field: e.field.clone(),
                    message: e.message.clone(),
                })
                .collect(),
            _ => Vec::new(),
        };
        let problem = Problem {
            problem_type: format!("{PROBLEM_TYPE_PREFIX}{kind}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail,
            errors,
        };
        let mut response = (status, Json(problem)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        match self {
            Self::Unauthorized => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"medbook\""),
                );
            }
            Self::Unavailable => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            Self::TableMissing | Self::NotReady(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            _ => {}
        }
        response
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::NotFound(what) => Self::NotFound(what),
            ServiceError::Conflict { kind, detail } => Self::Conflict { kind, detail },
            ServiceError::VersionMismatch => Self::PreconditionFailed,
            ServiceError::PreconditionRequired => Self::PreconditionRequired,
            ServiceError::Invalid(errors) => Self::Validation(errors),
            ServiceError::Unavailable(detail) => {
                tracing::warn!(error = %detail, "database unavailable");
                Self::Unavailable
            }
            ServiceError::TableMissing => Self::TableMissing,
            ServiceError::Internal(detail) => Self::Internal(detail),
        }
    }
}

impl From<Denied> for ApiError {
    fn from(d: Denied) -> Self {
        match d {
            Denied::Forbidden => Self::Forbidden,
            Denied::Hidden => Self::NotFound("patient"),
        }
    }
}
