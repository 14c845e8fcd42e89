//! The L1 cache — core's in-memory tier (`mosaic_core::tier::L1`) behind a lock — and miss
//! collapsing's waiting.
//!
//! What is stored, for how long, whether a stored entry is usable and how the tier evicts are
//! core's decisions (`mosaic_core::cache`, `mosaic_core::tier`).
//!
//! [`Collapser`] makes concurrent misses for one key wait for the first request's fetch
//! (nginx's `proxy_cache_lock`): the first becomes the leader, the others wait until the leader
//! releases the key (stored or not, finished or cancelled), then look again. A waiter waits at
//! most once; if the leader stored nothing it fetches on its own.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use mosaic_core::tier;
use tokio::sync::watch;

use crate::host::wall_now;

/// Core's in-memory tier ([`tier::L1`]) behind the process's lock, on the wall clock.
pub struct L1 {
    inner: Mutex<tier::L1<Bytes>>,
}

impl L1 {
    /// An empty cache holding at most `capacity` bytes.
    #[must_use]
    pub fn new(capacity: u64) -> L1 {
        L1 {
            inner: Mutex::new(tier::L1::new(capacity)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, tier::L1<Bytes>> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The value under `key` unless it expired.
    pub fn get(&self, key: &str) -> Option<Bytes> {
        self.lock().get(key, wall_now())
    }

    /// Stores `value` under `key` for `ttl` (see [`tier::L1::put`]).
    pub fn put(&self, key: &str, value: Bytes, ttl: Duration) {
        self.lock().put(key, value, ttl, wall_now());
    }

    /// (entries, bytes, capacity).
    pub fn stats(&self) -> (u64, u64, u64) {
        self.lock().stats()
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
    fn the_lock_keeps_cores_tier() {
        let l1 = L1::new(2 * (1 + 100 + tier::ENTRY_OVERHEAD));
        l1.put("a", Bytes::from(vec![0u8; 100]), Duration::from_secs(60));
        assert_eq!(l1.get("a").map(|b| b.len()), Some(100));
        l1.put("b", Bytes::from_static(b"x"), Duration::from_millis(1));
        std::thread::sleep(Duration::from_millis(5));
        assert!(l1.get("b").is_none(), "expired on the wall clock");
        assert_eq!(l1.stats().0, 1);
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
