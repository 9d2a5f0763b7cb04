//! Who a change is attributed to in the activity log (a caller of the API, or ajar itself), and
//! the recording of refused requests.

use crate::AppState;
use crate::auth::Caller;
use ajar_core::activity::Outcome;
use ajar_store::NewActivity;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use jiff::Timestamp;
use std::sync::{Arc, Mutex};

/// Who acted, as the activity log names them.
#[derive(Debug, Clone)]
pub struct Actor {
    principal: String,
    address: Option<String>,
    correlation: Option<String>,
}

impl Actor {
    /// The principal the scheduler acts as.
    pub const SCHEDULER: &'static str = "system:scheduler";

    /// The scheduler (activations, expiries, time-outs, warnings).
    pub fn scheduler() -> Self {
        Self {
            principal: Self::SCHEDULER.to_owned(),
            address: None,
            correlation: None,
        }
    }

    /// A record of this actor doing `action` on `resource_id` at `at`.
    pub fn did(&self, action: &str, resource_id: &str, at: Timestamp) -> NewActivity {
        let mut a = NewActivity::new(at, &self.principal, action, resource_id);
        a.source_address = self.address.clone();
        a.correlation_id = self.correlation.clone();
        a
    }
}

impl From<&Caller> for Actor {
    fn from(c: &Caller) -> Self {
        Self {
            principal: c.principal.clone(),
            address: c.address.map(|ip| ip.to_string()),
            correlation: c.request_id.clone(),
        }
    }
}

/// Filled by the [`Caller`] extractor once a request is authenticated, so the denial recorder
/// (which runs outside the handler) knows who was refused.
#[derive(Debug, Clone, Default)]
pub struct CallerSlot(Arc<Mutex<Option<Actor>>>);

impl CallerSlot {
    /// Notes the authenticated caller.
    pub fn fill(&self, caller: &Caller) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(Actor::from(caller));
    }

    fn take(&self) -> Option<Actor> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// What a 403 answer was about, attached to the response by [`crate::error::AppError`].
#[derive(Debug, Clone)]
pub struct Denial {
    /// The error's target (usually the scope), if any.
    pub target: Option<String>,
    /// The error's message.
    pub message: String,
}

/// The action recorded for a refused request.
pub const DENIED: &str = "ajar.authorization/denied";

/// Middleware: records every authorization refusal (403) of an authenticated caller in the
/// activity log, in its own transaction (nothing else changed).
pub async fn record_denials(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let slot = CallerSlot::default();
    req.extensions_mut().insert(slot.clone());
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let resp = next.run(req).await;
    if resp.status() == StatusCode::FORBIDDEN
        && let (Some(actor), Some(denial)) = (slot.take(), resp.extensions().get::<Denial>())
    {
        // The target names the scope for a missing action; other refusals may target a field.
        let resource = denial
            .target
            .clone()
            .filter(|t| t.starts_with('/'))
            .unwrap_or_else(|| path.clone());
        let record = actor
            .did(DENIED, &resource, state.clock.now())
            .with_result(Outcome::Denied)
            .with_details(serde_json::json!({
                "method": method,
                "path": path,
                "message": denial.message,
            }));
        let stored = async {
            let mut tx = state.store.write().await?;
            tx.record(&record).await?;
            tx.commit().await
        };
        if let Err(e) = stored.await {
            tracing::error!(error = %e, "a refusal could not be recorded");
        }
    }
    resp
}
