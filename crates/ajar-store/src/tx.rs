//! One transaction ([`Tx`]) and what every query shares: the connection and prefix matching.
//! The queries themselves live beside it, one module per aggregate (`machines`, `policies`,
//! `requests`, …), each adding methods to [`Tx`]; rows are decoded by [`crate::rows`].

use crate::{StoreError, StoreResult};
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, Transaction};

/// A write transaction, or a plain connection for reads. Dropping a transaction without
/// [`Tx::commit`] rolls everything back.
pub struct Tx {
    conn: Conn,
    /// Woken on commit: the agents whose desired state this transaction changed.
    wakes: std::sync::Arc<crate::AgentWakes>,
    /// What this transaction changed for enforcement points.
    pub(crate) touched: crate::wakes::Touched,
    /// Counts commits that changed who may do what (see [`crate::Store::access_generation`]).
    access: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Whether this transaction changed tokens, roles, assignments, groups, applications,
    /// eligibility or role requests.
    pub(crate) touched_access: bool,
    /// The activity log's last `(seq, hash)` once this transaction has read or appended it.
    pub(crate) chain_head: Option<(i64, String)>,
    /// Activity records appended by this transaction.
    pub(crate) recorded: usize,
    /// The scopes of the records appended, written in one statement when the transaction
    /// commits.
    pub(crate) record_scopes: Vec<(String, i64)>,
    /// The engine, for the few statements that differ.
    pub(crate) backend: crate::Backend,
}

/// A point a transaction can go back to (see [`Tx::savepoint`]).
#[derive(Debug)]
pub struct Savepoint {
    touched: (usize, usize, bool),
    touched_access: bool,
    record_scopes: usize,
    chain_head: Option<(i64, String)>,
    recorded: usize,
}

enum Conn {
    Transaction(Transaction<'static, Any>),
    Plain(PoolConnection<Any>),
}

/// SQL that holds when `column` starts with the text bound as parameter `$param`, compared
/// exactly as RBAC compares scopes: case-sensitive on both engines (SQLite's `LIKE` folds ASCII
/// case) and with no wildcard characters.
pub(crate) fn starts_with(column: &str, param: usize) -> String {
    format!("substr({column}, 1, length(CAST(${param} AS TEXT))) = CAST(${param} AS TEXT)")
}

impl Tx {
    pub(crate) fn transaction(
        tx: Transaction<'static, Any>,
        wakes: std::sync::Arc<crate::AgentWakes>,
        access: std::sync::Arc<std::sync::atomic::AtomicU64>,
        backend: crate::Backend,
    ) -> Self {
        Self {
            conn: Conn::Transaction(tx),
            wakes,
            touched: Default::default(),
            access,
            touched_access: false,
            chain_head: None,
            recorded: 0,
            record_scopes: Vec::new(),
            backend,
        }
    }

    pub(crate) fn plain(
        conn: PoolConnection<Any>,
        wakes: std::sync::Arc<crate::AgentWakes>,
        access: std::sync::Arc<std::sync::atomic::AtomicU64>,
        backend: crate::Backend,
    ) -> Self {
        Self {
            conn: Conn::Plain(conn),
            wakes,
            touched: Default::default(),
            access,
            touched_access: false,
            chain_head: None,
            recorded: 0,
            record_scopes: Vec::new(),
            backend,
        }
    }

    pub(crate) fn c(&mut self) -> &mut AnyConnection {
        match &mut self.conn {
            Conn::Transaction(tx) => tx,
            Conn::Plain(conn) => conn,
        }
    }

    pub(crate) fn is_transaction(&self) -> bool {
        matches!(self.conn, Conn::Transaction(_))
    }

    /// Makes every change of this transaction durable (nothing to do for a read connection).
    /// A write transaction must have recorded its change in the activity log
    /// ([`Tx::record`]); otherwise it is rolled back and the commit fails, so a change without
    /// its record cannot be stored.
    pub async fn commit(self) -> StoreResult<()> {
        if self.is_transaction() && self.recorded == 0 {
            return Err(StoreError::Other(
                "a change must be recorded in the activity log before it is committed".into(),
            ));
        }
        self.commit_unrecorded().await
    }

    /// Records `what` in the activity log and commits: how every change ends.
    pub async fn commit_recorded(mut self, what: &crate::NewActivity) -> StoreResult<()> {
        self.record(what).await?;
        self.commit().await
    }

    /// Commits without an activity record: only for bookkeeping that changes no object and
    /// grants nothing (an agent's last-seen time, server metadata, delivery attempts).
    pub async fn commit_unrecorded(mut self) -> StoreResult<()> {
        self.write_record_scopes().await?;
        let woken = if self.touched.any && self.is_transaction() {
            Some(self.write_revisions().await?)
        } else {
            None
        };
        if self.touched_access && self.is_transaction() {
            // Other replicas learn of it from the stored revision (see `follow_revision`).
            sqlx::query("UPDATE access_revision SET value = value + 1 WHERE id = 1")
                .execute(self.c())
                .await?;
        }
        match self.conn {
            Conn::Transaction(tx) => tx.commit().await?,
            Conn::Plain(_) => {}
        }
        if let Some((revision, agents)) = woken {
            self.wakes.wake(agents.iter().map(String::as_str), revision);
        }
        if self.touched_access {
            self.access
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        Ok(())
    }

    /// Marks a point this transaction can go back to ([`Tx::rollback_to`]) without losing
    /// what came before, so one item of a batch that fails midway leaves nothing half-done.
    pub async fn savepoint(&mut self) -> StoreResult<Savepoint> {
        sqlx::query("SAVEPOINT step").execute(self.c()).await?;
        Ok(Savepoint {
            touched: (
                self.touched.machines.len(),
                self.touched.agents.len(),
                self.touched.any,
            ),
            touched_access: self.touched_access,
            record_scopes: self.record_scopes.len(),
            chain_head: self.chain_head.clone(),
            recorded: self.recorded,
        })
    }

    /// Undoes everything since `point` (the activity chain's head included).
    pub async fn rollback_to(&mut self, point: Savepoint) -> StoreResult<()> {
        sqlx::query("ROLLBACK TO SAVEPOINT step")
            .execute(self.c())
            .await?;
        sqlx::query("RELEASE SAVEPOINT step")
            .execute(self.c())
            .await?;
        self.touched.machines.truncate(point.touched.0);
        self.touched.agents.truncate(point.touched.1);
        self.touched.any = point.touched.2;
        self.touched_access = point.touched_access;
        self.record_scopes.truncate(point.record_scopes);
        self.chain_head = point.chain_head;
        self.recorded = point.recorded;
        Ok(())
    }

    /// Keeps everything since `point`.
    pub async fn release(&mut self, point: Savepoint) -> StoreResult<()> {
        let _ = point;
        sqlx::query("RELEASE SAVEPOINT step")
            .execute(self.c())
            .await?;
        Ok(())
    }

    /// The current revision of what enforcement points must apply.
    pub async fn revision(&mut self) -> StoreResult<i64> {
        Ok(
            sqlx::query_scalar("SELECT value FROM revision WHERE id = 1")
                .fetch_one(self.c())
                .await?,
        )
    }

    // -- meta ---------------------------------------------------------------------------------

    /// A value from the key/value table.
    pub async fn meta(&mut self, key: &str) -> StoreResult<Option<String>> {
        Ok(sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
            .bind(key)
            .fetch_optional(self.c())
            .await?)
    }

    /// Sets a value in the key/value table.
    pub async fn set_meta(&mut self, key: &str, value: &str) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(self.c())
        .await?;
        Ok(())
    }
}
