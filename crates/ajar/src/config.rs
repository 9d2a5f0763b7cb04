//! Configuration of `ajar serve`: a TOML file, then `AJAR_*` environment variables, then flags,
//! each overriding the one before.

use anyhow::Context;
use serde::Deserialize;
use std::path::PathBuf;

/// Default listen address: loopback only, so a first start exposes nothing.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8600";
/// Default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "ajar-data";

/// Flags of `ajar serve` (each also readable from its `AJAR_*` variable).
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Directory for the SQLite database [default: ./ajar-data].
    #[arg(long, env = "AJAR_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL instead of SQLite: postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE. Several
    /// `ajar serve` replicas may share one database.
    #[arg(long, env = "AJAR_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Address to listen on [default: 127.0.0.1:8600].
    #[arg(long, env = "AJAR_LISTEN")]
    pub listen: Option<String>,
    /// Log filter, e.g. `info` or `ajar_server=debug` [default: info].
    #[arg(long, env = "AJAR_LOG")]
    pub log: Option<String>,
    /// Log line format [default: text].
    #[arg(long, env = "AJAR_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// SMTP server for email notifications: smtp://[user:pass@]host[:port] (STARTTLS when
    /// offered; add ?tls=required to insist) or smtps://host (implicit TLS).
    #[arg(long, env = "AJAR_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// Sender address of notification emails, e.g. "ajar <ajar@example.com>".
    #[arg(long, env = "AJAR_SMTP_FROM")]
    pub smtp_from: Option<String>,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key). The files are read again
    /// on SIGHUP and when they change.
    #[arg(long, env = "AJAR_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "AJAR_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Trust bearer JWTs from this OpenID Connect issuer (repeatable, or comma-separated);
    /// discovery is at ISSUER/.well-known/openid-configuration. Plain http only on loopback.
    #[arg(long = "oidc-issuer", env = "AJAR_OIDC_ISSUER", value_delimiter = ',')]
    pub oidc_issuers: Vec<String>,
    /// The audience (client id) tokens must carry: one for all issuers, or one per issuer in
    /// the same order.
    #[arg(
        long = "oidc-audience",
        env = "AJAR_OIDC_AUDIENCE",
        value_delimiter = ','
    )]
    pub oidc_audiences: Vec<String>,
    /// The claim naming the principal: sub, email, preferred_username, … [default: sub].
    #[arg(long, env = "AJAR_OIDC_PRINCIPAL_CLAIM")]
    pub oidc_principal_claim: Option<String>,
    /// The claim listing the principal's groups [default: groups].
    #[arg(long, env = "AJAR_OIDC_GROUPS_CLAIM")]
    pub oidc_groups_claim: Option<String>,
    /// Put before the principal claim's value (e.g. `corp-`), so the provider's names cannot
    /// collide with API tokens' principals such as `admin` [default: none].
    #[arg(long, env = "AJAR_OIDC_PRINCIPAL_PREFIX")]
    pub oidc_principal_prefix: Option<String>,
    /// Put before every group the provider asserts (e.g. `corp-`: its `ops` becomes
    /// `corp-ops`), so its groups cannot pass for ajar's own or another issuer's [default: none].
    #[arg(long, env = "AJAR_OIDC_GROUPS_PREFIX")]
    pub oidc_groups_prefix: Option<String>,
    /// Client secret for the console's sign-in, when the provider wants one (a confidential
    /// client); applies to every issuer given by flag.
    #[arg(long, env = "AJAR_OIDC_CLIENT_SECRET", hide_env_values = true)]
    pub oidc_client_secret: Option<String>,
    /// Also deliver webhooks to this network (CIDR; repeatable, or comma-separated), e.g. a
    /// relay on a private network or loopback. Without it webhooks reach only public
    /// addresses; link-local addresses (cloud metadata) stay refused even when listed.
    #[arg(
        long = "webhook-allow-network",
        env = "AJAR_WEBHOOK_ALLOW_NETWORK",
        value_name = "CIDR",
        value_delimiter = ','
    )]
    pub webhook_allow_networks: Vec<String>,
    /// The most grants (open ports) one principal may hold at once; 0 for no limit [default: 100].
    #[arg(long, env = "AJAR_MAX_LIVE_GRANTS")]
    pub max_live_grants: Option<usize>,
    /// Accept requests on machines no live agent guards, for deployments whose grants are
    /// enforced by something that reads them another way. Without it such requests are refused
    /// with a reason naming the fix (register and start an agent).
    #[arg(long, env = "AJAR_ACCEPT_UNENFORCED")]
    pub accept_unenforced: bool,
    /// On the first start, write the new store's admin token to this file (made anew, readable
    /// by the server's user only) instead of printing it: for services whose output is logged.
    #[arg(long, env = "AJAR_BOOTSTRAP_TOKEN_FILE", value_name = "FILE")]
    pub bootstrap_token_file: Option<PathBuf>,
    /// TOML configuration file with keys data_dir, database_url, listen, log, log_format,
    /// smtp_url, smtp_from, webhook_allow_networks, max_live_grants, accept_unenforced,
    /// tls_cert, tls_key, bootstrap_token_file, and
    /// [[oidc]] sections (issuer, audience, principal_claim, groups_claim, principal_prefix,
    /// groups_prefix, client_secret, name).
    #[arg(long, env = "AJAR_CONFIG")]
    pub config: Option<PathBuf>,
    /// Instead of serving: open the store (--data-dir or --database-url, as `ajar serve` uses
    /// it), make PRINCIPAL Owner at / if it is not, print a new token for it once and exit.
    /// For an operator who lost the bootstrap token; the server may keep running.
    #[arg(long, value_name = "PRINCIPAL")]
    pub mint_owner_token: Option<String>,
}

/// An `[[oidc]]` section of the configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileIssuer {
    issuer: String,
    audience: String,
    principal_claim: Option<String>,
    groups_claim: Option<String>,
    principal_prefix: Option<String>,
    groups_prefix: Option<String>,
    client_secret: Option<String>,
    name: Option<String>,
}

/// The configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    listen: Option<String>,
    log: Option<String>,
    log_format: Option<LogFormat>,
    smtp_url: Option<String>,
    smtp_from: Option<String>,
    webhook_allow_networks: Option<Vec<String>>,
    max_live_grants: Option<usize>,
    accept_unenforced: Option<bool>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    bootstrap_token_file: Option<PathBuf>,
    #[serde(default)]
    oidc: Vec<FileIssuer>,
}

/// How log lines are written (to stderr).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// The resolved configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeConfig {
    /// Where the database lives.
    pub data_dir: PathBuf,
    /// A PostgreSQL URL, when not on SQLite.
    pub database_url: Option<String>,
    /// Listen address.
    pub listen: String,
    /// Log filter.
    pub log: String,
    /// Log line format.
    pub log_format: LogFormat,
    /// Email notifications, when configured.
    pub smtp: Option<ajar_server::notify::SmtpSettings>,
    /// Networks webhooks may reach besides public addresses.
    pub webhook_allow_networks: Vec<ajar_core::net::SourcePrefix>,
    /// The most grants one principal may hold at once (0: no limit).
    pub max_live_grants: usize,
    /// Whether requests on machines no live agent guards are accepted.
    pub accept_unenforced: bool,
    /// Trusted OpenID Connect issuers.
    pub oidc: Vec<ajar_oidc::IssuerConfig>,
    /// HTTPS: the certificate chain and key files.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Mint an Owner token for this principal and exit, instead of serving.
    pub mint_owner_token: Option<ajar_core::principal::Principal>,
    /// Where a new store's admin token is written instead of stdout.
    pub bootstrap_token_file: Option<PathBuf>,
}

impl ServeConfig {
    /// Merges file, environment and flags (clap already merged the last two).
    pub fn resolve(args: ServeArgs) -> anyhow::Result<ServeConfig> {
        let mut file = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read config file {}", path.display()))?;
                toml::from_str::<FileConfig>(&text).map_err(|e| {
                    anyhow::anyhow!(
                        "config file {}: {}",
                        path.display(),
                        e.message().trim_end_matches('\n')
                    )
                })?
            }
            None => FileConfig::default(),
        };
        let oidc = oidc_issuers(&args, std::mem::take(&mut file.oidc))?;
        let listen = args
            .listen
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        listen.parse::<std::net::SocketAddr>().map_err(|_| {
            anyhow::anyhow!(
                "listen address {listen:?} is not HOST:PORT (for example 127.0.0.1:8600)"
            )
        })?;
        let tls = match (
            args.tls_cert.or(file.tls_cert),
            args.tls_key.or(file.tls_key),
        ) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => anyhow::bail!("--tls-cert and --tls-key go together"),
        };
        // Flags (or the environment) replace the file's list.
        let (key, networks) = if args.webhook_allow_networks.is_empty() {
            (
                "webhook_allow_networks",
                file.webhook_allow_networks.unwrap_or_default(),
            )
        } else {
            ("--webhook-allow-network", args.webhook_allow_networks)
        };
        let webhook_allow_networks = networks
            .iter()
            .map(|n| ajar_server::notify::guard::parse_network(n.trim()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("{key}: {e}"))?;
        let max_live_grants = args
            .max_live_grants
            .or(file.max_live_grants)
            .unwrap_or(ajar_server::engine::request_writer::DEFAULT_LIVE_GRANT_LIMIT);
        let accept_unenforced = args.accept_unenforced || file.accept_unenforced.unwrap_or(false);
        let mint_owner_token = match &args.mint_owner_token {
            Some(p) if p.contains(':') => anyhow::bail!(
                "--mint-owner-token: {p:?} names a group, an agent or ajar itself; give a person's or a service's principal"
            ),
            Some(p) => Some(
                ajar_core::principal::Principal::parse(p)
                    .map_err(|e| anyhow::anyhow!("--mint-owner-token: {}", e.message))?,
            ),
            None => None,
        };
        Ok(ServeConfig {
            accept_unenforced,
            mint_owner_token,
            bootstrap_token_file: args.bootstrap_token_file.or(file.bootstrap_token_file),
            oidc,
            tls,
            webhook_allow_networks,
            max_live_grants,
            data_dir: args
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            listen,
            log: args.log.or(file.log).unwrap_or_else(|| "info".to_owned()),
            log_format: args.log_format.or(file.log_format).unwrap_or_default(),
            database_url: match args.database_url.or(file.database_url) {
                Some(u) if !(u.starts_with("postgres://") || u.starts_with("postgresql://")) => {
                    anyhow::bail!("--database-url must start with postgres:// or postgresql://")
                }
                other => other,
            },
            smtp: match (
                args.smtp_url.or(file.smtp_url),
                args.smtp_from.or(file.smtp_from),
            ) {
                (None, None) => None,
                (Some(url), Some(from)) => Some(ajar_server::notify::SmtpSettings { url, from }),
                (Some(_), None) => {
                    anyhow::bail!("--smtp-url needs --smtp-from (the sender address)")
                }
                (None, Some(_)) => anyhow::bail!("--smtp-from needs --smtp-url (the SMTP server)"),
            },
        })
    }
}

/// The trusted issuers: from flags when any is given, else from the file's `[[oidc]]`
/// sections; the claim flags are the default for sections that name none.
fn oidc_issuers(
    args: &ServeArgs,
    file: Vec<FileIssuer>,
) -> anyhow::Result<Vec<ajar_oidc::IssuerConfig>> {
    let principal_claim = args.oidc_principal_claim.as_deref().unwrap_or("sub");
    let groups_claim = args.oidc_groups_claim.as_deref().unwrap_or("groups");
    let prefix = args.oidc_principal_prefix.as_deref().unwrap_or("");
    let groups_prefix = args.oidc_groups_prefix.as_deref().unwrap_or("");
    let issuers: Vec<ajar_oidc::IssuerConfig> = if args.oidc_issuers.is_empty() {
        if !args.oidc_audiences.is_empty() {
            anyhow::bail!("--oidc-audience needs --oidc-issuer");
        }
        file.into_iter()
            .map(|f| ajar_oidc::IssuerConfig {
                issuer: f.issuer,
                audience: f.audience,
                principal_claim: f.principal_claim.unwrap_or_else(|| principal_claim.into()),
                groups_claim: f.groups_claim.unwrap_or_else(|| groups_claim.into()),
                principal_prefix: f.principal_prefix.unwrap_or_else(|| prefix.into()),
                groups_prefix: f.groups_prefix.unwrap_or_else(|| groups_prefix.into()),
                client_secret: f.client_secret,
                name: f.name,
            })
            .collect()
    } else {
        let audiences = &args.oidc_audiences;
        let n = args.oidc_issuers.len();
        if !(audiences.len() == 1 || audiences.len() == n) {
            anyhow::bail!(
                "give one --oidc-audience for all issuers or one per --oidc-issuer ({n} issuers, {} audiences)",
                audiences.len()
            );
        }
        args.oidc_issuers
            .iter()
            .enumerate()
            .map(|(i, issuer)| ajar_oidc::IssuerConfig {
                issuer: issuer.clone(),
                audience: audiences[if audiences.len() == 1 { 0 } else { i }].clone(),
                principal_claim: principal_claim.into(),
                groups_claim: groups_claim.into(),
                principal_prefix: prefix.into(),
                groups_prefix: groups_prefix.into(),
                client_secret: args.oidc_client_secret.clone(),
                name: None,
            })
            .collect()
    };
    // Fail at start, not at the first sign-in.
    ajar_oidc::Providers::new(issuers.clone())
        .map_err(|e| anyhow::anyhow!("--oidc-issuer: {e}"))?;
    Ok(issuers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> ServeArgs {
        ServeArgs {
            data_dir: None,
            database_url: None,
            listen: None,
            log: None,
            log_format: None,
            smtp_url: None,
            smtp_from: None,
            oidc_issuers: Vec::new(),
            oidc_audiences: Vec::new(),
            oidc_principal_claim: None,
            oidc_groups_claim: None,
            oidc_principal_prefix: None,
            oidc_groups_prefix: None,
            oidc_client_secret: None,
            webhook_allow_networks: Vec::new(),
            max_live_grants: None,
            accept_unenforced: false,
            tls_cert: None,
            tls_key: None,
            config: None,
            mint_owner_token: None,
            bootstrap_token_file: None,
        }
    }

    #[test]
    fn the_live_grant_limit_comes_from_the_flag_or_the_file() {
        assert_eq!(ServeConfig::resolve(args()).unwrap().max_live_grants, 100);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ajar.toml");
        std::fs::write(&file, "max_live_grants = 7\n").unwrap();
        let from_file = ServeArgs {
            config: Some(file.clone()),
            ..args()
        };
        assert_eq!(ServeConfig::resolve(from_file).unwrap().max_live_grants, 7);
        let flag = ServeArgs {
            config: Some(file),
            max_live_grants: Some(3),
            ..args()
        };
        assert_eq!(ServeConfig::resolve(flag).unwrap().max_live_grants, 3);
        let none = ServeArgs {
            max_live_grants: Some(0),
            ..args()
        };
        assert_eq!(ServeConfig::resolve(none).unwrap().max_live_grants, 0);
    }

    #[test]
    fn unenforced_machines_are_accepted_only_when_the_flag_or_the_file_says_so() {
        assert!(!ServeConfig::resolve(args()).unwrap().accept_unenforced);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ajar.toml");
        std::fs::write(&file, "accept_unenforced = true\n").unwrap();
        let from_file = ServeArgs {
            config: Some(file),
            ..args()
        };
        assert!(ServeConfig::resolve(from_file).unwrap().accept_unenforced);
        let flag = ServeArgs {
            accept_unenforced: true,
            ..args()
        };
        assert!(ServeConfig::resolve(flag).unwrap().accept_unenforced);
    }

    #[test]
    fn issuers_come_from_flags_or_the_file_and_pair_with_audiences() {
        let two = ServeConfig::resolve(ServeArgs {
            oidc_issuers: vec!["https://a.example.com".into(), "http://127.0.0.1:9".into()],
            oidc_audiences: vec!["ajar".into()],
            oidc_principal_claim: Some("email".into()),
            ..args()
        })
        .unwrap();
        assert_eq!(two.oidc.len(), 2);
        assert_eq!(two.oidc[1].audience, "ajar");
        assert_eq!(two.oidc[1].principal_claim, "email");
        assert_eq!(two.oidc[1].groups_claim, "groups");
        assert_eq!(two.oidc[1].principal_prefix, "");
        let prefixed = ServeConfig::resolve(ServeArgs {
            oidc_issuers: vec!["https://a.example.com".into()],
            oidc_audiences: vec!["ajar".into()],
            oidc_principal_prefix: Some("corp-".into()),
            ..args()
        })
        .unwrap();
        assert_eq!(prefixed.oidc[0].principal_prefix, "corp-");
        assert!(
            ServeConfig::resolve(ServeArgs {
                oidc_issuers: vec!["https://a.example.com".into()],
                oidc_audiences: vec!["ajar".into()],
                oidc_principal_prefix: Some("group:".into()),
                ..args()
            })
            .is_err()
        );
        let mismatched = ServeConfig::resolve(ServeArgs {
            oidc_issuers: vec![
                "https://a.example.com".into(),
                "https://b.example.com".into(),
            ],
            oidc_audiences: vec!["x".into(), "y".into(), "z".into()],
            ..args()
        });
        assert!(mismatched.is_err());
        let no_audience = ServeConfig::resolve(ServeArgs {
            oidc_issuers: vec!["https://a.example.com".into()],
            ..args()
        });
        assert!(no_audience.is_err());
        let plain_http = ServeConfig::resolve(ServeArgs {
            oidc_issuers: vec!["http://idp.example.com".into()],
            oidc_audiences: vec!["ajar".into()],
            ..args()
        })
        .unwrap_err()
        .to_string();
        assert!(plain_http.contains("loopback"), "{plain_http}");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ajar.toml");
        std::fs::write(
            &path,
            "[[oidc]]\nissuer = \"https://a.example.com\"\naudience = \"ajar\"\n\
             groups_claim = \"roles\"\nname = \"Corp\"\n\
             [[oidc]]\nissuer = \"https://b.example.com\"\naudience = \"other\"\n",
        )
        .unwrap();
        let from_file = ServeConfig::resolve(ServeArgs {
            config: Some(path),
            oidc_groups_claim: Some("teams".into()),
            ..args()
        })
        .unwrap();
        assert_eq!(from_file.oidc.len(), 2);
        assert_eq!(from_file.oidc[0].groups_claim, "roles");
        assert_eq!(from_file.oidc[0].name.as_deref(), Some("Corp"));
        assert_eq!(from_file.oidc[1].groups_claim, "teams");
        assert_eq!(from_file.oidc[1].audience, "other");
    }

    #[test]
    fn groups_prefixes_come_from_the_flag_or_each_file_section_and_are_checked() {
        let flag = ServeConfig::resolve(ServeArgs {
            oidc_issuers: vec![
                "https://a.example.com".into(),
                "https://b.example.com".into(),
            ],
            oidc_audiences: vec!["ajar".into()],
            oidc_groups_prefix: Some("corp-".into()),
            ..args()
        })
        .unwrap();
        assert!(flag.oidc.iter().all(|i| i.groups_prefix == "corp-"));
        let none = ServeConfig::resolve(ServeArgs {
            oidc_issuers: vec!["https://a.example.com".into()],
            oidc_audiences: vec!["ajar".into()],
            ..args()
        })
        .unwrap();
        assert_eq!(none.oidc[0].groups_prefix, "", "no prefix by default");
        for bad in ["group:", "-x", "a b", "corp:"] {
            let e = ServeConfig::resolve(ServeArgs {
                oidc_issuers: vec!["https://a.example.com".into()],
                oidc_audiences: vec!["ajar".into()],
                oidc_groups_prefix: Some(bad.into()),
                ..args()
            })
            .unwrap_err()
            .to_string();
            assert!(e.contains("groups prefix"), "{bad:?}: {e}");
        }

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ajar.toml");
        std::fs::write(
            &path,
            "[[oidc]]\nissuer = \"https://a.example.com\"\naudience = \"ajar\"\n\
             groups_prefix = \"corp-\"\n\
             [[oidc]]\nissuer = \"https://b.example.com\"\naudience = \"ajar\"\n",
        )
        .unwrap();
        let file = ServeConfig::resolve(ServeArgs {
            config: Some(path.clone()),
            oidc_groups_prefix: Some("partner-".into()),
            ..args()
        })
        .unwrap();
        assert_eq!(file.oidc[0].groups_prefix, "corp-");
        assert_eq!(
            file.oidc[1].groups_prefix, "partner-",
            "the flag is the default"
        );
    }

    #[test]
    fn webhook_networks_come_from_the_file_unless_flags_name_some() {
        use ajar_core::net::SourcePrefix;
        let net = |s: &str| SourcePrefix::parse(s).unwrap();
        assert!(
            ServeConfig::resolve(args())
                .unwrap()
                .webhook_allow_networks
                .is_empty(),
            "public addresses only by default"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ajar.toml");
        std::fs::write(
            &path,
            "webhook_allow_networks = [\"10.20.0.0/16\", \"fd00::/8\"]\n",
        )
        .unwrap();
        let file = ServeConfig::resolve(ServeArgs {
            config: Some(path.clone()),
            ..args()
        })
        .unwrap();
        assert_eq!(
            file.webhook_allow_networks,
            vec![net("10.20.0.0/16"), net("fd00::/8")]
        );
        let flags = ServeConfig::resolve(ServeArgs {
            config: Some(path.clone()),
            webhook_allow_networks: vec!["127.0.0.1/32".into(), "192.168.0.0/16".into()],
            ..args()
        })
        .unwrap();
        assert_eq!(
            flags.webhook_allow_networks,
            vec![net("127.0.0.1/32"), net("192.168.0.0/16")]
        );
        for bad in ["10.0.0.1/8", "*", "nope", "169.254.169.254/32"] {
            let e = ServeConfig::resolve(ServeArgs {
                webhook_allow_networks: vec![bad.into()],
                ..args()
            })
            .unwrap_err()
            .to_string();
            assert!(e.starts_with("--webhook-allow-network: "), "{bad:?}: {e}");
        }
        std::fs::write(&path, "webhook_allow_networks = [\"link\"]\n").unwrap();
        let e = ServeConfig::resolve(ServeArgs {
            config: Some(path),
            ..args()
        })
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("webhook_allow_networks: "), "{e}");
        assert!(e.contains("\"link\""), "{e}");
    }

    #[test]
    fn defaults_apply() {
        let c = ServeConfig::resolve(args()).unwrap();
        assert_eq!(c.listen, DEFAULT_LISTEN);
        assert_eq!(c.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert_eq!(c.log_format, LogFormat::Text);
    }

    #[test]
    fn the_log_format_comes_from_the_file_unless_a_flag_says_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ajar.toml");
        std::fs::write(&path, "log_format = \"json\"\n").unwrap();
        let from_file = ServeConfig::resolve(ServeArgs {
            config: Some(path.clone()),
            ..args()
        })
        .unwrap();
        assert_eq!(from_file.log_format, LogFormat::Json);
        let flag = ServeConfig::resolve(ServeArgs {
            config: Some(path.clone()),
            log_format: Some(LogFormat::Text),
            ..args()
        })
        .unwrap();
        assert_eq!(flag.log_format, LogFormat::Text);
        std::fs::write(&path, "log_format = \"xml\"\n").unwrap();
        assert!(
            ServeConfig::resolve(ServeArgs {
                config: Some(path),
                ..args()
            })
            .is_err()
        );
    }

    #[test]
    fn flags_override_the_file_and_unknown_keys_fail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ajar.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\ndata_dir = \"/tmp/x\"\n",
        )
        .unwrap();
        let c = ServeConfig::resolve(ServeArgs {
            config: Some(path.clone()),
            listen: Some("127.0.0.1:9001".into()),
            ..args()
        })
        .unwrap();
        assert_eq!(c.listen, "127.0.0.1:9001");
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));

        std::fs::write(&path, "listne = \"x\"\n").unwrap();
        let e = ServeConfig::resolve(ServeArgs {
            config: Some(path),
            ..args()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("listne"), "{e}");

        let e = ServeConfig::resolve(ServeArgs {
            listen: Some("nope".into()),
            ..args()
        });
        assert!(e.is_err());
    }
}
