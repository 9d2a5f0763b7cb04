//! Where the enforcer's AWS credentials and region come from, in the order the AWS tools look:
//! the environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), a
//! shared profile with static keys (`AWS_PROFILE`, `~/.aws/credentials`, `~/.aws/config`), and
//! the instance's role through the instance metadata service (IMDSv2), refreshed before it
//! expires. Profiles that assume roles, SSO and web identity are not read.

use crate::AwsError;
use crate::sigv4::Credentials;
use jiff::{SignedDuration, Timestamp};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::Mutex;

/// The instance metadata service's address, unless `AWS_EC2_METADATA_SERVICE_ENDPOINT` says.
const IMDS: &str = "http://169.254.169.254";
/// Credentials from the metadata service are fetched again this long before they expire.
const REFRESH_BEFORE: SignedDuration = SignedDuration::from_mins(5);

/// The environment the chain reads, passed in so tests need not change the process's own.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    vars: BTreeMap<String, String>,
    home: Option<PathBuf>,
}

impl Environment {
    /// The process's environment.
    pub fn from_process() -> Self {
        Self {
            vars: std::env::vars()
                .filter(|(k, _)| k.starts_with("AWS_"))
                .collect(),
            home: std::env::var_os("HOME").map(PathBuf::from),
        }
    }

    /// An environment of exactly these variables and home directory.
    pub fn from_vars<'a>(
        vars: impl IntoIterator<Item = (&'a str, &'a str)>,
        home: Option<PathBuf>,
    ) -> Self {
        Self {
            vars: vars
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            home,
        }
    }

    /// The EC2 endpoint the environment names: `AWS_ENDPOINT_URL_EC2`, else `AWS_ENDPOINT_URL`.
    pub fn ec2_endpoint(&self) -> Option<String> {
        self.var("AWS_ENDPOINT_URL_EC2")
            .or_else(|| self.var("AWS_ENDPOINT_URL"))
            .map(str::to_owned)
    }

    fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn profile(&self) -> &str {
        self.var("AWS_PROFILE").unwrap_or("default")
    }

    fn file(&self, var: &str, default: &str) -> Option<PathBuf> {
        match self.var(var) {
            Some(path) => Some(PathBuf::from(path)),
            None => self.home.as_ref().map(|h| h.join(".aws").join(default)),
        }
    }

    /// The profile's settings: `~/.aws/config`'s `[profile NAME]` (or `[default]`) under
    /// `~/.aws/credentials`' `[NAME]`, which wins.
    fn profile_settings(&self) -> BTreeMap<String, String> {
        let name = self.profile();
        let mut settings = BTreeMap::new();
        if let Some(text) = self
            .file("AWS_CONFIG_FILE", "config")
            .and_then(|p| std::fs::read_to_string(p).ok())
        {
            let section = if name == "default" {
                "default".to_owned()
            } else {
                format!("profile {name}")
            };
            settings.extend(ini_section(&text, &section));
        }
        if let Some(text) = self
            .file("AWS_SHARED_CREDENTIALS_FILE", "credentials")
            .and_then(|p| std::fs::read_to_string(p).ok())
        {
            settings.extend(ini_section(&text, name));
        }
        settings
    }

    fn metadata_endpoint(&self) -> Option<String> {
        if self
            .var("AWS_EC2_METADATA_DISABLED")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        {
            return None;
        }
        Some(
            self.var("AWS_EC2_METADATA_SERVICE_ENDPOINT")
                .unwrap_or(IMDS)
                .trim_end_matches('/')
                .to_owned(),
        )
    }
}

/// The `key = value` pairs of `[section]` in an INI text (comments `#`/`;`, keys lower-cased).
pub fn ini_section(text: &str, section: &str) -> BTreeMap<String, String> {
    let mut inside = false;
    let mut found = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.split_whitespace().collect::<Vec<_>>().join(" ") == section;
            continue;
        }
        if inside && let Some((k, v)) = line.split_once('=') {
            found.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    found
}

/// Where credentials come from, found once at start.
#[derive(Debug)]
pub enum Source {
    /// Fixed keys (the environment or a profile).
    Static(Credentials),
    /// The instance's role, through the metadata service.
    InstanceRole {
        /// The metadata service's base URL.
        endpoint: String,
        /// The credentials last fetched, with their expiry.
        cached: Mutex<Option<(Credentials, Timestamp)>>,
    },
}

/// Credentials and region resolved from an [`Environment`].
#[derive(Debug)]
pub struct Chain {
    /// Where the credentials come from.
    pub source: Source,
    /// Which of the chain's links gave them, for the start-up log.
    pub origin: &'static str,
    http: reqwest::Client,
}

impl Chain {
    /// Finds the first link of the chain that has credentials. The metadata service is the
    /// last resort and is only tried when credentials are first needed.
    pub fn resolve(env: &Environment, http: reqwest::Client) -> Self {
        if let (Some(key), Some(secret)) = (
            env.var("AWS_ACCESS_KEY_ID"),
            env.var("AWS_SECRET_ACCESS_KEY"),
        ) {
            return Self {
                source: Source::Static(Credentials {
                    access_key_id: key.to_owned(),
                    secret_access_key: secret.to_owned(),
                    session_token: env.var("AWS_SESSION_TOKEN").map(str::to_owned),
                }),
                origin: "environment",
                http,
            };
        }
        let profile = env.profile_settings();
        if let (Some(key), Some(secret)) = (
            profile.get("aws_access_key_id"),
            profile.get("aws_secret_access_key"),
        ) {
            return Self {
                source: Source::Static(Credentials {
                    access_key_id: key.clone(),
                    secret_access_key: secret.clone(),
                    session_token: profile.get("aws_session_token").cloned(),
                }),
                origin: "shared profile",
                http,
            };
        }
        Self {
            source: Source::InstanceRole {
                endpoint: env.metadata_endpoint().unwrap_or_default(),
                cached: Mutex::new(None),
            },
            origin: "instance role",
            http,
        }
    }

    /// Credentials to sign with now.
    pub async fn credentials(&self, now: Timestamp) -> Result<Credentials, AwsError> {
        match &self.source {
            Source::Static(c) => Ok(c.clone()),
            Source::InstanceRole { endpoint, cached } => {
                let mut cached = cached.lock().await;
                if let Some((c, expires)) = cached.as_ref()
                    && now.saturating_add(REFRESH_BEFORE).unwrap_or(now) < *expires
                {
                    return Ok(c.clone());
                }
                let fresh = instance_role(&self.http, endpoint).await?;
                let c = fresh.0.clone();
                *cached = Some(fresh);
                Ok(c)
            }
        }
    }
}

/// The region: `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's `region`, else the
/// instance's, from the metadata service.
pub async fn region(env: &Environment, http: &reqwest::Client) -> Result<String, AwsError> {
    if let Some(r) = env
        .var("AWS_REGION")
        .or_else(|| env.var("AWS_DEFAULT_REGION"))
    {
        return Ok(r.to_owned());
    }
    if let Some(r) = env.profile_settings().get("region") {
        return Ok(r.clone());
    }
    let Some(endpoint) = env.metadata_endpoint() else {
        return Err(AwsError::Setup(
            "no region: set AWS_REGION, a profile's region, or --region".into(),
        ));
    };
    let token = imds_token(http, &endpoint).await?;
    imds_get(http, &endpoint, &token, "placement/region")
        .await
        .map(|r| r.trim().to_owned())
}

/// One call to the metadata service: its answer's text, or why there is none.
async fn imds(request: reqwest::RequestBuilder, what: &str) -> Result<String, AwsError> {
    let answer = request
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .map_err(|e| AwsError::Setup(format!("instance metadata {what}: {e}")))?;
    if !answer.status().is_success() {
        return Err(AwsError::Setup(format!(
            "instance metadata {what}: {}",
            answer.status()
        )));
    }
    answer
        .text()
        .await
        .map_err(|e| AwsError::Setup(format!("instance metadata {what}: {e}")))
}

async fn imds_token(http: &reqwest::Client, endpoint: &str) -> Result<String, AwsError> {
    let request = http
        .put(format!("{endpoint}/latest/api/token"))
        .header("X-aws-ec2-metadata-token-ttl-seconds", "21600");
    imds(request, &format!("token from {endpoint}")).await
}

async fn imds_get(
    http: &reqwest::Client,
    endpoint: &str,
    token: &str,
    path: &str,
) -> Result<String, AwsError> {
    let request = http
        .get(format!("{endpoint}/latest/meta-data/{path}"))
        .header("X-aws-ec2-metadata-token", token);
    imds(request, path).await
}

/// The instance role's temporary credentials and when they expire.
async fn instance_role(
    http: &reqwest::Client,
    endpoint: &str,
) -> Result<(Credentials, Timestamp), AwsError> {
    if endpoint.is_empty() {
        return Err(AwsError::Setup(
            "no AWS credentials: none in the environment or the shared profile, and the \
             instance metadata service is disabled"
                .into(),
        ));
    }
    let token = imds_token(http, endpoint).await?;
    let roles = imds_get(http, endpoint, &token, "iam/security-credentials/").await?;
    let Some(role) = roles.lines().map(str::trim).find(|l| !l.is_empty()) else {
        return Err(AwsError::Setup("the instance has no IAM role".into()));
    };
    let document = imds_get(
        http,
        endpoint,
        &token,
        &format!("iam/security-credentials/{role}"),
    )
    .await?;
    parse_role_credentials(&document)
}

/// Reads the metadata service's credential document.
pub fn parse_role_credentials(document: &str) -> Result<(Credentials, Timestamp), AwsError> {
    let value: serde_json::Value = serde_json::from_str(document)
        .map_err(|e| AwsError::Setup(format!("instance role credentials: {e}")))?;
    let field = |name: &str| {
        value
            .get(name)
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| AwsError::Setup(format!("instance role credentials lack {name}")))
    };
    let expires: Timestamp = field("Expiration")?
        .parse()
        .map_err(|e| AwsError::Setup(format!("instance role credentials: Expiration: {e}")))?;
    Ok((
        Credentials {
            access_key_id: field("AccessKeyId")?,
            secret_access_key: field("SecretAccessKey")?,
            session_token: Some(field("Token")?),
        },
        expires,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ini_section_is_read_with_comments_and_odd_spacing() {
        let text = "# top\n[default]\naws_access_key_id = AK1\n\n[profile  ops]\n\
                    ; note\nAWS_Secret_Access_Key=SK2\nregion = eu-west-1\n[other]\nregion=x\n";
        assert_eq!(ini_section(text, "default")["aws_access_key_id"], "AK1");
        let ops = ini_section(text, "profile ops");
        assert_eq!(ops["aws_secret_access_key"], "SK2");
        assert_eq!(ops["region"], "eu-west-1");
        assert_eq!(ops.len(), 2);
        assert!(ini_section(text, "missing").is_empty());
    }

    #[test]
    fn the_environment_wins_over_a_profile_and_a_profile_over_the_instance_role() {
        let home = tempfile_home(
            "[ops]\naws_access_key_id=PK\naws_secret_access_key=PS\n",
            "[profile ops]\nregion=ap-south-1\n",
        );
        let http = reqwest::Client::new();
        let env = Environment::from_vars(
            [
                ("AWS_ACCESS_KEY_ID", "EK"),
                ("AWS_SECRET_ACCESS_KEY", "ES"),
                ("AWS_PROFILE", "ops"),
            ],
            Some(home.path().to_owned()),
        );
        let chain = Chain::resolve(&env, http.clone());
        assert_eq!(chain.origin, "environment");
        assert!(matches!(&chain.source, Source::Static(c) if c.access_key_id == "EK"));
        let env = Environment::from_vars([("AWS_PROFILE", "ops")], Some(home.path().to_owned()));
        let chain = Chain::resolve(&env, http.clone());
        assert_eq!(chain.origin, "shared profile");
        assert!(matches!(&chain.source, Source::Static(c) if c.secret_access_key == "PS"));
        assert_eq!(env.profile_settings()["region"], "ap-south-1");
        let env = Environment::from_vars([("AWS_PROFILE", "nobody")], Some(home.path().to_owned()));
        assert_eq!(Chain::resolve(&env, http).origin, "instance role");
    }

    #[test]
    fn a_role_document_is_read_and_a_broken_one_refused() {
        let (c, expires) = parse_role_credentials(
            r#"{"Code":"Success","AccessKeyId":"ASIA1","SecretAccessKey":"s","Token":"t","Expiration":"2026-12-01T12:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(c.access_key_id, "ASIA1");
        assert_eq!(c.session_token.as_deref(), Some("t"));
        assert_eq!(
            expires,
            "2026-12-01T12:00:00Z".parse::<Timestamp>().unwrap()
        );
        assert!(parse_role_credentials(r#"{"AccessKeyId":"A"}"#).is_err());
        assert!(parse_role_credentials("<html>").is_err());
    }

    fn tempfile_home(credentials: &str, config: &str) -> tempfile::TempDir {
        let home = tempfile::tempdir().unwrap();
        let aws = home.path().join(".aws");
        std::fs::create_dir_all(&aws).unwrap();
        std::fs::write(aws.join("credentials"), credentials).unwrap();
        std::fs::write(aws.join("config"), config).unwrap();
        home
    }
}
