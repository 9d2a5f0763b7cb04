//! Per-scope JIT settings: an admin can turn JIT off for a subscription or resource group,
//! which makes its machines `Unsupported` and refuses new policies and requests there.

use super::{Reply, group_scope, subscription_scope};
use crate::AppState;
use crate::auth::Caller;
use crate::body::RawBody;
use crate::error::AppResult;
use ajar_api::wire::JitSettings;
use ajar_core::id::Scope;
use ajar_core::rbac::actions;
use ajar_store::Tx;
use axum::extract::{Path, State};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(
            get_subscription_settings,
            put_subscription_settings
        ))
        .routes(routes!(get_group_settings, put_group_settings))
}

/// Every scope where JIT is turned off.
pub async fn disabled_scopes(tx: &mut Tx) -> AppResult<Vec<Scope>> {
    Ok(tx
        .jit_disabled_scopes()
        .await?
        .iter()
        .filter_map(|s| Scope::parse(s).ok())
        .collect())
}

/// The first scope above (or at) `scope` where JIT is turned off.
pub fn disabled_at<'a>(scope: &Scope, disabled: &'a [Scope]) -> Option<&'a Scope> {
    disabled.iter().find(|d| d.contains(scope))
}

async fn read(state: &AppState, caller: &Caller, scope: Scope) -> AppResult<Reply<JitSettings>> {
    caller.require(actions::SETTINGS_READ, &scope)?;
    let mut tx = state.store.read().await?;
    let enabled = tx.jit_enabled(&scope.to_string()).await?;
    Ok(Reply::ok(JitSettings {
        jit_enabled: enabled,
    }))
}

async fn write(
    state: &AppState,
    caller: &Caller,
    scope: Scope,
    body: RawBody,
) -> AppResult<Reply<JitSettings>> {
    caller.require(actions::SETTINGS_WRITE, &scope)?;
    let settings: JitSettings = body.parse()?;
    let mut tx = state.store.write().await?;
    tx.put_jit_enabled(&scope.to_string(), settings.jit_enabled, state.clock.now())
        .await?;
    tx.commit_recorded(
        &caller
            .did(
                actions::SETTINGS_WRITE,
                &scope.to_string(),
                state.clock.now(),
            )
            .with_details(serde_json::json!({"jitEnabled": settings.jit_enabled})),
    )
    .await?;
    Ok(Reply::ok(settings))
}

#[utoipa::path(get, path = "/api/v1/subscriptions/{sub}/jitSettings", tag = "settings",
    params(("sub" = String, Path)), responses((status = 200, body = JitSettings)))]
pub async fn get_subscription_settings(
    State(state): State<AppState>,
    caller: Caller,
    Path(sub): Path<String>,
) -> AppResult<Reply<JitSettings>> {
    read(&state, &caller, subscription_scope(&sub)?).await
}

#[utoipa::path(put, path = "/api/v1/subscriptions/{sub}/jitSettings", tag = "settings",
    params(("sub" = String, Path)), request_body = JitSettings, responses((status = 200, body = JitSettings)))]
pub async fn put_subscription_settings(
    State(state): State<AppState>,
    caller: Caller,
    Path(sub): Path<String>,
    body: RawBody,
) -> AppResult<Reply<JitSettings>> {
    write(&state, &caller, subscription_scope(&sub)?, body).await
}

#[utoipa::path(get, path = "/api/v1/subscriptions/{sub}/resourceGroups/{rg}/jitSettings", tag = "settings",
    params(("sub" = String, Path), ("rg" = String, Path)), responses((status = 200, body = JitSettings)))]
pub async fn get_group_settings(
    State(state): State<AppState>,
    caller: Caller,
    Path((sub, rg)): Path<(String, String)>,
) -> AppResult<Reply<JitSettings>> {
    read(&state, &caller, group_scope(&sub, &rg)?).await
}

#[utoipa::path(put, path = "/api/v1/subscriptions/{sub}/resourceGroups/{rg}/jitSettings", tag = "settings",
    params(("sub" = String, Path), ("rg" = String, Path)), request_body = JitSettings,
    responses((status = 200, body = JitSettings)))]
pub async fn put_group_settings(
    State(state): State<AppState>,
    caller: Caller,
    Path((sub, rg)): Path<(String, String)>,
    body: RawBody,
) -> AppResult<Reply<JitSettings>> {
    write(&state, &caller, group_scope(&sub, &rg)?, body).await
}
