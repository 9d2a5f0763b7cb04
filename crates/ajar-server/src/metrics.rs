//! Metrics in the Prometheus text exposition format (version 0.0.4), written by hand.
//!
//! [`Metrics`] lives in [`crate::AppState`]; counters and histograms are atomics (a labelled
//! series is found under a read lock and created once under a write lock), so recording never
//! waits for a scrape. Gauges about stored state (open grants, agents) are not kept here: they
//! are read from the store at scrape time and passed to [`Metrics::render`].
//!
//! Label values are bounded: `route` is the matched path template (or `unmatched`), `method`
//! one of the standard methods (or `other`), and the remaining labels are chosen by ajar's own
//! code, so no client can create series at will.

use crate::error::AppError;
use ajar_store::Gauges;
use jiff::Timestamp;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// The `Content-Type` of `GET /metrics`.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

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

/// Every counter and histogram the server records, and the text rendering of them plus the
/// scrape-time gauges.
#[derive(Debug)]
pub struct Metrics {
    http_requests: Family<AtomicU64>,
    http_duration: Family<Histogram>,
    access_requests: Family<AtomicU64>,
    scheduler_lag: Histogram,
    notifications_delivered: Family<AtomicU64>,
    notification_failures: Family<AtomicU64>,
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
        let m = Metrics {
            http_requests: Family::default(),
            http_duration: Family::default(),
            access_requests: Family::default(),
            scheduler_lag: Histogram::new(LAG_BUCKETS),
            notifications_delivered: Family::default(),
            notification_failures: Family::default(),
        };
        for kind in ACCESS_KINDS {
            for result in ACCESS_RESULTS {
                m.access_requests.get(&[kind, result], AtomicU64::default);
            }
        }
        for channel in CHANNELS {
            m.notifications_delivered
                .get(&[channel], AtomicU64::default);
            m.notification_failures.get(&[channel], AtomicU64::default);
        }
        m
    }

    /// Records one answered HTTP request: `ajar_http_requests_total{method,route,status}` and
    /// `ajar_http_request_duration_seconds{method,route}`. `route` must be a path template (or
    /// `unmatched`), never a raw path; `method` is normalised by [`method_label`].
    pub fn http_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let method = method_label(method);
        let status = status.to_string();
        self.http_requests
            .get(&[method, route, &status], AtomicU64::default)
            .fetch_add(1, Ordering::Relaxed);
        self.http_duration
            .get(&[method, route], || Histogram::new(HTTP_BUCKETS))
            .observe(elapsed.as_secs_f64());
    }

    /// Hook: one access request was asked for. `kind` is `network` or `role`; `result` one of
    /// [`ACCESS_RESULTS`] — `accepted` (granted or approved at once), `pending` (awaits
    /// approval), `denied` (403: the caller lacks the action or is not eligible), `rejected`
    /// (other 4xx: invalid, unknown target, refused by policy) or `error` (5xx).
    /// Counts `ajar_access_requests_total{kind,result}`.
    pub fn access_request(&self, kind: &str, result: &str) {
        self.access_requests
            .get(&[kind, result], AtomicU64::default)
            .fetch_add(1, Ordering::Relaxed);
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
            .get(&[channel], AtomicU64::default)
            .fetch_add(1, Ordering::Relaxed);
    }

    /// The whole exposition: every recorded series, then the gauges read from the store at
    /// `now`.
    pub fn render(&self, gauges: &Gauges, now: Timestamp) -> String {
        let mut out = String::with_capacity(8 * 1024);
        header(
            &mut out,
            "ajar_http_requests_total",
            "counter",
            "HTTP requests answered, by method, matched route template and status.",
        );
        self.http_requests.each(|labels, c| {
            sample(
                &mut out,
                "ajar_http_requests_total",
                &[
                    ("method", &labels[0]),
                    ("route", &labels[1]),
                    ("status", &labels[2]),
                ],
                c.load(Ordering::Relaxed) as f64,
            );
        });
        header(
            &mut out,
            "ajar_http_request_duration_seconds",
            "histogram",
            "Time from receiving an HTTP request to its response, by method and route template.",
        );
        self.http_duration.each(|labels, h| {
            h.render(
                &mut out,
                "ajar_http_request_duration_seconds",
                &[("method", &labels[0]), ("route", &labels[1])],
            );
        });
        header(
            &mut out,
            "ajar_access_requests_total",
            "counter",
            "Access requests asked for, by kind (network, role) and result (accepted, pending, denied, rejected, error).",
        );
        self.access_requests.each(|labels, c| {
            sample(
                &mut out,
                "ajar_access_requests_total",
                &[("kind", &labels[0]), ("result", &labels[1])],
                c.load(Ordering::Relaxed) as f64,
            );
        });
        header(
            &mut out,
            "ajar_scheduler_lag_seconds",
            "histogram",
            "Seconds between an end time and the scheduler processing its expiry.",
        );
        self.scheduler_lag
            .render(&mut out, "ajar_scheduler_lag_seconds", &[]);
        for (name, help, family) in [
            (
                "ajar_notifications_delivered_total",
                "Notifications delivered, by channel.",
                &self.notifications_delivered,
            ),
            (
                "ajar_notification_failures_total",
                "Notifications that could not be delivered, by channel.",
                &self.notification_failures,
            ),
        ] {
            header(&mut out, name, "counter", help);
            family.each(|labels, c| {
                sample(
                    &mut out,
                    name,
                    &[("channel", &labels[0])],
                    c.load(Ordering::Relaxed) as f64,
                );
            });
        }
        header(
            &mut out,
            "ajar_open_grants",
            "gauge",
            "Access open now: network ports granted and not yet ended (kind=\"network\"), active role activations (kind=\"role\").",
        );
        sample(
            &mut out,
            "ajar_open_grants",
            &[("kind", "network")],
            gauges.open_network_grants as f64,
        );
        sample(
            &mut out,
            "ajar_open_grants",
            &[("kind", "role")],
            gauges.active_role_requests as f64,
        );
        header(&mut out, "ajar_agents", "gauge", "Registered agents.");
        sample(&mut out, "ajar_agents", &[], gauges.agents.len() as f64);
        header(
            &mut out,
            "ajar_agent_lag_seconds",
            "gauge",
            "Seconds since each agent last polled its desired state; agents that never polled are left out.",
        );
        for (agent, seen) in &gauges.agents {
            if let Some(seen) = seen {
                let lag = now.duration_since(*seen).as_secs_f64().max(0.0);
                sample(&mut out, "ajar_agent_lag_seconds", &[("agent", agent)], lag);
            }
        }
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

/// Escapes a label value for the text format: `\` → `\\`, `"` → `\"`, newline → `\n`.
pub fn escape_label_value(value: &str) -> String {
    let mut s = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// A sample value as the text format spells it.
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        v.to_string()
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: f64) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{k}=\"{}\"", escape_label_value(v));
        }
        out.push('}');
    }
    let _ = writeln!(out, " {}", number(value));
}

/// Series of one metric by label values, in label order.
#[derive(Debug)]
struct Family<T> {
    series: RwLock<BTreeMap<Vec<String>, Arc<T>>>,
}

impl<T> Default for Family<T> {
    fn default() -> Self {
        Self {
            series: RwLock::default(),
        }
    }
}

impl<T> Family<T> {
    /// The series for `labels`, created by `new` the first time.
    fn get(&self, labels: &[&str], new: impl FnOnce() -> T) -> Arc<T> {
        let key: Vec<String> = labels.iter().map(|l| (*l).to_owned()).collect();
        if let Some(s) = self
            .series
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return s.clone();
        }
        self.series
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key)
            .or_insert_with(|| Arc::new(new()))
            .clone()
    }

    /// Calls `f` with every series, in label order.
    fn each(&self, mut f: impl FnMut(&[String], &T)) {
        let series: Vec<(Vec<String>, Arc<T>)> = self
            .series
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (labels, s) in &series {
            f(labels, s);
        }
    }
}

/// A histogram with fixed buckets; counts per bucket (not cumulative) and the sum as `f64`
/// bits, all atomic.
#[derive(Debug)]
struct Histogram {
    bounds: &'static [f64],
    /// One count per bound, then the `+Inf` overflow.
    counts: Box<[AtomicU64]>,
    sum: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0f64.to_bits()),
        }
    }

    fn observe(&self, v: f64) {
        let i = self
            .bounds
            .iter()
            .position(|b| v <= *b)
            .unwrap_or(self.bounds.len());
        if let Some(c) = self.counts.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let _ = self
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + v).to_bits())
            });
    }

    /// `_bucket` lines (cumulative), `_sum` and `_count`; `_count` is the `+Inf` bucket, so the
    /// two always agree even while requests are recorded.
    fn render(&self, out: &mut String, name: &str, labels: &[(&str, &str)]) {
        let bucket = format!("{name}_bucket");
        let mut cumulative = 0u64;
        for (i, c) in self.counts.iter().enumerate() {
            cumulative += c.load(Ordering::Relaxed);
            let le = self
                .bounds
                .get(i)
                .map_or_else(|| "+Inf".to_owned(), |b| number(*b));
            let mut with_le = labels.to_vec();
            with_le.push(("le", &le));
            sample(out, &bucket, &with_le, cumulative as f64);
        }
        let sum = f64::from_bits(self.sum.load(Ordering::Relaxed));
        sample(out, &format!("{name}_sum"), labels, sum);
        sample(out, &format!("{name}_count"), labels, cumulative as f64);
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
        let b = "ajar_http_request_duration_seconds_bucket{method=\"GET\",route=\"/x\",le=";
        assert_eq!(line(&format!("{b}\"0.001\"}}")), "1");
        assert_eq!(line(&format!("{b}\"0.0025\"}}")), "1");
        assert_eq!(line(&format!("{b}\"0.005\"}}")), "3");
        assert_eq!(line(&format!("{b}\"10\"}}")), "3");
        assert_eq!(line(&format!("{b}\"+Inf\"}}")), "4");
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
