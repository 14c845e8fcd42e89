//! Rate limiting with GCRA (the generic cell rate algorithm).
//!
//! GCRA keeps one number per key — the theoretical arrival time (TAT) — so its state fits a
//! KV value and a snapshot. A request at `now` is admitted when `now ≥ TAT − burst·T`
//! (`T` = 1/rate); admitting moves TAT to `max(TAT, now) + T`. It admits `burst` requests at
//! once and then exactly `rate` per second, with no bucket refills to schedule.

use core::time::Duration;

use crate::time::Instant;

/// A rate limit: sustained `rate` per second with bursts of `burst`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    /// Emission interval T = 1 / rate, in µs.
    pub interval_us: u64,
    /// Burst size.
    pub burst: u32,
}

impl RateLimit {
    /// A limit of `rate` per second (> 0) and `burst` (≥ 1).
    #[must_use]
    pub fn new(rate: f64, burst: u32) -> RateLimit {
        let interval = if rate > 0.0 { 1_000_000.0 / rate } else { 1e15 };
        RateLimit {
            interval_us: (interval as u64).max(1),
            burst: burst.max(1),
        }
    }
}

/// The outcome of a check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Admitted.
    pub allowed: bool,
    /// The new TAT to store (unchanged when refused).
    pub tat: Instant,
    /// When refused: how long until a request would be admitted.
    pub retry_after: Duration,
    /// Requests still admissible right now after this one.
    pub remaining: u32,
    /// Time until the limiter is completely refilled.
    pub reset: Duration,
}

/// Checks one request against `limit` given the stored TAT (`None` = never seen).
#[must_use]
pub fn check(limit: &RateLimit, tat: Option<Instant>, now: Instant) -> Decision {
    let t = limit.interval_us;
    let tau = t.saturating_mul(u64::from(limit.burst));
    let now_us = now.as_micros();
    let tat_us = tat.map_or(now_us, |x| x.as_micros()).max(now_us);
    let new_tat = tat_us.saturating_add(t);
    let allow_at = new_tat.saturating_sub(tau);
    if now_us >= allow_at {
        let backlog = new_tat - now_us; // ≤ tau
        let remaining = ((tau - backlog.min(tau)) / t) as u32;
        Decision {
            allowed: true,
            tat: Instant::from_micros(new_tat),
            retry_after: Duration::ZERO,
            remaining,
            reset: Duration::from_micros(backlog),
        }
    } else {
        Decision {
            allowed: false,
            tat: Instant::from_micros(tat_us),
            retry_after: Duration::from_micros(allow_at - now_us),
            remaining: 0,
            reset: Duration::from_micros(tat_us - now_us),
        }
    }
}

/// Window in µs after which an untouched key's TAT is in the past and can be forgotten.
#[must_use]
pub fn forget_after(limit: &RateLimit) -> Duration {
    Duration::from_micros(limit.interval_us.saturating_mul(u64::from(limit.burst)))
}

/// For KV stores with TTLs: how long a stored TAT matters after `now`.
#[must_use]
pub fn ttl(tat: Instant, now: Instant) -> Duration {
    Duration::from_micros(tat.as_micros().saturating_sub(now.as_micros()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rate() {
        let l = RateLimit::new(10.0, 5); // T = 100 ms
        let mut tat = None;
        let now = Instant::from_secs(1000);
        let mut admitted = 0;
        for _ in 0..20 {
            let d = check(&l, tat, now);
            if d.allowed {
                admitted += 1;
                tat = Some(d.tat);
            }
        }
        assert_eq!(admitted, 5, "burst");
        let d = check(&l, tat, now);
        assert!(!d.allowed);
        assert_eq!(d.retry_after, Duration::from_millis(100));
        // a second later the burst is back, capped at 5 (not 10)
        let later = now + Duration::from_secs(1);
        let mut more = 0;
        for _ in 0..20 {
            let d = check(&l, tat, later);
            if d.allowed {
                more += 1;
                tat = Some(d.tat);
            }
        }
        assert_eq!(more, 5);
        // then exactly the rate: one every 100 ms is admitted, one 50 ms later is not
        let mut t = later;
        for _ in 0..50 {
            t = t + Duration::from_millis(100);
            let d = check(&l, tat, t);
            assert!(d.allowed);
            tat = Some(d.tat);
            let early = check(&l, tat, t + Duration::from_millis(50));
            assert!(!early.allowed);
        }
    }

    #[test]
    fn remaining_counts_down() {
        let l = RateLimit::new(1.0, 3);
        let now = Instant::from_secs(10);
        let a = check(&l, None, now);
        assert_eq!((a.allowed, a.remaining), (true, 2));
        let b = check(&l, Some(a.tat), now);
        assert_eq!((b.allowed, b.remaining), (true, 1));
        let c = check(&l, Some(b.tat), now);
        assert_eq!((c.allowed, c.remaining), (true, 0));
        let d = check(&l, Some(c.tat), now);
        assert!(!d.allowed);
        assert_eq!(d.tat, c.tat, "refusal does not move TAT");
        assert_eq!(d.reset, Duration::from_secs(3));
    }
}
