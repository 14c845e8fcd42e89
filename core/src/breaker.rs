//! Circuit breaker, one per route × provider.
//!
//! The policy is a plain value ([`BreakerPolicy`]); the state machine ([`Breaker`]) only
//! applies it. Closed: calls are recorded in a sliding window (the last N calls, or the last N
//! seconds in one-second buckets). Once the window has at least `min_calls`, a failure rate or
//! slow-call rate at or over its threshold opens the circuit. Open: calls are refused until the
//! open period ends; the period doubles on each consecutive open up to `open_max`. Half-open:
//! up to `half_open_probes` calls are let through; that many successes close the circuit, any
//! failure opens it again.
//!
//! A 429 or a `Retry-After` is not a failure: the engine cools the provider down instead
//! (see [`crate::engine`]).

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::time::Duration;

use crate::time::Instant;

/// The sliding window kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    /// The last N calls.
    Count(u32),
    /// The last N seconds.
    Time(u32),
}

/// What counts as a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FailureClass {
    /// Any 5xx.
    pub server_errors: bool,
    /// Any 4xx (off by default: usually the caller's fault).
    pub client_errors: bool,
    /// Specific statuses (bit per status 400..=599).
    pub statuses: [u64; 4],
    /// Timeouts.
    pub timeouts: bool,
    /// Connection refused, DNS or TLS failures.
    pub connect: bool,
    /// Connection reset or broken after the request was sent.
    pub reset: bool,
}

impl Default for FailureClass {
    fn default() -> Self {
        FailureClass {
            server_errors: true,
            client_errors: false,
            statuses: [0; 4],
            timeouts: true,
            connect: true,
            reset: true,
        }
    }
}

impl FailureClass {
    /// Nothing counts as failure.
    #[must_use]
    pub fn none() -> Self {
        FailureClass {
            server_errors: false,
            client_errors: false,
            statuses: [0; 4],
            timeouts: false,
            connect: false,
            reset: false,
        }
    }

    /// Adds `5xx`, `4xx`, a status (`503`), `timeout`, `connect` or `reset`.
    ///
    /// # Errors
    /// A message listing what is accepted.
    pub fn add(&mut self, item: &str) -> Result<(), String> {
        match item {
            "5xx" => self.server_errors = true,
            "4xx" => self.client_errors = true,
            "timeout" => self.timeouts = true,
            "connect" => self.connect = true,
            "reset" => self.reset = true,
            s => match s.parse::<u16>() {
                Ok(code @ 400..=599) => {
                    let i = usize::from(code - 400);
                    self.statuses[i / 64] |= 1 << (i % 64);
                }
                _ => {
                    return Err(format!(
                        "unknown failure class \"{s}\"; expected 5xx, 4xx, a status 400..=599, timeout, connect or reset"
                    ))
                }
            },
        }
        Ok(())
    }

    /// Whether a response status is a failure.
    #[must_use]
    pub fn status_fails(&self, status: u16) -> bool {
        if status == 429 {
            return false;
        }
        if (400..=599).contains(&status) {
            let i = usize::from(status - 400);
            if self.statuses[i / 64] & (1 << (i % 64)) != 0 {
                return true;
            }
        }
        (self.server_errors && (500..=599).contains(&status))
            || (self.client_errors && (400..=499).contains(&status))
    }
}

/// A breaker policy.
#[derive(Clone, Debug, PartialEq)]
pub struct BreakerPolicy {
    /// Window.
    pub window: Window,
    /// Calls needed in the window before it may open.
    pub min_calls: u32,
    /// Failure rate that opens (0..=1).
    pub failure_rate: f64,
    /// Slow-call rate that opens (0..=1; 1.0 with no slow calls never opens).
    pub slow_rate: f64,
    /// A call at least this slow is slow.
    pub slow_call: Duration,
    /// First open period.
    pub open_base: Duration,
    /// Longest open period.
    pub open_max: Duration,
    /// Probes admitted half-open; as many successes close.
    pub half_open_probes: u32,
    /// What is a failure.
    pub failure: FailureClass,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        BreakerPolicy {
            window: Window::Count(20),
            min_calls: 5,
            failure_rate: 0.5,
            slow_rate: 1.0,
            slow_call: Duration::from_secs(2),
            open_base: Duration::from_secs(5),
            open_max: Duration::from_secs(60),
            half_open_probes: 1,
            failure: FailureClass::default(),
        }
    }
}

/// The breaker's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Calls flow.
    Closed,
    /// Calls refused until `until`.
    Open {
        /// When the breaker becomes half-open.
        until: Instant,
    },
    /// Probing.
    HalfOpen {
        /// Probes admitted and not yet finished.
        in_flight: u32,
        /// Probes that succeeded.
        successes: u32,
    },
}

impl State {
    /// A stable name (`closed`, `open`, `half-open`).
    #[must_use]
    pub const fn name(&self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open { .. } => "open",
            State::HalfOpen { .. } => "half-open",
        }
    }
}

/// What admission decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Closed: go.
    Allow,
    /// Half-open: go as a probe.
    Probe,
    /// Refused until the given instant (or `Instant::MAX` when probes are all in flight).
    Reject(Instant),
}

/// One finished call, as the breaker sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallResult {
    /// It failed.
    pub failure: bool,
    /// It was slow.
    pub slow: bool,
}

/// A circuit breaker.
#[derive(Clone, Debug, PartialEq)]
pub struct Breaker {
    state: State,
    consecutive_opens: u32,
    /// Count window: ring of results (bit 0 failure, bit 1 slow); time window: buckets.
    ring: Vec<u8>,
    head: u32,
    filled: u32,
    buckets: Vec<Bucket>,
}

/// One second of a time window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Bucket {
    second: u64,
    calls: u32,
    failures: u32,
    slow: u32,
}

impl Breaker {
    /// A closed breaker for `policy`.
    #[must_use]
    pub fn new(policy: &BreakerPolicy) -> Breaker {
        let (ring, buckets) = match policy.window {
            Window::Count(n) => (vec![0u8; n.max(1) as usize], Vec::new()),
            Window::Time(s) => (Vec::new(), vec![Bucket::default(); s.max(1) as usize]),
        };
        Breaker {
            state: State::Closed,
            consecutive_opens: 0,
            ring,
            head: 0,
            filled: 0,
            buckets,
        }
    }

    /// The current state (an open breaker whose period has passed still reads open until the
    /// next [`Breaker::admit`]).
    #[must_use]
    pub fn state(&self) -> State {
        self.state
    }

    /// How many times it opened in a row.
    #[must_use]
    pub fn consecutive_opens(&self) -> u32 {
        self.consecutive_opens
    }

    /// Whether a call would be admitted now, without changing anything (for selection).
    #[must_use]
    pub fn would_admit(&self, policy: &BreakerPolicy, now: Instant) -> bool {
        match self.state {
            State::Closed => true,
            State::Open { until } => now >= until,
            State::HalfOpen { in_flight, .. } => in_flight < policy.half_open_probes,
        }
    }

    /// When a refused call could next be admitted.
    #[must_use]
    pub fn retry_at(&self) -> Option<Instant> {
        match self.state {
            State::Open { until } => Some(until),
            _ => None,
        }
    }

    /// Admits or refuses a call now, moving open → half-open when the period has passed.
    pub fn admit(&mut self, policy: &BreakerPolicy, now: Instant) -> Admission {
        if let State::Open { until } = self.state {
            if now >= until {
                self.state = State::HalfOpen {
                    in_flight: 0,
                    successes: 0,
                };
            } else {
                return Admission::Reject(until);
            }
        }
        match &mut self.state {
            State::Closed => Admission::Allow,
            State::HalfOpen { in_flight, .. } => {
                if *in_flight < policy.half_open_probes {
                    *in_flight += 1;
                    Admission::Probe
                } else {
                    Admission::Reject(Instant::MAX)
                }
            }
            State::Open { until } => Admission::Reject(*until),
        }
    }

    /// Records a finished call. `probe` says whether [`Breaker::admit`] returned `Probe` for it.
    pub fn record(
        &mut self,
        policy: &BreakerPolicy,
        result: CallResult,
        probe: bool,
        now: Instant,
    ) {
        match self.state {
            State::HalfOpen {
                in_flight,
                successes,
            } if probe => {
                let in_flight = in_flight.saturating_sub(1);
                if result.failure || result.slow {
                    self.trip(policy, now);
                } else if successes + 1 >= policy.half_open_probes {
                    self.state = State::Closed;
                    self.consecutive_opens = 0;
                    self.reset_window();
                } else {
                    self.state = State::HalfOpen {
                        in_flight,
                        successes: successes + 1,
                    };
                }
            }
            State::Closed => {
                self.push(policy, result, now);
                let (calls, failures, slow) = self.totals(policy, now);
                if calls >= policy.min_calls && calls > 0 {
                    let fr = f64::from(failures) / f64::from(calls);
                    let sr = f64::from(slow) / f64::from(calls);
                    if (failures > 0 && fr >= policy.failure_rate)
                        || (slow > 0 && sr >= policy.slow_rate)
                    {
                        self.trip(policy, now);
                    }
                }
            }
            // a late result from before the breaker opened, or a non-probe in half-open: ignore
            _ => {}
        }
    }

    /// Forces the breaker open (used when restoring or by tests).
    pub fn trip(&mut self, policy: &BreakerPolicy, now: Instant) {
        self.consecutive_opens = self.consecutive_opens.saturating_add(1);
        let shift = self.consecutive_opens.saturating_sub(1).min(20);
        let period = policy
            .open_base
            .checked_mul(1u32 << shift)
            .unwrap_or(policy.open_max)
            .min(policy.open_max);
        self.state = State::Open {
            until: now + period,
        };
        self.reset_window();
    }

    /// Restores a state read from a snapshot.
    pub fn restore(&mut self, state: State, consecutive_opens: u32) {
        self.state = match state {
            // probes in flight belonged to another process: start probing afresh
            State::HalfOpen { .. } => State::HalfOpen {
                in_flight: 0,
                successes: 0,
            },
            s => s,
        };
        self.consecutive_opens = consecutive_opens;
    }

    /// The closed-state count window, oldest result first (bit 0 failure, bit 1 slow); empty
    /// for a time window. With [`Breaker::window_buckets`], what a snapshot keeps so that a
    /// host with a fresh instance per request (Spin) still counts failures across requests.
    #[must_use]
    pub fn window_results(&self) -> Vec<u8> {
        let n = self.ring.len() as u32;
        (0..self.filled.min(n))
            .map(|i| self.ring[((self.head + n - self.filled.min(n) + i) % n) as usize] & 3)
            .collect()
    }

    /// The closed-state time window: `(second, calls, failures, slow)` of every non-empty
    /// bucket; empty for a count window.
    #[must_use]
    pub fn window_buckets(&self) -> Vec<(u64, u32, u32, u32)> {
        self.buckets
            .iter()
            .filter(|b| b.calls > 0)
            .map(|b| (b.second, b.calls, b.failures, b.slow))
            .collect()
    }

    /// Restores a window read from a snapshot: results (oldest first) into a count window,
    /// buckets into a time window; what does not fit this breaker's window is dropped, and
    /// inconsistent buckets (more failures than calls) are skipped.
    pub fn restore_window(&mut self, results: &[u8], buckets: &[(u64, u32, u32, u32)]) {
        self.reset_window();
        let n = self.ring.len();
        if n > 0 {
            for &r in &results[results.len().saturating_sub(n)..] {
                self.ring[self.head as usize] = r & 3;
                self.head = (self.head + 1) % n as u32;
                self.filled = (self.filled + 1).min(n as u32);
            }
        }
        let m = self.buckets.len() as u64;
        if m > 0 {
            for &(second, calls, failures, slow) in buckets {
                let slot = &mut self.buckets[(second % m) as usize];
                if calls > 0 && failures <= calls && slow <= calls && second >= slot.second {
                    *slot = Bucket {
                        second,
                        calls,
                        failures,
                        slow,
                    };
                }
            }
        }
    }

    fn reset_window(&mut self) {
        self.ring.iter_mut().for_each(|b| *b = 0);
        self.head = 0;
        self.filled = 0;
        self.buckets.iter_mut().for_each(|b| *b = Bucket::default());
    }

    fn push(&mut self, policy: &BreakerPolicy, r: CallResult, now: Instant) {
        let bits = u8::from(r.failure) | (u8::from(r.slow) << 1);
        match policy.window {
            Window::Count(_) => {
                let n = self.ring.len() as u32;
                if n == 0 {
                    return;
                }
                self.ring[self.head as usize] = bits;
                self.head = (self.head + 1) % n;
                self.filled = (self.filled + 1).min(n);
            }
            Window::Time(_) => {
                let n = self.buckets.len() as u64;
                if n == 0 {
                    return;
                }
                let sec = now.as_secs();
                let b = &mut self.buckets[(sec % n) as usize];
                if b.second != sec {
                    *b = Bucket {
                        second: sec,
                        ..Bucket::default()
                    };
                }
                b.calls += 1;
                b.failures += u32::from(r.failure);
                b.slow += u32::from(r.slow);
            }
        }
    }

    fn totals(&self, policy: &BreakerPolicy, now: Instant) -> (u32, u32, u32) {
        match policy.window {
            Window::Count(_) => {
                // slots not filled yet are zero (`reset_window`), so the whole ring can be
                // summed in slot order
                let (f, s) = self.ring.iter().fold((0u32, 0u32), |(f, s), &b| {
                    (f + u32::from(b & 1), s + u32::from((b >> 1) & 1))
                });
                (self.filled, f, s)
            }
            Window::Time(secs) => {
                let sec = now.as_secs();
                let oldest = sec.saturating_sub(u64::from(secs) - 1);
                self.buckets
                    .iter()
                    .filter(|b| b.calls > 0 && b.second >= oldest && b.second <= sec)
                    .fold((0, 0, 0), |(c, f, s), b| {
                        (c + b.calls, f + b.failures, s + b.slow)
                    })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAIL: CallResult = CallResult {
        failure: true,
        slow: false,
    };
    const OK: CallResult = CallResult {
        failure: false,
        slow: false,
    };
    const SLOW: CallResult = CallResult {
        failure: false,
        slow: true,
    };

    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    #[test]
    fn opens_at_threshold_only_after_min_calls() {
        let p = BreakerPolicy {
            window: Window::Count(10),
            min_calls: 4,
            failure_rate: 0.5,
            ..Default::default()
        };
        let mut b = Breaker::new(&p);
        b.record(&p, FAIL, false, t(0));
        b.record(&p, FAIL, false, t(1));
        b.record(&p, FAIL, false, t(2));
        assert_eq!(b.state(), State::Closed, "3 calls < min_calls");
        b.record(&p, OK, false, t(3));
        assert!(
            matches!(b.state(), State::Open { .. }),
            "3/4 failures ≥ 50%"
        );
    }

    #[test]
    fn full_cycle_closed_open_half_open_closed() {
        let p = BreakerPolicy {
            window: Window::Count(4),
            min_calls: 2,
            failure_rate: 0.5,
            open_base: Duration::from_secs(1),
            open_max: Duration::from_secs(8),
            half_open_probes: 2,
            ..Default::default()
        };
        let mut b = Breaker::new(&p);
        b.record(&p, FAIL, false, t(0));
        b.record(&p, FAIL, false, t(0));
        assert_eq!(b.state(), State::Open { until: t(1000) });
        assert_eq!(b.admit(&p, t(999)), Admission::Reject(t(1000)));
        assert!(!b.would_admit(&p, t(999)));
        assert!(b.would_admit(&p, t(1000)));
        assert_eq!(b.admit(&p, t(1000)), Admission::Probe);
        assert_eq!(b.admit(&p, t(1000)), Admission::Probe);
        assert_eq!(
            b.admit(&p, t(1000)),
            Admission::Reject(Instant::MAX),
            "only 2 probes"
        );
        b.record(&p, OK, true, t(1100));
        assert!(matches!(b.state(), State::HalfOpen { successes: 1, .. }));
        b.record(&p, OK, true, t(1200));
        assert_eq!(b.state(), State::Closed);
        assert_eq!(b.consecutive_opens(), 0);
    }

    #[test]
    fn repeated_opens_back_off_to_the_cap() {
        let p = BreakerPolicy {
            window: Window::Count(2),
            min_calls: 1,
            failure_rate: 1.0,
            open_base: Duration::from_secs(1),
            open_max: Duration::from_secs(5),
            ..Default::default()
        };
        let mut b = Breaker::new(&p);
        let mut now = t(0);
        let mut periods = Vec::new();
        b.record(&p, FAIL, false, now);
        for _ in 0..5 {
            let State::Open { until } = b.state() else {
                panic!("should be open")
            };
            periods.push((until - now).as_secs());
            now = until;
            assert_eq!(b.admit(&p, now), Admission::Probe);
            b.record(&p, FAIL, true, now);
        }
        assert_eq!(periods, [1, 2, 4, 5, 5]);
    }

    #[test]
    fn slow_calls_open_and_late_results_are_ignored() {
        let p = BreakerPolicy {
            window: Window::Count(4),
            min_calls: 2,
            slow_rate: 0.5,
            failure_rate: 1.0,
            ..Default::default()
        };
        let mut b = Breaker::new(&p);
        b.record(&p, SLOW, false, t(0));
        b.record(&p, SLOW, false, t(0));
        assert!(matches!(b.state(), State::Open { .. }));
        let before = b.clone();
        b.record(&p, OK, false, t(1)); // late, non-probe result while open
        assert_eq!(b, before);
    }

    #[test]
    fn time_window_forgets_old_seconds() {
        let p = BreakerPolicy {
            window: Window::Time(2),
            min_calls: 3,
            failure_rate: 0.5,
            ..Default::default()
        };
        let mut b = Breaker::new(&p);
        b.record(&p, FAIL, false, t(0));
        b.record(&p, FAIL, false, t(100));
        // two seconds later those are outside the window
        b.record(&p, FAIL, false, t(2_500));
        assert_eq!(b.state(), State::Closed);
        b.record(&p, FAIL, false, t(2_600));
        b.record(&p, OK, false, t(2_700));
        assert!(matches!(b.state(), State::Open { .. }));
    }

    #[test]
    fn failure_classes() {
        let mut c = FailureClass::none();
        assert!(!c.status_fails(500));
        c.add("5xx").unwrap();
        c.add("404").unwrap();
        assert!(c.status_fails(503) && c.status_fails(404) && !c.status_fails(400));
        assert!(!c.status_fails(429), "429 cools down, never fails");
        assert!(c.add("6xx").is_err());
        assert!(c.add("399").is_err());
    }
}
