//! `mosaic_core::driver::Host` for Workers: `Date::now()`, `fetch` with an abort timeout, the
//! isolate's router state, and three cache tiers.
//!
//! State that outlives a request lives in isolate memory ([`Isolate`], one per isolate,
//! single-threaded): the router and its [`State`], the L1 cache, the misses being fetched, and
//! the write-behind bookkeeping. A [`WorkersHost`] is one request's view of it.
//!
//! Cache tiers: L1 isolate memory (LRU bounded in bytes), L2 Workers KV (entries with a TTL of
//! at least 60 s, as KV requires), L3 the Cache API of the colo when the runtime has one
//! (`caches.default`; guarded, so a runtime without it only loses that tier).

use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, HashMap};
use std::pin::pin;
use std::rc::Rc;
use std::time::Duration;

use futures_util::future::{select, Either};
use mosaic_core::cache::{Entry, Freshness};
use mosaic_core::driver::{Host, UpstreamResponse};
use mosaic_core::engine::{Attempt, FetchError};
use mosaic_core::target::is_private_host;
use mosaic_core::time::Instant;
use mosaic_core::{snapshot, Router, State};
use sha2::{Digest, Sha256};
use wasm_bindgen::JsValue;
use worker::js_sys::{self, Reflect, Uint8Array};
use worker::{
    AbortController, Cache, Context, Date, Delay, Fetch, Headers, KvStore, Method, Request,
    RequestInit, RequestRedirect, Response,
};

/// KV binding name.
pub const KV_BINDING: &str = "MOSAIC_KV";
/// KV key of the state snapshot.
pub const STATE_KEY: &str = "mosaic:state";
/// Prefix of cache entries in KV.
pub const CACHE_PREFIX: &str = "mosaic:cache:";
/// Shortest TTL KV accepts.
const KV_MIN_TTL_S: u64 = 60;
/// Keys longer than this are stored under a hash (KV keys are at most 512 bytes).
const MAX_PLAIN_KEY: usize = 400;
/// Longest a collapsed miss waits for the leader before fetching on its own.
const COLLAPSE_WAIT: Duration = Duration::from_secs(30);
/// How often a collapsed miss checks whether the leader is done.
const COLLAPSE_POLL: Duration = Duration::from_millis(10);
/// At most one snapshot write per isolate this often (KV allows ~1 write/s per key).
pub const WRITE_INTERVAL: Duration = Duration::from_secs(5);
/// Upper bound of the L1 cache, whatever `server.cache_bytes` says (isolates have 128 MB).
const L1_MAX_BYTES: u64 = 32 << 20;

/// The clock: `Date::now()`, read fresh on every call (it only advances across I/O).
#[must_use]
pub fn now() -> Instant {
    Instant::from_millis(Date::now().as_millis())
}

/// 64 random bits from `Math.random` (seeds and request ids, never secrets).
#[must_use]
pub fn random_u64() -> u64 {
    let hi = (js_sys::Math::random() * 4_294_967_296.0) as u64;
    let lo = (js_sys::Math::random() * 4_294_967_296.0) as u64;
    (hi << 32) ^ lo ^ Date::now().as_millis()
}

/// One configuration generation: the router and its state.
pub struct Live {
    /// The router (immutable).
    pub router: Router,
    /// Its state, shared by the isolate's requests.
    pub state: RefCell<State>,
    /// The config text it was built from.
    pub text: String,
    /// `kv`, `vars` or `fallback` (the last accepted config, the source being invalid).
    pub source: &'static str,
    /// Bumped on every reload.
    pub generation: u64,
    /// `state.material` when it was built.
    pub material_at_load: u64,
}

/// L1: an LRU map bounded in bytes, entries expire.
#[derive(Default)]
pub struct L1 {
    map: HashMap<String, (Vec<u8>, Instant, u64)>,
    bytes: u64,
    cap: u64,
    tick: u64,
}

impl L1 {
    /// Sets the bound (capped at 32 MiB) and evicts down to it.
    pub fn set_capacity(&mut self, cap: u64) {
        self.cap = cap.min(L1_MAX_BYTES);
        self.evict();
    }

    fn evict(&mut self) {
        while self.bytes > self.cap {
            let Some(k) = self
                .map
                .iter()
                .min_by_key(|(_, v)| v.2)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            self.remove(&k);
        }
    }

    fn remove(&mut self, key: &str) {
        if let Some((v, _, _)) = self.map.remove(key) {
            self.bytes = self.bytes.saturating_sub((v.len() + key.len()) as u64);
        }
    }

    /// A live entry.
    pub fn get(&mut self, key: &str, now: Instant) -> Option<Vec<u8>> {
        self.tick += 1;
        let tick = self.tick;
        match self.map.get_mut(key) {
            Some((_, exp, _)) if *exp <= now => {
                self.remove(key);
                None
            }
            Some((v, _, t)) => {
                *t = tick;
                Some(v.clone())
            }
            None => None,
        }
    }

    /// Keeps `value` for `ttl` (not at all when larger than the bound).
    pub fn put(&mut self, key: &str, value: Vec<u8>, ttl: Duration, now: Instant) {
        self.remove(key);
        let size = (value.len() + key.len()) as u64;
        if size > self.cap || ttl.is_zero() {
            return;
        }
        self.tick += 1;
        self.bytes += size;
        self.map
            .insert(key.to_string(), (value, now.saturating_add(ttl), self.tick));
        self.evict();
    }

    /// (entries, bytes, bound).
    #[must_use]
    pub fn stats(&self) -> (u64, u64, u64) {
        (self.map.len() as u64, self.bytes, self.cap)
    }
}

/// A miss being fetched by one request; others poll it until it is released.
///
/// Waiters poll with their own timer rather than being woken by the leader: on Workers, a
/// future woken from another request's handler would continue in that request's I/O context,
/// and the runtime refuses I/O across requests ("Cannot perform I/O on behalf of a different
/// request").
#[derive(Default)]
pub struct Slot {
    done: bool,
}
/// Hits per cache tier (for `/_mosaic/state`).
#[derive(Clone, Copy, Default)]
pub struct TierHits {
    /// Isolate memory.
    pub l1: u64,
    /// Workers KV.
    pub kv: u64,
    /// Cache API.
    pub edge: u64,
}

/// Everything an isolate keeps between requests.
#[derive(Default)]
pub struct Isolate {
    /// The current configuration generation.
    pub live: Option<Rc<Live>>,
    /// When the config source was last read.
    pub checked_at: Option<Instant>,
    /// The current source's text and errors when it is invalid (the old config serves).
    pub rejected: Option<(String, Vec<String>)>,
    /// L1 cache.
    pub l1: L1,
    /// Misses being fetched, by cache key.
    pub inflight: HashMap<String, Rc<RefCell<Slot>>>,
    /// Misses that waited for another request's fetch.
    pub collapsed: u64,
    /// Keys being revalidated in the background.
    pub revalidating: BTreeSet<String>,
    /// Hits per tier.
    pub hits: TierHits,
    /// `state.material` of the last snapshot written.
    pub saved_material: u64,
    /// When the last snapshot write finished.
    pub saved_at: Option<Instant>,
    /// A snapshot write is scheduled.
    pub write_pending: bool,
    /// Snapshot writes done.
    pub writes: u64,
    /// Whether this isolate restored a snapshot when it started.
    pub restored: bool,
}

thread_local! {
    static ISOLATE: RefCell<Isolate> = RefCell::new(Isolate::default());
}

/// Runs `f` on the isolate's state (never across an await).
pub fn with_isolate<R>(f: impl FnOnce(&mut Isolate) -> R) -> R {
    ISOLATE.with(|i| f(&mut i.borrow_mut()))
}

/// The KV key of cache entry `key`: plain when short, else a SHA-256 of it.
#[must_use]
pub fn cache_kv_key(key: &str) -> String {
    if key.len() <= MAX_PLAIN_KEY {
        format!("{CACHE_PREFIX}{key}")
    } else {
        format!(
            "{CACHE_PREFIX}sha256:{}",
            hex(&Sha256::digest(key.as_bytes()))
        )
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

/// The Cache API URL of cache entry `key`.
fn edge_url(key: &str) -> String {
    format!(
        "https://mosaic-cache.invalid/{}",
        hex(&Sha256::digest(key.as_bytes()))
    )
}

/// The colo's cache, when this runtime has `caches.default`.
fn edge_cache() -> Option<Cache> {
    let caches = Reflect::get(&js_sys::global(), &JsValue::from_str("caches")).ok()?;
    if caches.is_undefined() || caches.is_null() {
        return None;
    }
    let default = Reflect::get(&caches, &JsValue::from_str("default")).ok()?;
    (!default.is_undefined() && !default.is_null()).then(Cache::default)
}

/// Whether core would serve this entry without going upstream.
fn servable(bytes: &[u8], now: Instant) -> bool {
    Entry::decode(bytes).is_ok_and(|e| {
        matches!(
            e.freshness(now),
            Freshness::Fresh | Freshness::StaleWhileRevalidate
        )
    })
}

/// An upstream body: the runtime's response, or bytes already read.
pub enum UpBody {
    /// Not read yet.
    Js(Response),
    /// Read (too large to cache, or the stream broke).
    Bytes(Vec<u8>),
}

/// Headers the runtime sets itself or refuses on an outbound request.
fn forbidden_outbound(name: &str) -> bool {
    [
        "host",
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "upgrade",
        "content-length",
    ]
    .iter()
    .any(|f| name.eq_ignore_ascii_case(f))
}

/// Maps a failed `fetch` to core's failure classes, once, here. Only a failure whose message
/// proves nothing was sent (DNS, refused, TLS, a bad URL) is `Connect`, which lets a POST fail
/// over. workerd reports a refused connection and a connection that broke after the request
/// went out with the same message, "Network connection lost.", so that one is `Reset`: a POST
/// is then not retried (it may have reached the upstream), an idempotent request still is.
fn classify(e: &worker::Error) -> FetchError {
    let m = e.to_string().to_ascii_lowercase();
    let unsent = [
        "refused",
        "dns",
        "name or service",
        "tls",
        "ssl",
        "certificate",
        "invalid url",
    ];
    if unsent.iter().any(|k| m.contains(k)) {
        FetchError::Connect
    } else {
        FetchError::Reset
    }
}

/// The host of one request.
pub struct WorkersHost {
    live: Rc<Live>,
    kv: Option<KvStore>,
    ctx: Rc<Context>,
    body: Rc<Vec<u8>>,
    leads: RefCell<Vec<String>>,
    looked_up: RefCell<Option<String>>,
    /// Whether every KV operation so far succeeded.
    pub kv_ok: Cell<bool>,
}

impl WorkersHost {
    /// A host for one request carrying `body`.
    #[must_use]
    pub fn new(live: Rc<Live>, kv: Option<KvStore>, ctx: Rc<Context>, body: Rc<Vec<u8>>) -> Self {
        WorkersHost {
            kv_ok: Cell::new(kv.is_some()),
            live,
            kv,
            ctx,
            body,
            leads: RefCell::new(Vec::new()),
            looked_up: RefCell::new(None),
        }
    }

    /// The cache key this request looked up, if any.
    #[must_use]
    pub fn looked_up(&self) -> Option<String> {
        self.looked_up.borrow().clone()
    }

    fn promote(key: &str, bytes: &[u8]) {
        if let Ok(e) = Entry::decode(bytes) {
            let t = now();
            let keep = e.swr_until.max(e.sie_until).saturating_since(t);
            with_isolate(|i| i.l1.put(key, bytes.to_vec(), keep, t));
        }
    }

    async fn lookup(&self, key: &str) -> Option<Vec<u8>> {
        if let Some(v) = with_isolate(|i| i.l1.get(key, now())) {
            with_isolate(|i| i.hits.l1 += 1);
            return Some(v);
        }
        if let Some(kv) = &self.kv {
            match kv.get(&cache_kv_key(key)).bytes().await {
                Ok(Some(v)) => {
                    Self::promote(key, &v);
                    with_isolate(|i| i.hits.kv += 1);
                    return Some(v);
                }
                Ok(None) => {}
                Err(e) => {
                    self.kv_ok.set(false);
                    crate::log_event("warn", &format!("cache read from KV failed: {e}"));
                }
            }
        }
        let cache = edge_cache()?;
        let mut r = cache.get(edge_url(key), false).await.ok()??;
        let v = r.bytes().await.ok()?;
        Self::promote(key, &v);
        with_isolate(|i| i.hits.edge += 1);
        Some(v)
    }
}

fn release_lead(key: &str) {
    if let Some(slot) = with_isolate(|i| i.inflight.remove(key)) {
        slot.borrow_mut().done = true;
    }
}

impl Drop for WorkersHost {
    fn drop(&mut self) {
        for k in self.leads.borrow_mut().drain(..) {
            release_lead(&k);
        }
    }
}

impl Host for WorkersHost {
    type Body = UpBody;

    fn now(&self) -> Instant {
        now()
    }

    fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.live.state.borrow_mut())
    }

    async fn fetch(&self, attempt: &Attempt) -> Result<UpstreamResponse<UpBody>, FetchError> {
        let timeout = attempt.deadline.saturating_since(now());
        if timeout.is_zero() {
            return Err(FetchError::Timeout);
        }
        let url = worker::Url::parse(&attempt.url).map_err(|_| FetchError::Connect)?;
        let host = url.host_str().unwrap_or("");
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if !attempt.allow_private && is_private_host(host) {
            return Err(FetchError::Forbidden);
        }
        let headers = Headers::new();
        for (n, v) in &attempt.headers {
            if !forbidden_outbound(n) {
                let _ = headers.append(n, v);
            }
        }
        let mut init = RequestInit::new();
        init.with_method(Method::from(attempt.method.as_str().to_string()))
            .with_headers(headers)
            .with_redirect(RequestRedirect::Manual);
        let bodiless = matches!(attempt.method.as_str(), "GET" | "HEAD");
        if !bodiless && !self.body.is_empty() {
            init.with_body(Some(Uint8Array::from(self.body.as_slice()).into()));
        }
        let req = Request::new_with_init(url.as_str(), &init).map_err(|_| FetchError::Connect)?;
        let controller = AbortController::default();
        let signal = controller.signal();
        let fetch = Fetch::Request(req);
        let send = pin!(fetch.send_with_signal(&signal));
        let delay = pin!(Delay::from(timeout));
        let resp = match select(send, delay).await {
            Either::Left((Ok(r), _)) => r,
            Either::Left((Err(e), _)) => return Err(classify(&e)),
            Either::Right(((), _)) => {
                controller.abort();
                return Err(FetchError::Timeout);
            }
        };
        Ok(UpstreamResponse {
            status: resp.status_code(),
            headers: resp.headers().entries().collect(),
            body: UpBody::Js(resp),
        })
    }

    async fn sleep_until(&self, t: Instant) {
        let d = t.saturating_since(now());
        if !d.is_zero() {
            Delay::from(d).await;
        }
    }

    async fn cache_get(&self, key: &str) -> Option<Vec<u8>> {
        *self.looked_up.borrow_mut() = Some(key.to_string());
        let mut waited = false;
        loop {
            let found = self.lookup(key).await;
            if waited || found.as_deref().is_some_and(|b| servable(b, now())) {
                return found;
            }
            let slot = with_isolate(|i| match i.inflight.get(key) {
                Some(s) => {
                    i.collapsed += 1;
                    Some(Rc::clone(s))
                }
                None => {
                    i.inflight.insert(key.to_string(), Rc::default());
                    None
                }
            });
            match slot {
                None => {
                    self.leads.borrow_mut().push(key.to_string());
                    return found;
                }
                Some(s) => {
                    let until = now().saturating_add(COLLAPSE_WAIT);
                    while !s.borrow().done && now() < until {
                        Delay::from(COLLAPSE_POLL).await;
                    }
                    waited = true;
                }
            }
        }
    }

    async fn cache_put(&self, key: &str, value: Vec<u8>, ttl: Duration) {
        with_isolate(|i| i.l1.put(key, value.clone(), ttl, now()));
        // the shared tiers are written after the answer: they only serve later requests
        let kv = self.kv.clone();
        let key = key.to_string();
        self.ctx.wait_until(async move {
            if let Some(kv) = kv {
                let put = kv
                    .put_bytes(&cache_kv_key(&key), &value)
                    .map(|p| p.expiration_ttl(ttl.as_secs().max(KV_MIN_TTL_S)));
                let r = match put {
                    Ok(p) => p.execute().await,
                    Err(e) => Err(e),
                };
                if let Err(e) = r {
                    crate::log_event("warn", &format!("cache write to KV failed: {e}"));
                }
            }
            if let (Some(cache), true) = (edge_cache(), ttl.as_secs() > 0) {
                let h = Headers::new();
                let _ = h.set("cache-control", &format!("max-age={}", ttl.as_secs()));
                let _ = h.set("content-type", "application/octet-stream");
                let resp = worker::ResponseBuilder::new().with_headers(h).fixed(value);
                if let Err(e) = cache.put(edge_url(&key), resp).await {
                    crate::log_event("warn", &format!("cache write to the Cache API failed: {e}"));
                }
            }
        });
    }

    fn cache_release(&self, key: &str) {
        let mut leads = self.leads.borrow_mut();
        if let Some(pos) = leads.iter().position(|k| k == key) {
            leads.remove(pos);
            release_lead(key);
        }
    }

    async fn read_body(&self, body: UpBody, cap: usize) -> Result<Vec<u8>, UpBody> {
        let mut resp = match body {
            UpBody::Bytes(b) if b.len() <= cap => return Ok(b),
            UpBody::Bytes(b) => return Err(UpBody::Bytes(b)),
            UpBody::Js(r) => r,
        };
        let declared = resp
            .headers()
            .get("content-length")
            .ok()
            .flatten()
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > cap as u64) {
            return Err(UpBody::Js(resp));
        }
        match resp.bytes().await {
            Ok(b) if b.len() <= cap => Ok(b),
            Ok(b) => Err(UpBody::Bytes(b)),
            // the body broke: the caller gets a short body, nothing is cached
            Err(_) => Err(UpBody::Bytes(Vec::new())),
        }
    }
}

/// Schedules a write of the state snapshot to KV when core counted a material change since
/// the last one: at most one write per [`WRITE_INTERVAL`] per isolate, done in `wait_until`
/// after the answer (a change is written within that interval even if no request follows).
pub fn write_behind(live: &Live, kv: Option<&KvStore>, ctx: &Context) {
    let Some(kv) = kv.cloned() else { return };
    let material = live.state.borrow().material;
    let schedule = with_isolate(|i| {
        if i.write_pending || material == i.saved_material {
            false
        } else {
            i.write_pending = true;
            true
        }
    });
    if !schedule {
        return;
    }
    ctx.wait_until(async move {
        let wait = with_isolate(|i| {
            i.saved_at.map_or(Duration::ZERO, |s| {
                s.saturating_add(WRITE_INTERVAL).saturating_since(now())
            })
        });
        if !wait.is_zero() {
            Delay::from(wait).await;
        }
        // the latest generation's state, as it is now
        let Some((material, bytes)) = with_isolate(|i| i.live.clone()).map(|l| {
            let s = l.state.borrow();
            (s.material, snapshot::encode(&l.router.config, &s))
        }) else {
            with_isolate(|i| i.write_pending = false);
            return;
        };
        let r = match kv.put_bytes(STATE_KEY, &bytes) {
            Ok(p) => p.execute().await,
            Err(e) => Err(e),
        };
        with_isolate(|i| {
            i.write_pending = false;
            i.saved_at = Some(now());
            if r.is_ok() {
                i.saved_material = material;
                i.writes += 1;
            }
        });
        if let Err(e) = r {
            crate::log_event("warn", &format!("state snapshot not written: {e}"));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Instant = Instant::from_secs(1_000);
    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn l1_evicts_the_least_recently_used_entry_to_stay_within_its_bound() {
        let mut l1 = L1::default();
        l1.set_capacity(30);
        l1.put("a", vec![0; 9], MIN, T0); // 10 bytes with the key
        l1.put("b", vec![0; 9], MIN, T0);
        l1.put("c", vec![0; 9], MIN, T0);
        assert!(l1.get("a", T0).is_some(), "touch a: b is now the oldest");
        l1.put("d", vec![0; 9], MIN, T0);
        assert_eq!(l1.stats(), (3, 30, 30));
        assert!(l1.get("b", T0).is_none());
        for k in ["a", "c", "d"] {
            assert!(l1.get(k, T0).is_some(), "{k}");
        }
    }

    #[test]
    fn l1_drops_expired_oversized_and_zero_ttl_entries() {
        let mut l1 = L1::default();
        l1.set_capacity(100);
        l1.put("old", vec![1], Duration::from_secs(5), T0);
        assert!(l1
            .get("old", T0.saturating_add(Duration::from_secs(4)))
            .is_some());
        assert!(l1
            .get("old", T0.saturating_add(Duration::from_secs(5)))
            .is_none());
        l1.put("big", vec![0; 200], MIN, T0);
        l1.put("none", vec![0; 1], Duration::ZERO, T0);
        assert_eq!(l1.stats(), (0, 0, 100));
        l1.put("k", vec![1, 2], MIN, T0);
        l1.put("k", vec![3], MIN, T0);
        assert_eq!(l1.get("k", T0), Some(vec![3]), "a put replaces");
        assert_eq!(l1.stats().1, 2);
    }

    #[test]
    fn l1_capacity_is_capped_for_isolate_memory() {
        let mut l1 = L1::default();
        l1.set_capacity(u64::MAX);
        assert_eq!(l1.stats().2, 32 << 20);
    }

    #[test]
    fn long_cache_keys_are_hashed_to_fit_kv() {
        assert_eq!(cache_kv_key("t:r:GET"), "mosaic:cache:t:r:GET");
        let long = "k".repeat(1000);
        let k = cache_kv_key(&long);
        assert!(
            k.starts_with("mosaic:cache:sha256:") && k.len() < 512,
            "{k}"
        );
        assert_ne!(cache_kv_key(&"k".repeat(999)), k);
    }

    #[test]
    fn only_failures_that_prove_nothing_was_sent_are_connect_errors() {
        let e = |m: &str| classify(&worker::Error::RustError(m.into()));
        assert_eq!(
            e("TypeError: fetch failed: connect ECONNREFUSED"),
            FetchError::Connect
        );
        assert_eq!(e("DNS lookup failed"), FetchError::Connect);
        assert_eq!(e("Network connection lost."), FetchError::Reset);
        assert_eq!(e("internal error"), FetchError::Reset);
    }
}
