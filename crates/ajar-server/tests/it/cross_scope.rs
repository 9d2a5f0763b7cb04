//! Objects named in a body are checked at their own scope, not the URL's: a role request for an
//! application in another subscription, and a machine writer pointing a gateway (or a host's
//! protected set) at addresses it has no right to.

use crate::*;
use ajar_api::wire::{ActivityRecord, Agent, DesiredState, List, Machine, RoleAssignment};
use ajar_testkit::TestApp;
use reqwest::Method;
use serde_json::{Value, json};
use std::net::IpAddr;

const RG_A: &str = "/subscriptions/A/resourceGroups/rg-a";
const RG_B: &str = "/subscriptions/B/resourceGroups/rg-b";

/// An application in rg-b (manual approval by `approver`) for which `mallory` is eligible for
/// Contributor; answers its id.
async fn app_in_b(app: &TestApp) -> String {
    let app_id = format!("{RG_B}/applications/crm");
    let r = call(
        &app.admin,
        Method::PUT,
        &format!("/api/v1{app_id}"),
        Some(
            json!({"properties":{"jitAccessPolicy":{"jitApprovalMode":"ManualApprove",
            "jitApprovers":[{"id":"approver","type":"user"}]}}}),
        ),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    declare_roles(app, &app_id).await;
    let r = call(
        &app.admin,
        Method::PUT,
        &format!("/api/v1{app_id}/eligibleRoles/mallory"),
        Some(json!({"principal":"mallory","roleDefinition":"Contributor"})),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    app_id
}

async fn activity_at(app: &TestApp, scope: &str) -> Vec<ActivityRecord> {
    get_as::<List<ActivityRecord>>(&app.admin, &format!("/api/v1/activity?scope={scope}"))
        .await
        .value
}

#[tokio::test]
async fn a_role_request_is_checked_filed_and_recorded_at_its_applications_scope() {
    let app = TestApp::spawn().await;
    let app_id = app_in_b(&app).await;
    // Rights in rg-a only.
    let mallory = app.user("mallory", Some(("JitRequester", RG_A))).await;
    let approver = app.user("approver", Some(("Approver", RG_A))).await;
    let body = activation(&app_id, "mallory");

    // Filed under rg-a for rg-b's application: refused at the application's scope.
    let r = call(
        &mallory,
        Method::PUT,
        &format!("/api/v1{RG_A}/jitRequests/r1"),
        Some(body.clone()),
    )
    .await;
    assert_eq!(
        (r.status, code(&r)),
        (403, ErrorCode::AuthorizationFailed),
        "{:?}",
        r.body
    );
    assert!(
        error_of(&r).message.contains("/subscriptions/B"),
        "{:?}",
        r.body
    );
    // Filed under rg-b: refused too (no right there), as before.
    let r = call(
        &mallory,
        Method::PUT,
        &format!("/api/v1{RG_B}/jitRequests/r1"),
        Some(body.clone()),
    )
    .await;
    assert_eq!(r.status, 403);

    // With the right at the application, a request filed in another group is still refused:
    // it lives in the application's resource group.
    assign(&app, "mallory-b", "mallory", "JitRequester", RG_B).await;
    let r = call(
        &mallory,
        Method::PUT,
        &format!("/api/v1{RG_A}/jitRequests/r1"),
        Some(body.clone()),
    )
    .await;
    assert_eq!(
        (r.status, target(&r).as_str()),
        (400, "properties.applicationResourceId")
    );
    assert!(
        error_of(&r)
            .message
            .contains(&format!("{RG_B}/jitRequests/r1")),
        "the error names where to file it: {:?}",
        r.body
    );
    let r = call(
        &mallory,
        Method::PUT,
        &format!("/api/v1{RG_B}/jitRequests/r1"),
        Some(body),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);

    // An approver in rg-a neither sees it in the inbox nor may decide it.
    assert!(inbox(&approver).await.is_empty());
    let r = call(
        &approver,
        Method::POST,
        &format!("/api/v1{RG_B}/jitRequests/r1/approve"),
        Some(json!({"reason":"ok"})),
    )
    .await;
    assert_eq!(r.status, 403);

    // B's activity log holds the request; A's holds none of it.
    let in_b = activity_at(&app, "/subscriptions/B").await;
    assert!(
        in_b.iter().any(|a| a.action == "ajar.jitRequests/create"
            && a.resource_id == format!("{RG_B}/jitRequests/r1")),
        "{in_b:?}"
    );
    let in_a = activity_at(&app, "/subscriptions/A").await;
    assert!(
        in_a.iter().all(|a| a.action != "ajar.jitRequests/create"),
        "{in_a:?}"
    );
}

/// Machines `web` (rg-a, 10.99.0.10) and `db` (rg-b, 10.99.0.20) behind one gateway that may
/// forward to 10.99.0.0/24; answers the gateway's client.
async fn gateway_world(app: &TestApp) -> ajar_api::Client {
    for (id, address) in [
        (format!("{RG_A}/machines/web"), "10.99.0.10"),
        (format!("{RG_B}/machines/db"), "10.99.0.20"),
    ] {
        let r = call(
            &app.admin,
            Method::PUT,
            &format!("/api/v1{id}"),
            Some(json!({"properties":{"os":"linux","addresses":[address]}})),
        )
        .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
    }
    let r = call(
        &app.admin,
        Method::POST,
        "/api/v1/agents",
        Some(
            json!({"name":"gw","mode":"gateway","publicAddress":"192.0.2.1",
            "mappedPortRange":"40000-40099","addressPrefixes":["10.99.0.0/24"],
            "machines":[format!("{RG_A}/machines/web"), format!("{RG_B}/machines/db")]}),
        ),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let agent: Agent = r.json();
    assert_eq!(
        agent.address_prefixes,
        Some(vec!["10.99.0.0/24".to_owned()])
    );
    app.client(Some(&agent.token.expect("the agent's token")))
}

fn web_with(addresses: &[&str]) -> Value {
    json!({"properties":{"os":"linux","addresses":addresses,"labels":{"tier":"web"}}})
}

/// The addresses the gateway is told each machine has.
async fn desired_addresses(gateway: &ajar_api::Client) -> Vec<(String, Vec<IpAddr>)> {
    get_as::<DesiredState>(gateway, "/api/v1/agent/desiredState")
        .await
        .machines
        .into_iter()
        .map(|m| (m.id, m.addresses))
        .collect()
}

fn ip(address: &str) -> IpAddr {
    address.parse().unwrap()
}

#[tokio::test]
async fn a_machine_writer_cannot_point_a_gateway_at_another_groups_machine() {
    let app = TestApp::spawn().await;
    let gateway = gateway_world(&app).await;
    let web = format!("/api/v1{RG_A}/machines/web");
    let writer = app.user("writer", Some(("JitAdmin", RG_A))).await;

    let put_web = |client: &ajar_api::Client, addresses: &[&str]| {
        let (client, web, body) = (client.clone(), web.clone(), web_with(addresses));
        async move { call(&client, Method::PUT, &web, Some(body)).await }
    };

    // The attack: web's address becomes db's.
    let r = put_web(&writer, &["10.99.0.20"]).await;
    assert_eq!(
        (r.status, code(&r)),
        (403, ErrorCode::AuthorizationFailed),
        "{:?}",
        r.body
    );
    assert_eq!(target(&r).as_str(), "properties.addresses");
    // Any change of a guarded machine's addresses needs the agents' administrator …
    assert_eq!(put_web(&writer, &["10.99.0.11"]).await.status, 403);
    // … while other properties stay the writer's.
    assert_eq!(put_web(&writer, &["10.99.0.10"]).await.status, 200);

    // Even the administrator cannot give web db's address, nor one outside the gateway's
    // networks (IPv4-mapped forms included).
    let r = put_web(&app.admin, &["10.99.0.20"]).await;
    assert_eq!(
        (r.status, target(&r).as_str()),
        (409, "properties.addresses[0]")
    );
    let r = put_web(&app.admin, &["10.99.0.11", "::ffff:10.99.0.20"]).await;
    assert_eq!(
        (r.status, target(&r).as_str()),
        (409, "properties.addresses[1]")
    );
    let r = put_web(&app.admin, &["10.98.0.5"]).await;
    assert_eq!((r.status, code(&r)), (400, ErrorCode::ValidationFailed));
    assert_eq!(put_web(&app.admin, &["10.99.0.11"]).await.status, 200);

    let addresses = desired_addresses(&gateway).await;
    assert_eq!(
        addresses,
        [
            (format!("{RG_A}/machines/web"), vec![ip("10.99.0.11")]),
            (format!("{RG_B}/machines/db"), vec![ip("10.99.0.20")]),
        ]
    );

    // Deleting web and making it again does not inherit the gateway.
    let r = call(&writer, Method::DELETE, &web, None).await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    let r = call(&writer, Method::PUT, &web, Some(web_with(&["10.99.0.20"]))).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.json::<Machine>().properties.enforcement_point, None);
    let addresses = desired_addresses(&gateway).await;
    assert_eq!(
        addresses,
        [(format!("{RG_B}/machines/db"), vec![ip("10.99.0.20")])]
    );
}

#[tokio::test]
async fn an_agent_is_registered_only_with_machines_inside_its_networks_and_apart() {
    let app = TestApp::spawn().await;
    for (name, address) in [("a", "10.99.0.10"), ("b", "10.99.0.10"), ("c", "10.50.0.1")] {
        let r = call(
            &app.admin,
            Method::PUT,
            &format!("/api/v1{RG_A}/machines/{name}"),
            Some(json!({"properties":{"os":"linux","addresses":[address]}})),
        )
        .await;
        assert_eq!(r.status, 201);
    }
    let register = |machines: &[&str], prefixes: Option<Value>| {
        let mut body = json!({"name":"h","mode":"host",
            "machines": machines.iter().map(|m| format!("{RG_A}/machines/{m}")).collect::<Vec<_>>()});
        if let Some(p) = prefixes {
            body["addressPrefixes"] = p;
        }
        call(&app.admin, Method::POST, "/api/v1/agents", Some(body))
    };
    let r = register(&["a", "b"], None).await;
    assert_eq!(
        (r.status, target(&r).as_str()),
        (409, "machines[1]"),
        "{:?}",
        r.body
    );
    let r = register(&["a", "c"], Some(json!(["10.99.0.0/24"]))).await;
    assert_eq!(
        (r.status, target(&r).as_str()),
        (400, "machines[1]"),
        "{:?}",
        r.body
    );
    let r = register(&["a"], Some(json!(["10.99.0.5/24"]))).await;
    assert_eq!(
        (r.status, code(&r)),
        (400, ErrorCode::InvalidRequestBody),
        "{:?}",
        r.body
    );
    let r = register(&["a", "c"], Some(json!(["10.99.0.0/24", "10.50.0.0/16"]))).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    // A host agent's machine keeps its protected set where it is: moving it needs the agents'
    // administrator, even for a writer of the machine.
    let writer = app.user("writer", Some(("Owner", RG_A))).await;
    let r = call(
        &writer,
        Method::PUT,
        &format!("/api/v1{RG_A}/machines/a"),
        Some(json!({"properties":{"os":"linux","addresses":["10.99.0.77"]}})),
    )
    .await;
    assert_eq!(r.status, 403, "{:?}", r.body);
}

#[tokio::test]
async fn scope_filters_match_case_exactly_as_rbac_does() {
    let app = TestApp::spawn().await;
    let upper = "/subscriptions/X1/resourceGroups/rg/machines/secret";
    let r = call(
        &app.admin,
        Method::PUT,
        &format!("/api/v1{upper}"),
        Some(json!({"properties":{"os":"linux","addresses":["10.7.0.1"],
            "labels":{"owner":"finance"}}})),
    )
    .await;
    assert_eq!(r.status, 201);
    assign(&app, "x1-upper", "carol", "Approver", "/subscriptions/X1").await;
    let reader = app
        .user("reader", Some(("SecurityReader", "/subscriptions/x1")))
        .await;
    let r = call(
        &reader,
        Method::GET,
        "/api/v1/activity?scope=/subscriptions/x1",
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(
        r.json::<List<ActivityRecord>>()
            .value
            .iter()
            .all(|a| !a.resource_id.starts_with("/subscriptions/X1")),
        "records of X1 leaked to a reader of x1: {:?}",
        r.body
    );
    let r = call(
        &reader,
        Method::GET,
        "/api/v1/roleAssignments?scope=/subscriptions/x1",
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let assignments = r.json::<List<RoleAssignment>>().value;
    let scopes: Vec<&str> = assignments.iter().map(|a| a.scope.as_str()).collect();
    assert_eq!(scopes, ["/subscriptions/x1"]);
    // The exact scope still finds its own records.
    let r = call(
        &app.admin,
        Method::GET,
        "/api/v1/activity?scope=/subscriptions/X1",
        None,
    )
    .await;
    assert!(
        r.json::<List<ActivityRecord>>()
            .value
            .iter()
            .any(|a| a.resource_id == upper),
        "{:?}",
        r.body
    );
}

/// A subscription's machines are read a page at a time from the store: a caller who may read
/// one resource group pages through exactly its machines, and no page or link shows another's.
#[tokio::test]
async fn machine_pages_hold_only_what_the_caller_may_read() {
    let app = TestApp::spawn().await;
    for rg in [RG, RG2] {
        for i in 0..5 {
            call_ok(
                &app.admin,
                Method::PUT,
                &format!("/api/v1{rg}/machines/m{i}"),
                Some(machine_body("linux")),
            )
            .await;
        }
    }
    let reader = app.user("reader", Some(("SecurityReader", RG2))).await;
    let mut seen = Vec::new();
    let mut path = format!("/api/v1{SUB}/machines?top=2");
    loop {
        let page: ajar_api::wire::List<ajar_api::wire::Machine> = get_as(&reader, &path).await;
        assert!(page.value.len() <= 2);
        seen.extend(page.value.into_iter().map(|m| m.id));
        let Some(next) = page.next_link else { break };
        assert!(!next.contains("rg1"), "{next}");
        path = next;
    }
    let expected: Vec<String> = (0..5).map(|i| format!("{RG2}/machines/m{i}")).collect();
    assert_eq!(seen, expected);
    // The owner sees both groups in id order, a page at a time, none twice.
    let mut all = Vec::new();
    let mut path = format!("/api/v1{SUB}/machines?top=3");
    loop {
        let page: ajar_api::wire::List<ajar_api::wire::Machine> = get_as(&app.admin, &path).await;
        all.extend(page.value.into_iter().map(|m| m.id));
        let Some(next) = page.next_link else { break };
        path = next;
    }
    let mut sorted = all.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!((all.len(), &all), (10, &sorted));
}
