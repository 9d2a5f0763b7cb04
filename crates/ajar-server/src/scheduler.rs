//! The scheduler: closes ports whose end time has passed. Its state is the end times in the
//! store, so after a restart it catches up on everything that fell due while ajar was down.

use crate::AppState;
use ajar_store::StoreResult;
use std::time::Duration;
use tokio::sync::watch;

/// Longest the scheduler sleeps between passes, so a changed clock or a missed wake-up costs
/// at most this much lag.
pub const MAX_NAP: Duration = Duration::from_secs(1);

/// Runs one pass: every port due at the clock's current instant is closed as `Expired`.
/// Returns how many ports were closed. Safe to run concurrently: each port is closed once.
/// Takes the writer only when something is due.
pub async fn run_due(state: &AppState) -> StoreResult<u64> {
    let now = state.clock.now();
    let roles = crate::routes::jit_requests::run_due(state, now).await?;
    Ok(roles + expire_ports(state, now).await?)
}

/// Closes network ports whose end time has passed.
async fn expire_ports(state: &AppState, now: jiff::Timestamp) -> StoreResult<u64> {
    let mut read = state.store.read().await?;
    let due = read.next_due().await?;
    drop(read);
    if due.is_none_or(|d| d > now) {
        return Ok(0);
    }
    let mut tx = state.store.write().await?;
    let n = tx.expire_due(now).await?;
    if let Some(due) = due.filter(|_| n > 0) {
        // Once per pass, for its earliest end time (the pass's worst lag); before the commit,
        // so a pass that finds nothing left to close never sees it missing.
        state
            .metrics
            .scheduler_lag(now.duration_since(due).as_secs_f64());
    }
    tx.commit().await?;
    if n > 0 {
        tracing::info!(expired = n, "closed ports whose window ended");
    }
    Ok(n)
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
