//! Machines: the inventory, with the policy covering and the agent guarding each.

use crate::StoreResult;
use crate::rows::*;
use crate::sql::{SqlBuilder, push_scope_page};
use crate::tx::*;
use jiff::Timestamp;

/// The columns of a [`MachineRow`], with the joins they come from.
pub(crate) const MACHINE_COLUMNS: &str = "m.id, m.name, m.properties, pm.policy_id, a.name AS agent, am.agent_id, \
     a.last_seen AS agent_last_seen, me.unsupported_reason AS reported_reason, \
     me.exposures AS reported_exposures \
     FROM machines m LEFT JOIN policy_machines pm ON pm.machine_id = m.id \
     LEFT JOIN agent_machines am ON am.machine_id = m.id LEFT JOIN agents a ON a.id = am.agent_id \
     LEFT JOIN machine_enforcement me ON me.machine_id = m.id";

impl Tx {
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
        self.touch_machines([id]);
        Ok(!existed)
    }

    /// One machine.
    pub async fn machine(&mut self, id: &str) -> StoreResult<Option<MachineRow>> {
        let sql = format!("SELECT {MACHINE_COLUMNS} WHERE m.id = $1");
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(self.c())
            .await?)
    }

    /// At most `limit` machines of a subscription (or one of its resource groups) in id order,
    /// after the machine `after`: one page, read through the `(subscription, id)` or
    /// `(subscription, resource_group, id)` index.
    pub async fn machines_page(
        &mut self,
        subscription: &str,
        resource_group: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<MachineRow>> {
        machines_page_sql(subscription, resource_group, after, limit)
            .build_query_as()?
            .fetch_all(self.c())
            .await
            .map_err(Into::into)
    }

    /// Deletes a machine; true when it existed.
    pub async fn delete_machine(&mut self, id: &str) -> StoreResult<bool> {
        // A machine made again under the same id is not guarded by its predecessor's agent.
        let guard: Option<String> = sqlx::query_scalar(
            "DELETE FROM agent_machines WHERE machine_id = $1 RETURNING agent_id",
        )
        .bind(id)
        .fetch_optional(self.c())
        .await?;
        if let Some(agent) = guard {
            self.touch_agent_machines(&agent);
        }
        self.clear_enforcement_of_machine(id).await?;
        let r = sqlx::query("DELETE FROM machines WHERE id = $1")
            .bind(id)
            .execute(self.c())
            .await?;
        Ok(r.rows_affected() > 0)
    }
}

/// The statement of [`Tx::machines_page`].
pub(crate) fn machines_page_sql(
    subscription: &str,
    resource_group: Option<&str>,
    after: Option<&str>,
    limit: usize,
) -> SqlBuilder {
    let mut sql = SqlBuilder::new(format!("SELECT {MACHINE_COLUMNS} WHERE 1 = 1"));
    push_scope_page(&mut sql, "m.", subscription, resource_group, after, limit);
    sql
}
