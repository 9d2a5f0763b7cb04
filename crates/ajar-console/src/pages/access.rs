//! Requesting network access: the form, starting it, and its status.

use super::*;
use crate::html::{self, enc, error_summary, escape, field_error, page, table, text};
use crate::{Console, Session, secure_headers};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::net::SocketAddr;

/// The client's address as the server sees it ("my IP").
pub(super) fn my_ip(parts: &Parts) -> String {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ci| ci.0.ip().to_string())
        .unwrap_or_default()
}

pub(super) fn minutes_of(iso: &str) -> Option<i64> {
    let rest = iso.strip_prefix("PT")?;
    let mut total = 0i64;
    let mut num = String::new();
    for ch in rest.chars() {
        match ch {
            '0'..='9' => num.push(ch),
            'H' => total += num.parse::<i64>().ok()? * 60,
            'M' => total += num.parse::<i64>().ok()?,
            'S' => {}
            _ => return None,
        }
        if !ch.is_ascii_digit() {
            num.clear();
        }
    }
    Some(total)
}

pub(super) async fn access_form(State(c): State<Console>, req: Request) -> Response {
    let (parts, s, _) = match signed_in(&c, req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let q = query(&parts);
    render_access_form(&c, &parts, &s, &q, StatusCode::OK, None).await
}

pub(super) async fn render_access_form(
    c: &Console,
    parts: &Parts,
    s: &Session,
    q: &Form,
    status: StatusCode,
    error: Option<(String, Option<String>)>,
) -> Response {
    let machines = all(q, "machine");
    if machines.is_empty() {
        return redirect("/machines");
    }
    let mut fields = String::new();
    let mut max_minutes = 24 * 60;
    for m in &machines {
        let machine = c
            .call(
                parts,
                Some(&s.secret),
                Method::GET,
                &format!("/api/v1{m}"),
                None,
            )
            .await;
        let Some(policy_id) = machine.body["properties"]["jitPolicyId"].as_str() else {
            let msg = machine
                .error()
                .map(|e| e.0)
                .unwrap_or_else(|| format!("{m} has no JIT policy; enable JIT first."));
            return with_answer(
                page(
                    StatusCode::BAD_REQUEST,
                    "Request access",
                    Some(s),
                    "/machines",
                    &html::message("error", &msg),
                ),
                &machine,
            );
        };
        let policy = c
            .call(
                parts,
                Some(&s.secret),
                Method::GET,
                &format!("/api/v1{policy_id}"),
                None,
            )
            .await;
        let rules: Vec<Value> = policy.body["properties"]["virtualMachines"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|v| v["id"] == m.as_str())
            .flat_map(|v| v["ports"].as_array().cloned().unwrap_or_default())
            .collect();
        let chosen = all(q, "port");
        let boxes: String = rules
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let value = format!("{}|{}", m, r["number"]);
                let checked = if chosen.contains(&value) || (chosen.is_empty() && i == 0) { " checked" } else { "" };
                if let Some(mm) = r["maxRequestAccessDuration"].as_str().and_then(minutes_of) {
                    max_minutes = max_minutes.min(mm);
                }
                format!(
                    "<label class=\"check\"><input type=\"checkbox\" name=\"port\" value=\"{}\"{checked}> {} {} (up to {})</label>",
                    escape(&value),
                    text(&r["number"]),
                    text(&r["protocol"]),
                    text(&r["maxRequestAccessDuration"])
                )
            })
            .collect();
        fields.push_str(&format!(
            "<fieldset><legend>{} <small>({})</small></legend><input type=\"hidden\" name=\"machine\" value=\"{}\">{boxes}</fieldset>",
            text(&machine.body["name"]),
            escape(policy_id),
            escape(m)
        ));
    }
    let minutes = one(q, "minutes")
        .and_then(|m| m.parse::<i64>().ok())
        .unwrap_or(60.min(max_minutes))
        .clamp(5, max_minutes.max(5));
    let source = one(q, "source").unwrap_or_else(|| my_ip(parts));
    let reason = one(q, "reason").unwrap_or_default();
    let body = format!(
        "{}<form method=\"post\" action=\"/access\" class=\"card\">{}{fields}{}\
         <label for=\"source\">Source address</label>\
         <input id=\"source\" name=\"source\" value=\"{}\" required aria-describedby=\"source-help\">\
         <small id=\"source-help\">Your address as ajar sees it; change it for a proxy or VPN range (CIDR).</small>{}\
         <label for=\"minutes\">Duration: <output id=\"minutes-out\" for=\"minutes\">{minutes} min</output></label>\
         <input id=\"minutes\" name=\"minutes\" type=\"range\" min=\"5\" max=\"{max_minutes}\" step=\"5\" value=\"{minutes}\">{}\
         <label for=\"reason\">Justification</label>\
         <textarea id=\"reason\" name=\"reason\" rows=\"2\" maxlength=\"2000\">{}</textarea>{}\
         <button type=\"submit\">Request access</button></form>",
        error_summary(&error, &["ports", "source", "minutes", "justification"]),
        html::csrf(s),
        field_error(&error, "ports"),
        escape(&source),
        field_error(&error, "source"),
        field_error(&error, "minutes"),
        escape(&reason),
        field_error(&error, "justification"),
    );
    page(status, "Request access", Some(s), "/machines", &body)
}

pub(super) async fn access_start(State(c): State<Console>, req: Request) -> Response {
    let (parts, s, f) = match posted(&c, req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let machines = all(&f, "machine");
    let minutes = one(&f, "minutes")
        .and_then(|m| m.parse::<i64>().ok())
        .unwrap_or(60);
    let source = one(&f, "source");
    let mut policy: Option<String> = None;
    let mut vms = Vec::new();
    for m in &machines {
        let machine = c
            .call(
                &parts,
                Some(&s.secret),
                Method::GET,
                &format!("/api/v1{m}"),
                None,
            )
            .await;
        let p = machine.body["properties"]["jitPolicyId"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        if policy.as_ref().is_some_and(|q| *q != p) {
            return render_access_form(
                &c,
                &parts,
                &s,
                &f,
                StatusCode::BAD_REQUEST,
                Some((
                    "The selected machines are under different policies; request them separately."
                        .into(),
                    None,
                )),
            )
            .await;
        }
        policy = Some(p);
        let ports: Vec<Value> = all(&f, "port")
            .iter()
            .filter_map(|v| v.rsplit_once('|'))
            .filter(|(mid, _)| mid == m)
            .filter_map(|(_, n)| n.parse::<u16>().ok())
            .map(|n| {
                let mut port = json!({"number": n, "duration": format!("PT{minutes}M")});
                if let Some(src) = &source {
                    port["allowedSourceAddressPrefix"] = json!(src);
                }
                port
            })
            .collect();
        if !ports.is_empty() {
            vms.push(json!({"id": m, "ports": ports}));
        }
    }
    if vms.is_empty() {
        return render_access_form(
            &c,
            &parts,
            &s,
            &f,
            StatusCode::BAD_REQUEST,
            Some(("Choose at least one port.".into(), Some("ports".into()))),
        )
        .await;
    }
    let policy = policy.unwrap_or_default();
    let mut body = json!({"virtualMachines": vms});
    if let Some(r) = one(&f, "reason") {
        body["justification"] = json!(r);
    }
    let a = c
        .call(
            &parts,
            Some(&s.secret),
            Method::POST,
            &format!("/api/v1{policy}/initiate"),
            Some(&body),
        )
        .await;
    if a.error().is_some() {
        let resp = render_access_form(&c, &parts, &s, &f, a.status, a.error()).await;
        return with_answer(resp, &a);
    }
    let id = a.body["id"].as_str().unwrap_or_default();
    redirect(&format!(
        "/access/status?policy={}&id={}",
        enc(&policy),
        enc(id)
    ))
}

pub(super) async fn access_status(State(c): State<Console>, req: Request) -> Response {
    let (parts, s, _) = match signed_in(&c, req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let q = query(&parts);
    let (policy, id) = (
        one(&q, "policy").unwrap_or_default(),
        one(&q, "id").unwrap_or_default(),
    );
    let r = c
        .call(
            &parts,
            Some(&s.secret),
            Method::GET,
            &format!("/api/v1{policy}/requests/{id}"),
            None,
        )
        .await;
    let mut body = String::new();
    if r.status == StatusCode::NOT_FOUND {
        body.push_str(&html::message(
            "notice",
            "Waiting for approval: the ports open once an approver agrees. This page updates by itself.",
        ));
    } else if let Some((m, _)) = r.error() {
        body.push_str(&html::message("error", &m));
    }
    let mut rows = Vec::new();
    for m in r.body["virtualMachines"].as_array().into_iter().flatten() {
        let machine_id = m["id"].as_str().unwrap_or("");
        let machine = c
            .call(
                &parts,
                Some(&s.secret),
                Method::GET,
                &format!("/api/v1{machine_id}"),
                None,
            )
            .await;
        let address = machine.body["properties"]["addresses"][0]
            .as_str()
            .unwrap_or("")
            .to_owned();
        for p in m["ports"].as_array().into_iter().flatten() {
            let open = !p["openSince"].is_null();
            let state = match (p["status"].as_str(), open) {
                (Some("Initiated"), true) => "open",
                (Some("Initiated"), false) => "opening",
                _ => "closed",
            };
            let connect = match (
                &p["connectionDetails"]["address"],
                &p["connectionDetails"]["port"],
            ) {
                (Value::String(a), port) if !port.is_null() => format!("{}:{}", escape(a), port),
                _ if !address.is_empty() => format!("{}:{}", escape(&address), p["number"]),
                _ => "-".into(),
            };
            rows.push(vec![
                text(&m["id"]).rsplit('/').next().unwrap_or("").to_owned(),
                text(&p["number"]),
                format!("<span class=\"state {state}\" data-state>{state}</span>"),
                connect,
                format!(
                    "<span class=\"countdown\" data-end=\"{}\">{}</span>",
                    text(&p["endTimeUtc"]),
                    text(&p["endTimeUtc"])
                ),
            ]);
        }
    }
    body.push_str(&format!(
        "<div id=\"status\" data-poll=\"/access/status.json?policy={}&amp;id={}\" data-server-now=\"{}\">{}</div>",
        escape(&enc(&policy)),
        escape(&enc(&id)),
        escape(&s.server_time),
        table(
            "Ports",
            &["Machine", "Port", "State", "Connect to", "Closes in"],
            &rows
        )
    ));
    with_answer(
        page(
            StatusCode::OK,
            "Access request",
            Some(&s),
            "/machines",
            &body,
        ),
        &r,
    )
}

pub(super) async fn access_status_json(State(c): State<Console>, req: Request) -> Response {
    let (parts, s, _) = match signed_in(&c, req).await {
        Ok(x) => x,
        Err(_) => return StatusCode::UNAUTHORIZED.into_response(),
    };
    let q = query(&parts);
    let (policy, id) = (
        one(&q, "policy").unwrap_or_default(),
        one(&q, "id").unwrap_or_default(),
    );
    let r = c
        .call(
            &parts,
            Some(&s.secret),
            Method::GET,
            &format!("/api/v1{policy}/requests/{id}"),
            None,
        )
        .await;
    let mut resp = (r.status, axum::Json(r.body.clone())).into_response();
    secure_headers(&mut resp);
    with_answer(resp, &r)
}
