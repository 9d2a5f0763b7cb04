//! Several replicas on one PostgreSQL database (always on the throwaway PostgreSQL cluster,
//! whatever `AJAR_TEST_DB` says: SQLite serves one machine): scheduler work is done exactly
//! once.

use crate::*;
use ajar_api::wire::{ActivityRecord, Grant, List};
use ajar_server::{AppState, scheduler};
use ajar_store::Store;
use ajar_testkit::TestApp;
use jiff::SignedDuration;
use std::collections::HashMap;

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_expire_a_thousand_grants_exactly_once() {
    // One principal holds the thousand grants.
    let app = TestApp::spawn_on_postgres(|s| s.with_live_grant_limit(10_000)).await;
    setup(&app).await;
    // A second replica on the same database and clock.
    let other = AppState::new(
        Store::open(app.database_url()).await.unwrap(),
        app.clock.clone(),
    )
    .with_live_grant_limit(10_000);
    let mut tasks = Vec::new();
    for i in 0..1000 {
        tasks.push(spawn_initiate(
            &app.admin,
            format!("10.{}.{}.1", i / 250, i % 250),
        ));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().status, 202);
    }
    let grants: List<Grant> = get_as(&app.admin, &format!("/api/v1{VM}/grants")).await;
    assert_eq!(grants.value.len(), 1000);

    // Every grant ends at the same instant; both replicas' schedulers race for them.
    app.advance(SignedDuration::from_hours(1));
    let (a, b) = tokio::join!(
        async {
            let mut n = 0;
            for _ in 0..5 {
                n += scheduler::run_due(&app.state).await.unwrap();
            }
            n
        },
        async {
            let mut n = 0;
            for _ in 0..5 {
                n += scheduler::run_due(&other).await.unwrap();
            }
            n
        }
    );
    assert_eq!(a + b, 1000, "each port closed once ({a} + {b})");
    let mut per_request: HashMap<String, usize> = HashMap::new();
    let mut next = Some("/api/v1/activity?action=ajar.jit/requests/expire&top=1000".to_owned());
    while let Some(path) = next {
        let page: List<ActivityRecord> = get_as(&app.admin, &path).await;
        for rec in page.value {
            *per_request
                .entry(rec.request_id.expect("requestId"))
                .or_default() += 1;
        }
        next = page.next_link;
    }
    assert_eq!(per_request.len(), 1000);
    assert!(
        per_request.values().all(|n| *n == 1),
        "one record per request"
    );
    let v = app.admin.verify_activity().await.unwrap();
    assert!(v.ok, "{v:?}");
    other.store.close().await;
}
