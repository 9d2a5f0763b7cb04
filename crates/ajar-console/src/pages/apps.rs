//! Applications: their JIT policy, the actions they declare and their own roles, eligible roles
//! and role activation.

use super::*;
use crate::html::{self, enc, error_summary, field_error, joined, or_dash, page, table, time};
use crate::{Console, Session};
use ajar_api::wire::{
    Application, ApplicationActions, ApplicationRole, EligibleRole, JitAccessPolicy,
};
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
    let declared = c
        .call(
            parts,
            Some(&s.secret),
            Method::GET,
            &format!("/api/v1{id}/actions"),
            None,
        )
        .await;
    let declared = declared
        .parse::<ApplicationActions>()
        .ok_or_else(|| declared.error().map(|(m, _)| m).unwrap_or_default());
    let own = c
        .call(
            parts,
            Some(&s.secret),
            Method::GET,
            &format!("/api/v1{id}/roleDefinitions?top=1000"),
            None,
        )
        .await;
    let own_roles = own
        .parse::<List<ApplicationRole>>()
        .map(|l| l.value)
        .ok_or_else(|| own.error().map(|(m, _)| m).unwrap_or_default());
    // Only the roles the signed-in user may activate here are offered.
    let mine = c
        .call(
            parts,
            Some(&s.secret),
            Method::GET,
            &format!(
                "/api/v1/me/eligibleRoles?applicationId={}&top=1000",
                enc(id)
            ),
            None,
        )
        .await;
    let mine_error = mine.error().map(|(m, _)| m);
    let mut my_roles: Vec<String> = mine
        .parse::<List<EligibleRole>>()
        .map(|l| l.value)
        .unwrap_or_default()
        .into_iter()
        .map(|r| r.role_definition)
        .collect();
    my_roles.sort_unstable();
    my_roles.dedup();
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
    let role_rows: Vec<Vec<Markup>> = own_roles
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|r| {
            vec![
                html! { (r.name) },
                html! { (joined(&r.actions)) },
                html! { (joined(&r.allowed_actions)) },
                html! { (if r.description.is_empty() { "-" } else { r.description.as_str() }) },
            ]
        })
        .collect();
    let role_names: Vec<&str> = own_roles
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    let (namespace, actions) = declared
        .as_ref()
        .map(|d| (d.namespace.clone(), d.actions.clone()))
        .unwrap_or_default();
    let action_rows: Vec<Vec<Markup>> = actions
        .iter()
        .map(|a| vec![html! { (namespace) }, html! { (a) }])
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
                "namespace",
                "actions",
                "role",
                "patterns",
                "description",
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
        @match &declared {
            Ok(_) => (table("Declared actions", &["Namespace", "Action"], &action_rows)),
            Err(m) => (html::message("error", m)),
        }
        form method="post" action="/apps/actions" class="card" {
            (html::csrf(s))
            h2 { "Declare actions" }
            input type="hidden" name="app" value=(id);
            p class="hint" { "The actions the application checks with ajar. Its roles are written over them; saving replaces the list." }
            label for="x-namespace" { "Namespace" }
            input id="x-namespace" name="namespace" required value=(namespace) placeholder="crm" aria-describedby="x-namespace-help";
            small id="x-namespace-help" { "Letters, digits, - or _; not ajar" }
            (field_error(&error, "namespace"))
            label for="x-actions" { "Actions" }
            textarea id="x-actions" name="actions" rows="4" aria-describedby="x-actions-help" { (actions.join("\n")) }
            small id="x-actions-help" { "One per line or separated by commas, each starting with the namespace, e.g. crm.orders/read" }
            (field_error(&error, "actions"))
            button type="submit" { "Save actions" }
        }
        @match &own_roles {
            Ok(_) => (table("Roles", &["Name", "Patterns", "Allowed actions", "Description"], &role_rows)),
            Err(m) => (html::message("error", m)),
        }
        form method="post" action="/apps/roles" class="card" {
            (html::csrf(s))
            h2 { "Add or replace a role" }
            input type="hidden" name="app" value=(id);
            label for="r-name" { "Name" }
            input id="r-name" name="name" required placeholder="Contributor" aria-describedby="r-name-help";
            small id="r-name-help" { "A role of the same name is replaced" }
            (field_error(&error, "role"))
            label for="r-patterns" { "Patterns" }
            textarea id="r-patterns" name="patterns" rows="3" required aria-describedby="r-patterns-help" {}
            small id="r-patterns-help" { "One per line or separated by commas; * matches any run of characters, e.g. crm.orders/*" }
            (field_error(&error, "patterns"))
            label for="r-description" { "Description" }
            input id="r-description" name="description";
            (field_error(&error, "description"))
            button type="submit" { "Save role" }
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
            input id="e-role" name="role" required list="e-roles";
            datalist id="e-roles" {
                @for name in &role_names { option value=(name); }
            }
            (field_error(&error, "roleDefinition"))
            button type="submit" { "Add" }
        }
        @if jit {
            form method="post" action="/apps/activate" class="card" {
                (html::csrf(s))
                h2 { "Activate a role" }
                input type="hidden" name="app" value=(id);
                @if let Some(m) = &mine_error {
                    (html::message("error", m))
                } @else if my_roles.is_empty() {
                    p class="hint" id="a-none" { "You are not eligible for a role here." }
                } @else {
                    label for="a-role" { "Role" }
                    select id="a-role" name="role" {
                        @for role in &my_roles { option { (role) } }
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

/// Values typed one per line or separated by commas.
fn listed(typed: &str) -> Vec<String> {
    typed
        .split(['\n', ','])
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect()
}

/// An API error whose target starts with `from`, retargeted at the form field `to` (two forms
/// of the page send a field the API calls alike).
fn retarget(
    error: Option<(String, Option<String>)>,
    from: &str,
    to: &str,
) -> Option<(String, Option<String>)> {
    error.map(|(m, t)| {
        let t = t.map(|t| match t.strip_prefix(from) {
            Some(rest) => format!("{to}{rest}"),
            None => t,
        });
        (m, t)
    })
}

pub(super) async fn app_actions(State(c): State<Console>, req: Request) -> Response {
    let (parts, s, f) = match posted(&c, req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let app = one(&f, "app").unwrap_or_default();
    let body = json!({
        "namespace": one(&f, "namespace").unwrap_or_default(),
        "actions": listed(&one(&f, "actions").unwrap_or_default()),
    });
    let a = c
        .call(
            &parts,
            Some(&s.secret),
            Method::PUT,
            &format!("/api/v1{app}/actions"),
            Some(&body),
        )
        .await;
    if a.error().is_some() {
        let resp = app_view_page(&c, &parts, &s, &app, a.status, a.error()).await;
        return with_answer(resp, &a);
    }
    redirect(&format!("/apps/view?id={}", enc(&app)))
}

pub(super) async fn app_role(State(c): State<Console>, req: Request) -> Response {
    let (parts, s, f) = match posted(&c, req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let app = one(&f, "app").unwrap_or_default();
    // The name goes into the API's path: one that cannot be a role's is refused here.
    let name = match ajar_core::rbac::parse_role_name(&one(&f, "name").unwrap_or_default()) {
        Ok(name) => name,
        Err(e) => {
            let error = Some((e.message, Some("role".to_owned())));
            return app_view_page(&c, &parts, &s, &app, StatusCode::BAD_REQUEST, error).await;
        }
    };
    let body = object([
        (
            "actions",
            Some(json!(listed(&one(&f, "patterns").unwrap_or_default()))),
        ),
        ("description", one(&f, "description").map(Value::from)),
    ]);
    let a = c
        .call(
            &parts,
            Some(&s.secret),
            Method::PUT,
            &format!("/api/v1{app}/roleDefinitions/{name}"),
            Some(&body),
        )
        .await;
    if a.error().is_some() {
        // The role's patterns are `actions` to the API, `patterns` on the page.
        let error = retarget(a.error(), "actions", "patterns");
        let resp = app_view_page(&c, &parts, &s, &app, a.status, error).await;
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
