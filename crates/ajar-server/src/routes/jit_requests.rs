//! Requests on the shared engine (`ajar_core::lifecycle`): role activations on managed
//! applications, and network access under a policy with manual approval. Create, read,
//! approve, deny, cancel, revoke, extend; the approver's inbox; history of both kinds; and the
//! scheduler's part (start, expiry warning, end, timeout).
//!
//! A network request stores the initiate as asked; when it becomes active the ports are planned
//! against the policy as it is then and stored as an ordinary network access request (same id
//! as the approval request's name), which the agents enforce and the network scheduler closes.

use super::requests::{PageQuery, blocking_scopes, port_rows, request_view};
use super::{Paging, Reply, instant, resource_id, ts};
use crate::AppState;
use crate::auth::Caller;
use crate::body::RawBody;
use crate::error::{AppError, AppResult};
use crate::journal::Actor;
use crate::notify::{self, Notice, NoticeEvent};
use crate::request_writer::{NewAccess, store_in};
use ajar_api::ErrorCode;
use ajar_api::wire::{
    AccessRequest, ApplicationProperties, DecisionBody, DecisionView, ExtendBody, HistoryEntry,
    InitiateBody, JitAuthorizationPolicy, JitRequest, JitRequestBody, JitRequestView,
    JitSchedulingPolicy, List,
};
use ajar_core::activity::Outcome;
use ajar_core::application::AppJitPolicy;
use ajar_core::duration::{AccessDuration, MAX_ACCESS, MIN_ACCESS};
use ajar_core::id::{ResourceId, ResourceKind, Scope};
use ajar_core::lifecycle::{
    ApprovalRule, Approver, Decision, Event, Lifecycle, Refused, RequestState, Start, Step, steps,
};
use ajar_core::policy::PolicyRules;
use ajar_core::principal::Principal;
use ajar_core::rbac::{actions, parse_role_name};
use ajar_core::request::{PlannedPort, StatusReason, plan_initiate};
use ajar_store::{
    Cursor, JitRequestFilter, JitRequestRow, RequestFilter, RequestRow, RequestsOn, StoreError,
    StoreResult, Tx, at_store_precision,
};
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// `kind` of a role activation.
const ROLE: &str = "role";
/// `kind` of approval-gated network access.
const NETWORK: &str = "network";

pub fn router() -> Router<AppState> {
    let req = "/api/v1/subscriptions/{sub}/resourceGroups/{rg}/jitRequests/{name}";
    Router::new()
        .route(req, get(get_jit_request).put(counted_create_jit_request))
        .route(&format!("{req}/approve"), post(approve))
        .route(&format!("{req}/deny"), post(deny))
        .route(&format!("{req}/cancel"), post(cancel))
        .route(&format!("{req}/revoke"), post(revoke))
        .route(&format!("{req}/extend"), post(extend))
        .route(
            "/api/v1/subscriptions/{sub}/resourceGroups/{rg}/applications/{name}/jitRequests",
            get(list_application_requests),
        )
        .route("/api/v1/inbox", get(inbox))
        .route("/api/v1/history", get(history))
}

impl From<Refused> for AppError {
    fn from(r: Refused) -> Self {
        let code = match r {
            Refused::State(..) | Refused::AlreadyDecided(_) => ErrorCode::Conflict,
            Refused::NotApprover(_) | Refused::SelfApproval | Refused::NotRequester(_) => {
                ErrorCode::AuthorizationFailed
            }
        };
        AppError::new(code, r.to_string())
    }
}

fn internal() -> AppError {
    AppError::new(ErrorCode::InternalError, "internal error")
}

fn bad(target: &str, message: impl Into<String>) -> AppError {
    AppError::new(ErrorCode::ValidationFailed, message.into()).at(target)
}

/// The JIT policy of a stored application.
fn app_policy(properties: &str) -> AppResult<AppJitPolicy> {
    let props: ApplicationProperties = serde_json::from_str(properties).map_err(|_| internal())?;
    Ok(props.jit_access_policy.unwrap_or_default().to_domain()?)
}

fn lifecycle_of(row: &JitRequestRow) -> AppResult<Lifecycle> {
    serde_json::from_str(&row.lifecycle).map_err(|e| {
        tracing::error!(request = %row.id, error = %e, "stored request unreadable");
        internal()
    })
}

/// What a network request stores besides its lifecycle: the initiate as asked and the caller's
/// address ("my IP" is resolved when the ports are planned).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct NetworkDetail {
    initiate: InitiateBody,
    address: Option<IpAddr>,
}

fn network_detail(row: &JitRequestRow) -> AppResult<NetworkDetail> {
    row.detail
        .as_deref()
        .and_then(|d| serde_json::from_str(d).ok())
        .ok_or_else(internal)
}

/// The rule that decides a request: its application's, or its network policy's. `None` when
/// the application or policy is gone.
async fn rule_of(tx: &mut Tx, row: &JitRequestRow) -> AppResult<Option<ApprovalRule>> {
    if row.kind == NETWORK {
        let Some(policy) = tx.policy(&row.application_id).await? else {
            return Ok(None);
        };
        return Ok(Some(super::policies::stored_rules(&policy)?.approval));
    }
    match tx.application(&row.application_id).await? {
        Some(app) => Ok(Some(app_policy(&app.properties)?.approval)),
        None => Ok(None),
    }
}

fn view(row: &JitRequestRow) -> AppResult<JitRequest> {
    let l = lifecycle_of(row)?;
    let roles: Vec<String> = serde_json::from_str(&row.roles).map_err(|_| internal())?;
    let network = row.kind == NETWORK;
    // A network request's ports were stored when it became active: it has a window and did
    // not fail.
    let opened = network && l.window.is_some() && l.state != RequestState::Failed;
    Ok(JitRequest {
        id: row.id.clone(),
        name: row.name.clone(),
        kind: "jitRequests".to_owned(),
        properties: JitRequestView {
            request_kind: row.kind.clone(),
            application_resource_id: (!network).then(|| row.application_id.clone()),
            network_access_policy_id: network.then(|| row.application_id.clone()),
            network_access: if network {
                Some(network_detail(row)?.initiate)
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
                    .map_err(|_| internal())?,
            },
            justification: row.justification.clone(),
            jit_request_state: l.state.as_str().to_owned(),
            requestor: row.requester.clone(),
            created_at: ts(row.created_at),
            active_from: l.window.map(|(from, _)| ts(from)),
            active_until: l.window.map(|(_, until)| ts(until)),
            decisions: l
                .decisions
                .iter()
                .map(|d| DecisionView {
                    by: d.by.to_string(),
                    decision: if d.approve { "Approved" } else { "Denied" }.to_owned(),
                    reason: d.reason.clone(),
                    at: ts(d.at),
                })
                .collect(),
            expiry_warned_at: l.expiry_warned_at.map(ts),
            failure: l.failure.clone(),
        },
    })
}

/// The scope of what a request grants access to: its application or its policy.
fn target_scope(row: &JitRequestRow) -> AppResult<Scope> {
    Scope::parse(&row.application_id).map_err(|_| internal())
}

fn request_id(sub: &str, rg: &str, n: &str) -> AppResult<ResourceId> {
    resource_id(sub, rg, ResourceKind::JitRequest, n)
}

/// Stores a changed lifecycle.
async fn save(tx: &mut Tx, row: &mut JitRequestRow, l: &Lifecycle) -> StoreResult<()> {
    row.lifecycle = serde_json::to_string(l).map_err(|e| StoreError::Other(e.to_string()))?;
    row.state = l.state.as_str().to_owned();
    row.due = l.next_due();
    tx.update_jit_request(&row.id, &row.lifecycle, &row.state, row.due)
        .await
}

/// The most requests one principal may have awaiting a decision at once.
pub const MAX_PENDING_PER_PRINCIPAL: i64 = 50;

/// Inserts a new request made by `actor`, records it and commits; 409 when the name is taken
/// or its requester already has [`MAX_PENDING_PER_PRINCIPAL`] requests awaiting a decision.
async fn insert(mut tx: Tx, actor: &Actor, id: &ResourceId, row: &JitRequestRow) -> AppResult<()> {
    if row.state == RequestState::Pending.as_str()
        && tx.pending_requests_of(&row.requester).await? >= MAX_PENDING_PER_PRINCIPAL
    {
        return Err(AppError::new(
            ErrorCode::Conflict,
            format!(
                "{} has {MAX_PENDING_PER_PRINCIPAL} requests awaiting a decision, the most one \
                 principal may have; cancel some or wait for them to be decided",
                row.requester
            ),
        ));
    }
    if !tx
        .insert_jit_request(row, id.subscription.as_str(), id.resource_group.as_str())
        .await?
    {
        return Err(AppError::new(
            ErrorCode::Conflict,
            format!("{id} exists; requests are not replaced"),
        )
        .at(id.to_string()));
    }
    let l = lifecycle_of(row)?;
    journal_steps(&mut tx, actor, row, None, &l, l.created).await?;
    Ok(tx.commit().await?)
}

/// Records each step from `before` (`None`: new) to `after` of `row`, as done by `actor`, and
/// queues the notifications they call for, inside `tx`.
async fn journal_steps(
    tx: &mut Tx,
    actor: &Actor,
    row: &JitRequestRow,
    before: Option<&Lifecycle>,
    after: &Lifecycle,
    now: Timestamp,
) -> AppResult<()> {
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
        .map(|(s, e)| serde_json::json!({"start": ts(s), "end": ts(e)}));
    let mut notices = Vec::new();
    for step in &steps {
        let mut details = serde_json::json!({
            "kind": row.kind,
            "state": after.state.as_str(),
            "requester": row.requester,
        });
        match step {
            Step::Created => {
                details["roles"] = serde_json::from_str(&row.roles).unwrap_or_default();
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
fn new_row(
    id: &ResourceId,
    kind: &str,
    target: String,
    caller: &Caller,
    roles: &[String],
    justification: Option<String>,
    l: &Lifecycle,
) -> AppResult<JitRequestRow> {
    Ok(JitRequestRow {
        id: id.to_string(),
        name: id.name.to_string(),
        application_id: target,
        kind: kind.to_owned(),
        requester: caller.principal.clone(),
        roles: serde_json::to_string(roles).map_err(|_| internal())?,
        justification,
        lifecycle: serde_json::to_string(l).map_err(|_| internal())?,
        state: l.state.as_str().to_owned(),
        due: l.next_due(),
        created_at: l.created,
        detail: None,
        extends: None,
    })
}

fn check_justification(j: &Option<String>, target: &str) -> AppResult<()> {
    if j.as_ref().is_some_and(|j| j.chars().count() > 2000) {
        return Err(bad(target, "justification is longer than 2000 characters"));
    }
    Ok(())
}

/// Checks a role activation against its application inside `tx`: the application exists and
/// has JIT, the duration is within its maximum and the caller is eligible (directly or through
/// a group) for every role. Answers the approval rule.
async fn check_role_request(
    tx: &mut Tx,
    caller: &Caller,
    app_id: &str,
    roles: &[String],
    duration: AccessDuration,
) -> AppResult<ApprovalRule> {
    let target = "properties.applicationResourceId";
    let Some(app) = tx.application(app_id).await? else {
        return Err(AppError::new(
            ErrorCode::NotFound,
            format!("application {app_id} does not exist"),
        )
        .at(target));
    };
    if !app.jit_enabled {
        return Err(AppError::new(
            ErrorCode::Conflict,
            "the application was created without JIT: its publishers have standing access",
        )
        .at(target));
    }
    let policy = app_policy(&app.properties)?;
    if duration > policy.max_duration {
        return Err(bad(
            "properties.jitSchedulingPolicy.duration",
            format!(
                "{duration} is longer than the application's maximum of {}",
                policy.max_duration
            ),
        ));
    }
    let eligible = tx.eligibilities(app_id).await?;
    for (i, role) in roles.iter().enumerate() {
        if !eligible
            .iter()
            .any(|e| &e.role_name == role && caller.is_or_belongs_to(&e.principal))
        {
            return Err(AppError::new(
                ErrorCode::AuthorizationFailed,
                format!(
                    "{} is not eligible for role {role} on {app_id}",
                    caller.principal
                ),
            )
            .at(format!(
                "properties.jitAuthorizationPolicies[{i}].roleDefinitionId"
            )));
        }
    }
    Ok(policy.approval)
}

#[utoipa::path(put, path = "/api/v1/subscriptions/{sub}/resourceGroups/{rg}/jitRequests/{name}", tag = "jitRequests",
    params(("sub" = String, Path), ("rg" = String, Path), ("name" = String, Path)),
    request_body = JitRequestBody,
    responses((status = 201, body = JitRequest), (status = 409, body = ajar_api::ErrorBody)))]
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
    let row = new_row(
        &id,
        ROLE,
        app_id,
        &caller,
        &roles,
        p.justification.clone(),
        &l,
    )?;
    insert(tx, &Actor::from(&caller), &id, &row).await?;
    state.access_index.invalidate();
    Ok(Reply::created_or_ok(true, view(&row)?))
}

/// [`create_jit_request`], counted in `ajar_access_requests_total{kind="role"}`.
async fn counted_create_jit_request(
    state: State<AppState>,
    caller: Caller,
    path: Path<(String, String, String)>,
    body: RawBody,
) -> AppResult<Reply<JitRequest>> {
    let metrics = state.metrics.clone();
    let result = create_jit_request(state, caller, path, body).await;
    let pending = |r: &Reply<JitRequest>| {
        r.body.properties.jit_request_state == RequestState::Pending.as_str()
    };
    metrics.access_request(
        ROLE,
        crate::metrics::access_result(result.as_ref().map(pending)),
    );
    result
}

/// Stores an initiate under a policy with manual approval as a pending request in the policy's
/// resource group, and answers it in the network request shape with its ports `Pending`.
/// `planned` is the plan checked now; the ports are planned again when it is approved.
pub async fn create_network_request(
    state: &AppState,
    caller: &Caller,
    policy: &ResourceId,
    initiate: &InitiateBody,
    planned: &[PlannedPort],
    now: Timestamp,
) -> AppResult<Reply<AccessRequest>> {
    let name = uuid::Uuid::new_v4().to_string();
    let id = request_id_of(policy, &name)?;
    let mut tx = state.store.write().await?;
    let rules = current_rules(&mut tx, policy).await?;
    if rules.approval.automatic {
        return Err(AppError::new(
            ErrorCode::Conflict,
            "the policy changed while the request was checked; retry",
        ));
    }
    let stored = network_lifecycle_and_row(
        &id,
        caller,
        policy,
        &rules.approval,
        NetworkDetail {
            initiate: initiate.clone(),
            address: caller.address,
        },
        planned,
        now,
    )?;
    insert(tx, &Actor::from(caller), &id, &stored).await?;
    let pending = RequestRow {
        id: name.clone(),
        policy_id: policy.to_string(),
        requestor: caller.principal.clone(),
        justification: initiate.justification.clone(),
        source_address: caller.address.map(|a| a.to_string()),
        created_at: now,
    };
    let mut answer = request_view(&pending, &port_rows(&name, planned));
    for port in answer
        .virtual_machines
        .iter_mut()
        .flat_map(|m| m.ports.iter_mut())
    {
        port.status = "Pending".to_owned();
        port.status_reason = "AwaitingApproval".to_owned();
    }
    answer.approval_request_id = Some(id.to_string());
    answer.approval_state = Some(stored.state.clone());
    Ok(Reply::accepted(answer))
}

/// The rules of a policy as stored now.
async fn current_rules(tx: &mut Tx, policy: &ResourceId) -> AppResult<PolicyRules> {
    let row = tx
        .policy(&policy.to_string())
        .await?
        .ok_or_else(|| AppError::not_found(policy))?;
    super::policies::stored_rules(&row)
}

/// A new network request's row: the window lasts as long as the longest planned port, counted
/// from approval.
fn network_lifecycle_and_row(
    id: &ResourceId,
    caller: &Caller,
    policy: &ResourceId,
    rule: &ApprovalRule,
    detail: NetworkDetail,
    planned: &[PlannedPort],
    now: Timestamp,
) -> AppResult<JitRequestRow> {
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
        detail.initiate.justification.clone(),
        &l,
    )?;
    row.detail = Some(serde_json::to_string(&detail).map_err(|_| internal())?);
    Ok(row)
}

/// Opens an approved network request: plans its ports against the policy as it is now and
/// stores them as a network access request named like the approval request. Fails (with the
/// reason, nothing stored) when the policy no longer allows it.
async fn open_network_access(
    tx: &mut Tx,
    row: &JitRequestRow,
    l: &mut Lifecycle,
    now: Timestamp,
    live_grant_limit: usize,
) -> AppResult<Result<(), String>> {
    let detail = network_detail(row)?;
    let Some(policy_row) = tx.policy(&row.application_id).await? else {
        return Ok(Err("the policy no longer exists".to_owned()));
    };
    let rules = super::policies::stored_rules(&policy_row)?;
    let requested = match detail.initiate.to_domain() {
        Ok(r) => r,
        Err(e) => return Ok(Err(e.message)),
    };
    let planned = match plan_initiate(&rules, &requested, now, detail.address) {
        Ok(p) => p,
        Err(e) => return Ok(Err(format!("{}: {}", e.target, e.message))),
    };
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
        Some(Err(e)) => Ok(Err(e.0.message)),
        _ => Ok(Err("JIT is disabled for the policy's scope".to_owned())),
    }
}

/// Closes the open ports of an approved network request.
async fn close_network_access(tx: &mut Tx, row: &JitRequestRow, now: Timestamp) -> AppResult<()> {
    if let Some((_, ports)) = tx.request(&row.name).await? {
        for p in ports {
            tx.close_port(&p.request_id, p.seq, StatusReason::UserRequested, now)
                .await?;
        }
    }
    Ok(())
}

/// Applies what a change of state means outside the lifecycle: a network request that became
/// active opens its ports (or fails), one that was revoked closes them.
async fn apply_effects(
    tx: &mut Tx,
    row: &JitRequestRow,
    before: &Lifecycle,
    mut after: Lifecycle,
    now: Timestamp,
    live_grant_limit: usize,
) -> AppResult<Lifecycle> {
    if row.kind != NETWORK || before.state == after.state {
        return Ok(after);
    }
    match (before.state, after.state) {
        (_, RequestState::Active) => {
            if let Err(reason) =
                open_network_access(tx, row, &mut after, now, live_grant_limit).await?
            {
                tracing::warn!(request = %row.id, %reason, "approved network access could not open");
                after = after.apply(Event::Fail(reason), &ApprovalRule::default(), now)?;
            }
        }
        (RequestState::Active, RequestState::Revoked) => close_network_access(tx, row, now).await?,
        _ => {}
    }
    Ok(after)
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

/// Applies an event to a stored request in one write transaction, with its effects.
/// Reads the request inside the write transaction, so two decisions cannot both count on a
/// stale copy.
async fn transition(
    state: &AppState,
    actor: &Actor,
    id: &ResourceId,
    make: impl FnOnce(Timestamp) -> Event,
) -> AppResult<Reply<JitRequest>> {
    let now = at_store_precision(state.clock.now());
    let mut tx = state.store.write().await?;
    let mut row = tx
        .jit_request(&id.to_string())
        .await?
        .ok_or_else(|| AppError::not_found(id))?;
    let event = make(now);
    let rule = match rule_of(&mut tx, &row).await? {
        Some(rule) => rule,
        // Decisions need the rule; cancel and revoke do not.
        None if matches!(event, Event::Approve(..) | Event::Deny(..)) => {
            return Err(AppError::new(
                ErrorCode::Conflict,
                "the request's application or policy no longer exists",
            ));
        }
        None => ApprovalRule::default(),
    };
    let before = lifecycle_of(&row)?;
    let after = before.apply(event, &rule, now)?;
    let limit = state.request_writer.live_grant_limit;
    let after = apply_effects(&mut tx, &row, &before, after, now, limit).await?;
    save(&mut tx, &mut row, &after).await?;
    journal_steps(&mut tx, actor, &row, Some(&before), &after, now).await?;
    tx.commit().await?;
    state.access_index.invalidate();
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
    transition(state, &Actor::from(caller), &id, |now| {
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
    .await
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
    transition(&state, &Actor::from(&caller), &id, |_| Event::Cancel(by)).await
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
    transition(&state, &Actor::from(&caller), &id, move |_| Event::Revoke {
        by,
        admin,
    })
    .await
}

/// Called when a network request is revoked through the policy's `requests/{id}/revoke`: the
/// approval request that opened it (if any) is revoked too, inside the same transaction.
pub async fn network_request_revoked(
    tx: &mut Tx,
    policy: &ResourceId,
    request_id: &str,
    caller: &Caller,
    now: Timestamp,
) -> AppResult<()> {
    let Ok(id) = request_id_of(policy, request_id) else {
        return Ok(());
    };
    let Some(mut row) = tx.jit_request(&id.to_string()).await? else {
        return Ok(());
    };
    let before = lifecycle_of(&row)?;
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

fn request_id_of(policy: &ResourceId, name: &str) -> AppResult<ResourceId> {
    request_id(
        policy.subscription.as_str(),
        policy.resource_group.as_str(),
        name,
    )
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
    let target = ResourceId::parse(&original.application_id).map_err(|_| internal())?;
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
    let l = lifecycle_of(&original)?.apply(Event::Tick, &ApprovalRule::default(), now)?;
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
        detail.initiate.justification = justification;
        for port in detail
            .initiate
            .virtual_machines
            .iter_mut()
            .flat_map(|m| m.ports.iter_mut())
        {
            port.end_time_utc = None;
            port.duration = Some(body.duration);
        }
        let rules = current_rules(&mut tx, &policy).await?;
        if rules.approval.automatic {
            return Err(AppError::new(
                ErrorCode::Conflict,
                "the policy now approves automatically: initiate again to extend access",
            ));
        }
        let requested = detail.initiate.to_domain()?;
        let planned = plan_initiate(&rules, &requested, now, detail.address)?;
        // Approved, the new ports supersede the old ones: access continues without a gap.
        network_lifecycle_and_row(
            &new_id,
            &caller,
            &policy,
            &rules.approval,
            detail,
            &planned,
            now,
        )?
    } else {
        let roles: Vec<String> = serde_json::from_str(&original.roles).map_err(|_| internal())?;
        let rule = check_role_request(
            &mut tx,
            &caller,
            &original.application_id,
            &roles,
            body.duration,
        )
        .await
        .map_err(|e| e.at("duration"))?;
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
    state.access_index.invalidate();
    Ok(Reply::created_or_ok(true, view(&row)?))
}

#[utoipa::path(get, path = "/api/v1/subscriptions/{sub}/resourceGroups/{rg}/applications/{name}/jitRequests", tag = "jitRequests",
    params(("sub" = String, Path), ("rg" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = List<JitRequest>)))]
pub async fn list_application_requests(
    State(state): State<AppState>,
    caller: Caller,
    Path((sub, rg, n)): Path<(String, String, String)>,
    paging: Paging,
) -> AppResult<Reply<List<JitRequest>>> {
    let app = resource_id(&sub, &rg, ResourceKind::Application, &n)?;
    caller.require(actions::APPLICATIONS_READ, &app.scope())?;
    let mut tx = state.store.read().await?;
    let rows = tx.jit_requests_of_application(&app.to_string()).await?;
    let value = rows.iter().map(view).collect::<AppResult<_>>()?;
    Ok(Reply::ok(paging.list(value)))
}

#[utoipa::path(get, path = "/api/v1/inbox", tag = "jitRequests",
    responses((status = 200, body = List<JitRequest>, description = "pending requests of both kinds the caller may decide")))]
pub async fn inbox(
    State(state): State<AppState>,
    caller: Caller,
    paging: Paging,
) -> AppResult<Reply<List<JitRequest>>> {
    caller.require_within(actions::REQUESTS_APPROVE, &Scope::Root)?;
    let who = Principal::parse(&caller.principal)?;
    let mut tx = state.store.read().await?;
    let pending = tx
        .jit_requests_in_state(RequestState::Pending.as_str())
        .await?;
    let mut value = Vec::new();
    for row in &pending {
        let (Ok(scope), false) = (Scope::parse(&row.id), row.requester == caller.principal) else {
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
        let decided = lifecycle_of(row)?.decisions.iter().any(|d| d.by == who);
        if !decided && rule.is_approver(&who, &caller.groups) {
            value.push(view(row)?);
        }
    }
    Ok(Reply::ok(paging.list(value)))
}

/// Filters of `GET /api/v1/history`.
#[derive(Debug, Deserialize)]
pub struct HistoryQuery {
    requester: Option<String>,
    kind: Option<String>,
    state: Option<String>,
    from: Option<String>,
    to: Option<String>,
    #[serde(flatten)]
    page: PageQuery,
}

/// A network access request's state in history words: open ports make it `Active`; closed, it
/// is `Expired`, `Superseded` or `Revoked` by the reason its last port closed.
fn network_state(ports: &[ajar_store::PortRow]) -> &'static str {
    use ajar_core::request::PortStatus;
    if ports.iter().any(|p| p.status == PortStatus::Initiated) {
        return "Active";
    }
    match ports
        .iter()
        .max_by_key(|p| p.removed_at)
        .map(|p| p.status_reason)
    {
        Some(StatusReason::Expired) => "Expired",
        Some(StatusReason::NewerRequestInitiated) => "Superseded",
        _ => "Revoked",
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
    let (top, cursor) = query.page.parse()?;
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
    let states = [
        "Pending",
        "Approved",
        "Active",
        "Denied",
        "Canceled",
        "Timeout",
        "Expired",
        "Revoked",
        "Failed",
        "Superseded",
    ];
    if let Some(s) = &query.state
        && !states.contains(&s.as_str())
    {
        return Err(AppError::new(
            ErrorCode::InvalidParameter,
            format!("state must be one of {}", states.join(", ")),
        )
        .at("state"));
    }
    let requester = query.requester.as_deref();
    let mut tx = state.store.read().await?;
    let mut entries: Vec<(Cursor, HistoryEntry, bool)> = Vec::new();
    // Role activations and approval-gated network requests.
    let rows = tx
        .jit_request_history(
            JitRequestFilter {
                requester,
                kind,
                state: query.state.as_deref(),
                from,
                to,
            },
            cursor.as_ref(),
            top + 1,
        )
        .await?;
    for row in rows {
        let l = lifecycle_of(&row)?;
        let visible = row.requester == caller.principal
            || Scope::parse(&row.id).is_ok_and(|s| caller.may(actions::JIT_REQUESTS_READ, &s));
        entries.push((
            Cursor {
                created_at: ajar_store::to_db(row.created_at),
                id: row.id.clone(),
            },
            HistoryEntry {
                id: row.id.clone(),
                kind: row.kind.clone(),
                target: row.application_id.clone(),
                requestor: row.requester.clone(),
                state: row.state.clone(),
                created_at: ts(row.created_at),
                active_from: l.window.map(|(f, _)| ts(f)),
                active_until: l.window.map(|(_, u)| ts(u)),
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
                },
                cursor.as_ref(),
                top + 1,
            )
            .await?;
        for (req, ports) in rows {
            let state_word = network_state(&ports);
            if query.state.as_deref().is_some_and(|s| s != state_word) {
                continue;
            }
            let visible = req.requestor == caller.principal
                || Scope::parse(&req.policy_id)
                    .is_ok_and(|s| caller.may(actions::REQUESTS_READ, &s));
            entries.push((
                Cursor {
                    created_at: ajar_store::to_db(req.created_at),
                    id: req.id.clone(),
                },
                HistoryEntry {
                    id: req.id.clone(),
                    kind: NETWORK.to_owned(),
                    target: req.policy_id.clone(),
                    requestor: req.requestor.clone(),
                    state: state_word.to_owned(),
                    created_at: ts(req.created_at),
                    active_from: Some(ts(req.created_at)),
                    active_until: ports.iter().map(|p| p.end_time).max().map(ts),
                    justification: req.justification.clone(),
                },
                visible,
            ));
        }
    }
    // Newest first across both sources; a page ends at `top` entries examined, so a page may
    // hold fewer visible entries than `top` and still have a next link.
    entries.sort_by(|a, b| (b.0.created_at, &b.0.id).cmp(&(a.0.created_at, &a.0.id)));
    let more = entries.len() > top as usize;
    entries.truncate(top as usize);
    let next_link = more.then(|| entries.last()).flatten().map(|(c, _, _)| {
        format!(
            "/api/v1/history?top={top}&skipToken={}.{}",
            c.created_at, c.id
        )
    });
    let value = entries
        .into_iter()
        .filter(|(_, _, visible)| *visible)
        .map(|(_, e, _)| e)
        .collect();
    Ok(Reply::ok(List { value, next_link }))
}

/// The scheduler's part: moves every request due at `now` (start, expiry warning, end,
/// timeout), with effects. Returns how many changed.
pub async fn run_due(state: &AppState, now: Timestamp) -> StoreResult<u64> {
    let mut read = state.store.read().await?;
    if read.next_jit_due().await?.is_none_or(|d| d > now) {
        return Ok(0);
    }
    drop(read);
    let mut tx = state.store.write().await?;
    let mut changed = 0;
    for id in tx.jit_requests_due(now).await? {
        let Some(mut row) = tx.jit_request(&id).await? else {
            continue;
        };
        let Ok(before) = serde_json::from_str::<Lifecycle>(&row.lifecycle) else {
            tracing::error!(request = %id, "stored request unreadable; skipped");
            continue;
        };
        // Time alone never needs the approval rule.
        let Ok(after) = before.apply(Event::Tick, &ApprovalRule::default(), now) else {
            continue;
        };
        let limit = state.request_writer.live_grant_limit;
        // Each request moves whole or not at all: one that fails midway is undone and tried
        // again next pass, and the others still move.
        let point = tx.savepoint().await?;
        let moved: AppResult<bool> = async {
            let after = apply_effects(&mut tx, &row, &before, after, now, limit).await?;
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
                tracing::error!(request = %id, error = %e.0.message, "request could not move; undone");
                tx.rollback_to(point).await?;
            }
        }
    }
    // Every step was recorded above; a pass that only moved due times records nothing.
    tx.commit_unrecorded().await?;
    if changed > 0 {
        state.access_index.invalidate();
    }
    Ok(changed)
}
