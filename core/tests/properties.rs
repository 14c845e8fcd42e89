//! Property tests: backoff bounds, breaker invariants, GCRA admission, snapshot and cache-entry
//! decoding of arbitrary bytes, route lookup totality.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use mosaic_core::breaker::{
    Admission, Breaker, BreakerPolicy, CallResult, State as BState, Window,
};
use mosaic_core::cache::Entry;
use mosaic_core::limit::{self, RateLimit};
use mosaic_core::retry::Backoff;
use mosaic_core::rng::Rng;
use mosaic_core::{snapshot, Instant, State};
use proptest::prelude::*;
use std::time::Duration;

proptest! {
    #[test]
    fn backoff_stays_within_its_ceiling(base in 1u64..5_000, max_extra in 0u64..60_000, retry in 1u32..64, seed: u64) {
        let b = Backoff { base: Duration::from_millis(base), max: Duration::from_millis(base + max_extra) };
        let mut rng = Rng::seed(seed);
        let ceiling = b.ceiling(retry);
        prop_assert!(ceiling <= b.max);
        prop_assert!(ceiling >= b.base.min(b.max));
        prop_assert!(b.ceiling(retry + 1) >= ceiling, "monotone");
        for _ in 0..16 {
            let d = b.delay(retry, &mut rng);
            prop_assert!(d < ceiling || ceiling.is_zero());
        }
    }

    #[test]
    fn breaker_invariants(
        results in proptest::collection::vec((any::<bool>(), any::<bool>(), 0u64..3_000), 1..200),
        size in 1u32..50,
        min_calls in 1u32..20,
        rate in 0.05f64..1.0,
        probes in 1u32..4,
        time_window: bool,
    ) {
        let p = BreakerPolicy {
            window: if time_window { Window::Time(size) } else { Window::Count(size) },
            min_calls,
            failure_rate: rate,
            half_open_probes: probes,
            open_base: Duration::from_millis(500),
            open_max: Duration::from_secs(4),
            ..BreakerPolicy::default()
        };
        let mut b = Breaker::new(&p);
        let mut now = Instant::from_secs(1_000);
        let mut closed_failures = 0u32;
        for (fail, slow, dt) in results {
            now = now + Duration::from_millis(dt);
            let adm = b.admit(&p, now);
            match (b.state(), adm) {
                (BState::Open { until }, Admission::Reject(u)) => {
                    prop_assert_eq!(until, u);
                    prop_assert!(now < until, "never refuses after the open period");
                    prop_assert!(until <= now + p.open_max);
                    continue;
                }
                (BState::Closed, a) => prop_assert_eq!(a, Admission::Allow),
                (BState::HalfOpen { in_flight, .. }, a) => {
                    prop_assert!(in_flight <= p.half_open_probes);
                    if a == Admission::Reject(Instant::MAX) { continue; }
                    prop_assert_eq!(a, Admission::Probe);
                }
                (s, a) => prop_assert!(false, "impossible pair {:?} {:?}", s, a),
            }
            let was_closed = b.state() == BState::Closed;
            b.record(&p, CallResult { failure: fail, slow }, adm == Admission::Probe, now);
            if was_closed && fail { closed_failures += 1; }
            if was_closed && !fail && !slow {
                // a success alone never opens a closed breaker unless slow/failed calls are in the window
                if let BState::Open { .. } = b.state() { prop_assert!(closed_failures > 0 || p.slow_rate < 1.0); }
            }
            if adm == Admission::Probe && (fail || slow) {
                let is_open = matches!(b.state(), BState::Open { .. });
                prop_assert!(is_open, "a failed probe reopens");
            }
        }
    }

    #[test]
    fn gcra_never_exceeds_burst_plus_rate(rate in 0.5f64..200.0, burst in 1u32..50, gaps in proptest::collection::vec(0u64..200_000, 1..400)) {
        let l = RateLimit::new(rate, burst);
        let start = Instant::from_secs(10_000);
        let mut now = start;
        let mut tat = None;
        let mut admitted = 0u64;
        for g in gaps {
            now = now + Duration::from_micros(g);
            let d = limit::check(&l, tat, now);
            if d.allowed {
                admitted += 1;
                tat = Some(d.tat);
                prop_assert!(d.remaining < burst);
            } else {
                prop_assert!(d.retry_after > Duration::ZERO);
                // retrying exactly after retry_after succeeds
                let again = limit::check(&l, tat, now + d.retry_after);
                prop_assert!(again.allowed);
            }
        }
        let elapsed = (now - start).as_micros() as u64;
        let bound = u64::from(burst) + elapsed / l.interval_us + 1;
        prop_assert!(admitted <= bound, "admitted {} > bound {}", admitted, bound);
    }

    #[test]
    fn snapshot_decoding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let r = common::router(TWO);
        let mut st = State::new(&r.config, 1);
        let before = format!("{:?}", st.routes);
        if snapshot::decode_into(&r.config, &mut st, &bytes).is_err() {
            prop_assert_eq!(before, format!("{:?}", st.routes), "state untouched on error");
        }
    }

    #[test]
    fn snapshot_with_flipped_bytes_never_panics(idx in 0usize..4096, flip in 1u8..=255) {
        let r = common::router(TWO);
        let mut st = State::new(&r.config, 1);
        st.limiters.insert("t:x".into(), Instant::from_secs(5));
        let mut bytes = snapshot::encode(&r.config, &st);
        let i = idx % bytes.len();
        bytes[i] ^= flip;
        let mut fresh = State::new(&r.config, 1);
        let _ = snapshot::decode_into(&r.config, &mut fresh, &bytes);
    }

    #[test]
    fn cache_entry_decoding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Entry::decode(&bytes);
    }

    #[test]
    fn route_lookup_is_total(path in "(/[a-z0-9{}*%._-]{0,6}){0,6}") {
        let r = common::router(TWO);
        let none: [(&str, &str); 0] = [];
        let _ = r.config.table.lookup(mosaic_core::http::Method::Get, None, &path, &none[..]);
        let _ = mosaic_core::target::parse_target(&path);
    }
}

const TWO: &str = r#"
[[providers]]
id = "a"
base_url = "https://a.example"
[[providers]]
id = "b"
base_url = "https://b.example"
[[routes]]
name = "api"
match = { path = "/api/{*rest}" }
providers = ["a", "b"]
[[routes]]
name = "item"
match = { path = "/items/{id}/x", methods = ["GET"] }
providers = ["b", "a"]
"#;

#[test]
fn snapshot_round_trip_restores_breakers_latency_limits() {
    let r = common::router(TWO);
    let h = common::sim(&r);
    h.upstream("a", mosaic_core::sim::Behaviour::status(500));
    for _ in 0..6 {
        let _ = common::get(&h, &r, "/api/x");
    }
    let mut st = h.state();
    st.limiters.insert("t:acme".into(), Instant::from_secs(99));
    let bytes = snapshot::encode(&r.config, &st);
    let mut fresh = State::new(&r.config, 9);
    snapshot::decode_into(&r.config, &mut fresh, &bytes).unwrap();
    assert_eq!(
        fresh.routes[0].breakers[0].state(),
        st.routes[0].breakers[0].state()
    );
    assert_eq!(fresh.routes[0].breakers[0].state().name(), "open");
    assert_eq!(
        fresh.providers[0].stats.ewma_us,
        st.providers[0].stats.ewma_us
    );
    assert_eq!(fresh.limiters.get("t:acme"), Some(&Instant::from_secs(99)));
    // restored under a config where routes and providers changed order: matched by name
    let swapped = common::router(
        r#"
[[providers]]
id = "b"
base_url = "https://b.example"
[[providers]]
id = "a"
base_url = "https://a.example"
[[routes]]
name = "api"
match = { path = "/api/{*rest}" }
providers = ["b", "a"]
"#,
    );
    let mut other = State::new(&swapped.config, 1);
    snapshot::decode_into(&swapped.config, &mut other, &bytes).unwrap();
    assert_eq!(
        other.routes[0].breakers[1].state().name(),
        "open",
        "a's breaker, now in slot 1"
    );
    assert_eq!(other.routes[0].breakers[0].state().name(), "closed");
    // garbage and other versions are refused
    assert_eq!(
        snapshot::decode_into(&r.config, &mut fresh, b"nope"),
        Err(snapshot::SnapshotError::Malformed)
    );
    let mut v = bytes.clone();
    v[4] = 99;
    assert_eq!(
        snapshot::decode_into(&r.config, &mut fresh, &v),
        Err(snapshot::SnapshotError::Version(99))
    );
}
