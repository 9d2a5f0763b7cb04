//! Network access under approval (the same engine as role activations), local groups, and the
//! history of both kinds.

use crate::*;
use ajar_api::wire::{
    AccessRequest, AuthorizeAnswer, Grant, Group, HistoryEntry, HistoryState, JitRequest, List,
    Policy, PortState, PortStatusReason, RequestKind,
};
use ajar_core::lifecycle::RequestState;
use ajar_testkit::TestApp;
use jiff::SignedDuration;
use reqwest::Method;
use serde_json::{Value, json};

/// Initiates port 22 on VM for an hour from 10.9.0.1; answers the approval request's name.
async fn ask_ssh(alice: &ajar_api::Client) -> String {
    let r = initiate(
        alice,
        POLICY,
        json!({"number":22,"duration":"PT1H","allowedSourceAddressPrefix":"10.9.0.1"}),
    )
    .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    let req: AccessRequest = r.json();
    assert_eq!(req.approval_state, Some(RequestState::Pending));
    let port = &req.virtual_machines[0].ports[0];
    assert_eq!(
        (port.status, port.status_reason),
        (PortState::Pending, PortStatusReason::AwaitingApproval)
    );
    let id = req.approval_request_id.expect("approvalRequestId");
    assert!(id.starts_with(&format!("{RG}/jitRequests/")), "{id}");
    id.rsplit('/').next().unwrap().to_owned()
}

async fn grants(app: &TestApp) -> Vec<Grant> {
    get_as::<List<Grant>>(&app.admin, &format!("/api/v1{VM}/grants"))
        .await
        .value
}

#[tokio::test]
async fn network_access_under_manual_approval_opens_only_once_approved() {
    let app = TestApp::spawn().await;
    setup(&app).await;
    let r = call(
        &app.admin,
        Method::PUT,
        &format!("/api/v1{POLICY}"),
        Some(manual_policy(VM, json!([{"id":"bob","type":"user"}]), None)),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let policy: Policy = r.json();
    assert_eq!(
        policy.properties.approval_mode.as_deref(),
        Some("ManualApprove")
    );
    assert_eq!(policy.properties.approvers[0].id, "bob");
    let alice = app.user("alice", Some(("JitRequester", RG))).await;
    let bob = app.user("bob", Some(("Approver", RG))).await;
    let mallory = app.user("mallory", Some(("Approver", RG))).await;

    let name = ask_ssh(&alice).await;
    assert!(
        grants(&app).await.is_empty(),
        "nothing opens before approval"
    );
    let items = inbox(&bob).await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].properties.request_kind, RequestKind::Network);
    assert_eq!(
        items[0].properties.network_access_policy_id.as_deref(),
        Some(POLICY)
    );
    assert!(inbox(&mallory).await.is_empty(), "not a listed approver");
    assert_eq!(decide(&mallory, &name, "approve").await.status, 403);
    assert_eq!(
        decide(&alice, &name, "approve").await.status,
        403,
        "own request"
    );

    let r = decide(&bob, &name, "approve").await;
    assert_eq!(state_of(&r), RequestState::Active, "{:?}", r.body);
    assert_eq!(
        r.json::<JitRequest>().properties.network_request_id,
        Some(name.clone())
    );
    let open = grants(&app).await;
    assert_eq!(open.len(), 1);
    assert_eq!(
        (open[0].request_id.as_str(), open[0].number),
        (name.as_str(), 22)
    );
    let net = call(
        &alice,
        Method::GET,
        &format!("/api/v1{POLICY}/requests/{name}"),
        None,
    )
    .await;
    assert_eq!(net.status, 200);
    assert_eq!(
        net.json::<AccessRequest>().virtual_machines[0].ports[0].status,
        PortState::Initiated
    );

    // Revoked through the approval request: the ports close.
    let r = call(
        &alice,
        Method::POST,
        &format!("{}/revoke", req_path(&name)),
        None,
    )
    .await;
    assert_eq!(state_of(&r), RequestState::Revoked);
    assert!(grants(&app).await.is_empty());

    // Revoked through the network request: the approval request follows.
    let name = ask_ssh(&alice).await;
    decide(&bob, &name, "approve").await;
    let r = call(
        &alice,
        Method::POST,
        &format!("/api/v1{POLICY}/requests/{name}/revoke"),
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        state_of(&call(&alice, Method::GET, &req_path(&name), None).await),
        RequestState::Revoked
    );

    // Denied: nothing opens.
    let name = ask_ssh(&alice).await;
    assert_eq!(
        state_of(&decide(&bob, &name, "deny").await),
        RequestState::Denied
    );
    assert!(grants(&app).await.is_empty());

    // Undecided within the window: timeout.
    let name = ask_ssh(&alice).await;
    app.advance(SignedDuration::from_hours(1));
    app.tick().await;
    assert_eq!(
        state_of(&call(&alice, Method::GET, &req_path(&name), None).await),
        RequestState::Timeout
    );
    assert_eq!(decide(&bob, &name, "approve").await.status, 409);

    // Approved after the policy stopped covering the machine: fails, says why, opens nothing.
    let name = ask_ssh(&alice).await;
    let r = call(
        &app.admin,
        Method::PUT,
        &format!("/api/v1{POLICY}"),
        Some(manual_policy(
            VM_WIN,
            json!([{"id":"bob","type":"user"}]),
            None,
        )),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = decide(&bob, &name, "approve").await;
    assert_eq!(state_of(&r), RequestState::Failed, "{:?}", r.body);
    assert!(
        r.json::<JitRequest>()
            .properties
            .failure
            .is_some_and(|f| f.contains("not covered")),
        "{:?}",
        r.body
    );
    assert!(grants(&app).await.is_empty());
}

#[tokio::test]
async fn approval_settings_on_policies_are_checked() {
    let app = TestApp::spawn().await;
    setup(&app).await;
    let put = |body: Value| {
        let admin = app.admin.clone();
        async move { call(&admin, Method::PUT, &format!("/api/v1{POLICY}"), Some(body)).await }
    };
    let mut odd = policy_body(VM);
    odd["properties"]["approvalMode"] = json!("Sometimes");
    let r = put(odd).await;
    assert_eq!(
        (r.status, target(&r).as_str()),
        (400, "properties.approvalMode")
    );
    let r = put(manual_policy(VM, json!([]), None)).await;
    assert_eq!(
        (r.status, target(&r).as_str()),
        (400, "properties.approvers")
    );
    let r = put(manual_policy(
        VM,
        json!([{"id":"bob","type":"user"}]),
        Some(2),
    ))
    .await;
    assert_eq!(
        (r.status, target(&r).as_str()),
        (400, "properties.approvalThreshold")
    );
    let r = put(manual_policy(
        VM,
        json!([{"id":"bob","type":"robot"}]),
        None,
    ))
    .await;
    assert_eq!(
        (r.status, target(&r).as_str()),
        (400, "properties.approvers[0].type")
    );
    // None of that changed the policy: it still approves automatically.
    let r = call(&app.admin, Method::GET, &format!("/api/v1{POLICY}"), None).await;
    assert_eq!(
        r.json::<Policy>().properties.approval_mode,
        None,
        "{:?}",
        r.body
    );
    let alice = app.user("alice", Some(("JitRequester", RG))).await;
    let r = initiate(&alice, POLICY, json!({"number":22,"duration":"PT1H"})).await;
    assert_eq!(r.status, 202);
    let req: AccessRequest = r.json();
    assert_eq!(req.approval_request_id, None);
    assert_eq!(
        req.virtual_machines[0].ports[0].status,
        PortState::Initiated
    );
}

#[tokio::test]
async fn thresholds_apply_to_network_requests_too() {
    let app = TestApp::spawn().await;
    setup(&app).await;
    let approvers = json!([{"id":"bob","type":"user"},{"id":"carol","type":"user"}]);
    let r = call(
        &app.admin,
        Method::PUT,
        &format!("/api/v1{POLICY}"),
        Some(manual_policy(VM, approvers, Some(2))),
    )
    .await;
    assert_eq!(r.status, 200);
    let alice = app.user("alice", Some(("JitRequester", RG))).await;
    let bob = app.user("bob", Some(("Approver", RG))).await;
    let carol = app.user("carol", Some(("Approver", RG))).await;
    let name = ask_ssh(&alice).await;
    assert_eq!(
        state_of(&decide(&bob, &name, "approve").await),
        RequestState::Pending
    );
    assert!(grants(&app).await.is_empty());
    assert_eq!(
        state_of(&decide(&carol, &name, "approve").await),
        RequestState::Active
    );
    assert_eq!(grants(&app).await.len(), 1);
}

#[tokio::test]
async fn local_groups_give_eligibility_approval_and_roles() {
    let app = TestApp::spawn().await;
    let put_group = |name: &str, body: Value| {
        let admin = app.admin.clone();
        let path = format!("/api/v1/groups/{name}");
        async move { call(&admin, Method::PUT, &path, Some(body)).await }
    };
    assert_eq!(
        put_group("devs", json!({"members":["alice","frank"]}))
            .await
            .status,
        201
    );
    assert_eq!(
        put_group("ops", json!({"members":["erin"]})).await.status,
        201
    );
    let r = put_group("bad", json!({"members":[]})).await;
    assert_eq!((r.status, target(&r).as_str()), (400, "members"));
    let r = put_group("bad", json!({"members":["group:ops"]})).await;
    assert_eq!((r.status, target(&r).as_str()), (400, "members"));
    let r = put_group("bad name", json!({"members":["x"]})).await;
    assert_eq!(r.status, 400);
    let groups: List<Group> = get_as(&app.admin, "/api/v1/groups").await;
    let names: Vec<&str> = groups.value.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["devs", "ops"]);

    assign(&app, "devs-request", "group:devs", "JitRequester", RG).await;
    assign(&app, "ops-approve", "group:ops", "Approver", RG).await;
    let app_id = group_approved_app(&app, "ops").await;

    // frank holds no role of his own: everything comes through his group.
    let frank = app.user("frank", None).await;
    let erin = app.user("erin", None).await;
    let mallory = app.user("mallory", Some(("Approver", RG))).await;
    let body = |who: &str| activation(&app_id, who);
    let r = call(&frank, Method::PUT, &req_path("f1"), Some(body("frank"))).await;
    assert_eq!(
        (r.status, state_of(&r)),
        (201, RequestState::Pending),
        "{:?}",
        r.body
    );
    assert_eq!(inbox(&erin).await[0].name, "f1");
    assert!(inbox(&mallory).await.is_empty());
    assert_eq!(decide(&mallory, "f1", "approve").await.status, 403);
    assert_eq!(
        state_of(&decide(&erin, "f1", "approve").await),
        RequestState::Active
    );

    // The authorize endpoint knows the stored membership without being told.
    let r = call(
        &app.admin,
        Method::POST,
        "/api/v1/authorize",
        Some(json!({"principal":"frank","action":"ajar.jitRequests/write","scope":RG})),
    )
    .await;
    assert!(r.json::<AuthorizeAnswer>().allowed, "{:?}", r.body);

    // Out of the group, out of everything it gave.
    assert_eq!(
        put_group("devs", json!({"members":["alice"]})).await.status,
        200
    );
    let r = call(&frank, Method::PUT, &req_path("f2"), Some(body("frank"))).await;
    assert_eq!(r.status, 403, "{:?}", r.body);
    let r = call(
        &app.admin,
        Method::POST,
        "/api/v1/authorize",
        Some(json!({"principal":"frank","action":"ajar.jitRequests/write","scope":RG})),
    )
    .await;
    assert!(!r.json::<AuthorizeAnswer>().allowed, "{:?}", r.body);
    assert_eq!(
        call(&app.admin, Method::DELETE, "/api/v1/groups/ops", None)
            .await
            .status,
        204
    );
    assert_eq!(
        call(&app.admin, Method::GET, "/api/v1/groups/ops", None)
            .await
            .status,
        404
    );
    assert_eq!(
        call(&app.admin, Method::DELETE, "/api/v1/groups/ops", None)
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn history_covers_both_kinds_with_filters_and_visibility() {
    let app = TestApp::spawn().await;
    setup(&app).await;
    let r = call(
        &app.admin,
        Method::PUT,
        &format!("/api/v1{POLICY}"),
        Some(manual_policy(VM, json!([{"id":"bob","type":"user"}]), None)),
    )
    .await;
    assert_eq!(r.status, 200);
    let alice = app.user("alice", Some(("JitRequester", SUB))).await;
    let eve = app.user("eve", Some(("JitRequester", SUB))).await;
    let nobody = app.user("nobody", None).await;
    let t0 = app.now();
    // alice: one automatic network request (rg2), one pending under approval (rg1); eve: one
    // automatic, a minute later.
    let auto = initiate(
        &alice,
        POLICY2,
        json!({"number":22,"duration":"PT1H","allowedSourceAddressPrefix":"10.0.0.1"}),
    )
    .await;
    assert_eq!(auto.status, 202);
    app.advance(SignedDuration::from_secs(1));
    let pending = ask_ssh(&alice).await;
    app.advance(SignedDuration::from_mins(1));
    let eves = initiate(
        &eve,
        POLICY2,
        json!({"number":22,"duration":"PT1H","allowedSourceAddressPrefix":"10.0.0.2"}),
    )
    .await;
    assert_eq!(eves.status, 202);

    let get = |client: &ajar_api::Client, query: &str| {
        let client = client.clone();
        let path = format!("/api/v1/history{query}");
        async move { call(&client, Method::GET, &path, None).await }
    };
    let ids = |r: &RawResponse| -> Vec<String> {
        r.json::<List<HistoryEntry>>()
            .value
            .into_iter()
            .map(|e| e.id)
            .collect()
    };
    let auto = auto.json::<AccessRequest>().id;
    let eves = eves.json::<AccessRequest>().id;
    let all = get(&app.admin, "").await;
    assert_eq!(all.status, 200, "{:?}", all.body);
    let pending_id = format!("{RG}/jitRequests/{pending}");
    assert_eq!(
        ids(&all),
        [eves.as_str(), pending_id.as_str(), auto.as_str()],
        "newest first across both kinds"
    );
    let entries = all.json::<List<HistoryEntry>>().value;
    assert_eq!(entries[1].state, HistoryState::Pending);
    assert_eq!(entries[1].kind, RequestKind::Network);
    assert_eq!(entries[2].state, HistoryState::Active);
    // Network entries name their machines besides their policy, approval-gated or not.
    assert_eq!(
        (entries[1].target.as_str(), &entries[1].machines[..]),
        (POLICY, &[VM.to_owned()][..])
    );
    assert_eq!(
        (entries[2].target.as_str(), &entries[2].machines[..]),
        (POLICY2, &[VM2.to_owned()][..])
    );

    assert_eq!(
        ids(&get(&alice, "").await).len(),
        2,
        "a requester sees only their own"
    );
    assert_eq!(ids(&get(&app.admin, "?requester=eve").await).len(), 1);
    assert_eq!(
        ids(&get(&app.admin, "?state=Pending").await),
        [pending_id.as_str()]
    );
    assert_eq!(ids(&get(&app.admin, "?kind=role").await).len(), 0);
    let from = t0.checked_add(SignedDuration::from_secs(30)).unwrap();
    assert_eq!(
        ids(&get(&app.admin, &format!("?from={from}")).await).len(),
        1
    );
    assert_eq!(ids(&get(&app.admin, &format!("?to={from}")).await).len(), 2);

    // Pages follow one another without gaps or repeats.
    let first = get(&app.admin, "?top=2").await;
    assert_eq!(ids(&first).len(), 2);
    let next = first
        .json::<List<HistoryEntry>>()
        .next_link
        .expect("nextLink")
        .trim_start_matches("/api/v1/history")
        .to_owned();
    let second = get(&app.admin, &next).await;
    assert_eq!(ids(&second), [auto.as_str()]);
    assert_eq!(second.json::<List<HistoryEntry>>().next_link, None);

    // A requester's pages hold their own entries only, and no link names anyone else's: eve's
    // request, the newest, is neither shown nor used to continue.
    let mut pages = Vec::new();
    let mut query = "?top=1".to_owned();
    loop {
        let page = get(&alice, &query).await.json::<List<HistoryEntry>>();
        pages.push(page.value.iter().map(|e| e.id.clone()).collect::<Vec<_>>());
        let Some(link) = page.next_link else { break };
        assert!(!link.contains(&eves), "{link}");
        assert!(!link.to_lowercase().contains("eve"), "{link}");
        query = link.trim_start_matches("/api/v1/history").to_owned();
    }
    assert_eq!(pages, [vec![pending_id.clone()], vec![auto.clone()]]);
    let asked = get(&alice, "?requester=eve&top=1").await;
    assert_eq!(
        (
            ids(&asked).len(),
            asked.json::<List<HistoryEntry>>().next_link
        ),
        (0, None)
    );

    // Expired access stays in history.
    app.advance(SignedDuration::from_hours(2));
    app.tick().await;
    let after = get(&app.admin, "").await;
    let states: Vec<HistoryState> = after
        .json::<List<HistoryEntry>>()
        .value
        .iter()
        .map(|e| e.state)
        .collect();
    assert_eq!(
        states,
        [
            HistoryState::Expired,
            HistoryState::Timeout,
            HistoryState::Expired
        ]
    );

    for (query, param) in [
        ("?kind=vpn", "kind"),
        ("?from=yesterday", "from"),
        ("?state=Open", "state"),
        ("?top=0", "top"),
    ] {
        let r = get(&app.admin, query).await;
        assert_eq!((r.status, target(&r).as_str()), (400, param), "{query}");
    }
    assert_eq!(get(&nobody, "").await.status, 403);
}

#[tokio::test]
async fn a_request_that_cannot_move_does_not_hold_up_the_others() {
    let app = TestApp::spawn().await;
    setup(&app).await;
    require_approval(&app, json!([{"id":"bob","type":"user"}])).await;
    let on_vm2 = manual_policy(VM2, json!([{"id":"bob","type":"user"}]), None);
    call_ok(
        &app.admin,
        Method::PUT,
        &format!("/api/v1{POLICY2}"),
        Some(on_vm2),
    )
    .await;
    let alice = app.user("alice", Some(("JitRequester", SUB))).await;
    let port = json!({"number":22,"duration":"PT1H","allowedSourceAddressPrefix":"10.0.0.1"});
    let broken = initiate(&alice, POLICY, port.clone()).await;
    let fine = initiate(&alice, POLICY2, port).await;
    let approval_of = |r: &RawResponse| {
        r.json::<AccessRequest>()
            .approval_request_id
            .expect("approvalRequestId")
    };
    let (broken, fine) = (approval_of(&broken), approval_of(&fine));
    // The first request's policy becomes unreadable, so its timeout cannot be recorded.
    let mut tx = app.state.store.write().await.unwrap();
    tx.put_policy(
        POLICY,
        "s1",
        "rg1",
        "default",
        "{",
        &[VM.to_owned()],
        "e9",
        None,
        app.now(),
    )
    .await
    .unwrap();
    tx.commit_unrecorded().await.unwrap();
    app.advance(SignedDuration::from_hours(1));
    app.tick().await;
    let state = |id: String| {
        let alice = alice.clone();
        async move {
            let r = call(&alice, Method::GET, &format!("/api/v1{id}"), None).await;
            state_of(&r)
        }
    };
    assert_eq!(
        state(fine).await,
        RequestState::Timeout,
        "the other request moved"
    );
    assert_eq!(
        state(broken).await,
        RequestState::Pending,
        "undone whole, tried again later"
    );
}

/// `approvalRequestId` and the inbox's `id` are paths the API takes back as they are:
/// `POST /api/v1{approvalRequestId}/approve`.
#[tokio::test]
async fn the_approval_request_id_is_the_path_to_decide_on() {
    let app = TestApp::spawn().await;
    setup(&app).await;
    let r = call(
        &app.admin,
        Method::PUT,
        &format!("/api/v1{POLICY}"),
        Some(manual_policy(VM, json!([{"id":"bob","type":"user"}]), None)),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let alice = app.user("alice", Some(("JitRequester", RG))).await;
    let bob = app.user("bob", Some(("Approver", RG))).await;
    let r = initiate(
        &alice,
        POLICY,
        json!({"number":22,"duration":"PT1H","allowedSourceAddressPrefix":"10.9.0.1"}),
    )
    .await;
    let id = r.json::<AccessRequest>().approval_request_id.unwrap();
    assert_eq!(
        inbox(&bob).await[0].id,
        id,
        "the inbox names it the same way"
    );
    let r = call(
        &bob,
        Method::POST,
        &format!("/api/v1{id}/approve"),
        Some(json!({"reason":"ticket 123"})),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let decided: JitRequest = r.json();
    assert_eq!(decided.properties.jit_request_state, RequestState::Active);
    assert_eq!(grants(&app).await.len(), 1);
}
