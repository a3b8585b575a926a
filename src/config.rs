//! Configuration, read once from the environment into typed settings.
//!
//! Every variable is documented in README.md. A bad value is a [`ConfigError`] naming the variable; `main`
//! prints it on one line and exits with code 2.

use std::{fmt, net::SocketAddr, path::PathBuf, str::FromStr, time::Duration};

use base64::Engine as _;
use time::Time;

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

/// Daily opening hours of the lab (UTC), inside which slots are offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpeningHours {
    /// First slot starts here.
    pub open: Time,
    /// The last slot ends at or before this time.
    pub close: Time,
}

/// All settings of the service.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Address the HTTP server binds (`MEDBOOK_ADDR`).
    pub addr: SocketAddr,
    /// Which DynamoDB to use (`MEDBOOK_STORE`).
    pub store: StoreKind,
    /// Directory of the embedded engine's SQLite file and generated secret (`MEDBOOK_DATA_DIR`).
    pub data_dir: PathBuf,
    /// Table name (`MEDBOOK_TABLE`).
    pub table: String,
    /// Capacity mode (`MEDBOOK_CAPACITY_MODE`, `MEDBOOK_RCU`, `MEDBOOK_WCU`).
    pub capacity: CapacityMode,
    /// JWT secret from `MEDBOOK_JWT_SECRET`, if set; see [`Settings::resolve_jwt_secret`].
    pub jwt_secret: Option<Secret>,
    /// Log format (`MEDBOOK_LOG_FORMAT`).
    pub log_format: LogFormat,
    /// Length of a booking slot in minutes (`MEDBOOK_SLOT_MINUTES`).
    pub slot_minutes: u32,
    /// Patients per slot (`MEDBOOK_SLOT_CAPACITY`).
    pub slot_capacity: u32,
    /// Opening hours, UTC (`MEDBOOK_OPENING_HOURS`).
    pub opening_hours: OpeningHours,
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
    /// DynamoDB attempts per call, first included (`MEDBOOK_DYNAMODB_MAX_ATTEMPTS`).
    pub dynamodb_max_attempts: u32,
    /// Time one DynamoDB call may take over all its attempts (`MEDBOOK_DYNAMODB_TIMEOUT_MS`).
    pub dynamodb_timeout: Duration,
    /// Days audit events are kept (`MEDBOOK_AUDIT_RETENTION_DAYS`).
    pub audit_retention_days: u32,
    /// Longest wait for in-flight requests on shutdown (`MEDBOOK_SHUTDOWN_GRACE_S`).
    pub shutdown_grace: Duration,
    /// How long startup keeps retrying while DynamoDB cannot be reached (`MEDBOOK_STARTUP_WAIT_S`).
    pub startup_wait: Duration,
    /// Bearer token `/metrics` requires, if any (`MEDBOOK_METRICS_TOKEN`).
    pub metrics_token: Option<Secret>,
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
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());

        let addr = parse_or(&get, "MEDBOOK_ADDR", "127.0.0.1:8080".parse().expect("valid literal"))?;
        let store = match get("MEDBOOK_STORE").as_deref() {
            None | Some("embedded") => StoreKind::Embedded,
            Some("aws") => StoreKind::Aws,
            Some(other) => {
                return Err(ConfigError::new(
                    "MEDBOOK_STORE",
                    format!("`{other}` is not one of: embedded, aws"),
                ));
            }
        };
        let data_dir = PathBuf::from(get("MEDBOOK_DATA_DIR").unwrap_or_else(|| "./data".into()));
        let table = get("MEDBOOK_TABLE").unwrap_or_else(|| "medbook".into());
        if !valid_table_name(&table) {
            return Err(ConfigError::new(
                "MEDBOOK_TABLE",
                "must be 3 to 255 characters of a-z, A-Z, 0-9, '_', '-', '.'",
            ));
        }
        let capacity = match get("MEDBOOK_CAPACITY_MODE").as_deref() {
            None | Some("on-demand") => CapacityMode::OnDemand,
            Some("provisioned") => CapacityMode::Provisioned {
                rcu: parse_units(&get, "MEDBOOK_RCU")?,
                wcu: parse_units(&get, "MEDBOOK_WCU")?,
            },
            Some(other) => {
                return Err(ConfigError::new(
                    "MEDBOOK_CAPACITY_MODE",
                    format!("`{other}` is not one of: on-demand, provisioned"),
                ));
            }
        };
        let jwt_secret = match get("MEDBOOK_JWT_SECRET") {
            Some(s) if s.len() < MIN_SECRET_BYTES => {
                return Err(ConfigError::new(
                    "MEDBOOK_JWT_SECRET",
                    format!("must be at least {MIN_SECRET_BYTES} bytes, got {}", s.len()),
                ));
            }
            other => other.map(Secret::new),
        };
        let log_format = match get("MEDBOOK_LOG_FORMAT").as_deref() {
            None | Some("pretty") => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError::new(
                    "MEDBOOK_LOG_FORMAT",
                    format!("`{other}` is not one of: pretty, json"),
                ));
            }
        };
        let slot_minutes: u32 = parse_or(&get, "MEDBOOK_SLOT_MINUTES", 15)?;
        if !(5..=240).contains(&slot_minutes) || 1440 % slot_minutes != 0 {
            return Err(ConfigError::new(
                "MEDBOOK_SLOT_MINUTES",
                "must divide a day and be between 5 and 240",
            ));
        }
        let slot_capacity: u32 = parse_or(&get, "MEDBOOK_SLOT_CAPACITY", 4)?;
        if !(1..=1000).contains(&slot_capacity) {
            return Err(ConfigError::new("MEDBOOK_SLOT_CAPACITY", "must be between 1 and 1000"));
        }
        let opening_hours = match get("MEDBOOK_OPENING_HOURS") {
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

        let max_body_bytes: usize = parse_or(&get, "MEDBOOK_MAX_BODY_BYTES", 64 * 1024)?;
        if !(1024..=16 * 1024 * 1024).contains(&max_body_bytes) {
            return Err(ConfigError::new(
                "MEDBOOK_MAX_BODY_BYTES",
                "must be between 1024 and 16777216",
            ));
        }
        let request_timeout_ms: u64 = parse_or(&get, "MEDBOOK_REQUEST_TIMEOUT_MS", 10_000)?;
        if !(100..=300_000).contains(&request_timeout_ms) {
            return Err(ConfigError::new(
                "MEDBOOK_REQUEST_TIMEOUT_MS",
                "must be between 100 and 300000",
            ));
        }
        let rate_per_sec: u32 = parse_or(&get, "MEDBOOK_RATE_PER_SEC", 50)?;
        let rate_burst: u32 = parse_or(&get, "MEDBOOK_RATE_BURST", 100)?;
        if !(1..=1_000_000).contains(&rate_per_sec) {
            return Err(ConfigError::new(
                "MEDBOOK_RATE_PER_SEC",
                "must be between 1 and 1000000",
            ));
        }
        if !(1..=1_000_000).contains(&rate_burst) {
            return Err(ConfigError::new("MEDBOOK_RATE_BURST", "must be between 1 and 1000000"));
        }
        let cors_origins: Vec<String> = get("MEDBOOK_CORS_ORIGINS")
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
        let dynamodb_max_attempts: u32 = parse_or(&get, "MEDBOOK_DYNAMODB_MAX_ATTEMPTS", 3)?;
        if !(1..=10).contains(&dynamodb_max_attempts) {
            return Err(ConfigError::new(
                "MEDBOOK_DYNAMODB_MAX_ATTEMPTS",
                "must be between 1 and 10",
            ));
        }
        let dynamodb_timeout_ms: u64 = parse_or(&get, "MEDBOOK_DYNAMODB_TIMEOUT_MS", 5_000)?;
        if !(50..=60_000).contains(&dynamodb_timeout_ms) {
            return Err(ConfigError::new(
                "MEDBOOK_DYNAMODB_TIMEOUT_MS",
                "must be between 50 and 60000",
            ));
        }
        let audit_retention_days: u32 = parse_or(&get, "MEDBOOK_AUDIT_RETENTION_DAYS", 2555)?;
        if !(1..=36_500).contains(&audit_retention_days) {
            return Err(ConfigError::new(
                "MEDBOOK_AUDIT_RETENTION_DAYS",
                "must be between 1 and 36500",
            ));
        }
        let shutdown_grace_s: u64 = parse_or(&get, "MEDBOOK_SHUTDOWN_GRACE_S", 20)?;
        if shutdown_grace_s > 600 {
            return Err(ConfigError::new("MEDBOOK_SHUTDOWN_GRACE_S", "must be at most 600"));
        }

        let startup_wait_s: u64 = parse_or(&get, "MEDBOOK_STARTUP_WAIT_S", 30)?;
        if startup_wait_s > 3600 {
            return Err(ConfigError::new("MEDBOOK_STARTUP_WAIT_S", "must be at most 3600"));
        }
        let metrics_token = get("MEDBOOK_METRICS_TOKEN").map(Secret::new);

        Ok(Self {
            metrics_token,
            max_body_bytes,
            request_timeout: Duration::from_millis(request_timeout_ms),
            rate_per_sec,
            rate_burst,
            cors_origins,
            dynamodb_max_attempts,
            dynamodb_timeout: Duration::from_millis(dynamodb_timeout_ms),
            audit_retention_days,
            shutdown_grace: Duration::from_secs(shutdown_grace_s),
            startup_wait: Duration::from_secs(startup_wait_s),
            addr,
            store,
            data_dir,
            table,
            capacity,
            jwt_secret,
            log_format,
            slot_minutes,
            slot_capacity,
            opening_hours,
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
        match self.store {
            StoreKind::Aws => Err(ConfigError::new(
                "MEDBOOK_JWT_SECRET",
                "required with MEDBOOK_STORE=aws (at least 32 bytes); refusing to start without one",
            )),
            StoreKind::Embedded => load_or_create_secret(&self.data_dir),
        }
    }
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

fn parse_or<T: FromStr>(get: &impl Fn(&str) -> Option<String>, var: &'static str, default: T) -> Result<T, ConfigError>
where
    T::Err: fmt::Display,
{
    match get(var) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|e| ConfigError::new(var, format!("`{v}`: {e}"))),
    }
}

fn parse_units(get: &impl Fn(&str) -> Option<String>, var: &'static str) -> Result<i64, ConfigError> {
    let units: i64 = parse_or(get, var, 5)?;
    if units < 1 {
        return Err(ConfigError::new(var, "must be at least 1"));
    }
    Ok(units)
}

fn valid_table_name(name: &str) -> bool {
    (3..=255).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
}

fn parse_opening_hours(value: &str) -> Option<OpeningHours> {
    let format = time::macros::format_description!("[hour]:[minute]");
    let (open, close) = value.split_once('-')?;
    let open = Time::parse(open.trim(), format).ok()?;
    let close = Time::parse(close.trim(), format).ok()?;
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
    fn defaults_match_the_readme() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.addr.to_string(), "127.0.0.1:8080");
        assert_eq!(s.store, StoreKind::Embedded);
        assert_eq!(s.data_dir, PathBuf::from("./data"));
        assert_eq!(s.table, "medbook");
        assert_eq!(s.capacity, CapacityMode::OnDemand);
        assert_eq!(s.log_format, LogFormat::Pretty);
        assert_eq!((s.slot_minutes, s.slot_capacity), (15, 4));
        assert_eq!(s.opening_hours.open, Time::from_hms(7, 0, 0).unwrap());
        assert_eq!(s.opening_hours.close, Time::from_hms(18, 0, 0).unwrap());
        assert_eq!((s.max_body_bytes, s.request_timeout), (65_536, Duration::from_secs(10)));
        assert_eq!((s.rate_per_sec, s.rate_burst), (50, 100));
        assert!(s.cors_origins.is_empty());
        assert_eq!(
            (s.dynamodb_max_attempts, s.dynamodb_timeout),
            (3, Duration::from_secs(5))
        );
        assert_eq!(
            (s.audit_retention_days, s.shutdown_grace, s.startup_wait),
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
        assert_eq!(s.capacity, CapacityMode::Provisioned { rcu: 10, wcu: 3 });
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
