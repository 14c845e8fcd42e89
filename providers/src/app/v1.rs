//! `/v1` on every host: [`crate::v1`]'s plan, core's driver on the pinned route, each attempt
//! rewritten by the attempted provider's plugin and sent with the plugin's body
//! ([`AppHost::send`]), the answer normalized.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering};
use core::time::Duration;

use mosaic_core::driver::{self, Reply, ReplyBody, UpstreamResponse};
use mosaic_core::engine::{Attempt, FetchError, Request, Router, State};
use mosaic_core::http::{HeaderList, Method};
use mosaic_core::problem::{Problem, ProblemKind};
use mosaic_core::region::Locality;
use mosaic_core::time::Instant;

use super::{bytes_reply, AppHost};
use crate::api::Operation;
use crate::v1::{self as plan, Answer};

/// [`driver::Host`] for one `/v1` request: the host, with each attempt rewritten by the
/// attempted provider's plugin.
struct V1Host<'a, H> {
    inner: &'a H,
    router: &'a Router,
    op: &'a Operation,
    tenant: Option<usize>,
    /// The provider whose plugin refused the operation (`usize::MAX`: none), for
    /// [`plan::unsupported`] after the call (an atomic: a native host's futures are `Send`).
    refused: AtomicUsize,
}

impl<H: AppHost> driver::Host for V1Host<'_, H> {
    type Body = H::Body;

    fn now(&self) -> Instant {
        self.inner.now()
    }

    fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        self.inner.with_state(f)
    }

    async fn fetch(&self, attempt: &Attempt) -> Result<UpstreamResponse<H::Body>, FetchError> {
        match plan::rewrite_attempt(
            self.router,
            self.inner.registry(),
            self.op,
            self.tenant,
            attempt,
        ) {
            Ok((a, body)) => {
                self.inner
                    .send(&a, body.as_deref().unwrap_or_default())
                    .await
            }
            Err(_) => {
                // not an upstream failure: end the call (Forbidden is final) and answer 501/400
                self.refused.store(attempt.provider, Ordering::Relaxed);
                Err(FetchError::Forbidden)
            }
        }
    }

    async fn sleep_until(&self, t: Instant) {
        self.inner.sleep_until(t).await;
    }

    async fn cache_get(&self, key: &str) -> Option<Vec<u8>> {
        self.inner.cache_get(key).await
    }

    async fn cache_put(&self, key: &str, value: Vec<u8>, ttl: Duration) {
        self.inner.cache_put(key, value, ttl).await;
    }

    fn cache_release(&self, key: &str) {
        self.inner.cache_release(key);
    }

    async fn read_body(&self, body: H::Body, cap: usize) -> Result<Vec<u8>, H::Body> {
        self.inner.read_body(body, cap).await
    }

    fn keeps_log(&self) -> bool {
        self.inner.keeps_log()
    }
}

fn answer_reply<B>(a: Answer, id: &str) -> Reply<B> {
    let mut r = bytes_reply(a.status, "application/json", a.body, id);
    r.headers = a.headers;
    r.log.status = a.status;
    r
}

/// One `/v1` request (the body read within `max_body_bytes`).
#[allow(clippy::too_many_arguments)]
pub(super) async fn serve<H: AppHost>(
    host: &H,
    router: &Router,
    method: Method,
    target: &str,
    mut headers: HeaderList,
    body: &[u8],
    client_ip: Option<&str>,
    id: &str,
) -> Reply<H::Body> {
    let route = || Some(String::from("v1"));
    if target.split('?').next() == Some("/v1/openapi.json") {
        let mut r = if matches!(method, Method::Get | Method::Head) {
            bytes_reply(
                200,
                "application/json",
                crate::openapi::json().into_bytes(),
                id,
            )
        } else {
            super::problem(
                &Problem::new(
                    ProblemKind::NoRoute,
                    format!("{} is not allowed on /v1/openapi.json", method.as_str()),
                ),
                id,
            )
        };
        r.log.route = route();
        return r;
    }
    let registry = host.registry();
    let prepared = match plan::prepare(router, registry, method, target, &headers, body, id) {
        Ok(p) => p,
        Err(a) => {
            let mut r = answer_reply(a, id);
            r.log.route = route();
            return r;
        }
    };
    prepared.pin_headers(&mut headers);
    let request = Request {
        method,
        host: None,
        target,
        headers: &headers,
        client_ip,
        https: false,
        locality: Locality::default(),
        id,
    };
    let v1 = V1Host {
        inner: host,
        router,
        op: &prepared.op,
        tenant: prepared.tenant,
        refused: AtomicUsize::new(usize::MAX),
    };
    let reply = driver::handle(&v1, router, &request, 0).await;
    let mut log = reply.log.clone();
    if log.route.is_none() {
        log.route = route();
    }
    let unsupported = match v1.refused.load(Ordering::Relaxed) {
        usize::MAX => None,
        p => plan::unsupported(router, registry, &prepared.op, p),
    };
    let answer = if let Some(u) = unsupported {
        Answer::unsupported(&u, id)
    } else if reply.log.problem.is_some() {
        // core's own problem (no route, limits, every provider unavailable): as it is
        let mut reply = reply;
        reply.log = log;
        return reply;
    } else {
        let provider = reply.log.providers.last().cloned().unwrap_or_default();
        let bytes = match reply.body {
            ReplyBody::Bytes(b) => Ok(b),
            ReplyBody::Stream(s) => host
                .read_body(s, plan::MAX_ANSWER_BYTES)
                .await
                .map_err(|_| ()),
        };
        match bytes {
            Ok(b) => plan::answer(
                &router.config,
                registry,
                &prepared.op,
                &plan::Reply {
                    provider: &provider,
                    status: reply.status,
                    headers: &reply.headers,
                    body: &b,
                },
                id,
            ),
            Err(()) => Answer::problem(
                &Problem::new(
                    ProblemKind::UpstreamError,
                    format!(
                        "{provider} answered with more than {} bytes; too large to normalize",
                        plan::MAX_ANSWER_BYTES
                    ),
                ),
                id,
            ),
        }
    };
    let mut r = answer_reply(answer, id);
    log.status = r.status;
    r.log = log;
    r
}
