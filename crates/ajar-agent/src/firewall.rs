//! Where rulesets go: the kernel through `nft`, or a recording fake for tests.

use crate::ruleset::{Ruleset, SetSpec, render_update, uninstall_script};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

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
/// The first apply (and any change of the table's shape) replaces the whole table; later ones
/// add and delete just the elements that changed, which costs the kernel far less than
/// rebuilding chains.
///
/// Why `nft` and not netlink: the script is applied atomically by nftables itself, it is the
/// same text an operator reads with `nft list table inet ajar`, and it needs no C bindings at
/// build time (rustables needs libclang); a change costs a few milliseconds.
#[derive(Debug, Clone)]
pub struct Nft {
    program: PathBuf,
    /// What the table holds, and when it was written.
    applied: Option<(Vec<SetSpec>, Instant)>,
}

impl Default for Nft {
    fn default() -> Self {
        Self::new("nft")
    }
}

impl Nft {
    /// Uses the given `nft` binary.
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            applied: None,
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
        let after = ruleset.sets();
        let update = self
            .applied
            .as_ref()
            .and_then(|(before, at)| render_update(before, at.elapsed(), &after));
        if let Some(script) = update {
            match if script.is_empty() {
                Ok(())
            } else {
                self.run(&script)
            } {
                Ok(()) => {
                    self.applied = Some((after, Instant::now()));
                    return Ok(());
                }
                // An element the kernel expired meanwhile, or someone edited the table: start
                // over from the whole ruleset.
                Err(e) => {
                    tracing::info!(error = %e, "incremental update refused; replacing the table")
                }
            }
        }
        self.applied = None;
        self.run(&ruleset.render())?;
        self.applied = Some((after, Instant::now()));
        Ok(())
    }

    fn uninstall(&mut self) -> Result<(), FirewallError> {
        self.applied = None;
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
