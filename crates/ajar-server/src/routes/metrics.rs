//! `GET /metrics`: OpenMetrics text exposition of [`crate::metrics::Metrics`]
//! plus gauges read from the store at scrape time. Needs `ajar.metrics/read` at `/`.

use crate::AppState;
use crate::auth::Caller;
use crate::error::AppResult;
use crate::metrics::CONTENT_TYPE;
use ajar_core::id::Scope;
use ajar_core::rbac::actions;
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

/// The exposition; the gauges are counted at the clock's `now` with read-only queries.
pub async fn metrics(State(state): State<AppState>, caller: Caller) -> AppResult<Response> {
    caller.require(actions::METRICS_READ, &Scope::Root)?;
    let now = state.clock.now();
    // Agents' lag is read from the store: write the last-seen times noted since the last pass.
    state.presence.flush(&state.store).await?;
    let gauges = state.store.read().await?.gauges(now).await?;
    let text = state.metrics.render(&gauges, now);
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response())
}
