//! Enforcement agents, the machines they guard, and the desired state they read.

use crate::machines::{MACHINE_COLUMNS, machine_row};
use crate::rows::*;
use crate::tx::*;
use crate::{StoreError, StoreResult};
use jiff::Timestamp;
use sqlx::Row;

impl Tx {
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
        self.touched_access = true;
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
}
