//! `ajar agent --mode aws`: an enforcement point that needs nothing on the machines. It
//! long-polls its desired state like any agent and programs AWS EC2 security groups that ajar
//! owns — one per instance, created and attached when needed — so that exactly the granted
//! ports are open; it never edits any other group. It also finds rules in other groups that
//! leave a protected port open to everyone, and can register the instances it discovers as
//! machines.
//!
//! # Layout
//! - [`sigv4`]: signing Query API requests (pure).
//! - [`creds`]: credentials and region from the environment, a shared profile or the
//!   instance's role (IMDSv2).
//! - [`ec2`]: the EC2 Query API client: the few actions the enforcer calls, typed.
//! - [`plan`]: desired grants and current rules → the calls to make; exposures (pure).
//! - [`enforcer`]: the [`ajar_agent::sync::Enforce`] backend: reconciles groups, closes each
//!   rule at its grant's deadline from its own monotonic clock, sweeps ended rules on start,
//!   rescans for exposures.
//! - [`discover`]: instances by tag or id → machines for `PUT /api/v1/agent/inventory`.
//!
//! # Invariants
//! - Only groups tagged `ajar:managed=true` are ever changed: created by ajar (`ajar-INSTANCE`)
//!   or named by an operator who tagged them. Attaching adds ajar's group to an interface's
//!   groups and keeps every other.
//! - Every rule carries its end in its description, so rules past their end are removed on
//!   start even when the control plane is down; while running, each rule is removed at its
//!   grant's deadline on the enforcer's own clock, with no server round trip.
//! - Every call is idempotent (a duplicate add or a missing rule on removal counts as done),
//!   so several enforcers with one token may guard the same machines.

pub mod creds;
pub mod discover;
pub mod ec2;
pub mod enforcer;
pub mod plan;
pub mod sigv4;

/// The HTTP client for AWS and the instance metadata service. It follows no redirect: a
/// redirect would carry the session token (`X-Amz-Security-Token`) or the metadata token to
/// another host.
pub fn http_client() -> Result<reqwest::Client, AwsError> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(std::time::Duration::from_secs(5))
        .build()
        .map_err(|e| AwsError::Setup(format!("cannot set up TLS: {e}")))
}

/// What can go wrong talking to AWS.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    /// AWS refused the call.
    #[error("{action}: {code}: {message}")]
    Api {
        /// The action called.
        action: &'static str,
        /// HTTP status.
        status: u16,
        /// AWS's error code, e.g. `InvalidPermission.Duplicate`.
        code: String,
        /// AWS's message.
        message: String,
    },
    /// The call did not get an answer.
    #[error("{action}: {message}")]
    Transport {
        /// The action called.
        action: &'static str,
        /// What failed.
        message: String,
    },
    /// The answer could not be read.
    #[error("{action}: unreadable answer: {message}")]
    Answer {
        /// The action called.
        action: &'static str,
        /// What was wrong with it.
        message: String,
    },
    /// Credentials, region or endpoint could not be found.
    #[error("{0}")]
    Setup(String),
}

impl AwsError {
    /// AWS's error code, when AWS answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            AwsError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Throttling, a server error or no answer: worth trying again.
    pub fn is_transient(&self) -> bool {
        match self {
            AwsError::Api { status, code, .. } => {
                *status >= 500
                    || matches!(
                        code.as_str(),
                        "RequestLimitExceeded"
                            | "Throttling"
                            | "ThrottlingException"
                            | "InternalError"
                            | "Unavailable"
                            | "ServiceUnavailable"
                    )
            }
            AwsError::Transport { .. } => true,
            AwsError::Answer { .. } | AwsError::Setup(_) => false,
        }
    }
}
