//! medbook's benchmark: the service against the raw SDK on the same engine, at two table sizes.
//!
//! `cargo build --release --bin medbook && cargo run --release --example bench` (add `-- --quick` for a short
//! run). It starts the embedded engine
//! in this process, seeds a table per size with BatchWriteItem, starts the real `medbook` binary
//! (`target/release/medbook`, else `target/debug/medbook`) against that engine with the standard AWS
//! variables, and for each access pattern runs a fixed-concurrency load through the service and the same
//! DynamoDB operations issued directly with aws-sdk-dynamodb, five runs each, median reported. It also times
//! a Scan-based booking lookup, the anti-pattern the data model avoids. The table is printed and written to
//! `docs/benchmarks.md`.

use std::{
    collections::HashMap,
    fmt::Write as _,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use aws_sdk_dynamodb::{
    Client,
    types::{AttributeValue, PutRequest, ReturnConsumedCapacity, WriteRequest},
};
use medbook::{
    auth::{Role, TokenKeys},
    config::{CapacityMode, Secret},
    domain::{
        audit::{Actor, AuditDraft},
        booking::{
            BookedTest, Booking, BookingStatus, LabResult, RawValue, ResultStatus, SlotStart, TestAddress, TestStatus,
            flag_values,
        },
        idempotency::IdempotencyKey,
        patient::{NewPatient, Patient, Sex},
        timefmt,
    },
    engine::EmbeddedEngine,
    store::{
        Store,
        client::{ClientOptions, local_client},
        keys, migrate, seed,
    },
};
use serde_json::json;
use time::{Duration as Days, OffsetDateTime};
use uuid::Uuid;

const SECRET: &str = "bench-secret-bench-secret-bench-secret-0123";
const CONCURRENCY: usize = 16;

#[derive(Clone, Copy)]
struct Plan {
    sizes: [usize; 2],
    runs: usize,
    seconds: f64,
}

/// Ids the load picks from.
struct Seeded {
    patients: Vec<Uuid>,
    bookings: Vec<(Uuid, Uuid)>,
    /// (patient, booking, test) of tests without a result, one per load worker and side.
    fresh_tests: Vec<TestAddress>,
    /// The CBC version the seeded bookings booked.
    cbc: medbook::domain::test_type::TestType,
}

#[derive(Default, Clone)]
struct Stats {
    p50_ms: f64,
    p99_ms: f64,
    rps: f64,
    /// CPU time of the service process per request (0 on the SDK side).
    service_cpu_ms: f64,
    /// CPU time of this process (engine and load generator) per request.
    bench_cpu_ms: f64,
}

fn summarise(mut latencies: Vec<f64>, seconds: f64, cpu_ms: (f64, f64)) -> Stats {
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    let n = latencies.len().max(1) as f64;
    Stats {
        p50_ms: at(0.5),
        p99_ms: at(0.99),
        rps: latencies.len() as f64 / seconds,
        service_cpu_ms: cpu_ms.0 / n,
        bench_cpu_ms: cpu_ms.1 / n,
    }
}

fn median(mut runs: Vec<Stats>) -> Stats {
    let mid = runs.len() / 2;
    let pick = |runs: &mut Vec<Stats>, key: fn(&Stats) -> f64| {
        runs.sort_by(|a, b| key(a).total_cmp(&key(b)));
        key(&runs[mid])
    };
    Stats {
        p50_ms: pick(&mut runs, |s| s.p50_ms),
        p99_ms: pick(&mut runs, |s| s.p99_ms),
        rps: pick(&mut runs, |s| s.rps),
        service_cpu_ms: pick(&mut runs, |s| s.service_cpu_ms),
        bench_cpu_ms: pick(&mut runs, |s| s.bench_cpu_ms),
    }
}

/// User + system CPU time of a process so far, in ms (`/proc/<pid>/stat`, clock ticks of 10 ms).
fn cpu_ms(pid: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the command name, which is in parentheses and may hold spaces.
            let rest = s.rsplit_once(')')?.1.split_whitespace().collect::<Vec<_>>();
            let ticks: u64 = rest.get(11)?.parse::<u64>().ok()? + rest.get(12)?.parse::<u64>().ok()?;
            Some(ticks as f64 * 10.0)
        })
        .unwrap_or(0.0)
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn patient(i: usize) -> Patient {
    Patient::create(
        NewPatient {
            given_name: format!("Patient{i}"),
            family_name: "Bench".into(),
            birth_date: time::macros::date!(1980 - 01 - 01),
            sex: Sex::Other,
            email: None,
            phone: None,
            identifiers: Vec::new(),
        },
        &timefmt::now(),
    )
}

fn booking(patient_id: Uuid, slot: SlotStart, codes: &[(&str, &str)]) -> Booking {
    let now = timefmt::now();
    Booking {
        id: Uuid::now_v7(),
        patient_id,
        site: medbook::domain::site::DEFAULT_SITE.into(),
        slot_start: slot,
        local_slot_start: medbook::domain::site::local_text(slot.at(), 0),
        place: 0,
        rescheduled_from: Vec::new(),
        checked_in_at: None,
        accession: None,
        results_without_check_in: false,
        status: BookingStatus::Booked,
        tests: codes
            .iter()
            .map(|(code, name)| BookedTest {
                id: Uuid::now_v7(),
                test_type_code: (*code).into(),
                test_type_version: 1,
                name: (*name).into(),
                status: TestStatus::Ordered,
            })
            .collect(),
        note: None,
        version: 1,
        created_at: now.clone(),
        updated_at: now,
    }
}

fn slot_of(n: usize) -> SlotStart {
    let day = OffsetDateTime::now_utc().date() + Days::days(30 + (n / 44) as i64 % 300);
    let minute = 7 * 60 + (n % 44) as i64 * 15;
    SlotStart::new(time::PrimitiveDateTime::new(day, time::Time::MIDNIGHT).assume_utc() + Days::minutes(minute))
}

async fn batch_write(client: &Client, table: &str, items: Vec<HashMap<String, AttributeValue>>) {
    for chunk in items.chunks(25) {
        let mut requests: Vec<WriteRequest> = chunk
            .iter()
            .map(|i| {
                WriteRequest::builder()
                    .put_request(PutRequest::builder().set_item(Some(i.clone())).build().unwrap())
                    .build()
            })
            .collect();
        while !requests.is_empty() {
            let out = client
                .batch_write_item()
                .request_items(table, requests.clone())
                .send()
                .await
                .expect("BatchWriteItem");
            requests = out
                .unprocessed_items
                .and_then(|mut m| m.remove(table))
                .unwrap_or_default();
        }
    }
}

/// A first, unverified recording with no values.
fn bench_result() -> LabResult {
    LabResult {
        status: ResultStatus::Preliminary,
        revision: 1,
        version: 1,
        values: vec![],
        critical: false,
        delta_flag: false,
        performed_at: "2026-12-01T08:00:00Z".into(),
        collected_at: None,
        comment: None,
        recorded_at: timefmt::now(),
        recorded_by: "bench".into(),
        verification: None,
        review: None,
        hold: None,
        hold_lifted_at: None,
        release: None,
        corrects: None,
    }
}

/// Seeds about `size` items: patients with two bookings of three tests, one CBC result awaiting review each.
async fn seed(client: &Client, store: &Store, size: usize) -> Seeded {
    let table = store.table().to_owned();
    let catalog = store.list_catalog().await.unwrap();
    let cbc = catalog.iter().find(|t| t.definition.code == "CBC").unwrap().clone();
    let per_patient = 11;
    let patients = (size / per_patient).max(CONCURRENCY * 2 + 1);
    let mut seeded = Seeded {
        patients: Vec::new(),
        bookings: Vec::new(),
        fresh_tests: Vec::new(),
        cbc: cbc.clone(),
    };
    let mut items = Vec::new();
    let started = Instant::now();
    let mut written = 0usize;
    for i in 0..patients {
        let p = patient(i);
        items.push(seed::patient(&p).unwrap());
        for b in 0..2 {
            let mut booking = booking(
                p.id,
                slot_of(i * 2 + b),
                &[
                    ("CBC", "Complete blood count"),
                    ("LIPID", "Lipid panel"),
                    ("TSH", "Thyroid stimulating hormone"),
                ],
            );
            // Results are recorded for checked-in bookings only.
            booking.status = BookingStatus::CheckedIn;
            booking.checked_in_at = Some(timefmt::now());
            items.extend(seed::booking(&booking).unwrap());
            let at = TestAddress {
                patient_id: p.id,
                booking_id: booking.id,
                test_id: booking.tests[0].id,
            };
            if b == 0 {
                let flagged = flag_values(
                    &cbc,
                    &[RawValue {
                        analyte: "HGB".into(),
                        value: 13.0,
                        unit: "g/dL".into(),
                    }],
                    None,
                    &std::collections::HashMap::new(),
                )
                .unwrap();
                // Verified: on the doctors' worklist.
                let result = LabResult {
                    status: ResultStatus::Final,
                    values: flagged.values,
                    critical: flagged.critical,
                    performed_at: booking.slot_start.to_string(),
                    collected_at: Some(booking.slot_start.to_string()),
                    verification: Some(medbook::domain::booking::Verification {
                        verifier_id: "bench-2".into(),
                        verified_at: timefmt::now(),
                        legacy: false,
                    }),
                    ..bench_result()
                };
                items.extend(seed::result(at, "CBC", &result).unwrap());
            } else if seeded.fresh_tests.len() < CONCURRENCY * 2 {
                seeded.fresh_tests.push(at);
            }
            seeded.bookings.push((p.id, booking.id));
        }
        seeded.patients.push(p.id);
        if items.len() >= 2500 {
            written += items.len();
            batch_write(client, &table, std::mem::take(&mut items)).await;
            eprint!("\r  seeding {table}: {written} items");
        }
    }
    written += items.len();
    batch_write(client, &table, items).await;
    eprintln!(
        "\r  seeded {table}: {written} items in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    seeded
}

struct Service {
    child: Child,
    base: String,
    start_to_ready: Duration,
}

fn binary() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let release = root.join("target/release/medbook");
    if release.exists() {
        release
    } else {
        root.join("target/debug/medbook")
    }
}

async fn start_service(endpoint: &str, table: &str) -> Service {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = Instant::now();
    let child = Command::new(binary())
        .env_clear()
        .env("MEDBOOK_STORE", "aws")
        .env("MEDBOOK_TABLE", table)
        .env("MEDBOOK_ADDR", format!("127.0.0.1:{port}"))
        .env("MEDBOOK_JWT_SECRET", SECRET)
        .env("MEDBOOK_RATE_PER_SEC", "1000000")
        .env("MEDBOOK_RATE_BURST", "1000000")
        .env("AWS_ENDPOINT_URL_DYNAMODB", endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "local")
        .env("AWS_SECRET_ACCESS_KEY", "local")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("RUST_LOG", "error")
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("medbook starts");
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    loop {
        if let Ok(r) = http.get(format!("{base}/health/ready")).send().await
            && r.status() == 200
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "medbook did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Service {
        child,
        base,
        start_to_ready: started.elapsed(),
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Pattern {
    Detail,
    List,
    Create,
    Record,
    Worklist,
}

impl Pattern {
    fn name(self) -> &'static str {
        match self {
            Self::Detail => "booking detail",
            Self::List => "bookings list page",
            Self::Create => "create booking",
            Self::Record => "record result",
            Self::Worklist => "worklist page",
        }
    }
    fn is_read(self) -> bool {
        matches!(self, Self::Detail | Self::List | Self::Worklist)
    }
}

struct Ctx {
    http: reqwest::Client,
    base: String,
    raw: Client,
    store: Store,
    table: String,
    seeded: Seeded,
    admin: String,
    doctor: String,
    counter: AtomicUsize,
    /// The service side's last result version per worker (record result), kept across runs.
    versions: Vec<std::sync::atomic::AtomicU64>,
}

/// One request through the service; returns the `Dynamodb-Usage` header.
async fn via_service(ctx: &Ctx, pattern: Pattern, worker: usize, version: &mut u64) -> String {
    let n = ctx.counter.fetch_add(1, Ordering::Relaxed);
    let (p, b) = ctx.seeded.bookings[n * 7919 % ctx.seeded.bookings.len()];
    let rb = match pattern {
        Pattern::Detail => ctx
            .http
            .get(format!("{}/v1/patients/{p}/bookings/{b}", ctx.base))
            .bearer_auth(&ctx.admin),
        Pattern::List => ctx
            .http
            .get(format!("{}/v1/patients/{p}/bookings?limit=20", ctx.base))
            .bearer_auth(&ctx.admin),
        Pattern::Worklist => ctx
            .http
            .get(format!("{}/v1/worklist?limit=20", ctx.base))
            .bearer_auth(&ctx.doctor),
        Pattern::Create => ctx
            .http
            .post(format!("{}/v1/patients/{p}/bookings", ctx.base))
            .bearer_auth(&ctx.admin)
            .header("idempotency-key", Uuid::now_v7().to_string())
            .json(&json!({"slotStart": slot_of(20_000 + n).to_string(), "tests": ["CBC", "LIPID", "TSH"]})),
        Pattern::Record => {
            let at = ctx.seeded.fresh_tests[worker];
            let rb = ctx
                .http
                .put(format!("{}/v1/patients/{}/bookings/{}/tests/{}/result", ctx.base, at.patient_id, at.booking_id, at.test_id))
                .bearer_auth(&ctx.admin)
                .json(&json!({"values": [{"analyte": "HGB", "value": 13.0 + (n % 7) as f64, "unit": "g/dL"}], "performedAt": timefmt::second(OffsetDateTime::now_utc())}));
            if *version > 0 {
                rb.header("if-match", format!("\"{version}\""))
            } else {
                rb
            }
        }
    };
    let res = rb.send().await.expect("request");
    let status = res.status();
    let usage = res
        .headers()
        .get("dynamodb-usage")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if pattern == Pattern::Record {
        *version = res
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim_matches('"').parse().ok())
            .unwrap_or(*version);
    }
    let body = res.bytes().await.expect("body");
    assert!(
        status.is_success() || (pattern == Pattern::Create && status == 409),
        "{pattern:?} {status}: {}",
        String::from_utf8_lossy(&body)
    );
    usage
}

/// The same DynamoDB operations, issued directly. Reads also write their audit events in the background, as
/// the service does (one PutItem; a worklist page, one BatchWriteItem for its patients).
async fn via_sdk(ctx: &Ctx, pattern: Pattern, worker: usize, version: &mut u64) {
    let n = ctx.counter.fetch_add(1, Ordering::Relaxed);
    let (p, b) = ctx.seeded.bookings[n * 7919 % ctx.seeded.bookings.len()];
    if matches!(pattern, Pattern::Detail | Pattern::List) {
        let store = ctx.store.clone();
        tokio::spawn(async move { store.put_audit(&draft().event(p)).await });
    }
    match pattern {
        Pattern::Detail => {
            ctx.raw
                .query()
                .table_name(&ctx.table)
                .key_condition_expression("PK = :pk AND begins_with(SK, :prefix)")
                .expression_attribute_values(":pk", AttributeValue::S(keys::patient_pk(p)))
                .expression_attribute_values(":prefix", AttributeValue::S(keys::booking_sk(b)))
                .return_consumed_capacity(ReturnConsumedCapacity::Indexes)
                .send()
                .await
                .expect("Query");
        }
        Pattern::List => {
            ctx.raw
                .query()
                .table_name(&ctx.table)
                .index_name(keys::LSI_BOOKINGS_BY_SLOT)
                .key_condition_expression("PK = :pk AND LSI1SK BETWEEN :lo AND :hi")
                .expression_attribute_values(":pk", AttributeValue::S(keys::patient_pk(p)))
                .expression_attribute_values(":lo", AttributeValue::S("0".into()))
                .expression_attribute_values(":hi", AttributeValue::S("~".into()))
                .limit(20)
                .return_consumed_capacity(ReturnConsumedCapacity::Indexes)
                .send()
                .await
                .expect("Query");
        }
        Pattern::Worklist => {
            let out = ctx
                .raw
                .query()
                .table_name(&ctx.table)
                .index_name(keys::GSI_AWAITING_REVIEW)
                .key_condition_expression("GSI2PK = :pk")
                .expression_attribute_values(":pk", AttributeValue::S(keys::AWAITING_REVIEW_PK.into()))
                .limit(20)
                .return_consumed_capacity(ReturnConsumedCapacity::Indexes)
                .send()
                .await
                .expect("Query");
            let events: Vec<_> = out
                .items()
                .iter()
                .filter_map(|i| {
                    i.get("patientId")
                        .and_then(|v| v.as_s().ok())
                        .and_then(|s| s.parse().ok())
                })
                .map(|patient| draft().event(patient))
                .collect();
            let store = ctx.store.clone();
            tokio::spawn(async move { store.put_audits(&events).await });
        }
        // Writes go through the store's request builders: the same TransactWriteItems the service sends,
        // without HTTP, JSON, auth or the service's rules around it.
        Pattern::Create => {
            let booking = booking(
                p,
                slot_of(200_000 + n),
                &[
                    ("CBC", "Complete blood count"),
                    ("LIPID", "Lipid panel"),
                    ("TSH", "Thyroid stimulating hormone"),
                ],
            );
            let key = Uuid::now_v7().to_string();
            let idempotency = IdempotencyKey::new("admin:bench", &key, &[key.as_bytes()]);
            let expires_at = OffsetDateTime::now_utc().unix_timestamp() + 86_400;
            let _ = ctx
                .store
                .create_booking(
                    &booking,
                    medbook::store::bookings::PlaceTake::Free(medbook::store::sites::Unchanged {
                        site_version: 1,
                        rule_version: None,
                        slot_version: None,
                    }),
                    OffsetDateTime::now_utc().unix_timestamp(),
                    &idempotency,
                    expires_at,
                    &draft().event(p),
                    &[],
                    true,
                )
                .await;
        }
        Pattern::Record => {
            let at = ctx.seeded.fresh_tests[CONCURRENCY + worker];
            let tree = ctx
                .store
                .booking_tree(at.patient_id, at.booking_id)
                .await
                .unwrap()
                .unwrap();
            let current = tree.results.get(&at.test_id);
            let result = LabResult {
                version: current.map_or(1, |c| c.version + 1),
                ..bench_result()
            };
            ctx.store
                .save_result(
                    at,
                    &ctx.seeded.cbc,
                    &result,
                    current.map(|c| c.version),
                    &draft().event(at.patient_id),
                    &[],
                )
                .await
                .unwrap();
            *version = result.version;
        }
    }
}

fn draft() -> AuditDraft {
    AuditDraft {
        actor: Actor {
            sub: "bench".into(),
            role: "admin".into(),
        },
        action: "bench".into(),
        resource: "bench".into(),
        outcome: 200,
        request_id: "bench".into(),
    }
}

/// Runs `pattern` on `workers` workers for `seconds`; returns the latencies and a sample usage header.
async fn load(
    ctx: Arc<Ctx>,
    pattern: Pattern,
    service: bool,
    workers_n: usize,
    seconds: f64,
    pid: u32,
    peak_rss: Arc<AtomicUsize>,
) -> (Stats, String) {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let cpu_before = (cpu_ms(&pid.to_string()), cpu_ms("self"));
    let mut workers = Vec::new();
    for worker in 0..workers_n {
        let ctx = ctx.clone();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut usage = String::new();
            let mut version = ctx.versions[worker].load(Ordering::Relaxed);
            while Instant::now() < deadline {
                let started = Instant::now();
                if service {
                    usage = via_service(&ctx, pattern, worker, &mut version).await;
                } else {
                    via_sdk(&ctx, pattern, worker, &mut version).await;
                }
                latencies.push(started.elapsed().as_secs_f64() * 1000.0);
            }
            if service {
                ctx.versions[worker].store(version, Ordering::Relaxed);
            }
            (latencies, usage)
        }));
    }
    let sampler = tokio::spawn(async move {
        while Instant::now() < deadline {
            peak_rss.fetch_max(rss_kb(pid) as usize, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut all = Vec::new();
    let mut usage = String::new();
    for w in workers {
        let (l, u) = w.await.unwrap();
        all.extend(l);
        if !u.is_empty() {
            usage = u;
        }
    }
    sampler.await.unwrap();
    let service_cpu = if service {
        cpu_ms(&pid.to_string()) - cpu_before.0
    } else {
        0.0
    };
    (
        summarise(all, seconds, (service_cpu, cpu_ms("self") - cpu_before.1)),
        usage,
    )
}

/// A booking found by Scan with a filter, page by page: what the data model avoids.
async fn scan_lookup(raw: &Client, table: &str, booking_id: Uuid) -> (f64, usize, f64) {
    let started = Instant::now();
    let (mut pages, mut rcu) = (0usize, 0.0);
    let mut start = None;
    loop {
        let out = raw
            .scan()
            .table_name(table)
            .filter_expression("SK = :sk")
            .expression_attribute_values(":sk", AttributeValue::S(keys::booking_sk(booking_id)))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("Scan");
        pages += 1;
        rcu += out
            .consumed_capacity()
            .and_then(|c| c.capacity_units())
            .unwrap_or_default();
        if !out.items().is_empty() {
            break;
        }
        start = out.last_evaluated_key;
        if start.is_none() {
            break;
        }
    }
    (started.elapsed().as_secs_f64() * 1000.0, pages, rcu)
}

struct SizeResult {
    size: usize,
    start_to_ready: Duration,
    rss_idle_kb: u64,
    rss_load_kb: u64,
    rows: Vec<(Pattern, Stats, Stats, String)>,
    /// Read patterns on one connection, no queueing at the engine's lock: p50 ms via service and via SDK.
    single: Vec<(Pattern, f64, f64)>,
    scan: (f64, usize, f64),
    query_detail_ms: f64,
}

#[tokio::main]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    // `--only=record` runs the patterns whose name contains `record` (for profiling); no report file.
    let only = std::env::args().find_map(|a| a.strip_prefix("--only=").map(str::to_owned));
    let plan = if quick {
        Plan {
            sizes: [1_000, 10_000],
            runs: 3,
            seconds: 1.0,
        }
    } else {
        Plan {
            sizes: [1_000, 100_000],
            runs: 5,
            seconds: 2.0,
        }
    };
    let engine = EmbeddedEngine::start_memory().await.expect("engine");
    let raw = local_client(engine.endpoint(), engine.credentials(), &ClientOptions::default());
    let tokens = TokenKeys::new(&Secret::new(SECRET.as_bytes().to_vec()));
    let admin = tokens
        .issue(Role::Admin, "bench-admin", Duration::from_secs(3600))
        .unwrap();
    let doctor = tokens
        .issue(Role::Doctor, "bench-doctor", Duration::from_secs(3600))
        .unwrap();
    eprintln!(
        "medbook bench: binary {}, {} runs of {}s per pattern, concurrency {CONCURRENCY}",
        binary().display(),
        plan.runs,
        plan.seconds
    );

    let mut results = Vec::new();
    for size in plan.sizes {
        let table = format!("bench-{size}");
        let store = Store::new(raw.clone(), table.clone());
        store.bootstrap(CapacityMode::OnDemand, false).await.unwrap();
        store.migrate(&migrate::embedded()).await.unwrap();
        let seeded = seed(&raw, &store, size).await;
        let mut service = start_service(engine.endpoint(), &table).await;
        let pid = service.child.id();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss_idle_kb = rss_kb(pid);
        let ctx = Arc::new(Ctx {
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(CONCURRENCY)
                .build()
                .unwrap(),
            base: service.base.clone(),
            raw: raw.clone(),
            store: store.clone(),
            table: table.clone(),
            seeded,
            admin: admin.clone(),
            doctor: doctor.clone(),
            counter: AtomicUsize::new(0),
            versions: (0..CONCURRENCY).map(|_| std::sync::atomic::AtomicU64::new(0)).collect(),
        });
        // The Scan and the Query it stands against run on the seeded table, before the load adds to it.
        let (p, b) = ctx.seeded.bookings[ctx.seeded.bookings.len() - 1];
        let mut scans = Vec::new();
        for _ in 0..3 {
            scans.push(scan_lookup(&raw, &table, b).await);
        }
        scans.sort_by(|a, b| a.0.total_cmp(&b.0));
        let started = Instant::now();
        for _ in 0..20 {
            raw.query()
                .table_name(&table)
                .key_condition_expression("PK = :pk AND begins_with(SK, :prefix)")
                .expression_attribute_values(":pk", AttributeValue::S(keys::patient_pk(p)))
                .expression_attribute_values(":prefix", AttributeValue::S(keys::booking_sk(b)))
                .send()
                .await
                .unwrap();
        }
        let query_detail_ms = started.elapsed().as_secs_f64() * 1000.0 / 20.0;
        let peak = Arc::new(AtomicUsize::new(0));
        let mut rows = Vec::new();
        let mut single = Vec::new();
        // Reads first: the write patterns add bookings and results to the table.
        for pattern in [
            Pattern::Detail,
            Pattern::List,
            Pattern::Worklist,
            Pattern::Create,
            Pattern::Record,
        ]
        .into_iter()
        .filter(|p| only.as_deref().is_none_or(|o| p.name().contains(o)))
        {
            let (mut svc, mut sdk) = (Vec::new(), Vec::new());
            let mut usage = String::new();
            for _ in 0..plan.runs {
                // Alternate the two sides so drift on the machine hits both alike.
                let (s, u) = load(ctx.clone(), pattern, true, CONCURRENCY, plan.seconds, pid, peak.clone()).await;
                svc.push(s);
                usage = u;
                let (r, _) = load(
                    ctx.clone(),
                    pattern,
                    false,
                    CONCURRENCY,
                    plan.seconds,
                    pid,
                    Arc::new(AtomicUsize::new(0)),
                )
                .await;
                sdk.push(r);
            }
            let (svc, sdk) = (median(svc), median(sdk));
            eprintln!(
                "  {size:>6} {:<20} service p50 {:.3} ms, {:.0}/s, cpu {:.2}+{:.2} ms | sdk p50 {:.3} ms, {:.0}/s, cpu {:.2} ms | {usage}",
                pattern.name(),
                svc.p50_ms,
                svc.rps,
                svc.service_cpu_ms,
                svc.bench_cpu_ms,
                sdk.p50_ms,
                sdk.rps,
                sdk.bench_cpu_ms
            );
            rows.push((pattern, svc, sdk, usage));
            if pattern.is_read() {
                let (mut one_svc, mut one_sdk) = (Vec::new(), Vec::new());
                for _ in 0..plan.runs {
                    let idle = Arc::new(AtomicUsize::new(0));
                    one_svc.push(
                        load(ctx.clone(), pattern, true, 1, plan.seconds / 2.0, pid, idle.clone())
                            .await
                            .0,
                    );
                    one_sdk.push(
                        load(ctx.clone(), pattern, false, 1, plan.seconds / 2.0, pid, idle)
                            .await
                            .0,
                    );
                }
                let (one_svc, one_sdk) = (median(one_svc).p50_ms, median(one_sdk).p50_ms);
                eprintln!(
                    "  {size:>6} {:<20} one connection: service p50 {one_svc:.3} ms | sdk p50 {one_sdk:.3} ms",
                    pattern.name()
                );
                single.push((pattern, one_svc, one_sdk));
            }
        }
        results.push(SizeResult {
            size,
            start_to_ready: service.start_to_ready,
            rss_idle_kb,
            rss_load_kb: peak.load(Ordering::Relaxed) as u64,
            rows,
            single,
            scan: scans[1],
            query_detail_ms,
        });
        let _ = service.child.kill();
        let _ = service.child.wait();
    }
    let report = report(&results, plan, quick);
    println!("{report}");
    if !quick && only.is_none() {
        std::fs::write(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/benchmarks.md"),
            &report,
        )
        .unwrap();
        eprintln!("written to docs/benchmarks.md");
    }
    engine.shutdown().await;
}

fn report(results: &[SizeResult], plan: Plan, quick: bool) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let date = OffsetDateTime::now_utc().date();
    let mut out = String::new();
    let _ = writeln!(out, "# medbook benchmarks\n");
    let _ = writeln!(
        out,
        "Produced by `cargo build --release --bin medbook && cargo run --release --example bench{}` on {date}, {cores} cores ({cpu}), binary `{}`.",
        if quick { " -- --quick" } else { "" },
        binary()
            .strip_prefix(env!("CARGO_MANIFEST_DIR"))
            .unwrap_or(&binary())
            .display()
    );
    let _ = writeln!(
        out,
        "Engine: the embedded dynoxide (SQLite) in the benchmark process, one lock for all requests, so absolute"
    );
    let _ = writeln!(
        out,
        "numbers say little; the ratios compare the service with the raw SDK on the same engine in the same run."
    );
    let _ = writeln!(
        out,
        "{CONCURRENCY} connections, {} runs of {} s per pattern and side (alternating), median of the runs.\n",
        plan.runs, plan.seconds
    );
    let _ = writeln!(
        out,
        "| items | pattern | service p50 ms | service p99 ms | service req/s | SDK p50 ms | SDK p99 ms | SDK req/s | p50 service/SDK | throughput service/SDK | CPU ms/req via service (service + bench process) | CPU ms/req via SDK | Dynamodb-Usage per request |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in results {
        for (pattern, svc, sdk, usage) in &r.rows {
            let _ = writeln!(
                out,
                "| {} | {} | {:.3} | {:.3} | {:.0} | {:.3} | {:.3} | {:.0} | {:.2} | {:.2} | {:.2} + {:.2} | {:.2} | {} |",
                r.size,
                pattern.name(),
                svc.p50_ms,
                svc.p99_ms,
                svc.rps,
                sdk.p50_ms,
                sdk.p99_ms,
                sdk.rps,
                svc.p50_ms / sdk.p50_ms,
                svc.rps / sdk.rps,
                svc.service_cpu_ms,
                svc.bench_cpu_ms,
                sdk.bench_cpu_ms,
                usage
            );
        }
    }
    if let [small, large] = results {
        let _ = writeln!(out, "\n## Flat as data grows ({} → {} items)\n", small.size, large.size);
        let _ = writeln!(
            out,
            "One connection (no queue at the engine's lock), read patterns, p50 ms:\n\n\
             | pattern | service {0} | service {1} | service {1}/{0} | SDK {0} | SDK {1} | SDK {1}/{0} |\n\
             |---|---|---|---|---|---|---|",
            small.size, large.size
        );
        for ((pattern, s1, d1), (_, s2, d2)) in small.single.iter().zip(&large.single) {
            let _ = writeln!(
                out,
                "| {} | {s1:.3} | {s2:.3} | {:.2} | {d1:.3} | {d2:.3} | {:.2} |",
                pattern.name(),
                s2 / s1,
                d2 / d1
            );
        }
        let _ = writeln!(out, "\nUnder load ({CONCURRENCY} connections), p50:\n");
        let _ = writeln!(
            out,
            "| pattern | service p50 ratio large/small | SDK p50 ratio large/small |\n|---|---|---|"
        );
        for ((pattern, s1, d1, _), (_, s2, d2, _)) in small.rows.iter().zip(&large.rows) {
            let read = if pattern.is_read() { "" } else { " (write)" };
            let _ = writeln!(
                out,
                "| {}{read} | {:.2} | {:.2} |",
                pattern.name(),
                s2.p50_ms / s1.p50_ms,
                d2.p50_ms / d1.p50_ms
            );
        }
        let _ = writeln!(out, "\n## Scan instead of Query (booking lookup by id)\n");
        let _ = writeln!(
            out,
            "| items | Query (booking tree) ms | Scan with filter ms | Scan pages | Scan RCU |\n|---|---|---|---|---|"
        );
        for r in results {
            let _ = writeln!(
                out,
                "| {} | {:.3} | {:.1} | {} | {:.1} |",
                r.size, r.query_detail_ms, r.scan.0, r.scan.1, r.scan.2
            );
        }
    }
    let _ = writeln!(
        out,
        "\n## Process\n\n| items | start to ready | RSS idle | RSS peak under load |\n|---|---|---|---|"
    );
    for r in results {
        let _ = writeln!(
            out,
            "| {} | {} ms | {:.1} MB | {:.1} MB |",
            r.size,
            r.start_to_ready.as_millis(),
            r.rss_idle_kb as f64 / 1024.0,
            r.rss_load_kb as f64 / 1024.0
        );
    }
    out
}
