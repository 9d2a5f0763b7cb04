//! The actions applications declare, the roles they define over them, and what keeps a role
//! from being deleted while something relies on it.

use crate::StoreResult;
use crate::columns::{Json, to_json};
use crate::rows::*;
use crate::sql::{SqlBuilder, push_limit};
use crate::tx::*;
use jiff::Timestamp;

/// A request still under way (Pending, Approved or Active) and the roles it asks for.
#[derive(sqlx::FromRow)]
struct UnderWay {
    id: String,
    application_id: String,
    #[sqlx(try_from = "Json<Vec<String>>")]
    roles: Vec<String>,
}

/// An eligibility naming an application's role (`$1` the role, `$2` the application).
pub(crate) const ELIGIBILITY_OF_APPLICATION_ROLE: &str =
    "SELECT id FROM eligible_roles WHERE role_name = $1 AND application_id = $2 LIMIT 1";

/// The requests still under way at an application (`$1`).
pub(crate) const REQUESTS_UNDER_WAY_AT_APPLICATION: &str = "SELECT id, application_id, roles FROM jit_requests \
     WHERE application_id = $1 AND state IN ('Pending', 'Approved', 'Active')";

/// An assignment of ajar's role `$1`.
pub(crate) const ASSIGNMENT_OF_ROLE: &str =
    "SELECT id FROM role_assignments WHERE role_name = $1 LIMIT 1";

/// An eligibility naming ajar's role `$1` at an application with no role of that name.
pub(crate) const ELIGIBILITY_OF_AJAR_ROLE: &str = "SELECT e.application_id, e.id FROM eligible_roles e \
     WHERE e.role_name = $1 AND NOT EXISTS (SELECT 1 FROM application_roles r \
     WHERE r.application_id = e.application_id AND r.name = e.role_name) LIMIT 1";

/// Every role request still under way.
pub(crate) const ROLE_REQUESTS_UNDER_WAY: &str = "SELECT id, application_id, roles FROM jit_requests \
     WHERE kind = 'role' AND state IN ('Pending', 'Approved', 'Active')";

impl Tx {
    /// The actions an application declared, if any.
    pub async fn application_actions(
        &mut self,
        application_id: &str,
    ) -> StoreResult<Option<ApplicationActionsRow>> {
        Ok(sqlx::query_as(
            "SELECT application_id, namespace, actions FROM application_actions \
             WHERE application_id = $1",
        )
        .bind(application_id)
        .fetch_optional(self.c())
        .await?)
    }

    /// The application that declared `namespace`, if any.
    pub async fn namespace_owner(&mut self, namespace: &str) -> StoreResult<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT application_id FROM application_actions WHERE namespace = $1",
        )
        .bind(namespace)
        .fetch_optional(self.c())
        .await?)
    }

    /// Declares (or replaces) an application's actions; true when it declared none before.
    pub async fn put_application_actions(
        &mut self,
        row: &ApplicationActionsRow,
        now: Timestamp,
    ) -> StoreResult<bool> {
        self.touched_access = true;
        let existed = self
            .application_actions(&row.application_id)
            .await?
            .is_some();
        sqlx::query(
            "INSERT INTO application_actions (application_id, namespace, actions, updated_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (application_id) DO UPDATE SET \
             namespace = excluded.namespace, actions = excluded.actions, updated_at = excluded.updated_at",
        )
        .bind(&row.application_id)
        .bind(&row.namespace)
        .bind(to_json(&row.actions)?)
        .bind(to_db(now))
        .execute(self.c())
        .await?;
        Ok(!existed)
    }

    /// Every application's declared actions, for the authorize index.
    pub async fn all_application_actions(&mut self) -> StoreResult<Vec<ApplicationActionsRow>> {
        Ok(sqlx::query_as(
            "SELECT application_id, namespace, actions FROM application_actions \
             ORDER BY application_id",
        )
        .fetch_all(self.c())
        .await?)
    }

    /// One of an application's roles.
    pub async fn application_role(
        &mut self,
        application_id: &str,
        name: &str,
    ) -> StoreResult<Option<ApplicationRoleRow>> {
        Ok(sqlx::query_as(
            "SELECT application_id, name, description, actions FROM application_roles \
             WHERE application_id = $1 AND name = $2",
        )
        .bind(application_id)
        .bind(name)
        .fetch_optional(self.c())
        .await?)
    }

    /// An application's roles, by name.
    pub async fn application_roles(
        &mut self,
        application_id: &str,
    ) -> StoreResult<Vec<ApplicationRoleRow>> {
        Ok(sqlx::query_as(
            "SELECT application_id, name, description, actions FROM application_roles \
             WHERE application_id = $1 ORDER BY name",
        )
        .bind(application_id)
        .fetch_all(self.c())
        .await?)
    }

    /// At most `limit` of an application's roles in name order, after `after`: one page through
    /// the primary key.
    pub async fn application_roles_page(
        &mut self,
        application_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<ApplicationRoleRow>> {
        Ok(application_roles_page_sql(application_id, after, limit)
            .build_query_as()?
            .fetch_all(self.c())
            .await?)
    }

    /// Every application's roles, for the authorize index.
    pub async fn all_application_roles(&mut self) -> StoreResult<Vec<ApplicationRoleRow>> {
        Ok(sqlx::query_as(
            "SELECT application_id, name, description, actions FROM application_roles \
             ORDER BY application_id, name",
        )
        .fetch_all(self.c())
        .await?)
    }

    /// Creates or replaces one of an application's roles; true when created.
    pub async fn put_application_role(
        &mut self,
        row: &ApplicationRoleRow,
        now: Timestamp,
    ) -> StoreResult<bool> {
        self.touched_access = true;
        let existed = self
            .application_role(&row.application_id, &row.name)
            .await?
            .is_some();
        sqlx::query(
            "INSERT INTO application_roles (application_id, name, description, actions, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (application_id, name) DO UPDATE SET \
             description = excluded.description, actions = excluded.actions, updated_at = excluded.updated_at",
        )
        .bind(&row.application_id)
        .bind(&row.name)
        .bind(&row.description)
        .bind(to_json(&row.actions)?)
        .bind(to_db(now))
        .execute(self.c())
        .await?;
        Ok(!existed)
    }

    /// Deletes one of an application's roles; true when it existed.
    pub async fn delete_application_role(
        &mut self,
        application_id: &str,
        name: &str,
    ) -> StoreResult<bool> {
        self.touched_access = true;
        let r =
            sqlx::query("DELETE FROM application_roles WHERE application_id = $1 AND name = $2")
                .bind(application_id)
                .bind(name)
                .execute(self.c())
                .await?;
        Ok(r.rows_affected() > 0)
    }

    /// What relies on the role `name` of an application, if anything: an eligibility (its id) or
    /// a role request still under way (its id).
    pub async fn application_role_use(
        &mut self,
        application_id: &str,
        name: &str,
    ) -> StoreResult<Option<String>> {
        let eligibility: Option<String> = sqlx::query_scalar(ELIGIBILITY_OF_APPLICATION_ROLE)
            .bind(name)
            .bind(application_id)
            .fetch_optional(self.c())
            .await?;
        if let Some(id) = eligibility {
            return Ok(Some(format!("eligible role {id}")));
        }
        let under_way: Vec<UnderWay> = sqlx::query_as(REQUESTS_UNDER_WAY_AT_APPLICATION)
            .bind(application_id)
            .fetch_all(self.c())
            .await?;
        Ok(under_way
            .into_iter()
            .find(|r| r.roles.iter().any(|n| n == name))
            .map(|r| format!("request {}", r.id)))
    }

    /// What relies on ajar's custom role `name`, if anything: an assignment, an eligibility at an
    /// application that has no role of its own by that name, or a role request still under way
    /// there. Reads the role's assignments and eligibilities through indexes on the role's name,
    /// and the requests under way (work in flight, not history).
    pub async fn ajar_role_use(&mut self, name: &str) -> StoreResult<Option<String>> {
        let assignment: Option<String> = sqlx::query_scalar(ASSIGNMENT_OF_ROLE)
            .bind(name)
            .fetch_optional(self.c())
            .await?;
        if let Some(id) = assignment {
            return Ok(Some(format!("role assignment {id}")));
        }
        let eligibility: Option<(String, String)> = sqlx::query_as(ELIGIBILITY_OF_AJAR_ROLE)
            .bind(name)
            .fetch_optional(self.c())
            .await?;
        if let Some((app, id)) = eligibility {
            return Ok(Some(format!("eligible role {id} of {app}")));
        }
        let under_way: Vec<UnderWay> = sqlx::query_as(ROLE_REQUESTS_UNDER_WAY)
            .fetch_all(self.c())
            .await?;
        for r in under_way {
            if r.roles.iter().any(|n| n == name)
                && self
                    .application_role(&r.application_id, name)
                    .await?
                    .is_none()
            {
                return Ok(Some(format!("request {}", r.id)));
            }
        }
        Ok(None)
    }

    /// At most `limit` eligibilities of any of `principals` (a caller and their groups), on one
    /// application or all, in (application, id) order after `after`.
    pub async fn eligibilities_of_page(
        &mut self,
        principals: &[String],
        application_id: Option<&str>,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> StoreResult<Vec<EligibilityRow>> {
        if principals.is_empty() {
            return Ok(Vec::new());
        }
        Ok(
            eligibilities_of_page_sql(principals, application_id, after, limit)
                .build_query_as()?
                .fetch_all(self.c())
                .await?,
        )
    }
}

/// The statement of [`Tx::application_roles_page`].
pub(crate) fn application_roles_page_sql(
    application_id: &str,
    after: Option<&str>,
    limit: usize,
) -> SqlBuilder {
    let mut sql = SqlBuilder::new(
        "SELECT application_id, name, description, actions FROM application_roles \
         WHERE application_id = ",
    );
    sql.push_bind(application_id.to_owned());
    if let Some(after) = after {
        sql.push(" AND name > ").push_bind(after.to_owned());
    }
    sql.push(" ORDER BY name");
    push_limit(&mut sql, limit);
    sql
}

/// The statement of [`Tx::eligibilities_of_page`].
pub(crate) fn eligibilities_of_page_sql(
    principals: &[String],
    application_id: Option<&str>,
    after: Option<(&str, &str)>,
    limit: usize,
) -> SqlBuilder {
    let mut sql = SqlBuilder::new(
        "SELECT application_id, id, principal, role_name, created_at FROM eligible_roles \
         WHERE principal IN (",
    );
    let mut list = sql.separated(", ");
    for p in principals {
        list.push_bind(p.clone());
    }
    sql.push(")");
    if let Some(app) = application_id {
        sql.push(" AND application_id = ").push_bind(app.to_owned());
    }
    if let Some((app, id)) = after {
        sql.push(" AND (application_id > ")
            .push_bind(app.to_owned())
            .push(" OR (application_id = ")
            .push_bind(app.to_owned())
            .push(" AND id > ")
            .push_bind(id.to_owned())
            .push("))");
    }
    sql.push(" ORDER BY application_id, id");
    push_limit(&mut sql, limit);
    sql
}
