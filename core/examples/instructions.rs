//! Runs one operation N times so that `valgrind --tool=callgrind` can count instructions per
//! operation, a figure that does not depend on machine load (see the README's Benchmarks).
//!
//! `cargo build --release -p mosaic-core --example instructions`, then
//! `valgrind --tool=callgrind target/release/examples/instructions lookup 10000` (and with 0:
//! the difference divided by 10,000 is the cost of one operation).
#![allow(missing_docs, clippy::unwrap_used)]
use mosaic_core::config::SecretRef;
use mosaic_core::driver;
use mosaic_core::engine::{Call, Outcome, Request, Step};
use mosaic_core::http::Method;
use mosaic_core::region::Locality;
use mosaic_core::select::{self, Inputs};
use mosaic_core::sim::{block_on, SimHost};
use mosaic_core::{Instant, RawConfig, Router, State};
use std::hint::black_box;

fn config(routes: usize, providers: usize, strategy: &str) -> Router {
    let mut s = String::new();
    for p in 0..providers {
        s.push_str(&format!("[[providers]]\nid = \"p{p}\"\nbase_url = \"https://p{p}.example\"\nregion = \"eu-west\"\n"));
    }
    let list: Vec<String> = (0..providers).map(|p| format!("\"p{p}\"")).collect();
    for r in 0..routes {
        let path = match r % 4 {
            0 => format!("/svc{r}/repos/{{owner}}/{{repo}}"),
            1 => format!("/svc{r}/items/{{id}}"),
            2 => format!("/svc{r}/static/{{*path}}"),
            _ => format!("/svc{r}/a/b/c"),
        };
        s.push_str(&format!("[[routes]]\nname = \"r{r}\"\nmatch = {{ path = \"{path}\", methods = [\"GET\"] }}\nproviders = [{}]\nstrategy = \"{strategy}\"\n", list.join(", ")));
    }
    let raw: RawConfig = toml::from_str(&s).unwrap();
    Router::new(raw.validate().unwrap(), |_: &SecretRef| None)
}

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    let n: usize = std::env::args()
        .nth(2)
        .map(|x| x.parse().unwrap())
        .unwrap_or(0);
    let r = config(1000, 10, "priority");
    let none: [(&str, &str); 0] = [];
    let mut st = State::new(&r.config, 1);
    let now = Instant::from_secs(1_700_000_000);
    let loc = Locality::default();
    let stats: Vec<_> = st.providers.iter().map(|p| p.stats).collect();
    let headers: Vec<(String, String)> = vec![("accept".into(), "application/json".into())];
    let sim = SimHost::new(State::new(&r.config, 1), now, 1);
    for _ in 0..n {
        match mode.as_str() {
            "lookup" => {
                black_box(
                    r.config
                        .table
                        .lookup(
                            Method::Get,
                            Some("edge.test"),
                            black_box("/svc996/repos/rust-lang/rust"),
                            &none[..],
                        )
                        .map(|m| m.route),
                );
            }
            "decision" => {
                let m = r
                    .config
                    .table
                    .lookup(
                        Method::Get,
                        Some("edge.test"),
                        black_box("/svc996/repos/rust-lang/rust"),
                        &none[..],
                    )
                    .unwrap();
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
                black_box(rs.breakers[order[0]].admit(&route.breaker, now));
            }
            "call" => {
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
                let admitted = r.admit(&mut st, &req, now).unwrap();
                let mut call = Call::new(&r, &mut st, &req, &admitted, now);
                let step = call.poll(&r, &mut st, now);
                if let Step::Attempt(a) = &step {
                    call.handle_outcome(
                        &r,
                        &mut st,
                        a.id,
                        Outcome::Response {
                            status: 200,
                            headers: vec![],
                        },
                        now,
                    );
                }
                let _ = black_box(step);
            }
            "request" => {
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
                black_box(block_on(driver::handle(&sim, &r, &req, 1 << 16)).status);
            }
            other => panic!("unknown mode {other}: lookup, decision, call or request"),
        }
    }
}
