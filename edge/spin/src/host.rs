//! [`SpinHost`]: the one [`AppHost`] of a Spin request — the WASI clocks, outbound HTTP through
//! spin-sdk (`wasi:http/outgoing-handler@0.2.0`), the key-value store
//! (`fermyon:spin/key-value@2.0.0`: state snapshot, cache tier, webhook KV, leases), and the
//! router and state of the request.
//!
//! Spin gives every request a fresh instance, so a [`SpinHost`] is the whole life of the
//! state: read from the store once when the request starts ([`crate::config::open`]) and
//! written back only when core counted a material change ([`SpinHost::save_state`]).

use core::cell::{Cell, OnceCell, RefCell};
use core::{fmt::Debug, future::Future, pin::Pin, task::Poll, time::Duration};

use futures::{Stream, StreamExt};
use mosaic_core::engine::{Attempt, FetchError};
use mosaic_core::tier::{self, Collapse, L1};
use mosaic_core::{admin::CacheStats, driver::UpstreamResponse, http::is_hop_by_hop};
use mosaic_core::{snapshot, target::is_private_host, time::Instant, Router, State};
use mosaic_providers::app::{AppHost, Platform, ReadError, Reloaded, Source};
use mosaic_providers::declarative::Registry;
use mosaic_providers::hooks::{HookHost, KvError, Post, PostError};
use spin_executor::{push_waker_and_get_token, CancelOnDropToken};
use spin_sdk::http::{ErrorCode, IncomingRequest, IncomingResponse, SendError};
use spin_sdk::key_value::Store;
use wasi::clocks::monotonic_clock;

/// The store kind shown by health and state.
pub const STORE_KIND: &str = "spin-kv";
pub use mosaic_providers::app::STATE_KEY;
/// Prefix of the markers that let one instance refresh a stale entry while others serve it.
pub const REFRESH_PREFIX: &str = "mosaic:refresh:";
/// How long a refresh marker holds off other refreshes of the same entry.
const REFRESH_LEASE: Duration = Duration::from_secs(30);
/// Upper bound of the instance's L1, whatever `server.cache_bytes` says.
pub const L1_MAX_BYTES: u64 = 32 << 20;
/// How often a collapsed miss looks whether the leader is done.
const COLLAPSE_POLL: Duration = Duration::from_millis(10);
/// First bytes of a value stored with a TTL (then 8 bytes of expiry in µs, little endian):
/// Spin's store has no TTL of its own.
pub const TTL_MAGIC: &[u8; 4] = b"MTTL";

/// The wall clock as core's [`Instant`] (µs since the Unix epoch).
#[must_use]
pub fn wall_now() -> Instant {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    Instant::from_micros(micros)
}

/// The KV key of the refresh lease of cache key `key`: its shared-tier key
/// ([`tier::store_key`]) under [`REFRESH_PREFIX`].
#[must_use]
pub fn refresh_key(key: &str) -> String {
    tier::store_key(key).replacen(tier::CACHE_PREFIX, REFRESH_PREFIX, 1)
}

type Chunks = Pin<Box<dyn Stream<Item = Result<Vec<u8>, wasi::io::streams::Error>>>>;

/// An upstream response body: possibly some bytes already read, then the rest of the stream
/// (with its response, dropped after the stream: dropping it first may cancel the exchange).
pub struct UpBody {
    head: Option<Vec<u8>>,
    rest: Option<(Chunks, IncomingResponse)>,
}

impl UpBody {
    /// The next chunk: `None` at the end, an error when the stream broke (the body is short).
    pub async fn next(&mut self) -> Option<Result<Vec<u8>, String>> {
        if let Some(h) = self.head.take() {
            return Some(Ok(h));
        }
        let next = self.rest.as_mut()?.0.next().await;
        next.map(|r| r.map_err(|e| e.to_debug_string()))
    }
}

/// Sleeps for `d`: a `wasi:clocks/monotonic-clock` pollable that spin-sdk's executor waits on.
pub async fn sleep(d: Duration) {
    let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    let until = monotonic_clock::now().saturating_add(ns);
    let mut _waiting: Option<CancelOnDropToken> = None;
    core::future::poll_fn(|cx| {
        if monotonic_clock::now() >= until {
            return Poll::Ready(());
        }
        let p = monotonic_clock::subscribe_instant(until);
        _waiting = Some(push_waker_and_get_token(p, cx.waker().clone()).into());
        Poll::Pending
    })
    .await;
}

/// Whichever of two futures finishes first (`Ok` = the first).
pub async fn race<A: Future, B: Future>(a: A, b: B) -> Result<A::Output, B::Output> {
    let mut a = core::pin::pin!(a);
    let mut b = core::pin::pin!(b);
    core::future::poll_fn(|cx| {
        if let Poll::Ready(v) = a.as_mut().poll(cx) {
            return Poll::Ready(Ok(v));
        }
        b.as_mut().poll(cx).map(Err)
    })
    .await
}

/// Maps a wasi:http error to core's failure classes, once, here.
fn classify_error(e: &ErrorCode) -> FetchError {
    use ErrorCode as E;
    use FetchError::{Connect, Forbidden, Reset, Timeout};
    match e {
        E::HttpRequestDenied | E::DestinationIpProhibited => Forbidden,
        E::ConnectionReadTimeout | E::ConnectionWriteTimeout | E::HttpResponseTimeout => Timeout,
        E::DnsTimeout | E::DnsError(_) | E::DestinationNotFound => Connect,
        E::DestinationUnavailable | E::DestinationIpUnroutable => Connect,
        E::ConnectionLimitReached | E::TlsProtocolError | E::TlsCertificateError => Connect,
        E::TlsAlertReceived(_) | E::HttpRequestMethodInvalid | E::HttpRequestUriInvalid => Connect,
        E::ConfigurationError | E::ConnectionRefused | E::ConnectionTimeout => Connect,
        _ => Reset,
    }
}

/// Sends one request through spin-sdk, raced against a `wasi:clocks` timer until `deadline`;
/// a failure as core's class and a message. IP literals and names core knows to be internal
/// are refused unless `allow_private`; names that *resolve* to private addresses are Spin's
/// `allowed_outbound_hosts` business.
async fn send_http(
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: &[u8],
    deadline: Instant,
    allow_private: bool,
) -> Result<IncomingResponse, (FetchError, String)> {
    let timeout = deadline.saturating_since(wall_now());
    if timeout.is_zero() {
        return Err((FetchError::Timeout, String::from("no time left")));
    }
    let uri: http::Uri =
        url.parse().map_err(|_| (FetchError::Connect, format!("{url} does not parse")))?;
    let host = uri.host().unwrap_or("").trim_start_matches('[').trim_end_matches(']');
    if !allow_private && is_private_host(host) {
        let why = format!("{host} is a private address and allow_private is not set");
        return Err((FetchError::Forbidden, why));
    }
    let mut req = http::Request::builder().method(method).uri(uri);
    for (n, v) in headers {
        // what a wasi:http client refuses to send (hop-by-hop, or set by the runtime)
        let refused = ["host", "content-length", "http2-settings"].iter();
        if !is_hop_by_hop(n, None) && !refused.clone().any(|f| n.eq_ignore_ascii_case(f)) {
            req = req.header(n.as_str(), v.as_str());
        }
    }
    let req = req.body(body.to_vec()).map_err(|e| (FetchError::Connect, e.to_string()))?;
    match race(spin_sdk::http::send::<_, IncomingResponse>(req), sleep(timeout)).await {
        Err(()) => Err((FetchError::Timeout, String::from("timed out"))),
        Ok(Ok(r)) => Ok(r),
        Ok(Err(SendError::Http(e))) => Err((classify_error(&e), format!("{e:?}"))),
        Ok(Err(e)) => Err((FetchError::Connect, e.to_string())),
    }
}

/// Splits a stored value into (expiry, value); values without the TTL header never expire.
#[must_use]
pub fn unwrap_ttl(v: &[u8]) -> (Option<Instant>, &[u8]) {
    match v.strip_prefix(TTL_MAGIC.as_slice()).and_then(<[u8]>::split_first_chunk::<8>) {
        Some((at, value)) => (Some(Instant::from_micros(u64::from_le_bytes(*at))), value),
        None => (None, v),
    }
}

/// The host of one request (and of the work that runs after its response).
pub struct SpinHost {
    /// The default key-value store, when it opened.
    pub store: Option<Store>,
    /// The router serving this request.
    pub router: Router,
    /// Where its config came from.
    pub source: Source,
    /// The config source's errors, when the last accepted config serves instead.
    pub rejected: Option<Vec<String>>,
    pub(crate) registry: Registry,
    pub(crate) installed: OnceCell<Registry>,
    pub(crate) state: RefCell<State>,
    pub(crate) saved: Cell<u64>,
    pub(crate) looked_up: RefCell<Option<String>>,
    /// The instance's in-memory tier in front of the store (core's [`L1`]).
    pub(crate) l1: RefCell<L1<Vec<u8>>>,
    /// Misses in flight in this instance (the request and its background refreshes).
    pub(crate) collapse: RefCell<Collapse>,
}

impl SpinHost {
    /// Writes the state back when core counted a material change since it was loaded or last
    /// saved. Concurrent instances: the last writer wins.
    pub async fn save_state(&self) {
        let (material, bytes) = {
            let s = self.state.borrow();
            (s.material, snapshot::encode(&self.router.config, &s))
        };
        let Some(store) = self.store.as_ref().filter(|_| material != self.saved.get()) else {
            return;
        };
        match store.set(STATE_KEY, &bytes) {
            Ok(()) => self.saved.set(material),
            Err(e) => crate::warn(&format!("state snapshot not written: {e:?}")),
        }
    }

    /// Takes the marker `key` for `period`: false when another instance holds an unexpired one
    /// (check-then-set, not atomic: Spin's store has no compare-and-swap, so two instances
    /// racing within a store round trip may both take it).
    pub async fn lease(&self, key: &str, period: Duration) -> bool {
        let Some(store) = &self.store else { return false };
        let now = wall_now();
        if let Ok(Some(v)) = store.get(key) {
            let until = core::str::from_utf8(&v).ok().and_then(|s| s.parse().ok());
            if Instant::from_micros(until.unwrap_or(0)) > now {
                return false;
            }
        }
        let until = now.saturating_add(period).as_micros().to_string();
        store.set(key, until.as_bytes()).is_ok()
    }

    /// The entry of `key` in L1, else in the store (then kept in L1 for [`tier::retention`]).
    async fn lookup(&self, key: &str) -> Option<Vec<u8>> {
        if let Some(v) = self.l1.borrow_mut().get(key, wall_now()) {
            return Some(v);
        }
        let got = self.kv_get(&tier::store_key(key)).await;
        let v = got.inspect_err(|e| crate::warn(&format!("cache read failed: {}", e.0))).ok()??;
        let now = wall_now();
        self.l1.borrow_mut().put(key, v.clone(), tier::retention(&v, now), now);
        Some(v)
    }

    fn kv(&self) -> Result<&Store, KvError> {
        self.store
            .as_ref()
            .ok_or_else(|| KvError(String::from("the key-value store `default` is unavailable")))
    }
}

/// Reads `s` into `buf` until its end (`Ok(true)`), past `cap` bytes (`Ok(false)`) or an error.
async fn read_upto<S, E>(s: &mut S, buf: &mut Vec<u8>, cap: usize) -> Result<bool, String>
where
    S: Stream<Item = Result<Vec<u8>, E>> + Unpin,
    E: Debug,
{
    while buf.len() <= cap {
        match s.next().await {
            None => return Ok(true),
            Some(Ok(chunk)) => buf.extend_from_slice(&chunk),
            Some(Err(e)) => return Err(format!("{e:?}")),
        }
    }
    Ok(false)
}

/// wasi:http header entries as core's header list (values not UTF-8 are read lossily).
#[must_use]
pub fn header_list(entries: Vec<(String, Vec<u8>)>) -> Vec<(String, String)> {
    entries.into_iter().map(|(n, v)| (n, String::from_utf8_lossy(&v).into_owned())).collect()
}

/// Reads `key`, `None` when missing or unreadable (a warning then).
pub fn get(store: Option<&Store>, key: &str) -> Option<Vec<u8>> {
    let got = store?.get(key);
    got.inspect_err(|e| crate::warn(&format!("cannot read `{key}`: {e:?}"))).ok().flatten()
}

fn kv_error(e: &spin_sdk::key_value::Error) -> KvError {
    KvError(format!("{e:?}"))
}

impl HookHost for SpinHost {
    fn now(&self) -> Instant {
        wall_now()
    }

    async fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let store = self.kv()?;
        let Some(v) = store.get(key).map_err(|e| kv_error(&e))? else {
            return Ok(None);
        };
        match unwrap_ttl(&v) {
            (Some(until), _) if until <= wall_now() => {
                let _ = store.delete(key);
                Ok(None)
            }
            (_, value) => Ok(Some(value.to_vec())),
        }
    }

    async fn kv_put(&self, key: &str, v: Vec<u8>, ttl: Option<Duration>) -> Result<(), KvError> {
        let bytes = match ttl {
            None => v,
            Some(ttl) => {
                let until = wall_now().saturating_add(ttl).as_micros();
                [&TTL_MAGIC[..], &until.to_le_bytes(), &v].concat()
            }
        };
        self.kv()?.set(key, &bytes).map_err(|e| kv_error(&e))
    }

    async fn kv_delete(&self, key: &str) -> Result<(), KvError> {
        self.kv()?.delete(key).map_err(|e| kv_error(&e))
    }

    async fn kv_list(&self, prefix: &str) -> Result<Vec<String>, KvError> {
        let keys = self.kv()?.get_keys().map_err(|e| kv_error(&e))?;
        Ok(keys.into_iter().filter(|k| k.starts_with(prefix)).collect())
    }

    async fn post(&self, p: &Post<'_>) -> Result<u16, PostError> {
        let (url, headers, body) = (p.url, p.headers, p.body);
        match send_http("POST", url, headers, body, p.deadline, p.allow_private).await {
            Ok(resp) => Ok(resp.status()),
            Err((FetchError::Forbidden, m)) => Err(PostError::Refused(m)),
            Err((FetchError::Timeout, _)) => Err(PostError::Timeout),
            Err((_, m)) => Err(PostError::Network(m)),
        }
    }

    async fn sleep_until(&self, t: Instant) {
        sleep(t.saturating_since(wall_now())).await;
    }
}

impl AppHost for SpinHost {
    type In = IncomingRequest;
    type Body = UpBody;

    fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.borrow_mut())
    }

    async fn cache_get(&self, key: &str) -> Option<Vec<u8>> {
        *self.looked_up.borrow_mut() = Some(key.to_string());
        let (found, _leads) = tier::collapsed_get(
            wall_now,
            || self.lookup(key),
            |t| self.collapse.borrow_mut().join(key, t),
            |t| self.collapse.borrow().in_flight(key, t),
            || sleep(COLLAPSE_POLL),
        )
        .await;
        found
    }

    async fn cache_put(&self, key: &str, value: Vec<u8>, ttl: Duration) {
        self.l1.borrow_mut().put(key, value.clone(), ttl, wall_now());
        if let Err(e) = self.kv_put(&tier::store_key(key), value, Some(ttl)).await {
            crate::warn(&format!("cache write failed: {}", e.0));
        }
    }

    fn cache_release(&self, key: &str) {
        self.collapse.borrow_mut().release(key);
    }

    async fn read_body(&self, mut body: UpBody, cap: usize) -> Result<Vec<u8>, UpBody> {
        let mut buf = body.head.take().unwrap_or_default();
        let ended = match &mut body.rest {
            Some((chunks, _)) => read_upto(chunks, &mut buf, cap).await,
            None => Ok(true),
        };
        if ended == Ok(true) {
            return Ok(buf);
        }
        // past the cap, or a broken stream (the caller then sees a short body): hand back
        // what was read and the rest
        if ended.is_err() {
            body.rest = None;
        }
        body.head = (!buf.is_empty()).then_some(buf);
        Err(body)
    }

    async fn read_in(&self, body: IncomingRequest, cap: u64) -> Result<Vec<u8>, ReadError> {
        // bodies are buffered (bounded): failover may need to resend them
        let mut chunks = core::pin::pin!(body.into_body_stream());
        let mut buf = Vec::new();
        match read_upto(&mut chunks, &mut buf, usize::try_from(cap).unwrap_or(usize::MAX)).await {
            Ok(true) => Ok(buf),
            Ok(false) => Err(ReadError::TooLarge),
            Err(e) => Err(ReadError::Failed(e)),
        }
    }

    async fn send(&self, a: &Attempt, body: &[u8]) -> Result<UpstreamResponse<UpBody>, FetchError> {
        let resp =
            send_http(a.method.as_str(), &a.url, &a.headers, body, a.deadline, a.allow_private)
                .await
                .map_err(|(kind, _)| kind)?;
        let chunks: Chunks = Box::pin(resp.take_body_stream());
        Ok(UpstreamResponse {
            status: resp.status(),
            headers: header_list(resp.headers().entries()),
            body: UpBody { head: None, rest: Some((chunks, resp)) },
        })
    }

    fn platform(&self) -> Platform {
        let (entries, bytes, capacity_bytes) = self.l1.borrow().stats();
        let (store, collapsed) = (STORE_KIND.into(), self.collapse.borrow().collapsed);
        let cache = CacheStats { entries, bytes, capacity_bytes, store, collapsed };
        Platform {
            store: STORE_KIND,
            ready: self.store.is_some(),
            cache,
            extra: [("config".into(), self.source.name().into())].into_iter().collect(),
            metrics: String::new(),
        }
    }

    /// Spin re-reads the source on every request, so a reload validates it (this request
    /// did) and records it as the last accepted config ([`GOOD_KEY`]), which serves whenever
    /// the source is invalid later.
    async fn reload(&self) -> Result<Reloaded, Vec<String>> {
        // the application's lifecycle, forced: the source read again, an accepted text
        // remembered as the last good one
        let store =
            Store::open_default().map_err(|e| vec![format!("no key-value store: {e:?}")])?;
        let fresh = crate::config::open(Some(store), true).await?;
        if let Some(errors) = fresh.rejected {
            return Err(errors);
        }
        let (source, warnings) = (fresh.source.name(), fresh.router.warnings.clone());
        Ok(Reloaded { generation: 1, source, warnings })
    }

    fn registry(&self) -> &Registry {
        self.installed.get().unwrap_or(&self.registry)
    }

    /// The next request loads the stored set from KV anyway; this instance answers with it.
    async fn install_registry(&self, registry: Registry) {
        let _ = self.installed.set(registry);
    }

    async fn claim_refresh(&self, key: &str) -> bool {
        self.lease(&refresh_key(key), REFRESH_LEASE).await
    }

    async fn release_refresh(&self, key: &str) {
        let _ = self.kv_delete(&refresh_key(key)).await;
    }

    fn looked_up(&self) -> Option<String> {
        self.looked_up.borrow().clone()
    }
}
