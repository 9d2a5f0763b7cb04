//! `POST /api/v1/authorize`: may a principal do an action at a scope right now, counting standing
//! assignments and active role elevations? Answered from memory.

use super::Reply;
use super::paging::ByName;
use crate::AppState;
use crate::auth::Caller;
use crate::body::RawBody;
use crate::error::AppResult;
use ajar_api::wire::{AuthorizeAnswer, AuthorizeBody, List, Me};
use ajar_core::authorize::Source;
use ajar_core::rbac::actions;
use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(authorize))
        .routes(routes!(me))
        .routes(routes!(subscriptions))
}

/// The subscriptions that hold machines, policies or applications the caller may read
/// something of (machines, policies or applications, at the subscription or beneath).
#[utoipa::path(get, path = "/api/v1/subscriptions", tag = "authorize",
    responses((status = 200, body = List<String>)))]
pub async fn subscriptions(
    State(state): State<AppState>,
    caller: Caller,
    paging: ByName,
) -> AppResult<Reply<List<String>>> {
    let mut tx = state.store.read().await?;
    // Subscriptions by name a batch at a time, keeping those the caller may read in.
    let mut gather = paging.gather();
    while gather.wants_more() {
        let after = gather
            .after()
            .and_then(|a| a.strip_prefix("/subscriptions/"));
        let batch: Vec<String> = tx
            .subscriptions_page(after, gather.batch())
            .await?
            .into_iter()
            .map(|s| format!("/subscriptions/{s}"))
            .collect();
        gather.take(batch, String::clone, |s| {
            ajar_core::id::Scope::parse(s).is_ok_and(|scope| {
                [
                    actions::MACHINES_READ,
                    actions::POLICIES_READ,
                    actions::APPLICATIONS_READ,
                ]
                .iter()
                .any(|a| caller.permissions.allows_within(a, &scope))
            })
        });
    }
    drop(tx);
    let (value, next_link) = paging.finish(gather.into_items(), String::clone);
    Ok(Reply::ok(List { value, next_link }))
}

/// Who the caller is. Needs no action: it tells the caller only about itself.
#[utoipa::path(get, path = "/api/v1/me", tag = "authorize", responses((status = 200, body = Me)))]
pub async fn me(State(state): State<AppState>, caller: Caller) -> AppResult<Reply<Me>> {
    Ok(Reply::ok(Me {
        principal: caller.principal,
        groups: caller.groups,
        server_time: state.clock.now(),
    }))
}

#[utoipa::path(post, path = "/api/v1/authorize", tag = "authorize", request_body = AuthorizeBody,
    responses((status = 200, body = AuthorizeAnswer)))]
pub async fn authorize(
    State(state): State<AppState>,
    caller: Caller,
    body: RawBody,
) -> AppResult<Reply<AuthorizeAnswer>> {
    let body: AuthorizeBody = body.parse()?;
    // The asker may only ask about scopes it is trusted with.
    caller.require(actions::AUTHORIZE, &body.scope)?;
    let index = state.access_index.get(&state.store).await?;
    let groups: Vec<String> = body.groups.iter().map(ToString::to_string).collect();
    let answer = index.decide(
        body.principal.as_str(),
        &groups,
        &body.action,
        &body.scope,
        state.clock.now(),
    );
    Ok(Reply::ok(AuthorizeAnswer {
        allowed: answer.allowed,
        reason: answer.reason,
        via: answer.via.map(|v| match v {
            Source::Assignment(id) => format!("assignment:{id}"),
            Source::Publisher(app) => format!("publisher:{app}"),
            Source::Elevation { request, .. } => format!("elevation:{request}"),
        }),
        expires_at: answer.expires_at,
    }))
}
