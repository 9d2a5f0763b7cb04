//! The agent's loop: long-poll the desired state, apply it, report what opened and closed, cut
//! connections that must not outlive their grant, and back off when the server is away. While
//! the server is unreachable the applied table stays as it is: its elements expire by kernel
//! timeout, so nothing stays open longer than granted.

use crate::conntrack;
use crate::firewall::Firewall;
use crate::ruleset::Ruleset;
use crate::timing::Timing;
use ajar_api::Client;
use ajar_api::wire::{AgentReport, DesiredState, GrantRef};
use jiff::Timestamp;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;
use tokio::time::Instant;

/// How the agent runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Control plane base URL, or several replicas' separated by commas: the agent follows one
    /// and moves to the next when it fails.
    pub server: String,
    /// The agent's token.
    pub token: String,
    /// Reported version.
    pub version: String,
    /// The `conntrack` binary.
    pub conntrack: PathBuf,
    /// Longest long poll.
    pub wait: Duration,
    /// The HTTP client (with the CA the server's certificate must chain to, if one was given).
    pub http: reqwest::Client,
}

/// First and longest pause after a failure.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(10));

type GrantKey = (String, i64);

struct Applied {
    end: Timestamp,
    cut: Vec<Vec<String>>,
}

/// What the loop remembers between polls.
struct Agent<E> {
    client: Client,
    config: Config,
    enforcer: E,
    revision: Option<i64>,
    /// The whole desired state last applied, which a state of changes only updates.
    held: Option<DesiredState>,
    timing: Timing,
}

/// The enforcing half of the agent, without the network: applies desired states to a firewall,
/// remembers which grants are open, schedules and runs connection cuts, and keeps the report of
/// what opened and closed until it is sent.
pub struct Enforcer {
    firewall: Box<dyn Firewall>,
    conntrack: PathBuf,
    applied: HashMap<GrantKey, Applied>,
    cuts: BTreeMap<(Instant, GrantKey), Vec<Vec<String>>>,
    pending: AgentReport,
}

/// What the loop drives: an enforcement backend that applies whole desired states, may have
/// work of its own at set times (cuts, closing at a deadline, rescans), and keeps the report
/// of what opened and closed until it is sent.
pub trait Enforce {
    /// Applies a whole desired state read `elapsed` ago, whose grants' ends [`Timing`] fixed.
    fn apply(
        &mut self,
        state: &DesiredState,
        elapsed: Duration,
    ) -> impl Future<Output = Result<(), String>> + Send;
    /// When [`Enforce::run_due`] next has work, if ever.
    fn next_due(&self) -> Option<Instant>;
    /// Does the work due by now.
    fn run_due(&mut self) -> impl Future<Output = ()> + Send;
    /// What opened and closed since the report was last sent.
    fn report(&self) -> &AgentReport;
    /// Forgets what the report said, once the server has it.
    fn report_sent(&mut self);
    /// Whether the report says anything beyond the applied revision.
    fn report_pending(&self) -> bool {
        let r = self.report();
        !r.opened.is_empty() || !r.closed.is_empty() || !r.machines.is_empty()
    }
}

impl Enforce for Enforcer {
    fn apply(
        &mut self,
        state: &DesiredState,
        elapsed: Duration,
    ) -> impl Future<Output = Result<(), String>> + Send {
        std::future::ready(Enforcer::apply(self, state, elapsed))
    }
    fn next_due(&self) -> Option<Instant> {
        self.next_cut()
    }
    fn run_due(&mut self) -> impl Future<Output = ()> + Send {
        self.run_due_cuts();
        std::future::ready(())
    }
    fn report(&self) -> &AgentReport {
        Enforcer::report(self)
    }
    fn report_sent(&mut self) {
        Enforcer::report_sent(self)
    }
}

/// Runs the nftables agent until `shutdown` resolves. Returns only then; errors are logged
/// and retried.
pub async fn run(config: Config, firewall: Box<dyn Firewall>, shutdown: impl Future<Output = ()>) {
    let enforcer = Enforcer::new(firewall, config.conntrack.clone(), config.version.clone());
    run_with(config, enforcer, shutdown).await
}

/// Runs the loop with any enforcement backend until `shutdown` resolves.
pub async fn run_with<E: Enforce>(config: Config, enforcer: E, shutdown: impl Future<Output = ()>) {
    let servers: Vec<String> = config
        .server
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let mut current = 0;
    let mut agent = Agent {
        client: Client::with_http(
            servers.first().cloned().unwrap_or_default(),
            Some(config.token.clone()),
            config.http.clone(),
        ),
        enforcer,
        config,
        revision: None,
        held: None,
        timing: Timing::default(),
    };
    tokio::pin!(shutdown);
    let mut backoff = BACKOFF.0;
    // Since when the server has not answered a poll (`None` while it answers): the agent says
    // once when it loses the server and once when it has it again.
    let mut lost: Option<Instant> = None;
    let mut reached_once = false;
    loop {
        let poll = fetch(agent.client.clone(), agent.revision, agent.config.wait);
        tokio::pin!(poll);
        let result = loop {
            let next_due = agent.enforcer.next_due();
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep_until(next_due.unwrap_or_else(Instant::now)), if next_due.is_some() => {
                    agent.enforcer.run_due().await;
                    if agent.enforcer.report_pending() {
                        agent.send_report().await;
                    }
                }
                r = &mut poll => break r,
            }
        };
        let server = servers.get(current).map_or("", String::as_str);
        match (&result, lost) {
            (Ok(_), Some(since)) if reached_once => {
                lost = None;
                tracing::info!(
                    server,
                    after_seconds = since.elapsed().as_secs(),
                    "reconnected to the server; enforcing its current state"
                );
            }
            (Ok(_), _) if !reached_once => {
                lost = None;
                tracing::info!(server, "connected to the server");
            }
            (Err(e), None) if reached_once => {
                lost = Some(Instant::now());
                tracing::warn!(
                    server,
                    error = %e,
                    "lost the server; grants already applied stay until they expire, retrying"
                );
            }
            (Err(e), None) => {
                lost = Some(Instant::now());
                tracing::warn!(server, error = %e, "cannot reach the server yet, retrying");
            }
            _ => {}
        }
        reached_once |= result.is_ok();
        let applied = match result.and_then(|(state, received)| {
            let mut whole = merge(agent.held.take(), state)?;
            agent.timing.adjust(&mut whole, received, local_time());
            Ok((whole, received))
        }) {
            Ok((whole, received)) => {
                let applied = agent.enforcer.apply(&whole, received.elapsed()).await;
                if applied.is_ok() {
                    agent.revision = Some(whole.revision);
                }
                agent.held = Some(whole);
                applied
            }
            Err(e) => Err(e),
        };
        match applied {
            Ok(()) => {
                backoff = BACKOFF.0;
                agent.send_report().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "agent cycle failed");
                if servers.len() > 1 {
                    // Another replica may answer: try it next.
                    current = (current + 1) % servers.len();
                    tracing::info!(server = %servers[current], "agent moves to another replica");
                    agent.client = Client::with_http(
                        servers[current].clone(),
                        Some(agent.config.token.clone()),
                        agent.config.http.clone(),
                    );
                    agent.revision = None;
                }
                if agent.held.is_none() {
                    // Nothing to update: ask for the whole state again.
                    agent.revision = None;
                }
                tokio::select! {
                    _ = &mut shutdown => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(BACKOFF.1);
            }
        }
    }
}

/// The whole desired state after `received`: itself when it is whole, else `held` with the
/// machines it lists replaced (or added).
fn merge(held: Option<DesiredState>, received: DesiredState) -> Result<DesiredState, String> {
    if !received.changes_only {
        return Ok(received);
    }
    let Some(mut whole) = held else {
        return Err("the server sent changes without a whole state to apply them to".into());
    };
    let mut at: HashMap<String, usize> = whole
        .machines
        .iter()
        .enumerate()
        .map(|(i, m)| (m.id.clone(), i))
        .collect();
    for machine in received.machines {
        match at.get(&machine.id) {
            Some(&i) => whole.machines[i] = machine,
            None => {
                at.insert(machine.id.clone(), whole.machines.len());
                whole.machines.push(machine);
            }
        }
    }
    whole.revision = received.revision;
    whole.server_time = received.server_time;
    whole.mode = received.mode;
    whole.public_address = received.public_address;
    Ok(whole)
}

async fn fetch(
    client: Client,
    after: Option<i64>,
    wait: Duration,
) -> Result<(DesiredState, Instant), String> {
    let path = match after {
        Some(r) => format!(
            "/api/v1/agent/desiredState?after={r}&waitSeconds={}&changesOnly=true",
            wait.as_secs()
        ),
        None => "/api/v1/agent/desiredState".to_owned(),
    };
    let state = tokio::time::timeout(
        wait + Duration::from_secs(10),
        client.get::<DesiredState>(&path),
    )
    .await
    .map_err(|_| "the server did not answer in time".to_owned())?
    .map_err(|e| e.to_string())?;
    Ok((state, Instant::now()))
}

impl Enforcer {
    /// Enforces through `firewall`, cutting connections with the `conntrack` binary; reports
    /// carry the agent's `version`.
    pub fn new(firewall: Box<dyn Firewall>, conntrack: PathBuf, version: String) -> Self {
        Self {
            firewall,
            conntrack,
            applied: HashMap::new(),
            cuts: BTreeMap::new(),
            pending: AgentReport {
                version,
                applied_revision: 0,
                opened: Vec::new(),
                closed: Vec::new(),
                machines: Vec::new(),
            },
        }
    }

    /// What opened and closed since the report was last taken, and the revision applied.
    pub fn report(&self) -> &AgentReport {
        &self.pending
    }

    /// Forgets what the last report said opened and closed, once the server has it.
    pub fn report_sent(&mut self) {
        self.pending.opened.clear();
        self.pending.closed.clear();
        self.pending.machines.clear();
    }

    /// How many grants are open, as last applied.
    pub fn open_grants(&self) -> usize {
        self.applied.len()
    }

    /// When the next connection cut is due, if any is scheduled.
    pub fn next_cut(&self) -> Option<Instant> {
        self.cuts.keys().next().map(|(at, _)| *at)
    }

    /// Applies a desired state read `elapsed` ago, and records what opened and closed.
    pub fn apply(&mut self, state: &DesiredState, elapsed: Duration) -> Result<(), String> {
        if state.mode == ajar_core::agent::AgentMode::Aws {
            return Err(
                "this agent is registered to program AWS security groups: run it as `ajar agent --mode aws`"
                    .into(),
            );
        }
        let started = Instant::now();
        let ruleset = Ruleset::from_desired(state, elapsed);
        self.firewall.apply(&ruleset).map_err(|e| e.to_string())?;
        tracing::debug!(revision = state.revision, since_received = ?elapsed, took = ?started.elapsed(), "firewall updated");
        let now = state.server_time;
        let mut seen = HashMap::new();
        for m in &state.machines {
            for g in &m.grants {
                let key = (g.request_id.clone(), g.seq);
                let cut = if g.cut_established {
                    conntrack::cut_commands(state.mode, &m.addresses, state.public_address, g)
                } else {
                    Vec::new()
                };
                if !self.applied.contains_key(&key) {
                    self.pending.opened.push(GrantRef {
                        request_id: key.0.clone(),
                        seq: key.1,
                        at: now,
                    });
                    if !cut.is_empty() {
                        let left = Duration::try_from(g.end_time_utc.duration_since(now))
                            .unwrap_or(Duration::ZERO)
                            .saturating_sub(elapsed);
                        self.cuts
                            .insert((Instant::now() + left, key.clone()), cut.clone());
                    }
                }
                seen.insert(
                    key,
                    Applied {
                        end: g.end_time_utc,
                        cut,
                    },
                );
            }
        }
        for (key, gone) in self.applied.drain() {
            if seen.contains_key(&key) {
                continue;
            }
            // Ended (the kernel removed it at its end) or revoked early (removed just now).
            let at = if gone.end <= now { gone.end } else { now };
            if !gone.cut.is_empty() {
                self.cuts.retain(|(_, k), _| *k != key);
                conntrack::run(&self.conntrack, &gone.cut);
            }
            self.pending.closed.push(GrantRef {
                request_id: key.0,
                seq: key.1,
                at,
            });
        }
        self.applied = seen;
        self.pending.applied_revision = state.revision;
        tracing::info!(
            revision = state.revision,
            open = self.applied.len(),
            "applied"
        );
        Ok(())
    }

    /// Cuts the connections of grants whose end has come.
    pub fn run_due_cuts(&mut self) {
        let now = Instant::now();
        let due: Vec<_> = self
            .cuts
            .keys()
            .take_while(|(at, _)| *at <= now)
            .cloned()
            .collect();
        for key in due {
            if let Some(cmds) = self.cuts.remove(&key) {
                tracing::info!(request = %key.1.0, "cutting established connections");
                conntrack::run(&self.conntrack, &cmds);
            }
        }
    }
}

impl<E: Enforce> Agent<E> {
    async fn send_report(&mut self) {
        match self
            .client
            .post::<serde_json::Value, _>("/api/v1/agent/report", self.enforcer.report())
            .await
        {
            Ok(_) => self.enforcer.report_sent(),
            Err(e) => {
                tracing::warn!(error = %e, "report failed; it is sent again with the next one")
            }
        }
    }
}

/// The agent host's own clock: only a tie-breaker when the server's clock goes back (see
/// [`Timing`]); grant timeouts never depend on it alone.
fn local_time() -> Timestamp {
    use ajar_core::clock::Clock;
    ajar_api::clock::SystemClock.now()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ajar_api::wire::DesiredMachine;

    fn state(revision: i64, changes_only: bool, machines: &[(&str, &str)]) -> DesiredState {
        let machines: Vec<DesiredMachine> = machines
            .iter()
            .map(|(id, address)| DesiredMachine {
                id: (*id).to_owned(),
                addresses: vec![address.parse().unwrap()],
                protected_ports: Vec::new(),
                grants: Vec::new(),
                aws: None,
            })
            .collect();
        DesiredState {
            revision,
            server_time: Timestamp::from_second(1_800_000_000 + revision).unwrap(),
            mode: ajar_core::agent::AgentMode::Host,
            public_address: None,
            machines,
            changes_only,
        }
    }

    fn addresses(s: &DesiredState) -> Vec<(String, String)> {
        s.machines
            .iter()
            .map(|m| (m.id.clone(), m.addresses[0].to_string()))
            .collect()
    }

    #[test]
    fn changes_update_the_held_state_and_a_whole_state_replaces_it() {
        let held = state(1, false, &[("a", "10.0.0.1"), ("b", "10.0.0.2")]);
        let changed = merge(
            Some(held),
            state(5, true, &[("b", "10.0.0.9"), ("c", "10.0.0.3")]),
        )
        .unwrap();
        assert_eq!(
            addresses(&changed),
            [
                ("a".to_owned(), "10.0.0.1".to_owned()),
                ("b".to_owned(), "10.0.0.9".to_owned()),
                ("c".to_owned(), "10.0.0.3".to_owned()),
            ]
        );
        assert_eq!(changed.revision, 5);
        assert_eq!(changed.server_time, state(5, true, &[]).server_time);
        let whole = merge(Some(changed), state(6, false, &[("a", "10.0.0.1")])).unwrap();
        assert_eq!(addresses(&whole), [("a".to_owned(), "10.0.0.1".to_owned())]);
        // Changes with nothing to apply them to are refused: the agent asks for all again.
        assert!(merge(None, state(7, true, &[])).is_err());
    }
}
