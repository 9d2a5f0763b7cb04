//! Request and response bodies. JSON field names follow the brief's vendor API
//! (`virtualMachines`, `allowedSourceAddressPrefix`, `maxRequestAccessDuration`, `endTimeUtc`, …)
//! so its examples port over.

use ajar_core::FieldError;
use ajar_core::duration::AccessDuration;
use ajar_core::id::{ResourceId, ResourceKind, Scope};
use ajar_core::machine::Os;
use ajar_core::net::{Port, Protocol, SourcePrefix};
use ajar_core::policy::{MachineRules, PolicyRules, PortRule};
use ajar_core::principal::Principal;
use ajar_core::request::{RequestedMachine, RequestedPort, WindowEnd};
use jiff::Timestamp;
use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use utoipa::ToSchema;

/// A list response (`{"value":[...]}`), with a link to the next page where lists are paged.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct List<T> {
    /// The items.
    pub value: Vec<T>,
    /// Path and query of the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_link: Option<String>,
}

/// Source prefixes given either as one string or as an array of strings (the brief's
/// PowerShell examples put an array in the singular field).
#[derive(Debug, Clone, PartialEq, Eq, Default, ToSchema)]
#[schema(value_type = Vec<String>)]
pub struct SourceList(pub Vec<SourcePrefix>);

impl<'de> Deserialize<'de> for SourceList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SourceList;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a source prefix or an array of source prefixes")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<SourceList, E> {
                SourcePrefix::parse(s)
                    .map(|p| SourceList(vec![p]))
                    .map_err(E::custom)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<SourceList, A::Error> {
                let mut out = Vec::new();
                while let Some(p) = seq.next_element::<SourcePrefix>()? {
                    out.push(p);
                    if out.len() > MAX_SOURCES {
                        return Err(de::Error::custom(format!(
                            "at most {MAX_SOURCES} source prefixes are allowed"
                        )));
                    }
                }
                Ok(SourceList(out))
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for SourceList {
    /// One prefix is written as a string, several as an array.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => one.serialize(s),
            many => many.serialize(s),
        }
    }
}

/// Most source prefixes one port rule or request may list.
pub const MAX_SOURCES: usize = 100;

/// Merges the singular and plural source fields, refusing both at once.
fn sources(
    single: &Option<SourceList>,
    plural: &Option<SourceList>,
) -> Result<Vec<SourcePrefix>, FieldError> {
    match (single, plural) {
        (Some(_), Some(_)) => Err(FieldError::new(
            "allowedSourceAddressPrefixes",
            "give allowedSourceAddressPrefix or allowedSourceAddressPrefixes, not both",
        )),
        (Some(s), None) | (None, Some(s)) => Ok(s.0.clone()),
        (None, None) => Ok(Vec::new()),
    }
}

/// Writes sources back in the brief's shape: one prefix in the singular field, several in the
/// plural one.
fn split_sources(all: &[SourcePrefix]) -> (Option<SourcePrefix>, Option<Vec<SourcePrefix>>) {
    match all {
        [one] => (Some(*one), None),
        many => (None, Some(many.to_vec())),
    }
}

// ---------------------------------------------------------------------------------------------
// Machines

/// Body of `PUT .../machines/{name}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MachineBody {
    /// The machine's settings.
    pub properties: MachineProperties,
}

/// A machine's settings.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MachineProperties {
    /// `linux` or `windows`.
    #[schema(value_type = String, example = "linux")]
    pub os: Os,
    /// The machine's IP addresses.
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub addresses: Vec<IpAddr>,
    /// Free-form labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl MachineProperties {
    /// Checks the limits serde cannot express.
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.addresses.len() > 64 {
            return Err(FieldError::new(
                "properties.addresses",
                "at most 64 addresses are allowed",
            ));
        }
        if self.labels.len() > 64 {
            return Err(FieldError::new(
                "properties.labels",
                "at most 64 labels are allowed",
            ));
        }
        for (k, v) in &self.labels {
            if k.is_empty() || k.len() > 128 || v.len() > 256 {
                return Err(FieldError::new(
                    format!("properties.labels.{k}"),
                    "label keys must be 1 to 128 characters and values at most 256",
                ));
            }
        }
        Ok(())
    }
}

/// A machine as the API returns it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Machine {
    /// Resource id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Always `machines`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Settings and JIT state.
    pub properties: MachineView,
}

/// A machine's settings and JIT state.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MachineView {
    /// `linux` or `windows`.
    pub os: String,
    /// IP addresses.
    pub addresses: Vec<String>,
    /// The agent that enforces access for this machine, if any (see `POST /api/v1/agents`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforcement_point: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// `Configured`, `NotConfigured` or `Unsupported`.
    pub jit_state: String,
    /// Request figures (in reads, not in the answer to a write).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_figures: Option<RequestFigures>,
    /// Why the machine is `Unsupported`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsupported_reason: Option<String>,
    /// The JIT policy covering the machine, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jit_policy_id: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Policies

/// Body of `PUT .../jitNetworkAccessPolicies/{name}`: the full policy.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyBody {
    /// `Basic` (the only kind); may be omitted.
    #[serde(default)]
    pub kind: Option<String>,
    /// The rules.
    pub properties: PolicyProperties,
}

/// The rules of a policy.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyProperties {
    /// Covered machines and their ports.
    pub virtual_machines: Vec<PolicyMachine>,
    /// ajar's addition: cut connections opened during a window when it ends (default false:
    /// established connections survive, as with the vendor's JIT).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cut_established_on_expiry: bool,
    /// ajar's addition: `AutoApprove` (default, as in the brief) or `ManualApprove`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_mode: Option<String>,
    /// ajar's addition: who may approve requests under the policy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<JitApprover>,
    /// ajar's addition: how many approvers must approve (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_threshold: Option<u32>,
}

/// One machine of a policy.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyMachine {
    /// The machine's resource id.
    #[schema(value_type = String)]
    pub id: ResourceId,
    /// Protected ports.
    pub ports: Vec<PolicyPort>,
}

/// One protected port.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyPort {
    /// Port number, 0 to 65535.
    #[schema(value_type = u16, example = 22)]
    pub number: Port,
    /// `TCP`, `UDP` or `*`.
    #[schema(value_type = String, example = "*")]
    pub protocol: Protocol,
    /// One allowed source: `*`, an address or a CIDR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "*")]
    pub allowed_source_address_prefix: Option<SourceList>,
    /// Several allowed sources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<String>>)]
    pub allowed_source_address_prefixes: Option<SourceList>,
    /// Longest window one request may open, ISO 8601, PT5M to PT24H.
    #[schema(value_type = String, example = "PT3H")]
    pub max_request_access_duration: AccessDuration,
}

impl PolicyBody {
    /// The policy's rules, with cross-field checks (kind, source fields). Rules that involve the
    /// policy's own id are checked by [`PolicyRules::validate`].
    pub fn to_domain(&self) -> Result<PolicyRules, FieldError> {
        if let Some(kind) = &self.kind
            && kind != "Basic"
        {
            return Err(FieldError::new(
                "kind",
                format!("kind {kind:?} is not supported (only \"Basic\")"),
            ));
        }
        let mut machines = Vec::with_capacity(self.properties.virtual_machines.len());
        for (i, m) in self.properties.virtual_machines.iter().enumerate() {
            let mut ports = Vec::with_capacity(m.ports.len());
            for (j, p) in m.ports.iter().enumerate() {
                let at = format!("properties.virtualMachines[{i}].ports[{j}]");
                let mut allowed = sources(
                    &p.allowed_source_address_prefix,
                    &p.allowed_source_address_prefixes,
                )
                .map_err(|e| e.within(&at))?;
                if allowed.is_empty() {
                    return Err(FieldError::new(
                        format!("{at}.allowedSourceAddressPrefix"),
                        "an allowed source is required ('*' for any)",
                    ));
                }
                allowed.sort();
                allowed.dedup();
                ports.push(PortRule {
                    number: p.number,
                    protocol: p.protocol,
                    allowed_sources: allowed,
                    max_duration: p.max_request_access_duration,
                });
            }
            machines.push(MachineRules {
                machine: m.id.clone(),
                ports,
            });
        }
        let approval = approval_rule(
            self.properties.approval_mode.as_deref(),
            &self.properties.approvers,
            self.properties.approval_threshold,
            [
                "properties.approvalMode",
                "properties.approvers",
                "properties.approvalThreshold",
            ],
        )?;
        Ok(PolicyRules {
            machines,
            cut_established: self.properties.cut_established_on_expiry,
            approval,
        })
    }
}

/// Policy rules in the wire shape.
pub fn policy_properties(rules: &PolicyRules) -> PolicyProperties {
    let manual = !rules.approval.automatic;
    PolicyProperties {
        cut_established_on_expiry: rules.cut_established,
        approval_mode: manual.then(|| "ManualApprove".to_owned()),
        approvers: approvers_to_wire(&rules.approval, &[]),
        approval_threshold: manual.then_some(rules.approval.threshold),
        virtual_machines: rules
            .machines
            .iter()
            .map(|m| PolicyMachine {
                id: m.machine.clone(),
                ports: m
                    .ports
                    .iter()
                    .map(|r| {
                        let (one, many) = split_sources(&r.allowed_sources);
                        PolicyPort {
                            number: r.number,
                            protocol: r.protocol,
                            allowed_source_address_prefix: one.map(|p| SourceList(vec![p])),
                            allowed_source_address_prefixes: many.map(SourceList),
                            max_request_access_duration: r.max_duration,
                        }
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// A policy as the API returns it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    /// Resource id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Always `jitNetworkAccessPolicies`.
    #[serde(rename = "type")]
    pub kind_of_resource: String,
    /// Always `Basic`.
    pub kind: String,
    /// Changes on every write; send it back in `If-Match` to avoid overwriting someone
    /// else's change.
    pub etag: String,
    /// The rules and their provisioning state.
    pub properties: PolicyView,
}

/// A policy's rules as returned.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyView {
    /// Covered machines and their ports.
    pub virtual_machines: Vec<PolicyMachine>,
    /// Whether connections are cut when a window ends.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cut_established_on_expiry: bool,
    /// `ManualApprove` when requests need approval (absent: automatic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_mode: Option<String>,
    /// Who may approve.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<JitApprover>,
    /// How many approvers must approve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_threshold: Option<u32>,
    /// Always `Succeeded` once stored.
    pub provisioning_state: String,
}

/// Optional body of `POST .../machines/{name}/enableJit`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnableJitBody {
    /// The policy to add the machine to (created if missing); default `default`.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub policy: Option<ajar_core::id::Name>,
    /// Ports to protect instead of the OS default.
    #[serde(default)]
    pub ports: Option<Vec<PolicyPort>>,
}

// ---------------------------------------------------------------------------------------------
// Requests

/// Body of `POST .../jitNetworkAccessPolicies/{name}/initiate`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InitiateBody {
    /// Machines and ports to open.
    pub virtual_machines: Vec<InitiateMachine>,
    /// Why access is needed.
    #[serde(default)]
    pub justification: Option<String>,
}

/// Most characters a justification may have.
pub const MAX_JUSTIFICATION: usize = 2000;

/// Most ports (over all machines) one initiate may ask for.
pub const MAX_INITIATE_PORTS: usize = 1000;

/// One machine of an initiate.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InitiateMachine {
    /// The machine's resource id.
    #[schema(value_type = String)]
    pub id: ResourceId,
    /// Ports to open.
    pub ports: Vec<InitiatePort>,
}

/// One port of an initiate: give `endTimeUtc` or `duration`; leave out the source to mean
/// the caller's own address.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InitiatePort {
    /// Port number.
    #[schema(value_type = u16, example = 22)]
    pub number: Port,
    /// Needed only when the policy has rules for several protocols on this port.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub protocol: Option<Protocol>,
    /// When access ends (RFC 3339).
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "2026-07-15T17:00:00Z")]
    pub end_time_utc: Option<Timestamp>,
    /// How long access lasts (ISO 8601), instead of `endTimeUtc`.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "PT1H")]
    pub duration: Option<AccessDuration>,
    /// One source.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "203.0.113.7")]
    pub allowed_source_address_prefix: Option<SourceList>,
    /// Several sources.
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    pub allowed_source_address_prefixes: Option<SourceList>,
}

impl InitiateBody {
    /// The requested machines, with cross-field checks.
    pub fn to_domain(&self) -> Result<Vec<RequestedMachine>, FieldError> {
        if let Some(j) = &self.justification
            && j.chars().count() > MAX_JUSTIFICATION
        {
            return Err(FieldError::new(
                "justification",
                format!("justification is longer than {MAX_JUSTIFICATION} characters"),
            ));
        }
        let total: usize = self.virtual_machines.iter().map(|m| m.ports.len()).sum();
        if total > MAX_INITIATE_PORTS {
            return Err(FieldError::new(
                "virtualMachines",
                format!("at most {MAX_INITIATE_PORTS} ports may be requested at once"),
            ));
        }
        let mut out = Vec::with_capacity(self.virtual_machines.len());
        for (i, m) in self.virtual_machines.iter().enumerate() {
            if m.id.kind != ResourceKind::Machine {
                return Err(FieldError::new(
                    format!("virtualMachines[{i}].id"),
                    "not a machine id",
                ));
            }
            let mut ports = Vec::with_capacity(m.ports.len());
            for (j, p) in m.ports.iter().enumerate() {
                let at = format!("virtualMachines[{i}].ports[{j}]");
                let sources = sources(
                    &p.allowed_source_address_prefix,
                    &p.allowed_source_address_prefixes,
                )
                .map_err(|e| e.within(&at))?;
                let end = match (p.end_time_utc, p.duration) {
                    (Some(t), None) => WindowEnd::At(t),
                    (None, Some(d)) => WindowEnd::After(d),
                    (Some(_), Some(_)) => {
                        return Err(FieldError::new(
                            format!("{at}.duration"),
                            "give endTimeUtc or duration, not both",
                        ));
                    }
                    (None, None) => {
                        return Err(FieldError::new(
                            format!("{at}.endTimeUtc"),
                            "endTimeUtc or duration is required",
                        ));
                    }
                };
                ports.push(RequestedPort {
                    number: p.number,
                    protocol: p.protocol,
                    sources,
                    end,
                });
            }
            out.push(RequestedMachine {
                machine: m.id.clone(),
                ports,
            });
        }
        Ok(out)
    }
}

/// A network access request as the API returns it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessRequest {
    /// Request id.
    pub id: String,
    /// The policy the request was made under.
    pub policy_id: String,
    /// Who asked.
    pub requestor: String,
    /// When the request was accepted.
    pub start_time_utc: String,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub justification: Option<String>,
    /// Machines and the state of each port.
    pub virtual_machines: Vec<AccessRequestMachine>,
    /// ajar's addition, under a policy with manual approval: the `jitRequests` resource that
    /// approvers decide; the ports open when it is approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_request_id: Option<String>,
    /// The approval request's state (`Pending` until decided).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_state: Option<String>,
}

/// One machine of a request.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessRequestMachine {
    /// The machine's id.
    pub id: String,
    /// Its ports.
    pub ports: Vec<AccessRequestPort>,
}

/// One port of a request and its state.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessRequestPort {
    /// Port number.
    pub number: u16,
    /// Protocol of the rule it opened.
    pub protocol: String,
    /// The source, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_source_address_prefix: Option<String>,
    /// The sources, when there are several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_source_address_prefixes: Option<Vec<String>>,
    /// When access ends (or ended).
    pub end_time_utc: String,
    /// `Initiated` or `Revoked`.
    pub status: String,
    /// `UserRequested`, `Expired`, `NewerRequestInitiated` or `PolicyChanged`.
    pub status_reason: String,
    /// The port on the gateway that maps to this one, when a gateway enforces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapped_port: Option<u16>,
    /// Where to connect: the gateway's address and mapped port, or the machine's own address
    /// and port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_details: Option<ConnectionDetails>,
    /// When the enforcement point reported the port open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_since: Option<String>,
    /// When the enforcement point reported the port closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<String>,
}

/// Address and port a client connects to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionDetails {
    /// IP address.
    pub address: String,
    /// Port.
    pub port: u16,
}

impl AccessRequestPort {
    /// Fills the singular or plural source field from a list of prefixes.
    pub fn with_sources(mut self, all: &[SourcePrefix]) -> Self {
        let (one, many) = split_sources(all);
        self.allowed_source_address_prefix = one.map(|p| p.to_string());
        self.allowed_source_address_prefixes =
            many.map(|v| v.iter().map(ToString::to_string).collect());
        self
    }
}

// ---------------------------------------------------------------------------------------------
// Applications (role access)

/// Body of `PUT .../applications/{name}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApplicationBody {
    /// The application's settings.
    pub properties: ApplicationProperties,
}

/// An application's settings.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApplicationProperties {
    /// Principals (or `group:NAME`) of the publisher, with standing read-only access.
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub publisher_principals: Vec<Principal>,
    /// The JIT access policy; JIT is on (automatic approval, eight hours) when left out.
    #[serde(default)]
    pub jit_access_policy: Option<JitAccessPolicy>,
}

/// An application's JIT access policy, in the brief's field names.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JitAccessPolicy {
    /// Whether publishers must request elevation; fixed at creation (default true).
    #[serde(default)]
    pub jit_access_enabled: Option<bool>,
    /// `AutoApprove` (default) or `ManualApprove`.
    #[serde(default)]
    pub jit_approval_mode: Option<String>,
    /// Who may approve.
    #[serde(default)]
    pub jit_approvers: Vec<JitApprover>,
    /// Longest activation, ISO 8601 (default `PT8H`).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub maximum_jit_access_duration: Option<AccessDuration>,
    /// ajar's addition: how many approvers must approve (default 1).
    #[serde(default)]
    pub jit_approval_threshold: Option<u32>,
}

/// An approver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JitApprover {
    /// A principal, or a group name.
    pub id: String,
    /// `user` or `group`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Shown in the UI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

impl JitAccessPolicy {
    /// The domain policy, with defaults filled in and each field checked.
    pub fn to_domain(&self) -> Result<ajar_core::application::AppJitPolicy, FieldError> {
        let at = "properties.jitAccessPolicy";
        let approval = approval_rule(
            self.jit_approval_mode.as_deref(),
            &self.jit_approvers,
            self.jit_approval_threshold,
            [
                &format!("{at}.jitApprovalMode"),
                &format!("{at}.jitApprovers"),
                &format!("{at}.jitApprovalThreshold"),
            ],
        )?;
        let policy = ajar_core::application::AppJitPolicy {
            enabled: self.jit_access_enabled.unwrap_or(true),
            approval,
            max_duration: self
                .maximum_jit_access_duration
                .unwrap_or_else(ajar_core::application::default_max_duration),
        };
        policy.validate()?;
        Ok(policy)
    }

    /// The wire form of a domain policy (approvers' display names are kept by the caller).
    pub fn from_domain(p: &ajar_core::application::AppJitPolicy, names: &[JitApprover]) -> Self {
        JitAccessPolicy {
            jit_access_enabled: Some(p.enabled),
            jit_approval_mode: Some(
                if p.approval.automatic {
                    "AutoApprove"
                } else {
                    "ManualApprove"
                }
                .to_owned(),
            ),
            jit_approvers: approvers_to_wire(&p.approval, names),
            maximum_jit_access_duration: Some(p.max_duration),
            jit_approval_threshold: Some(p.approval.threshold),
        }
    }
}

/// Parses an approval mode (`AutoApprove`, the default, or `ManualApprove`), approvers and a
/// threshold (default 1); `at` names the mode, approvers and threshold fields for errors.
pub fn approval_rule(
    mode: Option<&str>,
    approvers: &[JitApprover],
    threshold: Option<u32>,
    [mode_at, approvers_at, threshold_at]: [&str; 3],
) -> Result<ajar_core::lifecycle::ApprovalRule, FieldError> {
    use ajar_core::lifecycle::{ApprovalRule, Approver};
    let automatic = match mode {
        None | Some("AutoApprove") => true,
        Some("ManualApprove") => false,
        Some(other) => {
            return Err(FieldError::new(
                mode_at,
                format!("{other:?} is not one of AutoApprove, ManualApprove"),
            ));
        }
    };
    let mut parsed = Vec::with_capacity(approvers.len());
    for (i, a) in approvers.iter().enumerate() {
        let target = format!("{approvers_at}[{i}]");
        let approver = match a.kind.as_str() {
            "user" => {
                Approver::User(Principal::parse(&a.id).map_err(|e| e.at(format!("{target}.id")))?)
            }
            "group" => Approver::Group(
                ajar_core::id::Name::parse(a.id.trim_start_matches("group:"))
                    .map_err(|e| e.at(format!("{target}.id")))?
                    .to_string(),
            ),
            other => {
                return Err(FieldError::new(
                    format!("{target}.type"),
                    format!("{other:?} is not one of user, group"),
                ));
            }
        };
        if parsed.contains(&approver) {
            return Err(FieldError::new(
                format!("{target}.id"),
                "approver listed twice",
            ));
        }
        parsed.push(approver);
    }
    let rule = ApprovalRule {
        automatic,
        approvers: parsed,
        threshold: threshold.unwrap_or(1),
    };
    rule.validate(approvers_at, threshold_at)?;
    Ok(rule)
}

/// Approvers in the wire shape, with display names taken from `names` where they match.
pub fn approvers_to_wire(
    rule: &ajar_core::lifecycle::ApprovalRule,
    names: &[JitApprover],
) -> Vec<JitApprover> {
    use ajar_core::lifecycle::Approver;
    rule.approvers
        .iter()
        .map(|a| {
            let (id, kind) = match a {
                Approver::User(u) => (u.to_string(), "user"),
                Approver::Group(g) => (g.clone(), "group"),
            };
            let display_name = names
                .iter()
                .find(|n| n.id.trim_start_matches("group:") == id && n.kind == kind)
                .and_then(|n| n.display_name.clone());
            JitApprover {
                id,
                kind: kind.to_owned(),
                display_name,
            }
        })
        .collect()
}

/// An application as the API returns it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Application {
    /// Resource id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Always `applications`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Settings, with the JIT policy's defaults filled in.
    pub properties: ApplicationProperties,
    /// Role activation figures (in reads, not in the answer to a write).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_figures: Option<RequestFigures>,
}

/// Request figures of a machine or an application, as the brief's Configured tab shows them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestFigures {
    /// Requests granted in the last 7 days.
    pub approved_requests_last7_days: i64,
    /// When access was last requested and granted (RFC 3339).
    pub last_access_at: Option<String>,
    /// Who asked last.
    pub last_user: Option<String>,
    /// Ports open now and where to connect (machines only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub open_connections: Vec<OpenConnection>,
}

/// A port open now on a machine.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OpenConnection {
    /// The machine's port.
    pub port: u16,
    /// `TCP`, `UDP` or `*`.
    pub protocol: String,
    /// Where to connect: the gateway's address and mapped port, or the machine's address.
    pub connect_to: Option<String>,
    /// Who may connect from.
    pub source_address_prefixes: Vec<String>,
    /// Who asked.
    pub requestor: String,
    /// When it closes.
    pub end_time_utc: String,
}

/// Body of `PUT .../applications/{name}/eligibleRoles/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EligibleRoleBody {
    /// A principal or `group:NAME`.
    #[schema(value_type = String)]
    pub principal: Principal,
    /// The role they may activate.
    pub role_definition: String,
}

/// An eligibility: who may activate which role on an application.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EligibleRole {
    /// Eligibility id (unique within the application).
    pub id: String,
    /// The application.
    pub application_id: String,
    /// A principal or `group:NAME`.
    pub principal: String,
    /// The role.
    pub role_definition: String,
    /// When it was granted.
    pub created_at: String,
}

/// Body of `PUT .../jitRequests/{name}`: a role activation request, in the brief's shape.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JitRequestBody {
    /// The request.
    pub properties: JitRequestProperties,
}

/// What is requested.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JitRequestProperties {
    /// The application.
    #[schema(value_type = String)]
    pub application_resource_id: ResourceId,
    /// The roles asked for, each for the requester.
    pub jit_authorization_policies: Vec<JitAuthorizationPolicy>,
    /// When and for how long.
    pub jit_scheduling_policy: JitSchedulingPolicy,
    /// Why.
    #[serde(default)]
    pub justification: Option<String>,
}

/// One role for one principal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JitAuthorizationPolicy {
    /// Who (the requester).
    #[schema(value_type = String)]
    pub principal_id: Principal,
    /// The role.
    pub role_definition_id: String,
}

/// When the activation happens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JitSchedulingPolicy {
    /// `Once`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Start; absent means "when approved".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub start_time: Option<Timestamp>,
    /// How long, ISO 8601.
    #[schema(value_type = String)]
    pub duration: AccessDuration,
}

/// A role activation request as the API returns it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JitRequest {
    /// Resource id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Always `jitRequests`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The request and its state.
    pub properties: JitRequestView,
}

/// A role activation request's details and state.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JitRequestView {
    /// `role` (an activation on an application) or `network` (access under a network policy
    /// with manual approval).
    pub request_kind: String,
    /// The application (role requests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_resource_id: Option<String>,
    /// The network policy (network requests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_access_policy_id: Option<String>,
    /// The initiate as asked (network requests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_access: Option<InitiateBody>,
    /// The network access request that opened the ports, once approved (its id under the
    /// policy's `requests`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_request_id: Option<String>,
    /// The request this one extends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extends: Option<String>,
    /// The roles.
    pub jit_authorization_policies: Vec<JitAuthorizationPolicy>,
    /// When and for how long, as asked.
    pub jit_scheduling_policy: JitSchedulingPolicy,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub justification: Option<String>,
    /// `Pending`, `Approved`, `Active`, `Denied`, `Canceled`, `Timeout`, `Expired`, `Revoked`
    /// or `Failed`.
    pub jit_request_state: String,
    /// Who asked.
    pub requestor: String,
    /// When it was asked.
    pub created_at: String,
    /// The granted window, once approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_from: Option<String>,
    /// Its end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_until: Option<String>,
    /// Approvals and denials, with reasons.
    pub decisions: Vec<DecisionView>,
    /// When the "expires in 15 minutes" warning fell due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry_warned_at: Option<String>,
    /// Why enforcement failed (`Failed` requests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

/// Body of `POST .../jitRequests/{name}/extend`: a follow-on request, decided under the same
/// rules, that continues an approved or active one.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExtendBody {
    /// How much longer, ISO 8601 (at most the policy's maximum).
    #[schema(value_type = String)]
    pub duration: AccessDuration,
    /// Why.
    #[serde(default)]
    pub justification: Option<String>,
}

/// One entry of `GET /api/v1/history`: a request of either kind.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    /// The request's id (a `jitRequests` resource id, or a network request id).
    pub id: String,
    /// `role` or `network`.
    pub kind: String,
    /// The application or network policy.
    pub target: String,
    /// Who asked.
    pub requestor: String,
    /// `Pending`, `Approved`, `Active`, `Denied`, `Canceled`, `Timeout`, `Expired`,
    /// `Revoked`, `Failed`, or `Superseded` (network access replaced by a newer request).
    pub state: String,
    /// When it was asked.
    pub created_at: String,
    /// Start of the granted window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_from: Option<String>,
    /// End of the granted window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_until: Option<String>,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub justification: Option<String>,
}

/// An approval or denial.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DecisionView {
    /// Who decided.
    pub by: String,
    /// `Approved` or `Denied`.
    pub decision: String,
    /// Why.
    pub reason: String,
    /// When.
    pub at: String,
}

/// Body of approve and deny.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DecisionBody {
    /// Why (required).
    pub reason: String,
}

/// Body of `POST /api/v1/authorize`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthorizeBody {
    /// Who wants to act.
    #[schema(value_type = String)]
    pub principal: Principal,
    /// What they want to do (an action name).
    pub action: String,
    /// Where.
    #[schema(value_type = String)]
    pub scope: Scope,
    /// Groups the principal belongs to (`group:NAME`), as the asking application knows them.
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub groups: Vec<Principal>,
}

/// The answer of `POST /api/v1/authorize`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizeAnswer {
    /// Allowed or not.
    pub allowed: bool,
    /// Why, in words.
    pub reason: String,
    /// `assignment:ID` or `elevation:REQUEST_ID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// When the elevation that allows it ends (absent for standing access).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Agents

/// Body of `POST /api/v1/agents`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentCreate {
    /// Unique name; the agent's token authenticates the principal `agent:NAME`.
    #[schema(value_type = String)]
    pub name: ajar_core::id::Name,
    /// `host` (on the machine) or `gateway` (in front of machines, mapping ports).
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
    /// `host` or `gateway`.
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
    /// Whether it was heard from recently enough to count as an enforcement point.
    pub live: bool,
    /// When it was last heard from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<String>,
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
    /// `host` or `gateway`.
    #[schema(value_type = String)]
    pub mode: ajar_core::agent::AgentMode,
    /// Gateway address.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub public_address: Option<IpAddr>,
    /// Guarded machines.
    pub machines: Vec<DesiredMachine>,
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
    pub start_time_utc: String,
    /// When it closes.
    pub end_time_utc: String,
    /// The gateway port that maps to it, when a gateway enforces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapped_port: Option<u16>,
}

// ---------------------------------------------------------------------------------------------
// Settings

/// Per-scope JIT setting (`.../jitSettings` at subscription or resource-group scope).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JitSettings {
    /// When false, machines in the scope are `Unsupported` and no access can be requested.
    pub jit_enabled: bool,
}

// ---------------------------------------------------------------------------------------------
// Tokens and RBAC

/// Body of `POST /api/v1/tokens`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenCreate {
    /// Whom the token authenticates.
    #[schema(value_type = String)]
    pub principal: Principal,
    /// What the token is for.
    #[serde(default)]
    pub description: Option<String>,
}

/// A token's metadata; `token` holds the secret only in the creation response.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Token {
    /// Token id.
    pub id: String,
    /// The secret, shown once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Whom it authenticates.
    pub principal: String,
    /// What it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Who created it.
    pub created_by: String,
    /// When.
    pub created_at: String,
    /// When it stops working (sessions); absent for tokens that last until deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Groups an identity provider asserted when the session was made (they count as the
    /// principal's groups while the session lasts).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

/// A trusted OpenID Connect issuer, as `GET /api/v1/identityProviders` lists it for sign-in.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdentityProvider {
    /// Shown on sign-in buttons.
    pub name: String,
    /// The issuer URL (discovery is at `ISSUER/.well-known/openid-configuration`).
    pub issuer: String,
    /// The client id to sign in with (the audience ajar expects in tokens).
    pub client_id: String,
}

/// Body of `PUT /api/v1/groups/{name}`: the group's members (replaces them all).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GroupBody {
    /// Principals in the group (not other groups).
    #[schema(value_type = Vec<String>)]
    pub members: Vec<Principal>,
}

/// A group of principals; role assignments, eligibilities and approvers may name it as
/// `group:NAME`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    /// The group's name.
    pub name: String,
    /// Its members, sorted.
    pub members: Vec<String>,
}

/// Body of `PUT /api/v1/roleAssignments/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleAssignmentBody {
    /// Who receives the role.
    #[schema(value_type = String)]
    pub principal: Principal,
    /// Name of the role definition.
    pub role_definition: String,
    /// Where it applies (and everything beneath).
    #[schema(value_type = String, example = "/subscriptions/s1/resourceGroups/rg1")]
    pub scope: Scope,
}

/// A role assignment.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleAssignment {
    /// Assignment id.
    pub id: String,
    /// Who.
    pub principal: String,
    /// Which role.
    pub role_definition: String,
    /// Where.
    pub scope: String,
    /// When it was made.
    pub created_at: String,
}

/// Body of `PUT /api/v1/roleDefinitions/{name}` (custom roles).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleDefinitionBody {
    /// Action patterns (`*` matches any run of characters).
    #[schema(value_type = Vec<String>)]
    pub actions: Vec<ajar_core::rbac::ActionPattern>,
    /// What the role is for.
    #[serde(default)]
    pub description: Option<String>,
}

/// A role definition.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleDefinition {
    /// Role name.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// Action patterns.
    pub actions: Vec<String>,
    /// Whether it ships with ajar (read-only).
    pub built_in: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: serde_json::Value) -> Result<PolicyBody, String> {
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    #[test]
    fn the_briefs_policy_example_parses() {
        let b = body(json!({"kind":"Basic","properties":{"virtualMachines":[{
            "id":"/subscriptions/S/resourceGroups/RG/providers/Microsoft.Compute/virtualMachines/VM",
            "ports":[{"number":22,"protocol":"*","allowedSourceAddressPrefix":["*"],"maxRequestAccessDuration":"PT3H"},
                     {"number":3389,"protocol":"*","allowedSourceAddressPrefix":"*","maxRequestAccessDuration":"PT3H"}]}]}}))
        .unwrap();
        let rules = b.to_domain().unwrap();
        assert_eq!(rules.machines[0].ports.len(), 2);
        assert_eq!(
            rules.machines[0].ports[0].allowed_sources,
            vec![SourcePrefix::Any]
        );
    }

    #[test]
    fn field_errors_name_the_field() {
        let e = body(json!({"properties":{"virtualMachines":[{"id":"/subscriptions/s/resourceGroups/r/machines/m",
            "ports":[{"number":70000,"protocol":"*","allowedSourceAddressPrefix":"*","maxRequestAccessDuration":"PT3H"}]}]}}))
        .unwrap_err();
        assert!(e.contains("70000"), "{e}");
        assert!(body(json!({"properties":{"virtualMachines":[]},"extra":1})).is_err());
    }

    #[test]
    fn both_source_fields_are_refused() {
        let b = body(json!({"properties":{"virtualMachines":[{"id":"/subscriptions/s/resourceGroups/r/machines/m",
            "ports":[{"number":22,"protocol":"*","allowedSourceAddressPrefix":"*","allowedSourceAddressPrefixes":["10.0.0.0/8"],"maxRequestAccessDuration":"PT3H"}]}]}}))
        .unwrap();
        assert_eq!(
            b.to_domain().unwrap_err().target,
            "properties.virtualMachines[0].ports[0].allowedSourceAddressPrefixes"
        );
    }
}

/// One activity record: a change or a refused attempt, chained to the previous record by hash.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActivityRecord {
    /// Position in the log, from 1 without gaps.
    pub id: i64,
    /// When (RFC 3339, UTC).
    pub time: String,
    /// Who acted (`system:scheduler` for the scheduler, `agent:NAME` for agents).
    pub principal: String,
    /// The caller's address, when known.
    pub source_address: Option<String>,
    /// The action (an RBAC action, or `ajar.jitRequests/<step>` for a request's lifecycle).
    pub action: String,
    /// The object acted on.
    pub resource_id: String,
    /// The access request concerned, if any.
    pub request_id: Option<String>,
    /// The HTTP request id (`X-Request-Id`) that caused it, if any.
    pub correlation_id: Option<String>,
    /// `Succeeded`, `Denied` or `Failed`.
    pub result: String,
    /// Details (JSON).
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    /// This record's hash (hex SHA-256 over the previous hash and this record).
    pub hash: String,
}

/// Answer of `GET /api/v1/activity/verify`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActivityVerification {
    /// Whether every record verified.
    pub ok: bool,
    /// How many records verified.
    pub records: i64,
    /// The first record that does not verify.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_broken_id: Option<i64>,
    /// What is wrong with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The last verified record's hash: keep it elsewhere; a later verify that no longer
    /// reaches it shows records removed from the end.
    pub head_hash: String,
}

/// The events a notification subscription can receive.
pub const NOTIFICATION_EVENTS: &[&str] = &[
    "requestCreated",
    "requestApproved",
    "requestDenied",
    "requestTimedOut",
    "accessExpiring",
    "accessExpired",
];

/// Where webhook notifications go.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookTarget {
    /// `https://` (or `http://`) URL that receives a JSON POST per notification.
    pub url: String,
    /// Key for the `X-Ajar-Signature` HMAC-SHA256; write-only (16 to 256 characters). Omit on
    /// update to keep the current one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Whether a secret is set (in answers only).
    #[serde(
        default,
        skip_deserializing,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub secret_set: bool,
}

/// Where email notifications go.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EmailTarget {
    /// Fixed recipients of every matching event.
    #[serde(default)]
    pub to: Vec<String>,
    /// Also mail the people concerned (approvers of a new request, the requester of a
    /// decision, both on expiry) whose principal is an email address.
    #[serde(default)]
    pub notify_participants: bool,
}

/// The settings of a notification subscription.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NotificationSubscriptionProperties {
    /// Events about objects at or beneath this scope are sent (within the subscription).
    #[schema(value_type = String)]
    pub scope: Scope,
    /// Which events (see [`NOTIFICATION_EVENTS`]); empty means all.
    #[serde(default)]
    pub events: Vec<String>,
    /// Deliver by webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookTarget>,
    /// Deliver by email.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailTarget>,
    /// Attempts before a notification is dead-lettered (1 to 20, default 8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
}

/// Body of `PUT /api/v1/subscriptions/{sub}/notificationSubscriptions/{name}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NotificationSubscriptionBody {
    /// The settings.
    pub properties: NotificationSubscriptionProperties,
}

/// A notification subscription.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationSubscription {
    /// Resource id.
    pub id: String,
    /// Name.
    pub name: String,
    /// The settings (the webhook secret is never returned).
    pub properties: NotificationSubscriptionProperties,
}

/// One notification's delivery.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// Delivery id: the idempotency key (`Idempotency-Key` / `X-Ajar-Delivery`).
    pub id: String,
    /// The event.
    pub event: String,
    /// `Pending`, `Delivered` or `Dead` (dead-lettered after the last attempt).
    pub state: String,
    /// Attempts made.
    pub attempts: i64,
    /// When the next attempt is due (pending only).
    pub next_attempt_at: Option<String>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When it was queued.
    pub created_at: String,
    /// The notification.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

/// Answer of `GET /api/v1/me`: who the token authenticates.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Me {
    /// The principal.
    pub principal: String,
    /// Its local groups (names, without `group:`).
    pub groups: Vec<String>,
    /// The server's clock now (RFC 3339), so clients can show countdowns despite clock skew.
    pub server_time: String,
}
