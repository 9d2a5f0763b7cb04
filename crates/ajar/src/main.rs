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
    init_logs(&cfg.log);
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("cannot create data directory {}", cfg.data_dir.display()))?;
    let db = cfg.data_dir.join("ajar.db");
    let store = ajar_store::Store::open_sqlite(&db)
        .await
        .with_context(|| format!("cannot open the database {}", db.display()))?;
    let state =
        ajar_server::AppState::new(store, std::sync::Arc::new(ajar_server::clock::SystemClock));
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

/// Writes a line to stderr; a closed stderr (the reader went away) is not worth a crash.
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn init_logs(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
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
