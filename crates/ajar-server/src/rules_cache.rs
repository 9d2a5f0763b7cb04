//! Parsed policy rules, kept by policy id and ETag so a busy policy is neither read in full nor
//! parsed again on every request. An entry is used only while its ETag is the stored one, so it
//! is never stale.

use crate::error::AppError;
use ajar_core::policy::PolicyRules;
use ajar_store::Tx;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const MAX_ENTRIES: usize = 10_000;

/// Policy id → (ETag, parsed rules).
#[derive(Debug, Default)]
pub struct RulesCache {
    entries: Mutex<HashMap<String, (String, Arc<PolicyRules>)>>,
}

impl RulesCache {
    fn cached(&self, policy_id: &str, etag: &str) -> Option<Arc<PolicyRules>> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(policy_id)
            .filter(|(e, _)| e == etag)
            .map(|(_, rules)| rules.clone())
    }

    fn insert(&self, policy_id: &str, etag: &str, rules: Arc<PolicyRules>) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(policy_id.to_owned(), (etag.to_owned(), rules));
    }

    /// The rules of a policy whose ETag was just read as `etag`: from the cache, or read and
    /// parsed. `None` if the policy is gone; the returned ETag may be newer than `etag` if it
    /// changed in between.
    pub async fn at(
        &self,
        tx: &mut Tx,
        policy_id: &str,
        etag: &str,
    ) -> Result<Option<(String, Arc<PolicyRules>)>, AppError> {
        if let Some(rules) = self.cached(policy_id, etag) {
            return Ok(Some((etag.to_owned(), rules)));
        }
        self.read(tx, policy_id).await
    }

    async fn read(
        &self,
        tx: &mut Tx,
        policy_id: &str,
    ) -> Result<Option<(String, Arc<PolicyRules>)>, AppError> {
        let Some(row) = tx.policy(policy_id).await? else {
            return Ok(None);
        };
        let rules: Arc<PolicyRules> = Arc::new(row.rules);
        self.insert(policy_id, &row.etag, rules.clone());
        Ok(Some((row.etag, rules)))
    }

    /// The policy's current ETag and rules, or `None` if it does not exist. Reads only the
    /// ETag when the rules at that ETag are cached.
    pub async fn load(
        &self,
        tx: &mut Tx,
        policy_id: &str,
    ) -> Result<Option<(String, Arc<PolicyRules>)>, AppError> {
        let Some(etag) = tx.policy_etag(policy_id).await? else {
            return Ok(None);
        };
        self.at(tx, policy_id, &etag).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_used_only_at_their_etag() {
        let cache = RulesCache::default();
        let rules = Arc::new(PolicyRules {
            machines: vec![],
            cut_established: false,
            approval: Default::default(),
        });
        cache.insert("p", "1", rules.clone());
        assert!(
            cache
                .cached("p", "1")
                .is_some_and(|r| Arc::ptr_eq(&r, &rules))
        );
        assert!(cache.cached("p", "2").is_none());
        assert!(cache.cached("q", "1").is_none());
    }
}
