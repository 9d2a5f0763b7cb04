//! Metrics in the OpenMetrics text format, kept and encoded with `prometheus-client`.
//!
//! [`Metrics`] lives in [`crate::AppState`]; recording is lock-free for series that exist (a
//! labelled series is created once), so it never waits for a scrape. Gauges about stored state
//! (open grants, agents) are not kept here: they are read from the store at scrape time and
//! passed to [`Metrics::render`].
//!
//! Label values are bounded: `route` is the matched path template (or `unmatched`), `method`
//! one of the standard methods (or `other`), and the remaining labels are chosen by ajar's own
//! code, so no client can create series at will.

use crate::error::AppError;
use ajar_store::Gauges;
use jiff::Timestamp;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

/// The `Content-Type` of `GET /metrics`.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds (seconds) of the HTTP request duration buckets.
pub const HTTP_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Upper bounds (seconds) of the scheduler lag buckets: the scheduler naps at most a second, so
/// lag above that means it fell behind (or catches up after a restart).
pub const LAG_BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// `kind` values of `ajar_access_requests_total`.
pub const ACCESS_KINDS: &[&str] = &["network", "role"];
/// `result` values of `ajar_access_requests_total`.
pub const ACCESS_RESULTS: &[&str] = &["accepted", "pending", "denied", "rejected", "error"];
/// `channel` values of the notification counters.
pub const CHANNELS: &[&str] = &["webhook", "email"];

/// Labels of `ajar_http_requests_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: &'static str,
    route: String,
    status: u16,
}

/// Labels of `ajar_http_request_duration_seconds`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: &'static str,
    route: String,
}

/// Labels of `ajar_access_requests_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AccessLabels {
    kind: String,
    result: String,
}

/// Labels of the notification counters.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChannelLabels {
    channel: String,
}

/// Labels of `ajar_open_grants`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

/// Labels of `ajar_agent_lag_seconds`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AgentLabels {
    agent: String,
}

fn http_histogram() -> Histogram {
    Histogram::new(HTTP_BUCKETS.iter().copied())
}

/// Every counter and histogram the server records, registered for encoding.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    access_requests: Family<AccessLabels, Counter>,
    scheduler_lag: Histogram,
    notifications_delivered: Family<ChannelLabels, Counter>,
    notification_failures: Family<ChannelLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Empty metrics. The access request and notification series start at zero for every
    /// known label value, so rates and alerts work before the first event.
    pub fn new() -> Self {
        let mut m = Metrics {
            registry: Registry::default(),
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(http_histogram),
            access_requests: Family::default(),
            scheduler_lag: Histogram::new(LAG_BUCKETS.iter().copied()),
            notifications_delivered: Family::default(),
            notification_failures: Family::default(),
        };
        for kind in ACCESS_KINDS {
            for result in ACCESS_RESULTS {
                let _ = m.access_requests.get_or_create(&AccessLabels {
                    kind: (*kind).to_owned(),
                    result: (*result).to_owned(),
                });
            }
        }
        for channel in CHANNELS {
            let labels = ChannelLabels {
                channel: (*channel).to_owned(),
            };
            let _ = m.notifications_delivered.get_or_create(&labels);
            let _ = m.notification_failures.get_or_create(&labels);
        }
        m.registry = m.register();
        m
    }

    /// A registry of every series (families share their series with `self`).
    fn register(&self) -> Registry {
        let mut r = Registry::default();
        r.register(
            "ajar_http_requests",
            "HTTP requests answered, by method, matched route template and status",
            self.http_requests.clone(),
        );
        r.register(
            "ajar_http_request_duration_seconds",
            "Time from receiving an HTTP request to its response, by method and route template",
            self.http_duration.clone(),
        );
        r.register(
            "ajar_access_requests",
            "Access requests asked for, by kind (network, role) and result (accepted, pending, denied, rejected, error)",
            self.access_requests.clone(),
        );
        r.register(
            "ajar_scheduler_lag_seconds",
            "Seconds between an end time and the scheduler processing its expiry",
            self.scheduler_lag.clone(),
        );
        r.register(
            "ajar_notifications_delivered",
            "Notifications delivered, by channel",
            self.notifications_delivered.clone(),
        );
        r.register(
            "ajar_notification_failures",
            "Notifications that could not be delivered, by channel",
            self.notification_failures.clone(),
        );
        r
    }

    /// Records one answered HTTP request: `ajar_http_requests_total{method,route,status}` and
    /// `ajar_http_request_duration_seconds{method,route}`. `route` must be a path template (or
    /// `unmatched`), never a raw path; `method` is normalised by [`method_label`].
    pub fn http_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let method = method_label(method);
        self.http_requests
            .get_or_create(&HttpLabels {
                method,
                route: route.to_owned(),
                status,
            })
            .inc();
        self.http_duration
            .get_or_create(&RouteLabels {
                method,
                route: route.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Hook: one access request was asked for. `kind` is `network` or `role`; `result` one of
    /// [`ACCESS_RESULTS`] — `accepted` (granted or approved at once), `pending` (awaits
    /// approval), `denied` (403: the caller lacks the action or is not eligible), `rejected`
    /// (other 4xx: invalid, unknown target, refused by policy) or `error` (5xx).
    /// Counts `ajar_access_requests_total{kind,result}`.
    pub fn access_request(&self, kind: &str, result: &str) {
        self.access_requests
            .get_or_create(&AccessLabels {
                kind: kind.to_owned(),
                result: result.to_owned(),
            })
            .inc();
    }

    /// Hook: the scheduler processed an expiry `seconds` after its end time. Observes
    /// `ajar_scheduler_lag_seconds`; negative values count as 0, non-finite ones are dropped.
    pub fn scheduler_lag(&self, seconds: f64) {
        if seconds.is_finite() {
            self.scheduler_lag.observe(seconds.max(0.0));
        }
    }

    /// Hook: one notification on `channel` (`webhook` or `email`) was delivered, or failed.
    /// Counts `ajar_notifications_delivered_total{channel}` or
    /// `ajar_notification_failures_total{channel}`.
    pub fn notification(&self, channel: &str, delivered: bool) {
        let family = if delivered {
            &self.notifications_delivered
        } else {
            &self.notification_failures
        };
        family
            .get_or_create(&ChannelLabels {
                channel: channel.to_owned(),
            })
            .inc();
    }

    /// The whole exposition: every recorded series, then the gauges read from the store at
    /// `now`, then `# EOF`.
    pub fn render(&self, gauges: &Gauges, now: Timestamp) -> String {
        let mut scraped = Registry::default();
        let open: Family<KindLabels, Gauge> = Family::default();
        open.get_or_create(&KindLabels { kind: "network" })
            .set(i64::try_from(gauges.open_network_grants).unwrap_or(i64::MAX));
        open.get_or_create(&KindLabels { kind: "role" })
            .set(i64::try_from(gauges.active_role_requests).unwrap_or(i64::MAX));
        scraped.register(
            "ajar_open_grants",
            "Access open now: network ports granted and not yet ended (kind=\"network\"), active role activations (kind=\"role\")",
            open,
        );
        let agents: Gauge = Gauge::default();
        agents.set(i64::try_from(gauges.agents.len()).unwrap_or(i64::MAX));
        scraped.register("ajar_agents", "Registered agents", agents);
        let exposures: Gauge = Gauge::default();
        exposures.set(i64::try_from(gauges.standing_exposures).unwrap_or(i64::MAX));
        scraped.register(
            "ajar_machine_standing_exposures",
            "Protected ports that something other than ajar leaves open to everyone, over all machines, as their enforcement points last reported",
            exposures,
        );
        let lag: Family<AgentLabels, Gauge<f64, AtomicU64>> = Family::default();
        for (agent, seen) in &gauges.agents {
            if let Some(seen) = seen {
                let seconds = now.duration_since(*seen).as_secs_f64().max(0.0);
                lag.get_or_create(&AgentLabels {
                    agent: agent.clone(),
                })
                .set(seconds);
            }
        }
        scraped.register(
            "ajar_agent_lag_seconds",
            "Seconds since each agent last polled its desired state; agents that never polled are left out",
            lag,
        );
        let mut out = String::with_capacity(8 * 1024);
        // Writing to a String cannot fail.
        let _ = encode_registry(&mut out, &self.registry)
            .and_then(|()| encode_registry(&mut out, &scraped))
            .and_then(|()| encode_eof(&mut out));
        out
    }
}

/// The `result` label of `ajar_access_requests_total` for the outcome of asking for access:
/// `Ok(pending)` when the request was stored (`pending` when it awaits approval, else
/// `accepted`), otherwise by the error's status: 403 `denied`, other 4xx `rejected`, else
/// `error`.
pub fn access_result(outcome: Result<bool, &AppError>) -> &'static str {
    match outcome {
        Ok(true) => "pending",
        Ok(false) => "accepted",
        Err(e) => match e.0.code.status() {
            403 => "denied",
            400..=499 => "rejected",
            _ => "error",
        },
    }
}

/// The `method` label: a standard method as is, anything else `other` (methods are free text
/// in HTTP, and labels must stay few).
pub fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "OPTIONS" => "OPTIONS",
        "CONNECT" => "CONNECT",
        "TRACE" => "TRACE",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_count_matches_inf() {
        let m = Metrics::new();
        for s in [0.0005, 0.003, 0.003, 20.0] {
            m.http_request("GET", "/x", 200, Duration::from_secs_f64(s));
        }
        let text = m.render(&Gauges::default(), Timestamp::UNIX_EPOCH);
        let line = |prefix: &str| {
            text.lines()
                .find(|l| l.starts_with(prefix))
                .unwrap_or_else(|| panic!("{prefix} missing in\n{text}"))
                .rsplit(' ')
                .next()
                .unwrap()
                .to_owned()
        };
        let b = |le: &str| {
            line(&format!(
                "ajar_http_request_duration_seconds_bucket{{le=\"{le}\",method=\"GET\",route=\"/x\"}}"
            ))
        };
        assert_eq!(b("0.001"), "1");
        assert_eq!(b("0.0025"), "1");
        assert_eq!(b("0.005"), "3");
        assert_eq!(b("10.0"), "3");
        assert_eq!(b("+Inf"), "4");
        assert_eq!(
            line("ajar_http_request_duration_seconds_count{method=\"GET\",route=\"/x\"}"),
            "4"
        );
        let sum: f64 = line("ajar_http_request_duration_seconds_sum{method=\"GET\",route=\"/x\"}")
            .parse()
            .unwrap();
        assert!((sum - 20.0065).abs() < 1e-6, "{sum}");
    }

    #[test]
    fn methods_outside_the_standard_set_share_one_label() {
        let m = Metrics::new();
        m.http_request("BREW", "unmatched", 405, Duration::ZERO);
        m.http_request("FROB", "unmatched", 405, Duration::ZERO);
        let text = m.render(&Gauges::default(), Timestamp::UNIX_EPOCH);
        assert!(text.contains(
            "ajar_http_requests_total{method=\"other\",route=\"unmatched\",status=\"405\"} 2\n"
        ));
        assert!(!text.contains("BREW"));
    }

    #[test]
    fn results_follow_the_error_status() {
        use ajar_api::ErrorCode;
        let e = |c| AppError::new(c, "x");
        assert_eq!(access_result(Ok(false)), "accepted");
        assert_eq!(access_result(Ok(true)), "pending");
        assert_eq!(
            access_result(Err(&e(ErrorCode::AuthorizationFailed))),
            "denied"
        );
        assert_eq!(access_result(Err(&e(ErrorCode::Conflict))), "rejected");
        assert_eq!(access_result(Err(&e(ErrorCode::InternalError))), "error");
    }
}
