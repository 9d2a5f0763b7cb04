//! OpenID Connect for ajar.
//!
//! - [`claims`]: what a verified token must say (issuer, audience, times, principal, groups),
//!   and which algorithms a key may verify. Pure: no IO, time passed in.
//! - [`provider`]: one trusted issuer ([`Provider`]) or several ([`Providers`]): discovery,
//!   the JWKS cache (refreshed when it ages or a token names an unknown `kid`), and signature
//!   verification.
//! - [`flows`]: the client side of sign-in — PKCE, the authorization-code exchange, the device
//!   authorization flow and refresh — for the console and the CLI.
//!
//! Tokens are refused unless signed with an asymmetric algorithm that the key's type allows
//! (`none` and HMAC never verify), by a key from the issuer's published set, with the expected
//! `iss` and `aud`, inside `exp`/`nbf` give or take [`claims::LEEWAY_SECS`].

pub mod claims;
pub mod flows;
mod http;
pub mod provider;

pub use claims::{ClaimRules, Identity, Refusal};
pub use provider::{Discovery, IssuerConfig, Provider, Providers, VerifyError};

/// The operating system's random source gave nothing.
#[derive(Debug, thiserror::Error)]
#[error("no randomness available: {0}")]
pub struct RandomUnavailable(String);

/// `n` bytes from the operating system's random source: the one place ajar draws secrets,
/// tokens, nonces and CSRF keys from.
pub fn random_bytes(n: usize) -> Result<Vec<u8>, RandomUnavailable> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).map_err(|e| RandomUnavailable(e.to_string()))?;
    Ok(buf)
}

/// Whether `token` has the shape of a JWT (three base64url parts), as opposed to an ajar API
/// token.
pub fn looks_like_jwt(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    parts.len() == 3
        && parts[..2].iter().all(|p| !p.is_empty())
        && parts.iter().all(|p| {
            p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Whether `url` may serve OpenID Connect metadata or keys: `https`, or `http` to a loopback
/// address (for development and tests).
pub fn trusted_url(url: &str) -> Result<reqwest::Url, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" => {
            let loopback = match parsed.host() {
                Some(url::Host::Ipv4(a)) => a.is_loopback(),
                Some(url::Host::Ipv6(a)) => a.is_loopback(),
                Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                None => false,
            };
            if loopback {
                Ok(parsed)
            } else {
                Err(format!(
                    "{url:?} uses plain http, which is accepted only on loopback addresses; use https"
                ))
            }
        }
        other => Err(format!("{url:?} must be https (not {other})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwts_are_told_from_api_tokens() {
        assert!(looks_like_jwt("eyJh.eyJz.c2ln"));
        assert!(looks_like_jwt("eyJh.eyJz."));
        assert!(!looks_like_jwt("ajar_0123abcd"));
        assert!(!looks_like_jwt("a.b"));
        assert!(!looks_like_jwt("a.b.c.d"));
        assert!(!looks_like_jwt("a+.b.c"));
        assert!(!looks_like_jwt(".b.c"));
    }

    #[test]
    fn plain_http_is_only_for_loopback() {
        assert!(trusted_url("https://idp.example.com").is_ok());
        assert!(trusted_url("http://127.0.0.1:8080/realms/x").is_ok());
        assert!(trusted_url("http://[::1]:80").is_ok());
        assert!(trusted_url("http://localhost:9000").is_ok());
        assert!(trusted_url("http://idp.example.com").is_err());
        assert!(trusted_url("http://10.0.0.1").is_err());
        assert!(trusted_url("ftp://idp.example.com").is_err());
        assert!(trusted_url("not a url").is_err());
    }
}
