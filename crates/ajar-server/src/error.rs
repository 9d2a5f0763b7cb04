//! The one error type handlers return, and its mapping to HTTP responses.

use ajar_api::{ApiError, ErrorBody, ErrorCode};
use ajar_core::{FieldError, Problem};
use ajar_store::StoreError;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// An error on its way to becoming a JSON error response.
#[derive(Debug)]
pub struct AppError(pub ApiError);

impl AppError {
    /// An error with a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        AppError(ApiError::new(code, message))
    }

    /// Sets the target.
    pub fn at(self, target: impl Into<String>) -> Self {
        AppError(self.0.with_target(target))
    }

    /// 500 for something ajar stored but cannot read back; the details stay in the log.
    pub fn internal() -> Self {
        AppError::new(ErrorCode::InternalError, "internal error")
    }

    /// 404 for an object that does not exist.
    pub fn not_found(what: impl std::fmt::Display) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} does not exist"))
    }

    /// 403 for a missing action at a scope.
    pub fn forbidden(principal: &str, action: &str, scope: &impl std::fmt::Display) -> Self {
        Self::new(
            ErrorCode::AuthorizationFailed,
            format!("{principal} may not perform {action} at {scope}"),
        )
        .at(scope.to_string())
    }

    /// A path or query parameter error.
    pub fn parameter(name: &str, e: FieldError) -> Self {
        Self::new(ErrorCode::InvalidParameter, e.message).at(name)
    }
}

/// Result type of handlers.
pub type AppResult<T> = Result<T, AppError>;

impl From<FieldError> for AppError {
    fn from(e: FieldError) -> Self {
        let code = match e.problem {
            Problem::Invalid => ErrorCode::ValidationFailed,
            Problem::NotFound => ErrorCode::NotFound,
            Problem::Conflict => ErrorCode::Conflict,
        };
        AppError::new(code, e.message).at(e.target)
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => {
                tracing::info!(cause = %m, "store conflict");
                AppError::new(
                    ErrorCode::Conflict,
                    "the change conflicts with a concurrent change; retry",
                )
            }
            StoreError::Unavailable(m) => {
                tracing::warn!(cause = %m, "store unavailable");
                AppError::new(
                    ErrorCode::ServiceUnavailable,
                    "the store is unavailable; retry later",
                )
            }
            other => {
                tracing::error!(cause = %other, "store failure");
                AppError::internal()
            }
        }
    }
}

/// What a 403 answer was about, attached to the response so the refusal recorder
/// ([`crate::journal::record_denials`]) can record it.
#[derive(Debug, Clone)]
pub struct Denial {
    /// The error's target (usually the scope), if any.
    pub target: Option<String>,
    /// The error's message.
    pub message: String,
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let denial = (self.0.code == ErrorCode::AuthorizationFailed).then(|| Denial {
            target: self.0.target.clone(),
            message: self.0.message.clone(),
        });
        let retry = (self.0.code == ErrorCode::TooManyRequests)
            .then(|| crate::throttle::WINDOW.as_secs().to_string());
        let mut resp = (status, Json(ErrorBody { error: self.0 })).into_response();
        if let Some(d) = denial {
            resp.extensions_mut().insert(d);
        }
        if let Some(v) = retry.and_then(|r| axum::http::HeaderValue::from_str(&r).ok()) {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, v);
        }
        resp
    }
}

impl From<ajar_core::lifecycle::Refused> for AppError {
    fn from(r: ajar_core::lifecycle::Refused) -> Self {
        let code = match r {
            ajar_core::lifecycle::Refused::State(..)
            | ajar_core::lifecycle::Refused::AlreadyDecided(_) => ErrorCode::Conflict,
            ajar_core::lifecycle::Refused::NotApprover(_)
            | ajar_core::lifecycle::Refused::SelfApproval
            | ajar_core::lifecycle::Refused::NotRequester(_) => ErrorCode::AuthorizationFailed,
        };
        AppError::new(code, r.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_errors_map_to_codes_and_keep_their_field() {
        use crate::engine::EngineError as E;
        let cases = [
            (E::Conflict("busy".into()), ErrorCode::Conflict, None),
            (E::NotFound("policy p".into()), ErrorCode::NotFound, None),
            (
                E::NotAllowed {
                    message: "not eligible".into(),
                    target: "properties.roles[0]".into(),
                },
                ErrorCode::AuthorizationFailed,
                Some("properties.roles[0]"),
            ),
            (
                E::Field(FieldError::new("properties.duration", "too long")),
                ErrorCode::ValidationFailed,
                Some("properties.duration"),
            ),
            (
                E::Corrupt("policy p: bad json".into()),
                ErrorCode::InternalError,
                None,
            ),
        ];
        for (engine, code, target) in cases {
            let app = AppError::from(engine);
            assert_eq!(app.0.code, code);
            assert_eq!(app.0.target.as_deref(), target);
        }
        // What was unreadable stays in the log, never in the answer.
        let app = AppError::from(E::Corrupt("policy p: bad json".into()));
        assert!(!app.0.message.contains("bad json"));
    }

    #[test]
    fn field_problems_map_to_codes() {
        let e: AppError = FieldError::not_found("x", "gone").into();
        assert_eq!(
            (e.0.code, e.0.target.as_deref()),
            (ErrorCode::NotFound, Some("x"))
        );
        let e: AppError = FieldError::new("", "bad").into();
        assert_eq!((e.0.code, e.0.target), (ErrorCode::ValidationFailed, None));
        let e: AppError = StoreError::Other("SELECT secret".into()).into();
        assert_eq!(e.0.code, ErrorCode::InternalError);
        assert!(!e.0.message.contains("SELECT"), "internals must not leak");
        assert_eq!(
            AppError::from(StoreError::Unavailable("x".into()))
                .into_response()
                .status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
