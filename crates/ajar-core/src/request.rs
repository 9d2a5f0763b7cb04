//! Network access requests: checking an "initiate" against its policy, and the per-port
//! lifecycle (`Initiated` → `Revoked` with a reason).

use crate::FieldError;
use crate::duration::AccessDuration;
use crate::id::ResourceId;
use crate::net::{Port, Protocol, SourcePrefix};
use crate::policy::PolicyRules;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;

/// When a requested window ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum WindowEnd {
    /// At this instant.
    At(Timestamp),
    /// This long after the request is accepted.
    After(AccessDuration),
}

/// One port asked for in an initiate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestedPort {
    /// The port number.
    pub number: Port,
    /// The protocol, needed only when the policy has rules for several protocols on the port.
    pub protocol: Option<Protocol>,
    /// Requested sources; empty means "the caller's own address".
    pub sources: Vec<SourcePrefix>,
    /// When access ends.
    pub end: WindowEnd,
}

/// One machine asked for in an initiate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestedMachine {
    /// The machine.
    pub machine: ResourceId,
    /// Its ports.
    pub ports: Vec<RequestedPort>,
}

/// A port the request will open, after every check passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedPort {
    /// The machine.
    pub machine: ResourceId,
    /// The port number.
    pub number: Port,
    /// The protocol of the matching policy rule.
    pub protocol: Protocol,
    /// Sources the port opens for; never empty.
    pub sources: Vec<SourcePrefix>,
    /// When access ends.
    pub end: Timestamp,
}

impl PlannedPort {
    /// Two ports with equal keys are "the same machine, port and source": a newer request
    /// supersedes the older one.
    pub fn supersede_key(&self) -> String {
        supersede_key(&self.machine, self.number, self.protocol, &self.sources)
    }
}

/// The key under which requests for the same machine, port, protocol and sources supersede
/// each other. Sources are compared as a set.
pub fn supersede_key(
    machine: &ResourceId,
    number: Port,
    protocol: Protocol,
    sources: &[SourcePrefix],
) -> String {
    let mut s: Vec<String> = sources.iter().map(ToString::to_string).collect();
    s.sort();
    s.dedup();
    format!("{machine}|{number}|{protocol}|{}", s.join(","))
}

/// Checks an initiate against a policy at instant `now` and returns the ports to open.
///
/// Every machine must be covered by the policy; every port must match a rule (by number, and by
/// protocol when several rules share the number); every source must lie inside an allowed
/// prefix (CIDR containment); the window must end in the future and no later than the rule's
/// maximum. `caller` is used where no source is given.
pub fn plan_initiate(
    policy: &PolicyRules,
    machines: &[RequestedMachine],
    now: Timestamp,
    caller: Option<IpAddr>,
) -> Result<Vec<PlannedPort>, FieldError> {
    if machines.is_empty() {
        return Err(FieldError::new(
            "virtualMachines",
            "at least one machine is required",
        ));
    }
    let mut planned = Vec::new();
    for (i, m) in machines.iter().enumerate() {
        let at = |field: &str| format!("virtualMachines[{i}]{field}");
        let Some(rules) = policy.machine(&m.machine) else {
            return Err(FieldError::not_found(
                at(".id"),
                format!("machine {} is not covered by this policy", m.machine),
            ));
        };
        if machines[..i].iter().any(|o| o.machine == m.machine) {
            return Err(FieldError::new(
                at(".id"),
                format!("machine {} is listed twice", m.machine),
            ));
        }
        if m.ports.is_empty() {
            return Err(FieldError::new(
                at(".ports"),
                "at least one port is required",
            ));
        }
        let first_of_machine = planned.len();
        for (j, p) in m.ports.iter().enumerate() {
            let port_at = |field: &str| at(&format!(".ports[{j}]{field}"));
            let candidates = rules.rules_for(p.number, p.protocol);
            let rule = match candidates.as_slice() {
                [rule] => *rule,
                [] => {
                    return Err(FieldError::new(
                        port_at(".number"),
                        format!(
                            "port {}{} is not protected by this policy on {}",
                            p.number,
                            p.protocol.map(|p| format!("/{p}")).unwrap_or_default(),
                            m.machine
                        ),
                    ));
                }
                _ => {
                    return Err(FieldError::new(
                        port_at(".protocol"),
                        format!(
                            "port {} has rules for several protocols; name the protocol",
                            p.number
                        ),
                    ));
                }
            };
            let sources = if p.sources.is_empty() {
                let Some(addr) = caller else {
                    return Err(FieldError::new(
                        port_at(".allowedSourceAddressPrefix"),
                        "no source given and the caller's address is unknown",
                    ));
                };
                vec![SourcePrefix::address(addr)]
            } else {
                p.sources.clone()
            };
            for (k, s) in sources.iter().enumerate() {
                if !rule.allows_source(s) {
                    let target = if p.sources.len() > 1 {
                        port_at(&format!(".allowedSourceAddressPrefixes[{k}]"))
                    } else {
                        port_at(".allowedSourceAddressPrefix")
                    };
                    return Err(FieldError::new(
                        target,
                        format!(
                            "source {s} is not inside the allowed sources {}",
                            list(&rule.allowed_sources)
                        ),
                    ));
                }
            }
            let latest = now.saturating_add(rule.max_duration.get()).unwrap_or(now);
            let end = match p.end {
                WindowEnd::At(end) => {
                    if end <= now {
                        return Err(FieldError::new(
                            port_at(".endTimeUtc"),
                            format!("end time {end} is not in the future"),
                        ));
                    }
                    if end > latest {
                        return Err(FieldError::new(
                            port_at(".endTimeUtc"),
                            format!(
                                "end time {end} is later than the policy's maximum of {} from now ({latest})",
                                rule.max_duration
                            ),
                        ));
                    }
                    end
                }
                WindowEnd::After(d) => {
                    if d > rule.max_duration {
                        return Err(FieldError::new(
                            port_at(".duration"),
                            format!(
                                "duration {d} is longer than the policy's maximum of {}",
                                rule.max_duration
                            ),
                        ));
                    }
                    now.saturating_add(d.get()).unwrap_or(now)
                }
            };
            let port = PlannedPort {
                machine: m.machine.clone(),
                number: p.number,
                protocol: rule.protocol,
                sources,
                end,
            };
            if planned[first_of_machine..]
                .iter()
                .any(|o: &PlannedPort| o.number == port.number && o.protocol == port.protocol)
            {
                return Err(FieldError::new(
                    port_at(".number"),
                    format!("port {} is requested twice for {}", p.number, m.machine),
                ));
            }
            planned.push(port);
        }
    }
    Ok(planned)
}

fn list(prefixes: &[SourcePrefix]) -> String {
    prefixes
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether a requested port is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PortStatus {
    /// Open until its end time.
    Initiated,
    /// Closed; see the reason.
    Revoked,
}

/// Why a port has the status it has (the vendor's `statusReason`, plus `PolicyChanged`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StatusReason {
    /// Opened at the requester's wish, or closed early at someone's wish.
    UserRequested,
    /// The window ended.
    Expired,
    /// A newer request for the same machine, port and source replaced this one.
    NewerRequestInitiated,
    /// The policy was changed or deleted so that the port is no longer covered.
    PolicyChanged,
}

impl PortStatus {
    /// The wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            PortStatus::Initiated => "Initiated",
            PortStatus::Revoked => "Revoked",
        }
    }

    /// Parses the wire form.
    pub fn parse(s: &str) -> Option<Self> {
        [PortStatus::Initiated, PortStatus::Revoked]
            .into_iter()
            .find(|x| x.as_str() == s)
    }
}

impl StatusReason {
    /// The wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusReason::UserRequested => "UserRequested",
            StatusReason::Expired => "Expired",
            StatusReason::NewerRequestInitiated => "NewerRequestInitiated",
            StatusReason::PolicyChanged => "PolicyChanged",
        }
    }

    /// Parses the wire form.
    pub fn parse(s: &str) -> Option<Self> {
        [
            StatusReason::UserRequested,
            StatusReason::Expired,
            StatusReason::NewerRequestInitiated,
            StatusReason::PolicyChanged,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

impl fmt::Display for StatusReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The state of one requested port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortState {
    /// Open or closed.
    pub status: PortStatus,
    /// Why.
    pub reason: StatusReason,
}

/// A transition the lifecycle does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the port is already revoked ({0})")]
pub struct AlreadyRevoked(pub StatusReason);

impl PortState {
    /// A freshly opened port.
    pub const INITIATED: PortState = PortState {
        status: PortStatus::Initiated,
        reason: StatusReason::UserRequested,
    };

    /// Closes an open port. A revoked port stays revoked: it never reopens, and its first reason
    /// is kept.
    pub fn revoke(self, reason: StatusReason) -> Result<PortState, AlreadyRevoked> {
        match self.status {
            PortStatus::Initiated => Ok(PortState {
                status: PortStatus::Revoked,
                reason,
            }),
            PortStatus::Revoked => Err(AlreadyRevoked(self.reason)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::Os;
    use crate::policy::{MachineRules, PortRule};
    use jiff::SignedDuration;

    const VM: &str = "/subscriptions/s/resourceGroups/rg/machines/vm1";

    fn now() -> Timestamp {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    fn policy(sources: &[&str]) -> PolicyRules {
        let mut ssh = PortRule::default_for(Os::Linux);
        ssh.allowed_sources = sources
            .iter()
            .map(|s| SourcePrefix::parse(s).unwrap())
            .collect();
        let mut dns = ssh.clone();
        dns.number = Port::from(53);
        dns.protocol = Protocol::Udp;
        let mut dns_tcp = dns.clone();
        dns_tcp.protocol = Protocol::Tcp;
        PolicyRules {
            machines: vec![MachineRules {
                machine: ResourceId::parse(VM).unwrap(),
                ports: vec![ssh, dns, dns_tcp],
            }],
            cut_established: false,
            approval: Default::default(),
        }
    }

    fn ask(number: u16, sources: &[&str], end: WindowEnd) -> Vec<RequestedMachine> {
        vec![RequestedMachine {
            machine: ResourceId::parse(VM).unwrap(),
            ports: vec![RequestedPort {
                number: Port::from(number),
                protocol: None,
                sources: sources
                    .iter()
                    .map(|s| SourcePrefix::parse(s).unwrap())
                    .collect(),
                end,
            }],
        }]
    }

    fn in_hours(h: i64) -> WindowEnd {
        WindowEnd::At(now().saturating_add(SignedDuration::from_hours(h)).unwrap())
    }

    fn err_target(r: Result<Vec<PlannedPort>, FieldError>) -> String {
        r.err()
            .map(|e| e.target)
            .unwrap_or_else(|| "accepted".into())
    }

    #[test]
    fn an_address_inside_an_allowed_cidr_is_accepted() {
        let p = plan_initiate(
            &policy(&["10.0.0.0/24"]),
            &ask(22, &["10.0.0.7"], in_hours(1)),
            now(),
            None,
        )
        .unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].protocol, Protocol::Any);
        assert_eq!(
            p[0].end,
            now().saturating_add(SignedDuration::from_hours(1)).unwrap()
        );
    }

    #[test]
    fn sources_outside_are_refused() {
        let t = err_target(plan_initiate(
            &policy(&["10.0.0.0/24"]),
            &ask(22, &["10.0.1.7"], in_hours(1)),
            now(),
            None,
        ));
        assert_eq!(t, "virtualMachines[0].ports[0].allowedSourceAddressPrefix");
        let t = err_target(plan_initiate(
            &policy(&["10.0.0.0/24"]),
            &ask(22, &["*"], in_hours(1)),
            now(),
            None,
        ));
        assert_eq!(t, "virtualMachines[0].ports[0].allowedSourceAddressPrefix");
    }

    #[test]
    fn no_source_means_the_caller() {
        let caller: IpAddr = "10.0.0.9".parse().unwrap();
        let p = plan_initiate(
            &policy(&["10.0.0.0/24"]),
            &ask(22, &[], in_hours(1)),
            now(),
            Some(caller),
        )
        .unwrap();
        assert_eq!(p[0].sources, vec![SourcePrefix::address(caller)]);
        assert!(plan_initiate(&policy(&["*"]), &ask(22, &[], in_hours(1)), now(), None).is_err());
    }

    #[test]
    fn windows_must_end_in_the_future_within_the_maximum() {
        let pol = policy(&["*"]);
        assert_eq!(
            err_target(plan_initiate(
                &pol,
                &ask(22, &["*"], in_hours(3)),
                now(),
                None
            )),
            "accepted"
        );
        assert_eq!(
            err_target(plan_initiate(
                &pol,
                &ask(22, &["*"], in_hours(0)),
                now(),
                None
            )),
            "virtualMachines[0].ports[0].endTimeUtc"
        );
        assert_eq!(
            err_target(plan_initiate(
                &pol,
                &ask(22, &["*"], in_hours(-1)),
                now(),
                None
            )),
            "virtualMachines[0].ports[0].endTimeUtc"
        );
        assert_eq!(
            err_target(plan_initiate(
                &pol,
                &ask(22, &["*"], in_hours(4)),
                now(),
                None
            )),
            "virtualMachines[0].ports[0].endTimeUtc"
        );
        let four_hours = WindowEnd::After(AccessDuration::parse("PT4H").unwrap());
        assert_eq!(
            err_target(plan_initiate(
                &pol,
                &ask(22, &["*"], four_hours),
                now(),
                None
            )),
            "virtualMachines[0].ports[0].duration"
        );
    }

    #[test]
    fn unknown_ports_and_machines_are_refused() {
        let pol = policy(&["*"]);
        assert_eq!(
            err_target(plan_initiate(
                &pol,
                &ask(23, &["*"], in_hours(1)),
                now(),
                None
            )),
            "virtualMachines[0].ports[0].number"
        );
        assert_eq!(
            err_target(plan_initiate(
                &pol,
                &ask(53, &["*"], in_hours(1)),
                now(),
                None
            )),
            "virtualMachines[0].ports[0].protocol"
        );
        let mut other = ask(22, &["*"], in_hours(1));
        other[0].machine =
            ResourceId::parse("/subscriptions/s/resourceGroups/rg/machines/vm2").unwrap();
        let e = plan_initiate(&pol, &other, now(), None).unwrap_err();
        assert_eq!(
            (e.target.as_str(), e.problem),
            ("virtualMachines[0].id", crate::Problem::NotFound)
        );
        let mut twice = ask(22, &["*"], in_hours(1));
        let again = twice[0].ports[0].clone();
        twice[0].ports.push(again);
        assert_eq!(
            err_target(plan_initiate(&pol, &twice, now(), None)),
            "virtualMachines[0].ports[1].number"
        );
    }

    #[test]
    fn supersede_keys_ignore_source_order() {
        let m = ResourceId::parse(VM).unwrap();
        let a = SourcePrefix::parse("10.0.0.1").unwrap();
        let b = SourcePrefix::parse("10.0.0.2").unwrap();
        assert_eq!(
            supersede_key(&m, Port::from(22), Protocol::Any, &[a, b]),
            supersede_key(&m, Port::from(22), Protocol::Any, &[b, a])
        );
        assert_ne!(
            supersede_key(&m, Port::from(22), Protocol::Any, &[a]),
            supersede_key(&m, Port::from(22), Protocol::Tcp, &[a])
        );
    }

    #[test]
    fn revoked_ports_never_reopen() {
        let revoked = PortState::INITIATED.revoke(StatusReason::Expired).unwrap();
        assert_eq!(revoked.status, PortStatus::Revoked);
        assert_eq!(
            revoked.revoke(StatusReason::UserRequested),
            Err(AlreadyRevoked(StatusReason::Expired))
        );
    }
}
