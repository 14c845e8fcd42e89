//! Where the configuration, the declarative providers and the secrets come from on Spin.
//!
//! - The config text (TOML, the same file the local server reads) is picked by
//!   [`app::pick_source`], the precedence of every host: the key-value key `mosaic:config`
//!   when set and not blank, else the Spin variable `config`.
//! - It is parsed and validated by [`app::text::parse`] on every request (a fresh instance
//!   each time). When it is invalid, the last configuration that `POST /_mosaic/reload`
//!   accepted ([`GOOD_KEY`]) keeps serving; with no such fallback the request is answered by
//!   [`app::unconfigured`].
//! - The router is [`app::build_router`] with the declarative providers stored under
//!   [`app::PROVIDERS_KEY`].
//! - Secret references `secret:NAME` and `env:NAME` read the Spin variable named `NAME`
//!   lower-cased, with any character outside `[a-z0-9_]` turned into `_`
//!   (`secret:MOSAIC_TEST_ADMIN` → variable `mosaic_test_admin`). `file:` references cannot be
//!   resolved on Spin (no filesystem) and stay unset.

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::BTreeMap;

use mosaic_core::{config::SecretRef, snapshot, tier::L1, State};
use mosaic_providers::app::{self, Source, CONFIG_KEY, GOOD_KEY};
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

fn text(store: Option<&Store>, key: &str) -> Option<String> {
    get(store, key).map(|v| String::from_utf8_lossy(&v).into_owned())
}

/// Opens this request's host: config, declarative providers, router, and the state restored
/// from the store's snapshot (read once per request).
///
/// # Errors
/// Every problem of the config source when there is no valid fallback either.
pub async fn open(store: Option<Store>) -> Result<SpinHost, Vec<String>> {
    let s = store.as_ref();
    let var = spin_sdk::variables::get(CONFIG_VAR).ok();
    let (text, source) = app::pick_source(text(s, CONFIG_KEY), var)
        .ok_or_else(|| vec![app::no_source(&format!("the Spin variable `{CONFIG_VAR}`"))])?;
    let (config, text, source, rejected) = match app::text::parse(&text) {
        Ok(c) => (c, text, source, None),
        Err(errors) => {
            let good = self::text(s, GOOD_KEY).ok_or_else(|| errors.clone())?;
            let c = app::text::parse(&good).map_err(|_| errors.clone())?;
            crate::warn(&format!(
                "the configuration source is invalid, serving the last accepted one: {}",
                errors.join("; ")
            ));
            (c, good, Source::Fallback, Some(errors))
        }
    };
    let (registry, line) = app::load_registry(get(s, app::PROVIDERS_KEY).as_deref());
    line.iter().for_each(crate::emit);
    let mut found: BTreeMap<SecretRef, String> = BTreeMap::new();
    for r in config.secret_refs() {
        if let SecretRef::Env(n) | SecretRef::Binding(n) = &r {
            if let Ok(v) = spin_sdk::variables::get(&variable_name(n)) {
                found.insert(r, v);
            }
        }
    }
    let router = app::build_router(config, &registry, |r| found.get(r).cloned());
    let mut state = State::new(&router.config, crate::random_u64(0x73_7461_7465));
    let snap = get(s, STATE_KEY);
    // a garbage or foreign snapshot means starting fresh
    if let Some(Err(e)) = snap.map(|b| snapshot::decode_into(&router.config, &mut state, &b)) {
        crate::warn(&format!("state snapshot ignored: {e}"));
    }
    Ok(SpinHost {
        l1: RefCell::new(L1::new(router.config.server.cache_bytes.min(L1_MAX_BYTES))),
        collapse: RefCell::default(),
        saved: Cell::new(state.material),
        state: RefCell::new(state),
        store,
        router,
        source,
        rejected,
        text,
        registry,
        installed: OnceCell::new(),
        looked_up: RefCell::new(None),
    })
}
