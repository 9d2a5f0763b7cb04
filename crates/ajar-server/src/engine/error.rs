//! Why the engine did not do what it was asked, in the engine's own words; routes turn it into
//! an HTTP answer ([`crate::error::AppError`]).

use ajar_core::FieldError;
use ajar_core::lifecycle::Refused;
use ajar_store::StoreError;

/// Why the engine did not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The lifecycle refused the event: the request's state does not allow it, or the caller
    /// is not the one who may.
    #[error(transparent)]
    Refused(#[from] Refused),
    /// A value is not acceptable (or names something missing, or conflicts: its `problem`
    /// says which), with the field it concerns.
    #[error("{}", .0.message)]
    Field(#[from] FieldError),
    /// The state of things does not allow it now (the request exists, the policy changed, too
    /// many pending requests, …).
    #[error("{0}")]
    Conflict(String),
    /// Something it needs does not exist.
    #[error("{0} does not exist")]
    NotFound(String),
    /// The caller is not allowed this (not eligible for a role), with the field concerned.
    #[error("{message}")]
    NotAllowed {
        /// Why.
        message: String,
        /// The field it concerns.
        target: String,
    },
    /// A part of ajar it needs is not running (the request writer stopped); retrying may help.
    #[error("{0}")]
    Unavailable(String),
    /// Stored data could not be read back.
    #[error("stored data unreadable: {0}")]
    Corrupt(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the engine answers.
pub type EngineResult<T> = Result<T, EngineError>;
