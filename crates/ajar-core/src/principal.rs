//! Who acts: users, groups and service principals, named by a string.

use crate::FieldError;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A principal name: 1 to 128 characters of letters, digits and `. _ @ + - :` (so e-mail
/// addresses and `group:NAME` both fit).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Principal(String);

impl Principal {
    /// Parses a principal name.
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        let ok =
            |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '+' | '-' | ':');
        if s.is_empty() || s.len() > 128 || !s.chars().all(ok) {
            return Err(FieldError::new(
                "",
                format!("principal {s:?} must be 1 to 128 letters, digits or . _ @ + - :"),
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Principal {
    type Error = FieldError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Principal> for String {
    fn from(p: Principal) -> String {
        p.0
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals_parse() {
        assert!(Principal::parse("alice").is_ok());
        assert!(Principal::parse("alice@example.com").is_ok());
        assert!(Principal::parse("group:ops").is_ok());
        assert!(Principal::parse("").is_err());
        assert!(Principal::parse("a b").is_err());
        assert!(Principal::parse(&"a".repeat(129)).is_err());
    }
}
