//! Stable error codes and the error body every failing API call returns.

use serde::{Deserialize, Serialize};
use std::fmt;
use utoipa::ToSchema;

/// The codes the API uses in `error.code`. They are part of the interface: scripts match on
/// them, so they never change meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum ErrorCode {
    /// The body is not valid JSON, has a field of the wrong type, or an unknown field (400).
    InvalidRequestBody,
    /// A field breaks a rule (400); `target` names it.
    ValidationFailed,
    /// A path or query parameter is malformed (400).
    InvalidParameter,
    /// No credentials, or credentials that are not valid (401).
    Unauthenticated,
    /// The caller lacks the action at the object's scope (403).
    AuthorizationFailed,
    /// The object does not exist (404).
    NotFound,
    /// The method is not allowed on this path (405).
    MethodNotAllowed,
    /// The change clashes with existing state (409).
    Conflict,
    /// An `If-Match` precondition did not hold (412).
    PreconditionFailed,
    /// The body is larger than the server accepts (413).
    PayloadTooLarge,
    /// The body is not `application/json` (415).
    UnsupportedMediaType,
    /// Too many failed sign-ins from this address or with this credential (429); wait for
    /// `Retry-After` seconds.
    TooManyRequests,
    /// The request's headers are larger than the server accepts (431).
    HeadersTooLarge,
    /// Something failed inside ajar (500); details are in the server log, never in the body.
    InternalError,
    /// The store is unavailable (503); retrying later may succeed.
    ServiceUnavailable,
    /// An Azure-compatible path was called without `api-version` (400).
    MissingApiVersionParameter,
    /// An Azure-compatible path was called with an `api-version` that is not a version (400).
    InvalidApiVersionParameter,
    /// An Azure-compatible path was called with a version ajar does not serve for it (400).
    NoRegisteredProviderFound,
}

impl ErrorCode {
    /// The HTTP status this code is sent with.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::InvalidRequestBody
            | ErrorCode::ValidationFailed
            | ErrorCode::InvalidParameter
            | ErrorCode::MissingApiVersionParameter
            | ErrorCode::InvalidApiVersionParameter
            | ErrorCode::NoRegisteredProviderFound => 400,
            ErrorCode::Unauthenticated => 401,
            ErrorCode::AuthorizationFailed => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::Conflict => 409,
            ErrorCode::PreconditionFailed => 412,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::TooManyRequests => 429,
            ErrorCode::HeadersTooLarge => 431,
            ErrorCode::InternalError => 500,
            ErrorCode::ServiceUnavailable => 503,
        }
    }

    /// Every code, for tests and documentation.
    pub const ALL: [ErrorCode; 18] = [
        ErrorCode::InvalidRequestBody,
        ErrorCode::ValidationFailed,
        ErrorCode::InvalidParameter,
        ErrorCode::Unauthenticated,
        ErrorCode::AuthorizationFailed,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::Conflict,
        ErrorCode::PreconditionFailed,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::TooManyRequests,
        ErrorCode::HeadersTooLarge,
        ErrorCode::InternalError,
        ErrorCode::ServiceUnavailable,
        ErrorCode::MissingApiVersionParameter,
        ErrorCode::InvalidApiVersionParameter,
        ErrorCode::NoRegisteredProviderFound,
    ];
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ApiError,
}

/// What went wrong, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, thiserror::Error)]
#[error("{code}: {message}{}", target.as_ref().map(|t| format!(" (at {t})")).unwrap_or_default())]
pub struct ApiError {
    /// Stable machine-readable code.
    pub code: ErrorCode,
    /// Human-readable explanation.
    pub message: String,
    /// The field, parameter or object concerned, when there is one.
    pub target: Option<String>,
}

impl ApiError {
    /// An error with a code and message and no target.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            target: None,
        }
    }

    /// Sets the target (ignored when empty).
    pub fn with_target(mut self, target: impl Into<String>) -> Self {
        let t = target.into();
        self.target = (!t.is_empty()).then_some(t);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_its_own_name_and_the_status_written_here() {
        use ErrorCode::*;
        let expected = [
            (InvalidRequestBody, 400),
            (ValidationFailed, 400),
            (InvalidParameter, 400),
            (Unauthenticated, 401),
            (AuthorizationFailed, 403),
            (NotFound, 404),
            (MethodNotAllowed, 405),
            (Conflict, 409),
            (PreconditionFailed, 412),
            (PayloadTooLarge, 413),
            (UnsupportedMediaType, 415),
            (TooManyRequests, 429),
            (HeadersTooLarge, 431),
            (InternalError, 500),
            (ServiceUnavailable, 503),
            (MissingApiVersionParameter, 400),
            (InvalidApiVersionParameter, 400),
            (NoRegisteredProviderFound, 400),
        ];
        assert_eq!(ErrorCode::ALL.len(), expected.len());
        for (code, status) in expected {
            assert!(ErrorCode::ALL.contains(&code), "{code} missing from ALL");
            assert_eq!(code.status(), status, "{code}");
        }
        let mut names: Vec<String> = ErrorCode::ALL.iter().map(ToString::to_string).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ErrorCode::ALL.len(), "names are distinct");
        let body = serde_json::to_value(ErrorBody {
            error: ApiError::new(ErrorCode::NotFound, "no such machine").with_target("vm1"),
        })
        .unwrap();
        assert_eq!(
            body,
            serde_json::json!({"error":{"code":"NotFound","message":"no such machine","target":"vm1"}})
        );
    }
}
