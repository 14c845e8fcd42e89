//! Where the configuration, the declared providers and the secrets come from on Workers, and
//! hot reload. What the text means, which source wins and how a router is built are the
//! application's ([`app::text::parse`], [`app::pick_source`], [`app::build_router`]); this
//! module reads the sources and keeps the result in the isolate.
//!
//! - The config text (TOML, the same file the local server reads) is the KV key
//!   [`app::CONFIG_KEY`] of the `MOSAIC_KV` namespace when it is set and not blank, else the
//!   `[vars]` value [`CONFIG_VAR`]. The declared providers are the KV key
//!   [`app::PROVIDERS_KEY`].
//! - An isolate checks both at most every `MOSAIC_CONFIG_REFRESH_S` seconds (default 10;
//!   `POST /_mosaic/reload` checks at once). Unchanged values cost two KV reads. A change
//!   rebuilds the router with the state carried over ([`app::reload_state`]); an invalid text
//!   logs one error line naming every key path and the old router keeps serving. Each text
//!   accepted from KV is kept as [`app::GOOD_KEY`]; a cold isolate whose source is invalid
//!   serves that one instead, so a bad write cannot take down isolates started after it.
//!   With no valid config at all the application answers [`app::unconfigured`].
//! - A cold isolate restores the state snapshot ([`STATE_KEY`]) once, when it first builds a
//!   router.
//! - Secret references `secret:NAME` and `env:NAME` read the Workers secret `NAME`
//!   (`wrangler secret put NAME`, `.dev.vars` locally), then a plain variable of that name.
//!   `file:` references cannot be resolved on Workers (no filesystem) and stay unset.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use mosaic_core::config::SecretRef;
use mosaic_core::tier::L1;
use mosaic_core::{Config, State};
use mosaic_providers::app::{self, Fresh, Keeping, Outcome, WriteBehind};
use mosaic_providers::declarative::Registry;
use worker::{Env, KvStore};

use crate::host::{kv_get, kv_put, now, random_u64, with_isolate, Live, L1_MAX_BYTES, STATE_KEY};
use crate::{log, warn};

/// The `[vars]` value holding the config text.
pub const CONFIG_VAR: &str = "MOSAIC_CONFIG";
/// The variable setting how often (seconds) an isolate re-reads its config source.
pub const REFRESH_VAR: &str = "MOSAIC_CONFIG_REFRESH_S";
/// Default re-read interval.
const DEFAULT_REFRESH: Duration = Duration::from_secs(10);

/// A secret binding or variable `name`, if set.
fn secret(env: &Env, r: &SecretRef) -> Option<String> {
    let (SecretRef::Env(name) | SecretRef::Binding(name)) = r else {
        return None;
    };
    let s = env.secret(name).map(|s| s.to_string());
    s.or_else(|_| env.var(name).map(|v| v.to_string())).ok()
}

async fn read(kv: Option<&KvStore>, key: &str) -> Option<Vec<u8>> {
    let r = kv_get(Some(kv?), key).await;
    r.map_err(|e| warn(&format!("cannot read `{key}`: {e}"))).ok().flatten()
}

/// The namespace as the application's source of config texts.
struct Sources<'a>(&'a KvStore);

impl app::SourceKv for Sources<'_> {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        kv_get(Some(self.0), key).await.map_err(|e| e.to_string())
    }
    async fn put(&self, key: &str, value: &[u8]) -> Result<(), String> {
        kv_put(Some(self.0), key, value, None).await.map_err(|e| e.to_string())
    }
}

/// The configuration to serve with: the isolate's, its sources looked at again by
/// [`app::check`] when the refresh interval has passed or `force` is set.
///
/// # Errors
/// Every problem of the config source when no valid configuration was ever loaded.
pub async fn current(
    env: &Env,
    kv: Option<&KvStore>,
    force: bool,
) -> Result<Rc<Live>, Vec<String>> {
    let interval = env.var(REFRESH_VAR).ok().and_then(|v| v.to_string().trim().parse().ok());
    let interval = interval.map_or(DEFAULT_REFRESH, Duration::from_secs);
    let (t, live) = (now(), with_isolate(|i| i.live.clone()));
    let due = with_isolate(|i| i.lifecycle.due(t, interval, force));
    if let Some(l) = live.as_ref().filter(|_| !due) {
        return Ok(Rc::clone(l));
    }
    let lifecycle = with_isolate(|i| i.lifecycle.clone());
    let variable = env.var(CONFIG_VAR).ok().map(|v| v.to_string());
    let (sources, name) = (kv.map(Sources), "the variable `MOSAIC_CONFIG`");
    let c =
        app::check(lifecycle, sources.as_ref(), variable, name, Keeping::Kept, t, interval, force);
    let c = c.await;
    c.lines.into_iter().for_each(log);
    with_isolate(|i| i.lifecycle = c.lifecycle);
    match (c.outcome, live) {
        (Outcome::Fresh(f), old) => Ok(build(env, kv, old.as_ref(), *f).await),
        (Outcome::Unchanged | Outcome::Refused(_), Some(l)) => Ok(l),
        (Outcome::Refused(errors) | Outcome::Unconfigured(errors), _) => Err(errors),
        (Outcome::Unchanged, None) => Err(vec![app::no_source("the variable `MOSAIC_CONFIG`")]),
    }
}

/// A fresh state for `config`, restored from the KV snapshot when there is a readable one.
async fn restore(config: &Config, kv: Option<&KvStore>) -> State {
    let stored = read(kv, STATE_KEY).await;
    let (state, restored, line) = app::restore_state(config, stored.as_deref(), random_u64());
    line.into_iter().for_each(log);
    with_isolate(|i| i.restored = restored);
    state
}

/// Builds the router of `fresh` and puts it in force; the state carried over from `old`, or
/// restored from KV when the isolate has none.
async fn build(env: &Env, kv: Option<&KvStore>, old: Option<&Rc<Live>>, fresh: Fresh) -> Rc<Live> {
    let Fresh { config, text, source, registry } = fresh;
    let router = app::build_router(config, &registry, |r| secret(env, r));
    router.warnings.iter().for_each(|w| warn(w));
    let (state, generation) = match old {
        Some(o) => {
            let state = app::reload_state(&o.router, &o.state.borrow(), &router, random_u64());
            (state, o.generation + 1)
        }
        None => (restore(&router.config, kv).await, 1),
    };
    let state = RefCell::new(state);
    let fresh = Rc::new(Live { router, state, registry, text, source, generation });
    with_isolate(|i| {
        // a concurrent request of this isolate may have built the same inputs meanwhile
        if let Some(other) = i
            .live
            .as_ref()
            .filter(|o| Some(o.generation) != old.map(|o| o.generation) && o.text == fresh.text)
        {
            return Rc::clone(other);
        }
        let cap = fresh.router.config.server.cache_bytes.min(L1_MAX_BYTES);
        i.l1.get_or_insert_with(|| L1::new(cap)).set_capacity(cap);
        if old.is_none() {
            i.writes = WriteBehind::from_material(fresh.state.borrow().material);
        }
        i.live = Some(Rc::clone(&fresh));
        fresh
    })
}

/// Puts `registry` (just stored under [`app::PROVIDERS_KEY`]) in force: the isolate's router
/// is rebuilt from its text so providers of a declared kind get its rate-limit headers.
pub async fn install_registry(env: &Env, kv: Option<&KvStore>, registry: Registry) {
    let Some(old) = with_isolate(|i| i.live.clone()) else {
        return;
    };
    let Ok(config) = app::text::parse(&old.text) else {
        return;
    };
    let (text, source) = (old.text.clone(), old.source);
    build(env, kv, Some(&old), Fresh { config, text, source, registry }).await;
}
