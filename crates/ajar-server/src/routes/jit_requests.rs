//! The routes of requests on the shared engine ([`crate::engine::requests`]): role
//! activations on managed applications, and network access under a policy with manual
//! approval. Create, read, approve, deny, cancel, revoke, extend; the approver's inbox; and the
//! history of both kinds. Each parses, authorizes, calls the engine and renders.

use super::paging::{GATHER_BATCH_MIN, NewestFirst, RequestPage, time_key};
use super::{Reply, instant, resource_id};
use crate::AppState;
use crate::auth::Caller;
use crate::body::RawBody;
use crate::engine::requests::{
    NETWORK, ROLE, check_role_request, current_rules, insert, network_detail,
    network_lifecycle_and_row, new_row, request_id_of, rule_of, target_scope, transition,
};
use crate::error::{AppError, AppResult};
use crate::journal::Actor;
use ajar_api::ErrorCode;
use ajar_api::wire::{
    DecisionBody, DecisionView, ExtendBody, HistoryEntry, HistoryState, InitiateBody,
    JitAuthorizationPolicy, JitRequest, JitRequestBody, JitRequestPatch, JitRequestView,
    JitSchedulingPolicy, List, PortStatusReason, RequestKind,
};
use ajar_core::duration::{AccessDuration, MAX_ACCESS, MIN_ACCESS};
use ajar_core::id::{ResourceId, ResourceKind, Scope};
use ajar_core::lifecycle::{ApprovalRule, Decision, Event, Lifecycle, RequestState, Start};
use ajar_core::principal::Principal;
use ajar_core::rbac::{actions, parse_role_name};
use ajar_core::request::WindowEnd;
use ajar_core::request::{StatusReason, plan_initiate};
use ajar_store::{
    Cursor, JitRequestFilter, JitRequestRow, Readable, RequestFilter, RequestsOn, Tx,
    at_store_precision,
};
use axum::extract::{Path, Query, State};
use jiff::SignedDuration;
use serde::Deserialize;
use std::cmp::Reverse;
use std::collections::BTreeMap;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(
            get_jit_request,
            counted_create_jit_request,
            patch_jit_request
        ))
        .routes(routes!(list_subscription_jit_requests))
        .routes(routes!(list_group_jit_requests))
        .routes(routes!(approve))
        .routes(routes!(deny))
        .routes(routes!(cancel))
        .routes(routes!(revoke))
        .routes(routes!(extend))
        .routes(routes!(list_application_requests))
        .routes(routes!(inbox))
        .routes(routes!(history))
}

fn bad(target: &str, message: impl Into<String>) -> AppError {
    AppError::new(ErrorCode::ValidationFailed, message.into()).at(target)
}

fn request_id(sub: &str, rg: &str, n: &str) -> AppResult<ResourceId> {
    resource_id(sub, rg, ResourceKind::JitRequest, n)
}

/// A role request's place in a list, newest first.
fn newest_first(r: &JitRequest) -> Reverse<Cursor> {
    Reverse(time_key(r.properties.created_at, &r.id))
}

fn view(row: &JitRequestRow) -> AppResult<JitRequest> {
    let l = &row.lifecycle;
    let roles = row.roles.clone();
    let network = row.kind == NETWORK;
    // A network request's ports were stored when it became active: it has a window and did
    // not fail.
    let opened = network && l.window.is_some() && l.state != RequestState::Failed;
    Ok(JitRequest {
        id: row.id.clone(),
        name: row.name.clone(),
        kind: "jitRequests".to_owned(),
        location: row.location.clone(),
        tags: row.tags.clone(),
        properties: JitRequestView {
            request_kind: RequestKind::parse(&row.kind).ok_or_else(AppError::internal)?,
            application_resource_id: (!network).then(|| row.application_id.clone()),
            network_access_policy_id: network.then(|| row.application_id.clone()),
            network_access: if network {
                Some(InitiateBody::from_domain(
                    &network_detail(row)?.requested,
                    row.justification.clone(),
                ))
            } else {
                None
            },
            network_request_id: opened.then(|| row.name.clone()),
            extends: row.extends.clone(),
            jit_authorization_policies: roles
                .into_iter()
                .map(|role_definition_id| JitAuthorizationPolicy {
                    principal_id: l.requester.clone(),
                    role_definition_id,
                })
                .collect(),
            jit_scheduling_policy: JitSchedulingPolicy {
                kind: "Once".to_owned(),
                start_time: match l.start {
                    Start::Now => None,
                    Start::At(t) => Some(t),
                },
                duration: AccessDuration::new(l.duration.clamp(MIN_ACCESS, MAX_ACCESS))
                    .map_err(|_| AppError::internal())?,
            },
            justification: row.justification.clone(),
            jit_request_state: l.state,
            requestor: row.requester.clone(),
            created_at: row.created_at,
            active_from: l.window.map(|(from, _)| from),
            active_until: l.window.map(|(_, until)| until),
            decisions: l
                .decisions
                .iter()
                .map(|d| DecisionView {
                    by: d.by.to_string(),
                    decision: if d.approve { "Approved" } else { "Denied" }.to_owned(),
                    reason: d.reason.clone(),
                    at: d.at,
                })
                .collect(),
            expiry_warned_at: l.expiry_warned_at,
            failure: l.failure.clone(),
        },
    })
}

fn check_justification(j: &Option<String>, target: &str) -> AppResult<()> {
    if j.as_ref().is_some_and(|j| j.chars().count() > 2000) {
        return Err(bad(target, "justification is longer than 2000 characters"));
    }
    Ok(())
}

pub async fn create_jit_request(
    State(state): State<AppState>,
    caller: Caller,
    Path((sub, rg, n)): Path<(String, String, String)>,
    body: RawBody,
) -> AppResult<Reply<JitRequest>> {
    let id = request_id(&sub, &rg, &n)?;
    caller.require(actions::JIT_REQUESTS_WRITE, &id.scope())?;
    let body: JitRequestBody = body.parse()?;
    let p = &body.properties;
    if let Some(tags) = &body.tags {
        check_tags(tags, "tags")?;
    }
    if p.application_resource_id.kind != ResourceKind::Application {
        return Err(bad(
            "properties.applicationResourceId",
            "not an application id",
        ));
    }
    // A request lives under, is checked at and is recorded at the application it grants access
    // to: the caller must be allowed to request there, and the request must be filed in the
    // application's resource group.
    let app = &p.application_resource_id;
    caller.require(actions::JIT_REQUESTS_WRITE, &app.scope())?;
    if app.resource_group_scope() != id.resource_group_scope() {
        return Err(bad(
            "properties.applicationResourceId",
            format!(
                "a request is filed in its application's resource group: use {}/jitRequests/{}",
                app.resource_group_scope(),
                id.name
            ),
        ));
    }
    if p.jit_scheduling_policy.kind != "Once" {
        return Err(bad(
            "properties.jitSchedulingPolicy.type",
            "only \"Once\" is supported",
        ));
    }
    if p.jit_authorization_policies.is_empty() || p.jit_authorization_policies.len() > 20 {
        return Err(bad(
            "properties.jitAuthorizationPolicies",
            "ask for 1 to 20 roles",
        ));
    }
    check_justification(&p.justification, "properties.justification")?;
    let mut roles = Vec::new();
    for (i, a) in p.jit_authorization_policies.iter().enumerate() {
        let at = format!("properties.jitAuthorizationPolicies[{i}]");
        if a.principal_id.as_str() != caller.principal {
            return Err(bad(
                &format!("{at}.principalId"),
                "requests are made for oneself",
            ));
        }
        roles.push(
            parse_role_name(&a.role_definition_id)
                .map_err(|e| AppError::from(e.at(format!("{at}.roleDefinitionId"))))?,
        );
    }
    let now = at_store_precision(state.clock.now());
    let start = match p.jit_scheduling_policy.start_time {
        None => Start::Now,
        Some(t) if t < now.checked_sub(SignedDuration::from_mins(1)).unwrap_or(now) => {
            return Err(bad(
                "properties.jitSchedulingPolicy.startTime",
                "the start time is in the past",
            ));
        }
        Some(t) => Start::At(at_store_precision(t.max(now))),
    };
    let app_id = p.application_resource_id.to_string();
    let duration = p.jit_scheduling_policy.duration;
    let mut tx = state.store.write().await?;
    let rule = check_role_request(&mut tx, &caller, &app_id, &roles, duration).await?;
    let requester = Principal::parse(&caller.principal)?;
    let l = Lifecycle::new(requester, start, duration.get(), &rule, now);
    let mut row = new_row(
        &id,
        ROLE,
        app_id,
        &caller,
        &roles,
        p.justification.clone(),
        &l,
    )?;
    row.location = body.location.map(|l| l.to_string());
    row.tags = body.tags;
    insert(tx, &Actor::from(&caller), &id, &row).await?;
    Ok(Reply::created_or_ok(true, view(&row)?))
}

/// [`create_jit_request`], counted in `ajar_access_requests_total{kind="role"}`.
#[utoipa::path(put, path = "/api/v1/subscriptions/{sub}/resourceGroups/{rg}/jitRequests/{name}", tag = "jitRequests",
    params(("sub" = String, Path), ("rg" = String, Path), ("name" = String, Path)),
    request_body = JitRequestBody,
    responses((status = 201, body = JitRequest), (status = 409, body = ajar_api::ErrorBody)))]
async fn counted_create_jit_request(
    state: State<AppState>,
    caller: Caller,
    path: Path<(String, String, String)>,
    body: RawBody,
) -> AppResult<Reply<JitRequest>> {
    let metrics = state.metrics.clone();
    let result = create_jit_request(state, caller, path, body).await;
    let pending =
        |r: &Reply<JitRequest>| r.body.properties.jit_request_state == RequestState::Pending;
    metrics.access_request(
        ROLE,
        crate::metrics::access_result(result.as_ref().map(pending)),
    );
    result
}

/// Most tags a request may carry, and the longest key and value.
const MAX_TAGS: usize = 50;
const MAX_TAG_KEY: usize = 512;
const MAX_TAG_VALUE: usize = 256;

/// Most bytes a request's tags may hold in all (names and values), so a list of requests stays
/// small whatever its requesters put in their tags.
const MAX_TAG_BYTES: usize = 8 * 1024;

fn check_tags(tags: &BTreeMap<String, String>, target: &str) -> AppResult<()> {
    if tags.len() > MAX_TAGS {
        return Err(bad(target, format!("at most {MAX_TAGS} tags")));
    }
    if tags.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>() > MAX_TAG_BYTES {
        return Err(bad(
            target,
            format!("tags hold at most {MAX_TAG_BYTES} bytes in all"),
        ));
    }
    for (k, v) in tags {
        if k.chars().chain(v.chars()).any(char::is_control) {
            return Err(bad(
                &format!("{target}.{k}"),
                "a tag's name and value hold no control characters",
            ));
        }
        if k.is_empty() || k.chars().count() > MAX_TAG_KEY || v.chars().count() > MAX_TAG_VALUE {
            return Err(bad(
                &format!("{target}.{k}"),
                format!(
                    "a tag's name is 1 to {MAX_TAG_KEY} characters, its value at most {MAX_TAG_VALUE}"
                ),
            ));
        }
    }
    Ok(())
}

#[utoipa::path(patch, path = "/api/v1/subscriptions/{sub}/resourceGroups/{rg}/jitRequests/{name}", tag = "jitRequests",
    params(("sub" = String, Path), ("rg" = String, Path), ("name" = String, Path)),
    request_body = JitRequestPatch,
    responses((status = 200, body = JitRequest, description = "the request with its new tags")))]
/// Replaces a request's tags: its requester, or a caller who administers what it grants, with
/// `ajar.jitRequests/write` at its scope (an approver or reader cannot rewrite them).
pub async fn patch_jit_request(
    State(state): State<AppState>,
    caller: Caller,
    Path((sub, rg, n)): Path<(String, String, String)>,
    body: RawBody,
) -> AppResult<Reply<JitRequest>> {
    let id = request_id(&sub, &rg, &n)?;
    caller.require(actions::JIT_REQUESTS_WRITE, &id.scope())?;
    let body: JitRequestPatch = body.parse()?;
    check_tags(&body.tags, "tags")?;
    let now = state.clock.now();
    let mut tx = state.store.write().await?;
    let mut row = load_visible(&mut tx, &caller, &id).await?;
    if row.requester != caller.principal && !administers(&caller, &row) {
        return Err(AppError::new(
            ErrorCode::AuthorizationFailed,
            format!(
                "only the requester, or who administers {}, may change the tags of {}",
                row.application_id, row.id
            ),
        )
        .at(row.id.clone()));
    }
    tx.set_jit_request_tags(&row.id, &body.tags).await?;
    tx.commit_recorded(
        &caller
            .did(actions::JIT_REQUESTS_WRITE, &row.id, now)
            .with_details(serde_json::json!({"tags": body.tags})),
    )
    .await?;
    row.tags = Some(body.tags);
    Ok(Reply::ok(view(&row)?))
}

/// Filters of the scope-wide request lists.
#[derive(Debug, Deserialize)]
pub struct ScopeListQuery {
    kind: Option<String>,
}

/// Requests filed in `scope`, newest first: each shown to its requester and to callers who may
/// read requests at its scope.
async fn list_in_scope(
    state: &AppState,
    caller: &Caller,
    scope: Scope,
    query: ScopeListQuery,
    paging: NewestFirst,
) -> AppResult<Reply<List<JitRequest>>> {
    let kind = match query.kind.as_deref() {
        None => None,
        Some(k @ (ROLE | NETWORK)) => Some(k),
        Some(_) => {
            return Err(
                AppError::new(ErrorCode::InvalidParameter, "kind must be role or network")
                    .at("kind"),
            );
        }
    };
    let mut within = Readable::default();
    match &scope {
        Scope::Subscription(s) => within.subscriptions.push(s.to_string()),
        Scope::ResourceGroup(s, g) => within.groups.push((s.to_string(), g.to_string())),
        _ => return Err(AppError::new(ErrorCode::InvalidParameter, "bad scope")),
    }
    let all = caller.may(actions::JIT_REQUESTS_READ, &scope);
    if !all {
        // Read only the parts of the scope the caller may read, and their own requests: a
        // caller who may see little reads little.
        if let Some(mine) = readable(caller, actions::JIT_REQUESTS_READ) {
            let inside = |s: Scope| scope.contains(&s);
            within = Readable {
                own: mine.own,
                subscriptions: Vec::new(),
                groups: mine
                    .groups
                    .into_iter()
                    .filter(|(s, g)| {
                        Scope::parse(&format!("/subscriptions/{s}/resourceGroups/{g}"))
                            .is_ok_and(inside)
                    })
                    .collect(),
                resources: mine
                    .resources
                    .into_iter()
                    .filter(|r| Scope::parse(r).is_ok_and(inside))
                    .collect(),
            };
        }
    }
    let filter = JitRequestFilter {
        kind,
        within: Some(&within),
        ..JitRequestFilter::default()
    };
    let mut tx = state.store.read().await?;
    let mut gather = paging.gather();
    while gather.wants_more() {
        let after = gather.after().map(|r| &r.0);
        let batch = tx
            .jit_request_history(filter, after, gather.batch() as u32)
            .await?;
        gather.take(
            batch,
            |r| Reverse(time_key(r.created_at, &r.id)),
            |r| {
                let at = Scope::parse(&r.id);
                at.as_ref().is_ok_and(|s| scope.contains(s))
                    && (all
                        || r.requester == caller.principal
                        || at.is_ok_and(|s| caller.may(actions::JIT_REQUESTS_READ, &s)))
            },
        );
    }
    drop(tx);
    let (rows, next_link) = paging.finish(gather.into_items(), |r| {
        Reverse(time_key(r.created_at, &r.id))
    });
    let value = rows.iter().map(view).collect::<AppResult<_>>()?;
    Ok(Reply::ok(List { value, next_link }))
}

#[utoipa::path(get, path = "/api/v1/subscriptions/{sub}/jitRequests", tag = "jitRequests",
    params(("sub" = String, Path), ("kind" = Option<String>, Query, description = "role or network"),
           ("top" = Option<u32>, Query), ("skipToken" = Option<String>, Query)),
    responses((status = 200, body = List<JitRequest>, description = "requests filed in the subscription, newest first, that the caller may see")))]
/// Requests filed in a subscription that the caller may see.
pub async fn list_subscription_jit_requests(
    State(state): State<AppState>,
    caller: Caller,
    Path(sub): Path<String>,
    Query(query): Query<ScopeListQuery>,
    paging: NewestFirst,
) -> AppResult<Reply<List<JitRequest>>> {
    list_in_scope(
        &state,
        &caller,
        super::subscription_scope(&sub)?,
        query,
        paging,
    )
    .await
}

#[utoipa::path(get, path = "/api/v1/subscriptions/{sub}/resourceGroups/{rg}/jitRequests", tag = "jitRequests",
    params(("sub" = String, Path), ("rg" = String, Path), ("kind" = Option<String>, Query, description = "role or network"),
           ("top" = Option<u32>, Query), ("skipToken" = Option<String>, Query)),
    responses((status = 200, body = List<JitRequest>, description = "requests filed in the resource group, newest first, that the caller may see")))]
/// Requests filed in a resource group that the caller may see.
pub async fn list_group_jit_requests(
    State(state): State<AppState>,
    caller: Caller,
    Path((sub, rg)): Path<(String, String)>,
    Query(query): Query<ScopeListQuery>,
    paging: NewestFirst,
) -> AppResult<Reply<List<JitRequest>>> {
    list_in_scope(
        &state,
        &caller,
        super::group_scope(&sub, &rg)?,
        query,
        paging,
    )
    .await
}

/// Loads a request the caller may see: with `ajar.jitRequests/read` at its scope, or their own.
async fn load_visible(tx: &mut Tx, caller: &Caller, id: &ResourceId) -> AppResult<JitRequestRow> {
    let privileged = caller.may(actions::JIT_REQUESTS_READ, &id.scope());
    let row = tx.jit_request(&id.to_string()).await?;
    match row {
        Some(row) if privileged || row.requester == caller.principal => Ok(row),
        None if privileged => Err(AppError::not_found(id)),
        _ => Err(AppError::forbidden(
            &caller.principal,
            actions::JIT_REQUESTS_READ,
            &id.scope(),
        )),
    }
}

#[utoipa::path(get, path = "/api/v1/subscriptions/{sub}/resourceGroups/{rg}/jitRequests/{name}", tag = "jitRequests",
    params(("sub" = String, Path), ("rg" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = JitRequest)))]
pub async fn get_jit_request(
    State(state): State<AppState>,
    caller: Caller,
    Path((sub, rg, n)): Path<(String, String, String)>,
) -> AppResult<Reply<JitRequest>> {
    let id = request_id(&sub, &rg, &n)?;
    let mut tx = state.store.read().await?;
    let row = load_visible(&mut tx, &caller, &id).await?;
    Ok(Reply::ok(view(&row)?))
}

async fn decide(
    state: &AppState,
    caller: &Caller,
    (sub, rg, n): (String, String, String),
    body: RawBody,
    approve: bool,
) -> AppResult<Reply<JitRequest>> {
    let id = request_id(&sub, &rg, &n)?;
    caller.require(actions::REQUESTS_APPROVE, &id.scope())?;
    let body: DecisionBody = body.parse()?;
    // A decision is made at the scope of what the request grants, too.
    let mut tx = state.store.read().await?;
    if let Some(row) = tx.jit_request(&id.to_string()).await? {
        caller.require(actions::REQUESTS_APPROVE, &target_scope(&row)?)?;
    }
    drop(tx);
    if body.reason.trim().is_empty() || body.reason.chars().count() > 1000 {
        return Err(bad(
            "reason",
            "a reason of 1 to 1000 characters is required",
        ));
    }
    let by = Principal::parse(&caller.principal)?;
    let groups = caller.groups.clone();
    let row = transition(state, &Actor::from(caller), &id, |now| {
        let d = Decision {
            by,
            approve,
            reason: body.reason,
            at: now,
        };
        if approve {
            Event::Approve(d, groups)
        } else {
            Event::Deny(d, groups)
        }
    })
    .await?;
    Ok(Reply::ok(view(&row)?))
}

#[utoipa::path(post, path = "/api/v1/subscriptions/{sub}/resourceGroups/{rg}/jitRequests/{name}/approve", tag = "jitRequests",
    params(("sub" = String, Path), ("rg" = String, Path), ("name" = String, Path)),
    request_body = DecisionBody, responses((status = 200, body = JitRequest)))]
pub async fn approve(
    State(state): State<AppState>,
    caller: Caller,
    Path(p): Path<(String, String, String)>,
    body: RawBody,
) -> AppResult<Reply<JitRequest>> {
    decide(&state, &caller, p, body, true).await
}

#[utoipa::path(post, path = "/api/v1/subscriptions/{sub}/resourceGroups/{rg}/jitRequests/{name}/deny", tag = "jitRequests",
    params(("sub" = String, Path), ("rg" = String, Path), ("name" = String, Path)),
    request_body = DecisionBody, responses((status = 200, body = JitRequest)))]
pub async fn deny(
    State(state): State<AppState>,
    caller: Caller,
    Path(p): Path<(String, String, String)>,
    body: RawBody,
) -> AppResult<Reply<JitRequest>> {
    decide(&state, &caller, p, body, false).await
}

#[utoipa::path(post, path = "/api/v1/subscriptions/{sub}/resourceGroups/{rg}/jitRequests/{name}/cancel", tag = "jitRequests",
    params(("sub" = String, Path), ("rg" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = JitRequest)))]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path((sub, rg, n)): Path<(String, String, String)>,
) -> AppResult<Reply<JitRequest>> {
    let id = request_id(&sub, &rg, &n)?;
    caller.require(actions::JIT_REQUESTS_WRITE, &id.scope())?;
    let mut tx = state.store.read().await?;
    load_visible(&mut tx, &caller, &id).await?;
    drop(tx);
    let by = Principal::parse(&caller.principal)?;
    let row = transition(&state, &Actor::from(&caller), &id, |_| Event::Cancel(by)).await?;
    Ok(Reply::ok(view(&row)?))
}

/// Whether the caller administers what a request is for (may revoke anyone's): write access to
/// the application, or the right to revoke network requests under the policy.
fn administers(caller: &Caller, row: &JitRequestRow) -> bool {
    let action = if row.kind == NETWORK {
        actions::REQUESTS_REVOKE
    } else {
        actions::APPLICATIONS_WRITE
    };
    Scope::parse(&row.application_id).is_ok_and(|s| caller.may(action, &s))
}

#[utoipa::path(post, path = "/api/v1/subscriptions/{sub}/resourceGroups/{rg}/jitRequests/{name}/revoke", tag = "jitRequests",
    params(("sub" = String, Path), ("rg" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = JitRequest)))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path((sub, rg, n)): Path<(String, String, String)>,
) -> AppResult<Reply<JitRequest>> {
    let id = request_id(&sub, &rg, &n)?;
    caller.require(actions::JIT_REQUESTS_WRITE, &id.scope())?;
    let mut tx = state.store.read().await?;
    let row = load_visible(&mut tx, &caller, &id).await?;
    drop(tx);
    let admin = administers(&caller, &row);
    let by = Principal::parse(&caller.principal)?;
    let row = transition(&state, &Actor::from(&caller), &id, move |_| Event::Revoke {
        by,
        admin,
    })
    .await?;
    Ok(Reply::ok(view(&row)?))
}

#[utoipa::path(post, path = "/api/v1/subscriptions/{sub}/resourceGroups/{rg}/jitRequests/{name}/extend", tag = "jitRequests",
    params(("sub" = String, Path), ("rg" = String, Path), ("name" = String, Path)),
    request_body = ExtendBody,
    responses((status = 201, body = JitRequest, description = "the follow-on request, decided like a new one")))]
pub async fn extend(
    State(state): State<AppState>,
    caller: Caller,
    Path((sub, rg, n)): Path<(String, String, String)>,
    body: RawBody,
) -> AppResult<Reply<JitRequest>> {
    let id = request_id(&sub, &rg, &n)?;
    caller.require(actions::JIT_REQUESTS_WRITE, &id.scope())?;
    let body: ExtendBody = body.parse()?;
    check_justification(&body.justification, "justification")?;
    let now = at_store_precision(state.clock.now());
    let mut tx = state.store.write().await?;
    let original = load_visible(&mut tx, &caller, &id).await?;
    if original.requester != caller.principal {
        return Err(AppError::new(
            ErrorCode::AuthorizationFailed,
            "only the requester may extend a request",
        ));
    }
    // The follow-on is filed and checked where the original's target lives, as a new request.
    let target = ResourceId::parse(&original.application_id).map_err(|_| AppError::internal())?;
    if original.kind == ROLE {
        caller.require(actions::JIT_REQUESTS_WRITE, &target.scope())?;
    }
    if target.resource_group_scope() != id.resource_group_scope() {
        return Err(AppError::new(
            ErrorCode::Conflict,
            format!(
                "the request is not filed in {target}'s resource group; make a new request there"
            ),
        ));
    }
    let l = original
        .lifecycle
        .apply(Event::Tick, &ApprovalRule::default(), now)?;
    let Some((_, end)) = l
        .window
        .filter(|_| matches!(l.state, RequestState::Approved | RequestState::Active))
    else {
        return Err(AppError::new(
            ErrorCode::Conflict,
            format!(
                "the request is {}; only approved or active requests can be extended",
                l.state
            ),
        ));
    };
    let new_id = request_id_of(&id, &uuid::Uuid::new_v4().to_string())?;
    let justification = body
        .justification
        .clone()
        .or(original.justification.clone());
    let mut row = if original.kind == NETWORK {
        let policy = ResourceId::parse(&original.application_id)?;
        caller.require(actions::POLICIES_INITIATE, &policy.scope())?;
        let mut detail = network_detail(&original)?;
        for port in detail.requested.iter_mut().flat_map(|m| m.ports.iter_mut()) {
            port.end = WindowEnd::After(body.duration);
        }
        let rules = current_rules(&mut tx, &policy).await?;
        if rules.approval.automatic {
            return Err(AppError::new(
                ErrorCode::Conflict,
                "the policy now approves automatically: initiate again to extend access",
            ));
        }
        let planned = plan_initiate(&rules, &detail.requested, now, detail.address)?;
        // Approved, the new ports supersede the old ones: access continues without a gap.
        network_lifecycle_and_row(
            &new_id,
            &caller,
            &policy,
            &rules.approval,
            detail,
            justification,
            &planned,
            now,
        )?
    } else {
        let roles = original.roles.clone();
        let rule = check_role_request(
            &mut tx,
            &caller,
            &original.application_id,
            &roles,
            body.duration,
        )
        .await
        .map_err(|e| AppError::from(e).at("duration"))?;
        let requester = Principal::parse(&caller.principal)?;
        // The new window starts where the current one ends.
        let l = Lifecycle::new(requester, Start::At(end), body.duration.get(), &rule, now);
        new_row(
            &new_id,
            ROLE,
            original.application_id.clone(),
            &caller,
            &roles,
            justification,
            &l,
        )?
    };
    row.extends = Some(original.id.clone());
    insert(tx, &Actor::from(&caller), &new_id, &row).await?;
    Ok(Reply::created_or_ok(true, view(&row)?))
}

#[utoipa::path(get, path = "/api/v1/subscriptions/{sub}/resourceGroups/{rg}/applications/{name}/jitRequests", tag = "jitRequests",
    params(("sub" = String, Path), ("rg" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = List<JitRequest>)))]
pub async fn list_application_requests(
    State(state): State<AppState>,
    caller: Caller,
    Path((sub, rg, n)): Path<(String, String, String)>,
    paging: NewestFirst,
) -> AppResult<Reply<List<JitRequest>>> {
    let app = resource_id(&sub, &rg, ResourceKind::Application, &n)?;
    caller.require(actions::APPLICATIONS_READ, &app.scope())?;
    let app = app.to_string();
    let mut tx = state.store.read().await?;
    let rows = tx
        .jit_request_history(
            JitRequestFilter {
                application: Some(&app),
                ..JitRequestFilter::default()
            },
            paging.after.as_ref().map(|r| &r.0),
            paging.limit() as u32,
        )
        .await?;
    let (rows, next_link) = paging.finish(rows, |r| Reverse(time_key(r.created_at, &r.id)));
    let value = rows.iter().map(view).collect::<AppResult<_>>()?;
    Ok(Reply::ok(List { value, next_link }))
}

#[utoipa::path(get, path = "/api/v1/inbox", tag = "jitRequests",
    responses((status = 200, body = List<JitRequest>, description = "pending requests of both kinds the caller may decide")))]
pub async fn inbox(
    State(state): State<AppState>,
    caller: Caller,
    paging: NewestFirst,
) -> AppResult<Reply<List<JitRequest>>> {
    caller.require_within(actions::REQUESTS_APPROVE, &Scope::Root)?;
    let who = Principal::parse(&caller.principal)?;
    let mut tx = state.store.read().await?;
    // Pending requests newest first, a batch at a time, keeping those the caller may decide
    // until the page is full or none are left.
    let pending = JitRequestFilter {
        state: Some(RequestState::Pending.as_str()),
        ..JitRequestFilter::default()
    };
    let mut shown = Vec::new();
    let mut after = paging.after.as_ref().map(|r| r.0.clone());
    let batch_size = paging.limit().max(GATHER_BATCH_MIN);
    'pages: loop {
        let batch = tx
            .jit_request_history(pending, after.as_ref(), batch_size as u32)
            .await?;
        let exhausted = batch.len() < batch_size;
        for row in &batch {
            after = Some(time_key(row.created_at, &row.id));
            let (Ok(scope), false) = (Scope::parse(&row.id), row.requester == caller.principal)
            else {
                continue;
            };
            if !caller.may(actions::REQUESTS_APPROVE, &scope)
                || !caller.may(actions::REQUESTS_APPROVE, &target_scope(row)?)
            {
                continue;
            }
            let Some(rule) = rule_of(&mut tx, row).await? else {
                continue;
            };
            let decided = row.lifecycle.decisions.iter().any(|d| d.by == who);
            if !decided && rule.is_approver(&who, &caller.groups) {
                shown.push(view(row)?);
                if shown.len() == paging.limit() {
                    break 'pages;
                }
            }
        }
        if exhausted {
            break;
        }
    }
    let (value, next_link) = paging.finish(shown, newest_first);
    Ok(Reply::ok(List { value, next_link }))
}

/// Filters of `GET /api/v1/history`.
#[derive(Debug, Deserialize)]
pub struct HistoryQuery {
    requester: Option<String>,
    kind: Option<String>,
    state: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

/// Machine ids in first-seen order, each once (a request lists a machine once per port).
fn machine_ids(ids: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for id in ids {
        if !out.contains(&id) {
            out.push(id);
        }
    }
    out
}

/// A network access request's state in history words, with the reason in its ports' words:
/// open ports make it `Active`; closed, it is `Expired` when its window ended and `Revoked`
/// otherwise, with the `statusReason` of the port that closed last (a request replaced by a
/// newer one is `Revoked`, `NewerRequestInitiated`, as its ports say).
fn network_state(ports: &[ajar_store::PortRow]) -> (HistoryState, Option<PortStatusReason>) {
    use ajar_core::request::PortStatus;
    if ports.iter().any(|p| p.status == PortStatus::Initiated) {
        return (HistoryState::Active, None);
    }
    match ports
        .iter()
        .max_by_key(|p| p.removed_at)
        .map(|p| p.status_reason)
    {
        Some(StatusReason::Expired) => (HistoryState::Expired, Some(PortStatusReason::Expired)),
        Some(reason) => (HistoryState::Revoked, Some(reason.into())),
        None => (HistoryState::Revoked, None),
    }
}

#[utoipa::path(get, path = "/api/v1/history", tag = "jitRequests",
    params(("requester" = Option<String>, Query), ("kind" = Option<String>, Query, description = "role or network"),
           ("state" = Option<String>, Query), ("from" = Option<String>, Query, description = "RFC 3339, inclusive"),
           ("to" = Option<String>, Query, description = "RFC 3339, exclusive"),
           ("top" = Option<u32>, Query), ("skipToken" = Option<String>, Query)),
    responses((status = 200, body = List<HistoryEntry>, description = "requests of both kinds, newest first; each shown only to its requester or to callers who may read requests at its scope")))]
pub async fn history(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<HistoryQuery>,
    page: RequestPage,
) -> AppResult<Reply<List<HistoryEntry>>> {
    let readers = [
        actions::JIT_REQUESTS_WRITE,
        actions::JIT_REQUESTS_READ,
        actions::POLICIES_INITIATE,
        actions::REQUESTS_READ,
    ];
    if !readers
        .iter()
        .any(|a| caller.permissions.allows_within(a, &Scope::Root))
    {
        return Err(AppError::forbidden(
            &caller.principal,
            actions::JIT_REQUESTS_READ,
            &Scope::Root,
        ));
    }
    let (from, to) = (instant(&query.from, "from")?, instant(&query.to, "to")?);
    let kind = match query.kind.as_deref() {
        None => None,
        Some(k @ (ROLE | NETWORK)) => Some(k),
        Some(_) => {
            return Err(
                AppError::new(ErrorCode::InvalidParameter, "kind must be role or network")
                    .at("kind"),
            );
        }
    };
    if let Some(s) = &query.state
        && HistoryState::parse(s).is_none()
    {
        return Err(AppError::new(
            ErrorCode::InvalidParameter,
            format!(
                "state must be one of {}",
                HistoryState::ALL
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
        .at("state"));
    }
    // A caller who may read no one else's requests sees only their own: ask the store for
    // those alone.
    let reads_others = [actions::JIT_REQUESTS_READ, actions::REQUESTS_READ]
        .iter()
        .any(|a| caller.permissions.allows_within(a, &Scope::Root));
    let requester = match (reads_others, query.requester.as_deref()) {
        (true, r) => r,
        (false, Some(r)) if r != caller.principal => {
            return Ok(Reply::ok(List {
                value: Vec::new(),
                next_link: None,
            }));
        }
        (false, _) => Some(caller.principal.as_str()),
    };
    // The store reads only what the caller may see (their own requests, and those where they
    // hold the read action), each part through an index; what it answers is still checked
    // below, entry by entry.
    let (roles_within, network_within) = if requester == Some(caller.principal.as_str()) {
        (None, None)
    } else {
        (
            readable(&caller, actions::JIT_REQUESTS_READ),
            readable(&caller, actions::REQUESTS_READ),
        )
    };
    let filter = HistoryFilter {
        requester,
        kind,
        state: query.state.as_deref(),
        from,
        to,
        roles_within: roles_within.as_ref(),
        network_within: network_within.as_ref(),
    };
    // The page holds `top` entries the caller may see, and the next link continues after the
    // last of them: it never names an entry the caller may not see.
    let mut tx = state.store.read().await?;
    let mut shown: Vec<(Cursor, HistoryEntry)> = Vec::new();
    let mut after = page.after.as_ref().map(|r| r.0.clone());
    'pages: loop {
        let (batch, exhausted) =
            history_batch(&mut tx, &caller, &filter, after.as_ref(), page.limit()).await?;
        for (key, entry, visible) in batch {
            after = Some(key.clone());
            if visible {
                shown.push((key, entry));
                if shown.len() == page.limit() {
                    break 'pages;
                }
            }
        }
        if exhausted {
            break;
        }
    }
    let (shown, next_link) = page.finish(shown, |(c, _)| Reverse(c.clone()));
    let value = shown.into_iter().map(|(_, e)| e).collect();
    Ok(Reply::ok(List { value, next_link }))
}

/// What history is asked for.
struct HistoryFilter<'a> {
    requester: Option<&'a str>,
    kind: Option<&'a str>,
    state: Option<&'a str>,
    from: Option<jiff::Timestamp>,
    to: Option<jiff::Timestamp>,
    /// The role activations and approval-gated requests the caller may read; `None`: all.
    roles_within: Option<&'a Readable>,
    /// The network requests the caller may read; `None`: all.
    network_within: Option<&'a Readable>,
}

/// Most parts a read of history is split into. A caller whose assignments name more scopes is
/// read in one walk of everything, filtered entry by entry: the same page, found more slowly.
const MAX_READ_PARTS: usize = 16;

/// Where the caller may read with `action`, as the store reads it: their own requests and
/// those at or beneath each scope where they hold the action. `None` when that is everything
/// (an assignment at the root) or too many parts; the entries shown are checked one by one
/// either way, so this only narrows what is read.
fn readable(caller: &Caller, action: &str) -> Option<Readable> {
    let scopes: Vec<&Scope> = caller.permissions.scopes_allowing(action).collect();
    let mut within = Readable {
        own: Some(caller.principal.clone()),
        ..Readable::default()
    };
    for scope in &scopes {
        // A scope beneath another of them adds nothing.
        if scopes.iter().any(|o| o != scope && o.contains(scope)) {
            continue;
        }
        match scope {
            Scope::Root => return None,
            Scope::Subscription(s) => within.subscriptions.push(s.as_str().to_owned()),
            Scope::ResourceGroup(s, g) => within
                .groups
                .push((s.as_str().to_owned(), g.as_str().to_owned())),
            Scope::Resource(id) => within.resources.push(id.to_string()),
        }
    }
    within.subscriptions.sort();
    within.subscriptions.dedup();
    within.groups.sort();
    within.groups.dedup();
    within.resources.sort();
    within.resources.dedup();
    let parts = within.subscriptions.len() + within.groups.len() + within.resources.len();
    (parts <= MAX_READ_PARTS).then_some(within)
}

/// Up to `limit` entries after `cursor`, newest first, from both sources, each with whether
/// it is shown (the caller may see it, and it is in the state asked for); and whether both
/// sources have nothing more.
async fn history_batch(
    tx: &mut ajar_store::Tx,
    caller: &Caller,
    filter: &HistoryFilter<'_>,
    cursor: Option<&Cursor>,
    limit: usize,
) -> AppResult<(Vec<(Cursor, HistoryEntry, bool)>, bool)> {
    let HistoryFilter {
        requester,
        kind,
        from,
        to,
        ..
    } = *filter;
    let mut entries: Vec<(Cursor, HistoryEntry, bool)> = Vec::new();
    // Role activations and approval-gated network requests.
    let rows = tx
        .jit_request_history(
            JitRequestFilter {
                application: None,
                requester,
                kind,
                state: filter.state,
                from,
                to,
                within: filter.roles_within,
            },
            cursor,
            limit as u32,
        )
        .await?;
    let mut exhausted = rows.len() < limit;
    for row in rows {
        let l = &row.lifecycle;
        let visible = row.requester == caller.principal
            || Scope::parse(&row.id).is_ok_and(|s| caller.may(actions::JIT_REQUESTS_READ, &s));
        entries.push((
            time_key(row.created_at, &row.id),
            HistoryEntry {
                id: row.id.clone(),
                kind: RequestKind::parse(&row.kind).ok_or_else(AppError::internal)?,
                target: row.application_id.clone(),
                // A network request's machines as asked (an unreadable detail shows none).
                machines: if row.kind == NETWORK {
                    network_detail(&row)
                        .map(|d| machine_ids(d.requested.iter().map(|m| m.machine.to_string())))
                        .unwrap_or_default()
                } else {
                    Vec::new()
                },
                requestor: row.requester.clone(),
                state: HistoryState::from(row.state),
                state_reason: None,
                created_at: row.created_at,
                active_from: l.window.map(|(f, _)| f),
                active_until: l.window.map(|(_, u)| u),
                justification: row.justification.clone(),
            },
            visible,
        ));
    }
    // Network access under automatic policies lives only in the network request store.
    if kind != Some(ROLE) {
        let rows = tx
            .requests(
                RequestFilter {
                    on: RequestsOn::Everywhere,
                    requestor: requester,
                    from,
                    to,
                    within: filter.network_within,
                },
                cursor,
                limit as u32,
            )
            .await?;
        exhausted &= rows.len() < limit;
        for (req, ports) in rows {
            // A request in another state is not shown, but the walk still passes it: skipping
            // it here would leave a batch of them to be read again and again.
            let (state_word, state_reason) = network_state(&ports);
            let asked = filter.state.is_none_or(|s| s == state_word.as_str());
            let visible = asked
                && (req.requestor == caller.principal
                    || Scope::parse(&req.policy_id)
                        .is_ok_and(|s| caller.may(actions::REQUESTS_READ, &s)));
            entries.push((
                time_key(req.created_at, &req.id),
                HistoryEntry {
                    id: req.id.clone(),
                    kind: RequestKind::Network,
                    target: req.policy_id.clone(),
                    machines: machine_ids(ports.iter().map(|p| p.machine_id.clone())),
                    requestor: req.requestor.clone(),
                    state: state_word,
                    state_reason,
                    created_at: req.created_at,
                    active_from: Some(req.created_at),
                    active_until: ports.iter().map(|p| p.end_time).max(),
                    justification: req.justification.clone(),
                },
                visible,
            ));
        }
    }
    // Newest first across both sources. Only the first `limit` are certain to have no entry of
    // the other source between them.
    entries.sort_by(|a, b| b.0.cmp(&a.0));
    if entries.len() > limit {
        entries.truncate(limit);
        exhausted = false;
    }
    Ok((entries, exhausted))
}
