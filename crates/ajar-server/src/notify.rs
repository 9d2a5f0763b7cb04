//! Notifications through a transactional outbox. A change queues its notices in its own
//! transaction ([`queue`]); a worker ([`run`], or [`deliver_due`] in tests) claims due rows,
//! delivers them by webhook or email, and retries with exponential backoff until the
//! subscription's attempt limit dead-letters them (visible in the API).
//!
//! Webhooks are signed: `X-Ajar-Signature: sha256=HEX` is HMAC-SHA256 with the subscription's
//! secret over `TIMESTAMP.BODY`, where `X-Ajar-Timestamp` is the Unix time of the attempt.
//! `Idempotency-Key` (and `X-Ajar-Delivery`) stays the same across retries of one notification.
//!
//! Webhooks reach only public addresses unless the operator allows a network ([`guard`]): the
//! URL's host is checked when a subscription is written, and again at every delivery, where the
//! client's resolver hands the connection only addresses it checked. Readers of a delivery see
//! a failure's category ("connection refused", "HTTP 500"); the details go to the log.

use crate::AppState;
use ajar_api::wire::{DeliveryState, NotificationSubscriptionProperties};
use ajar_core::net::SourcePrefix;
use ajar_store::{OutboxRow, StoreResult, SubscriptionRow, Tx};
use hmac::{Hmac, Mac};
use jiff::{SignedDuration, Timestamp};
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::json;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

pub mod guard {
    //! Which addresses webhooks may reach. Pure: no IO; the subscription routes and the
    //! delivery client's resolver ask it about every address they see.
    //!
    //! Refused unless the operator lists a network holding them: unspecified, loopback,
    //! private (`10/8`, `172.16/12`, `192.168/16`), shared (`100.64/10`), unique-local
    //! (`fc00::/7`), multicast, broadcast, documentation and other reserved ranges — none of
    //! which a public receiver uses. Link-local addresses (`169.254/16`, `fe80::/10`) and cloud
    //! metadata addresses are refused even when listed: metadata services answer there. IPv6
    //! forms that carry an IPv4 address (mapped `::ffff:0:0/96`, translated `::ffff:0:0:0/96`,
    //! compatible `::/96`, NAT64 `64:ff9b::/96` and `64:ff9b:1::/48`, 6to4 `2002::/16`) count as
    //! the address they carry (reserved when it is public, but for NAT64 `64:ff9b::/96` and
    //! 6to4, which public receivers use); Teredo `2001::/32` is reserved.

    use ajar_core::net::SourcePrefix;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    /// Why an address is not public.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Kind {
        /// `0.0.0.0/8`, `::` (a connection to it may reach the host itself).
        Unspecified,
        /// `127.0.0.0/8`, `::1`.
        Loopback,
        /// `169.254.0.0/16`, `fe80::/10`: never allowed.
        LinkLocal,
        /// A cloud metadata service outside link-local (`fd00:ec2::254`, `100.100.100.200`):
        /// never allowed.
        Metadata,
        /// `10.0.0.0/8`, `172.16.0.0/12`, `192.168.0.0/16`.
        Private,
        /// `100.64.0.0/10`, carrier-grade NAT.
        Shared,
        /// `fc00::/7`, and the deprecated site-local `fec0::/10`.
        UniqueLocal,
        /// `224.0.0.0/4`, `ff00::/8`.
        Multicast,
        /// `255.255.255.255`.
        Broadcast,
        /// `192.0.2.0/24`, `198.51.100.0/24`, `203.0.113.0/24`, `2001:db8::/32`, `3fff::/20`.
        Documentation,
        /// Other special-purpose ranges: `192.0.0.0/24`, `198.18.0.0/15`, `240.0.0.0/4`,
        /// `100::/64`, IPv4-compatible `::/96`.
        Reserved,
    }

    impl Kind {
        /// The words for it, e.g. "a loopback address".
        pub fn label(self) -> &'static str {
            match self {
                Kind::Unspecified => "an unspecified address",
                Kind::Loopback => "a loopback address",
                Kind::LinkLocal => "a link-local address",
                Kind::Metadata => "a cloud metadata address",
                Kind::Private => "a private address",
                Kind::Shared => "a shared (carrier-grade NAT) address",
                Kind::UniqueLocal => "a unique-local address",
                Kind::Multicast => "a multicast address",
                Kind::Broadcast => "a broadcast address",
                Kind::Documentation => "a documentation address",
                Kind::Reserved => "a reserved address",
            }
        }

        /// Whether no operator allowance lifts the refusal.
        pub fn never_allowed(self) -> bool {
            matches!(self, Kind::LinkLocal | Kind::Metadata)
        }
    }

    /// What `ip` is when it is not a public address; `None` for a public one.
    pub fn kind(ip: IpAddr) -> Option<Kind> {
        match ip {
            IpAddr::V4(a) => kind_v4(a),
            IpAddr::V6(a) => kind_v6(a),
        }
    }

    fn kind_v4(a: Ipv4Addr) -> Option<Kind> {
        let [b0, b1, b2, b3] = a.octets();
        let kind = match (b0, b1, b2) {
            (0, _, _) => Kind::Unspecified,
            (127, _, _) => Kind::Loopback,
            (169, 254, _) => Kind::LinkLocal,
            (100, 100, 100) if b3 == 200 => Kind::Metadata,
            // Azure's WireServer: reachable only from inside its virtual machines.
            (168, 63, 129) if b3 == 16 => Kind::Metadata,
            (10, _, _) | (172, 16..=31, _) | (192, 168, _) => Kind::Private,
            (100, 64..=127, _) => Kind::Shared,
            (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => Kind::Documentation,
            // 192.88.99.0/24 was the 6to4 relay anycast range (deprecated, RFC 7526).
            (192, 0, 0) | (192, 88, 99) | (198, 18..=19, _) => Kind::Reserved,
            (224..=239, _, _) => Kind::Multicast,
            _ if a == Ipv4Addr::BROADCAST => Kind::Broadcast,
            (240..=255, _, _) => Kind::Reserved,
            _ => return None,
        };
        Some(kind)
    }

    fn kind_v6(a: Ipv6Addr) -> Option<Kind> {
        if let Some(v4) = a.to_ipv4_mapped() {
            return kind_v4(v4);
        }
        let s = a.segments();
        let v4 = |hi: u16, lo: u16| {
            let [a, b] = hi.to_be_bytes();
            let [c, d] = lo.to_be_bytes();
            Ipv4Addr::new(a, b, c, d)
        };
        let kind = match s {
            [0, 0, 0, 0, 0, 0, 0, 0] => Kind::Unspecified,
            [0, 0, 0, 0, 0, 0, 0, 1] => Kind::Loopback,
            // IPv4-compatible (`::a.b.c.d`, deprecated): judged by the address it carries, and
            // reserved when that one is public.
            [0, 0, 0, 0, 0, 0, hi, lo] => kind_v4(v4(hi, lo)).unwrap_or(Kind::Reserved),
            [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => return kind_v4(v4(hi, lo)),
            // IPv4-translated (`::ffff:0:a.b.c.d`, RFC 2765).
            [0, 0, 0, 0, 0xffff, 0, hi, lo] => return kind_v4(v4(hi, lo)),
            // The local-use NAT64 prefix (`64:ff9b:1::/48`, RFC 8215): judged by the address in
            // its last 32 bits (the common /96 form), and reserved when that one is public.
            [0x64, 0xff9b, 1, _, _, _, hi, lo] => kind_v4(v4(hi, lo)).unwrap_or(Kind::Reserved),
            // Teredo (`2001::/32`) tunnels to addresses it hides: no receiver lives there.
            [0x2001, 0, ..] => Kind::Reserved,
            [0x2002, hi, lo, ..] => return kind_v4(v4(hi, lo)),
            [0x100, 0, 0, 0, ..] => Kind::Reserved,
            [0x2001, 0xdb8, ..] => Kind::Documentation,
            [0x3fff, b, ..] if b < 0x1000 => Kind::Documentation,
            [0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254] => Kind::Metadata,
            [b, ..] if b & 0xffc0 == 0xfe80 => Kind::LinkLocal,
            [b, ..] if b & 0xffc0 == 0xfec0 || b & 0xfe00 == 0xfc00 => Kind::UniqueLocal,
            [b, ..] if b & 0xff00 == 0xff00 => Kind::Multicast,
            _ => return None,
        };
        Some(kind)
    }

    /// An address webhooks may not reach, and why.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
    #[error("{addr}, {}", kind.label())]
    pub struct Refusal {
        /// The address.
        pub addr: IpAddr,
        /// What it is.
        pub kind: Kind,
    }

    impl Refusal {
        /// What the operator can do about it, for messages.
        pub fn advice(&self) -> &'static str {
            if self.kind.never_allowed() {
                "ajar never delivers webhooks to link-local or cloud metadata addresses"
            } else {
                "ajar delivers only to public addresses unless the operator allows the network \
                 (--webhook-allow-network)"
            }
        }
    }

    /// Parses one network an operator allows (`10.0.0.0/8`, `192.0.2.10/32`, a bare address).
    /// `*` is refused (`0.0.0.0/0` and `::/0` say the same on purpose), and so is a network
    /// inside link-local addresses, which stay refused anyway.
    pub fn parse_network(s: &str) -> Result<SourcePrefix, String> {
        let net = match SourcePrefix::parse(s) {
            Ok(SourcePrefix::Any) => {
                return Err(format!(
                    "{s:?} is not a network; write 0.0.0.0/0 or ::/0 to allow every address"
                ));
            }
            Ok(net) => net,
            Err(_) => {
                return Err(format!(
                    "{s:?} is not a network in CIDR form (e.g. 10.0.0.0/8 or 192.0.2.10/32)"
                ));
            }
        };
        let inside = |outer: &str| SourcePrefix::parse(outer).is_ok_and(|o| o.contains(&net));
        if inside("169.254.0.0/16") || inside("fe80::/10") {
            return Err(format!(
                "{s} lies in link-local addresses, where cloud metadata services answer; ajar \
                 never delivers webhooks there"
            ));
        }
        Ok(net)
    }

    /// The webhook destination policy: public addresses, plus the networks the operator
    /// allows (except link-local and metadata addresses).
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub struct WebhookPolicy {
        allowed: Vec<SourcePrefix>,
    }

    impl WebhookPolicy {
        /// Public addresses plus `allowed`.
        pub fn new(allowed: Vec<SourcePrefix>) -> Self {
            Self { allowed }
        }

        /// The networks the operator allows.
        pub fn allowed(&self) -> &[SourcePrefix] {
            &self.allowed
        }

        /// Whether a webhook may be delivered to every one of `ips` (a host's addresses):
        /// the first refused, if any.
        pub fn check_all(&self, ips: impl IntoIterator<Item = IpAddr>) -> Result<(), Refusal> {
            ips.into_iter().try_for_each(|ip| self.check(ip))
        }

        /// Whether a webhook may be delivered to `ip`.
        pub fn check(&self, ip: IpAddr) -> Result<(), Refusal> {
            let Some(kind) = kind(ip) else {
                return Ok(());
            };
            let one = SourcePrefix::address(ip);
            if !kind.never_allowed() && self.allowed.iter().any(|n| n.contains(&one)) {
                return Ok(());
            }
            Err(Refusal { addr: ip, kind })
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn ip(s: &str) -> IpAddr {
            s.parse().unwrap()
        }

        fn kind_of(s: &str) -> Option<Kind> {
            kind(ip(s))
        }

        #[test]
        fn addresses_are_told_apart() {
            use Kind::*;
            for (addr, want) in [
                ("8.8.8.8", None),
                ("1.1.1.1", None),
                ("172.32.0.1", None),
                ("100.128.0.1", None),
                ("2606:4700::1111", None),
                ("0.0.0.0", Some(Unspecified)),
                ("0.1.2.3", Some(Unspecified)),
                ("::", Some(Unspecified)),
                ("127.0.0.1", Some(Loopback)),
                ("127.255.255.254", Some(Loopback)),
                ("::1", Some(Loopback)),
                ("169.254.169.254", Some(LinkLocal)),
                ("fe80::1", Some(LinkLocal)),
                ("febf::1", Some(LinkLocal)),
                ("fd00:ec2::254", Some(Metadata)),
                ("100.100.100.200", Some(Metadata)),
                ("168.63.129.16", Some(Metadata)),
                ("192.88.99.1", Some(Reserved)),
                ("::ffff:0:7f00:1", Some(Loopback)),
                ("64:ff9b:1::a9fe:a9fe", Some(LinkLocal)),
                ("64:ff9b:1::808:808", Some(Reserved)),
                ("::a9fe:a9fe", Some(LinkLocal)),
                ("::808:808", Some(Reserved)),
                ("2001:0:4136:e378:8000:63bf:3fff:fdd2", Some(Reserved)),
                ("10.1.2.3", Some(Private)),
                ("172.16.0.1", Some(Private)),
                ("172.31.255.255", Some(Private)),
                ("192.168.1.1", Some(Private)),
                ("100.64.0.1", Some(Shared)),
                ("100.127.255.255", Some(Shared)),
                ("fc00::1", Some(UniqueLocal)),
                ("fd12:3456::1", Some(UniqueLocal)),
                ("fec0::1", Some(UniqueLocal)),
                ("224.0.0.1", Some(Multicast)),
                ("ff02::1", Some(Multicast)),
                ("255.255.255.255", Some(Broadcast)),
                ("192.0.2.1", Some(Documentation)),
                ("198.51.100.1", Some(Documentation)),
                ("203.0.113.1", Some(Documentation)),
                ("2001:db8::1", Some(Documentation)),
                ("3fff::1", Some(Documentation)),
                ("198.18.0.1", Some(Reserved)),
                ("240.0.0.1", Some(Reserved)),
                ("100::1", Some(Reserved)),
                ("::7f00:1", Some(Loopback)),
            ] {
                assert_eq!(kind_of(addr), want, "{addr}");
            }
        }

        #[test]
        fn ipv6_forms_of_ipv4_addresses_count_as_what_they_carry() {
            assert_eq!(kind_of("::ffff:127.0.0.1"), Some(Kind::Loopback));
            assert_eq!(kind_of("::ffff:169.254.169.254"), Some(Kind::LinkLocal));
            assert_eq!(kind_of("::ffff:10.0.0.1"), Some(Kind::Private));
            assert_eq!(kind_of("::ffff:8.8.8.8"), None);
            assert_eq!(kind_of("64:ff9b::a9fe:a9fe"), Some(Kind::LinkLocal));
            assert_eq!(kind_of("64:ff9b::808:808"), None);
            assert_eq!(kind_of("2002:7f00:1::"), Some(Kind::Loopback));
            assert_eq!(kind_of("2002:808:808::1"), None);
        }

        #[test]
        fn listed_networks_are_allowed_except_link_local_and_metadata() {
            let strict = WebhookPolicy::default();
            assert!(strict.check(ip("93.184.215.14")).is_ok());
            let refused = strict.check(ip("127.0.0.1")).unwrap_err();
            assert_eq!(refused.to_string(), "127.0.0.1, a loopback address");
            assert!(refused.advice().contains("--webhook-allow-network"));

            let nets = ["127.0.0.1/32", "10.0.0.0/8"].map(|n| parse_network(n).unwrap());
            let local = WebhookPolicy::new(nets.to_vec());
            assert!(local.check(ip("127.0.0.1")).is_ok());
            assert!(local.check(ip("::ffff:127.0.0.1")).is_ok(), "mapped form");
            assert!(local.check(ip("10.9.8.7")).is_ok());
            assert!(local.check(ip("127.0.0.2")).is_err());
            assert!(local.check(ip("::1")).is_err());
            assert!(local.check(ip("192.168.0.1")).is_err());

            let all = ["0.0.0.0/0", "::/0"].map(|n| parse_network(n).unwrap());
            let open = WebhookPolicy::new(all.to_vec());
            assert!(open.check(ip("192.168.0.1")).is_ok());
            assert!(open.check(ip("fd12::1")).is_ok());
            for never in [
                "169.254.169.254",
                "::ffff:169.254.169.254",
                "fe80::1",
                "fd00:ec2::254",
                "100.100.100.200",
            ] {
                let r = open.check(ip(never)).unwrap_err();
                assert!(r.kind.never_allowed(), "{never}");
                assert!(r.advice().contains("never"), "{never}");
            }
        }

        #[test]
        fn allowed_networks_parse_strictly() {
            assert_eq!(
                parse_network("192.0.2.10").unwrap(),
                parse_network("192.0.2.10/32").unwrap()
            );
            assert!(parse_network("fd00::/8").is_ok());
            for bad in ["*", "10.0.0.1/8", "10.0.0.0/33", "nope", ""] {
                assert!(parse_network(bad).is_err(), "{bad:?}");
            }
            for link_local in ["169.254.169.254/32", "169.254.0.0/16", "fe80::/64"] {
                let e = parse_network(link_local).unwrap_err();
                assert!(e.contains("link-local"), "{e}");
            }
            // A wider network may hold link-local addresses; they stay refused by `check`.
            assert!(parse_network("169.0.0.0/8").is_ok());
        }
    }
}

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
    let subs = tx.notification_subscriptions().await?;
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
    /// `Err` when the TLS stack could not start: webhooks then fail.
    http: Result<reqwest::Client, String>,
    /// Where webhooks may go; the client's resolver holds the same policy.
    policy: Arc<guard::WebhookPolicy>,
    mail: Option<(AsyncSmtpTransport<Tokio1Executor>, Mailbox)>,
    /// The wait before the second attempt; each later one doubles it (at most an hour).
    pub retry_base: SignedDuration,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("email", &self.mail.is_some())
            .field("webhook_allowed_networks", &self.policy.allowed())
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
    /// Webhooks to public addresses only (email notifications fail until SMTP is configured).
    pub fn new() -> Self {
        let policy = Arc::new(guard::WebhookPolicy::default());
        Self {
            http: webhook_client(policy.clone()),
            policy,
            mail: None,
            retry_base: SignedDuration::from_secs(5),
        }
    }

    /// Also delivers webhooks to addresses in `networks` (e.g. a relay on a private network or
    /// loopback: the operator's choice); link-local and metadata addresses stay refused.
    pub fn with_webhook_networks(mut self, networks: Vec<SourcePrefix>) -> Self {
        self.policy = Arc::new(guard::WebhookPolicy::new(networks));
        self.http = webhook_client(self.policy.clone());
        self
    }

    /// Checks a webhook URL's host when a subscription is written: an address in the URL, or
    /// every address its name resolves to now. A name that does not resolve (yet) passes:
    /// every delivery checks again.
    pub async fn check_webhook_url(&self, url: &reqwest::Url) -> Result<(), String> {
        let Some(host) = url.host_str() else {
            return Ok(());
        };
        if let Some(ip) = literal_ip(url) {
            return self
                .policy
                .check(ip)
                .map_err(|r| format!("the webhook address is {r}; {}", r.advice()));
        }
        let port = url.port_or_known_default().unwrap_or(443);
        let lookup =
            tokio::time::timeout(DELIVERY_TIMEOUT, tokio::net::lookup_host((host, port))).await;
        let Ok(Ok(addrs)) = lookup else {
            return Ok(());
        };
        self.policy
            .check_all(addrs.map(|a| a.ip()))
            .map_err(|r| format!("the webhook host {host} resolves to {r}; {}", r.advice()))
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

/// The client that delivers webhooks: no redirects, no proxy (the proxy, not ajar, would pick
/// the address), and a resolver that checks every address against `policy`.
fn webhook_client(policy: Arc<guard::WebhookPolicy>) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(DELIVERY_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(GuardedResolver { policy })
        .user_agent(concat!("ajar/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| {
            tracing::error!(error = %e, "webhook client unavailable");
            "the webhook client is unavailable".to_owned()
        })
}

/// The address a URL names directly (`http://10.0.0.1/`, `http://[::1]/`): it is never
/// resolved, so the resolver never sees it.
fn literal_ip(url: &reqwest::Url) -> Option<IpAddr> {
    url.host_str()?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// Why the webhook resolver answered no addresses.
#[derive(Debug, thiserror::Error)]
enum ResolveError {
    /// The name resolves to an address webhooks may not reach.
    #[error("{host} resolves to {refusal}")]
    Refused {
        host: String,
        refusal: guard::Refusal,
    },
    /// The name does not resolve.
    #[error("cannot resolve {host}")]
    NotFound {
        host: String,
        source: std::io::Error,
    },
}

/// Resolves webhook hosts and answers their addresses only when every one passes the policy,
/// so the connection goes to an address that was checked (no second lookup in between).
struct GuardedResolver {
    policy: Arc<guard::WebhookPolicy>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|source| ResolveError::NotFound {
                    host: host.clone(),
                    source,
                })?
                .collect();
            policy
                .check_all(addrs.iter().map(SocketAddr::ip))
                .map_err(|refusal| ResolveError::Refused {
                    host: host.clone(),
                    refusal,
                })?;
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// What a failed webhook call tells the subscription's readers: a category, never the
/// connection's details (addresses, ports, system messages).
fn webhook_failure(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        return "timed out";
    }
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if let Some(r) = err.downcast_ref::<ResolveError>() {
            return match r {
                ResolveError::Refused { .. } => "address not allowed",
                ResolveError::NotFound { .. } => "host not found",
            };
        }
        if err.downcast_ref::<rustls::Error>().is_some() {
            return "TLS error";
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => return "connection refused",
                std::io::ErrorKind::TimedOut => return "timed out",
                _ => {}
            }
            // An I/O error's `source` skips the error it wraps (a TLS error, another I/O error).
            if let Some(inner) = io.get_ref() {
                next = Some(inner);
                continue;
            }
        }
        next = err.source();
    }
    "connection failed"
}

/// An error and its causes, for the log.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(err) = next {
        text.push_str(": ");
        text.push_str(&err.to_string());
        next = err.source();
    }
    text
}

/// The signature header value for `body` sent at `timestamp` (Unix seconds).
pub fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
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
                Err(e) => {
                    tracing::error!(subscription = %sub.id, error = %e, "stored subscription unreadable");
                    (
                        Err("stored subscription unreadable".to_owned()),
                        1,
                        "unknown",
                    )
                }
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
            tx.notification_attempted(
                &row.id,
                DeliveryState::Dead.as_str(),
                attempts,
                None,
                Some(e),
                now,
            )
            .await?;
        }
        Err(e) => {
            let next = now
                .saturating_add(state.notifier.backoff(attempts))
                .unwrap_or(now);
            tracing::info!(delivery = %row.id, error = %e, attempts, "notification failed; will retry");
            tx.notification_attempted(
                &row.id,
                DeliveryState::Pending.as_str(),
                attempts,
                Some(next),
                Some(e),
                now,
            )
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
    // A name is checked by the client's resolver; an address in the URL, here.
    if let Some(ip) = reqwest::Url::parse(&hook.url)
        .ok()
        .as_ref()
        .and_then(literal_ip)
        && let Err(refusal) = state.notifier.policy.check(ip)
    {
        tracing::warn!(delivery = %row.id, subscription = %sub.id, address = %refusal,
            "webhook not delivered: the address is not allowed");
        return Err("address not allowed".to_owned());
    }
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
        Ok(resp) => Err(format!("HTTP {}", resp.status().as_u16())),
        Err(e) => {
            // Without the URL: it may carry a token in its query.
            let e = e.without_url();
            tracing::warn!(delivery = %row.id, subscription = %sub.id, error = %chain(&e),
                "webhook delivery failed");
            Err(webhook_failure(&e).to_owned())
        }
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
    transport.send(message).await.map(|_| ()).map_err(|e| {
        tracing::warn!(delivery = %row.id, error = %chain(&e), "email delivery failed");
        // The server's reply code, or a category: the SMTP server's address stays in the log.
        match e.status() {
            Some(code) => format!("SMTP {code}"),
            None if e.is_timeout() => "SMTP timed out".to_owned(),
            None if e.is_tls() => "SMTP TLS error".to_owned(),
            None => "SMTP connection failed".to_owned(),
        }
    })
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
        let want = hex::encode(mac.finalize().into_bytes());
        assert_eq!(sig, format!("sha256={want}"));
        assert_ne!(sig, signature("Jefe", 1, "what do ya want for nothing?"));
        // And the primitive itself matches the RFC.
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        let rfc = hex::encode(mac.finalize().into_bytes());
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
