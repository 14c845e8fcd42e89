//! The L1 cache — an in-memory LRU bounded in bytes — and miss collapsing.
//!
//! What is stored, for how long and whether a stored entry is usable are core's decisions
//! (`mosaic_core::cache`); this module only keeps bytes until a deadline and evicts the least
//! recently used entries when the byte bound is reached.
//!
//! [`Collapser`] makes concurrent misses for one key wait for the first request's fetch
//! (nginx's `proxy_cache_lock`): the first becomes the leader, the others wait until the leader
//! releases the key (stored or not, finished or cancelled), then look again. A waiter waits at
//! most once; if the leader stored nothing it fetches on its own.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use lru::LruCache;
use tokio::sync::watch;

/// Fixed per-entry overhead counted against the bound (map node, key, bookkeeping).
const ENTRY_OVERHEAD: u64 = 96;

struct Slot {
    value: Bytes,
    expires: Instant,
}

struct Inner {
    map: LruCache<String, Slot>,
    bytes: u64,
}

/// An LRU cache bounded by the bytes its keys and values take.
pub struct L1 {
    inner: Mutex<Inner>,
    capacity: u64,
}

fn cost(key: &str, value: &[u8]) -> u64 {
    key.len() as u64 + value.len() as u64 + ENTRY_OVERHEAD
}

impl L1 {
    /// An empty cache holding at most `capacity` bytes.
    #[must_use]
    pub fn new(capacity: u64) -> L1 {
        L1 {
            inner: Mutex::new(Inner {
                map: LruCache::unbounded(),
                bytes: 0,
            }),
            capacity,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The value under `key` unless it expired.
    pub fn get(&self, key: &str) -> Option<Bytes> {
        let mut g = self.lock();
        let now = Instant::now();
        match g.map.get(key) {
            Some(s) if s.expires > now => Some(s.value.clone()),
            Some(_) => {
                if let Some(s) = g.map.pop(key) {
                    g.bytes = g.bytes.saturating_sub(cost(key, &s.value));
                }
                None
            }
            None => None,
        }
    }

    /// Stores `value` under `key` for `ttl`, evicting least recently used entries to stay
    /// within the bound. A value larger than the whole bound is not kept.
    pub fn put(&self, key: &str, value: Bytes, ttl: Duration) {
        let c = cost(key, &value);
        let mut g = self.lock();
        if let Some(old) = g.map.pop(key) {
            g.bytes = g.bytes.saturating_sub(cost(key, &old.value));
        }
        if c > self.capacity || ttl.is_zero() {
            return;
        }
        while g.bytes + c > self.capacity {
            match g.map.pop_lru() {
                Some((k, s)) => g.bytes = g.bytes.saturating_sub(cost(&k, &s.value)),
                None => break,
            }
        }
        g.bytes += c;
        g.map.put(
            key.to_string(),
            Slot {
                value,
                expires: Instant::now() + ttl,
            },
        );
    }

    /// (entries, bytes, capacity).
    pub fn stats(&self) -> (u64, u64, u64) {
        let g = self.lock();
        (g.map.len() as u64, g.bytes, self.capacity)
    }
}

/// Key → (leader id, receiver the waiters clone).
type Inflight = Arc<Mutex<HashMap<String, (u64, watch::Receiver<()>)>>>;

/// Keys with a fetch in flight, and who waits for them.
#[derive(Default)]
pub struct Collapser {
    inflight: Inflight,
    next: AtomicU64,
    /// Requests that waited for another request's fetch.
    pub collapsed: AtomicU64,
}

/// Leadership of a key: dropping it wakes every waiter.
pub struct Lead {
    key: String,
    id: u64,
    map: Inflight,
    _tx: watch::Sender<()>,
}

impl Lead {
    /// The key led.
    #[must_use]
    pub fn key(&self) -> &str {
        &self.key
    }
}

impl Drop for Lead {
    fn drop(&mut self) {
        let mut m = self
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if m.get(&self.key).is_some_and(|(id, _)| *id == self.id) {
            m.remove(&self.key);
        }
        // `_tx` drops after this: every receiver's `changed()` returns
    }
}

/// What a miss should do.
pub enum Turn {
    /// Fetch, then drop the [`Lead`] to wake the waiters.
    Lead(Lead),
    /// Wait for the leader.
    Wait(watch::Receiver<()>),
}

impl Collapser {
    /// Joins the fetch of `key`: leads it if nobody does, else waits for the leader.
    pub fn join(&self, key: &str) -> Turn {
        let mut m = self
            .inflight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, rx)) = m.get(key) {
            return Turn::Wait(rx.clone());
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = watch::channel(());
        m.insert(key.to_string(), (id, rx));
        Turn::Lead(Lead {
            key: key.to_string(),
            id,
            map: Arc::clone(&self.inflight),
            _tx: tx,
        })
    }

    /// Keys with a fetch in flight.
    #[cfg(test)]
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.inflight.lock().map(|m| m.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used_within_the_byte_bound() {
        let l1 = L1::new(3 * (1 + 100 + ENTRY_OVERHEAD));
        let v = Bytes::from(vec![0u8; 100]);
        l1.put("a", v.clone(), Duration::from_secs(60));
        l1.put("b", v.clone(), Duration::from_secs(60));
        l1.put("c", v.clone(), Duration::from_secs(60));
        assert!(l1.get("a").is_some()); // a is now most recent
        l1.put("d", v.clone(), Duration::from_secs(60));
        assert!(l1.get("b").is_none(), "b was least recently used");
        assert!(l1.get("a").is_some() && l1.get("c").is_some() && l1.get("d").is_some());
        let (n, bytes, cap) = l1.stats();
        assert_eq!(n, 3);
        assert!(bytes <= cap);
        // larger than the bound: not kept, and nothing else is evicted for it
        l1.put(
            "huge",
            Bytes::from(vec![0u8; 10_000]),
            Duration::from_secs(60),
        );
        assert!(l1.get("huge").is_none());
        assert_eq!(l1.stats().0, 3);
    }

    #[test]
    fn expired_entries_are_gone() {
        let l1 = L1::new(10_000);
        l1.put("a", Bytes::from_static(b"x"), Duration::from_millis(1));
        std::thread::sleep(Duration::from_millis(5));
        assert!(l1.get("a").is_none());
        assert_eq!(l1.stats().1, 0);
    }

    #[tokio::test]
    async fn waiters_wake_when_the_leader_drops() {
        let c = Collapser::default();
        let Turn::Lead(lead) = c.join("k") else {
            panic!("first must lead")
        };
        let Turn::Wait(mut rx) = c.join("k") else {
            panic!("second must wait")
        };
        assert_eq!(c.in_flight(), 1);
        let waiter = tokio::spawn(async move { rx.changed().await.is_err() });
        drop(lead);
        assert!(
            waiter.await.unwrap_or(false),
            "the waiter saw the sender go"
        );
        assert_eq!(c.in_flight(), 0);
        assert!(matches!(c.join("k"), Turn::Lead(_)));
    }
}
