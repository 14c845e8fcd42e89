//! The upstream HTTP client: executes core's `Attempt` (URL, headers, deadline) and classifies
//! failures into core's `FetchError`, refusing private addresses unless the provider allows them.
//!
//! HTTP/1.1 of its own ([`crate::h1`] for the wire format) with a small pool, because this is
//! the proxy's hot path: the request's own task writes the request and reads the response on
//! the connection — no connection task, no channel, no wake-up of anything else. A request
//! checks out an idle connection of its origin (one the peer closed while idle is noticed
//! without waiting and skipped; one that closes as the request is written gives the request
//! back, and an idempotent request also survives a close without an answer), and the
//! connection goes back to the pool when the response body has been read to its end (a body
//! dropped half-read closes its connection: what is left on the wire is not a next response).
//! Each worker thread has its own pool ([`Clients::local`]), so a connection never moves
//! between threads.
//!
//! The private-address guard: IP literals and names such as `localhost` are judged by core's
//! `target::is_private_host` before anything else; other names are resolved here and refused
//! when any address they resolve to is private, loopback, link-local or otherwise internal, so
//! DNS cannot smuggle a request inside. Providers with `allow_private = true` skip the guard.
//! Redirects are never followed: the caller gets them as they are. TLS is rustls with the
//! webpki root certificates, HTTP/1.1 only.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::{Frame, SizeHint};
use mosaic_core::driver::UpstreamResponse;
use mosaic_core::engine::{Attempt, FetchError};
use mosaic_core::http::Method;
use mosaic_core::target::is_private_host;
use mosaic_providers::hooks::PostError;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::h1::{self, room, BodyStep, READ_SIZE};
use crate::host::{Body, BoxError};

/// The `User-Agent` sent when the attempt carries none.
const AGENT: &str = concat!("mosaic-edge/", env!("CARGO_PKG_VERSION"));
/// How long an idle pooled connection is kept.
const IDLE_FOR: Duration = Duration::from_secs(60);
/// Idle connections kept per origin.
const IDLE_PER_ORIGIN: usize = 256;
/// Request bodies up to this size go out in the same write as the head.
const INLINE_BODY: usize = 16 * 1024;
/// Longest an answer's body may go without a byte arriving (nginx's `proxy_read_timeout`
/// default); the attempt deadline covers only connecting and the head.
const BODY_IDLE: Duration = Duration::from_secs(60);

/// Why an exchange failed, before it is mapped to core's or the webhook's error.
#[derive(Debug)]
enum Failure {
    /// The address is private and not allowed.
    Forbidden,
    /// Nothing was sent: DNS, connect or TLS failed.
    Connect(String),
    /// The connection broke after the request was (maybe) sent.
    Reset(String),
    /// The deadline passed before the response head arrived.
    Timeout,
}

impl Failure {
    fn fetch_error(&self) -> FetchError {
        match self {
            Failure::Forbidden => FetchError::Forbidden,
            Failure::Connect(_) => FetchError::Connect,
            Failure::Reset(_) => FetchError::Reset,
            Failure::Timeout => FetchError::Timeout,
        }
    }
}

/// The pooled clients of one worker thread.
///
/// Cheap to clone (two `Arc`s). Build one per thread with [`Clients::local`]: a connection is
/// driven by a task on the runtime that opened it, so a pool shared across worker threads
/// would hand every request's bytes from one thread to another.
#[derive(Clone)]
pub struct Clients {
    pool: Arc<Pool>,
    tls: Arc<rustls::ClientConfig>,
}

/// Extra root certificates (`[server] ca_file`), set once before the first client is built.
static EXTRA_ROOTS: OnceLock<Vec<rustls::pki_types::CertificateDer<'static>>> = OnceLock::new();

/// Reads the root certificates of a PEM file.
///
/// # Errors
/// When the file cannot be read, holds no certificate, or a certificate is malformed.
pub fn read_roots(path: &str) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read `{path}`: {e}"))?;
    let certs = rustls::pki_types::CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("`{path}` is not a PEM file of certificates: {e}"))?;
    if certs.is_empty() {
        return Err(format!(
            "`{path}` holds no certificate (expected PEM blocks `-----BEGIN CERTIFICATE-----`)"
        ));
    }
    let mut store = rustls::RootCertStore::empty();
    for (i, c) in certs.iter().enumerate() {
        store.add(c.clone()).map_err(|e| {
            format!(
                "`{path}`: certificate {} is not usable as a root: {e}",
                i + 1
            )
        })?;
    }
    Ok(certs)
}

/// Trusts `certs` besides the webpki roots, for every client built after this call. Only the
/// first call counts (the server makes it once, before starting its workers).
pub fn trust(certs: Vec<rustls::pki_types::CertificateDer<'static>>) {
    let _ = EXTRA_ROOTS.set(certs);
}

/// The TLS configuration, built once per process: the webpki roots and any [`trust`]ed ones.
fn tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    static TLS: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    TLS.get_or_init(|| tls_trusting(EXTRA_ROOTS.get().map_or(&[], Vec::as_slice)))
        .clone()
}

/// A client TLS configuration trusting the webpki roots and `extra`.
fn tls_trusting(
    extra: &[rustls::pki_types::CertificateDer<'static>],
) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for c in extra {
        roots
            .add(c.clone())
            .map_err(|e| format!("[server] ca_file: {e}"))?;
    }
    tls_with_roots(roots)
}

/// A client TLS configuration trusting `roots`, HTTP/1.1 only.
fn tls_with_roots(roots: rustls::RootCertStore) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("cannot set up TLS: {e}"))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

impl Clients {
    /// New clients with an empty pool.
    ///
    /// # Errors
    /// When TLS cannot be initialised.
    pub fn new() -> Result<Clients, String> {
        Ok(Clients {
            pool: Arc::new(Pool::default()),
            tls: tls_config()?,
        })
    }

    /// This thread's clients, built on first use.
    ///
    /// # Errors
    /// When TLS cannot be initialised (checked once at startup by [`Clients::new`]).
    pub fn local() -> Result<Clients, String> {
        thread_local! {
            static LOCAL: std::cell::OnceCell<Clients> = const { std::cell::OnceCell::new() };
        }
        LOCAL.with(|c| {
            if let Some(c) = c.get() {
                return Ok(c.clone());
            }
            let built = Clients::new()?;
            Ok(c.get_or_init(|| built).clone())
        })
    }

    /// Performs `a` with `body`, giving up after `timeout` (connecting and waiting for the
    /// response head; the body then streams).
    #[cfg(test)]
    pub async fn send(
        &self,
        a: &Attempt,
        body: Bytes,
        timeout: Duration,
    ) -> Result<UpstreamResponse<Body>, FetchError> {
        self.send_by(a, body, tokio::time::Instant::now() + timeout)
            .await
    }

    /// Performs `a` with `body`, giving up at `deadline` (connecting and waiting for the
    /// response head; the body then streams).
    pub async fn send_by(
        &self,
        a: &Attempt,
        body: Bytes,
        deadline: tokio::time::Instant,
    ) -> Result<UpstreamResponse<Body>, FetchError> {
        let target = Target::parse_cached(&a.url).ok_or(FetchError::Connect)?;
        if !a.allow_private && is_private_host(target.bare_host()) {
            return Err(FetchError::Forbidden);
        }
        let (head, lease) = self
            .exchange(
                &target,
                a.method,
                &a.headers,
                &body,
                a.allow_private,
                deadline,
            )
            .await
            .map_err(|f| f.fetch_error())?;
        Ok(UpstreamResponse {
            status: head.status,
            headers: head.headers,
            body: BodyExt::boxed(UpstreamBody::new(lease, head.body, head.keep_alive)),
        })
    }

    /// POSTs a webhook delivery: the same guard as [`Clients::send`] (private addresses
    /// refused unless `allow_private`), no redirects, the whole exchange bounded by `timeout`.
    /// Only the status matters; the response body is drained and dropped. Error texts never
    /// contain the URL (its query may carry a token).
    ///
    /// # Errors
    /// [`PostError`] for a refusal, a timeout or a network failure.
    pub async fn post(
        &self,
        url: &str,
        headers: &[(String, String)],
        body: &[u8],
        timeout: Duration,
        allow_private: bool,
    ) -> Result<u16, PostError> {
        let target = Target::parse(url).ok_or_else(|| {
            PostError::Network(String::from(
                "invalid destination URL: expected http(s)://host[:port]/path",
            ))
        })?;
        if !allow_private && is_private_host(target.bare_host()) {
            return Err(PostError::Refused(String::from(
                "the destination is a private address (set allow_private = true to allow it)",
            )));
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let exchange = async {
            let (head, lease) = self
                .exchange(
                    &target,
                    Method::Post,
                    headers,
                    body,
                    allow_private,
                    deadline,
                )
                .await?;
            // drain (bounded by the same deadline) so the connection returns to the pool
            let _ = UpstreamBody::new(lease, head.body, head.keep_alive)
                .collect()
                .await;
            Ok::<u16, Failure>(head.status)
        };
        match tokio::time::timeout_at(deadline, exchange).await {
            Err(_) | Ok(Err(Failure::Timeout)) => Err(PostError::Timeout),
            Ok(Ok(status)) => Ok(status),
            Ok(Err(Failure::Forbidden)) => Err(PostError::Refused(String::from(
                "the destination resolves to a private address (set allow_private = true to allow it)",
            ))),
            Ok(Err(Failure::Connect(m) | Failure::Reset(m))) => Err(PostError::Network(m)),
        }
    }

    /// Sends the request on a pooled connection of the target's origin, or a new one, and
    /// reads the response head.
    async fn exchange(
        &self,
        target: &Target<'_>,
        method: Method,
        headers: &[(String, String)],
        body: &[u8],
        allow_private: bool,
        deadline: tokio::time::Instant,
    ) -> Result<(h1::Head, Lease), Failure> {
        // a small body goes out with the head in one write; a large one after it, uncopied
        let inline = body.len() <= INLINE_BODY;
        let mut wire = Vec::new();
        h1::encode_request(
            &mut wire,
            method.as_str(),
            target.path,
            target.authority,
            headers,
            AGENT,
            body,
            inline,
        )
        .map_err(|m| Failure::Connect(format!("cannot send the request: {m}")))?;
        let rest: &[u8] = if inline { &[] } else { body };
        let head_request = method == Method::Head;
        // pooled connections first; one the peer closed while idle gives the request back
        while let Some(mut lease) = self.pool.checkout(target.origin) {
            match lease
                .conn
                .round_trip_by(&wire, rest, head_request, deadline)
                .await
            {
                Ok(head) => return Ok((head, lease)),
                // the answer may still come: the connection goes (dropping the lease closes it)
                Err(Trip::Late) => return Err(Failure::Timeout),
                // closed before the request got through: take the next one
                Err(Trip::Unsent(_)) => {}
                // closed without a word, maybe after reading the request: only a request
                // that may be repeated is
                Err(Trip::Silent(_)) if method.is_idempotent() => {}
                Err(Trip::Silent(m) | Trip::Broken(m)) => return Err(Failure::Reset(m)),
            }
        }
        // connecting is rare (pooled connections are reused): a timer of its own
        let conn = tokio::time::timeout_at(deadline, self.connect(target, allow_private))
            .await
            .map_err(|_| Failure::Timeout)??;
        let mut lease = Lease {
            pool: Arc::clone(&self.pool),
            origin: Arc::from(target.origin),
            conn,
        };
        match lease
            .conn
            .round_trip_by(&wire, rest, head_request, deadline)
            .await
        {
            Ok(head) => Ok((head, lease)),
            Err(Trip::Late) => Err(Failure::Timeout),
            Err(Trip::Unsent(m) | Trip::Silent(m) | Trip::Broken(m)) => Err(Failure::Reset(m)),
        }
    }

    /// Opens a connection to the target (TLS for `https`).
    async fn connect(&self, target: &Target<'_>, allow_private: bool) -> Result<Conn, Failure> {
        let addrs = resolve(target.host, target.port, allow_private).await?;
        let mut last = String::from("no address");
        let mut stream = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = e.to_string(),
            }
        }
        let stream = stream.ok_or_else(|| Failure::Connect(format!("cannot connect: {last}")))?;
        let _ = stream.set_nodelay(true);
        if target.https {
            let name = rustls::pki_types::ServerName::try_from(target.host.to_string())
                .map_err(|e| Failure::Connect(format!("invalid TLS server name: {e}")))?;
            let tls = tokio_rustls::TlsConnector::from(Arc::clone(&self.tls))
                .connect(name, stream)
                .await
                .map_err(|e| Failure::Connect(format!("TLS handshake failed: {e}")))?;
            Ok(Conn::new(Io::Tls(Box::new(tls))))
        } else {
            Ok(Conn::new(Io::Plain(stream)))
        }
    }
}

/// The addresses of `host:port`; a private one is refused unless allowed.
async fn resolve(host: &str, port: u16, allow_private: bool) -> Result<Vec<SocketAddr>, Failure> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| Failure::Connect(format!("cannot resolve the host: {e}")))?
        .collect();
    if addrs.is_empty() {
        return Err(Failure::Connect(String::from("the host has no address")));
    }
    if !allow_private && addrs.iter().any(|a| is_private_host(&a.ip().to_string())) {
        return Err(Failure::Forbidden);
    }
    Ok(addrs)
}

/// The parts of an upstream URL the client needs, borrowed from it.
struct Target<'a> {
    https: bool,
    /// `scheme://authority`: the pool key.
    origin: &'a str,
    /// The authority as sent in `Host`.
    authority: &'a str,
    /// The host, IPv6 literals with their brackets.
    host: &'a str,
    port: u16,
    /// Path and query (origin form), `/` when empty.
    path: &'a str,
}

impl<'a> Target<'a> {
    /// The host without IPv6 brackets.
    fn bare_host(&self) -> &'a str {
        self.host.trim_start_matches('[').trim_end_matches(']')
    }

    /// [`Target::parse`], remembering the last origin parsed on this thread: core builds every
    /// URL as a provider's base URL and a path, so most requests repeat the origin of the one
    /// before, and then only the path needs looking at.
    fn parse_cached(url: &'a str) -> Option<Target<'a>> {
        /// An origin as parsed: the text, and where its parts lie in it.
        struct Seen {
            origin: String,
            https: bool,
            authority: usize,
            host: (usize, usize),
            port: u16,
        }
        thread_local! {
            static LAST: std::cell::RefCell<Option<Seen>> = const { std::cell::RefCell::new(None) };
        }
        let hit = LAST.with(|last| {
            let last = last.borrow();
            let s = last.as_ref()?;
            let path = url.strip_prefix(s.origin.as_str())?;
            if !(path.is_empty() || path.starts_with('/')) || path.as_bytes().contains(&b'#') {
                return None;
            }
            let origin = &url[..s.origin.len()];
            Some(Target {
                https: s.https,
                origin,
                authority: &origin[s.authority..],
                host: &origin[s.host.0..s.host.1],
                port: s.port,
                path: if path.is_empty() { "/" } else { path },
            })
        });
        if hit.is_some() {
            return hit;
        }
        let t = Target::parse(url)?;
        let offset = |part: &str| part.as_ptr() as usize - url.as_ptr() as usize;
        let seen = Seen {
            origin: t.origin.to_string(),
            https: t.https,
            authority: offset(t.authority),
            host: (offset(t.host), offset(t.host) + t.host.len()),
            port: t.port,
        };
        LAST.with(|last| *last.borrow_mut() = Some(seen));
        Some(t)
    }

    /// Splits an absolute `http(s)://authority/path?query` URL (core builds them); `None` for
    /// anything else, including userinfo and fragments.
    fn parse(url: &'a str) -> Option<Target<'a>> {
        // core writes schemes in lowercase: check that first
        let (https, rest) = if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = strip_prefix_ci(url, "https://") {
            (true, r)
        } else {
            (false, strip_prefix_ci(url, "http://")?)
        };
        let scheme_len = url.len() - rest.len();
        // one pass over the authority: where it ends, and nothing that makes it more than
        // host[:port]
        let mut end = rest.len();
        for (i, b) in rest.bytes().enumerate() {
            match b {
                b'/' | b'?' => {
                    end = i;
                    break;
                }
                b'@' | b'#' | b' ' => return None,
                _ => {}
            }
        }
        let authority = &rest[..end];
        if authority.is_empty() || rest.as_bytes()[end..].contains(&b'#') {
            return None;
        }
        let path = &rest[end..];
        let path = if path.is_empty() { "/" } else { path };
        if !path.starts_with('/') {
            // `http://host?q`: not a form core produces
            return None;
        }
        let (host, port) = split_port(authority, https)?;
        Some(Target {
            https,
            origin: &url[..scheme_len + end],
            authority,
            host,
            port,
            path,
        })
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// `host[:port]` or `[v6][:port]`, with the scheme's default port.
fn split_port(authority: &str, https: bool) -> Option<(&str, u16)> {
    let default = if https { 443 } else { 80 };
    let (host, port) = if authority.starts_with('[') {
        let close = authority.find(']')?;
        let (h, rest) = authority.split_at(close + 1);
        match rest.strip_prefix(':') {
            Some(p) => (h, Some(p)),
            None if rest.is_empty() => (h, None),
            None => return None,
        }
    } else {
        match authority.bytes().rposition(|b| b == b':') {
            Some(i) => (&authority[..i], Some(&authority[i + 1..])),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        Some(p) => parse_port(p)?,
        None => default,
    };
    Some((host, port))
}

/// A port: one to five digits, 1 to 65535.
fn parse_port(p: &str) -> Option<u16> {
    if p.is_empty() || p.len() > 5 {
        return None;
    }
    let mut n = 0u32;
    for b in p.bytes() {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u32::from(b - b'0');
    }
    u16::try_from(n).ok().filter(|&p| p != 0)
}

/// How an exchange on one connection went wrong.
enum Trip {
    /// Writing the request failed: the connection was closed, nothing got through.
    Unsent(String),
    /// The connection closed (or was reset) before a byte of the response.
    Silent(String),
    /// The connection broke after the response began, or the response is not HTTP.
    Broken(String),
    /// The deadline passed first.
    Late,
}

/// A connection's transport: plain TCP or TLS over it.
enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// One upstream connection and what was read from it but not consumed yet.
struct Conn {
    io: Io,
    buf: BytesMut,
    /// The body-idle deadline.
    idle: h1::Idle,
}

impl Conn {
    fn new(io: Io) -> Conn {
        Conn {
            io,
            buf: BytesMut::with_capacity(READ_SIZE),
            idle: h1::Idle::default(),
        }
    }

    /// Whether an idle connection can take a request: nothing arrived on it and the peer has
    /// not closed it. Never waits (and costs no system call while the socket is quiet).
    fn idle_ok(&mut self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        self.buf.reserve(1);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        matches!(
            tokio_util::io::poll_read_buf(Pin::new(&mut self.io), &mut cx, &mut self.buf),
            Poll::Pending
        )
    }

    /// Writes a request (`wire`, then `rest` of its body if any) and reads the response head.
    /// [`Conn::round_trip`] by `deadline`, watched by the connection's own timer: armed once
    /// and re-armed only when it fires before the deadline it watches, so a request that is
    /// answered in time costs no timer registration (a tokio timeout per request registers
    /// and removes a timer each time).
    async fn round_trip_by(
        &mut self,
        wire: &[u8],
        rest: &[u8],
        head_request: bool,
        deadline: tokio::time::Instant,
    ) -> Result<h1::Head, Trip> {
        let mut idle = std::mem::take(&mut self.idle);
        let result = {
            let mut trip = std::pin::pin!(self.round_trip(wire, rest, head_request));
            std::future::poll_fn(|cx| match std::future::Future::poll(trip.as_mut(), cx) {
                Poll::Ready(r) => Poll::Ready(r),
                Poll::Pending if idle.passed(deadline, cx) => Poll::Ready(Err(Trip::Late)),
                Poll::Pending => Poll::Pending,
            })
            .await
        };
        self.idle = idle;
        result
    }

    async fn round_trip(
        &mut self,
        wire: &[u8],
        rest: &[u8],
        head_request: bool,
    ) -> Result<h1::Head, Trip> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let unsent = |e: std::io::Error| Trip::Unsent(format!("cannot send the request: {e}"));
        match &mut self.io {
            Io::Plain(s) => h1::write_fully(s, wire).await,
            Io::Tls(_) => self.io.write_all(wire).await,
        }
        .map_err(unsent)?;
        if !rest.is_empty() {
            self.io.write_all(rest).await.map_err(|e| {
                Trip::Broken(format!("the connection broke while sending the body: {e}"))
            })?;
        }
        self.io.flush().await.map_err(unsent)?;
        let mut heard = false;
        loop {
            match h1::parse_head(&mut self.buf, head_request) {
                Ok(Some(head)) => return Ok(head),
                Ok(None) => {}
                Err(m) => return Err(Trip::Broken(m.to_string())),
            }
            if self.buf.len() >= h1::MAX_HEAD {
                return Err(Trip::Broken(String::from(
                    "the response head is longer than 64 KiB",
                )));
            }
            room(&mut self.buf);
            match self.io.read_buf(&mut self.buf).await {
                Ok(0) if heard => {
                    return Err(Trip::Broken(String::from(
                        "the connection closed in the middle of the response head",
                    )))
                }
                Ok(0) => {
                    return Err(Trip::Silent(String::from(
                        "the connection closed without a response",
                    )))
                }
                Ok(_) => heard = true,
                Err(e) if heard => {
                    return Err(Trip::Broken(format!(
                        "the connection broke in the response head: {e}"
                    )))
                }
                Err(e) => {
                    return Err(Trip::Silent(format!(
                        "the connection broke without a response: {e}"
                    )))
                }
            }
        }
    }
}

/// Idle connections by origin.
#[derive(Default)]
struct Pool {
    /// Idle connections by origin.
    idle: Mutex<HashMap<Arc<str>, Origin, BuildHasherDefault<WordHash>>>,
}

/// One origin's idle connections, most recently used last, with the origin's key: a checkout
/// then hashes the origin once.
struct Origin {
    key: Arc<str>,
    conns: Vec<Idle>,
}

/// A multiply-rotate hash over eight bytes at a time (the `FxHash` step): the pool's keys are
/// a handful of origins from the configuration, not attacker input, so a fast hash beats
/// SipHash's flooding resistance here, and a word at a time beats a byte at a time.
#[derive(Default)]
struct WordHash(u64);

impl WordHash {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for WordHash {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            let mut b = [0u8; 8];
            b.copy_from_slice(w);
            self.add(u64::from_le_bytes(b));
        }
        let tail = words.remainder();
        let mut b = [0u8; 8];
        b[..tail.len()].copy_from_slice(tail);
        // the length keeps "ab" and "ab\0" apart
        self.add(u64::from_le_bytes(b) ^ ((bytes.len() as u64) << 56));
    }
}

struct Idle {
    conn: Conn,
    since: std::time::Instant,
}

impl Pool {
    /// The most recently used idle connection of `origin` that is still open and quiet.
    fn checkout(self: &Arc<Pool>, origin: &str) -> Option<Lease> {
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Origin { key, conns } = idle.get_mut(origin)?;
        while let Some(mut c) = conns.pop() {
            if c.since.elapsed() < IDLE_FOR && c.conn.idle_ok() {
                return Some(Lease {
                    pool: Arc::clone(self),
                    origin: Arc::clone(key),
                    conn: c.conn,
                });
            }
            // closed, spoke out of turn or idle too long: dropping it closes it
        }
        None
    }

    fn put(&self, origin: Arc<str>, conn: Conn) {
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let list = &mut idle
            .entry(origin)
            .or_insert_with_key(|k| Origin {
                key: Arc::clone(k),
                conns: Vec::new(),
            })
            .conns;
        if list.len() >= IDLE_PER_ORIGIN {
            // the oldest goes
            list.remove(0);
        }
        list.push(Idle {
            conn,
            since: std::time::Instant::now(),
        });
    }
}

/// A connection checked out of the pool (or new) for one exchange.
struct Lease {
    pool: Arc<Pool>,
    origin: Arc<str>,
    conn: Conn,
}

/// A response body read off its connection, which goes back to the pool once the body has
/// been read to its end (and nothing follows it); a body dropped half-read closes it: what is
/// left on the wire is not a next response.
struct UpstreamBody {
    lease: Option<Lease>,
    decoder: h1::Decoder,
    keep_alive: bool,
}

impl UpstreamBody {
    fn new(mut lease: Lease, decoder: h1::Decoder, keep_alive: bool) -> UpstreamBody {
        lease.conn.idle.progressed();
        let mut b = UpstreamBody {
            lease: Some(lease),
            decoder,
            keep_alive,
        };
        if b.decoder.is_done() {
            b.finish();
        }
        b
    }

    /// The body was read to its end: pool the connection if it can take another request.
    fn finish(&mut self) {
        if let Some(l) = self.lease.take() {
            if self.keep_alive && l.conn.buf.is_empty() {
                l.pool.put(l.origin, l.conn);
            }
        }
    }

    /// Gives up on the connection after `e`.
    fn fail(&mut self, e: BoxError) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.lease = None;
        self.decoder = h1::Decoder::Done;
        Poll::Ready(Some(Err(e)))
    }
}

impl hyper::body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let Some(lease) = this.lease.as_mut() else {
            return Poll::Ready(None);
        };
        match h1::poll_body(
            &mut this.decoder,
            &mut lease.conn.buf,
            &mut lease.conn.io,
            cx,
        ) {
            Poll::Pending if lease.conn.idle.stalled(BODY_IDLE, cx) => this.fail(
                format!(
                    "the upstream sent no part of the body for {} s",
                    BODY_IDLE.as_secs()
                )
                .into(),
            ),
            Poll::Pending => Poll::Pending,
            Poll::Ready(BodyStep::Data(data)) => {
                if this.decoder.is_done() {
                    this.finish();
                } else {
                    lease.conn.idle.progressed();
                }
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Poll::Ready(BodyStep::End { closed }) => {
                // a body that ran to the close leaves no connection to reuse
                if closed {
                    this.lease = None;
                } else {
                    this.finish();
                }
                Poll::Ready(None)
            }
            Poll::Ready(BodyStep::Failed(e)) => this.fail(e),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.decoder.is_done()
    }

    fn size_hint(&self) -> SizeHint {
        self.decoder
            .remaining()
            .map_or_else(SizeHint::default, SizeHint::with_exact)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pool's hash tells apart keys that differ only in a zero tail or in one byte of any
    /// word, and hashes a key the same however it is reached.
    #[test]
    fn word_hash_separates_near_keys() {
        let h = |s: &[u8]| {
            let mut w = WordHash::default();
            w.write(s);
            w.finish()
        };
        let base = b"http://127.0.0.1:8080".to_vec();
        let mut seen = std::collections::HashSet::new();
        assert!(seen.insert(h(&base)));
        for i in 0..base.len() {
            let mut v = base.clone();
            v[i] ^= 1;
            assert!(seen.insert(h(&v)), "byte {i}");
        }
        for extra in 1..9 {
            let mut v = base.clone();
            v.extend(std::iter::repeat_n(0u8, extra));
            assert!(seen.insert(h(&v)), "{extra} zero bytes");
        }
        assert!(seen.insert(h(b"")) && seen.insert(h(b"\0")));
        assert_eq!(h(&base), h(b"http://127.0.0.1:8080"));
    }
    use http_body_util::Full;
    use hyper::body::Incoming;
    use hyper::header::HOST;
    use hyper_util::rt::TokioIo;
    use mosaic_core::time::Instant;

    fn attempt(url: &str, allow_private: bool) -> Attempt {
        Attempt {
            id: 1,
            provider: 0,
            provider_id: String::from("p"),
            method: Method::Get,
            url: url.to_string(),
            headers: Vec::new(),
            deadline: Instant::MAX,
            allow_private,
        }
    }

    /// Parsing with the thread's last origin remembered gives exactly what a full parse gives,
    /// whatever came before: same origin, other origins, prefixes of the origin, bad URLs.
    #[test]
    fn remembered_origins_parse_like_full_parses() {
        let urls = [
            "http://127.0.0.1:8080/a?b",
            "http://127.0.0.1:8080/c",
            "http://127.0.0.1:8080",
            "http://127.0.0.1:8080?q",
            "http://127.0.0.1:80800/x",
            "http://127.0.0.1:8080/x#frag",
            "http://127.0.0.1:8080@evil/x",
            "http://127.0.0.1:80/x",
            "http://127.0.0.1:8080/d",
            "https://[::1]:9/x",
            "https://[::1]:9/y?z",
            "HTTPS://[::1]:9/y",
            "https://api.github.com/repos/o/r",
            "https://api.github.com.evil/x",
            "https://api.github.com/",
            "ftp://x/",
        ];
        fn view(t: Option<Target<'_>>) -> Option<(bool, &str, &str, &str, u16, &str)> {
            t.map(|t| (t.https, t.origin, t.authority, t.host, t.port, t.path))
        }
        for _ in 0..2 {
            for u in urls {
                assert_eq!(view(Target::parse_cached(u)), view(Target::parse(u)), "{u}");
            }
        }
    }

    #[test]
    fn targets_split_into_origin_host_port_and_path() {
        let t = Target::parse("https://api.github.com/repos/o/r?per_page=5").expect("valid");
        assert!(t.https);
        assert_eq!(
            (t.origin, t.authority, t.host, t.port, t.path),
            (
                "https://api.github.com",
                "api.github.com",
                "api.github.com",
                443,
                "/repos/o/r?per_page=5"
            )
        );
        let t = Target::parse("http://127.0.0.1:8080").expect("valid");
        assert_eq!(
            (t.origin, t.port, t.path),
            ("http://127.0.0.1:8080", 8080, "/")
        );
        let t = Target::parse("HTTP://[::1]:9/x?q").expect("valid");
        assert_eq!((t.host, t.port, t.path), ("[::1]", 9, "/x?q"));
        let t = Target::parse("http://[::1]/").expect("valid");
        assert_eq!((t.host, t.port), ("[::1]", 80));
        let t = Target::parse("https://h:65535").expect("valid");
        assert_eq!((t.https, t.host, t.port, t.path), (true, "h", 65535, "/"));
        let t = Target::parse("Https://H:08/p").expect("valid");
        assert_eq!((t.https, t.host, t.port, t.path), (true, "H", 8, "/p"));
        for bad in [
            "ftp://x/",
            "http://",
            "http:///x",
            "http://u:p@host/",
            "http://host:0/",
            "http://host:99999/",
            "http://host:x/",
            "http://host:/",
            "http://host:+80/",
            "http://host:65536/",
            "http://host:1x/",
            "http://[::1/",
            "http://[::1]x/",
            "http://host/#frag",
            "http://host?q",
            "http://ho st/",
        ] {
            assert!(Target::parse(bad).is_none(), "{bad}");
        }
    }

    #[tokio::test]
    async fn names_of_internal_addresses_are_refused() {
        let r = resolve("localhost", 80, false).await;
        assert!(matches!(r, Err(Failure::Forbidden)), "{r:?}");
        let r = resolve("localhost", 80, true).await;
        assert!(r.is_ok_and(|a| !a.is_empty()));
    }

    #[tokio::test]
    async fn private_literals_are_forbidden_unless_allowed() {
        let Ok(c) = Clients::new() else {
            panic!("clients")
        };
        for url in [
            "http://127.0.0.1:9/x",
            "http://[::1]:9/x",
            "http://169.254.169.254/latest",
            "http://10.1.2.3:9/",
            "http://localhost:9/",
        ] {
            let r = c
                .send(&attempt(url, false), Bytes::new(), Duration::from_secs(1))
                .await;
            assert!(matches!(r, Err(FetchError::Forbidden)), "{url}");
        }
        // allowed: a refused connection, not a refusal by policy
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_or(9, |a| a.port());
        let r = c
            .send(
                &attempt(&format!("http://127.0.0.1:{port}/"), true),
                Bytes::new(),
                Duration::from_secs(2),
            )
            .await;
        assert!(matches!(r, Err(FetchError::Connect)));
    }

    /// A keep-alive server answering `ok` to every request; counts connections.
    async fn keep_alive_server() -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        let conns = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = Arc::clone(&conns);
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(|_req| async {
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                            Bytes::from_static(b"ok"),
                        )))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(s), svc)
                        .await;
                });
            }
        });
        (addr, conns)
    }

    #[tokio::test]
    async fn a_connection_read_to_its_end_is_reused_and_a_half_read_one_is_not() {
        let (addr, conns) = keep_alive_server().await;
        let c = Clients::new().expect("clients");
        let url = format!("http://{addr}/x");
        for _ in 0..5 {
            let r = c
                .send(&attempt(&url, true), Bytes::new(), Duration::from_secs(5))
                .await
                .expect("answered");
            assert_eq!(r.status, 200);
            let body = r.body.collect().await.expect("body").to_bytes();
            assert_eq!(&body[..], b"ok");
        }
        assert_eq!(conns.load(std::sync::atomic::Ordering::SeqCst), 1);
        // a body dropped unread: its connection is closed, the next request opens another
        let r = c
            .send(&attempt(&url, true), Bytes::new(), Duration::from_secs(5))
            .await
            .expect("answered");
        drop(r);
        let r = c
            .send(&attempt(&url, true), Bytes::new(), Duration::from_secs(5))
            .await
            .expect("answered");
        let _ = r.body.collect().await;
        assert_eq!(conns.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    /// Reads one request (head and `content-length` body) off `s`: its head and body, or
    /// `None` when the peer closed.
    async fn read_request(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(String, Vec<u8>)> {
        use tokio::io::AsyncReadExt;
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_string();
                let len = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                while buf.len() < end + 4 + len {
                    let mut chunk = [0u8; 65536];
                    let n = s.read(&mut chunk).await.ok().filter(|&n| n > 0)?;
                    buf.extend_from_slice(&chunk[..n]);
                }
                let body = buf[end + 4..end + 4 + len].to_vec();
                buf.drain(..end + 4 + len);
                return Some((head, body));
            }
            let mut chunk = [0u8; 65536];
            let n = s.read(&mut chunk).await.ok().filter(|&n| n > 0)?;
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// The attempt deadline on a pooled connection is watched by the connection's own timer,
    /// which an earlier request left armed for later: the earlier deadline still wins, and the
    /// connection that missed it is not reused.
    #[tokio::test]
    async fn a_pooled_connection_times_out_at_the_attempt_deadline() {
        let (addr, conns) = scripted(|head, _| {
            if head.contains("/slow") {
                (Vec::new(), false)
            } else {
                (
                    b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec(),
                    false,
                )
            }
        })
        .await;
        let c = Clients::new().expect("clients");
        let fast = attempt(&format!("http://{addr}/fast"), true);
        let r = c
            .send(&fast, Bytes::new(), Duration::from_secs(5))
            .await
            .expect("answered");
        assert_eq!(r.status, 200);
        r.body.collect().await.expect("body");
        let started = std::time::Instant::now();
        let slow = attempt(&format!("http://{addr}/slow"), true);
        let r = c
            .send(&slow, Bytes::new(), Duration::from_millis(150))
            .await;
        let waited = started.elapsed();
        assert!(matches!(r, Err(FetchError::Timeout)), "{:?}", r.err());
        assert!(
            waited >= Duration::from_millis(150) && waited < Duration::from_secs(2),
            "{waited:?}"
        );
        assert_eq!(
            conns.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "one pooled connection"
        );
        let r = c
            .send(&fast, Bytes::new(), Duration::from_secs(5))
            .await
            .expect("answered");
        assert_eq!(r.status, 200);
        assert_eq!(
            conns.load(std::sync::atomic::Ordering::SeqCst),
            2,
            "the late connection was closed"
        );
    }

    /// A server answering each request with what `reply` makes of its head and body (and
    /// closing after it when told to); counts connections.
    async fn scripted(
        reply: fn(&str, &[u8]) -> (Vec<u8>, bool),
    ) -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        let conns = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = Arc::clone(&conns);
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(async move {
                    use tokio::io::AsyncWriteExt;
                    let mut buf = Vec::new();
                    while let Some((head, body)) = read_request(&mut s, &mut buf).await {
                        let (bytes, close) = reply(&head, &body);
                        if s.write_all(&bytes).await.is_err() || close {
                            return;
                        }
                    }
                });
            }
        });
        (addr, conns)
    }

    fn get(url: &str) -> Attempt {
        attempt(url, true)
    }

    async fn body_of(c: &Clients, a: &Attempt, body: &[u8]) -> Result<(u16, Vec<u8>), String> {
        let r = c
            .send(a, Bytes::copy_from_slice(body), Duration::from_secs(5))
            .await
            .map_err(|e| format!("{e:?}"))?;
        let b = r.body.collect().await.map_err(|e| e.to_string())?;
        Ok((r.status, b.to_bytes().to_vec()))
    }

    #[tokio::test]
    async fn bodies_of_every_framing_arrive_whole_and_only_clean_ends_pool_the_connection() {
        let (addr, conns) = scripted(|head, body| {
            let path = head.split(' ').nth(1).unwrap_or("");
            match path {
                "/chunked" => (
                    b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nx-t: 1\r\n\r\n".to_vec(),
                    false,
                ),
                // a HEAD answer has no body (the length is the GET's)
                "/length" if head.starts_with("HEAD ") => {
                    (b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n".to_vec(), false)
                }
                "/length" => (b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello".to_vec(), false),
                "/close" => (b"HTTP/1.1 200 OK\r\n\r\nuntil the close".to_vec(), true),
                "/extra" => (b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokJUNK".to_vec(), false),
                "/interim" => (
                    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 3\r\n\r\nnew".to_vec(),
                    false,
                ),
                _ => {
                    // echo: the request head's framing and the body
                    let mut out = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    out.extend_from_slice(body);
                    (out, false)
                }
            }
        })
        .await;
        let count = || conns.load(std::sync::atomic::Ordering::SeqCst);
        let c = Clients::new().expect("clients");
        let url = |p: &str| format!("http://{addr}{p}");
        for _ in 0..3 {
            assert_eq!(
                body_of(&c, &get(&url("/chunked")), b"").await,
                Ok((200, b"abcde".to_vec()))
            );
            assert_eq!(
                body_of(&c, &get(&url("/length")), b"").await,
                Ok((200, b"hello".to_vec()))
            );
            assert_eq!(
                body_of(&c, &get(&url("/interim")), b"").await,
                Ok((201, b"new".to_vec()))
            );
        }
        let mut head = get(&url("/length"));
        head.method = Method::Head;
        assert_eq!(body_of(&c, &head, b"").await, Ok((200, Vec::new())));
        assert_eq!(count(), 1, "one connection for all of them");
        // a large body (sent after the head) and a small one (with it) arrive intact
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut post = get(&url("/echo"));
        post.method = Method::Post;
        assert_eq!(body_of(&c, &post, &big).await, Ok((200, big.clone())));
        assert_eq!(
            body_of(&c, &post, b"small").await,
            Ok((200, b"small".to_vec()))
        );
        assert_eq!(count(), 1);
        // a body that runs to the close ends the connection's use
        assert_eq!(
            body_of(&c, &get(&url("/close")), b"").await,
            Ok((200, b"until the close".to_vec()))
        );
        assert_eq!(
            body_of(&c, &get(&url("/length")), b"").await.map(|r| r.0),
            Ok(200)
        );
        assert_eq!(count(), 2);
        // bytes after the body are not a next response: that connection is not reused
        assert_eq!(
            body_of(&c, &get(&url("/extra")), b"").await,
            Ok((200, b"ok".to_vec()))
        );
        assert_eq!(
            body_of(&c, &get(&url("/length")), b"").await.map(|r| r.0),
            Ok(200)
        );
        assert_eq!(count(), 3);
    }

    #[tokio::test]
    async fn a_pooled_connection_closed_unanswered_is_retried_only_for_idempotent_requests() {
        // answers the first request of each connection, then reads the next and hangs up
        let (addr, conns) = scripted(|head, _| {
            if head.contains("x-second: 1") {
                (Vec::new(), true)
            } else {
                (
                    b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec(),
                    false,
                )
            }
        })
        .await;
        let c = Clients::new().expect("clients");
        let url = format!("http://{addr}/");
        let mut second = get(&url);
        second
            .headers
            .push((String::from("x-second"), String::from("1")));
        assert_eq!(body_of(&c, &get(&url), b"").await.map(|r| r.0), Ok(200));
        // GET on the pooled connection: closed without an answer, so it is sent again on a
        // new connection (which hangs up on it too: a reset, not a hang and not a loop)
        let r = c.send(&second, Bytes::new(), Duration::from_secs(5)).await;
        assert!(matches!(r, Err(FetchError::Reset)), "{:?}", r.err());
        assert_eq!(conns.load(std::sync::atomic::Ordering::SeqCst), 2);
        assert_eq!(body_of(&c, &get(&url), b"").await.map(|r| r.0), Ok(200));
        // a POST the server may have read is never sent twice: core decides what happens next
        let mut post = second.clone();
        post.method = Method::Post;
        let r = c
            .send(&post, Bytes::from_static(b"x"), Duration::from_secs(5))
            .await;
        assert!(matches!(r, Err(FetchError::Reset)), "{:?}", r.err());
        assert_eq!(conns.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_body_that_stalls_fails_and_a_slow_steady_one_does_not() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    while let Some((head, _)) = read_request(&mut s, &mut buf).await {
                        let _ = s
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nab")
                            .await;
                        if head.contains("/steady") {
                            // the rest, a byte at a time, each within the idle limit
                            for b in [b"c", b"d"] {
                                tokio::time::sleep(BODY_IDLE / 2).await;
                                let _ = s.write_all(b).await;
                            }
                        } else {
                            // the rest never comes, and the connection stays open
                            tokio::time::sleep(BODY_IDLE * 10).await;
                            return;
                        }
                    }
                });
            }
        });
        let c = Clients::new().expect("clients");
        let steady = body_of(&c, &get(&format!("http://{addr}/steady")), b"").await;
        assert_eq!(steady, Ok((200, b"abcd".to_vec())));
        let started = tokio::time::Instant::now();
        let stalled = body_of(&c, &get(&format!("http://{addr}/stalled")), b"").await;
        let e = stalled.expect_err("a stalled body is an error");
        assert!(e.contains("no part of the body"), "{e}");
        let waited = started.elapsed();
        assert!(waited >= BODY_IDLE && waited < BODY_IDLE * 2, "{waited:?}");
    }

    #[tokio::test]
    async fn broken_responses_are_errors_and_never_pooled() {
        let (addr, conns) = scripted(|head, _| match head.split(' ').nth(1).unwrap_or("") {
            "/short" => (
                b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort".to_vec(),
                true,
            ),
            "/garbage" => (b"SSH-2.0-OpenSSH_9.6\r\n\r\n".to_vec(), false),
            "/bad-chunk" => (
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n".to_vec(),
                false,
            ),
            _ => (
                b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec(),
                false,
            ),
        })
        .await;
        let c = Clients::new().expect("clients");
        let url = |p: &str| format!("http://{addr}{p}");
        let e = body_of(&c, &get(&url("/short")), b"")
            .await
            .expect_err("cut short");
        assert!(e.contains("before the body ended"), "{e}");
        let e = body_of(&c, &get(&url("/bad-chunk")), b"")
            .await
            .expect_err("bad chunk");
        assert!(e.contains("chunk"), "{e}");
        let r = c
            .send(&get(&url("/garbage")), Bytes::new(), Duration::from_secs(5))
            .await;
        assert!(matches!(r, Err(FetchError::Reset)), "{:?}", r.err());
        assert_eq!(conns.load(std::sync::atomic::Ordering::SeqCst), 3);
        assert_eq!(
            body_of(&c, &get(&url("/ok")), b"").await.map(|r| r.0),
            Ok(200)
        );
        assert_eq!(conns.load(std::sync::atomic::Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn a_pooled_connection_the_server_closed_is_replaced_transparently() {
        // a server that answers one request per connection and closes it without saying so
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut s, _)) = l.accept().await {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
                let _ = s.shutdown().await;
            }
        });
        let c = Clients::new().expect("clients");
        let url = format!("http://{addr}/");
        for i in 0..3 {
            let r = c
                .send(&attempt(&url, true), Bytes::new(), Duration::from_secs(5))
                .await
                .unwrap_or_else(|e| panic!("request {i}: {e:?}"));
            assert_eq!(r.status, 200);
            let _ = r.body.collect().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A TLS server for `localhost` with a certificate of its own; its certificate (DER).
    async fn tls_server() -> (SocketAddr, Vec<u8>) {
        let cert = rcgen::generate_simple_self_signed(vec![String::from("localhost")])
            .expect("certificate");
        let der = cert.cert.der().to_vec();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(
            rustls::pki_types::PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der()),
        );
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .expect("server config");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(s).await else {
                        return;
                    };
                    let svc =
                        hyper::service::service_fn(|req: hyper::Request<Incoming>| async move {
                            let host = req
                                .headers()
                                .get(HOST)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("")
                                .to_string();
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                                Bytes::from(format!("tls {} {host}", req.uri())),
                            )))
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        (addr, der)
    }

    #[tokio::test]
    async fn https_upstreams_are_verified_and_pooled() {
        let (addr, der) = tls_server().await;
        let url = format!("https://localhost:{}/v1/x?q=1", addr.port());
        // trusting the server's certificate as `[server] ca_file` does (a PEM file, added to
        // the webpki roots): the exchange works, with SNI and Host for the name
        let pem = format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &der)
        );
        let dir = std::env::temp_dir().join(format!("mosaic-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("ca.pem");
        std::fs::write(&file, pem).expect("write");
        let roots = read_roots(&file.to_string_lossy()).expect("a PEM of one certificate");
        assert_eq!(roots.len(), 1);
        let trusting = Clients {
            pool: Arc::new(Pool::default()),
            tls: tls_trusting(&roots).expect("tls"),
        };
        for _ in 0..3 {
            let r = trusting
                .send(&attempt(&url, true), Bytes::new(), Duration::from_secs(5))
                .await
                .expect("answered over TLS");
            assert_eq!(r.status, 200);
            let body = r.body.collect().await.expect("body").to_bytes();
            assert_eq!(
                String::from_utf8_lossy(&body),
                format!("tls /v1/x?q=1 localhost:{}", addr.port())
            );
        }
        let idle = trusting
            .pool
            .idle
            .lock()
            .map(|m| m.values().map(|o| o.conns.len()).sum::<usize>());
        assert_eq!(idle.ok(), Some(1), "one TLS connection, reused");
        // the default roots do not trust it: a connect failure (nothing was sent), so core
        // fails over
        let default = Clients::new().expect("clients");
        let r = default
            .send(&attempt(&url, true), Bytes::new(), Duration::from_secs(5))
            .await;
        assert!(
            matches!(r, Err(FetchError::Connect)),
            "untrusted certificate: {:?}",
            r.err()
        );
        // the webhook path too, with the reason and no URL in the message
        let r = default
            .post(&url, &[], b"{}", Duration::from_secs(5), true)
            .await;
        let Err(PostError::Network(m)) = r else {
            panic!("untrusted certificate: {r:?}")
        };
        assert!(m.contains("TLS"), "{m}");
        assert!(!m.contains("q=1"), "{m}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn ca_files_that_hold_no_usable_certificate_are_refused_with_the_reason() {
        let dir = std::env::temp_dir().join(format!("mosaic-badca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let missing = dir.join("missing.pem");
        let e = read_roots(&missing.to_string_lossy()).expect_err("missing");
        assert!(e.contains("cannot read"), "{e}");
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "just text\n").expect("write");
        let e = read_roots(&empty.to_string_lossy()).expect_err("no certificate");
        assert!(e.contains("holds no certificate"), "{e}");
        let broken = dir.join("broken.pem");
        std::fs::write(
            &broken,
            "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
        )
        .expect("write");
        let e = read_roots(&broken.to_string_lossy()).expect_err("not a certificate");
        assert!(e.contains("not usable as a root"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn webhook_posts_refuse_private_destinations_unless_allowed() {
        let Ok(c) = Clients::new() else {
            panic!("clients")
        };
        let h = [(String::from("content-type"), String::from("text/plain"))];
        for url in [
            "http://127.0.0.1:9/x",
            "http://localhost:9/x",
            "http://[::1]:9/",
        ] {
            let r = c.post(url, &h, b"e", Duration::from_secs(1), false).await;
            assert!(matches!(r, Err(PostError::Refused(_))), "{url}: {r:?}");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_or(9, |a| a.port());
        let url = format!("http://127.0.0.1:{port}/?token=t0k");
        let r = c.post(&url, &h, b"e", Duration::from_secs(2), true).await;
        let Err(PostError::Network(m)) = r else {
            panic!("a refused connection: {r:?}")
        };
        assert!(!m.contains("t0k"), "the URL leaked into {m}");
    }
}
