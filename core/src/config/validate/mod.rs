//! Validation of the raw model into the validated one, one section per file.
//!
//! [`RawConfig::validate`] runs the sections in file order, each pushing its problems to one
//! [`Errs`], so that the problems come out in file order too; a section hands what later
//! sections refer to (provider ids, route names) on in a small struct.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use super::error::{ConfigErrors, Errs};
use super::model::{Config, Provider, Route};
use super::raw::RawConfig;

mod policies;
mod providers;
mod routes;
mod server;
mod tenants;
mod v1;
mod webhooks;

impl RawConfig {
    /// Validates the whole configuration and builds the route table.
    ///
    /// # Errors
    /// Every problem found, each with its key path.
    pub fn validate(&self) -> Result<Config, ConfigErrors> {
        let mut e = Errs(Vec::new());
        let admin_token = server::server(&self.server, &mut e);
        server::store(&self.store, &mut e);
        let providers = providers::providers(&self.providers, &mut e);
        let mut routes = routes::routes(&self.routes, &self.defaults, &providers.ids, &mut e);
        let v1 = v1::families(&self.v1, &self.defaults, &providers, &mut routes, &mut e);
        let tenants = tenants::tenants(&self.tenants, &routes, &providers.ids, &mut e);
        let webhooks = webhooks::webhooks(&self.webhooks, &self.tenants, &mut e);
        let table = routes::table(&routes, &mut e);
        match table {
            Some(table) if e.0.is_empty() => Ok(Config {
                server: self.server.clone(),
                store: self.store.clone(),
                admin_token,
                tenants,
                providers: providers.list,
                routes: routes.list,
                table,
                webhooks,
                v1,
            }),
            _ => Err(ConfigErrors(e.0)),
        }
    }
}

/// The providers section, validated.
struct Providers<'a> {
    /// The providers whose base URL parsed, in file order.
    list: Vec<Provider>,
    /// Every valid, first-seen provider id → its index in `providers`.
    ids: BTreeMap<&'a str, usize>,
}

/// The routes validated so far: the configured ones, then those the `/v1` families expand into.
struct Routes<'a> {
    /// The routes that validated, in order.
    list: Vec<Route>,
    /// Every valid, first-seen configured route name → its index in `routes`.
    names: BTreeMap<&'a str, usize>,
    /// The key path each route of `list` is reported at (`routes[i]` or `v1.<family>`).
    paths: Vec<String>,
    /// `v1.<family>` → the indices of the family route and its pinned routes.
    v1_groups: BTreeMap<String, Vec<usize>>,
}

/// Whether `s` is a valid id or name: letters, digits, `-`, `_`, `.`; at most 64.
fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// `v` milliseconds, `default` when unset.
fn ms(v: Option<u64>, default: u64) -> Duration {
    Duration::from_millis(v.unwrap_or(default))
}
