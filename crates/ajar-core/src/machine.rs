//! Machines and the JIT state they are shown in.

use crate::FieldError;
use crate::id::Scope;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A machine's operating system; decides the default JIT port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Os {
    /// Linux: SSH on 22 by default.
    Linux,
    /// Windows: RDP on 3389 by default.
    Windows,
}

impl Os {
    /// Parses `linux` or `windows` (case-insensitive).
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        match s.to_ascii_lowercase().as_str() {
            "linux" => Ok(Os::Linux),
            "windows" => Ok(Os::Windows),
            _ => Err(FieldError::new(
                "",
                format!("os {s:?} is not one of linux, windows"),
            )),
        }
    }

    /// The wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            Os::Linux => "linux",
            Os::Windows => "windows",
        }
    }
}

impl TryFrom<String> for Os {
    type Error = FieldError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Os> for String {
    fn from(o: Os) -> String {
        o.as_str().to_owned()
    }
}

impl fmt::Display for Os {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How JIT applies to a machine, as the console's three tabs show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MachineState {
    /// A JIT policy covers the machine.
    Configured,
    /// No policy covers it yet, but one could: ajar recommends enabling JIT.
    NotConfigured,
    /// JIT cannot work for this machine, for the reason given.
    Unsupported(String),
}

impl MachineState {
    /// The state's name on the wire (`Configured`, `NotConfigured`, `Unsupported`).
    pub fn name(&self) -> &'static str {
        match self {
            MachineState::Configured => "Configured",
            MachineState::NotConfigured => "NotConfigured",
            MachineState::Unsupported(_) => "Unsupported",
        }
    }
}

/// What enforces grants on a machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enforcement<'a> {
    /// An agent guards it and was heard from recently.
    Live,
    /// The agent named here guards it, but has not been heard from recently.
    Silent(&'a str),
    /// No agent guards it.
    None,
}

impl Enforcement<'_> {
    /// Why access cannot be enforced on the machine `machine` (called `subject` in the text,
    /// e.g. "this machine" or its id), naming the fix; `None` when it can.
    pub fn missing(&self, subject: &str, machine: &str) -> Option<String> {
        match self {
            Enforcement::Live => None,
            Enforcement::None => Some(format!(
                "no live agent guards {subject}: register one with `ajar agent add NAME \
                 --machine {machine}` and start it on the host with `ajar agent --server URL \
                 --token TOKEN`"
            )),
            Enforcement::Silent(agent) => Some(format!(
                "no live agent guards {subject}: its agent {agent} has not been heard from in \
                 the last {} s; start it on the host with `ajar agent --server URL --token \
                 TOKEN`",
                crate::agent::LIVE_WINDOW.as_secs()
            )),
        }
    }
}

/// Decides the state of the machine `machine`. Unsupported wins: a policy on a machine
/// nothing enforces, in a scope where an admin turned JIT off, or whose enforcement point
/// reported that it cannot enforce access there (`reported`, its reason), protects nothing.
pub fn machine_state(
    machine: &str,
    has_policy: bool,
    enforcement: Enforcement<'_>,
    jit_disabled_at: Option<&Scope>,
    reported: Option<&str>,
) -> MachineState {
    if let Some(scope) = jit_disabled_at {
        return MachineState::Unsupported(format!("JIT is disabled for scope {scope}"));
    }
    if let Some(reason) = enforcement.missing("this machine", machine) {
        return MachineState::Unsupported(reason);
    }
    if let Some(reason) = reported {
        return MachineState::Unsupported(reason.to_owned());
    }
    if has_policy {
        MachineState::Configured
    } else {
        MachineState::NotConfigured
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsupported_wins_over_configured() {
        let m = "/subscriptions/s1/resourceGroups/rg/machines/vm1";
        let live = Enforcement::Live;
        assert_eq!(
            machine_state(m, true, live, None, None),
            MachineState::Configured
        );
        assert_eq!(
            machine_state(m, false, live, None, None),
            MachineState::NotConfigured
        );
        // The enforcement point's own reason wins over a policy, but not over a silent agent.
        let group = "no security group of ajar's can be attached to instance i-1";
        for has_policy in [true, false] {
            assert_eq!(
                machine_state(m, has_policy, live, None, Some(group)),
                MachineState::Unsupported(group.to_owned())
            );
        }
        let silent = machine_state(m, true, Enforcement::Silent("edge-1"), None, Some(group));
        assert!(
            matches!(&silent, MachineState::Unsupported(r) if r.contains("edge-1")),
            "{silent:?}"
        );
        let MachineState::Unsupported(reason) =
            machine_state(m, true, Enforcement::None, None, None)
        else {
            panic!("a machine no agent guards is Unsupported");
        };
        assert!(
            reason.starts_with("no live agent guards this machine"),
            "{reason}"
        );
        assert!(
            reason.contains(&format!("ajar agent add NAME --machine {m}"))
                && reason.contains("ajar agent --server URL --token TOKEN"),
            "the reason names the fix: {reason}"
        );
        let silent = Enforcement::Silent("edge-1")
            .missing(m, m)
            .unwrap_or_default();
        assert!(
            silent.contains("its agent edge-1 has not been heard from in the last 60 s")
                && silent.contains("ajar agent --server URL --token TOKEN"),
            "{silent}"
        );
        let sub = Scope::parse("/subscriptions/s1").unwrap_or(Scope::Root);
        assert_eq!(
            machine_state(m, false, live, Some(&sub), None).name(),
            "Unsupported"
        );
        assert!(Os::parse("Linux").is_ok() && Os::parse("bsd").is_err());
    }
}
