//! Managed applications and who is eligible for their roles.

use crate::StoreResult;
use crate::rows::*;
use crate::sql::{SqlBuilder, push_limit, push_scope_page};
use crate::tx::*;
use jiff::Timestamp;

impl Tx {
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
        self.touched_access = true;
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
        Ok(sqlx::query_as(
            "SELECT id, name, properties, jit_enabled FROM applications WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.c())
        .await?)
    }

    /// At most `limit` applications of a subscription (or one of its resource groups) in id
    /// order, after the application `after`: one page, read through the `(subscription, id)` or
    /// `(subscription, resource_group, id)` index.
    pub async fn applications_page(
        &mut self,
        subscription: &str,
        resource_group: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<ApplicationRow>> {
        Ok(
            applications_page_sql(subscription, resource_group, after, limit)
                .build_query_as()?
                .fetch_all(self.c())
                .await?,
        )
    }

    /// Every application.
    pub async fn all_applications(&mut self) -> StoreResult<Vec<ApplicationRow>> {
        Ok(
            sqlx::query_as(
                "SELECT id, name, properties, jit_enabled FROM applications ORDER BY id",
            )
            .fetch_all(self.c())
            .await?,
        )
    }

    /// Deletes an application with its eligibilities, its roles and the actions it declared;
    /// true when it existed. The caller checks first that no role request is under way there
    /// ([`Tx::requests_under_way_at`]).
    pub async fn delete_application(&mut self, id: &str) -> StoreResult<bool> {
        self.touched_access = true;
        for table in ["eligible_roles", "application_roles", "application_actions"] {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE application_id = $1"
            )))
            .bind(id)
            .execute(self.c())
            .await?;
        }
        let r = sqlx::query("DELETE FROM applications WHERE id = $1")
            .bind(id)
            .execute(self.c())
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Creates or replaces an eligibility; true when created.
    pub async fn put_eligibility(&mut self, e: &EligibilityRow) -> StoreResult<bool> {
        self.touched_access = true;
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
        Ok(sqlx::query_as(
            "SELECT application_id, id, principal, role_name, created_at FROM eligible_roles \
             WHERE application_id = $1 AND id = $2",
        )
        .bind(application_id)
        .bind(id)
        .fetch_optional(self.c())
        .await?)
    }

    /// An application's eligibilities, by id.
    pub async fn eligibilities(
        &mut self,
        application_id: &str,
    ) -> StoreResult<Vec<EligibilityRow>> {
        Ok(sqlx::query_as(
            "SELECT application_id, id, principal, role_name, created_at FROM eligible_roles \
             WHERE application_id = $1 ORDER BY id",
        )
        .bind(application_id)
        .fetch_all(self.c())
        .await?)
    }

    /// At most `limit` of an application's eligibilities in id order, after `after`: one page
    /// through the primary key.
    pub async fn eligibilities_page(
        &mut self,
        application_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<EligibilityRow>> {
        Ok(eligibilities_page_sql(application_id, after, limit)
            .build_query_as()?
            .fetch_all(self.c())
            .await?)
    }

    /// The eligibilities on applications created without JIT (standing grants), in one query.
    pub async fn standing_eligibilities(&mut self) -> StoreResult<Vec<EligibilityRow>> {
        Ok(sqlx::query_as(
            "SELECT e.application_id, e.id, e.principal, e.role_name, e.created_at \
             FROM eligible_roles e JOIN applications a ON a.id = e.application_id \
             WHERE a.jit_enabled = 0 ORDER BY e.application_id, e.id",
        )
        .fetch_all(self.c())
        .await?)
    }

    /// Deletes an eligibility; true when it existed.
    pub async fn delete_eligibility(
        &mut self,
        application_id: &str,
        id: &str,
    ) -> StoreResult<bool> {
        self.touched_access = true;
        let r = sqlx::query("DELETE FROM eligible_roles WHERE application_id = $1 AND id = $2")
            .bind(application_id)
            .bind(id)
            .execute(self.c())
            .await?;
        Ok(r.rows_affected() > 0)
    }
}

/// The statement of [`Tx::applications_page`].
pub(crate) fn applications_page_sql(
    subscription: &str,
    resource_group: Option<&str>,
    after: Option<&str>,
    limit: usize,
) -> SqlBuilder {
    let mut sql =
        SqlBuilder::new("SELECT id, name, properties, jit_enabled FROM applications WHERE 1 = 1");
    push_scope_page(&mut sql, "", subscription, resource_group, after, limit);
    sql
}

/// The statement of [`Tx::eligibilities_page`].
pub(crate) fn eligibilities_page_sql(
    application_id: &str,
    after: Option<&str>,
    limit: usize,
) -> SqlBuilder {
    let mut sql = SqlBuilder::new(
        "SELECT application_id, id, principal, role_name, created_at FROM eligible_roles \
         WHERE application_id = ",
    );
    sql.push_bind(application_id.to_owned());
    if let Some(after) = after {
        sql.push(" AND id > ").push_bind(after.to_owned());
    }
    sql.push(" ORDER BY id");
    push_limit(&mut sql, limit);
    sql
}
