//! Bounded HTTP for talking to identity providers: timeouts on every call, bodies capped.

use serde::de::DeserializeOwned;
use std::time::Duration;

/// Largest discovery document, key set or token response read.
const MAX_BODY: usize = 1024 * 1024;

/// A client with the timeouts every identity-provider call gets.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::limited(3))
        .user_agent(concat!("ajar/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

/// Reads at most [`MAX_BODY`] bytes of `resp`.
pub async fn body(mut resp: reqwest::Response) -> Result<Vec<u8>, String> {
    if resp.content_length().is_some_and(|n| n > MAX_BODY as u64) {
        return Err(format!("the answer from {} is too large", resp.url()));
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        if out.len() + chunk.len() > MAX_BODY {
            return Err(format!("the answer from {} is too large", resp.url()));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// GETs `url` and parses a JSON answer; any failure in words.
pub async fn get_json<T: DeserializeOwned>(http: &reqwest::Client, url: &str) -> Result<T, String> {
    let resp = http
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| format!("cannot reach {url}: {e}"))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(format!("{url} answered {status}"));
    }
    let bytes = body(resp).await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| format!("{url} did not answer the expected JSON: {e}"))
}
