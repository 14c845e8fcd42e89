//! Cache decisions: keys, storability, freshness (RFC 9111) and a compact entry encoding.
//!
//! Storage is the host's (isolate memory, KV, the Cache API, Redis); this module only decides.
//! Keys are always tenant-scoped: the tenant is the first component of every key, so no lookup
//! can reach another tenant's entry. Freshness follows the response's `Cache-Control`
//! (`s-maxage` over `max-age` over `Expires`), as a shared cache must: `no-store` and `private`
//! are never stored, `no-cache` is stored but always revalidated (treated as stale), `Vary: *`
//! is never stored. A route may set a default TTL for responses that say nothing, or override
//! what upstream says.

use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use sha2::{Digest, Sha256};

use crate::http::{Headers, Method};
use crate::time::Instant;

/// A route's cache policy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CachePolicy {
    /// Whether the route caches.
    pub enabled: bool,
    /// Default freshness lifetime for responses without one (zero: none).
    pub ttl: Duration,
    /// Use `ttl` regardless of the response's directives (still never stores `no-store`).
    pub override_upstream: bool,
    /// stale-while-revalidate window (overrides the response's).
    pub stale_while_revalidate: Option<Duration>,
    /// stale-if-error window (overrides the response's).
    pub stale_if_error: Option<Duration>,
    /// Request headers that are always part of the key (lowercase).
    pub vary: Vec<String>,
}

/// Parsed `Cache-Control` directives we act on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheControl {
    /// `no-store`.
    pub no_store: bool,
    /// `no-cache`.
    pub no_cache: bool,
    /// `private`.
    pub private: bool,
    /// `public`.
    pub public: bool,
    /// `max-age`.
    pub max_age: Option<u64>,
    /// `s-maxage`.
    pub s_maxage: Option<u64>,
    /// `stale-while-revalidate`.
    pub swr: Option<u64>,
    /// `stale-if-error`.
    pub sie: Option<u64>,
    /// `must-revalidate` / `proxy-revalidate`: no stale serving.
    pub must_revalidate: bool,
}

impl CacheControl {
    /// Parses every `Cache-Control` value (comma lists, case-insensitive names, quoted values).
    #[must_use]
    pub fn parse<'a>(values: impl Iterator<Item = &'a str>) -> CacheControl {
        let mut cc = CacheControl::default();
        for v in values {
            for d in v.split(',') {
                let d = d.trim();
                let (name, arg) = match d.split_once('=') {
                    Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                    None => (d, None),
                };
                let num = || arg.and_then(|a| a.parse::<u64>().ok());
                match name.to_ascii_lowercase().as_str() {
                    "no-store" => cc.no_store = true,
                    "no-cache" => cc.no_cache = true,
                    "private" => cc.private = true,
                    "public" => cc.public = true,
                    "max-age" => cc.max_age = num().or(Some(0)),
                    "s-maxage" => cc.s_maxage = num().or(Some(0)),
                    "stale-while-revalidate" => cc.swr = num(),
                    "stale-if-error" => cc.sie = num(),
                    "must-revalidate" | "proxy-revalidate" => cc.must_revalidate = true,
                    _ => {}
                }
            }
        }
        cc
    }
}

/// Whether a request may be answered from or stored in the cache at all.
#[must_use]
pub fn request_cacheable<H: Headers + ?Sized>(
    policy: &CachePolicy,
    method: Method,
    headers: &H,
) -> bool {
    if !policy.enabled || !matches!(method, Method::Get | Method::Head) {
        return false;
    }
    let cc = CacheControl::parse(headers.header_all("cache-control"));
    !cc.no_store
}

/// Builds the tenant-scoped key: `{tenant}:{route}:{sha256(method, path?query, vary values)}`.
/// The tenant and route are in clear so that a store can scope, list and purge by prefix.
#[must_use]
pub fn key<H: Headers + ?Sized>(
    tenant: &str,
    route: &str,
    method: Method,
    host: &str,
    path_and_query: &str,
    policy: &CachePolicy,
    headers: &H,
) -> String {
    let mut h = Sha256::new();
    // HEAD is answered from GET entries
    h.update(if method == Method::Head {
        "GET"
    } else {
        method.as_str()
    });
    h.update([0]);
    h.update(host.to_ascii_lowercase());
    h.update([0]);
    h.update(path_and_query);
    for name in &policy.vary {
        h.update([0]);
        h.update(name);
        h.update([1]);
        for v in headers.header_all(name) {
            h.update(v);
            h.update([2]);
        }
    }
    let digest = h.finalize();
    let mut out = String::with_capacity(tenant.len() + route.len() + 2 + 64);
    out.push_str(tenant);
    out.push(':');
    out.push_str(route);
    out.push(':');
    out.push_str(&hex::encode(digest));
    out
}

/// Statuses a shared cache may store by default (RFC 9110 §15.1 "heuristically cacheable").
const CACHEABLE: [u16; 10] = [200, 203, 204, 300, 301, 308, 404, 405, 410, 501];

/// The lifetimes of a storable response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lifetimes {
    /// Fresh for this long.
    pub fresh: Duration,
    /// Then servable stale while revalidating for this long.
    pub swr: Duration,
    /// Then servable stale on error for this long (counted from the end of freshness).
    pub sie: Duration,
}

impl Lifetimes {
    /// How long a store should keep the entry at all.
    #[must_use]
    pub fn retain(&self) -> Duration {
        self.fresh + self.swr.max(self.sie)
    }
}

/// Whether and for how long a response may be stored.
#[must_use]
pub fn storable<H: Headers + ?Sized>(
    policy: &CachePolicy,
    status: u16,
    headers: &H,
    now: Instant,
) -> Option<Lifetimes> {
    if !policy.enabled || !CACHEABLE.contains(&status) {
        return None;
    }
    let cc = CacheControl::parse(headers.header_all("cache-control"));
    if cc.no_store || cc.private {
        return None;
    }
    if headers
        .header_all("vary")
        .any(|v| v.split(',').any(|t| t.trim() == "*"))
    {
        return None;
    }
    if headers.header("set-cookie").is_some() && !policy.override_upstream {
        return None;
    }
    let upstream = cc
        .s_maxage
        .or(cc.max_age)
        .map(Duration::from_secs)
        .or_else(|| {
            let exp = crate::httpdate::parse_http_date(headers.header("expires")?)?;
            let date = headers
                .header("date")
                .and_then(crate::httpdate::parse_http_date)
                .unwrap_or(now);
            Some(exp.saturating_since(date))
        });
    let fresh = if policy.override_upstream {
        policy.ttl
    } else if cc.no_cache {
        Duration::ZERO
    } else {
        upstream.unwrap_or(policy.ttl)
    };
    let (swr, sie) = if cc.must_revalidate && !policy.override_upstream {
        (Duration::ZERO, Duration::ZERO)
    } else {
        (
            policy
                .stale_while_revalidate
                .or(cc.swr.map(Duration::from_secs))
                .unwrap_or_default(),
            policy
                .stale_if_error
                .or(cc.sie.map(Duration::from_secs))
                .unwrap_or_default(),
        )
    };
    let l = Lifetimes { fresh, swr, sie };
    (l.retain() > Duration::ZERO).then_some(l)
}

/// How a stored entry may be used now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness {
    /// Serve it.
    Fresh,
    /// Serve it and refresh in the background.
    StaleWhileRevalidate,
    /// Do not serve it unless every provider fails.
    StaleIfError,
    /// Useless.
    Expired,
}

/// A cached response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// When it was stored.
    pub stored: Instant,
    /// Fresh until.
    pub fresh_until: Instant,
    /// Servable while revalidating until.
    pub swr_until: Instant,
    /// Servable on error until.
    pub sie_until: Instant,
    /// Status.
    pub status: u16,
    /// Response headers (hop-by-hop already removed).
    pub headers: Vec<(String, String)>,
    /// Request headers named by the response's `Vary`, with the values they had.
    pub vary: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

/// Entry encoding version.
pub const ENTRY_VERSION: u8 = 1;
const ENTRY_MAGIC: &[u8; 3] = b"MCE";

/// Why bytes did not decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Not ours or truncated.
    Malformed,
    /// A version this build does not read.
    Version(u8),
}

impl Entry {
    /// Builds an entry for a response stored now.
    #[must_use]
    pub fn new<H: Headers + ?Sized>(
        now: Instant,
        life: Lifetimes,
        status: u16,
        headers: Vec<(String, String)>,
        request_headers: &H,
        body: Vec<u8>,
    ) -> Entry {
        let fresh_until = now + life.fresh;
        let mut vary = Vec::new();
        for v in headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("vary"))
        {
            for name in v.1.split(',') {
                let name = name.trim().to_ascii_lowercase();
                if name.is_empty() {
                    continue;
                }
                let val = request_headers.header(&name).unwrap_or("");
                vary.push((name, String::from(val)));
            }
        }
        Entry {
            stored: now,
            fresh_until,
            swr_until: fresh_until + life.swr,
            sie_until: fresh_until + life.sie,
            status,
            headers,
            vary,
            body,
        }
    }

    /// How the entry may be used at `now`.
    #[must_use]
    pub fn freshness(&self, now: Instant) -> Freshness {
        if now < self.fresh_until {
            Freshness::Fresh
        } else if now < self.swr_until {
            Freshness::StaleWhileRevalidate
        } else if now < self.sie_until {
            Freshness::StaleIfError
        } else {
            Freshness::Expired
        }
    }

    /// Whether the request's headers match the ones the entry varied on.
    #[must_use]
    pub fn matches_vary<H: Headers + ?Sized>(&self, request: &H) -> bool {
        self.vary
            .iter()
            .all(|(n, v)| request.header(n).unwrap_or("") == v.as_str())
    }

    /// `Age` in seconds at `now`.
    #[must_use]
    pub fn age(&self, now: Instant) -> u64 {
        now.saturating_since(self.stored).as_secs()
    }

    /// Encodes: magic, version, times, status, headers, vary, body (length-prefixed).
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut w = crate::codec::Writer::with_capacity(self.body.len() + 256);
        w.bytes_raw(ENTRY_MAGIC);
        w.u8(ENTRY_VERSION);
        w.varint(self.stored.as_micros());
        w.varint(self.fresh_until.as_micros());
        w.varint(self.swr_until.as_micros());
        w.varint(self.sie_until.as_micros());
        w.varint(u64::from(self.status));
        w.pairs(&self.headers);
        w.pairs(&self.vary);
        w.bytes(&self.body);
        w.finish()
    }

    /// Decodes bytes from [`Entry::encode`]. Never panics on garbage.
    ///
    /// # Errors
    /// [`DecodeError`] for anything that is not a whole entry of a known version.
    pub fn decode(b: &[u8]) -> Result<Entry, DecodeError> {
        let mut r = crate::codec::Reader::new(b);
        if r.take(3).ok_or(DecodeError::Malformed)? != ENTRY_MAGIC {
            return Err(DecodeError::Malformed);
        }
        let v = r.u8().ok_or(DecodeError::Malformed)?;
        if v != ENTRY_VERSION {
            return Err(DecodeError::Version(v));
        }
        let m = DecodeError::Malformed;
        let stored = Instant::from_micros(r.varint().ok_or(m)?);
        let fresh_until = Instant::from_micros(r.varint().ok_or(m)?);
        let swr_until = Instant::from_micros(r.varint().ok_or(m)?);
        let sie_until = Instant::from_micros(r.varint().ok_or(m)?);
        let status = u16::try_from(r.varint().ok_or(m)?).map_err(|_| m)?;
        let headers = r.pairs().ok_or(m)?;
        let vary = r.pairs().ok_or(m)?;
        let body = r.bytes().ok_or(m)?.to_vec();
        if !r.is_empty() {
            return Err(m);
        }
        Ok(Entry {
            stored,
            fresh_until,
            swr_until,
            sie_until,
            status,
            headers,
            vary,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn pol() -> CachePolicy {
        CachePolicy {
            enabled: true,
            ..Default::default()
        }
    }
    fn s(v: &str) -> String {
        String::from(v)
    }

    #[test]
    fn cache_control_parsing() {
        let cc = CacheControl::parse(
            [
                "public, max-age=60, s-maxage=\"120\"",
                "stale-while-revalidate=30,Stale-If-Error=300",
            ]
            .into_iter(),
        );
        assert!(cc.public && !cc.no_store);
        assert_eq!(
            (cc.max_age, cc.s_maxage, cc.swr, cc.sie),
            (Some(60), Some(120), Some(30), Some(300))
        );
        let cc = CacheControl::parse(["no-store, max-age=bogus"].into_iter());
        assert!(cc.no_store);
        assert_eq!(cc.max_age, Some(0));
    }

    #[test]
    fn storability_follows_rfc9111() {
        let now = Instant::from_secs(1_000_000);
        let p = pol();
        let life = |h: &[(&str, &str)]| storable(&p, 200, h, now);
        assert_eq!(
            life(&[("cache-control", "max-age=60")]).unwrap().fresh,
            Duration::from_secs(60)
        );
        assert_eq!(
            life(&[("cache-control", "max-age=60, s-maxage=10")])
                .unwrap()
                .fresh,
            Duration::from_secs(10)
        );
        assert_eq!(life(&[("cache-control", "no-store, max-age=60")]), None);
        assert_eq!(life(&[("cache-control", "private, max-age=60")]), None);
        assert_eq!(
            life(&[("cache-control", "max-age=60"), ("vary", "Accept, *")]),
            None
        );
        assert_eq!(
            life(&[("cache-control", "max-age=60"), ("set-cookie", "a=b")]),
            None
        );
        assert_eq!(life(&[]), None, "no freshness and no route TTL");
        assert_eq!(
            life(&[
                ("expires", "Mon, 12 Jan 1970 13:46:50 GMT"),
                ("date", "Mon, 12 Jan 1970 13:46:40 GMT")
            ])
            .unwrap()
            .fresh,
            Duration::from_secs(10)
        );
        let sie = life(&[(
            "cache-control",
            "max-age=5, stale-if-error=100, stale-while-revalidate=7",
        )])
        .unwrap();
        assert_eq!(
            (sie.swr, sie.sie),
            (Duration::from_secs(7), Duration::from_secs(100))
        );
        assert_eq!(
            life(&[(
                "cache-control",
                "max-age=5, stale-if-error=100, must-revalidate"
            )])
            .unwrap()
            .sie,
            Duration::ZERO
        );
        assert_eq!(
            storable(&p, 500, &[("cache-control", "max-age=60")][..], now),
            None
        );
        let with_ttl = CachePolicy {
            ttl: Duration::from_secs(30),
            ..pol()
        };
        assert_eq!(
            storable(&with_ttl, 200, &[][..] as &[(&str, &str)], now)
                .unwrap()
                .fresh,
            Duration::from_secs(30)
        );
        let over = CachePolicy {
            ttl: Duration::from_secs(30),
            override_upstream: true,
            ..pol()
        };
        assert_eq!(
            storable(&over, 200, &[("cache-control", "max-age=1")][..], now)
                .unwrap()
                .fresh,
            Duration::from_secs(30)
        );
        assert_eq!(
            storable(&over, 200, &[("cache-control", "no-store")][..], now),
            None
        );
        let off = CachePolicy::default();
        assert_eq!(
            storable(&off, 200, &[("cache-control", "max-age=60")][..], now),
            None
        );
    }

    #[test]
    fn keys_are_tenant_scoped_and_vary() {
        let p = CachePolicy {
            vary: vec![s("accept")],
            ..pol()
        };
        let h1 = [("accept", "application/json")];
        let h2 = [("accept", "text/html")];
        let a = key("t1", "r", Method::Get, "h", "/x?a=1", &p, &h1[..]);
        assert!(a.starts_with("t1:r:"));
        let other = key("t2", "r", Method::Get, "h", "/x?a=1", &p, &h1[..]);
        assert!(
            other.starts_with("t2:r:"),
            "different tenant, different namespace: {other}"
        );
        assert_ne!(
            a.split(':').nth(2),
            key("t1", "r", Method::Get, "h", "/x?a=2", &p, &h1[..])
                .split(':')
                .nth(2)
        );
        assert_ne!(a, key("t1", "r", Method::Get, "h", "/x?a=1", &p, &h2[..]));
        assert_eq!(
            a,
            key("t1", "r", Method::Head, "H", "/x?a=1", &p, &h1[..]),
            "HEAD shares GET; host case-insensitive"
        );
        assert!(request_cacheable(&p, Method::Get, &h1[..]));
        assert!(!request_cacheable(&p, Method::Post, &h1[..]));
        assert!(!request_cacheable(
            &p,
            Method::Get,
            &[("cache-control", "no-store")][..]
        ));
    }

    #[test]
    fn entry_freshness_and_round_trip() {
        let now = Instant::from_secs(100);
        let life = Lifetimes {
            fresh: Duration::from_secs(10),
            swr: Duration::from_secs(5),
            sie: Duration::from_secs(60),
        };
        let e = Entry::new(
            now,
            life,
            200,
            vec![
                (s("content-type"), s("text/plain")),
                (s("vary"), s("Accept")),
            ],
            &[("accept", "a/b")][..],
            b"hello".to_vec(),
        );
        assert_eq!(e.freshness(now + Duration::from_secs(9)), Freshness::Fresh);
        assert_eq!(
            e.freshness(now + Duration::from_secs(12)),
            Freshness::StaleWhileRevalidate
        );
        assert_eq!(
            e.freshness(now + Duration::from_secs(30)),
            Freshness::StaleIfError
        );
        assert_eq!(
            e.freshness(now + Duration::from_secs(71)),
            Freshness::Expired
        );
        assert!(e.matches_vary(&[("Accept", "a/b")][..]));
        assert!(!e.matches_vary(&[("Accept", "c/d")][..]));
        let bytes = e.encode();
        assert_eq!(Entry::decode(&bytes), Ok(e.clone()));
        assert_eq!(e.age(now + Duration::from_secs(3)), 3);
        for cut in 0..bytes.len() {
            assert!(Entry::decode(&bytes[..cut]).is_err(), "truncated at {cut}");
        }
        let mut v2 = bytes.clone();
        v2[3] = 2;
        assert_eq!(Entry::decode(&v2), Err(DecodeError::Version(2)));
        let mut extra = bytes;
        extra.push(0);
        assert_eq!(Entry::decode(&extra), Err(DecodeError::Malformed));
    }
}
