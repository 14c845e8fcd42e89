//! The declarative providers in force natively. `/v1`, `/v1/openapi.json` and
//! `GET|PUT /_mosaic/providers` are the shared application's (`mosaic_providers::app`).
//!
//! Declarative providers live in the store under [`PROVIDERS_KEY`] (JSON, see
//! `mosaic_providers::declarative`): read at start, re-read every [`POLL`] (so a declaration
//! written by another instance through Redis is picked up), and written by
//! `PUT /_mosaic/providers` (admin token). A bad declaration is logged with its key paths and
//! the set in force stays. A change re-installs the plugins' rate-limit headers into the
//! running router, carrying its state over.

use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use mosaic_core::snapshot;
use mosaic_providers::declarative::Registry;
use mosaic_providers::v1;

use crate::host::{Live, Shared};
use crate::store::Kv;

/// Store key of the declarative providers: the application's key in the process's namespace
/// (`NS` + `app::PROVIDERS_KEY`, checked by a test).
pub const PROVIDERS_KEY: &str = "mosaic:providers";
/// How often the store key is re-read.
pub const POLL: Duration = Duration::from_secs(5);

/// The plugins in force: built-ins plus the declarations last loaded. Process-wide, like the
/// store it mirrors; swapped whole so a request sees one consistent set.
fn slot() -> &'static RwLock<Arc<Registry>> {
    static REGISTRY: OnceLock<RwLock<Arc<Registry>>> = OnceLock::new();
    REGISTRY.get_or_init(|| RwLock::new(Arc::new(Registry::new())))
}

/// The plugins in force.
pub fn registry() -> Arc<Registry> {
    Arc::clone(
        &slot()
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    )
}

/// Puts `r` in force for routers built from now on.
pub(crate) fn install(r: Registry) {
    *slot()
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(r);
}

/// Validates `bytes` as declarations and puts them in force; on error the old set stays.
///
/// # Errors
/// Every problem as `key.path: message`.
fn load(bytes: &[u8]) -> Result<Vec<String>, Vec<String>> {
    let mut next = (*registry()).clone();
    match next.load_kv(bytes) {
        Ok(kinds) => {
            install(next);
            Ok(kinds)
        }
        Err(errs) => Err(errs.0.iter().map(ToString::to_string).collect()),
    }
}

/// Loads the declarations in the store, at start (before the router is built). Returns the
/// bytes read, so the poll loop only reloads on a change.
pub async fn load_from_store(store: &impl Kv) -> Option<Vec<u8>> {
    match store.get(PROVIDERS_KEY).await {
        Ok(Some(bytes)) => {
            match load(&bytes) {
                Ok(kinds) => tracing::info!(kinds = ?kinds, "declarative providers loaded"),
                Err(errors) => tracing::error!(
                    key = PROVIDERS_KEY,
                    errors = ?errors,
                    "declarative providers rejected; only the built-in ones are in force"
                ),
            }
            Some(bytes)
        }
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(error = %e, key = PROVIDERS_KEY, "declarative providers unreadable");
            None
        }
    }
}

/// Re-reads [`PROVIDERS_KEY`] every [`POLL`]; a changed, valid set replaces the one in force.
pub async fn poll(shared: Arc<Shared>, mut last: Option<Vec<u8>>) {
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let bytes = match shared.store.get(PROVIDERS_KEY).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, key = PROVIDERS_KEY, "declarative providers unreadable");
                continue;
            }
        };
        if bytes == last {
            continue;
        }
        match bytes.as_deref().map_or_else(|| load(b"[]"), load) {
            Ok(kinds) => {
                tracing::info!(kinds = ?kinds, "declarative providers reloaded");
                refresh_router(&shared).await;
            }
            Err(errors) => tracing::error!(
                key = PROVIDERS_KEY,
                errors = ?errors,
                "declarative providers rejected; the previous set stays in force"
            ),
        }
        last = bytes;
    }
}

/// Rebuilds the running router so configured providers of a newly declared kind get its
/// rate-limit headers; state carries over (as on reload).
pub(crate) async fn refresh_router(shared: &Shared) {
    let _serial = shared.reload_lock.lock().await;
    let old = shared.live();
    let router = crate::cli::router(old.router.config.clone());
    let mut seed = [0u8; 8];
    let _ = getrandom::fill(&mut seed);
    let state = {
        let s = old.state();
        snapshot::carry_over(
            &old.router.config,
            &s,
            &router.config,
            u64::from_le_bytes(seed),
        )
    };
    for w in v1::warnings(&router.config, &registry()) {
        tracing::warn!(warning = %w, "v1");
    }
    shared.swap(Live {
        router,
        state: Mutex::new(state),
        generation: old.generation + 1,
        registry: registry(),
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::NS;

    #[test]
    fn the_store_key_is_the_applications_in_our_namespace() {
        assert_eq!(
            PROVIDERS_KEY,
            format!("{NS}{}", mosaic_providers::app::PROVIDERS_KEY)
        );
    }
}
