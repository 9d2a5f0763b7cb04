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
use std::collections::HashMap;
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

impl Allow {
    /// What elements must share to overlap: the destination, transport and port.
    fn group(&self) -> (IpAddr, L4, u16) {
        (self.dest, self.l4, self.port)
    }
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

impl Dnat {
    /// What elements must share to overlap: the transport and mapped port.
    fn group(&self) -> (L4, u16) {
        (self.l4, self.mapped_port)
    }
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
                            AgentMode::Host | AgentMode::Aws => {
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
            Allow::group,
            |a| a.source,
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
            Dnat::group,
            |d| d.source,
        )
    }

    /// The sets and maps of ajar's table, in order: per family the protected set, then the
    /// grant layers (at least one, so the rules always have a set to refer to).
    pub fn sets(&self) -> Vec<SetSpec> {
        let mut out = Vec::new();
        for v4 in [true, false] {
            let (fam, addr) = if v4 {
                ("4", "ipv4_addr")
            } else {
                ("6", "ipv6_addr")
            };
            out.push(SetSpec {
                name: format!("protected{fam}"),
                is_map: false,
                ty: format!("{addr} . inet_proto . inet_service"),
                flags: "",
                elements: self
                    .protected
                    .iter()
                    .filter(|p| p.dest.is_ipv4() == v4)
                    .map(|p| Element::plain(format!("{} . {} . {}", p.dest, p.l4.name(), p.port)))
                    .collect(),
            });
            let layers: Vec<Vec<Element>> = match self.mode {
                AgentMode::Host | AgentMode::Aws => self
                    .allow_layers(v4)
                    .iter()
                    .map(|l| {
                        l.iter()
                            .map(|a| Element {
                                key: format!(
                                    "{} . {} . {} . {}",
                                    a.source,
                                    a.dest,
                                    a.l4.name(),
                                    a.port
                                ),
                                target: None,
                                timeout: Some(a.timeout),
                            })
                            .collect()
                    })
                    .collect(),
                AgentMode::Gateway => self
                    .dnat_layers(v4)
                    .iter()
                    .map(|l| {
                        l.iter()
                            .map(|d| Element {
                                key: format!("{} . {} . {}", d.source, d.l4.name(), d.mapped_port),
                                target: Some(format!("{} . {}", d.target, d.target_port)),
                                timeout: Some(d.timeout),
                            })
                            .collect()
                    })
                    .collect(),
            };
            let count = layers.len().max(1);
            let mut layers = layers.into_iter();
            for i in 0..count {
                let elements = layers.next().unwrap_or_default();
                out.push(match self.mode {
                    AgentMode::Host | AgentMode::Aws => SetSpec {
                        name: format!("allow{fam}_{i}"),
                        is_map: false,
                        ty: format!("{addr} . {addr} . inet_proto . inet_service"),
                        flags: "interval,timeout",
                        elements,
                    },
                    AgentMode::Gateway => SetSpec {
                        name: format!("dnat{fam}_{i}"),
                        is_map: true,
                        ty: format!("{addr} . inet_proto . inet_service : {addr} . inet_service"),
                        flags: "interval,timeout",
                        elements,
                    },
                });
            }
        }
        out
    }

    /// The nftables script that replaces ajar's table with this ruleset in one transaction.
    pub fn render(&self) -> String {
        let sets = self.sets();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "add table inet {TABLE}\ndelete table inet {TABLE}\ntable inet {TABLE} {{"
        );
        for s in &sets {
            let _ = write!(
                out,
                "  {} {} {{\n    type {}\n",
                if s.is_map { "map" } else { "set" },
                s.name,
                s.ty
            );
            if !s.flags.is_empty() {
                let _ = writeln!(out, "    flags {}", s.flags);
            }
            if !s.elements.is_empty() {
                let elems: Vec<String> = s.elements.iter().map(Element::text).collect();
                let _ = writeln!(out, "    elements = {{ {} }}", elems.join(", "));
            }
            out.push_str("  }\n");
        }
        let layers = |prefix: &str| sets.iter().filter(|s| s.name.starts_with(prefix)).count();
        match self.mode {
            AgentMode::Host | AgentMode::Aws => {
                out.push_str("  chain input {\n    type filter hook input priority filter - 10; policy accept;\n    ct state established,related accept\n");
                for (fam, ip) in [("4", "ip"), ("6", "ip6")] {
                    for i in 0..layers(&format!("allow{fam}_")) {
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
                for (fam, ip) in [("4", "ip"), ("6", "ip6")] {
                    for i in 0..layers(&format!("dnat{fam}_")) {
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

/// One element of a set or map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    /// What nftables matches on (and deletes by).
    pub key: String,
    /// For maps: what the key maps to.
    pub target: Option<String>,
    /// Time left, for grants.
    pub timeout: Option<Duration>,
}

impl Element {
    fn plain(key: String) -> Self {
        Self {
            key,
            target: None,
            timeout: None,
        }
    }

    /// The element as nftables writes it.
    pub fn text(&self) -> String {
        let mut t = self.key.clone();
        if let Some(timeout) = self.timeout {
            let _ = write!(t, " timeout {}ms", timeout.as_millis());
        }
        if let Some(target) = &self.target {
            let _ = write!(t, " : {target}");
        }
        t
    }
}

/// A set or map of ajar's table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetSpec {
    /// Its name.
    pub name: String,
    /// Whether it is a map (gateway DNAT) rather than a set.
    pub is_map: bool,
    /// Its nftables type.
    pub ty: String,
    /// Its flags.
    pub flags: &'static str,
    /// Its elements.
    pub elements: Vec<Element>,
}

/// An element about to time out is left to the kernel rather than deleted, so the delete cannot
/// race the expiry and fail the transaction.
const LEAVE_TO_KERNEL: Duration = Duration::from_millis(500);

/// A grant whose new end is later than the applied one by more than this is re-added, which
/// resets its kernel timeout (an extension).
const EXTEND_BY: Duration = Duration::from_secs(1);

/// The script that changes the table from `before` (applied `age` ago) to `after` element by
/// element, in one transaction, without rebuilding the table; `None` when the sets differ (a
/// mode change or a new layer), which needs the full [`Ruleset::render`].
pub fn render_update(before: &[SetSpec], age: Duration, after: &[SetSpec]) -> Option<String> {
    let names = |s: &[SetSpec]| {
        s.iter()
            .map(|x| (x.name.clone(), x.is_map))
            .collect::<Vec<_>>()
    };
    if names(before) != names(after) {
        return None;
    }
    let mut deletes = String::new();
    let mut adds = String::new();
    // Elements are found by key and target through a hash map, so a change costs time in
    // proportion to the sets' sizes, not to the product of them.
    for (old, new) in before.iter().zip(after) {
        let left = |e: &Element| e.timeout.map(|t| t.saturating_sub(age));
        let (old_index, new_index) = (index(old), index(new));
        let gone: Vec<&str> = old
            .elements
            .iter()
            .filter(|e| !new_index.contains_key(&(e.key.as_str(), e.target.as_deref())))
            .filter(|e| left(e).is_none_or(|l| l > LEAVE_TO_KERNEL))
            .map(|e| e.key.as_str())
            .collect();
        if !gone.is_empty() {
            let _ = writeln!(
                deletes,
                "delete element inet {TABLE} {} {{ {} }}",
                old.name,
                gone.join(", ")
            );
        }
        let fresh: Vec<String> = new
            .elements
            .iter()
            .filter(
                |e| match old_index.get(&(e.key.as_str(), e.target.as_deref())) {
                    None => true,
                    Some(o) => match (left(o), e.timeout) {
                        (Some(l), Some(t)) => t > l + EXTEND_BY,
                        _ => false,
                    },
                },
            )
            .map(Element::text)
            .collect();
        if !fresh.is_empty() {
            let _ = writeln!(
                adds,
                "add element inet {TABLE} {} {{ {} }}",
                new.name,
                fresh.join(", ")
            );
        }
    }
    Some(deletes + &adds)
}

/// A set's elements by key and target.
fn index(set: &SetSpec) -> HashMap<(&str, Option<&str>), &Element> {
    set.elements
        .iter()
        .map(|e| ((e.key.as_str(), e.target.as_deref()), e))
        .collect()
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

/// The script that removes ajar's table (and only it), whether or not it exists.
pub fn uninstall_script() -> String {
    format!("add table inet {TABLE}\ndelete table inet {TABLE}\n")
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

/// Spreads elements over layers so that no two in one layer overlap. Two elements overlap when
/// they have the same `group` key and one's `source` prefix contains the other's (CIDR prefixes
/// either nest or are disjoint; IPv4 and IPv6 prefixes never overlap).
///
/// An element goes to the layer numbered by its depth: how many elements of its group have a
/// prefix containing its own (an equal prefix counts if it comes earlier in `items`). That is
/// the fewest layers possible, one per prefix in the longest nested chain, and for `items`
/// sorted by source prefix it is what placing each in the first layer it fits would give.
/// Within a layer, elements keep their order in `items`. Takes O(n log n) time.
fn layer<T, K: Ord>(
    items: Vec<T>,
    group: impl Fn(&T) -> K,
    source: impl Fn(&T) -> IpNet,
) -> Vec<Vec<T>> {
    layer_by(items, group, source, |outer, inner| outer.contains(inner))
}

/// [`layer`] with the containment test as a parameter, so that tests can count the checks.
fn layer_by<T, K: Ord>(
    items: Vec<T>,
    group: impl Fn(&T) -> K,
    source: impl Fn(&T) -> IpNet,
    mut contains: impl FnMut(&IpNet, &IpNet) -> bool,
) -> Vec<Vec<T>> {
    // Within a group, ordered by network address then prefix length (on the truncated form, so
    // that host bits cannot reorder them), every prefix comes after those containing it and
    // before those it contains; the index keeps equal prefixes in their order in `items`.
    let mut order: Vec<(K, IpNet, usize)> = items
        .iter()
        .enumerate()
        .map(|(i, item)| (group(item), source(item).trunc(), i))
        .collect();
    order.sort_unstable();
    let mut depths = vec![0; order.len()];
    let mut enclosing: Vec<IpNet> = Vec::new();
    for run in order.chunk_by(|a, b| a.0 == b.0) {
        enclosing.clear();
        for (_, net, i) in run {
            while enclosing.last().is_some_and(|outer| !contains(outer, net)) {
                enclosing.pop();
            }
            depths[*i] = enclosing.len();
            enclosing.push(*net);
        }
    }
    let mut layers: Vec<Vec<T>> = Vec::new();
    for (item, depth) in items.into_iter().zip(depths) {
        if layers.len() <= depth {
            layers.resize_with(depth + 1, Vec::new);
        }
        layers[depth].push(item);
    }
    layers
}

#[cfg(test)]
mod tests {
    use super::*;
    use ajar_api::wire::{DesiredGrant, DesiredMachine, ProtectedPort};
    use ajar_core::net::Port;
    use jiff::Timestamp;
    use std::cell::Cell;
    use std::fmt::Debug;
    use std::net::{Ipv4Addr, Ipv6Addr};

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
                aws: None,
            }],
            changes_only: false,
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

    #[test]
    fn updates_touch_only_changed_elements() {
        let base = vec![
            grant("a", &["198.51.100.1"], Protocol::Tcp, 600, None),
            grant("b", &["198.51.100.2"], Protocol::Tcp, 600, None),
        ];
        let before =
            Ruleset::from_desired(&desired(AgentMode::Host, base.clone()), Duration::ZERO).sets();
        let age = Duration::from_secs(10);

        // Nothing changed (ten seconds later): nothing to do.
        let same = Ruleset::from_desired(&desired(AgentMode::Host, base.clone()), age).sets();
        assert_eq!(render_update(&before, age, &same).as_deref(), Some(""));

        // A new grant is added, a revoked one deleted, an extended one re-added.
        let mut changed = base.clone();
        changed.remove(0);
        changed[0].end_time_utc = now()
            .checked_add(jiff::SignedDuration::from_secs(1200))
            .unwrap();
        changed.push(grant("c", &["198.51.100.3"], Protocol::Tcp, 600, None));
        let after =
            Ruleset::from_desired(&desired(AgentMode::Host, changed), Duration::ZERO).sets();
        let script = render_update(&before, Duration::ZERO, &after).unwrap();
        assert_eq!(
            script,
            "delete element inet ajar allow4_0 { 198.51.100.1/32 . 10.1.0.4 . tcp . 22 }\n\
             add element inet ajar allow4_0 { 198.51.100.2/32 . 10.1.0.4 . tcp . 22 timeout 1200000ms, 198.51.100.3/32 . 10.1.0.4 . tcp . 22 timeout 600000ms }\n"
        );

        // A grant about to expire is left to the kernel, not deleted.
        let almost = Duration::from_millis(599_800);
        let gone =
            Ruleset::from_desired(&desired(AgentMode::Host, base[1..].to_vec()), almost).sets();
        let script = render_update(&before, almost, &gone).unwrap();
        assert!(!script.contains("delete"), "{script}");

        // A new layer changes the table's shape: only a full replace will do.
        let overlapping = vec![
            grant("a", &["198.51.100.0/24"], Protocol::Tcp, 600, None),
            grant("b", &["198.51.100.2"], Protocol::Tcp, 600, None),
        ];
        let layered =
            Ruleset::from_desired(&desired(AgentMode::Host, overlapping), Duration::ZERO).sets();
        assert_eq!(render_update(&before, Duration::ZERO, &layered), None);
    }

    /// The layering used before [`layer`], kept as a reference: each element goes to the first
    /// layer where it overlaps none, compared with every element of every earlier layer (O(n²)).
    fn first_fit<T>(items: Vec<T>, overlaps: impl Fn(&T, &T) -> bool) -> Vec<Vec<T>> {
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

    fn nets_overlap(a: &IpNet, b: &IpNet) -> bool {
        a.contains(b) || b.contains(a)
    }

    /// The host-mode elements of one family as [`Ruleset::allow_layers`] gets them to layer.
    fn merged_allow(rs: &Ruleset, v4: bool) -> Vec<Allow> {
        merge(
            rs.allow.iter().filter(|a| a.dest.is_ipv4() == v4).collect(),
            |a| (a.source, a.dest, a.l4, a.port),
            |a| a.timeout,
            |a, t| a.timeout = t,
        )
    }

    /// The gateway-mode elements as [`Ruleset::dnat_layers`] gets them to layer, of one family
    /// or (`None`) of both.
    fn merged_dnat(rs: &Ruleset, v4: Option<bool>) -> Vec<Dnat> {
        merge(
            rs.dnat
                .iter()
                .filter(|d| v4.is_none_or(|v4| d.source.addr().is_ipv4() == v4))
                .collect(),
            |d| (d.source, d.l4, d.mapped_port, d.target, d.target_port),
            |d| d.timeout,
            |d, t| d.timeout = t,
        )
    }

    fn old_allow_layers(rs: &Ruleset, v4: bool) -> Vec<Vec<Allow>> {
        first_fit(merged_allow(rs, v4), |a, b| {
            Allow::group(a) == Allow::group(b) && nets_overlap(&a.source, &b.source)
        })
    }

    fn old_dnat_layers(rs: &Ruleset, v4: Option<bool>) -> Vec<Vec<Dnat>> {
        first_fit(merged_dnat(rs, v4), |a, b| {
            Dnat::group(a) == Dnat::group(b) && nets_overlap(&a.source, &b.source)
        })
    }

    /// 60 grants of 100 source prefixes each on one port: 6,000 elements nested up to four deep
    /// (10.0.0.0/8 ⊃ 10.g.0.0/16 ⊃ 10.g.s.0/24 ⊃ 10.g.s.128/25).
    fn crowded() -> Ruleset {
        let grants = (0..60)
            .map(|g| {
                let sources: Vec<String> = (0..100)
                    .map(|s| match s {
                        0 if g == 0 => "10.0.0.0/8".to_owned(),
                        0 => format!("10.{g}.0.0/16"),
                        1..50 => format!("10.{g}.{s}.0/24"),
                        _ => format!("10.{g}.{}.128/25", s - 49),
                    })
                    .collect();
                let sources: Vec<&str> = sources.iter().map(String::as_str).collect();
                grant(&format!("g{g}"), &sources, Protocol::Tcp, 600 + g, None)
            })
            .collect();
        Ruleset::from_desired(&desired(AgentMode::Host, grants), Duration::ZERO)
    }

    /// A group key that counts how often it is compared.
    struct Counted<'a, K> {
        key: K,
        comparisons: &'a Cell<usize>,
    }

    impl<K: PartialEq> PartialEq for Counted<'_, K> {
        fn eq(&self, other: &Self) -> bool {
            self.comparisons.set(self.comparisons.get() + 1);
            self.key == other.key
        }
    }

    impl<K: Eq> Eq for Counted<'_, K> {}

    impl<K: Ord> PartialOrd for Counted<'_, K> {
        fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
            Some(self.cmp(other))
        }
    }

    impl<K: Ord> Ord for Counted<'_, K> {
        fn cmp(&self, other: &Self) -> std::cmp::Ordering {
            self.comparisons.set(self.comparisons.get() + 1);
            self.key.cmp(&other.key)
        }
    }

    #[test]
    fn layering_thousands_of_nested_sources_takes_near_linear_work() {
        let rs = crowded();
        let items = merged_allow(&rs, true);
        let n = items.len();
        assert_eq!(n, 6000);

        let comparisons = Cell::new(0);
        let visits = Cell::new(0);
        let mut checks = 0;
        let layers = layer_by(
            items,
            |a| {
                visits.set(visits.get() + 1);
                Counted {
                    key: Allow::group(a),
                    comparisons: &comparisons,
                }
            },
            |a| {
                visits.set(visits.get() + 1);
                a.source
            },
            |outer, inner| {
                checks += 1;
                outer.contains(inner)
            },
        );

        let sizes: Vec<usize> = layers.iter().map(Vec::len).collect();
        assert_eq!(sizes, [1, 109, 2999, 2891]);
        assert!(layers == rs.allow_layers(true), "layer_by and layer differ");
        // First fit needed 13,559,270 overlap tests (27,103,760 containment checks) here.
        let (comparisons, visits) = (comparisons.get(), visits.get());
        let work = comparisons + visits + checks;
        assert!(
            work < 20 * n,
            "{work} steps for {n} elements: {comparisons} key comparisons, \
             {visits} closure calls, {checks} containment checks"
        );
    }

    /// A small deterministic pseudo-random generator (SplitMix64).
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
            xs[self.below(xs.len() as u64) as usize]
        }
    }

    /// A prefix from a small space where nesting, equal and disjoint prefixes are all common;
    /// with `messy`, host bits may be left set.
    fn random_source(rng: &mut Rng, v4: bool, messy: bool) -> IpNet {
        let net = if v4 {
            let bits = 10 << 24
                | rng.below(2) << 16
                | rng.below(4) << 10
                | rng.below(4) << 4
                | rng.below(2);
            let len = rng.pick(&[0, 8, 15, 16, 20, 22, 24, 26, 28, 30, 31, 32]);
            IpNet::new(Ipv4Addr::from(bits as u32).into(), len)
        } else {
            let bits = 0x2001_0db8_u128 << 96
                | u128::from(rng.below(2)) << 80
                | u128::from(rng.below(4)) << 64
                | u128::from(rng.below(4)) << 8
                | u128::from(rng.below(2));
            let len = rng.pick(&[0, 32, 48, 64, 66, 72, 96, 120, 124, 127, 128]);
            IpNet::new(Ipv6Addr::from(bits).into(), len)
        }
        .unwrap();
        if messy && rng.below(2) == 0 {
            net
        } else {
            net.trunc()
        }
    }

    /// Host- and gateway-mode elements of both families over a few groups, some repeated.
    fn random_ruleset(rng: &mut Rng, messy: bool) -> Ruleset {
        let family = |rng: &mut Rng, v4: bool| -> IpAddr {
            if v4 {
                rng.pick(&["10.1.0.4", "10.1.0.5"]).parse().unwrap()
            } else {
                rng.pick(&["fd00::4", "fd00::5"]).parse().unwrap()
            }
        };
        let mut rs = Ruleset {
            mode: AgentMode::Host,
            protected: Vec::new(),
            allow: Vec::new(),
            dnat: Vec::new(),
        };
        for _ in 0..rng.below(40) {
            let v4 = rng.below(2) == 0;
            rs.allow.push(Allow {
                source: random_source(rng, v4, messy),
                dest: family(rng, v4),
                l4: rng.pick(&[L4::Tcp, L4::Udp]),
                port: rng.pick(&[22, 3389]),
                timeout: Duration::from_secs(rng.below(3)),
            });
        }
        for _ in 0..rng.below(40) {
            let v4 = rng.below(2) == 0;
            rs.dnat.push(Dnat {
                source: random_source(rng, v4, messy),
                l4: rng.pick(&[L4::Tcp, L4::Udp]),
                mapped_port: rng.pick(&[40001, 40002]),
                target: family(rng, v4),
                target_port: rng.pick(&[22, 80]),
                timeout: Duration::from_secs(rng.below(3)),
            });
        }
        rs
    }

    /// Checks `got` against the first-fit layering `old` of the same elements: no two
    /// overlapping elements share a layer, there are as many layers as the longest chain of
    /// nested prefixes in one group, and (when `exact`) the layers are the same.
    fn check_layers<T: Clone + Debug + PartialEq, K: Eq>(
        got: &[Vec<T>],
        old: &[Vec<T>],
        exact: bool,
        group: impl Fn(&T) -> K,
        source: impl Fn(&T) -> IpNet,
    ) {
        let overlap = |a: &T, b: &T| group(a) == group(b) && nets_overlap(&source(a), &source(b));
        for l in got {
            for (i, a) in l.iter().enumerate() {
                for b in &l[i + 1..] {
                    assert!(!overlap(a, b), "{a:?} and {b:?} share a layer");
                }
            }
        }
        let all = got.concat();
        let longest_chain = all
            .iter()
            .map(|x| {
                all.iter()
                    .filter(|y| group(y) == group(x) && source(y).contains(&source(x)))
                    .count()
            })
            .max()
            .unwrap_or(0);
        assert_eq!(got.len(), longest_chain, "{got:?}");
        let before = old.concat();
        assert_eq!(all.len(), before.len());
        assert!(before.iter().all(|e| all.contains(e)));
        if exact {
            assert_eq!(got, old);
        }
    }

    #[test]
    fn layering_is_minimal_and_matches_first_fit() {
        let mut rng = Rng(0x5eed);
        let mut layered = 0;
        for case in 0..1000 {
            let messy = case % 4 == 3;
            let rs = random_ruleset(&mut rng, messy);
            for v4 in [true, false] {
                let got = rs.allow_layers(v4);
                layered += usize::from(got.len() > 1);
                let old = old_allow_layers(&rs, v4);
                check_layers(&got, &old, !messy, Allow::group, |a| a.source);
                let got = rs.dnat_layers(v4);
                let old = old_dnat_layers(&rs, Some(v4));
                check_layers(&got, &old, !messy, Dnat::group, |d| d.source);
            }
            // Both families in one group never get in each other's way.
            let got = layer(merged_dnat(&rs, None), Dnat::group, |d| d.source);
            let old = old_dnat_layers(&rs, None);
            check_layers(&got, &old, !messy, Dnat::group, |d| d.source);
        }
        assert!(layered > 500, "too few cases needed layers: {layered}");
    }

    #[test]
    fn host_bits_do_not_hide_an_overlap() {
        let wide = IpNet::new("10.0.0.5".parse().unwrap(), 8).unwrap();
        let narrow: IpNet = "10.0.0.0/24".parse().unwrap();
        let layers = layer(vec![narrow, wide], |_| (), |n| *n);
        assert_eq!(layers, [vec![wide], vec![narrow]]);
    }
}
