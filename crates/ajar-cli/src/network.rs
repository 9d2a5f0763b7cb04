//! Machines, network JIT policies and network access.

use crate::parse::{self, group_of, name_of};
use crate::render::Column;
use crate::{CliError, CliResult, Ctx, Output, render, usage};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

/// A machine's operating system.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Os {
    /// Linux (SSH, port 22 by default).
    Linux,
    /// Windows (RDP, port 3389 by default).
    Windows,
}

/// `ajar machine ...`.
#[derive(Debug, Subcommand)]
pub enum MachineCmd {
    /// Add or replace a machine.
    Add {
        /// Its resource id, e.g. /subscriptions/s1/resourceGroups/rg1/machines/vm1.
        id: String,
        /// Operating system.
        #[arg(long, value_enum)]
        os: Os,
        /// IP address (repeatable).
        #[arg(long = "address", required = true)]
        addresses: Vec<String>,
        /// Label as key=value (repeatable).
        #[arg(long = "label")]
        labels: Vec<String>,
    },
    /// List the machines of a subscription or resource group.
    List {
        /// /subscriptions/S or /subscriptions/S/resourceGroups/RG.
        #[arg(long)]
        scope: String,
        /// Only Configured, NotConfigured or Unsupported ones.
        #[arg(long)]
        state: Option<String>,
    },
    /// Show a machine with its request figures and open connections.
    Show {
        /// Resource id.
        id: String,
    },
    /// Remove a machine (not while a policy covers it).
    Rm {
        /// Resource id.
        id: String,
    },
}

const MACHINE_COLUMNS: &[Column] = &[
    ("NAME", "/name"),
    ("OS", "/properties/os"),
    ("ADDRESSES", "/properties/addresses"),
    ("JIT", "/properties/jitState"),
    ("POLICY", "/properties/jitPolicyId"),
    (
        "APPROVED 7D",
        "/properties/requestFigures/approvedRequestsLast7Days",
    ),
    ("LAST ACCESS", "/properties/requestFigures/lastAccessAt"),
    ("LAST USER", "/properties/requestFigures/lastUser"),
];

const MACHINE_FIELDS: &[Column] = &[
    ("id", "/id"),
    ("os", "/properties/os"),
    ("addresses", "/properties/addresses"),
    ("labels", "/properties/labels"),
    ("jit state", "/properties/jitState"),
    ("unsupported", "/properties/unsupportedReason"),
    ("policy", "/properties/jitPolicyId"),
    ("agent", "/properties/enforcementPoint"),
    (
        "approved (7 days)",
        "/properties/requestFigures/approvedRequestsLast7Days",
    ),
    ("last access", "/properties/requestFigures/lastAccessAt"),
    ("last user", "/properties/requestFigures/lastUser"),
];

/// Runs `ajar machine ...`.
pub async fn machine(ctx: &Ctx, cmd: MachineCmd) -> CliResult {
    match cmd {
        MachineCmd::Add {
            id,
            os,
            addresses,
            labels,
        } => {
            let id = parse::id(&id)?;
            let labels: BTreeMap<String, String> = labels
                .iter()
                .map(|l| parse::label(l))
                .collect::<CliResult<_>>()?;
            let os = match os {
                Os::Linux => "linux",
                Os::Windows => "windows",
            };
            let body = json!({"properties":{"os":os,"addresses":addresses,"labels":labels}});
            let m = ctx.put(&id, &body).await?;
            ctx.done(&m, &format!("machine {id} saved"));
        }
        MachineCmd::List { scope, state } => {
            let scope = parse::id(&scope)?;
            let q = state.map(|s| format!("?state={s}")).unwrap_or_default();
            let list = ctx.get_pages(&format!("{scope}/machines{q}")).await?;
            ctx.list(&list, MACHINE_COLUMNS);
        }
        MachineCmd::Show { id } => {
            let m = ctx.get(&parse::id(&id)?).await?;
            ctx.show(&m, MACHINE_FIELDS);
            if ctx.output == Output::Table {
                let open = m["properties"]["requestFigures"]["openConnections"].clone();
                if open.as_array().is_some_and(|a| !a.is_empty()) {
                    println!("\nopen now:");
                    render::table(
                        open.as_array().map(Vec::as_slice).unwrap_or_default(),
                        &[
                            ("PORT", "/port"),
                            ("PROTOCOL", "/protocol"),
                            ("FROM", "/sourceAddressPrefixes"),
                            ("CONNECT TO", "/connectTo"),
                            ("BY", "/requestor"),
                            ("UNTIL", "/endTimeUtc"),
                        ],
                    );
                }
            }
        }
        MachineCmd::Rm { id } => {
            let id = parse::id(&id)?;
            ctx.delete(&id).await?;
            ctx.done(&json!({}), &format!("machine {id} removed"));
        }
    }
    Ok(())
}

/// Port rules given as flags.
#[derive(Debug, Clone, Args)]
pub struct PortFlags {
    /// Port number (repeatable).
    #[arg(long = "port")]
    pub ports: Vec<String>,
    /// Protocol of those ports: tcp, udp or any.
    #[arg(long, default_value = "any")]
    pub protocol: String,
    /// Longest request (e.g. 3h, PT3H).
    #[arg(long = "max", default_value = "3h")]
    pub max: String,
    /// Allowed source prefix (repeatable; default: any).
    #[arg(long = "source")]
    pub sources: Vec<String>,
}

impl PortFlags {
    fn rules(&self) -> CliResult<Vec<Value>> {
        let protocol = match self.protocol.to_ascii_lowercase().as_str() {
            "tcp" => "TCP",
            "udp" => "UDP",
            "any" | "*" => "*",
            other => return Err(usage(format!("protocol {other:?}: use tcp, udp or any"))),
        };
        let max = parse::duration(&self.max)?;
        self.ports
            .iter()
            .map(|p| {
                let number = parse::port(p)?;
                let mut rule =
                    json!({"number":number,"protocol":protocol,"maxRequestAccessDuration":max});
                if self.sources.is_empty() {
                    rule["allowedSourceAddressPrefix"] = json!("*");
                } else {
                    rule["allowedSourceAddressPrefixes"] = json!(self.sources);
                }
                Ok(rule)
            })
            .collect()
    }
}

/// `ajar policy ...`.
#[derive(Debug, Subcommand)]
pub enum PolicyCmd {
    /// Create or replace a policy from a JSON or YAML file (`-` for standard input), or for one
    /// machine from flags.
    Set {
        /// Its resource id, e.g. /subscriptions/s1/resourceGroups/rg1/jitNetworkAccessPolicies/default.
        id: String,
        /// File with the policy (`{"properties": …}` or just the properties).
        #[arg(long, short = 'f', conflicts_with = "machine")]
        file: Option<String>,
        /// The machine the flags' ports apply to.
        #[arg(long, requires = "ports")]
        machine: Option<String>,
        #[allow(missing_docs, reason = "flattened flags carry their own help")]
        #[command(flatten)]
        ports: PortFlags,
    },
    /// Show a policy.
    Get {
        /// Resource id.
        id: String,
    },
    /// List the policies of a subscription or resource group.
    List {
        /// /subscriptions/S or /subscriptions/S/resourceGroups/RG.
        #[arg(long)]
        scope: String,
    },
    /// Remove a policy (its open ports close).
    Rm {
        /// Resource id.
        id: String,
    },
    /// Enable JIT on a machine: add it to a policy with its OS's default port or the given ones.
    Enable {
        /// The machine's resource id.
        machine: String,
        /// Policy name in the machine's resource group [default: default].
        #[arg(long)]
        policy: Option<String>,
        #[allow(missing_docs, reason = "flattened flags carry their own help")]
        #[command(flatten)]
        ports: PortFlags,
    },
}

const POLICY_COLUMNS: &[Column] = &[
    ("NAME", "/name"),
    ("MACHINES", "/properties/virtualMachines"),
    ("APPROVAL", "/properties/approvalMode"),
    ("STATE", "/properties/provisioningState"),
];

/// Reads a JSON or YAML document from a file or standard input.
pub fn read_document(file: &str) -> CliResult<Value> {
    let text = if file == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .map_err(|e| CliError::Failed(format!("cannot read standard input: {e}")))?;
        s
    } else {
        std::fs::read_to_string(file)
            .map_err(|e| CliError::Failed(format!("cannot read {file}: {e}")))?
    };
    parse_document(&text, file)
}

/// Parses a document's text as JSON, else YAML; `file` names it in errors.
pub fn parse_document(text: &str, file: &str) -> CliResult<Value> {
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        return Ok(v);
    }
    serde_norway::from_str::<Value>(text).map_err(|e| {
        usage(format!(
            "{file}: neither JSON nor YAML: {}",
            e.to_string().lines().next().unwrap_or_default()
        ))
    })
}

fn policy_summary(p: &Value) -> Value {
    let mut row = p.clone();
    let machines: Vec<Value> = p["properties"]["virtualMachines"]
        .as_array()
        .map(|vms| {
            vms.iter()
                .map(|m| {
                    let ports: Vec<String> = m["ports"]
                        .as_array()
                        .map(|ps| ps.iter().map(|p| p["number"].to_string()).collect())
                        .unwrap_or_default();
                    json!(format!(
                        "{}:{}",
                        name_of(m["id"].as_str().unwrap_or("")),
                        ports.join("+")
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    row["properties"]["virtualMachines"] = json!(machines);
    row
}

/// Runs `ajar policy ...`.
pub async fn policy(ctx: &Ctx, cmd: PolicyCmd) -> CliResult {
    match cmd {
        PolicyCmd::Set {
            id,
            file,
            machine,
            ports,
        } => {
            let id = parse::id(&id)?;
            let body = match (file, machine) {
                (Some(f), _) => {
                    let doc = read_document(&f)?;
                    if doc.get("properties").is_some() {
                        doc
                    } else {
                        json!({ "properties": doc })
                    }
                }
                (None, Some(m)) => json!({"properties":{"virtualMachines":[
                    {"id": parse::id(&m)?, "ports": ports.rules()?}]}}),
                (None, None) => {
                    return Err(usage(
                        "give the policy with --file, or --machine and --port",
                    ));
                }
            };
            let p = ctx.put(&id, &body).await?;
            ctx.done(&p, &format!("policy {id} saved"));
        }
        PolicyCmd::Get { id } => {
            let p = ctx.get(&parse::id(&id)?).await?;
            match ctx.output {
                Output::Json => render::json(&p),
                Output::Table => {
                    render::fields(
                        &policy_summary(&p),
                        &[
                            ("id", "/id"),
                            ("machines", "/properties/virtualMachines"),
                            ("approval", "/properties/approvalMode"),
                            ("approvers", "/properties/approvers"),
                        ],
                    );
                    let mut rows = Vec::new();
                    for m in p["properties"]["virtualMachines"]
                        .as_array()
                        .into_iter()
                        .flatten()
                    {
                        for port in m["ports"].as_array().into_iter().flatten() {
                            let mut r = port.clone();
                            r["machine"] = json!(name_of(m["id"].as_str().unwrap_or("")));
                            rows.push(r);
                        }
                    }
                    println!();
                    render::table(
                        &rows,
                        &[
                            ("MACHINE", "/machine"),
                            ("PORT", "/number"),
                            ("PROTOCOL", "/protocol"),
                            ("FROM", "/allowedSourceAddressPrefix"),
                            ("FROM (LIST)", "/allowedSourceAddressPrefixes"),
                            ("MAX", "/maxRequestAccessDuration"),
                        ],
                    );
                }
            }
        }
        PolicyCmd::List { scope } => {
            let scope = parse::id(&scope)?;
            let mut list = ctx
                .get_pages(&format!("{scope}/jitNetworkAccessPolicies"))
                .await?;
            if ctx.output == Output::Table
                && let Some(items) = list["value"].as_array_mut()
            {
                for item in items.iter_mut() {
                    *item = policy_summary(item);
                }
            }
            ctx.list(&list, POLICY_COLUMNS);
        }
        PolicyCmd::Rm { id } => {
            let id = parse::id(&id)?;
            ctx.delete(&id).await?;
            ctx.done(&json!({}), &format!("policy {id} removed"));
        }
        PolicyCmd::Enable {
            machine,
            policy,
            ports,
        } => {
            let machine = parse::id(&machine)?;
            let mut body = json!({});
            if let Some(p) = policy {
                body["policy"] = json!(p);
            }
            if !ports.ports.is_empty() {
                body["ports"] = json!(ports.rules()?);
            }
            let p = ctx.post(&format!("{machine}/enableJit"), &body).await?;
            ctx.done(
                &p,
                &format!(
                    "JIT enabled on {machine} by {}",
                    p["id"].as_str().unwrap_or("?")
                ),
            );
        }
    }
    Ok(())
}

/// `ajar access ...`.
#[derive(Debug, Subcommand)]
pub enum AccessCmd {
    /// Ask for access to machines' ports (like the vendor portal's "Request access").
    Start(StartArgs),
    /// List access requests of a policy or a machine.
    List {
        /// The policy's resource id.
        #[arg(long, conflicts_with = "machine", required_unless_present = "machine")]
        policy: Option<String>,
        /// The machine's resource id.
        #[arg(long)]
        machine: Option<String>,
        /// Page size (1-1000).
        #[arg(long)]
        top: Option<u32>,
    },
    /// Show an access request.
    Show {
        /// The policy's resource id.
        policy: String,
        /// The request id.
        request: String,
    },
    /// Close an access request's ports now.
    Revoke {
        /// The policy's resource id.
        policy: String,
        /// The request id.
        request: String,
    },
    /// Ask to extend an approval-gated request (decided like a new one).
    Extend {
        /// The request's resource id (…/jitRequests/NAME).
        request: String,
        /// How much longer.
        #[arg(long)]
        duration: String,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
    },
}

/// Flags of `ajar access start`.
#[derive(Debug, Args)]
pub struct StartArgs {
    /// The machines' resource ids (all under one policy).
    #[arg(required = true)]
    pub machines: Vec<String>,
    /// Port (repeatable).
    #[arg(long = "port", required = true)]
    pub ports: Vec<String>,
    /// For how long (90m, 2h, PT2H).
    #[arg(long, conflicts_with = "end", required_unless_present = "end")]
    pub duration: Option<String>,
    /// Until when (RFC 3339).
    #[arg(long)]
    pub end: Option<String>,
    /// From this source prefix (repeatable), e.g. a proxy's range.
    #[arg(long = "source", conflicts_with = "my_ip")]
    pub sources: Vec<String>,
    /// From the address the server sees this request come from (the default).
    #[arg(long)]
    pub my_ip: bool,
    /// Why (the justification).
    #[arg(long)]
    pub reason: Option<String>,
    /// Wait until the agent reports the ports open, then print where to connect.
    #[arg(long)]
    pub wait: bool,
    /// Longest wait with --wait.
    #[arg(long, default_value = "2m")]
    pub wait_timeout: String,
}

const PORT_COLUMNS: &[Column] = &[
    ("MACHINE", "/machine"),
    ("PORT", "/number"),
    ("STATUS", "/status"),
    ("REASON", "/statusReason"),
    ("FROM", "/from"),
    ("UNTIL", "/endTimeUtc"),
    ("CONNECT TO", "/connectTo"),
];

/// A request's ports as table rows.
fn port_rows(req: &Value, addresses: &BTreeMap<String, String>) -> Vec<Value> {
    let mut rows = Vec::new();
    for m in req["virtualMachines"].as_array().into_iter().flatten() {
        let machine = m["id"].as_str().unwrap_or("");
        for p in m["ports"].as_array().into_iter().flatten() {
            let mut r = p.clone();
            r["machine"] = json!(name_of(machine));
            r["from"] = if p["allowedSourceAddressPrefix"].is_null() {
                p["allowedSourceAddressPrefixes"].clone()
            } else {
                p["allowedSourceAddressPrefix"].clone()
            };
            r["connectTo"] = match (&p["connectionDetails"], addresses.get(machine)) {
                (d, _) if !d.is_null() => json!(format!(
                    "{}:{}",
                    d["address"].as_str().unwrap_or(""),
                    d["port"]
                )),
                (_, Some(addr)) => json!(format!("{addr}:{}", p["number"])),
                _ => Value::Null,
            };
            rows.push(r);
        }
    }
    rows
}

async fn start(ctx: &Ctx, args: StartArgs) -> CliResult {
    let end = match (&args.duration, &args.end) {
        (Some(d), _) => json!({"duration": parse::duration(d)?}),
        (None, Some(e)) => json!({"endTimeUtc": parse::instant(e)?}),
        (None, None) => return Err(usage("give --duration or --end")),
    };
    let wait_timeout = parse::std_duration(&args.wait_timeout)?;
    let numbers: Vec<u16> = args
        .ports
        .iter()
        .map(|p| parse::port(p))
        .collect::<CliResult<_>>()?;
    let mut policy: Option<String> = None;
    let mut addresses = BTreeMap::new();
    let mut vms = Vec::new();
    for m in &args.machines {
        let id = parse::id(m)?;
        let machine = ctx.get(&id).await?;
        let Some(p) = machine["properties"]["jitPolicyId"].as_str() else {
            return Err(CliError::Failed(format!(
                "{id} has no JIT policy; enable it first: ajar policy enable {id}"
            )));
        };
        match &policy {
            Some(q) if q != p => {
                return Err(usage(format!(
                    "{id} is under {p}, not {q}: request access per policy"
                )));
            }
            _ => policy = Some(p.to_owned()),
        }
        if let Some(a) = machine["properties"]["addresses"][0].as_str() {
            addresses.insert(id.clone(), a.to_owned());
        }
        let ports: Vec<Value> = numbers
            .iter()
            .map(|n| {
                let mut port = json!({"number": n});
                for (k, v) in end.as_object().into_iter().flatten() {
                    port[k] = v.clone();
                }
                match args.sources.as_slice() {
                    [] => {}
                    [one] => port["allowedSourceAddressPrefix"] = json!(one),
                    many => port["allowedSourceAddressPrefixes"] = json!(many),
                }
                port
            })
            .collect();
        vms.push(json!({"id": id, "ports": ports}));
    }
    let Some(policy) = policy else {
        return Err(usage("name at least one machine"));
    };
    let mut body = json!({"virtualMachines": vms});
    if let Some(r) = &args.reason {
        body["justification"] = json!(r);
    }
    let mut answer = ctx.post(&format!("{policy}/initiate"), &body).await?;
    if args.wait {
        answer = wait_open(ctx, &policy, &answer, wait_timeout).await?;
    }
    match ctx.output {
        Output::Json => render::json(&answer),
        Output::Table => {
            println!(
                "request {} under {policy}{}",
                answer["id"].as_str().unwrap_or("?"),
                answer["approvalRequestId"]
                    .as_str()
                    .map(|a| format!(" (waiting for approval: {a})"))
                    .unwrap_or_default()
            );
            render::table(&port_rows(&answer, &addresses), PORT_COLUMNS);
        }
    }
    Ok(())
}

/// Polls the request until every port was reported open by its agent (or closed, or the
/// approval was refused); answers the request as last read.
async fn wait_open(ctx: &Ctx, policy: &str, asked: &Value, limit: Duration) -> CliResult<Value> {
    let id = asked["id"].as_str().unwrap_or_default().to_owned();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(approval) = asked["approvalRequestId"].as_str() {
            let a = ctx.get(approval).await?;
            let state = a["properties"]["jitRequestState"].as_str().unwrap_or("");
            if matches!(
                state,
                "Denied" | "Canceled" | "Timeout" | "Failed" | "Revoked" | "Expired"
            ) {
                return Err(CliError::Failed(format!(
                    "the request ended {state} before it opened"
                )));
            }
        }
        let current = ctx
            .client
            .raw(
                reqwest::Method::GET,
                &format!("/api/v1{policy}/requests/{id}"),
                None,
            )
            .await?;
        if current.status == 200 {
            let ports: Vec<&Value> = current.body["virtualMachines"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|m| m["ports"].as_array().into_iter().flatten())
                .collect();
            if ports.iter().any(|p| p["status"] != "Initiated") {
                return Err(CliError::Failed(format!(
                    "port {} closed before it opened: {}",
                    ports
                        .iter()
                        .find(|p| p["status"] != "Initiated")
                        .map(|p| p["number"].to_string())
                        .unwrap_or_default(),
                    ports
                        .iter()
                        .find(|p| p["status"] != "Initiated")
                        .and_then(|p| p["statusReason"].as_str())
                        .unwrap_or("?")
                )));
            }
            if !ports.is_empty() && ports.iter().all(|p| !p["openSince"].is_null()) {
                return Ok(current.body);
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(CliError::Failed(format!(
                "request {id} was not reported open within {} s (is the machine's agent running?)",
                limit.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Runs `ajar access ...`.
pub async fn access(ctx: &Ctx, cmd: AccessCmd) -> CliResult {
    match cmd {
        AccessCmd::Start(args) => start(ctx, args).await?,
        AccessCmd::List {
            policy,
            machine,
            top,
        } => {
            let base = match (policy, machine) {
                (Some(p), _) => parse::id(&p)?,
                (None, Some(m)) => parse::id(&m)?,
                (None, None) => return Err(usage("give --policy or --machine")),
            };
            let q = top.map(|t| format!("?top={t}")).unwrap_or_default();
            let mut list = ctx.get(&format!("{base}/requests{q}")).await?;
            if ctx.output == Output::Table
                && let Some(items) = list["value"].as_array_mut()
            {
                for r in items.iter_mut() {
                    let ports: Vec<String> = port_rows(r, &BTreeMap::new())
                        .iter()
                        .map(|p| {
                            format!(
                                "{}:{} {}",
                                p["machine"].as_str().unwrap_or(""),
                                p["number"],
                                p["status"].as_str().unwrap_or("")
                            )
                        })
                        .collect();
                    r["ports"] = json!(ports);
                }
            }
            ctx.list(
                &list,
                &[
                    ("ID", "/id"),
                    ("REQUESTOR", "/requestor"),
                    ("STARTED", "/startTimeUtc"),
                    ("PORTS", "/ports"),
                    ("REASON", "/justification"),
                ],
            );
        }
        AccessCmd::Show { policy, request } => {
            let policy = parse::id(&policy)?;
            let r = ctx.get(&format!("{policy}/requests/{request}")).await?;
            match ctx.output {
                Output::Json => render::json(&r),
                Output::Table => {
                    render::fields(
                        &r,
                        &[
                            ("id", "/id"),
                            ("requestor", "/requestor"),
                            ("started", "/startTimeUtc"),
                            ("reason", "/justification"),
                        ],
                    );
                    println!();
                    render::table(&port_rows(&r, &BTreeMap::new()), PORT_COLUMNS);
                }
            }
        }
        AccessCmd::Revoke { policy, request } => {
            let policy = parse::id(&policy)?;
            let r = ctx
                .post(&format!("{policy}/requests/{request}/revoke"), &json!({}))
                .await?;
            ctx.done(&r, &format!("request {request} revoked"));
        }
        AccessCmd::Extend {
            request,
            duration,
            reason,
        } => {
            let request = parse::id(&request)?;
            group_of(&request)?;
            let mut body = json!({"duration": parse::duration(&duration)?});
            if let Some(r) = reason {
                body["justification"] = json!(r);
            }
            let r = ctx.post(&format!("{request}/extend"), &body).await?;
            ctx.done(
                &r,
                &format!(
                    "extension {} is {}",
                    r["id"].as_str().unwrap_or("?"),
                    r["properties"]["jitRequestState"].as_str().unwrap_or("?")
                ),
            );
        }
    }
    Ok(())
}
