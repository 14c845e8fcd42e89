//! Provider selection strategies.
//!
//! Each strategy is a value and [`order`] is a pure function of the route's providers, their
//! health and statistics, the caller's locality, per-route selection state and an injected RNG.
//! It returns the providers to try, in order: the first is the pick, the rest the failover
//! order. Providers whose breaker refuses or that are cooling down (after a 429 or a nearly
//! spent rate-limit budget) are left out.

use alloc::vec::Vec;

use crate::config::Provider;
use crate::region::Locality;
use crate::rng::Rng;
use crate::stats::ProviderStats;
use crate::time::Instant;

// The strategy is part of the validated model (`routes[].strategy`); `order` carries it out.
#[doc(inline)]
pub use crate::config::Strategy;

/// Exploration rate of the adaptive strategy.
pub const ADAPTIVE_EPSILON: f64 = 0.05;

/// Per-route selection state (round-robin position, smooth-WRR current weights).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteSelection {
    /// Next round-robin offset.
    pub rr: u64,
    /// Smooth WRR current weights, one per route provider slot.
    pub swrr: Vec<i64>,
}

/// Everything a strategy may look at.
pub struct Inputs<'a> {
    /// All providers of the config.
    pub providers: &'a [Provider],
    /// Their statistics (same indices).
    pub stats: &'a [ProviderStats],
    /// Where the caller is.
    pub locality: &'a Locality,
    /// Now.
    pub now: Instant,
}

/// Orders the route's providers (`route_providers`, provider indices in configured order) for
/// one request, keeping only those for which `available(i)` holds.
pub fn order(
    strategy: &Strategy,
    route_providers: &[usize],
    available: impl Fn(usize) -> bool,
    input: &Inputs<'_>,
    sel: &mut RouteSelection,
    rng: &mut Rng,
) -> Vec<usize> {
    // slots: positions in route_providers
    let mut slots: Vec<usize> = (0..route_providers.len())
        .filter(|&s| available(route_providers[s]))
        .collect();
    let pid = |s: usize| route_providers[s];
    let stat = |s: usize| input.stats.get(pid(s)).copied().unwrap_or_default();
    match strategy {
        Strategy::Priority => {}
        Strategy::RoundRobin => {
            let n = route_providers.len().max(1) as u64;
            let start = (sel.rr % n) as usize;
            sel.rr = sel.rr.wrapping_add(1);
            slots.sort_by_key(|&s| (s + route_providers.len() - start) % route_providers.len());
        }
        Strategy::Random => shuffle(&mut slots, rng),
        Strategy::Weighted => {
            if sel.swrr.len() != route_providers.len() {
                sel.swrr = alloc::vec![0; route_providers.len()];
            }
            if !slots.is_empty() {
                let weight =
                    |s: usize| i64::from(input.providers.get(pid(s)).map_or(1, |p| p.weight));
                let total: i64 = slots.iter().map(|&s| weight(s)).sum();
                for &s in &slots {
                    sel.swrr[s] += weight(s);
                }
                let best = slots
                    .iter()
                    .copied()
                    .max_by_key(|&s| (sel.swrr[s], usize::MAX - s))
                    .unwrap_or(slots[0]);
                sel.swrr[best] -= total;
                // rest by weight, heaviest first
                slots.sort_by_key(|&s| (s != best, -weight(s), s));
            }
        }
        Strategy::LeastLatency => {
            let now = input.now;
            if slots.len() >= 2 {
                let a = rng.below(slots.len() as u64) as usize;
                let mut b = rng.below(slots.len() as u64 - 1) as usize;
                if b >= a {
                    b += 1;
                }
                let (sa, sb) = (slots[a], slots[b]);
                let pick = if stat(sb).cost(now) < stat(sa).cost(now) {
                    sb
                } else {
                    sa
                };
                slots.sort_by(|&x, &y| {
                    (x != pick)
                        .cmp(&(y != pick))
                        .then(stat(x).cost(now).total_cmp(&stat(y).cost(now)))
                        .then(x.cmp(&y))
                });
            }
        }
        Strategy::CostAware { max_latency } => {
            let bound = max_latency.as_micros() as f64;
            let now = input.now;
            let cost = |s: usize| input.providers.get(pid(s)).map_or(0.0, |p| p.cost);
            let within = |s: usize| stat(s).latency_at(now) <= bound;
            slots.sort_by(|&x, &y| {
                within(y)
                    .cmp(&within(x))
                    .then(cost(x).total_cmp(&cost(y)))
                    .then(stat(x).latency_at(now).total_cmp(&stat(y).latency_at(now)))
                    .then(x.cmp(&y))
            });
        }
        Strategy::RegionNearest => {
            let d = |s: usize| {
                input
                    .providers
                    .get(pid(s))
                    .map_or(u8::MAX, |p| p.region.distance(input.locality))
            };
            slots.sort_by_key(|&s| (d(s), s));
        }
        Strategy::Adaptive => {
            let now = input.now;
            // score: success rate over latency (ms, floor 1): higher is better
            let score = |s: usize| {
                let st = stat(s);
                let l = (st.latency_at(now) / 1_000.0).max(1.0);
                st.success / l
            };
            slots.sort_by(|&x, &y| score(y).total_cmp(&score(x)).then(x.cmp(&y)));
            if slots.len() >= 2 && rng.unit() < ADAPTIVE_EPSILON {
                let k = 1 + rng.below(slots.len() as u64 - 1) as usize;
                slots.swap(0, k);
            }
        }
    }
    slots.into_iter().map(pid).collect()
}

fn shuffle(v: &mut [usize], rng: &mut Rng) {
    for i in (1..v.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        v.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AuthScheme, BaseUrl};
    use crate::region::{Continent, Region};
    use alloc::string::String;
    use alloc::vec;
    use core::time::Duration;

    fn provider(id: &str, weight: u32, cost: f64, region: &str) -> Provider {
        Provider {
            id: id.into(),
            kind: "http".into(),
            base_url: BaseUrl::parse("https://example.com").unwrap(),
            region: Region::parse(region, &[], &[]).unwrap(),
            cost,
            weight,
            auth: AuthScheme::None,
            allow_private: false,
            cooldown_below: None,
            rate_limit: None,
        }
    }

    fn run(
        strategy: Strategy,
        providers: &[Provider],
        stats: &[ProviderStats],
        loc: &Locality,
        n: usize,
        seed: u64,
    ) -> Vec<Vec<usize>> {
        let mut sel = RouteSelection::default();
        let mut rng = Rng::seed(seed);
        let ids: Vec<usize> = (0..providers.len()).collect();
        let input = Inputs {
            providers,
            stats,
            locality: loc,
            now: Instant::from_secs(100),
        };
        (0..n)
            .map(|_| order(&strategy, &ids, |_| true, &input, &mut sel, &mut rng))
            .collect()
    }

    #[test]
    fn priority_keeps_order_and_skips_unavailable() {
        let ps = vec![
            provider("a", 1, 0.0, ""),
            provider("b", 1, 0.0, ""),
            provider("c", 1, 0.0, ""),
        ];
        let stats = vec![ProviderStats::default(); 3];
        let loc = Locality::default();
        let input = Inputs {
            providers: &ps,
            stats: &stats,
            locality: &loc,
            now: Instant::EPOCH,
        };
        let mut sel = RouteSelection::default();
        let mut rng = Rng::seed(1);
        assert_eq!(
            order(
                &Strategy::Priority,
                &[0, 1, 2],
                |_| true,
                &input,
                &mut sel,
                &mut rng
            ),
            [0, 1, 2]
        );
        assert_eq!(
            order(
                &Strategy::Priority,
                &[0, 1, 2],
                |i| i != 0,
                &input,
                &mut sel,
                &mut rng
            ),
            [1, 2]
        );
        assert!(order(
            &Strategy::Priority,
            &[0, 1, 2],
            |_| false,
            &input,
            &mut sel,
            &mut rng
        )
        .is_empty());
    }

    #[test]
    fn smooth_weighted_interleaves_in_proportion() {
        let ps = vec![
            provider("a", 5, 0.0, ""),
            provider("b", 1, 0.0, ""),
            provider("c", 1, 0.0, ""),
        ];
        let stats = vec![ProviderStats::default(); 3];
        let firsts: Vec<usize> = run(Strategy::Weighted, &ps, &stats, &Locality::default(), 7, 1)
            .iter()
            .map(|o| o[0])
            .collect();
        // nginx's documented sequence for 5/1/1: a a b a c a a
        assert_eq!(firsts, [0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn round_robin_rotates() {
        let ps = vec![
            provider("a", 1, 0.0, ""),
            provider("b", 1, 0.0, ""),
            provider("c", 1, 0.0, ""),
        ];
        let stats = vec![ProviderStats::default(); 3];
        let orders = run(
            Strategy::RoundRobin,
            &ps,
            &stats,
            &Locality::default(),
            4,
            1,
        );
        assert_eq!(
            orders,
            [vec![0, 1, 2], vec![1, 2, 0], vec![2, 0, 1], vec![0, 1, 2]]
        );
    }

    #[test]
    fn random_is_seeded_and_a_permutation() {
        let ps: Vec<Provider> = (0..5)
            .map(|i| provider(&alloc::format!("p{i}"), 1, 0.0, ""))
            .collect();
        let stats = vec![ProviderStats::default(); 5];
        let a = run(Strategy::Random, &ps, &stats, &Locality::default(), 20, 9);
        let b = run(Strategy::Random, &ps, &stats, &Locality::default(), 20, 9);
        assert_eq!(a, b);
        let mut firsts = [0; 5];
        for o in &a {
            let mut s = o.clone();
            s.sort_unstable();
            assert_eq!(s, [0, 1, 2, 3, 4]);
            firsts[o[0]] += 1;
        }
        assert!(firsts.iter().filter(|&&c| c > 0).count() >= 3, "{firsts:?}");
    }

    #[test]
    fn least_latency_prefers_the_faster_of_two() {
        let ps = vec![provider("slow", 1, 0.0, ""), provider("fast", 1, 0.0, "")];
        let mut stats = vec![ProviderStats::default(); 2];
        let now = Instant::from_secs(100);
        stats[0].observe(Duration::from_millis(200), true, now);
        stats[1].observe(Duration::from_millis(5), true, now);
        for o in run(
            Strategy::LeastLatency,
            &ps,
            &stats,
            &Locality::default(),
            10,
            3,
        ) {
            assert_eq!(o, [1, 0]);
        }
        // a busy fast provider loses to an idle slow one
        stats[1].pending = 100;
        for o in run(
            Strategy::LeastLatency,
            &ps,
            &stats,
            &Locality::default(),
            10,
            3,
        ) {
            assert_eq!(o, [0, 1]);
        }
    }

    #[test]
    fn cost_aware_picks_cheapest_within_bound() {
        let ps = vec![
            provider("pricey", 1, 5.0, ""),
            provider("cheap-slow", 1, 0.1, ""),
            provider("cheap", 1, 1.0, ""),
        ];
        let mut stats = vec![ProviderStats::default(); 3];
        let now = Instant::from_secs(100);
        stats[0].observe(Duration::from_millis(10), true, now);
        stats[1].observe(Duration::from_millis(900), true, now);
        stats[2].observe(Duration::from_millis(20), true, now);
        let o = run(
            Strategy::CostAware {
                max_latency: Duration::from_millis(100),
            },
            &ps,
            &stats,
            &Locality::default(),
            1,
            1,
        );
        assert_eq!(o[0], [2, 0, 1]);
        let o = run(
            Strategy::CostAware {
                max_latency: Duration::from_secs(1),
            },
            &ps,
            &stats,
            &Locality::default(),
            1,
            1,
        );
        assert_eq!(o[0], [1, 2, 0]);
    }

    #[test]
    fn region_nearest_falls_back_outward() {
        let ps = vec![
            provider("us", 1, 0.0, "us-east"),
            provider("ap", 1, 0.0, "ap-south"),
            provider("eu", 1, 0.0, "eu-west"),
            provider("any", 1, 0.0, ""),
        ];
        let stats = vec![ProviderStats::default(); 4];
        let eu = Locality {
            colo: Some(String::from("CDG")),
            country: Some(String::from("FR")),
            continent: Some(Continent::Eu),
        };
        assert_eq!(
            run(Strategy::RegionNearest, &ps, &stats, &eu, 1, 1)[0],
            [2, 0, 1, 3]
        );
        let oc = Locality {
            continent: Some(Continent::Oc),
            ..Default::default()
        };
        assert_eq!(
            run(Strategy::RegionNearest, &ps, &stats, &oc, 1, 1)[0],
            [1, 0, 2, 3]
        );
    }

    #[test]
    fn adaptive_mostly_exploits() {
        let ps = vec![provider("bad", 1, 0.0, ""), provider("good", 1, 0.0, "")];
        let mut stats = vec![ProviderStats::default(); 2];
        let now = Instant::from_secs(100);
        for _ in 0..20 {
            stats[0].observe(Duration::from_millis(10), false, now);
            stats[1].observe(Duration::from_millis(10), true, now);
        }
        let orders = run(
            Strategy::Adaptive,
            &ps,
            &stats,
            &Locality::default(),
            1000,
            5,
        );
        let good_first = orders.iter().filter(|o| o[0] == 1).count();
        assert!((900..1000).contains(&good_first), "{good_first}");
    }
}
