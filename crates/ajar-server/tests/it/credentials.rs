//! A credential made with another never outlives it: sessions made with sessions or with an
//! identity provider's token, and tokens of one's own made with either.

use crate::*;
use ajar_api::wire::{ActivityRecord, List, Token};
use ajar_oidc::{IssuerConfig, Providers};
use ajar_testkit::idp::{CLIENT_ID, TestIdp};
use ajar_testkit::{START, TestApp};
use jiff::{SignedDuration, Timestamp};
use reqwest::Method;
use serde_json::{Value, json};

async fn post(client: &ajar_api::Client, path: &str, body: Option<Value>) -> RawResponse {
    let r = call(client, Method::POST, path, body).await;
    assert_eq!(r.status, 201, "{path}: {:?}", r.body);
    r
}

fn ends(r: &RawResponse) -> Timestamp {
    r.json::<Token>().expires_at.expect("expiresAt")
}

/// The secret of the token or session made in `r`.
fn secret(r: &RawResponse) -> String {
    r.json::<Token>().token.expect("the secret")
}

/// The id of the token or session made in `r`.
fn id_of(r: &RawResponse) -> String {
    r.json::<Token>().id
}

/// The sign-in records of `principal`, newest first.
async fn signins(app: &TestApp, principal: &str) -> Vec<ActivityRecord> {
    let r = call(
        &app.admin,
        Method::GET,
        &format!("/api/v1/activity?principal={principal}&action=ajar.sessions/signin"),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.json::<List<ActivityRecord>>().value
}

async fn me(app: &TestApp, token: &str) -> u16 {
    call(&app.client(Some(token)), Method::GET, "/api/v1/me", None)
        .await
        .status
}

#[tokio::test]
async fn a_session_cannot_renew_itself_and_its_tokens_end_with_it() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice", None).await;
    let first = post(&alice, "/api/v1/sessions", None).await;
    let end = app.now() + SignedDuration::from_hours(12);
    assert_eq!(ends(&first), end);
    // A sign-in is one record of its own, not a token write.
    let signin = signins(&app, "alice").await;
    assert_eq!(signin.len(), 1, "{signin:?}");
    assert_eq!(signin[0].details["method"], "token");
    let tokens = call(
        &app.admin,
        Method::GET,
        "/api/v1/tokens?principal=alice",
        None,
    )
    .await
    .json::<List<Token>>()
    .value;
    let typed = tokens.iter().find(|t| t.id != id_of(&first)).unwrap();
    assert_eq!(signin[0].details["tokenId"], json!(typed.id));
    assert_eq!(signin[0].details["expiresAt"], json!(end.to_string()));
    let writes = call(
        &app.admin,
        Method::GET,
        "/api/v1/activity?principal=alice&action=ajar.tokens/write",
        None,
    )
    .await;
    assert_eq!(writes.json::<List<ActivityRecord>>().value.len(), 0);
    let session = app.client(Some(&secret(&first)));

    // Six hours on, a session made with the session ends when it does, not twelve hours on.
    app.advance(SignedDuration::from_hours(6));
    let second = post(&session, "/api/v1/sessions", None).await;
    assert_eq!(ends(&second), end);
    // A token of one's own made with the session ends with it too.
    let own = post(
        &session,
        "/api/v1/tokens",
        Some(json!({"principal":"alice"})),
    )
    .await;
    assert_eq!(ends(&own), end);
    let own_token = secret(&own);
    assert_eq!(me(&app, &own_token).await, 200);

    // Signing out (deleting the session) ends what was made with it at once.
    let id = id_of(&first);
    let r = call(
        &session,
        Method::DELETE,
        &format!("/api/v1/tokens/{id}"),
        None,
    )
    .await;
    assert_eq!(r.status, 204);
    assert_eq!(me(&app, &own_token).await, 401);
    assert_eq!(me(&app, &secret(&second)).await, 401);
    // A session deleting itself is recorded as a sign-out, not as a token write, and the
    // record names what went with it.
    let writes = call(
        &app.admin,
        Method::GET,
        "/api/v1/activity?action=ajar.tokens/write",
        None,
    )
    .await
    .json::<List<ActivityRecord>>()
    .value;
    assert!(
        !writes
            .iter()
            .any(|a| a.resource_id == format!("/tokens/{id}")),
        "{writes:?}"
    );
    let log = call(
        &app.admin,
        Method::GET,
        "/api/v1/activity?action=ajar.sessions/signout",
        None,
    )
    .await;
    let log: List<ActivityRecord> = log.json();
    let deletion = log
        .value
        .iter()
        .find(|a| a.resource_id == format!("/tokens/{id}") && a.details["deleted"] == true)
        .expect("the deletion is recorded");
    // Details are free-form JSON.
    let mut gone: Vec<&str> = deletion.details["madeWithItDeleted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    gone.sort_unstable();
    let (second_id, own_id) = (id_of(&second), id_of(&own));
    let mut expected = [second_id.as_str(), own_id.as_str()];
    expected.sort_unstable();
    assert_eq!(gone, expected);

    // A token an administrator makes for someone else with a session ends with it too: a stolen
    // session does not become a lasting credential.
    let admin_session = post(&app.admin, "/api/v1/sessions", None).await;
    let admin_session_client = app.client(Some(&secret(&admin_session)));
    let for_bob = post(
        &admin_session_client,
        "/api/v1/tokens",
        Some(json!({"principal":"bob"})),
    )
    .await;
    assert_eq!(ends(&for_bob), ends(&admin_session));

    // Revoking a long-lived token ends the sessions made with it.
    let lasting_alice = post(&alice, "/api/v1/tokens", Some(json!({"principal":"alice"}))).await;
    let lasting_alice_token = secret(&lasting_alice);
    let made = post(
        &app.client(Some(&lasting_alice_token)),
        "/api/v1/sessions",
        None,
    )
    .await;
    let made_token = secret(&made);
    assert_eq!(me(&app, &made_token).await, 200);
    let id = id_of(&lasting_alice);
    let r = call(
        &alice,
        Method::DELETE,
        &format!("/api/v1/tokens/{id}"),
        None,
    )
    .await;
    assert_eq!(r.status, 204);
    assert_eq!(me(&app, &made_token).await, 401);

    // A long-lived token still makes 12-hour sessions and lasting tokens.
    let fresh = post(&alice, "/api/v1/sessions", None).await;
    assert_eq!(ends(&fresh), app.now() + SignedDuration::from_hours(12));
    let lasting = post(&alice, "/api/v1/tokens", Some(json!({"principal":"alice"}))).await;
    assert_eq!(lasting.json::<Token>().expires_at, None);
    app.advance(SignedDuration::from_hours(13));
    assert_eq!(me(&app, &secret(&fresh)).await, 401);
    assert_eq!(me(&app, &secret(&lasting)).await, 200);
}

#[tokio::test]
async fn an_identity_providers_groups_are_not_carried_past_its_token() {
    let idp = TestIdp::start(START.parse().unwrap()).await;
    let issuers = vec![IssuerConfig::new(idp.issuer.clone(), CLIENT_ID)];
    let app = TestApp::spawn_with(move |s| s.with_oidc(Providers::new(issuers).unwrap())).await;
    setup(&app).await;
    assign(&app, "ops-read", "group:ops", "SecurityReader", RG).await;
    let jwt = app.client(Some(&idp.token(&idp.claims("alice", &["ops"]))));
    let id_token_end = app.now() + SignedDuration::from_hours(1);

    let session = post(&jwt, "/api/v1/sessions", None).await;
    assert_eq!(session.json::<Token>().groups, ["ops"]);
    assert_eq!(ends(&session), id_token_end, "not twelve hours");
    // The sign-in is recorded as one, naming the provider.
    let signin = signins(&app, "alice").await;
    assert_eq!(signin.len(), 1);
    assert_eq!(
        signin[0].resource_id,
        format!("/tokens/{}", id_of(&session))
    );
    assert_eq!(signin[0].details["method"], "identityProvider");
    assert_eq!(signin[0].details["issuer"], json!(idp.issuer));
    assert_eq!(signin[0].details["groups"], json!(["ops"]));
    let own = post(&jwt, "/api/v1/tokens", Some(json!({"principal":"alice"}))).await;
    assert_eq!(ends(&own), id_token_end);
    assert!(
        own.json::<Token>().groups.is_empty(),
        "a token carries no asserted groups: {:?}",
        own.body
    );

    let session = app.client(Some(&secret(&session)));
    let read_vm = format!("/api/v1{VM}");
    assert_eq!(
        call(&session, Method::GET, &read_vm, None).await.status,
        200
    );
    app.advance(SignedDuration::from_mins(61));
    let r = call(&session, Method::GET, &read_vm, None).await;
    assert_eq!((r.status, code(&r)), (401, ErrorCode::Unauthenticated));
    assert_eq!(me(&app, &secret(&own)).await, 401);
    // A fresh token from the provider makes a fresh session.
    idp.set_now(app.now());
    let jwt = app.client(Some(&idp.token(&idp.claims("alice", &["ops"]))));
    let again = post(&jwt, "/api/v1/sessions", None).await;
    assert!(ends(&again) > app.now());
}

#[tokio::test]
async fn only_sessions_carry_the_session_description() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice", None).await;
    // A lasting token described as a session would have its deletion recorded as a sign-out.
    let r = call(
        &alice,
        Method::POST,
        "/api/v1/tokens",
        Some(json!({"principal": "alice", "description": "console session"})),
    )
    .await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    let error: Value = r.json();
    assert_eq!(error["error"]["code"], "ValidationFailed");
    assert_eq!(error["error"]["target"], "description");
    let tokens = call(
        &app.admin,
        Method::GET,
        "/api/v1/tokens?principal=alice",
        None,
    )
    .await
    .json::<List<Token>>()
    .value;
    assert_eq!(tokens.len(), 1, "only alice's own token: {tokens:?}");
}
