//! `ajar-bench scale`: the first page of every list at fleet size. Loads machines (spread over
//! resource groups, one policy per group) and then network requests through the API, in
//! steps; after each step, times the first page of each list a console or script reads, and
//! reports the server's peak resident memory.

use crate::percentile_ms;
use anyhow::{Context, bail};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Options of `ajar-bench scale`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Server base URL.
    #[arg(long, default_value = "http://127.0.0.1:8600")]
    url: String,
    /// Owner token (the bootstrap token will do).
    #[arg(long, env = "AJAR_TOKEN")]
    token: String,
    /// Machines to create.
    #[arg(long, default_value_t = 100_000)]
    machines: u64,
    /// Resource groups to spread them over (one policy each).
    #[arg(long, default_value_t = 100)]
    groups: u64,
    /// Request counts to measure at, ascending (requests are added between steps).
    #[arg(long, value_delimiter = ',', default_value = "0,100000,1000000")]
    steps: Vec<u64>,
    /// Concurrent workers while loading.
    #[arg(long, default_value_t = 32)]
    concurrency: u64,
    /// Grants held open on the busy machine (the first requests all go there).
    #[arg(long, default_value_t = 1000)]
    busy: u64,
    /// The server's process id, to report its peak resident memory.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Applications to create (spread over the resource groups), for the applications page.
    #[arg(long, default_value_t = 1000)]
    applications: u64,
    /// Agents to register, each guarding 10 machines, for the agents page.
    #[arg(long, default_value_t = 1000)]
    agents: u64,
    /// API tokens to create (for 100 principals), for the tokens page.
    #[arg(long, default_value_t = 1000)]
    tokens: u64,
    /// Times each page is read (the median is reported, and the first read).
    #[arg(long, default_value_t = 5)]
    reads: usize,
}

const SUB: &str = "/subscriptions/fleet";

fn group(g: u64) -> String {
    format!("{SUB}/resourceGroups/g{g}")
}

/// The shape of the loaded fleet.
#[derive(Debug, Clone, Copy)]
struct Fleet {
    machines: u64,
    groups: u64,
    busy: u64,
}

impl Fleet {
    fn of(args: &Args) -> Self {
        Fleet {
            machines: args.machines,
            groups: args.groups,
            busy: args.busy,
        }
    }

    fn per_group(self) -> u64 {
        self.machines.div_ceil(self.groups)
    }

    /// Machine `m`'s id.
    fn machine(self, m: u64) -> String {
        format!("{}/machines/vm{m}", group(m / self.per_group()))
    }

    /// The policy covering machine `m`.
    fn policy(self, m: u64) -> String {
        format!("{}/jitNetworkAccessPolicies/p", group(m / self.per_group()))
    }

    /// The machine request `i` goes to: the busy machine first, then spread over all.
    fn target(self, i: u64) -> u64 {
        if i < self.busy {
            0
        } else {
            i.wrapping_mul(7919) % self.machines
        }
    }
}

/// Runs the benchmark.
pub async fn run(args: Args) -> anyhow::Result<()> {
    if args.groups == 0 || args.machines < args.groups {
        bail!("--machines must be at least --groups, and --groups positive");
    }
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .timeout(Duration::from_secs(600))
        .build()?;
    let started = Instant::now();
    load_machines(&http, &args).await?;
    println!(
        "# {} machines in {} groups loaded in {:.1} s; {}",
        args.machines,
        args.groups,
        started.elapsed().as_secs_f64(),
        rss(&args)
    );
    let started = Instant::now();
    load_others(&http, &args).await?;
    println!(
        "# {} applications, {} agents and {} tokens loaded in {:.1} s",
        args.applications,
        args.agents,
        args.tokens,
        started.elapsed().as_secs_f64()
    );
    let reader = group_reader(&http, &args).await?;
    let mut loaded = 0;
    for &step in &args.steps {
        if step > loaded {
            let t0 = Instant::now();
            load_requests(&http, &args, loaded, step).await?;
            println!(
                "# requests {loaded}..{step} loaded in {:.1} s ({:.0}/s)",
                t0.elapsed().as_secs_f64(),
                (step - loaded) as f64 / t0.elapsed().as_secs_f64()
            );
            loaded = step;
        }
        measure(&http, &args, &reader, loaded).await?;
    }
    Ok(())
}

/// Creates the machines and one policy per group, port 22 from anywhere for up to 3 hours.
async fn load_machines(http: &reqwest::Client, args: &Args) -> anyhow::Result<()> {
    let next = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..args.concurrency {
        let (http, next) = (http.clone(), next.clone());
        let (url, token, total) = (args.url.clone(), args.token.clone(), args.machines);
        let fleet = Fleet::of(args);
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return anyhow::Ok(());
                }
                let id = fleet.machine(i);
                let octets = [10, (i >> 16) as u8, (i >> 8) as u8, i as u8];
                let address = std::net::Ipv4Addr::from(octets).to_string();
                let r = http
                    .put(format!("{url}/api/v1{id}"))
                    .bearer_auth(&token)
                    .json(&json!({"properties":{"os":"linux","addresses":[address]}}))
                    .send()
                    .await
                    .context("cannot reach the server")?;
                if !r.status().is_success() {
                    bail!("creating {id}: {} {}", r.status(), r.text().await?);
                }
            }
        }));
    }
    for w in workers {
        w.await??;
    }
    let fleet = Fleet::of(args);
    let per = fleet.per_group();
    for g in 0..args.groups {
        let vms: Vec<_> = (g * per..((g + 1) * per).min(args.machines))
            .map(|m| {
                json!({"id": fleet.machine(m), "ports":[{"number":22,"protocol":"*",
                "allowedSourceAddressPrefix":"*","maxRequestAccessDuration":"PT3H"}]})
            })
            .collect();
        let r = http
            .put(format!(
                "{}/api/v1{}/jitNetworkAccessPolicies/p",
                args.url,
                group(g)
            ))
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

/// The principal who reads one resource group (`SecurityReader` at group 1), and nothing
/// else: what they see of history is a hundredth of it, found among everything else.
const READER: &str = "group-reader";

/// A token for [`READER`], with its role.
async fn group_reader(http: &reqwest::Client, args: &Args) -> anyhow::Result<String> {
    let r = http
        .post(format!("{}/api/v1/tokens", args.url))
        .bearer_auth(&args.token)
        .json(&json!({"principal": READER, "description": "scale benchmark"}))
        .send()
        .await?;
    if !r.status().is_success() {
        bail!(
            "creating the reader's token: {} {}",
            r.status(),
            r.text().await?
        );
    }
    let body: serde_json::Value = r.json().await?;
    let token = body["token"]
        .as_str()
        .context("the token's secret")?
        .to_owned();
    let r = http
        .put(format!(
            "{}/api/v1/roleAssignments/scale-group-reader",
            args.url
        ))
        .bearer_auth(&args.token)
        .json(&json!({"principal": READER, "roleDefinition": "SecurityReader", "scope": group(1)}))
        .send()
        .await?;
    if !r.status().is_success() {
        bail!(
            "assigning the reader's role: {} {}",
            r.status(),
            r.text().await?
        );
    }
    Ok(token)
}

/// Creates applications, agents (each guarding 10 machines) and tokens, 16 at a time.
async fn load_others(http: &reqwest::Client, args: &Args) -> anyhow::Result<()> {
    let fleet = Fleet::of(args);
    let agents = args.agents.min(args.machines / 10);
    let mut calls: Vec<(reqwest::Method, String, serde_json::Value)> = Vec::new();
    for a in 0..args.applications {
        calls.push((
            reqwest::Method::PUT,
            format!("{}/applications/app{a}", group(a % args.groups)),
            json!({"properties": {"publisherPrincipals": []}}),
        ));
    }
    for a in 0..agents {
        let machines: Vec<String> = (a * 10..a * 10 + 10).map(|m| fleet.machine(m)).collect();
        calls.push((
            reqwest::Method::POST,
            "/agents".to_owned(),
            json!({"name": format!("agent{a:05}"), "mode": "host", "machines": machines}),
        ));
    }
    for t in 0..args.tokens {
        calls.push((
            reqwest::Method::POST,
            "/tokens".to_owned(),
            json!({"principal": format!("user{}", t % 100), "description": "scale"}),
        ));
    }
    let calls = Arc::new(calls);
    let next = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..16 {
        let (http, calls, next) = (http.clone(), calls.clone(), next.clone());
        let (url, token) = (args.url.clone(), args.token.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some((method, path, body)) = calls.get(i) else {
                    return Ok(());
                };
                let r = http
                    .request(method.clone(), format!("{url}/api/v1{path}"))
                    .bearer_auth(&token)
                    .json(body)
                    .send()
                    .await?;
                if !r.status().is_success() {
                    bail!("{method} {path}: {} {}", r.status(), r.text().await?);
                }
            }
        }));
    }
    for w in workers {
        w.await??;
    }
    Ok(())
}

/// Sends initiates `from..to`, each for port 22 of one machine from its own source.
async fn load_requests(
    http: &reqwest::Client,
    args: &Args,
    from: u64,
    to: u64,
) -> anyhow::Result<()> {
    let next = Arc::new(AtomicU64::new(from));
    let errors = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..args.concurrency {
        let (http, next, errors) = (http.clone(), next.clone(), errors.clone());
        let (url, token, fleet) = (args.url.clone(), args.token.clone(), Fleet::of(args));
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= to {
                    return;
                }
                let m = fleet.target(i);
                let source = std::net::Ipv4Addr::from([100, (i >> 16) as u8, (i >> 8) as u8, i as u8]);
                let body = json!({"virtualMachines":[{"id": fleet.machine(m),
                    "ports":[{"number":22,"duration":"PT1H","allowedSourceAddressPrefix": source.to_string()}]}],
                    "justification":"scale"});
                let ok = http
                    .post(format!("{url}/api/v1{}/initiate", fleet.policy(m)))
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().as_u16() == 202);
                if !ok {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for w in workers {
        w.await?;
    }
    let failed = errors.load(Ordering::Relaxed);
    if failed > 0 {
        bail!("{failed} initiates failed");
    }
    Ok(())
}

/// Times the first page of each list.
async fn measure(
    http: &reqwest::Client,
    args: &Args,
    reader: &str,
    requests: u64,
) -> anyhow::Result<()> {
    let fleet = Fleet::of(args);
    let vm0 = fleet.machine(0);
    let quiet = fleet.machine(args.machines / 2 + 1);
    let pages = [
        (
            "machines in a subscription (with figures)",
            format!("{SUB}/machines?top=100"),
        ),
        (
            "machines in a resource group",
            format!("{}/machines?top=100", group(1)),
        ),
        ("GET /api/v1/history", "/history?top=100".to_owned()),
        ("one machine", quiet.clone()),
        ("a machine's requests", format!("{quiet}/requests?top=100")),
        ("the busy machine's grants", format!("{vm0}/grants")),
        (
            "activity at one machine's scope",
            format!("/activity?scope={vm0}&top=100"),
        ),
        (
            "policies in a subscription",
            format!("{SUB}/jitNetworkAccessPolicies"),
        ),
        (
            "applications in a subscription (with figures)",
            format!("{SUB}/applications?top=100"),
        ),
        ("agents", "/agents?top=100".to_owned()),
        ("inbox", "/inbox?top=100".to_owned()),
        ("tokens", "/tokens?top=100".to_owned()),
        ("role assignments", "/roleAssignments?top=100".to_owned()),
        ("subscriptions", "/subscriptions".to_owned()),
    ];
    // Read by someone who may read one resource group only: the store holds a hundred times
    // what they may see.
    let as_reader = [
        (
            "`GET /api/v1/history`, reader of one resource group",
            "/history?top=100".to_owned(),
        ),
        (
            "activity at that resource group, by its reader",
            format!("/activity?scope={}&top=100", group(1)),
        ),
    ];
    let pages = pages
        .into_iter()
        .map(|(name, path)| (name, path, args.token.as_str()))
        .chain(
            as_reader
                .into_iter()
                .map(|(name, path)| (name, path, reader)),
        );
    println!("## at {requests} requests ({})", rss(args));
    println!("| first page of | first read | median of {} |", args.reads);
    println!("|---|---|---|");
    for (name, path, token) in pages {
        let mut times = Vec::new();
        let mut size = 0;
        for _ in 0..args.reads.max(1) {
            let t0 = Instant::now();
            let r = http
                .get(format!("{}/api/v1{path}", args.url))
                .bearer_auth(token)
                .send()
                .await?;
            let status = r.status();
            let body = r.bytes().await?;
            times.push(t0.elapsed());
            size = body.len();
            if !status.is_success() {
                bail!("{path}: {status} {}", String::from_utf8_lossy(&body));
            }
        }
        let first = times[0];
        times.sort();
        println!(
            "| {name} | {:.1} ms | {:.1} ms ({} KB) |",
            first.as_secs_f64() * 1000.0,
            percentile_ms(&times, 0.5),
            size / 1024
        );
    }
    initiate_latency(http, args, requests).await?;
    println!("({})", rss(args));
    Ok(())
}

/// Initiates sent one at a time (no other load), each for a machine of its own from a source of
/// its own: how long one waits for its answer at this size of store.
async fn initiate_latency(
    http: &reqwest::Client,
    args: &Args,
    requests: u64,
) -> anyhow::Result<()> {
    const COUNT: u64 = 200;
    let fleet = Fleet::of(args);
    let mut times = Vec::new();
    for i in 0..COUNT {
        // Spread over the fleet and apart from the loaded requests' sources (100.x.y.z).
        let m = (requests / 7 + i * 7_919) % args.machines;
        let source = std::net::Ipv4Addr::from([198, 18, (i >> 8) as u8, i as u8]);
        let body = json!({"virtualMachines":[{"id": fleet.machine(m),
            "ports":[{"number":22,"duration":"PT1H","allowedSourceAddressPrefix": source.to_string()}]}],
            "justification":"scale latency"});
        let t0 = Instant::now();
        let r = http
            .post(format!("{}/api/v1{}/initiate", args.url, fleet.policy(m)))
            .bearer_auth(&args.token)
            .json(&body)
            .send()
            .await?;
        let status = r.status();
        let text = r.text().await?;
        times.push(t0.elapsed());
        if status.as_u16() != 202 {
            bail!("initiate: {status} {text}");
        }
    }
    times.sort();
    println!(
        "| initiate, one at a time (p50 / p99 of {COUNT}) | {:.1} ms | {:.1} ms |",
        percentile_ms(&times, 0.5),
        percentile_ms(&times, 0.99)
    );
    Ok(())
}

/// The server's current and peak resident memory, when its pid is known.
fn rss(args: &Args) -> String {
    format!("server RSS {}", crate::fleet::memory(args.server_pid))
}
