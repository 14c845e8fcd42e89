//! Where the configuration, the declarative providers and the secrets come from on Spin.
//!
//! - The config text (TOML, the same file the local server reads) is picked by
//!   [`app::pick_source`], the precedence of every host: the key-value key `mosaic:config`
//!   when set and not blank, else the Spin variable `config`.
//! - It is parsed and validated on every request (a fresh instance each time) by the
//!   application's config lifecycle ([`app::check`]). When it is invalid, the last
//!   configuration that `POST /_mosaic/reload` accepted ([`app::GOOD_KEY`]) keeps serving; with
//!   no such fallback the request is answered by [`app::unconfigured`].
//! - The router is [`app::build_router`] with the declarative providers stored under
//!   [`app::PROVIDERS_KEY`].
//! - Secret references `secret:NAME` and `env:NAME` read the Spin variable named `NAME`
//!   lower-cased, with any character outside `[a-z0-9_]` turned into `_`
//!   (`secret:MOSAIC_TEST_ADMIN` → variable `mosaic_test_admin`). `file:` references cannot be
//!   resolved on Spin (no filesystem) and stay unset.

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::BTreeMap;

use std::time::Duration;

use mosaic_core::{config::SecretRef, tier::L1};
use mosaic_providers::app::{self, Fresh, Keeping, Outcome};
use spin_sdk::key_value::Store;

use crate::host::{get, SpinHost, L1_MAX_BYTES, STATE_KEY};

/// The Spin variable holding the config text.
pub const CONFIG_VAR: &str = "config";

/// The Spin variable a secret named `name` is read from.
#[must_use]
pub fn variable_name(name: &str) -> String {
    name.chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '_') => c,
            _ => '_',
        })
        .collect()
}

/// The store as the application's source of config texts.
struct Sources<'a>(&'a Store);

impl app::SourceKv for Sources<'_> {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        self.0.get(key).map_err(|e| format!("{e:?}"))
    }
    async fn put(&self, key: &str, value: &[u8]) -> Result<(), String> {
        self.0.set(key, value).map_err(|e| format!("{e:?}"))
    }
}

/// Opens this request's host: the config (the application's [`app::check`], a fresh
/// lifecycle per request; `reload` remembers an accepted text as good), the declarative
/// providers, the router, and the state restored from the store's snapshot (read once per
/// request).
///
/// # Errors
/// Every problem of the config source when there is no valid fallback either.
pub async fn open(store: Option<Store>, reload: bool) -> Result<SpinHost, Vec<String>> {
    let s = store.as_ref();
    let var = spin_sdk::variables::get(CONFIG_VAR).ok();
    let name = format!("the Spin variable `{CONFIG_VAR}`");
    let (lc, now) = (app::Lifecycle::default(), crate::host::wall_now());
    let sources = s.map(Sources);
    let c = app::check(
        lc,
        sources.as_ref(),
        var,
        &name,
        Keeping::PerRequest,
        now,
        Duration::ZERO,
        reload,
    );
    let c = c.await;
    c.lines.iter().for_each(crate::emit);
    let rejected = c.lifecycle.refused().map(<[String]>::to_vec);
    let fresh = match c.outcome {
        Outcome::Fresh(f) => *f,
        Outcome::Unchanged => return Err(vec![app::no_source(&name)]),
        Outcome::Refused(errors) | Outcome::Unconfigured(errors) => return Err(errors),
    };
    let Fresh { config, source, registry, .. } = fresh;
    let mut found: BTreeMap<SecretRef, String> = BTreeMap::new();
    for r in config.secret_refs() {
        if let SecretRef::Env(n) | SecretRef::Binding(n) = &r {
            if let Ok(v) = spin_sdk::variables::get(&variable_name(n)) {
                found.insert(r, v);
            }
        }
    }
    let router = app::build_router(config, &registry, |r| found.get(r).cloned());
    let stored = get(s, STATE_KEY);
    let seed = crate::random_u64(0x73_7461_7465);
    let (state, _, line) = app::restore_state(&router.config, stored.as_deref(), seed);
    line.iter().for_each(crate::emit);
    Ok(SpinHost {
        l1: RefCell::new(L1::new(router.config.server.cache_bytes.min(L1_MAX_BYTES))),
        collapse: RefCell::default(),
        saved: Cell::new(state.material),
        state: RefCell::new(state),
        store,
        router,
        source,
        rejected,
        registry,
        installed: OnceCell::new(),
        looked_up: RefCell::new(None),
    })
}
