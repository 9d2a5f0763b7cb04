//! Enforcement agents: registration (with an agent token), health, the desired-state feed the
//! agent long-polls, and the agent's reports of what it applied.
//!
//! An agent authenticates as the principal `agent:NAME`. It holds no role: the only endpoints it
//! may use are those under `/api/v1/agent/`, and they only ever show its own machines.

use super::machines::read_properties;
use super::paging::ByName;
use super::{Reply, no_content};
use crate::AppState;
use crate::auth::{Caller, new_token};
use crate::body::RawBody;
use crate::error::{AppError, AppResult};
use crate::presence::Presence;
use ajar_api::ErrorCode;
use ajar_api::wire::{Agent, AgentCreate, AgentReport, DesiredState, List};
use ajar_core::agent::{AgentMode, is_live};
use ajar_core::id::Scope;
use ajar_core::rbac::actions;
use ajar_store::{AgentRow, TokenRow};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::Deserialize;
use std::collections::HashMap;
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
        inventory_scope: None,
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
        AgentMode::Host if body.public_address.is_some() || body.mapped_port_range.is_some() => {
            return Err(AppError::new(
                ErrorCode::ValidationFailed,
                "publicAddress and mappedPortRange are for gateways only",
            )
            .at("mode"));
        }
        _ => {}
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
    let now = state.clock.now();
    let mut tx = state.store.write().await?;
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
    // Each port opened or closed is recorded above; the rest is last-seen bookkeeping.
    tx.commit_unrecorded().await?;
    Ok(no_content())
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
