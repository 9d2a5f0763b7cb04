//! The OpenAPI document at `/api/v1/openapi.json`: the paths come from the routes themselves
//! (each handler's annotation is both its route and its description), the rest from [`ApiDoc`].

use super::{
    activity, agents, application_roles, applications, authorize, groups, jit_requests, machines,
    notifications, policies, rbac, requests, sessions, settings, tokens,
};
use crate::AppState;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use std::sync::Arc;
use utoipa::openapi::RefOr;
use utoipa::openapi::response::Response;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

/// Every documented API route, with the document they make.
pub fn documented() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(activity::router())
        .merge(agents::router())
        .merge(applications::router())
        .merge(application_roles::router())
        .merge(jit_requests::router())
        .merge(authorize::router())
        .merge(machines::router())
        .merge(policies::router())
        .merge(requests::router())
        .merge(settings::router())
        .merge(tokens::router())
        .merge(sessions::router())
        .merge(rbac::router())
        .merge(groups::router())
        .merge(notifications::router())
}

/// The API routes with `GET /api/v1/openapi.json` serving their document. It describes the API
/// and holds no secrets, so it needs no token.
pub fn router() -> Router<AppState> {
    let (routes, document) = documented().split_for_parts();
    let document = Arc::new(complete(document));
    routes.route(
        "/api/v1/openapi.json",
        get(move || {
            let document = document.clone();
            async move { Json(document) }
        }),
    )
}

/// The served document: the `/api/v1` paths with the Azure-compatible ones beside them, and a
/// description on every response (OpenAPI requires one).
pub fn complete(mut document: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    document.merge(super::arm::ArmDoc::openapi());
    for item in document.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
            &mut item.head,
            &mut item.options,
            &mut item.trace,
        ];
        for operation in operations.into_iter().flatten() {
            for (status, response) in operation.responses.responses.iter_mut() {
                if let RefOr::T(response) = response
                    && response.description.is_empty()
                {
                    response.description = describe(status, response);
                }
            }
        }
    }
    document
}

/// A response's description from its status and the schema it answers, for responses whose
/// route gives none: "OK: a page of Policy", "Created: the Machine", "No Content".
fn describe(status: &str, response: &Response) -> String {
    let reason = status
        .parse::<u16>()
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Answer");
    let schema = response.content.values().find_map(|c| match c {
        RefOr::T(c) => match &c.schema {
            Some(RefOr::Ref(r)) => r.ref_location.rsplit('/').next(),
            _ => None,
        },
        RefOr::Ref(_) => None,
    });
    match schema {
        Some("ErrorBody") => format!("{reason}: the error, in `error`"),
        Some(name) => match name.strip_prefix("List_") {
            Some(item) => format!("{reason}: a page of {item}"),
            None => format!("{reason}: the {name}"),
        },
        None => reason.to_owned(),
    }
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// ajar's API description, apart from the paths (which the routes add).
#[derive(OpenApi)]
#[openapi(
    info(title = "ajar", description = "Just-in-time access: network JIT policies, access requests, tokens and RBAC"),
    components(schemas(ajar_api::ErrorBody, ajar_api::ApiError, ajar_api::ErrorCode)),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
)]
pub struct ApiDoc;
