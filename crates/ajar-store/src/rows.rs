//! What the store returns: plain rows with domain types, each decoded from its columns in one
//! place (`sqlx::FromRow`, with the wrappers of [`crate::columns`] for stored forms).

use crate::columns::{
    Flag, Json, Micros, Named, NullableJson, NullableMicros, NullablePortNumber, PortNumber,
    PortRangeColumns,
};
use ajar_core::lifecycle::{Lifecycle, RequestState};
use ajar_core::policy::PolicyRules;
use ajar_core::request::{PortStatus, StatusReason};
use jiff::Timestamp;
use std::collections::BTreeMap;

/// A stored machine.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MachineRow {
    /// Resource id.
    pub id: String,
    /// Name.
    pub name: String,
    /// The machine's settings as JSON (the API's `properties`).
    pub properties: String,
    /// The policy covering it, if any.
    pub policy_id: Option<String>,
    /// Name of the agent that guards it, if any.
    pub agent: Option<String>,
    /// Id of that agent.
    pub agent_id: Option<String>,
    /// When that agent was last heard from.
    #[sqlx(try_from = "NullableMicros")]
    pub agent_last_seen: Option<Timestamp>,
    /// Why its enforcement point last said it cannot enforce access on it, if it did.
    pub reported_reason: Option<String>,
    /// The standing exposures its enforcement point last reported, as JSON; `None` when it
    /// reported nothing.
    pub reported_exposures: Option<String>,
}

/// A stored application.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApplicationRow {
    /// Resource id.
    pub id: String,
    /// Name.
    pub name: String,
    /// The application's settings as JSON (the API's `properties`).
    pub properties: String,
    /// Whether JIT is on (fixed at creation).
    #[sqlx(try_from = "Flag")]
    pub jit_enabled: bool,
}

/// A stored role activation request.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JitRequestRow {
    /// Resource id (`.../jitRequests/NAME`).
    pub id: String,
    /// Name.
    pub name: String,
    /// The application (`role` requests) or the network policy (`network` requests).
    pub application_id: String,
    /// `role` or `network`.
    pub kind: String,
    /// Who asked.
    pub requester: String,
    /// The roles asked for.
    #[sqlx(try_from = "Json<Vec<String>>")]
    pub roles: Vec<String>,
    /// Why.
    pub justification: Option<String>,
    /// The lifecycle.
    #[sqlx(try_from = "Json<Lifecycle>")]
    pub lifecycle: Lifecycle,
    /// Its state (the lifecycle's, kept beside it for queries).
    #[sqlx(try_from = "Named<RequestState>")]
    pub state: RequestState,
    /// When the scheduler must look at it next.
    #[sqlx(try_from = "NullableMicros")]
    pub due: Option<Timestamp>,
    /// When it was asked.
    #[sqlx(try_from = "Micros")]
    pub created_at: Timestamp,
    /// For `network` requests, the initiate as asked (JSON), with the caller's address.
    pub detail: Option<String>,
    /// The request this one extends.
    pub extends: Option<String>,
    /// Where the requester placed it (Azure-compatible `location`), if they said.
    pub location: Option<String>,
    /// The requester's tags, if any were given.
    #[sqlx(try_from = "NullableJson<BTreeMap<String, String>>")]
    pub tags: Option<BTreeMap<String, String>>,
}

/// A stored eligibility.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EligibilityRow {
    /// The application.
    pub application_id: String,
    /// Id within the application.
    pub id: String,
    /// A principal or `group:NAME`.
    pub principal: String,
    /// The role.
    pub role_name: String,
    /// When it was granted.
    #[sqlx(try_from = "Micros")]
    pub created_at: Timestamp,
}

/// A stored policy.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PolicyRow {
    /// Resource id.
    pub id: String,
    /// Name.
    pub name: String,
    /// The rules.
    #[sqlx(try_from = "Json<PolicyRules>")]
    pub rules: PolicyRules,
    /// Changes on every write.
    pub etag: String,
    /// The location it was written at through the Azure-compatible paths, if any.
    pub location: Option<String>,
}

/// A stored access request (without its ports).
#[derive(Debug, Clone, sqlx::FromRow)]
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
    #[sqlx(try_from = "Micros")]
    pub created_at: Timestamp,
}

/// One port of a stored request.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PortRow {
    /// The request.
    pub request_id: String,
    /// Position within the request.
    pub seq: i64,
    /// The machine.
    pub machine_id: String,
    /// Port number.
    #[sqlx(try_from = "PortNumber")]
    pub number: u16,
    /// `TCP`, `UDP` or `*`.
    pub protocol: String,
    /// Sources as text.
    #[sqlx(try_from = "Json<Vec<String>>")]
    pub sources: Vec<String>,
    /// Same machine, port, protocol and sources: see `ajar_core::request::supersede_key`.
    pub supersede_key: String,
    /// When access ends.
    #[sqlx(try_from = "Micros")]
    pub end_time: Timestamp,
    /// Open or closed.
    #[sqlx(try_from = "Named<PortStatus>")]
    pub status: PortStatus,
    /// Why.
    #[sqlx(try_from = "Named<StatusReason>")]
    pub status_reason: StatusReason,
    /// The gateway agent that maps this port, if one does.
    pub gateway_agent: Option<String>,
    /// The port on that gateway.
    #[sqlx(try_from = "NullablePortNumber")]
    pub mapped_port: Option<u16>,
    /// The gateway's public address (read back with the port; not stored with it).
    pub connect_address: Option<String>,
    /// When the enforcement point reported the port open.
    #[sqlx(try_from = "NullableMicros")]
    pub applied_at: Option<Timestamp>,
    /// When the enforcement point reported the port closed.
    #[sqlx(try_from = "NullableMicros")]
    pub removed_at: Option<Timestamp>,
}

impl PortRow {
    /// A new, open port of a request (nothing mapped or applied yet).
    #[allow(clippy::too_many_arguments)]
    pub fn initiated(
        request_id: &str,
        seq: i64,
        machine_id: String,
        number: u16,
        protocol: String,
        sources: Vec<String>,
        supersede_key: String,
        end_time: Timestamp,
    ) -> Self {
        Self {
            request_id: request_id.to_owned(),
            seq,
            machine_id,
            number,
            protocol,
            sources,
            supersede_key,
            end_time,
            status: PortStatus::Initiated,
            status_reason: StatusReason::UserRequested,
            gateway_agent: None,
            mapped_port: None,
            connect_address: None,
            applied_at: None,
            removed_at: None,
        }
    }
}

/// A stored agent.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AgentRow {
    /// Agent id.
    pub id: String,
    /// Unique name; its token's principal is `agent:NAME`.
    pub name: String,
    /// `host`, `gateway` or `aws`.
    pub mode: String,
    /// Where clients connect to a gateway.
    pub public_address: Option<String>,
    /// The gateway's mapped-port range.
    #[sqlx(flatten, try_from = "PortRangeColumns")]
    pub port_range: Option<(u16, u16)>,
    /// The agent's token.
    pub token_id: String,
    /// When it last asked for its desired state.
    #[sqlx(try_from = "NullableMicros")]
    pub last_seen: Option<Timestamp>,
    /// Version it reported.
    pub version: Option<String>,
    /// Revision of the desired state it last applied.
    pub applied_revision: Option<i64>,
    /// The last revision that changed its desired state.
    pub revision: i64,
    /// Machines it guards (read with their own query).
    #[sqlx(skip)]
    pub machines: Vec<String>,
    /// The networks its machines' addresses must lie in (CIDR prefixes); `None` when it was
    /// registered without them.
    #[sqlx(try_from = "NullableJson<Vec<String>>")]
    pub address_prefixes: Option<Vec<String>>,
    /// The resource group where it registers the machines it discovers (`aws` agents).
    pub inventory_scope: Option<String>,
}

impl AgentRow {
    /// Its address prefixes, parsed; `None` when it has none. A stored prefix that does not
    /// parse (it was checked when written) is an error.
    pub fn prefixes(
        &self,
    ) -> Result<Option<Vec<ajar_core::net::SourcePrefix>>, ajar_core::FieldError> {
        self.address_prefixes
            .as_ref()
            .map(|p| {
                p.iter()
                    .map(|s| ajar_core::net::SourcePrefix::parse(s))
                    .collect()
            })
            .transpose()
    }
}

/// What a gateway needs to map a machine's port.
#[derive(Debug, Clone)]
pub struct GatewayRow {
    /// The guarded machine.
    pub machine_id: String,
    /// The gateway agent.
    pub agent_id: String,
    /// Its mapped-port range.
    pub port_range: (u16, u16),
    /// Its public address.
    pub public_address: Option<String>,
}

/// An open port with the request it belongs to.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct GrantRow {
    /// The port.
    #[sqlx(flatten)]
    pub port: PortRow,
    /// Who asked.
    pub requestor: String,
    /// When the request was accepted.
    #[sqlx(try_from = "Micros")]
    pub created_at: Timestamp,
    /// The policy the request was made under.
    pub policy_id: String,
}

/// A stored API token (never the secret).
#[derive(Debug, Clone, sqlx::FromRow)]
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
    #[sqlx(try_from = "Micros")]
    pub created_at: Timestamp,
    /// When it stops working (console sessions); `None` for tokens that last until deleted.
    #[sqlx(try_from = "NullableMicros")]
    pub expires_at: Option<Timestamp>,
    /// Groups an identity provider asserted when this session was made from its token (stored
    /// as `NULL` when there are none).
    #[sqlx(try_from = "NullableJson<Vec<String>>")]
    pub idp_groups: Vec<String>,
    /// The token it was made with, when it may not outlive that one (deleted with it).
    pub parent_id: Option<String>,
}

/// A stored custom role.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RoleRow {
    /// Role name.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// Action patterns.
    #[sqlx(try_from = "Json<Vec<String>>")]
    pub actions: Vec<String>,
}

/// A stored role assignment.
#[derive(Debug, Clone, sqlx::FromRow)]
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
    #[sqlx(try_from = "Micros")]
    pub created_at: Timestamp,
}

/// A page position in a newest-first list: the creation instant and id of the last item seen.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
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

/// The actions an application declared, in its namespace.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApplicationActionsRow {
    /// The application.
    pub application_id: String,
    /// Its namespace (unique among applications).
    pub namespace: String,
    /// The actions, sorted.
    #[sqlx(try_from = "Json<Vec<String>>")]
    pub actions: Vec<String>,
}

/// A role an application defined over its actions.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApplicationRoleRow {
    /// The application.
    pub application_id: String,
    /// Role name, unique within the application.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// Action patterns, as written.
    #[sqlx(try_from = "Json<Vec<String>>")]
    pub actions: Vec<String>,
    /// The declared actions the patterns match.
    #[sqlx(try_from = "Json<Vec<String>>")]
    pub allowed: Vec<String>,
}
