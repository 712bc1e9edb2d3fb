//! `tavana demo-data`: a deterministic demo a front-end developer can start from.

use serde_json::Value;

use crate::backend_tests;
use crate::helpers::TestApp;

backend_tests!(demo_data_fills_an_empty_registry_the_same_way_each_time);

async fn load(
    app: &TestApp,
    households: usize,
) -> Result<tavana_persistence::demo::DemoSummary, tavana_persistence::StoreError> {
    let db = app.db.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = db.get()?;
        tavana_persistence::demo::load(&mut conn, households, 1398, false)
    })
    .await
    .expect("joined")
}

async fn demo_data_fills_an_empty_registry_the_same_way_each_time(app: TestApp) {
    let summary = load(&app, 120).await.expect("loads");
    assert_eq!(summary.neighbourhoods, 15);
    assert_eq!(summary.households, 120);
    assert!(summary.persons >= 120 * 2, "{summary:?}");
    assert!(summary.enrolments > 0);

    // What the API shows adds up to the summary.
    let mut persons = 0;
    let mut national_ids = Vec::new();
    let mut path = "/api/v1/persons?limit=200".to_owned();
    loop {
        let page: Value = app.get(&path).await.json().await.expect("page");
        for person in page["items"].as_array().expect("items") {
            persons += 1;
            national_ids.push(person["national_id"].as_str().expect("id").to_owned());
            let id = person["national_id"].as_str().expect("id");
            assert!(
                tavana_domain::national_id::NationalId::parse("national_id", id).is_ok(),
                "{id}"
            );
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/persons?limit=200&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(persons, summary.persons);
    let heads: Value = app
        .get("/api/v1/persons?woman_head=true&limit=200")
        .await
        .json()
        .await
        .expect("page");
    assert!(
        !heads["items"].as_array().expect("items").is_empty(),
        "women heads of household are there"
    );
    let enrolled: Value = app
        .get("/api/v1/enrolments?state=identified&limit=200")
        .await
        .json()
        .await
        .expect("page");
    assert!(enrolled["items"].as_array().is_some());

    // A second load into the same database is refused; the audit log has one entry for the load.
    assert!(load(&app, 5).await.is_err());
    let audit: Value = app
        .get("/api/v1/audit?action=demo_data.load")
        .await
        .json()
        .await
        .expect("audit");
    assert_eq!(audit["items"].as_array().map(Vec::len), Some(1));

    // The same seed on another database gives the same people.
    let other = TestApp::spawn(crate::helpers::Backend::Sqlite)
        .await
        .expect("sqlite");
    let again = load(&other, 120).await.expect("loads");
    assert_eq!(again, summary);
    let page: Value = other
        .get("/api/v1/persons?limit=5")
        .await
        .json()
        .await
        .expect("page");
    let first: Vec<&str> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|p| p["national_id"].as_str())
        .collect();
    assert_eq!(
        first,
        national_ids
            .iter()
            .take(5)
            .map(String::as_str)
            .collect::<Vec<_>>()
    );
}
