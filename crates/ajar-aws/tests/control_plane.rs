//! `ajar agent --mode aws` with the control plane: an agent registered with an inventory scope
//! discovers instances and registers them as machines; a policy protects them; the agent opens
//! a request's port in ajar's own group and closes it when the server ends the request; other
//! groups' rules that leave a protected port open to everyone reach the machine (its view, the
//! activity log, the metric).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod common;

use ajar_agent::sync::{Config, run_with};
use ajar_aws::ec2::{Ec2, Select};
use ajar_aws::enforcer::{AwsEnforcer, Settings};
use ajar_testkit::TestApp;
use ajar_testkit::moto::Moto;
use common::{LINUX_IMAGE, by_hand, default_vpc, run_instance};
use jiff::SignedDuration;
use serde_json::{Value, json};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

const SCOPE: &str = "/subscriptions/cloud/resourceGroups/aws-eu";

/// Waits (polling, at most 30 s) until `check` answers something.
async fn eventually<T, F: Future<Output = Option<T>>>(
    what: &str,
    mut check: impl FnMut() -> F,
) -> T {
    for _ in 0..300 {
        if let Some(v) = check().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("never happened: {what}");
}

#[tokio::test]
async fn discovered_instances_are_guarded_and_their_exposures_reach_the_machine() {
    let Some(moto) = tokio::task::spawn_blocking(Moto::start).await.unwrap() else {
        return;
    };
    let http = reqwest::Client::new();
    let ec2 = common::client(&moto.url, "test", "test");
    // A group someone else made, with SSH open to the world.
    let vpc = default_vpc(&ec2).await;
    let web = ec2
        .create_group("web-open", "web", &vpc, &[])
        .await
        .unwrap();
    let world = [(22, "0.0.0.0/0", None)];
    by_hand(&ec2, "AuthorizeSecurityGroupIngress", &web, &world).await;
    let exposed = run_instance(
        &ec2,
        LINUX_IMAGE,
        &[("ajar", "protect")],
        std::slice::from_ref(&web),
    )
    .await;
    let clean = run_instance(&ec2, LINUX_IMAGE, &[("ajar", "protect")], &[]).await;
    let _untagged = run_instance(&ec2, LINUX_IMAGE, &[], &[]).await;

    let app = TestApp::spawn().await;
    let agent: Value = app
        .admin
        .post(
            "/api/v1/agents",
            &json!({"name": "aws-eu", "mode": "aws", "machines": [], "inventoryScope": SCOPE}),
        )
        .await
        .unwrap();
    assert_eq!(agent["inventoryScope"], SCOPE);
    let token = agent["token"].as_str().unwrap().to_owned();
    let agent_client = app.client(Some(&token));
    let discovery = tokio::spawn(ajar_aws::discover::run(
        ec2.clone(),
        agent_client.clone(),
        Select::Tag("ajar".into(), "protect".into()),
        Duration::from_secs(3600),
        std::future::pending(),
    ));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let enforcer = AwsEnforcer::new(
        ec2.clone(),
        Settings {
            rescan: Duration::from_secs(1),
            version: "test".into(),
            ..Settings::default()
        },
    );
    let agent_loop = tokio::spawn(run_with(
        Config {
            server: app.base.clone(),
            token: token.clone(),
            version: "test".into(),
            conntrack: "conntrack".into(),
            wait: Duration::from_secs(1),
            http: http.clone(),
        },
        enforcer,
        async move {
            let _ = stopped.await;
        },
    ));

    // Discovery registers the two tagged instances, guarded by the agent.
    let machines: Vec<Value> = eventually("both instances registered", || {
        let admin = app.admin.clone();
        async move {
            let page: Value = admin.get(&format!("/api/v1{SCOPE}/machines")).await.ok()?;
            let list = page["value"].as_array()?.clone();
            (list.len() == 2).then_some(list)
        }
    })
    .await;
    for m in &machines {
        let p = &m["properties"];
        assert_eq!(p["enforcementPoint"], agent["name"], "{m}");
        assert_eq!(p["labels"]["aws:instance-id"], m["name"]);
        assert_eq!(p["os"], "linux");
        assert_eq!(p["jitState"], "NotConfigured");
    }
    let exposed_id = format!("{SCOPE}/machines/{exposed}");
    let clean_id = format!("{SCOPE}/machines/{clean}");

    // A policy protects SSH on both: the exposure is found and reported on one of them.
    let policy = format!("{SCOPE}/jitNetworkAccessPolicies/ssh");
    let ports = |id: &str| {
        json!({"id": id, "ports": [{"number": 22, "protocol": "TCP",
            "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT3H"}]})
    };
    let _: Value = app
        .admin
        .put(
            &format!("/api/v1{policy}"),
            &json!({"properties": {"virtualMachines": [ports(&exposed_id), ports(&clean_id)]}}),
        )
        .await
        .unwrap();
    let view: Value = eventually("the exposure reaches the machine", || {
        let admin = app.admin.clone();
        let id = exposed_id.clone();
        async move {
            let m: Value = admin.get(&format!("/api/v1{id}")).await.ok()?;
            (!m["properties"]["standingExposures"].as_array()?.is_empty()).then_some(m)
        }
    })
    .await;
    let exposure = &view["properties"]["standingExposures"][0];
    assert_eq!(exposure["number"], 22);
    assert_eq!(exposure["source"], "0.0.0.0/0");
    assert!(
        exposure["allowedBy"]
            .as_str()
            .unwrap()
            .contains(&format!("{web} (web-open)"))
    );
    let clean_view: Value = app.admin.get(&format!("/api/v1{clean_id}")).await.unwrap();
    assert!(
        clean_view["properties"]["standingExposures"]
            .as_array()
            .is_none_or(Vec::is_empty)
    );
    assert_eq!(clean_view["properties"]["jitState"], "Configured");
    let records: Value = app
        .admin
        .get("/api/v1/activity?action=ajar.machines/exposureFound")
        .await
        .unwrap();
    assert_eq!(records["value"].as_array().unwrap().len(), 1, "{records}");
    let metrics = http
        .get(format!("{}/metrics", app.base))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l == "ajar_machine_standing_exposures 1"),
        "{metrics}"
    );

    // A request opens SSH from one address in ajar's group; the server ends it; it closes.
    let end = app
        .now()
        .checked_add(SignedDuration::from_hours(1))
        .unwrap();
    let request: Value = app
        .admin
        .post(
            &format!("/api/v1{policy}/initiate"),
            &json!({"virtualMachines":[{"id": clean_id, "ports":[
                {"number":22,"endTimeUtc":end.to_string(),"allowedSourceAddressPrefix":"198.51.100.7"}]}]}),
        )
        .await
        .unwrap();
    let own_group = format!("ajar-{clean}");
    let rule_present = |ec2: Arc<Ec2>, name: String| async move {
        let groups = ec2.groups_where(&[("group-name", vec![name])]).await.ok()?;
        let group = groups.first()?.id.clone();
        let rules = ec2.rules(&[group]).await.ok()?;
        Some(rules.iter().any(|r| {
            !r.egress && r.cidr.map(|c| c.to_string()).as_deref() == Some("198.51.100.7/32")
        }))
    };
    eventually("the rule is added", || {
        let (ec2, name) = (ec2.clone(), own_group.clone());
        async move { rule_present(ec2, name).await.filter(|p| *p) }
    })
    .await;
    let request_id = format!("{policy}/requests/{}", request["id"].as_str().unwrap());
    eventually("the agent reports the port applied", || {
        let admin = app.admin.clone();
        let id = request_id.clone();
        async move {
            let r: Value = admin.get(&format!("/api/v1{id}")).await.ok()?;
            r["virtualMachines"][0]["ports"][0]["openSince"]
                .as_str()
                .map(drop)
        }
    })
    .await;
    app.advance(SignedDuration::from_hours(2));
    app.tick().await;
    eventually(
        "the rule is removed when the server ends the request",
        || {
            let (ec2, name) = (ec2.clone(), own_group.clone());
            async move { rule_present(ec2, name).await.filter(|p| !*p) }
        },
    )
    .await;

    let _ = stop.send(());
    agent_loop.await.unwrap();
    discovery.abort();
}
