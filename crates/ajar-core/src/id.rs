//! Hierarchical resource ids and scopes.
//!
//! Every object lives at a path such as `/subscriptions/s1/resourceGroups/rg1/machines/vm1`.
//! Scopes are prefixes of that path (`/`, `/subscriptions/s1`,
//! `/subscriptions/s1/resourceGroups/rg1`, or a resource id itself); role assignments made at a
//! scope apply to everything beneath it.

use crate::FieldError;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest allowed name segment.
pub const MAX_NAME_LEN: usize = 64;

/// A validated name segment (subscription, resource group or resource name): 1 to 64 ASCII
/// letters, digits, `-`, `_` or `.`, starting with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Name(String);

impl Name {
    /// Parses a name segment.
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        if s.is_empty() {
            return Err(FieldError::new("", "name must not be empty"));
        }
        if s.len() > MAX_NAME_LEN {
            return Err(FieldError::new(
                "",
                format!("name is longer than {MAX_NAME_LEN} characters"),
            ));
        }
        if !s.starts_with(|c: char| c.is_ascii_alphanumeric()) || !s.chars().all(ok_char) {
            return Err(FieldError::new(
                "",
                format!(
                    "name {s:?} must start with a letter or digit and contain only letters, digits, '-', '_' and '.'"
                ),
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Name {
    type Error = FieldError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Name> for String {
    fn from(n: Name) -> String {
        n.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The kinds of resource that live inside a resource group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceKind {
    /// An inventory record of a machine.
    Machine,
    /// A network JIT access policy.
    JitNetworkAccessPolicy,
    /// A managed application (role access).
    Application,
    /// A role activation request on an application.
    JitRequest,
}

impl ResourceKind {
    /// The path segment of this kind (`machines`, `jitNetworkAccessPolicies`).
    pub fn segment(self) -> &'static str {
        match self {
            ResourceKind::Machine => "machines",
            ResourceKind::JitNetworkAccessPolicy => "jitNetworkAccessPolicies",
            ResourceKind::Application => "applications",
            ResourceKind::JitRequest => "jitRequests",
        }
    }

    fn from_segment(s: &str) -> Option<Self> {
        [
            ResourceKind::Machine,
            ResourceKind::JitNetworkAccessPolicy,
            ResourceKind::Application,
            ResourceKind::JitRequest,
        ]
        .into_iter()
        .find(|k| k.segment().eq_ignore_ascii_case(s))
    }
}

/// A position in the resource hierarchy: the root, a subscription, a resource group, or a
/// resource inside a resource group.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Scope {
    /// `/`: everything.
    Root,
    /// `/subscriptions/{sub}`.
    Subscription(Name),
    /// `/subscriptions/{sub}/resourceGroups/{rg}`.
    ResourceGroup(Name, Name),
    /// `/subscriptions/{sub}/resourceGroups/{rg}/{kind}/{name}`.
    Resource(ResourceId),
}

impl Scope {
    /// Parses a scope path. The vendor form
    /// `/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm` is
    /// accepted as the machine `/subscriptions/s/resourceGroups/rg/machines/vm`.
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        let bad = |why: &str| FieldError::new("", format!("invalid scope {s:?}: {why}"));
        if s == "/" {
            return Ok(Scope::Root);
        }
        let Some(rest) = s.strip_prefix('/') else {
            return Err(bad("it must start with '/'"));
        };
        let parts: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
        let name = |i: usize| -> Result<Name, FieldError> {
            Name::parse(parts[i]).map_err(|e| bad(&e.message))
        };
        let keyword = |i: usize, k: &str| parts[i].eq_ignore_ascii_case(k);
        match parts.len() {
            2 if keyword(0, "subscriptions") => Ok(Scope::Subscription(name(1)?)),
            4 if keyword(0, "subscriptions") && keyword(2, "resourceGroups") => {
                Ok(Scope::ResourceGroup(name(1)?, name(3)?))
            }
            6 if keyword(0, "subscriptions") && keyword(2, "resourceGroups") => {
                let kind = ResourceKind::from_segment(parts[4])
                    .ok_or_else(|| bad(&format!("unknown resource type {:?}", parts[4])))?;
                Ok(Scope::Resource(ResourceId {
                    subscription: name(1)?,
                    resource_group: name(3)?,
                    kind,
                    name: name(5)?,
                }))
            }
            8 if keyword(0, "subscriptions")
                && keyword(2, "resourceGroups")
                && keyword(4, "providers")
                && keyword(5, "Microsoft.Compute")
                && keyword(6, "virtualMachines") =>
            {
                Ok(Scope::Resource(ResourceId {
                    subscription: name(1)?,
                    resource_group: name(3)?,
                    kind: ResourceKind::Machine,
                    name: name(7)?,
                }))
            }
            _ => Err(bad(
                "expected /, /subscriptions/{sub}, /subscriptions/{sub}/resourceGroups/{rg} or a resource id",
            )),
        }
    }

    /// Whether `other` is this scope or lies beneath it.
    pub fn contains(&self, other: &Scope) -> bool {
        match (self, other) {
            (Scope::Root, _) => true,
            (Scope::Subscription(s), o) => o.subscription() == Some(s),
            (Scope::ResourceGroup(s, rg), o) => {
                o.subscription() == Some(s) && o.resource_group() == Some(rg)
            }
            (Scope::Resource(a), Scope::Resource(b)) => a == b,
            (Scope::Resource(_), _) => false,
        }
    }

    /// The subscription this scope is in, if any.
    pub fn subscription(&self) -> Option<&Name> {
        match self {
            Scope::Root => None,
            Scope::Subscription(s) | Scope::ResourceGroup(s, _) => Some(s),
            Scope::Resource(id) => Some(&id.subscription),
        }
    }

    /// The resource group this scope is in, if any.
    pub fn resource_group(&self) -> Option<&Name> {
        match self {
            Scope::Root | Scope::Subscription(_) => None,
            Scope::ResourceGroup(_, rg) => Some(rg),
            Scope::Resource(id) => Some(&id.resource_group),
        }
    }

    /// The scope directly above this one; `None` for the root.
    pub fn parent(&self) -> Option<Scope> {
        match self {
            Scope::Root => None,
            Scope::Subscription(_) => Some(Scope::Root),
            Scope::ResourceGroup(s, _) => Some(Scope::Subscription(s.clone())),
            Scope::Resource(id) => Some(id.resource_group_scope()),
        }
    }

    /// This scope and every scope above it, nearest first, ending with the root.
    pub fn ancestors(&self) -> Vec<Scope> {
        std::iter::successors(Some(self.clone()), Scope::parent).collect()
    }
}

impl TryFrom<String> for Scope {
    type Error = FieldError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Scope> for String {
    fn from(s: Scope) -> String {
        s.to_string()
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Root => f.write_str("/"),
            Scope::Subscription(s) => write!(f, "/subscriptions/{s}"),
            Scope::ResourceGroup(s, rg) => write!(f, "/subscriptions/{s}/resourceGroups/{rg}"),
            Scope::Resource(id) => id.fmt(f),
        }
    }
}

/// The id of a resource inside a resource group.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ResourceId {
    /// Subscription name.
    pub subscription: Name,
    /// Resource group name.
    pub resource_group: Name,
    /// What the resource is.
    pub kind: ResourceKind,
    /// The resource's own name.
    pub name: Name,
}

impl ResourceId {
    /// Builds an id from its parts.
    pub fn new(subscription: Name, resource_group: Name, kind: ResourceKind, name: Name) -> Self {
        Self {
            subscription,
            resource_group,
            kind,
            name,
        }
    }

    /// Parses a resource id of any kind.
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        match Scope::parse(s)? {
            Scope::Resource(id) => Ok(id),
            _ => Err(FieldError::new(
                "",
                format!(
                    "{s:?} is not a resource id (expected /subscriptions/{{sub}}/resourceGroups/{{rg}}/{{type}}/{{name}})"
                ),
            )),
        }
    }

    /// Parses a resource id that must be of the given kind.
    pub fn parse_kind(s: &str, kind: ResourceKind) -> Result<Self, FieldError> {
        let id = Self::parse(s)?;
        if id.kind != kind {
            return Err(FieldError::new(
                "",
                format!("{s:?} is not a {} id", kind.segment()),
            ));
        }
        Ok(id)
    }

    /// The resource group that holds this resource.
    pub fn resource_group_scope(&self) -> Scope {
        Scope::ResourceGroup(self.subscription.clone(), self.resource_group.clone())
    }

    /// A sibling resource of another kind in the same resource group.
    pub fn sibling(&self, kind: ResourceKind, name: Name) -> ResourceId {
        ResourceId::new(
            self.subscription.clone(),
            self.resource_group.clone(),
            kind,
            name,
        )
    }

    /// This id as a scope.
    pub fn scope(&self) -> Scope {
        Scope::Resource(self.clone())
    }
}

impl TryFrom<String> for ResourceId {
    type Error = FieldError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<ResourceId> for String {
    fn from(id: ResourceId) -> String {
        id.to_string()
    }
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "/subscriptions/{}/resourceGroups/{}/{}/{}",
            self.subscription,
            self.resource_group,
            self.kind.segment(),
            self.name
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(s: &str) -> Scope {
        Scope::parse(s).unwrap_or(Scope::Root)
    }

    #[test]
    fn scopes_round_trip() {
        for s in [
            "/",
            "/subscriptions/s1",
            "/subscriptions/s1/resourceGroups/rg-1",
            "/subscriptions/s1/resourceGroups/rg1/machines/vm.1",
            "/subscriptions/s1/resourceGroups/rg1/jitNetworkAccessPolicies/default",
        ] {
            assert_eq!(Scope::parse(s).map(|x| x.to_string()), Ok(s.to_owned()));
        }
    }

    #[test]
    fn vendor_machine_ids_are_accepted() {
        let id = ResourceId::parse(
            "/subscriptions/S/resourceGroups/RG/providers/Microsoft.Compute/virtualMachines/VM",
        );
        assert_eq!(
            id.map(|i| i.to_string()),
            Ok("/subscriptions/S/resourceGroups/RG/machines/VM".to_owned())
        );
    }

    #[test]
    fn bad_scopes_are_refused() {
        for s in [
            "",
            "subscriptions/s1",
            "/subscriptions",
            "/subscriptions/s1/resourceGroups",
            "/subscriptions/s1/foo/rg",
            "/subscriptions/s 1",
            "/subscriptions/s1/resourceGroups/rg/widgets/w",
            "/subscriptions/-a",
            "/subscriptions/s1/resourceGroups/rg/machines/vm/extra",
        ] {
            assert!(Scope::parse(s).is_err(), "{s:?} should be refused");
        }
        assert!(Name::parse(&"a".repeat(65)).is_err());
        assert!(Name::parse(&"a".repeat(64)).is_ok());
    }

    #[test]
    fn containment_follows_the_hierarchy() {
        let root = scope("/");
        let sub = scope("/subscriptions/s1");
        let rg = scope("/subscriptions/s1/resourceGroups/rg1");
        let other_rg = scope("/subscriptions/s1/resourceGroups/rg2");
        let vm = scope("/subscriptions/s1/resourceGroups/rg1/machines/vm1");
        let other_sub_vm = scope("/subscriptions/s2/resourceGroups/rg1/machines/vm1");
        assert!(root.contains(&vm) && sub.contains(&vm) && rg.contains(&vm) && vm.contains(&vm));
        assert!(!other_rg.contains(&vm));
        assert!(!sub.contains(&other_sub_vm));
        assert!(!vm.contains(&rg));
        assert!(!rg.contains(&sub));
        assert_eq!(
            vm.ancestors(),
            vec![vm.clone(), rg.clone(), sub.clone(), root.clone()]
        );
        assert_eq!(rg.ancestors(), vec![rg.clone(), sub.clone(), root.clone()]);
        assert_eq!(root.ancestors(), vec![root.clone()]);
    }
}
