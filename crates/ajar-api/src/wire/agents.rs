//! Enforcement agents, their desired state and their reports.

use ajar_core::id::ResourceId;
use ajar_core::net::{Port, Protocol, SourcePrefix};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use utoipa::ToSchema;

/// Body of `POST /api/v1/agents`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentCreate {
    /// Unique name; the agent's token authenticates the principal `agent:NAME`.
    #[schema(value_type = String)]
    pub name: ajar_core::id::Name,
    /// `host` (on the machine), `gateway` (in front of machines, mapping ports) or `aws`
    /// (programs an AWS EC2 security group of ajar's own on each machine's instance).
    #[schema(value_type = String, example = "host")]
    pub mode: ajar_core::agent::AgentMode,
    /// Machines the agent guards.
    #[schema(value_type = Vec<String>)]
    pub machines: Vec<ResourceId>,
    /// Gateway only: the address clients connect to.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub public_address: Option<IpAddr>,
    /// Gateway only: ports handed out as mapped ports, `LOW-HIGH`.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "40000-40999")]
    pub mapped_port_range: Option<ajar_core::agent::PortRange>,
    /// The networks its machines' addresses must lie in (for a gateway, where it may forward
    /// to; for a host, its own addresses). Without them any address is accepted, but a guarded
    /// machine's addresses can still change only with `ajar.agents/write` at `/`.
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>, example = json!(["10.99.0.0/24"]))]
    pub address_prefixes: Option<Vec<ajar_core::net::SourcePrefix>>,
    /// `aws` only: a resource group where the agent may register the instances it discovers
    /// as machines (`PUT /api/v1/agent/inventory`); it then guards them. Registering with one
    /// also needs `ajar.machines/write` at that resource group.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "/subscriptions/prod/resourceGroups/aws-eu-west-1")]
    pub inventory_scope: Option<ajar_core::id::Scope>,
}

/// An agent and its health.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Agent {
    /// Agent id.
    pub id: String,
    /// The agent's token, shown only when it is registered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Name.
    pub name: String,
    /// `host`, `gateway` or `aws`.
    pub mode: String,
    /// Machines it guards.
    pub machines: Vec<String>,
    /// Gateway address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_address: Option<String>,
    /// Gateway mapped-port range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapped_port_range: Option<String>,
    /// The networks its machines' addresses must lie in, when it was registered with them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address_prefixes: Option<Vec<String>>,
    /// The resource group where it registers the instances it discovers, when it may.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inventory_scope: Option<String>,
    /// Whether it was heard from recently enough to count as an enforcement point.
    pub live: bool,
    /// When it was last heard from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub last_seen: Option<Timestamp>,
    /// Version it reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Revision of the desired state it last applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_revision: Option<i64>,
    /// The current revision, to compare with `appliedRevision`.
    pub current_revision: i64,
}

/// What an agent must enforce now: its machines, their protected ports and open grants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DesiredState {
    /// Changes whenever anything here changes.
    pub revision: i64,
    /// The server's clock when this was read: grant timeouts are `endTimeUtc - serverTime`, so
    /// the agent's own clock does not matter.
    #[schema(value_type = String)]
    pub server_time: Timestamp,
    /// `host`, `gateway` or `aws`.
    #[schema(value_type = String)]
    pub mode: ajar_core::agent::AgentMode,
    /// Gateway address.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub public_address: Option<IpAddr>,
    /// Guarded machines: all of them, or with `changesOnly` those whose desired state changed.
    pub machines: Vec<DesiredMachine>,
    /// When true, `machines` holds only the machines whose desired state changed since the
    /// revision asked for (`after`); every other machine stays as last received. An agent is
    /// sent its whole state when it asks without `after`, when its set of machines changed
    /// since, or when most of its machines changed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub changes_only: bool,
}

/// One guarded machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DesiredMachine {
    /// Machine id.
    pub id: String,
    /// Its addresses (what a host agent protects, where a gateway maps to).
    #[schema(value_type = Vec<String>)]
    pub addresses: Vec<IpAddr>,
    /// Ports a JIT policy protects: closed unless granted.
    pub protected_ports: Vec<ProtectedPort>,
    /// Grants open now.
    pub grants: Vec<DesiredGrant>,
    /// `aws` mode only: the instance the machine is and the security group ajar may manage
    /// on it. Absent when the machine names no instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<AwsTarget>,
}

/// The machine label naming the EC2 instance a machine is: an `aws` agent enforces the
/// machine's grants there.
pub const AWS_INSTANCE_LABEL: &str = "aws:instance-id";
/// The machine label naming a security group an operator made for ajar on that instance.
pub const AWS_GROUP_LABEL: &str = "aws:group-id";

/// Where an `aws` agent enforces a machine's grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AwsTarget {
    /// The EC2 instance id (`i-…`), from the machine's label `aws:instance-id`.
    pub instance_id: String,
    /// A security group an operator made for ajar (label `aws:group-id`; it must carry the
    /// tag `ajar:managed=true`). Without it the agent creates and attaches a group of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
}

/// A protected port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProtectedPort {
    /// Port number.
    #[schema(value_type = u16)]
    pub number: Port,
    /// `TCP`, `UDP` or `*`.
    #[schema(value_type = String)]
    pub protocol: Protocol,
}

/// A grant to apply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DesiredGrant {
    /// Request id.
    pub request_id: String,
    /// Port position in the request.
    pub seq: i64,
    /// Port number.
    #[schema(value_type = u16)]
    pub number: Port,
    /// `TCP`, `UDP` or `*`.
    #[schema(value_type = String)]
    pub protocol: Protocol,
    /// Allowed sources.
    #[schema(value_type = Vec<String>)]
    pub sources: Vec<SourcePrefix>,
    /// When access ends.
    #[schema(value_type = String)]
    pub end_time_utc: Timestamp,
    /// Gateway mode: the port on the gateway.
    #[serde(default)]
    pub mapped_port: Option<u16>,
    /// Cut established connections when the grant ends.
    #[serde(default)]
    pub cut_established: bool,
}

/// A grant, by request id and port position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrantRef {
    /// Request id.
    pub request_id: String,
    /// Port position in the request.
    pub seq: i64,
    /// When it was applied or removed.
    #[schema(value_type = String)]
    pub at: Timestamp,
}

/// Body of `POST /api/v1/agent/report`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentReport {
    /// The agent's version.
    pub version: String,
    /// The desired-state revision now applied.
    pub applied_revision: i64,
    /// Grants opened since the last report.
    #[serde(default)]
    pub opened: Vec<GrantRef>,
    /// Grants closed since the last report.
    #[serde(default)]
    pub closed: Vec<GrantRef>,
    /// Machines whose enforcement status changed since the last report (`aws` agents): each
    /// replaces what was last reported for that machine.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub machines: Vec<MachineStatus>,
}

/// What an enforcement point found on one of its machines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MachineStatus {
    /// Machine id.
    pub id: String,
    /// Why the agent cannot enforce access on the machine; absent when it can.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsupported_reason: Option<String>,
    /// Rules outside ajar's control that open a protected port to everyone.
    #[serde(default)]
    pub exposures: Vec<Exposure>,
}

/// A protected port that something other than ajar leaves open to everyone.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Exposure {
    /// The protected port.
    #[schema(value_type = u16)]
    pub number: Port,
    /// `TCP`, `UDP` or `*`.
    #[schema(value_type = String)]
    pub protocol: Protocol,
    /// The source it is open to: `0.0.0.0/0` or `::/0`.
    pub source: String,
    /// What opens it, e.g. `security group sg-0abc (web-open)`.
    pub allowed_by: String,
}

impl std::fmt::Display for Exposure {
    /// One line for people: `port 22/TCP open to 0.0.0.0/0 by security group sg-0abc (web-open)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.protocol {
            Protocol::Any => write!(f, "port {} (TCP and UDP)", self.number)?,
            p => write!(f, "port {}/{}", self.number, p.as_str())?,
        }
        write!(f, " open to {} by {}", self.source, self.allowed_by)
    }
}

/// Body of `PUT /api/v1/agent/inventory`: the machines an `aws` agent discovered, registered
/// (or updated) in its inventory scope and guarded by it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Inventory {
    /// The machines, by name in the inventory scope (an instance's id).
    pub machines: Vec<DiscoveredMachine>,
}

/// The answer to `PUT /api/v1/agent/inventory`: what became of each machine sent, by id (or, when
/// refused, by name).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InventoryResult {
    /// Machines registered now, guarded by the agent from here on.
    pub created: Vec<String>,
    /// The agent's machines whose settings changed.
    pub updated: Vec<String>,
    /// The agent's machines already as sent (not written again).
    pub unchanged: Vec<String>,
    /// Machines left as they are, with the reason (another agent or none guards one already in
    /// the scope, or its addresses are not the agent's to enforce on).
    pub refused: Vec<InventoryRefusal>,
}

/// A machine of an inventory that was not registered or updated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InventoryRefusal {
    /// Its name in the inventory scope, as sent.
    pub name: String,
    /// Why it was left as it is.
    pub reason: String,
}

/// One discovered machine.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DiscoveredMachine {
    /// Name in the inventory scope.
    #[schema(value_type = String, example = "i-0123456789abcdef0")]
    pub name: ajar_core::id::Name,
    /// Its settings; labels include `aws:instance-id`.
    pub properties: super::machines::MachineProperties,
}

/// A port open right now: what an enforcement point must allow.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Grant {
    /// The request that opened it.
    pub request_id: String,
    /// The machine.
    pub machine_id: String,
    /// Port number.
    pub number: u16,
    /// `TCP`, `UDP` or `*`.
    pub protocol: String,
    /// Sources allowed in.
    pub source_address_prefixes: Vec<String>,
    /// Who asked.
    pub requestor: String,
    /// When it opened.
    #[schema(value_type = String)]
    pub start_time_utc: Timestamp,
    /// When it closes.
    #[schema(value_type = String)]
    pub end_time_utc: Timestamp,
    /// The gateway port that maps to it, when a gateway enforces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapped_port: Option<u16>,
}
