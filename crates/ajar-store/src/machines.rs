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

/// Which kind of cloud target a machine names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsTargetKind {
    /// An EC2 instance (the label `aws:instance-id`).
    Instance,
    /// A security group made for ajar (the label `aws:group-id`).
    Group,
}

impl AwsTargetKind {
    /// The name stored in `aws_targets.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            AwsTargetKind::Instance => "instance",
            AwsTargetKind::Group => "group",
        }
    }
}

/// The cloud targets a machine's labels name, each of which at most one machine may name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AwsTargets<'a> {
    /// The EC2 instance, if named.
    pub instance: Option<&'a str>,
    /// The security group, if named.
    pub group: Option<&'a str>,
}

impl<'a> AwsTargets<'a> {
    /// Each target named, with its kind.
    pub fn named(&self) -> impl Iterator<Item = (AwsTargetKind, &'a str)> {
        [
            (AwsTargetKind::Instance, self.instance),
            (AwsTargetKind::Group, self.group),
        ]
        .into_iter()
        .filter_map(|(kind, value)| value.map(|v| (kind, v)))
    }
}

impl Tx {
    /// Creates or replaces a machine, with the cloud targets its labels name (replacing those
    /// it named before); true when it was created. A target another machine names is a
    /// [`crate::StoreError::Conflict`]: callers look with [`Tx::aws_target_holder`] first.
    #[allow(clippy::too_many_arguments)]
    pub async fn put_machine(
        &mut self,
        id: &str,
        subscription: &str,
        resource_group: &str,
        name: &str,
        properties: &str,
        targets: AwsTargets<'_>,
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
        sqlx::query("DELETE FROM aws_targets WHERE machine_id = $1")
            .bind(id)
            .execute(self.c())
            .await?;
        for (kind, value) in targets.named() {
            sqlx::query("INSERT INTO aws_targets (kind, value, machine_id) VALUES ($1, $2, $3)")
                .bind(kind.as_str())
                .bind(value)
                .bind(id)
                .execute(self.c())
                .await?;
        }
        // Addresses are part of what a host agent protects.
        self.touch_machines([id]);
        Ok(!existed)
    }

    /// The machine that names this cloud target, if any (a primary-key lookup).
    pub async fn aws_target_holder(
        &mut self,
        kind: AwsTargetKind,
        value: &str,
    ) -> StoreResult<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT machine_id FROM aws_targets WHERE kind = $1 AND value = $2")
                .bind(kind.as_str())
                .bind(value)
                .fetch_optional(self.c())
                .await?,
        )
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
        // The instance and group it named are free for another machine.
        sqlx::query("DELETE FROM aws_targets WHERE machine_id = $1")
            .bind(id)
            .execute(self.c())
            .await?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{StoreError, test_store};

    const M1: &str = "/subscriptions/s/resourceGroups/g/machines/m1";
    const M2: &str = "/subscriptions/s/resourceGroups/g/machines/m2";

    #[tokio::test]
    async fn a_cloud_target_is_named_by_one_machine_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let store = test_store(dir.path()).await;
        let now = Timestamp::from_second(1_000).unwrap();
        let mut tx = store.write().await.unwrap();
        let both = AwsTargets {
            instance: Some("i-1"),
            group: Some("sg-1"),
        };
        tx.put_machine(M1, "s", "g", "m1", "{}", both, now)
            .await
            .unwrap();
        for (kind, value) in [
            (AwsTargetKind::Instance, "i-1"),
            (AwsTargetKind::Group, "sg-1"),
        ] {
            assert_eq!(
                tx.aws_target_holder(kind, value).await.unwrap().as_deref(),
                Some(M1)
            );
        }
        // An instance id is not a group id.
        assert_eq!(
            tx.aws_target_holder(AwsTargetKind::Group, "i-1")
                .await
                .unwrap(),
            None
        );
        // Rewriting a machine replaces what it names.
        let instance_only = AwsTargets {
            instance: Some("i-2"),
            group: None,
        };
        tx.put_machine(M1, "s", "g", "m1", "{}", instance_only, now)
            .await
            .unwrap();
        assert_eq!(
            tx.aws_target_holder(AwsTargetKind::Instance, "i-1")
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            tx.aws_target_holder(AwsTargetKind::Group, "sg-1")
                .await
                .unwrap(),
            None
        );
        // Deleting it frees its instance.
        tx.delete_machine(M1).await.unwrap();
        tx.put_machine(M2, "s", "g", "m2", "{}", instance_only, now)
            .await
            .unwrap();
        assert_eq!(
            tx.aws_target_holder(AwsTargetKind::Instance, "i-2")
                .await
                .unwrap()
                .as_deref(),
            Some(M2)
        );
        tx.commit_unrecorded().await.unwrap();
    }

    #[tokio::test]
    async fn the_store_refuses_a_second_machine_naming_the_same_instance() {
        let dir = tempfile::tempdir().unwrap();
        let store = test_store(dir.path()).await;
        let now = Timestamp::from_second(1_000).unwrap();
        let targets = AwsTargets {
            instance: Some("i-1"),
            group: None,
        };
        let mut tx = store.write().await.unwrap();
        tx.put_machine(M1, "s", "g", "m1", "{}", targets, now)
            .await
            .unwrap();
        let second = tx.put_machine(M2, "s", "g", "m2", "{}", targets, now).await;
        assert!(matches!(second, Err(StoreError::Conflict(_))), "{second:?}");
    }
}
