//! The bodies of ajar's fuzz targets: each takes arbitrary bytes, feeds them to one parser
//! (and what consumes its output), and must return without panicking, hanging or allocating
//! without bound. libFuzzer drives them from `fuzz/` (`fuzz/run.sh`); the tests below replay
//! every kept input (`fuzz/corpus/TARGET/` seeds and `fuzz/regressions/TARGET/` findings) so a
//! fixed crash stays fixed in the ordinary test suite.

use ajar_api::wire;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// A target: its name (the directory of its kept inputs) and its body.
pub type Target = (&'static str, fn(&[u8]));

/// Every target.
pub const TARGETS: [Target; 7] = [
    ("duration", duration),
    ("address", address),
    ("resource_id", resource_id),
    ("api_body", api_body),
    ("apply_file", apply_file),
    ("desired_state", desired_state),
    ("jwt", jwt),
];

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// ISO 8601 durations (the API's) and human ones (the CLI's), and access durations' limits.
pub fn duration(data: &[u8]) {
    let Some(s) = text(data) else { return };
    if let Ok(d) = ajar_core::duration::parse_iso8601(s) {
        let _ = ajar_core::duration::AccessDuration::new(d);
    }
    let _ = ajar_core::duration::AccessDuration::parse(s);
    let _ = ajar_cli::parse::duration(s);
    let _ = ajar_cli::parse::std_duration(s);
    let _ = ajar_cli::parse::instant(s);
}

/// Source prefixes (`*`, addresses, CIDRs), ports, protocols, and containment between two.
pub fn address(data: &[u8]) {
    let Some(s) = text(data) else { return };
    let (a, b) = s.split_once('|').unwrap_or((s, "*"));
    if let (Ok(x), Ok(y)) = (
        ajar_core::net::SourcePrefix::parse(a),
        ajar_core::net::SourcePrefix::parse(b),
    ) {
        let _ = x.contains(&y);
        // The text form must parse back to the same prefix.
        assert_eq!(
            ajar_core::net::SourcePrefix::parse(&x.to_string()).ok(),
            Some(x)
        );
    }
    let _ = ajar_core::net::Protocol::parse(s);
    let _ = ajar_cli::parse::port(s);
}

/// Scopes, resource ids, names and principals, and containment between two scopes.
pub fn resource_id(data: &[u8]) {
    let Some(s) = text(data) else { return };
    let (a, b) = s.split_once('|').unwrap_or((s, "/"));
    if let (Ok(x), Ok(y)) = (
        ajar_core::id::Scope::parse(a),
        ajar_core::id::Scope::parse(b),
    ) {
        let _ = x.contains(&y);
        let _ = x.ancestors();
        assert_eq!(ajar_core::id::Scope::parse(&x.to_string()).ok(), Some(x));
    }
    let _ = ajar_core::id::ResourceId::parse(s);
    let _ = ajar_core::id::Name::parse(s);
    let _ = ajar_core::principal::Principal::parse(s);
    let _ = ajar_core::rbac::ActionPattern::parse(s);
    let _ = ajar_cli::parse::id(s);
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Option<T> {
    serde_json::from_slice(body).ok()
}

/// Every request body the API takes (18 types; the first byte picks which), parsed as the
/// server parses it and checked as the server checks it.
pub fn api_body(data: &[u8]) {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    match which % 18 {
        0 => {
            if let Some(b) = parse::<wire::MachineBody>(body) {
                let _ = b.properties.validate();
            }
        }
        1 => {
            if let Some(b) = parse::<wire::PolicyBody>(body) {
                let _ = b.to_domain();
            }
        }
        2 => {
            if let Some(b) = parse::<wire::InitiateBody>(body) {
                let _ = b.to_domain();
            }
        }
        3 => drop(parse::<wire::ApplicationBody>(body)),
        4 => drop(parse::<wire::EligibleRoleBody>(body)),
        5 => drop(parse::<wire::JitRequestBody>(body)),
        6 => drop(parse::<wire::ExtendBody>(body)),
        7 => drop(parse::<wire::DecisionBody>(body)),
        8 => drop(parse::<wire::AuthorizeBody>(body)),
        9 => drop(parse::<wire::AgentCreate>(body)),
        10 => drop(parse::<wire::AgentReport>(body)),
        11 => drop(parse::<wire::RoleAssignmentBody>(body)),
        12 => drop(parse::<wire::RoleDefinitionBody>(body)),
        13 => drop(parse::<wire::NotificationSubscriptionBody>(body)),
        14 => drop(parse::<wire::GroupBody>(body)),
        15 => drop(parse::<wire::TokenCreate>(body)),
        16 => drop(parse::<wire::JitSettings>(body)),
        _ => drop(parse::<wire::EnableJitBody>(body)),
    }
}

/// `ajar apply` files: JSON or YAML, into the file's structure, and compared with itself.
pub fn apply_file(data: &[u8]) {
    let Some(s) = text(data) else { return };
    let Ok(doc) = ajar_cli::network::parse_document(s, "fuzz") else {
        return;
    };
    let mut out = Vec::new();
    ajar_cli::apply::differences("", &doc, &doc, &mut out);
    assert!(out.is_empty(), "a document differs from itself: {out:?}");
    let _ = ajar_cli::apply::Desired::from_document(doc, "fuzz");
}

/// The agent's desired state, as read from the server, rendered into an nftables script.
pub fn desired_state(data: &[u8]) {
    let Some(state) = parse::<wire::DesiredState>(data) else {
        return;
    };
    let rules = ajar_agent::ruleset::Ruleset::from_desired(&state, Duration::from_millis(1500));
    let _ = rules.render();
}

/// Bearer JWTs: shape, unverified claims, and the claim checks applied after verification.
pub fn jwt(data: &[u8]) {
    let Some(s) = text(data) else { return };
    let _ = ajar_oidc::looks_like_jwt(s);
    let _ = ajar_oidc::flows::unverified_claim(s, "exp");
    if let Ok(serde_json::Value::Object(claims)) = serde_json::from_str(s) {
        let rules = ajar_oidc::ClaimRules {
            issuer: "https://idp.example.com".into(),
            audience: "ajar".into(),
            principal_claim: "sub".into(),
            groups_claim: "groups".into(),
            principal_prefix: String::new(),
        };
        let now = jiff::Timestamp::from_second(1_800_000_000).unwrap_or_default();
        let _ = ajar_oidc::claims::check(&claims, &rules, now);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::TARGETS;
    use std::path::PathBuf;

    fn kept(kind: &str, target: &str) -> Vec<(PathBuf, Vec<u8>)> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz")
            .join(kind)
            .join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut files: Vec<(PathBuf, Vec<u8>)> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .map(|p| {
                let data = std::fs::read(&p).unwrap();
                (p, data)
            })
            .collect();
        files.sort();
        files
    }

    /// The seeds must reach past parsing, or the fuzzer starts from nothing useful.
    #[test]
    fn the_desired_state_seeds_parse() {
        for (path, data) in kept("corpus", "desired_state") {
            let parsed: Result<ajar_api::wire::DesiredState, _> = serde_json::from_slice(&data);
            assert!(parsed.is_ok(), "{}: {parsed:?}", path.display());
        }
    }

    #[test]
    fn every_kept_input_runs_clean() {
        let mut seeds = 0;
        for (name, body) in TARGETS {
            let inputs: Vec<_> = kept("corpus", name)
                .into_iter()
                .chain(kept("regressions", name))
                .collect();
            assert!(
                !inputs.is_empty(),
                "{name} has no seed inputs in fuzz/corpus/{name}"
            );
            for (path, data) in inputs {
                // A panic names the file through the test's failure.
                eprintln!("{name}: {}", path.display());
                body(&data);
                seeds += 1;
            }
        }
        assert!(seeds >= TARGETS.len());
    }
}
