//! Config once: the one build step every host uses, and the one source precedence.
//!
//! Where a host's config text comes from, first match wins, on every host:
//!
//! 1. the key-value key [`CONFIG_KEY`] (`mosaic:config`) when it is set and not blank — what
//!    an operator writes to change a running deployment without redeploying;
//! 2. the platform's own setting: the Workers variable `MOSAIC_CONFIG`, the Spin variable
//!    `config`, the native server's `--config` file;
//! 3. when the text found is invalid and nothing valid is serving yet: the last text this
//!    deployment accepted, [`GOOD_KEY`] (`mosaic:config:good`), so that a bad write cannot take
//!    down instances started after it.
//!
//! Natively the file is the source (the server has no KV namespace to look in before it has a
//! config); [`pick_source`] is what Workers and Spin call.

use alloc::string::String;

use mosaic_core::config::{Config, SecretRef};
use mosaic_core::engine::{Router, State};
use mosaic_core::snapshot;

use crate::declarative::Registry;

/// The KV key of the config text.
pub const CONFIG_KEY: &str = "mosaic:config";
/// The KV key of the last config text accepted.
pub const GOOD_KEY: &str = "mosaic:config:good";

/// Where a config text came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The KV key [`CONFIG_KEY`].
    Kv,
    /// The platform variable (or the native file).
    Variable,
    /// [`GOOD_KEY`], because the current source was refused.
    Fallback,
}

impl Source {
    /// The name shown in health, state and reload answers.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Source::Kv => "kv",
            Source::Variable => "variable",
            Source::Fallback => "fallback",
        }
    }
}

/// The config text to use, by the precedence above: `kv` first, then `variable`; blank texts
/// count as unset.
#[must_use]
pub fn pick_source(kv: Option<String>, variable: Option<String>) -> Option<(String, Source)> {
    let set = |t: &Option<String>| t.as_ref().is_some_and(|t| !t.trim().is_empty());
    if set(&kv) {
        kv.map(|t| (t, Source::Kv))
    } else if set(&variable) {
        variable.map(|t| (t, Source::Variable))
    } else {
        None
    }
}

/// The message when no source is set.
#[must_use]
pub fn no_source(variable: &str) -> String {
    alloc::format!(
        "no configuration: set the key-value key `{CONFIG_KEY}` or {variable} to the TOML config"
    )
}

/// Builds the router every host serves with: the provider plugins' rate-limit headers (of
/// built-in and declared kinds) installed, then the secrets resolved by the host.
#[must_use]
pub fn build_router(
    mut config: Config,
    registry: &Registry,
    resolve: impl Fn(&SecretRef) -> Option<String>,
) -> Router {
    registry.install_rate_limits(&mut config);
    Router::new(config, resolve)
}

/// The state a new router starts with after a reload: breakers, latency and metrics of the
/// old one carried over where the providers and routes still exist.
#[must_use]
pub fn reload_state(old: &Router, old_state: &State, new: &Router, seed: u64) -> State {
    snapshot::carry_over(&old.config, old_state, &new.config, seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_comes_before_the_variable_and_blank_is_unset() {
        let s = |t: &str| Some(String::from(t));
        assert_eq!(
            pick_source(s("a"), s("b")),
            Some((String::from("a"), Source::Kv))
        );
        assert_eq!(
            pick_source(s("  \n"), s("b")),
            Some((String::from("b"), Source::Variable))
        );
        assert_eq!(
            pick_source(None, s("b")),
            Some((String::from("b"), Source::Variable))
        );
        assert_eq!(pick_source(None, s(" ")), None);
        assert_eq!(pick_source(None, None), None);
    }

    #[test]
    fn built_routers_carry_plugin_rate_limits() {
        let toml_text = "[[providers]]\nid = \"gh\"\nkind = \"github\"\nbase_url = \"https://api.github.com\"\n";
        let raw: mosaic_core::RawConfig = toml::from_str(toml_text).expect("toml");
        let config = raw.validate().expect("valid");
        let before = config.providers[0].rate_limit.clone();
        let router = build_router(config, &Registry::new(), |_| None);
        assert_ne!(
            router.config.providers[0].rate_limit, before,
            "github's headers installed"
        );
    }
}
