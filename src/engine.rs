//! The embedded engine: dynoxide (a DynamoDB emulator on SQLite) behind an HTTP endpoint on a loopback port, so
//! the service still talks to it through aws-sdk-dynamodb exactly as it would to Amazon DynamoDB.
//!
//! The endpoint is medbook's own, not dynoxide's server, which takes any signature: a port on 127.0.0.1 is open
//! to every process on the machine, and the data behind it is every patient's record. This one answers only
//! requests signed (SigV4, as Amazon DynamoDB checks them) with credentials drawn at random when the engine
//! starts and held only by this process; everything else gets DynamoDB's own refusal and never reaches the
//! database. The endpoint URL alone lets nobody in, so it is logged.

use std::{path::Path, sync::Arc, time::Duration};

use axum::{
    Router,
    body::Bytes,
    extract::{DefaultBodyLimit, State},
    http::{HeaderMap, Method, StatusCode, Uri, header},
    response::{IntoResponse, Response},
    routing::any,
};
use dynoxide::{Database, DynoxideError};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use time::{OffsetDateTime, PrimitiveDateTime, macros::format_description};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

use crate::store::client::LocalCredentials;

/// A running embedded engine. Dropping it without [`EmbeddedEngine::shutdown`] stops it with the runtime.
#[derive(Debug)]
pub struct EmbeddedEngine {
    endpoint: String,
    credentials: LocalCredentials,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

/// The embedded engine could not start.
#[derive(Debug, thiserror::Error)]
#[error("embedded engine: {0}")]
pub struct EngineError(String);

impl EmbeddedEngine {
    /// Opens (or creates) the SQLite file at `path` and serves it on `127.0.0.1:0` on the current runtime.
    ///
    /// # Errors
    /// When the file cannot be opened or no port can be bound.
    pub async fn start_file(path: &Path) -> Result<Self, EngineError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| EngineError(format!("{}: {e}", dir.display())))?;
        }
        let path_text = path
            .to_str()
            .ok_or_else(|| EngineError(format!("{} is not UTF-8", path.display())))?;
        let db = Database::new(path_text).map_err(|e| EngineError(format!("{}: {e}", path.display())))?;
        Self::serve(db).await
    }

    /// Serves a fresh in-memory database on `127.0.0.1:0` on the current runtime.
    ///
    /// # Errors
    /// When no port can be bound.
    pub async fn start_memory() -> Result<Self, EngineError> {
        let db = Database::memory().map_err(|e| EngineError(e.to_string()))?;
        Self::serve(db).await
    }

    /// Serves a fresh in-memory database on `addr`, accepting only `credentials`: the engine as a process of its
    /// own (the `engine` example), for a client that signs with the standard AWS variables.
    ///
    /// # Errors
    /// When `addr` cannot be bound.
    pub async fn start_memory_on(addr: &str, credentials: LocalCredentials) -> Result<Self, EngineError> {
        let db = Database::memory().map_err(|e| EngineError(e.to_string()))?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| EngineError(format!("{addr}: {e}")))?;
        Self::serve_on(db, listener, credentials)
    }

    async fn serve(db: Database) -> Result<Self, EngineError> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| EngineError(e.to_string()))?;
        Self::serve_on(db, listener, LocalCredentials::random())
    }

    fn serve_on(db: Database, listener: TcpListener, credentials: LocalCredentials) -> Result<Self, EngineError> {
        let addr = listener.local_addr().map_err(|e| EngineError(e.to_string()))?;
        let app = Router::new()
            .route("/", any(handle))
            .fallback(|| async { StatusCode::NOT_FOUND })
            .layer(DefaultBodyLimit::max(MAX_BODY))
            .with_state(Arc::new(Engine {
                db,
                credentials: credentials.clone(),
            }));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .into_future(),
        );
        Ok(Self {
            endpoint: format!("http://{addr}"),
            credentials,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The engine's URL, for `endpoint_url`. It lets nobody in without [`EmbeddedEngine::credentials`].
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The only credentials the engine accepts, drawn when it started.
    pub fn credentials(&self) -> &LocalCredentials {
        &self.credentials
    }

    /// Stops accepting, lets running requests finish, and waits for the engine to close.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "embedded engine stopped with an error"),
                Err(e) => tracing::warn!(error = %e, "embedded engine task failed"),
            }
        }
    }
}

/// DynamoDB accepts request bodies up to 16 MB.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// How far a request's `X-Amz-Date` may be from now, as DynamoDB allows.
const CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

const JSON_1_0: &str = "application/x-amz-json-1.0";

struct Engine {
    db: Database,
    credentials: LocalCredentials,
}

async fn handle(
    State(engine): State<Arc<Engine>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if method != Method::POST {
        return StatusCode::NOT_FOUND.into_response();
    }
    if let Err(refusal) = verify(&engine.credentials, &uri, &headers, &body, OffsetDateTime::now_utc()) {
        tracing::warn!(reason = refusal.message(), "embedded engine refused a request");
        return dynamo_error(refusal.error_type(), refusal.message());
    }
    let Some(operation) = headers.get("x-amz-target").and_then(|v| v.to_str().ok()).and_then(|t| {
        t.strip_prefix("DynamoDB_20120810.")
            .or_else(|| t.strip_prefix("DynamoDBStreams_20120810."))
    }) else {
        return dynamo_error("UnknownOperationException", "no operation named");
    };
    let Ok(body) = std::str::from_utf8(&body) else {
        return dynamo_error("SerializationException", "the body is not UTF-8");
    };
    match dispatch(&engine.db, operation, body) {
        Some(Ok(json)) => ([(header::CONTENT_TYPE, JSON_1_0)], json).into_response(),
        Some(Err(e)) => {
            let status = StatusCode::from_u16(e.status_code()).unwrap_or(StatusCode::BAD_REQUEST);
            (status, [(header::CONTENT_TYPE, JSON_1_0)], e.to_json()).into_response()
        }
        None => dynamo_error("UnknownOperationException", operation),
    }
}

/// Runs `operation` on the database: the DynamoDB and Streams operations medbook and its tools call. `None` for
/// any other.
fn dispatch(db: &Database, operation: &str, body: &str) -> Option<Result<String, DynoxideError>> {
    macro_rules! operations {
        ($($name:literal => $method:ident),* $(,)?) => {
            match operation {
                $($name => Some(
                    serde_json::from_str(body)
                        .map_err(|e| DynoxideError::SerializationException(e.to_string()))
                        .and_then(|request| db.$method(request))
                        .and_then(|response| {
                            serde_json::to_string(&response).map_err(|e| DynoxideError::InternalServerError(e.to_string()))
                        }),
                ),)*
                _ => None,
            }
        };
    }
    operations! {
        "CreateTable" => create_table,
        "DeleteTable" => delete_table,
        "DescribeTable" => describe_table,
        "ListTables" => list_tables,
        "UpdateTable" => update_table,
        "UpdateTimeToLive" => update_time_to_live,
        "DescribeTimeToLive" => describe_time_to_live,
        "PutItem" => put_item,
        "GetItem" => get_item,
        "DeleteItem" => delete_item,
        "UpdateItem" => update_item,
        "Query" => query,
        "Scan" => scan,
        "BatchGetItem" => batch_get_item,
        "BatchWriteItem" => batch_write_item,
        "TransactWriteItems" => transact_write_items,
        "TransactGetItems" => transact_get_items,
        "ListStreams" => list_streams,
        "DescribeStream" => describe_stream,
        "GetShardIterator" => get_shard_iterator,
        "GetRecords" => get_records,
    }
}

fn dynamo_error(error_type: &str, message: &str) -> Response {
    let body = serde_json::json!({
        "__type": format!("com.amazon.coral.service#{error_type}"),
        "message": message,
    });
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, JSON_1_0)],
        body.to_string(),
    )
        .into_response()
}

/// Why a request was refused before it reached the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// No SigV4 `Authorization` header, or one that cannot be read.
    Unsigned,
    /// Signed with an access key id this engine did not issue.
    UnknownKey,
    /// A signature whose date is more than five minutes from now.
    Expired,
    /// The signature does not match the request.
    BadSignature,
}

impl Refusal {
    fn error_type(self) -> &'static str {
        match self {
            Self::Unsigned => "MissingAuthenticationTokenException",
            Self::UnknownKey => "UnrecognizedClientException",
            Self::Expired | Self::BadSignature => "InvalidSignatureException",
        }
    }

    fn message(self) -> &'static str {
        match self {
            Self::Unsigned => "Request is missing a valid SigV4 Authorization header.",
            Self::UnknownKey => "The security token included in the request is invalid.",
            Self::Expired => "Signature expired: the request's X-Amz-Date is more than 5 minutes from now.",
            Self::BadSignature => "The request signature we calculated does not match the signature you provided.",
        }
    }
}

/// Checks a request's SigV4 header signature (`AWS4-HMAC-SHA256`) against `credentials`: the key id, the date
/// within [`CLOCK_SKEW`] of `now`, and the signature over the method, path, query, every signed header and the
/// body as received. `host`, `x-amz-date` and `x-amz-target` must be among the signed headers, so neither the
/// operation nor the body can be swapped under a captured signature.
fn verify(
    credentials: &LocalCredentials,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    now: OffsetDateTime,
) -> Result<(), Refusal> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("AWS4-HMAC-SHA256 "))
        .ok_or(Refusal::Unsigned)?;
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in authorization.split(',') {
        match part.trim().split_once('=') {
            Some(("Credential", v)) => credential = Some(v),
            Some(("SignedHeaders", v)) => signed_headers = Some(v),
            Some(("Signature", v)) => signature = Some(v),
            _ => return Err(Refusal::Unsigned),
        }
    }
    let (Some(credential), Some(signed_headers), Some(signature)) = (credential, signed_headers, signature) else {
        return Err(Refusal::Unsigned);
    };
    let (key_id, scope) = credential.split_once('/').ok_or(Refusal::Unsigned)?;
    if key_id != credentials.access_key_id() {
        return Err(Refusal::UnknownKey);
    }
    let scope_parts: Vec<&str> = scope.split('/').collect();
    let [scope_date, region, service, "aws4_request"] = scope_parts[..] else {
        return Err(Refusal::Unsigned);
    };
    let amz_date = headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .ok_or(Refusal::Unsigned)?;
    let signed_at = PrimitiveDateTime::parse(
        amz_date,
        format_description!("[year][month][day]T[hour][minute][second]Z"),
    )
    .map_err(|_| Refusal::Unsigned)?
    .assume_utc();
    if (now - signed_at).unsigned_abs() > CLOCK_SKEW {
        return Err(Refusal::Expired);
    }
    if !amz_date.starts_with(scope_date) {
        return Err(Refusal::BadSignature);
    }
    let names: Vec<&str> = signed_headers.split(';').collect();
    if !["host", "x-amz-date", "x-amz-target"].iter().all(|n| names.contains(n)) {
        return Err(Refusal::BadSignature);
    }

    let mut canonical = format!(
        "POST\n{}\n{}\n",
        uri.path(),
        canonical_query(uri.query().unwrap_or_default())
    );
    for name in &names {
        let values: Vec<String> = headers
            .get_all(*name)
            .iter()
            .map(|v| {
                String::from_utf8_lossy(v.as_bytes())
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        if values.is_empty() {
            return Err(Refusal::BadSignature);
        }
        canonical.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    canonical.push_str(&format!("\n{signed_headers}\n{}", hex(&Sha256::digest(body))));
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical.as_bytes()))
    );

    let mut key = hmac(
        format!("AWS4{}", credentials.secret()).as_bytes(),
        scope_date.as_bytes(),
    );
    for part in [region, service, "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    let expected = decode_hex(signature).ok_or(Refusal::BadSignature)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|_| Refusal::BadSignature)?;
    mac.update(string_to_sign.as_bytes());
    mac.verify_slice(&expected).map_err(|_| Refusal::BadSignature)
}

/// The query string in SigV4's canonical form: pairs sorted, as sent (the SDK sends none to DynamoDB).
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<String> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| if p.contains('=') { p.to_owned() } else { format!("{p}=") })
        .collect();
    pairs.sort();
    pairs.join("&")
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::{config::Credentials, error::ProvideErrorMetadata};

    use super::*;
    use crate::store::client::{ClientOptions, local_client};

    fn client(engine: &EmbeddedEngine, credentials: &LocalCredentials) -> aws_sdk_dynamodb::Client {
        local_client(engine.endpoint(), credentials, &ClientOptions::default())
    }

    #[tokio::test]
    async fn the_engine_answers_only_its_own_credentials() {
        let engine = EmbeddedEngine::start_memory().await.unwrap();
        let own = client(&engine, engine.credentials());
        own.list_tables()
            .send()
            .await
            .expect("the process's own credentials are accepted");

        // Another process knows the endpoint (it is logged) and may guess anything else.
        let guesses = [
            LocalCredentials::unchecked(),
            LocalCredentials::random(),
            LocalCredentials::new(engine.credentials().access_key_id(), "not-the-secret"),
        ];
        for (guess, expected) in guesses.iter().zip([
            "UnrecognizedClientException",
            "UnrecognizedClientException",
            "InvalidSignatureException",
        ]) {
            let err = client(&engine, guess).list_tables().send().await.unwrap_err();
            assert_eq!(err.code(), Some(expected), "{err:?}");
        }
        engine.shutdown().await;
    }

    #[tokio::test]
    async fn an_unsigned_request_is_refused_before_the_database() {
        let engine = EmbeddedEngine::start_memory().await.unwrap();
        let http = reqwest::Client::new();
        let unsigned = http
            .post(engine.endpoint())
            .header("x-amz-target", "DynamoDB_20120810.ListTables")
            .header("content-type", JSON_1_0)
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(unsigned.status(), 400);
        assert!(unsigned.text().await.unwrap().contains("MissingAuthenticationToken"));
        engine.shutdown().await;
    }

    fn signed_headers(credentials: &LocalCredentials, body: &[u8], at: OffsetDateTime) -> HeaderMap {
        // Signed by the SDK's own signer, so this checks `verify` against the reference implementation.
        use aws_sigv4::{
            http_request::{SignableBody, SignableRequest, SigningSettings, sign},
            sign::v4,
        };
        let identity = Credentials::new(credentials.access_key_id(), credentials.secret(), None, None, "test").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("dynamodb")
            .time(at.into())
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let headers = [
            ("host", "127.0.0.1:9"),
            ("content-type", JSON_1_0),
            ("x-amz-target", "DynamoDB_20120810.ListTables"),
        ];
        let request = SignableRequest::new(
            "POST",
            "http://127.0.0.1:9/",
            headers.iter().copied(),
            SignableBody::Bytes(body),
        )
        .unwrap();
        let (instructions, _) = sign(request, &params).unwrap().into_parts();
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(name, value.parse().unwrap());
        }
        for (name, value) in instructions.headers() {
            map.insert(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    #[test]
    fn verify_accepts_the_sdk_signature_and_nothing_altered() {
        let credentials = LocalCredentials::random();
        let at = OffsetDateTime::now_utc();
        let uri: Uri = "/".parse().unwrap();
        let body = br#"{"Limit":1}"#;
        let headers = signed_headers(&credentials, body, at);
        assert_eq!(verify(&credentials, &uri, &headers, body, at), Ok(()));

        assert_eq!(
            verify(&credentials, &uri, &headers, br#"{"Limit":2}"#, at),
            Err(Refusal::BadSignature)
        );
        let mut swapped = headers.clone();
        swapped.insert("x-amz-target", "DynamoDB_20120810.DeleteTable".parse().unwrap());
        assert_eq!(
            verify(&credentials, &uri, &swapped, body, at),
            Err(Refusal::BadSignature)
        );
        let other: Uri = "/?x=1".parse().unwrap();
        assert_eq!(
            verify(&credentials, &other, &headers, body, at),
            Err(Refusal::BadSignature)
        );
        let later = at + time::Duration::minutes(6);
        assert_eq!(verify(&credentials, &uri, &headers, body, later), Err(Refusal::Expired));
        assert_eq!(
            verify(&LocalCredentials::random(), &uri, &headers, body, at),
            Err(Refusal::UnknownKey)
        );
    }
}
