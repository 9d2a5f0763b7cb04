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

/// Decides a machine's state. Unsupported wins: a policy on a machine nothing enforces, or in
/// a scope where an admin turned JIT off, protects nothing.
pub fn machine_state(
    has_policy: bool,
    has_enforcement_point: bool,
    jit_disabled_at: Option<&Scope>,
) -> MachineState {
    if let Some(scope) = jit_disabled_at {
        return MachineState::Unsupported(format!("JIT is disabled for scope {scope}"));
    }
    if !has_enforcement_point {
        return MachineState::Unsupported("no enforcement point".to_owned());
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
        assert_eq!(machine_state(true, true, None), MachineState::Configured);
        assert_eq!(
            machine_state(false, true, None),
            MachineState::NotConfigured
        );
        assert_eq!(
            machine_state(true, false, None),
            MachineState::Unsupported("no enforcement point".into())
        );
        let sub = Scope::parse("/subscriptions/s1").unwrap_or(Scope::Root);
        assert_eq!(machine_state(false, true, Some(&sub)).name(), "Unsupported");
        assert!(Os::parse("Linux").is_ok() && Os::parse("bsd").is_err());
    }
}
