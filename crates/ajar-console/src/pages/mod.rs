//! The console's pages and form handlers, one module per page, and what they share: the
//! routes, sign-in checks, form parsing and the scope picker.

use crate::html::{self, page};
use crate::signin;
use crate::{Answer, Console, Session, same, secure_headers};
use ajar_api::wire::List;
use axum::Router;
use axum::body::Bytes;
use axum::extract::Request;
use axum::http::header::{CONTENT_TYPE, LOCATION};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use serde_json::{Map, Value};

type Form = Vec<(String, String)>;

mod access;
mod activity;
mod approvals;
mod apps;
mod machines;

use access::*;
use activity::*;
use approvals::*;
use apps::*;
use machines::*;

pub fn routes() -> Router<Console> {
    Router::new()
        .route("/", get(|| async { redirect("/machines") }))
        .route("/signin", get(signin::signin_page).post(signin::with_token))
        .route("/signin/oidc", get(signin::oidc_start))
        .route("/signin/oidc/callback", get(signin::oidc_callback))
        .route("/signout", post(signin::signout))
        .route("/machines", get(machines))
        .route("/machines/enable", post(enable))
        .route("/access/new", get(access_form))
        .route("/access", post(access_start))
        .route("/access/status", get(access_status))
        .route("/access/status.json", get(access_status_json))
        .route("/apps", get(apps))
        .route("/apps/save", post(app_save))
        .route("/apps/view", get(app_view))
        .route("/apps/eligible", post(app_eligible))
        .route("/apps/actions", post(app_actions))
        .route("/apps/roles", post(app_role))
        .route("/apps/activate", post(app_activate))
        .route("/inbox", get(inbox))
        .route("/inbox/decide", post(decide))
        .route("/history", get(history))
        .route("/activity", get(activity))
        .route("/activity.csv", get(activity_csv))
        .route("/console/static/console.css", get(css))
        .route("/console/static/console.js", get(js))
}

async fn css() -> Response {
    static_file(
        "text/css; charset=utf-8",
        include_str!("../../static/console.css"),
    )
}

async fn js() -> Response {
    static_file(
        "text/javascript; charset=utf-8",
        include_str!("../../static/console.js"),
    )
}

fn static_file(kind: &'static str, body: &'static str) -> Response {
    let mut resp = ([(CONTENT_TYPE, kind)], body).into_response();
    secure_headers(&mut resp);
    resp.headers_mut()
        .insert("cache-control", HeaderValue::from_static("max-age=300"));
    resp
}

pub(crate) fn redirect(to: &str) -> Response {
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        resp.headers_mut().insert(LOCATION, v);
    }
    secure_headers(&mut resp);
    resp
}

pub(crate) fn query(parts: &Parts) -> Form {
    form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

pub(crate) fn form(body: &Bytes) -> Form {
    form_urlencoded::parse(body).into_owned().collect()
}

pub(crate) fn one(f: &Form, key: &str) -> Option<String> {
    f.iter()
        .find(|(k, v)| k == key && !v.trim().is_empty())
        .map(|(_, v)| v.trim().to_owned())
}

fn all(f: &Form, key: &str) -> Vec<String> {
    f.iter()
        .filter(|(k, v)| k == key && !v.trim().is_empty())
        .map(|(_, v)| v.trim().to_owned())
        .collect()
}

/// The page of a list a console page shows: `skip` (the API's `skipToken` of the page, from
/// the previous page's `nextLink`) and `top` (rows per page, when the address sets one).
pub(crate) struct Paging {
    skip: Option<String>,
    top: Option<u32>,
}

impl Paging {
    /// The paging a console page's query asks for.
    pub(crate) fn of(q: &Form) -> Paging {
        Paging {
            skip: one(q, "skip"),
            top: one(q, "top").and_then(|t| t.parse().ok()),
        }
    }

    /// `top=N` for the API, `default` unless the page's address set one.
    pub(crate) fn top(&self, default: u32) -> String {
        format!("top={}", self.top.unwrap_or(default))
    }

    /// The API query's paging parameters: `top` and, past the first page, `skipToken`.
    pub(crate) fn api(&self, default: u32) -> String {
        match &self.skip {
            Some(t) => format!("{}&skipToken={}", self.top(default), html::enc(t)),
            None => self.top(default),
        }
    }

    /// The console page's own address with its filters: `base` plus `top` when one was set.
    pub(crate) fn first(&self, base: &str) -> String {
        match self.top {
            Some(t) if base.contains('?') => format!("{base}&top={t}"),
            Some(t) => format!("{base}?top={t}"),
            None => base.to_owned(),
        }
    }

    /// Links to the first and the next page of a list the API answered with `next_link`.
    pub(crate) fn links(&self, base: &str, next_link: Option<&str>) -> Markup {
        html::pager(
            &self.first(base),
            self.skip.as_deref(),
            html::skip_token(next_link).as_deref(),
        )
    }
}

/// A JSON object of the fields that have a value (the others are left out, not `null`).
fn object<const N: usize>(fields: [(&str, Option<Value>); N]) -> Value {
    let fields: Map<String, Value> = fields
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v)))
        .collect();
    Value::Object(fields)
}

/// A random hex string (for names and the sign-in form's CSRF cookie), or `None` when the
/// system has no randomness to give.
pub(crate) fn random_hex(bytes: usize) -> Option<String> {
    ajar_oidc::random_bytes(bytes).ok().map(hex::encode)
}

/// The page's request parts and the signed-in user, or a redirect to sign in.
async fn signed_in(c: &Console, req: Request) -> Result<(Parts, Session, Bytes), Response> {
    let (parts, body) = req.into_parts();
    let Some(session) = c.session(&parts).await else {
        return Err(redirect("/signin"));
    };
    let body = axum::body::to_bytes(body, 1024 * 1024)
        .await
        .unwrap_or_default();
    Ok((parts, session, body))
}

/// Like [`signed_in`] for a form post: also checks the CSRF token.
pub(crate) async fn posted(c: &Console, req: Request) -> Result<(Parts, Session, Form), Response> {
    let (parts, session, body) = signed_in(c, req).await?;
    let f = form(&body);
    let given = one(&f, "csrf").unwrap_or_default();
    if !same(&given, &session.csrf()) {
        return Err(page(
            StatusCode::FORBIDDEN,
            "Form expired",
            Some(&session),
            "",
            html::message(
                "error",
                "This form is missing its security token or it expired. Go back, reload the page and try again.",
            ),
        ));
    }
    Ok((parts, session, f))
}

/// Carries an API answer's extensions (e.g. a recorded refusal) into the page's response.
fn with_answer(mut resp: Response, answer: &Answer) -> Response {
    resp.extensions_mut().extend(answer.extensions.clone());
    resp
}

// -- scopes -------------------------------------------------------------------------------------

/// The subscriptions the user can see something in.
async fn subscriptions(c: &Console, parts: &Parts, s: &Session) -> Vec<String> {
    c.call(
        parts,
        Some(&s.secret),
        Method::GET,
        "/api/v1/subscriptions",
        None,
    )
    .await
    .parse::<List<String>>()
    .map(|l| l.value)
    .unwrap_or_default()
}

/// The scope a list shows: the query's, or the first subscription the user can see.
async fn scope_of(c: &Console, parts: &Parts, s: &Session, q: &Form) -> Option<String> {
    if let Some(scope) = one(q, "scope") {
        return Some(scope);
    }
    subscriptions(c, parts, s).await.into_iter().next()
}

/// A form choosing the scope a list shows, offering the subscriptions the user can see;
/// `extra` holds hidden fields to keep.
async fn scope_picker(
    c: &Console,
    parts: &Parts,
    s: &Session,
    action: &str,
    scope: &str,
    extra: Markup,
) -> Markup {
    let subscriptions = subscriptions(c, parts, s).await;
    html! {
        form method="get" action=(action) class="inline" {
            (extra)
            label for="scope" { "Scope" }
            input id="scope" name="scope" list="scopes" value=(scope) size="40";
            datalist id="scopes" {
                @for sub in &subscriptions { option value=(sub); }
            }
            button type="submit" { "Show" }
        }
    }
}
