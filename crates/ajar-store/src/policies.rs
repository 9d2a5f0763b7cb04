//! JIT network access policies and the machines they cover.

use crate::StoreResult;
use crate::rows::*;
use crate::sql::{SqlBuilder, push_in_list, push_scope_page};
use crate::tx::*;
use jiff::Timestamp;

impl Tx {
    /// One policy.
    pub async fn policy(&mut self, id: &str) -> StoreResult<Option<PolicyRow>> {
        Ok(
            sqlx::query_as("SELECT id, name, rules, etag, location FROM policies WHERE id = $1")
                .bind(id)
                .fetch_optional(self.c())
                .await?,
        )
    }

    /// The ETag of a policy (cheaper than [`Tx::policy`] when the rules are cached).
    pub async fn policy_etag(&mut self, id: &str) -> StoreResult<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT etag FROM policies WHERE id = $1")
                .bind(id)
                .fetch_optional(self.c())
                .await?,
        )
    }

    /// A policy's ETag, and the first of `scopes` where JIT is turned off (if any), in one
    /// round trip: what an initiate checks before it plans.
    pub async fn policy_check(
        &mut self,
        id: &str,
        scopes: &[String],
    ) -> StoreResult<Option<(String, Option<String>)>> {
        let mut sql = SqlBuilder::new(
            "SELECT p.etag, (SELECT MIN(scope) FROM jit_settings WHERE jit_enabled = 0 AND scope IN ",
        );
        push_in_list(&mut sql, scopes);
        sql.push(") AS blocked FROM policies p WHERE p.id = ")
            .push_bind(id);
        Ok(sql.build_query_as()?.fetch_optional(self.c()).await?)
    }

    /// At most `limit` policies of a subscription (or one of its resource groups) in id order,
    /// after the policy `after`: one page, read through the `(subscription, id)` or
    /// `(subscription, resource_group, id)` index.
    pub async fn policies_page(
        &mut self,
        subscription: &str,
        resource_group: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<PolicyRow>> {
        Ok(
            policies_page_sql(subscription, resource_group, after, limit)
                .build_query_as()?
                .fetch_all(self.c())
                .await?,
        )
    }

    /// The policy that covers a machine, if any.
    pub async fn policy_of_machine(&mut self, machine_id: &str) -> StoreResult<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT policy_id FROM policy_machines WHERE machine_id = $1")
                .bind(machine_id)
                .fetch_optional(self.c())
                .await?,
        )
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
        location: Option<&str>,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let existed = self.policy_etag(id).await?.is_some();
        sqlx::query(
            "INSERT INTO policies (id, subscription, resource_group, name, rules, etag, created_at, updated_at, location) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8) \
             ON CONFLICT (id) DO UPDATE SET rules = excluded.rules, etag = excluded.etag, \
             updated_at = excluded.updated_at, location = excluded.location",
        )
        .bind(id)
        .bind(subscription)
        .bind(resource_group)
        .bind(name)
        .bind(rules)
        .bind(etag)
        .bind(to_db(now))
        .bind(location)
        .execute(self.c())
        .await?;
        // Protected ports follow the policy: on the machines it leaves and on those it covers.
        self.uncover(id).await?;
        self.touch_machines(machine_ids.iter().cloned());
        for m in machine_ids {
            sqlx::query("INSERT INTO policy_machines (machine_id, policy_id) VALUES ($1, $2)")
                .bind(m)
                .bind(id)
                .execute(self.c())
                .await?;
        }
        Ok(!existed)
    }

    /// Deletes a policy; true when it existed. Its request history is kept.
    pub async fn delete_policy(&mut self, id: &str) -> StoreResult<bool> {
        self.uncover(id).await?;
        let r = sqlx::query("DELETE FROM policies WHERE id = $1")
            .bind(id)
            .execute(self.c())
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Empties a policy's list of machines, noting that the machines it covered changed.
    async fn uncover(&mut self, id: &str) -> StoreResult<()> {
        let left: Vec<String> = sqlx::query_scalar(
            "DELETE FROM policy_machines WHERE policy_id = $1 RETURNING machine_id",
        )
        .bind(id)
        .fetch_all(self.c())
        .await?;
        self.touch_machines(left);
        Ok(())
    }
}

/// The statement of [`Tx::policies_page`].
pub(crate) fn policies_page_sql(
    subscription: &str,
    resource_group: Option<&str>,
    after: Option<&str>,
    limit: usize,
) -> SqlBuilder {
    let mut sql =
        SqlBuilder::new("SELECT id, name, rules, etag, location FROM policies WHERE 1 = 1");
    push_scope_page(&mut sql, "", subscription, resource_group, after, limit);
    sql
}
