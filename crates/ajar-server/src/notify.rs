//! Notifications through a transactional outbox. A change queues its notices in its own
//! transaction ([`queue`]); a worker ([`run`], or [`deliver_due`] in tests) claims due rows,
//! delivers them by webhook or email, and retries with exponential backoff until the
//! subscription's attempt limit dead-letters them (visible in the API).
//!
//! Webhooks are signed: `X-Ajar-Signature: sha256=HEX` is HMAC-SHA256 with the subscription's
//! secret over `TIMESTAMP.BODY`, where `X-Ajar-Timestamp` is the Unix time of the attempt.
//! `Idempotency-Key` (and `X-Ajar-Delivery`) stays the same across retries of one notification.

use crate::AppState;
use ajar_api::wire::NotificationSubscriptionProperties;
use ajar_store::{OutboxRow, StoreResult, SubscriptionRow, Tx};
use hmac::{Hmac, Mac};
use jiff::{SignedDuration, Timestamp};
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::json;
use std::time::Duration;
use tokio::sync::watch;

/// What a notification tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeEvent {
    /// A request was made (approvers).
    RequestCreated,
    /// A request was approved (requester).
    RequestApproved,
    /// A request was denied (requester).
    RequestDenied,
    /// Nobody decided in time (requester).
    RequestTimedOut,
    /// Access ends in 15 minutes (both).
    AccessExpiring,
    /// Access ended (both).
    AccessExpired,
}

impl NoticeEvent {
    /// The wire name (see `ajar_api::wire::NOTIFICATION_EVENTS`).
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeEvent::RequestCreated => "requestCreated",
            NoticeEvent::RequestApproved => "requestApproved",
            NoticeEvent::RequestDenied => "requestDenied",
            NoticeEvent::RequestTimedOut => "requestTimedOut",
            NoticeEvent::AccessExpiring => "accessExpiring",
            NoticeEvent::AccessExpired => "accessExpired",
        }
    }

    /// Who it is for: approvers, the requester, or both.
    fn audience(self) -> &'static [&'static str] {
        match self {
            NoticeEvent::RequestCreated => &["approvers"],
            NoticeEvent::RequestApproved
            | NoticeEvent::RequestDenied
            | NoticeEvent::RequestTimedOut => &["requester"],
            NoticeEvent::AccessExpiring | NoticeEvent::AccessExpired => &["approvers", "requester"],
        }
    }

    fn subject(self, requester: &str) -> String {
        match self {
            NoticeEvent::RequestCreated => format!("Access request by {requester}"),
            NoticeEvent::RequestApproved => "Your access request was approved".to_owned(),
            NoticeEvent::RequestDenied => "Your access request was denied".to_owned(),
            NoticeEvent::RequestTimedOut => "Your access request timed out".to_owned(),
            NoticeEvent::AccessExpiring => format!("Access of {requester} ends in 15 minutes"),
            NoticeEvent::AccessExpired => format!("Access of {requester} has ended"),
        }
    }
}

/// One thing to tell subscribers about.
#[derive(Debug, Clone)]
pub struct Notice {
    /// What happened.
    pub event: NoticeEvent,
    /// The request's resource id (an approval-gated or role request), or its policy.
    pub resource_id: String,
    /// The access request.
    pub request_id: String,
    /// `network` or `role`.
    pub kind: &'static str,
    /// Who asked.
    pub requester: String,
    /// Who may decide (principals or `group:NAME`).
    pub approvers: Vec<String>,
    /// Why they asked.
    pub justification: Option<String>,
    /// The granted window, when there is one.
    pub window: Option<(Timestamp, Timestamp)>,
    /// When it happened.
    pub at: Timestamp,
}

impl Notice {
    /// A notice about an automatic network request: under its policy, no approvers, the
    /// window from its creation to `end`.
    pub fn network(
        event: NoticeEvent,
        r: &ajar_store::RequestRow,
        end: Option<Timestamp>,
        at: Timestamp,
    ) -> Notice {
        Notice {
            event,
            resource_id: r.policy_id.clone(),
            request_id: r.id.clone(),
            kind: "network",
            requester: r.requestor.clone(),
            approvers: Vec::new(),
            justification: r.justification.clone(),
            window: end.map(|e| (r.created_at, e)),
            at,
        }
    }
}

/// Whether a subscription wants `event` about `resource_id`.
fn wants(sub: &SubscriptionRow, props: &NotificationSubscriptionProperties, n: &Notice) -> bool {
    let scope = props.scope.to_string();
    let under = n.resource_id == scope || n.resource_id.starts_with(&format!("{scope}/"));
    // A subscription never reaches outside its own ajar subscription.
    let own = sub
        .id
        .split("/notificationSubscriptions/")
        .next()
        .is_some_and(|s| n.resource_id.starts_with(&format!("{s}/")));
    let event = props.events.is_empty() || props.events.iter().any(|e| e == n.event.as_str());
    under && own && event
}

/// Queues `notices` for every subscription that wants them, inside `tx` (the change's own
/// transaction), so a notice exists if and only if its change was committed.
pub async fn queue(tx: &mut Tx, notices: &[Notice]) -> StoreResult<()> {
    if notices.is_empty() {
        return Ok(());
    }
    let subs = tx.notification_subscriptions(None).await?;
    if subs.is_empty() {
        return Ok(());
    }
    for sub in &subs {
        let Ok(props) = serde_json::from_str::<NotificationSubscriptionProperties>(&sub.properties)
        else {
            tracing::error!(subscription = %sub.id, "stored subscription unreadable; skipped");
            continue;
        };
        for n in notices.iter().filter(|n| wants(sub, &props, n)) {
            let id = uuid::Uuid::new_v4().to_string();
            let payload = json!({
                "deliveryId": id,
                "event": n.event.as_str(),
                "occurredAt": n.at.to_string(),
                "resourceId": n.resource_id,
                "requestId": n.request_id,
                "kind": n.kind,
                "requester": n.requester,
                "approvers": n.approvers,
                "audience": n.event.audience(),
                "justification": n.justification,
                "window": n.window.map(|(s, e)| json!({"start": s.to_string(), "end": e.to_string()})),
            });
            tx.queue_notification(&id, &sub.id, n.event.as_str(), &payload.to_string(), n.at)
                .await?;
        }
    }
    Ok(())
}

/// How a claimed notification is held before another attempt may take it (a crash during
/// delivery retries after this).
const LEASE: SignedDuration = SignedDuration::from_secs(120);
/// Default attempts before dead-lettering.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 8;
/// Longest wait between attempts.
const MAX_BACKOFF: SignedDuration = SignedDuration::from_hours(1);
/// Timeout of one webhook or SMTP exchange.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// SMTP settings for email notifications.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpSettings {
    /// `smtp://host:port` (STARTTLS when offered), `smtp://host?tls=required`, or
    /// `smtps://host` (implicit TLS); credentials as `user:password@`.
    pub url: String,
    /// The sender address.
    pub from: String,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry the SMTP password.
        f.debug_struct("SmtpSettings")
            .field("url", &"<redacted>")
            .field("from", &self.from)
            .finish()
    }
}

/// Delivers notifications: an HTTP client for webhooks and, when configured, an SMTP transport.
#[derive(Clone)]
pub struct Notifier {
    /// `Err` when the TLS stack could not start: webhooks then fail with the reason.
    http: Result<reqwest::Client, String>,
    mail: Option<(AsyncSmtpTransport<Tokio1Executor>, Mailbox)>,
    /// The wait before the second attempt; each later one doubles it (at most an hour).
    pub retry_base: SignedDuration,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("email", &self.mail.is_some())
            .field("retry_base", &self.retry_base)
            .finish()
    }
}

impl Default for Notifier {
    fn default() -> Self {
        Self::new()
    }
}

impl Notifier {
    /// Webhooks only (email notifications fail until SMTP is configured).
    pub fn new() -> Self {
        let http = reqwest::Client::builder()
            .timeout(DELIVERY_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("ajar/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                tracing::error!(error = %e, "webhook client unavailable");
                format!("the webhook client is unavailable: {e}")
            });
        Self {
            http,
            mail: None,
            retry_base: SignedDuration::from_secs(5),
        }
    }

    /// Adds email delivery through `smtp`.
    pub fn with_smtp(mut self, smtp: &SmtpSettings) -> Result<Self, String> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&smtp.url)
            .map_err(|e| format!("--smtp-url is not valid: {e}"))?
            .timeout(Some(DELIVERY_TIMEOUT))
            .build();
        let from: Mailbox = smtp
            .from
            .parse()
            .map_err(|e| format!("--smtp-from is not a valid address: {e}"))?;
        self.mail = Some((transport, from));
        Ok(self)
    }

    /// The wait after `attempts` failed attempts.
    fn backoff(&self, attempts: i64) -> SignedDuration {
        let factor = 1i32 << attempts.clamp(1, 20).saturating_sub(1);
        self.retry_base
            .checked_mul(factor)
            .unwrap_or(MAX_BACKOFF)
            .min(MAX_BACKOFF)
    }
}

/// The signature header value for `body` sent at `timestamp` (Unix seconds).
pub fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!("sha256={}", crate::auth::hex(&mac.finalize().into_bytes()))
}

/// Delivers every notification due now, one claimed batch at a time. Returns how many
/// attempts were made.
pub async fn deliver_due(state: &AppState) -> StoreResult<usize> {
    let mut attempts = 0;
    loop {
        let now = state.clock.now();
        // Look before taking the writer: most passes find nothing due.
        let mut read = state.store.read().await?;
        let due = read.next_notification_due().await?;
        drop(read);
        if due.is_none_or(|d| d > now) {
            return Ok(attempts);
        }
        let mut tx = state.store.write().await?;
        let claimed = tx
            .claim_notifications(now, now.saturating_add(LEASE).unwrap_or(now), 32)
            .await?;
        tx.commit_unrecorded().await?;
        if claimed.is_empty() {
            return Ok(attempts);
        }
        for row in claimed {
            attempt(state, row).await?;
            attempts += 1;
        }
    }
}

async fn attempt(state: &AppState, row: OutboxRow) -> StoreResult<()> {
    let mut read = state.store.read().await?;
    let sub = read.notification_subscription(&row.subscription_id).await?;
    drop(read);
    let (result, max, channel) = match sub {
        None => (Err("the subscription was deleted".to_owned()), 1, "unknown"),
        Some(sub) => {
            match serde_json::from_str::<NotificationSubscriptionProperties>(&sub.properties) {
                Err(e) => (
                    Err(format!("stored subscription unreadable: {e}")),
                    1,
                    "unknown",
                ),
                Ok(props) => {
                    let max = i64::from(props.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS));
                    if props.webhook.is_some() {
                        (
                            send_webhook(state, &sub, &props, &row).await,
                            max,
                            "webhook",
                        )
                    } else {
                        (send_email(state, &props, &row).await, max, "email")
                    }
                }
            }
        }
    };
    let now = state.clock.now();
    let attempts = row.attempts + 1;
    let mut tx = state.store.write().await?;
    match &result {
        Ok(()) => {
            tx.notification_attempted(&row.id, "Delivered", attempts, None, None, now)
                .await?;
        }
        Err(e) if attempts >= max => {
            tracing::warn!(delivery = %row.id, subscription = %row.subscription_id, error = %e,
                attempts, "notification dead-lettered");
            tx.notification_attempted(&row.id, "Dead", attempts, None, Some(e), now)
                .await?;
        }
        Err(e) => {
            let next = now
                .saturating_add(state.notifier.backoff(attempts))
                .unwrap_or(now);
            tracing::info!(delivery = %row.id, error = %e, attempts, "notification failed; will retry");
            tx.notification_attempted(&row.id, "Pending", attempts, Some(next), Some(e), now)
                .await?;
        }
    }
    tx.commit_unrecorded().await?;
    state.metrics.notification(channel, result.is_ok());
    Ok(())
}

async fn send_webhook(
    state: &AppState,
    sub: &SubscriptionRow,
    props: &NotificationSubscriptionProperties,
    row: &OutboxRow,
) -> Result<(), String> {
    let Some(hook) = &props.webhook else {
        return Err("no webhook".to_owned());
    };
    let timestamp = state.clock.now().as_second();
    let http = state.notifier.http.as_ref().map_err(Clone::clone)?;
    let mut req = http
        .post(&hook.url)
        .header("content-type", "application/json")
        .header("x-ajar-event", &row.event)
        .header("x-ajar-delivery", &row.id)
        .header("idempotency-key", &row.id)
        .header("x-ajar-timestamp", timestamp.to_string())
        .body(row.payload.clone());
    if let Some(secret) = &sub.secret {
        req = req.header(
            "x-ajar-signature",
            signature(secret, timestamp, &row.payload),
        );
    }
    match req.send().await {
        Ok(resp) if resp.status().is_success() => Ok(()),
        Ok(resp) => Err(format!("the receiver answered {}", resp.status().as_u16())),
        // Without the URL: it may carry a token in its query.
        Err(e) => Err(format!("cannot reach the receiver: {}", e.without_url())),
    }
}

async fn send_email(
    state: &AppState,
    props: &NotificationSubscriptionProperties,
    row: &OutboxRow,
) -> Result<(), String> {
    let Some((transport, from)) = &state.notifier.mail else {
        return Err("email is not configured on this server (--smtp-url)".to_owned());
    };
    let Some(target) = &props.email else {
        return Err("no email target".to_owned());
    };
    let payload: serde_json::Value =
        serde_json::from_str(&row.payload).map_err(|e| format!("unreadable payload: {e}"))?;
    let mut to: Vec<String> = target.to.clone();
    if target.notify_participants {
        to.extend(participants(&payload));
    }
    to.sort();
    to.dedup();
    if to.is_empty() {
        // Nobody to tell (e.g. participants without email addresses): nothing to retry.
        return Ok(());
    }
    let (subject, plain, html) = render_email(&payload);
    let mut builder = Message::builder()
        .from(from.clone())
        .subject(subject)
        .message_id(Some(format!("<{}@ajar>", row.id)));
    for addr in &to {
        let mailbox: Mailbox = addr
            .parse()
            .map_err(|e| format!("{addr} is not a valid address: {e}"))?;
        builder = builder.to(mailbox);
    }
    let message = builder
        .multipart(MultiPart::alternative_plain_html(plain, html))
        .map_err(|e| format!("cannot build the message: {e}"))?;
    transport
        .send(message)
        .await
        .map(|_| ())
        .map_err(|e| format!("SMTP: {e}"))
}

/// The people a notice concerns whose principals are email addresses.
fn participants(payload: &serde_json::Value) -> Vec<String> {
    let audience: Vec<&str> = payload["audience"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    let mut out = Vec::new();
    if audience.contains(&"requester")
        && let Some(r) = payload["requester"].as_str()
    {
        out.push(r.to_owned());
    }
    if audience.contains(&"approvers")
        && let Some(list) = payload["approvers"].as_array()
    {
        out.extend(list.iter().filter_map(|v| v.as_str()).map(str::to_owned));
    }
    out.retain(|p| p.contains('@') && !p.starts_with("group:"));
    out
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Subject, plain text and HTML of a notification email.
fn render_email(payload: &serde_json::Value) -> (String, String, String) {
    let field = |k: &str| payload[k].as_str().unwrap_or("").to_owned();
    let event = payload["event"].as_str().unwrap_or("");
    let requester = field("requester");
    let subject = [
        NoticeEvent::RequestCreated,
        NoticeEvent::RequestApproved,
        NoticeEvent::RequestDenied,
        NoticeEvent::RequestTimedOut,
        NoticeEvent::AccessExpiring,
        NoticeEvent::AccessExpired,
    ]
    .into_iter()
    .find(|e| e.as_str() == event)
    .map(|e| e.subject(&requester))
    .unwrap_or_else(|| format!("ajar: {event}"));
    let mut lines = vec![
        ("Event", event.to_owned()),
        ("Requester", requester),
        ("Request", field("requestId")),
        ("Resource", field("resourceId")),
        ("Kind", field("kind")),
        ("When", field("occurredAt")),
    ];
    if let Some(j) = payload["justification"].as_str() {
        lines.push(("Justification", j.to_owned()));
    }
    if let Some(w) = payload["window"].as_object() {
        let get = |k: &str| w.get(k).and_then(|v| v.as_str()).unwrap_or("").to_owned();
        lines.push(("Window", format!("{} to {}", get("start"), get("end"))));
    }
    let plain = std::iter::once(format!("{subject}\n"))
        .chain(lines.iter().map(|(k, v)| format!("{k}: {v}")))
        .collect::<Vec<_>>()
        .join("\n");
    let rows: String = lines
        .iter()
        .map(|(k, v)| {
            format!(
                "<tr><th align=\"left\">{k}</th><td>{}</td></tr>",
                escape_html(v)
            )
        })
        .collect();
    let html = format!(
        "<!DOCTYPE html><html><body><h2>{}</h2><table>{rows}</table></body></html>",
        escape_html(&subject)
    );
    (format!("[ajar] {subject}"), plain, html)
}

/// Delivers notifications until `stop` turns true: whenever one is due, at least every second.
pub async fn run(state: AppState, mut stop: watch::Receiver<bool>) {
    loop {
        if let Err(e) = deliver_due(&state).await {
            tracing::warn!(error = %e, "notification delivery pass failed; retrying");
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hmac_sha256_over_timestamp_and_body() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let sig = signature("Jefe", 0, "what do ya want for nothing?");
        // The signed text is "0.what do ya want …", so compare with a direct computation.
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"0.what do ya want for nothing?");
        let want: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(sig, format!("sha256={want}"));
        assert_ne!(sig, signature("Jefe", 1, "what do ya want for nothing?"));
        // And the primitive itself matches the RFC.
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        let rfc: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            rfc,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        let n = Notifier::new();
        let secs: Vec<i64> = (1..=4).map(|a| n.backoff(a).as_secs()).collect();
        assert_eq!(secs, vec![5, 10, 20, 40]);
        assert_eq!(n.backoff(40), MAX_BACKOFF);
    }

    #[test]
    fn emails_escape_html_and_reach_only_email_participants() {
        let payload = json!({
            "event": "requestCreated", "requester": "alice@example.com",
            "approvers": ["bob@example.com", "group:ops", "carol"],
            "audience": ["approvers"], "justification": "<script>x</script> & co",
        });
        assert_eq!(participants(&payload), vec!["bob@example.com"]);
        let (subject, plain, html) = render_email(&payload);
        assert_eq!(subject, "[ajar] Access request by alice@example.com");
        assert!(plain.contains("<script>x</script> & co"));
        assert!(html.contains("&lt;script&gt;x&lt;/script&gt; &amp; co"));
        assert!(!html.contains("<script>"));
    }
}
