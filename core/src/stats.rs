//! Per-provider statistics: peak-EWMA latency, in-flight count, success rate.
//!
//! Peak EWMA (as in Finagle and tower): a sample above the estimate replaces it at once (react
//! to trouble immediately), a sample below decays into it with weight `exp(-Δt/τ)` (recover
//! gradually). The load cost of a provider is `estimate × (pending + 1)`, so a fast provider
//! that is already busy loses to an idle one that is a little slower.

use core::time::Duration;

use crate::time::Instant;

/// Decay time constant of the latency estimate.
pub const TAU: Duration = Duration::from_secs(10);

/// Latency and load of one provider.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProviderStats {
    /// Latency estimate in µs (0 = no sample yet).
    pub ewma_us: f64,
    /// When the estimate was last updated.
    pub updated: Instant,
    /// Attempts in flight.
    pub pending: u32,
    /// Success-rate estimate in [0, 1] (starts optimistic at 1).
    pub success: f64,
    /// Samples seen (saturating).
    pub samples: u32,
}

impl Default for ProviderStats {
    fn default() -> Self {
        ProviderStats {
            ewma_us: 0.0,
            updated: Instant::EPOCH,
            pending: 0,
            success: 1.0,
            samples: 0,
        }
    }
}

impl ProviderStats {
    /// Folds in one finished attempt's latency and success.
    pub fn observe(&mut self, latency: Duration, success: bool, now: Instant) {
        let sample = latency.as_micros() as f64;
        let elapsed = now.saturating_since(self.updated).as_micros() as f64;
        let w = libm::exp(-elapsed / TAU.as_micros() as f64);
        if self.samples == 0 || sample > self.ewma_us {
            self.ewma_us = sample;
        } else {
            self.ewma_us = self.ewma_us * w + sample * (1.0 - w);
        }
        // success rate: a per-sample EWMA with α = 0.1
        let s = if success { 1.0 } else { 0.0 };
        self.success = self.success * 0.9 + s * 0.1;
        self.updated = now;
        self.samples = self.samples.saturating_add(1);
    }

    /// The latency estimate decayed to `now`: an idle provider's estimate drifts toward zero
    /// so that it is tried again.
    #[must_use]
    pub fn latency_at(&self, now: Instant) -> f64 {
        if self.samples == 0 {
            return 0.0;
        }
        let elapsed = now.saturating_since(self.updated).as_micros() as f64;
        self.ewma_us * libm::exp(-elapsed / (TAU.as_micros() as f64 * 6.0))
    }

    /// Load cost: latency × (pending + 1). Unknown latency counts as a nominal 1 ms.
    #[must_use]
    pub fn cost(&self, now: Instant) -> f64 {
        let l = self.latency_at(now);
        let l = if l <= 0.0 { 1_000.0 } else { l };
        l * f64::from(self.pending + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_then_decay() {
        let mut s = ProviderStats::default();
        let t0 = Instant::from_secs(100);
        s.observe(Duration::from_millis(10), true, t0);
        assert_eq!(s.ewma_us, 10_000.0);
        s.observe(Duration::from_millis(100), true, t0);
        assert_eq!(s.ewma_us, 100_000.0, "peak is taken at once");
        s.observe(Duration::from_millis(10), true, t0 + TAU);
        let e = s.ewma_us;
        assert!(e < 100_000.0 && e > 10_000.0, "{e}");
        let expected = 100_000.0 * libm::exp(-1.0) + 10_000.0 * (1.0 - libm::exp(-1.0));
        assert!((e - expected).abs() < 1.0);
    }

    #[test]
    fn cost_grows_with_pending_and_success_tracks() {
        let mut s = ProviderStats::default();
        let now = Instant::from_secs(1);
        s.observe(Duration::from_millis(2), false, now);
        let idle = s.cost(now);
        s.pending = 3;
        assert!((s.cost(now) - 4.0 * idle).abs() < 1e-6);
        assert!(s.success < 1.0);
        assert_eq!(ProviderStats::default().cost(now), 1_000.0);
    }
}
