//! The `ajar` binary run as a subprocess: first start, restart, shutdown, bad input.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]
#![allow(
    clippy::disallowed_methods,
    reason = "polls a child process, no access window is slept through"
)]

mod azure_sdk;
mod cli;
mod crash;
mod enforce;
mod openapi;
mod replicas;
mod systemd;
mod tls;
mod venv;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn ajar() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ajar"));
    for var in [
        "AJAR_DATA_DIR",
        "AJAR_LISTEN",
        "AJAR_LOG",
        "AJAR_LOG_FORMAT",
        "AJAR_CONFIG",
        "AJAR_SMTP_URL",
        "AJAR_SMTP_FROM",
        "AJAR_URL",
        "AJAR_TOKEN",
        "AJAR_PROFILE",
        "AJAR_CLI_CONFIG",
        "AJAR_ACCEPT_UNENFORCED",
        "AJAR_BOOTSTRAP_TOKEN_FILE",
    ] {
        c.env_remove(var);
    }
    c
}

/// A running `ajar serve`, with the lines it printed on stdout and its address.
struct Served {
    child: Child,
    stdout: Vec<String>,
    url: String,
}

fn serve(data_dir: &std::path::Path) -> Served {
    let mut child = ajar()
        .args(["serve", "--data-dir"])
        .arg(data_dir)
        .args(["--listen", "127.0.0.1:0", "--log", "warn"])
        // Requests here run without agents.
        .arg("--accept-unenforced")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // stderr announces the address once the listener is bound; stdout has the token (if any)
    // by then, since it is printed before binding.
    let url = listening_url(&mut child);
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // Give the reader a moment to collect what was printed before the address.
    let mut lines = Vec::new();
    while let Ok(l) = rx.recv_timeout(Duration::from_millis(300)) {
        lines.push(l);
    }
    Served {
        child,
        stdout: lines,
        url,
    }
}

/// Reads stderr up to the "listening on" line and returns the URL; keeps draining stderr in
/// the background so the server never writes into a closed pipe.
fn listening_url(child: &mut Child) -> String {
    listening_url_and_stderr(child).0
}

/// Like [`listening_url`], and the lines stderr prints afterwards (they keep being drained when
/// the receiver is dropped).
fn listening_url_and_stderr(child: &mut Child) -> (String, std::sync::mpsc::Receiver<String>) {
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut url = None;
    for line in stderr.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("ajar: listening on ") {
            url = Some(rest.split_whitespace().next().unwrap().to_owned());
            break;
        }
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (url.expect("ajar serve announced its address"), rx)
}

/// Every page of a list, following `nextLink`.
async fn all_pages(url: &str, token: &str, first: &str) -> Vec<serde_json::Value> {
    ajar_api::Client::new(url, Some(token.to_owned()))
        .get_all(first, usize::MAX)
        .await
        .unwrap()
}

/// Checks, through the server at `url`, that stored network requests and their initiate records
/// match one to one (none twice on either side) and that the activity chain verifies; answers
/// the stored request ids and the verification.
async fn consistent(
    url: &str,
    token: &str,
) -> (std::collections::BTreeSet<String>, serde_json::Value) {
    use std::collections::BTreeSet;
    let policy = "/subscriptions/s1/resourceGroups/rg1/jitNetworkAccessPolicies/default";
    let ids = |items: Vec<serde_json::Value>, field: &str| -> Vec<String> {
        items
            .iter()
            .map(|v| v[field].as_str().unwrap().to_owned())
            .collect()
    };
    let requests = ids(
        all_pages(url, token, &format!("/api/v1{policy}/requests?top=1000")).await,
        "id",
    );
    let recorded = ids(
        all_pages(
            url,
            token,
            "/api/v1/activity?action=ajar.jit/policies/initiate/action&top=1000",
        )
        .await,
        "requestId",
    );
    let stored: BTreeSet<String> = requests.iter().cloned().collect();
    let records: BTreeSet<String> = recorded.iter().cloned().collect();
    assert_eq!(stored.len(), requests.len(), "a request listed twice");
    assert_eq!(records.len(), recorded.len(), "one record per request");
    assert_eq!(stored, records, "requests and records match one to one");
    let verify: serde_json::Value = reqwest::Client::new()
        .get(format!("{url}/api/v1/activity/verify"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(verify["ok"], true, "{verify}");
    (stored, verify)
}

fn sigterm(child: &mut Child) -> std::process::ExitStatus {
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    for _ in 0..100 {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    panic!("ajar serve did not stop on SIGTERM within 5 s");
}

async fn get(url: &str, token: Option<&str>) -> u16 {
    let mut req = reqwest::Client::new().get(format!("{url}/api/v1/roleDefinitions"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn first_start_prints_a_token_once_and_sigterm_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = serve(dir.path());
    let tokens: Vec<&String> = first
        .stdout
        .iter()
        .filter(|l| l.starts_with("ajar bootstrap token: "))
        .collect();
    assert_eq!(tokens.len(), 1, "stdout: {:?}", first.stdout);
    let token = tokens[0]
        .trim_start_matches("ajar bootstrap token: ")
        .to_owned();
    assert!(token.starts_with("ajar_"));
    assert_eq!(get(&first.url, Some(&token)).await, 200);
    assert_eq!(get(&first.url, None).await, 401);
    assert!(sigterm(&mut first.child).success(), "clean exit on SIGTERM");

    let mut second = serve(dir.path());
    assert!(
        second.stdout.iter().all(|l| !l.contains("bootstrap token")),
        "the token is printed only once"
    );
    assert_eq!(
        get(&second.url, Some(&token)).await,
        200,
        "the token survives a restart"
    );
    assert!(sigterm(&mut second.child).success());

    let db = std::fs::read(dir.path().join("ajar.db")).unwrap();
    assert!(
        !db.windows(token.len()).any(|w| w == token.as_bytes()),
        "the token is stored hashed"
    );
}

/// With `bootstrap_token_file`, the first start's token goes to that file (mode 0600, made anew
/// even where a file or a link was) and never to the output, which a service manager logs.
#[tokio::test]
async fn the_bootstrap_token_can_go_to_a_file_instead_of_the_output() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bootstrap.token");
    // A link left where the file goes is replaced, not followed.
    let elsewhere = dir.path().join("elsewhere");
    std::fs::write(&elsewhere, "untouched").unwrap();
    std::os::unix::fs::symlink(&elsewhere, &file).unwrap();
    let config = dir.path().join("serve.toml");
    std::fs::write(
        &config,
        format!("bootstrap_token_file = {:?}\n", file.display().to_string()),
    )
    .unwrap();
    let mut child = ajar()
        .args(["serve", "--data-dir"])
        .arg(dir.path().join("data"))
        .args(["--listen", "127.0.0.1:0", "--log", "warn", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (url, _stderr) = listening_url_and_stderr(&mut child);
    let stdout = child.stdout.take().unwrap();
    let meta = std::fs::symlink_metadata(&file).unwrap();
    assert!(meta.is_file(), "a file, not the link");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::read_to_string(&elsewhere).unwrap(), "untouched");
    let token = std::fs::read_to_string(&file).unwrap().trim().to_owned();
    assert!(token.starts_with("ajar_"), "{token:?}");
    assert_eq!(get(&url, Some(&token)).await, 200);
    assert!(sigterm(&mut child).success());
    let printed = std::io::read_to_string(stdout).unwrap();
    assert!(!printed.contains(&token), "stdout: {printed:?}");
}

#[test]
fn bad_flags_and_config_fail_with_one_line() {
    let out = ajar()
        .args(["serve", "--listen", "nowhere"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("listen address") && err.contains("nowhere"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("ajar.toml");
    std::fs::write(&cfg, "data_dri = \"/tmp\"\n").unwrap();
    let out = ajar()
        .args(["serve", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("data_dri"),
        "the message names the bad key: {err}"
    );

    let out = ajar().args(["serve", "--no-such-flag"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "usage errors exit 2");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("ajar: unexpected argument '--no-such-flag'"),
        "{err}"
    );
}

#[test]
fn environment_variables_configure_serve() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = ajar()
        .arg("serve")
        .env("AJAR_DATA_DIR", dir.path())
        .env("AJAR_LISTEN", "127.0.0.1:0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let url = listening_url(&mut child);
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert!(dir.path().join("ajar.db").exists());
    assert!(sigterm(&mut child).success());
}

/// Waits (up to 10 s in all) for a JSON log line whose `request_id` field is `id`; fails on a
/// line that is not JSON. Returns the line's fields and every line read.
fn json_line_with_id(
    lines: &std::sync::mpsc::Receiver<String>,
    id: &str,
    seen: &mut Vec<String>,
) -> serde_json::Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = lines
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no log line for request {id}; saw {seen:#?}"));
        seen.push(line.clone());
        let v: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"));
        if v["fields"]["request_id"] == id {
            return v["fields"].clone();
        }
    }
}

#[tokio::test]
async fn json_logs_carry_the_request_id_and_no_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = ajar()
        .args(["serve", "--data-dir"])
        .arg(dir.path())
        .args(["--listen", "127.0.0.1:0", "--log", "info"])
        .env("AJAR_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (url, lines) = listening_url_and_stderr(&mut child);
    let http = reqwest::Client::new();
    let r = http
        .get(format!("{url}/api/v1/agents?token=query-secret"))
        .bearer_auth("ajar_header-secret")
        .header("X-Request-Id", "json-log-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["x-request-id"], "json-log-1");
    let mut seen = Vec::new();
    let fields = json_line_with_id(&lines, "json-log-1", &mut seen);
    assert_eq!(fields["message"], "request");
    assert_eq!(fields["method"], "GET");
    assert_eq!(fields["route"], "/api/v1/agents");
    assert_eq!(fields["status"], 401);
    assert!(fields["elapsed_ms"].as_f64().is_some(), "{fields}");

    // A generated id is logged as answered.
    let r = http.get(format!("{url}/healthz")).send().await.unwrap();
    let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let fields = json_line_with_id(&lines, &id, &mut seen);
    assert_eq!(
        (fields["route"].as_str(), fields["status"].as_u64()),
        (Some("/healthz"), Some(200))
    );

    assert!(sigterm(&mut child).success());
    for line in &seen {
        assert!(
            !line.contains("header-secret") && !line.contains("query-secret"),
            "a secret reached the log: {line}"
        );
    }
}
