//! What an application declares so that `authorize` can answer for it: the actions it
//! understands (in a namespace of its own) and role definitions over them; and the caller's
//! own eligible roles, for choosing one to activate.

use super::paging::ByName;
use super::{Reply, no_content, resource_id};
use crate::AppState;
use crate::auth::Caller;
use crate::body::RawBody;
use crate::error::{AppError, AppResult};
use ajar_api::ErrorCode;
use ajar_api::wire::{
    ApplicationActions as ActionsView, ApplicationActionsBody, ApplicationRole,
    ApplicationRoleBody, EligibleRole, List,
};
use ajar_core::id::{ResourceId, ResourceKind, Scope};
use ajar_core::rbac::{ActionPattern, ApplicationActions, actions, parse_role_name};
use ajar_store::{ApplicationActionsRow, ApplicationRoleRow, EligibilityRow, Tx};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_application_actions, put_application_actions))
        .routes(routes!(list_application_roles))
        .routes(routes!(
            get_application_role,
            put_application_role,
            delete_application_role
        ))
        .routes(routes!(my_eligible_roles))
}

/// Longest description of an application's role.
const MAX_DESCRIPTION: usize = 500;
/// Most patterns in one of an application's roles.
const MAX_PATTERNS: usize = 20;
/// Most roles one application defines.
const MAX_ROLES: i64 = 50;

fn application_id(sub: &str, rg: &str, n: &str) -> AppResult<ResourceId> {
    resource_id(sub, rg, ResourceKind::Application, n)
}

/// The application must exist.
async fn existing(tx: &mut Tx, app: &ResourceId) -> AppResult<()> {
    match tx.application(&app.to_string()).await? {
        Some(_) => Ok(()),
        None => Err(AppError::not_found(app)),
    }
}

/// What an application declared, as the domain reads it (nothing declared: no actions).
pub async fn declared(tx: &mut Tx, app: &str) -> AppResult<ApplicationActions> {
    Ok(tx
        .application_actions(app)
        .await?
        .map(|r| ApplicationActions {
            namespace: r.namespace,
            actions: r.actions,
        })
        .unwrap_or_default())
}

fn actions_view(app: &ResourceId, d: ApplicationActions) -> ActionsView {
    ActionsView {
        application_id: app.to_string(),
        namespace: d.namespace,
        actions: d.actions,
    }
}

fn role_view(row: ApplicationRoleRow) -> ApplicationRole {
    ApplicationRole {
        id: format!("{}/roleDefinitions/{}", row.application_id, row.name),
        application_id: row.application_id,
        name: row.name,
        description: row.description,
        actions: row.actions,
        allowed_actions: row.allowed,
    }
}

#[utoipa::path(get, path = "/api/v1/subscriptions/{sub}/resourceGroups/{rg}/applications/{name}/actions",
    tag = "applications",
    params(("sub" = String, Path), ("rg" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = ActionsView, description = "the actions the application declared (none: an empty namespace and list)")))]
pub async fn get_application_actions(
    State(state): State<AppState>,
    caller: Caller,
    Path((sub, rg, n)): Path<(String, String, String)>,
) -> AppResult<Reply<ActionsView>> {
    let app = application_id(&sub, &rg, &n)?;
    caller.require(actions::APPLICATIONS_READ, &app.scope())?;
    let mut tx = state.store.read().await?;
    existing(&mut tx, &app).await?;
    let d = declared(&mut tx, &app.to_string()).await?;
    Ok(Reply::ok(actions_view(&app, d)))
}

#[utoipa::path(put, path = "/api/v1/subscriptions/{sub}/resourceGroups/{rg}/applications/{name}/actions",
    tag = "applications",
    params(("sub" = String, Path), ("rg" = String, Path), ("name" = String, Path)),
    request_body = ApplicationActionsBody,
    responses((status = 201, body = ActionsView, description = "declared for the first time"),
              (status = 200, body = ActionsView, description = "replaced"),
              (status = 409, body = ajar_api::ErrorBody, description = "another application declared the namespace, or one of this application's roles would match none of the new actions")))]
pub async fn put_application_actions(
    State(state): State<AppState>,
    caller: Caller,
    Path((sub, rg, n)): Path<(String, String, String)>,
    body: RawBody,
) -> AppResult<Reply<ActionsView>> {
    let app = application_id(&sub, &rg, &n)?;
    caller.require(actions::APPLICATIONS_WRITE, &app.scope())?;
    let body: ApplicationActionsBody = body.parse()?;
    let d = ApplicationActions::parse(&body.namespace, &body.actions)?;
    let app_id = app.to_string();
    let mut tx = state.store.write().await?;
    existing(&mut tx, &app).await?;
    if let Some(owner) = tx.namespace_owner(&d.namespace).await?
        && owner != app_id
    {
        return Err(AppError::new(
            ErrorCode::Conflict,
            format!(
                "namespace {} is declared by another application; choose one of this application's own",
                d.namespace
            ),
        )
        .at("namespace"));
    }
    // Every role keeps meaning something: each of its patterns still matches a declared action.
    // What each allows is resolved again for the new actions.
    let roles = tx.application_roles(&app_id).await?;
    for role in &roles {
        for p in &role.actions {
            if ActionPattern::parse_among(p, &d).is_err() {
                return Err(AppError::new(
                    ErrorCode::Conflict,
                    format!(
                        "role {} has the pattern {p:?}, which would match none of these actions; change the role first",
                        role.name
                    ),
                )
                .at("actions"));
            }
        }
    }
    for role in &roles {
        tx.set_application_role_allowed(&app_id, &role.name, &d.matching(&role.actions))
            .await?;
    }
    let row = ApplicationActionsRow {
        application_id: app_id.clone(),
        namespace: d.namespace.clone(),
        actions: d.actions.clone(),
    };
    let created = tx.put_application_actions(&row, state.clock.now()).await?;
    tx.commit_recorded(
        &caller
            .did(actions::APPLICATIONS_WRITE, &app_id, state.clock.now())
            .with_details(json!({
                "actions": {"namespace": d.namespace, "count": d.actions.len(), "created": created}
            })),
    )
    .await?;
    Ok(Reply::created_or_ok(created, actions_view(&app, d)))
}

#[utoipa::path(get, path = "/api/v1/subscriptions/{sub}/resourceGroups/{rg}/applications/{name}/roleDefinitions",
    tag = "applications",
    params(("sub" = String, Path), ("rg" = String, Path), ("name" = String, Path),
           ("top" = Option<u32>, Query), ("skipToken" = Option<String>, Query)),
    responses((status = 200, body = List<ApplicationRole>, description = "the application's roles by name")))]
pub async fn list_application_roles(
    State(state): State<AppState>,
    caller: Caller,
    Path((sub, rg, n)): Path<(String, String, String)>,
    paging: ByName,
) -> AppResult<Reply<List<ApplicationRole>>> {
    let app = application_id(&sub, &rg, &n)?;
    caller.require(actions::APPLICATIONS_READ, &app.scope())?;
    let mut tx = state.store.read().await?;
    existing(&mut tx, &app).await?;
    let rows = tx
        .application_roles_page(&app.to_string(), paging.after.as_deref(), paging.limit())
        .await?;
    let (rows, next_link) = paging.finish(rows, |r| r.name.clone());
    let value = rows.into_iter().map(role_view).collect();
    Ok(Reply::ok(List { value, next_link }))
}

#[utoipa::path(get, path = "/api/v1/subscriptions/{sub}/resourceGroups/{rg}/applications/{name}/roleDefinitions/{role}",
    tag = "applications",
    params(("sub" = String, Path), ("rg" = String, Path), ("name" = String, Path), ("role" = String, Path)),
    responses((status = 200, body = ApplicationRole, description = "the role, with the declared actions it allows")))]
pub async fn get_application_role(
    State(state): State<AppState>,
    caller: Caller,
    Path((sub, rg, n, role)): Path<(String, String, String, String)>,
) -> AppResult<Reply<ApplicationRole>> {
    let app = application_id(&sub, &rg, &n)?;
    caller.require(actions::APPLICATIONS_READ, &app.scope())?;
    let mut tx = state.store.read().await?;
    let row = tx
        .application_role(&app.to_string(), &role)
        .await?
        .ok_or_else(|| AppError::not_found(format!("role definition {role} of {app}")))?;
    Ok(Reply::ok(role_view(row)))
}

#[utoipa::path(put, path = "/api/v1/subscriptions/{sub}/resourceGroups/{rg}/applications/{name}/roleDefinitions/{role}",
    tag = "applications",
    params(("sub" = String, Path), ("rg" = String, Path), ("name" = String, Path), ("role" = String, Path)),
    request_body = ApplicationRoleBody,
    responses((status = 201, body = ApplicationRole, description = "created"),
              (status = 200, body = ApplicationRole, description = "replaced"),
              (status = 400, body = ajar_api::ErrorBody, description = "a pattern matches none of the application's declared actions")))]
pub async fn put_application_role(
    State(state): State<AppState>,
    caller: Caller,
    Path((sub, rg, n, role)): Path<(String, String, String, String)>,
    body: RawBody,
) -> AppResult<Reply<ApplicationRole>> {
    let app = application_id(&sub, &rg, &n)?;
    caller.require(actions::APPLICATIONS_WRITE, &app.scope())?;
    let role = parse_role_name(&role).map_err(|e| AppError::parameter("role", e))?;
    let body: ApplicationRoleBody = body.parse()?;
    let description = body.description.unwrap_or_default();
    if description.chars().count() > MAX_DESCRIPTION || description.chars().any(char::is_control) {
        return Err(AppError::new(
            ErrorCode::ValidationFailed,
            format!(
                "a description is at most {MAX_DESCRIPTION} characters, without control characters"
            ),
        )
        .at("description"));
    }
    if body.actions.is_empty() || body.actions.len() > MAX_PATTERNS {
        return Err(AppError::new(
            ErrorCode::ValidationFailed,
            format!("a role has 1 to {MAX_PATTERNS} action patterns"),
        )
        .at("actions"));
    }
    let app_id = app.to_string();
    let mut tx = state.store.write().await?;
    existing(&mut tx, &app).await?;
    if tx.application_role(&app_id, &role).await?.is_none()
        && tx.application_role_count(&app_id).await? >= MAX_ROLES
    {
        return Err(AppError::new(
            ErrorCode::Conflict,
            format!("an application defines at most {MAX_ROLES} roles; delete one first"),
        )
        .at("role"));
    }
    let d = declared(&mut tx, &app_id).await?;
    for (i, p) in body.actions.iter().enumerate() {
        ActionPattern::parse_among(p, &d)
            .map_err(|e| AppError::from(e.at(format!("actions[{i}]"))))?;
    }
    let row = ApplicationRoleRow {
        application_id: app_id.clone(),
        name: role.clone(),
        description,
        allowed: d.matching(&body.actions),
        actions: body.actions,
    };
    let created = tx.put_application_role(&row, state.clock.now()).await?;
    tx.commit_recorded(
        &caller
            .did(
                actions::APPLICATIONS_WRITE,
                &format!("{app_id}/roleDefinitions/{role}"),
                state.clock.now(),
            )
            .with_details(json!({"created": created, "actions": row.actions})),
    )
    .await?;
    Ok(Reply::created_or_ok(created, role_view(row)))
}

#[utoipa::path(delete, path = "/api/v1/subscriptions/{sub}/resourceGroups/{rg}/applications/{name}/roleDefinitions/{role}",
    tag = "applications",
    params(("sub" = String, Path), ("rg" = String, Path), ("name" = String, Path), ("role" = String, Path)),
    responses((status = 204, description = "deleted"),
              (status = 409, body = ajar_api::ErrorBody, description = "an eligible role or a request under way uses it")))]
pub async fn delete_application_role(
    State(state): State<AppState>,
    caller: Caller,
    Path((sub, rg, n, role)): Path<(String, String, String, String)>,
) -> AppResult<Response> {
    let app = application_id(&sub, &rg, &n)?;
    caller.require(actions::APPLICATIONS_WRITE, &app.scope())?;
    let app_id = app.to_string();
    let mut tx = state.store.write().await?;
    if tx.application_role(&app_id, &role).await?.is_none() {
        return Err(AppError::not_found(format!(
            "role definition {role} of {app}"
        )));
    }
    if let Some(user) = tx.application_role_use(&app_id, &role).await? {
        return Err(AppError::new(
            ErrorCode::Conflict,
            format!("role {role} is used by {user}; remove that first"),
        )
        .at("role"));
    }
    tx.delete_application_role(&app_id, &role).await?;
    tx.commit_recorded(
        &caller
            .did(
                actions::APPLICATIONS_WRITE,
                &format!("{app_id}/roleDefinitions/{role}"),
                state.clock.now(),
            )
            .with_details(json!({"deleted": true})),
    )
    .await?;
    Ok(no_content())
}

/// Filters of `GET /api/v1/me/eligibleRoles`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MyEligibleQuery {
    application_id: Option<String>,
}

/// The page key of one of the caller's eligibilities: its path.
fn eligibility_key(e: &EligibilityRow) -> String {
    format!("{}/eligibleRoles/{}", e.application_id, e.id)
}

/// The roles the caller may activate: the eligibilities naming them or one of their groups.
/// Needs no action: it tells callers only about themselves.
#[utoipa::path(get, path = "/api/v1/me/eligibleRoles", tag = "applications",
    params(("applicationId" = Option<String>, Query, description = "only at this application"),
           ("top" = Option<u32>, Query), ("skipToken" = Option<String>, Query)),
    responses((status = 200, body = List<EligibleRole>, description = "the caller's eligible roles, by application")))]
pub async fn my_eligible_roles(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<MyEligibleQuery>,
    paging: ByName,
) -> AppResult<Reply<List<EligibleRole>>> {
    let application = match &query.application_id {
        None => None,
        Some(app) => match Scope::parse(app) {
            Ok(Scope::Resource(id)) if id.kind == ResourceKind::Application => Some(id.to_string()),
            _ => {
                return Err(AppError::new(
                    ErrorCode::InvalidParameter,
                    "applicationId must be an application's id: /subscriptions/S/resourceGroups/RG/applications/NAME",
                )
                .at("applicationId"));
            }
        },
    };
    let after = paging
        .after
        .as_deref()
        .and_then(|a| a.rsplit_once("/eligibleRoles/"));
    let mut principals = vec![caller.principal.clone()];
    principals.extend(caller.groups.iter().map(|g| format!("group:{g}")));
    let mut tx = state.store.read().await?;
    let rows = tx
        .eligibilities_of_page(&principals, application.as_deref(), after, paging.limit())
        .await?;
    drop(tx);
    let (rows, next_link) = paging.finish(rows, eligibility_key);
    let value = rows.into_iter().map(crate::eligibility::view).collect();
    Ok(Reply::ok(List { value, next_link }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_eligibility_pages_by_its_path() {
        let e = EligibilityRow {
            application_id: "/subscriptions/s/resourceGroups/g/applications/crm".into(),
            id: "devs".into(),
            principal: "group:devs".into(),
            role_name: "Contributor".into(),
            created_at: jiff::Timestamp::UNIX_EPOCH,
        };
        let key = eligibility_key(&e);
        assert_eq!(
            key.rsplit_once("/eligibleRoles/"),
            Some(("/subscriptions/s/resourceGroups/g/applications/crm", "devs"))
        );
    }
}
