//! Configuration, read once from the environment into typed settings.
//!
//! Every variable is documented in README.md. A bad value is a [`ConfigError`] naming the variable; `main`
//! prints it on one line and exits with code 2.

use std::{fmt, net::SocketAddr, path::PathBuf, str::FromStr, time::Duration};

use base64::Engine as _;
use time::Time;

use crate::domain::{
    booking::{OpeningHours, SlotGrid},
    release::{BadReleasePolicy, ReleasePolicy},
    timefmt,
};

/// Minimum length of the JWT signing secret (HS256 wants at least the hash length).
pub const MIN_SECRET_BYTES: usize = 32;

/// Name of the file in the data directory that keeps the generated secret of the embedded store.
pub const SECRET_FILE: &str = "jwt-secret";

/// Which DynamoDB the service talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// The in-process emulator (dynoxide on SQLite) for development; needs the `embedded` feature.
    Embedded,
    /// Amazon DynamoDB (or any endpoint) through the standard AWS configuration chain.
    Aws,
}

/// Table capacity mode, applied to the table and every GSI at creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapacityMode {
    /// Pay per request.
    OnDemand,
    /// Fixed read and write capacity units.
    Provisioned {
        /// Read capacity units.
        rcu: i64,
        /// Write capacity units.
        wcu: i64,
    },
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable, coloured.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// A secret that never shows up in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps secret bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    /// The secret bytes; call only where the secret is used.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// All settings of the service, by concern.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The HTTP server and its process.
    pub server: ServerSettings,
    /// The DynamoDB table and how to reach it.
    pub store: StoreSettings,
    /// JWT secret from `MEDBOOK_JWT_SECRET`, if set; see [`Settings::resolve_jwt_secret`].
    pub jwt_secret: Option<Secret>,
    /// Longest lifetime of an accepted token (`MEDBOOK_JWT_MAX_TTL`, e.g. `24h`).
    pub jwt_max_ttl: Duration,
    /// Whether medbook's own HS256 tokens are accepted (`MEDBOOK_JWT_HS256`, default `true`; the secret keys
    /// page cursors either way).
    pub medbook_tokens: bool,
    /// The OpenID provider whose access tokens are accepted, if any (`MEDBOOK_OIDC_ISSUER`,
    /// `MEDBOOK_OIDC_AUDIENCE`, `MEDBOOK_OIDC_ROLES_CLAIM`, `MEDBOOK_OIDC_ROLE_MAP`).
    pub oidc: Option<crate::auth::oidc::OidcSettings>,
    /// How long a replica keeps an identity's link to its patient (`MEDBOOK_IDENTITY_CACHE_S`, default 300).
    pub identity_cache: Duration,
    /// Limits on what a client may send.
    pub limits: Limits,
    /// The booking grid (`MEDBOOK_SLOT_MINUTES`, `MEDBOOK_SLOT_CAPACITY`, `MEDBOOK_OPENING_HOURS` in UTC,
    /// `MEDBOOK_BOOKING_HORIZON_DAYS`).
    pub slots: SlotGrid,
    /// When a verified result is released to its patient (`MEDBOOK_RESULT_RELEASE`: `on-final`, the default,
    /// `on-review` or `on-final-after:<hours>`); a test type may override it.
    pub result_release: ReleasePolicy,
    /// The laboratory's name, printed on reports (`MEDBOOK_LAB_NAME`, 1 to 100 characters).
    pub lab_name: String,
    /// The relay that delivers events to webhooks.
    pub relay: crate::service::relay::RelaySettings,
}

/// The HTTP server and its process.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Address the HTTP server binds (`MEDBOOK_ADDR`).
    pub addr: SocketAddr,
    /// Log format (`MEDBOOK_LOG_FORMAT`).
    pub log_format: LogFormat,
    /// Longest wait for in-flight requests on shutdown (`MEDBOOK_SHUTDOWN_GRACE_S`).
    pub shutdown_grace: Duration,
    /// Bearer token `/metrics` requires, if any (`MEDBOOK_METRICS_TOKEN`).
    pub metrics_token: Option<Secret>,
    /// Serve `/metrics` without a token on the production store too (`MEDBOOK_METRICS_PUBLIC=true`).
    pub metrics_public: bool,
    /// Time a client has to send a request's headers, and that an idle keep-alive connection stays open
    /// (`MEDBOOK_HEADER_READ_TIMEOUT_MS`).
    pub header_read_timeout: Duration,
    /// Open connections at most (`MEDBOOK_MAX_CONNECTIONS`).
    pub max_connections: usize,
}

/// The DynamoDB table and how to reach it.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// Which DynamoDB to use (`MEDBOOK_STORE`).
    pub kind: StoreKind,
    /// Directory of the embedded engine's SQLite file and generated secret (`MEDBOOK_DATA_DIR`).
    pub data_dir: PathBuf,
    /// Table name (`MEDBOOK_TABLE`).
    pub table: String,
    /// Capacity mode (`MEDBOOK_CAPACITY_MODE`, `MEDBOOK_RCU`, `MEDBOOK_WCU`).
    pub capacity: CapacityMode,
    /// DynamoDB attempts per call, first included (`MEDBOOK_DYNAMODB_MAX_ATTEMPTS`).
    pub max_attempts: u32,
    /// Time one DynamoDB call may take over all its attempts (`MEDBOOK_DYNAMODB_TIMEOUT_MS`).
    pub timeout: Duration,
    /// How long startup keeps retrying while DynamoDB cannot be reached (`MEDBOOK_STARTUP_WAIT_S`).
    pub startup_wait: Duration,
    /// Days audit events are kept (`MEDBOOK_AUDIT_RETENTION_DAYS`).
    pub audit_retention_days: u32,
    /// Days domain events are kept (`MEDBOOK_EVENT_RETENTION_DAYS`).
    pub event_retention_days: u32,
    /// How far behind now the event feed stays (`MEDBOOK_EVENT_SETTLE_MS`).
    pub event_settle: Duration,
    /// How long before its slot a booking reminder is due (`MEDBOOK_REMINDER_HOURS`, default 24; `0`: none).
    pub reminder_before: Option<Duration>,
    /// Refused requests (4xx) audited per caller and minute (`MEDBOOK_AUDIT_REFUSALS_PER_MINUTE`).
    pub audit_refusals_per_minute: u32,
}

/// Limits on what a client may send.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest accepted request body (`MEDBOOK_MAX_BODY_BYTES`).
    pub max_body_bytes: usize,
    /// Time a request may take before it is answered 503 (`MEDBOOK_REQUEST_TIMEOUT_MS`).
    pub request_timeout: Duration,
    /// Sustained requests per second per client (`MEDBOOK_RATE_PER_SEC`).
    pub rate_per_sec: u32,
    /// Requests a client may send at once above the sustained rate (`MEDBOOK_RATE_BURST`).
    pub rate_burst: u32,
    /// Origins allowed by CORS; empty: no CORS headers (`MEDBOOK_CORS_ORIGINS`).
    pub cors_origins: Vec<String>,
}

/// A configuration value that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {var}: {message}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub var: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl ConfigError {
    fn new(var: &'static str, message: impl Into<String>) -> Self {
        Self {
            var,
            message: message.into(),
        }
    }
}

/// Reads variables, treating blank values as unset.
struct Vars<F>(F);

impl<F: Fn(&str) -> Option<String>> Vars<F> {
    fn get(&self, var: &str) -> Option<String> {
        (self.0)(var).filter(|v| !v.trim().is_empty())
    }

    /// `var` parsed, or `default` when unset.
    fn parse_or<T: FromStr>(&self, var: &'static str, default: T) -> Result<T, ConfigError>
    where
        T::Err: fmt::Display,
    {
        match self.get(var) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse()
                .map_err(|e| ConfigError::new(var, format!("`{v}`: {e}"))),
        }
    }

    /// `var` parsed, or `default` when unset; refused outside `range`.
    fn ranged<T>(&self, var: &'static str, default: T, range: std::ops::RangeInclusive<T>) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + fmt::Display,
        T::Err: fmt::Display,
    {
        let value = self.parse_or(var, default)?;
        if !range.contains(&value) {
            return Err(ConfigError::new(
                var,
                format!("must be between {} and {}", range.start(), range.end()),
            ));
        }
        Ok(value)
    }

    /// One of `choices` by name; the first is the default.
    fn choice<T: Copy>(&self, var: &'static str, choices: &[(&str, T)]) -> Result<T, ConfigError> {
        match self.get(var) {
            None => Ok(choices[0].1),
            Some(v) => choices
                .iter()
                .find(|(name, _)| *name == v)
                .map(|(_, c)| *c)
                .ok_or_else(|| {
                    let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
                    ConfigError::new(var, format!("`{v}` is not one of: {}", names.join(", ")))
                }),
        }
    }
}

impl Settings {
    /// Reads settings from the process environment.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first variable with a bad value.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup` (the environment, or a map in tests).
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first variable with a bad value.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let vars = Vars(lookup);
        let lab_name = match vars.get("MEDBOOK_LAB_NAME") {
            None => "medbook laboratory".to_owned(),
            Some(name) if (1..=100).contains(&name.chars().count()) && !name.chars().any(char::is_control) => name,
            Some(_) => {
                return Err(ConfigError::new(
                    "MEDBOOK_LAB_NAME",
                    "must be 1 to 100 characters without control characters",
                ));
            }
        };
        Ok(Self {
            server: ServerSettings::read(&vars)?,
            store: StoreSettings::read(&vars)?,
            jwt_secret: jwt_secret(&vars)?,
            jwt_max_ttl: match vars.get("MEDBOOK_JWT_MAX_TTL") {
                None => crate::auth::DEFAULT_MAX_TTL,
                Some(v) => timefmt::parse_duration(&v).map_err(|e| ConfigError::new("MEDBOOK_JWT_MAX_TTL", e))?,
            },
            medbook_tokens: {
                let on = vars.choice("MEDBOOK_JWT_HS256", &[("true", true), ("false", false)])?;
                if !on && vars.get("MEDBOOK_OIDC_ISSUER").is_none() {
                    return Err(ConfigError::new(
                        "MEDBOOK_JWT_HS256",
                        "false leaves no way to sign in: set MEDBOOK_OIDC_ISSUER too",
                    ));
                }
                on
            },
            oidc: oidc(&vars)?,
            identity_cache: Duration::from_secs(vars.ranged("MEDBOOK_IDENTITY_CACHE_S", 300, 0..=86_400)?),
            limits: Limits::read(&vars)?,
            slots: slot_grid(&vars)?,
            lab_name: lab_name.clone(),
            relay: relay(&vars, &lab_name)?,
            result_release: match vars.get("MEDBOOK_RESULT_RELEASE") {
                None => ReleasePolicy::default(),
                Some(v) => v
                    .parse()
                    .map_err(|e: BadReleasePolicy| ConfigError::new("MEDBOOK_RESULT_RELEASE", e.to_string()))?,
            },
        })
    }

    /// The JWT secret `serve` and `token` both use: `MEDBOOK_JWT_SECRET` if set; with the embedded store, a
    /// secret generated once and kept in the data directory; with `aws`, none (an error).
    ///
    /// # Errors
    /// With `aws` and no secret, or when the kept secret cannot be read or written.
    pub fn resolve_jwt_secret(&self) -> Result<Secret, ConfigError> {
        if let Some(secret) = &self.jwt_secret {
            return Ok(secret.clone());
        }
        match self.store.kind {
            StoreKind::Aws => Err(ConfigError::new(
                "MEDBOOK_JWT_SECRET",
                "required with MEDBOOK_STORE=aws (at least 32 bytes); refusing to start without one",
            )),
            StoreKind::Embedded => load_or_create_secret(&self.store.data_dir),
        }
    }
}

impl ServerSettings {
    fn read(vars: &Vars<impl Fn(&str) -> Option<String>>) -> Result<Self, ConfigError> {
        let pretty = [("pretty", LogFormat::Pretty), ("json", LogFormat::Json)];
        Ok(Self {
            addr: vars.parse_or("MEDBOOK_ADDR", "127.0.0.1:8080".parse().expect("valid literal"))?,
            log_format: vars.choice("MEDBOOK_LOG_FORMAT", &pretty)?,
            shutdown_grace: Duration::from_secs(vars.ranged("MEDBOOK_SHUTDOWN_GRACE_S", 20, 0..=600)?),
            metrics_token: vars.get("MEDBOOK_METRICS_TOKEN").map(Secret::new),
            metrics_public: vars.choice("MEDBOOK_METRICS_PUBLIC", &[("false", false), ("true", true)])?,
            header_read_timeout: Duration::from_millis(vars.ranged(
                "MEDBOOK_HEADER_READ_TIMEOUT_MS",
                10_000,
                100..=300_000,
            )?),
            max_connections: vars.ranged("MEDBOOK_MAX_CONNECTIONS", 1024, 1..=1_000_000)?,
        })
    }
}

impl StoreSettings {
    fn read(vars: &Vars<impl Fn(&str) -> Option<String>>) -> Result<Self, ConfigError> {
        let kinds = [("embedded", StoreKind::Embedded), ("aws", StoreKind::Aws)];
        let table = vars.get("MEDBOOK_TABLE").unwrap_or_else(|| "medbook".into());
        if !valid_table_name(&table) {
            return Err(ConfigError::new(
                "MEDBOOK_TABLE",
                "must be 3 to 255 characters of a-z, A-Z, 0-9, '_', '-', '.'",
            ));
        }
        let modes = [("on-demand", false), ("provisioned", true)];
        let capacity = if vars.choice("MEDBOOK_CAPACITY_MODE", &modes)? {
            CapacityMode::Provisioned {
                rcu: vars.ranged("MEDBOOK_RCU", 5, 1..=i64::from(u32::MAX))?,
                wcu: vars.ranged("MEDBOOK_WCU", 5, 1..=i64::from(u32::MAX))?,
            }
        } else {
            CapacityMode::OnDemand
        };
        Ok(Self {
            kind: vars.choice("MEDBOOK_STORE", &kinds)?,
            data_dir: PathBuf::from(vars.get("MEDBOOK_DATA_DIR").unwrap_or_else(|| "./data".into())),
            table,
            capacity,
            max_attempts: vars.ranged("MEDBOOK_DYNAMODB_MAX_ATTEMPTS", 3, 1..=10)?,
            timeout: Duration::from_millis(vars.ranged("MEDBOOK_DYNAMODB_TIMEOUT_MS", 5_000, 50..=60_000)?),
            startup_wait: Duration::from_secs(vars.ranged("MEDBOOK_STARTUP_WAIT_S", 30, 0..=3600)?),
            audit_retention_days: vars.ranged("MEDBOOK_AUDIT_RETENTION_DAYS", 2555, 1..=36_500)?,
            event_retention_days: vars.ranged("MEDBOOK_EVENT_RETENTION_DAYS", 30, 1..=365)?,
            event_settle: Duration::from_millis(vars.ranged("MEDBOOK_EVENT_SETTLE_MS", 10_000, 0..=60_000)?),
            reminder_before: match vars.get("MEDBOOK_REMINDER_HOURS") {
                None => Some(Duration::from_secs(24 * 3600)),
                Some(v) => match v.parse::<f64>() {
                    Ok(0.0) => None,
                    Ok(h) if (0.0001..=720.0).contains(&h) => Some(Duration::from_secs_f64(h * 3600.0)),
                    _ => {
                        return Err(ConfigError::new(
                            "MEDBOOK_REMINDER_HOURS",
                            "must be 0 (no reminders) or a number of hours from 0.0001 to 720",
                        ));
                    }
                },
            },
            audit_refusals_per_minute: vars.ranged("MEDBOOK_AUDIT_REFUSALS_PER_MINUTE", 60, 1..=100_000)?,
        })
    }
}

fn oidc(vars: &Vars<impl Fn(&str) -> Option<String>>) -> Result<Option<crate::auth::oidc::OidcSettings>, ConfigError> {
    let Some(issuer) = vars.get("MEDBOOK_OIDC_ISSUER") else {
        for dependent in [
            "MEDBOOK_OIDC_AUDIENCE",
            "MEDBOOK_OIDC_ROLES_CLAIM",
            "MEDBOOK_OIDC_ROLE_MAP",
        ] {
            if vars.get(dependent).is_some() {
                return Err(ConfigError::new(dependent, "is set without MEDBOOK_OIDC_ISSUER"));
            }
        }
        return Ok(None);
    };
    let required = |name: &'static str| {
        vars.get(name)
            .ok_or_else(|| ConfigError::new(name, "required with MEDBOOK_OIDC_ISSUER"))
    };
    let audience = required("MEDBOOK_OIDC_AUDIENCE")?;
    let role_map = required("MEDBOOK_OIDC_ROLE_MAP")?;
    let claim = vars.get("MEDBOOK_OIDC_ROLES_CLAIM").unwrap_or_else(|| "roles".into());
    crate::auth::oidc::check_issuer(&issuer).map_err(|e| ConfigError::new("MEDBOOK_OIDC_ISSUER", e.0))?;
    let refresh_every = Duration::from_secs(vars.ranged("MEDBOOK_OIDC_REFRESH_S", 60, 1..=3600)?);
    crate::auth::oidc::OidcSettings::new(&issuer, &audience, &claim, &role_map)
        .map(|settings| {
            Some(crate::auth::oidc::OidcSettings {
                refresh_every,
                ..settings
            })
        })
        .map_err(|e| {
            let var = if e.0.contains("audience") {
                "MEDBOOK_OIDC_AUDIENCE"
            } else if e.0.contains("claim") {
                "MEDBOOK_OIDC_ROLES_CLAIM"
            } else {
                "MEDBOOK_OIDC_ROLE_MAP"
            };
            ConfigError::new(var, e.0)
        })
}

fn relay(
    vars: &Vars<impl Fn(&str) -> Option<String>>,
    lab_name: &str,
) -> Result<crate::service::relay::RelaySettings, ConfigError> {
    use crate::{domain::webhook::TargetPolicy, service::relay::RelaySettings};
    let ms = |var, default, range| vars.ranged(var, default, range).map(std::time::Duration::from_millis);
    let hours = |var: &'static str, default: f64| -> Result<std::time::Duration, ConfigError> {
        match vars.get(var) {
            None => Ok(std::time::Duration::from_secs_f64(default * 3600.0)),
            Some(v) => v
                .parse::<f64>()
                .ok()
                .filter(|h| (0.0001..=8760.0).contains(h))
                .map(|h| std::time::Duration::from_secs_f64(h * 3600.0))
                .ok_or_else(|| ConfigError::new(var, "must be a number of hours from 0.0001 to 8760")),
        }
    };
    let production = vars.choice("MEDBOOK_STORE", &[("embedded", false), ("aws", true)])?;
    let targets = match vars.get("MEDBOOK_WEBHOOK_TARGETS").as_deref() {
        None if production => TargetPolicy::Public,
        None => TargetPolicy::Loopback,
        Some("public") => TargetPolicy::Public,
        Some("loopback") => TargetPolicy::Loopback,
        Some("any") => TargetPolicy::Any,
        Some(other) => {
            return Err(ConfigError::new(
                "MEDBOOK_WEBHOOK_TARGETS",
                format!("`{other}` is none of: public, loopback, any"),
            ));
        }
    };
    let retry_base = ms("MEDBOOK_WEBHOOK_RETRY_BASE_MS", 5_000, 10..=3_600_000)?;
    let retry_max = ms("MEDBOOK_WEBHOOK_RETRY_MAX_MS", 3_600_000, 10..=86_400_000)?;
    if retry_max < retry_base {
        return Err(ConfigError::new(
            "MEDBOOK_WEBHOOK_RETRY_MAX_MS",
            "must be at least MEDBOOK_WEBHOOK_RETRY_BASE_MS",
        ));
    }
    Ok(RelaySettings {
        enabled: vars.choice("MEDBOOK_RELAY", &[("on", true), ("off", false)])?,
        poll: ms("MEDBOOK_RELAY_POLL_MS", 250, 10..=60_000)?,
        lease: ms("MEDBOOK_RELAY_LEASE_MS", 5_000, 500..=600_000)?,
        targets,
        timeout: ms("MEDBOOK_WEBHOOK_TIMEOUT_MS", 10_000, 100..=120_000)?,
        retry_base,
        retry_max,
        retry_for: hours("MEDBOOK_WEBHOOK_RETRY_HOURS", 24.0)?,
        disable_after: hours("MEDBOOK_WEBHOOK_DISABLE_AFTER_HOURS", 72.0)?,
        concurrency: vars.ranged("MEDBOOK_WEBHOOK_CONCURRENCY", 8, 1..=64)?,
        email: email(vars, lab_name, production)?,
    })
}

/// E-mail to patients: on when `MEDBOOK_SMTP_URL` is set, which then needs `MEDBOOK_EMAIL_FROM`. With the
/// `aws` store (production) the connection must be encrypted (`smtps://`, or `smtp://…?tls=required`) unless
/// the server is on this machine.
fn email(
    vars: &Vars<impl Fn(&str) -> Option<String>>,
    lab_name: &str,
    production: bool,
) -> Result<Option<crate::service::email::EmailSettings>, ConfigError> {
    let Some(smtp_url) = vars.get("MEDBOOK_SMTP_URL") else {
        return Ok(None);
    };
    let url =
        url::Url::parse(&smtp_url).map_err(|e| ConfigError::new("MEDBOOK_SMTP_URL", format!("is not a URL ({e})")))?;
    let tls_required = url.query_pairs().any(|(k, v)| k == "tls" && v == "required");
    // `smtp:` is not a special scheme to the URL parser: its host comes back as text, addresses included.
    let loopback = url.host_str().is_some_and(|host| {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
    });
    match url.scheme() {
        "smtps" => {}
        "smtp" if tls_required || loopback || !production => {}
        "smtp" => {
            return Err(ConfigError::new(
                "MEDBOOK_SMTP_URL",
                "must be encrypted in production: smtps://host:465, or smtp://host:587?tls=required",
            ));
        }
        other => {
            return Err(ConfigError::new(
                "MEDBOOK_SMTP_URL",
                format!("has scheme `{other}`; use smtps:// or smtp://"),
            ));
        }
    }
    let from = vars.get("MEDBOOK_EMAIL_FROM").ok_or_else(|| {
        ConfigError::new(
            "MEDBOOK_EMAIL_FROM",
            "must be set with MEDBOOK_SMTP_URL: `Lab <lab@example.org>`",
        )
    })?;
    if from.parse::<lettre::message::Mailbox>().is_err() {
        return Err(ConfigError::new(
            "MEDBOOK_EMAIL_FROM",
            "is not an address: `Lab <lab@example.org>`",
        ));
    }
    Ok(Some(crate::service::email::EmailSettings {
        smtp_url,
        from,
        lab_name: lab_name.to_owned(),
        results_quiet: std::time::Duration::from_secs(vars.ranged(
            "MEDBOOK_EMAIL_RESULTS_QUIET_S",
            3600,
            0..=86_400,
        )?),
    }))
}

fn jwt_secret(vars: &Vars<impl Fn(&str) -> Option<String>>) -> Result<Option<Secret>, ConfigError> {
    match vars.get("MEDBOOK_JWT_SECRET") {
        Some(s) if s.len() < MIN_SECRET_BYTES => Err(ConfigError::new(
            "MEDBOOK_JWT_SECRET",
            format!("must be at least {MIN_SECRET_BYTES} bytes, got {}", s.len()),
        )),
        other => Ok(other.map(Secret::new)),
    }
}

impl Limits {
    fn read(vars: &Vars<impl Fn(&str) -> Option<String>>) -> Result<Self, ConfigError> {
        let cors_origins: Vec<String> = vars
            .get("MEDBOOK_CORS_ORIGINS")
            .map(|v| {
                v.split(',')
                    .map(|o| o.trim().to_owned())
                    .filter(|o| !o.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        if let Some(bad) = cors_origins.iter().find(|o| {
            !(o.starts_with("http://") || o.starts_with("https://")) || axum::http::HeaderValue::from_str(o).is_err()
        }) {
            return Err(ConfigError::new(
                "MEDBOOK_CORS_ORIGINS",
                format!("`{bad}` is not an http(s) origin"),
            ));
        }
        Ok(Self {
            max_body_bytes: vars.ranged("MEDBOOK_MAX_BODY_BYTES", 64 * 1024, 1024..=16 * 1024 * 1024)?,
            request_timeout: Duration::from_millis(vars.ranged("MEDBOOK_REQUEST_TIMEOUT_MS", 10_000, 100..=300_000)?),
            rate_per_sec: vars.ranged("MEDBOOK_RATE_PER_SEC", 50, 1..=1_000_000)?,
            rate_burst: vars.ranged("MEDBOOK_RATE_BURST", 100, 1..=1_000_000)?,
            cors_origins,
        })
    }
}

fn slot_grid(vars: &Vars<impl Fn(&str) -> Option<String>>) -> Result<SlotGrid, ConfigError> {
    let minutes: u32 = vars.ranged("MEDBOOK_SLOT_MINUTES", 15, 5..=240)?;
    if 1440 % minutes != 0 {
        return Err(ConfigError::new(
            "MEDBOOK_SLOT_MINUTES",
            "must divide a day and be between 5 and 240",
        ));
    }
    let hours = match vars.get("MEDBOOK_OPENING_HOURS") {
        None => OpeningHours {
            open: Time::from_hms(7, 0, 0).expect("valid"),
            close: Time::from_hms(18, 0, 0).expect("valid"),
        },
        Some(v) => parse_opening_hours(&v).ok_or_else(|| {
            ConfigError::new(
                "MEDBOOK_OPENING_HOURS",
                format!("`{v}` is not HH:MM-HH:MM with open < close"),
            )
        })?,
    };
    Ok(SlotGrid {
        minutes,
        capacity: vars.ranged("MEDBOOK_SLOT_CAPACITY", 4, 1..=crate::domain::site::MAX_CAPACITY)?,
        hours,
        horizon_days: vars.ranged("MEDBOOK_BOOKING_HORIZON_DAYS", 180, 1..=3650)?,
    })
}

fn load_or_create_secret(data_dir: &std::path::Path) -> Result<Secret, ConfigError> {
    let io_err = |e: std::io::Error| ConfigError::new("MEDBOOK_DATA_DIR", format!("{}: {e}", data_dir.display()));
    std::fs::create_dir_all(data_dir).map_err(io_err)?;
    let path = data_dir.join(SECRET_FILE);
    let read = |path: &std::path::Path| -> Result<Secret, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(io_err)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| ConfigError::new("MEDBOOK_DATA_DIR", format!("{} is not base64", path.display())))?;
        if bytes.len() < MIN_SECRET_BYTES {
            return Err(ConfigError::new(
                "MEDBOOK_DATA_DIR",
                format!("{} is too short", path.display()),
            ));
        }
        Ok(Secret::new(bytes))
    };
    if path.exists() {
        return read(&path);
    }
    let bytes: [u8; 48] = rand::random();
    let text = base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(&path) {
        Ok(mut file) => {
            std::io::Write::write_all(&mut file, text.as_bytes()).map_err(io_err)?;
            Ok(Secret::new(bytes.to_vec()))
        }
        // Another process created it first: use theirs, so both agree.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read(&path),
        Err(e) => Err(io_err(e)),
    }
}

fn valid_table_name(name: &str) -> bool {
    (3..=255).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
}

fn parse_opening_hours(value: &str) -> Option<OpeningHours> {
    let (open, close) = value.split_once('-')?;
    let open = timefmt::parse_hour_minute(open.trim())?;
    let close = timefmt::parse_hour_minute(close.trim())?;
    (open < close).then_some(OpeningHours { open, close })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn e_mail_needs_a_sender_and_encryption_in_production() {
        assert!(settings(&[]).unwrap().relay.email.is_none(), "off by default");
        let err = settings(&[("MEDBOOK_SMTP_URL", "smtp://127.0.0.1:2525")]).unwrap_err();
        assert_eq!(err.var, "MEDBOOK_EMAIL_FROM");
        let from = ("MEDBOOK_EMAIL_FROM", "Lab <lab@example.org>");
        let email = settings(&[("MEDBOOK_SMTP_URL", "smtp://127.0.0.1:2525"), from])
            .unwrap()
            .relay
            .email
            .expect("on");
        assert_eq!(
            (email.from.as_str(), email.lab_name.as_str()),
            ("Lab <lab@example.org>", "medbook laboratory")
        );
        assert!(
            !format!("{email:?}").contains("2525"),
            "the URL (and its password) stays out of logs"
        );
        let aws = ("MEDBOOK_STORE", "aws");
        let err = settings(&[aws, ("MEDBOOK_SMTP_URL", "smtp://mail.example.org:25"), from]).unwrap_err();
        assert_eq!(err.var, "MEDBOOK_SMTP_URL");
        for fine in [
            "smtps://u:p@mail.example.org:465",
            "smtp://mail.example.org:587?tls=required",
            "smtp://localhost:25",
            "smtp://127.0.0.1:2525",
            "smtp://[::1]:2525",
        ] {
            assert!(settings(&[aws, ("MEDBOOK_SMTP_URL", fine), from]).is_ok(), "{fine}");
        }
        let err = settings(&[
            ("MEDBOOK_SMTP_URL", "smtp://127.0.0.1:25"),
            ("MEDBOOK_EMAIL_FROM", "not an address"),
        ])
        .unwrap_err();
        assert_eq!(err.var, "MEDBOOK_EMAIL_FROM");
        let err = settings(&[("MEDBOOK_SMTP_URL", "http://127.0.0.1:25"), from]).unwrap_err();
        assert_eq!(err.var, "MEDBOOK_SMTP_URL");
    }

    #[test]
    fn the_longest_retry_wait_is_not_shorter_than_the_first() {
        let err = settings(&[
            ("MEDBOOK_WEBHOOK_RETRY_BASE_MS", "5000"),
            ("MEDBOOK_WEBHOOK_RETRY_MAX_MS", "1000"),
        ])
        .unwrap_err();
        assert_eq!(err.var, "MEDBOOK_WEBHOOK_RETRY_MAX_MS");
    }

    #[test]
    fn defaults_match_the_readme() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.server.addr.to_string(), "127.0.0.1:8080");
        assert_eq!(s.store.kind, StoreKind::Embedded);
        assert_eq!(s.store.data_dir, PathBuf::from("./data"));
        assert_eq!(s.store.table, "medbook");
        assert_eq!(s.store.capacity, CapacityMode::OnDemand);
        assert_eq!(s.server.log_format, LogFormat::Pretty);
        assert_eq!((s.slots.minutes, s.slots.capacity, s.slots.horizon_days), (15, 4, 180));
        assert_eq!(s.slots.hours.open, Time::from_hms(7, 0, 0).unwrap());
        assert_eq!(s.slots.hours.close, Time::from_hms(18, 0, 0).unwrap());
        let l = &s.limits;
        assert_eq!((l.max_body_bytes, l.request_timeout), (65_536, Duration::from_secs(10)));
        assert_eq!((l.rate_per_sec, l.rate_burst), (50, 100));
        assert!(l.cors_origins.is_empty());
        assert_eq!((s.store.max_attempts, s.store.timeout), (3, Duration::from_secs(5)));
        assert_eq!(
            (
                s.store.audit_retention_days,
                s.server.shutdown_grace,
                s.store.startup_wait
            ),
            (2555, Duration::from_secs(20), Duration::from_secs(30))
        );
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (var, value) in [
            ("MEDBOOK_ADDR", "nowhere"),
            ("MEDBOOK_STORE", "postgres"),
            ("MEDBOOK_TABLE", "x"),
            ("MEDBOOK_CAPACITY_MODE", "cheap"),
            ("MEDBOOK_JWT_SECRET", "short"),
            ("MEDBOOK_LOG_FORMAT", "xml"),
            ("MEDBOOK_SLOT_MINUTES", "7"),
            ("MEDBOOK_SLOT_CAPACITY", "0"),
            ("MEDBOOK_OPENING_HOURS", "18:00-07:00"),
            ("MEDBOOK_MAX_BODY_BYTES", "10"),
            ("MEDBOOK_REQUEST_TIMEOUT_MS", "0"),
            ("MEDBOOK_RATE_PER_SEC", "0"),
            ("MEDBOOK_RATE_BURST", "x"),
            ("MEDBOOK_CORS_ORIGINS", "evil.example"),
            ("MEDBOOK_DYNAMODB_MAX_ATTEMPTS", "0"),
            ("MEDBOOK_DYNAMODB_TIMEOUT_MS", "1"),
            ("MEDBOOK_AUDIT_RETENTION_DAYS", "0"),
            ("MEDBOOK_SHUTDOWN_GRACE_S", "9999"),
            ("MEDBOOK_STARTUP_WAIT_S", "9999"),
            ("MEDBOOK_STARTUP_WAIT_S", "soon"),
            ("MEDBOOK_JWT_MAX_TTL", "forever"),
            ("MEDBOOK_BOOKING_HORIZON_DAYS", "0"),
            ("MEDBOOK_HEADER_READ_TIMEOUT_MS", "5"),
            ("MEDBOOK_MAX_CONNECTIONS", "0"),
        ] {
            let err = settings(&[(var, value)]).unwrap_err();
            assert_eq!(err.var, var, "{err}");
        }
        let err = settings(&[("MEDBOOK_CAPACITY_MODE", "provisioned"), ("MEDBOOK_WCU", "0")]).unwrap_err();
        assert_eq!(err.var, "MEDBOOK_WCU");
    }

    #[test]
    fn provisioned_mode_reads_its_units() {
        let s = settings(&[
            ("MEDBOOK_CAPACITY_MODE", "provisioned"),
            ("MEDBOOK_RCU", "10"),
            ("MEDBOOK_WCU", "3"),
        ])
        .unwrap();
        assert_eq!(s.store.capacity, CapacityMode::Provisioned { rcu: 10, wcu: 3 });
    }

    #[test]
    fn aws_without_a_secret_refuses_to_start() {
        let s = settings(&[("MEDBOOK_STORE", "aws")]).unwrap();
        assert_eq!(s.resolve_jwt_secret().unwrap_err().var, "MEDBOOK_JWT_SECRET");
    }

    #[test]
    fn embedded_secret_is_generated_once_and_kept() {
        let dir = std::env::temp_dir().join(format!("medbook-secret-{}", uuid::Uuid::now_v7()));
        let s = settings(&[("MEDBOOK_DATA_DIR", dir.to_str().unwrap())]).unwrap();
        let first = s.resolve_jwt_secret().unwrap();
        let second = s.resolve_jwt_secret().unwrap();
        assert_eq!(first, second);
        assert!(first.expose().len() >= MIN_SECRET_BYTES);
        assert_eq!(format!("{first:?}"), "Secret([redacted])");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
