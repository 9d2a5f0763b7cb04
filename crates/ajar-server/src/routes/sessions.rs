//! Sign-in: the trusted identity providers (public), and sessions — API tokens that end,
//! carrying the groups an identity provider asserted, made by the console on sign-in.
//!
//! Anyone authenticated (agents excepted) may make a session for themselves; it needs no
//! action, like creating one's own token. A session ends after 12 hours or when the credential
//! it was made with ends, whichever comes first: made with an identity provider's token, it
//! lasts no longer than that token, so neither the session nor the groups it carries outlive
//! what the provider asserted.

use super::Reply;
use super::tokens::{is_agent, view};
use crate::AppState;
use crate::auth::{Caller, new_token};
use crate::error::{AppError, AppResult};
use ajar_api::ErrorCode;
use ajar_api::wire::{IdentityProvider, List, Token};
use ajar_store::TokenRow;
use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The activity log's action for a sign-in: one record per session made, naming who signed in
/// and with what (an API token, or an identity provider's token).
pub const SIGNIN: &str = "ajar.sessions/signin";

/// The activity log's action for a sign-out: a session deleting itself.
pub const SIGNOUT: &str = "ajar.sessions/signout";

/// The description every console session's token carries.
pub const SESSION_DESCRIPTION: &str = "console session";

/// How long a session lasts.
pub const SESSION_LENGTH: jiff::SignedDuration = jiff::SignedDuration::from_hours(12);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(identity_providers))
        .routes(routes!(create_session))
}

/// The trusted issuers and the client id to sign in with. Public: sign-in needs it first.
#[utoipa::path(get, path = "/api/v1/identityProviders", tag = "sessions", security(()),
    responses((status = 200, body = List<IdentityProvider>)))]
pub async fn identity_providers(State(state): State<AppState>) -> Reply<List<IdentityProvider>> {
    Reply::ok(List {
        value: state
            .oidc
            .list()
            .iter()
            .map(|p| IdentityProvider {
                name: p.config().display_name(),
                issuer: p.config().issuer.clone(),
                client_id: p.config().audience.clone(),
            })
            .collect(),
        next_link: None,
    })
}

/// A session for the caller: a token that ends after [`SESSION_LENGTH`], or with the caller's
/// credential if that ends sooner, and carries the groups the caller's identity provider
/// asserted. The secret is in `token`, shown only here.
/// Sessions that have ended are deleted on the way. The activity log records it as a sign-in
/// (`ajar.sessions/signin`), naming the token or identity provider used.
#[utoipa::path(post, path = "/api/v1/sessions", tag = "sessions",
    responses((status = 201, body = Token)))]
pub async fn create_session(
    State(state): State<AppState>,
    caller: Caller,
) -> AppResult<Reply<Token>> {
    if is_agent(&caller) {
        return Err(AppError::new(
            ErrorCode::AuthorizationFailed,
            "agents cannot sign in",
        ));
    }
    let now = state.clock.now();
    // A session never outlives the credential it is made with: one made with an identity
    // provider's token ends with that token (so the provider is asked again for a new one), and
    // one made with a session ends with that session.
    let expires = now
        .checked_add(SESSION_LENGTH)
        .map_err(|_| AppError::new(ErrorCode::InternalError, "the clock is out of range"))?;
    let expires = caller.expires.map_or(expires, |end| end.min(expires));
    let (secret, hash) = new_token()?;
    let row = TokenRow {
        id: uuid::Uuid::new_v4().to_string(),
        principal: caller.principal.clone(),
        description: Some(SESSION_DESCRIPTION.to_owned()),
        created_by: caller.principal.clone(),
        created_at: now,
        expires_at: Some(expires),
        idp_groups: caller.asserted_groups.clone(),
        // It goes when the token it was made with goes: revoking a leaked token ends the
        // sessions made with it.
        parent_id: caller.token_id.clone(),
    };
    let mut tx = state.store.write().await?;
    // Ended sessions are dead weight; each new one sweeps them away.
    let swept = tx.delete_expired_tokens(now).await?;
    super::tokens::ensure_parent_lives(&mut tx, &row).await?;
    tx.insert_token(&row, &hash).await?;
    // A sign-in is recorded as one, not as a token write: who, with what, until when.
    let mut details = serde_json::json!({
        "principal": row.principal,
        "method": if caller.issuer.is_some() { "identityProvider" } else { "token" },
        "expiresAt": expires.to_string(),
        "groups": row.idp_groups,
        "endedSessionsRemoved": swept,
    });
    if let Some(issuer) = &caller.issuer {
        details["issuer"] = serde_json::json!(issuer);
    }
    if let Some(token) = &caller.token_id {
        details["tokenId"] = serde_json::json!(token);
    }
    tx.commit_recorded(
        &caller
            .did(SIGNIN, &format!("/tokens/{}", row.id), now)
            .with_details(details),
    )
    .await?;
    tracing::info!(token = %row.id, principal = %row.principal, "session created");
    Ok(Reply::created_or_ok(true, view(row, Some(secret))))
}
