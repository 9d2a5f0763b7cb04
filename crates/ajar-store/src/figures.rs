//! Figures for the console's lists: per machine (approved requests in a period, last access,
//! last user, open connections) and per application (the same for role activations).

use crate::columns::Micros;
use crate::requests::{PORT_COLUMNS, hour_of};
use crate::rows::{GrantRow, to_db};
use crate::sql::{SqlBuilder, push_in_list};
use crate::tx::starts_with;
use crate::{StoreResult, Tx};
use jiff::Timestamp;
use std::collections::HashMap;

/// Request figures of one machine or application.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Figures {
    /// Requests granted since the period's start (network requests are stored only once
    /// granted; role requests count once approved).
    pub approved_since: i64,
    /// The latest request: when and by whom.
    pub last: Option<(Timestamp, String)>,
}

/// The prefix of ids under `scope`: the object itself, everything beneath it, and possibly
/// siblings sharing the prefix (answers are keyed by exact id, so callers read only what they
/// asked for).
fn under(scope: &str) -> String {
    scope.trim_end_matches('/').to_owned()
}

impl Tx {
    /// Every subscription that holds a machine, a policy or an application, by name.
    pub async fn subscriptions(&mut self) -> StoreResult<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT subscription FROM machines UNION SELECT subscription FROM policies \
             UNION SELECT subscription FROM applications ORDER BY 1",
        )
        .fetch_all(self.c())
        .await?)
    }

    /// Figures of the machines `ids` that have requests, by machine id, from the figures kept
    /// as requests are stored: two index lookups per machine whatever its history. Requests
    /// since `since` are counted by the hour: the hour `since` falls in counts whole.
    pub async fn figures_of_machines(
        &mut self,
        ids: &[&str],
        since: Timestamp,
    ) -> StoreResult<HashMap<String, Figures>> {
        let mut out: HashMap<String, Figures> = HashMap::new();
        if ids.is_empty() {
            return Ok(out);
        }
        let mut sql = SqlBuilder::new(
            "SELECT machine_id, CAST(SUM(requests) AS BIGINT) AS n FROM machine_request_hours \
             WHERE machine_id IN ",
        );
        push_in_list(&mut sql, ids.iter().copied());
        sql.push(" AND hour >= ")
            .push_bind(hour_of(to_db(since)))
            .push(" GROUP BY machine_id");
        let counts: Vec<(String, i64)> = sql.build_query_as()?.fetch_all(self.c()).await?;
        for (machine, n) in counts {
            out.entry(machine).or_default().approved_since = n;
        }
        let mut sql = SqlBuilder::new(
            "SELECT machine_id, last_user, last_at FROM machine_figures WHERE machine_id IN ",
        );
        push_in_list(&mut sql, ids.iter().copied());
        let last: Vec<(String, String, Micros)> = sql.build_query_as()?.fetch_all(self.c()).await?;
        for (machine, user, at) in last {
            out.entry(machine).or_default().last = Some((at.into(), user));
        }
        Ok(out)
    }

    /// Ports open at `now` on the machines `ids`.
    pub async fn grants_of_machines(
        &mut self,
        ids: &[&str],
        now: Timestamp,
    ) -> StoreResult<Vec<GrantRow>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut sql = SqlBuilder::new(format!(
            "SELECT {PORT_COLUMNS}, r.requestor, r.created_at, r.policy_id FROM request_ports p \
             LEFT JOIN agents ga ON ga.id = p.gateway_agent \
             JOIN requests r ON r.id = p.request_id WHERE p.machine_id IN "
        ));
        push_in_list(&mut sql, ids.iter().copied());
        sql.push(" AND p.status = 'Initiated' AND p.end_time > ")
            .push_bind(to_db(now))
            .push(" ORDER BY p.end_time, p.request_id, p.seq");
        Ok(sql.build_query_as()?.fetch_all(self.c()).await?)
    }

    /// Figures of every application under `scope` that has role requests, by application id.
    pub async fn application_figures(
        &mut self,
        scope: &str,
        since: Timestamp,
    ) -> StoreResult<HashMap<String, Figures>> {
        let prefix = under(scope);
        let mut out: HashMap<String, Figures> = HashMap::new();
        let counts: Vec<(String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT application_id, COUNT(*) AS n FROM jit_requests \
             WHERE kind = 'role' AND {} AND created_at >= $2 \
             AND state IN ('Approved', 'Active', 'Expired', 'Revoked') GROUP BY application_id",
            starts_with("application_id", 1)
        )))
        .bind(&prefix)
        .bind(to_db(since))
        .fetch_all(self.c())
        .await?;
        for (application, n) in counts {
            out.entry(application).or_default().approved_since = n;
        }
        let last: Vec<(String, String, Micros)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT application_id, requester, created_at FROM ( \
               SELECT application_id, requester, created_at, ROW_NUMBER() OVER \
                 (PARTITION BY application_id ORDER BY created_at DESC, id DESC) AS rn \
               FROM jit_requests WHERE kind = 'role' AND {}) t \
             WHERE rn = 1",
            starts_with("application_id", 1)
        )))
        .bind(&prefix)
        .fetch_all(self.c())
        .await?;
        for (application, requester, at) in last {
            out.entry(application).or_default().last = Some((at.into(), requester));
        }
        Ok(out)
    }
}
