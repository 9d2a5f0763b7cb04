//! Trusted issuers: discovery, the key-set cache, and verification of bearer tokens.

use crate::claims::{self, ClaimRules, Identity};
use crate::http;
use jiff::Timestamp;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Keys older than this are fetched again before the next verification.
pub const KEYS_MAX_AGE: Duration = Duration::from_secs(3600);
/// A token naming an unknown `kid` makes the key set be fetched again at most this often, so
/// made-up key ids cannot turn ajar into a flood of requests to the identity provider.
pub const UNKNOWN_KID_REFRESH_INTERVAL: Duration = Duration::from_secs(10);

/// One trusted issuer as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerConfig {
    /// The issuer URL (the exact `iss`); discovery is at `ISSUER/.well-known/openid-configuration`.
    pub issuer: String,
    /// The audience tokens must carry; also the client id of the console and CLI sign-in.
    pub audience: String,
    /// The claim naming the principal.
    pub principal_claim: String,
    /// The claim listing groups.
    pub groups_claim: String,
    /// Put before the principal claim's value (empty: none); see [`ClaimRules`].
    pub principal_prefix: String,
    /// Put before every group the issuer asserts (empty: none), so that its `ops` is not
    /// ajar's own group `ops` or another issuer's; see [`Identity::with_groups_prefix`].
    pub groups_prefix: String,
    /// The client secret for the console's code exchange, if the provider wants one.
    pub client_secret: Option<String>,
    /// A name for sign-in buttons (default: the issuer's host).
    pub name: Option<String>,
}

impl IssuerConfig {
    /// An issuer with the default claims (`sub`, `groups`).
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            principal_claim: "sub".into(),
            groups_claim: "groups".into(),
            principal_prefix: String::new(),
            groups_prefix: String::new(),
            client_secret: None,
            name: None,
        }
    }

    /// Checks the configuration: an https issuer (http only on loopback) and an audience.
    pub fn validate(&self) -> Result<(), String> {
        crate::trusted_url(&self.issuer)?;
        if self.audience.trim().is_empty() {
            return Err(format!("the issuer {} needs an audience", self.issuer));
        }
        if self.principal_claim.is_empty() || self.groups_claim.is_empty() {
            return Err("the principal and groups claims must be named".into());
        }
        let prefix = &self.principal_prefix;
        let reserved = ["group:", "agent:"].iter().any(|r| prefix.starts_with(r));
        if !prefix.is_empty()
            && (reserved || ajar_core::principal::Principal::parse(prefix).is_err())
        {
            return Err(format!(
                "the principal prefix {prefix:?} must be letters, digits or . _ @ + - : and not \
                 begin with group: or agent:"
            ));
        }
        // A prefixed group must still be a group name ajar accepts everywhere, approver lists
        // included.
        let prefix = &self.groups_prefix;
        if !prefix.is_empty() && ajar_core::id::Name::parse(prefix).is_err() {
            return Err(format!(
                "the groups prefix {prefix:?} must start with a letter or digit, hold only \
                 letters, digits, - _ . and be at most {} characters",
                ajar_core::id::MAX_NAME_LEN
            ));
        }
        Ok(())
    }

    /// The name shown on sign-in buttons.
    pub fn display_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            reqwest::Url::parse(&self.issuer)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or_else(|| self.issuer.clone())
        })
    }

    fn rules(&self) -> ClaimRules {
        ClaimRules {
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            principal_claim: self.principal_claim.clone(),
            groups_claim: self.groups_claim.clone(),
            principal_prefix: self.principal_prefix.clone(),
        }
    }
}

/// The parts of an issuer's discovery document ajar uses.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Discovery {
    /// Must equal the configured issuer.
    pub issuer: String,
    /// Where the key set is.
    pub jwks_uri: String,
    /// Where browsers sign in (code flow).
    #[serde(default)]
    pub authorization_endpoint: Option<String>,
    /// Where codes, device codes and refresh tokens are exchanged.
    #[serde(default)]
    pub token_endpoint: Option<String>,
    /// Where the device flow starts.
    #[serde(default)]
    pub device_authorization_endpoint: Option<String>,
}

/// Fetches and checks `issuer`'s discovery document: same issuer, trusted endpoint URLs.
pub async fn discover(http: &reqwest::Client, issuer: &str) -> Result<Discovery, String> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    crate::trusted_url(&url)?;
    let d: Discovery = http::get_json(http, &url).await?;
    if d.issuer != issuer {
        return Err(format!(
            "the discovery document names the issuer {:?}, not {issuer:?}",
            d.issuer
        ));
    }
    for endpoint in [Some(&d.jwks_uri), d.authorization_endpoint.as_ref()]
        .into_iter()
        .chain([
            d.token_endpoint.as_ref(),
            d.device_authorization_endpoint.as_ref(),
        ])
        .flatten()
    {
        crate::trusted_url(endpoint)?;
    }
    Ok(d)
}

/// Why a bearer token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The token is not valid (answer 401).
    #[error("{0}")]
    Refused(String),
    /// The issuer's keys could not be fetched, so nothing can be verified (answer 503).
    #[error("{0}")]
    Unavailable(String),
}

/// A verification key from the issuer's set.
struct Key {
    kid: Option<String>,
    algorithms: Vec<Algorithm>,
    key: DecodingKey,
}

#[derive(Default)]
struct Cached {
    discovery: Option<Arc<Discovery>>,
    keys: Arc<Vec<Key>>,
    fetched: Option<Instant>,
}

#[derive(Default)]
struct RefreshState {
    last_unknown_kid: Option<Instant>,
}

/// One trusted issuer: its configuration, discovery document and cached keys.
pub struct Provider {
    config: IssuerConfig,
    http: reqwest::Client,
    cached: RwLock<Cached>,
    refresh: tokio::sync::Mutex<RefreshState>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("issuer", &self.config.issuer)
            .finish_non_exhaustive()
    }
}

impl Provider {
    /// A provider for `config` (nothing is fetched until first needed).
    pub fn new(config: IssuerConfig) -> Self {
        Self {
            config,
            http: http::client(),
            cached: RwLock::default(),
            refresh: tokio::sync::Mutex::default(),
        }
    }

    /// Its configuration.
    pub fn config(&self) -> &IssuerConfig {
        &self.config
    }

    /// The HTTP client used for this provider (with its timeouts).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Cached> {
        self.cached.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The discovery document, fetched with the keys when not yet known.
    pub async fn discovery(&self) -> Result<Arc<Discovery>, VerifyError> {
        if let Some(d) = self.read().discovery.clone() {
            return Ok(d);
        }
        self.refresh(false).await?;
        self.read()
            .discovery
            .clone()
            .ok_or_else(|| VerifyError::Unavailable("no discovery document".into()))
    }

    /// Fetches discovery and keys again. With `unknown_kid`, only if the last such fetch was
    /// more than [`UNKNOWN_KID_REFRESH_INTERVAL`] ago; one fetch at a time.
    async fn refresh(&self, unknown_kid: bool) -> Result<(), VerifyError> {
        let started = Instant::now();
        let mut state = self.refresh.lock().await;
        // Someone else fetched while this call waited: their answer is as fresh as ours.
        if self.read().fetched.is_some_and(|f| f >= started) {
            return Ok(());
        }
        if unknown_kid {
            if state
                .last_unknown_kid
                .is_some_and(|t| t.elapsed() < UNKNOWN_KID_REFRESH_INTERVAL)
            {
                return Ok(());
            }
            state.last_unknown_kid = Some(Instant::now());
        }
        let issuer = &self.config.issuer;
        let unavailable = |e: String| {
            tracing::warn!(issuer = %issuer, error = %e, "cannot fetch the identity provider's keys");
            VerifyError::Unavailable(format!(
                "the identity provider {issuer} is unavailable: {e}"
            ))
        };
        let discovery = discover(&self.http, issuer).await.map_err(unavailable)?;
        let set: JwkSetLenient = http::get_json(&self.http, &discovery.jwks_uri)
            .await
            .map_err(unavailable)?;
        let keys: Vec<Key> = set
            .keys
            .into_iter()
            .filter_map(|v| serde_json::from_value::<Jwk>(v).ok())
            .filter_map(|jwk| {
                let algorithms = claims::algorithms_for(&jwk);
                let key = DecodingKey::from_jwk(&jwk).ok()?;
                (!algorithms.is_empty()).then_some(Key {
                    kid: jwk.common.key_id.clone(),
                    algorithms,
                    key,
                })
            })
            .collect();
        tracing::info!(issuer = %issuer, keys = keys.len(), "fetched the identity provider's keys");
        let mut cached = self.cached.write().unwrap_or_else(|p| p.into_inner());
        *cached = Cached {
            discovery: Some(Arc::new(discovery)),
            keys: Arc::new(keys),
            fetched: Some(Instant::now()),
        };
        Ok(())
    }

    /// The cached keys, fetched first when missing or older than [`KEYS_MAX_AGE`] (an aged
    /// set is kept if the fetch fails).
    async fn keys(&self) -> Result<Arc<Vec<Key>>, VerifyError> {
        let (keys, fetched) = {
            let c = self.read();
            (c.keys.clone(), c.fetched)
        };
        match fetched {
            Some(f) if f.elapsed() < KEYS_MAX_AGE => Ok(keys),
            Some(_) => match self.refresh(false).await {
                Ok(()) => Ok(self.read().keys.clone()),
                Err(_) => Ok(keys),
            },
            None => {
                self.refresh(false).await?;
                Ok(self.read().keys.clone())
            }
        }
    }

    /// Verifies `token` (signature, issuer, audience, times) at `now` and says who it names.
    pub async fn verify(&self, token: &str, now: Timestamp) -> Result<Identity, VerifyError> {
        let refused = |m: String| VerifyError::Refused(m);
        let header = jsonwebtoken::decode_header(token).map_err(|_| {
            refused(
                "the token's header is malformed or names an algorithm ajar does not accept".into(),
            )
        })?;
        let fits = |k: &Key| {
            k.algorithms.contains(&header.alg)
                && (header.kid.is_none() || k.kid.as_deref() == header.kid.as_deref())
        };
        let mut keys = self.keys().await?;
        if !keys.iter().any(fits) && header.kid.is_some() {
            self.refresh(true).await?;
            keys = self.read().keys.clone();
        }
        let mut tried = false;
        for key in keys.iter().filter(|k| fits(k)) {
            tried = true;
            let mut validation = Validation::new(header.alg);
            validation.algorithms = key.algorithms.clone();
            // Times, issuer and audience are checked by `claims::check` against the
            // injected clock, so jsonwebtoken checks the signature only.
            validation.validate_exp = false;
            validation.validate_nbf = false;
            validation.validate_aud = false;
            validation.required_spec_claims.clear();
            match jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation) {
                Ok(data) => {
                    return claims::check(&data.claims, &self.config.rules(), now)
                        .map(|id| id.with_groups_prefix(&self.config.groups_prefix))
                        .map_err(|r| refused(r.0));
                }
                Err(e) if matches!(e.kind(), jsonwebtoken::errors::ErrorKind::InvalidSignature) => {
                    continue;
                }
                Err(e) => return Err(refused(format!("the token is not valid: {e}"))),
            }
        }
        Err(refused(if tried {
            "the token's signature does not verify".into()
        } else {
            match header.kid {
                Some(kid) => format!("the issuer has no key {kid:?} for {:?}", header.alg),
                None => format!("the issuer has no key for {:?}", header.alg),
            }
        }))
    }
}

/// A key set whose keys are parsed one by one, so one unusual key does not hide the rest.
#[derive(Deserialize)]
struct JwkSetLenient {
    keys: Vec<Value>,
}

/// Every trusted issuer.
#[derive(Debug, Default)]
pub struct Providers {
    list: Vec<Arc<Provider>>,
}

impl Providers {
    /// Providers for `configs`, each checked; issuers must be distinct.
    pub fn new(configs: Vec<IssuerConfig>) -> Result<Self, String> {
        let mut list: Vec<Arc<Provider>> = Vec::with_capacity(configs.len());
        for c in configs {
            c.validate()?;
            if list.iter().any(|p| p.config.issuer == c.issuer) {
                return Err(format!("the issuer {} is configured twice", c.issuer));
            }
            list.push(Arc::new(Provider::new(c)));
        }
        Ok(Self { list })
    }

    /// Whether no issuer is trusted.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The providers, in configuration order.
    pub fn list(&self) -> &[Arc<Provider>] {
        &self.list
    }

    /// Fetches every provider's keys now, so the first sign-in does not wait (failures are
    /// logged and retried on first use).
    pub async fn warm_up(&self) {
        for p in &self.list {
            let _ = p.keys().await;
        }
    }

    /// Verifies `token` with the provider its (unverified) `iss` names.
    pub async fn verify(&self, token: &str, now: Timestamp) -> Result<Identity, VerifyError> {
        let iss = jsonwebtoken::dangerous::insecure_decode_claims::<Map<String, Value>>(token)
            .ok()
            .and_then(|c| c.get("iss").and_then(Value::as_str).map(str::to_owned))
            .ok_or_else(|| VerifyError::Refused("the token is not a JWT with an issuer".into()))?;
        let provider = self
            .list
            .iter()
            .find(|p| p.config.issuer == iss)
            .ok_or_else(|| {
                VerifyError::Refused(format!("the issuer {iss:?} is not trusted here"))
            })?;
        provider.verify(token, now).await
    }
}
