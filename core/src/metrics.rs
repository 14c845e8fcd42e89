//! Counters and histograms, rendered as Prometheus text by [`render`].
//!
//! Labels are route names, provider ids, tenant names and status classes only — never
//! anything a caller controls freely or a secret.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use core::fmt::Write as _;
use core::time::Duration;

use crate::config::Config;
use crate::engine::{AttemptResult, State};

/// Latency histogram bucket bounds in milliseconds.
pub const BUCKETS_MS: [u64; 12] = [1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000];

/// A latency histogram.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Histogram {
    /// Cumulative-free counts per bucket (last = +Inf).
    pub counts: [u64; BUCKETS_MS.len() + 1],
    /// Sum in µs.
    pub sum_us: u64,
}

impl Histogram {
    /// Adds a sample.
    pub fn observe(&mut self, d: Duration) {
        let ms = d.as_millis() as u64;
        let i = BUCKETS_MS
            .iter()
            .position(|&b| ms <= b)
            .unwrap_or(BUCKETS_MS.len());
        self.counts[i] += 1;
        self.sum_us = self.sum_us.saturating_add(d.as_micros() as u64);
    }
}

/// All counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metrics {
    /// route → status class → requests answered.
    pub requests: BTreeMap<String, BTreeMap<&'static str, u64>>,
    /// route → provider → outcome → attempts finished.
    pub attempts: BTreeMap<String, BTreeMap<String, BTreeMap<&'static str, u64>>>,
    /// route → retries.
    pub retries: BTreeMap<String, u64>,
    /// route → result → cache lookups.
    pub cache: BTreeMap<String, BTreeMap<&'static str, u64>>,
    /// tenant → rate-limited or quota-refused requests.
    pub rate_limited: BTreeMap<String, u64>,
    /// tenant → requests refused for a route the tenant may not use.
    pub denied: BTreeMap<String, u64>,
    /// provider → latency.
    pub latency: BTreeMap<String, Histogram>,
    /// (endpoint, result) → webhook deliveries received.
    pub webhooks: BTreeMap<(String, &'static str), u64>,
}

fn class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

impl Metrics {
    /// A request answered with `status`.
    pub fn count_request(&mut self, route: &str, status: u16) {
        with_slot(&mut self.requests, route, |m| {
            *m.entry(class(status)).or_default() += 1;
        });
    }
    /// An attempt started (retries are counted by [`Metrics::count_retry`]).
    pub fn count_attempt(&mut self, _route: &str, _provider: &str, _retry: bool) {}
    /// An attempt finished.
    pub fn observe_attempt(
        &mut self,
        route: &str,
        provider: &str,
        r: AttemptResult,
        latency: Duration,
    ) {
        let outcome = match r {
            AttemptResult::Status(s) => class(s),
            AttemptResult::Error(e) => e.name(),
        };
        with_slot(&mut self.attempts, route, |m| {
            with_slot(m, provider, |m| *m.entry(outcome).or_default() += 1);
        });
        with_slot(&mut self.latency, provider, |h| h.observe(latency));
    }
    /// A retry.
    pub fn count_retry(&mut self, route: &str) {
        match self.retries.get_mut(route) {
            Some(v) => *v += 1,
            None => {
                self.retries.insert(String::from(route), 1);
            }
        }
    }
    /// A cache lookup result: `hit`, `miss`, `stale`, `stale-if-error`, `bypass`.
    pub fn count_cache(&mut self, route: &str, result: &'static str) {
        with_slot(&mut self.cache, route, |m| {
            *m.entry(result).or_default() += 1
        });
    }
    /// A request refused by a rate limit or quota.
    pub fn count_rate_limited(&mut self, tenant: &str) {
        *self.rate_limited.entry(String::from(tenant)).or_default() += 1;
    }
    /// A request refused because the tenant may not use the route.
    pub fn count_denied(&mut self, tenant: &str) {
        *self.denied.entry(String::from(tenant)).or_default() += 1;
    }
    /// A webhook delivery: `accepted`, `duplicate`, `rejected`, `too-large`.
    pub fn count_webhook(&mut self, endpoint: &str, result: &'static str) {
        *self
            .webhooks
            .entry((String::from(endpoint), result))
            .or_default() += 1;
    }
}

/// Calls `f` with the value under `key`, inserted empty when absent. Counting happens on every
/// request and new labels rarely: a present key costs one search and no allocation (a function
/// returning the reference instead would need a second search, as the borrow checker cannot
/// yet see that the first one's borrow ends on a miss).
fn with_slot<V: Default, R>(
    map: &mut BTreeMap<String, V>,
    key: &str,
    f: impl FnOnce(&mut V) -> R,
) -> R {
    if let Some(v) = map.get_mut(key) {
        return f(v);
    }
    f(map.entry(String::from(key)).or_default())
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Renders every metric as Prometheus text exposition format 0.0.4.
#[must_use]
pub fn render(config: &Config, state: &State) -> String {
    let m = &state.metrics;
    let mut o = String::new();
    let _ = writeln!(o, "# HELP mosaic_requests_total Requests answered, by route and status class.\n# TYPE mosaic_requests_total counter");
    for (r, classes) in &m.requests {
        for (c, v) in classes {
            let _ = writeln!(
                o,
                "mosaic_requests_total{{route=\"{}\",status=\"{c}\"}} {v}",
                esc(r)
            );
        }
    }
    let _ = writeln!(o, "# HELP mosaic_attempts_total Upstream attempts, by route, provider and outcome.\n# TYPE mosaic_attempts_total counter");
    for (r, providers) in &m.attempts {
        for (p, outcomes) in providers {
            for (out, v) in outcomes {
                let _ = writeln!(
                    o,
                    "mosaic_attempts_total{{route=\"{}\",provider=\"{}\",outcome=\"{out}\"}} {v}",
                    esc(r),
                    esc(p),
                );
            }
        }
    }
    let _ = writeln!(
        o,
        "# HELP mosaic_retries_total Retries, by route.\n# TYPE mosaic_retries_total counter"
    );
    for (r, v) in &m.retries {
        let _ = writeln!(o, "mosaic_retries_total{{route=\"{}\"}} {v}", esc(r));
    }
    let _ = writeln!(o, "# HELP mosaic_cache_total Cache lookups, by route and result.\n# TYPE mosaic_cache_total counter");
    for (r, results) in &m.cache {
        for (res, v) in results {
            let _ = writeln!(
                o,
                "mosaic_cache_total{{route=\"{}\",result=\"{res}\"}} {v}",
                esc(r)
            );
        }
    }
    let _ = writeln!(o, "# HELP mosaic_rate_limited_total Requests refused by rate limits or quotas, by tenant.\n# TYPE mosaic_rate_limited_total counter");
    for (t, v) in &m.rate_limited {
        let _ = writeln!(o, "mosaic_rate_limited_total{{tenant=\"{}\"}} {v}", esc(t));
    }
    let _ = writeln!(o, "# HELP mosaic_webhooks_total Webhook deliveries, by endpoint and result.\n# TYPE mosaic_webhooks_total counter");
    for ((e, res), v) in &m.webhooks {
        let _ = writeln!(
            o,
            "mosaic_webhooks_total{{endpoint=\"{}\",result=\"{res}\"}} {v}",
            esc(e)
        );
    }
    let _ = writeln!(o, "# HELP mosaic_breaker_state Circuit state by route and provider (0 closed, 1 half-open, 2 open).\n# TYPE mosaic_breaker_state gauge");
    for (ri, route) in config.routes.iter().enumerate() {
        for (slot, &p) in route.providers.iter().enumerate() {
            let Some(b) = state.routes.get(ri).and_then(|r| r.breakers.get(slot)) else {
                continue;
            };
            let v = match b.state() {
                crate::breaker::State::Closed => 0,
                crate::breaker::State::HalfOpen { .. } => 1,
                crate::breaker::State::Open { .. } => 2,
            };
            let _ = writeln!(
                o,
                "mosaic_breaker_state{{route=\"{}\",provider=\"{}\"}} {v}",
                esc(&route.name),
                esc(&config.providers[p].id)
            );
        }
    }
    let _ = writeln!(o, "# HELP mosaic_upstream_latency_seconds Upstream attempt latency, by provider.\n# TYPE mosaic_upstream_latency_seconds histogram");
    for (p, h) in &m.latency {
        let mut cum = 0;
        for (i, b) in BUCKETS_MS.iter().enumerate() {
            cum += h.counts[i];
            let _ = writeln!(
                o,
                "mosaic_upstream_latency_seconds_bucket{{provider=\"{}\",le=\"{}\"}} {cum}",
                esc(p),
                format_secs(*b)
            );
        }
        cum += h.counts[BUCKETS_MS.len()];
        let _ = writeln!(
            o,
            "mosaic_upstream_latency_seconds_bucket{{provider=\"{}\",le=\"+Inf\"}} {cum}",
            esc(p)
        );
        let _ = writeln!(
            o,
            "mosaic_upstream_latency_seconds_sum{{provider=\"{}\"}} {}",
            esc(p),
            h.sum_us as f64 / 1e6
        );
        let _ = writeln!(
            o,
            "mosaic_upstream_latency_seconds_count{{provider=\"{}\"}} {cum}",
            esc(p)
        );
    }
    o
}

fn format_secs(ms: u64) -> String {
    format!("{}", ms as f64 / 1000.0)
}
