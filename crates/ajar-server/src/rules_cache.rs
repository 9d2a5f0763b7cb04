//! Parsed policy rules, kept by policy id and ETag so a busy policy is not parsed again on every
//! request. An entry is used only while its ETag is the stored one, so it can never be stale.

use ajar_core::policy::PolicyRules;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const MAX_ENTRIES: usize = 10_000;

/// Policy id → (ETag, parsed rules).
#[derive(Debug, Default)]
pub struct RulesCache {
    entries: Mutex<HashMap<String, (String, Arc<PolicyRules>)>>,
}

impl RulesCache {
    /// The parsed rules of `policy_id` at `etag`, parsing `json` only if not cached.
    pub fn get_or_parse(
        &self,
        policy_id: &str,
        etag: &str,
        json: &str,
    ) -> Result<Arc<PolicyRules>, serde_json::Error> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((e, rules)) = entries.get(policy_id)
            && e == etag
        {
            return Ok(rules.clone());
        }
        let rules: Arc<PolicyRules> = Arc::new(serde_json::from_str(json)?);
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(policy_id.to_owned(), (etag.to_owned(), rules.clone()));
        Ok(rules)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_etag_is_parsed_again() {
        let cache = RulesCache::default();
        let a = cache.get_or_parse("p", "1", r#"{"machines":[]}"#).unwrap();
        let b = cache.get_or_parse("p", "1", "not json, never parsed").unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert!(cache.get_or_parse("p", "2", "not json").is_err());
    }
}
