//! `Microsoft.Security/locations/jitNetworkAccessPolicies` (api-version `2020-01-01`) on
//! ajar's JIT network access policies and their requests.

use super::{
    Arm, Call, Payload, Versions, ajar_id, api_query, check_version, map_str, next_link,
    ok_or_pass, payload, seg, strip, vendor_id, with_query,
};
use crate::error::AppError;
use ajar_api::ErrorCode;
use ajar_api::wire::{AccessRequest, InitiateBody, List, Policy, PolicyBody};
use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

const VERSIONS: Versions = Versions {
    kind: TYPE,
    supported: &["2020-01-01"],
};

/// The vendor's resource type.
const TYPE: &str = "Microsoft.Security/locations/jitNetworkAccessPolicies";

/// The location shown for a policy that has none, where the path names none either: Azure
/// Resource Manager's word for a resource not bound to a region.
const GLOBAL: &str = "global";

/// How many of a policy's newest requests its answer shows in `properties.requests`.
pub(super) const SHOWN_REQUESTS: usize = 10;

const PROVIDER: &str = "providers/Microsoft.Security";

pub(super) fn routes() -> Router<Arm> {
    let sub = "/subscriptions/{sub}";
    let rg = "/subscriptions/{sub}/resourceGroups/{rg}";
    let one = format!("{rg}/{PROVIDER}/locations/{{loc}}/jitNetworkAccessPolicies/{{name}}");
    Router::new()
        .route(
            &format!("{sub}/{PROVIDER}/jitNetworkAccessPolicies"),
            get(list_subscription),
        )
        .route(
            &format!("{sub}/{PROVIDER}/locations/{{loc}}/jitNetworkAccessPolicies"),
            get(list_subscription_region),
        )
        .route(
            &format!("{rg}/{PROVIDER}/jitNetworkAccessPolicies"),
            get(list_group),
        )
        .route(
            &format!("{rg}/{PROVIDER}/locations/{{loc}}/jitNetworkAccessPolicies"),
            get(list_group_region),
        )
        .route(&one, get(get_policy).put(put_policy).delete(delete_policy))
        .route(&format!("{one}/initiate"), post(initiate))
}

fn start(req: Request) -> Result<(Call, axum::body::Body), Box<Response>> {
    let (parts, body) = req.into_parts();
    let version = check_version(&parts, &VERSIONS)?;
    Ok((Call { parts, version }, body))
}

/// [`start`] for a path that names a location: the api-version first, then the location.
fn start_at(req: Request, loc: &str) -> Result<(Call, axum::body::Body), Box<Response>> {
    let started = start(req)?;
    check_location(loc)?;
    Ok(started)
}

/// What reading a policy before acting on it found.
enum Current {
    /// The caller is answered already (not signed in, or held back): the body is not read,
    /// and a failed sign-in counts once.
    Answered(Response),
    /// The policy is kept at another location: not this resource.
    Elsewhere,
    /// The answer of the read (the policy, or why it cannot be read: the action answers that).
    Here(super::Inner),
}

/// Reads the policy at `path` as the caller, before acting on it at `loc`.
async fn current(arm: &Arm, call: &Call, path: &str, loc: &str) -> Current {
    let read = arm.call(call, Method::GET, path, None).await;
    if matches!(read.status.as_u16(), 401 | 429) {
        return Current::Answered(read.pass());
    }
    match &read.json {
        Some(p) if read.ok() && !at(p, loc) => Current::Elsewhere,
        _ => Current::Here(read),
    }
}

/// The API path of a policy.
fn api_policy(sub: &str, rg: &str, name: &str) -> String {
    format!(
        "/api/v1/subscriptions/{}/resourceGroups/{}/jitNetworkAccessPolicies/{}",
        seg(sub),
        seg(rg),
        seg(name)
    )
}

/// The location in the path must be a name (it is echoed back in ids and messages).
fn check_location(loc: &str) -> Result<(), Box<Response>> {
    ajar_core::id::Name::parse(loc).map(|_| ()).map_err(|e| {
        Box::new(
            AppError::new(
                ErrorCode::InvalidParameter,
                format!("the location is not a name: {}", e.message),
            )
            .at("location")
            .into_response(),
        )
    })
}

/// Whether a policy answers at `loc`: its own location, or any when it has none.
fn at(policy: &Value, loc: &str) -> bool {
    policy["location"]
        .as_str()
        .is_none_or(|l| l.eq_ignore_ascii_case(loc))
}

fn not_at(sub: &str, rg: &str, loc: &str, name: &str) -> Response {
    let id = format!(
        "/subscriptions/{sub}/resourceGroups/{rg}/{PROVIDER}/locations/{loc}/jitNetworkAccessPolicies/{name}"
    );
    AppError::new(ErrorCode::NotFound, format!("{id} does not exist"))
        .at(id)
        .into_response()
}

/// An access request (an initiate's answer, or one of a policy's requests) in the vendor's
/// shape: machine and policy ids in Azure's form; ajar's own fields kept.
fn render_request(mut r: Value, loc: &str) -> Value {
    map_str(&mut r, "policyId", |id| vendor_id(id, loc));
    if let Some(vms) = r["virtualMachines"].as_array_mut() {
        for vm in vms {
            map_str(vm, "id", |id| vendor_id(id, loc));
        }
    }
    r
}

/// A policy in the vendor's shape, at `loc` unless it keeps a location of its own, with its
/// newest requests the caller may read.
async fn render(arm: &Arm, call: &Call, mut p: Value, loc: Option<&str>) -> Value {
    let loc = p["location"].as_str().or(loc).unwrap_or(GLOBAL).to_owned();
    let ajar = p["id"].as_str().unwrap_or_default().to_owned();
    // Shown as `GET .../requests` shows them to this caller: all with `ajar.requests/read`,
    // their own with `initiate`, none otherwise.
    let requests = arm
        .call(
            call,
            Method::GET,
            &format!("/api/v1{ajar}/requests?top={SHOWN_REQUESTS}"),
            None,
        )
        .await;
    let requests: Vec<Value> = match requests.json {
        Some(v) if requests.status.is_success() => v["value"]
            .as_array()
            .map(|a| a.iter().map(|r| render_request(r.clone(), &loc)).collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    p["id"] = json!(vendor_id(&ajar, &loc));
    p["type"] = json!(TYPE);
    p["location"] = json!(loc);
    if let Some(vms) = p["properties"]["virtualMachines"].as_array_mut() {
        for vm in vms {
            map_str(vm, "id", |id| vendor_id(id, &loc));
        }
    }
    if p["properties"].is_object() {
        p["properties"]["requests"] = Value::Array(requests);
    }
    p
}

/// A vendor-shaped policy body as ajar's `PUT` body: ids in ajar's form, and the fields only
/// ever read back (requests, state, public addresses, the resource's own id, name and type)
/// dropped, so a read-modify-write of what `GET` answered works.
fn translate(mut v: Value, loc: &str) -> Value {
    strip(
        &mut v,
        &["id", "name", "type", "etag", "location", "systemData"],
    );
    // Only fields present in the expected shape are touched (never indexed into), so a body of
    // another shape reaches ajar's handler as sent and gets its 400.
    if let Some(props) = v.get_mut("properties") {
        strip(props, &["requests", "provisioningState"]);
    }
    if let Some(vms) = v
        .get_mut("properties")
        .and_then(|p| p.get_mut("virtualMachines"))
        .and_then(Value::as_array_mut)
    {
        for vm in vms {
            strip(vm, &["publicIpAddress"]);
            map_str(vm, "id", ajar_id);
        }
    }
    if let Some(o) = v.as_object_mut() {
        o.insert("location".to_owned(), json!(loc));
    }
    v
}

async fn list(arm: Arm, req: Request, api_path: String, loc: Option<String>) -> Response {
    let (call, _) = match start(req) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    if let Some(Err(r)) = loc.as_deref().map(check_location) {
        return *r;
    }
    let inner = arm
        .call(
            &call,
            Method::GET,
            &with_query(api_path, &api_query(&call.parts)),
            None,
        )
        .await;
    if !inner.ok() {
        return inner.pass();
    }
    let Some(page) = inner.json.clone() else {
        return AppError::internal().into_response();
    };
    let mut value = Vec::new();
    for p in page["value"].as_array().into_iter().flatten() {
        if loc.as_deref().is_none_or(|l| at(p, l)) {
            value.push(render(&arm, &call, p.clone(), loc.as_deref()).await);
        }
    }
    let next = next_link(&call.parts, &call.version, page["nextLink"].as_str());
    let mut body = json!({ "value": value });
    if let Some(n) = next {
        body["nextLink"] = json!(n);
    }
    inner.reply(StatusCode::OK, Some(body))
}

#[utoipa::path(get, path = "/subscriptions/{sub}/providers/Microsoft.Security/jitNetworkAccessPolicies",
    tag = "azure-compatible", operation_id = "JitNetworkAccessPolicies_List",
    params(("sub" = String, Path, description = "Subscription"), ("api-version" = String, Query, description = "The API version: `2020-01-01`.", example = "2020-01-01"),
           ("top" = Option<u32>, Query), ("skipToken" = Option<String>, Query)),
    responses((status = 200, body = List<Policy>, description = "The policies the caller may read, in Azure's form (Azure resource ids, `type`, `properties.requests`); `nextLink` carries `api-version`"), (status = 400, body = ajar_api::ErrorBody, description = "`api-version` missing, not a version or not served (`MissingApiVersionParameter`, `InvalidApiVersionParameter`, `NoRegisteredProviderFound`), or the body is invalid")))]
/// The subscription's policies (`GET /api/v1/subscriptions/{sub}/jitNetworkAccessPolicies`).
async fn list_subscription(
    State(arm): State<Arm>,
    Path(sub): Path<String>,
    req: Request,
) -> Response {
    let path = format!(
        "/api/v1/subscriptions/{}/jitNetworkAccessPolicies",
        seg(&sub)
    );
    list(arm, req, path, None).await
}

#[utoipa::path(get, path = "/subscriptions/{sub}/providers/Microsoft.Security/locations/{loc}/jitNetworkAccessPolicies",
    tag = "azure-compatible", operation_id = "JitNetworkAccessPolicies_ListByRegion",
    params(("sub" = String, Path, description = "Subscription"), ("loc" = String, Path, description = "Location; a policy keeps the one it was first written at"), ("api-version" = String, Query, description = "The API version: `2020-01-01`.", example = "2020-01-01"),
           ("top" = Option<u32>, Query), ("skipToken" = Option<String>, Query)),
    responses((status = 200, body = List<Policy>, description = "The policies the caller may read, in Azure's form (Azure resource ids, `type`, `properties.requests`); `nextLink` carries `api-version`"), (status = 400, body = ajar_api::ErrorBody, description = "`api-version` missing, not a version or not served (`MissingApiVersionParameter`, `InvalidApiVersionParameter`, `NoRegisteredProviderFound`), or the body is invalid")))]
/// The subscription's policies at a location (and those kept without one).
async fn list_subscription_region(
    State(arm): State<Arm>,
    Path((sub, loc)): Path<(String, String)>,
    req: Request,
) -> Response {
    let path = format!(
        "/api/v1/subscriptions/{}/jitNetworkAccessPolicies",
        seg(&sub)
    );
    list(arm, req, path, Some(loc)).await
}

#[utoipa::path(get, path = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Security/jitNetworkAccessPolicies",
    tag = "azure-compatible", operation_id = "JitNetworkAccessPolicies_ListByResourceGroup",
    params(("sub" = String, Path, description = "Subscription"), ("rg" = String, Path, description = "Resource group"), ("api-version" = String, Query, description = "The API version: `2020-01-01`.", example = "2020-01-01"),
           ("top" = Option<u32>, Query), ("skipToken" = Option<String>, Query)),
    responses((status = 200, body = List<Policy>, description = "The policies the caller may read, in Azure's form (Azure resource ids, `type`, `properties.requests`); `nextLink` carries `api-version`"), (status = 400, body = ajar_api::ErrorBody, description = "`api-version` missing, not a version or not served (`MissingApiVersionParameter`, `InvalidApiVersionParameter`, `NoRegisteredProviderFound`), or the body is invalid")))]
/// The resource group's policies.
async fn list_group(
    State(arm): State<Arm>,
    Path((sub, rg)): Path<(String, String)>,
    req: Request,
) -> Response {
    let path = format!(
        "/api/v1/subscriptions/{}/resourceGroups/{}/jitNetworkAccessPolicies",
        seg(&sub),
        seg(&rg)
    );
    list(arm, req, path, None).await
}

#[utoipa::path(get, path = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Security/locations/{loc}/jitNetworkAccessPolicies",
    tag = "azure-compatible", operation_id = "JitNetworkAccessPolicies_ListByResourceGroupAndRegion",
    params(("sub" = String, Path, description = "Subscription"), ("rg" = String, Path, description = "Resource group"), ("loc" = String, Path, description = "Location; a policy keeps the one it was first written at"), ("api-version" = String, Query, description = "The API version: `2020-01-01`.", example = "2020-01-01"),
           ("top" = Option<u32>, Query), ("skipToken" = Option<String>, Query)),
    responses((status = 200, body = List<Policy>, description = "The policies the caller may read, in Azure's form (Azure resource ids, `type`, `properties.requests`); `nextLink` carries `api-version`"), (status = 400, body = ajar_api::ErrorBody, description = "`api-version` missing, not a version or not served (`MissingApiVersionParameter`, `InvalidApiVersionParameter`, `NoRegisteredProviderFound`), or the body is invalid")))]
/// The resource group's policies at a location (and those kept without one).
async fn list_group_region(
    State(arm): State<Arm>,
    Path((sub, rg, loc)): Path<(String, String, String)>,
    req: Request,
) -> Response {
    let path = format!(
        "/api/v1/subscriptions/{}/resourceGroups/{}/jitNetworkAccessPolicies",
        seg(&sub),
        seg(&rg)
    );
    list(arm, req, path, Some(loc)).await
}

type One = Path<(String, String, String, String)>;

#[utoipa::path(get, path = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Security/locations/{loc}/jitNetworkAccessPolicies/{name}",
    tag = "azure-compatible", operation_id = "JitNetworkAccessPolicies_Get",
    params(("sub" = String, Path, description = "Subscription"), ("rg" = String, Path, description = "Resource group"), ("loc" = String, Path, description = "Location; a policy keeps the one it was first written at"), ("name" = String, Path, description = "Policy name"), ("api-version" = String, Query, description = "The API version: `2020-01-01`.", example = "2020-01-01")),
    responses((status = 200, body = Policy, description = "The policy in Azure's form, with its 10 newest requests the caller may read in `properties.requests`"),
              (status = 400, body = ajar_api::ErrorBody, description = "`api-version` missing, not a version or not served (`MissingApiVersionParameter`, `InvalidApiVersionParameter`, `NoRegisteredProviderFound`), or the body is invalid"), (status = 404, body = ajar_api::ErrorBody, description = "No such policy at this location")))]
/// One policy.
async fn get_policy(
    State(arm): State<Arm>,
    Path((sub, rg, loc, name)): One,
    req: Request,
) -> Response {
    let (call, _) = match start_at(req, &loc) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let inner = arm
        .call(&call, Method::GET, &api_policy(&sub, &rg, &name), None)
        .await;
    match inner.json.clone() {
        Some(p) if inner.ok() => {
            if !at(&p, &loc) {
                return not_at(&sub, &rg, &loc, &name);
            }
            let body = render(&arm, &call, p, Some(&loc)).await;
            inner.reply(StatusCode::OK, Some(body))
        }
        _ => inner.pass(),
    }
}

#[utoipa::path(put, path = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Security/locations/{loc}/jitNetworkAccessPolicies/{name}",
    tag = "azure-compatible", operation_id = "JitNetworkAccessPolicies_CreateOrUpdate",
    params(("sub" = String, Path, description = "Subscription"), ("rg" = String, Path, description = "Resource group"), ("loc" = String, Path, description = "Location; a policy keeps the one it was first written at"), ("name" = String, Path, description = "Policy name"), ("api-version" = String, Query, description = "The API version: `2020-01-01`.", example = "2020-01-01")),
    request_body(content = PolicyBody, description = "The policy; machine ids may be Azure virtual machine ids. The read-only fields a `GET` answers (`properties.requests`, `provisioningState`, `publicIpAddress`, `id`, `name`, `type`, `location`, `etag`) are accepted and ignored."),
    responses((status = 200, body = Policy, description = "The policy as written, created or replaced"),
              (status = 400, body = ajar_api::ErrorBody, description = "`api-version` missing, not a version or not served (`MissingApiVersionParameter`, `InvalidApiVersionParameter`, `NoRegisteredProviderFound`), or the body is invalid"),
              (status = 409, body = ajar_api::ErrorBody, description = "The policy is kept at another location")))]
/// Create or replace: 200 either way (the SDK accepts no other status).
async fn put_policy(
    State(arm): State<Arm>,
    Path((sub, rg, loc, name)): One,
    req: Request,
) -> Response {
    let (call, body) = match start_at(req, &loc) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let body = match payload(body).await {
        Ok(Payload::Json(v)) => Payload::Json(translate(v, &loc)),
        Ok(raw) => raw,
        Err(r) => return *r,
    };
    let inner = arm
        .call(
            &call,
            Method::PUT,
            &api_policy(&sub, &rg, &name),
            Some(body),
        )
        .await;
    match inner.json.clone() {
        Some(p) if inner.ok() => {
            let body = render(&arm, &call, p, Some(&loc)).await;
            inner.reply(StatusCode::OK, Some(body))
        }
        _ => inner.pass(),
    }
}

#[utoipa::path(delete, path = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Security/locations/{loc}/jitNetworkAccessPolicies/{name}",
    tag = "azure-compatible", operation_id = "JitNetworkAccessPolicies_Delete",
    params(("sub" = String, Path, description = "Subscription"), ("rg" = String, Path, description = "Resource group"), ("loc" = String, Path, description = "Location; a policy keeps the one it was first written at"), ("name" = String, Path, description = "Policy name"), ("api-version" = String, Query, description = "The API version: `2020-01-01`.", example = "2020-01-01")),
    responses((status = 200, description = "Deleted"),
              (status = 204, description = "There was no such policy at this location"),
              (status = 400, body = ajar_api::ErrorBody, description = "`api-version` missing, not a version or not served (`MissingApiVersionParameter`, `InvalidApiVersionParameter`, `NoRegisteredProviderFound`), or the body is invalid")))]
/// 200 when deleted; 204 when there was nothing to delete at this location.
async fn delete_policy(
    State(arm): State<Arm>,
    Path((sub, rg, loc, name)): One,
    req: Request,
) -> Response {
    let (call, _) = match start_at(req, &loc) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let path = api_policy(&sub, &rg, &name);
    // A policy kept at another location is not this resource. (A caller who may not read it
    // is answered by the delete itself.)
    match current(&arm, &call, &path, &loc).await {
        Current::Answered(r) => return r,
        Current::Elsewhere => return StatusCode::NO_CONTENT.into_response(),
        Current::Here(_) => {}
    }
    let inner = arm.call(&call, Method::DELETE, &path, None).await;
    match inner.status {
        s if s.is_success() => inner.reply(StatusCode::OK, None),
        StatusCode::NOT_FOUND => inner.reply(StatusCode::NO_CONTENT, None),
        _ => inner.pass(),
    }
}

#[utoipa::path(post, path = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Security/locations/{loc}/jitNetworkAccessPolicies/{name}/initiate",
    tag = "azure-compatible", operation_id = "JitNetworkAccessPolicies_Initiate",
    params(("sub" = String, Path, description = "Subscription"), ("rg" = String, Path, description = "Resource group"), ("loc" = String, Path, description = "Location; a policy keeps the one it was first written at"), ("name" = String, Path, description = "Policy name"), ("api-version" = String, Query, description = "The API version: `2020-01-01`.", example = "2020-01-01")),
    request_body(content = InitiateBody, description = "The machines and ports to open; machine ids may be Azure virtual machine ids"),
    responses((status = 202, body = AccessRequest, description = "The access request, with Azure resource ids"),
              (status = 400, body = ajar_api::ErrorBody, description = "`api-version` refused, or the request is not allowed by the policy (`ValidationFailed` at the port)"),
              (status = 404, body = ajar_api::ErrorBody, description = "No such policy at this location")))]
/// 202 with the request, as Azure answers.
async fn initiate(
    State(arm): State<Arm>,
    Path((sub, rg, loc, name)): One,
    req: Request,
) -> Response {
    let (call, body) = match start_at(req, &loc) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let path = api_policy(&sub, &rg, &name);
    let current = match current(&arm, &call, &path, &loc).await {
        Current::Answered(r) => return r,
        Current::Elsewhere => return not_at(&sub, &rg, &loc, &name),
        Current::Here(read) => read,
    };
    let shown_at = current
        .json
        .as_ref()
        .and_then(|p| p["location"].as_str())
        .unwrap_or(&loc)
        .to_owned();
    let body = match payload(body).await {
        Ok(Payload::Json(mut v)) => {
            if let Some(vms) = v.get_mut("virtualMachines").and_then(Value::as_array_mut) {
                for vm in vms {
                    map_str(vm, "id", ajar_id);
                }
            }
            Payload::Json(v)
        }
        Ok(raw) => raw,
        Err(r) => return *r,
    };
    let inner = arm
        .call(&call, Method::POST, &format!("{path}/initiate"), Some(body))
        .await;
    let status = inner.status;
    ok_or_pass(inner, status, |r| render_request(r, &shown_at))
}
