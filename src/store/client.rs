//! Building the DynamoDB client: the standard AWS chain for Amazon DynamoDB, or static local credentials for
//! an engine on this machine. Both get the same deliberate retry and timeout policy.

use std::time::Duration;

use aws_config::{BehaviorVersion, retry::RetryConfig, timeout::TimeoutConfig};
use aws_sdk_dynamodb::{
    Client,
    config::{ConfigBag, Credentials, Intercept, Region, RuntimeComponents},
};
use aws_smithy_runtime_api::{
    box_error::BoxError,
    client::{interceptors::context::FinalizerInterceptorContextRef, orchestrator::Metadata},
};

use crate::config::StoreSettings;

/// Retry and timeout policy of every DynamoDB call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientOptions {
    /// Attempts per call, the first included. Throttling, transaction conflicts, 5xx and connection errors
    /// are retried with exponential backoff and jitter (the SDK's standard mode).
    pub max_attempts: u32,
    /// Budget of one call over all its attempts; an engine that does not answer becomes an error in time.
    pub timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            timeout: Duration::from_secs(5),
        }
    }
}

impl From<&StoreSettings> for ClientOptions {
    fn from(s: &StoreSettings) -> Self {
        Self {
            max_attempts: s.max_attempts,
            timeout: s.timeout,
        }
    }
}

impl ClientOptions {
    /// The SDK retry configuration: standard mode, backoff from 50 ms up to 1 s.
    pub fn retry_config(&self) -> RetryConfig {
        RetryConfig::standard()
            .with_max_attempts(self.max_attempts)
            .with_initial_backoff(Duration::from_millis(50))
            .with_max_backoff(Duration::from_secs(1))
    }

    /// The SDK timeouts: the whole call within `timeout`, each attempt within its share of it.
    pub fn timeout_config(&self) -> TimeoutConfig {
        let attempt = (self.timeout / self.max_attempts).max(Duration::from_millis(50));
        TimeoutConfig::builder()
            .connect_timeout(attempt.min(Duration::from_secs(1)))
            .operation_attempt_timeout(attempt)
            .operation_timeout(self.timeout)
            .build()
    }
}

/// Counts every attempt the SDK makes (`medbook_dynamodb_attempts_total{operation}`; attempts minus
/// `medbook_dynamodb_requests_total` are the retries) and every attempt DynamoDB throttled
/// (`medbook_dynamodb_throttled_attempts_total{operation}`), retried or not.
#[derive(Debug, Clone, Copy)]
struct AttemptMetrics;

impl Intercept for AttemptMetrics {
    fn name(&self) -> &'static str {
        "medbook-attempt-metrics"
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = cfg.load::<Metadata>().map_or("unknown", Metadata::name).to_owned();
        metrics::counter!("medbook_dynamodb_attempts_total", "operation" => operation.clone()).increment(1);
        let throttled = context.response().is_some_and(|response| {
            response.status().as_u16() == 400
                && response.body().bytes().is_some_and(|body| {
                    let body = String::from_utf8_lossy(body);
                    body.contains("ThrottlingException") || body.contains("ProvisionedThroughputExceeded")
                })
        });
        if throttled {
            metrics::counter!("medbook_dynamodb_throttled_attempts_total", "operation" => operation).increment(1);
        }
        Ok(())
    }
}

/// A client configured by the standard AWS chain (`AWS_REGION`, `AWS_ENDPOINT_URL_DYNAMODB`, profiles,
/// credentials).
pub async fn aws_client(options: &ClientOptions) -> Client {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(options.timeout_config())
        .retry_config(options.retry_config())
        .load()
        .await;
    Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&config)
            .interceptor(AttemptMetrics)
            .build(),
    )
}

/// Static credentials for an engine on this machine. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct LocalCredentials {
    access_key_id: String,
    secret: String,
}

impl std::fmt::Debug for LocalCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl LocalCredentials {
    /// A given pair.
    pub fn new(access_key_id: &str, secret: &str) -> Self {
        Self {
            access_key_id: access_key_id.to_owned(),
            secret: secret.to_owned(),
        }
    }

    /// The fixed pair for an engine that checks no signature (Amazon's DynamoDB Local).
    pub fn unchecked() -> Self {
        Self::new("local", "local")
    }

    /// A fresh pair of 128 random bits (key id) and 256 random bits (secret), as the embedded engine issues.
    pub fn random() -> Self {
        let mut key = [0u8; 16];
        let mut secret = [0u8; 32];
        aws_lc_rs::rand::fill(&mut key).expect("the system random source works");
        aws_lc_rs::rand::fill(&mut secret).expect("the system random source works");
        let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
        Self {
            access_key_id: format!("MEDBOOK{}", hex(&key).to_ascii_uppercase()),
            secret: hex(&secret),
        }
    }

    /// The access key id.
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    /// The secret access key.
    pub fn secret(&self) -> &str {
        &self.secret
    }
}

/// A client for an engine at `endpoint` on this machine, signing with `credentials`, with a fixed region so the
/// default chain never probes instance metadata.
pub fn local_client(endpoint: &str, credentials: &LocalCredentials, options: &ClientOptions) -> Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            credentials.access_key_id(),
            credentials.secret(),
            None,
            None,
            "medbook-local",
        ))
        .endpoint_url(endpoint)
        .timeout_config(options.timeout_config())
        .retry_config(options.retry_config())
        .interceptor(AttemptMetrics)
        .build();
    Client::from_conf(config)
}

/// A DynamoDB Streams client by the standard AWS chain. Where only `AWS_ENDPOINT_URL_DYNAMODB` is set (an
/// engine on this machine, which serves both APIs on one port), streams go there too, never to AWS.
pub async fn aws_streams_client(options: &ClientOptions) -> aws_sdk_dynamodbstreams::Client {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(options.timeout_config())
        .retry_config(options.retry_config())
        .load()
        .await;
    let mut builder = aws_sdk_dynamodbstreams::config::Builder::from(&config);
    if std::env::var_os("AWS_ENDPOINT_URL_DYNAMODB_STREAMS").is_none()
        && let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL_DYNAMODB")
    {
        builder = builder.endpoint_url(endpoint);
    }
    aws_sdk_dynamodbstreams::Client::from_conf(builder.build())
}

/// A DynamoDB Streams client for an engine at `endpoint` on this machine (as [`local_client`]).
pub fn local_streams_client(
    endpoint: &str,
    credentials: &LocalCredentials,
    options: &ClientOptions,
) -> aws_sdk_dynamodbstreams::Client {
    let config = aws_sdk_dynamodbstreams::Config::builder()
        .behavior_version(aws_sdk_dynamodbstreams::config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodbstreams::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodbstreams::config::Credentials::new(
            credentials.access_key_id(),
            credentials.secret(),
            None,
            None,
            "medbook-local",
        ))
        .endpoint_url(endpoint)
        .timeout_config(options.timeout_config())
        .retry_config(options.retry_config())
        .build();
    aws_sdk_dynamodbstreams::Client::from_conf(config)
}
