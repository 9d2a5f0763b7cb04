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

// ---------------------------------------------------------------------------------------------
// A single namespace, and ajar's table at scale.

/// A network namespace of its own, removed on drop: where nftables can be programmed without a
/// whole lab (no links, no server).
pub struct Namespace {
    /// Its name.
    pub name: String,
    /// Holds the `nft` wrapper of [`Namespace::nft_program`].
    dir: tempfile::TempDir,
}

impl Namespace {
    /// Creates namespace `aj{tag}{pid}` (replacing a stale one of that name) with its loopback up.
    pub fn new(tag: &str) -> Namespace {
        assert!(
            Command::new("id")
                .arg("-u")
                .output()
                .map(|o| o.stdout == b"0\n")
                .unwrap_or(false),
            "network namespaces need root (CAP_NET_ADMIN)"
        );
        let name = format!("aj{tag}{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        run(&["ip", "netns", "add", &name]);
        let ns = Namespace {
            name,
            dir: tempfile::tempdir().unwrap(),
        };
        run(&[
            "ip", "netns", "exec", &ns.name, "ip", "link", "set", "lo", "up",
        ]);
        ns
    }

    /// A command run inside the namespace.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).args(args);
        c
    }

    /// A program that runs `nft` inside the namespace with the arguments it is given, to hand
    /// to the agent's `Nft::new` from a process outside it.
    pub fn nft_program(&self) -> std::path::PathBuf {
        let path = self.dir.path().join("nft");
        if !path.exists() {
            std::fs::write(
                &path,
                format!("#!/bin/sh\nexec ip netns exec {} nft \"$@\"\n", self.name),
            )
            .unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        path
    }

    /// ajar's table in the namespace as the kernel holds it (see [`KernelTable`]); empty if
    /// there is none.
    pub fn ajar_table(&self) -> KernelTable {
        let read = now();
        let out = self
            .command(&["nft", "-j", "list", "table", "inet", "ajar"])
            .output()
            .unwrap();
        if !out.status.success() {
            return KernelTable::default();
        }
        KernelTable::parse(&String::from_utf8_lossy(&out.stdout), read)
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// The elements of ajar's sets and maps as the kernel lists them (`nft -j list table inet
/// ajar`): per set, each element written the way the agent writes it — `source . address .
/// protocol . port`, a map's `key : target`, sources always as prefixes — with the seconds it
/// has left (`None` for elements without a timeout).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KernelTable {
    /// Set name → element → seconds left.
    pub sets: std::collections::BTreeMap<String, std::collections::BTreeMap<String, Option<u64>>>,
    /// When the listing was asked for: the seconds left count from about then.
    pub read: Option<Timestamp>,
}

impl KernelTable {
    /// Reads `nft -j` output, listed at `read`.
    pub fn parse(json: &str, read: Timestamp) -> KernelTable {
        let doc: Value = serde_json::from_str(json).unwrap();
        let mut table = KernelTable {
            read: Some(read),
            ..KernelTable::default()
        };
        for obj in doc["nftables"].as_array().unwrap() {
            let (set, is_map) = match (obj.get("set"), obj.get("map")) {
                (Some(s), _) => (s, false),
                (_, Some(m)) => (m, true),
                _ => continue,
            };
            let interval = set["flags"]
                .as_array()
                .is_some_and(|f| f.iter().any(|x| x == "interval"));
            let mut elements = std::collections::BTreeMap::new();
            for e in set["elem"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
                let (key, target) = if is_map {
                    (&e[0], Some(&e[1]))
                } else {
                    (e, None)
                };
                let (val, expires) = match key.get("elem") {
                    Some(inner) => (&inner["val"], inner["expires"].as_u64()),
                    None => (key, None),
                };
                let mut text = components(val, interval);
                if let Some(t) = target {
                    text = format!("{text} : {}", components(t, false));
                }
                elements.insert(text, expires);
            }
            table
                .sets
                .insert(set["name"].as_str().unwrap().to_owned(), elements);
        }
        table
    }

    /// The elements of one set (none if it is absent).
    pub fn elements(&self, set: &str) -> std::collections::BTreeSet<String> {
        self.sets
            .get(set)
            .map(|s| s.keys().cloned().collect())
            .unwrap_or_default()
    }
}

/// A concatenation as `a . b . c`; in an interval set the first component (the source) is
/// always written as a prefix.
fn components(val: &Value, interval: bool) -> String {
    let parts: Vec<Value> = match val.get("concat") {
        Some(c) => c.as_array().unwrap().clone(),
        None => vec![val.clone()],
    };
    parts
        .iter()
        .enumerate()
        .map(|(i, p)| match p {
            Value::String(s) if i == 0 && interval => match s.parse::<std::net::IpAddr>() {
                Ok(a) if a.is_ipv4() => format!("{a}/32"),
                Ok(a) => format!("{a}/128"),
                Err(_) => s.clone(),
            },
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            other => match other.get("prefix") {
                Some(pre) => format!("{}/{}", pre["addr"].as_str().unwrap(), pre["len"]),
                None => other.to_string(),
            },
        })
        .collect::<Vec<_>>()
        .join(" . ")
}

/// The ports [`LargeState`] protects on every machine, all TCP.
pub const LARGE_PORTS: [u16; 8] = [22, 3389, 443, 5432, 8080, 5900, 3306, 6443];

/// A desired state of many grants over many machines, and what the kernel must hold for it,
/// written independently of the agent's ruleset code. Grant `i` opens port
/// `LARGE_PORTS[(i / machines) % ports]` of machine `i % machines` (address `10.64.0.0 + m`) to
/// source `198.18.0.0 + i` (its own /32, so elements never overlap), until an hour and up to ten
/// minutes after the state was made; in gateway mode through mapped port `40000 + m * ports + p`.
#[derive(Debug, Clone)]
pub struct LargeState {
    /// `host` or `gateway`.
    pub mode: ajar_core::agent::AgentMode,
    /// Machines.
    pub machines: usize,
    /// Protected ports per machine (at most [`LARGE_PORTS`]' length).
    pub ports: usize,
    /// The grants present, by number.
    pub grants: std::collections::BTreeSet<usize>,
    /// When the state was made: grants end counting from here.
    pub start: Timestamp,
}

impl LargeState {
    /// Grants `0..grants`.
    pub fn new(
        mode: ajar_core::agent::AgentMode,
        grants: usize,
        machines: usize,
        ports: usize,
    ) -> LargeState {
        assert!(ports >= 1 && ports <= LARGE_PORTS.len() && machines >= 1);
        assert!(machines * ports <= 25_000 && grants < 131_072);
        LargeState {
            mode,
            machines,
            ports,
            grants: (0..grants).collect(),
            start: now(),
        }
    }

    fn machine_address(m: usize) -> std::net::Ipv4Addr {
        std::net::Ipv4Addr::from(0x0a40_0000u32 + m as u32)
    }

    fn grant_parts(&self, i: usize) -> (usize, usize, std::net::Ipv4Addr) {
        let m = i % self.machines;
        let p = (i / self.machines) % self.ports;
        (m, p, std::net::Ipv4Addr::from(0xc612_0000u32 + i as u32))
    }

    /// When grant `i` ends.
    pub fn end_of(&self, i: usize) -> Timestamp {
        self.start
            .checked_add(SignedDuration::from_secs(3600 + (i % 600) as i64))
            .unwrap()
    }

    /// The state as the server would send it at `server_time`.
    pub fn desired(&self, server_time: Timestamp, revision: i64) -> ajar_api::wire::DesiredState {
        use ajar_api::wire::{DesiredGrant, DesiredMachine, DesiredState, ProtectedPort};
        use ajar_core::net::{Port, Protocol, SourcePrefix};
        let mut machines: Vec<DesiredMachine> = (0..self.machines)
            .map(|m| DesiredMachine {
                id: format!(
                    "/subscriptions/s/resourceGroups/rg{}/machines/vm{m}",
                    m / 100
                ),
                addresses: vec![Self::machine_address(m).into()],
                protected_ports: LARGE_PORTS[..self.ports]
                    .iter()
                    .map(|&n| ProtectedPort {
                        number: Port::from(n),
                        protocol: Protocol::Tcp,
                    })
                    .collect(),
                grants: Vec::new(),
                aws: None,
            })
            .collect();
        for &i in &self.grants {
            let (m, p, source) = self.grant_parts(i);
            machines[m].grants.push(DesiredGrant {
                request_id: format!("r{i}"),
                seq: 0,
                number: Port::from(LARGE_PORTS[p]),
                protocol: Protocol::Tcp,
                sources: vec![SourcePrefix::parse(&source.to_string()).unwrap()],
                end_time_utc: self.end_of(i),
                mapped_port: (self.mode == ajar_core::agent::AgentMode::Gateway)
                    .then(|| (40_000 + m * self.ports + p) as u16),
                cut_established: false,
            });
        }
        DesiredState {
            revision,
            server_time,
            mode: self.mode,
            public_address: (self.mode == ajar_core::agent::AgentMode::Gateway)
                .then(|| "198.18.255.1".parse().unwrap()),
            machines,
            changes_only: false,
        }
    }

    /// The grant set the kernel must hold: `allow4_0` in host mode, `dnat4_0` in gateway mode.
    pub fn grant_set(&self) -> &'static str {
        match self.mode {
            ajar_core::agent::AgentMode::Host | ajar_core::agent::AgentMode::Aws => "allow4_0",
            ajar_core::agent::AgentMode::Gateway => "dnat4_0",
        }
    }

    /// The grant elements the kernel must hold, with each grant's number.
    pub fn expected_grants(&self) -> std::collections::BTreeMap<String, usize> {
        self.grants
            .iter()
            .map(|&i| {
                let (m, p, source) = self.grant_parts(i);
                let (addr, port) = (Self::machine_address(m), LARGE_PORTS[p]);
                let text = match self.mode {
                    ajar_core::agent::AgentMode::Host | ajar_core::agent::AgentMode::Aws => {
                        format!("{source}/32 . {addr} . tcp . {port}")
                    }
                    ajar_core::agent::AgentMode::Gateway => format!(
                        "{source}/32 . tcp . {} : {addr} . {port}",
                        40_000 + m * self.ports + p
                    ),
                };
                (text, i)
            })
            .collect()
    }

    /// The protected elements the kernel must hold.
    pub fn expected_protected(&self) -> std::collections::BTreeSet<String> {
        (0..self.machines)
            .flat_map(|m| {
                LARGE_PORTS[..self.ports]
                    .iter()
                    .map(move |port| format!("{} . tcp . {port}", Self::machine_address(m)))
            })
            .collect()
    }

    /// Compares `table` with what this state requires: exactly the expected elements in every
    /// set (nothing in the IPv6 ones), and every grant element with a kernel timeout that ends
    /// with its grant (within the listing's own time and rounding). Answers the differences.
    pub fn check(&self, table: &KernelTable) -> Result<(), String> {
        let mut problems = Vec::new();
        let want = self.expected_grants();
        let got = table
            .sets
            .get(self.grant_set())
            .cloned()
            .unwrap_or_default();
        let missing = want.keys().filter(|k| !got.contains_key(*k)).count();
        let extra: Vec<&String> = got.keys().filter(|k| !want.contains_key(*k)).collect();
        if missing > 0 || !extra.is_empty() {
            problems.push(format!(
                "{}: {} elements, {missing} missing, {} unexpected (first: {:?})",
                self.grant_set(),
                got.len(),
                extra.len(),
                extra.first()
            ));
        }
        let read = table.read.unwrap_or_else(now);
        for (text, &i) in &want {
            let Some(left) = got.get(text) else { continue };
            let should = self.end_of(i).duration_since(read).as_secs_f64();
            match left {
                Some(l) if *l as f64 <= should + 1.0 && *l as f64 >= should - 5.0 => {}
                other => {
                    problems.push(format!(
                        "{text}: {other:?} s left, want {should:.0} s (a kernel timeout)"
                    ));
                    break;
                }
            }
        }
        if table.elements("protected4") != self.expected_protected() {
            problems.push(format!(
                "protected4: {} elements, want {}",
                table.elements("protected4").len(),
                self.expected_protected().len()
            ));
        }
        let v6 = match self.mode {
            ajar_core::agent::AgentMode::Host | ajar_core::agent::AgentMode::Aws => "allow6_0",
            ajar_core::agent::AgentMode::Gateway => "dnat6_0",
        };
        for set in ["protected6", v6] {
            match table.sets.get(set) {
                Some(s) if s.is_empty() => {}
                Some(s) => problems.push(format!("{set}: {} unexpected elements", s.len())),
                None => problems.push(format!("{set}: missing")),
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}
