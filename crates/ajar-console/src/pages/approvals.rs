//! The approvals inbox, decisions, and request history.

use super::*;
use crate::html::{self, enc, error_summary, or_dash, page, table, time};
use crate::{Console, Session};
use ajar_api::wire::{HistoryEntry, JitRequest, RequestKind};
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::json;

pub(super) async fn inbox(State(c): State<Console>, req: Request) -> Response {
    let (parts, s, _) = match signed_in(&c, req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    inbox_page(&c, &parts, &s, StatusCode::OK, None).await
}

pub(super) async fn inbox_page(
    c: &Console,
    parts: &Parts,
    s: &Session,
    status: StatusCode,
    error: Option<(String, Option<String>)>,
) -> Response {
    let list = c
        .call(parts, Some(&s.secret), Method::GET, "/api/v1/inbox", None)
        .await;
    let rows: Vec<Vec<Markup>> = list
        .parse::<List<JitRequest>>()
        .map(|l| l.value)
        .unwrap_or_default()
        .iter()
        .map(|r| {
            let p = &r.properties;
            let target = if p.request_kind == RequestKind::Network {
                p.network_access_policy_id.as_ref()
            } else {
                p.application_resource_id.as_ref()
            };
            let n = r.id.rsplit('/').next().unwrap_or("");
            vec![
                html! { (p.requestor) },
                html! { (p.request_kind) },
                html! { (or_dash(target)) },
                html! { (p.jit_scheduling_policy.duration) },
                html! { (or_dash(p.justification.as_ref())) },
                html! {
                    form method="post" action="/inbox/decide" class="decide" {
                        (html::csrf(s))
                        input type="hidden" name="id" value=(r.id);
                        label for={ "r-" (n) } { "Reason" }
                        input id={ "r-" (n) } name="reason" required maxlength="1000";
                        button type="submit" name="verb" value="approve" { "Approve" }
                        button type="submit" name="verb" value="deny" class="secondary" { "Deny" }
                    }
                },
            ]
        })
        .collect();
    let body = html! {
        (error_summary(&error, &[]))
        @if let Some((m, _)) = list.error() { (html::message("error", &m)) }
        (table(
            "Waiting for your decision",
            &["Requester", "Kind", "For", "Duration", "Justification", "Decision"],
            &rows,
        ))
    };
    with_answer(page(status, "Approvals", Some(s), "/inbox", body), &list)
}

pub(super) async fn decide(State(c): State<Console>, req: Request) -> Response {
    let (parts, s, f) = match posted(&c, req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let id = one(&f, "id").unwrap_or_default();
    let verb = if one(&f, "verb").as_deref() == Some("deny") {
        "deny"
    } else {
        "approve"
    };
    let Some(reason) = one(&f, "reason") else {
        return inbox_page(
            &c,
            &parts,
            &s,
            StatusCode::BAD_REQUEST,
            Some(("A reason is required.".into(), None)),
        )
        .await;
    };
    let a = c
        .call(
            &parts,
            Some(&s.secret),
            Method::POST,
            &format!("/api/v1{id}/{verb}"),
            Some(&json!({"reason": reason})),
        )
        .await;
    if a.error().is_some() {
        let resp = inbox_page(&c, &parts, &s, a.status, a.error()).await;
        return with_answer(resp, &a);
    }
    redirect("/inbox")
}

pub(super) async fn history(State(c): State<Console>, req: Request) -> Response {
    let (parts, s, _) = match signed_in(&c, req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let q = query(&parts);
    let filters: Vec<(String, String)> = ["requester", "kind", "state"]
        .iter()
        .filter_map(|k| one(&q, k).map(|v| ((*k).to_owned(), v)))
        .collect();
    let qs: String = filters
        .iter()
        .map(|(k, v)| format!("{k}={}", enc(v)))
        .collect::<Vec<_>>()
        .join("&");
    let list = c
        .call(
            &parts,
            Some(&s.secret),
            Method::GET,
            &format!("/api/v1/history?{qs}"),
            None,
        )
        .await;
    let field = |k: &str| one(&q, k).unwrap_or_default();
    let kind = one(&q, "kind");
    let rows: Vec<Vec<Markup>> = list
        .parse::<List<HistoryEntry>>()
        .map(|l| l.value)
        .unwrap_or_default()
        .iter()
        .map(|e| {
            vec![
                time(Some(&e.created_at)),
                html! { (e.requestor) },
                html! { (e.kind) },
                html! { (e.target) },
                html! { span class="state" { (e.state_words()) } },
                time(e.active_until.as_ref()),
            ]
        })
        .collect();
    let body = html! {
        form method="get" action="/history" class="inline" {
            label for="h-requester" { "Requester" }
            input id="h-requester" name="requester" value=(field("requester"));
            label for="h-kind" { "Kind" }
            select id="h-kind" name="kind" {
                option value="" { "any" }
                option selected[kind.as_deref() == Some("role")] { "role" }
                option selected[kind.as_deref() == Some("network")] { "network" }
            }
            label for="h-state" { "State" }
            input id="h-state" name="state" value=(field("state")) placeholder="Active";
            button type="submit" { "Filter" }
        }
        @if let Some((m, _)) = list.error() { (html::message("error", &m)) }
        (table(
            "Requests",
            &["Asked", "Requester", "Kind", "For", "State", "Until"],
            &rows,
        ))
    };
    with_answer(
        page(list.status, "History", Some(&s), "/history", body),
        &list,
    )
}
