//! Which agents a commit concerns, and this process's waiters on each agent's revision.
//!
//! A commit that changes what enforcement points apply takes the next revision and writes it on
//! the guarded machines it changed and on their agents ([`Tx::write_revisions`]). It then wakes
//! the long polls of those agents only; other agents sleep on. On PostgreSQL another replica's
//! commits are found by `follow_revision`, which reads the agents whose revision moved.

use crate::StoreResult;
use crate::sql::{SqlBuilder, push_in_list};
use crate::tx::Tx;
use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use tokio::sync::watch;

/// The agents whose revision moved past `$1`: what another replica changed (through
/// `agents_by_revision`).
pub(crate) const AGENTS_CHANGED_AFTER: &str = "SELECT id, revision FROM agents WHERE revision > $1";

/// Most values bound in one statement of the revision bookkeeping.
const CHUNK: usize = 500;

/// The latest known revision of each agent a long poll of this process has waited for.
#[derive(Debug, Default)]
pub struct AgentWakes {
    waiters: Mutex<HashMap<String, watch::Sender<i64>>>,
    /// When other replicas' changes were last looked for; `None` for a store no other process
    /// writes to (SQLite), whose revisions this process always knows.
    followed: Mutex<Option<std::time::Instant>>,
}

/// How long other replicas' changes may go unlooked-for before this process's revisions are no
/// longer taken as current.
const FOLLOW_STALE: std::time::Duration = std::time::Duration::from_secs(2);

impl AgentWakes {
    /// Waiters for a store that other replicas write to: current only while
    /// [`AgentWakes::followed`] keeps being called.
    pub(crate) fn following() -> Self {
        Self {
            followed: Mutex::new(Some(std::time::Instant::now())),
            ..Self::default()
        }
    }

    /// Notes that other replicas' changes were just looked for, and those found noted.
    pub(crate) fn followed(&self) {
        *self.followed.lock().unwrap_or_else(|e| e.into_inner()) = Some(std::time::Instant::now());
    }

    /// Whether the revisions held here are current: always for a store only this process
    /// writes; on PostgreSQL, while other replicas' changes are being followed (a stalled
    /// follower makes long polls read the store again).
    pub fn current(&self) -> bool {
        match *self.followed.lock().unwrap_or_else(|e| e.into_inner()) {
            None => true,
            Some(at) => at.elapsed() < FOLLOW_STALE,
        }
    }

    /// A receiver of `agent`'s revision, and whether it was just made: a new one holds 0
    /// until [`AgentWakes::note`] gives it the stored revision.
    pub fn subscribe(&self, agent: &str) -> (watch::Receiver<i64>, bool) {
        let mut waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        match waiters.get(agent) {
            Some(sender) => (sender.subscribe(), false),
            None => {
                let (sender, receiver) = watch::channel(0);
                waiters.insert(agent.to_owned(), sender);
                (receiver, true)
            }
        }
    }

    /// Notes that `agent`'s revision is at least `revision`, waking its waiters when it moved.
    pub fn note(&self, agent: &str, revision: i64) {
        self.wake([agent], revision);
    }

    /// Notes `revision` for each of `agents`.
    pub(crate) fn wake<'a>(&self, agents: impl IntoIterator<Item = &'a str>, revision: i64) {
        let waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        for agent in agents {
            if let Some(sender) = waiters.get(agent) {
                raise(sender, revision);
            }
        }
    }
}

fn raise(sender: &watch::Sender<i64>, revision: i64) {
    sender.send_if_modified(|current| {
        let moved = revision > *current;
        if moved {
            *current = revision;
        }
        moved
    });
}

/// What a transaction changed for enforcement points, until it commits.
#[derive(Debug, Default)]
pub(crate) struct Touched {
    /// Guarded or not, the machines whose protected ports, addresses or grants changed.
    pub machines: Vec<String>,
    /// Agents whose set of machines changed (or that were registered or deleted).
    pub agents: Vec<String>,
    /// Whether anything changed at all (a policy without machines changes no machine).
    pub any: bool,
}

impl Tx {
    /// Notes that the desired state of these machines changed.
    pub(crate) fn touch_machines<S: Into<String>>(
        &mut self,
        machines: impl IntoIterator<Item = S>,
    ) {
        self.touched.any = true;
        self.touched
            .machines
            .extend(machines.into_iter().map(Into::into));
    }

    /// Notes that this agent's set of machines changed: it reads its whole state again.
    pub(crate) fn touch_agent_machines(&mut self, agent: &str) {
        self.touched.any = true;
        self.touched.agents.push(agent.to_owned());
    }

    /// Takes the next revision and writes it on the changed machines' agents (and on the
    /// machines themselves); answers it and the agents to wake. Runs once, at commit.
    pub(crate) async fn write_revisions(&mut self) -> StoreResult<(i64, BTreeSet<String>)> {
        let revision: i64 = sqlx::query_scalar(
            "UPDATE revision SET value = value + 1 WHERE id = 1 RETURNING value",
        )
        .fetch_one(self.c())
        .await?;
        let machines: BTreeSet<String> = std::mem::take(&mut self.touched.machines)
            .into_iter()
            .collect();
        let reset: BTreeSet<String> = std::mem::take(&mut self.touched.agents)
            .into_iter()
            .collect();
        let mut agents = reset.clone();
        let machines: Vec<&str> = machines.iter().map(String::as_str).collect();
        for chunk in machines.chunks(CHUNK) {
            let mut sql = SqlBuilder::new("UPDATE agent_machines SET revision = ");
            sql.push_bind(revision).push(" WHERE machine_id IN ");
            push_in_list(&mut sql, chunk.iter().copied());
            sql.push(" RETURNING agent_id");
            let changed: Vec<String> = sql
                .build_query_scalar()?
                .persistent(false)
                .fetch_all(self.c())
                .await?;
            agents.extend(changed);
        }
        for (column, ids) in [("revision", &agents), ("full_revision", &reset)] {
            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            for chunk in ids.chunks(CHUNK) {
                let mut sql = SqlBuilder::new(format!("UPDATE agents SET {column} = "));
                sql.push_bind(revision).push(" WHERE id IN ");
                push_in_list(&mut sql, chunk.iter().copied());
                sql.build()?.persistent(false).execute(self.c()).await?;
            }
        }
        Ok((revision, agents))
    }

    /// An agent's revision (the last change to its desired state) and the last change to its set
    /// of machines; `None` when it is not registered.
    pub async fn agent_revisions(&mut self, agent: &str) -> StoreResult<Option<(i64, i64)>> {
        Ok(
            sqlx::query_as("SELECT revision, full_revision FROM agents WHERE id = $1")
                .bind(agent)
                .fetch_optional(self.c())
                .await?,
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::{AgentRow, NewActivity, Store, test_store};
    use jiff::Timestamp;

    const M1: &str = "/subscriptions/s/resourceGroups/g/machines/m1";
    const M2: &str = "/subscriptions/s/resourceGroups/g/machines/m2";

    fn now() -> Timestamp {
        Timestamp::from_second(1_000).unwrap()
    }

    fn agent(id: &str, machines: &[&str]) -> AgentRow {
        AgentRow {
            id: id.to_owned(),
            name: id.to_owned(),
            mode: "host".to_owned(),
            public_address: None,
            port_range: None,
            token_id: format!("token-{id}"),
            last_seen: None,
            version: None,
            applied_revision: None,
            revision: 0,
            machines: machines.iter().map(|m| (*m).to_owned()).collect(),
            address_prefixes: None,
            inventory_scope: None,
        }
    }

    async fn touch_machine(store: &Store, id: &str) {
        let name = id.rsplit('/').next().unwrap();
        let mut tx = store.write().await.unwrap();
        tx.put_machine(id, "s", "g", name, "{}", Default::default(), now())
            .await
            .unwrap();
        tx.commit_recorded(&NewActivity::new(now(), "admin", "ajar.test/write", id))
            .await
            .unwrap();
    }

    /// Machines m1 and m2, guarded by agents a and b.
    async fn two_agents(store: &Store) {
        touch_machine(store, M1).await;
        touch_machine(store, M2).await;
        let mut tx = store.write().await.unwrap();
        tx.insert_agent(&agent("a", &[M1]), now()).await.unwrap();
        tx.insert_agent(&agent("b", &[M2]), now()).await.unwrap();
        tx.commit_recorded(&NewActivity::new(now(), "admin", "ajar.test/write", "/"))
            .await
            .unwrap();
    }

    async fn revisions(store: &Store, agent: &str) -> (i64, i64) {
        let mut tx = store.read().await.unwrap();
        tx.agent_revisions(agent).await.unwrap().unwrap()
    }

    async fn changed_since(store: &Store, agent: &str, since: i64) -> Vec<String> {
        let mut tx = store.read().await.unwrap();
        let machines = tx.agent_machines_since(agent, Some(since)).await.unwrap();
        machines.into_iter().map(|m| m.id).collect()
    }

    #[tokio::test]
    async fn a_commit_wakes_the_agents_of_the_machines_it_changed_and_no_others() {
        let dir = tempfile::tempdir().unwrap();
        let store = test_store(dir.path()).await;
        two_agents(&store).await;
        let (a0, a_full) = revisions(&store, "a").await;
        let (b0, _) = revisions(&store, "b").await;
        assert_eq!(a0, a_full, "registering sets both");
        let wakes = store.agent_wakes();
        let (mut a, _) = wakes.subscribe("a");
        let (mut b, _) = wakes.subscribe("b");
        wakes.note("a", a0);
        wakes.note("b", b0);
        a.borrow_and_update();
        b.borrow_and_update();

        touch_machine(&store, M1).await;
        let (a1, a1_full) = revisions(&store, "a").await;
        assert!(a1 > a0);
        assert_eq!(a1_full, a_full, "its set of machines did not change");
        assert!(a.has_changed().unwrap());
        assert_eq!(*a.borrow_and_update(), a1);
        assert!(!b.has_changed().unwrap(), "b guards nothing that changed");
        assert_eq!(revisions(&store, "b").await.0, b0);
        assert_eq!(changed_since(&store, "a", a0).await, [M1]);
        assert!(changed_since(&store, "a", a1).await.is_empty());
        assert!(changed_since(&store, "b", b0).await.is_empty());

        // A change undone by a savepoint wakes no one.
        let mut tx = store.write().await.unwrap();
        let point = tx.savepoint().await.unwrap();
        tx.put_machine(M2, "s", "g", "m2", "{}", Default::default(), now())
            .await
            .unwrap();
        tx.rollback_to(point).await.unwrap();
        tx.commit_recorded(&NewActivity::new(now(), "admin", "ajar.test/write", "/"))
            .await
            .unwrap();
        assert!(!b.has_changed().unwrap());
        assert_eq!(revisions(&store, "b").await.0, b0);

        // Deleting a guarded machine changes its agent's set of machines.
        let mut tx = store.write().await.unwrap();
        tx.delete_machine(M2).await.unwrap();
        tx.commit_recorded(&NewActivity::new(now(), "admin", "ajar.test/write", M2))
            .await
            .unwrap();
        let (b1, b1_full) = revisions(&store, "b").await;
        assert!(b1 > b0 && b1 == b1_full);
        assert_eq!(*b.borrow_and_update(), b1);
        assert!(!a.has_changed().unwrap());
    }

    #[test]
    fn followed_revisions_are_current_only_while_followed() {
        assert!(
            super::AgentWakes::default().current(),
            "nothing else writes"
        );
        let following = super::AgentWakes::following();
        assert!(following.current());
        *following.followed.lock().unwrap() =
            Some(std::time::Instant::now() - super::FOLLOW_STALE * 2);
        assert!(!following.current(), "a stalled follower is not trusted");
        following.followed();
        assert!(following.current());
    }

    /// Always on the throwaway PostgreSQL cluster: replicas share PostgreSQL, not SQLite.
    #[tokio::test]
    async fn another_replicas_change_wakes_only_its_agents_here() {
        let url = tokio::task::spawn_blocking(ajar_pgtest::fresh_database)
            .await
            .unwrap();
        let (here, there) = (
            Store::open(&url).await.unwrap(),
            Store::open(&url).await.unwrap(),
        );
        two_agents(&there).await;
        let wakes = here.agent_wakes();
        let (mut a, _) = wakes.subscribe("a");
        let (mut b, _) = wakes.subscribe("b");
        wakes.note("a", revisions(&here, "a").await.0);
        wakes.note("b", revisions(&here, "b").await.0);
        a.borrow_and_update();
        b.borrow_and_update();
        // Let this replica's follower see the revision once before the change.
        tokio::time::sleep(crate::CHANGE_POLL * 2).await;
        touch_machine(&there, M2).await;
        let moved = tokio::time::timeout(std::time::Duration::from_secs(10), b.changed()).await;
        assert!(
            moved.is_ok(),
            "b was never woken by the other replica's change"
        );
        assert_eq!(*b.borrow_and_update(), revisions(&here, "b").await.0);
        assert!(!a.has_changed().unwrap(), "a guards nothing that changed");
    }
}
