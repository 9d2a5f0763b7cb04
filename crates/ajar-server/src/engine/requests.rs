//! The shared request engine (`ajar_core::lifecycle`) behind role activations and network
//! access under a policy with manual approval: storing a new request, moving one by an event
//! (decide, cancel, revoke) with what that means outside the lifecycle, recording each step and
//! queueing its notices, and the scheduler's part (start, expiry warning, end, timeout). Routes
//! parse, authorize and render; the scheduler calls [`run_due`].
//!
//! A network request stores the initiate as asked; when it becomes active the ports are planned
//! against the policy as it is then and stored as an ordinary network access request (same id
//! as the approval request's name), which the agents enforce and the network scheduler closes.

use super::enforced::unenforced;
use super::request_writer::{NewAccess, store_in};
use super::{EngineError, EngineResult};
use crate::AppState;
use crate::auth::Caller;
use crate::journal::Actor;
use crate::notify::{self, Notice, NoticeEvent};
use crate::presence::Presence;
use ajar_api::wire::{ApplicationProperties, InitiateBody};
use ajar_core::FieldError;
use ajar_core::activity::Outcome;
use ajar_core::application::AppJitPolicy;
use ajar_core::duration::{AccessDuration, MIN_ACCESS};
use ajar_core::id::{Name, ResourceId, ResourceKind, Scope};
use ajar_core::lifecycle::{
    ApprovalRule, Approver, Event, Lifecycle, RequestState, Start, Step, steps,
};
use ajar_core::policy::PolicyRules;
use ajar_core::principal::Principal;
use ajar_core::request::{PlannedPort, RequestedMachine, StatusReason, plan_initiate};
use ajar_store::{
    JitRequestRow, PortRow, RequestRow, StoreError, StoreResult, Tx, at_store_precision,
};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// `kind` of a role activation.
pub(crate) const ROLE: &str = "role";

/// `kind` of approval-gated network access.
pub(crate) const NETWORK: &str = "network";

/// Stored data about `what` could not be read back.
fn unreadable(what: &str) -> EngineError {
    EngineError::Corrupt(what.to_owned())
}

/// The JIT policy of a stored application.
pub(crate) fn app_policy(properties: &str) -> EngineResult<AppJitPolicy> {
    let props: ApplicationProperties =
        serde_json::from_str(properties).map_err(|_| unreadable("a stored application"))?;
    Ok(props.jit_access_policy.unwrap_or_default().to_domain()?)
}

/// What a network request stores besides its lifecycle: the machines and ports asked for, and
/// the caller's address ("my IP" is resolved when the ports are planned, at approval).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct NetworkDetail {
    /// The machines and ports asked for.
    pub(crate) requested: Vec<RequestedMachine>,
    /// The caller's address.
    pub(crate) address: Option<IpAddr>,
}

/// How requests filed before ajar stored the domain form kept their detail: the initiate as
/// asked.
#[derive(Deserialize)]
struct EarlierNetworkDetail {
    initiate: InitiateBody,
    address: Option<IpAddr>,
}

pub(crate) fn network_detail(row: &JitRequestRow) -> EngineResult<NetworkDetail> {
    row.detail
        .as_deref()
        .and_then(read_network_detail)
        .ok_or_else(|| unreadable(&format!("the initiate of {}", row.id)))
}

/// A stored network detail, in either form.
fn read_network_detail(text: &str) -> Option<NetworkDetail> {
    if let Ok(detail) = serde_json::from_str::<NetworkDetail>(text) {
        return Some(detail);
    }
    let earlier: EarlierNetworkDetail = serde_json::from_str(text).ok()?;
    Some(NetworkDetail {
        requested: earlier.initiate.to_domain().ok()?,
        address: earlier.address,
    })
}

/// The rule that decides a request: its application's, or its network policy's. `None` when
/// the application or policy is gone.
pub(crate) async fn rule_of(
    tx: &mut Tx,
    row: &JitRequestRow,
) -> EngineResult<Option<ApprovalRule>> {
    if row.kind == NETWORK {
        let Some(policy) = tx.policy(&row.application_id).await? else {
            return Ok(None);
        };
        return Ok(Some(policy.rules.approval));
    }
    match tx.application(&row.application_id).await? {
        Some(app) => Ok(Some(app_policy(&app.properties)?.approval)),
        None => Ok(None),
    }
}

/// The scope of what a request grants access to: its application or its policy.
pub(crate) fn target_scope(row: &JitRequestRow) -> EngineResult<Scope> {
    Scope::parse(&row.application_id).map_err(|_| unreadable("a stored request's target"))
}

/// Stores a changed lifecycle.
pub(crate) async fn save(tx: &mut Tx, row: &mut JitRequestRow, l: &Lifecycle) -> StoreResult<()> {
    row.lifecycle = l.clone();
    row.state = l.state;
    row.due = l.next_due();
    tx.update_jit_request(&row.id, &row.lifecycle, row.state, row.due)
        .await
}

/// The most requests one principal may have awaiting a decision at once.
pub const MAX_PENDING_PER_PRINCIPAL: i64 = 50;

/// Inserts a new request made by `actor`, records it and commits; 409 when the name is taken
/// or its requester already has [`MAX_PENDING_PER_PRINCIPAL`] requests awaiting a decision.
pub(crate) async fn insert(
    mut tx: Tx,
    actor: &Actor,
    id: &ResourceId,
    row: &JitRequestRow,
) -> EngineResult<()> {
    if row.state == RequestState::Pending
        && tx.pending_requests_of(&row.requester).await? >= MAX_PENDING_PER_PRINCIPAL
    {
        return Err(EngineError::Conflict(format!(
            "{} has {MAX_PENDING_PER_PRINCIPAL} requests awaiting a decision, the most one \
             principal may have; cancel some or wait for them to be decided",
            row.requester
        )));
    }
    if !tx
        .insert_jit_request(row, id.subscription.as_str(), id.resource_group.as_str())
        .await?
    {
        return Err(FieldError::conflict(
            id.to_string(),
            format!("{id} exists; requests are not replaced"),
        )
        .into());
    }
    let l = &row.lifecycle;
    journal_steps(&mut tx, actor, row, None, l, l.created).await?;
    Ok(tx.commit().await?)
}

/// Records each step from `before` (`None`: new) to `after` of `row`, as done by `actor`, and
/// queues the notifications they call for, inside `tx`.
pub(crate) async fn journal_steps(
    tx: &mut Tx,
    actor: &Actor,
    row: &JitRequestRow,
    before: Option<&Lifecycle>,
    after: &Lifecycle,
    now: Timestamp,
) -> EngineResult<()> {
    let steps = steps(before, after);
    if steps.is_empty() {
        return Ok(());
    }
    let approvers: Vec<String> = rule_of(tx, row)
        .await?
        .map(|r| {
            r.approvers
                .iter()
                .map(|a| match a {
                    Approver::User(p) => p.to_string(),
                    Approver::Group(g) => format!("group:{g}"),
                })
                .collect()
        })
        .unwrap_or_default();
    let window = after
        .window
        .map(|(s, e)| serde_json::json!({"start": s.to_string(), "end": e.to_string()}));
    let mut notices = Vec::new();
    for step in &steps {
        let mut details = serde_json::json!({
            "kind": row.kind,
            "state": after.state.as_str(),
            "requester": row.requester,
        });
        match step {
            Step::Created => {
                details["roles"] = serde_json::json!(row.roles);
                details["justification"] = serde_json::json!(row.justification);
                details["duration"] = serde_json::json!(after.duration.to_string());
                details["extends"] = serde_json::json!(row.extends);
            }
            Step::ApprovalGiven | Step::Denied => {
                if let Some(d) = after.decisions.last() {
                    details["reason"] = serde_json::json!(d.reason);
                }
            }
            Step::Failed => details["failure"] = serde_json::json!(after.failure),
            _ => {}
        }
        if let Some(w) = &window {
            details["window"] = w.clone();
        }
        if row.kind == NETWORK && *step == Step::Activated {
            details["networkRequestId"] = serde_json::json!(row.name);
        }
        let result = if *step == Step::Failed {
            Outcome::Failed
        } else {
            Outcome::Succeeded
        };
        tx.record(
            &actor
                .did(&format!("ajar.jitRequests/{}", step.name()), &row.id, now)
                .for_request(&row.id)
                .with_details(details)
                .with_result(result),
        )
        .await?;
        let event = match step {
            Step::Created => Some(NoticeEvent::RequestCreated),
            Step::Approved if !steps.contains(&Step::Created) => Some(NoticeEvent::RequestApproved),
            Step::Denied => Some(NoticeEvent::RequestDenied),
            Step::TimedOut => Some(NoticeEvent::RequestTimedOut),
            Step::ExpiryWarned => Some(NoticeEvent::AccessExpiring),
            Step::Expired => Some(NoticeEvent::AccessExpired),
            _ => None,
        };
        if let Some(event) = event {
            notices.push(Notice {
                event,
                resource_id: row.id.clone(),
                request_id: row.id.clone(),
                kind: if row.kind == NETWORK {
                    "network"
                } else {
                    "role"
                },
                requester: row.requester.clone(),
                approvers: approvers.clone(),
                justification: row.justification.clone(),
                window: after.window,
                at: now,
            });
        }
    }
    notify::queue(tx, &notices).await?;
    Ok(())
}

/// A new request row (not stored).
pub(crate) fn new_row(
    id: &ResourceId,
    kind: &str,
    target: String,
    caller: &Caller,
    roles: &[String],
    justification: Option<String>,
    l: &Lifecycle,
) -> EngineResult<JitRequestRow> {
    Ok(JitRequestRow {
        id: id.to_string(),
        name: id.name.to_string(),
        application_id: target,
        kind: kind.to_owned(),
        requester: caller.principal.clone(),
        roles: roles.to_vec(),
        justification,
        lifecycle: l.clone(),
        state: l.state,
        due: l.next_due(),
        created_at: l.created,
        detail: None,
        extends: None,
        location: None,
        tags: None,
    })
}

/// Checks a role activation against its application inside `tx`: the application exists and
/// has JIT, the duration is within its maximum and the caller is eligible (directly or through
/// a group) for every role. Answers the approval rule.
pub(crate) async fn check_role_request(
    tx: &mut Tx,
    caller: &Caller,
    app_id: &str,
    roles: &[String],
    duration: AccessDuration,
) -> EngineResult<ApprovalRule> {
    let target = "properties.applicationResourceId";
    let Some(app) = tx.application(app_id).await? else {
        return Err(
            FieldError::not_found(target, format!("application {app_id} does not exist")).into(),
        );
    };
    if !app.jit_enabled {
        return Err(FieldError::conflict(
            target,
            "the application was created without JIT: its publishers have standing access",
        )
        .into());
    }
    let policy = app_policy(&app.properties)?;
    if duration > policy.max_duration {
        return Err(FieldError::new(
            "properties.jitSchedulingPolicy.duration",
            format!(
                "{duration} is longer than the application's maximum of {}",
                policy.max_duration
            ),
        )
        .into());
    }
    let eligible = tx.eligibilities(app_id).await?;
    for (i, role) in roles.iter().enumerate() {
        if !eligible
            .iter()
            .any(|e| &e.role_name == role && caller.is_or_belongs_to(&e.principal))
        {
            return Err(EngineError::NotAllowed {
                message: format!(
                    "{} is not eligible for role {role} on {app_id}",
                    caller.principal
                ),
                target: format!("properties.jitAuthorizationPolicies[{i}].roleDefinitionId"),
            });
        }
    }
    Ok(policy.approval)
}

/// The rules of a policy as stored now.
pub(crate) async fn current_rules(tx: &mut Tx, policy: &ResourceId) -> EngineResult<PolicyRules> {
    let row = tx
        .policy(&policy.to_string())
        .await?
        .ok_or_else(|| EngineError::NotFound(policy.to_string()))?;
    Ok(row.rules)
}

/// A new network request's row: the window lasts as long as the longest planned port, counted
/// from approval.
#[allow(clippy::too_many_arguments)] // what was asked, by whom, under which rule, and when
pub(crate) fn network_lifecycle_and_row(
    id: &ResourceId,
    caller: &Caller,
    policy: &ResourceId,
    rule: &ApprovalRule,
    detail: NetworkDetail,
    justification: Option<String>,
    planned: &[PlannedPort],
    now: Timestamp,
) -> EngineResult<JitRequestRow> {
    let longest = planned
        .iter()
        .map(|p| p.end.duration_since(now))
        .max()
        .unwrap_or(MIN_ACCESS);
    // An automatic rule never reaches here (such initiates open at once), so this is pending.
    let requester = Principal::parse(&caller.principal)?;
    let l = Lifecycle::new(requester, Start::Now, longest, rule, now);
    let mut row = new_row(
        id,
        NETWORK,
        policy.to_string(),
        caller,
        &[],
        justification,
        &l,
    )?;
    row.detail = Some(serde_json::to_string(&detail).map_err(|e| unreadable(&e.to_string()))?);
    Ok(row)
}

/// Opens an approved network request: plans its ports against the policy as it is now and
/// stores them as a network access request named like the approval request. Fails (with the
/// reason, nothing stored) when the policy no longer allows it.
pub(crate) async fn open_network_access(
    tx: &mut Tx,
    row: &JitRequestRow,
    l: &mut Lifecycle,
    now: Timestamp,
    opening: Opening<'_>,
) -> EngineResult<Result<(), String>> {
    let detail = network_detail(row)?;
    let Some(policy_row) = tx.policy(&row.application_id).await? else {
        return Ok(Err("the policy no longer exists".to_owned()));
    };
    let rules = policy_row.rules;
    let planned = match plan_initiate(&rules, &detail.requested, now, detail.address) {
        Ok(p) => p,
        Err(e) => return Ok(Err(format!("{}: {}", e.target, e.message))),
    };
    if let Some(presence) = opening.enforced_by {
        let machines: Vec<String> = planned.iter().map(|p| p.machine.to_string()).collect();
        if let Some(refusal) = unenforced(tx, presence, &machines, now).await? {
            return Ok(Err(refusal.message));
        }
    }
    let live_grant_limit = opening.live_grant_limit;
    let Ok(policy) = ResourceId::parse(&row.application_id) else {
        return Ok(Err("the policy id is not valid".to_owned()));
    };
    let mut access = NewAccess {
        request: RequestRow {
            id: row.name.clone(),
            policy_id: row.application_id.clone(),
            requestor: row.requester.clone(),
            justification: row.justification.clone(),
            source_address: detail.address.map(|a| a.to_string()),
            created_at: now,
        },
        ports: port_rows(&row.name, &planned),
        etag: policy_row.etag.clone(),
        blocking_scopes: blocking_scopes(&policy).to_vec(),
        // Recorded as the approval request's activation.
        activity: None,
        live_grant_limit,
    };
    let outcome = store_in(tx, &mut [&mut access]).await?.pop();
    match outcome {
        Some(Ok(Some(_))) => {
            let end = planned.iter().map(|p| p.end).max().unwrap_or(now);
            l.window = Some((now, end));
            Ok(Ok(()))
        }
        Some(Err(e)) => Ok(Err(e.to_string())),
        _ => Ok(Err("JIT is disabled for the policy's scope".to_owned())),
    }
}

/// Closes the open ports of an approved network request.
pub(crate) async fn close_network_access(
    tx: &mut Tx,
    row: &JitRequestRow,
    now: Timestamp,
) -> EngineResult<()> {
    if let Some((_, ports)) = tx.request(&row.name).await? {
        for p in ports {
            tx.close_port(&p.request_id, p.seq, StatusReason::UserRequested, now)
                .await?;
        }
    }
    Ok(())
}

/// What opening an approved network request checks besides its policy.
#[derive(Clone, Copy)]
pub(crate) struct Opening<'a> {
    /// Most grants one principal may hold at once; 0 for no limit.
    pub(crate) live_grant_limit: usize,
    /// Whose last-seen times decide that a live agent guards each machine; `None` when the
    /// server accepts machines no live agent guards.
    pub(crate) enforced_by: Option<&'a Presence>,
}

impl<'a> Opening<'a> {
    /// The checks the server `state` makes.
    pub(crate) fn of(state: &'a AppState) -> Self {
        Opening {
            live_grant_limit: state.request_writer.live_grant_limit,
            enforced_by: state.enforcement_check(),
        }
    }
}

/// Applies what a change of state means outside the lifecycle: a network request that became
/// active opens its ports (or fails), one that was revoked closes them.
pub(crate) async fn apply_effects(
    tx: &mut Tx,
    row: &JitRequestRow,
    before: &Lifecycle,
    mut after: Lifecycle,
    now: Timestamp,
    opening: Opening<'_>,
) -> EngineResult<Lifecycle> {
    if row.kind != NETWORK || before.state == after.state {
        return Ok(after);
    }
    match (before.state, after.state) {
        (_, RequestState::Active) => {
            if let Err(reason) = open_network_access(tx, row, &mut after, now, opening).await? {
                tracing::warn!(request = %row.id, %reason, "approved network access could not open");
                after = after.apply(Event::Fail(reason), &ApprovalRule::default(), now)?;
            }
        }
        (RequestState::Active, RequestState::Revoked) => close_network_access(tx, row, now).await?,
        _ => {}
    }
    Ok(after)
}

/// Applies an event to a stored request in one write transaction, with its effects.
/// Reads the request inside the write transaction, so two decisions cannot both count on a
/// stale copy.
pub(crate) async fn transition(
    state: &AppState,
    actor: &Actor,
    id: &ResourceId,
    make: impl FnOnce(Timestamp) -> Event,
) -> EngineResult<JitRequestRow> {
    let now = at_store_precision(state.clock.now());
    let mut tx = state.store.write().await?;
    let mut row = tx
        .jit_request(&id.to_string())
        .await?
        .ok_or_else(|| EngineError::NotFound(id.to_string()))?;
    let event = make(now);
    let rule = match rule_of(&mut tx, &row).await? {
        Some(rule) => rule,
        // Decisions need the rule; cancel and revoke do not.
        None if matches!(event, Event::Approve(..) | Event::Deny(..)) => {
            return Err(EngineError::Conflict(
                "the request's application or policy no longer exists".to_owned(),
            ));
        }
        None => ApprovalRule::default(),
    };
    let before = row.lifecycle.clone();
    let after = before.apply(event, &rule, now)?;
    let opening = Opening::of(state);
    // An approval that would open network access on a machine no live agent guards is refused
    // and changes nothing: the request stays as it was, to be approved once an agent runs.
    if let Some(presence) = opening.enforced_by
        && row.kind == NETWORK
        && after.state == RequestState::Active
        && before.state != RequestState::Active
    {
        let machines = network_detail(&row)?
            .requested
            .iter()
            .map(|m| m.machine.to_string())
            .collect::<Vec<_>>();
        if let Some(refusal) = unenforced(&mut tx, presence, &machines, now).await? {
            return Err(refusal.into());
        }
    }
    let after = apply_effects(&mut tx, &row, &before, after, now, opening).await?;
    save(&mut tx, &mut row, &after).await?;
    journal_steps(&mut tx, actor, &row, Some(&before), &after, now).await?;
    tx.commit().await?;
    Ok(row)
}

/// Called when a network request is revoked through the policy's `requests/{id}/revoke`: the
/// approval request that opened it (if any) is revoked too, inside the same transaction.
pub(crate) async fn network_request_revoked(
    tx: &mut Tx,
    policy: &ResourceId,
    request_id: &str,
    caller: &Caller,
    now: Timestamp,
) -> EngineResult<()> {
    let Ok(id) = request_id_of(policy, request_id) else {
        return Ok(());
    };
    let Some(mut row) = tx.jit_request(&id.to_string()).await? else {
        return Ok(());
    };
    let before = row.lifecycle.clone();
    let event = Event::Revoke {
        by: Principal::parse(&caller.principal)?,
        admin: true,
    };
    if let Ok(after) = before.apply(event, &ApprovalRule::default(), now) {
        save(tx, &mut row, &after).await?;
        journal_steps(tx, &Actor::from(caller), &row, Some(&before), &after, now).await?;
    }
    Ok(())
}

/// The id of the request `name` in the resource group of `target` (its application or policy).
pub(crate) fn request_id_of(target: &ResourceId, name: &str) -> EngineResult<ResourceId> {
    Ok(target.sibling(ResourceKind::JitRequest, Name::parse(name)?))
}

/// The scheduler's part: moves every request due at `now` (start, expiry warning, end,
/// timeout), with effects. Returns how many changed.
pub(crate) async fn run_due(state: &AppState, now: Timestamp) -> StoreResult<u64> {
    let mut read = state.store.read().await?;
    if read.next_jit_due().await?.is_none_or(|d| d > now) {
        return Ok(0);
    }
    drop(read);
    let mut tx = state.store.write().await?;
    let mut changed = 0;
    for id in tx.jit_requests_due(now).await? {
        let mut row = match tx.jit_request(&id).await {
            Ok(Some(row)) => row,
            Ok(None) => continue,
            Err(StoreError::Corrupt(e)) => {
                tracing::error!(request = %id, error = %e, "stored request unreadable; skipped");
                continue;
            }
            Err(e) => return Err(e),
        };
        let before = row.lifecycle.clone();
        // Time alone never needs the approval rule.
        let Ok(after) = before.apply(Event::Tick, &ApprovalRule::default(), now) else {
            continue;
        };
        let opening = Opening::of(state);
        // Each request moves whole or not at all: one that fails midway is undone and tried
        // again next pass, and the others still move.
        let point = tx.savepoint().await?;
        let moved: EngineResult<bool> = async {
            let after = apply_effects(&mut tx, &row, &before, after, now, opening).await?;
            save(&mut tx, &mut row, &after).await?;
            journal_steps(
                &mut tx,
                &Actor::scheduler(),
                &row,
                Some(&before),
                &after,
                now,
            )
            .await?;
            if after.warned_since(&before) {
                tracing::info!(request = %id, requester = %row.requester, "access expires in 15 minutes");
            }
            Ok(after != before)
        }
        .await;
        match moved {
            Ok(moved) => {
                tx.release(point).await?;
                changed += u64::from(moved);
            }
            Err(e) => {
                tracing::error!(request = %id, error = %e, "request could not move; undone");
                tx.rollback_to(point).await?;
            }
        }
    }
    // Every step was recorded above; a pass that only moved due times records nothing.
    tx.commit_unrecorded().await?;
    Ok(changed)
}

/// The scopes where JIT being switched off refuses a request under `policy`: its resource group
/// and its subscription.
pub(crate) fn blocking_scopes(policy: &ResourceId) -> [String; 2] {
    [
        policy.resource_group_scope().to_string(),
        Scope::Subscription(policy.subscription.clone()).to_string(),
    ]
}

/// The ports of a planned request as rows to store.
pub(crate) fn port_rows(
    request_id: &str,
    planned: &[ajar_core::request::PlannedPort],
) -> Vec<PortRow> {
    planned
        .iter()
        .enumerate()
        .map(|(seq, p)| {
            PortRow::initiated(
                request_id,
                seq as i64,
                p.machine.to_string(),
                p.number.get(),
                p.protocol.as_str().to_owned(),
                p.sources.iter().map(ToString::to_string).collect(),
                p.supersede_key(),
                at_store_precision(p.end),
            )
        })
        .collect()
}

/// An initiate under a policy with manual approval, checked against the policy as it was at
/// `etag`.
pub(crate) struct NetworkFiling<'a> {
    /// The policy.
    pub(crate) policy: &'a ResourceId,
    /// The policy's ETag when it was checked.
    pub(crate) etag: &'a str,
    /// Its approval rule at that ETag.
    pub(crate) approval: &'a ApprovalRule,
    /// Scopes where JIT being off refuses the request.
    pub(crate) blocking_scopes: &'a [String],
    /// The machines and ports asked for.
    pub(crate) requested: Vec<RequestedMachine>,
    /// Why.
    pub(crate) justification: Option<String>,
    /// The plan checked now; the ports are planned again when it is approved.
    pub(crate) planned: &'a [PlannedPort],
}

/// Stores an initiate under a policy with manual approval as a pending request in the policy's
/// resource group, recorded and notified; answers its id and row. `None` when the policy
/// changed since it was checked (check again), so it is read once per attempt.
pub(crate) async fn file_network_request(
    state: &AppState,
    caller: &Caller,
    filing: NetworkFiling<'_>,
    now: Timestamp,
) -> EngineResult<Option<(ResourceId, JitRequestRow)>> {
    let policy = filing.policy;
    let id = request_id_of(policy, &uuid::Uuid::new_v4().to_string())?;
    let mut tx = state.store.write().await?;
    match tx
        .policy_check(&policy.to_string(), filing.blocking_scopes)
        .await?
    {
        None => return Err(EngineError::NotFound(policy.to_string())),
        Some((_, Some(scope))) => {
            return Err(EngineError::Conflict(format!(
                "JIT is disabled for scope {scope}"
            )));
        }
        Some((etag, None)) if etag != filing.etag => return Ok(None),
        Some(_) => {}
    }
    let stored = network_lifecycle_and_row(
        &id,
        caller,
        policy,
        filing.approval,
        NetworkDetail {
            requested: filing.requested,
            address: caller.address,
        },
        filing.justification,
        filing.planned,
        now,
    )?;
    insert(tx, &Actor::from(caller), &id, &stored).await?;
    Ok(Some((id, stored)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_details_read_in_both_stored_forms() {
        let earlier = r#"{"initiate":{"virtualMachines":[{"id":"/subscriptions/s/resourceGroups/rg/machines/vm1",
            "ports":[{"number":22,"duration":"PT1H","allowedSourceAddressPrefix":"10.0.0.1"}]}],
            "justification":"INC-1"},"address":"203.0.113.7"}"#;
        let read = read_network_detail(earlier).expect("the earlier form reads");
        assert_eq!(read.address, Some("203.0.113.7".parse().unwrap()));
        assert_eq!(read.requested[0].ports[0].number.get(), 22);
        let current = serde_json::to_string(&read).unwrap();
        assert!(current.contains("\"requested\""), "{current}");
        let again = read_network_detail(&current).expect("the current form reads");
        assert_eq!(again.requested, read.requested);
        assert!(read_network_detail("{}").is_none());
    }
}
