//! Request bodies: size-limited raw bytes, parsed as JSON only after authorization, with errors
//! that name the offending field.

use crate::error::AppError;
use ajar_api::ErrorCode;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use serde::de::DeserializeOwned;

/// Largest request body accepted (1 MiB); larger ones get 413.
pub const MAX_BODY: usize = 1 << 20;

/// The raw body and whether it was declared as JSON.
pub struct RawBody {
    bytes: Bytes,
    json: bool,
}

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|m| {
                let m = m.trim().to_ascii_lowercase();
                m == "application/json" || m.ends_with("+json")
            })
            .unwrap_or(false);
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                AppError::new(
                    ErrorCode::PayloadTooLarge,
                    format!("the body is larger than {MAX_BODY} bytes"),
                )
            } else {
                AppError::new(ErrorCode::InvalidRequestBody, "the body could not be read")
            }
        })?;
        Ok(RawBody { bytes, json })
    }
}

impl RawBody {
    /// Parses the body as `T`. Malformed JSON, wrong types and unknown fields are 400
    /// `InvalidRequestBody` with the JSON path of the problem as target.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, AppError> {
        if !self.json {
            return Err(AppError::new(
                ErrorCode::UnsupportedMediaType,
                "the body must be JSON (Content-Type: application/json)",
            ));
        }
        // The fast path; only a body that fails is parsed again to find where.
        if let Ok(value) = serde_json::from_slice(&self.bytes) {
            return Ok(value);
        }
        let de = &mut serde_json::Deserializer::from_slice(&self.bytes);
        serde_path_to_error::deserialize::<_, T>(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let target = if path == "." { String::new() } else { path };
            AppError::new(
                ErrorCode::InvalidRequestBody,
                clean_message(&inner.to_string()),
            )
            .at(target)
        })
    }

    /// Parses the body as `T`, or gives `T::default()` when the body is empty.
    pub fn parse_or_default<T: DeserializeOwned + Default>(&self) -> Result<T, AppError> {
        if self.bytes.iter().all(u8::is_ascii_whitespace) {
            Ok(T::default())
        } else {
            self.parse()
        }
    }
}

/// serde_json appends " at line 1 column 42" to messages; the target already says where.
fn clean_message(m: &str) -> String {
    match m.rfind(" at line ") {
        Some(i) if m[i..].contains(" column ") => m[..i].to_owned(),
        _ => m.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_dropped_from_messages() {
        assert_eq!(
            clean_message("unknown field `x` at line 1 column 5"),
            "unknown field `x`"
        );
        assert_eq!(clean_message("plain"), "plain");
    }
}
