//! Sign-in through an OpenID provider: a real one (the npm package oidc-provider, started once for the test
//! binary, see tests/oidc/provider.mjs) for what providers really send, and a key server made here for each
//! refusal (algorithm pinned by key type, unknown kid, issuer, audience, expiry, rotation, provider down).

use std::{
    io::{BufRead, BufReader},
    process::{Child, ChildStdin, Command, Stdio},
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use medbook::auth::Role;
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, spawn_app_with, usage};

/// The real provider: its issuer, and its process (which exits when its stdin, held here, closes).
struct Provider {
    issuer: String,
    _process: Mutex<(Child, ChildStdin)>,
}

static PROVIDER: OnceLock<Provider> = OnceLock::new();

/// Installs (once, `npm ci` from the committed lock file into target/oidc-provider) and starts the provider.
fn provider() -> &'static Provider {
    PROVIDER.get_or_init(|| {
        let source = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oidc");
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/target/oidc-provider");
        std::fs::create_dir_all(dir).expect("target/oidc-provider");
        for file in ["package.json", "package-lock.json", "provider.mjs"] {
            std::fs::copy(format!("{source}/{file}"), format!("{dir}/{file}")).expect("copy the provider");
        }
        if !std::path::Path::new(dir).join("node_modules/oidc-provider").exists() {
            let status = Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                .current_dir(dir)
                .status()
                .expect("npm runs (Node.js and npm are needed for the OpenID provider)");
            assert!(status.success(), "npm ci of oidc-provider");
        }
        let mut child = Command::new("node")
            .arg("provider.mjs")
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
            .expect("the provider prints its issuer");
        let issuer = serde_json::from_str::<Value>(&line).expect("json")["issuer"]
            .as_str()
            .expect("issuer")
            .to_owned();
        Provider {
            issuer,
            _process: Mutex::new((child, stdin)),
        }
    })
}

const ROLE_MAP: &str = "lab-staff:lab,physician:doctor,medbook-admin:admin,patient:patient";

/// An app trusting the real provider (and medbook's own tokens), with `extra` settings.
async fn app_with(extra: &[(&str, &str)]) -> TestApp {
    let issuer = provider().issuer.clone();
    let mut settings = vec![
        ("MEDBOOK_OIDC_ISSUER", issuer.as_str()),
        ("MEDBOOK_OIDC_AUDIENCE", "medbook-api"),
        ("MEDBOOK_OIDC_ROLES_CLAIM", "realm_access.roles"),
        ("MEDBOOK_OIDC_ROLE_MAP", ROLE_MAP),
    ];
    settings.extend_from_slice(extra);
    spawn_app_with(&settings).await
}

/// An access token of the real provider for client `client` (its `sub`), signed with `alg`.
async fn provider_token(client: &str, alg: &str) -> String {
    let body = format!(
        "grant_type=client_credentials&client_id={client}&client_secret=medbook-test-client-secret&scope=medbook\
         &resource=https%3A%2F%2Fmedbook.test%2F{alg}"
    );
    let res = reqwest::Client::new()
        .post(format!("{}/token", provider().issuer))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("the provider answers");
    let answer: Value = res.json().await.expect("json");
    answer["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("a token: {answer}"))
        .to_owned()
}

async fn get(app: &TestApp, path: &str, token: &str) -> (u16, Value) {
    let res = app
        .request(Method::GET, path, Some(token))
        .send()
        .await
        .expect("request");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn patient_body(given: &str) -> Value {
    json!({"givenName": given, "familyName": "Lukasik", "birthDate": "1985-03-04", "sex": "female"})
}

#[tokio::test]
async fn a_real_providers_tokens_sign_in_in_each_algorithm_beside_medbooks_own() {
    let app = app_with(&[]).await;
    for alg in ["RS256", "PS256", "ES256", "EdDSA"] {
        let token = provider_token("lab-1", alg).await;
        let (status, me) = get(&app, "/v1/me", &token).await;
        assert_eq!(status, 200, "{alg}: {me}");
        assert_eq!(
            me,
            json!({"issuer": provider().issuer, "sub": "lab-1", "role": "lab"}),
            "{alg}"
        );
    }
    let doctor = provider_token("doctor-1", "ES256").await;
    assert_eq!(get(&app, "/v1/me", &doctor).await.1["role"], "doctor");
    let admin = provider_token("admin-1", "RS256").await;
    let res = app
        .request(Method::POST, "/v1/patients", Some(&admin))
        .json(&patient_body("Ada"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "a provider's admin registers a patient");
    // medbook's own tokens keep working beside the provider's.
    let (status, me) = get(&app, "/v1/me", &app.staff(Role::Lab)).await;
    assert_eq!((status, me["issuer"].as_str()), (200, Some("medbook")));
}

#[tokio::test]
async fn a_token_mapping_to_no_role_is_403_and_one_not_for_us_is_401() {
    let app = app_with(&[]).await;
    let nobody = provider_token("nobody-1", "ES256").await;
    assert_eq!(get(&app, "/v1/me", &nobody).await.0, 403, "no mapped role");
    let (status, _) = get(&app, "/v1/test-types", &nobody).await;
    assert_eq!(status, 200, "public routes stay public");

    let lab = provider_token("lab-1", "ES256").await;
    let mut forged = lab.clone();
    forged.pop();
    forged.push(if lab.ends_with('A') { 'B' } else { 'A' });
    assert_eq!(get(&app, "/v1/me", &forged).await.0, 401, "a changed signature");
    assert_eq!(
        get(&app, "/v1/test-types", &forged).await.0,
        200,
        "a bad token on a public route"
    );

    let other_audience = app_with(&[("MEDBOOK_OIDC_AUDIENCE", "another-api")]).await;
    assert_eq!(get(&other_audience, "/v1/me", &lab).await.0, 401, "another audience");

    let no_provider = spawn_app_with(&[]).await;
    assert_eq!(get(&no_provider, "/v1/me", &lab).await.0, 401, "no provider configured");

    let provider_only = app_with(&[("MEDBOOK_JWT_HS256", "false")]).await;
    assert_eq!(get(&provider_only, "/v1/me", &lab).await.0, 200);
    assert_eq!(
        get(&provider_only, "/v1/me", &provider_only.staff(Role::Admin)).await.0,
        401,
        "medbook's own tokens turned off"
    );

    // Key confusion on the provider's RSA key: an HS256 token keyed with its public modulus, and an ES256
    // token naming it.
    let jwks: Value = reqwest::get(format!("{}/jwks", provider().issuer))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rsa = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kty"] == "RSA")
        .unwrap();
    let claims = claims(&provider().issuer, "medbook-api", "lab-9", 600);
    let mut header = Header::new(Algorithm::HS256);
    header.kid = rsa["kid"].as_str().map(str::to_owned);
    let modulus = rsa["n"].as_str().unwrap().as_bytes();
    let confused = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(modulus)).unwrap();
    assert_eq!(
        get(&app, "/v1/me", &confused).await.0,
        401,
        "HS256 keyed with the RSA key"
    );
    let ec = ec_key();
    let mut header = Header::new(Algorithm::ES256);
    header.kid = rsa["kid"].as_str().map(str::to_owned);
    let named = jsonwebtoken::encode(&header, &claims, &ec.encoding).unwrap();
    assert_eq!(get(&app, "/v1/me", &named).await.0, 401, "ES256 naming an RSA key");
}

#[tokio::test]
async fn a_patient_registers_once_and_then_reaches_only_their_own_record() {
    let app = app_with(&[]).await;
    let other = app.create_patient().await;
    let token = provider_token("patient-1", "ES256").await;
    let (status, me) = get(&app, "/v1/me", &token).await;
    assert_eq!(status, 200);
    assert!(me.get("patientId").is_none(), "not registered yet: {me}");
    assert_eq!(get(&app, &format!("/v1/patients/{other}"), &token).await.0, 404);

    let res = app
        .request(Method::POST, "/v1/me/patient", Some(&token))
        .json(&json!({"givenName": "Ola"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422, "fields are checked as for any patient");
    let mut claiming = patient_body("Ola");
    claiming["identifiers"] = json!([{"system": "https://hospital.example.org/mrn", "value": "MRN-1"}]);
    let res = app
        .request(Method::POST, "/v1/me/patient", Some(&token))
        .json(&claiming)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422, "a patient claims no hospital's number");
    assert_eq!(res.json::<Value>().await.unwrap()["errors"][0]["field"], "identifiers");
    // Only the address the provider verified (patient-1@patients.example) may be given, so nobody takes
    // another person's.
    let mut with_email = patient_body("Ola");
    with_email["email"] = "someone.else@example.org".into();
    let res = app
        .request(Method::POST, "/v1/me/patient", Some(&token))
        .json(&with_email)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422, "an address the sign-in did not verify");
    assert_eq!(res.json::<Value>().await.unwrap()["errors"][0]["field"], "email");
    let taken = app
        .request(Method::POST, "/v1/patients", Some(&app.staff(Role::Lab)))
        .json(
            &json!({"givenName": "E", "familyName": "Mail", "birthDate": "1970-01-01", "sex": "male",
                      "email": "patient-1@patients.example"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(taken.status(), 201);
    with_email["email"] = "Patient-1@Patients.example".into();
    let res = app
        .request(Method::POST, "/v1/me/patient", Some(&token))
        .json(&with_email)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409);
    assert!(
        res.json::<Value>().await.unwrap()["type"]
            .as_str()
            .unwrap()
            .ends_with("email-taken")
    );
    assert_eq!(
        app.store
            .identity_patient(&provider().issuer, "patient-1")
            .await
            .unwrap(),
        None,
        "nothing half-written"
    );
    let res = app
        .request(Method::POST, "/v1/me/patient", Some(&token))
        .json(&patient_body("Ola"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let id = res.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    assert_eq!(get(&app, "/v1/me", &token).await.1["patientId"], id.as_str());
    let (status, record) = get(&app, &format!("/v1/patients/{id}"), &token).await;
    assert_eq!((status, record["givenName"].as_str()), (200, Some("Ola")));
    assert_eq!(get(&app, &format!("/v1/patients/{other}"), &token).await.0, 404);
    let (status, bookings) = get(&app, &format!("/v1/patients/{id}/bookings"), &token).await;
    assert_eq!(status, 200, "{bookings}");
    // Their own trail shows the registration as theirs, not another patient's.
    let (status, trail) = get(&app, &format!("/v1/patients/{id}/audit"), &token).await;
    assert_eq!(status, 200);
    let registered = trail["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "POST /v1/me/patient")
        .unwrap_or_else(|| panic!("{trail}"));
    assert_eq!(registered["actor"]["sub"], id.as_str());

    let again = app
        .request(Method::POST, "/v1/me/patient", Some(&token))
        .json(&patient_body("Ola"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 409);
    assert!(
        again.json::<Value>().await.unwrap()["type"]
            .as_str()
            .unwrap()
            .ends_with("identity-linked")
    );

    // Two registrations of one identity racing: one patient.
    let racer = provider_token("patient-2", "EdDSA").await;
    let attempts = (0..4).map(|_| {
        app.request(Method::POST, "/v1/me/patient", Some(&racer))
            .json(&patient_body("Race"))
            .send()
    });
    let statuses: Vec<u16> = futures_util::future::join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.unwrap().status().as_u16())
        .collect();
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == 201 || *s == 409), "{statuses:?}");

    let staff = provider_token("lab-1", "ES256").await;
    let res = app
        .request(Method::POST, "/v1/me/patient", Some(&staff))
        .json(&patient_body("Lab"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403, "staff are no patient");
    let medbook_patient = app.token(Role::Patient, &other.to_string());
    let res = app
        .request(Method::POST, "/v1/me/patient", Some(&medbook_patient))
        .json(&patient_body("X"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409, "a medbook patient token names its patient already");
}

#[tokio::test]
async fn staff_link_an_identity_to_one_existing_patient() {
    let app = app_with(&[]).await;
    let patient = app.create_patient().await;
    let second = app.create_patient().await;
    let issuer = provider().issuer.clone();
    let lab = provider_token("lab-1", "RS256").await;
    let link = |patient: Uuid, body: Value, token: String| {
        let app = &app;
        async move {
            let res = app
                .request(
                    Method::POST,
                    &format!("/v1/patients/{patient}/identities"),
                    Some(&token),
                )
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let identity = json!({"issuer": issuer, "sub": "patient-3"});
    let (status, body) = link(patient, identity.clone(), app.staff(Role::Doctor)).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = link(Uuid::now_v7(), identity.clone(), lab.clone()).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = link(patient, json!({"issuer": "medbook", "sub": "x"}), lab.clone()).await;
    assert_eq!(
        (status, body["errors"][0]["field"].as_str()),
        (422, Some("issuer")),
        "{body}"
    );
    let (status, body) = link(
        patient,
        json!({"issuer": "http://id.example.org", "sub": "x"}),
        lab.clone(),
    )
    .await;
    assert_eq!(
        (status, body["errors"][0]["field"].as_str()),
        (422, Some("issuer")),
        "{body}"
    );
    let (status, body) = link(patient, json!({"issuer": issuer, "sub": "a b"}), lab.clone()).await;
    assert_eq!(
        (status, body["errors"][0]["field"].as_str()),
        (422, Some("sub")),
        "{body}"
    );

    let (status, body) = link(patient, identity.clone(), lab.clone()).await;
    assert_eq!(status, 201, "{body}");
    let token = provider_token("patient-3", "PS256").await;
    assert_eq!(get(&app, "/v1/me", &token).await.1["patientId"], patient.to_string());
    assert_eq!(get(&app, &format!("/v1/patients/{patient}"), &token).await.0, 200);
    assert_eq!(get(&app, &format!("/v1/patients/{second}"), &token).await.0, 404);

    let (status, body) = link(second, identity.clone(), app.staff(Role::Admin)).await;
    assert_eq!(status, 409, "one identity, one patient: {body}");
    assert!(body["type"].as_str().unwrap().ends_with("identity-linked"));
    let res = app
        .request(Method::POST, "/v1/me/patient", Some(&token))
        .json(&patient_body("Twice"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409, "a linked identity registers no second record");

    // Staff and the patient see the patient's identities; staff unlink one made by mistake, and its tokens stop
    // reaching the record (at once on this replica).
    let (status, listed) = get(&app, &format!("/v1/patients/{patient}/identities"), &lab).await;
    assert_eq!(status, 200);
    assert_eq!(listed["items"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["items"][0]["sub"], "patient-3");
    assert_eq!(listed["items"][0]["linkedBy"], "lab-1");
    assert_eq!(
        get(&app, &format!("/v1/patients/{patient}/identities"), &token).await.0,
        200
    );
    assert_eq!(
        get(&app, &format!("/v1/patients/{second}/identities"), &token).await.0,
        404
    );
    let unlink = |patient: Uuid, query: String, token: String| {
        let app = &app;
        async move {
            app.request(
                Method::DELETE,
                &format!("/v1/patients/{patient}/identities{query}"),
                Some(&token),
            )
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
        }
    };
    let query = format!("?issuer={}&sub=patient-3", crate::patients::urlencode(&issuer));
    assert_eq!(
        unlink(patient, String::new(), lab.clone()).await,
        422,
        "which identity?"
    );
    assert_eq!(
        unlink(second, query.clone(), lab.clone()).await,
        404,
        "not that patient's"
    );
    assert_eq!(unlink(patient, query.clone(), app.staff(Role::Doctor)).await, 403);
    assert_eq!(
        unlink(patient, query.clone(), token.clone()).await,
        403,
        "a patient does not unlink"
    );
    assert_eq!(unlink(patient, query.clone(), lab.clone()).await, 204);
    assert!(get(&app, "/v1/me", &token).await.1.get("patientId").is_none());
    assert_eq!(get(&app, &format!("/v1/patients/{patient}"), &token).await.0, 404);
    assert_eq!(unlink(patient, query.clone(), lab.clone()).await, 404, "gone");
    let (_, listed) = get(&app, &format!("/v1/patients/{patient}/identities"), &lab).await;
    assert_eq!(listed["items"], json!([]));
    let (status, _) = link(second, identity.clone(), lab.clone()).await;
    assert_eq!(status, 201, "free to link to the right patient");
    assert_eq!(get(&app, &format!("/v1/patients/{second}"), &token).await.0, 200);

    // The link is in the patient's audit trail, by the lab user who made it.
    let (_, trail) = get(&app, &format!("/v1/patients/{patient}/audit"), &app.staff(Role::Admin)).await;
    let linked = trail["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "POST /v1/patients/{patientId}/identities")
        .unwrap_or_else(|| panic!("{trail}"));
    assert_eq!(linked["actor"]["sub"], "lab-1");
}

#[tokio::test]
async fn a_cached_link_costs_no_dynamodb_call_and_without_the_cache_each_request_reads_it() {
    for (cache_s, calls) in [("300", 0), ("0", 1)] {
        let app = app_with(&[("MEDBOOK_IDENTITY_CACHE_S", cache_s)]).await;
        let token = provider_token("patient-4", "ES256").await;
        let res = app
            .request(Method::POST, "/v1/me/patient", Some(&token))
            .json(&patient_body("Cached"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        assert_eq!(usage(&res).0, 2, "the link's read (no link yet), then one transaction");
        for _ in 0..2 {
            let res = app.request(Method::GET, "/v1/me", Some(&token)).send().await.unwrap();
            assert_eq!(res.status(), 200);
            assert_eq!(usage(&res).0, calls, "cache {cache_s} s");
        }
    }
}

// ---- refusals, against a key server made here ----

struct TestKey {
    encoding: EncodingKey,
    jwk: Value,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn ec_key() -> TestKey {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let point = pair.public_key().as_ref().to_vec();
    TestKey {
        encoding: EncodingKey::from_ec_der(pair.to_pkcs8v1().unwrap().as_ref()),
        jwk: json!({"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..65])}),
    }
}

fn ed_key() -> TestKey {
    use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
    let pair = Ed25519KeyPair::generate().unwrap();
    TestKey {
        encoding: EncodingKey::from_ed_der(pair.to_pkcs8v1().unwrap().as_ref()),
        jwk: json!({"kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key().as_ref())}),
    }
}

fn claims(issuer: &str, audience: &str, sub: &str, ttl: i64) -> Value {
    let now = i64::try_from(jsonwebtoken::get_current_timestamp()).unwrap();
    json!({"iss": issuer, "aud": audience, "sub": sub, "iat": now, "exp": now + ttl,
           "roles": ["lab-staff"]})
}

/// A provider made here: discovery and a key set that a test changes, counting key-set fetches.
struct KeyServer {
    issuer: String,
    keys: Arc<Mutex<Vec<Value>>>,
    /// Key-set requests answered.
    fetches: Arc<AtomicUsize>,
    /// Discovery requests received, answered or not.
    discoveries: Arc<AtomicUsize>,
    up: Arc<std::sync::atomic::AtomicBool>,
}

async fn key_server() -> KeyServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let keys = Arc::new(Mutex::new(Vec::<Value>::new()));
    let fetches = Arc::new(AtomicUsize::new(0));
    let discoveries = Arc::new(AtomicUsize::new(0));
    let up = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let discovery = json!({"issuer": issuer, "jwks_uri": format!("{issuer}/jwks")});
    let (k, f, d, u1, u2) = (
        keys.clone(),
        fetches.clone(),
        discoveries.clone(),
        up.clone(),
        up.clone(),
    );
    let router = axum::Router::new()
        .route(
            "/.well-known/openid-configuration",
            axum::routing::get(move || {
                d.fetch_add(1, Ordering::SeqCst);
                let (discovery, up) = (discovery.clone(), u1.load(Ordering::SeqCst));
                async move {
                    if up {
                        Ok(axum::Json(discovery))
                    } else {
                        Err(axum::http::StatusCode::SERVICE_UNAVAILABLE)
                    }
                }
            }),
        )
        .route(
            "/jwks",
            axum::routing::get(move || {
                f.fetch_add(1, Ordering::SeqCst);
                let (keys, up) = (k.lock().unwrap().clone(), u2.load(Ordering::SeqCst));
                async move {
                    if up {
                        Ok(axum::Json(json!({ "keys": keys })))
                    } else {
                        Err(axum::http::StatusCode::SERVICE_UNAVAILABLE)
                    }
                }
            }),
        );
    tokio::spawn(async move { axum::serve(listener, router).await });
    KeyServer {
        issuer,
        keys,
        fetches,
        discoveries,
        up,
    }
}

impl KeyServer {
    fn publish(&self, key: &TestKey, kid: &str, extra: &[(&str, &str)]) {
        let mut jwk = key.jwk.clone();
        jwk["kid"] = kid.into();
        for (k, v) in extra {
            jwk[*k] = (*v).into();
        }
        self.keys.lock().unwrap().push(jwk);
    }

    async fn app(&self) -> TestApp {
        self.app_with(&[]).await
    }

    async fn app_with(&self, extra: &[(&str, &str)]) -> TestApp {
        let mut settings = vec![
            ("MEDBOOK_OIDC_ISSUER", self.issuer.as_str()),
            ("MEDBOOK_OIDC_AUDIENCE", "medbook"),
            ("MEDBOOK_OIDC_ROLE_MAP", "lab-staff:lab"),
        ];
        settings.extend_from_slice(extra);
        spawn_app_with(&settings).await
    }

    fn token(&self, key: &TestKey, alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, &key.encoding).unwrap()
    }
}

async fn status(app: &TestApp, token: &str) -> u16 {
    get(app, "/v1/me", token).await.0
}

#[tokio::test]
async fn each_refusal_of_a_provider_token_is_401() {
    let server = key_server().await;
    let (ec, ed) = (ec_key(), ed_key());
    server.publish(&ec, "ec", &[]);
    server.publish(&ed, "ed", &[]);
    let pinned = ec_key();
    server.publish(&pinned, "pinned", &[("alg", "ES256")]);
    let app = server.app().await;
    let good = claims(&server.issuer, "medbook", "lab-7", 300);
    assert_eq!(
        status(&app, &server.token(&ec, Algorithm::ES256, Some("ec"), &good)).await,
        200
    );
    assert_eq!(
        status(&app, &server.token(&ed, Algorithm::EdDSA, Some("ed"), &good)).await,
        200
    );
    assert_eq!(
        status(&app, &server.token(&pinned, Algorithm::ES256, Some("pinned"), &good)).await,
        200
    );

    assert_eq!(
        status(&app, &server.token(&ec, Algorithm::ES256, None, &good)).await,
        401,
        "no kid"
    );
    assert_eq!(
        status(&app, &server.token(&ed, Algorithm::EdDSA, Some("ec"), &good)).await,
        401,
        "EdDSA naming a P-256 key"
    );
    assert_eq!(
        status(&app, &server.token(&ec, Algorithm::ES256, Some("nope"), &good)).await,
        401,
        "unknown kid"
    );
    let mut wrong = good.clone();
    wrong["iss"] = "http://127.0.0.1:1".into();
    assert_eq!(
        status(&app, &server.token(&ec, Algorithm::ES256, Some("ec"), &wrong)).await,
        401,
        "issuer"
    );
    let mut wrong = good.clone();
    wrong["aud"] = "someone-else".into();
    assert_eq!(
        status(&app, &server.token(&ec, Algorithm::ES256, Some("ec"), &wrong)).await,
        401,
        "audience"
    );
    let mut cognito = good.clone();
    cognito.as_object_mut().unwrap().remove("aud");
    cognito["client_id"] = "medbook".into();
    assert_eq!(
        status(&app, &server.token(&ec, Algorithm::ES256, Some("ec"), &cognito)).await,
        401,
        "client_id stands for aud only on an access token"
    );
    cognito["token_use"] = "access".into();
    assert_eq!(
        status(&app, &server.token(&ec, Algorithm::ES256, Some("ec"), &cognito)).await,
        200,
        "Cognito's access tokens name the client in client_id"
    );
    let mut id_token = good.clone();
    id_token["token_use"] = "id".into();
    assert_eq!(
        status(&app, &server.token(&ec, Algorithm::ES256, Some("ec"), &id_token)).await,
        401,
        "a Cognito ID token, whose aud is the client"
    );
    let mut id_token = good.clone();
    id_token["typ"] = "ID".into();
    assert_eq!(
        status(&app, &server.token(&ec, Algorithm::ES256, Some("ec"), &id_token)).await,
        401,
        "a Keycloak ID token"
    );
    let expired = claims(&server.issuer, "medbook", "lab-7", -120);
    assert_eq!(
        status(&app, &server.token(&ec, Algorithm::ES256, Some("ec"), &expired)).await,
        401,
        "expired"
    );
    let mut early = good.clone();
    early["nbf"] = (jsonwebtoken::get_current_timestamp() + 3600).into();
    assert_eq!(
        status(&app, &server.token(&ec, Algorithm::ES256, Some("ec"), &early)).await,
        401,
        "not yet"
    );
    let mut no_sub = good.clone();
    no_sub.as_object_mut().unwrap().remove("sub");
    assert_eq!(
        status(&app, &server.token(&ec, Algorithm::ES256, Some("ec"), &no_sub)).await,
        401,
        "no sub"
    );
}

#[tokio::test]
async fn keys_rotate_on_an_unknown_kid_at_most_once_a_minute_and_survive_the_provider_going_down() {
    let server = key_server().await;
    let first = ec_key();
    server.publish(&first, "k1", &[]);
    let app = server.app().await;
    let claims = claims(&server.issuer, "medbook", "lab-8", 300);
    assert_eq!(
        status(&app, &server.token(&first, Algorithm::ES256, Some("k1"), &claims)).await,
        200
    );
    let fetched = server.fetches.load(Ordering::SeqCst);
    assert_eq!(fetched, 1, "one fetch at startup or first use");
    for _ in 0..3 {
        assert_eq!(
            status(&app, &server.token(&first, Algorithm::ES256, Some("k1"), &claims)).await,
            200
        );
    }
    assert_eq!(server.fetches.load(Ordering::SeqCst), 1, "known keys are cached");

    // A new key appears: the first token naming it refetches the set, but that was less than a minute after
    // the last fetch, so it is refused, and so are more unknown kids in that minute, without more fetches.
    let second = ed_key();
    server.publish(&second, "k2", &[]);
    for _ in 0..3 {
        assert_eq!(
            status(&app, &server.token(&second, Algorithm::EdDSA, Some("k2"), &claims)).await,
            401
        );
    }
    assert_eq!(server.fetches.load(Ordering::SeqCst), 1, "at most one fetch a minute");

    // A fresh replica (its minute not spent) sees the rotation at once.
    let replica = server.app().await;
    let token = server.token(&second, Algorithm::EdDSA, Some("k2"), &claims);
    assert_eq!(status(&replica, &token).await, 200, "rotated key");
    assert_eq!(server.fetches.load(Ordering::SeqCst), 2, "one fetch for the replica");

    // The provider goes down. A replica allowed to refetch every second tries, on an unknown kid, fails, and
    // keeps the keys it has: tokens signed with them still verify.
    let fast = server.app_with(&[("MEDBOOK_OIDC_REFRESH_S", "1")]).await;
    assert_eq!(status(&fast, &token).await, 200);
    server.up.store(false, Ordering::SeqCst);
    let asked = server.discoveries.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let third = ec_key();
    assert_eq!(
        status(&fast, &server.token(&third, Algorithm::ES256, Some("k3"), &claims)).await,
        401
    );
    assert_eq!(
        server.discoveries.load(Ordering::SeqCst),
        asked + 1,
        "it tried the provider, which was down"
    );
    assert_eq!(status(&fast, &token).await, 200, "provider down, key still cached");
    assert_eq!(
        status(&fast, &server.token(&first, Algorithm::ES256, Some("k1"), &claims)).await,
        200
    );
}
