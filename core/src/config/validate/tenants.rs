//! `[[tenants]]`: names, key hashes, allowed routes, limits, credentials and quotas.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::policies::parse_limit;
use super::{valid_name, Routes};
use crate::config::error::Errs;
use crate::config::model::{parse_key_hash, SecretRef, Tenant};
use crate::config::raw::{RawQuota, RawTenant};

/// Checks every tenant against the routes (`v1.<family>` naming the family's routes) and the
/// providers.
pub(super) fn tenants(
    raw: &[RawTenant],
    routes: &Routes<'_>,
    provider_ids: &BTreeMap<&str, usize>,
    e: &mut Errs,
) -> Vec<Tenant> {
    let mut tenants = Vec::new();
    let mut names = BTreeSet::new();
    for (i, t) in raw.iter().enumerate() {
        let at = format!("tenants[{i}]");
        if !valid_name(&t.name) {
            e.push(
                format!("{at}.name"),
                format!("`{}` is not a valid name", t.name),
            );
        } else if !names.insert(t.name.as_str()) {
            e.push(
                format!("{at}.name"),
                format!("duplicate tenant `{}`", t.name),
            );
        }
        tenants.push(tenant(t, &at, routes, provider_ids, e));
    }
    tenants
}

/// Checks one tenant (all but its name) at `at`.
fn tenant(
    t: &RawTenant,
    at: &str,
    routes: &Routes<'_>,
    provider_ids: &BTreeMap<&str, usize>,
    e: &mut Errs,
) -> Tenant {
    let mut key_hashes = Vec::new();
    for (k, h) in t.keys.iter().enumerate() {
        match parse_key_hash(h) {
            Some(d) => key_hashes.push(d),
            None => e.push(
                format!("{at}.keys[{k}]"),
                "expected `sha256:` followed by 64 hex digits (run `mosaic key new`)",
            ),
        }
    }
    let allowed = allowed_routes(&t.routes, at, routes, e);
    let limit = t
        .limit
        .as_ref()
        .and_then(|l| parse_limit(l, &format!("{at}.limit"), e));
    let credentials = credentials(&t.credentials, at, provider_ids, e);
    let (requests_per_day, cost_per_day) = quota(t.quota.as_ref(), at, e);
    Tenant {
        name: t.name.clone(),
        key_hashes,
        routes: allowed,
        limit,
        requests_per_day,
        cost_per_day,
        credentials,
    }
}

/// The route indices `names` allows; `None` (all) when empty or holding `*`.
fn allowed_routes(
    names: &[String],
    at: &str,
    routes: &Routes<'_>,
    e: &mut Errs,
) -> Option<BTreeSet<usize>> {
    if names.is_empty() || names.iter().any(|r| r == "*") {
        return None;
    }
    let mut set = BTreeSet::new();
    for (k, name) in names.iter().enumerate() {
        if let Some(group) = routes.v1_groups.get(name.as_str()) {
            set.extend(group.iter().copied());
            continue;
        }
        match routes.names.get(name.as_str()) {
            Some(ix) => {
                set.insert(*ix);
            }
            None => e.push(
                format!("{at}.routes[{k}]"),
                format!("unknown route `{name}`"),
            ),
        }
    }
    Some(set)
}

/// The tenant's own credentials: provider index → secret reference.
fn credentials(
    raw: &BTreeMap<String, String>,
    at: &str,
    provider_ids: &BTreeMap<&str, usize>,
    e: &mut Errs,
) -> BTreeMap<usize, SecretRef> {
    let mut credentials = BTreeMap::new();
    for (pid, s) in raw {
        let Some(&pix) = provider_ids.get(pid.as_str()) else {
            e.push(
                format!("{at}.credentials.{pid}"),
                format!("unknown provider `{pid}`"),
            );
            continue;
        };
        match SecretRef::parse(s) {
            Ok(r) => {
                credentials.insert(pix, r);
            }
            Err(m) => e.push(format!("{at}.credentials.{pid}"), m),
        }
    }
    credentials
}

/// The daily quotas: requests and cost units.
fn quota(q: Option<&RawQuota>, at: &str, e: &mut Errs) -> (Option<u64>, Option<f64>) {
    let Some(q) = q else {
        return (None, None);
    };
    if q.cost_per_day.is_some_and(|c| !(c.is_finite() && c >= 0.0)) {
        e.push(
            format!("{at}.quota.cost_per_day"),
            "must be a finite number ≥ 0",
        );
    }
    (q.requests_per_day, q.cost_per_day)
}
