//! E-mail to patients through a real SMTP server (aiosmtpd from PyPI, installed into target/smtp-server and
//! started by the test): booking confirmed, reminder, results ready, never a clinical value; one "results
//! ready" mail for tests released together; a permanent refusal (550) is not retried.

use std::{
    io::{BufRead, BufReader},
    process::{Child, ChildStdin, Command, Stdio},
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, Instant},
};

use medbook::auth::Role;
use reqwest::Method;
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    helpers::{TestApp, day, performed_now, slot, spawn_app_with},
    results::{put, values},
};

static INSTALLED: OnceLock<String> = OnceLock::new();

/// Installs the pinned server (once per checkout) and returns the directory it runs from.
fn installed() -> &'static str {
    INSTALLED.get_or_init(|| {
        let source = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/smtp");
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/target/smtp-server");
        if !std::path::Path::new(dir).join("aiosmtpd").exists() {
            let status = Command::new("python3")
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "--target",
                    dir,
                    "-r",
                ])
                .arg(format!("{source}/requirements.txt"))
                .status()
                .expect("python3 runs (Python and pip are needed for the SMTP server)");
            assert!(status.success(), "pip install of the SMTP server");
        }
        dir.to_owned()
    })
}

/// A running SMTP server and what it has seen.
struct Smtp {
    port: u16,
    seen: Arc<Mutex<Vec<Value>>>,
    child: Child,
    _stdin: ChildStdin,
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Smtp {
    fn start() -> Self {
        let dir = installed();
        let mut child = Command::new("python3")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/smtp/server.py"))
            .env("PYTHONPATH", dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 starts");
        let stdin = child.stdin.take().expect("stdin");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let first: Value = serde_json::from_str(&lines.next().expect("a line").expect("the port")).expect("json");
        let port = u16::try_from(first["port"].as_u64().expect("port")).expect("a port");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if let Ok(value) = serde_json::from_str::<Value>(&line) {
                    sink.lock().unwrap().push(value);
                }
            }
        });
        Self {
            port,
            seen,
            child,
            _stdin: stdin,
        }
    }

    /// The messages accepted for `address`, as (headers, decoded body).
    fn mails_to(&self, address: &str) -> Vec<(Value, String)> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter_map(|v| v.get("accepted"))
            .filter(|m| m["rcptTos"].as_array().unwrap().iter().any(|r| r == address))
            .map(|m| (m["headers"].clone(), m["body"].as_str().unwrap().replace("\r\n", "\n")))
            .collect()
    }

    /// How many times `address` was refused.
    fn refusals(&self, address: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|v| v["rejected"] == address)
            .count()
    }

    fn accepted(&self) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|v| v.get("accepted").is_some())
            .count()
    }
}

fn header<'a>(headers: &'a Value, name: &str) -> Option<&'a str> {
    headers[name.to_ascii_lowercase()].as_str()
}

async fn patient(app: &TestApp, given: &str, email: Option<&str>) -> Uuid {
    let mut body = json!({"givenName": given, "familyName": "Hopper", "birthDate": "1986-12-09", "sex": "female"});
    if let Some(e) = email {
        body["email"] = json!(e);
    }
    let res = app
        .request(Method::POST, "/v1/patients", Some(&app.staff(Role::Admin)))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

async fn event_ids(app: &TestApp, kind: &str) -> Vec<String> {
    let feed: Value = app
        .get(&format!("/v1/events?types={kind}&limit=100"), &app.staff(Role::Admin))
        .await
        .json()
        .await
        .unwrap();
    feed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn patients_get_confirmation_reminder_and_one_results_ready_mail_without_values() {
    let smtp = Smtp::start();
    // Tomorrow 12:00 UTC; the reminder set to fall due 10 s from now (bookings made after that get none).
    let at = slot(&day(1), "12:00");
    let start = OffsetDateTime::parse(&at, &time::format_description::well_known::Rfc3339).unwrap();
    let lead = 10.0;
    let due = OffsetDateTime::now_utc() + Duration::from_secs_f64(lead);
    let hours = format!(
        "{:.6}",
        ((start - OffsetDateTime::now_utc()).as_seconds_f64() - lead) / 3600.0
    );
    let url = format!("smtp://127.0.0.1:{}", smtp.port);
    let app = spawn_app_with(&[
        ("MEDBOOK_RELAY", "on"),
        ("MEDBOOK_RELAY_POLL_MS", "50"),
        ("MEDBOOK_EVENT_SETTLE_MS", "0"),
        ("MEDBOOK_WEBHOOK_RETRY_BASE_MS", "100"),
        ("MEDBOOK_REMINDER_HOURS", &hours),
        ("MEDBOOK_SMTP_URL", &url),
        ("MEDBOOK_EMAIL_FROM", "Test Lab <lab@example.org>"),
        ("MEDBOOK_LAB_NAME", "Test Lab"),
    ])
    .await;
    let grace = patient(&app, "Grace", Some("grace@example.org")).await;
    let silent = patient(&app, "Silent", None).await;
    let bounced = patient(&app, "Bounce", Some("bounce@example.org")).await;
    // The visit to be reminded of, and an earlier one (checked in: no reminder) with two tests for results.
    let visit = app.booked(grace, &at, &["CBC"]).await;
    let earlier = app.booked(grace, &slot(&day(1), "08:00"), &["CBC", "TSH"]).await;
    app.booked(silent, &at, &["CBC"]).await;
    app.booked(bounced, &at, &["CBC"]).await;
    assert!(
        OffsetDateTime::now_utc() < due,
        "the bookings were made before their reminders fell due (the machine is very slow)"
    );

    // Both tests of the earlier visit recorded, verified and so released (on-final): two result.released.
    let booking_id = earlier["id"].as_str().unwrap();
    app.check_in(grace, booking_id).await;
    for (i, body) in [
        values(13.7),
        json!({"values": [{"analyte": "TSH", "value": 2.75, "unit": "m[IU]/L"}], "performedAt": performed_now()}),
    ]
    .iter()
    .enumerate()
    {
        let test = earlier["tests"][i]["id"].as_str().unwrap();
        let base = format!("/v1/patients/{grace}/bookings/{booking_id}/tests/{test}");
        assert_eq!(put(&app, &base, body, None).await.status(), 201);
        assert_eq!(app.verify(&base, 1).await.status(), 200);
    }

    let confirmed = "Your booking at Test Lab is confirmed";
    let reminder = "Reminder: your appointment at Test Lab";
    let results = "New results from Test Lab";
    let count = |subject: &str| {
        smtp.mails_to("grace@example.org")
            .iter()
            .filter(|(h, _)| header(h, "Subject") == Some(subject))
            .count()
    };
    let started = Instant::now();
    while count(confirmed) < 2 || count(reminder) < 1 || count(results) < 1 {
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "Grace's mails: {:#?}",
            smtp.seen.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Time for a second results mail, a retry of a refused one, or a mail to the patient without an address.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mails = smtp.mails_to("grace@example.org");
    assert_eq!(
        (count(confirmed), count(reminder), count(results)),
        (2, 1, 1),
        "two confirmations, one reminder (none for the visit checked in), one results-ready mail for two released tests: {mails:#?}"
    );
    assert_eq!(smtp.accepted(), 4, "nothing for the patient without an address");
    assert_eq!(
        smtp.refusals("bounce@example.org"),
        2,
        "the 550s (confirmation and reminder) are permanent: each tried once"
    );

    for (kind, subject) in [
        ("booking.created", confirmed),
        ("booking.reminder", reminder),
        ("result.released", results),
    ] {
        for (head, body) in mails.iter().filter(|(h, _)| header(h, "Subject") == Some(subject)) {
            assert!(header(head, "From").unwrap().contains("lab@example.org"), "{head}");
            let id = header(head, "Message-ID").unwrap();
            let id = id.trim_start_matches('<').split('@').next().unwrap();
            assert!(
                event_ids(&app, kind).await.contains(&id.to_owned()),
                "the Message-ID is the {kind} event's id"
            );
            assert!(body.contains("Hello Grace,") && body.contains("Test Lab"), "{body}");
            assert!(
                !body.contains('{') && !body.contains('}'),
                "a placeholder left in:\n{body}"
            );
            for value in ["13.7", "30.1", "2.75", "HGB", "WBC", "TSH", "m[IU]/L", "g/dL"] {
                assert!(!body.contains(value), "no clinical value ({value}) in:\n{body}");
                assert!(
                    !head.to_string().contains(value),
                    "no clinical value ({value}) in {head}"
                );
            }
        }
    }
    // The slot in the site's local time (the default site's zone), and the number of tests.
    let site: Value = app
        .get(
            &format!("/v1/sites/{}", visit["site"].as_str().unwrap()),
            &app.staff(Role::Admin),
        )
        .await
        .json()
        .await
        .unwrap();
    let zone = site["timeZone"].as_str().unwrap();
    let bodies: Vec<&String> = mails
        .iter()
        .filter(|(h, _)| header(h, "Subject") == Some(confirmed))
        .map(|(_, b)| b)
        .collect();
    assert!(
        bodies
            .iter()
            .all(|b| b.contains(&format!("12:00 ({zone})")) || b.contains(&format!("08:00 ({zone})"))),
        "{bodies:#?}"
    );
    assert!(bodies.iter().any(|b| b.contains("2 test(s)")), "{bodies:#?}");
}

#[tokio::test]
async fn a_result_released_within_the_quiet_period_is_announced_when_it_ends() {
    let smtp = Smtp::start();
    let url = format!("smtp://127.0.0.1:{}", smtp.port);
    let app = spawn_app_with(&[
        ("MEDBOOK_RELAY", "on"),
        ("MEDBOOK_RELAY_POLL_MS", "50"),
        ("MEDBOOK_EVENT_SETTLE_MS", "0"),
        ("MEDBOOK_REMINDER_HOURS", "0"),
        ("MEDBOOK_SMTP_URL", &url),
        ("MEDBOOK_EMAIL_FROM", "Test Lab <lab@example.org>"),
        ("MEDBOOK_LAB_NAME", "Test Lab"),
        ("MEDBOOK_EMAIL_RESULTS_QUIET_S", "3"),
    ])
    .await;
    let ada = patient(&app, "Ada", Some("ada@example.org")).await;
    let booking = app.booked(ada, &slot(&day(1), "09:00"), &["CBC", "CRP"]).await;
    let id = booking["id"].as_str().unwrap();
    app.check_in(ada, id).await;
    let results = "New results from Test Lab";
    let received = |smtp: &Smtp| {
        smtp.seen
            .lock()
            .unwrap()
            .iter()
            .filter_map(|v| v.get("accepted"))
            .filter(|m| m["headers"]["subject"] == results)
            .map(|m| m["receivedAt"].as_f64().unwrap())
            .collect::<Vec<f64>>()
    };
    let release = async |i: usize, body: Value| {
        let test = booking["tests"][i]["id"].as_str().unwrap();
        let base = format!("/v1/patients/{ada}/bookings/{id}/tests/{test}");
        assert_eq!(put(&app, &base, &body, None).await.status(), 201);
        assert_eq!(app.verify(&base, 1).await.status(), 200);
    };
    release(0, values(13.7)).await;
    let started = Instant::now();
    while received(&smtp).is_empty() {
        assert!(started.elapsed() < Duration::from_secs(20), "the first results mail");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The CRP released after that mail went out: announced, but not before the quiet period ends.
    release(
        1,
        json!({"values": [{"analyte": "CRP", "value": 4.2, "unit": "mg/L"}], "performedAt": performed_now()}),
    )
    .await;
    while received(&smtp).len() < 2 {
        assert!(started.elapsed() < Duration::from_secs(30), "the second results mail");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let at = received(&smtp);
    assert!(
        at[1] - at[0] >= 2.5,
        "the second mail waited for the quiet period: {at:?}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(received(&smtp).len(), 2, "two releases, two mails, no third");
    assert_eq!(smtp.accepted(), 3, "and the booking's confirmation");
}
