//! How long each grant may stay open, when the control plane's clock may jump.
//!
//! Grant timeouts are `end - server time`, so the agent's own clock does not matter — until the
//! server's clock jumps. Two rules keep a jump from stretching any grant:
//!
//! - **The server time used never runs backwards against the agent's own count.** The agent
//!   counts elapsed time on its monotonic clock from the server time it last used. A server
//!   time behind that count is taken only if it agrees with the agent host's own wall clock
//!   (the server correcting an excursion forward); otherwise the count is used (the server was
//!   set back). A jump forward is always taken: grants only close early.
//! - **A grant's deadline is fixed when the agent first applies it.** Its end is capped at
//!   that deadline afterwards, so no later desired state (stamped by a clock that went back, or
//!   returned from a jump forward) can lengthen it. An extension is a new request, so it gets
//!   its own deadline.
//!
//! Pure: the caller passes the instants and the wall clock.

use ajar_api::wire::DesiredState;
use jiff::{SignedDuration, Timestamp};
use std::collections::HashMap;
use tokio::time::Instant;

/// How far a server time behind the agent's count may be from the agent's wall clock and
/// still count as a correction.
pub const AGREEMENT: SignedDuration = SignedDuration::from_secs(5);
/// Differences under this are jitter, not a jump.
const JITTER: SignedDuration = SignedDuration::from_secs(1);

/// What the agent remembers about time between desired states.
#[derive(Debug, Default)]
pub struct Timing {
    anchor: Option<(Timestamp, Instant)>,
    deadlines: HashMap<(String, i64), Instant>,
}

fn since(later: Instant, earlier: Instant) -> SignedDuration {
    SignedDuration::try_from(later.saturating_duration_since(earlier))
        .unwrap_or(SignedDuration::MAX)
}

impl Timing {
    /// The server time to use for a state stamped `reported` that arrived at `at`, when the
    /// agent's wall clock read `local`.
    pub fn server_time(&mut self, reported: Timestamp, at: Instant, local: Timestamp) -> Timestamp {
        let effective = match self.anchor {
            None => reported,
            Some((then, seen)) => {
                let counted = then.saturating_add(since(at, seen)).unwrap_or(then);
                if counted.duration_since(reported) <= JITTER {
                    reported
                } else if reported.duration_since(local).abs() <= AGREEMENT {
                    tracing::warn!(server = %reported, counted = %counted,
                        "the server's clock came back to the agent's; following it");
                    reported
                } else {
                    tracing::warn!(server = %reported, counted = %counted,
                        "the server's clock went back; timing grants by the agent's count");
                    counted
                }
            }
        };
        self.anchor = Some((effective, at));
        effective
    }

    /// Sets `state`'s server time as [`Timing::server_time`] says, caps every grant's end at
    /// the deadline fixed when it was first seen, fixes the deadlines of new grants, and
    /// forgets those of grants that are gone.
    pub fn adjust(&mut self, state: &mut DesiredState, at: Instant, local: Timestamp) {
        let now = self.server_time(state.server_time, at, local);
        state.server_time = now;
        let mut current = HashMap::with_capacity(self.deadlines.len());
        for grant in state.machines.iter_mut().flat_map(|m| m.grants.iter_mut()) {
            let key = (grant.request_id.clone(), grant.seq);
            let left = grant
                .end_time_utc
                .duration_since(now)
                .max(SignedDuration::ZERO);
            let deadline = at + std::time::Duration::try_from(left).unwrap_or_default();
            let fixed = match self.deadlines.get(&key) {
                Some(&first) if first < deadline => {
                    grant.end_time_utc = now.saturating_add(since(first, at)).unwrap_or(now);
                    first
                }
                Some(&first) => first,
                None => deadline,
            };
            current.insert(key, fixed);
        }
        self.deadlines = current;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ajar_api::wire::{DesiredGrant, DesiredMachine};
    use std::time::Duration;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn state(server: i64, grants: &[(&str, i64)]) -> DesiredState {
        serde_json::from_value(serde_json::json!({
            "revision": 1, "serverTime": t(server).to_string(), "mode": "host",
            "machines": [{"id": "/subscriptions/s/resourceGroups/r/machines/m",
                "addresses": ["10.0.0.1"], "protectedPorts": [{"number": 22, "protocol": "TCP"}],
                "grants": grants.iter().map(|(id, end)| serde_json::json!({
                    "requestId": id, "seq": 0, "number": 22, "protocol": "TCP",
                    "sources": ["10.9.0.1"], "endTimeUtc": t(*end).to_string()})).collect::<Vec<_>>()}]
        }))
        .unwrap()
    }

    fn grant(s: &DesiredState, id: &str) -> DesiredGrant {
        let m: &DesiredMachine = &s.machines[0];
        m.grants
            .iter()
            .find(|g| g.request_id == id)
            .unwrap()
            .clone()
    }

    #[test]
    fn a_server_clock_set_back_is_ignored_unless_the_agents_clock_agrees() {
        let mut timing = Timing::default();
        let m0 = Instant::now();
        assert_eq!(timing.server_time(t(0), m0, t(0)), t(0));
        // 10 s later by the count, the server says 2 s, the agent's clock 10 s: the count.
        assert_eq!(
            timing.server_time(t(2), m0 + Duration::from_secs(10), t(10)),
            t(10)
        );
        // Set back an hour: still the count.
        assert_eq!(
            timing.server_time(t(-3600), m0 + Duration::from_secs(12), t(12)),
            t(12)
        );
        // A jump forward is taken (grants only close earlier) …
        assert_eq!(
            timing.server_time(t(3600), m0 + Duration::from_secs(13), t(13)),
            t(3600)
        );
        // … and so is its correction, when it agrees with the agent's own clock.
        assert_eq!(
            timing.server_time(t(14), m0 + Duration::from_secs(14), t(14)),
            t(14)
        );
        assert_eq!(
            timing.server_time(t(15), m0 + Duration::from_secs(15), t(15)),
            t(15)
        );
    }

    #[test]
    fn no_later_state_lengthens_a_grant_first_seen_with_a_shorter_deadline() {
        let mut timing = Timing::default();
        let m0 = Instant::now();
        let mut first = state(0, &[("r1", 4)]);
        timing.adjust(&mut first, m0, t(0));
        assert_eq!(grant(&first, "r1").end_time_utc, t(4));
        // One second later the server, back from a jump forward, stamps an hour more for r1
        // than was first seen, and the agent's clock agrees with the server: r1 keeps its 3 s.
        let mut later = state(1, &[("r1", 3604), ("r2", 60)]);
        timing.adjust(&mut later, m0 + Duration::from_secs(1), t(1));
        assert_eq!(grant(&later, "r1").end_time_utc, t(4));
        assert_eq!(
            grant(&later, "r2").end_time_utc,
            t(60),
            "a new grant is taken as is"
        );
        // A shorter end (a revoke) is always taken.
        let mut shorter = state(2, &[("r1", 2), ("r2", 60)]);
        timing.adjust(&mut shorter, m0 + Duration::from_secs(2), t(2));
        assert_eq!(grant(&shorter, "r1").end_time_utc, t(2));
        // Gone grants are forgotten.
        let mut gone = state(3, &[("r2", 60)]);
        timing.adjust(&mut gone, m0 + Duration::from_secs(3), t(3));
        assert_eq!(timing.deadlines.len(), 1);
    }
}
