//! The client side of signing in: PKCE, the authorization-code exchange (console), the device
//! authorization flow and refresh (CLI).

use crate::http;
use crate::provider::Discovery;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The scopes asked for when none are given.
pub const DEFAULT_SCOPE: &str = "openid profile email";

/// Why a sign-in step failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlowError {
    /// The identity provider said no (`error` and its description).
    #[error("the identity provider refused: {0}")]
    Refused(String),
    /// The provider does not offer what is needed (e.g. no device endpoint).
    #[error("{0}")]
    Unsupported(String),
    /// The provider could not be reached or answered nonsense.
    #[error("{0}")]
    Unavailable(String),
}

/// `bytes` random bytes, base64url without padding.
pub fn random_string(bytes: usize) -> Result<String, FlowError> {
    let buf = crate::random_bytes(bytes).map_err(|e| FlowError::Unavailable(e.to_string()))?;
    Ok(URL_SAFE_NO_PAD.encode(buf))
}

/// A PKCE verifier and its S256 challenge (RFC 7636).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pkce {
    /// Kept by the client until the exchange.
    pub verifier: String,
    /// Sent with the authorization request.
    pub challenge: String,
}

impl Pkce {
    /// A fresh verifier (256 random bits).
    pub fn new() -> Result<Self, FlowError> {
        Ok(Self::from_verifier(random_string(32)?))
    }

    /// The pair for a known verifier.
    pub fn from_verifier(verifier: String) -> Self {
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        Self {
            verifier,
            challenge,
        }
    }
}

/// What an authorization request carries.
#[derive(Debug, Clone)]
pub struct AuthorizationRequest<'a> {
    /// The client id (ajar's audience at this issuer).
    pub client_id: &'a str,
    /// Where the provider sends the browser back.
    pub redirect_uri: &'a str,
    /// Space-separated scopes.
    pub scope: &'a str,
    /// The CSRF state, echoed back.
    pub state: &'a str,
    /// The nonce, echoed in the ID token.
    pub nonce: &'a str,
    /// The PKCE challenge (S256).
    pub code_challenge: &'a str,
}

/// The URL to send the browser to.
pub fn authorization_url(d: &Discovery, r: &AuthorizationRequest<'_>) -> Result<String, FlowError> {
    let endpoint = d.authorization_endpoint.as_deref().ok_or_else(|| {
        FlowError::Unsupported("the identity provider has no authorization endpoint".into())
    })?;
    let mut url = reqwest::Url::parse(endpoint)
        .map_err(|e| FlowError::Unavailable(format!("bad authorization endpoint: {e}")))?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", r.client_id)
        .append_pair("redirect_uri", r.redirect_uri)
        .append_pair("scope", r.scope)
        .append_pair("state", r.state)
        .append_pair("nonce", r.nonce)
        .append_pair("code_challenge", r.code_challenge)
        .append_pair("code_challenge_method", "S256");
    Ok(url.into())
}

/// A token endpoint's answer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TokenResponse {
    /// The ID token (a JWT whose `aud` is the client id).
    #[serde(default)]
    pub id_token: Option<String>,
    /// The access token.
    #[serde(default)]
    pub access_token: Option<String>,
    /// The refresh token, if the provider gave one.
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// Seconds the access token lives.
    #[serde(default)]
    pub expires_in: Option<u64>,
}

impl TokenResponse {
    /// The token to present to ajar: the ID token (its audience is ajar's client id), else
    /// the access token.
    pub fn bearer(&self) -> Option<&str> {
        self.id_token.as_deref().or(self.access_token.as_deref())
    }
}

#[derive(Debug, Deserialize)]
struct ErrorAnswer {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// An OAuth error code from a failed answer, with its description.
fn refusal(bytes: &[u8], status: reqwest::StatusCode) -> FlowError {
    match serde_json::from_slice::<ErrorAnswer>(bytes) {
        Ok(e) => FlowError::Refused(match e.error_description {
            Some(d) => format!("{} ({d})", e.error),
            None => e.error,
        }),
        Err(_) => FlowError::Unavailable(format!("the token endpoint answered {status}")),
    }
}

/// POSTs a form to the token (or device) endpoint; the answer's JSON, or the OAuth error.
async fn post_form(
    http: &reqwest::Client,
    endpoint: &str,
    form: &[(&str, &str)],
    client_secret: Option<(&str, &str)>,
) -> Result<(reqwest::StatusCode, Vec<u8>), FlowError> {
    let mut req = http
        .post(endpoint)
        .header(reqwest::header::ACCEPT, "application/json")
        .form(form);
    if let Some((id, secret)) = client_secret {
        req = req.basic_auth(id, Some(secret));
    }
    let resp = req
        .send()
        .await
        .map_err(|e| FlowError::Unavailable(format!("cannot reach {endpoint}: {e}")))?;
    let status = resp.status();
    let bytes = http::body(resp).await.map_err(FlowError::Unavailable)?;
    Ok((status, bytes))
}

fn token_endpoint(d: &Discovery) -> Result<&str, FlowError> {
    d.token_endpoint
        .as_deref()
        .ok_or_else(|| FlowError::Unsupported("the identity provider has no token endpoint".into()))
}

fn parse<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, FlowError> {
    serde_json::from_slice(bytes).map_err(|e| {
        FlowError::Unavailable(format!("unexpected answer from the identity provider: {e}"))
    })
}

async fn token_request(
    http: &reqwest::Client,
    d: &Discovery,
    form: &[(&str, &str)],
    client_secret: Option<(&str, &str)>,
) -> Result<TokenResponse, FlowError> {
    let (status, bytes) = post_form(http, token_endpoint(d)?, form, client_secret).await?;
    if !status.is_success() {
        return Err(refusal(&bytes, status));
    }
    parse(&bytes)
}

/// Exchanges an authorization code (with its PKCE verifier) for tokens.
pub async fn exchange_code(
    http: &reqwest::Client,
    d: &Discovery,
    client_id: &str,
    client_secret: Option<&str>,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
) -> Result<TokenResponse, FlowError> {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("code_verifier", verifier),
    ];
    if client_secret.is_none() {
        form.push(("client_id", client_id));
    }
    token_request(http, d, &form, client_secret.map(|s| (client_id, s))).await
}

/// Uses a refresh token.
pub async fn refresh(
    http: &reqwest::Client,
    d: &Discovery,
    client_id: &str,
    refresh_token: &str,
) -> Result<TokenResponse, FlowError> {
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
        ("client_id", client_id),
    ];
    token_request(http, d, &form, None).await
}

/// A started device authorization (RFC 8628).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DeviceAuthorization {
    /// Polled with.
    pub device_code: String,
    /// What the person types.
    pub user_code: String,
    /// Where they type it.
    pub verification_uri: String,
    /// The same with the code filled in, if offered.
    #[serde(default)]
    pub verification_uri_complete: Option<String>,
    /// Seconds until the codes expire.
    pub expires_in: u64,
    /// Seconds between polls (default 5).
    #[serde(default)]
    pub interval: Option<u64>,
}

/// Starts the device flow.
pub async fn start_device(
    http: &reqwest::Client,
    d: &Discovery,
    client_id: &str,
    scope: &str,
) -> Result<DeviceAuthorization, FlowError> {
    let endpoint = d.device_authorization_endpoint.as_deref().ok_or_else(|| {
        FlowError::Unsupported(
            "the identity provider does not offer the device authorization flow".into(),
        )
    })?;
    let (status, bytes) = post_form(
        http,
        endpoint,
        &[("client_id", client_id), ("scope", scope)],
        None,
    )
    .await?;
    if !status.is_success() {
        return Err(refusal(&bytes, status));
    }
    parse(&bytes)
}

/// One poll's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DevicePoll {
    /// Not yet approved; poll again after the interval.
    Pending,
    /// Polling too fast: add 5 seconds to the interval.
    SlowDown,
    /// Approved.
    Done(TokenResponse),
}

/// Polls the token endpoint for a device code.
pub async fn poll_device(
    http: &reqwest::Client,
    d: &Discovery,
    client_id: &str,
    device_code: &str,
) -> Result<DevicePoll, FlowError> {
    let form = [
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ("device_code", device_code),
        ("client_id", client_id),
    ];
    let (status, bytes) = post_form(http, token_endpoint(d)?, &form, None).await?;
    if status.is_success() {
        return parse(&bytes).map(DevicePoll::Done);
    }
    match serde_json::from_slice::<ErrorAnswer>(&bytes) {
        Ok(e) if e.error == "authorization_pending" => Ok(DevicePoll::Pending),
        Ok(e) if e.error == "slow_down" => Ok(DevicePoll::SlowDown),
        _ => Err(refusal(&bytes, status)),
    }
}

/// A claim of a token, read **without verifying it**: only for values that are checked again
/// by verification (e.g. the nonce of a token ajar verifies next) or for the holder's own
/// bookkeeping (e.g. when its token expires).
pub fn unverified_claim(token: &str, name: &str) -> Option<Value> {
    jsonwebtoken::dangerous::insecure_decode_claims::<Map<String, Value>>(token)
        .ok()?
        .remove(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_challenge_is_the_rfc_7636_example() {
        // RFC 7636, appendix B.
        let p = Pkce::from_verifier("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".into());
        assert_eq!(p.challenge, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        let a = Pkce::new().unwrap();
        let b = Pkce::new().unwrap();
        assert_ne!(a.verifier, b.verifier);
        assert_eq!(a.verifier.len(), 43);
    }

    #[test]
    fn the_authorization_url_carries_every_parameter_encoded() {
        let d = Discovery {
            issuer: "https://idp".into(),
            jwks_uri: "https://idp/keys".into(),
            authorization_endpoint: Some("https://idp/auth?tenant=1".into()),
            token_endpoint: None,
            device_authorization_endpoint: None,
        };
        let url = authorization_url(
            &d,
            &AuthorizationRequest {
                client_id: "ajar",
                redirect_uri: "http://127.0.0.1:8600/signin/oidc/callback",
                scope: "openid email",
                state: "s&1",
                nonce: "n",
                code_challenge: "c",
            },
        )
        .unwrap();
        let parsed = reqwest::Url::parse(&url).unwrap();
        let q: std::collections::HashMap<_, _> = parsed.query_pairs().into_owned().collect();
        assert_eq!(q["tenant"], "1");
        assert_eq!(q["state"], "s&1");
        assert_eq!(
            q["redirect_uri"],
            "http://127.0.0.1:8600/signin/oidc/callback"
        );
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["response_type"], "code");
        let without = Discovery {
            authorization_endpoint: None,
            ..d
        };
        assert!(
            authorization_url(
                &without,
                &AuthorizationRequest {
                    client_id: "a",
                    redirect_uri: "r",
                    scope: "s",
                    state: "s",
                    nonce: "n",
                    code_challenge: "c",
                }
            )
            .is_err()
        );
    }

    #[test]
    fn unverified_claims_are_read_from_the_payload() {
        let payload = URL_SAFE_NO_PAD.encode(br#"{"exp":42,"nonce":"abc"}"#);
        let token = format!("eyJhbGciOiJSUzI1NiJ9.{payload}.c2ln");
        assert_eq!(unverified_claim(&token, "nonce"), Some(Value::from("abc")));
        assert_eq!(unverified_claim(&token, "exp"), Some(Value::from(42)));
        assert_eq!(unverified_claim(&token, "missing"), None);
        assert_eq!(unverified_claim("garbage", "exp"), None);
    }
}
