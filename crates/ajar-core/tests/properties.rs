//! Property tests (proptest) of the domain's promises: the request lifecycle never reaches an
//! invalid state and an ended grant never becomes active again; an assignment at a scope never
//! grants outside it and removing one never widens access; CIDR containment agrees with the
//! addresses a prefix holds. `PROPTEST_CASES` overrides the number of cases per property.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use ajar_core::id::Scope;
use ajar_core::lifecycle::{
    ApprovalRule, Approver, Decision, Event, Lifecycle, RequestState, Start,
};
use ajar_core::net::SourcePrefix;
use ajar_core::principal::Principal;
use ajar_core::rbac::{ActionPattern, Permissions, RoleDefinition};
use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Cases per property unless `PROPTEST_CASES` says otherwise.
const CASES: u32 = 2_000;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(CASES),
        // Failures found are kept as named regression tests instead (see lifecycle's tests).
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// -- the request lifecycle ------------------------------------------------------------------

const PEOPLE: [&str; 5] = ["alice", "bob", "carol", "dave", "erin"];
const GROUPS: [&str; 2] = ["ops", "dba"];

fn person() -> impl Strategy<Value = Principal> {
    (0..PEOPLE.len()).prop_map(|i| Principal::parse(PEOPLE[i]).unwrap())
}

fn groups() -> impl Strategy<Value = Vec<String>> {
    proptest::sample::subsequence(GROUPS.to_vec(), 0..=GROUPS.len())
        .prop_map(|g| g.into_iter().map(str::to_owned).collect())
}

fn rule() -> impl Strategy<Value = ApprovalRule> {
    let approver = prop_oneof![
        person().prop_map(Approver::User),
        (0..GROUPS.len()).prop_map(|i| Approver::Group(GROUPS[i].to_owned())),
    ];
    (
        any::<bool>(),
        proptest::collection::vec(approver, 1..4),
        1u32..4,
    )
        .prop_map(|(automatic, approvers, threshold)| ApprovalRule {
            automatic,
            approvers,
            threshold,
        })
}

/// An event, and how many seconds pass before it.
fn step() -> impl Strategy<Value = (i64, Event)> {
    fn decision() -> impl Strategy<Value = Decision> {
        (person(), any::<bool>()).prop_map(|(by, approve)| Decision {
            by,
            approve,
            reason: "because".into(),
            at: Timestamp::UNIX_EPOCH,
        })
    }
    let event = prop_oneof![
        (decision(), groups()).prop_map(|(d, g)| Event::Approve(d, g)),
        (decision(), groups()).prop_map(|(d, g)| Event::Deny(d, g)),
        person().prop_map(Event::Cancel),
        Just(Event::Tick),
        (person(), any::<bool>()).prop_map(|(by, admin)| Event::Revoke { by, admin }),
        Just(Event::Fail("nft failed".into())),
    ];
    (prop_oneof![Just(0i64), 0i64..600, 0i64..20_000], event)
}

fn start() -> impl Strategy<Value = Start> {
    prop_oneof![
        Just(Start::Now),
        (0i64..7_200).prop_map(|s| Start::At(Timestamp::from_second(1_000_000 + s).unwrap())),
    ]
}

/// What must hold of every lifecycle at `now`.
fn check_invariants(l: &Lifecycle, rule: &ApprovalRule, now: Timestamp) {
    use RequestState::*;
    match l.state {
        Pending | Denied | Canceled | Timeout => {
            assert!(l.window.is_none(), "{:?} has a window", l.state)
        }
        Approved | Active | Expired | Revoked | Failed => {
            let (start, end) = l.window.expect("a decided window");
            assert!(start <= end, "the window runs backwards");
            assert!(
                end.duration_since(start) <= l.duration,
                "the window is longer than asked"
            );
        }
    }
    if let Some((start, end)) = l.window {
        if l.state == Active {
            assert!(start <= now && now < end, "active outside its window");
        }
        if l.state == Approved {
            assert!(now < start, "approved but its start has passed");
        }
    }
    assert!(
        l.decisions.iter().all(|d| d.by != l.requester),
        "a requester decided their own request"
    );
    let mut deciders: Vec<&Principal> = l.decisions.iter().map(|d| &d.by).collect();
    deciders.sort();
    let n = deciders.len();
    deciders.dedup();
    assert_eq!(n, deciders.len(), "someone decided twice");
    if !rule.automatic && l.window.is_some() {
        let approvals = l.decisions.iter().filter(|d| d.approve).count();
        assert!(
            approvals >= rule.threshold.max(1) as usize,
            "opened with {approvals} of {} approvals",
            rule.threshold
        );
    }
    if l.state == Denied {
        assert!(l.decisions.last().is_some_and(|d| !d.approve));
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn no_sequence_of_events_reaches_an_invalid_state(
        requester in person(),
        rule in rule(),
        start in start(),
        minutes in 1i64..480,
        steps in proptest::collection::vec(step(), 0..25),
    ) {
        let mut now = Timestamp::from_second(1_000_000).unwrap();
        let mut l = Lifecycle::new(requester, start, SignedDuration::from_mins(minutes), &rule, now);
        check_invariants(&l, &rule, now);
        let mut as_of = now;
        let mut ended = false;
        for (wait, event) in steps {
            now += SignedDuration::from_secs(wait);
            let before = l.clone();
            match l.apply(event, &rule, now) {
                Ok(next) => {
                    l = next;
                    as_of = now;
                }
                Err(_) => prop_assert_eq!(&l, &before, "a refused event changed the request"),
            }
            // A refused event leaves the request as it stood at its last change.
            check_invariants(&l, &rule, as_of);
            if before.state.is_final() {
                prop_assert_eq!(l.state, before.state, "a final state changed");
            }
            // An ended grant never becomes active again.
            ended |= matches!(
                l.state,
                RequestState::Expired | RequestState::Revoked | RequestState::Failed
            );
            if ended {
                prop_assert!(!matches!(l.state, RequestState::Active | RequestState::Approved));
            }
            // The scheduler has something to wait for exactly while the request is live.
            prop_assert_eq!(l.next_due().is_some(), !l.state.is_final());
        }
    }
}

// -- RBAC -------------------------------------------------------------------------------------

/// A small hierarchy, so generated assignments and questions meet often.
fn scope() -> impl Strategy<Value = Scope> {
    prop_oneof![
        Just("/".to_owned()),
        (0..2usize).prop_map(|s| format!("/subscriptions/s{s}")),
        (0..2usize, 0..2usize)
            .prop_map(|(s, r)| format!("/subscriptions/s{s}/resourceGroups/r{r}")),
        (0..2usize, 0..2usize, 0..2usize, 0..3usize).prop_map(|(s, r, l, k)| {
            let kind = ["machines", "jitNetworkAccessPolicies", "applications"][k];
            format!("/subscriptions/s{s}/resourceGroups/r{r}/{kind}/x{l}")
        }),
    ]
    .prop_map(|p| Scope::parse(&p).unwrap())
}

const ACTIONS: [&str; 4] = [
    "ajar.machines/read",
    "ajar.machines/write",
    "ajar.jit/policies/initiate/action",
    "ajar.rbac/write",
];

fn role() -> impl Strategy<Value = RoleDefinition> {
    let pattern = prop_oneof![
        (0..ACTIONS.len()).prop_map(|i| ACTIONS[i].to_owned()),
        Just("ajar.machines/*".to_owned()),
        Just("*".to_owned()),
        Just("*/read".to_owned()),
    ];
    proptest::collection::vec(pattern, 1..3).prop_map(|ps| {
        let actions = ps
            .iter()
            .map(|p| ActionPattern::parse(p).unwrap())
            .collect();
        RoleDefinition::ajar("generated", "", actions, false)
    })
}

/// Whether `inner` lies at or beneath `outer`, judged on their paths alone (an oracle
/// independent of `Scope::contains`).
fn beneath(outer: &Scope, inner: &Scope) -> bool {
    let (o, i) = (outer.to_string(), inner.to_string());
    o == "/" || i == o || i.starts_with(&format!("{o}/"))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn an_assignment_grants_nothing_outside_its_scope(
        assignments in proptest::collection::vec((scope(), role()), 0..5),
        target in scope(),
        action in 0..ACTIONS.len(),
    ) {
        let action = ACTIONS[action];
        let p = Permissions::new(assignments.clone());
        if p.allows(action, &target) {
            prop_assert!(
                assignments.iter().any(|(s, r)| beneath(s, &target) && r.allows(action)),
                "{} at {} allowed by no assignment above it", action, target
            );
            prop_assert!(p.allows_within(action, &target));
        }
        for (s, r) in &assignments {
            if r.allows(action) && beneath(s, &target) {
                prop_assert!(p.allows(action, &target), "an assignment at {} did not reach {}", s, target);
            }
        }
    }

    #[test]
    fn removing_an_assignment_never_widens_access(
        assignments in proptest::collection::vec((scope(), role()), 1..6),
        removed in any::<proptest::sample::Index>(),
        target in scope(),
        action in 0..ACTIONS.len(),
    ) {
        let action = ACTIONS[action];
        let before = Permissions::new(assignments.clone());
        let mut fewer = assignments;
        fewer.remove(removed.index(fewer.len()));
        let after = Permissions::new(fewer);
        if after.allows(action, &target) {
            prop_assert!(before.allows(action, &target));
        }
        if after.allows_within(action, &target) {
            prop_assert!(before.allows_within(action, &target));
        }
    }
}

// -- CIDR containment -------------------------------------------------------------------------

fn prefix() -> impl Strategy<Value = SourcePrefix> {
    let v4 = (any::<u32>(), 0u8..=32).prop_map(|(a, len)| {
        let net = ipnet::Ipv4Net::new(Ipv4Addr::from(a), len).unwrap().trunc();
        SourcePrefix::Net(net.into())
    });
    let v6 = (any::<u128>(), 0u8..=128).prop_map(|(a, len)| {
        let net = ipnet::Ipv6Net::new(Ipv6Addr::from(a), len).unwrap().trunc();
        SourcePrefix::Net(net.into())
    });
    prop_oneof![Just(SourcePrefix::Any), v4, v6]
}

/// The lowest and highest address of a prefix (`None` for `*`).
fn bounds(p: &SourcePrefix) -> Option<(IpAddr, IpAddr)> {
    match p {
        SourcePrefix::Any => None,
        SourcePrefix::Net(n) => Some((n.network(), n.broadcast())),
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn containment_is_containment_of_addresses(a in prefix(), b in prefix()) {
        let by_addresses = match (bounds(&a), bounds(&b)) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some((alo, ahi)), Some((blo, bhi))) => {
                alo.is_ipv4() == blo.is_ipv4() && alo <= blo && bhi <= ahi
            }
        };
        prop_assert_eq!(a.contains(&b), by_addresses, "{} contains {}?", a, b);
        prop_assert!(a.contains(&a));
        prop_assert_eq!(SourcePrefix::parse(&a.to_string()).unwrap(), a);
    }

    #[test]
    fn containment_is_a_partial_order(a in prefix(), b in prefix(), c in prefix()) {
        if a.contains(&b) && b.contains(&c) {
            prop_assert!(a.contains(&c));
        }
        if a.contains(&b) && b.contains(&a) {
            prop_assert_eq!(a, b);
        }
    }

    #[test]
    fn every_address_of_a_prefix_is_inside_it(net in prefix(), offset in any::<u128>()) {
        if let Some((IpAddr::V4(lo), IpAddr::V4(hi))) = bounds(&net) {
            let span = u128::from(u32::from(hi) - u32::from(lo)) + 1;
            let addr = Ipv4Addr::from(u32::from(lo) + (offset % span) as u32);
            prop_assert!(net.contains(&SourcePrefix::address(IpAddr::V4(addr))), "{} in {}", addr, net);
        }
        if let Some((IpAddr::V6(lo), IpAddr::V6(hi))) = bounds(&net) {
            let span = u128::from(hi) - u128::from(lo);
            let pick = if span == u128::MAX { offset } else { offset % (span + 1) };
            let addr = Ipv6Addr::from(u128::from(lo) + pick);
            // IPv4-mapped addresses count as the IPv4 address they carry.
            if addr.to_ipv4_mapped().is_none() {
                prop_assert!(net.contains(&SourcePrefix::address(IpAddr::V6(addr))), "{} in {}", addr, net);
            }
        }
    }
}
