//! The first start: an Owner token for the principal `admin`, created once.

use crate::AppState;
use crate::auth::new_token;
use crate::error::AppError;
use ajar_store::{AssignmentRow, NewActivity, TokenRow};

/// Principal of the bootstrap token.
pub const BOOTSTRAP_PRINCIPAL: &str = "admin";
const BOOTSTRAP_KEY: &str = "bootstrap_done";

/// On a store that was never bootstrapped, creates the `admin` principal's token and an Owner
/// assignment at `/`, and returns the token (to be shown once). Returns `None` afterwards.
pub async fn bootstrap(state: &AppState) -> Result<Option<String>, AppError> {
    let mut tx = state.store.write().await?;
    if tx.meta(BOOTSTRAP_KEY).await?.is_some() {
        return Ok(None);
    }
    let now = state.clock.now();
    let (token, hash) = new_token()?;
    tx.insert_token(
        &TokenRow {
            id: "bootstrap".to_owned(),
            principal: BOOTSTRAP_PRINCIPAL.to_owned(),
            description: Some("bootstrap admin token".to_owned()),
            created_by: "ajar".to_owned(),
            created_at: now,
            expires_at: None,
            idp_groups: Vec::new(),
            parent_id: None,
        },
        &hash,
    )
    .await?;
    tx.put_assignment(
        &AssignmentRow {
            id: "bootstrap-owner".to_owned(),
            principal: BOOTSTRAP_PRINCIPAL.to_owned(),
            role_name: "Owner".to_owned(),
            scope: "/".to_owned(),
            created_at: now,
        },
        "ajar",
    )
    .await?;
    tx.set_meta(BOOTSTRAP_KEY, &now.to_string()).await?;
    tx.commit_recorded(
        &NewActivity::new(
            now,
            "system:bootstrap",
            "ajar.tokens/write",
            "/tokens/bootstrap",
        )
        .with_details(serde_json::json!({
            "principal": BOOTSTRAP_PRINCIPAL,
            "roleAssignment": "bootstrap-owner",
            "roleDefinition": "Owner",
            "scope": "/",
        })),
    )
    .await?;
    Ok(Some(token))
}
