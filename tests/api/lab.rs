//! The lab's views: slots, schedule, tests by type.

use medbook::auth::Role;
use serde_json::Value;

use crate::helpers::{assert_problem, day, slot, spawn_app, usage};

#[tokio::test]
async fn the_schedule_lists_a_days_bookings_in_slot_order_in_one_query() {
    let app = spawn_app().await;
    let date = day(45);
    for t in ["15:00", "07:00", "11:30"] {
        let p = app.create_patient().await;
        app.booked(p, &slot(&date, t), &["UA"]).await;
    }
    let p = app.create_patient().await;
    app.booked(p, &slot(&day(46), "07:00"), &["UA"]).await;
    let res = app
        .get(&format!("/v1/schedule?date={date}"), &app.staff(Role::Doctor))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(usage(&res).0, 1);
    let page: Value = res.json().await.unwrap();
    let starts: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["slotStart"].as_str().unwrap())
        .collect();
    assert_eq!(
        starts,
        [slot(&date, "07:00"), slot(&date, "11:30"), slot(&date, "15:00")]
    );
    assert_problem(app.get("/v1/schedule", &app.staff(Role::Lab)).await, 422, "validation").await;
    assert_problem(
        app.get("/v1/schedule?date=2026-02-30", &app.staff(Role::Lab)).await,
        422,
        "validation",
    )
    .await;
}

#[tokio::test]
async fn tests_by_type_read_month_partitions_page_by_page() {
    let app = spawn_app().await;
    let (d1, d2, d3) = (day(35), day(70), day(100));
    for (d, t) in [(&d1, "07:00"), (&d1, "08:00"), (&d2, "09:00"), (&d3, "10:00")] {
        let p = app.create_patient().await;
        app.booked(p, &slot(d, t), &["VITD", "CRP"]).await;
    }
    let lab = app.staff(Role::Lab);
    let base = format!("/v1/test-types/VITD/tests?from={d1}&to={d3}&limit=10");
    let mut seen = Vec::new();
    let mut url = base.clone();
    let mut pages = 0;
    loop {
        let res = app.get(&url, &lab).await;
        assert_eq!(res.status(), 200);
        assert_eq!(usage(&res).0, 1, "one Query per page");
        let page: Value = res.json().await.unwrap();
        pages += 1;
        for t in page["items"].as_array().unwrap() {
            assert_eq!(t["testTypeCode"], "VITD");
            seen.push(t["slotStart"].as_str().unwrap().to_owned());
        }
        match page["nextCursor"].as_str() {
            Some(c) => url = format!("{base}&cursor={c}"),
            None => break,
        }
        assert!(pages < 10, "terminates");
    }
    assert_eq!(
        seen,
        [
            slot(&d1, "07:00"),
            slot(&d1, "08:00"),
            slot(&d2, "09:00"),
            slot(&d3, "10:00")
        ]
    );
    assert!(pages >= 3, "at least one page per month: {pages}");
    let narrow: Value = app
        .get(&format!("/v1/test-types/VITD/tests?from={d2}&to={d2}"), &lab)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(narrow["items"].as_array().unwrap().len(), 1);
    assert_problem(
        app.get(&format!("/v1/test-types/VITD/tests?from={d2}&to={d1}"), &lab)
            .await,
        422,
        "validation",
    )
    .await;
}

#[tokio::test]
async fn slots_show_capacity_and_free_places_for_any_authenticated_caller() {
    let app = spawn_app().await;
    let date = day(50);
    let p = app.create_patient().await;
    app.booked(p, &slot(&date, "12:15"), &["FERR"]).await;
    let me = app.token(Role::Patient, &p.to_string());
    let res = app.get(&format!("/v1/slots?date={date}"), &me).await;
    assert_eq!(res.status(), 200);
    let slots: Vec<Value> = res.json().await.unwrap();
    let taken = slots.iter().find(|s| s["start"] == slot(&date, "12:15")).unwrap();
    assert_eq!(
        (
            taken["capacity"].as_u64(),
            taken["booked"].as_u64(),
            taken["available"].as_u64()
        ),
        (Some(4), Some(1), Some(3))
    );
    let res = reqwest::get(format!("{}/v1/slots?date={date}", app.base))
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}
