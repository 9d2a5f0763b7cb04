//! Requests on the shared engine: role activations and approval-gated network access.

use crate::StoreResult;
use crate::columns::{NullableMicros, to_json};
use crate::figures::counts_as_approved;
use crate::readable::{Arm, Readable, push_merged};
use crate::rows::*;
use crate::sql::{SqlBuilder, push_page_conditions};
use crate::tx::*;
use ajar_core::lifecycle::{Lifecycle, RequestState};
use jiff::Timestamp;
use std::collections::BTreeMap;

/// The columns of a [`JitRequestRow`].
pub(crate) const JIT_REQUEST_COLUMNS: &str = "id, name, application_id, kind, requester, roles, justification, \
     lifecycle, state, due, created_at, detail, extends, location, tags";

/// A filter over requests on the shared engine (role activations, approval-gated network
/// access).
#[derive(Debug, Clone, Copy, Default)]
pub struct JitRequestFilter<'a> {
    /// Only requests for this application (or, for network requests, this policy).
    pub application: Option<&'a str>,
    /// Only this requester's.
    pub requester: Option<&'a str>,
    /// Only `role` or only `network` requests.
    pub kind: Option<&'a str>,
    /// Only in this state.
    pub state: Option<&'a str>,
    /// Made at or after this instant.
    pub from: Option<Timestamp>,
    /// Made before this instant.
    pub to: Option<Timestamp>,
    /// Only what may be read; `None` reads everything.
    pub within: Option<&'a Readable>,
}

impl Tx {
    /// Stores a new role activation request; false when one with this id exists.
    #[allow(clippy::too_many_arguments)]
    pub async fn insert_jit_request(
        &mut self,
        r: &JitRequestRow,
        subscription: &str,
        resource_group: &str,
    ) -> StoreResult<bool> {
        self.touched_access = true;
        if self.jit_request(&r.id).await?.is_some() {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO jit_requests (id, subscription, resource_group, name, application_id, requester, \
             roles, justification, lifecycle, state, due, created_at, kind, detail, extends, location, tags) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
        )
        .bind(&r.id)
        .bind(subscription)
        .bind(resource_group)
        .bind(&r.name)
        .bind(&r.application_id)
        .bind(&r.requester)
        .bind(to_json(&r.roles)?)
        .bind(&r.justification)
        .bind(to_json(&r.lifecycle)?)
        .bind(r.state.as_str())
        .bind(r.due.map(to_db))
        .bind(to_db(r.created_at))
        .bind(&r.kind)
        .bind(&r.detail)
        .bind(&r.extends)
        .bind(&r.location)
        .bind(r.tags.as_ref().map(to_json).transpose()?)
        .execute(self.c())
        .await?;
        if r.kind == "role" {
            self.role_request_stored(r).await?;
        }
        Ok(true)
    }

    /// Replaces a request's tags; false when there is no such request.
    pub async fn set_jit_request_tags(
        &mut self,
        id: &str,
        tags: &BTreeMap<String, String>,
    ) -> StoreResult<bool> {
        let r = sqlx::query("UPDATE jit_requests SET tags = $1 WHERE id = $2")
            .bind(to_json(tags)?)
            .bind(id)
            .execute(self.c())
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Replaces a request's lifecycle, state and due instant.
    pub async fn update_jit_request(
        &mut self,
        id: &str,
        lifecycle: &Lifecycle,
        state: RequestState,
        due: Option<Timestamp>,
    ) -> StoreResult<()> {
        self.touched_access = true;
        let before: Option<(String, String, String, i64)> = sqlx::query_as(
            "SELECT kind, application_id, state, created_at FROM jit_requests WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.c())
        .await?;
        if let Some((kind, application, was, created_at)) = before
            && kind == "role"
        {
            let delta =
                i64::from(counts_as_approved(state.as_str())) - i64::from(counts_as_approved(&was));
            self.count_approved(&application, created_at, delta).await?;
        }
        sqlx::query("UPDATE jit_requests SET lifecycle = $1, state = $2, due = $3 WHERE id = $4")
            .bind(to_json(lifecycle)?)
            .bind(state.as_str())
            .bind(due.map(to_db))
            .bind(id)
            .execute(self.c())
            .await?;
        Ok(())
    }

    async fn jit_requests_where(
        &mut self,
        cond: &str,
        arg: &str,
    ) -> StoreResult<Vec<JitRequestRow>> {
        let sql = format!(
            "SELECT {JIT_REQUEST_COLUMNS} FROM jit_requests WHERE {cond} ORDER BY created_at DESC, id DESC"
        );
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(arg)
            .fetch_all(self.c())
            .await?)
    }

    /// One role activation request.
    pub async fn jit_request(&mut self, id: &str) -> StoreResult<Option<JitRequestRow>> {
        Ok(self
            .jit_requests_where("id = $1", id)
            .await?
            .into_iter()
            .next())
    }

    /// A newest-first page of requests matching `filter`, after `after`.
    pub async fn jit_request_history(
        &mut self,
        filter: JitRequestFilter<'_>,
        after: Option<&Cursor>,
        limit: u32,
    ) -> StoreResult<Vec<JitRequestRow>> {
        Ok(history_sql(filter, after, limit)
            .build_query_as()?
            .fetch_all(self.c())
            .await?)
    }

    /// Requests in a state, newest first.
    pub async fn jit_requests_in_state(&mut self, state: &str) -> StoreResult<Vec<JitRequestRow>> {
        self.jit_requests_where("state = $1", state).await
    }

    /// Ids of requests due at `now` (the scheduler's work list).
    pub async fn jit_requests_due(&mut self, now: Timestamp) -> StoreResult<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM jit_requests WHERE due IS NOT NULL AND due <= $1 ORDER BY due",
        )
        .bind(to_db(now))
        .fetch_all(self.c())
        .await?)
    }

    /// The earliest due instant of any role activation request.
    pub async fn next_jit_due(&mut self) -> StoreResult<Option<Timestamp>> {
        let due: NullableMicros =
            sqlx::query_scalar("SELECT MIN(due) AS due FROM jit_requests WHERE due IS NOT NULL")
                .fetch_one(self.c())
                .await?;
        Ok(due.into())
    }
}

/// The statement of [`Tx::jit_request_history`]: one walk of an index in `(created_at, id)`
/// order, or, when only some rows may be read, one such walk per part of them, merged.
pub(crate) fn history_sql(
    filter: JitRequestFilter<'_>,
    after: Option<&Cursor>,
    limit: u32,
) -> SqlBuilder {
    let mut sql = SqlBuilder::new("");
    match filter.within {
        None => push_history_page(&mut sql, filter, after, limit, None),
        Some(within) => push_merged(
            &mut sql,
            JIT_REQUEST_COLUMNS,
            &within.arms(false),
            limit,
            |sql, arm| push_history_page(sql, filter, after, limit, Some(arm)),
        ),
    }
    sql
}

/// A page of history, of one part of what may be read when `arm` is given. Only the conditions
/// given, so the planner can walk an index in `(created_at, id)` order: `jit_requests_by_time`,
/// `jit_requests_by_requester` for one requester, `jit_requests_by_subscription` or
/// `jit_requests_by_group` for a subscription's or a resource group's.
fn push_history_page(
    sql: &mut SqlBuilder,
    filter: JitRequestFilter<'_>,
    after: Option<&Cursor>,
    limit: u32,
    arm: Option<Arm<'_>>,
) {
    sql.push(format_args!(
        "SELECT {JIT_REQUEST_COLUMNS} FROM jit_requests WHERE 1 = 1"
    ));
    for (column, value) in [
        ("application_id", filter.application),
        ("requester", filter.requester),
        ("kind", filter.kind),
        ("state", filter.state),
    ] {
        if let Some(value) = value {
            sql.push(format_args!(" AND {column} = "))
                .push_bind(value.to_owned());
        }
    }
    match arm {
        None => {}
        Some(Arm::Own(requester)) => {
            sql.push(" AND requester = ")
                .push_bind(requester.to_owned());
        }
        Some(Arm::Subscription(s)) => {
            sql.push(" AND subscription = ").push_bind(s.to_owned());
        }
        Some(Arm::Group(s, g)) => {
            sql.push(" AND subscription = ")
                .push_bind(s.to_owned())
                .push(" AND resource_group = ")
                .push_bind(g.to_owned());
        }
        Some(Arm::Resource(id)) => {
            sql.push(" AND id = ").push_bind(id.to_owned());
        }
        // Every role activation request has its subscription.
        Some(Arm::Unplaced | Arm::Nothing) => {
            sql.push(" AND 1 = 0");
        }
    }
    push_page_conditions(sql, "", filter.from, filter.to, after);
    sql.push(" ORDER BY created_at DESC, id DESC LIMIT ")
        .push_bind(i64::from(limit));
}
