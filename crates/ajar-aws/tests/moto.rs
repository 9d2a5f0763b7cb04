//! The AWS enforcer against a real EC2 API emulator (moto in server mode): grants open and
//! close on time with their descriptions, ended rules are swept on start, two enforcers do not
//! fight, other groups are never touched, standing exposures are found, unsupported machines
//! say why, discovery finds instances, and signatures pass moto's own checks.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod common;

use ajar_agent::sync::Enforce;
use ajar_api::wire::{AwsTarget, DesiredGrant, DesiredMachine, DesiredState, ProtectedPort};
use ajar_aws::creds::{Chain, Environment};
use ajar_aws::ec2::{Ec2, FoundRule, Params, Select};
use ajar_aws::enforcer::{AwsEnforcer, Settings};
use ajar_core::agent::AgentMode;
use ajar_core::net::{Protocol, SourcePrefix};
use ajar_testkit::moto::Moto;
use common::{LINUX_IMAGE, REGION, WINDOWS_IMAGE, by_hand, default_vpc, open_group, run_instance};
use jiff::{SignedDuration, Timestamp};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

const MACHINE: &str = "/subscriptions/s/resourceGroups/rg/machines/web1";

fn client(moto: &Moto, key: &str, secret: &str) -> Arc<Ec2> {
    common::client(&moto.url, key, secret)
}

async fn start() -> Option<(Moto, Arc<Ec2>)> {
    let moto = tokio::task::spawn_blocking(Moto::start).await.unwrap()?;
    let ec2 = client(&moto, "AKIDTEST", "secret");
    Some((moto, ec2))
}

fn grant(id: &str, protocol: Protocol, sources: &[&str], end: Timestamp) -> DesiredGrant {
    DesiredGrant {
        request_id: format!("/subscriptions/s/resourceGroups/rg/jitRequests/{id}"),
        seq: 0,
        number: 22u16.into(),
        protocol,
        sources: sources
            .iter()
            .map(|s| SourcePrefix::parse(s).unwrap())
            .collect(),
        end_time_utc: end,
        mapped_port: None,
        cut_established: false,
    }
}

fn state(
    revision: i64,
    instance: &str,
    group: Option<&str>,
    grants: Vec<DesiredGrant>,
) -> DesiredState {
    DesiredState {
        revision,
        server_time: wall_now(),
        mode: AgentMode::Aws,
        public_address: None,
        machines: vec![DesiredMachine {
            id: MACHINE.into(),
            addresses: vec!["10.0.0.1".parse().unwrap()],
            protected_ports: vec![ProtectedPort {
                number: 22u16.into(),
                protocol: Protocol::Tcp,
            }],
            grants,
            aws: Some(AwsTarget {
                instance_id: instance.into(),
                group_id: group.map(str::to_owned),
            }),
        }],
        changes_only: false,
    }
}

fn enforcer(ec2: &Arc<Ec2>) -> AwsEnforcer {
    AwsEnforcer::new(
        ec2.clone(),
        Settings {
            rescan: Duration::from_secs(1),
            version: "test".into(),
            ..Settings::default()
        },
    )
}

/// Runs the enforcer's own timers until `until`, as the agent loop does between polls.
async fn drive(enforcer: &mut AwsEnforcer, until: Instant) {
    loop {
        let next = enforcer.next_due().map_or(until, |at| at.min(until));
        tokio::time::sleep_until(next).await;
        if Instant::now() >= until {
            return;
        }
        enforcer.run_due().await;
    }
}

async fn inbound(ec2: &Ec2, group: &str) -> Vec<FoundRule> {
    let mut rules: Vec<FoundRule> = ec2
        .rules(&[group.to_owned()])
        .await
        .unwrap()
        .into_iter()
        .filter(|r| !r.egress)
        .collect();
    rules.sort_by_key(|r| (r.protocol.clone(), r.cidr.map(|c| c.to_string())));
    rules
}

fn shown(rules: &[FoundRule]) -> Vec<String> {
    rules
        .iter()
        .map(|r| {
            format!(
                "{} {}-{} {} {}",
                r.protocol,
                r.from_port,
                r.to_port,
                r.cidr.map(|c| c.to_string()).unwrap_or_default(),
                r.description.as_deref().unwrap_or("")
            )
        })
        .collect()
}

/// The real time: the enforcer closes rules by it and by its monotonic clock.
fn wall_now() -> Timestamp {
    use ajar_core::clock::Clock;
    ajar_api::clock::SystemClock.now()
}

fn later(seconds: i64) -> Timestamp {
    // Whole seconds: descriptions carry ends to the second.
    let now = wall_now();
    Timestamp::from_second(now.as_second() + seconds + 1).unwrap()
}

fn deadline_of(end: Timestamp) -> Instant {
    Instant::now() + Duration::try_from(end.duration_since(wall_now())).unwrap_or_default()
}

#[tokio::test]
async fn a_grant_opens_in_ajars_own_group_and_closes_at_its_end() {
    let Some((_moto, ec2)) = start().await else {
        return;
    };
    let instance = run_instance(&ec2, LINUX_IMAGE, &[], &[]).await;
    let mut e = enforcer(&ec2);
    assert_eq!(e.sweep().await.unwrap(), 0);
    let end = later(3);
    e.apply(
        &state(
            1,
            &instance,
            None,
            vec![grant("r1", Protocol::Tcp, &["10.9.0.0/24"], end)],
        ),
        Duration::ZERO,
    )
    .await
    .unwrap();
    let group = e.group_of(MACHINE).expect("a group of ajar's").to_owned();
    let groups = ec2.groups(std::slice::from_ref(&group)).await.unwrap();
    assert_eq!(groups[0].name, format!("ajar-{instance}"));
    assert_eq!(groups[0].tags["ajar:managed"], "true");
    assert_eq!(groups[0].tags["ajar:instance"], instance);
    let described = ec2
        .instances(&Select::Ids(vec![instance.clone()]))
        .await
        .unwrap();
    let on_interface = &described[0].interfaces[0].groups;
    assert!(on_interface.contains(&group), "attached: {on_interface:?}");
    assert_eq!(
        on_interface.len(),
        2,
        "the instance's own group stays: {on_interface:?}"
    );
    let end_text = end.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    assert_eq!(
        shown(&inbound(&ec2, &group).await),
        [format!(
            "tcp 22-22 10.9.0.0/24 ajar:{end_text}:0:/subscriptions/s/resourceGroups/rg/jitRequests/r1"
        )]
    );
    assert_eq!(e.report().opened.len(), 1);
    e.report_sent();
    // Still open a moment before the end …
    drive(&mut e, deadline_of(end) - Duration::from_millis(700)).await;
    assert_eq!(inbound(&ec2, &group).await.len(), 1, "open until its end");
    // … and gone after it, with no state from the server.
    drive(&mut e, deadline_of(end) + Duration::from_secs(2)).await;
    assert!(inbound(&ec2, &group).await.is_empty(), "closed at its end");
    let closed = &e.report().closed;
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].at, end);
}

#[tokio::test]
async fn any_protocol_and_any_source_make_four_rules_that_follow_the_grant_ending_last() {
    let Some((_moto, ec2)) = start().await else {
        return;
    };
    let instance = run_instance(&ec2, LINUX_IMAGE, &[], &[]).await;
    let mut e = enforcer(&ec2);
    let (a_end, b_end) = (later(600), later(1200));
    let a = grant("a", Protocol::Any, &["*"], a_end);
    let b = grant("b", Protocol::Tcp, &["*"], b_end);
    e.apply(
        &state(1, &instance, None, vec![a.clone(), b]),
        Duration::ZERO,
    )
    .await
    .unwrap();
    let group = e.group_of(MACHINE).unwrap().to_owned();
    let rules = inbound(&ec2, &group).await;
    let text = |t: Timestamp| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    assert_eq!(
        shown(&rules),
        [
            format!(
                "tcp 22-22 0.0.0.0/0 ajar:{}:0:/subscriptions/s/resourceGroups/rg/jitRequests/b",
                text(b_end)
            ),
            format!(
                "tcp 22-22 ::/0 ajar:{}:0:/subscriptions/s/resourceGroups/rg/jitRequests/b",
                text(b_end)
            ),
            format!(
                "udp 22-22 0.0.0.0/0 ajar:{}:0:/subscriptions/s/resourceGroups/rg/jitRequests/a",
                text(a_end)
            ),
            format!(
                "udp 22-22 ::/0 ajar:{}:0:/subscriptions/s/resourceGroups/rg/jitRequests/a",
                text(a_end)
            ),
        ],
        "never all protocols (-1)"
    );
    // b is revoked early: its rules stay for a, described anew in place (same rule ids).
    e.report_sent();
    e.apply(&state(2, &instance, None, vec![a]), Duration::ZERO)
        .await
        .unwrap();
    let after = inbound(&ec2, &group).await;
    assert_eq!(
        after.iter().map(|r| &r.id).collect::<Vec<_>>(),
        rules.iter().map(|r| &r.id).collect::<Vec<_>>(),
        "modified, not removed and added again"
    );
    assert!(after.iter().all(|r| {
        r.description
            .as_deref()
            .unwrap()
            .ends_with("/jitRequests/a")
    }));
    let closed = &e.report().closed;
    assert_eq!(closed.len(), 1);
    assert!(closed[0].request_id.ends_with("/b") && closed[0].at < b_end);
    // a revoked too: the group is empty.
    e.apply(&state(3, &instance, None, vec![]), Duration::ZERO)
        .await
        .unwrap();
    assert!(inbound(&ec2, &group).await.is_empty());
}

#[tokio::test]
async fn a_new_enforcer_sweeps_ended_and_foreign_rules_before_any_state() {
    let Some((_moto, ec2)) = start().await else {
        return;
    };
    let instance = run_instance(&ec2, LINUX_IMAGE, &[], &[]).await;
    // An enforcer opened two grants, then died.
    let mut first = enforcer(&ec2);
    let soon = later(2);
    first
        .apply(
            &state(
                1,
                &instance,
                None,
                vec![
                    grant("gone", Protocol::Tcp, &["10.1.0.0/16"], later(600)),
                    grant("soon", Protocol::Tcp, &["10.2.0.0/16"], soon),
                ],
            ),
            Duration::ZERO,
        )
        .await
        .unwrap();
    let group = first.group_of(MACHINE).unwrap().to_owned();
    drop(first);
    // Meanwhile a rule's end passed (written as an older enforcer would) and someone added
    // a rule by hand.
    let old_and_hand = [
        (22, "10.3.0.0/16", Some("ajar:2026-01-01T00:00:00Z:0:/x")),
        (80, "0.0.0.0/0", None),
    ];
    by_hand(&ec2, "AuthorizeSecurityGroupIngress", &group, &old_and_hand).await;
    assert_eq!(inbound(&ec2, &group).await.len(), 4);
    // A new enforcer, with the control plane unreachable: the sweep alone.
    let mut second = enforcer(&ec2);
    assert_eq!(
        second.sweep().await.unwrap(),
        2,
        "the ended rule and the hand-made one"
    );
    let left: Vec<String> = inbound(&ec2, &group)
        .await
        .iter()
        .map(|r| r.cidr.unwrap().to_string())
        .collect();
    assert_eq!(left, ["10.1.0.0/16", "10.2.0.0/16"]);
    // The rule ending soon goes at its described end, still with no state.
    drive(&mut second, deadline_of(soon) + Duration::from_secs(2)).await;
    let left: Vec<String> = inbound(&ec2, &group)
        .await
        .iter()
        .map(|r| r.cidr.unwrap().to_string())
        .collect();
    assert_eq!(left, ["10.1.0.0/16"]);
    // The first state removes what is no longer desired.
    second
        .apply(&state(5, &instance, None, vec![]), Duration::ZERO)
        .await
        .unwrap();
    assert!(inbound(&ec2, &group).await.is_empty());
}

#[tokio::test]
async fn two_enforcers_with_one_state_do_not_fight_and_either_closes_on_time() {
    let Some((_moto, ec2)) = start().await else {
        return;
    };
    let instance = run_instance(&ec2, LINUX_IMAGE, &[], &[]).await;
    let end = later(3);
    let s = state(
        1,
        &instance,
        None,
        vec![grant(
            "r",
            Protocol::Any,
            &["192.0.2.0/24", "2001:db8::/64"],
            end,
        )],
    );
    let (mut a, mut b) = (enforcer(&ec2), enforcer(&ec2));
    a.apply(&s, Duration::ZERO).await.unwrap();
    b.apply(&s, Duration::ZERO).await.unwrap();
    assert_eq!(
        a.group_of(MACHINE),
        b.group_of(MACHINE),
        "one group, not two"
    );
    let group = a.group_of(MACHINE).unwrap().to_owned();
    assert_eq!(inbound(&ec2, &group).await.len(), 4, "each rule once");
    assert_eq!(a.report().opened.len(), 1);
    assert_eq!(b.report().opened.len(), 1);
    let described = ec2.instances(&Select::Ids(vec![instance])).await.unwrap();
    assert_eq!(
        described[0].interfaces[0]
            .groups
            .iter()
            .filter(|g| **g == group)
            .count(),
        1
    );
    // a is lost; b alone closes on time.
    drop(a);
    drive(&mut b, deadline_of(end) + Duration::from_secs(2)).await;
    assert!(inbound(&ec2, &group).await.is_empty());
}

#[tokio::test]
async fn other_groups_are_never_changed_and_their_open_ports_are_reported() {
    let Some((_moto, ec2)) = start().await else {
        return;
    };
    let web = open_group(&ec2, "web-open").await;
    let instance = run_instance(&ec2, LINUX_IMAGE, &[], std::slice::from_ref(&web)).await;
    let describe = |ec2: Arc<Ec2>, id: String| async move {
        let mut p = Params::new();
        p.add("GroupId.1", id);
        let xml = ec2.call("DescribeSecurityGroups", &p).await.unwrap();
        // Everything but the answer's own id.
        let cut = xml
            .find("</requestId>")
            .map_or(0, |i| i + "</requestId>".len());
        xml[cut..].to_owned()
    };
    let before = describe(ec2.clone(), web.clone()).await;
    let mut e = enforcer(&ec2);
    e.sweep().await.unwrap();
    let end = later(2);
    e.apply(
        &state(
            1,
            &instance,
            None,
            vec![grant("r", Protocol::Tcp, &["10.0.0.0/8"], end)],
        ),
        Duration::ZERO,
    )
    .await
    .unwrap();
    let status = e.report().machines.clone();
    assert_eq!(status.len(), 1);
    let exposures: Vec<String> = status[0]
        .exposures
        .iter()
        .map(|x| {
            format!(
                "{}/{} {} {}",
                x.number.get(),
                x.protocol,
                x.source,
                x.allowed_by.split(", rule").next().unwrap()
            )
        })
        .collect();
    assert_eq!(
        exposures,
        [
            format!("22/TCP 0.0.0.0/0 security group {web} (web-open)"),
            format!("22/TCP ::/0 security group {web} (web-open)"),
        ]
    );
    e.report_sent();
    drive(&mut e, deadline_of(end) + Duration::from_secs(2)).await;
    assert_eq!(
        before,
        describe(ec2.clone(), web.clone()).await,
        "the other group is byte for byte the same"
    );
    let described = ec2.instances(&Select::Ids(vec![instance])).await.unwrap();
    assert!(
        described[0].interfaces[0].groups.contains(&web),
        "and stays on the interface"
    );
    // The operator closes the world-open rule: the next rescan clears the exposure.
    let world = [(22, "0.0.0.0/0", None), (22, "::/0", None)];
    by_hand(&ec2, "RevokeSecurityGroupIngress", &web, &world).await;
    drive(&mut e, Instant::now() + Duration::from_secs(2)).await;
    let cleared = &e.report().machines;
    assert_eq!(cleared.len(), 1, "{cleared:?}");
    assert!(cleared[0].exposures.is_empty() && cleared[0].unsupported_reason.is_none());
}

#[tokio::test]
async fn a_machine_ajar_cannot_enforce_says_why_and_nothing_is_changed() {
    let Some((_moto, ec2)) = start().await else {
        return;
    };
    let web = open_group(&ec2, "web-open").await;
    let instance = run_instance(&ec2, LINUX_IMAGE, &[], std::slice::from_ref(&web)).await;
    let g = || vec![grant("r", Protocol::Tcp, &["10.0.0.0/8"], later(600))];
    let reason = |e: &AwsEnforcer| {
        e.report().machines[0]
            .unsupported_reason
            .clone()
            .unwrap_or_default()
    };
    // A group named by the operator but not tagged ajar:managed: never changed.
    let mut e = enforcer(&ec2);
    e.apply(&state(1, &instance, Some(&web), g()), Duration::ZERO)
        .await
        .unwrap();
    assert!(
        reason(&e).contains("is not tagged ajar:managed=true"),
        "{}",
        reason(&e)
    );
    assert_eq!(inbound(&ec2, &web).await.len(), 2, "untouched");
    assert!(e.report().opened.is_empty());
    // An instance that does not exist.
    let mut e = enforcer(&ec2);
    e.apply(&state(1, "i-0123456789abcdef0", None, g()), Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(
        reason(&e),
        format!("instance i-0123456789abcdef0 not found in region {REGION}")
    );
    // An interface that has as many groups as it may.
    let mut e = AwsEnforcer::new(
        ec2.clone(),
        Settings {
            max_groups_per_interface: 1,
            ..Settings::default()
        },
    );
    e.apply(&state(1, &instance, None, g()), Duration::ZERO)
        .await
        .unwrap();
    assert!(
        reason(&e).starts_with("no ajar-managed group attachable: interface eni-"),
        "{}",
        reason(&e)
    );
    let described = ec2
        .instances(&Select::Ids(vec![instance.clone()]))
        .await
        .unwrap();
    assert_eq!(
        described[0].interfaces[0].groups,
        std::slice::from_ref(&web)
    );
    let made = ec2
        .groups_where(&[("group-name", vec![format!("ajar-{instance}")])])
        .await
        .unwrap();
    assert!(made.is_empty(), "no group made that could not be attached");
    // A group with no room for more rules (60 inbound rules): the grant is not reported open.
    let mut e = enforcer(&ec2);
    let many: Vec<String> = (0..61).map(|i| format!("10.7.{i}.0/24")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    e.apply(
        &state(
            1,
            &instance,
            None,
            vec![grant("big", Protocol::Tcp, &many, later(600))],
        ),
        Duration::ZERO,
    )
    .await
    .unwrap();
    assert!(
        reason(&e).contains("is full: 1 rule(s) could not be added"),
        "{}",
        reason(&e)
    );
    assert!(e.report().opened.is_empty());
}

#[tokio::test]
async fn discovery_finds_tagged_instances_with_their_os_and_addresses() {
    let Some((_moto, ec2)) = start().await else {
        return;
    };
    let linux = run_instance(
        &ec2,
        LINUX_IMAGE,
        &[("ajar", "protect"), ("Name", "web-1")],
        &[],
    )
    .await;
    let windows = run_instance(&ec2, WINDOWS_IMAGE, &[("ajar", "protect")], &[]).await;
    let _untagged = run_instance(&ec2, LINUX_IMAGE, &[], &[]).await;
    let mut found =
        ajar_aws::discover::discover(&ec2, &Select::Tag("ajar".into(), "protect".into()))
            .await
            .unwrap();
    found.sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()));
    let mut expected = vec![linux.clone(), windows.clone()];
    expected.sort();
    assert_eq!(
        found
            .iter()
            .map(|m| m.name.as_str().to_owned())
            .collect::<Vec<_>>(),
        expected
    );
    for m in &found {
        let p = &m.properties;
        let os = if m.name.as_str() == windows {
            "windows"
        } else {
            "linux"
        };
        assert_eq!(p.os.to_string(), os);
        assert_eq!(p.labels["aws:instance-id"], m.name.as_str());
        assert_eq!(p.labels["aws:region"], REGION);
        assert!(p.labels["aws:vpc-id"].starts_with("vpc-"));
        assert_eq!(
            p.addresses.len(),
            2,
            "private and public: {:?}",
            p.addresses
        );
        assert!(p.validate().is_ok());
    }
    let web = found.iter().find(|m| m.name.as_str() == linux).unwrap();
    assert_eq!(web.properties.labels["aws:name"], "web-1");
    let any = ajar_aws::discover::discover(&ec2, &Select::Tag("ajar".into(), "*".into()))
        .await
        .unwrap();
    assert_eq!(any.len(), 2);
}

#[tokio::test]
async fn moto_checks_the_signature_and_the_iam_policy() {
    // moto verifies signatures (with botocore) and IAM permissions after its first 4 calls,
    // which make a user allowed to describe only.
    let Some(moto) = tokio::task::spawn_blocking(|| Moto::start_with(Some(4)))
        .await
        .unwrap()
    else {
        return;
    };
    let setup = r#"
import boto3, json, sys
iam = boto3.client("iam", endpoint_url=sys.argv[1], region_name="us-east-1",
                   aws_access_key_id="x", aws_secret_access_key="x")
iam.create_user(UserName="ajar")
arn = iam.create_policy(PolicyName="describe", PolicyDocument=json.dumps({"Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["ec2:Describe*"], "Resource": "*"}]}))["Policy"]["Arn"]
iam.attach_user_policy(UserName="ajar", PolicyArn=arn)
key = iam.create_access_key(UserName="ajar")["AccessKey"]
print(key["AccessKeyId"], key["SecretAccessKey"])
"#;
    let out = std::process::Command::new(&moto.python)
        .args(["-c", setup, &moto.url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let (key, secret) = text.trim().split_once(' ').unwrap();
    let ec2 = client(&moto, key, secret);
    ec2.groups_where(&[])
        .await
        .expect("a signed describe is accepted");
    let wrong = client(&moto, key, "not-the-secret");
    let e = wrong.groups_where(&[]).await.unwrap_err();
    assert_eq!(e.code(), Some("AuthFailure"), "{e}");
    let vpc = default_vpc(&ec2).await;
    let e = ec2
        .create_group("ajar-x", "x", &vpc, &[("ajar:managed", "true")])
        .await
        .unwrap_err();
    assert!(
        matches!(e.code(), Some("AccessDenied" | "UnauthorizedOperation")),
        "{e}"
    );
}

#[tokio::test]
async fn instance_role_credentials_come_from_the_metadata_service() {
    let Some(moto) = tokio::task::spawn_blocking(Moto::start).await.unwrap() else {
        return;
    };
    let http = reqwest::Client::new();
    let env = Environment::from_vars(
        [("AWS_EC2_METADATA_SERVICE_ENDPOINT", moto.url.as_str())],
        None,
    );
    let chain = Chain::resolve(&env, http.clone());
    assert_eq!(chain.origin, "instance role");
    let now = wall_now();
    let credentials = chain.credentials(now).await.unwrap();
    assert!(!credentials.access_key_id.is_empty());
    assert!(credentials.session_token.is_some());
    // Cached while fresh.
    assert_eq!(
        chain
            .credentials(now + SignedDuration::from_secs(1))
            .await
            .unwrap(),
        credentials
    );
    let ec2 = Ec2::new(http, REGION.into(), Some(moto.url.clone()), chain).unwrap();
    ec2.groups_where(&[])
        .await
        .expect("a call signed with the role's credentials");
}

/// The IAM policy docs/aws.md gives, written out.
const IAM_POLICY: &str = include_str!("../../../docs/aws-iam-policy.json");

#[tokio::test]
async fn the_documented_iam_policy_allows_every_call_the_enforcer_makes() {
    // moto checks signatures and IAM actions after the setup's 8 calls: an administrator for
    // the fixtures, and a user with the documented policy's statements. moto evaluates EC2
    // calls against the resource `*` and ignores conditions, so each statement is given
    // `Resource: *` and no condition: what is checked is that the list of actions is whole.
    let Some(moto) = tokio::task::spawn_blocking(|| Moto::start_with(Some(8)))
        .await
        .unwrap()
    else {
        return;
    };
    let setup = r#"
import boto3, json, sys
iam = boto3.client("iam", endpoint_url=sys.argv[1], region_name="us-east-1",
                   aws_access_key_id="x", aws_secret_access_key="x")
for user, document in (("admin", json.dumps({"Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "ec2:*", "Resource": "*"}]})),
        ("ajar", json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": s["Effect"], "Action": s["Action"], "Resource": "*"}
            for s in json.loads(sys.argv[2])["Statement"]]}))):
    iam.create_user(UserName=user)
    arn = iam.create_policy(PolicyName=user, PolicyDocument=document)["Policy"]["Arn"]
    iam.attach_user_policy(UserName=user, PolicyArn=arn)
    key = iam.create_access_key(UserName=user)["AccessKey"]
    print(key["AccessKeyId"], key["SecretAccessKey"])
"#;
    let out = std::process::Command::new(&moto.python)
        .args(["-c", setup, &moto.url, IAM_POLICY])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let keys: Vec<(&str, &str)> = text.lines().filter_map(|l| l.split_once(' ')).collect();
    let (admin, ajar) = (
        client(&moto, keys[0].0, keys[0].1),
        client(&moto, keys[1].0, keys[1].1),
    );
    let web = open_group(&admin, "web-open").await;
    let instance = run_instance(
        &admin,
        LINUX_IMAGE,
        &[("ajar", "protect")],
        std::slice::from_ref(&web),
    )
    .await;
    // Everything the enforcer does, as the user with the documented policy.
    let found = ajar_aws::discover::discover(&ajar, &Select::Tag("ajar".into(), "protect".into()))
        .await
        .expect("discovery is allowed");
    assert_eq!(found.len(), 1);
    let mut e = enforcer(&ajar);
    e.sweep().await.expect("the sweep is allowed");
    let (a, b) = (later(600), later(1200));
    e.apply(
        &state(
            1,
            &instance,
            None,
            vec![
                grant("a", Protocol::Tcp, &["10.0.0.0/8"], a),
                grant("b", Protocol::Tcp, &["10.0.0.0/8"], b),
            ],
        ),
        Duration::ZERO,
    )
    .await
    .unwrap();
    let group = e
        .group_of(MACHINE)
        .unwrap_or_else(|| panic!("group made and attached: {:?}", e.report().machines))
        .to_owned();
    assert_eq!(
        e.report().opened.len(),
        2,
        "rules added: {:?}",
        e.report().machines
    );
    assert_eq!(e.report().machines[0].exposures.len(), 2, "exposures read");
    // b revoked: a description changes; then a revoked: the rule goes.
    e.apply(
        &state(
            2,
            &instance,
            None,
            vec![grant("a", Protocol::Tcp, &["10.0.0.0/8"], a)],
        ),
        Duration::ZERO,
    )
    .await
    .unwrap();
    let rules = inbound(&admin, &group).await;
    assert!(
        rules[0].description.as_deref().unwrap().ends_with("/a"),
        "redescribed: {rules:?}"
    );
    e.apply(&state(3, &instance, None, vec![]), Duration::ZERO)
        .await
        .unwrap();
    assert!(inbound(&admin, &group).await.is_empty(), "revoked");
    assert!(
        e.report()
            .machines
            .iter()
            .all(|m| m.unsupported_reason.is_none())
    );
}

/// Tags or untags a resource as an operator would.
async fn tag(ec2: &Ec2, action: &'static str, resource: &str, key: &str, value: &str) {
    let mut p = Params::new();
    p.add("ResourceId.1", resource)
        .add("Tag.1.Key", key)
        .add("Tag.1.Value", value);
    ec2.call(action, &p).await.unwrap();
}

#[tokio::test]
async fn a_group_the_machine_stops_using_is_emptied_before_its_grants_are_reported_closed() {
    let Some((_moto, ec2)) = start().await else {
        return;
    };
    let first = run_instance(&ec2, LINUX_IMAGE, &[], &[]).await;
    let second = run_instance(&ec2, LINUX_IMAGE, &[], &[]).await;
    let mut e = enforcer(&ec2);
    let g = || vec![grant("r", Protocol::Tcp, &["10.0.0.0/8"], later(600))];
    e.apply(&state(1, &first, None, g()), Duration::ZERO)
        .await
        .unwrap();
    let old = e.group_of(MACHINE).unwrap().to_owned();
    assert_eq!(inbound(&ec2, &old).await.len(), 1);
    e.report_sent();
    // The machine now names another instance: the rule moves, and none stays behind.
    e.apply(&state(2, &second, None, g()), Duration::ZERO)
        .await
        .unwrap();
    let new = e.group_of(MACHINE).unwrap().to_owned();
    assert_ne!(old, new);
    assert!(
        inbound(&ec2, &old).await.is_empty(),
        "the old group is emptied"
    );
    assert_eq!(inbound(&ec2, &new).await.len(), 1);
    assert!(e.report().closed.is_empty(), "still open, elsewhere");
    // Someone takes the tag off ajar's group: ajar may no longer use it, so it empties it and
    // only then reports the grant closed.
    tag(&ec2, "DeleteTags", &new, "ajar:managed", "true").await;
    drive(&mut e, Instant::now() + Duration::from_secs(2)).await;
    assert!(
        inbound(&ec2, &new).await.is_empty(),
        "emptied on the way out"
    );
    assert_eq!(e.report().closed.len(), 1, "{:?}", e.report());
    let status = e.report().machines.last().unwrap().clone();
    assert!(
        status
            .unsupported_reason
            .unwrap()
            .contains("is not tagged ajar:managed=true")
    );
}

#[tokio::test]
async fn a_group_or_an_instance_that_is_another_machines_is_refused() {
    let Some((_moto, ec2)) = start().await else {
        return;
    };
    let mine = run_instance(&ec2, LINUX_IMAGE, &[], &[]).await;
    let other = run_instance(&ec2, LINUX_IMAGE, &[], &[]).await;
    // ajar's group for the other instance, named on this one.
    let mut e = enforcer(&ec2);
    e.apply(&state(1, &other, None, vec![]), Duration::ZERO)
        .await
        .unwrap();
    let others = e.group_of(MACHINE).unwrap().to_owned();
    let mut e = enforcer(&ec2);
    e.apply(
        &state(
            1,
            &mine,
            Some(&others),
            vec![grant("r", Protocol::Tcp, &["10.0.0.0/8"], later(600))],
        ),
        Duration::ZERO,
    )
    .await
    .unwrap();
    let reason = e.report().machines[0].unsupported_reason.clone().unwrap();
    assert!(
        reason.contains(&format!("is ajar's group for instance {other}")),
        "{reason}"
    );
    assert!(
        inbound(&ec2, &others).await.is_empty(),
        "nothing added to it"
    );
    // Two machines naming one instance: neither is enforced.
    let mut twins = state(
        1,
        &mine,
        None,
        vec![grant("r", Protocol::Tcp, &["10.0.0.0/8"], later(600))],
    );
    let mut second = twins.machines[0].clone();
    second.id = format!("{MACHINE}-twin");
    twins.machines.push(second);
    let mut e = enforcer(&ec2);
    e.apply(&twins, Duration::ZERO).await.unwrap();
    assert_eq!(e.report().machines.len(), 2);
    for status in &e.report().machines {
        let reason = status.unsupported_reason.clone().unwrap_or_default();
        assert!(
            reason.contains("one instance can be only one machine"),
            "{reason}"
        );
    }
    assert!(e.report().opened.is_empty());
}

#[tokio::test]
async fn the_sweep_keeps_other_rules_in_a_group_an_operator_tagged() {
    let Some((_moto, ec2)) = start().await else {
        return;
    };
    let vpc = default_vpc(&ec2).await;
    let group = ec2
        .create_group(
            "ops-jit",
            "tagged by an operator",
            &vpc,
            &[("ajar:managed", "true")],
        )
        .await
        .unwrap();
    let old_and_hand = [
        (22, "10.3.0.0/16", Some("ajar:2026-01-01T00:00:00Z:0:/x")),
        (443, "0.0.0.0/0", None),
    ];
    by_hand(&ec2, "AuthorizeSecurityGroupIngress", &group, &old_and_hand).await;
    let mut e = enforcer(&ec2);
    assert_eq!(e.sweep().await.unwrap(), 1, "only the ended rule of ajar's");
    let left = inbound(&ec2, &group).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].from_port, 443);
}
