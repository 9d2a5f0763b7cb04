//! Who a change is attributed to in the activity log (a caller of the API, or ajar itself), and
//! the recording of refused requests.

use crate::AppState;
use crate::error::Denial;
use ajar_core::activity::Outcome;
use ajar_store::{NewActivity, StoreResult};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use jiff::Timestamp;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// Who acted, as the activity log names them.
#[derive(Debug, Clone)]
pub struct Actor {
    principal: String,
    address: Option<String>,
    correlation: Option<String>,
}

impl Actor {
    /// A caller: `principal`, from `address`, in the HTTP request `correlation`.
    pub fn new(principal: String, address: Option<String>, correlation: Option<String>) -> Self {
        Self {
            principal,
            address,
            correlation,
        }
    }

    /// An actor named `principal` with no address or request (ajar itself).
    fn named(principal: &str) -> Self {
        Self::new(principal.to_owned(), None, None)
    }

    /// The principal the scheduler acts as.
    pub const SCHEDULER: &'static str = "system:scheduler";

    /// The scheduler (activations, expiries, time-outs, warnings).
    pub fn scheduler() -> Self {
        Self::named(Self::SCHEDULER)
    }

    /// A record of this actor doing `action` on `resource_id` at `at`.
    pub fn did(&self, action: &str, resource_id: &str, at: Timestamp) -> NewActivity {
        let mut a = NewActivity::new(at, &self.principal, action, resource_id);
        a.source_address = self.address.clone();
        a.correlation_id = self.correlation.clone();
        a
    }
}

/// Filled by the `Caller` extractor ([`crate::auth`]) once a request is authenticated, so the
/// denial recorder (which runs outside the handler) knows who was refused.
#[derive(Debug, Clone, Default)]
pub struct CallerSlot(Arc<Mutex<Option<Actor>>>);

impl CallerSlot {
    /// Notes the authenticated caller.
    pub fn fill(&self, caller: Actor) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(caller);
    }

    fn take(&self) -> Option<Actor> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// The action recorded for a refused request.
pub const DENIED: &str = "ajar.authorization/denied";

/// The action of a record that counts refusals not recorded one by one.
pub const DENIED_REPEATEDLY: &str = "ajar.authorization/deniedRepeatedly";

/// How long a principal's refusals are counted together.
pub const REFUSAL_WINDOW: jiff::SignedDuration = jiff::SignedDuration::from_secs(60);

/// Refusals of one principal recorded one by one within a window; the rest are counted.
pub const REFUSALS_RECORDED_PER_WINDOW: usize = 10;

/// Most (resource, refusal) pairs one window keeps separate counts for; beyond, refusals are
/// counted at their subscription (or `/`).
const COUNTED_PER_WINDOW: usize = 100;

/// Most subscriptions a window counts overflowing refusals at, besides `/`.
const OVERFLOW_SCOPES: usize = 10;

/// Most principals whose refusals are counted apart at once; refusals of principals beyond are
/// counted together, as [`CROWD`]'s.
const PRINCIPALS: usize = 10_000;

/// Who refusals counted together are attributed to when too many principals are refused at
/// once.
pub const CROWD: &str = "system:refused-crowd";

/// Bounds what refusals cost: per principal and window, the first
/// [`REFUSALS_RECORDED_PER_WINDOW`] distinct refusals are recorded one by one (each in its own
/// write), repeats and the rest are counted in memory and recorded as one
/// [`DENIED_REPEATEDLY`] record per resource and refusal when the window ends. A principal
/// without rights can neither fill the log nor keep the writer busy, and the evidence is kept.
#[derive(Debug, Default)]
pub struct Refusals {
    windows: Mutex<HashMap<String, RefusalWindow>>,
}

#[derive(Debug)]
struct RefusalWindow {
    actor: Actor,
    started: Timestamp,
    recorded: HashSet<String>,
    /// Refusals not recorded one by one, by resource and message.
    counted: BTreeMap<(String, String), u64>,
}

impl RefusalWindow {
    fn new(actor: Actor, now: Timestamp) -> Self {
        Self {
            actor,
            started: now,
            recorded: HashSet::new(),
            counted: BTreeMap::new(),
        }
    }

    /// Counts a refusal on `resource`: separately for the first [`COUNTED_PER_WINDOW`]
    /// resource-and-message pairs, then per subscription for [`OVERFLOW_SCOPES`] more, then
    /// at `/`, so a window never holds more than the sum of the two.
    fn count(&mut self, resource: &str, message: &str) {
        let mut slot = (resource.to_owned(), message.to_owned());
        if self.counted.len() >= COUNTED_PER_WINDOW && !self.counted.contains_key(&slot) {
            slot = (overflow_scope(resource), "further refusals".to_owned());
            if self.counted.len() >= COUNTED_PER_WINDOW + OVERFLOW_SCOPES
                && !self.counted.contains_key(&slot)
            {
                slot = ("/".to_owned(), "further refusals".to_owned());
            }
        }
        *self.counted.entry(slot).or_default() += 1;
    }

    /// The records of what this window counted, at `now`.
    fn records(&self, now: Timestamp) -> Vec<NewActivity> {
        let end = self.started.checked_add(REFUSAL_WINDOW).unwrap_or(now);
        self.counted
            .iter()
            .map(|((resource, message), count)| {
                self.actor
                    .did(DENIED_REPEATEDLY, resource, now)
                    .with_result(Outcome::Denied)
                    .with_details(serde_json::json!({
                        "count": count,
                        "message": message,
                        "from": self.started.to_string(),
                        "until": end.min(now).to_string(),
                    }))
            })
            .collect()
    }
}

/// Where refusals past a window's separate counts are counted: the subscription of `resource`,
/// or `/`.
fn overflow_scope(resource: &str) -> String {
    match ajar_core::id::Scope::parse(resource).ok().and_then(|s| {
        s.subscription()
            .map(|sub| ajar_core::id::Scope::Subscription(sub.clone()))
    }) {
        Some(sub) => sub.to_string(),
        None => "/".to_owned(),
    }
}

impl Refusals {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, RefusalWindow>> {
        self.windows.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Notes a refusal of `actor` on `resource` at `now`, with the refusal's `message` (`key`
    /// tells repeats apart): true when it is to be recorded on its own, false when it was
    /// counted.
    pub fn note(
        &self,
        actor: &Actor,
        key: &str,
        resource: &str,
        message: &str,
        now: Timestamp,
    ) -> bool {
        let mut windows = self.lock();
        if windows.len() >= PRINCIPALS && !windows.contains_key(&actor.principal) {
            // Too many principals at once: theirs are counted together.
            let shared = windows
                .entry(CROWD.to_owned())
                .or_insert_with(|| RefusalWindow::new(Actor::named(CROWD), now));
            shared.count(
                resource,
                "refusals of principals past the first 10,000 this minute",
            );
            return false;
        }
        let window = windows
            .entry(actor.principal.clone())
            .or_insert_with(|| RefusalWindow::new(actor.clone(), now));
        if window.recorded.len() < REFUSALS_RECORDED_PER_WINDOW
            && window.recorded.insert(key.to_owned())
        {
            return true;
        }
        window.count(resource, message);
        false
    }

    /// Closes every window that ended by `now` and answers the records of what they counted.
    pub fn ended(&self, now: Timestamp) -> Vec<NewActivity> {
        let mut windows = self.lock();
        let mut out = Vec::new();
        windows.retain(|_, w| {
            let end = w.started.checked_add(REFUSAL_WINDOW).unwrap_or(w.started);
            if end > now {
                return true;
            }
            out.extend(w.records(now));
            false
        });
        out
    }

    /// Closes every window, ended or not (on shutdown), and answers their records.
    pub fn close_all(&self, now: Timestamp) -> Vec<NewActivity> {
        self.lock()
            .drain()
            .flat_map(|(_, w)| w.records(now))
            .collect()
    }
}

/// Records what [`Refusals`] counted in windows that have ended, in one transaction.
pub async fn record_counted_refusals(state: &AppState, now: Timestamp) -> StoreResult<u64> {
    write_counted(state, state.refusals.ended(now)).await
}

/// Records what [`Refusals`] counted so far, ended or not: called when the server stops.
pub async fn record_all_counted_refusals(state: &AppState) -> StoreResult<u64> {
    write_counted(state, state.refusals.close_all(state.clock.now())).await
}

async fn write_counted(state: &AppState, records: Vec<NewActivity>) -> StoreResult<u64> {
    if records.is_empty() {
        return Ok(0);
    }
    let stored = async {
        let mut tx = state.store.write().await?;
        for r in &records {
            tx.record(r).await?;
        }
        tx.commit().await
    };
    if let Err(e) = stored.await {
        // The counts are gone from memory: the log keeps them.
        for r in &records {
            tracing::error!(principal = %r.principal, resource = %r.resource_id,
                details = %r.details, error = %e, "counted refusals could not be recorded");
        }
        return Err(e);
    }
    Ok(records.len() as u64)
}

/// The resource a refused request's path names: the path without `/api/v1`, at most 512
/// characters.
fn resource_of_path(path: &str) -> String {
    let rest = path
        .strip_prefix("/api/v1/")
        .unwrap_or(path.trim_start_matches('/'));
    let resource: String = format!("/{rest}").chars().take(512).collect();
    resource
}

/// Middleware: records authorization refusals (403) of an authenticated caller in the
/// activity log, each in its own transaction (nothing else changed), as far as [`Refusals`]
/// lets it; the rest are counted and recorded when their window ends.
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
            .unwrap_or_else(|| resource_of_path(&path));
        let now = state.clock.now();
        let key = format!("{method} {path} {}", denial.message);
        if !state
            .refusals
            .note(&actor, &key, &resource, &denial.message, now)
        {
            return resp;
        }
        let record = actor
            .did(DENIED, &resource, now)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn actor(p: &str) -> Actor {
        Actor {
            principal: p.to_owned(),
            address: None,
            correlation: None,
        }
    }

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_000_000 + s).unwrap()
    }

    #[test]
    fn refusals_are_recorded_once_per_key_then_counted_per_window() {
        let r = Refusals::default();
        let eve = actor("eve");
        assert!(r.note(&eve, "GET /a", "/s/a", "m", at(0)));
        assert!(
            !r.note(&eve, "GET /a", "/s/a", "m", at(1)),
            "a repeat is counted"
        );
        for i in 1..REFUSALS_RECORDED_PER_WINDOW {
            assert!(r.note(&eve, &format!("GET /{i}"), "/s/b", "m", at(2)));
        }
        assert!(
            !r.note(&eve, "GET /new", "/s/b", "m", at(3)),
            "past the limit"
        );
        // Another principal has a window of its own.
        assert!(r.note(&actor("mallory"), "GET /a", "/s/a", "m", at(3)));
        assert!(r.ended(at(59)).is_empty(), "the window has not ended");
        let records = r.ended(at(60));
        let counts: Vec<(String, u64)> = records
            .iter()
            .map(|a| {
                let details: serde_json::Value = serde_json::from_str(&a.details).unwrap();
                (a.resource_id.clone(), details["count"].as_u64().unwrap())
            })
            .collect();
        assert_eq!(counts, [("/s/a".to_owned(), 1), ("/s/b".to_owned(), 1)]);
        assert!(records.iter().all(|a| a.action == DENIED_REPEATEDLY));
        // A new window records again.
        assert!(r.note(&eve, "GET /a", "/s/a", "m", at(61)));
    }

    #[test]
    fn past_its_separate_counts_a_window_counts_at_the_subscription_not_the_root() {
        let r = Refusals::default();
        let eve = actor("eve");
        for i in 0..REFUSALS_RECORDED_PER_WINDOW {
            assert!(r.note(&eve, &format!("k{i}"), "/subscriptions/n", "m", at(0)));
        }
        for i in 0..COUNTED_PER_WINDOW {
            let resource = format!("/subscriptions/fill{i}");
            assert!(!r.note(&eve, "x", &resource, "m", at(1)));
        }
        let probe = "/subscriptions/prod/resourceGroups/rg/machines/db";
        assert!(!r.note(&eve, "y", probe, "may not write", at(2)));
        let records = r.close_all(at(3));
        let prod = records
            .iter()
            .find(|a| a.resource_id == "/subscriptions/prod")
            .expect("counted under the probe's subscription");
        assert!(
            prod.details.contains("further refusals"),
            "{}",
            prod.details
        );
        assert!(records.iter().all(|a| a.resource_id != "/"));
        assert!(r.close_all(at(4)).is_empty(), "closing drains");
    }

    #[test]
    fn a_window_stays_bounded_however_many_subscriptions_are_probed() {
        let r = Refusals::default();
        let eve = actor("eve");
        for i in 0..10_000 {
            let resource = format!("/subscriptions/s{i}/resourceGroups/rg");
            r.note(&eve, "k", &resource, "m", at(0));
        }
        let records = r.close_all(at(1));
        assert_eq!(
            records.len(),
            COUNTED_PER_WINDOW + OVERFLOW_SCOPES + 1,
            "separate pairs, overflowing subscriptions, and /"
        );
        let total: u64 = records
            .iter()
            .map(|a| {
                let d: serde_json::Value = serde_json::from_str(&a.details).unwrap();
                d["count"].as_u64().unwrap()
            })
            .sum();
        assert_eq!(
            total,
            10_000 - 1,
            "every refusal but the recorded one is counted"
        );
    }

    #[test]
    fn paths_name_their_resource() {
        assert_eq!(
            resource_of_path("/api/v1/subscriptions/s/machines/m"),
            "/subscriptions/s/machines/m"
        );
        assert_eq!(resource_of_path("/api/v1x"), "/api/v1x");
        assert_eq!(resource_of_path("/metrics"), "/metrics");
        assert_eq!(resource_of_path(&"/a".repeat(1_000)).chars().count(), 512);
    }
}
