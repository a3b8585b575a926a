//! Extractors whose rejections are problem+json, so no malformed request ever gets axum's plain-text
//! default, plus the bearer-token caller and If-Match.

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Request, rejection::PathRejection, rejection::QueryRejection},
    http::{header, request::Parts},
};
use serde::de::DeserializeOwned;

use super::{AppState, error::ApiError};
use crate::{
    auth::{Caller, Role, TokenError},
    service::{Expected, FieldError},
};

/// A JSON body: 415 unless the content type is JSON, 400 for malformed JSON, 422 naming the field for a
/// wrong type, a missing field or an unknown field.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|mime| {
                let mime = mime.trim().to_ascii_lowercase();
                mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::UnsupportedMediaType(
                "send the body as application/json".into(),
            ));
        }
        // A body that stops short (a client that closed, or one that stalls) is a 408, answered before the
        // request timeout's 503 (which means the service was slow, not the client).
        let bytes = match tokio::time::timeout(BODY_TIMEOUT, Bytes::from_request(req, state)).await {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(e)) if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(ApiError::PayloadTooLarge);
            }
            Ok(Err(_)) | Err(_) => return Err(ApiError::RequestTimeout),
        };
        parse_json(&bytes).map(Json)
    }
}

/// Longest wait for a request body once its headers are in.
pub const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A serde message as a client may read it: Rust type names (`struct CreatePatient with 6 elements`) become
/// what they mean in JSON.
fn public_message(message: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut words = message.split(' ').peekable();
    while let Some(word) = words.next() {
        match word {
            "struct" | "enum" | "tuple" if words.peek().is_some() => {
                let name = words.next().unwrap_or_default();
                let meaning = if word == "enum" {
                    "one of the allowed values"
                } else {
                    "a JSON object"
                };
                let trailing: String = name.chars().rev().take_while(|c| c.is_ascii_punctuation()).collect();
                out.push(format!("{meaning}{trailing}"));
                // "with 6 elements" says nothing to a client.
                if words.peek() == Some(&"with") {
                    words.nth(2);
                }
            }
            w if w.contains("::") => out.push("a value".into()),
            w => out.push(w.into()),
        }
    }
    out.join(" ")
}

/// Deserialises JSON, naming the failing field.
///
/// # Errors
/// 400 for syntax errors, 422 for data errors.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Every body of this API is a JSON object; serde would also take an array of the fields in order.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(ApiError::invalid("(body)", "must be a JSON object"));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize(&mut de) {
        Ok(value) => {
            de.end()
                .map_err(|e| ApiError::BadRequest(format!("malformed JSON: {e}")))?;
            Ok(value)
        }
        Err(err) => {
            let path = err.path().to_string();
            let inner = err.into_inner();
            match inner.classify() {
                serde_json::error::Category::Data => {
                    let message = public_message(&strip_position(&inner.to_string()));
                    // The path already ends at an unknown field; a missing one is named only in the message.
                    let missing = message
                        .strip_prefix("missing field `")
                        .and_then(|m| m.split('`').next());
                    let field = match (missing, path.as_str()) {
                        (Some(name), ".") => name.to_owned(),
                        (Some(name), parent) => format!("{parent}.{name}"),
                        (None, ".") => "(body)".to_owned(),
                        (None, _) => path,
                    };
                    Err(ApiError::Validation(vec![FieldError::new(field, message)]))
                }
                _ => Err(ApiError::BadRequest(format!(
                    "malformed JSON: {}",
                    public_message(&inner.to_string())
                ))),
            }
        }
    }
}

/// serde_json appends " at line 1 column 42" to data errors; the field path says more.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// Path parameters; a malformed one is a 400 naming it.
#[derive(Debug, Clone, Copy)]
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(p) => Ok(Path(p.0)),
            Err(e) => {
                let params = axum::extract::RawPathParams::from_request_parts(parts, state)
                    .await
                    .ok();
                Err(ApiError::BadRequest(path_problem(&e, params.as_ref())))
            }
        }
    }
}

/// What is wrong with a path, without the library's wording (`Invalid URL: Cannot parse …`): the first
/// parameter whose value is not what its name promises (`…Id`: a UUID; `n`: a number).
fn path_problem(rejection: &PathRejection, params: Option<&axum::extract::RawPathParams>) -> String {
    let bad = params.into_iter().flat_map(|p| p.iter()).find_map(|(key, value)| {
        if key.ends_with("Id") && uuid::Uuid::parse_str(value).is_err() {
            Some(format!("bad path parameter: `{key}` must be an id (UUID)"))
        } else if key == "n" && value.parse::<u32>().is_err() {
            Some(format!("bad path parameter: `{key}` must be a version number"))
        } else {
            None
        }
    });
    bad.unwrap_or_else(|| {
        tracing::debug!(error = %rejection.body_text(), "path refused");
        "bad path: a parameter is not valid".into()
    })
}

/// Query parameters; a malformed one is a 400 naming it.
#[derive(Debug, Clone, Copy)]
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|e: QueryRejection| {
                let text = e.body_text();
                let detail = text
                    .strip_prefix("Failed to deserialize query string: ")
                    .unwrap_or(&text);
                ApiError::BadRequest(format!("bad query parameter: {}", public_message(detail)))
            })
    }
}

/// What [`authenticate`] found for a request: no bearer token, a refused one, or its caller.
#[derive(Debug, Clone)]
pub enum Authentication {
    /// No `Authorization: Bearer` header.
    Anonymous,
    /// A token that is not accepted (401), or a good one whose roles map to no medbook role (403).
    Refused {
        /// 403 rather than 401.
        forbidden: bool,
    },
    /// A valid token whose patient link could not be read (the database is unavailable): 503 where a caller
    /// is needed, nothing for public routes.
    Unavailable,
    /// A verified caller.
    Caller(Caller),
}

/// The bearer token of `headers`, if there is one.
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .or_else(|| {
            headers
                .get(header::AUTHORIZATION)?
                .to_str()
                .ok()?
                .strip_prefix("bearer ")
        })
        .map(str::trim)
}

/// Verifies the request's bearer token once, resolves a patient identity's link (cached), and leaves an
/// [`Authentication`] in the request for the rate limit, the audit layer and the [`Caller`] extractor.
pub async fn authenticate(
    axum::extract::State(state): axum::extract::State<AppState>,
    mut req: Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let authentication = match bearer(req.headers()) {
        None => Authentication::Anonymous,
        Some(token) => match state.auth.identify(token).await {
            Ok(identity) => {
                let patient = if identity.role != Role::Patient {
                    None
                } else if identity.is_medbook() {
                    uuid::Uuid::parse_str(&identity.sub).ok()
                } else {
                    match state.identities.patient_of(&identity.issuer, &identity.sub).await {
                        Ok(patient) => patient,
                        Err(e) => {
                            tracing::warn!(error = %e, "could not read an identity's patient link");
                            req.extensions_mut().insert(Authentication::Unavailable);
                            return next.run(req).await;
                        }
                    }
                };
                Authentication::Caller(Caller::new(identity, patient))
            }
            Err(TokenError::NoRole) => {
                tracing::debug!("token refused: no mapped role");
                Authentication::Refused { forbidden: true }
            }
            Err(e) => {
                tracing::debug!(error = %e, "token refused");
                Authentication::Refused { forbidden: false }
            }
        },
    };
    req.extensions_mut().insert(authentication);
    next.run(req).await
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        match parts.extensions.get::<Authentication>() {
            Some(Authentication::Caller(caller)) => Ok(caller.clone()),
            Some(Authentication::Refused { forbidden: true }) => Err(ApiError::Forbidden),
            Some(Authentication::Unavailable) => Err(ApiError::Unavailable),
            _ => Err(ApiError::Unauthorized),
        }
    }
}

/// The precondition `If-Match` states (RFC 9110, strong comparison): `*` matches any current version,
/// `"3"` version 3. A weak tag (`W/"3"`) never matches in If-Match, and a quoted tag that is no version of ours
/// matches nothing: both 412. An unquoted value is no entity tag: 400. Absent: 428.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IfMatch(pub Expected);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let mut values = parts.headers.get_all(header::IF_MATCH).iter();
        let value = values.next().ok_or(ApiError::PreconditionRequired)?;
        if values.next().is_some() {
            return Err(ApiError::BadRequest("send one If-Match header".into()));
        }
        let text = value
            .to_str()
            .map_err(|_| ApiError::BadRequest("If-Match must be an entity tag".into()))?
            .trim();
        if text == "*" {
            return Ok(IfMatch(Expected::Any));
        }
        if text.starts_with("W/\"") && text.ends_with('"') && text.len() >= 4 {
            return Err(ApiError::PreconditionFailed);
        }
        let Some(tag) = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) else {
            return Err(ApiError::BadRequest(
                "If-Match must be a quoted entity tag, e.g. \"3\", or *".into(),
            ));
        };
        // Our tags are plain decimals: `"+3"` or `"03"` is another tag, which matches nothing.
        let canonical =
            !tag.is_empty() && tag.bytes().all(|b| b.is_ascii_digit()) && (tag == "0" || !tag.starts_with('0'));
        canonical
            .then(|| tag.parse().ok())
            .flatten()
            .map(|v| IfMatch(Expected::Version(v)))
            .ok_or(ApiError::PreconditionFailed)
    }
}

/// The ETag of a version.
pub fn etag(version: u64) -> String {
    format!("\"{version}\"")
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    #[expect(dead_code, reason = "only deserialised")]
    struct Body {
        given_name: String,
        inner: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "only deserialised")]
    struct Inner {
        n: u8,
    }

    fn field(result: Result<Body, ApiError>) -> String {
        match result.unwrap_err() {
            ApiError::Validation(errors) => errors[0].field.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn messages_name_no_rust_types() {
        assert_eq!(
            public_message("invalid type: sequence, expected struct CreatePatient with 6 elements"),
            "invalid type: sequence, expected a JSON object"
        );
        assert_eq!(
            public_message("invalid type: integer `3`, expected struct Range"),
            "invalid type: integer `3`, expected a JSON object"
        );
        assert_eq!(
            public_message("expected medbook::domain::patient::Sex"),
            "expected a value"
        );
    }

    #[test]
    fn json_errors_name_the_field() {
        assert_eq!(field(parse_json(br#"{"givenName": 1}"#)), "givenName");
        assert_eq!(
            field(parse_json(br#"{"givenName": "a", "inner": {"n": 300}}"#)),
            "inner.n"
        );
        assert_eq!(field(parse_json(br#"{"givenName": "a", "isAdmin": true}"#)), "isAdmin");
        assert_eq!(
            field(parse_json(br#"{"givenName": "a", "inner": {"n": 1, "x": 2}}"#)),
            "inner.x"
        );
        assert_eq!(field(parse_json(br#"{}"#)), "givenName");
        assert_eq!(field(parse_json(br#"[]"#)), "(body)");
        assert!(matches!(
            parse_json::<Body>(br#"{"givenName": "#),
            Err(ApiError::BadRequest(_))
        ));
        assert!(matches!(
            parse_json::<Body>(br#"{"givenName": "a"} x"#),
            Err(ApiError::BadRequest(_))
        ));
    }
}
