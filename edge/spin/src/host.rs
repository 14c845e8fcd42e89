//! `mosaic_core::driver::Host` for one Spin request: the WASI clocks, outbound HTTP through
//! spin-sdk, the router state held for the request, and the cache in the key-value store.
//!
//! Spin gives every request a fresh instance, so a [`SpinHost`] is the whole life of the
//! state: it is read from the store once when the request starts ([`SpinHost::load_state`])
//! and written back once at the end, only when core counted a material change
//! ([`SpinHost::save_state`]).

use core::cell::{Cell, RefCell};
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use mosaic_core::cache::{Entry, Freshness};
use mosaic_core::driver::{Host, UpstreamResponse};
use mosaic_core::engine::{Attempt, FetchError};
use mosaic_core::target::is_private_host;
use mosaic_core::time::Instant;
use mosaic_core::{snapshot, Config, State};
use sha2::{Digest, Sha256};
use spin_sdk::key_value::Store;
use spin_sdk::wasip3::http::types::ErrorCode;
use spin_sdk::wasip3::http_compat::IncomingResponseBody;

/// KV key of the state snapshot.
pub const STATE_KEY: &str = "mosaic:state";
/// Prefix of cache entries in the KV store.
pub const CACHE_PREFIX: &str = "mosaic:cache:";
/// Prefix of the markers that let one instance refresh a stale entry while others serve it.
pub const REFRESH_PREFIX: &str = "mosaic:refresh:";
/// How long a refresh marker holds off other refreshes of the same entry.
const REFRESH_LEASE: Duration = Duration::from_secs(30);
/// Keys longer than this are stored under a hash (Spin limits keys to 255 bytes).
const MAX_PLAIN_KEY: usize = 200;

/// The wall clock as core's [`Instant`] (µs since the Unix epoch).
#[must_use]
pub fn wall_now() -> Instant {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    Instant::from_micros(micros)
}

/// The KV key of cache entry `key`: plain when short, else a SHA-256 of it.
#[must_use]
pub fn cache_kv_key(key: &str) -> String {
    if key.len() <= MAX_PLAIN_KEY {
        format!("{CACHE_PREFIX}{key}")
    } else {
        let d = Sha256::digest(key.as_bytes());
        let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
        format!("{CACHE_PREFIX}sha256:{hex}")
    }
}

/// The KV key of the refresh marker of cache entry `key`.
fn refresh_kv_key(key: &str) -> String {
    cache_kv_key(key).replacen(CACHE_PREFIX, REFRESH_PREFIX, 1)
}

/// An upstream response body: possibly some bytes already read, then the rest of the stream.
pub struct UpBody {
    head: Option<Bytes>,
    rest: Option<IncomingResponseBody>,
}

impl Body for UpBody {
    type Data = Bytes;
    type Error = ErrorCode;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ErrorCode>>> {
        if let Some(h) = self.head.take() {
            if !h.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(h))));
            }
        }
        match self.rest.as_mut() {
            Some(r) => Pin::new(r).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.head.as_ref().is_none_or(Bytes::is_empty)
            && self.rest.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        let head = self.head.as_ref().map_or(0, |h| h.len() as u64);
        let mut hint = self.rest.as_ref().map_or_else(
            || SizeHint::with_exact(0),
            |r| {
                let mut h = SizeHint::new();
                h.set_lower(r.size_hint().lower());
                if let Some(u) = r.size_hint().upper() {
                    h.set_upper(u);
                }
                h
            },
        );
        hint.set_lower(hint.lower().saturating_add(head));
        if let Some(u) = hint.upper() {
            hint.set_upper(u.saturating_add(head));
        }
        hint
    }
}

/// Whichever of two futures finishes first (`Ok` = the first).
pub(crate) async fn race<A: Future, B: Future>(a: A, b: B) -> Result<A::Output, B::Output> {
    let mut a = core::pin::pin!(a);
    let mut b = core::pin::pin!(b);
    core::future::poll_fn(|cx| {
        if let Poll::Ready(v) = a.as_mut().poll(cx) {
            return Poll::Ready(Ok(v));
        }
        if let Poll::Ready(v) = b.as_mut().poll(cx) {
            return Poll::Ready(Err(v));
        }
        Poll::Pending
    })
    .await
}

/// Headers a wasi:http client refuses to send (hop-by-hop, or set by the runtime).
pub(crate) fn forbidden_outbound(name: &str) -> bool {
    [
        "host",
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "upgrade",
        "http2-settings",
        "content-length",
    ]
    .iter()
    .any(|f| name.eq_ignore_ascii_case(f))
}

/// Maps a wasi:http error to core's failure classes, once, here.
pub(crate) fn classify_error(e: &ErrorCode) -> FetchError {
    match e {
        ErrorCode::HttpRequestDenied | ErrorCode::DestinationIpProhibited => FetchError::Forbidden,
        ErrorCode::DnsTimeout
        | ErrorCode::DnsError(_)
        | ErrorCode::DestinationNotFound
        | ErrorCode::DestinationUnavailable
        | ErrorCode::DestinationIpUnroutable
        | ErrorCode::ConnectionRefused
        | ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionLimitReached
        | ErrorCode::TlsProtocolError
        | ErrorCode::TlsCertificateError
        | ErrorCode::TlsAlertReceived(_)
        | ErrorCode::HttpRequestMethodInvalid
        | ErrorCode::HttpRequestUriInvalid
        | ErrorCode::ConfigurationError => FetchError::Connect,
        ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout
        | ErrorCode::HttpResponseTimeout => FetchError::Timeout,
        _ => FetchError::Reset,
    }
}

/// The host of one request (and of its background refresh, if any).
pub struct SpinHost {
    state: RefCell<State>,
    /// The default key-value store, when it opened.
    pub store: Option<Store>,
    /// Whether every store operation so far succeeded (readiness).
    pub store_ok: Cell<bool>,
    body: Bytes,
    saved_material: Cell<u64>,
    looked_up: RefCell<Option<String>>,
}

impl SpinHost {
    /// A host holding `state`, the store and the (buffered) request body.
    #[must_use]
    pub fn new(state: State, store: Option<Store>, body: Bytes) -> SpinHost {
        let material = state.material;
        SpinHost {
            state: RefCell::new(state),
            store_ok: Cell::new(store.is_some()),
            store,
            body,
            saved_material: Cell::new(material),
            looked_up: RefCell::new(None),
        }
    }

    /// The cache key this request looked up, if any.
    #[must_use]
    pub fn looked_up(&self) -> Option<String> {
        self.looked_up.borrow().clone()
    }

    /// Takes the marker that makes this instance the one refreshing stale entry `key`: false
    /// when another instance holds an unexpired one (check-then-set, not atomic: Spin's store
    /// has no compare-and-swap, so two instances racing within a store round trip may both
    /// refresh).
    pub async fn take_refresh_lease(&self, key: &str) -> bool {
        let Some(store) = &self.store else {
            return false;
        };
        let k = refresh_kv_key(key);
        let now = wall_now();
        if let Ok(Some(v)) = store.get(&k).await {
            let until = core::str::from_utf8(&v)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(0);
            if Instant::from_micros(until) > now {
                return false;
            }
        }
        let until = now.saturating_add(REFRESH_LEASE).as_micros().to_string();
        store.set(&k, until.as_bytes()).await.is_ok()
    }

    /// Drops the refresh marker of `key`.
    pub async fn release_refresh_lease(&self, key: &str) {
        if let Some(store) = &self.store {
            let _ = store.delete(refresh_kv_key(key)).await;
        }
    }

    /// Fresh state for `config`, restored from the store's snapshot when there is a readable one
    /// (a missing, garbage or foreign snapshot means starting fresh).
    pub async fn load_state(config: &Config, store: Option<&Store>, seed: u64) -> State {
        let mut state = State::new(config, seed);
        if let Some(s) = store {
            match s.get(STATE_KEY).await {
                Ok(Some(bytes)) => {
                    if let Err(e) = snapshot::decode_into(config, &mut state, &bytes) {
                        crate::warn(&format!("state snapshot ignored: {e}"));
                    }
                }
                Ok(None) => {}
                Err(e) => crate::warn(&format!("state snapshot unreadable: {e:?}")),
            }
        }
        state
    }

    /// Writes the state back when core counted a material change since it was loaded or last
    /// saved. Concurrent instances: the last writer wins.
    pub async fn save_state(&self, config: &Config) {
        let (material, bytes) = {
            let s = self.state.borrow();
            (s.material, snapshot::encode(config, &s))
        };
        if material == self.saved_material.get() {
            return;
        }
        let Some(store) = &self.store else { return };
        match store.set(STATE_KEY, &bytes).await {
            Ok(()) => self.saved_material.set(material),
            Err(e) => {
                self.store_ok.set(false);
                crate::warn(&format!("state snapshot not written: {e:?}"));
            }
        }
    }
}

impl Host for SpinHost {
    type Body = UpBody;

    fn now(&self) -> Instant {
        wall_now()
    }

    fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.borrow_mut())
    }

    async fn fetch(&self, attempt: &Attempt) -> Result<UpstreamResponse<UpBody>, FetchError> {
        let timeout = attempt.deadline.saturating_since(wall_now());
        if timeout.is_zero() {
            return Err(FetchError::Timeout);
        }
        let uri: http::Uri = attempt.url.parse().map_err(|_| FetchError::Connect)?;
        // IP literals and names core knows to be internal; names that *resolve* to private
        // addresses are Spin's `allowed_outbound_hosts` business (see the README)
        let host = uri.host().unwrap_or("");
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if !attempt.allow_private && is_private_host(host) {
            return Err(FetchError::Forbidden);
        }
        let mut req = http::Request::builder()
            .method(attempt.method.as_str())
            .uri(uri);
        for (n, v) in &attempt.headers {
            if !forbidden_outbound(n) {
                req = req.header(n.as_str(), v.as_str());
            }
        }
        let req = req
            .body(Full::new(self.body.clone()))
            .map_err(|_| FetchError::Connect)?;
        let sent = race(spin_sdk::http::send(req), spin_sdk::time::sleep(timeout)).await;
        let resp = match sent {
            Err(()) => return Err(FetchError::Timeout),
            Ok(Err(e)) => return Err(classify_error(&e)),
            Ok(Ok(r)) => r,
        };
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        Ok(UpstreamResponse {
            status,
            headers,
            body: UpBody {
                head: None,
                rest: Some(resp.into_body()),
            },
        })
    }

    async fn sleep_until(&self, t: Instant) {
        let d = t.saturating_since(wall_now());
        if !d.is_zero() {
            spin_sdk::time::sleep(d).await;
        }
    }

    async fn cache_get(&self, key: &str) -> Option<Vec<u8>> {
        *self.looked_up.borrow_mut() = Some(key.to_string());
        let store = self.store.as_ref()?;
        let k = cache_kv_key(key);
        match store.get(&k).await {
            Ok(Some(v)) => {
                // the store keeps no TTL: an entry past every freshness window is dead
                let dead = Entry::decode(&v)
                    .map_or(true, |e| e.freshness(wall_now()) == Freshness::Expired);
                if dead {
                    let _ = store.delete(&k).await;
                    return None;
                }
                Some(v)
            }
            Ok(None) => None,
            Err(e) => {
                self.store_ok.set(false);
                crate::warn(&format!("cache read failed: {e:?}"));
                None
            }
        }
    }

    async fn cache_put(&self, key: &str, value: Vec<u8>, _ttl: Duration) {
        // the entry carries its own times; readers drop it once expired
        let Some(store) = &self.store else { return };
        if let Err(e) = store.set(cache_kv_key(key), &value).await {
            self.store_ok.set(false);
            crate::warn(&format!("cache write failed: {e:?}"));
        }
    }

    async fn read_body(&self, mut body: UpBody, cap: usize) -> Result<Vec<u8>, UpBody> {
        if body.size_hint().lower() > cap as u64 {
            return Err(body);
        }
        let mut buf: Vec<u8> = Vec::new();
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else {
                // broken stream: hand back what was read; the caller sees a short body
                return Err(UpBody {
                    head: Some(Bytes::from(buf)),
                    rest: None,
                });
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if buf.len() + data.len() > cap {
                buf.extend_from_slice(&data);
                return Err(UpBody {
                    head: Some(Bytes::from(buf)),
                    rest: body.rest.take(),
                });
            }
            buf.extend_from_slice(&data);
        }
        Ok(buf)
    }
}
