//! `ajar apply -f FILE`: declarative machines, policies, applications (with their actions, roles
//! and eligible roles) and role assignments, in YAML or JSON. Each object is read from the server
//! and written only when the file says something the server does not (so a second run changes
//! nothing); `--dry-run` prints the same plan and writes nothing. Objects missing from the file
//! are left alone (nothing is deleted). An application's actions and roles are applied right
//! after it and before its eligible roles, which may name those roles.
//!
//! ```yaml
//! machines:
//!   - id: /subscriptions/s1/resourceGroups/rg1/machines/vm1
//!     properties: {os: linux, addresses: [10.1.0.4]}
//! policies:
//!   - id: /subscriptions/s1/resourceGroups/rg1/jitNetworkAccessPolicies/default
//!     properties:
//!       virtualMachines:
//!         - id: /subscriptions/s1/resourceGroups/rg1/machines/vm1
//!           ports: [{number: 22, protocol: "*", allowedSourceAddressPrefix: "*", maxRequestAccessDuration: PT3H}]
//! applications:
//!   - id: /subscriptions/s1/resourceGroups/rg1/applications/crm
//!     properties: {jitAccessPolicy: {jitApprovalMode: ManualApprove, jitApprovers: [{id: bob, type: user}]}}
//!     actions: {namespace: crm, actions: [crm.orders/read, crm.orders/write]}
//!     roleDefinitions:
//!       - {name: Contributor, actions: [crm.orders/*], description: Works on orders}
//!     eligibleRoles:
//!       - {id: alice, principal: alice, roleDefinition: Contributor}
//! roleAssignments:
//!   - {id: alice-requester, principal: alice, roleDefinition: JitRequester, scope: /subscriptions/s1}
//! ```

use crate::network::read_document;
use crate::{CliError, CliResult, Ctx, Output, render, usage};
use ajar_api::ClientError;
use ajar_core::rbac::parse_role_name;
use clap::Args;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Flags of `ajar apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The file (YAML or JSON; `-` for standard input).
    #[arg(long, short = 'f')]
    pub file: String,
    /// Print what would change, change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// The file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Desired {
    /// Machines.
    #[serde(default)]
    pub machines: Vec<Object>,
    /// Network JIT policies.
    #[serde(default)]
    pub policies: Vec<Object>,
    /// Applications.
    #[serde(default)]
    pub applications: Vec<Application>,
    /// Role assignments.
    #[serde(default)]
    pub role_assignments: Vec<Assignment>,
}

impl Desired {
    /// The file's content from its parsed document; `file` names it in errors. Names that go
    /// into a path are checked here, so a bad one is refused before anything is sent.
    pub fn from_document(doc: Value, file: &str) -> CliResult<Desired> {
        let desired: Desired =
            serde_json::from_value(doc).map_err(|e| usage(format!("{file}: {e}")))?;
        for a in &desired.applications {
            for r in &a.role_definitions {
                parse_role_name(&r.name)
                    .map_err(|e| usage(format!("{file}: {}: {}", a.id, e.message)))?;
            }
        }
        Ok(desired)
    }
}

/// An object with a resource id and properties.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Object {
    /// Resource id.
    pub id: String,
    /// Its properties, as the API takes them.
    pub properties: Value,
}

/// An application, the actions it declares, its roles and its eligible roles.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Application {
    /// Resource id.
    pub id: String,
    /// Its properties.
    #[serde(default)]
    pub properties: Value,
    /// The actions it declares.
    #[serde(default)]
    pub actions: Option<Actions>,
    /// Its own roles, over those actions.
    #[serde(default)]
    pub role_definitions: Vec<AppRole>,
    /// Who may activate which role.
    #[serde(default)]
    pub eligible_roles: Vec<Eligible>,
}

/// The actions an application declares.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Actions {
    /// Its namespace, e.g. `crm`.
    pub namespace: String,
    /// Its actions, e.g. `crm.orders/read`.
    #[serde(default)]
    pub actions: Vec<String>,
}

/// One of an application's roles.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AppRole {
    /// Its name, unique within the application.
    pub name: String,
    /// Patterns over the application's actions.
    pub actions: Vec<String>,
    /// What it is for.
    #[serde(default)]
    pub description: Option<String>,
}

/// One eligibility.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Eligible {
    /// Its id within the application.
    pub id: String,
    /// A principal or group:NAME.
    pub principal: String,
    /// The role.
    pub role_definition: String,
}

/// A role assignment.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Assignment {
    /// Its id.
    pub id: String,
    /// A principal or group:NAME.
    pub principal: String,
    /// The role.
    pub role_definition: String,
    /// Where it applies.
    pub scope: String,
}

/// What a step does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The object does not exist.
    Create,
    /// These fields differ (path: current → desired).
    Update(Vec<String>),
    /// Nothing to do.
    Unchanged,
}

/// The differences that writing `desired` would make to `current`: every field the file gives
/// must equal the server's (fields the file leaves out are the server's business).
pub fn differences(path: &str, desired: &Value, current: &Value, out: &mut Vec<String>) {
    match (desired, current) {
        (Value::Object(d), Value::Object(c)) => {
            for (k, v) in d {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                differences(&p, v, c.get(k).unwrap_or(&Value::Null), out);
            }
        }
        (Value::Array(d), Value::Array(c)) if d.len() == c.len() => {
            for (i, (dv, cv)) in d.iter().zip(c).enumerate() {
                differences(&format!("{path}[{i}]"), dv, cv, out);
            }
        }
        (d, c) if d == c => {}
        (d, c) => out.push(format!("{path}: {c} → {d}")),
    }
}

fn change(desired: &Value, current: Option<&Value>) -> Change {
    match current {
        None => Change::Create,
        Some(c) => {
            let mut diffs = Vec::new();
            differences("", desired, c, &mut diffs);
            if diffs.is_empty() {
                Change::Unchanged
            } else {
                Change::Update(diffs)
            }
        }
    }
}

/// `GET path`, `None` when it does not exist. Kept as JSON: the file's fields are compared
/// with it one by one, whatever the object's kind.
async fn current(ctx: &Ctx, path: &str) -> CliResult<Option<Value>> {
    match ctx.client.get::<Value>(&crate::api(path)).await {
        Ok(v) => Ok(Some(v)),
        Err(ClientError::Api { status: 404, .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// One step of the plan, as `--output json` prints it.
#[derive(Debug, Serialize)]
struct Step {
    /// `create`, `update` or `unchanged`.
    change: &'static str,
    /// The fields that differ (path: current → desired).
    differences: Vec<String>,
    /// The object's path.
    id: String,
    /// What the object is.
    kind: String,
}

/// What `ajar apply --output json` prints. Fields are in alphabetical order, as they have
/// always been printed.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Summary {
    changes: Vec<Step>,
    create: usize,
    dry_run: bool,
    unchanged: usize,
    update: usize,
}

struct Plan<'a> {
    ctx: &'a Ctx,
    dry_run: bool,
    counts: [usize; 3],
    lines: Vec<Step>,
}

impl Plan<'_> {
    /// Prints and (unless dry) carries out one step: PUT `body` at `path` when needed.
    async fn step(&mut self, what: &str, path: &str, body: Value, compare: &Value) -> CliResult {
        let now = current(self.ctx, path).await?;
        self.step_from(what, path, body, compare, now).await
    }

    /// Like [`Plan::step`], with the object as it is now (`None`: it does not exist).
    async fn step_from(
        &mut self,
        what: &str,
        path: &str,
        body: Value,
        compare: &Value,
        now: Option<Value>,
    ) -> CliResult {
        let c = change(compare, now.as_ref());
        let (mark, verb, idx) = match &c {
            Change::Create => ("+", "create", 0),
            Change::Update(_) => ("~", "update", 1),
            Change::Unchanged => ("=", "unchanged", 2),
        };
        self.counts[idx] += 1;
        if self.ctx.output == Output::Table {
            crate::outln!("{mark} {verb} {what} {path}");
            if let Change::Update(diffs) = &c {
                for d in diffs {
                    crate::outln!("    {d}");
                }
            }
        }
        let differences = match &c {
            Change::Update(d) => d.clone(),
            _ => Vec::new(),
        };
        self.lines.push(Step {
            change: verb,
            differences,
            id: path.to_owned(),
            kind: what.to_owned(),
        });
        if !self.dry_run && c != Change::Unchanged {
            self.ctx
                .client
                .put::<IgnoredAny, Value>(&crate::api(path), &body)
                .await?;
        }
        Ok(())
    }
}

/// Runs `ajar apply`.
pub async fn apply(ctx: &Ctx, args: ApplyArgs) -> CliResult {
    let doc = read_document(&args.file)?;
    let desired = Desired::from_document(doc, &args.file)?;
    let mut plan = Plan {
        ctx,
        dry_run: args.dry_run,
        counts: [0; 3],
        lines: Vec::new(),
    };
    // Bodies are built from the file's own JSON: they are compared field by field with the
    // server's JSON and sent as written, so the server judges them and names the field at fault.
    for m in &desired.machines {
        let id = crate::parse::id(&m.id)?;
        let body = json!({"properties": m.properties});
        plan.step("machine", &id, body.clone(), &body).await?;
    }
    for p in &desired.policies {
        let id = crate::parse::id(&p.id)?;
        let body = json!({"properties": p.properties});
        plan.step("policy", &id, body.clone(), &body).await?;
    }
    for a in &desired.applications {
        let id = crate::parse::id(&a.id)?;
        let body = json!({"properties": a.properties});
        plan.step("application", &id, body.clone(), &body).await?;
        // Actions and roles before eligibility, which names the roles.
        if let Some(declared) = &a.actions {
            let path = format!("{id}/actions");
            // The server keeps actions sorted and once each: compare them the same way.
            let mut actions = declared.actions.clone();
            actions.sort_unstable();
            actions.dedup();
            let body = json!({"namespace": declared.namespace, "actions": actions});
            // An application that declared nothing answers an empty namespace.
            let now = current(ctx, &path)
                .await?
                .filter(|v| v["namespace"].as_str().is_some_and(|n| !n.is_empty()));
            plan.step_from("actions", &path, body.clone(), &body, now)
                .await?;
        }
        for r in &a.role_definitions {
            let body = match &r.description {
                Some(d) => json!({"actions": r.actions, "description": d}),
                None => json!({"actions": r.actions}),
            };
            plan.step(
                "role definition",
                &format!("{id}/roleDefinitions/{}", r.name),
                body.clone(),
                &body,
            )
            .await?;
        }
        for e in &a.eligible_roles {
            let body = json!({"principal": e.principal, "roleDefinition": e.role_definition});
            plan.step(
                "eligible role",
                &format!("{id}/eligibleRoles/{}", e.id),
                body.clone(),
                &body,
            )
            .await?;
        }
    }
    for r in &desired.role_assignments {
        let body = json!({"principal": r.principal, "roleDefinition": r.role_definition, "scope": r.scope});
        plan.step(
            "role assignment",
            &format!("/api/v1/roleAssignments/{}", r.id),
            body.clone(),
            &body,
        )
        .await?;
    }
    let [created, updated, unchanged] = plan.counts;
    let summary = Summary {
        changes: plan.lines,
        create: created,
        dry_run: args.dry_run,
        unchanged,
        update: updated,
    };
    match ctx.output {
        Output::Json => render::json(&summary),
        Output::Table => crate::outln!(
            "{}{created} to create, {updated} to update, {unchanged} unchanged",
            if args.dry_run { "dry run: " } else { "" }
        ),
    }
    if created + updated + unchanged == 0 {
        return Err(CliError::Failed(format!("{}: nothing to apply", args.file)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_fields_the_file_gives_are_compared() {
        let current =
            json!({"properties":{"os":"linux","addresses":["10.0.0.1"],"jitState":"Configured"}});
        assert_eq!(
            change(&json!({"properties":{"os":"linux"}}), Some(&current)),
            Change::Unchanged
        );
        assert_eq!(
            change(&json!({"properties":{"os":"windows"}}), Some(&current)),
            Change::Update(vec!["properties.os: \"linux\" → \"windows\"".into()])
        );
        assert_eq!(
            change(
                &json!({"properties":{"addresses":["10.0.0.1","10.0.0.2"]}}),
                Some(&current)
            ),
            Change::Update(vec![
                "properties.addresses: [\"10.0.0.1\"] → [\"10.0.0.1\",\"10.0.0.2\"]".into()
            ])
        );
        assert_eq!(change(&json!({}), None), Change::Create);
    }
}
