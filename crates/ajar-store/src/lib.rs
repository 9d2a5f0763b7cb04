//! Persistence for ajar: one [`Store`] over SQLite (the embedded default), its migrations, and
//! transactions ([`Tx`]) with one method per query.
//!
//! The store decides no policy: callers validate with `ajar_core` and then read and write here,
//! inside one transaction per API call, so a change is stored whole or not at all.
//!
//! Queries go through sqlx's `Any` driver with portable SQL (`$1` placeholders, `BIGINT`
//! microsecond instants, JSON as `TEXT`), so SQLite and PostgreSQL share the queries and the
//! migrations.

mod activity;
mod agents;
mod application_roles;
mod applications;
mod columns;
mod enforcement;
mod figures;
mod gauges;
mod jit_requests;
mod machines;
mod notifications;
mod plans;
mod policies;
mod rbac;
mod readable;
mod requests;
mod rows;
mod settings;
mod sql;
mod tokens;
mod tx;
mod wakes;

pub use activity::{ActivityFilter, ActivityRow, NewActivity};
pub use enforcement::EnforcementRow;
pub use figures::Figures;
pub use gauges::Gauges;
pub use jit_requests::JitRequestFilter;
pub use machines::{AwsTargetKind, AwsTargets};
pub use notifications::{OutboxRow, SubscriptionRow};
pub use plans::{ListPlan, Listing};
pub use readable::Readable;
pub use requests::{ExpiredPort, NewRequest, PolicyGuard, RequestFilter, RequestsOn};
pub use rows::*;
pub use tx::{Savepoint, Tx};
pub use wakes::AgentWakes;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};
use std::str::FromStr;
use std::time::Duration;

/// The schema, in SQL that both engines run as written (`TEXT`, `BIGINT`, partial indexes).
static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The advisory lock every PostgreSQL write transaction takes first: writes are serialized
/// across replicas, so the activity chain's head, the scheduler's passes and notification
/// claims each happen once.
const WRITE_LOCK: i64 = 0x616a_6172; // "ajar"

/// How often a PostgreSQL store looks for changes made by other replicas.
pub const CHANGE_POLL: Duration = Duration::from_millis(250);

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness or reference rule of the schema was broken.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database cannot be reached, is locked for too long, or the pool is exhausted.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Stored data could not be read back (a bug or a hand-edited database).
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// Any other database error.
    #[error("store error: {0}")]
    Other(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db)
                if db.is_unique_violation() || db.is_foreign_key_violation() =>
            {
                StoreError::Conflict(db.message().to_owned())
            }
            sqlx::Error::Database(db)
                if db.message().contains("locked")
                    || db.message().contains("busy")
                    // SQLite with its disk full (SQLITE_FULL) or failing I/O (SQLITE_IOERR):
                    // the transaction wrote nothing, and space or the disk may come back.
                    || db.message().contains("database or disk is full")
                    || db.message().contains("disk I/O error")
                    // PostgreSQL shutting down or restarting (57P0x), or the connection lost
                    // (08xxx): retrying later helps.
                    || db
                        .code()
                        .is_some_and(|c| c.starts_with("57P0") || c.starts_with("08")) =>
            {
                StoreError::Unavailable(db.message().to_owned())
            }
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                StoreError::Unavailable(e.to_string())
            }
            sqlx::Error::Decode(_)
            | sqlx::Error::ColumnDecode { .. }
            | sqlx::Error::ColumnNotFound(_) => StoreError::Corrupt(e.to_string()),
            _ => StoreError::Other(e.to_string()),
        }
    }
}

/// Result of a store call.
pub type StoreResult<T> = Result<T, StoreError>;

/// Which database engine a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite file.
    Sqlite,
    /// A PostgreSQL server, possibly shared by several replicas.
    Postgres,
}

/// Connection pools to the database, migrated to the current schema.
///
/// SQLite allows one writer at a time and makes a second writer *sleep* in its busy handler, so
/// writes go through a pool of exactly one connection: writers queue in the pool (async, fair,
/// no sleeping) and readers use their own pool beside it (WAL lets them read while one writes).
#[derive(Debug, Clone)]
pub struct Store {
    readers: AnyPool,
    writer: AnyPool,
    backend: Backend,
    wakes: std::sync::Arc<AgentWakes>,
    access: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Store {
    /// Opens (creating if needed) the SQLite database at `path` and migrates it.
    pub async fn open_sqlite(path: &std::path::Path) -> StoreResult<Store> {
        sqlx::any::install_default_drivers();
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let options = AnyConnectOptions::from_str(&url)?;
        let pool = |size: u32| {
            AnyPoolOptions::new()
                .max_connections(size)
                .acquire_timeout(Duration::from_secs(10))
                // A local file does not drop connections; a ping per acquire would cost a round trip.
                .test_before_acquire(false)
                // When SQLite rolls a transaction back by itself (a full disk, an I/O error),
                // sqlx's rollback on drop fails and the connection would stay "in a
                // transaction" for good, refusing every later write: close it instead, so the
                // next write gets a fresh connection.
                .after_release(|conn, _| {
                    Box::pin(async move { Ok(!sqlx::Connection::is_in_transaction(conn)) })
                })
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        // WAL lets readers work beside the one writer; NORMAL keeps a commit
                        // durable against a crash of ajar (not of the kernel) without an fsync
                        // per commit.
                        // Checkpoints (which fsync) run in the background via
                        // `Store::checkpoint`; the automatic one is only a backstop, so a
                        // commit rarely pays for one.
                        // A page of a large store touches a few thousand pages spread over
                        // the file: 16 MiB of page cache per connection (nine at most) keeps
                        // them in the process instead of reading them again from the kernel.
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                             PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000; \
                             PRAGMA wal_autocheckpoint = 4000; PRAGMA cache_size = -16384;",
                        )
                        .await?;
                        Ok(())
                    })
                })
        };
        let writer = pool(1).connect_with(options.clone()).await?;
        MIGRATIONS
            .run(&writer)
            .await
            .map_err(|e| StoreError::Other(format!("migration failed: {e}")))?;
        let readers = pool(8).connect_with(options).await?;
        Ok(Store {
            readers,
            writer,
            backend: Backend::Sqlite,
            wakes: std::sync::Arc::default(),
            access: std::sync::Arc::default(),
        })
    }

    /// Opens the database named by `url`: `postgres://…` (or `postgresql://…`), or
    /// `sqlite://PATH`.
    pub async fn open(url: &str) -> StoreResult<Store> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Store::open_postgres(url).await
        } else if let Some(path) = url.strip_prefix("sqlite://") {
            Store::open_sqlite(std::path::Path::new(path)).await
        } else {
            Err(StoreError::Other(
                "the database URL must start with postgres://, postgresql:// or sqlite://".into(),
            ))
        }
    }

    /// Connects to PostgreSQL at `url` and migrates it. Writes serialize on an advisory lock
    /// (so several replicas can share the database); a background task notices changes made by
    /// other replicas (the revision moved) and wakes this process's long polls.
    pub async fn open_postgres(url: &str) -> StoreResult<Store> {
        sqlx::any::install_default_drivers();
        let options = AnyConnectOptions::from_str(url)?;
        let pool = |size: u32| {
            AnyPoolOptions::new()
                .max_connections(size)
                .acquire_timeout(Duration::from_secs(10))
        };
        let writer = pool(2).connect_with(options.clone()).await?;
        MIGRATIONS
            .run(&writer)
            .await
            .map_err(|e| StoreError::Other(format!("migration failed: {e}")))?;
        let readers = pool(8).connect_with(options).await?;
        let wakes = std::sync::Arc::new(AgentWakes::following());
        let access = std::sync::Arc::default();
        tokio::spawn(follow_revision(
            readers.clone(),
            wakes.clone(),
            std::sync::Arc::clone(&access),
        ));
        Ok(Store {
            readers,
            writer,
            backend: Backend::Postgres,
            wakes,
            access,
        })
    }

    /// The engine in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A connection for reads. Each query sees the latest committed state; no transaction is
    /// opened, so a read costs one round trip to the database.
    pub async fn read(&self) -> StoreResult<Tx> {
        Ok(Tx::plain(
            self.readers.acquire().await?,
            self.wakes.clone(),
            self.access.clone(),
            self.backend,
        ))
    }

    /// Starts a write transaction: waits for the single writer connection, then takes the write
    /// lock at once (`BEGIN IMMEDIATE`), so a transaction never fails on a lock upgrade.
    pub async fn write(&self) -> StoreResult<Tx> {
        let tx = match self.backend {
            Backend::Sqlite => self.writer.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => {
                let mut tx = self.writer.begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(WRITE_LOCK)
                    .execute(&mut *tx)
                    .await?;
                tx
            }
        };
        Ok(Tx::transaction(
            tx,
            self.wakes.clone(),
            self.access.clone(),
            self.backend,
        ))
    }

    /// Copies committed pages from the write-ahead log into the database without blocking the
    /// writer (SQLite `PASSIVE` checkpoint). Run it periodically, off the request path.
    pub async fn checkpoint(&self) -> StoreResult<()> {
        match self.backend {
            Backend::Sqlite => {
                sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                    .execute(&self.readers)
                    .await?;
            }
            Backend::Postgres => {}
        }
        Ok(())
    }

    /// The waiters on each agent's revision: a commit that changes an agent's desired state
    /// (through this store, or on PostgreSQL through another replica, within [`CHANGE_POLL`])
    /// raises that agent's revision there, and no other agent's.
    pub fn agent_wakes(&self) -> &AgentWakes {
        &self.wakes
    }

    /// A number that grows with every commit that changed tokens, roles, assignments, groups,
    /// applications, eligibility or role requests: at once for commits through this store, and
    /// within [`CHANGE_POLL`] for another replica's (on PostgreSQL). What is derived from those
    /// (resolved tokens, the authorize index) is current as long as it stays the same: read it
    /// before reading the store, and compare it before reuse.
    pub fn access_generation(&self) -> u64 {
        self.access.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Closes every connection; waits for transactions in flight.
    pub async fn close(&self) {
        self.readers.close().await;
        self.writer.close().await;
    }
}

/// Follows the stored revisions: whenever the enforcement revision moves, wakes this process's
/// waiters of the agents whose revision moved with it, and moves this process's access generation whenever the access revision
/// does (another replica changed what enforcement points apply, or who may do what). Ends when
/// the pool closes.
async fn follow_revision(
    pool: AnyPool,
    wakes: std::sync::Arc<AgentWakes>,
    access: std::sync::Arc<std::sync::atomic::AtomicU64>,
) {
    let mut seen: Option<(i64, i64)> = None;
    loop {
        if pool.is_closed() {
            return;
        }
        let now: Option<(i64, i64)> = sqlx::query_as(
            "SELECT r.value, a.value FROM revision r, access_revision a WHERE r.id = 1 AND a.id = 1",
        )
        .fetch_one(&pool)
        .await
        .ok();
        if let (Some((revision, access_revision)), Some((seen_revision, seen_access))) = (now, seen)
        {
            if revision != seen_revision {
                let moved: Result<Vec<(String, i64)>, _> =
                    sqlx::query_as(wakes::AGENTS_CHANGED_AFTER)
                        .bind(seen_revision)
                        .fetch_all(&pool)
                        .await;
                match moved {
                    Ok(moved) => {
                        for (agent, at) in moved {
                            wakes.note(&agent, at);
                        }
                    }
                    // Looked for again on the next round.
                    Err(_) => {
                        tokio::time::sleep(CHANGE_POLL).await;
                        continue;
                    }
                }
            }
            if access_revision != seen_access {
                access.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
        if now.is_some() {
            wakes.followed();
            seen = now;
        }
        tokio::time::sleep(CHANGE_POLL).await;
    }
}

/// A store for a unit test: a fresh SQLite file in `dir`, or with `AJAR_TEST_DB=postgres` a fresh
/// database in the throwaway test cluster.
#[cfg(test)]
pub(crate) async fn test_store(dir: &std::path::Path) -> Store {
    if ajar_pgtest::enabled() {
        let url = tokio::task::spawn_blocking(ajar_pgtest::fresh_database)
            .await
            .unwrap_or_default();
        Store::open(&url).await.unwrap_or_else(|e| panic!("{e}"))
    } else {
        Store::open_sqlite(&dir.join("t.db"))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Row;

    #[tokio::test]
    async fn the_access_generation_moves_only_on_a_committed_change_to_access() {
        let dir = tempfile::tempdir().unwrap();
        let store = test_store(dir.path()).await;
        let now = jiff::Timestamp::from_second(1_000).unwrap();
        let record = NewActivity::new(now, "admin", "ajar.test/write", "/");
        let start = store.access_generation();
        // Rolled back: nothing changed.
        let mut tx = store.write().await.unwrap();
        tx.put_group("ops", &["alice".to_owned()], now)
            .await
            .unwrap();
        drop(tx);
        assert_eq!(store.access_generation(), start);
        // A change to something else: access is still current.
        let mut tx = store.write().await.unwrap();
        tx.record(&record).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(store.access_generation(), start);
        // Committed: everything derived from access is stale.
        let mut tx = store.write().await.unwrap();
        tx.put_group("ops", &["alice".to_owned()], now)
            .await
            .unwrap();
        tx.record(&record).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(store.access_generation(), start + 1);
        // A savepoint rolled back forgets that it touched access.
        let mut tx = store.write().await.unwrap();
        let point = tx.savepoint().await.unwrap();
        tx.delete_group("ops").await.unwrap();
        tx.rollback_to(point).await.unwrap();
        tx.record(&record).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(store.access_generation(), start + 1);
    }

    /// Always on the throwaway PostgreSQL cluster: replicas share PostgreSQL, not SQLite.
    #[tokio::test]
    async fn another_replicas_access_change_makes_this_ones_caches_stale() {
        let url = tokio::task::spawn_blocking(ajar_pgtest::fresh_database)
            .await
            .unwrap();
        let (a, b) = (
            Store::open(&url).await.unwrap(),
            Store::open(&url).await.unwrap(),
        );
        let now = jiff::Timestamp::from_second(1_000).unwrap();
        let before = b.access_generation();
        // Let b's follower see the revisions once before the change.
        tokio::time::sleep(CHANGE_POLL * 2).await;
        let mut tx = a.write().await.unwrap();
        tx.put_group("ops", &["alice".to_owned()], now)
            .await
            .unwrap();
        tx.commit_recorded(&NewActivity::new(now, "admin", "ajar.test/write", "/"))
            .await
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while b.access_generation() == before {
            assert!(
                std::time::Instant::now() < deadline,
                "b never noticed a's change to access"
            );
            tokio::time::sleep(CHANGE_POLL / 5).await;
        }
    }

    #[tokio::test]
    async fn sqlite_runs_in_wal_mode_without_fsync_per_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("t.db")).await.unwrap();
        for pool in [&store.writer, &store.readers] {
            let mode: String = sqlx::query("PRAGMA journal_mode")
                .fetch_one(pool)
                .await
                .unwrap()
                .get(0);
            let sync: i64 = sqlx::query("PRAGMA synchronous")
                .fetch_one(pool)
                .await
                .unwrap()
                .get(0);
            assert_eq!((mode.as_str(), sync), ("wal", 1));
        }
    }

    /// A disk that fills up (here: the database capped at its size) refuses writes as
    /// unavailable, and once there is room again the next write works: the one writer
    /// connection must not stay stuck in a transaction SQLite already rolled back.
    #[tokio::test]
    async fn a_full_disk_refuses_writes_as_unavailable_and_the_writer_recovers() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("t.db")).await.unwrap();
        let pages: i64 = sqlx::query("PRAGMA page_count")
            .fetch_one(&store.writer)
            .await
            .unwrap()
            .get(0);
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "PRAGMA max_page_count = {}",
            pages + 3
        )))
        .execute(&store.writer)
        .await
        .unwrap();
        let mut refused = None;
        for i in 0..1_000 {
            let mut tx = store.write().await.unwrap();
            let wrote = match tx.set_meta(&format!("k{i}"), &"x".repeat(8_000)).await {
                Ok(()) => tx.commit_unrecorded().await,
                Err(e) => Err(e),
            };
            if let Err(e) = wrote {
                refused = Some(e);
                break;
            }
        }
        assert!(
            matches!(refused, Some(StoreError::Unavailable(_))),
            "{refused:?}"
        );
        sqlx::query("PRAGMA max_page_count = 1073741823")
            .execute(&store.writer)
            .await
            .unwrap();
        for i in 0..3 {
            let mut tx = store.write().await.unwrap();
            tx.set_meta(&format!("after{i}"), "ok").await.unwrap();
            tx.commit_unrecorded().await.unwrap();
        }
        let mut tx = store.read().await.unwrap();
        assert_eq!(tx.meta("after2").await.unwrap().as_deref(), Some("ok"));
    }
}

#[cfg(test)]
mod request_tests {
    use super::*;
    use ajar_core::request::{PortStatus, StatusReason};
    use jiff::Timestamp;

    const POLICY: &str = "/subscriptions/s/resourceGroups/rg/jitNetworkAccessPolicies/p";

    async fn store_with_policy() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::test_store(dir.path()).await;
        let mut tx = store.write().await.unwrap();
        tx.put_policy(
            POLICY,
            "s",
            "rg",
            "p",
            "{}",
            &[],
            "e1",
            None,
            Timestamp::UNIX_EPOCH,
        )
        .await
        .unwrap();
        tx.commit_unrecorded().await.unwrap();
        (dir, store)
    }

    fn request(id: &str) -> (RequestRow, Vec<PortRow>) {
        let at = Timestamp::from_second(1_000).unwrap();
        let req = RequestRow {
            id: id.into(),
            policy_id: POLICY.into(),
            requestor: "alice".into(),
            justification: None,
            source_address: None,
            created_at: at,
        };
        let port = PortRow::initiated(
            id,
            0,
            "/subscriptions/s/resourceGroups/rg/machines/m".into(),
            22,
            "*".into(),
            vec!["10.0.0.1".into()],
            "m|22|*|10.0.0.1".into(),
            Timestamp::from_second(5_000).unwrap(),
        );
        (req, vec![port])
    }

    async fn insert(
        store: &Store,
        items: &[(&(RequestRow, Vec<PortRow>), &str)],
        scopes: &[String],
    ) -> Vec<bool> {
        let batch: Vec<NewRequest<'_>> = items
            .iter()
            .map(|((req, ports), etag)| NewRequest {
                request: req,
                ports,
                guard: PolicyGuard {
                    etag,
                    blocking_scopes: scopes,
                },
            })
            .collect();
        let mut tx = store.write().await.unwrap();
        let stored = tx.insert_requests(&batch).await.unwrap();
        tx.commit_unrecorded().await.unwrap();
        stored
    }

    #[tokio::test]
    async fn a_batch_stores_in_order_and_later_requests_supersede_earlier_ones() {
        let (_dir, store) = store_with_policy().await;
        let (a, b) = (request("a"), request("b"));
        assert_eq!(
            insert(&store, &[(&a, "e1"), (&b, "e1")], &[]).await,
            vec![true, true]
        );
        let mut tx = store.read().await.unwrap();
        let (_, a_ports) = tx.request("a").await.unwrap().unwrap();
        let (_, b_ports) = tx.request("b").await.unwrap().unwrap();
        assert_eq!(
            a_ports[0].status_reason,
            StatusReason::NewerRequestInitiated
        );
        assert_eq!(b_ports[0].status, PortStatus::Initiated);
    }

    #[tokio::test]
    async fn a_failed_guard_writes_nothing_of_that_request() {
        let (_dir, store) = store_with_policy().await;
        let (old, stale, ok) = (request("old"), request("stale"), request("ok"));
        assert_eq!(insert(&store, &[(&old, "e1")], &[]).await, vec![true]);
        // "stale" was checked against an older policy version: not stored, and it must not
        // supersede "old" either.
        assert_eq!(insert(&store, &[(&stale, "e0")], &[]).await, vec![false]);
        let mut tx = store.read().await.unwrap();
        assert!(tx.request("stale").await.unwrap().is_none());
        let (_, old_ports) = tx.request("old").await.unwrap().unwrap();
        assert_eq!(old_ports[0].status, PortStatus::Initiated);
        drop(tx);
        // JIT turned off at a blocking scope.
        let mut tx = store.write().await.unwrap();
        tx.put_jit_enabled("/subscriptions/s", false, Timestamp::UNIX_EPOCH)
            .await
            .unwrap();
        tx.commit_unrecorded().await.unwrap();
        let scopes = vec![
            "/subscriptions/s/resourceGroups/rg".to_owned(),
            "/subscriptions/s".to_owned(),
        ];
        assert_eq!(insert(&store, &[(&ok, "e1")], &scopes).await, vec![false]);
        assert_eq!(insert(&store, &[(&ok, "e1")], &[]).await, vec![true]);
    }

    #[tokio::test]
    async fn an_unreadable_value_is_corrupt_and_names_its_column() {
        let (_dir, store) = store_with_policy().await;
        let a = request("a");
        assert_eq!(insert(&store, &[(&a, "e1")], &[]).await, [true]);
        let mut tx = store.write().await.unwrap();
        sqlx::query("UPDATE request_ports SET status_reason = 'Bogus' WHERE request_id = 'a'")
            .execute(tx.c())
            .await
            .unwrap();
        tx.commit_unrecorded().await.unwrap();
        let mut tx = store.read().await.unwrap();
        match tx.request("a").await {
            Err(StoreError::Corrupt(e)) => {
                assert!(e.contains("status_reason") && e.contains("Bogus"), "{e}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn live_grants_are_counted_per_requestor_through_an_index() {
        use sqlx::Row;
        let (_dir, store) = store_with_policy().await;
        let a = request("a");
        let (mut b_req, mut b_ports) = request("b");
        b_req.requestor = "bob".into();
        b_ports[0].supersede_key = "m|22|*|10.0.0.2".into();
        let b = (b_req, b_ports);
        assert_eq!(
            insert(&store, &[(&a, "e1"), (&b, "e1")], &[]).await,
            [true, true]
        );
        let mut tx = store.read().await.unwrap();
        let before_end = Timestamp::from_second(4_999).unwrap();
        let at_end = Timestamp::from_second(5_000).unwrap();
        assert_eq!(
            tx.live_grant_keys("alice", before_end, 10).await.unwrap(),
            ["m|22|*|10.0.0.1"]
        );
        assert!(
            tx.live_grant_keys("alice", at_end, 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            tx.live_grant_keys("bob", before_end, 10)
                .await
                .unwrap()
                .len(),
            1
        );

        assert!(
            tx.live_grant_keys("bob", before_end, 0)
                .await
                .unwrap()
                .is_empty(),
            "at most as many as asked"
        );
        // The plans of the queries that count grants and follow tokens made with tokens.
        let queries = [
            (
                "SELECT supersede_key FROM request_ports \
                 WHERE requestor = 'alice' AND status = 'Initiated' AND end_time > 1",
                "request_ports_live_by_requestor",
            ),
            (
                "SELECT id FROM tokens WHERE parent_id = 'x'",
                "tokens_by_parent",
            ),
            (
                "SELECT COUNT(*) FROM jit_requests WHERE requester = 'alice' AND state = 'Pending'",
                "jit_requests_pending_by_requester",
            ),
        ];
        let postgres = store.backend() == Backend::Postgres;
        if postgres {
            // The test tables are tiny; ask whether the index can serve, not whether it pays.
            sqlx::query("SET enable_seqscan = off")
                .execute(tx.c())
                .await
                .unwrap();
        }
        for (query, index) in queries {
            let explain = if postgres {
                format!("EXPLAIN {query}")
            } else {
                format!("EXPLAIN QUERY PLAN {query}")
            };
            let plan: Vec<String> = sqlx::query(sqlx::AssertSqlSafe(explain))
                .fetch_all(tx.c())
                .await
                .unwrap()
                .iter()
                .map(|r| {
                    let column = if postgres { 0 } else { 3 };
                    r.try_get::<String, _>(column).unwrap_or_default()
                })
                .collect();
            assert!(
                plan.iter().any(|line| line.contains(index)),
                "{query}: {plan:?}"
            );
        }
    }
}
