//! The validation error every parser and rule in this crate returns.

use std::fmt;

/// What kind of problem a [`FieldError`] reports; the API maps it to a status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Problem {
    /// The value is malformed or breaks a rule (400).
    #[default]
    Invalid,
    /// The value names something that does not exist (404).
    NotFound,
    /// The value clashes with existing state (409).
    Conflict,
}

/// A rejected input value: what is wrong (`message`) and where (`target`, a JSON path such as
/// `virtualMachines[0].ports[1].number`, empty when the whole input is meant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// What kind of problem this is.
    pub problem: Problem,
    /// JSON path of the offending field.
    pub target: String,
    /// Lower-case sentence without a trailing period.
    pub message: String,
}

impl FieldError {
    /// An error about the field at `target`.
    pub fn new(target: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            problem: Problem::Invalid,
            target: target.into(),
            message: message.into(),
        }
    }

    /// An error saying the value at `target` names something that does not exist.
    pub fn not_found(target: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            problem: Problem::NotFound,
            ..Self::new(target, message)
        }
    }

    /// An error saying the value at `target` clashes with existing state.
    pub fn conflict(target: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            problem: Problem::Conflict,
            ..Self::new(target, message)
        }
    }

    /// Sets the target (used when a parser that knows no path reports an error).
    pub fn at(mut self, target: impl Into<String>) -> Self {
        self.target = target.into();
        self
    }

    /// Prefixes the target with a parent path, e.g. `ports[0]` inside `virtualMachines[1]`.
    pub fn within(mut self, parent: &str) -> Self {
        self.target = join_path(parent, &self.target);
        self
    }
}

/// Joins a JSON path and a child (`a` + `b` → `a.b`, `a` + `[1]` → `a[1]`).
pub fn join_path(parent: &str, child: &str) -> String {
    match (parent.is_empty(), child.is_empty()) {
        (true, _) => child.to_owned(),
        (_, true) => parent.to_owned(),
        _ if child.starts_with('[') => format!("{parent}{child}"),
        _ => format!("{parent}.{child}"),
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.target.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.target, self.message)
        }
    }
}

impl std::error::Error for FieldError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_join_like_json_paths() {
        assert_eq!(join_path("a", "b"), "a.b");
        assert_eq!(join_path("a", "[1]"), "a[1]");
        assert_eq!(join_path("", "b"), "b");
        assert_eq!(join_path("a", ""), "a");
        let e = FieldError::new("number", "bad").within("ports[0]");
        assert_eq!(e.to_string(), "ports[0].number: bad");
    }
}
