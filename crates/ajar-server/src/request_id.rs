//! Per-request observability: the request id (`X-Request-Id`), the tracing span a request is
//! handled in, the one log line per request, and the HTTP metrics — all in [`layer`], the
//! outermost middleware of the router.
//!
//! Nothing here logs headers, the raw path or the query string: the route is the matched
//! template (`/api/v1/subscriptions/{sub}/…`), and tokens never leave the `Authorization`
//! header.

use crate::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use std::time::Instant;
use tracing::Instrument;

/// The header a request id comes in and goes back out in.
pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longest request id accepted from a client.
pub const MAX_LEN: usize = 64;

/// The id of the request being handled, in the request's extensions (and in
/// [`crate::auth::Caller::request_id`]): the client's `X-Request-Id` when it is acceptable (see
/// [`RequestId::is_acceptable`]), else a fresh UUID v4.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl RequestId {
    /// Whether a client-sent id is used as is: 1 to [`MAX_LEN`] characters of
    /// `[A-Za-z0-9._-]`, so it is safe in logs and headers.
    pub fn is_acceptable(id: &str) -> bool {
        (1..=MAX_LEN).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    }

    /// The incoming header's value if acceptable, else a new UUID v4.
    pub fn from_header(value: Option<&HeaderValue>) -> Self {
        match value.and_then(|v| v.to_str().ok()) {
            Some(id) if Self::is_acceptable(id) => RequestId(id.to_owned()),
            _ => RequestId(uuid::Uuid::new_v4().to_string()),
        }
    }
}

/// The middleware: gives the request its [`RequestId`], handles it inside a `request` span
/// (`request_id`, `method`, `route`), records `ajar_http_requests_total` and
/// `ajar_http_request_duration_seconds`, logs one `info` line, and sets `X-Request-Id` on the
/// response — errors and unknown paths included.
pub async fn layer(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = RequestId::from_header(req.headers().get(HEADER));
    let method = crate::metrics::method_label(req.method().as_str());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    req.extensions_mut().insert(id.clone());
    let span = tracing::info_span!("request", request_id = %id.0, method, route = %route);
    let mut resp = next.run(req).instrument(span).await;
    let elapsed = started.elapsed();
    let status = resp.status().as_u16();
    state.metrics.http_request(method, &route, status, elapsed);
    // Acceptable ids and UUIDs are visible ASCII, so this always succeeds.
    if let Ok(v) = HeaderValue::from_str(&id.0) {
        resp.headers_mut().insert(HEADER, v);
    }
    tracing::info!(
        request_id = %id.0,
        method,
        route = %route,
        status,
        elapsed_ms = elapsed.as_micros() as f64 / 1000.0,
        "request"
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_plain_ids_are_kept() {
        for ok in ["a", "req-1.2_3", &"x".repeat(MAX_LEN)] {
            assert!(RequestId::is_acceptable(ok), "{ok}");
            let v = HeaderValue::from_str(ok).unwrap();
            assert_eq!(RequestId::from_header(Some(&v)).0, ok);
        }
        for bad in ["", "a b", "a\"b", "a/b", "é", &"x".repeat(MAX_LEN + 1)] {
            assert!(!RequestId::is_acceptable(bad), "{bad:?}");
        }
        let fresh = RequestId::from_header(None).0;
        assert!(uuid::Uuid::parse_str(&fresh).is_ok(), "{fresh}");
        assert_ne!(fresh, RequestId::from_header(None).0);
    }
}
