//! HTTP handlers, one module per resource, and what they share.

pub mod activity;
pub mod agents;
pub mod applications;
pub mod authorize;
pub mod figures;
pub mod groups;
pub mod health;
pub mod jit_requests;
pub mod machines;
pub mod metrics;
pub mod notifications;
pub mod openapi;
pub mod policies;
pub mod rbac;
pub mod requests;
pub mod sessions;
pub mod settings;
pub mod tokens;

use crate::error::{AppError, AppResult};
use ajar_api::ErrorCode;
use ajar_core::id::{Name, ResourceId, ResourceKind, Scope};
use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use serde::Serialize;

/// Unknown paths.
pub async fn not_found() -> AppError {
    AppError::new(ErrorCode::NotFound, "no such API path")
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

/// Most items a list answers at once.
pub const LIST_PAGE_MAX: usize = 1000;

/// `top` (1 to [`LIST_PAGE_MAX`], default the maximum) and `skipToken` (an offset) of a list
/// answered in pages of bounded size, with the request's other query parameters kept for the
/// next page's link.
#[derive(Debug, Clone)]
pub struct Paging {
    top: usize,
    skip: usize,
    path: String,
    kept: Vec<String>,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Paging {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        let mut paging = Paging {
            top: LIST_PAGE_MAX,
            skip: 0,
            path: parts.uri.path().to_owned(),
            kept: Vec::new(),
        };
        for pair in parts.uri.query().unwrap_or("").split('&') {
            match pair.split_once('=').unwrap_or((pair, "")) {
                ("top", v) => {
                    paging.top = v
                        .parse()
                        .ok()
                        .filter(|n| (1..=LIST_PAGE_MAX).contains(n))
                        .ok_or_else(|| {
                            AppError::new(
                                ErrorCode::InvalidParameter,
                                format!("top must be between 1 and {LIST_PAGE_MAX}"),
                            )
                            .at("top")
                        })?;
                }
                ("skipToken", v) => {
                    paging.skip = v.parse().map_err(|_| {
                        AppError::new(ErrorCode::InvalidParameter, "skipToken is not valid")
                            .at("skipToken")
                    })?;
                }
                ("", _) => {}
                _ => paging.kept.push(pair.to_owned()),
            }
        }
        Ok(paging)
    }
}

impl Paging {
    /// One page of `items` (kept in their order), with a `nextLink` when more follow.
    pub fn list<T>(&self, items: Vec<T>) -> ajar_api::wire::List<T> {
        let total = items.len();
        let value: Vec<T> = items.into_iter().skip(self.skip).take(self.top).collect();
        let next = self.skip.saturating_add(self.top);
        let next_link = (next < total).then(|| {
            let mut query = self.kept.clone();
            query.push(format!("top={}", self.top));
            query.push(format!("skipToken={next}"));
            format!("{}?{}", self.path, query.join("&"))
        });
        ajar_api::wire::List { value, next_link }
    }
}

/// A list page size: `top` if given (1 to 1000), else 100.
pub fn page_size(top: Option<u32>) -> AppResult<u32> {
    match top {
        None => Ok(100),
        Some(n) if (1..=1000).contains(&n) => Ok(n),
        Some(_) => Err(AppError::new(
            ErrorCode::InvalidParameter,
            "top must be between 1 and 1000",
        )
        .at("top")),
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

/// `top` and `skipToken` of a paged list.
#[derive(Debug, serde::Deserialize)]
pub struct PageQuery {
    top: Option<String>,
    #[serde(rename = "skipToken")]
    skip_token: Option<String>,
}

impl PageQuery {
    /// The page size and the position to continue from.
    pub fn parse(&self) -> AppResult<(u32, Option<ajar_store::Cursor>)> {
        let top = match &self.top {
            None => None,
            Some(t) => Some(t.parse::<u32>().map_err(|_| {
                AppError::new(ErrorCode::InvalidParameter, "top must be a whole number").at("top")
            })?),
        };
        let cursor = match &self.skip_token {
            None => None,
            Some(t) => Some(
                t.split_once('.')
                    .and_then(|(at, id)| {
                        Some(ajar_store::Cursor {
                            created_at: at.parse().ok()?,
                            id: id.to_owned(),
                        })
                    })
                    .ok_or_else(|| {
                        AppError::new(ErrorCode::InvalidParameter, "skipToken is not valid")
                            .at("skipToken")
                    })?,
            ),
        };
        Ok((page_size(top)?, cursor))
    }
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
                AppError::new(ErrorCode::InternalError, "internal error")
            }
            E::Unavailable(m) => AppError::new(ErrorCode::ServiceUnavailable, m),
            E::Store(s) => s.into(),
        }
    }
}
