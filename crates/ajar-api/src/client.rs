//! A typed HTTP client for ajar's API.

use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::wire::{
    AccessRequest, Grant, InitiateBody, List, Machine, MachineBody, Policy, PolicyBody,
    RoleAssignment, RoleAssignmentBody, Token, TokenCreate,
};
use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error body.
    #[error("{status}: {error}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The error the server returned.
        error: ApiError,
    },
    /// The server could not be reached or the connection broke.
    #[error("cannot reach the server: {0}")]
    Transport(String),
    /// The server's answer was not what the API promises.
    #[error("unexpected answer from the server: {0}")]
    Decode(String),
}

impl ClientError {
    /// The HTTP status of an API error.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The error code of an API error.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Api { error, .. } => Some(error.code),
            _ => None,
        }
    }
}

/// A transport failure with its innermost cause (such as "Connection refused"), which
/// reqwest's own message leaves out.
fn transport(e: reqwest::Error) -> ClientError {
    let mut root: &dyn std::error::Error = &e;
    while let Some(next) = root.source() {
        root = next;
    }
    let (outer, inner) = (e.to_string(), root.to_string());
    if outer.contains(&inner) {
        ClientError::Transport(outer)
    } else {
        ClientError::Transport(format!("{outer}: {inner}"))
    }
}

/// A status and JSON body, for callers that want to look at both (tests, scripts).
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// HTTP status.
    pub status: u16,
    /// The body parsed as JSON (`Null` when empty or not JSON).
    pub body: serde_json::Value,
    /// The `ETag` header, if any.
    pub etag: Option<String>,
}

/// An HTTP client for talking to ajar: with `ca_pem` (PEM certificates), the server's
/// certificate must chain to one of them and to nothing else; without, the system's roots.
pub fn http_client(ca_pem: Option<&[u8]>) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder();
    if let Some(pem) = ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| format!("the CA file holds no PEM certificate: {e}"))?;
        if certs.is_empty() {
            return Err("the CA file holds no PEM certificate".into());
        }
        builder = builder.tls_certs_only(certs);
    }
    builder
        .build()
        .map_err(|e| format!("cannot set up TLS: {e}"))
}

/// A client bound to one server and, optionally, one bearer token.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    /// A client for the server at `base` (e.g. `http://127.0.0.1:8600`).
    pub fn new(base: impl Into<String>, token: Option<String>) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: base.into().trim_end_matches('/').to_owned(),
            token,
        }
    }

    /// A client for `base` over `http` (e.g. one from [`http_client`] trusting a private CA).
    pub fn with_http(
        base: impl Into<String>,
        token: Option<String>,
        http: reqwest::Client,
    ) -> Self {
        Self {
            http,
            base: base.into().trim_end_matches('/').to_owned(),
            token,
        }
    }

    /// The same server with another token (sharing the connection pool).
    pub fn with_token(&self, token: Option<String>) -> Self {
        Self {
            token,
            ..self.clone()
        }
    }

    /// The bearer token, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends a request with an optional JSON body and returns status and body, whatever the
    /// status. `path` starts with `/`.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<RawResponse, ClientError> {
        self.raw_with(method, path, body, &[]).await
    }

    /// Like [`Client::raw`], with extra headers.
    pub async fn raw_with(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
        headers: &[(&str, &str)],
    ) -> Result<RawResponse, ClientError> {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status().as_u16();
        let etag = resp
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = resp.bytes().await.map_err(transport)?;
        let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        Ok(RawResponse { status, body, etag })
    }

    /// `GET path` of a list, following `nextLink` to the end (at most `max_pages` pages):
    /// every page's items in order.
    pub async fn get_all<T: DeserializeOwned>(
        &self,
        path: &str,
        max_pages: usize,
    ) -> Result<Vec<T>, ClientError> {
        let mut items = Vec::new();
        let mut next = Some(path.to_owned());
        let mut pages = 0;
        while let Some(p) = next.take() {
            let page: crate::wire::List<T> = self.get(&p).await?;
            items.extend(page.value);
            pages += 1;
            if pages < max_pages {
                next = page.next_link;
            }
        }
        Ok(items)
    }

    async fn call<T: DeserializeOwned, B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let body = body
            .map(serde_json::to_value)
            .transpose()
            .map_err(|e| ClientError::Decode(e.to_string()))?;
        let r = self.raw(method, path, body.as_ref()).await?;
        if !(200..300).contains(&r.status) {
            let error = serde_json::from_value::<ErrorBody>(r.body)
                .map(|b| b.error)
                .unwrap_or_else(|_| {
                    ApiError::new(
                        ErrorCode::InternalError,
                        format!("HTTP status {}", r.status),
                    )
                });
            return Err(ClientError::Api {
                status: r.status,
                error,
            });
        }
        let body = if r.body.is_null() {
            serde_json::Value::Object(Default::default())
        } else {
            r.body
        };
        serde_json::from_value(body).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// `GET path`, decoded.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call::<T, ()>(Method::GET, path, None).await
    }

    /// `PUT path` with a JSON body, decoded.
    pub async fn put<T: DeserializeOwned, B: Serialize>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        self.call(Method::PUT, path, Some(body)).await
    }

    /// `POST path` with a JSON body, decoded.
    pub async fn post<T: DeserializeOwned, B: Serialize>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        self.call(Method::POST, path, Some(body)).await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> Result<(), ClientError> {
        self.call::<serde_json::Value, ()>(Method::DELETE, path, None)
            .await
            .map(|_| ())
    }

    /// Creates or replaces a machine (`id` is its resource id).
    pub async fn put_machine(&self, id: &str, body: &MachineBody) -> Result<Machine, ClientError> {
        self.put(&format!("/api/v1{id}"), body).await
    }

    /// Creates or replaces a policy (`id` is its resource id).
    pub async fn put_policy(&self, id: &str, body: &PolicyBody) -> Result<Policy, ClientError> {
        self.put(&format!("/api/v1{id}"), body).await
    }

    /// Requests access under a policy.
    pub async fn initiate(
        &self,
        policy_id: &str,
        body: &InitiateBody,
    ) -> Result<AccessRequest, ClientError> {
        self.post(&format!("/api/v1{policy_id}/initiate"), body)
            .await
    }

    /// Revokes a request early.
    pub async fn revoke(
        &self,
        policy_id: &str,
        request_id: &str,
    ) -> Result<AccessRequest, ClientError> {
        self.post(
            &format!("/api/v1{policy_id}/requests/{request_id}/revoke"),
            &serde_json::json!({}),
        )
        .await
    }

    /// The ports open right now on a machine.
    pub async fn grants(&self, machine_id: &str) -> Result<List<Grant>, ClientError> {
        self.get(&format!("/api/v1{machine_id}/grants")).await
    }

    /// Streams the body of `GET path` into `out` as it arrives (for downloads such as the
    /// activity log's CSV); API errors are returned as such.
    pub async fn download(
        &self,
        path: &str,
        out: &mut (dyn std::io::Write + Send),
    ) -> Result<u64, ClientError> {
        let mut req = self.http.get(format!("{}{}", self.base, path));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let mut resp = req.send().await.map_err(transport)?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            let body = resp.bytes().await.unwrap_or_default();
            let error = serde_json::from_slice::<ErrorBody>(&body)
                .map(|b| b.error)
                .unwrap_or_else(|_| {
                    ApiError::new(ErrorCode::InternalError, format!("HTTP status {status}"))
                });
            return Err(ClientError::Api { status, error });
        }
        let mut written = 0u64;
        while let Some(chunk) = resp.chunk().await.map_err(transport)? {
            out.write_all(&chunk)
                .map_err(|e| ClientError::Transport(format!("cannot write the download: {e}")))?;
            written += chunk.len() as u64;
        }
        Ok(written)
    }

    /// Verifies the activity log's hash chain from its first record.
    pub async fn verify_activity(&self) -> Result<crate::wire::ActivityVerification, ClientError> {
        self.get("/api/v1/activity/verify").await
    }

    /// Creates an API token; the secret is in the answer's `token`.
    pub async fn create_token(&self, body: &TokenCreate) -> Result<Token, ClientError> {
        self.post("/api/v1/tokens", body).await
    }

    /// Creates or replaces a role assignment.
    pub async fn put_role_assignment(
        &self,
        id: &str,
        body: &RoleAssignmentBody,
    ) -> Result<RoleAssignment, ClientError> {
        self.put(&format!("/api/v1/roleAssignments/{id}"), body)
            .await
    }
}
