//! Enforcement agents: how they guard machines, the gateway's mapped-port range, and when an
//! agent counts as live.

use crate::FieldError;
use crate::net::SourcePrefix;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;

/// How an agent enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum AgentMode {
    /// On the protected machine itself: filters its input.
    Host,
    /// On a gateway in front of the machines: maps `gateway:mappedPort` to `machine:port`.
    Gateway,
    /// Beside the machines, in their cloud account: programs AWS EC2 security groups that
    /// ajar owns, one per instance.
    Aws,
}

impl AgentMode {
    /// Parses `host`, `gateway` or `aws`.
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        match s {
            "host" => Ok(AgentMode::Host),
            "gateway" => Ok(AgentMode::Gateway),
            "aws" => Ok(AgentMode::Aws),
            _ => Err(FieldError::new(
                "",
                format!("mode {s:?} is not one of host, gateway, aws"),
            )),
        }
    }

    /// The wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentMode::Host => "host",
            AgentMode::Gateway => "gateway",
            AgentMode::Aws => "aws",
        }
    }
}

impl TryFrom<String> for AgentMode {
    type Error = FieldError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<AgentMode> for String {
    fn from(m: AgentMode) -> String {
        m.as_str().to_owned()
    }
}

/// The ports a gateway hands out as mapped ports, `low-high` inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PortRange {
    /// First port.
    pub low: u16,
    /// Last port.
    pub high: u16,
}

impl PortRange {
    /// Parses `40000-40999` (1 ≤ low ≤ high ≤ 65535).
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        let bad = || {
            FieldError::new(
                "",
                format!("port range {s:?} is not LOW-HIGH with 1 <= LOW <= HIGH <= 65535"),
            )
        };
        let (lo, hi) = s.split_once('-').ok_or_else(bad)?;
        let low: u16 = lo.trim().parse().map_err(|_| bad())?;
        let high: u16 = hi.trim().parse().map_err(|_| bad())?;
        if low == 0 || low > high {
            return Err(bad());
        }
        Ok(Self { low, high })
    }

    /// Whether two ranges share a port.
    pub fn overlaps(&self, other: &PortRange) -> bool {
        self.low <= other.high && other.low <= self.high
    }

    /// The lowest port of the range not in `used`.
    pub fn allocate(&self, used: &BTreeSet<u16>) -> Option<u16> {
        (self.low..=self.high).find(|p| !used.contains(p))
    }
}

impl TryFrom<String> for PortRange {
    type Error = FieldError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<PortRange> for String {
    fn from(r: PortRange) -> String {
        r.to_string()
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.low, self.high)
    }
}

/// An agent not heard from for this long no longer counts as an enforcement point.
pub const LIVE_WINDOW: SignedDuration = SignedDuration::from_secs(60);

/// Whether an agent last seen at `last_seen` is live at `now`.
pub fn is_live(last_seen: Option<Timestamp>, now: Timestamp) -> bool {
    last_seen.is_some_and(|seen| now.duration_since(seen) <= LIVE_WINDOW)
}

/// Checks the addresses a guarded machine would have against its agent, since they decide what
/// the agent protects and exposes: each must lie inside one of the agent's `prefixes` (when it
/// was registered with any), and none may belong to another machine the agent guards (`others`:
/// each other machine's id and addresses), or a gateway could be pointed at that machine.
/// IPv4-mapped IPv6 addresses count as the IPv4 address they carry. Targets are
/// `properties.addresses[i]`.
pub fn check_guarded_addresses(
    addresses: &[IpAddr],
    prefixes: Option<&[SourcePrefix]>,
    others: &[(String, Vec<IpAddr>)],
) -> Result<(), FieldError> {
    for (i, addr) in addresses.iter().enumerate() {
        let target = format!("properties.addresses[{i}]");
        let one = SourcePrefix::address(*addr);
        if let Some(prefixes) = prefixes
            && !prefixes.iter().any(|p| p.contains(&one))
        {
            let list: Vec<String> = prefixes.iter().map(ToString::to_string).collect();
            return Err(FieldError::new(
                target,
                format!(
                    "{addr} is outside the networks the machine's agent may reach ({})",
                    list.join(", ")
                ),
            ));
        }
        if let Some((other, _)) = others
            .iter()
            .find(|(_, a)| a.iter().any(|a| SourcePrefix::address(*a) == one))
        {
            return Err(FieldError::conflict(
                target,
                format!("{addr} is the address of {other}, guarded by the same agent"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_and_allocate_the_lowest_free_port() {
        let r = PortRange::parse("40000-40002").unwrap();
        assert_eq!(r.to_string(), "40000-40002");
        let mut used = BTreeSet::new();
        assert_eq!(r.allocate(&used), Some(40000));
        used.insert(40000);
        used.insert(40002);
        assert_eq!(r.allocate(&used), Some(40001));
        used.insert(40001);
        assert_eq!(r.allocate(&used), None);
        for bad in ["", "1", "0-10", "10-5", "1-70000", "a-b"] {
            assert!(PortRange::parse(bad).is_err(), "{bad}");
        }
        assert!(r.overlaps(&PortRange::parse("40002-40010").unwrap()));
        assert!(!r.overlaps(&PortRange::parse("40003-40010").unwrap()));
    }

    #[test]
    fn liveness_has_a_window() {
        let t0 = Timestamp::from_second(1_000).unwrap();
        assert!(!is_live(None, t0));
        assert!(is_live(Some(t0), t0.checked_add(LIVE_WINDOW).unwrap()));
        assert!(!is_live(
            Some(t0),
            t0.checked_add(LIVE_WINDOW + SignedDuration::from_secs(1))
                .unwrap()
        ));
        assert_eq!(AgentMode::parse("gateway"), Ok(AgentMode::Gateway));
        assert!(AgentMode::parse("router").is_err());
    }

    #[test]
    fn guarded_addresses_stay_inside_the_agents_networks_and_apart() {
        let a = |s: &str| s.parse::<IpAddr>().unwrap();
        let p = |s: &str| SourcePrefix::parse(s).unwrap();
        let prefixes = [p("10.99.0.0/24"), p("2001:db8::/64")];
        let others = vec![("db".to_owned(), vec![a("10.99.0.20")])];
        assert!(check_guarded_addresses(&[a("10.99.0.10")], Some(&prefixes), &others).is_ok());
        assert!(check_guarded_addresses(&[a("2001:db8::5")], Some(&prefixes), &others).is_ok());
        let outside = check_guarded_addresses(&[a("10.98.0.1")], Some(&prefixes), &others);
        assert_eq!(outside.unwrap_err().target, "properties.addresses[0]");
        let taken =
            check_guarded_addresses(&[a("10.99.0.9"), a("10.99.0.20")], None, &others).unwrap_err();
        assert_eq!(taken.target, "properties.addresses[1]");
        assert!(taken.message.contains("db"));
        // The IPv4-mapped form of another machine's address is that address.
        assert!(check_guarded_addresses(&[a("::ffff:10.99.0.20")], None, &others).is_err());
        assert!(check_guarded_addresses(&[a("10.98.0.1")], None, &others).is_ok());
    }
}
