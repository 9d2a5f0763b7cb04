//! An agent's desired state as a pure projection of what the store holds: its machines, the
//! ports their policies protect and the grants open on them. No IO: the caller reads, this
//! decides what the agent must enforce.

use ajar_api::wire::{AwsTarget, DesiredGrant, DesiredMachine, DesiredState, ProtectedPort};
use ajar_core::agent::AgentMode;
use ajar_core::id::ResourceId;
use ajar_core::net::{Port, Protocol, SourcePrefix};
use ajar_core::policy::PolicyRules;
use ajar_store::GrantRow;
use jiff::Timestamp;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

pub use ajar_api::wire::{AWS_GROUP_LABEL, AWS_INSTANCE_LABEL};

/// How the agent enforces.
#[derive(Debug, Clone, Copy)]
pub struct Agent {
    /// Host, gateway or aws.
    pub mode: AgentMode,
    /// Where clients connect to a gateway.
    pub public_address: Option<IpAddr>,
}

/// A machine the agent guards.
#[derive(Debug, Clone)]
pub struct Guarded {
    /// Its id.
    pub id: String,
    /// Its addresses.
    pub addresses: Vec<IpAddr>,
    /// The policy covering it, if any.
    pub policy_id: Option<String>,
    /// The instance it is, from its labels ([`aws_target`]); sent to `aws` agents only.
    pub aws: Option<AwsTarget>,
}

/// The EC2 instance a machine's labels name (`aws:instance-id`, and `aws:group-id` when an
/// operator named the group ajar may manage); `None` without an instance.
pub fn aws_target(labels: &BTreeMap<String, String>) -> Option<AwsTarget> {
    let instance_id = labels.get(AWS_INSTANCE_LABEL)?.clone();
    Some(AwsTarget {
        instance_id,
        group_id: labels.get(AWS_GROUP_LABEL).cloned(),
    })
}

/// The cloud targets a machine's labels name, as the store keeps them (each named by at most
/// one machine): the instance and the group, each whether or not the other is named.
pub fn aws_targets(labels: &BTreeMap<String, String>) -> ajar_store::AwsTargets<'_> {
    ajar_store::AwsTargets {
        instance: labels.get(AWS_INSTANCE_LABEL).map(String::as_str),
        group: labels.get(AWS_GROUP_LABEL).map(String::as_str),
    }
}

/// The label that names a cloud target of `kind`.
pub fn label_of(kind: ajar_store::AwsTargetKind) -> &'static str {
    match kind {
        ajar_store::AwsTargetKind::Instance => AWS_INSTANCE_LABEL,
        ajar_store::AwsTargetKind::Group => AWS_GROUP_LABEL,
    }
}

/// The desired state at `revision` and `now`: per machine the ports its policy protects (none
/// without a policy, or when the policy is not in `policies`) and its open `grants` (a grant
/// whose stored values do not parse is left out and logged: never sent half-read). Only an
/// `aws` agent is told which instance each machine is: host and gateway agents refuse fields
/// they do not know.
pub fn project(
    agent: Agent,
    revision: i64,
    now: Timestamp,
    machines: &[Guarded],
    grants: &[GrantRow],
    policies: &HashMap<String, Arc<PolicyRules>>,
) -> DesiredState {
    let mut by_machine: HashMap<&str, Vec<&GrantRow>> = HashMap::new();
    for g in grants {
        by_machine.entry(&g.port.machine_id).or_default().push(g);
    }
    let machines = machines
        .iter()
        .map(|m| DesiredMachine {
            id: m.id.clone(),
            addresses: m.addresses.clone(),
            protected_ports: protected_ports(m, policies),
            grants: by_machine
                .get(m.id.as_str())
                .into_iter()
                .flatten()
                .filter_map(|g| {
                    let grant = desired_grant(g, policies);
                    if grant.is_none() {
                        tracing::error!(request = %g.port.request_id, "stored grant unreadable; not sent");
                    }
                    grant
                })
                .collect(),
            aws: match agent.mode {
                AgentMode::Aws => m.aws.clone(),
                AgentMode::Host | AgentMode::Gateway => None,
            },
        })
        .collect();
    DesiredState {
        revision,
        server_time: now,
        mode: agent.mode,
        public_address: agent.public_address,
        machines,
        changes_only: false,
    }
}

fn protected_ports(
    m: &Guarded,
    policies: &HashMap<String, Arc<PolicyRules>>,
) -> Vec<ProtectedPort> {
    let Some(rules) = m.policy_id.as_ref().and_then(|p| policies.get(p)) else {
        return Vec::new();
    };
    let Ok(id) = ResourceId::parse(&m.id) else {
        return Vec::new();
    };
    rules
        .machine(&id)
        .map(|mr| {
            mr.ports
                .iter()
                .map(|r| ProtectedPort {
                    number: r.number,
                    protocol: r.protocol,
                })
                .collect()
        })
        .unwrap_or_default()
}

fn desired_grant(
    g: &GrantRow,
    policies: &HashMap<String, Arc<PolicyRules>>,
) -> Option<DesiredGrant> {
    Some(DesiredGrant {
        request_id: g.port.request_id.clone(),
        seq: g.port.seq,
        number: Port::from(g.port.number),
        protocol: Protocol::parse(&g.port.protocol).ok()?,
        sources: g
            .port
            .sources
            .iter()
            .map(|s| SourcePrefix::parse(s).ok())
            .collect::<Option<Vec<_>>>()?,
        end_time_utc: g.port.end_time,
        mapped_port: g.port.mapped_port,
        cut_established: policies
            .get(&g.policy_id)
            .is_some_and(|r| r.cut_established),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ajar_store::PortRow;

    const VM: &str = "/subscriptions/s/resourceGroups/rg/machines/vm";
    const OTHER: &str = "/subscriptions/s/resourceGroups/rg/machines/other";
    const POLICY: &str = "/subscriptions/s/resourceGroups/rg/jitNetworkAccessPolicies/p";

    fn rules(cut: bool) -> PolicyRules {
        use ajar_core::policy::{MachineRules, PortRule};
        PolicyRules {
            machines: vec![MachineRules {
                machine: ResourceId::parse(VM).unwrap(),
                ports: vec![PortRule {
                    number: Port::from(22),
                    protocol: Protocol::Tcp,
                    allowed_sources: vec![SourcePrefix::Any],
                    max_duration: ajar_core::duration::AccessDuration::new(
                        jiff::SignedDuration::from_hours(3),
                    )
                    .unwrap(),
                }],
            }],
            cut_established: cut,
            approval: Default::default(),
        }
    }

    fn grant(machine: &str, sources: Vec<String>, protocol: &str) -> GrantRow {
        GrantRow {
            port: PortRow::initiated(
                "r1",
                0,
                machine.into(),
                22,
                protocol.into(),
                sources,
                "k".into(),
                Timestamp::from_second(5_000).unwrap(),
            ),
            requestor: "alice".into(),
            created_at: Timestamp::from_second(1_000).unwrap(),
            policy_id: POLICY.into(),
        }
    }

    #[test]
    fn machines_get_their_policys_ports_and_their_own_readable_grants() {
        let machines = vec![
            Guarded {
                id: VM.into(),
                addresses: vec!["10.0.0.4".parse().unwrap()],
                policy_id: Some(POLICY.into()),
                aws: None,
            },
            Guarded {
                id: OTHER.into(),
                addresses: vec!["10.0.0.5".parse().unwrap()],
                policy_id: None,
                aws: None,
            },
        ];
        let grants = vec![
            grant(VM, vec!["203.0.113.7".into()], "TCP"),
            grant(VM, vec!["not a prefix".into()], "TCP"),
            grant(OTHER, vec!["*".into()], "nonsense"),
        ];
        let policies = HashMap::from([(POLICY.to_owned(), Arc::new(rules(true)))]);
        let agent = Agent {
            mode: AgentMode::Host,
            public_address: None,
        };
        let now = Timestamp::from_second(2_000).unwrap();
        let state = project(agent, 7, now, &machines, &grants, &policies);
        assert_eq!((state.revision, state.server_time), (7, now));
        let vm = &state.machines[0];
        assert_eq!(vm.protected_ports.len(), 1);
        assert_eq!(vm.protected_ports[0].number, Port::from(22));
        assert_eq!(vm.grants.len(), 1, "the unreadable grant is left out");
        assert!(vm.grants[0].cut_established);
        let other = &state.machines[1];
        assert!(
            other.protected_ports.is_empty(),
            "no policy, nothing protected"
        );
        assert!(other.grants.is_empty());
        // A policy not loaded protects nothing rather than guessing.
        let state = project(agent, 7, now, &machines, &grants, &HashMap::new());
        assert!(state.machines[0].protected_ports.is_empty());
        assert!(!state.machines[0].grants[0].cut_established);
    }

    #[test]
    fn only_aws_agents_are_told_the_instance() {
        let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert_eq!(aws_target(&labels(&[("env", "prod")])), None);
        let target = aws_target(&labels(&[
            (AWS_INSTANCE_LABEL, "i-0abc"),
            (AWS_GROUP_LABEL, "sg-1"),
        ]));
        assert_eq!(
            target,
            Some(AwsTarget {
                instance_id: "i-0abc".into(),
                group_id: Some("sg-1".into())
            })
        );
        let machines = vec![Guarded {
            id: VM.into(),
            addresses: Vec::new(),
            policy_id: None,
            aws: target.clone(),
        }];
        let now = Timestamp::from_second(2_000).unwrap();
        for (mode, expected) in [
            (AgentMode::Aws, target),
            (AgentMode::Host, None),
            (AgentMode::Gateway, None),
        ] {
            let agent = Agent {
                mode,
                public_address: None,
            };
            let state = project(agent, 1, now, &machines, &[], &HashMap::new());
            assert_eq!(state.machines[0].aws, expected, "{mode:?}");
        }
    }
}
