//! Ports, protocols and source address prefixes.

use crate::FieldError;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;

/// A TCP or UDP port number, 0 to 65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "u16")]
pub struct Port(u16);

impl Port {
    /// The port number.
    pub fn get(self) -> u16 {
        self.0
    }
}

impl TryFrom<i64> for Port {
    type Error = FieldError;
    fn try_from(n: i64) -> Result<Self, Self::Error> {
        u16::try_from(n)
            .map(Port)
            .map_err(|_| FieldError::new("", format!("port {n} is out of range (0 to 65535)")))
    }
}

impl From<u16> for Port {
    fn from(n: u16) -> Self {
        Port(n)
    }
}

impl From<Port> for u16 {
    fn from(p: Port) -> u16 {
        p.0
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Which transport a port rule covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Protocol {
    /// TCP only.
    Tcp,
    /// UDP only.
    Udp,
    /// Both TCP and UDP (`*`).
    Any,
}

impl Protocol {
    /// Parses `TCP`, `UDP` or `*` (case-insensitive).
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        match s.to_ascii_uppercase().as_str() {
            "TCP" => Ok(Protocol::Tcp),
            "UDP" => Ok(Protocol::Udp),
            "*" => Ok(Protocol::Any),
            _ => Err(FieldError::new(
                "",
                format!("protocol {s:?} is not one of TCP, UDP, *"),
            )),
        }
    }

    /// The wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Any => "*",
        }
    }

    /// Whether two rules on the same port number cover a common transport.
    pub fn overlaps(self, other: Protocol) -> bool {
        self == other || self == Protocol::Any || other == Protocol::Any
    }
}

impl TryFrom<String> for Protocol {
    type Error = FieldError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Protocol> for String {
    fn from(p: Protocol) -> String {
        p.as_str().to_owned()
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where traffic may come from: any address (`*`), or one IPv4/IPv6 network (a single address
/// is a /32 or /128 network).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum SourcePrefix {
    /// Any source address.
    Any,
    /// Addresses inside this network.
    Net(IpNet),
}

impl SourcePrefix {
    /// Parses `*`, an address (`203.0.113.7`, `2001:db8::1`) or a CIDR (`10.0.0.0/8`). A CIDR with
    /// host bits set (`10.0.0.5/24`) is refused rather than silently widened or narrowed.
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        let s = s.trim();
        if s == "*" {
            return Ok(SourcePrefix::Any);
        }
        if let Ok(addr) = s.parse::<IpAddr>() {
            return Ok(Self::address(addr));
        }
        match s.parse::<IpNet>() {
            Ok(net) if net.trunc() == net => Ok(SourcePrefix::Net(net)),
            Ok(net) => Err(FieldError::new(
                "",
                format!(
                    "source prefix {s:?} has host bits set; did you mean {}?",
                    net.trunc()
                ),
            )),
            Err(_) => Err(FieldError::new(
                "",
                format!("source {s:?} is not '*', an IP address or a CIDR prefix"),
            )),
        }
    }

    /// The prefix holding exactly one address. IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`)
    /// count as the IPv4 address they carry.
    pub fn address(addr: IpAddr) -> Self {
        let addr = match addr {
            IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map(IpAddr::V4)
                .unwrap_or(IpAddr::V6(v6)),
            v4 => v4,
        };
        SourcePrefix::Net(IpNet::from(addr))
    }

    /// Whether every address of `inner` lies inside this prefix.
    pub fn contains(&self, inner: &SourcePrefix) -> bool {
        match (self, inner) {
            (SourcePrefix::Any, _) => true,
            (SourcePrefix::Net(_), SourcePrefix::Any) => false,
            (SourcePrefix::Net(outer), SourcePrefix::Net(inner)) => outer.contains(inner),
        }
    }
}

impl TryFrom<String> for SourcePrefix {
    type Error = FieldError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<SourcePrefix> for String {
    fn from(p: SourcePrefix) -> String {
        p.to_string()
    }
}

impl fmt::Display for SourcePrefix {
    /// Single addresses print without a prefix length (`203.0.113.7`), networks with one.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourcePrefix::Any => f.write_str("*"),
            SourcePrefix::Net(n) if n.prefix_len() == n.max_prefix_len() => n.addr().fmt(f),
            SourcePrefix::Net(n) => n.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> SourcePrefix {
        SourcePrefix::parse(s).unwrap_or(SourcePrefix::Any)
    }

    #[test]
    fn ports_are_bounded() {
        assert_eq!(Port::try_from(0_i64).map(Port::get), Ok(0));
        assert_eq!(Port::try_from(65_535_i64).map(Port::get), Ok(65_535));
        assert!(Port::try_from(65_536_i64).is_err());
        assert!(Port::try_from(-1_i64).is_err());
    }

    #[test]
    fn protocols_parse() {
        assert_eq!(Protocol::parse("tcp"), Ok(Protocol::Tcp));
        assert_eq!(Protocol::parse("UDP"), Ok(Protocol::Udp));
        assert_eq!(Protocol::parse("*"), Ok(Protocol::Any));
        assert!(Protocol::parse("icmp").is_err());
        assert!(Protocol::Any.overlaps(Protocol::Tcp));
        assert!(!Protocol::Udp.overlaps(Protocol::Tcp));
    }

    #[test]
    fn prefixes_parse_and_print() {
        for s in [
            "*",
            "203.0.113.7",
            "10.0.0.0/8",
            "2001:db8::1",
            "2001:db8::/32",
        ] {
            assert_eq!(
                SourcePrefix::parse(s).map(|x| x.to_string()),
                Ok(s.to_owned())
            );
        }
        assert_eq!(p("203.0.113.7/32").to_string(), "203.0.113.7");
        assert_eq!(p("::ffff:192.0.2.1").to_string(), "192.0.2.1");
        for s in [
            "",
            "any",
            "10.0.0.5/24",
            "10.0.0.0/33",
            "300.1.1.1",
            "10.0.0.0/8/1",
        ] {
            assert!(SourcePrefix::parse(s).is_err(), "{s:?} should be refused");
        }
    }

    #[test]
    fn containment_is_by_cidr() {
        assert!(p("10.0.0.0/24").contains(&p("10.0.0.5")));
        assert!(!p("10.0.0.0/24").contains(&p("10.0.1.5")));
        assert!(p("10.0.0.0/8").contains(&p("10.1.0.0/16")));
        assert!(!p("10.1.0.0/16").contains(&p("10.0.0.0/8")));
        assert!(p("*").contains(&p("2001:db8::1")));
        assert!(!p("10.0.0.0/8").contains(&p("*")));
        assert!(!p("10.0.0.0/8").contains(&p("2001:db8::1")));
        assert!(p("2001:db8::/32").contains(&p("2001:db8::1")));
    }
}
