//! Local groups: named sets of principals that role assignments, eligible roles and approvers
//! can name as `group:NAME`. Membership is part of access control, so it takes the RBAC actions
//! at the root scope. (Groups from an identity provider arrive with OIDC sign-in.)

use super::paging::ByName;
use super::{Reply, name, no_content};
use crate::AppState;
use crate::auth::Caller;
use crate::body::RawBody;
use crate::error::{AppError, AppResult};
use ajar_api::ErrorCode;
use ajar_api::wire::{Group, GroupBody, List};
use ajar_core::id::Scope;
use ajar_core::rbac::actions;
use axum::extract::{Path, State};
use axum::response::Response;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The most members a group may have.
const MAX_MEMBERS: usize = 10_000;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_groups))
        .routes(routes!(get_group, put_group, delete_group))
}

#[utoipa::path(get, path = "/api/v1/groups", tag = "rbac",
    responses((status = 200, body = List<Group>)))]
pub async fn list_groups(
    State(state): State<AppState>,
    caller: Caller,
    paging: ByName,
) -> AppResult<Reply<List<Group>>> {
    caller.require(actions::RBAC_READ, &Scope::Root)?;
    let mut tx = state.store.read().await?;
    let rows = tx
        .groups_page(paging.after.as_deref(), paging.limit())
        .await?;
    let (rows, next_link) = paging.finish(rows, |(name, _)| name.clone());
    let value = rows
        .into_iter()
        .map(|(name, members)| Group { name, members })
        .collect();
    Ok(Reply::ok(List { value, next_link }))
}

#[utoipa::path(get, path = "/api/v1/groups/{name}", tag = "rbac",
    params(("name" = String, Path)), responses((status = 200, body = Group)))]
pub async fn get_group(
    State(state): State<AppState>,
    caller: Caller,
    Path(group): Path<String>,
) -> AppResult<Reply<Group>> {
    caller.require(actions::RBAC_READ, &Scope::Root)?;
    let group = name("name", &group)?.to_string();
    let mut tx = state.store.read().await?;
    let members = tx.group_members(&group).await?;
    if members.is_empty() {
        return Err(AppError::not_found(format!("group {group}")));
    }
    Ok(Reply::ok(Group {
        name: group,
        members,
    }))
}

#[utoipa::path(put, path = "/api/v1/groups/{name}", tag = "rbac",
    params(("name" = String, Path)), request_body = GroupBody,
    responses((status = 201, body = Group), (status = 200, body = Group)))]
pub async fn put_group(
    State(state): State<AppState>,
    caller: Caller,
    Path(group): Path<String>,
    body: RawBody,
) -> AppResult<Reply<Group>> {
    caller.require(actions::RBAC_WRITE, &Scope::Root)?;
    let group = name("name", &group)?.to_string();
    let body: GroupBody = body.parse()?;
    let bad = |m: String| AppError::new(ErrorCode::ValidationFailed, m).at("members");
    if body.members.is_empty() || body.members.len() > MAX_MEMBERS {
        return Err(bad(format!(
            "a group has 1 to {MAX_MEMBERS} members (delete it to empty it)"
        )));
    }
    let mut members: Vec<String> = body.members.iter().map(|m| m.to_string()).collect();
    if let Some(g) = members.iter().find(|m| m.starts_with("group:")) {
        return Err(bad(format!("{g}: groups cannot contain groups")));
    }
    members.sort();
    members.dedup();
    let mut tx = state.store.write().await?;
    let created = tx.put_group(&group, &members, state.clock.now()).await?;
    tx.commit_recorded(
        &caller
            .did(
                actions::RBAC_WRITE,
                &format!("/groups/{group}"),
                state.clock.now(),
            )
            .with_details(json!({"created": created, "members": members})),
    )
    .await?;
    Ok(Reply::created_or_ok(
        created,
        Group {
            name: group,
            members,
        },
    ))
}

#[utoipa::path(delete, path = "/api/v1/groups/{name}", tag = "rbac",
    params(("name" = String, Path)), responses((status = 204)))]
pub async fn delete_group(
    State(state): State<AppState>,
    caller: Caller,
    Path(group): Path<String>,
) -> AppResult<Response> {
    caller.require(actions::RBAC_WRITE, &Scope::Root)?;
    let group = name("name", &group)?.to_string();
    let mut tx = state.store.write().await?;
    if !tx.delete_group(&group).await? {
        return Err(AppError::not_found(format!("group {group}")));
    }
    tx.commit_recorded(&caller.did(
        actions::RBAC_WRITE,
        &format!("/groups/{group}"),
        state.clock.now(),
    ))
    .await?;
    Ok(no_content())
}
