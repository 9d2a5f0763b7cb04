//! Authentication and the authorization checks every handler makes.
//!
//! A bearer credential is either an ajar API token (stored as a SHA-256 hash; console sessions
//! are such tokens with an end) or a JWT from a trusted OpenID Connect issuer, verified by
//! [`ajar_oidc`]. Either way the caller's permissions come from the role assignments of their
//! principal and of their groups: ajar's own groups plus, for a JWT (or a session made from
//! one), the groups the issuer asserts.

use crate::AppState;
use crate::error::AppError;
use crate::journal::Actor;
use ajar_api::ErrorCode;
use ajar_core::id::Scope;
use ajar_core::rbac::{ActionPattern, Permissions, RoleDefinition, built_in_roles};
use ajar_store::NewActivity;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use jiff::Timestamp;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Longest bearer credential accepted (JWTs with many groups run to a few kilobytes).
pub const MAX_BEARER_LEN: usize = 16 * 1024;

/// What a caller hears when its token is unknown, past its end or revoked.
pub const TOKEN_REFUSED: &str = "the token is not valid, has expired or has been revoked";

/// Prefix of every ajar API token, so leaked tokens are easy to scan for.
pub const TOKEN_PREFIX: &str = "ajar_";

/// A new random token secret (256 bits) and the hash under which it is stored.
pub fn new_token() -> Result<(String, String), AppError> {
    let bytes = ajar_oidc::random_bytes(32).map_err(|e| {
        tracing::error!(error = %e, "no randomness for a token");
        AppError::internal()
    })?;
    let token = format!("{TOKEN_PREFIX}{}", hex::encode(bytes));
    let hash = hash_token(&token);
    Ok((token, hash))
}

/// The stored form of a token: hex SHA-256. Tokens are 256-bit random strings, so a fast hash
/// is enough (no password stretching needed) and lookup by hash is constant-cost.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Resolves a role name to its definition: built-in first, then the custom role's stored
/// actions.
pub fn resolve_role(name: &str, custom_actions: Option<&[String]>) -> Option<RoleDefinition> {
    if let Some(r) = built_in_roles().into_iter().find(|r| r.name == name) {
        return Some(r);
    }
    let actions = custom_actions?
        .iter()
        .map(|a| ActionPattern::parse(a).ok())
        .collect::<Option<Vec<_>>>()?;
    Some(RoleDefinition::ajar(name, "", actions, false))
}

/// How long a resolved token is reused without asking the store. Changes committed through
/// this server (revoking a token, changing an assignment or a role) make the cache stale at
/// once ([`ajar_store::Store::access_generation`]); the TTL bounds how long a change made
/// elsewhere (another replica) can go unseen.
pub const AUTH_CACHE_TTL: Duration = Duration::from_secs(2);
/// Most resolved tokens held: room for a fleet of 10,000 agents (one token each) beside its
/// people and applications; when full, the cache starts over. An entry is a few hundred bytes.
const AUTH_CACHE_MAX: usize = 50_000;

/// Resolved tokens (by hash): principal and permissions, so an authenticated request costs no
/// store round trip. An entry is reused only while the store's access generation is the one
/// it was resolved under.
#[derive(Debug, Default)]
pub struct AuthCache {
    entries: Mutex<HashMap<String, CachedCaller>>,
}

#[derive(Debug, Clone)]
struct CachedCaller {
    generation: u64,
    loaded: Instant,
    resolved: Resolved,
}

impl AuthCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, CachedCaller>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, hash: &str, now: Timestamp, generation: u64) -> Option<Resolved> {
        self.lock()
            .get(hash)
            .filter(|c| {
                c.generation == generation
                    && c.loaded.elapsed() < AUTH_CACHE_TTL
                    && c.resolved.expires.is_none_or(|e| now < e)
            })
            .map(|c| c.resolved.clone())
    }

    fn put(&self, hash: String, entry: CachedCaller) {
        let mut entries = self.lock();
        if entries.len() >= AUTH_CACHE_MAX {
            entries.clear();
        }
        entries.insert(hash, entry);
    }
}

/// A resolved credential: who, their groups, what they may do, until when.
#[derive(Debug, Clone)]
struct Resolved {
    principal: String,
    groups: Vec<String>,
    asserted_groups: Vec<String>,
    permissions: Permissions,
    expires: Option<Timestamp>,
    token_id: Option<String>,
    issuer: Option<String>,
}

/// Looks an API token up in the store; `None` when unknown or past its end.
async fn resolve_token(
    state: &AppState,
    hash: &str,
    now: Timestamp,
) -> Result<Option<Resolved>, AppError> {
    let mut tx = state.store.read().await?;
    let Some(row) = tx.token_by_hash(hash).await? else {
        return Ok(None);
    };
    if row.expires_at.is_some_and(|e| e <= now) {
        return Ok(None);
    }
    let mut resolved =
        resolve_principal(&mut tx, row.principal, row.idp_groups, row.expires_at).await?;
    resolved.token_id = Some(row.id);
    Ok(Some(resolved))
}

/// Verifies a JWT with the trusted issuers: 401 when refused, 503 when the issuer's keys
/// cannot be fetched.
async fn resolve_jwt(state: &AppState, token: &str, now: Timestamp) -> Result<Resolved, AppError> {
    let identity = state.oidc.verify(token, now).await.map_err(|e| match e {
        ajar_oidc::VerifyError::Refused(m) => AppError::new(ErrorCode::Unauthenticated, m),
        ajar_oidc::VerifyError::Unavailable(m) => AppError::new(ErrorCode::ServiceUnavailable, m),
    })?;
    let mut tx = state.store.read().await?;
    let mut resolved = resolve_principal(
        &mut tx,
        identity.principal,
        identity.groups,
        Some(identity.expires),
    )
    .await?;
    resolved.issuer = Some(identity.issuer);
    Ok(resolved)
}

/// The principal's groups (ajar's own plus `asserted` ones) and the permissions of their
/// assignments and their groups'.
async fn resolve_principal(
    tx: &mut ajar_store::Tx,
    principal: String,
    asserted_groups: Vec<String>,
    expires: Option<Timestamp>,
) -> Result<Resolved, AppError> {
    let mut groups = tx.groups_of(&principal).await?;
    groups.extend(asserted_groups.iter().cloned());
    groups.sort();
    groups.dedup();
    let mut assignments = tx.assignments_of(&principal).await?;
    for g in &groups {
        assignments.extend(tx.assignments_of(&format!("group:{g}")).await?);
    }
    let mut entries = Vec::with_capacity(assignments.len());
    for (a, custom) in assignments {
        let (Ok(scope), Some(role)) = (
            Scope::parse(&a.scope),
            resolve_role(&a.role_name, custom.as_deref()),
        ) else {
            tracing::warn!(assignment = %a.id, "skipping an assignment that cannot be resolved");
            continue;
        };
        entries.push((scope, role));
    }
    Ok(Resolved {
        principal,
        groups,
        asserted_groups,
        permissions: Permissions::new(entries),
        expires,
        token_id: None,
        issuer: None,
    })
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Who is calling.
    pub principal: String,
    /// The groups they belong to (names, without `group:`): ajar's own and asserted ones.
    pub groups: Vec<String>,
    /// The groups an identity provider asserted (in the JWT, or when the session was made);
    /// a session made by this caller carries them.
    pub asserted_groups: Vec<String>,
    /// What they may do, where.
    pub permissions: Permissions,
    /// When the credential the caller presented ends (a session's or a JWT's end); `None` for
    /// an API token without one. A credential made with it ends no later.
    pub expires: Option<Timestamp>,
    /// The id of the API token the caller presented (`None` for a JWT).
    pub token_id: Option<String>,
    /// The identity provider that issued the JWT the caller presented (`None` for an API
    /// token).
    pub issuer: Option<String>,
    /// The peer address of the connection, when known.
    pub address: Option<IpAddr>,
    /// The request's id ([`crate::request_id::RequestId`]), for records that should point
    /// back to the request and its log line; `None` only outside the router's middleware.
    pub request_id: Option<String>,
}

impl Caller {
    /// An activity record of the caller doing `action` on `resource_id` at `at` (successfully,
    /// unless the record says otherwise), with their address and the HTTP request id.
    pub fn did(&self, action: &str, resource_id: &str, at: Timestamp) -> NewActivity {
        Actor::from(self).did(action, resource_id, at)
    }

    /// Whether `principal` (a name or `group:NAME`) is the caller or one of their groups.
    pub fn is_or_belongs_to(&self, principal: &str) -> bool {
        principal == self.principal
            || principal
                .strip_prefix("group:")
                .is_some_and(|g| self.groups.iter().any(|m| m == g))
    }

    /// Fails with 403 unless the caller may do `action` at `scope`.
    pub fn require(&self, action: &str, scope: &Scope) -> Result<(), AppError> {
        if self.permissions.allows(action, scope) {
            Ok(())
        } else {
            Err(AppError::forbidden(&self.principal, action, scope))
        }
    }

    /// Whether the caller may do `action` at `scope`.
    pub fn may(&self, action: &str, scope: &Scope) -> bool {
        self.permissions.allows(action, scope)
    }

    /// Fails with 403 unless the caller may do `action` at `scope` or somewhere beneath it
    /// (the rule for lists).
    pub fn require_within(&self, action: &str, scope: &Scope) -> Result<(), AppError> {
        if self.permissions.allows_within(action, scope) {
            Ok(())
        } else {
            Err(AppError::forbidden(&self.principal, action, scope))
        }
    }
}

impl From<&Caller> for Actor {
    fn from(c: &Caller) -> Self {
        Actor::new(
            c.principal.clone(),
            c.address.map(|ip| ip.to_string()),
            c.request_id.clone(),
        )
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let unauthenticated = |m: &str| AppError::new(ErrorCode::Unauthenticated, m.to_owned());
        let header = parts.headers.get(AUTHORIZATION).ok_or_else(|| {
            unauthenticated("missing bearer token (Authorization: Bearer <token>)")
        })?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| {
                let (scheme, rest) = h.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
            .filter(|t| !t.is_empty() && t.len() <= MAX_BEARER_LEN)
            .ok_or_else(|| unauthenticated("the Authorization header must be 'Bearer <token>'"))?;
        let now = state.clock.now();
        let hash = hash_token(token);
        let address = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ci| ci.0.ip());
        // Read the generation first: a change committed during the lookup below makes its
        // entry stale rather than letting it outlive the change.
        let generation = state.store.access_generation();
        let resolved = match state.auth_cache.get(&hash, now, generation) {
            Some(r) => r,
            None => {
                if let Some(wait) = state.failed_auth.blocked(address, &hash, now) {
                    return Err(AppError::new(
                        ErrorCode::TooManyRequests,
                        format!(
                            "too many failed sign-ins from this address or with this credential; \
                             try again in {wait} s"
                        ),
                    ));
                }
                let resolved = if ajar_oidc::looks_like_jwt(token) && !state.oidc.is_empty() {
                    resolve_jwt(state, token, now).await
                } else {
                    resolve_token(state, &hash, now)
                        .await
                        .and_then(|r| r.ok_or_else(|| unauthenticated(TOKEN_REFUSED)))
                };
                let resolved = match resolved {
                    Ok(r) => {
                        state.failed_auth.succeeded(&hash, now);
                        r
                    }
                    Err(e) => {
                        if e.0.code == ErrorCode::Unauthenticated {
                            state.failed_auth.failed(address, &hash, now);
                        }
                        return Err(e);
                    }
                };
                state.auth_cache.put(
                    hash,
                    CachedCaller {
                        generation,
                        loaded: Instant::now(),
                        resolved: resolved.clone(),
                    },
                );
                resolved
            }
        };
        let request_id = parts
            .extensions
            .get::<crate::request_id::RequestId>()
            .map(|id| id.0.clone());
        let caller = Caller {
            principal: resolved.principal,
            groups: resolved.groups,
            asserted_groups: resolved.asserted_groups,
            permissions: resolved.permissions,
            expires: resolved.expires,
            token_id: resolved.token_id,
            issuer: resolved.issuer,
            address,
            request_id,
        };
        if let Some(slot) = parts.extensions.get::<crate::journal::CallerSlot>() {
            slot.fill(Actor::from(&caller));
        }
        Ok(caller)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hashed() {
        let (a, ha) = new_token().unwrap();
        let (b, _) = new_token().unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX) && a.len() == TOKEN_PREFIX.len() + 64);
        assert_eq!(ha, hash_token(&a));
        assert_eq!(ha.len(), 64);
        assert!(!ha.contains(&a[TOKEN_PREFIX.len()..]));
    }

    #[test]
    fn roles_resolve_built_in_then_custom() {
        assert!(resolve_role("Owner", None).is_some());
        let custom = resolve_role("Mine", Some(&["ajar.machines/read".to_owned()])).unwrap();
        assert!(custom.allows("ajar.machines/read"));
        assert!(!custom.allows("ajar.machines/write"));
        assert!(resolve_role("Missing", None).is_none());
    }
}
