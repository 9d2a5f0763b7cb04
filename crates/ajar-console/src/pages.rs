//! The console's pages and form handlers.

use crate::html::{self, enc, error_summary, escape, field_error, page, table, text, time};
use crate::signin;
use crate::{Answer, Console, Session, same, secure_headers};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{CONTENT_TYPE, LOCATION};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::net::SocketAddr;

type Form = Vec<(String, String)>;

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
        include_str!("../static/console.css"),
    )
}

async fn js() -> Response {
    static_file(
        "text/javascript; charset=utf-8",
        include_str!("../static/console.js"),
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

/// A random hex string (for names and the sign-in form's CSRF cookie).
pub(crate) fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    if getrandom::fill(&mut b).is_err() {
        return String::new();
    }
    hex::encode(b)
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
            &html::message(
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

/// The scope a list shows: the query's, or the first subscription the user can see.
async fn scope_of(c: &Console, parts: &Parts, s: &Session, q: &Form) -> Option<String> {
    if let Some(scope) = one(q, "scope") {
        return Some(scope);
    }
    let subs = c
        .call(
            parts,
            Some(&s.secret),
            Method::GET,
            "/api/v1/subscriptions",
            None,
        )
        .await;
    subs.body["value"][0].as_str().map(str::to_owned)
}

async fn scope_picker(
    c: &Console,
    parts: &Parts,
    s: &Session,
    action: &str,
    scope: &str,
    extra: &str,
) -> String {
    let subs = c
        .call(
            parts,
            Some(&s.secret),
            Method::GET,
            "/api/v1/subscriptions",
            None,
        )
        .await;
    let options: String = subs.body["value"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|v| format!("<option value=\"{0}\">", escape(v)))
        .collect();
    format!(
        "<form method=\"get\" action=\"{action}\" class=\"inline\">{extra}\
         <label for=\"scope\">Scope</label>\
         <input id=\"scope\" name=\"scope\" list=\"scopes\" value=\"{}\" size=\"40\">\
         <datalist id=\"scopes\">{options}</datalist><button type=\"submit\">Show</button></form>",
        escape(scope)
    )
}

// -- machines -----------------------------------------------------------------------------------

const TABS: &[(&str, &str, &str)] = &[
    ("configured", "Configured", "Configured"),
    ("notconfigured", "Not configured", "NotConfigured"),
    ("unsupported", "Unsupported", "Unsupported"),
];

async fn machines(State(c): State<Console>, req: Request) -> Response {
    let (parts, s, _) = match signed_in(&c, req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let q = query(&parts);
    machines_page(&c, &parts, &s, &q, StatusCode::OK, None).await
}

async fn machines_page(
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

fn enable_form(s: &Session, scope: &str) -> String {
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

async fn enable(State(c): State<Console>, req: Request) -> Response {
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

// -- request access -----------------------------------------------------------------------------

/// The client's address as the server sees it ("my IP").
fn my_ip(parts: &Parts) -> String {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ci| ci.0.ip().to_string())
        .unwrap_or_default()
}

fn minutes_of(iso: &str) -> Option<i64> {
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

async fn access_form(State(c): State<Console>, req: Request) -> Response {
    let (parts, s, _) = match signed_in(&c, req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let q = query(&parts);
    render_access_form(&c, &parts, &s, &q, StatusCode::OK, None).await
}

async fn render_access_form(
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

async fn access_start(State(c): State<Console>, req: Request) -> Response {
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

async fn access_status(State(c): State<Console>, req: Request) -> Response {
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

async fn access_status_json(State(c): State<Console>, req: Request) -> Response {
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

// -- applications -------------------------------------------------------------------------------

async fn apps(State(c): State<Console>, req: Request) -> Response {
    let (parts, s, _) = match signed_in(&c, req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    apps_page(&c, &parts, &s, &query(&parts), StatusCode::OK, None).await
}

async fn apps_page(
    c: &Console,
    parts: &Parts,
    s: &Session,
    q: &Form,
    status: StatusCode,
    error: Option<(String, Option<String>)>,
) -> Response {
    let scope = scope_of(c, parts, s, q).await.unwrap_or_default();
    let mut body = scope_picker(c, parts, s, "/apps", &scope, "").await;
    let list = if scope.is_empty() {
        None
    } else {
        Some(
            c.call(
                parts,
                Some(&s.secret),
                Method::GET,
                &format!("/api/v1{scope}/applications"),
                None,
            )
            .await,
        )
    };
    if let Some(list) = &list {
        if let Some((m, _)) = list.error() {
            body.push_str(&html::message("error", &m));
        }
        let rows: Vec<Vec<String>> = list.body["value"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| {
                let p = &a["properties"]["jitAccessPolicy"];
                vec![
                    format!(
                        "<a href=\"/apps/view?id={}\">{}</a>",
                        enc(a["id"].as_str().unwrap_or("")),
                        text(&a["name"])
                    ),
                    if p["jitAccessEnabled"] == true {
                        "on".into()
                    } else {
                        "off (standing access)".into()
                    },
                    text(&p["jitApprovalMode"]),
                    text(&p["maximumJitAccessDuration"]),
                    text(&a["requestFigures"]["approvedRequestsLast7Days"]),
                    time(&a["requestFigures"]["lastAccessAt"]),
                    text(&a["requestFigures"]["lastUser"]),
                ]
            })
            .collect();
        body.push_str(&table(
            "Applications",
            &[
                "Name",
                "JIT",
                "Approval",
                "Maximum",
                "Approved (7 days)",
                "Last activation",
                "Last user",
            ],
            &rows,
        ));
    }
    body.push_str(&format!(
        "<form method=\"post\" action=\"/apps/save\" class=\"card\">{}<h2>New application</h2>{}\
         <label for=\"id\">Resource id</label><input id=\"id\" name=\"id\" required placeholder=\"{}/resourceGroups/rg1/applications/crm\">{}\
         <label class=\"check\"><input type=\"checkbox\" name=\"jit\" value=\"on\" checked> Just-in-time access (cannot be changed after creation)</label>\
         {}<button type=\"submit\">Create</button></form>",
        html::csrf(s),
        error_summary(&error, &["id", "jitApprovers", "maximumJitAccessDuration", "jitApprovalThreshold"]),
        escape(if scope.is_empty() { "/subscriptions/s1" } else { &scope }),
        field_error(&error, "id"),
        policy_fields(&Value::Null, &error)
    ));
    let resp = page(status, "Applications", Some(s), "/apps", &body);
    match &list {
        Some(l) => with_answer(resp, l),
        None => resp,
    }
}

/// The JIT policy's editable fields.
fn policy_fields(p: &Value, error: &Option<(String, Option<String>)>) -> String {
    let manual = p["jitApprovalMode"] == "ManualApprove";
    let approvers: Vec<String> = p["jitApprovers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            format!(
                "{}:{}",
                a["type"].as_str().unwrap_or("user"),
                a["id"].as_str().unwrap_or("")
            )
        })
        .collect();
    format!(
        "<label for=\"mode\">Approval</label><select id=\"mode\" name=\"mode\">\
         <option value=\"AutoApprove\"{}>Automatic</option><option value=\"ManualApprove\"{}>By approvers</option></select>\
         <label for=\"approvers\">Approvers</label><input id=\"approvers\" name=\"approvers\" value=\"{}\" aria-describedby=\"approvers-help\">\
         <small id=\"approvers-help\">user:NAME or group:NAME, separated by commas</small>{}\
         <label for=\"threshold\">Approvals needed</label><input id=\"threshold\" name=\"threshold\" type=\"number\" min=\"1\" value=\"{}\">{}\
         <label for=\"max\">Maximum activation</label><input id=\"max\" name=\"max\" value=\"{}\" placeholder=\"PT8H\">{}",
        if manual { "" } else { " selected" },
        if manual { " selected" } else { "" },
        escape(&approvers.join(", ")),
        field_error(error, "jitApprovers"),
        p["jitApprovalThreshold"].as_u64().unwrap_or(1),
        field_error(error, "jitApprovalThreshold"),
        text(&p["maximumJitAccessDuration"]).replace('-', ""),
        field_error(error, "maximumJitAccessDuration"),
    )
}

async fn app_save(State(c): State<Console>, req: Request) -> Response {
    let (parts, s, f) = match posted(&c, req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let id = one(&f, "id").unwrap_or_default();
    let existing = c
        .call(
            &parts,
            Some(&s.secret),
            Method::GET,
            &format!("/api/v1{id}"),
            None,
        )
        .await;
    let mut policy =
        json!({"jitApprovalMode": one(&f, "mode").unwrap_or_else(|| "AutoApprove".into())});
    policy["jitAccessEnabled"] = if existing.ok() {
        existing.body["properties"]["jitAccessPolicy"]["jitAccessEnabled"].clone()
    } else {
        json!(one(&f, "jit").is_some())
    };
    let approvers: Vec<Value> = one(&f, "approvers")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(|a| match a.split_once(':') {
            Some(("group", g)) => json!({"id": g, "type": "group"}),
            Some(("user", u)) => json!({"id": u, "type": "user"}),
            _ => json!({"id": a, "type": "user"}),
        })
        .collect();
    policy["jitApprovers"] = json!(approvers);
    if let Some(t) = one(&f, "threshold").and_then(|t| t.parse::<u32>().ok()) {
        policy["jitApprovalThreshold"] = json!(t);
    }
    if let Some(m) = one(&f, "max") {
        policy["maximumJitAccessDuration"] = json!(m);
    }
    let mut props = json!({"jitAccessPolicy": policy});
    if existing.ok() {
        props["publisherPrincipals"] = existing.body["properties"]["publisherPrincipals"].clone();
    }
    let a = c
        .call(
            &parts,
            Some(&s.secret),
            Method::PUT,
            &format!("/api/v1{id}"),
            Some(&json!({"properties": props})),
        )
        .await;
    if a.error().is_some() {
        let resp = if existing.ok() {
            app_view_page(&c, &parts, &s, &id, a.status, a.error()).await
        } else {
            let back = vec![(
                "scope".to_owned(),
                id.split("/resourceGroups/").next().unwrap_or("").to_owned(),
            )];
            apps_page(&c, &parts, &s, &back, a.status, a.error()).await
        };
        return with_answer(resp, &a);
    }
    redirect(&format!("/apps/view?id={}", enc(&id)))
}

async fn app_view(State(c): State<Console>, req: Request) -> Response {
    let (parts, s, _) = match signed_in(&c, req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let id = one(&query(&parts), "id").unwrap_or_default();
    app_view_page(&c, &parts, &s, &id, StatusCode::OK, None).await
}

async fn app_view_page(
    c: &Console,
    parts: &Parts,
    s: &Session,
    id: &str,
    status: StatusCode,
    error: Option<(String, Option<String>)>,
) -> Response {
    let a = c
        .call(
            parts,
            Some(&s.secret),
            Method::GET,
            &format!("/api/v1{id}"),
            None,
        )
        .await;
    if let Some((m, _)) = a.error() {
        return with_answer(
            page(
                a.status,
                "Application",
                Some(s),
                "/apps",
                &html::message("error", &m),
            ),
            &a,
        );
    }
    let p = &a.body["properties"]["jitAccessPolicy"];
    let jit = p["jitAccessEnabled"] == true;
    let mut body = format!(
        "<p>{} · publishers: {} · JIT {}</p>",
        escape(id),
        text(&a.body["properties"]["publisherPrincipals"]),
        if jit {
            "on"
        } else {
            "off: its eligible roles are standing access"
        }
    );
    body.push_str(&error_summary(
        &error,
        &[
            "jitApprovers",
            "maximumJitAccessDuration",
            "jitApprovalThreshold",
            "duration",
            "roles",
            "principal",
            "roleDefinition",
        ],
    ));
    body.push_str(&format!(
        "<form method=\"post\" action=\"/apps/save\" class=\"card\">{}<h2>Access policy</h2>\
         <input type=\"hidden\" name=\"id\" value=\"{}\">\
         <p class=\"hint\">Whether the application uses JIT is chosen when it is created and cannot change: switching would turn activations into standing access or the reverse.</p>\
         {}<button type=\"submit\">Save</button></form>",
        html::csrf(s),
        escape(id),
        policy_fields(p, &error)
    ));
    let roles = c
        .call(
            parts,
            Some(&s.secret),
            Method::GET,
            &format!("/api/v1{id}/eligibleRoles"),
            None,
        )
        .await;
    let role_names: Vec<String> = roles.body["value"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["roleDefinition"].as_str().map(str::to_owned))
        .collect();
    let rows: Vec<Vec<String>> = roles.body["value"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            vec![
                text(&r["id"]),
                text(&r["principal"]),
                text(&r["roleDefinition"]),
            ]
        })
        .collect();
    body.push_str(&table(
        "Eligible roles",
        &["Id", "Principal", "Role"],
        &rows,
    ));
    body.push_str(&format!(
        "<form method=\"post\" action=\"/apps/eligible\" class=\"card inline-fields\">{}<h2>Add an eligible role</h2>\
         <input type=\"hidden\" name=\"app\" value=\"{}\">\
         <label for=\"e-principal\">Principal or group:NAME</label><input id=\"e-principal\" name=\"principal\" required>{}\
         <label for=\"e-role\">Role</label><input id=\"e-role\" name=\"role\" required value=\"Contributor\">{}\
         <button type=\"submit\">Add</button></form>",
        html::csrf(s), escape(id), field_error(&error, "principal"), field_error(&error, "roleDefinition")
    ));
    if jit {
        let mut options: Vec<String> = role_names.clone();
        options.sort();
        options.dedup();
        let opts: String = options
            .iter()
            .map(|r| format!("<option>{}</option>", escape(r)))
            .collect();
        body.push_str(&format!(
            "<form method=\"post\" action=\"/apps/activate\" class=\"card\">{}<h2>Activate a role</h2>\
             <input type=\"hidden\" name=\"app\" value=\"{}\">\
             <label for=\"a-role\">Role</label><select id=\"a-role\" name=\"role\">{opts}</select>{}\
             <label for=\"a-start\">Start (empty: now, UTC)</label><input id=\"a-start\" name=\"start\" type=\"datetime-local\">\
             <label for=\"a-duration\">Duration</label><input id=\"a-duration\" name=\"duration\" value=\"PT2H\" required>{}\
             <label for=\"a-reason\">Justification</label><textarea id=\"a-reason\" name=\"reason\" rows=\"2\"></textarea>\
             <button type=\"submit\">Activate</button></form>",
            html::csrf(s), escape(id), field_error(&error, "roles"), field_error(&error, "duration")
        ));
    }
    with_answer(
        page(
            status,
            a.body["name"].as_str().unwrap_or("Application"),
            Some(s),
            "/apps",
            &body,
        ),
        &a,
    )
}

async fn app_eligible(State(c): State<Console>, req: Request) -> Response {
    let (parts, s, f) = match posted(&c, req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let app = one(&f, "app").unwrap_or_default();
    let principal = one(&f, "principal").unwrap_or_default();
    let id: String = principal
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let a = c
        .call(&parts, Some(&s.secret), Method::PUT, &format!("/api/v1{app}/eligibleRoles/{id}"),
            Some(&json!({"principal": principal, "roleDefinition": one(&f, "role").unwrap_or_default()})))
        .await;
    if a.error().is_some() {
        let resp = app_view_page(&c, &parts, &s, &app, a.status, a.error()).await;
        return with_answer(resp, &a);
    }
    redirect(&format!("/apps/view?id={}", enc(&app)))
}

async fn app_activate(State(c): State<Console>, req: Request) -> Response {
    let (parts, s, f) = match posted(&c, req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let app = one(&f, "app").unwrap_or_default();
    let group = app.split("/applications/").next().unwrap_or("").to_owned();
    let mut scheduling =
        json!({"type": "Once", "duration": one(&f, "duration").unwrap_or_default()});
    if let Some(start) = one(&f, "start") {
        let start = if start.len() == 16 {
            format!("{start}:00Z")
        } else {
            format!("{start}Z")
        };
        scheduling["startTime"] = json!(start);
    }
    let mut body = json!({"properties": {
        "applicationResourceId": app,
        "jitAuthorizationPolicies": [{"principalId": s.principal, "roleDefinitionId": one(&f, "role").unwrap_or_default()}],
        "jitSchedulingPolicy": scheduling}});
    if let Some(r) = one(&f, "reason") {
        body["properties"]["justification"] = json!(r);
    }
    let name = random_hex(8);
    let a = c
        .call(
            &parts,
            Some(&s.secret),
            Method::PUT,
            &format!("/api/v1{group}/jitRequests/{name}"),
            Some(&body),
        )
        .await;
    if a.error().is_some() {
        let resp = app_view_page(&c, &parts, &s, &app, a.status, a.error()).await;
        return with_answer(resp, &a);
    }
    redirect(&format!("/history?requester={}", enc(&s.principal)))
}

// -- approvals and history ----------------------------------------------------------------------

async fn inbox(State(c): State<Console>, req: Request) -> Response {
    let (parts, s, _) = match signed_in(&c, req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    inbox_page(&c, &parts, &s, StatusCode::OK, None).await
}

async fn inbox_page(
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

async fn decide(State(c): State<Console>, req: Request) -> Response {
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

async fn history(State(c): State<Console>, req: Request) -> Response {
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

// -- activity -----------------------------------------------------------------------------------

const ACTIVITY_FILTERS: &[&str] = &["scope", "principal", "action", "result", "from", "to"];

fn activity_query(q: &Form) -> String {
    ACTIVITY_FILTERS
        .iter()
        .filter_map(|k| one(q, k).map(|v| format!("{k}={}", enc(&v))))
        .collect::<Vec<_>>()
        .join("&")
}

async fn activity(State(c): State<Console>, req: Request) -> Response {
    let (parts, s, _) = match signed_in(&c, req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let q = query(&parts);
    let qs = activity_query(&q);
    let list = c
        .call(
            &parts,
            Some(&s.secret),
            Method::GET,
            &format!("/api/v1/activity?top=100&{qs}"),
            None,
        )
        .await;
    let inputs: String = ACTIVITY_FILTERS
        .iter()
        .map(|k| {
            format!(
                "<label for=\"f-{k}\">{k}</label><input id=\"f-{k}\" name=\"{k}\" value=\"{}\"{}>",
                escape(&one(&q, k).unwrap_or_default()),
                if *k == "from" || *k == "to" {
                    " placeholder=\"2026-11-25T00:00:00Z\""
                } else {
                    ""
                }
            )
        })
        .collect();
    let mut body = format!(
        "<form method=\"get\" action=\"/activity\" class=\"inline\">{inputs}<button type=\"submit\">Filter</button></form>\
         <p><a class=\"button\" href=\"/activity.csv?{}\" download=\"ajar-activity.csv\">Download as CSV</a></p>{}",
        escape(&qs),
        field_error(&list.error(), "scope")
    );
    if let Some((m, t)) = list.error() {
        let at = t.map(|t| format!(" ({t})")).unwrap_or_default();
        body.push_str(&html::message("error", &format!("{m}{at}")));
    }
    let rows: Vec<Vec<String>> = list.body["value"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            vec![
                text(&r["id"]),
                time(&r["time"]),
                text(&r["principal"]),
                text(&r["action"]),
                format!("<span class=\"result {0}\">{0}</span>", text(&r["result"])),
                text(&r["resourceId"]),
            ]
        })
        .collect();
    body.push_str(&table(
        "Activity, newest first (up to 100)",
        &["#", "Time", "Principal", "Action", "Result", "Resource"],
        &rows,
    ));
    with_answer(
        page(list.status, "Activity", Some(&s), "/activity", &body),
        &list,
    )
}

async fn activity_csv(State(c): State<Console>, req: Request) -> Response {
    let (parts, s, _) = match signed_in(&c, req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let qs = activity_query(&query(&parts));
    let mut resp = c
        .raw(
            &parts,
            Some(&s.secret),
            Method::GET,
            &format!("/api/v1/activity?format=csv&{qs}"),
            None,
        )
        .await;
    secure_headers(&mut resp);
    resp
}
