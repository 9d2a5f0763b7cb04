//! `Microsoft.Solutions/jitRequests` on ajar's role activation requests. Every create or
//! update answers at once with `provisioningState: Succeeded` and no asynchronous-operation
//! headers, so the SDK's long-running-operation poller finishes without polling.

use super::{
    Arm, Call, Payload, Versions, ajar_id, api_query, check_version, map_str, next_link, payload,
    seg, strip, vendor_id,
};
use crate::error::AppError;
use ajar_api::wire::{JitRequest, JitRequestBody, JitRequestPatch, List};
use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

const VERSIONS: Versions = Versions {
    kind: TYPE,
    supported: &[
        "2019-07-01",
        "2020-08-21-preview",
        "2021-02-01-preview",
        "2021-07-01",
        "2023-12-01-preview",
    ],
};

/// The vendor's resource type.
const TYPE: &str = "Microsoft.Solutions/jitRequests";

/// Most requests a list answers (the SDK reads one page and never follows `nextLink`).
const LIST_MAX: usize = 1000;

/// Fields of an answer that a read-modify-write sends back and a create never takes.
const READ_ONLY: &[&str] = &[
    "provisioningState",
    "jitRequestState",
    "publisherTenantId",
    "createdBy",
    "updatedBy",
    "requestKind",
    "requestor",
    "createdAt",
    "activeFrom",
    "activeUntil",
    "decisions",
    "expiryWarnedAt",
    "failure",
    "networkRequestId",
    "networkAccessPolicyId",
    "networkAccess",
    "extends",
];

pub(super) fn routes() -> Router<Arm> {
    Router::new()
        .route(
            "/subscriptions/{sub}/providers/Microsoft.Solutions/jitRequests",
            get(list_subscription),
        )
        .route(
            "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Solutions/jitRequests",
            get(list_group),
        )
        .route(
            "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Solutions/jitRequests/{name}",
            get(get_request)
                .put(put_request)
                .patch(patch_request)
                .delete(delete_request),
        )
}

fn start(req: Request) -> Result<(Call, axum::body::Body), Box<Response>> {
    let (parts, body) = req.into_parts();
    let version = check_version(&parts, &VERSIONS)?;
    Ok((Call { parts, version }, body))
}

fn api_request(sub: &str, rg: &str, name: &str) -> String {
    format!(
        "/api/v1/subscriptions/{}/resourceGroups/{}/jitRequests/{}",
        seg(sub),
        seg(rg),
        seg(name)
    )
}

/// A request in the vendor's shape: ids in Azure's form, `provisioningState: Succeeded`
/// (the resource exists; `jitRequestState` says where its approval stands), the requester
/// and creation time as `systemData`; ajar's own fields kept.
fn render(mut r: Value) -> Value {
    map_str(&mut r, "id", |id| vendor_id(id, ""));
    r["type"] = json!(TYPE);
    let props = &mut r["properties"];
    map_str(props, "applicationResourceId", |id| vendor_id(id, ""));
    let requestor = props["requestor"].clone();
    let created = props["createdAt"].clone();
    if props.is_object() {
        props["provisioningState"] = json!("Succeeded");
        props["createdBy"] = json!({ "oid": requestor });
    }
    r["systemData"] = json!({
        "createdBy": requestor,
        "createdByType": "User",
        "createdAt": created,
    });
    r
}

/// A vendor-shaped request body as ajar's `PUT` body.
/// Only fields present in the expected shape are touched (never indexed into), so a body of
/// another shape reaches ajar's handler as sent and gets its 400.
fn translate(mut v: Value) -> Value {
    strip(&mut v, &["id", "name", "type", "systemData"]);
    let Some(props) = v.get_mut("properties") else {
        return v;
    };
    strip(props, READ_ONLY);
    map_str(props, "applicationResourceId", ajar_id);
    if let Some(auths) = props
        .get_mut("jitAuthorizationPolicies")
        .and_then(Value::as_array_mut)
    {
        for a in auths {
            // A full role definition id names its role by its last segment.
            map_str(a, "roleDefinitionId", |r| {
                r.rsplit('/').next().unwrap_or(r).to_owned()
            });
        }
    }
    v
}

#[utoipa::path(get, path = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Solutions/jitRequests/{name}",
    tag = "azure-compatible", operation_id = "JitRequests_Get",
    params(("sub" = String, Path, description = "Subscription"), ("rg" = String, Path, description = "Resource group"), ("name" = String, Path, description = "Request name"), ("api-version" = String, Query, description = "The API version: `2019-07-01`, `2020-08-21-preview`, `2021-02-01-preview`, `2021-07-01` or `2023-12-01-preview`.", example = "2021-07-01")),
    responses((status = 200, body = JitRequest, description = "The request in Azure's form; `jitRequestState` says where its approval stands"),
              (status = 400, body = ajar_api::ErrorBody, description = "`api-version` missing, not a version or not served (`MissingApiVersionParameter`, `InvalidApiVersionParameter`, `NoRegisteredProviderFound`), or the body is invalid"), (status = 404, body = ajar_api::ErrorBody, description = "No such request")))]
/// One request.
async fn get_request(
    State(arm): State<Arm>,
    Path((sub, rg, name)): Path<(String, String, String)>,
    req: Request,
) -> Response {
    let (call, _) = match start(req) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let inner = arm
        .call(&call, Method::GET, &api_request(&sub, &rg, &name), None)
        .await;
    super::ok_or_pass(inner, StatusCode::OK, render)
}

/// Whether an existing request is the one `body` asks for: same application and roles, for
/// the same principal. Asking again for it is answered with it (PUT is idempotent).
fn same_request(existing: &Value, body: &Value) -> bool {
    let e = &existing["properties"];
    let b = &body["properties"];
    let roles = |v: &Value| {
        let mut r: Vec<(String, String)> = v["jitAuthorizationPolicies"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| {
                (
                    a["principalId"].as_str().unwrap_or_default().to_owned(),
                    a["roleDefinitionId"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                )
            })
            .collect();
        r.sort();
        r
    };
    e["applicationResourceId"] == b["applicationResourceId"] && roles(e) == roles(b)
}

#[utoipa::path(put, path = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Solutions/jitRequests/{name}",
    tag = "azure-compatible", operation_id = "JitRequests_CreateOrUpdate",
    params(("sub" = String, Path, description = "Subscription"), ("rg" = String, Path, description = "Resource group"), ("name" = String, Path, description = "Request name"), ("api-version" = String, Query, description = "The API version: `2019-07-01`, `2020-08-21-preview`, `2021-02-01-preview`, `2021-07-01` or `2023-12-01-preview`.", example = "2021-07-01")),
    request_body(content = JitRequestBody, description = "The request; `applicationResourceId` may be an Azure managed application id, `roleDefinitionId` an ajar role name or a full id ending in one. The read-only fields a `GET` answers are accepted and ignored."),
    responses((status = 201, body = JitRequest, description = "Created, `provisioningState: Succeeded` (nothing to poll)"),
              (status = 200, body = JitRequest, description = "The same request asked for again, its tags replaced when the body gives tags"),
              (status = 400, body = ajar_api::ErrorBody, description = "`api-version` missing, not a version or not served (`MissingApiVersionParameter`, `InvalidApiVersionParameter`, `NoRegisteredProviderFound`), or the body is invalid"),
              (status = 409, body = ajar_api::ErrorBody, description = "Another request has this name")))]
/// Create: 201 with the request. Asked again for the same request: 200 with it (its tags
/// replaced when the body gives tags). Another request under the name: 409.
async fn put_request(
    State(arm): State<Arm>,
    Path((sub, rg, name)): Path<(String, String, String)>,
    req: Request,
) -> Response {
    let (call, body) = match start(req) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let body = match payload(body).await {
        Ok(Payload::Json(v)) => Payload::Json(translate(v)),
        Ok(raw) => raw,
        Err(r) => return *r,
    };
    let asked = match &body {
        Payload::Json(v) => Some(v.clone()),
        Payload::Raw(_) => None,
    };
    let path = api_request(&sub, &rg, &name);
    let inner = arm.call(&call, Method::PUT, &path, Some(body)).await;
    if inner.status == StatusCode::CONFLICT
        && let Some(asked) = asked
    {
        let existing = arm.call(&call, Method::GET, &path, None).await;
        if let Some(e) = &existing.json
            && existing.ok()
            && same_request(e, &asked)
        {
            if let Some(tags) = asked.get("tags").filter(|t| t.is_object())
                && e.get("tags") != Some(tags)
            {
                let patched = arm
                    .call(
                        &call,
                        Method::PATCH,
                        &path,
                        Some(Payload::Json(json!({ "tags": tags }))),
                    )
                    .await;
                return super::ok_or_pass(patched, StatusCode::OK, render);
            }
            return super::ok_or_pass(existing, StatusCode::OK, render);
        }
    }
    let status = inner.status;
    super::ok_or_pass(inner, status, render)
}

#[utoipa::path(patch, path = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Solutions/jitRequests/{name}",
    tag = "azure-compatible", operation_id = "JitRequests_Update",
    params(("sub" = String, Path, description = "Subscription"), ("rg" = String, Path, description = "Resource group"), ("name" = String, Path, description = "Request name"), ("api-version" = String, Query, description = "The API version: `2019-07-01`, `2020-08-21-preview`, `2021-02-01-preview`, `2021-07-01` or `2023-12-01-preview`.", example = "2021-07-01")),
    request_body(content = JitRequestPatch, description = "The new tags"),
    responses((status = 200, body = JitRequest, description = "The request with its new tags"),
              (status = 400, body = ajar_api::ErrorBody, description = "`api-version` missing, not a version or not served (`MissingApiVersionParameter`, `InvalidApiVersionParameter`, `NoRegisteredProviderFound`), or the body is invalid"), (status = 404, body = ajar_api::ErrorBody, description = "No such request")))]
/// Replaces the tags (the only field Azure's PATCH takes).
async fn patch_request(
    State(arm): State<Arm>,
    Path((sub, rg, name)): Path<(String, String, String)>,
    req: Request,
) -> Response {
    let (call, body) = match start(req) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let body = match payload(body).await {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let inner = arm
        .call(
            &call,
            Method::PATCH,
            &api_request(&sub, &rg, &name),
            Some(body),
        )
        .await;
    super::ok_or_pass(inner, StatusCode::OK, render)
}

#[utoipa::path(delete, path = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Solutions/jitRequests/{name}",
    tag = "azure-compatible", operation_id = "JitRequests_Delete",
    params(("sub" = String, Path, description = "Subscription"), ("rg" = String, Path, description = "Resource group"), ("name" = String, Path, description = "Request name"), ("api-version" = String, Query, description = "The API version: `2019-07-01`, `2020-08-21-preview`, `2021-02-01-preview`, `2021-07-01` or `2023-12-01-preview`.", example = "2021-07-01")),
    responses((status = 200, description = "Ended (canceled, revoked, or already over); its record stays"),
              (status = 204, description = "There was no such request"),
              (status = 400, body = ajar_api::ErrorBody, description = "`api-version` missing, not a version or not served (`MissingApiVersionParameter`, `InvalidApiVersionParameter`, `NoRegisteredProviderFound`), or the body is invalid")))]
/// Ends the request: a pending one is canceled, an approved or active one revoked, one that
/// has ended is left as it is. Its record stays (a later GET shows it Canceled, Revoked or as
/// it ended): ajar keeps every request's history. 200 when the request exists, 204 when not.
async fn delete_request(
    State(arm): State<Arm>,
    Path((sub, rg, name)): Path<(String, String, String)>,
    req: Request,
) -> Response {
    let (call, _) = match start(req) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let path = api_request(&sub, &rg, &name);
    let current = arm.call(&call, Method::GET, &path, None).await;
    if current.status == StatusCode::NOT_FOUND {
        return current.reply(StatusCode::NO_CONTENT, None);
    }
    let state = match &current.json {
        Some(r) if current.ok() => r["properties"]["jitRequestState"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        _ => return current.pass(),
    };
    let action = match state.as_str() {
        "Pending" => "cancel",
        "Approved" | "Active" => "revoke",
        _ => return current.reply(StatusCode::OK, None),
    };
    let inner = arm
        .call(&call, Method::POST, &format!("{path}/{action}"), None)
        .await;
    if inner.ok() {
        inner.reply(StatusCode::OK, None)
    } else {
        inner.pass()
    }
}

async fn list(arm: Arm, req: Request, api_path: String) -> Response {
    let (call, _) = match start(req) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    // Role requests only: a network request's approval lives on its policy, not here.
    let query = {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("kind", "role");
        let given = api_query(&call.parts);
        // The SDK reads one page: as many as may be, unless the caller asks for fewer.
        let top = form_urlencoded::parse(given.as_bytes())
            .find(|(k, _)| k == "top")
            .and_then(|(_, v)| v.parse::<usize>().ok())
            .map_or(LIST_MAX, |t| t.clamp(1, LIST_MAX));
        query.append_pair("top", &top.to_string());
        for (k, v) in form_urlencoded::parse(given.as_bytes()) {
            if k != "kind" && k != "top" {
                query.append_pair(&k, &v);
            }
        }
        query.finish()
    };
    let inner = arm
        .call(&call, Method::GET, &format!("{api_path}?{query}"), None)
        .await;
    if !inner.ok() {
        return inner.pass();
    }
    let Some(page) = inner.json.clone() else {
        return AppError::internal().into_response();
    };
    let value: Vec<Value> = page["value"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| render(r.clone()))
        .collect();
    let mut body = json!({ "value": value });
    if let Some(n) = next_link(&call.parts, &call.version, page["nextLink"].as_str()) {
        body["nextLink"] = json!(n);
    }
    inner.reply(StatusCode::OK, Some(body))
}

#[utoipa::path(get, path = "/subscriptions/{sub}/providers/Microsoft.Solutions/jitRequests",
    tag = "azure-compatible", operation_id = "JitRequests_ListBySubscription",
    params(("sub" = String, Path, description = "Subscription"), ("api-version" = String, Query, description = "The API version: `2019-07-01`, `2020-08-21-preview`, `2021-02-01-preview`, `2021-07-01` or `2023-12-01-preview`.", example = "2021-07-01")),
    responses((status = 200, body = List<JitRequest>, description = "Role requests the caller may see, newest first (up to 1,000), in Azure's form (Azure resource ids, `type`, `systemData`, `provisioningState: Succeeded`)"), (status = 400, body = ajar_api::ErrorBody, description = "`api-version` missing, not a version or not served (`MissingApiVersionParameter`, `InvalidApiVersionParameter`, `NoRegisteredProviderFound`), or the body is invalid")))]
/// The subscription's role requests.
async fn list_subscription(
    State(arm): State<Arm>,
    Path(sub): Path<String>,
    req: Request,
) -> Response {
    list(
        arm,
        req,
        format!("/api/v1/subscriptions/{}/jitRequests", seg(&sub)),
    )
    .await
}

#[utoipa::path(get, path = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Solutions/jitRequests",
    tag = "azure-compatible", operation_id = "JitRequests_ListByResourceGroup",
    params(("sub" = String, Path, description = "Subscription"), ("rg" = String, Path, description = "Resource group"), ("api-version" = String, Query, description = "The API version: `2019-07-01`, `2020-08-21-preview`, `2021-02-01-preview`, `2021-07-01` or `2023-12-01-preview`.", example = "2021-07-01")),
    responses((status = 200, body = List<JitRequest>, description = "Role requests the caller may see, newest first (up to 1,000), in Azure's form (Azure resource ids, `type`, `systemData`, `provisioningState: Succeeded`)"), (status = 400, body = ajar_api::ErrorBody, description = "`api-version` missing, not a version or not served (`MissingApiVersionParameter`, `InvalidApiVersionParameter`, `NoRegisteredProviderFound`), or the body is invalid")))]
/// The resource group's role requests.
async fn list_group(
    State(arm): State<Arm>,
    Path((sub, rg)): Path<(String, String)>,
    req: Request,
) -> Response {
    list(
        arm,
        req,
        format!(
            "/api/v1/subscriptions/{}/resourceGroups/{}/jitRequests",
            seg(&sub),
            seg(&rg)
        ),
    )
    .await
}
