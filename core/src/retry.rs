//! Retry policy: attempts, timeouts, backoff with full jitter, and a retry budget.
//!
//! # Why a budget and not only a maximum
//! A bare "retry up to 3 times" multiplies load by up to 3 exactly when an upstream is
//! struggling, and every layer of a system that does the same multiplies again: a retry storm.
//! A budget (as in tower and Finagle) caps retries to a fraction of recent *requests* — with
//! `ratio = 0.2`, at most one retry per five requests over the window, plus a small floor
//! (`min_per_sec`) so that a quiet route can still retry. When an upstream fails hard, the
//! budget runs dry and callers get fast errors instead of amplified load.
//!
//! Backoff uses "full jitter" (AWS architecture blog): sleep a uniform random time in
//! `[0, min(max, base · 2^n))`, which spreads synchronized retries best.

use alloc::vec::Vec;
use core::time::Duration;

use crate::rng::Rng;
use crate::time::{duration_micros, Instant};

/// Exponential backoff bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Base delay (the cap of the first retry's jitter range).
    pub base: Duration,
    /// Largest delay.
    pub max: Duration,
}

impl Backoff {
    /// The upper bound of the delay before retry number `retry` (1-based).
    #[must_use]
    pub fn ceiling(&self, retry: u32) -> Duration {
        let shift = retry.saturating_sub(1).min(30);
        self.base
            .checked_mul(1u32 << shift)
            .unwrap_or(self.max)
            .min(self.max)
    }

    /// A full-jitter delay before retry number `retry` (1-based): uniform in `[0, ceiling)`.
    pub fn delay(&self, retry: u32, rng: &mut Rng) -> Duration {
        let cap = duration_micros(self.ceiling(retry));
        Duration::from_micros(rng.below(cap))
    }
}

/// Retry budget policy.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BudgetPolicy {
    /// Retries allowed per request over the window.
    pub ratio: f64,
    /// Retries per second always allowed.
    pub min_per_sec: u32,
    /// Window length.
    pub window: Duration,
}

impl Default for BudgetPolicy {
    fn default() -> Self {
        BudgetPolicy {
            ratio: 0.2,
            min_per_sec: 10,
            window: Duration::from_secs(10),
        }
    }
}

/// Retry policy of a route.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Backoff.
    pub backoff: Backoff,
    /// Statuses that are retried.
    pub retry_on_status: Vec<u16>,
    /// Budget.
    pub budget: BudgetPolicy,
    /// Whether non-idempotent requests may be retried after they were sent.
    pub non_idempotent: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            backoff: Backoff {
                base: Duration::from_millis(25),
                max: Duration::from_secs(1),
            },
            retry_on_status: alloc::vec![502, 503, 504],
            budget: BudgetPolicy::default(),
            non_idempotent: false,
        }
    }
}

/// Per-attempt and overall time limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeoutPolicy {
    /// One attempt.
    pub per_try: Duration,
    /// The whole request, retries and sleeps included.
    pub total: Duration,
}

impl Default for TimeoutPolicy {
    fn default() -> Self {
        TimeoutPolicy {
            per_try: Duration::from_secs(5),
            total: Duration::from_secs(15),
        }
    }
}

const SLOTS: usize = 10;

/// A retry budget: counts requests and retries in time slots over the window.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RetryBudget {
    /// (slot start in µs, requests, retries)
    slots: [(u64, u32, u32); SLOTS],
}

impl RetryBudget {
    fn slot(&mut self, policy: &BudgetPolicy, now: Instant) -> &mut (u64, u32, u32) {
        let width = (duration_micros(policy.window) / SLOTS as u64).max(1);
        let start = now.as_micros() / width * width;
        let ix = ((now.as_micros() / width) % SLOTS as u64) as usize;
        let s = &mut self.slots[ix];
        if s.0 != start {
            *s = (start, 0, 0);
        }
        s
    }

    fn totals(&self, policy: &BudgetPolicy, now: Instant) -> (u64, u64) {
        let window = duration_micros(policy.window);
        let oldest = now.as_micros().saturating_sub(window);
        self.slots
            .iter()
            .filter(|s| s.0 >= oldest && s.0 <= now.as_micros() && (s.1 > 0 || s.2 > 0))
            .fold((0, 0), |(a, b), s| (a + u64::from(s.1), b + u64::from(s.2)))
    }

    /// Records an original request.
    pub fn deposit(&mut self, policy: &BudgetPolicy, now: Instant) {
        let s = self.slot(policy, now);
        s.1 = s.1.saturating_add(1);
    }

    /// Takes one retry from the budget if there is one.
    pub fn withdraw(&mut self, policy: &BudgetPolicy, now: Instant) -> bool {
        let (requests, retries) = self.totals(policy, now);
        let floor = u64::from(policy.min_per_sec) * policy.window.as_secs().max(1);
        let allowed = floor as f64 + policy.ratio * requests as f64;
        if (retries + 1) as f64 <= allowed {
            let s = self.slot(policy, now);
            s.2 = s.2.saturating_add(1);
            true
        } else {
            false
        }
    }
}

/// Parses a `Retry-After` value: delay-seconds or an IMF-fixdate, relative to `now`.
/// Returns the instant after which a retry is welcome; `None` if unparseable.
#[must_use]
pub fn parse_retry_after(value: &str, now: Instant) -> Option<Instant> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(now + Duration::from_secs(secs.min(86_400)));
    }
    let t = crate::httpdate::parse_http_date(v)?;
    Some(if t < now { now } else { t })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_ceiling_doubles_to_the_cap() {
        let b = Backoff {
            base: Duration::from_millis(10),
            max: Duration::from_millis(100),
        };
        let c: Vec<u64> = (1..=6).map(|n| b.ceiling(n).as_millis() as u64).collect();
        assert_eq!(c, [10, 20, 40, 80, 100, 100]);
        assert_eq!(b.ceiling(1000), Duration::from_millis(100));
    }

    #[test]
    fn budget_allows_floor_plus_ratio() {
        let p = BudgetPolicy {
            ratio: 0.5,
            min_per_sec: 0,
            window: Duration::from_secs(10),
        };
        let mut b = RetryBudget::default();
        let now = Instant::from_secs(100);
        assert!(!b.withdraw(&p, now), "no requests, no floor: no retry");
        for _ in 0..4 {
            b.deposit(&p, now);
        }
        assert!(b.withdraw(&p, now));
        assert!(b.withdraw(&p, now));
        assert!(!b.withdraw(&p, now), "4 requests × 0.5 = 2 retries");
        // after the window, the old requests and retries no longer count
        let later = now + Duration::from_secs(11);
        assert!(!b.withdraw(&p, later));
        b.deposit(&p, later);
        b.deposit(&p, later);
        assert!(b.withdraw(&p, later));
    }

    #[test]
    fn budget_floor() {
        let p = BudgetPolicy {
            ratio: 0.0,
            min_per_sec: 1,
            window: Duration::from_secs(10),
        };
        let mut b = RetryBudget::default();
        let now = Instant::from_secs(5);
        let granted = (0..20).filter(|_| b.withdraw(&p, now)).count();
        assert_eq!(granted, 10, "1/s over a 10 s window");
    }

    #[test]
    fn retry_after_forms() {
        let now = Instant::from_secs(1_000);
        assert_eq!(parse_retry_after("7", now), Some(Instant::from_secs(1_007)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(now));
        assert_eq!(
            parse_retry_after("99999999", now),
            Some(Instant::from_secs(1_000 + 86_400))
        );
        // Sun, 06 Nov 1994 08:49:37 GMT = 784111777
        let then = Instant::from_secs(784_111_700);
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", then),
            Some(Instant::from_secs(784_111_777))
        );
        assert_eq!(
            parse_retry_after(
                "Sun, 06 Nov 1994 08:49:37 GMT",
                now + Duration::from_secs(1 << 30)
            ),
            Some(now + Duration::from_secs(1 << 30))
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }
}
