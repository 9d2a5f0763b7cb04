//! JIT network access policies: which ports of which machines may be opened, from where, for how
//! long. A PUT names the whole policy; "enable JIT" adds one machine without touching others.

use super::paging::ByName;
use super::settings::{disabled_at, disabled_scopes};
use super::{Reply, check_preconditions, group_scope, no_content, resource_id, subscription_scope};
use crate::AppState;
use crate::auth::Caller;
use crate::body::RawBody;
use crate::error::{AppError, AppResult};
use ajar_api::ErrorCode;
use ajar_api::wire::{EnableJitBody, List, Policy, PolicyBody, PolicyView, policy_properties};
use ajar_core::FieldError;
use ajar_core::id::{Name, ResourceId, ResourceKind, Scope};
use ajar_core::policy::{MachineRules, PolicyRules, PortRule};
use ajar_core::rbac::actions;
use ajar_core::request::StatusReason;
use ajar_store::{PolicyRow, Tx};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use jiff::Timestamp;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_subscription_policies))
        .routes(routes!(list_group_policies))
        .routes(routes!(get_policy, put_policy, delete_policy))
        .routes(routes!(enable_jit))
}

/// A stored policy in the API's shape.
pub fn policy_view(row: &PolicyRow) -> AppResult<Policy> {
    let props = policy_properties(&row.rules);
    Ok(Policy {
        id: row.id.clone(),
        name: row.name.clone(),
        kind_of_resource: "jitNetworkAccessPolicies".to_owned(),
        kind: "Basic".to_owned(),
        location: row.location.clone(),
        etag: row.etag.clone(),
        properties: PolicyView {
            virtual_machines: props.virtual_machines,
            cut_established_on_expiry: props.cut_established_on_expiry,
            approval_mode: props.approval_mode,
            approvers: props.approvers,
            approval_threshold: props.approval_threshold,
            provisioning_state: "Succeeded".to_owned(),
        },
    })
}

fn new_etag() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Fails with 409 when JIT is turned off at or above `scope`.
pub async fn ensure_jit_enabled(tx: &mut Tx, scope: &Scope) -> AppResult<()> {
    let disabled = disabled_scopes(tx).await?;
    if let Some(at) = disabled_at(scope, &disabled) {
        return Err(AppError::new(
            ErrorCode::Conflict,
            format!("JIT is disabled for scope {at}"),
        )
        .at(at.to_string()));
    }
    Ok(())
}

/// Validates and stores a policy inside `tx`, with `location`. Machines must exist and not
/// belong to another policy. Open ports the new rules no longer allow are closed as
/// `PolicyChanged`. Records the change as done by `caller`. Returns whether the policy was
/// created, and the stored row.
async fn write_policy(
    tx: &mut Tx,
    caller: &Caller,
    id: &ResourceId,
    rules: &PolicyRules,
    location: Option<String>,
    now: Timestamp,
) -> AppResult<(bool, PolicyRow)> {
    rules.validate(id)?;
    ensure_jit_enabled(tx, &id.resource_group_scope()).await?;
    let policy_id = id.to_string();
    for (i, m) in rules.machines.iter().enumerate() {
        let target = format!("properties.virtualMachines[{i}].id");
        let machine_id = m.machine.to_string();
        if tx.machine(&machine_id).await?.is_none() {
            return Err(FieldError::not_found(
                target,
                format!("machine {machine_id} does not exist"),
            )
            .into());
        }
        if let Some(other) = tx.policy_of_machine(&machine_id).await?
            && other != policy_id
        {
            return Err(FieldError::conflict(
                target,
                format!("machine {machine_id} is already covered by policy {other}"),
            )
            .into());
        }
    }
    let mut closed = Vec::new();
    for port in tx.open_ports_of_policy(&policy_id).await? {
        let still_allowed = ResourceId::parse(&port.machine_id)
            .ok()
            .and_then(|m| rules.machine(&m).cloned())
            .is_some_and(|m| {
                m.ports.iter().any(|r| {
                    r.number.get() == port.number
                        && r.protocol.as_str() == port.protocol
                        && port.sources.iter().all(|s| {
                            ajar_core::net::SourcePrefix::parse(s)
                                .is_ok_and(|s| r.allows_source(&s))
                        })
                })
            });
        if !still_allowed {
            tx.close_port(&port.request_id, port.seq, StatusReason::PolicyChanged, now)
                .await?;
            closed.push(closed_port(&port));
        }
    }
    let rules_json = serde_json::to_string(rules).map_err(|_| AppError::internal())?;
    let machine_ids: Vec<String> = rules
        .machines
        .iter()
        .map(|m| m.machine.to_string())
        .collect();
    let etag = new_etag();
    let created = tx
        .put_policy(
            &policy_id,
            id.subscription.as_str(),
            id.resource_group.as_str(),
            id.name.as_str(),
            &rules_json,
            &machine_ids,
            &etag,
            location.as_deref(),
            now,
        )
        .await?;
    tx.record(
        &caller
            .did(actions::POLICIES_WRITE, &policy_id, now)
            .with_details(json!({
                "created": created,
                "rules": serde_json::to_value(rules).ok(),
                "location": location,
                "closedPorts": closed,
            })),
    )
    .await?;
    Ok((
        created,
        PolicyRow {
            id: policy_id,
            name: id.name.to_string(),
            rules: rules.clone(),
            etag,
            location,
        },
    ))
}

/// A closed port as activity details.
fn closed_port(port: &ajar_store::PortRow) -> serde_json::Value {
    json!({"requestId": port.request_id, "machineId": port.machine_id, "number": port.number})
}

fn policy_id(sub: &str, rg: &str, name: &str) -> AppResult<ResourceId> {
    resource_id(sub, rg, ResourceKind::JitNetworkAccessPolicy, name)
}

#[utoipa::path(put, path = "/api/v1/subscriptions/{sub}/resourceGroups/{rg}/jitNetworkAccessPolicies/{name}",
    tag = "policies",
    params(("sub" = String, Path), ("rg" = String, Path), ("name" = String, Path),
           ("If-Match" = Option<String>, Header, description = "ETag the caller last saw")),
    request_body = PolicyBody,
    responses((status = 201, body = Policy), (status = 200, body = Policy), (status = 412, body = ajar_api::ErrorBody)))]
pub async fn put_policy(
    State(state): State<AppState>,
    caller: Caller,
    Path((sub, rg, name)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: RawBody,
) -> AppResult<Reply<Policy>> {
    let id = policy_id(&sub, &rg, &name)?;
    caller.require(actions::POLICIES_WRITE, &id.scope())?;
    let body: PolicyBody = body.parse()?;
    let rules = body.to_domain()?;
    let mut tx = state.store.write().await?;
    let current = tx.policy(&id.to_string()).await?;
    check_preconditions(&headers, current.as_ref().map(|p| p.etag.as_str()))?;
    // A policy stays at the location it was first given: naming another one is a clash, not
    // a move.
    let kept = current.as_ref().and_then(|p| p.location.clone());
    let location = match (body.location.map(|l| l.to_string()), kept) {
        (Some(new), Some(old)) if !new.eq_ignore_ascii_case(&old) => {
            return Err(AppError::new(
                ErrorCode::Conflict,
                format!("policy {id} is kept at location {old}, not {new}"),
            )
            .at("location"));
        }
        (Some(_), Some(old)) => Some(old),
        (new, old) => new.or(old),
    };
    let (created, row) =
        write_policy(&mut tx, &caller, &id, &rules, location, state.clock.now()).await?;
    tx.commit().await?;
    Ok(Reply::created_or_ok(created, policy_view(&row)?).with_etag(&row.etag))
}

#[utoipa::path(get, path = "/api/v1/subscriptions/{sub}/resourceGroups/{rg}/jitNetworkAccessPolicies/{name}",
    tag = "policies",
    params(("sub" = String, Path), ("rg" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = Policy)))]
pub async fn get_policy(
    State(state): State<AppState>,
    caller: Caller,
    Path((sub, rg, name)): Path<(String, String, String)>,
) -> AppResult<Reply<Policy>> {
    let id = policy_id(&sub, &rg, &name)?;
    caller.require(actions::POLICIES_READ, &id.scope())?;
    let mut tx = state.store.read().await?;
    let row = tx
        .policy(&id.to_string())
        .await?
        .ok_or_else(|| AppError::not_found(&id))?;
    Ok(Reply::ok(policy_view(&row)?).with_etag(&row.etag))
}

#[utoipa::path(delete, path = "/api/v1/subscriptions/{sub}/resourceGroups/{rg}/jitNetworkAccessPolicies/{name}",
    tag = "policies",
    params(("sub" = String, Path), ("rg" = String, Path), ("name" = String, Path)),
    responses((status = 204)))]
pub async fn delete_policy(
    State(state): State<AppState>,
    caller: Caller,
    Path((sub, rg, name)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> AppResult<Response> {
    let id = policy_id(&sub, &rg, &name)?;
    caller.require(actions::POLICIES_DELETE, &id.scope())?;
    let now = state.clock.now();
    let mut tx = state.store.write().await?;
    let current = tx
        .policy(&id.to_string())
        .await?
        .ok_or_else(|| AppError::not_found(&id))?;
    check_preconditions(&headers, Some(&current.etag))?;
    let mut closed = Vec::new();
    for port in tx.open_ports_of_policy(&current.id).await? {
        tx.close_port(&port.request_id, port.seq, StatusReason::PolicyChanged, now)
            .await?;
        closed.push(closed_port(&port));
    }
    tx.delete_policy(&current.id).await?;
    tx.commit_recorded(
        &caller
            .did(actions::POLICIES_DELETE, &current.id, now)
            .with_details(json!({"closedPorts": closed})),
    )
    .await?;
    Ok(no_content())
}

/// A page of policies ends with the policy that brings the machines it covers to this many
/// (one policy at least): a policy may cover thousands of machines, and a page costs what it
/// holds. `nextLink` leads on.
pub const PAGE_MACHINES: usize = 1_000;
/// Policies read from the store at a time while a page fills.
const POLICY_BATCH: usize = 10;

async fn list(
    state: &AppState,
    caller: &Caller,
    scope: Scope,
    paging: &ByName,
) -> AppResult<Reply<List<Policy>>> {
    caller.require_within(actions::POLICIES_READ, &scope)?;
    let (Some(sub), rg) = (scope.subscription(), scope.resource_group()) else {
        return Err(AppError::new(ErrorCode::InvalidParameter, "bad scope"));
    };
    let (sub, rg) = (sub.as_str(), rg.map(|r| r.as_str()));
    let mut tx = state.store.read().await?;
    // A few at a time in id order, keeping the policies the caller may read, until the page
    // is full: by `top`, or by the machines its policies cover.
    let machines = |row: &PolicyRow| row.rules.machines.len().max(1);
    let mut gather = paging.gather().in_batches_of(POLICY_BATCH);
    while gather.wants_more() {
        let after = gather.after().map(String::as_str);
        let batch = tx.policies_page(sub, rg, after, gather.batch()).await?;
        gather.take(
            batch,
            |row| row.id.clone(),
            |row| Scope::parse(&row.id).is_ok_and(|s| caller.may(actions::POLICIES_READ, &s)),
        );
        gather.full_by(machines, PAGE_MACHINES);
    }
    drop(tx);
    let (rows, next_link) = paging.finish_by(
        gather.into_items(),
        |row| row.id.clone(),
        machines,
        PAGE_MACHINES,
    );
    let value = rows.iter().map(policy_view).collect::<AppResult<_>>()?;
    Ok(Reply::ok(List { value, next_link }))
}

#[utoipa::path(get, path = "/api/v1/subscriptions/{sub}/jitNetworkAccessPolicies", tag = "policies",
    params(("sub" = String, Path)), responses((status = 200, body = List<Policy>)))]
pub async fn list_subscription_policies(
    State(state): State<AppState>,
    caller: Caller,
    Path(sub): Path<String>,
    paging: ByName,
) -> AppResult<Reply<List<Policy>>> {
    list(&state, &caller, subscription_scope(&sub)?, &paging).await
}

#[utoipa::path(get, path = "/api/v1/subscriptions/{sub}/resourceGroups/{rg}/jitNetworkAccessPolicies",
    tag = "policies",
    params(("sub" = String, Path), ("rg" = String, Path)), responses((status = 200, body = List<Policy>)))]
pub async fn list_group_policies(
    State(state): State<AppState>,
    caller: Caller,
    Path((sub, rg)): Path<(String, String)>,
    paging: ByName,
) -> AppResult<Reply<List<Policy>>> {
    list(&state, &caller, group_scope(&sub, &rg)?, &paging).await
}

/// Name of the policy "enable JIT" adds machines to unless told otherwise.
pub const DEFAULT_POLICY: &str = "default";

#[utoipa::path(post, path = "/api/v1/subscriptions/{sub}/resourceGroups/{rg}/machines/{name}/enableJit",
    tag = "policies",
    params(("sub" = String, Path), ("rg" = String, Path), ("name" = String, Path)),
    request_body(content = Option<EnableJitBody>, description = "optional: policy name and ports; default: the OS's port, PT3H, any source"),
    responses((status = 201, body = Policy), (status = 200, body = Policy)))]
pub async fn enable_jit(
    State(state): State<AppState>,
    caller: Caller,
    Path((sub, rg, name)): Path<(String, String, String)>,
    body: RawBody,
) -> AppResult<Reply<Policy>> {
    let machine = resource_id(&sub, &rg, ResourceKind::Machine, &name)?;
    let body: EnableJitBody = body.parse_or_default()?;
    let policy_name = match body.policy {
        Some(n) => n,
        None => Name::parse(DEFAULT_POLICY)?,
    };
    let id = machine.sibling(ResourceKind::JitNetworkAccessPolicy, policy_name);
    caller.require(actions::POLICIES_WRITE, &id.scope())?;
    let mut tx = state.store.write().await?;
    let Some(row) = tx.machine(&machine.to_string()).await? else {
        return Err(AppError::not_found(&machine));
    };
    let current = tx.policy(&id.to_string()).await?;
    if let Some(existing) = &row.policy_id {
        if *existing == id.to_string()
            && let Some(current) = current
        {
            // Already enabled under this policy: nothing to change.
            return Ok(Reply::ok(policy_view(&current)?).with_etag(&current.etag));
        }
        return Err(AppError::new(
            ErrorCode::Conflict,
            format!("{machine} is already covered by policy {existing}"),
        )
        .at(machine.to_string()));
    }
    let ports = match body.ports {
        Some(ports) => {
            let wrapped = PolicyBody {
                kind: None,
                location: None,
                properties: ajar_api::wire::PolicyProperties {
                    virtual_machines: vec![ajar_api::wire::PolicyMachine {
                        id: machine.clone(),
                        ports,
                    }],
                    cut_established_on_expiry: false,
                    approval_mode: None,
                    approvers: vec![],
                    approval_threshold: None,
                },
            };
            let rules = wrapped.to_domain().map_err(|mut e| {
                e.target = e.target.replacen("properties.virtualMachines[0].", "", 1);
                AppError::from(e)
            })?;
            rules
                .machines
                .into_iter()
                .next()
                .map(|m| m.ports)
                .unwrap_or_default()
        }
        None => {
            let props = super::machines::read_properties(&row)?;
            vec![PortRule::default_for(props.os)]
        }
    };
    let mut rules = match &current {
        Some(p) => p.rules.clone(),
        None => PolicyRules {
            machines: vec![],
            cut_established: false,
            approval: Default::default(),
        },
    };
    rules.machines.push(MachineRules {
        machine: machine.clone(),
        ports,
    });
    let location = current.as_ref().and_then(|p| p.location.clone());
    let (_, stored) =
        write_policy(&mut tx, &caller, &id, &rules, location, state.clock.now()).await?;
    tx.commit().await?;
    Ok(Reply::created_or_ok(current.is_none(), policy_view(&stored)?).with_etag(&stored.etag))
}
