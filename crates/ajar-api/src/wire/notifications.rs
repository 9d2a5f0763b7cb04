//! Notification subscriptions and deliveries.

use ajar_core::id::Scope;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The events a notification subscription can receive.
pub const NOTIFICATION_EVENTS: &[&str] = &[
    "requestCreated",
    "requestApproved",
    "requestDenied",
    "requestTimedOut",
    "accessExpiring",
    "accessExpired",
];

/// Where webhook notifications go.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookTarget {
    /// `https://` (or `http://`) URL that receives a JSON POST per notification.
    pub url: String,
    /// Key for the `X-Ajar-Signature` HMAC-SHA256; write-only (16 to 256 characters). Omit on
    /// update to keep the current one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Whether a secret is set (in answers only).
    #[serde(
        default,
        skip_deserializing,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub secret_set: bool,
}

/// Where email notifications go.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EmailTarget {
    /// Fixed recipients of every matching event.
    #[serde(default)]
    pub to: Vec<String>,
    /// Also mail the people concerned (approvers of a new request, the requester of a
    /// decision, both on expiry) whose principal is an email address.
    #[serde(default)]
    pub notify_participants: bool,
}

/// The settings of a notification subscription.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NotificationSubscriptionProperties {
    /// Events about objects at or beneath this scope are sent (within the subscription).
    #[schema(value_type = String)]
    pub scope: Scope,
    /// Which events (see [`NOTIFICATION_EVENTS`]); empty means all.
    #[serde(default)]
    pub events: Vec<String>,
    /// Deliver by webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookTarget>,
    /// Deliver by email.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailTarget>,
    /// Attempts before a notification is dead-lettered (1 to 20, default 8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
}

/// Body of `PUT /api/v1/subscriptions/{sub}/notificationSubscriptions/{name}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NotificationSubscriptionBody {
    /// The settings.
    pub properties: NotificationSubscriptionProperties,
}

/// A notification subscription.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationSubscription {
    /// Resource id.
    pub id: String,
    /// Name.
    pub name: String,
    /// The settings (the webhook secret is never returned).
    pub properties: NotificationSubscriptionProperties,
}

/// One notification's delivery.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// Delivery id: the idempotency key (`Idempotency-Key` / `X-Ajar-Delivery`).
    pub id: String,
    /// The event.
    pub event: String,
    /// `Pending`, `Delivered` or `Dead` (dead-lettered after the last attempt).
    pub state: DeliveryState,
    /// Attempts made.
    pub attempts: i64,
    /// When the next attempt is due (pending only).
    #[schema(value_type = Option<String>)]
    pub next_attempt_at: Option<Timestamp>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When it was queued.
    #[schema(value_type = String)]
    pub created_at: Timestamp,
    /// The notification.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

wire_enum! {
    /// Where a notification's delivery stands.
    DeliveryState {
        /// Waiting for its next attempt.
        Pending = "Pending",
        /// Accepted by the receiver.
        Delivered = "Delivered",
        /// Given up after the last attempt.
        Dead = "Dead",
    }
}
