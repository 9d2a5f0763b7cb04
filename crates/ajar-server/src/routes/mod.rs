//! HTTP handlers, one module per resource, and what they share.

pub mod activity;
pub mod agents;
pub mod application_roles;
pub mod applications;
pub mod arm;
pub mod authorize;
pub mod figures;
pub mod groups;
pub mod health;
pub mod jit_requests;
pub mod machines;
pub mod metrics;
pub mod notifications;
pub mod openapi;
pub mod paging;
pub mod policies;
pub mod rbac;
pub mod requests;
pub mod sessions;
pub mod settings;
pub mod tokens;
pub mod unknown;

use crate::error::{AppError, AppResult};
use ajar_api::ErrorCode;
use ajar_core::id::{Name, ResourceId, ResourceKind, Scope};
use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use serde::Serialize;

/// Unknown paths, answered with what shape was expected (see [`unknown::explain`]).
pub async fn not_found(uri: axum::http::Uri) -> AppError {
    static PATTERNS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let patterns = PATTERNS.get_or_init(|| {
        let (_, document) = openapi::documented().split_for_parts();
        let mut patterns: Vec<String> = document.paths.paths.keys().cloned().collect();
        patterns
            .extend(["/api/v1/openapi.json", "/healthz", "/readyz", "/metrics"].map(str::to_owned));
        patterns
    });
    AppError::new(
        ErrorCode::NotFound,
        unknown::explain(uri.path(), patterns.iter().map(String::as_str)),
    )
}

/// Known paths with an unsupported method.
pub async fn method_not_allowed() -> AppError {
    AppError::new(
        ErrorCode::MethodNotAllowed,
        "method not allowed on this path",
    )
}

/// Parses a path segment as a name, naming the parameter on failure.
pub fn name(param: &str, value: &str) -> AppResult<Name> {
    Name::parse(value).map_err(|e| AppError::parameter(param, e))
}

/// `/subscriptions/{sub}`.
pub fn subscription_scope(sub: &str) -> AppResult<Scope> {
    Ok(Scope::Subscription(name("subscriptionId", sub)?))
}

/// `/subscriptions/{sub}/resourceGroups/{rg}`.
pub fn group_scope(sub: &str, rg: &str) -> AppResult<Scope> {
    Ok(Scope::ResourceGroup(
        name("subscriptionId", sub)?,
        name("resourceGroupName", rg)?,
    ))
}

/// A resource id from path segments.
pub fn resource_id(sub: &str, rg: &str, kind: ResourceKind, n: &str) -> AppResult<ResourceId> {
    let param = match kind {
        ResourceKind::Machine => "machineName",
        ResourceKind::JitNetworkAccessPolicy => "policyName",
        ResourceKind::Application => "applicationName",
        ResourceKind::JitRequest => "jitRequestName",
    };
    Ok(ResourceId::new(
        name("subscriptionId", sub)?,
        name("resourceGroupName", rg)?,
        kind,
        name(param, n)?,
    ))
}

/// An optional RFC 3339 query parameter.
pub fn instant(value: &Option<String>, param: &str) -> AppResult<Option<Timestamp>> {
    value
        .as_deref()
        .map(|v| {
            v.parse::<Timestamp>().map_err(|_| {
                AppError::new(
                    ErrorCode::InvalidParameter,
                    format!("{param} must be an RFC 3339 instant"),
                )
                .at(param)
            })
        })
        .transpose()
}

/// A JSON answer with a chosen status and, optionally, an ETag.
pub struct Reply<T> {
    status: StatusCode,
    body: T,
    etag: Option<String>,
}

impl<T> Reply<T> {
    /// 200 OK.
    pub fn ok(body: T) -> Self {
        Self {
            status: StatusCode::OK,
            body,
            etag: None,
        }
    }

    /// 201 Created when `created`, else 200 OK.
    pub fn created_or_ok(created: bool, body: T) -> Self {
        Self {
            status: if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            },
            body,
            etag: None,
        }
    }

    /// 202 Accepted.
    pub fn accepted(body: T) -> Self {
        Self {
            status: StatusCode::ACCEPTED,
            body,
            etag: None,
        }
    }

    /// Adds an `ETag` header.
    pub fn with_etag(mut self, etag: &str) -> Self {
        self.etag = Some(format!("\"{etag}\""));
        self
    }
}

impl<T: Serialize> IntoResponse for Reply<T> {
    fn into_response(self) -> Response {
        let mut resp = (self.status, Json(self.body)).into_response();
        if let Some(etag) = self.etag.and_then(|e| HeaderValue::from_str(&e).ok()) {
            resp.headers_mut().insert(header::ETAG, etag);
        }
        resp
    }
}

/// 204 No Content.
pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// Checks `If-Match` / `If-None-Match` against the current ETag (`None`: the object does not
/// exist). `If-Match: *` needs the object to exist; `If-None-Match: *` needs it not to.
pub fn check_preconditions(headers: &HeaderMap, current: Option<&str>) -> AppResult<()> {
    let header = |h: header::HeaderName| {
        headers
            .get(h)
            .map(|v| v.to_str().unwrap_or_default().trim().to_owned())
    };
    let failed = |m: &str| Err(AppError::new(ErrorCode::PreconditionFailed, m.to_owned()));
    if let Some(want) = header(header::IF_MATCH) {
        let matches = match current {
            None => false,
            Some(_) if want == "*" => true,
            Some(cur) => want
                .split(',')
                .any(|w| w.trim().trim_start_matches("W/").trim_matches('"') == cur),
        };
        if !matches {
            return failed("If-Match does not match the current ETag; fetch the object again");
        }
    }
    if let Some(none) = header(header::IF_NONE_MATCH)
        && none == "*"
        && current.is_some()
    {
        return failed("the object already exists (If-None-Match: *)");
    }
    Ok(())
}

/// The engine's refusals as HTTP answers.
impl From<crate::engine::EngineError> for AppError {
    fn from(e: crate::engine::EngineError) -> Self {
        use crate::engine::EngineError as E;
        match e {
            E::Refused(r) => r.into(),
            E::Field(f) => f.into(),
            E::Conflict(m) => AppError::new(ErrorCode::Conflict, m),
            E::NotFound(what) => AppError::not_found(what),
            E::NotAllowed { message, target } => {
                AppError::new(ErrorCode::AuthorizationFailed, message).at(target)
            }
            E::Corrupt(m) => {
                tracing::error!(cause = %m, "stored data unreadable");
                AppError::internal()
            }
            E::Unavailable(m) => AppError::new(ErrorCode::ServiceUnavailable, m),
            E::Store(s) => s.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preconditions() {
        let mut h = HeaderMap::new();
        assert!(check_preconditions(&h, None).is_ok());
        h.insert(header::IF_MATCH, HeaderValue::from_static("\"abc\""));
        assert!(check_preconditions(&h, Some("abc")).is_ok());
        assert!(check_preconditions(&h, Some("def")).is_err());
        assert!(check_preconditions(&h, None).is_err());
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(check_preconditions(&h, None).is_ok());
        assert!(check_preconditions(&h, Some("abc")).is_err());
    }
}
