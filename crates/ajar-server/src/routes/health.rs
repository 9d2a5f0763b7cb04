//! Probes for load balancers and orchestrators: `GET /healthz` (the process answers) and
//! `GET /readyz` (it can serve: the store answers and it is not shutting down). They are the
//! only unauthenticated endpoints; they reveal nothing but up or down.

use crate::AppState;
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

/// Liveness: the process answers HTTP.
pub async fn healthz() -> Response {
    Json(json!({"status":"ok"})).into_response()
}

/// Readiness: a read from the store succeeds and the server is not stopping; 503 otherwise.
pub async fn readyz(State(state): State<AppState>) -> Response {
    if *state.stopping.borrow() {
        return unready("stopping");
    }
    let store_ok = match state.store.read().await {
        Ok(mut tx) => tx.revision().await.is_ok(),
        Err(_) => false,
    };
    if !store_ok {
        tracing::warn!("readiness: the store does not answer");
        return unready("store unavailable");
    }
    Json(json!({"status":"ready"})).into_response()
}

fn unready(why: &str) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"status":"unavailable","reason":why})),
    )
        .into_response()
}
