//! Cutting established connections when a grant ends: delete their conntrack entries, so their
//! next packet is new, meets the closed port, and is reset. Off unless the policy asks for it.

use crate::ruleset::L4;
use ajar_api::wire::DesiredGrant;
use ajar_core::agent::AgentMode;
use ajar_core::net::SourcePrefix;
use std::net::IpAddr;
use std::path::Path;
use std::process::Command;

/// The `conntrack` argument lists that delete the connections a grant allowed.
pub fn cut_commands(
    mode: AgentMode,
    machine_addresses: &[IpAddr],
    gateway_address: Option<IpAddr>,
    grant: &DesiredGrant,
) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let destinations: Vec<(IpAddr, u16)> = match (mode, grant.mapped_port, gateway_address) {
        (AgentMode::Host | AgentMode::Aws, _, _) => machine_addresses
            .iter()
            .map(|a| (*a, grant.number.get()))
            .collect(),
        (AgentMode::Gateway, Some(mapped), Some(gw)) => vec![(gw, mapped)],
        (AgentMode::Gateway, _, _) => Vec::new(),
    };
    for (dest, port) in destinations {
        let family = if dest.is_ipv4() { "ipv4" } else { "ipv6" };
        for &l4 in L4::of(grant.protocol) {
            let proto = if l4 == L4::Tcp { "tcp" } else { "udp" };
            for source in &grant.sources {
                let mut cmd: Vec<String> = vec![
                    "-D".into(),
                    "-f".into(),
                    family.into(),
                    "-p".into(),
                    proto.into(),
                ];
                match source {
                    SourcePrefix::Any => {}
                    SourcePrefix::Net(n) if n.addr().is_ipv4() != dest.is_ipv4() => continue,
                    SourcePrefix::Net(n) => {
                        cmd.push("--orig-src".into());
                        cmd.push(n.to_string());
                    }
                }
                cmd.extend([
                    "--orig-dst".into(),
                    dest.to_string(),
                    "--orig-port-dst".into(),
                    port.to_string(),
                ]);
                out.push(cmd);
            }
        }
    }
    out
}

/// Runs the commands; "nothing to delete" is success.
pub fn run(program: &Path, commands: &[Vec<String>]) {
    for args in commands {
        match Command::new(program).args(args).output() {
            Ok(out) if out.status.code().is_some_and(|c| c <= 1) => {}
            Ok(out) => tracing::warn!(
                args = ?args,
                stderr = %String::from_utf8_lossy(&out.stderr).trim(),
                "conntrack failed"
            ),
            Err(e) => tracing::warn!(error = %e, "cannot run conntrack"),
        }
    }
}
