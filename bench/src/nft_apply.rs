//! Applying a desired state of many grants through the agent's own enforcement code (building
//! the ruleset, `nft -f -`, keeping what opened and closed) to the real nftables in a network
//! namespace: the first apply, then one grant added and one grant removed on top. After every
//! step the kernel's table is read back and must hold exactly the expected elements, each
//! grant with its kernel timeout, so no speed is reported for a wrong result.

use ajar_agent::firewall::{Firewall, Nft};
use ajar_agent::ruleset::Ruleset;
use ajar_agent::sync::Enforcer;
use ajar_core::agent::AgentMode;
use ajar_testkit::netlab::{KernelTable, LargeState, Namespace, now};
use anyhow::{Context, bail, ensure};
use std::process::Command;
use std::time::{Duration, Instant};

/// Flags of `ajar-bench nft-apply`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Grants in the desired state.
    #[arg(long, default_value_t = 10_000)]
    grants: usize,
    /// Machines they are spread over (one address each).
    #[arg(long, default_value_t = 1_000)]
    machines: usize,
    /// Protected TCP ports per machine (at most 8).
    #[arg(long, default_value_t = 5)]
    ports: usize,
    /// Times to run the whole sequence (first apply, add one, remove one).
    #[arg(long, default_value_t = 5)]
    repetitions: usize,
    /// `host` (allow sets) or `gateway` (DNAT maps).
    #[arg(long, default_value = "host")]
    mode: String,
    /// Set when the benchmark runs itself inside the namespace it made.
    #[arg(long, hide = true)]
    inside: bool,
}

/// Makes a namespace and runs the measurement inside it.
pub fn run(args: Args) -> anyhow::Result<()> {
    if args.inside {
        return inside(&args);
    }
    let ns = Namespace::new("bn");
    let exe = std::env::current_exe()?;
    let exe = exe.to_str().context("the benchmark's path")?;
    let status = ns
        .command(&[
            exe,
            "nft-apply",
            "--inside",
            "--grants",
            &args.grants.to_string(),
            "--machines",
            &args.machines.to_string(),
            "--ports",
            &args.ports.to_string(),
            "--repetitions",
            &args.repetitions.to_string(),
            "--mode",
            &args.mode,
        ])
        .status()?;
    if !status.success() {
        bail!("the measurement failed ({status})");
    }
    Ok(())
}

fn read_back() -> anyhow::Result<KernelTable> {
    let read = now();
    let out = Command::new("nft")
        .args(["-j", "list", "table", "inet", "ajar"])
        .output()?;
    ensure!(
        out.status.success(),
        "nft list: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(KernelTable::parse(
        &String::from_utf8_lossy(&out.stdout),
        read,
    ))
}

/// Applies `want` and checks the kernel and the report; answers how long the apply took.
fn step(
    enforcer: &mut Enforcer,
    want: &LargeState,
    revision: i64,
    opened: usize,
    closed: usize,
) -> anyhow::Result<Duration> {
    let state = want.desired(now(), revision);
    let started = Instant::now();
    enforcer
        .apply(&state, Duration::ZERO)
        .map_err(anyhow::Error::msg)?;
    let took = started.elapsed();
    let report = enforcer.report();
    ensure!(
        report.opened.len() == opened && report.closed.len() == closed,
        "revision {revision}: reported {} opened and {} closed, want {opened} and {closed}",
        report.opened.len(),
        report.closed.len()
    );
    enforcer.report_sent();
    let table = read_back()?;
    want.check(&table)
        .map_err(|e| anyhow::anyhow!("revision {revision}: the kernel's table is wrong: {e}"))?;
    Ok(took)
}

fn summary(name: &str, mut d: Vec<Duration>) -> String {
    d.sort();
    let ms = |x: Duration| x.as_secs_f64() * 1000.0;
    format!(
        "{name:<28} n={} p50 {:>8.1} ms   max {:>8.1} ms",
        d.len(),
        ms(d[(d.len() - 1) / 2]),
        ms(d[d.len() - 1])
    )
}

fn inside(args: &Args) -> anyhow::Result<()> {
    let mode = match args.mode.as_str() {
        "host" => AgentMode::Host,
        "gateway" => AgentMode::Gateway,
        other => bail!("--mode must be host or gateway, not {other:?}"),
    };
    ensure!(args.grants >= 2, "--grants must be at least 2");
    let base = LargeState::new(mode, args.grants, args.machines, args.ports);
    let mut added = base.clone();
    added.grants.insert(args.grants);
    let mut removed = added.clone();
    removed.grants.remove(&(args.grants / 2));
    println!(
        "{} grants over {} machines ({} ports each), {:?} mode, {} repetitions",
        args.grants, args.machines, args.ports, mode, args.repetitions
    );
    let (mut first, mut add, mut remove, mut build) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..args.repetitions {
        Nft::default().uninstall().map_err(anyhow::Error::msg)?;
        // The pure part alone: the ruleset and its sets, as the first apply builds them.
        let state = base.desired(now(), 1);
        let started = Instant::now();
        let ruleset = Ruleset::from_desired(&state, Duration::ZERO);
        let script = ruleset.render();
        build.push(started.elapsed());
        drop(script);

        let mut enforcer =
            Enforcer::new(Box::new(Nft::default()), "conntrack".into(), "bench".into());
        first.push(step(&mut enforcer, &base, 1, args.grants, 0)?);
        add.push(step(&mut enforcer, &added, 2, 1, 0)?);
        remove.push(step(&mut enforcer, &removed, 3, 0, 1)?);
    }
    Nft::default().uninstall().map_err(anyhow::Error::msg)?;
    println!("{}", summary("first apply", first));
    println!("{}", summary("then add one grant", add));
    println!("{}", summary("then remove one grant", remove));
    println!("{}", summary("(building the script alone)", build));
    println!(
        "verified after every step: the kernel held exactly the expected {} grant elements \
         (±1) and {} protected ones, each grant with its timeout",
        args.grants,
        base.expected_protected().len()
    );
    Ok(())
}
