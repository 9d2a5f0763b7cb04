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
    let lasting = LastingToken {
        id: "bootstrap",
        principal: BOOTSTRAP_PRINCIPAL,
        description: "bootstrap admin token",
        created_by: "ajar",
    };
    let token = lasting.insert(&mut tx, now).await?;
    make_owner(&mut tx, "bootstrap-owner", BOOTSTRAP_PRINCIPAL, "ajar", now).await?;
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
            make_owner(&mut tx, &id, principal, OPERATOR_PRINCIPAL, now).await?;
            Some(id)
        }
    };
    let id = uuid::Uuid::new_v4().to_string();
    let token = LastingToken {
        id: &id,
        principal,
        description: "Owner token minted from the data directory",
        created_by: OPERATOR_PRINCIPAL,
    }
    .insert(&mut tx, now)
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

/// A token without an end, made by ajar itself rather than through the API.
struct LastingToken<'a> {
    id: &'a str,
    principal: &'a str,
    description: &'a str,
    created_by: &'a str,
}

impl LastingToken<'_> {
    /// Stores the token (its hash) and answers its secret, to be shown once.
    async fn insert(
        &self,
        tx: &mut ajar_store::Tx,
        now: jiff::Timestamp,
    ) -> Result<String, AppError> {
        let (token, hash) = new_token()?;
        tx.insert_token(
            &TokenRow {
                id: self.id.to_owned(),
                principal: self.principal.to_owned(),
                description: Some(self.description.to_owned()),
                created_by: self.created_by.to_owned(),
                created_at: now,
                expires_at: None,
                idp_groups: Vec::new(),
                parent_id: None,
            },
            &hash,
        )
        .await?;
        Ok(token)
    }
}

/// Makes `principal` Owner at `/` with the assignment `id`, by `by`.
async fn make_owner(
    tx: &mut ajar_store::Tx,
    id: &str,
    principal: &str,
    by: &str,
    now: jiff::Timestamp,
) -> Result<(), AppError> {
    tx.put_assignment(
        &AssignmentRow {
            id: id.to_owned(),
            principal: principal.to_owned(),
            role_name: "Owner".to_owned(),
            scope: "/".to_owned(),
            created_at: now,
        },
        by,
    )
    .await?;
    Ok(())
}
