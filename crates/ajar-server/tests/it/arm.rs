//! The Azure Resource Manager-compatible paths: the vendor's ids, shapes and status codes,
//! `api-version` checks, and the same RBAC as `/api/v1` — a caller allowed in one resource
//! group can do nothing in another through these paths, and an object named in a body is
//! checked at its own scope.

use crate::*;
use ajar_testkit::TestApp;
use reqwest::Method;
use serde_json::{Value, json};

const SEC: &str = "api-version=2020-01-01";
const SOL: &str = "api-version=2023-12-01-preview";
const VENDOR_VM: &str =
    "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/vm1";
const VENDOR_VM2: &str =
    "/subscriptions/s1/resourceGroups/rg2/providers/Microsoft.Compute/virtualMachines/vm2";
const APP_ID: &str =
    "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Solutions/applications/crm";

/// The ARM path of a policy in `rg` at `loc`.
fn policy_path(rg: &str, loc: &str, name: &str) -> String {
    format!(
        "/subscriptions/s1/resourceGroups/{rg}/providers/Microsoft.Security/locations/{loc}/jitNetworkAccessPolicies/{name}"
    )
}

/// The vendor's documented example policy: four ports, one with a list of source prefixes.
fn vendor_policy(vm: &str) -> Value {
    json!({"kind":"Basic","properties":{"virtualMachines":[{"id":vm,"ports":[
        {"number":22,"protocol":"*","allowedSourceAddressPrefix":"*","maxRequestAccessDuration":"PT3H"},
        {"number":3389,"protocol":"*","allowedSourceAddressPrefix":"*","maxRequestAccessDuration":"PT3H"},
        {"number":5985,"protocol":"*","allowedSourceAddressPrefixes":["192.168.0.3","192.168.0.0/16"],"maxRequestAccessDuration":"PT3H"},
        {"number":5986,"protocol":"*","allowedSourceAddressPrefix":"*","maxRequestAccessDuration":"PT3H"}
    ]}]}})
}

fn names(r: &ajar_api::client::RawResponse) -> Vec<String> {
    let mut n: Vec<String> = r.body["value"]
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {}", r.body))
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect();
    n.sort();
    n
}

#[tokio::test]
async fn policies_are_served_in_the_vendors_shape() {
    let app = TestApp::spawn().await;
    setup(&app).await;
    let path = policy_path("rg1", "westeurope", "default");
    let r = call(
        &app.admin,
        Method::PUT,
        &format!("{path}?{SEC}"),
        Some(vendor_policy(VENDOR_VM)),
    )
    .await;
    assert_eq!(
        r.status, 200,
        "a replace and a create are both 200: {:?}",
        r.body
    );
    assert_eq!(r.body["id"], json!(path));
    assert_eq!(r.body["name"], json!("default"));
    assert_eq!(
        r.body["type"],
        json!("Microsoft.Security/locations/jitNetworkAccessPolicies")
    );
    assert_eq!(r.body["location"], json!("westeurope"));
    let p = &r.body["properties"];
    assert_eq!(p["provisioningState"], json!("Succeeded"));
    assert_eq!(p["virtualMachines"][0]["id"], json!(VENDOR_VM));
    // The ports as sent; ajar keeps a list of source prefixes in its own (sorted) order.
    let mut sent = vendor_policy(VENDOR_VM)["properties"]["virtualMachines"][0]["ports"].clone();
    sent[2]["allowedSourceAddressPrefixes"] = json!(["192.168.0.0/16", "192.168.0.3"]);
    assert_eq!(p["virtualMachines"][0]["ports"], sent);
    assert_eq!(p["requests"], json!([]));
    // The location is kept: ajar's own path shows it, another location does not find it, and
    // writing it at another location is a clash.
    let own = get_as::<Value>(&app.admin, &format!("/api/v1{POLICY}")).await;
    assert_eq!(own["location"], json!("westeurope"));
    let r = call(
        &app.admin,
        Method::GET,
        &format!("{}?{SEC}", policy_path("rg1", "eastus", "default")),
        None,
    )
    .await;
    assert_eq!(
        (r.status, code(&r)),
        (404, ErrorCode::NotFound),
        "{:?}",
        r.body
    );
    let r = call(
        &app.admin,
        Method::PUT,
        &format!("{}?{SEC}", policy_path("rg1", "eastus", "default")),
        Some(vendor_policy(VENDOR_VM)),
    )
    .await;
    assert_eq!(
        (r.status, code(&r), target(&r)),
        (409, ErrorCode::Conflict, "location".to_owned())
    );

    // Every list form; rg2's policy has no location of its own: it is listed at every region
    // and as "global" where no region is named.
    let sub = "/subscriptions/s1/providers/Microsoft.Security";
    let rg1 = "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Security";
    let r = call(
        &app.admin,
        Method::GET,
        &format!("{sub}/jitNetworkAccessPolicies?{SEC}"),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        names(&r),
        vec![path.clone(), policy_path("rg2", "global", "default")]
    );
    let r = call(
        &app.admin,
        Method::GET,
        &format!("{sub}/locations/eastus/jitNetworkAccessPolicies?{SEC}"),
        None,
    )
    .await;
    assert_eq!(names(&r), vec![policy_path("rg2", "eastus", "default")]);
    let r = call(
        &app.admin,
        Method::GET,
        &format!("{rg1}/jitNetworkAccessPolicies?{SEC}"),
        None,
    )
    .await;
    assert_eq!(names(&r), vec![path.clone()]);
    let r = call(
        &app.admin,
        Method::GET,
        &format!("{rg1}/locations/westeurope/jitNetworkAccessPolicies?{SEC}"),
        None,
    )
    .await;
    assert_eq!(names(&r), vec![path.clone()]);
    // Pages follow nextLink on the same ARM path, with the api-version.
    let r = call(
        &app.admin,
        Method::GET,
        &format!("{sub}/jitNetworkAccessPolicies?{SEC}&top=1"),
        None,
    )
    .await;
    let next = r.body["nextLink"].as_str().unwrap().to_owned();
    assert!(
        next.starts_with(&format!(
            "{sub}/jitNetworkAccessPolicies?api-version=2020-01-01&"
        )),
        "{next}"
    );
    let r = call(&app.admin, Method::GET, &next, None).await;
    assert_eq!(names(&r), vec![policy_path("rg2", "global", "default")]);

    // Initiate two ports in the vendor's body; 202 with the vendor's request.
    let end = (app.now() + jiff::SignedDuration::from_hours(1)).to_string();
    let r = call(
        &app.admin,
        Method::POST,
        &format!("{path}/initiate?{SEC}"),
        Some(json!({"virtualMachines":[{"id":VENDOR_VM,"ports":[
            {"number":22,"allowedSourceAddressPrefix":"203.0.113.7","endTimeUtc":end},
            {"number":5985,"allowedSourceAddressPrefix":"192.168.0.3","endTimeUtc":end}]}],
            "justification":"INC-1"})),
    )
    .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    assert_eq!(r.body["justification"], json!("INC-1"));
    assert_eq!(r.body["virtualMachines"][0]["id"], json!(VENDOR_VM));
    let states: Vec<_> = r.body["virtualMachines"][0]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["number"].as_u64().unwrap(),
                p["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        states,
        vec![(22, "Initiated".to_owned()), (5985, "Initiated".to_owned())]
    );
    // A port the policy does not name: ajar's refusal, code and target, in the envelope.
    let r = call(
        &app.admin,
        Method::POST,
        &format!("{path}/initiate?{SEC}"),
        Some(
            json!({"virtualMachines":[{"id":VENDOR_VM,"ports":[{"number":23,"endTimeUtc":end}]}]}),
        ),
    )
    .await;
    assert_eq!(
        (r.status, code(&r), target(&r)),
        (
            400,
            ErrorCode::ValidationFailed,
            "virtualMachines[0].ports[0].number".to_owned()
        ),
        "{:?}",
        r.body
    );

    // The policy shows its requests; sending back what GET answered (requests, state, public
    // address and all) replaces it.
    let got = get_as::<Value>(&app.admin, &format!("{path}?{SEC}")).await;
    let requests = got["properties"]["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0]["requestor"], json!("admin"));
    assert_eq!(requests[0]["virtualMachines"][0]["id"], json!(VENDOR_VM));
    let mut back = got.clone();
    back["properties"]["virtualMachines"][0]["publicIpAddress"] = json!("198.51.100.1");
    back["properties"]["provisioningState"] = json!("Succeeded");
    let r = call(
        &app.admin,
        Method::PUT,
        &format!("{path}?{SEC}"),
        Some(back),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);

    // Delete: 200, then 404 on read and 204 on a second delete.
    let r = call(&app.admin, Method::DELETE, &format!("{path}?{SEC}"), None).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = call(&app.admin, Method::GET, &format!("{path}?{SEC}"), None).await;
    assert_eq!(r.status, 404);
    let r = call(&app.admin, Method::DELETE, &format!("{path}?{SEC}"), None).await;
    assert_eq!(r.status, 204);
}

#[tokio::test]
async fn api_version_is_required_and_checked_before_authentication() {
    let app = TestApp::spawn().await;
    let path = policy_path("rg1", "westeurope", "default");
    let nobody = app.client(None);
    for (client, query, code_) in [
        (&app.admin, "", ErrorCode::MissingApiVersionParameter),
        (&nobody, "", ErrorCode::MissingApiVersionParameter),
        (
            &app.admin,
            "?api-version=latest",
            ErrorCode::InvalidApiVersionParameter,
        ),
        (
            &app.admin,
            "?api-version=1999-01-01",
            ErrorCode::NoRegisteredProviderFound,
        ),
        (
            &nobody,
            "?api-version=2015-06-01-preview",
            ErrorCode::NoRegisteredProviderFound,
        ),
        // Each type has its own versions.
        (
            &app.admin,
            "?api-version=2023-12-01-preview",
            ErrorCode::NoRegisteredProviderFound,
        ),
    ] {
        let r = call(client, Method::GET, &format!("{path}{query}"), None).await;
        assert_eq!(
            (r.status, code(&r), target(&r)),
            (400, code_, "api-version".to_owned()),
            "{query}: {:?}",
            r.body
        );
    }
    let r = call(
        &app.admin,
        Method::GET,
        &format!("/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Solutions/jitRequests/r1?{SEC}"),
        None,
    )
    .await;
    assert_eq!(code(&r), ErrorCode::NoRegisteredProviderFound);
    assert!(
        error_of(&r).message.contains("2023-12-01-preview"),
        "{:?}",
        r.body
    );
    // A good version, no credentials: 401 as on ajar's own paths.
    let r = call(&nobody, Method::GET, &format!("{path}?{SEC}"), None).await;
    assert_eq!((r.status, code(&r)), (401, ErrorCode::Unauthenticated));
}

/// The application crm in rg1 (approved automatically) with Contributor eligible to alice.
async fn crm(app: &TestApp) {
    call_ok(
        &app.admin,
        Method::PUT,
        &format!("/api/v1{RG}/applications/crm"),
        Some(json!({"properties":{}})),
    )
    .await;
    declare_roles(app, &format!("{RG}/applications/crm")).await;
    call_ok(
        &app.admin,
        Method::PUT,
        &format!("/api/v1{RG}/applications/crm/eligibleRoles/alice"),
        Some(json!({"principal":"alice","roleDefinition":"Contributor"})),
    )
    .await;
    call_ok(
        &app.admin,
        Method::PUT,
        &format!("/api/v1{RG}/applications/crm/eligibleRoles/alice-reader"),
        Some(json!({"principal":"alice","roleDefinition":"Reader"})),
    )
    .await;
}

fn jit_path(rg: &str, name: &str) -> String {
    format!(
        "/subscriptions/s1/resourceGroups/{rg}/providers/Microsoft.Solutions/jitRequests/{name}"
    )
}

fn vendor_request(app_id: &str, who: &str, role: &str) -> Value {
    json!({"location":"westeurope","tags":{"ticket":"4711"},"properties":{
        "applicationResourceId":app_id,
        "jitAuthorizationPolicies":[{"principalId":who,"roleDefinitionId":role}],
        "jitSchedulingPolicy":{"type":"Once","duration":"PT02H00M00S"}}})
}

#[tokio::test]
async fn jit_requests_are_served_in_the_vendors_shape() {
    let app = TestApp::spawn().await;
    crm(&app).await;
    let alice = app.user("alice", Some(("JitRequester", RG))).await;
    let path = jit_path("rg1", "req1");
    let r = call(
        &alice,
        Method::PUT,
        &format!("{path}?{SOL}"),
        Some(vendor_request(APP_ID, "alice", "Contributor")),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["id"], json!(path));
    assert_eq!(r.body["type"], json!("Microsoft.Solutions/jitRequests"));
    assert_eq!(r.body["location"], json!("westeurope"));
    assert_eq!(r.body["tags"], json!({"ticket":"4711"}));
    assert_eq!(r.body["systemData"]["createdBy"], json!("alice"));
    let p = &r.body["properties"];
    assert_eq!(p["provisioningState"], json!("Succeeded"));
    assert_eq!(p["applicationResourceId"], json!(APP_ID));
    assert_eq!(p["jitSchedulingPolicy"]["duration"], json!("PT2H"));
    assert_eq!(
        p["jitAuthorizationPolicies"],
        json!([{"principalId":"alice","roleDefinitionId":"Contributor"}])
    );
    // The same request again: 200 with it. Another one under the name: 409.
    let r = call(
        &alice,
        Method::PUT,
        &format!("{path}?api-version=2021-07-01"),
        Some(vendor_request(APP_ID, "alice", "Contributor")),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = call(
        &alice,
        Method::PUT,
        &format!("{path}?{SOL}"),
        Some(vendor_request(APP_ID, "alice", "Reader")),
    )
    .await;
    assert_eq!(
        (r.status, code(&r)),
        (409, ErrorCode::Conflict),
        "{:?}",
        r.body
    );
    // Read, patch tags, list.
    let r = call(&alice, Method::GET, &format!("{path}?{SOL}"), None).await;
    assert_eq!((r.status, r.body["name"].clone()), (200, json!("req1")));
    let r = call(
        &alice,
        Method::GET,
        &format!("{}?{SOL}", jit_path("rg1", "nope")),
        None,
    )
    .await;
    assert_eq!(r.status, 403, "alice may read only her own: {:?}", r.body);
    let r = call(
        &app.admin,
        Method::GET,
        &format!("{}?{SOL}", jit_path("rg1", "nope")),
        None,
    )
    .await;
    assert_eq!(r.status, 404);
    let r = call(
        &alice,
        Method::PATCH,
        &format!("{path}?{SOL}"),
        Some(json!({"tags":{"a":"b"}})),
    )
    .await;
    assert_eq!(
        (r.status, r.body["tags"].clone()),
        (200, json!({"a":"b"})),
        "{:?}",
        r.body
    );
    let r = call(&alice, Method::GET, &format!("{path}?{SOL}"), None).await;
    assert_eq!(r.body["tags"], json!({"a":"b"}));
    for list in [
        "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Solutions/jitRequests",
        "/subscriptions/s1/providers/Microsoft.Solutions/jitRequests",
    ] {
        let r = call(&alice, Method::GET, &format!("{list}?{SOL}"), None).await;
        assert_eq!(names(&r), vec![path.clone()], "{list}");
    }
    // Delete ends the request; its record stays. Deleting what is not there: 204.
    let r = call(&alice, Method::DELETE, &format!("{path}?{SOL}"), None).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = call(&alice, Method::GET, &format!("{path}?{SOL}"), None).await;
    let state = r.body["properties"]["jitRequestState"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(["Revoked", "Canceled"].contains(&state.as_str()), "{state}");
    let r = call(
        &app.admin,
        Method::DELETE,
        &format!("{}?{SOL}", jit_path("rg1", "nope")),
        None,
    )
    .await;
    assert_eq!(r.status, 204);
}

#[tokio::test]
async fn a_caller_allowed_in_one_resource_group_can_do_nothing_in_another() {
    let app = TestApp::spawn().await;
    setup(&app).await;
    crm(&app).await;
    // bob may read policies, initiate and request in rg2 only.
    let bob = app.user("bob", Some(("JitRequester", RG2))).await;
    let rg1 = policy_path("rg1", "westeurope", "default");
    let end = (app.now() + jiff::SignedDuration::from_hours(1)).to_string();
    let initiate_vm1 =
        json!({"virtualMachines":[{"id":VENDOR_VM,"ports":[{"number":22,"endTimeUtc":end}]}]});
    for (method, path, body) in [
        (Method::GET, rg1.clone(), None),
        (Method::PUT, rg1.clone(), Some(vendor_policy(VENDOR_VM))),
        (Method::DELETE, rg1.clone(), None),
        (Method::POST, format!("{rg1}/initiate"), Some(initiate_vm1.clone())),
        (Method::GET, "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Security/jitNetworkAccessPolicies".to_owned(), None),
        (Method::PUT, jit_path("rg1", "r1"), Some(vendor_request(APP_ID, "bob", "Contributor"))),
    ] {
        let version = if path.contains("Solutions") { SOL } else { SEC };
        let r = call(&bob, method.clone(), &format!("{path}?{version}"), body).await;
        assert_eq!((r.status, code(&r)), (403, ErrorCode::AuthorizationFailed), "{method} {path}: {:?}", r.body);
    }
    // The refusal is recorded as on ajar's own paths.
    let records = get_as::<Value>(
        &app.admin,
        "/api/v1/activity?scope=/subscriptions/s1/resourceGroups/rg1",
    )
    .await;
    assert!(
        records["value"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["principal"] == json!("bob")),
        "{records}"
    );
    // Subscription-wide, bob sees rg2's policy alone.
    let r = call(
        &bob,
        Method::GET,
        &format!("/subscriptions/s1/providers/Microsoft.Security/jitNetworkAccessPolicies?{SEC}"),
        None,
    )
    .await;
    assert_eq!(names(&r), vec![policy_path("rg2", "global", "default")]);
    // Bodies naming objects elsewhere are checked where those objects are: rg2's policy cannot
    // open vm1, a request filed in rg2 for rg1's application is refused at the application.
    let rg2 = policy_path("rg2", "westeurope", "default");
    let r = call(
        &bob,
        Method::POST,
        &format!("{rg2}/initiate?{SEC}"),
        Some(initiate_vm1),
    )
    .await;
    assert_eq!(
        (r.status, code(&r)),
        (404, ErrorCode::NotFound),
        "{:?}",
        r.body
    );
    let r = call(
        &bob,
        Method::PUT,
        &format!("{}?{SOL}", jit_path("rg2", "r1")),
        Some(vendor_request(APP_ID, "bob", "Contributor")),
    )
    .await;
    assert_eq!(
        (r.status, code(&r)),
        (403, ErrorCode::AuthorizationFailed),
        "{:?}",
        r.body
    );
    assert!(error_of(&r).message.contains("rg1"), "{:?}", r.body);
    // An administrator of rg2 cannot put rg1's machine under rg2's policy.
    let admin2 = app.user("carol", Some(("JitAdmin", RG2))).await;
    let mut body = vendor_policy(VENDOR_VM2);
    body["properties"]["virtualMachines"][0]["id"] = json!(VENDOR_VM);
    let r = call(&admin2, Method::PUT, &format!("{rg2}?{SEC}"), Some(body)).await;
    assert_eq!(
        (r.status, code(&r), target(&r)),
        (
            400,
            ErrorCode::ValidationFailed,
            "properties.virtualMachines[0].id".to_owned()
        ),
        "{:?}",
        r.body
    );
    // alice's request in rg1 is not shown to bob, by group or subscription.
    let alice = app.user("alice", Some(("JitRequester", RG))).await;
    call_ok(
        &alice,
        Method::PUT,
        &format!("{}?{SOL}", jit_path("rg1", "a1")),
        Some(vendor_request(APP_ID, "alice", "Contributor")),
    )
    .await;
    let r = call(
        &bob,
        Method::GET,
        &format!("/subscriptions/s1/providers/Microsoft.Solutions/jitRequests?{SOL}"),
        None,
    )
    .await;
    assert_eq!(names(&r), Vec::<String>::new());
    let r = call(
        &bob,
        Method::GET,
        &format!("{}?{SOL}", jit_path("rg1", "a1")),
        None,
    )
    .await;
    assert_eq!(r.status, 403);
    let r = call(
        &bob,
        Method::DELETE,
        &format!("{}?{SOL}", jit_path("rg1", "a1")),
        None,
    )
    .await;
    assert_eq!(r.status, 403);
}

#[tokio::test]
async fn odd_bodies_locations_and_tags_are_refused_and_only_the_requester_retags() {
    let app = TestApp::spawn().await;
    setup(&app).await;
    crm(&app).await;
    // A body of another shape reaches ajar's checks and gets a 400, on both kinds of path.
    for (path, version) in [
        (policy_path("rg1", "westeurope", "odd"), SEC),
        (jit_path("rg1", "odd"), SOL),
    ] {
        for body in [
            json!({"properties": 1}),
            json!({"properties": "x"}),
            json!([1]),
        ] {
            let r = call(
                &app.admin,
                Method::PUT,
                &format!("{path}?{version}"),
                Some(body.clone()),
            )
            .await;
            assert_eq!(r.status, 400, "{path} {body}: {:?}", r.body);
        }
    }
    // A location that is not a name is refused, not echoed into ids.
    let r = call(
        &app.admin,
        Method::GET,
        &format!("{}?{SEC}", policy_path("rg1", "%20west", "default")),
        None,
    )
    .await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(r.body["error"]["target"], json!("location"));

    // Tags: bounded in bytes, no control characters.
    let alice = app.user("alice", Some(("JitRequester", RG))).await;
    let mut big = vendor_request(APP_ID, "alice", "Contributor");
    big["tags"] = json!(
        (0..40)
            .map(|i| (format!("k{i}"), json!("v".repeat(250))))
            .collect::<serde_json::Map<_, _>>()
    );
    let r = call(
        &alice,
        Method::PUT,
        &format!("{}?{SOL}", jit_path("rg1", "big")),
        Some(big),
    )
    .await;
    assert_eq!(
        (r.status, r.body["error"]["target"].clone()),
        (400, json!("tags")),
        "{:?}",
        r.body
    );
    let mut ctl = vendor_request(APP_ID, "alice", "Contributor");
    ctl["tags"] = json!({"note": "a\u{1}b"});
    let r = call(
        &alice,
        Method::PUT,
        &format!("{}?{SOL}", jit_path("rg1", "ctl")),
        Some(ctl),
    )
    .await;
    assert_eq!(r.status, 400, "{:?}", r.body);

    // Only the requester (or who administers the application) changes a request's tags.
    let path = jit_path("rg1", "req1");
    let r = call(
        &alice,
        Method::PUT,
        &format!("{path}?{SOL}"),
        Some(vendor_request(APP_ID, "alice", "Contributor")),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let reader = app.user("carol", Some(("SecurityReader", RG))).await;
    call_ok(
        &app.admin,
        Method::PUT,
        "/api/v1/roleAssignments/carol-requester",
        Some(json!({"principal":"carol","roleDefinition":"JitRequester","scope":RG})),
    )
    .await;
    let retag = json!({"tags": {"ticket": "forged"}});
    let r = call(
        &reader,
        Method::PATCH,
        &format!("{path}?{SOL}"),
        Some(retag.clone()),
    )
    .await;
    assert_eq!(r.status, 403, "{:?}", r.body);
    let r = call(&alice, Method::PATCH, &format!("{path}?{SOL}"), Some(retag)).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["tags"], json!({"ticket": "forged"}));
}
