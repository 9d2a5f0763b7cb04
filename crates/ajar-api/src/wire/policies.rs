//! JIT network access policies.

use super::*;
use ajar_core::FieldError;
use ajar_core::duration::AccessDuration;
use ajar_core::id::{Name, ResourceId};
use ajar_core::net::{Port, Protocol};
use ajar_core::policy::{MachineRules, PolicyRules, PortRule};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Body of `PUT .../jitNetworkAccessPolicies/{name}`: the full policy.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyBody {
    /// `Basic` (the only kind); may be omitted.
    #[serde(default)]
    pub kind: Option<String>,
    /// The location to keep with the policy (the Azure-compatible paths name one); omitted:
    /// the policy keeps the location it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub location: Option<Name>,
    /// The rules.
    pub properties: PolicyProperties,
}

/// The rules of a policy.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyProperties {
    /// Covered machines and their ports.
    pub virtual_machines: Vec<PolicyMachine>,
    /// Cut connections opened during a window when it ends (default false: established
    /// connections survive, and only new ones are refused).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cut_established_on_expiry: bool,
    /// `AutoApprove` (the default: requests are granted at once) or `ManualApprove`.
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
    /// The location kept with the policy, when one was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
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
