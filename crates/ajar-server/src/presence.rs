//! When each agent was last heard from. A long poll notes it here, in memory; the scheduler
//! writes what was noted in one transaction per pass (and once more at shutdown), so a poll
//! costs no write. Readers see the later of the stored and the noted time.

use ajar_store::{Store, StoreResult};
use jiff::Timestamp;
use std::collections::HashMap;
use std::sync::Mutex;

/// Last-seen times noted since they were last written.
#[derive(Debug, Default)]
pub struct Presence {
    unsaved: Mutex<HashMap<String, Timestamp>>,
}

impl Presence {
    /// Notes that `agent` was heard from at `at`.
    pub fn seen(&self, agent: &str, at: Timestamp) {
        let mut unsaved = self.unsaved.lock().unwrap_or_else(|e| e.into_inner());
        let noted = unsaved.entry(agent.to_owned()).or_insert(at);
        *noted = (*noted).max(at);
    }

    /// When `agent` was last heard from: the later of `stored` and what was noted.
    pub fn last_seen(&self, agent: &str, stored: Option<Timestamp>) -> Option<Timestamp> {
        let unsaved = self.unsaved.lock().unwrap_or_else(|e| e.into_inner());
        match (stored, unsaved.get(agent).copied()) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// Writes every noted time in one transaction and answers how many. What cannot be written
    /// is noted again for the next pass.
    pub async fn flush(&self, store: &Store) -> StoreResult<usize> {
        let noted = std::mem::take(&mut *self.unsaved.lock().unwrap_or_else(|e| e.into_inner()));
        if noted.is_empty() {
            return Ok(0);
        }
        let written = async {
            let mut tx = store.write().await?;
            for (agent, at) in &noted {
                tx.touch_agent(agent, *at).await?;
            }
            // Last-seen bookkeeping: changes no object.
            tx.commit_unrecorded().await
        }
        .await;
        match written {
            Ok(()) => Ok(noted.len()),
            Err(e) => {
                for (agent, at) in noted {
                    self.seen(&agent, at);
                }
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_later_time_wins() {
        let p = Presence::default();
        let (t1, t2) = (
            Timestamp::from_second(100).unwrap(),
            Timestamp::from_second(200).unwrap(),
        );
        assert_eq!(p.last_seen("a", None), None);
        assert_eq!(p.last_seen("a", Some(t1)), Some(t1));
        p.seen("a", t2);
        p.seen("a", t1);
        assert_eq!(p.last_seen("a", None), Some(t2));
        assert_eq!(p.last_seen("a", Some(t1)), Some(t2));
        assert_eq!(p.last_seen("b", Some(t1)), Some(t1));
    }
}
