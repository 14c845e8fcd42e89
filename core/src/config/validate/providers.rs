//! `[[providers]]`: ids, base URLs, regions, weights and authentication.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::vec::Vec;

use super::{valid_name, Providers};
use crate::config::error::Errs;
use crate::config::model::{AuthScheme, BaseUrl, Provider, SecretRef};
use crate::config::raw::{RawAuth, RawProvider};
use crate::region::Region;

/// Checks every provider and collects their ids.
pub(super) fn providers<'a>(raw: &'a [RawProvider], e: &mut Errs) -> Providers<'a> {
    let mut list = Vec::new();
    let mut ids: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, p) in raw.iter().enumerate() {
        let at = format!("providers[{i}]");
        if !valid_name(&p.id) {
            e.push(
                format!("{at}.id"),
                format!(
                    "`{}` is not a valid id (letters, digits, `-`, `_`, `.`; at most 64)",
                    p.id
                ),
            );
        } else if ids.insert(&p.id, i).is_some() {
            e.push(
                format!("{at}.id"),
                format!("duplicate provider id `{}`", p.id),
            );
        }
        list.extend(provider(p, &at, e));
    }
    Providers { list, ids }
}

/// Checks one provider (all but its id) at `at`; `None` when its base URL is unusable.
fn provider(p: &RawProvider, at: &str, e: &mut Errs) -> Option<Provider> {
    let base = match BaseUrl::parse(&p.base_url) {
        Ok(b) => {
            if b.is_private() && !p.allow_private {
                e.push(format!("{at}.base_url"), format!("`{}` is a private, loopback or link-local address; set allow_private = true to allow it", p.base_url));
            }
            Some(b)
        }
        Err(m) => {
            e.push(format!("{at}.base_url"), m);
            None
        }
    };
    let region = match &p.region {
        Some(r) => match Region::parse(r, &p.countries, &p.colos) {
            Ok(r) => r,
            Err(m) => {
                e.push(format!("{at}.region"), m);
                Region::default()
            }
        },
        None => Region::parse("", &p.countries, &p.colos).unwrap_or_default(),
    };
    if !(p.cost.is_finite() && p.cost >= 0.0) {
        e.push(format!("{at}.cost"), "must be a finite number ≥ 0");
    }
    if p.weight == Some(0) {
        e.push(format!("{at}.weight"), "must be at least 1");
    }
    let auth = match &p.auth {
        None => AuthScheme::None,
        Some(a) => auth(a, &format!("{at}.auth"), e),
    };
    Some(Provider {
        id: p.id.clone(),
        kind: p.kind.clone(),
        base_url: base?,
        region,
        cost: p.cost,
        weight: p.weight.unwrap_or(1).max(1),
        auth,
        allow_private: p.allow_private,
        cooldown_below: p.cooldown_below,
        rate_limit: None,
    })
}

/// Checks a provider's `auth` table at `at`.
fn auth(a: &RawAuth, at: &str, e: &mut Errs) -> AuthScheme {
    let secret = match &a.secret {
        Some(s) => match SecretRef::parse(s) {
            Ok(r) => Some(r),
            Err(m) => {
                e.push(format!("{at}.secret"), m);
                return AuthScheme::None;
            }
        },
        None => None,
    };
    let need = |e: &mut Errs| {
        if secret.is_none() {
            e.push(
                format!("{at}.secret"),
                format!("auth scheme `{}` needs a secret reference", a.scheme),
            );
        }
    };
    match a.scheme.as_str() {
        "none" => AuthScheme::None,
        "bearer" => {
            need(e);
            secret.map_or(AuthScheme::None, AuthScheme::Bearer)
        }
        "token" => {
            need(e);
            secret.map_or(AuthScheme::None, AuthScheme::Token)
        }
        "basic" => {
            need(e);
            secret.map_or(AuthScheme::None, AuthScheme::Basic)
        }
        "header" => {
            need(e);
            let Some(h) = a.header.clone().filter(|h| !h.is_empty()) else {
                e.push(
                    format!("{at}.header"),
                    "auth scheme `header` needs a header name",
                );
                return AuthScheme::None;
            };
            if !crate::head::is_token(&h) {
                // caught here, not as every request's failure to send (which would look like
                // the provider failing and open its breaker)
                e.push(
                    format!("{at}.header"),
                    format!("\"{h}\" is not a valid header name (letters, digits and !#$%&'*+-.^_`|~ only)"),
                );
                return AuthScheme::None;
            }
            secret.map_or(AuthScheme::None, |s| AuthScheme::Header(h, s))
        }
        other => {
            e.push(
                format!("{at}.scheme"),
                format!("unknown auth scheme \"{other}\"; expected one of bearer, token, basic, header, none"),
            );
            AuthScheme::None
        }
    }
}
