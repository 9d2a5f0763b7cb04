//! Machines, network JIT policies and network access.

use crate::parse::{self, group_of, name_of};
use crate::render::Column;
use crate::{Answer, CliError, CliResult, Ctx, NoParameters, Output, refused, render, usage};
use ajar_api::wire::{
    AccessRequest, AccessRequestPort, EnableJitBody, ExtendBody, HistoryEntry, InitiateBody,
    InitiateMachine, InitiatePort, JitRequest, JitState, List, Machine, MachineBody,
    MachineProperties, OpenConnection, Policy, PolicyBody, PolicyMachine, PolicyPort,
    PolicyProperties, PortState, RequestFigures, SourceList,
};
use ajar_core::duration::AccessDuration;
use ajar_core::id::{Name, ResourceId};
use ajar_core::lifecycle::RequestState;
use ajar_core::net::{Port, Protocol, SourcePrefix};
use clap::{Args, Subcommand, ValueEnum};
use jiff::Timestamp;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::IpAddr;
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
    /// List the machines of a subscription or resource group, or without --scope every machine
    /// you may see.
    List {
        /// /subscriptions/S or /subscriptions/S/resourceGroups/RG [default: every subscription
        /// you may read].
        #[arg(long)]
        scope: Option<String>,
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

/// A machine's request figures (in reads only).
fn figures(m: &Machine) -> Option<&RequestFigures> {
    m.properties.request_figures.as_ref()
}

/// Requests granted in the last 7 days, as a cell.
fn approved_7_days(m: &Machine) -> String {
    render::optional(&figures(m).map(|f| f.approved_requests_last7_days))
}

/// When access was last granted, as a cell.
fn last_access(m: &Machine) -> String {
    render::optional(&figures(m).and_then(|f| f.last_access_at.as_ref()))
}

/// Who asked last, as a cell.
fn last_user(m: &Machine) -> String {
    render::optional(&figures(m).and_then(|f| f.last_user.as_ref()))
}

const MACHINE_COLUMNS: &[Column<Machine>] = &[
    ("NAME", |m| render::text(&m.name)),
    ("OS", |m| render::text(&m.properties.os)),
    ("ADDRESSES", |m| render::list(&m.properties.addresses)),
    ("JIT", |m| render::text(&m.properties.jit_state)),
    ("POLICY", |m| render::optional(&m.properties.jit_policy_id)),
    ("APPROVED 7D", approved_7_days),
    ("LAST ACCESS", last_access),
    ("LAST USER", last_user),
];

const MACHINE_FIELDS: &[Column<Machine>] = &[
    ("id", |m| render::text(&m.id)),
    ("os", |m| render::text(&m.properties.os)),
    ("addresses", |m| render::list(&m.properties.addresses)),
    ("labels", |m| render::object(&m.properties.labels)),
    ("jit state", |m| render::text(&m.properties.jit_state)),
    ("unsupported", |m| {
        render::optional(&m.properties.unsupported_reason)
    }),
    ("policy", |m| render::optional(&m.properties.jit_policy_id)),
    ("agent", |m| {
        render::optional(&m.properties.enforcement_point)
    }),
    ("standing exposures", |m| {
        render::list(&m.properties.standing_exposures)
    }),
    ("approved (7 days)", approved_7_days),
    ("last access", last_access),
    ("last user", last_user),
];

const OPEN_CONNECTION_COLUMNS: &[Column<OpenConnection>] = &[
    ("PORT", |c| render::text(&c.port)),
    ("PROTOCOL", |c| render::text(&c.protocol)),
    ("FROM", |c| render::list(&c.source_address_prefixes)),
    ("CONNECT TO", |c| render::optional(&c.connect_to)),
    ("BY", |c| render::text(&c.requestor)),
    ("UNTIL", |c| render::text(&c.end_time_utc)),
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
                Os::Linux => ajar_core::machine::Os::Linux,
                Os::Windows => ajar_core::machine::Os::Windows,
            };
            let addresses = addresses
                .iter()
                .map(|a| {
                    a.trim().parse::<IpAddr>().map_err(|_| {
                        CliError::Failed(format!("--address: {a:?} is not an IP address"))
                    })
                })
                .collect::<CliResult<_>>()?;
            let body = MachineBody {
                properties: MachineProperties {
                    os,
                    addresses,
                    labels,
                },
            };
            let m = ctx.put::<Machine, _>(&id, &body).await?;
            ctx.done(&m, &format!("machine {id} saved"));
        }
        MachineCmd::List { scope, state } => {
            let q = state.map(|s| format!("?state={s}")).unwrap_or_default();
            let list = ctx
                .fetch_scoped(scope.as_deref(), &format!("machines{q}"))
                .await?;
            ctx.list(&list, MACHINE_COLUMNS);
        }
        MachineCmd::Show { id } => {
            let m = ctx.fetch::<Machine>(&parse::id(&id)?).await?;
            ctx.show(&m, MACHINE_FIELDS);
            if ctx.output == Output::Table
                && let Some(f) = figures(&m.body)
                && !f.open_connections.is_empty()
            {
                crate::outln!("\nopen now:");
                render::table(&f.open_connections, OPEN_CONNECTION_COLUMNS);
                let more = f.open_connection_count - f.open_connections.len() as i64;
                if more > 0 {
                    crate::outln!(
                        "and {more} more (all of them: GET /api/v1{}/grants)",
                        m.body.id
                    );
                }
            }
        }
        MachineCmd::Rm { id } => {
            let id = parse::id(&id)?;
            ctx.delete(&id).await?;
            ctx.removed(&format!("machine {id} removed"));
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
    fn rules(&self) -> CliResult<Vec<PolicyPort>> {
        let protocol = match self.protocol.to_ascii_lowercase().as_str() {
            "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            "any" | "*" => Protocol::Any,
            other => return Err(usage(format!("protocol {other:?}: use tcp, udp or any"))),
        };
        let max = parse::duration(&self.max)?;
        let numbers: Vec<u16> = self
            .ports
            .iter()
            .map(|p| parse::port(p))
            .collect::<CliResult<_>>()?;
        let max = AccessDuration::parse(&max).map_err(|e| refused("--max", e))?;
        let (one, many) = if self.sources.is_empty() {
            (Some(SourceList(vec![SourcePrefix::Any])), None)
        } else {
            (None, Some(source_list(&self.sources)?))
        };
        Ok(numbers
            .into_iter()
            .map(|number| PolicyPort {
                number: Port::from(number),
                protocol,
                allowed_source_address_prefix: one.clone(),
                allowed_source_address_prefixes: many.clone(),
                max_request_access_duration: max,
            })
            .collect())
    }
}

/// Source prefixes given with `--source`.
fn source_list(sources: &[String]) -> CliResult<SourceList> {
    sources
        .iter()
        .map(|s| SourcePrefix::parse(s).map_err(|e| refused("--source", e)))
        .collect::<CliResult<_>>()
        .map(SourceList)
}

/// A resource id given as `option`, as the API reads it.
fn resource_id(option: &str, id: &str) -> CliResult<ResourceId> {
    ResourceId::parse(id).map_err(|e| refused(option, e))
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
    /// List the policies of a subscription or resource group, or without --scope every policy
    /// you may see.
    List {
        /// /subscriptions/S or /subscriptions/S/resourceGroups/RG [default: every subscription
        /// you may read].
        #[arg(long)]
        scope: Option<String>,
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

const POLICY_COLUMNS: &[Column<Policy>] = &[
    ("NAME", |p| render::text(&p.name)),
    ("MACHINES", policy_machines),
    ("APPROVAL", |p| {
        render::optional(&p.properties.approval_mode)
    }),
    ("STATE", |p| render::text(&p.properties.provisioning_state)),
];

const POLICY_FIELDS: &[Column<Policy>] = &[
    ("id", |p| render::text(&p.id)),
    ("machines", policy_machines),
    ("approval", |p| {
        render::optional(&p.properties.approval_mode)
    }),
    ("approvers", |p| render::objects(&p.properties.approvers)),
];

/// One port rule of a policy and the name of its machine.
struct PolicyPortRow {
    machine: String,
    port: PolicyPort,
}

const POLICY_PORT_COLUMNS: &[Column<PolicyPortRow>] = &[
    ("MACHINE", |r| render::text(&r.machine)),
    ("PORT", |r| render::text(&r.port.number)),
    ("PROTOCOL", |r| render::text(&r.port.protocol)),
    ("FROM", |r| sources(&r.port.allowed_source_address_prefix)),
    ("FROM (LIST)", |r| {
        sources(&r.port.allowed_source_address_prefixes)
    }),
    ("MAX", |r| render::text(&r.port.max_request_access_duration)),
];

/// Source prefixes as a cell.
fn sources(list: &Option<SourceList>) -> String {
    list.as_ref()
        .map_or_else(|| "-".to_owned(), |l| render::list(&l.0))
}

/// A policy's machines and ports as a cell: `vm1:22+3389,vm2:22`.
fn policy_machines(p: &Policy) -> String {
    let machines: Vec<String> = p
        .properties
        .virtual_machines
        .iter()
        .map(|m| {
            let ports: Vec<String> = m.ports.iter().map(|p| p.number.to_string()).collect();
            format!("{}:{}", name_of(&m.id.to_string()), ports.join("+"))
        })
        .collect();
    render::list(&machines)
}

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
            let p: Answer<Policy> = match (file, machine) {
                (Some(f), _) => {
                    // The user's document is sent as written, so the server judges it and names
                    // the field at fault in its own terms.
                    let doc = read_document(&f)?;
                    let body = if doc.get("properties").is_some() {
                        doc
                    } else {
                        json!({ "properties": doc })
                    };
                    ctx.put(&id, &body).await?
                }
                (None, Some(m)) => {
                    let m = parse::id(&m)?;
                    let ports = ports.rules()?;
                    let body = PolicyBody {
                        kind: None,
                        location: None,
                        properties: PolicyProperties {
                            virtual_machines: vec![PolicyMachine {
                                id: resource_id("--machine", &m)?,
                                ports,
                            }],
                            cut_established_on_expiry: false,
                            approval_mode: None,
                            approvers: Vec::new(),
                            approval_threshold: None,
                        },
                    };
                    ctx.put(&id, &body).await?
                }
                (None, None) => {
                    return Err(usage(
                        "give the policy with --file, or --machine and --port",
                    ));
                }
            };
            ctx.done(&p, &format!("policy {id} saved"));
        }
        PolicyCmd::Get { id } => {
            let p = ctx.fetch::<Policy>(&parse::id(&id)?).await?;
            ctx.show(&p, POLICY_FIELDS);
            if ctx.output == Output::Table {
                let rows: Vec<PolicyPortRow> = p
                    .body
                    .properties
                    .virtual_machines
                    .iter()
                    .flat_map(|m| {
                        let machine = name_of(&m.id.to_string()).to_owned();
                        m.ports.iter().map(move |port| PolicyPortRow {
                            machine: machine.clone(),
                            port: port.clone(),
                        })
                    })
                    .collect();
                crate::outln!();
                render::table(&rows, POLICY_PORT_COLUMNS);
            }
        }
        PolicyCmd::List { scope } => {
            let list = ctx
                .fetch_scoped(scope.as_deref(), "jitNetworkAccessPolicies")
                .await?;
            ctx.list(&list, POLICY_COLUMNS);
        }
        PolicyCmd::Rm { id } => {
            let id = parse::id(&id)?;
            ctx.delete(&id).await?;
            ctx.removed(&format!("policy {id} removed"));
        }
        PolicyCmd::Enable {
            machine,
            policy,
            ports,
        } => {
            let machine = parse::id(&machine)?;
            let ports = if ports.ports.is_empty() {
                None
            } else {
                Some(ports.rules()?)
            };
            let policy = policy
                .map(|p| Name::parse(&p).map_err(|e| refused("--policy", e)))
                .transpose()?;
            let body = EnableJitBody { policy, ports };
            let p = ctx
                .post::<Policy, _>(&format!("{machine}/enableJit"), &body)
                .await?;
            ctx.done(&p, &format!("JIT enabled on {machine} by {}", p.body.id));
        }
    }
    Ok(())
}

/// `ajar access ...`.
#[derive(Debug, Subcommand)]
pub enum AccessCmd {
    /// Ask for access to machines' ports (the console's "Request access").
    Start(StartArgs),
    /// List access requests, newest first: those made under one policy (--policy) or for one
    /// machine (--machine); give exactly one of the two.
    List {
        /// Only requests under this policy (its resource id, e.g.
        /// /subscriptions/s1/resourceGroups/rg1/jitNetworkAccessPolicies/default).
        #[arg(long, conflicts_with = "machine", required_unless_present = "machine")]
        policy: Option<String>,
        /// Only requests for this machine (its resource id).
        #[arg(long)]
        machine: Option<String>,
        /// At most this many requests (1-1000) [default: the server's page size].
        #[arg(long)]
        top: Option<u32>,
    },
    /// Show an access request: `show POLICY ID`, or `show REQUEST` with the request's full
    /// path (POLICY/requests/ID), its approval request's id (…/jitRequests/NAME) or its ID alone.
    Show {
        /// The policy's resource id, or the request as a full path or ID alone.
        #[arg(value_name = "POLICY|REQUEST")]
        first: String,
        /// The request ID, after the policy's resource id.
        #[arg(value_name = "ID")]
        request: Option<String>,
    },
    /// Close an access request's ports now (`revoke POLICY ID` or `revoke REQUEST`, as for show).
    Revoke {
        /// The policy's resource id, or the request as a full path or ID alone.
        #[arg(value_name = "POLICY|REQUEST")]
        first: String,
        /// The request ID, after the policy's resource id.
        #[arg(value_name = "ID")]
        request: Option<String>,
    },
    /// Ask to extend an approval-gated request (decided like a new one).
    Extend {
        /// The request's resource id (…/jitRequests/NAME, its `approvalRequestId`) or its NAME.
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
    /// Wait until the agent reports the ports open, then print where to connect. Fails at once
    /// when a machine has no live agent, naming how to start one; shows progress on stderr.
    #[arg(long)]
    pub wait: bool,
    /// Longest wait with --wait.
    #[arg(long, default_value = "2m")]
    pub wait_timeout: String,
}

/// One port of an access request as a table row.
struct PortRow {
    machine: String,
    number: u16,
    status: String,
    reason: String,
    /// Status and reason in the words history uses for the request.
    state: String,
    from: String,
    until: String,
    connect_to: Option<String>,
}

const PORT_COLUMNS: &[Column<PortRow>] = &[
    ("MACHINE", |r| render::text(&r.machine)),
    ("PORT", |r| render::text(&r.number)),
    ("STATUS", |r| render::text(&r.status)),
    ("REASON", |r| render::text(&r.reason)),
    ("FROM", |r| r.from.clone()),
    ("UNTIL", |r| render::text(&r.until)),
    ("CONNECT TO", |r| render::optional(&r.connect_to)),
];

/// A request's ports as table rows; `addresses` are the machines' own addresses, for ports
/// without connection details.
fn port_rows(req: &AccessRequest, addresses: &BTreeMap<String, String>) -> Vec<PortRow> {
    let mut rows = Vec::new();
    for m in &req.virtual_machines {
        let machine = m.id.to_string();
        for p in &m.ports {
            let from = match (
                &p.allowed_source_address_prefix,
                &p.allowed_source_address_prefixes,
            ) {
                (Some(one), _) => render::text(one),
                (None, Some(many)) => render::list(many),
                (None, None) => "-".to_owned(),
            };
            let connect_to = match (&p.connection_details, addresses.get(&machine)) {
                (Some(d), _) => Some(format!("{}:{}", d.address, d.port)),
                (None, Some(addr)) => Some(format!("{addr}:{}", p.number)),
                (None, None) => None,
            };
            rows.push(PortRow {
                machine: name_of(&machine).to_owned(),
                number: p.number,
                status: p.status.to_string(),
                reason: p.status_reason.to_string(),
                state: p.state_words(),
                from,
                until: p.end_time_utc.to_string(),
                connect_to,
            });
        }
    }
    rows
}

const REQUEST_COLUMNS: &[Column<AccessRequest>] = &[
    ("ID", |r| render::text(&r.id)),
    ("REQUESTOR", |r| render::text(&r.requestor)),
    ("STARTED", |r| render::text(&r.start_time_utc)),
    ("PORTS", |r| {
        let ports: Vec<String> = port_rows(r, &BTreeMap::new())
            .iter()
            .map(|p| format!("{}:{} {}", p.machine, p.number, p.state))
            .collect();
        render::list(&ports)
    }),
    ("REASON", |r| render::optional(&r.justification)),
];

const REQUEST_FIELDS: &[Column<AccessRequest>] = &[
    ("id", |r| render::text(&r.id)),
    ("requestor", |r| render::text(&r.requestor)),
    ("started", |r| render::text(&r.start_time_utc)),
    ("reason", |r| render::optional(&r.justification)),
];

/// When the requested access ends.
enum End {
    After(AccessDuration),
    At(Timestamp),
}

async fn start(ctx: &Ctx, args: StartArgs) -> CliResult {
    let end = match (&args.duration, &args.end) {
        (Some(d), _) => parse::duration(d)?,
        (None, Some(e)) => parse::instant(e)?,
        (None, None) => return Err(usage("give --duration or --end")),
    };
    let wait_timeout = parse::std_duration(&args.wait_timeout)?;
    let numbers: Vec<u16> = args
        .ports
        .iter()
        .map(|p| parse::port(p))
        .collect::<CliResult<_>>()?;
    let end = match &args.duration {
        Some(_) => End::After(AccessDuration::parse(&end).map_err(|e| refused("--duration", e))?),
        None => End::At(parse::timestamp(&end)?),
    };
    let (one_source, many_sources) = match args.sources.as_slice() {
        [] => (None, None),
        [_] => (Some(source_list(&args.sources)?), None),
        _ => (None, Some(source_list(&args.sources)?)),
    };
    let mut policy: Option<String> = None;
    let mut addresses = BTreeMap::new();
    let mut agents = BTreeMap::new();
    let mut vms = Vec::new();
    for m in &args.machines {
        let id = parse::id(m)?;
        let machine: Machine = ctx.get(&id).await?;
        if args.wait {
            no_live_agent(ctx, &id, &machine)?;
        }
        if let Some(agent) = &machine.properties.enforcement_point {
            agents.insert(id.clone(), agent.clone());
        }
        let Some(p) = machine.properties.jit_policy_id else {
            return Err(CliError::Failed(format!(
                "{id} has no JIT policy; enable it first: ajar policy enable {id}"
            )));
        };
        match &policy {
            Some(q) if *q != p => {
                return Err(usage(format!(
                    "{id} is under {p}, not {q}: request access per policy"
                )));
            }
            _ => policy = Some(p),
        }
        if let Some(a) = machine.properties.addresses.first() {
            addresses.insert(id.clone(), a.to_string());
        }
        let ports = numbers
            .iter()
            .map(|n| InitiatePort {
                number: Port::from(*n),
                protocol: None,
                end_time_utc: match end {
                    End::At(t) => Some(t),
                    End::After(_) => None,
                },
                duration: match end {
                    End::After(d) => Some(d),
                    End::At(_) => None,
                },
                allowed_source_address_prefix: one_source.clone(),
                allowed_source_address_prefixes: many_sources.clone(),
            })
            .collect();
        vms.push(InitiateMachine {
            id: resource_id("machine", &id)?,
            ports,
        });
    }
    let Some(policy) = policy else {
        return Err(usage("name at least one machine"));
    };
    let body = InitiateBody {
        virtual_machines: vms,
        justification: args.reason.clone(),
    };
    let mut answer: Answer<AccessRequest> = ctx.post(&format!("{policy}/initiate"), &body).await?;
    if args.wait {
        answer = wait_open(ctx, &policy, &answer.body, &agents, wait_timeout).await?;
    }
    match ctx.output {
        Output::Json => render::json(&answer.json),
        Output::Table if args.wait => {
            crate::outln!("request {} under {policy}", answer.body.id);
            for line in open_lines(&answer.body, &addresses) {
                crate::outln!("{line}");
            }
        }
        Output::Table => {
            crate::outln!(
                "request {} under {policy}{}",
                answer.body.id,
                answer
                    .body
                    .approval_request_id
                    .as_ref()
                    .map(|a| format!(" (waiting for approval: {a})"))
                    .unwrap_or_default()
            );
            render::table(&port_rows(&answer.body, &addresses), PORT_COLUMNS);
        }
    }
    Ok(())
}

/// Fails when nothing can open `machine`'s ports now (it is `Unsupported`: no agent, an agent
/// that is not connected, or JIT turned off), saying what would fix it.
fn no_live_agent(ctx: &Ctx, id: &str, machine: &Machine) -> CliResult {
    let props = &machine.properties;
    if props.jit_state != JitState::Unsupported {
        return Ok(());
    }
    let reason = props
        .unsupported_reason
        .clone()
        .unwrap_or_else(|| "Unsupported".to_owned());
    // The server's reason names the fix (JIT turned off, or the agent to register or start);
    // the CLI fills in what it knows: the server it talks to, a name for a new agent.
    let reason = reason
        .replace("--server URL", &format!("--server {}", ctx.client.base()))
        .replace(
            "ajar agent add NAME",
            &format!("ajar agent add {}-agent", name_of(id)),
        );
    Err(CliError::Failed(format!(
        "{id} cannot open ports now: {reason}"
    )))
}

/// One line per open port: `port 22 open on vm1 until 2026-05-01 14:05 UTC; connect to
/// 10.1.0.4:22`.
fn open_lines(req: &AccessRequest, addresses: &BTreeMap<String, String>) -> Vec<String> {
    let mut lines = Vec::new();
    for m in &req.virtual_machines {
        for p in &m.ports {
            let until = p.end_time_utc.strftime("%Y-%m-%d %H:%M UTC");
            let connect_to = match (&p.connection_details, addresses.get(&m.id)) {
                (Some(d), _) => format!("; connect to {}:{}", d.address, d.port),
                (None, Some(addr)) => format!("; connect to {addr}:{}", p.number),
                (None, None) => String::new(),
            };
            lines.push(format!(
                "port {} open on {} until {until}{connect_to}",
                p.number,
                name_of(&m.id)
            ));
        }
    }
    lines
}

/// How often `--wait` says it is still waiting.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// What `--wait` is waiting for, as a progress line's start: the approval, or each machine's
/// agent and ports.
fn waiting_for(asked: &AccessRequest, agents: &BTreeMap<String, String>, approved: bool) -> String {
    if let (Some(approval), false) = (&asked.approval_request_id, approved) {
        return format!("waiting for approval of {}", name_of(approval));
    }
    let parts: Vec<String> = asked
        .virtual_machines
        .iter()
        .map(|m| {
            let ports: Vec<String> = m.ports.iter().map(|p| p.number.to_string()).collect();
            let agent = agents
                .get(&m.id)
                .map_or_else(|| "the agent".to_owned(), |a| format!("agent {a}"));
            format!(
                "{agent} to open port {} on {}",
                ports.join("+"),
                name_of(&m.id)
            )
        })
        .collect();
    format!("waiting for {}", parts.join(", "))
}

/// Whether the approval request of a network request ended without opening anything.
fn ended_unopened(state: RequestState) -> bool {
    use RequestState::*;
    matches!(
        state,
        Denied | Canceled | Timeout | Failed | Revoked | Expired
    )
}

/// Polls the request until every port was reported open by its agent (or closed, or the
/// approval was refused); answers the request as last read.
async fn wait_open(
    ctx: &Ctx,
    policy: &str,
    asked: &AccessRequest,
    agents: &BTreeMap<String, String>,
    limit: Duration,
) -> CliResult<Answer<AccessRequest>> {
    let id = &asked.id;
    let started = tokio::time::Instant::now();
    let deadline = started + limit;
    let mut next_progress = started + PROGRESS_EVERY;
    let mut approved = asked.approval_request_id.is_none();
    loop {
        if let Some(approval) = &asked.approval_request_id {
            let a: JitRequest = ctx.get(approval).await?;
            let state = a.properties.jit_request_state;
            if ended_unopened(state) {
                return Err(CliError::Failed(format!(
                    "the request ended {state} before it opened"
                )));
            }
            approved = state != RequestState::Pending;
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
            let current = Answer::<AccessRequest>::read(current.body)?;
            let ports: Vec<&AccessRequestPort> = current
                .body
                .virtual_machines
                .iter()
                .flat_map(|m| &m.ports)
                .collect();
            if let Some(closed) = ports.iter().find(|p| p.status != PortState::Initiated) {
                return Err(CliError::Failed(format!(
                    "port {} closed before it opened: {}",
                    closed.number, closed.status_reason
                )));
            }
            if !ports.is_empty() && ports.iter().all(|p| p.open_since.is_some()) {
                return Ok(current);
            }
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Err(CliError::Failed(format!(
                "request {id} was not reported open within {} s ({}; is the machine's agent running?)",
                limit.as_secs(),
                waiting_for(asked, agents, approved),
            )));
        }
        if now >= next_progress {
            next_progress += PROGRESS_EVERY;
            let line = format!(
                "ajar: {} … {} s",
                waiting_for(asked, agents, approved),
                (now - started).as_secs()
            );
            let _ = std::io::Write::write_fmt(&mut std::io::stderr(), format_args!("{line}\n"));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The policy and id of an access request given as `POLICY ID`, or as one argument: the
/// request's path (`POLICY/requests/ID`), its approval request's id (`…/jitRequests/NAME`, the
/// same name as the request's id) or its ID alone (looked for in the network requests of the
/// caller's history).
async fn access_request(
    ctx: &Ctx,
    first: &str,
    second: Option<&str>,
) -> CliResult<(String, String)> {
    let bad = |what: &str| {
        usage(format!(
            "{what:?} is not an access request; give POLICY ID, POLICY/requests/ID, …/jitRequests/NAME or the ID alone"
        ))
    };
    if let Some(id) = second {
        let policy = parse::id(first)?;
        let id = id.trim().trim_end_matches('/');
        let id = if id.contains("/requests/") || id.contains("/jitRequests/") {
            name_of(id)
        } else {
            id
        };
        if id.is_empty() || id.contains('/') || id.contains(char::is_whitespace) {
            return Err(bad(id));
        }
        return Ok((policy, id.to_owned()));
    }
    let first = first.trim().trim_end_matches('/');
    if let Some((policy, id)) = first.split_once("/requests/") {
        if id.is_empty() || id.contains('/') {
            return Err(bad(first));
        }
        return Ok((parse::id(policy)?, id.to_owned()));
    }
    if first.contains("/jitRequests/") {
        let approval: JitRequest = ctx.get(&parse::id(first)?).await?;
        let Some(policy) = approval.properties.network_access_policy_id else {
            return Err(CliError::Failed(format!(
                "{first} is a role activation, not network access: see `ajar request show {first}`"
            )));
        };
        return Ok((policy, name_of(first).to_owned()));
    }
    if first.starts_with('/') || first.is_empty() || first.contains(char::is_whitespace) {
        return Err(bad(first));
    }
    let found = ctx
        .find::<HistoryEntry>("/api/v1/history?kind=network", 20, |h| {
            name_of(&h.id) == first
        })
        .await?;
    match found {
        Some(h) => Ok((h.target, first.to_owned())),
        None => Err(CliError::Failed(format!(
            "no access request {first:?} in the history you may read; give the policy too: ajar access show POLICY {first}"
        ))),
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
            let list: Answer<List<AccessRequest>> =
                ctx.fetch(&format!("{base}/requests{q}")).await?;
            ctx.list(&list, REQUEST_COLUMNS);
        }
        AccessCmd::Show { first, request } => {
            let (policy, request) = access_request(ctx, &first, request.as_deref()).await?;
            let r = ctx
                .fetch::<AccessRequest>(&format!("{policy}/requests/{request}"))
                .await?;
            ctx.show(&r, REQUEST_FIELDS);
            if ctx.output == Output::Table {
                crate::outln!();
                render::table(&port_rows(&r.body, &BTreeMap::new()), PORT_COLUMNS);
            }
        }
        AccessCmd::Revoke { first, request } => {
            let (policy, request) = access_request(ctx, &first, request.as_deref()).await?;
            let r = ctx
                .post::<AccessRequest, _>(
                    &format!("{policy}/requests/{request}/revoke"),
                    &NoParameters {},
                )
                .await?;
            ctx.done(&r, &format!("request {request} revoked"));
        }
        AccessCmd::Extend {
            request,
            duration,
            reason,
        } => {
            let request = crate::roles::jit_request_id(
                ctx,
                &request,
                crate::roles::NameLookup::InboxThenHistory,
            )
            .await?;
            group_of(&request)?;
            let duration = AccessDuration::parse(&parse::duration(&duration)?)
                .map_err(|e| refused("--duration", e))?;
            let body = ExtendBody {
                duration,
                justification: reason,
            };
            let r = ctx
                .post::<JitRequest, _>(&format!("{request}/extend"), &body)
                .await?;
            ctx.done(
                &r,
                &format!(
                    "extension {} is {}",
                    r.body.id, r.body.properties.jit_request_state
                ),
            );
        }
    }
    Ok(())
}
