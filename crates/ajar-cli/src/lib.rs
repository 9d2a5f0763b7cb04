//! `ajar`'s command-line client: one noun per API resource (`ajar machine list`, `ajar access
//! start`, …), each command one or a few API calls.
//!
//! - Connection: `--url`/`--token` flags, then `AJAR_URL`/`AJAR_TOKEN`, then a profile of the
//!   config file that `ajar login` writes ([`profile`]).
//! - Output: `--output json` prints exactly the API's JSON; `table` (the default) prints aligned
//!   columns with instants in local time ([`render`]).
//! - Exit codes: 0 ok, 1 the server or the network said no, 2 the command line is wrong; every
//!   error is one line ([`CliError`]).

pub mod admin;
pub mod apply;
pub mod network;
pub mod parse;
pub mod profile;
pub mod render;
pub mod roles;
pub mod sso;

use ajar_api::wire::{List, Me};
use ajar_api::{Client, ClientError};
use ajar_core::FieldError;
use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// How answers are printed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned columns, local times.
    #[default]
    Table,
    /// The API's own JSON, for scripts.
    Json,
}

/// The help heading of the connection flags.
pub const CONNECTION_OPTIONS: &str = "Connection options";
/// The help heading of the output flags.
pub const OUTPUT_OPTIONS: &str = "Output options";

/// Where the server is, who is asking and how to print; accepted anywhere after a client
/// command's noun (and, as [`LeadingConn`], before it).
#[derive(Debug, Clone, Default, Args)]
pub struct Conn {
    /// Server URL [env AJAR_URL, or the profile's; default http://127.0.0.1:8600].
    #[arg(long, global = true, help_heading = CONNECTION_OPTIONS)]
    pub url: Option<String>,
    /// API token [env AJAR_TOKEN, or the profile's].
    #[arg(long, global = true, help_heading = CONNECTION_OPTIONS)]
    pub token: Option<String>,
    /// Profile of the config file [env AJAR_PROFILE; default: the file's default].
    #[arg(long, global = true, help_heading = CONNECTION_OPTIONS)]
    pub profile: Option<String>,
    /// Output format: table (aligned columns, local times; the default) or json (the API's
    /// own JSON, for scripts).
    #[arg(long, short = 'o', global = true, value_enum, hide_possible_values = true, value_name = "FORMAT",
          help_heading = OUTPUT_OPTIONS)]
    pub output: Option<Output>,
}

/// The same flags as [`Conn`], given before the subcommand (`ajar -o json machine list`).
/// Flags given after the subcommand win.
#[derive(Debug, Clone, Default, Args)]
pub struct LeadingConn {
    /// Server URL [env AJAR_URL, or the profile's; default http://127.0.0.1:8600].
    #[arg(long = "url", id = "leading_url", value_name = "URL", help_heading = CONNECTION_OPTIONS)]
    pub url: Option<String>,
    /// API token [env AJAR_TOKEN, or the profile's].
    #[arg(long = "token", id = "leading_token", value_name = "TOKEN", help_heading = CONNECTION_OPTIONS)]
    pub token: Option<String>,
    /// Profile of the config file [env AJAR_PROFILE; default: the file's default].
    #[arg(long = "profile", id = "leading_profile", value_name = "PROFILE", help_heading = CONNECTION_OPTIONS)]
    pub profile: Option<String>,
    /// Output format: table (aligned columns, local times; the default) or json (the API's
    /// own JSON, for scripts).
    #[arg(long = "output", short = 'o', id = "leading_output", value_name = "FORMAT", value_enum,
          hide_possible_values = true, help_heading = OUTPUT_OPTIONS)]
    pub output: Option<Output>,
}

impl LeadingConn {
    /// Whether any of the flags was given.
    pub fn is_empty(&self) -> bool {
        self.url.is_none()
            && self.token.is_none()
            && self.profile.is_none()
            && self.output.is_none()
    }
}

impl Conn {
    /// These flags, with those given before the subcommand filling the ones not given here.
    pub fn after(&mut self, leading: &LeadingConn) {
        let LeadingConn {
            url,
            token,
            profile,
            output,
        } = leading.clone();
        self.url = self.url.take().or(url);
        self.token = self.token.take().or(token);
        self.profile = self.profile.take().or(profile);
        self.output = self.output.or(output);
    }
}

/// Why a command failed, and its exit code.
#[derive(Debug)]
pub enum CliError {
    /// The command line is wrong (exit 2).
    Usage(String),
    /// The server, the network or the file system said no (exit 1).
    Failed(String),
    /// The server could not be reached (exit 1); the detail of the failure, to be told with the
    /// URL tried ([`CliError::reaching`]).
    Unreachable(String),
}

impl CliError {
    /// The process exit code.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Failed(_) | CliError::Unreachable(_) => 1,
        }
    }

    /// This error, naming `url` if it is a failure to reach the server there.
    pub fn reaching(self, url: &str) -> CliError {
        match self {
            CliError::Unreachable(detail) => {
                // The innermost cause ("Connection refused (os error 111)") says the most.
                let cause = detail.rsplit(": ").next().unwrap_or(&detail);
                CliError::Failed(format!(
                    "cannot reach the server at {url} ({cause}); check that `ajar serve` runs there, or give another --url (or AJAR_URL)"
                ))
            }
            other => other,
        }
    }

    /// The one-line message.
    pub fn message(&self) -> &str {
        match self {
            CliError::Usage(m) | CliError::Failed(m) | CliError::Unreachable(m) => m,
        }
    }
}

impl From<ClientError> for CliError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Api { status, error } => {
                let at = error
                    .target
                    .as_deref()
                    .map(|t| format!(" (at {t})"))
                    .unwrap_or_default();
                CliError::Failed(format!(
                    "{}: {}{at} [HTTP {status}]",
                    error.code, error.message
                ))
            }
            ClientError::Transport(detail) => CliError::Unreachable(detail),
            other => CliError::Failed(other.to_string()),
        }
    }
}

/// Writes to standard output. When its reader has gone (`ajar … | head -1`), the command
/// ends here, quietly and with exit code 0: nobody is left to read the rest. Any other write
/// failure ends it with exit code 1 and one line on stderr.
pub fn write_out(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_fmt(args) {
        drop(stdout);
        output_failed(&e);
    }
}

/// Ends the process after a failed write to standard output (see [`write_out`]).
pub fn output_failed(e: &std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    let _ = std::io::Write::write_fmt(
        &mut std::io::stderr(),
        format_args!("ajar: cannot write to standard output: {e}\n"),
    );
    std::process::exit(1)
}

/// `print!` through [`write_out`].
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::write_out(format_args!($($arg)*)) };
}

/// `println!` through [`write_out`].
#[macro_export]
macro_rules! outln {
    () => { $crate::write_out(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::write_out(format_args!("{}\n", format_args!($($arg)*))) };
}

/// Result of a command.
pub type CliResult<T = ()> = Result<T, CliError>;

/// A usage error.
pub fn usage(m: impl Into<String>) -> CliError {
    CliError::Usage(m.into())
}

/// A client for `url`, trusting only the CA in `$AJAR_CA_CERT` when that is set (a server
/// with a certificate from a private CA), else the system's roots.
pub fn client(url: String, token: Option<String>) -> CliResult<Client> {
    let ca = match std::env::var_os("AJAR_CA_CERT").filter(|v| !v.is_empty()) {
        Some(path) => Some(std::fs::read(&path).map_err(|e| {
            CliError::Failed(format!(
                "AJAR_CA_CERT: cannot read {}: {e}",
                std::path::Path::new(&path).display()
            ))
        })?),
        None => None,
    };
    let http = ajar_api::client::http_client(ca.as_deref())
        .map_err(|e| CliError::Failed(format!("AJAR_CA_CERT: {e}")))?;
    Ok(Client::with_http(url, token, http))
}

/// An answer of the API: the JSON exactly as the server sent it and the same answer read into
/// its wire type. `--output json` prints `json`, so scripts see the server's own fields even
/// where the wire type leaves some out; tables and messages use `body`.
#[derive(Debug, Clone)]
pub struct Answer<T> {
    /// The JSON as received (kept generic: it is what `--output json` prints).
    pub json: Value,
    /// The answer as its wire type.
    pub body: T,
}

impl<T: DeserializeOwned> Answer<T> {
    /// Reads `json` into `T`, keeping `json` as it is.
    pub fn read(json: Value) -> CliResult<Self> {
        let body = T::deserialize(&json)
            .map_err(|e| CliError::from(ClientError::Decode(e.to_string())))?;
        Ok(Answer { json, body })
    }
}

/// The body of actions that take no parameters: `{}`.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct NoParameters {}

/// A value given on the command line that the API would refuse, caught before sending: exit
/// code 1, as when the server refuses it, naming the option and the reason.
pub fn refused(option: &str, e: FieldError) -> CliError {
    CliError::Failed(format!("{option}: {}", e.message))
}

/// A connected client and the output format.
pub struct Ctx {
    /// The API client.
    pub client: Client,
    /// How to print.
    pub output: Output,
}

impl Ctx {
    /// Resolves the connection (flags, environment, profile) into a client.
    pub async fn connect(conn: &Conn) -> CliResult<Ctx> {
        let resolved = profile::resolve(conn)?;
        let url = resolved.url.clone();
        let resolved = sso::renewed(resolved).await.map_err(|e| e.reaching(&url))?;
        Ok(Ctx {
            client: client(resolved.url, resolved.token)?,
            output: conn.output.unwrap_or_default(),
        })
    }

    /// Runs `command` with this context; a failure to reach the server names its URL.
    pub async fn run(&self, command: impl std::future::Future<Output = CliResult>) -> CliResult {
        command.await.map_err(|e| e.reaching(self.client.base()))
    }

    /// `GET path`, read into `T` (for answers that are used, not printed).
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> CliResult<T> {
        Ok(self.client.get::<T>(&api(path)).await?)
    }

    /// `GET path`, kept as sent for printing.
    pub async fn fetch<T: DeserializeOwned>(&self, path: &str) -> CliResult<Answer<T>> {
        Answer::read(self.client.get::<Value>(&api(path)).await?)
    }

    /// `GET path` of a list, following `nextLink` to the last page; its JSON is
    /// `{"value": [every item as sent]}`.
    pub async fn fetch_pages<T: DeserializeOwned>(&self, path: &str) -> CliResult<Answer<List<T>>> {
        let all: Vec<Value> = self.client.get_all(&api(path), 10_000).await?;
        Answer::read(serde_json::json!({ "value": all }))
    }

    /// Every item of the list `what` (e.g. `machines?state=Configured`) at `scope`, or, without
    /// one, in every subscription the caller may read (`GET /api/v1/subscriptions`), each list
    /// followed to its last page. Subscriptions where the caller may read other things but not
    /// these are skipped.
    pub async fn fetch_scoped<T: DeserializeOwned>(
        &self,
        scope: Option<&str>,
        what: &str,
    ) -> CliResult<Answer<List<T>>> {
        if let Some(scope) = scope {
            let scope = parse::id(scope)?;
            return self.fetch_pages(&format!("{scope}/{what}")).await;
        }
        let subscriptions: Vec<String> =
            self.client.get_all("/api/v1/subscriptions", 10_000).await?;
        let mut all: Vec<Value> = Vec::new();
        for sub in subscriptions {
            match self
                .client
                .get_all::<Value>(&api(&format!("{sub}/{what}")), 10_000)
                .await
            {
                Ok(items) => all.extend(items),
                Err(e) if e.status() == Some(403) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Answer::read(serde_json::json!({ "value": all }))
    }

    /// The first item of the list at `path`, read a page at a time, that `wanted` picks (at
    /// most `max_pages` pages are read).
    pub async fn find<T: DeserializeOwned>(
        &self,
        path: &str,
        max_pages: usize,
        wanted: impl Fn(&T) -> bool,
    ) -> CliResult<Option<T>> {
        let mut next = Some(api(path));
        let mut pages = 0;
        while let Some(p) = next.take() {
            let page: List<T> = self.client.get(&p).await?;
            if let Some(found) = page.value.into_iter().find(|item| wanted(item)) {
                return Ok(Some(found));
            }
            pages += 1;
            if pages < max_pages {
                next = page.next_link;
            }
        }
        Ok(None)
    }

    /// Every item of the list at `path` (following `nextLink`, at most `max_pages` pages) that
    /// `wanted` keeps.
    pub async fn find_all<T: DeserializeOwned>(
        &self,
        path: &str,
        max_pages: usize,
        wanted: impl Fn(&T) -> bool,
    ) -> CliResult<Vec<T>> {
        let mut found = Vec::new();
        let mut next = Some(api(path));
        let mut pages = 0;
        while let Some(p) = next.take() {
            let page: List<T> = self.client.get(&p).await?;
            found.extend(page.value.into_iter().filter(|item| wanted(item)));
            pages += 1;
            if pages < max_pages {
                next = page.next_link;
            }
        }
        Ok(found)
    }

    /// `PUT path` with `body`.
    pub async fn put<T: DeserializeOwned, B: Serialize>(
        &self,
        path: &str,
        body: &B,
    ) -> CliResult<Answer<T>> {
        Answer::read(self.client.put::<Value, B>(&api(path), body).await?)
    }

    /// `POST path` with `body`.
    pub async fn post<T: DeserializeOwned, B: Serialize>(
        &self,
        path: &str,
        body: &B,
    ) -> CliResult<Answer<T>> {
        Answer::read(self.client.post::<Value, B>(&api(path), body).await?)
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> CliResult<()> {
        Ok(self.client.delete(&api(path)).await?)
    }

    /// Prints one object: its JSON as sent, or the given fields as `name  value` lines.
    pub fn show<T>(&self, answer: &Answer<T>, fields: &[render::Column<T>]) {
        match self.output {
            Output::Json => render::json(&answer.json),
            Output::Table => render::fields(&answer.body, fields),
        }
    }

    /// Prints a list answer: its JSON as sent, or a table of `columns`.
    pub fn list<T>(&self, answer: &Answer<List<T>>, columns: &[render::Column<T>]) {
        match self.output {
            Output::Json => render::json(&answer.json),
            Output::Table => render::table(&answer.body.value, columns),
        }
    }

    /// Prints a one-line confirmation in table mode, or the answer's JSON as sent.
    pub fn done<T>(&self, answer: &Answer<T>, line: &str) {
        match self.output {
            Output::Json => render::json(&answer.json),
            Output::Table => outln!("{line}"),
        }
    }

    /// Prints a one-line confirmation of a removal in table mode, or `{}`.
    pub fn removed(&self, line: &str) {
        match self.output {
            Output::Json => render::json(&serde_json::Map::new()),
            Output::Table => outln!("{line}"),
        }
    }
}

/// API paths: resource ids and `/api/v1/...` paths are both accepted.
fn api(path: &str) -> String {
    if path.starts_with("/api/") {
        path.to_owned()
    } else {
        format!("/api/v1{path}")
    }
}

/// The client commands (everything but `serve` and `agent`'s daemon). Each noun takes the
/// connection flags ([`Conn`]) and its own subcommand.
#[derive(Debug, Subcommand)]
#[allow(
    missing_docs,
    reason = "the fields are the connection flags and the noun's subcommand"
)]
pub enum Command {
    /// Save a server URL and token as a profile (in a file only you can read), or sign in
    /// through the server's identity provider (--oidc).
    Login(profile::LoginArgs),
    /// Who the credentials in use sign in as, and their groups.
    Whoami {
        #[command(flatten)]
        conn: Conn,
    },
    /// Machines: add, list, show, remove.
    Machine {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        cmd: network::MachineCmd,
    },
    /// JIT network access policies.
    Policy {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        cmd: network::PolicyCmd,
    },
    /// Network access: request, list, show, revoke, extend.
    Access {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        cmd: network::AccessCmd,
    },
    /// Managed applications: their actions and roles, who may activate them, and activation.
    App {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        cmd: roles::AppCmd,
    },
    /// Requests on the approval engine (role activations, approval-gated network access).
    Request {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        cmd: roles::RequestCmd,
    },
    /// Approve a request that waits for you.
    Approve {
        #[command(flatten)]
        conn: Conn,
        #[command(flatten)]
        args: roles::DecideArgs,
    },
    /// Deny a request that waits for you.
    Deny {
        #[command(flatten)]
        conn: Conn,
        #[command(flatten)]
        args: roles::DecideArgs,
    },
    /// Requests waiting for your decision.
    Inbox {
        #[command(flatten)]
        conn: Conn,
    },
    /// Role definitions (built-in and custom).
    Role {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        cmd: roles::RoleCmd,
    },
    /// Role assignments.
    Assignment {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        cmd: roles::AssignmentCmd,
    },
    /// Local groups.
    Group {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        cmd: roles::GroupCmd,
    },
    /// API tokens.
    Token {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        cmd: admin::TokenCmd,
    },
    /// The activity log: list, export, verify.
    Activity {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        cmd: admin::ActivityCmd,
    },
    /// JIT on or off at a subscription or resource group.
    Settings {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        cmd: admin::SettingsCmd,
    },
    /// Apply a declarative file of machines, policies, applications and role assignments.
    Apply {
        #[command(flatten)]
        conn: Conn,
        #[command(flatten)]
        args: apply::ApplyArgs,
    },
}

impl Command {
    /// The connection flags given after the noun, for commands that connect with them.
    fn conn_mut(&mut self) -> Option<&mut Conn> {
        match self {
            Command::Login(_) => None,
            Command::Whoami { conn }
            | Command::Machine { conn, .. }
            | Command::Policy { conn, .. }
            | Command::Access { conn, .. }
            | Command::App { conn, .. }
            | Command::Request { conn, .. }
            | Command::Approve { conn, .. }
            | Command::Deny { conn, .. }
            | Command::Inbox { conn }
            | Command::Role { conn, .. }
            | Command::Assignment { conn, .. }
            | Command::Group { conn, .. }
            | Command::Token { conn, .. }
            | Command::Activity { conn, .. }
            | Command::Settings { conn, .. }
            | Command::Apply { conn, .. } => Some(conn),
        }
    }
}

/// Runs a client command; `leading` are the connection flags given before it.
pub async fn run(mut cmd: Command, leading: &LeadingConn) -> CliResult {
    let conn = match cmd.conn_mut() {
        Some(conn) => {
            conn.after(leading);
            conn.clone()
        }
        None => Conn::default(),
    };
    if let Command::Login(mut args) = cmd {
        args.after(leading)?;
        return profile::login(args).await;
    }
    let ctx = Ctx::connect(&conn).await?;
    ctx.run(dispatch(&ctx, cmd)).await
}

/// Runs a client command with its connection.
async fn dispatch(ctx: &Ctx, cmd: Command) -> CliResult {
    match cmd {
        Command::Login(args) => profile::login(args).await,
        Command::Whoami { .. } => {
            let me = ctx.fetch::<Me>("/api/v1/me").await?;
            ctx.show(
                &me,
                &[
                    ("PRINCIPAL", |m| render::text(&m.principal)),
                    ("GROUPS", |m| render::text(&m.groups.join(", "))),
                    ("SERVER TIME", |m| render::text(&m.server_time)),
                ],
            );
            Ok(())
        }
        Command::Machine { cmd, .. } => network::machine(ctx, cmd).await,
        Command::Policy { cmd, .. } => network::policy(ctx, cmd).await,
        Command::Access { cmd, .. } => network::access(ctx, cmd).await,
        Command::App { cmd, .. } => roles::app(ctx, cmd).await,
        Command::Request { cmd, .. } => roles::request(ctx, cmd).await,
        Command::Approve { args, .. } => roles::decide(ctx, args, true).await,
        Command::Deny { args, .. } => roles::decide(ctx, args, false).await,
        Command::Inbox { .. } => roles::inbox(ctx).await,
        Command::Role { cmd, .. } => roles::role(ctx, cmd).await,
        Command::Assignment { cmd, .. } => roles::assignment(ctx, cmd).await,
        Command::Group { cmd, .. } => roles::group(ctx, cmd).await,
        Command::Token { cmd, .. } => admin::token(ctx, cmd).await,
        Command::Activity { cmd, .. } => admin::activity(ctx, cmd).await,
        Command::Settings { cmd, .. } => admin::settings(ctx, cmd).await,
        Command::Apply { args, .. } => apply::apply(ctx, args).await,
    }
}
