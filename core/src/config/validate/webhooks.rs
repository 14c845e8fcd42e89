//! `[[webhooks]]`: endpoint names, schemes, secrets, tenants and destinations.

use alloc::collections::BTreeSet;
use alloc::format;
use alloc::vec::Vec;
use core::time::Duration;

use super::valid_name;
use crate::config::error::Errs;
use crate::config::model::{BaseUrl, Destination, SecretRef, Webhook, WEBHOOK_SCHEMES};
use crate::config::raw::{RawDestination, RawTenant, RawWebhook};

/// Checks every webhook endpoint; `tenants` are the configured ones, as written.
pub(super) fn webhooks(raw: &[RawWebhook], tenants: &[RawTenant], e: &mut Errs) -> Vec<Webhook> {
    let mut webhooks = Vec::new();
    let mut names = BTreeSet::new();
    for (i, w) in raw.iter().enumerate() {
        let at = format!("webhooks[{i}]");
        if !valid_name(&w.name) {
            e.push(
                format!("{at}.name"),
                format!("`{}` is not a valid name", w.name),
            );
        } else if !names.insert(w.name.as_str()) {
            e.push(
                format!("{at}.name"),
                format!("duplicate webhook endpoint `{}`", w.name),
            );
        }
        webhooks.push(webhook(w, &at, tenants, e));
    }
    webhooks
}

/// Checks one endpoint (all but its name) at `at`.
fn webhook(w: &RawWebhook, at: &str, tenants: &[RawTenant], e: &mut Errs) -> Webhook {
    if !WEBHOOK_SCHEMES.contains(&w.scheme.as_str()) {
        e.push(
            format!("{at}.scheme"),
            format!(
                "unknown scheme \"{}\"; expected one of {}",
                w.scheme,
                WEBHOOK_SCHEMES.join(", ")
            ),
        );
    }
    let mut secrets = Vec::new();
    for (k, s) in w.secrets.iter().enumerate() {
        match SecretRef::parse(s) {
            Ok(r) => secrets.push(r),
            Err(m) => e.push(format!("{at}.secrets[{k}]"), m),
        }
    }
    let tenant = w.tenant.as_ref().and_then(|t| {
        let ix = tenants.iter().position(|x| &x.name == t);
        if ix.is_none() {
            e.push(format!("{at}.tenant"), format!("unknown tenant `{t}`"));
        }
        ix
    });
    let mut destinations = Vec::new();
    for (k, d) in w.destinations.iter().enumerate() {
        destinations.extend(destination(d, &format!("{at}.destinations[{k}]"), e));
    }
    Webhook {
        name: w.name.clone(),
        scheme: w.scheme.clone(),
        secrets,
        tenant,
        tolerance: w.tolerance_s.map(Duration::from_secs),
        max_body_bytes: w.max_body_bytes.unwrap_or(1 << 20),
        dedup_ttl: Duration::from_secs(w.dedup_ttl_s.unwrap_or(7 * 24 * 3600)),
        destinations,
    }
}

/// Checks one destination at `at`; `None` when its URL is unusable.
fn destination(d: &RawDestination, at: &str, e: &mut Errs) -> Option<Destination> {
    let base = match BaseUrl::parse(&d.url) {
        Ok(base) => base,
        Err(m) => {
            e.push(format!("{at}.url"), m);
            return None;
        }
    };
    if base.is_private() && !d.allow_private {
        e.push(format!("{at}.url"), format!("`{}` is a private, loopback or link-local address; set allow_private = true to allow it", d.url));
    }
    let sign_secret = d.sign_secret.as_ref().and_then(|s| {
        SecretRef::parse(s)
            .map_err(|m| e.push(format!("{at}.sign_secret"), m))
            .ok()
    });
    Some(Destination {
        url: d.url.clone(),
        base,
        sign_secret,
        allow_private: d.allow_private,
        attempts: d.attempts.unwrap_or(8).clamp(1, 50),
    })
}
