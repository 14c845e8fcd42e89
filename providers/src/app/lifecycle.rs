//! The config lifecycle of an edge host, decided once (feature `text`): when to look at the
//! sources again, which text wins ([`pick_source`]), whether it changed, what to do with a
//! refused text (keep what serves; log the refusal once; fall back to [`GOOD_KEY`] when nothing
//! valid serves yet), when to remember an accepted text as good, and the declarations in force
//! ([`PROVIDERS_KEY`]). A host keeps a [`Lifecycle`] (an isolate on Workers; a fresh one per
//! request on Spin), calls [`check`] with its KV and its platform variable, and builds a router
//! from what [`Outcome::Fresh`] gives it (secrets and state are the host's).

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::future::Future;
use core::time::Duration;

use mosaic_core::time::Instant;
use mosaic_core::Config;
use serde_json::Value;

use super::{event, load_registry, no_source, pick_source, Source, GOOD_KEY, PROVIDERS_KEY};
use crate::declarative::Registry;

/// The KV a host reads its config sources from (and writes [`GOOD_KEY`] to).
pub trait SourceKv {
    /// Reads a value.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Vec<u8>>, String>>;
    /// Writes a value.
    fn put(&self, key: &str, value: &[u8]) -> impl Future<Output = Result<(), String>>;
}

/// What a host remembers between checks.
#[derive(Clone, Debug, Default)]
pub struct Lifecycle {
    /// The config text and declarations in force.
    serving: Option<(String, Option<Vec<u8>>)>,
    /// The text refused last, and why.
    refused: Option<(String, Vec<String>)>,
    /// When the sources were last read.
    checked_at: Option<Instant>,
}

impl Lifecycle {
    /// Why the source's current text was refused, while it is (a reload answers 400 with it).
    #[must_use]
    pub fn refused(&self) -> Option<&[String]> {
        self.refused.as_ref().map(|(_, e)| e.as_slice())
    }

    /// Whether the sources are due for a look: forced (a reload), never looked at, or last
    /// looked at `interval` ago.
    #[must_use]
    pub fn due(&self, now: Instant, interval: Duration, force: bool) -> bool {
        force
            || self.serving.is_none()
            || self
                .checked_at
                .is_none_or(|c| now.saturating_since(c) >= interval)
    }
}

/// A configuration to build a router from.
#[derive(Clone, Debug)]
pub struct Fresh {
    /// The validated configuration.
    pub config: Config,
    /// Its text.
    pub text: String,
    /// Where it came from.
    pub source: Source,
    /// The plugins in force (built-ins and the stored declarations).
    pub registry: Registry,
}

/// What a check found.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// Nothing changed (or nothing is set but something valid serves): keep serving.
    Unchanged,
    /// Build a router from this and serve it.
    Fresh(Box<Fresh>),
    /// The source's text was refused; what serves stays. The errors, each at its key path.
    Refused(Vec<String>),
    /// Nothing valid at all: answer with [`super::unconfigured`].
    Unconfigured(Vec<String>),
}

/// How the host keeps its [`Lifecycle`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keeping {
    /// Between requests (a Workers isolate): an accepted KV text is remembered as good when it
    /// changes.
    Kept,
    /// A fresh one per request (Spin): an accepted text is remembered only on reload, so that
    /// a request costs no extra KV write.
    PerRequest,
}

fn utf8(b: Option<Vec<u8>>) -> Option<String> {
    b.map(|b| String::from_utf8_lossy(&b).into_owned())
}

async fn read<K: SourceKv>(kv: Option<&K>, key: &str, lines: &mut Vec<Value>) -> Option<Vec<u8>> {
    match kv?.get(key).await {
        Ok(v) => v,
        Err(e) => {
            lines.push(event(
                "warn",
                "mosaic::config",
                &format!("cannot read `{key}`: {e}"),
            ));
            None
        }
    }
}

/// An error line (target `mosaic::config`) naming every key path in `errors`.
#[must_use]
pub fn errors_line(message: &str, errors: &[String]) -> Value {
    let mut line = event("error", "mosaic::config", message);
    line["errors"] = Value::from(errors.to_vec());
    line
}

/// The result of [`check`]: the lifecycle to keep, the outcome, the log lines to write.
pub struct Checked {
    /// Keep this.
    pub lifecycle: Lifecycle,
    /// What to do.
    pub outcome: Outcome,
    /// Lines to write.
    pub lines: Vec<Value>,
}

/// Looks at the sources when due (see [`Lifecycle::due`]): the KV key [`super::CONFIG_KEY`],
/// then `variable` (the platform's, named `variable_name` in messages), and the declarations.
/// `serving` says whether the host has a router in force. Takes the lifecycle by value and
/// hands back the one to keep, so a host can keep it where no borrow may span an await.
#[allow(clippy::too_many_arguments)]
pub async fn check<K: SourceKv>(
    mut lc: Lifecycle,
    kv: Option<&K>,
    variable: Option<String>,
    variable_name: &str,
    keeping: Keeping,
    now: Instant,
    interval: Duration,
    force: bool,
) -> Checked {
    let mut lines = Vec::new();
    if !lc.due(now, interval, force) {
        return Checked {
            lifecycle: lc,
            outcome: Outcome::Unchanged,
            lines,
        };
    }
    let kv_text = utf8(read(kv, super::CONFIG_KEY, &mut lines).await);
    let providers = read(kv, PROVIDERS_KEY, &mut lines).await;
    lc.checked_at = Some(now);
    let Some((text, source)) = pick_source(kv_text, variable) else {
        let outcome = if lc.serving.is_some() {
            Outcome::Unchanged
        } else {
            Outcome::Unconfigured(alloc::vec![no_source(variable_name)])
        };
        return Checked {
            lifecycle: lc,
            outcome,
            lines,
        };
    };
    if lc
        .serving
        .as_ref()
        .is_some_and(|(t, p)| *t == text && *p == providers)
    {
        lc.refused = None;
        return Checked {
            lifecycle: lc,
            outcome: Outcome::Unchanged,
            lines,
        };
    }
    let (config, text, source) = match super::text::parse(&text) {
        Ok(c) => {
            let remember = match keeping {
                Keeping::Kept => source == Source::Kv,
                Keeping::PerRequest => force,
            };
            if remember {
                remember_good(kv, &text, &mut lines).await;
            }
            lc.refused = None;
            (c, text, source)
        }
        Err(errors) => {
            if lc.refused.as_ref().is_none_or(|(t, _)| *t != text) {
                let what = format!("the configuration from {} is invalid", source.name());
                lines.push(errors_line(&format!("{what}; the old one stays"), &errors));
            }
            lc.refused = Some((text, errors.clone()));
            if lc.serving.is_some() {
                return Checked {
                    lifecycle: lc,
                    outcome: Outcome::Refused(errors),
                    lines,
                };
            }
            let good = utf8(read(kv, GOOD_KEY, &mut lines).await);
            let Some((c, good)) = good.and_then(|t| Some((super::text::parse(&t).ok()?, t))) else {
                return Checked {
                    lifecycle: lc,
                    outcome: Outcome::Unconfigured(errors),
                    lines,
                };
            };
            lines.push(event(
                "warn",
                "mosaic::config",
                &format!("serving the last accepted configuration (`{GOOD_KEY}`)"),
            ));
            (c, good, Source::Fallback)
        }
    };
    let (registry, line) = load_registry(providers.as_deref());
    lines.extend(line);
    lc.serving = Some((text.clone(), providers));
    Checked {
        lifecycle: lc,
        outcome: Outcome::Fresh(Box::new(Fresh {
            config,
            text,
            source,
            registry,
        })),
        lines,
    }
}

/// Keeps `text` as the last accepted config (only when it differs from what is kept).
async fn remember_good<K: SourceKv>(kv: Option<&K>, text: &str, lines: &mut Vec<Value>) {
    let Some(store) = kv else { return };
    if read(kv, GOOD_KEY, lines).await.as_deref() == Some(text.as_bytes()) {
        return;
    }
    if let Err(e) = store.put(GOOD_KEY, text.as_bytes()).await {
        lines.push(event(
            "warn",
            "mosaic::config",
            &format!("cannot keep the accepted config as `{GOOD_KEY}`: {e}"),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;
    use core::cell::RefCell;
    use mosaic_core::sim::block_on;

    #[derive(Default)]
    struct Kv(RefCell<BTreeMap<String, Vec<u8>>>, RefCell<u32>);

    impl SourceKv for Kv {
        async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
            *self.1.borrow_mut() += 1;
            Ok(self.0.borrow().get(key).cloned())
        }
        async fn put(&self, key: &str, value: &[u8]) -> Result<(), String> {
            self.0.borrow_mut().insert(key.into(), value.to_vec());
            Ok(())
        }
    }

    const GOOD: &str = "[server]\nmax_body_bytes = 10\n";
    const BAD: &str = "[server]\nlistenn = 1\n";
    const S: Duration = Duration::from_secs(10);

    fn t(s: u64) -> Instant {
        Instant::from_micros(s * 1_000_000)
    }

    fn run(
        lc: Lifecycle,
        kv: &Kv,
        var: Option<&str>,
        keeping: Keeping,
        now: Instant,
        force: bool,
    ) -> Checked {
        block_on(check(
            lc,
            Some(kv),
            var.map(String::from),
            "`V`",
            keeping,
            now,
            S,
            force,
        ))
    }

    #[test]
    fn a_kept_lifecycle_reads_when_due_and_builds_only_on_change() {
        let kv = Kv::default();
        let c = run(
            Lifecycle::default(),
            &kv,
            Some(GOOD),
            Keeping::Kept,
            t(0),
            false,
        );
        assert!(matches!(&c.outcome, Outcome::Fresh(f) if f.source == Source::Variable));
        let reads = *kv.1.borrow();
        let c = run(c.lifecycle, &kv, Some(GOOD), Keeping::Kept, t(5), false);
        assert!(matches!(c.outcome, Outcome::Unchanged));
        assert_eq!(*kv.1.borrow(), reads, "not due: no read");
        let c = run(c.lifecycle, &kv, Some(GOOD), Keeping::Kept, t(10), false);
        assert!(matches!(c.outcome, Outcome::Unchanged), "due, unchanged");
        // KV wins over the variable, and is remembered as good
        kv.0.borrow_mut().insert(
            crate::app::CONFIG_KEY.into(),
            b"[server]\nmax_body_bytes = 20\n".to_vec(),
        );
        let c = run(c.lifecycle, &kv, Some(GOOD), Keeping::Kept, t(20), false);
        assert!(
            matches!(&c.outcome, Outcome::Fresh(f) if f.source == Source::Kv && f.config.server.max_body_bytes == 20)
        );
        assert!(kv.0.borrow().contains_key(GOOD_KEY));
        // a bad write: refused once (one line), the old one stays
        kv.0.borrow_mut()
            .insert(crate::app::CONFIG_KEY.into(), BAD.as_bytes().to_vec());
        let c = run(c.lifecycle, &kv, Some(GOOD), Keeping::Kept, t(30), true);
        assert!(matches!(&c.outcome, Outcome::Refused(e) if e[0].starts_with("server.listenn")));
        assert_eq!(c.lines.len(), 1);
        assert!(c.lifecycle.refused().is_some());
        let c = run(c.lifecycle, &kv, Some(GOOD), Keeping::Kept, t(40), true);
        assert!(c.lines.is_empty(), "the same refusal is logged once");
        // a cold start on the bad text serves the good one
        let c = run(
            Lifecycle::default(),
            &kv,
            Some(GOOD),
            Keeping::Kept,
            t(50),
            false,
        );
        assert!(
            matches!(&c.outcome, Outcome::Fresh(f) if f.source == Source::Fallback && f.config.server.max_body_bytes == 20)
        );
    }

    #[test]
    fn nothing_valid_is_unconfigured_and_per_request_writes_only_on_reload() {
        let kv = Kv::default();
        let c = run(
            Lifecycle::default(),
            &kv,
            None,
            Keeping::PerRequest,
            t(0),
            false,
        );
        assert!(matches!(&c.outcome, Outcome::Unconfigured(e) if e[0].contains("`V`")));
        let c = run(
            Lifecycle::default(),
            &kv,
            Some(BAD),
            Keeping::PerRequest,
            t(0),
            false,
        );
        assert!(
            matches!(&c.outcome, Outcome::Unconfigured(e) if e[0].starts_with("server.listenn"))
        );
        kv.0.borrow_mut()
            .insert(crate::app::CONFIG_KEY.into(), GOOD.as_bytes().to_vec());
        let _ = run(
            Lifecycle::default(),
            &kv,
            None,
            Keeping::PerRequest,
            t(0),
            false,
        );
        assert!(
            !kv.0.borrow().contains_key(GOOD_KEY),
            "a request writes nothing"
        );
        let _ = run(
            Lifecycle::default(),
            &kv,
            None,
            Keeping::PerRequest,
            t(0),
            true,
        );
        assert!(
            kv.0.borrow().contains_key(GOOD_KEY),
            "a reload remembers it"
        );
    }
}
