//! Domain of ajar: the types, validation rules, lifecycles and authorization logic that the
//! control plane enforces.
//!
//! # Layout
//! - [`id`]: hierarchical resource ids and scopes (`/subscriptions/s/resourceGroups/rg/machines/m`).
//! - [`net`]: ports, protocols and source prefixes with CIDR containment.
//! - [`duration`]: ISO 8601 access durations with ajar's bounds.
//! - [`policy`]: network JIT policies and their validation.
//! - [`machine`]: machines and their Configured / NotConfigured / Unsupported state.
//! - [`request`]: planning an access request against a policy, and the per-port lifecycle.
//! - [`lifecycle`]: the shared request lifecycle with approvals (pending → approved → active → …).
//! - [`rbac`]: actions, roles, assignments and the allow decision.
//! - [`principal`]: who acts.
//! - [`clock`]: the injectable clock.
//! - [`application`]: managed applications' JIT access policies.
//! - [`authorize`]: the in-memory index behind `POST /api/v1/authorize`.
//! - [`agent`]: enforcement agents: modes, mapped-port ranges, liveness.
//! - [`activity`]: the activity log's hash chain and its verification.
//!
//! # Invariant
//! This crate does no IO: no sockets, files, database or clock reads. Time is a parameter.

pub mod activity;
pub mod agent;
pub mod application;
pub mod authorize;
pub mod clock;
pub mod duration;
pub mod error;
pub mod id;
pub mod lifecycle;
pub mod machine;
pub mod net;
pub mod policy;
pub mod principal;
pub mod rbac;
pub mod request;

pub use error::{FieldError, Problem};
