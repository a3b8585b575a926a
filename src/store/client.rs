//! Building the DynamoDB client: the standard AWS chain for Amazon DynamoDB, or static local credentials for
//! an engine on this machine. Both get the same deliberate retry and timeout policy.

use std::time::Duration;

use aws_config::{BehaviorVersion, retry::RetryConfig, timeout::TimeoutConfig};
use aws_sdk_dynamodb::{
    Client,
    config::{Credentials, Region},
};

use crate::config::Settings;

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

impl From<&Settings> for ClientOptions {
    fn from(s: &Settings) -> Self {
        Self {
            max_attempts: s.dynamodb_max_attempts,
            timeout: s.dynamodb_timeout,
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

/// A client configured by the standard AWS chain (`AWS_REGION`, `AWS_ENDPOINT_URL_DYNAMODB`, profiles,
/// credentials).
pub async fn aws_client(options: &ClientOptions) -> Client {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(options.timeout_config())
        .retry_config(options.retry_config())
        .load()
        .await;
    Client::new(&config)
}

/// A client for an engine at `endpoint` on this machine, with static dummy credentials and a fixed region so
/// the default chain never probes instance metadata.
pub fn local_client(endpoint: &str, options: &ClientOptions) -> Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("local", "local", None, None, "medbook-local"))
        .endpoint_url(endpoint)
        .timeout_config(options.timeout_config())
        .retry_config(options.retry_config())
        .build();
    Client::from_conf(config)
}
