//! Building the DynamoDB client: the standard AWS chain for Amazon DynamoDB, or static local credentials for
//! an engine on this machine.

use std::time::Duration;

use aws_config::{BehaviorVersion, retry::RetryConfig, timeout::TimeoutConfig};
use aws_sdk_dynamodb::{
    Client,
    config::{Credentials, Region},
};

/// Per-attempt and per-operation timeouts: an engine that does not answer becomes an error, not a hang.
fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(Duration::from_secs(3))
        .operation_timeout(Duration::from_secs(8))
        .build()
}

/// A client configured by the standard AWS chain (`AWS_REGION`, `AWS_ENDPOINT_URL_DYNAMODB`, profiles,
/// credentials).
pub async fn aws_client() -> Client {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(timeouts())
        .retry_config(RetryConfig::standard())
        .load()
        .await;
    Client::new(&config)
}

/// A client for an engine at `endpoint` on this machine, with static dummy credentials and a fixed region so
/// the default chain never probes instance metadata.
pub fn local_client(endpoint: &str) -> Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("local", "local", None, None, "medbook-local"))
        .endpoint_url(endpoint)
        .timeout_config(timeouts())
        .retry_config(RetryConfig::standard())
        .build();
    Client::from_conf(config)
}
