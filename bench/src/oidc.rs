//! Bearer JWT authentication over HTTP: an in-process server trusting a test identity provider,
//! asked `GET /api/v1/me` closed-loop by `--concurrency` workers with (a) a different token
//! each time, so every request verifies a signature and resolves the principal's groups and
//! roles, with RS256 and ES256; (b) one token over and over (the resolved-caller cache); and
//! (c) an ajar API token, for comparison.

use ajar_oidc::{IssuerConfig, Providers};
use ajar_testkit::TestApp;
use ajar_testkit::idp::{CLIENT_ID, TestIdp};
use anyhow::bail;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Flags of `ajar-bench oidc`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Requests per case.
    #[arg(long, default_value_t = 10_000)]
    requests: usize,
    /// Concurrent workers.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let idp = TestIdp::start(ajar_testkit::START.parse()?).await;
    let config = IssuerConfig::new(idp.issuer.clone(), CLIENT_ID);
    let app =
        TestApp::spawn_with(move |s| s.with_oidc(Providers::new(vec![config]).unwrap_or_default()))
            .await;
    // Every token's groups hold a role, so resolving them reads assignments.
    let _: serde_json::Value = app
        .admin
        .put(
            "/api/v1/roleAssignments/ops",
            &serde_json::json!({"principal":"group:ops","roleDefinition":"SecurityReader",
                                "scope":"/subscriptions/s1"}),
        )
        .await?;
    let mint = |kid: &str| -> Vec<String> {
        (0..args.requests)
            .map(|i| idp.sign_with(kid, &idp.claims(&format!("user{i}"), &["ops", "dev"])))
            .collect()
    };
    let cases = [
        ("distinct RS256 JWTs (verify every request)", mint("rsa-1")),
        ("distinct ES256 JWTs (verify every request)", mint("ec-1")),
        (
            "one RS256 JWT (cached after the first)",
            vec![idp.token(&idp.claims("alice", &["ops"])); args.requests],
        ),
        (
            "one API token (cached after the first)",
            vec![app.admin_token.clone(); args.requests],
        ),
    ];
    for (name, tokens) in cases {
        measure(&app.base, name, tokens, args.concurrency).await?;
    }
    Ok(())
}

async fn measure(
    base: &str,
    name: &str,
    tokens: Vec<String>,
    concurrency: usize,
) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .build()?;
    let tokens = Arc::new(tokens);
    let next = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (http, tokens, next, errors) =
            (http.clone(), tokens.clone(), next.clone(), errors.clone());
        let url = format!("{base}/api/v1/me");
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(token) = tokens.get(i) else {
                    break latencies;
                };
                let t0 = Instant::now();
                match http.get(&url).bearer_auth(token).send().await {
                    Ok(r) if r.status().is_success() => {}
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                latencies.push(t0.elapsed());
            }
        }));
    }
    let mut latencies: Vec<Duration> = Vec::with_capacity(tokens.len());
    for w in workers {
        latencies.extend(w.await?);
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let pct = |p: f64| crate::percentile_ms(&latencies, p);
    println!(
        "{name}: {} requests in {:.2} s = {:.0}/s; latency p50 {:.2} ms, p99 {:.2} ms; errors {}",
        latencies.len(),
        elapsed.as_secs_f64(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.99),
        errors.load(Ordering::Relaxed)
    );
    if errors.load(Ordering::Relaxed) > 0 {
        bail!("some requests failed");
    }
    Ok(())
}
