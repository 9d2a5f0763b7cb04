//! Machines: the inventory JIT protects.

use super::*;
use ajar_core::FieldError;
use ajar_core::machine::MachineState;
use ajar_core::machine::Os;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;
use utoipa::ToSchema;

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
    pub jit_state: JitState,
    /// Request figures (in reads, not in the answer to a write).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_figures: Option<RequestFigures>,
    /// Why the machine is `Unsupported`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsupported_reason: Option<String>,
    /// The JIT policy covering the machine, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jit_policy_id: Option<String>,
    /// Protected ports that something other than ajar leaves open to everyone, as the
    /// machine's enforcement point last found them (`aws` agents look at every other security
    /// group on the instance). ajar cannot close them: remove those rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub standing_exposures: Vec<super::agents::Exposure>,
}

wire_enum! {
    /// How JIT applies to a machine.
    JitState {
        /// A JIT policy covers the machine.
        Configured = "Configured",
        /// No policy covers it yet, but one could.
        NotConfigured = "NotConfigured",
        /// JIT cannot work for this machine.
        Unsupported = "Unsupported",
    }
}

impl From<&MachineState> for JitState {
    fn from(state: &MachineState) -> Self {
        match state {
            MachineState::Configured => JitState::Configured,
            MachineState::NotConfigured => JitState::NotConfigured,
            MachineState::Unsupported(_) => JitState::Unsupported,
        }
    }
}
