#![allow(missing_docs)]
//! Criterion benchmarks: route lookup over 10/100/1,000 routes, a full decision (match, select,
//! breaker admit) with 10 providers at 1,000 routes, the engine's whole per-request work, and a
//! whole request through the driver on SimHost.
//!
//! Run: `cargo bench -p mosaic-core --bench engine`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use mosaic_core::config::SecretRef;
use mosaic_core::driver;
use mosaic_core::engine::{Call, Request, Step};
use mosaic_core::http::Method;
use mosaic_core::region::Locality;
use mosaic_core::sim::{block_on, SimHost};
use mosaic_core::{Instant, RawConfig, Router, State};

fn config(routes: usize, providers: usize, strategy: &str) -> Router {
    let mut s = String::new();
    for p in 0..providers {
        s.push_str(&format!("[[providers]]\nid = \"p{p}\"\nbase_url = \"https://p{p}.example\"\nregion = \"eu-west\"\n"));
    }
    let list: Vec<String> = (0..providers).map(|p| format!("\"p{p}\"")).collect();
    for r in 0..routes {
        // a realistic mix: static prefixes, parameters and catch-alls
        let path = match r % 4 {
            0 => format!("/svc{r}/repos/{{owner}}/{{repo}}"),
            1 => format!("/svc{r}/items/{{id}}"),
            2 => format!("/svc{r}/static/{{*path}}"),
            _ => format!("/svc{r}/a/b/c"),
        };
        s.push_str(&format!(
            "[[routes]]\nname = \"r{r}\"\nmatch = {{ path = \"{path}\", methods = [\"GET\"] }}\nproviders = [{}]\nstrategy = \"{strategy}\"\n",
            list.join(", ")
        ));
    }
    let raw: RawConfig = toml::from_str(&s).expect("bench config parses");
    let cfg = raw.validate().expect("bench config valid");
    Router::new(cfg, |_: &SecretRef| None)
}

fn lookup(c: &mut Criterion) {
    let mut g = c.benchmark_group("route_lookup");
    for n in [10usize, 100, 1000] {
        let r = config(n, 1, "priority");
        let path = format!("/svc{}/repos/rust-lang/rust", (n / 4) * 4 - 4);
        let none: [(&str, &str); 0] = [];
        assert!(r
            .config
            .table
            .lookup(Method::Get, None, &path, &none[..])
            .is_some());
        g.bench_with_input(BenchmarkId::from_parameter(n), &path, |b, path| {
            b.iter(|| {
                r.config
                    .table
                    .lookup(Method::Get, Some("edge.test"), black_box(path), &none[..])
                    .map(|m| m.route)
            })
        });
    }
    g.finish();
}

/// The decision the issue names: route match + provider selection + breaker admission.
fn decision(c: &mut Criterion) {
    use mosaic_core::select::{self, Inputs};
    let mut g = c.benchmark_group("full_decision_1000_routes_10_providers");
    for strategy in ["priority", "weighted", "least-latency", "region-nearest"] {
        let r = config(1000, 10, strategy);
        let mut st = State::new(&r.config, 1);
        let none: [(&str, &str); 0] = [];
        let now = Instant::from_secs(1_700_000_000);
        let loc = Locality::default();
        let stats: Vec<_> = st.providers.iter().map(|p| p.stats).collect();
        g.bench_function(strategy, |b| {
            b.iter(|| {
                let m = r
                    .config
                    .table
                    .lookup(
                        Method::Get,
                        Some("edge.test"),
                        black_box("/svc996/repos/rust-lang/rust"),
                        &none[..],
                    )
                    .expect("routes");
                let route = &r.config.routes[m.route];
                let State { routes, rng, .. } = &mut st;
                let rs = &mut routes[m.route];
                let input = Inputs {
                    providers: &r.config.providers,
                    stats: &stats,
                    locality: &loc,
                    now,
                };
                let breakers = &rs.breakers;
                let order = select::order(
                    &route.strategy,
                    &route.providers,
                    |p| breakers[p].would_admit(&route.breaker, now),
                    &input,
                    &mut rs.selection,
                    rng,
                );
                let first = order[0];
                black_box(rs.breakers[first].admit(&route.breaker, now))
            })
        });
    }
    g.finish();
}

/// Everything the engine does per request: admission (target check, lookup, tenant, limits,
/// cache key), the call (selection, upstream headers and URL), one outcome.
fn engine_call(c: &mut Criterion) {
    let r = config(1000, 10, "priority");
    let mut st = State::new(&r.config, 1);
    let headers: Vec<(String, String)> = vec![("accept".into(), "application/json".into())];
    let now = Instant::from_secs(1_700_000_000);
    c.bench_function("engine_call_1000_routes_10_providers", |b| {
        b.iter(|| {
            let req = Request {
                method: Method::Get,
                host: Some("edge.test"),
                target: black_box("/svc996/repos/rust-lang/rust"),
                headers: &headers,
                client_ip: Some("203.0.113.1"),
                https: true,
                locality: Locality::default(),
                id: "b",
            };
            let admitted = r.admit(&mut st, &req, now).expect("routes");
            let mut call = Call::new(&r, &mut st, &req, &admitted, now);
            let step = call.poll(&r, &mut st, now);
            if let Step::Attempt(a) = &step {
                call.handle_outcome(
                    &r,
                    &mut st,
                    a.id,
                    mosaic_core::engine::Outcome::Response {
                        status: 200,
                        headers: vec![],
                    },
                    now,
                );
            }
            black_box(step)
        })
    });
}

fn whole_request(c: &mut Criterion) {
    let r = config(100, 3, "priority");
    let host = SimHost::new(
        State::new(&r.config, 1),
        Instant::from_secs(1_700_000_000),
        1,
    );
    let headers: Vec<(String, String)> = vec![];
    c.bench_function("whole_request_simhost", |b| {
        b.iter(|| {
            let req = Request {
                method: Method::Get,
                host: Some("edge.test"),
                target: "/svc1/items/42",
                headers: &headers,
                client_ip: Some("203.0.113.1"),
                https: true,
                locality: Locality::default(),
                id: "b",
            };
            let rep = block_on(driver::handle(&host, &r, &req, 1 << 16));
            black_box(rep.status)
        })
    });
}

criterion_group!(benches, lookup, decision, engine_call, whole_request);
criterion_main!(benches);
