//! `[v1.<family>]`: each family is expanded into ordinary routes after the configured ones (see
//! [`V1Family`]).

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::{routes, Providers, Routes};
use crate::config::error::Errs;
use crate::config::model::{Provider, Route, V1Family, V1_FAMILIES, V1_PIN_HEADER};
use crate::config::raw::{RawCache, RawMatch, RawPolicies, RawRoute, RawV1, RawV1Family};

/// Checks the configured families, in path order, appending their routes to `routes`.
pub(super) fn families(
    raw: &RawV1,
    defaults: &RawPolicies,
    providers: &Providers<'_>,
    routes: &mut Routes<'_>,
    e: &mut Errs,
) -> Vec<V1Family> {
    let mut v1 = Vec::new();
    let families = [&raw.git, &raw.ci, &raw.kb, &raw.pm];
    for (family, f) in V1_FAMILIES.iter().zip(families) {
        let Some(f) = f else { continue };
        v1.extend(self::family(family, f, defaults, providers, routes, e));
    }
    v1
}

/// Checks the family `family` and appends its family route and pinned routes to `routes`.
fn family(
    family: &str,
    f: &RawV1Family,
    defaults: &RawPolicies,
    providers: &Providers<'_>,
    routes: &mut Routes<'_>,
    e: &mut Errs,
) -> Option<V1Family> {
    let at = format!("v1.{family}");
    let name = format!("v1.{family}");
    if let Some(i) = routes.names.get(name.as_str()) {
        e.push(
            &at,
            format!("route name `{name}` is taken by routes[{i}]; rename that route"),
        );
        return None;
    }
    if f.policies.cache.is_some() {
        e.push(
            format!("{at}.cache"),
            "/v1 answers are not cached (normalizing needs the provider that answered); remove `cache`",
        );
    }
    let raw = family_route(family, &name, f);
    let mut family_route = routes::route(&raw, &at, defaults, &providers.ids, e)?;
    let listed = family_route.providers.clone();
    let equivalent_reads = f.equivalent_reads.unwrap_or(true);
    if !equivalent_reads {
        family_route.providers.truncate(1);
    }
    let generated = pinned_routes(&family_route, &listed, equivalent_reads, &providers.list);
    let route = routes.list.len();
    routes.list.push(family_route);
    routes.paths.push(at.clone());
    let mut group = alloc::vec![route];
    let mut pins = Vec::new();
    for (pin, r) in generated {
        pins.push((pin, routes.list.len()));
        group.push(routes.list.len());
        routes.list.push(r);
        routes.paths.push(at.clone());
    }
    routes.v1_groups.insert(name, group);
    Some(V1Family {
        family: String::from(family),
        providers: listed,
        equivalent_reads,
        route,
        pins,
    })
}

/// The family as a raw route named `name`: `/v1/<family>/{*rest}`, any method, never cached.
fn family_route(family: &str, name: &str, f: &RawV1Family) -> RawRoute {
    RawRoute {
        name: String::from(name),
        matcher: RawMatch {
            methods: Vec::new(),
            host: None,
            path: format!("/v1/{family}/{{*rest}}"),
            headers: BTreeMap::new(),
        },
        providers: f.providers.clone(),
        strategy: f.strategy.clone(),
        upstream_path: None,
        retry_non_idempotent: false,
        forward_caller_auth: false,
        public: f.public,
        max_latency_ms: f.max_latency_ms,
        policies: RawPolicies {
            cache: Some(RawCache {
                enabled: Some(false),
                ..RawCache::default()
            }),
            ..f.policies.clone()
        },
    }
}

/// The pinned copies of `family_route` with their pins: one per listed provider, and with
/// equivalent reads one per kind that several listed providers share (`kind:<kind>`).
fn pinned_routes(
    family_route: &Route,
    listed: &[usize],
    equivalent_reads: bool,
    providers: &[Provider],
) -> Vec<(String, Route)> {
    let pinned = |pin: &str, members: Vec<usize>| {
        let mut r = family_route.clone();
        r.name = format!("{}@{pin}", family_route.name);
        r.headers = alloc::vec![(String::from(V1_PIN_HEADER), Some(String::from(pin)))];
        r.providers = members;
        r
    };
    let mut generated = Vec::new();
    for &p in listed {
        let id = providers.get(p).map_or("", |x: &Provider| x.id.as_str());
        generated.push((String::from(id), pinned(id, alloc::vec![p])));
    }
    if equivalent_reads {
        let mut kinds: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for &p in listed {
            if let Some(x) = providers.get(p) {
                kinds.entry(x.kind.as_str()).or_default().push(p);
            }
        }
        for (kind, members) in kinds.into_iter().filter(|(_, m)| m.len() > 1) {
            let pin = format!("kind:{kind}");
            generated.push((pin.clone(), pinned(&pin, members)));
        }
    }
    generated
}
