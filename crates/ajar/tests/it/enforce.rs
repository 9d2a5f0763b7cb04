//! End to end in a real kernel: `ajar serve`, `ajar agent` in network namespaces, nftables,
//! and TCP/UDP traffic between namespaces. Windows here are a few real seconds, because the
//! kernel's own timeouts are what is under test.

use ajar_testkit::netlab::{Lab, Node, POLICY, initiate, now, wait_applied, world};
use jiff::Timestamp;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn end_of(request: &Value) -> Timestamp {
    ajar_testkit::netlab::end_of(request).unwrap()
}

/// Seconds from `t` to now (negative: `t` is in the future).
fn since(t: Timestamp) -> f64 {
    now().duration_since(t).as_secs_f64()
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn host_mode_opens_for_the_granted_source_only_and_closes_on_time() {
    let mut lab = Lab::new(env!("CARGO_BIN_EXE_ajar"));
    let admin = world(&mut lab, "host", false).await;
    let lab = std::sync::Arc::new(lab);
    let host = lab.v4(Node::Host);
    let l = lab.clone();
    let h = host.clone();
    assert_eq!(
        blocking(move || l.probe(Node::C1, "tcp", &h, 22)).await,
        1,
        "closed before any request"
    );

    let req = initiate(&admin, 22, &lab.v4(Node::C1), 4).await;
    let end = end_of(&req);
    let (l, h) = (lab.clone(), host.clone());
    assert_eq!(
        blocking(move || l.probe_until(Node::C1, "tcp", &h, 22, 0)).await,
        0,
        "open for c1"
    );
    assert!(since(end) < 0.0, "opened before the end");
    let (l, h) = (lab.clone(), host.clone());
    assert_eq!(
        blocking(move || l.probe(Node::C2, "tcp", &h, 22)).await,
        1,
        "c2 stays blocked"
    );
    let (l, h) = (lab.clone(), host.clone());
    assert_eq!(
        blocking(move || l.probe(Node::C1, "udp", &h, 53)).await,
        1,
        "ungranted UDP 53 stays closed"
    );

    // The request shows when the agent opened it.
    let id = req["id"].as_str().unwrap();
    let path = format!("/api/v1{POLICY}/requests/{id}");
    let got: Value = admin.get(&path).await.unwrap();
    assert!(
        got["virtualMachines"][0]["ports"][0]["openSince"].is_string(),
        "{got}"
    );

    let (l, h) = (lab.clone(), host.clone());
    assert_eq!(
        blocking(move || l.probe_until(Node::C1, "tcp", &h, 22, 1)).await,
        1,
        "closed again"
    );
    let late = since(end);
    assert!(
        (-0.5..2.0).contains(&late),
        "closed {late:.2} s after the end time"
    );
    // After the scheduler and agent catch up, the request shows when it closed.
    let mut closed = Value::Null;
    for _ in 0..100 {
        let got: Value = admin.get(&path).await.unwrap();
        closed = got["virtualMachines"][0]["ports"][0]["closedAt"].clone();
        if closed.is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        closed.as_str(),
        Some(end.to_string().as_str()),
        "closed at its end time"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn access_closes_on_time_with_agent_and_server_killed() {
    let mut lab = Lab::new(env!("CARGO_BIN_EXE_ajar"));
    let admin = world(&mut lab, "host", false).await;
    let req = initiate(&admin, 22, &lab.v4(Node::C1), 5).await;
    let end = end_of(&req);
    let host = lab.v4(Node::Host);
    assert_eq!(lab.probe_until(Node::C1, "tcp", &host, 22, 0), 0);
    lab.kill_agents();
    lab.kill_server();
    assert_eq!(
        lab.probe(Node::C1, "tcp", &host, 22),
        0,
        "still open with nothing running"
    );
    assert_eq!(lab.probe_until(Node::C1, "tcp", &host, 22, 1), 1);
    let late = since(end);
    assert!(
        (-0.5..2.0).contains(&late),
        "closed {late:.2} s after the end time, by the kernel alone"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_agent_survives_a_server_restart() {
    let mut lab = Lab::new(env!("CARGO_BIN_EXE_ajar"));
    let admin = world(&mut lab, "host", false).await;
    let host = lab.v4(Node::Host);
    lab.kill_server();
    // While the server is away the agent retries with backoff; then it comes back.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    lab.restart_server();
    initiate(&admin, 22, &lab.v4(Node::C1), 60).await;
    assert_eq!(
        lab.probe_until(Node::C1, "tcp", &host, 22, 0),
        0,
        "the agent follows the restarted server"
    );
    assert_eq!(lab.probe(Node::C2, "tcp", &host, 22), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_agent_reconciles_stale_rules_and_leaves_other_tables_alone() {
    let mut lab = Lab::new(env!("CARGO_BIN_EXE_ajar"));
    // Before the agent runs: a stale ajar table that lets c2 in, and someone else's table.
    let stale = format!(
        "table inet ajar {{\n  set s {{ type ipv4_addr; elements = {{ {} }}; }}\n  chain input {{ type filter hook input priority 0; ip saddr @s accept; }}\n}}\ntable inet other {{\n  chain c {{ type filter hook input priority 10; }}\n}}\n",
        lab.v4(Node::C2)
    );
    let mut child = lab
        .command(Node::Host, &["nft", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), stale.as_bytes()).unwrap();
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    assert!(lab.table(Node::Host).contains(&lab.v4(Node::C2)));

    let admin = world(&mut lab, "host", false).await;
    let table = lab.table(Node::Host);
    assert!(
        !table.contains(&lab.v4(Node::C2)),
        "stale element left behind:\n{table}"
    );
    assert!(table.contains("protected4"), "{table}");
    let host = lab.v4(Node::Host);
    assert_eq!(lab.probe(Node::C2, "tcp", &host, 22), 1);
    let other = lab
        .command(Node::Host, &["nft", "list", "table", "inet", "other"])
        .output()
        .unwrap();
    assert!(other.status.success(), "another table was touched");

    // A grant made while the agent is down is applied when it comes back.
    lab.kill_agents();
    initiate(&admin, 22, &lab.v4(Node::C1), 30).await;
    assert_eq!(lab.probe(Node::C1, "tcp", &host, 22), 1);
    let agents: Value = admin.get("/api/v1/agents").await.unwrap();
    let id = agents["value"][0]["id"].as_str().unwrap().to_owned();
    let token: Value = admin
        .post(
            "/api/v1/tokens",
            &json!({"principal":format!("agent:agent{}", lab.id)}),
        )
        .await
        .unwrap();
    lab.start_agent(Node::Host, token["token"].as_str().unwrap());
    wait_applied(&admin, &id).await;
    assert_eq!(lab.probe_until(Node::C1, "tcp", &host, 22, 0), 0);

    // `ajar agent --uninstall` removes ajar's table and nothing else.
    lab.kill_agents();
    lab.exec(Node::Host, &[&lab.ajar(), "agent", "--uninstall"]);
    assert_eq!(lab.table(Node::Host), "");
    let other = lab
        .command(Node::Host, &["nft", "list", "table", "inet", "other"])
        .output()
        .unwrap();
    assert!(other.status.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_early_revoke_closes_at_once() {
    let mut lab = Lab::new(env!("CARGO_BIN_EXE_ajar"));
    let admin = world(&mut lab, "host", false).await;
    let req = initiate(&admin, 53, &lab.v4(Node::C1), 120).await;
    let host = lab.v4(Node::Host);
    assert_eq!(
        lab.probe_until(Node::C1, "udp", &host, 53, 0),
        0,
        "UDP opens too"
    );
    let id = req["id"].as_str().unwrap();
    let _: Value = admin
        .post(&format!("/api/v1{POLICY}/requests/{id}/revoke"), &json!({}))
        .await
        .unwrap();
    let t0 = Instant::now();
    assert_eq!(lab.probe_until(Node::C1, "udp", &host, 53, 1), 1);
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "closed {:?} after the revoke",
        t0.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gateway_maps_its_port_to_the_machine_during_the_window_only() {
    let mut lab = Lab::new(env!("CARGO_BIN_EXE_ajar"));
    let admin = world(&mut lab, "gateway", false).await;
    let host = lab.v4(Node::Host);
    let gw = lab.v4(Node::Gw);
    assert_eq!(
        lab.probe(Node::C1, "tcp", &host, 22),
        1,
        "the machine is closed behind the gateway"
    );
    let req = initiate(&admin, 22, &lab.v4(Node::C1), 4).await;
    let port = &req["virtualMachines"][0]["ports"][0];
    let mapped = port["mappedPort"].as_u64().unwrap() as u16;
    assert!((40000..=40099).contains(&mapped));
    assert_eq!(
        port["connectionDetails"],
        json!({"address": gw, "port": mapped})
    );
    assert_eq!(
        lab.probe_until(Node::C1, "tcp", &gw, mapped, 0),
        0,
        "c1 reaches the machine through the gateway"
    );
    assert_eq!(lab.probe(Node::C2, "tcp", &gw, mapped), 1, "c2 does not");
    assert_eq!(
        lab.probe(Node::C1, "tcp", &host, 22),
        1,
        "the machine itself stays closed"
    );
    let end = end_of(&req);
    assert_eq!(lab.probe_until(Node::C1, "tcp", &gw, mapped, 1), 1);
    let late = since(end);
    assert!(
        (-0.5..2.0).contains(&late),
        "mapping closed {late:.2} s after the end"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ipv6_source_prefixes_work() {
    let mut lab = Lab::new(env!("CARGO_BIN_EXE_ajar"));
    let admin = world(&mut lab, "host", false).await;
    let host = lab.v6(Node::Host);
    assert_eq!(lab.probe(Node::C1, "tcp", &host, 22), 1);
    initiate(&admin, 22, &format!("fd18:{}:1::/64", lab.id), 30).await;
    assert_eq!(lab.probe_until(Node::C1, "tcp", &host, 22, 0), 0);
    assert_eq!(lab.probe(Node::C2, "tcp", &host, 22), 1);
    assert_eq!(
        lab.probe(Node::C1, "tcp", &lab.v4(Node::Host), 22),
        1,
        "the v6 grant does not open v4"
    );
}

/// Holds a TCP connection from c1 for `seconds`; the exit code says whether it was cut.
fn hold(lab: &Lab, seconds: u32) -> (i32, String) {
    let out = lab
        .command(
            Node::C1,
            &[
                "python3",
                &ajar_testkit::netlab::probe_script(),
                "hold",
                &lab.v4(Node::Host),
                "22",
                &seconds.to_string(),
            ],
        )
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn established_connections_are_cut_at_expiry_only_when_the_policy_says_so() {
    let mut cutting = Lab::new(env!("CARGO_BIN_EXE_ajar"));
    let admin = world(&mut cutting, "host", true).await;
    initiate(&admin, 22, &cutting.v4(Node::C1), 3).await;
    let host = cutting.v4(Node::Host);
    assert_eq!(cutting.probe_until(Node::C1, "tcp", &host, 22, 0), 0);
    let (code, when) = hold(&cutting, 8);
    assert_eq!(code, 3, "the connection outlived its window");
    let when: f64 = when.parse().unwrap();
    assert!(when < 5.0, "cut after {when} s");

    let mut keeping = Lab::new(env!("CARGO_BIN_EXE_ajar"));
    let admin = world(&mut keeping, "host", false).await;
    initiate(&admin, 22, &keeping.v4(Node::C1), 3).await;
    let host = keeping.v4(Node::Host);
    assert_eq!(keeping.probe_until(Node::C1, "tcp", &host, 22, 0), 0);
    let (code, _) = hold(&keeping, 6);
    assert_eq!(
        code, 0,
        "by default an established connection survives the window"
    );
    assert_eq!(
        keeping.probe(Node::C1, "tcp", &host, 22),
        1,
        "while new ones are refused"
    );
}

/// The agent's enforcement (ruleset, `nft`, what opened and closed) with 2,000 grants over 200
/// machines in a namespace of its own: the first apply, then a change adding one grant and
/// removing another, then one that changes nothing. After each the kernel holds exactly the
/// expected elements, every grant with its kernel timeout, and the report names exactly what
/// changed.
#[test]
fn a_large_desired_state_applies_and_a_change_on_top_leaves_exactly_the_expected_elements() {
    use ajar_agent::firewall::Nft;
    use ajar_agent::sync::Enforcer;
    use ajar_core::agent::AgentMode;
    use ajar_testkit::netlab::{LargeState, Namespace};

    for mode in [AgentMode::Host, AgentMode::Gateway] {
        let ns = Namespace::new("lg");
        let mut enforcer = Enforcer::new(
            Box::new(Nft::new(ns.nft_program())),
            "conntrack".into(),
            "test".into(),
        );
        let ids = |refs: &[ajar_api::wire::GrantRef]| -> Vec<String> {
            refs.iter().map(|g| g.request_id.clone()).collect()
        };

        let mut want = LargeState::new(mode, 2000, 200, 5);
        enforcer
            .apply(&want.desired(now(), 1), Duration::ZERO)
            .unwrap();
        want.check(&ns.ajar_table()).unwrap();
        assert_eq!(enforcer.report().opened.len(), 2000);
        assert_eq!(enforcer.open_grants(), 2000);
        assert_eq!(ns.ajar_table().elements(want.grant_set()).len(), 2000);
        enforcer.report_sent();

        // One grant added and one removed in the same change.
        want.grants.insert(2000);
        want.grants.remove(&777);
        enforcer
            .apply(&want.desired(now(), 2), Duration::ZERO)
            .unwrap();
        let table = ns.ajar_table();
        want.check(&table).unwrap();
        let elements = table.elements(want.grant_set());
        assert_eq!(elements.len(), 2000);
        assert!(
            elements.iter().any(|e| e.starts_with("198.18.7.208/32 ")),
            "grant 2000"
        );
        assert!(
            !elements.iter().any(|e| e.starts_with("198.18.3.9/32 ")),
            "grant 777"
        );
        assert_eq!(ids(&enforcer.report().opened), ["r2000"]);
        assert_eq!(ids(&enforcer.report().closed), ["r777"]);
        enforcer.report_sent();

        // Nothing changed: nothing is reported and the table stays as it is.
        enforcer
            .apply(&want.desired(now(), 3), Duration::ZERO)
            .unwrap();
        assert!(enforcer.report().opened.is_empty() && enforcer.report().closed.is_empty());
        want.check(&ns.ajar_table()).unwrap();
    }
}

/// What the README's first session runs, in a network namespace of its own standing for "this
/// host": `ajar serve` on its defaults, a demo web server on 127.0.0.1:8022, `ajar agent add
/// --this-host`, the agent started with the very command that printed, `ajar policy enable`,
/// `ajar access start --wait`, the port reachable, then closed again by the kernel's timeout
/// when the window ends. The README asks for a minute; here the window is a few seconds.
#[tokio::test(flavor = "multi_thread")]
async fn the_readme_first_session_opens_and_closes_a_demo_port() {
    use ajar_testkit::netlab::Namespace;
    use std::io::BufRead;
    use std::process::{Child, Stdio};

    /// Kills the session's processes however the test ends.
    struct Processes(Vec<Child>);
    impl Drop for Processes {
        fn drop(&mut self) {
            for c in &mut self.0 {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
    let ns = Namespace::new("fs");
    let home = tempfile::tempdir().unwrap();
    let ajar = env!("CARGO_BIN_EXE_ajar");
    let mut procs = Processes(Vec::new());

    // ajar serve, as a newcomer runs it: defaults, in the working directory.
    let mut serve = ns
        .command(&[ajar, "serve"])
        .current_dir(home.path())
        .env_remove("AJAR_CONFIG")
        .env_remove("AJAR_DATA_DIR")
        .env_remove("AJAR_LISTEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(serve.stdout.take().unwrap()).lines();
    let mut stderr = std::io::BufReader::new(serve.stderr.take().unwrap()).lines();
    procs.0.push(serve);
    let token = stdout
        .next()
        .unwrap()
        .unwrap()
        .strip_prefix("ajar bootstrap token: ")
        .unwrap()
        .to_owned();
    let mut said = Vec::new();
    for line in stderr.by_ref() {
        let line = line.unwrap();
        let done = line.starts_with("ajar: listening on http://127.0.0.1:8600");
        said.push(line);
        if done {
            break;
        }
    }
    // Keep reading what the server says, so it never writes into a closed pipe.
    std::thread::spawn(move || stderr.for_each(drop));
    assert!(
        said.iter().any(|l| l.starts_with("ajar: data in ")),
        "{said:#?}"
    );

    // The demo port.
    let demo = ns
        .command(&[
            "python3",
            "-m",
            "http.server",
            "8022",
            "--bind",
            "127.0.0.1",
        ])
        .current_dir(home.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    procs.0.push(demo);
    let fetch = || {
        ns.command(&[
            "python3",
            "-c",
            "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8022/', timeout=2)",
        ])
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
    };
    let fetch_until = |want: bool| {
        for _ in 0..100 {
            if fetch() == want {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    };
    assert!(
        fetch_until(true),
        "the demo server answers before ajar guards it"
    );

    // The CLI, with the bootstrap token and nothing else configured.
    let cli = |args: &[&str]| {
        let mut full = vec![ajar];
        full.extend_from_slice(args);
        let out = ns
            .command(&full)
            .current_dir(home.path())
            .env("AJAR_TOKEN", &token)
            .env("AJAR_CLI_CONFIG", home.path().join("cli.toml"))
            .env_remove("AJAR_URL")
            .env_remove("AJAR_PROFILE")
            .output()
            .unwrap();
        assert!(out.status.success(), "ajar {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let added = cli(&[
        "agent",
        "add",
        "demo",
        "--this-host",
        "--address",
        "127.0.0.1",
    ]);
    let machine = "/subscriptions/local/resourceGroups/local/machines/demo";
    assert!(
        added.starts_with(&format!("machine {machine} saved (linux, 127.0.0.1)\n")),
        "{added}"
    );
    // Start the agent with exactly the command printed.
    let command = added
        .lines()
        .find_map(|l| l.strip_prefix("  ajar "))
        .unwrap_or_else(|| panic!("no command in {added}"));
    let mut full = vec![ajar];
    full.extend(command.split_whitespace());
    let agent = ns
        .command(&full)
        .current_dir(home.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    procs.0.push(agent);

    let enabled = cli(&["policy", "enable", machine, "--port", "8022"]);
    assert!(enabled.starts_with("JIT enabled on"), "{enabled}");
    assert!(fetch_until(false), "the agent closes the demo port");

    let end = now()
        .checked_add(jiff::SignedDuration::from_secs(5))
        .unwrap();
    let started = cli(&[
        "access",
        "start",
        machine,
        "--port",
        "8022",
        "--end",
        &end.to_string(),
        "--reason",
        "first try",
        "--wait",
    ]);
    assert!(started.contains("127.0.0.1:8022"), "{started}");
    assert!(since(end) < 0.0, "--wait returned before the end");
    assert!(fetch(), "open once --wait returns");
    let table = ns
        .command(&["nft", "list", "table", "inet", "ajar"])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains("127.0.0.1 . 127.0.0.1 . tcp . 8022 timeout"),
        "the grant is a kernel element with a timeout:\n{table}"
    );

    assert!(fetch_until(false), "closed again");
    let late = since(end);
    assert!(
        (-0.5..2.0).contains(&late),
        "closed {late:.2} s after the end time"
    );
}
