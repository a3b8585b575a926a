//! Authentication and the role matrix of every endpoint.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use medbook::auth::Role;
use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{TEST_SECRET, TestApp, assert_problem, day, slot, spawn_app};

fn signed(claims: serde_json::Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

#[tokio::test]
async fn missing_malformed_forged_and_expired_tokens_get_401() {
    let app = spawn_app().await;
    let id = app.create_patient().await;
    let path = format!("/v1/patients/{id}");

    let res = app.request(Method::GET, &path, None).send().await.unwrap();
    assert_eq!(res.headers()["www-authenticate"], "Bearer realm=\"medbook\"");
    assert_problem(res, 401, "unauthorized").await;

    let base = json!({"sub": "admin-1", "role": "admin", "iss": "medbook", "aud": "medbook", "iat": now()});
    let with = |extra: serde_json::Value| {
        let mut claims = base.clone();
        claims
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        claims
    };
    let header_payload = {
        let t = signed(with(json!({"exp": now() + 60})), TEST_SECRET.as_bytes());
        t.rsplit_once('.').unwrap().0.to_owned()
    };
    let cases = [
        ("garbage", "not-a-jwt".to_owned()),
        (
            "other secret",
            signed(
                with(json!({"exp": now() + 60})),
                b"another-secret-another-secret-0123456789",
            ),
        ),
        (
            "expired",
            signed(with(json!({"exp": now() - 120})), TEST_SECRET.as_bytes()),
        ),
        ("no exp", signed(base.clone(), TEST_SECRET.as_bytes())),
        (
            "wrong issuer",
            signed(with(json!({"exp": now() + 60, "iss": "evil"})), TEST_SECRET.as_bytes()),
        ),
        (
            "unknown role",
            signed(with(json!({"exp": now() + 60, "role": "root"})), TEST_SECRET.as_bytes()),
        ),
        (
            "alg none",
            format!(
                "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.",
                header_payload.split('.').nth(1).unwrap()
            ),
        ),
        ("too long", "a".repeat(9000)),
    ];
    for (name, token) in cases {
        let res = app.request(Method::GET, &path, Some(&token)).send().await.unwrap();
        assert_eq!(res.status(), 401, "{name}");
    }
    let res = app
        .request(Method::GET, &path, None)
        .header("authorization", "Basic YTpi")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "basic auth");
}

#[tokio::test]
async fn a_patient_sees_only_their_own_record_and_others_look_absent() {
    let app = spawn_app().await;
    let (mine, theirs) = (app.create_patient().await, app.create_patient().await);
    let token = app.token(Role::Patient, &mine.to_string());

    let res = app
        .request(Method::GET, &format!("/v1/patients/{mine}"), Some(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = app
        .request(Method::GET, &format!("/v1/patients/{theirs}"), Some(&token))
        .send()
        .await
        .unwrap();
    assert_problem(res, 404, "not-found").await;
    // A patient id that does not exist answers the same as another patient's.
    let res = app
        .request(Method::GET, &format!("/v1/patients/{}", Uuid::now_v7()), Some(&token))
        .send()
        .await
        .unwrap();
    assert_problem(res, 404, "not-found").await;
    let res = app
        .request(Method::PATCH, &format!("/v1/patients/{theirs}"), Some(&token))
        .header("if-match", "\"1\"")
        .json(&json!({"familyName": "X"}))
        .send()
        .await
        .unwrap();
    assert_problem(res, 404, "not-found").await;
}

/// One row per endpoint: which roles get in (any status but 401/403 from the access rule).
struct Row {
    method: Method,
    path: &'static str,
    allowed: &'static [Role],
}

/// Ids the paths of the matrix refer to.
struct Ids {
    patient: Uuid,
    booking: String,
    test: String,
    day: String,
}

async fn call(app: &TestApp, row: &Row, token: &str, ids: &Ids) -> u16 {
    let path = row
        .path
        .replace("{patientId}", &ids.patient.to_string())
        .replace("{bookingId}", &ids.booking)
        .replace("{testId}", &ids.test)
        .replace("{day}", &ids.day);
    // A stale If-Match keeps allowed calls from changing anything the next role relies on.
    let mut rb = app
        .request(row.method.clone(), &path, Some(token))
        .header("if-match", "\"999\"")
        .header("idempotency-key", Uuid::now_v7().to_string());
    rb = match (row.method.clone(), row.path) {
        (Method::POST, "/v1/patients") => rb.json(&json!({
            "givenName": "A", "familyName": "B", "birthDate": "2000-01-01", "sex": "other"
        })),
        (Method::POST, "/v1/test-types") | (Method::PUT, "/v1/test-types/CBC") => rb.json(&json!({"not": "valid"})),
        (Method::PATCH, _) => rb.json(&json!({"givenName": "C"})),
        (Method::POST, p) if p.ends_with("/bookings") => {
            rb.json(&json!({"slotStart": slot(&ids.day, "16:00"), "tests": ["CRP"]}))
        }
        (Method::PUT, _) => rb.json(&json!({"values": [{"analyte": "HGB", "value": 13, "unit": "g/dL"}],
                                              "performedAt": crate::helpers::performed_now()})),
        (Method::POST, p) if p.ends_with("/notes") => rb.json(&json!({"text": "note"})),
        (Method::POST, p) if p.ends_with("/review") => rb.json(&json!({"conclusion": "ok"})),
        (Method::POST, p) if p.ends_with("/release-hold") => rb.json(&json!({"reason": "ok"})),
        _ => rb,
    };
    rb.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn the_role_matrix_of_every_endpoint_holds() {
    use Role::*;
    const ALL: &[Role] = &[Patient, Lab, Doctor, Admin];
    let app = spawn_app().await;
    let patient = app.create_patient().await;
    let day = day(60);
    let booking = app.booked(patient, &slot(&day, "07:00"), &["CBC"]).await;
    app.check_in(patient, booking["id"].as_str().unwrap()).await;
    let ids = Ids {
        patient,
        booking: booking["id"].as_str().unwrap().to_owned(),
        test: booking["tests"][0]["id"].as_str().unwrap().to_owned(),
        day: day.clone(),
    };
    let test = "/v1/patients/{patientId}/bookings/{bookingId}/tests/{testId}";
    let res = app
        .request(Method::PUT, &format!("{}/result", test.replace("{patientId}", &patient.to_string()).replace("{bookingId}", &ids.booking).replace("{testId}", &ids.test)), Some(&app.staff(Lab)))
        .json(&json!({"values": [{"analyte": "HGB", "value": 13, "unit": "g/dL"}], "performedAt": crate::helpers::performed_now()}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);

    let rows = [
        Row {
            method: Method::GET,
            path: "/v1/test-types",
            allowed: ALL,
        },
        Row {
            method: Method::GET,
            path: "/v1/test-types/CBC",
            allowed: ALL,
        },
        Row {
            method: Method::GET,
            path: "/v1/test-types/CBC/versions/1",
            allowed: ALL,
        },
        Row {
            method: Method::POST,
            path: "/v1/test-types",
            allowed: &[Admin],
        },
        Row {
            method: Method::PUT,
            path: "/v1/test-types/CBC",
            allowed: &[Admin],
        },
        Row {
            method: Method::GET,
            path: "/v1/test-types/CBC/tests?from={day}&to={day}",
            allowed: &[Lab, Doctor, Admin],
        },
        Row {
            method: Method::POST,
            path: "/v1/patients",
            allowed: &[Lab, Admin],
        },
        Row {
            method: Method::GET,
            path: "/v1/patients?email=nobody@example.org",
            allowed: &[Lab, Admin],
        },
        Row {
            method: Method::GET,
            path: "/v1/patients/{patientId}",
            allowed: ALL,
        },
        Row {
            method: Method::PATCH,
            path: "/v1/patients/{patientId}",
            allowed: &[Patient, Lab, Admin],
        },
        Row {
            method: Method::GET,
            path: "/v1/patients/{patientId}/audit",
            allowed: &[Patient, Admin],
        },
        Row {
            method: Method::GET,
            path: "/v1/slots?date={day}",
            allowed: ALL,
        },
        Row {
            method: Method::GET,
            path: "/v1/sites",
            allowed: ALL,
        },
        Row {
            method: Method::POST,
            path: "/v1/sites",
            allowed: &[Admin],
        },
        Row {
            method: Method::GET,
            path: "/v1/sites/MAIN",
            allowed: ALL,
        },
        Row {
            method: Method::PUT,
            path: "/v1/sites/MAIN",
            allowed: &[Admin],
        },
        Row {
            method: Method::GET,
            path: "/v1/sites/MAIN/slots?date={day}",
            allowed: ALL,
        },
        Row {
            method: Method::GET,
            path: "/v1/sites/MAIN/days",
            allowed: &[Lab, Admin],
        },
        Row {
            method: Method::PUT,
            path: "/v1/sites/MAIN/days/{day}",
            allowed: &[Admin],
        },
        Row {
            method: Method::DELETE,
            path: "/v1/sites/MAIN/days/{day}",
            allowed: &[Admin],
        },
        Row {
            method: Method::POST,
            path: "/v1/sites/MAIN/holds",
            allowed: &[Patient, Lab, Admin],
        },
        Row {
            method: Method::DELETE,
            path: "/v1/sites/MAIN/holds/00000000-0000-0000-0000-000000000000",
            allowed: &[Patient, Lab, Admin],
        },
        Row {
            method: Method::GET,
            path: "/v1/schedule?date={day}",
            allowed: &[Lab, Doctor, Admin],
        },
        Row {
            method: Method::GET,
            path: "/v1/worklist",
            allowed: &[Doctor, Admin],
        },
        Row {
            method: Method::GET,
            path: "/v1/verification-queue",
            allowed: &[Lab, Admin],
        },
        Row {
            method: Method::GET,
            path: "/v1/patients/{patientId}/observations?loinc=718-7&from={day}&to={day}",
            allowed: ALL,
        },
        Row {
            method: Method::POST,
            path: "/v1/patients/{patientId}/bookings",
            allowed: &[Patient, Lab, Admin],
        },
        Row {
            method: Method::GET,
            path: "/v1/patients/{patientId}/bookings",
            allowed: ALL,
        },
        Row {
            method: Method::GET,
            path: "/v1/patients/{patientId}/bookings/{bookingId}",
            allowed: ALL,
        },
        Row {
            method: Method::GET,
            path: "/v1/patients/{patientId}/bookings/{bookingId}/fhir",
            allowed: ALL,
        },
        Row {
            method: Method::GET,
            path: "/v1/patients/{patientId}/bookings/{bookingId}/report.pdf",
            allowed: ALL,
        },
        Row {
            method: Method::POST,
            path: "/v1/patients/{patientId}/bookings/{bookingId}/cancel",
            allowed: &[Patient, Lab, Admin],
        },
        Row {
            method: Method::POST,
            path: "/v1/patients/{patientId}/bookings/{bookingId}/reschedule",
            allowed: &[Patient, Lab, Admin],
        },
        Row {
            method: Method::POST,
            path: "/v1/patients/{patientId}/bookings/{bookingId}/check-in",
            allowed: &[Lab, Admin],
        },
        Row {
            method: Method::POST,
            path: "/v1/patients/{patientId}/bookings/{bookingId}/no-show",
            allowed: &[Lab, Admin],
        },
        Row {
            method: Method::PUT,
            path: "/v1/patients/{patientId}/bookings/{bookingId}/tests/{testId}/result",
            allowed: &[Lab, Admin],
        },
        Row {
            method: Method::GET,
            path: "/v1/patients/{patientId}/bookings/{bookingId}/tests/{testId}/result",
            allowed: ALL,
        },
        Row {
            method: Method::GET,
            path: "/v1/patients/{patientId}/bookings/{bookingId}/tests/{testId}/result/history",
            allowed: ALL,
        },
        Row {
            method: Method::POST,
            path: "/v1/patients/{patientId}/bookings/{bookingId}/tests/{testId}/notes",
            allowed: &[Doctor],
        },
        Row {
            method: Method::POST,
            path: "/v1/patients/{patientId}/bookings/{bookingId}/tests/{testId}/review",
            allowed: &[Doctor],
        },
        Row {
            method: Method::POST,
            path: "/v1/patients/{patientId}/bookings/{bookingId}/tests/{testId}/result/verify",
            allowed: &[Lab, Admin],
        },
        Row {
            method: Method::POST,
            path: "/v1/patients/{patientId}/bookings/{bookingId}/tests/{testId}/release-hold",
            allowed: &[Doctor],
        },
        Row {
            method: Method::DELETE,
            path: "/v1/patients/{patientId}/bookings/{bookingId}/tests/{testId}/release-hold",
            allowed: &[Doctor],
        },
        Row {
            method: Method::GET,
            path: "/v1/events",
            allowed: &[Admin],
        },
        Row {
            method: Method::GET,
            path: "/v1/alerts",
            allowed: &[Doctor, Admin],
        },
        Row {
            method: Method::POST,
            path: "/v1/alerts/0194f3a2-7c1e-7d2a-9b1f-3c4d5e6f7a8b/ack",
            allowed: &[Doctor],
        },
        Row {
            method: Method::POST,
            path: "/v1/webhooks",
            allowed: &[Admin],
        },
        Row {
            method: Method::GET,
            path: "/v1/webhooks",
            allowed: &[Admin],
        },
        Row {
            method: Method::GET,
            path: "/v1/webhooks/0194f3a2-7c1e-7d2a-9b1f-3c4d5e6f7a8b",
            allowed: &[Admin],
        },
        Row {
            method: Method::PUT,
            path: "/v1/webhooks/0194f3a2-7c1e-7d2a-9b1f-3c4d5e6f7a8b",
            allowed: &[Admin],
        },
        Row {
            method: Method::DELETE,
            path: "/v1/webhooks/0194f3a2-7c1e-7d2a-9b1f-3c4d5e6f7a8b",
            allowed: &[Admin],
        },
        Row {
            method: Method::GET,
            path: "/v1/webhooks/0194f3a2-7c1e-7d2a-9b1f-3c4d5e6f7a8b/deliveries",
            allowed: &[Admin],
        },
        Row {
            method: Method::POST,
            path: "/v1/webhooks/0194f3a2-7c1e-7d2a-9b1f-3c4d5e6f7a8b/deliveries/0194f3a2-7c1e-7d2a-9b1f-3c4d5e6f0000/resend",
            allowed: &[Admin],
        },
        Row {
            method: Method::GET,
            path: "/v1/me",
            allowed: ALL,
        },
        // A medbook patient token names its patient: 409 `identity-linked`, past the role check.
        Row {
            method: Method::POST,
            path: "/v1/me/patient",
            allowed: &[Patient],
        },
        Row {
            method: Method::POST,
            path: "/v1/patients/{patientId}/identities",
            allowed: &[Lab, Admin],
        },
        Row {
            method: Method::GET,
            path: "/v1/patients/{patientId}/identities",
            allowed: &[Patient, Lab, Admin],
        },
        // Without `issuer` and `sub`: 422 past the role check.
        Row {
            method: Method::DELETE,
            path: "/v1/patients/{patientId}/identities",
            allowed: &[Lab, Admin],
        },
    ];
    let spec = medbook::api::openapi();
    let documented: usize = spec
        .paths
        .paths
        .values()
        .map(|item| {
            [&item.get, &item.put, &item.post, &item.patch, &item.delete]
                .iter()
                .filter(|op| op.is_some())
                .count()
        })
        .sum();
    // Two probes (/health/live, /health/ready) are public and outside the matrix.
    assert_eq!(
        rows.len() + 2,
        documented,
        "every documented operation has a row in the role matrix"
    );

    for row in &rows {
        for role in [Patient, Lab, Doctor, Admin] {
            let token = match role {
                Patient => app.token(Patient, &patient.to_string()),
                other => app.staff(other),
            };
            let status = call(&app, row, &token, &ids).await;
            let denied = matches!(status, 401 | 403);
            assert_eq!(
                !denied,
                row.allowed.contains(&role),
                "{role} {} {} -> {status}",
                row.method,
                row.path
            );
            if denied {
                assert_eq!(status, 403, "{role} {} {}", row.method, row.path);
            }
        }
        if row.path.contains("{patientId}") {
            // Another patient's token on this patient's URLs: hidden, whatever the role rule says.
            let stranger = app.token(Patient, &Uuid::now_v7().to_string());
            assert_eq!(
                call(&app, row, &stranger, &ids).await,
                404,
                "stranger {} {}",
                row.method,
                row.path
            );
        }
        let anonymous = app
            .request(
                row.method.clone(),
                &row.path
                    .replace("{patientId}", &patient.to_string())
                    .replace("{bookingId}", &ids.booking)
                    .replace("{testId}", &ids.test)
                    .replace("{day}", &day),
                None,
            )
            .send()
            .await
            .unwrap();
        let public = row.method == Method::GET
            && ((row.path.starts_with("/v1/test-types") && !row.path.contains("/tests?"))
                || row.path == "/v1/sites"
                || row.path == "/v1/sites/MAIN");
        assert_eq!(
            anonymous.status() == 401,
            !public,
            "anonymous {} {}",
            row.method,
            row.path
        );
    }
}
