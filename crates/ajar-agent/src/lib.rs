//! `ajar agent`: the enforcement point. It long-polls the control plane for the desired state of
//! the machines it guards and programs nftables so that exactly the granted ports are open.
//!
//! # Layout
//! - [`ruleset`]: desired state → nftables ruleset (pure: no IO, snapshot-tested).
//! - [`firewall`]: the [`firewall::Firewall`] trait; [`firewall::Nft`] applies a ruleset as one
//!   atomic `nft -f -` transaction to ajar's own table, [`firewall::Recording`] is the fake.
//! - [`conntrack`]: cutting established connections when a grant ends (per-policy option).
//! - [`sync`]: the loop: poll, apply, report, back off on errors; its [`sync::Enforcer`] is the
//!   part without the network (apply a desired state, keep what opened and closed, cut
//!   connections when due), which tests and benchmarks drive directly.
//!
//! # Invariants
//! - Only the table `inet ajar` is ever touched; the script always names it explicitly.
//! - Every granted element carries a kernel timeout equal to the time left, so access closes on
//!   time even when the agent and the control plane are both gone (fail-closed).
//! - Every change is one `nft -f -` transaction, so the kernel never sees a half-applied state:
//!   the first apply (and any change of the table's shape) replaces the whole table, which
//!   reconciles stale rules by construction; later ones add and delete only the elements that
//!   changed, found by hash lookups so a change costs time in proportion to the table, not to
//!   its square.

pub mod conntrack;
pub mod firewall;
pub mod ruleset;
pub mod sync;
pub mod timing;
