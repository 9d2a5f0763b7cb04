//! Azure Resource Manager-compatible paths at the server's root, beside `/api/v1`: the
//! `Microsoft.Security` JIT network access policies and the `Microsoft.Solutions` JIT requests,
//! as the Azure SDKs (`azure-mgmt-security`, `azure-mgmt-managedapplications`), `az rest` and
//! PowerShell call them.
//!
//! This is a translation layer and nothing else: each call checks `api-version`, rewrites the
//! path, the ids and the body into ajar's own form, calls the `/api/v1` router in-process with
//! the caller's request (credentials, address, request id), and rewrites the answer into the
//! vendor's shape and status codes. Authentication, every RBAC check, every rule and every
//! activity record stay with the `/api/v1` handlers, so the two surfaces cannot disagree.

mod jit_requests;
mod policies;

use crate::body::MAX_BODY;
use crate::error::AppError;
use ajar_api::ErrorCode;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::extract::Request;
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::net::SocketAddr;
use tower::ServiceExt;

/// The ARM routes, calling `api` (the `/api/v1` router, state applied) for every operation.
pub fn router(api: Router) -> Router {
    let arm = Arm { api };
    policies::routes()
        .merge(jit_requests::routes())
        .with_state(arm)
}

/// The ARM paths' part of ajar's OpenAPI document, tagged `azure-compatible`.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        policies::list_subscription,
        policies::list_subscription_region,
        policies::list_group,
        policies::list_group_region,
        policies::get_policy,
        policies::put_policy,
        policies::delete_policy,
        policies::initiate,
        jit_requests::list_subscription,
        jit_requests::list_group,
        jit_requests::get_request,
        jit_requests::put_request,
        jit_requests::patch_request,
        jit_requests::delete_request,
    ),
    tags((name = "azure-compatible", description = "Azure Resource Manager paths of Azure's JIT APIs \
        (`Microsoft.Security` JIT network access policies, `Microsoft.Solutions` JIT requests), served at the \
        root beside `/api/v1` so the Azure SDKs, `az rest` and PowerShell work by changing the endpoint. \
        Each is translated onto the `/api/v1` operation it names: same authentication, rights and rules. \
        `api-version` is required and checked first.")),
)]
pub struct ArmDoc;

/// What the ARM handlers share: the API they translate to.
#[derive(Clone)]
struct Arm {
    api: Router,
}

/// An answer of the `/api/v1` router, read whole.
struct Inner {
    status: StatusCode,
    json: Option<Value>,
    raw: Bytes,
    head: axum::http::response::Parts,
}

impl Inner {
    fn ok(&self) -> bool {
        self.status.is_success()
    }

    /// The answer unchanged (errors keep ajar's envelope, code and target).
    fn pass(self) -> Response {
        let mut resp = Response::from_parts(self.head, Body::from(self.raw));
        resp.headers_mut().remove(header::CONTENT_LENGTH);
        resp
    }

    /// A new JSON body and status, keeping the inner answer's extensions (a refusal's
    /// `Denial`, which the activity log records) and headers such as `ETag`.
    fn reply(self, status: StatusCode, body: Option<Value>) -> Response {
        let mut head = self.head;
        head.status = status;
        head.headers.remove(header::CONTENT_LENGTH);
        match body {
            Some(v) => {
                head.headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                Response::from_parts(head, Body::from(v.to_string()))
            }
            None => {
                head.headers.remove(header::CONTENT_TYPE);
                Response::from_parts(head, Body::empty())
            }
        }
    }
}

/// One ARM call: the caller's request head, and the `api-version` it named.
struct Call {
    parts: Parts,
    version: String,
}

impl Arm {
    /// Calls the `/api/v1` router as the caller, with `body` as JSON (or raw bytes the caller
    /// sent that are not JSON, so ajar answers them as it does on its own paths).
    async fn call(&self, call: &Call, method: Method, path: &str, body: Option<Payload>) -> Inner {
        let mut req = Request::builder().method(method).uri(path);
        for (name, value) in &call.parts.headers {
            if name != header::CONTENT_LENGTH && name != header::CONTENT_TYPE {
                req = req.header(name, value);
            }
        }
        let body = match body {
            Some(Payload::Json(v)) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Body::from(v.to_string())
            }
            Some(Payload::Raw(bytes)) => {
                if let Some(ct) = call.parts.headers.get(header::CONTENT_TYPE) {
                    req = req.header(header::CONTENT_TYPE, ct);
                }
                Body::from(bytes)
            }
            None => Body::empty(),
        };
        let mut req = match req.body(body) {
            Ok(r) => r,
            Err(_) => return error_inner(AppError::internal()).await,
        };
        // What the API reads from a request's extensions: the peer address, the slot the
        // refusal recorder reads the caller from, and the request id. Not the routing state
        // of this ARM route (its path parameters would be taken for the API route's).
        let from = &call.parts.extensions;
        let to = req.extensions_mut();
        copy::<ConnectInfo<SocketAddr>>(from, to);
        copy::<crate::journal::CallerSlot>(from, to);
        copy::<crate::request_id::RequestId>(from, to);
        let resp = match self.api.clone().oneshot(req).await {
            Ok(resp) => resp,
            Err(never) => match never {},
        };
        read(resp).await
    }
}

fn copy<T: Clone + Send + Sync + 'static>(from: &Extensions, to: &mut Extensions) {
    if let Some(v) = from.get::<T>() {
        to.insert(v.clone());
    }
}

/// A body to send to the API.
enum Payload {
    Json(Value),
    Raw(Bytes),
}

async fn read(resp: Response) -> Inner {
    let (head, body) = resp.into_parts();
    let raw = axum::body::to_bytes(body, 64 * 1024 * 1024)
        .await
        .unwrap_or_default();
    Inner {
        status: head.status,
        json: serde_json::from_slice(&raw).ok(),
        raw,
        head,
    }
}

async fn error_inner(e: AppError) -> Inner {
    read(e.into_response()).await
}

/// Reads the caller's body (at most the API's limit) as JSON, or keeps it raw when it is not.
async fn payload(body: Body) -> Result<Payload, Box<Response>> {
    let bytes = axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
        Box::new(
            AppError::new(
                ErrorCode::PayloadTooLarge,
                format!("the body is larger than {MAX_BODY} bytes"),
            )
            .into_response(),
        )
    })?;
    Ok(match serde_json::from_slice::<Value>(&bytes) {
        Ok(v) if v.is_object() => Payload::Json(v),
        _ => Payload::Raw(bytes),
    })
}

/// The resource type and the versions of it that are served, for `api-version` checks.
struct Versions {
    kind: &'static str,
    supported: &'static [&'static str],
}

/// Checks `api-version` as Azure Resource Manager does, before anything else (so a wrong
/// version never costs an authentication or a refusal record): missing, not a version, or a
/// version not served for the type are each a 400 with the vendor's code, at `api-version`.
fn check_version(parts: &Parts, versions: &Versions) -> Result<String, Box<Response>> {
    let query = parts.uri.query().unwrap_or_default();
    let given = form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k.eq_ignore_ascii_case("api-version"))
        .map(|(_, v)| v.into_owned());
    let list = versions.supported.join(", ");
    let refuse = |code, message: String| {
        Err(Box::new(
            AppError::new(code, message)
                .at("api-version")
                .into_response(),
        ))
    };
    match given {
        None => refuse(
            ErrorCode::MissingApiVersionParameter,
            "The api-version query parameter (?api-version=) is required for all requests."
                .to_owned(),
        ),
        Some(v) if !is_version(&v) => refuse(
            ErrorCode::InvalidApiVersionParameter,
            format!("The api-version '{v}' is invalid. The supported versions are '{list}'."),
        ),
        Some(v)
            if !versions
                .supported
                .iter()
                .any(|s| s.eq_ignore_ascii_case(&v)) =>
        {
            refuse(
                ErrorCode::NoRegisteredProviderFound,
                format!(
                    "No registered resource provider found for API version '{v}' for type '{}'. \
                 The supported api-versions are '{list}'.",
                    versions.kind
                ),
            )
        }
        Some(v) => Ok(v),
    }
}

/// `YYYY-MM-DD`, optionally followed by `-preview`, `-alpha`, `-beta` or `-privatepreview`.
fn is_version(v: &str) -> bool {
    let (date, suffix) = match v.get(10..) {
        Some(rest) => (&v[..10], rest),
        None => return false,
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let parts: Vec<&str> = date.split('-').collect();
    parts.len() == 3
        && parts[0].len() == 4
        && parts[1].len() == 2
        && parts[2].len() == 2
        && parts.iter().all(|p| digits(p))
        && matches!(
            suffix.to_ascii_lowercase().as_str(),
            "" | "-preview" | "-alpha" | "-beta" | "-privatepreview"
        )
}

/// The caller's query without `api-version`, for the API (which pages with `top` and
/// `skipToken`).
fn api_query(parts: &Parts) -> String {
    let query = parts.uri.query().unwrap_or_default();
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        if !k.eq_ignore_ascii_case("api-version") {
            out.append_pair(&k, &v);
        }
    }
    out.finish()
}

/// `path?query`, or `path` alone when the query is empty.
fn with_query(path: String, query: &str) -> String {
    if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    }
}

/// The API's `nextLink` (`/api/v1/...?top=..&skipToken=..`) as a link on the ARM path the
/// caller used, with its `api-version`.
fn next_link(parts: &Parts, version: &str, api_link: Option<&str>) -> Option<String> {
    let link = api_link?;
    let query = link.split_once('?').map(|(_, q)| q).unwrap_or_default();
    let mut out = form_urlencoded::Serializer::new(String::new());
    out.append_pair("api-version", version);
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        out.append_pair(&k, &v);
    }
    Some(format!("{}?{}", parts.uri.path(), out.finish()))
}

/// A path segment as it goes into an API path: characters outside the unreserved set are
/// percent-encoded, so a name never splits or extends the path.
fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~()".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The segments of a resource id, without empty ones.
fn segments(id: &str) -> Vec<&str> {
    id.split('/').filter(|s| !s.is_empty()).collect()
}

/// A resource id in Azure's form as ajar writes it: `…/providers/Microsoft.Compute/
/// virtualMachines/{vm}` is a machine, `…/providers/Microsoft.Solutions/applications/{app}` an
/// application. Anything else is left as it is, for ajar to accept or refuse.
fn ajar_id(id: &str) -> String {
    let s = segments(id);
    if s.len() == 8
        && s[0].eq_ignore_ascii_case("subscriptions")
        && s[2].eq_ignore_ascii_case("resourceGroups")
        && s[4].eq_ignore_ascii_case("providers")
    {
        let kind = match (
            s[5].to_ascii_lowercase().as_str(),
            s[6].to_ascii_lowercase().as_str(),
        ) {
            ("microsoft.compute", "virtualmachines") => Some("machines"),
            ("microsoft.solutions", "applications") => Some("applications"),
            ("microsoft.solutions", "jitrequests") => Some("jitRequests"),
            _ => None,
        };
        if let Some(kind) = kind {
            return format!(
                "/subscriptions/{}/resourceGroups/{}/{kind}/{}",
                s[1], s[3], s[7]
            );
        }
    }
    id.to_owned()
}

/// An ajar resource id in Azure's form. A policy's id names `location`.
fn vendor_id(id: &str, location: &str) -> String {
    let s = segments(id);
    if s.len() != 6
        || !s[0].eq_ignore_ascii_case("subscriptions")
        || !s[2].eq_ignore_ascii_case("resourceGroups")
    {
        return id.to_owned();
    }
    let provider = match s[4] {
        "machines" => "Microsoft.Compute/virtualMachines".to_owned(),
        "applications" => "Microsoft.Solutions/applications".to_owned(),
        "jitRequests" => "Microsoft.Solutions/jitRequests".to_owned(),
        "jitNetworkAccessPolicies" => {
            format!("Microsoft.Security/locations/{location}/jitNetworkAccessPolicies")
        }
        _ => return id.to_owned(),
    };
    format!(
        "/subscriptions/{}/resourceGroups/{}/providers/{provider}/{}",
        s[1], s[3], s[5]
    )
}

/// Rewrites the string at `key` of `obj` with `f`, when there is one.
fn map_str(obj: &mut Value, key: &str, f: impl Fn(&str) -> String) {
    if let Some(v) = obj.get_mut(key)
        && let Some(s) = v.as_str()
    {
        *v = Value::String(f(s));
    }
}

/// Removes `keys` from `obj`, when it is an object.
fn strip(obj: &mut Value, keys: &[&str]) {
    if let Some(o) = obj.as_object_mut() {
        for k in keys {
            o.remove(*k);
        }
    }
}

/// 200 with a JSON body built from the inner answer, or the inner answer itself when it
/// failed.
fn ok_or_pass(inner: Inner, status: StatusCode, render: impl FnOnce(Value) -> Value) -> Response {
    if !inner.ok() {
        return inner.pass();
    }
    match inner.json.clone() {
        Some(v) => {
            let body = render(v);
            inner.reply(status, Some(body))
        }
        None => AppError::internal().into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_dates_with_an_optional_stage() {
        for v in ["2020-01-01", "2023-12-01-preview", "2019-07-01-beta"] {
            assert!(is_version(v), "{v}");
        }
        for v in [
            "",
            "2020",
            "2020-1-01",
            "latest",
            "2020-01-01-rc",
            "2020-01-01x",
        ] {
            assert!(!is_version(v), "{v}");
        }
    }

    #[test]
    fn ids_translate_both_ways() {
        let vm =
            "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/vm1";
        assert_eq!(
            ajar_id(vm),
            "/subscriptions/s1/resourceGroups/rg1/machines/vm1"
        );
        assert_eq!(vendor_id(&ajar_id(vm), "x"), vm);
        let app =
            "/subscriptions/s1/resourceGroups/rg1/providers/microsoft.solutions/applications/crm";
        assert_eq!(
            ajar_id(app),
            "/subscriptions/s1/resourceGroups/rg1/applications/crm"
        );
        assert_eq!(
            vendor_id(
                "/subscriptions/s1/resourceGroups/rg1/jitNetworkAccessPolicies/p",
                "westeurope"
            ),
            "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/p"
        );
        assert_eq!(ajar_id("/elsewhere/x"), "/elsewhere/x");
        assert_eq!(seg("a/b c"), "a%2Fb%20c");
    }
}
