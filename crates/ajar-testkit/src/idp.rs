//! A test OpenID Connect identity provider on a random loopback port: generated RSA and EC
//! signing keys, discovery and JWKS endpoints, the authorization-code flow (auto-approving as
//! the configured user, PKCE checked), the device flow, refresh, and helpers to mint any token
//! a test needs — including forged ones (`alg: none`, HMAC keyed with a public key, unknown
//! `kid`).

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair, RSA_PKCS1_SHA256,
    RsaPublicKeyComponents,
};
use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// The client id (and audience) the test provider knows.
pub const CLIENT_ID: &str = "ajar";

enum Signer {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
}

struct SigningKey {
    kid: String,
    signer: Signer,
    published: bool,
}

impl SigningKey {
    fn rsa(kid: &str) -> Self {
        Self {
            kid: kid.into(),
            signer: Signer::Rsa(RsaKeyPair::generate(KeySize::Rsa2048).expect("rsa key")),
            published: true,
        }
    }

    fn ec(kid: &str) -> Self {
        Self {
            kid: kid.into(),
            signer: Signer::Ec(
                EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("ec key"),
            ),
            published: true,
        }
    }

    fn alg(&self) -> &'static str {
        match self.signer {
            Signer::Rsa(_) => "RS256",
            Signer::Ec(_) => "ES256",
        }
    }

    fn jwk(&self) -> Value {
        match &self.signer {
            Signer::Rsa(k) => {
                let c = RsaPublicKeyComponents::<Vec<u8>>::from(k.public_key());
                json!({"kty": "RSA", "kid": self.kid, "use": "sig", "alg": "RS256",
                       "n": URL_SAFE_NO_PAD.encode(c.n), "e": URL_SAFE_NO_PAD.encode(c.e)})
            }
            Signer::Ec(k) => {
                let point = k.public_key().as_ref();
                json!({"kty": "EC", "kid": self.kid, "use": "sig", "crv": "P-256",
                       "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                       "y": URL_SAFE_NO_PAD.encode(&point[33..65])})
            }
        }
    }

    /// The public key's bytes (what an attacker would use as an HMAC secret).
    fn public_bytes(&self) -> Vec<u8> {
        match &self.signer {
            Signer::Rsa(k) => k.public_key().as_ref().to_vec(),
            Signer::Ec(k) => k.public_key().as_ref().to_vec(),
        }
    }

    fn sign(&self, message: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.signer {
            Signer::Rsa(k) => {
                let mut sig = vec![0u8; k.public_modulus_len()];
                k.sign(&RSA_PKCS1_SHA256, &rng, message, &mut sig)
                    .expect("rsa sign");
                sig
            }
            Signer::Ec(k) => k.sign(&rng, message).expect("ec sign").as_ref().to_vec(),
        }
    }
}

/// The person the provider signs in through its flows.
#[derive(Debug, Clone)]
pub struct User {
    /// `sub`.
    pub sub: String,
    /// `email`.
    pub email: String,
    /// `groups`.
    pub groups: Vec<String>,
}

struct CodeGrant {
    redirect_uri: String,
    challenge: String,
    nonce: Option<String>,
}

struct Inner {
    base: String,
    issuer: Mutex<String>,
    now: Mutex<Timestamp>,
    keys: Mutex<Vec<SigningKey>>,
    current: Mutex<String>,
    user: Mutex<User>,
    codes: Mutex<HashMap<String, CodeGrant>>,
    /// device code → (user code, polls so far)
    devices: Mutex<HashMap<String, (String, u32)>>,
    refresh_tokens: Mutex<HashMap<String, ()>>,
    jwks_fetches: AtomicUsize,
    serial: AtomicUsize,
}

/// A running test identity provider.
#[derive(Clone)]
pub struct TestIdp {
    /// The issuer URL, e.g. `http://127.0.0.1:40001`.
    pub issuer: String,
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl TestIdp {
    /// Starts a provider whose tokens are issued at `now` (the app's clock), with an RSA key
    /// (`rsa-1`, current) and an EC key (`ec-1`), and the user `alice` in groups `ops`, `dba`.
    pub async fn start(now: Timestamp) -> TestIdp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let issuer = format!("http://{}", listener.local_addr().expect("addr"));
        let inner = Arc::new(Inner {
            base: issuer.clone(),
            issuer: Mutex::new(issuer.clone()),
            now: Mutex::new(now),
            keys: Mutex::new(vec![SigningKey::rsa("rsa-1"), SigningKey::ec("ec-1")]),
            current: Mutex::new("rsa-1".into()),
            user: Mutex::new(User {
                sub: "alice".into(),
                email: "alice@example.com".into(),
                groups: vec!["ops".into(), "dba".into()],
            }),
            codes: Mutex::default(),
            devices: Mutex::default(),
            refresh_tokens: Mutex::default(),
            jwks_fetches: AtomicUsize::new(0),
            serial: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/device", post(device))
            .with_state(inner.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        TestIdp { issuer, inner }
    }

    /// Moves the provider's clock (the `iat`/`exp` of tokens it issues).
    pub fn set_now(&self, now: Timestamp) {
        *lock(&self.inner.now) = now;
    }

    /// Makes discovery claim another issuer (a misconfigured or impostor provider).
    pub fn claim_issuer(&self, issuer: &str) {
        *lock(&self.inner.issuer) = issuer.into();
    }

    /// Signs in `user` from now on (code and device flows).
    pub fn set_user(&self, user: User) {
        *lock(&self.inner.user) = user;
    }

    /// How many times the key set was fetched.
    pub fn jwks_fetches(&self) -> usize {
        self.inner.jwks_fetches.load(Ordering::SeqCst)
    }

    /// Standard claims for `sub` in `groups`: this issuer, audience [`CLIENT_ID`], issued now,
    /// valid an hour.
    pub fn claims(&self, sub: &str, groups: &[&str]) -> Value {
        let now = lock(&self.inner.now).as_second();
        json!({"iss": self.issuer, "aud": CLIENT_ID, "sub": sub, "groups": groups,
               "email": format!("{sub}@example.com"), "email_verified": true,
               "preferred_username": sub, "iat": now, "nbf": now, "exp": now + 3600})
    }

    /// `claims` signed by the current key.
    pub fn token(&self, claims: &Value) -> String {
        sign_current(&self.inner, claims)
    }

    /// `claims` signed by the key `kid` (published or not).
    pub fn sign_with(&self, kid: &str, claims: &Value) -> String {
        sign(&self.inner, kid, claims)
    }

    /// A token with `alg: none` and an empty signature.
    pub fn unsigned(&self, claims: &Value) -> String {
        let header = json!({"alg": "none", "typ": "JWT"});
        format!("{}.", signing_input(&header, claims))
    }

    /// The classic confusion attack: HS256, keyed with the public key of `kid`, naming `kid`.
    pub fn hs256_with_public_key(&self, kid: &str, claims: &Value) -> String {
        let keys = lock(&self.inner.keys);
        let key = keys.iter().find(|k| k.kid == kid).expect("known key");
        let header = json!({"alg": "HS256", "typ": "JWT", "kid": kid});
        let message = signing_input(&header, claims);
        let mac_key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &key.public_bytes());
        let tag = aws_lc_rs::hmac::sign(&mac_key, message.as_bytes());
        format!("{message}.{}", b64(tag.as_ref()))
    }

    /// A new RSA key, published and used from now on; the old ones stay published. Returns
    /// its kid.
    pub fn rotate(&self) -> String {
        let n = self.inner.serial.fetch_add(1, Ordering::SeqCst) + 2;
        let kid = format!("rsa-{n}");
        lock(&self.inner.keys).push(SigningKey::rsa(&kid));
        *lock(&self.inner.current) = kid.clone();
        kid
    }

    /// A key that exists but is not in the published set. Returns its kid.
    pub fn unpublished_key(&self) -> String {
        let kid = format!(
            "hidden-{}",
            self.inner.serial.fetch_add(1, Ordering::SeqCst)
        );
        let mut key = SigningKey::rsa(&kid);
        key.published = false;
        lock(&self.inner.keys).push(key);
        kid
    }

    /// Whether `kid` is in the published set.
    pub fn publish(&self, kid: &str, published: bool) {
        if let Some(k) = lock(&self.inner.keys).iter_mut().find(|k| k.kid == kid) {
            k.published = published;
        }
    }
}

async fn discovery(State(s): State<Arc<Inner>>) -> Json<Value> {
    let issuer = lock(&s.issuer).clone();
    // Endpoints are always this server's, whatever issuer it claims.
    let base = &s.base;
    Json(json!({
        "issuer": issuer,
        "jwks_uri": format!("{base}/jwks"),
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "device_authorization_endpoint": format!("{base}/device"),
        "response_types_supported": ["code"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
    }))
}

async fn jwks(State(s): State<Arc<Inner>>) -> Json<Value> {
    s.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    let keys: Vec<Value> = lock(&s.keys)
        .iter()
        .filter(|k| k.published)
        .map(SigningKey::jwk)
        .collect();
    Json(json!({ "keys": keys }))
}

#[derive(Deserialize)]
struct AuthorizeQuery {
    response_type: String,
    client_id: String,
    redirect_uri: String,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

/// Signs the configured user in at once and sends the browser back with a code.
async fn authorize(State(s): State<Arc<Inner>>, Query(q): Query<AuthorizeQuery>) -> Response {
    if q.response_type != "code" || q.client_id != CLIENT_ID {
        return (StatusCode::BAD_REQUEST, "unknown client or response type").into_response();
    }
    let (Some(challenge), Some("S256")) = (q.code_challenge, q.code_challenge_method.as_deref())
    else {
        return (StatusCode::BAD_REQUEST, "PKCE (S256) is required").into_response();
    };
    let code = format!("code-{}", s.serial.fetch_add(1, Ordering::SeqCst));
    lock(&s.codes).insert(
        code.clone(),
        CodeGrant {
            redirect_uri: q.redirect_uri.clone(),
            challenge,
            nonce: q.nonce,
        },
    );
    let mut url = reqwest::Url::parse(&q.redirect_uri).expect("redirect uri");
    url.query_pairs_mut().append_pair("code", &code);
    if let Some(state) = q.state {
        url.query_pairs_mut().append_pair("state", &state);
    }
    Redirect::to(url.as_str()).into_response()
}

fn oauth_error(code: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": code }))).into_response()
}

/// Tokens for the configured user: an ID token (audience [`CLIENT_ID`]), an access token and
/// a refresh token.
fn issue(s: &Inner, nonce: Option<String>) -> Response {
    let user = lock(&s.user).clone();
    let now = lock(&s.now).as_second();
    let mut claims = json!({"iss": lock(&s.issuer).clone(), "aud": CLIENT_ID, "sub": user.sub,
        "email": user.email, "email_verified": true, "groups": user.groups,
        "iat": now, "nbf": now, "exp": now + 3600});
    if let Some(n) = nonce {
        claims["nonce"] = Value::String(n);
    }
    let id_token = sign_current(s, &claims);
    let refresh = format!("refresh-{}", s.serial.fetch_add(1, Ordering::SeqCst));
    lock(&s.refresh_tokens).insert(refresh.clone(), ());
    Json(
        json!({"token_type": "Bearer", "id_token": id_token, "access_token": id_token,
                "refresh_token": refresh, "expires_in": 3600}),
    )
    .into_response()
}

fn sign_current(s: &Inner, claims: &Value) -> String {
    let kid = lock(&s.current).clone();
    sign(s, &kid, claims)
}

/// The part of a JWT its signature covers: header and claims, each base64url, joined by `.`.
fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

/// `claims` signed by the key `kid` with its algorithm.
fn sign(s: &Inner, kid: &str, claims: &Value) -> String {
    let keys = lock(&s.keys);
    let key = keys.iter().find(|k| k.kid == kid).expect("known key");
    let header = json!({"alg": key.alg(), "typ": "JWT", "kid": key.kid});
    let message = signing_input(&header, claims);
    let sig = key.sign(message.as_bytes());
    format!("{message}.{}", b64(&sig))
}

async fn token(State(s): State<Arc<Inner>>, Form(f): Form<HashMap<String, String>>) -> Response {
    let field = |k: &str| f.get(k).map(String::as_str).unwrap_or_default();
    match field("grant_type") {
        "authorization_code" => {
            let Some(grant) = lock(&s.codes).remove(field("code")) else {
                return oauth_error("invalid_grant");
            };
            let verifier_ok =
                b64(&Sha256::digest(field("code_verifier").as_bytes())) == grant.challenge;
            if grant.redirect_uri != field("redirect_uri") || !verifier_ok {
                return oauth_error("invalid_grant");
            }
            issue(&s, grant.nonce)
        }
        "urn:ietf:params:oauth:grant-type:device_code" => {
            let mut devices = lock(&s.devices);
            let Some((_, polls)) = devices.get_mut(field("device_code")) else {
                return oauth_error("expired_token");
            };
            *polls += 1;
            // The person approves between the first and the second poll.
            if *polls < 2 {
                return oauth_error("authorization_pending");
            }
            devices.remove(field("device_code"));
            drop(devices);
            issue(&s, None)
        }
        "refresh_token" => {
            if lock(&s.refresh_tokens)
                .remove(field("refresh_token"))
                .is_none()
            {
                return oauth_error("invalid_grant");
            }
            issue(&s, None)
        }
        _ => oauth_error("unsupported_grant_type"),
    }
}

async fn device(State(s): State<Arc<Inner>>, Form(f): Form<HashMap<String, String>>) -> Response {
    if f.get("client_id").map(String::as_str) != Some(CLIENT_ID) {
        return oauth_error("invalid_client");
    }
    let n = s.serial.fetch_add(1, Ordering::SeqCst);
    let device_code = format!("device-{n}");
    let user_code = format!("WDJB-{n:04}");
    lock(&s.devices).insert(device_code.clone(), (user_code.clone(), 0));
    Json(json!({"device_code": device_code, "user_code": user_code,
                "verification_uri": format!("{}/activate", s.base),
                "verification_uri_complete": format!("{}/activate?user_code={user_code}", s.base),
                "expires_in": 600, "interval": 1}))
    .into_response()
}
