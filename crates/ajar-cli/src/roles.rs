//! Applications and role activation, the approval engine's requests and decisions, and access
//! control (roles, assignments, groups).

use crate::parse;
use crate::render::{self, Column};
use crate::{Answer, CliError, CliResult, Ctx, NoParameters, refused, usage};
use ajar_api::ClientError;
use ajar_api::wire::{
    Application, ApplicationActions, ApplicationActionsBody, ApplicationBody,
    ApplicationProperties, ApplicationRole, ApplicationRoleBody, DecisionBody, EligibleRole,
    EligibleRoleBody, Group, GroupBody, HistoryEntry, JitAccessPolicy, JitApprover,
    JitAuthorizationPolicy, JitRequest, JitRequestBody, JitRequestProperties, JitSchedulingPolicy,
    List, Me, RequestFigures, RoleAssignment, RoleAssignmentBody, RoleDefinition,
    RoleDefinitionBody,
};
use ajar_core::duration::AccessDuration;
use ajar_core::id::{ResourceId, Scope};
use ajar_core::principal::Principal;
use ajar_core::rbac::{ActionPattern, parse_role_name};
use clap::{Args, Subcommand, ValueEnum};

/// How an application's activations are decided.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Approval {
    /// Approved at once.
    Auto,
    /// Approvers decide.
    Manual,
}

/// An approver as `user:NAME`, `group:NAME` or just `NAME` (a user).
fn approver(s: &str) -> CliResult<JitApprover> {
    let (kind, id) = match s.split_once(':') {
        Some(("user", id)) => ("user", id),
        Some(("group", id)) => ("group", id),
        None => ("user", s),
        Some(_) => {
            return Err(usage(format!(
                "approver {s:?}: use user:NAME or group:NAME"
            )));
        }
    };
    if id.is_empty() {
        return Err(usage(format!("approver {s:?} has no name")));
    }
    Ok(JitApprover {
        id: id.to_owned(),
        kind: kind.to_owned(),
        display_name: None,
    })
}

/// A principal given as `option`, as the API reads it.
pub(crate) fn principal(option: &str, s: &str) -> CliResult<Principal> {
    Principal::parse(s).map_err(|e| refused(option, e))
}

/// `ajar app ...`.
#[derive(Debug, Subcommand)]
pub enum AppCmd {
    /// Create or update an application and its JIT policy.
    Set {
        /// Its resource id, e.g. /subscriptions/s1/resourceGroups/rg1/applications/crm.
        id: String,
        /// Publisher principal (repeatable).
        #[arg(long = "publisher")]
        publishers: Vec<String>,
        /// Create it without JIT (publishers' roles are standing); only at creation.
        #[arg(long)]
        no_jit: bool,
        /// Approval mode.
        #[arg(long, value_enum)]
        approval: Option<Approval>,
        /// Approver: user:NAME or group:NAME (repeatable).
        #[arg(long = "approver")]
        approvers: Vec<String>,
        /// Approvals needed.
        #[arg(long)]
        threshold: Option<u32>,
        /// Longest activation (e.g. 8h).
        #[arg(long)]
        max: Option<String>,
    },
    /// Show an application with its request figures.
    Show {
        /// Resource id.
        id: String,
    },
    /// List the applications of a subscription or resource group.
    List {
        /// /subscriptions/S or /subscriptions/S/resourceGroups/RG.
        #[arg(long)]
        scope: String,
    },
    /// Remove an application.
    Rm {
        /// Resource id.
        id: String,
    },
    /// Who may activate which role.
    #[command(subcommand)]
    Role(EligibleCmd),
    /// Show the actions an application declares, or declare them (with --namespace).
    Actions {
        /// The application's resource id.
        app: String,
        /// Its namespace, e.g. crm; the actions given replace those declared.
        #[arg(long)]
        namespace: Option<String>,
        /// An action in the namespace, e.g. crm.orders/read (repeatable).
        #[arg(long = "action", requires = "namespace")]
        actions: Vec<String>,
    },
    /// The application's own roles, written over its actions.
    #[command(subcommand)]
    Roledef(AppRoleCmd),
    /// The roles you may activate, at every application or at one.
    Mine {
        /// Only at this application (its resource id).
        app: Option<String>,
    },
    /// Activate roles on an application for a while (a role activation request).
    Activate {
        /// The application's resource id.
        app: String,
        /// Role to activate (repeatable).
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// For how long (e.g. 2h).
        #[arg(long)]
        duration: String,
        /// From when (RFC 3339; default now).
        #[arg(long)]
        start: Option<String>,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
        /// The request's name [default: a new UUID].
        #[arg(long)]
        name: Option<String>,
    },
}

/// `ajar app role ...`.
#[derive(Debug, Subcommand)]
pub enum EligibleCmd {
    /// Make a principal or group eligible for a role.
    Add {
        /// The application's resource id.
        app: String,
        /// An id for the eligibility.
        #[arg(long)]
        id: String,
        /// A principal or group:NAME.
        #[arg(long)]
        principal: String,
        /// The role.
        #[arg(long)]
        role: String,
    },
    /// List an application's eligibilities.
    List {
        /// The application's resource id.
        app: String,
    },
    /// Remove an eligibility.
    Rm {
        /// The application's resource id.
        app: String,
        /// Its id.
        id: String,
    },
}

/// `ajar app roledef ...`.
#[derive(Debug, Subcommand)]
pub enum AppRoleCmd {
    /// Create or replace one of the application's roles.
    Put {
        /// The application's resource id.
        app: String,
        /// The role's name, e.g. Contributor.
        role: String,
        /// A pattern over the application's actions, e.g. crm.orders/* (repeatable).
        #[arg(long = "action", required = true)]
        actions: Vec<String>,
        /// What the role is for.
        #[arg(long)]
        description: Option<String>,
    },
    /// List the application's roles.
    List {
        /// The application's resource id.
        app: String,
    },
    /// Show one role and the actions it allows.
    Show {
        /// The application's resource id.
        app: String,
        /// The role's name.
        role: String,
    },
    /// Remove a role (not while an eligibility or a request under way uses it).
    #[command(alias = "rm")]
    Delete {
        /// The application's resource id.
        app: String,
        /// The role's name.
        role: String,
    },
}

/// An application's JIT policy, when it has one.
fn app_policy(a: &Application) -> Option<&JitAccessPolicy> {
    a.properties.jit_access_policy.as_ref()
}

/// An application's activation figures (in reads only).
fn app_figures(a: &Application) -> Option<&RequestFigures> {
    a.request_figures.as_ref()
}

const APP_FIELDS: &[Column<Application>] = &[
    ("id", |a| render::text(&a.id)),
    ("publishers", |a| {
        render::list(&a.properties.publisher_principals)
    }),
    ("jit", |a| {
        render::optional(&app_policy(a).and_then(|p| p.jit_access_enabled))
    }),
    ("approval", |a| {
        render::optional(&app_policy(a).and_then(|p| p.jit_approval_mode.as_ref()))
    }),
    ("approvers", |a| {
        app_policy(a).map_or_else(|| "-".to_owned(), |p| render::objects(&p.jit_approvers))
    }),
    ("threshold", |a| {
        render::optional(&app_policy(a).and_then(|p| p.jit_approval_threshold))
    }),
    ("max", |a| {
        render::optional(&app_policy(a).and_then(|p| p.maximum_jit_access_duration))
    }),
    ("approved (7 days)", |a| {
        render::optional(&app_figures(a).map(|f| f.approved_requests_last7_days))
    }),
    ("last access", |a| {
        render::optional(&app_figures(a).and_then(|f| f.last_access_at.as_ref()))
    }),
    ("last user", |a| {
        render::optional(&app_figures(a).and_then(|f| f.last_user.as_ref()))
    }),
];

const APP_COLUMNS: &[Column<Application>] = &[
    ("NAME", |a| render::text(&a.name)),
    ("JIT", |a| {
        render::optional(&app_policy(a).and_then(|p| p.jit_access_enabled))
    }),
    ("APPROVAL", |a| {
        render::optional(&app_policy(a).and_then(|p| p.jit_approval_mode.as_ref()))
    }),
    ("MAX", |a| {
        render::optional(&app_policy(a).and_then(|p| p.maximum_jit_access_duration))
    }),
    ("APPROVED 7D", |a| {
        render::optional(&app_figures(a).map(|f| f.approved_requests_last7_days))
    }),
    ("LAST USER", |a| {
        render::optional(&app_figures(a).and_then(|f| f.last_user.as_ref()))
    }),
];

const REQUEST_FIELDS: &[Column<JitRequest>] = &[
    ("id", |r| render::text(&r.id)),
    ("kind", |r| render::text(&r.properties.request_kind)),
    ("state", |r| render::text(&r.properties.jit_request_state)),
    ("requester", |r| render::text(&r.properties.requestor)),
    ("for", |r| {
        render::optional(&r.properties.application_resource_id)
    }),
    ("policy", |r| {
        render::optional(&r.properties.network_access_policy_id)
    }),
    ("from", |r| {
        render::optional(&r.properties.jit_scheduling_policy.start_time)
    }),
    ("duration", |r| {
        render::text(&r.properties.jit_scheduling_policy.duration)
    }),
    ("reason", |r| render::optional(&r.properties.justification)),
    ("failure", |r| render::optional(&r.properties.failure)),
];

const INBOX_COLUMNS: &[Column<JitRequest>] = &[
    ("ID", |r| render::text(&r.id)),
    ("KIND", |r| render::text(&r.properties.request_kind)),
    ("REQUESTER", |r| render::text(&r.properties.requestor)),
    ("FOR", |r| {
        render::optional(&r.properties.application_resource_id)
    }),
    ("POLICY", |r| {
        render::optional(&r.properties.network_access_policy_id)
    }),
    ("DURATION", |r| {
        render::text(&r.properties.jit_scheduling_policy.duration)
    }),
    ("REASON", |r| render::optional(&r.properties.justification)),
];

const HISTORY_COLUMNS: &[Column<HistoryEntry>] = &[
    ("ID", |h| render::text(&h.id)),
    ("KIND", |h| render::text(&h.kind)),
    ("STATE", |h| render::text(&h.state_words())),
    ("REQUESTER", |h| render::text(&h.requestor)),
    ("FOR", |h| render::text(&h.target)),
    ("ASKED", |h| render::text(&h.created_at)),
    ("UNTIL", |h| render::optional(&h.active_until)),
];

const ELIGIBLE_COLUMNS: &[Column<EligibleRole>] = &[
    ("ID", |e| render::text(&e.id)),
    ("PRINCIPAL", |e| render::text(&e.principal)),
    ("ROLE", |e| render::text(&e.role_definition)),
    ("SINCE", |e| render::text(&e.created_at)),
];

const ACTIONS_FIELDS: &[Column<ApplicationActions>] = &[
    ("application", |a| render::text(&a.application_id)),
    ("namespace", |a| {
        render::optional(&Some(&a.namespace).filter(|n| !n.is_empty()))
    }),
    ("actions", |a| render::list(&a.actions)),
];

const APP_ROLE_COLUMNS: &[Column<ApplicationRole>] = &[
    ("NAME", |r| render::text(&r.name)),
    ("PATTERNS", |r| render::list(&r.actions)),
    ("ALLOWS", |r| render::list(&r.allowed_actions)),
    ("DESCRIPTION", |r| render::text(&r.description)),
];

const APP_ROLE_FIELDS: &[Column<ApplicationRole>] = &[
    ("id", |r| render::text(&r.id)),
    ("name", |r| render::text(&r.name)),
    ("patterns", |r| render::list(&r.actions)),
    ("allows", |r| render::list(&r.allowed_actions)),
    ("description", |r| render::text(&r.description)),
];

const MINE_COLUMNS: &[Column<EligibleRole>] = &[
    ("APPLICATION", |e| render::text(&e.application_id)),
    ("ROLE", |e| render::text(&e.role_definition)),
    ("AS", |e| render::text(&e.principal)),
    ("ID", |e| render::text(&e.id)),
    ("SINCE", |e| render::text(&e.created_at)),
];

/// A role name as given on the command line (`ROLE`), checked before it goes into a path.
fn role_name(s: &str) -> CliResult<String> {
    parse_role_name(s).map_err(|e| refused("ROLE", e))
}

/// A value for a URL's query, percent-encoded.
fn query_value(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The calling principal.
async fn me(ctx: &Ctx) -> CliResult<Principal> {
    let me: Me = ctx.get("/api/v1/me").await?;
    Principal::parse(&me.principal.to_string())
        .map_err(|e| CliError::from(ClientError::Decode(e.message)))
}

/// Runs `ajar app ...`.
pub async fn app(ctx: &Ctx, cmd: AppCmd) -> CliResult {
    match cmd {
        AppCmd::Set {
            id,
            publishers,
            no_jit,
            approval,
            approvers,
            threshold,
            max,
        } => {
            let id = parse::id(&id)?;
            let jit_approvers = approvers
                .iter()
                .map(|a| approver(a))
                .collect::<CliResult<Vec<_>>>()?;
            let max = max.map(|m| parse::duration(&m)).transpose()?;
            let maximum_jit_access_duration = max
                .map(|m| AccessDuration::parse(&m).map_err(|e| refused("--max", e)))
                .transpose()?;
            let publisher_principals = publishers
                .iter()
                .map(|p| principal("--publisher", p))
                .collect::<CliResult<_>>()?;
            let body = ApplicationBody {
                properties: ApplicationProperties {
                    publisher_principals,
                    jit_access_policy: Some(JitAccessPolicy {
                        jit_access_enabled: Some(!no_jit),
                        jit_approval_mode: approval.map(|a| {
                            match a {
                                Approval::Auto => "AutoApprove",
                                Approval::Manual => "ManualApprove",
                            }
                            .to_owned()
                        }),
                        jit_approvers,
                        maximum_jit_access_duration,
                        jit_approval_threshold: threshold,
                    }),
                },
            };
            let a = ctx.put::<Application, _>(&id, &body).await?;
            ctx.done(&a, &format!("application {id} saved"));
        }
        AppCmd::Show { id } => {
            let a = ctx.fetch::<Application>(&parse::id(&id)?).await?;
            ctx.show(&a, APP_FIELDS);
        }
        AppCmd::List { scope } => {
            let scope = parse::id(&scope)?;
            let list = ctx.fetch_pages(&format!("{scope}/applications")).await?;
            ctx.list(&list, APP_COLUMNS);
        }
        AppCmd::Rm { id } => {
            let id = parse::id(&id)?;
            ctx.delete(&id).await?;
            ctx.removed(&format!("application {id} removed"));
        }
        AppCmd::Role(cmd) => eligible(ctx, cmd).await?,
        AppCmd::Actions {
            app,
            namespace,
            actions,
        } => {
            let app = parse::id(&app)?;
            let path = format!("{app}/actions");
            match namespace {
                None => {
                    let a = ctx.fetch::<ApplicationActions>(&path).await?;
                    ctx.show(&a, ACTIONS_FIELDS);
                }
                Some(namespace) => {
                    let body = ApplicationActionsBody { namespace, actions };
                    let a = ctx.put::<ApplicationActions, _>(&path, &body).await?;
                    ctx.done(
                        &a,
                        &format!(
                            "{app} declares {} action(s) in {}",
                            a.body.actions.len(),
                            a.body.namespace
                        ),
                    );
                }
            }
        }
        AppCmd::Roledef(cmd) => app_role(ctx, cmd).await?,
        AppCmd::Mine { app } => {
            let path = match app {
                Some(app) => format!(
                    "/api/v1/me/eligibleRoles?applicationId={}",
                    query_value(&parse::id(&app)?)
                ),
                None => "/api/v1/me/eligibleRoles".to_owned(),
            };
            let list = ctx.fetch_pages(&path).await?;
            ctx.list(&list, MINE_COLUMNS);
        }
        AppCmd::Activate {
            app,
            roles,
            duration,
            start,
            reason,
            name,
        } => {
            let app = parse::id(&app)?;
            let group = parse::group_of(&app)?;
            let principal = me(ctx).await?;
            let duration = parse::duration(&duration)?;
            let start_time = start.map(|s| parse::timestamp(&s)).transpose()?;
            let duration =
                AccessDuration::parse(&duration).map_err(|e| refused("--duration", e))?;
            let body = JitRequestBody {
                location: None,
                tags: None,
                properties: JitRequestProperties {
                    application_resource_id: ResourceId::parse(&app)
                        .map_err(|e| refused("application", e))?,
                    jit_authorization_policies: roles
                        .iter()
                        .map(|r| JitAuthorizationPolicy {
                            principal_id: principal.clone(),
                            role_definition_id: r.clone(),
                        })
                        .collect(),
                    jit_scheduling_policy: JitSchedulingPolicy {
                        kind: "Once".to_owned(),
                        start_time,
                        duration,
                    },
                    justification: reason,
                },
            };
            let name = name.unwrap_or_else(new_name);
            let r = ctx
                .put::<JitRequest, _>(&format!("{group}/jitRequests/{name}"), &body)
                .await?;
            ctx.done(
                &r,
                &format!(
                    "request {} is {}",
                    r.body.id, r.body.properties.jit_request_state
                ),
            );
        }
    }
    Ok(())
}

/// A fresh request name.
fn new_name() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Runs `ajar app roledef ...`.
async fn app_role(ctx: &Ctx, cmd: AppRoleCmd) -> CliResult {
    match cmd {
        AppRoleCmd::Put {
            app,
            role,
            actions,
            description,
        } => {
            let app = parse::id(&app)?;
            let role = role_name(&role)?;
            let body = ApplicationRoleBody {
                actions,
                description,
            };
            let r = ctx
                .put::<ApplicationRole, _>(&format!("{app}/roleDefinitions/{role}"), &body)
                .await?;
            ctx.done(
                &r,
                &format!(
                    "role {role} of {app} saved; it allows {}",
                    render::list(&r.body.allowed_actions)
                ),
            );
        }
        AppRoleCmd::List { app } => {
            let app = parse::id(&app)?;
            let list = ctx.fetch_pages(&format!("{app}/roleDefinitions")).await?;
            ctx.list(&list, APP_ROLE_COLUMNS);
        }
        AppRoleCmd::Show { app, role } => {
            let app = parse::id(&app)?;
            let role = role_name(&role)?;
            let r = ctx
                .fetch::<ApplicationRole>(&format!("{app}/roleDefinitions/{role}"))
                .await?;
            ctx.show(&r, APP_ROLE_FIELDS);
        }
        AppRoleCmd::Delete { app, role } => {
            let app = parse::id(&app)?;
            let role = role_name(&role)?;
            ctx.delete(&format!("{app}/roleDefinitions/{role}")).await?;
            ctx.removed(&format!("role {role} of {app} removed"));
        }
    }
    Ok(())
}

async fn eligible(ctx: &Ctx, cmd: EligibleCmd) -> CliResult {
    match cmd {
        EligibleCmd::Add {
            app,
            id,
            principal,
            role,
        } => {
            let app = parse::id(&app)?;
            let body = EligibleRoleBody {
                principal: self::principal("--principal", &principal)?,
                role_definition: role.clone(),
            };
            let e = ctx
                .put::<EligibleRole, _>(&format!("{app}/eligibleRoles/{id}"), &body)
                .await?;
            ctx.done(&e, &format!("{principal} may activate {role} on {app}"));
        }
        EligibleCmd::List { app } => {
            let app = parse::id(&app)?;
            let list = ctx.fetch_pages(&format!("{app}/eligibleRoles")).await?;
            ctx.list(&list, ELIGIBLE_COLUMNS);
        }
        EligibleCmd::Rm { app, id } => {
            let app = parse::id(&app)?;
            ctx.delete(&format!("{app}/eligibleRoles/{id}")).await?;
            ctx.removed(&format!("eligibility {id} removed"));
        }
    }
    Ok(())
}

/// `ajar request ...`.
#[derive(Debug, Subcommand)]
pub enum RequestCmd {
    /// Requests of both kinds, newest first (your own, or all you may read).
    List {
        /// Only this requester's.
        #[arg(long)]
        requester: Option<String>,
        /// Only `role` or `network` requests.
        #[arg(long)]
        kind: Option<String>,
        /// Only in this state.
        #[arg(long)]
        state: Option<String>,
        /// Made at or after (RFC 3339).
        #[arg(long)]
        from: Option<String>,
        /// Made before (RFC 3339).
        #[arg(long)]
        to: Option<String>,
    },
    /// Show a request.
    Show {
        /// Its resource id (…/jitRequests/NAME, as the API hands it out) or its NAME.
        id: String,
    },
    /// Withdraw your pending request.
    Cancel {
        /// Its resource id (…/jitRequests/NAME) or its NAME.
        id: String,
    },
    /// End an approved or active request now.
    Revoke {
        /// Its resource id (…/jitRequests/NAME) or its NAME.
        id: String,
    },
}

/// How many pages of the inbox and of history a short request name is looked for in.
const NAME_SEARCH_PAGES: usize = 20;

/// Where a short request name is looked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NameLookup {
    /// Only among the requests waiting for the caller's decision (approve, deny).
    Inbox,
    /// Among those, then in the history the caller may read.
    InboxThenHistory,
}

/// A `jitRequests` resource id as given: the full id the API hands out (an
/// `approvalRequestId` or an inbox entry's `id`: `/subscriptions/S/resourceGroups/RG/jitRequests/NAME`,
/// with or without `/api/v1` before it), or its NAME alone, looked for among the requests
/// waiting for the caller, then (when `lookup` allows) in the caller's history. Names are
/// unique only within a resource group, so a NAME that matches more than one request is refused
/// with the full ids to choose from: a request someone else named alike is never acted on.
pub(crate) async fn jit_request_id(
    ctx: &Ctx,
    given: &str,
    lookup: NameLookup,
) -> CliResult<String> {
    let given = given.trim();
    if given.starts_with('/') {
        let id = parse::id(given)?;
        if !id.contains("/jitRequests/") {
            return Err(usage(format!(
                "{given:?} is not a request id; give …/resourceGroups/RG/jitRequests/NAME or the NAME alone"
            )));
        }
        return Ok(id);
    }
    if given.is_empty() || given.contains(char::is_whitespace) {
        return Err(usage(format!(
            "{given:?} is not a request id; give …/resourceGroups/RG/jitRequests/NAME or the NAME alone"
        )));
    }
    let named = |id: &str| id.contains("/jitRequests/") && parse::name_of(id) == given;
    let mut ids: Vec<String> = ctx
        .find_all::<JitRequest>("/api/v1/inbox", NAME_SEARCH_PAGES, |r| named(&r.id))
        .await?
        .into_iter()
        .map(|r| r.id)
        .collect();
    if ids.is_empty() && lookup == NameLookup::InboxThenHistory {
        ids = ctx
            .find_all::<HistoryEntry>("/api/v1/history", NAME_SEARCH_PAGES, |h| named(&h.id))
            .await?
            .into_iter()
            .map(|h| h.id)
            .collect();
    }
    ids.sort();
    ids.dedup();
    match ids.len() {
        1 => Ok(ids.remove(0)),
        0 if lookup == NameLookup::Inbox => Err(CliError::Failed(format!(
            "no request named {given:?} waits for your decision; give its full id (…/resourceGroups/RG/jitRequests/{given})"
        ))),
        0 => Err(CliError::Failed(format!(
            "no request named {given:?} waits for you or is in the history you may read; give its full id (…/resourceGroups/RG/jitRequests/{given})"
        ))),
        _ => Err(CliError::Failed(format!(
            "{} requests are named {given:?}; give the full id of the one you mean: {}",
            ids.len(),
            ids.join(", ")
        ))),
    }
}

/// Runs `ajar request ...`.
pub async fn request(ctx: &Ctx, cmd: RequestCmd) -> CliResult {
    match cmd {
        RequestCmd::List {
            requester,
            kind,
            state,
            from,
            to,
        } => {
            let mut q = Vec::new();
            for (k, v) in [("requester", requester), ("kind", kind), ("state", state)] {
                if let Some(v) = v {
                    q.push(format!("{k}={v}"));
                }
            }
            for (k, v) in [("from", from), ("to", to)] {
                if let Some(v) = v {
                    q.push(format!("{k}={}", parse::instant(&v)?));
                }
            }
            let path = if q.is_empty() {
                "/api/v1/history".to_owned()
            } else {
                format!("/api/v1/history?{}", q.join("&"))
            };
            let list: Answer<List<HistoryEntry>> = ctx.fetch(&path).await?;
            ctx.list(&list, HISTORY_COLUMNS);
        }
        RequestCmd::Show { id } => {
            let r = ctx
                .fetch::<JitRequest>(&jit_request_id(ctx, &id, NameLookup::InboxThenHistory).await?)
                .await?;
            ctx.show(&r, REQUEST_FIELDS);
        }
        RequestCmd::Cancel { id } => {
            let id = jit_request_id(ctx, &id, NameLookup::InboxThenHistory).await?;
            let r = ctx
                .post::<JitRequest, _>(&format!("{id}/cancel"), &NoParameters {})
                .await?;
            ctx.done(&r, &format!("request {id} canceled"));
        }
        RequestCmd::Revoke { id } => {
            let id = jit_request_id(ctx, &id, NameLookup::InboxThenHistory).await?;
            let r = ctx
                .post::<JitRequest, _>(&format!("{id}/revoke"), &NoParameters {})
                .await?;
            ctx.done(&r, &format!("request {id} revoked"));
        }
    }
    Ok(())
}

/// `ajar approve|deny ID --reason TEXT`.
#[derive(Debug, Clone, Args)]
pub struct DecideArgs {
    /// The request's resource id (…/jitRequests/NAME), as the inbox lists it and an
    /// initiate's `approvalRequestId` names it, or its NAME alone.
    pub id: String,
    /// Why (required).
    #[arg(long)]
    pub reason: String,
}

/// Runs `ajar approve` (`approve`) or `ajar deny`.
pub async fn decide(ctx: &Ctx, args: DecideArgs, approve: bool) -> CliResult {
    let id = jit_request_id(ctx, &args.id, NameLookup::Inbox).await?;
    let verb = if approve { "approve" } else { "deny" };
    let body = DecisionBody {
        reason: args.reason,
    };
    let r = ctx
        .post::<JitRequest, _>(&format!("{id}/{verb}"), &body)
        .await?;
    ctx.done(
        &r,
        &format!("request {id} is {}", r.body.properties.jit_request_state),
    );
    Ok(())
}

/// Runs `ajar inbox`.
pub async fn inbox(ctx: &Ctx) -> CliResult {
    let list = ctx.fetch_pages("/api/v1/inbox").await?;
    ctx.list(&list, INBOX_COLUMNS);
    Ok(())
}

/// `ajar role ...` (role definitions).
#[derive(Debug, Subcommand)]
pub enum RoleCmd {
    /// Built-in and custom roles.
    List,
    /// One role's actions.
    Show {
        /// Its name.
        name: String,
    },
    /// Create or replace a custom role.
    Set {
        /// Its name.
        name: String,
        /// Action pattern (repeatable), e.g. ajar.machines/read or ajar.jit/*.
        #[arg(long = "action", required = true)]
        actions: Vec<String>,
        /// What it is for.
        #[arg(long)]
        description: Option<String>,
    },
    /// Remove a custom role (not while assigned).
    Rm {
        /// Its name.
        name: String,
    },
}

const ROLE_COLUMNS: &[Column<RoleDefinition>] = &[
    ("NAME", |r| render::text(&r.name)),
    ("BUILT-IN", |r| render::text(&r.built_in)),
    ("ACTIONS", |r| render::list(&r.actions)),
    ("DESCRIPTION", |r| render::text(&r.description)),
];

const ROLE_FIELDS: &[Column<RoleDefinition>] = &[
    ("name", |r| render::text(&r.name)),
    ("built-in", |r| render::text(&r.built_in)),
    ("actions", |r| render::list(&r.actions)),
    ("description", |r| render::text(&r.description)),
];

/// Runs `ajar role ...`.
pub async fn role(ctx: &Ctx, cmd: RoleCmd) -> CliResult {
    match cmd {
        RoleCmd::List => {
            let list = ctx.fetch_pages("/api/v1/roleDefinitions").await?;
            ctx.list(&list, ROLE_COLUMNS);
        }
        RoleCmd::Show { name } => {
            let r = ctx
                .fetch::<RoleDefinition>(&format!("/api/v1/roleDefinitions/{name}"))
                .await?;
            ctx.show(&r, ROLE_FIELDS);
        }
        RoleCmd::Set {
            name,
            actions,
            description,
        } => {
            let actions = actions
                .iter()
                .map(|a| ActionPattern::parse(a).map_err(|e| refused("--action", e)))
                .collect::<CliResult<_>>()?;
            let body = RoleDefinitionBody {
                actions,
                description,
            };
            let r = ctx
                .put::<RoleDefinition, _>(&format!("/api/v1/roleDefinitions/{name}"), &body)
                .await?;
            ctx.done(&r, &format!("role {name} saved"));
        }
        RoleCmd::Rm { name } => {
            ctx.delete(&format!("/api/v1/roleDefinitions/{name}"))
                .await?;
            ctx.removed(&format!("role {name} removed"));
        }
    }
    Ok(())
}

/// `ajar assignment ...`.
#[derive(Debug, Subcommand)]
pub enum AssignmentCmd {
    /// Role assignments at or beneath a scope, optionally of one principal.
    List {
        /// Scope [default: /].
        #[arg(long)]
        scope: Option<String>,
        /// Only this principal's.
        #[arg(long)]
        principal: Option<String>,
    },
    /// One assignment.
    Show {
        /// Its id.
        id: String,
    },
    /// Create or replace an assignment: a role for a principal at a scope.
    Set {
        /// Its id.
        id: String,
        /// A principal or group:NAME.
        #[arg(long)]
        principal: String,
        /// The role.
        #[arg(long)]
        role: String,
        /// Where it applies (and beneath).
        #[arg(long)]
        scope: String,
    },
    /// Remove an assignment.
    Rm {
        /// Its id.
        id: String,
    },
}

const ASSIGNMENT_COLUMNS: &[Column<RoleAssignment>] = &[
    ("ID", |a| render::text(&a.id)),
    ("PRINCIPAL", |a| render::text(&a.principal)),
    ("ROLE", |a| render::text(&a.role_definition)),
    ("SCOPE", |a| render::text(&a.scope)),
    ("CREATED", |a| render::text(&a.created_at)),
];

const ASSIGNMENT_FIELDS: &[Column<RoleAssignment>] = &[
    ("id", |a| render::text(&a.id)),
    ("principal", |a| render::text(&a.principal)),
    ("role", |a| render::text(&a.role_definition)),
    ("scope", |a| render::text(&a.scope)),
    ("created", |a| render::text(&a.created_at)),
];

/// Runs `ajar assignment ...`.
pub async fn assignment(ctx: &Ctx, cmd: AssignmentCmd) -> CliResult {
    match cmd {
        AssignmentCmd::List { scope, principal } => {
            let mut q = vec![format!("scope={}", scope.unwrap_or_else(|| "/".into()))];
            if let Some(p) = principal {
                q.push(format!("principal={p}"));
            }
            let list = ctx
                .fetch_pages(&format!("/api/v1/roleAssignments?{}", q.join("&")))
                .await?;
            ctx.list(&list, ASSIGNMENT_COLUMNS);
        }
        AssignmentCmd::Show { id } => {
            let a = ctx
                .fetch::<RoleAssignment>(&format!("/api/v1/roleAssignments/{id}"))
                .await?;
            ctx.show(&a, ASSIGNMENT_FIELDS);
        }
        AssignmentCmd::Set {
            id,
            principal,
            role,
            scope,
        } => {
            let body = RoleAssignmentBody {
                principal: self::principal("--principal", &principal)?,
                role_definition: role.clone(),
                scope: Scope::parse(&scope).map_err(|e| refused("--scope", e))?,
            };
            let a = ctx
                .put::<RoleAssignment, _>(&format!("/api/v1/roleAssignments/{id}"), &body)
                .await?;
            ctx.done(&a, &format!("{principal} holds {role} at {scope}"));
        }
        AssignmentCmd::Rm { id } => {
            ctx.delete(&format!("/api/v1/roleAssignments/{id}")).await?;
            ctx.removed(&format!("assignment {id} removed"));
        }
    }
    Ok(())
}

/// `ajar group ...`.
#[derive(Debug, Subcommand)]
pub enum GroupCmd {
    /// Local groups.
    List,
    /// A group's members.
    Show {
        /// Its name.
        name: String,
    },
    /// Create a group or replace its members.
    Set {
        /// Its name.
        name: String,
        /// Member principal (repeatable).
        #[arg(long = "member", required = true)]
        members: Vec<String>,
    },
    /// Remove a group.
    Rm {
        /// Its name.
        name: String,
    },
}

/// Runs `ajar group ...`.
pub async fn group(ctx: &Ctx, cmd: GroupCmd) -> CliResult {
    match cmd {
        GroupCmd::List => {
            let list = ctx.fetch_pages::<Group>("/api/v1/groups").await?;
            ctx.list(
                &list,
                &[
                    ("NAME", |g| render::text(&g.name)),
                    ("MEMBERS", |g| render::list(&g.members)),
                ],
            );
        }
        GroupCmd::Show { name } => {
            let g = ctx
                .fetch::<Group>(&format!("/api/v1/groups/{name}"))
                .await?;
            ctx.show(
                &g,
                &[
                    ("name", |g| render::text(&g.name)),
                    ("members", |g| render::list(&g.members)),
                ],
            );
        }
        GroupCmd::Set { name, members } => {
            let members = members
                .iter()
                .map(|m| principal("--member", m))
                .collect::<CliResult<_>>()?;
            let g = ctx
                .put::<Group, _>(&format!("/api/v1/groups/{name}"), &GroupBody { members })
                .await?;
            ctx.done(&g, &format!("group {name} saved"));
        }
        GroupCmd::Rm { name } => {
            ctx.delete(&format!("/api/v1/groups/{name}")).await?;
            ctx.removed(&format!("group {name} removed"));
        }
    }
    Ok(())
}
