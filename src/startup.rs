//! Building the application: settings → engine and client → table and migrations → state → router → bound
//! listener. Binding to port 0 lets tests ask for the real port afterwards.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use aws_sdk_dynamodb::Client;
use tokio::{net::TcpListener, sync::watch};

use crate::service::relay::Relay;
use crate::{
    api::{self, AppState, Services, cursor::CursorKey},
    auth::{Authenticator, TokenKeys, oidc::OidcVerifier},
    config::{ConfigError, Settings, StoreKind},
    domain::site::SiteDefinition,
    service::{
        audit::AuditTrail, bookings::Bookings, catalog::Catalog, health::Health, identities::Identities,
        patients::Patients, results::Results, sites::Sites,
    },
    store::{Store, StoreError, bootstrap::BootstrapError, client, migrate},
};

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// Bad configuration (exit code 2).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The table cannot be used.
    #[error(transparent)]
    Bootstrap(#[from] BootstrapError),
    /// Migrations failed.
    #[error(transparent)]
    Migrate(#[from] migrate::MigrateError),
    /// The embedded engine could not start, or this build has none.
    #[error("{0}")]
    Engine(String),
    /// The address could not be bound.
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
}

/// The running pieces, before the server loop starts.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    health: Health,
    relay: Option<Arc<Relay>>,
    grace: Duration,
    connections: ConnectionLimits,
    #[cfg(feature = "embedded")]
    engine: Option<crate::engine::EmbeddedEngine>,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("addr", &self.listener.local_addr().ok())
            .finish_non_exhaustive()
    }
}

/// The store `settings` point at: starts the embedded engine when configured. Returns the engine too, so
/// the caller decides how long it lives.
///
/// # Errors
/// When the embedded engine cannot start, or this build has none.
pub async fn open_store(settings: &Settings) -> Result<(Store, Option<EngineHandle>), StartupError> {
    match settings.store.kind {
        StoreKind::Aws => Ok((
            Store::new(
                client::aws_client(&(&settings.store).into()).await,
                settings.store.table.clone(),
            )
            .with_streams(client::aws_streams_client(&(&settings.store).into()).await),
            None,
        )),
        #[cfg(feature = "embedded")]
        StoreKind::Embedded => {
            let path = settings.store.data_dir.join("medbook.db");
            let engine = crate::engine::EmbeddedEngine::start_file(&path)
                .await
                .map_err(|e| StartupError::Engine(e.to_string()))?;
            tracing::warn!(
                file = %path.display(),
                endpoint = engine.endpoint(),
                "using the embedded local DynamoDB engine (dynoxide on SQLite): for development only; set MEDBOOK_STORE=aws for Amazon DynamoDB"
            );
            let options = (&settings.store).into();
            let store = Store::new(
                client::local_client(engine.endpoint(), engine.credentials(), &options),
                settings.store.table.clone(),
            )
            .with_streams(client::local_streams_client(
                engine.endpoint(),
                engine.credentials(),
                &options,
            ));
            Ok((store, Some(engine)))
        }
        #[cfg(not(feature = "embedded"))]
        StoreKind::Embedded => Err(StartupError::Engine(
            "this build has no embedded engine (built without the `embedded` feature): set MEDBOOK_STORE=aws".into(),
        )),
    }
}

/// The embedded engine, when there is one.
#[cfg(feature = "embedded")]
pub type EngineHandle = crate::engine::EmbeddedEngine;
/// The embedded engine, when there is one (never, in this build).
#[cfg(not(feature = "embedded"))]
pub type EngineHandle = std::convert::Infallible;

/// Bootstraps the table, retrying while the engine cannot be reached (a container started next to DynamoDB
/// Local, say) for up to `startup_wait`. Bootstrap is idempotent, so a retry after a half-done attempt is safe.
async fn bootstrap_when_reachable(store: &Store, settings: &Settings) -> Result<(), BootstrapError> {
    let started = std::time::Instant::now();
    let mut pause = Duration::from_millis(250);
    loop {
        match store.bootstrap(settings.store.capacity, settings.relay.enabled).await {
            Err(BootstrapError::Store(StoreError::Unavailable(reason)))
                if started.elapsed() < settings.store.startup_wait =>
            {
                tracing::warn!(%reason, waited_ms = started.elapsed().as_millis() as u64, "DynamoDB not reachable yet; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            other => return other,
        }
    }
}

impl Application {
    /// Builds the application `settings` describe: engine, table, migrations, listener.
    ///
    /// # Errors
    /// [`StartupError`] for any step that fails.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let (store, engine) = open_store(&settings).await?;
        #[cfg_attr(
            not(feature = "embedded"),
            expect(unused_mut, reason = "only the embedded build keeps the engine")
        )]
        let mut app = Self::build_with_store(settings, store).await?;
        #[cfg(feature = "embedded")]
        {
            app.engine = engine;
        }
        #[cfg(not(feature = "embedded"))]
        let _ = engine;
        Ok(app)
    }

    /// Builds the application on a client made elsewhere (tests use one shared engine), without a streams
    /// client: `MEDBOOK_RELAY` must be `off`.
    ///
    /// # Errors
    /// [`StartupError`] for any step that fails.
    pub async fn build_with_client(settings: Settings, client: Client) -> Result<Self, StartupError> {
        let store = Store::new(client, settings.store.table.clone());
        Self::build_with_store(settings, store).await
    }

    /// Builds the application on clients made elsewhere, the relay reading the stream through `streams`.
    ///
    /// # Errors
    /// [`StartupError`] for any step that fails.
    pub async fn build_with_clients(
        settings: Settings,
        client: Client,
        streams: aws_sdk_dynamodbstreams::Client,
    ) -> Result<Self, StartupError> {
        let store = Store::new(client, settings.store.table.clone()).with_streams(streams);
        Self::build_with_store(settings, store).await
    }

    async fn build_with_store(settings: Settings, store: Store) -> Result<Self, StartupError> {
        // Install the recorder before the first DynamoDB call, so bootstrap and migrations are counted too.
        let _ = crate::telemetry::metrics();
        let store = store
            .with_audit_retention(settings.store.audit_retention_days)
            .with_event_retention(settings.store.event_retention_days)
            .with_reminders(settings.store.reminder_before);
        let secret = settings.resolve_jwt_secret()?;
        bootstrap_when_reachable(&store, &settings).await?;
        let applied = store.migrate(&migrate::embedded()).await?;
        if !applied.is_empty() {
            tracing::info!(?applied, "migrations applied");
        }
        let catalog = Catalog::new(store.clone());
        // Warm the catalog cache so the first requests do not pay for it.
        if let Err(e) = catalog.all().await {
            tracing::warn!(error = %e, "could not preload the catalog; it loads on first use");
        }
        let sites = Sites::new(store.clone(), SiteDefinition::from_grid(&settings.slots));
        sites
            .ensure_default()
            .await
            .map_err(|e| StartupError::Engine(format!("creating the default site: {e}")))?;
        if let Err(e) = sites.all().await {
            tracing::warn!(error = %e, "could not preload the sites; they load on first use");
        }
        // An event is stamped before its transaction is sent: the feed must stay behind longer than one
        // DynamoDB call can take, or a slow commit could land behind a position already handed out.
        if settings.store.event_settle < settings.store.timeout + Duration::from_secs(2) {
            tracing::warn!(
                settle_ms = settings.store.event_settle.as_millis(),
                dynamodb_timeout_ms = settings.store.timeout.as_millis(),
                "MEDBOOK_EVENT_SETTLE_MS is under MEDBOOK_DYNAMODB_TIMEOUT_MS + 2 s: a slow commit may land behind a feed position already handed out"
            );
        }
        let health = Health::new(store.clone());
        let state = AppState::new(Services {
            bookings: Bookings::new(store.clone(), catalog.clone(), sites.clone()),
            sites,
            results: Results::new(store.clone(), catalog.clone(), settings.result_release),
            catalog,
            patients: Patients::new(store.clone()),
            audit: AuditTrail::new(store.clone(), settings.store.audit_refusals_per_minute),
            health: health.clone(),
            auth: Arc::new(Authenticator::new(
                settings
                    .medbook_tokens
                    .then(|| TokenKeys::new(&secret).with_max_ttl(settings.jwt_max_ttl)),
                settings.oidc.clone().map(OidcVerifier::new),
            )),
            identities: Identities::new(store.clone(), settings.identity_cache),
            events: crate::service::events::Events::new(
                store.clone(),
                settings.store.event_retention_days,
                settings.store.event_settle,
            ),
            alerts: crate::service::alerts::Alerts::new(store.clone()),
            webhooks: crate::service::webhooks::Webhooks::new(store.clone(), settings.relay.targets),
            cursors: Arc::new(CursorKey::new(&secret)),
            lab_name: settings.lab_name.clone(),
        });
        if let Some(oidc) = state.auth.oidc().cloned() {
            // Fetch the provider's keys now, so the first sign-in does not wait. A provider that is down does
            // not stop startup: provider tokens are refused until a fetch succeeds, which the first token after
            // MEDBOOK_OIDC_REFRESH_S (60 s) tries again.
            tokio::spawn(async move { oidc.refresh_if_due().await });
        }
        let relay = if settings.relay.enabled {
            let relay = Relay::new(store.clone(), settings.relay.clone()).map_err(StartupError::Engine)?;
            relay.check_stream().await.map_err(|e| {
                StartupError::Engine(format!(
                    "MEDBOOK_RELAY=on delivers webhooks from the table's DynamoDB Stream, which cannot be read ({e}); \
                     set MEDBOOK_RELAY=off to run without deliveries (the event feed, GET /v1/events, still works)"
                ))
            })?;
            Some(relay)
        } else {
            if settings.relay.email.is_some() {
                tracing::warn!("MEDBOOK_SMTP_URL is set but MEDBOOK_RELAY=off: this replica sends no e-mail");
            }
            None
        };
        let listener = TcpListener::bind(settings.server.addr)
            .await
            .map_err(|e| StartupError::Bind(settings.server.addr, e))?;
        Ok(Self {
            listener,
            router: api::router(state, &(&settings).into()),
            health,
            relay,
            grace: settings.server.shutdown_grace,
            connections: ConnectionLimits {
                header_read_timeout: settings.server.header_read_timeout,
                max_connections: settings.server.max_connections,
            },
            #[cfg(feature = "embedded")]
            engine: None,
        })
    }

    /// The bound address (the real port when configured with port 0).
    ///
    /// # Errors
    /// When the socket cannot report it.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until Ctrl-C or SIGTERM, then finishes in-flight requests and stops the engine.
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `shutdown` completes, then finishes in-flight requests and stops the engine.
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let addr = self.listener.local_addr()?;
        tracing::info!(addr = %addr, "medbook listening");
        let (stop, mut stopped) = watch::channel(false);
        let (health, grace) = (self.health.clone(), self.grace);
        let (stop_relay, relay_stopped) = watch::channel(false);
        let relay = self.relay.map(|relay| tokio::spawn(relay.run(relay_stopped)));
        tokio::spawn(async move {
            shutdown.await;
            // The relay stops first and gives up its leases, so another replica takes over at once.
            let _ = stop_relay.send(true);
            // Readiness fails first, so load balancers stop sending, then the listener closes.
            health.start_draining();
            tracing::info!(
                grace_s = grace.as_secs(),
                "shutting down: readiness is 503, finishing in-flight requests"
            );
            tokio::time::sleep(DRAIN_DELAY.min(grace)).await;
            let _ = stop.send(true);
        });
        let server = serve(self.listener, self.router, self.connections, stopped.clone());
        let result = tokio::select! {
            result = server => result,
            () = async move {
                let _ = stopped.wait_for(|s| *s).await;
                tokio::time::sleep(grace).await;
            } => {
                tracing::warn!(grace_s = grace.as_secs(), "shutdown grace elapsed: dropping requests still in flight");
                Ok(())
            }
        };
        if let Some(relay) = relay {
            let _ = tokio::time::timeout(RELAY_STOP, relay).await;
        }
        #[cfg(feature = "embedded")]
        if let Some(engine) = self.engine {
            engine.shutdown().await;
        }
        result
    }
}

/// What one connection may take of the server.
#[derive(Debug, Clone, Copy)]
struct ConnectionLimits {
    /// Time a client has to send a request's headers; a keep-alive connection waiting for its next request
    /// is closed after the same time (hyper runs the one timer for both).
    header_read_timeout: Duration,
    /// Open connections at most; past it the listener stops accepting until one closes.
    max_connections: usize,
}

/// The accept loop: each connection served by hyper (HTTP/1.1) with a header-read timeout, at most
/// `max_connections` at once, until `stop` turns true; then every connection finishes its in-flight requests
/// and closes (idle ones at once).
async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: ConnectionLimits,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    use hyper_util::{
        rt::{TokioIo, TokioTimer},
        server::graceful::GracefulShutdown,
    };
    use tower::ServiceExt as _;

    let graceful = GracefulShutdown::new();
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    // HTTP/1.1 only: its header-read timer runs from the first byte the connection waits for, so a client
    // that sends nothing is closed too (HTTP/2 version sniffing would wait for it without a timer). Load
    // balancers speak HTTP/1.1 to their targets.
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = until_true(&mut stop) => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = until_true(&mut stop) => break,
        };
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
            router.clone().oneshot(req.map(axum::body::Body::new))
        });
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Waits until `flag` is true (and holds no borrow of it afterwards).
async fn until_true(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|s| *s).await;
}

/// How long readiness reports 503 before the listener closes.
const DRAIN_DELAY: Duration = Duration::from_millis(500);

/// Longest wait for the relay to finish its round and give up its leases on shutdown.
const RELAY_STOP: Duration = Duration::from_secs(5);

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
