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
    let paging = Paging::of(&query(parts));
    let list = c
        .call(
            parts,
            Some(&s.secret),
            Method::GET,
            &format!("/api/v1/inbox?{}", paging.api(100)),
            None,
        )
        .await;
    let page_of = list.parse::<List<JitRequest>>();
    let rows: Vec<Vec<Markup>> = page_of
        .as_ref()
        .map(|l| l.value.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|r| {
            let p = &r.properties;
            let target = if p.request_kind == RequestKind::Network {
                p.network_access_policy_id.as_ref()
            } else {
                p.application_resource_id.as_ref()
            };
            let machines: Vec<String> = p
                .network_access
                .iter()
                .flat_map(|n| &n.virtual_machines)
                .map(|m| m.id.to_string())
                .collect();
            let n = r.id.rsplit('/').next().unwrap_or("");
            vec![
                html! { (p.requestor) },
                html! { (p.request_kind) },
                match target {
                    Some(t) => request_for(p.request_kind, t, &machines),
                    None => html! { "-" },
                },
                html! { (html::duration(p.jit_scheduling_policy.duration)) },
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
        (paging.links("/inbox", page_of.as_ref().and_then(|l| l.next_link.as_deref())))
    };
    with_answer(page(status, "Approvals", Some(s), "/inbox", body), &list)
}

/// What a request is for: a role request's application (a link to its page); a network
/// request's machines by name, with the policy they were asked under beneath them.
fn request_for(kind: RequestKind, target: &str, machines: &[String]) -> Markup {
    let name = |id: &str| id.rsplit('/').next().unwrap_or(id).to_owned();
    if kind != RequestKind::Network {
        return html! { a href={ "/apps/view?id=" (enc(target)) } title=(target) { (name(target)) } };
    }
    html! {
        @if machines.is_empty() { "-" }
        @for (i, m) in machines.iter().enumerate() {
            @if i > 0 { ", " }
            span class="id" title=(m) { (name(m)) }
        }
        br;
        // The policy's machines are on the Machines page of its resource group.
        small {
            "policy "
            a href={ "/machines?tab=configured&scope=" (enc(target.split("/jitNetworkAccessPolicies/").next().unwrap_or(target))) }
                title=(target) { (name(target)) }
        }
    }
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
    let paging = Paging::of(&q);
    let list = c
        .call(
            &parts,
            Some(&s.secret),
            Method::GET,
            &format!("/api/v1/history?{}&{qs}", paging.api(100)),
            None,
        )
        .await;
    let field = |k: &str| one(&q, k).unwrap_or_default();
    let kind = one(&q, "kind");
    let page_of = list.parse::<List<HistoryEntry>>();
    let rows: Vec<Vec<Markup>> = page_of
        .as_ref()
        .map(|l| l.value.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|e| {
            vec![
                time(Some(&e.created_at)),
                html! { (e.requestor) },
                html! { (e.kind) },
                request_for(e.kind, &e.target, &e.machines),
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
        (paging.links(
            &if qs.is_empty() { "/history".to_owned() } else { format!("/history?{qs}") },
            page_of.as_ref().and_then(|l| l.next_link.as_deref()),
        ))
    };
    with_answer(
        page(list.status, "History", Some(&s), "/history", body),
        &list,
    )
}
