//! Network access requests: initiate under a policy, list history per policy and per machine,
//! read one, revoke one; and the grants (open ports) of a machine.
//!
//! Object-level rule: besides `ajar.jit/requests/read` and `ajar.jit/requests/revoke/action`,
//! a requester may read and revoke their own requests while they still hold
//! `ajar.jit/policies/initiate/action` at the policy's scope.

use super::paging::{OldestFirst, RequestPage, time_key};
use super::{Reply, resource_id};
use crate::AppState;
use crate::auth::Caller;
use crate::body::RawBody;
use crate::engine::enforced::unenforced;
use crate::engine::requests::{NetworkFiling, file_network_request};
use crate::engine::requests::{blocking_scopes, port_rows};
use crate::error::{AppError, AppResult};
use crate::metrics::access_result;
use ajar_api::ErrorCode;
use ajar_api::wire::{
    AccessRequest, AccessRequestMachine, AccessRequestPort, ConnectionDetails, Grant, InitiateBody,
    List, PortState, PortStatusReason,
};
use ajar_core::id::{ResourceId, ResourceKind};
use ajar_core::net::SourcePrefix;
use ajar_core::rbac::actions;
use ajar_core::request::{StatusReason, plan_initiate};
use ajar_store::{PortRow, RequestFilter, RequestRow, RequestsOn, at_store_precision};
use axum::extract::{Path, State};
use serde_json::json;
use std::cmp::Reverse;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(counted_initiate))
        .routes(routes!(list_policy_requests))
        .routes(routes!(get_request))
        .routes(routes!(revoke_request))
        .routes(routes!(list_machine_requests))
        .routes(routes!(list_grants))
}

/// A stored request in the API's shape, ports grouped by machine in request order.
pub fn request_view(req: &RequestRow, ports: &[PortRow]) -> AccessRequest {
    let mut machines: Vec<AccessRequestMachine> = Vec::new();
    for p in ports {
        let port = AccessRequestPort {
            number: p.number,
            protocol: p.protocol.clone(),
            allowed_source_address_prefix: None,
            allowed_source_address_prefixes: None,
            end_time_utc: p.end_time,
            status: p.status.into(),
            status_reason: p.status_reason.into(),
            mapped_port: p.mapped_port,
            connection_details: p.mapped_port.zip(p.connect_address.as_ref()).map(
                |(port, address)| ConnectionDetails {
                    address: address.clone(),
                    port,
                },
            ),
            open_since: p.applied_at,
            closed_at: p.removed_at,
        };
        let sources: Vec<SourcePrefix> = p
            .sources
            .iter()
            .filter_map(|s| SourcePrefix::parse(s).ok())
            .collect();
        let port = port.with_sources(&sources);
        match machines.iter_mut().find(|m| m.id == p.machine_id) {
            Some(m) => m.ports.push(port),
            None => machines.push(AccessRequestMachine {
                id: p.machine_id.clone(),
                ports: vec![port],
            }),
        }
    }
    AccessRequest {
        id: req.id.clone(),
        policy_id: req.policy_id.clone(),
        requestor: req.requestor.clone(),
        start_time_utc: req.created_at,
        justification: req.justification.clone(),
        virtual_machines: machines,
        approval_request_id: None,
        approval_state: None,
    }
}

fn policy_id(sub: &str, rg: &str, name: &str) -> AppResult<ResourceId> {
    resource_id(sub, rg, ResourceKind::JitNetworkAccessPolicy, name)
}

pub async fn initiate(
    State(state): State<AppState>,
    caller: Caller,
    Path((sub, rg, name)): Path<(String, String, String)>,
    body: RawBody,
) -> AppResult<Reply<AccessRequest>> {
    let id = policy_id(&sub, &rg, &name)?;
    caller.require(actions::POLICIES_INITIATE, &id.scope())?;
    let body: InitiateBody = body.parse()?;
    let requested = body.to_domain()?;
    let policy_text = id.to_string();
    let blocking_scopes = blocking_scopes(&id);
    // Check against the policy as read, then store only if it is still the same (ETag) and JIT
    // is still on; a concurrent change makes us check again.
    for _ in 0..MAX_ATTEMPTS {
        let mut tx = state.store.read().await?;
        let (etag, blocked) = tx
            .policy_check(&policy_text, &blocking_scopes)
            .await?
            .ok_or_else(|| AppError::not_found(&id))?;
        if let Some(scope) = blocked {
            return Err(AppError::new(
                ErrorCode::Conflict,
                format!("JIT is disabled for scope {scope}"),
            )
            .at(scope));
        }
        let (etag, rules) = state
            .rules_cache
            .at(&mut tx, &policy_text, &etag)
            .await?
            .ok_or_else(|| AppError::not_found(&id))?;
        let now = at_store_precision(state.clock.now());
        let planned = plan_initiate(&rules, &requested, now, caller.address)?;
        if let Some(presence) = state.enforcement_check() {
            let machines: Vec<String> = requested.iter().map(|m| m.machine.to_string()).collect();
            if let Some(refusal) = unenforced(&mut tx, presence, &machines, now).await? {
                return Err(refusal.into());
            }
        }
        drop(tx);
        if !rules.approval.automatic {
            let filing = NetworkFiling {
                policy: &id,
                etag: &etag,
                approval: &rules.approval,
                blocking_scopes: &blocking_scopes,
                requested: requested.clone(),
                justification: body.justification.clone(),
                planned: &planned,
            };
            match file_network_request(&state, &caller, filing, now).await? {
                Some((id, stored)) => {
                    return Ok(Reply::accepted(pending_view(
                        &id, &stored, &caller, &body, &planned, now,
                    )));
                }
                None => continue,
            }
        }
        let request = RequestRow {
            id: uuid::Uuid::new_v4().to_string(),
            policy_id: policy_text.clone(),
            requestor: caller.principal.clone(),
            justification: body.justification.clone(),
            source_address: caller.address.map(|a| a.to_string()),
            created_at: now,
        };
        let ports = port_rows(&request.id, &planned);
        let record = caller
            .did(actions::POLICIES_INITIATE, &policy_text, now)
            .for_request(&request.id)
            .with_details(json!({
                "justification": body.justification,
                "ports": ports.iter().map(|p| json!({
                    "machineId": p.machine_id,
                    "number": p.number,
                    "protocol": p.protocol,
                    "sources": p.sources,
                    "endTimeUtc": p.end_time.to_string(),
                })).collect::<Vec<_>>(),
            }));
        let stored = state
            .request_writer
            .write(
                request.clone(),
                ports,
                etag,
                blocking_scopes.to_vec(),
                Some(record),
            )
            .await?;
        if let Some(ports) = stored {
            return Ok(Reply::accepted(request_view(&request, &ports)));
        }
    }
    Err(AppError::new(
        ErrorCode::Conflict,
        "the policy kept changing while the request was checked; retry",
    ))
}

/// An initiate waiting for approval in the network request shape, its ports `Pending`.
fn pending_view(
    id: &ResourceId,
    stored: &ajar_store::JitRequestRow,
    caller: &Caller,
    body: &InitiateBody,
    planned: &[ajar_core::request::PlannedPort],
    now: jiff::Timestamp,
) -> AccessRequest {
    let pending = RequestRow {
        id: stored.name.clone(),
        policy_id: stored.application_id.clone(),
        requestor: caller.principal.clone(),
        justification: body.justification.clone(),
        source_address: caller.address.map(|a| a.to_string()),
        created_at: now,
    };
    let mut answer = request_view(&pending, &port_rows(&stored.name, planned));
    for port in answer
        .virtual_machines
        .iter_mut()
        .flat_map(|m| m.ports.iter_mut())
    {
        port.status = PortState::Pending;
        port.status_reason = PortStatusReason::AwaitingApproval;
    }
    answer.approval_request_id = Some(id.to_string());
    answer.approval_state = Some(stored.state);
    answer
}

/// [`initiate`], counted in `ajar_access_requests_total{kind="network"}`.
#[utoipa::path(post, path = "/api/v1/subscriptions/{sub}/resourceGroups/{rg}/jitNetworkAccessPolicies/{name}/initiate",
    tag = "requests",
    params(("sub" = String, Path), ("rg" = String, Path), ("name" = String, Path)),
    request_body = InitiateBody,
    responses((status = 202, body = AccessRequest), (status = 400, body = ajar_api::ErrorBody)))]
async fn counted_initiate(
    state: State<AppState>,
    caller: Caller,
    path: Path<(String, String, String)>,
    body: RawBody,
) -> AppResult<Reply<AccessRequest>> {
    let metrics = state.metrics.clone();
    let result = initiate(state, caller, path, body).await;
    let pending = |r: &Reply<AccessRequest>| r.body.approval_state.is_some();
    metrics.access_request("network", access_result(result.as_ref().map(pending)));
    result
}

/// How often an initiate is checked again when its policy changes underneath it.
const MAX_ATTEMPTS: usize = 3;

/// Lists a page of requests.
async fn list_requests(
    state: &AppState,
    on: RequestsOn<'_>,
    requestor: Option<&str>,
    page: &RequestPage,
) -> AppResult<Reply<List<AccessRequest>>> {
    let mut tx = state.store.read().await?;
    let rows = tx
        .requests(
            RequestFilter {
                on,
                requestor,
                from: None,
                to: None,
                within: None,
            },
            page.after.as_ref().map(|r| &r.0),
            page.limit() as u32,
        )
        .await?;
    drop(tx);
    let (rows, next_link) = page.finish(rows, |(r, _)| Reverse(time_key(r.created_at, &r.id)));
    let value = rows.iter().map(|(r, p)| request_view(r, p)).collect();
    Ok(Reply::ok(List { value, next_link }))
}

#[utoipa::path(get, path = "/api/v1/subscriptions/{sub}/resourceGroups/{rg}/jitNetworkAccessPolicies/{name}/requests",
    tag = "requests",
    params(("sub" = String, Path), ("rg" = String, Path), ("name" = String, Path),
           ("top" = Option<u32>, Query), ("skipToken" = Option<String>, Query)),
    responses((status = 200, body = List<AccessRequest>)))]
pub async fn list_policy_requests(
    State(state): State<AppState>,
    caller: Caller,
    Path((sub, rg, name)): Path<(String, String, String)>,
    page: RequestPage,
) -> AppResult<Reply<List<AccessRequest>>> {
    let id = policy_id(&sub, &rg, &name)?;
    let scope = id.scope();
    let only_own = if caller.may(actions::REQUESTS_READ, &scope) {
        None
    } else {
        caller
            .require(actions::POLICIES_INITIATE, &scope)
            .map_err(|_| AppError::forbidden(&caller.principal, actions::REQUESTS_READ, &scope))?;
        Some(caller.principal.as_str())
    };
    let id_text = id.to_string();
    list_requests(&state, RequestsOn::Policy(&id_text), only_own, &page).await
}

#[utoipa::path(get, path = "/api/v1/subscriptions/{sub}/resourceGroups/{rg}/machines/{name}/requests",
    tag = "requests",
    params(("sub" = String, Path), ("rg" = String, Path), ("name" = String, Path),
           ("top" = Option<u32>, Query), ("skipToken" = Option<String>, Query)),
    responses((status = 200, body = List<AccessRequest>)))]
pub async fn list_machine_requests(
    State(state): State<AppState>,
    caller: Caller,
    Path((sub, rg, name)): Path<(String, String, String)>,
    page: RequestPage,
) -> AppResult<Reply<List<AccessRequest>>> {
    let id = resource_id(&sub, &rg, ResourceKind::Machine, &name)?;
    let scope = id.scope();
    let only_own = if caller.may(actions::REQUESTS_READ, &scope) {
        None
    } else if caller
        .permissions
        .allows_within(actions::POLICIES_INITIATE, &id.resource_group_scope())
    {
        Some(caller.principal.as_str())
    } else {
        return Err(AppError::forbidden(
            &caller.principal,
            actions::REQUESTS_READ,
            &scope,
        ));
    };
    let id_text = id.to_string();
    list_requests(&state, RequestsOn::Machine(&id_text), only_own, &page).await
}

/// Loads a request of a policy and checks the caller may act on it: `action` at the policy's
/// scope, or it is the caller's own request and they may still initiate there.
async fn load_authorized(
    caller: &Caller,
    policy: &ResourceId,
    request_id: &str,
    action: &str,
    tx: &mut ajar_store::Tx,
) -> AppResult<(RequestRow, Vec<PortRow>)> {
    let scope = policy.scope();
    let privileged = caller.may(action, &scope);
    let may_own = caller.may(actions::POLICIES_INITIATE, &scope);
    if !privileged && !may_own {
        return Err(AppError::forbidden(&caller.principal, action, &scope));
    }
    let found = tx
        .request(request_id)
        .await?
        .filter(|(r, _)| r.policy_id == policy.to_string());
    let Some((req, ports)) = found else {
        return Err(AppError::not_found(format!("request {request_id}")));
    };
    if !privileged && req.requestor != caller.principal {
        return Err(AppError::forbidden(&caller.principal, action, &scope));
    }
    Ok((req, ports))
}

#[utoipa::path(get, path = "/api/v1/subscriptions/{sub}/resourceGroups/{rg}/jitNetworkAccessPolicies/{name}/requests/{id}",
    tag = "requests",
    params(("sub" = String, Path), ("rg" = String, Path), ("name" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = AccessRequest)))]
pub async fn get_request(
    State(state): State<AppState>,
    caller: Caller,
    Path((sub, rg, name, request_id)): Path<(String, String, String, String)>,
) -> AppResult<Reply<AccessRequest>> {
    let policy = policy_id(&sub, &rg, &name)?;
    let mut tx = state.store.read().await?;
    let (req, ports) = load_authorized(
        &caller,
        &policy,
        &request_id,
        actions::REQUESTS_READ,
        &mut tx,
    )
    .await?;
    Ok(Reply::ok(request_view(&req, &ports)))
}

#[utoipa::path(post, path = "/api/v1/subscriptions/{sub}/resourceGroups/{rg}/jitNetworkAccessPolicies/{name}/requests/{id}/revoke",
    tag = "requests",
    params(("sub" = String, Path), ("rg" = String, Path), ("name" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = AccessRequest)))]
pub async fn revoke_request(
    State(state): State<AppState>,
    caller: Caller,
    Path((sub, rg, name, request_id)): Path<(String, String, String, String)>,
) -> AppResult<Reply<AccessRequest>> {
    let policy = policy_id(&sub, &rg, &name)?;
    let now = state.clock.now();
    let mut tx = state.store.write().await?;
    let (req, ports) = load_authorized(
        &caller,
        &policy,
        &request_id,
        actions::REQUESTS_REVOKE,
        &mut tx,
    )
    .await?;
    for p in &ports {
        tx.close_port(&p.request_id, p.seq, StatusReason::UserRequested, now)
            .await?;
    }
    crate::engine::requests::network_request_revoked(
        &mut tx,
        &policy,
        &req.id,
        &caller,
        at_store_precision(now),
    )
    .await?;
    tx.record(
        &caller
            .did(actions::REQUESTS_REVOKE, &policy.to_string(), now)
            .for_request(&req.id)
            .with_details(json!({"closedPorts": ports.len()})),
    )
    .await?;
    let (req, ports) = tx
        .request(&req.id)
        .await?
        .ok_or_else(|| AppError::not_found(format!("request {request_id}")))?;
    tx.commit().await?;
    Ok(Reply::ok(request_view(&req, &ports)))
}

#[utoipa::path(get, path = "/api/v1/subscriptions/{sub}/resourceGroups/{rg}/machines/{name}/grants",
    tag = "requests",
    params(("sub" = String, Path), ("rg" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = List<Grant>)))]
pub async fn list_grants(
    State(state): State<AppState>,
    caller: Caller,
    Path((sub, rg, name)): Path<(String, String, String)>,
    paging: OldestFirst,
) -> AppResult<Reply<List<Grant>>> {
    let id = resource_id(&sub, &rg, ResourceKind::Machine, &name)?;
    caller.require(actions::REQUESTS_READ, &id.scope())?;
    let mut tx = state.store.read().await?;
    if tx.machine(&id.to_string()).await?.is_none() {
        return Err(AppError::not_found(&id));
    }
    let rows = tx.grants(&id.to_string(), state.clock.now()).await?;
    let value = rows
        .into_iter()
        .map(|g| Grant {
            request_id: g.port.request_id,
            machine_id: g.port.machine_id,
            number: g.port.number,
            protocol: g.port.protocol,
            source_address_prefixes: g.port.sources,
            requestor: g.requestor,
            start_time_utc: g.created_at,
            end_time_utc: g.port.end_time,
            mapped_port: g.port.mapped_port,
        })
        .collect();
    Ok(Reply::ok(paging.list(value, |g| {
        let port = format!("{}/{}/{}", g.request_id, g.number, g.protocol);
        time_key(g.end_time_utc, port)
    })))
}
