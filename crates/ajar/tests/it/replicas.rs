//! Replicas of `ajar serve` on one PostgreSQL database (a cluster of the test's own): a
//! replica killed with `kill -9` during a burst of initiates, and PostgreSQL restarted during
//! one. Afterwards no acknowledged request is lost, none is stored twice, every stored request
//! has exactly one record, and the answers during the fault were successes or clean errors.

use super::*;
use ajar_testkit::postgres::Cluster;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

const VM: &str = "/subscriptions/s1/resourceGroups/rg1/machines/vm1";
const POLICY: &str = "/subscriptions/s1/resourceGroups/rg1/jitNetworkAccessPolicies/default";

fn serve_db(url: &str) -> Served {
    let mut child = ajar()
        .args([
            "serve",
            "--database-url",
            url,
            "--listen",
            "127.0.0.1:0",
            "--log",
            "warn",
            // One token stands for many users in the bursts.
            "--max-live-grants",
            "0",
            // Requests here run without agents.
            "--accept-unenforced",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let url = listening_url(&mut child);
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
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

/// Sends `n` initiates spread over `urls`; calls `during(k)` once `at` answers came back.
/// Answers the acknowledged request ids and the statuses seen.
async fn burst(
    urls: &[String],
    token: &str,
    round: usize,
    n: usize,
    at: usize,
    during: impl FnOnce(),
) -> (BTreeSet<String>, BTreeMap<u16, usize>) {
    let http = reqwest::Client::new();
    let (answers, mut received) = tokio::sync::mpsc::unbounded_channel();
    for i in 0..n {
        let (http, url, token, answers) = (
            http.clone(),
            urls[i % urls.len()].clone(),
            token.to_owned(),
            answers.clone(),
        );
        tokio::spawn(async move {
            let body = json!({"virtualMachines":[{"id":VM,"ports":[{"number":22,"duration":"PT1H",
                "allowedSourceAddressPrefix":format!("10.{round}.{}.{}", i / 250, i % 250)}]}]});
            let r = http
                .post(format!("{url}/api/v1{POLICY}/initiate"))
                .bearer_auth(&token)
                .json(&body)
                .send()
                .await;
            let answer = match r {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let body: Value = r.json().await.unwrap_or(Value::Null);
                    if status >= 400 {
                        // A clean error: the API's JSON error body.
                        assert!(body["error"]["code"].is_string(), "{status}: {body}");
                    }
                    (status, body["id"].as_str().map(str::to_owned))
                }
                Err(_) => (0, None), // the connection broke (the replica died)
            };
            let _ = answers.send(answer);
        });
    }
    drop(answers);
    let mut during = Some(during);
    let (mut ids, mut statuses, mut seen) = (BTreeSet::new(), BTreeMap::new(), 0);
    while let Some((status, id)) = received.recv().await {
        *statuses.entry(status).or_default() += 1;
        if status == 202 {
            ids.extend(id);
        }
        seen += 1;
        if seen == at
            && let Some(f) = during.take()
        {
            f();
        }
    }
    (ids, statuses)
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_survive_a_killed_replica_and_a_database_restart() {
    // A cluster of this test's own: it is restarted below.
    let cluster = tokio::task::spawn_blocking(Cluster::start).await.unwrap();
    let db = cluster.database();
    let mut a = serve_db(&db);
    let token = a
        .stdout
        .iter()
        .find_map(|l| l.strip_prefix("ajar bootstrap token: "))
        .unwrap()
        .to_owned();
    let mut b = serve_db(&db);
    assert!(
        b.stdout.iter().all(|l| !l.contains("bootstrap token")),
        "bootstrapped once"
    );
    let http = reqwest::Client::new();
    for (path, body) in [
        (
            VM,
            json!({"properties":{"os":"linux","addresses":["10.1.0.4"]}}),
        ),
        (
            POLICY,
            json!({"properties":{"virtualMachines":[{"id":VM,"ports":[{"number":22,
            "protocol":"TCP","allowedSourceAddressPrefix":"*","maxRequestAccessDuration":"PT3H"}]}]}}),
        ),
    ] {
        let r = http
            .put(format!("{}/api/v1{path}", a.url))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}");
    }

    // An agent following A first, then B. Its "nft" writes each ruleset to a file, so the test
    // sees what it would enforce without touching the host's firewall.
    let scratch = tempfile::tempdir().unwrap();
    let nft = scratch.path().join("nft");
    let applied = scratch.path().join("applied.nft");
    std::fs::write(&nft, format!("#!/bin/sh\ncat > {}\n", applied.display())).unwrap();
    std::process::Command::new("chmod")
        .arg("755")
        .arg(&nft)
        .status()
        .unwrap();
    let registered: Value = http
        .post(format!("{}/api/v1/agents", a.url))
        .bearer_auth(&token)
        .json(&json!({"name":"edge","mode":"host","machines":[VM]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut agent = ajar()
        .args([
            "agent",
            "--server",
            &format!("{},{}", a.url, b.url),
            "--wait-seconds",
            "1",
        ])
        .arg("--nft")
        .arg(&nft)
        .env("AJAR_AGENT_TOKEN", registered["token"].as_str().unwrap())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    // It applies A's state first.
    for _ in 0..200 {
        if applied.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(applied.exists(), "the agent applied A's desired state");

    // kill -9 of replica A after 100 of 400 answers (half the burst goes to A).
    let urls = vec![a.url.clone(), b.url.clone()];
    let pid = a.child.id();
    let (acked, statuses) = burst(&urls, &token, 0, 400, 100, move || {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    })
    .await;
    let _ = a.child.wait();
    eprintln!("kill -9: statuses {statuses:?}");
    let (stored, _) = consistent(&b.url, &token).await;
    assert!(acked.is_subset(&stored), "acknowledged requests lost");
    assert!(
        statuses.get(&202).copied().unwrap_or(0) >= 200,
        "B kept serving: {statuses:?}"
    );

    // The agent moved to B: a grant made there reaches its ruleset.
    let r = http
        .post(format!("{}/api/v1{POLICY}/initiate", b.url))
        .bearer_auth(&token)
        .json(
            &json!({"virtualMachines":[{"id":VM,"ports":[{"number":22,"duration":"PT1H",
            "allowedSourceAddressPrefix":"192.0.2.77"}]}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let mut enforced = false;
    for _ in 0..200 {
        if std::fs::read_to_string(&applied).is_ok_and(|t| t.contains("192.0.2.77")) {
            enforced = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        enforced,
        "the agent failed over to B and applied the new grant"
    );
    let _ = agent.kill();
    let _ = agent.wait();

    // PostgreSQL restarts during a burst against B: clean errors or successes, nothing half-done.
    let c = std::sync::Arc::new(cluster);
    let restart = c.clone();
    let (acked, statuses) = burst(&[b.url.clone()], &token, 1, 300, 60, move || {
        restart.restart();
    })
    .await;
    eprintln!("restart: statuses {statuses:?}");
    assert!(
        statuses.keys().all(|s| [202, 409, 503].contains(s)),
        "{statuses:?}"
    );
    // B recovers by itself once the database is back.
    let mut ok = false;
    for _ in 0..100 {
        let r = http.get(format!("{}/readyz", b.url)).send().await.unwrap();
        if r.status().as_u16() == 200 {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "B became ready again");
    let (stored, _) = consistent(&b.url, &token).await;
    assert!(acked.is_subset(&stored), "acknowledged requests lost");
    assert!(sigterm(&mut b.child).success());
}
