//! Where the configuration and the secrets come from on Workers, and hot reload.
//!
//! - The config text (TOML, the same file the local server reads) is the KV key `mosaic:config`
//!   of the `MOSAIC_KV` namespace when it is set and not empty, else the `[vars]` value
//!   `MOSAIC_CONFIG`.
//! - An isolate checks its source at most every `MOSAIC_CONFIG_REFRESH_S` seconds (default
//!   10; `POST /_mosaic/reload` checks at once). Unchanged text costs one KV read. New text is
//!   parsed and validated by core; when it is valid the router is rebuilt and the state carried
//!   over ([`snapshot::carry_over`]); when it is invalid an error line names every key path and
//!   the old router keeps serving. With no valid config at all every request answers
//!   `500 invalid-config`. Each text accepted from KV is also kept as `mosaic:config:good`; a
//!   cold isolate whose source is invalid serves that one instead (as an old isolate keeps its
//!   old config), so a bad write to `mosaic:config` cannot take down isolates started after it.
//! - A cold isolate restores the state snapshot (`mosaic:state`) once, when it first builds a
//!   router.
//! - Secret references `secret:NAME` and `env:NAME` read the Workers secret `NAME`
//!   (`wrangler secret put NAME`, `.dev.vars` locally), then a plain variable of that name.
//!   `file:` references cannot be resolved on Workers (no filesystem) and stay unset.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use mosaic_core::config::SecretRef;
use mosaic_core::{snapshot, Config, RawConfig, Router, State};
use worker::{Env, KvStore};

use crate::host::{now, random_u64, with_isolate, Live, STATE_KEY};

/// The `[vars]` value holding the config text.
pub const CONFIG_VAR: &str = "MOSAIC_CONFIG";
/// The KV key holding the config text (takes precedence over the variable).
pub const CONFIG_KEY: &str = "mosaic:config";
/// The KV key of the last config text this host accepted from KV: a cold isolate whose source
/// is invalid serves it instead of failing every request.
pub const GOOD_KEY: &str = "mosaic:config:good";
/// The variable setting how often (seconds) an isolate re-reads its config source.
pub const REFRESH_VAR: &str = "MOSAIC_CONFIG_REFRESH_S";
/// Default re-read interval.
const DEFAULT_REFRESH: Duration = Duration::from_secs(10);

/// Parses and validates config text; every problem as `key.path: message`.
///
/// # Errors
/// Each problem, one per entry.
pub fn parse(text: &str) -> Result<Config, Vec<String>> {
    let raw: RawConfig =
        serde_path_to_error::deserialize(toml::Deserializer::new(text)).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            let at = inner
                .span()
                .map(|s| {
                    let line = text
                        .get(..s.start.min(text.len()))
                        .map_or(0, |t| t.matches('\n').count())
                        + 1;
                    format!(" (line {line})")
                })
                .unwrap_or_default();
            let key = if key == "." {
                String::new()
            } else {
                format!("{key}: ")
            };
            vec![format!("{key}{}{at}", inner.message())]
        })?;
    raw.validate()
        .map_err(|errs| errs.0.iter().map(ToString::to_string).collect())
}

/// A secret binding or variable `name`, if set.
fn lookup(env: &Env, name: &str) -> Option<String> {
    env.secret(name)
        .map(|s| s.to_string())
        .or_else(|_| env.var(name).map(|v| v.to_string()))
        .ok()
}

/// Builds the router, resolving every secret the config references from the environment.
#[must_use]
pub fn router(config: Config, env: &Env) -> Router {
    let mut found: BTreeMap<SecretRef, String> = BTreeMap::new();
    for r in config.secret_refs() {
        if let SecretRef::Env(n) | SecretRef::Binding(n) = &r {
            if let Some(v) = lookup(env, n) {
                found.insert(r, v);
            }
        }
    }
    Router::new(config, |r| found.get(r).cloned())
}

fn refresh_interval(env: &Env) -> Duration {
    env.var(REFRESH_VAR)
        .ok()
        .and_then(|v| v.to_string().trim().parse::<u64>().ok())
        .map_or(DEFAULT_REFRESH, Duration::from_secs)
}

/// Where the config text came from.
async fn source_text(env: &Env, kv: Option<&KvStore>) -> Option<(String, &'static str)> {
    if let Some(kv) = kv {
        match kv.get(CONFIG_KEY).text().await {
            Ok(Some(t)) if !t.trim().is_empty() => return Some((t, "kv")),
            Ok(_) => {}
            Err(e) => crate::log_event("warn", &format!("cannot read `{CONFIG_KEY}`: {e}")),
        }
    }
    env.var(CONFIG_VAR)
        .ok()
        .map(|v| v.to_string())
        .filter(|t| !t.trim().is_empty())
        .map(|t| (t, "vars"))
}

/// Keeps `text` as the last accepted config (only when it differs from what is kept).
async fn remember_good(kv: Option<&KvStore>, text: &str) {
    let Some(kv) = kv else { return };
    if let Ok(Some(kept)) = kv.get(GOOD_KEY).text().await {
        if kept == text {
            return;
        }
    }
    let r = match kv.put(GOOD_KEY, text) {
        Ok(p) => p.execute().await,
        Err(e) => Err(e),
    };
    if let Err(e) = r {
        crate::log_event(
            "warn",
            &format!("cannot keep the accepted config as `{GOOD_KEY}`: {e}"),
        );
    }
}

/// The last accepted config, when there is a valid one.
async fn last_good(kv: Option<&KvStore>) -> Option<(Config, String)> {
    let text = kv?.get(GOOD_KEY).text().await.ok()??;
    let config = parse(&text).ok()?;
    crate::log_event(
        "warn",
        &format!("serving the last accepted configuration (`{GOOD_KEY}`)"),
    );
    Some((config, text))
}

/// A fresh state for `config`, restored from the KV snapshot when there is a readable one.
async fn restore(config: &Config, kv: Option<&KvStore>) -> State {
    let mut state = State::new(config, random_u64());
    let Some(kv) = kv else { return state };
    match kv.get(STATE_KEY).bytes().await {
        Ok(Some(bytes)) => {
            if let Err(e) = snapshot::decode_into(config, &mut state, &bytes) {
                crate::log_event("warn", &format!("state snapshot ignored: {e}"));
            } else {
                with_isolate(|i| i.restored = true);
            }
        }
        Ok(None) => {}
        Err(e) => crate::log_event("warn", &format!("state snapshot unreadable: {e}")),
    }
    state
}

/// The configuration to serve with: the isolate's, re-read from its source when the refresh
/// interval has passed or `force` is set.
///
/// # Errors
/// Every problem of the config source when no valid configuration was ever loaded.
pub async fn current(
    env: &Env,
    kv: Option<&KvStore>,
    force: bool,
) -> Result<Rc<Live>, Vec<String>> {
    let t = now();
    let interval = refresh_interval(env);
    let (live, due) = with_isolate(|i| {
        let due = force
            || i.live.is_none()
            || i.checked_at
                .is_none_or(|c| t.saturating_since(c) >= interval);
        (i.live.clone(), due)
    });
    if !due {
        if let Some(l) = live {
            return Ok(l);
        }
    }
    let started_generation = live.as_ref().map(|l| l.generation);
    let Some((text, source)) = source_text(env, kv).await else {
        with_isolate(|i| i.checked_at = Some(now()));
        return live.ok_or_else(|| {
            vec![format!(
                "no configuration: set the KV key `{CONFIG_KEY}` or the variable `{CONFIG_VAR}` to the TOML config"
            )]
        });
    };
    with_isolate(|i| i.checked_at = Some(now()));
    if let Some(l) = &live {
        if l.text == text {
            with_isolate(|i| i.rejected = None);
            return Ok(Rc::clone(l));
        }
    }
    let repeated = with_isolate(|i| i.rejected.as_ref().is_some_and(|(t, _)| *t == text));
    let (config, text, source) = match parse(&text) {
        Ok(c) => {
            if source == "kv" {
                remember_good(kv, &text).await;
            }
            (c, text, source)
        }
        Err(errors) => {
            if !repeated {
                crate::log_errors(
                    &format!("the configuration from {source} is invalid; the old one stays"),
                    &errors,
                );
            }
            with_isolate(|i| i.rejected = Some((text, errors.clone())));
            if let Some(l) = live {
                return Ok(l);
            }
            match last_good(kv).await {
                Some((c, good)) => (c, good, "fallback"),
                None => return Err(errors),
            }
        }
    };
    let router = router(config, env);
    for w in &router.warnings {
        crate::log_event("warn", w);
    }
    let (state, generation) = match &live {
        Some(old) => (
            snapshot::carry_over(
                &old.router.config,
                &old.state.borrow(),
                &router.config,
                random_u64(),
            ),
            old.generation + 1,
        ),
        None => (restore(&router.config, kv).await, 1),
    };
    let cache_bytes = router.config.server.cache_bytes;
    let fresh = Rc::new(Live {
        material_at_load: state.material,
        router,
        state: RefCell::new(state),
        text,
        source,
        generation,
    });
    Ok(with_isolate(|i| {
        // a concurrent request of this isolate may have loaded the same text meanwhile
        if let Some(other) = &i.live {
            if Some(other.generation) != started_generation && other.text == fresh.text {
                return Rc::clone(other);
            }
        }
        if source != "fallback" {
            i.rejected = None;
        }
        i.l1.set_capacity(cache_bytes);
        if live.is_none() {
            i.saved_material = fresh.material_at_load;
        }
        i.live = Some(Rc::clone(&fresh));
        fresh
    }))
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn parse_names_key_paths_and_lines() {
        let errs = parse("[server]\nlistenn = 1\n").err().unwrap_or_default();
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0].starts_with("server.listenn: unknown field"),
            "{errs:?}"
        );
        let errs =
            parse("[[routes]]\nname = \"r\"\nmatch = { path = \"/x\" }\nproviders = [\"ghost\"]\n")
                .err()
                .unwrap_or_default();
        assert!(
            errs.iter().any(|e| e.contains("routes[0].providers[0]")),
            "{errs:?}"
        );
        assert!(parse("not toml = = 1").is_err());
        assert!(parse("").is_ok(), "an empty config is valid (no routes)");
    }
}
