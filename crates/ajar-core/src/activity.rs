//! The activity log's tamper evidence: each record's hash covers the previous record's hash and
//! the record's own canonical content, so editing, inserting or deleting a record breaks the
//! chain at that point.
//!
//! The canonical content is the record's fields serialized as JSON in a fixed order, with the
//! instant in microseconds and the details as the exact stored text.

use serde::Serialize;
use sha2::{Digest, Sha256};

/// The `prev_hash` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What an action came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The change was made.
    Succeeded,
    /// Authorization refused it.
    Denied,
    /// It was attempted and failed (e.g. a request the policy no longer allows).
    Failed,
}

impl Outcome {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "Succeeded",
            Outcome::Denied => "Denied",
            Outcome::Failed => "Failed",
        }
    }

    /// Parses a stored or wire name.
    pub fn parse(s: &str) -> Option<Self> {
        [Outcome::Succeeded, Outcome::Denied, Outcome::Failed]
            .into_iter()
            .find(|o| o.as_str() == s)
    }
}

/// One record's hashed content.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Content<'a> {
    /// Position in the chain, from 1 without gaps.
    pub seq: i64,
    /// When, in microseconds since the Unix epoch.
    pub at_micros: i64,
    /// Who acted (`system:scheduler` for the scheduler, `agent:NAME` for agents).
    pub principal: &'a str,
    /// The caller's address, when known.
    pub source_address: Option<&'a str>,
    /// The action (an RBAC action name, or a lifecycle step).
    pub action: &'a str,
    /// The object acted on.
    pub resource_id: &'a str,
    /// The access request concerned, if any.
    pub request_id: Option<&'a str>,
    /// The HTTP request id (`X-Request-Id`) that caused it, if any.
    pub correlation_id: Option<&'a str>,
    /// [`Outcome::as_str`].
    pub result: &'a str,
    /// Details as stored JSON text.
    pub details: &'a str,
}

/// The hash of a record that follows `prev_hash`: hex SHA-256 of `prev_hash`, a newline and the
/// canonical JSON of `content`.
pub fn link_hash(prev_hash: &str, content: &Content<'_>) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(b"\n");
    // Serializing a struct of strings and integers cannot fail.
    h.update(serde_json::to_vec(content).unwrap_or_default());
    hex::encode(h.finalize())
}

/// Where and why a chain is broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    /// The first record that does not verify.
    pub seq: i64,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Checks records in order, one at a time, in constant memory.
#[derive(Debug, Clone)]
pub struct ChainCheck {
    prev_seq: i64,
    prev_hash: String,
}

impl Default for ChainCheck {
    fn default() -> Self {
        Self {
            prev_seq: 0,
            prev_hash: GENESIS.to_owned(),
        }
    }
}

impl ChainCheck {
    /// Checks the next record: its position, its link to the previous one and its own hash.
    pub fn push(
        &mut self,
        content: &Content<'_>,
        prev_hash: &str,
        hash: &str,
    ) -> Result<(), Broken> {
        let broken = |reason| {
            Err(Broken {
                seq: content.seq,
                reason,
            })
        };
        if content.seq != self.prev_seq + 1 {
            return broken("a record is missing before this one");
        }
        if prev_hash != self.prev_hash {
            return broken("the link to the previous record does not match");
        }
        if link_hash(prev_hash, content) != hash {
            return broken("the record's content does not match its hash");
        }
        self.prev_seq = content.seq;
        self.prev_hash = hash.to_owned();
        Ok(())
    }

    /// How many records verified so far.
    pub fn records(&self) -> i64 {
        self.prev_seq
    }

    /// The hash of the last verified record ([`GENESIS`] when none), worth keeping outside
    /// ajar: a later verify that does not reach it shows records removed from the end.
    pub fn head(&self) -> &str {
        &self.prev_hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content(seq: i64, details: &str) -> Content<'_> {
        Content {
            seq,
            at_micros: 1_000 * seq,
            principal: "alice",
            source_address: Some("10.0.0.1"),
            action: "ajar.machines/write",
            resource_id: "/subscriptions/s/resourceGroups/rg/machines/m",
            request_id: None,
            correlation_id: Some("c1"),
            result: Outcome::Succeeded.as_str(),
            details,
        }
    }

    fn chain(n: i64) -> Vec<(String, String)> {
        let mut prev = GENESIS.to_owned();
        (1..=n)
            .map(|seq| {
                let hash = link_hash(&prev, &content(seq, "{}"));
                let link = (prev.clone(), hash.clone());
                prev = hash;
                link
            })
            .collect()
    }

    #[test]
    fn an_intact_chain_verifies_and_reports_its_head() {
        let links = chain(3);
        let mut check = ChainCheck::default();
        for (i, (prev, hash)) in links.iter().enumerate() {
            check
                .push(&content(i as i64 + 1, "{}"), prev, hash)
                .unwrap();
        }
        assert_eq!((check.records(), check.head()), (3, links[2].1.as_str()));
    }

    #[test]
    fn edits_gaps_and_relinks_are_caught_at_the_first_bad_record() {
        let links = chain(3);
        // An edited detail.
        let mut check = ChainCheck::default();
        check
            .push(&content(1, "{}"), &links[0].0, &links[0].1)
            .unwrap();
        let err = check
            .push(&content(2, r#"{"x":1}"#), &links[1].0, &links[1].1)
            .unwrap_err();
        assert_eq!(err.seq, 2);
        assert!(err.reason.contains("content"));
        // A deleted record.
        let mut check = ChainCheck::default();
        check
            .push(&content(1, "{}"), &links[0].0, &links[0].1)
            .unwrap();
        let err = check
            .push(&content(3, "{}"), &links[2].0, &links[2].1)
            .unwrap_err();
        assert_eq!((err.seq, err.reason.contains("missing")), (3, true));
        // A record rehashed on its own, but not relinked.
        let mut check = ChainCheck::default();
        check
            .push(&content(1, "{}"), &links[0].0, &links[0].1)
            .unwrap();
        let forged = link_hash(GENESIS, &content(2, "{}"));
        let err = check.push(&content(2, "{}"), GENESIS, &forged).unwrap_err();
        assert!(err.reason.contains("link"));
    }

    #[test]
    fn every_field_is_covered_by_the_hash() {
        let base = content(1, "{}");
        let h = link_hash(GENESIS, &base);
        let variants = [
            Content {
                at_micros: 7,
                ..base.clone()
            },
            Content {
                principal: "bob",
                ..base.clone()
            },
            Content {
                source_address: None,
                ..base.clone()
            },
            Content {
                action: "x",
                ..base.clone()
            },
            Content {
                resource_id: "/",
                ..base.clone()
            },
            Content {
                request_id: Some("r"),
                ..base.clone()
            },
            Content {
                correlation_id: None,
                ..base.clone()
            },
            Content {
                result: "Denied",
                ..base.clone()
            },
        ];
        for v in &variants {
            assert_ne!(link_hash(GENESIS, v), h, "{v:?}");
        }
        assert_ne!(link_hash("1", &base), h);
    }

    #[test]
    fn outcomes_round_trip() {
        for o in [Outcome::Succeeded, Outcome::Denied, Outcome::Failed] {
            assert_eq!(Outcome::parse(o.as_str()), Some(o));
        }
        assert_eq!(Outcome::parse("ok"), None);
    }
}
