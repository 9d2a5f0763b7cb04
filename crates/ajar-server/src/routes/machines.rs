//! Machines: the inventory JIT protects, shown as Configured / NotConfigured / Unsupported.

use super::paging::ByName;
use super::settings::{disabled_at, disabled_scopes};
use super::{Reply, group_scope, no_content, resource_id, subscription_scope};
use crate::AppState;
use crate::auth::Caller;
use crate::body::RawBody;
use crate::engine::desired::{AWS_GROUP_LABEL, AWS_INSTANCE_LABEL, aws_targets, label_of};
use crate::error::{AppError, AppResult};
use crate::presence::Presence;
use ajar_api::ErrorCode;
use ajar_api::wire::{
    JitState, List, Machine, MachineBody, MachineProperties, MachineView, RequestFigures,
};
use ajar_core::id::{ResourceId, ResourceKind, Scope};
use ajar_core::machine::machine_state;
use ajar_core::rbac::actions;
use ajar_store::{AwsTargetKind, AwsTargets, MachineRow};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_subscription_machines))
        .routes(routes!(list_group_machines))
        .routes(routes!(get_machine, put_machine, delete_machine))
}

/// A stored machine in the API's shape, with its JIT state at `now` (an agent must be live for
/// the machine to have an enforcement point).
pub fn machine_view(
    row: &MachineRow,
    disabled: &[Scope],
    now: Timestamp,
    presence: &Presence,
    request_figures: Option<RequestFigures>,
) -> AppResult<Machine> {
    let props = read_properties(row)?;
    let state = state_of(row, disabled, now, presence);
    let reason = match &state {
        ajar_core::machine::MachineState::Unsupported(r) => Some(r.clone()),
        _ => None,
    };
    Ok(Machine {
        id: row.id.clone(),
        name: row.name.clone(),
        kind: "machines".to_owned(),
        properties: MachineView {
            os: props.os.to_string(),
            addresses: props.addresses.iter().map(ToString::to_string).collect(),
            enforcement_point: row.agent.clone(),
            labels: props.labels,
            jit_state: JitState::from(&state),
            request_figures,
            unsupported_reason: reason,
            jit_policy_id: row.policy_id.clone(),
            standing_exposures: row
                .reported_exposures
                .as_deref()
                .map(|json| super::agents::read_exposures(&row.id, json))
                .unwrap_or_default(),
        },
    })
}

/// How JIT applies to the machine of `row` at `now` (a reason its enforcement point reported
/// makes it Unsupported).
fn state_of(
    row: &MachineRow,
    disabled: &[Scope],
    now: Timestamp,
    presence: &Presence,
) -> ajar_core::machine::MachineState {
    let scope = Scope::parse(&row.id).unwrap_or(Scope::Root);
    machine_state(
        &row.id,
        row.policy_id.is_some(),
        crate::engine::enforced::enforcement_of(row, now, presence),
        disabled_at(&scope, disabled),
        row.reported_reason.as_deref(),
    )
}

fn machine(sub: &str, rg: &str, name: &str) -> AppResult<ResourceId> {
    resource_id(sub, rg, ResourceKind::Machine, name)
}

#[utoipa::path(put, path = "/api/v1/subscriptions/{sub}/resourceGroups/{rg}/machines/{name}", tag = "machines",
    params(("sub" = String, Path), ("rg" = String, Path), ("name" = String, Path)),
    request_body = MachineBody,
    responses((status = 201, body = Machine), (status = 200, body = Machine)))]
pub async fn put_machine(
    State(state): State<AppState>,
    caller: Caller,
    Path((sub, rg, name)): Path<(String, String, String)>,
    body: RawBody,
) -> AppResult<Reply<Machine>> {
    let id = machine(&sub, &rg, &name)?;
    caller.require(actions::MACHINES_WRITE, &id.scope())?;
    let body: MachineBody = body.parse()?;
    body.properties.validate()?;
    let props = serde_json::to_string(&body.properties).map_err(|_| AppError::internal())?;
    let machine_id = id.to_string();
    let mut tx = state.store.write().await?;
    let current = match tx.machine(&machine_id).await? {
        Some(row) => Some(read_properties(&row)?),
        None => None,
    };
    check_target_labels(&caller, &id, current.as_ref(), &body.properties)?;
    check_guarded(&mut tx, &caller, &id, current.as_ref(), &body.properties).await?;
    let targets = aws_targets(&body.properties.labels);
    if let Some(taken) = taken_target(&mut tx, &machine_id, targets).await? {
        return Err(AppError::new(
            ErrorCode::Conflict,
            format!(
                "{} {} (label {}) is already named by machine {}: an instance or security group \
                 belongs to one machine",
                taken.what(),
                taken.value,
                taken.label(),
                taken.holder
            ),
        )
        .at(format!("properties.labels.{}", taken.label())));
    }
    let created = tx
        .put_machine(
            &id.to_string(),
            id.subscription.as_str(),
            id.resource_group.as_str(),
            id.name.as_str(),
            &props,
            targets,
            state.clock.now(),
        )
        .await?;
    let row = tx
        .machine(&id.to_string())
        .await?
        .ok_or_else(|| AppError::not_found(&id))?;
    let disabled = disabled_scopes(&mut tx).await?;
    tx.commit_recorded(
        &caller
            .did(actions::MACHINES_WRITE, &row.id, state.clock.now())
            .with_details(json!({"created": created, "properties": body.properties})),
    )
    .await?;
    Ok(Reply::created_or_ok(
        created,
        machine_view(&row, &disabled, state.clock.now(), &state.presence, None)?,
    ))
}

/// Labels that say which cloud instance (and security group) an `aws` agent enforces a
/// machine's grants on.
const ENFORCEMENT_LABELS: [&str; 2] = [AWS_INSTANCE_LABEL, AWS_GROUP_LABEL];

/// Setting, changing or removing the labels naming a machine's cloud instance (`aws:instance-id`,
/// `aws:group-id`) needs `ajar.agents/write` at `/`, on any machine, guarded or not, new or not:
/// they decide which instance an `aws` agent opens a grant on, so a machine writer could
/// otherwise point a machine at another team's instance before an agent guards it.
fn check_target_labels(
    caller: &Caller,
    id: &ResourceId,
    current: Option<&MachineProperties>,
    new: &MachineProperties,
) -> AppResult<()> {
    let changed = ENFORCEMENT_LABELS.into_iter().find_map(|label| {
        let before = current.and_then(|c| c.labels.get(label));
        let after = new.labels.get(label);
        (before != after).then_some((label, before.is_none(), after.is_none()))
    });
    let Some((label, was_absent, now_absent)) = changed else {
        return Ok(());
    };
    if caller.may(actions::AGENTS_WRITE, &Scope::Root) {
        return Ok(());
    }
    let verb = match (was_absent, now_absent) {
        (true, _) => "setting",
        (_, true) => "removing",
        _ => "changing",
    };
    Err(AppError::new(
        ErrorCode::AuthorizationFailed,
        format!(
            "{verb} the label {label} of {id} decides which cloud instance an aws agent opens \
             its grants on, which needs {} at /",
            actions::AGENTS_WRITE
        ),
    )
    .at(format!("properties.labels.{label}")))
}

/// A cloud target a machine would name that another machine names already.
pub(super) struct TakenTarget {
    /// Instance or group.
    pub kind: AwsTargetKind,
    /// The instance or group id.
    pub value: String,
    /// The machine that names it.
    pub holder: String,
}

impl TakenTarget {
    /// The label naming it.
    pub fn label(&self) -> &'static str {
        label_of(self.kind)
    }

    /// What it is, in words.
    pub fn what(&self) -> &'static str {
        match self.kind {
            AwsTargetKind::Instance => "instance",
            AwsTargetKind::Group => "security group",
        }
    }
}

/// The first of `targets` that a machine other than `machine_id` names, if any: each instance
/// and security group belongs to one machine, or two machines' grants would open one instance.
pub(super) async fn taken_target(
    tx: &mut ajar_store::Tx,
    machine_id: &str,
    targets: AwsTargets<'_>,
) -> AppResult<Option<TakenTarget>> {
    for (kind, value) in targets.named() {
        if let Some(holder) = tx.aws_target_holder(kind, value).await?
            && holder != machine_id
        {
            return Ok(Some(TakenTarget {
                kind,
                value: value.to_owned(),
                holder,
            }));
        }
    }
    Ok(None)
}

/// A machine guarded by an agent keeps addresses that agent may enforce on: a change of its
/// addresses also needs `ajar.agents/write` at `/` (they decide what the agent protects and,
/// behind a gateway, where it forwards), and the new ones must lie inside the agent's networks
/// and belong to no other machine it guards.
async fn check_guarded(
    tx: &mut ajar_store::Tx,
    caller: &Caller,
    id: &ResourceId,
    current: Option<&MachineProperties>,
    new: &MachineProperties,
) -> AppResult<()> {
    let machine_id = id.to_string();
    let Some(agent_id) = tx.agent_of_machine(&machine_id).await? else {
        return Ok(());
    };
    if current.map(|c| &c.addresses) == Some(&new.addresses) {
        return Ok(());
    }
    if !caller.may(actions::AGENTS_WRITE, &Scope::Root) {
        return Err(AppError::new(
            ErrorCode::AuthorizationFailed,
            format!(
                "{} is guarded by an agent: changing its addresses changes what the agent \
                 enforces, which needs {} at /",
                id,
                actions::AGENTS_WRITE
            ),
        )
        .at("properties.addresses"));
    }
    let Some(agent) = tx.agent(&agent_id).await? else {
        return Ok(());
    };
    let prefixes = agent.prefixes().map_err(|_| AppError::internal())?;
    let mut others = Vec::new();
    for row in tx.agent_machines(&agent_id).await? {
        if row.id != machine_id {
            others.push((row.id.clone(), read_properties(&row)?.addresses));
        }
    }
    ajar_core::agent::check_guarded_addresses(&new.addresses, prefixes.as_deref(), &others)?;
    Ok(())
}

/// A stored machine's properties.
pub(super) fn read_properties(row: &MachineRow) -> AppResult<MachineProperties> {
    serde_json::from_str(&row.properties).map_err(|e| {
        tracing::error!(machine = %row.id, error = %e, "stored machine unreadable");
        AppError::internal()
    })
}

#[utoipa::path(get, path = "/api/v1/subscriptions/{sub}/resourceGroups/{rg}/machines/{name}", tag = "machines",
    params(("sub" = String, Path), ("rg" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = Machine)))]
pub async fn get_machine(
    State(state): State<AppState>,
    caller: Caller,
    Path((sub, rg, name)): Path<(String, String, String)>,
) -> AppResult<Reply<Machine>> {
    let id = machine(&sub, &rg, &name)?;
    caller.require(actions::MACHINES_READ, &id.scope())?;
    let mut tx = state.store.read().await?;
    let row = tx
        .machine(&id.to_string())
        .await?
        .ok_or_else(|| AppError::not_found(&id))?;
    let disabled = disabled_scopes(&mut tx).await?;
    let now = state.clock.now();
    let figures = super::figures::machines(&mut tx, &[row.id.as_str()], now)
        .await?
        .remove(&row.id)
        .unwrap_or_default();
    Ok(Reply::ok(machine_view(
        &row,
        &disabled,
        now,
        &state.presence,
        Some(figures),
    )?))
}

#[utoipa::path(delete, path = "/api/v1/subscriptions/{sub}/resourceGroups/{rg}/machines/{name}", tag = "machines",
    params(("sub" = String, Path), ("rg" = String, Path), ("name" = String, Path)),
    responses((status = 204), (status = 409, body = ajar_api::ErrorBody)))]
pub async fn delete_machine(
    State(state): State<AppState>,
    caller: Caller,
    Path((sub, rg, name)): Path<(String, String, String)>,
) -> AppResult<Response> {
    let id = machine(&sub, &rg, &name)?;
    caller.require(actions::MACHINES_DELETE, &id.scope())?;
    let mut tx = state.store.write().await?;
    if let Some(policy) = tx.policy_of_machine(&id.to_string()).await? {
        return Err(AppError::new(
            ErrorCode::Conflict,
            format!("{id} is covered by policy {policy}; remove it from the policy first"),
        )
        .at(id.to_string()));
    }
    if !tx.delete_machine(&id.to_string()).await? {
        return Err(AppError::not_found(&id));
    }
    tx.commit_recorded(&caller.did(actions::MACHINES_DELETE, &id.to_string(), state.clock.now()))
        .await?;
    Ok(no_content())
}

#[derive(Debug, Deserialize)]
pub struct StateFilter {
    state: Option<String>,
}

impl StateFilter {
    fn parse(&self) -> AppResult<Option<JitState>> {
        let Some(s) = &self.state else {
            return Ok(None);
        };
        JitState::ALL
            .iter()
            .copied()
            .find(|n| n.as_str().eq_ignore_ascii_case(s))
            .map(Some)
            .ok_or_else(|| {
                AppError::new(
                    ErrorCode::InvalidParameter,
                    format!("state {s:?} is not one of Configured, NotConfigured, Unsupported"),
                )
                .at("state")
            })
    }
}

async fn list(
    state: &AppState,
    caller: &Caller,
    scope: Scope,
    paging: &ByName,
    filter: StateFilter,
) -> AppResult<Reply<List<Machine>>> {
    caller.require_within(actions::MACHINES_READ, &scope)?;
    let wanted = filter.parse()?;
    let (Some(sub), rg) = (scope.subscription(), scope.resource_group()) else {
        return Err(AppError::new(ErrorCode::InvalidParameter, "bad scope"));
    };
    let now = state.clock.now();
    let mut tx = state.store.read().await?;
    let disabled = disabled_scopes(&mut tx).await?;
    // Read a page at a time from the store, keeping the machines the caller may read (and
    // that are in the state asked for) until the page is full or the machines run out.
    let mut shown: Vec<Machine> = Vec::new();
    let mut after = paging.after.clone();
    loop {
        let rows = tx
            .machines_page(
                sub.as_str(),
                rg.map(|r| r.as_str()),
                after.as_deref(),
                paging.limit(),
            )
            .await?;
        let exhausted = rows.len() < paging.limit();
        after = rows.last().map(|row| row.id.clone());
        // The machines this page shows, chosen before their figures are read.
        let kept: Vec<&MachineRow> = rows
            .iter()
            .filter(|row| {
                Scope::parse(&row.id).is_ok_and(|s| caller.may(actions::MACHINES_READ, &s))
            })
            .filter(|row| {
                wanted.is_none_or(|w| {
                    w == JitState::from(&state_of(row, &disabled, now, &state.presence))
                })
            })
            .take(paging.limit() - shown.len())
            .collect();
        let ids: Vec<&str> = kept.iter().map(|row| row.id.as_str()).collect();
        let mut figures = super::figures::machines(&mut tx, &ids, now).await?;
        for row in kept {
            let f = figures.remove(&row.id).unwrap_or_default();
            shown.push(machine_view(row, &disabled, now, &state.presence, Some(f))?);
        }
        if exhausted || shown.len() == paging.limit() {
            break;
        }
    }
    let (value, next_link) = paging.finish(shown, |m| m.id.clone());
    Ok(Reply::ok(List { value, next_link }))
}

#[utoipa::path(get, path = "/api/v1/subscriptions/{sub}/machines", tag = "machines",
    params(("sub" = String, Path), ("state" = Option<String>, Query, description = "Configured, NotConfigured or Unsupported")),
    responses((status = 200, body = List<Machine>)))]
pub async fn list_subscription_machines(
    State(state): State<AppState>,
    caller: Caller,
    Path(sub): Path<String>,
    Query(filter): Query<StateFilter>,
    paging: ByName,
) -> AppResult<Reply<List<Machine>>> {
    list(&state, &caller, subscription_scope(&sub)?, &paging, filter).await
}

#[utoipa::path(get, path = "/api/v1/subscriptions/{sub}/resourceGroups/{rg}/machines", tag = "machines",
    params(("sub" = String, Path), ("rg" = String, Path), ("state" = Option<String>, Query)),
    responses((status = 200, body = List<Machine>)))]
pub async fn list_group_machines(
    State(state): State<AppState>,
    caller: Caller,
    Path((sub, rg)): Path<(String, String)>,
    Query(filter): Query<StateFilter>,
    paging: ByName,
) -> AppResult<Reply<List<Machine>>> {
    list(&state, &caller, group_scope(&sub, &rg)?, &paging, filter).await
}
