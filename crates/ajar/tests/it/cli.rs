//! The command-line client run as a subprocess against a real server (one per test): each
//! noun's happy path and main errors, `apply` and `--dry-run`, JSON output read back into the
//! API's types, login profiles, completions and man pages.

use super::ajar;
use ajar_api::wire::{AccessRequest, ActivityRecord, JitRequest, List, Machine, Policy};
use ajar_testkit::TestApp;
use jiff::SignedDuration;
use serde_json::{Value, json};

const SUB: &str = "/subscriptions/s1";
const RG: &str = "/subscriptions/s1/resourceGroups/rg1";
const VM: &str = "/subscriptions/s1/resourceGroups/rg1/machines/vm1";
const WIN: &str = "/subscriptions/s1/resourceGroups/rg1/machines/win1";
const POLICY: &str = "/subscriptions/s1/resourceGroups/rg1/jitNetworkAccessPolicies/default";
const APP: &str = "/subscriptions/s1/resourceGroups/rg1/applications/crm";

/// What one run printed.
#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn ok(self) -> Self {
        assert_eq!(self.code, 0, "{self:?}");
        self
    }
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }
    fn typed<T: serde::de::DeserializeOwned>(&self) -> T {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }
    /// A failure: its exit code, and a single line on stderr containing `want`.
    fn fails(&self, code: i32, want: &str) {
        assert_eq!(self.code, code, "{self:?}");
        assert_eq!(
            self.stderr.lines().count(),
            1,
            "one line: {:?}",
            self.stderr
        );
        assert!(self.stderr.starts_with("ajar: "), "{:?}", self.stderr);
        assert!(self.stderr.contains(want), "{want:?} in {:?}", self.stderr);
    }
}

/// Runs `ajar ARGS` with the server's URL and `token` in the environment and an empty config
/// directory.
async fn run(app: &TestApp, token: &str, args: &[&str]) -> Out {
    run_with(app, Some(token), args, &[]).await
}

async fn run_with(app: &TestApp, token: Option<&str>, args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut cmd = ajar();
    cmd.args(args)
        .env("AJAR_URL", &app.base)
        .env("AJAR_CLI_CONFIG", app.db_path().with_file_name("cli.toml"));
    if let Some(t) = token {
        cmd.env("AJAR_TOKEN", t);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn admin(app: &TestApp) -> String {
    app.admin_token.clone()
}

async fn machines_and_policy(app: &TestApp) {
    let t = admin(app);
    run(
        app,
        &t,
        &[
            "machine",
            "add",
            VM,
            "--os",
            "linux",
            "--address",
            "10.1.0.4",
            "--label",
            "env=test",
        ],
    )
    .await
    .ok();
    run(
        app,
        &t,
        &[
            "machine",
            "add",
            WIN,
            "--os",
            "windows",
            "--address",
            "10.1.0.5",
        ],
    )
    .await
    .ok();
    run(
        app,
        &t,
        &[
            "policy",
            "set",
            POLICY,
            "--machine",
            VM,
            "--port",
            "22",
            "--max",
            "3h",
        ],
    )
    .await
    .ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn machines_policies_and_access_from_the_terminal() {
    let app = TestApp::spawn().await;
    let t = admin(&app);
    machines_and_policy(&app).await;
    // Table and JSON lists; the JSON is the API's own.
    let table = run(&app, &t, &["machine", "list", "--scope", RG])
        .await
        .ok();
    assert!(table.stdout.starts_with("NAME"), "{}", table.stdout);
    assert!(
        table.stdout.contains("vm1") && table.stdout.contains(POLICY),
        "{}",
        table.stdout
    );
    let list: List<Machine> = run(&app, &t, &["machine", "list", "--scope", RG, "-o", "json"])
        .await
        .ok()
        .typed();
    assert_eq!(list.value.len(), 2);
    let shown = run(&app, &t, &["machine", "show", VM, "-o", "json"])
        .await
        .ok()
        .json();
    let direct: Value = app.admin.get(&format!("/api/v1{VM}")).await.unwrap();
    assert_eq!(shown, direct, "--output json prints exactly the API's JSON");
    let policy: Policy = run(&app, &t, &["policy", "get", POLICY, "-o", "json"])
        .await
        .ok()
        .typed();
    assert_eq!(
        policy.properties.virtual_machines[0].ports[0].number.get(),
        22
    );
    assert!(
        run(&app, &t, &["policy", "get", POLICY])
            .await
            .ok()
            .stdout
            .contains("PT3H")
    );
    // The policy from a YAML file, then as JSON on standard input (the properties alone).
    let file = app.db_path().with_file_name("policy.yaml");
    std::fs::write(
        &file,
        format!(
            "properties:\n  virtualMachines:\n    - id: {VM}\n      ports:\n        - {{number: 22, protocol: TCP, allowedSourceAddressPrefix: \"10.0.0.0/8\", maxRequestAccessDuration: PT2H}}\n"
        ),
    )
    .unwrap();
    run(
        &app,
        &t,
        &["policy", "set", POLICY, "-f", file.to_str().unwrap()],
    )
    .await
    .ok();
    let p: Policy = run(&app, &t, &["policy", "get", POLICY, "-o", "json"])
        .await
        .ok()
        .typed();
    assert_eq!(
        p.properties.virtual_machines[0].ports[0]
            .max_request_access_duration
            .to_string(),
        "PT2H"
    );
    let stdin_policy = json!({"virtualMachines":[{"id":VM,"ports":[{"number":22,"protocol":"*",
        "allowedSourceAddressPrefix":"*","maxRequestAccessDuration":"PT3H"}]}]});
    let mut cmd = ajar();
    cmd.args(["policy", "set", POLICY, "-f", "-", "-o", "json"])
        .env("AJAR_URL", &app.base)
        .env("AJAR_TOKEN", &t)
        .env("AJAR_CLI_CONFIG", app.db_path().with_file_name("cli.toml"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let text = stdin_policy.to_string();
    let out = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = cmd.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    let p: Policy = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        p.properties.virtual_machines[0].ports[0]
            .max_request_access_duration
            .to_string(),
        "PT3H"
    );
    run(&app, &t, &["policy", "enable", WIN]).await.ok();
    let policies = run(&app, &t, &["policy", "list", "--scope", SUB])
        .await
        .ok();
    assert!(
        policies.stdout.contains("vm1:22+") || policies.stdout.contains("win1:3389"),
        "{}",
        policies.stdout
    );

    // Access: human durations, JSON back into the API's type.
    let started: AccessRequest = run(
        &app,
        &t,
        &[
            "access",
            "start",
            VM,
            "--port",
            "22",
            "--duration",
            "90m",
            "--source",
            "10.9.0.1",
            "--reason",
            "ticket 7",
            "-o",
            "json",
        ],
    )
    .await
    .ok()
    .typed();
    let port = &started.virtual_machines[0].ports[0];
    assert_eq!(port.end_time_utc, app.now() + SignedDuration::from_mins(90));
    assert_eq!(started.justification.as_deref(), Some("ticket 7"));
    let table = run(&app, &t, &["access", "list", "--policy", POLICY])
        .await
        .ok();
    assert!(table.stdout.contains(&started.id), "{}", table.stdout);
    let shown = run(&app, &t, &["access", "show", POLICY, &started.id])
        .await
        .ok();
    assert!(
        shown.stdout.contains("10.9.0.1") && shown.stdout.contains("Initiated"),
        "{}",
        shown.stdout
    );
    let revoked = run(
        &app,
        &t,
        &["access", "revoke", POLICY, &started.id, "-o", "json"],
    )
    .await
    .ok()
    .json();
    assert_eq!(
        revoked["virtualMachines"][0]["ports"][0]["status"],
        "Revoked"
    );

    // --end gives the end time instead of a duration.
    let end = app.now() + SignedDuration::from_mins(30);
    let ended: AccessRequest = run(
        &app,
        &t,
        &[
            "access",
            "start",
            VM,
            "--port",
            "22",
            "--end",
            &end.to_string(),
            "--source",
            "10.9.0.9",
            "-o",
            "json",
        ],
    )
    .await
    .ok()
    .typed();
    assert_eq!(ended.virtual_machines[0].ports[0].end_time_utc, end);
    // Errors: usage (2) before any call, server refusals (1) naming what to fix.
    run(
        &app,
        &t,
        &["access", "start", VM, "--port", "22", "--duration", "soon"],
    )
    .await
    .fails(2, "not a duration");
    run(
        &app,
        &t,
        &["access", "start", VM, "--port", "99999", "--duration", "1h"],
    )
    .await
    .fails(2, "port number");
    run(
        &app,
        &t,
        &["access", "start", VM, "--port", "22", "--duration", "5h"],
    )
    .await
    .fails(1, "longer than the policy's maximum");
    // A machine under another policy cannot share the request; one without a policy says how
    // to fix it.
    let other = "/subscriptions/s1/resourceGroups/rg2/machines/vm2";
    let other_policy = "/subscriptions/s1/resourceGroups/rg2/jitNetworkAccessPolicies/default";
    run(
        &app,
        &t,
        &[
            "machine",
            "add",
            other,
            "--os",
            "linux",
            "--address",
            "10.2.0.4",
        ],
    )
    .await
    .ok();
    run(
        &app,
        &t,
        &["access", "start", other, "--port", "22", "--duration", "1h"],
    )
    .await
    .fails(1, "ajar policy enable");
    run(
        &app,
        &t,
        &[
            "policy",
            "set",
            other_policy,
            "--machine",
            other,
            "--port",
            "22",
        ],
    )
    .await
    .ok();
    run(
        &app,
        &t,
        &[
            "access",
            "start",
            other,
            VM,
            "--port",
            "22",
            "--duration",
            "1h",
        ],
    )
    .await
    .fails(2, "per policy");
    run(
        &app,
        &t,
        &[
            "machine",
            "add",
            "vm1",
            "--os",
            "linux",
            "--address",
            "10.0.0.1",
        ],
    )
    .await
    .fails(2, "full id");
    run(
        &app,
        &t,
        &["machine", "show", &format!("{RG}/machines/nope")],
    )
    .await
    .fails(1, "NotFound");
    // Without --scope: every machine the caller may see.
    let everywhere = run(&app, &t, &["machine", "list"]).await.ok().stdout;
    assert!(
        everywhere.contains("vm1") && everywhere.contains("vm2"),
        "{everywhere}"
    );
    run_with(&app, None, &["machine", "list", "--scope", RG], &[])
        .await
        .fails(2, "no token");
    run_with(
        &app,
        Some("ajar_wrong"),
        &["machine", "list", "--scope", RG],
        &[],
    )
    .await
    .fails(1, "Unauthenticated");
    run(&app, &t, &["machine", "rm", WIN])
        .await
        .fails(1, "covered by policy");
}

#[tokio::test(flavor = "multi_thread")]
async fn access_start_wait_prints_where_to_connect_once_the_agent_reports() {
    let app = TestApp::spawn().await;
    let t = admin(&app);
    machines_and_policy(&app).await;
    let (agent, _) = app.agent("agent-1", &[VM], None).await;
    let stdout = start_and_report(&app, &agent, VM, "22", "10.9.0.2").await;
    assert!(
        stdout.contains("10.1.0.4:22"),
        "the machine's address: {stdout}"
    );
    // Behind a gateway: the mapped port on the gateway's address.
    run(&app, &t, &["policy", "enable", WIN]).await.ok();
    let (gateway, _) = app
        .agent("gw-1", &[WIN], Some(("203.0.113.9", "40000-40009")))
        .await;
    let stdout = start_and_report(&app, &gateway, WIN, "3389", "10.9.0.4").await;
    assert!(
        stdout.contains("203.0.113.9:40000"),
        "the gateway's mapping: {stdout}"
    );
    // Without an agent's report it gives up after the timeout with one line.
    run(
        &app,
        &t,
        &[
            "access",
            "start",
            VM,
            "--port",
            "22",
            "--duration",
            "1h",
            "--source",
            "10.9.0.3",
            "--wait",
            "--wait-timeout",
            "1s",
        ],
    )
    .await
    .fails(1, "not reported open");
}

/// Declares the actions `NS.orders/read` and `NS.orders/write` at the application `app` and a
/// role Contributor over both, from the terminal.
async fn contributor(app: &TestApp, id: &str, ns: &str) {
    let t = admin(app);
    let (read, write, all) = (
        format!("{ns}.orders/read"),
        format!("{ns}.orders/write"),
        format!("{ns}.orders/*"),
    );
    run(
        app,
        &t,
        &[
            "app",
            "actions",
            id,
            "--namespace",
            ns,
            "--action",
            &read,
            "--action",
            &write,
        ],
    )
    .await
    .ok();
    run(
        app,
        &t,
        &["app", "roledef", "put", id, "Contributor", "--action", &all],
    )
    .await
    .ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn roles_approvals_and_access_control_from_the_terminal() {
    let app = TestApp::spawn().await;
    let t = admin(&app);
    run(
        &app,
        &t,
        &[
            "app",
            "set",
            APP,
            "--publisher",
            "acme",
            "--approval",
            "manual",
            "--approver",
            "user:bob",
            "--max",
            "8h",
        ],
    )
    .await
    .ok();
    contributor(&app, APP, "crm").await;
    run(
        &app,
        &t,
        &[
            "app",
            "role",
            "add",
            APP,
            "--id",
            "alice",
            "--principal",
            "alice",
            "--role",
            "Contributor",
        ],
    )
    .await
    .ok();
    assert!(
        run(&app, &t, &["app", "role", "list", APP])
            .await
            .ok()
            .stdout
            .contains("Contributor")
    );
    for (who, role) in [("alice", "JitRequester"), ("bob", "Approver")] {
        run(
            &app,
            &t,
            &[
                "assignment",
                "set",
                &format!("{who}-a"),
                "--principal",
                who,
                "--role",
                role,
                "--scope",
                RG,
            ],
        )
        .await
        .ok();
    }
    let alice = run(
        &app,
        &t,
        &["token", "create", "--principal", "alice", "-o", "json"],
    )
    .await
    .ok()
    .json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let bob = run(
        &app,
        &t,
        &["token", "create", "--principal", "bob", "-o", "json"],
    )
    .await
    .ok()
    .json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let asked: JitRequest = run(
        &app,
        &alice,
        &[
            "app",
            "activate",
            APP,
            "--role",
            "Contributor",
            "--duration",
            "2h",
            "--reason",
            "incident",
            "-o",
            "json",
        ],
    )
    .await
    .ok()
    .typed();
    assert_eq!(
        asked.properties.jit_request_state,
        ajar_core::lifecycle::RequestState::Pending
    );
    let inbox = run(&app, &bob, &["inbox"]).await.ok();
    assert!(inbox.stdout.contains(&asked.id), "{}", inbox.stdout);
    run(&app, &alice, &["approve", &asked.id, "--reason", "self"])
        .await
        .fails(1, "AuthorizationFailed");
    run(&app, &bob, &["approve", &asked.id])
        .await
        .fails(2, "--reason");
    let approved = run(
        &app,
        &bob,
        &["approve", &asked.id, "--reason", "looked", "-o", "json"],
    )
    .await
    .ok()
    .json();
    assert_eq!(approved["properties"]["jitRequestState"], "Active");
    let mine = run(&app, &alice, &["request", "list", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(mine["value"][0]["id"], asked.id.as_str());
    assert!(
        run(&app, &alice, &["request", "show", &asked.id])
            .await
            .ok()
            .stdout
            .contains("Active")
    );
    // An extension is a new request, decided like one.
    let ext = run(
        &app,
        &alice,
        &[
            "access",
            "extend",
            &asked.id,
            "--duration",
            "1h",
            "-o",
            "json",
        ],
    )
    .await
    .ok()
    .json();
    assert_eq!(ext["properties"]["jitRequestState"], "Pending");
    assert_eq!(ext["properties"]["extends"], asked.id.as_str());
    let ext_id = ext["id"].as_str().unwrap().to_owned();
    run(&app, &alice, &["request", "cancel", &ext_id])
        .await
        .ok();
    run(&app, &alice, &["request", "cancel", &ext_id])
        .await
        .fails(1, "Conflict");
    run(&app, &alice, &["request", "revoke", &asked.id])
        .await
        .ok();
    let shown = run(&app, &t, &["app", "show", APP]).await.ok();
    assert!(
        shown.stdout.contains("alice"),
        "last user: {}",
        shown.stdout
    );

    // Roles, assignments, groups, tokens, agents, settings.
    run(
        &app,
        &t,
        &[
            "role",
            "set",
            "Auditor",
            "--action",
            "ajar.activity/read",
            "--description",
            "reads the log",
        ],
    )
    .await
    .ok();
    assert!(
        run(&app, &t, &["role", "list"])
            .await
            .ok()
            .stdout
            .contains("Auditor")
    );
    run(
        &app,
        &t,
        &["role", "set", "Typo", "--action", "ajar.nothing/read"],
    )
    .await
    .fails(1, "matches no known action");
    run(
        &app,
        &t,
        &[
            "group", "set", "ops", "--member", "alice", "--member", "bob",
        ],
    )
    .await
    .ok();
    assert!(
        run(&app, &t, &["group", "show", "ops"])
            .await
            .ok()
            .stdout
            .contains("alice,bob")
    );
    run(
        &app,
        &t,
        &[
            "assignment",
            "set",
            "ops-audit",
            "--principal",
            "group:ops",
            "--role",
            "Auditor",
            "--scope",
            "/",
        ],
    )
    .await
    .ok();
    let listed = run(
        &app,
        &t,
        &[
            "assignment",
            "list",
            "--principal",
            "group:ops",
            "-o",
            "json",
        ],
    )
    .await
    .ok()
    .json();
    assert_eq!(listed["value"].as_array().unwrap().len(), 1);
    run(&app, &t, &["role", "rm", "Auditor"])
        .await
        .fails(1, "used by");
    run(&app, &t, &["assignment", "rm", "ops-audit"]).await.ok();
    run(&app, &t, &["role", "rm", "Auditor"]).await.ok();
    run(&app, &t, &["group", "rm", "ops"]).await.ok();
    let tokens = run(&app, &alice, &["token", "list", "-o", "json"])
        .await
        .ok()
        .json();
    assert!(
        tokens["value"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["principal"] == "alice")
    );
    let id = tokens["value"][0]["id"].as_str().unwrap().to_owned();
    run(&app, &alice, &["token", "rm", &id]).await.ok();
    run(&app, &alice, &["token", "list"])
        .await
        .fails(1, "Unauthenticated");
    run(
        &app,
        &t,
        &[
            "machine",
            "add",
            VM,
            "--os",
            "linux",
            "--address",
            "10.1.0.4",
        ],
    )
    .await
    .ok();
    let agent = run(
        &app,
        &t,
        &[
            "agent",
            "add",
            "edge-1",
            "--machine",
            VM,
            "--address-prefix",
            "10.1.0.0/24",
            "-o",
            "json",
        ],
    )
    .await
    .ok()
    .json();
    assert!(agent["token"].as_str().unwrap().starts_with("ajar_"));
    assert_eq!(agent["addressPrefixes"], serde_json::json!(["10.1.0.0/24"]));
    // The guarded machine's address stays inside the agent's network.
    run(
        &app,
        &t,
        &[
            "machine",
            "add",
            VM,
            "--os",
            "linux",
            "--address",
            "10.9.0.1",
        ],
    )
    .await
    .fails(1, "outside the networks");
    assert!(
        run(&app, &t, &["agent", "list"])
            .await
            .ok()
            .stdout
            .contains("edge-1")
    );
    run(&app, &t, &["agent", "rm", agent["id"].as_str().unwrap()])
        .await
        .ok();
    run(&app, &t, &["settings", "set", RG, "--jit", "off"])
        .await
        .ok();
    assert_eq!(
        run(&app, &t, &["settings", "get", RG, "-o", "json"])
            .await
            .ok()
            .json()["jitEnabled"],
        false
    );
}

/// A new token for `who`, made by the admin from the terminal.
async fn token_for(app: &TestApp, who: &str) -> String {
    run(
        app,
        &admin(app),
        &["token", "create", "--principal", who, "-o", "json"],
    )
    .await
    .ok()
    .json()["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_application_declares_actions_and_roles_and_users_see_their_own_from_the_terminal() {
    let app = TestApp::spawn().await;
    let t = admin(&app);
    run(
        &app,
        &t,
        &[
            "app",
            "set",
            APP,
            "--approval",
            "manual",
            "--approver",
            "user:bob",
        ],
    )
    .await
    .ok();
    // Nothing declared yet.
    let none = run(&app, &t, &["app", "actions", APP, "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(
        (none["namespace"].as_str(), none["actions"].clone()),
        (Some(""), json!([]))
    );
    let shown = run(&app, &t, &["app", "actions", APP]).await.ok();
    assert!(shown.stdout.contains("namespace:    -"), "{}", shown.stdout);

    // Declare, then show as a table and as the API's JSON.
    let declared = run(
        &app,
        &t,
        &[
            "app",
            "actions",
            APP,
            "--namespace",
            "crm",
            "--action",
            "crm.orders/write",
            "--action",
            "crm.orders/read",
            "--action",
            "crm.invoices/read",
        ],
    )
    .await
    .ok();
    assert_eq!(
        declared.stdout,
        format!("{APP} declares 3 action(s) in crm\n")
    );
    let shown = run(&app, &t, &["app", "actions", APP]).await.ok();
    assert!(
        shown
            .stdout
            .contains("actions:      crm.invoices/read,crm.orders/read,crm.orders/write"),
        "{}",
        shown.stdout
    );
    assert!(
        shown.stdout.contains("namespace:    crm"),
        "{}",
        shown.stdout
    );
    // Bad input: one line, the right exit code.
    run(&app, &t, &["app", "actions", APP, "--action", "crm.x"])
        .await
        .fails(2, "--namespace");
    run(
        &app,
        &t,
        &[
            "app",
            "actions",
            APP,
            "--namespace",
            "ajar",
            "--action",
            "ajar.x",
        ],
    )
    .await
    .fails(1, "(at namespace) [HTTP 400]");
    run(&app, &t, &["app", "actions", "crm"])
        .await
        .fails(2, "not a resource id");

    // Roles over the declared actions.
    let put = run(
        &app,
        &t,
        &[
            "app",
            "roledef",
            "put",
            APP,
            "Contributor",
            "--action",
            "crm.orders/*",
            "--description",
            "Works on orders",
        ],
    )
    .await
    .ok();
    assert_eq!(
        put.stdout,
        format!("role Contributor of {APP} saved; it allows crm.orders/read,crm.orders/write\n")
    );
    run(
        &app,
        &t,
        &["app", "roledef", "put", APP, "Reader", "--action", "*/read"],
    )
    .await
    .ok();
    // A pattern that matches no declared action, a bad name, no pattern at all.
    run(
        &app,
        &t,
        &[
            "app",
            "roledef",
            "put",
            APP,
            "Refunds",
            "--action",
            "crm.refunds/*",
        ],
    )
    .await
    .fails(1, "(at actions[0]) [HTTP 400]");
    run(
        &app,
        &t,
        &[
            "app",
            "roledef",
            "put",
            APP,
            "bad name",
            "--action",
            "crm.orders/*",
        ],
    )
    .await
    .fails(1, "ROLE: role name \"bad name\"");
    run(&app, &t, &["app", "roledef", "put", APP, "Contributor"])
        .await
        .fails(2, "--action");
    let listed = run(&app, &t, &["app", "roledef", "list", APP]).await.ok();
    let lines: Vec<&str> = listed.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", listed.stdout);
    assert!(lines[0].starts_with("NAME"), "{}", listed.stdout);
    assert!(
        lines[1].starts_with("Contributor")
            && lines[1].contains("crm.orders/*")
            && lines[1].contains("crm.orders/read,crm.orders/write")
            && lines[1].ends_with("Works on orders"),
        "{}",
        listed.stdout
    );
    assert!(
        lines[2].starts_with("Reader") && lines[2].contains("crm.invoices/read,crm.orders/read"),
        "{}",
        listed.stdout
    );
    let json = run(&app, &t, &["app", "roledef", "list", APP, "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(json["value"].as_array().unwrap().len(), 2, "{json}");
    let reader = run(
        &app,
        &t,
        &["app", "roledef", "show", APP, "Reader", "-o", "json"],
    )
    .await
    .ok()
    .json();
    assert_eq!(
        reader["allowedActions"],
        json!(["crm.invoices/read", "crm.orders/read"])
    );
    let shown = run(&app, &t, &["app", "roledef", "show", APP, "Contributor"])
        .await
        .ok();
    assert!(
        shown
            .stdout
            .contains("allows:       crm.orders/read,crm.orders/write"),
        "{}",
        shown.stdout
    );

    // A group is eligible for Contributor; an unknown role cannot be named.
    run(&app, &t, &["group", "set", "devs", "--member", "alice"])
        .await
        .ok();
    run(
        &app,
        &t,
        &[
            "app",
            "role",
            "add",
            APP,
            "--id",
            "devs",
            "--principal",
            "group:devs",
            "--role",
            "Contributor",
        ],
    )
    .await
    .ok();
    run(
        &app,
        &t,
        &[
            "app",
            "role",
            "add",
            APP,
            "--id",
            "carol",
            "--principal",
            "carol",
            "--role",
            "Contributer",
        ],
    )
    .await
    .fails(1, "(at roleDefinition) [HTTP 400]");
    // A role in use stays.
    run(&app, &t, &["app", "roledef", "delete", APP, "Contributor"])
        .await
        .fails(1, "is used by eligible role devs");

    // alice sees the role she may activate through her group; bob sees none.
    let alice = token_for(&app, "alice").await;
    let bob = token_for(&app, "bob").await;
    let mine = run(&app, &alice, &["app", "mine"]).await.ok();
    let lines: Vec<&str> = mine.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", mine.stdout);
    assert!(lines[0].starts_with("APPLICATION"), "{}", mine.stdout);
    assert!(
        lines[1].starts_with(APP) && lines[1].contains("Contributor  group:devs  devs"),
        "{}",
        mine.stdout
    );
    let here = run(&app, &alice, &["app", "mine", APP, "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(here["value"].as_array().unwrap().len(), 1, "{here}");
    assert_eq!(here["value"][0]["roleDefinition"], "Contributor");
    let elsewhere = run(
        &app,
        &alice,
        &[
            "app",
            "mine",
            "/subscriptions/s1/resourceGroups/rg1/applications/erp",
            "-o",
            "json",
        ],
    )
    .await
    .ok()
    .json();
    assert_eq!(elsewhere["value"], json!([]));
    let theirs = run(&app, &bob, &["app", "mine", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(theirs["value"], json!([]));
    run(&app, &alice, &["app", "mine", "crm"])
        .await
        .fails(2, "not a resource id");
    run(
        &app,
        &alice,
        &["app", "mine", "/subscriptions/s1/resourceGroups/rg1"],
    )
    .await
    .fails(1, "(at applicationId) [HTTP 400]");

    // Once nobody is eligible for it, the role can go.
    run(&app, &t, &["app", "role", "rm", APP, "devs"])
        .await
        .ok();
    let removed = run(&app, &t, &["app", "roledef", "delete", APP, "Contributor"])
        .await
        .ok();
    assert_eq!(
        removed.stdout,
        format!("role Contributor of {APP} removed\n")
    );
    run(&app, &t, &["app", "roledef", "show", APP, "Contributor"])
        .await
        .fails(1, "[HTTP 404]");
    let left = run(&app, &t, &["app", "roledef", "list", APP, "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(left["value"][0]["name"], "Reader");
    assert_eq!(left["value"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn activity_from_the_terminal() {
    let app = TestApp::spawn().await;
    let t = admin(&app);
    machines_and_policy(&app).await;
    let list: List<ActivityRecord> = run(
        &app,
        &t,
        &[
            "activity", "list", "--scope", RG, "--top", "2", "-o", "json",
        ],
    )
    .await
    .ok()
    .typed();
    assert_eq!(list.value.len(), 2);
    assert_eq!(list.value[0].action, "ajar.jit/policies/write");
    let table = run(&app, &t, &["activity", "list", "--principal", "admin"])
        .await
        .ok();
    assert!(table.stdout.starts_with("ID"), "{}", table.stdout);
    let file = app.db_path().with_file_name("export.csv");
    let f = file.to_str().unwrap();
    run(&app, &t, &["activity", "export", "--csv", "--file", f])
        .await
        .ok();
    let csv = std::fs::read_to_string(&file).unwrap();
    assert!(csv.starts_with("id,time,principal,"), "{csv}");
    assert_eq!(csv.lines().count(), 1 + 4, "header and four records: {csv}");
    let stdout = run(
        &app,
        &t,
        &[
            "activity",
            "export",
            "--csv",
            "--action",
            "ajar.machines/write",
        ],
    )
    .await
    .ok()
    .stdout;
    assert_eq!(stdout.lines().count(), 3);
    assert!(
        run(&app, &t, &["activity", "verify"])
            .await
            .ok()
            .stdout
            .starts_with("ok: 4 records verify")
    );
    run(&app, &t, &["activity", "list", "--from", "yesterday"])
        .await
        .fails(2, "not an instant");
}

const DESIRED: &str = r#"
machines:
  - id: /subscriptions/s1/resourceGroups/rg1/machines/vm1
    properties: {os: linux, addresses: [10.1.0.4]}
policies:
  - id: /subscriptions/s1/resourceGroups/rg1/jitNetworkAccessPolicies/default
    properties:
      virtualMachines:
        - id: /subscriptions/s1/resourceGroups/rg1/machines/vm1
          ports:
            - {number: 22, protocol: "*", allowedSourceAddressPrefix: "*", maxRequestAccessDuration: PT3H}
applications:
  - id: /subscriptions/s1/resourceGroups/rg1/applications/crm
    properties:
      jitAccessPolicy: {jitApprovalMode: ManualApprove, jitApprovers: [{id: bob, type: user}]}
    actions: {namespace: crm, actions: [crm.orders/write, crm.orders/read]}
    roleDefinitions:
      - {name: Contributor, actions: [crm.orders/*], description: Works on orders}
    eligibleRoles:
      - {id: alice, principal: alice, roleDefinition: Contributor}
roleAssignments:
  - {id: alice-requester, principal: alice, roleDefinition: JitRequester, scope: /subscriptions/s1}
"#;

async fn records(app: &TestApp) -> i64 {
    let v: Value = app.admin.get("/api/v1/activity/verify").await.unwrap();
    v["records"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_is_idempotent_and_dry_run_changes_nothing() {
    let app = TestApp::spawn().await;
    let t = admin(&app);
    let file = app.db_path().with_file_name("desired.yaml");
    std::fs::write(&file, DESIRED).unwrap();
    let f = file.to_str().unwrap();
    let before = records(&app).await;
    // Seven objects: the machine, the policy, the application, its actions, its Contributor
    // role, the eligibility that names that role, and the role assignment.
    let dry = run(&app, &t, &["apply", "-f", f, "--dry-run"]).await.ok();
    let created: Vec<&str> = dry
        .stdout
        .lines()
        .filter(|l| l.starts_with("+ create"))
        .collect();
    assert_eq!(created.len(), 7, "{}", dry.stdout);
    // The application's actions and role come after it and before its eligibility.
    let at = |what: &str| {
        created
            .iter()
            .position(|l| l.starts_with(&format!("+ create {what} ")))
            .unwrap_or_else(|| panic!("{what} in {}", dry.stdout))
    };
    assert!(at("application") < at("actions"), "{}", dry.stdout);
    assert!(at("actions") < at("role definition"), "{}", dry.stdout);
    assert!(
        at("role definition") < at("eligible role"),
        "{}",
        dry.stdout
    );
    assert!(
        dry.stdout.contains(&format!(
            "+ create role definition {APP}/roleDefinitions/Contributor"
        )),
        "{}",
        dry.stdout
    );
    assert!(
        dry.stdout
            .ends_with("dry run: 7 to create, 0 to update, 0 unchanged\n"),
        "{}",
        dry.stdout
    );
    assert_eq!(records(&app).await, before, "a dry run changes nothing");
    let applied = run(&app, &t, &["apply", "-f", f, "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(
        (applied["create"].as_u64(), applied["update"].as_u64()),
        (Some(7), Some(0))
    );
    let after = records(&app).await;
    assert_eq!(after, before + 7);
    let role = run(
        &app,
        &t,
        &["app", "roledef", "show", APP, "Contributor", "-o", "json"],
    )
    .await
    .ok()
    .json();
    assert_eq!(
        role["allowedActions"],
        json!(["crm.orders/read", "crm.orders/write"])
    );
    assert_eq!(role["description"], "Works on orders");
    // Actions written in another order than the server keeps them are still unchanged.
    let again = run(&app, &t, &["apply", "-f", f]).await.ok();
    assert!(
        again
            .stdout
            .ends_with("0 to create, 0 to update, 7 unchanged\n"),
        "{}",
        again.stdout
    );
    assert_eq!(records(&app).await, after, "a second apply writes nothing");
    // A changed file shows the difference, and only that object is written.
    std::fs::write(&file, DESIRED.replace("PT3H", "PT2H")).unwrap();
    let diff = run(&app, &t, &["apply", "-f", f, "--dry-run"]).await.ok();
    assert!(diff.stdout.contains("~ update policy"), "{}", diff.stdout);
    assert!(
        diff.stdout
            .contains("maxRequestAccessDuration: \"PT3H\" → \"PT2H\""),
        "{}",
        diff.stdout
    );
    run(&app, &t, &["apply", "-f", f]).await.ok();
    assert_eq!(records(&app).await, after + 1);
    // A new action is declared; the role's patterns are as they were.
    let latest = DESIRED
        .replace("PT3H", "PT2H")
        .replace("crm.orders/read]", "crm.orders/read, crm.orders/delete]");
    std::fs::write(&file, &latest).unwrap();
    let more = run(&app, &t, &["apply", "-f", f]).await.ok();
    assert!(
        more.stdout
            .contains(&format!("~ update actions {APP}/actions")),
        "{}",
        more.stdout
    );
    assert!(
        more.stdout
            .ends_with("0 to create, 1 to update, 6 unchanged\n"),
        "{}",
        more.stdout
    );
    assert_eq!(records(&app).await, after + 2);
    let role = run(
        &app,
        &t,
        &["app", "roledef", "show", APP, "Contributor", "-o", "json"],
    )
    .await
    .ok()
    .json();
    assert_eq!(
        role["allowedActions"],
        json!(["crm.orders/delete", "crm.orders/read", "crm.orders/write"])
    );
    // An eligibility naming a role the file does not define is refused by the server.
    std::fs::write(
        &file,
        latest.replace(
            "roleDefinition: Contributor}",
            "roleDefinition: Contributer}",
        ),
    )
    .unwrap();
    run(&app, &t, &["apply", "-f", f])
        .await
        .fails(1, "(at roleDefinition) [HTTP 400]");
    assert_eq!(records(&app).await, after + 2, "nothing else was written");
    // Bad files are refused before anything is sent.
    std::fs::write(&file, "machines: [{id: /x, properties: {}, color: red}]").unwrap();
    run(&app, &t, &["apply", "-f", f])
        .await
        .fails(2, "unknown field");
    std::fs::write(
        &file,
        DESIRED.replace("{name: Contributor,", "{name: Contri butor,"),
    )
    .unwrap();
    let before_bad = records(&app).await;
    run(&app, &t, &["apply", "-f", f])
        .await
        .fails(2, "role name \"Contri butor\"");
    assert_eq!(records(&app).await, before_bad, "nothing was sent");
    std::fs::write(&file, "machines: [ unclosed").unwrap();
    run(&app, &t, &["apply", "-f", f])
        .await
        .fails(2, "neither JSON nor YAML");
    run(&app, &t, &["apply", "-f", "/nonexistent.yaml"])
        .await
        .fails(1, "cannot read");
}

#[tokio::test(flavor = "multi_thread")]
async fn login_writes_a_private_profile_that_later_commands_use() {
    use std::os::unix::fs::PermissionsExt;
    let app = TestApp::spawn().await;
    let t = admin(&app);
    let config = app.db_path().with_file_name("cli.toml");
    let out = run_with(
        &app,
        None,
        &[
            "login",
            "--url",
            &app.base,
            "--token",
            &t,
            "--profile",
            "lab",
        ],
        &[],
    )
    .await
    .ok();
    assert!(out.stdout.contains("profile \"lab\""), "{}", out.stdout);
    let mode = std::fs::metadata(&config).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(
        std::fs::read_to_string(&config)
            .unwrap()
            .contains("[profiles.lab]")
    );
    // No URL or token in the environment: the profile supplies both.
    let mut cmd = ajar();
    cmd.args(["role", "list", "-o", "json"])
        .env("AJAR_CLI_CONFIG", &config);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    // A broken file stops only commands that need it.
    std::fs::write(&config, "default = [").unwrap();
    run(&app, &t, &["role", "list"]).await.ok();
    run_with(&app, None, &["role", "list"], &[])
        .await
        .fails(1, "cli.toml");
    std::fs::remove_file(&config).unwrap();
    run_with(&app, None, &["role", "list", "--profile", "nope"], &[])
        .await
        .fails(2, "no profile named");
    run_with(
        &app,
        None,
        &["login", "--url", &app.base, "--token", "ajar_bad"],
        &[],
    )
    .await
    .fails(1, "login refused");
}

#[tokio::test(flavor = "multi_thread")]
async fn completions_and_man_pages_are_generated() {
    for shell in ["bash", "zsh", "fish"] {
        let out = ajar().args(["completions", shell]).output().unwrap();
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("machine") && text.contains("access"),
            "{shell}"
        );
    }
    let out = ajar().args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let dir = tempfile::tempdir().unwrap();
    let out = ajar()
        .args(["man", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    for page in [
        "ajar.1",
        "ajar-access-start.1",
        "ajar-apply.1",
        "ajar-agent-add.1",
    ] {
        let text = std::fs::read_to_string(dir.path().join(page)).unwrap();
        assert!(text.contains(".TH"), "{page}");
    }
}

/// Runs `ajar access start MACHINE --port PORT --wait` and, acting as `agent`, reports the new
/// request's port open once it exists; answers what the command printed.
async fn start_and_report(
    app: &TestApp,
    agent: &ajar_api::Client,
    machine: &str,
    port: &str,
    source: &str,
) -> String {
    let before: Value = app
        .admin
        .get(&format!("/api/v1{POLICY}/requests"))
        .await
        .unwrap();
    let known: Vec<Value> = before["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].clone())
        .collect();
    let mut cmd = ajar();
    cmd.args([
        "access",
        "start",
        machine,
        "--port",
        port,
        "--duration",
        "1h",
    ])
    .args(["--source", source, "--wait", "--wait-timeout", "30s"])
    .env("AJAR_URL", &app.base)
    .env("AJAR_TOKEN", &app.admin_token)
    .env("AJAR_CLI_CONFIG", app.db_path().with_file_name("cli.toml"));
    let waiting = tokio::task::spawn_blocking(move || cmd.output().unwrap());
    let id = loop {
        let reqs: Value = app
            .admin
            .get(&format!("/api/v1{POLICY}/requests"))
            .await
            .unwrap();
        let new = reqs["value"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| !known.contains(&r["id"]))
            .and_then(|r| r["id"].as_str().map(str::to_owned));
        if let Some(id) = new {
            break id;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(!waiting.is_finished(), "--wait waits for the agent");
    let _: Value = agent
        .post(
            "/api/v1/agent/report",
            &json!({"version":"t","appliedRevision":1,
            "opened":[{"requestId":id,"seq":0,"at":app.now().to_string()}]}),
        )
        .await
        .unwrap_or(json!({}));
    let out = waiting.await.unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A server trusting a fresh test identity provider, with both clocks at the wall clock (the
/// CLI judges its saved token's expiry by the wall clock).
async fn with_identity_provider() -> (TestApp, ajar_testkit::idp::TestIdp, jiff::Timestamp) {
    use ajar_oidc::{IssuerConfig, Providers};
    use ajar_testkit::idp::{CLIENT_ID, TestIdp};
    #[allow(
        clippy::disallowed_methods,
        reason = "the CLI compares expiry with the wall clock"
    )]
    let wall = jiff::Timestamp::now();
    let idp = TestIdp::start(wall).await;
    let config = IssuerConfig::new(idp.issuer.clone(), CLIENT_ID);
    let app =
        TestApp::spawn_with(move |s| s.with_oidc(Providers::new(vec![config]).unwrap())).await;
    app.advance(wall.duration_since(app.now()));
    (app, idp, wall)
}

fn saved(config: &std::path::Path, profile: &str, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(config).unwrap();
    let file: toml::Table = toml::from_str(&text).unwrap();
    file["profiles"][profile]
        .get(key)
        .and_then(|v| v.as_str())
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread")]
async fn login_through_the_identity_provider_uses_the_device_flow_and_renews_its_token() {
    let (app, idp, wall) = with_identity_provider().await;
    let config = app.db_path().with_file_name("cli.toml");
    let login = ["login", "--oidc", "--url", &app.base, "--profile", "sso"];
    let out = run_with(&app, None, &login, &[]).await.ok();
    assert!(
        out.stderr.contains("enter the code WDJB-"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(&format!("{}/activate", idp.issuer)),
        "{}",
        out.stderr
    );
    assert!(
        out.stdout.contains("as alice through") && out.stdout.contains("profile \"sso\""),
        "{}",
        out.stdout
    );
    let token = saved(&config, "sso", "token").unwrap();
    assert_eq!(
        saved(&config, "sso", "issuer").as_deref(),
        Some(idp.issuer.as_str())
    );
    assert!(saved(&config, "sso", "refresh_token").is_some());

    // Later commands use the saved token; its groups come with it.
    let whoami = || {
        let mut cmd = super::ajar();
        cmd.args(["whoami", "-o", "json"])
            .env("AJAR_CLI_CONFIG", &config);
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
    };
    let out = whoami().await.unwrap();
    assert!(out.status.success(), "{out:?}");
    let me: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (me["principal"].as_str(), &me["groups"]),
        (Some("alice"), &json!(["dba", "ops"]))
    );
    assert_eq!(
        saved(&config, "sso", "token").unwrap(),
        token,
        "a fresh token is kept"
    );

    // A token about to expire is renewed with the refresh token before use, and saved.
    idp.set_now(wall - SignedDuration::from_secs(3600 - 30));
    run_with(&app, None, &login, &[]).await.ok();
    let expiring = saved(&config, "sso", "token").unwrap();
    idp.set_now(wall);
    let out = whoami().await.unwrap();
    assert!(out.status.success(), "{out:?}");
    let renewed = saved(&config, "sso", "token").unwrap();
    assert_ne!(renewed, expiring);
    let exp = ajar_oidc::flows::unverified_claim(&renewed, "exp").unwrap();
    assert_eq!(exp.as_i64(), Some(wall.as_second() + 3600));

    // A refresh token the provider no longer honours: one line saying what to do.
    idp.set_now(wall - SignedDuration::from_secs(3600 - 30));
    run_with(&app, None, &login, &[]).await.ok();
    let text = std::fs::read_to_string(&config).unwrap();
    let refresh = saved(&config, "sso", "refresh_token").unwrap();
    std::fs::write(&config, text.replace(&refresh, "refresh-revoked")).unwrap();
    run_with(&app, None, &["whoami"], &[])
        .await
        .fails(1, "run ajar login --oidc");

    // A server that trusts no provider says so.
    let plain = TestApp::spawn().await;
    run_with(
        &plain,
        None,
        &["login", "--oidc", "--url", &plain.base],
        &[],
    )
    .await
    .fails(1, "trusts no identity provider");
    run_with(
        &app,
        None,
        &[
            "login",
            "--oidc",
            "--issuer",
            "https://other.example.com",
            "--url",
            &app.base,
        ],
        &[],
    )
    .await
    .fails(2, "--issuer");
}

#[tokio::test(flavor = "multi_thread")]
async fn access_start_wait_fails_at_once_without_a_live_agent_and_shows_progress() {
    let app = TestApp::spawn().await;
    let t = admin(&app);
    machines_and_policy(&app).await;
    let start = [
        "access",
        "start",
        VM,
        "--port",
        "22",
        "--duration",
        "1h",
        "--source",
        "10.9.0.3",
        "--wait",
    ];
    // No agent guards vm1: it says so before asking, and names the commands that fix it.
    let out = run(&app, &t, &start).await;
    out.fails(1, "no live agent guards this machine");
    assert!(
        out.stderr
            .contains(&format!("ajar agent add vm1-agent --machine {VM}"))
            && out
                .stderr
                .contains(&format!("ajar agent --server {} --token TOKEN", app.base)),
        "{}",
        out.stderr
    );
    let asked: List<AccessRequest> = run(
        &app,
        &t,
        &["access", "list", "--policy", POLICY, "-o", "json"],
    )
    .await
    .ok()
    .typed();
    assert!(asked.value.is_empty(), "nothing was asked: {asked:?}");
    // With a live agent that does not report, progress lines come on stderr while it waits.
    app.agent("agent-1", &[VM], None).await;
    let mut args = start.to_vec();
    args.extend(["--wait-timeout", "6s"]);
    let out = run(&app, &t, &args).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr
            .contains("ajar: waiting for agent agent-1 to open port 22 on vm1 … 5 s"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .lines()
            .last()
            .unwrap()
            .contains("not reported open within 6 s"),
        "{}",
        out.stderr
    );
}

/// Runs `ajar ARGS` with standard output a pipe whose reader is already gone.
fn into_closed_pipe(app: &TestApp, args: &[&str]) -> std::process::Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    ajar()
        .args(args)
        .env("AJAR_URL", &app.base)
        .env("AJAR_TOKEN", &app.admin_token)
        .env("AJAR_CLI_CONFIG", app.db_path().with_file_name("cli.toml"))
        .stdout(writer)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_closed_pipe_ends_the_command_quietly() {
    let app = TestApp::spawn().await;
    machines_and_policy(&app).await;
    for args in [
        &["completions", "bash"][..],
        &["activity", "export", "--csv"],
        &["machine", "list", "--scope", SUB],
        &["policy", "get", POLICY, "-o", "json"],
    ] {
        let app = &app;
        let args = args.to_vec();
        let out = tokio::task::block_in_place(|| into_closed_pipe(app, &args));
        assert_eq!(out.status.code(), Some(0), "{args:?}: {out:?}");
        assert!(out.stderr.is_empty(), "{args:?}: {out:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_flags_go_before_or_after_the_subcommand() {
    let app = TestApp::spawn().await;
    let t = admin(&app);
    machines_and_policy(&app).await;
    let unreachable = [("AJAR_URL", "http://127.0.0.1:1")];
    for args in [
        vec![
            "-o", "json", "--url", &app.base, "--token", &t, "machine", "list", "--scope", SUB,
        ],
        vec![
            "machine", "list", "--scope", SUB, "-o", "json", "--url", &app.base, "--token", &t,
        ],
        vec![
            "--url", &app.base, "machine", "--token", &t, "list", "--scope", SUB, "--output",
            "json",
        ],
        // After the subcommand wins.
        vec![
            "-o",
            "table",
            "--url",
            "http://127.0.0.1:1",
            "machine",
            "list",
            "--scope",
            SUB,
            "-o",
            "json",
            "--url",
            &app.base,
            "--token",
            &t,
        ],
    ] {
        let list: List<Machine> = run_with(&app, None, &args, &unreachable).await.ok().typed();
        assert_eq!(list.value.len(), 2, "{args:?}");
    }
    // The top-level help lists them; a command's help puts them under their own headings.
    let top = ajar().arg("--help").output().unwrap();
    let top = String::from_utf8_lossy(&top.stdout);
    for want in [
        "Connection options:",
        "--url <URL>",
        "--token <TOKEN>",
        "Output options:",
        "-o, --output <FORMAT>",
    ] {
        assert!(top.contains(want), "{want} in {top}");
    }
    let help = ajar().args(["access", "start", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    let own = help.split("Connection options:").next().unwrap();
    assert!(
        own.contains("--reason") && !own.contains("--url") && !own.contains("--output"),
        "{help}"
    );
    let connection = help.split("Connection options:").nth(1).unwrap();
    assert!(
        connection.contains("--url") && connection.contains("--token"),
        "{help}"
    );
    assert!(help.contains("Output options:\n  -o, --output"), "{help}");
    // They do not apply to the server.
    let out = ajar()
        .args(["--url", "http://x", "serve"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("apply to the client commands"));
}

#[tokio::test(flavor = "multi_thread")]
async fn mistyped_flags_and_subcommands_get_a_suggestion() {
    let app = TestApp::spawn().await;
    let t = admin(&app);
    run(
        &app,
        &t,
        &["access", "start", VM, "--port", "22", "--reasn", "x"],
    )
    .await
    .fails(
        2,
        "unexpected argument '--reasn' found; did you mean '--reason'?",
    );
    run(&app, &t, &["machine", "lst"])
        .await
        .fails(2, "did you mean 'list'?");
    run(&app, &t, &["machnie", "list"])
        .await
        .fails(2, "'machine'?");
}

#[tokio::test(flavor = "multi_thread")]
async fn machine_and_policy_lists_without_scope_show_what_the_caller_may_see() {
    let app = TestApp::spawn().await;
    let t = admin(&app);
    machines_and_policy(&app).await;
    let other = "/subscriptions/s2/resourceGroups/rg9/machines/vm9";
    run(
        &app,
        &t,
        &[
            "machine",
            "add",
            other,
            "--os",
            "linux",
            "--address",
            "10.2.0.9",
        ],
    )
    .await
    .ok();
    run(&app, &t, &["policy", "enable", other]).await.ok();
    let all: List<Machine> = run(&app, &t, &["machine", "list", "-o", "json"])
        .await
        .ok()
        .typed();
    let mut names: Vec<&str> = all.value.iter().map(|m| m.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["vm1", "vm9", "win1"]);
    let policies: List<Policy> = run(&app, &t, &["policy", "list", "-o", "json"])
        .await
        .ok()
        .typed();
    assert_eq!(policies.value.len(), 2, "{policies:?}");
    assert!(
        run(&app, &t, &["policy", "list"])
            .await
            .ok()
            .stdout
            .contains("vm9:22")
    );
    // A reader of one resource group sees that group's machines only.
    run(
        &app,
        &t,
        &[
            "assignment",
            "set",
            "carol-r",
            "--principal",
            "carol",
            "--role",
            "SecurityReader",
            "--scope",
            "/subscriptions/s2/resourceGroups/rg9",
        ],
    )
    .await
    .ok();
    let carol = run(
        &app,
        &t,
        &["token", "create", "--principal", "carol", "-o", "json"],
    )
    .await
    .ok()
    .json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let seen: List<Machine> = run(&app, &carol, &["machine", "list", "-o", "json"])
        .await
        .ok()
        .typed();
    let names: Vec<&str> = seen.value.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["vm9"]);
    // `access list` documents every filter.
    let help = ajar().args(["access", "list", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for want in [
        "--policy <POLICY>",
        "Only requests under this policy",
        "--machine <MACHINE>",
        "Only requests for this machine",
        "--top <TOP>",
        "give exactly one of the two",
    ] {
        assert!(help.contains(want), "{want} in {help}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ids_the_api_hands_out_are_taken_back_whole_or_short() {
    let app = TestApp::spawn().await;
    let t = admin(&app);
    machines_and_policy(&app).await;
    app.agent("agent-1", &[VM], None).await;
    let manual = json!({"properties": {
        "virtualMachines": [{"id": VM, "ports": [{"number": 22, "protocol": "*",
            "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT3H"}]}],
        "approvalMode": "ManualApprove",
        "approvers": [{"id": "bob", "type": "user"}]}});
    let _: Value = app
        .admin
        .put(&format!("/api/v1{POLICY}"), &manual)
        .await
        .unwrap();
    run(
        &app,
        &t,
        &[
            "assignment",
            "set",
            "bob-a",
            "--principal",
            "bob",
            "--role",
            "Approver",
            "--scope",
            RG,
        ],
    )
    .await
    .ok();
    let bob = run(
        &app,
        &t,
        &["token", "create", "--principal", "bob", "-o", "json"],
    )
    .await
    .ok()
    .json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let ask = |source: &'static str| {
        let (app, t) = (&app, t.clone());
        async move {
            run(
                app,
                &t,
                &[
                    "access",
                    "start",
                    VM,
                    "--port",
                    "22",
                    "--duration",
                    "1h",
                    "--source",
                    source,
                    "-o",
                    "json",
                ],
            )
            .await
            .ok()
            .typed::<AccessRequest>()
        }
    };
    let first = ask("10.9.0.3").await;
    let full = first.approval_request_id.clone().unwrap();
    assert!(
        full.ends_with(&format!("/jitRequests/{}", first.id)),
        "{full}"
    );
    // Approved by its short name, shown by its full id with or without /api/v1, and by name.
    assert!(
        run(&app, &bob, &["approve", &first.id, "--reason", "ok"])
            .await
            .ok()
            .stdout
            .contains(&full)
    );
    for id in [full.clone(), format!("/api/v1{full}"), first.id.clone()] {
        let shown = run(&app, &t, &["request", "show", &id]).await.ok();
        assert!(shown.stdout.contains(&full), "{id}: {}", shown.stdout);
    }
    // The network request: POLICY ID, its path, its approval request's id, or its id alone.
    for args in [
        vec![POLICY.to_owned(), first.id.clone()],
        vec![format!("{POLICY}/requests/{}", first.id)],
        vec![full.clone()],
        vec![first.id.clone()],
        vec![POLICY.to_owned(), full.clone()],
    ] {
        let mut cmd = vec!["access", "show"];
        cmd.extend(args.iter().map(String::as_str));
        cmd.extend(["-o", "json"]);
        let shown: AccessRequest = run(&app, &t, &cmd).await.ok().typed();
        assert_eq!(shown.id, first.id, "{args:?}");
    }
    assert!(
        run(&app, &t, &["access", "revoke", &first.id])
            .await
            .ok()
            .stdout
            .contains("revoked")
    );
    // Denied by the full id the initiate answered.
    let second = ask("10.9.0.4").await;
    let denied: JitRequest = run(
        &app,
        &bob,
        &[
            "deny",
            second.approval_request_id.as_deref().unwrap(),
            "--reason",
            "no",
            "-o",
            "json",
        ],
    )
    .await
    .ok()
    .typed();
    assert_eq!(
        denied.properties.jit_request_state,
        ajar_core::lifecycle::RequestState::Denied
    );
    // Names that match nothing, and ids of the wrong shape, say what to give.
    run(&app, &bob, &["approve", "nosuch", "--reason", "x"])
        .await
        .fails(1, "no request named \"nosuch\"");
    run(&app, &bob, &["approve", VM, "--reason", "x"])
        .await
        .fails(2, "jitRequests/NAME or the NAME alone");
    run(&app, &t, &["access", "show", "nosuch"])
        .await
        .fails(1, "no access request \"nosuch\"");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_server_down_the_error_names_the_url_and_the_fix() {
    let app = TestApp::spawn().await;
    let t = admin(&app);
    let out = run_with(
        &app,
        Some(&t),
        &["machine", "list", "--scope", SUB],
        &[("AJAR_URL", "http://127.0.0.1:1")],
    )
    .await;
    out.fails(1, "cannot reach the server at http://127.0.0.1:1 (");
    assert!(
        out.stderr.contains("check that `ajar serve` runs there"),
        "{}",
        out.stderr
    );
    // A successful --wait says which port opened, where and until when.
    machines_and_policy(&app).await;
    let (agent, _) = app.agent("agent-1", &[VM], None).await;
    let stdout = start_and_report(&app, &agent, VM, "22", "10.9.0.2").await;
    let until = (app.now() + SignedDuration::from_hours(1))
        .strftime("%Y-%m-%d %H:%M UTC")
        .to_string();
    assert!(
        stdout.contains(&format!(
            "port 22 open on vm1 until {until}; connect to 10.1.0.4:22"
        )),
        "{stdout}"
    );
    assert!(!stdout.contains("Initiated"), "{stdout}");
}

/// A TCP proxy from `port` on 127.0.0.1 to `to`, until the task is aborted (which closes its
/// connections too).
fn proxy(listener: tokio::net::TcpListener, to: String) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        while let Ok((mut inbound, _)) = listener.accept().await {
            let to = to.clone();
            connections.spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(&to).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn the_agent_logs_losing_the_server_and_reconnecting() {
    use std::os::unix::fs::PermissionsExt;
    let app = TestApp::spawn().await;
    let t = admin(&app);
    machines_and_policy(&app).await;
    let registered = run(
        &app,
        &t,
        &["agent", "add", "edge", "--machine", VM, "-o", "json"],
    )
    .await
    .ok()
    .json();
    let scratch = tempfile::tempdir().unwrap();
    let nft = scratch.path().join("nft");
    std::fs::write(&nft, "#!/bin/sh\ncat > /dev/null\n").unwrap();
    std::fs::set_permissions(&nft, std::fs::Permissions::from_mode(0o755)).unwrap();
    let log = scratch.path().join("agent.log");
    let server = app.base.trim_start_matches("http://").to_owned();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut running = proxy(listener, server.clone());
    let mut agent = ajar()
        .args([
            "agent",
            "--server",
            &format!("http://{addr}"),
            "--wait-seconds",
            "1",
            "--log",
            "ajar_agent=info",
        ])
        .arg("--nft")
        .arg(&nft)
        .env("AJAR_AGENT_TOKEN", registered["token"].as_str().unwrap())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let logged = |want: &'static str| {
        let log = log.clone();
        async move {
            for _ in 0..400 {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                if text.contains(want) {
                    return text;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            panic!(
                "{want:?} never logged: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
    };
    logged("connected to the server").await;
    running.abort();
    let _ = (&mut running).await;
    logged("lost the server").await;
    running = proxy(tokio::net::TcpListener::bind(addr).await.unwrap(), server);
    let text = logged("reconnected to the server").await;
    assert_eq!(text.matches("lost the server").count(), 1, "once: {text}");
    let _ = agent.kill();
    let _ = agent.wait();
    running.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_superseded_request_reads_the_same_in_access_list_and_request_list() {
    let app = TestApp::spawn().await;
    let t = admin(&app);
    machines_and_policy(&app).await;
    let start = [
        "access",
        "start",
        VM,
        "--port",
        "22",
        "--duration",
        "1h",
        "--source",
        "10.9.0.1",
        "-o",
        "json",
    ];
    let first: AccessRequest = run(&app, &t, &start).await.ok().typed();
    app.advance(SignedDuration::from_secs(1));
    run(&app, &t, &start).await.ok();
    let words = "Revoked (NewerRequestInitiated)";
    let access = run(&app, &t, &["access", "list", "--policy", POLICY])
        .await
        .ok();
    let line = access
        .stdout
        .lines()
        .find(|l| l.contains(&first.id))
        .unwrap_or_else(|| panic!("{}", access.stdout));
    assert!(line.contains(&format!("vm1:22 {words}")), "{line}");
    let requests = run(&app, &t, &["request", "list"]).await.ok();
    let line = requests
        .stdout
        .lines()
        .find(|l| l.contains(&first.id))
        .unwrap_or_else(|| panic!("{}", requests.stdout));
    assert!(line.contains(words), "{line}");
    assert!(
        !requests.stdout.contains("Superseded"),
        "{}",
        requests.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn agent_add_this_host_registers_a_machine_and_its_agent_and_keeps_the_token_in_a_file() {
    let app = TestApp::spawn().await;
    let t = admin(&app);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("demo.token");
    let file_arg = file.display().to_string();
    let out = run(
        &app,
        &t,
        &[
            "agent",
            "add",
            "demo",
            "--this-host",
            "--address",
            "127.0.0.1",
            "--resource-group",
            RG,
            "--token-file",
            &file_arg,
        ],
    )
    .await
    .ok();
    let machine = format!("{RG}/machines/demo");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines[0],
        format!("machine {machine} saved (linux, 127.0.0.1)"),
        "{}",
        out.stdout
    );
    assert!(
        lines[1].starts_with("agent demo registered as ")
            && lines[1].ends_with(&format!("guarding it; its token is in {file_arg}")),
        "{}",
        out.stdout
    );
    assert_eq!(lines[2], "start the agent on this host, as root:");
    assert_eq!(
        lines[3],
        format!("  ajar agent --server {} --token-file {file_arg}", app.base)
    );
    assert!(!out.stdout.contains("ajar_"), "the token is not printed");

    // The file holds the agent's token, readable by its owner only.
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let token = std::fs::read_to_string(&file).unwrap();
    let agent = app.client(Some(token.trim()));
    let state: Value = agent.get("/api/v1/agent/desiredState").await.unwrap();
    assert_eq!(state["mode"], "host");
    assert_eq!(state["machines"][0]["id"], machine.as_str());
    assert_eq!(state["machines"][0]["addresses"], json!(["127.0.0.1"]));
    let m: Machine = app.admin.get(&format!("/api/v1{machine}")).await.unwrap();
    assert_eq!(m.properties.enforcement_point.as_deref(), Some("demo"));

    // Nothing is registered when the token file exists already.
    run(
        &app,
        &t,
        &[
            "agent",
            "add",
            "again",
            "--this-host",
            "--address",
            "127.0.0.2",
            "--token-file",
            &file_arg,
        ],
    )
    .await
    .fails(1, "exists already");
    let agents: Value = app.admin.get("/api/v1/agents").await.unwrap();
    assert_eq!(agents["value"].as_array().unwrap().len(), 1);

    // Another host of the same name does not take over the machine: its addresses stay.
    let other = dir.path().join("other.token").display().to_string();
    run(
        &app,
        &t,
        &[
            "agent",
            "add",
            "demo",
            "--this-host",
            "--address",
            "127.0.0.9",
            "--resource-group",
            RG,
            "--token-file",
            &other,
        ],
    )
    .await
    .fails(1, "exists already (another host of this name?)");
    // An agent name taken elsewhere leaves no machine behind.
    let elsewhere = "/subscriptions/s1/resourceGroups/rg9";
    run(
        &app,
        &t,
        &[
            "agent",
            "add",
            "demo",
            "--this-host",
            "--address",
            "127.0.0.9",
            "--resource-group",
            elsewhere,
            "--token-file",
            &other,
        ],
    )
    .await
    .fails(1, "an agent named demo exists");
    let gone = app
        .admin
        .get::<Value>(&format!("/api/v1{elsewhere}/machines/demo"))
        .await;
    assert_eq!(gone.err().and_then(|e| e.status()), Some(404));
    let m: Machine = app.admin.get(&format!("/api/v1{machine}")).await.unwrap();
    assert_eq!(m.properties.addresses, vec!["127.0.0.1".to_owned()]);
    assert!(!std::path::Path::new(&other).exists());

    // Without a name or --address: this host's name and addresses, in the default group; the
    // token file in the working directory.
    let mut cmd = ajar();
    cmd.args(["agent", "add", "--this-host", "-o", "json"])
        .current_dir(dir.path())
        .env("AJAR_URL", &app.base)
        .env("AJAR_TOKEN", &t)
        .env("AJAR_CLI_CONFIG", dir.path().join("cli.toml"));
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    let name = answer["agent"]["name"].as_str().unwrap().to_owned();
    assert_eq!(
        answer["machine"]["id"],
        format!("/subscriptions/local/resourceGroups/local/machines/{name}")
    );
    assert!(
        !answer["machine"]["properties"]["addresses"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(answer["agent"].get("token").is_none(), "{answer}");
    let written = dir.path().join(format!("ajar-agent-{name}.token"));
    assert_eq!(answer["tokenFile"], written.display().to_string());
    assert!(
        std::fs::read_to_string(&written)
            .unwrap()
            .starts_with("ajar_")
    );

    // A gateway is not this host.
    run(
        &app,
        &t,
        &["agent", "add", "gw", "--this-host", "--mode", "gateway"],
    )
    .await
    .fails(2, "host mode");
}

/// `ajar serve --mint-owner-token` with the store `app` uses.
async fn mint(app: &TestApp, principal: &str) -> Out {
    let mut cmd = ajar();
    cmd.args(["serve", "--mint-owner-token", principal]);
    if app.database_url().starts_with("postgres") {
        cmd.args(["--database-url", app.database_url()]);
    } else {
        cmd.arg("--data-dir").arg(app.db_path().parent().unwrap());
    }
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_mints_an_owner_token_from_the_store_while_the_server_runs() {
    let app = TestApp::spawn().await;
    let out = mint(&app, "rescue").await.ok();
    let token = out.stdout.trim().to_owned();
    assert!(
        token.starts_with("ajar_") && out.stdout.lines().count() == 1,
        "{out:?}"
    );
    assert!(out.stderr.contains("ajar: data in "), "{}", out.stderr);
    assert!(
        out.stderr.contains("rescue is now Owner at /"),
        "{}",
        out.stderr
    );

    // The running server accepts it, as an Owner at /.
    let rescue = app.client(Some(&token));
    let me: Value = rescue.get("/api/v1/me").await.unwrap();
    assert_eq!(me["principal"], "rescue");
    let _: Value = rescue
        .put(
            "/api/v1/roleAssignments/rescue-check",
            &json!({"principal":"bob","roleDefinition":"JitRequester","scope":"/"}),
        )
        .await
        .unwrap();
    let records: List<ActivityRecord> = rescue
        .get("/api/v1/activity?principal=system:operator")
        .await
        .unwrap();
    assert_eq!(records.value.len(), 1);
    assert_eq!(records.value[0].action, "ajar.tokens/write");

    // A second token for the same principal adds no assignment.
    let out = mint(&app, "rescue").await.ok();
    assert!(
        out.stderr.contains("for rescue, Owner at /"),
        "{}",
        out.stderr
    );
    assert_ne!(out.stdout.trim(), token);

    // Bad principals and missing stores fail with one line.
    mint(&app, "group:ops")
        .await
        .fails(1, "names a group, an agent or ajar itself");
    let empty = tempfile::tempdir().unwrap();
    let out = ajar()
        .args(["serve", "--mint-owner-token", "rescue", "--data-dir"])
        .arg(empty.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("there is no database at"), "{err}");
    assert!(
        std::fs::read_dir(empty.path()).unwrap().next().is_none(),
        "nothing was created"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_says_where_its_data_is_and_when_it_starts_a_new_store() {
    use std::io::BufRead;
    // Started from another working directory with the default data directory.
    let cwd = tempfile::tempdir().unwrap();
    let start = || {
        let mut child = ajar()
            .args(["serve", "--listen", "127.0.0.1:0"])
            .current_dir(cwd.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = Vec::new();
        for line in std::io::BufReader::new(child.stderr.take().unwrap()).lines() {
            let line = line.unwrap();
            let done = line.starts_with("ajar: listening on ");
            lines.push(line);
            if done {
                break;
            }
        }
        (child, lines)
    };
    let dir = std::fs::canonicalize(cwd.path()).unwrap().join("ajar-data");
    let data = format!(
        "ajar: data in {} (SQLite database {})",
        dir.display(),
        dir.join("ajar.db").display()
    );
    let (mut first, lines) = start();
    assert!(lines.contains(&data), "{lines:#?}");
    assert!(
        lines.iter().any(|l| l.starts_with(&format!(
            "ajar: no store at {} yet: started a new, empty one",
            dir.join("ajar.db").display()
        ))),
        "{lines:#?}"
    );
    assert!(super::sigterm(&mut first).success());
    let (mut second, lines) = start();
    assert!(lines.contains(&data), "{lines:#?}");
    assert!(
        !lines.iter().any(|l| l.contains("new, empty")),
        "{lines:#?}"
    );
    assert!(super::sigterm(&mut second).success());
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_keeps_answering_when_its_output_is_closed() {
    use std::io::BufRead;
    // `ajar serve 2>&1 | head -3`: the reader of both streams goes away after a few lines.
    let dir = tempfile::tempdir().unwrap();
    let mut child = ajar()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut url = None;
    for line in std::io::BufReader::new(child.stderr.take().unwrap()).lines() {
        if let Some(at) = line.unwrap().strip_prefix("ajar: listening on ") {
            url = Some(at.to_owned());
            break;
        }
    }
    // Both readers are closed here: every later log line meets a closed pipe.
    drop(child.stdout.take());
    let url = url.expect("the server said where it listens");
    let http = reqwest::Client::new();
    for _ in 0..5 {
        let r = http.get(format!("{url}/healthz")).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "the server is still running"
    );
    assert!(super::sigterm(&mut child).success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_short_name_that_names_two_requests_is_refused_not_guessed() {
    let app = TestApp::spawn().await;
    let t = admin(&app);
    let apps = [APP, "/subscriptions/s1/resourceGroups/rg2/applications/crm"];
    for (a, ns) in apps.into_iter().zip(["crm", "crm2"]) {
        run(
            &app,
            &t,
            &[
                "app",
                "set",
                a,
                "--publisher",
                "acme",
                "--approval",
                "manual",
                "--approver",
                "user:bob",
                "--max",
                "8h",
            ],
        )
        .await
        .ok();
        contributor(&app, a, ns).await;
        run(
            &app,
            &t,
            &[
                "app",
                "role",
                "add",
                a,
                "--id",
                "alice",
                "--principal",
                "alice",
                "--role",
                "Contributor",
            ],
        )
        .await
        .ok();
    }
    for (who, role) in [("alice", "JitRequester"), ("bob", "Approver")] {
        run(
            &app,
            &t,
            &[
                "assignment",
                "set",
                &format!("{who}-a"),
                "--principal",
                who,
                "--role",
                role,
                "--scope",
                "/subscriptions/s1",
            ],
        )
        .await
        .ok();
    }
    let token = |who: &'static str| {
        let app = &app;
        let t = &t;
        async move {
            run(
                app,
                t,
                &["token", "create", "--principal", who, "-o", "json"],
            )
            .await
            .ok()
            .json()["token"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let (alice, bob) = (token("alice").await, token("bob").await);
    let mut ids = Vec::new();
    for a in apps {
        let asked: JitRequest = run(
            &app,
            &alice,
            &[
                "app",
                "activate",
                a,
                "--role",
                "Contributor",
                "--duration",
                "2h",
                "--reason",
                "deploy",
                "--name",
                "deploy",
                "-o",
                "json",
            ],
        )
        .await
        .ok()
        .typed();
        ids.push(asked.id);
    }
    // Both wait for bob under the same name: the name alone decides nothing.
    let out = run(&app, &bob, &["approve", "deploy", "--reason", "ok"]).await;
    out.fails(1, "2 requests are named \"deploy\"");
    for id in &ids {
        assert!(out.stderr.contains(id.as_str()), "{}", out.stderr);
    }
    for id in &ids {
        let shown: JitRequest = run(&app, &bob, &["request", "show", id, "-o", "json"])
            .await
            .ok()
            .typed();
        assert_eq!(
            shown.properties.jit_request_state,
            ajar_core::lifecycle::RequestState::Pending
        );
    }
    // The full id decides the one meant.
    let approved = run(
        &app,
        &bob,
        &["approve", &ids[1], "--reason", "ok", "-o", "json"],
    )
    .await
    .ok()
    .json();
    assert_eq!(approved["properties"]["jitRequestState"], "Active");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_agent_refuses_a_token_file_others_could_change_or_read() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("agent.token");
    std::fs::write(&file, "ajar_0123\n").unwrap();
    let agent = |path: std::path::PathBuf| {
        let mut cmd = ajar();
        cmd.args(["agent", "--server", "http://127.0.0.1:9", "--token-file"])
            .arg(path);
        async move {
            tokio::task::spawn_blocking(move || cmd.output().unwrap())
                .await
                .unwrap()
        }
    };
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = agent(file.clone()).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("chmod 600"),
        "{out:?}"
    );
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let link = dir.path().join("link.token");
    std::os::unix::fs::symlink(&file, &link).unwrap();
    let out = agent(link).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is a symbolic link"),
        "{out:?}"
    );
}

#[tokio::test]
async fn an_aws_agent_is_added_with_its_inventory_scope_and_exposures_show_on_the_machine() {
    let app = TestApp::spawn().await;
    let t = admin(&app);
    run(
        &app,
        &t,
        &[
            "machine",
            "add",
            VM,
            "--os",
            "linux",
            "--address",
            "10.1.0.4",
            "--label",
            "aws:instance-id=i-1",
        ],
    )
    .await
    .ok();
    // The scope is a resource group's id, as other ids are given (a trailing `/` is fine).
    run(
        &app,
        &t,
        &[
            "agent",
            "add",
            "disc",
            "--mode",
            "aws",
            "--inventory-scope",
            "rg1",
        ],
    )
    .await
    .fails(2, "not a resource id");
    run(
        &app,
        &t,
        &[
            "agent",
            "add",
            "disc",
            "--mode",
            "aws",
            "--inventory-scope",
            SUB,
        ],
    )
    .await
    .fails(1, "not a resource group");
    let agent = run(
        &app,
        &t,
        &[
            "agent",
            "add",
            "disc",
            "--mode",
            "aws",
            "--inventory-scope",
            &format!("{RG}/"),
            "--machine",
            VM,
            "-o",
            "json",
        ],
    )
    .await
    .ok()
    .json();
    assert_eq!(
        (agent["mode"].as_str(), agent["inventoryScope"].as_str()),
        (Some("aws"), Some(RG))
    );
    let id = agent["id"].as_str().unwrap();
    let shown = run(&app, &t, &["agent", "show", id]).await.ok().stdout;
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("inventory scope") && l.contains(RG)),
        "{shown}"
    );
    let listed = run(&app, &t, &["agent", "list"]).await.ok().stdout;
    assert!(
        listed.contains("INVENTORY SCOPE") && listed.contains(RG),
        "{listed}"
    );

    // What the agent reports shows on the machine.
    let aws = app.client(agent["token"].as_str());
    let _: Value = aws.get("/api/v1/agent/desiredState").await.unwrap();
    let report = json!({"version":"1.0","appliedRevision":0,"machines":[{"id":VM,
        "unsupportedReason":"instance i-1 is not in the agent's region",
        "exposures":[{"number":22,"protocol":"TCP","source":"0.0.0.0/0",
            "allowedBy":"security group sg-1 (web-open)"}]}]});
    let r = aws
        .raw(reqwest::Method::POST, "/api/v1/agent/report", Some(&report))
        .await
        .unwrap();
    assert_eq!(r.status, 204, "{:?}", r.body);
    let shown = run(&app, &t, &["machine", "show", VM]).await.ok().stdout;
    assert!(
        shown.contains("port 22/TCP open to 0.0.0.0/0 by security group sg-1 (web-open)")
            && shown.contains("instance i-1 is not in the agent's region"),
        "{shown}"
    );
}
