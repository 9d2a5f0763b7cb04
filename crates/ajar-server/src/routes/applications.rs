//! Managed applications (role access): the JIT access policy fixed at creation, and eligible
//! roles granted to users or groups. Activation requests come with the request engine.

use super::paging::ByName;
use super::{Reply, group_scope, name, no_content, resource_id, subscription_scope};
use crate::AppState;
use crate::auth::Caller;
use crate::body::RawBody;
use crate::error::{AppError, AppResult};
use ajar_api::ErrorCode;
use ajar_api::wire::{
    Application, ApplicationBody, ApplicationProperties, EligibleRole, EligibleRoleBody,
    JitAccessPolicy, List, RequestFigures,
};
use ajar_core::id::{ResourceId, ResourceKind, Scope};
use ajar_core::rbac::{actions, parse_role_name};
use ajar_store::{ApplicationRow, EligibilityRow};
use axum::extract::{Path, State};
use axum::response::Response;
use serde_json::json;
use std::collections::HashMap;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_subscription_applications))
        .routes(routes!(list_group_applications))
        .routes(routes!(
            get_application,
            put_application,
            delete_application
        ))
        .routes(routes!(list_eligible_roles))
        .routes(routes!(
            get_eligible_role,
            put_eligible_role,
            delete_eligible_role
        ))
}

fn application_id(sub: &str, rg: &str, n: &str) -> AppResult<ResourceId> {
    resource_id(sub, rg, ResourceKind::Application, n)
}

fn stored_properties(row: &ApplicationRow) -> AppResult<ApplicationProperties> {
    serde_json::from_str(&row.properties).map_err(|e| {
        tracing::error!(application = %row.id, error = %e, "stored application unreadable");
        AppError::internal()
    })
}

fn view(row: &ApplicationRow) -> AppResult<Application> {
    Ok(Application {
        id: row.id.clone(),
        name: row.name.clone(),
        kind: "applications".to_owned(),
        properties: stored_properties(row)?,
        request_figures: None,
    })
}

/// [`view`] with request figures, for reads.
fn view_with(
    row: &ApplicationRow,
    figures: &mut HashMap<String, RequestFigures>,
) -> AppResult<Application> {
    let mut v = view(row)?;
    v.request_figures = Some(figures.remove(&row.id).unwrap_or_default());
    Ok(v)
}

#[utoipa::path(put, path = "/api/v1/subscriptions/{sub}/resourceGroups/{rg}/applications/{name}", tag = "applications",
    params(("sub" = String, Path), ("rg" = String, Path), ("name" = String, Path)),
    request_body = ApplicationBody,
    responses((status = 201, body = Application), (status = 200, body = Application), (status = 409, body = ajar_api::ErrorBody)))]
pub async fn put_application(
    State(state): State<AppState>,
    caller: Caller,
    Path((sub, rg, n)): Path<(String, String, String)>,
    body: RawBody,
) -> AppResult<Reply<Application>> {
    let id = application_id(&sub, &rg, &n)?;
    caller.require(actions::APPLICATIONS_WRITE, &id.scope())?;
    let body: ApplicationBody = body.parse()?;
    let wire = body
        .properties
        .jit_access_policy
        .clone()
        .unwrap_or_default();
    let policy = wire.to_domain()?;
    if body.properties.publisher_principals.len() > 100 {
        return Err(AppError::new(
            ErrorCode::ValidationFailed,
            "at most 100 publisher principals",
        )
        .at("properties.publisherPrincipals"));
    }
    let properties = ApplicationProperties {
        publisher_principals: body.properties.publisher_principals.clone(),
        jit_access_policy: Some(JitAccessPolicy::from_domain(&policy, &wire.jit_approvers)),
    };
    let json = serde_json::to_string(&properties).map_err(|_| AppError::internal())?;
    let mut tx = state.store.write().await?;
    if let Some(existing) = tx.application(&id.to_string()).await? {
        let old = stored_properties(&existing)?
            .jit_access_policy
            .unwrap_or_default()
            .to_domain()?;
        old.check_update(&policy)?;
    }
    let created = tx
        .put_application(
            &id.to_string(),
            id.subscription.as_str(),
            id.resource_group.as_str(),
            id.name.as_str(),
            &json,
            policy.enabled,
            state.clock.now(),
        )
        .await?;
    tx.commit_recorded(
        &caller
            .did(
                actions::APPLICATIONS_WRITE,
                &id.to_string(),
                state.clock.now(),
            )
            .with_details(json!({"created": created, "properties": properties})),
    )
    .await?;
    let row = ApplicationRow {
        id: id.to_string(),
        name: id.name.to_string(),
        properties: json,
        jit_enabled: policy.enabled,
    };
    Ok(Reply::created_or_ok(created, view(&row)?))
}

#[utoipa::path(get, path = "/api/v1/subscriptions/{sub}/resourceGroups/{rg}/applications/{name}", tag = "applications",
    params(("sub" = String, Path), ("rg" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = Application)))]
pub async fn get_application(
    State(state): State<AppState>,
    caller: Caller,
    Path((sub, rg, n)): Path<(String, String, String)>,
) -> AppResult<Reply<Application>> {
    let id = application_id(&sub, &rg, &n)?;
    caller.require(actions::APPLICATIONS_READ, &id.scope())?;
    let mut tx = state.store.read().await?;
    let row = tx
        .application(&id.to_string())
        .await?
        .ok_or_else(|| AppError::not_found(&id))?;
    let mut figures =
        super::figures::applications(&mut tx, &[row.id.as_str()], state.clock.now()).await?;
    Ok(Reply::ok(view_with(&row, &mut figures)?))
}

#[utoipa::path(delete, path = "/api/v1/subscriptions/{sub}/resourceGroups/{rg}/applications/{name}", tag = "applications",
    params(("sub" = String, Path), ("rg" = String, Path), ("name" = String, Path)),
    responses((status = 204)))]
pub async fn delete_application(
    State(state): State<AppState>,
    caller: Caller,
    Path((sub, rg, n)): Path<(String, String, String)>,
) -> AppResult<Response> {
    let id = application_id(&sub, &rg, &n)?;
    caller.require(actions::APPLICATIONS_DELETE, &id.scope())?;
    let mut tx = state.store.write().await?;
    // An elevation outlives nothing it was granted on: its roles and eligibilities go with the
    // application, so requests still under way must end first.
    if let Some(request) = tx.requests_under_way_at(&id.to_string()).await? {
        return Err(AppError::new(
            ErrorCode::Conflict,
            format!(
                "request {request} on this application is still under way; revoke or cancel it first"
            ),
        ));
    }
    if !tx.delete_application(&id.to_string()).await? {
        return Err(AppError::not_found(&id));
    }
    tx.commit_recorded(&caller.did(
        actions::APPLICATIONS_DELETE,
        &id.to_string(),
        state.clock.now(),
    ))
    .await?;
    Ok(no_content())
}

async fn list(
    state: &AppState,
    caller: &Caller,
    scope: Scope,
    paging: &ByName,
) -> AppResult<Reply<List<Application>>> {
    caller.require_within(actions::APPLICATIONS_READ, &scope)?;
    let (Some(sub), rg) = (scope.subscription(), scope.resource_group()) else {
        return Err(AppError::new(ErrorCode::InvalidParameter, "bad scope"));
    };
    let (sub, rg) = (sub.as_str(), rg.map(|r| r.as_str()));
    let mut tx = state.store.read().await?;
    // A page at a time in id order, keeping the applications the caller may read; figures
    // are read for the page's applications only.
    let mut gather = paging.gather();
    while gather.wants_more() {
        let after = gather.after().map(String::as_str);
        let batch = tx.applications_page(sub, rg, after, gather.batch()).await?;
        gather.take(
            batch,
            |row| row.id.clone(),
            |row| Scope::parse(&row.id).is_ok_and(|s| caller.may(actions::APPLICATIONS_READ, &s)),
        );
    }
    let (rows, next_link) = paging.finish(gather.into_items(), |row| row.id.clone());
    let ids: Vec<&str> = rows.iter().map(|row| row.id.as_str()).collect();
    let mut figures = super::figures::applications(&mut tx, &ids, state.clock.now()).await?;
    drop(tx);
    let value = rows
        .iter()
        .map(|row| view_with(row, &mut figures))
        .collect::<AppResult<_>>()?;
    Ok(Reply::ok(List { value, next_link }))
}

#[utoipa::path(get, path = "/api/v1/subscriptions/{sub}/applications", tag = "applications",
    params(("sub" = String, Path)), responses((status = 200, body = List<Application>)))]
pub async fn list_subscription_applications(
    State(state): State<AppState>,
    caller: Caller,
    Path(sub): Path<String>,
    paging: ByName,
) -> AppResult<Reply<List<Application>>> {
    list(&state, &caller, subscription_scope(&sub)?, &paging).await
}

#[utoipa::path(get, path = "/api/v1/subscriptions/{sub}/resourceGroups/{rg}/applications", tag = "applications",
    params(("sub" = String, Path), ("rg" = String, Path)), responses((status = 200, body = List<Application>)))]
pub async fn list_group_applications(
    State(state): State<AppState>,
    caller: Caller,
    Path((sub, rg)): Path<(String, String)>,
    paging: ByName,
) -> AppResult<Reply<List<Application>>> {
    list(&state, &caller, group_scope(&sub, &rg)?, &paging).await
}

#[utoipa::path(put, path = "/api/v1/subscriptions/{sub}/resourceGroups/{rg}/applications/{name}/eligibleRoles/{id}",
    tag = "applications",
    params(("sub" = String, Path), ("rg" = String, Path), ("name" = String, Path), ("id" = String, Path)),
    request_body = EligibleRoleBody,
    responses((status = 201, body = EligibleRole), (status = 200, body = EligibleRole)))]
pub async fn put_eligible_role(
    State(state): State<AppState>,
    caller: Caller,
    Path((sub, rg, n, eid)): Path<(String, String, String, String)>,
    body: RawBody,
) -> AppResult<Reply<EligibleRole>> {
    let app = application_id(&sub, &rg, &n)?;
    caller.require(actions::APPLICATIONS_WRITE, &app.scope())?;
    let eid = name("id", &eid)?;
    let body: EligibleRoleBody = body.parse()?;
    let role = parse_role_name(&body.role_definition)
        .map_err(|e| AppError::from(e.at("roleDefinition")))?;
    let mut tx = state.store.write().await?;
    // On an application without JIT the role is held standing (the vendor's permanent
    // authorization); with JIT it must be activated.
    if tx.application(&app.to_string()).await?.is_none() {
        return Err(AppError::not_found(&app));
    }
    crate::eligibility::require_role_at(&mut tx, &app.to_string(), &role).await?;
    let e = EligibilityRow {
        application_id: app.to_string(),
        id: eid.to_string(),
        principal: body.principal.to_string(),
        role_name: role,
        created_at: state.clock.now(),
    };
    let created = tx.put_eligibility(&e).await?;
    let stored = tx.eligibility(&e.application_id, &e.id).await?.unwrap_or(e);
    tx.commit_recorded(
        &caller
            .did(
                actions::APPLICATIONS_WRITE,
                &app.to_string(),
                state.clock.now(),
            )
            .with_details(json!({
                "eligibleRole": stored.id,
                "created": created,
                "principal": stored.principal,
                "roleDefinition": stored.role_name,
            })),
    )
    .await?;
    Ok(Reply::created_or_ok(
        created,
        crate::eligibility::view(stored),
    ))
}

#[utoipa::path(get, path = "/api/v1/subscriptions/{sub}/resourceGroups/{rg}/applications/{name}/eligibleRoles/{id}",
    tag = "applications",
    params(("sub" = String, Path), ("rg" = String, Path), ("name" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = EligibleRole)))]
pub async fn get_eligible_role(
    State(state): State<AppState>,
    caller: Caller,
    Path((sub, rg, n, eid)): Path<(String, String, String, String)>,
) -> AppResult<Reply<EligibleRole>> {
    let app = application_id(&sub, &rg, &n)?;
    caller.require(actions::APPLICATIONS_READ, &app.scope())?;
    let mut tx = state.store.read().await?;
    let e = tx
        .eligibility(&app.to_string(), &eid)
        .await?
        .ok_or_else(|| AppError::not_found(format!("eligible role {eid}")))?;
    Ok(Reply::ok(crate::eligibility::view(e)))
}

#[utoipa::path(delete, path = "/api/v1/subscriptions/{sub}/resourceGroups/{rg}/applications/{name}/eligibleRoles/{id}",
    tag = "applications",
    params(("sub" = String, Path), ("rg" = String, Path), ("name" = String, Path), ("id" = String, Path)),
    responses((status = 204)))]
pub async fn delete_eligible_role(
    State(state): State<AppState>,
    caller: Caller,
    Path((sub, rg, n, eid)): Path<(String, String, String, String)>,
) -> AppResult<Response> {
    let app = application_id(&sub, &rg, &n)?;
    caller.require(actions::APPLICATIONS_WRITE, &app.scope())?;
    let mut tx = state.store.write().await?;
    if !tx.delete_eligibility(&app.to_string(), &eid).await? {
        return Err(AppError::not_found(format!("eligible role {eid}")));
    }
    tx.commit_recorded(
        &caller
            .did(
                actions::APPLICATIONS_WRITE,
                &app.to_string(),
                state.clock.now(),
            )
            .with_details(json!({"eligibleRole": eid, "deleted": true})),
    )
    .await?;
    Ok(no_content())
}

#[utoipa::path(get, path = "/api/v1/subscriptions/{sub}/resourceGroups/{rg}/applications/{name}/eligibleRoles",
    tag = "applications",
    params(("sub" = String, Path), ("rg" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = List<EligibleRole>)))]
pub async fn list_eligible_roles(
    State(state): State<AppState>,
    caller: Caller,
    Path((sub, rg, n)): Path<(String, String, String)>,
    paging: ByName,
) -> AppResult<Reply<List<EligibleRole>>> {
    let app = application_id(&sub, &rg, &n)?;
    caller.require(actions::APPLICATIONS_READ, &app.scope())?;
    let mut tx = state.store.read().await?;
    if tx.application(&app.to_string()).await?.is_none() {
        return Err(AppError::not_found(&app));
    }
    let rows = tx
        .eligibilities_page(&app.to_string(), paging.after.as_deref(), paging.limit())
        .await?;
    let (rows, next_link) = paging.finish(rows, |e| e.id.clone());
    let value = rows.into_iter().map(crate::eligibility::view).collect();
    Ok(Reply::ok(List { value, next_link }))
}
