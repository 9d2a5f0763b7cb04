//! Registered agents by name, held in memory while the store's access generation stays the
//! same (deleting an agent moves it; a name not registered is never held, so registering needs
//! nothing), so a long poll finds its agent without a query.

use ajar_store::{AgentRow, Store, StoreResult};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Agents read since the access generation last moved.
#[derive(Debug, Default)]
pub struct AgentCache {
    held: Mutex<(u64, HashMap<String, Arc<AgentRow>>)>,
}

impl AgentCache {
    /// The agent named `name`, from memory when the generation still holds, else from the
    /// store; `None` when no such agent is registered.
    pub async fn by_name(&self, store: &Store, name: &str) -> StoreResult<Option<Arc<AgentRow>>> {
        // Read the generation first: a change committed during the read below moves it, so
        // what is read is not kept past it.
        let generation = store.access_generation();
        {
            let held = self.held.lock().unwrap_or_else(|e| e.into_inner());
            if held.0 == generation
                && let Some(agent) = held.1.get(name)
            {
                return Ok(Some(Arc::clone(agent)));
            }
        }
        let Some(agent) = store.read().await?.agent_by_name(name).await? else {
            return Ok(None);
        };
        let agent = Arc::new(agent);
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if held.0 != generation {
            *held = (generation, HashMap::new());
        }
        held.1.insert(name.to_owned(), Arc::clone(&agent));
        Ok(Some(agent))
    }
}
