//! Network access requests and their ports (grants): the batched insert with its guards, closing, expiry and reports.

use crate::columns::{Micros, NullableMicros, to_json};
use crate::readable::{Arm, Readable, push_merged};
use crate::rows::*;
use crate::sql::{SqlBuilder, push_in_list, push_page_conditions};
use crate::tx::*;
use crate::{StoreError, StoreResult};
use ajar_core::id::Scope;
use ajar_core::request::StatusReason;
use jiff::Timestamp;

/// The columns of a [`PortRow`] (`p`: the port, `ga`: its gateway agent).
pub(crate) const PORT_COLUMNS: &str = "p.request_id, p.seq, p.machine_id, p.number, p.protocol, p.sources, \
     p.supersede_key, p.end_time, p.status, p.status_reason, p.gateway_agent, p.mapped_port, \
     p.applied_at, p.removed_at, ga.public_address AS connect_address";

/// Whether a port's request is due for its expiry warning (see [`Tx::expiry_warning_due`]).
pub(crate) const EXPIRY_WARNING_DUE: &str = "SELECT 1 FROM request_ports p JOIN requests r ON r.id = p.request_id \
     WHERE p.status = 'Initiated' AND p.end_time <= $1 AND p.end_time - r.created_at > $2 \
     AND p.end_time > $3 \
     AND r.expiry_warned_at IS NULL \
     AND NOT EXISTS (SELECT 1 FROM jit_requests j WHERE j.kind = 'network' AND j.name = r.id) LIMIT 1";

/// A port the scheduler closed because its end time passed.
#[derive(Debug, Clone, sqlx::FromRow)]
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
    #[sqlx(try_from = "Micros")]
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
    /// Only what may be read (resources are policies); `None` reads everything.
    pub within: Option<&'a Readable>,
}

impl Tx {
    /// How many requests of `requester` await a decision (read through
    /// `jit_requests_pending_by_requester`).
    pub async fn pending_requests_of(&mut self, requester: &str) -> StoreResult<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) AS n FROM jit_requests WHERE requester = $1 AND state = 'Pending'",
        )
        .bind(requester)
        .fetch_one(self.c())
        .await?)
    }

    /// The supersede keys of the ports `requestor` holds open at `now`, one per live grant, at
    /// most `at_most` of them (read through `request_ports_live_by_requestor`).
    pub async fn live_grant_keys(
        &mut self,
        requestor: &str,
        now: Timestamp,
        at_most: usize,
    ) -> StoreResult<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT supersede_key FROM request_ports \
             WHERE requestor = $1 AND status = 'Initiated' AND end_time > $2 LIMIT $3",
        )
        .bind(requestor)
        .bind(to_db(now))
        .bind(i64::try_from(at_most).unwrap_or(i64::MAX))
        .fetch_all(self.c())
        .await?)
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
        // The text depends only on the batch's shape (requests, ports, sources per request), so
        // under load the same few shapes recur and the prepared-statement cache saves parsing.
        // PostgreSQL prepares one statement at a time: there, each runs on its own.
        let mut script = Script::new(self.backend == crate::Backend::Sqlite);
        for item in batch {
            if item.ports.is_empty() {
                return Err(StoreError::Other("a request needs ports".into()));
            }
            let req = item.request;
            let created = to_db(req.created_at);
            let sql = script.statement();
            // Kept beside the policy's id so history can be read a subscription or a resource
            // group at a time; the same parse decides who may read the request.
            let scope = Scope::parse(&req.policy_id).ok();
            let subscription = scope.as_ref().and_then(Scope::subscription);
            let resource_group = scope.as_ref().and_then(Scope::resource_group);
            sql.push(
                "INSERT INTO requests (id, policy_id, requestor, justification, source_address, created_at, \
                 subscription, resource_group) SELECT ",
            );
            sql.separated(", ")
                .push_bind(req.id.as_str())
                .push_bind(req.policy_id.as_str())
                .push_bind(req.requestor.as_str())
                .push_bind(req.justification.as_deref())
                .push_bind(req.source_address.as_deref())
                .push_bind(created)
                .push_bind(subscription.map(|n| n.as_str()))
                .push_bind(resource_group.map(|n| n.as_str()));
            sql.push(" WHERE EXISTS (SELECT 1 FROM policies WHERE id = ")
                .push_bind(req.policy_id.as_str())
                .push(" AND etag = ")
                .push_bind(item.guard.etag)
                .push(") AND NOT EXISTS (SELECT 1 FROM jit_settings WHERE jit_enabled = 0 AND scope IN ");
            push_in_list(sql, item.guard.blocking_scopes);
            sql.push(")");

            let sql = script.statement();
            sql.push(
                "INSERT INTO request_ports (request_id, seq, machine_id, number, protocol, sources, \
                 supersede_key, end_time, status, status_reason, gateway_agent, mapped_port, requestor) \
                 SELECT * FROM (VALUES ",
            );
            let sources: Vec<String> = item
                .ports
                .iter()
                .map(|p| to_json(&p.sources))
                .collect::<StoreResult<_>>()?;
            sql.push_tuples(item.ports.iter().zip(&sources), |mut row, (p, sources)| {
                row.push_bind(req.id.as_str())
                    .push_bind(p.seq)
                    .push_bind(p.machine_id.as_str())
                    .push_bind(i64::from(p.number))
                    .push_bind(p.protocol.as_str())
                    .push_bind(sources.as_str())
                    .push_bind(p.supersede_key.as_str())
                    .push_bind(to_db(p.end_time))
                    .push_bind(p.status.as_str())
                    .push_bind(p.status_reason.as_str())
                    .push_bind(p.gateway_agent.as_deref())
                    .push_bind(p.mapped_port.map(i64::from))
                    .push_bind(req.requestor.as_str());
            });
            sql.push(") AS v WHERE EXISTS (SELECT 1 FROM requests WHERE id = ")
                .push_bind(req.id.as_str())
                .push(")");

            let mut keys: Vec<&str> = item
                .ports
                .iter()
                .map(|p| p.supersede_key.as_str())
                .collect();
            keys.sort_unstable();
            keys.dedup();
            let sql = script.statement();
            sql.push(
                "UPDATE request_ports SET status = 'Revoked', status_reason = 'NewerRequestInitiated', \
                 closed_at = ",
            )
            .push_bind(created)
            .push(" WHERE status = 'Initiated' AND request_id <> ")
            .push_bind(req.id.as_str())
            .push(" AND supersede_key IN ");
            push_in_list(sql, keys);
            sql.push(" AND EXISTS (SELECT 1 FROM requests WHERE id = ")
                .push_bind(req.id.as_str())
                .push(")");
        }
        // The figures of the machines the stored requests name, in two statements for the
        // batch: each machine's latest request, and its requests per hour.
        let ids: Vec<&str> = batch.iter().map(|i| i.request.id.as_str()).collect();
        let sql = script.statement();
        sql.push(
            "INSERT INTO machine_figures (machine_id, last_at, last_request, last_user) \
             SELECT machine_id, created_at, id, requestor FROM ( \
               SELECT p.machine_id, r.created_at, r.id, r.requestor, ROW_NUMBER() OVER \
                 (PARTITION BY p.machine_id ORDER BY r.created_at DESC, r.id DESC) AS rn \
               FROM requests r JOIN request_ports p ON p.request_id = r.id WHERE r.id IN ",
        );
        push_in_list(sql, ids.iter().copied());
        sql.push(
            ") t WHERE rn = 1 \
             ON CONFLICT (machine_id) DO UPDATE SET last_at = excluded.last_at, \
             last_request = excluded.last_request, last_user = excluded.last_user \
             WHERE excluded.last_at > machine_figures.last_at \
             OR (excluded.last_at = machine_figures.last_at \
                 AND excluded.last_request > machine_figures.last_request)",
        );
        let sql = script.statement();
        sql.push(format_args!(
            "INSERT INTO machine_request_hours (machine_id, hour, requests) \
             SELECT p.machine_id, r.created_at / {HOUR_MICROS}, COUNT(DISTINCT r.id) \
             FROM requests r JOIN request_ports p ON p.request_id = r.id WHERE r.id IN "
        ));
        push_in_list(sql, ids.iter().copied());
        sql.push(format_args!(
            " GROUP BY p.machine_id, r.created_at / {HOUR_MICROS} \
             ON CONFLICT (machine_id, hour) DO UPDATE \
             SET requests = machine_request_hours.requests + excluded.requests"
        ));
        for statement in script.into_statements() {
            statement.build()?.execute(self.c()).await?;
        }

        let mut sql = SqlBuilder::new("SELECT id FROM requests WHERE id IN ");
        push_in_list(&mut sql, batch.iter().map(|i| i.request.id.as_str()));
        let stored: std::collections::HashSet<String> = sql
            .build_query_scalar::<String>()?
            .persistent(false)
            .fetch_all(self.c())
            .await?
            .into_iter()
            .collect();
        let machines: Vec<String> = batch
            .iter()
            .filter(|i| stored.contains(&i.request.id))
            .flat_map(|i| i.ports.iter().map(|p| p.machine_id.clone()))
            .collect();
        if !machines.is_empty() {
            self.touch_machines(machines);
        }
        Ok(batch
            .iter()
            .map(|i| stored.contains(&i.request.id))
            .collect())
    }

    /// One request and its ports.
    pub async fn request(&mut self, id: &str) -> StoreResult<Option<(RequestRow, Vec<PortRow>)>> {
        let req: Option<RequestRow> = sqlx::query_as(
            "SELECT id, policy_id, requestor, justification, source_address, created_at FROM requests WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.c())
        .await?;
        let Some(req) = req else { return Ok(None) };
        let ports = self.ports_of(std::slice::from_ref(&req.id)).await?;
        Ok(Some((req, ports)))
    }

    /// The ports of several requests in one query, in request and port order.
    async fn ports_of(&mut self, request_ids: &[String]) -> StoreResult<Vec<PortRow>> {
        if request_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut sql = SqlBuilder::new(format!(
            "SELECT {PORT_COLUMNS} FROM request_ports p LEFT JOIN agents ga ON ga.id = p.gateway_agent WHERE p.request_id IN "
        ));
        push_in_list(&mut sql, request_ids.iter().map(String::as_str));
        sql.push(" ORDER BY p.request_id, p.seq");
        Ok(sql.build_query_as()?.fetch_all(self.c()).await?)
    }

    /// A newest-first page of requests made under a policy or touching a machine, optionally
    /// only one requestor's. Returns up to `limit` requests with their ports.
    pub async fn requests(
        &mut self,
        filter: RequestFilter<'_>,
        after: Option<&Cursor>,
        limit: u32,
    ) -> StoreResult<Vec<(RequestRow, Vec<PortRow>)>> {
        let sql = requests_sql(filter, after, limit);
        let reqs: Vec<RequestRow> = sql.build_query_as()?.fetch_all(self.c()).await?;
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
        let closed: Option<String> = sqlx::query_scalar(
            "UPDATE request_ports SET status = 'Revoked', status_reason = $1, closed_at = $2 \
             WHERE request_id = $3 AND seq = $4 AND status = 'Initiated' RETURNING machine_id",
        )
        .bind(reason.as_str())
        .bind(to_db(now))
        .bind(request_id)
        .bind(seq)
        .fetch_optional(self.c())
        .await?;
        let was_open = closed.is_some();
        self.touch_machines(closed);
        Ok(was_open)
    }

    /// Open ports of requests made under a policy.
    pub async fn open_ports_of_policy(&mut self, policy_id: &str) -> StoreResult<Vec<PortRow>> {
        let sql = format!(
            "SELECT {PORT_COLUMNS} FROM request_ports p LEFT JOIN agents ga ON ga.id = p.gateway_agent \
             JOIN requests r ON r.id = p.request_id \
             WHERE r.policy_id = $1 AND p.status = 'Initiated'"
        );
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(policy_id)
            .fetch_all(self.c())
            .await?)
    }

    /// Ports of a machine that are open at `now`, soonest-ending first.
    pub async fn grants(&mut self, machine_id: &str, now: Timestamp) -> StoreResult<Vec<GrantRow>> {
        self.grants_where("p.machine_id = $1", machine_id, now, None)
            .await
    }

    /// Ports open at `now` on every machine an agent guards.
    pub async fn agent_grants(
        &mut self,
        agent_id: &str,
        now: Timestamp,
    ) -> StoreResult<Vec<GrantRow>> {
        self.agent_grants_since(agent_id, now, None).await
    }

    /// Open grants on an agent's machines whose desired state changed after revision `since`
    /// (on all its machines when `None`).
    pub async fn agent_grants_since(
        &mut self,
        agent_id: &str,
        now: Timestamp,
        since: Option<i64>,
    ) -> StoreResult<Vec<GrantRow>> {
        let machines = match since {
            None => "p.machine_id IN (SELECT machine_id FROM agent_machines WHERE agent_id = $1)",
            Some(_) => {
                "p.machine_id IN (SELECT machine_id FROM agent_machines \
                 WHERE agent_id = $1 AND revision > $3)"
            }
        };
        self.grants_where(machines, agent_id, now, since).await
    }

    /// Open grants matching `cond`, which binds `arg` as `$1` (`$2` is `now`) and `third`, when
    /// given, as `$3`.
    pub(crate) async fn grants_where(
        &mut self,
        cond: &str,
        arg: &str,
        now: Timestamp,
        third: Option<i64>,
    ) -> StoreResult<Vec<GrantRow>> {
        let sql = format!(
            "SELECT {PORT_COLUMNS}, r.requestor, r.created_at, r.policy_id FROM request_ports p \
             LEFT JOIN agents ga ON ga.id = p.gateway_agent \
             JOIN requests r ON r.id = p.request_id \
             WHERE {cond} AND p.status = 'Initiated' AND p.end_time > $2 \
             ORDER BY p.end_time, p.request_id, p.seq"
        );
        let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(arg)
            .bind(to_db(now));
        if let Some(third) = third {
            query = query.bind(third);
        }
        Ok(query.fetch_all(self.c()).await?)
    }

    /// Closes every open port whose end time has passed as `Expired`; answers them.
    pub async fn expire_due(&mut self, now: Timestamp) -> StoreResult<Vec<ExpiredPort>> {
        let expired: Vec<ExpiredPort> = sqlx::query_as(
            "UPDATE request_ports SET status = 'Revoked', status_reason = 'Expired', closed_at = end_time \
             WHERE status = 'Initiated' AND end_time <= $1 \
             RETURNING request_id, seq, machine_id, number, end_time",
        )
        .bind(to_db(now))
        .fetch_all(self.c())
        .await?;
        if !expired.is_empty() {
            self.touch_machines(expired.iter().map(|e| e.machine_id.clone()));
        }
        Ok(expired)
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
        Ok(sqlx::query_as(
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
        .await?)
    }

    /// The earliest end time of an open port.
    pub async fn next_due(&mut self) -> StoreResult<Option<Timestamp>> {
        let due: NullableMicros = sqlx::query_scalar(
            "SELECT MIN(end_time) AS due FROM request_ports WHERE status = 'Initiated'",
        )
        .fetch_one(self.c())
        .await?;
        Ok(due.into())
    }
}

/// The statements of one batch: on SQLite one text (one round trip), on PostgreSQL one
/// statement each (it prepares one at a time).
struct Script {
    one_text: bool,
    statements: Vec<SqlBuilder>,
}

impl Script {
    fn new(one_text: bool) -> Self {
        Self {
            one_text,
            statements: Vec::new(),
        }
    }

    /// A builder for the next statement.
    fn statement(&mut self) -> &mut SqlBuilder {
        match self.statements.last_mut() {
            Some(last) if self.one_text => {
                last.push(";\n");
            }
            _ => self.statements.push(SqlBuilder::new("")),
        }
        let last = self.statements.len() - 1;
        &mut self.statements[last]
    }

    fn into_statements(self) -> Vec<SqlBuilder> {
        self.statements
    }
}

/// Microseconds in an hour: the bucket of the per-machine request counts.
pub(crate) const HOUR_MICROS: i64 = 3_600_000_000;

/// The hour bucket of a stored instant (microseconds).
pub(crate) fn hour_of(micros: i64) -> i64 {
    micros.div_euclid(HOUR_MICROS)
}

/// The columns of a [`RequestRow`].
const REQUEST_COLUMNS: &str = "id, policy_id, requestor, justification, source_address, created_at";

/// The statement of [`Tx::requests`]: one walk of an index in `(created_at, id)` order, or,
/// when only some requests may be read, one such walk per part of them, merged.
pub(crate) fn requests_sql(
    filter: RequestFilter<'_>,
    after: Option<&Cursor>,
    limit: u32,
) -> SqlBuilder {
    let mut sql = SqlBuilder::new("");
    match filter.within {
        None => push_requests_page(&mut sql, filter, after, limit, None),
        // Requests stored before their subscription was kept are read apart.
        Some(within) => push_merged(
            &mut sql,
            REQUEST_COLUMNS,
            &within.arms(true),
            limit,
            |sql, arm| push_requests_page(sql, filter, after, limit, Some(arm)),
        ),
    }
    sql
}

/// A page of requests, of one part of what may be read when `arm` is given. Only the
/// conditions given, so the planner can walk an index in `(created_at, id)` order:
/// `requests_by_policy`, `requests_by_requestor`, `requests_by_time`, or
/// `requests_by_subscription` and `requests_by_group` for a subscription's or a resource
/// group's.
fn push_requests_page(
    sql: &mut SqlBuilder,
    filter: RequestFilter<'_>,
    after: Option<&Cursor>,
    limit: u32,
    arm: Option<Arm<'_>>,
) {
    let (by_policy, by_machine, everywhere) = match filter.on {
        RequestsOn::Policy(p) => (Some(p), None, false),
        RequestsOn::Machine(m) => (None, Some(m), false),
        RequestsOn::Everywhere => (None, None, true),
    };
    sql.push(
        "SELECT r.id, r.policy_id, r.requestor, r.justification, r.source_address, r.created_at \
         FROM requests r WHERE 1 = 1",
    );
    if let Some(policy) = by_policy {
        sql.push(" AND r.policy_id = ").push_bind(policy.to_owned());
    }
    if let Some(machine) = by_machine {
        sql.push(" AND r.id IN (SELECT request_id FROM request_ports WHERE machine_id = ")
            .push_bind(machine.to_owned())
            .push(")");
    }
    if let Some(requestor) = filter.requestor {
        sql.push(" AND r.requestor = ")
            .push_bind(requestor.to_owned());
    }
    match arm {
        None => {}
        Some(Arm::Own(requestor)) => {
            sql.push(" AND r.requestor = ")
                .push_bind(requestor.to_owned());
        }
        Some(Arm::Subscription(s)) => {
            sql.push(" AND r.subscription = ").push_bind(s.to_owned());
        }
        Some(Arm::Group(s, g)) => {
            sql.push(" AND r.subscription = ")
                .push_bind(s.to_owned())
                .push(" AND r.resource_group = ")
                .push_bind(g.to_owned());
        }
        Some(Arm::Resource(policy)) => {
            sql.push(" AND r.policy_id = ").push_bind(policy.to_owned());
        }
        Some(Arm::Unplaced) => {
            sql.push(" AND r.subscription IS NULL");
        }
        Some(Arm::Nothing) => {
            sql.push(" AND 1 = 0");
        }
    }
    push_page_conditions(sql, "r.", filter.from, filter.to, after);
    if everywhere {
        // Approval-gated requests are listed through their approval request instead.
        sql.push(
            " AND NOT EXISTS (SELECT 1 FROM jit_requests j WHERE j.kind = 'network' AND j.name = r.id)",
        );
    }
    sql.push(" ORDER BY r.created_at DESC, r.id DESC LIMIT ")
        .push_bind(i64::from(limit));
}
