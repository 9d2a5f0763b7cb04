//! Requesting network access: the form, starting it, and its status.

use super::*;
use crate::html::{self, enc, error_summary, field_error, page, table};
use crate::{Answer, Console, Session, secure_headers};
use ajar_api::wire::{AccessRequest, Machine, Policy, PolicyPort, PortState};
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
    let mut fields = Vec::new();
    let mut max_minutes = 24 * 60;
    let chosen = all(q, "port");
    for m in &machines {
        let answer = c
            .call(
                parts,
                Some(&s.secret),
                Method::GET,
                &format!("/api/v1{m}"),
                None,
            )
            .await;
        let machine = answer.parse::<Machine>();
        let Some((machine, policy_id)) =
            machine.and_then(|x| x.properties.jit_policy_id.clone().map(|p| (x, p)))
        else {
            let msg = answer
                .error()
                .map(|e| e.0)
                .unwrap_or_else(|| format!("{m} has no JIT policy; enable JIT first."));
            return with_answer(
                page(
                    StatusCode::BAD_REQUEST,
                    "Request access",
                    Some(s),
                    "/machines",
                    html::message("error", &msg),
                ),
                &answer,
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
            .await
            .parse::<Policy>();
        let rules: Vec<PolicyPort> = policy
            .into_iter()
            .flat_map(|p| p.properties.virtual_machines)
            .filter(|v| v.id.to_string() == *m)
            .flat_map(|v| v.ports)
            .collect();
        for r in &rules {
            max_minutes = max_minutes.min(r.max_request_access_duration.get().as_mins());
        }
        fields.push(html! {
            fieldset {
                legend { (machine.name) " " small { "(" (policy_id) ")" } }
                input type="hidden" name="machine" value=(m);
                @for (i, r) in rules.iter().enumerate() {
                    @let value = format!("{m}|{}", r.number);
                    @let checked = chosen.contains(&value) || (chosen.is_empty() && i == 0);
                    label class="check" {
                        input type="checkbox" name="port" value=(value) checked[checked];
                        " " (r.number) " " (r.protocol) " (up to " (html::duration(r.max_request_access_duration)) ")"
                    }
                }
            }
        });
    }
    let minutes = one(q, "minutes")
        .and_then(|m| m.parse::<i64>().ok())
        .unwrap_or(60.min(max_minutes))
        .clamp(5, max_minutes.max(5));
    let source = one(q, "source").unwrap_or_else(|| my_ip(parts));
    let reason = one(q, "reason").unwrap_or_default();
    let body = html! {
        (error_summary(&error, &["ports", "source", "minutes", "justification"]))
        form method="post" action="/access" class="card" {
            (html::csrf(s))
            @for f in &fields { (f) }
            (field_error(&error, "ports"))
            label for="source" { "Source address" }
            input id="source" name="source" value=(source) required aria-describedby="source-help";
            small id="source-help" { "Your address as ajar sees it; change it for a proxy or VPN range (CIDR)." }
            (field_error(&error, "source"))
            label for="minutes" {
                "Duration: " output id="minutes-out" for="minutes" { (html::human_duration(minutes * 60)) }
            }
            input id="minutes" name="minutes" type="range" min="5" max=(max_minutes) step="5" value=(minutes);
            (field_error(&error, "minutes"))
            label for="reason" { "Justification" }
            textarea id="reason" name="reason" rows="2" maxlength="2000" { (reason) }
            (field_error(&error, "justification"))
            button type="submit" { "Request access" }
        }
    };
    page(status, "Request access", Some(s), "/machines", body)
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
        let p = machine
            .parse::<Machine>()
            .and_then(|x| x.properties.jit_policy_id)
            .unwrap_or_default();
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
                object([
                    ("number", Some(json!(n))),
                    ("duration", Some(json!(format!("PT{minutes}M")))),
                    (
                        "allowedSourceAddressPrefix",
                        source.clone().map(Value::from),
                    ),
                ])
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
    let body = object([
        ("virtualMachines", Some(Value::from(vms))),
        ("justification", one(&f, "reason").map(Value::from)),
    ]);
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
    let id = a.parse::<AccessRequest>().map(|r| r.id).unwrap_or_default();
    redirect(&format!(
        "/access/status?policy={}&id={}",
        enc(&policy),
        enc(&id)
    ))
}

/// The access request the status page is about (`?policy=…&id=…`), as the API answers it.
async fn asked_request(c: &Console, parts: &Parts, s: &Session) -> (String, String, Answer) {
    let q = query(parts);
    let (policy, id) = (
        one(&q, "policy").unwrap_or_default(),
        one(&q, "id").unwrap_or_default(),
    );
    let r = c
        .call(
            parts,
            Some(&s.secret),
            Method::GET,
            &format!("/api/v1{policy}/requests/{id}"),
            None,
        )
        .await;
    (policy, id, r)
}

pub(super) async fn access_status(State(c): State<Console>, req: Request) -> Response {
    let (parts, s, _) = match signed_in(&c, req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let (policy, id, r) = asked_request(&c, &parts, &s).await;
    let notice = if r.status == StatusCode::NOT_FOUND {
        html::message(
            "notice",
            "Waiting for approval: the ports open once an approver agrees. This page updates by itself.",
        )
    } else if let Some((m, _)) = r.error() {
        html::message("error", &m)
    } else {
        html! {}
    };
    let mut rows = Vec::new();
    for m in r
        .parse::<AccessRequest>()
        .into_iter()
        .flat_map(|r| r.virtual_machines)
    {
        let address = c
            .call(
                &parts,
                Some(&s.secret),
                Method::GET,
                &format!("/api/v1{}", m.id),
                None,
            )
            .await
            .parse::<Machine>()
            .and_then(|x| x.properties.addresses.first().map(ToString::to_string))
            .unwrap_or_default();
        for p in &m.ports {
            let (state, words) = match (p.status == PortState::Initiated, p.open_since.is_some()) {
                (true, true) => ("open", "open".to_owned()),
                (true, false) => ("opening", "opening".to_owned()),
                // Closed: in the words history shows for the request.
                _ => ("closed", format!("closed: {}", p.state_words())),
            };
            let connect = match &p.connection_details {
                Some(to) => format!("{}:{}", to.address, to.port),
                None if !address.is_empty() => format!("{address}:{}", p.number),
                None => "-".into(),
            };
            rows.push(vec![
                html! { (m.id.rsplit('/').next().unwrap_or("")) },
                html! { (p.number) },
                html! { span class={ "state " (state) } data-state { (words) } },
                html! { (connect) },
                html! { span class="countdown" data-end=(p.end_time_utc) { (p.end_time_utc) } },
            ]);
        }
    }
    let body = html! {
        (notice)
        div id="status" data-poll={ "/access/status.json?policy=" (enc(&policy)) "&id=" (enc(&id)) }
            data-server-now=(s.server_time) {
            (table("Ports", &["Machine", "Port", "State", "Connect to", "Closes in"], &rows))
        }
    };
    with_answer(
        page(
            StatusCode::OK,
            "Access request",
            Some(&s),
            "/machines",
            body,
        ),
        &r,
    )
}

pub(super) async fn access_status_json(State(c): State<Console>, req: Request) -> Response {
    let (parts, s, _) = match signed_in(&c, req).await {
        Ok(x) => x,
        Err(_) => return StatusCode::UNAUTHORIZED.into_response(),
    };
    let (_, _, r) = asked_request(&c, &parts, &s).await;
    // The page's script reads the API's answer as it is, so it is passed on unchanged.
    let mut resp = (
        r.status,
        [(CONTENT_TYPE, "application/json")],
        r.body.clone(),
    )
        .into_response();
    secure_headers(&mut resp);
    with_answer(resp, &r)
}
