//! ajar's web console, served by `ajar serve` at `/`: server-rendered pages (no build step, no
//! inline script) that act through the REST API as the signed-in user, so every check the API
//! makes applies unchanged.
//!
//! - **Session:** signing in — with an API token, or through a trusted OpenID Connect provider
//!   (authorization code with PKCE, `state` and `nonce`) — creates a session: a token for the
//!   same principal that ends after 12 hours and carries the provider's groups, kept in an
//!   `HttpOnly`, `SameSite=Strict` cookie (`Secure` behind TLS); signing out deletes that
//!   token, so a copied cookie stops working.
//! - **CSRF:** every form carries a token derived from the session's secret (or, on the sign-in
//!   form, from a random cookie); posts without it are refused.
//! - **CSP:** `default-src 'self'`, no inline scripts or styles, no framing.

mod html;
mod pages;
mod signin;

use ajar_api::ErrorBody;
use ajar_api::wire::Me;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::{Cookie, SameSite};
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use tower::ServiceExt;

/// The session cookie: `TOKEN_ID:SECRET` of the session's API token.
pub const SESSION_COOKIE: &str = "ajar_session";
/// The sign-in form's CSRF cookie.
pub const PRESESSION_COOKIE: &str = "ajar_presession";
/// How long a session cookie lives in the browser (the session's token ends then too).
pub const SESSION_MAX_AGE_SECS: u32 = 12 * 3600;
/// The cookie holding an identity-provider sign-in in progress: provider, state, nonce and
/// PKCE verifier. `SameSite=Lax`, because the provider sends the browser back cross-site.
pub const SIGNIN_FLOW_COOKIE: &str = "ajar_oidc_flow";

/// The console's routes over `api`, the REST API's router (called in-process as the user),
/// offering sign-in through `oidc`'s providers.
pub fn router(api: Router, oidc: Arc<ajar_oidc::Providers>) -> Router {
    pages::routes().with_state(Console { api, oidc })
}

/// What the console's handlers share.
#[derive(Clone)]
pub struct Console {
    api: Router,
    oidc: Arc<ajar_oidc::Providers>,
}

/// The signed-in user of a page.
#[derive(Debug, Clone)]
pub struct Session {
    /// The session token's id (to delete it on sign-out).
    pub token_id: String,
    /// The session token.
    pub secret: String,
    /// Who.
    pub principal: String,
    /// The server's clock when the page was made (for countdowns despite clock skew).
    pub server_time: String,
}

impl Session {
    /// The CSRF token forms must carry.
    pub fn csrf(&self) -> String {
        csrf_of(&self.secret)
    }
}

/// The CSRF token bound to a secret: not guessable without the secret, which only the
/// `HttpOnly` cookie holds.
pub fn csrf_of(secret: &str) -> String {
    let digest = Sha256::digest(format!("ajar-console-csrf:{secret}").as_bytes());
    hex::encode(&digest[..16])
}

/// Compares in constant time, so timing reveals nothing of the expected value (only, as
/// for any such comparison, whether the lengths differ).
pub fn same(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// A cookie's value from the request headers. Of several cookies with one name the first
/// wins: browsers send the most specific first (a longer path, then the older), so a cookie a
/// sibling site set for a wider domain later cannot take the place of the console's own.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| Cookie::split_parse(v.to_owned()))
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

/// Whether the client reached us over TLS (directly or through a proxy that says so).
fn over_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// A `Set-Cookie` value with the console's flags.
pub fn set_cookie(headers: &HeaderMap, name: &str, value: &str, max_age: u32) -> HeaderValue {
    cookie_with(headers, name, value, max_age, SameSite::Strict)
}

/// A `Set-Cookie` value: `HttpOnly`, `Path=/`, the given `SameSite`, `Secure` over TLS.
pub fn cookie_with(
    headers: &HeaderMap,
    name: &str,
    value: &str,
    max_age: u32,
    same_site: SameSite,
) -> HeaderValue {
    let cookie = Cookie::build((name, value))
        .path("/")
        .http_only(true)
        .same_site(same_site)
        .max_age(time::Duration::seconds(i64::from(max_age)))
        .secure(over_tls(headers))
        .build();
    HeaderValue::from_str(&cookie.to_string())
        .unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

/// The console's own address as the browser sees it (for the sign-in redirect URI).
fn origin(headers: &HeaderMap) -> Option<String> {
    let host = headers
        .get(axum::http::header::HOST)?
        .to_str()
        .ok()
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })?;
    let scheme = if over_tls(headers) { "https" } else { "http" };
    Some(format!("{scheme}://{host}"))
}

/// An API answer.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: StatusCode,
    /// The body as the API sent it: JSON, or empty.
    pub body: Bytes,
    /// The response's extensions (carried over so refusals are recorded for the page too).
    pub extensions: axum::http::Extensions,
}

impl Answer {
    /// Whether it succeeded.
    pub fn ok(&self) -> bool {
        self.status.is_success()
    }

    /// The body read as `T`, when it is one (an error body is not).
    pub fn parse<T: DeserializeOwned>(&self) -> Option<T> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The API error's message and target, when it failed.
    pub fn error(&self) -> Option<(String, Option<String>)> {
        (!self.ok()).then(|| match self.parse::<ErrorBody>() {
            Some(ErrorBody { error }) => (error.message, error.target),
            None => ("the request failed".to_owned(), None),
        })
    }
}

impl Console {
    /// Calls the API as `token`, carrying the page request's extensions (peer address, request
    /// id) so records and logs name the real caller.
    pub async fn call(
        &self,
        parts: &Parts,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Answer {
        let resp = self.raw(parts, token, method, path, body).await;
        let status = resp.status();
        let (head, body) = resp.into_parts();
        let body = axum::body::to_bytes(body, 16 * 1024 * 1024)
            .await
            .unwrap_or_default();
        Answer {
            status,
            body,
            extensions: head.extensions,
        }
    }

    /// Like [`Console::call`], answering the API's response as is (for streamed downloads).
    pub async fn raw(
        &self,
        parts: &Parts,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Response {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header(AUTHORIZATION, format!("Bearer {t}"));
        }
        let body = match body {
            Some(b) => {
                req = req.header(CONTENT_TYPE, "application/json");
                Body::from(b.to_string())
            }
            None => Body::empty(),
        };
        let Ok(mut req) = req.body(body) else {
            return StatusCode::BAD_REQUEST.into_response();
        };
        *req.extensions_mut() = parts.extensions.clone();
        match self.api.clone().oneshot(req).await {
            Ok(resp) => resp,
            Err(never) => match never {},
        }
    }

    /// The signed-in user, if the session cookie still names a valid token.
    pub async fn session(&self, parts: &Parts) -> Option<Session> {
        let value = cookie(&parts.headers, SESSION_COOKIE)?;
        let (id, secret) = value.split_once(':')?;
        let me = self
            .call(parts, Some(secret), Method::GET, "/api/v1/me", None)
            .await;
        let me = me.ok().then(|| me.parse::<Me>()).flatten()?;
        Some(Session {
            token_id: id.to_owned(),
            secret: secret.to_owned(),
            principal: me.principal.to_string(),
            server_time: me.server_time.to_string(),
        })
    }
}

/// Security headers every console answer carries.
pub fn secure_headers(resp: &mut Response) {
    let h = resp.headers_mut();
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; \
             object-src 'none'",
        ),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("cache-control", HeaderValue::from_static("no-store"));
}

/// Clears both cookies.
pub fn clear_cookies(headers: &HeaderMap, resp: &mut Response) {
    for name in [SESSION_COOKIE, PRESESSION_COOKIE] {
        resp.headers_mut()
            .append(SET_COOKIE, set_cookie(headers, name, "", 0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_tokens_depend_on_the_secret_and_compare_exactly() {
        assert_ne!(csrf_of("a"), csrf_of("b"));
        assert_eq!(csrf_of("a").len(), 32);
        assert!(same(&csrf_of("a"), &csrf_of("a")));
        assert!(!same(&csrf_of("a"), &csrf_of("b")));
        assert!(!same("abc", "ab"));
    }

    #[test]
    fn cookies_are_read_and_flagged() {
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::header::COOKIE,
            HeaderValue::from_static("x=1; ajar_session=id:s3cret"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("id:s3cret"));
        assert_eq!(cookie(&h, "y"), None);
        // Of two cookies with one name, the first sent wins (the console's own, more specific).
        h.append(
            axum::http::header::COOKIE,
            HeaderValue::from_static("ajar_session=planted"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("id:s3cret"));
        let mut twice = HeaderMap::new();
        twice.insert(
            axum::http::header::COOKIE,
            HeaderValue::from_static("ajar_session=first; ajar_session=second"),
        );
        assert_eq!(cookie(&twice, SESSION_COOKIE).as_deref(), Some("first"));
        let c = set_cookie(&h, SESSION_COOKIE, "v", 60);
        let c = c.to_str().unwrap();
        assert!(c.starts_with("ajar_session=v;"), "{c}");
        for flag in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=60"] {
            assert!(c.contains(flag), "{flag} in {c}");
        }
        assert!(!c.contains("Secure"), "{c}");
        let flow = cookie_with(&h, SIGNIN_FLOW_COOKIE, "", 0, SameSite::Lax);
        let flow = flow.to_str().unwrap();
        assert!(
            flow.starts_with("ajar_oidc_flow=;") && flow.contains("SameSite=Lax"),
            "{flow}"
        );
        assert!(flow.contains("Max-Age=0"), "{flow}");
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        assert!(
            set_cookie(&h, SESSION_COOKIE, "v", 60)
                .to_str()
                .unwrap()
                .contains("; Secure")
        );
    }
}
