//! The activity log: records appended inside the transaction of the change they describe, each
//! chained to the previous one by hash (`ajar_core::activity`), and queries over them.

use crate::columns::Micros;
use crate::rows::to_db;
use crate::sql::SqlBuilder;
use crate::{StoreError, StoreResult, Tx};
use ajar_core::activity::{Content, GENESIS, Outcome, link_hash};
use jiff::Timestamp;

/// A record: what is appended, and (with its place in the chain) what is stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct NewActivity {
    /// When.
    #[sqlx(try_from = "Micros")]
    pub at: Timestamp,
    /// Who acted.
    pub principal: String,
    /// The caller's address, when known.
    pub source_address: Option<String>,
    /// The action.
    pub action: String,
    /// The object acted on.
    pub resource_id: String,
    /// The access request concerned, if any.
    pub request_id: Option<String>,
    /// The HTTP request id that caused it, if any.
    pub correlation_id: Option<String>,
    /// `Succeeded`, `Denied` or `Failed`.
    pub result: String,
    /// Details as JSON text.
    pub details: String,
}

impl NewActivity {
    /// A successful `action` on `resource_id` by `principal` at `at`, without details.
    pub fn new(at: Timestamp, principal: &str, action: &str, resource_id: &str) -> Self {
        Self {
            at,
            principal: principal.to_owned(),
            source_address: None,
            action: action.to_owned(),
            resource_id: resource_id.to_owned(),
            request_id: None,
            correlation_id: None,
            result: Outcome::Succeeded.as_str().to_owned(),
            details: "{}".to_owned(),
        }
    }

    /// Names the access request concerned.
    pub fn for_request(mut self, request_id: &str) -> Self {
        self.request_id = Some(request_id.to_owned());
        self
    }

    /// Sets the details.
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = details.to_string();
        self
    }

    /// Sets the outcome.
    pub fn with_result(mut self, result: Outcome) -> Self {
        self.result = result.as_str().to_owned();
        self
    }

    /// What the hash covers, for the record at position `seq`.
    pub fn content(&self, seq: i64) -> Content<'_> {
        Content {
            seq,
            at_micros: to_db(self.at),
            principal: &self.principal,
            source_address: self.source_address.as_deref(),
            action: &self.action,
            resource_id: &self.resource_id,
            request_id: self.request_id.as_deref(),
            correlation_id: self.correlation_id.as_deref(),
            result: &self.result,
            details: &self.details,
        }
    }
}

/// A stored record.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ActivityRow {
    /// Position in the chain (from 1).
    pub seq: i64,
    /// The record, its details exactly as stored (the hash covers that text).
    #[sqlx(flatten)]
    pub record: NewActivity,
    /// The previous record's hash.
    pub prev_hash: String,
    /// This record's hash.
    pub hash: String,
}

impl ActivityRow {
    /// The content the hash covers.
    pub fn content(&self) -> Content<'_> {
        self.record.content(self.seq)
    }
}

/// Which records to list; every field narrows.
#[derive(Debug, Clone, Copy, Default)]
pub struct ActivityFilter<'a> {
    /// The object itself or anything beneath it (a scope or a resource id).
    pub under: Option<&'a str>,
    /// Who acted.
    pub principal: Option<&'a str>,
    /// The action.
    pub action: Option<&'a str>,
    /// The outcome.
    pub result: Option<&'a str>,
    /// The access request concerned.
    pub request_id: Option<&'a str>,
    /// At or after this instant.
    pub from: Option<Timestamp>,
    /// Before this instant.
    pub to: Option<Timestamp>,
}

const COLUMNS: &str = "seq, at, principal, source_address, action, resource_id, request_id, \
     correlation_id, result, details, prev_hash, hash";

impl Tx {
    /// Appends a record to the activity log, chained to the last one. Only inside a write
    /// transaction, where the single writer makes the read of the chain's head and the append
    /// one step.
    pub async fn record(&mut self, a: &NewActivity) -> StoreResult<i64> {
        if !self.is_transaction() {
            return Err(StoreError::Other(
                "activity can only be recorded in a write transaction".into(),
            ));
        }
        let (prev_seq, prev_hash) = match self.chain_head.take() {
            Some(head) => head,
            None => sqlx::query_as("SELECT seq, hash FROM activity ORDER BY seq DESC LIMIT 1")
                .fetch_optional(self.c())
                .await?
                .unwrap_or_else(|| (0, GENESIS.to_owned())),
        };
        let seq = prev_seq + 1;
        let hash = link_hash(&prev_hash, &a.content(seq));
        sqlx::query(
            "INSERT INTO activity (seq, at, principal, source_address, action, resource_id, \
             request_id, correlation_id, result, details, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(seq)
        .bind(to_db(a.at))
        .bind(&a.principal)
        .bind(a.source_address.as_deref())
        .bind(&a.action)
        .bind(&a.resource_id)
        .bind(a.request_id.as_deref())
        .bind(a.correlation_id.as_deref())
        .bind(&a.result)
        .bind(&a.details)
        .bind(&prev_hash)
        .bind(&hash)
        .execute(self.c())
        .await?;
        self.record_scopes.extend(
            scopes_of(&a.resource_id)
                .into_iter()
                .map(|scope| (scope.to_owned(), seq)),
        );
        self.chain_head = Some((seq, hash));
        self.recorded += 1;
        Ok(seq)
    }

    /// Records matching `filter`, newest first, starting below `before` (a `seq`).
    pub async fn activity(
        &mut self,
        filter: &ActivityFilter<'_>,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<ActivityRow>> {
        Ok(activity_sql(filter, before, limit)
            .build_query_as()?
            .fetch_all(self.c())
            .await?)
    }

    /// Records in chain order after `after` (a `seq`), for verification.
    pub async fn activity_in_order(
        &mut self,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<ActivityRow>> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM activity WHERE seq > $1 ORDER BY seq LIMIT $2"
        )))
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(self.c())
        .await?)
    }
}

impl Tx {
    /// Writes the scopes of the records this transaction appended, in one statement (several
    /// when there are many).
    pub(crate) async fn write_record_scopes(&mut self) -> StoreResult<()> {
        let scopes = std::mem::take(&mut self.record_scopes);
        for chunk in scopes.chunks(5_000) {
            let mut sql = SqlBuilder::new("INSERT INTO activity_scopes (scope, seq) VALUES ");
            sql.push_tuples(chunk, |mut row, (scope, seq)| {
                row.push_bind(scope.as_str()).push_bind(*seq);
            });
            sql.build()?.execute(self.c()).await?;
        }
        Ok(())
    }
}

/// The statement of [`Tx::activity`].
pub(crate) fn activity_sql(
    filter: &ActivityFilter<'_>,
    before: Option<i64>,
    limit: u32,
) -> SqlBuilder {
    // Records about a scope are found newest first through `activity_scopes` (walked in
    // `(scope, seq)` order, each record looked up by its `seq`); the root holds everything.
    let (mut sql, seq) = match filter.under.map(|u| u.trim_end_matches('/')) {
        None | Some("") => (
            SqlBuilder::new(format!("SELECT {COLUMNS} FROM activity WHERE 1 = 1")),
            "seq",
        ),
        Some(scope) => {
            let mut sql = SqlBuilder::new(format!(
                "SELECT a.{COLUMNS} FROM activity_scopes s CROSS JOIN activity a \
                 WHERE a.seq = s.seq AND s.scope = "
            ));
            sql.push_bind(scope.to_owned());
            (sql, "s.seq")
        }
    };
    for (value, column) in [
        (filter.principal, "principal"),
        (filter.action, "action"),
        (filter.result, "result"),
        (filter.request_id, "request_id"),
    ] {
        if let Some(value) = value {
            sql.push(format_args!(" AND {column} = ")).push_bind(value);
        }
    }
    if let Some(from) = filter.from {
        sql.push(" AND at >= ").push_bind(to_db(from));
    }
    if let Some(to) = filter.to {
        sql.push(" AND at < ").push_bind(to_db(to));
    }
    if let Some(before) = before {
        sql.push(format_args!(" AND {seq} < ")).push_bind(before);
    }
    sql.push(format_args!(" ORDER BY {seq} DESC LIMIT "))
        .push_bind(i64::from(limit));
    sql
}

/// Every scope a record about `resource_id` is about: each prefix of whole pairs of segments
/// (`/subscriptions/s`, `…/resourceGroups/rg`, `…/machines/vm`, the only shapes a scope has),
/// the id itself included when it is one. The root is left out: it holds everything.
pub(crate) fn scopes_of(resource_id: &str) -> Vec<&str> {
    let id = resource_id.trim_end_matches('/');
    let ends = id
        .char_indices()
        .filter(|&(i, c)| c == '/' && i > 0)
        .map(|(i, _)| i)
        .chain((!id.is_empty()).then_some(id.len()));
    // The n-th end closes n segments; scopes close an even number.
    ends.enumerate()
        .filter(|(n, _)| n % 2 == 1)
        .map(|(_, end)| &id[..end])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_about_its_resource_and_every_scope_above_it() {
        assert_eq!(
            scopes_of("/subscriptions/s/resourceGroups/rg/machines/vm"),
            [
                "/subscriptions/s",
                "/subscriptions/s/resourceGroups/rg",
                "/subscriptions/s/resourceGroups/rg/machines/vm",
            ]
        );
        assert_eq!(
            scopes_of("/subscriptions/s/resourceGroups/rg/machines/vm/extra"),
            scopes_of("/subscriptions/s/resourceGroups/rg/machines/vm"),
            "records beneath a resource are found at the resource"
        );
        assert_eq!(scopes_of("/groups/ops/"), ["/groups/ops"]);
        assert!(scopes_of("/").is_empty());
        assert!(scopes_of("/tokens").is_empty());
    }
    use ajar_core::activity::ChainCheck;

    fn entry(i: i64, resource: &str) -> NewActivity {
        NewActivity {
            at: Timestamp::from_second(1_000 + i).unwrap(),
            principal: if i % 2 == 0 { "alice" } else { "bob" }.into(),
            source_address: Some("10.0.0.1".into()),
            action: "ajar.machines/write".into(),
            resource_id: resource.into(),
            request_id: None,
            correlation_id: Some(format!("c{i}")),
            result: "Succeeded".into(),
            details: format!(r#"{{"i":{i}}}"#),
        }
    }

    #[tokio::test]
    async fn going_back_to_a_savepoint_undoes_records_and_keeps_the_chain_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::test_store(dir.path()).await;
        let m = "/subscriptions/s/resourceGroups/rg/machines/m";
        let mut tx = store.write().await.unwrap();
        tx.record(&entry(1, m)).await.unwrap();
        let point = tx.savepoint().await.unwrap();
        tx.record(&entry(2, m)).await.unwrap();
        tx.rollback_to(point).await.unwrap();
        let point = tx.savepoint().await.unwrap();
        tx.record(&entry(3, m)).await.unwrap();
        tx.release(point).await.unwrap();
        tx.commit().await.unwrap();
        let mut read = store.read().await.unwrap();
        let all = read.activity_in_order(0, 100).await.unwrap();
        let ids: Vec<_> = all
            .iter()
            .map(|r| r.record.correlation_id.clone())
            .collect();
        assert_eq!(ids, [Some("c1".to_owned()), Some("c3".to_owned())]);
        let mut check = ChainCheck::default();
        for r in &all {
            check.push(&r.content(), &r.prev_hash, &r.hash).unwrap();
        }
        assert_eq!(check.records(), 2);
    }

    #[tokio::test]
    async fn records_chain_across_transactions_and_filter_by_scope() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::test_store(dir.path()).await;
        for (i, resource) in [
            "/subscriptions/s/resourceGroups/rg/machines/m",
            "/subscriptions/s/resourceGroups/rg2/machines/m",
            "/subscriptions/s_x/resourceGroups/rg/machines/m",
        ]
        .iter()
        .enumerate()
        {
            let mut tx = store.write().await.unwrap();
            tx.record(&entry(i as i64, resource)).await.unwrap();
            tx.record(&entry(i as i64 + 10, resource)).await.unwrap();
            tx.commit().await.unwrap();
        }
        let mut read = store.read().await.unwrap();
        let all = read.activity_in_order(0, 100).await.unwrap();
        let mut check = ChainCheck::default();
        for r in &all {
            check.push(&r.content(), &r.prev_hash, &r.hash).unwrap();
        }
        assert_eq!(check.records(), 6);
        let under = |scope| ActivityFilter {
            under: Some(scope),
            ..Default::default()
        };
        let seqs = |rows: Vec<ActivityRow>| rows.iter().map(|r| r.seq).collect::<Vec<_>>();
        // `_` in a scope is not a wildcard, and a scope covers only what is beneath it.
        let got = read
            .activity(&under("/subscriptions/s"), None, 100)
            .await
            .unwrap();
        assert_eq!(seqs(got), vec![4, 3, 2, 1]);
        let got = read
            .activity(&under("/subscriptions/s/resourceGroups/rg"), None, 100)
            .await
            .unwrap();
        assert_eq!(seqs(got), vec![2, 1]);
        let got = read.activity(&under("/"), Some(5), 2).await.unwrap();
        assert_eq!(seqs(got), vec![4, 3]);
        let filter = ActivityFilter {
            principal: Some("alice"),
            from: Some(Timestamp::from_second(1_001).unwrap()),
            ..Default::default()
        };
        let got = read.activity(&filter, None, 100).await.unwrap();
        // alice's records at 1000, 1010, 1002, 1012: all but the first.
        assert_eq!(seqs(got), vec![6, 5, 2]);
    }

    #[tokio::test]
    async fn a_read_connection_cannot_record_and_a_write_must_record() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::test_store(dir.path()).await;
        let mut read = store.read().await.unwrap();
        assert!(read.record(&entry(1, "/x")).await.is_err());
        let mut tx = store.write().await.unwrap();
        tx.set_meta("k", "v").await.unwrap();
        assert!(tx.commit().await.is_err(), "a change without a record");
        let mut read = store.read().await.unwrap();
        assert_eq!(read.meta("k").await.unwrap(), None);
        let mut tx = store.write().await.unwrap();
        tx.set_meta("k", "v").await.unwrap();
        tx.commit_unrecorded().await.unwrap();
        assert_eq!(read.meta("k").await.unwrap().as_deref(), Some("v"));
    }
}
