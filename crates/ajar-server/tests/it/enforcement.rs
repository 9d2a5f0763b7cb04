//! Requests on machines no live agent guards: refused with the fix named, unless the server
//! accepts unenforced machines.

use crate::*;
use ajar_api::wire::{AccessRequest, ActivityRecord, List, Machine};
use ajar_testkit::TestApp;
use jiff::SignedDuration;
use reqwest::Method;
use serde_json::json;

/// A server that refuses requests on machines no live agent guards (the default outside tests),
/// with vm1 and its policy `default` but no agent.
async fn enforcing() -> TestApp {
    let app = TestApp::spawn_with(|s| s.with_accept_unenforced(false)).await;
    let r = call(
        &app.admin,
        Method::PUT,
        &format!("/api/v1{VM}"),
        Some(machine_body("linux")),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let r = call(
        &app.admin,
        Method::PUT,
        &format!("/api/v1{POLICY}"),
        Some(policy_body(VM)),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    app
}

fn port22() -> serde_json::Value {
    json!({"number":22,"duration":"PT1H","allowedSourceAddressPrefix":"203.0.113.7"})
}

async fn activity_count(app: &TestApp) -> usize {
    get_as::<List<ActivityRecord>>(&app.admin, "/api/v1/activity?top=1000")
        .await
        .value
        .len()
}

async fn requests_on_policy(app: &TestApp) -> usize {
    get_as::<List<AccessRequest>>(&app.admin, &format!("/api/v1{POLICY}/requests"))
        .await
        .value
        .len()
}

#[tokio::test]
async fn a_request_on_a_machine_no_agent_guards_is_refused_naming_the_fix() {
    let app = enforcing().await;
    let before = activity_count(&app).await;

    let r = initiate(&app.admin, POLICY, port22()).await;
    assert_eq!(r.status, 409, "{:?}", r.body);
    assert_eq!(code(&r), ErrorCode::Conflict);
    assert_eq!(target(&r), VM);
    let message = error_of(&r).message;
    assert!(
        message.contains(&format!("no live agent guards machine {VM}"))
            && message.contains(&format!("ajar agent add NAME --machine {VM}"))
            && message.contains("ajar agent --server URL --token TOKEN"),
        "the refusal names the machine and the fix: {message}"
    );
    // The machine says the same.
    let m: Machine = get_as(&app.admin, &format!("/api/v1{VM}")).await;
    let reason = m.properties.unsupported_reason.unwrap_or_default();
    assert!(
        reason.starts_with("no live agent guards this machine: register one with `ajar agent add")
            && reason.contains("ajar agent --server URL --token TOKEN"),
        "{reason}"
    );

    // An approval-gated policy refuses the same way, before anything waits for approval.
    require_approval(&app, json!([{"id":"alice","type":"user"}])).await;
    let after_policy = activity_count(&app).await;
    let r = initiate(&app.admin, POLICY, port22()).await;
    assert_eq!((r.status, target(&r)), (409, VM.to_owned()), "{:?}", r.body);
    assert!(inbox(&app.admin).await.is_empty());
    let history: List<serde_json::Value> = get_as(&app.admin, "/api/v1/history").await;
    assert!(history.value.is_empty(), "{:?}", history.value);

    // Nothing was stored or recorded but the policy change.
    assert_eq!(requests_on_policy(&app).await, 0);
    assert!(app.admin.grants(VM).await.unwrap().value.is_empty());
    assert_eq!(activity_count(&app).await, after_policy);
    assert_eq!(after_policy, before + 1);
}

#[tokio::test]
async fn a_request_is_accepted_while_a_live_agent_guards_the_machine() {
    let app = enforcing().await;
    let (agent, _) = app.agent("edge-1", &[VM], None).await;
    let r = initiate(&app.admin, POLICY, port22()).await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    assert_eq!(requests_on_policy(&app).await, 1);

    // The agent falls silent: refused again, naming it.
    app.advance(SignedDuration::from_mins(2));
    let r = initiate(&app.admin, POLICY, port22()).await;
    assert_eq!(r.status, 409, "{:?}", r.body);
    let message = error_of(&r).message;
    assert!(
        message.contains("its agent edge-1 has not been heard from"),
        "{message}"
    );
    // It polls again: accepted.
    call_ok(&agent, Method::GET, "/api/v1/agent/desiredState", None).await;
    let r = initiate(&app.admin, POLICY, port22()).await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    assert_eq!(requests_on_policy(&app).await, 2);
}

#[tokio::test]
async fn an_approval_that_would_open_on_an_unguarded_machine_is_refused_and_changes_nothing() {
    let app = enforcing().await;
    require_approval(&app, json!([{"id":"alice","type":"user"}])).await;
    let alice = app.user("alice", Some(("Approver", RG))).await;
    let (agent, _) = app.agent("edge-1", &[VM], None).await;
    let r = initiate(&app.admin, POLICY, port22()).await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    let id = r.json::<AccessRequest>().approval_request_id.unwrap();
    let name = id.rsplit('/').next().unwrap().to_owned();

    app.advance(SignedDuration::from_mins(2));
    let r = decide(&alice, &name, "approve").await;
    assert_eq!(r.status, 409, "{:?}", r.body);
    assert_eq!(target(&r), VM);
    let r = call(&app.admin, Method::GET, &req_path(&name), None).await;
    assert_eq!(state_of(&r), RequestState::Pending);

    call_ok(&agent, Method::GET, "/api/v1/agent/desiredState", None).await;
    let r = decide(&alice, &name, "approve").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(state_of(&r), RequestState::Active);
    assert_eq!(app.admin.grants(VM).await.unwrap().value.len(), 1);
}

#[tokio::test]
async fn the_server_option_accepts_machines_no_agent_guards() {
    let app = TestApp::spawn_with(|s| s.with_accept_unenforced(true)).await;
    let r = call(
        &app.admin,
        Method::PUT,
        &format!("/api/v1{VM}"),
        Some(machine_body("linux")),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let r = call(
        &app.admin,
        Method::PUT,
        &format!("/api/v1{POLICY}"),
        Some(policy_body(VM)),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let r = initiate(&app.admin, POLICY, port22()).await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    assert_eq!(app.admin.grants(VM).await.unwrap().value.len(), 1);
}
