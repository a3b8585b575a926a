//! Critical-value alerts: raised in the verification's transaction, listed for doctors until one
//! acknowledges, the acknowledgement audited; and `result.critical` reaches a webhook at once.

use std::time::Duration;

use medbook::auth::Role;
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    helpers::{spawn_app_with, usage},
    results::{booked_cbc, put, values},
};

#[tokio::test]
async fn a_critical_value_is_an_alert_until_a_doctor_acknowledges_it_and_the_acknowledgement_is_audited() {
    let app = spawn_app_with(&[
        ("MEDBOOK_RELAY", "on"),
        ("MEDBOOK_RELAY_POLL_MS", "50"),
        ("MEDBOOK_EVENT_SETTLE_MS", "0"),
    ])
    .await;
    let name = format!("critical-{}", Uuid::now_v7());
    let res = app
        .request(Method::POST, "/v1/webhooks", Some(&app.staff(Role::Admin)))
        .json(&json!({"url": format!("{}/hooks/{name}", crate::webhooks::receiver()), "types": ["result.critical"]}))
        .send()
        .await
        .unwrap();
    let secret = res.json::<Value>().await.unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    crate::webhooks::configure(&name, &secret, json!({"mode": "ok"})).await;

    let doctor = app.staff(Role::Doctor);
    let (patient, booking, test, base) = booked_cbc(&app, "08:00").await;
    // A normal result raises nothing.
    let (_, _, _, calm) = booked_cbc(&app, "08:15").await;
    let normal = json!({"values": [{"analyte": "HGB", "value": 13, "unit": "g/dL"}], "performedAt": crate::helpers::performed_now()});
    assert_eq!(put(&app, &calm, &normal, None).await.status(), 201);
    assert_eq!(app.verify(&calm, 1).await.status(), 200);
    // Recorded is not enough: the alert comes with the verification (four eyes).
    assert_eq!(put(&app, &base, &values(6.0), None).await.status(), 201);
    let list: Value = app.get("/v1/alerts", &doctor).await.json().await.unwrap();
    assert_eq!(list["items"], json!([]), "no alert before verification");
    assert_eq!(app.verify(&base, 1).await.status(), 200);
    let res = app.get("/v1/alerts", &doctor).await;
    assert_eq!(usage(&res).0, 1, "one Query");
    let list: Value = res.json().await.unwrap();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    let alert = &items[0];
    assert_eq!(alert["patientId"], json!(patient.to_string()));
    assert_eq!(
        (alert["bookingId"].as_str(), alert["testId"].as_str()),
        (Some(booking.as_str()), Some(test.as_str()))
    );
    let id = alert["id"].as_str().unwrap().to_owned();

    // Delivered at once to the webhook, under the alert's id.
    let got = crate::webhooks::wait_received(&name, Duration::from_secs(30), |r| !r.is_empty()).await;
    assert_eq!(got[0]["type"], "result.critical");
    assert_eq!(got[0]["webhookId"], json!(id));

    for role in [Role::Lab, Role::Patient] {
        let token = match role {
            Role::Patient => app.token(Role::Patient, &patient.to_string()),
            other => app.staff(other),
        };
        assert_eq!(app.get("/v1/alerts", &token).await.status(), 403, "{role}");
    }
    let ack = |token: String| {
        let app = &app;
        let id = id.clone();
        async move {
            app.request(Method::POST, &format!("/v1/alerts/{id}/ack"), Some(&token))
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(ack(app.staff(Role::Admin)).await.status(), 403, "a doctor acknowledges");
    // Two doctors at once: one acknowledgement.
    let (a, b) = tokio::join!(
        ack(app.token(Role::Doctor, "dr-a")),
        ack(app.token(Role::Doctor, "dr-b"))
    );
    let mut statuses = [a.status().as_u16(), b.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 404]);
    let won = if a.status() == 200 { &a } else { &b };
    assert_eq!(usage(won).0, 2, "GetItem the open alert, then one transaction");
    let list: Value = app.get("/v1/alerts", &doctor).await.json().await.unwrap();
    assert_eq!(list["items"], json!([]), "acknowledged: off the list");
    // The acknowledgement stays with the patient's record, and in the audit trail.
    let kept = app
        .store
        .acknowledged_alert(patient, id.parse().unwrap())
        .await
        .unwrap()
        .expect("kept");
    assert!(
        ["doctor:dr-a", "doctor:dr-b", "dr-a", "dr-b"]
            .iter()
            .any(|who| kept.acknowledged_by.as_deref().is_some_and(|b| b.ends_with(who))),
        "{kept:?}"
    );
    let trail: Value = app
        .get(&format!("/v1/patients/{patient}/audit"), &app.staff(Role::Admin))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        trail["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "POST /v1/alerts/{alertId}/ack" && e["outcome"] == 200),
        "{trail}"
    );
    let feed: Value = app
        .get("/v1/events?types=alert.acknowledged", &app.staff(Role::Admin))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(feed["items"].as_array().unwrap().len(), 1, "{feed}");
    assert_eq!(feed["items"][0]["data"]["alertId"], json!(id));
}
