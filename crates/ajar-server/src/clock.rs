//! The real clock, shared with the agent and the CLI: see [`ajar_api::clock`].

pub use ajar_api::clock::SystemClock;
