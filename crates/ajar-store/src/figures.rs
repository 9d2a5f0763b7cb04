//! Figures for the console's lists: per machine (approved requests in a period, last access,
//! last user, open connections) and per application (the same for role activations).

use crate::columns::Micros;
use crate::requests::{PORT_COLUMNS, hour_of};
use crate::rows::{GrantRow, JitRequestRow, to_db};
use crate::sql::{SqlBuilder, push_in_list};
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

impl Tx {
    /// At most `limit` subscriptions that hold a machine, a policy or an application, by name,
    /// after `after`: each found by one step down the `subscription` indexes of the three
    /// tables (a skip scan), so a subscription costs the same whatever it holds.
    pub async fn subscriptions_page(
        &mut self,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<String>> {
        Ok(subscriptions_page_sql(after, limit)
            .build_query_scalar()?
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
        let counts: Vec<(String, i64)> = machine_counts_sql(ids, since)
            .build_query_as()?
            .fetch_all(self.c())
            .await?;
        for (machine, n) in counts {
            out.entry(machine).or_default().approved_since = n;
        }
        let last: Vec<(String, String, Micros)> = machine_last_sql(ids)
            .build_query_as()?
            .fetch_all(self.c())
            .await?;
        for (machine, user, at) in last {
            out.entry(machine).or_default().last = Some((at.into(), user));
        }
        Ok(out)
    }

    /// Ports open at `now` on the machines `ids`: at most `per_machine` of each machine's, those
    /// that end first, and how many each machine has open in all. A busy machine costs a page
    /// its count and `per_machine` rows, not every grant it holds.
    pub async fn grants_of_machines(
        &mut self,
        ids: &[&str],
        now: Timestamp,
        per_machine: i64,
    ) -> StoreResult<(Vec<GrantRow>, HashMap<String, i64>)> {
        if ids.is_empty() {
            return Ok((Vec::new(), HashMap::new()));
        }
        let listed = grants_of_machines_sql(ids, now, per_machine)
            .build_query_as()?
            .fetch_all(self.c())
            .await?;
        let counts: Vec<(String, i64)> = open_counts_sql(ids, now)
            .build_query_as()?
            .fetch_all(self.c())
            .await?;
        Ok((listed, counts.into_iter().collect()))
    }

    /// Figures of the applications `ids` that have role requests, by application id, from the
    /// figures kept as role requests are stored and change state: two index lookups per
    /// application whatever its history. Requests made since `since` are counted by the hour
    /// of their making: the hour `since` falls in counts whole.
    pub async fn figures_of_applications(
        &mut self,
        ids: &[&str],
        since: Timestamp,
    ) -> StoreResult<HashMap<String, Figures>> {
        let mut out: HashMap<String, Figures> = HashMap::new();
        if ids.is_empty() {
            return Ok(out);
        }
        let counts: Vec<(String, i64)> = application_counts_sql(ids, since)
            .build_query_as()?
            .fetch_all(self.c())
            .await?;
        for (application, n) in counts {
            out.entry(application).or_default().approved_since = n;
        }
        let last: Vec<(String, String, Micros)> = application_last_sql(ids)
            .build_query_as()?
            .fetch_all(self.c())
            .await?;
        for (application, user, at) in last {
            out.entry(application).or_default().last = Some((at.into(), user));
        }
        Ok(out)
    }

    /// Keeps the figures of a role request's application as the request is stored: its latest
    /// request, and its approved count when it is stored approved.
    pub(crate) async fn role_request_stored(&mut self, r: &JitRequestRow) -> StoreResult<()> {
        let at = to_db(r.created_at);
        sqlx::query(
            "INSERT INTO application_figures (application_id, last_at, last_request, last_user) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (application_id) DO UPDATE SET last_at = excluded.last_at, \
             last_request = excluded.last_request, last_user = excluded.last_user \
             WHERE excluded.last_at > application_figures.last_at \
             OR (excluded.last_at = application_figures.last_at \
                 AND excluded.last_request > application_figures.last_request)",
        )
        .bind(&r.application_id)
        .bind(at)
        .bind(&r.id)
        .bind(&r.requester)
        .execute(self.c())
        .await?;
        self.count_approved(
            &r.application_id,
            at,
            i64::from(counts_as_approved(r.state.as_str())),
        )
        .await
    }

    /// Adds `delta` to the approved role requests of `application` made in the hour of
    /// `created_at` (microseconds).
    pub(crate) async fn count_approved(
        &mut self,
        application: &str,
        created_at: i64,
        delta: i64,
    ) -> StoreResult<()> {
        if delta == 0 {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO application_request_hours (application_id, hour, approved) \
             VALUES ($1, $2, $3) ON CONFLICT (application_id, hour) DO UPDATE \
             SET approved = application_request_hours.approved + excluded.approved",
        )
        .bind(application)
        .bind(hour_of(created_at))
        .bind(delta)
        .execute(self.c())
        .await?;
        Ok(())
    }
}

/// Whether a role request in `state` counts as approved in its application's figures.
pub(crate) fn counts_as_approved(state: &str) -> bool {
    matches!(state, "Approved" | "Active" | "Expired" | "Revoked")
}

/// The statement reading the approved counts of [`Tx::figures_of_applications`].
pub(crate) fn application_counts_sql(ids: &[&str], since: Timestamp) -> SqlBuilder {
    let mut sql = SqlBuilder::new(
        "SELECT application_id, CAST(SUM(approved) AS BIGINT) AS n \
         FROM application_request_hours WHERE application_id IN ",
    );
    push_in_list(&mut sql, ids.iter().copied());
    sql.push(" AND hour >= ")
        .push_bind(hour_of(to_db(since)))
        .push(" GROUP BY application_id");
    sql
}

/// The statement reading the latest requests of [`Tx::figures_of_applications`].
pub(crate) fn application_last_sql(ids: &[&str]) -> SqlBuilder {
    let mut sql = SqlBuilder::new(
        "SELECT application_id, last_user, last_at FROM application_figures \
         WHERE application_id IN ",
    );
    push_in_list(&mut sql, ids.iter().copied());
    sql
}

/// The statement of [`Tx::subscriptions_page`].
pub(crate) fn subscriptions_page_sql(after: Option<&str>, limit: usize) -> SqlBuilder {
    let next = |from: &str| {
        format!(
            "(SELECT MIN(s) FROM (\
               SELECT MIN(subscription) AS s FROM machines WHERE subscription > {from} \
               UNION ALL SELECT MIN(subscription) FROM policies WHERE subscription > {from} \
               UNION ALL SELECT MIN(subscription) FROM applications WHERE subscription > {from}\
             ) t)"
        )
    };
    let mut sql = SqlBuilder::new("WITH RECURSIVE subs(name, n) AS (SELECT CAST(");
    sql.push_bind(after.unwrap_or("").to_owned())
        .push(format_args!(
            " AS TEXT), 0 UNION ALL SELECT {}, n + 1 FROM subs \
             WHERE name IS NOT NULL AND n < ",
            next("subs.name")
        ))
        .push_bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .push(") SELECT name FROM subs WHERE n > 0 AND name IS NOT NULL ORDER BY n");
    sql
}

/// The statement reading the request counts of [`Tx::figures_of_machines`].
pub(crate) fn machine_counts_sql(ids: &[&str], since: Timestamp) -> SqlBuilder {
    let mut sql = SqlBuilder::new(
        "SELECT machine_id, CAST(SUM(requests) AS BIGINT) AS n FROM machine_request_hours \
         WHERE machine_id IN ",
    );
    push_in_list(&mut sql, ids.iter().copied());
    sql.push(" AND hour >= ")
        .push_bind(hour_of(to_db(since)))
        .push(" GROUP BY machine_id");
    sql
}

/// The statement reading the latest requests of [`Tx::figures_of_machines`].
pub(crate) fn machine_last_sql(ids: &[&str]) -> SqlBuilder {
    let mut sql = SqlBuilder::new(
        "SELECT machine_id, last_user, last_at FROM machine_figures WHERE machine_id IN ",
    );
    push_in_list(&mut sql, ids.iter().copied());
    sql
}

/// The statement of [`Tx::grants_of_machines`].
pub(crate) fn grants_of_machines_sql(ids: &[&str], now: Timestamp, per_machine: i64) -> SqlBuilder {
    // The open ports are numbered per machine on the index alone; only the first
    // `per_machine` of each are joined and read.
    let mut sql = SqlBuilder::new(format!(
        "SELECT {PORT_COLUMNS}, r.requestor, r.created_at, r.policy_id FROM request_ports p \
         LEFT JOIN agents ga ON ga.id = p.gateway_agent \
         JOIN requests r ON r.id = p.request_id WHERE (p.request_id, p.seq) IN \
         (SELECT k.request_id, k.seq FROM (SELECT request_id, seq, ROW_NUMBER() OVER \
         (PARTITION BY machine_id ORDER BY end_time, request_id, seq) AS listed \
         FROM request_ports WHERE machine_id IN "
    ));
    push_in_list(&mut sql, ids.iter().copied());
    sql.push(" AND status = 'Initiated' AND end_time > ")
        .push_bind(to_db(now))
        .push(") k WHERE k.listed <= ")
        .push_bind(per_machine)
        .push(") ORDER BY p.end_time, p.request_id, p.seq");
    sql
}

/// How many ports each of the machines `ids` has open at `now` (machines with none left out).
pub(crate) fn open_counts_sql(ids: &[&str], now: Timestamp) -> SqlBuilder {
    let mut sql =
        SqlBuilder::new("SELECT machine_id, COUNT(*) FROM request_ports WHERE machine_id IN ");
    push_in_list(&mut sql, ids.iter().copied());
    sql.push(" AND status = 'Initiated' AND end_time > ")
        .push_bind(to_db(now))
        .push(" GROUP BY machine_id");
    sql
}
