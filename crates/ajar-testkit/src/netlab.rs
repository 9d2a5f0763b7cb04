//! A small network of namespaces for end-to-end enforcement tests:
//!
//! ```text
//!   c1 ──┐                 ┌── host (machine; TCP 22 and UDP 53 echo)
//!        ├── gw (router) ──┤
//!   c2 ──┘        │
//!               root (test process, `ajar serve` on the management link)
//! ```
//!
//! Addresses come from 198.18.0.0/15 (reserved for benchmarking) and fd18::/16, one /24 per
//! lab, so labs of tests running at once do not meet. Everything is removed on drop.

use ajar_api::Client;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

static NEXT: AtomicU8 = AtomicU8::new(0);

/// A running lab.
pub struct Lab {
    /// Subnet number: addresses are 198.18.ID.x.
    pub id: u8,
    /// The `ajar` binary to run.
    ajar: std::path::PathBuf,
    /// Children to kill on drop (listeners, agents, server).
    children: Vec<Child>,
    /// Temporary directory of the server's data.
    _data: tempfile::TempDir,
    /// The server's management URL.
    pub url: String,
    /// The bootstrap admin token.
    pub token: String,
    server: Option<Child>,
    options: ServerOptions,
    /// The agent [`world`] registered: its id and token.
    pub agent: Option<(String, String)>,
}

/// How the lab's `ajar serve` runs.
#[derive(Debug, Default, Clone)]
pub struct ServerOptions {
    /// Extra arguments (e.g. `--database-url`).
    pub args: Vec<String>,
    /// Extra environment (e.g. a fake clock through `LD_PRELOAD`).
    pub env: Vec<(String, String)>,
    /// The SQLite data directory, instead of a fresh temporary one.
    pub data_dir: Option<std::path::PathBuf>,
}

/// The lab's members.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Node {
    /// First client.
    C1,
    /// Second client (never granted).
    C2,
    /// The protected machine.
    Host,
    /// The router, and in gateway tests the gateway.
    Gw,
}

#[allow(
    clippy::disallowed_methods,
    reason = "waits for a child process to come up"
)]
fn pause(d: Duration) {
    std::thread::sleep(d);
}

fn run(args: &[&str]) -> Output {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The traffic probe script (see its docstring).
pub fn probe_script() -> String {
    format!("{}/netlab/probe.py", env!("CARGO_MANIFEST_DIR"))
}

impl Lab {
    /// Builds the namespaces and links, and starts `ajar serve` (from the binary `ajar`) on the
    /// management address.
    pub fn new(ajar: impl Into<std::path::PathBuf>) -> Lab {
        Self::with_server(ajar, ServerOptions::default())
    }

    /// Like [`Lab::new`], with the server run as `options` say.
    pub fn with_server(ajar: impl Into<std::path::PathBuf>, options: ServerOptions) -> Lab {
        assert!(
            Command::new("id")
                .arg("-u")
                .output()
                .map(|o| o.stdout == b"0\n")
                .unwrap_or(false),
            "the enforcement tests need root (CAP_NET_ADMIN) to create network namespaces"
        );
        let id =
            100 + (std::process::id() % 25) as u8 * 6 + NEXT.fetch_add(1, Ordering::Relaxed) % 6;
        let mut lab = Lab {
            id,
            ajar: ajar.into(),
            children: Vec::new(),
            _data: tempfile::tempdir().unwrap(),
            url: String::new(),
            token: String::new(),
            server: None,
            options,
            agent: None,
        };
        lab.teardown();
        for n in [Node::C1, Node::C2, Node::Host, Node::Gw] {
            run(&["ip", "netns", "add", &lab.ns(n)]);
            lab.exec(n, &["ip", "link", "set", "lo", "up"]);
        }
        let gw = lab.ns(Node::Gw);
        for (i, n) in [(1u8, Node::C1), (2, Node::C2), (3, Node::Host)] {
            let (a, b) = (format!("aj{id}l{i}a"), format!("aj{id}l{i}b"));
            run(&[
                "ip",
                "link",
                "add",
                &a,
                "netns",
                &gw,
                "type",
                "veth",
                "peer",
                "name",
                &b,
                "netns",
                &lab.ns(n),
            ]);
            let base = (i - 1) * 4;
            lab.exec(
                Node::Gw,
                &[
                    "ip",
                    "addr",
                    "add",
                    &format!("198.18.{id}.{}/30", base + 1),
                    "dev",
                    &a,
                ],
            );
            lab.exec(
                Node::Gw,
                &[
                    "ip",
                    "-6",
                    "addr",
                    "add",
                    &format!("fd18:{id}:{i}::1/64"),
                    "dev",
                    &a,
                    "nodad",
                ],
            );
            lab.exec(Node::Gw, &["ip", "link", "set", &a, "up"]);
            lab.exec(
                n,
                &[
                    "ip",
                    "addr",
                    "add",
                    &format!("198.18.{id}.{}/30", base + 2),
                    "dev",
                    &b,
                ],
            );
            lab.exec(
                n,
                &[
                    "ip",
                    "-6",
                    "addr",
                    "add",
                    &format!("fd18:{id}:{i}::2/64"),
                    "dev",
                    &b,
                    "nodad",
                ],
            );
            lab.exec(n, &["ip", "link", "set", &b, "up"]);
            lab.exec(
                n,
                &[
                    "ip",
                    "route",
                    "add",
                    "default",
                    "via",
                    &format!("198.18.{id}.{}", base + 1),
                ],
            );
            lab.exec(
                n,
                &[
                    "ip",
                    "-6",
                    "route",
                    "add",
                    "default",
                    "via",
                    &format!("fd18:{id}:{i}::1"),
                ],
            );
        }
        // Management link: root <-> gw; the gateway routes the other nodes' traffic to root.
        let (m_root, m_gw) = (format!("aj{id}m"), format!("aj{id}mg"));
        run(&[
            "ip", "link", "add", &m_root, "type", "veth", "peer", "name", &m_gw, "netns", &gw,
        ]);
        run(&[
            "ip",
            "addr",
            "add",
            &format!("198.18.{id}.17/30"),
            "dev",
            &m_root,
        ]);
        run(&["ip", "link", "set", &m_root, "up"]);
        run(&[
            "ip",
            "route",
            "add",
            &format!("198.18.{id}.0/24"),
            "via",
            &format!("198.18.{id}.18"),
        ]);
        lab.exec(
            Node::Gw,
            &[
                "ip",
                "addr",
                "add",
                &format!("198.18.{id}.18/30"),
                "dev",
                &m_gw,
            ],
        );
        lab.exec(Node::Gw, &["ip", "link", "set", &m_gw, "up"]);
        lab.exec(
            Node::Gw,
            &[
                "ip",
                "route",
                "add",
                "default",
                "via",
                &format!("198.18.{id}.17"),
            ],
        );
        for sysctl in [
            "net.ipv4.ip_forward=1",
            "net.ipv6.conf.all.forwarding=1",
            "net.ipv4.conf.all.rp_filter=0",
        ] {
            lab.exec(Node::Gw, &["sysctl", "-q", "-w", sysctl]);
        }
        // The machine's echo listeners.
        for addr in [lab.v4(Node::Host), lab.v6(Node::Host)] {
            let mut child = lab
                .command(
                    Node::Host,
                    &["python3", "-u", &probe_script(), "serve", &addr, "22", "53"],
                )
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let mut line = String::new();
            std::io::BufRead::read_line(
                &mut std::io::BufReader::new(child.stdout.take().unwrap()),
                &mut line,
            )
            .unwrap();
            assert_eq!(line.trim(), "ready");
            lab.children.push(child);
        }
        // Resolve neighbours on every path now, so a first probe does not lose its SYN to
        // neighbour discovery.
        for n in [Node::C1, Node::C2] {
            for addr in [lab.v4(Node::Host), lab.v6(Node::Host)] {
                assert_eq!(
                    lab.probe_until(n, "tcp", &addr, 22, 0),
                    0,
                    "{n:?} cannot reach {addr}"
                );
            }
        }
        lab.start_server();
        lab
    }

    fn start_server(&mut self) {
        let listen = format!("198.18.{}.17:8600", self.id);
        let data = self
            .options
            .data_dir
            .clone()
            .unwrap_or_else(|| self._data.path().to_owned());
        let mut child = Command::new(&self.ajar)
            .args(["serve", "--data-dir"])
            .arg(data)
            .args(["--listen", &listen, "--log", "warn"])
            .args(&self.options.args)
            .envs(self.options.env.iter().map(|(k, v)| (k, v)))
            .env_remove("AJAR_CONFIG")
            .stdout(Stdio::piped())
            .stderr(match std::env::var("AJAR_LAB_SERVER_LOG") {
                // With AJAR_LAB_SERVER_LOG=FILE, the server's log is appended there.
                Ok(path) => std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map(Stdio::from)
                    .unwrap_or_else(|_| Stdio::null()),
                Err(_) => Stdio::null(),
            })
            .spawn()
            .unwrap();
        if self.token.is_empty() {
            let mut line = String::new();
            std::io::BufRead::read_line(
                &mut std::io::BufReader::new(child.stdout.take().unwrap()),
                &mut line,
            )
            .unwrap();
            self.token = line
                .trim()
                .trim_start_matches("ajar bootstrap token: ")
                .to_owned();
        }
        self.url = format!("http://{listen}");
        self.server = Some(child);
        for _ in 0..200 {
            if std::net::TcpStream::connect(&listen).is_ok() {
                return;
            }
            pause(Duration::from_millis(25));
        }
        panic!("ajar serve did not start on {listen}");
    }

    /// Kills the server with SIGKILL (no chance to clean up).
    pub fn kill_server(&mut self) {
        if let Some(mut s) = self.server.take() {
            let _ = s.kill();
            let _ = s.wait();
        }
    }

    /// Starts the server again (after [`Lab::kill_server`]) on the same database and address.
    pub fn restart_server(&mut self) {
        self.kill_server();
        self.start_server();
    }

    /// Takes the management link (between the gateway and the root namespace, where the
    /// server runs) down or up: the agent loses the server, the clients keep the machine.
    pub fn management_link(&self, up: bool) {
        let link = format!("aj{}mg", self.id);
        self.exec(
            Node::Gw,
            &["ip", "link", "set", &link, if up { "up" } else { "down" }],
        );
        if up {
            self.exec(
                Node::Gw,
                &[
                    "ip",
                    "route",
                    "replace",
                    "default",
                    "via",
                    &format!("198.18.{}.17", self.id),
                ],
            );
        }
    }

    /// Whether the server process is still running.
    pub fn server_running(&mut self) -> bool {
        self.server
            .as_mut()
            .is_some_and(|s| s.try_wait().ok().flatten().is_none())
    }

    /// The namespace name of a node.
    pub fn ns(&self, n: Node) -> String {
        let suffix = match n {
            Node::C1 => "c1",
            Node::C2 => "c2",
            Node::Host => "h",
            Node::Gw => "gw",
        };
        format!("aj{}{suffix}", self.id)
    }

    /// A node's IPv4 address (for the gateway: its address on c1's link).
    pub fn v4(&self, n: Node) -> String {
        let last = match n {
            Node::C1 => 2,
            Node::C2 => 6,
            Node::Host => 10,
            Node::Gw => 1,
        };
        format!("198.18.{}.{last}", self.id)
    }

    /// A node's IPv6 address.
    pub fn v6(&self, n: Node) -> String {
        match n {
            Node::C1 => format!("fd18:{}:1::2", self.id),
            Node::C2 => format!("fd18:{}:2::2", self.id),
            Node::Host => format!("fd18:{}:3::2", self.id),
            Node::Gw => format!("fd18:{}:1::1", self.id),
        }
    }

    /// A command run inside a node's namespace.
    pub fn command(&self, n: Node, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns(n)]).args(args);
        c
    }

    /// Runs a command inside a node; it must succeed.
    pub fn exec(&self, n: Node, args: &[&str]) -> Output {
        let out = self.command(n, args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?} in {:?}: {}",
            n,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Tries one TCP or UDP exchange from `from` to `addr:port`: 0 ok, 1 refused, 2 timeout.
    pub fn probe(&self, from: Node, proto: &str, addr: &str, port: u16) -> i32 {
        let out = self
            .command(
                from,
                &[
                    "python3",
                    &probe_script(),
                    "connect",
                    proto,
                    addr,
                    &port.to_string(),
                ],
            )
            .output()
            .unwrap();
        out.status.code().unwrap_or(-1)
    }

    /// Probes until the answer is `want` (or 10 s pass); returns the last answer.
    pub fn probe_until(&self, from: Node, proto: &str, addr: &str, port: u16, want: i32) -> i32 {
        let mut got = -1;
        for _ in 0..100 {
            got = self.probe(from, proto, addr, port);
            if got == want {
                break;
            }
            pause(Duration::from_millis(100));
        }
        got
    }

    /// The `ajar` binary the lab runs.
    pub fn ajar(&self) -> String {
        self.ajar.display().to_string()
    }

    /// Starts `ajar agent` inside a node. With `AJAR_LAB_LOG=FILTER` set, its log goes to
    /// `AJAR_LAB_LOG_FILE` (default `/tmp/ajar-lab-agent.log`).
    pub fn start_agent(&mut self, n: Node, token: &str) {
        let ajar = self.ajar();
        let (log, stderr) = match std::env::var("AJAR_LAB_LOG") {
            Ok(filter) => {
                let path = std::env::var("AJAR_LAB_LOG_FILE")
                    .unwrap_or_else(|_| "/tmp/ajar-lab-agent.log".into());
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .unwrap();
                (filter, Stdio::from(file))
            }
            Err(_) => ("warn".to_owned(), Stdio::null()),
        };
        let child = self
            .command(
                n,
                &[
                    &ajar,
                    "agent",
                    "--server",
                    &self.url,
                    "--token",
                    token,
                    "--wait-seconds",
                    "5",
                    "--log",
                    &log,
                ],
            )
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        self.children.push(child);
    }

    /// Kills every agent with SIGKILL.
    pub fn kill_agents(&mut self) {
        // Agents are the children started after the two listeners.
        for mut c in self.children.drain(2..) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// ajar's table in a node, as `nft list` prints it (empty if absent).
    pub fn table(&self, n: Node) -> String {
        let out = self
            .command(n, &["nft", "list", "table", "inet", "ajar"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn teardown(&mut self) {
        for n in [Node::C1, Node::C2, Node::Host, Node::Gw] {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(n)])
                .output();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &format!("aj{}m", self.id)])
            .output();
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.kill_server();
        for mut c in self.children.drain(..) {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.teardown();
    }
}

// ---------------------------------------------------------------------------------------------
// The world the enforcement tests and benchmark share.

/// The lab's protected machine.
pub const VM: &str = "/subscriptions/s/resourceGroups/rg/machines/vm";
/// The policy protecting it.
pub const POLICY: &str = "/subscriptions/s/resourceGroups/rg/jitNetworkAccessPolicies/p";

/// The real time: the kernel's timeouts run on it.
#[allow(
    clippy::disallowed_methods,
    reason = "the kernel's timeouts run on real time"
)]
pub fn now() -> Timestamp {
    Timestamp::now()
}

/// Machine `vm` (the lab's host) with TCP 22 and UDP 53 protected, and an agent guarding it.
pub async fn world(lab: &mut Lab, mode: &str, cut: bool) -> Client {
    let admin = Client::new(lab.url.clone(), Some(lab.token.clone()));
    let _: Value = admin
        .put(&format!("/api/v1{VM}"), &json!({"properties":{"os":"linux","addresses":[lab.v4(Node::Host), lab.v6(Node::Host)]}}))
        .await
        .unwrap();
    let _: Value = admin
        .put(&format!("/api/v1{POLICY}"), &json!({"properties":{"cutEstablishedOnExpiry":cut,"virtualMachines":[{"id":VM,"ports":[
            {"number":22,"protocol":"TCP","allowedSourceAddressPrefix":"*","maxRequestAccessDuration":"PT3H"},
            {"number":53,"protocol":"UDP","allowedSourceAddressPrefix":"*","maxRequestAccessDuration":"PT3H"}]}]}}))
        .await
        .unwrap();
    let mut body = json!({"name":format!("agent{}", lab.id),"mode":mode,"machines":[VM]});
    if mode == "gateway" {
        body["publicAddress"] = json!(lab.v4(Node::Gw));
        body["mappedPortRange"] = json!("40000-40099");
    }
    let agent: Value = admin.post("/api/v1/agents", &body).await.unwrap();
    let node = if mode == "gateway" {
        Node::Gw
    } else {
        Node::Host
    };
    let (id, token) = (
        agent["id"].as_str().unwrap().to_owned(),
        agent["token"].as_str().unwrap().to_owned(),
    );
    lab.start_agent(node, &token);
    wait_applied(&admin, &id).await;
    lab.agent = Some((id, token));
    admin
}

/// Waits until the agent is live and has applied the current revision.
pub async fn wait_applied(admin: &Client, agent_id: &str) {
    for _ in 0..200 {
        let a: Value = admin
            .get(&format!("/api/v1/agents/{agent_id}"))
            .await
            .unwrap();
        if a["live"] == true && a["appliedRevision"] == a["currentRevision"] {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the agent did not apply the desired state");
}

/// Requests `port` from `source` until `secs` from now.
pub async fn initiate(admin: &Client, port: u16, source: &str, secs: i64) -> Value {
    try_initiate(admin, port, source, secs).await.unwrap()
}

/// Like [`initiate`], answering the server's refusal instead of failing the test.
pub async fn try_initiate(
    admin: &Client,
    port: u16,
    source: &str,
    secs: i64,
) -> Result<Value, ajar_api::ClientError> {
    let end = now().checked_add(SignedDuration::from_secs(secs)).unwrap();
    admin
        .post(
            &format!("/api/v1{POLICY}/initiate"),
            &json!({"virtualMachines":[{"id":VM,"ports":[
            {"number":port,"endTimeUtc":end.to_string(),"allowedSourceAddressPrefix":source}]}]}),
        )
        .await
}

/// The end time of an initiate answer's first port.
pub fn end_of(request: &Value) -> Option<Timestamp> {
    request["virtualMachines"][0]["ports"][0]["endTimeUtc"]
        .as_str()?
        .parse()
        .ok()
}
