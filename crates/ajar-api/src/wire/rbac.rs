//! Tokens, sessions, identity providers, groups, roles and role assignments, and who the caller is.

use ajar_core::id::Scope;
use ajar_core::principal::Principal;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Body of `POST /api/v1/tokens`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenCreate {
    /// Whom the token authenticates.
    #[schema(value_type = String)]
    pub principal: Principal,
    /// What the token is for.
    #[serde(default)]
    pub description: Option<String>,
}

/// A token's metadata; `token` holds the secret only in the creation response.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Token {
    /// Token id.
    pub id: String,
    /// The secret, shown once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Whom it authenticates.
    pub principal: String,
    /// What it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Who created it.
    pub created_by: String,
    /// When.
    #[schema(value_type = String)]
    pub created_at: Timestamp,
    /// When it stops working (sessions); absent for tokens that last until deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub expires_at: Option<Timestamp>,
    /// Groups an identity provider asserted when the session was made (they count as the
    /// principal's groups while the session lasts).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

/// A trusted OpenID Connect issuer, as `GET /api/v1/identityProviders` lists it for sign-in.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdentityProvider {
    /// Shown on sign-in buttons.
    pub name: String,
    /// The issuer URL (discovery is at `ISSUER/.well-known/openid-configuration`).
    pub issuer: String,
    /// The client id to sign in with (the audience ajar expects in tokens).
    pub client_id: String,
}

/// Body of `PUT /api/v1/groups/{name}`: the group's members (replaces them all).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GroupBody {
    /// Principals in the group (not other groups).
    #[schema(value_type = Vec<String>)]
    pub members: Vec<Principal>,
}

/// A group of principals; role assignments, eligibilities and approvers may name it as
/// `group:NAME`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    /// The group's name.
    pub name: String,
    /// Its members, sorted.
    pub members: Vec<String>,
}

/// Body of `PUT /api/v1/roleAssignments/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleAssignmentBody {
    /// Who receives the role.
    #[schema(value_type = String)]
    pub principal: Principal,
    /// Name of the role definition.
    pub role_definition: String,
    /// Where it applies (and everything beneath).
    #[schema(value_type = String, example = "/subscriptions/s1/resourceGroups/rg1")]
    pub scope: Scope,
}

/// A role assignment.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleAssignment {
    /// Assignment id.
    pub id: String,
    /// Who.
    pub principal: String,
    /// Which role.
    pub role_definition: String,
    /// Where.
    pub scope: String,
    /// When it was made.
    #[schema(value_type = String)]
    pub created_at: Timestamp,
}

/// Body of `PUT /api/v1/roleDefinitions/{name}` (custom roles).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleDefinitionBody {
    /// Action patterns (`*` matches any run of characters).
    #[schema(value_type = Vec<String>)]
    pub actions: Vec<ajar_core::rbac::ActionPattern>,
    /// What the role is for.
    #[serde(default)]
    pub description: Option<String>,
}

/// A role definition.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleDefinition {
    /// Role name.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// Action patterns.
    pub actions: Vec<String>,
    /// Whether it ships with ajar (read-only).
    pub built_in: bool,
}

/// Answer of `GET /api/v1/me`: who the token authenticates.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Me {
    /// The principal.
    pub principal: String,
    /// Its local groups (names, without `group:`).
    pub groups: Vec<String>,
    /// The server's clock now (RFC 3339), so clients can show countdowns despite clock skew.
    #[schema(value_type = String)]
    pub server_time: Timestamp,
}
