//! Black-box tests of the control plane over HTTP: a real server on a random port, a fresh
//! SQLite store per test, and a manual clock.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod abuse;
mod activity;
mod agents;
mod app_roles;
mod applications;
mod approvals;
mod arm;
mod authz;
mod aws;
mod credentials;
mod cross_scope;
mod enforcement;
mod history_scopes;
mod jit_requests;
mod lifecycle;
mod limits;
mod metrics;
mod misc;
mod notifications;
mod oidc;
mod replicas;
mod validation;

use ajar_api::client::RawResponse;
use ajar_api::error::{ApiError, ErrorBody, ErrorCode};
use ajar_core::lifecycle::RequestState;
use ajar_testkit::TestApp;
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

pub const SUB: &str = "/subscriptions/s1";
pub const RG: &str = "/subscriptions/s1/resourceGroups/rg1";
pub const RG2: &str = "/subscriptions/s1/resourceGroups/rg2";
pub const VM: &str = "/subscriptions/s1/resourceGroups/rg1/machines/vm1";
pub const VM_WIN: &str = "/subscriptions/s1/resourceGroups/rg1/machines/win1";
pub const POLICY: &str = "/subscriptions/s1/resourceGroups/rg1/jitNetworkAccessPolicies/default";
pub const VM2: &str = "/subscriptions/s1/resourceGroups/rg2/machines/vm2";
pub const POLICY2: &str = "/subscriptions/s1/resourceGroups/rg2/jitNetworkAccessPolicies/default";

/// Sends `method path` with an optional JSON body as `client`.
pub async fn call(
    client: &ajar_api::Client,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> RawResponse {
    client.raw(method, path, body.as_ref()).await.unwrap()
}

/// [`call`] for a step that must succeed (any 2xx): a failed setup fails the test there.
pub async fn call_ok(
    client: &ajar_api::Client,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> RawResponse {
    let r = call(client, method.clone(), path, body).await;
    assert!(
        (200..300).contains(&r.status),
        "{method} {path}: {} {:?}",
        r.status,
        r.body
    );
    r
}

/// A response body read as an API type.
pub trait Typed {
    /// The body as `T`; a body that does not parse fails the test with status and body.
    fn json<T: DeserializeOwned>(&self) -> T;
}

impl Typed for RawResponse {
    fn json<T: DeserializeOwned>(&self) -> T {
        serde_json::from_value(self.body.clone()).unwrap_or_else(|e| {
            panic!(
                "the body is not a {}: {e}; {} {}",
                std::any::type_name::<T>(),
                self.status,
                self.body
            )
        })
    }
}

/// [`call_ok`], with the body read as `T`.
pub async fn call_ok_as<T: DeserializeOwned>(
    client: &ajar_api::Client,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> T {
    call_ok(client, method, path, body).await.json()
}

/// `GET path`, which must answer 200, read as `T`.
pub async fn get_as<T: DeserializeOwned>(client: &ajar_api::Client, path: &str) -> T {
    let r = call(client, Method::GET, path, None).await;
    assert_eq!(r.status, 200, "GET {path}: {:?}", r.body);
    r.json()
}

pub fn machine_body(os: &str) -> Value {
    json!({"properties":{"os":os,"addresses":["10.1.0.4"],"labels":{"env":"test"}}})
}

/// Port 22 from anywhere (PT3H) and 3389/TCP from 10.0.0.0/24 (PT1H) on `machine`.
pub fn policy_body(machine: &str) -> Value {
    json!({"kind":"Basic","properties":{"virtualMachines":[{"id":machine,"ports":[
        {"number":22,"protocol":"*","allowedSourceAddressPrefix":"*","maxRequestAccessDuration":"PT3H"},
        {"number":3389,"protocol":"TCP","allowedSourceAddressPrefixes":["10.0.0.0/24","2001:db8::/32"],"maxRequestAccessDuration":"PT1H"}
    ]}]}})
}

/// `policy_body(machine)` with manual approval by `approvers` (and a threshold, if given).
pub fn manual_policy(machine: &str, approvers: Value, threshold: Option<u32>) -> Value {
    let mut body = policy_body(machine);
    body["properties"]["approvalMode"] = json!("ManualApprove");
    body["properties"]["approvers"] = approvers;
    if let Some(t) = threshold {
        body["properties"]["approvalThreshold"] = json!(t);
    }
    body
}

/// Makes the policy of vm1 (`setup`'s) need the approval of `approvers`.
pub async fn require_approval(app: &TestApp, approvers: Value) {
    let policy = manual_policy(VM, approvers, None);
    let r = call(
        &app.admin,
        Method::PUT,
        &format!("/api/v1{POLICY}"),
        Some(policy),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
}

/// Assigns `role` at `scope` to `principal` as the assignment `id`.
pub async fn assign(app: &TestApp, id: &str, principal: &str, role: &str, scope: &str) {
    let r = call(
        &app.admin,
        Method::PUT,
        &format!("/api/v1/roleAssignments/{id}"),
        Some(json!({"principal":principal,"roleDefinition":role,"scope":scope})),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
}

/// Declares, on the application `app_id`, the actions `NS.orders/read` and `NS.orders/write`
/// (`NS` is the application's name without `-` or `.`) and the roles `Reader` (reading) and
/// `Contributor` (both): what an application relying on ajar would declare before naming those
/// roles in eligibilities.
pub async fn declare_roles(app: &TestApp, app_id: &str) {
    let ns: String = app_id
        .rsplit('/')
        .next()
        .unwrap()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    declare_roles_in(app, app_id, &ns).await;
}

/// [`declare_roles`] in the namespace `ns`, for applications of the same name elsewhere.
pub async fn declare_roles_in(app: &TestApp, app_id: &str, ns: &str) {
    call_ok(
        &app.admin,
        Method::PUT,
        &format!("/api/v1{app_id}/actions"),
        Some(json!({"namespace":ns,"actions":[format!("{ns}.orders/read"),format!("{ns}.orders/write")]})),
    )
    .await;
    for (role, pattern) in [
        ("Reader", format!("{ns}.orders/read")),
        ("Contributor", format!("{ns}.*")),
    ] {
        call_ok(
            &app.admin,
            Method::PUT,
            &format!("/api/v1{app_id}/roleDefinitions/{role}"),
            Some(json!({"actions":[pattern]})),
        )
        .await;
    }
}

/// The application `rg1/applications/crm`, approved by any member of the group `approvers`,
/// with Contributor eligible to `group:devs`; answers its id.
pub async fn group_approved_app(app: &TestApp, approvers: &str) -> String {
    let app_id = format!("{RG}/applications/crm");
    let r = call(
        &app.admin,
        Method::PUT,
        &format!("/api/v1{app_id}"),
        Some(
            json!({"properties":{"jitAccessPolicy":{"jitApprovalMode":"ManualApprove",
            "jitApprovers":[{"id":approvers,"type":"group"}]}}}),
        ),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    declare_roles(app, &app_id).await;
    let r = call(
        &app.admin,
        Method::PUT,
        &format!("/api/v1{app_id}/eligibleRoles/devs"),
        Some(json!({"principal":"group:devs","roleDefinition":"Contributor"})),
    )
    .await;
    assert_eq!(r.status, 201);
    app_id
}

/// A request body activating Contributor on `app_id` for `who`, for an hour from approval.
pub fn activation(app_id: &str, who: &str) -> Value {
    json!({"properties":{"applicationResourceId":app_id,
        "jitAuthorizationPolicies":[{"principalId":who,"roleDefinitionId":"Contributor"}],
        "jitSchedulingPolicy":{"type":"Once","duration":"PT1H"}}})
}

/// Machines vm1 and win1 in rg1 with policy `default` covering vm1; vm2 in rg2 with its own
/// policy; all three guarded by the host agent `agent-1`, whose client is returned.
pub async fn setup(app: &TestApp) -> ajar_api::Client {
    // Machines guarded by one agent have addresses of their own.
    for (id, os, address) in [
        (VM, "linux", "10.1.0.4"),
        (VM_WIN, "windows", "10.1.0.5"),
        (VM2, "linux", "10.1.0.6"),
    ] {
        let body = json!({"properties":{"os":os,"addresses":[address],"labels":{"env":"test"}}});
        let r = call(&app.admin, Method::PUT, &format!("/api/v1{id}"), Some(body)).await;
        assert_eq!(r.status, 201, "{:?}", r.body);
    }
    for (policy, vm) in [(POLICY, VM), (POLICY2, VM2)] {
        let r = call(
            &app.admin,
            Method::PUT,
            &format!("/api/v1{policy}"),
            Some(policy_body(vm)),
        )
        .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
    }
    app.agent("agent-1", &[VM, VM_WIN, VM2], None).await.0
}

/// An initiate body for one port of `machine`.
pub fn initiate_body(machine: &str, port: Value) -> Value {
    json!({"virtualMachines":[{"id":machine,"ports":[port]}],"justification":"debugging"})
}

pub async fn initiate(client: &ajar_api::Client, policy: &str, port: Value) -> RawResponse {
    let machine = if policy == POLICY { VM } else { VM2 };
    call(
        client,
        Method::POST,
        &format!("/api/v1{policy}/initiate"),
        Some(initiate_body(machine, port)),
    )
    .await
}

/// Starts an initiate for port 22 of `POLICY`'s machine, for an hour from `source`, on its own
/// task (to send many at once).
pub fn spawn_initiate(
    client: &ajar_api::Client,
    source: String,
) -> tokio::task::JoinHandle<RawResponse> {
    let client = client.clone();
    tokio::spawn(async move {
        initiate(
            &client,
            POLICY,
            json!({"number":22,"duration":"PT1H","allowedSourceAddressPrefix":source}),
        )
        .await
    })
}

/// The error of a response; a body that is not an error body fails the test.
pub fn error_of(r: &RawResponse) -> ApiError {
    r.json::<ErrorBody>().error
}

/// The error code of a response.
pub fn code(r: &RawResponse) -> ErrorCode {
    error_of(r).code
}

/// The error target of a response (`<none>` when it has none).
pub fn target(r: &RawResponse) -> String {
    error_of(r).target.unwrap_or_else(|| "<none>".to_owned())
}

/// The path of a request on the shared engine in rg1.
pub fn req_path(name: &str) -> String {
    format!("/api/v1{RG}/jitRequests/{name}")
}

/// `properties.jitRequestState` of a response.
pub fn state_of(r: &RawResponse) -> RequestState {
    r.json::<ajar_api::wire::JitRequest>()
        .properties
        .jit_request_state
}

/// The requests awaiting `client`'s decision.
pub async fn inbox(client: &ajar_api::Client) -> Vec<ajar_api::wire::JitRequest> {
    get_as::<ajar_api::wire::List<_>>(client, "/api/v1/inbox")
        .await
        .value
}

/// Approves or denies (`verb`) request `name` in rg1 with a reason.
pub async fn decide(client: &ajar_api::Client, name: &str, verb: &str) -> RawResponse {
    call(
        client,
        Method::POST,
        &format!("{}/{verb}", req_path(name)),
        Some(json!({"reason":"looked at the ticket"})),
    )
    .await
}
