//! Time as an input.
//!
//! Core never reads a clock. Every time-dependent call takes an [`Instant`] that the host
//! reads from its own clock (`Date.now()` on Workers, `SystemTime` natively, a virtual clock in
//! tests). One clock serves both jobs core needs: measuring latency and comparing against
//! wall-clock timestamps (webhook replay windows, cache `Expires`), so an `Instant` is simply
//! microseconds since the Unix epoch.

use core::fmt;
use core::ops::{Add, Sub};
use core::time::Duration;

/// A point in time: microseconds since 1970-01-01T00:00:00Z, supplied by the host.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(u64);

impl Instant {
    /// The Unix epoch.
    pub const EPOCH: Instant = Instant(0);
    /// The largest representable instant; used as "never".
    pub const MAX: Instant = Instant(u64::MAX);

    /// From microseconds since the Unix epoch.
    #[must_use]
    pub const fn from_micros(us: u64) -> Self {
        Instant(us)
    }
    /// From milliseconds since the Unix epoch (what `Date.now()` gives on Workers).
    #[must_use]
    pub const fn from_millis(ms: u64) -> Self {
        Instant(ms.saturating_mul(1_000))
    }
    /// From whole seconds since the Unix epoch.
    #[must_use]
    pub const fn from_secs(s: u64) -> Self {
        Instant(s.saturating_mul(1_000_000))
    }
    /// Microseconds since the Unix epoch.
    #[must_use]
    pub const fn as_micros(self) -> u64 {
        self.0
    }
    /// Milliseconds since the Unix epoch (truncated).
    #[must_use]
    pub const fn as_millis(self) -> u64 {
        self.0 / 1_000
    }
    /// Whole seconds since the Unix epoch (truncated).
    #[must_use]
    pub const fn as_secs(self) -> u64 {
        self.0 / 1_000_000
    }
    /// The time elapsed since `earlier`, or zero if `earlier` is later.
    #[must_use]
    pub fn saturating_since(self, earlier: Instant) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }
    /// `self + d`, saturating at [`Instant::MAX`].
    #[must_use]
    pub fn saturating_add(self, d: Duration) -> Instant {
        Instant(self.0.saturating_add(duration_micros(d)))
    }
    /// `self - d`, saturating at the epoch.
    #[must_use]
    pub fn saturating_sub(self, d: Duration) -> Instant {
        Instant(self.0.saturating_sub(duration_micros(d)))
    }
}

/// A duration in whole microseconds, saturating at `u64::MAX`.
#[must_use]
pub fn duration_micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// A duration in whole milliseconds, saturating at `u64::MAX`.
#[must_use]
pub fn duration_millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        self.saturating_add(d)
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    fn sub(self, earlier: Instant) -> Duration {
        self.saturating_since(earlier)
    }
}

impl fmt::Debug for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:06}s", self.0 / 1_000_000, self.0 % 1_000_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_round_trip_and_saturate() {
        let t = Instant::from_millis(1_500);
        assert_eq!(t.as_micros(), 1_500_000);
        assert_eq!(t.as_secs(), 1);
        assert_eq!(Instant::from_secs(u64::MAX), Instant::MAX);
        assert_eq!(Instant::MAX + Duration::from_secs(1), Instant::MAX);
        assert_eq!(
            Instant::EPOCH.saturating_sub(Duration::from_secs(1)),
            Instant::EPOCH
        );
        assert_eq!(t - Instant::from_secs(2), Duration::ZERO);
        assert_eq!(Instant::from_secs(2) - t, Duration::from_millis(500));
    }
}
