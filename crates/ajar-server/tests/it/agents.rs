//! Agents: registration, what they may see, the desired-state feed, liveness and reports.

use crate::*;
use ajar_api::wire::{
    AccessRequest, ActivityRecord, Agent, DesiredState, JitState, List, Machine, ProtectedPort,
};
use ajar_core::agent::AgentMode;
use ajar_core::net::{Port, Protocol, SourcePrefix};
use ajar_testkit::TestApp;
use jiff::SignedDuration;
use reqwest::Method;
use serde_json::json;
use std::net::IpAddr;
use std::time::{Duration, Instant};

fn source(s: &str) -> SourcePrefix {
    SourcePrefix::parse(s).unwrap()
}

#[tokio::test]
async fn registration_is_validated() {
    let app = TestApp::spawn().await;
    setup(&app).await; // registers agent-1 for vm1, win1, vm2
    let cases = [
        (
            json!({"name":"g","mode":"gateway","machines":[]}),
            400,
            "publicAddress",
        ),
        (
            json!({"name":"g","mode":"gateway","machines":[],"publicAddress":"192.0.2.1"}),
            400,
            "mappedPortRange",
        ),
        (
            json!({"name":"g","mode":"gateway","machines":[],"publicAddress":"192.0.2.1","mappedPortRange":"5-1"}),
            400,
            "mappedPortRange",
        ),
        (
            json!({"name":"h","mode":"host","machines":[],"mappedPortRange":"1-5"}),
            400,
            "mode",
        ),
        (
            json!({"name":"h","mode":"router","machines":[]}),
            400,
            "mode",
        ),
        (
            json!({"name":"h","mode":"host","machines":[format!("{RG}/machines/ghost")]}),
            404,
            "machines[0]",
        ),
        (
            json!({"name":"h","mode":"host","machines":[VM]}),
            409,
            "machines[0]",
        ),
        (
            json!({"name":"agent-1","mode":"host","machines":[]}),
            409,
            "name",
        ),
        (
            json!({"name":"bad name","mode":"host","machines":[]}),
            400,
            "name",
        ),
    ];
    for (body, status, t) in cases {
        let r = call(
            &app.admin,
            Method::POST,
            "/api/v1/agents",
            Some(body.clone()),
        )
        .await;
        assert_eq!(
            (r.status, target(&r).as_str()),
            (status, t),
            "{body}: {:?}",
            r.body
        );
    }
    let list: List<Agent> = get_as(&app.admin, "/api/v1/agents").await;
    assert_eq!(list.value.len(), 1, "nothing was registered");
}

#[tokio::test]
async fn an_agent_sees_only_its_own_machines_and_nothing_else() {
    let app = TestApp::spawn().await;
    for (id, os) in [(VM, "linux"), (VM2, "linux")] {
        call_ok(
            &app.admin,
            Method::PUT,
            &format!("/api/v1{id}"),
            Some(machine_body(os)),
        )
        .await;
    }
    for (policy, vm) in [(POLICY, VM), (POLICY2, VM2)] {
        call_ok(
            &app.admin,
            Method::PUT,
            &format!("/api/v1{policy}"),
            Some(policy_body(vm)),
        )
        .await;
    }
    let (a, _) = app.agent("a", &[VM], None).await;
    let (b, _) = app.agent("b", &[VM2], None).await;
    initiate(
        &app.admin,
        POLICY,
        json!({"number":22,"duration":"PT1H","allowedSourceAddressPrefix":"198.51.100.1"}),
    )
    .await;
    initiate(
        &app.admin,
        POLICY2,
        json!({"number":22,"duration":"PT1H","allowedSourceAddressPrefix":"198.51.100.2"}),
    )
    .await;

    let state = call(&a, Method::GET, "/api/v1/agent/desiredState", None).await;
    assert_eq!(state.status, 200);
    let state: DesiredState = state.json();
    let machines = &state.machines;
    assert_eq!(machines.len(), 1);
    assert_eq!(machines[0].id, VM);
    assert_eq!(
        machines[0].addresses,
        vec!["10.1.0.4".parse::<IpAddr>().unwrap()]
    );
    assert_eq!(
        machines[0].protected_ports,
        vec![
            ProtectedPort {
                number: Port::from(22),
                protocol: Protocol::Any
            },
            ProtectedPort {
                number: Port::from(3389),
                protocol: Protocol::Tcp
            }
        ]
    );
    let grants = &machines[0].grants;
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].sources, vec![source("198.51.100.1")]);
    assert_eq!(state.server_time, app.now());
    let other: DesiredState = get_as(&b, "/api/v1/agent/desiredState").await;
    assert_eq!(
        other.machines[0].grants[0].sources,
        vec![source("198.51.100.2")]
    );

    // Deny by default: an agent's token opens nothing else, and mints no tokens.
    for (m, path, body) in [
        (Method::GET, format!("/api/v1{VM}"), None),
        (Method::GET, format!("/api/v1{POLICY}"), None),
        (
            Method::POST,
            format!("/api/v1{POLICY}/initiate"),
            Some(initiate_body(VM, json!({"number":22,"duration":"PT1H"}))),
        ),
        (Method::GET, "/api/v1/agents".to_owned(), None),
        (
            Method::POST,
            "/api/v1/tokens".to_owned(),
            Some(json!({"principal":"agent:a"})),
        ),
    ] {
        let r = call(&a, m, &path, body).await;
        assert_eq!(r.status, 403, "{path}");
    }
    // And people are not agents.
    let r = call(&app.admin, Method::GET, "/api/v1/agent/desiredState", None).await;
    assert_eq!(r.status, 403);
}

#[tokio::test]
async fn the_feed_answers_at_once_on_change_and_waits_otherwise() {
    let app = TestApp::spawn().await;
    let agent = setup(&app).await; // agent-1, guarding vm1, win1 and vm2
    let first: DesiredState = get_as(&agent, "/api/v1/agent/desiredState").await;
    let rev = first.revision;

    // Nothing changes: the poll waits its time (less at most a fifth, which spreads agents out)
    // and answers the same revision.
    let t0 = Instant::now();
    let same = call(
        &agent,
        Method::GET,
        &format!("/api/v1/agent/desiredState?after={rev}&waitSeconds=1"),
        None,
    )
    .await;
    assert!(t0.elapsed() >= Duration::from_millis(790));
    assert_eq!(same.json::<DesiredState>().revision, rev);

    // A grant arrives while the agent waits: the poll answers at once with it.
    let waiting = {
        let agent = agent.clone();
        tokio::spawn(async move {
            let t0 = Instant::now();
            let r = call(
                &agent,
                Method::GET,
                &format!("/api/v1/agent/desiredState?after={rev}&waitSeconds=30"),
                None,
            )
            .await;
            (r, t0.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    initiate(
        &app.admin,
        POLICY,
        json!({"number":22,"duration":"PT1H","allowedSourceAddressPrefix":"198.51.100.9"}),
    )
    .await;
    let (r, took) = waiting.await.unwrap();
    assert!(took < Duration::from_secs(5), "the feed took {took:?}");
    let r: DesiredState = r.json();
    assert!(r.revision > rev);
    assert_eq!(
        r.machines[0].grants[0].sources,
        vec![source("198.51.100.9")]
    );

    let bad = call(
        &agent,
        Method::GET,
        "/api/v1/agent/desiredState?after=x",
        None,
    )
    .await;
    assert_eq!((bad.status, target(&bad).as_str()), (400, "after"));
}

/// A change wakes only the agent guarding the machine it changed, and that agent, being up to
/// date, reads only that machine; an agent behind a change to its set of machines, or asking
/// without a revision, reads its whole state.
#[tokio::test]
async fn a_change_wakes_only_its_agent_which_reads_only_what_changed() {
    let app = TestApp::spawn().await;
    let agent = setup(&app).await; // agent-1, guarding vm1, win1 and vm2
    let vm3 = format!("{RG2}/machines/vm3");
    call_ok(
        &app.admin,
        Method::PUT,
        &format!("/api/v1{vm3}"),
        Some(json!({"properties":{"os":"linux","addresses":["10.1.0.7"]}})),
    )
    .await;
    let (other, other_id) = app.agent("agent-2", &[&vm3], None).await;
    let first: DesiredState = get_as(&agent, "/api/v1/agent/desiredState").await;
    assert!(!first.changes_only);
    assert_eq!(first.machines.len(), 3);
    let other_first: DesiredState = get_as(&other, "/api/v1/agent/desiredState").await;

    let poll = |client: &ajar_api::Client, after: i64| {
        let client = client.clone();
        tokio::spawn(async move {
            call(
                &client,
                Method::GET,
                &format!(
                    "/api/v1/agent/desiredState?after={after}&waitSeconds=30&changesOnly=true"
                ),
                None,
            )
            .await
        })
    };
    let waiting = poll(&agent, first.revision);
    let other_waiting = poll(&other, other_first.revision);
    initiate(
        &app.admin,
        POLICY,
        json!({"number":22,"duration":"PT1H","allowedSourceAddressPrefix":"198.51.100.9"}),
    )
    .await;
    let changed: DesiredState = waiting.await.unwrap().json();
    assert!(changed.changes_only);
    assert!(changed.revision > first.revision);
    assert_eq!(changed.machines.len(), 1, "only vm1 changed");
    assert_eq!(changed.machines[0].id, VM);
    assert_eq!(
        changed.machines[0].grants[0].sources,
        vec![source("198.51.100.9")]
    );
    // agent-2 guards nothing that changed: its revision stayed, and its poll still waits.
    let seen: Agent = get_as(&app.admin, &format!("/api/v1/agents/{other_id}")).await;
    assert_eq!(seen.current_revision, other_first.revision);
    assert!(!other_waiting.is_finished());
    other_waiting.abort();
    let now: DesiredState = get_as(
        &other,
        &format!(
            "/api/v1/agent/desiredState?after={}&waitSeconds=0&changesOnly=true",
            other_first.revision
        ),
    )
    .await;
    assert!(now.changes_only && now.machines.is_empty());
    assert_eq!(now.revision, other_first.revision);

    // Deleting a machine it guards changes agent-1's set of machines: it reads them all again.
    call_ok(
        &app.admin,
        Method::DELETE,
        &format!("/api/v1{VM_WIN}"),
        None,
    )
    .await;
    let whole: DesiredState = get_as(
        &agent,
        &format!(
            "/api/v1/agent/desiredState?after={}&waitSeconds=0&changesOnly=true",
            changed.revision
        ),
    )
    .await;
    assert!(!whole.changes_only);
    let ids: Vec<&str> = whole.machines.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, [VM, VM2]);
    // Without a revision, the whole state; and without `changesOnly` (an agent that does not
    // know it), the whole state too.
    let again: DesiredState = get_as(&agent, "/api/v1/agent/desiredState").await;
    assert!(!again.changes_only);
    assert_eq!(again.machines.len(), 2);
    assert_eq!(again.revision, whole.revision);
    let old_style: DesiredState = get_as(
        &agent,
        &format!(
            "/api/v1/agent/desiredState?after={}&waitSeconds=0",
            whole.revision
        ),
    )
    .await;
    assert_eq!(
        (old_style.changes_only, old_style.machines.len()),
        (false, 2)
    );
    let bad = call(
        &agent,
        Method::GET,
        "/api/v1/agent/desiredState?changesOnly=yes",
        None,
    )
    .await;
    assert_eq!((bad.status, target(&bad).as_str()), (400, "changesOnly"));
}

#[tokio::test]
async fn machines_without_a_live_agent_are_unsupported() {
    let app = TestApp::spawn().await;
    let agent = setup(&app).await;
    let state = |app: &TestApp| {
        let admin = app.admin.clone();
        async move {
            let m: Machine = get_as(&admin, &format!("/api/v1{VM}")).await;
            (m.properties.jit_state, m.properties.enforcement_point)
        }
    };
    assert_eq!(
        state(&app).await,
        (JitState::Configured, Some("agent-1".to_owned()))
    );
    app.advance(SignedDuration::from_secs(61));
    assert_eq!(state(&app).await.0, JitState::Unsupported);
    let agents: List<Agent> = get_as(&app.admin, "/api/v1/agents").await;
    assert!(!agents.value[0].live);
    call_ok(&agent, Method::GET, "/api/v1/agent/desiredState", None).await;
    assert_eq!(
        state(&app).await.0,
        JitState::Configured,
        "live again once it polls"
    );
}

#[tokio::test]
async fn a_poll_is_noted_in_memory_and_written_by_the_next_scheduler_pass() {
    let app = TestApp::spawn().await;
    let agent = setup(&app).await;
    let stored = |app: &TestApp| {
        let store = app.state.store.clone();
        async move {
            let mut tx = store.read().await.unwrap();
            let agents = tx.agents().await.unwrap();
            agents
                .into_iter()
                .find(|a| a.name == "agent-1")
                .unwrap()
                .last_seen
        }
    };
    app.tick().await;
    let before = stored(&app).await;
    app.advance(SignedDuration::from_secs(30));
    call_ok(&agent, Method::GET, "/api/v1/agent/desiredState", None).await;
    assert_eq!(stored(&app).await, before, "a poll writes nothing");
    let listed = call_ok(&app.admin, Method::GET, "/api/v1/agents", None).await;
    assert_eq!(
        listed.body["value"][0]["lastSeen"].as_str(),
        Some(app.now().to_string().as_str()),
        "readers see the noted time at once"
    );
    app.tick().await;
    assert_eq!(stored(&app).await, Some(app.now()), "the pass writes it");
}

#[tokio::test]
async fn reports_show_when_ports_opened_and_closed() {
    let app = TestApp::spawn().await;
    let agent = setup(&app).await; // agent-1, guarding vm1, win1 and vm2
    let req = initiate(
        &app.admin,
        POLICY,
        json!({"number":22,"duration":"PT1H","allowedSourceAddressPrefix":"*"}),
    )
    .await;
    let id = &req.json::<AccessRequest>().id;
    let opened = app.now();
    let closed = opened.checked_add(SignedDuration::from_mins(5)).unwrap();
    let r = call(
        &agent,
        Method::POST,
        "/api/v1/agent/report",
        Some(json!({"version":"0.1.0","appliedRevision":9,
        "opened":[{"requestId":id,"seq":0,"at":opened.to_string()}],
        "closed":[{"requestId":id,"seq":0,"at":closed.to_string()}]})),
    )
    .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    let got: AccessRequest = get_as(&app.admin, &format!("/api/v1{POLICY}/requests/{id}")).await;
    let port = &got.virtual_machines[0].ports[0];
    assert_eq!(
        (port.open_since, port.closed_at),
        (Some(opened), Some(closed))
    );
    let agents: List<Agent> = get_as(&app.admin, "/api/v1/agents").await;
    assert_eq!(
        (
            agents.value[0].version.as_deref(),
            agents.value[0].applied_revision
        ),
        (Some("0.1.0"), Some(9))
    );

    // Another agent's report about a machine it does not guard changes nothing.
    let other_machine = format!("{RG}/machines/other");
    call_ok(
        &app.admin,
        Method::PUT,
        &format!("/api/v1{other_machine}"),
        Some(machine_body("linux")),
    )
    .await;
    let (intruder, _) = app.agent("intruder", &[other_machine.as_str()], None).await;
    let req2 = initiate(
        &app.admin,
        POLICY,
        json!({"number":3389,"duration":"PT1H","allowedSourceAddressPrefix":"10.0.0.1"}),
    )
    .await;
    let id2 = &req2.json::<AccessRequest>().id;
    // The report is accepted (an agent cannot tell what it may report on) and ignored.
    call_ok(
        &intruder,
        Method::POST,
        "/api/v1/agent/report",
        Some(json!({"version":"x","appliedRevision":1,
        "opened":[{"requestId":id2,"seq":0,"at":opened.to_string()}]})),
    )
    .await;
    let got = call(
        &app.admin,
        Method::GET,
        &format!("/api/v1{POLICY}/requests/{id2}"),
        None,
    )
    .await;
    assert_eq!(got.status, 200, "{:?}", got.body);
    let port = &got.json::<AccessRequest>().virtual_machines[0].ports[0];
    assert_eq!(port.number, 3389);
    assert_eq!(port.open_since, None);
    // The activity log has the agent's two reports about its own machine, and nothing of the
    // intruder's; a repeated report records nothing new.
    call_ok(
        &agent,
        Method::POST,
        "/api/v1/agent/report",
        Some(json!({"version":"0.1.0","appliedRevision":9,
        "opened":[{"requestId":id,"seq":0,"at":opened.to_string()}]})),
    )
    .await;
    let log: List<ActivityRecord> = get_as(&app.admin, "/api/v1/activity?scope=/").await;
    let reports: Vec<&ActivityRecord> = log
        .value
        .iter()
        .filter(|r| r.action.starts_with("ajar.agents/port"))
        .collect();
    assert_eq!(reports.len(), 2, "{reports:?}");
    assert_eq!(reports[1].action, "ajar.agents/portOpened");
    assert_eq!(reports[0].action, "ajar.agents/portClosed");
    for r in &reports {
        assert_eq!(r.principal, "agent:agent-1");
        assert_eq!(r.resource_id, VM);
        assert_eq!(r.request_id.as_ref(), Some(id));
    }
}

#[tokio::test]
async fn gateways_hand_out_unique_mapped_ports_from_their_range() {
    let app = TestApp::spawn().await;
    for (id, os) in [(VM, "linux")] {
        call_ok(
            &app.admin,
            Method::PUT,
            &format!("/api/v1{id}"),
            Some(machine_body(os)),
        )
        .await;
    }
    call_ok(
        &app.admin,
        Method::PUT,
        &format!("/api/v1{POLICY}"),
        Some(policy_body(VM)),
    )
    .await;
    let (gw, _) = app
        .agent("gw", &[VM], Some(("192.0.2.1", "40000-40002")))
        .await;
    let send = |source: String| spawn_initiate(&app.admin, source);
    let tasks: Vec<_> = (0..3).map(|i| send(format!("198.51.100.{i}"))).collect();
    let mut ports = Vec::new();
    let mut ids = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, 202, "{:?}", r.body);
        let req: AccessRequest = r.json();
        let p = &req.virtual_machines[0].ports[0];
        let mapped = p.mapped_port.expect("a gateway maps the port");
        let to = p.connection_details.as_ref().expect("where to connect");
        assert_eq!((to.address.as_str(), to.port), ("192.0.2.1", mapped));
        ports.push(mapped);
        ids.push(req.id);
    }
    ports.sort();
    assert_eq!(ports, vec![40000, 40001, 40002]);
    // The range is full: a fourth request is refused, and nothing of it is stored.
    let full = initiate(
        &app.admin,
        POLICY,
        json!({"number":22,"duration":"PT1H","allowedSourceAddressPrefix":"198.51.100.9"}),
    )
    .await;
    assert_eq!(
        (full.status, code(&full)),
        (409, ErrorCode::Conflict),
        "{:?}",
        full.body
    );
    let grants = app.admin.grants(VM).await.unwrap().value;
    let mut granted: Vec<u16> = grants.iter().filter_map(|g| g.mapped_port).collect();
    granted.sort();
    assert_eq!(
        granted,
        vec![40000, 40001, 40002],
        "the grants list shows the mapped ports"
    );
    // Revoking one frees its port.
    app.admin.revoke(POLICY, &ids[0]).await.unwrap();
    let again = initiate(
        &app.admin,
        POLICY,
        json!({"number":22,"duration":"PT1H","allowedSourceAddressPrefix":"198.51.100.9"}),
    )
    .await;
    assert_eq!(again.status, 202);
    // The gateway's feed carries the mappings.
    let state: DesiredState = get_as(&gw, "/api/v1/agent/desiredState").await;
    assert_eq!(state.mode, AgentMode::Gateway);
    assert_eq!(state.public_address, Some("192.0.2.1".parse().unwrap()));
    let mut mapped: Vec<u16> = state.machines[0]
        .grants
        .iter()
        .map(|g| g.mapped_port.unwrap())
        .collect();
    mapped.sort();
    assert_eq!(mapped.len(), 3);
}

#[tokio::test]
async fn a_waiting_feed_does_not_hold_up_shutdown() {
    let app = TestApp::spawn().await;
    let agent = setup(&app).await;
    let first: DesiredState = get_as(&agent, "/api/v1/agent/desiredState").await;
    let rev = first.revision;
    let waiting = tokio::spawn(async move {
        call(
            &agent,
            Method::GET,
            &format!("/api/v1/agent/desiredState?after={rev}&waitSeconds=60"),
            None,
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t0 = Instant::now();
    app.stop().await;
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "shutdown waited {:?} for a long poll",
        t0.elapsed()
    );
    assert_eq!(waiting.await.unwrap().status, 200);
}
