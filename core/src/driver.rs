//! The one request loop every host shares.
//!
//! A host implements the small [`Host`] trait — fetch, sleep, clock, state access, cache
//! get/put, body buffering — and calls [`handle`]. The trait has no `Send` bound: Workers
//! futures are not `Send`, and a native host's futures are `Send` whenever its `Host` is.
//! The loop decides nothing itself either: it asks [`Router::admit`], [`Call::poll`] and the
//! cache policy, and performs what they say.

use alloc::borrow::Cow;
use alloc::string::String;
use alloc::vec::Vec;
use core::future::Future;
use core::time::Duration;

use crate::cache::{self, Entry, Freshness};
use crate::engine::{
    Admitted, Attempt, Call, FetchError, Final, Outcome, Request, Router, State, Step,
};
use crate::http::{is_hop_by_hop, HeaderList, Headers};
use crate::problem::{Problem, ProblemKind};
use crate::time::Instant;

/// An upstream response: head and the host's body handle.
pub struct UpstreamResponse<B> {
    /// Status.
    pub status: u16,
    /// Headers.
    pub headers: HeaderList,
    /// Body, read by the host.
    pub body: B,
}

/// What a host provides to the loop.
pub trait Host {
    /// The host's streaming body type.
    type Body;
    /// The current time (read after every I/O: the Workers clock only moves then).
    fn now(&self) -> Instant;
    /// Runs `f` with exclusive access to the router state (a mutex, a `RefCell`, …).
    fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R;
    /// Performs an attempt; must give up at `attempt.deadline` with [`FetchError::Timeout`].
    fn fetch(
        &self,
        attempt: &Attempt,
    ) -> impl Future<Output = Result<UpstreamResponse<Self::Body>, FetchError>>;
    /// Sleeps until `t`.
    fn sleep_until(&self, t: Instant) -> impl Future<Output = ()>;
    /// Reads a cache entry (L1 then L2 …). A host that collapses concurrent misses waits here
    /// for another request's fetch of the same key.
    fn cache_get(&self, key: &str) -> impl Future<Output = Option<Vec<u8>>>;
    /// Stores a cache entry for `ttl`.
    fn cache_put(&self, key: &str, value: Vec<u8>, ttl: Duration) -> impl Future<Output = ()>;
    /// Called once after a miss for `key` was handled (stored or not): wake collapsed waiters.
    fn cache_release(&self, _key: &str) {}
    /// A header list whose strings the next call may write over (see
    /// [`engine::upstream_headers_into`](crate::engine::upstream_headers_into)), when the host
    /// keeps the lists of finished requests; `None` (the default) for a new one.
    fn spare_headers(&self) -> Option<HeaderList> {
        None
    }
    /// Takes back the upstream header list of a finished call, for [`Host::spare_headers`];
    /// the default drops it.
    fn recycle_headers(&self, _list: HeaderList) {}
    /// Whether the host reads the strings of the reply's [`RequestLog`] (its route name and
    /// providers, and its request id once the reply carries it in a header); when it says no,
    /// a proxied reply leaves them empty and saves their copies. Everything else in the log
    /// is filled either way. The default is yes.
    fn keeps_log(&self) -> bool {
        true
    }
    /// Buffers a body up to `cap` bytes; a longer body comes back intact as `Err` to stream.
    fn read_body(
        &self,
        body: Self::Body,
        cap: usize,
    ) -> impl Future<Output = Result<Vec<u8>, Self::Body>>;
}

/// A reply body.
pub enum ReplyBody<B> {
    /// Stream the upstream body.
    Stream(B),
    /// Send these bytes.
    Bytes(Vec<u8>),
}

/// Cache result names for logs and headers.
pub mod cache_result {
    /// Served fresh from the cache.
    pub const HIT: &str = "hit";
    /// Not in the cache.
    pub const MISS: &str = "miss";
    /// Served stale while revalidating.
    pub const STALE: &str = "stale";
    /// Served stale because every provider failed.
    pub const STALE_IF_ERROR: &str = "stale-if-error";
    /// The route or request does not use the cache.
    pub const BYPASS: &str = "bypass";
}

/// One structured log line's worth of facts about a request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestLog {
    /// Request id.
    pub request_id: String,
    /// Tenant name, if known.
    pub tenant: Option<Cow<'static, str>>,
    /// Route name, if matched.
    pub route: Option<String>,
    /// Providers tried, in order.
    pub providers: Vec<String>,
    /// Attempts made.
    pub attempts: u32,
    /// Final status.
    pub status: u16,
    /// Total latency.
    pub latency: Duration,
    /// Cache result.
    pub cache: &'static str,
    /// Problem code, when answering with one.
    pub problem: Option<&'static str>,
    /// Why retries stopped early, if they did.
    pub give_up: Option<&'static str>,
}

/// What to answer.
pub struct Reply<B> {
    /// Status.
    pub status: u16,
    /// Headers (hop-by-hop removed).
    pub headers: HeaderList,
    /// Body.
    pub body: ReplyBody<B>,
    /// Facts for the log line.
    pub log: RequestLog,
    /// Served stale-while-revalidate: the host should run [`refresh`] in the background.
    pub revalidate: bool,
}

fn problem_reply<B>(p: &Problem, log: RequestLog, extra: &[(String, String)]) -> Reply<B> {
    let mut headers = p.headers();
    headers.extend(extra.iter().cloned());
    headers.push((String::from("x-mosaic-request-id"), log.request_id.clone()));
    let mut log = log;
    log.status = p.status();
    log.problem = Some(p.kind.slug());
    Reply {
        status: p.status(),
        headers,
        body: ReplyBody::Bytes(p.to_json(&log.request_id).into_bytes()),
        log,
        revalidate: false,
    }
}

/// Answers a problem directly (hosts use it for errors found before routing).
#[must_use]
pub fn problem<B>(p: &Problem, request_id: &str) -> Reply<B> {
    problem_reply(
        p,
        RequestLog {
            request_id: String::from(request_id),
            cache: cache_result::BYPASS,
            ..RequestLog::default()
        },
        &[],
    )
}

fn entry_reply<B>(
    e: Entry,
    now: Instant,
    result: &'static str,
    mut log: RequestLog,
    extra: &[(String, String)],
) -> Reply<B> {
    let mut headers: HeaderList = e
        .headers
        .into_iter()
        .filter(|(n, _)| !n.eq_ignore_ascii_case("age"))
        .collect();
    headers.push((
        String::from("age"),
        alloc::format!("{}", now.saturating_since(e.stored).as_secs()),
    ));
    headers.push((String::from("x-mosaic-cache"), String::from(result)));
    headers.push((String::from("x-mosaic-request-id"), log.request_id.clone()));
    headers.extend(extra.iter().cloned());
    log.status = e.status;
    log.cache = result;
    Reply {
        status: e.status,
        headers,
        body: ReplyBody::Bytes(e.body),
        log,
        revalidate: result == cache_result::STALE,
    }
}

/// Response headers passed to the caller: everything but hop-by-hop.
#[must_use]
pub fn downstream_headers(upstream: &[(String, String)]) -> HeaderList {
    let connection = upstream.header("connection");
    upstream
        .iter()
        .filter(|(n, _)| !is_hop_by_hop(n, connection))
        .cloned()
        .collect()
}

/// [`downstream_headers`] in place: the upstream's own list, hop-by-hop headers removed, with
/// room for `more` headers the caller adds.
fn into_downstream(mut upstream: HeaderList, more: usize) -> HeaderList {
    let connection = upstream.header("connection").map(String::from);
    upstream.retain(|(n, _)| !is_hop_by_hop(n, connection.as_deref()));
    upstream.reserve(more);
    upstream
}

/// Handles one proxied request end to end: admission, cache, engine loop, cache store.
pub async fn handle<H: Host>(
    host: &H,
    router: &Router,
    req: &Request<'_>,
    max_cache_body: usize,
) -> Reply<H::Body> {
    run(host, router, req, max_cache_body, false).await
}

/// Re-fetches a request and stores the result, ignoring what is cached (stale-while-revalidate).
pub async fn refresh<H: Host>(
    host: &H,
    router: &Router,
    req: &Request<'_>,
    max_cache_body: usize,
) -> Reply<H::Body> {
    run(host, router, req, max_cache_body, true).await
}

async fn run<H: Host>(
    host: &H,
    router: &Router,
    req: &Request<'_>,
    max_cache_body: usize,
    refreshing: bool,
) -> Reply<H::Body> {
    let start = host.now();
    let mut log = RequestLog {
        request_id: String::from(req.id),
        cache: cache_result::BYPASS,
        ..RequestLog::default()
    };
    // a request that needs no cache lookup starts its call under the same lock as admission;
    // the call is built where it stays (it is large: moving it costs copies)
    let mut slot: Option<Call> = None;
    let mut step = Step::Wait;
    let mut spare = host.spare_headers();
    let admitted: Admitted = match host.with_state(|s| {
        let a = router.admit(s, req, start)?;
        if a.cache_key.is_none() {
            let spare = spare.take().unwrap_or_default();
            let call = slot.insert(Call::new_reusing(router, s, req, &a, start, spare));
            step = call.poll_lending(router, s, start);
        }
        Ok::<_, Problem>(a)
    }) {
        Ok(a) => a,
        Err(p) => {
            log.latency = host.now().saturating_since(start);
            return problem_reply(&p, log, &[]);
        }
    };
    let route = &router.config.routes[admitted.route];
    let keep_log = host.keeps_log();
    if keep_log {
        log.route = Some(route.name.clone());
    }
    log.tenant = Some(admitted.tenant.name.clone());
    let extra = admitted.limit_headers.clone();

    // the clock is read again only after something was awaited
    let mut now = start;
    let mut stale: Option<Entry> = None;
    if let Some(key) = &admitted.cache_key {
        log.cache = cache_result::MISS;
        if !refreshing {
            let cached = host.cache_get(key).await;
            now = host.now();
            if let Some(bytes) = cached {
                if let Ok(e) = Entry::decode(&bytes) {
                    if e.matches_vary(req.headers) {
                        match e.freshness(now) {
                            Freshness::Fresh | Freshness::StaleWhileRevalidate => {
                                let res = if e.freshness(now) == Freshness::Fresh {
                                    cache_result::HIT
                                } else {
                                    cache_result::STALE
                                };
                                host.cache_release(key);
                                host.with_state(|s| s.metrics.count_cache(&route.name, res));
                                log.latency = now.saturating_since(start);
                                return entry_reply(e, now, res, log, &extra);
                            }
                            Freshness::StaleIfError => stale = Some(e),
                            Freshness::Expired => {}
                        }
                    }
                }
            }
        }
    }

    // the state is shared by every request of the process: each visit records what happened
    // and asks for the next step at once, so a request takes the state's lock once per step
    if slot.is_none() {
        host.with_state(|s| {
            let spare = spare.take().unwrap_or_default();
            let call = slot.insert(Call::new_reusing(router, s, req, &admitted, now, spare));
            step = call.poll_lending(router, s, now);
        });
    }
    let Some(call) = slot.as_mut() else {
        let p = Problem::new(ProblemKind::Internal, "the call was not started");
        return problem_reply(&p, log, &extra);
    };
    let mut last: Option<(u32, UpstreamResponse<H::Body>)> = None;
    let fin = loop {
        match step {
            Step::Attempt(a) => {
                let r = host.fetch(&a).await;
                let id = a.id;
                call.reclaim(a);
                now = host.now();
                step = host.with_state(|s| {
                    match r {
                        Ok(resp) => {
                            call.handle_response(router, s, id, resp.status, &resp.headers, now);
                            last = Some((id, resp));
                        }
                        Err(e) => call.handle_outcome(router, s, id, Outcome::Error(e), now),
                    }
                    call.poll_lending(router, s, now)
                });
            }
            Step::Sleep(t) => {
                host.sleep_until(t).await;
                now = host.now();
                step = host.with_state(|s| call.poll_lending(router, s, now));
            }
            Step::Respond(f) => break f,
            Step::Wait => {
                break Final::Problem(Problem::new(
                    ProblemKind::Internal,
                    "engine waited with no attempt in flight",
                ))
            }
        }
    };
    log.attempts = call.attempts().len() as u32;
    if keep_log {
        log.providers = call
            .attempts()
            .iter()
            .map(|a| router.config.providers[a.provider].id.clone())
            .collect();
    }
    let last_provider = call.attempts().last().map(|a| a.provider);
    log.give_up = call.give_up_reason();
    // the call has answered: its header list serves a later request
    host.recycle_headers(call.take_headers());
    // `now` was read after the last await: the call has answered since without waiting
    log.latency = now.saturating_since(start);

    let reply = match fin {
        Final::Upstream { attempt, status } => {
            let resp = match last {
                Some((id, r)) if id == attempt => Some(r),
                _ => None,
            };
            match resp {
                None => problem_reply(
                    &Problem::new(ProblemKind::Internal, "final response body missing"),
                    log,
                    &extra,
                ),
                Some(resp) if status >= 500 && stale.is_some() => {
                    drop(resp);
                    let e = stale.take();
                    match e {
                        Some(e) => {
                            host.with_state(|s| {
                                s.metrics
                                    .count_cache(&route.name, cache_result::STALE_IF_ERROR)
                            });
                            entry_reply(e, now, cache_result::STALE_IF_ERROR, log, &extra)
                        }
                        None => problem_reply(
                            &Problem::new(ProblemKind::Internal, "stale entry vanished"),
                            log,
                            &extra,
                        ),
                    }
                }
                Some(resp) => {
                    let provider = last_provider
                        .map(|p| router.config.providers[p].id.clone())
                        .unwrap_or_default();
                    log.status = status;
                    let life = admitted.cache_key.as_ref().and_then(|_| {
                        cache::storable(&route.cache, status, &resp.headers[..], now)
                    });
                    let UpstreamResponse {
                        headers: upstream,
                        body: upstream_body,
                        ..
                    } = resp;
                    // the cache keeps a copy; the caller gets the upstream's own list, filtered
                    let stored_headers = life.map(|_| downstream_headers(&upstream));
                    let mut headers = into_downstream(upstream, 3 + extra.len());
                    headers.push((String::from("x-mosaic-provider"), provider));
                    let id = if keep_log {
                        log.request_id.clone()
                    } else {
                        core::mem::take(&mut log.request_id)
                    };
                    headers.push((String::from("x-mosaic-request-id"), id));
                    headers.extend(extra.iter().cloned());
                    let body = match (life, stored_headers, &admitted.cache_key) {
                        (Some(life), Some(stored_headers), Some(key)) => {
                            match host.read_body(upstream_body, max_cache_body).await {
                                Ok(bytes) => {
                                    let e = Entry::new(
                                        now,
                                        life,
                                        status,
                                        stored_headers,
                                        req.headers,
                                        bytes.clone(),
                                    );
                                    host.cache_put(key, e.encode(), life.retain()).await;
                                    ReplyBody::Bytes(bytes)
                                }
                                Err(b) => ReplyBody::Stream(b),
                            }
                        }
                        _ => ReplyBody::Stream(upstream_body),
                    };
                    if admitted.cache_key.is_some() {
                        headers.push((
                            String::from("x-mosaic-cache"),
                            String::from(cache_result::MISS),
                        ));
                        host.with_state(|s| s.metrics.count_cache(&route.name, cache_result::MISS));
                    }
                    Reply {
                        status,
                        headers,
                        body,
                        log,
                        revalidate: false,
                    }
                }
            }
        }
        Final::Problem(p) => match stale.take() {
            Some(e) => {
                host.with_state(|s| {
                    s.metrics
                        .count_cache(&route.name, cache_result::STALE_IF_ERROR)
                });
                entry_reply(e, now, cache_result::STALE_IF_ERROR, log, &extra)
            }
            None => problem_reply(&p, log, &extra),
        },
    };
    if let Some(key) = &admitted.cache_key {
        host.cache_release(key);
    }
    reply
}
