//! `ajar-bench fleet`: a fleet of agents long-polling one server. Loads machines (spread over
//! resource groups, one JIT policy each protecting port 22) and agents guarding ten machines
//! each through the API, then runs one simulated agent per registered agent: a real HTTP long
//! poll on `GET /api/v1/agent/desiredState?after=REV&waitSeconds=25` with the agent's own token,
//! one connection each, polling again with the new revision after every answer.
//!
//! While all agents wait it measures the idle server (CPU and memory); then initiates arrive at
//! fixed rates, each for one random machine, and it times how long each takes from its answer
//! to the guarding agent's poll returning a state that names the request. It also counts every
//! answer the agents receive (wakes), whatever they hold.

use crate::percentile_ms;
use anyhow::{Context, bail};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Options of `ajar-bench fleet`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Server base URL.
    #[arg(long, default_value = "http://127.0.0.1:8600")]
    url: String,
    /// Owner token (the bootstrap token will do): loads the fleet and sends the initiates.
    #[arg(long, env = "AJAR_TOKEN")]
    token: String,
    /// Agents to register and simulate.
    #[arg(long, default_value_t = 1000)]
    agents: u64,
    /// Machines each agent guards.
    #[arg(long, default_value_t = 10)]
    machines_per_agent: u64,
    /// Resource groups to spread the machines over (one policy each).
    #[arg(long, default_value_t = 100)]
    groups: u64,
    /// Initiate rates to measure at, one phase each (initiates per second).
    #[arg(long, value_delimiter = ',', default_value = "100,1000")]
    rates: Vec<u64>,
    /// Seconds each rate is held.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Seconds the idle server is measured while every agent waits.
    #[arg(long, default_value_t = 10)]
    idle_seconds: u64,
    /// Longest wait after a phase for the last requests to reach their agents.
    #[arg(long, default_value_t = 30)]
    drain_seconds: u64,
    /// `waitSeconds` of each long poll.
    #[arg(long, default_value_t = 25)]
    wait_seconds: u64,
    /// Concurrent workers while loading.
    #[arg(long, default_value_t = 32)]
    concurrency: u64,
    /// Initiates in flight at most (each holds a connection); the rest wait their turn, and
    /// their latency still counts from the scheduled send time.
    #[arg(long, default_value_t = 2000)]
    max_in_flight: usize,
    /// The server's process id, to measure its CPU time and memory.
    #[arg(long)]
    server_pid: Option<u32>,
    /// `psql` connection string of the server's PostgreSQL database, to count its statements.
    #[arg(long)]
    psql: Option<String>,
    /// Seed of the machine each initiate goes to.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

const SUB: &str = "/subscriptions/fleet";
/// Initiate `i` asks access from the `i`-th address of 100.64.0.0/10, so no request
/// supersedes another's grant before its agent has seen it.
fn source(i: u64) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::from(0x6440_0000 | (i as u32 & 0x003f_ffff))
}

/// The shape of the loaded fleet: agent `a` guards machines `a * per_agent ..`.
#[derive(Debug, Clone, Copy)]
struct Fleet {
    agents: u64,
    per_agent: u64,
    groups: u64,
}

impl Fleet {
    fn machines(self) -> u64 {
        self.agents * self.per_agent
    }

    fn per_group(self) -> u64 {
        self.machines().div_ceil(self.groups)
    }

    fn group(self, m: u64) -> String {
        format!("{SUB}/resourceGroups/g{}", m / self.per_group())
    }

    /// Machine `m`'s id.
    fn machine(self, m: u64) -> String {
        format!("{}/machines/vm{m}", self.group(m))
    }

    /// The policy covering machine `m`.
    fn policy(self, m: u64) -> String {
        format!("{}/jitNetworkAccessPolicies/p", self.group(m))
    }
}

/// What the simulated agents share with the measuring side.
#[derive(Default)]
struct Shared {
    /// Long-poll answers received, of any kind.
    answers: AtomicU64,
    /// Long polls that failed (connection or status).
    errors: AtomicU64,
    /// Agents that have had their first answer (and so wait with `after`).
    ready: AtomicU64,
    /// When each request id was first seen in an answer to its agent.
    arrivals: Mutex<HashMap<String, Instant>>,
    stop: AtomicBool,
}

/// Runs the benchmark.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let fleet = Fleet {
        agents: args.agents,
        per_agent: args.machines_per_agent,
        groups: args.groups,
    };
    if args.groups == 0 || args.machines_per_agent == 0 || fleet.machines() < args.groups {
        bail!("need at least one machine per group, and positive --groups");
    }
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .timeout(Duration::from_secs(120))
        .build()?;
    let started = Instant::now();
    load_machines(&http, &args, fleet).await?;
    let tokens = load_agents(&http, &args, fleet).await?;
    println!(
        "# {} agents guarding {} machines in {} groups loaded in {:.1} s; {}",
        args.agents,
        fleet.machines(),
        args.groups,
        started.elapsed().as_secs_f64(),
        memory(args.server_pid)
    );

    let shared = Arc::new(Shared::default());
    // Every agent holds its own connection: the pool keeps them all.
    let polls = reqwest::Client::builder()
        .pool_max_idle_per_host(usize::MAX)
        .timeout(Duration::from_secs(args.wait_seconds + 60))
        .build()?;
    let base = Arc::<str>::from(format!("{}/api/v1/agent/desiredState", args.url));
    let mut agents = Vec::with_capacity(tokens.len());
    for token in tokens {
        agents.push(tokio::spawn(agent(
            polls.clone(),
            base.clone(),
            token,
            args.wait_seconds,
            shared.clone(),
        )));
    }
    let t0 = Instant::now();
    while shared.ready.load(Ordering::Relaxed) < args.agents {
        if t0.elapsed() > Duration::from_secs(600) {
            bail!(
                "only {} of {} agents had their first answer after 600 s",
                shared.ready.load(Ordering::Relaxed),
                args.agents
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "# every agent had its first state in {:.1} s and waits; {}",
        t0.elapsed().as_secs_f64(),
        memory(args.server_pid)
    );
    // Let the last first answers settle into waiting polls.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let db = match &args.psql {
        Some(url) => Some(Db::open(url)?),
        None => None,
    };
    let mut rows = Vec::new();
    let idle = Window::open(&args, &shared, db.as_ref());
    tokio::time::sleep(Duration::from_secs(args.idle_seconds)).await;
    rows.push(Row {
        phase: "idle".to_owned(),
        rate: 0,
        window: idle.close(&shared, db.as_ref()),
        propagation: None,
    });
    let mut rng = args.seed.max(1);
    let mut first = 0;
    for &rate in &args.rates {
        if rate == 0 {
            bail!("--rates must be positive");
        }
        let window = Window::open(&args, &shared, db.as_ref());
        let sent = initiates(&http, &args, fleet, rate, first, &mut rng).await;
        first += rate * args.seconds;
        let window = window.close(&shared, db.as_ref());
        let sent = sent.await?;
        let propagation = propagation(&args, &shared, &sent).await;
        rows.push(Row {
            phase: format!("{rate} initiates/s"),
            rate,
            window,
            propagation: Some(propagation),
        });
    }
    shared.stop.store(true, Ordering::Relaxed);
    for a in &agents {
        a.abort();
    }

    println!(
        "## {} agents, {} machines, long polls of {} s",
        args.agents,
        fleet.machines(),
        args.wait_seconds
    );
    let stat = db.as_ref().map_or("", |d| d.kind.label());
    println!(
        "| phase | initiates ok/sent | reached agent | propagation p50 / p99 / max | initiate p50 / p99 | agent answers/s | server CPU | server RSS (peak) | bench CPU |{}",
        if stat.is_empty() {
            String::new()
        } else {
            format!(" {stat} |")
        }
    );
    println!(
        "|---|---|---|---|---|---|---|---|---|{}",
        if stat.is_empty() { "" } else { "---|" }
    );
    for row in &rows {
        println!("{}", row.table(db.is_some()));
    }
    println!(
        "(long polls that failed: {})",
        shared.errors.load(Ordering::Relaxed)
    );
    for row in &rows {
        println!("{}", row.json(&args, stat));
    }
    Ok(())
}

/// Creates the machines, then one policy per group: port 22 from anywhere for up to 3 hours.
async fn load_machines(http: &reqwest::Client, args: &Args, fleet: Fleet) -> anyhow::Result<()> {
    let total = fleet.machines();
    each(args.concurrency, total, |i| {
        let http = http.clone();
        let (url, token) = (args.url.clone(), args.token.clone());
        async move {
            let id = fleet.machine(i);
            let address = std::net::Ipv4Addr::from([10, (i >> 16) as u8, (i >> 8) as u8, i as u8]);
            let r = http
                .put(format!("{url}/api/v1{id}"))
                .bearer_auth(&token)
                .json(&json!({"properties":{"os":"linux","addresses":[address.to_string()]}}))
                .send()
                .await
                .context("cannot reach the server")?;
            if !r.status().is_success() {
                bail!("creating {id}: {} {}", r.status(), r.text().await?);
            }
            Ok(())
        }
    })
    .await?;
    let per = fleet.per_group();
    for g in 0..args.groups {
        let vms: Vec<_> = (g * per..((g + 1) * per).min(total))
            .map(|m| {
                json!({"id": fleet.machine(m), "ports":[{"number":22,"protocol":"*",
                "allowedSourceAddressPrefix":"*","maxRequestAccessDuration":"PT3H"}]})
            })
            .collect();
        if vms.is_empty() {
            continue;
        }
        let r = http
            .put(format!("{}/api/v1{}", args.url, fleet.policy(g * per)))
            .bearer_auth(&args.token)
            .json(&json!({"properties":{"virtualMachines":vms}}))
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("creating policy {g}: {} {}", r.status(), r.text().await?);
        }
    }
    Ok(())
}

/// Registers the agents, each guarding its machines, and returns their tokens in order.
async fn load_agents(
    http: &reqwest::Client,
    args: &Args,
    fleet: Fleet,
) -> anyhow::Result<Vec<String>> {
    let tokens = Arc::new(Mutex::new(vec![String::new(); fleet.agents as usize]));
    each(args.concurrency, fleet.agents, |a| {
        let (http, tokens) = (http.clone(), tokens.clone());
        let (url, token) = (args.url.clone(), args.token.clone());
        async move {
            let machines: Vec<_> = (a * fleet.per_agent..(a + 1) * fleet.per_agent)
                .map(|m| fleet.machine(m))
                .collect();
            let r = http
                .post(format!("{url}/api/v1/agents"))
                .bearer_auth(&token)
                .json(&json!({"name": format!("fleet-{a}"), "mode": "host", "machines": machines}))
                .send()
                .await?;
            if !r.status().is_success() {
                bail!("registering agent {a}: {} {}", r.status(), r.text().await?);
            }
            let body: serde_json::Value = r.json().await?;
            let Some(secret) = body["token"].as_str() else {
                bail!("agent {a} was registered without a token");
            };
            if let Ok(mut t) = tokens.lock() {
                t[a as usize] = secret.to_owned();
            }
            Ok(())
        }
    })
    .await?;
    let tokens = std::mem::take(&mut *tokens.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
    Ok(tokens)
}

/// Runs `work(i)` for `i` in `0..total` on `workers` concurrent tasks.
async fn each<F, Fut>(workers: u64, total: u64, work: F) -> anyhow::Result<()>
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let mut running = tokio::task::JoinSet::new();
    for i in 0..total {
        while running.len() >= workers.max(1) as usize {
            if let Some(done) = running.join_next().await {
                done??;
            }
        }
        running.spawn(work(i));
    }
    while let Some(done) = running.join_next().await {
        done??;
    }
    Ok(())
}

/// One simulated agent: long-polls with its token for as long as the bench runs, and notes
/// when each request id first appears in an answer, whatever the answer's shape.
async fn agent(
    http: reqwest::Client,
    base: Arc<str>,
    token: String,
    wait: u64,
    shared: Arc<Shared>,
) {
    let bearer = format!("Bearer {token}");
    let mut revision: Option<i64> = None;
    let mut seen: HashSet<String> = HashSet::new();
    let mut url = String::with_capacity(base.len() + 48);
    while !shared.stop.load(Ordering::Relaxed) {
        url.clear();
        url.push_str(&base);
        if let Some(r) = revision {
            use std::fmt::Write;
            let _ = write!(url, "?after={r}&waitSeconds={wait}&changesOnly=true");
        }
        let answer = match http
            .get(url.as_str())
            .header(reqwest::header::AUTHORIZATION, bearer.as_str())
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => r.bytes().await.ok(),
            _ => None,
        };
        let Some(body) = answer else {
            shared.errors.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        let now = Instant::now();
        shared.answers.fetch_add(1, Ordering::Relaxed);
        let text = String::from_utf8_lossy(&body);
        if revision.is_none() {
            shared.ready.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(r) = number_after(&text, "\"revision\":") {
            revision = Some(r);
        }
        let mut new = Vec::new();
        for id in strings_after(&text, "\"requestId\":\"") {
            if !seen.contains(id) {
                seen.insert(id.to_owned());
                new.push(id);
            }
        }
        if !new.is_empty()
            && let Ok(mut arrivals) = shared.arrivals.lock()
        {
            for id in new {
                arrivals.entry(id.to_owned()).or_insert(now);
            }
        }
    }
}

/// The whole number after the first `key` in `text`.
fn number_after(text: &str, key: &str) -> Option<i64> {
    let rest = text[text.find(key)? + key.len()..].trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '-'))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// Every string value that follows `key` (which ends with the opening quote) in `text`.
fn strings_after<'t>(text: &'t str, key: &'t str) -> impl Iterator<Item = &'t str> + 't {
    text.match_indices(key).filter_map(move |(i, _)| {
        let rest = &text[i + key.len()..];
        rest.find('"').map(|end| &rest[..end])
    })
}

/// An initiate that was answered: its request id, when the answer arrived, how long it took
/// from its scheduled send time.
struct Sent {
    id: String,
    answered: Instant,
    latency: Duration,
}

/// What one rate phase sent.
struct Initiates {
    sent: u64,
    ok: Vec<Sent>,
}

/// Sends initiates at `rate` per second for `--seconds` on a fixed schedule, each for port 22 of
/// one random machine; returns once the last is sent, with a handle on their answers.
async fn initiates(
    http: &reqwest::Client,
    args: &Args,
    fleet: Fleet,
    rate: u64,
    first: u64,
    rng: &mut u64,
) -> tokio::task::JoinHandle<Initiates> {
    let total = rate * args.seconds;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let started = Instant::now();
    let answered = Arc::new(Mutex::new(Vec::with_capacity(total as usize)));
    let mut tasks = tokio::task::JoinSet::new();
    let in_flight = Arc::new(tokio::sync::Semaphore::new(args.max_in_flight.max(1)));
    for i in 0..total {
        let scheduled = started + interval.mul_f64(i as f64);
        tokio::time::sleep_until(scheduled.into()).await;
        let m = next_random(rng) % fleet.machines();
        let (http, answered) = (http.clone(), answered.clone());
        let url = format!("{}/api/v1{}/initiate", args.url, fleet.policy(m));
        let body = json!({"virtualMachines":[{"id": fleet.machine(m),
            "ports":[{"number":22,"duration":"PT1H","allowedSourceAddressPrefix": source(first + i).to_string()}]}],
            "justification":"fleet"});
        let (token, in_flight) = (args.token.clone(), in_flight.clone());
        tasks.spawn(async move {
            let Ok(_turn) = in_flight.acquire_owned().await else {
                return;
            };
            let Ok(r) = http.post(url).bearer_auth(token).json(&body).send().await else {
                return;
            };
            if !matches!(r.status().as_u16(), 200 | 202) {
                return;
            }
            let now = Instant::now();
            let Ok(body) = r.json::<serde_json::Value>().await else {
                return;
            };
            // The request id is the last segment of `id`, whichever form it takes.
            let Some(id) = body["id"].as_str().and_then(|i| i.rsplit('/').next()) else {
                return;
            };
            if let Ok(mut a) = answered.lock() {
                a.push(Sent {
                    id: id.to_owned(),
                    answered: now,
                    latency: now.saturating_duration_since(scheduled),
                });
            }
        });
    }
    tokio::spawn(async move {
        while tasks.join_next().await.is_some() {}
        let ok = answered
            .lock()
            .map(|mut a| std::mem::take(&mut *a))
            .unwrap_or_default();
        Initiates { sent: total, ok }
    })
}

/// splitmix64.
fn next_random(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Propagation of one phase's initiates: from each answer to its first sight at its agent.
struct Propagation {
    sent: u64,
    ok: u64,
    reached: u64,
    times: Vec<Duration>,
    latencies: Vec<Duration>,
}

/// Waits (up to `--drain-seconds`) for the answered initiates to reach their agents, then
/// measures how long each took.
async fn propagation(args: &Args, shared: &Shared, sent: &Initiates) -> Propagation {
    let deadline = Instant::now() + Duration::from_secs(args.drain_seconds);
    let reached = |shared: &Shared| {
        shared.arrivals.lock().map_or(0, |a| {
            sent.ok.iter().filter(|s| a.contains_key(&s.id)).count()
        })
    };
    while reached(shared) < sent.ok.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut times = Vec::with_capacity(sent.ok.len());
    if let Ok(arrivals) = shared.arrivals.lock() {
        for s in &sent.ok {
            if let Some(at) = arrivals.get(&s.id) {
                times.push(at.saturating_duration_since(s.answered));
            }
        }
    }
    times.sort();
    let mut latencies: Vec<_> = sent.ok.iter().map(|s| s.latency).collect();
    latencies.sort();
    Propagation {
        sent: sent.sent,
        ok: sent.ok.len() as u64,
        reached: times.len() as u64,
        times,
        latencies,
    }
}

/// Counters read at the start of a measured window.
struct Window {
    at: Instant,
    server: Option<(u32, u64)>,
    bench: u64,
    answers: u64,
    db: Option<u64>,
}

/// What a window measured.
struct Measured {
    seconds: f64,
    server_cpu: Option<f64>,
    bench_cpu: f64,
    answers_per_s: f64,
    db_per_s: Option<f64>,
    memory: String,
}

impl Window {
    fn open(args: &Args, shared: &Shared, db: Option<&Db>) -> Self {
        Window {
            at: Instant::now(),
            server: args
                .server_pid
                .and_then(|p| cpu_ticks(&p.to_string()).map(|t| (p, t))),
            bench: cpu_ticks("self").unwrap_or(0),
            answers: shared.answers.load(Ordering::Relaxed),
            db: db.and_then(Db::count),
        }
    }

    fn close(self, shared: &Shared, db: Option<&Db>) -> Measured {
        let seconds = self.at.elapsed().as_secs_f64();
        let ticks = ticks_per_second();
        let percent =
            |from: u64, to: u64| (to.saturating_sub(from)) as f64 / ticks / seconds * 100.0;
        let server = self
            .server
            .and_then(|(pid, from)| cpu_ticks(&pid.to_string()).map(|to| percent(from, to)));
        let answers = shared.answers.load(Ordering::Relaxed) - self.answers;
        Measured {
            seconds,
            server_cpu: server,
            bench_cpu: percent(self.bench, cpu_ticks("self").unwrap_or(0)),
            answers_per_s: answers as f64 / seconds,
            db_per_s: match (self.db, db.and_then(Db::count)) {
                (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / seconds),
                _ => None,
            },
            memory: self
                .server
                .map_or_else(|| "?".to_owned(), |(pid, _)| memory(Some(pid))),
        }
    }
}

/// A process's user and system CPU time in clock ticks (`pid` may be `self`).
fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace();
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Clock ticks per second (`getconf CLK_TCK`, 100 on Linux unless told otherwise).
fn ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// The server's current and peak resident memory.
pub fn memory(pid: Option<u32>) -> String {
    let Some(pid) = pid else {
        return "server memory not measured".to_owned();
    };
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map(|kb| format!("{} MiB", kb / 1024))
            .unwrap_or_else(|| "?".to_owned())
    };
    format!("{} ({})", field("VmRSS:"), field("VmHWM:"))
}

/// Which database counter is read.
#[derive(Clone, Copy)]
enum DbCounter {
    /// `sum(calls)` of `pg_stat_statements`: statements executed.
    Statements,
    /// `xact_commit` of `pg_stat_database`: transactions committed.
    Commits,
}

impl DbCounter {
    fn label(self) -> &'static str {
        match self {
            DbCounter::Statements => "db statements/s (pg_stat_statements)",
            DbCounter::Commits => "db commits/s (pg_stat_database)",
        }
    }

    fn query(self) -> &'static str {
        match self {
            DbCounter::Statements => "select sum(calls)::bigint from pg_stat_statements",
            DbCounter::Commits => {
                "select xact_commit from pg_stat_database where datname = current_database()"
            }
        }
    }
}

/// The server's PostgreSQL database, read through `psql`.
struct Db {
    url: String,
    kind: DbCounter,
}

impl Db {
    /// Counts statements when `pg_stat_statements` is loaded, else commits.
    fn open(url: &str) -> anyhow::Result<Self> {
        let statements = Db {
            url: url.to_owned(),
            kind: DbCounter::Statements,
        };
        let _ = psql(url, "create extension if not exists pg_stat_statements");
        if statements.count().is_some() {
            return Ok(statements);
        }
        let commits = Db {
            url: url.to_owned(),
            kind: DbCounter::Commits,
        };
        commits
            .count()
            .context("cannot read pg_stat_database through psql")?;
        Ok(commits)
    }

    fn count(&self) -> Option<u64> {
        psql(&self.url, self.kind.query())?.trim().parse().ok()
    }
}

fn psql(url: &str, sql: &str) -> Option<String> {
    let out = std::process::Command::new("psql")
        .args(["-XAtq", url, "-c", sql])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// One line of the report.
struct Row {
    phase: String,
    rate: u64,
    window: Measured,
    propagation: Option<Propagation>,
}

impl Row {
    fn table(&self, db: bool) -> String {
        let w = &self.window;
        let cpu = |c: Option<f64>| c.map_or_else(|| "?".to_owned(), |c| format!("{c:.0} %"));
        let (ok, reached, prop, lat) = match &self.propagation {
            None => (
                "–".to_owned(),
                "–".to_owned(),
                "–".to_owned(),
                "–".to_owned(),
            ),
            Some(p) => (
                format!("{}/{}", p.ok, p.sent),
                format!("{}", p.reached),
                format!(
                    "{:.0} / {:.0} / {:.0} ms",
                    percentile_ms(&p.times, 0.5),
                    percentile_ms(&p.times, 0.99),
                    percentile_ms(&p.times, 1.0)
                ),
                format!(
                    "{:.0} / {:.0} ms",
                    percentile_ms(&p.latencies, 0.5),
                    percentile_ms(&p.latencies, 0.99)
                ),
            ),
        };
        let mut line = format!(
            "| {} ({:.0} s) | {ok} | {reached} | {prop} | {lat} | {:.0} | {} | {} | {:.0} % |",
            self.phase,
            w.seconds,
            w.answers_per_s,
            cpu(w.server_cpu),
            w.memory,
            w.bench_cpu
        );
        if db {
            line.push_str(&format!(
                " {} |",
                w.db_per_s
                    .map_or_else(|| "?".to_owned(), |d| format!("{d:.0}"))
            ));
        }
        line
    }

    fn json(&self, args: &Args, db: &str) -> String {
        let w = &self.window;
        let p = self.propagation.as_ref();
        let ms = |p: Option<&Propagation>, q: f64| p.map(|p| percentile_ms(&p.times, q));
        json!({
            "bench": "fleet",
            "agents": args.agents,
            "machines": args.agents * args.machines_per_agent,
            "phase": self.phase,
            "rate": self.rate,
            "seconds": w.seconds,
            "sent": p.map(|p| p.sent),
            "ok": p.map(|p| p.ok),
            "reached": p.map(|p| p.reached),
            "propagationP50Ms": ms(p, 0.5),
            "propagationP99Ms": ms(p, 0.99),
            "propagationMaxMs": ms(p, 1.0),
            "initiateP50Ms": p.map(|p| percentile_ms(&p.latencies, 0.5)),
            "initiateP99Ms": p.map(|p| percentile_ms(&p.latencies, 0.99)),
            "agentAnswersPerS": w.answers_per_s,
            "serverCpuPercent": w.server_cpu,
            "benchCpuPercent": w.bench_cpu,
            "serverMemory": w.memory,
            "dbCounter": (!db.is_empty()).then_some(db),
            "dbPerS": w.db_per_s,
        })
        .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_found_in_any_answer_shape() {
        let text = r#"{"revision":42,"machines":[{"id":"m","grants":[{"requestId":"r1","seq":0},{"requestId":"r2"}]}],"changed":[{"grants":[{"requestId":"r3"}]}]}"#;
        assert_eq!(number_after(text, "\"revision\":"), Some(42));
        assert_eq!(
            strings_after(text, "\"requestId\":\"").collect::<Vec<_>>(),
            ["r1", "r2", "r3"]
        );
    }

    #[test]
    fn agents_guard_consecutive_machines_spread_over_groups() {
        let fleet = Fleet {
            agents: 1000,
            per_agent: 10,
            groups: 100,
        };
        assert_eq!(fleet.machines(), 10_000);
        assert_eq!(
            fleet.machine(0),
            "/subscriptions/fleet/resourceGroups/g0/machines/vm0"
        );
        assert_eq!(
            fleet.policy(9_999),
            "/subscriptions/fleet/resourceGroups/g99/jitNetworkAccessPolicies/p"
        );
    }
}
