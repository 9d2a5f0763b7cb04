//! Network access requests and their ports (grants): the batched insert with its guards, closing, expiry and reports.

use crate::rows::*;
use crate::tx::*;
use crate::{StoreError, StoreResult};
use ajar_core::request::{PortStatus, StatusReason};
use jiff::Timestamp;
use sqlx::Row;
use sqlx::any::AnyRow;

pub(crate) fn request_row(r: &AnyRow) -> StoreResult<RequestRow> {
    Ok(RequestRow {
        id: text(r, "id")?,
        policy_id: text(r, "policy_id")?,
        requestor: text(r, "requestor")?,
        justification: opt_text(r, "justification")?,
        source_address: opt_text(r, "source_address")?,
        created_at: from_db(int(r, "created_at")?),
    })
}

pub(crate) fn port_row(r: &AnyRow) -> StoreResult<PortRow> {
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

pub(crate) const PORT_COLUMNS: &str = "p.request_id, p.seq, p.machine_id, p.number, p.protocol, p.sources, \
     p.supersede_key, p.end_time, p.status, p.status_reason, p.gateway_agent, p.mapped_port, \
     p.applied_at, p.removed_at, ga.public_address AS connect_address";

pub(crate) const EXPIRY_WARNING_DUE: &str = "SELECT 1 FROM request_ports p JOIN requests r ON r.id = p.request_id \
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

impl Tx {
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
}
