//! Policies as the engine reads them.

use crate::error::{AppError, AppResult};
use ajar_api::ErrorCode;
use ajar_core::policy::PolicyRules;
use ajar_store::PolicyRow;

/// The policy's rules as stored.
pub fn stored_rules(row: &PolicyRow) -> AppResult<PolicyRules> {
    serde_json::from_str(&row.rules).map_err(|e| {
        tracing::error!(policy = %row.id, error = %e, "stored policy unreadable");
        AppError::new(ErrorCode::InternalError, "internal error")
    })
}
