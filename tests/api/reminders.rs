//! Booking reminders: a `booking.reminder` event `MEDBOOK_REMINDER_HOURS` before the slot, fired once, from
//! the due-time index the booking's own transactions keep (a cancellation takes it back, a reschedule
//! moves it).

use std::time::{Duration, Instant};

use medbook::auth::Role;
use reqwest::Method;
use serde_json::Value;
use time::OffsetDateTime;

use crate::helpers::{TestApp, day, slot, spawn_app_with};

async fn reminders(app: &TestApp) -> Vec<Value> {
    let feed: Value = app
        .get("/v1/events?types=booking.reminder&limit=100", &app.staff(Role::Admin))
        .await
        .json()
        .await
        .unwrap();
    feed["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_reminder_fires_once_before_the_slot_and_a_cancellation_or_reschedule_takes_it_along() {
    // Tomorrow 12:00 UTC; reminders set to fire 3 s from now for it.
    let at = slot(&day(1), "12:00");
    let start = OffsetDateTime::parse(&at, &time::format_description::well_known::Rfc3339).unwrap();
    let hours = ((start - OffsetDateTime::now_utc()).as_seconds_f64() - 3.0) / 3600.0;
    let hours = format!("{hours:.6}");
    let app = spawn_app_with(&[
        ("MEDBOOK_RELAY", "on"),
        ("MEDBOOK_RELAY_POLL_MS", "100"),
        ("MEDBOOK_EVENT_SETTLE_MS", "0"),
        ("MEDBOOK_REMINDER_HOURS", &hours),
    ])
    .await;
    let admin = app.staff(Role::Admin);
    let (kept, cancelled, moved) = (
        app.create_patient().await,
        app.create_patient().await,
        app.create_patient().await,
    );
    let kept_booking = app.booked(kept, &at, &["CBC"]).await;
    let cancelled_booking = app.booked(cancelled, &at, &["CBC"]).await;
    let moved_booking = app.booked(moved, &at, &["CBC"]).await;
    // Checked in early (its reminder item stays: only the firing's check on the booking stops it).
    let early = app.create_patient().await;
    let early_booking = app.booked(early, &at, &["CBC"]).await;
    app.check_in(early, early_booking["id"].as_str().unwrap()).await;
    let id = |b: &Value| b["id"].as_str().unwrap().to_owned();
    let res = app
        .request(
            Method::POST,
            &format!("/v1/patients/{cancelled}/bookings/{}/cancel", id(&cancelled_booking)),
            Some(&admin),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let later = slot(&day(1), "12:15");
    let res = app
        .request(
            Method::POST,
            &format!("/v1/patients/{moved}/bookings/{}/reschedule", id(&moved_booking)),
            Some(&admin),
        )
        .header("if-match", "\"1\"")
        .json(&serde_json::json!({"slotStart": later}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    assert!(reminders(&app).await.is_empty(), "not before it is due");

    let started = Instant::now();
    while reminders(&app).await.is_empty() {
        assert!(started.elapsed() < Duration::from_secs(30), "the reminder fires");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Give a second pass (and a cancelled or moved reminder) the time to fire, wrongly.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let fired = reminders(&app).await;
    assert_eq!(
        fired.len(),
        1,
        "once, and only for the booking still booked in that slot: {fired:#?}"
    );
    assert_eq!(fired[0]["bookingId"].as_str(), Some(id(&kept_booking).as_str()));
    assert_eq!(fired[0]["data"]["slotStart"], at.as_str());
    // The moved booking's reminder waits at its new time: 15 minutes later.
    let due_later = app
        .store
        .due_reminders(&later_hour(&later, &hours), "9999")
        .await
        .unwrap();
    assert!(
        due_later
            .iter()
            .any(|r| r.booking_id.to_string() == id(&moved_booking) && r.slot_start == later),
        "{due_later:?}"
    );
}

/// The UTC hour (`YYYY-MM-DDTHH`) a reminder `hours` before `slot` is due in.
fn later_hour(slot: &str, hours: &str) -> String {
    let at = OffsetDateTime::parse(slot, &time::format_description::well_known::Rfc3339).unwrap()
        - time::Duration::seconds_f64(hours.parse::<f64>().unwrap() * 3600.0);
    let text = at.format(&time::format_description::well_known::Rfc3339).unwrap();
    text[..13].to_owned()
}
