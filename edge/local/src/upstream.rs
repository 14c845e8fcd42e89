//! The upstream HTTP client: executes core's `Attempt` (URL, headers, deadline) and classifies
//! failures into core's `FetchError`, refusing private addresses unless the provider allows them.
//!
//! Two pooled clients share the work: the strict one resolves names through [`GuardedResolver`],
//! which refuses a name that resolves to a private, loopback, link-local or otherwise internal
//! address (judged by core's `target::is_private_host`), so DNS cannot smuggle a request inside;
//! the open one is for providers with `allow_private = true`. IP literals are checked before
//! connecting. Redirects are never followed: the caller gets them as they are.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures_util::TryStreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use mosaic_core::driver::UpstreamResponse;
use mosaic_core::engine::{Attempt, FetchError};
use mosaic_core::target::is_private_host;
use mosaic_providers::hooks::PostError;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::host::Body;

/// The error a guarded resolution returns; found again in the error chain to answer
/// [`FetchError::Forbidden`] rather than a plain connect failure.
#[derive(Debug)]
struct ForbiddenAddress(String);

impl std::fmt::Display for ForbiddenAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}` resolves to a private address", self.0)
    }
}

impl std::error::Error for ForbiddenAddress {}

/// A resolver that refuses names resolving to any internal address.
struct GuardedResolver;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if addrs.is_empty() || addrs.iter().any(|a| is_private_host(&a.ip().to_string())) {
                return Err(
                    Box::new(ForbiddenAddress(host)) as Box<dyn std::error::Error + Send + Sync>
                );
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// The pooled clients.
///
/// Each worker thread has its own (see [`Clients::local`]): a pooled connection is driven by a
/// task on the runtime that opened it, so a pool shared across worker threads would hand every
/// request's bytes from one thread to another.
#[derive(Clone)]
pub struct Clients {
    strict: reqwest::Client,
    open: reqwest::Client,
}

fn builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(256)
        .user_agent(concat!("mosaic-edge/", env!("CARGO_PKG_VERSION")))
}

impl Clients {
    /// Builds both clients.
    ///
    /// # Errors
    /// When TLS cannot be initialised.
    pub fn new() -> Result<Clients, String> {
        let strict = builder()
            .dns_resolver(std::sync::Arc::new(GuardedResolver))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let open = builder()
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Clients { strict, open })
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

    /// Performs `a` with `body`, giving up after `timeout`.
    pub async fn send(
        &self,
        a: &Attempt,
        body: Bytes,
        timeout: Duration,
    ) -> Result<UpstreamResponse<Body>, FetchError> {
        let url = reqwest::Url::parse(&a.url).map_err(|_| FetchError::Connect)?;
        if !a.allow_private && private_literal(&url) {
            return Err(FetchError::Forbidden);
        }
        let method = reqwest::Method::from_bytes(a.method.as_str().as_bytes())
            .map_err(|_| FetchError::Connect)?;
        let client = if a.allow_private {
            &self.open
        } else {
            &self.strict
        };
        let mut headers = reqwest::header::HeaderMap::with_capacity(a.headers.len());
        for (n, v) in &a.headers {
            if let (Ok(n), Ok(v)) = (
                reqwest::header::HeaderName::from_bytes(n.as_bytes()),
                reqwest::header::HeaderValue::from_str(v),
            ) {
                headers.append(n, v);
            }
        }
        let mut req = client.request(method, url).headers(headers);
        if !body.is_empty() {
            req = req.body(body);
        }
        let resp = match tokio::time::timeout(timeout, req.send()).await {
            Err(_) => return Err(FetchError::Timeout),
            Ok(Err(e)) => return Err(classify(&e)),
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
        let stream = resp
            .bytes_stream()
            .map_ok(Frame::data)
            .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>);
        Ok(UpstreamResponse {
            status,
            headers,
            body: BodyExt::boxed(StreamBody::new(stream)),
        })
    }
}

/// Whether `url` names an internal address literally (an IP literal or a name such as
/// `localhost` that core judges private); names are checked again when resolved.
fn private_literal(url: &reqwest::Url) -> bool {
    let literal = match url.host() {
        Some(url::Host::Ipv4(ip)) => Some(ip.to_string()),
        Some(url::Host::Ipv6(ip)) => Some(ip.to_string()),
        Some(url::Host::Domain(d)) => is_private_host(d).then(|| d.to_string()),
        None => None,
    };
    literal.is_some_and(|h| is_private_host(&h))
}

impl Clients {
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
        let url = reqwest::Url::parse(url)
            .map_err(|e| PostError::Network(format!("invalid destination URL: {e}")))?;
        if !allow_private && private_literal(&url) {
            return Err(PostError::Refused(String::from(
                "the destination is a private address (set allow_private = true to allow it)",
            )));
        }
        let client = if allow_private {
            &self.open
        } else {
            &self.strict
        };
        let mut map = reqwest::header::HeaderMap::with_capacity(headers.len());
        for (n, v) in headers {
            if let (Ok(n), Ok(v)) = (
                reqwest::header::HeaderName::from_bytes(n.as_bytes()),
                reqwest::header::HeaderValue::from_str(v),
            ) {
                map.append(n, v);
            }
        }
        let req = client
            .post(url)
            .headers(map)
            .body(Bytes::copy_from_slice(body));
        let exchange = async {
            let resp = req.send().await?;
            let status = resp.status().as_u16();
            // drain (bounded by the same deadline) so the connection returns to the pool
            let _ = resp.bytes().await;
            Ok::<u16, reqwest::Error>(status)
        };
        match tokio::time::timeout(timeout, exchange).await {
            Err(_) => Err(PostError::Timeout),
            Ok(Ok(status)) => Ok(status),
            Ok(Err(e)) => Err(match classify(&e) {
                FetchError::Forbidden => PostError::Refused(String::from(
                    "the destination resolves to a private address (set allow_private = true to allow it)",
                )),
                FetchError::Timeout => PostError::Timeout,
                _ => PostError::Network(describe(e)),
            }),
        }
    }
}

/// An error and its causes, without the URL.
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        text.push_str(": ");
        text.push_str(&s.to_string());
        src = s.source();
    }
    text
}

/// Classifies a client error once, here.
fn classify(e: &reqwest::Error) -> FetchError {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = src {
        if s.is::<ForbiddenAddress>() {
            return FetchError::Forbidden;
        }
        src = s.source();
    }
    if e.is_timeout() {
        FetchError::Timeout
    } else if e.is_connect() {
        FetchError::Connect
    } else {
        FetchError::Reset
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mosaic_core::http::Method;
    use mosaic_core::time::Instant;
    use std::str::FromStr;

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

    #[tokio::test]
    async fn the_resolver_refuses_names_of_internal_addresses() {
        let Ok(name) = Name::from_str("localhost") else {
            panic!("a valid name")
        };
        let r = GuardedResolver.resolve(name).await;
        let Err(e) = r else {
            panic!("localhost must be refused")
        };
        assert!(e.is::<ForbiddenAddress>(), "{e}");
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
