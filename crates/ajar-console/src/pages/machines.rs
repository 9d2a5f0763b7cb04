//! The Machines page (Configured / Not configured / Unsupported tabs) and Enable JIT.

use super::*;
use crate::html::{self, enc, joined, or_dash, page, table, time};
use crate::{Console, Session};
use ajar_api::wire::{JitState, Machine};
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

pub(super) const TABS: &[(&str, &str, JitState)] = &[
    ("configured", "Configured", JitState::Configured),
    ("notconfigured", "Not configured", JitState::NotConfigured),
    ("unsupported", "Unsupported", JitState::Unsupported),
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
        let picker = scope_picker(c, parts, s, "/machines", "", html! {}).await;
        let body = html! {
            (picker)
            p { "No machines you can see yet. Add one with " code { "ajar machine add" } " or the API." }
        };
        return page(status, "Machines", Some(s), "/machines", body);
    };
    let paging = Paging::of(q);
    let list = c
        .call(
            parts,
            Some(&s.secret),
            Method::GET,
            &format!("/api/v1{scope}/machines?{}", paging.api(1000)),
            None,
        )
        .await;
    let enabled = enabled_notice(c, parts, s, &all(q, "enabled")).await;
    let picker = scope_picker(
        c,
        parts,
        s,
        "/machines",
        &scope,
        html! { input type="hidden" name="tab" value=(tab); },
    )
    .await;
    let top = html! {
        (picker)
        @if let Some(e) = &error { (html::message("error", e)) }
        (enabled)
    };
    if let Some((m, _)) = list.error() {
        let body = html! { (top) (html::message("error", &m)) };
        return with_answer(
            page(list.status, "Machines", Some(s), "/machines", body),
            &list,
        );
    }
    let (items, next_link) = list
        .parse::<List<Machine>>()
        .map(|l| (l.value, l.next_link))
        .unwrap_or_default();
    let wanted = TABS
        .iter()
        .find(|t| t.0 == tab)
        .map(|t| t.2)
        .unwrap_or(JitState::Configured);
    let in_state = |m: &Machine, state: JitState| m.properties.jit_state == state;
    let shown: Vec<&Machine> = items.iter().filter(|m| in_state(m, wanted)).collect();
    let listing = match wanted {
        JitState::Configured => configured(&shown),
        JitState::NotConfigured => not_configured(s, &scope, &shown),
        JitState::Unsupported => unsupported(&shown),
    };
    let body = html! {
        (top)
        div class="tabs" role="tablist" {
            @for (key, label, state) in TABS {
                a role="tab" href={ "/machines?scope=" (enc(&scope)) "&tab=" (key) }
                    aria-current=[(*key == tab).then_some("page")] {
                    (label) " (" (items.iter().filter(|m| in_state(m, *state)).count()) ")"
                }
            }
        }
        (listing)
        (exposures(&shown))
        (paging.links(
            &format!("/machines?scope={}&tab={}", enc(&scope), enc(&tab)),
            next_link.as_deref(),
        ))
    };
    with_answer(page(status, "Machines", Some(s), "/machines", body), &list)
}

/// The confirmation after Enable JIT: each policy with the machines now under it, read back
/// from the API (so the page states what is, not what the address claims).
async fn enabled_notice(c: &Console, parts: &Parts, s: &Session, ids: &[String]) -> Markup {
    let mut by_policy: Vec<(String, Vec<String>)> = Vec::new();
    // Only machine ids are read back (a crafted link cannot make the session call other API
    // paths), and a page's worth at most.
    let machine_ids = ids.iter().filter_map(|id| {
        ajar_core::id::ResourceId::parse_kind(id, ajar_core::id::ResourceKind::Machine).ok()
    });
    for id in machine_ids.take(20) {
        let Some(m) = c
            .call(
                parts,
                Some(&s.secret),
                Method::GET,
                &format!("/api/v1{id}"),
                None,
            )
            .await
            .parse::<Machine>()
        else {
            continue;
        };
        let Some(policy) = m.properties.jit_policy_id else {
            continue;
        };
        match by_policy.iter_mut().find(|(p, _)| *p == policy) {
            Some((_, names)) => names.push(m.name),
            None => by_policy.push((policy, vec![m.name])),
        }
    }
    html! {
        @for (policy, names) in &by_policy {
            p class="notice success" role="status" {
                "JIT is enabled on " strong { (names.join(", ")) } " under the policy "
                strong title=(policy) { (policy.rsplit('/').next().unwrap_or(policy)) }
                " (" (policy) "). Select a machine below to request access."
            }
        }
    }
}

/// The Configured tab: machines with JIT, their request figures and open connections.
fn configured(shown: &[&Machine]) -> Markup {
    let rows: Vec<Vec<Markup>> = shown
        .iter()
        .map(|m| {
            let figures = m.properties.request_figures.as_ref();
            let open: Vec<String> = figures
                .map(|f| f.open_connections.as_slice())
                .unwrap_or_default()
                .iter()
                .map(|o| {
                    // Behind a gateway: its address and mapped port; else the machine's.
                    let to = match &o.connect_to {
                        Some(to) => to.to_string(),
                        None => format!("{}:{}", or_dash(m.properties.addresses.first()), o.port),
                    };
                    format!("{} → {to}", o.port)
                })
                .collect();
            let more = figures.map_or(0, |f| f.open_connection_count) - open.len() as i64;
            vec![
                html! {
                    input type="checkbox" name="machine" value=(m.id) form="request"
                        aria-label={ "select " (m.name) };
                },
                html! { (m.name) },
                html! { (or_dash(figures.map(|f| f.approved_requests_last7_days))) },
                time(figures.and_then(|f| f.last_access_at.as_ref())),
                html! { (or_dash(figures.and_then(|f| f.last_user.as_ref()))) },
                html! {
                    @if open.is_empty() { "-" }
                    @for (i, o) in open.iter().enumerate() {
                        @if i > 0 { br; }
                        (o)
                    }
                    @if more > 0 { br; "and " (more) " more" }
                },
                html! { a href={ "/access/new?machine=" (enc(&m.id)) } { "Request access" } },
            ]
        })
        .collect();
    html! {
        (table(
            "Machines with JIT",
            &["Select", "Name", "Approved (7 days)", "Last access", "Last user", "Connection details", "Access"],
            &rows,
        ))
        @if !rows.is_empty() {
            form id="request" method="get" action="/access/new" {
                button type="submit" { "Request access to the selected machines" }
            }
        }
    }
}

/// The Not configured tab: machines without JIT, and the form that enables it.
fn not_configured(s: &Session, scope: &str, shown: &[&Machine]) -> Markup {
    let rows: Vec<Vec<Markup>> = shown
        .iter()
        .map(|m| {
            vec![
                html! {
                    input type="checkbox" name="machine" value=(m.id) form="enable"
                        aria-label={ "select " (m.name) };
                },
                html! { (m.name) },
                html! { (m.properties.os) },
                html! { (joined(&m.properties.addresses)) },
            ]
        })
        .collect();
    html! {
        (table("Machines without JIT", &["Select", "Name", "OS", "Addresses"], &rows))
        @if !rows.is_empty() { (enable_form(s, scope)) }
    }
}

/// The protected ports of the shown machines that something other than ajar leaves open to
/// everyone, as their enforcement points found them: ajar cannot close these, so they are named
/// with what opens them.
fn exposures(shown: &[&Machine]) -> Markup {
    let exposed: Vec<&&Machine> = shown
        .iter()
        .filter(|m| !m.properties.standing_exposures.is_empty())
        .collect();
    html! {
        @if !exposed.is_empty() {
            section class="exposures" aria-labelledby="exposures" {
                h2 id="exposures" { "Standing exposures" }
                p {
                    "These ports are open to everyone by rules ajar does not manage, so JIT "
                    "cannot close them. Remove those rules to protect the ports."
                }
                @for m in exposed {
                    h3 { (m.name) }
                    ul {
                        @for e in &m.properties.standing_exposures {
                            li { (e) }
                        }
                    }
                }
            }
        }
    }
}

/// The Unsupported tab: machines JIT cannot protect, and why.
fn unsupported(shown: &[&Machine]) -> Markup {
    let rows: Vec<Vec<Markup>> = shown
        .iter()
        .map(|m| {
            vec![
                html! { (m.name) },
                html! { (or_dash(m.properties.unsupported_reason.as_ref())) },
            ]
        })
        .collect();
    table("Machines JIT cannot protect", &["Name", "Reason"], &rows)
}

pub(super) fn enable_form(s: &Session, scope: &str) -> Markup {
    const PORTS: [(u16, &str); 4] = [
        (22, "SSH"),
        (3389, "RDP"),
        (5985, "WinRM HTTP"),
        (5986, "WinRM HTTPS"),
    ];
    html! {
        form id="enable" method="post" action="/machines/enable" class="card" {
            (html::csrf(s))
            input type="hidden" name="scope" value=(scope);
            h2 { "Enable JIT on the selected machines" }
            p { "Without ports chosen, each machine gets its system's default (22 on Linux, 3389 on Windows) for up to 3 hours from any source." }
            fieldset {
                legend { "Ports" }
                @for (port, name) in PORTS {
                    label class="check" {
                        input type="checkbox" name="port" value=(port);
                        " " (port) " (" (name) ")"
                    }
                }
                label for="custom" { "Custom port" }
                input id="custom" name="port" inputmode="numeric" pattern="[0-9]*";
            }
            label for="protocol" { "Protocol" }
            select id="protocol" name="protocol" {
                option value="*" { "Any" }
                option value="TCP" { "TCP" }
                option value="UDP" { "UDP" }
            }
            label for="sources" { "Allowed sources" }
            input id="sources" name="sources" value="*" aria-describedby="sources-help";
            small id="sources-help" { "* for any, or prefixes separated by commas (10.0.0.0/24, 2001:db8::/32)" }
            label for="max" { "Maximum request time" }
            select id="max" name="max" {
                @for (iso, hours) in [("PT1H", 1), ("PT3H", 3), ("PT8H", 8), ("PT24H", 24)] {
                    option value=(iso) selected[hours == 3] { (html::human_duration(hours * 3600)) }
                }
            }
            label for="policy" { "Policy name" }
            input id="policy" name="policy" value="default";
            button type="submit" { "Enable JIT" }
        }
    }
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
    let ports = all(&f, "port");
    let mut rules = Vec::new();
    if !ports.is_empty() {
        let sources: Vec<String> = one(&f, "sources")
            .unwrap_or_else(|| "*".into())
            .split(',')
            .map(|x| x.trim().to_owned())
            .filter(|x| !x.is_empty())
            .collect();
        let (sources_field, sources) = if sources == ["*"] {
            ("allowedSourceAddressPrefix", json!("*"))
        } else {
            ("allowedSourceAddressPrefixes", json!(sources))
        };
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
            rules.push(object([
                ("number", Some(json!(number))),
                (
                    "protocol",
                    Some(json!(one(&f, "protocol").unwrap_or_else(|| "*".into()))),
                ),
                (
                    "maxRequestAccessDuration",
                    Some(json!(one(&f, "max").unwrap_or_else(|| "PT3H".into()))),
                ),
                (sources_field, Some(sources.clone())),
            ]));
        }
    }
    let body = object([
        ("policy", one(&f, "policy").map(Value::from)),
        ("ports", (!rules.is_empty()).then(|| Value::from(rules))),
    ]);
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
    let enabled: String = machines
        .iter()
        .map(|m| format!("&enabled={}", enc(m)))
        .collect();
    redirect(&format!(
        "/machines?scope={}&tab=configured{enabled}",
        enc(&scope)
    ))
}
