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
    /// Address to listen on [default: 127.0.0.1:8600].
    #[arg(long, env = "AJAR_LISTEN")]
    pub listen: Option<String>,
    /// Log filter, e.g. `info` or `ajar_server=debug` [default: info].
    #[arg(long, env = "AJAR_LOG")]
    pub log: Option<String>,
    /// TOML configuration file with keys data_dir, listen, log.
    #[arg(long, env = "AJAR_CONFIG")]
    pub config: Option<PathBuf>,
}

/// The configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    listen: Option<String>,
    log: Option<String>,
}

/// The resolved configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeConfig {
    /// Where the database lives.
    pub data_dir: PathBuf,
    /// Listen address.
    pub listen: String,
    /// Log filter.
    pub log: String,
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
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> ServeArgs {
        ServeArgs {
            data_dir: None,
            listen: None,
            log: None,
            config: None,
        }
    }

    #[test]
    fn defaults_apply() {
        let c = ServeConfig::resolve(args()).unwrap();
        assert_eq!(c.listen, DEFAULT_LISTEN);
        assert_eq!(c.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
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
