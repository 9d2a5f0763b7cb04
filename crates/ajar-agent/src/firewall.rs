//! Where rulesets go: the kernel through `nft`, or a recording fake for tests.

use crate::ruleset::{Ruleset, uninstall_script};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Why applying a ruleset failed.
#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    /// `nft` could not be started.
    #[error("cannot run {program}: {error}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        error: std::io::Error,
    },
    /// `nft` refused the script.
    #[error("nft refused the ruleset: {0}")]
    Refused(String),
}

/// Applies whole rulesets atomically.
pub trait Firewall: Send {
    /// Replaces ajar's table with `ruleset`, all or nothing.
    fn apply(&mut self, ruleset: &Ruleset) -> Result<(), FirewallError>;
    /// Removes ajar's table.
    fn uninstall(&mut self) -> Result<(), FirewallError>;
}

/// The kernel, through the `nft` command: each call is one `nft -f -` transaction.
///
/// Why `nft` and not netlink: the script is applied atomically by nftables itself, it is the
/// same text an operator reads with `nft list table inet ajar`, it needs no C bindings at build
/// time (rustables needs libclang), and at about 3 ms per change it is far below the latency
/// that matters here.
#[derive(Debug, Clone)]
pub struct Nft {
    program: PathBuf,
}

impl Default for Nft {
    fn default() -> Self {
        Self {
            program: PathBuf::from("nft"),
        }
    }
}

impl Nft {
    /// Uses the given `nft` binary.
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
        }
    }

    fn run(&self, script: &str) -> Result<(), FirewallError> {
        let spawn_error = |error| FirewallError::Spawn {
            program: self.program.display().to_string(),
            error,
        };
        let mut child = Command::new(&self.program)
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(spawn_error)?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(script.as_bytes()).map_err(spawn_error)?;
        }
        let out = child.wait_with_output().map_err(spawn_error)?;
        if out.status.success() {
            Ok(())
        } else {
            Err(FirewallError::Refused(
                String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            ))
        }
    }
}

impl Firewall for Nft {
    fn apply(&mut self, ruleset: &Ruleset) -> Result<(), FirewallError> {
        self.run(&ruleset.render())
    }

    fn uninstall(&mut self) -> Result<(), FirewallError> {
        self.run(&uninstall_script())
    }
}

/// A fake that records what it was asked to apply.
#[derive(Debug, Default, Clone)]
pub struct Recording {
    /// Every ruleset applied, in order.
    pub applied: Vec<Ruleset>,
    /// How many times the table was removed.
    pub uninstalled: usize,
}

impl Firewall for Recording {
    fn apply(&mut self, ruleset: &Ruleset) -> Result<(), FirewallError> {
        self.applied.push(ruleset.clone());
        Ok(())
    }

    fn uninstall(&mut self) -> Result<(), FirewallError> {
        self.uninstalled += 1;
        Ok(())
    }
}
