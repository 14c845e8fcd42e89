//! Where the configuration and the secrets come from on Spin.
//!
//! - The config text (TOML, the same file the local server reads) is the Spin variable
//!   `config` when it is set and not empty, else the key-value key `mosaic:config`.
//! - It is parsed and validated by core on every request (a fresh instance each time). When
//!   it is invalid, the last configuration that `POST /_mosaic/reload` accepted (key
//!   `mosaic:config:good`) keeps serving, as the local server keeps its old config; with no
//!   such fallback every request answers `500 invalid-config` naming each key path.
//! - Secret references `secret:NAME` and `env:NAME` read the Spin variable named `NAME`
//!   lower-cased, with any character outside `[a-z0-9_]` turned into `_`
//!   (`secret:MOSAIC_TEST_ADMIN` → variable `mosaic_test_admin`). `file:` references cannot be
//!   resolved on Spin (no filesystem) and stay unset.

use std::collections::BTreeMap;
use std::rc::Rc;

use mosaic_core::config::SecretRef;
use mosaic_core::{Config, RawConfig, Router};
use spin_sdk::key_value::Store;

/// The Spin variable holding the config text.
pub const CONFIG_VAR: &str = "config";
/// The KV key holding the config text when the variable is not set.
pub const CONFIG_KEY: &str = "mosaic:config";
/// The KV key of the last config `POST /_mosaic/reload` accepted.
pub const GOOD_KEY: &str = "mosaic:config:good";

/// A configuration ready to serve.
pub struct Loaded {
    /// The router, secrets resolved (shared with work that runs after the response).
    pub router: Rc<Router>,
    /// The text it was built from.
    pub text: String,
    /// `variable`, `kv` or `fallback`.
    pub source: &'static str,
    /// When serving the fallback: why the current source was rejected.
    pub rejected: Option<Vec<String>>,
}

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
                    let before = text.as_bytes().get(..s.start).unwrap_or(text.as_bytes());
                    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
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

async fn text_from_store(store: Option<&Store>, key: &str) -> Option<String> {
    match store?.get(key).await {
        Ok(Some(v)) => Some(String::from_utf8_lossy(&v).into_owned()),
        Ok(None) => None,
        Err(e) => {
            crate::warn(&format!("cannot read `{key}`: {e:?}"));
            None
        }
    }
}

/// Builds the router, reading every secret the config references from Spin variables.
pub async fn router(config: Config) -> Router {
    let mut found: BTreeMap<SecretRef, String> = BTreeMap::new();
    for r in config.secret_refs() {
        let name = match &r {
            SecretRef::Env(n) | SecretRef::Binding(n) => variable_name(n),
            SecretRef::File(_) => continue,
        };
        if let Ok(v) = spin_sdk::variables::get(&name).await {
            found.insert(r, v);
        }
    }
    Router::new(config, |r| found.get(r).cloned())
}

/// Loads the configuration to serve this request with.
///
/// # Errors
/// Every problem of the config source when there is no valid fallback either.
pub async fn load(store: Option<&Store>) -> Result<Loaded, Vec<String>> {
    let from_var = spin_sdk::variables::get(CONFIG_VAR)
        .await
        .ok()
        .filter(|t| !t.trim().is_empty());
    let (text, source) = match from_var {
        Some(t) => (t, "variable"),
        None => match text_from_store(store, CONFIG_KEY).await {
            Some(t) => (t, "kv"),
            None => {
                return Err(vec![format!(
                    "no configuration: set the Spin variable `{CONFIG_VAR}` or the key-value key `{CONFIG_KEY}` to the TOML config"
                )])
            }
        },
    };
    match parse(&text) {
        Ok(config) => Ok(Loaded {
            router: Rc::new(router(config).await),
            text,
            source,
            rejected: None,
        }),
        Err(errors) => {
            let good = text_from_store(store, GOOD_KEY).await;
            match good.as_deref().map(parse) {
                Some(Ok(config)) => Ok(Loaded {
                    router: Rc::new(router(config).await),
                    text: good.unwrap_or_default(),
                    source: "fallback",
                    rejected: Some(errors),
                }),
                _ => Err(errors),
            }
        }
    }
}
