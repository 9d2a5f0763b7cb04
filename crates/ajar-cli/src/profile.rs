//! Named connection profiles in a TOML file only its owner can read, written by `ajar login`.
//!
//! The file is `$AJAR_CLI_CONFIG`, else `$XDG_CONFIG_HOME/ajar/cli.toml`, else
//! `~/.config/ajar/cli.toml`:
//!
//! ```toml
//! default = "prod"
//! [profiles.prod]
//! url = "https://ajar.example.com"
//! token = "ajar_…"
//!
//! [profiles.sso]   # written by `ajar login --oidc`
//! url = "https://ajar.example.com"
//! token = "eyJ…"   # the identity provider's ID token
//! issuer = "https://login.example.com"
//! client_id = "ajar"
//! refresh_token = "…"
//! ```

use crate::{CliError, CliResult, Conn, usage};
use clap::Args;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

/// The server used when nothing names one.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8600";

/// The profiles file.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfilesFile {
    /// The profile used when none is named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// Profiles by name.
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

/// One profile.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Server URL.
    pub url: String,
    /// API token, or an identity provider's token.
    pub token: String,
    /// The identity provider that issued `token` (`ajar login --oidc`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// The client id signed in with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Renews `token` when it expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

/// Where the profiles file is.
pub fn path() -> CliResult<PathBuf> {
    if let Some(p) = std::env::var_os("AJAR_CLI_CONFIG") {
        return Ok(PathBuf::from(p));
    }
    let base = match std::env::var_os("XDG_CONFIG_HOME") {
        Some(x) if !x.is_empty() => PathBuf::from(x),
        _ => match std::env::var_os("HOME") {
            Some(h) => PathBuf::from(h).join(".config"),
            None => {
                return Err(CliError::Failed(
                    "cannot find the config directory: set HOME or AJAR_CLI_CONFIG".into(),
                ));
            }
        },
    };
    Ok(base.join("ajar").join("cli.toml"))
}

/// Reads the profiles file (empty when it does not exist).
pub fn read() -> CliResult<ProfilesFile> {
    let p = path()?;
    match std::fs::read_to_string(&p) {
        Ok(text) => toml::from_str(&text).map_err(|e| {
            CliError::Failed(format!(
                "{}: {}",
                p.display(),
                e.message().trim_end_matches('\n')
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ProfilesFile::default()),
        Err(e) => Err(CliError::Failed(format!(
            "cannot read {}: {e}",
            p.display()
        ))),
    }
}

/// Writes the profiles file with mode 0600 (through a temporary file and a rename, so a crash
/// never leaves half a file).
pub fn write(file: &ProfilesFile) -> CliResult<PathBuf> {
    let p = path()?;
    let fail = |e: std::io::Error| CliError::Failed(format!("cannot write {}: {e}", p.display()));
    if let Some(dir) = p.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let text = toml::to_string(file).map_err(|e| CliError::Failed(e.to_string()))?;
    let tmp = p.with_extension("toml.tmp");
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(fail)?;
        f.write_all(text.as_bytes()).map_err(fail)?;
        f.sync_all().map_err(fail)?;
    }
    std::fs::rename(&tmp, &p).map_err(fail)?;
    Ok(p)
}

/// A connection resolved from flags, environment and profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Server URL.
    pub url: String,
    /// Token, if any.
    pub token: Option<String>,
    /// The profile the token came from, when it can be renewed there (an identity provider's
    /// token with a refresh token).
    pub renewable: Option<String>,
}

/// An environment variable that is set and not empty.
fn env(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.is_empty())
}

/// Flags first, then `AJAR_URL`/`AJAR_TOKEN`, then the profile (`--profile`, `AJAR_PROFILE`, or
/// the file's default).
pub fn resolve(conn: &Conn) -> CliResult<Resolved> {
    let named = conn.profile.clone().or_else(|| env("AJAR_PROFILE"));
    let url = conn.url.clone().or_else(|| env("AJAR_URL"));
    let token = conn.token.clone().or_else(|| env("AJAR_TOKEN"));
    // The file is read only when something is still missing or a profile is named, so a broken
    // file never stops a fully specified command.
    let file = if named.is_some() || url.is_none() || token.is_none() {
        read()?
    } else {
        ProfilesFile::default()
    };
    let profile = match named.clone().or(file.default.clone()) {
        Some(name) => match file.profiles.get(&name) {
            Some(p) => Some(p.clone()),
            None if named.is_some() => {
                return Err(usage(format!(
                    "no profile named {name:?}; run: ajar login --profile {name} --url URL --token TOKEN"
                )));
            }
            None => None,
        },
        None => None,
    };
    let url = url
        .or_else(|| profile.as_ref().map(|p| p.url.clone()))
        .unwrap_or_else(|| DEFAULT_URL.to_owned());
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(usage(format!("{url:?} is not an http:// or https:// URL")));
    }
    let renewable = match (&token, &profile) {
        (None, Some(p)) if p.refresh_token.is_some() => named.or(file.default),
        _ => None,
    };
    let token = token.or_else(|| profile.map(|p| p.token));
    if token.is_none() {
        return Err(usage(
            "no token: pass --token, set AJAR_TOKEN, or run ajar login",
        ));
    }
    Ok(Resolved {
        url: url.trim_end_matches('/').to_owned(),
        token,
        renewable,
    })
}

/// Flags of `ajar login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Server URL.
    #[arg(long, env = "AJAR_URL", default_value = DEFAULT_URL)]
    pub url: String,
    /// API token [env AJAR_TOKEN; read from standard input when absent].
    #[arg(
        long,
        env = "AJAR_TOKEN",
        hide_env_values = true,
        conflicts_with = "oidc"
    )]
    pub token: Option<String>,
    /// Sign in through the server's identity provider instead (device authorization flow:
    /// open the link shown, enter the code).
    #[arg(long)]
    pub oidc: bool,
    /// With --oidc: which of the server's identity providers (its issuer URL), when it trusts
    /// several.
    #[arg(long, requires = "oidc")]
    pub issuer: Option<String>,
    /// With --oidc: the scopes to ask for.
    #[arg(
        long,
        requires = "oidc",
        default_value = "openid profile email offline_access"
    )]
    pub scope: String,
    /// Profile name.
    #[arg(long, default_value = "default")]
    pub profile: String,
}

impl LoginArgs {
    /// Takes the connection flags given before `login` (`ajar --url URL login`) where no flag
    /// after it set the value (it is then still what the environment or the default gave).
    pub fn after(&mut self, leading: &crate::LeadingConn) -> CliResult {
        if leading.output.is_some() {
            return Err(usage("--output does not apply to login"));
        }
        if let Some(url) = &leading.url
            && self.url == env("AJAR_URL").unwrap_or_else(|| DEFAULT_URL.to_owned())
        {
            self.url = url.clone();
        }
        if let Some(token) = &leading.token
            && self.token == env("AJAR_TOKEN")
        {
            self.token = Some(token.clone());
        }
        if let Some(p) = &leading.profile
            && self.profile == "default"
        {
            self.profile = p.clone();
        }
        Ok(())
    }
}

/// Saves `profile` under `name` and makes it the default; answers the file's path.
pub fn save(name: &str, profile: Profile) -> CliResult<PathBuf> {
    let mut file = read()?;
    file.profiles.insert(name.to_owned(), profile);
    file.default = Some(name.to_owned());
    write(&file)
}

/// Checks the token against the server, then saves the profile and makes it the default.
pub async fn login(args: LoginArgs) -> CliResult {
    if args.oidc {
        return crate::sso::login(args).await;
    }
    let token = match args.token {
        Some(t) => t,
        None => {
            eprint!("token: ");
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .map_err(|e| CliError::Failed(format!("cannot read the token: {e}")))?;
            line.trim().to_owned()
        }
    };
    if token.is_empty() {
        return Err(usage("the token is empty"));
    }
    let url = args.url.trim_end_matches('/').to_owned();
    let client = crate::client(url.clone(), Some(token.clone()))?;
    client
        .get::<serde::de::IgnoredAny>("/api/v1/tokens")
        .await
        .map_err(|e| match CliError::from(e).reaching(&url) {
            CliError::Failed(m) if m.starts_with("cannot reach") => CliError::Failed(m),
            e => CliError::Failed(format!("login refused: {}", e.message())),
        })?;
    let p = save(
        &args.profile,
        Profile {
            url: url.clone(),
            token,
            issuer: None,
            client_id: None,
            refresh_token: None,
        },
    )?;
    crate::outln!(
        "logged in to {url} as profile {:?} (saved in {})",
        args.profile,
        p.display()
    );
    Ok(())
}
