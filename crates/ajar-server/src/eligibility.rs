//! Eligibility: who may activate which role on an application, and the rule that it names a
//! role that exists there.

use crate::error::{AppError, AppResult};
use ajar_api::ErrorCode;
use ajar_api::wire::EligibleRole;
use ajar_store::{EligibilityRow, Tx};

/// An eligibility as the API shows it.
pub fn view(e: EligibilityRow) -> EligibleRole {
    EligibleRole {
        id: e.id,
        application_id: e.application_id,
        principal: e.principal,
        role_definition: e.role_name,
        created_at: e.created_at,
    }
}

/// Checks that `role` names a role at the application `app`: one of its own, or one of ajar's
/// (built in or custom). 400 at `roleDefinition` otherwise.
pub async fn require_role_at(tx: &mut Tx, app: &str, role: &str) -> AppResult<()> {
    if tx.application_role(app, role).await?.is_some()
        || ajar_core::rbac::is_built_in(role)
        || tx.role(role).await?.is_some()
    {
        return Ok(());
    }
    Err(AppError::new(
        ErrorCode::ValidationFailed,
        format!(
            "role {role} is not defined at {app}: define it with PUT /api/v1{app}/roleDefinitions/{role}, or name one of ajar's roles"
        ),
    )
    .at("roleDefinition"))
}
