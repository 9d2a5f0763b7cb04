//! Whether JIT is switched on for a scope.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Per-scope JIT setting (`.../jitSettings` at subscription or resource-group scope).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JitSettings {
    /// When false, machines in the scope are `Unsupported` and no access can be requested.
    pub jit_enabled: bool,
}
