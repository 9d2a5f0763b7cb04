//! The Machines page (Configured / Not configured / Unsupported tabs) and Enable JIT.

use super::*;
use crate::html::{self, enc, escape, page, table, text, time};
use crate::{Console, Session};
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

pub(super) const TABS: &[(&str, &str, &str)] = &[
    ("configured", "Configured", "Configured"),
    ("notconfigured", "Not configured", "NotConfigured"),
    ("unsupported", "Unsupported", "Unsupported"),
];

pub(super) async fn machines(State(c): State<Console>, req: Request) -> Response {
    let (parts, s, _) = match signed_in(&c, req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let q = query(&parts);
    machines_page(&c, &parts, &s, &q, StatusCode::OK, None).await
}

pub(super) async fn machines_page(
    c: &Console,
    parts: &Parts,
    s: &Session,
    q: &Form,
    status: StatusCode,
    error: Option<String>,
) -> Response {
    let tab = one(q, "tab").unwrap_or_else(|| "configured".into());
    let Some(scope) = scope_of(c, parts, s, q).await else {
        let body = format!(
            "{}<p>No machines you can see yet. Add one with <code>ajar machine add</code> or the API.</p>",
            scope_picker(c, parts, s, "/machines", "", "").await
        );
        return page(status, "Machines", Some(s), "/machines", &body);
    };
    let list = c
        .call(
            parts,
            Some(&s.secret),
            Method::GET,
            &format!("/api/v1{scope}/machines"),
            None,
        )
        .await;
    let mut body = scope_picker(
        c,
        parts,
        s,
        "/machines",
        &scope,
        &format!(
            "<input type=\"hidden\" name=\"tab\" value=\"{}\">",
            escape(&tab)
        ),
    )
    .await;
    if let Some(e) = &error {
        body.push_str(&html::message("error", e));
    }
    if let Some((m, _)) = list.error() {
        body.push_str(&html::message("error", &m));
        return with_answer(
            page(list.status, "Machines", Some(s), "/machines", &body),
            &list,
        );
    }
    let items: Vec<Value> = list.body["value"].as_array().cloned().unwrap_or_default();
    let wanted = TABS
        .iter()
        .find(|t| t.0 == tab)
        .map(|t| t.2)
        .unwrap_or("Configured");
    body.push_str("<div class=\"tabs\" role=\"tablist\">");
    for (key, label, state) in TABS {
        let n = items
            .iter()
            .filter(|m| m["properties"]["jitState"] == *state)
            .count();
        let current = if *key == tab {
            " aria-current=\"page\""
        } else {
            ""
        };
        body.push_str(&format!(
            "<a role=\"tab\" href=\"/machines?scope={}&tab={key}\"{current}>{label} ({n})</a>",
            enc(&scope)
        ));
    }
    body.push_str("</div>");
    let shown: Vec<&Value> = items
        .iter()
        .filter(|m| m["properties"]["jitState"] == wanted)
        .collect();
    match wanted {
        "Configured" => {
            let rows: Vec<Vec<String>> = shown
                .iter()
                .map(|m| {
                    let p = &m["properties"];
                    let f = &p["requestFigures"];
                    let id = m["id"].as_str().unwrap_or("");
                    let open: Vec<String> = f["openConnections"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|o| {
                            // Behind a gateway: its address and mapped port; else the machine's.
                            let to = if o["connectTo"].is_string() {
                                text(&o["connectTo"])
                            } else {
                                format!("{}:{}", text(&p["addresses"][0]), text(&o["port"]))
                            };
                            format!("{} → {to}", text(&o["port"]))
                        })
                        .collect();
                    vec![
                        format!("<input type=\"checkbox\" name=\"machine\" value=\"{}\" form=\"request\" aria-label=\"select {}\">", escape(id), text(&m["name"])),
                        text(&m["name"]),
                        text(&f["approvedRequestsLast7Days"]),
                        time(&f["lastAccessAt"]),
                        text(&f["lastUser"]),
                        if open.is_empty() { "-".into() } else { open.join("<br>") },
                        format!("<a href=\"/access/new?machine={}\">Request access</a>", enc(id)),
                    ]
                })
                .collect();
            body.push_str(&table(
                "Machines with JIT",
                &[
                    "",
                    "Name",
                    "Approved (7 days)",
                    "Last access",
                    "Last user",
                    "Connection details",
                    "",
                ],
                &rows,
            ));
            if !rows.is_empty() {
                body.push_str("<form id=\"request\" method=\"get\" action=\"/access/new\"><button type=\"submit\">Request access to the selected machines</button></form>");
            }
        }
        "NotConfigured" => {
            let rows: Vec<Vec<String>> = shown
                .iter()
                .map(|m| {
                    let id = m["id"].as_str().unwrap_or("");
                    vec![
                        format!("<input type=\"checkbox\" name=\"machine\" value=\"{}\" form=\"enable\" aria-label=\"select {}\">", escape(id), text(&m["name"])),
                        text(&m["name"]),
                        text(&m["properties"]["os"]),
                        text(&m["properties"]["addresses"]),
                    ]
                })
                .collect();
            body.push_str(&table(
                "Machines without JIT",
                &["", "Name", "OS", "Addresses"],
                &rows,
            ));
            if !rows.is_empty() {
                body.push_str(&enable_form(s, &scope));
            }
        }
        _ => {
            let rows: Vec<Vec<String>> = shown
                .iter()
                .map(|m| {
                    vec![
                        text(&m["name"]),
                        text(&m["properties"]["unsupportedReason"]),
                    ]
                })
                .collect();
            body.push_str(&table(
                "Machines JIT cannot protect",
                &["Name", "Reason"],
                &rows,
            ));
        }
    }
    with_answer(page(status, "Machines", Some(s), "/machines", &body), &list)
}

pub(super) fn enable_form(s: &Session, scope: &str) -> String {
    let ports: String = [(22, "SSH"), (3389, "RDP"), (5985, "WinRM HTTP"), (5986, "WinRM HTTPS")]
        .iter()
        .map(|(p, n)| {
            format!("<label class=\"check\"><input type=\"checkbox\" name=\"port\" value=\"{p}\"> {p} ({n})</label>")
        })
        .collect();
    format!(
        "<form id=\"enable\" method=\"post\" action=\"/machines/enable\" class=\"card\">{}\
         <input type=\"hidden\" name=\"scope\" value=\"{}\">\
         <h2>Enable JIT on the selected machines</h2>\
         <p>Without ports chosen, each machine gets its system's default (22 on Linux, 3389 on Windows) for up to 3 hours from any source.</p>\
         <fieldset><legend>Ports</legend>{ports}\
         <label for=\"custom\">Custom port</label><input id=\"custom\" name=\"port\" inputmode=\"numeric\" pattern=\"[0-9]*\"></fieldset>\
         <label for=\"protocol\">Protocol</label><select id=\"protocol\" name=\"protocol\"><option value=\"*\">Any</option><option value=\"TCP\">TCP</option><option value=\"UDP\">UDP</option></select>\
         <label for=\"sources\">Allowed sources</label><input id=\"sources\" name=\"sources\" value=\"*\" aria-describedby=\"sources-help\">\
         <small id=\"sources-help\">* for any, or prefixes separated by commas (10.0.0.0/24, 2001:db8::/32)</small>\
         <label for=\"max\">Maximum request time</label><select id=\"max\" name=\"max\"><option>PT1H</option><option selected>PT3H</option><option>PT8H</option><option>PT24H</option></select>\
         <label for=\"policy\">Policy name</label><input id=\"policy\" name=\"policy\" value=\"default\">\
         <button type=\"submit\">Enable JIT</button></form>",
        html::csrf(s),
        escape(scope)
    )
}

pub(super) async fn enable(State(c): State<Console>, req: Request) -> Response {
    let (parts, s, f) = match posted(&c, req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let scope = one(&f, "scope").unwrap_or_default();
    let machines = all(&f, "machine");
    let back = vec![
        ("scope".to_owned(), scope.clone()),
        ("tab".to_owned(), "notconfigured".to_owned()),
    ];
    if machines.is_empty() {
        return machines_page(
            &c,
            &parts,
            &s,
            &back,
            StatusCode::BAD_REQUEST,
            Some("Select at least one machine.".into()),
        )
        .await;
    }
    let mut body = json!({});
    if let Some(p) = one(&f, "policy") {
        body["policy"] = json!(p);
    }
    let ports = all(&f, "port");
    if !ports.is_empty() {
        let sources: Vec<String> = one(&f, "sources")
            .unwrap_or_else(|| "*".into())
            .split(',')
            .map(|x| x.trim().to_owned())
            .filter(|x| !x.is_empty())
            .collect();
        let mut rules = Vec::new();
        for p in &ports {
            let Ok(number) = p.parse::<u16>() else {
                return machines_page(
                    &c,
                    &parts,
                    &s,
                    &back,
                    StatusCode::BAD_REQUEST,
                    Some(format!("{p} is not a port number.")),
                )
                .await;
            };
            let mut r = json!({"number": number, "protocol": one(&f, "protocol").unwrap_or_else(|| "*".into()),
                "maxRequestAccessDuration": one(&f, "max").unwrap_or_else(|| "PT3H".into())});
            if sources == ["*"] {
                r["allowedSourceAddressPrefix"] = json!("*");
            } else {
                r["allowedSourceAddressPrefixes"] = json!(sources);
            }
            rules.push(r);
        }
        body["ports"] = json!(rules);
    }
    for m in &machines {
        let a = c
            .call(
                &parts,
                Some(&s.secret),
                Method::POST,
                &format!("/api/v1{m}/enableJit"),
                Some(&body),
            )
            .await;
        if let Some((msg, target)) = a.error() {
            let at = target.map(|t| format!(" ({t})")).unwrap_or_default();
            let resp = machines_page(
                &c,
                &parts,
                &s,
                &back,
                a.status,
                Some(format!("{m}: {msg}{at}")),
            )
            .await;
            return with_answer(resp, &a);
        }
    }
    redirect(&format!("/machines?scope={}&tab=configured", enc(&scope)))
}
