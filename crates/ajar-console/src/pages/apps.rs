//! Applications: their JIT policy, eligible roles and role activation.

use super::*;
use crate::html::{self, enc, error_summary, field_error, joined, or_dash, page, table, time};
use crate::{Console, Session};
use ajar_api::wire::{Application, EligibleRole, JitAccessPolicy};
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
    let picker = scope_picker(c, parts, s, "/apps", &scope, html! {}).await;
    let paging = Paging::of(q);
    let list = if scope.is_empty() {
        None
    } else {
        Some(
            c.call(
                parts,
                Some(&s.secret),
                Method::GET,
                &format!("/api/v1{scope}/applications?{}", paging.api(1000)),
                None,
            )
            .await,
        )
    };
    let listing = list.as_ref().map(|list| {
        let page_of = list.parse::<List<Application>>();
        let rows: Vec<Vec<Markup>> = page_of
            .as_ref()
            .map(|l| l.value.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|app| {
                let p = app.properties.jit_access_policy.as_ref();
                let figures = app.request_figures.as_ref();
                vec![
                    html! { a href={ "/apps/view?id=" (enc(&app.id)) } { (app.name) } },
                    html! {
                        @if p.is_some_and(|p| p.jit_access_enabled == Some(true)) { "on" }
                        @else { "off (standing access)" }
                    },
                    html! { (or_dash(p.and_then(|p| p.jit_approval_mode.as_ref()))) },
                    html! { (or_dash(p.and_then(|p| p.maximum_jit_access_duration).map(html::duration))) },
                    html! { (or_dash(figures.map(|f| f.approved_requests_last7_days))) },
                    time(figures.and_then(|f| f.last_access_at.as_ref())),
                    html! { (or_dash(figures.and_then(|f| f.last_user.as_ref()))) },
                ]
            })
            .collect();
        html! {
            @if let Some((m, _)) = list.error() { (html::message("error", &m)) }
            (table(
                "Applications",
                &["Name", "JIT", "Approval", "Maximum", "Approved (7 days)", "Last activation", "Last user"],
                &rows,
            ))
            (paging.links(
                &format!("/apps?scope={}", enc(&scope)),
                page_of.as_ref().and_then(|l| l.next_link.as_deref()),
            ))
        }
    });
    let example = if scope.is_empty() {
        "/subscriptions/s1"
    } else {
        &scope
    };
    let body = html! {
        (picker)
        @if let Some(listing) = listing { (listing) }
        form method="post" action="/apps/save" class="card" {
            (html::csrf(s))
            h2 { "New application" }
            (error_summary(&error, &["id", "jitApprovers", "maximumJitAccessDuration", "jitApprovalThreshold"]))
            label for="id" { "Resource id" }
            input id="id" name="id" required placeholder={ (example) "/resourceGroups/rg1/applications/crm" };
            (field_error(&error, "id"))
            label class="check" {
                input type="checkbox" name="jit" value="on" checked;
                " Just-in-time access (cannot be changed after creation)"
            }
            (policy_fields(&JitAccessPolicy::default(), &error))
            button type="submit" { "Create" }
        }
    };
    let resp = page(status, "Applications", Some(s), "/apps", body);
    match &list {
        Some(l) => with_answer(resp, l),
        None => resp,
    }
}

/// The JIT policy's editable fields.
pub(super) fn policy_fields(
    p: &JitAccessPolicy,
    error: &Option<(String, Option<String>)>,
) -> Markup {
    let manual = p
        .jit_approval_mode
        .as_ref()
        .is_some_and(|m| m == "ManualApprove");
    let approvers: Vec<String> = p
        .jit_approvers
        .iter()
        .map(|a| format!("{}:{}", a.kind, a.id))
        .collect();
    let max = p
        .maximum_jit_access_duration
        .map(html::duration)
        .unwrap_or_default();
    html! {
        label for="mode" { "Approval" }
        select id="mode" name="mode" {
            option value="AutoApprove" selected[!manual] { "Automatic" }
            option value="ManualApprove" selected[manual] { "By approvers" }
        }
        label for="approvers" { "Approvers" }
        input id="approvers" name="approvers" value=(approvers.join(", ")) aria-describedby="approvers-help";
        small id="approvers-help" { "user:NAME or group:NAME, separated by commas" }
        (field_error(error, "jitApprovers"))
        label for="threshold" { "Approvals needed" }
        input id="threshold" name="threshold" type="number" min="1" value=(p.jit_approval_threshold.unwrap_or(1));
        (field_error(error, "jitApprovalThreshold"))
        label for="max" { "Maximum activation" }
        input id="max" name="max" value=(max) placeholder="8 h" aria-describedby="max-help";
        small id="max-help" { "In hours and minutes, e.g. 8 h or 1 h 30 min" }
        (field_error(error, "maximumJitAccessDuration"))
    }
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
    // An existing application keeps its JIT switch and its publishers.
    let found = existing.ok().then(|| existing.parse::<Application>());
    let jit_enabled = match &found {
        Some(app) => json!(
            app.as_ref()
                .and_then(|a| a.properties.jit_access_policy.as_ref())
                .and_then(|p| p.jit_access_enabled)
        ),
        None => json!(one(&f, "jit").is_some()),
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
    let policy = object([
        (
            "jitApprovalMode",
            Some(json!(
                one(&f, "mode").unwrap_or_else(|| "AutoApprove".into())
            )),
        ),
        ("jitAccessEnabled", Some(jit_enabled)),
        ("jitApprovers", Some(Value::from(approvers))),
        (
            "jitApprovalThreshold",
            one(&f, "threshold")
                .and_then(|t| t.parse::<u32>().ok())
                .map(Value::from),
        ),
        (
            "maximumJitAccessDuration",
            one(&f, "max").map(|m| Value::from(html::iso_duration(&m))),
        ),
    ]);
    let props = object([
        ("jitAccessPolicy", Some(policy)),
        (
            "publisherPrincipals",
            found.map(|app| json!(app.map(|a| a.properties.publisher_principals))),
        ),
    ]);
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
                html::message("error", &m),
            ),
            &a,
        );
    }
    let app = a.parse::<Application>();
    let policy = app
        .as_ref()
        .and_then(|x| x.properties.jit_access_policy.clone())
        .unwrap_or_default();
    let jit = policy.jit_access_enabled == Some(true);
    let publishers = app.as_ref().map_or_else(
        || "-".to_owned(),
        |x| joined(&x.properties.publisher_principals),
    );
    let paging = Paging::of(&query(parts));
    let (roles, next_link) = c
        .call(
            parts,
            Some(&s.secret),
            Method::GET,
            &format!("/api/v1{id}/eligibleRoles?{}", paging.api(1000)),
            None,
        )
        .await
        .parse::<List<EligibleRole>>()
        .map(|l| (l.value, l.next_link))
        .unwrap_or_default();
    let mut role_names: Vec<String> = roles
        .iter()
        .map(|r| r.role_definition.to_string())
        .collect();
    role_names.sort_unstable();
    role_names.dedup();
    let rows: Vec<Vec<Markup>> = roles
        .iter()
        .map(|r| {
            vec![
                html! { (r.id) },
                html! { (r.principal) },
                html! { (r.role_definition) },
            ]
        })
        .collect();
    let body = html! {
        p {
            (id) " · publishers: " (publishers) " · JIT "
            @if jit { "on" } @else { "off: its eligible roles are standing access" }
        }
        (error_summary(
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
        ))
        form method="post" action="/apps/save" class="card" {
            (html::csrf(s))
            h2 { "Access policy" }
            input type="hidden" name="id" value=(id);
            p class="hint" { "Whether the application uses JIT is chosen when it is created and cannot change: switching would turn activations into standing access or the reverse." }
            (policy_fields(&policy, &error))
            button type="submit" { "Save" }
        }
        (table("Eligible roles", &["Id", "Principal", "Role"], &rows))
        (paging.links(&format!("/apps/view?id={}", enc(id)), next_link.as_deref()))
        form method="post" action="/apps/eligible" class="card inline-fields" {
            (html::csrf(s))
            h2 { "Add an eligible role" }
            input type="hidden" name="app" value=(id);
            label for="e-principal" { "Principal or group:NAME" }
            input id="e-principal" name="principal" required;
            (field_error(&error, "principal"))
            label for="e-role" { "Role" }
            input id="e-role" name="role" required value="Contributor";
            (field_error(&error, "roleDefinition"))
            button type="submit" { "Add" }
        }
        @if jit {
            form method="post" action="/apps/activate" class="card" {
                (html::csrf(s))
                h2 { "Activate a role" }
                input type="hidden" name="app" value=(id);
                label for="a-role" { "Role" }
                select id="a-role" name="role" {
                    @for role in &role_names { option { (role) } }
                }
                (field_error(&error, "roles"))
                label for="a-start" { "Start (empty: now, UTC)" }
                input id="a-start" name="start" type="datetime-local";
                label for="a-duration" { "Duration" }
                input id="a-duration" name="duration" value="2 h" required aria-describedby="a-duration-help";
                small id="a-duration-help" { "e.g. 2 h, 90 min or 1 h 30 min" }
                (field_error(&error, "duration"))
                label for="a-reason" { "Justification" }
                textarea id="a-reason" name="reason" rows="2" {}
                button type="submit" { "Activate" }
            }
        }
    };
    let title = app.as_ref().map_or("Application", |x| x.name.as_str());
    with_answer(page(status, title, Some(s), "/apps", body), &a)
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
    let start = one(&f, "start").map(|start| {
        if start.len() == 16 {
            format!("{start}:00Z")
        } else {
            format!("{start}Z")
        }
    });
    let scheduling = object([
        ("type", Some(json!("Once"))),
        (
            "duration",
            Some(json!(html::iso_duration(
                &one(&f, "duration").unwrap_or_default()
            ))),
        ),
        ("startTime", start.map(Value::from)),
    ]);
    let properties = object([
        ("applicationResourceId", Some(json!(app))),
        (
            "jitAuthorizationPolicies",
            Some(json!([{
                "principalId": s.principal,
                "roleDefinitionId": one(&f, "role").unwrap_or_default()
            }])),
        ),
        ("jitSchedulingPolicy", Some(scheduling)),
        ("justification", one(&f, "reason").map(Value::from)),
    ]);
    let body = json!({ "properties": properties });
    let Some(name) = random_hex(8) else {
        return html::unavailable();
    };
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
