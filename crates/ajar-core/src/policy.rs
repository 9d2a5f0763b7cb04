//! Network JIT access policies: which ports of which machines may be opened, from where, and
//! for how long at most.

use crate::FieldError;
use crate::duration::AccessDuration;
use crate::id::{ResourceId, ResourceKind};
use crate::lifecycle::ApprovalRule;
use crate::machine::Os;
use crate::net::{Port, Protocol, SourcePrefix};
use serde::{Deserialize, Serialize};

/// The vendor's limit on a policy name plus a machine name.
pub const MAX_POLICY_PLUS_MACHINE_NAME: usize = 56;

/// Ports ajar recommends protecting: SSH, RDP and WinRM.
pub const RECOMMENDED_PORTS: [u16; 4] = [22, 3389, 5985, 5986];

/// One protected port of a machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRule {
    /// The port number.
    pub number: Port,
    /// TCP, UDP or both.
    pub protocol: Protocol,
    /// Where requests may open the port from; never empty.
    pub allowed_sources: Vec<SourcePrefix>,
    /// The longest window one request may open.
    pub max_duration: AccessDuration,
}

impl PortRule {
    /// The rule "Enable with defaults" gives a machine: SSH for linux, RDP for windows, from
    /// any source, for at most three hours.
    pub fn default_for(os: Os) -> Self {
        let number = match os {
            Os::Linux => 22,
            Os::Windows => 3389,
        };
        PortRule {
            number: Port::from(number),
            protocol: Protocol::Any,
            allowed_sources: vec![SourcePrefix::Any],
            max_duration: AccessDuration::three_hours(),
        }
    }

    /// Whether a requested source lies inside one of the allowed prefixes (CIDR containment,
    /// not literal match).
    pub fn allows_source(&self, requested: &SourcePrefix) -> bool {
        self.allowed_sources.iter().any(|a| a.contains(requested))
    }
}

/// The protected ports of one machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineRules {
    /// The machine.
    pub machine: ResourceId,
    /// Its protected ports; never empty.
    pub ports: Vec<PortRule>,
}

impl MachineRules {
    /// The rules for a port number, optionally narrowed to one protocol.
    pub fn rules_for(&self, number: Port, protocol: Option<Protocol>) -> Vec<&PortRule> {
        self.ports
            .iter()
            .filter(|r| r.number == number && protocol.is_none_or(|p| p == r.protocol))
            .collect()
    }
}

/// The rules of one policy: machines and their ports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRules {
    /// Covered machines, in the order given.
    pub machines: Vec<MachineRules>,
    /// Whether connections opened during a window are cut when it ends (conntrack entries are
    /// deleted). Off by default: like the vendor's JIT, established connections survive.
    #[serde(default)]
    pub cut_established: bool,
    /// How requests are decided: automatically (the default, as in the vendor's JIT) or by approvers.
    #[serde(default)]
    pub approval: ApprovalRule,
}

impl PolicyRules {
    /// The rules of one machine, if the policy covers it.
    pub fn machine(&self, id: &ResourceId) -> Option<&MachineRules> {
        self.machines.iter().find(|m| &m.machine == id)
    }

    /// Checks the rules against the policy they belong to: at least one machine, every machine
    /// in the policy's resource group and named once, the name-length limit, at least one port
    /// per machine, and no two rules on the same port with overlapping protocols.
    pub fn validate(&self, policy: &ResourceId) -> Result<(), FieldError> {
        if policy.kind != ResourceKind::JitNetworkAccessPolicy {
            return Err(FieldError::new("", "not a JIT network access policy id"));
        }
        if self.machines.is_empty() {
            return Err(FieldError::new(
                "properties.virtualMachines",
                "a policy must cover at least one machine",
            ));
        }
        for (i, m) in self.machines.iter().enumerate() {
            let at = |field: &str| format!("properties.virtualMachines[{i}]{field}");
            if m.machine.kind != ResourceKind::Machine {
                return Err(FieldError::new(at(".id"), "not a machine id"));
            }
            if m.machine.resource_group_scope() != policy.resource_group_scope() {
                return Err(FieldError::new(
                    at(".id"),
                    format!(
                        "machine {} is not in the policy's resource group {}",
                        m.machine,
                        policy.resource_group_scope()
                    ),
                ));
            }
            if self.machines[..i].iter().any(|o| o.machine == m.machine) {
                return Err(FieldError::new(
                    at(".id"),
                    format!("machine {} is listed twice", m.machine),
                ));
            }
            let total = policy.name.as_str().len() + m.machine.name.as_str().len();
            if total > MAX_POLICY_PLUS_MACHINE_NAME {
                return Err(FieldError::new(
                    at(".id"),
                    format!(
                        "policy name plus machine name is {total} characters; at most {MAX_POLICY_PLUS_MACHINE_NAME} are allowed"
                    ),
                ));
            }
            if m.ports.is_empty() {
                return Err(FieldError::new(
                    at(".ports"),
                    "a machine must have at least one port",
                ));
            }
            for (j, r) in m.ports.iter().enumerate() {
                let port_at = |field: &str| at(&format!(".ports[{j}]{field}"));
                if r.allowed_sources.is_empty() {
                    return Err(FieldError::new(
                        port_at(".allowedSourceAddressPrefixes"),
                        "at least one allowed source is required ('*' for any)",
                    ));
                }
                if let Some(dup) = m.ports[..j]
                    .iter()
                    .find(|o| o.number == r.number && o.protocol.overlaps(r.protocol))
                {
                    return Err(FieldError::new(
                        port_at(".number"),
                        format!(
                            "port {}/{} overlaps port {}/{} of the same machine",
                            r.number, r.protocol, dup.number, dup.protocol
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> ResourceId {
        ResourceId::parse(s).unwrap()
    }
    const POLICY: &str = "/subscriptions/s/resourceGroups/rg/jitNetworkAccessPolicies/default";
    const VM: &str = "/subscriptions/s/resourceGroups/rg/machines/vm1";

    fn rules(ports: Vec<PortRule>) -> PolicyRules {
        PolicyRules {
            machines: vec![MachineRules {
                machine: id(VM),
                ports,
            }],
            cut_established: false,
            approval: Default::default(),
        }
    }

    fn target(r: Result<(), FieldError>) -> String {
        r.err().map(|e| e.target).unwrap_or_default()
    }

    #[test]
    fn defaults_follow_the_os() {
        assert_eq!(PortRule::default_for(Os::Linux).number.get(), 22);
        assert_eq!(PortRule::default_for(Os::Windows).number.get(), 3389);
        assert_eq!(
            rules(vec![PortRule::default_for(Os::Linux)]).validate(&id(POLICY)),
            Ok(())
        );
    }

    #[test]
    fn overlapping_ports_are_refused() {
        let mut tcp = PortRule::default_for(Os::Linux);
        tcp.protocol = Protocol::Tcp;
        let mut udp = tcp.clone();
        udp.protocol = Protocol::Udp;
        assert_eq!(
            rules(vec![tcp.clone(), udp.clone()]).validate(&id(POLICY)),
            Ok(())
        );
        assert_eq!(
            target(rules(vec![tcp.clone(), tcp.clone()]).validate(&id(POLICY))),
            "properties.virtualMachines[0].ports[1].number"
        );
        assert_eq!(
            target(rules(vec![udp, PortRule::default_for(Os::Linux)]).validate(&id(POLICY))),
            "properties.virtualMachines[0].ports[1].number"
        );
    }

    #[test]
    fn machines_must_be_in_the_policy_group_and_names_short() {
        let mut r = rules(vec![PortRule::default_for(Os::Linux)]);
        r.machines[0].machine = id("/subscriptions/s/resourceGroups/other/machines/vm1");
        assert_eq!(
            target(r.validate(&id(POLICY))),
            "properties.virtualMachines[0].id"
        );

        let mut r = rules(vec![PortRule::default_for(Os::Linux)]);
        // "default" is 7 characters: 49 more reach the limit, 50 pass it.
        r.machines[0].machine = id(&format!(
            "/subscriptions/s/resourceGroups/rg/machines/{}",
            "m".repeat(49)
        ));
        assert_eq!(r.validate(&id(POLICY)), Ok(()));
        r.machines[0].machine = id(&format!(
            "/subscriptions/s/resourceGroups/rg/machines/{}",
            "m".repeat(50)
        ));
        assert_eq!(
            target(r.validate(&id(POLICY))),
            "properties.virtualMachines[0].id"
        );

        assert_eq!(
            target(
                PolicyRules {
                    machines: vec![],
                    cut_established: false,
                    approval: Default::default(),
                }
                .validate(&id(POLICY))
            ),
            "properties.virtualMachines"
        );
        assert_eq!(
            target(rules(vec![]).validate(&id(POLICY))),
            "properties.virtualMachines[0].ports"
        );
    }

    #[test]
    fn sources_are_checked_by_containment() {
        let mut r = PortRule::default_for(Os::Linux);
        r.allowed_sources = vec![SourcePrefix::parse("10.0.0.0/24").unwrap()];
        let inside = SourcePrefix::parse("10.0.0.7").unwrap();
        let outside = SourcePrefix::parse("10.0.1.7").unwrap();
        assert!(r.allows_source(&inside));
        assert!(!r.allows_source(&outside));
        assert!(!r.allows_source(&SourcePrefix::Any));
    }
}
