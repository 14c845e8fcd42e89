//! `[[routes]]`: names, matchers, provider lists and strategies, then the route table.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use super::policies::{self, Policies};
use super::{valid_name, Routes};
use crate::config::error::Errs;
use crate::config::model::{Route, Strategy};
use crate::config::raw::{RawPolicies, RawRoute};
use crate::http::{Method, MethodSet};
use crate::route::{PathPattern, RouteTable};

/// The strategy names, as listed when one is unknown.
const STRATEGIES: &str =
    "priority, weighted, round-robin, random, least-latency, cost-aware, region-nearest, adaptive";

/// Checks every configured route and collects their names.
pub(super) fn routes<'a>(
    raw: &'a [RawRoute],
    defaults: &RawPolicies,
    provider_ids: &BTreeMap<&str, usize>,
    e: &mut Errs,
) -> Routes<'a> {
    let mut list = Vec::new();
    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, r) in raw.iter().enumerate() {
        let at = format!("routes[{i}]");
        if !valid_name(&r.name) {
            e.push(
                format!("{at}.name"),
                format!("`{}` is not a valid name", r.name),
            );
        } else if names.insert(&r.name, i).is_some() {
            e.push(
                format!("{at}.name"),
                format!("duplicate route name `{}`", r.name),
            );
        }
        list.extend(route(r, &at, defaults, provider_ids, e));
    }
    let paths = (0..list.len()).map(|i| format!("routes[{i}]")).collect();
    Routes {
        list,
        names,
        paths,
        v1_groups: BTreeMap::new(),
    }
}

/// Checks one route (all but its name) at `at`, its unset policies taken from `defaults`;
/// `None` when it is unusable.
pub(super) fn route(
    r: &RawRoute,
    at: &str,
    defaults: &RawPolicies,
    provider_ids: &BTreeMap<&str, usize>,
    e: &mut Errs,
) -> Option<Route> {
    let matcher = matcher(r, at, e);
    let providers = provider_list(&r.providers, at, provider_ids, e);
    let strategy = strategy(r, at, e);
    let policies = policies::route(&r.policies, defaults, at, r.retry_non_idempotent, e);
    let (matcher, providers, strategy, policies) = (matcher?, providers?, strategy?, policies?);
    let Policies {
        retry,
        timeout,
        breaker,
        cache,
        limit,
    } = policies;
    Some(Route {
        name: r.name.clone(),
        methods: matcher.methods,
        host: r.matcher.host.as_ref().map(|h| h.to_ascii_lowercase()),
        pattern: matcher.pattern,
        headers: matcher.headers,
        providers,
        strategy,
        upstream_path: matcher.upstream_path,
        retry,
        timeout,
        breaker,
        cache,
        limit,
        forward_caller_auth: r.forward_caller_auth,
        public: r.public,
    })
}

/// A route's `match` table and `upstream_path`, validated.
struct Matched {
    methods: MethodSet,
    pattern: PathPattern,
    upstream_path: Option<PathPattern>,
    headers: Vec<(String, Option<String>)>,
}

/// Checks `match.methods`, `match.path`, `upstream_path` and `match.headers`.
fn matcher(r: &RawRoute, at: &str, e: &mut Errs) -> Option<Matched> {
    let mut ok = true;
    let mut methods = MethodSet::NONE;
    if r.matcher.methods.is_empty() {
        methods = MethodSet::ANY;
    }
    for (k, m) in r.matcher.methods.iter().enumerate() {
        match Method::parse(&m.to_ascii_uppercase()) {
            Some(m) => methods = methods.with(m),
            None => {
                ok = false;
                e.push(
                    format!("{at}.match.methods[{k}]"),
                    format!("unknown method \"{m}\"; expected one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
                );
            }
        }
    }
    let pattern = match PathPattern::parse(&r.matcher.path) {
        Ok(p) => Some(p),
        Err(m) => {
            e.push(format!("{at}.match.path"), m);
            None
        }
    };
    let upstream_path = match (&r.upstream_path, &pattern) {
        (Some(t), Some(p)) => upstream_path(t, p, at, e),
        _ => Some(None),
    };
    let headers = headers(&r.matcher.headers, at, e);
    match (ok, pattern, upstream_path, headers) {
        (true, Some(pattern), Some(upstream_path), Some(headers)) => Some(Matched {
            methods,
            pattern,
            upstream_path,
            headers,
        }),
        _ => None,
    }
}

/// Checks the `upstream_path` template `t` against the match pattern `p`: `None` when it does
/// not parse or uses a parameter `p` lacks.
fn upstream_path(t: &str, p: &PathPattern, at: &str, e: &mut Errs) -> Option<Option<PathPattern>> {
    match PathPattern::parse(t) {
        Ok(u) => {
            let mut ok = true;
            for name in u.param_names() {
                if !p.param_names().any(|n| n == name) {
                    ok = false;
                    e.push(
                        format!("{at}.upstream_path"),
                        format!("`{{{name}}}` is not a parameter of match.path `{}`", p.raw),
                    );
                }
            }
            ok.then_some(Some(u))
        }
        Err(m) => {
            e.push(format!("{at}.upstream_path"), m);
            None
        }
    }
}

/// Checks the header predicates of `match.headers`: lowercase names, `*` for "present".
fn headers(
    raw: &BTreeMap<String, String>,
    at: &str,
    e: &mut Errs,
) -> Option<Vec<(String, Option<String>)>> {
    let mut ok = true;
    let mut headers = Vec::new();
    for (name, value) in raw {
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            ok = false;
            e.push(
                format!("{at}.match.headers"),
                format!("`{name}` is not a header name"),
            );
        }
        headers.push((
            name.to_ascii_lowercase(),
            if value == "*" {
                None
            } else {
                Some(value.clone())
            },
        ));
    }
    ok.then_some(headers)
}

/// Resolves a route's provider ids to indices.
fn provider_list(
    raw: &[String],
    at: &str,
    provider_ids: &BTreeMap<&str, usize>,
    e: &mut Errs,
) -> Option<Vec<usize>> {
    let mut ok = true;
    let mut providers = Vec::new();
    if raw.is_empty() {
        ok = false;
        e.push(
            format!("{at}.providers"),
            "a route needs at least one provider",
        );
    }
    for (k, p) in raw.iter().enumerate() {
        match provider_ids.get(p.as_str()) {
            Some(ix) => {
                if providers.contains(ix) {
                    ok = false;
                    e.push(
                        format!("{at}.providers[{k}]"),
                        format!("provider `{p}` listed twice"),
                    );
                }
                providers.push(*ix);
            }
            None => {
                ok = false;
                let known: Vec<&str> = provider_ids.keys().copied().collect();
                e.push(
                    format!("{at}.providers[{k}]"),
                    format!(
                        "unknown provider `{p}`; configured providers: {}",
                        known.join(", ")
                    ),
                );
            }
        }
    }
    ok.then_some(providers)
}

/// Parses `strategy` (default `priority`) and, for cost-aware, `max_latency_ms`.
fn strategy(r: &RawRoute, at: &str, e: &mut Errs) -> Option<Strategy> {
    Some(match r.strategy.as_deref().unwrap_or("priority") {
        "priority" | "failover" => Strategy::Priority,
        "weighted" => Strategy::Weighted,
        "round-robin" | "round_robin" => Strategy::RoundRobin,
        "random" => Strategy::Random,
        "least-latency" | "least_latency" => Strategy::LeastLatency,
        "cost-aware" | "cost_aware" => Strategy::CostAware {
            max_latency: Duration::from_millis(r.max_latency_ms.unwrap_or(1_000)),
        },
        "region-nearest" | "region_nearest" => Strategy::RegionNearest,
        "adaptive" => Strategy::Adaptive,
        other => {
            e.push(
                format!("{at}.strategy"),
                format!("unknown strategy \"{other}\"; expected one of {STRATEGIES}"),
            );
            return None;
        }
    })
}

/// Builds the route table when nothing else is wrong, reporting conflicting routes.
pub(super) fn table(routes: &Routes<'_>, e: &mut Errs) -> Option<RouteTable> {
    if !e.0.is_empty() {
        return None;
    }
    match RouteTable::build(&routes.list) {
        Ok(t) => Some(t),
        Err(conflicts) => {
            for c in conflicts {
                e.push(
                    format!(
                        "{}.match",
                        routes.paths.get(c.later).map_or("routes", String::as_str)
                    ),
                    format!(
                        "conflicts with route `{}` (routes[{}]): same methods, host, path shape and header predicates",
                        routes.list.get(c.earlier).map_or("?", |r| r.name.as_str()),
                        c.earlier
                    ),
                );
            }
            None
        }
    }
}
