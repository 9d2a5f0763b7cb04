//! `aws` agents: registration with an inventory scope, the instance in the desired state, the
//! labels that name it, machine statuses in reports (standing exposures, unsupported machines)
//! and the inventory of discovered machines, each with the refusals that keep an agent to its
//! own machines and scope.

use crate::*;
use ajar_api::wire::{
    ActivityRecord, Agent, AwsTarget, DesiredState, Exposure, InventoryResult, JitState, List,
    Machine,
};
use ajar_core::net::{Port, Protocol};
use ajar_testkit::TestApp;
use reqwest::Method;
use serde_json::{Value, json};

const FOUND: &str = "ajar.machines/exposureFound";
const AWS_RG: &str = "/subscriptions/s1/resourceGroups/aws";

/// Registers the `aws` agent `name` as the bootstrap admin; answers its client and view.
async fn aws_agent(app: &TestApp, name: &str, extra: Value) -> (ajar_api::Client, Agent) {
    let mut body = json!({"name": name, "mode": "aws", "machines": []});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    let r = call(&app.admin, Method::POST, "/api/v1/agents", Some(body)).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let agent: Agent = r.json();
    let client = app.client(agent.token.as_deref());
    (client, agent)
}

/// A machine body with these addresses and labels.
fn machine_with(addresses: &[&str], labels: Value) -> Value {
    json!({"properties":{"os":"linux","addresses":addresses,"labels":labels}})
}

async fn put(client: &ajar_api::Client, id: &str, body: Value) -> ajar_api::client::RawResponse {
    call(client, Method::PUT, &format!("/api/v1{id}"), Some(body)).await
}

/// The records about `resource` with `action`, oldest first.
async fn records(app: &TestApp, resource: &str, action: &str) -> Vec<ActivityRecord> {
    let mut found: Vec<ActivityRecord> = get_as::<List<ActivityRecord>>(
        &app.admin,
        &format!("/api/v1/activity?action={action}&top=1000"),
    )
    .await
    .value
    .into_iter()
    .filter(|r| r.resource_id == resource)
    .collect();
    found.reverse();
    found
}

/// The value of `ajar_machine_standing_exposures`.
async fn exposures_gauge(app: &TestApp) -> f64 {
    let r = reqwest::Client::new()
        .get(format!("{}/metrics", app.base))
        .bearer_auth(app.admin.token().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("ajar_machine_standing_exposures "))
        .and_then(|v| v.parse().ok())
        .expect("the gauge is exposed")
}

fn ssh_open(group: &str) -> Exposure {
    Exposure {
        number: Port::from(22),
        protocol: Protocol::Tcp,
        source: "0.0.0.0/0".into(),
        allowed_by: format!("security group {group} (web-open)"),
    }
}

fn report(statuses: Value) -> Value {
    json!({"version":"1.0","appliedRevision":0,"machines":statuses})
}

async fn send_report(agent: &ajar_api::Client, statuses: Value) -> ajar_api::client::RawResponse {
    call(
        agent,
        Method::POST,
        "/api/v1/agent/report",
        Some(report(statuses)),
    )
    .await
}

#[tokio::test]
async fn registering_with_an_inventory_scope_is_checked_and_needs_machines_write_there() {
    let app = TestApp::spawn().await;
    let cases = [
        (
            json!({"name":"h","mode":"host","machines":[],"inventoryScope":AWS_RG}),
            400,
            "inventoryScope",
        ),
        (
            json!({"name":"a","mode":"aws","machines":[],"inventoryScope":SUB}),
            400,
            "inventoryScope",
        ),
        (
            json!({"name":"a","mode":"aws","machines":[],"inventoryScope":VM}),
            400,
            "inventoryScope",
        ),
        (
            json!({"name":"a","mode":"aws","machines":[],"inventoryScope":"/subscriptions/s1/resourceGroups/../x"}),
            400,
            "inventoryScope",
        ),
        (
            json!({"name":"a","mode":"aws","machines":[],"publicAddress":"192.0.2.1"}),
            400,
            "mode",
        ),
        (
            json!({"name":"a","mode":"aws","machines":[],"mappedPortRange":"1-5"}),
            400,
            "mode",
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

    // Agents' administrators everywhere, machine writers only in rg1.
    call_ok(
        &app.admin,
        Method::PUT,
        "/api/v1/roleDefinitions/AgentAdmin",
        Some(json!({"actions":["ajar.agents/write","ajar.agents/read"]})),
    )
    .await;
    let agent_admin = app.user("ops", Some(("AgentAdmin", "/"))).await;
    assign(&app, "ops-rg1", "ops", "JitAdmin", RG).await;
    let body =
        |scope: &str| json!({"name":"disc","mode":"aws","machines":[],"inventoryScope":scope});
    // Machine writers of rg1 only: not in the aws group.
    let r = call(
        &agent_admin,
        Method::POST,
        "/api/v1/agents",
        Some(body(AWS_RG)),
    )
    .await;
    assert_eq!(
        (r.status, code(&r)),
        (403, ErrorCode::AuthorizationFailed),
        "{:?}",
        r.body
    );
    assert!(
        error_of(&r).message.contains("ajar.machines/write"),
        "{:?}",
        r.body
    );
    // Machine writers without agents' rights.
    let writer = app.user("writer", Some(("JitAdmin", AWS_RG))).await;
    let r = call(&writer, Method::POST, "/api/v1/agents", Some(body(AWS_RG))).await;
    assert_eq!(r.status, 403, "{:?}", r.body);
    let list: List<Agent> = get_as(&app.admin, "/api/v1/agents").await;
    assert!(list.value.is_empty(), "nothing was registered");

    // Both: registered, and the scope is shown.
    let r = call(&agent_admin, Method::POST, "/api/v1/agents", Some(body(RG))).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let agent: Agent = r.json();
    assert_eq!(
        (agent.mode.as_str(), agent.inventory_scope.as_deref()),
        ("aws", Some(RG))
    );
    let shown: Agent = get_as(&app.admin, &format!("/api/v1/agents/{}", agent.id)).await;
    assert_eq!(shown.inventory_scope.as_deref(), Some(RG));
    let list: List<Agent> = get_as(&app.admin, "/api/v1/agents").await;
    assert_eq!(list.value[0].inventory_scope.as_deref(), Some(RG));
    let recorded = records(&app, &format!("/agents/{}", agent.id), "ajar.agents/write").await;
    assert_eq!(recorded[0].details["inventoryScope"], json!(RG));
}

#[tokio::test]
async fn the_desired_state_names_the_instance_for_aws_agents_only() {
    let app = TestApp::spawn().await;
    let (tagged, plain, hosted) = (
        format!("{AWS_RG}/machines/i-1"),
        format!("{AWS_RG}/machines/plain"),
        format!("{RG}/machines/hosted"),
    );
    let labels = json!({"aws:instance-id":"i-1","aws:group-id":"sg-9"});
    for (id, address, labels) in [
        (&tagged, "10.2.0.1", labels.clone()),
        (&plain, "10.2.0.2", json!({})),
        (&hosted, "10.2.0.3", json!({"aws:instance-id":"i-3"})),
    ] {
        let r = put(&app.admin, id, machine_with(&[address], labels)).await;
        assert_eq!(r.status, 201, "{:?}", r.body);
    }
    let (aws, _) = aws_agent(&app, "aws-1", json!({"machines":[tagged, plain]})).await;
    let (host, _) = app.agent("host-1", &[hosted.as_str()], None).await;

    let state: DesiredState = get_as(&aws, "/api/v1/agent/desiredState").await;
    let targets: Vec<(String, Option<AwsTarget>)> =
        state.machines.into_iter().map(|m| (m.id, m.aws)).collect();
    assert_eq!(
        targets,
        [
            (
                tagged.clone(),
                Some(AwsTarget {
                    instance_id: "i-1".into(),
                    group_id: Some("sg-9".into())
                })
            ),
            (plain.clone(), None),
        ]
    );
    // A host agent is never sent the field (it refuses fields it does not know).
    let raw = call_ok(&host, Method::GET, "/api/v1/agent/desiredState", None).await;
    assert_eq!(raw.body["machines"][0]["id"], json!(hosted));
    assert!(raw.body["machines"][0].get("aws").is_none(), "{}", raw.body);

    // The changes-only answer carries it too.
    let revision = get_as::<DesiredState>(&aws, "/api/v1/agent/desiredState")
        .await
        .revision;
    let r = put(
        &app.admin,
        &plain,
        machine_with(&["10.2.0.2"], json!({"aws:instance-id":"i-2"})),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let changed: DesiredState = get_as(
        &aws,
        &format!("/api/v1/agent/desiredState?after={revision}&changesOnly=true&waitSeconds=0"),
    )
    .await;
    assert!(changed.changes_only);
    let machines: Vec<(String, Option<AwsTarget>)> = changed
        .machines
        .into_iter()
        .map(|m| (m.id, m.aws))
        .collect();
    assert_eq!(
        machines,
        [(
            plain,
            Some(AwsTarget {
                instance_id: "i-2".into(),
                group_id: None
            })
        )]
    );
}

#[tokio::test]
async fn a_machine_writer_cannot_change_the_instance_labels_of_a_guarded_machine() {
    let app = TestApp::spawn().await;
    let (guarded, loose) = (
        format!("{AWS_RG}/machines/web"),
        format!("{AWS_RG}/machines/loose"),
    );
    let start = machine_with(&["10.2.0.1"], json!({"aws:instance-id":"i-1","tier":"web"}));
    assert_eq!(put(&app.admin, &guarded, start.clone()).await.status, 201);
    aws_agent(&app, "aws-1", json!({"machines":[guarded]})).await;
    let writer = app.user("writer", Some(("JitAdmin", AWS_RG))).await;

    for (labels, t) in [
        // Another team's instance.
        (
            json!({"aws:instance-id":"i-other","tier":"web"}),
            "properties.labels.aws:instance-id",
        ),
        // Dropping the instance, or naming a group.
        (json!({"tier":"web"}), "properties.labels.aws:instance-id"),
        (
            json!({"aws:instance-id":"i-1","aws:group-id":"sg-x","tier":"web"}),
            "properties.labels.aws:group-id",
        ),
    ] {
        let r = put(
            &writer,
            &guarded,
            machine_with(&["10.2.0.1"], labels.clone()),
        )
        .await;
        assert_eq!(
            (r.status, code(&r), target(&r).as_str()),
            (403, ErrorCode::AuthorizationFailed, t),
            "{labels}: {:?}",
            r.body
        );
    }
    let now: Machine = get_as(&app.admin, &format!("/api/v1{guarded}")).await;
    assert_eq!(
        now.properties.labels["aws:instance-id"], "i-1",
        "nothing changed"
    );
    assert!(!now.properties.labels.contains_key("aws:group-id"));
    // Other labels stay the writer's.
    let r = put(
        &writer,
        &guarded,
        machine_with(&["10.2.0.1"], json!({"aws:instance-id":"i-1","tier":"db"})),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = put(
        &writer,
        &loose,
        machine_with(&["10.2.0.9"], json!({"tier":"db"})),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    // The agents' administrator may.
    let r = put(
        &app.admin,
        &guarded,
        machine_with(
            &["10.2.0.1"],
            json!({"aws:instance-id":"i-2","aws:group-id":"sg-1"}),
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
}

/// The machines `i-1` and `i-2` in the aws group (i-1 covered by a policy), guarded by the
/// `aws` agent `aws-1`, and `other` in rg1 guarded by the host agent `host-1`; answers the aws
/// agent's and the host agent's clients.
async fn status_world(app: &TestApp) -> (ajar_api::Client, ajar_api::Client) {
    for (id, address, instance) in [
        (format!("{AWS_RG}/machines/i-1"), "10.2.0.1", "i-1"),
        (format!("{AWS_RG}/machines/i-2"), "10.2.0.2", "i-2"),
    ] {
        let r = put(
            &app.admin,
            &id,
            machine_with(&[address], json!({"aws:instance-id":instance})),
        )
        .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
    }
    let r = put(&app.admin, VM, machine_with(&["10.1.0.4"], json!({}))).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let policy = format!("{AWS_RG}/jitNetworkAccessPolicies/default");
    let r = call(
        &app.admin,
        Method::PUT,
        &format!("/api/v1{policy}"),
        Some(policy_body(&format!("{AWS_RG}/machines/i-1"))),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let (aws, _) = aws_agent(
        app,
        "aws-1",
        json!({"machines":[format!("{AWS_RG}/machines/i-1"), format!("{AWS_RG}/machines/i-2")]}),
    )
    .await;
    // Polls make the agents live.
    call_ok(&aws, Method::GET, "/api/v1/agent/desiredState", None).await;
    let (host, _) = app.agent("host-1", &[VM], None).await;
    (aws, host)
}

#[tokio::test]
async fn an_agent_reports_only_on_its_own_machines_within_the_limits() {
    let app = TestApp::spawn().await;
    let (aws, host) = status_world(&app).await;
    let i1 = format!("{AWS_RG}/machines/i-1");
    let exposure = serde_json::to_value(ssh_open("sg-1")).unwrap();

    // One machine of its own and one of another agent's: nothing of the report is kept.
    let r = send_report(
        &aws,
        json!([{"id":i1,"exposures":[exposure]},{"id":VM,"unsupportedReason":"x"}]),
    )
    .await;
    assert_eq!(
        (r.status, code(&r), target(&r).as_str()),
        (403, ErrorCode::AuthorizationFailed, "machines[1]"),
        "{:?}",
        r.body
    );
    assert!(error_of(&r).message.contains(VM), "{:?}", r.body);
    // Nor a machine no one guards, nor one that does not exist.
    for id in [
        format!("{RG}/machines/ghost"),
        format!("{AWS_RG}/machines/../i-1"),
    ] {
        let r = send_report(&aws, json!([{"id":id}])).await;
        assert_eq!(
            (r.status, target(&r).as_str()),
            (403, "machines[0]"),
            "{:?}",
            r.body
        );
    }
    // The host agent reports no statuses, on the aws agent's machine or on its own.
    for id in [i1.as_str(), VM] {
        let r = send_report(&host, json!([{"id":id,"unsupportedReason":"taken over"}])).await;
        assert_eq!(
            (r.status, code(&r), target(&r).as_str()),
            (400, ErrorCode::ValidationFailed, "machines"),
            "{:?}",
            r.body
        );
    }
    let vm: Machine = get_as(&app.admin, &format!("/api/v1{VM}")).await;
    assert_eq!(vm.properties.unsupported_reason, None);
    // Nor does a gateway.
    let (gateway, _) = app
        .agent("gw-1", &[], Some(("192.0.2.1", "40000-40099")))
        .await;
    let r = send_report(&gateway, json!([{"id":i1}])).await;
    assert_eq!(
        (r.status, target(&r).as_str()),
        (400, "machines"),
        "{:?}",
        r.body
    );
    let m: Machine = get_as(&app.admin, &format!("/api/v1{i1}")).await;
    assert!(m.properties.standing_exposures.is_empty());
    assert_eq!(m.properties.jit_state, JitState::Configured);
    let agents: List<Agent> = get_as(&app.admin, "/api/v1/agents").await;
    assert!(
        agents.value.iter().all(|a| a.version.is_none()),
        "no report was applied"
    );
    assert_eq!(exposures_gauge(&app).await, 0.0);

    let long = "x".repeat(257);
    let many: Vec<Value> = (0..101)
        .map(|n| json!({"number":22,"protocol":"TCP","source":"0.0.0.0/0","allowedBy":format!("sg-{n}")}))
        .collect();
    let statuses: Vec<Value> = (0..1001)
        .map(|n| json!({"id":format!("{AWS_RG}/machines/m{n}")}))
        .collect();
    for (statuses, t) in [
        (json!(statuses), "machines"),
        (json!([{"id":i1,"exposures":many}]), "machines[0].exposures"),
        (
            json!([{"id":i1,"unsupportedReason":long}]),
            "machines[0].unsupportedReason",
        ),
        (
            json!([{"id":i1,"exposures":[{"number":22,"protocol":"TCP","source":long,"allowedBy":"sg"}]}]),
            "machines[0].exposures[0].source",
        ),
        (json!([{"id":i1},{"id":i1}]), "machines[1].id"),
        (
            json!([{"id":i1,"exposures":[{"number":70000,"protocol":"TCP","source":"*","allowedBy":"sg"}]}]),
            "machines[0].exposures[0].number",
        ),
    ] {
        let r = send_report(&aws, statuses).await;
        assert_eq!((r.status, target(&r).as_str()), (400, t), "{:?}", r.body);
    }
}

#[tokio::test]
async fn exposures_and_reasons_show_on_the_machine_with_records_and_the_gauge() {
    let app = TestApp::spawn().await;
    let (aws, _) = status_world(&app).await;
    let (i1, i2) = (
        format!("{AWS_RG}/machines/i-1"),
        format!("{AWS_RG}/machines/i-2"),
    );
    let (open1, open2) = (ssh_open("sg-1"), ssh_open("sg-2"));

    // Two exposures on i-1, sent out of order and with a repeat.
    let statuses = json!([{"id":i1,"exposures":[open2, open1, open2]}]);
    assert_eq!(send_report(&aws, statuses.clone()).await.status, 204);
    let m: Machine = get_as(&app.admin, &format!("/api/v1{i1}")).await;
    assert_eq!(
        m.properties.standing_exposures,
        [open1.clone(), open2.clone()]
    );
    assert_eq!(
        m.properties.jit_state,
        JitState::Configured,
        "exposures alone change no state"
    );
    let recorded = records(&app, &i1, FOUND).await;
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].principal, "agent:aws-1");
    assert_eq!(recorded[0].resource_id, i1);
    assert_eq!(
        recorded[0].details["exposures"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(exposures_gauge(&app).await, 2.0);

    // The same findings again (a second enforcer, or the next report): nothing changes.
    for _ in 0..2 {
        assert_eq!(send_report(&aws, statuses.clone()).await.status, 204);
    }
    assert_eq!(
        records(&app, &i1, FOUND).await.len(),
        1,
        "no duplicate records"
    );
    assert_eq!(exposures_gauge(&app).await, 2.0);

    // One goes away; i-2 cannot be enforced on.
    let reason = "instance i-2 has no room for another security group";
    let r = send_report(
        &aws,
        json!([{"id":i1,"exposures":[open1]},{"id":i2,"unsupportedReason":reason}]),
    )
    .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    let cleared = records(&app, &i1, "ajar.machines/exposureCleared").await;
    assert_eq!(cleared.len(), 1);
    assert_eq!(cleared[0].details["exposures"], json!([open2]));
    assert_eq!(records(&app, &i1, FOUND).await.len(), 1);
    assert_eq!(exposures_gauge(&app).await, 1.0);
    let m2: Machine = get_as(&app.admin, &format!("/api/v1{i2}")).await;
    assert_eq!(m2.properties.jit_state, JitState::Unsupported);
    assert_eq!(m2.properties.unsupported_reason.as_deref(), Some(reason));
    let unsupported = records(&app, &i2, "ajar.machines/enforcementUnsupported").await;
    assert_eq!(unsupported.len(), 1);
    assert_eq!(unsupported[0].details["reason"], json!(reason));
    // The list shows both, read through its page.
    let list: List<Machine> = get_as(
        &app.admin,
        &format!("/api/v1{AWS_RG}/machines?state=Unsupported"),
    )
    .await;
    let ids: Vec<&str> = list.value.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, [i2.as_str()]);
    let list: List<Machine> = get_as(&app.admin, &format!("/api/v1{AWS_RG}/machines")).await;
    assert_eq!(
        list.value[0].properties.standing_exposures,
        std::slice::from_ref(&open1)
    );

    // Both cleared.
    let r = send_report(&aws, json!([{"id":i1},{"id":i2}])).await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    assert_eq!(exposures_gauge(&app).await, 0.0);
    assert_eq!(
        records(&app, &i1, "ajar.machines/exposureCleared")
            .await
            .len(),
        2
    );
    assert_eq!(
        records(&app, &i2, "ajar.machines/enforcementRestored")
            .await
            .len(),
        1
    );
    let m2: Machine = get_as(&app.admin, &format!("/api/v1{i2}")).await;
    assert_eq!(m2.properties.jit_state, JitState::NotConfigured);
    assert_eq!(m2.properties.unsupported_reason, None);
    let m1: Machine = get_as(&app.admin, &format!("/api/v1{i1}")).await;
    assert!(m1.properties.standing_exposures.is_empty());

    // Deleting a machine takes its exposures out of the total.
    assert_eq!(
        send_report(&aws, json!([{"id":i2,"exposures":[open1]}]))
            .await
            .status,
        204
    );
    assert_eq!(exposures_gauge(&app).await, 1.0);
    call_ok(&app.admin, Method::DELETE, &format!("/api/v1{i2}"), None).await;
    assert_eq!(exposures_gauge(&app).await, 0.0);
}

fn discovered(name: &str, addresses: &[&str], instance: Option<&str>) -> Value {
    let labels = match instance {
        Some(i) => json!({"aws:instance-id": i, "aws:region": "eu-west-1"}),
        None => json!({"aws:region": "eu-west-1"}),
    };
    json!({"name":name,"properties":{"os":"linux","addresses":addresses,"labels":labels}})
}

async fn inventory(agent: &ajar_api::Client, machines: Value) -> ajar_api::client::RawResponse {
    call(
        agent,
        Method::PUT,
        "/api/v1/agent/inventory",
        Some(json!({"machines":machines})),
    )
    .await
}

#[tokio::test]
async fn only_an_aws_agent_with_a_scope_registers_an_inventory() {
    let app = TestApp::spawn().await;
    let (host, _) = app.agent("host-1", &[], None).await;
    let one = json!([discovered("i-1", &["10.2.0.1"], Some("i-1"))]);
    let r = inventory(&host, one.clone()).await;
    assert_eq!(
        (r.status, code(&r)),
        (403, ErrorCode::AuthorizationFailed),
        "{:?}",
        r.body
    );
    assert!(
        error_of(&r).message.contains("only aws agents"),
        "{:?}",
        r.body
    );
    let (scopeless, _) = aws_agent(&app, "aws-0", json!({})).await;
    let r = inventory(&scopeless, one.clone()).await;
    assert_eq!(
        (r.status, code(&r)),
        (409, ErrorCode::Conflict),
        "{:?}",
        r.body
    );
    assert!(
        error_of(&r).message.contains("inventoryScope"),
        "{:?}",
        r.body
    );
    // People are not agents.
    let r = inventory(&app.admin, one).await;
    assert_eq!(r.status, 403, "{:?}", r.body);
    let machines: List<Machine> = get_as(&app.admin, &format!("/api/v1{SUB}/machines")).await;
    assert!(machines.value.is_empty());
}

#[tokio::test]
async fn an_inventory_creates_and_updates_only_the_agents_own_machines_in_its_scope() {
    let app = TestApp::spawn().await;
    // In the scope already: one guarded by another agent, one guarded by none.
    let (taken, loose) = (
        format!("{AWS_RG}/machines/i-taken"),
        format!("{AWS_RG}/machines/i-loose"),
    );
    for (id, address) in [(&taken, "10.2.0.50"), (&loose, "10.2.0.51")] {
        let r = put(
            &app.admin,
            id,
            machine_with(&[address], json!({"keep":"me"})),
        )
        .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
    }
    app.agent("host-1", &[taken.as_str()], None).await;
    let (aws, agent) = aws_agent(
        &app,
        "aws-1",
        json!({"inventoryScope":AWS_RG,"addressPrefixes":["10.2.0.0/24"]}),
    )
    .await;
    call_ok(&aws, Method::GET, "/api/v1/agent/desiredState", None).await;

    // Bad bodies change nothing: names are names (no paths), instances are named, limits hold.
    let too_many: Vec<Value> = (0..1001)
        .map(|n| discovered(&format!("i-{n}"), &[], Some("i")))
        .collect();
    for (machines, t) in [
        (
            json!([discovered("../rg1/machines/vm1", &[], Some("i-1"))]),
            "machines[0].name",
        ),
        (
            json!([discovered("..", &[], Some("i-1"))]),
            "machines[0].name",
        ),
        (
            json!([discovered("a/b", &[], Some("i-1"))]),
            "machines[0].name",
        ),
        (
            json!([discovered(VM, &[], Some("i-1"))]),
            "machines[0].name",
        ),
        (
            json!([discovered("i-1", &[], None)]),
            "machines[0].properties.labels",
        ),
        (
            json!([
                discovered("i-1", &[], Some("i-1")),
                discovered("i-1", &[], Some("i-1"))
            ]),
            "machines[1].name",
        ),
        (json!(too_many), "machines"),
    ] {
        let r = inventory(&aws, machines).await;
        assert_eq!((r.status, target(&r).as_str()), (400, t), "{:?}", r.body);
    }

    let r = inventory(
        &aws,
        json!([
            discovered("i-1", &["10.2.0.1"], Some("i-1")),
            discovered("i-2", &["10.2.0.2"], Some("i-2")),
            // Outside its networks, clashing with i-1, guarded by another, guarded by none.
            discovered("i-far", &["10.9.0.1"], Some("i-far")),
            discovered("i-clash", &["10.2.0.1"], Some("i-clash")),
            discovered("i-taken", &["10.2.0.52"], Some("i-taken")),
            discovered("i-loose", &["10.2.0.53"], Some("i-loose")),
        ]),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let result: InventoryResult = r.json();
    let (i1, i2) = (
        format!("{AWS_RG}/machines/i-1"),
        format!("{AWS_RG}/machines/i-2"),
    );
    assert_eq!(result.created, [i1.clone(), i2.clone()]);
    assert!(result.updated.is_empty() && result.unchanged.is_empty());
    let refused: Vec<&str> = result.refused.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        refused,
        ["i-far", "i-clash", "i-taken", "i-loose"],
        "{result:?}"
    );
    assert!(
        result.refused[0].reason.contains("outside the networks"),
        "{result:?}"
    );
    assert!(result.refused[2].reason.contains("host-1"), "{result:?}");
    for (id, address) in [(&taken, "10.2.0.50"), (&loose, "10.2.0.51")] {
        let m: Machine = get_as(&app.admin, &format!("/api/v1{id}")).await;
        assert_eq!(m.properties.addresses, [address], "{id} is unchanged");
        assert_eq!(
            m.properties.labels.get("keep").map(String::as_str),
            Some("me")
        );
    }
    for id in [
        format!("{AWS_RG}/machines/i-far"),
        format!("{AWS_RG}/machines/i-clash"),
    ] {
        let r = call(&app.admin, Method::GET, &format!("/api/v1{id}"), None).await;
        assert_eq!(r.status, 404, "{id} was not made");
    }
    let loose_view: Machine = get_as(&app.admin, &format!("/api/v1{loose}")).await;
    assert_eq!(
        loose_view.properties.enforcement_point, None,
        "not taken over"
    );

    // Made in its scope, guarded by it, recorded as it, and in its desired state.
    let m: Machine = get_as(&app.admin, &format!("/api/v1{i1}")).await;
    assert_eq!(m.properties.enforcement_point.as_deref(), Some("aws-1"));
    let made = records(&app, &i1, "ajar.machines/write").await;
    assert_eq!(made.len(), 1);
    assert_eq!(made[0].principal, "agent:aws-1");
    assert_eq!(made[0].details["created"], json!(true));
    let shown: Agent = get_as(&app.admin, &format!("/api/v1/agents/{}", agent.id)).await;
    assert_eq!(shown.machines, [i1.clone(), i2.clone()]);
    let state: DesiredState = get_as(&aws, "/api/v1/agent/desiredState").await;
    let targets: Vec<(String, Option<String>)> = state
        .machines
        .into_iter()
        .map(|m| (m.id, m.aws.map(|a| a.instance_id)))
        .collect();
    assert_eq!(
        targets,
        [
            (i1.clone(), Some("i-1".into())),
            (i2.clone(), Some("i-2".into()))
        ]
    );

    // Sent again: nothing is written; a changed address is an update.
    let revision = state.revision;
    let r = inventory(
        &aws,
        json!([
            discovered("i-1", &["10.2.0.1"], Some("i-1")),
            discovered("i-2", &["10.2.0.3"], Some("i-2")),
        ]),
    )
    .await;
    let result: InventoryResult = r.json();
    assert_eq!(
        (result.unchanged, result.updated),
        (vec![i1.clone()], vec![i2.clone()])
    );
    assert!(result.created.is_empty() && result.refused.is_empty());
    assert_eq!(
        records(&app, &i1, "ajar.machines/write").await.len(),
        1,
        "i-1 was not rewritten"
    );
    assert_eq!(records(&app, &i2, "ajar.machines/write").await.len(), 2);
    let changed: DesiredState = get_as(
        &aws,
        &format!("/api/v1/agent/desiredState?after={revision}&changesOnly=true&waitSeconds=0"),
    )
    .await;
    let ids: Vec<String> = changed.machines.into_iter().map(|m| m.id).collect();
    assert_eq!(ids, std::slice::from_ref(&i2));
    // An address moved to another of its machines is refused while i-1 holds it.
    let r = inventory(&aws, json!([discovered("i-2", &["10.2.0.1"], Some("i-2"))])).await;
    let result: InventoryResult = r.json();
    assert_eq!(result.refused.len(), 1, "{result:?}");
    assert!(result.refused[0].reason.contains(&i1), "{result:?}");
}

#[tokio::test]
async fn naming_an_instance_needs_agents_write_on_any_machine() {
    let app = TestApp::spawn().await;
    let writer = app.user("writer", Some(("JitAdmin", AWS_RG))).await;
    let web = format!("{AWS_RG}/machines/web-1");
    let instance = "properties.labels.aws:instance-id";
    // Made with another team's instance, or a group, before any agent guards it: refused.
    for (labels, t) in [
        (json!({"aws:instance-id":"i-otherteam"}), instance),
        (
            json!({"aws:group-id":"sg-1"}),
            "properties.labels.aws:group-id",
        ),
    ] {
        let r = put(&writer, &web, machine_with(&["10.2.0.1"], labels.clone())).await;
        assert_eq!(
            (r.status, code(&r), target(&r).as_str()),
            (403, ErrorCode::AuthorizationFailed, t),
            "{labels}: {:?}",
            r.body
        );
        assert!(
            error_of(&r).message.contains("ajar.agents/write"),
            "{:?}",
            r.body
        );
    }
    let r = call(&app.admin, Method::GET, &format!("/api/v1{web}"), None).await;
    assert_eq!(r.status, 404, "nothing was made");

    // Made without it, then named later: refused too.
    let r = put(
        &writer,
        &web,
        machine_with(&["10.2.0.1"], json!({"tier":"web"})),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let r = put(
        &writer,
        &web,
        machine_with(
            &["10.2.0.1"],
            json!({"tier":"web","aws:instance-id":"i-otherteam"}),
        ),
    )
    .await;
    assert_eq!(
        (r.status, target(&r).as_str()),
        (403, instance),
        "{:?}",
        r.body
    );
    assert!(error_of(&r).message.contains("setting"), "{:?}", r.body);

    // An administrator of agents names it; the writer keeps the other labels, but neither
    // changes nor removes the instance.
    let r = put(
        &app.admin,
        &web,
        machine_with(&["10.2.0.1"], json!({"tier":"web","aws:instance-id":"i-1"})),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = put(
        &writer,
        &web,
        machine_with(&["10.2.0.1"], json!({"tier":"db","aws:instance-id":"i-1"})),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    for (labels, verb) in [
        (json!({"tier":"db","aws:instance-id":"i-2"}), "changing"),
        (json!({"tier":"db"}), "removing"),
    ] {
        let r = put(&writer, &web, machine_with(&["10.2.0.1"], labels.clone())).await;
        assert_eq!(
            (r.status, target(&r).as_str()),
            (403, instance),
            "{labels}: {:?}",
            r.body
        );
        assert!(error_of(&r).message.contains(verb), "{:?}", r.body);
    }
    let m: Machine = get_as(&app.admin, &format!("/api/v1{web}")).await;
    assert_eq!(
        (
            m.properties.labels["aws:instance-id"].as_str(),
            m.properties.labels["tier"].as_str()
        ),
        ("i-1", "db")
    );
}

#[tokio::test]
async fn an_instance_or_a_group_is_named_by_one_machine() {
    let app = TestApp::spawn().await;
    let (a, b, c) = (
        format!("{AWS_RG}/machines/a"),
        format!("{RG}/machines/b"),
        format!("{RG}/machines/c"),
    );
    let both = json!({"aws:instance-id":"i-1","aws:group-id":"sg-1"});
    let r = put(&app.admin, &a, machine_with(&["10.2.0.1"], both.clone())).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    // Another machine, in another resource group, naming the same instance or group.
    for (labels, t) in [
        (
            json!({"aws:instance-id":"i-1"}),
            "properties.labels.aws:instance-id",
        ),
        (
            json!({"aws:instance-id":"i-2","aws:group-id":"sg-1"}),
            "properties.labels.aws:group-id",
        ),
    ] {
        let r = put(&app.admin, &b, machine_with(&["10.1.0.2"], labels.clone())).await;
        assert_eq!(
            (r.status, code(&r), target(&r).as_str()),
            (409, ErrorCode::Conflict, t),
            "{labels}: {:?}",
            r.body
        );
        assert!(error_of(&r).message.contains(&a), "{:?}", r.body);
    }
    let r = call(&app.admin, Method::GET, &format!("/api/v1{b}"), None).await;
    assert_eq!(r.status, 404, "nothing was made");

    // Its own instance; the first machine rewritten with the same ones keeps them.
    let r = put(
        &app.admin,
        &b,
        machine_with(&["10.1.0.2"], json!({"aws:instance-id":"i-2"})),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let mut tagged = both.clone();
    tagged["tier"] = json!("web");
    let r = put(&app.admin, &a, machine_with(&["10.2.0.1"], tagged)).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    // Nor by an update.
    let r = put(&app.admin, &b, machine_with(&["10.1.0.2"], both.clone())).await;
    assert_eq!(r.status, 409, "{:?}", r.body);
    let m: Machine = get_as(&app.admin, &format!("/api/v1{b}")).await;
    assert_eq!(m.properties.labels["aws:instance-id"], "i-2", "unchanged");

    // Once the first names another instance (and no group), both are free.
    let r = put(
        &app.admin,
        &a,
        machine_with(&["10.2.0.1"], json!({"aws:instance-id":"i-3"})),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = put(&app.admin, &b, machine_with(&["10.1.0.2"], both.clone())).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = put(&app.admin, &c, machine_with(&["10.1.0.3"], both.clone())).await;
    assert_eq!(r.status, 409, "{:?}", r.body);
    // And once the machine naming them is deleted.
    call_ok(&app.admin, Method::DELETE, &format!("/api/v1{b}"), None).await;
    let r = put(&app.admin, &c, machine_with(&["10.1.0.3"], both)).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
}

#[tokio::test]
async fn an_inventory_names_machines_after_their_instances_and_never_their_groups() {
    let app = TestApp::spawn().await;
    let theirs = format!("{RG}/machines/theirs");
    let r = put(
        &app.admin,
        &theirs,
        machine_with(&["10.1.0.9"], json!({"aws:instance-id":"i-theirs"})),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let (aws, _) = aws_agent(
        &app,
        "aws-1",
        json!({"inventoryScope":AWS_RG,"addressPrefixes":["10.2.0.0/24"]}),
    )
    .await;
    let with_group = |name: &str, address: &str, group: &str| {
        json!({"name":name,"properties":{"os":"linux","addresses":[address],
            "labels":{"aws:instance-id":name,"aws:group-id":group}}})
    };
    let r = inventory(
        &aws,
        json!([
            discovered("i-1", &["10.2.0.1"], Some("i-1")),
            // Named after one instance, labelled with another's.
            discovered("i-2", &["10.2.0.2"], Some("i-theirs")),
            // Naming a security group.
            with_group("i-3", "10.2.0.3", "sg-9"),
            // An instance another machine names.
            discovered("i-theirs", &["10.2.0.4"], Some("i-theirs")),
        ]),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let result: InventoryResult = r.json();
    let i1 = format!("{AWS_RG}/machines/i-1");
    assert_eq!(result.created, std::slice::from_ref(&i1));
    let refused: Vec<(&str, &str)> = result
        .refused
        .iter()
        .map(|r| (r.name.as_str(), r.reason.as_str()))
        .collect();
    assert_eq!(
        refused.iter().map(|r| r.0).collect::<Vec<_>>(),
        ["i-2", "i-3", "i-theirs"],
        "{result:?}"
    );
    assert!(
        refused[0].1.contains("named after its instance"),
        "{result:?}"
    );
    assert!(refused[1].1.contains("aws:group-id"), "{result:?}");
    assert!(
        refused[2]
            .1
            .contains("another machine names instance i-theirs"),
        "{result:?}"
    );
    for name in ["i-2", "i-3", "i-theirs"] {
        let r = call(
            &app.admin,
            Method::GET,
            &format!("/api/v1{AWS_RG}/machines/{name}"),
            None,
        )
        .await;
        assert_eq!(r.status, 404, "{name} was not made");
    }

    // A machine it guards cannot be pointed at another instance, nor given a group, even the
    // one it has.
    let r = put(
        &app.admin,
        &i1,
        machine_with(
            &["10.2.0.1"],
            json!({"aws:instance-id":"i-1","aws:region":"eu-west-1","aws:group-id":"sg-7"}),
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    for machine in [
        discovered("i-1", &["10.2.0.1"], Some("i-theirs")),
        with_group("i-1", "10.2.0.1", "sg-8"),
        with_group("i-1", "10.2.0.1", "sg-7"),
    ] {
        let result: InventoryResult = inventory(&aws, json!([machine])).await.json();
        assert_eq!(
            result
                .refused
                .iter()
                .map(|r| r.name.as_str())
                .collect::<Vec<_>>(),
            ["i-1"],
            "{machine}: {result:?}"
        );
    }
    assert_eq!(
        records(&app, &i1, "ajar.machines/write").await.len(),
        2,
        "made by the agent, named by the administrator, nothing since"
    );

    // The group the administrator named stays; the other labels and the addresses follow the
    // inventory.
    let result: InventoryResult =
        inventory(&aws, json!([discovered("i-1", &["10.2.0.1"], Some("i-1"))]))
            .await
            .json();
    assert_eq!(result.unchanged, std::slice::from_ref(&i1), "{result:?}");
    let result: InventoryResult = inventory(
        &aws,
        json!([{"name":"i-1","properties":{"os":"linux","addresses":["10.2.0.5"],
            "labels":{"aws:instance-id":"i-1","aws:name":"web"}}}]),
    )
    .await
    .json();
    assert_eq!(result.updated, std::slice::from_ref(&i1), "{result:?}");
    let m: Machine = get_as(&app.admin, &format!("/api/v1{i1}")).await;
    assert_eq!(m.properties.addresses, ["10.2.0.5"]);
    let labels: Vec<(&str, &str)> = m
        .properties
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        labels,
        [
            ("aws:group-id", "sg-7"),
            ("aws:instance-id", "i-1"),
            ("aws:name", "web")
        ]
    );
    let state: DesiredState = get_as(&aws, "/api/v1/agent/desiredState").await;
    assert_eq!(
        state.machines[0].aws,
        Some(AwsTarget {
            instance_id: "i-1".into(),
            group_id: Some("sg-7".into())
        })
    );
    // The group it kept is still the machine's alone.
    let r = put(
        &app.admin,
        &format!("{RG}/machines/other"),
        machine_with(&["10.1.0.8"], json!({"aws:group-id":"sg-7"})),
    )
    .await;
    assert_eq!(
        (r.status, target(&r).as_str()),
        (409, "properties.labels.aws:group-id"),
        "{:?}",
        r.body
    );
}
