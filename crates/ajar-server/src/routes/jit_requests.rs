//! Role activation requests on managed applications: create, read, approve, deny, cancel,
//! revoke, the approver's inbox, and the scheduler's part (start, end, timeout), all through
//! `ajar_core::lifecycle`.

use super::{Reply, resource_id, ts};
use crate::AppState;
use crate::auth::Caller;
use crate::body::RawBody;
use crate::error::{AppError, AppResult};
use ajar_api::ErrorCode;
use ajar_api::wire::{
    ApplicationProperties, DecisionBody, DecisionView, JitAuthorizationPolicy, JitRequest,
    JitRequestBody, JitRequestView, JitSchedulingPolicy, List,
};
use ajar_core::application::AppJitPolicy;
use ajar_core::duration::AccessDuration;
use ajar_core::id::{ResourceId, ResourceKind, Scope};
use ajar_core::lifecycle::{Decision, Event, Lifecycle, Refused, RequestState, Start};
use ajar_core::principal::Principal;
use ajar_core::rbac::{actions, parse_role_name};
use ajar_store::{JitRequestRow, StoreResult, Tx};
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use jiff::{SignedDuration, Timestamp};

pub fn router() -> Router<AppState> {
    let req = "/api/v1/subscriptions/{sub}/resourceGroups/{rg}/jitRequests/{name}";
    Router::new()
        .route(req, get(get_jit_request).put(create_jit_request))
        .route(&format!("{req}/approve"), post(approve))
        .route(&format!("{req}/deny"), post(deny))
        .route(&format!("{req}/cancel"), post(cancel))
        .route(&format!("{req}/revoke"), post(revoke))
        .route(
            "/api/v1/subscriptions/{sub}/resourceGroups/{rg}/applications/{name}/jitRequests",
            get(list_application_requests),
        )
        .route("/api/v1/inbox", get(inbox))
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

fn view(row: &JitRequestRow) -> AppResult<JitRequest> {
    let l = lifecycle_of(row)?;
    let roles: Vec<String> = serde_json::from_str(&row.roles).map_err(|_| internal())?;
    Ok(JitRequest {
        id: row.id.clone(),
        name: row.name.clone(),
        kind: "jitRequests".to_owned(),
        properties: JitRequestView {
            application_resource_id: row.application_id.clone(),
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
                duration: AccessDuration::new(l.duration).map_err(|_| internal())?,
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
        },
    })
}

fn request_id(sub: &str, rg: &str, n: &str) -> AppResult<ResourceId> {
    resource_id(sub, rg, ResourceKind::JitRequest, n)
}

/// Stores a changed lifecycle.
async fn save(tx: &mut Tx, row: &mut JitRequestRow, l: &Lifecycle) -> StoreResult<()> {
    row.lifecycle =
        serde_json::to_string(l).map_err(|e| ajar_store::StoreError::Other(e.to_string()))?;
    row.state = l.state.as_str().to_owned();
    row.due = l.next_due();
    tx.update_jit_request(&row.id, &row.lifecycle, &row.state, row.due)
        .await
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
    let bad =
        |target: &str, m: &str| AppError::new(ErrorCode::ValidationFailed, m.to_owned()).at(target);
    if p.application_resource_id.kind != ResourceKind::Application {
        return Err(bad(
            "properties.applicationResourceId",
            "not an application id",
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
    if p.justification
        .as_ref()
        .is_some_and(|j| j.chars().count() > 2000)
    {
        return Err(bad(
            "properties.justification",
            "justification is longer than 2000 characters",
        ));
    }
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
    let now = ajar_store::at_store_precision(state.clock.now());
    let start = match p.jit_scheduling_policy.start_time {
        None => Start::Now,
        Some(t) if t < now.checked_sub(SignedDuration::from_mins(1)).unwrap_or(now) => {
            return Err(bad(
                "properties.jitSchedulingPolicy.startTime",
                "the start time is in the past",
            ));
        }
        Some(t) => Start::At(ajar_store::at_store_precision(t.max(now))),
    };
    let app_id = p.application_resource_id.to_string();
    let mut tx = state.store.write().await?;
    let Some(app) = tx.application(&app_id).await? else {
        return Err(AppError::new(
            ErrorCode::NotFound,
            format!("application {app_id} does not exist"),
        )
        .at("properties.applicationResourceId"));
    };
    if !app.jit_enabled {
        return Err(AppError::new(
            ErrorCode::Conflict,
            "the application was created without JIT: its publishers have standing access",
        )
        .at("properties.applicationResourceId"));
    }
    let policy = app_policy(&app.properties)?;
    let duration = p.jit_scheduling_policy.duration;
    if duration > policy.max_duration {
        return Err(bad(
            "properties.jitSchedulingPolicy.duration",
            &format!(
                "{duration} is longer than the application's maximum of {}",
                policy.max_duration
            ),
        ));
    }
    let eligible = tx.eligibilities(&app_id).await?;
    for (i, role) in roles.iter().enumerate() {
        if !eligible
            .iter()
            .any(|e| &e.role_name == role && e.principal == caller.principal)
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
    let requester = Principal::parse(&caller.principal)?;
    let l = Lifecycle::new(requester, start, duration.get(), &policy.approval, now);
    let row = JitRequestRow {
        id: id.to_string(),
        name: id.name.to_string(),
        application_id: app_id,
        requester: caller.principal.clone(),
        roles: serde_json::to_string(&roles).map_err(|_| internal())?,
        justification: p.justification.clone(),
        lifecycle: serde_json::to_string(&l).map_err(|_| internal())?,
        state: l.state.as_str().to_owned(),
        due: l.next_due(),
        created_at: now,
    };
    if !tx
        .insert_jit_request(&row, id.subscription.as_str(), id.resource_group.as_str())
        .await?
    {
        return Err(AppError::new(
            ErrorCode::Conflict,
            format!("{id} exists; requests are not replaced"),
        )
        .at(id.to_string()));
    }
    tx.commit().await?;
    state.access_index.invalidate();
    Ok(Reply::created_or_ok(true, view(&row)?))
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

/// Applies an event to a stored request in one write transaction.
/// Reads the request inside the write transaction, so two decisions cannot both count on a
/// stale copy.
async fn transition(
    state: &AppState,
    id: &ResourceId,
    make: impl FnOnce(Timestamp) -> Event,
) -> AppResult<Reply<JitRequest>> {
    let now = ajar_store::at_store_precision(state.clock.now());
    let mut tx = state.store.write().await?;
    let mut row = tx
        .jit_request(&id.to_string())
        .await?
        .ok_or_else(|| AppError::not_found(id))?;
    let app = tx.application(&row.application_id).await?.ok_or_else(|| {
        AppError::new(
            ErrorCode::Conflict,
            "the request's application no longer exists",
        )
    })?;
    let policy = app_policy(&app.properties)?;
    let next = lifecycle_of(&row)?.apply(make(now), &policy.approval, now)?;
    save(&mut tx, &mut row, &next).await?;
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
    if body.reason.trim().is_empty() || body.reason.chars().count() > 1000 {
        return Err(AppError::new(
            ErrorCode::ValidationFailed,
            "a reason of 1 to 1000 characters is required",
        )
        .at("reason"));
    }
    let by = Principal::parse(&caller.principal)?;
    transition(state, &id, |now| {
        let d = Decision {
            by,
            approve,
            reason: body.reason,
            at: now,
        };
        if approve {
            Event::Approve(d, vec![])
        } else {
            Event::Deny(d, vec![])
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
    transition(&state, &id, |_| Event::Cancel(by)).await
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
    // Admins of the application may revoke anyone's activation; others only their own.
    let admin = Scope::parse(&row.application_id)
        .is_ok_and(|s| caller.may(actions::APPLICATIONS_WRITE, &s));
    let by = Principal::parse(&caller.principal)?;
    transition(&state, &id, move |_| Event::Revoke { by, admin }).await
}

#[utoipa::path(get, path = "/api/v1/subscriptions/{sub}/resourceGroups/{rg}/applications/{name}/jitRequests", tag = "jitRequests",
    params(("sub" = String, Path), ("rg" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = List<JitRequest>)))]
pub async fn list_application_requests(
    State(state): State<AppState>,
    caller: Caller,
    Path((sub, rg, n)): Path<(String, String, String)>,
) -> AppResult<Reply<List<JitRequest>>> {
    let app = resource_id(&sub, &rg, ResourceKind::Application, &n)?;
    caller.require(actions::APPLICATIONS_READ, &app.scope())?;
    let mut tx = state.store.read().await?;
    let rows = tx.jit_requests_of_application(&app.to_string()).await?;
    let value = rows.iter().map(view).collect::<AppResult<_>>()?;
    Ok(Reply::ok(List {
        value,
        next_link: None,
    }))
}

#[utoipa::path(get, path = "/api/v1/inbox", tag = "jitRequests",
    responses((status = 200, body = List<JitRequest>, description = "pending requests the caller may decide")))]
pub async fn inbox(
    State(state): State<AppState>,
    caller: Caller,
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
        if !caller.may(actions::REQUESTS_APPROVE, &scope) {
            continue;
        }
        let Some(app) = tx.application(&row.application_id).await? else {
            continue;
        };
        if app_policy(&app.properties)?.approval.is_approver(&who, &[]) {
            value.push(view(row)?);
        }
    }
    Ok(Reply::ok(List {
        value,
        next_link: None,
    }))
}

/// The scheduler's part: moves every request due at `now` (start, end, timeout). Returns how
/// many changed.
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
        let Ok(l) = serde_json::from_str::<Lifecycle>(&row.lifecycle) else {
            tracing::error!(request = %id, "stored request unreadable; skipped");
            continue;
        };
        let rule = ajar_core::lifecycle::ApprovalRule {
            automatic: false,
            approvers: vec![],
            threshold: 1,
        };
        let Ok(next) = l.apply(Event::Tick, &rule, now) else {
            continue;
        };
        if next != l {
            changed += 1;
        }
        save(&mut tx, &mut row, &next).await?;
    }
    tx.commit().await?;
    if changed > 0 {
        state.access_index.invalidate();
    }
    Ok(changed)
}
