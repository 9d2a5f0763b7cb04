//! Role definitions, role assignments and ajar's own groups.

use crate::StoreResult;
use crate::rows::*;
use crate::tx::*;
use jiff::Timestamp;
use sqlx::any::AnyRow;

pub(crate) fn assignment_row(r: &AnyRow) -> StoreResult<AssignmentRow> {
    Ok(AssignmentRow {
        id: text(r, "id")?,
        principal: text(r, "principal")?,
        role_name: text(r, "role_name")?,
        scope: text(r, "scope")?,
        created_at: from_db(int(r, "created_at")?),
    })
}

pub(crate) fn role_row(r: &AnyRow) -> StoreResult<RoleRow> {
    Ok(RoleRow {
        name: text(r, "name")?,
        description: text(r, "description")?,
        actions: text(r, "actions")?,
    })
}

impl Tx {
    /// One custom role.
    pub async fn role(&mut self, name: &str) -> StoreResult<Option<RoleRow>> {
        let row =
            sqlx::query("SELECT name, description, actions FROM role_definitions WHERE name = $1")
                .bind(name)
                .fetch_optional(self.c())
                .await?;
        row.as_ref().map(role_row).transpose()
    }

    /// Every custom role, by name.
    pub async fn roles(&mut self) -> StoreResult<Vec<RoleRow>> {
        let rows =
            sqlx::query("SELECT name, description, actions FROM role_definitions ORDER BY name")
                .fetch_all(self.c())
                .await?;
        rows.iter().map(role_row).collect()
    }

    /// Creates or replaces a custom role; true when created.
    pub async fn put_role(&mut self, role: &RoleRow, now: Timestamp) -> StoreResult<bool> {
        self.touched_access = true;
        let existed = self.role(&role.name).await?.is_some();
        sqlx::query(
            "INSERT INTO role_definitions (name, description, actions, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $4) ON CONFLICT (name) DO UPDATE SET \
             description = excluded.description, actions = excluded.actions, updated_at = excluded.updated_at",
        )
        .bind(&role.name)
        .bind(&role.description)
        .bind(&role.actions)
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

    /// How many assignments use a role.
    pub async fn role_use_count(&mut self, name: &str) -> StoreResult<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM role_assignments WHERE role_name = $1")
            .bind(name)
            .fetch_one(self.c())
            .await?;
        int(&row, "n")
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
        let row = sqlx::query(
            "SELECT id, principal, role_name, scope, created_at FROM role_assignments WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.c())
        .await?;
        row.as_ref().map(assignment_row).transpose()
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
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(scope)
            .bind(beneath)
            .bind(principal)
            .fetch_all(self.c())
            .await?;
        rows.iter().map(assignment_row).collect()
    }

    /// Every assignment of a principal, with the custom role's actions (JSON) where the role
    /// is not built in.
    pub async fn assignments_of(
        &mut self,
        principal: &str,
    ) -> StoreResult<Vec<(AssignmentRow, Option<String>)>> {
        let rows = sqlx::query(
            "SELECT a.id, a.principal, a.role_name, a.scope, a.created_at, d.actions \
             FROM role_assignments a LEFT JOIN role_definitions d ON d.name = a.role_name \
             WHERE a.principal = $1",
        )
        .bind(principal)
        .fetch_all(self.c())
        .await?;
        rows.iter()
            .map(|r| Ok((assignment_row(r)?, opt_text(r, "actions")?)))
            .collect()
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
        let rows =
            sqlx::query("SELECT member FROM group_members WHERE group_name = $1 ORDER BY member")
                .bind(name)
                .fetch_all(self.c())
                .await?;
        rows.iter().map(|r| text(r, "member")).collect()
    }

    /// Every group with its members, by name.
    pub async fn groups(&mut self) -> StoreResult<Vec<(String, Vec<String>)>> {
        let rows =
            sqlx::query("SELECT group_name, member FROM group_members ORDER BY group_name, member")
                .fetch_all(self.c())
                .await?;
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for r in &rows {
            let (g, m) = (text(r, "group_name")?, text(r, "member")?);
            match groups.last_mut() {
                Some((last, members)) if *last == g => members.push(m),
                _ => groups.push((g, vec![m])),
            }
        }
        Ok(groups)
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
        let rows = sqlx::query(
            "SELECT group_name FROM group_members WHERE member = $1 ORDER BY group_name",
        )
        .bind(member)
        .fetch_all(self.c())
        .await?;
        rows.iter().map(|r| text(r, "group_name")).collect()
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
