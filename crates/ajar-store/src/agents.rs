//! Enforcement agents, the machines they guard, and the desired state they read.

use crate::StoreResult;
use crate::columns::{PortNumber, PortRangeColumns, to_json};
use crate::machines::MACHINE_COLUMNS;
use crate::rows::*;
use crate::sql::{SqlBuilder, push_in_list, push_limit};
use crate::tx::*;
use jiff::Timestamp;

/// The columns of an [`AgentRow`] (without its machines).
const AGENT_SELECT: &str = "SELECT id, name, mode, public_address, port_low, port_high, token_id, last_seen, \
     version, applied_revision, revision, address_prefixes, inventory_scope FROM agents";

/// A gateway guarding a machine, before gateways without a port range are left out.
#[derive(sqlx::FromRow)]
struct GatewayColumns {
    machine_id: String,
    #[sqlx(rename = "id")]
    agent_id: String,
    #[sqlx(flatten, try_from = "PortRangeColumns")]
    port_range: Option<(u16, u16)>,
    public_address: Option<String>,
}

/// A mapped port held on a gateway.
#[derive(sqlx::FromRow)]
struct MappedPort {
    gateway_agent: String,
    #[sqlx(try_from = "PortNumber")]
    mapped_port: u16,
}

impl Tx {
    /// Stores a new agent and the machines it guards.
    pub async fn insert_agent(&mut self, a: &AgentRow, now: Timestamp) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO agents (id, name, mode, public_address, port_low, port_high, token_id, created_at, \
             address_prefixes, inventory_scope) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&a.id)
        .bind(&a.name)
        .bind(&a.mode)
        .bind(&a.public_address)
        .bind(a.port_range.map(|r| i64::from(r.0)))
        .bind(a.port_range.map(|r| i64::from(r.1)))
        .bind(&a.token_id)
        .bind(to_db(now))
        .bind(a.address_prefixes.as_deref().map(to_json).transpose()?)
        .bind(&a.inventory_scope)
        .execute(self.c())
        .await?;
        for m in &a.machines {
            sqlx::query("INSERT INTO agent_machines (machine_id, agent_id) VALUES ($1, $2)")
                .bind(m)
                .bind(&a.id)
                .execute(self.c())
                .await?;
        }
        self.touch_agent_machines(&a.id);
        Ok(())
    }

    async fn agent_where(&mut self, cond: &str, arg: Option<&str>) -> StoreResult<Vec<AgentRow>> {
        let mut sql = SqlBuilder::new(format!("{AGENT_SELECT} WHERE {cond}"));
        if let Some(arg) = arg {
            sql.push_bind(arg.to_owned());
        }
        sql.push(" ORDER BY name");
        let agents = sql.build_query_as()?.fetch_all(self.c()).await?;
        self.with_machines(agents).await
    }

    /// The agents with the machines each guards, read for all of them in one query.
    async fn with_machines(&mut self, mut agents: Vec<AgentRow>) -> StoreResult<Vec<AgentRow>> {
        if agents.is_empty() {
            return Ok(agents);
        }
        let ids: Vec<&str> = agents.iter().map(|a| a.id.as_str()).collect();
        let guarded: Vec<(String, String)> = agent_machines_sql(&ids)
            .build_query_as()?
            .fetch_all(self.c())
            .await?;
        let mut by_agent: std::collections::HashMap<String, Vec<String>> =
            std::collections::HashMap::new();
        for (agent, machine) in guarded {
            by_agent.entry(agent).or_default().push(machine);
        }
        for agent in &mut agents {
            agent.machines = by_agent.remove(&agent.id).unwrap_or_default();
        }
        Ok(agents)
    }

    /// At most `limit` agents in name order, after the agent named `after`, with the machines
    /// each guards: one page through the unique index on names.
    pub async fn agents_page(
        &mut self,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<AgentRow>> {
        let agents = agents_page_sql(after, limit)
            .build_query_as()?
            .fetch_all(self.c())
            .await?;
        self.with_machines(agents).await
    }

    /// One agent.
    pub async fn agent(&mut self, id: &str) -> StoreResult<Option<AgentRow>> {
        Ok(self
            .agent_where("id = ", Some(id))
            .await?
            .into_iter()
            .next())
    }

    /// One agent by name.
    pub async fn agent_by_name(&mut self, name: &str) -> StoreResult<Option<AgentRow>> {
        Ok(self
            .agent_where("name = ", Some(name))
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
        Ok(
            sqlx::query_scalar("SELECT agent_id FROM agent_machines WHERE machine_id = $1")
                .bind(machine_id)
                .fetch_optional(self.c())
                .await?,
        )
    }

    /// Those of `machine_ids` that the agent guards: one lookup by primary key per machine.
    pub async fn guarded_among(
        &mut self,
        agent_id: &str,
        machine_ids: &[&str],
    ) -> StoreResult<Vec<String>> {
        let mut out = Vec::new();
        for chunk in machine_ids.chunks(500) {
            let mut sql =
                SqlBuilder::new("SELECT machine_id FROM agent_machines WHERE agent_id = ");
            sql.push_bind(agent_id.to_owned())
                .push(" AND machine_id IN ");
            push_in_list(&mut sql, chunk.iter().copied());
            let ids: Vec<String> = sql
                .build_query_scalar()?
                .persistent(false)
                .fetch_all(self.c())
                .await?;
            out.extend(ids);
        }
        Ok(out)
    }

    /// Makes an agent guard a machine that no agent guards (the caller checked; the primary
    /// key refuses a second agent). The agent's set of machines changed: it reads its whole
    /// state again, and what is held of the agent (its machines) is read again.
    pub async fn guard_machine(&mut self, agent_id: &str, machine_id: &str) -> StoreResult<()> {
        self.touched_access = true;
        sqlx::query("INSERT INTO agent_machines (machine_id, agent_id) VALUES ($1, $2)")
            .bind(machine_id)
            .bind(agent_id)
            .execute(self.c())
            .await?;
        self.touch_agent_machines(agent_id);
        Ok(())
    }

    /// Deletes an agent (its machines become unguarded, and what it reported about them is
    /// forgotten); true when it existed.
    pub async fn delete_agent(&mut self, id: &str) -> StoreResult<bool> {
        self.touched_access = true;
        self.clear_enforcement_of_agent(id).await?;
        sqlx::query("DELETE FROM agent_machines WHERE agent_id = $1")
            .bind(id)
            .execute(self.c())
            .await?;
        let r = sqlx::query("DELETE FROM agents WHERE id = $1")
            .bind(id)
            .execute(self.c())
            .await?;
        // Its long polls end: what it guarded is no longer its own.
        self.touch_agent_machines(id);
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
        Ok(sqlx::query_scalar(sql)
            .bind(to_db(at))
            .bind(request_id)
            .bind(seq)
            .bind(agent_id)
            .fetch_optional(self.c())
            .await?)
    }

    /// Gateways guarding any of these machines, with what mapping needs.
    pub async fn gateways_of(&mut self, machine_ids: &[String]) -> StoreResult<Vec<GatewayRow>> {
        if machine_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut sql = SqlBuilder::new(
            "SELECT am.machine_id, a.id, a.public_address, a.port_low, a.port_high \
             FROM agent_machines am JOIN agents a ON a.id = am.agent_id \
             WHERE a.mode = 'gateway' AND am.machine_id IN ",
        );
        push_in_list(&mut sql, machine_ids.iter().map(String::as_str));
        let rows: Vec<GatewayColumns> = sql.build_query_as()?.fetch_all(self.c()).await?;
        Ok(rows
            .into_iter()
            .filter_map(|g| {
                Some(GatewayRow {
                    port_range: g.port_range?,
                    machine_id: g.machine_id,
                    agent_id: g.agent_id,
                    public_address: g.public_address,
                })
            })
            .collect())
    }

    /// Mapped ports held by open grants on these gateways, as (agent id, port).
    pub async fn mapped_ports_in_use(
        &mut self,
        agent_ids: &[String],
    ) -> StoreResult<Vec<(String, u16)>> {
        if agent_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut sql = SqlBuilder::new(
            "SELECT gateway_agent, mapped_port FROM request_ports \
             WHERE status = 'Initiated' AND mapped_port IS NOT NULL AND gateway_agent IN ",
        );
        push_in_list(&mut sql, agent_ids.iter().map(String::as_str));
        let rows: Vec<MappedPort> = sql.build_query_as()?.fetch_all(self.c()).await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.gateway_agent, r.mapped_port))
            .collect())
    }

    /// The machines an agent guards, with the policy covering each.
    pub async fn agent_machines(&mut self, agent_id: &str) -> StoreResult<Vec<MachineRow>> {
        self.agent_machines_since(agent_id, None).await
    }

    /// The machines an agent guards whose desired state changed after revision `since` (all of
    /// them when `None`), by id.
    pub async fn agent_machines_since(
        &mut self,
        agent_id: &str,
        since: Option<i64>,
    ) -> StoreResult<Vec<MachineRow>> {
        Ok(agent_machines_since_sql(agent_id, since)
            .build_query_as()?
            .fetch_all(self.c())
            .await?)
    }
}

/// The statement of [`Tx::agents_page`].
pub(crate) fn agents_page_sql(after: Option<&str>, limit: usize) -> SqlBuilder {
    let mut sql = SqlBuilder::new(format!("{AGENT_SELECT} WHERE 1 = 1"));
    if let Some(after) = after {
        sql.push(" AND name > ").push_bind(after.to_owned());
    }
    sql.push(" ORDER BY name");
    push_limit(&mut sql, limit);
    sql
}

/// The statement reading the machines of a page's agents (see [`Tx::agents_page`]).
pub(crate) fn agent_machines_sql(agent_ids: &[&str]) -> SqlBuilder {
    let mut sql =
        SqlBuilder::new("SELECT agent_id, machine_id FROM agent_machines WHERE agent_id IN ");
    push_in_list(&mut sql, agent_ids.iter().copied());
    sql.push(" ORDER BY agent_id, machine_id");
    sql
}

/// The statement of [`Tx::agent_machines_since`]: through `agent_machines (agent_id, revision)`.
pub(crate) fn agent_machines_since_sql(agent_id: &str, since: Option<i64>) -> SqlBuilder {
    let mut sql = SqlBuilder::new(format!("SELECT {MACHINE_COLUMNS} WHERE am.agent_id = "));
    sql.push_bind(agent_id.to_owned());
    if let Some(since) = since {
        sql.push(" AND am.revision > ").push_bind(since);
    }
    sql.push(" ORDER BY m.id");
    sql
}
