//! Webhooks over HTTP: the relay reads the table's stream and delivers to a real local receiver
//! (tests/webhooks/receiver.mjs), which verifies every delivery with the Standard Webhooks reference library.

use futures_util::StreamExt;
use std::{
    io::{BufRead, BufReader},
    process::{Child, ChildStdin, Command, Stdio},
    sync::{Mutex, OnceLock},
    time::{Duration, Instant},
};

use medbook::auth::Role;
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, day, slot, spawn_app_with};

struct Receiver {
    base: String,
    _process: Mutex<(Child, ChildStdin)>,
}

static RECEIVER: OnceLock<Receiver> = OnceLock::new();

/// Installs (once, `npm ci` from the committed lock file into target/webhook-receiver) and starts the
/// receiver; it lives as long as the test binary (it exits when its standard input closes).
pub fn receiver() -> &'static str {
    &RECEIVER
        .get_or_init(|| {
            let source = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/webhooks");
            let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/target/webhook-receiver");
            std::fs::create_dir_all(dir).expect("target/webhook-receiver");
            for file in ["package.json", "package-lock.json", "receiver.mjs"] {
                std::fs::copy(format!("{source}/{file}"), format!("{dir}/{file}")).expect("copy the receiver");
            }
            if !std::path::Path::new(dir).join("node_modules/standardwebhooks").exists() {
                let status = Command::new("npm")
                    .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                    .current_dir(dir)
                    .status()
                    .expect("npm runs (Node.js and npm are needed for the webhook receiver)");
                assert!(status.success(), "npm ci of the webhook receiver");
            }
            let mut child = Command::new("node")
                .arg("receiver.mjs")
                .current_dir(dir)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("node starts");
            let stdin = child.stdin.take().expect("stdin");
            let mut line = String::new();
            BufReader::new(child.stdout.take().expect("stdout"))
                .read_line(&mut line)
                .expect("the receiver prints its port");
            let port = serde_json::from_str::<Value>(&line).expect("json")["port"]
                .as_u64()
                .expect("port");
            Receiver {
                base: format!("http://127.0.0.1:{port}"),
                _process: Mutex::new((child, stdin)),
            }
        })
        .base
}

/// The receiver's endpoint `name`, configured to answer as `config` says (with the webhook's `secret`).
pub async fn configure(name: &str, secret: &str, config: Value) {
    let mut config = config;
    config["secret"] = json!(secret);
    let res = reqwest::Client::new()
        .put(format!("{}/config/{name}", receiver()))
        .json(&config)
        .send()
        .await
        .expect("the receiver answers");
    assert_eq!(res.status(), 204);
}

/// What endpoint `name` has received, in arrival order.
pub async fn received(name: &str) -> Vec<Value> {
    reqwest::Client::new()
        .get(format!("{}/received/{name}", receiver()))
        .send()
        .await
        .expect("the receiver answers")
        .json()
        .await
        .expect("json")
}

/// Waits (up to `within`) until `done` holds for what `name` received; returns it.
pub async fn wait_received(name: &str, within: Duration, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let got = received(name).await;
        if done(&got) {
            return got;
        }
        assert!(
            started.elapsed() < within,
            "the receiver did not get what was expected within {within:?}: {got:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A relaying app with fast polls and retries.
async fn relaying(extra: &[(&str, &str)]) -> TestApp {
    let mut settings = vec![
        ("MEDBOOK_RELAY", "on"),
        ("MEDBOOK_RELAY_POLL_MS", "50"),
        ("MEDBOOK_WEBHOOK_RETRY_BASE_MS", "100"),
    ];
    settings.extend_from_slice(extra);
    spawn_app_with(&settings).await
}

/// Creates a webhook to receiver endpoint `name`, configured by `config`; returns (id, secret).
async fn webhook_to(app: &TestApp, name: &str, types: &[&str], config: Value) -> (String, String) {
    let res = app
        .request(Method::POST, "/v1/webhooks", Some(&app.staff(Role::Admin)))
        .json(&json!({"url": format!("{}/hooks/{name}", receiver()), "types": types, "description": "test"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    let (id, secret) = (
        body["id"].as_str().unwrap().to_owned(),
        body["secret"].as_str().unwrap().to_owned(),
    );
    configure(name, &secret, config).await;
    (id, secret)
}

async fn deliveries(app: &TestApp, webhook: &str) -> Vec<Value> {
    let admin = app.staff(Role::Admin);
    let (mut all, mut cursor) = (Vec::new(), None::<String>);
    loop {
        let url = match &cursor {
            None => format!("/v1/webhooks/{webhook}/deliveries?limit=100"),
            Some(c) => format!("/v1/webhooks/{webhook}/deliveries?limit=100&cursor={c}"),
        };
        let res = app.get(&url, &admin).await;
        assert_eq!(res.status(), 200);
        let page: Value = res.json().await.unwrap();
        all.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return all,
        }
    }
}

async fn webhook(app: &TestApp, id: &str) -> Value {
    app.get(&format!("/v1/webhooks/{id}"), &app.staff(Role::Admin))
        .await
        .json()
        .await
        .unwrap()
}

async fn wait_for(what: &str, within: Duration, mut check: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < within, "{what} within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_admin_creates_lists_replaces_and_deletes_webhooks_and_the_secret_is_shown_once() {
    let app = spawn_app_with(&[]).await;
    let admin = app.staff(Role::Admin);
    let res = app
        .request(Method::POST, "/v1/webhooks", Some(&admin))
        .json(&json!({"url": "http://127.0.0.1:9/hook", "types": ["booking.created", "booking.created"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["etag"], "\"1\"");
    let created: Value = res.json().await.unwrap();
    let id = created["id"].as_str().unwrap();
    assert!(created["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(created["types"], json!(["booking.created"]), "types are deduplicated");
    assert_eq!(created["enabled"], true);
    let got = webhook(&app, id).await;
    assert!(
        got.get("secret").is_none(),
        "the secret is shown at creation only: {got}"
    );
    let list: Value = app.get("/v1/webhooks", &admin).await.json().await.unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert!(list["items"][0].get("secret").is_none());

    let put = |etag: &'static str, body: Value| {
        app.request(Method::PUT, &format!("/v1/webhooks/{id}"), Some(&admin))
            .header("if-match", etag)
            .json(&body)
            .send()
    };
    let body = json!({"url": "http://127.0.0.1:9/other", "types": [], "description": "all", "enabled": false});
    assert_eq!(put("\"7\"", body.clone()).await.unwrap().status(), 412);
    let res = put("\"1\"", body).await.unwrap();
    assert_eq!(res.status(), 200);
    let replaced: Value = res.json().await.unwrap();
    assert_eq!(
        (replaced["enabled"].clone(), replaced["version"].clone()),
        (json!(false), json!(2))
    );
    assert_eq!(replaced["url"], "http://127.0.0.1:9/other");
    let res = app
        .request(Method::PUT, &format!("/v1/webhooks/{id}"), Some(&admin))
        .json(&json!({"url": "http://127.0.0.1:9/x", "enabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 428, "a replacement names the version it replaces");

    for bad in [
        json!({"url": "ftp://127.0.0.1/x"}),
        json!({"url": "http://10.0.0.7/x"}),
        json!({"url": "https://169.254.169.254/latest/meta-data"}),
        json!({"url": "http://127.0.0.1/x", "types": ["booking.exploded"]}),
        json!({"url": "http://127.0.0.1/x", "secret": "mine"}),
    ] {
        let res = app
            .request(Method::POST, "/v1/webhooks", Some(&admin))
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert!([400, 422].contains(&res.status().as_u16()), "{bad}: {}", res.status());
    }
    let res = app
        .request(Method::POST, "/v1/webhooks", Some(&admin))
        .json(&json!({"url": "http://10.0.0.7/x"}))
        .send()
        .await
        .unwrap();
    let problem = crate::helpers::assert_problem(res, 422, "validation").await;
    assert!(problem.to_string().contains("url"), "{problem}");

    for role in [Role::Lab, Role::Doctor] {
        assert_eq!(app.get("/v1/webhooks", &app.staff(role)).await.status(), 403, "{role}");
    }
    let res = app
        .request(Method::DELETE, &format!("/v1/webhooks/{id}"), Some(&admin))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(app.get(&format!("/v1/webhooks/{id}"), &admin).await.status(), 404);
    assert_eq!(
        app.store.webhook_count().await.unwrap(),
        0,
        "the counter follows deletes"
    );
}

#[tokio::test]
async fn at_most_twenty_webhooks_exist() {
    let app = spawn_app_with(&[]).await;
    let admin = app.staff(Role::Admin);
    let create = || {
        app.request(Method::POST, "/v1/webhooks", Some(&admin))
            .json(&json!({"url": "http://127.0.0.1:9/hook"}))
            .send()
    };
    let all = futures_util::future::join_all((0..22).map(|_| create())).await;
    let mut statuses: Vec<u16> = all.into_iter().map(|r| r.unwrap().status().as_u16()).collect();
    statuses.sort_unstable();
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 20, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 2, "{statuses:?}");
    assert_eq!(app.store.webhook_count().await.unwrap(), 20);
}

#[tokio::test]
async fn production_takes_only_https_to_public_addresses() {
    let app = spawn_app_with(&[("MEDBOOK_WEBHOOK_TARGETS", "public")]).await;
    let admin = app.staff(Role::Admin);
    for url in [
        "http://127.0.0.1:9/hook",
        "https://127.0.0.1/hook",
        "https://localhost/hook",
        "https://10.1.2.3/hook",
        "https://192.168.1.1/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hook",
        "http://hooks.example.com/hook",
    ] {
        let res = app
            .request(Method::POST, "/v1/webhooks", Some(&admin))
            .json(&json!({"url": url}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 422, "{url}");
    }
    let res = app
        .request(Method::POST, "/v1/webhooks", Some(&admin))
        .json(&json!({"url": "https://hooks.example.com/medbook"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
}

#[tokio::test]
async fn events_reach_the_receiver_signed_once_each_in_order_with_ids_and_statuses_only() {
    let app = relaying(&[]).await;
    let admin = app.staff(Role::Admin);
    // An event before the webhook existed is not sent to it.
    let before = app.create_patient().await;
    let name = format!("order-{}", Uuid::now_v7());
    let (id, _) = webhook_to(&app, &name, &[], json!({"mode": "ok"})).await;
    let patient = app.create_patient().await;
    let booking = app.booked(patient, &slot(&day(3), "09:00"), &["CBC"]).await;
    let booking_id = booking["id"].as_str().unwrap();
    let res = app
        .request(
            Method::POST,
            &format!("/v1/patients/{patient}/bookings/{booking_id}/cancel"),
            Some(&admin),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let got = wait_received(&name, Duration::from_secs(30), |r| r.len() >= 3).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got_now = received(&name).await;
    assert_eq!(got_now.len(), 3, "each event once: {got_now:#?}");
    let types: Vec<&str> = got.iter().map(|r| r["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["patient.created", "booking.created", "booking.cancelled"]);
    for r in &got {
        assert_eq!(r["verified"], true, "the Standard Webhooks library verified it: {r}");
        assert_eq!(r["webhookId"], r["eventId"], "webhook-id is the event id");
        assert_eq!(r["patientId"], json!(patient.to_string()));
        assert_ne!(r["patientId"], json!(before.to_string()));
        for key in r["keys"].as_array().unwrap() {
            assert!(
                ["id", "type", "occurredAt", "patientId", "bookingId", "data"].contains(&key.as_str().unwrap()),
                "only ids and statuses: {r}"
            );
        }
    }
    let log = deliveries(&app, &id).await;
    assert_eq!(log.len(), 3);
    assert!(
        log.iter()
            .all(|d| d["outcome"] == "delivered" && d["status"] == 200 && d["attempt"] == 1),
        "{log:#?}"
    );
    // The type filter: a webhook of booking.cancelled only.
    let only = format!("only-{}", Uuid::now_v7());
    webhook_to(&app, &only, &["booking.cancelled"], json!({"mode": "ok"})).await;
    let other = app.booked(patient, &slot(&day(4), "09:00"), &["CBC"]).await;
    let other_id = other["id"].as_str().unwrap();
    app.request(
        Method::POST,
        &format!("/v1/patients/{patient}/bookings/{other_id}/cancel"),
        Some(&admin),
    )
    .send()
    .await
    .unwrap();
    wait_received(&only, Duration::from_secs(30), |r| !r.is_empty()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = received(&only).await;
    assert_eq!(got.len(), 1, "only the subscribed type: {got:#?}");
    assert_eq!(got[0]["type"], "booking.cancelled");
}

#[tokio::test]
async fn a_failing_endpoint_is_retried_with_backoff_under_the_same_webhook_id_and_every_attempt_is_logged() {
    let app = relaying(&[]).await;
    let name = format!("flaky-{}", Uuid::now_v7());
    let (id, _) = webhook_to(&app, &name, &[], json!({"mode": "fail-first", "failures": 2})).await;
    app.create_patient().await;
    let got = wait_received(&name, Duration::from_secs(30), |r| r.iter().any(|x| x["status"] == 200)).await;
    assert_eq!(got.len(), 3, "{got:#?}");
    assert!(
        got.iter()
            .all(|r| r["webhookId"] == got[0]["webhookId"] && r["verified"] == true)
    );
    let gaps: Vec<u64> = got
        .windows(2)
        .map(|w| w[1]["receivedAt"].as_u64().unwrap() - w[0]["receivedAt"].as_u64().unwrap())
        .collect();
    // Retry 1 waits 50–100 ms, retry 2 100–200 ms (base 100 ms, doubled, full jitter from half).
    assert!(gaps[0] >= 50 && gaps[1] >= 100, "backoff between attempts: {gaps:?}");
    let mut log = deliveries(&app, &id).await;
    log.reverse();
    let outcomes: Vec<(&str, u64, u64)> = log
        .iter()
        .map(|d| {
            (
                d["outcome"].as_str().unwrap(),
                d["status"].as_u64().unwrap(),
                d["attempt"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [("retrying", 500, 1), ("retrying", 500, 2), ("delivered", 200, 3)]
    );
    assert!(
        log.iter()
            .all(|d| d["latencyMs"].is_u64() && d["attemptedAt"].is_string())
    );
    assert_eq!(log[0]["error"], "HTTP 500");
    // Once delivered, the failing mark is cleared.
    wait_for("the failing mark cleared", Duration::from_secs(10), async || {
        webhook(&app, &id).await.get("failingSince").is_none()
    })
    .await;
}

#[tokio::test]
async fn an_event_is_given_up_after_its_retry_period_and_an_endpoint_failing_too_long_is_disabled_with_an_event() {
    let app = relaying(&[
        ("MEDBOOK_WEBHOOK_RETRY_HOURS", "0.0003"),
        ("MEDBOOK_WEBHOOK_DISABLE_AFTER_HOURS", "0.0008"),
        ("MEDBOOK_EVENT_SETTLE_MS", "0"),
    ])
    .await;
    let name = format!("down-{}", Uuid::now_v7());
    let (id, _) = webhook_to(&app, &name, &["patient.created"], json!({"mode": "down"})).await;
    app.create_patient().await;
    // Retried for about a second (0.0003 h), then given up.
    wait_for("the event given up", Duration::from_secs(30), async || {
        deliveries(&app, &id).await.iter().any(|d| d["outcome"] == "gave-up")
    })
    .await;
    let log = deliveries(&app, &id).await;
    assert!(log.len() >= 3, "several attempts before giving up: {log:#?}");
    assert!(
        got_status(&log, "retrying") && log[0]["outcome"] == "gave-up",
        "{log:#?}"
    );
    // Failing for 0.0008 h (2.9 s) disables it; another event is needed to try it again after that.
    tokio::time::sleep(Duration::from_secs(3)).await;
    app.create_patient().await;
    wait_for("the webhook disabled", Duration::from_secs(30), async || {
        webhook(&app, &id).await["enabled"] == false
    })
    .await;
    let w = webhook(&app, &id).await;
    assert!(w["disabledReason"].as_str().unwrap().contains("failed"), "{w}");
    let feed: Value = app
        .get("/v1/events?types=webhook.disabled", &app.staff(Role::Admin))
        .await
        .json()
        .await
        .unwrap();
    let items = feed["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{feed}");
    assert_eq!(items[0]["data"]["webhookId"], json!(id));
    assert!(items[0].get("patientId").is_none());
}

fn got_status(log: &[Value], outcome: &str) -> bool {
    log.iter().any(|d| d["outcome"] == outcome && d["status"] == 503)
}

#[tokio::test]
async fn a_410_disables_the_endpoint_at_once() {
    let app = relaying(&[("MEDBOOK_EVENT_SETTLE_MS", "0")]).await;
    let name = format!("gone-{}", Uuid::now_v7());
    let (id, _) = webhook_to(&app, &name, &["patient.created"], json!({"mode": "gone"})).await;
    app.create_patient().await;
    wait_for("the webhook disabled", Duration::from_secs(30), async || {
        webhook(&app, &id).await["enabled"] == false
    })
    .await;
    assert_eq!(
        webhook(&app, &id).await["disabledReason"],
        "the endpoint answered 410 Gone"
    );
    let log = deliveries(&app, &id).await;
    assert_eq!(log.len(), 1);
    assert_eq!(
        (log[0]["outcome"].clone(), log[0]["status"].clone()),
        (json!("gone"), json!(410))
    );
    // Nothing more goes to a disabled endpoint.
    app.create_patient().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(received(&name).await.len(), 1);
    // Resending to a disabled webhook is refused; enabled again, the resend is delivered.
    let attempt = log[0]["id"].as_str().unwrap();
    let admin = app.staff(Role::Admin);
    let resend = || {
        app.request(
            Method::POST,
            &format!("/v1/webhooks/{id}/deliveries/{attempt}/resend"),
            Some(&admin),
        )
        .send()
    };
    assert_eq!(resend().await.unwrap().status(), 409);
}

#[tokio::test]
async fn a_resend_delivers_the_event_again_under_the_same_webhook_id() {
    let app = relaying(&[]).await;
    let name = format!("resend-{}", Uuid::now_v7());
    let (id, _) = webhook_to(&app, &name, &[], json!({"mode": "ok"})).await;
    app.create_patient().await;
    let first = wait_received(&name, Duration::from_secs(30), |r| r.len() == 1).await;
    let log = deliveries(&app, &id).await;
    let attempt = log[0]["id"].as_str().unwrap();
    let admin = app.staff(Role::Admin);
    let res = app
        .request(
            Method::POST,
            &format!("/v1/webhooks/{id}/deliveries/{attempt}/resend"),
            Some(&admin),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    // The webhook, the attempt and the event (GetItem each), and the outbox entry's Put.
    assert_eq!(crate::helpers::usage(&res).0, 4);
    assert_eq!(res.json::<Value>().await.unwrap()["queued"], true);
    let got = wait_received(&name, Duration::from_secs(30), |r| r.len() == 2).await;
    assert_eq!(got[1]["webhookId"], first[0]["webhookId"]);
    assert_eq!(got[1]["verified"], true);
    let unknown = Uuid::now_v7();
    let res = app
        .request(
            Method::POST,
            &format!("/v1/webhooks/{id}/deliveries/{unknown}/resend"),
            Some(&admin),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn two_replicas_relay_each_event_once_and_one_that_stops_hands_its_leases_over() {
    let table = crate::helpers::table_name();
    let settings = |extra: &[(&str, &str)]| {
        let mut all = vec![
            ("MEDBOOK_RELAY", "on"),
            ("MEDBOOK_RELAY_POLL_MS", "50"),
            ("MEDBOOK_RELAY_LEASE_MS", "1500"),
        ];
        all.extend_from_slice(extra);
        crate::helpers::settings(&table, &all)
    };
    let start = |settings: medbook::config::Settings| async move {
        let options = medbook::store::client::ClientOptions::from(&settings.store);
        let endpoint = crate::helpers::engine_endpoint();
        let credentials = crate::helpers::engine_credentials();
        let app = medbook::startup::Application::build_with_clients(
            settings,
            medbook::store::client::local_client(endpoint, credentials, &options),
            medbook::store::client::local_streams_client(endpoint, credentials, &options),
        )
        .await
        .expect("app builds");
        let base = format!("http://{}", app.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until(async move {
            let _ = stopped.await;
        }));
        (base, stop, task)
    };
    let (base_a, stop_a, task_a) = start(settings(&[])).await;
    let (base_b, _stop_b, _task_b) = start(settings(&[])).await;
    let app_a = crate::helpers::test_app_at(&base_a, &table);
    let app_b = crate::helpers::test_app_at(&base_b, &table);
    let name = format!("replicas-{}", Uuid::now_v7());
    webhook_to(&app_a, &name, &[], json!({"mode": "ok"})).await;
    for _ in 0..10 {
        app_a.create_patient().await;
        app_b.create_patient().await;
    }
    let got = wait_received(&name, Duration::from_secs(30), |r| r.len() >= 20).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        received(&name).await.len(),
        20,
        "each event once with two replicas: {got:#?}"
    );
    // Replica A stops (its leases given up); B relays what follows.
    stop_a.send(()).unwrap();
    task_a.await.unwrap().unwrap();
    for _ in 0..5 {
        app_b.create_patient().await;
    }
    let got = wait_received(&name, Duration::from_secs(30), |r| r.len() >= 25).await;
    let mut ids: Vec<&str> = got.iter().map(|r| r["webhookId"].as_str().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 25, "every event, once");
}

/// A `medbook serve` child on the embedded engine in `dir`, relaying; returns it and its base URL.
fn start_relaying_child(dir: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_medbook"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("MEDBOOK_DATA_DIR", dir)
        .env("MEDBOOK_ADDR", "127.0.0.1:0")
        .env("MEDBOOK_JWT_SECRET", crate::helpers::TEST_SECRET)
        .env("MEDBOOK_LOG_FORMAT", "json")
        .env("MEDBOOK_RATE_PER_SEC", "100000")
        .env("MEDBOOK_RATE_BURST", "100000")
        .env("MEDBOOK_EVENT_SETTLE_MS", "0")
        .env("MEDBOOK_RELAY_POLL_MS", "50")
        .env("MEDBOOK_RELAY_LEASE_MS", "2000")
        .env("MEDBOOK_WEBHOOK_RETRY_BASE_MS", "200")
        .env("MEDBOOK_WEBHOOK_RETRY_MAX_MS", "1000")
        .env("RUST_LOG", "info")
        .arg("serve")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("medbook starts");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<Value>(&line)
                && v["message"] == "medbook listening"
            {
                let _ = tx.send(v["addr"].as_str().unwrap_or_default().to_owned());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("medbook logs its address");
    (child, format!("http://{addr}"))
}

#[tokio::test]
async fn a_sigkill_mid_delivery_loses_no_event_resends_nothing_recorded_as_delivered_and_keeps_patient_order() {
    let dir = std::env::temp_dir().join(format!("medbook-relay-{}", Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let (mut child, base) = start_relaying_child(&dir);
    let app = crate::helpers::test_app_at(&base, "unused");
    let admin = app.staff(Role::Admin);
    let name = format!("crash-{}", Uuid::now_v7());
    // The endpoint is down while the 500 events are written, so they wait in the outbox; then it comes up
    // slow (20 ms an answer) and the process is killed part-way through delivering them.
    let (webhook_id, secret) = webhook_to(&app, &name, &[], json!({"mode": "down"})).await;
    let patients: Vec<Uuid> = futures_util::future::join_all((0..100).map(|_| app.create_patient())).await;
    let work = patients.iter().enumerate().map(|(i, patient)| {
        let app = &app;
        let admin = admin.clone();
        async move {
            for j in 0..2 {
                let at = slot(&day(2 + j), &format!("{:02}:{:02}", 7 + (i % 44) / 4, (i % 4) * 15));
                let booking = app.booked(*patient, &at, &["CBC"]).await;
                let id = booking["id"].as_str().unwrap();
                let res = app
                    .request(
                        Method::POST,
                        &format!("/v1/patients/{patient}/bookings/{id}/cancel"),
                        Some(&admin),
                    )
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 200);
            }
        }
    });
    futures_util::stream::iter(work)
        .buffer_unordered(8)
        .collect::<Vec<()>>()
        .await;
    configure(&name, &secret, json!({"mode": "ok", "delayMs": 20})).await;
    let delivered = |r: &[Value]| r.iter().filter(|x| x["status"] == 200).count();
    let before = wait_received(&name, Duration::from_secs(60), |r| delivered(r) >= 150).await;
    Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap();
    let at_kill = delivered(&before);
    let (mut child, base) = start_relaying_child(&dir);
    let app = crate::helpers::test_app_at(&base, "unused");

    // Every event of the feed (the 500, and nothing else) reaches the receiver with a 2xx.
    let mut events = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            None => format!("/v1/events?limit=100&from={}", day(0)),
            Some(c) => format!("/v1/events?limit=100&from={}&cursor={c}", day(0)),
        };
        let page: Value = app.get(&url, &admin).await.json().await.unwrap();
        events.extend(
            page["items"]
                .as_array()
                .unwrap_or_else(|| panic!("{url}: {page}"))
                .iter()
                .cloned(),
        );
        cursor = page["nextCursor"].as_str().map(str::to_owned);
        if page["caughtUp"] == true {
            break;
        }
    }
    assert_eq!(events.len(), 500, "100 patients, 200 bookings, 200 cancellations");
    let ids: std::collections::HashSet<String> = events.iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect();
    let got = wait_received(&name, Duration::from_secs(120), |r| {
        let ok: std::collections::HashSet<&str> = r
            .iter()
            .filter(|x| x["status"] == 200)
            .map(|x| x["webhookId"].as_str().unwrap())
            .collect();
        ids.iter().all(|id| ok.contains(id.as_str()))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let got = received(&name)
        .await
        .into_iter()
        .chain(got.into_iter().take(0))
        .collect::<Vec<_>>();
    // Duplicates only as the same event under its own webhook-id, each verified.
    for r in &got {
        assert_eq!(r["verified"], true, "{r}");
        assert_eq!(r["webhookId"], r["eventId"], "{r}");
        assert!(
            ids.contains(r["webhookId"].as_str().unwrap()),
            "no event outside the feed: {r}"
        );
    }
    let ok: Vec<&Value> = got.iter().filter(|x| x["status"] == 200).collect();
    let duplicates = ok.len() - ids.len();
    // Nothing recorded as delivered was sent again: each event has one `delivered` attempt in the log.
    let log = deliveries(&app, &webhook_id).await;
    let mut delivered_per_event: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for d in log.iter().filter(|d| d["outcome"] == "delivered") {
        *delivered_per_event.entry(d["eventId"].as_str().unwrap()).or_default() += 1;
    }
    assert_eq!(delivered_per_event.len(), 500);
    assert!(
        delivered_per_event.values().all(|n| *n == 1),
        "an event recorded as delivered was resent"
    );
    // Per patient, the events arrived (first 2xx of each) in the order they occurred.
    let mut first: Vec<&Value> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for r in &ok {
        if seen.insert(r["webhookId"].as_str().unwrap()) {
            first.push(r);
        }
    }
    for patient in &patients {
        let mine: Vec<&str> = first
            .iter()
            .filter(|r| r["patientId"] == json!(patient.to_string()))
            .map(|r| r["occurredAt"].as_str().unwrap())
            .collect();
        assert_eq!(mine.len(), 5);
        assert!(mine.windows(2).all(|w| w[0] <= w[1]), "patient {patient}: {mine:?}");
    }
    eprintln!(
        "sigkill after {at_kill} of 500 deliveries: all 500 delivered after the restart, {duplicates} sent twice (same webhook-id), {} attempts logged",
        log.len()
    );
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(dir);
}

/// Commit → receiver latency (p50/p99) and throughput of the relay at its default poll interval (250 ms),
/// one webhook, on the test's engine and build: `cargo test --test api webhooks::delivery_latency --
/// --ignored --nocapture`. 100 events one at a time (latency), then 1 000 from 16 concurrent writers
/// (throughput). Ignored: it measures, and takes half a minute; it fails only if an event goes missing.
#[tokio::test]
#[ignore = "a measurement: run it by name"]
async fn delivery_latency_and_throughput() {
    use futures_util::StreamExt as _;
    let app = spawn_app_with(&[("MEDBOOK_RELAY", "on"), ("MEDBOOK_EVENT_SETTLE_MS", "0")]).await;
    let name = format!("latency-{}", Uuid::now_v7());
    webhook_to(&app, &name, &["patient.created"], json!({"mode": "ok"})).await;
    let percentile = |sorted: &[f64], p: f64| sorted[((sorted.len() as f64 - 1.0) * p).round() as usize];
    let lags = |got: &[Value]| {
        let mut lags: Vec<f64> = got
            .iter()
            .map(|d| {
                let at = time::OffsetDateTime::parse(
                    d["occurredAt"].as_str().unwrap(),
                    &time::format_description::well_known::Rfc3339,
                )
                .unwrap();
                d["receivedAt"].as_f64().unwrap() - (at.unix_timestamp_nanos() / 1_000_000) as f64
            })
            .collect();
        lags.sort_by(f64::total_cmp);
        lags
    };

    for _ in 0..100 {
        app.create_patient().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let got = wait_received(&name, Duration::from_secs(60), |got| got.len() >= 100).await;
    let one = lags(&got);
    println!(
        "one at a time: 100 events, commit → receiver p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        percentile(&one, 0.5),
        percentile(&one, 0.99),
        one.last().unwrap()
    );

    let started = Instant::now();
    futures_util::stream::iter(0..1000)
        .map(|_| app.create_patient())
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let written = started.elapsed();
    let by_then = received(&name).await.len() - 100;
    let got = wait_received(&name, Duration::from_secs(300), |got| got.len() >= 1100).await;
    let all = started.elapsed();
    let burst = lags(&got[100..]);
    let ids: std::collections::HashSet<&str> = got.iter().map(|d| d["webhookId"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 1100, "every event once");
    println!(
        "burst: 1000 events written in {:.1} s ({:.0}/s), {by_then} delivered meanwhile; all delivered after {:.1} s \
         ({:.0} deliveries/s overall, {:.0}/s once the writes stopped); commit → receiver p50 {:.0} ms, p99 {:.0} ms",
        written.as_secs_f64(),
        1000.0 / written.as_secs_f64(),
        all.as_secs_f64(),
        1000.0 / all.as_secs_f64(),
        (1000 - by_then) as f64 / (all - written).as_secs_f64(),
        percentile(&burst, 0.5),
        percentile(&burst, 0.99)
    );
}

#[tokio::test]
async fn one_patients_failing_events_do_not_hold_back_the_patients_queued_behind_them() {
    // A's first event fails and waits a minute for its retry; A's 109 others wait behind it (A's order).
    // B's event comes after all of them, past the first page the relay reads of the outbox.
    let app = relaying(&[("MEDBOOK_WEBHOOK_RETRY_BASE_MS", "60000")]).await;
    let (a, b) = (app.create_patient().await, app.create_patient().await);
    let name = format!("poison-{}", Uuid::now_v7());
    webhook_to(
        &app,
        &name,
        &["booking.created"],
        json!({"mode": "ok", "failPatient": a.to_string()}),
    )
    .await;
    for i in 0..110 {
        let at = slot(
            &day(30 + i / 40),
            &format!("{:02}:{:02}", 8 + (i % 40) / 4, (i % 4) * 15),
        );
        app.booked(a, &at, &["TSH"]).await;
    }
    let booking = app.booked(b, &slot(&day(30), "08:00"), &["TSH"]).await;
    let got = wait_received(&name, Duration::from_secs(30), |got| {
        got.iter().any(|d| d["patientId"] == b.to_string())
    })
    .await;
    let of_b: Vec<&Value> = got.iter().filter(|d| d["patientId"] == b.to_string()).collect();
    assert_eq!(of_b.len(), 1);
    assert_eq!(of_b[0]["status"], 200);
    assert!(booking["id"].is_string());
    let of_a: Vec<&Value> = got.iter().filter(|d| d["patientId"] == a.to_string()).collect();
    assert_eq!(
        of_a.len(),
        1,
        "A's first event tried once (its retry is a minute away), the rest behind it"
    );
}
