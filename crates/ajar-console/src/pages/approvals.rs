//! The approvals inbox, decisions, and request history.

use super::*;
use crate::html::{self, enc, error_summary, escape, page, table, text, time};
use crate::{Console, Session};
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
    let mut body = error_summary(&error, &[]);
    if let Some((m, _)) = list.error() {
        body.push_str(&html::message("error", &m));
    }
    let rows: Vec<Vec<String>> = list.body["value"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let p = &r["properties"];
            let target = if p["requestKind"] == "network" { &p["networkAccessPolicyId"] } else { &p["applicationResourceId"] };
            let id = r["id"].as_str().unwrap_or("");
            vec![
                text(&p["requestor"]),
                text(&p["requestKind"]),
                text(target),
                text(&p["jitSchedulingPolicy"]["duration"]),
                text(&p["justification"]),
                format!(
                    "<form method=\"post\" action=\"/inbox/decide\" class=\"decide\">{}\
                     <input type=\"hidden\" name=\"id\" value=\"{}\">\
                     <label for=\"r-{n}\">Reason</label><input id=\"r-{n}\" name=\"reason\" required maxlength=\"1000\">\
                     <button type=\"submit\" name=\"verb\" value=\"approve\">Approve</button>\
                     <button type=\"submit\" name=\"verb\" value=\"deny\" class=\"secondary\">Deny</button></form>",
                    html::csrf(s),
                    escape(id),
                    n = escape(id.rsplit('/').next().unwrap_or(""))
                ),
            ]
        })
        .collect();
    body.push_str(&table(
        "Waiting for your decision",
        &[
            "Requester",
            "Kind",
            "For",
            "Duration",
            "Justification",
            "Decision",
        ],
        &rows,
    ));
    with_answer(page(status, "Approvals", Some(s), "/inbox", &body), &list)
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
    let field = |k: &str| escape(&one(&q, k).unwrap_or_default());
    let mut body = format!(
        "<form method=\"get\" action=\"/history\" class=\"inline\">\
         <label for=\"h-requester\">Requester</label><input id=\"h-requester\" name=\"requester\" value=\"{}\">\
         <label for=\"h-kind\">Kind</label><select id=\"h-kind\" name=\"kind\"><option value=\"\">any</option><option{}>role</option><option{}>network</option></select>\
         <label for=\"h-state\">State</label><input id=\"h-state\" name=\"state\" value=\"{}\" placeholder=\"Active\">\
         <button type=\"submit\">Filter</button></form>",
        field("requester"),
        if one(&q, "kind").as_deref() == Some("role") {
            " selected"
        } else {
            ""
        },
        if one(&q, "kind").as_deref() == Some("network") {
            " selected"
        } else {
            ""
        },
        field("state"),
    );
    if let Some((m, _)) = list.error() {
        body.push_str(&html::message("error", &m));
    }
    let rows: Vec<Vec<String>> = list.body["value"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            vec![
                time(&e["createdAt"]),
                text(&e["requestor"]),
                text(&e["kind"]),
                text(&e["target"]),
                format!("<span class=\"state\">{}</span>", text(&e["state"])),
                time(&e["activeUntil"]),
            ]
        })
        .collect();
    body.push_str(&table(
        "Requests",
        &["Asked", "Requester", "Kind", "For", "State", "Until"],
        &rows,
    ));
    with_answer(
        page(list.status, "History", Some(&s), "/history", &body),
        &list,
    )
}
