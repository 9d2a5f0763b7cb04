//! Open and close latency through a real agent: `ajar serve` and `ajar agent` in network
//! namespaces (the test lab), a client probing TCP 22 on the protected machine.

use ajar_testkit::netlab::{Lab, Node, POLICY, initiate, world};
use anyhow::{Context, bail};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;

/// Flags of `ajar-bench enforce`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The `ajar` binary (release build).
    #[arg(long, default_value = "target/release/ajar")]
    ajar: String,
    /// Opens to measure.
    #[arg(long, default_value_t = 200)]
    opens: usize,
    /// Closes at end time to measure (each waits for a short window to end).
    #[arg(long, default_value_t = 20)]
    closes: usize,
    /// Also open the same port with fwknop (single packet authorization) this many times, in
    /// the same namespaces, for comparison (needs fwknop-server and fwknop-client).
    #[arg(long, default_value_t = 0)]
    fwknop: usize,
}

/// A client-side prober: on "open" it connects every millisecond until one succeeds, on "shut"
/// until one is refused, and answers the wall-clock time it happened.
struct Prober {
    child: std::process::Child,
    out: BufReader<std::process::ChildStdout>,
}

impl Prober {
    fn start(lab: &Lab) -> anyhow::Result<Prober> {
        let mut child = lab
            .command(
                Node::C1,
                &[
                    "python3",
                    "-u",
                    &ajar_testkit::netlab::probe_script(),
                    "race",
                    &lab.v4(Node::Host),
                    "22",
                ],
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let out = BufReader::new(child.stdout.take().context("prober stdout")?);
        Ok(Prober { child, out })
    }

    /// Waits until the port is open (`true`) or closed (`false`); returns when, in Unix seconds.
    fn until(&mut self, open: bool) -> anyhow::Result<f64> {
        let stdin = self.child.stdin.as_mut().context("prober stdin")?;
        writeln!(stdin, "{}", if open { "open" } else { "shut" })?;
        let mut line = String::new();
        self.out.read_line(&mut line)?;
        line.trim().parse().context("prober answer")
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unix(t: jiff::Timestamp) -> f64 {
    t.as_nanosecond() as f64 / 1e9
}

fn summary(name: &str, mut ms: Vec<f64>) -> String {
    ms.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        ms[((ms.len() as f64 * p).ceil() as usize)
            .saturating_sub(1)
            .min(ms.len() - 1)]
    };
    format!(
        "{name}: n={} p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms.len(),
        pct(0.5),
        pct(0.9),
        pct(0.99),
        pct(1.0)
    )
}

/// Runs the benchmark and prints one line per measurement.
pub async fn run(args: Args) -> anyhow::Result<()> {
    if args.opens == 0 || args.closes == 0 {
        bail!("--opens and --closes must be positive");
    }
    let mut lab = Lab::new(&args.ajar);
    let admin = world(&mut lab, "host", false).await;
    let mut prober = Prober::start(&lab)?;
    let source = lab.v4(Node::C1);

    let mut opens = Vec::with_capacity(args.opens + 1);
    // One more than asked: the first, which warms caches on both sides, is not counted.
    for _ in 0..=args.opens {
        let req: Value = initiate(&admin, 22, &source, 600).await;
        let returned = unix(ajar_testkit::netlab::now());
        let open = tokio::task::block_in_place(|| prober.until(true))?;
        if std::env::var_os("AJAR_BENCH_TRACE").is_some() {
            eprintln!("returned {returned:.6} open {open:.6}");
        }
        opens.push((open - returned) * 1000.0);
        let id = req["id"].as_str().context("request id")?;
        let _: Value = admin
            .post(&format!("/api/v1{POLICY}/requests/{id}/revoke"), &json!({}))
            .await?;
        tokio::task::block_in_place(|| prober.until(false))?;
        // Let the agent finish its report and wait in its long poll again, as it does when a
        // request arrives in normal use.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    opens.remove(0);
    println!(
        "{}",
        summary("open (initiate returned -> first connect)", opens)
    );

    let mut closes = Vec::with_capacity(args.closes);
    for _ in 0..args.closes {
        let req: Value = initiate(&admin, 22, &source, 2).await;
        let end: jiff::Timestamp = req["virtualMachines"][0]["ports"][0]["endTimeUtc"]
            .as_str()
            .context("end time")?
            .parse()?;
        tokio::task::block_in_place(|| prober.until(true))?;
        let shut = tokio::task::block_in_place(|| prober.until(false))?;
        closes.push((shut - unix(end)) * 1000.0);
    }
    println!(
        "{}",
        summary("close (end time -> first refused connect)", closes)
    );

    if args.fwknop > 0 {
        // Hand the machine over to fwknopd: no ajar agent, no ajar table.
        lab.kill_agents();
        let ajar = lab.ajar();
        lab.exec(Node::Host, &[&ajar, "agent", "--uninstall"]);
        let opens = fwknop(&lab, &mut prober, args.fwknop).await?;
        println!(
            "{}",
            summary("fwknop open (client returned -> first connect)", opens)
        );
    }
    Ok(())
}

/// Opens TCP 22 with fwknop `n` times: fwknopd in UDP-server mode on the machine, an iptables
/// reject for the port, and the client sending one SPA packet from c1 each time.
async fn fwknop(lab: &Lab, prober: &mut Prober, n: usize) -> anyhow::Result<Vec<f64>> {
    let dir = tempfile::tempdir()?;
    let key = "ajar-bench-fwknop-rijndael-key32";
    let hmac = "ajar-bench-fwknop-hmac-key-of-sixty-four-bytes-for-the-sha256-sum";
    let conf = dir.path().join("fwknopd.conf");
    let access = dir.path().join("access.conf");
    std::fs::write(
        &conf,
        format!(
            "PCAP_INTF aj{}l3b;\nENABLE_UDP_SERVER Y;\nUDPSERV_PORT 62201;\nFWKNOP_RUN_DIR {};\n",
            lab.id,
            dir.path().display()
        ),
    )?;
    std::fs::write(
        &access,
        format!("SOURCE ANY\nKEY {key}\nHMAC_KEY {hmac}\nOPEN_PORTS tcp/22\nFW_ACCESS_TIMEOUT 1\n"),
    )?;
    lab.exec(
        Node::Host,
        &[
            "iptables",
            "-A",
            "INPUT",
            "-p",
            "tcp",
            "--dport",
            "22",
            "-j",
            "REJECT",
            "--reject-with",
            "tcp-reset",
        ],
    );
    let path = |p: &std::path::Path| p.display().to_string();
    let mut daemon = lab
        .command(
            Node::Host,
            &[
                "fwknopd",
                "-f",
                "-c",
                &path(&conf),
                "-a",
                &path(&access),
                "-p",
                &path(&dir.path().join("fwknopd.pid")),
                "-d",
                &path(&dir.path().join("digest.cache")),
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let rc = path(&dir.path().join("fwknoprc"));
    let (source, host) = (lab.v4(Node::C1), lab.v4(Node::Host));
    let mut opens = Vec::with_capacity(n + 1);
    let mut result = Ok(());
    // As for ajar, the first (warm-up) open is not counted.
    for _ in 0..=n {
        let out = lab
            .command(
                Node::C1,
                &[
                    "fwknop",
                    "-A",
                    "tcp/22",
                    "-a",
                    &source,
                    "-D",
                    &host,
                    "--key-rijndael",
                    key,
                    "--key-hmac",
                    hmac,
                    "--use-hmac",
                    "--no-save-args",
                    "--rc-file",
                    &rc,
                ],
            )
            .output()?;
        let returned = unix(ajar_testkit::netlab::now());
        if !out.status.success() {
            result = Err(anyhow::anyhow!(
                "fwknop: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
            break;
        }
        let open = tokio::task::block_in_place(|| prober.until(true))?;
        opens.push((open - returned) * 1000.0);
        tokio::task::block_in_place(|| prober.until(false))?;
    }
    let _ = daemon.kill();
    let _ = daemon.wait();
    result.map(|()| opens.split_off(1))
}
