//! Applications and role activation, the approval engine's requests and decisions, and access
//! control (roles, assignments, groups).

use crate::parse;
use crate::render::Column;
use crate::{CliResult, Ctx, usage};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};

/// How an application's activations are decided.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Approval {
    /// Approved at once.
    Auto,
    /// Approvers decide.
    Manual,
}

/// An approver as `user:NAME`, `group:NAME` or just `NAME` (a user).
fn approver(s: &str) -> CliResult<Value> {
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
    Ok(json!({"id": id, "type": kind}))
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

const APP_FIELDS: &[Column] = &[
    ("id", "/id"),
    ("publishers", "/properties/publisherPrincipals"),
    ("jit", "/properties/jitAccessPolicy/jitAccessEnabled"),
    ("approval", "/properties/jitAccessPolicy/jitApprovalMode"),
    ("approvers", "/properties/jitAccessPolicy/jitApprovers"),
    (
        "threshold",
        "/properties/jitAccessPolicy/jitApprovalThreshold",
    ),
    (
        "max",
        "/properties/jitAccessPolicy/maximumJitAccessDuration",
    ),
    (
        "approved (7 days)",
        "/requestFigures/approvedRequestsLast7Days",
    ),
    ("last access", "/requestFigures/lastAccessAt"),
    ("last user", "/requestFigures/lastUser"),
];

const REQUEST_FIELDS: &[Column] = &[
    ("id", "/id"),
    ("kind", "/properties/requestKind"),
    ("state", "/properties/jitRequestState"),
    ("requester", "/properties/requestor"),
    ("for", "/properties/applicationResourceId"),
    ("policy", "/properties/networkAccessPolicyId"),
    ("from", "/properties/jitSchedulingPolicy/startTime"),
    ("duration", "/properties/jitSchedulingPolicy/duration"),
    ("reason", "/properties/justification"),
    ("failure", "/properties/failure"),
];

/// The calling principal.
async fn me(ctx: &Ctx) -> CliResult<String> {
    let me = ctx.get("/api/v1/me").await?;
    Ok(me["principal"].as_str().unwrap_or_default().to_owned())
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
            let mut policy = json!({"jitAccessEnabled": !no_jit});
            if let Some(a) = approval {
                policy["jitApprovalMode"] = json!(match a {
                    Approval::Auto => "AutoApprove",
                    Approval::Manual => "ManualApprove",
                });
            }
            if !approvers.is_empty() {
                policy["jitApprovers"] = json!(
                    approvers
                        .iter()
                        .map(|a| approver(a))
                        .collect::<CliResult<Vec<_>>>()?
                );
            }
            if let Some(t) = threshold {
                policy["jitApprovalThreshold"] = json!(t);
            }
            if let Some(m) = max {
                policy["maximumJitAccessDuration"] = json!(parse::duration(&m)?);
            }
            let body =
                json!({"properties":{"publisherPrincipals":publishers,"jitAccessPolicy":policy}});
            let a = ctx.put(&id, &body).await?;
            ctx.done(&a, &format!("application {id} saved"));
        }
        AppCmd::Show { id } => {
            let a = ctx.get(&parse::id(&id)?).await?;
            ctx.show(&a, APP_FIELDS);
        }
        AppCmd::List { scope } => {
            let scope = parse::id(&scope)?;
            let list = ctx.get_pages(&format!("{scope}/applications")).await?;
            ctx.list(
                &list,
                &[
                    ("NAME", "/name"),
                    ("JIT", "/properties/jitAccessPolicy/jitAccessEnabled"),
                    ("APPROVAL", "/properties/jitAccessPolicy/jitApprovalMode"),
                    (
                        "MAX",
                        "/properties/jitAccessPolicy/maximumJitAccessDuration",
                    ),
                    ("APPROVED 7D", "/requestFigures/approvedRequestsLast7Days"),
                    ("LAST USER", "/requestFigures/lastUser"),
                ],
            );
        }
        AppCmd::Rm { id } => {
            let id = parse::id(&id)?;
            ctx.delete(&id).await?;
            ctx.done(&json!({}), &format!("application {id} removed"));
        }
        AppCmd::Role(cmd) => eligible(ctx, cmd).await?,
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
            let mut scheduling = json!({"type":"Once","duration": parse::duration(&duration)?});
            if let Some(s) = start {
                scheduling["startTime"] = json!(parse::instant(&s)?);
            }
            let mut body = json!({"properties":{
                "applicationResourceId": app,
                "jitAuthorizationPolicies": roles.iter().map(|r| json!({"principalId": principal, "roleDefinitionId": r})).collect::<Vec<_>>(),
                "jitSchedulingPolicy": scheduling}});
            if let Some(r) = reason {
                body["properties"]["justification"] = json!(r);
            }
            let name = name.unwrap_or_else(new_name);
            let r = ctx
                .put(&format!("{group}/jitRequests/{name}"), &body)
                .await?;
            ctx.done(
                &r,
                &format!(
                    "request {} is {}",
                    r["id"].as_str().unwrap_or("?"),
                    r["properties"]["jitRequestState"].as_str().unwrap_or("?")
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

async fn eligible(ctx: &Ctx, cmd: EligibleCmd) -> CliResult {
    match cmd {
        EligibleCmd::Add {
            app,
            id,
            principal,
            role,
        } => {
            let app = parse::id(&app)?;
            let e = ctx
                .put(
                    &format!("{app}/eligibleRoles/{id}"),
                    &json!({"principal": principal, "roleDefinition": role}),
                )
                .await?;
            ctx.done(&e, &format!("{principal} may activate {role} on {app}"));
        }
        EligibleCmd::List { app } => {
            let app = parse::id(&app)?;
            let list = ctx.get_pages(&format!("{app}/eligibleRoles")).await?;
            ctx.list(
                &list,
                &[
                    ("ID", "/id"),
                    ("PRINCIPAL", "/principal"),
                    ("ROLE", "/roleDefinition"),
                    ("SINCE", "/createdAt"),
                ],
            );
        }
        EligibleCmd::Rm { app, id } => {
            let app = parse::id(&app)?;
            ctx.delete(&format!("{app}/eligibleRoles/{id}")).await?;
            ctx.done(&json!({}), &format!("eligibility {id} removed"));
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
        /// Its resource id (…/jitRequests/NAME).
        id: String,
    },
    /// Withdraw your pending request.
    Cancel {
        /// Its resource id.
        id: String,
    },
    /// End an approved or active request now.
    Revoke {
        /// Its resource id.
        id: String,
    },
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
            let list = ctx.get(&path).await?;
            ctx.list(
                &list,
                &[
                    ("ID", "/id"),
                    ("KIND", "/kind"),
                    ("STATE", "/state"),
                    ("REQUESTER", "/requestor"),
                    ("FOR", "/target"),
                    ("ASKED", "/createdAt"),
                    ("UNTIL", "/activeUntil"),
                ],
            );
        }
        RequestCmd::Show { id } => {
            let r = ctx.get(&parse::id(&id)?).await?;
            ctx.show(&r, REQUEST_FIELDS);
        }
        RequestCmd::Cancel { id } => {
            let id = parse::id(&id)?;
            let r = ctx.post(&format!("{id}/cancel"), &json!({})).await?;
            ctx.done(&r, &format!("request {id} canceled"));
        }
        RequestCmd::Revoke { id } => {
            let id = parse::id(&id)?;
            let r = ctx.post(&format!("{id}/revoke"), &json!({})).await?;
            ctx.done(&r, &format!("request {id} revoked"));
        }
    }
    Ok(())
}

/// `ajar approve|deny ID --reason TEXT`.
#[derive(Debug, Clone, Args)]
pub struct DecideArgs {
    /// The request's resource id (…/jitRequests/NAME), as the inbox lists it.
    pub id: String,
    /// Why (required).
    #[arg(long)]
    pub reason: String,
}

/// Runs `ajar approve` (`approve`) or `ajar deny`.
pub async fn decide(ctx: &Ctx, args: DecideArgs, approve: bool) -> CliResult {
    let id = parse::id(&args.id)?;
    let verb = if approve { "approve" } else { "deny" };
    let r = ctx
        .post(&format!("{id}/{verb}"), &json!({"reason": args.reason}))
        .await?;
    ctx.done(
        &r,
        &format!(
            "request {id} is {}",
            r["properties"]["jitRequestState"].as_str().unwrap_or("?")
        ),
    );
    Ok(())
}

/// Runs `ajar inbox`.
pub async fn inbox(ctx: &Ctx) -> CliResult {
    let list = ctx.get_pages("/api/v1/inbox").await?;
    ctx.list(
        &list,
        &[
            ("ID", "/id"),
            ("KIND", "/properties/requestKind"),
            ("REQUESTER", "/properties/requestor"),
            ("FOR", "/properties/applicationResourceId"),
            ("POLICY", "/properties/networkAccessPolicyId"),
            ("DURATION", "/properties/jitSchedulingPolicy/duration"),
            ("REASON", "/properties/justification"),
        ],
    );
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

const ROLE_COLUMNS: &[Column] = &[
    ("NAME", "/name"),
    ("BUILT-IN", "/builtIn"),
    ("ACTIONS", "/actions"),
    ("DESCRIPTION", "/description"),
];

/// Runs `ajar role ...`.
pub async fn role(ctx: &Ctx, cmd: RoleCmd) -> CliResult {
    match cmd {
        RoleCmd::List => {
            let list = ctx.get_pages("/api/v1/roleDefinitions").await?;
            ctx.list(&list, ROLE_COLUMNS);
        }
        RoleCmd::Show { name } => {
            let r = ctx.get(&format!("/api/v1/roleDefinitions/{name}")).await?;
            ctx.show(
                &r,
                &[
                    ("name", "/name"),
                    ("built-in", "/builtIn"),
                    ("actions", "/actions"),
                    ("description", "/description"),
                ],
            );
        }
        RoleCmd::Set {
            name,
            actions,
            description,
        } => {
            let mut body = json!({"actions": actions});
            if let Some(d) = description {
                body["description"] = json!(d);
            }
            let r = ctx
                .put(&format!("/api/v1/roleDefinitions/{name}"), &body)
                .await?;
            ctx.done(&r, &format!("role {name} saved"));
        }
        RoleCmd::Rm { name } => {
            ctx.delete(&format!("/api/v1/roleDefinitions/{name}"))
                .await?;
            ctx.done(&json!({}), &format!("role {name} removed"));
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

const ASSIGNMENT_COLUMNS: &[Column] = &[
    ("ID", "/id"),
    ("PRINCIPAL", "/principal"),
    ("ROLE", "/roleDefinition"),
    ("SCOPE", "/scope"),
    ("CREATED", "/createdAt"),
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
                .get_pages(&format!("/api/v1/roleAssignments?{}", q.join("&")))
                .await?;
            ctx.list(&list, ASSIGNMENT_COLUMNS);
        }
        AssignmentCmd::Show { id } => {
            let a = ctx.get(&format!("/api/v1/roleAssignments/{id}")).await?;
            ctx.show(
                &a,
                &[
                    ("id", "/id"),
                    ("principal", "/principal"),
                    ("role", "/roleDefinition"),
                    ("scope", "/scope"),
                    ("created", "/createdAt"),
                ],
            );
        }
        AssignmentCmd::Set {
            id,
            principal,
            role,
            scope,
        } => {
            let a = ctx
                .put(
                    &format!("/api/v1/roleAssignments/{id}"),
                    &json!({"principal": principal, "roleDefinition": role, "scope": scope}),
                )
                .await?;
            ctx.done(&a, &format!("{principal} holds {role} at {scope}"));
        }
        AssignmentCmd::Rm { id } => {
            ctx.delete(&format!("/api/v1/roleAssignments/{id}")).await?;
            ctx.done(&json!({}), &format!("assignment {id} removed"));
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
            let list = ctx.get_pages("/api/v1/groups").await?;
            ctx.list(&list, &[("NAME", "/name"), ("MEMBERS", "/members")]);
        }
        GroupCmd::Show { name } => {
            let g = ctx.get(&format!("/api/v1/groups/{name}")).await?;
            ctx.show(&g, &[("name", "/name"), ("members", "/members")]);
        }
        GroupCmd::Set { name, members } => {
            let g = ctx
                .put(
                    &format!("/api/v1/groups/{name}"),
                    &json!({"members": members}),
                )
                .await?;
            ctx.done(&g, &format!("group {name} saved"));
        }
        GroupCmd::Rm { name } => {
            ctx.delete(&format!("/api/v1/groups/{name}")).await?;
            ctx.done(&json!({}), &format!("group {name} removed"));
        }
    }
    Ok(())
}
