//! Abuse limits over real HTTP: failed authentication is throttled per address and per
//! credential (429 with Retry-After) without locking out credentials that work, and oversized
//! headers are refused with 431.

use crate::*;
use ajar_api::wire::{Group, List, Token};
use ajar_testkit::TestApp;
use jiff::SignedDuration;
use reqwest::Method;

async fn me(app: &TestApp, token: &str) -> RawResponse {
    call(&app.client(Some(token)), Method::GET, "/api/v1/me", None).await
}

#[tokio::test]
async fn failed_sign_ins_from_one_address_are_held_for_the_rest_of_the_minute() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice", None).await;
    let alice_token = alice.token().unwrap().to_owned();
    assert_eq!(me(&app, &alice_token).await.status, 200);
    for i in 0..ajar_server::throttle::PER_ADDRESS {
        let r = me(&app, &format!("ajar_guess{i}")).await;
        assert_eq!(r.status, 401, "attempt {i}");
    }
    let r = me(&app, "ajar_one_more").await;
    assert_eq!(
        (r.status, code(&r)),
        (429, ErrorCode::TooManyRequests),
        "{:?}",
        r.body
    );
    // Checked without asking the store or the identity provider: even a real but unproven
    // token waits, while one that authenticated lately goes through.
    let bob = app.user("bob", None).await;
    assert_eq!(me(&app, bob.token().unwrap()).await.status, 429);
    assert_eq!(me(&app, &alice_token).await.status, 200);
    // A new minute, a new window.
    app.advance(SignedDuration::from_secs(61));
    assert_eq!(me(&app, "ajar_after").await.status, 401);
    assert_eq!(me(&app, bob.token().unwrap()).await.status, 200);
}

#[tokio::test]
async fn one_bad_credential_is_held_after_a_few_tries_and_says_when_to_retry() {
    let app = TestApp::spawn().await;
    for _ in 0..ajar_server::throttle::PER_CREDENTIAL {
        assert_eq!(me(&app, "ajar_same_wrong_token").await.status, 401);
    }
    let resp = reqwest::Client::new()
        .get(format!("{}/api/v1/me", app.base))
        .bearer_auth("ajar_same_wrong_token")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    assert_eq!(resp.headers()["retry-after"], "60");
    // Other credentials from the same address are still judged on their merits.
    assert_eq!(me(&app, "ajar_another").await.status, 401);
    assert_eq!(me(&app, &app.admin_token).await.status, 200);
}

#[tokio::test]
async fn oversized_headers_are_refused_with_431() {
    let app = TestApp::spawn().await;
    let http = reqwest::Client::new();
    let resp = http
        .get(format!("{}/api/v1/me", app.base))
        .bearer_auth(&app.admin_token)
        .header("x-padding", "a".repeat(40 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 431);
    let body: ErrorBody = resp.json().await.unwrap();
    assert_eq!(body.error.code, ErrorCode::HeadersTooLarge);
    let mut req = http
        .get(format!("{}/api/v1/me", app.base))
        .bearer_auth(&app.admin_token);
    for i in 0..ajar_server::limits::MAX_HEADERS + 1 {
        req = req.header(format!("x-h{i}"), "1");
    }
    assert_eq!(req.send().await.unwrap().status().as_u16(), 431);
    // A bearer JWT-sized header is fine.
    let resp = http
        .get(format!("{}/api/v1/me", app.base))
        .bearer_auth(&app.admin_token)
        .header("x-padding", "a".repeat(16 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
}

#[tokio::test]
async fn every_list_answers_in_bounded_pages_that_link_to_the_next() {
    let app = TestApp::spawn().await;
    for g in ["a", "b", "c"] {
        let r = call(
            &app.admin,
            Method::PUT,
            &format!("/api/v1/groups/{g}"),
            Some(serde_json::json!({"members":["alice"]})),
        )
        .await;
        assert_eq!(r.status, 201);
    }
    let r = call(&app.admin, Method::GET, "/api/v1/groups?top=2", None).await;
    assert_eq!(r.status, 200);
    let names = |r: &RawResponse| -> Vec<String> {
        r.json::<List<Group>>()
            .value
            .into_iter()
            .map(|g| g.name)
            .collect()
    };
    assert_eq!(names(&r), ["a", "b"]);
    let next = r.json::<List<Group>>().next_link.expect("nextLink");
    assert_eq!(next, "/api/v1/groups?top=2&skipToken=b");
    let r = call(&app.admin, Method::GET, &next, None).await;
    assert_eq!(names(&r), ["c"]);
    assert!(
        r.body.get("nextLink").is_none(),
        "the last page links nowhere"
    );
    // Without top, a page holds up to the maximum: small lists answer whole.
    let r = call(&app.admin, Method::GET, "/api/v1/groups", None).await;
    assert_eq!(names(&r).len(), 3);
    assert!(r.body.get("nextLink").is_none());
    // Other query parameters ride along; the client follows links to the end.
    let r = call(
        &app.admin,
        Method::GET,
        "/api/v1/tokens?principal=admin&top=1",
        None,
    )
    .await;
    assert_eq!(r.json::<List<Token>>().value.len(), 1, "{:?}", r.body);
    let all: Vec<Group> = app
        .admin
        .get_all("/api/v1/groups?top=1", 100)
        .await
        .unwrap();
    assert_eq!(all.len(), 3);
    // Sizes are bounded and tokens checked.
    for (query, at) in [
        ("top=0", "top"),
        ("top=1001", "top"),
        ("top=x", "top"),
        ("skipToken=", "skipToken"),
    ] {
        let r = call(
            &app.admin,
            Method::GET,
            &format!("/api/v1/groups?{query}"),
            None,
        )
        .await;
        assert_eq!((r.status, target(&r).as_str()), (400, at), "{query}");
    }
}

#[tokio::test]
async fn a_page_of_policies_ends_once_it_covers_a_thousand_machines() {
    let app = TestApp::spawn().await;
    let rg = "/subscriptions/s/resourceGroups/big";
    // Three policies of 500 machines each.
    for p in ["a", "b", "c"] {
        let mut covered = Vec::new();
        for m in 0..500 {
            let id = format!("{rg}/machines/{p}{m}");
            let r = call(
                &app.admin,
                Method::PUT,
                &format!("/api/v1{id}"),
                Some(serde_json::json!({"properties":{"os":"linux"}})),
            )
            .await;
            assert_eq!(r.status, 201, "{:?}", r.body);
            covered.push(
                serde_json::json!({"id": id, "ports": [{"number": 22, "protocol": "TCP",
                "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT1H"}]}),
            );
        }
        let r = call(
            &app.admin,
            Method::PUT,
            &format!("/api/v1{rg}/jitNetworkAccessPolicies/{p}"),
            Some(serde_json::json!({"properties": {"virtualMachines": covered}})),
        )
        .await;
        assert!(r.status == 200 || r.status == 201, "{:?}", r.body);
    }
    let names = |r: &RawResponse| -> Vec<String> {
        r.body["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect()
    };
    // a and b cover 1,000 machines: the page ends there, though `top` allows 1,000 policies.
    let r = call(
        &app.admin,
        Method::GET,
        "/api/v1/subscriptions/s/jitNetworkAccessPolicies",
        None,
    )
    .await;
    assert_eq!(names(&r), ["a", "b"]);
    let next = r.body["nextLink"].as_str().expect("nextLink").to_owned();
    let r = call(&app.admin, Method::GET, &next, None).await;
    assert_eq!(names(&r), ["c"]);
    assert!(r.body.get("nextLink").is_none());
}
