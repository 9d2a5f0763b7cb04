//! The fault-injection suite: real `ajar serve` and `ajar agent` processes, nftables in network
//! namespaces, and one fault per scenario while a grant is open — the server or the agent
//! killed with SIGKILL, the PostgreSQL store restarted, the SQLite disk full, the network cut
//! between agent and server, the control plane's clock set back or forward. For each it
//! measures when the grant really closed against its end time, checks that no request or
//! activity record was lost or duplicated, and that the service recovered by itself (a new
//! grant opens). It prints a table of fault → outcome → overshoot and fails if any grant
//! outlived its end by a second or more. Needs root (`bench/faults.sh`).

use ajar_api::Client;
use ajar_testkit::netlab::{
    self, Lab, Node, POLICY, ServerOptions, initiate, now, try_initiate, wait_applied, world,
};
use anyhow::{Context, bail};
use jiff::Timestamp;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Flags of `ajar-bench faults`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The `ajar` binary to run.
    #[arg(long, default_value = "target/release/ajar")]
    ajar: PathBuf,
    /// Seconds each grant lasts.
    #[arg(long, default_value_t = 4)]
    window: i64,
    /// Run only the faults whose names contain this.
    #[arg(long)]
    only: Option<String>,
}

/// The most a grant may outlive its end.
const TOLERANCE: f64 = 1.0;

/// One scenario's result.
struct Row {
    fault: &'static str,
    outcome: String,
    overshoot: f64,
    ok: bool,
}

/// Runs blocking lab work (process spawns, probes) off the async threads. A panic in it (the
/// lab's helpers fail loudly) is passed on as is.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

fn end_of(request: &Value) -> anyhow::Result<Timestamp> {
    netlab::end_of(request).context("the answer has no end time")
}

/// Probes c1 → machine:22 until it answers `want` (0 open, 1 closed); how long it took.
async fn until(lab: &std::sync::Arc<Lab>, want: i32) -> i32 {
    let l = lab.clone();
    let host = lab.v4(Node::Host);
    blocking(move || l.probe_until(Node::C1, "tcp", &host, 22, want)).await
}

/// Opens a grant for c1, waits until it is open, runs `fault`, waits until the grant is
/// closed; answers the request and the overshoot (seconds past its end; negative: early).
async fn grant_through(
    lab: &mut std::sync::Arc<Lab>,
    admin: &Client,
    window: i64,
    fault: impl FnOnce(&mut Lab),
) -> anyhow::Result<(Value, f64)> {
    let request = initiate(admin, 22, &lab.v4(Node::C1), window).await;
    let end = end_of(&request)?;
    if until(lab, 0).await != 0 {
        bail!("the grant never opened");
    }
    fault(std::sync::Arc::get_mut(lab).context("the lab is shared")?);
    if until(lab, 1).await != 1 {
        bail!("the grant never closed");
    }
    let overshoot = now().duration_since(end).as_secs_f64();
    Ok((request, overshoot))
}

/// After the fault is lifted: the agent is live again, a new grant opens for c1 and closes,
/// every request made is stored exactly once, and the activity log verifies.
async fn recovered(
    lab: &std::sync::Arc<Lab>,
    admin: &Client,
    made: &[Value],
) -> anyhow::Result<String> {
    let (agent_id, _) = lab.agent.clone().context("no agent")?;
    // Writes may fail for a moment while the service comes back: retry for up to 20 s. The
    // window is long enough for an agent backing off (up to 10 s) to come back within it.
    let mut fresh = None;
    for _ in 0..100 {
        match try_initiate(admin, 22, &lab.v4(Node::C1), 30).await {
            Ok(v) => {
                fresh = Some(v);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    let fresh = fresh.context("the server never accepted a new request")?;
    wait_applied(admin, &agent_id).await;
    if until(lab, 0).await != 0 {
        bail!("a new grant did not open");
    }
    let mut ids: Vec<String> = made
        .iter()
        .chain(std::iter::once(&fresh))
        .filter_map(|r| r["id"].as_str().map(str::to_owned))
        .collect();
    ids.sort();
    let list: Vec<Value> = admin
        .get_all(&format!("/api/v1{POLICY}/requests?top=1000"), 1_000)
        .await
        .context("listing requests")?;
    let mut stored: Vec<String> = list
        .iter()
        .filter_map(|r| r["id"].as_str().map(str::to_owned))
        .collect();
    stored.sort();
    let recorded: Vec<Value> = admin
        .get_all(
            "/api/v1/activity?action=ajar.jit/policies/initiate/action&top=1000",
            1_000,
        )
        .await
        .context("listing initiate records")?;
    for id in &ids {
        let n = stored.iter().filter(|s| *s == id).count();
        if n != 1 {
            bail!("request {id} is stored {n} times");
        }
        let r = recorded
            .iter()
            .filter(|r| r["requestId"].as_str() == Some(id))
            .count();
        if r != 1 {
            bail!("request {id} has {r} initiate records");
        }
    }
    if recorded.len() != stored.len() {
        bail!(
            "{} initiate records for {} stored requests",
            recorded.len(),
            stored.len()
        );
    }
    let verify: Value = admin.get("/api/v1/activity/verify").await?;
    if verify["ok"] != true {
        bail!("the activity log does not verify: {verify}");
    }
    Ok(format!(
        "recovered; {} requests stored and recorded once each; {} activity records verify",
        ids.len(),
        verify["records"]
    ))
}

fn row(fault: &'static str, result: anyhow::Result<(String, f64)>) -> Row {
    match result {
        Ok((outcome, overshoot)) => Row {
            fault,
            ok: overshoot < TOLERANCE,
            outcome,
            overshoot,
        },
        Err(e) => Row {
            fault,
            outcome: format!("FAILED: {e:#}"),
            overshoot: f64::NAN,
            ok: false,
        },
    }
}

async fn lab_with(args: &Args, options: ServerOptions) -> (std::sync::Arc<Lab>, Client) {
    let ajar = args.ajar.clone();
    let mut lab = blocking(move || Lab::with_server(ajar, options)).await;
    let admin = world(&mut lab, "host", false).await;
    (std::sync::Arc::new(lab), admin)
}

async fn server_killed(args: &Args) -> anyhow::Result<(String, f64)> {
    let (mut lab, admin) = lab_with(args, ServerOptions::default()).await;
    let (req, overshoot) = grant_through(&mut lab, &admin, args.window, Lab::kill_server).await?;
    std::sync::Arc::get_mut(&mut lab)
        .context("shared")?
        .restart_server();
    recovered(&lab, &admin, &[req])
        .await
        .map(|o| (o, overshoot))
}

async fn agent_killed(args: &Args) -> anyhow::Result<(String, f64)> {
    let (mut lab, admin) = lab_with(args, ServerOptions::default()).await;
    let (req, overshoot) = grant_through(&mut lab, &admin, args.window, Lab::kill_agents).await?;
    let l = std::sync::Arc::get_mut(&mut lab).context("shared")?;
    let (_, token) = l.agent.clone().context("no agent")?;
    l.start_agent(Node::Host, &token);
    recovered(&lab, &admin, &[req])
        .await
        .map(|o| (o, overshoot))
}

async fn network_cut(args: &Args) -> anyhow::Result<(String, f64)> {
    let (mut lab, admin) = lab_with(args, ServerOptions::default()).await;
    let (req, overshoot) =
        grant_through(&mut lab, &admin, args.window, |l| l.management_link(false)).await?;
    lab.management_link(true);
    recovered(&lab, &admin, &[req])
        .await
        .map(|o| (o, overshoot))
}

async fn store_restarted(args: &Args) -> anyhow::Result<(String, f64)> {
    let cluster = std::sync::Arc::new(blocking(ajar_testkit::postgres::Cluster::start).await);
    let url = {
        let c = cluster.clone();
        blocking(move || c.database()).await
    };
    let options = ServerOptions {
        args: vec!["--database-url".into(), url],
        ..ServerOptions::default()
    };
    let (mut lab, admin) = lab_with(args, options).await;
    let c = cluster.clone();
    let (req, overshoot) =
        grant_through(&mut lab, &admin, args.window, move |_| c.restart()).await?;
    recovered(&lab, &admin, &[req])
        .await
        .map(|o| (o, overshoot))
}

/// A small tmpfs for the SQLite directory, unmounted on drop.
struct SmallDisk(tempfile::TempDir);

impl SmallDisk {
    fn new(megabytes: u32) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(dir.path())
            .status()?
            .success();
        if !ok {
            bail!("cannot mount a tmpfs (needs root)");
        }
        Ok(Self(dir))
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    /// Fills the disk to the last byte.
    fn fill(&self) {
        let _ = std::process::Command::new("dd")
            .args(["if=/dev/zero", "bs=1M", "status=none"])
            .arg(format!("of={}", self.path().join("filler").display()))
            .status();
    }

    fn free(&self) {
        let _ = std::fs::remove_file(self.path().join("filler"));
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.0.path())
            .status();
    }
}

async fn disk_full(args: &Args) -> anyhow::Result<(String, f64)> {
    let disk = SmallDisk::new(64)?;
    let options = ServerOptions {
        data_dir: Some(disk.path().join("data")),
        // One principal fills the disk with hundreds of grants.
        args: vec!["--max-live-grants".into(), "0".into()],
        ..ServerOptions::default()
    };
    let (mut lab, admin) = lab_with(args, options).await;
    let (req, overshoot) = grant_through(&mut lab, &admin, args.window, |_| disk.fill()).await?;
    // While full: every write is either stored (the WAL may still have room) or refused with a
    // retryable 503; the first refusals come once the log needs more space.
    let (mut stored, mut refused) = (Vec::new(), 0);
    for i in 0..400u32 {
        let body = serde_json::json!({"virtualMachines":[{"id":ajar_testkit::netlab::VM,"ports":[
            {"number":22,"duration":"PT10M",
             "allowedSourceAddressPrefix":format!("10.77.{}.{}", i / 250, i % 250)}]}]});
        match admin
            .post::<Value, _>(&format!("/api/v1{POLICY}/initiate"), &body)
            .await
        {
            Err(e) if e.status() == Some(503) => {
                refused += 1;
                if refused >= 3 {
                    break;
                }
            }
            Err(e) => bail!("a write on a full disk answered {e}, not 503"),
            Ok(v) => stored.push(v),
        }
    }
    let _: Value = admin
        .get(&format!("/api/v1{POLICY}"))
        .await
        .context("reads fail on a full disk")?;
    if !std::sync::Arc::get_mut(&mut lab)
        .context("shared")?
        .server_running()
    {
        bail!("the server died on a full disk");
    }
    disk.free();
    let mut made = vec![req];
    let acknowledged = stored.len();
    made.extend(stored);
    let summary = recovered(&lab, &admin, &made).await?;
    drop(lab);
    Ok((
        format!(
            "while full: {acknowledged} writes stored, then {refused} refused with 503, reads \
             served; {summary}"
        ),
        overshoot,
    ))
}

/// A control plane under libfaketime whose offset the scenario sets by writing a file.
async fn clock_jump(args: &Args, offset: &'static str) -> anyhow::Result<(String, f64)> {
    let lib = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
    if !Path::new(lib).exists() {
        bail!("libfaketime is missing (Debian package faketime)");
    }
    let dir = tempfile::tempdir()?;
    let spec = dir.path().join("offset");
    std::fs::write(&spec, "+0\n")?;
    let options = ServerOptions {
        env: vec![
            ("LD_PRELOAD".into(), lib.into()),
            ("FAKETIME_TIMESTAMP_FILE".into(), spec.display().to_string()),
            ("FAKETIME_NO_CACHE".into(), "1".into()),
            ("DONT_FAKE_MONOTONIC".into(), "1".into()),
        ],
        ..ServerOptions::default()
    };
    let (lab, admin) = lab_with(args, options).await;
    let request = initiate(&admin, 22, &lab.v4(Node::C1), args.window).await;
    let end = end_of(&request)?;
    if until(&lab, 0).await != 0 {
        bail!("the grant never opened");
    }
    std::fs::write(&spec, format!("{offset}\n"))?;
    // Something else changes, so the agent reads a new desired state stamped by the jumped
    // clock while the grant is open.
    // A clock that jumps forward makes the agent look silent (last heard from an hour ago, by
    // the new clock) until its next poll: requests are refused until then, fail-closed.
    let asked = std::time::Instant::now();
    let other = loop {
        match try_initiate(&admin, 53, &lab.v4(Node::C2), 5400).await {
            Ok(answer) => break answer,
            Err(e) if e.status() == Some(409) && asked.elapsed() < Duration::from_secs(120) => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => bail!("the second request was refused: {e}"),
        }
    };
    if until(&lab, 1).await != 1 {
        bail!("the grant never closed");
    }
    let overshoot = now().duration_since(end).as_secs_f64();
    std::fs::write(&spec, "+0\n")?;
    recovered(&lab, &admin, &[request, other])
        .await
        .map(|o| (o, overshoot))
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let ajar = std::fs::canonicalize(&args.ajar)
        .with_context(|| format!("no ajar binary at {}", args.ajar.display()))?;
    let args = Args { ajar, ..args };
    let wanted = |name: &str| args.only.as_deref().is_none_or(|o| name.contains(o));
    let mut rows = Vec::new();
    macro_rules! scenario {
        ($name:literal, $f:expr) => {
            if wanted($name) {
                eprintln!("faults: {}", $name);
                rows.push(row($name, $f.await));
            }
        };
    }
    scenario!("server killed (SIGKILL)", server_killed(&args));
    scenario!("agent killed (SIGKILL)", agent_killed(&args));
    scenario!("network cut agent-server", network_cut(&args));
    scenario!("store restarted (PostgreSQL)", store_restarted(&args));
    scenario!("disk full (SQLite dir)", disk_full(&args));
    scenario!("clock set back 1 h", clock_jump(&args, "-1h"));
    scenario!("clock set forward 1 h", clock_jump(&args, "+1h"));
    println!("{:<30} {:>10}  outcome", "fault", "overshoot");
    let mut worst = f64::NEG_INFINITY;
    for r in &rows {
        worst = worst.max(r.overshoot);
        println!(
            "{:<30} {:>9.2}s  {}{}",
            r.fault,
            r.overshoot,
            if r.ok { "" } else { "NOT OK: " },
            r.outcome
        );
    }
    if worst.is_finite() {
        println!("worst overshoot past a grant's end: {worst:.2} s (limit {TOLERANCE:.0} s)");
    } else {
        println!("no grant was measured");
    }
    if rows.iter().any(|r| !r.ok) {
        bail!("a fault was not survived");
    }
    Ok(())
}
