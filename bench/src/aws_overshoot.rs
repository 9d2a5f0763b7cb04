//! `ajar-bench aws-overshoot`: how long a grant's security-group rule outlives its end when
//! `ajar agent --mode aws` enforces it, against moto (an EC2 API emulator). Real `ajar serve`
//! and agent processes; a prober reads the group's rules every 50 ms. Scenarios: one agent;
//! two agents with one token, one killed mid-grant; the only agent killed mid-grant and
//! started again after N seconds. Prints a table and fails if a scenario with an agent running
//! at the end overshoots by a second or more.

use ajar_api::Client;
use ajar_aws::creds::{Chain, Environment};
use ajar_aws::ec2::{Ec2, Params, Select};
use ajar_testkit::moto::Moto;
use ajar_testkit::netlab::now;
use anyhow::{Context, bail};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

/// Flags of `ajar-bench aws-overshoot`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The `ajar` binary to run.
    #[arg(long, default_value = "target/release/ajar")]
    ajar: PathBuf,
    /// Seconds each grant lasts.
    #[arg(long, default_value_t = 4)]
    window: i64,
    /// Seconds the only agent stays down in the restart scenarios.
    #[arg(long, value_delimiter = ',', default_value = "5,30")]
    down: Vec<u64>,
}

const REGION: &str = "eu-west-1";
const SCOPE: &str = "/subscriptions/bench/resourceGroups/aws";
const POLICY: &str = "/subscriptions/bench/resourceGroups/aws/jitNetworkAccessPolicies/p";
/// The most a rule may outlive its end while an agent runs.
const TOLERANCE: f64 = 1.0;

/// A child process killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Everything one scenario runs against.
struct World {
    _moto: Moto,
    moto_url: String,
    ec2: Arc<Ec2>,
    _server: Proc,
    _dir: tempfile::TempDir,
    url: String,
    admin: Client,
    token: String,
    machine: String,
    instance: String,
    ajar: PathBuf,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn world(args: &Args) -> anyhow::Result<World> {
    let moto = tokio::task::spawn_blocking(Moto::start)
        .await?
        .context("moto is needed (AJAR_MOTO_VENV)")?;
    let http = reqwest::Client::new();
    let env = Environment::from_vars(
        [
            ("AWS_ACCESS_KEY_ID", "bench"),
            ("AWS_SECRET_ACCESS_KEY", "bench"),
        ],
        None,
    );
    let ec2 = Arc::new(Ec2::new(
        http.clone(),
        REGION.into(),
        Some(moto.url.clone()),
        Chain::resolve(&env, http),
    )?);
    let mut p = Params::new();
    p.add("ImageId", "ami-760aaa0f")
        .add("MinCount", 1)
        .add("MaxCount", 1);
    let xml = ec2.call("RunInstances", &p).await?;
    let instance = xml
        .split("<instanceId>")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .context("no instance id")?
        .to_owned();
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let mut child = Command::new(&args.ajar)
        .args([
            "serve",
            "--log",
            "warn",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {}", args.ajar.display()))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let server = Proc(child);
    let token = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|l| l.strip_prefix("ajar bootstrap token: ").map(str::to_owned))
    })
    .await?
    .context("the server printed no token")?;
    let url = format!("http://127.0.0.1:{port}");
    let admin = Client::new(url.clone(), Some(token));
    for _ in 0..100 {
        if admin.get::<Value>("/readyz").await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let machine = format!("{SCOPE}/machines/{instance}");
    let _: Value = admin
        .put(
            &format!("/api/v1{machine}"),
            &json!({"properties":{"os":"linux","addresses":["10.0.0.9"],"labels":{"aws:instance-id":instance}}}),
        )
        .await?;
    let _: Value = admin
        .put(
            &format!("/api/v1{POLICY}"),
            &json!({"properties":{"virtualMachines":[{"id":machine,"ports":[
                {"number":22,"protocol":"TCP","allowedSourceAddressPrefix":"*","maxRequestAccessDuration":"PT3H"}]}]}}),
        )
        .await?;
    let agent: Value = admin
        .post(
            "/api/v1/agents",
            &json!({"name":"aws","mode":"aws","machines":[machine]}),
        )
        .await?;
    let token = agent["token"]
        .as_str()
        .context("no agent token")?
        .to_owned();
    Ok(World {
        moto_url: moto.url.clone(),
        _moto: moto,
        ec2,
        _server: server,
        _dir: dir,
        url,
        admin,
        token,
        machine,
        instance,
        ajar: args.ajar.clone(),
    })
}

impl World {
    fn agent(&self) -> anyhow::Result<Proc> {
        let child = Command::new(&self.ajar)
            .args([
                "agent",
                "--mode",
                "aws",
                "--log",
                "warn",
                "--wait-seconds",
                "5",
            ])
            .args(["--server", &self.url, "--token", &self.token])
            .args(["--region", REGION, "--endpoint", &self.moto_url])
            .env("AWS_ACCESS_KEY_ID", "bench")
            .env("AWS_SECRET_ACCESS_KEY", "bench")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        Ok(Proc(child))
    }

    async fn initiate(&self, window: i64) -> anyhow::Result<Timestamp> {
        let end = now()
            .checked_add(SignedDuration::from_secs(window))?
            .round(jiff::Unit::Second)?;
        let answer: Value = self
            .admin
            .post(
                &format!("/api/v1{POLICY}/initiate"),
                &json!({"virtualMachines":[{"id":self.machine,"ports":[
                    {"number":22,"endTimeUtc":end.to_string(),"allowedSourceAddressPrefix":"198.51.100.7"}]}]}),
            )
            .await?;
        answer["virtualMachines"][0]["ports"][0]["endTimeUtc"]
            .as_str()
            .context("no end time")?
            .parse()
            .context("end time")
    }

    /// Whether ajar's group on the instance holds a rule from the probe's source now.
    async fn open(&self) -> anyhow::Result<bool> {
        let instances = self
            .ec2
            .instances(&Select::Ids(vec![self.instance.clone()]))
            .await?;
        let groups: Vec<String> = instances
            .iter()
            .flat_map(|i| i.interfaces.iter().flat_map(|x| x.groups.clone()))
            .collect();
        let rules = self.ec2.rules(&groups).await?;
        Ok(rules
            .iter()
            .any(|r| !r.egress && r.cidr.map(|c| c.to_string()) == Some("198.51.100.7/32".into())))
    }

    /// Polls every 50 ms until the rule is `want`; answers when it was first seen so.
    async fn until(&self, want: bool, limit: Duration) -> anyhow::Result<Timestamp> {
        let until = tokio::time::Instant::now() + limit;
        loop {
            if self.open().await? == want {
                return Ok(now());
            }
            if tokio::time::Instant::now() > until {
                bail!(
                    "the rule was never {}",
                    if want { "added" } else { "removed" }
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Opens a grant, runs `fault` once it is open, and measures when its rule went.
async fn scenario(
    args: &Args,
    agents: usize,
    fault: impl AsyncFnOnce(&World, &mut Vec<Proc>) -> anyhow::Result<()>,
) -> anyhow::Result<f64> {
    let world = world(args).await?;
    let mut running: Vec<Proc> = (0..agents)
        .map(|_| world.agent())
        .collect::<anyhow::Result<_>>()?;
    // The agents are live once the server has heard from them.
    let mut end = None;
    for _ in 0..100 {
        match world.initiate(args.window).await {
            Ok(e) => {
                end = Some(e);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    let end = end.context("the server never accepted the request")?;
    world.until(true, Duration::from_secs(30)).await?;
    fault(&world, &mut running).await?;
    let gone = world.until(false, Duration::from_secs(120)).await?;
    Ok(gone.duration_since(end).as_secs_f64())
}

/// Runs every scenario and prints the table.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let mut rows: Vec<(String, anyhow::Result<f64>, bool)> = Vec::new();
    rows.push((
        "one agent".into(),
        scenario(&args, 1, async |_, _| Ok(())).await,
        true,
    ));
    rows.push((
        "two agents, one killed mid-grant".into(),
        scenario(&args, 2, async |_, running| {
            tokio::time::sleep(Duration::from_secs(1)).await;
            drop(running.remove(0));
            Ok(())
        })
        .await,
        true,
    ));
    for &down in &args.down {
        rows.push((
            format!("the only agent killed mid-grant, started again {down} s later"),
            scenario(&args, 1, async |world, running| {
                tokio::time::sleep(Duration::from_secs(1)).await;
                running.clear();
                tokio::time::sleep(Duration::from_secs(down)).await;
                running.push(world.agent()?);
                Ok(())
            })
            .await,
            false,
        ));
    }
    println!("| scenario | overshoot past the end |");
    println!("|---|---|");
    let mut failed = false;
    for (name, result, bounded) in &rows {
        match result {
            Ok(s) => {
                println!("| {name} | {s:.2} s |");
                failed |= *bounded && *s >= TOLERANCE;
            }
            Err(e) => {
                println!("| {name} | FAILED: {e:#} |");
                failed = true;
            }
        }
    }
    if failed {
        bail!(
            "a rule outlived its end by {TOLERANCE} s or more while an agent ran, or a scenario failed"
        );
    }
    Ok(())
}
