//! The `medbook` command line: `serve` (default), `migrate [--status]`, `token`, `openapi`, `healthcheck`.

use std::{process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};

use crate::{
    auth::{Role, TokenKeys},
    config::Settings,
    startup::{Application, StartupError, open_store},
    store::migrate,
    telemetry,
};

/// medbook: medical test booking on one DynamoDB table. Configuration comes from MEDBOOK_* environment
/// variables (see README.md).
#[derive(Debug, Parser)]
#[command(name = "medbook", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP service (the default).
    Serve,
    /// Create or update the table, then apply pending migrations.
    Migrate {
        /// Only list applied and pending migrations.
        #[arg(long)]
        status: bool,
    },
    /// Print a signed bearer token, using the same secret as `serve`.
    Token {
        /// Role of the token.
        #[arg(long, value_enum)]
        role: Role,
        /// Subject: a user id; for `patient`, the patient id.
        #[arg(long)]
        sub: String,
        /// Lifetime, e.g. 90s, 15m, 1h, 7d.
        #[arg(long, default_value = "1h", value_parser = crate::domain::timefmt::parse_duration)]
        ttl: Duration,
    },
    /// Print the OpenAPI document (to regenerate openapi/openapi.json).
    Openapi,
    /// Ask the running service on MEDBOOK_ADDR whether it is ready: exit 0 on 200, 1 otherwise. For a
    /// container's HEALTHCHECK, where there is no curl.
    Healthcheck {
        /// Path to ask.
        #[arg(long, default_value = "/health/ready")]
        path: String,
        /// Give up after this many milliseconds.
        #[arg(long, default_value_t = 2000)]
        timeout_ms: u64,
    },
}

/// Parses the command line and runs it. Exit codes: 0 success, 1 runtime failure, 2 bad configuration
/// or usage.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Openapi) = cli.command {
        let spec = crate::api::openapi().to_pretty_json().expect("the spec serialises");
        println!("{spec}");
        return ExitCode::SUCCESS;
    }
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => return fail(&StartupError::Config(e)),
    };
    if let Some(Command::Healthcheck { path, timeout_ms }) = &cli.command {
        return match healthcheck(settings.server.addr, path, Duration::from_millis(*timeout_ms)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("medbook: not healthy: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(Command::Token { role, sub, ttl }) = &cli.command {
        let secret = match settings.resolve_jwt_secret() {
            Ok(s) => s,
            Err(e) => return fail(&StartupError::Config(e)),
        };
        return match TokenKeys::new(&secret)
            .with_max_ttl(settings.jwt_max_ttl)
            .issue(*role, sub, *ttl)
        {
            Ok(token) => {
                println!("{token}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("medbook: {e}");
                ExitCode::from(2)
            }
        };
    }
    telemetry::init(settings.server.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("medbook: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            None | Some(Command::Serve) => {
                let app = Application::build(settings).await?;
                app.run_until_stopped()
                    .await
                    .map_err(|e| StartupError::Engine(format!("server failed: {e}")))
            }
            Some(Command::Migrate { status }) => migrate_command(settings, status).await,
            Some(Command::Token { .. } | Command::Openapi | Command::Healthcheck { .. }) => {
                unreachable!("handled above")
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// One `GET path` over HTTP/1.1 to the service listening on `addr` (an unspecified address means this
/// host); `Ok` when the answer is 200.
fn healthcheck(addr: std::net::SocketAddr, path: &str, timeout: Duration) -> Result<(), String> {
    use std::io::{Read, Write};

    let mut target = addr;
    if target.ip().is_unspecified() {
        target.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let mut stream = std::net::TcpStream::connect_timeout(&target, timeout).map_err(|e| format!("{target}: {e}"))?;
    stream.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    stream.set_write_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("{target}: {e}"))?;
    let mut head = [0u8; 64];
    let n = stream.read(&mut head).map_err(|e| format!("{target}: {e}"))?;
    let status_line = String::from_utf8_lossy(&head[..n]);
    let status = status_line.split_whitespace().nth(1).unwrap_or("no answer");
    if status == "200" {
        Ok(())
    } else {
        Err(format!("GET {path} on {target} answered {status}"))
    }
}

async fn migrate_command(settings: Settings, status_only: bool) -> Result<(), StartupError> {
    let (store, engine) = open_store(&settings).await?;
    store.bootstrap(settings.store.capacity, settings.relay.enabled).await?;
    let migrations = migrate::embedded();
    if !status_only {
        let applied = store.migrate(&migrations).await?;
        println!(
            "applied {} migration(s){}",
            applied.len(),
            if applied.is_empty() { "" } else { ":" }
        );
        for name in applied {
            println!("  {name}");
        }
    }
    for m in store.migration_status(&migrations).await? {
        match m.applied_at {
            Some(at) => println!("applied  {}  {at}", m.name),
            None => println!("pending  {}", m.name),
        }
    }
    #[cfg(feature = "embedded")]
    if let Some(engine) = engine {
        engine.shutdown().await;
    }
    #[cfg(not(feature = "embedded"))]
    let _ = engine;
    Ok(())
}

fn fail(e: &StartupError) -> ExitCode {
    eprintln!("medbook: {e}");
    match e {
        StartupError::Config(_) => ExitCode::from(2),
        _ => ExitCode::FAILURE,
    }
}
