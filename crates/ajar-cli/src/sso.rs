//! Signing in through the server's identity provider: `ajar login --oidc` runs the device
//! authorization flow (RFC 8628) and saves the ID token — ajar's audience is its client id —
//! with its refresh token; commands renew it from the profile when it is about to expire.

use crate::profile::{self, LoginArgs, Profile, Resolved};
use crate::{CliError, CliResult, usage};
use ajar_api::clock::{Clock, SystemClock};
use ajar_api::wire::{IdentityProvider, List};
use ajar_oidc::flows::{self, DevicePoll, TokenResponse};
use ajar_oidc::{IssuerConfig, Provider};
use std::time::Duration;

/// A token this close to its expiry is renewed before use.
const RENEW_BEFORE_SECS: i64 = 60;

fn failed(e: impl std::fmt::Display) -> CliError {
    CliError::Failed(e.to_string())
}

/// The provider for `issuer` and `client_id`, with its discovery document checked.
async fn provider(
    issuer: &str,
    client_id: &str,
) -> CliResult<(Provider, std::sync::Arc<ajar_oidc::Discovery>)> {
    let config = IssuerConfig::new(issuer, client_id);
    config.validate().map_err(failed)?;
    let provider = Provider::new(config);
    let discovery = provider.discovery().await.map_err(failed)?;
    Ok((provider, discovery))
}

/// `ajar login --oidc`.
pub async fn login(args: LoginArgs) -> CliResult {
    let url = args.url.trim_end_matches('/').to_owned();
    let listed: List<IdentityProvider> = crate::client(url.clone(), None)?
        .get("/api/v1/identityProviders")
        .await
        .map_err(|e| {
            CliError::Failed(format!("cannot ask {url} for its identity providers: {e}"))
        })?;
    let chosen = match &args.issuer {
        Some(issuer) => listed.value.iter().find(|p| &p.issuer == issuer),
        None if listed.value.len() == 1 => listed.value.first(),
        None => None,
    };
    let Some(idp) = chosen else {
        let known: Vec<&str> = listed.value.iter().map(|p| p.issuer.as_str()).collect();
        return Err(if known.is_empty() {
            CliError::Failed(format!(
                "{url} trusts no identity provider; log in with --token"
            ))
        } else {
            usage(format!(
                "pick an identity provider with --issuer: {}",
                known.join(", ")
            ))
        });
    };
    let (provider, discovery) = provider(&idp.issuer, &idp.client_id).await?;
    let http = provider.http();
    let device = flows::start_device(http, &discovery, &idp.client_id, &args.scope)
        .await
        .map_err(failed)?;
    eprintln!(
        "To sign in, open {} and enter the code {}",
        device.verification_uri, device.user_code
    );
    if let Some(complete) = &device.verification_uri_complete {
        eprintln!("(or open {complete})");
    }
    let mut interval = Duration::from_secs(device.interval.unwrap_or(5).max(1));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(device.expires_in);
    let tokens = loop {
        tokio::time::sleep(interval).await;
        if tokio::time::Instant::now() > deadline {
            return Err(CliError::Failed(
                "the sign-in code expired before it was used; run ajar login --oidc again".into(),
            ));
        }
        match flows::poll_device(http, &discovery, &idp.client_id, &device.device_code)
            .await
            .map_err(failed)?
        {
            DevicePoll::Pending => {}
            DevicePoll::SlowDown => interval += Duration::from_secs(5),
            DevicePoll::Done(tokens) => break tokens,
        }
    };
    let bearer = bearer(&tokens)?;
    let me: ajar_api::wire::Me = crate::client(url.clone(), Some(bearer.clone()))?
        .get("/api/v1/me")
        .await
        .map_err(|e| CliError::Failed(format!("login refused: {}", CliError::from(e).message())))?;
    let path = profile::save(
        &args.profile,
        Profile {
            url: url.clone(),
            token: bearer,
            issuer: Some(idp.issuer.clone()),
            client_id: Some(idp.client_id.clone()),
            refresh_token: tokens.refresh_token,
        },
    )?;
    crate::outln!(
        "logged in to {url} as {} through {} (profile {:?}, saved in {})",
        me.principal,
        idp.issuer,
        args.profile,
        path.display()
    );
    Ok(())
}

fn bearer(tokens: &TokenResponse) -> CliResult<String> {
    tokens
        .bearer()
        .map(str::to_owned)
        .ok_or_else(|| CliError::Failed("the identity provider returned no token".into()))
}

/// Whether `token` (a JWT) expires within [`RENEW_BEFORE_SECS`] of `now`.
fn expiring(token: &str, now: jiff::Timestamp) -> bool {
    let now = now.as_second();
    flows::unverified_claim(token, "exp")
        .and_then(|v| v.as_i64())
        .is_some_and(|exp| exp - RENEW_BEFORE_SECS <= now)
}

/// Renews the profile's identity-provider token when it is about to expire, saving the new
/// one; otherwise answers `resolved` as it is.
pub async fn renewed(mut resolved: Resolved) -> CliResult<Resolved> {
    let (Some(name), Some(token)) = (resolved.renewable.clone(), resolved.token.as_deref()) else {
        return Ok(resolved);
    };
    if !expiring(token, SystemClock.now()) {
        return Ok(resolved);
    }
    let mut file = profile::read()?;
    let Some(saved) = file.profiles.get(&name).cloned() else {
        return Ok(resolved);
    };
    let (Some(issuer), Some(client_id), Some(refresh)) =
        (&saved.issuer, &saved.client_id, &saved.refresh_token)
    else {
        return Ok(resolved);
    };
    let (provider, discovery) = provider(issuer, client_id).await?;
    let tokens = flows::refresh(provider.http(), &discovery, client_id, refresh)
        .await
        .map_err(|e| {
            CliError::Failed(format!(
                "the sign-in expired and could not be renewed ({e}); run ajar login --oidc"
            ))
        })?;
    let token = bearer(&tokens)?;
    let updated = Profile {
        token: token.clone(),
        refresh_token: tokens.refresh_token.or(saved.refresh_token.clone()),
        ..saved
    };
    file.profiles.insert(name, updated);
    profile::write(&file)?;
    resolved.token = Some(token);
    Ok(resolved)
}
