//! The OpenAPI document, generated from the handlers' annotations, at `/api/v1/openapi.json`.

use super::{
    activity, agents, applications, authorize, groups, jit_requests, machines, notifications,
    policies, rbac, requests, sessions, settings, tokens,
};
use crate::AppState;
use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/openapi.json", get(openapi_json))
}

/// Serves the document. It describes the API and holds no secrets, so it needs no token.
async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
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

/// ajar's API description.
#[derive(OpenApi)]
#[openapi(
    info(title = "ajar", description = "Just-in-time access: network JIT policies, access requests, tokens and RBAC"),
    paths(
        machines::put_machine, machines::get_machine, machines::delete_machine,
        machines::list_subscription_machines, machines::list_group_machines,
        policies::put_policy, policies::get_policy, policies::delete_policy,
        policies::list_subscription_policies, policies::list_group_policies, policies::enable_jit,
        requests::initiate, requests::list_policy_requests, requests::list_machine_requests,
        requests::get_request, requests::revoke_request, requests::list_grants,
        settings::get_subscription_settings, settings::put_subscription_settings,
        settings::get_group_settings, settings::put_group_settings,
        tokens::create_token, tokens::list_tokens, tokens::delete_token,
        sessions::identity_providers, sessions::create_session,
        rbac::list_roles, rbac::get_role, rbac::put_role, rbac::delete_role,
        rbac::list_assignments, rbac::get_assignment, rbac::put_assignment, rbac::delete_assignment,
        agents::create_agent, agents::list_agents, agents::get_agent, agents::delete_agent,
        agents::desired_state, agents::report,
        applications::put_application, applications::get_application,
        applications::delete_application, applications::list_subscription_applications,
        applications::list_group_applications, applications::put_eligible_role,
        applications::get_eligible_role, applications::delete_eligible_role,
        applications::list_eligible_roles,
        jit_requests::create_jit_request, jit_requests::get_jit_request, jit_requests::approve,
        jit_requests::deny, jit_requests::cancel, jit_requests::revoke,
        jit_requests::list_application_requests, jit_requests::inbox,
        authorize::authorize, authorize::me, authorize::subscriptions,
        groups::list_groups, groups::get_group, groups::put_group, groups::delete_group,
        activity::list_activity, activity::verify_activity,
        notifications::put_subscription, notifications::get_subscription,
        notifications::list_subscriptions, notifications::delete_subscription,
        notifications::list_deliveries, notifications::retry_delivery,
    ),
    components(schemas(ajar_api::ErrorBody, ajar_api::ApiError, ajar_api::ErrorCode)),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
)]
pub struct ApiDoc;
