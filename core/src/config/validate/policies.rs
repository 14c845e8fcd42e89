//! Route policies (`retry`, `timeout`, `breaker`, `cache`, `limit`), each set on the route or
//! else in `[defaults]`; the rate-limit check also serves tenants.

use alloc::format;
use alloc::string::ToString;
use core::time::Duration;

use super::ms;
use crate::breaker::{BreakerPolicy, FailureClass, Window};
use crate::cache::CachePolicy;
use crate::config::error::Errs;
use crate::config::raw::{RawBreaker, RawCache, RawLimit, RawPolicies, RawRetry, RawTimeout};
use crate::limit::RateLimit;
use crate::retry::{Backoff, BudgetPolicy, RetryPolicy, TimeoutPolicy};

/// A route's policies, validated.
pub(super) struct Policies {
    pub(super) retry: RetryPolicy,
    pub(super) timeout: TimeoutPolicy,
    pub(super) breaker: BreakerPolicy,
    pub(super) cache: CachePolicy,
    pub(super) limit: Option<RateLimit>,
}

/// Checks the policies of the route at `at`: its own, else `defaults`, else the built-in
/// defaults. `None` when the retry, timeout or breaker policy is unusable (a bad rate limit is
/// reported and dropped).
pub(super) fn route(
    own: &RawPolicies,
    defaults: &RawPolicies,
    at: &str,
    non_idempotent: bool,
    e: &mut Errs,
) -> Option<Policies> {
    let retry = pick(&own.retry, &defaults.retry);
    let timeout = pick(&own.timeout, &defaults.timeout);
    let breaker = pick(&own.breaker, &defaults.breaker);
    let cache = pick(&own.cache, &defaults.cache);
    let limit = own.limit.clone().or_else(|| defaults.limit.clone());

    let retry = parse_retry(&retry, &format!("{at}.retry"), e, non_idempotent);
    let timeout = parse_timeout(&timeout, &format!("{at}.timeout"), e);
    let breaker = parse_breaker(&breaker, &format!("{at}.breaker"), e);
    let cache = parse_cache(&cache);
    let limit = limit.and_then(|l| parse_limit(&l, &format!("{at}.limit"), e));
    Some(Policies {
        retry: retry?,
        timeout: timeout?,
        breaker: breaker?,
        cache,
        limit,
    })
}

/// The route's own setting, else the default one, else the built-in default.
fn pick<T: Clone + Default>(route: &Option<T>, default: &Option<T>) -> T {
    route
        .clone()
        .or_else(|| default.clone())
        .unwrap_or_default()
}

/// Checks a rate limit at `at`.
pub(super) fn parse_limit(l: &RawLimit, at: &str, e: &mut Errs) -> Option<RateLimit> {
    if !(l.rate.is_finite() && l.rate > 0.0 && l.rate <= 1_000_000.0) {
        e.push(
            format!("{at}.rate"),
            "must be a number of requests per second in (0, 1000000]",
        );
        return None;
    }
    let burst = l.burst.unwrap_or(1);
    if burst == 0 {
        e.push(format!("{at}.burst"), "must be at least 1");
        return None;
    }
    Some(RateLimit::new(l.rate, burst))
}

/// Checks timeouts at `at`: both must be greater than 0.
fn parse_timeout(t: &RawTimeout, at: &str, e: &mut Errs) -> Option<TimeoutPolicy> {
    let timeout = TimeoutPolicy {
        per_try: ms(t.per_try_ms, 5_000),
        total: ms(t.total_ms, 15_000),
    };
    if timeout.per_try.is_zero() || timeout.total.is_zero() {
        e.push(at, "timeouts must be greater than 0");
        return None;
    }
    Some(timeout)
}

/// The cache policy; nothing in it can be wrong.
fn parse_cache(c: &RawCache) -> CachePolicy {
    CachePolicy {
        enabled: c.enabled.unwrap_or(false),
        ttl: Duration::from_secs(c.ttl_s.unwrap_or(0)),
        override_upstream: c.override_upstream.unwrap_or(false),
        stale_while_revalidate: c.stale_while_revalidate_s.map(Duration::from_secs),
        stale_if_error: c.stale_if_error_s.map(Duration::from_secs),
        vary: c
            .vary
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|h| h.to_ascii_lowercase())
            .collect(),
    }
}

/// Checks a retry policy at `at`.
fn parse_retry(r: &RawRetry, at: &str, e: &mut Errs, non_idempotent: bool) -> Option<RetryPolicy> {
    let mut ok = true;
    let attempts = r.attempts.unwrap_or(3);
    if attempts == 0 || attempts > 10 {
        ok = false;
        e.push(
            format!("{at}.attempts"),
            format!("{attempts} is out of range; expected 1..=10"),
        );
    }
    let ratio = r.budget_ratio.unwrap_or(0.2);
    if !(ratio.is_finite() && (0.0..=10.0).contains(&ratio)) {
        ok = false;
        e.push(format!("{at}.budget_ratio"), "must be between 0 and 10");
    }
    let statuses = r
        .on_status
        .clone()
        .unwrap_or_else(|| alloc::vec![502, 503, 504]);
    for (k, s) in statuses.iter().enumerate() {
        if !(100..=599).contains(s) {
            ok = false;
            e.push(
                format!("{at}.on_status[{k}]"),
                format!("{s} is not an HTTP status"),
            );
        }
    }
    let base = ms(r.backoff_base_ms, 25);
    let max = ms(r.backoff_max_ms, 1_000);
    if max < base {
        ok = false;
        e.push(
            format!("{at}.backoff_max_ms"),
            "must be at least backoff_base_ms",
        );
    }
    ok.then(|| RetryPolicy {
        max_attempts: attempts,
        backoff: Backoff { base, max },
        retry_on_status: statuses,
        budget: BudgetPolicy {
            ratio,
            min_per_sec: r.budget_min_per_sec.unwrap_or(10),
            window: Duration::from_secs(10),
        },
        non_idempotent,
    })
}

/// `v` (default `default`), reported at `at` unless a rate between 0 and 1.
fn rate(v: Option<f64>, default: f64, at: &str, e: &mut Errs) -> f64 {
    let v = v.unwrap_or(default);
    if !(v.is_finite() && (0.0..=1.0).contains(&v)) {
        e.push(at.to_string(), format!("{v} is not a rate between 0 and 1"));
    }
    v
}

/// Checks a circuit-breaker policy at `at`.
fn parse_breaker(b: &RawBreaker, at: &str, e: &mut Errs) -> Option<BreakerPolicy> {
    let before = e.0.len();
    let size = b.size.unwrap_or(20);
    let window = match b.window.as_deref().unwrap_or("count") {
        "count" => {
            if !(1..=1000).contains(&size) {
                e.push(format!("{at}.size"), "a count window holds 1..=1000 calls");
            }
            Window::Count(size)
        }
        "time" => {
            if !(1..=600).contains(&size) {
                e.push(format!("{at}.size"), "a time window spans 1..=600 seconds");
            }
            Window::Time(size)
        }
        other => {
            e.push(
                format!("{at}.window"),
                format!("unknown window \"{other}\"; expected count or time"),
            );
            Window::Count(size)
        }
    };
    let failure_rate = rate(b.failure_rate, 0.5, &format!("{at}.failure_rate"), e);
    let slow_rate = rate(b.slow_rate, 1.0, &format!("{at}.slow_rate"), e);
    let mut failure = FailureClass::default();
    if let Some(list) = &b.failure_on {
        failure = FailureClass::none();
        for (k, item) in list.iter().enumerate() {
            if let Err(m) = failure.add(item) {
                e.push(format!("{at}.failure_on[{k}]"), m);
            }
        }
    }
    let open = ms(b.open_ms, 5_000);
    let open_max = ms(b.open_max_ms, 60_000);
    if open_max < open {
        e.push(format!("{at}.open_max_ms"), "must be at least open_ms");
    }
    let probes = b.half_open_probes.unwrap_or(1);
    if probes == 0 {
        e.push(format!("{at}.half_open_probes"), "must be at least 1");
    }
    (e.0.len() == before).then(|| BreakerPolicy {
        window,
        min_calls: b.min_calls.unwrap_or(5).max(1),
        failure_rate,
        slow_rate,
        slow_call: ms(b.slow_ms, 2_000),
        open_base: open,
        open_max,
        half_open_probes: probes,
        failure,
    })
}
