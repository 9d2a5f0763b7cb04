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

/// Who the activity log names for a token minted from the data directory.
pub const OPERATOR_PRINCIPAL: &str = "system:operator";

/// An Owner token made by [`mint_owner_token`].
#[derive(Debug, Clone)]
pub struct MintedToken {
    /// The token's id.
    pub id: String,
    /// The secret, to be shown once.
    pub token: String,
    /// The Owner-at-`/` assignment made for the principal, when it had none.
    pub assignment: Option<String>,
}

/// For an operator who can open the store (a lost bootstrap token): a new token for
/// `principal`, who is made Owner at `/` unless they are already, recorded in the activity
/// log as done by [`OPERATOR_PRINCIPAL`]. Answers `None`, changing nothing, on a store that was
/// never started (most likely the wrong data directory).
pub async fn mint_owner_token(
    state: &AppState,
    principal: &ajar_core::principal::Principal,
) -> Result<Option<MintedToken>, AppError> {
    let principal = principal.as_str();
    let mut tx = state.store.write().await?;
    if tx.meta(BOOTSTRAP_KEY).await?.is_none() {
        return Ok(None);
    }
    let now = state.clock.now();
    let owner = tx
        .assignments("/", Some(principal))
        .await?
        .into_iter()
        .find(|a| a.role_name == "Owner" && a.scope == "/");
    let assignment = match owner {
        Some(_) => None,
        None => {
            let id = format!("owner-{}", uuid::Uuid::new_v4());
            tx.put_assignment(
                &AssignmentRow {
                    id: id.clone(),
                    principal: principal.to_owned(),
                    role_name: "Owner".to_owned(),
                    scope: "/".to_owned(),
                    created_at: now,
                },
                OPERATOR_PRINCIPAL,
            )
            .await?;
            Some(id)
        }
    };
    let (token, hash) = new_token()?;
    let id = uuid::Uuid::new_v4().to_string();
    tx.insert_token(
        &TokenRow {
            id: id.clone(),
            principal: principal.to_owned(),
            description: Some("Owner token minted from the data directory".to_owned()),
            created_by: OPERATOR_PRINCIPAL.to_owned(),
            created_at: now,
            expires_at: None,
            idp_groups: Vec::new(),
            parent_id: None,
        },
        &hash,
    )
    .await?;
    tx.commit_recorded(
        &NewActivity::new(
            now,
            OPERATOR_PRINCIPAL,
            "ajar.tokens/write",
            &format!("/tokens/{id}"),
        )
        .with_details(serde_json::json!({
            "principal": principal,
            "roleAssignment": assignment,
            "roleDefinition": "Owner",
            "scope": "/",
            "mintedFrom": "data directory",
        })),
    )
    .await?;
    Ok(Some(MintedToken {
        id,
        token,
        assignment,
    }))
}
