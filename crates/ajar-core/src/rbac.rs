//! Role-based access control: actions, roles (sets of action patterns), assignments of a role
//! to a principal at a scope, and the decision "may this principal do this action here".
//!
//! Deny by default: nothing is allowed unless an assignment at the target scope or above it
//! names a role whose patterns match the action.

use crate::FieldError;
use crate::id::Scope;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The actions ajar checks, one per endpoint. Names follow the vendor's JIT permission table in
/// ajar's own namespace.
pub mod actions {
    /// Read machines.
    pub const MACHINES_READ: &str = "ajar.machines/read";
    /// Create or change machines.
    pub const MACHINES_WRITE: &str = "ajar.machines/write";
    /// Delete machines.
    pub const MACHINES_DELETE: &str = "ajar.machines/delete";
    /// Read JIT network access policies.
    pub const POLICIES_READ: &str = "ajar.jit/policies/read";
    /// Create or change JIT network access policies (including "enable with defaults").
    pub const POLICIES_WRITE: &str = "ajar.jit/policies/write";
    /// Delete JIT network access policies.
    pub const POLICIES_DELETE: &str = "ajar.jit/policies/delete";
    /// Request access under a policy ("initiate").
    pub const POLICIES_INITIATE: &str = "ajar.jit/policies/initiate/action";
    /// Read anyone's access requests and the open grants of machines.
    pub const REQUESTS_READ: &str = "ajar.jit/requests/read";
    /// Revoke anyone's access request.
    pub const REQUESTS_REVOKE: &str = "ajar.jit/requests/revoke/action";
    /// Approve or deny requests that need approval.
    pub const REQUESTS_APPROVE: &str = "ajar.requests/approve/action";
    /// Read per-scope JIT settings.
    pub const SETTINGS_READ: &str = "ajar.jit/settings/read";
    /// Turn JIT on or off for a scope.
    pub const SETTINGS_WRITE: &str = "ajar.jit/settings/write";
    /// Read role definitions and assignments.
    pub const RBAC_READ: &str = "ajar.rbac/read";
    /// Create or delete role definitions and assignments.
    pub const RBAC_WRITE: &str = "ajar.rbac/write";
    /// Read managed applications and their eligible roles.
    pub const APPLICATIONS_READ: &str = "ajar.applications/read";
    /// Create or change managed applications and their eligible roles.
    pub const APPLICATIONS_WRITE: &str = "ajar.applications/write";
    /// Delete managed applications.
    pub const APPLICATIONS_DELETE: &str = "ajar.applications/delete";
    /// Request role activations (and cancel or revoke one's own).
    pub const JIT_REQUESTS_WRITE: &str = "ajar.jitRequests/write";
    /// Read anyone's role activation requests.
    pub const JIT_REQUESTS_READ: &str = "ajar.jitRequests/read";
    /// Ask `POST /api/v1/authorize` about a scope.
    pub const AUTHORIZE: &str = "ajar.authorize/action";
    /// Read agents and their health.
    pub const AGENTS_READ: &str = "ajar.agents/read";
    /// Register and remove agents.
    pub const AGENTS_WRITE: &str = "ajar.agents/write";
    /// List every principal's API tokens.
    pub const TOKENS_READ: &str = "ajar.tokens/read";
    /// Create or revoke API tokens for any principal.
    pub const TOKENS_WRITE: &str = "ajar.tokens/write";
    /// Scrape `GET /metrics` (checked at `/`).
    pub const METRICS_READ: &str = "ajar.metrics/read";
    /// Read and download the activity log at a scope (its verification needs `/`).
    pub const ACTIVITY_READ: &str = "ajar.activity/read";
    /// Read notification subscriptions and their deliveries.
    pub const NOTIFICATIONS_READ: &str = "ajar.notifications/read";
    /// Create, change, delete notification subscriptions and retry dead deliveries.
    pub const NOTIFICATIONS_WRITE: &str = "ajar.notifications/write";

    /// Every action, for validating custom roles and for documentation.
    pub const ALL: &[&str] = &[
        MACHINES_READ,
        MACHINES_WRITE,
        MACHINES_DELETE,
        POLICIES_READ,
        POLICIES_WRITE,
        POLICIES_DELETE,
        POLICIES_INITIATE,
        REQUESTS_READ,
        REQUESTS_REVOKE,
        REQUESTS_APPROVE,
        SETTINGS_READ,
        SETTINGS_WRITE,
        RBAC_READ,
        RBAC_WRITE,
        APPLICATIONS_READ,
        APPLICATIONS_WRITE,
        APPLICATIONS_DELETE,
        JIT_REQUESTS_WRITE,
        JIT_REQUESTS_READ,
        AUTHORIZE,
        AGENTS_READ,
        AGENTS_WRITE,
        TOKENS_READ,
        TOKENS_WRITE,
        METRICS_READ,
        ACTIVITY_READ,
        NOTIFICATIONS_READ,
        NOTIFICATIONS_WRITE,
    ];
}

/// An action pattern in a role: an action name in which `*` matches any run of characters
/// (`*`, `ajar.jit/*`, `*/read`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ActionPattern(String);

impl ActionPattern {
    /// Parses a pattern of one of ajar's roles; it must match at least one of ajar's actions,
    /// so typos are caught when a role is written rather than silently granting nothing.
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        let p = Self::parse_shape(s)?;
        if !actions::ALL.iter().any(|a| p.matches(a)) {
            return Err(FieldError::new(
                "",
                format!("action {s:?} matches no known action"),
            ));
        }
        Ok(p)
    }

    /// Parses a pattern of an application's role; it must match at least one of the actions the
    /// application declared.
    pub fn parse_among(s: &str, declared: &ApplicationActions) -> Result<Self, FieldError> {
        let p = Self::parse_shape(s)?;
        if !declared.actions.iter().any(|a| p.matches(a)) {
            return Err(FieldError::new(
                "",
                format!(
                    "action {s:?} matches none of the actions the application declared ({})",
                    declared.describe()
                ),
            ));
        }
        Ok(p)
    }

    fn parse_shape(s: &str) -> Result<Self, FieldError> {
        let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '/' | '*' | '_' | '-');
        if s.is_empty() || s.len() > 200 || !s.chars().all(ok) {
            return Err(FieldError::new(
                "",
                format!("action {s:?} may only contain letters, digits and . / * _ -"),
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// Whether the pattern covers `action`.
    pub fn matches(&self, action: &str) -> bool {
        glob(self.0.as_bytes(), action.as_bytes())
    }

    /// The pattern as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `*`-only glob matching in time linear in the pattern and the text: the pieces between stars
/// are matched left to right, each at its first place after the one before (which is enough:
/// an earlier place never leaves less room for the rest), the first piece at the start and the
/// last at the end.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let mut pieces = pattern.split(|&c| c == b'*');
    let first = pieces.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let mut pieces: Vec<&[u8]> = pieces.collect();
    let Some(last) = pieces.pop() else {
        // No star: the whole text is the first piece.
        return rest.is_empty();
    };
    for piece in pieces {
        match find(rest, piece) {
            Some(at) => rest = &rest[at + piece.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// Where `needle` first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    // Both are ASCII (checked when parsed), so byte offsets are character boundaries.
    std::str::from_utf8(haystack)
        .ok()
        .zip(std::str::from_utf8(needle).ok())
        .and_then(|(h, n)| h.find(n))
}

impl TryFrom<String> for ActionPattern {
    type Error = FieldError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<ActionPattern> for String {
    fn from(p: ActionPattern) -> String {
        p.0
    }
}

impl fmt::Display for ActionPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The namespace of ajar's own actions (`ajar.…`); no application may declare it.
pub const AJAR_NAMESPACE: &str = "ajar";

/// A named set of action patterns, answering for the actions of one namespace only: ajar's
/// roles for `ajar.…`, an application's roles for the actions that application declared. So
/// `*` in ajar's `Owner` never allows an application's action, and an application's role
/// never allows one of ajar's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleDefinition {
    /// Role name (built-in names are reserved).
    pub name: String,
    /// What the role is for.
    pub description: String,
    /// Patterns of the actions the role allows.
    pub actions: Vec<ActionPattern>,
    /// Whether the role ships with ajar (and so cannot be changed or deleted).
    pub built_in: bool,
    /// The namespace whose actions it answers for ([`AJAR_NAMESPACE`] or an application's).
    pub namespace: String,
}

impl RoleDefinition {
    /// One of ajar's roles (built in or custom).
    pub fn ajar(
        name: &str,
        description: &str,
        actions: Vec<ActionPattern>,
        built_in: bool,
    ) -> Self {
        Self {
            name: name.to_owned(),
            description: description.to_owned(),
            actions,
            built_in,
            namespace: AJAR_NAMESPACE.to_owned(),
        }
    }

    /// An application's role: its patterns resolved against the actions the application
    /// declared, so it allows exactly the declared actions some pattern matches (and none when
    /// the application declares nothing).
    pub fn of_application(
        name: &str,
        description: &str,
        patterns: &[String],
        declared: &ApplicationActions,
    ) -> Self {
        let allowed = declared.matching(patterns);
        Self::of_application_allowing(name, description, &declared.namespace, allowed)
    }

    /// An application's role that allows exactly `allowed`, actions of `namespace` (as
    /// [`ApplicationActions::matching`] resolved them when the role was written).
    pub fn of_application_allowing(
        name: &str,
        description: &str,
        namespace: &str,
        allowed: Vec<String>,
    ) -> Self {
        Self {
            name: name.to_owned(),
            description: description.to_owned(),
            actions: allowed.into_iter().map(ActionPattern).collect(),
            built_in: false,
            namespace: namespace.to_owned(),
        }
    }

    /// Whether the role allows `action`: the action is in the role's namespace and one of its
    /// patterns matches it.
    pub fn allows(&self, action: &str) -> bool {
        in_namespace(action, &self.namespace) && self.actions.iter().any(|p| p.matches(action))
    }
}

/// Whether `action` lies in `namespace` (`crm.orders/read` lies in `crm`).
fn in_namespace(action: &str, namespace: &str) -> bool {
    action
        .strip_prefix(namespace)
        .is_some_and(|rest| rest.starts_with('.'))
}

/// Most actions one application may declare.
pub const MAX_APPLICATION_ACTIONS: usize = 1000;

/// The actions an application understands, all in a namespace of its own (`crm` for
/// `crm.orders/read`), which its roles are written over and `authorize` answers about.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ApplicationActions {
    /// The namespace: 1 to 64 letters, digits, `-` or `_`, never `ajar`.
    pub namespace: String,
    /// The actions, each `NAMESPACE.` followed by letters, digits and `. / _ -`.
    pub actions: Vec<String>,
}

impl ApplicationActions {
    /// Checks a declaration: the namespace's shape, and every action in it, without `*`, at most
    /// [`MAX_APPLICATION_ACTIONS`]. Duplicates are dropped and the actions sorted.
    pub fn parse(namespace: &str, actions: &[String]) -> Result<Self, FieldError> {
        let name_ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_');
        if namespace.is_empty() || namespace.len() > 64 || !namespace.chars().all(name_ok) {
            return Err(FieldError::new(
                "namespace",
                format!("namespace {namespace:?} must be 1 to 64 letters, digits, '-' or '_'"),
            ));
        }
        if namespace.eq_ignore_ascii_case(AJAR_NAMESPACE) {
            return Err(FieldError::new(
                "namespace",
                "the namespace ajar holds ajar's own actions; choose the application's own",
            ));
        }
        if actions.len() > MAX_APPLICATION_ACTIONS {
            return Err(FieldError::new(
                "actions",
                format!("at most {MAX_APPLICATION_ACTIONS} actions"),
            ));
        }
        let action_ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '/' | '_' | '-');
        let mut checked = Vec::with_capacity(actions.len());
        for (i, a) in actions.iter().enumerate() {
            let rest = a.strip_prefix(namespace).and_then(|r| r.strip_prefix('.'));
            if a.len() > 200 || !a.chars().all(action_ok) || rest.is_none_or(str::is_empty) {
                return Err(FieldError::new(
                    format!("actions[{i}]"),
                    format!(
                        "action {a:?} must be {namespace}. followed by letters, digits and . / _ - (no *), at most 200 characters"
                    ),
                ));
            }
            checked.push(a.clone());
        }
        checked.sort_unstable();
        checked.dedup();
        Ok(Self {
            namespace: namespace.to_owned(),
            actions: checked,
        })
    }

    /// The declared actions some pattern matches, in order.
    pub fn matching(&self, patterns: &[String]) -> Vec<String> {
        let globs: Vec<ActionPattern> = patterns
            .iter()
            .filter_map(|p| ActionPattern::parse_shape(p).ok())
            .collect();
        self.actions
            .iter()
            .filter(|a| globs.iter().any(|g| g.matches(a)))
            .cloned()
            .collect()
    }

    /// The namespace and how many actions, for messages.
    fn describe(&self) -> String {
        if self.actions.is_empty() {
            "none declared".to_owned()
        } else {
            format!("{} action(s) in {}", self.actions.len(), self.namespace)
        }
    }
}

/// Checks a custom role name: 1 to 64 letters, digits, `-` or `_`.
pub fn parse_role_name(s: &str) -> Result<String, FieldError> {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_');
    if s.is_empty() || s.len() > 64 || !s.chars().all(ok) {
        return Err(FieldError::new(
            "",
            format!("role name {s:?} must be 1 to 64 letters, digits, '-' or '_'"),
        ));
    }
    Ok(s.to_owned())
}

fn role(name: &str, description: &str, patterns: &[&str]) -> RoleDefinition {
    let actions = patterns
        .iter()
        .map(|p| ActionPattern((*p).to_owned()))
        .collect();
    RoleDefinition::ajar(name, description, actions, true)
}

/// The roles every ajar installation has.
pub fn built_in_roles() -> Vec<RoleDefinition> {
    use actions::*;
    vec![
        role(
            "Owner",
            "Everything, including access control and tokens",
            &["*"],
        ),
        role(
            "JitAdmin",
            "Manage machines, agents, applications, JIT policies, settings and requests; no access control",
            &[
                "ajar.machines/*",
                "ajar.agents/*",
                "ajar.applications/*",
                "ajar.jitRequests/*",
                "ajar.jit/*",
                "ajar.notifications/*",
                REQUESTS_APPROVE,
                ACTIVITY_READ,
            ],
        ),
        role(
            "SecurityReader",
            "Read everything, change nothing",
            &["*/read"],
        ),
        role(
            "JitRequester",
            "Least privilege to request access: read policies, initiate network access, request role activation; nothing else",
            &[POLICIES_READ, POLICIES_INITIATE, JIT_REQUESTS_WRITE],
        ),
        role(
            "Approver",
            "Decide on requests that need approval, and read what is needed to decide",
            &[
                REQUESTS_APPROVE,
                REQUESTS_READ,
                POLICIES_READ,
                MACHINES_READ,
                APPLICATIONS_READ,
                JIT_REQUESTS_READ,
            ],
        ),
    ]
}

/// Whether `name` is one of the roles every ajar installation has.
pub fn is_built_in(name: &str) -> bool {
    built_in_roles().iter().any(|r| r.name == name)
}

/// What one principal may do: each entry is a scope and the role assigned there.
#[derive(Debug, Clone, Default)]
pub struct Permissions {
    entries: Vec<(Scope, RoleDefinition)>,
}

impl Permissions {
    /// Permissions from (scope, role) pairs.
    pub fn new(entries: Vec<(Scope, RoleDefinition)>) -> Self {
        Self { entries }
    }

    /// Whether `action` is allowed at `target`: some assignment at `target` or above it has a
    /// role that allows the action.
    pub fn allows(&self, action: &str, target: &Scope) -> bool {
        self.entries
            .iter()
            .any(|(scope, role)| scope.contains(target) && role.allows(action))
    }

    /// The scopes at which `action` is allowed, with everything beneath them: the scope of each
    /// assignment whose role allows the action. `allows(action, t)` holds exactly when one of
    /// them contains `t`, so a list may read only what lies under these.
    pub fn scopes_allowing<'a>(&'a self, action: &'a str) -> impl Iterator<Item = &'a Scope> {
        self.entries
            .iter()
            .filter(move |(_, role)| role.allows(action))
            .map(|(scope, _)| scope)
    }

    /// Whether `action` is allowed at `target` or anywhere beneath it; lists at a scope are
    /// open to those who may read some of what is in it.
    pub fn allows_within(&self, action: &str, target: &Scope) -> bool {
        self.entries.iter().any(|(scope, role)| {
            (scope.contains(target) || target.contains(scope)) && role.allows(action)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::actions::*;
    use super::*;

    fn scope(s: &str) -> Scope {
        Scope::parse(s).unwrap()
    }

    fn builtin(name: &str) -> RoleDefinition {
        built_in_roles()
            .into_iter()
            .find(|r| r.name == name)
            .unwrap()
    }

    /// The definition of `*` matching, by recursion: the oracle for [`glob`].
    fn naive(p: &[u8], t: &[u8]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some((b'*', rest)) => (0..=t.len()).any(|i| naive(rest, &t[i..])),
            Some((c, rest)) => t.first() == Some(c) && naive(rest, &t[1..]),
        }
    }

    /// Every word over `alphabet` up to `len` characters.
    fn words(alphabet: &[u8], len: usize) -> Vec<Vec<u8>> {
        let mut all = vec![Vec::new()];
        let mut last = vec![Vec::new()];
        for _ in 0..len {
            last = last
                .iter()
                .flat_map(|w: &Vec<u8>| {
                    alphabet.iter().map(move |c| {
                        let mut w = w.clone();
                        w.push(*c);
                        w
                    })
                })
                .collect();
            all.extend(last.iter().cloned());
        }
        all
    }

    #[test]
    fn glob_agrees_with_the_definition_on_every_short_pattern_and_text() {
        let texts = words(b"ab", 6);
        for p in words(b"ab*", 5) {
            for t in &texts {
                assert_eq!(glob(&p, t), naive(&p, t), "{:?} {:?}", p, t);
            }
        }
    }

    #[test]
    fn globs_match() {
        assert!(glob(b"*", b"ajar.jit/policies/read"));
        assert!(glob(b"*/read", b"ajar.jit/policies/read"));
        assert!(!glob(b"*/read", b"ajar.jit/policies/write"));
        assert!(glob(b"ajar.jit/*", b"ajar.jit/policies/initiate/action"));
        assert!(!glob(b"ajar.jit/*", b"ajar.machines/read"));
        assert!(glob(b"a*b*c", b"aXbYbc"));
        assert!(!glob(b"a*b*c", b"aXbY"));
        assert!(glob(b"**", b""));
        assert!(glob(b"a*a", b"aa") && !glob(b"a*a", b"a"));
        assert!(glob(b"*ab*ab", b"xabyab") && !glob(b"*ab*ab", b"xab"));
        assert!(glob(b"abc", b"abc") && !glob(b"abc", b"abcd") && !glob(b"abc", b"ab"));
        // Long adversarial inputs cost a pass, not a product of their lengths.
        let text = [b'a'; 200];
        let mut pattern = vec![b'*'];
        pattern.extend([b'a'; 150]);
        pattern.push(b'z');
        assert!(!glob(&pattern, &text));
    }

    #[test]
    fn patterns_must_match_something() {
        assert!(ActionPattern::parse("ajar.jit/policies/read").is_ok());
        assert!(ActionPattern::parse("*/read").is_ok());
        assert!(ActionPattern::parse("ajar.jit/polcies/read").is_err());
        assert!(ActionPattern::parse("").is_err());
        assert!(ActionPattern::parse("ajar jit").is_err());
    }

    #[test]
    fn requester_is_least_privileged() {
        let r = builtin("JitRequester");
        let allowed: Vec<&str> = ALL.iter().copied().filter(|a| r.allows(a)).collect();
        assert_eq!(
            allowed,
            vec![POLICIES_READ, POLICIES_INITIATE, JIT_REQUESTS_WRITE]
        );
        let reader = builtin("SecurityReader");
        assert!(
            ALL.iter()
                .filter(|a| reader.allows(a))
                .all(|a| a.ends_with("/read"))
        );
    }

    #[test]
    fn assignments_inherit_downwards_only() {
        let p = Permissions::new(vec![(
            scope("/subscriptions/s1/resourceGroups/a"),
            builtin("JitRequester"),
        )]);
        let in_a = scope("/subscriptions/s1/resourceGroups/a/jitNetworkAccessPolicies/p");
        let in_b = scope("/subscriptions/s1/resourceGroups/b/jitNetworkAccessPolicies/p");
        assert!(p.allows(POLICIES_INITIATE, &in_a));
        assert!(!p.allows(POLICIES_INITIATE, &in_b));
        assert!(!p.allows(POLICIES_WRITE, &in_a));
        assert!(!p.allows(POLICIES_READ, &scope("/subscriptions/s1")));
        assert!(p.allows_within(POLICIES_READ, &scope("/subscriptions/s1")));
        assert!(!p.allows_within(POLICIES_READ, &scope("/subscriptions/s2")));
        assert!(!Permissions::default().allows(POLICIES_READ, &in_a));
        let at: Vec<_> = p.scopes_allowing(POLICIES_INITIATE).collect();
        assert_eq!(at, [&scope("/subscriptions/s1/resourceGroups/a")]);
        assert_eq!(p.scopes_allowing(POLICIES_WRITE).count(), 0);
    }

    fn crm() -> ApplicationActions {
        ApplicationActions::parse(
            "crm",
            &[
                "crm.orders/write".into(),
                "crm.orders/read".into(),
                "crm.orders/read".into(),
            ],
        )
        .unwrap()
    }

    #[test]
    fn applications_declare_actions_in_a_namespace_of_their_own() {
        let d = crm();
        assert_eq!(d.actions, ["crm.orders/read", "crm.orders/write"]);
        for (namespace, actions, target) in [
            ("ajar", vec!["ajar.machines/read"], "namespace"),
            ("AJAR", vec![], "namespace"),
            ("", vec![], "namespace"),
            ("c r m", vec![], "namespace"),
            ("crm", vec!["crm.orders/*"], "actions[0]"),
            ("crm", vec!["crm.a", "erp.orders/read"], "actions[1]"),
            ("crm", vec!["crm."], "actions[0]"),
            ("crm", vec!["crmx.orders/read"], "actions[0]"),
            ("crm", vec!["ajar.machines/read"], "actions[0]"),
        ] {
            let actions: Vec<String> = actions.into_iter().map(String::from).collect();
            let e = ApplicationActions::parse(namespace, &actions).unwrap_err();
            assert_eq!(e.target, target, "{namespace} {actions:?}: {}", e.message);
        }
        let many: Vec<String> = (0..=MAX_APPLICATION_ACTIONS)
            .map(|i| format!("crm.a{i}"))
            .collect();
        assert!(ApplicationActions::parse("crm", &many).is_err());
    }

    #[test]
    fn application_patterns_must_match_a_declared_action() {
        let d = crm();
        assert!(ActionPattern::parse_among("crm.orders/*", &d).is_ok());
        assert!(ActionPattern::parse_among("*", &d).is_ok());
        let e = ActionPattern::parse_among("crm.invoices/*", &d).unwrap_err();
        assert!(e.message.contains("matches none"), "{}", e.message);
        assert!(ActionPattern::parse_among("ajar.machines/read", &d).is_err());
        assert!(
            ActionPattern::parse_among("crm.orders/read", &ApplicationActions::default()).is_err()
        );
        assert!(ActionPattern::parse("crm.orders/read").is_err());
    }

    #[test]
    fn each_role_answers_for_its_own_namespace_only() {
        let d = crm();
        let contributor = RoleDefinition::of_application("Contributor", "", &["*".into()], &d);
        assert!(contributor.allows("crm.orders/write"));
        assert!(contributor.allows("crm.orders/read"));
        // Not declared, not ajar's, not another application's.
        assert!(!contributor.allows("crm.orders/delete"));
        assert!(!contributor.allows("ajar.machines/read"));
        assert!(!contributor.allows("erp.orders/read"));
        let reader = RoleDefinition::of_application("Reader", "", &["*/read".into()], &d);
        assert!(reader.allows("crm.orders/read") && !reader.allows("crm.orders/write"));
        // ajar's Owner (`*`) answers for ajar's actions only.
        let owner = builtin("Owner");
        assert!(owner.allows(RBAC_WRITE));
        assert!(!owner.allows("crm.orders/write"));
        assert!(!builtin("SecurityReader").allows("crm.orders/read"));
        // A namespace is a whole segment: `crm` does not cover `crmx.…`.
        assert!(!in_namespace("crmx.orders/read", "crm"));
        assert!(in_namespace("crm.orders/read", "crm"));
    }
}
