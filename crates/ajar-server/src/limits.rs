//! Request header limits: a request whose headers are too many or too large is answered 431
//! before anything else reads them.

use crate::error::AppError;
use ajar_api::ErrorCode;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Largest total of header names and values accepted (a bearer JWT may be up to 16 KiB).
pub const MAX_HEADER_BYTES: usize = 32 * 1024;
/// Most headers accepted.
pub const MAX_HEADERS: usize = 100;

/// Refuses requests over [`MAX_HEADER_BYTES`] or [`MAX_HEADERS`] with 431.
pub async fn limit_headers(req: Request, next: Next) -> Response {
    let headers = req.headers();
    let bytes: usize = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum();
    if bytes > MAX_HEADER_BYTES || headers.len() > MAX_HEADERS {
        return AppError::new(
            ErrorCode::HeadersTooLarge,
            format!(
                "the request's headers are too large (at most {MAX_HEADERS} headers and \
                 {MAX_HEADER_BYTES} bytes)"
            ),
        )
        .into_response();
    }
    next.run(req).await
}
