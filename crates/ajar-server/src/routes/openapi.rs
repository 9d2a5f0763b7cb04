//! The OpenAPI document at `/api/v1/openapi.json`: the paths come from the routes themselves
//! (each handler's annotation is both its route and its description), the rest from [`ApiDoc`].

use super::{
    activity, agents, applications, authorize, groups, jit_requests, machines, notifications,
    policies, rbac, requests, sessions, settings, tokens,
};
use crate::AppState;
use axum::routing::get;
use axum::{Json, Router};
use std::sync::Arc;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

/// Every documented API route, with the document they make.
pub fn documented() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(activity::router())
        .merge(agents::router())
        .merge(applications::router())
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
    let document = Arc::new(document);
    routes.route(
        "/api/v1/openapi.json",
        get(move || {
            let document = document.clone();
            async move { Json(document) }
        }),
    )
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
