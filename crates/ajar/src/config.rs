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
    /// TOML configuration file with keys data_dir, listen, log, log_format, smtp_url, smtp_from.
    #[arg(long, env = "AJAR_CONFIG")]
    pub config: Option<PathBuf>,
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
}

impl ServeConfig {
    /// Merges file, environment and flags (clap already merged the last two).
    pub fn resolve(args: ServeArgs) -> anyhow::Result<ServeConfig> {
        let file = match &args.config {
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
        let listen = args
            .listen
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        listen.parse::<std::net::SocketAddr>().map_err(|_| {
            anyhow::anyhow!(
                "listen address {listen:?} is not HOST:PORT (for example 127.0.0.1:8600)"
            )
        })?;
        Ok(ServeConfig {
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
            config: None,
        }
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
