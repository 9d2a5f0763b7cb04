//! Network access requests (initiate) and their ports.

use super::*;
use ajar_core::FieldError;
use ajar_core::duration::AccessDuration;
use ajar_core::id::{ResourceId, ResourceKind};
use ajar_core::lifecycle::RequestState;
use ajar_core::net::{Port, Protocol, SourcePrefix};
use ajar_core::request::{PortStatus, RequestedMachine, RequestedPort, StatusReason, WindowEnd};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

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
    /// The initiate that asks for `machines`: one source in `allowedSourceAddressPrefix`,
    /// several in `allowedSourceAddressPrefixes`, none for the caller's own address.
    pub fn from_domain(machines: &[RequestedMachine], justification: Option<String>) -> Self {
        let port = |p: &RequestedPort| {
            let (end_time_utc, duration) = match p.end {
                WindowEnd::At(t) => (Some(t), None),
                WindowEnd::After(d) => (None, Some(d)),
            };
            let (one, several) = match p.sources.as_slice() {
                [] => (None, None),
                [s] => (Some(SourceList(vec![*s])), None),
                many => (None, Some(SourceList(many.to_vec()))),
            };
            InitiatePort {
                number: p.number,
                protocol: p.protocol,
                end_time_utc,
                duration,
                allowed_source_address_prefix: one,
                allowed_source_address_prefixes: several,
            }
        };
        InitiateBody {
            virtual_machines: machines
                .iter()
                .map(|m| InitiateMachine {
                    id: m.machine.clone(),
                    ports: m.ports.iter().map(port).collect(),
                })
                .collect(),
            justification,
        }
    }

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
    #[schema(value_type = String)]
    pub start_time_utc: Timestamp,
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
    #[schema(value_type = Option<String>)]
    pub approval_state: Option<RequestState>,
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

impl AccessRequestPort {
    /// The port's state as people read it, the same words history shows for its request:
    /// `Initiated`, `Revoked (NewerRequestInitiated)`, `Revoked (Expired)`, `Pending`.
    pub fn state_words(&self) -> String {
        match self.status {
            PortState::Revoked => {
                super::state_words(self.status.as_str(), Some(self.status_reason))
            }
            _ => self.status.to_string(),
        }
    }
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
    #[schema(value_type = String)]
    pub end_time_utc: Timestamp,
    /// `Initiated`, `Revoked`, or `Pending` while awaiting approval.
    pub status: PortState,
    /// `UserRequested`, `Expired`, `NewerRequestInitiated`, `PolicyChanged` or `AwaitingApproval`.
    pub status_reason: PortStatusReason,
    /// The port on the gateway that maps to this one, when a gateway enforces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapped_port: Option<u16>,
    /// Where to connect: the gateway's address and mapped port, or the machine's own address
    /// and port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_details: Option<ConnectionDetails>,
    /// When the enforcement point reported the port open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub open_since: Option<Timestamp>,
    /// When the enforcement point reported the port closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub closed_at: Option<Timestamp>,
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

wire_enum! {
    /// Whether a requested port is open, as the API shows it.
    PortState {
        /// Open until its end time.
        Initiated = "Initiated",
        /// Closed; see the reason.
        Revoked = "Revoked",
        /// Waiting for the approval request to be decided.
        Pending = "Pending",
    }
}

wire_enum! {
    /// Why a port has the state it has, as the API shows it.
    PortStatusReason {
        /// Opened at the requester's wish, or closed early at someone's wish.
        UserRequested = "UserRequested",
        /// The window ended.
        Expired = "Expired",
        /// A newer request for the same machine, port and source replaced this one.
        NewerRequestInitiated = "NewerRequestInitiated",
        /// The policy no longer covers the port.
        PolicyChanged = "PolicyChanged",
        /// The policy needs approval and none has been given yet.
        AwaitingApproval = "AwaitingApproval",
    }
}

impl From<PortStatus> for PortState {
    fn from(status: PortStatus) -> Self {
        match status {
            PortStatus::Initiated => PortState::Initiated,
            PortStatus::Revoked => PortState::Revoked,
        }
    }
}

impl From<StatusReason> for PortStatusReason {
    fn from(reason: StatusReason) -> Self {
        match reason {
            StatusReason::UserRequested => PortStatusReason::UserRequested,
            StatusReason::Expired => PortStatusReason::Expired,
            StatusReason::NewerRequestInitiated => PortStatusReason::NewerRequestInitiated,
            StatusReason::PolicyChanged => PortStatusReason::PolicyChanged,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_initiate_survives_the_trip_through_the_domain() {
        let body: InitiateBody = serde_json::from_value(serde_json::json!({
            "virtualMachines": [{
                "id": "/subscriptions/s/resourceGroups/rg/machines/vm1",
                "ports": [
                    {"number": 22, "duration": "PT1H", "allowedSourceAddressPrefix": "10.0.0.0/24"},
                    {"number": 3389, "protocol": "TCP", "endTimeUtc": "2026-07-15T17:00:00Z",
                     "allowedSourceAddressPrefixes": ["10.0.0.1", "2001:db8::/32"]},
                    {"number": 443, "duration": "PT5M"}
                ]
            }],
            "justification": "INC-1"
        }))
        .unwrap();
        let domain = body.to_domain().unwrap();
        let again = InitiateBody::from_domain(&domain, body.justification.clone());
        assert_eq!(again.to_domain().unwrap(), domain);
        assert_eq!(
            serde_json::to_value(&again).unwrap(),
            serde_json::to_value(&body).unwrap(),
            "the same shape as asked"
        );
    }
}
