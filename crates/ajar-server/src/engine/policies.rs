//! Policies as the engine reads them.

use super::{EngineError, EngineResult};
use ajar_core::policy::PolicyRules;
use ajar_store::PolicyRow;

/// The policy's rules as stored.
pub fn stored_rules(row: &PolicyRow) -> EngineResult<PolicyRules> {
    serde_json::from_str(&row.rules)
        .map_err(|e| EngineError::Corrupt(format!("policy {}: {e}", row.id)))
}
