//! Tokens, agents, the activity log and JIT settings.

use crate::parse;
use crate::render::Column;
use crate::roles::principal;
use crate::{Answer, CliError, CliResult, Conn, Ctx, Output, refused, render, usage};
use ajar_api::wire::{
    ActivityRecord, ActivityVerification, Agent, AgentCreate, JitSettings, List, Me, Token,
    TokenCreate,
};
use ajar_core::agent::{AgentMode, PortRange};
use ajar_core::id::{Name, ResourceId};
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
}

/// `ajar agent add|list|show|rm` (without a subcommand, `ajar agent` runs an agent).
#[derive(Debug, Subcommand)]
pub enum AgentCmd {
    /// Register an agent; its token is shown once.
    Add {
        #[allow(missing_docs, reason = "flattened flags carry their own help")]
        #[command(flatten)]
        conn: Conn,
        /// Its name.
        name: String,
        /// Host or gateway.
        #[arg(long, value_enum, default_value_t = Mode::Host)]
        mode: Mode,
        /// Machine it guards (repeatable).
        #[arg(long = "machine")]
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
            machines,
            public_address,
            mapped_ports,
            address_prefixes,
        } => {
            let machines: Vec<String> = machines
                .iter()
                .map(|m| parse::id(m))
                .collect::<CliResult<_>>()?;
            let body = AgentCreate {
                name: Name::parse(&name).map_err(|e| refused("name", e))?,
                mode: match mode {
                    Mode::Host => AgentMode::Host,
                    Mode::Gateway => AgentMode::Gateway,
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
                address_prefixes: if address_prefixes.is_empty() {
                    None
                } else {
                    Some(
                        address_prefixes
                            .iter()
                            .map(|p| {
                                SourcePrefix::parse(p).map_err(|e| refused("--address-prefix", e))
                            })
                            .collect::<CliResult<_>>()?,
                    )
                },
            };
            let a: Answer<Agent> = ctx.post("/api/v1/agents", &body).await?;
            match ctx.output {
                Output::Json => render::json(&a.json),
                Output::Table => {
                    crate::outln!(
                        "agent {name} registered as {}; its token (shown only now):",
                        a.body.id
                    );
                    crate::outln!("{}", a.body.token.as_deref().unwrap_or(""));
                }
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
