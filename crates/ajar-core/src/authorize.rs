//! "May principal P do action A at scope S now?" for the applications that rely on ajar:
//! standing role assignments plus active elevations (approved role activations inside their
//! window), answered from an in-memory index.

use crate::id::Scope;
use crate::rbac::RoleDefinition;
use jiff::Timestamp;
use std::collections::HashMap;
use std::sync::Arc;

/// Where a permission comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A standing role assignment (its id).
    Assignment(String),
    /// Standing access of an application's publisher (the application's id): read-only, or the
    /// eligible roles themselves when the application was created without JIT.
    Publisher(String),
    /// An elevation by a role activation request (its id), valid in `[from, until)`.
    Elevation {
        /// The request.
        request: String,
        /// Start of the window.
        from: Timestamp,
        /// End of the window.
        until: Timestamp,
    },
}

/// One permission of one principal.
#[derive(Debug, Clone)]
pub struct Grant {
    /// Where it applies (and beneath).
    pub scope: Scope,
    /// The role it gives.
    pub role: Arc<RoleDefinition>,
    /// Where it comes from.
    pub source: Source,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Allowed or not.
    pub allowed: bool,
    /// Why, in words.
    pub reason: String,
    /// The assignment or elevation that allows it.
    pub via: Option<Source>,
    /// When an elevation that allows it ends (none for standing access).
    pub expires_at: Option<Timestamp>,
}

/// Every principal's grants, ready to answer.
#[derive(Debug, Default)]
pub struct Index {
    by_principal: HashMap<String, Vec<Grant>>,
    groups_of: HashMap<String, Vec<String>>,
}

impl Index {
    /// An index over `(principal, grant)` pairs.
    pub fn new(grants: impl IntoIterator<Item = (String, Grant)>) -> Index {
        let mut by_principal: HashMap<String, Vec<Grant>> = HashMap::new();
        for (p, g) in grants {
            by_principal.entry(p).or_default().push(g);
        }
        Index {
            by_principal,
            groups_of: HashMap::new(),
        }
    }

    /// Adds the groups ajar itself knows (`member → group:NAME`); they count as if the asker
    /// had named them.
    pub fn with_groups(mut self, memberships: impl IntoIterator<Item = (String, String)>) -> Self {
        for (member, group) in memberships {
            self.groups_of.entry(member).or_default().push(group);
        }
        self
    }

    /// How many principals it knows.
    pub fn principals(&self) -> usize {
        self.by_principal.len()
    }

    /// Decides at `now`, for `principal` and the groups it belongs to (`group:NAME`). Standing
    /// access wins over an elevation; among elevations the one lasting longest is named.
    pub fn decide(
        &self,
        principal: &str,
        groups: &[String],
        action: &str,
        scope: &Scope,
        now: Timestamp,
    ) -> Answer {
        let mut best: Option<&Grant> = None;
        let known = self.groups_of.get(principal).map(Vec::as_slice);
        let candidates = std::iter::once(principal)
            .chain(groups.iter().map(String::as_str))
            .chain(known.unwrap_or_default().iter().map(String::as_str))
            .filter_map(|p| self.by_principal.get(p))
            .flatten();
        for g in candidates {
            if !g.scope.contains(scope) || !g.role.allows(action) {
                continue;
            }
            match &g.source {
                Source::Assignment(_) | Source::Publisher(_) => {
                    best = Some(g);
                    break;
                }
                Source::Elevation { from, until, .. } if *from <= now && now < *until => {
                    let longer = match best.map(|b| &b.source) {
                        Some(Source::Elevation { until: u, .. }) => until > u,
                        _ => true,
                    };
                    if longer {
                        best = Some(g);
                    }
                }
                Source::Elevation { .. } => {}
            }
        }
        match best {
            Some(g) => Answer {
                allowed: true,
                reason: match &g.source {
                    Source::Assignment(_) => {
                        format!("role {} assigned at {}", g.role.name, g.scope)
                    }
                    Source::Publisher(_) => {
                        format!("publisher's standing {} at {}", g.role.name, g.scope)
                    }
                    Source::Elevation { .. } => {
                        format!("role {} activated at {}", g.role.name, g.scope)
                    }
                },
                expires_at: match g.source {
                    Source::Elevation { until, .. } => Some(until),
                    Source::Assignment(_) | Source::Publisher(_) => None,
                },
                via: Some(g.source.clone()),
            },
            None => Answer {
                allowed: false,
                reason: format!("no assignment or active elevation allows {action} at {scope}"),
                via: None,
                expires_at: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rbac::built_in_roles;
    use jiff::SignedDuration;

    fn role(name: &str) -> Arc<RoleDefinition> {
        Arc::new(
            built_in_roles()
                .into_iter()
                .find(|r| r.name == name)
                .unwrap(),
        )
    }
    fn t(mins: i64) -> Timestamp {
        Timestamp::from_second(1_000_000)
            .unwrap()
            .checked_add(SignedDuration::from_mins(mins))
            .unwrap()
    }
    fn scope(s: &str) -> Scope {
        Scope::parse(s).unwrap()
    }
    const APP: &str = "/subscriptions/s/resourceGroups/rg/applications/crm";

    #[test]
    fn elevations_count_only_inside_their_window() {
        let index = Index::new([
            (
                "alice".to_owned(),
                Grant {
                    scope: scope("/subscriptions/s"),
                    role: role("SecurityReader"),
                    source: Source::Assignment("a1".into()),
                },
            ),
            (
                "alice".to_owned(),
                Grant {
                    scope: scope(APP),
                    role: role("JitAdmin"),
                    source: Source::Elevation {
                        request: "r1".into(),
                        from: t(10),
                        until: t(70),
                    },
                },
            ),
        ]);
        let write = "ajar.applications/write";
        assert!(
            !index.decide("alice", &[], write, &scope(APP), t(5)).allowed,
            "before the window"
        );
        let during = index.decide("alice", &[], write, &scope(APP), t(30));
        assert!(during.allowed);
        assert_eq!(during.expires_at, Some(t(70)));
        assert!(matches!(during.via, Some(Source::Elevation { .. })));
        assert!(
            !index
                .decide("alice", &[], write, &scope(APP), t(70))
                .allowed,
            "at its end"
        );
        assert!(
            !index
                .decide(
                    "alice",
                    &[],
                    write,
                    &scope("/subscriptions/s/resourceGroups/rg/applications/erp"),
                    t(30)
                )
                .allowed
        );
        // Standing access has no end.
        let read = index.decide("alice", &[], "ajar.applications/read", &scope(APP), t(30));
        assert_eq!((read.allowed, read.expires_at), (true, None));
        assert!(
            !index
                .decide("bob", &[], "ajar.applications/read", &scope(APP), t(30))
                .allowed
        );
    }

    #[test]
    fn groups_take_part() {
        let index = Index::new([(
            "group:ops".to_owned(),
            Grant {
                scope: scope(APP),
                role: role("JitAdmin"),
                source: Source::Assignment("g".into()),
            },
        )]);
        assert!(
            index
                .decide(
                    "carol",
                    &["group:ops".into()],
                    "ajar.applications/write",
                    &scope(APP),
                    t(0)
                )
                .allowed
        );
        assert!(
            !index
                .decide("carol", &[], "ajar.applications/write", &scope(APP), t(0))
                .allowed
        );
        let index = index.with_groups([("carol".to_owned(), "group:ops".to_owned())]);
        assert!(
            index
                .decide("carol", &[], "ajar.applications/write", &scope(APP), t(0))
                .allowed,
            "a membership ajar knows counts without being named"
        );
        assert!(
            !index
                .decide("dave", &[], "ajar.applications/write", &scope(APP), t(0))
                .allowed
        );
    }
}
