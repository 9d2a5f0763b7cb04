//! `kill -9` of the server in the middle of a burst of concurrent initiates: afterwards every
//! acknowledged request is stored, every stored request has its activity record, no record
//! lacks its request, and the hash chain verifies.

use super::*;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::hash::{BuildHasher, RandomState};

const VM: &str = "/subscriptions/s1/resourceGroups/rg1/machines/vm1";
const POLICY: &str = "/subscriptions/s1/resourceGroups/rg1/jitNetworkAccessPolicies/default";
const BURST: usize = 500;

async fn put(http: &reqwest::Client, url: &str, token: &str, path: &str, body: Value) {
    let r = http
        .put(format!("{url}/api/v1{path}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
}

fn kill9(child: &mut Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test]
async fn a_kill_during_a_burst_of_initiates_leaves_requests_and_records_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = serve(dir.path());
    let token = server
        .stdout
        .iter()
        .find_map(|l| l.strip_prefix("ajar bootstrap token: "))
        .unwrap()
        .to_owned();
    let http = reqwest::Client::new();
    put(
        &http,
        &server.url,
        &token,
        VM,
        json!({"properties":{"os":"linux","addresses":["10.1.0.4"]}}),
    )
    .await;
    put(&http, &server.url, &token, POLICY, json!({"properties":{"virtualMachines":[{"id":VM,"ports":[
        {"number":22,"protocol":"TCP","allowedSourceAddressPrefix":"*","maxRequestAccessDuration":"PT3H"}]}]}})).await;

    let mut acknowledged = BTreeSet::new();
    for round in 0..3 {
        // Kill once this many answers came back: a different point each round and run.
        let kill_after = (RandomState::new().hash_one(round) % (BURST as u64 / 2)) as usize;
        eprintln!("round {round}: kill -9 after {kill_after} answers");
        let (answers, mut received) = tokio::sync::mpsc::unbounded_channel();
        for i in 0..BURST {
            let (http, url, token, answers) = (
                http.clone(),
                server.url.clone(),
                token.clone(),
                answers.clone(),
            );
            tokio::spawn(async move {
                let body = json!({"virtualMachines":[{"id":VM,"ports":[{"number":22,"duration":"PT1H",
                    "allowedSourceAddressPrefix":format!("10.{round}.{}.{}", i / 250, i % 250)}]}],
                    "justification":"burst"});
                let r = http
                    .post(format!("{url}/api/v1{POLICY}/initiate"))
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await;
                let id = match r {
                    Ok(r) if r.status().as_u16() == 202 => r
                        .json::<Value>()
                        .await
                        .ok()
                        .and_then(|v| v["id"].as_str().map(str::to_owned)),
                    _ => None,
                };
                let _ = answers.send(id);
            });
        }
        drop(answers);
        let mut seen = 0;
        while let Some(id) = received.recv().await {
            acknowledged.extend(id);
            seen += 1;
            if seen == kill_after {
                kill9(&mut server.child);
            }
        }
        if seen < kill_after || kill_after == 0 {
            kill9(&mut server.child);
        }
        server = serve(dir.path());
    }

    let url = &server.url;
    let (stored, verify) = consistent(url, &token).await;
    assert!(
        acknowledged.is_subset(&stored),
        "{} acknowledged requests were lost",
        acknowledged.difference(&stored).count()
    );
    assert!(!stored.is_empty());
    eprintln!(
        "{} acknowledged, {} stored, {} records",
        acknowledged.len(),
        stored.len(),
        verify["records"]
    );
    // The CLI reports the same, and the first broken link once a record is edited.
    let cli = |url: &str| {
        ajar()
            .args(["activity", "verify"])
            .env("AJAR_URL", url)
            .env("AJAR_TOKEN", &token)
            .output()
            .unwrap()
    };
    let out = cli(&server.url);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with(&format!("ok: {} records verify", verify["records"])),
        "{stdout}"
    );
    assert!(sigterm(&mut server.child).success());
    let db = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        dir.path().join("ajar.db").display()
    ))
    .await
    .unwrap();
    sqlx::query("UPDATE activity SET details = '{}' WHERE seq = 7")
        .execute(&db)
        .await
        .unwrap();
    db.close().await;
    let mut server = serve(dir.path());
    let out = cli(&server.url);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("ajar: activity record 7 is broken: the record's content does not match its hash (6 records before it verify)"),
        "{stderr}"
    );
    assert!(sigterm(&mut server.child).success());
}
