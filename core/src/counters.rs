//! The counters the engine writes as it runs. Their public path is `metrics::{Metrics,
//! Histogram, BUCKETS_MS}`; they live here, below the engine, apart from their exposition
//! (`metrics::render`, which reads the engine's state), so that no two modules import each
//! other.

use alloc::collections::BTreeMap;
use alloc::string::String;
use core::time::Duration;

use crate::attempt::AttemptResult;

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
