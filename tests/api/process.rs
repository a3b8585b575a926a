//! The real `medbook` binary as a child process: crash safety under SIGKILL and graceful SIGTERM.

use std::{
    collections::{HashMap, HashSet},
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use medbook::{
    auth::{Role, TokenKeys},
    config::Secret,
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TEST_SECRET, day, slot};

/// A running `medbook serve` on the embedded engine.
struct Service {
    child: Child,
    base: String,
}

fn start(data_dir: &Path) -> Service {
    start_with_grace(data_dir, "5")
}

fn start_with_grace(data_dir: &Path, grace_s: &str) -> Service {
    let mut child = Command::new(env!("CARGO_BIN_EXE_medbook"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("MEDBOOK_DATA_DIR", data_dir)
        .env("MEDBOOK_ADDR", "127.0.0.1:0")
        .env("MEDBOOK_JWT_SECRET", TEST_SECRET)
        .env("MEDBOOK_LOG_FORMAT", "json")
        .env("MEDBOOK_RATE_PER_SEC", "100000")
        .env("MEDBOOK_RATE_BURST", "100000")
        .env("MEDBOOK_SHUTDOWN_GRACE_S", grace_s)
        .env("RUST_LOG", "info")
        .arg("serve")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("medbook starts");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
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
        .recv_timeout(Duration::from_secs(30))
        .expect("medbook logs its address");
    Service {
        child,
        base: format!("http://{addr}"),
    }
}

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("medbook-process-{}", Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn admin() -> String {
    TokenKeys::new(&Secret::new(TEST_SECRET.as_bytes().to_vec()))
        .issue(Role::Admin, "admin-1", Duration::from_secs(600))
        .unwrap()
}

#[tokio::test]
async fn a_sigkill_mid_load_leaves_no_partial_booking() {
    let dir = temp_dir();
    let mut service = start(&dir);
    let http = reqwest::Client::new();
    let token = admin();
    let mut patients = Vec::new();
    for _ in 0..8 {
        let res = http
            .post(format!("{}/v1/patients", service.base))
            .bearer_auth(&token)
            .json(&json!({"givenName": "A", "familyName": "B", "birthDate": "1990-01-01", "sex": "other"}))
            .send()
            .await
            .unwrap();
        patients.push(res.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned());
    }
    let date = day(40);
    // Every slot of the day (44 × 4 places), so most requests could succeed and the kill cuts real work.
    let starts: Vec<String> = (0..44)
        .map(|n| slot(&date, &format!("{:02}:{:02}", 7 + n / 4, (n % 4) * 15)))
        .collect();
    // (patient, key, body) of every request sent; ids of the bookings the client saw created.
    let mut sent = Vec::new();
    let mut handles = Vec::new();
    let created = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for i in 0..200 {
        let patient = patients[i % patients.len()].clone();
        let body = json!({"slotStart": starts[i % starts.len()], "tests": ["CBC", "LIPID", "TSH"]});
        let key = format!("crash-{i}");
        sent.push((patient.clone(), key.clone(), body.clone()));
        let (http, url, token) = (
            http.clone(),
            format!("{}/v1/patients/{patient}/bookings", service.base),
            token.clone(),
        );
        let created = created.clone();
        handles.push(tokio::spawn(async move {
            let res = http
                .post(url)
                .bearer_auth(token)
                .header("idempotency-key", key)
                .json(&body)
                .send()
                .await
                .ok()?;
            if res.status() != 201 {
                return None;
            }
            let id = res
                .json::<Value>()
                .await
                .ok()
                .map(|b| b["id"].as_str().unwrap_or_default().to_owned());
            created.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            id
        }));
    }
    // Kill mid-load: once some bookings are acknowledged, with most requests still in flight.
    let started = Instant::now();
    while created.load(std::sync::atomic::Ordering::SeqCst) < 20 && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    service.child.kill().unwrap(); // SIGKILL
    let mut acknowledged = HashMap::new();
    for (i, h) in handles.into_iter().enumerate() {
        if let Some(id) = h.await.unwrap() {
            acknowledged.insert(i, id);
        }
    }
    service.child.wait().unwrap();
    assert!(
        !acknowledged.is_empty(),
        "some bookings were acknowledged before the kill"
    );

    let service = start(&dir);
    let base = service.base.clone();
    let get = |path: String| {
        let (http, token, base) = (http.clone(), token.clone(), base.clone());
        async move {
            http.get(format!("{base}{path}"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };

    // Every acknowledged booking survived, and every booking has all its tests.
    let mut live: HashMap<String, usize> = HashMap::new();
    let mut test_refs = 0;
    let mut ids = HashSet::new();
    for p in &patients {
        let list = get(format!("/v1/patients/{p}/bookings?limit=100")).await;
        for b in list["items"].as_array().unwrap() {
            ids.insert(b["id"].as_str().unwrap().to_owned());
            assert_eq!(b["tests"].as_array().unwrap().len(), 3);
            test_refs += 3;
            if b["status"] == "booked" {
                *live.entry(b["slotStart"].as_str().unwrap().to_owned()).or_default() += 1;
            }
        }
    }
    for id in acknowledged.values() {
        assert!(ids.contains(id), "acknowledged booking {id} was lost");
    }
    println!(
        "SIGKILL after {} of 200 bookings acknowledged; {} bookings found after restart",
        acknowledged.len(),
        ids.len()
    );
    let mut test_items = 0;
    for code in ["CBC", "LIPID", "TSH"] {
        let first = format!("/v1/test-types/{code}/tests?from={date}&to={date}&limit=100");
        let mut page = get(first.clone()).await;
        loop {
            test_items += page["items"].as_array().unwrap().len();
            match page["nextCursor"].as_str() {
                Some(cursor) => page = get(format!("{first}&cursor={cursor}")).await,
                None => break,
            }
        }
    }
    assert_eq!(test_items, test_refs, "every booking has all its test items");

    // Every slot counter equals its live bookings.
    let slots = get(format!("/v1/slots?date={date}")).await;
    for s in slots.as_array().unwrap() {
        let start = s["start"].as_str().unwrap();
        assert_eq!(
            s["booked"].as_u64().unwrap() as usize,
            live.get(start).copied().unwrap_or(0),
            "{start}"
        );
        assert!(s["booked"].as_u64().unwrap() <= 4);
    }

    // Every idempotency record matches a booking: repeating any request returns the booking its record
    // names, which exists (the acknowledged one for acknowledged requests), or books anew if none was kept.
    for (i, (patient, key, body)) in sent.iter().enumerate() {
        let res = http
            .post(format!("{}/v1/patients/{patient}/bookings", service.base))
            .bearer_auth(&token)
            .header("idempotency-key", key)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let answer: Value = res.json().await.unwrap();
        match acknowledged.get(&i) {
            Some(id) => assert_eq!((status, answer["id"].as_str().unwrap()), (201, id.as_str())),
            None if status == 201 => {
                let id = answer["id"].as_str().unwrap();
                let tree = http
                    .get(format!("{}/v1/patients/{patient}/bookings/{id}", service.base))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(
                    tree.status(),
                    200,
                    "request {i}: its record names a booking that exists"
                );
            }
            None => assert_eq!(status, 409, "request {i}: {answer}"),
        }
    }
    stop(service);
    std::fs::remove_dir_all(dir).unwrap();
}

fn stop(mut service: Service) {
    let _ = service.child.kill();
    let _ = service.child.wait();
}

#[tokio::test]
async fn sigterm_turns_readiness_503_finishes_in_flight_requests_and_exits_cleanly() {
    let dir = temp_dir();
    // A grace long enough for 200 writes on two cores shared with the rest of the suite: this test is about
    // what is cut (nothing accepted), not how fast the queue drains.
    let mut service = start_with_grace(&dir, "60");
    let http = reqwest::Client::new();
    // The writes each on their own connection: a request sent on a kept-alive connection just as the server
    // closes it is HTTP/1.1's own race (the client cannot tell it from a cut), not the server's doing.
    let writes = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let token = admin();
    let url = format!("{}/v1/patients", service.base);
    let mut handles = Vec::new();
    for _ in 0..200 {
        let (http, url, token) = (writes.clone(), url.clone(), token.clone());
        handles.push(tokio::spawn(async move {
            match http
                .post(url)
                .bearer_auth(token)
                .json(&json!({"givenName": "A", "familyName": "B", "birthDate": "1990-01-01", "sex": "other"}))
                .send()
                .await
            {
                Ok(res) => Ok(res.status().as_u16()),
                Err(e) => Err((e.is_connect(), format!("{e:?}"))),
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let pid = service.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    // Readiness turns 503 within moments of the signal (on two busy cores, a few scheduler ticks), while the
    // listener still accepts for DRAIN_DELAY (500 ms).
    let mut ready = 0;
    for _ in 0..12 {
        tokio::time::sleep(Duration::from_millis(30)).await;
        ready = http
            .get(format!("{}/health/ready", service.base))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        if ready == 503 {
            break;
        }
    }
    assert_eq!(ready, 503, "readiness fails first, while the listener still accepts");

    for h in handles {
        match h.await.unwrap() {
            Ok(status) => assert_eq!(status, 201, "an accepted request finishes"),
            Err((connect, error)) => assert!(connect, "a request is refused at connect, never cut mid-way: {error}"),
        }
    }
    let started = Instant::now();
    let status = loop {
        if let Some(status) = service.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "exits once its requests are done"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status:?}");
    std::fs::remove_dir_all(dir).unwrap();
}
