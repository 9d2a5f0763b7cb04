//! `GET /metrics` and request ids: counters move by exactly what was asked, histograms agree
//! with themselves, gauges follow the store and the clock, and every answer carries an
//! `X-Request-Id`.

use crate::*;
use ajar_core::lifecycle::RequestState;
use ajar_testkit::TestApp;
use jiff::SignedDuration;
use reqwest::Method;
use serde_json::json;
use std::collections::BTreeMap;

/// Every sample of an exposition, by series (`name{labels}` as written).
struct Scrape(BTreeMap<String, f64>);

impl Scrape {
    /// The value of `series`, 0 when absent (a series appears on first use).
    fn get(&self, series: &str) -> f64 {
        self.0.get(series).copied().unwrap_or(0.0)
    }

    /// Series whose name is `name` (labels any).
    fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = (&'a String, f64)> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k.split('{').next() == Some(name))
            .map(|(k, v)| (k, *v))
    }
}

fn parse(text: &str) -> Scrape {
    let mut samples = BTreeMap::new();
    assert!(text.ends_with("# EOF\n"), "the exposition ends with # EOF");
    for line in text.lines() {
        if line.starts_with('#') {
            assert!(
                line.starts_with("# HELP ") || line.starts_with("# TYPE ") || line == "# EOF",
                "bad comment line {line:?}"
            );
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("series and value");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        assert!(
            samples.insert(series.to_owned(), value).is_none(),
            "duplicate series {series}"
        );
    }
    Scrape(samples)
}

/// Scrapes `/metrics` as `client`; panics unless 200 with the exposition content type.
async fn scrape(app: &TestApp, token: &str) -> Scrape {
    let r = reqwest::Client::new()
        .get(format!("{}/metrics", app.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    parse(&r.text().await.unwrap())
}

async fn get(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(format!("{}{path}", app.base));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

const MACHINE_ROUTE: &str = "/api/v1/subscriptions/{sub}/resourceGroups/{rg}/machines/{name}";

#[tokio::test]
async fn http_counters_count_each_request_once_by_route_template() {
    let app = TestApp::spawn().await;
    let token = app.admin_token.clone();
    let before = scrape(&app, &token).await;
    for _ in 0..5 {
        assert_eq!(get(&app, "/healthz", &[]).await.status(), 200);
    }
    for name in ["a", "b", "c"] {
        let r = call(
            &app.admin,
            Method::GET,
            &format!("/api/v1/subscriptions/s1/resourceGroups/rg1/machines/{name}"),
            None,
        )
        .await;
        assert_eq!(r.status, 404);
    }
    for _ in 0..2 {
        assert_eq!(get(&app, "/no/such/path?x=1", &[]).await.status(), 404);
    }
    let after = scrape(&app, &token).await;

    let delta = |series: &str| after.get(series) - before.get(series);
    assert_eq!(
        delta(r#"ajar_http_requests_total{method="GET",route="/healthz",status="200"}"#),
        5.0
    );
    assert_eq!(
        delta(&format!(
            r#"ajar_http_requests_total{{method="GET",route="{MACHINE_ROUTE}",status="404"}}"#
        )),
        3.0
    );
    assert_eq!(
        delta(r#"ajar_http_requests_total{method="GET",route="unmatched",status="404"}"#),
        2.0
    );
    // The first scrape is counted by the second (and not by itself).
    assert_eq!(
        before.get(r#"ajar_http_requests_total{method="GET",route="/metrics",status="200"}"#),
        0.0
    );
    assert_eq!(
        after.get(r#"ajar_http_requests_total{method="GET",route="/metrics",status="200"}"#),
        1.0
    );
    // Raw paths, names and query strings never become labels.
    assert!(
        after
            .0
            .keys()
            .all(|k| !k.contains("machines/a") && !k.contains("no/such") && !k.contains("x=1")),
        "{:?}",
        after.0.keys().collect::<Vec<_>>()
    );

    // Histograms: the /healthz series counted 5 more, and every series is consistent.
    let h = |part: &str, labels: &str| {
        after.get(&format!(
            "ajar_http_request_duration_seconds_{part}{{{labels}}}"
        )) - before.get(&format!(
            "ajar_http_request_duration_seconds_{part}{{{labels}}}"
        ))
    };
    let healthz = r#"method="GET",route="/healthz""#;
    assert_eq!(h("count", healthz), 5.0);
    assert_eq!(h("bucket", &format!(r#"le="+Inf",{healthz}"#)), 5.0);
    assert!(h("sum", healthz) > 0.0);
    let mut histograms = 0;
    for (series, count) in after.named("ajar_http_request_duration_seconds_count") {
        histograms += 1;
        let labels = &series[series.find('{').unwrap() + 1..series.len() - 1];
        let buckets: Vec<f64> = after
            .named("ajar_http_request_duration_seconds_bucket")
            .filter(|(k, _)| {
                k.starts_with("ajar_http_request_duration_seconds_bucket{le=")
                    && k.ends_with(&format!(",{labels}}}"))
            })
            .map(|(_, v)| v)
            .collect();
        assert_eq!(buckets.len(), 14, "{series}: 13 bounds and +Inf");
        let inf = after.get(&format!(
            "ajar_http_request_duration_seconds_bucket{{le=\"+Inf\",{labels}}}"
        ));
        assert_eq!(inf, count, "{series}");
        let le_10 = after.get(&format!(
            "ajar_http_request_duration_seconds_bucket{{le=\"10.0\",{labels}}}"
        ));
        assert!(le_10 <= inf);
        let le_1ms = after.get(&format!(
            "ajar_http_request_duration_seconds_bucket{{le=\"0.001\",{labels}}}"
        ));
        assert!(le_1ms <= le_10);
    }
    assert!(histograms >= 4, "healthz, machines, unmatched, metrics");
}

#[tokio::test]
async fn open_grants_and_access_requests_follow_an_initiate_and_the_clock() {
    let app = TestApp::spawn().await;
    setup(&app).await;
    let token = app.admin_token.clone();
    let network = r#"ajar_open_grants{kind="network"}"#;
    let accepted = r#"ajar_access_requests_total{kind="network",result="accepted"}"#;
    let rejected = r#"ajar_access_requests_total{kind="network",result="rejected"}"#;
    let denied = r#"ajar_access_requests_total{kind="network",result="denied"}"#;
    let lag_count = "ajar_scheduler_lag_seconds_count";

    let before = scrape(&app, &token).await;
    assert_eq!(before.get(network), 0.0);
    assert_eq!(before.get("ajar_agents"), 1.0);
    // The agent polled at the start instant and the clock has not moved.
    assert_eq!(
        before.get(r#"ajar_agent_lag_seconds{agent="agent-1"}"#),
        0.0
    );

    let ok = initiate(
        &app.admin,
        POLICY,
        json!({"number":22,"duration":"PT1H","allowedSourceAddressPrefix":"192.0.2.1"}),
    )
    .await;
    assert_eq!(ok.status, 202, "{:?}", ok.body);
    // Two ports in one request (22 for two hours, 3389 for one): two grants.
    let two = call(
        &app.admin,
        Method::POST,
        &format!("/api/v1{POLICY2}/initiate"),
        Some(json!({"virtualMachines":[{"id":VM2,"ports":[
            {"number":22,"duration":"PT2H","allowedSourceAddressPrefix":"192.0.2.2"},
            {"number":3389,"duration":"PT1H","allowedSourceAddressPrefix":"10.0.0.7"}]}]})),
    )
    .await;
    assert_eq!(two.status, 202, "{:?}", two.body);
    // Too long for the rule: rejected, nothing opens.
    let long = initiate(
        &app.admin,
        POLICY,
        json!({"number":22,"duration":"PT9H","allowedSourceAddressPrefix":"192.0.2.1"}),
    )
    .await;
    assert_eq!(long.status, 400);
    // A principal without the action: denied.
    let nobody = app.user("nobody", None).await;
    let no = initiate(
        &nobody,
        POLICY,
        json!({"number":22,"duration":"PT1H","allowedSourceAddressPrefix":"192.0.2.1"}),
    )
    .await;
    assert_eq!(no.status, 403);

    let open = scrape(&app, &token).await;
    assert_eq!(open.get(network), 3.0);
    assert_eq!(open.get(accepted) - before.get(accepted), 2.0);
    assert_eq!(open.get(rejected) - before.get(rejected), 1.0);
    assert_eq!(open.get(denied) - before.get(denied), 1.0);

    // 90 minutes on: the one-hour grants ended (even before the scheduler closes them), the
    // agent has not polled since.
    app.advance(SignedDuration::from_mins(90));
    let later = scrape(&app, &token).await;
    assert_eq!(later.get(network), 1.0);
    assert_eq!(
        later.get(r#"ajar_agent_lag_seconds{agent="agent-1"}"#),
        5400.0
    );
    // The pass that closes them (the background scheduler's or this tick) sees both requests
    // half an hour late: one observation per request.
    let lag_before = open.get(lag_count);
    let sum_before = open.get("ajar_scheduler_lag_seconds_sum");
    app.tick().await;
    let closed = scrape(&app, &token).await;
    assert_eq!(closed.get(lag_count) - lag_before, 2.0);
    assert_eq!(
        closed.get("ajar_scheduler_lag_seconds_sum") - sum_before,
        3600.0
    );
    assert_eq!(
        closed.get(r#"ajar_scheduler_lag_seconds_bucket{le="+Inf"}"#),
        closed.get(lag_count)
    );
    assert_eq!(closed.get(network), 1.0);
    app.advance(SignedDuration::from_hours(1));
    assert_eq!(scrape(&app, &token).await.get(network), 0.0);
}

#[tokio::test]
async fn active_role_activations_count_as_open_role_grants() {
    let app = TestApp::spawn().await;
    let token = app.admin_token.clone();
    let app_path = format!("/api/v1{RG}/applications/crm");
    let r = call(
        &app.admin,
        Method::PUT,
        &app_path,
        Some(json!({"properties":{}})),
    )
    .await;
    assert_eq!(r.status, 201);
    declare_roles(&app, app_path.trim_start_matches("/api/v1")).await;
    let r = call(
        &app.admin,
        Method::PUT,
        &format!("{app_path}/eligibleRoles/admin"),
        Some(json!({"principal":"admin","roleDefinition":"Reader"})),
    )
    .await;
    assert_eq!(r.status, 201);
    let role = r#"ajar_open_grants{kind="role"}"#;
    let accepted = r#"ajar_access_requests_total{kind="role",result="accepted"}"#;
    let denied = r#"ajar_access_requests_total{kind="role",result="denied"}"#;
    let before = scrape(&app, &token).await;
    assert_eq!(before.get(role), 0.0);
    let body = |who: &str| {
        json!({"properties":{
            "applicationResourceId":format!("{RG}/applications/crm"),
            "jitAuthorizationPolicies":[{"principalId":who,"roleDefinitionId":"Reader"}],
            "jitSchedulingPolicy":{"type":"Once","duration":"PT1H"}}})
    };
    let r = call(
        &app.admin,
        Method::PUT,
        &req_path("mine"),
        Some(body("admin")),
    )
    .await;
    assert_eq!(
        (r.status, state_of(&r)),
        (201, RequestState::Active),
        "{:?}",
        r.body
    );
    // Not eligible: denied.
    let eve = app.user("eve", Some(("JitRequester", RG))).await;
    let r = call(&eve, Method::PUT, &req_path("eves"), Some(body("eve"))).await;
    assert_eq!(r.status, 403, "{:?}", r.body);
    let after = scrape(&app, &token).await;
    assert_eq!(after.get(role), 1.0);
    assert_eq!(after.get(accepted) - before.get(accepted), 1.0);
    assert_eq!(after.get(denied) - before.get(denied), 1.0);
    app.advance(SignedDuration::from_hours(1));
    app.tick().await;
    assert_eq!(scrape(&app, &token).await.get(role), 0.0);
}

#[tokio::test]
async fn metrics_need_the_metrics_read_action_at_the_root() {
    let app = TestApp::spawn().await;
    let status = |token: Option<String>| {
        let base = app.base.clone();
        async move {
            let mut req = reqwest::Client::new().get(format!("{base}/metrics"));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            req.send().await.unwrap().status().as_u16()
        }
    };
    assert_eq!(status(None).await, 401);
    assert_eq!(status(Some("ajar_not-a-token".into())).await, 401);
    let mut tokens = Vec::new();
    for (who, role, scope, want) in [
        ("reader", Some("SecurityReader"), "/", 200),
        ("group-reader", Some("SecurityReader"), RG, 403),
        ("requester", Some("JitRequester"), "/", 403),
        ("jit-admin", Some("JitAdmin"), "/", 403),
        ("nobody", None, "/", 403),
    ] {
        let token = app
            .admin
            .create_token(&ajar_api::wire::TokenCreate {
                principal: ajar_core::principal::Principal::parse(who).unwrap(),
                description: None,
            })
            .await
            .unwrap()
            .token
            .unwrap();
        if let Some(role) = role {
            let r = call(
                &app.admin,
                Method::PUT,
                &format!("/api/v1/roleAssignments/m-{who}"),
                Some(json!({"principal":who,"roleDefinition":role,"scope":scope})),
            )
            .await;
            assert_eq!(r.status, 201);
        }
        tokens.push((who, token, want));
    }
    for (who, token, want) in tokens {
        assert_eq!(status(Some(token)).await, want, "{who}");
    }
    // A custom role with exactly the action.
    let r = call(
        &app.admin,
        Method::PUT,
        "/api/v1/roleDefinitions/Scraper",
        Some(json!({"actions":["ajar.metrics/read"]})),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let prometheus = app.user("prometheus", Some(("Scraper", "/"))).await;
    assert_eq!(
        call(&prometheus, Method::GET, "/metrics", None)
            .await
            .status,
        200
    );
}

#[test]
fn label_values_are_escaped() {
    use ajar_server::metrics::Metrics;
    let m = Metrics::new();
    m.notification("odd\"\nchannel\\", false);
    m.notification("webhook", true);
    m.notification("webhook", true);
    let text = m.render(&ajar_store::Gauges::default(), jiff::Timestamp::UNIX_EPOCH);
    assert!(
        text.contains("ajar_notification_failures_total{channel=\"odd\\\"\\nchannel\\\\\"} 1\n"),
        "{text}"
    );
    // Every sample is still one line, parseable.
    let s = parse(&text);
    assert_eq!(
        s.get(r#"ajar_notifications_delivered_total{channel="webhook"}"#),
        2.0
    );
    assert_eq!(
        s.get(r#"ajar_notifications_delivered_total{channel="email"}"#),
        0.0
    );
    assert!(
        s.0.contains_key(r#"ajar_notification_failures_total{channel="email"}"#),
        "known channels start at zero"
    );
}

fn request_id(r: &reqwest::Response) -> String {
    r.headers()
        .get("x-request-id")
        .expect("X-Request-Id on every answer")
        .to_str()
        .unwrap()
        .to_owned()
}

/// A hyphenated UUID v4, as the server generates.
fn is_uuid(s: &str) -> bool {
    uuid::Uuid::try_parse(s).is_ok_and(|u| u.get_version_num() == 4 && u.to_string() == s)
}

#[tokio::test]
async fn request_ids_are_echoed_when_plain_and_replaced_otherwise() {
    let app = TestApp::spawn().await;
    let r = get(&app, "/healthz", &[("X-Request-Id", "trace-42.a_b")]).await;
    assert_eq!(request_id(&r), "trace-42.a_b");
    let max = "x".repeat(64);
    assert_eq!(
        request_id(&get(&app, "/healthz", &[("X-Request-Id", &max)]).await),
        max
    );
    // A raw newline cannot travel in an HTTP/1 header (it ends the header); its encoded forms
    // and other characters outside [A-Za-z0-9._-] must be refused.
    for hostile in [
        "x".repeat(65),
        "y".repeat(200),
        "has space".to_owned(),
        "quote\"d".to_owned(),
        "semi;colon".to_owned(),
        "new%0Aline".to_owned(),
        "tab\there".to_owned(),
    ] {
        let r = get(&app, "/healthz", &[("X-Request-Id", &hostile)]).await;
        let id = request_id(&r);
        assert_ne!(id, hostile);
        assert!(is_uuid(&id), "{hostile:?} replaced by {id}");
    }
    // None sent: a fresh id each time, also on errors and unknown paths.
    let a = request_id(&get(&app, "/healthz", &[]).await);
    let b = request_id(&get(&app, "/healthz", &[]).await);
    assert!(is_uuid(&a) && is_uuid(&b) && a != b);
    for (path, status) in [
        ("/api/v1/agents", 401),
        ("/nowhere", 404),
        ("/metrics", 401),
    ] {
        let r = get(&app, path, &[]).await;
        assert_eq!(r.status(), status, "{path}");
        assert!(is_uuid(&request_id(&r)), "{path}");
        let r = get(&app, path, &[("X-Request-Id", "mine-1")]).await;
        assert_eq!(
            (r.status().as_u16(), request_id(&r)),
            (status, "mine-1".into())
        );
    }
    let r = reqwest::Client::new()
        .delete(format!("{}/healthz", app.base))
        .header("X-Request-Id", "mine-2")
        .send()
        .await
        .unwrap();
    assert_eq!(
        (r.status().as_u16(), request_id(&r)),
        (405, "mine-2".into())
    );
}
