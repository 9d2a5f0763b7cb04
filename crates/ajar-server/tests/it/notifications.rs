//! Notifications: a real HTTP receiver (failing on purpose) for webhooks and a real SMTP
//! listener for email, both started by the tests. The receivers listen on loopback, which
//! webhooks reach only when the operator allows it, so these servers allow `127.0.0.1/32`.

use crate::*;
use ajar_api::wire::{
    AccessRequest, ActivityRecord, Delivery, DeliveryState, List, NotificationSubscription,
};
use ajar_server::notify::guard::parse_network;
use ajar_server::notify::{Notifier, SmtpSettings, deliver_due};
use ajar_testkit::TestApp;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use jiff::SignedDuration;
use reqwest::Method;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const SECRET: &str = "correct-horse-battery-staple";

/// One webhook call as the receiver saw it.
#[derive(Debug, Clone)]
struct Hit {
    headers: HeaderMap,
    body: String,
}

/// An HTTP receiver that answers 500 to its first `failures` calls, then 204.
#[derive(Clone)]
struct Receiver {
    url: String,
    hits: Arc<Mutex<Vec<Hit>>>,
}

impl Receiver {
    async fn start(failures: usize) -> Self {
        let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
        let seen = hits.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let seen = seen.clone();
                async move {
                    let mut hits = seen.lock().unwrap();
                    hits.push(Hit { headers, body });
                    if hits.len() <= failures {
                        StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        StatusCode::NO_CONTENT
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, hits }
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }
}

/// A server that delivers webhooks to `networks` besides public addresses.
async fn allowing(networks: &[&str]) -> TestApp {
    let networks = networks.iter().map(|n| parse_network(n).unwrap()).collect();
    TestApp::spawn_with(move |s| s.with_notifier(Notifier::new().with_webhook_networks(networks)))
        .await
}

/// A server whose webhooks may reach the test receivers on `127.0.0.1`.
async fn with_local_receivers() -> TestApp {
    allowing(&["127.0.0.1/32"]).await
}

/// Waits (briefly, polling) until `cond` holds; delivery runs on other tasks.
async fn until(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    for _ in 0..500 {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting until {what}");
}

async fn subscribe(app: &TestApp, name: &str, properties: Value) -> RawResponse {
    call(
        &app.admin,
        Method::PUT,
        &format!("/api/v1{SUB}/notificationSubscriptions/{name}"),
        Some(json!({ "properties": properties })),
    )
    .await
}

async fn deliveries(app: &TestApp, name: &str, query: &str) -> Vec<Delivery> {
    get_as::<List<Delivery>>(
        &app.admin,
        &format!("/api/v1{SUB}/notificationSubscriptions/{name}/deliveries{query}"),
    )
    .await
    .value
}

/// Runs delivery passes until the subscription's only delivery has made `attempts` attempts.
async fn attempts_reach(app: &TestApp, name: &str, attempts: i64) -> Delivery {
    let mut last = None;
    until(&format!("{attempts} attempts"), async || {
        deliver_due(&app.state).await.unwrap();
        last = deliveries(app, name, "").await.into_iter().next();
        last.as_ref().is_some_and(|d| d.attempts == attempts)
    })
    .await;
    last.unwrap()
}

/// The subscriptions stored in `SUB`.
async fn subscriptions(app: &TestApp) -> Vec<NotificationSubscription> {
    get_as::<List<NotificationSubscription>>(
        &app.admin,
        &format!("/api/v1{SUB}/notificationSubscriptions"),
    )
    .await
    .value
}

fn signature(secret: &str, timestamp: &str, body: &str) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.{body}").as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn header<'a>(h: &'a Hit, name: &str) -> &'a str {
    h.headers.get(name).unwrap().to_str().unwrap()
}

#[tokio::test]
async fn webhooks_are_signed_retried_with_backoff_and_deduplicable() {
    let app = with_local_receivers().await;
    setup(&app).await;
    let hook = Receiver::start(2).await;
    let r = subscribe(
        &app,
        "ops-hook",
        json!({"scope": RG, "webhook": {"url": hook.url, "secret": SECRET}, "maxAttempts": 5}),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    // The answer's shape: `secretSet` (which the typed body never reads) and no `secret`.
    assert_eq!(r.body["properties"]["webhook"]["secretSet"], true);
    assert!(
        r.body["properties"]["webhook"].get("secret").is_none(),
        "the secret is write-only"
    );
    let asked = initiate(
        &app.admin,
        POLICY,
        json!({"number":22,"duration":"PT1H","allowedSourceAddressPrefix":"10.6.0.1"}),
    )
    .await;
    let request_id = asked.json::<AccessRequest>().id;

    let first = attempts_reach(&app, "ops-hook", 1).await;
    assert_eq!(first.state, DeliveryState::Pending);
    assert_eq!(first.last_error.as_deref(), Some("HTTP 500"), "{first:?}");
    let t0 = app.now();
    assert_eq!(
        first.next_attempt_at,
        Some(t0 + SignedDuration::from_secs(5)),
        "the second attempt waits the base backoff"
    );
    app.advance(SignedDuration::from_secs(5));
    let second = attempts_reach(&app, "ops-hook", 2).await;
    assert_eq!(
        second.next_attempt_at,
        Some(app.now() + SignedDuration::from_secs(10)),
        "then twice as long"
    );
    // Not due yet: nothing is sent.
    app.advance(SignedDuration::from_secs(9));
    deliver_due(&app.state).await.unwrap();
    assert_eq!(hook.hits().len(), 2);
    app.advance(SignedDuration::from_secs(1));
    let third = attempts_reach(&app, "ops-hook", 3).await;
    assert_eq!(third.state, DeliveryState::Delivered);
    assert_eq!(third.last_error, None);

    let hits = hook.hits();
    assert_eq!(hits.len(), 3);
    let key = header(&hits[0], "idempotency-key");
    for h in &hits {
        assert_eq!(header(h, "idempotency-key"), key, "one key across retries");
        assert_eq!(header(h, "x-ajar-delivery"), key);
        assert_eq!(header(h, "x-ajar-event"), "requestCreated");
        assert_eq!(header(h, "content-type"), "application/json");
        let ts = header(h, "x-ajar-timestamp");
        assert_eq!(
            header(h, "x-ajar-signature"),
            signature(SECRET, ts, &h.body)
        );
        assert_ne!(
            header(h, "x-ajar-signature"),
            signature("wrong-secret-wrong", ts, &h.body)
        );
    }
    let ts: Vec<&str> = hits.iter().map(|h| header(h, "x-ajar-timestamp")).collect();
    assert_eq!(
        ts[2].parse::<i64>().unwrap() - ts[0].parse::<i64>().unwrap(),
        15
    );
    // The notification as the receiver gets it (free-form JSON; no API type reads it).
    let body: Value = serde_json::from_str(&hits[2].body).unwrap();
    assert_eq!(body["event"], "requestCreated");
    assert_eq!(body["deliveryId"], key);
    assert_eq!(body["requestId"], request_id);
    assert_eq!(body["requester"], "admin");
    assert_eq!(body["kind"], "network");
    assert_eq!(body["resourceId"], POLICY);
    assert_eq!(body["justification"], "debugging");
}

#[tokio::test]
async fn failed_deliveries_are_dead_lettered_visible_and_retryable() {
    let app = with_local_receivers().await;
    setup(&app).await;
    let hook = Receiver::start(2).await;
    subscribe(
        &app,
        "flaky",
        json!({"scope": SUB, "webhook": {"url": hook.url, "secret": SECRET}, "maxAttempts": 2}),
    )
    .await;
    // Three hours: nothing ends or warns within the two hours this test waits, so the
    // receiver hears of this request only.
    initiate(
        &app.admin,
        POLICY,
        json!({"number":22,"duration":"PT3H","allowedSourceAddressPrefix":"10.6.0.2"}),
    )
    .await;
    attempts_reach(&app, "flaky", 1).await;
    app.advance(SignedDuration::from_secs(5));
    let dead = attempts_reach(&app, "flaky", 2).await;
    assert_eq!(dead.state, DeliveryState::Dead);
    assert_eq!(dead.next_attempt_at, None);
    assert_eq!(deliveries(&app, "flaky", "?state=Dead").await.len(), 1);
    assert!(deliveries(&app, "flaky", "?state=Pending").await.is_empty());
    // Nothing more is tried, however long it waits.
    app.advance(SignedDuration::from_hours(2));
    deliver_due(&app.state).await.unwrap();
    assert_eq!(hook.hits().len(), 2);
    // The failures show in the metrics.
    let raw = reqwest::Client::new()
        .get(format!("{}/metrics", app.base))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        raw.lines()
            .any(|l| l == r#"ajar_notification_failures_total{channel="webhook"} 2"#),
        "{raw}"
    );
    // An operator retries the dead letter; the receiver works now.
    let id = &dead.id;
    let path = format!("/api/v1{SUB}/notificationSubscriptions/flaky/deliveries/{id}/retry");
    let r = call(&app.admin, Method::POST, &path, None).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let retried: Delivery = r.json();
    assert_eq!(
        (retried.state, retried.attempts),
        (DeliveryState::Pending, 0)
    );
    until("redelivered", async || {
        deliver_due(&app.state).await.unwrap();
        deliveries(&app, "flaky", "").await[0].state == DeliveryState::Delivered
    })
    .await;
    let again = call(&app.admin, Method::POST, &path, None).await;
    assert_eq!(again.status, 409, "only dead deliveries are retried");
    assert_eq!(hook.hits().len(), 3);
}

#[tokio::test]
async fn approval_requests_notify_each_step_and_filters_apply() {
    let app = with_local_receivers().await;
    setup(&app).await;
    let policy = manual_policy(
        VM,
        json!([{"id":"bob","type":"user"}, {"id":"secops","type":"group"}]),
        None,
    );
    let r = call(
        &app.admin,
        Method::PUT,
        &format!("/api/v1{POLICY}"),
        Some(policy),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let all = Receiver::start(0).await;
    let expiries = Receiver::start(0).await;
    let elsewhere = Receiver::start(0).await;
    for (name, hook, scope, events) in [
        ("all", &all, RG, json!([])),
        ("expiries", &expiries, SUB, json!(["accessExpired"])),
        ("elsewhere", &elsewhere, RG2, json!([])),
    ] {
        let r = subscribe(
            &app,
            name,
            json!({"scope": scope, "events": events, "webhook": {"url": hook.url, "secret": SECRET}}),
        )
        .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
    }
    let alice = app.user("alice", Some(("JitRequester", RG))).await;
    let bob = app.user("bob", Some(("Approver", RG))).await;
    let r = initiate(
        &alice,
        POLICY,
        json!({"number":22,"duration":"PT1H","allowedSourceAddressPrefix":"10.9.0.1"}),
    )
    .await;
    let id = r
        .json::<AccessRequest>()
        .approval_request_id
        .expect("approvalRequestId");
    let name = id.rsplit('/').next().unwrap().to_owned();
    assert_eq!(decide(&bob, &name, "approve").await.status, 200);
    app.advance(SignedDuration::from_mins(46));
    app.tick().await;
    app.advance(SignedDuration::from_mins(14));
    app.tick().await;
    let events = |r: &Receiver| {
        r.hits()
            .iter()
            .map(|h| serde_json::from_str::<Value>(&h.body).unwrap())
            .collect::<Vec<_>>()
    };
    until("all delivered", async || {
        deliver_due(&app.state).await.unwrap();
        all.hits().len() >= 4 && !expiries.hits().is_empty()
    })
    .await;
    let got = events(&all);
    let names: Vec<&str> = got.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        vec![
            "requestCreated",
            "requestApproved",
            "accessExpiring",
            "accessExpired"
        ]
    );
    assert_eq!(got[0]["approvers"], json!(["bob", "group:secops"]));
    assert_eq!(got[0]["audience"], json!(["approvers"]));
    assert_eq!(got[1]["audience"], json!(["requester"]));
    assert_eq!(got[3]["audience"], json!(["approvers", "requester"]));
    assert!(
        got.iter()
            .all(|e| e["requestId"] == id.as_str() && e["requester"] == "alice")
    );
    assert_eq!(
        events(&expiries)
            .iter()
            .map(|e| e["event"].clone())
            .collect::<Vec<_>>(),
        vec![json!("accessExpired")],
        "one expiry notice, though both the request and its ports ended"
    );
    assert!(
        elsewhere.hits().is_empty(),
        "rg2's subscription hears nothing of rg1"
    );

    // Denials and time-outs tell the requester.
    let r = initiate(
        &alice,
        POLICY,
        json!({"number":22,"duration":"PT1H","allowedSourceAddressPrefix":"10.9.0.2"}),
    )
    .await;
    let denied = r
        .json::<AccessRequest>()
        .approval_request_id
        .expect("approvalRequestId")
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(decide(&bob, &denied, "deny").await.status, 200);
    initiate(
        &alice,
        POLICY,
        json!({"number":22,"duration":"PT1H","allowedSourceAddressPrefix":"10.9.0.3"}),
    )
    .await;
    app.advance(SignedDuration::from_hours(2));
    app.tick().await;
    until("decisions delivered", async || {
        deliver_due(&app.state).await.unwrap();
        all.hits().len() >= 8
    })
    .await;
    // Deliveries of different requests may arrive in any order; each request's own steps
    // arrive in order.
    let mut by_request: Vec<(String, Vec<String>)> = Vec::new();
    for e in &events(&all)[4..] {
        let id = e["requestId"].as_str().unwrap().to_owned();
        let event = e["event"].as_str().unwrap().to_owned();
        match by_request.iter_mut().find(|(r, _)| *r == id) {
            Some((_, steps)) => steps.push(event),
            None => by_request.push((id, vec![event])),
        }
    }
    let mut steps: Vec<Vec<String>> = by_request.into_iter().map(|(_, s)| s).collect();
    steps.sort();
    assert_eq!(
        steps,
        vec![
            vec!["requestCreated".to_owned(), "requestDenied".to_owned()],
            vec!["requestCreated".to_owned(), "requestTimedOut".to_owned()],
        ]
    );
}

#[tokio::test]
async fn subscriptions_are_validated_and_need_their_actions() {
    let app = TestApp::spawn().await;
    let path = format!("/api/v1{SUB}/notificationSubscriptions/n1");
    for (props, target_want) in [
        (
            json!({"scope": "/subscriptions/other", "email": {"to": ["a@example.com"]}}),
            "properties.scope",
        ),
        (json!({"scope": SUB}), "properties"),
        (
            json!({"scope": SUB, "email": {"to": ["a@example.com"]}, "webhook": {"url": "https://x.example", "secret": SECRET}}),
            "properties",
        ),
        (
            json!({"scope": SUB, "webhook": {"url": "ftp://x.example", "secret": SECRET}}),
            "properties.webhook.url",
        ),
        (
            json!({"scope": SUB, "webhook": {"url": "not a url", "secret": SECRET}}),
            "properties.webhook.url",
        ),
        (
            json!({"scope": SUB, "webhook": {"url": "https://x.example"}}),
            "properties.webhook.secret",
        ),
        (
            json!({"scope": SUB, "webhook": {"url": "https://x.example", "secret": "short"}}),
            "properties.webhook.secret",
        ),
        (
            json!({"scope": SUB, "email": {"to": ["not-an-address"]}}),
            "properties.email.to[0]",
        ),
        (
            json!({"scope": SUB, "email": {"to": []}}),
            "properties.email.to",
        ),
        (
            json!({"scope": SUB, "events": ["requestCreated", "nope"], "email": {"to": ["a@example.com"]}}),
            "properties.events[1]",
        ),
        (
            json!({"scope": SUB, "maxAttempts": 0, "email": {"to": ["a@example.com"]}}),
            "properties.maxAttempts",
        ),
    ] {
        let r = call(
            &app.admin,
            Method::PUT,
            &path,
            Some(json!({"properties": props})),
        )
        .await;
        assert_eq!(r.status, 400, "{props}: {:?}", r.body);
        assert_eq!(target(&r).as_str(), target_want, "{props}");
    }
    assert!(subscriptions(&app).await.is_empty(), "nothing stored");

    let ok = json!({"properties": {"scope": RG, "webhook": {"url": "https://hooks.example/x", "secret": SECRET}}});
    let reader = app.user("auditor", Some(("SecurityReader", SUB))).await;
    let admin_elsewhere = app
        .user("eve", Some(("JitAdmin", "/subscriptions/s2")))
        .await;
    let jit_admin = app.user("carol", Some(("JitAdmin", SUB))).await;
    assert_eq!(
        call(&reader, Method::PUT, &path, Some(ok.clone()))
            .await
            .status,
        403
    );
    assert_eq!(
        call(&admin_elsewhere, Method::PUT, &path, Some(ok.clone()))
            .await
            .status,
        403
    );
    assert_eq!(
        call(&app.client(None), Method::PUT, &path, Some(ok.clone()))
            .await
            .status,
        401
    );
    assert_eq!(
        call(&jit_admin, Method::PUT, &path, Some(ok.clone()))
            .await
            .status,
        201
    );
    assert_eq!(call(&reader, Method::GET, &path, None).await.status, 200);
    assert_eq!(
        call(&admin_elsewhere, Method::GET, &path, None)
            .await
            .status,
        403
    );
    assert_eq!(call(&reader, Method::DELETE, &path, None).await.status, 403);
    // An update without a secret keeps the stored one.
    let keep = json!({"properties": {"scope": SUB, "webhook": {"url": "https://hooks.example/y"}}});
    let r = call(&jit_admin, Method::PUT, &path, Some(keep)).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    // `secretSet` is in the answer only (the typed body never reads it).
    assert_eq!(r.body["properties"]["webhook"]["secretSet"], true);
    // The secret is in no answer and no activity record.
    let log = call(
        &app.admin,
        Method::GET,
        "/api/v1/activity?action=ajar.notifications/write",
        None,
    )
    .await;
    assert_eq!(log.json::<List<ActivityRecord>>().value.len(), 2);
    assert!(!log.body.to_string().contains(SECRET));
    // An email subscription turned into a webhook needs a secret then.
    let mail_path = format!("/api/v1{SUB}/notificationSubscriptions/n2");
    let mail = json!({"properties": {"scope": SUB, "email": {"to": ["a@example.com"]}}});
    assert_eq!(
        call(&jit_admin, Method::PUT, &mail_path, Some(mail))
            .await
            .status,
        201
    );
    let unsigned =
        json!({"properties": {"scope": SUB, "webhook": {"url": "https://hooks.example/z"}}});
    let r = call(&jit_admin, Method::PUT, &mail_path, Some(unsigned)).await;
    assert_eq!(
        (r.status, target(&r).as_str()),
        (400, "properties.webhook.secret"),
        "{:?}",
        r.body
    );
    assert_eq!(
        call(&jit_admin, Method::DELETE, &path, None).await.status,
        204
    );
    assert_eq!(call(&jit_admin, Method::GET, &path, None).await.status, 404);
}

/// Decodes quoted-printable text (soft line breaks and `=XX`).
fn quoted_printable(s: &str) -> String {
    let joined = s.replace("=\n", "");
    let mut out = Vec::new();
    let bytes = joined.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&joined[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Recipients and the message data of one mail.
type Mail = (Vec<String>, String);

/// A minimal SMTP server: accepts one message per connection and keeps what it was told.
#[derive(Clone, Default)]
struct SmtpSink {
    mails: Arc<Mutex<Vec<Mail>>>,
}

impl SmtpSink {
    async fn start() -> (Self, String) {
        let sink = SmtpSink::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let s = sink.clone();
        tokio::spawn(async move {
            loop {
                let (socket, _) = listener.accept().await.unwrap();
                let s = s.clone();
                tokio::spawn(async move { s.session(socket).await });
            }
        });
        (sink, format!("smtp://{addr}"))
    }

    async fn session(&self, socket: tokio::net::TcpStream) {
        let (read, mut write) = socket.into_split();
        let mut lines = BufReader::new(read).lines();
        write.write_all(b"220 sink ESMTP\r\n").await.unwrap();
        let mut rcpt = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            let upper = line.to_ascii_uppercase();
            let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                b"250-sink\r\n250 8BITMIME\r\n"
            } else if upper.starts_with("MAIL FROM") {
                b"250 ok\r\n"
            } else if upper.starts_with("RCPT TO:") {
                rcpt.push(line[8..].trim().trim_matches(['<', '>']).to_owned());
                b"250 ok\r\n"
            } else if upper == "DATA" {
                write.write_all(b"354 go on\r\n").await.unwrap();
                let mut data = String::new();
                while let Ok(Some(l)) = lines.next_line().await {
                    if l == "." {
                        break;
                    }
                    data.push_str(&l);
                    data.push('\n');
                }
                self.mails
                    .lock()
                    .unwrap()
                    .push((std::mem::take(&mut rcpt), data));
                b"250 queued\r\n"
            } else if upper == "QUIT" {
                write.write_all(b"221 bye\r\n").await.unwrap();
                return;
            } else {
                b"250 ok\r\n"
            };
            write.write_all(reply).await.unwrap();
        }
    }
}

#[tokio::test]
async fn email_goes_to_named_recipients_and_participants_as_text_and_html() {
    let (sink, url) = SmtpSink::start().await;
    let notifier = Notifier::new()
        .with_smtp(&SmtpSettings {
            url,
            from: "ajar <ajar@example.com>".to_owned(),
        })
        .unwrap();
    let app = TestApp::spawn_with(|s| s.with_notifier(notifier)).await;
    setup(&app).await;
    require_approval(&app, json!([{"id":"bob@example.com","type":"user"}])).await;
    let r = subscribe(
        &app,
        "mail",
        json!({"scope": RG, "events": ["requestCreated"],
               "email": {"to": ["secops@example.com"], "notifyParticipants": true}}),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let alice = app
        .user("alice@example.com", Some(("JitRequester", RG)))
        .await;
    let mut body = initiate_body(
        VM,
        json!({"number":22,"duration":"PT1H","allowedSourceAddressPrefix":"10.9.0.1"}),
    );
    body["justification"] = json!("<b>prod</b> & friends");
    let r = call(
        &alice,
        Method::POST,
        &format!("/api/v1{POLICY}/initiate"),
        Some(body),
    )
    .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    until("a mail arrives", async || {
        deliver_due(&app.state).await.unwrap();
        !sink.mails.lock().unwrap().is_empty()
    })
    .await;
    let (mut rcpt, data) = sink.mails.lock().unwrap()[0].clone();
    rcpt.sort();
    assert_eq!(rcpt, vec!["bob@example.com", "secops@example.com"]);
    assert!(
        data.contains("Subject: [ajar] Access request by alice@example.com"),
        "{data}"
    );
    assert!(data.contains("multipart/alternative"), "{data}");
    assert!(data.contains("text/plain"), "{data}");
    assert!(data.contains("text/html"), "{data}");
    let decoded = quoted_printable(&data);
    assert!(
        decoded.contains("Justification: <b>prod</b> & friends"),
        "{decoded}"
    );
    assert!(
        decoded.contains("<td>&lt;b&gt;prod&lt;/b&gt; &amp; friends</td>"),
        "HTML is escaped: {data}"
    );
    let d = deliveries(&app, "mail", "").await;
    assert_eq!(d[0].state, DeliveryState::Delivered);
}

#[tokio::test]
async fn email_without_smtp_configured_fails_visibly() {
    let app = TestApp::spawn().await;
    setup(&app).await;
    subscribe(
        &app,
        "mail",
        json!({"scope": RG, "maxAttempts": 1, "email": {"to": ["secops@example.com"]}}),
    )
    .await;
    initiate(
        &app.admin,
        POLICY,
        json!({"number":22,"duration":"PT1H","allowedSourceAddressPrefix":"10.6.0.9"}),
    )
    .await;
    let d = attempts_reach(&app, "mail", 1).await;
    assert_eq!(d.state, DeliveryState::Dead);
    assert!(
        d.last_error
            .as_deref()
            .is_some_and(|e| e.contains("--smtp-url")),
        "{d:?}"
    );
}

/// Subscribes `name` to a webhook at `url` (one attempt per delivery).
async fn subscribe_hook(app: &TestApp, name: &str, url: &str) -> RawResponse {
    subscribe(
        app,
        name,
        json!({"scope": SUB, "webhook": {"url": url, "secret": SECRET}, "maxAttempts": 1}),
    )
    .await
}

/// Asks for port 22 on `POLICY`, which notifies every subscription at `SUB`.
async fn notify_once(app: &TestApp, source: &str) {
    let r = initiate(
        &app.admin,
        POLICY,
        json!({"number":22,"duration":"PT1H","allowedSourceAddressPrefix":source}),
    )
    .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
}

#[tokio::test]
async fn webhooks_to_internal_addresses_are_refused_unless_the_operator_allows_the_network() {
    let hook = Receiver::start(0).await;
    let by_name = hook.url.replace("127.0.0.1", "localhost");
    let strict = TestApp::spawn().await;
    for (url, words) in [
        (
            hook.url.as_str(),
            "the webhook address is 127.0.0.1, a loopback address",
        ),
        ("http://[::ffff:127.0.0.1]:9/x", "a loopback address"),
        ("http://[::1]/x", "::1, a loopback address"),
        ("http://0.0.0.0:9/x", "an unspecified address"),
        ("https://10.0.0.7/hook", "10.0.0.7, a private address"),
        ("https://192.168.1.20/hook", "a private address"),
        (
            "https://100.64.0.1/hook",
            "a shared (carrier-grade NAT) address",
        ),
        ("https://[fd00::1]/hook", "a unique-local address"),
        (by_name.as_str(), "the webhook host localhost resolves to"),
    ] {
        let r = subscribe_hook(&strict, "internal", url).await;
        assert_eq!(
            (r.status, code(&r), target(&r).as_str()),
            (400, ErrorCode::ValidationFailed, "properties.webhook.url"),
            "{url}: {:?}",
            r.body
        );
        let message = error_of(&r).message;
        assert!(message.contains(words), "{url}: {message}");
        assert!(
            message.contains("unless the operator allows the network (--webhook-allow-network)"),
            "{message}"
        );
    }
    assert!(subscriptions(&strict).await.is_empty(), "nothing stored");

    // Where the operator allows loopback, the same receiver is accepted and delivered to.
    let relay = with_local_receivers().await;
    setup(&relay).await;
    let r = subscribe_hook(&relay, "relay", &hook.url).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    notify_once(&relay, "10.6.1.1").await;
    until("delivered to the allowed receiver", async || {
        deliver_due(&relay.state).await.unwrap();
        deliveries(&relay, "relay", "").await[0].state == DeliveryState::Delivered
    })
    .await;
    assert_eq!(hook.hits().len(), 1);
}

#[tokio::test]
async fn link_local_and_metadata_addresses_are_refused_even_when_every_network_is_allowed() {
    let open = allowing(&["0.0.0.0/0", "::/0"]).await;
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/",
        "http://[fe80::1]:8080/",
        "http://[fd00:ec2::254]/",
        "http://100.100.100.200/",
    ] {
        let r = subscribe_hook(&open, "metadata", url).await;
        assert_eq!(
            (r.status, target(&r).as_str()),
            (400, "properties.webhook.url"),
            "{url}: {:?}",
            r.body
        );
        let message = error_of(&r).message;
        assert!(
            message.contains("never delivers webhooks to link-local or cloud metadata addresses"),
            "{url}: {message}"
        );
    }
    let r = subscribe_hook(&open, "metadata", "http://169.254.169.254/").await;
    assert!(
        error_of(&r)
            .message
            .contains("169.254.169.254, a link-local address"),
        "{:?}",
        r.body
    );
    // Other internal addresses are the operator's choice.
    let r = subscribe_hook(&open, "private", "http://10.0.0.7/hook").await;
    assert_eq!(r.status, 201, "{:?}", r.body);
}

#[tokio::test]
async fn deliveries_check_the_address_again_and_skip_one_no_longer_allowed() {
    let hook = Receiver::start(0).await;
    let by_name = hook.url.replace("127.0.0.1", "localhost");
    let app = allowing(&["127.0.0.1/32", "::1/128"]).await;
    setup(&app).await;
    for (name, url) in [("by-address", hook.url.as_str()), ("by-name", &by_name)] {
        let r = subscribe_hook(&app, name, url).await;
        assert_eq!(r.status, 201, "{url}: {:?}", r.body);
    }
    // A restart starts with the default notifier, which allows no loopback: what was accepted
    // is no longer allowed, as when a name starts resolving to an internal address.
    let app = app.restart().await;
    notify_once(&app, "10.6.2.1").await;
    for name in ["by-address", "by-name"] {
        let dead = attempts_reach(&app, name, 1).await;
        assert_eq!(dead.state, DeliveryState::Dead, "{name}: {dead:?}");
        assert_eq!(
            dead.last_error.as_deref(),
            Some("address not allowed"),
            "{name}: {dead:?}"
        );
    }
    assert!(hook.hits().is_empty(), "nothing reached the receiver");
}

#[tokio::test]
async fn delivery_errors_shown_to_readers_name_a_category_not_the_connection() {
    let app = with_local_receivers().await;
    setup(&app).await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{closed}/hook");
    assert_eq!(subscribe_hook(&app, "closed", &url).await.status, 201);
    // TLS to a plain HTTP receiver.
    let plain = Receiver::start(0).await;
    let tls = plain.url.replace("http://", "https://");
    assert_eq!(subscribe_hook(&app, "tls", &tls).await.status, 201);
    notify_once(&app, "10.6.3.1").await;
    let dead = attempts_reach(&app, "closed", 1).await;
    assert_eq!(
        dead.last_error.as_deref(),
        Some("connection refused"),
        "{dead:?}"
    );
    let dead = attempts_reach(&app, "tls", 1).await;
    assert_eq!(dead.last_error.as_deref(), Some("TLS error"), "{dead:?}");
    let reader = app.user("auditor", Some(("SecurityReader", SUB))).await;
    let r = call(
        &reader,
        Method::GET,
        &format!("/api/v1{SUB}/notificationSubscriptions/closed/deliveries"),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let text = r.json::<List<Delivery>>().value[0]
        .last_error
        .clone()
        .expect("lastError");
    for detail in [closed.to_string().as_str(), "os error", "tcp", "127.0.0.1"] {
        assert!(!text.contains(detail), "{detail:?} in {text}");
    }
}
