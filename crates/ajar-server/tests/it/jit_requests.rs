//! Role activation requests: the full lifecycle over HTTP with the injected clock, and every
//! refused transition.

use crate::*;
use ajar_api::wire::{AuthorizeAnswer, JitRequest, List};
use ajar_core::lifecycle::RequestState;
use ajar_testkit::TestApp;
use jiff::SignedDuration;
use reqwest::Method;
use serde_json::{Value, json};

const APP: &str = "/subscriptions/s1/resourceGroups/rg1/applications/crm";

fn request_body(principal: &str, role: &str, duration: &str, start: Option<String>) -> Value {
    let mut scheduling = json!({"type":"Once","duration":duration});
    if let Some(s) = start {
        scheduling["startTime"] = json!(s);
    }
    json!({"properties":{"applicationResourceId":APP,
        "jitAuthorizationPolicies":[{"principalId":principal,"roleDefinitionId":role}],
        "jitSchedulingPolicy":scheduling,"justification":"incident 42"}})
}

struct People {
    alice: ajar_api::Client,
    bob: ajar_api::Client,
    carol: ajar_api::Client,
    mallory: ajar_api::Client,
    dave: ajar_api::Client,
}

/// `crm` with the given approval settings; alice and dave eligible for Contributor; bob and
/// carol (and dave) approvers; mallory holds the Approver role but is not listed.
async fn world(app: &TestApp, policy: Value) -> People {
    let r = call(
        &app.admin,
        Method::PUT,
        &format!("/api/v1{APP}"),
        Some(json!({"properties":{"jitAccessPolicy":policy}})),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    declare_roles(app, APP).await;
    for who in ["alice", "dave"] {
        let r = call(
            &app.admin,
            Method::PUT,
            &format!("/api/v1{APP}/eligibleRoles/{who}"),
            Some(json!({"principal":who,"roleDefinition":"Contributor"})),
        )
        .await;
        assert_eq!(r.status, 201);
    }
    People {
        alice: app.user("alice", Some(("JitRequester", RG))).await,
        bob: app.user("bob", Some(("Approver", RG))).await,
        carol: app.user("carol", Some(("Approver", RG))).await,
        mallory: app.user("mallory", Some(("Approver", RG))).await,
        dave: {
            let d = app.user("dave", Some(("JitRequester", RG))).await;
            let r = call(
                &app.admin,
                Method::PUT,
                "/api/v1/roleAssignments/dave-approver",
                Some(json!({"principal":"dave","roleDefinition":"Approver","scope":RG})),
            )
            .await;
            assert_eq!(r.status, 201);
            d
        },
    }
}

fn manual(threshold: u32) -> Value {
    json!({"jitApprovalMode":"ManualApprove","jitApprovalThreshold":threshold,"maximumJitAccessDuration":"PT4H",
        "jitApprovers":[{"id":"bob","type":"user"},{"id":"carol","type":"user"},{"id":"dave","type":"user"}]})
}

#[tokio::test]
async fn a_manual_request_is_approved_activates_and_expires() {
    let app = TestApp::spawn().await;
    let p = world(&app, manual(1)).await;
    let r = call(
        &p.alice,
        Method::PUT,
        &req_path("r1"),
        Some(request_body("alice", "Contributor", "PT2H", None)),
    )
    .await;
    assert_eq!(
        (r.status, state_of(&r)),
        (201, RequestState::Pending),
        "{:?}",
        r.body
    );
    // The approvers see it in their inbox; the requester and outsiders do not.
    assert_eq!(inbox(&p.bob).await.len(), 1);
    assert!(inbox(&p.mallory).await.is_empty());
    assert_eq!(
        call(&p.alice, Method::GET, "/api/v1/inbox", None)
            .await
            .status,
        403
    );

    // Approved half an hour later: the two hours count from the approval.
    app.advance(SignedDuration::from_mins(30));
    let approved_at = app.now();
    let r = decide(&p.bob, "r1", "approve").await;
    assert_eq!(
        (r.status, state_of(&r)),
        (200, RequestState::Active),
        "{:?}",
        r.body
    );
    let req = r.json::<JitRequest>().properties;
    assert_eq!(req.active_from, Some(approved_at));
    assert_eq!(
        req.active_until,
        Some(
            approved_at
                .checked_add(SignedDuration::from_hours(2))
                .unwrap()
        )
    );
    assert_eq!(req.decisions[0].by, "bob");
    let own = call(&p.alice, Method::GET, &req_path("r1"), None).await;
    assert_eq!(state_of(&own), RequestState::Active);

    app.advance(SignedDuration::from_hours(2));
    assert!(app.tick().await >= 1);
    let done = call(&p.alice, Method::GET, &req_path("r1"), None).await;
    assert_eq!(state_of(&done), RequestState::Expired);
    let late = decide(&p.carol, "r1", "approve").await;
    assert_eq!(
        (late.status, code(&late)),
        (409, ErrorCode::Conflict),
        "an expired request cannot be approved"
    );
    // History stays.
    let history: List<JitRequest> = get_as(&app.admin, &format!("/api/v1{APP}/jitRequests")).await;
    assert_eq!(
        history.value[0].properties.jit_request_state,
        RequestState::Expired
    );
}

#[tokio::test]
async fn refused_transitions_say_why() {
    let app = TestApp::spawn().await;
    let p = world(&app, manual(1)).await;
    call_ok(
        &p.dave,
        Method::PUT,
        &req_path("own"),
        Some(request_body("dave", "Contributor", "PT1H", None)),
    )
    .await;
    let r = decide(&p.dave, "own", "approve").await;
    assert_eq!((r.status, code(&r)), (403, ErrorCode::AuthorizationFailed));
    assert!(error_of(&r).message.contains("own"), "{:?}", r.body);
    let r = decide(&p.mallory, "own", "approve").await;
    assert_eq!(
        r.status, 403,
        "holding the Approver role is not enough without being listed"
    );
    let r = call(
        &p.bob,
        Method::POST,
        &format!("{}/approve", req_path("own")),
        Some(json!({"reason":" "})),
    )
    .await;
    assert_eq!((r.status, target(&r).as_str()), (400, "reason"));

    call_ok(
        &p.alice,
        Method::PUT,
        &req_path("c"),
        Some(request_body("alice", "Contributor", "PT1H", None)),
    )
    .await;
    let r = call(
        &p.bob,
        Method::POST,
        &format!("{}/cancel", req_path("c")),
        None,
    )
    .await;
    assert_eq!(r.status, 403, "only the requester cancels");
    let r = call(
        &p.alice,
        Method::POST,
        &format!("{}/cancel", req_path("c")),
        None,
    )
    .await;
    assert_eq!(state_of(&r), RequestState::Canceled);
    assert_eq!(decide(&p.bob, "c", "approve").await.status, 409);

    call_ok(
        &p.alice,
        Method::PUT,
        &req_path("d"),
        Some(request_body("alice", "Contributor", "PT1H", None)),
    )
    .await;
    assert_eq!(
        state_of(&decide(&p.carol, "d", "deny").await),
        RequestState::Denied
    );
    assert_eq!(decide(&p.bob, "d", "approve").await.status, 409);
    let r = call(
        &p.alice,
        Method::PUT,
        &req_path("d"),
        Some(request_body("alice", "Contributor", "PT1H", None)),
    )
    .await;
    assert_eq!(r.status, 409, "requests are not replaced");
}

#[tokio::test]
async fn requests_are_checked_against_eligibility_and_the_application() {
    let app = TestApp::spawn().await;
    let p = world(&app, manual(1)).await;
    let eve = app.user("eve", Some(("JitRequester", RG))).await;
    let pol = "properties.jitAuthorizationPolicies[0]";
    let cases: Vec<(&ajar_api::Client, Value, u16, String)> = vec![
        (
            &eve,
            request_body("eve", "Contributor", "PT1H", None),
            403,
            format!("{pol}.roleDefinitionId"),
        ),
        (
            &p.alice,
            request_body("alice", "Owner", "PT1H", None),
            403,
            format!("{pol}.roleDefinitionId"),
        ),
        (
            &p.alice,
            request_body("alice", "Contributor", "PT5H", None),
            400,
            "properties.jitSchedulingPolicy.duration".into(),
        ),
        (
            &p.alice,
            request_body("bob", "Contributor", "PT1H", None),
            400,
            format!("{pol}.principalId"),
        ),
        (
            &p.alice,
            request_body(
                "alice",
                "Contributor",
                "PT1H",
                Some("2020-01-01T00:00:00Z".into()),
            ),
            400,
            "properties.jitSchedulingPolicy.startTime".into(),
        ),
    ];
    for (client, body, status, t) in cases {
        let r = call(client, Method::PUT, &req_path("x"), Some(body.clone())).await;
        assert_eq!(
            (r.status, target(&r).as_str()),
            (status, t.as_str()),
            "{body}: {:?}",
            r.body
        );
    }
    let mut ghost = request_body("alice", "Contributor", "PT1H", None);
    ghost["properties"]["applicationResourceId"] =
        json!("/subscriptions/s1/resourceGroups/rg1/applications/ghost");
    let r = call(&p.alice, Method::PUT, &req_path("x"), Some(ghost)).await;
    assert_eq!(
        (r.status, target(&r).as_str()),
        (404, "properties.applicationResourceId")
    );
    let legacy = "/subscriptions/s1/resourceGroups/rg1/applications/legacy";
    call_ok(
        &app.admin,
        Method::PUT,
        &format!("/api/v1{legacy}"),
        Some(json!({"properties":{"jitAccessPolicy":{"jitAccessEnabled":false}}})),
    )
    .await;
    let mut standing = request_body("alice", "Contributor", "PT1H", None);
    standing["properties"]["applicationResourceId"] = json!(legacy);
    let r = call(&p.alice, Method::PUT, &req_path("x"), Some(standing)).await;
    assert_eq!((r.status, code(&r)), (409, ErrorCode::Conflict));
    assert_eq!(
        call(&app.admin, Method::GET, &req_path("x"), None)
            .await
            .status,
        404,
        "nothing was stored"
    );
}

#[tokio::test]
async fn thresholds_timeouts_scheduled_starts_and_revokes() {
    let app = TestApp::spawn().await;
    let p = world(&app, manual(2)).await;
    call_ok(
        &p.alice,
        Method::PUT,
        &req_path("two"),
        Some(request_body("alice", "Contributor", "PT1H", None)),
    )
    .await;
    assert_eq!(
        state_of(&decide(&p.bob, "two", "approve").await),
        RequestState::Pending,
        "one of two approvals"
    );
    assert_eq!(
        decide(&p.bob, "two", "approve").await.status,
        409,
        "the same approver counts once"
    );
    assert_eq!(
        state_of(&decide(&p.carol, "two", "approve").await),
        RequestState::Active
    );
    let r = call(
        &p.alice,
        Method::POST,
        &format!("{}/revoke", req_path("two")),
        None,
    )
    .await;
    assert_eq!(state_of(&r), RequestState::Revoked, "early self-revoke");

    // Undecided until its window ends: timeout.
    call_ok(
        &p.alice,
        Method::PUT,
        &req_path("late"),
        Some(request_body("alice", "Contributor", "PT1H", None)),
    )
    .await;
    app.advance(SignedDuration::from_hours(1));
    app.tick().await;
    assert_eq!(
        state_of(&call(&p.alice, Method::GET, &req_path("late"), None).await),
        RequestState::Timeout
    );

    // A scheduled start: approved now, active at the start.
    let start = app
        .now()
        .checked_add(SignedDuration::from_hours(1))
        .unwrap();
    call_ok(
        &p.alice,
        Method::PUT,
        &req_path("later"),
        Some(request_body(
            "alice",
            "Contributor",
            "PT1H",
            Some(start.to_string()),
        )),
    )
    .await;
    decide(&p.bob, "later", "approve").await;
    let r = decide(&p.carol, "later", "approve").await;
    assert_eq!(state_of(&r), RequestState::Approved);
    app.advance(SignedDuration::from_hours(1));
    app.tick().await;
    assert_eq!(
        state_of(&call(&p.alice, Method::GET, &req_path("later"), None).await),
        RequestState::Active
    );
}

#[tokio::test]
async fn automatic_approval_activates_at_once() {
    let app = TestApp::spawn().await;
    let p = world(&app, json!({})).await;
    let r = call(
        &p.alice,
        Method::PUT,
        &req_path("auto"),
        Some(request_body("alice", "Contributor", "PT1H", None)),
    )
    .await;
    assert_eq!(
        (r.status, state_of(&r)),
        (201, RequestState::Active),
        "{:?}",
        r.body
    );
    // Someone else's request is not a requester's to read or revoke (approvers may read it).
    let eve = app.user("eve", Some(("JitRequester", RG))).await;
    assert_eq!(
        call(&eve, Method::GET, &req_path("auto"), None)
            .await
            .status,
        403
    );
    assert_eq!(
        call(
            &eve,
            Method::POST,
            &format!("{}/revoke", req_path("auto")),
            None
        )
        .await
        .status,
        403
    );
    assert_eq!(
        call(&p.dave, Method::GET, &req_path("auto"), None)
            .await
            .status,
        200
    );
    assert_eq!(
        call(
            &p.dave,
            Method::POST,
            &format!("{}/revoke", req_path("auto")),
            None
        )
        .await
        .status,
        403
    );
    // An admin of the application may revoke it.
    let r = call(
        &app.admin,
        Method::POST,
        &format!("{}/revoke", req_path("auto")),
        None,
    )
    .await;
    assert_eq!(state_of(&r), RequestState::Revoked);
    let _ = p.bob;
}

#[tokio::test]
async fn authorize_counts_standing_access_and_active_elevations_only() {
    let app = TestApp::spawn().await;
    let p = world(&app, manual(1)).await;
    // The eligible role is the application's own Contributor: elevating to it grants the
    // application's actions it covers, and none of ajar's.
    let ask = |action: &str, scope: &str| {
        let admin = app.admin.clone();
        let body = json!({"principal":"alice","action":action,"scope":scope});
        async move {
            call_ok_as::<AuthorizeAnswer>(&admin, Method::POST, "/api/v1/authorize", Some(body))
                .await
        }
    };
    let write = "crm.orders/write";
    assert!(!ask(write, APP).await.allowed);
    let standing = ask("ajar.jitRequests/write", RG).await;
    assert_eq!((standing.allowed, standing.expires_at), (true, None));
    assert!(
        standing
            .via
            .is_some_and(|via| via.starts_with("assignment:"))
    );

    // Approved for an hour from now: not yet, then yes until the end, then no.
    let start = app
        .now()
        .checked_add(SignedDuration::from_hours(1))
        .unwrap();
    call_ok(
        &p.alice,
        Method::PUT,
        &req_path("e"),
        Some(request_body(
            "alice",
            "Contributor",
            "PT1H",
            Some(start.to_string()),
        )),
    )
    .await;
    decide(&p.bob, "e", "approve").await;
    assert!(!ask(write, APP).await.allowed, "approved but not started");
    app.advance(SignedDuration::from_hours(1));
    let during = ask(write, APP).await;
    assert!(during.allowed, "{during:?}");
    assert_eq!(during.via, Some(format!("elevation:{RG}/jitRequests/e")));
    assert_eq!(
        during.expires_at,
        Some(start.checked_add(SignedDuration::from_hours(1)).unwrap())
    );
    assert!(
        !ask(
            write,
            "/subscriptions/s1/resourceGroups/rg1/applications/erp"
        )
        .await
        .allowed,
        "only on that application"
    );
    app.advance(SignedDuration::from_hours(1));
    assert!(
        !ask(write, APP).await.allowed,
        "after the window, even before the scheduler runs"
    );

    // Revoked: no longer, at once.
    call_ok(
        &p.alice,
        Method::PUT,
        &req_path("f"),
        Some(request_body("alice", "Contributor", "PT1H", None)),
    )
    .await;
    decide(&p.carol, "f", "approve").await;
    assert!(ask(write, APP).await.allowed);
    call_ok(
        &p.alice,
        Method::POST,
        &format!("{}/revoke", req_path("f")),
        None,
    )
    .await;
    assert!(!ask(write, APP).await.allowed);

    // Asking needs ajar.authorize/action at the scope asked about.
    let r = call(
        &p.alice,
        Method::POST,
        "/api/v1/authorize",
        Some(json!({"principal":"alice","action":write,"scope":APP})),
    )
    .await;
    assert_eq!(r.status, 403);
}

#[tokio::test]
async fn an_extension_is_a_follow_on_request_decided_again() {
    let app = TestApp::spawn().await;
    let p = world(&app, manual(1)).await;
    call_ok(
        &p.alice,
        Method::PUT,
        &req_path("r1"),
        Some(request_body("alice", "Contributor", "PT1H", None)),
    )
    .await;
    let extend = |client: &ajar_api::Client, name: &str, duration: &str| {
        let client = client.clone();
        let path = format!("{}/extend", req_path(name));
        let body = json!({"duration":duration,"justification":"still on it"});
        async move { call(&client, Method::POST, &path, Some(body)).await }
    };
    let r = extend(&p.alice, "r1", "PT1H").await;
    assert_eq!(
        (r.status, code(&r)),
        (409, ErrorCode::Conflict),
        "a pending request cannot be extended"
    );
    let active = decide(&p.bob, "r1", "approve").await;
    assert_eq!(state_of(&active), RequestState::Active);
    let end = active.json::<JitRequest>().properties.active_until;
    assert!(end.is_some(), "{:?}", active.body);

    assert_eq!(
        extend(&p.dave, "r1", "PT1H").await.status,
        403,
        "only the requester"
    );
    let r = extend(&p.alice, "r1", "PT5H").await;
    assert_eq!(
        (r.status, target(&r).as_str()),
        (400, "duration"),
        "beyond the maximum"
    );
    let r = extend(&p.alice, "r1", "PT2H").await;
    assert_eq!(
        (r.status, state_of(&r)),
        (201, RequestState::Pending),
        "{:?}",
        r.body
    );
    let extension: JitRequest = r.json();
    assert_eq!(
        extension.properties.extends,
        Some(format!("{RG}/jitRequests/r1"))
    );
    assert_eq!(
        extension.properties.jit_scheduling_policy.start_time, end,
        "continues where r1 ends"
    );
    let ext = extension.name;
    assert_eq!(
        decide(&p.alice, &ext, "approve").await.status,
        403,
        "no self-approval"
    );
    assert_eq!(
        state_of(&decide(&p.carol, &ext, "approve").await),
        RequestState::Approved
    );

    // At r1's end the extension takes over; the role stays without a gap.
    app.advance(SignedDuration::from_hours(1));
    app.tick().await;
    assert_eq!(
        state_of(&call(&p.alice, Method::GET, &req_path("r1"), None).await),
        RequestState::Expired
    );
    assert_eq!(
        state_of(&call(&p.alice, Method::GET, &req_path(&ext), None).await),
        RequestState::Active
    );
    let r = call(
        &app.admin,
        Method::POST,
        "/api/v1/authorize",
        Some(json!({"principal":"alice","action":"crm.orders/write","scope":APP})),
    )
    .await;
    assert_eq!(
        r.json::<AuthorizeAnswer>().via,
        Some(format!("elevation:{RG}/jitRequests/{ext}")),
        "{:?}",
        r.body
    );
    let r = extend(&p.alice, "r1", "PT1H").await;
    assert_eq!(r.status, 409, "an expired request cannot be extended");
}

#[tokio::test]
async fn the_expiry_warning_falls_due_fifteen_minutes_before_the_end() {
    let app = TestApp::spawn().await;
    let p = world(&app, json!({})).await;
    let r = call(
        &p.alice,
        Method::PUT,
        &req_path("w"),
        Some(request_body("alice", "Contributor", "PT1H", None)),
    )
    .await;
    assert_eq!(state_of(&r), RequestState::Active);
    app.advance(SignedDuration::from_mins(44));
    app.tick().await;
    let r = call(&p.alice, Method::GET, &req_path("w"), None).await;
    assert_eq!(
        r.json::<JitRequest>().properties.expiry_warned_at,
        None,
        "{:?}",
        r.body
    );
    app.advance(SignedDuration::from_mins(2));
    assert_eq!(
        app.tick().await,
        1,
        "the warning is a change the scheduler makes"
    );
    let r = call(&p.alice, Method::GET, &req_path("w"), None).await;
    assert_eq!(state_of(&r), RequestState::Active);
    assert_eq!(
        r.json::<JitRequest>().properties.expiry_warned_at,
        Some(app.now())
    );
    let _ = (p.bob, p.carol, p.mallory, p.dave);
}

#[tokio::test]
async fn publishers_hold_standing_read_and_without_jit_their_roles() {
    let app = TestApp::spawn().await;
    let standing = format!("{RG}/applications/standing");
    for (id, jit) in [(APP, true), (standing.as_str(), false)] {
        let r = call(
            &app.admin,
            Method::PUT,
            &format!("/api/v1{id}"),
            Some(json!({"properties":{"publisherPrincipals":["vendor"],
                "jitAccessPolicy":{"jitAccessEnabled":jit}}})),
        )
        .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        declare_roles(&app, id).await;
        let r = call(
            &app.admin,
            Method::PUT,
            &format!("/api/v1{id}/eligibleRoles/vendor"),
            Some(json!({"principal":"vendor","roleDefinition":"Contributor"})),
        )
        .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
    }
    let ask = |action: &str, scope: &str| {
        let admin = app.admin.clone();
        let body = json!({"principal":"vendor","action":action,"scope":scope});
        async move {
            call_ok_as::<AuthorizeAnswer>(&admin, Method::POST, "/api/v1/authorize", Some(body))
                .await
        }
    };
    let read = ask("ajar.applications/read", APP).await;
    assert!(read.allowed, "{read:?}");
    assert_eq!(read.via, Some(format!("publisher:{APP}")));
    assert_eq!(read.expires_at, None);
    assert!(
        !ask("crm.orders/write", APP).await.allowed,
        "with JIT, writing needs an activation"
    );
    assert!(
        !ask("ajar.applications/read", RG).await.allowed,
        "only on its own application"
    );
    let write = ask("standing.orders/write", &standing).await;
    assert!(
        write.allowed,
        "without JIT, the eligible role is standing: {write:?}"
    );
    let r = call(
        &app.admin,
        Method::DELETE,
        &format!("/api/v1{standing}/eligibleRoles/vendor"),
        None,
    )
    .await;
    assert_eq!(r.status, 204);
    assert!(
        !ask("standing.orders/write", &standing).await.allowed,
        "removing it takes effect at once"
    );
}
