//! The shared application's host ([`AppHost`], [`HookHost`]) for tokio: the clock, sleeping,
//! state access, upstream sends, the two cache tiers with miss collapsing, the store as the
//! application's key-value namespace, body buffering, and the platform's figures.
//!
//! A [`LocalHost`] lives for one request (or one background job): it holds the cache keys this
//! request leads, so that releasing or dropping it wakes the requests that collapsed onto its
//! miss.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::Limited;
use http_body_util::{BodyExt, BodyStream, StreamBody};
use mosaic_core::admin::CacheStats;
use mosaic_core::driver::UpstreamResponse;
use mosaic_core::engine::{Attempt, FetchError};
use mosaic_core::tier;
use mosaic_core::time::Instant;
use mosaic_core::{Router, State};
use mosaic_providers::app::{AppHost, Platform, ReadError, Reloaded};
use mosaic_providers::declarative::Registry;
use mosaic_providers::hooks::{HookHost, KvError, Post, PostError};

use crate::cache::{Collapser, Lead, Turn, L1};
use crate::store::{Kv, Store, StoreError};
use crate::upstream::Clients;

/// A boxed error for bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body type of upstream responses and of our replies.
pub type Body = http_body_util::combinators::BoxBody<Bytes, BoxError>;

/// Longest a collapsed miss waits for the leader before fetching on its own.
const COLLAPSE_WAIT: Duration = tier::COLLAPSE_WAIT;

/// The wall clock as core's [`Instant`] (µs since the Unix epoch), advanced by the monotonic
/// clock so that it never goes backwards within the process.
#[must_use]
pub fn wall_now() -> Instant {
    let (wall, mono) = anchor();
    Instant::from_micros(wall.saturating_add(mono.elapsed().as_micros() as u64))
}

/// The monotonic clock's instant for one of [`wall_now`]'s (its inverse; instants from
/// before the process started map to its start): deadlines core computes become timer
/// deadlines without reading a clock again.
#[must_use]
pub fn monotonic(t: Instant) -> std::time::Instant {
    let (wall, mono) = anchor();
    *mono + Duration::from_micros(t.as_micros().saturating_sub(*wall))
}

/// The wall clock (µs since the Unix epoch) and the monotonic clock at the same moment, read
/// once per process.
fn anchor() -> &'static (u64, std::time::Instant) {
    static ANCHOR: OnceLock<(u64, std::time::Instant)> = OnceLock::new();
    ANCHOR.get_or_init(|| {
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        (wall, std::time::Instant::now())
    })
}

/// One configuration generation: the router and its state.
pub struct Live {
    /// The router (immutable).
    pub router: Router,
    /// Its state, shared by every request.
    pub state: Mutex<State>,
    /// Bumped on every reload.
    pub generation: u64,
    /// The provider plugins in force when it was built (built-ins and declarations).
    pub registry: Arc<Registry>,
}

impl Live {
    /// Locks the state (a poisoned lock is still usable: state updates are whole).
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A generation as a thread holds it: see [`Shared::live`].
pub type LiveRef = Arc<Arc<Live>>;

/// Everything process-wide.
pub struct Shared {
    live: RwLock<Arc<Live>>,
    /// Tells this `Shared` apart from others in the process (tests run several) in the
    /// threads' caches of the generation.
    id: u64,
    /// Bumped after every swap of `live`.
    version: AtomicU64,
    /// L1 cache.
    pub l1: L1,
    /// Miss collapsing.
    pub collapser: Collapser,
    /// The store (L2, snapshots).
    pub store: Store,
    /// Connections open now.
    pub connections: AtomicU64,
    /// Whether the last store operation succeeded (readiness).
    pub store_ok: AtomicBool,
    /// Background revalidations in flight, by cache key.
    pub revalidating: Mutex<std::collections::HashSet<String>>,
    /// Serialises reloads.
    pub reload_lock: tokio::sync::Mutex<()>,
    /// The config file reloads read.
    pub config_path: std::path::PathBuf,
}

impl Shared {
    /// Process-wide state for `live`.
    #[must_use]
    pub fn new(
        live: Live,
        store: Store,
        cache_bytes: u64,
        config_path: std::path::PathBuf,
    ) -> Shared {
        static IDS: AtomicU64 = AtomicU64::new(0);
        Shared {
            live: RwLock::new(Arc::new(live)),
            id: IDS.fetch_add(1, Ordering::Relaxed),
            version: AtomicU64::new(0),
            l1: L1::new(cache_bytes),
            collapser: Collapser::default(),
            store,
            connections: AtomicU64::new(0),
            store_ok: AtomicBool::new(true),
            revalidating: Mutex::new(std::collections::HashSet::new()),
            reload_lock: tokio::sync::Mutex::new(()),
            config_path,
        }
    }

    /// The current generation.
    ///
    /// Every request asks, on every worker thread: each thread keeps the generation it last
    /// saw behind a reference count of its own and only checks that it is still current (a
    /// load of a value written at reloads only). Taking the lock and counting references to
    /// the one shared value instead makes the worker threads' cores pass its cache lines back
    /// and forth on every request.
    pub fn live(&self) -> LiveRef {
        thread_local! {
            static SEEN: std::cell::RefCell<Option<(u64, u64, LiveRef)>> =
                const { std::cell::RefCell::new(None) };
        }
        let version = self.version.load(Ordering::Acquire);
        SEEN.with(|seen| {
            let mut seen = seen.borrow_mut();
            if let Some((id, v, live)) = &*seen {
                if *id == self.id && *v == version {
                    return Arc::clone(live);
                }
            }
            let live: LiveRef = Arc::new(Arc::clone(
                &self
                    .live
                    .read()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            ));
            *seen = Some((self.id, version, Arc::clone(&live)));
            live
        })
    }

    /// Replaces the generation.
    pub fn swap(&self, live: Live) {
        *self
            .live
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(live);
        self.version.fetch_add(1, Ordering::Release);
    }
}

/// The host of one request.
pub struct LocalHost<'a> {
    shared: &'a Shared,
    live: &'a Live,
    leads: Mutex<Vec<Lead>>,
    /// The cache key this request looked up, if any (to dedupe background revalidation).
    pub looked_up: Mutex<Option<String>>,
    /// Whether the request's log line is written ([`AppHost::keeps_log`]).
    keep_log: bool,
}

impl<'a> LocalHost<'a> {
    /// A host for one request. It borrows what it needs: counting references to process-wide
    /// values on every request would make the worker threads' cores trade their cache lines.
    #[must_use]
    pub fn new(shared: &'a Shared, live: &'a Live) -> LocalHost<'a> {
        LocalHost {
            shared,
            live,
            leads: Mutex::new(Vec::new()),
            looked_up: Mutex::new(None),
            keep_log: true,
        }
    }

    /// The same host for a request whose log line is not written: core leaves the log's
    /// strings empty ([`AppHost::keeps_log`]).
    #[must_use]
    pub fn without_log(mut self) -> Self {
        self.keep_log = false;
        self
    }

    async fn lookup(&self, key: &str) -> Option<Bytes> {
        if let Some(v) = self.shared.l1.get(key) {
            return Some(v);
        }
        if !self.shared.store.is_tiered() {
            return None;
        }
        match self.shared.store.get(&tier::store_key(key)).await {
            Ok(Some(v)) => {
                self.shared.store_ok.store(true, Ordering::Relaxed);
                let v = Bytes::from(v);
                // keep it in L1 for as long as core says the entry is worth keeping
                let keep = tier::retention(&v, wall_now());
                self.shared.l1.put(key, v.clone(), keep);
                Some(v)
            }
            Ok(None) => None,
            Err(e) => {
                self.shared.store_ok.store(false, Ordering::Relaxed);
                tracing::warn!(error = %e, "cache store read failed");
                None
            }
        }
    }
}

/// Namespace of the application's keys in the store (`mosaic:hooks:…`, `mosaic:providers`).
pub const NS: &str = "mosaic:";

fn kv(e: StoreError) -> KvError {
    KvError(e.0)
}

impl HookHost for LocalHost<'_> {
    fn now(&self) -> Instant {
        wall_now()
    }

    async fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.shared
            .store
            .get(&format!("{NS}{key}"))
            .await
            .map_err(kv)
    }

    async fn kv_put(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> Result<(), KvError> {
        // durable: the outbox is what makes an accepted event survive a crash
        self.shared
            .store
            .put(&format!("{NS}{key}"), value, ttl, true)
            .await
            .map_err(kv)
    }

    async fn kv_delete(&self, key: &str) -> Result<(), KvError> {
        self.shared
            .store
            .delete(&format!("{NS}{key}"))
            .await
            .map_err(kv)
    }

    async fn kv_list(&self, prefix: &str) -> Result<Vec<String>, KvError> {
        let keys = self
            .shared
            .store
            .list(&format!("{NS}{prefix}"))
            .await
            .map_err(kv)?;
        Ok(keys
            .into_iter()
            .filter_map(|k| k.strip_prefix(NS).map(str::to_string))
            .collect())
    }

    async fn post(&self, p: &Post<'_>) -> Result<u16, PostError> {
        let timeout = p.deadline.saturating_since(wall_now());
        if timeout.is_zero() {
            return Err(PostError::Timeout);
        }
        let clients = Clients::local().map_err(PostError::Network)?;
        clients
            .post(p.url, p.headers, p.body, timeout, p.allow_private)
            .await
    }

    async fn sleep_until(&self, t: Instant) {
        let d = t.saturating_since(wall_now());
        if !d.is_zero() {
            tokio::time::sleep(d).await;
        }
    }
}

impl<'a> AppHost for LocalHost<'a> {
    type In = crate::conn::RequestBody<'a>;
    type Body = Body;

    async fn read_in(&self, body: Self::In, cap: u64) -> Result<Vec<u8>, ReadError> {
        if hyper::body::Body::is_end_stream(&body) {
            // most requests have no body: nothing to collect
            return Ok(Vec::new());
        }
        match Limited::new(body, usize::try_from(cap).unwrap_or(usize::MAX))
            .collect()
            .await
        {
            Ok(c) => Ok(Vec::from(c.to_bytes())),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ReadError::TooLarge),
            Err(e) => Err(ReadError::Failed(e.to_string())),
        }
    }

    async fn send(
        &self,
        attempt: &Attempt,
        body: &[u8],
    ) -> Result<UpstreamResponse<Body>, FetchError> {
        // core made the attempt's deadline from the clock it was just given: no need to
        // read the clock again to arm the timer (a deadline already passed fails at once)
        let deadline = tokio::time::Instant::from_std(monotonic(attempt.deadline));
        let clients = Clients::local().map_err(|e| {
            tracing::error!(error = %e, "no HTTP client");
            FetchError::Connect
        })?;
        let body = if body.is_empty() {
            Bytes::new()
        } else {
            Bytes::copy_from_slice(body)
        };
        clients.send_by(attempt, body, deadline).await
    }

    fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.live.state())
    }

    fn spare_headers(&self) -> Option<mosaic_core::http::HeaderList> {
        Some(crate::h1::spare())
    }

    fn recycle_headers(&self, list: mosaic_core::http::HeaderList) {
        crate::h1::recycle(list);
    }

    fn keeps_log(&self) -> bool {
        self.keep_log
    }

    fn platform(&self) -> Platform {
        let (entries, bytes, capacity_bytes) = self.shared.l1.stats();
        let store = self.shared.store.kind();
        let connections = self.shared.connections.load(Ordering::Relaxed);
        let mut extra = serde_json::Map::new();
        extra.insert("connections".into(), connections.into());
        Platform {
            store,
            ready: self.shared.store_ok.load(Ordering::Relaxed),
            cache: CacheStats {
                entries,
                bytes,
                capacity_bytes,
                store: store.to_string(),
                collapsed: self.shared.collapser.collapsed.load(Ordering::Relaxed),
            },
            extra,
            metrics: format!(
                "# HELP mosaic_connections Open client connections.\n# TYPE mosaic_connections gauge\nmosaic_connections {connections}\n"
            ),
        }
    }

    async fn reload(&self) -> Result<Reloaded, Vec<String>> {
        let (generation, warnings) = crate::server::reload(self.shared).await?;
        Ok(Reloaded {
            generation,
            source: "file",
            warnings,
        })
    }

    fn registry(&self) -> &Registry {
        &self.live.registry
    }

    async fn install_registry(&self, registry: Registry) {
        crate::v1::install(registry);
        crate::v1::refresh_router(self.shared).await;
    }

    async fn claim_refresh(&self, key: &str) -> bool {
        self.shared
            .revalidating
            .lock()
            .is_ok_and(|mut set| set.insert(key.to_string()))
    }

    async fn release_refresh(&self, key: &str) {
        if let Ok(mut set) = self.shared.revalidating.lock() {
            set.remove(key);
        }
    }

    fn looked_up(&self) -> Option<String> {
        self.looked_up.lock().ok().and_then(|k| k.clone())
    }

    async fn cache_get(&self, key: &str) -> Option<Vec<u8>> {
        if let Ok(mut k) = self.looked_up.lock() {
            *k = Some(key.to_string());
        }
        let mut waited = false;
        loop {
            let found = self.lookup(key).await;
            if found
                .as_deref()
                .is_some_and(|b| tier::servable(b, wall_now()))
                || waited
            {
                return found.map(|b| b.to_vec());
            }
            match self.shared.collapser.join(key) {
                Turn::Lead(lead) => {
                    if let Ok(mut l) = self.leads.lock() {
                        l.push(lead);
                    }
                    return found.map(|b| b.to_vec());
                }
                Turn::Wait(mut rx) => {
                    self.shared
                        .collapser
                        .collapsed
                        .fetch_add(1, Ordering::Relaxed);
                    let _ = tokio::time::timeout(COLLAPSE_WAIT, rx.changed()).await;
                    waited = true;
                }
            }
        }
    }

    async fn cache_put(&self, key: &str, value: Vec<u8>, ttl: Duration) {
        let v = Bytes::from(value);
        self.shared.l1.put(key, v.clone(), ttl);
        if self.shared.store.is_tiered() {
            let r = self
                .shared
                .store
                .put(&tier::store_key(key), v.to_vec(), Some(ttl), false)
                .await;
            self.shared.store_ok.store(r.is_ok(), Ordering::Relaxed);
            if let Err(e) = r {
                tracing::warn!(error = %e, "cache store write failed");
            }
        }
    }

    fn cache_release(&self, key: &str) {
        if let Ok(mut l) = self.leads.lock() {
            l.retain(|lead| lead.key() != key);
        }
    }

    async fn read_body(&self, body: Body, cap: usize) -> Result<Vec<u8>, Body> {
        if hyper::body::Body::size_hint(&body).lower() > cap as u64 {
            return Err(body);
        }
        let mut stream = BodyStream::new(body);
        let mut buf: Vec<u8> = Vec::new();
        let mut chunks: Vec<Bytes> = Vec::new();
        while let Some(frame) = stream.next().await {
            match frame {
                Ok(f) => {
                    let Ok(data) = f.into_data() else { continue };
                    if buf.len() + data.len() > cap {
                        // too large to cache: hand back what was read followed by the rest
                        chunks.push(Bytes::from(std::mem::take(&mut buf)));
                        chunks.push(data);
                        let head = futures_util::stream::iter(
                            chunks.into_iter().map(|c| Ok(hyper::body::Frame::data(c))),
                        );
                        let rest = stream.map(|r| r);
                        return Err(BodyExt::boxed(StreamBody::new(head.chain(rest))));
                    }
                    buf.extend_from_slice(&data);
                }
                Err(e) => {
                    // the body broke: stream what we have, then the error
                    let head = futures_util::stream::iter([
                        Ok(hyper::body::Frame::data(Bytes::from(buf))),
                        Err(e),
                    ]);
                    return Err(BodyExt::boxed(StreamBody::new(head)));
                }
            }
        }
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(generation: u64) -> Live {
        let raw: mosaic_core::RawConfig = toml::from_str(
            "[[providers]]\nid = \"p\"\nbase_url = \"https://p.example\"\n\
             [[routes]]\nname = \"r\"\nmatch = { path = \"/{*rest}\" }\nproviders = [\"p\"]\n",
        )
        .expect("toml");
        let config = raw.validate().expect("valid");
        let state = State::new(&config, 1);
        Live {
            router: Router::new(config, |_| None),
            state: Mutex::new(state),
            generation,
            registry: Arc::new(Registry::new()),
        }
    }

    fn shared(generation: u64) -> Shared {
        Shared::new(
            live(generation),
            crate::store::Store::Memory(crate::store::MemoryStore::default()),
            1 << 20,
            std::path::PathBuf::from("mosaic.toml"),
        )
    }

    /// A thread's cached generation is the current one: a swap is seen by the next call on
    /// the same thread, and two `Shared` used from one thread never see each other's.
    #[test]
    fn live_follows_swaps_and_keeps_instances_apart() {
        let a = shared(1);
        let b = shared(10);
        assert_eq!(a.live().generation, 1);
        assert_eq!(b.live().generation, 10);
        assert_eq!(a.live().generation, 1);
        let held = a.live();
        a.swap(live(2));
        assert_eq!(a.live().generation, 2, "the swap is seen at once");
        assert_eq!(
            held.generation, 1,
            "a request in flight keeps its generation"
        );
        assert_eq!(b.live().generation, 10);
        b.swap(live(11));
        assert_eq!((a.live().generation, b.live().generation), (2, 11));
        // another thread sees the same
        let a = Arc::new(a);
        let seen = std::thread::spawn({
            let a = Arc::clone(&a);
            move || a.live().generation
        })
        .join()
        .expect("thread");
        assert_eq!(seen, 2);
    }

    /// `monotonic` inverts `wall_now`: the instant it gives for "now" is now on the monotonic
    /// clock (within the time the two reads take), later instants are later by the same
    /// amount, and instants from before the process map to its start.
    #[test]
    fn monotonic_inverts_wall_now() {
        let before = std::time::Instant::now();
        let t = wall_now();
        let after = std::time::Instant::now();
        let m = monotonic(t);
        // wall_now has µs resolution: m may be up to 1 µs before the first read
        assert!(
            m + Duration::from_micros(1) >= before && m <= after,
            "{m:?} {before:?} {after:?}"
        );
        let later = monotonic(t.saturating_add(Duration::from_millis(1500)));
        assert_eq!(later - m, Duration::from_millis(1500));
        assert_eq!(monotonic(Instant::from_micros(0)), anchor().1);
    }
}
