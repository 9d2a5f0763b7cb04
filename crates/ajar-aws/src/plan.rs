//! What to change in a security group ajar owns so that it holds exactly the desired rules,
//! and which rules elsewhere leave a protected port open to everyone. Pure: no IO, no clock
//! (the time left of each grant is passed in).
//!
//! AWS identifies an inbound rule by protocol, ports and source, not by its description, so
//! grants that share a port and a source share one rule. Its description names the covering
//! grant that ends last: `ajar:END:SEQ:REQUEST`, END first (RFC 3339, to the second) so that a
//! rule always says when it must be gone, even after a crash.

use crate::ec2::{FoundRule, Proto, Rule, RuleKey};
use ajar_api::wire::{Exposure, ProtectedPort};
use ajar_core::net::{Protocol, SourcePrefix};
use ipnet::IpNet;
use jiff::Timestamp;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::time::Duration;

/// A rule is never added with less time than this left: a replica that lags must not reopen
/// what another one is about to close.
pub const MIN_LEFT: Duration = Duration::from_secs(1);
/// The longest description AWS accepts.
const MAX_DESCRIPTION: usize = 255;
/// The prefix of every description ajar writes.
const PREFIX: &str = "ajar:";

/// A grant on a machine, as the enforcer holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldGrant {
    /// Request id.
    pub request_id: String,
    /// Port position in the request.
    pub seq: i64,
    /// Port.
    pub number: u16,
    /// `TCP`, `UDP` or both.
    pub protocol: Protocol,
    /// Sources allowed in.
    pub sources: Vec<SourcePrefix>,
    /// When it ends (the server's time).
    pub end: Timestamp,
    /// Time left until its deadline on the enforcer's own clock.
    pub left: Duration,
}

/// The keys of the rules a port needs: one per source network and transport protocol. `*`
/// as protocol is TCP and UDP (never EC2's "all protocols", which opens every port) and `*`
/// as source is `0.0.0.0/0` and `::/0`.
pub fn rule_keys(number: u16, protocol: Protocol, sources: &[SourcePrefix]) -> Vec<RuleKey> {
    let protos: &[Proto] = match protocol {
        Protocol::Tcp => &[Proto::Tcp],
        Protocol::Udp => &[Proto::Udp],
        Protocol::Any => &[Proto::Tcp, Proto::Udp],
    };
    let mut cidrs = Vec::new();
    for source in sources {
        match source {
            SourcePrefix::Any => cidrs.extend(
                ["0.0.0.0/0", "::/0"]
                    .iter()
                    .filter_map(|c| c.parse::<IpNet>().ok()),
            ),
            SourcePrefix::Net(net) => cidrs.push(net.trunc()),
        }
    }
    let mut keys: Vec<RuleKey> = protos
        .iter()
        .flat_map(|&proto| {
            cidrs.iter().map(move |&cidr| RuleKey {
                proto,
                port: number,
                cidr,
            })
        })
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// Whether every character is one AWS accepts in a rule description.
fn allowed(text: &str) -> bool {
    text.chars()
        .all(|c| c.is_ascii_alphanumeric() || " ._-:/()#,@[]+=;{}!$*".contains(c))
}

/// The description of a rule opened for `request_id`'s port `seq` until `end`.
pub fn description(end: Timestamp, seq: i64, request_id: &str) -> String {
    let end = end.strftime("%Y-%m-%dT%H:%M:%SZ");
    let full = format!("{PREFIX}{end}:{seq}:{request_id}");
    if full.len() <= MAX_DESCRIPTION && allowed(&full) {
        return full;
    }
    let digest = hex::encode(Sha256::digest(request_id.as_bytes()));
    format!("{PREFIX}{end}:{seq}:~{}", &digest[..16])
}

/// The end a description of ajar's names, if it is one.
pub fn described_end(description: &str) -> Option<Timestamp> {
    let rest = description.strip_prefix(PREFIX)?;
    // `YYYY-MM-DDTHH:MM:SSZ` is 20 characters, then `:`.
    let end = rest.get(..20)?;
    if rest.get(20..21) != Some(":") {
        return None;
    }
    end.parse().ok()
}

/// A rule wanted in a group: its description, and the most time any grant it serves has left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// The description it must carry.
    pub description: String,
    /// The most time left among the grants it serves.
    pub left: Duration,
}

/// The rules a group must hold for these grants: those with time left, each described by the
/// covering grant that ends last (ties: the smallest request id, then port position).
pub fn wanted<'a>(grants: impl IntoIterator<Item = &'a HeldGrant>) -> BTreeMap<RuleKey, Wanted> {
    let mut by_key: BTreeMap<RuleKey, (&HeldGrant, Duration)> = BTreeMap::new();
    for grant in grants.into_iter().filter(|g| !g.left.is_zero()) {
        for key in rule_keys(grant.number, grant.protocol, &grant.sources) {
            by_key
                .entry(key)
                .and_modify(|(best, left)| {
                    *left = (*left).max(grant.left);
                    let later = (grant.end, std::cmp::Reverse((&grant.request_id, grant.seq)))
                        > (best.end, std::cmp::Reverse((&best.request_id, best.seq)));
                    if later {
                        *best = grant;
                    }
                })
                .or_insert((grant, grant.left));
        }
    }
    by_key
        .into_iter()
        .map(|(key, (g, left))| {
            (
                key,
                Wanted {
                    description: description(g.end, g.seq, &g.request_id),
                    left,
                },
            )
        })
        .collect()
}

/// The calls that make a group hold what is wanted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Rules to add.
    pub authorize: Vec<Rule>,
    /// ajar-shaped rules to remove, by key.
    pub revoke: Vec<RuleKey>,
    /// Other inbound rules to remove, by id (an ajar-owned group holds only ajar's rules).
    pub revoke_ids: Vec<String>,
    /// Rules to keep with another description.
    pub redescribe: Vec<Rule>,
}

impl Changes {
    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.authorize.is_empty()
            && self.revoke.is_empty()
            && self.revoke_ids.is_empty()
            && self.redescribe.is_empty()
    }
}

/// The changes from the group's `current` rules to `wanted`. A wanted rule that is missing is
/// added only when it has more than [`MIN_LEFT`] left.
pub fn changes(wanted: &BTreeMap<RuleKey, Wanted>, current: &[FoundRule]) -> Changes {
    let mut plan = Changes::default();
    let mut present = BTreeMap::new();
    for rule in current.iter().filter(|r| !r.egress) {
        match rule.key() {
            Some(key) if !present.contains_key(&key) => {
                present.insert(key, rule);
            }
            _ => plan.revoke_ids.push(rule.id.clone()),
        }
    }
    for (key, rule) in &present {
        match wanted.get(key) {
            None => plan.revoke.push(*key),
            Some(w) if rule.description.as_deref() != Some(w.description.as_str()) => {
                plan.redescribe.push(Rule {
                    key: *key,
                    description: w.description.clone(),
                })
            }
            Some(_) => {}
        }
    }
    for (key, w) in wanted {
        if !present.contains_key(key) && w.left > MIN_LEFT {
            plan.authorize.push(Rule {
                key: *key,
                description: w.description.clone(),
            });
        }
    }
    plan
}

/// The rules among `current` (of one group) whose described end is at or before `now`, or that
/// are not ajar's: what a sweep removes before any desired state is known.
pub fn stale(current: &[FoundRule], now: Timestamp) -> (Vec<RuleKey>, Vec<String>) {
    let mut keys = Vec::new();
    let mut ids = Vec::new();
    for rule in current.iter().filter(|r| !r.egress) {
        let end = rule.description.as_deref().and_then(described_end);
        match (rule.key(), end) {
            (Some(key), Some(end)) if end <= now => keys.push(key),
            (Some(_), Some(_)) => {}
            _ => ids.push(rule.id.clone()),
        }
    }
    (keys, ids)
}

/// Every inbound rule in `rules` that opens a protected port to everyone (`0.0.0.0/0` or
/// `::/0`), as exposures; `group_names` names the groups.
pub fn exposures(
    protected: &[ProtectedPort],
    rules: &[FoundRule],
    group_names: &BTreeMap<String, String>,
) -> Vec<Exposure> {
    let mut found = Vec::new();
    for rule in rules.iter().filter(|r| !r.egress) {
        let Some(cidr) = rule.cidr else { continue };
        if cidr.prefix_len() != 0 {
            continue;
        }
        let (tcp, udp) = match rule.protocol.as_str() {
            "-1" | "all" => (true, true),
            "tcp" | "6" => (true, false),
            "udp" | "17" => (false, true),
            _ => continue,
        };
        for port in protected {
            let n = i32::from(port.number.get());
            let in_range = (rule.from_port == -1 && rule.to_port == -1)
                || (rule.from_port <= n && n <= rule.to_port);
            let protocol_matches = match port.protocol {
                Protocol::Tcp => tcp,
                Protocol::Udp => udp,
                Protocol::Any => tcp || udp,
            };
            if in_range && protocol_matches {
                let name = group_names
                    .get(&rule.group_id)
                    .map_or(String::new(), |n| format!(" ({n})"));
                found.push(Exposure {
                    number: port.number,
                    protocol: port.protocol,
                    source: cidr.to_string(),
                    allowed_by: format!("security group {}{name}, rule {}", rule.group_id, rule.id),
                });
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn grant(
        id: &str,
        seq: i64,
        protocol: Protocol,
        sources: &[&str],
        end: &str,
        left: u64,
    ) -> HeldGrant {
        HeldGrant {
            request_id: id.into(),
            seq,
            number: 22,
            protocol,
            sources: sources
                .iter()
                .map(|s| SourcePrefix::parse(s).unwrap())
                .collect(),
            end: t(end),
            left: Duration::from_secs(left),
        }
    }

    fn found(
        id: &str,
        proto: &str,
        from: i32,
        to: i32,
        cidr: &str,
        description: Option<&str>,
    ) -> FoundRule {
        FoundRule {
            id: id.into(),
            group_id: "sg-1".into(),
            egress: false,
            protocol: proto.into(),
            from_port: from,
            to_port: to,
            cidr: Some(cidr.parse().unwrap()),
            description: description.map(str::to_owned),
        }
    }

    #[test]
    fn any_protocol_is_tcp_and_udp_and_any_source_is_both_families() {
        let keys = rule_keys(3389, Protocol::Any, &[SourcePrefix::Any]);
        let shown: Vec<String> = keys
            .iter()
            .map(|k| format!("{}/{}/{}", k.proto.as_str(), k.port, k.cidr))
            .collect();
        assert_eq!(
            shown,
            [
                "tcp/3389/0.0.0.0/0",
                "tcp/3389/::/0",
                "udp/3389/0.0.0.0/0",
                "udp/3389/::/0"
            ]
        );
    }

    #[test]
    fn a_description_leads_with_the_end_and_long_or_odd_ids_are_hashed() {
        let end = t("2026-12-01T10:00:00.700Z");
        let d = description(end, 1, "/subscriptions/s/resourceGroups/rg/jitRequests/r1");
        assert_eq!(
            d,
            "ajar:2026-12-01T10:00:00Z:1:/subscriptions/s/resourceGroups/rg/jitRequests/r1"
        );
        assert_eq!(described_end(&d), Some(t("2026-12-01T10:00:00Z")));
        let long = format!(
            "/subscriptions/s/resourceGroups/rg/jitRequests/{}",
            "x".repeat(230)
        );
        let d = description(end, 0, &long);
        assert!(
            d.len() <= 255 && d.starts_with("ajar:2026-12-01T10:00:00Z:0:~"),
            "{d}"
        );
        assert_eq!(d.len(), "ajar:2026-12-01T10:00:00Z:0:~".len() + 16);
        let odd = description(end, 0, "/subscriptions/s/resourceGroups/rg/jitRequests/a<b");
        assert!(odd.contains(":~"), "{odd}");
        assert_eq!(described_end("ajar:garbage"), None);
        assert_eq!(described_end("web server"), None);
    }

    #[test]
    fn shared_rules_follow_the_grant_that_ends_last() {
        let a = grant(
            "/r/a",
            0,
            Protocol::Tcp,
            &["10.0.0.0/8"],
            "2026-12-01T10:00:00Z",
            60,
        );
        let b = grant(
            "/r/b",
            0,
            Protocol::Tcp,
            &["10.0.0.0/8", "192.0.2.1"],
            "2026-12-01T11:00:00Z",
            3660,
        );
        let w = wanted([&a, &b]);
        assert_eq!(w.len(), 2);
        for wanted in w.values() {
            assert!(wanted.description.ends_with(":/r/b"), "{wanted:?}");
            assert_eq!(wanted.left, Duration::from_secs(3660));
        }
        // A grant with no time left wants nothing.
        let over = grant(
            "/r/c",
            0,
            Protocol::Tcp,
            &["203.0.113.0/24"],
            "2026-12-01T09:00:00Z",
            0,
        );
        assert!(wanted([&over]).is_empty());
    }

    #[test]
    fn changes_add_remove_and_redescribe_without_closing_a_rule_in_use() {
        let a = grant(
            "/r/a",
            0,
            Protocol::Tcp,
            &["10.0.0.0/8"],
            "2026-12-01T10:00:00Z",
            60,
        );
        let b = grant(
            "/r/b",
            0,
            Protocol::Tcp,
            &["192.0.2.1"],
            "2026-12-01T10:00:00Z",
            60,
        );
        let w = wanted([&a, &b]);
        let current = vec![
            // Wanted, but described for an older grant: redescribed in place.
            found(
                "sgr-1",
                "tcp",
                22,
                22,
                "10.0.0.0/8",
                Some("ajar:2026-12-01T09:00:00Z:0:/r/old"),
            ),
            // Not wanted: revoked by key.
            found(
                "sgr-2",
                "tcp",
                22,
                22,
                "198.51.100.0/24",
                Some("ajar:2026-12-01T09:00:00Z:0:/r/x"),
            ),
            // Not ajar's shape: revoked by id.
            found("sgr-3", "-1", -1, -1, "0.0.0.0/0", None),
        ];
        let plan = changes(&w, &current);
        assert_eq!(plan.authorize.len(), 1);
        assert_eq!(plan.authorize[0].key.cidr.to_string(), "192.0.2.1/32");
        assert_eq!(plan.revoke.len(), 1);
        assert_eq!(plan.revoke[0].cidr.to_string(), "198.51.100.0/24");
        assert_eq!(plan.revoke_ids, ["sgr-3"]);
        assert_eq!(plan.redescribe.len(), 1);
        assert!(plan.redescribe[0].description.ends_with("/r/a"));
        // Applied, nothing is left to do.
        let after: Vec<FoundRule> = w
            .iter()
            .enumerate()
            .map(|(i, (k, v))| FoundRule {
                id: format!("sgr-{i}"),
                group_id: "sg-1".into(),
                egress: false,
                protocol: k.proto.as_str().into(),
                from_port: k.port.into(),
                to_port: k.port.into(),
                cidr: Some(k.cidr),
                description: Some(v.description.clone()),
            })
            .collect();
        assert!(changes(&w, &after).is_empty());
    }

    #[test]
    fn a_rule_about_to_end_is_kept_but_never_added() {
        let soon = grant(
            "/r/a",
            0,
            Protocol::Tcp,
            &["10.0.0.0/8"],
            "2026-12-01T10:00:00Z",
            0,
        );
        let mut soon = soon;
        soon.left = Duration::from_millis(500);
        let w = wanted([&soon]);
        assert!(
            changes(&w, &[]).is_empty(),
            "not added with half a second left"
        );
        let present = [found(
            "sgr-1",
            "tcp",
            22,
            22,
            "10.0.0.0/8",
            Some(&w.values().next().unwrap().description),
        )];
        assert!(changes(&w, &present).is_empty(), "kept until its deadline");
    }

    #[test]
    fn a_sweep_removes_ended_and_foreign_rules_only() {
        let current = [
            found(
                "sgr-1",
                "tcp",
                22,
                22,
                "10.0.0.0/8",
                Some("ajar:2026-12-01T09:00:00Z:0:/r/a"),
            ),
            found(
                "sgr-2",
                "tcp",
                22,
                22,
                "10.0.0.0/9",
                Some("ajar:2026-12-01T11:00:00Z:0:/r/b"),
            ),
            found("sgr-3", "tcp", 22, 22, "10.0.0.0/10", Some("added by hand")),
        ];
        let (keys, ids) = stale(&current, t("2026-12-01T10:00:00Z"));
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].cidr.to_string(), "10.0.0.0/8");
        assert_eq!(ids, ["sgr-3"]);
    }

    #[test]
    fn exposures_are_rules_open_to_everyone_on_a_protected_port() {
        let protected = [
            ProtectedPort {
                number: 22u16.into(),
                protocol: Protocol::Tcp,
            },
            ProtectedPort {
                number: 3389u16.into(),
                protocol: Protocol::Any,
            },
        ];
        let names = BTreeMap::from([("sg-1".to_owned(), "web-open".to_owned())]);
        let rules = [
            found("sgr-1", "tcp", 22, 22, "0.0.0.0/0", None),
            found("sgr-2", "tcp", 0, 1024, "::/0", None),
            found("sgr-3", "tcp", 22, 22, "10.0.0.0/8", None),
            found("sgr-4", "udp", 22, 22, "0.0.0.0/0", None),
            found("sgr-5", "-1", -1, -1, "0.0.0.0/0", None),
        ];
        let e = exposures(&protected, &rules, &names);
        let shown: Vec<String> = e
            .iter()
            .map(|x| format!("{} {} {}", x.number.get(), x.source, x.allowed_by))
            .collect();
        assert_eq!(
            shown,
            [
                "22 0.0.0.0/0 security group sg-1 (web-open), rule sgr-1",
                "22 0.0.0.0/0 security group sg-1 (web-open), rule sgr-5",
                "22 ::/0 security group sg-1 (web-open), rule sgr-2",
                "3389 0.0.0.0/0 security group sg-1 (web-open), rule sgr-5",
            ]
        );
    }
}
