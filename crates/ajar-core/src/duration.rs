//! ISO 8601 access durations (`PT3H`, `PT90M`, `P1D`) bounded to what ajar allows.

use crate::FieldError;
use jiff::{SignedDuration, Span, SpanRelativeTo};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Shortest access window a policy or request may name.
pub const MIN_ACCESS: SignedDuration = SignedDuration::from_mins(5);
/// Longest access window a policy or request may name.
pub const MAX_ACCESS: SignedDuration = SignedDuration::from_hours(24);

/// Parses an ISO 8601 duration such as `PT3H` or `P1DT2H` (days count as 24 hours).
/// Negative durations and the human-friendly forms (`3h`) are refused here: the API speaks
/// ISO 8601 only.
pub fn parse_iso8601(s: &str) -> Result<SignedDuration, FieldError> {
    let bad = || {
        FieldError::new(
            "",
            format!("{s:?} is not an ISO 8601 duration (for example PT3H or PT30M)"),
        )
    };
    if !s.starts_with(['P', 'p']) {
        return Err(bad());
    }
    if let Ok(d) = s.parse::<SignedDuration>() {
        return Ok(d);
    }
    let span: Span = s.parse().map_err(|_| bad())?;
    span.to_duration(SpanRelativeTo::days_are_24_hours())
        .map_err(|_| bad())
}

/// How long access may last or is requested for: between [`MIN_ACCESS`] and [`MAX_ACCESS`],
/// written as ISO 8601 on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AccessDuration(SignedDuration);

impl AccessDuration {
    /// Parses and bounds-checks an ISO 8601 duration.
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        Self::new(parse_iso8601(s)?)
    }

    /// Bounds-checks a duration.
    pub fn new(d: SignedDuration) -> Result<Self, FieldError> {
        if d < MIN_ACCESS {
            return Err(FieldError::new(
                "",
                format!("duration {d} is shorter than the minimum of {MIN_ACCESS}"),
            ));
        }
        if d > MAX_ACCESS {
            return Err(FieldError::new(
                "",
                format!("duration {d} is longer than the maximum of {MAX_ACCESS}"),
            ));
        }
        Ok(Self(d))
    }

    /// The duration.
    pub fn get(self) -> SignedDuration {
        self.0
    }

    /// Three hours: the default maximum of a network JIT port rule.
    pub fn three_hours() -> Self {
        Self(SignedDuration::from_hours(3))
    }
}

impl TryFrom<String> for AccessDuration {
    type Error = FieldError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<AccessDuration> for String {
    fn from(d: AccessDuration) -> String {
        d.to_string()
    }
}

impl fmt::Display for AccessDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: &str) -> Result<i64, FieldError> {
        AccessDuration::parse(s).map(|d| d.get().as_secs())
    }

    #[test]
    fn iso_durations_parse() {
        assert_eq!(secs("PT3H"), Ok(10_800));
        assert_eq!(secs("PT1H30M"), Ok(5_400));
        assert_eq!(secs("PT5M"), Ok(300));
        assert_eq!(secs("PT24H"), Ok(86_400));
        assert_eq!(secs("P1D"), Ok(86_400));
        assert_eq!(secs("pt10m"), Ok(600));
    }

    #[test]
    fn out_of_bounds_and_malformed_are_refused() {
        for s in [
            "PT4M59S", "PT24H1S", "P2D", "-PT1H", "3h", "", "PT", "P", "PTXH", "PT-1H",
        ] {
            assert!(secs(s).is_err(), "{s:?} should be refused");
        }
    }

    #[test]
    fn prints_as_iso() {
        assert_eq!(AccessDuration::three_hours().to_string(), "PT3H");
        assert_eq!(
            AccessDuration::parse("PT90M").map(|d| d.to_string()),
            Ok("PT1H30M".into())
        );
    }
}
