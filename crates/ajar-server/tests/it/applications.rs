//! Managed applications: the JIT policy fixed at creation, approval settings, eligible roles.

use crate::*;
use ajar_api::wire::{Application, EligibleRole, JitAccessPolicy, List};
use ajar_testkit::TestApp;
use reqwest::Method;
use serde_json::json;

const APP: &str = "/subscriptions/s1/resourceGroups/rg1/applications/crm";

async fn put(app: &TestApp, body: serde_json::Value) -> RawResponse {
    call(
        &app.admin,
        Method::PUT,
        &format!("/api/v1{APP}"),
        Some(body),
    )
    .await
}

/// The JIT access policy of the application in `r`.
fn policy_of(r: &RawResponse) -> JitAccessPolicy {
    r.json::<Application>()
        .properties
        .jit_access_policy
        .expect("jitAccessPolicy")
}

#[tokio::test]
async fn jit_is_on_by_default_with_the_vendors_defaults() {
    let app = TestApp::spawn().await;
    let r = put(&app, json!({"properties":{"publisherPrincipals":["acme"]}})).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    // The defaults, in the vendor's field names and nothing else.
    assert_eq!(
        r.body["properties"]["jitAccessPolicy"],
        json!({"jitAccessEnabled":true,"jitApprovalMode":"AutoApprove","jitApprovers":[],
               "maximumJitAccessDuration":"PT8H","jitApprovalThreshold":1})
    );
    let mut got = call(&app.admin, Method::GET, &format!("/api/v1{APP}"), None).await;
    // Reads add request figures, in their wire shape; no request was made yet.
    assert_eq!(
        got.body["requestFigures"],
        json!({"approvedRequestsLast7Days":0,"lastAccessAt":null,"lastUser":null})
    );
    got.body.as_object_mut().unwrap().remove("requestFigures");
    assert_eq!(got.body, r.body);
    let list = call(
        &app.admin,
        Method::GET,
        "/api/v1/subscriptions/s1/applications",
        None,
    )
    .await;
    assert_eq!(list.json::<List<Application>>().value.len(), 1);
}

#[tokio::test]
async fn policies_are_validated() {
    let app = TestApp::spawn().await;
    let p = "properties.jitAccessPolicy";
    let cases = [
        (
            json!({"jitApprovalMode":"ManualApprove"}),
            format!("{p}.jitApprovers"),
        ),
        (
            json!({"jitApprovalMode":"Sometimes"}),
            format!("{p}.jitApprovalMode"),
        ),
        (
            json!({"jitApprovalMode":"ManualApprove","jitApprovers":[{"id":"bob","type":"robot"}]}),
            format!("{p}.jitApprovers[0].type"),
        ),
        (
            json!({"jitApprovalMode":"ManualApprove","jitApprovers":[{"id":"bob","type":"user"}],"jitApprovalThreshold":2}),
            format!("{p}.jitApprovalThreshold"),
        ),
        (
            json!({"jitApprovalMode":"ManualApprove","jitApprovers":[{"id":"bob","type":"user"},{"id":"bob","type":"user"}]}),
            format!("{p}.jitApprovers[1].id"),
        ),
        (
            json!({"maximumJitAccessDuration":"PT25H"}),
            format!("{p}.maximumJitAccessDuration"),
        ),
        (
            json!({"jitApprovalThreshold":0}),
            format!("{p}.jitApprovalThreshold"),
        ),
        (json!({"approvers":[]}), format!("{p}.approvers")),
    ];
    for (policy, t) in cases {
        let r = put(&app, json!({"properties":{"jitAccessPolicy":policy}})).await;
        assert_eq!(
            (r.status, target(&r).as_str()),
            (400, t.as_str()),
            "{policy}: {:?}",
            r.body
        );
    }
    assert_eq!(
        call(&app.admin, Method::GET, &format!("/api/v1{APP}"), None)
            .await
            .status,
        404,
        "nothing stored"
    );
    // A group approver can carry any threshold.
    let r = put(&app, json!({"properties":{"jitAccessPolicy":{"jitApprovalMode":"ManualApprove",
        "jitApprovers":[{"id":"bob","type":"user","displayName":"Bob"},{"id":"secops","type":"group"}],"jitApprovalThreshold":3}}})).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(
        policy_of(&r).jit_approvers[0].display_name.as_deref(),
        Some("Bob")
    );
}

#[tokio::test]
async fn jit_is_fixed_at_creation_but_approval_settings_are_not() {
    let app = TestApp::spawn().await;
    let r = put(
        &app,
        json!({"properties":{"jitAccessPolicy":{"jitAccessEnabled":false}}}),
    )
    .await;
    assert_eq!(r.status, 201);
    let r = put(
        &app,
        json!({"properties":{"jitAccessPolicy":{"jitAccessEnabled":true}}}),
    )
    .await;
    assert_eq!(
        (r.status, code(&r), target(&r).as_str()),
        (
            409,
            ErrorCode::Conflict,
            "properties.jitAccessPolicy.jitAccessEnabled"
        )
    );
    assert!(error_of(&r).message.contains("created"));

    let other = "/subscriptions/s1/resourceGroups/rg1/applications/erp";
    call_ok(
        &app.admin,
        Method::PUT,
        &format!("/api/v1{other}"),
        Some(json!({"properties":{}})),
    )
    .await;
    let r = call(&app.admin, Method::PUT, &format!("/api/v1{other}"), Some(json!({"properties":{"jitAccessPolicy":{
        "jitApprovalMode":"ManualApprove","jitApprovers":[{"id":"bob","type":"user"}],"maximumJitAccessDuration":"PT2H"}}}))).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        policy_of(&r).jit_approval_mode.as_deref(),
        Some("ManualApprove")
    );
    let r = call(
        &app.admin,
        Method::PUT,
        &format!("/api/v1{other}"),
        Some(json!({"properties":{"jitAccessPolicy":{"jitAccessEnabled":false}}})),
    )
    .await;
    assert_eq!(r.status, 409, "JIT cannot be turned off either");
}

#[tokio::test]
async fn eligible_roles_go_to_users_or_groups() {
    let app = TestApp::spawn().await;
    put(&app, json!({"properties":{}})).await;
    declare_roles(&app, APP).await;
    let role = |id: &str| format!("/api/v1{APP}/eligibleRoles/{id}");
    let r = call(
        &app.admin,
        Method::PUT,
        &role("alice"),
        Some(json!({"principal":"alice","roleDefinition":"Contributor"})),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let r = call(
        &app.admin,
        Method::PUT,
        &role("ops"),
        Some(json!({"principal":"group:ops","roleDefinition":"Owner"})),
    )
    .await;
    assert_eq!(r.status, 201);
    let r = call(
        &app.admin,
        Method::PUT,
        &role("bad"),
        Some(json!({"principal":"alice","roleDefinition":"no spaces"})),
    )
    .await;
    assert_eq!((r.status, target(&r).as_str()), (400, "roleDefinition"));
    let list = call(
        &app.admin,
        Method::GET,
        &format!("/api/v1{APP}/eligibleRoles"),
        None,
    )
    .await;
    let roles = list.json::<List<EligibleRole>>().value;
    let principals: Vec<&str> = roles.iter().map(|e| e.principal.as_str()).collect();
    assert_eq!(principals, vec!["alice", "group:ops"]);
    assert_eq!(
        call(&app.admin, Method::DELETE, &role("alice"), None)
            .await
            .status,
        204
    );
    assert_eq!(
        call(&app.admin, Method::GET, &role("alice"), None)
            .await
            .status,
        404
    );

    let ghost = "/api/v1/subscriptions/s1/resourceGroups/rg1/applications/ghost/eligibleRoles/x";
    let r = call(
        &app.admin,
        Method::PUT,
        ghost,
        Some(json!({"principal":"alice","roleDefinition":"Reader"})),
    )
    .await;
    assert_eq!(r.status, 404);
    let standing = "/subscriptions/s1/resourceGroups/rg1/applications/legacy";
    call_ok(
        &app.admin,
        Method::PUT,
        &format!("/api/v1{standing}"),
        Some(json!({"properties":{"jitAccessPolicy":{"jitAccessEnabled":false}}})),
    )
    .await;
    declare_roles(&app, standing).await;
    let r = call(
        &app.admin,
        Method::PUT,
        &format!("/api/v1{standing}/eligibleRoles/x"),
        Some(json!({"principal":"alice","roleDefinition":"Reader"})),
    )
    .await;
    assert_eq!(
        r.status, 201,
        "without JIT the role is held standing: {:?}",
        r.body
    );
    // Deleting an application takes its eligibilities with it.
    assert_eq!(
        call(&app.admin, Method::DELETE, &format!("/api/v1{APP}"), None)
            .await
            .status,
        204
    );
    put(&app, json!({"properties":{}})).await;
    let list = call(
        &app.admin,
        Method::GET,
        &format!("/api/v1{APP}/eligibleRoles"),
        None,
    )
    .await;
    assert!(list.json::<List<EligibleRole>>().value.is_empty());
}
