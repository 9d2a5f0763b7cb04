//! The lifecycle of policies, requests and grants, with time moved by the manual clock.

use crate::*;
use ajar_api::wire::{
    AccessRequest, AccessRequestPort, JitState, List, Machine, Policy, PortState, PortStatusReason,
};
use ajar_testkit::TestApp;
use jiff::SignedDuration;
use reqwest::Method;
use serde_json::json;

/// Port `port` of machine `machine` of the access request in `r`.
fn port_of(r: &RawResponse, machine: usize, port: usize) -> AccessRequestPort {
    r.json::<AccessRequest>().virtual_machines[machine].ports[port].clone()
}

/// The id of the access request in `r`.
fn id_of(r: &RawResponse) -> String {
    r.json::<AccessRequest>().id
}

#[tokio::test]
async fn initiate_opens_a_port_until_it_expires() {
    let app = TestApp::spawn().await;
    setup(&app).await;
    let end = app
        .now()
        .checked_add(SignedDuration::from_hours(2))
        .unwrap();
    let r = initiate(&app.admin, POLICY, json!({"number":22,"endTimeUtc":end.to_string(),"allowedSourceAddressPrefix":"203.0.113.7"})).await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    let req: AccessRequest = r.json();
    assert_eq!(req.requestor, "admin");
    assert_eq!(req.justification.as_deref(), Some("debugging"));
    assert_eq!(req.start_time_utc, app.now());
    let p = &req.virtual_machines[0].ports[0];
    assert_eq!(
        (p.number, p.status, p.status_reason),
        (22, PortState::Initiated, PortStatusReason::UserRequested)
    );
    assert_eq!(
        p.allowed_source_address_prefix.as_deref(),
        Some("203.0.113.7")
    );
    assert_eq!(p.end_time_utc, end);

    let grants = app.admin.grants(VM).await.unwrap().value;
    assert_eq!(grants.len(), 1);
    assert_eq!(
        (grants[0].number, grants[0].source_address_prefixes.clone()),
        (22, vec!["203.0.113.7".to_owned()])
    );
    assert_eq!(grants[0].end_time_utc, end);

    // One second before the end: still open; the scheduler only sends the 15-minute warning
    // (once) and closes nothing.
    app.advance(SignedDuration::from_hours(2) - SignedDuration::from_secs(1));
    assert_eq!(app.tick().await, 1);
    assert_eq!(app.tick().await, 0);
    assert_eq!(app.admin.grants(VM).await.unwrap().value.len(), 1);
    // At the end: closed as Expired, exactly once.
    app.advance(SignedDuration::from_secs(1));
    assert!(
        app.admin.grants(VM).await.unwrap().value.is_empty(),
        "grants are closed at the end even before the scheduler runs"
    );
    assert_eq!(app.tick().await, 1);
    assert_eq!(app.tick().await, 0);
    let id = req.id;
    let got: AccessRequest = get_as(&app.admin, &format!("/api/v1{POLICY}/requests/{id}")).await;
    let p = &got.virtual_machines[0].ports[0];
    assert_eq!(
        (p.status, p.status_reason),
        (PortState::Revoked, PortStatusReason::Expired)
    );
    // History is kept after expiry, per policy and per machine.
    for path in [
        format!("/api/v1{POLICY}/requests"),
        format!("/api/v1{VM}/requests"),
    ] {
        let list: List<AccessRequest> = get_as(&app.admin, &path).await;
        assert_eq!(list.value.len(), 1, "{path}");
        assert_eq!(list.value[0].id, id);
    }
}

#[tokio::test]
async fn duration_and_my_ip_are_accepted() {
    let app = TestApp::spawn().await;
    setup(&app).await;
    let r = initiate(&app.admin, POLICY, json!({"number":22,"duration":"PT90M"})).await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    let p = port_of(&r, 0, 0);
    // No source means the caller's own address; tests connect from loopback.
    assert_eq!(
        p.allowed_source_address_prefix.as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(
        p.end_time_utc,
        app.now()
            .checked_add(SignedDuration::from_mins(90))
            .unwrap()
    );
}

#[tokio::test]
async fn a_newer_request_supersedes_the_older_for_the_same_port_and_source() {
    let app = TestApp::spawn().await;
    setup(&app).await;
    let first = initiate(
        &app.admin,
        POLICY,
        json!({"number":22,"duration":"PT1H","allowedSourceAddressPrefix":"198.51.100.1"}),
    )
    .await;
    let other_source = initiate(
        &app.admin,
        POLICY,
        json!({"number":22,"duration":"PT1H","allowedSourceAddressPrefix":"198.51.100.2"}),
    )
    .await;
    app.advance(SignedDuration::from_mins(10));
    let second = initiate(
        &app.admin,
        POLICY,
        json!({"number":22,"duration":"PT2H","allowedSourceAddressPrefix":"198.51.100.1"}),
    )
    .await;
    assert_eq!(second.status, 202);
    let get = |r: &RawResponse| format!("/api/v1{POLICY}/requests/{}", id_of(r));
    let old = call(&app.admin, Method::GET, &get(&first), None).await;
    assert_eq!(port_of(&old, 0, 0).status, PortState::Revoked);
    assert_eq!(
        port_of(&old, 0, 0).status_reason,
        PortStatusReason::NewerRequestInitiated
    );
    let kept = call(&app.admin, Method::GET, &get(&other_source), None).await;
    assert_eq!(
        port_of(&kept, 0, 0).status,
        PortState::Initiated,
        "another source is not superseded"
    );
    let grants = app.admin.grants(VM).await.unwrap().value;
    assert_eq!(grants.len(), 2);
    assert!(grants.iter().all(|g| g.request_id != id_of(&first)));
    // The list is newest first.
    let list: List<AccessRequest> = get_as(&app.admin, &format!("/api/v1{POLICY}/requests")).await;
    assert_eq!(list.value[0].id, id_of(&second));
}

#[tokio::test]
async fn revoke_closes_a_request_early() {
    let app = TestApp::spawn().await;
    setup(&app).await;
    let r = initiate(
        &app.admin,
        POLICY,
        json!({"number":22,"duration":"PT1H","allowedSourceAddressPrefix":"*"}),
    )
    .await;
    let id = &id_of(&r);
    let revoked = app.admin.revoke(POLICY, id).await.unwrap();
    let p = &revoked.virtual_machines[0].ports[0];
    assert_eq!(
        (p.status, p.status_reason),
        (PortState::Revoked, PortStatusReason::UserRequested)
    );
    assert!(app.admin.grants(VM).await.unwrap().value.is_empty());
    // Expiry later does not reopen or rewrite it.
    app.advance(SignedDuration::from_hours(2));
    assert_eq!(app.tick().await, 0);
    let again = app.admin.revoke(POLICY, id).await.unwrap();
    assert_eq!(
        again.virtual_machines[0].ports[0].status_reason,
        PortStatusReason::UserRequested
    );
    // Unknown request, or a request of another policy: 404.
    let e = app
        .admin
        .revoke(POLICY, "no-such-request")
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(404));
    let e = app.admin.revoke(POLICY2, id).await.unwrap_err();
    assert_eq!(e.status(), Some(404));
}

#[tokio::test]
async fn a_restart_catches_up_on_overdue_expiries() {
    let app = TestApp::spawn().await;
    setup(&app).await;
    let short = initiate(
        &app.admin,
        POLICY,
        json!({"number":22,"duration":"PT10M","allowedSourceAddressPrefix":"*"}),
    )
    .await;
    let long = initiate(
        &app.admin,
        POLICY,
        json!({"number":3389,"duration":"PT1H","allowedSourceAddressPrefix":"10.0.0.1"}),
    )
    .await;
    assert_eq!((short.status, long.status), (202, 202));
    // The server goes down; 30 minutes pass; it comes back on the same database.
    app.admin.grants(VM).await.unwrap();
    let token = app.admin_token.clone();
    let app = {
        let stopped_at = app.now();
        let app = app.restart().await;
        app.advance(SignedDuration::from_mins(30));
        assert_eq!(
            app.now(),
            stopped_at
                .checked_add(SignedDuration::from_mins(30))
                .unwrap()
        );
        app
    };
    // The restarted scheduler closes exactly the overdue port (its catch-up pass may already
    // have run; either way the result is the same and nothing is closed twice).
    let closed_now = app.tick().await;
    assert!(closed_now <= 1);
    let admin = app.client(Some(&token));
    let grants = admin.grants(VM).await.unwrap().value;
    assert_eq!(
        grants.iter().map(|g| g.number).collect::<Vec<_>>(),
        vec![3389]
    );
    let s = call(
        &admin,
        Method::GET,
        &format!("/api/v1{POLICY}/requests/{}", id_of(&short)),
        None,
    )
    .await;
    assert_eq!(port_of(&s, 0, 0).status_reason, PortStatusReason::Expired);
    app.stop().await;
}

#[tokio::test]
async fn restart_catch_up_runs_without_being_asked() {
    let app = TestApp::spawn().await;
    setup(&app).await;
    let r = initiate(
        &app.admin,
        POLICY,
        json!({"number":22,"duration":"PT10M","allowedSourceAddressPrefix":"*"}),
    )
    .await;
    app.advance(SignedDuration::from_hours(1));
    let app = app.restart().await;
    // No tick: the scheduler's first pass on start must close the overdue port by itself.
    let path = format!("/api/v1{POLICY}/requests/{}", id_of(&r));
    let mut status = None;
    for _ in 0..200 {
        let got = call(&app.admin, Method::GET, &path, None).await;
        status = Some(port_of(&got, 0, 0).status_reason);
        if status == Some(PortStatusReason::Expired) {
            break;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(status, Some(PortStatusReason::Expired));
    assert_eq!(app.tick().await, 0, "already caught up");
}

#[tokio::test]
async fn changing_the_policy_closes_ports_it_no_longer_allows() {
    let app = TestApp::spawn().await;
    setup(&app).await;
    let ssh = initiate(
        &app.admin,
        POLICY,
        json!({"number":22,"duration":"PT1H","allowedSourceAddressPrefix":"*"}),
    )
    .await;
    let rdp = initiate(
        &app.admin,
        POLICY,
        json!({"number":3389,"duration":"PT1H","allowedSourceAddressPrefix":"10.0.0.9"}),
    )
    .await;
    // New policy: 22 only from 192.0.2.0/24 (the open '*' grant no longer fits), 3389 unchanged.
    let body = json!({"properties":{"virtualMachines":[{"id":VM,"ports":[
        {"number":22,"protocol":"*","allowedSourceAddressPrefix":"192.0.2.0/24","maxRequestAccessDuration":"PT3H"},
        {"number":3389,"protocol":"TCP","allowedSourceAddressPrefixes":["10.0.0.0/24"],"maxRequestAccessDuration":"PT1H"}]}]}});
    let r = call(
        &app.admin,
        Method::PUT,
        &format!("/api/v1{POLICY}"),
        Some(body),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let get = |r: &RawResponse| format!("/api/v1{POLICY}/requests/{}", id_of(r));
    let s = call(&app.admin, Method::GET, &get(&ssh), None).await;
    assert_eq!(
        port_of(&s, 0, 0).status_reason,
        PortStatusReason::PolicyChanged
    );
    let d = call(&app.admin, Method::GET, &get(&rdp), None).await;
    assert_eq!(port_of(&d, 0, 0).status, PortState::Initiated);
    // Deleting the policy closes the rest and leaves the machine NotConfigured.
    let r = call(
        &app.admin,
        Method::DELETE,
        &format!("/api/v1{POLICY}"),
        None,
    )
    .await;
    assert_eq!(r.status, 204);
    assert!(app.admin.grants(VM).await.unwrap().value.is_empty());
    let m: Machine = get_as(&app.admin, &format!("/api/v1{VM}")).await;
    assert_eq!(m.properties.jit_state, JitState::NotConfigured);
    // History survives the policy.
    let d: List<AccessRequest> = get_as(&app.admin, &format!("/api/v1{VM}/requests")).await;
    assert_eq!(d.value.len(), 2);
}

#[tokio::test]
async fn etags_prevent_lost_updates() {
    let app = TestApp::spawn().await;
    setup(&app).await;
    let r = call(&app.admin, Method::GET, &format!("/api/v1{POLICY}"), None).await;
    let etag = r.etag.clone().unwrap();
    assert_eq!(format!("\"{}\"", r.json::<Policy>().etag), etag);
    let put = |tag: &str| {
        let tag = tag.to_owned();
        let admin = app.admin.clone();
        async move {
            admin
                .raw_with(
                    Method::PUT,
                    &format!("/api/v1{POLICY}"),
                    Some(&policy_body(VM)),
                    &[("If-Match", &tag)],
                )
                .await
                .unwrap()
        }
    };
    let ok = put(&etag).await;
    assert_eq!(ok.status, 200);
    let stale = put(&etag).await;
    assert_eq!(
        (stale.status, code(&stale)),
        (412, ErrorCode::PreconditionFailed)
    );
    let create_only = app
        .admin
        .raw_with(
            Method::PUT,
            &format!("/api/v1{POLICY}"),
            Some(&policy_body(VM)),
            &[("If-None-Match", "*")],
        )
        .await
        .unwrap();
    assert_eq!(create_only.status, 412);
}

#[tokio::test]
async fn machines_show_their_jit_state_and_enable_with_defaults() {
    let app = TestApp::spawn().await;
    setup(&app).await;
    let bare = format!("{RG}/machines/bare");
    call_ok(
        &app.admin,
        Method::PUT,
        &format!("/api/v1{bare}"),
        Some(json!({"properties":{"os":"linux"}})),
    )
    .await;
    let states = |state: &'static str| {
        let admin = app.admin.clone();
        async move {
            let r = call(
                &admin,
                Method::GET,
                &format!("/api/v1{RG}/machines?state={state}"),
                None,
            )
            .await;
            assert_eq!(r.status, 200);
            r.json::<List<Machine>>()
                .value
                .into_iter()
                .map(|m| m.name)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(states("Configured").await, vec!["vm1"]);
    assert_eq!(states("NotConfigured").await, vec!["win1"]);
    assert_eq!(states("Unsupported").await, vec!["bare"]);
    let b: Machine = get_as(&app.admin, &format!("/api/v1{bare}")).await;
    let reason = b.properties.unsupported_reason.unwrap_or_default();
    assert!(
        reason.starts_with("no live agent guards this machine: register one with `ajar agent add"),
        "the reason names the fix: {reason}"
    );
    // Subscription scope lists every group.
    let all: List<Machine> = get_as(&app.admin, &format!("/api/v1{SUB}/machines")).await;
    assert_eq!(all.value.len(), 4);

    // Enable with defaults: windows gets 3389, PT3H, any source, added to the existing policy
    // without touching vm1.
    let r = call(
        &app.admin,
        Method::POST,
        &format!("/api/v1{VM_WIN}/enableJit"),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.json::<Policy>().properties.virtual_machines.len(), 2);
    // The added machine and its default rule as written on the wire (read raw: the typed id and
    // sources would accept other spellings).
    assert_eq!(
        r.body["properties"]["virtualMachines"][1],
        json!({"id":VM_WIN,"ports":[{"number":3389,"protocol":"*","allowedSourceAddressPrefix":"*","maxRequestAccessDuration":"PT3H"}]})
    );
    assert_eq!(states("Configured").await, vec!["vm1", "win1"]);
    // Again: idempotent.
    let again = call(
        &app.admin,
        Method::POST,
        &format!("/api/v1{VM_WIN}/enableJit"),
        None,
    )
    .await;
    assert_eq!(again.status, 200);
    assert_eq!(again.json::<Policy>().properties.virtual_machines.len(), 2);
    // Into a new policy, with custom ports.
    let lin = format!("{RG}/machines/lin2");
    call_ok(
        &app.admin,
        Method::PUT,
        &format!("/api/v1{lin}"),
        Some(machine_body("linux")),
    )
    .await;
    let r = call(&app.admin, Method::POST, &format!("/api/v1{lin}/enableJit"), Some(json!({"policy":"ops","ports":[
        {"number":5985,"protocol":"TCP","allowedSourceAddressPrefix":"10.0.0.0/8","maxRequestAccessDuration":"PT1H"}]}))).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(
        r.json::<Policy>().id,
        format!("{RG}/jitNetworkAccessPolicies/ops")
    );
    let bad = call(
        &app.admin,
        Method::POST,
        &format!("/api/v1{VM_WIN}/enableJit"),
        Some(json!({"policy":"ops"})),
    )
    .await;
    assert_eq!(
        (bad.status, code(&bad)),
        (409, ErrorCode::Conflict),
        "win1 is already in policy default"
    );
    let bad = call(
        &app.admin,
        Method::POST,
        &format!("/api/v1{RG}/machines/ghost/enableJit"),
        None,
    )
    .await;
    assert_eq!(bad.status, 404);
}

#[tokio::test]
async fn jit_can_be_turned_off_for_a_scope() {
    let app = TestApp::spawn().await;
    setup(&app).await;
    let r = call(
        &app.admin,
        Method::PUT,
        &format!("/api/v1{RG}/jitSettings"),
        Some(json!({"jitEnabled":false})),
    )
    .await;
    assert_eq!(r.status, 200);
    let m: Machine = get_as(&app.admin, &format!("/api/v1{VM}")).await;
    assert_eq!(m.properties.jit_state, JitState::Unsupported);
    assert_eq!(
        m.properties.unsupported_reason,
        Some(format!("JIT is disabled for scope {RG}"))
    );
    let r = initiate(&app.admin, POLICY, json!({"number":22,"duration":"PT1H"})).await;
    assert_eq!((r.status, code(&r)), (409, ErrorCode::Conflict));
    let other = initiate(&app.admin, POLICY2, json!({"number":22,"duration":"PT1H"})).await;
    assert_eq!(other.status, 202, "rg2 is unaffected");
    call_ok(
        &app.admin,
        Method::PUT,
        &format!("/api/v1{RG}/jitSettings"),
        Some(json!({"jitEnabled":true})),
    )
    .await;
    let r = initiate(&app.admin, POLICY, json!({"number":22,"duration":"PT1H"})).await;
    assert_eq!(r.status, 202);
}

#[tokio::test]
async fn request_history_is_paged() {
    let app = TestApp::spawn().await;
    setup(&app).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        app.advance(SignedDuration::from_secs(1));
        let r = initiate(&app.admin, POLICY, json!({"number":22,"duration":"PT1H","allowedSourceAddressPrefix":format!("192.0.2.{i}")})).await;
        ids.push(id_of(&r));
    }
    ids.reverse();
    let mut seen = Vec::new();
    let mut path = format!("/api/v1{POLICY}/requests?top=2");
    loop {
        let r = call(&app.admin, Method::GET, &path, None).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let page: List<AccessRequest> = r.json();
        seen.extend(page.value.into_iter().map(|v| v.id));
        match page.next_link {
            Some(next) => path = next,
            None => break,
        }
    }
    assert_eq!(seen, ids);
    let r = call(
        &app.admin,
        Method::GET,
        &format!("/api/v1{POLICY}/requests?top=0"),
        None,
    )
    .await;
    assert_eq!((r.status, target(&r).as_str()), (400, "top"));
    let r = call(
        &app.admin,
        Method::GET,
        &format!("/api/v1{POLICY}/requests?skipToken=garbage"),
        None,
    )
    .await;
    assert_eq!((r.status, target(&r).as_str()), (400, "skipToken"));
}

#[tokio::test]
async fn concurrent_initiates_are_all_stored_and_exactly_one_per_source_stays_open() {
    let app = TestApp::spawn().await;
    setup(&app).await;
    let send = |source: String| spawn_initiate(&app.admin, source);
    let distinct: Vec<_> = (0..40).map(|i| send(format!("198.51.100.{i}"))).collect();
    let same: Vec<_> = (0..20).map(|_| send("203.0.113.99".to_owned())).collect();
    for task in distinct.into_iter().chain(same) {
        let r = task.await.unwrap();
        assert_eq!(r.status, 202, "{:?}", r.body);
    }
    let grants = app.admin.grants(VM).await.unwrap().value;
    assert_eq!(
        grants.len(),
        41,
        "40 distinct sources and one survivor of the 20 alike"
    );
    let list: List<AccessRequest> =
        get_as(&app.admin, &format!("/api/v1{POLICY}/requests?top=100")).await;
    let superseded = list
        .value
        .iter()
        .filter(|r| {
            r.virtual_machines[0].ports[0].status_reason == PortStatusReason::NewerRequestInitiated
        })
        .count();
    assert_eq!(superseded, 19);
}

#[tokio::test]
async fn a_superseded_request_reads_the_same_in_every_view() {
    let app = TestApp::spawn().await;
    setup(&app).await;
    let port = json!({"number":22,"duration":"PT1H","allowedSourceAddressPrefix":"10.9.0.1"});
    let first = id_of(&initiate(&app.admin, POLICY, port.clone()).await);
    app.advance(SignedDuration::from_secs(1));
    let second = id_of(&initiate(&app.admin, POLICY, port).await);

    // The request's own view: its port is Revoked because a newer request replaced it.
    let req: AccessRequest = get_as(&app.admin, &format!("/api/v1{POLICY}/requests/{first}")).await;
    let p = &req.virtual_machines[0].ports[0];
    assert_eq!(
        (p.status, p.status_reason),
        (PortState::Revoked, PortStatusReason::NewerRequestInitiated)
    );
    assert_eq!(p.state_words(), "Revoked (NewerRequestInitiated)");

    // History says the same pair, not a word of its own.
    let history: List<ajar_api::wire::HistoryEntry> = get_as(&app.admin, "/api/v1/history").await;
    let entry = history
        .value
        .iter()
        .find(|e| e.id == first)
        .expect("in history");
    assert_eq!(entry.state, ajar_api::wire::HistoryState::Revoked);
    assert_eq!(
        entry.state_reason,
        Some(PortStatusReason::NewerRequestInitiated)
    );
    assert_eq!(entry.state_words(), p.state_words());
    let newer = history
        .value
        .iter()
        .find(|e| e.id == second)
        .expect("in history");
    assert_eq!((newer.state.as_str(), newer.state_reason), ("Active", None));
    // Filtering by the word finds it; the old word is not a state.
    let revoked: List<ajar_api::wire::HistoryEntry> =
        get_as(&app.admin, "/api/v1/history?state=Revoked").await;
    assert_eq!(
        revoked
            .value
            .iter()
            .map(|e| e.id.as_str())
            .collect::<Vec<_>>(),
        [first.as_str()]
    );
    let r = call(
        &app.admin,
        Method::GET,
        "/api/v1/history?state=Superseded",
        None,
    )
    .await;
    assert_eq!((r.status, target(&r)), (400, "state".to_owned()));

    // The window of the newer one ends: Expired, and its port says why it closed.
    app.advance(SignedDuration::from_hours(1));
    app.tick().await;
    let history: List<ajar_api::wire::HistoryEntry> = get_as(&app.admin, "/api/v1/history").await;
    let newer = history
        .value
        .iter()
        .find(|e| e.id == second)
        .expect("in history");
    assert_eq!(newer.state_words(), "Expired");
    assert_eq!(newer.state_reason, Some(PortStatusReason::Expired));
}
