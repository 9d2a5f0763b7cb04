//! `ajar`: the single binary. `ajar serve` runs the control plane, `ajar agent` enforces grants,
//! and every other subcommand is the command-line client (`ajar_cli`).

mod config;
mod sd_notify;

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Just-in-time access: closed by default, opened on request, closed on time.
#[derive(Debug, Parser)]
#[command(name = "ajar", version, about)]
struct Cli {
    /// Connection and output flags of the client commands, also accepted after the
    /// subcommand (where they win).
    #[command(flatten)]
    leading: ajar_cli::LeadingConn,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the control plane (REST API and scheduler).
    Serve(config::ServeArgs),
    /// Without a subcommand: enforce grants in nftables on this host or gateway (needs
    /// CAP_NET_ADMIN). With one: register, list, show or remove agents.
    Agent(AgentArgs),
    #[command(flatten)]
    Client(ajar_cli::Command),
    /// Print a shell completion script.
    Completions {
        /// bash, zsh or fish.
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Write man pages (ajar.1 and one per subcommand) into a directory.
    Man {
        /// The directory.
        #[arg(long, default_value = ".")]
        dir: std::path::PathBuf,
    },
}

/// Shells with completion scripts.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Shell {
    /// Bash.
    Bash,
    /// Zsh.
    Zsh,
    /// Fish.
    Fish,
}

/// Flags of `ajar agent`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
struct AgentArgs {
    #[command(subcommand)]
    manage: Option<ajar_cli::admin::AgentCmd>,
    /// Control plane URL, e.g. http://10.0.0.1:8600; several replicas' separated by commas
    /// (the agent moves to the next when one fails).
    #[arg(long, env = "AJAR_SERVER", required_unless_present = "uninstall")]
    server: Option<String>,
    /// The agent token from `POST /api/v1/agents` (visible to other users in the process list;
    /// prefer --token-file).
    #[arg(
        long,
        env = "AJAR_AGENT_TOKEN",
        hide_env_values = true,
        required_unless_present_any = ["uninstall", "token_file"],
        conflicts_with = "token_file"
    )]
    token: Option<String>,
    /// A file holding the agent token (as `ajar agent add --token-file` writes it).
    #[arg(long, env = "AJAR_AGENT_TOKEN_FILE")]
    token_file: Option<std::path::PathBuf>,
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
    /// PEM file of the CA that signed the server's certificate (for a private CA); the agent
    /// then trusts only it. Without it, the system's roots.
    #[arg(long, env = "AJAR_CA_CERT")]
    ca_cert: Option<std::path::PathBuf>,
    /// Remove ajar's nftables table and exit.
    #[arg(long)]
    uninstall: bool,
    /// What the agent programs: `nftables` on this host or gateway, or `aws`: EC2 security
    /// groups of ajar's own on the machines' instances (the agent must be registered with
    /// mode aws).
    #[arg(long = "mode", env = "AJAR_AGENT_MODE", value_enum, default_value_t = Enforcement::Nftables)]
    enforcement: Enforcement,
    /// The AWS region (else AWS_REGION, the profile's region, or the instance's).
    #[arg(long, env = "AJAR_AWS_REGION", help_heading = "With --mode aws")]
    region: Option<String>,
    /// The EC2 endpoint, for EC2-compatible clouds and tests (else AWS_ENDPOINT_URL_EC2,
    /// AWS_ENDPOINT_URL, or AWS's endpoint for the region).
    #[arg(long, env = "AJAR_AWS_ENDPOINT", help_heading = "With --mode aws")]
    endpoint: Option<String>,
    /// Register the instances tagged KEY=VALUE (VALUE `*`: any value) as machines in the
    /// agent's inventory scope.
    #[arg(
        long,
        value_name = "KEY=VALUE",
        help_heading = "With --mode aws",
        conflicts_with = "instance"
    )]
    discover_tag: Option<String>,
    /// Register this instance as a machine in the agent's inventory scope (repeat the flag).
    #[arg(long, value_name = "INSTANCE_ID", help_heading = "With --mode aws")]
    instance: Vec<String>,
    /// How often to discover instances again, in seconds.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(10..), help_heading = "With --mode aws")]
    discover_seconds: u64,
    /// How often to read every instance and its security groups again (to reattach ajar's
    /// group and to find protected ports other groups open to everyone), in seconds.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(5..), help_heading = "With --mode aws")]
    rescan_seconds: u64,
    /// The most security groups an interface may have (your account's quota; AWS's default
    /// is 5): ajar's group is not attached to an interface that has this many.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=16), help_heading = "With --mode aws")]
    max_groups_per_interface: u64,
}

/// What `ajar agent` programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Enforcement {
    /// nftables on this host or gateway.
    Nftables,
    /// AWS EC2 security groups.
    Aws,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
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
    let leading = cli.leading;
    let client_command = matches!(
        cli.command,
        Command::Client(_)
            | Command::Agent(AgentArgs {
                manage: Some(_),
                ..
            })
    );
    if !leading.is_empty() && !client_command {
        say(
            "ajar: --url, --token, --profile and --output apply to the client commands, not to serve, agent (the daemon), completions or man (see --help)",
        );
        return ExitCode::from(2);
    }
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve(args).await.map_err(failed),
            Command::Agent(AgentArgs {
                manage: Some(cmd), ..
            }) => ajar_cli::admin::agent(cmd, &leading).await,
            Command::Agent(args) => agent(args).await.map_err(failed),
            Command::Client(cmd) => ajar_cli::run(cmd, &leading).await,
            Command::Completions { shell } => completions(shell),
            Command::Man { dir } => man_pages(&dir).map_err(failed),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            say(&format!("ajar: {}", e.message()));
            ExitCode::from(e.exit_code())
        }
    }
}

/// Prints help or the version as clap does; any other command-line error as one line naming
/// what to fix, with exit code 2.
fn usage_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            ExitCode::SUCCESS
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            ExitCode::from(2)
        }
        _ => {
            say(&format!("ajar: {}", one_line(&e.render().to_string())));
            ExitCode::from(2)
        }
    }
}

/// clap's error text without its usage block and line breaks, its suggestions ("a similar
/// argument exists: '--reason'") kept as "did you mean '--reason'?".
fn one_line(text: &str) -> String {
    let body = text.split("\n\nUsage:").next().unwrap_or(text);
    let body = body
        .split("\n\nFor more information")
        .next()
        .unwrap_or(body);
    let mut words: Vec<&str> = Vec::new();
    let mut tips: Vec<String> = Vec::new();
    for line in body.lines() {
        match line.trim_start().strip_prefix("tip:") {
            Some(tip) => tips.push(suggestion(tip.trim())),
            None => words.extend(line.split_whitespace()),
        }
    }
    let joined = words.join(" ");
    let joined = joined.strip_prefix("error: ").unwrap_or(&joined);
    let tips: String = tips.iter().map(|t| format!("; {t}")).collect();
    format!("{joined}{tips} (see --help)")
}

/// One of clap's tips, as a question when it names what was probably meant.
fn suggestion(tip: &str) -> String {
    let similar = [
        "a similar argument exists: ",
        "some similar arguments exist: ",
        "a similar subcommand exists: ",
        "some similar subcommands exist: ",
        "a similar value exists: ",
        "some similar values exist: ",
    ];
    similar
        .iter()
        .find_map(|p| tip.strip_prefix(p))
        .map(|names| format!("did you mean {names}?"))
        .unwrap_or_else(|| tip.to_owned())
}

/// An operational failure (exit 1) from an error chain.
fn failed(e: anyhow::Error) -> ajar_cli::CliError {
    ajar_cli::CliError::Failed(format!("{e:#}"))
}

/// Prints the completion script for `shell`. A reader that stops early (`| head -1`) ends it
/// quietly with exit code 0.
fn completions(shell: Shell) -> Result<(), ajar_cli::CliError> {
    use clap::CommandFactory;
    use std::io::Write;
    let mut cmd = Cli::command();
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    // Generated into memory first: clap_complete panics when its writer fails.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "ajar", &mut script);
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(&script).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(ajar_cli::CliError::Failed(format!(
            "cannot write to standard output: {e}"
        ))),
    }
}

/// Writes `ajar.1` and a page per subcommand (`ajar-machine-list.1`, …) into `dir`.
fn man_pages(dir: &std::path::Path) -> anyhow::Result<()> {
    use clap::CommandFactory;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    fn write(cmd: &clap::Command, name: &str, dir: &std::path::Path) -> anyhow::Result<usize> {
        let cmd = cmd.clone().name(name.to_owned());
        let mut out = Vec::new();
        clap_mangen::Man::new(cmd.clone()).render(&mut out)?;
        let path = dir.join(format!("{name}.1"));
        std::fs::write(&path, out).with_context(|| format!("cannot write {}", path.display()))?;
        let mut n = 1;
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            n += write(sub, &format!("{name}-{}", sub.get_name()), dir)?;
        }
        Ok(n)
    }
    let n = write(&Cli::command(), "ajar", dir)?;
    say(&format!("ajar: wrote {n} man pages to {}", dir.display()));
    Ok(())
}

/// Writes `text` to a new file at `path` that only this user may read or write: whatever was
/// there (a file, a link) is removed first, and the file is created, never opened.
fn write_secret(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

async fn serve(args: config::ServeArgs) -> anyhow::Result<()> {
    use std::io::Write;
    let cfg = config::ServeConfig::resolve(args)?;
    init_logs(&cfg.log, cfg.log_format);
    let (store, data, place) = match &cfg.database_url {
        Some(url) => {
            let store = ajar_store::Store::open_postgres(url)
                .await
                .context("cannot open the PostgreSQL database")?;
            let place = redacted(url);
            (store, format!("the PostgreSQL database {place}"), place)
        }
        None => {
            let dir = std::path::absolute(&cfg.data_dir).unwrap_or_else(|_| cfg.data_dir.clone());
            let db = dir.join("ajar.db");
            if cfg.mint_owner_token.is_some() && !db.exists() {
                anyhow::bail!(
                    "--mint-owner-token: there is no database at {}; give the --data-dir (or --database-url) that `ajar serve` uses",
                    db.display()
                );
            }
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create data directory {}", dir.display()))?;
            let store = ajar_store::Store::open_sqlite(&db)
                .await
                .with_context(|| format!("cannot open the database {}", db.display()))?;
            (
                store,
                format!("{} (SQLite database {})", dir.display(), db.display()),
                db.display().to_string(),
            )
        }
    };
    say(&format!("ajar: data in {data}"));
    if let Some(principal) = &cfg.mint_owner_token {
        let state =
            ajar_server::AppState::new(store, std::sync::Arc::new(ajar_server::clock::SystemClock));
        let minted = ajar_server::bootstrap::mint_owner_token(&state, principal)
            .await
            .map_err(|e| anyhow::anyhow!("cannot mint a token: {}", e.0.message))?;
        state.store.close().await;
        let Some(minted) = minted else {
            anyhow::bail!(
                "--mint-owner-token: {data} was never started by `ajar serve`; give the --data-dir (or --database-url) that `ajar serve` uses"
            );
        };
        match &minted.assignment {
            Some(a) => say(&format!(
                "ajar: {principal} is now Owner at / (role assignment {a}); new token {} (recorded in the activity log):",
                minted.id
            )),
            None => say(&format!(
                "ajar: new token {} for {principal}, Owner at / (recorded in the activity log):",
                minted.id
            )),
        }
        let _ = writeln!(std::io::stdout(), "{}", minted.token);
        return Ok(());
    }
    if !cfg.webhook_allow_networks.is_empty() {
        let networks: Vec<String> = cfg
            .webhook_allow_networks
            .iter()
            .map(ToString::to_string)
            .collect();
        say(&format!(
            "ajar: webhooks may also reach {}",
            networks.join(", ")
        ));
    }
    let mut notifier = ajar_server::notify::Notifier::new()
        .with_webhook_networks(cfg.webhook_allow_networks.clone());
    if let Some(smtp) = &cfg.smtp {
        notifier = notifier.with_smtp(smtp).map_err(|e| anyhow::anyhow!(e))?;
    }
    let providers = ajar_oidc::Providers::new(cfg.oidc.clone()).map_err(|e| anyhow::anyhow!(e))?;
    for p in providers.list() {
        say(&format!(
            "ajar: trusting identity provider {}",
            p.config().issuer
        ));
    }
    if cfg.max_live_grants == 0 {
        say("ajar: no limit on the grants one principal may hold (--max-live-grants 0)");
    }
    if cfg.accept_unenforced {
        say(
            "ajar: accepting requests on machines no live agent guards (--accept-unenforced): \
             their grants must be enforced by something else",
        );
    }
    let state =
        ajar_server::AppState::new(store, std::sync::Arc::new(ajar_server::clock::SystemClock))
            .with_notifier(notifier)
            .with_oidc(providers)
            .with_live_grant_limit(cfg.max_live_grants)
            .with_accept_unenforced(cfg.accept_unenforced);
    // Fetch the providers' keys now, so the first sign-in does not wait; failures are logged
    // and retried on first use.
    let oidc = state.oidc.clone();
    tokio::spawn(async move { oidc.warm_up().await });
    if let Some(token) = ajar_server::bootstrap::bootstrap(&state)
        .await
        .map_err(|e| anyhow::anyhow!("bootstrap failed: {}", e.0.message))?
    {
        let token_at = match &cfg.bootstrap_token_file {
            Some(file) => {
                write_secret(file, &format!("{token}\n")).with_context(|| {
                    format!(
                        "cannot write the bootstrap token to {}; mint another with ajar serve --mint-owner-token admin",
                        file.display()
                    )
                })?;
                format!("is in {} (readable by this user only)", file.display())
            }
            None => "(printed once, below)".to_owned(),
        };
        say(&format!(
            "ajar: no store at {place} yet: started a new, empty one, and its admin token {token_at}; \
             to use an existing store instead, stop and give its --data-dir or --database-url"
        ));
        if cfg.bootstrap_token_file.is_none() {
            // On stdout, for scripts; a closed stdout loses the line rather than the server.
            let _ = writeln!(std::io::stdout(), "ajar bootstrap token: {token}");
        }
    }
    let tls = match &cfg.tls {
        Some((cert, key)) => Some(std::sync::Arc::new(
            ajar_server::tls::Tls::new(cert, key).map_err(|e| anyhow::anyhow!(e))?,
        )),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    let shutdown = shutdown_signal()?;
    match tls {
        Some(tls) => {
            reload_on_sighup(tls.clone())?;
            say(&format!("ajar: listening on https://{addr}"));
            sd_notify::notify(&format!("READY=1\nSTATUS=listening on https://{addr}"));
            ajar_server::serve_tls(listener, tls, state.clone(), shutdown).await?;
        }
        None => {
            say(&format!("ajar: listening on http://{addr}"));
            sd_notify::notify(&format!("READY=1\nSTATUS=listening on http://{addr}"));
            ajar_server::serve(listener, state.clone(), shutdown).await?;
        }
    }
    state.store.close().await;
    say("ajar: stopped");
    Ok(())
}

/// A PostgreSQL URL fit to print: without its password and query.
fn redacted(url: &str) -> String {
    let url = url.split('?').next().unwrap_or(url);
    let Some((scheme, rest)) = url.split_once("://") else {
        return "(unreadable URL)".to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let authority = match authority.rsplit_once('@') {
        Some((user, host)) => {
            let user = user.split(':').next().unwrap_or("");
            format!("{user}@{host}")
        }
        None => authority.to_owned(),
    };
    format!("{scheme}://{authority}{path}")
}

/// Reads the TLS certificate and key again on every SIGHUP (a failure keeps the old ones).
fn reload_on_sighup(tls: std::sync::Arc<ajar_server::tls::Tls>) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("cannot install the SIGHUP handler")?;
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                match tls.reload() {
                    Ok(()) => say("ajar: TLS certificate reloaded"),
                    Err(e) => say(&format!("ajar: TLS certificate not reloaded: {e}")),
                }
            }
        });
    }
    Ok(())
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
    if args.uninstall && args.enforcement == Enforcement::Aws {
        anyhow::bail!(
            "--uninstall removes ajar's nftables table; with --mode aws there is none (ajar's security groups stay, and their rules are removed at their end)"
        );
    }
    if args.uninstall {
        firewall
            .uninstall()
            .context("cannot remove ajar's nftables table")?;
        say("ajar: removed nftables table inet ajar");
        return Ok(());
    }
    let token = match (args.token.clone(), &args.token_file) {
        (Some(t), _) => Some(t),
        (None, Some(path)) => Some(read_token_file(path)?),
        (None, None) => None,
    };
    let (Some(server), Some(token)) = (args.server.clone(), token) else {
        anyhow::bail!("--server and --token (or --token-file) are required");
    };
    let ca = match &args.ca_cert {
        Some(path) => {
            Some(std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?)
        }
        None => None,
    };
    let http = ajar_api::client::http_client(ca.as_deref())
        .map_err(|e| anyhow::anyhow!("--ca-cert: {e}"))?;
    let shutdown = shutdown_signal()?;
    let config = ajar_agent::sync::Config {
        server: server.clone(),
        token,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        conntrack: args.conntrack.clone(),
        wait: std::time::Duration::from_secs(args.wait_seconds),
        http,
    };
    if args.enforcement == Enforcement::Aws {
        return aws_agent(&args, config, shutdown).await;
    }
    say(&format!("ajar: agent following {server}"));
    ajar_agent::sync::run(config, Box::new(firewall), shutdown).await;
    say("ajar: agent stopped; the table stays, and its grants expire on their own");
    Ok(())
}

/// `ajar agent --mode aws`: programs EC2 security groups instead of nftables.
async fn aws_agent(
    args: &AgentArgs,
    config: ajar_agent::sync::Config,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    use ajar_aws::{creds, ec2, enforcer};
    let env = creds::Environment::from_process();
    let http = ajar_aws::http_client().map_err(|e| anyhow::anyhow!(e))?;
    let region = match &args.region {
        Some(r) => r.clone(),
        None => creds::region(&env, &http)
            .await
            .map_err(|e| anyhow::anyhow!(e))?,
    };
    let chain = creds::Chain::resolve(&env, http.clone());
    let endpoint = args.endpoint.clone().or_else(|| env.ec2_endpoint());
    let ec2 = std::sync::Arc::new(
        ec2::Ec2::new(http, region, endpoint, chain).map_err(|e| anyhow::anyhow!(e))?,
    );
    say(&format!(
        "ajar: agent following {} and programming AWS security groups in {} at {} (credentials: {})",
        config.server,
        ec2.region(),
        ec2.endpoint(),
        ec2.credentials_origin()
    ));
    let select = match (&args.discover_tag, args.instance.is_empty()) {
        (Some(tag), _) => {
            let Some((key, value)) = tag.split_once('=') else {
                anyhow::bail!("--discover-tag: {tag:?} is not KEY=VALUE");
            };
            Some(ec2::Select::Tag(key.to_owned(), value.to_owned()))
        }
        (None, false) => Some(ec2::Select::Ids(args.instance.clone())),
        (None, true) => None,
    };
    let mut enforcer = enforcer::AwsEnforcer::new(
        ec2.clone(),
        enforcer::Settings {
            max_groups_per_interface: usize::try_from(args.max_groups_per_interface).unwrap_or(5),
            rescan: std::time::Duration::from_secs(args.rescan_seconds),
            version: config.version.clone(),
        },
    );
    // Rules past their end go before anything else, even when the server cannot be reached.
    let removed = enforcer
        .sweep()
        .await
        .map_err(|e| anyhow::anyhow!("cannot read ajar's security groups: {e}"))?;
    say(&format!(
        "ajar: {removed} rule(s) past their end removed from ajar's security groups"
    ));
    let discovery = select.map(|select| {
        let client = ajar_api::Client::with_http(
            config
                .server
                .split(',')
                .next()
                .unwrap_or("")
                .trim()
                .to_owned(),
            Some(config.token.clone()),
            config.http.clone(),
        );
        tokio::spawn(ajar_aws::discover::run(
            ec2.clone(),
            client,
            select,
            std::time::Duration::from_secs(args.discover_seconds),
            std::future::pending(),
        ))
    });
    ajar_agent::sync::run_with(config, enforcer, shutdown).await;
    if let Some(task) = discovery {
        task.abort();
    }
    say("ajar: agent stopped; ajar's rules stay until a running agent removes them at their end");
    Ok(())
}

/// The agent token in `path`: its first line, without surrounding white space.
fn read_token_file(path: &std::path::Path) -> anyhow::Result<String> {
    check_token_file(path)?;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--token-file: cannot read {}", path.display()))?;
    let token = text.lines().next().unwrap_or("").trim();
    if token.is_empty() {
        anyhow::bail!("--token-file: {} holds no token", path.display());
    }
    Ok(token.to_owned())
}

/// Refuses a token file someone else could have put there or changed: a symbolic link, a file
/// owned by neither root nor the user running the agent, or one that others may write or read
/// (the same rules ssh applies to its keys).
fn check_token_file(path: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let shown = path.display();
    let meta = std::fs::symlink_metadata(path)
        .with_context(|| format!("--token-file: cannot read {shown}"))?;
    if meta.file_type().is_symlink() {
        anyhow::bail!("--token-file: {shown} is a symbolic link; give the file itself");
    }
    // The running user, as the kernel sees it.
    let me = std::fs::metadata("/proc/self").map(|m| m.uid()).ok();
    if meta.uid() != 0 && Some(meta.uid()) != me {
        anyhow::bail!(
            "--token-file: {shown} belongs to user {}, neither root nor the user running the agent",
            meta.uid()
        );
    }
    if meta.mode() & 0o026 != 0 {
        anyhow::bail!(
            "--token-file: {shown} may be changed or read by others (mode {:o}); chmod 600 {shown}",
            meta.mode() & 0o777
        );
    }
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
        .with_writer(|| QuietStderr);
    let _ = match format {
        config::LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).try_init(),
        config::LogFormat::Json => logs.json().with_span_list(false).try_init(),
    };
}

/// Standard error for logs, where a closed stream (`ajar serve 2>&1 | head`) drops the lines
/// instead of failing them: the log writer would otherwise report the failure on that same
/// closed stream and take the request with it.
struct QuietStderr;

impl std::io::Write for QuietStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
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

#[cfg(test)]
mod wording_tests {
    use super::*;
    use clap::CommandFactory;

    /// Every command's long help, `ajar` first, each headed by its path.
    fn all_help(cmd: &mut clap::Command, path: &str, out: &mut String) {
        out.push_str(&format!("== {path}\n{}\n", cmd.render_long_help()));
        for sub in cmd.get_subcommands_mut() {
            let name = format!("{path} {}", sub.get_name());
            all_help(sub, &name, out);
        }
    }

    #[test]
    fn no_help_text_speaks_of_how_ajar_is_made() {
        let mut cmd = Cli::command();
        cmd.build();
        let mut text = String::new();
        all_help(&mut cmd, "ajar", &mut text);
        assert!(
            text.contains("== ajar access start"),
            "every subcommand is rendered"
        );
        let found = ajar_testkit::internal_wording(&text);
        assert!(found.is_empty(), "{found:#?}");
    }
}
