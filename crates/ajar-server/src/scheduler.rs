//! The scheduler: closes ports whose end time has passed. Its state is the end times in the
//! store, so after a restart it catches up on everything that fell due while ajar was down.

use crate::AppState;
use crate::journal::Actor;
use crate::notify::{self, Notice, NoticeEvent};
use ajar_core::lifecycle::EXPIRY_WARNING;
use ajar_core::request::PortStatus;
use ajar_store::{ExpiredPort, StoreResult};
use jiff::Timestamp;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::watch;

/// Longest the scheduler sleeps between passes, so a changed clock or a missed wake-up costs
/// at most this much lag.
pub const MAX_NAP: Duration = Duration::from_secs(1);

/// Runs one pass: every request and port due at the clock's current instant moves on (ports
/// close as `Expired`, "expires in 15 minutes" notices go out). Returns how many requests and
/// ports changed. Safe to run concurrently: each is moved once. Takes the writer only when
/// something is due.
pub async fn run_due(state: &AppState) -> StoreResult<u64> {
    let now = state.clock.now();
    // First and on its own: a failure elsewhere must not keep refusal windows open.
    if let Err(e) = crate::journal::record_counted_refusals(state, now).await {
        tracing::warn!(error = %e, "counted refusals not recorded this pass");
    }
    if let Err(e) = state.presence.flush(&state.store).await {
        tracing::warn!(error = %e, "agents' last-seen times not written this pass");
    }
    let roles = crate::engine::requests::run_due(state, now).await?;
    let warned = warn_expiring(state, now).await?;
    Ok(roles + warned + expire_ports(state, now).await?)
}

/// Records and notifies "expires in 15 minutes" for automatic network requests (approval-gated
/// ones are warned through their lifecycle).
async fn warn_expiring(state: &AppState, now: Timestamp) -> StoreResult<u64> {
    let mut read = state.store.read().await?;
    let due = read.expiry_warning_due(now, EXPIRY_WARNING).await?;
    drop(read);
    if !due {
        return Ok(0);
    }
    let mut tx = state.store.write().await?;
    let warned = tx.warn_expiring(now, EXPIRY_WARNING).await?;
    let mut notices = Vec::with_capacity(warned.len());
    for r in &warned {
        let end = tx
            .request(&r.id)
            .await?
            .and_then(|(_, ports)| ports.iter().map(|p| p.end_time).min());
        tx.record(
            &Actor::scheduler()
                .did("ajar.jit/requests/expiryWarning", &r.policy_id, now)
                .for_request(&r.id)
                .with_details(json!({"endTimeUtc": end.map(|e| e.to_string())})),
        )
        .await?;
        notices.push(Notice::network(NoticeEvent::AccessExpiring, r, end, now));
    }
    notify::queue(&mut tx, &notices).await?;
    tx.commit_unrecorded().await?;
    Ok(warned.len() as u64)
}

/// Closes network ports whose end time has passed; records each request's expiry and notifies
/// it (once per request, when its last port closed).
async fn expire_ports(state: &AppState, now: Timestamp) -> StoreResult<u64> {
    let mut read = state.store.read().await?;
    let due = read.next_due().await?;
    drop(read);
    if due.is_none_or(|d| d > now) {
        return Ok(0);
    }
    let mut tx = state.store.write().await?;
    let expired = tx.expire_due(now).await?;
    let mut by_request: BTreeMap<&str, Vec<&ExpiredPort>> = BTreeMap::new();
    for p in &expired {
        by_request.entry(&p.request_id).or_default().push(p);
    }
    let mut notices = Vec::new();
    for (id, ports) in by_request {
        let Some((request, all)) = tx.request(id).await? else {
            continue;
        };
        let lag = ports
            .iter()
            .map(|p| now.duration_since(p.end_time).as_secs_f64())
            .fold(0.0, f64::max);
        state.metrics.scheduler_lag(lag);
        tx.record(
            &Actor::scheduler()
                .did("ajar.jit/requests/expire", &request.policy_id, now)
                .for_request(id)
                .with_details(json!({
                    "ports": ports.iter().map(|p| json!({
                        "machineId": p.machine_id,
                        "number": p.number,
                        "endTimeUtc": p.end_time.to_string(),
                    })).collect::<Vec<_>>(),
                    "lagSeconds": lag,
                })),
        )
        .await?;
        let still_open = all.iter().any(|p| p.status == PortStatus::Initiated);
        if !still_open && !tx.gated_by_approval(id).await? {
            let end = all.iter().map(|p| p.end_time).max();
            notices.push(Notice::network(
                NoticeEvent::AccessExpired,
                &request,
                end,
                now,
            ));
        }
    }
    notify::queue(&mut tx, &notices).await?;
    // Each expired request is recorded above.
    tx.commit_unrecorded().await?;
    if !expired.is_empty() {
        tracing::info!(expired = expired.len(), "closed ports whose window ended");
    }
    Ok(expired.len() as u64)
}

/// Runs passes until `stop` turns true: one at once (catch-up), then whenever the next end
/// time comes or [`MAX_NAP`] passes (so a request that ends sooner than the one the scheduler
/// sleeps for is closed at most that late; grants are filtered by end time meanwhile).
pub async fn run(state: AppState, mut stop: watch::Receiver<bool>) {
    loop {
        if let Err(e) = run_due(&state).await {
            tracing::warn!(error = %e, "scheduler pass failed; retrying");
        }
        let nap = match next_nap(&state).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "scheduler cannot read the next due time");
                MAX_NAP
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(nap) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
    }
}

/// How often the store's write-ahead log is checkpointed in the background.
pub const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// Checkpoints the store every [`CHECKPOINT_EVERY`] until `stop` turns true, so commits on the
/// request path do not pay for it.
pub async fn run_checkpoints(state: AppState, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(CHECKPOINT_EVERY) => {}
            _ = stop.changed() => return,
        }
        if let Err(e) = state.store.checkpoint().await {
            tracing::warn!(error = %e, "checkpoint failed");
        }
    }
}

async fn next_nap(state: &AppState) -> StoreResult<Duration> {
    let mut tx = state.store.read().await?;
    let due = match (tx.next_due().await?, tx.next_jit_due().await?) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    drop(tx);
    let Some(due) = due else { return Ok(MAX_NAP) };
    let wait = due.duration_since(state.clock.now());
    Ok(Duration::try_from(wait)
        .unwrap_or(Duration::ZERO)
        .min(MAX_NAP))
}
