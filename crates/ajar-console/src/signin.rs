//! Signing in and out: with an API token, or through a trusted OpenID Connect provider
//! (authorization code with PKCE S256, `state` bound to a cookie, `nonce` checked in the ID
//! token). Either way the API makes a session (`POST /api/v1/sessions`) whose token the
//! session cookie holds.

use crate::html::{self, page};
use crate::pages::{form, one, posted, query, random_hex, redirect};
use crate::{
    Console, PRESESSION_COOKIE, SESSION_COOKIE, SESSION_MAX_AGE_SECS, SIGNIN_FLOW_COOKIE,
    clear_cookies, cookie, cookie_with, csrf_of, same, set_cookie,
};
use ajar_api::wire::Token;
use ajar_oidc::flows::{self, AuthorizationRequest, Pkce};
use axum::extract::{Request, State};
use axum::http::header::SET_COOKIE;
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::Response;
use axum_extra::extract::cookie::SameSite;
use maud::html;
use serde_json::Value;

/// How long an identity-provider sign-in may take, in seconds.
const FLOW_MAX_AGE_SECS: u32 = 600;
/// The path the provider sends the browser back to.
const CALLBACK_PATH: &str = "/signin/oidc/callback";

/// The sign-in page: a button per identity provider, and the API token form.
fn form_page(c: &Console, status: StatusCode, error: Option<&str>, presession: &str) -> Response {
    let providers = c.oidc.list();
    let body = html! {
        @if let Some(e) = error { (html::message("error", e)) }
        @for (i, provider) in providers.iter().enumerate() {
            p {
                a class="button" id={ "signin-oidc-" (i) } href={ "/signin/oidc?provider=" (i) } {
                    "Sign in with " (provider.config().display_name())
                }
            }
        }
        p {
            @if providers.is_empty() { "Sign in" } @else { "Or sign in" }
            " with an API token (ask your administrator, or use " code { "ajar token create" } ")."
        }
        form method="post" action="/signin" class="card" {
            input type="hidden" name="csrf" value=(csrf_of(presession));
            label for="token" { "API token" }
            input id="token" name="token" type="password" autocomplete="current-password" required autofocus;
            button type="submit" { "Sign in" }
        }
    };
    page(status, "Sign in", None, "", body)
}

/// The sign-in page with `error` (if any) and a fresh form cookie.
fn again(c: &Console, parts: &Parts, status: StatusCode, error: Option<&str>) -> Response {
    let Some(fresh) = random_hex(16) else {
        return crate::html::unavailable();
    };
    let mut resp = form_page(c, status, error, &fresh);
    resp.headers_mut().append(
        SET_COOKIE,
        set_cookie(&parts.headers, PRESESSION_COOKIE, &fresh, 3600),
    );
    resp
}

/// `GET /signin`.
pub async fn signin_page(State(c): State<Console>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    again(&c, &parts, StatusCode::OK, None)
}

/// How the browser moves on to `/machines` once signed in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Onward {
    /// A 303 redirect (sign-in began on this site).
    Redirect,
    /// A page with a `Refresh` header: sign-in began on the provider's site, and a redirect
    /// would keep the navigation cross-site, so the `SameSite=Strict` cookie would not travel.
    Refresh,
}

/// Makes a session for whoever `bearer` authenticates and answers with its cookie.
async fn start_session(
    c: &Console,
    parts: &Parts,
    bearer: &str,
    onward: Onward,
) -> Result<Response, (StatusCode, &'static str)> {
    let created = c
        .call(parts, Some(bearer), Method::POST, "/api/v1/sessions", None)
        .await;
    if created.status == StatusCode::UNAUTHORIZED {
        return Err((
            StatusCode::UNAUTHORIZED,
            "That sign-in is not valid, has expired or has been revoked.",
        ));
    }
    let Some(Token {
        id,
        token: Some(secret),
        ..
    }) = created.parse::<Token>()
    else {
        return Err((
            StatusCode::BAD_GATEWAY,
            "Could not start a session; try again.",
        ));
    };
    let mut resp = match onward {
        Onward::Redirect => redirect("/machines"),
        Onward::Refresh => {
            let mut resp = html::page(
                StatusCode::OK,
                "Signed in",
                None,
                "",
                html! { p { "Signed in. " a href="/machines" { "Continue to the console" } "." } },
            );
            resp.headers_mut()
                .insert("refresh", HeaderValue::from_static("0; url=/machines"));
            resp
        }
    };
    let h = resp.headers_mut();
    h.append(
        SET_COOKIE,
        set_cookie(
            &parts.headers,
            SESSION_COOKIE,
            &format!("{id}:{secret}"),
            SESSION_MAX_AGE_SECS,
        ),
    );
    h.append(
        SET_COOKIE,
        set_cookie(&parts.headers, PRESESSION_COOKIE, "", 0),
    );
    h.append(
        SET_COOKIE,
        cookie_with(&parts.headers, SIGNIN_FLOW_COOKIE, "", 0, SameSite::Lax),
    );
    Ok(resp)
}

/// `POST /signin`: an API token from the form.
pub async fn with_token(State(c): State<Console>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 64 * 1024)
        .await
        .unwrap_or_default();
    let f = form(&body);
    let presession = cookie(&parts.headers, PRESESSION_COOKIE).unwrap_or_default();
    if presession.is_empty() || !same(&one(&f, "csrf").unwrap_or_default(), &csrf_of(&presession)) {
        return again(
            &c,
            &parts,
            StatusCode::FORBIDDEN,
            Some("The sign-in form expired; try again."),
        );
    }
    let Some(token) = one(&f, "token") else {
        return again(&c, &parts, StatusCode::BAD_REQUEST, Some("Enter a token."));
    };
    match start_session(&c, &parts, &token, Onward::Redirect).await {
        Ok(resp) => resp,
        Err((status, message)) => again(&c, &parts, status, Some(message)),
    }
}

/// `GET /signin/oidc?provider=N`: sends the browser to the provider with a fresh state,
/// nonce and PKCE challenge, remembered in a short-lived cookie.
pub async fn oidc_start(State(c): State<Console>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    let q = query(&parts);
    let chosen = one(&q, "provider")
        .and_then(|i| i.parse::<usize>().ok())
        .and_then(|i| c.oidc.list().get(i).map(|p| (i, p.clone())));
    let Some((index, provider)) = chosen else {
        return again(
            &c,
            &parts,
            StatusCode::BAD_REQUEST,
            Some("No such identity provider."),
        );
    };
    let unavailable = |m: &str| {
        tracing::warn!(issuer = %provider.config().issuer, error = %m, "cannot start sign-in");
        again(
            &c,
            &parts,
            StatusCode::SERVICE_UNAVAILABLE,
            Some("The identity provider cannot be reached; try again later or use an API token."),
        )
    };
    let discovery = match provider.discovery().await {
        Ok(d) => d,
        Err(e) => return unavailable(&e.to_string()),
    };
    let Some(origin) = crate::origin(&parts.headers) else {
        return again(
            &c,
            &parts,
            StatusCode::BAD_REQUEST,
            Some("Missing Host header."),
        );
    };
    let (Ok(state), Ok(nonce), Ok(pkce)) = (
        flows::random_string(24),
        flows::random_string(24),
        Pkce::new(),
    ) else {
        return unavailable("no randomness");
    };
    let redirect_uri = format!("{origin}{CALLBACK_PATH}");
    let url = match flows::authorization_url(
        &discovery,
        &AuthorizationRequest {
            client_id: &provider.config().audience,
            redirect_uri: &redirect_uri,
            scope: flows::DEFAULT_SCOPE,
            state: &state,
            nonce: &nonce,
            code_challenge: &pkce.challenge,
        },
    ) {
        Ok(u) => u,
        Err(e) => return unavailable(&e.to_string()),
    };
    let mut resp = redirect(&url);
    resp.headers_mut().append(
        SET_COOKIE,
        cookie_with(
            &parts.headers,
            SIGNIN_FLOW_COOKIE,
            &format!("{index}.{state}.{nonce}.{}", pkce.verifier),
            FLOW_MAX_AGE_SECS,
            SameSite::Lax,
        ),
    );
    resp
}

/// `GET /signin/oidc/callback?code&state`: checks the state against the cookie, exchanges the
/// code (with the PKCE verifier), checks the ID token's nonce, and makes a session with it
/// (the API verifies the token itself).
pub async fn oidc_callback(State(c): State<Console>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    let q = query(&parts);
    let fail = |status: StatusCode, m: &str| {
        let mut resp = again(&c, &parts, status, Some(m));
        resp.headers_mut().append(
            SET_COOKIE,
            cookie_with(&parts.headers, SIGNIN_FLOW_COOKIE, "", 0, SameSite::Lax),
        );
        resp
    };
    let flow = cookie(&parts.headers, SIGNIN_FLOW_COOKIE).unwrap_or_default();
    let mut pieces = flow.splitn(4, '.');
    let (Some(index), Some(state), Some(nonce), Some(verifier)) =
        (pieces.next(), pieces.next(), pieces.next(), pieces.next())
    else {
        return fail(
            StatusCode::BAD_REQUEST,
            "The sign-in took too long or was started elsewhere; try again.",
        );
    };
    if !same(&one(&q, "state").unwrap_or_default(), state) {
        return fail(
            StatusCode::BAD_REQUEST,
            "The sign-in answer does not match the sign-in this browser started; try again.",
        );
    }
    if let Some(error) = one(&q, "error") {
        let detail = one(&q, "error_description").unwrap_or(error);
        return fail(
            StatusCode::UNAUTHORIZED,
            &format!("The identity provider refused the sign-in: {detail}"),
        );
    }
    let (Some(code), Some(provider)) = (
        one(&q, "code"),
        index
            .parse::<usize>()
            .ok()
            .and_then(|i| c.oidc.list().get(i).cloned()),
    ) else {
        return fail(StatusCode::BAD_REQUEST, "The sign-in answer has no code.");
    };
    let (Ok(discovery), Some(origin)) = (provider.discovery().await, crate::origin(&parts.headers))
    else {
        return fail(
            StatusCode::SERVICE_UNAVAILABLE,
            "The identity provider cannot be reached; try again later.",
        );
    };
    let config = provider.config();
    let tokens = match flows::exchange_code(
        provider.http(),
        &discovery,
        &config.audience,
        config.client_secret.as_deref(),
        &code,
        &format!("{origin}{CALLBACK_PATH}"),
        verifier,
    )
    .await
    {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(issuer = %config.issuer, error = %e, "code exchange failed");
            return fail(
                StatusCode::BAD_GATEWAY,
                "The identity provider did not complete the sign-in; try again.",
            );
        }
    };
    let Some(id_token) = tokens.id_token else {
        return fail(
            StatusCode::BAD_GATEWAY,
            "The identity provider sent no ID token.",
        );
    };
    // Read unverified here; the API verifies this same token when making the session.
    let token_nonce = flows::unverified_claim(&id_token, "nonce");
    if !token_nonce
        .as_ref()
        .and_then(Value::as_str)
        .is_some_and(|n| same(n, nonce))
    {
        return fail(
            StatusCode::UNAUTHORIZED,
            "The ID token does not answer this sign-in (nonce mismatch).",
        );
    }
    match start_session(&c, &parts, &id_token, Onward::Refresh).await {
        Ok(resp) => resp,
        Err((status, message)) => fail(status, message),
    }
}

/// `POST /signout`: deletes the session's token and clears the cookies.
pub async fn signout(State(c): State<Console>, req: Request) -> Response {
    let (parts, session, _) = match posted(&c, req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let path = format!("/api/v1/tokens/{}", session.token_id);
    c.call(&parts, Some(&session.secret), Method::DELETE, &path, None)
        .await;
    let mut resp = redirect("/signin");
    clear_cookies(&parts.headers, &mut resp);
    resp
}
