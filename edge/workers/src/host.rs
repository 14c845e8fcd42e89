//! [`WorkersHost`]: the one [`AppHost`] of Workers — `Date::now()`, `fetch` with an abort
//! timeout, the isolate's router state, three cache tiers, Workers KV.
//!
//! State that outlives a request lives in isolate memory ([`Isolate`], one per isolate,
//! single-threaded): the configuration generation in force ([`Live`]: router, state, provider
//! registry), the L1 cache, the misses being fetched, the refreshes running, and the
//! write-behind bookkeeping. A [`WorkersHost`] is one request's (or one background job's)
//! view of it.
//!
//! Cache tiers, with core's policy ([`tier`]: the L1 bound, retention, keys, miss collapsing):
//! L1 isolate memory, L2 Workers KV (entries with a TTL of at least 60 s, as KV requires), L3
//! the Cache API of the colo when the runtime has one (`caches.default`; guarded, so a runtime
//! without it only loses that tier).

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::pin::pin;
use std::rc::Rc;
use std::time::Duration;

use futures_util::future::{select, Either};
use mosaic_core::admin::CacheStats;
use mosaic_core::driver::UpstreamResponse;
use mosaic_core::engine::{Attempt, FetchError};
use mosaic_core::target::is_private_host;
use mosaic_core::tier::{self, L1};
use mosaic_core::time::Instant;
use mosaic_core::{snapshot, Router, State};
use mosaic_providers::app::{
    AppHost, Lifecycle, Platform, ReadError, Reloaded, Source, WriteBehind,
};
use mosaic_providers::declarative::Registry;
use mosaic_providers::hooks::{HookHost, KvError, Post, PostError};
use wasm_bindgen::JsValue;
use worker::js_sys::{self, Reflect, Uint8Array};
use worker::{AbortController, Cache, Context, Date, Delay, Env, Fetch, Headers, KvStore};
use worker::{Method, Request, RequestInit, RequestRedirect, Response, ResponseBuilder};

use crate::{config, warn};

/// KV binding name.
pub const KV_BINDING: &str = "MOSAIC_KV";
pub use mosaic_providers::app::STATE_KEY;
/// The store kind shown by health and state.
pub const STORE_KIND: &str = "workers-kv";
/// Shortest TTL KV accepts.
const KV_MIN_TTL: Duration = Duration::from_secs(60);
/// How often a collapsed miss checks whether the leader is done.
const COLLAPSE_POLL: Duration = Duration::from_millis(10);
/// At most one snapshot write per isolate this often (KV allows ~1 write/s per key).
pub const WRITE_INTERVAL: Duration = Duration::from_secs(5);
/// Upper bound of the L1 cache, whatever `server.cache_bytes` says (isolates have 128 MB).
pub const L1_MAX_BYTES: u64 = 32 << 20;

/// The clock: `Date::now()`, read fresh on every call (it only advances across I/O).
#[must_use]
pub fn now() -> Instant {
    Instant::from_millis(Date::now().as_millis())
}

/// 64 random bits from `Math.random` (seeds, jitter and request ids, never secrets).
#[must_use]
pub fn random_u64() -> u64 {
    let half = || (js_sys::Math::random() * 4_294_967_296.0) as u64;
    (half() << 32) ^ half() ^ Date::now().as_millis()
}

async fn sleep_until(t: Instant) {
    let d = t.saturating_since(now());
    if !d.is_zero() {
        Delay::from(d).await;
    }
}

/// One configuration generation: the router, its state and the plugins it was built with.
pub struct Live {
    /// The router (immutable).
    pub router: Router,
    /// Its state, shared by the isolate's requests.
    pub state: RefCell<State>,
    /// The provider plugins in force (built-ins and the declarations of `providers`).
    pub registry: Registry,
    /// The config text it was built from.
    pub text: String,
    /// Where the text came from.
    pub source: Source,
    /// 1, then +1 per rebuild.
    pub generation: u64,
}

/// Everything an isolate keeps between requests.
#[derive(Default)]
pub struct Isolate {
    /// The current configuration generation.
    pub live: Option<Rc<Live>>,
    /// The config lifecycle (when the sources were read, what serves, what was refused).
    pub lifecycle: Lifecycle,
    /// The L1 cache (made when the first router is built, sized by `server.cache_bytes`).
    pub l1: Option<L1<Vec<u8>>>,
    /// Misses being fetched. Waiters look at it with their own timer rather than being woken
    /// by the leader: a future woken from another request's handler would continue in that
    /// request's I/O context, which workerd refuses ("Cannot perform I/O on behalf of a
    /// different request").
    pub collapse: tier::Collapse,
    /// Keys being refreshed in the background.
    pub revalidating: BTreeSet<String>,
    /// Hits per tier: isolate memory, Workers KV, Cache API.
    pub hits: [u64; 3],
    /// The state snapshot's write-behind.
    pub writes: WriteBehind,
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

/// The colo's cache (when this runtime has `caches.default`) and the URL of entry `key` in it.
fn edge_cache(key: &str) -> Option<(Cache, String)> {
    let caches = Reflect::get(&js_sys::global(), &JsValue::from_str("caches")).ok()?;
    let default = Reflect::get(&caches, &JsValue::from_str("default")).ok()?;
    let hex: String = tier::store_key(key).bytes().map(|b| format!("{b:02x}")).collect();
    let url = format!("https://mosaic-cache.invalid/{hex}");
    (caches.is_object() && default.is_object()).then(|| (Cache::default(), url))
}

fn kv_err(e: impl std::fmt::Display) -> KvError {
    KvError(e.to_string())
}

fn bound(kv: Option<&KvStore>) -> Result<&KvStore, KvError> {
    kv.ok_or_else(|| KvError(format!("the KV binding `{KV_BINDING}` is unavailable")))
}

/// Reads KV key `key`.
///
/// # Errors
/// When there is no binding or KV fails.
pub async fn kv_get(kv: Option<&KvStore>, key: &str) -> Result<Option<Vec<u8>>, KvError> {
    bound(kv)?.get(key).bytes().await.map_err(kv_err)
}

/// Writes KV key `key`, expiring after `ttl` (at least the 60 s KV requires) if given.
///
/// # Errors
/// When there is no binding or KV fails.
pub async fn kv_put(
    kv: Option<&KvStore>,
    key: &str,
    v: &[u8],
    ttl: Option<Duration>,
) -> Result<(), KvError> {
    let mut put = bound(kv)?.put_bytes(key, v).map_err(kv_err)?;
    if let Some(t) = ttl {
        put = put.expiration_ttl(t.max(KV_MIN_TTL).as_secs());
    }
    put.execute().await.map_err(kv_err)
}

/// Sends one request until `deadline`. What fails comes back as core's kind, as it is: a URL
/// or request the runtime refuses to build was never sent (`Connect`), a private address the
/// caller does not allow is `Forbidden`, the deadline `Timeout`. A failed `fetch` is `Reset`,
/// core's kind for "may have been sent": workerd reports a refused connection and one that
/// broke after the request went out with the same error, so the host cannot tell them apart
/// and core's idempotency rule decides what is retried. The text is the runtime's, for logs.
async fn send(
    method: Method,
    url: &str,
    headers: &[(String, String)],
    body: Option<&[u8]>,
    allow_private: bool,
    deadline: Instant,
) -> Result<Response, (FetchError, String)> {
    let unsent = |e: &dyn std::fmt::Display| {
        (FetchError::Connect, format!("the request could not be built: {e}"))
    };
    let url = worker::Url::parse(url).map_err(|e| unsent(&e))?;
    let host = url.host_str().unwrap_or("").trim_start_matches('[').trim_end_matches(']');
    if !allow_private && is_private_host(host) {
        return Err((
            FetchError::Forbidden,
            format!("{host} is a private address and private addresses are not allowed"),
        ));
    }
    let h = Headers::new();
    for (n, v) in headers {
        let _ = h.append(n, v);
    }
    let mut init = RequestInit::new();
    init.with_method(method).with_headers(h).with_redirect(RequestRedirect::Manual);
    if let Some(b) = body.filter(|b| !b.is_empty()) {
        init.with_body(Some(Uint8Array::from(b).into()));
    }
    let req = Request::new_with_init(url.as_str(), &init).map_err(|e| unsent(&e))?;
    let controller = AbortController::default();
    let signal = controller.signal();
    let fetch = Fetch::Request(req);
    let sent = pin!(fetch.send_with_signal(&signal));
    match select(sent, pin!(sleep_until(deadline))).await {
        Either::Left((r, _)) => r.map_err(|e| (FetchError::Reset, e.to_string())),
        Either::Right(((), _)) => {
            controller.abort();
            Err((FetchError::Timeout, String::from("timed out")))
        }
    }
}

/// An upstream body: the runtime's response, or bytes already read.
pub enum UpBody {
    /// Not read yet.
    Js(Response),
    /// Read (too large to cache, or the stream broke).
    Bytes(Vec<u8>),
}

/// The one host of Workers: a request's (or a background job's) view of the isolate.
pub struct WorkersHost {
    /// The configuration generation it serves with.
    pub live: Rc<Live>,
    env: Env,
    kv: Option<KvStore>,
    /// `None` in the Cron Trigger: cache writes are then awaited instead of `wait_until`.
    ctx: Option<Rc<Context>>,
    /// The misses this host leads (released when it is dropped at the latest).
    leads: RefCell<Vec<String>>,
    looked_up: RefCell<Option<String>>,
}

impl WorkersHost {
    /// A host serving with `live`.
    #[must_use]
    pub fn new(live: Rc<Live>, env: &Env, kv: Option<KvStore>, ctx: Option<Rc<Context>>) -> Self {
        let (env, leads, looked_up) = (env.clone(), RefCell::default(), RefCell::default());
        WorkersHost { live, env, kv, ctx, leads, looked_up }
    }

    /// The entry of `key` in the first tier that has it; an entry from KV or the Cache API is
    /// kept in L1 as long as core may still use it.
    async fn lookup(&self, key: &str) -> Option<Vec<u8>> {
        let (v, at) = self.tier(key).await?;
        with_isolate(|i| {
            i.hits[at] += 1;
            if let (Some(l1), true) = (&mut i.l1, at > 0) {
                l1.put(key, v.clone(), tier::retention(&v, now()), now());
            }
        });
        Some(v)
    }

    async fn tier(&self, key: &str) -> Option<(Vec<u8>, usize)> {
        if let Some(v) = with_isolate(|i| i.l1.as_mut()?.get(key, now())) {
            return Some((v, 0));
        }
        match kv_get(self.kv.as_ref(), &tier::store_key(key)).await {
            Ok(Some(v)) => return Some((v, 1)),
            Err(e) if self.kv.is_some() => warn(&format!("cache read from KV failed: {e}")),
            _ => {}
        }
        let (cache, url) = edge_cache(key)?;
        Some((cache.get(url, false).await.ok()??.bytes().await.ok()?, 2))
    }
}

impl Drop for WorkersHost {
    fn drop(&mut self) {
        let leads = self.leads.take();
        with_isolate(|i| leads.iter().for_each(|k| i.collapse.release(k)));
    }
}

impl HookHost for WorkersHost {
    fn now(&self) -> Instant {
        now()
    }

    async fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        kv_get(self.kv.as_ref(), key).await
    }

    async fn kv_put(&self, key: &str, v: Vec<u8>, ttl: Option<Duration>) -> Result<(), KvError> {
        kv_put(self.kv.as_ref(), key, &v, ttl).await
    }

    async fn kv_delete(&self, key: &str) -> Result<(), KvError> {
        bound(self.kv.as_ref())?.delete(key).await.map_err(kv_err)
    }

    async fn kv_list(&self, prefix: &str) -> Result<Vec<String>, KvError> {
        let (kv, mut keys, mut cursor) = (bound(self.kv.as_ref())?, Vec::new(), None);
        loop {
            let list = kv.list().prefix(prefix.to_string());
            let list = match cursor.take() {
                Some(c) => list.cursor(c),
                None => list,
            };
            let page = list.execute().await.map_err(kv_err)?;
            keys.extend(page.keys.into_iter().map(|k| k.name));
            match page.cursor {
                Some(c) if !page.list_complete && !c.is_empty() => cursor = Some(c),
                _ => return Ok(keys),
            }
        }
    }

    async fn post(&self, p: &Post<'_>) -> Result<u16, PostError> {
        let (headers, deadline) = (p.headers, p.deadline);
        match send(Method::Post, p.url, headers, Some(p.body), p.allow_private, deadline).await {
            Ok(mut resp) => {
                // drained (within the deadline) so the connection can be reused
                let _ = select(pin!(resp.bytes()), pin!(sleep_until(deadline))).await;
                Ok(resp.status_code())
            }
            Err((FetchError::Timeout, _)) => Err(PostError::Timeout),
            Err((FetchError::Reset, m)) => Err(PostError::Network(m)),
            Err((_, m)) => Err(PostError::Refused(m)),
        }
    }

    async fn sleep_until(&self, t: Instant) {
        sleep_until(t).await;
    }
}

impl AppHost for WorkersHost {
    type In = Request;
    type Body = UpBody;

    async fn read_in(&self, mut body: Request, cap: u64) -> Result<Vec<u8>, ReadError> {
        let b = body.bytes().await.map_err(|e| ReadError::Failed(e.to_string()))?;
        if b.len() as u64 > cap {
            return Err(ReadError::TooLarge);
        }
        Ok(b)
    }

    async fn send(&self, a: &Attempt, body: &[u8]) -> Result<UpstreamResponse<UpBody>, FetchError> {
        let method = Method::from(a.method.as_str().to_string());
        let body = (!matches!(method, Method::Get | Method::Head)).then_some(body);
        let resp = send(method, &a.url, &a.headers, body, a.allow_private, a.deadline).await;
        let resp = resp.map_err(|(kind, _)| kind)?;
        let (status, headers) = (resp.status_code(), resp.headers().entries().collect());
        Ok(UpstreamResponse { status, headers, body: UpBody::Js(resp) })
    }

    fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.live.state.borrow_mut())
    }

    async fn cache_get(&self, key: &str) -> Option<Vec<u8>> {
        *self.looked_up.borrow_mut() = Some(key.to_string());
        let (found, leads) = tier::collapsed_get(
            now,
            || self.lookup(key),
            |t| with_isolate(|i| i.collapse.join(key, t)),
            |t| with_isolate(|i| i.collapse.in_flight(key, t)),
            || Delay::from(COLLAPSE_POLL),
        )
        .await;
        if leads {
            self.leads.borrow_mut().push(key.to_string());
        }
        found
    }

    async fn cache_put(&self, key: &str, value: Vec<u8>, ttl: Duration) {
        with_isolate(|i| i.l1.as_mut().map(|l1| l1.put(key, value.clone(), ttl, now())));
        // the shared tiers only serve later requests: written after the answer
        let (kv, key) = (self.kv.clone(), key.to_string());
        let write = async move {
            let r = kv_put(kv.as_ref(), &tier::store_key(&key), &value, Some(ttl)).await;
            if let (Some(_), Err(e)) = (&kv, r) {
                warn(&format!("cache write to KV failed: {e}"));
            }
            if let (Some((cache, url)), true) = (edge_cache(&key), ttl.as_secs() > 0) {
                let h = Headers::new();
                let _ = h.set("cache-control", &format!("max-age={}", ttl.as_secs()));
                if let Err(e) =
                    cache.put(url, ResponseBuilder::new().with_headers(h).fixed(value)).await
                {
                    warn(&format!("cache write to the Cache API failed: {e}"));
                }
            }
        };
        match &self.ctx {
            Some(ctx) => ctx.wait_until(write),
            None => write.await,
        }
    }

    fn cache_release(&self, key: &str) {
        let mut leads = self.leads.borrow_mut();
        if let Some(pos) = leads.iter().position(|k| k == key) {
            leads.remove(pos);
            with_isolate(|i| i.collapse.release(key));
        }
    }

    async fn read_body(&self, body: UpBody, cap: usize) -> Result<Vec<u8>, UpBody> {
        let mut resp = match body {
            UpBody::Bytes(b) if b.len() <= cap => return Ok(b),
            UpBody::Bytes(b) => return Err(UpBody::Bytes(b)),
            UpBody::Js(r) => r,
        };
        let declared = resp.headers().get("content-length").ok().flatten();
        if declared.and_then(|v| v.trim().parse::<u64>().ok()).is_some_and(|n| n > cap as u64) {
            return Err(UpBody::Js(resp));
        }
        match resp.bytes().await {
            Ok(b) if b.len() <= cap => Ok(b),
            Ok(b) => Err(UpBody::Bytes(b)),
            // the body broke: the caller gets a short body, nothing is cached
            Err(_) => Err(UpBody::Bytes(Vec::new())),
        }
    }

    fn platform(&self) -> Platform {
        let material = self.live.state.borrow().material;
        let (cache, isolate) = with_isolate(|i| {
            let (entries, bytes, capacity_bytes) = i.l1.as_ref().map_or((0, 0, 0), L1::stats);
            let (store, collapsed) = (STORE_KIND.to_string(), i.collapse.collapsed);
            let isolate = serde_json::json!({
                "tiers": { "l1_hits": i.hits[0], "kv_hits": i.hits[1], "edge_cache_hits": i.hits[2] },
                "snapshot": {
                    "material": material,
                    "saved_material": i.writes.saved_material(),
                    "write_pending": i.writes.pending(),
                    "writes": i.writes.writes(),
                    "restored_at_start": i.restored,
                },
            });
            (CacheStats { entries, bytes, capacity_bytes, store, collapsed }, isolate)
        });
        let mut extra = serde_json::Map::new();
        extra.insert("config".into(), self.live.source.name().into());
        extra.insert("isolate".into(), isolate);
        Platform {
            store: STORE_KIND,
            ready: self.kv.is_some(),
            cache,
            extra,
            metrics: String::new(),
        }
    }

    async fn reload(&self) -> Result<Reloaded, Vec<String>> {
        let l = config::current(&self.env, self.kv.as_ref(), true).await?;
        if let Some(errors) = with_isolate(|i| i.lifecycle.refused().map(<[String]>::to_vec)) {
            return Err(errors);
        }
        let (generation, source) = (l.generation, l.source.name());
        Ok(Reloaded { generation, source, warnings: l.router.warnings.clone() })
    }

    fn registry(&self) -> &Registry {
        &self.live.registry
    }

    async fn install_registry(&self, registry: Registry) {
        config::install_registry(&self.env, self.kv.as_ref(), registry).await;
    }

    async fn claim_refresh(&self, key: &str) -> bool {
        with_isolate(|i| i.revalidating.insert(key.to_string()))
    }

    async fn release_refresh(&self, key: &str) {
        with_isolate(|i| i.revalidating.remove(key));
    }

    fn looked_up(&self) -> Option<String> {
        self.looked_up.borrow().clone()
    }
}

/// Schedules a write of the state snapshot to KV when [`WriteBehind`] says so (core counted a
/// material change; at most one write per [`WRITE_INTERVAL`] per isolate), done in
/// `wait_until` after the answer.
pub fn write_behind(live: &Live, kv: Option<&KvStore>, ctx: &Context) {
    let (Some(kv), material) = (kv.cloned(), live.state.borrow().material) else {
        return;
    };
    let Some(at) = with_isolate(|i| i.writes.schedule(material, now(), WRITE_INTERVAL)) else {
        return;
    };
    ctx.wait_until(async move {
        sleep_until(at).await;
        // the latest generation's state, as it is now
        let Some(l) = with_isolate(|i| i.live.clone()) else {
            return;
        };
        let material = l.state.borrow().material;
        let bytes = snapshot::encode(&l.router.config, &l.state.borrow());
        let r = kv_put(Some(&kv), STATE_KEY, &bytes, None).await;
        with_isolate(|i| i.writes.written(material, r.is_ok(), now()));
        if let Err(e) = r {
            warn(&format!("state snapshot not written: {e}"));
        }
    });
}
