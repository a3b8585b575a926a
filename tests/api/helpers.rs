//! Test harness: one embedded engine per test binary, a fresh table and app per test.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{OnceLock, mpsc},
    time::Duration,
};

use medbook::{
    auth::{Role, TokenKeys},
    config::{Secret, Settings},
    engine::EmbeddedEngine,
    startup::Application,
    store::{
        Store,
        client::{ClientOptions, LocalCredentials, local_client},
    },
};
use reqwest::{Method, RequestBuilder, Response};
use serde_json::Value;
use uuid::Uuid;

/// The secret every test app signs with.
pub const TEST_SECRET: &str = "test-secret-test-secret-test-secret-0123456789";

static ENGINE: OnceLock<(String, LocalCredentials)> = OnceLock::new();

/// Set to an engine's URL (Amazon's DynamoDB Local, say) to run the suite against it instead of the
/// embedded engine.
pub const EXTERNAL_ENGINE: &str = "MEDBOOK_TEST_DYNAMODB_ENDPOINT";

/// The shared engine's endpoint: [`EXTERNAL_ENGINE`] when set, else the embedded engine, which runs on its
/// own thread and runtime (each `#[tokio::test]` has its own runtime, and a server spawned on one dies with
/// that test).
pub fn engine_endpoint() -> &'static str {
    &engine().0
}

/// The credentials the shared engine accepts: the embedded engine's own, or the fixed pair for an external one.
pub fn engine_credentials() -> &'static LocalCredentials {
    &engine().1
}

/// A client of the shared engine.
pub fn engine_client() -> aws_sdk_dynamodb::Client {
    local_client(engine_endpoint(), engine_credentials(), &ClientOptions::default())
}

fn engine() -> &'static (String, LocalCredentials) {
    ENGINE.get_or_init(|| {
        if let Ok(endpoint) = std::env::var(EXTERNAL_ENGINE) {
            return (endpoint, LocalCredentials::unchecked());
        }
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("dynoxide".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("engine runtime");
                runtime.block_on(async {
                    let engine = EmbeddedEngine::start_memory().await.expect("engine starts");
                    tx.send((engine.endpoint().to_owned(), engine.credentials().clone()))
                        .expect("test thread waits");
                    std::future::pending::<()>().await;
                });
            })
            .expect("engine thread");
        rx.recv().expect("engine endpoint")
    })
}

/// A fresh table name.
pub fn table_name() -> String {
    format!("medbook-test-{}", Uuid::now_v7())
}

/// A store on a fresh table of the shared engine (not bootstrapped).
pub fn fresh_store() -> Store {
    Store::new(engine_client(), table_name())
}

/// Settings for a test app on `table`, with `extra` variables on top.
pub fn settings(table: &str, extra: &[(&str, &str)]) -> Settings {
    let mut vars: HashMap<String, String> = HashMap::from([
        ("MEDBOOK_ADDR".into(), "127.0.0.1:0".into()),
        ("MEDBOOK_STORE".into(), "aws".into()),
        ("MEDBOOK_TABLE".into(), table.into()),
        ("MEDBOOK_JWT_SECRET".into(), TEST_SECRET.into()),
        // Tests fire bursts from one subject; the rate limit has its own test.
        ("MEDBOOK_RATE_PER_SEC".into(), "100000".into()),
        ("MEDBOOK_RATE_BURST".into(), "100000".into()),
        // The test apps use the production store kind against the local engine; the metrics tests read
        // /metrics (its default there, off, has a test of its own).
        ("MEDBOOK_METRICS_PUBLIC".into(), "true".into()),
        // The relay reads the table's stream; the webhook tests turn it on, the rest leave it idle.
        ("MEDBOOK_RELAY".into(), "off".into()),
        ("MEDBOOK_WEBHOOK_TARGETS".into(), "loopback".into()),
    ]);
    for (k, v) in extra {
        vars.insert((*k).into(), (*v).into());
    }
    Settings::from_lookup(|k| vars.get(k).cloned()).expect("test settings are valid")
}

/// A running app on its own table.
pub struct TestApp {
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub base: String,
    /// HTTP client.
    pub http: reqwest::Client,
    /// Token issuer with the app's secret.
    pub tokens: TokenKeys,
    /// Direct store access on the app's table, for setting up and checking state.
    pub store: Store,
}

/// Starts an app on a fresh, bootstrapped and migrated table.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Starts an app with extra settings.
pub async fn spawn_app_with(extra: &[(&str, &str)]) -> TestApp {
    spawn_app_on(engine_endpoint(), extra).await
}

/// Starts an app that reaches the engine through `endpoint` (a proxy, say), with extra settings.
pub async fn spawn_app_on(endpoint: &str, extra: &[(&str, &str)]) -> TestApp {
    let table = table_name();
    let settings = settings(&table, extra);
    let options = ClientOptions::from(&settings.store);
    let client = local_client(endpoint, engine_credentials(), &options);
    let streams = medbook::store::client::local_streams_client(endpoint, engine_credentials(), &options);
    let app = Application::build_with_clients(settings, client, streams)
        .await
        .expect("app builds");
    let addr: SocketAddr = app.local_addr().expect("bound");
    tokio::spawn(app.run_until(std::future::pending()));
    TestApp {
        base: format!("http://{addr}"),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client"),
        tokens: TokenKeys::new(&Secret::new(TEST_SECRET.as_bytes().to_vec())),
        store: Store::new(engine_client(), table),
    }
}

/// A [`TestApp`] for an app already running at `base` on `table`.
pub fn test_app_at(base: &str, table: &str) -> TestApp {
    TestApp {
        base: base.to_owned(),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client"),
        tokens: TokenKeys::new(&Secret::new(TEST_SECRET.as_bytes().to_vec())),
        store: Store::new(engine_client(), table.to_owned()),
    }
}

impl TestApp {
    /// A token for `role` and `sub`, valid for an hour.
    pub fn token(&self, role: Role, sub: &str) -> String {
        self.tokens.issue(role, sub, Duration::from_secs(3600)).expect("token")
    }

    /// A token for a staff role with a fixed subject.
    pub fn staff(&self, role: Role) -> String {
        self.token(role, &format!("{role}-1"))
    }

    /// A request to `path` with an optional bearer token.
    pub fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let rb = self.http.request(method, format!("{}{path}", self.base));
        match token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    /// Registers a patient as admin; returns its id.
    pub async fn create_patient(&self) -> Uuid {
        let res = self
            .request(Method::POST, "/v1/patients", Some(&self.staff(Role::Admin)))
            .json(&serde_json::json!({
                "givenName": "Ada", "familyName": "Lovelace", "birthDate": "1990-12-10", "sex": "female"
            }))
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), 201);
        let body: Value = res.json().await.expect("json");
        body["id"].as_str().expect("id").parse().expect("uuid")
    }
}

/// The `Dynamodb-Usage` header as numbers: (calls, rcu, wcu).
pub fn usage(res: &Response) -> (u32, f64, f64) {
    usage_of(res.headers())
}

/// The `Dynamodb-Usage` header of `headers` as numbers: (calls, rcu, wcu).
pub fn usage_of(headers: &reqwest::header::HeaderMap) -> (u32, f64, f64) {
    let text = headers
        .get("dynamodb-usage")
        .expect("Dynamodb-Usage header")
        .to_str()
        .expect("ascii");
    let mut calls = None;
    let (mut rcu, mut wcu) = (None, None);
    for part in text.split(", ") {
        let (k, v) = part.split_once('=').expect("k=v");
        match k {
            "calls" => calls = v.parse().ok(),
            "rcu" => rcu = v.parse().ok(),
            "wcu" => wcu = v.parse().ok(),
            _ => panic!("unknown part {part}"),
        }
    }
    (calls.expect("calls"), rcu.expect("rcu"), wcu.expect("wcu"))
}

/// Asserts a problem+json response with `status` and a type ending in `kind`; returns the body.
pub async fn assert_problem(res: Response, status: u16, kind: &str) -> Value {
    assert_eq!(res.status(), status, "status");
    assert_eq!(
        res.headers().get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/problem+json"),
        "content type"
    );
    let body: Value = res.json().await.expect("problem json");
    let problem_type = body["type"].as_str().expect("type");
    assert!(
        problem_type.ends_with(kind),
        "type {problem_type} should end with {kind}: {body}"
    );
    assert_eq!(body["status"], status);
    assert!(body["title"].is_string() && body["detail"].is_string(), "{body}");
    body
}

/// A day `days` from today, `YYYY-MM-DD` (far enough ahead that its slots are in the future).
pub fn day(days: i64) -> String {
    let date = time::OffsetDateTime::now_utc().date() + time::Duration::days(days);
    format!("{:04}-{:02}-{:02}", date.year(), u8::from(date.month()), date.day())
}

/// A slot start on `day` at `hh:mm` UTC.
pub fn slot(day: &str, hhmm: &str) -> String {
    format!("{day}T{hhmm}:00Z")
}

impl TestApp {
    /// Books `tests` into `slot` for `patient` as admin with idempotency `key`.
    pub async fn book(&self, patient: Uuid, slot: &str, tests: &[&str], key: &str) -> Response {
        self.request(
            Method::POST,
            &format!("/v1/patients/{patient}/bookings"),
            Some(&self.staff(Role::Admin)),
        )
        .header("idempotency-key", key)
        .json(&serde_json::json!({"slotStart": slot, "tests": tests}))
        .send()
        .await
        .expect("request")
    }

    /// Books and returns the booking body, asserting 201.
    pub async fn booked(&self, patient: Uuid, slot: &str, tests: &[&str]) -> Value {
        let res = self.book(patient, slot, tests, &Uuid::now_v7().to_string()).await;
        assert_eq!(res.status(), 201, "booking");
        res.json().await.expect("json")
    }

    /// Checks a booking in through the store, as the lab does on the slot's day: results need a check-in, and
    /// the API refuses one before the slot's day, while these tests book days ahead.
    pub async fn check_in(&self, patient: Uuid, booking: &str) {
        self.check_in_at(patient, booking, &medbook::domain::timefmt::now())
            .await;
    }

    /// [`TestApp::check_in`] at the instant `at` (the specimen's collection time).
    pub async fn check_in_at(&self, patient: Uuid, booking: &str, at: &str) {
        let old = self
            .store
            .booking_tree(patient, booking.parse().expect("booking id"))
            .await
            .expect("tree")
            .expect("booking")
            .booking;
        let last = self
            .store
            .last_accession(&old.site, old.local_date())
            .await
            .expect("counter");
        let now = at.to_owned();
        let checked = medbook::domain::booking::Booking {
            status: medbook::domain::booking::BookingStatus::CheckedIn,
            checked_in_at: Some(now.clone()),
            accession: Some(format!("{}-TEST-{:04}", old.site, last + 1)),
            version: old.version + 1,
            updated_at: now,
            ..old.clone()
        };
        let audit = medbook::domain::audit::AuditDraft {
            actor: medbook::domain::audit::Actor {
                sub: "lab-test".into(),
                role: "lab".into(),
            },
            action: "POST /v1/patients/{patientId}/bookings/{bookingId}/check-in".into(),
            resource: format!("/v1/patients/{patient}/bookings/{booking}/check-in"),
            outcome: 200,
            request_id: "test".into(),
        }
        .event(patient);
        // The event the service writes with a check-in.
        let event = medbook::domain::event::DomainEvent::booking(
            medbook::domain::event::EventType::BookingCheckedIn,
            patient,
            checked.id,
            &checked.updated_at,
        )
        .with("accession", checked.accession.as_deref().unwrap_or_default());
        let outcome = self
            .store
            .change_booking_status(&old, &checked, Some(last), &audit, &[event])
            .await
            .expect("check-in");
        assert_eq!(outcome, medbook::store::bookings::StatusOutcome::Changed);
    }

    /// Verifies the result of the test at `base` (`…/tests/{testId}`) at `version` as a second lab user
    /// (`lab-2`; results in these tests are recorded by `lab-1`).
    pub async fn verify(&self, base: &str, version: u64) -> Response {
        self.request(
            Method::POST,
            &format!("{base}/result/verify"),
            Some(&self.token(Role::Lab, "lab-2")),
        )
        .header("if-match", format!("\"{version}\""))
        .send()
        .await
        .expect("request")
    }

    /// GET `path` as `token`, returning the response.
    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.request(Method::GET, path, Some(token))
            .send()
            .await
            .expect("request")
    }
}

/// A `performedAt` for a result recorded now (it may not lie before the booking was made, nor in the future).
pub fn performed_now() -> String {
    medbook::domain::timefmt::second(time::OffsetDateTime::now_utc())
}
