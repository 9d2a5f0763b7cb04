//! Role definitions, role assignments and ajar's own groups.

use crate::StoreResult;
use crate::columns::{NullableJson, to_json};
use crate::rows::*;
use crate::sql::{SqlBuilder, push_after_oldest_first, push_limit};
use crate::tx::*;
use jiff::Timestamp;

/// An assignment with the actions of its role when that role is a custom one.
#[derive(sqlx::FromRow)]
struct AssignmentWithActions {
    #[sqlx(flatten)]
    assignment: AssignmentRow,
    #[sqlx(try_from = "NullableJson<Vec<String>>")]
    actions: Option<Vec<String>>,
}

/// A group and one of its members.
#[derive(sqlx::FromRow)]
struct Membership {
    group_name: String,
    member: String,
}

impl Tx {
    /// One custom role.
    pub async fn role(&mut self, name: &str) -> StoreResult<Option<RoleRow>> {
        Ok(sqlx::query_as(
            "SELECT name, description, actions FROM role_definitions WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(self.c())
        .await?)
    }

    /// Every custom role, by name.
    pub async fn roles(&mut self) -> StoreResult<Vec<RoleRow>> {
        Ok(
            sqlx::query_as("SELECT name, description, actions FROM role_definitions ORDER BY name")
                .fetch_all(self.c())
                .await?,
        )
    }

    /// At most `limit` custom roles by name, after `after`: one page through the primary key.
    pub async fn roles_page(
        &mut self,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<RoleRow>> {
        Ok(roles_page_sql(after, limit)
            .build_query_as()?
            .fetch_all(self.c())
            .await?)
    }

    /// Creates or replaces a custom role; true when created.
    pub async fn put_role(&mut self, role: &RoleRow, now: Timestamp) -> StoreResult<bool> {
        self.touched_access = true;
        let existed = sqlx::query("SELECT 1 FROM role_definitions WHERE name = $1")
            .bind(&role.name)
            .fetch_optional(self.c())
            .await?
            .is_some();
        sqlx::query(
            "INSERT INTO role_definitions (name, description, actions, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $4) ON CONFLICT (name) DO UPDATE SET \
             description = excluded.description, actions = excluded.actions, updated_at = excluded.updated_at",
        )
        .bind(&role.name)
        .bind(&role.description)
        .bind(to_json(&role.actions)?)
        .bind(to_db(now))
        .execute(self.c())
        .await?;
        Ok(!existed)
    }

    /// Deletes a custom role; true when it existed.
    pub async fn delete_role(&mut self, name: &str) -> StoreResult<bool> {
        self.touched_access = true;
        let r = sqlx::query("DELETE FROM role_definitions WHERE name = $1")
            .bind(name)
            .execute(self.c())
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Creates or replaces an assignment; true when created.
    pub async fn put_assignment(
        &mut self,
        a: &AssignmentRow,
        created_by: &str,
    ) -> StoreResult<bool> {
        self.touched_access = true;
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
        Ok(sqlx::query_as(
            "SELECT id, principal, role_name, scope, created_at FROM role_assignments WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.c())
        .await?)
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
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(scope)
            .bind(beneath)
            .bind(principal)
            .fetch_all(self.c())
            .await?)
    }

    /// At most `limit` assignments whose scope is `scope` or lies beneath it (all for `/`),
    /// optionally one principal's, oldest first after `after`: one page walking
    /// `role_assignments_page` (or `role_assignments_by_principal`), the scope checked on the
    /// way.
    pub async fn assignments_page(
        &mut self,
        scope: &str,
        principal: Option<&str>,
        after: Option<&Cursor>,
        limit: usize,
    ) -> StoreResult<Vec<AssignmentRow>> {
        Ok(assignments_page_sql(scope, principal, after, limit)
            .build_query_as()?
            .fetch_all(self.c())
            .await?)
    }

    /// Every assignment of a principal, with the custom role's action patterns where the role
    /// is not built in.
    pub async fn assignments_of(
        &mut self,
        principal: &str,
    ) -> StoreResult<Vec<(AssignmentRow, Option<Vec<String>>)>> {
        let rows: Vec<AssignmentWithActions> = sqlx::query_as(
            "SELECT a.id, a.principal, a.role_name, a.scope, a.created_at, d.actions \
             FROM role_assignments a LEFT JOIN role_definitions d ON d.name = a.role_name \
             WHERE a.principal = $1",
        )
        .bind(principal)
        .fetch_all(self.c())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.assignment, r.actions))
            .collect())
    }

    /// Replaces a group's members; true when the group is new.
    pub async fn put_group(
        &mut self,
        name: &str,
        members: &[String],
        now: Timestamp,
    ) -> StoreResult<bool> {
        self.touched_access = true;
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
        Ok(sqlx::query_scalar(
            "SELECT member FROM group_members WHERE group_name = $1 ORDER BY member",
        )
        .bind(name)
        .fetch_all(self.c())
        .await?)
    }

    /// Every group with its members, by name.
    pub async fn groups(&mut self) -> StoreResult<Vec<(String, Vec<String>)>> {
        let rows: Vec<Membership> = sqlx::query_as(
            "SELECT group_name, member FROM group_members ORDER BY group_name, member",
        )
        .fetch_all(self.c())
        .await?;
        Ok(grouped(rows))
    }

    /// At most `limit` groups with their members, by name, after the group `after`: one page
    /// of names through the primary key, then those groups' members.
    pub async fn groups_page(
        &mut self,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<(String, Vec<String>)>> {
        let rows: Vec<Membership> = groups_page_sql(after, limit)
            .build_query_as()?
            .fetch_all(self.c())
            .await?;
        Ok(grouped(rows))
    }

    /// Deletes a group; true when it existed.
    pub async fn delete_group(&mut self, name: &str) -> StoreResult<bool> {
        self.touched_access = true;
        let r = sqlx::query("DELETE FROM group_members WHERE group_name = $1")
            .bind(name)
            .execute(self.c())
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// The groups a principal belongs to, by name.
    pub async fn groups_of(&mut self, member: &str) -> StoreResult<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT group_name FROM group_members WHERE member = $1 ORDER BY group_name",
        )
        .bind(member)
        .fetch_all(self.c())
        .await?)
    }

    /// Deletes an assignment; true when it existed.
    pub async fn delete_assignment(&mut self, id: &str) -> StoreResult<bool> {
        self.touched_access = true;
        let r = sqlx::query("DELETE FROM role_assignments WHERE id = $1")
            .bind(id)
            .execute(self.c())
            .await?;
        Ok(r.rows_affected() > 0)
    }
}

/// Memberships in group order, gathered by group.
fn grouped(rows: Vec<Membership>) -> Vec<(String, Vec<String>)> {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for Membership {
        group_name: g,
        member: m,
    } in rows
    {
        match groups.last_mut() {
            Some((last, members)) if *last == g => members.push(m),
            _ => groups.push((g, vec![m])),
        }
    }
    groups
}

/// The statement of [`Tx::roles_page`].
pub(crate) fn roles_page_sql(after: Option<&str>, limit: usize) -> SqlBuilder {
    let mut sql =
        SqlBuilder::new("SELECT name, description, actions FROM role_definitions WHERE 1 = 1");
    if let Some(after) = after {
        sql.push(" AND name > ").push_bind(after.to_owned());
    }
    sql.push(" ORDER BY name");
    push_limit(&mut sql, limit);
    sql
}

/// The statement of [`Tx::assignments_page`].
pub(crate) fn assignments_page_sql(
    scope: &str,
    principal: Option<&str>,
    after: Option<&Cursor>,
    limit: usize,
) -> SqlBuilder {
    let mut sql = SqlBuilder::new(
        "SELECT id, principal, role_name, scope, created_at FROM role_assignments WHERE 1 = 1",
    );
    if scope != "/" {
        let beneath = format!("{scope}/");
        sql.push(" AND (scope = ")
            .push_bind(scope.to_owned())
            .push(" OR substr(scope, 1, length(CAST(")
            .push_bind(beneath.clone())
            .push(" AS TEXT))) = CAST(")
            .push_bind(beneath)
            .push(" AS TEXT))");
    }
    if let Some(principal) = principal {
        sql.push(" AND principal = ")
            .push_bind(principal.to_owned());
    }
    push_after_oldest_first(&mut sql, "", after);
    sql.push(" ORDER BY created_at, id");
    push_limit(&mut sql, limit);
    sql
}

/// The statement of [`Tx::groups_page`].
pub(crate) fn groups_page_sql(after: Option<&str>, limit: usize) -> SqlBuilder {
    let mut sql = SqlBuilder::new(
        "SELECT group_name, member FROM group_members WHERE group_name IN \
         (SELECT DISTINCT group_name FROM group_members WHERE 1 = 1",
    );
    if let Some(after) = after {
        sql.push(" AND group_name > ").push_bind(after.to_owned());
    }
    sql.push(" ORDER BY group_name");
    push_limit(&mut sql, limit);
    sql.push(") ORDER BY group_name, member");
    sql
}
