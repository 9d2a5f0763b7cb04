//! `authorize` over HTTP against a running `ajar serve`: creates applications whose publishers
//! hold standing roles (so the index has `--grants` entries without running role requests),
//! then asks closed-loop from `--concurrency` workers and reports decisions per second and
//! latency percentiles.

use anyhow::{Context, bail};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const RG: &str = "/subscriptions/bench/resourceGroups/authz";

/// Flags of `ajar-bench authorize-http`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Server base URL.
    #[arg(long, default_value = "http://127.0.0.1:8600")]
    url: String,
    /// Owner token (the bootstrap token will do).
    #[arg(long, env = "AJAR_TOKEN")]
    token: String,
    /// Applications to create.
    #[arg(long, default_value_t = 1_000)]
    applications: u64,
    /// Standing publisher roles, spread over the applications and 1,000 principals.
    #[arg(long, default_value_t = 10_000)]
    grants: u64,
    /// Questions to ask.
    #[arg(long, default_value_t = 50_000)]
    requests: u64,
    /// Concurrent workers.
    #[arg(long, default_value_t = 32)]
    concurrency: u64,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .build()?;
    let put = |path: String, body: serde_json::Value| {
        let (http, url, token) = (http.clone(), args.url.clone(), args.token.clone());
        async move {
            let r = http
                .put(format!("{url}/api/v1{path}"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .context("cannot reach the server")?;
            if !r.status().is_success() {
                bail!("PUT {path}: {} {}", r.status(), r.text().await?);
            }
            anyhow::Ok(())
        }
    };
    put(
        "/roleDefinitions/BenchWriter".to_owned(),
        json!({"actions":["ajar.applications/write"]}),
    )
    .await?;
    for a in 0..args.applications {
        put(
            format!("{RG}/applications/app{a}"),
            json!({"properties":{"jitAccessPolicy":{"jitAccessEnabled":false}}}),
        )
        .await?;
    }
    for g in 0..args.grants {
        put(
            format!(
                "{RG}/applications/app{}/eligibleRoles/e{g}",
                g % args.applications
            ),
            json!({"principal":format!("u{}", g % 1_000),"roleDefinition":"BenchWriter"}),
        )
        .await?;
    }
    let next = Arc::new(AtomicU64::new(0));
    let (allowed, errors) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..args.concurrency {
        let (http, next, allowed, errors) =
            (http.clone(), next.clone(), allowed.clone(), errors.clone());
        let (url, token, total, apps, grants) = (
            args.url.clone(),
            args.token.clone(),
            args.requests,
            args.applications,
            args.grants,
        );
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break latencies;
                }
                // Even questions name a grant that exists; odd ones a random pair.
                let g = i.wrapping_mul(2_654_435_761) % grants;
                let (principal, app) = if i % 2 == 0 {
                    (g % 1_000, g % apps)
                } else {
                    (g % 997, (g / 7) % apps)
                };
                let body = json!({"principal":format!("u{principal}"),
                    "action":"ajar.applications/write",
                    "scope":format!("{RG}/applications/app{app}")});
                let t0 = Instant::now();
                let answer = http
                    .post(format!("{url}/api/v1/authorize"))
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await;
                match answer {
                    Ok(r) if r.status().is_success() => {
                        let v: serde_json::Value = r.json().await.unwrap_or_default();
                        if v["allowed"] == true {
                            allowed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                latencies.push(t0.elapsed());
            }
        }));
    }
    let mut latencies: Vec<Duration> = Vec::with_capacity(args.requests as usize);
    for w in workers {
        latencies.extend(w.await?);
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let pct = |p: f64| crate::percentile_ms(&latencies, p);
    println!(
        "authorize over HTTP ({} applications, {} standing grants; closed loop, {} workers): \
         {} decisions in {:.2} s = {:.0} decisions/s ({:.1} % allowed); latency p50 {:.2} ms, \
         p99 {:.2} ms, max {:.2} ms; errors {}",
        args.applications,
        args.grants,
        args.concurrency,
        latencies.len(),
        elapsed.as_secs_f64(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        100.0 * allowed.load(Ordering::Relaxed) as f64 / latencies.len().max(1) as f64,
        pct(0.50),
        pct(0.99),
        pct(1.0),
        errors.load(Ordering::Relaxed)
    );
    if errors.load(Ordering::Relaxed) > 0 {
        bail!("some requests failed");
    }
    Ok(())
}
