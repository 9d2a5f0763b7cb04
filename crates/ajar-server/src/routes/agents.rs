//! Enforcement agents: registration (with an agent token), health, the desired-state feed the
//! agent long-polls, and the agent's reports of what it applied.
//!
//! An agent authenticates as the principal `agent:NAME`. It holds no role: the only endpoints it
//! may use are those under `/api/v1/agent/`, and they only ever show its own machines.

use super::machines::{read_properties, taken_target};
use super::paging::ByName;
use super::{Reply, no_content};
use crate::AppState;
use crate::auth::{Caller, new_token};
use crate::body::RawBody;
use crate::engine::desired::{AWS_GROUP_LABEL, AWS_INSTANCE_LABEL, aws_targets};
use crate::error::{AppError, AppResult};
use crate::presence::Presence;
use ajar_api::ErrorCode;
use ajar_api::wire::{
    Agent, AgentCreate, AgentReport, DesiredState, Exposure, Inventory, InventoryRefusal,
    InventoryResult, List, MachineProperties, MachineStatus,
};
use ajar_core::agent::{AgentMode, is_live};
use ajar_core::id::{ResourceId, ResourceKind, Scope};
use ajar_core::rbac::actions;
use ajar_store::{AgentRow, TokenRow};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::Deserialize;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_agents, create_agent))
        .routes(routes!(get_agent, delete_agent))
        .routes(routes!(desired_state))
        .routes(routes!(report))
        .routes(routes!(put_inventory))
}

/// Principal prefix of agent tokens.
pub const AGENT_PRINCIPAL_PREFIX: &str = "agent:";

/// Longest a desired-state long poll waits for a change.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

fn view(a: AgentRow, token: Option<String>, now: jiff::Timestamp, presence: &Presence) -> Agent {
    let last_seen = presence.last_seen(&a.id, a.last_seen);
    Agent {
        id: a.id,
        token,
        name: a.name,
        mode: a.mode,
        machines: a.machines,
        public_address: a.public_address,
        mapped_port_range: a.port_range.map(|(l, h)| format!("{l}-{h}")),
        address_prefixes: a.address_prefixes,
        inventory_scope: a.inventory_scope,
        live: is_live(last_seen, now),
        last_seen,
        version: a.version,
        applied_revision: a.applied_revision,
        current_revision: a.revision,
    }
}

#[utoipa::path(post, path = "/api/v1/agents", tag = "agents", request_body = AgentCreate,
    responses((status = 201, body = Agent, description = "the agent's token is in `token`, shown only here")))]
pub async fn create_agent(
    State(state): State<AppState>,
    caller: Caller,
    body: RawBody,
) -> AppResult<Reply<Agent>> {
    caller.require(actions::AGENTS_WRITE, &Scope::Root)?;
    let body: AgentCreate = body.parse()?;
    match body.mode {
        AgentMode::Gateway if body.public_address.is_none() => {
            return Err(AppError::new(
                ErrorCode::ValidationFailed,
                "a gateway needs the public address clients connect to",
            )
            .at("publicAddress"));
        }
        AgentMode::Gateway if body.mapped_port_range.is_none() => {
            return Err(AppError::new(
                ErrorCode::ValidationFailed,
                "a gateway needs a mapped-port range such as 40000-40999",
            )
            .at("mappedPortRange"));
        }
        AgentMode::Host | AgentMode::Aws
            if body.public_address.is_some() || body.mapped_port_range.is_some() =>
        {
            return Err(AppError::new(
                ErrorCode::ValidationFailed,
                "publicAddress and mappedPortRange are for gateways only",
            )
            .at("mode"));
        }
        _ => {}
    }
    if let Some(scope) = &body.inventory_scope {
        if body.mode != AgentMode::Aws {
            return Err(AppError::new(
                ErrorCode::ValidationFailed,
                "an inventory scope is for aws agents only",
            )
            .at("inventoryScope"));
        }
        if !matches!(scope, Scope::ResourceGroup(..)) {
            return Err(AppError::new(
                ErrorCode::ValidationFailed,
                format!(
                    "the inventory scope {scope} is not a resource group \
                     (/subscriptions/{{sub}}/resourceGroups/{{rg}})"
                ),
            )
            .at("inventoryScope"));
        }
        // The agent will create and change machines there: whoever registers it must be
        // allowed to do so themselves.
        caller.require(actions::MACHINES_WRITE, scope)?;
    }
    let now = state.clock.now();
    let mut tx = state.store.write().await?;
    if tx.agent_by_name(body.name.as_str()).await?.is_some() {
        return Err(AppError::new(
            ErrorCode::Conflict,
            format!("an agent named {} exists", body.name),
        )
        .at("name"));
    }
    let mut machines = Vec::with_capacity(body.machines.len());
    for (i, m) in body.machines.iter().enumerate() {
        let id = m.to_string();
        let target = format!("machines[{i}]");
        if tx.machine(&id).await?.is_none() {
            return Err(
                AppError::new(ErrorCode::NotFound, format!("machine {id} does not exist"))
                    .at(target),
            );
        }
        if machines.contains(&id) {
            return Err(AppError::new(
                ErrorCode::ValidationFailed,
                format!("machine {id} is listed twice"),
            )
            .at(target));
        }
        if let Some(other) = tx.agent_of_machine(&id).await? {
            return Err(AppError::new(
                ErrorCode::Conflict,
                format!("machine {id} is already guarded by agent {other}"),
            )
            .at(target));
        }
        machines.push(id);
    }
    if body.address_prefixes.as_ref().is_some_and(|p| p.len() > 64) {
        return Err(AppError::new(
            ErrorCode::ValidationFailed,
            "at most 64 address prefixes are allowed",
        )
        .at("addressPrefixes"));
    }
    // Addresses decide what the agent protects and exposes: each machine's must lie inside
    // the agent's networks, and no two of its machines may share one.
    let mut seen: Vec<(String, Vec<std::net::IpAddr>)> = Vec::new();
    for (i, id) in machines.iter().enumerate() {
        let Some(row) = tx.machine(id).await? else {
            continue;
        };
        let props = read_properties(&row)?;
        ajar_core::agent::check_guarded_addresses(
            &props.addresses,
            body.address_prefixes.as_deref(),
            &seen,
        )
        .map_err(|e| {
            let message = format!("machine {id}: {}", e.message);
            AppError::from(ajar_core::FieldError { message, ..e }).at(format!("machines[{i}]"))
        })?;
        seen.push((id.clone(), props.addresses));
    }
    if let Some(range) = body.mapped_port_range {
        for other in tx.agents().await? {
            if let Some((l, h)) = other.port_range
                && other.public_address.as_deref()
                    == body.public_address.map(|a| a.to_string()).as_deref()
                && range.overlaps(&ajar_core::agent::PortRange { low: l, high: h })
            {
                return Err(AppError::new(
                    ErrorCode::Conflict,
                    format!(
                        "the range overlaps agent {}'s on the same address",
                        other.name
                    ),
                )
                .at("mappedPortRange"));
            }
        }
    }
    let (secret, hash) = new_token()?;
    let token = TokenRow {
        id: uuid::Uuid::new_v4().to_string(),
        principal: format!("{AGENT_PRINCIPAL_PREFIX}{}", body.name),
        description: Some(format!("agent {}", body.name)),
        created_by: caller.principal.clone(),
        created_at: now,
        expires_at: None,
        idp_groups: Vec::new(),
        parent_id: None,
    };
    tx.insert_token(&token, &hash).await?;
    let row = AgentRow {
        id: uuid::Uuid::new_v4().to_string(),
        name: body.name.to_string(),
        mode: body.mode.as_str().to_owned(),
        public_address: body.public_address.map(|a| a.to_string()),
        port_range: body.mapped_port_range.map(|r| (r.low, r.high)),
        token_id: token.id.clone(),
        last_seen: None,
        version: None,
        applied_revision: None,
        revision: 0,
        machines,
        address_prefixes: body
            .address_prefixes
            .as_ref()
            .map(|p| p.iter().map(ToString::to_string).collect()),
        inventory_scope: body.inventory_scope.as_ref().map(ToString::to_string),
    };
    tx.insert_agent(&row, now).await?;
    tx.commit_recorded(
        &caller
            .did(actions::AGENTS_WRITE, &format!("/agents/{}", row.id), now)
            .with_details(serde_json::json!({
                "name": row.name,
                "mode": row.mode,
                "machines": row.machines,
                "publicAddress": row.public_address,
                "addressPrefixes": row.address_prefixes,
                "inventoryScope": row.inventory_scope,
            })),
    )
    .await?;
    tracing::info!(agent = %row.name, by = %caller.principal, "agent registered");
    Ok(Reply::created_or_ok(
        true,
        view(row, Some(secret), now, &state.presence),
    ))
}

#[utoipa::path(get, path = "/api/v1/agents", tag = "agents", responses((status = 200, body = List<Agent>)))]
pub async fn list_agents(
    State(state): State<AppState>,
    caller: Caller,
    paging: ByName,
) -> AppResult<Reply<List<Agent>>> {
    caller.require(actions::AGENTS_READ, &Scope::Root)?;
    let now = state.clock.now();
    let mut tx = state.store.read().await?;
    let rows = tx
        .agents_page(paging.after.as_deref(), paging.limit())
        .await?;
    let (rows, next_link) = paging.finish(rows, |a| a.name.clone());
    let value = rows
        .into_iter()
        .map(|a| view(a, None, now, &state.presence))
        .collect();
    Ok(Reply::ok(List { value, next_link }))
}

#[utoipa::path(get, path = "/api/v1/agents/{id}", tag = "agents",
    params(("id" = String, Path)), responses((status = 200, body = Agent)))]
pub async fn get_agent(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> AppResult<Reply<Agent>> {
    caller.require(actions::AGENTS_READ, &Scope::Root)?;
    let mut tx = state.store.read().await?;
    let agent = tx
        .agent(&id)
        .await?
        .ok_or_else(|| AppError::not_found(format!("agent {id}")))?;
    Ok(Reply::ok(view(
        agent,
        None,
        state.clock.now(),
        &state.presence,
    )))
}

#[utoipa::path(delete, path = "/api/v1/agents/{id}", tag = "agents",
    params(("id" = String, Path)), responses((status = 204)))]
pub async fn delete_agent(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> AppResult<Response> {
    caller.require(actions::AGENTS_WRITE, &Scope::Root)?;
    let mut tx = state.store.write().await?;
    let agent = tx
        .agent(&id)
        .await?
        .ok_or_else(|| AppError::not_found(format!("agent {id}")))?;
    tx.delete_token(&agent.token_id).await?;
    tx.delete_agent(&id).await?;
    tx.commit_recorded(
        &caller
            .did(
                actions::AGENTS_WRITE,
                &format!("/agents/{id}"),
                state.clock.now(),
            )
            .with_details(serde_json::json!({"name": agent.name, "deleted": true})),
    )
    .await?;
    Ok(no_content())
}

/// The registered agent the caller authenticates as, or 403.
async fn calling_agent(state: &AppState, caller: &Caller) -> AppResult<Arc<AgentRow>> {
    let forbidden = || {
        AppError::new(
            ErrorCode::AuthorizationFailed,
            format!("{} is not a registered agent", caller.principal),
        )
    };
    let name = caller
        .principal
        .strip_prefix(AGENT_PRINCIPAL_PREFIX)
        .ok_or_else(forbidden)?;
    state
        .agents
        .by_name(&state.store, name)
        .await?
        .ok_or_else(forbidden)
}

#[derive(Debug, Deserialize)]
pub struct DesiredQuery {
    after: Option<String>,
    #[serde(rename = "waitSeconds")]
    wait_seconds: Option<String>,
    #[serde(rename = "changesOnly")]
    changes_only: Option<String>,
}

/// Builds an agent's desired state: reads its machines, their open grants and the policies
/// of both, then projects them ([`crate::engine::desired::project`]). Given the revision the
/// agent holds, only the machines changed since are read and sent, unless its set of machines
/// changed since or most of its machines changed.
async fn build_desired(
    state: &AppState,
    agent: &AgentRow,
    held: Option<i64>,
) -> AppResult<DesiredState> {
    let now = state.clock.now();
    // Kept from here on: the agent's next poll waits on it without reading the store. Made
    // before the revision is read, so no commit in between goes unnoticed.
    let wakes = state.store.agent_wakes();
    drop(wakes.subscribe(&agent.id));
    let mut tx = state.store.read().await?;
    // The revision is read before what it labels, so the state sent is at least that new.
    let (revision, full_revision) = tx.agent_revisions(&agent.id).await?.ok_or_else(|| {
        AppError::new(
            ErrorCode::AuthorizationFailed,
            format!("agent {} is no longer registered", agent.name),
        )
    })?;
    wakes.note(&agent.id, revision);
    let mut since = held.filter(|h| *h >= full_revision && *h <= revision);
    let mut machines = tx.agent_machines_since(&agent.id, since).await?;
    if since.is_some() && machines.len() * 2 > agent.machines.len() {
        since = None;
        machines = tx.agent_machines_since(&agent.id, None).await?;
    }
    let grants = tx.agent_grants_since(&agent.id, now, since).await?;
    let mut policies = HashMap::new();
    for policy_id in machines
        .iter()
        .filter_map(|m| m.policy_id.clone())
        .chain(grants.iter().map(|g| g.policy_id.clone()))
    {
        if !policies.contains_key(&policy_id)
            && let Some((_, rules)) = state.rules_cache.load(&mut tx, &policy_id).await?
        {
            policies.insert(policy_id, rules);
        }
    }
    drop(tx);
    let mut guarded = Vec::with_capacity(machines.len());
    for m in machines {
        let props = read_properties(&m)?;
        guarded.push(crate::engine::desired::Guarded {
            id: m.id,
            aws: crate::engine::desired::aws_target(&props.labels),
            addresses: props.addresses,
            policy_id: m.policy_id,
        });
    }
    let mut desired = crate::engine::desired::project(
        crate::engine::desired::Agent {
            mode: AgentMode::parse(&agent.mode)?,
            public_address: agent.public_address.as_deref().and_then(|a| a.parse().ok()),
        },
        revision,
        now,
        &guarded,
        &grants,
        &policies,
    );
    desired.changes_only = since.is_some();
    Ok(desired)
}

/// A wait shortened by a random part of up to a fifth, so agents that connected together (after a
/// restart of the server, say) do not all come back at the same instant, poll after poll.
fn spread(wait: Duration) -> Duration {
    let random = uuid::Uuid::new_v4().as_u128() as u64;
    let fifth = wait / 5;
    wait - fifth.mul_f64(random as f64 / u64::MAX as f64)
}

#[utoipa::path(get, path = "/api/v1/agent/desiredState", tag = "agents",
    params(("after" = Option<i64>, Query, description = "the revision the agent holds: answer once its desired state is past it, with only the machines changed since"),
           ("waitSeconds" = Option<u64>, Query, description = "longest wait, at most 60 (default 25)"),
           ("changesOnly" = Option<bool>, Query, description = "true: with `after`, answer only the machines changed since (see `changesOnly` in the answer)")),
    responses((status = 200, body = DesiredState)))]
pub async fn desired_state(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<DesiredQuery>,
) -> AppResult<Reply<DesiredState>> {
    let agent = calling_agent(&state, &caller).await?;
    let number = |name: &str, v: &Option<String>| -> AppResult<Option<i64>> {
        v.as_deref()
            .map(|s| {
                s.parse::<i64>().map_err(|_| {
                    AppError::new(
                        ErrorCode::InvalidParameter,
                        format!("{name} must be a whole number"),
                    )
                    .at(name)
                })
            })
            .transpose()
    };
    let after = number("after", &query.after)?;
    let wait = number("waitSeconds", &query.wait_seconds)?
        .map(|s| Duration::from_secs(s.clamp(0, MAX_WAIT.as_secs() as i64) as u64))
        .unwrap_or(Duration::from_secs(25));
    let wait = spread(wait);
    let changes_only = match query.changes_only.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return Err(AppError::new(
                ErrorCode::InvalidParameter,
                "changesOnly must be true or false",
            )
            .at("changesOnly"));
        }
    };
    state.presence.seen(&agent.id, state.clock.now());
    if let Some(after) = after {
        // Subscribe before reading the stored revision, so a change in between is not missed;
        // once this process knows the agent, its revision is kept here and waiting reads
        // nothing.
        let wakes = state.store.agent_wakes();
        let (mut revision, new) = wakes.subscribe(&agent.id);
        if new
            && let Some((stored, _)) = state.store.read().await?.agent_revisions(&agent.id).await?
        {
            wakes.note(&agent.id, stored);
        }
        if *revision.borrow_and_update() <= after {
            let mut stopping = state.stopping.clone();
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = revision.wait_for(|r| *r > after) => {}
                _ = stopping.wait_for(|s| *s) => {}
            }
        }
        if changes_only && *revision.borrow() == after && wakes.current() {
            // Nothing changed for this agent: say so without reading the store.
            return Ok(Reply::ok(DesiredState {
                revision: after,
                server_time: state.clock.now(),
                mode: AgentMode::parse(&agent.mode)?,
                public_address: agent.public_address.as_deref().and_then(|a| a.parse().ok()),
                machines: Vec::new(),
                changes_only: true,
            }));
        }
    }
    let held = after.filter(|_| changes_only);
    Ok(Reply::ok(build_desired(&state, &agent, held).await?))
}

#[utoipa::path(post, path = "/api/v1/agent/report", tag = "agents", request_body = AgentReport,
    responses((status = 204)))]
pub async fn report(
    State(state): State<AppState>,
    caller: Caller,
    body: RawBody,
) -> AppResult<Response> {
    let agent = calling_agent(&state, &caller).await?;
    let body: AgentReport = body.parse()?;
    if body.version.len() > 64 || body.opened.len() + body.closed.len() > 100_000 {
        return Err(AppError::new(ErrorCode::ValidationFailed, "report too large").at("version"));
    }
    let statuses = check_statuses(&body.machines)?;
    // Only an aws agent finds standing exposures (rules of a cloud firewall that something else
    // left open): a host or gateway agent has no machine statuses to report.
    let mode = AgentMode::parse(&agent.mode)?;
    if !statuses.is_empty() && mode != AgentMode::Aws {
        return Err(AppError::new(
            ErrorCode::ValidationFailed,
            format!(
                "agent {} is a {} agent: only aws agents report machine statuses",
                agent.name,
                mode.as_str()
            ),
        )
        .at("machines"));
    }
    let now = state.clock.now();
    let mut tx = state.store.write().await?;
    // Every machine reported on must be the agent's own before anything of the report is kept.
    let ids: Vec<&str> = statuses.iter().map(|m| m.id.as_str()).collect();
    let own: HashSet<String> = tx
        .guarded_among(&agent.id, &ids)
        .await?
        .into_iter()
        .collect();
    if let Some((i, m)) = statuses
        .iter()
        .enumerate()
        .find(|(_, m)| !own.contains(&m.id))
    {
        return Err(AppError::new(
            ErrorCode::AuthorizationFailed,
            format!(
                "agent {} does not guard machine {}: it reports only on its own machines",
                agent.name, m.id
            ),
        )
        .at(format!("machines[{i}]")));
    }
    tx.agent_applied(&agent.id, &body.version, body.applied_revision, now)
        .await?;
    for (ports, opened) in [(&body.opened, true), (&body.closed, false)] {
        for g in ports {
            let Some(machine) = tx
                .mark_port(&agent.id, &g.request_id, g.seq, g.at, opened)
                .await?
            else {
                continue;
            };
            let action = if opened {
                "ajar.agents/portOpened"
            } else {
                "ajar.agents/portClosed"
            };
            tx.record(
                &caller
                    .did(action, &machine, now)
                    .for_request(&g.request_id)
                    .with_details(serde_json::json!({"seq": g.seq, "at": g.at.to_string()})),
            )
            .await?;
        }
    }
    apply_statuses(&mut tx, &caller, &statuses, now).await?;
    // Each port opened or closed and each change of a machine's status is recorded above; the
    // rest is last-seen bookkeeping.
    tx.commit_unrecorded().await?;
    Ok(no_content())
}

/// Most machine statuses in one report.
pub const MAX_STATUSES: usize = 1_000;
/// Most standing exposures reported on one machine.
pub const MAX_EXPOSURES: usize = 100;
/// Longest text in a machine status (ids, reasons, sources, what opens a port).
pub const MAX_STATUS_TEXT: usize = 256;

/// Checks a report's machine statuses against the limits, and answers them with each one's
/// exposures sorted and without repeats (so equal findings compare equal).
fn check_statuses(statuses: &[MachineStatus]) -> AppResult<Vec<MachineStatus>> {
    let invalid = |target: String, message: String| {
        Err(AppError::new(ErrorCode::ValidationFailed, message).at(target))
    };
    if statuses.len() > MAX_STATUSES {
        return invalid(
            "machines".into(),
            format!("at most {MAX_STATUSES} machine statuses are allowed in one report"),
        );
    }
    let long = |s: &str| s.chars().count() > MAX_STATUS_TEXT;
    let too_long = format!("at most {MAX_STATUS_TEXT} characters are allowed");
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(statuses.len());
    for (i, m) in statuses.iter().enumerate() {
        if long(&m.id) {
            return invalid(format!("machines[{i}].id"), too_long);
        }
        if !seen.insert(m.id.as_str()) {
            return invalid(
                format!("machines[{i}].id"),
                format!("machine {} is reported twice", m.id),
            );
        }
        if m.unsupported_reason.as_deref().is_some_and(long) {
            return invalid(format!("machines[{i}].unsupportedReason"), too_long);
        }
        if m.exposures.len() > MAX_EXPOSURES {
            return invalid(
                format!("machines[{i}].exposures"),
                format!("at most {MAX_EXPOSURES} exposures are allowed per machine"),
            );
        }
        for (j, e) in m.exposures.iter().enumerate() {
            if long(&e.source) {
                return invalid(format!("machines[{i}].exposures[{j}].source"), too_long);
            }
            if long(&e.allowed_by) {
                return invalid(format!("machines[{i}].exposures[{j}].allowedBy"), too_long);
            }
        }
        let exposures: BTreeSet<Exposure> = m.exposures.iter().cloned().collect();
        out.push(MachineStatus {
            id: m.id.clone(),
            unsupported_reason: m.unsupported_reason.clone(),
            exposures: exposures.into_iter().collect(),
        });
    }
    Ok(out)
}

/// Reported standing exposures that appeared on a machine.
const EXPOSURE_FOUND: &str = "ajar.machines/exposureFound";
/// Reported standing exposures that went away.
const EXPOSURE_CLEARED: &str = "ajar.machines/exposureCleared";
/// The enforcement point said it cannot enforce access on a machine (or changed why).
const ENFORCEMENT_UNSUPPORTED: &str = "ajar.machines/enforcementUnsupported";
/// The enforcement point can enforce access on a machine again.
const ENFORCEMENT_RESTORED: &str = "ajar.machines/enforcementRestored";

/// Stores each machine's status where it differs from what is stored, recording at the
/// machine's scope, as the agent, the exposures that appeared and went away and the reason
/// appearing or going. A status equal to the stored one writes and records nothing, so
/// enforcers reporting the same findings cause no churn.
async fn apply_statuses(
    tx: &mut ajar_store::Tx,
    caller: &Caller,
    statuses: &[MachineStatus],
    now: jiff::Timestamp,
) -> AppResult<()> {
    if statuses.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = statuses.iter().map(|m| m.id.as_str()).collect();
    let mut stored: HashMap<String, ajar_store::EnforcementRow> = tx
        .machine_enforcement(&ids)
        .await?
        .into_iter()
        .map(|r| (r.machine_id.clone(), r))
        .collect();
    for m in statuses {
        let before = stored.remove(&m.id);
        let old_reason = before.as_ref().and_then(|r| r.unsupported_reason.clone());
        let old: Vec<Exposure> = before
            .as_ref()
            .map(|r| read_exposures(&m.id, &r.exposures))
            .unwrap_or_default();
        if old_reason == m.unsupported_reason && old == m.exposures {
            continue;
        }
        let json = serde_json::to_string(&m.exposures).map_err(|_| AppError::internal())?;
        let row = ajar_store::EnforcementRow {
            machine_id: m.id.clone(),
            unsupported_reason: m.unsupported_reason.clone(),
            exposures: json,
            exposure_count: i64::try_from(m.exposures.len()).unwrap_or(i64::MAX),
        };
        tx.set_machine_enforcement(&m.id, Some(&row), now).await?;
        let appeared: Vec<&Exposure> = m.exposures.iter().filter(|e| !old.contains(e)).collect();
        let gone: Vec<&Exposure> = old.iter().filter(|e| !m.exposures.contains(e)).collect();
        for (action, list) in [(EXPOSURE_FOUND, appeared), (EXPOSURE_CLEARED, gone)] {
            if !list.is_empty() {
                tx.record(
                    &caller
                        .did(action, &m.id, now)
                        .with_details(serde_json::json!({"exposures": list})),
                )
                .await?;
            }
        }
        match (&old_reason, &m.unsupported_reason) {
            (old, Some(reason)) if old.as_ref() != Some(reason) => {
                tx.record(
                    &caller
                        .did(ENFORCEMENT_UNSUPPORTED, &m.id, now)
                        .with_details(serde_json::json!({"reason": reason})),
                )
                .await?;
            }
            (Some(reason), None) => {
                tx.record(
                    &caller
                        .did(ENFORCEMENT_RESTORED, &m.id, now)
                        .with_details(serde_json::json!({"previousReason": reason})),
                )
                .await?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Standing exposures as stored; unreadable ones are logged and taken as none.
pub(super) fn read_exposures(machine: &str, json: &str) -> Vec<Exposure> {
    serde_json::from_str(json).unwrap_or_else(|e| {
        tracing::error!(machine, error = %e, "stored exposures unreadable");
        Vec::new()
    })
}

/// Most machines in one inventory.
pub const MAX_INVENTORY: usize = 1_000;

#[utoipa::path(put, path = "/api/v1/agent/inventory", tag = "agents", request_body = Inventory,
    description = "An `aws` agent registers the instances it discovered as machines of its \
        inventory scope, in one transaction: each is created (and guarded by the agent) when \
        absent, updated when the agent guards it, and refused when another agent or none guards \
        it. Each machine is named after its instance (label `aws:instance-id`); one that is \
        not, one that names a security group (`aws:group-id`, kept as an administrator set it) \
        or one whose instance another machine names is refused.",
    responses((status = 200, body = InventoryResult)))]
pub async fn put_inventory(
    State(state): State<AppState>,
    caller: Caller,
    body: RawBody,
) -> AppResult<Reply<InventoryResult>> {
    let agent = calling_agent(&state, &caller).await?;
    let mode = AgentMode::parse(&agent.mode)?;
    if mode != AgentMode::Aws {
        return Err(AppError::new(
            ErrorCode::AuthorizationFailed,
            format!(
                "agent {} is a {} agent: only aws agents register the machines they discover",
                agent.name,
                mode.as_str()
            ),
        ));
    }
    let Some(Scope::ResourceGroup(sub, rg)) = agent
        .inventory_scope
        .as_deref()
        .and_then(|s| Scope::parse(s).ok())
    else {
        return Err(AppError::new(
            ErrorCode::Conflict,
            format!(
                "agent {} has no inventory scope: register it with inventoryScope, the resource \
                 group where it may register the machines it discovers",
                agent.name
            ),
        ));
    };
    let body: Inventory = body.parse()?;
    check_inventory(&body)?;
    let prefixes = agent.prefixes().map_err(|_| AppError::internal())?;
    let now = state.clock.now();
    let mut tx = state.store.write().await?;
    // The addresses of the agent's machines, kept up to date as the inventory is applied.
    let mut addresses: HashMap<String, Vec<IpAddr>> = HashMap::new();
    for row in tx.agent_machines(&agent.id).await? {
        addresses.insert(row.id.clone(), read_properties(&row)?.addresses);
    }
    let mut by_address: HashMap<IpAddr, String> = HashMap::new();
    for (id, list) in &addresses {
        for a in list {
            by_address.insert(a.to_canonical(), id.clone());
        }
    }
    let mut result = InventoryResult::default();
    let mut written = false;
    for m in &body.machines {
        let id = ResourceId::new(
            sub.clone(),
            rg.clone(),
            ResourceKind::Machine,
            m.name.clone(),
        )
        .to_string();
        let refuse = |result: &mut InventoryResult, reason: String| {
            result.refused.push(InventoryRefusal {
                name: m.name.to_string(),
                reason,
            });
        };
        // A discovered machine is named after its instance, so the inventory cannot point a
        // machine at another instance; and the security group is the agents' administrators'
        // to name, never the agent's.
        if m.properties
            .labels
            .get(AWS_INSTANCE_LABEL)
            .map(String::as_str)
            != Some(m.name.as_str())
        {
            refuse(
                &mut result,
                format!(
                    "{id}: a discovered machine is named after its instance ({AWS_INSTANCE_LABEL})"
                ),
            );
            continue;
        }
        if m.properties.labels.contains_key(AWS_GROUP_LABEL) {
            refuse(
                &mut result,
                format!(
                    "{id}: an inventory does not name security groups ({AWS_GROUP_LABEL} is set \
                     by an administrator of agents)"
                ),
            );
            continue;
        }
        let existing = tx.machine(&id).await?;
        let guard = match &existing {
            Some(row) => row.agent_id.clone(),
            None => tx.agent_of_machine(&id).await?,
        };
        match (&existing, guard) {
            (_, Some(other)) if other != agent.id => {
                let name = existing
                    .as_ref()
                    .and_then(|r| r.agent.clone())
                    .unwrap_or(other);
                refuse(&mut result, format!("{id} is guarded by agent {name}"));
                continue;
            }
            (Some(_), None) => {
                refuse(
                    &mut result,
                    format!(
                        "{id} exists and no agent guards it: only an administrator of agents \
                         can make this agent guard it"
                    ),
                );
                continue;
            }
            _ => {}
        }
        // The labels are the inventory's, but for the security group an administrator named.
        let mut properties = m.properties.clone();
        if let Some(row) = &existing
            && let Some(group) = read_properties(row)?.labels.remove(AWS_GROUP_LABEL)
        {
            properties.labels.insert(AWS_GROUP_LABEL.to_owned(), group);
            if let Err(e) = properties.validate() {
                refuse(&mut result, format!("{id}: {}", e.message));
                continue;
            }
        }
        if let Some(taken) = taken_target(&mut tx, &id, aws_targets(&properties.labels)).await? {
            tracing::info!(agent = %agent.name, machine = %id, holder = %taken.holder,
                "inventory refused: the instance is another machine's");
            refuse(
                &mut result,
                format!(
                    "{id}: another machine names {} {} (label {}); an instance or security \
                     group belongs to one machine",
                    taken.what(),
                    taken.value,
                    taken.label()
                ),
            );
            continue;
        }
        // Its addresses must be the agent's to enforce on and no other machine's of the agent.
        let clash: Vec<(String, Vec<IpAddr>)> = m
            .properties
            .addresses
            .iter()
            .filter_map(|a| by_address.get(&a.to_canonical()))
            .filter(|other| **other != id)
            .take(1)
            .map(|other| {
                (
                    other.clone(),
                    addresses.get(other).cloned().unwrap_or_default(),
                )
            })
            .collect();
        if let Err(e) = ajar_core::agent::check_guarded_addresses(
            &m.properties.addresses,
            prefixes.as_deref(),
            &clash,
        ) {
            refuse(&mut result, format!("{id}: {}", e.message));
            continue;
        }
        let props = serde_json::to_value(&properties).map_err(|_| AppError::internal())?;
        if let Some(row) = &existing {
            let stored =
                serde_json::to_value(read_properties(row)?).map_err(|_| AppError::internal())?;
            if stored == props {
                result.unchanged.push(id);
                continue;
            }
        }
        tx.put_machine(
            &id,
            sub.as_str(),
            rg.as_str(),
            m.name.as_str(),
            &props.to_string(),
            aws_targets(&properties.labels),
            now,
        )
        .await?;
        let created = existing.is_none();
        if created {
            tx.guard_machine(&agent.id, &id).await?;
        }
        tx.record(
            &caller
                .did(actions::MACHINES_WRITE, &id, now)
                .with_details(serde_json::json!({"created": created, "properties": props})),
        )
        .await?;
        written = true;
        if let Some(old) = addresses.insert(id.clone(), properties.addresses.clone()) {
            for a in old {
                by_address.remove(&a.to_canonical());
            }
        }
        for a in &m.properties.addresses {
            by_address.insert(a.to_canonical(), id.clone());
        }
        if created {
            result.created.push(id);
        } else {
            result.updated.push(id);
        }
    }
    if written {
        tx.commit().await?;
    }
    Ok(Reply::ok(result))
}

/// Checks an inventory against the limits: at most [`MAX_INVENTORY`] machines, each named once,
/// within the limits of machine settings and naming its instance.
fn check_inventory(body: &Inventory) -> AppResult<()> {
    if body.machines.len() > MAX_INVENTORY {
        return Err(AppError::new(
            ErrorCode::ValidationFailed,
            format!("at most {MAX_INVENTORY} machines are allowed in one inventory"),
        )
        .at("machines"));
    }
    let mut names = HashSet::new();
    for (i, m) in body.machines.iter().enumerate() {
        if !names.insert(m.name.as_str()) {
            return Err(AppError::new(
                ErrorCode::ValidationFailed,
                format!("machine {} is listed twice", m.name),
            )
            .at(format!("machines[{i}].name")));
        }
        let props: &MachineProperties = &m.properties;
        props.validate().map_err(|e| {
            AppError::from(ajar_core::FieldError {
                target: format!("machines[{i}].{}", e.target),
                ..e
            })
        })?;
        if props
            .labels
            .get(AWS_INSTANCE_LABEL)
            .is_none_or(|v| v.is_empty())
        {
            return Err(AppError::new(
                ErrorCode::ValidationFailed,
                format!(
                    "a discovered machine names its instance in the label {AWS_INSTANCE_LABEL}"
                ),
            )
            .at(format!("machines[{i}].properties.labels")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_spread_over_their_last_fifth() {
        let wait = Duration::from_secs(25);
        let waits: Vec<Duration> = (0..200).map(|_| spread(wait)).collect();
        assert!(waits.iter().all(|w| *w <= wait && *w >= wait * 4 / 5));
        let distinct: std::collections::HashSet<_> = waits.iter().collect();
        assert!(distinct.len() > 100, "waits are not spread: {distinct:?}");
        assert_eq!(spread(Duration::ZERO), Duration::ZERO);
    }
}
