//! One transaction and every query ajar makes, as methods.

use crate::rows::*;
use crate::{StoreError, StoreResult};
use ajar_core::request::{PortStatus, StatusReason};
use jiff::Timestamp;
use sqlx::any::AnyRow;
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, Row, Transaction};

/// A write transaction, or a plain connection for reads. Dropping a transaction without
/// [`Tx::commit`] rolls everything back.
pub struct Tx {
    conn: Conn,
    /// Signalled on commit when this transaction changed what enforcement points must apply.
    changes: std::sync::Arc<tokio::sync::watch::Sender<u64>>,
    bumped: bool,
    /// The activity log's last `(seq, hash)` once this transaction has read or appended it.
    pub(crate) chain_head: Option<(i64, String)>,
    /// Activity records appended by this transaction.
    pub(crate) recorded: usize,
    /// The engine, for the few statements that differ.
    backend: crate::Backend,
}

/// A point a transaction can go back to (see [`Tx::savepoint`]).
#[derive(Debug)]
pub struct Savepoint {
    bumped: bool,
    chain_head: Option<(i64, String)>,
    recorded: usize,
}

enum Conn {
    Transaction(Transaction<'static, Any>),
    Plain(PoolConnection<Any>),
}

pub(crate) fn text(row: &AnyRow, col: &str) -> StoreResult<String> {
    Ok(row.try_get::<String, _>(col)?)
}

pub(crate) fn opt_text(row: &AnyRow, col: &str) -> StoreResult<Option<String>> {
    Ok(row.try_get::<Option<String>, _>(col)?)
}

pub(crate) fn int(row: &AnyRow, col: &str) -> StoreResult<i64> {
    Ok(row.try_get::<i64, _>(col)?)
}

fn machine_row(r: &AnyRow) -> StoreResult<MachineRow> {
    Ok(MachineRow {
        id: text(r, "id")?,
        name: text(r, "name")?,
        properties: text(r, "properties")?,
        policy_id: opt_text(r, "policy_id")?,
        agent: opt_text(r, "agent")?,
        agent_last_seen: r.try_get::<Option<i64>, _>("agent_last_seen")?.map(from_db),
    })
}

fn policy_row(r: &AnyRow) -> StoreResult<PolicyRow> {
    Ok(PolicyRow {
        id: text(r, "id")?,
        name: text(r, "name")?,
        rules: text(r, "rules")?,
        etag: text(r, "etag")?,
    })
}

fn request_row(r: &AnyRow) -> StoreResult<RequestRow> {
    Ok(RequestRow {
        id: text(r, "id")?,
        policy_id: text(r, "policy_id")?,
        requestor: text(r, "requestor")?,
        justification: opt_text(r, "justification")?,
        source_address: opt_text(r, "source_address")?,
        created_at: from_db(int(r, "created_at")?),
    })
}

fn port_row(r: &AnyRow) -> StoreResult<PortRow> {
    let status = text(r, "status")?;
    let reason = text(r, "status_reason")?;
    let sources = text(r, "sources")?;
    Ok(PortRow {
        request_id: text(r, "request_id")?,
        seq: int(r, "seq")?,
        machine_id: text(r, "machine_id")?,
        number: u16::try_from(int(r, "number")?)
            .map_err(|_| StoreError::Corrupt("port number out of range".into()))?,
        protocol: text(r, "protocol")?,
        sources: serde_json::from_str(&sources)
            .map_err(|e| StoreError::Corrupt(format!("port sources: {e}")))?,
        supersede_key: text(r, "supersede_key")?,
        end_time: from_db(int(r, "end_time")?),
        status: PortStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("port status {status:?}")))?,
        status_reason: StatusReason::parse(&reason)
            .ok_or_else(|| StoreError::Corrupt(format!("status reason {reason:?}")))?,
        gateway_agent: opt_text(r, "gateway_agent")?,
        mapped_port: r
            .try_get::<Option<i64>, _>("mapped_port")?
            .map(|n| {
                u16::try_from(n).map_err(|_| StoreError::Corrupt("mapped port out of range".into()))
            })
            .transpose()?,
        connect_address: opt_text(r, "connect_address")?,
        applied_at: r.try_get::<Option<i64>, _>("applied_at")?.map(from_db),
        removed_at: r.try_get::<Option<i64>, _>("removed_at")?.map(from_db),
    })
}

fn application_row(r: &AnyRow) -> StoreResult<ApplicationRow> {
    Ok(ApplicationRow {
        id: text(r, "id")?,
        name: text(r, "name")?,
        properties: text(r, "properties")?,
        jit_enabled: int(r, "jit_enabled")? != 0,
    })
}

fn eligibility_row(r: &AnyRow) -> StoreResult<EligibilityRow> {
    Ok(EligibilityRow {
        application_id: text(r, "application_id")?,
        id: text(r, "id")?,
        principal: text(r, "principal")?,
        role_name: text(r, "role_name")?,
        created_at: from_db(int(r, "created_at")?),
    })
}

fn token_row(r: &AnyRow) -> StoreResult<TokenRow> {
    Ok(TokenRow {
        id: text(r, "id")?,
        principal: text(r, "principal")?,
        description: opt_text(r, "description")?,
        created_by: text(r, "created_by")?,
        created_at: from_db(int(r, "created_at")?),
        expires_at: r.try_get::<Option<i64>, _>("expires_at")?.map(from_db),
        idp_groups: match opt_text(r, "idp_groups")? {
            Some(json) => serde_json::from_str(&json)
                .map_err(|e| StoreError::Corrupt(format!("token idp_groups: {e}")))?,
            None => Vec::new(),
        },
        parent_id: opt_text(r, "parent_id")?,
    })
}

fn assignment_row(r: &AnyRow) -> StoreResult<AssignmentRow> {
    Ok(AssignmentRow {
        id: text(r, "id")?,
        principal: text(r, "principal")?,
        role_name: text(r, "role_name")?,
        scope: text(r, "scope")?,
        created_at: from_db(int(r, "created_at")?),
    })
}

fn role_row(r: &AnyRow) -> StoreResult<RoleRow> {
    Ok(RoleRow {
        name: text(r, "name")?,
        description: text(r, "description")?,
        actions: text(r, "actions")?,
    })
}

const JIT_REQUEST_COLUMNS: &str = "id, name, application_id, kind, requester, roles, justification, \
     lifecycle, state, due, created_at, detail, extends";

fn jit_request_row(r: &AnyRow) -> StoreResult<JitRequestRow> {
    Ok(JitRequestRow {
        id: text(r, "id")?,
        name: text(r, "name")?,
        application_id: text(r, "application_id")?,
        kind: text(r, "kind")?,
        requester: text(r, "requester")?,
        roles: text(r, "roles")?,
        justification: opt_text(r, "justification")?,
        lifecycle: text(r, "lifecycle")?,
        state: text(r, "state")?,
        due: r.try_get::<Option<i64>, _>("due")?.map(from_db),
        created_at: from_db(int(r, "created_at")?),
        detail: opt_text(r, "detail")?,
        extends: opt_text(r, "extends")?,
    })
}

/// SQL that holds when `column` starts with the text bound as parameter `$param`, compared
/// exactly as RBAC compares scopes: case-sensitive on both engines (SQLite's `LIKE` folds ASCII
/// case) and with no wildcard characters.
pub(crate) fn starts_with(column: &str, param: usize) -> String {
    format!("substr({column}, 1, length(CAST(${param} AS TEXT))) = CAST(${param} AS TEXT)")
}

const MACHINE_COLUMNS: &str = "m.id, m.name, m.properties, pm.policy_id, a.name AS agent, \
     a.last_seen AS agent_last_seen \
     FROM machines m LEFT JOIN policy_machines pm ON pm.machine_id = m.id \
     LEFT JOIN agent_machines am ON am.machine_id = m.id LEFT JOIN agents a ON a.id = am.agent_id";

const PORT_COLUMNS: &str = "p.request_id, p.seq, p.machine_id, p.number, p.protocol, p.sources, \
     p.supersede_key, p.end_time, p.status, p.status_reason, p.gateway_agent, p.mapped_port, \
     p.applied_at, p.removed_at, ga.public_address AS connect_address";

impl Tx {
    pub(crate) fn transaction(
        tx: Transaction<'static, Any>,
        changes: std::sync::Arc<tokio::sync::watch::Sender<u64>>,
        backend: crate::Backend,
    ) -> Self {
        Self {
            conn: Conn::Transaction(tx),
            changes,
            bumped: false,
            chain_head: None,
            recorded: 0,
            backend,
        }
    }

    pub(crate) fn plain(
        conn: PoolConnection<Any>,
        changes: std::sync::Arc<tokio::sync::watch::Sender<u64>>,
        backend: crate::Backend,
    ) -> Self {
        Self {
            conn: Conn::Plain(conn),
            changes,
            bumped: false,
            chain_head: None,
            recorded: 0,
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

    /// Commits without an activity record: only for bookkeeping that changes no object and
    /// grants nothing (an agent's last-seen time, server metadata, delivery attempts).
    pub async fn commit_unrecorded(self) -> StoreResult<()> {
        match self.conn {
            Conn::Transaction(tx) => tx.commit().await?,
            Conn::Plain(_) => {}
        }
        if self.bumped {
            self.changes.send_modify(|n| *n = n.wrapping_add(1));
        }
        Ok(())
    }

    /// Marks a point this transaction can go back to ([`Tx::rollback_to`]) without losing
    /// what came before, so one item of a batch that fails midway leaves nothing half-done.
    pub async fn savepoint(&mut self) -> StoreResult<Savepoint> {
        sqlx::query("SAVEPOINT step").execute(self.c()).await?;
        Ok(Savepoint {
            bumped: self.bumped,
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
        self.bumped = point.bumped;
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

    /// Records that this transaction changed the desired state of enforcement points.
    async fn bump_revision(&mut self) -> StoreResult<()> {
        sqlx::query("UPDATE revision SET value = value + 1 WHERE id = 1")
            .execute(self.c())
            .await?;
        self.bumped = true;
        Ok(())
    }

    /// The current revision of what enforcement points must apply.
    pub async fn revision(&mut self) -> StoreResult<i64> {
        let row = sqlx::query("SELECT value FROM revision WHERE id = 1")
            .fetch_one(self.c())
            .await?;
        int(&row, "value")
    }

    // -- meta ---------------------------------------------------------------------------------

    /// A value from the key/value table.
    pub async fn meta(&mut self, key: &str) -> StoreResult<Option<String>> {
        let row = sqlx::query("SELECT value FROM meta WHERE key = $1")
            .bind(key)
            .fetch_optional(self.c())
            .await?;
        row.map(|r| text(&r, "value")).transpose()
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

    // -- machines -----------------------------------------------------------------------------

    /// Creates or replaces a machine; true when it was created.
    #[allow(clippy::too_many_arguments)]
    pub async fn put_machine(
        &mut self,
        id: &str,
        subscription: &str,
        resource_group: &str,
        name: &str,
        properties: &str,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let existed = sqlx::query("SELECT 1 AS one FROM machines WHERE id = $1")
            .bind(id)
            .fetch_optional(self.c())
            .await?
            .is_some();
        sqlx::query(
            "INSERT INTO machines (id, subscription, resource_group, name, properties, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) \
             ON CONFLICT (id) DO UPDATE SET properties = excluded.properties, \
             updated_at = excluded.updated_at",
        )
        .bind(id)
        .bind(subscription)
        .bind(resource_group)
        .bind(name)
        .bind(properties)
        .bind(to_db(now))
        .execute(self.c())
        .await?;
        // Addresses are part of what a host agent protects.
        self.bump_revision().await?;
        Ok(!existed)
    }

    /// One machine.
    pub async fn machine(&mut self, id: &str) -> StoreResult<Option<MachineRow>> {
        let sql = format!("SELECT {MACHINE_COLUMNS} WHERE m.id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(self.c())
            .await?;
        row.as_ref().map(machine_row).transpose()
    }

    /// Machines in a subscription, or in one of its resource groups, ordered by id.
    pub async fn machines(
        &mut self,
        subscription: &str,
        resource_group: Option<&str>,
    ) -> StoreResult<Vec<MachineRow>> {
        let sql = format!(
            "SELECT {MACHINE_COLUMNS} WHERE m.subscription = $1 AND (CAST($2 AS TEXT) IS NULL OR m.resource_group = $2) ORDER BY m.id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(subscription)
            .bind(resource_group)
            .fetch_all(self.c())
            .await?;
        rows.iter().map(machine_row).collect()
    }

    /// Deletes a machine; true when it existed.
    pub async fn delete_machine(&mut self, id: &str) -> StoreResult<bool> {
        // A machine made again under the same id is not guarded by its predecessor's agent.
        let unguarded = sqlx::query("DELETE FROM agent_machines WHERE machine_id = $1")
            .bind(id)
            .execute(self.c())
            .await?;
        if unguarded.rows_affected() > 0 {
            self.bump_revision().await?;
        }
        let r = sqlx::query("DELETE FROM machines WHERE id = $1")
            .bind(id)
            .execute(self.c())
            .await?;
        Ok(r.rows_affected() > 0)
    }

    // -- policies -----------------------------------------------------------------------------

    /// One policy.
    pub async fn policy(&mut self, id: &str) -> StoreResult<Option<PolicyRow>> {
        let row = sqlx::query("SELECT id, name, rules, etag FROM policies WHERE id = $1")
            .bind(id)
            .fetch_optional(self.c())
            .await?;
        row.as_ref().map(policy_row).transpose()
    }

    /// The ETag of a policy (cheaper than [`Tx::policy`] when the rules are cached).
    pub async fn policy_etag(&mut self, id: &str) -> StoreResult<Option<String>> {
        let row = sqlx::query("SELECT etag FROM policies WHERE id = $1")
            .bind(id)
            .fetch_optional(self.c())
            .await?;
        row.map(|r| text(&r, "etag")).transpose()
    }

    /// A policy's ETag, and the first of `scopes` where JIT is turned off (if any), in one
    /// round trip: what an initiate checks before it plans.
    pub async fn policy_check(
        &mut self,
        id: &str,
        scopes: &[String],
    ) -> StoreResult<Option<(String, Option<String>)>> {
        let mut args = Args::default();
        let id = args.push_text(id);
        let list: Vec<String> = scopes.iter().map(|s| args.push_text(s)).collect();
        let list = if list.is_empty() {
            "NULL".to_owned()
        } else {
            list.join(", ")
        };
        let row = args
            .query(format!(
                "SELECT p.etag, (SELECT MIN(scope) FROM jit_settings WHERE jit_enabled = 0 \
                 AND scope IN ({list})) AS blocked FROM policies p WHERE p.id = {id}"
            ))
            .fetch_optional(self.c())
            .await?;
        row.map(|r| Ok((text(&r, "etag")?, opt_text(&r, "blocked")?)))
            .transpose()
    }

    /// Policies in a subscription, or in one of its resource groups, ordered by id.
    pub async fn policies(
        &mut self,
        subscription: &str,
        resource_group: Option<&str>,
    ) -> StoreResult<Vec<PolicyRow>> {
        let rows = sqlx::query(
            "SELECT id, name, rules, etag FROM policies \
             WHERE subscription = $1 AND (CAST($2 AS TEXT) IS NULL OR resource_group = $2) ORDER BY id",
        )
        .bind(subscription)
        .bind(resource_group)
        .fetch_all(self.c())
        .await?;
        rows.iter().map(policy_row).collect()
    }

    /// The policy that covers a machine, if any.
    pub async fn policy_of_machine(&mut self, machine_id: &str) -> StoreResult<Option<String>> {
        let row = sqlx::query("SELECT policy_id FROM policy_machines WHERE machine_id = $1")
            .bind(machine_id)
            .fetch_optional(self.c())
            .await?;
        row.map(|r| text(&r, "policy_id")).transpose()
    }

    /// Creates or replaces a policy and the set of machines it covers; true when created.
    #[allow(clippy::too_many_arguments)]
    pub async fn put_policy(
        &mut self,
        id: &str,
        subscription: &str,
        resource_group: &str,
        name: &str,
        rules: &str,
        machine_ids: &[String],
        etag: &str,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let existed = self.policy(id).await?.is_some();
        sqlx::query(
            "INSERT INTO policies (id, subscription, resource_group, name, rules, etag, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
             ON CONFLICT (id) DO UPDATE SET rules = excluded.rules, etag = excluded.etag, \
             updated_at = excluded.updated_at",
        )
        .bind(id)
        .bind(subscription)
        .bind(resource_group)
        .bind(name)
        .bind(rules)
        .bind(etag)
        .bind(to_db(now))
        .execute(self.c())
        .await?;
        sqlx::query("DELETE FROM policy_machines WHERE policy_id = $1")
            .bind(id)
            .execute(self.c())
            .await?;
        for m in machine_ids {
            sqlx::query("INSERT INTO policy_machines (machine_id, policy_id) VALUES ($1, $2)")
                .bind(m)
                .bind(id)
                .execute(self.c())
                .await?;
        }
        // Protected ports follow the policy.
        self.bump_revision().await?;
        Ok(!existed)
    }

    /// Deletes a policy; true when it existed. Its request history is kept.
    pub async fn delete_policy(&mut self, id: &str) -> StoreResult<bool> {
        sqlx::query("DELETE FROM policy_machines WHERE policy_id = $1")
            .bind(id)
            .execute(self.c())
            .await?;
        let r = sqlx::query("DELETE FROM policies WHERE id = $1")
            .bind(id)
            .execute(self.c())
            .await?;
        self.bump_revision().await?;
        Ok(r.rows_affected() > 0)
    }

    // -- requests -----------------------------------------------------------------------------

    /// How many requests of `requester` await a decision (read through
    /// `jit_requests_pending_by_requester`).
    pub async fn pending_requests_of(&mut self, requester: &str) -> StoreResult<i64> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM jit_requests WHERE requester = $1 AND state = 'Pending'",
        )
        .bind(requester)
        .fetch_one(self.c())
        .await?;
        int(&row, "n")
    }

    /// The supersede keys of the ports `requestor` holds open at `now`, one per live grant, at
    /// most `at_most` of them (read through `request_ports_live_by_requestor`).
    pub async fn live_grant_keys(
        &mut self,
        requestor: &str,
        now: Timestamp,
        at_most: usize,
    ) -> StoreResult<Vec<String>> {
        let rows = sqlx::query(
            "SELECT supersede_key FROM request_ports \
             WHERE requestor = $1 AND status = 'Initiated' AND end_time > $2 LIMIT $3",
        )
        .bind(requestor)
        .bind(to_db(now))
        .bind(i64::try_from(at_most).unwrap_or(i64::MAX))
        .fetch_all(self.c())
        .await?;
        rows.iter().map(|r| text(r, "supersede_key")).collect()
    }

    /// Stores new requests and their ports, and closes older open ports with the same
    /// supersede keys as `NewerRequestInitiated`, in order, in two round trips whatever the
    /// number of requests. Each request is stored only if its guard still holds; the answer says,
    /// per request, whether it was stored (false: its policy changed or JIT was turned off since
    /// it was checked, and nothing of it was written).
    pub async fn insert_requests(&mut self, batch: &[NewRequest<'_>]) -> StoreResult<Vec<bool>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let mut sql = String::new();
        let mut args = Args::default();
        for item in batch {
            if item.ports.is_empty() {
                return Err(StoreError::Other("a request needs ports".into()));
            }
            let req = item.request;
            let id = args.push_text(&req.id);
            let policy = args.push_text(&req.policy_id);
            let requestor = args.push_text(&req.requestor);
            let justification = args.push_opt(req.justification.as_deref());
            let source = args.push_opt(req.source_address.as_deref());
            let created = args.push_int(to_db(req.created_at));
            let etag = args.push_text(item.guard.etag);
            let scopes: Vec<String> = item
                .guard
                .blocking_scopes
                .iter()
                .map(|s| args.push_text(s))
                .collect();
            let scopes = if scopes.is_empty() {
                "NULL".to_owned()
            } else {
                scopes.join(", ")
            };
            let mut rows = Vec::with_capacity(item.ports.len());
            for p in item.ports {
                let sources = serde_json::to_string(&p.sources)
                    .map_err(|e| StoreError::Other(e.to_string()))?;
                rows.push(format!(
                    "({id}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {requestor})",
                    args.push_int(p.seq),
                    args.push_text(&p.machine_id),
                    args.push_int(i64::from(p.number)),
                    args.push_text(&p.protocol),
                    args.push_text(&sources),
                    args.push_text(&p.supersede_key),
                    args.push_int(to_db(p.end_time)),
                    args.push_text(p.status.as_str()),
                    args.push_text(p.status_reason.as_str()),
                    args.push_opt(p.gateway_agent.as_deref()),
                    args.push_opt_int(p.mapped_port.map(i64::from)),
                ));
            }
            let mut keys: Vec<&str> = item
                .ports
                .iter()
                .map(|p| p.supersede_key.as_str())
                .collect();
            keys.sort_unstable();
            keys.dedup();
            let keys: Vec<String> = keys.iter().map(|k| args.push_text(k)).collect();
            sql.push_str(&format!(
                "INSERT INTO requests (id, policy_id, requestor, justification, source_address, created_at) \
                 SELECT {id}, {policy}, {requestor}, {justification}, {source}, {created} \
                 WHERE EXISTS (SELECT 1 FROM policies WHERE id = {policy} AND etag = {etag}) \
                   AND NOT EXISTS (SELECT 1 FROM jit_settings WHERE jit_enabled = 0 AND scope IN ({scopes})); \
                 INSERT INTO request_ports (request_id, seq, machine_id, number, protocol, sources, \
                   supersede_key, end_time, status, status_reason, gateway_agent, mapped_port, requestor) \
                 SELECT * FROM (VALUES {}) AS v WHERE EXISTS (SELECT 1 FROM requests WHERE id = {id}); \
                 UPDATE request_ports SET status = 'Revoked', status_reason = 'NewerRequestInitiated', \
                   closed_at = {created} \
                 WHERE status = 'Initiated' AND request_id <> {id} AND supersede_key IN ({}) \
                   AND EXISTS (SELECT 1 FROM requests WHERE id = {id});\n",
                rows.join(", "),
                keys.join(", ")
            ));
        }
        sql.push_str("UPDATE revision SET value = value + 1 WHERE id = 1;");
        self.bumped = true;
        // The text depends only on the batch's shape (requests, ports, sources per request), so
        // under load the same few shapes recur and the prepared-statement cache saves parsing.
        // PostgreSQL prepares one statement at a time: there, each runs on its own.
        if self.backend == crate::Backend::Postgres {
            for (statement, args) in args.split(&sql) {
                args.query(statement).execute(self.c()).await?;
            }
        } else {
            args.query(sql).execute(self.c()).await?;
        }

        let mut ids = Args::default();
        let list: Vec<String> = batch.iter().map(|i| ids.push_text(&i.request.id)).collect();
        let stored: std::collections::HashSet<String> = ids
            .query(format!(
                "SELECT id FROM requests WHERE id IN ({})",
                list.join(", ")
            ))
            .persistent(false)
            .fetch_all(self.c())
            .await?
            .iter()
            .map(|r| text(r, "id"))
            .collect::<StoreResult<_>>()?;
        Ok(batch
            .iter()
            .map(|i| stored.contains(&i.request.id))
            .collect())
    }

    /// One request and its ports.
    pub async fn request(&mut self, id: &str) -> StoreResult<Option<(RequestRow, Vec<PortRow>)>> {
        let row = sqlx::query(
            "SELECT id, policy_id, requestor, justification, source_address, created_at FROM requests WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.c())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let req = request_row(&row)?;
        let ports = self.ports_of(std::slice::from_ref(&req.id)).await?;
        Ok(Some((req, ports)))
    }

    /// The ports of several requests in one query, in request and port order.
    async fn ports_of(&mut self, request_ids: &[String]) -> StoreResult<Vec<PortRow>> {
        if request_ids.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders: Vec<String> = (1..=request_ids.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT {PORT_COLUMNS} FROM request_ports p LEFT JOIN agents ga ON ga.id = p.gateway_agent WHERE p.request_id IN ({}) ORDER BY p.request_id, p.seq",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in request_ids {
            query = query.bind(id);
        }
        let rows = query.fetch_all(self.c()).await?;
        rows.iter().map(port_row).collect()
    }

    /// A newest-first page of requests made under a policy or touching a machine, optionally
    /// only one requestor's. Returns up to `limit` requests with their ports.
    pub async fn requests(
        &mut self,
        filter: RequestFilter<'_>,
        after: Option<&Cursor>,
        limit: u32,
    ) -> StoreResult<Vec<(RequestRow, Vec<PortRow>)>> {
        let (by_policy, by_machine, everywhere) = match filter.on {
            RequestsOn::Policy(p) => (Some(p), None, 0),
            RequestsOn::Machine(m) => (None, Some(m), 0),
            RequestsOn::Everywhere => (None, None, 1),
        };
        let rows = sqlx::query(
            "SELECT r.id, r.policy_id, r.requestor, r.justification, r.source_address, r.created_at \
             FROM requests r \
             WHERE (CAST($1 AS TEXT) IS NULL OR r.policy_id = $1) \
               AND (CAST($2 AS TEXT) IS NULL OR r.id IN (SELECT request_id FROM request_ports WHERE machine_id = $2)) \
               AND (CAST($3 AS TEXT) IS NULL OR r.requestor = $3) \
               AND (CAST($4 AS BIGINT) IS NULL OR r.created_at < $4 OR (r.created_at = $4 AND r.id < $5)) \
               AND (CAST($7 AS BIGINT) IS NULL OR r.created_at >= $7) \
               AND (CAST($8 AS BIGINT) IS NULL OR r.created_at < $8) \
               AND ($9 = 0 OR NOT EXISTS (SELECT 1 FROM jit_requests j WHERE j.kind = 'network' AND j.name = r.id)) \
             ORDER BY r.created_at DESC, r.id DESC LIMIT $6",
        )
        .bind(by_policy)
        .bind(by_machine)
        .bind(filter.requestor)
        .bind(after.map(|c| c.created_at))
        .bind(after.map(|c| c.id.as_str()).unwrap_or(""))
        .bind(i64::from(limit))
        .bind(filter.from.map(to_db))
        .bind(filter.to.map(to_db))
        .bind(everywhere)
        .fetch_all(self.c())
        .await?;
        let reqs: Vec<RequestRow> = rows.iter().map(request_row).collect::<StoreResult<_>>()?;
        let ids: Vec<String> = reqs.iter().map(|r| r.id.clone()).collect();
        let mut by_request: std::collections::HashMap<String, Vec<PortRow>> = Default::default();
        for p in self.ports_of(&ids).await? {
            by_request.entry(p.request_id.clone()).or_default().push(p);
        }
        Ok(reqs
            .into_iter()
            .map(|r| {
                let ports = by_request.remove(&r.id).unwrap_or_default();
                (r, ports)
            })
            .collect())
    }

    /// Closes one open port; true when it was open.
    pub async fn close_port(
        &mut self,
        request_id: &str,
        seq: i64,
        reason: StatusReason,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let r = sqlx::query(
            "UPDATE request_ports SET status = 'Revoked', status_reason = $1, closed_at = $2 \
             WHERE request_id = $3 AND seq = $4 AND status = 'Initiated'",
        )
        .bind(reason.as_str())
        .bind(to_db(now))
        .bind(request_id)
        .bind(seq)
        .execute(self.c())
        .await?;
        if r.rows_affected() > 0 {
            self.bump_revision().await?;
        }
        Ok(r.rows_affected() > 0)
    }

    /// Open ports of requests made under a policy.
    pub async fn open_ports_of_policy(&mut self, policy_id: &str) -> StoreResult<Vec<PortRow>> {
        let sql = format!(
            "SELECT {PORT_COLUMNS} FROM request_ports p LEFT JOIN agents ga ON ga.id = p.gateway_agent \
             JOIN requests r ON r.id = p.request_id \
             WHERE r.policy_id = $1 AND p.status = 'Initiated'"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(policy_id)
            .fetch_all(self.c())
            .await?;
        rows.iter().map(port_row).collect()
    }

    /// Ports of a machine that are open at `now`, soonest-ending first.
    pub async fn grants(&mut self, machine_id: &str, now: Timestamp) -> StoreResult<Vec<GrantRow>> {
        self.grants_where("p.machine_id = $1", machine_id, now)
            .await
    }

    /// Ports open at `now` on every machine an agent guards.
    pub async fn agent_grants(
        &mut self,
        agent_id: &str,
        now: Timestamp,
    ) -> StoreResult<Vec<GrantRow>> {
        self.grants_where(
            "p.machine_id IN (SELECT machine_id FROM agent_machines WHERE agent_id = $1)",
            agent_id,
            now,
        )
        .await
    }

    pub(crate) async fn grants_where(
        &mut self,
        cond: &str,
        arg: &str,
        now: Timestamp,
    ) -> StoreResult<Vec<GrantRow>> {
        let sql = format!(
            "SELECT {PORT_COLUMNS}, r.requestor, r.created_at, r.policy_id FROM request_ports p \
             LEFT JOIN agents ga ON ga.id = p.gateway_agent \
             JOIN requests r ON r.id = p.request_id \
             WHERE {cond} AND p.status = 'Initiated' AND p.end_time > $2 \
             ORDER BY p.end_time, p.request_id, p.seq"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(arg)
            .bind(to_db(now))
            .fetch_all(self.c())
            .await?;
        rows.iter()
            .map(|r| {
                Ok(GrantRow {
                    port: port_row(r)?,
                    requestor: text(r, "requestor")?,
                    created_at: from_db(int(r, "created_at")?),
                    policy_id: text(r, "policy_id")?,
                })
            })
            .collect()
    }

    /// Closes every open port whose end time has passed as `Expired`; answers them.
    pub async fn expire_due(&mut self, now: Timestamp) -> StoreResult<Vec<ExpiredPort>> {
        let rows = sqlx::query(
            "UPDATE request_ports SET status = 'Revoked', status_reason = 'Expired', closed_at = end_time \
             WHERE status = 'Initiated' AND end_time <= $1 \
             RETURNING request_id, seq, machine_id, number, end_time",
        )
        .bind(to_db(now))
        .fetch_all(self.c())
        .await?;
        if !rows.is_empty() {
            self.bump_revision().await?;
        }
        rows.iter()
            .map(|r| {
                Ok(ExpiredPort {
                    request_id: text(r, "request_id")?,
                    seq: int(r, "seq")?,
                    machine_id: text(r, "machine_id")?,
                    number: int(r, "number")?,
                    end_time: from_db(int(r, "end_time")?),
                })
            })
            .collect()
    }

    /// Whether a network request was opened by an approval-gated request (whose lifecycle
    /// records and notifies for it).
    pub async fn gated_by_approval(&mut self, request_id: &str) -> StoreResult<bool> {
        Ok(
            sqlx::query("SELECT 1 FROM jit_requests WHERE kind = 'network' AND name = $1")
                .bind(request_id)
                .fetch_optional(self.c())
                .await?
                .is_some(),
        )
    }

    /// Whether an automatic network request with a window longer than `notice` has a port
    /// ending within `notice` of `now` and was not warned yet.
    pub async fn expiry_warning_due(
        &mut self,
        now: Timestamp,
        notice: jiff::SignedDuration,
    ) -> StoreResult<bool> {
        Ok(sqlx::query(EXPIRY_WARNING_DUE)
            .bind(to_db(now.saturating_add(notice).unwrap_or(now)))
            .bind(notice.as_micros() as i64)
            .bind(to_db(now))
            .fetch_optional(self.c())
            .await?
            .is_some())
    }

    /// Marks the requests [`Tx::expiry_warning_due`] finds as warned at `now`; answers them.
    pub async fn warn_expiring(
        &mut self,
        now: Timestamp,
        notice: jiff::SignedDuration,
    ) -> StoreResult<Vec<RequestRow>> {
        let rows = sqlx::query(
            "UPDATE requests SET expiry_warned_at = $3 WHERE expiry_warned_at IS NULL \
             AND id IN (SELECT p.request_id FROM request_ports p JOIN requests r ON r.id = p.request_id \
                        WHERE p.status = 'Initiated' AND p.end_time <= $1 AND p.end_time - r.created_at > $2 \
                          AND p.end_time > $3) \
             AND NOT EXISTS (SELECT 1 FROM jit_requests j WHERE j.kind = 'network' AND j.name = requests.id) \
             RETURNING id, policy_id, requestor, justification, source_address, created_at",
        )
        .bind(to_db(now.saturating_add(notice).unwrap_or(now)))
        .bind(notice.as_micros() as i64)
        .bind(to_db(now))
        .fetch_all(self.c())
        .await?;
        rows.iter().map(request_row).collect()
    }

    /// The earliest end time of an open port.
    pub async fn next_due(&mut self) -> StoreResult<Option<Timestamp>> {
        let row = sqlx::query(
            "SELECT MIN(end_time) AS due FROM request_ports WHERE status = 'Initiated'",
        )
        .fetch_one(self.c())
        .await?;
        Ok(row.try_get::<Option<i64>, _>("due")?.map(from_db))
    }

    // -- tokens -------------------------------------------------------------------------------

    /// Stores a token by the hash of its secret.
    pub async fn insert_token(&mut self, t: &TokenRow, hash: &str) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO tokens (id, hash, principal, description, created_by, created_at, \
             expires_at, idp_groups, parent_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&t.id)
        .bind(hash)
        .bind(&t.principal)
        .bind(&t.description)
        .bind(&t.created_by)
        .bind(to_db(t.created_at))
        .bind(t.expires_at.map(to_db))
        .bind(
            (!t.idp_groups.is_empty())
                .then(|| serde_json::to_string(&t.idp_groups).unwrap_or_default()),
        )
        .bind(&t.parent_id)
        .execute(self.c())
        .await?;
        Ok(())
    }

    /// The token whose secret hashes to `hash`.
    pub async fn token_by_hash(&mut self, hash: &str) -> StoreResult<Option<TokenRow>> {
        let row = sqlx::query(
            "SELECT id, principal, description, created_by, created_at, expires_at, idp_groups, parent_id FROM tokens WHERE hash = $1",
        )
        .bind(hash)
        .fetch_optional(self.c())
        .await?;
        row.as_ref().map(token_row).transpose()
    }

    /// One token.
    pub async fn token(&mut self, id: &str) -> StoreResult<Option<TokenRow>> {
        let row = sqlx::query(
            "SELECT id, principal, description, created_by, created_at, expires_at, idp_groups, parent_id FROM tokens WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.c())
        .await?;
        row.as_ref().map(token_row).transpose()
    }

    /// Tokens, optionally only one principal's, oldest first.
    pub async fn tokens(&mut self, principal: Option<&str>) -> StoreResult<Vec<TokenRow>> {
        let rows = sqlx::query(
            "SELECT id, principal, description, created_by, created_at, expires_at, idp_groups, parent_id FROM tokens \
             WHERE (CAST($1 AS TEXT) IS NULL OR principal = $1) ORDER BY created_at, id",
        )
        .bind(principal)
        .fetch_all(self.c())
        .await?;
        rows.iter().map(token_row).collect()
    }

    /// Deletes the tokens that have ended by `now` (expired sessions); answers how many.
    pub async fn delete_expired_tokens(&mut self, now: Timestamp) -> StoreResult<u64> {
        let r = sqlx::query("DELETE FROM tokens WHERE expires_at IS NOT NULL AND expires_at <= $1")
            .bind(to_db(now))
            .execute(self.c())
            .await?;
        Ok(r.rows_affected())
    }

    /// Deletes a token and every token made with it (and so on down) in one statement;
    /// answers the ids and principals of those deleted (none when it did not exist).
    pub async fn delete_token(&mut self, id: &str) -> StoreResult<Vec<(String, String)>> {
        let rows = sqlx::query(
            "WITH RECURSIVE doomed(id) AS ( \
               SELECT id FROM tokens WHERE id = $1 \
               UNION SELECT t.id FROM tokens t JOIN doomed d ON t.parent_id = d.id) \
             DELETE FROM tokens WHERE id IN (SELECT id FROM doomed) RETURNING id, principal",
        )
        .bind(id)
        .fetch_all(self.c())
        .await?;
        rows.iter()
            .map(|r| Ok((text(r, "id")?, text(r, "principal")?)))
            .collect()
    }

    // -- roles and assignments ----------------------------------------------------------------

    /// One custom role.
    pub async fn role(&mut self, name: &str) -> StoreResult<Option<RoleRow>> {
        let row =
            sqlx::query("SELECT name, description, actions FROM role_definitions WHERE name = $1")
                .bind(name)
                .fetch_optional(self.c())
                .await?;
        row.as_ref().map(role_row).transpose()
    }

    /// Every custom role, by name.
    pub async fn roles(&mut self) -> StoreResult<Vec<RoleRow>> {
        let rows =
            sqlx::query("SELECT name, description, actions FROM role_definitions ORDER BY name")
                .fetch_all(self.c())
                .await?;
        rows.iter().map(role_row).collect()
    }

    /// Creates or replaces a custom role; true when created.
    pub async fn put_role(&mut self, role: &RoleRow, now: Timestamp) -> StoreResult<bool> {
        let existed = self.role(&role.name).await?.is_some();
        sqlx::query(
            "INSERT INTO role_definitions (name, description, actions, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $4) ON CONFLICT (name) DO UPDATE SET \
             description = excluded.description, actions = excluded.actions, updated_at = excluded.updated_at",
        )
        .bind(&role.name)
        .bind(&role.description)
        .bind(&role.actions)
        .bind(to_db(now))
        .execute(self.c())
        .await?;
        Ok(!existed)
    }

    /// Deletes a custom role; true when it existed.
    pub async fn delete_role(&mut self, name: &str) -> StoreResult<bool> {
        let r = sqlx::query("DELETE FROM role_definitions WHERE name = $1")
            .bind(name)
            .execute(self.c())
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// How many assignments use a role.
    pub async fn role_use_count(&mut self, name: &str) -> StoreResult<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM role_assignments WHERE role_name = $1")
            .bind(name)
            .fetch_one(self.c())
            .await?;
        int(&row, "n")
    }

    /// Creates or replaces an assignment; true when created.
    pub async fn put_assignment(
        &mut self,
        a: &AssignmentRow,
        created_by: &str,
    ) -> StoreResult<bool> {
        let existed = self.assignment(&a.id).await?.is_some();
        sqlx::query(
            "INSERT INTO role_assignments (id, principal, role_name, scope, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO UPDATE SET \
             principal = excluded.principal, role_name = excluded.role_name, scope = excluded.scope",
        )
        .bind(&a.id)
        .bind(&a.principal)
        .bind(&a.role_name)
        .bind(&a.scope)
        .bind(created_by)
        .bind(to_db(a.created_at))
        .execute(self.c())
        .await?;
        Ok(!existed)
    }

    /// One assignment.
    pub async fn assignment(&mut self, id: &str) -> StoreResult<Option<AssignmentRow>> {
        let row = sqlx::query(
            "SELECT id, principal, role_name, scope, created_at FROM role_assignments WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.c())
        .await?;
        row.as_ref().map(assignment_row).transpose()
    }

    /// Assignments whose scope is `scope` or lies beneath it (all for `/`), optionally one
    /// principal's.
    pub async fn assignments(
        &mut self,
        scope: &str,
        principal: Option<&str>,
    ) -> StoreResult<Vec<AssignmentRow>> {
        let beneath = if scope == "/" {
            "/".to_owned()
        } else {
            format!("{scope}/")
        };
        let sql = format!(
            "SELECT id, principal, role_name, scope, created_at FROM role_assignments \
             WHERE (scope = $1 OR {}) AND (CAST($3 AS TEXT) IS NULL OR principal = $3) \
             ORDER BY created_at, id",
            starts_with("scope", 2)
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(scope)
            .bind(beneath)
            .bind(principal)
            .fetch_all(self.c())
            .await?;
        rows.iter().map(assignment_row).collect()
    }

    /// Every assignment of a principal, with the custom role's actions (JSON) where the role
    /// is not built in.
    pub async fn assignments_of(
        &mut self,
        principal: &str,
    ) -> StoreResult<Vec<(AssignmentRow, Option<String>)>> {
        let rows = sqlx::query(
            "SELECT a.id, a.principal, a.role_name, a.scope, a.created_at, d.actions \
             FROM role_assignments a LEFT JOIN role_definitions d ON d.name = a.role_name \
             WHERE a.principal = $1",
        )
        .bind(principal)
        .fetch_all(self.c())
        .await?;
        rows.iter()
            .map(|r| Ok((assignment_row(r)?, opt_text(r, "actions")?)))
            .collect()
    }

    // -- groups -------------------------------------------------------------------------------

    /// Replaces a group's members; true when the group is new.
    pub async fn put_group(
        &mut self,
        name: &str,
        members: &[String],
        now: Timestamp,
    ) -> StoreResult<bool> {
        let existed = !self.group_members(name).await?.is_empty();
        sqlx::query("DELETE FROM group_members WHERE group_name = $1")
            .bind(name)
            .execute(self.c())
            .await?;
        for m in members {
            sqlx::query(
                "INSERT INTO group_members (group_name, member, created_at) VALUES ($1, $2, $3)",
            )
            .bind(name)
            .bind(m)
            .bind(to_db(now))
            .execute(self.c())
            .await?;
        }
        Ok(!existed)
    }

    /// A group's members, sorted; empty when it does not exist.
    pub async fn group_members(&mut self, name: &str) -> StoreResult<Vec<String>> {
        let rows =
            sqlx::query("SELECT member FROM group_members WHERE group_name = $1 ORDER BY member")
                .bind(name)
                .fetch_all(self.c())
                .await?;
        rows.iter().map(|r| text(r, "member")).collect()
    }

    /// Every group with its members, by name.
    pub async fn groups(&mut self) -> StoreResult<Vec<(String, Vec<String>)>> {
        let rows =
            sqlx::query("SELECT group_name, member FROM group_members ORDER BY group_name, member")
                .fetch_all(self.c())
                .await?;
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for r in &rows {
            let (g, m) = (text(r, "group_name")?, text(r, "member")?);
            match groups.last_mut() {
                Some((last, members)) if *last == g => members.push(m),
                _ => groups.push((g, vec![m])),
            }
        }
        Ok(groups)
    }

    /// Deletes a group; true when it existed.
    pub async fn delete_group(&mut self, name: &str) -> StoreResult<bool> {
        let r = sqlx::query("DELETE FROM group_members WHERE group_name = $1")
            .bind(name)
            .execute(self.c())
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// The groups a principal belongs to, by name.
    pub async fn groups_of(&mut self, member: &str) -> StoreResult<Vec<String>> {
        let rows = sqlx::query(
            "SELECT group_name FROM group_members WHERE member = $1 ORDER BY group_name",
        )
        .bind(member)
        .fetch_all(self.c())
        .await?;
        rows.iter().map(|r| text(r, "group_name")).collect()
    }

    /// Deletes an assignment; true when it existed.
    pub async fn delete_assignment(&mut self, id: &str) -> StoreResult<bool> {
        let r = sqlx::query("DELETE FROM role_assignments WHERE id = $1")
            .bind(id)
            .execute(self.c())
            .await?;
        Ok(r.rows_affected() > 0)
    }

    // -- applications -----------------------------------------------------------------------

    /// Creates or replaces an application; true when created.
    #[allow(clippy::too_many_arguments)]
    pub async fn put_application(
        &mut self,
        id: &str,
        subscription: &str,
        resource_group: &str,
        name: &str,
        properties: &str,
        jit_enabled: bool,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let existed = self.application(id).await?.is_some();
        sqlx::query(
            "INSERT INTO applications (id, subscription, resource_group, name, properties, jit_enabled, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7) ON CONFLICT (id) DO UPDATE SET \
             properties = excluded.properties, updated_at = excluded.updated_at",
        )
        .bind(id)
        .bind(subscription)
        .bind(resource_group)
        .bind(name)
        .bind(properties)
        .bind(i64::from(jit_enabled))
        .bind(to_db(now))
        .execute(self.c())
        .await?;
        Ok(!existed)
    }

    /// One application.
    pub async fn application(&mut self, id: &str) -> StoreResult<Option<ApplicationRow>> {
        let row =
            sqlx::query("SELECT id, name, properties, jit_enabled FROM applications WHERE id = $1")
                .bind(id)
                .fetch_optional(self.c())
                .await?;
        row.as_ref().map(application_row).transpose()
    }

    /// Applications in a subscription, or one of its resource groups, by id.
    pub async fn applications(
        &mut self,
        subscription: &str,
        resource_group: Option<&str>,
    ) -> StoreResult<Vec<ApplicationRow>> {
        let rows = sqlx::query(
            "SELECT id, name, properties, jit_enabled FROM applications \
             WHERE subscription = $1 AND (CAST($2 AS TEXT) IS NULL OR resource_group = $2) ORDER BY id",
        )
        .bind(subscription)
        .bind(resource_group)
        .fetch_all(self.c())
        .await?;
        rows.iter().map(application_row).collect()
    }

    /// Every application.
    pub async fn all_applications(&mut self) -> StoreResult<Vec<ApplicationRow>> {
        let rows =
            sqlx::query("SELECT id, name, properties, jit_enabled FROM applications ORDER BY id")
                .fetch_all(self.c())
                .await?;
        rows.iter().map(application_row).collect()
    }

    /// Deletes an application and its eligibilities; true when it existed.
    pub async fn delete_application(&mut self, id: &str) -> StoreResult<bool> {
        sqlx::query("DELETE FROM eligible_roles WHERE application_id = $1")
            .bind(id)
            .execute(self.c())
            .await?;
        let r = sqlx::query("DELETE FROM applications WHERE id = $1")
            .bind(id)
            .execute(self.c())
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Creates or replaces an eligibility; true when created.
    pub async fn put_eligibility(&mut self, e: &EligibilityRow) -> StoreResult<bool> {
        let existed = self.eligibility(&e.application_id, &e.id).await?.is_some();
        sqlx::query(
            "INSERT INTO eligible_roles (application_id, id, principal, role_name, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (application_id, id) DO UPDATE SET \
             principal = excluded.principal, role_name = excluded.role_name",
        )
        .bind(&e.application_id)
        .bind(&e.id)
        .bind(&e.principal)
        .bind(&e.role_name)
        .bind(to_db(e.created_at))
        .execute(self.c())
        .await?;
        Ok(!existed)
    }

    /// One eligibility.
    pub async fn eligibility(
        &mut self,
        application_id: &str,
        id: &str,
    ) -> StoreResult<Option<EligibilityRow>> {
        let row = sqlx::query(
            "SELECT application_id, id, principal, role_name, created_at FROM eligible_roles \
             WHERE application_id = $1 AND id = $2",
        )
        .bind(application_id)
        .bind(id)
        .fetch_optional(self.c())
        .await?;
        row.as_ref().map(eligibility_row).transpose()
    }

    /// An application's eligibilities, by id.
    pub async fn eligibilities(
        &mut self,
        application_id: &str,
    ) -> StoreResult<Vec<EligibilityRow>> {
        let rows = sqlx::query(
            "SELECT application_id, id, principal, role_name, created_at FROM eligible_roles \
             WHERE application_id = $1 ORDER BY id",
        )
        .bind(application_id)
        .fetch_all(self.c())
        .await?;
        rows.iter().map(eligibility_row).collect()
    }

    /// The eligibilities on applications created without JIT (standing grants), in one query.
    pub async fn standing_eligibilities(&mut self) -> StoreResult<Vec<EligibilityRow>> {
        let rows = sqlx::query(
            "SELECT e.application_id, e.id, e.principal, e.role_name, e.created_at \
             FROM eligible_roles e JOIN applications a ON a.id = e.application_id \
             WHERE a.jit_enabled = 0 ORDER BY e.application_id, e.id",
        )
        .fetch_all(self.c())
        .await?;
        rows.iter().map(eligibility_row).collect()
    }

    /// Deletes an eligibility; true when it existed.
    pub async fn delete_eligibility(
        &mut self,
        application_id: &str,
        id: &str,
    ) -> StoreResult<bool> {
        let r = sqlx::query("DELETE FROM eligible_roles WHERE application_id = $1 AND id = $2")
            .bind(application_id)
            .bind(id)
            .execute(self.c())
            .await?;
        Ok(r.rows_affected() > 0)
    }

    // -- requests on the shared engine (role activations, approval-gated network access) ----

    /// Stores a new role activation request; false when one with this id exists.
    #[allow(clippy::too_many_arguments)]
    pub async fn insert_jit_request(
        &mut self,
        r: &JitRequestRow,
        subscription: &str,
        resource_group: &str,
    ) -> StoreResult<bool> {
        if self.jit_request(&r.id).await?.is_some() {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO jit_requests (id, subscription, resource_group, name, application_id, requester, \
             roles, justification, lifecycle, state, due, created_at, kind, detail, extends) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        )
        .bind(&r.id)
        .bind(subscription)
        .bind(resource_group)
        .bind(&r.name)
        .bind(&r.application_id)
        .bind(&r.requester)
        .bind(&r.roles)
        .bind(&r.justification)
        .bind(&r.lifecycle)
        .bind(&r.state)
        .bind(r.due.map(to_db))
        .bind(to_db(r.created_at))
        .bind(&r.kind)
        .bind(&r.detail)
        .bind(&r.extends)
        .execute(self.c())
        .await?;
        Ok(true)
    }

    /// Replaces a request's lifecycle, state and due instant.
    pub async fn update_jit_request(
        &mut self,
        id: &str,
        lifecycle: &str,
        state: &str,
        due: Option<Timestamp>,
    ) -> StoreResult<()> {
        sqlx::query("UPDATE jit_requests SET lifecycle = $1, state = $2, due = $3 WHERE id = $4")
            .bind(lifecycle)
            .bind(state)
            .bind(due.map(to_db))
            .bind(id)
            .execute(self.c())
            .await?;
        Ok(())
    }

    async fn jit_requests_where(
        &mut self,
        cond: &str,
        arg: &str,
    ) -> StoreResult<Vec<JitRequestRow>> {
        let sql = format!(
            "SELECT {JIT_REQUEST_COLUMNS} FROM jit_requests WHERE {cond} ORDER BY created_at DESC, id DESC"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(arg)
            .fetch_all(self.c())
            .await?;
        rows.iter().map(jit_request_row).collect()
    }

    /// One role activation request.
    pub async fn jit_request(&mut self, id: &str) -> StoreResult<Option<JitRequestRow>> {
        Ok(self
            .jit_requests_where("id = $1", id)
            .await?
            .into_iter()
            .next())
    }

    /// An application's requests, newest first.
    pub async fn jit_requests_of_application(
        &mut self,
        application_id: &str,
    ) -> StoreResult<Vec<JitRequestRow>> {
        self.jit_requests_where("application_id = $1", application_id)
            .await
    }

    /// A newest-first page of requests matching `filter`, after `after`.
    pub async fn jit_request_history(
        &mut self,
        filter: JitRequestFilter<'_>,
        after: Option<&Cursor>,
        limit: u32,
    ) -> StoreResult<Vec<JitRequestRow>> {
        let sql = format!(
            "SELECT {JIT_REQUEST_COLUMNS} FROM jit_requests \
             WHERE (CAST($1 AS TEXT) IS NULL OR requester = $1) \
               AND (CAST($2 AS TEXT) IS NULL OR kind = $2) \
               AND (CAST($3 AS TEXT) IS NULL OR state = $3) \
               AND (CAST($4 AS BIGINT) IS NULL OR created_at >= $4) \
               AND (CAST($5 AS BIGINT) IS NULL OR created_at < $5) \
               AND (CAST($6 AS BIGINT) IS NULL OR created_at < $6 OR (created_at = $6 AND id < $7)) \
             ORDER BY created_at DESC, id DESC LIMIT $8"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(filter.requester)
            .bind(filter.kind)
            .bind(filter.state)
            .bind(filter.from.map(to_db))
            .bind(filter.to.map(to_db))
            .bind(after.map(|c| c.created_at))
            .bind(after.map(|c| c.id.as_str()).unwrap_or(""))
            .bind(i64::from(limit))
            .fetch_all(self.c())
            .await?;
        rows.iter().map(jit_request_row).collect()
    }

    /// Requests in a state, newest first.
    pub async fn jit_requests_in_state(&mut self, state: &str) -> StoreResult<Vec<JitRequestRow>> {
        self.jit_requests_where("state = $1", state).await
    }

    /// Ids of requests due at `now` (the scheduler's work list).
    pub async fn jit_requests_due(&mut self, now: Timestamp) -> StoreResult<Vec<String>> {
        let rows = sqlx::query(
            "SELECT id FROM jit_requests WHERE due IS NOT NULL AND due <= $1 ORDER BY due",
        )
        .bind(to_db(now))
        .fetch_all(self.c())
        .await?;
        rows.iter().map(|r| text(r, "id")).collect()
    }

    /// The earliest due instant of any role activation request.
    pub async fn next_jit_due(&mut self) -> StoreResult<Option<Timestamp>> {
        let row = sqlx::query("SELECT MIN(due) AS due FROM jit_requests WHERE due IS NOT NULL")
            .fetch_one(self.c())
            .await?;
        Ok(row.try_get::<Option<i64>, _>("due")?.map(from_db))
    }

    // -- agents -----------------------------------------------------------------------------

    /// Stores a new agent and the machines it guards.
    pub async fn insert_agent(&mut self, a: &AgentRow, now: Timestamp) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO agents (id, name, mode, public_address, port_low, port_high, token_id, created_at, \
             address_prefixes) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&a.id)
        .bind(&a.name)
        .bind(&a.mode)
        .bind(&a.public_address)
        .bind(a.port_range.map(|r| i64::from(r.0)))
        .bind(a.port_range.map(|r| i64::from(r.1)))
        .bind(&a.token_id)
        .bind(to_db(now))
        .bind(
            a.address_prefixes
                .as_ref()
                .map(|p| serde_json::to_string(p).unwrap_or_default()),
        )
        .execute(self.c())
        .await?;
        for m in &a.machines {
            sqlx::query("INSERT INTO agent_machines (machine_id, agent_id) VALUES ($1, $2)")
                .bind(m)
                .bind(&a.id)
                .execute(self.c())
                .await?;
        }
        self.bump_revision().await?;
        Ok(())
    }

    async fn agent_where(&mut self, cond: &str, arg: Option<&str>) -> StoreResult<Vec<AgentRow>> {
        let sql = format!(
            "SELECT id, name, mode, public_address, port_low, port_high, token_id, last_seen, version, \
             applied_revision, address_prefixes FROM agents WHERE {cond} ORDER BY name"
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some(arg) = arg {
            q = q.bind(arg);
        }
        let rows = q.fetch_all(self.c()).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let port = |col: &str| -> StoreResult<Option<u16>> {
                r.try_get::<Option<i64>, _>(col)?
                    .map(|n| {
                        u16::try_from(n).map_err(|_| StoreError::Corrupt("agent port range".into()))
                    })
                    .transpose()
            };
            let id = text(r, "id")?;
            let machines = sqlx::query(
                "SELECT machine_id FROM agent_machines WHERE agent_id = $1 ORDER BY machine_id",
            )
            .bind(&id)
            .fetch_all(self.c())
            .await?
            .iter()
            .map(|m| text(m, "machine_id"))
            .collect::<StoreResult<_>>()?;
            out.push(AgentRow {
                id,
                name: text(r, "name")?,
                mode: text(r, "mode")?,
                public_address: opt_text(r, "public_address")?,
                port_range: port("port_low")?.zip(port("port_high")?),
                token_id: text(r, "token_id")?,
                last_seen: r.try_get::<Option<i64>, _>("last_seen")?.map(from_db),
                version: opt_text(r, "version")?,
                applied_revision: r.try_get::<Option<i64>, _>("applied_revision")?,
                machines,
                address_prefixes: match opt_text(r, "address_prefixes")? {
                    Some(json) => Some(serde_json::from_str(&json).map_err(|e| {
                        StoreError::Corrupt(format!("agent address_prefixes: {e}"))
                    })?),
                    None => None,
                },
            });
        }
        Ok(out)
    }

    /// One agent.
    pub async fn agent(&mut self, id: &str) -> StoreResult<Option<AgentRow>> {
        Ok(self
            .agent_where("id = $1", Some(id))
            .await?
            .into_iter()
            .next())
    }

    /// One agent by name.
    pub async fn agent_by_name(&mut self, name: &str) -> StoreResult<Option<AgentRow>> {
        Ok(self
            .agent_where("name = $1", Some(name))
            .await?
            .into_iter()
            .next())
    }

    /// Every agent, by name.
    pub async fn agents(&mut self) -> StoreResult<Vec<AgentRow>> {
        self.agent_where("1 = 1", None).await
    }

    /// The agent guarding a machine, if any.
    pub async fn agent_of_machine(&mut self, machine_id: &str) -> StoreResult<Option<String>> {
        let row = sqlx::query("SELECT agent_id FROM agent_machines WHERE machine_id = $1")
            .bind(machine_id)
            .fetch_optional(self.c())
            .await?;
        row.map(|r| text(&r, "agent_id")).transpose()
    }

    /// Deletes an agent (its machines become unguarded); true when it existed.
    pub async fn delete_agent(&mut self, id: &str) -> StoreResult<bool> {
        sqlx::query("DELETE FROM agent_machines WHERE agent_id = $1")
            .bind(id)
            .execute(self.c())
            .await?;
        let r = sqlx::query("DELETE FROM agents WHERE id = $1")
            .bind(id)
            .execute(self.c())
            .await?;
        self.bump_revision().await?;
        Ok(r.rows_affected() > 0)
    }

    /// Records that an agent was heard from.
    pub async fn touch_agent(&mut self, id: &str, now: Timestamp) -> StoreResult<()> {
        sqlx::query("UPDATE agents SET last_seen = $1 WHERE id = $2")
            .bind(to_db(now))
            .bind(id)
            .execute(self.c())
            .await?;
        Ok(())
    }

    /// Records an agent's report: its version and the revision it applied.
    pub async fn agent_applied(
        &mut self,
        id: &str,
        version: &str,
        revision: i64,
        now: Timestamp,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE agents SET last_seen = $1, version = $2, applied_revision = $3 WHERE id = $4",
        )
        .bind(to_db(now))
        .bind(version)
        .bind(revision)
        .bind(id)
        .execute(self.c())
        .await?;
        Ok(())
    }

    /// Records when a port was opened (`opened`) or closed by the agent guarding its machine;
    /// the first report wins. Ports of other agents' machines are ignored. Answers the port's
    /// machine when this report changed it.
    pub async fn mark_port(
        &mut self,
        agent_id: &str,
        request_id: &str,
        seq: i64,
        at: Timestamp,
        opened: bool,
    ) -> StoreResult<Option<String>> {
        let sql = if opened {
            "UPDATE request_ports SET applied_at = $1 WHERE request_id = $2 AND seq = $3 AND applied_at IS NULL \
             AND machine_id IN (SELECT machine_id FROM agent_machines WHERE agent_id = $4) \
             RETURNING machine_id"
        } else {
            "UPDATE request_ports SET removed_at = $1 WHERE request_id = $2 AND seq = $3 AND removed_at IS NULL \
             AND machine_id IN (SELECT machine_id FROM agent_machines WHERE agent_id = $4) \
             RETURNING machine_id"
        };
        let row = sqlx::query(sql)
            .bind(to_db(at))
            .bind(request_id)
            .bind(seq)
            .bind(agent_id)
            .fetch_optional(self.c())
            .await?;
        row.map(|r| text(&r, "machine_id")).transpose()
    }

    /// Gateways guarding any of these machines, with what mapping needs.
    pub async fn gateways_of(&mut self, machine_ids: &[String]) -> StoreResult<Vec<GatewayRow>> {
        if machine_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut args = Args::default();
        let list: Vec<String> = machine_ids.iter().map(|m| args.push_text(m)).collect();
        let rows = args
            .query(format!(
                "SELECT am.machine_id, a.id, a.public_address, a.port_low, a.port_high \
                 FROM agent_machines am JOIN agents a ON a.id = am.agent_id \
                 WHERE a.mode = 'gateway' AND am.machine_id IN ({})",
                list.join(", ")
            ))
            .fetch_all(self.c())
            .await?;
        let mut out = Vec::new();
        for r in &rows {
            let (Some(low), Some(high)) = (
                r.try_get::<Option<i64>, _>("port_low")?,
                r.try_get::<Option<i64>, _>("port_high")?,
            ) else {
                continue;
            };
            let (Ok(low), Ok(high)) = (u16::try_from(low), u16::try_from(high)) else {
                return Err(StoreError::Corrupt("agent port range".into()));
            };
            out.push(GatewayRow {
                machine_id: text(r, "machine_id")?,
                agent_id: text(r, "id")?,
                port_range: (low, high),
                public_address: opt_text(r, "public_address")?,
            });
        }
        Ok(out)
    }

    /// Mapped ports held by open grants on these gateways, as (agent id, port).
    pub async fn mapped_ports_in_use(
        &mut self,
        agent_ids: &[String],
    ) -> StoreResult<Vec<(String, u16)>> {
        if agent_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut args = Args::default();
        let list: Vec<String> = agent_ids.iter().map(|m| args.push_text(m)).collect();
        let rows = args
            .query(format!(
                "SELECT gateway_agent, mapped_port FROM request_ports \
                 WHERE status = 'Initiated' AND mapped_port IS NOT NULL AND gateway_agent IN ({})",
                list.join(", ")
            ))
            .fetch_all(self.c())
            .await?;
        rows.iter()
            .map(|r| {
                let port = u16::try_from(int(r, "mapped_port")?)
                    .map_err(|_| StoreError::Corrupt("mapped port".into()))?;
                Ok((text(r, "gateway_agent")?, port))
            })
            .collect()
    }

    /// The machines an agent guards, with the policy covering each.
    pub async fn agent_machines(&mut self, agent_id: &str) -> StoreResult<Vec<MachineRow>> {
        let sql = format!("SELECT {MACHINE_COLUMNS} WHERE am.agent_id = $1 ORDER BY m.id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(agent_id)
            .fetch_all(self.c())
            .await?;
        rows.iter().map(machine_row).collect()
    }

    // -- settings -----------------------------------------------------------------------------

    /// Sets whether JIT is enabled for a scope.
    pub async fn put_jit_enabled(
        &mut self,
        scope: &str,
        enabled: bool,
        now: Timestamp,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO jit_settings (scope, jit_enabled, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (scope) DO UPDATE SET jit_enabled = excluded.jit_enabled, updated_at = excluded.updated_at",
        )
        .bind(scope)
        .bind(i64::from(enabled))
        .bind(to_db(now))
        .execute(self.c())
        .await?;
        Ok(())
    }

    /// Whether JIT is enabled for a scope (true unless turned off).
    pub async fn jit_enabled(&mut self, scope: &str) -> StoreResult<bool> {
        let row = sqlx::query("SELECT jit_enabled FROM jit_settings WHERE scope = $1")
            .bind(scope)
            .fetch_optional(self.c())
            .await?;
        Ok(row
            .map(|r| int(&r, "jit_enabled"))
            .transpose()?
            .is_none_or(|v| v != 0))
    }

    /// Every scope where JIT is turned off.
    pub async fn jit_disabled_scopes(&mut self) -> StoreResult<Vec<String>> {
        let rows =
            sqlx::query("SELECT scope FROM jit_settings WHERE jit_enabled = 0 ORDER BY scope")
                .fetch_all(self.c())
                .await?;
        rows.iter().map(|r| text(r, "scope")).collect()
    }
}

/// Positional arguments for a statement built at run time: each `push_*` binds a value and
/// returns its placeholder (`$n`).
#[derive(Default)]
struct Args {
    values: Vec<Value>,
}

#[derive(Clone)]
enum Value {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    OptInt(Option<i64>),
}

impl Args {
    fn push(&mut self, v: Value) -> String {
        self.values.push(v);
        format!("${}", self.values.len())
    }
    fn push_text(&mut self, s: &str) -> String {
        self.push(Value::Text(s.to_owned()))
    }
    fn push_opt(&mut self, s: Option<&str>) -> String {
        self.push(Value::OptText(s.map(str::to_owned)))
    }
    fn push_int(&mut self, n: i64) -> String {
        self.push(Value::Int(n))
    }
    fn push_opt_int(&mut self, n: Option<i64>) -> String {
        self.push(Value::OptInt(n))
    }
    /// Splits a multi-statement text at `;` (the statements hold no literal `;`) into single
    /// statements, each with its own arguments numbered from `$1`.
    fn split(self, sql: &str) -> Vec<(String, Args)> {
        let mut out = Vec::new();
        for statement in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            let mut args = Args::default();
            let mut text = String::with_capacity(statement.len());
            let mut chars = statement.chars().peekable();
            while let Some(c) = chars.next() {
                if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
                    let mut n = String::new();
                    while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                        n.push(d);
                        chars.next();
                    }
                    let value = n
                        .parse::<usize>()
                        .ok()
                        .and_then(|i| self.values.get(i.wrapping_sub(1)))
                        .cloned()
                        .unwrap_or(Value::OptText(None));
                    text.push_str(&args.push(value));
                } else {
                    text.push(c);
                }
            }
            out.push((text, args));
        }
        out
    }

    fn query(self, sql: String) -> sqlx::query::Query<'static, Any, sqlx::any::AnyArguments> {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for v in self.values {
            q = match v {
                Value::Text(s) => q.bind(s),
                Value::OptText(s) => q.bind(s),
                Value::Int(n) => q.bind(n),
                Value::OptInt(n) => q.bind(n),
            };
        }
        q
    }
}

const EXPIRY_WARNING_DUE: &str = "SELECT 1 FROM request_ports p JOIN requests r ON r.id = p.request_id \
     WHERE p.status = 'Initiated' AND p.end_time <= $1 AND p.end_time - r.created_at > $2 \
     AND p.end_time > $3 \
     AND r.expiry_warned_at IS NULL \
     AND NOT EXISTS (SELECT 1 FROM jit_requests j WHERE j.kind = 'network' AND j.name = r.id) LIMIT 1";

/// A port the scheduler closed because its end time passed.
#[derive(Debug, Clone)]
pub struct ExpiredPort {
    /// The request.
    pub request_id: String,
    /// Position within the request.
    pub seq: i64,
    /// The machine.
    pub machine_id: String,
    /// The port number.
    pub number: i64,
    /// When it was due to close.
    pub end_time: Timestamp,
}

/// A request to store with [`Tx::insert_requests`].
#[derive(Debug, Clone, Copy)]
pub struct NewRequest<'a> {
    /// The request.
    pub request: &'a RequestRow,
    /// Its ports; never empty.
    pub ports: &'a [PortRow],
    /// What must still hold for it to be stored.
    pub guard: PolicyGuard<'a>,
}

/// What must still hold when a request is stored.
#[derive(Debug, Clone, Copy)]
pub struct PolicyGuard<'a> {
    /// The request's policy still has this ETag (is unchanged since the check).
    pub etag: &'a str,
    /// No setting turns JIT off at any of these scopes.
    pub blocking_scopes: &'a [String],
}

/// Which requests to list.
#[derive(Debug, Clone, Copy)]
pub enum RequestsOn<'a> {
    /// Those made under this policy.
    Policy(&'a str),
    /// Those that touch this machine.
    Machine(&'a str),
    /// All of them, except those opened by an approval-gated request (whose history is the
    /// approval request's).
    Everywhere,
}

/// A request list filter.
#[derive(Debug, Clone, Copy)]
pub struct RequestFilter<'a> {
    /// Under a policy, or on a machine.
    pub on: RequestsOn<'a>,
    /// Only this requestor's.
    pub requestor: Option<&'a str>,
    /// Made at or after this instant.
    pub from: Option<Timestamp>,
    /// Made before this instant.
    pub to: Option<Timestamp>,
}

/// A filter over requests on the shared engine (role activations, approval-gated network
/// access).
#[derive(Debug, Clone, Copy, Default)]
pub struct JitRequestFilter<'a> {
    /// Only this requester's.
    pub requester: Option<&'a str>,
    /// Only `role` or only `network` requests.
    pub kind: Option<&'a str>,
    /// Only in this state.
    pub state: Option<&'a str>,
    /// Made at or after this instant.
    pub from: Option<Timestamp>,
    /// Made before this instant.
    pub to: Option<Timestamp>,
}
