//! The JSON that ajar's API speaks, its stable error codes, and the typed HTTP client that the
//! command line, the agent and the tests use.
//!
//! # Layout
//! - [`error`]: error codes and the `{"error":{"code","message","target"}}` body.
//! - [`wire`]: request and response bodies. Fields that carry domain values use
//!   `ajar_core` newtypes, so a body that deserializes is already valid field by field;
//!   cross-field rules are applied by the `to_domain` methods.
//! - [`client`]: a small typed client over `reqwest`.

pub mod client;
pub mod clock;
pub mod error;
pub mod wire;

pub use client::{Client, ClientError, RawResponse};
pub use error::{ApiError, ErrorBody, ErrorCode};
