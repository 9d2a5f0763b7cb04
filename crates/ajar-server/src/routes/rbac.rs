//! Role definitions (built-in and custom) and role assignments at a scope.

use super::paging::{ByName, OldestFirst, time_key};
use super::{Reply, name, no_content};
use crate::AppState;
use crate::auth::Caller;
use crate::body::RawBody;
use crate::error::{AppError, AppResult};
use ajar_api::ErrorCode;
use ajar_api::wire::{
    List, RoleAssignment, RoleAssignmentBody, RoleDefinition, RoleDefinitionBody,
};
use ajar_core::id::Scope;
use ajar_core::rbac::{actions, built_in_roles, is_built_in, parse_role_name};
use ajar_store::{AssignmentRow, RoleRow};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_roles))
        .routes(routes!(get_role, put_role, delete_role))
        .routes(routes!(list_assignments))
        .routes(routes!(get_assignment, put_assignment, delete_assignment))
}

fn built_in_view(r: ajar_core::rbac::RoleDefinition) -> RoleDefinition {
    RoleDefinition {
        name: r.name,
        description: r.description,
        actions: r.actions.iter().map(|a| a.to_string()).collect(),
        built_in: true,
    }
}

fn custom_view(r: RoleRow) -> RoleDefinition {
    RoleDefinition {
        name: r.name,
        description: r.description,
        actions: r.actions,
        built_in: false,
    }
}

#[utoipa::path(get, path = "/api/v1/roleDefinitions", tag = "rbac",
    responses((status = 200, body = List<RoleDefinition>)))]
pub async fn list_roles(
    State(state): State<AppState>,
    caller: Caller,
    paging: ByName,
) -> AppResult<Reply<List<RoleDefinition>>> {
    caller.require_within(actions::RBAC_READ, &Scope::Root)?;
    let mut tx = state.store.read().await?;
    // A page of custom roles from the store, merged with the built-in roles, which live in
    // code (a short list, paged in memory): the page's first items are among both's first.
    let custom = tx
        .roles_page(paging.after.as_deref(), paging.limit())
        .await?;
    let value = built_in_roles()
        .into_iter()
        .map(built_in_view)
        .chain(custom.into_iter().map(custom_view))
        .collect();
    Ok(Reply::ok(paging.list(value, |r| r.name.clone())))
}

#[utoipa::path(get, path = "/api/v1/roleDefinitions/{name}", tag = "rbac",
    params(("name" = String, Path)), responses((status = 200, body = RoleDefinition)))]
pub async fn get_role(
    State(state): State<AppState>,
    caller: Caller,
    Path(role): Path<String>,
) -> AppResult<Reply<RoleDefinition>> {
    caller.require_within(actions::RBAC_READ, &Scope::Root)?;
    if let Some(r) = built_in_roles().into_iter().find(|r| r.name == role) {
        return Ok(Reply::ok(built_in_view(r)));
    }
    let mut tx = state.store.read().await?;
    let row = tx
        .role(&role)
        .await?
        .ok_or_else(|| AppError::not_found(format!("role definition {role}")))?;
    Ok(Reply::ok(custom_view(row)))
}

#[utoipa::path(put, path = "/api/v1/roleDefinitions/{name}", tag = "rbac",
    params(("name" = String, Path)), request_body = RoleDefinitionBody,
    responses((status = 201, body = RoleDefinition), (status = 200, body = RoleDefinition)))]
pub async fn put_role(
    State(state): State<AppState>,
    caller: Caller,
    Path(role): Path<String>,
    body: RawBody,
) -> AppResult<Reply<RoleDefinition>> {
    caller.require(actions::RBAC_WRITE, &Scope::Root)?;
    let role = parse_role_name(&role).map_err(|e| AppError::parameter("name", e))?;
    let body: RoleDefinitionBody = body.parse()?;
    if is_built_in(&role) {
        return Err(AppError::new(
            ErrorCode::Conflict,
            format!("{role} is a built-in role and cannot be changed"),
        )
        .at("name"));
    }
    if body.actions.is_empty() {
        return Err(AppError::new(
            ErrorCode::ValidationFailed,
            "a role needs at least one action",
        )
        .at("actions"));
    }
    let row = RoleRow {
        name: role,
        description: body.description.unwrap_or_default(),
        actions: body.actions.iter().map(|a| a.as_str().to_owned()).collect(),
    };
    let mut tx = state.store.write().await?;
    let created = tx.put_role(&row, state.clock.now()).await?;
    tx.commit_recorded(
        &caller
            .did(
                actions::RBAC_WRITE,
                &format!("/roleDefinitions/{}", row.name),
                state.clock.now(),
            )
            // The log keeps the actions as JSON text.
            .with_details(json!({
                "created": created,
                "actions": serde_json::to_string(&row.actions).ok(),
            })),
    )
    .await?;
    Ok(Reply::created_or_ok(created, custom_view(row)))
}

#[utoipa::path(delete, path = "/api/v1/roleDefinitions/{name}", tag = "rbac",
    params(("name" = String, Path)), responses((status = 204), (status = 409, body = ajar_api::ErrorBody)))]
pub async fn delete_role(
    State(state): State<AppState>,
    caller: Caller,
    Path(role): Path<String>,
) -> AppResult<Response> {
    caller.require(actions::RBAC_WRITE, &Scope::Root)?;
    if is_built_in(&role) {
        return Err(AppError::new(
            ErrorCode::Conflict,
            format!("{role} is a built-in role and cannot be deleted"),
        )
        .at("name"));
    }
    let mut tx = state.store.write().await?;
    if let Some(user) = tx.ajar_role_use(&role).await? {
        return Err(AppError::new(
            ErrorCode::Conflict,
            format!("role {role} is used by {user}; remove that first"),
        )
        .at("name"));
    }
    if !tx.delete_role(&role).await? {
        return Err(AppError::not_found(format!("role definition {role}")));
    }
    tx.commit_recorded(&caller.did(
        actions::RBAC_WRITE,
        &format!("/roleDefinitions/{role}"),
        state.clock.now(),
    ))
    .await?;
    Ok(no_content())
}

fn assignment_view(a: AssignmentRow) -> RoleAssignment {
    RoleAssignment {
        id: a.id,
        principal: a.principal,
        role_definition: a.role_name,
        scope: a.scope,
        created_at: a.created_at,
    }
}

#[derive(Debug, Deserialize)]
pub struct AssignmentQuery {
    scope: Option<String>,
    principal: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/roleAssignments", tag = "rbac",
    params(("scope" = Option<String>, Query, description = "default /; lists assignments at or beneath it"),
           ("principal" = Option<String>, Query)),
    responses((status = 200, body = List<RoleAssignment>)))]
pub async fn list_assignments(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<AssignmentQuery>,
    paging: OldestFirst,
) -> AppResult<Reply<List<RoleAssignment>>> {
    let scope = match &query.scope {
        Some(s) => Scope::parse(s).map_err(|e| AppError::parameter("scope", e))?,
        None => Scope::Root,
    };
    caller.require_within(actions::RBAC_READ, &scope)?;
    let mut tx = state.store.read().await?;
    let (scope, principal) = (scope.to_string(), query.principal.as_deref());
    // Oldest first a batch at a time, keeping the assignments the caller may read.
    let mut gather = paging.gather();
    while gather.wants_more() {
        let batch = tx
            .assignments_page(&scope, principal, gather.after(), gather.batch())
            .await?;
        gather.take(
            batch,
            |a| time_key(a.created_at, &a.id),
            |a| Scope::parse(&a.scope).is_ok_and(|s| caller.may(actions::RBAC_READ, &s)),
        );
    }
    let (rows, next_link) = paging.finish(gather.into_items(), |a| time_key(a.created_at, &a.id));
    let value = rows.into_iter().map(assignment_view).collect();
    Ok(Reply::ok(List { value, next_link }))
}

#[utoipa::path(get, path = "/api/v1/roleAssignments/{id}", tag = "rbac",
    params(("id" = String, Path)), responses((status = 200, body = RoleAssignment)))]
pub async fn get_assignment(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> AppResult<Reply<RoleAssignment>> {
    let mut tx = state.store.read().await?;
    let row = tx
        .assignment(&id)
        .await?
        .ok_or_else(|| AppError::not_found(format!("role assignment {id}")))?;
    caller.require(actions::RBAC_READ, &Scope::parse(&row.scope)?)?;
    Ok(Reply::ok(assignment_view(row)))
}

#[utoipa::path(put, path = "/api/v1/roleAssignments/{id}", tag = "rbac",
    params(("id" = String, Path)), request_body = RoleAssignmentBody,
    responses((status = 201, body = RoleAssignment), (status = 200, body = RoleAssignment)))]
pub async fn put_assignment(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: RawBody,
) -> AppResult<Reply<RoleAssignment>> {
    let id = name("id", &id)?.to_string();
    let body: RoleAssignmentBody = body.parse()?;
    caller.require(actions::RBAC_WRITE, &body.scope)?;
    let mut tx = state.store.write().await?;
    if let Some(old) = tx.assignment(&id).await? {
        caller.require(actions::RBAC_WRITE, &Scope::parse(&old.scope)?)?;
    }
    if !is_built_in(&body.role_definition) && tx.role(&body.role_definition).await?.is_none() {
        return Err(AppError::new(
            ErrorCode::ValidationFailed,
            format!("role definition {:?} does not exist", body.role_definition),
        )
        .at("roleDefinition"));
    }
    let row = AssignmentRow {
        id,
        principal: body.principal.to_string(),
        role_name: body.role_definition,
        scope: body.scope.to_string(),
        created_at: state.clock.now(),
    };
    let created = tx.put_assignment(&row, &caller.principal).await?;
    let stored = tx.assignment(&row.id).await?.unwrap_or(row);
    tx.commit_recorded(
        &caller
            .did(
                actions::RBAC_WRITE,
                &assignment_resource(&stored),
                state.clock.now(),
            )
            .with_details(json!({
                "created": created,
                "principal": stored.principal,
                "roleDefinition": stored.role_name,
                "scope": stored.scope,
            })),
    )
    .await?;
    Ok(Reply::created_or_ok(created, assignment_view(stored)))
}

#[utoipa::path(delete, path = "/api/v1/roleAssignments/{id}", tag = "rbac",
    params(("id" = String, Path)), responses((status = 204)))]
pub async fn delete_assignment(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let mut tx = state.store.write().await?;
    let row = tx
        .assignment(&id)
        .await?
        .ok_or_else(|| AppError::not_found(format!("role assignment {id}")))?;
    caller.require(actions::RBAC_WRITE, &Scope::parse(&row.scope)?)?;
    tx.delete_assignment(&id).await?;
    tx.commit_recorded(
        &caller
            .did(
                actions::RBAC_WRITE,
                &assignment_resource(&row),
                state.clock.now(),
            )
            .with_details(json!({
                "deleted": true,
                "principal": row.principal,
                "roleDefinition": row.role_name,
            })),
    )
    .await?;
    Ok(no_content())
}

/// The activity log's id of an assignment: beneath its scope, so scope filters find it.
fn assignment_resource(a: &AssignmentRow) -> String {
    format!(
        "{}/providers/ajar.rbac/roleAssignments/{}",
        a.scope.trim_end_matches('/'),
        a.id
    )
}
