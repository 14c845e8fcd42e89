//! When a host writes its state snapshot behind (the snapshot itself is core's
//! [`mosaic_core::snapshot`]): only after core counted a material change (a breaker opened, a
//! quota moved …), at most one write in flight, and — where the store limits writes per key,
//! as Workers KV does (about one per second) — no sooner than an interval after the last one.

use alloc::format;
use core::time::Duration;

use mosaic_core::config::Config;
use mosaic_core::engine::State;
use mosaic_core::snapshot;
use mosaic_core::time::Instant;
use serde_json::Value;

/// The key of the state snapshot in the host's store.
pub const STATE_KEY: &str = "mosaic:state";

/// A fresh state for `config` (seeded with `seed`), restored from `snapshot` when there is a
/// readable one; a snapshot that does not decode (garbage, another version, another config)
/// means starting fresh, with a warning line. Returns whether it was restored.
#[must_use]
pub fn restore_state(
    config: &Config,
    stored: Option<&[u8]>,
    seed: u64,
) -> (State, bool, Option<Value>) {
    let mut state = State::new(config, seed);
    let Some(bytes) = stored else {
        return (state, false, None);
    };
    match snapshot::decode_into(config, &mut state, bytes) {
        Ok(()) => (state, true, None),
        Err(e) => {
            let line = super::event(
                "warn",
                "mosaic::state",
                &format!("state snapshot ignored: {e}"),
            );
            (State::new(config, seed), false, Some(line))
        }
    }
}

/// The write-behind bookkeeping of one state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteBehind {
    saved: u64,
    pending: bool,
    saved_at: Option<Instant>,
    writes: u64,
}

impl WriteBehind {
    /// For a state whose `material` counter was just loaded or written.
    #[must_use]
    pub fn from_material(material: u64) -> WriteBehind {
        WriteBehind {
            saved: material,
            ..WriteBehind::default()
        }
    }

    /// Whether to write now that the state's counter is `material`: `Some(at)` (and the write
    /// is pending until [`WriteBehind::written`]) when it changed and no write is in flight;
    /// `at` is `now`, or `interval` after the last write when that is later.
    pub fn schedule(&mut self, material: u64, now: Instant, interval: Duration) -> Option<Instant> {
        if self.pending || material == self.saved {
            return None;
        }
        self.pending = true;
        Some(
            self.saved_at
                .map_or(now, |s| s.saturating_add(interval))
                .max(now),
        )
    }

    /// The write of the state at `material` ended (`ok`: it was stored).
    pub fn written(&mut self, material: u64, ok: bool, now: Instant) {
        self.pending = false;
        self.saved_at = Some(now);
        if ok {
            self.saved = material;
            self.writes += 1;
        }
    }

    /// The counter last written.
    #[must_use]
    pub fn saved_material(&self) -> u64 {
        self.saved
    }

    /// Whether a write is in flight.
    #[must_use]
    pub fn pending(&self) -> bool {
        self.pending
    }

    /// Writes that succeeded.
    #[must_use]
    pub fn writes(&self) -> u64 {
        self.writes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_restores_and_garbage_starts_fresh_with_a_warning() {
        let raw: mosaic_core::RawConfig =
            toml::from_str("[[providers]]\nid = \"p\"\nbase_url = \"https://p.example\"\n")
                .expect("toml");
        let config = raw.validate().expect("valid");
        let mut s = State::new(&config, 1);
        s.material = 7;
        let bytes = snapshot::encode(&config, &s);
        let (_, restored, line) = restore_state(&config, Some(&bytes), 2);
        assert!(restored && line.is_none());
        let (state, restored, line) = restore_state(&config, Some(b"garbage"), 2);
        assert!(!restored);
        assert!(line.is_some_and(|l| l["message"].as_str().is_some_and(|m| m.contains("ignored"))));
        assert_eq!(state.material, State::new(&config, 2).material);
        assert!(!restore_state(&config, None, 2).1);
    }

    fn t(ms: u64) -> Instant {
        Instant::from_micros(ms * 1000)
    }

    #[test]
    fn writes_follow_material_changes_one_at_a_time_and_spaced() {
        let i = Duration::from_secs(5);
        let mut w = WriteBehind::from_material(3);
        assert_eq!(w.schedule(3, t(0), i), None, "nothing changed");
        assert_eq!(w.schedule(4, t(0), i), Some(t(0)), "first write at once");
        assert_eq!(w.schedule(5, t(1), i), None, "one in flight");
        w.written(4, true, t(10));
        assert_eq!((w.saved_material(), w.writes(), w.pending()), (4, 1, false));
        assert_eq!(
            w.schedule(5, t(20), i),
            Some(t(5010)),
            "spaced by the interval"
        );
        w.written(5, false, t(5010));
        assert_eq!(w.saved_material(), 4, "a failed write is not saved");
        assert_eq!(w.schedule(5, t(20_000), i), Some(t(20_000)));
    }
}
