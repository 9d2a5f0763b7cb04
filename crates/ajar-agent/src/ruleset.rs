//! From desired state to an nftables ruleset for ajar's table, and its text form.
//!
//! Host mode filters the machine's input: packets to a protected `address . protocol . port`
//! are rejected unless `source . address . protocol . port` is in an allow set. Gateway mode
//! maps `gateway:mappedPort` to `machine:port` for granted sources (DNAT) and rejects forwarded
//! traffic to protected ports that was not mapped.
//!
//! nftables refuses two overlapping intervals in one set, so elements are spread over as many
//! sets ("layers") as overlaps require; identical elements are merged keeping the later end.

use ajar_api::wire::DesiredState;
use ajar_core::agent::AgentMode;
use ajar_core::net::{Protocol, SourcePrefix};
use ipnet::IpNet;
use std::fmt::Write;
use std::net::IpAddr;
use std::time::Duration;

/// The name of ajar's table; nothing else is ever touched.
pub const TABLE: &str = "ajar";

/// A transport protocol as nftables names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum L4 {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl L4 {
    fn name(self) -> &'static str {
        match self {
            L4::Tcp => "tcp",
            L4::Udp => "udp",
        }
    }

    /// The transports a rule's protocol covers.
    pub fn of(p: Protocol) -> &'static [L4] {
        match p {
            Protocol::Tcp => &[L4::Tcp],
            Protocol::Udp => &[L4::Udp],
            Protocol::Any => &[L4::Tcp, L4::Udp],
        }
    }
}

/// A protected destination: closed unless allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Protected {
    /// Machine address.
    pub dest: IpAddr,
    /// Transport.
    pub l4: L4,
    /// Port.
    pub port: u16,
}

/// Host mode: traffic from `source` to `dest:port` is allowed for `timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allow {
    /// Allowed sources.
    pub source: IpNet,
    /// Machine address.
    pub dest: IpAddr,
    /// Transport.
    pub l4: L4,
    /// Port.
    pub port: u16,
    /// Time left.
    pub timeout: Duration,
}

/// Gateway mode: traffic from `source` to the gateway's `mapped_port` goes to
/// `target:target_port` for `timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dnat {
    /// Allowed sources.
    pub source: IpNet,
    /// Transport.
    pub l4: L4,
    /// Port on the gateway.
    pub mapped_port: u16,
    /// Machine address.
    pub target: IpAddr,
    /// Machine port.
    pub target_port: u16,
    /// Time left.
    pub timeout: Duration,
}

/// Everything ajar's table holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruleset {
    /// Host or gateway.
    pub mode: AgentMode,
    /// Protected destinations.
    pub protected: Vec<Protected>,
    /// Host-mode grants.
    pub allow: Vec<Allow>,
    /// Gateway-mode grants.
    pub dnat: Vec<Dnat>,
}

/// Timeouts shorter than this are not worth an element: the grant is as good as over.
const MIN_TIMEOUT: Duration = Duration::from_millis(10);

fn source_net(s: &SourcePrefix, family_v4: bool) -> Option<IpNet> {
    match s {
        SourcePrefix::Any if family_v4 => "0.0.0.0/0".parse().ok(),
        SourcePrefix::Any => "::/0".parse().ok(),
        SourcePrefix::Net(n) if n.addr().is_ipv4() == family_v4 => Some(*n),
        SourcePrefix::Net(_) => None,
    }
}

impl Ruleset {
    /// The ruleset for a desired state read `elapsed` ago: each grant's timeout is its end minus
    /// the server's clock at reading, minus `elapsed`.
    pub fn from_desired(state: &DesiredState, elapsed: Duration) -> Ruleset {
        let mut rs = Ruleset {
            mode: state.mode,
            protected: Vec::new(),
            allow: Vec::new(),
            dnat: Vec::new(),
        };
        for m in &state.machines {
            for p in &m.protected_ports {
                for addr in &m.addresses {
                    for &l4 in L4::of(p.protocol) {
                        rs.protected.push(Protected {
                            dest: *addr,
                            l4,
                            port: p.number.get(),
                        });
                    }
                }
            }
            for g in &m.grants {
                let left = Duration::try_from(g.end_time_utc.duration_since(state.server_time))
                    .unwrap_or(Duration::ZERO)
                    .saturating_sub(elapsed);
                if left < MIN_TIMEOUT {
                    continue;
                }
                for s in &g.sources {
                    for &l4 in L4::of(g.protocol) {
                        match state.mode {
                            AgentMode::Host => {
                                for addr in &m.addresses {
                                    if let Some(source) = source_net(s, addr.is_ipv4()) {
                                        rs.allow.push(Allow {
                                            source,
                                            dest: *addr,
                                            l4,
                                            port: g.number.get(),
                                            timeout: left,
                                        });
                                    }
                                }
                            }
                            AgentMode::Gateway => {
                                let Some(mapped) = g.mapped_port else {
                                    continue;
                                };
                                for v4 in [true, false] {
                                    let (Some(source), Some(target)) = (
                                        source_net(s, v4),
                                        m.addresses.iter().find(|a| a.is_ipv4() == v4),
                                    ) else {
                                        continue;
                                    };
                                    rs.dnat.push(Dnat {
                                        source,
                                        l4,
                                        mapped_port: mapped,
                                        target: *target,
                                        target_port: g.number.get(),
                                        timeout: left,
                                    });
                                }
                            }
                        }
                    }
                }
            }
        }
        rs.protected.sort();
        rs.protected.dedup();
        rs
    }

    /// Host-mode grants of one family, merged and spread over non-overlapping layers.
    fn allow_layers(&self, v4: bool) -> Vec<Vec<Allow>> {
        let allow = self
            .allow
            .iter()
            .filter(|a| a.dest.is_ipv4() == v4)
            .collect();
        layer(
            merge(
                allow,
                |a| (a.source, a.dest, a.l4, a.port),
                |a| a.timeout,
                |a, t| a.timeout = t,
            ),
            |a, b| {
                a.dest == b.dest
                    && a.l4 == b.l4
                    && a.port == b.port
                    && nets_overlap(&a.source, &b.source)
            },
        )
    }

    /// Gateway-mode grants of one family, merged and spread over non-overlapping layers.
    fn dnat_layers(&self, v4: bool) -> Vec<Vec<Dnat>> {
        let dnat = self
            .dnat
            .iter()
            .filter(|d| d.source.addr().is_ipv4() == v4)
            .collect();
        layer(
            merge(
                dnat,
                |d| (d.source, d.l4, d.mapped_port, d.target, d.target_port),
                |d| d.timeout,
                |d, t| d.timeout = t,
            ),
            |a, b| {
                a.l4 == b.l4 && a.mapped_port == b.mapped_port && nets_overlap(&a.source, &b.source)
            },
        )
    }

    /// The nftables script that replaces ajar's table with this ruleset in one transaction.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "add table inet {TABLE}\ndelete table inet {TABLE}\ntable inet {TABLE} {{"
        );
        // Layers per family ("4", "6"); at least one each, so the rules always have a set.
        let mut layers = [0usize; 2];
        for (slot, v4) in [(0, true), (1, false)] {
            let (fam, addr) = if v4 {
                ("4", "ipv4_addr")
            } else {
                ("6", "ipv6_addr")
            };
            let protected: Vec<String> = self
                .protected
                .iter()
                .filter(|p| p.dest.is_ipv4() == v4)
                .map(|p| format!("{} . {} . {}", p.dest, p.l4.name(), p.port))
                .collect();
            set(
                &mut out,
                &format!("protected{fam}"),
                &format!("{addr} . inet_proto . inet_service"),
                "",
                &protected,
            );
            let elements: Vec<Vec<String>> = match self.mode {
                AgentMode::Host => self
                    .allow_layers(v4)
                    .iter()
                    .map(|l| {
                        l.iter()
                            .map(|a| {
                                format!(
                                    "{} . {} . {} . {} timeout {}ms",
                                    a.source,
                                    a.dest,
                                    a.l4.name(),
                                    a.port,
                                    a.timeout.as_millis()
                                )
                            })
                            .collect()
                    })
                    .collect(),
                AgentMode::Gateway => self
                    .dnat_layers(v4)
                    .iter()
                    .map(|l| {
                        l.iter()
                            .map(|d| {
                                format!(
                                    "{} . {} . {} timeout {}ms : {} . {}",
                                    d.source,
                                    d.l4.name(),
                                    d.mapped_port,
                                    d.timeout.as_millis(),
                                    d.target,
                                    d.target_port
                                )
                            })
                            .collect()
                    })
                    .collect(),
            };
            layers[slot] = elements.len().max(1);
            for i in 0..layers[slot] {
                let elems = elements.get(i).map(Vec::as_slice).unwrap_or_default();
                match self.mode {
                    AgentMode::Host => set(
                        &mut out,
                        &format!("allow{fam}_{i}"),
                        &format!("{addr} . {addr} . inet_proto . inet_service"),
                        "interval,timeout",
                        elems,
                    ),
                    AgentMode::Gateway => map(
                        &mut out,
                        &format!("dnat{fam}_{i}"),
                        &format!("{addr} . inet_proto . inet_service : {addr} . inet_service"),
                        elems,
                    ),
                }
            }
        }
        let families = [("4", "ip", layers[0]), ("6", "ip6", layers[1])];
        match self.mode {
            AgentMode::Host => {
                out.push_str("  chain input {\n    type filter hook input priority filter - 10; policy accept;\n    ct state established,related accept\n");
                for (fam, ip, n) in families {
                    for i in 0..n {
                        let _ = writeln!(
                            out,
                            "    {ip} saddr . {ip} daddr . meta l4proto . th dport @allow{fam}_{i} accept"
                        );
                    }
                }
                reject_protected(&mut out);
                out.push_str("  }\n");
            }
            AgentMode::Gateway => {
                out.push_str("  chain prerouting {\n    type nat hook prerouting priority dstnat - 10; policy accept;\n");
                for (fam, ip, n) in families {
                    for i in 0..n {
                        let _ = writeln!(
                            out,
                            "    meta l4proto {{ tcp, udp }} dnat {ip} to {ip} saddr . meta l4proto . th dport map @dnat{fam}_{i}"
                        );
                    }
                }
                out.push_str("  }\n  chain forward {\n    type filter hook forward priority filter - 10; policy accept;\n    ct state established,related accept\n    ct status dnat accept\n");
                reject_protected(&mut out);
                out.push_str("  }\n");
            }
        }
        out.push_str("}\n");
        out
    }
}

fn reject_protected(out: &mut String) {
    for (fam, ip) in [("4", "ip"), ("6", "ip6")] {
        let _ = writeln!(
            out,
            "    meta l4proto tcp {ip} daddr . meta l4proto . th dport @protected{fam} reject with tcp reset"
        );
        let _ = writeln!(
            out,
            "    {ip} daddr . meta l4proto . th dport @protected{fam} reject"
        );
    }
}

fn set(out: &mut String, name: &str, ty: &str, flags: &str, elems: &[String]) {
    let _ = write!(out, "  set {name} {{\n    type {ty}\n");
    if !flags.is_empty() {
        let _ = writeln!(out, "    flags {flags}");
    }
    if !elems.is_empty() {
        let _ = writeln!(out, "    elements = {{ {} }}", elems.join(", "));
    }
    out.push_str("  }\n");
}

fn map(out: &mut String, name: &str, ty: &str, elems: &[String]) {
    let _ = write!(
        out,
        "  map {name} {{\n    type {ty}\n    flags interval,timeout\n"
    );
    if !elems.is_empty() {
        let _ = writeln!(out, "    elements = {{ {} }}", elems.join(", "));
    }
    out.push_str("  }\n");
}

/// The script that removes ajar's table (and only it), whether or not it exists.
pub fn uninstall_script() -> String {
    format!("add table inet {TABLE}\ndelete table inet {TABLE}\n")
}

fn nets_overlap(a: &IpNet, b: &IpNet) -> bool {
    a.contains(b) || b.contains(a)
}

/// Merges elements with equal keys, keeping the longest timeout; sorted for stable output.
fn merge<T: Copy, K: Ord>(
    items: Vec<&T>,
    key: impl Fn(&T) -> K,
    timeout: impl Fn(&T) -> Duration,
    set_timeout: impl Fn(&mut T, Duration),
) -> Vec<T> {
    let mut out: Vec<T> = items.into_iter().copied().collect();
    out.sort_by_key(&key);
    let mut merged: Vec<T> = Vec::with_capacity(out.len());
    for item in out {
        match merged.last_mut() {
            Some(last) if key(last) == key(&item) => {
                let t = timeout(last).max(timeout(&item));
                set_timeout(last, t);
            }
            _ => merged.push(item),
        }
    }
    merged
}

/// Spreads elements over layers so that no two in one layer overlap.
fn layer<T>(items: Vec<T>, overlaps: impl Fn(&T, &T) -> bool) -> Vec<Vec<T>> {
    let mut layers: Vec<Vec<T>> = Vec::new();
    for item in items {
        match layers
            .iter_mut()
            .find(|l| !l.iter().any(|o| overlaps(o, &item)))
        {
            Some(l) => l.push(item),
            None => layers.push(vec![item]),
        }
    }
    layers
}

#[cfg(test)]
mod tests {
    use super::*;
    use ajar_api::wire::{DesiredGrant, DesiredMachine, ProtectedPort};
    use ajar_core::net::Port;
    use jiff::Timestamp;

    fn now() -> Timestamp {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    fn grant(
        id: &str,
        sources: &[&str],
        protocol: Protocol,
        secs: i64,
        mapped: Option<u16>,
    ) -> DesiredGrant {
        DesiredGrant {
            request_id: id.into(),
            seq: 0,
            number: Port::from(22),
            protocol,
            sources: sources
                .iter()
                .map(|s| SourcePrefix::parse(s).unwrap())
                .collect(),
            end_time_utc: now()
                .checked_add(jiff::SignedDuration::from_secs(secs))
                .unwrap(),
            mapped_port: mapped,
            cut_established: false,
        }
    }

    pub(crate) fn desired(mode: AgentMode, grants: Vec<DesiredGrant>) -> DesiredState {
        DesiredState {
            revision: 7,
            server_time: now(),
            mode,
            public_address: (mode == AgentMode::Gateway).then(|| "192.0.2.1".parse().unwrap()),
            machines: vec![DesiredMachine {
                id: "/subscriptions/s/resourceGroups/rg/machines/vm".into(),
                addresses: vec!["10.1.0.4".parse().unwrap(), "fd00::4".parse().unwrap()],
                protected_ports: vec![
                    ProtectedPort {
                        number: Port::from(22),
                        protocol: Protocol::Any,
                    },
                    ProtectedPort {
                        number: Port::from(3389),
                        protocol: Protocol::Tcp,
                    },
                ],
                grants,
            }],
        }
    }

    #[test]
    fn host_mode_renders_protected_ports_and_layered_grants() {
        let state = desired(
            AgentMode::Host,
            vec![
                grant("a", &["198.51.100.0/24"], Protocol::Tcp, 3600, None),
                grant(
                    "b",
                    &["198.51.100.7", "2001:db8::/32"],
                    Protocol::Tcp,
                    60,
                    None,
                ),
                grant("c", &["198.51.100.0/24"], Protocol::Tcp, 7200, None),
                grant("gone", &["203.0.113.1"], Protocol::Tcp, 0, None),
            ],
        );
        let script = Ruleset::from_desired(&state, Duration::from_millis(500)).render();
        let expected = "\
add table inet ajar
delete table inet ajar
table inet ajar {
  set protected4 {
    type ipv4_addr . inet_proto . inet_service
    elements = { 10.1.0.4 . tcp . 22, 10.1.0.4 . tcp . 3389, 10.1.0.4 . udp . 22 }
  }
  set allow4_0 {
    type ipv4_addr . ipv4_addr . inet_proto . inet_service
    flags interval,timeout
    elements = { 198.51.100.0/24 . 10.1.0.4 . tcp . 22 timeout 7199500ms }
  }
  set allow4_1 {
    type ipv4_addr . ipv4_addr . inet_proto . inet_service
    flags interval,timeout
    elements = { 198.51.100.7/32 . 10.1.0.4 . tcp . 22 timeout 59500ms }
  }
  set protected6 {
    type ipv6_addr . inet_proto . inet_service
    elements = { fd00::4 . tcp . 22, fd00::4 . tcp . 3389, fd00::4 . udp . 22 }
  }
  set allow6_0 {
    type ipv6_addr . ipv6_addr . inet_proto . inet_service
    flags interval,timeout
    elements = { 2001:db8::/32 . fd00::4 . tcp . 22 timeout 59500ms }
  }
  chain input {
    type filter hook input priority filter - 10; policy accept;
    ct state established,related accept
    ip saddr . ip daddr . meta l4proto . th dport @allow4_0 accept
    ip saddr . ip daddr . meta l4proto . th dport @allow4_1 accept
    ip6 saddr . ip6 daddr . meta l4proto . th dport @allow6_0 accept
    meta l4proto tcp ip daddr . meta l4proto . th dport @protected4 reject with tcp reset
    ip daddr . meta l4proto . th dport @protected4 reject
    meta l4proto tcp ip6 daddr . meta l4proto . th dport @protected6 reject with tcp reset
    ip6 daddr . meta l4proto . th dport @protected6 reject
  }
}
";
        assert_eq!(script, expected, "\n{script}");
    }

    #[test]
    fn gateway_mode_maps_ports_and_guards_forwarding() {
        let state = desired(
            AgentMode::Gateway,
            vec![
                grant("a", &["*"], Protocol::Any, 60, Some(40001)),
                grant("unmapped", &["*"], Protocol::Tcp, 60, None),
            ],
        );
        let script = Ruleset::from_desired(&state, Duration::ZERO).render();
        for line in [
            "elements = { 0.0.0.0/0 . tcp . 40001 timeout 60000ms : 10.1.0.4 . 22, 0.0.0.0/0 . udp . 40001 timeout 60000ms : 10.1.0.4 . 22 }",
            "elements = { ::/0 . tcp . 40001 timeout 60000ms : fd00::4 . 22, ::/0 . udp . 40001 timeout 60000ms : fd00::4 . 22 }",
            "meta l4proto { tcp, udp } dnat ip to ip saddr . meta l4proto . th dport map @dnat4_0",
            "type filter hook forward priority filter - 10; policy accept;",
            "ct status dnat accept",
        ] {
            assert!(script.contains(line), "missing {line:?} in\n{script}");
        }
        assert!(
            !script.contains("chain input"),
            "a gateway does not filter its own input"
        );
    }

    #[test]
    fn empty_state_still_closes_protected_ports() {
        let state = desired(AgentMode::Host, vec![]);
        let script = Ruleset::from_desired(&state, Duration::ZERO).render();
        assert!(script.contains("set allow4_0 {\n    type ipv4_addr . ipv4_addr . inet_proto . inet_service\n    flags interval,timeout\n  }"));
        assert!(script.contains("@protected4 reject with tcp reset"));
        assert_eq!(
            uninstall_script(),
            "add table inet ajar\ndelete table inet ajar\n"
        );
    }
}
