//! Notification subscriptions (`/api/v1/subscriptions/{sub}/notificationSubscriptions/{name}`):
//! a webhook or email addresses, a scope and the events wanted; and their deliveries, where
//! dead letters are seen and retried.

use super::paging::{ByName, NewestFirst, time_key};
use super::{Reply, name, no_content, subscription_scope};
use crate::AppState;
use crate::auth::Caller;
use crate::body::RawBody;
use crate::error::{AppError, AppResult};
use ajar_api::ErrorCode;
use ajar_api::wire::{
    Delivery, DeliveryState, List, NOTIFICATION_EVENTS, NotificationSubscription,
    NotificationSubscriptionBody, NotificationSubscriptionProperties,
};
use ajar_core::id::Scope;
use ajar_core::rbac::actions;
use ajar_store::{OutboxRow, SubscriptionRow};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;
use std::cmp::Reverse;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_subscriptions))
        .routes(routes!(
            get_subscription,
            put_subscription,
            delete_subscription
        ))
        .routes(routes!(list_deliveries))
        .routes(routes!(retry_delivery))
}

fn bad(target: &str, message: impl Into<String>) -> AppError {
    AppError::new(ErrorCode::ValidationFailed, message).at(target)
}

/// Checks a subscription's settings; answers them with the secret taken out.
/// `secret_stored`: a webhook secret is already stored (an update may then leave it out).
fn validate(
    sub_scope: &Scope,
    mut p: NotificationSubscriptionProperties,
    secret_stored: bool,
) -> AppResult<(NotificationSubscriptionProperties, Option<String>)> {
    if !sub_scope.contains(&p.scope) {
        return Err(bad(
            "properties.scope",
            format!("the scope must be {sub_scope} or beneath it"),
        ));
    }
    for (i, e) in p.events.iter().enumerate() {
        if !NOTIFICATION_EVENTS.contains(&e.as_str()) {
            return Err(bad(
                &format!("properties.events[{i}]"),
                format!(
                    "unknown event {e:?}; known: {}",
                    NOTIFICATION_EVENTS.join(", ")
                ),
            ));
        }
    }
    p.events.sort();
    p.events.dedup();
    if p.max_attempts.is_some_and(|n| !(1..=20).contains(&n)) {
        return Err(bad("properties.maxAttempts", "maxAttempts must be 1 to 20"));
    }
    let mut secret = None;
    match (&mut p.webhook, &p.email) {
        (Some(hook), None) => {
            let url = reqwest::Url::parse(&hook.url)
                .map_err(|e| bad("properties.webhook.url", format!("not a URL: {e}")))?;
            if !matches!(url.scheme(), "https" | "http") || url.host().is_none() {
                return Err(bad(
                    "properties.webhook.url",
                    "the URL must be http:// or https:// with a host",
                ));
            }
            if hook.url.len() > 2048 {
                return Err(bad("properties.webhook.url", "the URL is longer than 2048"));
            }
            secret = hook.secret.take();
            match &secret {
                Some(s) if !(16..=256).contains(&s.chars().count()) => {
                    return Err(bad(
                        "properties.webhook.secret",
                        "the secret must be 16 to 256 characters",
                    ));
                }
                None if !secret_stored => {
                    return Err(bad(
                        "properties.webhook.secret",
                        "a secret is required to sign deliveries",
                    ));
                }
                _ => {}
            }
        }
        (None, Some(mail)) => {
            if mail.to.is_empty() && !mail.notify_participants {
                return Err(bad(
                    "properties.email.to",
                    "name recipients, or set notifyParticipants",
                ));
            }
            if mail.to.len() > 50 {
                return Err(bad("properties.email.to", "at most 50 recipients"));
            }
            for (i, addr) in mail.to.iter().enumerate() {
                if addr.parse::<lettre::Address>().is_err() {
                    return Err(bad(
                        &format!("properties.email.to[{i}]"),
                        format!("{addr:?} is not an email address"),
                    ));
                }
            }
        }
        _ => {
            return Err(bad("properties", "give exactly one of webhook or email"));
        }
    }
    Ok((p, secret))
}

fn view(row: &SubscriptionRow) -> AppResult<NotificationSubscription> {
    let mut properties: NotificationSubscriptionProperties =
        serde_json::from_str(&row.properties).map_err(|_| AppError::internal())?;
    if let Some(hook) = &mut properties.webhook {
        hook.secret = None;
        hook.secret_set = row.secret.is_some();
    }
    Ok(NotificationSubscription {
        id: row.id.clone(),
        name: row.name.clone(),
        properties,
    })
}

fn subscription_id(sub: &str, n: &str) -> AppResult<(Scope, String)> {
    let scope = subscription_scope(sub)?;
    let n = name("name", n)?;
    let id = format!("{scope}/notificationSubscriptions/{n}");
    Ok((scope, id))
}

#[utoipa::path(put, path = "/api/v1/subscriptions/{sub}/notificationSubscriptions/{name}", tag = "notifications",
    params(("sub" = String, Path), ("name" = String, Path)),
    request_body = NotificationSubscriptionBody,
    responses((status = 201, body = NotificationSubscription), (status = 200, body = NotificationSubscription)))]
pub async fn put_subscription(
    State(state): State<AppState>,
    caller: Caller,
    Path((sub, n)): Path<(String, String)>,
    body: RawBody,
) -> AppResult<Reply<NotificationSubscription>> {
    let (scope, id) = subscription_id(&sub, &n)?;
    caller.require(actions::NOTIFICATIONS_WRITE, &scope)?;
    let body: NotificationSubscriptionBody = body.parse()?;
    // Before the transaction: the check may wait on DNS.
    if let Some(hook) = &body.properties.webhook
        && hook.url.len() <= 2048
        && let Ok(url) = reqwest::Url::parse(&hook.url)
        && matches!(url.scheme(), "https" | "http")
    {
        state
            .notifier
            .check_webhook_url(&url)
            .await
            .map_err(|m| bad("properties.webhook.url", m))?;
    }
    let mut tx = state.store.write().await?;
    let existing = tx.notification_subscription(&id).await?;
    let secret_stored = existing.as_ref().is_some_and(|e| e.secret.is_some());
    let (properties, secret) = validate(&scope, body.properties, secret_stored)?;
    let mut row = SubscriptionRow {
        id: id.clone(),
        name: n.clone(),
        properties: serde_json::to_string(&properties).map_err(|_| AppError::internal())?,
        secret,
    };
    let now = state.clock.now();
    let created = tx
        .put_notification_subscription(&row, &scope.to_string(), now)
        .await?;
    if row.secret.is_none() {
        row.secret = existing.and_then(|e| e.secret);
    }
    // The details never hold the secret.
    tx.commit_recorded(
        &caller
            .did(actions::NOTIFICATIONS_WRITE, &id, now)
            .with_details(json!({"created": created, "properties": properties})),
    )
    .await?;
    Ok(Reply::created_or_ok(created, view(&row)?))
}

#[utoipa::path(get, path = "/api/v1/subscriptions/{sub}/notificationSubscriptions/{name}", tag = "notifications",
    params(("sub" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = NotificationSubscription)))]
pub async fn get_subscription(
    State(state): State<AppState>,
    caller: Caller,
    Path((sub, n)): Path<(String, String)>,
) -> AppResult<Reply<NotificationSubscription>> {
    let (scope, id) = subscription_id(&sub, &n)?;
    caller.require(actions::NOTIFICATIONS_READ, &scope)?;
    let mut tx = state.store.read().await?;
    let row = tx
        .notification_subscription(&id)
        .await?
        .ok_or_else(|| AppError::not_found(&id))?;
    Ok(Reply::ok(view(&row)?))
}

#[utoipa::path(get, path = "/api/v1/subscriptions/{sub}/notificationSubscriptions", tag = "notifications",
    params(("sub" = String, Path)),
    responses((status = 200, body = List<NotificationSubscription>)))]
pub async fn list_subscriptions(
    State(state): State<AppState>,
    caller: Caller,
    Path(sub): Path<String>,
    paging: ByName,
) -> AppResult<Reply<List<NotificationSubscription>>> {
    let scope = subscription_scope(&sub)?;
    caller.require(actions::NOTIFICATIONS_READ, &scope)?;
    let mut tx = state.store.read().await?;
    let rows = tx
        .notification_subscriptions_page(
            &scope.to_string(),
            paging.after.as_deref(),
            paging.limit(),
        )
        .await?;
    let (rows, next_link) = paging.finish(rows, |s| s.name.clone());
    let value = rows.iter().map(view).collect::<AppResult<_>>()?;
    Ok(Reply::ok(List { value, next_link }))
}

#[utoipa::path(delete, path = "/api/v1/subscriptions/{sub}/notificationSubscriptions/{name}", tag = "notifications",
    params(("sub" = String, Path), ("name" = String, Path)),
    responses((status = 204)))]
pub async fn delete_subscription(
    State(state): State<AppState>,
    caller: Caller,
    Path((sub, n)): Path<(String, String)>,
) -> AppResult<Response> {
    let (scope, id) = subscription_id(&sub, &n)?;
    caller.require(actions::NOTIFICATIONS_WRITE, &scope)?;
    let mut tx = state.store.write().await?;
    if !tx.delete_notification_subscription(&id).await? {
        return Err(AppError::not_found(&id));
    }
    tx.commit_recorded(&caller.did(actions::NOTIFICATIONS_WRITE, &id, state.clock.now()))
        .await?;
    Ok(no_content())
}

/// Filter of a deliveries list.
#[derive(Debug, Deserialize)]
pub struct DeliveryQuery {
    state: Option<String>,
}

fn delivery_view(r: OutboxRow) -> AppResult<Delivery> {
    Ok(Delivery {
        payload: serde_json::from_str(&r.payload).unwrap_or(serde_json::Value::Null),
        id: r.id,
        event: r.event,
        state: DeliveryState::parse(&r.state).ok_or_else(AppError::internal)?,
        attempts: r.attempts,
        next_attempt_at: r.next_attempt,
        last_error: r.last_error,
        created_at: r.created_at,
    })
}

#[utoipa::path(get, path = "/api/v1/subscriptions/{sub}/notificationSubscriptions/{name}/deliveries", tag = "notifications",
    params(("sub" = String, Path), ("name" = String, Path),
           ("state" = Option<String>, Query, description = "Pending, Delivered or Dead")),
    responses((status = 200, body = List<Delivery>)))]
pub async fn list_deliveries(
    State(state): State<AppState>,
    caller: Caller,
    Path((sub, n)): Path<(String, String)>,
    Query(q): Query<DeliveryQuery>,
    paging: NewestFirst,
) -> AppResult<Reply<List<Delivery>>> {
    let (scope, id) = subscription_id(&sub, &n)?;
    caller.require(actions::NOTIFICATIONS_READ, &scope)?;
    if let Some(s) = &q.state
        && DeliveryState::parse(s).is_none()
    {
        return Err(AppError::new(
            ErrorCode::InvalidParameter,
            "state must be Pending, Delivered or Dead",
        )
        .at("state"));
    }
    let mut tx = state.store.read().await?;
    if tx.notification_subscription(&id).await?.is_none() {
        return Err(AppError::not_found(&id));
    }
    let rows = tx
        .notification_deliveries(
            &id,
            q.state.as_deref(),
            paging.after.as_ref().map(|r| &r.0),
            paging.limit(),
        )
        .await?;
    let (rows, next_link) = paging.finish(rows, |d| Reverse(time_key(d.created_at, &d.id)));
    let value = rows
        .into_iter()
        .map(delivery_view)
        .collect::<AppResult<_>>()?;
    Ok(Reply::ok(List { value, next_link }))
}

#[utoipa::path(post, path = "/api/v1/subscriptions/{sub}/notificationSubscriptions/{name}/deliveries/{id}/retry", tag = "notifications",
    params(("sub" = String, Path), ("name" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = Delivery), (status = 409, body = ajar_api::ErrorBody)))]
pub async fn retry_delivery(
    State(state): State<AppState>,
    caller: Caller,
    Path((sub, n, delivery)): Path<(String, String, String)>,
) -> AppResult<Reply<Delivery>> {
    let (scope, id) = subscription_id(&sub, &n)?;
    caller.require(actions::NOTIFICATIONS_WRITE, &scope)?;
    let now = state.clock.now();
    let mut tx = state.store.write().await?;
    let row = tx
        .notification_delivery(&delivery)
        .await?
        .filter(|r| r.subscription_id == id)
        .ok_or_else(|| AppError::not_found(format!("delivery {delivery}")))?;
    if row.state != DeliveryState::Dead.as_str() {
        return Err(AppError::new(
            ErrorCode::Conflict,
            format!(
                "the delivery is {}; only dead deliveries are retried",
                row.state
            ),
        ));
    }
    // A fresh round of attempts, due at once.
    tx.notification_attempted(
        &row.id,
        DeliveryState::Pending.as_str(),
        0,
        Some(now),
        row.last_error.as_deref(),
        now,
    )
    .await?;
    tx.record(
        &caller
            .did(actions::NOTIFICATIONS_WRITE, &id, now)
            .with_details(json!({"retried": row.id, "event": row.event})),
    )
    .await?;
    let updated = tx.notification_delivery(&row.id).await?.unwrap_or(row);
    tx.commit().await?;
    Ok(Reply::ok(delivery_view(updated)?))
}
