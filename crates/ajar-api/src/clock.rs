//! The real clock: the only place ajar reads the system time (the server, the agent and the
//! CLI all read it through [`SystemClock`]; tests use `ajar_core::clock::ManualClock`).

pub use ajar_core::clock::Clock;
use jiff::Timestamp;

/// Reads the system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods, reason = "the one sanctioned clock read")]
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}
