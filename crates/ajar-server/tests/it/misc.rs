//! The OpenAPI document and error shapes.

use crate::*;
use ajar_testkit::TestApp;
use reqwest::Method;

#[tokio::test]
async fn openapi_describes_every_route() {
    let app = TestApp::spawn().await;
    let r = call(&app.client(None), Method::GET, "/api/v1/openapi.json", None).await;
    assert_eq!(r.status, 200);
    assert!(r.body["openapi"].as_str().unwrap().starts_with("3."));
    let paths = r.body["paths"].as_object().unwrap();
    for p in [
        "/api/v1/subscriptions/{sub}/resourceGroups/{rg}/machines/{name}",
        "/api/v1/subscriptions/{sub}/resourceGroups/{rg}/jitNetworkAccessPolicies/{name}",
        "/api/v1/subscriptions/{sub}/resourceGroups/{rg}/jitNetworkAccessPolicies/{name}/initiate",
        "/api/v1/subscriptions/{sub}/resourceGroups/{rg}/machines/{name}/grants",
        "/api/v1/tokens",
        "/api/v1/roleAssignments/{id}",
        "/api/v1/roleDefinitions/{name}",
        // The routes are the document: none can be served yet left out.
        "/api/v1/history",
        "/api/v1/subscriptions/{sub}/resourceGroups/{rg}/jitRequests/{name}/extend",
    ] {
        assert!(paths.contains_key(p), "missing {p}");
    }
    assert!(r.body["components"]["schemas"]["PolicyBody"].is_object());
    assert!(r.body["components"]["securitySchemes"]["bearer"].is_object());
}

/// The OpenAPI document speaks of ajar and its users, never of how ajar is made.
#[tokio::test]
async fn the_openapi_document_has_no_internal_wording() {
    let app = TestApp::spawn().await;
    let r = call(&app.client(None), Method::GET, "/api/v1/openapi.json", None).await;
    assert_eq!(r.status, 200);
    let text = serde_json::to_string_pretty(&r.body).unwrap();
    let found = ajar_testkit::internal_wording(&text);
    assert!(found.is_empty(), "{found:#?}");
}

/// Every documented path answers exactly its documented methods: the routes are the document.
#[tokio::test]
async fn every_documented_path_serves_exactly_its_documented_methods() {
    let app = TestApp::spawn().await;
    let anonymous = app.client(None);
    let doc = call(&anonymous, Method::GET, "/api/v1/openapi.json", None).await;
    let paths = doc.body["paths"].as_object().expect("paths");
    assert!(paths.len() > 40, "{} paths", paths.len());
    for (template, item) in paths {
        let path = template
            .replace("{sub}", "s1")
            .replace("{rg}", "rg1")
            .replace("{name}", "x")
            .replace("{id}", "x")
            .replace("{role}", "x")
            .replace("{loc}", "westeurope");
        assert!(!path.contains('{'), "{template}");
        for method in [Method::GET, Method::PUT, Method::POST, Method::DELETE] {
            let documented = item.get(method.as_str().to_lowercase()).is_some();
            let r = call(&anonymous, method.clone(), &path, None).await;
            assert_eq!(
                r.status == 405,
                !documented,
                "{method} {template}: {} {:?}",
                r.status,
                r.body
            );
        }
    }
}

#[tokio::test]
async fn the_vendors_powershell_shapes_port_over() {
    let app = TestApp::spawn().await;
    call_ok(
        &app.admin,
        Method::PUT,
        &format!("/api/v1{VM}"),
        Some(machine_body("linux")),
    )
    .await;
    // The vendor's example: vendor-style machine id and an array in the singular source field.
    let body = serde_json::json!({"kind":"Basic","properties":{"virtualMachines":[{
        "id":"/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/vm1",
        "ports":[{"number":22,"protocol":"*","allowedSourceAddressPrefix":["*"],"maxRequestAccessDuration":"PT3H"},
                 {"number":3389,"protocol":"*","allowedSourceAddressPrefix":["*"],"maxRequestAccessDuration":"PT3H"}]}]}});
    let r = call(
        &app.admin,
        Method::PUT,
        &format!("/api/v1{POLICY}"),
        Some(body),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    // The answer names the machine in ajar's form, not the vendor's (read raw: the typed id
    // would accept either).
    assert_eq!(r.body["properties"]["virtualMachines"][0]["id"], VM);
    let end = app
        .now()
        .checked_add(jiff::SignedDuration::from_hours(1))
        .unwrap();
    let r = call(&app.admin, Method::POST, &format!("/api/v1{POLICY}/initiate"), Some(serde_json::json!({
        "virtualMachines":[{"id":"/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/vm1",
        "ports":[{"number":22,"endTimeUtc":format!("{}", end.strftime("%Y-%m-%dT%H:%M:%S.3658798Z")),"allowedSourceAddressPrefix":["203.0.113.7"]}]}]}))).await;
    assert_eq!(r.status, 202, "{:?}", r.body);
}

#[tokio::test]
async fn instants_read_back_exactly_as_answered() {
    let app = TestApp::spawn().await;
    setup(&app).await;
    // A clock and an end time with nanoseconds: the answer shows what the store keeps.
    app.clock
        .set("2026-01-01T00:00:00.123456789Z".parse().unwrap());
    let r = initiate(
        &app.admin,
        POLICY,
        serde_json::json!({"number":22,
        "endTimeUtc":"2026-01-01T01:00:00.3658798Z","allowedSourceAddressPrefix":"*"}),
    )
    .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    // The instants' text on the wire (read raw: the typed instants would not show it).
    assert_eq!(r.body["startTimeUtc"], "2026-01-01T00:00:00.123456Z");
    assert_eq!(
        r.body["virtualMachines"][0]["ports"][0]["endTimeUtc"],
        "2026-01-01T01:00:00.365879Z"
    );
    let id = &r.json::<ajar_api::wire::AccessRequest>().id;
    let got = call(
        &app.admin,
        Method::GET,
        &format!("/api/v1{POLICY}/requests/{id}"),
        None,
    )
    .await;
    assert_eq!(got.body, r.body);
}

#[tokio::test]
async fn health_probes_answer_without_a_token_and_reveal_nothing_else() {
    let app = ajar_testkit::TestApp::spawn().await;
    let http = reqwest::Client::new();
    let get = |path: &str| http.get(format!("{}{path}", app.base)).send();
    let live = get("/healthz").await.unwrap();
    assert_eq!(live.status(), 200);
    assert_eq!(
        live.json::<serde_json::Value>().await.unwrap()["status"],
        "ok"
    );
    let ready = get("/readyz").await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(
        ready.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!({"status":"ready"})
    );
    // Everything else still wants a token.
    assert_eq!(get("/api/v1/agents").await.unwrap().status(), 401);
}
