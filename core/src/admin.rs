//! What the admin API and the `explain` command say: rendered here so every host says the same.
//!
//! - [`state_json`] is the body of `GET /_mosaic/state`: providers (latency estimate, success
//!   rate, cooldown), routes (strategy, breaker state per provider) and cache statistics. Hosts
//!   add only what they alone know ([`CacheStats`]: their L1 size and store kind).
//! - [`explain`] answers "what would the router do with this request, and why?" without sending
//!   anything: the route that matches (or the problem the caller would get), the tenant, the
//!   provider order the strategy picks, and for every provider of the route whether it is
//!   available (breaker, cooldown) and what the selection looked at (region distance, weight,
//!   cost, latency). It runs admission and selection on a *copy* of the state, so explaining a
//!   request never spends a rate limit, a retry budget or a round-robin turn.
//!
//! Neither reads a clock: `now` is an input, like everywhere in core. Neither ever includes a
//! secret: credentials show as the header name with a redacted value.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write as _;

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::breaker::State as BState;
use crate::config::AuthScheme;
use crate::engine::{Call, Request, Router, State, Step};
use crate::time::Instant;

/// Cache figures only the host knows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CacheStats {
    /// Entries in the host's in-memory (L1) cache.
    pub entries: u64,
    /// Bytes those entries take.
    pub bytes: u64,
    /// The L1 bound in bytes.
    pub capacity_bytes: u64,
    /// The shared tier behind L1 (`memory`, `file`, `redis`, `kv`, …).
    pub store: String,
    /// Concurrent misses that waited for another request's fetch instead of going upstream.
    pub collapsed: u64,
}

fn ms_until(t: Instant, now: Instant) -> u64 {
    t.saturating_since(now).as_millis() as u64
}

fn breaker_json(state: BState, opens: u32, now: Instant) -> Value {
    let mut m = Map::new();
    m.insert("state".into(), Value::from(state.name()));
    if let BState::Open { until } = state {
        m.insert("open_for_ms".into(), Value::from(ms_until(until, now)));
    }
    if let BState::HalfOpen {
        in_flight,
        successes,
    } = state
    {
        m.insert("probes_in_flight".into(), Value::from(in_flight));
        m.insert("probe_successes".into(), Value::from(successes));
    }
    m.insert("consecutive_opens".into(), Value::from(opens));
    Value::Object(m)
}

/// The body of `GET /_mosaic/health`, the same on every host: liveness, readiness (`ready`:
/// the host's store answers), the store kind, and the size of the configuration. A host adds
/// what only it knows (generation, config source) to the object.
#[must_use]
pub fn health_json(router: &Router, ready: bool, store: &str) -> Value {
    json!({
        "status": if ready { "ok" } else { "degraded" },
        "live": true,
        "ready": ready,
        "store": store,
        "routes": router.config.routes.len(),
        "providers": router.config.providers.len(),
    })
}

/// The body of `GET /_mosaic/state`.
#[must_use]
pub fn state_json(router: &Router, state: &State, cache: &CacheStats, now: Instant) -> Value {
    let cfg = &router.config;
    let providers: Vec<Value> = cfg
        .providers
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let ps = state.providers.get(i).cloned().unwrap_or_default();
            json!({
                "id": p.id,
                "kind": p.kind,
                "base_url": format!("{}{}", p.base_url.origin(), p.base_url.path),
                "latency_ms": ps.stats.latency_at(now) / 1000.0,
                "success_rate": ps.stats.success,
                "samples": ps.stats.samples,
                "in_flight": ps.stats.pending,
                "cooling_down_ms": ms_until(ps.cool_until, now),
            })
        })
        .collect();
    let routes: Vec<Value> = cfg
        .routes
        .iter()
        .enumerate()
        .map(|(ri, r)| {
            let slots: Vec<Value> = r
                .providers
                .iter()
                .enumerate()
                .map(|(slot, &p)| {
                    let b = state.routes.get(ri).and_then(|rs| rs.breakers.get(slot));
                    let breaker = b.map_or(Value::Null, |b| {
                        breaker_json(b.state(), b.consecutive_opens(), now)
                    });
                    json!({ "provider": cfg.providers[p].id, "breaker": breaker })
                })
                .collect();
            json!({ "name": r.name, "strategy": r.strategy.name(), "providers": slots })
        })
        .collect();
    let by_route = |m: &alloc::collections::BTreeMap<
        String,
        alloc::collections::BTreeMap<&'static str, u64>,
    >| {
        m.iter()
            .map(|(route, counts)| {
                let inner: Map<String, Value> = counts
                    .iter()
                    .map(|(k, n)| (String::from(*k), Value::from(*n)))
                    .collect();
                (route.clone(), Value::Object(inner))
            })
            .collect::<Map<String, Value>>()
    };
    let results = by_route(&state.metrics.cache);
    let requests = by_route(&state.metrics.requests);
    json!({
        "now_ms": now.as_millis(),
        "providers": providers,
        "routes": routes,
        "requests": requests,
        "cache": {
            "l1": cache,
            "results": results,
        },
    })
}

/// One provider of the route, as `explain` sees it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProviderView {
    /// Provider id.
    pub id: String,
    /// Position in the order selected for this request (0 = first), `None` when skipped.
    pub position: Option<usize>,
    /// Breaker state on this route: `closed`, `open`, `half-open`.
    pub breaker: &'static str,
    /// Milliseconds until an open breaker lets a probe through.
    pub breaker_open_for_ms: Option<u64>,
    /// Milliseconds of cooldown left (429, `Retry-After`, rate-limit headers).
    pub cooling_down_ms: u64,
    /// Region distance to the caller (0 same colo … 4 unknown/far).
    pub region_distance: u8,
    /// Weight (weighted strategy).
    pub weight: u32,
    /// Cost units per request (cost-aware strategy, quotas).
    pub cost: f64,
    /// Latency estimate in milliseconds (0 = no sample yet).
    pub latency_ms: f64,
    /// Success-rate estimate.
    pub success_rate: f64,
    /// Why it is where it is.
    pub why: String,
}

/// The route part of an explanation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RouteView {
    /// Route name.
    pub name: String,
    /// Strategy name.
    pub strategy: &'static str,
    /// Tenant the request would run as.
    pub tenant: String,
    /// Path sent upstream (with the query).
    pub upstream_path: String,
    /// Whether the request may be answered from the cache.
    pub cacheable: bool,
    /// Attempts allowed in all.
    pub max_attempts: u32,
    /// Per-attempt timeout in ms.
    pub per_try_timeout_ms: u64,
    /// Whole-request deadline in ms.
    pub deadline_ms: u64,
    /// Whether a failure after sending may be retried (idempotent, `Idempotency-Key`, opt-in).
    pub retries_after_send: bool,
    /// Every provider of the route in configured order.
    pub providers: Vec<ProviderView>,
    /// URL of the first attempt, if any provider is available.
    pub first_url: Option<String>,
    /// Header names of the first attempt; credential values are never shown.
    pub first_headers: Vec<String>,
}

/// What the router would do with a request.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Explanation {
    /// `METHOD target`.
    pub request: String,
    /// The route, when one matches and admission passes.
    pub route: Option<RouteView>,
    /// The problem the caller would get instead (`no-route`, `unauthorized`, …).
    pub problem: Option<String>,
}

/// Explains `req` against `router` and a copy of `state` at `now`; nothing is spent.
#[must_use]
pub fn explain(router: &Router, state: &State, req: &Request<'_>, now: Instant) -> Explanation {
    let request = format!("{} {}", req.method.as_str(), req.target);
    let mut scratch = state.clone();
    let admitted = match router.admit(&mut scratch, req, now) {
        Ok(a) => a,
        Err(p) => {
            return Explanation {
                request,
                route: None,
                problem: Some(format!("{} {}: {}", p.status(), p.kind.slug(), p.detail)),
            }
        }
    };
    let cfg = &router.config;
    let ri = admitted.route;
    let route = &cfg.routes[ri];
    let mut call = Call::new(router, &mut scratch, req, &admitted, now);
    let order: Vec<usize> = call.order().to_vec();
    let (first_url, first_headers) = match call.poll(router, &mut scratch, now) {
        Step::Attempt(a) => {
            let credential = match &cfg.providers[a.provider].auth {
                AuthScheme::Header(h, _) => h.as_str(),
                _ => "authorization",
            };
            let names = a
                .headers
                .iter()
                .map(|(n, _)| {
                    let secret = [credential, "authorization", "proxy-authorization", "cookie"]
                        .iter()
                        .any(|c| c.eq_ignore_ascii_case(n));
                    if secret {
                        format!("{n}: <redacted>")
                    } else {
                        n.clone()
                    }
                })
                .collect();
            (Some(a.url), names)
        }
        _ => (None, Vec::new()),
    };
    let providers = route
        .providers
        .iter()
        .enumerate()
        .map(|(slot, &p)| {
            let prov = &cfg.providers[p];
            let ps = state.providers.get(p).cloned().unwrap_or_default();
            let b = &state.routes[ri].breakers[slot];
            let position = order.iter().position(|&x| x == p);
            let cooling = ms_until(ps.cool_until, now);
            let open_for = b.retry_at().filter(|u| *u > now).map(|u| ms_until(u, now));
            let why = if let Some(ms) = open_for {
                format!("skipped: circuit open for another {ms} ms")
            } else if cooling > 0 {
                format!("skipped: cooling down for another {cooling} ms (429, Retry-After or rate-limit headers)")
            } else if !b.would_admit(&route.breaker, now) {
                String::from("skipped: half-open and every probe slot is taken")
            } else {
                match position {
                    Some(0) => format!("first: chosen by `{}`", route.strategy.name()),
                    Some(k) => format!("failover #{k}: ordered by `{}`", route.strategy.name()),
                    None => String::from("not selected"),
                }
            };
            ProviderView {
                id: prov.id.clone(),
                position,
                breaker: b.state().name(),
                breaker_open_for_ms: open_for,
                cooling_down_ms: cooling,
                region_distance: prov.region.distance(&req.locality),
                weight: prov.weight,
                cost: prov.cost,
                latency_ms: ps.stats.latency_at(now) / 1000.0,
                success_rate: ps.stats.success,
                why,
            }
        })
        .collect();
    let upstream_path =
        crate::target::join_target("", &admitted.upstream_path, admitted.query.as_deref());
    Explanation {
        request,
        route: Some(RouteView {
            name: route.name.clone(),
            strategy: route.strategy.name(),
            tenant: admitted.tenant.name.clone().into_owned(),
            upstream_path,
            cacheable: admitted.cache_key.is_some(),
            max_attempts: route.retry.max_attempts,
            per_try_timeout_ms: route.timeout.per_try.as_millis() as u64,
            deadline_ms: route.timeout.total.as_millis() as u64,
            retries_after_send: req.method.is_idempotent()
                || crate::http::Headers::header(req.headers, "idempotency-key").is_some()
                || route.retry.non_idempotent,
            providers,
            first_url,
            first_headers,
        }),
        problem: None,
    }
}

impl Explanation {
    /// A human-readable report, one fact per line.
    #[must_use]
    pub fn to_text(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "request:  {}", self.request);
        if let Some(p) = &self.problem {
            let _ = writeln!(o, "answer:   {p}");
            return o;
        }
        let Some(r) = &self.route else { return o };
        let _ = writeln!(o, "route:    {} (strategy {})", r.name, r.strategy);
        let _ = writeln!(o, "tenant:   {}", r.tenant);
        let _ = writeln!(o, "upstream: {}", r.upstream_path);
        let _ = writeln!(
            o,
            "cache:    {}",
            if r.cacheable {
                "lookup, then store per Cache-Control"
            } else {
                "bypass"
            }
        );
        let _ = writeln!(
            o,
            "retry:    up to {} attempts, {} ms per try, {} ms deadline; {}",
            r.max_attempts,
            r.per_try_timeout_ms,
            r.deadline_ms,
            if r.retries_after_send {
                "retried after a failure even once sent"
            } else {
                "not retried once sent (non-idempotent, no Idempotency-Key): only connect failures fail over"
            }
        );
        let _ = writeln!(o, "providers (configured order):");
        for p in &r.providers {
            let pos = p
                .position
                .map_or_else(|| String::from("-"), |k| format!("{}", k + 1));
            let _ = writeln!(
                o,
                "  [{pos}] {:<16} breaker {:<9} latency {:>8.2} ms  success {:>4.0}%  weight {}  cost {}  region distance {}  — {}",
                p.id,
                p.breaker,
                p.latency_ms,
                p.success_rate * 100.0,
                p.weight,
                p.cost,
                p.region_distance,
                p.why
            );
        }
        match &r.first_url {
            Some(u) => {
                let _ = writeln!(o, "first attempt: {u}");
                let _ = writeln!(o, "  headers: {}", r.first_headers.join(", "));
            }
            None => {
                let _ = writeln!(
                    o,
                    "first attempt: none — every provider is unavailable (503 with Retry-After)"
                );
            }
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RawConfig;
    use crate::engine::Request;
    use crate::http::Method;
    use crate::region::Locality;
    use alloc::string::ToString;
    use core::time::Duration;

    const CFG: &str = r#"
        [server]
        admin_token = "env:ADMIN"
        [[providers]]
        id = "a"
        base_url = "https://a.example/api"
        auth = { scheme = "bearer", secret = "env:A_TOKEN" }
        [[providers]]
        id = "b"
        base_url = "https://b.example"
        [[routes]]
        name = "r"
        match = { path = "/x/{*rest}", methods = ["GET", "POST"] }
        providers = ["a", "b"]
        breaker = { min_calls = 1, size = 2, open_ms = 1000 }
        cache = { enabled = true, ttl_s = 5 }
    "#;

    fn router() -> Router {
        let raw: RawConfig = toml::from_str(CFG).unwrap();
        let cfg = raw.validate().unwrap();
        Router::new(cfg, |r| Some(r.to_string() + "-value"))
    }

    fn req<'a>(method: Method, target: &'a str, headers: &'a [(String, String)]) -> Request<'a> {
        Request {
            method,
            host: Some("edge.test"),
            target,
            headers,
            client_ip: Some("192.0.2.1"),
            https: true,
            locality: Locality::default(),
            id: "t",
        }
    }

    #[test]
    fn explains_order_and_redacts_credentials() {
        let r = router();
        let state = State::new(&r.config, 1);
        let now = Instant::from_secs(1_000);
        let e = explain(&r, &state, &req(Method::Get, "/x/y?q=1", &[]), now);
        let route = e.route.clone().unwrap();
        assert_eq!(route.name, "r");
        assert_eq!(route.upstream_path, "/x/y?q=1");
        assert!(route.cacheable);
        assert_eq!(route.providers[0].position, Some(0));
        assert_eq!(route.providers[1].position, Some(1));
        assert_eq!(
            route.first_url.as_deref(),
            Some("https://a.example/api/x/y?q=1")
        );
        assert!(route
            .first_headers
            .iter()
            .any(|h| h == "authorization: <redacted>"));
        let text = e.to_text();
        assert!(!text.contains("A_TOKEN-value"), "{text}");
        assert!(text.contains("route:    r (strategy priority)"), "{text}");
    }

    #[test]
    fn explains_an_open_breaker_and_spends_nothing() {
        let r = router();
        let mut state = State::new(&r.config, 1);
        let now = Instant::from_secs(1_000);
        let policy = &r.config.routes[0].breaker;
        state.routes[0].breakers[0].trip(policy, now);
        let before = state.clone();
        let e = explain(
            &r,
            &state,
            &req(Method::Get, "/x/y", &[]),
            now + Duration::from_millis(200),
        );
        let route = e.route.unwrap();
        assert_eq!(route.providers[0].breaker, "open");
        assert_eq!(route.providers[0].position, None);
        assert!(
            route.providers[0]
                .why
                .contains("circuit open for another 800 ms"),
            "{}",
            route.providers[0].why
        );
        assert_eq!(route.providers[1].position, Some(0));
        assert_eq!(route.first_url.as_deref(), Some("https://b.example/x/y"));
        assert_eq!(state.routes[0].budget, before.routes[0].budget);
        assert_eq!(state.limiters, before.limiters);
    }

    #[test]
    fn explains_no_route_and_post_retry_rule() {
        let r = router();
        let state = State::new(&r.config, 1);
        let now = Instant::from_secs(1_000);
        let e = explain(&r, &state, &req(Method::Get, "/nope", &[]), now);
        assert!(e.problem.unwrap().starts_with("404 no-route"));
        let e = explain(&r, &state, &req(Method::Post, "/x/y", &[]), now);
        assert!(!e.route.unwrap().retries_after_send);
        let h = [(String::from("Idempotency-Key"), String::from("k"))];
        let e = explain(&r, &state, &req(Method::Post, "/x/y", &h), now);
        assert!(e.route.unwrap().retries_after_send);
    }

    #[test]
    fn state_json_reports_breakers_and_cache() {
        let r = router();
        let mut state = State::new(&r.config, 1);
        let now = Instant::from_secs(1_000);
        state.routes[0].breakers[1].trip(&r.config.routes[0].breaker, now);
        state.metrics.count_cache("r", "hit");
        let cache = CacheStats {
            entries: 2,
            bytes: 10,
            capacity_bytes: 100,
            store: "memory".into(),
            collapsed: 3,
        };
        let v = state_json(&r, &state, &cache, now);
        assert_eq!(v["routes"][0]["providers"][0]["breaker"]["state"], "closed");
        assert_eq!(v["routes"][0]["providers"][1]["breaker"]["state"], "open");
        assert_eq!(
            v["routes"][0]["providers"][1]["breaker"]["open_for_ms"],
            1000
        );
        assert_eq!(v["cache"]["results"]["r"]["hit"], 1);
        assert_eq!(v["cache"]["l1"]["collapsed"], 3);
        assert_eq!(v["providers"][0]["id"], "a");
        assert_eq!(v["providers"][0]["base_url"], "https://a.example/api");
    }

    #[test]
    fn health_says_live_ready_store_and_the_configuration_size() {
        let r = router();
        let v = health_json(&r, true, "memory");
        assert_eq!(v["status"], "ok");
        assert_eq!(v["live"], true);
        assert_eq!(v["ready"], true);
        assert_eq!(v["store"], "memory");
        assert_eq!(
            (v["routes"].as_u64(), v["providers"].as_u64()),
            (Some(1), Some(2))
        );
        let v = health_json(&r, false, "kv");
        assert_eq!(
            (v["status"].as_str(), v["ready"].as_bool()),
            (Some("degraded"), Some(false))
        );
        assert_eq!(
            v["live"], true,
            "a host that answers is live even when its store is not"
        );
    }
}
