//! The one application every host serves: every path of a request is decided here, once.
//!
//! ```text
//! host request ──► app::handle(host, serving, inbound) ──► Handled { reply, after, lines }
//!                   ├─ front door: head checks (unless the wire did them), method, Host, body cap
//!                   ├─ /_mosaic/health
//!                   ├─ /_mosaic/{metrics,state,reload,providers,hooks/dead…}   (admin token)
//!                   ├─ /hooks/{endpoint}     (crate::hooks)
//!                   ├─ /v1/…, /v1/openapi.json (crate::v1, crate::openapi)
//!                   └─ everything else: core's driver (select, attempt, retry, breaker, cache)
//! ```
//!
//! A host implements [`AppHost`] — core's [`driver::Host`] (fetch, sleep, clock, state, cache
//! tiers) and [`HookHost`] (KV, a POST) plus a few translations of its own (reading the inbound
//! body, sending a `/v1` attempt with the plugin's body, its platform facts, reloading its
//! config source) — and calls [`handle`] for every request. What the application decides comes
//! back as data: the reply, whether the connection may be reused ([`Handled::close`]), work to
//! run after answering ([`Job`], run with [`run_job`] in the host's background mechanism:
//! a task natively, `ctx.wait_until` on Workers, after the response on Spin) and log lines
//! ([`Handled::lines`], JSON objects the host writes as they are). The access line of a request
//! is [`access_line`], the same fields on every host.
//!
//! Nothing here does I/O itself or reads a clock: every effect goes through the host.

use alloc::borrow::Cow;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::future::Future;
use core::time::Duration;

use mosaic_core::admin::{health_json, state_json, CacheStats};
use mosaic_core::driver::{self, cache_result, Reply, ReplyBody, RequestLog, UpstreamResponse};
use mosaic_core::engine::{classify, Attempt, Endpoint, FetchError, Request, Router, State};
use mosaic_core::head::{check_head, Framing, HeadLimits};
use mosaic_core::http::{HeaderList, Headers as _, Method};
use mosaic_core::problem::{Problem, ProblemKind};
use mosaic_core::region::Locality;
use mosaic_core::target::{path_of, percent_decode};
use mosaic_core::time::Instant;
use serde_json::Value;

use crate::declarative::Registry;
use crate::hooks::{
    body_limit, handle_hook, list_dead_letters, payload_too_large, replay_dead_letter, Delivery,
    HookHost, HookReply,
};

mod build;
mod jobs;
#[cfg(feature = "text")]
mod lifecycle;
mod persist;
#[cfg(feature = "text")]
pub mod text;
mod v1;

pub use build::{build_router, no_source, pick_source, reload_state, Source, CONFIG_KEY, GOOD_KEY};
pub use jobs::{run_job, Job, Revalidate, Window};
#[cfg(feature = "text")]
pub use lifecycle::{check, errors_line, Checked, Fresh, Keeping, Lifecycle, Outcome, SourceKv};
pub use persist::{restore_state, WriteBehind, STATE_KEY};

/// The application's KV key of the declarative providers (JSON, see [`crate::declarative`]),
/// in the host's application namespace (natively `mosaic:` is put before every key).
pub const PROVIDERS_KEY: &str = "providers";
/// Largest declaration set `PUT /_mosaic/providers` accepts.
pub const MAX_DECLARATIONS: u64 = 1 << 20;
/// The admin endpoints, named in the answer to an unknown one.
pub const ADMIN_ENDPOINTS: &str = "GET health, GET metrics, GET state, POST reload, GET|PUT providers, GET hooks/dead, POST hooks/dead/{id}/replay";

/// Why an inbound body could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadError {
    /// Longer than the cap the application gave.
    TooLarge,
    /// The platform failed to read it (the text is for the caller and the log).
    Failed(String),
}

/// The platform's own figures, for health, state and metrics.
#[derive(Clone, Debug, Default)]
pub struct Platform {
    /// The shared tier's kind (`memory`, `file`, `redis`, `workers-kv`, `spin-kv`).
    pub store: &'static str,
    /// Whether that store answers (health's readiness).
    pub ready: bool,
    /// The in-memory tier's figures.
    pub cache: CacheStats,
    /// What the host adds to `/_mosaic/state` and health (an object: generation, config
    /// source, connections, isolate figures …).
    pub extra: serde_json::Map<String, Value>,
    /// Prometheus lines only the host knows (e.g. open connections), appended to metrics.
    pub metrics: String,
}

/// A successful reload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reloaded {
    /// The generation now serving.
    pub generation: u64,
    /// Where the text came from.
    pub source: &'static str,
    /// The new router's warnings (unset secrets …).
    pub warnings: Vec<String>,
}

/// What a host provides to the application, with [`HookHost`] (its clock, sleep, KV and a
/// plain POST). One clock: [`HookHost::now`].
///
/// The application adapts it to core's [`driver::Host`] itself (see `Sent` below): every
/// upstream attempt goes through [`AppHost::send`] with the body the application read, so a
/// host holds no request state of its own apart from the cache key it looked up.
pub trait AppHost: HookHost {
    /// The platform's inbound body.
    type In;
    /// The platform's upstream body (streamed to the caller unless a policy reads it).
    type Body;
    /// Reads the inbound body, at most `cap` bytes ([`ReadError::TooLarge`] beyond: stop
    /// reading there).
    fn read_in(&self, body: Self::In, cap: u64)
        -> impl Future<Output = Result<Vec<u8>, ReadError>>;
    /// Performs an attempt with `body`; must give up at `attempt.deadline` with
    /// [`FetchError::Timeout`] (see [`driver::Host::fetch`]).
    fn send(
        &self,
        attempt: &Attempt,
        body: &[u8],
    ) -> impl Future<Output = Result<UpstreamResponse<Self::Body>, FetchError>>;
    /// Runs `f` with exclusive access to the router state (see [`driver::Host::with_state`]).
    fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R;
    /// Reads a cache entry (see [`driver::Host::cache_get`]); remembers `key` for
    /// [`AppHost::looked_up`].
    fn cache_get(&self, key: &str) -> impl Future<Output = Option<Vec<u8>>>;
    /// Stores a cache entry for `ttl` (see [`driver::Host::cache_put`]).
    fn cache_put(&self, key: &str, value: Vec<u8>, ttl: Duration) -> impl Future<Output = ()>;
    /// Wakes collapsed waiters of `key` (see [`driver::Host::cache_release`]).
    fn cache_release(&self, _key: &str) {}
    /// Buffers an upstream body up to `cap` bytes (see [`driver::Host::read_body`]).
    fn read_body(
        &self,
        body: Self::Body,
        cap: usize,
    ) -> impl Future<Output = Result<Vec<u8>, Self::Body>>;
    /// See [`driver::Host::spare_headers`].
    fn spare_headers(&self) -> Option<HeaderList> {
        None
    }
    /// See [`driver::Host::recycle_headers`].
    fn recycle_headers(&self, _list: HeaderList) {}
    /// See [`driver::Host::keeps_log`].
    fn keeps_log(&self) -> bool {
        true
    }
    /// The platform's figures.
    fn platform(&self) -> Platform;
    /// Re-reads the config source (see [`build_router`], [`pick_source`]) and puts it in
    /// force; every error as `key.path: message` when the new text is refused (the old
    /// configuration stays).
    fn reload(&self) -> impl Future<Output = Result<Reloaded, Vec<String>>>;
    /// The provider plugins in force (built-ins and declarations).
    fn registry(&self) -> &Registry;
    /// A validated declaration set was stored under [`PROVIDERS_KEY`]: put `registry` in force
    /// and rebuild the router so configured providers of a declared kind get its rate-limit
    /// headers (state carried over with [`reload_state`]).
    fn install_registry(&self, registry: Registry) -> impl Future<Output = ()>;
    /// Claims the background refresh of cache key `key` (stale-while-revalidate): `false` when
    /// one is already running (in this process, isolate, or — on Spin — anywhere, by a lease).
    fn claim_refresh(&self, key: &str) -> impl Future<Output = bool>;
    /// Ends a claim of [`AppHost::claim_refresh`].
    fn release_refresh(&self, key: &str) -> impl Future<Output = ()>;
    /// The cache key of this request's last [`AppHost::cache_get`]: the key a
    /// stale-while-revalidate refresh renews.
    fn looked_up(&self) -> Option<String>;
}

/// Core's [`driver::Host`] over an [`AppHost`]: every attempt sent with `body`.
pub(crate) struct Sent<'a, H> {
    pub(crate) host: &'a H,
    pub(crate) body: &'a [u8],
}

impl<H: AppHost> driver::Host for Sent<'_, H> {
    type Body = H::Body;

    fn now(&self) -> Instant {
        self.host.now()
    }

    fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        self.host.with_state(f)
    }

    fn fetch(
        &self,
        attempt: &Attempt,
    ) -> impl Future<Output = Result<UpstreamResponse<H::Body>, FetchError>> {
        self.host.send(attempt, self.body)
    }

    fn sleep_until(&self, t: Instant) -> impl Future<Output = ()> {
        self.host.sleep_until(t)
    }

    fn cache_get(&self, key: &str) -> impl Future<Output = Option<Vec<u8>>> {
        self.host.cache_get(key)
    }

    fn cache_put(&self, key: &str, value: Vec<u8>, ttl: Duration) -> impl Future<Output = ()> {
        self.host.cache_put(key, value, ttl)
    }

    fn cache_release(&self, key: &str) {
        self.host.cache_release(key);
    }

    fn spare_headers(&self) -> Option<HeaderList> {
        self.host.spare_headers()
    }

    fn recycle_headers(&self, list: HeaderList) {
        self.host.recycle_headers(list);
    }

    fn keeps_log(&self) -> bool {
        self.host.keeps_log()
    }

    fn read_body(
        &self,
        body: H::Body,
        cap: usize,
    ) -> impl Future<Output = Result<Vec<u8>, H::Body>> {
        self.host.read_body(body, cap)
    }
}

/// What the application serves with: a router and its generation.
#[derive(Clone, Copy)]
pub struct Serving<'a> {
    /// The router in force.
    pub router: &'a Router,
    /// Its generation (1 for the first configuration, +1 per reload).
    pub generation: u64,
}

/// One inbound request, as the platform gave it.
pub struct Inbound<'a, B> {
    /// The method as received.
    pub method: &'a str,
    /// The request target (origin-form `path?query`, or absolute-form when the client sent it).
    pub target: &'a str,
    /// The caller's headers (platform headers such as `cf-*` or `spin-*` removed).
    pub headers: HeaderList,
    /// The body.
    pub body: B,
    /// The body's framing when the host's wire layer already applied [`check_head`] (the
    /// native server does, while parsing); `None`: the application applies it.
    pub framing: Option<Framing>,
    /// The caller's address.
    pub client_ip: Option<&'a str>,
    /// Whether the caller used TLS.
    pub https: bool,
    /// Where the caller is (Workers' `request.cf`).
    pub locality: Locality,
    /// The request id.
    pub id: &'a str,
}

/// What to answer, and what follows.
#[must_use]
pub struct Handled<B> {
    /// The reply (its `log` is the access line's facts).
    pub reply: Reply<B>,
    /// The request was refused as malformed or was not read whole: a connection-oriented host
    /// must not read another request from the connection.
    pub close: bool,
    /// Work to run after answering.
    pub after: Vec<Job>,
    /// Log lines (JSON objects with `level`, `target`, `message`) to write now.
    pub lines: Vec<Value>,
    /// The request's header list when nothing that follows needs it: a host that recycles
    /// header lists takes it back.
    pub headers: Option<HeaderList>,
}

impl<B> Handled<B> {
    fn new(reply: Reply<B>) -> Handled<B> {
        Handled {
            reply,
            close: false,
            after: Vec::new(),
            lines: Vec::new(),
            headers: None,
        }
    }
}

/// The provider plugins in force for the declarations stored under [`PROVIDERS_KEY`]
/// (`None`: none stored): built-ins plus the declarations, or built-ins only and an error line
/// naming every key path when the stored set is refused.
pub fn load_registry(stored: Option<&[u8]>) -> (Registry, Option<Value>) {
    let mut r = Registry::new();
    let Some(bytes) = stored else {
        return (r, None);
    };
    match r.load_kv(bytes) {
        Ok(_) => (r, None),
        Err(errs) => {
            let errors: Vec<String> = errs.0.iter().map(ToString::to_string).collect();
            let mut line = event(
                "error",
                "mosaic::providers",
                "declarative providers rejected; only the built-in ones are in force",
            );
            line["key"] = Value::from(PROVIDERS_KEY);
            line["errors"] = Value::from(errors);
            (Registry::new(), Some(line))
        }
    }
}

/// A log line object.
#[must_use]
pub fn event(level: &str, target: &str, message: &str) -> Value {
    serde_json::json!({ "level": level, "target": target, "message": message })
}

/// The access line of a request: the same fields on every host.
#[must_use]
pub fn access_line(log: &RequestLog, method: &str, path: &str, background: bool) -> Value {
    serde_json::json!({
        "level": "info",
        "target": "mosaic::access",
        "request_id": log.request_id,
        "method": method,
        "path": path,
        "tenant": log.tenant.as_deref().unwrap_or(""),
        "route": log.route.as_deref().unwrap_or(""),
        "providers": log.providers.join(","),
        "attempts": log.attempts,
        "status": log.status,
        "latency_ms": log.latency.as_secs_f64() * 1000.0,
        "cache": log.cache,
        "problem": log.problem.unwrap_or(""),
        "give_up": log.give_up.unwrap_or(""),
        "background": background,
    })
}

/// A reply of `bytes` with a content type.
pub fn bytes_reply<B>(status: u16, content_type: &str, body: Vec<u8>, id: &str) -> Reply<B> {
    Reply {
        status,
        headers: alloc::vec![
            (String::from("content-type"), String::from(content_type)),
            (String::from("x-mosaic-request-id"), String::from(id)),
        ],
        body: ReplyBody::Bytes(body),
        log: plain_log(id),
        revalidate: false,
    }
}

fn json_reply<B>(status: u16, v: &Value, id: &str) -> Reply<B> {
    bytes_reply(status, "application/json", v.to_string().into_bytes(), id)
}

fn plain_log(id: &str) -> RequestLog {
    RequestLog {
        request_id: String::from(id),
        cache: cache_result::BYPASS,
        ..RequestLog::default()
    }
}

/// A problem reply.
pub fn problem<B>(p: &Problem, id: &str) -> Reply<B> {
    driver::problem(p, id)
}

/// A problem reply that lists every error (config key paths) in `errors`.
pub fn errors_problem<B>(
    kind: ProblemKind,
    status: u16,
    detail: &str,
    errors: &[String],
    id: &str,
) -> Reply<B> {
    let p = Problem::new(kind, format!("{detail}: {}", errors.join("; ")));
    let mut reply = bytes_reply(
        status,
        "application/problem+json",
        p.to_json_with_errors(id, status, errors).into_bytes(),
        id,
    );
    reply.log.status = status;
    reply.log.problem = Some(kind.slug());
    reply
}

/// The answer when a host has no valid configuration at all: `/_mosaic/health` still answers
/// (live, not ready, with the errors), every other path is `500 invalid-config` naming every
/// key path.
pub fn unconfigured<B>(target: &str, store: &str, errors: &[String], id: &str) -> Reply<B> {
    if path_of(target) == "/_mosaic/health" {
        let v = serde_json::json!({
            "status": "unconfigured",
            "live": true,
            "ready": false,
            "store": store,
            "routes": 0,
            "providers": 0,
            "errors": errors,
        });
        let mut r = json_reply(503, &v, id);
        r.log.route = Some(String::from("_mosaic"));
        r.log.status = 503;
        return r;
    }
    errors_problem(
        ProblemKind::InvalidConfig,
        500,
        "the configuration is invalid",
        errors,
        id,
    )
}

/// The request's host name: `Host` (or an absolute-form target's authority) without its port,
/// lowercase, brackets of an IPv6 literal removed. Borrowed when nothing changes.
#[must_use]
pub fn host_name<'a>(headers: &'a [(String, String)], target: &'a str) -> Option<Cow<'a, str>> {
    let raw = headers.header("host").or_else(|| {
        let rest = target.split_once("://")?.1;
        Some(rest.split(['/', '?']).next().unwrap_or(rest))
    })?;
    let b = raw.as_bytes();
    let h = if b.first() == Some(&b'[') {
        raw[1..].split(']').next().unwrap_or("")
    } else {
        // a port is the digits after the last ':'
        let mut i = b.len();
        while i > 0 && b[i - 1].is_ascii_digit() {
            i -= 1;
        }
        if i > 0 && b[i - 1] == b':' {
            &raw[..i - 1]
        } else {
            raw
        }
    };
    Some(if h.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(h.to_ascii_lowercase())
    } else {
        Cow::Borrowed(h)
    })
}

/// Reads the body within `cap`, or the problem to answer.
async fn read<H: AppHost>(
    host: &H,
    body: H::In,
    cap: u64,
    declared: Option<u64>,
) -> Result<Vec<u8>, Problem> {
    if let Some(n) = declared.filter(|&n| n > cap) {
        return Err(Problem::new(
            ProblemKind::PayloadTooLarge,
            format!("request body of {n} bytes exceeds the limit of {cap} bytes"),
        ));
    }
    host.read_in(body, cap).await.map_err(|e| match e {
        ReadError::TooLarge => Problem::new(
            ProblemKind::PayloadTooLarge,
            format!("request body exceeds the limit of {cap} bytes"),
        ),
        ReadError::Failed(why) => Problem::new(
            ProblemKind::BadRequest,
            format!("could not read the request body: {why}"),
        ),
    })
}

/// Handles one request; never fails (errors are problem+json replies). The reply's log has
/// its status filled in, and its latency (on the host's clock) when the host keeps its log
/// ([`AppHost::keeps_log`]).
pub async fn handle<H: AppHost>(
    host: &H,
    serving: Serving<'_>,
    req: Inbound<'_, H::In>,
) -> Handled<H::Body> {
    // one async body, not one per path: every nested future is one more copy of a large
    // state per request on the native hot path (callgrind counts them)
    // the clock is read only for a log line that will be written (natively, reads of the
    // clock are counted per request)
    let started = host.keeps_log().then(|| host.now());
    let finish = |mut h: Handled<H::Body>| {
        let log = &mut h.reply.log;
        if let Some(started) = started.filter(|_| log.latency.is_zero()) {
            log.latency = host.now().saturating_since(started);
        }
        if log.status == 0 {
            log.status = h.reply.status;
        }
        h
    };
    let router = serving.router;
    let server = &router.config.server;
    let id = req.id;
    let framing = match req.framing {
        Some(f) => f,
        None => {
            let limits = HeadLimits {
                max_headers: usize::try_from(server.max_headers).unwrap_or(usize::MAX),
                max_header_bytes: usize::try_from(server.max_header_bytes).unwrap_or(usize::MAX),
            };
            match check_head(&req.headers, &limits) {
                Ok(f) => f,
                Err(p) => {
                    let mut h = Handled::new(problem(&p, id));
                    h.close = true;
                    return finish(h);
                }
            }
        }
    };
    // the declared length, to refuse a body over a cap without reading it
    let declared = match framing {
        Framing::Length(n) => Some(n),
        Framing::None | Framing::Chunked => None,
    };
    let Some(method) = Method::parse(req.method) else {
        let p = Problem::new(
            ProblemKind::BadRequest,
            format!(
                "method {} is not supported; expected GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS",
                req.method
            ),
        );
        return finish(Handled::new(problem(&p, id)));
    };
    let h = match classify(req.target) {
        Endpoint::Health => Handled::new(health(host, serving, id)),
        Endpoint::Admin(rest) => {
            if let Err(p) = router.check_admin(&req.headers) {
                return finish(Handled::new(problem(&p, id)));
            }
            let rest = path_of(rest);
            let mut h = if (method, rest) == (Method::Put, "providers") {
                Handled::new(handle_admin_put(host, req.body, declared, id).await)
            } else {
                admin(host, serving, method, rest, &req).await
            };
            if h.reply.log.route.is_none() {
                h.reply.log.route = Some(String::from("_mosaic"));
            }
            h
        }
        Endpoint::Hook(name) => hook(host, router, name, req, declared).await,
        Endpoint::Proxy => {
            let Inbound {
                target,
                headers,
                body,
                client_ip,
                https,
                locality,
                ..
            } = req;
            // a wire layer that framed the request knows when it has no body: nothing to read
            let body = if framing == Framing::None && req.framing.is_some() {
                Vec::new()
            } else {
                match read(host, body, server.max_body_bytes, declared).await {
                    Ok(b) => b,
                    Err(p) => {
                        let mut h = Handled::new(problem(&p, id));
                        h.close = true;
                        return finish(h);
                    }
                }
            };
            if crate::v1::serves(&router.config, path_of(target)) {
                let reply =
                    v1::serve(host, router, method, target, headers, &body, client_ip, id).await;
                return finish(Handled::new(reply));
            }
            let max_cache_body =
                usize::try_from(router.config.server.max_cache_body_bytes).unwrap_or(usize::MAX);
            let name = host_name(&headers, target);
            let request = Request {
                method,
                host: name.as_deref(),
                target,
                headers: &headers,
                client_ip,
                https,
                locality: locality.clone(),
                id,
            };
            let sent = Sent { host, body: &body };
            let reply = driver::handle(&sent, router, &request, max_cache_body).await;
            let close = reply.status == 400 && reply.log.problem.is_some();
            let mut after = Vec::new();
            let key = if reply.revalidate {
                host.looked_up()
            } else {
                None
            };
            let headers = match key {
                Some(key) => {
                    let name = name.map(Cow::into_owned);
                    after.push(Job::Revalidate(Revalidate {
                        key,
                        method,
                        host: name,
                        target: String::from(target),
                        headers,
                        client_ip: client_ip.map(String::from),
                        https,
                        locality,
                        body,
                    }));
                    None
                }
                None => {
                    drop(name);
                    Some(headers)
                }
            };
            Handled {
                reply,
                close,
                after,
                lines: Vec::new(),
                headers,
            }
        }
    };
    finish(h)
}

fn health<H: AppHost, B>(host: &H, serving: Serving<'_>, id: &str) -> Reply<B> {
    let p = host.platform();
    let mut v = health_json(serving.router, p.ready, p.store);
    if let Some(o) = v.as_object_mut() {
        o.insert(String::from("generation"), serving.generation.into());
        for (k, x) in p.extra {
            o.insert(k, x);
        }
    }
    let mut r = json_reply(if p.ready { 200 } else { 503 }, &v, id);
    r.log.route = Some(String::from("_mosaic"));
    r
}

/// Prometheus lines of the in-memory tier.
#[must_use]
pub fn cache_metrics(c: &CacheStats) -> String {
    format!(
        "# HELP mosaic_cache_entries Entries in the in-memory cache.\n# TYPE mosaic_cache_entries gauge\nmosaic_cache_entries {}\n\
         # HELP mosaic_cache_bytes Bytes in the in-memory cache.\n# TYPE mosaic_cache_bytes gauge\nmosaic_cache_bytes {}\n\
         # HELP mosaic_cache_capacity_bytes Bound of the in-memory cache.\n# TYPE mosaic_cache_capacity_bytes gauge\nmosaic_cache_capacity_bytes {}\n\
         # HELP mosaic_cache_collapsed_total Misses that waited for another request's fetch.\n# TYPE mosaic_cache_collapsed_total counter\nmosaic_cache_collapsed_total {}\n",
        c.entries, c.bytes, c.capacity_bytes, c.collapsed
    )
}

async fn admin<H: AppHost>(
    host: &H,
    serving: Serving<'_>,
    method: Method,
    rest: &str,
    req: &Inbound<'_, H::In>,
) -> Handled<H::Body> {
    let id = req.id;
    let router = serving.router;
    let reply = match (method, rest) {
        (Method::Get, "metrics") => {
            let p = host.platform();
            let mut text = host.with_state(|s| mosaic_core::metrics::render(&router.config, s));
            text.push_str(&cache_metrics(&p.cache));
            text.push_str(&p.metrics);
            bytes_reply(
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                text.into_bytes(),
                id,
            )
        }
        (Method::Get, "state") => {
            let p = host.platform();
            let now = host.now();
            let mut v = host.with_state(|s| state_json(router, s, &p.cache, now));
            if let Some(o) = v.as_object_mut() {
                o.insert(String::from("generation"), serving.generation.into());
                for (k, x) in p.extra {
                    o.insert(k, x);
                }
            }
            json_reply(200, &v, id)
        }
        (Method::Post, "reload") => match host.reload().await {
            Ok(r) => json_reply(
                200,
                &serde_json::json!({ "reloaded": true, "generation": r.generation, "source": r.source, "warnings": r.warnings }),
                id,
            ),
            Err(errors) => errors_problem(
                ProblemKind::InvalidConfig,
                400,
                "the new configuration was rejected; the old one stays",
                &errors,
                id,
            ),
        },
        (Method::Get, "providers") => {
            let v = serde_json::json!({
                "builtin": crate::plugins::builtins().iter().map(|b| b.line()).collect::<Vec<_>>(),
                "declared": host.registry().declared_kinds(),
            });
            json_reply(200, &v, id)
        }
        (_, "providers") => {
            let p = Problem::new(
                ProblemKind::NoRoute,
                format!(
                    "{} /_mosaic/providers is not an admin endpoint; try GET or PUT",
                    method.as_str()
                ),
            );
            problem(&p, id)
        }
        (_, r) if r.starts_with("hooks/") => {
            return hooks_admin(host, method, r, req.target, id).await
        }
        _ => problem(
            &Problem::new(
                ProblemKind::NoRoute,
                format!(
                    "{} /_mosaic/{rest} is not an admin endpoint; try {ADMIN_ENDPOINTS}",
                    method.as_str()
                ),
            ),
            id,
        ),
    };
    Handled::new(reply)
}

/// `PUT /_mosaic/providers`: validate, store, put in force; 400 with every key path when the
/// declarations are refused (the set in force stays).
async fn put_providers<H: AppHost>(host: &H, bytes: &[u8], id: &str) -> Reply<H::Body> {
    let mut next = host.registry().clone();
    let kinds = match next.load_kv(bytes) {
        Ok(k) => k,
        Err(errs) => {
            let errors: Vec<String> = errs.0.iter().map(ToString::to_string).collect();
            return errors_problem(
                ProblemKind::InvalidConfig,
                400,
                "the declarations were rejected; the ones in force stay",
                &errors,
                id,
            );
        }
    };
    if let Err(e) = host.kv_put(PROVIDERS_KEY, bytes.to_vec(), None).await {
        return problem(
            &Problem::new(
                ProblemKind::Internal,
                format!("the declarations could not be stored: {e}"),
            ),
            id,
        );
    }
    host.install_registry(next).await;
    json_reply(200, &serde_json::json!({ "loaded": kinds }), id)
}

/// `PUT /_mosaic/providers` (the one admin path that reads a body).
async fn handle_admin_put<H: AppHost>(
    host: &H,
    body: H::In,
    declared: Option<u64>,
    id: &str,
) -> Reply<H::Body> {
    match read(host, body, MAX_DECLARATIONS, declared).await {
        Ok(b) => put_providers(host, &b, id).await,
        Err(p) => problem(&p, id),
    }
}

async fn hooks_admin<H: AppHost>(
    host: &H,
    method: Method,
    path: &str,
    target: &str,
    id: &str,
) -> Handled<H::Body> {
    let query = target.split_once('?').map_or("", |(_, q)| q);
    if path == "hooks/dead" && method == Method::Get {
        let endpoint = query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == "endpoint")
            .and_then(|(_, v)| percent_decode(v, true))
            .filter(|v| !v.is_empty());
        return Handled::new(match list_dead_letters(host, endpoint.as_deref()).await {
            Ok(body) => bytes_reply(200, "application/json", body.into_bytes(), id),
            Err(e) => problem(&Problem::new(ProblemKind::Internal, e.to_string()), id),
        });
    }
    let replay = path
        .strip_prefix("hooks/dead/")
        .and_then(|r| r.strip_suffix("/replay"))
        .filter(|r| !r.is_empty());
    if let (Some(raw), Method::Post) = (replay, method) {
        let Some(letter) = percent_decode(raw, false) else {
            let p = Problem::new(
                ProblemKind::BadRequest,
                "the dead-letter id is not valid percent-encoded UTF-8",
            );
            return Handled::new(problem(&p, id));
        };
        return match replay_dead_letter(host, &letter).await {
            Ok(d) => {
                let v = serde_json::json!({
                    "replayed": d.id(),
                    "endpoint": d.endpoint,
                    "event_id": d.event_id,
                    "destination": d.dest,
                    "status": "pending",
                });
                let mut h = Handled::new(json_reply(202, &v, id));
                h.after.push(Job::Deliver {
                    delivery: d,
                    why: "replayed by the operator",
                });
                h
            }
            Err(e) => Handled::new(problem(&e.to_problem(&letter), id)),
        };
    }
    let p = Problem::new(
        ProblemKind::NoRoute,
        format!(
            "{} /_mosaic/{path} is not an admin endpoint; try GET hooks/dead[?endpoint=NAME] or POST hooks/dead/{{id}}/replay",
            method.as_str()
        ),
    );
    Handled::new(problem(&p, id))
}

fn hook_reply<B>(reply: &HookReply, id: &str) -> Reply<B> {
    Reply {
        status: reply.status,
        headers: reply.headers.clone(),
        body: ReplyBody::Bytes(reply.body.clone()),
        log: RequestLog {
            request_id: String::from(id),
            status: reply.status,
            cache: cache_result::BYPASS,
            ..RequestLog::default()
        },
        revalidate: false,
    }
}

async fn hook<H: AppHost>(
    host: &H,
    router: &Router,
    name: &str,
    req: Inbound<'_, H::In>,
    declared: Option<u64>,
) -> Handled<H::Body> {
    let endpoint = name.split('?').next().unwrap_or(name);
    let id = req.id;
    let mut close = false;
    let (reply, bytes) = match body_limit(router, endpoint) {
        // an unknown endpoint is answered (404) without reading its body
        None => (
            handle_hook(host, router, endpoint, req.target, &req.headers, &[], id).await,
            0,
        ),
        Some(limit) if declared.is_some_and(|n| n > limit) => {
            close = true;
            (payload_too_large(router, endpoint, id), 0)
        }
        Some(limit) => match host.read_in(req.body, limit).await {
            Ok(b) => (
                handle_hook(host, router, endpoint, req.target, &req.headers, &b, id).await,
                b.len(),
            ),
            Err(ReadError::TooLarge) => {
                close = true;
                (payload_too_large(router, endpoint, id), 0)
            }
            Err(ReadError::Failed(why)) => {
                let p = Problem::new(
                    ProblemKind::BadRequest,
                    format!("could not read the request body: {why}"),
                );
                let mut h = Handled::new(problem(&p, id));
                h.reply.log.route = Some(String::from("_hooks"));
                h.close = true;
                return h;
            }
        },
    };
    let known = body_limit(router, endpoint).is_some();
    let mut out = Handled::new(hook_reply(&reply, id));
    out.close = close;
    out.reply.log.route = Some(if known {
        // only configured endpoints are counted: a name in the URL must not mint metrics
        host.with_state(|s| s.metrics.count_webhook(endpoint, reply.result));
        format!("hooks/{endpoint}")
    } else {
        String::from("_hooks")
    });
    out.lines
        .push(reply.receipt_log(id, endpoint, known, bytes));
    if let Some(token) = &reply.handshake_token {
        // Notion's verification token: the operator's only channel is the log. The library
        // reports a handshake only while the endpoint has no secret configured, so once the
        // token is in the config no later request can make it appear here.
        let mut line = event(
            "warn",
            "mosaic::operator",
            &format!(
                "Notion verification token for /hooks/{endpoint}: paste it into Notion's \"Verify\" dialog, then configure it as this endpoint's secret (e.g. secrets = [\"env:NOTION_WEBHOOK_SECRET\"]) and reload; until then this log line holds that secret"
            ),
        );
        line["endpoint"] = Value::from(endpoint);
        line["verification_token"] = Value::from(token.expose());
        out.lines.push(line);
    }
    out.after = reply
        .deliveries
        .into_iter()
        .map(|delivery: Delivery| Job::Deliver {
            delivery,
            why: "accepted",
        })
        .collect();
    out
}

/// An instant as Unix seconds, for log lines.
#[must_use]
pub fn unix_secs(t: Instant) -> u64 {
    t.as_micros() / 1_000_000
}
