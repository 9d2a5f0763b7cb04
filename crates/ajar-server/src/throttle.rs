//! Limits on failed authentication: after too many presented-but-invalid credentials from one
//! source address (IPv6 by /64) or with one credential within a minute, further credentials
//! from there are answered 429 until the minute is over — except credentials that
//! authenticated in the last hour, so an attacker sharing an address with real users does not
//! lock them out.
//!
//! Windows are counted on the injected clock, so tests move time rather than wait.

use jiff::{SignedDuration, Timestamp};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// The counting window.
pub const WINDOW: SignedDuration = SignedDuration::from_secs(60);
/// Failed attempts allowed per source address (or IPv6 /64) per window.
pub const PER_ADDRESS: u32 = 20;
/// Failed attempts allowed with one credential per window.
pub const PER_CREDENTIAL: u32 = 5;
/// How long a credential that authenticated stays exempt from an address's limit.
pub const KNOWN_GOOD: SignedDuration = SignedDuration::from_hours(1);
/// Entries kept at most per map; beyond it, ended entries are dropped (then all).
const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Address(IpAddr),
    Credential(String),
}

/// Failed-authentication counters by source and by credential.
#[derive(Debug, Default)]
pub struct FailedAuth {
    windows: Mutex<HashMap<Key, (Timestamp, u32)>>,
    good: Mutex<HashMap<String, Timestamp>>,
}

/// The address a limit applies to: IPv4 as is, IPv6 by its /64 (one site's allocation).
fn source(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
        v4 => v4,
    }
}

impl FailedAuth {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, (Timestamp, u32)>> {
        self.windows.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn keys(addr: Option<IpAddr>, credential: &str) -> [(Option<Key>, u32); 2] {
        [
            (addr.map(|a| Key::Address(source(a))), PER_ADDRESS),
            (Some(Key::Credential(credential.to_owned())), PER_CREDENTIAL),
        ]
    }

    /// Whether an unverified credential (by its hash) from `addr` must wait; when it must, how
    /// many seconds until its window ends.
    pub fn blocked(&self, addr: Option<IpAddr>, credential: &str, now: Timestamp) -> Option<i64> {
        let recently_good = self
            .good
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(credential)
            .is_some_and(|t| now < t.saturating_add(KNOWN_GOOD).unwrap_or(*t));
        if recently_good {
            return None;
        }
        let windows = self.lock();
        Self::keys(addr, credential)
            .into_iter()
            .filter_map(|(key, limit)| {
                let (start, count) = *windows.get(&key?)?;
                let ends = start.saturating_add(WINDOW).unwrap_or(start);
                (now < ends && count >= limit).then(|| ends.duration_since(now).as_secs().max(1))
            })
            .max()
    }

    /// Forgets every count (for an operator lifting a block, and for tests).
    pub fn forget(&self) {
        self.lock().clear();
    }

    /// Remembers that a credential (by its hash) authenticated.
    pub fn succeeded(&self, credential: &str, now: Timestamp) {
        let mut good = self.good.lock().unwrap_or_else(|p| p.into_inner());
        if good.len() >= MAX_ENTRIES {
            good.retain(|_, t| now < t.saturating_add(KNOWN_GOOD).unwrap_or(*t));
            if good.len() >= MAX_ENTRIES {
                good.clear();
            }
        }
        good.insert(credential.to_owned(), now);
    }

    /// Counts a failed attempt.
    pub fn failed(&self, addr: Option<IpAddr>, credential: &str, now: Timestamp) {
        let mut windows = self.lock();
        if windows.len() >= MAX_ENTRIES {
            windows.retain(|_, (start, _)| now < start.saturating_add(WINDOW).unwrap_or(*start));
            if windows.len() >= MAX_ENTRIES {
                windows.clear();
            }
        }
        for (key, _) in Self::keys(addr, credential) {
            let Some(key) = key else { continue };
            let entry = windows.entry(key).or_insert((now, 0));
            if now >= entry.0.saturating_add(WINDOW).unwrap_or(entry.0) {
                *entry = (now, 0);
            }
            entry.1 = entry.1.saturating_add(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_000_000 + s).unwrap()
    }

    #[test]
    fn an_address_is_held_after_its_limit_until_the_window_ends() {
        let f = FailedAuth::default();
        let a: IpAddr = "203.0.113.7".parse().unwrap();
        for i in 0..PER_ADDRESS {
            assert_eq!(f.blocked(Some(a), &format!("c{i}"), t(0)), None);
            f.failed(Some(a), &format!("c{i}"), t(0));
        }
        assert_eq!(f.blocked(Some(a), "fresh", t(10)), Some(50));
        assert_eq!(
            f.blocked(Some("203.0.113.8".parse().unwrap()), "fresh", t(10)),
            None
        );
        assert_eq!(f.blocked(Some(a), "fresh", t(60)), None, "a new window");
    }

    #[test]
    fn a_credential_that_authenticated_lately_passes_a_held_address() {
        let f = FailedAuth::default();
        let a: IpAddr = "203.0.113.7".parse().unwrap();
        f.succeeded("good", t(0));
        for i in 0..PER_ADDRESS {
            f.failed(Some(a), &format!("c{i}"), t(1));
        }
        assert!(f.blocked(Some(a), "new", t(2)).is_some());
        assert_eq!(f.blocked(Some(a), "good", t(2)), None);
    }

    #[test]
    fn one_credential_is_held_after_its_own_limit_from_any_address() {
        let f = FailedAuth::default();
        for i in 0..PER_CREDENTIAL {
            let from: IpAddr = format!("198.51.100.{i}").parse().unwrap();
            f.failed(Some(from), "same", t(0));
        }
        assert!(
            f.blocked(Some("192.0.2.1".parse().unwrap()), "same", t(1))
                .is_some()
        );
        assert!(
            f.blocked(Some("192.0.2.1".parse().unwrap()), "other", t(1))
                .is_none()
        );
    }

    #[test]
    fn ipv6_addresses_count_by_their_64() {
        let f = FailedAuth::default();
        for i in 0..PER_ADDRESS {
            let a: IpAddr = format!("2001:db8:1:2::{i:x}").parse().unwrap();
            f.failed(Some(a), &format!("c{i}"), t(0));
        }
        let same64: IpAddr = "2001:db8:1:2:ffff::1".parse().unwrap();
        let other64: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(f.blocked(Some(same64), "x", t(1)).is_some());
        assert!(f.blocked(Some(other64), "x", t(1)).is_none());
        let mapped: IpAddr = "::ffff:203.0.113.9".parse().unwrap();
        assert_eq!(source(mapped), "203.0.113.9".parse::<IpAddr>().unwrap());
    }
}
