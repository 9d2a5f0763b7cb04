//! The authorization matrix: every endpoint × each built-in role × a target inside and outside
//! the role's scope, asserting the exact status. Expectations are written out by hand, not
//! derived from the RBAC code under test.

use crate::*;
use ajar_api::wire::{AccessRequest, List, Policy, Token};
use ajar_testkit::TestApp;
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::HashMap;

const ROLES: [&str; 6] = [
    "Owner",
    "JitAdmin",
    "SecurityReader",
    "JitRequester",
    "Approver",
    "None",
];
const ALL: &[&str] = &[
    "Owner",
    "JitAdmin",
    "SecurityReader",
    "JitRequester",
    "Approver",
    "None",
];
const READERS: &[&str] = &["Owner", "JitAdmin", "SecurityReader", "Approver"];

struct Ctx {
    /// An admin-made request id per resource group.
    request: HashMap<&'static str, String>,
}

/// One row of the matrix: an endpoint in resource group `rg`.
struct Case {
    name: &'static str,
    method: Method,
    path: fn(&Ctx, &str) -> String,
    body: Option<fn(&str) -> Value>,
    /// Status for a caller allowed to act.
    ok: u16,
    /// Roles (assigned at the target's resource group) that are allowed.
    allowed: &'static [&'static str],
    /// Whether a role assigned on another resource group is refused (false for endpoints that
    /// are not scoped to a resource group).
    scoped: bool,
}

/// The group that is not `g`.
fn other(g: &str) -> &'static str {
    if g == "rg1" { "rg2" } else { "rg1" }
}

fn rg(rg: &str) -> String {
    format!("/api/v1/subscriptions/s1/resourceGroups/{rg}")
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "get machine",
            method: Method::GET,
            path: |_, g| format!("{}/machines/vm", rg(g)),
            body: None,
            ok: 200,
            allowed: &["Owner", "JitAdmin", "SecurityReader", "Approver"],
            scoped: true,
        },
        Case {
            name: "put machine",
            method: Method::PUT,
            path: |_, g| format!("{}/machines/vm", rg(g)),
            body: Some(|_| machine_body("linux")),
            ok: 200,
            allowed: &["Owner", "JitAdmin"],
            scoped: true,
        },
        Case {
            name: "delete machine",
            method: Method::DELETE,
            path: |_, g| format!("{}/machines/ghost", rg(g)),
            body: None,
            ok: 404,
            allowed: &["Owner", "JitAdmin"],
            scoped: true,
        },
        Case {
            name: "list machines in group",
            method: Method::GET,
            path: |_, g| format!("{}/machines", rg(g)),
            body: None,
            ok: 200,
            allowed: &["Owner", "JitAdmin", "SecurityReader", "Approver"],
            scoped: true,
        },
        Case {
            name: "put policy",
            method: Method::PUT,
            path: |_, g| format!("{}/jitNetworkAccessPolicies/default", rg(g)),
            body: Some(|g| {
                policy_body(&format!("/subscriptions/s1/resourceGroups/{g}/machines/vm"))
            }),
            ok: 200,
            allowed: &["Owner", "JitAdmin"],
            scoped: true,
        },
        Case {
            name: "get policy",
            method: Method::GET,
            path: |_, g| format!("{}/jitNetworkAccessPolicies/default", rg(g)),
            body: None,
            ok: 200,
            allowed: &[
                "Owner",
                "JitAdmin",
                "SecurityReader",
                "JitRequester",
                "Approver",
            ],
            scoped: true,
        },
        Case {
            name: "delete policy",
            method: Method::DELETE,
            path: |_, g| format!("{}/jitNetworkAccessPolicies/ghost", rg(g)),
            body: None,
            ok: 404,
            allowed: &["Owner", "JitAdmin"],
            scoped: true,
        },
        Case {
            name: "list policies in group",
            method: Method::GET,
            path: |_, g| format!("{}/jitNetworkAccessPolicies", rg(g)),
            body: None,
            ok: 200,
            allowed: &[
                "Owner",
                "JitAdmin",
                "SecurityReader",
                "JitRequester",
                "Approver",
            ],
            scoped: true,
        },
        Case {
            name: "enable jit",
            method: Method::POST,
            path: |_, g| format!("{}/machines/ghost/enableJit", rg(g)),
            body: None,
            ok: 404,
            allowed: &["Owner", "JitAdmin"],
            scoped: true,
        },
        Case {
            name: "initiate",
            method: Method::POST,
            path: |_, g| format!("{}/jitNetworkAccessPolicies/default/initiate", rg(g)),
            body: Some(|g| {
                initiate_body(
                    &format!("/subscriptions/s1/resourceGroups/{g}/machines/vm"),
                    json!({"number":22,"duration":"PT1H","allowedSourceAddressPrefix":"192.0.2.1"}),
                )
            }),
            ok: 202,
            allowed: &["Owner", "JitAdmin", "JitRequester"],
            scoped: true,
        },
        Case {
            name: "list policy requests",
            method: Method::GET,
            path: |_, g| format!("{}/jitNetworkAccessPolicies/default/requests", rg(g)),
            body: None,
            ok: 200,
            allowed: &[
                "Owner",
                "JitAdmin",
                "SecurityReader",
                "JitRequester",
                "Approver",
            ],
            scoped: true,
        },
        Case {
            name: "list machine requests",
            method: Method::GET,
            path: |_, g| format!("{}/machines/vm/requests", rg(g)),
            body: None,
            ok: 200,
            allowed: &[
                "Owner",
                "JitAdmin",
                "SecurityReader",
                "JitRequester",
                "Approver",
            ],
            scoped: true,
        },
        Case {
            name: "get someone else's request",
            method: Method::GET,
            path: |c, g| {
                format!(
                    "{}/jitNetworkAccessPolicies/default/requests/{}",
                    rg(g),
                    c.request[g]
                )
            },
            body: None,
            ok: 200,
            allowed: READERS,
            scoped: true,
        },
        Case {
            name: "revoke someone else's request",
            method: Method::POST,
            path: |c, g| {
                format!(
                    "{}/jitNetworkAccessPolicies/default/requests/{}/revoke",
                    rg(g),
                    c.request[g]
                )
            },
            body: None,
            ok: 200,
            allowed: &["Owner", "JitAdmin"],
            scoped: true,
        },
        Case {
            name: "grants",
            method: Method::GET,
            path: |_, g| format!("{}/machines/vm/grants", rg(g)),
            body: None,
            ok: 200,
            allowed: READERS,
            scoped: true,
        },
        Case {
            name: "get jit settings",
            method: Method::GET,
            path: |_, g| format!("{}/jitSettings", rg(g)),
            body: None,
            ok: 200,
            allowed: &["Owner", "JitAdmin", "SecurityReader"],
            scoped: true,
        },
        Case {
            name: "put jit settings",
            method: Method::PUT,
            path: |_, g| format!("{}/jitSettings", rg(g)),
            body: Some(|_| json!({"jitEnabled":true})),
            ok: 200,
            allowed: &["Owner", "JitAdmin"],
            scoped: true,
        },
        Case {
            name: "list role assignments",
            method: Method::GET,
            path: |_, g| {
                format!("/api/v1/roleAssignments?scope=/subscriptions/s1/resourceGroups/{g}")
            },
            body: None,
            ok: 200,
            allowed: &["Owner", "SecurityReader"],
            scoped: true,
        },
        Case {
            name: "put role assignment",
            method: Method::PUT,
            path: |_, g| format!("/api/v1/roleAssignments/matrix-{g}"),
            body: Some(
                |g| json!({"principal":"zed","roleDefinition":"SecurityReader","scope":format!("/subscriptions/s1/resourceGroups/{g}")}),
            ),
            ok: 201,
            allowed: &["Owner"],
            scoped: true,
        },
        Case {
            name: "delete role assignment",
            method: Method::DELETE,
            path: |_, g| format!("/api/v1/roleAssignments/fixed-{g}"),
            body: None,
            ok: 204,
            allowed: &["Owner"],
            scoped: true,
        },
        Case {
            name: "get application",
            method: Method::GET,
            path: |_, g| format!("{}/applications/app", rg(g)),
            body: None,
            ok: 200,
            allowed: &["Owner", "JitAdmin", "SecurityReader", "Approver"],
            scoped: true,
        },
        Case {
            name: "put application",
            method: Method::PUT,
            path: |_, g| format!("{}/applications/app", rg(g)),
            body: Some(|_| json!({"properties":{}})),
            ok: 200,
            allowed: &["Owner", "JitAdmin"],
            scoped: true,
        },
        Case {
            name: "delete application",
            method: Method::DELETE,
            path: |_, g| format!("{}/applications/ghost", rg(g)),
            body: None,
            ok: 404,
            allowed: &["Owner", "JitAdmin"],
            scoped: true,
        },
        Case {
            name: "list applications in group",
            method: Method::GET,
            path: |_, g| format!("{}/applications", rg(g)),
            body: None,
            ok: 200,
            allowed: &["Owner", "JitAdmin", "SecurityReader", "Approver"],
            scoped: true,
        },
        Case {
            name: "put eligible role",
            method: Method::PUT,
            path: |_, g| format!("{}/applications/app/eligibleRoles/e", rg(g)),
            body: Some(|_| json!({"principal":"alice","roleDefinition":"Reader"})),
            ok: 200,
            allowed: &["Owner", "JitAdmin"],
            scoped: true,
        },
        Case {
            name: "list eligible roles",
            method: Method::GET,
            path: |_, g| format!("{}/applications/app/eligibleRoles", rg(g)),
            body: None,
            ok: 200,
            allowed: &["Owner", "JitAdmin", "SecurityReader", "Approver"],
            scoped: true,
        },
        Case {
            name: "get someone's role request",
            method: Method::GET,
            path: |_, g| format!("{}/jitRequests/jr", rg(g)),
            body: None,
            ok: 200,
            allowed: &["Owner", "JitAdmin", "SecurityReader", "Approver"],
            scoped: true,
        },
        Case {
            name: "authorize (asks about the group)",
            method: Method::POST,
            path: |_, _| "/api/v1/authorize".into(),
            body: Some(
                |g| json!({"principal":"x","action":"ajar.machines/read","scope":format!("/subscriptions/s1/resourceGroups/{g}")}),
            ),
            ok: 200,
            allowed: &["Owner"],
            scoped: true,
        },
        // Cross-scope: the body names an object in the other group, whose scope decides.
        Case {
            name: "role request for the other group's app",
            method: Method::PUT,
            path: |_, g| format!("{}/jitRequests/cross", rg(g)),
            body: Some(|g| {
                json!({"properties":{
                    "applicationResourceId":format!("/subscriptions/s1/resourceGroups/{}/applications/app", other(g)),
                    "jitAuthorizationPolicies":[{"principalId":"x","roleDefinitionId":"Reader"}],
                    "jitSchedulingPolicy":{"type":"Once","duration":"PT1H"}}})
            }),
            ok: 201,
            allowed: &[],
            scoped: true,
        },
        Case {
            name: "move a guarded machine (needs agents at /)",
            method: Method::PUT,
            path: |_, g| format!("{}/machines/guarded", rg(g)),
            body: Some(|_| json!({"properties":{"os":"linux","addresses":["10.1.9.9"]}})),
            ok: 200,
            allowed: &[],
            scoped: true,
        },
        // Not scoped to a resource group: the same answer whatever group the role is on.
        Case {
            name: "list role definitions",
            method: Method::GET,
            path: |_, _| "/api/v1/roleDefinitions".into(),
            body: None,
            ok: 200,
            allowed: &["Owner", "SecurityReader"],
            scoped: false,
        },
        Case {
            name: "put role definition (needs /)",
            method: Method::PUT,
            path: |_, _| "/api/v1/roleDefinitions/Custom".into(),
            body: Some(|_| json!({"actions":["ajar.machines/read"]})),
            ok: 201,
            allowed: &[],
            scoped: false,
        },
        Case {
            name: "token for someone else (needs /)",
            method: Method::POST,
            path: |_, _| "/api/v1/tokens".into(),
            body: Some(|_| json!({"principal":"mallory"})),
            ok: 201,
            allowed: &[],
            scoped: false,
        },
        Case {
            name: "list groups (needs /)",
            method: Method::GET,
            path: |_, _| "/api/v1/groups".into(),
            body: None,
            ok: 200,
            allowed: &[],
            scoped: false,
        },
        Case {
            name: "put group (needs /)",
            method: Method::PUT,
            path: |_, _| "/api/v1/groups/ops".into(),
            body: Some(|_| json!({"members":["mallory"]})),
            ok: 201,
            allowed: &[],
            scoped: false,
        },
        Case {
            name: "delete group (needs /)",
            method: Method::DELETE,
            path: |_, _| "/api/v1/groups/ghost".into(),
            body: None,
            ok: 404,
            allowed: &[],
            scoped: false,
        },
        Case {
            name: "metrics (needs /)",
            method: Method::GET,
            path: |_, _| "/metrics".into(),
            body: None,
            ok: 200,
            allowed: &[],
            scoped: false,
        },
        Case {
            name: "history (each entry checked on its own)",
            method: Method::GET,
            path: |_, _| "/api/v1/history".into(),
            body: None,
            ok: 200,
            allowed: &[
                "Owner",
                "JitAdmin",
                "SecurityReader",
                "JitRequester",
                "Approver",
            ],
            scoped: false,
        },
        Case {
            name: "list own tokens",
            method: Method::GET,
            path: |_, _| "/api/v1/tokens".into(),
            body: None,
            ok: 200,
            allowed: ALL,
            scoped: false,
        },
        Case {
            name: "openapi",
            method: Method::GET,
            path: |_, _| "/api/v1/openapi.json".into(),
            body: None,
            ok: 200,
            allowed: ALL,
            scoped: false,
        },
    ]
}

/// Sets up rg1 and rg2 alike: machine `vm` under policy `default`, an admin request, and a
/// deletable role assignment per cell.
async fn world(app: &TestApp) -> Ctx {
    let mut request = HashMap::new();
    for g in ["rg1", "rg2"] {
        let vm = format!("/subscriptions/s1/resourceGroups/{g}/machines/vm");
        assert_eq!(
            call(
                &app.admin,
                Method::PUT,
                &format!("/api/v1{vm}"),
                Some(machine_body("linux"))
            )
            .await
            .status,
            201
        );
        let policy = format!("{}/jitNetworkAccessPolicies/default", rg(g));
        assert_eq!(
            call(&app.admin, Method::PUT, &policy, Some(policy_body(&vm)))
                .await
                .status,
            201
        );
        let r = call(
            &app.admin,
            Method::POST,
            &format!("{policy}/initiate"),
            Some(initiate_body(
                &vm,
                json!({"number":22,"duration":"PT2H","allowedSourceAddressPrefix":"*"}),
            )),
        )
        .await;
        assert_eq!(r.status, 202);
        request.insert(g, r.json::<AccessRequest>().id);
        // An application with an eligibility, for the application rows.
        let app_path = format!("{}/applications/app", rg(g));
        let r = call(
            &app.admin,
            Method::PUT,
            &app_path,
            Some(json!({"properties":{}})),
        )
        .await;
        assert_eq!(r.status, 201);
        declare_roles_in(
            &app,
            app_path.trim_start_matches("/api/v1"),
            &format!("app{g}"),
        )
        .await;
        let r = call(
            &app.admin,
            Method::PUT,
            &format!("{app_path}/eligibleRoles/e"),
            Some(json!({"principal":"alice","roleDefinition":"Reader"})),
        )
        .await;
        assert_eq!(r.status, 201);
        // The admin's own role request on it.
        let r = call(
            &app.admin,
            Method::PUT,
            &format!("{app_path}/eligibleRoles/admin"),
            Some(json!({"principal":"admin","roleDefinition":"Reader"})),
        )
        .await;
        assert_eq!(r.status, 201);
        let r = call(&app.admin, Method::PUT, &format!("{}/jitRequests/jr", rg(g)), Some(json!({"properties":{
            "applicationResourceId":format!("/subscriptions/s1/resourceGroups/{g}/applications/app"),
            "jitAuthorizationPolicies":[{"principalId":"admin","roleDefinitionId":"Reader"}],
            "jitSchedulingPolicy":{"type":"Once","duration":"PT1H"}}}))).await;
        assert_eq!(r.status, 201, "{:?}", r.body);
    }
    // A machine per group guarded by one agent.
    let mut guarded = Vec::new();
    for (g, address) in [("rg1", "10.1.9.1"), ("rg2", "10.1.9.2")] {
        let id = format!("/subscriptions/s1/resourceGroups/{g}/machines/guarded");
        let r = call(
            &app.admin,
            Method::PUT,
            &format!("/api/v1{id}"),
            Some(json!({"properties":{"os":"linux","addresses":[address]}})),
        )
        .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        guarded.push(id);
    }
    let r = call(
        &app.admin,
        Method::POST,
        "/api/v1/agents",
        Some(json!({"name":"matrix","mode":"host","machines":guarded})),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    Ctx { request }
}

async fn fixed_assignment(app: &TestApp, g: &str) {
    let r = call(&app.admin, Method::PUT, &format!("/api/v1/roleAssignments/fixed-{g}"),
        Some(json!({"principal":"zed","roleDefinition":"Approver","scope":format!("/subscriptions/s1/resourceGroups/{g}")}))).await;
    assert!(r.status == 201 || r.status == 200);
}

#[tokio::test]
async fn authorization_matrix() {
    let app = TestApp::spawn().await;
    let ctx = world(&app).await;
    let mut failures = Vec::new();
    let mut checked = 0;
    for role in ROLES {
        // A fresh principal per role, assigned at rg1 (or nothing for "None").
        let principal = format!("user-{}", role.to_lowercase());
        let assignment = (role != "None").then_some((role, "/subscriptions/s1/resourceGroups/rg1"));
        let client = app.user(&principal, assignment).await;
        for case in cases() {
            // Reset state a cell may have changed.
            for g in ["rg1", "rg2"] {
                fixed_assignment(&app, g).await;
                // Gone either way: deleted now (204) or never made (404).
                for path in [
                    format!("/api/v1/roleAssignments/matrix-{g}"),
                    "/api/v1/roleDefinitions/Custom".to_owned(),
                ] {
                    let r = call(&app.admin, Method::DELETE, &path, None).await;
                    assert!(matches!(r.status, 204 | 404), "{path}: {r:?}");
                }
            }
            let targets: &[(&str, bool)] = if case.scoped {
                &[("rg1", true), ("rg2", false)]
            } else {
                &[("rg1", true)]
            };
            for &(g, in_scope) in targets {
                let expected = if in_scope && case.allowed.contains(&role) {
                    case.ok
                } else {
                    403
                };
                let path = (case.path)(&ctx, g);
                let body = case.body.map(|b| b(g));
                let r = call(&client, case.method.clone(), &path, body.clone()).await;
                checked += 1;
                if r.status != expected {
                    failures.push(format!(
                        "{role:>14} {:<32} {g}: got {} want {expected} {:?}",
                        case.name, r.status, r.body
                    ));
                }
                if r.status == 403 && code(&r) != ErrorCode::AuthorizationFailed {
                    failures.push(format!(
                        "{role} {} {g}: 403 without AuthorizationFailed",
                        case.name
                    ));
                }
                // Without a token, or with a bad one: 401 everywhere except the open document.
                if role == "Owner" {
                    for bad in [None, Some("ajar_not-a-real-token")] {
                        // Each cell is judged alone, not as part of a run of failures (the
                        // failed-sign-in limit has its own tests).
                        app.state.failed_auth.forget();
                        let anon = app.client(bad);
                        let r = call(&anon, case.method.clone(), &path, body.clone()).await;
                        let want = if case.name == "openapi" { 200 } else { 401 };
                        if r.status != want
                            || (want == 401 && code(&r) != ErrorCode::Unauthenticated)
                        {
                            failures.push(format!(
                                "{bad:?} {} {g}: got {} want {want}",
                                case.name, r.status
                            ));
                        }
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} cells wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(checked > 250, "the matrix shrank to {checked} cells");
}

#[tokio::test]
async fn the_root_owner_may_do_what_group_owners_may_not() {
    let app = TestApp::spawn().await;
    let r = call(
        &app.admin,
        Method::PUT,
        "/api/v1/roleDefinitions/Custom",
        Some(json!({"actions":["ajar.machines/read"]})),
    )
    .await;
    assert_eq!(r.status, 201);
    let r = call(
        &app.admin,
        Method::POST,
        "/api/v1/tokens",
        Some(json!({"principal":"mallory"})),
    )
    .await;
    assert_eq!(r.status, 201);
}

#[tokio::test]
async fn a_requester_on_group_a_cannot_see_or_initiate_on_group_b() {
    let app = TestApp::spawn().await;
    setup(&app).await;
    let alice = app.user("alice", Some(("JitRequester", RG))).await;
    let ok = initiate(
        &alice,
        POLICY,
        json!({"number":22,"duration":"PT1H","allowedSourceAddressPrefix":"192.0.2.9"}),
    )
    .await;
    assert_eq!(ok.status, 202);
    let ok: AccessRequest = ok.json();
    assert_eq!(ok.requestor, "alice");
    let r = initiate(&alice, POLICY2, json!({"number":22,"duration":"PT1H"})).await;
    assert_eq!((r.status, code(&r)), (403, ErrorCode::AuthorizationFailed));
    for path in [
        format!("/api/v1{POLICY2}"),
        format!("/api/v1{RG2}/jitNetworkAccessPolicies"),
        format!("/api/v1{POLICY2}/requests"),
    ] {
        let r = call(&alice, Method::GET, &path, None).await;
        assert_eq!(r.status, 403, "{path}");
    }
    // Existence does not leak: a missing policy in B is also 403, not 404.
    let r = call(
        &alice,
        Method::GET,
        &format!("/api/v1{RG2}/jitNetworkAccessPolicies/ghost"),
        None,
    )
    .await;
    assert_eq!(r.status, 403);
    // At subscription scope alice sees only group A's policies.
    let r = call(
        &alice,
        Method::GET,
        &format!("/api/v1{SUB}/jitNetworkAccessPolicies"),
        None,
    )
    .await;
    let policies = r.json::<List<Policy>>().value;
    let ids: Vec<&str> = policies.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, vec![POLICY]);
    // Alice reads and revokes her own request, and sees only her own in the history.
    initiate(
        &app.admin,
        POLICY,
        json!({"number":22,"duration":"PT1H","allowedSourceAddressPrefix":"192.0.2.10"}),
    )
    .await;
    let mine = call(
        &alice,
        Method::GET,
        &format!("/api/v1{POLICY}/requests"),
        None,
    )
    .await;
    assert_eq!(mine.json::<List<AccessRequest>>().value.len(), 1);
    let id = &ok.id;
    let r = call(
        &alice,
        Method::POST,
        &format!("/api/v1{POLICY}/requests/{id}/revoke"),
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    // She cannot read grants, machines or settings: least privilege.
    for path in [
        format!("/api/v1{VM}/grants"),
        format!("/api/v1{VM}"),
        format!("/api/v1{RG}/jitSettings"),
    ] {
        assert_eq!(
            call(&alice, Method::GET, &path, None).await.status,
            403,
            "{path}"
        );
    }
}

#[tokio::test]
async fn assignments_inherit_downwards_and_removal_takes_effect_at_once() {
    let app = TestApp::spawn().await;
    setup(&app).await;
    let bob = app.user("bob", None).await;
    assert_eq!(
        call(&bob, Method::GET, &format!("/api/v1{VM2}"), None)
            .await
            .status,
        403
    );
    let r = call(
        &app.admin,
        Method::PUT,
        "/api/v1/roleAssignments/bob-reader",
        Some(json!({"principal":"bob","roleDefinition":"SecurityReader","scope":SUB})),
    )
    .await;
    assert_eq!(r.status, 201);
    assert_eq!(
        call(&bob, Method::GET, &format!("/api/v1{VM2}"), None)
            .await
            .status,
        200
    );
    assert_eq!(
        call(&bob, Method::GET, &format!("/api/v1{VM}"), None)
            .await
            .status,
        200
    );
    assert_eq!(
        call(&bob, Method::GET, "/api/v1/subscriptions/s2/machines", None)
            .await
            .status,
        403
    );
    assert_eq!(
        call(
            &bob,
            Method::PUT,
            &format!("/api/v1{VM}"),
            Some(machine_body("linux"))
        )
        .await
        .status,
        403
    );
    assert_eq!(
        call(
            &app.admin,
            Method::DELETE,
            "/api/v1/roleAssignments/bob-reader",
            None
        )
        .await
        .status,
        204
    );
    assert_eq!(
        call(&bob, Method::GET, &format!("/api/v1{VM2}"), None)
            .await
            .status,
        403
    );
}

#[tokio::test]
async fn custom_roles_grant_exactly_their_actions() {
    let app = TestApp::spawn().await;
    setup(&app).await;
    let r = call(
        &app.admin,
        Method::PUT,
        "/api/v1/roleDefinitions/MachineViewer",
        Some(json!({"actions":["ajar.machines/read"],"description":"sees machines"})),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let bad = call(
        &app.admin,
        Method::PUT,
        "/api/v1/roleDefinitions/Typo",
        Some(json!({"actions":["ajar.machine/read"]})),
    )
    .await;
    assert_eq!((bad.status, target(&bad).as_str()), (400, "actions[0]"));
    let builtin = call(
        &app.admin,
        Method::PUT,
        "/api/v1/roleDefinitions/Owner",
        Some(json!({"actions":["*"]})),
    )
    .await;
    assert_eq!(builtin.status, 409);
    let carol = app.user("carol", Some(("MachineViewer", RG))).await;
    assert_eq!(
        call(&carol, Method::GET, &format!("/api/v1{VM}"), None)
            .await
            .status,
        200
    );
    assert_eq!(
        call(&carol, Method::GET, &format!("/api/v1{POLICY}"), None)
            .await
            .status,
        403
    );
    let in_use = call(
        &app.admin,
        Method::DELETE,
        "/api/v1/roleDefinitions/MachineViewer",
        None,
    )
    .await;
    assert_eq!(in_use.status, 409);
    let unknown = call(
        &app.admin,
        Method::PUT,
        "/api/v1/roleAssignments/x",
        Some(json!({"principal":"carol","roleDefinition":"Nope","scope":RG})),
    )
    .await;
    assert_eq!(
        (unknown.status, target(&unknown).as_str()),
        (400, "roleDefinition")
    );
}

#[tokio::test]
async fn tokens_are_shown_once_and_revocable() {
    let app = TestApp::spawn().await;
    let r = call(
        &app.admin,
        Method::POST,
        "/api/v1/tokens",
        Some(json!({"principal":"dave","description":"ci"})),
    )
    .await;
    assert_eq!(r.status, 201);
    let made: Token = r.json();
    let secret = made.token.expect("the secret");
    let id = made.id;
    let list = call(&app.admin, Method::GET, "/api/v1/tokens", None).await;
    let text = list.body.to_string();
    assert!(
        text.contains(&id) && !text.contains(&secret),
        "lists never show secrets"
    );
    let dave = app.client(Some(&secret));
    assert_eq!(
        call(&dave, Method::GET, "/api/v1/tokens", None)
            .await
            .status,
        200
    );
    // Dave sees only his own tokens and cannot delete the admin's.
    let his = call(&dave, Method::GET, "/api/v1/tokens", None).await;
    assert_eq!(his.json::<List<Token>>().value.len(), 1);
    assert_eq!(
        call(&dave, Method::DELETE, "/api/v1/tokens/bootstrap", None)
            .await
            .status,
        403
    );
    assert_eq!(
        call(
            &app.admin,
            Method::DELETE,
            &format!("/api/v1/tokens/{id}"),
            None
        )
        .await
        .status,
        204
    );
    let r = call(&dave, Method::GET, "/api/v1/tokens", None).await;
    assert_eq!((r.status, code(&r)), (401, ErrorCode::Unauthenticated));
    // The secret is not in the database (its files on SQLite; its token rows on PostgreSQL).
    let (db, wal) = if app.database_url().starts_with("sqlite") {
        (
            std::fs::read(app.db_path()).unwrap(),
            std::fs::read(app.db_path().with_extension("db-wal")).unwrap_or_default(),
        )
    } else {
        let pool = sqlx::AnyPool::connect(app.database_url()).await.unwrap();
        let rows: Vec<(String, String, String)> =
            sqlx::query_as("SELECT id, hash, principal FROM tokens")
                .fetch_all(&pool)
                .await
                .unwrap();
        pool.close().await;
        (format!("{rows:?}").into_bytes(), Vec::new())
    };
    for bytes in [&db, &wal] {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "token stored in clear"
        );
        assert!(
            !bytes
                .windows(app.admin_token.len())
                .any(|w| w == app.admin_token.as_bytes())
        );
    }
}
