//! Every validation rule: a clear 4xx naming the field, and no state change.

use crate::*;
use ajar_testkit::TestApp;
use jiff::SignedDuration;
use reqwest::Method;
use serde_json::json;

fn port(v: serde_json::Value) -> serde_json::Value {
    let mut base = json!({"number":22,"protocol":"*","allowedSourceAddressPrefix":"*","maxRequestAccessDuration":"PT3H"});
    for (k, val) in v.as_object().unwrap() {
        if val.is_null() {
            base.as_object_mut().unwrap().remove(k);
        } else {
            base[k] = val.clone();
        }
    }
    base
}

fn policy_with(ports: Vec<serde_json::Value>) -> serde_json::Value {
    json!({"kind":"Basic","properties":{"virtualMachines":[{"id":VM,"ports":ports}]}})
}

/// PUTs a bad policy and checks status, code, target, and that nothing was stored.
async fn refused_policy(
    app: &TestApp,
    body: serde_json::Value,
    status: u16,
    code_: ErrorCode,
    target_: &str,
) {
    let r = call(
        &app.admin,
        Method::PUT,
        &format!("/api/v1{POLICY}"),
        Some(body.clone()),
    )
    .await;
    assert_eq!(
        (r.status, code(&r), target(&r).as_str()),
        (status, code_, target_),
        "body {body}: {:?}",
        r.body
    );
    assert!(!error_of(&r).message.is_empty());
    let get = call(&app.admin, Method::GET, &format!("/api/v1{POLICY}"), None).await;
    assert_eq!(get.status, 404, "a refused policy must not be stored");
}

#[tokio::test]
async fn policy_fields_are_validated() {
    let app = TestApp::spawn().await;
    call_ok(
        &app.admin,
        Method::PUT,
        &format!("/api/v1{VM}"),
        Some(machine_body("linux")),
    )
    .await;
    let p0 = "properties.virtualMachines[0].ports[0]";
    let cases = [
        (
            port(json!({"number":65536})),
            400,
            ErrorCode::InvalidRequestBody,
            format!("{p0}.number"),
        ),
        (
            port(json!({"number":-1})),
            400,
            ErrorCode::InvalidRequestBody,
            format!("{p0}.number"),
        ),
        (
            port(json!({"number":"22"})),
            400,
            ErrorCode::InvalidRequestBody,
            format!("{p0}.number"),
        ),
        (
            port(json!({"protocol":"ICMP"})),
            400,
            ErrorCode::InvalidRequestBody,
            format!("{p0}.protocol"),
        ),
        (
            port(json!({"allowedSourceAddressPrefix":"10.0.0.300"})),
            400,
            ErrorCode::InvalidRequestBody,
            format!("{p0}.allowedSourceAddressPrefix"),
        ),
        (
            port(json!({"allowedSourceAddressPrefix":"10.0.0.5/24"})),
            400,
            ErrorCode::InvalidRequestBody,
            format!("{p0}.allowedSourceAddressPrefix"),
        ),
        (
            port(json!({"allowedSourceAddressPrefixes":["10.0.0.0/8"]})),
            400,
            ErrorCode::ValidationFailed,
            format!("{p0}.allowedSourceAddressPrefixes"),
        ),
        (
            port(json!({"allowedSourceAddressPrefix":null})),
            400,
            ErrorCode::ValidationFailed,
            format!("{p0}.allowedSourceAddressPrefix"),
        ),
        (
            port(json!({"maxRequestAccessDuration":"PT4M"})),
            400,
            ErrorCode::InvalidRequestBody,
            format!("{p0}.maxRequestAccessDuration"),
        ),
        (
            port(json!({"maxRequestAccessDuration":"PT25H"})),
            400,
            ErrorCode::InvalidRequestBody,
            format!("{p0}.maxRequestAccessDuration"),
        ),
        (
            port(json!({"maxRequestAccessDuration":"3 hours"})),
            400,
            ErrorCode::InvalidRequestBody,
            format!("{p0}.maxRequestAccessDuration"),
        ),
        (
            port(json!({"colour":"red"})),
            400,
            ErrorCode::InvalidRequestBody,
            format!("{p0}.colour"),
        ),
    ];
    for (p, status, c, t) in cases {
        refused_policy(&app, policy_with(vec![p]), status, c, &t).await;
    }
    // Duplicate port + protocol, and overlapping protocols on one port.
    refused_policy(
        &app,
        policy_with(vec![port(json!({})), port(json!({}))]),
        400,
        ErrorCode::ValidationFailed,
        "properties.virtualMachines[0].ports[1].number",
    )
    .await;
    refused_policy(
        &app,
        policy_with(vec![port(json!({"protocol":"TCP"})), port(json!({}))]),
        400,
        ErrorCode::ValidationFailed,
        "properties.virtualMachines[0].ports[1].number",
    )
    .await;
    // Unknown machine: 404 naming it; machine in another resource group: 400.
    let unknown = json!({"properties":{"virtualMachines":[{"id":"/subscriptions/s1/resourceGroups/rg1/machines/ghost","ports":[port(json!({}))]}]}});
    refused_policy(
        &app,
        unknown,
        404,
        ErrorCode::NotFound,
        "properties.virtualMachines[0].id",
    )
    .await;
    let elsewhere =
        json!({"properties":{"virtualMachines":[{"id":VM2,"ports":[port(json!({}))]}]}});
    refused_policy(
        &app,
        elsewhere,
        400,
        ErrorCode::ValidationFailed,
        "properties.virtualMachines[0].id",
    )
    .await;
    // Wrong kind, unknown top-level field, wrong type.
    let mut bad_kind = policy_with(vec![port(json!({}))]);
    bad_kind["kind"] = json!("Premium");
    refused_policy(&app, bad_kind, 400, ErrorCode::ValidationFailed, "kind").await;
    let mut extra = policy_with(vec![port(json!({}))]);
    extra["zone"] = json!("westeurope");
    refused_policy(&app, extra, 400, ErrorCode::InvalidRequestBody, "zone").await;
    refused_policy(
        &app,
        json!({"properties":{"virtualMachines":"vm1"}}),
        400,
        ErrorCode::InvalidRequestBody,
        "properties.virtualMachines",
    )
    .await;
    refused_policy(
        &app,
        json!({"properties":{"virtualMachines":[]}}),
        400,
        ErrorCode::ValidationFailed,
        "properties.virtualMachines",
    )
    .await;
}

#[tokio::test]
async fn policy_plus_machine_name_is_at_most_56_characters() {
    let app = TestApp::spawn().await;
    let long = format!("{RG}/machines/{}", "m".repeat(49)); // "default" (7) + 49 = 56
    let longer = format!("{RG}/machines/{}", "m".repeat(50));
    for id in [&long, &longer] {
        call_ok(
            &app.admin,
            Method::PUT,
            &format!("/api/v1{id}"),
            Some(machine_body("linux")),
        )
        .await;
    }
    let body =
        |id: &str| json!({"properties":{"virtualMachines":[{"id":id,"ports":[port(json!({}))]}]}});
    let r = call(
        &app.admin,
        Method::PUT,
        &format!("/api/v1{POLICY}"),
        Some(body(&long)),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let r = call(
        &app.admin,
        Method::PUT,
        &format!("/api/v1{POLICY}"),
        Some(body(&longer)),
    )
    .await;
    assert_eq!(
        (r.status, target(&r).as_str()),
        (400, "properties.virtualMachines[0].id"),
        "{:?}",
        r.body
    );
}

#[tokio::test]
async fn malformed_bodies_are_refused_with_json_errors() {
    let app = TestApp::spawn().await;
    let url = format!("{}/api/v1{VM}", app.base);
    let http = reqwest::Client::new();
    let send = |body: Vec<u8>, ct: &'static str| {
        http.put(&url)
            .bearer_auth(&app.admin_token)
            .header("content-type", ct)
            .body(body)
            .send()
    };
    let r = send(b"{\"properties\":".to_vec(), "application/json")
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: ErrorBody = r.json().await.unwrap();
    assert_eq!(v.error.code, ErrorCode::InvalidRequestBody);

    let r = send(b"os=linux".to_vec(), "application/x-www-form-urlencoded")
        .await
        .unwrap();
    assert_eq!(r.status(), 415);

    let huge = format!(
        "{{\"properties\":{{\"os\":\"linux\",\"labels\":{{\"a\":\"{}\"}}}}}}",
        "x".repeat(2 << 20)
    );
    let r = send(huge.into_bytes(), "application/json").await.unwrap();
    assert_eq!(r.status(), 413);
    let v: ErrorBody = r.json().await.unwrap();
    assert_eq!(v.error.code, ErrorCode::PayloadTooLarge);

    // None of these created the machine.
    let r = call(&app.admin, Method::GET, &format!("/api/v1{VM}"), None).await;
    assert_eq!(r.status, 404);

    // Bad path parameters and unknown paths are JSON errors too.
    let r = call(
        &app.admin,
        Method::GET,
        "/api/v1/subscriptions/s%201/machines",
        None,
    )
    .await;
    assert_eq!(
        (r.status, code(&r), target(&r).as_str()),
        (400, ErrorCode::InvalidParameter, "subscriptionId")
    );
    let r = call(&app.admin, Method::GET, "/api/v1/nothing/here", None).await;
    assert_eq!((r.status, code(&r)), (404, ErrorCode::NotFound));
    let r = call(&app.admin, Method::PATCH, &format!("/api/v1{VM}"), None).await;
    assert_eq!((r.status, code(&r)), (405, ErrorCode::MethodNotAllowed));
    let r = call(
        &app.admin,
        Method::GET,
        &format!("/api/v1{SUB}/machines?state=Sleeping"),
        None,
    )
    .await;
    assert_eq!((r.status, target(&r).as_str()), (400, "state"));
    let r = call(
        &app.admin,
        Method::PUT,
        &format!("/api/v1{VM}"),
        Some(json!({"properties":{"os":"beos"}})),
    )
    .await;
    assert_eq!((r.status, target(&r).as_str()), (400, "properties.os"));
    let r = call(
        &app.admin,
        Method::PUT,
        &format!("/api/v1{VM}"),
        Some(json!({"properties":{"os":"linux","addresses":["10.0.0.999"]}})),
    )
    .await;
    assert_eq!(
        (r.status, target(&r).as_str()),
        (400, "properties.addresses[0]")
    );
}

/// Initiates a bad request and checks status and target, and that no grant appeared.
async fn refused_initiate(app: &TestApp, port: serde_json::Value, status: u16, target_: &str) {
    let r = initiate(&app.admin, POLICY, port.clone()).await;
    assert_eq!(
        (r.status, target(&r).as_str()),
        (status, target_),
        "port {port}: {:?}",
        r.body
    );
    let grants = app.admin.grants(VM).await.unwrap();
    assert!(
        grants.value.is_empty(),
        "a refused request must open nothing"
    );
}

#[tokio::test]
async fn initiate_must_be_a_subset_of_the_policy() {
    let app = TestApp::spawn().await;
    setup(&app).await;
    let end = |d: SignedDuration| app.now().checked_add(d).unwrap().to_string();
    let p0 = "virtualMachines[0].ports[0]";
    // Source outside the allowed CIDR; both source fields; end in the past; end beyond the max;
    // neither end nor duration; both; duration too long or too short; unknown port.
    refused_initiate(&app, json!({"number":3389,"endTimeUtc":end(SignedDuration::from_mins(30)),"allowedSourceAddressPrefix":"10.0.1.5"}), 400, &format!("{p0}.allowedSourceAddressPrefix")).await;
    refused_initiate(&app, json!({"number":3389,"endTimeUtc":end(SignedDuration::from_mins(30)),"allowedSourceAddressPrefix":"*"}), 400, &format!("{p0}.allowedSourceAddressPrefix")).await;
    refused_initiate(&app, json!({"number":22,"endTimeUtc":end(SignedDuration::from_mins(30)),"allowedSourceAddressPrefix":"1.2.3.4","allowedSourceAddressPrefixes":["1.2.3.4"]}), 400, &format!("{p0}.allowedSourceAddressPrefixes")).await;
    refused_initiate(&app, json!({"number":22,"endTimeUtc":end(SignedDuration::from_secs(-1)),"allowedSourceAddressPrefix":"*"}), 400, &format!("{p0}.endTimeUtc")).await;
    refused_initiate(&app, json!({"number":22,"endTimeUtc":end(SignedDuration::from_hours(3) + SignedDuration::from_secs(1)),"allowedSourceAddressPrefix":"*"}), 400, &format!("{p0}.endTimeUtc")).await;
    refused_initiate(
        &app,
        json!({"number":22,"allowedSourceAddressPrefix":"*"}),
        400,
        &format!("{p0}.endTimeUtc"),
    )
    .await;
    refused_initiate(
        &app,
        json!({"number":22,"duration":"PT1H","endTimeUtc":end(SignedDuration::from_hours(1))}),
        400,
        &format!("{p0}.duration"),
    )
    .await;
    refused_initiate(
        &app,
        json!({"number":3389,"duration":"PT2H","allowedSourceAddressPrefix":"10.0.0.5"}),
        400,
        &format!("{p0}.duration"),
    )
    .await;
    refused_initiate(
        &app,
        json!({"number":22,"duration":"PT1M"}),
        400,
        &format!("{p0}.duration"),
    )
    .await;
    refused_initiate(
        &app,
        json!({"number":22,"duration":"PT25H"}),
        400,
        &format!("{p0}.duration"),
    )
    .await;
    refused_initiate(
        &app,
        json!({"number":2222,"duration":"PT1H"}),
        400,
        &format!("{p0}.number"),
    )
    .await;
    refused_initiate(
        &app,
        json!({"number":22,"endTimeUtc":"yesterday"}),
        400,
        &format!("{p0}.endTimeUtc"),
    )
    .await;
    // A machine the policy does not cover: 404 with the machine as target.
    let r = call(
        &app.admin,
        Method::POST,
        &format!("/api/v1{POLICY}/initiate"),
        Some(initiate_body(
            VM_WIN,
            json!({"number":3389,"duration":"PT1H"}),
        )),
    )
    .await;
    assert_eq!(
        (r.status, code(&r), target(&r).as_str()),
        (404, ErrorCode::NotFound, "virtualMachines[0].id")
    );
    // An unknown policy: 404.
    let r = call(
        &app.admin,
        Method::POST,
        &format!("/api/v1{RG}/jitNetworkAccessPolicies/nope/initiate"),
        Some(initiate_body(VM, json!({"number":22,"duration":"PT1H"}))),
    )
    .await;
    assert_eq!((r.status, code(&r)), (404, ErrorCode::NotFound));
    // An address inside an allowed CIDR is accepted (containment, not literal match), for IPv4
    // and IPv6 alike, and the end may be exactly the maximum.
    let r = initiate(&app.admin, POLICY, json!({"number":3389,"endTimeUtc":end(SignedDuration::from_hours(1)),"allowedSourceAddressPrefix":"10.0.0.5"})).await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    let r = initiate(&app.admin, POLICY, json!({"number":3389,"duration":"PT30M","allowedSourceAddressPrefixes":["2001:db8::7","10.0.0.128/25"]})).await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    assert_eq!(app.admin.grants(VM).await.unwrap().value.len(), 2);
}

#[tokio::test]
async fn a_machine_belongs_to_one_policy() {
    let app = TestApp::spawn().await;
    setup(&app).await;
    let other = format!("{RG}/jitNetworkAccessPolicies/other");
    let r = call(
        &app.admin,
        Method::PUT,
        &format!("/api/v1{other}"),
        Some(policy_body(VM)),
    )
    .await;
    assert_eq!(
        (r.status, code(&r), target(&r).as_str()),
        (409, ErrorCode::Conflict, "properties.virtualMachines[0].id")
    );
    let r = call(&app.admin, Method::DELETE, &format!("/api/v1{VM}"), None).await;
    assert_eq!(
        (r.status, code(&r)),
        (409, ErrorCode::Conflict),
        "a covered machine cannot be deleted"
    );
}

#[tokio::test]
async fn an_unknown_path_says_what_shape_was_expected() {
    let app = TestApp::spawn().await;
    let says = |path: &'static str, expected: &'static str| {
        let admin = app.admin.clone();
        async move {
            let r = call(&admin, Method::GET, path, None).await;
            assert_eq!((r.status, code(&r)), (404, ErrorCode::NotFound), "{path}");
            let message = error_of(&r).message;
            assert!(message.contains(expected), "{path}: {message}");
        }
    };
    // A server URL that already ends in /api/v1.
    says(
        "/api/v1/api/v1/tokens",
        "should be the server's root, e.g. http://host:8600, not …/api/v1",
    )
    .await;
    // A typo in a fixed word: the closest route.
    says(
        "/api/v1/subscriptions/s1/resourceGroups/rg1/jitNetworkAccessPolicy/default",
        "the closest route is /api/v1/subscriptions/{sub}/resourceGroups/{rg}/jitNetworkAccessPolicies/{name}",
    )
    .await;
    // A full id where a name belongs (an approvalRequestId pasted after …/jitRequests/).
    says(
        "/api/v1/subscriptions/s1/resourceGroups/rg1/jitRequests//subscriptions/s1/resourceGroups/rg1/jitRequests/abc/approve",
        "a full resource id where a name belongs",
    )
    .await;
    says(
        "/api/v1/nothing",
        "GET /api/v1/openapi.json lists every route",
    )
    .await;
}
