//! The cache tiers' policy, the same on every host: the in-memory tier (L1), how long it keeps
//! what it read from the shared tier, which entries end a lookup, the shared tier's key for a
//! cache key, and miss collapsing.
//!
//! - [`L1`]: least recently used entries bounded in bytes (keys, values and a fixed overhead
//!   per entry), each kept until a deadline that the caller passes with `now`. Generic over the
//!   value (`Vec<u8>` on the edge hosts, a reference-counted buffer natively).
//! - [`retention`]: how long an entry read from L2 (KV) stays in L1 — as long as core could
//!   still serve it (fresh, stale-while-revalidate or stale-if-error).
//! - [`servable`]: whether an entry answers without going upstream (fresh or
//!   stale-while-revalidate): a lookup that finds one stops; any other entry lets the request
//!   lead (or join) the fetch.
//! - [`store_key`]: the key of a cache entry in the shared tier: `mosaic:cache:` + the key, or
//!   its SHA-256 when the key is longer than [`MAX_PLAIN_KEY`] (every KV platform limits key
//!   length; Workers KV to 512 bytes).
//! - [`Collapse`]: concurrent misses of one key wait for the first request's fetch (nginx's
//!   `proxy_cache_lock`): the table of keys in flight; the host only waits (a channel natively,
//!   a short sleep between looks where the platform has no channel).
//!
//! Deterministic: no clock is read; `now` is always an argument.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use core::time::Duration;

use sha2::{Digest, Sha256};

use crate::cache::{Entry, Freshness};
use crate::time::Instant;

/// Fixed per-entry overhead counted against the bound (map nodes, key copy, bookkeeping).
pub const ENTRY_OVERHEAD: u64 = 96;
/// Longest cache key kept as it is in a shared-tier key; longer keys are hashed.
pub const MAX_PLAIN_KEY: usize = 200;
/// Prefix of cache entries in the shared tier.
pub const CACHE_PREFIX: &str = "mosaic:cache:";
/// Longest a collapsed miss waits for the leader before fetching on its own.
pub const COLLAPSE_WAIT: Duration = Duration::from_secs(30);

struct Slot<V> {
    value: V,
    expires: Instant,
    stamp: u64,
}

/// An LRU cache bounded by the bytes its keys and values take.
pub struct L1<V> {
    map: BTreeMap<String, Slot<V>>,
    /// Use stamp → key, oldest first.
    order: BTreeMap<u64, String>,
    next: u64,
    bytes: u64,
    capacity: u64,
}

fn cost(key: &str, value: &[u8]) -> u64 {
    key.len() as u64 + value.len() as u64 + ENTRY_OVERHEAD
}

impl<V: AsRef<[u8]> + Clone> L1<V> {
    /// An empty cache holding at most `capacity` bytes.
    #[must_use]
    pub fn new(capacity: u64) -> L1<V> {
        L1 {
            map: BTreeMap::new(),
            order: BTreeMap::new(),
            next: 0,
            bytes: 0,
            capacity,
        }
    }

    /// Changes the bound, evicting least recently used entries to fit.
    pub fn set_capacity(&mut self, capacity: u64) {
        self.capacity = capacity;
        while self.bytes > self.capacity && self.evict_oldest() {}
    }

    fn stamp(&mut self) -> u64 {
        self.next = self.next.wrapping_add(1);
        self.next
    }

    fn remove(&mut self, key: &str) -> Option<Slot<V>> {
        let s = self.map.remove(key)?;
        self.order.remove(&s.stamp);
        self.bytes = self.bytes.saturating_sub(cost(key, s.value.as_ref()));
        Some(s)
    }

    fn evict_oldest(&mut self) -> bool {
        let Some((_, key)) = self.order.pop_first() else {
            return false;
        };
        if let Some(s) = self.map.remove(&key) {
            self.bytes = self.bytes.saturating_sub(cost(&key, s.value.as_ref()));
        }
        true
    }

    /// The value under `key` unless it expired by `now` (an expired entry is dropped); a hit
    /// makes it the most recently used.
    pub fn get(&mut self, key: &str, now: Instant) -> Option<V> {
        let expired = self.map.get(key)?.expires <= now;
        if expired {
            self.remove(key);
            return None;
        }
        let stamp = self.stamp();
        let slot = self.map.get_mut(key)?;
        let old = core::mem::replace(&mut slot.stamp, stamp);
        let value = slot.value.clone();
        if let Some(k) = self.order.remove(&old) {
            self.order.insert(stamp, k);
        }
        Some(value)
    }

    /// Stores `value` under `key` until `now + keep`, evicting least recently used entries to
    /// stay within the bound. A value larger than the whole bound, or kept for no time, is
    /// not stored (and replaces nothing but an older value of the same key).
    pub fn put(&mut self, key: &str, value: V, keep: Duration, now: Instant) {
        self.remove(key);
        let c = cost(key, value.as_ref());
        if c > self.capacity || keep.is_zero() {
            return;
        }
        while self.bytes + c > self.capacity && self.evict_oldest() {}
        let stamp = self.stamp();
        self.bytes += c;
        self.order.insert(stamp, String::from(key));
        self.map.insert(
            String::from(key),
            Slot {
                value,
                expires: now.saturating_add(keep),
                stamp,
            },
        );
    }

    /// (entries, bytes, capacity).
    #[must_use]
    pub fn stats(&self) -> (u64, u64, u64) {
        (self.map.len() as u64, self.bytes, self.capacity)
    }
}

/// How long L1 keeps an entry it read from the shared tier: until core could no longer serve
/// it at all (stale-if-error included); zero for bytes that are not an entry.
#[must_use]
pub fn retention(bytes: &[u8], now: Instant) -> Duration {
    Entry::decode(bytes).map_or(Duration::ZERO, |e| {
        e.swr_until.max(e.sie_until).saturating_since(now)
    })
}

/// Whether core would answer with this entry without going upstream.
#[must_use]
pub fn servable(bytes: &[u8], now: Instant) -> bool {
    Entry::decode(bytes).is_ok_and(|e| {
        matches!(
            e.freshness(now),
            Freshness::Fresh | Freshness::StaleWhileRevalidate
        )
    })
}

/// The shared tier's key of cache key `key` (see the module docs).
#[must_use]
pub fn store_key(key: &str) -> String {
    if key.len() <= MAX_PLAIN_KEY {
        format!("{CACHE_PREFIX}{key}")
    } else {
        let d = Sha256::digest(key.as_bytes());
        format!("{CACHE_PREFIX}sha256:{}", hex::encode(d))
    }
}

/// The lookup behind a host's `cache_get`, the same on every host: the first tier's entry
/// (`lookup`: L1, then the shared tiers) ends it when core would serve it ([`servable`]);
/// otherwise the request leads the fetch of `key` (`join` says [`Turn::Lead`]; the host
/// releases it in `cache_release`) or waits — looking at `in_flight` between `pause`s, until
/// the leader is done or its time is up — and looks once more. Returns the entry found and
/// whether this request leads.
pub async fn collapsed_get<L, P>(
    now: impl Fn() -> Instant,
    mut lookup: impl FnMut() -> L,
    join: impl FnOnce(Instant) -> Turn,
    in_flight: impl Fn(Instant) -> bool,
    mut pause: impl FnMut() -> P,
) -> (Option<alloc::vec::Vec<u8>>, bool)
where
    L: core::future::Future<Output = Option<alloc::vec::Vec<u8>>>,
    P: core::future::Future<Output = ()>,
{
    let found = lookup().await;
    if found.as_deref().is_some_and(|v| servable(v, now())) {
        return (found, false);
    }
    match join(now()) {
        Turn::Lead => (found, true),
        Turn::Wait(until) => {
            while in_flight(now()) && now() < until {
                pause().await;
            }
            (lookup().await, false)
        }
    }
}

/// What a miss does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Turn {
    /// Fetch, then [`Collapse::release`] the key (stored or not).
    Lead,
    /// Another request fetches it: wait (at most until the instant given) and look again.
    Wait(Instant),
}

/// Keys with a fetch in flight.
#[derive(Debug, Default)]
pub struct Collapse {
    inflight: BTreeMap<String, Instant>,
    /// Misses that waited for another request's fetch.
    pub collapsed: u64,
}

impl Collapse {
    /// Joins the fetch of `key`: leads it if nobody does (or the leader's time ran out), else
    /// waits for it.
    pub fn join(&mut self, key: &str, now: Instant) -> Turn {
        match self.inflight.get(key) {
            Some(&until) if until > now => {
                self.collapsed += 1;
                Turn::Wait(until)
            }
            _ => {
                self.inflight
                    .insert(String::from(key), now.saturating_add(COLLAPSE_WAIT));
                Turn::Lead
            }
        }
    }

    /// Whether a fetch of `key` is in flight (a waiter looks again once it is not).
    #[must_use]
    pub fn in_flight(&self, key: &str, now: Instant) -> bool {
        self.inflight.get(key).is_some_and(|&until| until > now)
    }

    /// The leader of `key` is done.
    pub fn release(&mut self, key: &str) {
        self.inflight.remove(key);
    }

    /// Keys in flight.
    #[must_use]
    pub fn len(&self) -> usize {
        self.inflight.len()
    }

    /// Whether none is.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.inflight.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    const MIN: Duration = Duration::from_secs(60);

    fn t(s: u64) -> Instant {
        Instant::from_micros(s * 1_000_000)
    }

    #[test]
    fn evicts_least_recently_used_within_the_byte_bound() {
        let mut l1: L1<Vec<u8>> = L1::new(3 * (1 + 100 + ENTRY_OVERHEAD));
        let v = vec![0u8; 100];
        l1.put("a", v.clone(), MIN, t(0));
        l1.put("b", v.clone(), MIN, t(0));
        l1.put("c", v.clone(), MIN, t(0));
        assert!(l1.get("a", t(1)).is_some()); // a is now most recent
        l1.put("d", v.clone(), MIN, t(1));
        assert!(l1.get("b", t(1)).is_none(), "b was least recently used");
        assert!(l1.get("a", t(1)).is_some() && l1.get("c", t(1)).is_some());
        assert!(l1.get("d", t(1)).is_some());
        let (n, bytes, cap) = l1.stats();
        assert_eq!(n, 3);
        assert!(bytes <= cap);
        // larger than the bound: not kept, and nothing else is evicted for it
        l1.put("huge", vec![0u8; 10_000], MIN, t(1));
        assert!(l1.get("huge", t(1)).is_none());
        assert_eq!(l1.stats().0, 3);
        // a smaller bound evicts the oldest
        l1.set_capacity(1 + 100 + ENTRY_OVERHEAD);
        assert_eq!(l1.stats().0, 1);
    }

    #[test]
    fn entries_expire_at_their_deadline_and_replacing_counts_once() {
        let mut l1: L1<Vec<u8>> = L1::new(10_000);
        l1.put("a", vec![1], Duration::from_secs(5), t(10));
        assert!(l1.get("a", t(14)).is_some());
        assert!(l1.get("a", t(15)).is_none(), "gone at the deadline");
        assert_eq!(l1.stats(), (0, 0, 10_000));
        l1.put("a", vec![1; 10], MIN, t(0));
        l1.put("a", vec![1; 20], MIN, t(0));
        assert_eq!(l1.stats().1, 1 + 20 + ENTRY_OVERHEAD);
        l1.put("a", vec![1], Duration::ZERO, t(0));
        assert_eq!(
            l1.stats().0,
            0,
            "kept for no time: not stored, the old value gone"
        );
    }

    #[test]
    fn long_keys_are_hashed_short_ones_kept() {
        assert_eq!(store_key("t:GET:/a"), "mosaic:cache:t:GET:/a");
        let long = "k".repeat(MAX_PLAIN_KEY + 1);
        let k = store_key(&long);
        assert!(
            k.starts_with("mosaic:cache:sha256:") && k.len() == 13 + 7 + 64,
            "{k}"
        );
        assert_eq!(store_key(&long), k, "stable");
        assert_eq!(
            store_key(&"k".repeat(MAX_PLAIN_KEY)).len(),
            13 + MAX_PLAIN_KEY
        );
    }

    #[test]
    fn one_leader_per_key_until_released_or_timed_out() {
        let mut c = Collapse::default();
        assert_eq!(c.join("k", t(0)), Turn::Lead);
        assert_eq!(c.join("k", t(1)), Turn::Wait(t(30)));
        assert_eq!(c.join("other", t(1)), Turn::Lead);
        assert!(c.in_flight("k", t(2)));
        c.release("k");
        assert!(!c.in_flight("k", t(2)));
        assert_eq!(c.join("k", t(3)), Turn::Lead);
        // a leader that never releases stops holding others after COLLAPSE_WAIT
        assert_eq!(c.join("k", t(34)), Turn::Lead);
        assert_eq!(c.collapsed, 1);
    }

    #[test]
    fn a_waiter_looks_again_once_the_leader_is_done() {
        use core::cell::{Cell, RefCell};
        let c = RefCell::new(Collapse::default());
        let clock = Cell::new(0u64);
        let now = || t(clock.get());
        let looks = Cell::new(0);
        let lookup = || {
            looks.set(looks.get() + 1);
            async { None }
        };
        // the first leads (nothing servable)
        let (found, leads) = crate::sim::block_on(collapsed_get(
            now,
            lookup,
            |n| c.borrow_mut().join("k", n),
            |n| c.borrow().in_flight("k", n),
            || async {},
        ));
        assert!(found.is_none() && leads);
        // the second waits: each pause moves the clock; the leader releases after two
        let pauses = Cell::new(0);
        let (_, leads) = crate::sim::block_on(collapsed_get(
            now,
            lookup,
            |n| c.borrow_mut().join("k", n),
            |n| c.borrow().in_flight("k", n),
            || {
                pauses.set(pauses.get() + 1);
                clock.set(clock.get() + 1);
                if pauses.get() == 2 {
                    c.borrow_mut().release("k");
                }
                async {}
            },
        ));
        assert!(!leads);
        assert_eq!(
            (pauses.get(), looks.get()),
            (2, 3),
            "looked again once, after the release"
        );
    }

    #[test]
    fn what_is_not_an_entry_is_neither_kept_nor_served() {
        assert_eq!(retention(b"junk", t(0)), Duration::ZERO);
        assert!(!servable(b"junk", t(0)));
    }
}
