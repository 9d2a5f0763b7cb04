//! API tokens. The secret is shown once, at creation, and stored only as a hash.
//!
//! Anyone authenticated may create, list and revoke tokens for themselves (agents excepted: they
//! may not create any); doing so for other principals needs `ajar.tokens/write` (create, revoke)
//! or `ajar.tokens/read` (list) at `/`. A token made with a credential that ends (a session or
//! an identity provider's token) ends with it.

use super::paging::{OldestFirst, time_key};
use super::{Reply, no_content};
use crate::AppState;
use crate::auth::{Caller, new_token};
use crate::body::RawBody;
use crate::error::{AppError, AppResult};
use ajar_api::ErrorCode;
use ajar_api::wire::{List, Token, TokenCreate};
use ajar_core::id::Scope;
use ajar_core::rbac::actions;
use ajar_store::TokenRow;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(delete_token))
}

/// Agents get no token self-service: a stolen agent token must not mint lasting ones.
pub(crate) fn is_agent(caller: &Caller) -> bool {
    caller
        .principal
        .starts_with(super::agents::AGENT_PRINCIPAL_PREFIX)
}

/// Fails with 401 when the token `row` is made with was deleted meanwhile (read inside the
/// write transaction that stores `row`), so nothing made with a revoked token survives it.
pub(crate) async fn ensure_parent_lives(tx: &mut ajar_store::Tx, row: &TokenRow) -> AppResult<()> {
    let Some(parent) = &row.parent_id else {
        return Ok(());
    };
    if tx.token(parent).await?.is_none() {
        return Err(AppError::new(
            ErrorCode::Unauthenticated,
            crate::auth::TOKEN_REFUSED,
        ));
    }
    Ok(())
}

pub(crate) fn view(t: TokenRow, secret: Option<String>) -> Token {
    Token {
        id: t.id,
        token: secret,
        principal: t.principal,
        description: t.description,
        created_by: t.created_by,
        created_at: t.created_at,
        expires_at: t.expires_at,
        groups: t.idp_groups,
    }
}

#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", request_body = TokenCreate,
    responses((status = 201, body = Token, description = "the secret is in `token`, shown only here")))]
pub async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    body: RawBody,
) -> AppResult<Reply<Token>> {
    let body: TokenCreate = body.parse()?;
    if body.principal.as_str() != caller.principal || is_agent(&caller) {
        caller.require(actions::TOKENS_WRITE, &Scope::Root)?;
    }
    if body
        .description
        .as_ref()
        .is_some_and(|d| d.chars().count() > 256)
    {
        return Err(AppError::new(
            ErrorCode::ValidationFailed,
            "description is longer than 256 characters",
        )
        .at("description"));
    }
    // Sessions are told apart by their description: no other token may carry it (its deletion
    // would be recorded as a sign-out).
    if body.description.as_deref() == Some(super::sessions::SESSION_DESCRIPTION) {
        return Err(AppError::new(
            ErrorCode::ValidationFailed,
            format!(
                "description {:?} is kept for console sessions; describe the token otherwise",
                super::sessions::SESSION_DESCRIPTION
            ),
        )
        .at("description"));
    }
    // A token made with a credential that ends (a session, an identity provider's token) ends
    // with it, whoever it is for: a stolen session must not become a lasting credential. Made
    // with a session, it also goes when the session goes (signing out included). Lasting
    // tokens are made with lasting ones (so a token can be rotated: make the new one with the
    // old, then delete the old).
    let (secret, hash) = new_token()?;
    let row = TokenRow {
        id: uuid::Uuid::new_v4().to_string(),
        principal: body.principal.to_string(),
        description: body.description,
        created_by: caller.principal.clone(),
        created_at: state.clock.now(),
        expires_at: caller.expires,
        idp_groups: Vec::new(),
        parent_id: caller.expires.and(caller.token_id.clone()),
    };
    let mut tx = state.store.write().await?;
    ensure_parent_lives(&mut tx, &row).await?;
    tx.insert_token(&row, &hash).await?;
    tx.commit_recorded(
        &caller
            .did(
                actions::TOKENS_WRITE,
                &format!("/tokens/{}", row.id),
                state.clock.now(),
            )
            .with_details(serde_json::json!({
                "principal": row.principal,
                "description": row.description,
                "expiresAt": row.expires_at.map(|e| e.to_string()),
            })),
    )
    .await?;
    tracing::info!(token = %row.id, principal = %row.principal, by = %caller.principal, "token created");
    Ok(Reply::created_or_ok(true, view(row, Some(secret))))
}

#[derive(Debug, Deserialize)]
pub struct TokenQuery {
    principal: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens",
    params(("principal" = Option<String>, Query)),
    responses((status = 200, body = List<Token>)))]
pub async fn list_tokens(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<TokenQuery>,
    paging: OldestFirst,
) -> AppResult<Reply<List<Token>>> {
    let principal = if caller.may(actions::TOKENS_READ, &Scope::Root) {
        query.principal
    } else {
        if query
            .principal
            .as_ref()
            .is_some_and(|p| *p != caller.principal)
        {
            return Err(AppError::forbidden(
                &caller.principal,
                actions::TOKENS_READ,
                &Scope::Root,
            ));
        }
        Some(caller.principal.clone())
    };
    let mut tx = state.store.read().await?;
    // Who may see which tokens is a condition of the query: all, or one principal's.
    let rows = tx
        .tokens_page(principal.as_deref(), paging.after.as_ref(), paging.limit())
        .await?;
    let (rows, next_link) = paging.finish(rows, |t| time_key(t.created_at, &t.id));
    let value = rows.into_iter().map(|t| view(t, None)).collect();
    Ok(Reply::ok(List { value, next_link }))
}

#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens",
    params(("id" = String, Path)), responses((status = 204)))]
pub async fn delete_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let mut tx = state.store.write().await?;
    let Some(row) = tx.token(&id).await? else {
        return Err(AppError::not_found(format!("token {id}")));
    };
    if row.principal != caller.principal {
        caller.require(actions::TOKENS_WRITE, &Scope::Root)?;
    }
    let deleted = tx.delete_token(&id).await?;
    // Sessions and tokens made with it went with it: each is named in the record.
    let made_with_it: Vec<serde_json::Value> = deleted
        .iter()
        .filter(|(d, _)| *d != id)
        .map(|(d, p)| serde_json::json!({"id": d, "principal": p}))
        .collect();
    // A session deleting itself is a sign-out, recorded as one (as its sign-in was).
    let signs_out = row.description.as_deref() == Some(super::sessions::SESSION_DESCRIPTION)
        && caller.token_id.as_deref() == Some(id.as_str());
    let action = if signs_out {
        super::sessions::SIGNOUT
    } else {
        actions::TOKENS_WRITE
    };
    tx.commit_recorded(
        &caller
            .did(action, &format!("/tokens/{id}"), state.clock.now())
            .with_details(serde_json::json!({
                "principal": row.principal,
                "deleted": true,
                "madeWithItDeleted": made_with_it,
            })),
    )
    .await?;
    tracing::info!(token = %id, by = %caller.principal, "token revoked");
    Ok(no_content())
}
