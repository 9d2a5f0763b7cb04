//! `ajar-bench`: benchmarks that need a running system.
//!
//! - `ajar-bench initiate`: a load generator for end-to-end initiate requests against a running
//!   `ajar serve`. Closed loop (`--concurrency` workers as fast as they go) measures throughput;
//!   open loop (`--rate` requests per second on a fixed schedule) measures latency at a given
//!   load without coordinated omission (latency counts from the scheduled send time). Run it
//!   with `bench/run.sh`, which starts a release server on a temporary database.
//! - `ajar-bench enforce`: time from an initiate returning to the first TCP connect that gets
//!   through a real nftables agent in network namespaces, and from a window's end to the first
//!   refused connect (`bench/enforce.sh`; needs root).
//! - `ajar-bench authorize`: in-process `authorize` decisions per second over 10,000
//!   applications and 100,000 elevations; `ajar-bench authorize-http` the same question over
//!   HTTP against a running server (`bench/authorize.sh`).
//! - `ajar-bench faults`: the fault-injection suite (`bench/faults.sh`; needs root).
//! - `ajar-bench scale`: the first page of every list with 100,000 machines and up to
//!   1,000,000 requests loaded through the API, and the server's peak memory
//!   (`bench/scale.sh`).
//! - `ajar-bench nft-apply`: the agent applying a desired state of 10,000 grants to nftables
//!   in a network namespace, first whole and then one grant added and one removed, checked
//!   against the kernel's table after every step (`bench/nft-apply.sh`; needs root).
//! - `ajar-bench fleet`: thousands of agents long-polling their desired state while initiates
//!   arrive; idle and loaded server CPU and memory, and how long a grant takes to reach its
//!   agent (`bench/fleet.sh`).
//! - `ajar-bench aws-overshoot`: how long a security-group rule outlives its grant's end with
//!   `ajar agent --mode aws`, against moto: one agent, one of two killed, the only one killed
//!   and started again (`bench/aws-overshoot.sh`).
//! - `ajar-bench oidc`: bearer JWT authentication over HTTP against an in-process server and a
//!   test identity provider (`bench/oidc.sh`).

mod authorize;
mod authorize_http;
mod aws_overshoot;
mod enforce;
mod faults;
mod fleet;
mod nft_apply;
mod oidc;
mod scale;

use anyhow::{Context, bail};
use clap::Parser;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Parser)]
#[command(about = "benchmarks for ajar")]
enum Cli {
    /// Initiate throughput and latency against a running `ajar serve`.
    Initiate(Args),
    /// Open and close latency through a real agent in network namespaces (root).
    Enforce(enforce::Args),
    /// `authorize` decisions per second in-process.
    Authorize(authorize::Args),
    /// `authorize` decisions per second and latency over HTTP against a running `ajar serve`.
    AuthorizeHttp(authorize_http::Args),
    /// Bearer JWT authentication per second: verified each time, cached, and API tokens.
    Oidc(oidc::Args),
    /// The fault-injection suite (root): faults during open grants, overshoot and recovery.
    Faults(faults::Args),
    /// The first page of every list at fleet size (machines, then requests loaded in steps).
    Scale(scale::Args),
    /// Applying 10,000 grants, and one change on top, to nftables in a namespace (root).
    NftApply(nft_apply::Args),
    /// Agents long-polling their desired state while initiates arrive: propagation and cost.
    Fleet(fleet::Args),
    /// How long a security-group rule outlives its grant with `ajar agent --mode aws` (moto).
    AwsOvershoot(aws_overshoot::Args),
}

#[derive(Debug, clap::Args)]
struct Args {
    /// Server base URL.
    #[arg(long, default_value = "http://127.0.0.1:8600")]
    url: String,
    /// Owner token (the bootstrap token will do).
    #[arg(long, env = "AJAR_TOKEN")]
    token: String,
    /// Number of initiate requests to send.
    #[arg(long, default_value_t = 20_000)]
    requests: u64,
    /// Closed loop: this many concurrent workers.
    #[arg(long, default_value_t = 32)]
    concurrency: u64,
    /// Open loop: send at this many requests per second instead.
    #[arg(long)]
    rate: Option<u64>,
    /// Machines to spread requests over.
    #[arg(long, default_value_t = 100)]
    machines: u64,
}

const RG: &str = "/subscriptions/bench/resourceGroups/bench";

/// The `p` quantile (0 to 1; 1 is the maximum) of sorted latencies, in milliseconds.
pub fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).saturating_sub(1);
    sorted.get(i).copied().unwrap_or_default().as_secs_f64() * 1000.0
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli {
        Cli::Initiate(args) => rt.block_on(run(args)),
        Cli::Enforce(args) => rt.block_on(enforce::run(args)),
        Cli::Authorize(args) => authorize::run(args),
        Cli::AuthorizeHttp(args) => rt.block_on(authorize_http::run(args)),
        Cli::Oidc(args) => rt.block_on(oidc::run(args)),
        Cli::Faults(args) => rt.block_on(faults::run(args)),
        Cli::AwsOvershoot(args) => rt.block_on(aws_overshoot::run(args)),
        Cli::Scale(args) => rt.block_on(scale::run(args)),
        Cli::NftApply(args) => nft_apply::run(args),
        Cli::Fleet(args) => rt.block_on(fleet::run(args)),
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .build()?;
    setup(&http, &args).await?;
    let next = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut latencies: Vec<Duration> = Vec::with_capacity(args.requests as usize);
    match args.rate {
        None => {
            let mut workers = Vec::new();
            for _ in 0..args.concurrency {
                let (http, next, errors) = (http.clone(), next.clone(), errors.clone());
                let (url, token, total, machines) = (
                    args.url.clone(),
                    args.token.clone(),
                    args.requests,
                    args.machines,
                );
                workers.push(tokio::spawn(async move {
                    let mut lat = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= total {
                            break lat;
                        }
                        let t0 = Instant::now();
                        if !initiate(&http, &url, &token, i, machines).await {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                        lat.push(t0.elapsed());
                    }
                }));
            }
            for w in workers {
                latencies.extend(w.await?);
            }
        }
        Some(rate) => {
            if rate == 0 {
                bail!("--rate must be positive");
            }
            let interval = Duration::from_secs_f64(1.0 / rate as f64);
            let mut tasks = Vec::with_capacity(args.requests as usize);
            for i in 0..args.requests {
                let scheduled = started + interval.mul_f64(i as f64);
                tokio::time::sleep_until(scheduled.into()).await;
                let (http, errors) = (http.clone(), errors.clone());
                let (url, token, machines) = (args.url.clone(), args.token.clone(), args.machines);
                tasks.push(tokio::spawn(async move {
                    if !initiate(&http, &url, &token, i, machines).await {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                    scheduled.elapsed()
                }));
            }
            for t in tasks {
                latencies.push(t.await?);
            }
        }
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let pct = |p: f64| percentile_ms(&latencies, p);
    let mode = match args.rate {
        None => format!("closed loop, {} workers", args.concurrency),
        Some(r) => format!("open loop at {r} req/s"),
    };
    println!(
        "{mode}: {} initiates in {:.2} s = {:.0} req/s; latency p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms; errors {}",
        latencies.len(),
        elapsed.as_secs_f64(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(1.0),
        errors.load(Ordering::Relaxed)
    );
    if errors.load(Ordering::Relaxed) > 0 {
        bail!("some requests failed");
    }
    Ok(())
}

/// Creates the machines and one policy covering them (idempotent).
async fn setup(http: &reqwest::Client, args: &Args) -> anyhow::Result<()> {
    let mut vms = Vec::new();
    for m in 0..args.machines {
        let id = format!("{RG}/machines/vm{m}");
        let r = http
            .put(format!("{}/api/v1{id}", args.url))
            .bearer_auth(&args.token)
            .json(&json!({"properties":{"os":"linux","addresses":["10.1.0.4"]}}))
            .send()
            .await
            .context("cannot reach the server")?;
        if !r.status().is_success() {
            bail!("creating {id}: {} {}", r.status(), r.text().await?);
        }
        vms.push(json!({"id":id,"ports":[{"number":22,"protocol":"*","allowedSourceAddressPrefix":"*","maxRequestAccessDuration":"PT3H"}]}));
    }
    let r = http
        .put(format!(
            "{}/api/v1{RG}/jitNetworkAccessPolicies/bench",
            args.url
        ))
        .bearer_auth(&args.token)
        .json(&json!({"properties":{"virtualMachines":vms}}))
        .send()
        .await?;
    if !r.status().is_success() {
        bail!("creating the policy: {} {}", r.status(), r.text().await?);
    }
    Ok(())
}

/// One initiate for port 22 of machine `i % machines` from a source derived from `i`.
async fn initiate(http: &reqwest::Client, url: &str, token: &str, i: u64, machines: u64) -> bool {
    let machine = format!("{RG}/machines/vm{}", i % machines);
    let source = format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255);
    let body = json!({"virtualMachines":[{"id":machine,"ports":[{"number":22,"duration":"PT1H","allowedSourceAddressPrefix":source}]}],"justification":"bench"});
    match http
        .post(format!(
            "{url}/api/v1{RG}/jitNetworkAccessPolicies/bench/initiate"
        ))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
    {
        Ok(r) => r.status().as_u16() == 202,
        Err(_) => false,
    }
}
