//! `ajar`: the single binary. `ajar serve` runs the control plane; later subcommands add the
//! agent and the command-line client.

mod config;

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Just-in-time access: closed by default, opened on request, closed on time.
#[derive(Debug, Parser)]
#[command(name = "ajar", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the control plane (REST API and scheduler).
    Serve(config::ServeArgs),
    /// Enforce grants in nftables on this host or gateway (needs CAP_NET_ADMIN).
    Agent(AgentArgs),
    /// The activity log.
    #[command(subcommand)]
    Activity(ActivityCommand),
}

/// `ajar activity ...`.
#[derive(Debug, Subcommand)]
enum ActivityCommand {
    /// Check the log's hash chain from the first record; exits 1 at the first broken link.
    Verify(Connection),
}

/// Where the server is and who is asking.
#[derive(Debug, clap::Args)]
struct Connection {
    /// Server URL, e.g. http://127.0.0.1:8600.
    #[arg(long, env = "AJAR_URL", default_value = "http://127.0.0.1:8600")]
    url: String,
    /// API token.
    #[arg(long, env = "AJAR_TOKEN", hide_env_values = true)]
    token: String,
}

/// Flags of `ajar agent`.
#[derive(Debug, clap::Args)]
struct AgentArgs {
    /// Control plane URL, e.g. http://10.0.0.1:8600.
    #[arg(long, env = "AJAR_SERVER", required_unless_present = "uninstall")]
    server: Option<String>,
    /// The agent token from `POST /api/v1/agents`.
    #[arg(
        long,
        env = "AJAR_AGENT_TOKEN",
        hide_env_values = true,
        required_unless_present = "uninstall"
    )]
    token: Option<String>,
    /// The nft binary.
    #[arg(long, env = "AJAR_NFT", default_value = "nft")]
    nft: std::path::PathBuf,
    /// The conntrack binary (for policies that cut established connections).
    #[arg(long, env = "AJAR_CONNTRACK", default_value = "conntrack")]
    conntrack: std::path::PathBuf,
    /// Longest long poll, in seconds.
    #[arg(long, default_value_t = 25, value_parser = clap::value_parser!(u64).range(1..=60))]
    wait_seconds: u64,
    /// Log filter.
    #[arg(long, env = "AJAR_LOG", default_value = "info")]
    log: String,
    /// Log line format.
    #[arg(long, env = "AJAR_LOG_FORMAT", value_enum, default_value_t = config::LogFormat::Text)]
    log_format: config::LogFormat,
    /// Remove ajar's nftables table and exit.
    #[arg(long)]
    uninstall: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            say(&format!("ajar: cannot start the async runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve(args).await,
            Command::Agent(args) => agent(args).await,
            Command::Activity(ActivityCommand::Verify(c)) => verify_activity(c).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            say(&format!("ajar: {e:#}"));
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: config::ServeArgs) -> anyhow::Result<()> {
    let cfg = config::ServeConfig::resolve(args)?;
    init_logs(&cfg.log, cfg.log_format);
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("cannot create data directory {}", cfg.data_dir.display()))?;
    let db = cfg.data_dir.join("ajar.db");
    let store = ajar_store::Store::open_sqlite(&db)
        .await
        .with_context(|| format!("cannot open the database {}", db.display()))?;
    let mut notifier = ajar_server::notify::Notifier::new();
    if let Some(smtp) = &cfg.smtp {
        notifier = notifier.with_smtp(smtp).map_err(|e| anyhow::anyhow!(e))?;
    }
    let state =
        ajar_server::AppState::new(store, std::sync::Arc::new(ajar_server::clock::SystemClock))
            .with_notifier(notifier);
    if let Some(token) = ajar_server::bootstrap::bootstrap(&state)
        .await
        .map_err(|e| anyhow::anyhow!("bootstrap failed: {}", e.0.message))?
    {
        println!("ajar bootstrap token: {token}");
    }
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    let shutdown = shutdown_signal()?;
    eprintln!(
        "ajar: listening on http://{addr} (data in {})",
        cfg.data_dir.display()
    );
    ajar_server::serve(listener, state.clone(), shutdown).await?;
    state.store.close().await;
    say("ajar: stopped");
    Ok(())
}

async fn verify_activity(c: Connection) -> anyhow::Result<()> {
    let client = ajar_api::Client::new(c.url, Some(c.token));
    let v = client.verify_activity().await?;
    if v.ok {
        println!("ok: {} records verify; head {}", v.records, v.head_hash);
        Ok(())
    } else {
        anyhow::bail!(
            "activity record {} is broken: {} ({} records before it verify)",
            v.first_broken_id.unwrap_or_default(),
            v.reason.unwrap_or_default(),
            v.records
        )
    }
}

/// Writes a line to stderr; a closed stderr (the reader went away) is not worth a crash.
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

async fn agent(args: AgentArgs) -> anyhow::Result<()> {
    use ajar_agent::firewall::{Firewall, Nft};
    init_logs(&args.log, args.log_format);
    let mut firewall = Nft::new(&args.nft);
    if args.uninstall {
        firewall
            .uninstall()
            .context("cannot remove ajar's nftables table")?;
        say("ajar: removed nftables table inet ajar");
        return Ok(());
    }
    let (Some(server), Some(token)) = (args.server, args.token) else {
        anyhow::bail!("--server and --token are required");
    };
    let shutdown = shutdown_signal()?;
    say(&format!("ajar: agent following {server}"));
    ajar_agent::sync::run(
        ajar_agent::sync::Config {
            server,
            token,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            conntrack: args.conntrack,
            wait: std::time::Duration::from_secs(args.wait_seconds),
        },
        Box::new(firewall),
        shutdown,
    )
    .await;
    say("ajar: agent stopped; the table stays, and its grants expire on their own");
    Ok(())
}

/// Logs to stderr: text (coloured on a terminal) or one JSON object per line, with the fields
/// of the current span (such as a request's `request_id`) under `span`.
fn init_logs(filter: &str, format: config::LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        config::LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).try_init(),
        config::LogFormat::Json => logs.json().with_span_list(false).try_init(),
    };
}

/// Installs the Ctrl-C and SIGTERM handlers now (so a signal that arrives right after the
/// "listening" line is not lost) and returns a future that resolves on either.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot install the SIGTERM handler")?;
    #[cfg(unix)]
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("cannot install the SIGINT handler")?;
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
    })
}
