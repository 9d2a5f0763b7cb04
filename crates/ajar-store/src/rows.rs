//! What the store returns: plain rows with domain types where the store can parse them.

use ajar_core::request::{PortStatus, StatusReason};
use jiff::Timestamp;

/// A stored machine.
#[derive(Debug, Clone)]
pub struct MachineRow {
    /// Resource id.
    pub id: String,
    /// Name.
    pub name: String,
    /// The machine's settings as JSON (the API's `properties`).
    pub properties: String,
    /// The policy covering it, if any.
    pub policy_id: Option<String>,
    /// Enforcement point name.
    pub enforcement_point: Option<String>,
}

/// A stored policy.
#[derive(Debug, Clone)]
pub struct PolicyRow {
    /// Resource id.
    pub id: String,
    /// Name.
    pub name: String,
    /// The rules as JSON (`ajar_core::policy::PolicyRules`).
    pub rules: String,
    /// Changes on every write.
    pub etag: String,
}

/// A stored access request (without its ports).
#[derive(Debug, Clone)]
pub struct RequestRow {
    /// Request id.
    pub id: String,
    /// The policy it was made under.
    pub policy_id: String,
    /// Who asked.
    pub requestor: String,
    /// Why.
    pub justification: Option<String>,
    /// The caller's address when it asked.
    pub source_address: Option<String>,
    /// When it was accepted.
    pub created_at: Timestamp,
}

/// One port of a stored request.
#[derive(Debug, Clone)]
pub struct PortRow {
    /// The request.
    pub request_id: String,
    /// Position within the request.
    pub seq: i64,
    /// The machine.
    pub machine_id: String,
    /// Port number.
    pub number: u16,
    /// `TCP`, `UDP` or `*`.
    pub protocol: String,
    /// Sources as text.
    pub sources: Vec<String>,
    /// Same machine, port, protocol and sources: see `ajar_core::request::supersede_key`.
    pub supersede_key: String,
    /// When access ends.
    pub end_time: Timestamp,
    /// Open or closed.
    pub status: PortStatus,
    /// Why.
    pub status_reason: StatusReason,
}

/// An open port with the request it belongs to.
#[derive(Debug, Clone)]
pub struct GrantRow {
    /// The port.
    pub port: PortRow,
    /// Who asked.
    pub requestor: String,
    /// When the request was accepted.
    pub created_at: Timestamp,
}

/// A stored API token (never the secret).
#[derive(Debug, Clone)]
pub struct TokenRow {
    /// Token id.
    pub id: String,
    /// Whom it authenticates.
    pub principal: String,
    /// What it is for.
    pub description: Option<String>,
    /// Who created it.
    pub created_by: String,
    /// When.
    pub created_at: Timestamp,
}

/// A stored custom role.
#[derive(Debug, Clone)]
pub struct RoleRow {
    /// Role name.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// Action patterns as JSON array text.
    pub actions: String,
}

/// A stored role assignment.
#[derive(Debug, Clone)]
pub struct AssignmentRow {
    /// Assignment id.
    pub id: String,
    /// Who.
    pub principal: String,
    /// Which role.
    pub role_name: String,
    /// Where.
    pub scope: String,
    /// When.
    pub created_at: Timestamp,
}

/// A page position in a newest-first list: the creation instant and id of the last item seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// Creation instant (microseconds) of the last item seen.
    pub created_at: i64,
    /// Id of the last item seen.
    pub id: String,
}

/// Converts an instant to its stored form.
pub fn to_db(t: Timestamp) -> i64 {
    t.as_microsecond()
}

/// An instant at the precision the store keeps (microseconds, rounded towards the past, so an
/// end time never moves later).
pub fn at_store_precision(t: Timestamp) -> Timestamp {
    from_db(to_db(t))
}

/// Converts a stored instant back; out-of-range values clamp to the nearest representable one.
pub fn from_db(micros: i64) -> Timestamp {
    Timestamp::from_microsecond(micros).unwrap_or(if micros < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}
