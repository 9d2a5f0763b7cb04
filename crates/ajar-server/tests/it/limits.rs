//! What one principal can make ajar spend: live grants per principal, and refusals in the
//! activity log.

use crate::*;
use ajar_api::wire::{AccessRequest, ActivityRecord, JitRequest, List};
use ajar_core::lifecycle::RequestState;
use ajar_testkit::TestApp;
use jiff::SignedDuration;
use reqwest::Method;
use serde_json::{Value, json};

fn port_22_from(source: &str) -> Value {
    json!({"number":22,"duration":"PT1H","allowedSourceAddressPrefix":source})
}

#[tokio::test]
async fn one_principal_holds_at_most_the_live_grant_limit() {
    let app = TestApp::spawn_with(|s| s.with_live_grant_limit(3)).await;
    setup(&app).await;
    let alice = app.user("alice", Some(("JitRequester", RG))).await;
    let bob = app.user("bob", Some(("JitRequester", RG))).await;
    for i in 1..=3 {
        let r = initiate(&alice, POLICY, port_22_from(&format!("10.0.0.{i}"))).await;
        assert_eq!(r.status, 202, "{:?}", r.body);
    }
    let r = initiate(&alice, POLICY, port_22_from("10.0.0.4")).await;
    assert_eq!(
        (r.status, code(&r)),
        (409, ErrorCode::Conflict),
        "{:?}",
        r.body
    );
    let message = error_of(&r).message;
    assert!(
        message.contains("at most 3") && message.contains("alice"),
        "{message}"
    );
    // Asking again for a grant one holds replaces it: the count stays.
    let r = initiate(&alice, POLICY, port_22_from("10.0.0.2")).await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    // Others are not limited by alice's grants; one request with several ports counts each.
    for source in ["10.0.1.1", "10.0.1.2"] {
        let r = initiate(&bob, POLICY, port_22_from(source)).await;
        assert_eq!(r.status, 202, "{:?}", r.body);
    }
    let r = call(
        &bob,
        Method::POST,
        &format!("/api/v1{POLICY}/initiate"),
        Some(
            json!({"virtualMachines":[{"id":VM,"ports":[port_22_from("10.0.1.3"),
            {"number":3389,"duration":"PT1H","allowedSourceAddressPrefix":"10.0.0.9"}]}]}),
        ),
    )
    .await;
    assert_eq!(r.status, 409, "{:?}", r.body);
    // Ended grants no longer count.
    app.advance(SignedDuration::from_mins(61));
    app.tick().await;
    let r = initiate(&alice, POLICY, port_22_from("10.0.0.4")).await;
    assert_eq!(r.status, 202, "{:?}", r.body);
}

#[tokio::test]
async fn an_approved_network_request_over_the_limit_fails_with_the_reason() {
    let app = TestApp::spawn_with(|s| s.with_live_grant_limit(1)).await;
    setup(&app).await;
    require_approval(&app, json!([{"id":"approver","type":"user"}])).await;
    let alice = app.user("alice", Some(("JitRequester", RG))).await;
    let approver = app.user("approver", Some(("Approver", RG))).await;
    let mut pending = Vec::new();
    for source in ["10.0.0.1", "10.0.0.2"] {
        let r = initiate(&alice, POLICY, port_22_from(source)).await;
        assert_eq!(r.status, 202, "{:?}", r.body);
        pending.push(approval_of(&r));
    }
    let mut states = Vec::new();
    for id in &pending {
        let r = call(
            &approver,
            Method::POST,
            &format!("/api/v1{id}/approve"),
            Some(json!({"reason":"ok"})),
        )
        .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let req = r.json::<JitRequest>().properties;
        states.push((req.jit_request_state, req.failure));
    }
    assert_eq!(states[0].0, RequestState::Active);
    assert_eq!(states[1].0, RequestState::Failed);
    assert!(
        states[1]
            .1
            .as_deref()
            .is_some_and(|f| f.contains("at most 1")),
        "{states:?}"
    );
}

/// The approval request's id in the answer `r` to an initiate.
fn approval_of(r: &RawResponse) -> String {
    r.json::<AccessRequest>()
        .approval_request_id
        .expect("approvalRequestId")
}

async fn records_of(app: &TestApp, principal: &str) -> Vec<ActivityRecord> {
    let r = call(
        &app.admin,
        Method::GET,
        &format!("/api/v1/activity?principal={principal}"),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.json::<List<ActivityRecord>>().value
}

#[tokio::test]
async fn refusals_are_kept_as_evidence_at_a_bounded_cost() {
    let app = TestApp::spawn().await;
    setup(&app).await;
    let eve = app.user("eve", None).await;
    // The same refusal over and over, then many different ones.
    for _ in 0..50 {
        let r = call(&eve, Method::GET, &format!("/api/v1{VM}"), None).await;
        assert_eq!(r.status, 403);
    }
    for i in 0..30 {
        let r = call(
            &eve,
            Method::GET,
            &format!("/api/v1{RG2}/machines/m{i}"),
            None,
        )
        .await;
        assert_eq!(r.status, 403);
    }
    let records = records_of(&app, "eve").await;
    let one_by_one = records
        .iter()
        .filter(|a| a.action == "ajar.authorization/denied")
        .count();
    assert_eq!(one_by_one, 10, "{records:?}");

    // When the window ends, what was counted is recorded per resource, nothing lost.
    app.advance(SignedDuration::from_secs(61));
    app.tick().await;
    let records = records_of(&app, "eve").await;
    let counted: u64 = records
        .iter()
        .filter(|a| a.action == "ajar.authorization/deniedRepeatedly")
        .map(|a| {
            assert_eq!(a.result, "Denied");
            a.details["count"].as_u64().unwrap()
        })
        .sum();
    assert_eq!(counted, 80 - 10);
    let at_vm = records
        .iter()
        .find(|a| a.action == "ajar.authorization/deniedRepeatedly" && a.resource_id == VM)
        .expect("the repeats on vm1 are counted at vm1");
    assert_eq!(at_vm.details["count"], 49);
    // A new window records again.
    let r = call(&eve, Method::GET, &format!("/api/v1{VM}"), None).await;
    assert_eq!(r.status, 403);
    let records = records_of(&app, "eve").await;
    assert_eq!(
        records
            .iter()
            .filter(|a| a.action == "ajar.authorization/denied")
            .count(),
        11
    );
}

#[tokio::test]
async fn one_principal_has_at_most_fifty_requests_awaiting_a_decision() {
    let app = TestApp::spawn().await;
    setup(&app).await;
    require_approval(&app, json!([{"id":"approver","type":"user"}])).await;
    let alice = app.user("alice", Some(("JitRequester", RG))).await;
    let mut first = None;
    for i in 0..50 {
        let r = initiate(
            &alice,
            POLICY,
            port_22_from(&format!("10.0.{}.{}", i / 200, i % 200)),
        )
        .await;
        assert_eq!(r.status, 202, "{:?}", r.body);
        first.get_or_insert(approval_of(&r));
    }
    let r = initiate(&alice, POLICY, port_22_from("10.0.9.9")).await;
    assert_eq!(
        (r.status, code(&r)),
        (409, ErrorCode::Conflict),
        "{:?}",
        r.body
    );
    assert!(
        error_of(&r).message.contains("awaiting a decision"),
        "{:?}",
        r.body
    );
    // Another principal is not held up; a decided request makes room.
    let bob = app.user("bob", Some(("JitRequester", RG))).await;
    assert_eq!(
        initiate(&bob, POLICY, port_22_from("10.0.9.9"))
            .await
            .status,
        202
    );
    let first = first.unwrap();
    let r = call(
        &alice,
        Method::POST,
        &format!("/api/v1{first}/cancel"),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        initiate(&alice, POLICY, port_22_from("10.0.9.9"))
            .await
            .status,
        202
    );
}
