//! `ajar agent`: the enforcement point. It long-polls the control plane for the desired state of
//! the machines it guards and programs nftables so that exactly the granted ports are open.
//!
//! # Layout
//! - [`ruleset`]: desired state → nftables ruleset (pure: no IO, snapshot-tested).
//! - [`firewall`]: the [`firewall::Firewall`] trait; [`firewall::Nft`] applies a ruleset as one
//!   atomic `nft -f -` transaction to ajar's own table, [`firewall::Recording`] is the fake.
//! - [`conntrack`]: cutting established connections when a grant ends (per-policy option).
//! - [`sync`]: the loop: poll, apply, report, back off on errors.
//!
//! # Invariants
//! - Only the table `inet ajar` is ever touched; the script always names it explicitly.
//! - Every granted element carries a kernel timeout equal to the time left, so access closes on
//!   time even when the agent and the control plane are both gone (fail-closed).
//! - Each change replaces the whole table in one transaction: the kernel never sees a
//!   half-applied state, and a restart reconciles stale rules by construction.

pub mod conntrack;
pub mod firewall;
pub mod ruleset;
pub mod sync;
pub mod timing;
