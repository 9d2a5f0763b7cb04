//! Applications: their JIT policy, eligible roles and role activation.

use super::*;
use crate::html::{self, enc, error_summary, escape, field_error, page, table, text, time};
use crate::{Console, Session};
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

pub(super) async fn apps(State(c): State<Console>, req: Request) -> Response {
    let (parts, s, _) = match signed_in(&c, req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    apps_page(&c, &parts, &s, &query(&parts), StatusCode::OK, None).await
}

pub(super) async fn apps_page(
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
pub(super) fn policy_fields(p: &Value, error: &Option<(String, Option<String>)>) -> String {
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

pub(super) async fn app_save(State(c): State<Console>, req: Request) -> Response {
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

pub(super) async fn app_view(State(c): State<Console>, req: Request) -> Response {
    let (parts, s, _) = match signed_in(&c, req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let id = one(&query(&parts), "id").unwrap_or_default();
    app_view_page(&c, &parts, &s, &id, StatusCode::OK, None).await
}

pub(super) async fn app_view_page(
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

pub(super) async fn app_eligible(State(c): State<Console>, req: Request) -> Response {
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

pub(super) async fn app_activate(State(c): State<Console>, req: Request) -> Response {
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
