//! What a verified token must say, and which algorithms a key may verify. No IO: the caller
//! passes the time.

use ajar_core::principal::Principal;
use jiff::Timestamp;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily};
use serde_json::{Map, Value};
use std::str::FromStr;

/// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
pub const LEEWAY_SECS: i64 = 60;

/// What is expected of the tokens of one issuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRules {
    /// The exact `iss`.
    pub issuer: String,
    /// A value `aud` must be or contain.
    pub audience: String,
    /// The claim naming the principal (`sub`, `email`, `preferred_username`, …).
    pub principal_claim: String,
    /// The claim listing the principal's groups.
    pub groups_claim: String,
    /// Put before the claim's value to make the principal (e.g. `corp-`), so the issuer's names
    /// cannot collide with API tokens' principals such as `admin`; empty for none.
    pub principal_prefix: String,
}

/// Who a valid token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The issuer that vouched for them.
    pub issuer: String,
    /// The principal: the configured claim's value.
    pub principal: String,
    /// Their groups (names without `group:`), as the issuer asserts them.
    pub groups: Vec<String>,
    /// When the token stops being accepted (its `exp`).
    pub expires: Timestamp,
    /// The `nonce`, for the sign-in flow that asked for one.
    pub nonce: Option<String>,
}

impl Identity {
    /// The identity with `prefix` put before each of its groups (`ops` becomes `corp-ops`), so
    /// one issuer's groups stay apart from ajar's own and from other issuers'. Groups that
    /// become too long to be written `group:NAME` are left out. An empty prefix changes nothing.
    pub fn with_groups_prefix(mut self, prefix: &str) -> Identity {
        if prefix.is_empty() {
            return self;
        }
        self.groups = std::mem::take(&mut self.groups)
            .into_iter()
            .map(|g| format!("{prefix}{g}"))
            .filter(|g| Principal::parse(&format!("group:{g}")).is_ok())
            .collect();
        self
    }
}

/// Why a token was refused, in words safe to show its bearer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refusal(pub String);

fn refuse<T>(message: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal(message.into()))
}

/// A numeric date claim (seconds since the epoch), if present.
fn seconds(claims: &Map<String, Value>, name: &str) -> Result<Option<Timestamp>, Refusal> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .or_else(|| v.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
            .and_then(|s| Timestamp::from_second(s).ok())
            .map(Some)
            .ok_or_else(|| Refusal(format!("the token's {name} is not a date in seconds"))),
    }
}

/// Checks verified claims against `rules` at `now` and says who they name.
pub fn check(
    claims: &Map<String, Value>,
    rules: &ClaimRules,
    now: Timestamp,
) -> Result<Identity, Refusal> {
    match claims.get("iss").and_then(Value::as_str) {
        Some(iss) if iss == rules.issuer => {}
        Some(iss) => return refuse(format!("the token's issuer {iss:?} is not trusted here")),
        None => return refuse("the token has no issuer (iss)"),
    }
    let audience_ok = match claims.get("aud") {
        Some(Value::String(a)) => *a == rules.audience,
        Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(&rules.audience)),
        _ => false,
    };
    if !audience_ok {
        return refuse(format!(
            "the token is not meant for this server (aud must include {:?})",
            rules.audience
        ));
    }
    let leeway = jiff::SignedDuration::from_secs(LEEWAY_SECS);
    let Some(expires) = seconds(claims, "exp")? else {
        return refuse("the token has no expiry (exp)");
    };
    if expires.saturating_add(leeway).unwrap_or(expires) <= now {
        return refuse(format!("the token expired at {expires}"));
    }
    if let Some(nbf) = seconds(claims, "nbf")?
        && nbf.saturating_sub(leeway).unwrap_or(nbf) > now
    {
        return refuse(format!("the token is not valid before {nbf}"));
    }
    if let Some(iat) = seconds(claims, "iat")?
        && iat.saturating_sub(leeway).unwrap_or(iat) > now
    {
        return refuse(format!("the token was issued in the future ({iat})"));
    }
    let principal = format!(
        "{}{}",
        rules.principal_prefix,
        principal(claims, &rules.principal_claim)?
    );
    if Principal::parse(&principal).is_err() {
        return refuse(format!(
            "the principal {principal:?} is longer than 128 characters"
        ));
    }
    Ok(Identity {
        issuer: rules.issuer.clone(),
        principal,
        groups: groups(claims, &rules.groups_claim),
        expires,
        nonce: claims
            .get("nonce")
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

/// The principal claim's value, which must be a valid principal and may not look like a group
/// or an agent (no `:`), so a token can never speak for either.
fn principal(claims: &Map<String, Value>, claim: &str) -> Result<String, Refusal> {
    let Some(value) = claims.get(claim).and_then(Value::as_str) else {
        return refuse(format!(
            "the token has no {claim:?} claim to name its principal"
        ));
    };
    if claim == "email" && claims.get("email_verified") == Some(&Value::Bool(false)) {
        return refuse("the token's email address is not verified");
    }
    if value.contains(':') || Principal::parse(value).is_err() {
        return refuse(format!(
            "the token's {claim:?} claim {value:?} is not usable as a principal (1 to 128 \
             letters, digits or . _ @ + -)"
        ));
    }
    Ok(value.to_owned())
}

/// The groups claim: a list of names (or one name). Names that cannot be written
/// `group:NAME` are left out.
fn groups(claims: &Map<String, Value>, claim: &str) -> Vec<String> {
    let names: Vec<&str> = match claims.get(claim) {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let mut out: Vec<String> = names
        .into_iter()
        .filter(|g| Principal::parse(&format!("group:{g}")).is_ok())
        .map(str::to_owned)
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The algorithms `jwk` may verify: the asymmetric ones of its key type (narrowed to its
/// `alg` when it names one). Empty for symmetric (`oct`) and encryption keys, so HMAC and
/// `none` never verify a token.
pub fn algorithms_for(jwk: &Jwk) -> Vec<Algorithm> {
    if jwk.common.public_key_use == Some(PublicKeyUse::Encryption) {
        return Vec::new();
    }
    let family: Vec<Algorithm> = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => vec![
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ],
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => vec![Algorithm::ES256],
            EllipticCurve::P384 => vec![Algorithm::ES384],
            _ => Vec::new(),
        },
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            vec![Algorithm::EdDSA]
        }
        _ => Vec::new(),
    };
    let family: Vec<Algorithm> = family
        .into_iter()
        .filter(|a| a.family() != AlgorithmFamily::Hmac)
        .collect();
    match jwk.common.key_algorithm {
        None => family,
        Some(named) => match Algorithm::from_str(&named.to_string()) {
            Ok(a) if family.contains(&a) => vec![a],
            _ => Vec::new(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules() -> ClaimRules {
        ClaimRules {
            issuer: "https://idp.example.com".into(),
            audience: "ajar".into(),
            principal_claim: "sub".into(),
            groups_claim: "groups".into(),
            principal_prefix: String::new(),
        }
    }

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn good() -> Value {
        json!({"iss": "https://idp.example.com", "aud": "ajar", "sub": "alice",
               "exp": 2000, "nbf": 1000, "iat": 1000, "groups": ["ops", "db", "ops", "bad name"],
               "nonce": "n1"})
    }

    #[test]
    fn a_good_token_names_its_principal_and_groups() {
        let id = check(&claims(good()), &rules(), at(1500)).unwrap();
        assert_eq!(id.principal, "alice");
        assert_eq!(id.groups, vec!["db", "ops"]);
        assert_eq!(id.expires, at(2000));
        assert_eq!(id.nonce.as_deref(), Some("n1"));
    }

    #[test]
    fn issuer_audience_and_times_are_enforced_with_leeway() {
        let r = rules();
        let with = |k: &str, v: Value| {
            let mut c = claims(good());
            c.insert(k.into(), v);
            c
        };
        assert!(check(&with("iss", json!("https://evil")), &r, at(1500)).is_err());
        assert!(check(&with("aud", json!("other")), &r, at(1500)).is_err());
        assert!(check(&with("aud", json!(["other", "ajar"])), &r, at(1500)).is_ok());
        assert!(check(&with("aud", json!(["other"])), &r, at(1500)).is_err());
        // exp with leeway: accepted up to 59 s after, refused from 60 s.
        assert!(check(&claims(good()), &r, at(2059)).is_ok());
        assert!(check(&claims(good()), &r, at(2060)).is_err());
        // nbf with leeway.
        assert!(check(&claims(good()), &r, at(940)).is_ok());
        assert!(check(&with("iat", Value::Null), &r, at(939)).is_err());
        let mut no_exp = claims(good());
        no_exp.remove("exp");
        assert!(check(&no_exp, &r, at(1500)).is_err());
        assert!(check(&with("exp", json!("soon")), &r, at(1500)).is_err());
        let mut no_iss = claims(good());
        no_iss.remove("iss");
        assert!(check(&no_iss, &r, at(1500)).is_err());
    }

    #[test]
    fn principals_come_from_the_configured_claim_and_must_be_plain() {
        let mut r = rules();
        r.principal_claim = "email".into();
        let mut c = claims(good());
        c.insert("email".into(), json!("alice@example.com"));
        assert_eq!(
            check(&c, &r, at(1500)).unwrap().principal,
            "alice@example.com"
        );
        c.insert("email_verified".into(), json!(false));
        assert!(check(&c, &r, at(1500)).is_err());
        r.principal_claim = "preferred_username".into();
        assert!(check(&c, &r, at(1500)).is_err(), "missing claim");
        for bad in ["group:admins", "agent:x", "a b", ""] {
            c.insert("preferred_username".into(), json!(bad));
            assert!(check(&c, &r, at(1500)).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_prefix_keeps_the_issuers_names_apart() {
        let mut r = rules();
        r.principal_prefix = "corp-".into();
        let mut c = claims(good());
        c.insert("sub".into(), json!("admin"));
        assert_eq!(check(&c, &r, at(1500)).unwrap().principal, "corp-admin");
        c.insert("sub".into(), json!("a".repeat(125)));
        assert!(check(&c, &r, at(1500)).is_err(), "too long with the prefix");
    }

    #[test]
    fn a_groups_prefix_keeps_the_issuers_groups_apart() {
        let mut c = claims(good());
        let long = "g".repeat(120);
        c.insert("groups".into(), json!(["ops", "dba", long]));
        let id = check(&c, &rules(), at(1500)).unwrap();
        assert_eq!(id.groups.len(), 3);
        assert_eq!(id.clone().with_groups_prefix("").groups, id.groups);
        let prefixed = id.with_groups_prefix("corp-");
        assert_eq!(
            prefixed.groups,
            vec!["corp-dba", "corp-ops"],
            "too long with the prefix"
        );
    }

    #[test]
    fn a_single_group_string_counts_and_other_shapes_are_ignored() {
        let mut c = claims(good());
        c.insert("groups".into(), json!("ops"));
        assert_eq!(check(&c, &rules(), at(1500)).unwrap().groups, vec!["ops"]);
        c.insert("groups".into(), json!({"ops": true}));
        assert!(check(&c, &rules(), at(1500)).unwrap().groups.is_empty());
    }

    #[test]
    fn keys_verify_only_asymmetric_algorithms_of_their_type() {
        let jwk = |v: Value| serde_json::from_value::<Jwk>(v).unwrap();
        let rsa = jwk(json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"}));
        assert!(algorithms_for(&rsa).contains(&Algorithm::RS256));
        assert!(!algorithms_for(&rsa).contains(&Algorithm::HS256));
        let rsa_named = jwk(json!({"kty": "RSA", "n": "AQAB", "e": "AQAB", "alg": "PS256"}));
        assert_eq!(algorithms_for(&rsa_named), vec![Algorithm::PS256]);
        let rsa_hs = jwk(json!({"kty": "RSA", "n": "AQAB", "e": "AQAB", "alg": "HS256"}));
        assert!(algorithms_for(&rsa_hs).is_empty());
        let ec = jwk(json!({"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}));
        assert_eq!(algorithms_for(&ec), vec![Algorithm::ES256]);
        let oct = jwk(json!({"kty": "oct", "k": "c2VjcmV0"}));
        assert!(algorithms_for(&oct).is_empty());
        let enc = jwk(json!({"kty": "RSA", "n": "AQAB", "e": "AQAB", "use": "enc"}));
        assert!(algorithms_for(&enc).is_empty());
    }
}
