//! Notification subscriptions and the outbox: notifications are queued in the transaction of
//! the change they tell about, then delivered (and retried) by a worker that claims due rows.

use crate::columns::{Micros, NullableMicros};
use crate::rows::{Cursor, to_db};
use crate::sql::{SqlBuilder, push_limit, push_page_conditions};
use crate::{StoreResult, Tx};
use jiff::Timestamp;

/// A stored notification subscription.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SubscriptionRow {
    /// Resource id (`/subscriptions/S/notificationSubscriptions/NAME`).
    pub id: String,
    /// Name.
    pub name: String,
    /// Its settings as JSON (the API's `properties`, without the secret).
    pub properties: String,
    /// The webhook signing secret, if any (never returned by the API).
    pub secret: Option<String>,
}

/// A queued notification.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutboxRow {
    /// Delivery id, also the idempotency key receivers deduplicate on.
    pub id: String,
    /// The subscription it goes to.
    pub subscription_id: String,
    /// The event name.
    pub event: String,
    /// The JSON body.
    pub payload: String,
    /// `Pending`, `Delivered` or `Dead`.
    pub state: String,
    /// Attempts made.
    pub attempts: i64,
    /// When the next attempt is due (pending only).
    #[sqlx(try_from = "NullableMicros")]
    pub next_attempt: Option<Timestamp>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When it was queued.
    #[sqlx(try_from = "Micros")]
    pub created_at: Timestamp,
    /// When it last changed.
    #[sqlx(try_from = "Micros")]
    pub updated_at: Timestamp,
}

const OUTBOX_COLUMNS: &str = "id, subscription_id, event, payload, state, attempts, next_attempt, \
     last_error, created_at, updated_at";

impl Tx {
    /// Creates or replaces a subscription; true when created. `secret: None` keeps the stored
    /// one.
    pub async fn put_notification_subscription(
        &mut self,
        row: &SubscriptionRow,
        subscription: &str,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let existed = sqlx::query("SELECT 1 FROM notification_subscriptions WHERE id = $1")
            .bind(&row.id)
            .fetch_optional(self.c())
            .await?
            .is_some();
        sqlx::query(
            "INSERT INTO notification_subscriptions \
             (id, subscription, name, properties, secret, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) \
             ON CONFLICT (id) DO UPDATE SET properties = excluded.properties, \
             secret = COALESCE(excluded.secret, notification_subscriptions.secret), \
             updated_at = excluded.updated_at",
        )
        .bind(&row.id)
        .bind(subscription)
        .bind(&row.name)
        .bind(&row.properties)
        .bind(row.secret.as_deref())
        .bind(to_db(now))
        .execute(self.c())
        .await?;
        Ok(!existed)
    }

    /// One subscription.
    pub async fn notification_subscription(
        &mut self,
        id: &str,
    ) -> StoreResult<Option<SubscriptionRow>> {
        Ok(sqlx::query_as(
            "SELECT id, name, properties, secret FROM notification_subscriptions WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.c())
        .await?)
    }

    /// Every notification subscription, by id.
    pub async fn notification_subscriptions(&mut self) -> StoreResult<Vec<SubscriptionRow>> {
        Ok(sqlx::query_as(
            "SELECT id, name, properties, secret FROM notification_subscriptions ORDER BY id",
        )
        .fetch_all(self.c())
        .await?)
    }

    /// At most `limit` notification subscriptions of an ajar subscription by name, after the
    /// one named `after`: one page through `notification_subscriptions_page`.
    pub async fn notification_subscriptions_page(
        &mut self,
        subscription: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<SubscriptionRow>> {
        Ok(
            notification_subscriptions_page_sql(subscription, after, limit)
                .build_query_as()?
                .fetch_all(self.c())
                .await?,
        )
    }

    /// Deletes a subscription and its undelivered notifications; false when it did not exist.
    pub async fn delete_notification_subscription(&mut self, id: &str) -> StoreResult<bool> {
        sqlx::query("DELETE FROM outbox WHERE subscription_id = $1 AND state = 'Pending'")
            .bind(id)
            .execute(self.c())
            .await?;
        let r = sqlx::query("DELETE FROM notification_subscriptions WHERE id = $1")
            .bind(id)
            .execute(self.c())
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Queues a notification, due at once.
    pub async fn queue_notification(
        &mut self,
        id: &str,
        subscription_id: &str,
        event: &str,
        payload: &str,
        now: Timestamp,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO outbox (id, subscription_id, event, payload, state, attempts, \
             next_attempt, created_at, updated_at) VALUES ($1, $2, $3, $4, 'Pending', 0, $5, $5, $5)",
        )
        .bind(id)
        .bind(subscription_id)
        .bind(event)
        .bind(payload)
        .bind(to_db(now))
        .execute(self.c())
        .await?;
        Ok(())
    }

    /// Claims up to `limit` pending notifications due at `now` by moving their next attempt to
    /// `lease_until`, so a crash mid-delivery retries them after the lease and a concurrent
    /// worker skips them. Answers the claimed rows.
    pub async fn claim_notifications(
        &mut self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<OutboxRow>> {
        let rows: Vec<OutboxRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE state = 'Pending' AND next_attempt <= $1 \
             ORDER BY next_attempt LIMIT $2"
        )))
        .bind(to_db(now))
        .bind(i64::from(limit))
        .fetch_all(self.c())
        .await?;
        for r in &rows {
            sqlx::query("UPDATE outbox SET next_attempt = $1 WHERE id = $2")
                .bind(to_db(lease_until))
                .bind(&r.id)
                .execute(self.c())
                .await?;
        }
        Ok(rows)
    }

    /// When the next pending notification is due.
    pub async fn next_notification_due(&mut self) -> StoreResult<Option<Timestamp>> {
        let due: NullableMicros = sqlx::query_scalar(
            "SELECT MIN(next_attempt) AS due FROM outbox WHERE state = 'Pending'",
        )
        .fetch_one(self.c())
        .await?;
        Ok(due.into())
    }

    /// Records an attempt's outcome: `next_attempt: Some` retries then, `state` is the new state.
    pub async fn notification_attempted(
        &mut self,
        id: &str,
        state: &str,
        attempts: i64,
        next_attempt: Option<Timestamp>,
        error: Option<&str>,
        now: Timestamp,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE outbox SET state = $1, attempts = $2, next_attempt = $3, last_error = $4, \
             updated_at = $5 WHERE id = $6",
        )
        .bind(state)
        .bind(attempts)
        .bind(next_attempt.map(to_db))
        .bind(error)
        .bind(to_db(now))
        .bind(id)
        .execute(self.c())
        .await?;
        Ok(())
    }

    /// At most `limit` of a subscription's deliveries (only in one state when given), newest
    /// first after `after`: one page through `outbox_by_subscription` or
    /// `outbox_by_subscription_state`.
    pub async fn notification_deliveries(
        &mut self,
        subscription_id: &str,
        state: Option<&str>,
        after: Option<&Cursor>,
        limit: usize,
    ) -> StoreResult<Vec<OutboxRow>> {
        Ok(deliveries_page_sql(subscription_id, state, after, limit)
            .build_query_as()?
            .fetch_all(self.c())
            .await?)
    }

    /// One delivery.
    pub async fn notification_delivery(&mut self, id: &str) -> StoreResult<Option<OutboxRow>> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(self.c())
        .await?)
    }
}

/// The statement of [`Tx::notification_subscriptions_page`].
pub(crate) fn notification_subscriptions_page_sql(
    subscription: &str,
    after: Option<&str>,
    limit: usize,
) -> SqlBuilder {
    let mut sql = SqlBuilder::new(
        "SELECT id, name, properties, secret FROM notification_subscriptions WHERE subscription = ",
    );
    sql.push_bind(subscription.to_owned());
    if let Some(after) = after {
        sql.push(" AND name > ").push_bind(after.to_owned());
    }
    sql.push(" ORDER BY name");
    push_limit(&mut sql, limit);
    sql
}

/// The statement of [`Tx::notification_deliveries`].
pub(crate) fn deliveries_page_sql(
    subscription_id: &str,
    state: Option<&str>,
    after: Option<&Cursor>,
    limit: usize,
) -> SqlBuilder {
    let mut sql = SqlBuilder::new(format!(
        "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE subscription_id = "
    ));
    sql.push_bind(subscription_id.to_owned());
    if let Some(state) = state {
        sql.push(" AND state = ").push_bind(state.to_owned());
    }
    push_page_conditions(&mut sql, "", None, None, after);
    sql.push(" ORDER BY created_at DESC, id DESC");
    push_limit(&mut sql, limit);
    sql
}
