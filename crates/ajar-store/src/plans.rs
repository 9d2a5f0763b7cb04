//! The plans of list queries, so a test or a script can check that a page is read through an
//! index rather than a scan of a table.

use crate::activity::{ActivityFilter, activity_sql};
use crate::jit_requests::{JitRequestFilter, history_sql};
use crate::requests::{RequestFilter, requests_sql};
use crate::{Backend, Cursor, StoreResult, Tx};
use sqlx::Row;

/// A list query whose plan [`Tx::plan`] answers, with the arguments of its method.
#[derive(Debug, Clone, Copy)]
pub enum Listing<'a> {
    /// [`Tx::jit_request_history`].
    JitRequestHistory(JitRequestFilter<'a>, Option<&'a Cursor>, u32),
    /// [`Tx::requests`] (the requests; their ports are then read by request id).
    Requests(RequestFilter<'a>, Option<&'a Cursor>, u32),
    /// [`Tx::activity`].
    Activity(&'a ActivityFilter<'a>, Option<i64>, u32),
}

impl Tx {
    /// How the database would run a list query, a line per step: the details of `EXPLAIN QUERY
    /// PLAN` on SQLite, the lines of `EXPLAIN` on PostgreSQL. On PostgreSQL sequential scans are
    /// off while it plans, so the plan shows whether an index can serve the query at all (on
    /// small tables a scan costs less and would be chosen instead).
    pub async fn plan(&mut self, listing: Listing<'_>) -> StoreResult<Vec<String>> {
        let mut sql = match listing {
            Listing::JitRequestHistory(filter, after, limit) => history_sql(filter, after, limit),
            Listing::Requests(filter, after, limit) => requests_sql(filter, after, limit),
            Listing::Activity(filter, before, limit) => activity_sql(filter, before, limit),
        };
        let postgres = self.backend == Backend::Postgres;
        if !postgres {
            sql.prepend("EXPLAIN QUERY PLAN ");
            let rows = sql.build()?.fetch_all(self.c()).await?;
            return Ok(rows
                .iter()
                .map(|r| r.try_get::<String, _>(3).unwrap_or_default())
                .collect());
        }
        sql.prepend("EXPLAIN ");
        sqlx::query("SET enable_seqscan = off")
            .execute(self.c())
            .await?;
        let plan: StoreResult<Vec<sqlx::any::AnyRow>> =
            async { Ok(sql.build()?.fetch_all(self.c()).await?) }.await;
        sqlx::query("RESET enable_seqscan")
            .execute(self.c())
            .await?;
        let rows = plan?;
        Ok(rows
            .iter()
            .map(|r| r.try_get::<String, _>(0).unwrap_or_default())
            .collect())
    }
}
