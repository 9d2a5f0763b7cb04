//! Tokens, agents, the activity log and JIT settings.

use crate::parse;
use crate::render::Column;
use crate::roles::principal;
use crate::{Answer, CliError, CliResult, Conn, Ctx, Output, refused, render, usage};
use ajar_api::wire::{
    ActivityRecord, ActivityVerification, Agent, AgentCreate, JitSettings, List, Machine,
    MachineBody, MachineProperties, Me, Token, TokenCreate,
};
use ajar_core::agent::{AgentMode, PortRange};
use ajar_core::id::{Name, ResourceId, Scope};
use ajar_core::net::SourcePrefix;
use clap::{Subcommand, ValueEnum};
use std::net::IpAddr;

/// `ajar token ...`.
#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Create a token (for yourself, or for another principal with ajar.tokens/write); the
    /// secret is shown once.
    Create {
        /// Whom it authenticates [default: you].
        #[arg(long)]
        principal: Option<String>,
        /// What it is for.
        #[arg(long)]
        description: Option<String>,
    },
    /// Your tokens (or a principal's, or everyone's with ajar.tokens/read).
    List {
        /// Only this principal's.
        #[arg(long)]
        principal: Option<String>,
    },
    /// Revoke a token.
    Rm {
        /// Its id.
        id: String,
    },
}

/// Runs `ajar token ...`.
pub async fn token(ctx: &Ctx, cmd: TokenCmd) -> CliResult {
    match cmd {
        TokenCmd::Create {
            principal,
            description,
        } => {
            let principal = match principal {
                Some(p) => p,
                None => ctx.get::<Me>("/api/v1/me").await?.principal.to_string(),
            };
            let body = TokenCreate {
                principal: self::principal("--principal", &principal)?,
                description,
            };
            let t: Answer<Token> = ctx.post("/api/v1/tokens", &body).await?;
            match ctx.output {
                Output::Json => render::json(&t.json),
                Output::Table => {
                    crate::outln!("token {} for {principal} (shown only now):", t.body.id);
                    crate::outln!("{}", t.body.token.as_deref().unwrap_or(""));
                }
            }
        }
        TokenCmd::List { principal } => {
            let q = principal
                .map(|p| format!("?principal={p}"))
                .unwrap_or_default();
            let list = ctx.fetch_pages(&format!("/api/v1/tokens{q}")).await?;
            ctx.list(&list, TOKEN_COLUMNS);
        }
        TokenCmd::Rm { id } => {
            ctx.delete(&format!("/api/v1/tokens/{id}")).await?;
            ctx.removed(&format!("token {id} revoked"));
        }
    }
    Ok(())
}

const TOKEN_COLUMNS: &[Column<Token>] = &[
    ("ID", |t| render::text(&t.id)),
    ("PRINCIPAL", |t| render::text(&t.principal)),
    ("DESCRIPTION", |t| render::optional(&t.description)),
    ("CREATED BY", |t| render::text(&t.created_by)),
    ("CREATED", |t| render::text(&t.created_at)),
    ("EXPIRES", |t| render::optional(&t.expires_at)),
];

/// An agent's mode.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Mode {
    /// Guards the machine it runs on.
    Host,
    /// Guards machines behind it, mapping ports.
    Gateway,
    /// Guards AWS EC2 instances through security groups of its own.
    Aws,
}

/// `ajar agent add|list|show|rm` (without a subcommand, `ajar agent` runs an agent).
#[derive(Debug, Subcommand)]
pub enum AgentCmd {
    /// Register an agent; its token is shown once (or written to --token-file). With
    /// --this-host: register this host as a machine too, guarded by the new agent, and print
    /// the command that starts the agent here.
    Add {
        #[allow(missing_docs, reason = "flattened flags carry their own help")]
        #[command(flatten)]
        conn: Conn,
        /// Its name (with --this-host also the machine's) [default with --this-host: this
        /// host's name].
        #[arg(required_unless_present = "this_host")]
        name: Option<String>,
        /// Host, gateway or aws.
        #[arg(long, value_enum, default_value_t = Mode::Host)]
        mode: Mode,
        /// Aws: the resource group where it registers the instances it discovers as machines
        /// it guards, e.g. /subscriptions/prod/resourceGroups/aws-eu-west-1 (needs
        /// ajar.machines/write there).
        #[arg(long, conflicts_with = "this_host")]
        inventory_scope: Option<String>,
        /// Machine it guards (repeatable).
        #[arg(long = "machine", conflicts_with = "this_host")]
        machines: Vec<String>,
        /// Gateway: the address clients connect to.
        #[arg(long)]
        public_address: Option<String>,
        /// Gateway: the mapped-port range, e.g. 40000-40999.
        #[arg(long)]
        mapped_ports: Option<String>,
        /// A network its machines' addresses must lie in, e.g. 10.99.0.0/24 (repeatable): for a
        /// gateway, where it may forward to; for a host, its own addresses.
        #[arg(long = "address-prefix")]
        address_prefixes: Vec<String>,
        /// Register this host as a Linux machine (its name, its addresses) and the agent in host
        /// mode guarding it; writes the token to a file and prints the command to start it.
        #[arg(long)]
        this_host: bool,
        /// With --this-host: the resource group of the machine.
        #[arg(long, requires = "this_host", default_value = DEFAULT_GROUP)]
        resource_group: String,
        /// With --this-host: the machine's address (repeatable) [default: every address of this
        /// host, as `ip address` lists them].
        #[arg(long = "address", requires = "this_host")]
        addresses: Vec<String>,
        /// Write the token to this new file (readable by its owner only) instead of printing
        /// it [default with --this-host: ./ajar-agent-NAME.token].
        #[arg(long)]
        token_file: Option<std::path::PathBuf>,
    },
    /// Registered agents and their health.
    List {
        #[allow(missing_docs, reason = "flattened flags carry their own help")]
        #[command(flatten)]
        conn: Conn,
    },
    /// One agent.
    Show {
        #[allow(missing_docs, reason = "flattened flags carry their own help")]
        #[command(flatten)]
        conn: Conn,
        /// Its id.
        id: String,
    },
    /// Unregister an agent (its token stops working).
    Rm {
        #[allow(missing_docs, reason = "flattened flags carry their own help")]
        #[command(flatten)]
        conn: Conn,
        /// Its id.
        id: String,
    },
}

const AGENT_FIELDS: &[Column<Agent>] = &[
    ("id", |a| render::text(&a.id)),
    ("name", |a| render::text(&a.name)),
    ("mode", |a| render::text(&a.mode)),
    ("machines", |a| render::list(&a.machines)),
    ("public address", |a| render::optional(&a.public_address)),
    ("mapped ports", |a| render::optional(&a.mapped_port_range)),
    ("address prefixes", |a| {
        a.address_prefixes
            .as_deref()
            .map_or_else(|| "-".to_owned(), render::list)
    }),
    ("inventory scope", |a| render::optional(&a.inventory_scope)),
    ("live", |a| render::text(&a.live)),
    ("last seen", |a| render::optional(&a.last_seen)),
    ("version", |a| render::optional(&a.version)),
    ("applied revision", |a| {
        render::optional(&a.applied_revision)
    }),
    ("current revision", |a| render::text(&a.current_revision)),
];

const AGENT_COLUMNS: &[Column<Agent>] = &[
    ("ID", |a| render::text(&a.id)),
    ("NAME", |a| render::text(&a.name)),
    ("MODE", |a| render::text(&a.mode)),
    ("INVENTORY SCOPE", |a| render::optional(&a.inventory_scope)),
    ("LIVE", |a| render::text(&a.live)),
    ("LAST SEEN", |a| render::optional(&a.last_seen)),
    ("MACHINES", |a| render::list(&a.machines)),
];

/// Runs `ajar agent add|list|show|rm`; `leading` are the connection flags given before
/// `agent`.
pub async fn agent(mut cmd: AgentCmd, leading: &crate::LeadingConn) -> CliResult {
    let conn = match &mut cmd {
        AgentCmd::Add { conn, .. }
        | AgentCmd::List { conn }
        | AgentCmd::Show { conn, .. }
        | AgentCmd::Rm { conn, .. } => conn,
    };
    conn.after(leading);
    let url = crate::profile::resolve(conn)?.url;
    manage_agents(cmd).await.map_err(|e| e.reaching(&url))
}

/// Runs `ajar agent add|list|show|rm` once the connection flags are complete.
async fn manage_agents(cmd: AgentCmd) -> CliResult {
    let conn = match &cmd {
        AgentCmd::Add { conn, .. }
        | AgentCmd::List { conn }
        | AgentCmd::Show { conn, .. }
        | AgentCmd::Rm { conn, .. } => conn,
    };
    let ctx = &Ctx::connect(conn).await?;
    match cmd {
        AgentCmd::Add {
            conn: _,
            name,
            mode,
            inventory_scope,
            machines,
            public_address,
            mapped_ports,
            address_prefixes,
            this_host,
            resource_group,
            addresses,
            token_file,
        } => {
            let address_prefixes = if address_prefixes.is_empty() {
                None
            } else {
                Some(
                    address_prefixes
                        .iter()
                        .map(|p| SourcePrefix::parse(p).map_err(|e| refused("--address-prefix", e)))
                        .collect::<CliResult<_>>()?,
                )
            };
            if this_host {
                if !matches!(mode, Mode::Host) {
                    return Err(usage(
                        "--this-host registers an agent in host mode; leave out --mode",
                    ));
                }
                let host = ThisHost {
                    name,
                    resource_group,
                    addresses,
                    address_prefixes,
                    token_file,
                };
                return add_this_host(ctx, host).await;
            }
            let Some(name) = name else {
                return Err(usage("give the agent's name, or --this-host"));
            };
            let machines: Vec<String> = machines
                .iter()
                .map(|m| parse::id(m))
                .collect::<CliResult<_>>()?;
            let token_file = token_file.map(NewTokenFile::check).transpose()?;
            let body = AgentCreate {
                name: Name::parse(&name).map_err(|e| refused("name", e))?,
                mode: match mode {
                    Mode::Host => AgentMode::Host,
                    Mode::Gateway => AgentMode::Gateway,
                    Mode::Aws => AgentMode::Aws,
                },
                machines: machines
                    .iter()
                    .map(|m| ResourceId::parse(m).map_err(|e| refused("--machine", e)))
                    .collect::<CliResult<_>>()?,
                public_address: public_address
                    .map(|a| {
                        a.trim().parse::<IpAddr>().map_err(|_| {
                            CliError::Failed(format!(
                                "--public-address: {a:?} is not an IP address"
                            ))
                        })
                    })
                    .transpose()?,
                mapped_port_range: mapped_ports
                    .map(|r| PortRange::parse(&r).map_err(|e| refused("--mapped-ports", e)))
                    .transpose()?,
                address_prefixes,
                inventory_scope: inventory_scope
                    .map(|s| {
                        Scope::parse(&parse::id(&s)?).map_err(|e| refused("--inventory-scope", e))
                    })
                    .transpose()?,
            };
            let mut a: Answer<Agent> = ctx.post("/api/v1/agents", &body).await?;
            match token_file {
                Some(file) => {
                    let path = file.write(a.body.token.as_deref().unwrap_or(""))?;
                    if let Some(obj) = a.json.as_object_mut() {
                        obj.remove("token");
                    }
                    ctx.done(
                        &a,
                        &format!(
                            "agent {name} registered as {}; its token is in {}",
                            a.body.id,
                            path.display()
                        ),
                    );
                }
                None => match ctx.output {
                    Output::Json => render::json(&a.json),
                    Output::Table => {
                        crate::outln!(
                            "agent {name} registered as {}; its token (shown only now):",
                            a.body.id
                        );
                        crate::outln!("{}", a.body.token.as_deref().unwrap_or(""));
                    }
                },
            }
        }
        AgentCmd::List { .. } => {
            let list = ctx.fetch_pages("/api/v1/agents").await?;
            ctx.list(&list, AGENT_COLUMNS);
        }
        AgentCmd::Show { id, .. } => {
            let a = ctx.fetch::<Agent>(&format!("/api/v1/agents/{id}")).await?;
            ctx.show(&a, AGENT_FIELDS);
        }
        AgentCmd::Rm { id, .. } => {
            ctx.delete(&format!("/api/v1/agents/{id}")).await?;
            ctx.removed(&format!("agent {id} removed"));
        }
    }
    Ok(())
}

/// The resource group `ajar agent add --this-host` puts this host's machine in by default.
pub const DEFAULT_GROUP: &str = "/subscriptions/local/resourceGroups/local";

/// What `ajar agent add --this-host` was given.
struct ThisHost {
    name: Option<String>,
    resource_group: String,
    addresses: Vec<String>,
    address_prefixes: Option<Vec<SourcePrefix>>,
    token_file: Option<std::path::PathBuf>,
}

/// Registers this host as a machine and an agent guarding it, writes the agent's token to a
/// file and prints the command that starts the agent.
async fn add_this_host(ctx: &Ctx, host: ThisHost) -> CliResult {
    let name = match host.name {
        Some(n) => n,
        None => this_host_name()?,
    };
    let name = Name::parse(&name).map_err(|e| refused("name", e))?;
    let group = parse::id(&host.resource_group)?;
    if parse::group_of(&group).ok().as_deref() != Some(group.as_str()) {
        return Err(usage(format!(
            "--resource-group: {group:?} is not a resource group; give /subscriptions/S/resourceGroups/RG"
        )));
    }
    let addresses: Vec<IpAddr> = if host.addresses.is_empty() {
        this_host_addresses()?
    } else {
        host.addresses
            .iter()
            .map(|a| {
                a.trim()
                    .parse::<IpAddr>()
                    .map_err(|_| CliError::Failed(format!("--address: {a:?} is not an IP address")))
            })
            .collect::<CliResult<_>>()?
    };
    let file = NewTokenFile::check(
        host.token_file
            .unwrap_or_else(|| std::path::PathBuf::from(format!("ajar-agent-{name}.token"))),
    )?;
    let machine_id = format!("{group}/machines/{name}");
    let machine = ResourceId::parse(&machine_id).map_err(|e| refused("--resource-group", e))?;
    let shown: Vec<String> = addresses.iter().map(ToString::to_string).collect();
    let body = MachineBody {
        properties: MachineProperties {
            os: ajar_core::machine::Os::Linux,
            addresses,
            labels: Default::default(),
        },
    };
    // Another host of the same name may be registered already: replacing its addresses would
    // point its agent's rules at this host's, so an existing machine is refused, not rewritten.
    match ctx
        .client
        .get::<serde_json::Value>(&crate::api(&machine_id))
        .await
    {
        Err(ajar_api::client::ClientError::Api { status: 404, .. }) => {}
        Ok(_) => {
            return Err(CliError::Failed(format!(
                "machine {machine_id} exists already (another host of this name?); give this host another name (ajar agent add NAME --this-host) or --resource-group"
            )));
        }
        Err(e) => return Err(e.into()),
    }
    let m: Answer<Machine> = ctx.put(&machine_id, &body).await?;
    let body = AgentCreate {
        name: name.clone(),
        mode: AgentMode::Host,
        machines: vec![machine],
        public_address: None,
        mapped_port_range: None,
        address_prefixes: host.address_prefixes,
        inventory_scope: None,
    };
    let mut a: Answer<Agent> = match ctx.post("/api/v1/agents", &body).await {
        Ok(a) => a,
        Err(e) => {
            // The machine was made for this agent: without it, it goes too.
            let _ = ctx.delete(&machine_id).await;
            return Err(e);
        }
    };
    let path = file.write(a.body.token.as_deref().unwrap_or(""))?;
    if let Some(obj) = a.json.as_object_mut() {
        obj.remove("token");
    }
    let command = format!(
        "ajar agent --server {} --token-file {}",
        ctx.client.base(),
        path.display()
    );
    match ctx.output {
        Output::Json => render::json(&serde_json::json!({
            "machine": m.json,
            "agent": a.json,
            "tokenFile": path.display().to_string(),
            "command": command,
        })),
        Output::Table => {
            crate::outln!("machine {machine_id} saved (linux, {})", shown.join(", "));
            crate::outln!(
                "agent {name} registered as {}, guarding it; its token is in {}",
                a.body.id,
                path.display()
            );
            crate::outln!("start the agent on this host, as root:");
            crate::outln!("  {command}");
        }
    }
    Ok(())
}

/// This host's name as a resource name: its first label, with characters a name cannot hold
/// replaced by `-`.
fn this_host_name() -> CliResult<String> {
    let raw = ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    let name = host_name_of(&raw);
    if name.is_empty() {
        return Err(usage(
            "cannot tell this host's name; give the agent's name after `add`",
        ));
    }
    Ok(name)
}

/// A host name as a resource name (see [`this_host_name`]).
fn host_name_of(raw: &str) -> String {
    let first = raw.trim().split('.').next().unwrap_or("");
    let name: String = first
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_') {
                c
            } else {
                '-'
            }
        })
        .collect();
    name.trim_start_matches(|c: char| !c.is_ascii_alphanumeric())
        .chars()
        .take(64)
        .collect()
}

/// This host's addresses, from `ip -j address`.
fn this_host_addresses() -> CliResult<Vec<IpAddr>> {
    let out = std::process::Command::new("ip")
        .args(["-j", "address", "show"])
        .output()
        .map_err(|e| {
            CliError::Failed(format!(
                "cannot list this host's addresses with `ip -j address` ({e}); give them with --address"
            ))
        })?;
    let addresses = if out.status.success() {
        addresses_of(&String::from_utf8_lossy(&out.stdout))
    } else {
        Vec::new()
    };
    if addresses.is_empty() {
        return Err(CliError::Failed(
            "found no address of this host with `ip -j address`; give them with --address"
                .to_owned(),
        ));
    }
    Ok(addresses)
}

/// The addresses in `ip -j address` output: those of interfaces that are up, link-local ones
/// left out, the loopback addresses last.
fn addresses_of(json: &str) -> Vec<IpAddr> {
    let Ok(serde_json::Value::Array(links)) = serde_json::from_str::<serde_json::Value>(json)
    else {
        return Vec::new();
    };
    let mut found: Vec<IpAddr> = links
        .iter()
        .filter(|l| {
            l["flags"]
                .as_array()
                .is_some_and(|f| f.iter().any(|x| x == "UP"))
        })
        .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
        .filter(|a| a["scope"] != "link")
        .filter_map(|a| a["local"].as_str().and_then(|s| s.parse::<IpAddr>().ok()))
        .collect();
    found.sort_by_key(IpAddr::is_loopback);
    found.dedup();
    found
}

/// A token file that does not exist yet, checked before anything is registered.
struct NewTokenFile(std::path::PathBuf);

impl NewTokenFile {
    /// Refuses a path that exists already.
    fn check(path: std::path::PathBuf) -> CliResult<NewTokenFile> {
        if path.exists() {
            return Err(CliError::Failed(format!(
                "--token-file: {} exists already; remove it or give another path",
                path.display()
            )));
        }
        Ok(NewTokenFile(path))
    }

    /// Writes `token` and a newline to the file, readable by its owner only; answers its
    /// absolute path.
    fn write(self, token: &str) -> CliResult<std::path::PathBuf> {
        use std::io::Write;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let failed = |e: std::io::Error| {
            CliError::Failed(format!(
                "cannot write the agent token to {}: {e}",
                self.0.display()
            ))
        };
        let mut f = options.open(&self.0).map_err(failed)?;
        writeln!(f, "{token}").map_err(failed)?;
        Ok(std::path::absolute(&self.0).unwrap_or(self.0))
    }
}

/// Filters of the activity log.
#[derive(Debug, Clone, clap::Args)]
pub struct ActivityFilter {
    /// Records about this scope or resource and everything beneath it [default: /].
    #[arg(long)]
    pub scope: Option<String>,
    /// Who acted.
    #[arg(long)]
    pub principal: Option<String>,
    /// The action, e.g. ajar.jit/policies/initiate/action.
    #[arg(long)]
    pub action: Option<String>,
    /// Succeeded, Denied or Failed.
    #[arg(long)]
    pub result: Option<String>,
    /// The access request concerned.
    #[arg(long)]
    pub request_id: Option<String>,
    /// At or after (RFC 3339).
    #[arg(long)]
    pub from: Option<String>,
    /// Before (RFC 3339).
    #[arg(long)]
    pub to: Option<String>,
}

impl ActivityFilter {
    fn query(&self) -> CliResult<Vec<(String, String)>> {
        let mut q = Vec::new();
        for (k, v) in [
            ("scope", &self.scope),
            ("principal", &self.principal),
            ("action", &self.action),
            ("result", &self.result),
            ("requestId", &self.request_id),
        ] {
            if let Some(v) = v {
                q.push((k.to_owned(), v.clone()));
            }
        }
        for (k, v) in [("from", &self.from), ("to", &self.to)] {
            if let Some(v) = v {
                q.push((k.to_owned(), parse::instant(v)?));
            }
        }
        Ok(q)
    }
}

fn encode(q: &[(String, String)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.~/:".contains(&b) {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect::<String>()
    };
    q.iter()
        .map(|(k, v)| format!("{k}={}", enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// `ajar activity ...`.
#[derive(Debug, Subcommand)]
pub enum ActivityCmd {
    /// Records, newest first.
    List {
        #[allow(missing_docs, reason = "flattened flags carry their own help")]
        #[command(flatten)]
        filter: ActivityFilter,
        /// How many (1-1000).
        #[arg(long, default_value_t = 50)]
        top: u32,
    },
    /// Every selected record, as the server streams it.
    Export {
        #[allow(missing_docs, reason = "flattened flags carry their own help")]
        #[command(flatten)]
        filter: ActivityFilter,
        /// As CSV (RFC 4180; the only format for now).
        #[arg(long, required = true)]
        csv: bool,
        /// Write to this file instead of standard output.
        #[arg(long)]
        file: Option<String>,
    },
    /// Check the log's hash chain from the first record; exits 1 at the first broken link.
    Verify,
}

/// Runs `ajar activity ...`.
pub async fn activity(ctx: &Ctx, cmd: ActivityCmd) -> CliResult {
    match cmd {
        ActivityCmd::List { filter, top } => {
            let mut q = filter.query()?;
            q.push(("top".into(), top.to_string()));
            let list: Answer<List<ActivityRecord>> = ctx
                .fetch(&format!("/api/v1/activity?{}", encode(&q)))
                .await?;
            ctx.list(
                &list,
                &[
                    ("ID", |r| render::text(&r.id)),
                    ("TIME", |r| render::text(&r.time)),
                    ("PRINCIPAL", |r| render::text(&r.principal)),
                    ("ACTION", |r| render::text(&r.action)),
                    ("RESULT", |r| render::text(&r.result)),
                    ("RESOURCE", |r| render::text(&r.resource_id)),
                ],
            );
        }
        ActivityCmd::Export { filter, csv, file } => {
            if !csv {
                return Err(usage("give --csv"));
            }
            let mut q = filter.query()?;
            q.push(("format".into(), "csv".into()));
            let path = format!("/api/v1/activity?{}", encode(&q));
            match file {
                Some(f) => {
                    let mut out = std::fs::File::create(&f)
                        .map_err(|e| CliError::Failed(format!("cannot create {f}: {e}")))?;
                    let n = ctx.client.download(&path, &mut out).await?;
                    eprintln!("wrote {n} bytes to {f}");
                }
                None => {
                    let mut out = Stdout::default();
                    let done = ctx.client.download(&path, &mut out).await;
                    let _ = std::io::Write::flush(&mut out);
                    if let Some(e) = out.failed {
                        // The reader went away (`| head`) or the output broke: not the server.
                        crate::output_failed(&e);
                    }
                    done?;
                }
            }
        }
        ActivityCmd::Verify => {
            let v: Answer<ActivityVerification> = ctx.fetch("/api/v1/activity/verify").await?;
            let ActivityVerification {
                ok,
                records,
                first_broken_id,
                reason,
                head_hash,
            } = &v.body;
            if *ok {
                ctx.done(
                    &v,
                    &format!("ok: {records} records verify; head {head_hash}"),
                );
            } else {
                if ctx.output == Output::Json {
                    render::json(&v.json);
                }
                return Err(CliError::Failed(format!(
                    "activity record {} is broken: {} ({records} records before it verify)",
                    render::optional(first_broken_id),
                    reason.as_deref().unwrap_or("?"),
                )));
            }
        }
    }
    Ok(())
}

/// Standard output for a download, keeping its write failure apart from the server's.
#[derive(Default)]
struct Stdout {
    failed: Option<std::io::Error>,
}

impl std::io::Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let written = std::io::stdout().write(buf);
        if let Err(e) = &written {
            self.failed = Some(std::io::Error::new(e.kind(), e.to_string()));
        }
        written
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let flushed = std::io::stdout().flush();
        if let Err(e) = &flushed {
            self.failed = Some(std::io::Error::new(e.kind(), e.to_string()));
        }
        flushed
    }
}

/// `ajar settings ...`.
#[derive(Debug, Subcommand)]
pub enum SettingsCmd {
    /// Whether JIT is on at a subscription or resource group.
    Get {
        /// /subscriptions/S or /subscriptions/S/resourceGroups/RG.
        scope: String,
    },
    /// Turn JIT on or off at a subscription or resource group.
    Set {
        /// /subscriptions/S or /subscriptions/S/resourceGroups/RG.
        scope: String,
        /// on or off.
        #[arg(long, value_parser = ["on", "off"])]
        jit: String,
    },
}

/// Runs `ajar settings ...`.
pub async fn settings(ctx: &Ctx, cmd: SettingsCmd) -> CliResult {
    match cmd {
        SettingsCmd::Get { scope } => {
            let scope = parse::id(&scope)?;
            let s = ctx
                .fetch::<JitSettings>(&format!("{scope}/jitSettings"))
                .await?;
            ctx.show(&s, &[("jit enabled", |s| render::text(&s.jit_enabled))]);
        }
        SettingsCmd::Set { scope, jit } => {
            let scope = parse::id(&scope)?;
            let body = JitSettings {
                jit_enabled: jit == "on",
            };
            let s = ctx
                .put::<JitSettings, _>(&format!("{scope}/jitSettings"), &body)
                .await?;
            ctx.done(&s, &format!("JIT is {jit} at {scope}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_become_resource_names() {
        assert_eq!(host_name_of("web-1.example.com\n"), "web-1");
        assert_eq!(host_name_of("My Host"), "My-Host");
        assert_eq!(host_name_of("_odd"), "odd");
        assert_eq!(host_name_of(""), "");
    }

    #[test]
    fn this_hosts_addresses_leave_out_link_local_and_down_links_and_put_loopback_last() {
        let json = r#"[
          {"ifname":"lo","flags":["LOOPBACK","UP","LOWER_UP"],"addr_info":[
            {"family":"inet","local":"127.0.0.1","scope":"host"},
            {"family":"inet6","local":"::1","scope":"host"}]},
          {"ifname":"eth0","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"addr_info":[
            {"family":"inet","local":"10.0.2.15","scope":"global"},
            {"family":"inet6","local":"fe80::1","scope":"link"},
            {"family":"inet6","local":"fd00::15","scope":"global"}]},
          {"ifname":"eth1","flags":["BROADCAST","MULTICAST"],"addr_info":[
            {"family":"inet","local":"192.168.9.9","scope":"global"}]}
        ]"#;
        let got: Vec<String> = addresses_of(json).iter().map(ToString::to_string).collect();
        assert_eq!(got, ["10.0.2.15", "fd00::15", "127.0.0.1", "::1"]);
        assert!(addresses_of("not json").is_empty());
    }
}
