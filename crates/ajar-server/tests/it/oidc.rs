//! Bearer JWTs from trusted OpenID Connect issuers, against a test identity provider with
//! generated RSA and EC keys: who a token names, its groups in RBAC, eligibility and approver
//! lists, every way a token must be refused, key rotation, and sessions.

use crate::*;
use ajar_api::wire::{ActivityRecord, IdentityProvider, List, Me, Token};
use ajar_core::lifecycle::RequestState;
use ajar_oidc::{IssuerConfig, Providers};
use ajar_testkit::idp::{CLIENT_ID, TestIdp};
use ajar_testkit::{START, TestApp};
use jiff::SignedDuration;
use reqwest::Method;
use serde_json::{Value, json};

/// A server trusting `idps` (audience [`CLIENT_ID`], default claims).
async fn trusting(idps: &[&TestIdp]) -> TestApp {
    let configs: Vec<IssuerConfig> = idps
        .iter()
        .map(|i| IssuerConfig::new(i.issuer.clone(), CLIENT_ID))
        .collect();
    with_issuers(configs).await
}

/// A server trusting the issuers `configs` describe.
async fn with_issuers(configs: Vec<IssuerConfig>) -> TestApp {
    TestApp::spawn_with(move |s| s.with_oidc(Providers::new(configs).unwrap())).await
}

async fn new_idp() -> TestIdp {
    TestIdp::start(START.parse().unwrap()).await
}

async fn me(app: &TestApp, token: &str) -> RawResponse {
    call(&app.client(Some(token)), Method::GET, "/api/v1/me", None).await
}

#[tokio::test]
async fn a_valid_token_names_its_principal_and_its_groups_grant_within_their_scope() {
    let idp = new_idp().await;
    let app = trusting(&[&idp]).await;
    setup(&app).await;
    let alice = idp.token(&idp.claims("alice", &["ops", "dba"]));
    let r = me(&app, &alice).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let who: Me = r.json();
    assert_eq!(who.principal, "alice");
    assert_eq!(who.groups, ["dba", "ops"]);
    // The EC key verifies too.
    let ec = idp.sign_with("ec-1", &idp.claims("alice", &["ops"]));
    assert_eq!(me(&app, &ec).await.status, 200);

    // Nothing yet: groups grant only what is assigned to them, and only at that scope.
    let machine = |token: &str, id: &str| {
        let client = app.client(Some(token));
        let path = format!("/api/v1{id}");
        async move { call(&client, Method::GET, &path, None).await.status }
    };
    assert_eq!(machine(&alice, VM).await, 403);
    assign(&app, "ops-read", "group:ops", "SecurityReader", RG).await;
    assert_eq!(machine(&alice, VM).await, 200);
    assert_eq!(machine(&alice, VM2).await, 403, "outside the group's scope");
    let bob = idp.token(&idp.claims("bob", &["dev"]));
    assert_eq!(machine(&bob, VM).await, 403, "not in the group");
    // ajar's own groups still count for a token's principal.
    let r = call(
        &app.admin,
        Method::PUT,
        "/api/v1/groups/ops",
        Some(json!({"members":["bob"]})),
    )
    .await;
    assert_eq!(r.status, 201);
    assert_eq!(machine(&bob, VM).await, 200);

    // Other claims name the principal when configured so.
    let configs = vec![IssuerConfig {
        principal_claim: "email".into(),
        groups_claim: "roles".into(),
        ..IssuerConfig::new(idp.issuer.clone(), CLIENT_ID)
    }];
    let by_email = with_issuers(configs).await;
    let mut claims = idp.claims("carol", &["ops"]);
    claims["roles"] = json!(["auditors"]);
    let r = me(&by_email, &idp.token(&claims)).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let who: Me = r.json();
    assert_eq!(who.principal, "carol@example.com");
    assert_eq!(who.groups, ["auditors"]);
}

#[tokio::test]
async fn forged_expired_and_misaddressed_tokens_are_refused_with_401() {
    let idp = new_idp().await;
    let stranger = new_idp().await;
    let app = trusting(&[&idp]).await;
    let now = app.now().as_second();
    assert_eq!(
        me(&app, &idp.token(&idp.claims("alice", &[]))).await.status,
        200
    );
    let with = |k: &str, v: Value| {
        let mut c = idp.claims("alice", &["ops"]);
        c[k] = v;
        c
    };
    let valid = idp.token(&idp.claims("alice", &["ops"]));
    let (head, rest) = valid.split_once('.').unwrap();
    let signature = rest.split_once('.').unwrap().1;
    let forged_payload = {
        use base64::Engine;
        let claims = idp.claims("admin", &["ops"]);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims.to_string())
    };
    let hidden = idp.unpublished_key();
    let cases: Vec<(&str, String)> = vec![
        ("expired", idp.token(&with("exp", json!(now - 120)))),
        ("not yet valid", idp.token(&with("nbf", json!(now + 600)))),
        ("no expiry", idp.token(&with("exp", Value::Null))),
        (
            "wrong issuer",
            idp.token(&with("iss", json!("https://evil.example.com"))),
        ),
        (
            "untrusted issuer",
            stranger.token(&stranger.claims("alice", &[])),
        ),
        (
            "wrong audience",
            idp.token(&with("aud", json!("someone-else"))),
        ),
        (
            "audience list without ajar",
            idp.token(&with("aud", json!(["a", "b"]))),
        ),
        // Another provider's key under a kid this issuer also uses.
        (
            "bad signature",
            stranger.token(&idp.claims("alice", &["ops"])),
        ),
        (
            "tampered payload",
            format!("{head}.{forged_payload}.{signature}"),
        ),
        ("alg none", idp.unsigned(&idp.claims("alice", &["ops"]))),
        (
            "hs256 keyed with the rsa public key",
            idp.hs256_with_public_key("rsa-1", &idp.claims("alice", &[])),
        ),
        (
            "hs256 keyed with the ec public key",
            idp.hs256_with_public_key("ec-1", &idp.claims("alice", &[])),
        ),
        (
            "unknown kid",
            idp.sign_with(&hidden, &idp.claims("alice", &[])),
        ),
        (
            "principal posing as a group",
            idp.token(&with("sub", json!("group:ops"))),
        ),
        (
            "principal posing as an agent",
            idp.token(&with("sub", json!("agent:edge"))),
        ),
        (
            "not a jwt at all",
            "eyJhbGciOiJSUzI1NiJ9.e30.AAAA".to_owned(),
        ),
    ];
    for (name, token) in &cases {
        let r = me(&app, token).await;
        assert_eq!(r.status, 401, "{name}: {:?}", r.body);
        assert_eq!(code(&r), ErrorCode::Unauthenticated, "{name}");
        assert!(!error_of(&r).message.is_empty(), "{name}");
    }
    // Within the leeway a just-expired token still passes.
    assert_eq!(
        me(&app, &idp.token(&with("exp", json!(now - 30))))
            .await
            .status,
        200
    );
    // Refusals are recorded nowhere and change nothing: the activity log holds only the
    // bootstrap record.
    let r = call(&app.admin, Method::GET, "/api/v1/activity", None).await;
    assert_eq!(
        r.json::<List<ActivityRecord>>().value.len(),
        1,
        "{:?}",
        r.body
    );
}

#[tokio::test]
async fn unknown_key_ids_refresh_the_key_set_at_most_once_per_interval() {
    let idp = new_idp().await;
    let app = trusting(&[&idp]).await;
    assert_eq!(
        me(&app, &idp.token(&idp.claims("alice", &[]))).await.status,
        200
    );
    let fetched = idp.jwks_fetches();
    assert_eq!(fetched, 1);
    for _ in 0..5 {
        let hidden = idp.unpublished_key();
        let r = me(&app, &idp.sign_with(&hidden, &idp.claims("alice", &[]))).await;
        assert_eq!(r.status, 401);
    }
    assert_eq!(
        idp.jwks_fetches(),
        fetched + 1,
        "five made-up kids cost one fetch"
    );
}

#[tokio::test]
async fn a_rotated_key_is_picked_up_from_the_published_set() {
    let idp = new_idp().await;
    let app = trusting(&[&idp]).await;
    let before = idp.token(&idp.claims("alice", &[]));
    assert_eq!(me(&app, &before).await.status, 200);
    let kid = idp.rotate();
    let after = idp.token(&idp.claims("alice", &[]));
    assert_eq!(
        ajar_oidc::flows::unverified_claim(&after, "sub"),
        Some(json!("alice"))
    );
    assert_ne!(kid, "rsa-1");
    let r = me(&app, &after).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(idp.jwks_fetches(), 2, "the unknown kid made one refresh");
    // Tokens under the old key keep working while it is still published.
    assert_eq!(me(&app, &before).await.status, 200);
    // And the new key keeps working without further fetches.
    let again = idp.token(&idp.claims("bob", &[]));
    assert_eq!(me(&app, &again).await.status, 200);
    assert_eq!(idp.jwks_fetches(), 2);
}

#[tokio::test]
async fn a_token_stops_working_at_its_expiry_even_when_cached() {
    let idp = new_idp().await;
    let app = trusting(&[&idp]).await;
    let mut claims = idp.claims("alice", &[]);
    claims["exp"] = json!(app.now().as_second() + 120);
    let token = idp.token(&claims);
    assert_eq!(me(&app, &token).await.status, 200);
    app.advance(SignedDuration::from_secs(120 + 61));
    assert_eq!(me(&app, &token).await.status, 401);
}

#[tokio::test]
async fn groups_from_tokens_count_in_eligibility_and_approver_lists() {
    let idp = new_idp().await;
    let app = trusting(&[&idp]).await;
    assign(&app, "devs-request", "group:devs", "JitRequester", RG).await;
    assign(&app, "approvers-approve", "group:approvers", "Approver", RG).await;
    let app_id = group_approved_app(&app, "approvers").await;
    let body = |who: &str| activation(&app_id, who);
    let frank = app.client(Some(&idp.token(&idp.claims("frank", &["devs"]))));
    let erin = app.client(Some(&idp.token(&idp.claims("erin", &["approvers"]))));
    let mallory = app.client(Some(&idp.token(&idp.claims("mallory", &["dev"]))));

    let r = call(
        &mallory,
        Method::PUT,
        &req_path("m1"),
        Some(body("mallory")),
    )
    .await;
    assert_eq!(r.status, 403, "{:?}", r.body);
    let r = call(&frank, Method::PUT, &req_path("f1"), Some(body("frank"))).await;
    assert_eq!(
        (r.status, state_of(&r)),
        (201, RequestState::Pending),
        "{:?}",
        r.body
    );
    assert_eq!(inbox(&erin).await[0].name, "f1");
    assert_eq!(
        decide(&frank, "f1", "approve").await.status,
        403,
        "not an approver"
    );
    assert_eq!(
        state_of(&decide(&erin, "f1", "approve").await),
        RequestState::Active
    );
}

#[tokio::test]
async fn sessions_carry_the_asserted_groups_and_end_with_the_identity_token() {
    let idp = new_idp().await;
    let app = trusting(&[&idp]).await;
    let agent = setup(&app).await;
    assign(&app, "ops-read", "group:ops", "SecurityReader", RG).await;
    let jwt = app.client(Some(&idp.token(&idp.claims("alice", &["ops"]))));
    let r = call(&jwt, Method::POST, "/api/v1/sessions", None).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let made: Token = r.json();
    assert_eq!(made.principal, "alice");
    assert_eq!(made.groups, ["ops"]);
    // The test provider's ID tokens last an hour: the session, made with one, too.
    let end = app.now() + SignedDuration::from_hours(1);
    assert_eq!(made.expires_at, Some(end));
    let session = app.client(made.token.as_deref());
    let vm_path = format!("/api/v1{VM}");
    let read_vm = || call(&session, Method::GET, &vm_path, None);
    assert_eq!(read_vm().await.status, 200);
    let r = call(&session, Method::GET, "/api/v1/me", None).await;
    assert_eq!(r.json::<Me>().groups, ["ops"]);
    // It ends with the identity token (past the minute of leeway a JWT gets), groups and all.
    app.advance(SignedDuration::from_mins(62));
    assert_eq!(
        call(&jwt, Method::GET, "/api/v1/me", None).await.status,
        401
    );
    let r = read_vm().await;
    assert_eq!((r.status, code(&r)), (401, ErrorCode::Unauthenticated));
    let listed = call(
        &app.admin,
        Method::GET,
        "/api/v1/tokens?principal=alice",
        None,
    )
    .await;
    assert_eq!(
        listed.json::<List<Token>>().value.len(),
        1,
        "ended, still listed"
    );

    // An agent cannot make one; an API token can (without asserted groups).
    assert_eq!(
        call(&agent, Method::POST, "/api/v1/sessions", None)
            .await
            .status,
        403
    );
    let r = call(&app.admin, Method::POST, "/api/v1/sessions", None).await;
    assert_eq!(r.status, 201);
    // Without asserted groups, the answer has no `groups` at all.
    assert!(r.body.get("groups").is_none(), "{:?}", r.body);
    // Making it swept alice's ended session away.
    let listed = call(
        &app.admin,
        Method::GET,
        "/api/v1/tokens?principal=alice",
        None,
    )
    .await;
    assert!(listed.json::<List<Token>>().value.is_empty());
}

#[tokio::test]
async fn several_issuers_are_trusted_and_listed_for_sign_in() {
    let (a, b) = (new_idp().await, new_idp().await);
    let app = trusting(&[&a, &b]).await;
    assert_eq!(
        me(&app, &a.token(&a.claims("alice", &[]))).await.status,
        200
    );
    assert_eq!(me(&app, &b.token(&b.claims("bob", &[]))).await.status, 200);
    let r = call(
        &app.client(None),
        Method::GET,
        "/api/v1/identityProviders",
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    let providers = r.json::<List<IdentityProvider>>().value;
    let issuers: Vec<&str> = providers.iter().map(|p| p.issuer.as_str()).collect();
    assert_eq!(issuers, [a.issuer.as_str(), b.issuer.as_str()]);
    assert_eq!(providers[0].client_id, CLIENT_ID);
}

#[tokio::test]
async fn an_unreachable_or_impostor_issuer_answers_503_not_401() {
    let idp = new_idp().await;
    idp.claim_issuer("https://someone-else.example.com");
    let app = trusting(&[&idp]).await;
    let r = me(&app, &idp.token(&idp.claims("alice", &[]))).await;
    assert_eq!(
        (r.status, code(&r)),
        (503, ErrorCode::ServiceUnavailable),
        "{:?}",
        r.body
    );

    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let configs = vec![IssuerConfig::new(closed.clone(), CLIENT_ID)];
    let app = with_issuers(configs).await;
    let mut claims = idp.claims("alice", &[]);
    claims["iss"] = json!(closed);
    let r = me(&app, &idp.token(&claims)).await;
    assert_eq!(
        (r.status, code(&r)),
        (503, ErrorCode::ServiceUnavailable),
        "{:?}",
        r.body
    );
    // API tokens keep working while the identity provider is away.
    assert_eq!(me(&app, &app.admin_token).await.status, 200);
}

#[test]
fn issuers_over_plain_http_are_accepted_only_on_loopback() {
    for (issuer, ok) in [
        ("https://login.example.com/realms/x", true),
        ("http://127.0.0.1:8080", true),
        ("http://localhost:8080", true),
        ("http://login.example.com", false),
        ("http://192.168.1.10", false),
    ] {
        let r = Providers::new(vec![IssuerConfig::new(issuer, CLIENT_ID)]);
        assert_eq!(r.is_ok(), ok, "{issuer}");
    }
    assert!(Providers::new(vec![IssuerConfig::new("https://a.example.com", "")]).is_err());
    assert!(
        Providers::new(vec![
            IssuerConfig::new("https://a.example.com", "x"),
            IssuerConfig::new("https://a.example.com", "y"),
        ])
        .is_err()
    );
}

#[tokio::test]
async fn a_principal_prefix_keeps_the_providers_names_apart_from_api_tokens() {
    let idp = new_idp().await;
    let configs = vec![IssuerConfig {
        principal_prefix: "corp-".into(),
        ..IssuerConfig::new(idp.issuer.clone(), CLIENT_ID)
    }];
    let app = with_issuers(configs).await;
    // A provider user called "admin" is not the bootstrap admin.
    let r = me(&app, &idp.token(&idp.claims("admin", &[]))).await;
    assert_eq!(r.json::<Me>().principal, "corp-admin");
    let who = app.client(Some(&idp.token(&idp.claims("admin", &[]))));
    assert_eq!(
        call(&who, Method::GET, "/api/v1/roleAssignments", None)
            .await
            .status,
        403
    );
    for bad in ["group:", "agent:x-", "a b"] {
        let config = IssuerConfig {
            principal_prefix: bad.into(),
            ..IssuerConfig::new(idp.issuer.clone(), CLIENT_ID)
        };
        assert!(Providers::new(vec![config]).is_err(), "{bad:?}");
    }
}

#[tokio::test]
async fn a_groups_prefix_keeps_one_issuers_groups_apart_from_ajars_and_other_issuers() {
    let (corp, partner) = (new_idp().await, new_idp().await);
    let app = with_issuers(vec![
        IssuerConfig {
            groups_prefix: "corp-".into(),
            ..IssuerConfig::new(corp.issuer.clone(), CLIENT_ID)
        },
        IssuerConfig::new(partner.issuer.clone(), CLIENT_ID),
    ])
    .await;
    let r = call(
        &app.admin,
        Method::PUT,
        &format!("/api/v1{VM}"),
        Some(machine_body("linux")),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let read_vm = |token: String| {
        let client = app.client(Some(&token));
        async move {
            call(&client, Method::GET, &format!("/api/v1{VM}"), None)
                .await
                .status
        }
    };
    let from_corp = corp.token(&corp.claims("alice", &["ops"]));
    let from_partner = partner.token(&partner.claims("bob", &["ops"]));
    let r = me(&app, &from_corp).await;
    assert_eq!(r.json::<Me>().groups, ["corp-ops"], "{:?}", r.body);
    let r = me(&app, &from_partner).await;
    assert_eq!(r.json::<Me>().groups, ["ops"], "no prefix: as before");

    assign(&app, "ops-read", "group:ops", "SecurityReader", RG).await;
    assert_eq!(
        read_vm(from_corp.clone()).await,
        403,
        "the corp issuer's ops is not group:ops"
    );
    assert_eq!(read_vm(from_partner.clone()).await, 200);
    assign(
        &app,
        "corp-ops-read",
        "group:corp-ops",
        "SecurityReader",
        RG,
    )
    .await;
    assert_eq!(read_vm(from_corp).await, 200);

    for bad in ["group:", "corp:", "-corp", "a b", &"x".repeat(65)] {
        let config = IssuerConfig {
            groups_prefix: bad.into(),
            ..IssuerConfig::new(corp.issuer.clone(), CLIENT_ID)
        };
        let e = Providers::new(vec![config]).unwrap_err();
        assert!(e.contains("groups prefix"), "{bad:?}: {e}");
    }
}
