//! Managed applications, eligibility, role activation requests, decisions and `authorize`.

use super::*;
use ajar_core::FieldError;
use ajar_core::duration::AccessDuration;
use ajar_core::id::{Name, ResourceId, Scope};
use ajar_core::lifecycle::RequestState;
use ajar_core::principal::Principal;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// Body of `PUT .../applications/{name}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApplicationBody {
    /// The application's settings.
    pub properties: ApplicationProperties,
}

/// An application's settings.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApplicationProperties {
    /// Principals (or `group:NAME`) of the publisher, with standing read-only access.
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub publisher_principals: Vec<Principal>,
    /// The JIT access policy; JIT is on (automatic approval, eight hours) when left out.
    #[serde(default)]
    pub jit_access_policy: Option<JitAccessPolicy>,
}

/// An application's JIT access policy.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JitAccessPolicy {
    /// Whether publishers must request elevation; fixed at creation (default true).
    #[serde(default)]
    pub jit_access_enabled: Option<bool>,
    /// `AutoApprove` (default) or `ManualApprove`.
    #[serde(default)]
    pub jit_approval_mode: Option<String>,
    /// Who may approve.
    #[serde(default)]
    pub jit_approvers: Vec<JitApprover>,
    /// Longest activation, ISO 8601 (default `PT8H`).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub maximum_jit_access_duration: Option<AccessDuration>,
    /// ajar's addition: how many approvers must approve (default 1).
    #[serde(default)]
    pub jit_approval_threshold: Option<u32>,
}

/// An approver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JitApprover {
    /// A principal, or a group name.
    pub id: String,
    /// `user` or `group`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Shown in the UI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

impl JitAccessPolicy {
    /// The domain policy, with defaults filled in and each field checked.
    pub fn to_domain(&self) -> Result<ajar_core::application::AppJitPolicy, FieldError> {
        let at = "properties.jitAccessPolicy";
        let approval = approval_rule(
            self.jit_approval_mode.as_deref(),
            &self.jit_approvers,
            self.jit_approval_threshold,
            [
                &format!("{at}.jitApprovalMode"),
                &format!("{at}.jitApprovers"),
                &format!("{at}.jitApprovalThreshold"),
            ],
        )?;
        let policy = ajar_core::application::AppJitPolicy {
            enabled: self.jit_access_enabled.unwrap_or(true),
            approval,
            max_duration: self
                .maximum_jit_access_duration
                .unwrap_or_else(ajar_core::application::default_max_duration),
        };
        policy.validate()?;
        Ok(policy)
    }

    /// The wire form of a domain policy (approvers' display names are kept by the caller).
    pub fn from_domain(p: &ajar_core::application::AppJitPolicy, names: &[JitApprover]) -> Self {
        JitAccessPolicy {
            jit_access_enabled: Some(p.enabled),
            jit_approval_mode: Some(
                if p.approval.automatic {
                    "AutoApprove"
                } else {
                    "ManualApprove"
                }
                .to_owned(),
            ),
            jit_approvers: approvers_to_wire(&p.approval, names),
            maximum_jit_access_duration: Some(p.max_duration),
            jit_approval_threshold: Some(p.approval.threshold),
        }
    }
}

/// Parses an approval mode (`AutoApprove`, the default, or `ManualApprove`), approvers and a
/// threshold (default 1); `at` names the mode, approvers and threshold fields for errors.
pub fn approval_rule(
    mode: Option<&str>,
    approvers: &[JitApprover],
    threshold: Option<u32>,
    [mode_at, approvers_at, threshold_at]: [&str; 3],
) -> Result<ajar_core::lifecycle::ApprovalRule, FieldError> {
    use ajar_core::lifecycle::{ApprovalRule, Approver};
    let automatic = match mode {
        None | Some("AutoApprove") => true,
        Some("ManualApprove") => false,
        Some(other) => {
            return Err(FieldError::new(
                mode_at,
                format!("{other:?} is not one of AutoApprove, ManualApprove"),
            ));
        }
    };
    let mut parsed = Vec::with_capacity(approvers.len());
    for (i, a) in approvers.iter().enumerate() {
        let target = format!("{approvers_at}[{i}]");
        let approver = match a.kind.as_str() {
            "user" => {
                Approver::User(Principal::parse(&a.id).map_err(|e| e.at(format!("{target}.id")))?)
            }
            "group" => Approver::Group(
                ajar_core::id::Name::parse(a.id.trim_start_matches("group:"))
                    .map_err(|e| e.at(format!("{target}.id")))?
                    .to_string(),
            ),
            other => {
                return Err(FieldError::new(
                    format!("{target}.type"),
                    format!("{other:?} is not one of user, group"),
                ));
            }
        };
        if parsed.contains(&approver) {
            return Err(FieldError::new(
                format!("{target}.id"),
                "approver listed twice",
            ));
        }
        parsed.push(approver);
    }
    let rule = ApprovalRule {
        automatic,
        approvers: parsed,
        threshold: threshold.unwrap_or(1),
    };
    rule.validate(approvers_at, threshold_at)?;
    Ok(rule)
}

/// Approvers in the wire shape, with display names taken from `names` where they match.
pub fn approvers_to_wire(
    rule: &ajar_core::lifecycle::ApprovalRule,
    names: &[JitApprover],
) -> Vec<JitApprover> {
    use ajar_core::lifecycle::Approver;
    rule.approvers
        .iter()
        .map(|a| {
            let (id, kind) = match a {
                Approver::User(u) => (u.to_string(), "user"),
                Approver::Group(g) => (g.clone(), "group"),
            };
            let display_name = names
                .iter()
                .find(|n| n.id.trim_start_matches("group:") == id && n.kind == kind)
                .and_then(|n| n.display_name.clone());
            JitApprover {
                id,
                kind: kind.to_owned(),
                display_name,
            }
        })
        .collect()
}

/// An application as the API returns it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Application {
    /// Resource id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Always `applications`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Settings, with the JIT policy's defaults filled in.
    pub properties: ApplicationProperties,
    /// Role activation figures (in reads, not in the answer to a write).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_figures: Option<RequestFigures>,
}

/// Request figures of a machine or an application, as the console's Configured tab shows them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestFigures {
    /// Requests granted in the last 7 days.
    pub approved_requests_last7_days: i64,
    /// When access was last requested and granted (RFC 3339).
    #[schema(value_type = Option<String>)]
    pub last_access_at: Option<Timestamp>,
    /// Who asked last.
    pub last_user: Option<String>,
    /// Ports open now and where to connect (machines only): at most 10, those that end first;
    /// the machine's grants (`…/machines/{name}/grants`) list them all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub open_connections: Vec<OpenConnection>,
    /// How many ports are open now (machines only), listed or not.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub open_connection_count: i64,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// A port open now on a machine.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OpenConnection {
    /// The machine's port.
    pub port: u16,
    /// `TCP`, `UDP` or `*`.
    pub protocol: String,
    /// Where to connect: the gateway's address and mapped port, or the machine's address.
    pub connect_to: Option<String>,
    /// Who may connect from.
    pub source_address_prefixes: Vec<String>,
    /// Who asked.
    pub requestor: String,
    /// When it closes.
    #[schema(value_type = String)]
    pub end_time_utc: Timestamp,
}

/// Body of `PUT .../applications/{name}/eligibleRoles/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EligibleRoleBody {
    /// A principal or `group:NAME`.
    #[schema(value_type = String)]
    pub principal: Principal,
    /// The role they may activate.
    pub role_definition: String,
}

/// An eligibility: who may activate which role on an application.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EligibleRole {
    /// Eligibility id (unique within the application).
    pub id: String,
    /// The application.
    pub application_id: String,
    /// A principal or `group:NAME`.
    pub principal: String,
    /// The role.
    pub role_definition: String,
    /// When it was granted.
    #[schema(value_type = String)]
    pub created_at: Timestamp,
}

/// Body of `PUT .../applications/{name}/actions`: the actions the application understands, in a
/// namespace of its own, which its roles are written over and `authorize` answers about.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApplicationActionsBody {
    /// The namespace (`crm`): 1 to 64 letters, digits, `-` or `_`; not `ajar`, and not one
    /// another application declared.
    pub namespace: String,
    /// The actions, each `NAMESPACE.` then letters, digits and `. / _ -` (`crm.orders/write`),
    /// at most 1,000.
    pub actions: Vec<String>,
}

/// The actions an application declared.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationActions {
    /// The application.
    pub application_id: String,
    /// Its namespace (empty when it declared none).
    pub namespace: String,
    /// Its actions, sorted.
    pub actions: Vec<String>,
}

/// Body of `PUT .../applications/{name}/roleDefinitions/{role}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApplicationRoleBody {
    /// Patterns over the application's declared actions, `*` matching any run of characters
    /// (`crm.orders/*`, `*/read`); each must match at least one declared action.
    pub actions: Vec<String>,
    /// What the role is for.
    #[serde(default)]
    pub description: Option<String>,
}

/// A role an application defined over its own actions.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationRole {
    /// Its resource id (`…/applications/{name}/roleDefinitions/{role}`).
    pub id: String,
    /// The application.
    pub application_id: String,
    /// The role's name, unique within the application.
    pub name: String,
    /// What the role is for.
    pub description: String,
    /// Its patterns, as written.
    pub actions: Vec<String>,
    /// The declared actions the patterns match today.
    pub allowed_actions: Vec<String>,
}

/// Body of `PUT .../jitRequests/{name}`: a role activation request.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JitRequestBody {
    /// Where the request is placed (kept and answered; ajar does not use it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub location: Option<Name>,
    /// The requester's tags (kept and answered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    /// The request.
    pub properties: JitRequestProperties,
}

/// Body of `PATCH .../jitRequests/{name}`: the request's new tags.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JitRequestPatch {
    /// The tags, replacing those the request had.
    pub tags: BTreeMap<String, String>,
}

/// What is requested.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JitRequestProperties {
    /// The application.
    #[schema(value_type = String)]
    pub application_resource_id: ResourceId,
    /// The roles asked for, each for the requester.
    pub jit_authorization_policies: Vec<JitAuthorizationPolicy>,
    /// When and for how long.
    pub jit_scheduling_policy: JitSchedulingPolicy,
    /// Why.
    #[serde(default)]
    pub justification: Option<String>,
}

/// One role for one principal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JitAuthorizationPolicy {
    /// Who (the requester).
    #[schema(value_type = String)]
    pub principal_id: Principal,
    /// The role.
    pub role_definition_id: String,
}

/// When the activation happens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JitSchedulingPolicy {
    /// `Once`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Start; absent means "when approved".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub start_time: Option<Timestamp>,
    /// How long, ISO 8601.
    #[schema(value_type = String)]
    pub duration: AccessDuration,
}

/// A role activation request as the API returns it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JitRequest {
    /// Resource id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Always `jitRequests`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Where the requester placed it, when they said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// The requester's tags, when any were given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    /// The request and its state.
    pub properties: JitRequestView,
}

/// A role activation request's details and state.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JitRequestView {
    /// `role` (an activation on an application) or `network` (access under a network policy
    /// with manual approval).
    pub request_kind: RequestKind,
    /// The application (role requests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_resource_id: Option<String>,
    /// The network policy (network requests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_access_policy_id: Option<String>,
    /// The initiate as asked (network requests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_access: Option<InitiateBody>,
    /// The network access request that opened the ports, once approved (its id under the
    /// policy's `requests`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_request_id: Option<String>,
    /// The request this one extends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extends: Option<String>,
    /// The roles.
    pub jit_authorization_policies: Vec<JitAuthorizationPolicy>,
    /// When and for how long, as asked.
    pub jit_scheduling_policy: JitSchedulingPolicy,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub justification: Option<String>,
    /// `Pending`, `Approved`, `Active`, `Denied`, `Canceled`, `Timeout`, `Expired`, `Revoked`
    /// or `Failed`.
    #[schema(value_type = String)]
    pub jit_request_state: RequestState,
    /// Who asked.
    pub requestor: String,
    /// When it was asked.
    #[schema(value_type = String)]
    pub created_at: Timestamp,
    /// The granted window, once approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub active_from: Option<Timestamp>,
    /// Its end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub active_until: Option<Timestamp>,
    /// Approvals and denials, with reasons.
    pub decisions: Vec<DecisionView>,
    /// When the "expires in 15 minutes" warning fell due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub expiry_warned_at: Option<Timestamp>,
    /// Why enforcement failed (`Failed` requests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

/// Body of `POST .../jitRequests/{name}/extend`: a follow-on request, decided under the same
/// rules, that continues an approved or active one.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExtendBody {
    /// How much longer, ISO 8601 (at most the policy's maximum).
    #[schema(value_type = String)]
    pub duration: AccessDuration,
    /// Why.
    #[serde(default)]
    pub justification: Option<String>,
}

wire_enum! {
    /// The two kinds of request ajar keeps.
    RequestKind {
        /// An activation of roles on an application.
        Role = "role",
        /// Access to machines' ports under a network policy.
        Network = "network",
    }
}

wire_enum! {
    /// A request's state as history shows it: a role request's state, or a network request's in
    /// the same words.
    HistoryState {
        /// Waiting for approvals.
        Pending = "Pending",
        /// Approved; its window has not begun.
        Approved = "Approved",
        /// Inside its window.
        Active = "Active",
        /// An approver refused it.
        Denied = "Denied",
        /// The requester withdrew it.
        Canceled = "Canceled",
        /// Its window ended before enough approvals came.
        Timeout = "Timeout",
        /// Its window ended.
        Expired = "Expired",
        /// Ended early.
        Revoked = "Revoked",
        /// Enforcement could not apply it.
        Failed = "Failed",
    }
}

impl From<RequestState> for HistoryState {
    fn from(state: RequestState) -> Self {
        HistoryState::parse(state.as_str()).unwrap_or(HistoryState::Failed)
    }
}

/// One entry of `GET /api/v1/history`: a request of either kind.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    /// The request's id (a `jitRequests` resource id, or a network request id).
    pub id: String,
    /// `role` or `network`.
    pub kind: RequestKind,
    /// The application or network policy.
    pub target: String,
    /// The machines a network request is for (empty for a role request).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub machines: Vec<String>,
    /// Who asked.
    pub requestor: String,
    /// `Pending`, `Approved`, `Active`, `Denied`, `Canceled`, `Timeout`, `Expired`,
    /// `Revoked` or `Failed`.
    pub state: HistoryState,
    /// For network access whose ports have closed: why the last one closed, the `statusReason`
    /// its port shows (`NewerRequestInitiated` when a newer request for the same machine, port
    /// and source replaced it, `UserRequested`, `PolicyChanged` or `Expired`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_reason: Option<PortStatusReason>,
    /// When it was asked.
    #[schema(value_type = String)]
    pub created_at: Timestamp,
    /// Start of the granted window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub active_from: Option<Timestamp>,
    /// End of the granted window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub active_until: Option<Timestamp>,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub justification: Option<String>,
}

impl HistoryEntry {
    /// The state as people read it, the same words a port of the request shows: `Revoked
    /// (NewerRequestInitiated)`, `Expired`, `Active`.
    pub fn state_words(&self) -> String {
        state_words(self.state.as_str(), self.state_reason)
    }
}

/// `state`, followed by `reason` in parentheses when there is one and it is not the same word.
pub fn state_words(state: &str, reason: Option<PortStatusReason>) -> String {
    match reason {
        Some(r) if r.as_str() != state => format!("{state} ({r})"),
        _ => state.to_owned(),
    }
}

/// An approval or denial.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DecisionView {
    /// Who decided.
    pub by: String,
    /// `Approved` or `Denied`.
    pub decision: String,
    /// Why.
    pub reason: String,
    /// When.
    #[schema(value_type = String)]
    pub at: Timestamp,
}

/// Body of approve and deny.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DecisionBody {
    /// Why (required).
    pub reason: String,
}

/// Body of `POST /api/v1/authorize`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthorizeBody {
    /// Who wants to act.
    #[schema(value_type = String)]
    pub principal: Principal,
    /// What they want to do (an action name).
    pub action: String,
    /// Where.
    #[schema(value_type = String)]
    pub scope: Scope,
    /// Groups the principal belongs to (`group:NAME`), as the asking application knows them.
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub groups: Vec<Principal>,
}

/// The answer of `POST /api/v1/authorize`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizeAnswer {
    /// Allowed or not.
    pub allowed: bool,
    /// Why, in words.
    pub reason: String,
    /// `assignment:ID` or `elevation:REQUEST_ID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// When the elevation that allows it ends (absent for standing access).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub expires_at: Option<Timestamp>,
}
