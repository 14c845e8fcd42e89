//! One inbound request: limits, the admin API, the proxy path through core's driver, and the
//! JSON log line.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::Response;
use mosaic_core::admin::{health_json, state_json, CacheStats};
use mosaic_core::driver::{self, Reply, ReplyBody, RequestLog};
use mosaic_core::engine::{classify, Endpoint, Request};
use mosaic_core::http::{Headers, Method};
use mosaic_core::problem::{Problem, ProblemKind};
use mosaic_core::region::Locality;
use mosaic_core::target::path_of;

use crate::conn::{Answer, Request as ConnRequest};
use crate::host::{wall_now, Body, LiveRef, LocalHost, Shared};
use crate::server;

/// A request id: 16 lowercase hex digits, kept inline (no allocation per request).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RequestId([u8; 16]);

impl std::ops::Deref for RequestId {
    type Target = str;
    fn deref(&self) -> &str {
        // always hex digits, so this never falls back to the empty string
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self)
    }
}

/// A fresh request id: 16 hex digits, unique within the process and unpredictable across.
#[must_use]
pub fn request_id() -> RequestId {
    static SEED: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let seed = *SEED.get_or_init(|| {
        let mut b = [0u8; 8];
        if getrandom::fill(&mut b).is_err() {
            b = (wall_now().as_micros() ^ u64::from(std::process::id())).to_le_bytes();
        }
        u64::from_le_bytes(b)
    });
    // splitmix64 over seed + counter: distinct for every request of the process. Each thread
    // counts within a block of 2^32 numbers it takes from the shared counter, so that worker
    // threads do not trade the counter's cache line on every request.
    thread_local! {
        static NEXT: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) };
    }
    const BLOCK: u64 = 1 << 32;
    let n = NEXT.with(|c| {
        let (mut next, mut end) = c.get();
        if next == end {
            next = COUNTER.fetch_add(BLOCK, Ordering::Relaxed);
            end = next.wrapping_add(BLOCK);
        }
        c.set((next.wrapping_add(1), end));
        next
    });
    let mut z = seed.wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    RequestId(mosaic_core::codec::hex16(z ^ (z >> 31)))
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// Core's reply as the connection's answer (core's header pairs as they are: no header map).
fn response(reply: Reply<Body>) -> Answer {
    Answer {
        status: reply.status,
        headers: reply.headers,
        body: match reply.body {
            ReplyBody::Bytes(b) => full(b),
            ReplyBody::Stream(s) => s,
        },
    }
}

/// A problem+json answer.
#[must_use]
pub fn problem_answer(p: &Problem, id: &str) -> Answer {
    response(driver::problem(p, id))
}

fn problem_response(p: &Problem, id: &str) -> (Answer, RequestLog) {
    let mut reply: Reply<Body> = driver::problem(p, id);
    let log = std::mem::take(&mut reply.log);
    (response(reply), log)
}

/// Marks a refusal `Connection: close`: the connection then reads nothing more.
fn closing((answer, log): (Answer, RequestLog)) -> (Answer, RequestLog) {
    (answer.closing(), log)
}

fn json_response(status: u16, v: &serde_json::Value, id: &str) -> Response<Body> {
    let mut r = Response::new(full(v.to_string()));
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(v) = HeaderValue::from_str(id) {
        r.headers_mut().insert("x-mosaic-request-id", v);
    }
    r
}

fn log_line(log: &RequestLog, method: &str, path: &str, background: bool) {
    if !tracing::enabled!(target: "mosaic::access", tracing::Level::INFO) {
        return;
    }
    let providers = log.providers.join(",");
    tracing::info!(
        target: "mosaic::access",
        request_id = %log.request_id,
        method,
        path,
        tenant = log.tenant.as_deref().unwrap_or(""),
        route = log.route.as_deref().unwrap_or(""),
        providers = %providers,
        attempts = log.attempts,
        status = log.status,
        latency_ms = log.latency.as_secs_f64() * 1000.0,
        cache = log.cache,
        problem = log.problem.unwrap_or(""),
        give_up = log.give_up.unwrap_or(""),
        background,
    );
}

/// The request's host without a port, lowercase (borrowed when it already is).
fn host_of<'a>(headers: &'a [(String, String)], target: &'a str) -> Option<Cow<'a, str>> {
    let raw = headers.header("host").or_else(|| {
        // absolute-form: the authority of the target
        let rest = target.split_once("://")?.1;
        Some(rest.split(['/', '?']).next().unwrap_or(rest))
    })?;
    let b = raw.as_bytes();
    let h = if b.first() == Some(&b'[') {
        let rest = &raw[1..];
        rest.split(']').next().unwrap_or("")
    } else {
        // a port is the digits after the last ':' (byte loops: this runs on every request)
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

/// Handles one request; never fails (errors are problem+json responses).
///
/// `peer_ip` is the client's address as text, formatted once per connection.
/// `live` is the configuration generation the request is served by.
pub async fn handle(
    shared: &Arc<Shared>,
    live: LiveRef,
    req: ConnRequest<'_>,
    peer_ip: &str,
) -> Answer {
    let id = request_id();
    // what the log line needs of the request, kept only when it will be written
    let logged = tracing::enabled!(target: "mosaic::access", tracing::Level::INFO).then(|| {
        let path = path_of(&req.target).to_string();
        (std::time::Instant::now(), req.method.clone(), path)
    });
    let (answer, mut log) = route(shared, live, req, peer_ip, &id, logged.is_some()).await;
    if let Some((started, method, path)) = logged {
        if log.latency.is_zero() {
            log.latency = started.elapsed();
        }
        if log.status == 0 {
            log.status = answer.status;
        }
        log_line(&log, &method, &path, false);
    }
    answer
}

async fn route(
    shared: &Arc<Shared>,
    live: LiveRef,
    req: ConnRequest<'_>,
    ip: &str,
    id: &str,
    keep_log: bool,
) -> (Answer, RequestLog) {
    let server = &live.router.config.server;
    let plain_log = || RequestLog {
        request_id: id.to_string(),
        cache: driver::cache_result::BYPASS,
        ..RequestLog::default()
    };

    // limits and framing were checked by the connection (core's `check_head`) before the
    // request got here
    let ConnRequest {
        method: method_name,
        target,
        headers,
        body: req_body,
    } = req;
    let Some(method) = Method::parse(&method_name) else {
        let p = Problem::new(
            ProblemKind::BadRequest,
            format!("method {method_name} is not supported; expected GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS"),
        );
        return problem_response(&p, id);
    };

    match classify(&target) {
        Endpoint::Health => {
            let ready = shared.store_ok.load(Ordering::Relaxed);
            let mut v = health_json(&live.router, ready, shared.store.kind());
            v["generation"] = live.generation.into();
            let mut log = plain_log();
            log.route = Some(String::from("_mosaic"));
            (
                json_response(if ready { 200 } else { 503 }, &v, id).into(),
                log,
            )
        }
        Endpoint::Admin(rest) => {
            if let Err(p) = live.router.check_admin(&headers) {
                return problem_response(&p, id);
            }
            let mut log = plain_log();
            log.route = Some(String::from("_mosaic"));
            let rest = path_of(rest);
            if rest == "providers" {
                return (
                    crate::v1::admin(shared, method, req_body, id).await.into(),
                    log,
                );
            }
            let resp = match (method, rest) {
                (Method::Get, "metrics") => {
                    let mut text = {
                        let s = live.state();
                        mosaic_core::metrics::render(&live.router.config, &s)
                    };
                    let (entries, bytes, cap) = shared.l1.stats();
                    text.push_str(&format!(
                        "# HELP mosaic_cache_entries Entries in the in-memory cache.\n# TYPE mosaic_cache_entries gauge\nmosaic_cache_entries {entries}\n\
                         # HELP mosaic_cache_bytes Bytes in the in-memory cache.\n# TYPE mosaic_cache_bytes gauge\nmosaic_cache_bytes {bytes}\n\
                         # HELP mosaic_cache_capacity_bytes Bound of the in-memory cache.\n# TYPE mosaic_cache_capacity_bytes gauge\nmosaic_cache_capacity_bytes {cap}\n\
                         # HELP mosaic_cache_collapsed_total Misses that waited for another request's fetch.\n# TYPE mosaic_cache_collapsed_total counter\nmosaic_cache_collapsed_total {}\n\
                         # HELP mosaic_connections Open client connections.\n# TYPE mosaic_connections gauge\nmosaic_connections {}\n",
                        shared.collapser.collapsed.load(Ordering::Relaxed),
                        shared.connections.load(Ordering::Relaxed)
                    ));
                    let mut r = Response::new(full(text));
                    r.headers_mut()
                        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
                    r
                }
                (Method::Get, "state") => {
                    let (entries, bytes, capacity_bytes) = shared.l1.stats();
                    let cache = CacheStats {
                        entries,
                        bytes,
                        capacity_bytes,
                        store: shared.store.kind().to_string(),
                        collapsed: shared.collapser.collapsed.load(Ordering::Relaxed),
                    };
                    let mut v = {
                        let s = live.state();
                        state_json(&live.router, &s, &cache, wall_now())
                    };
                    if let Some(o) = v.as_object_mut() {
                        o.insert("generation".into(), live.generation.into());
                        o.insert("connections".into(), shared.connections.load(Ordering::Relaxed).into());
                    }
                    json_response(200, &v, id)
                }
                (Method::Post, "reload") => match server::reload(shared).await {
                    Ok((generation, warnings)) => json_response(
                        200,
                        &serde_json::json!({ "reloaded": true, "generation": generation, "warnings": warnings }),
                        id,
                    ),
                    Err(errors) => {
                        let p = Problem::new(
                            ProblemKind::InvalidConfig,
                            format!("the new configuration was rejected; the old one stays: {}", errors.join("; ")),
                        );
                        let v: serde_json::Value =
                            serde_json::from_str(&p.to_json_with_errors(id, p.status(), &errors)).unwrap_or_default();
                        let mut r = json_response(p.status(), &v, id);
                        r.headers_mut()
                            .insert(CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
                        r
                    }
                },
                (m, r) if r.starts_with("hooks/") => {
                    crate::hooks::admin(shared, m, r, &target, id).await
                }
                _ => {
                    return problem_response(
                        &Problem::new(
                            ProblemKind::NoRoute,
                            format!(
                                "{} /_mosaic/{rest} is not an admin endpoint; try GET health, GET metrics, GET state, POST reload, GET hooks/dead, GET|PUT providers",
                                method.as_str()
                            ),
                        ),
                        id,
                    )
                }
            };
            (resp.into(), log)
        }
        Endpoint::Hook(name) => {
            let (resp, log) = crate::hooks::receive(
                Arc::clone(shared),
                &live,
                req_body,
                name,
                &target,
                &headers,
                id,
            )
            .await;
            (resp.into(), log)
        }
        Endpoint::Proxy => {
            let max_body = server.max_body_bytes;
            let max_cache_body = usize::try_from(server.max_cache_body_bytes).unwrap_or(usize::MAX);
            let host = host_of(&headers, &target);
            // bodies are buffered (bounded by max_body_bytes): failover may need to resend them
            let body = if hyper::body::Body::is_end_stream(&req_body) {
                // most requests have no body: nothing to collect
                Bytes::new()
            } else {
                match Limited::new(req_body, usize::try_from(max_body).unwrap_or(usize::MAX))
                    .collect()
                    .await
                {
                    Ok(c) => c.to_bytes(),
                    Err(e) => {
                        let p = if e.is::<http_body_util::LengthLimitError>() {
                            Problem::new(
                                ProblemKind::PayloadTooLarge,
                                format!("request body exceeds the limit of {max_body} bytes"),
                            )
                        } else {
                            Problem::new(
                                ProblemKind::BadRequest,
                                format!("could not read the request body: {e}"),
                            )
                        };
                        return closing(problem_response(&p, id));
                    }
                }
            };
            if mosaic_providers::v1::serves(&live.router.config, path_of(&target)) {
                let (resp, log) =
                    crate::v1::serve(shared, &live, method, &target, headers, body, ip, id).await;
                return (resp.into(), log);
            }
            let request = Request {
                method,
                host: host.as_deref(),
                target: &target,
                headers: &headers,
                client_ip: Some(ip),
                https: false,
                locality: Locality::default(),
                id,
            };
            let mut lh = LocalHost::new(shared, &live, body.clone());
            if !keep_log {
                // no log line: core need not copy the route's and providers' names into it
                lh = lh.without_log();
            }
            let mut reply = driver::handle(&lh, &live.router, &request, max_cache_body).await;
            if reply.revalidate {
                let key = lh.looked_up.lock().ok().and_then(|mut k| k.take());
                if let Some(key) = key {
                    spawn_revalidate(
                        shared,
                        key,
                        method,
                        host.clone().map(Cow::into_owned),
                        target.clone(),
                        headers.clone(),
                        ip.to_string(),
                        body,
                    );
                }
            }
            // the list's strings serve the next head parsed on this thread
            crate::h1::recycle(headers);
            let log = std::mem::take(&mut reply.log);
            if reply.status == 400 && log.problem.is_some() {
                // refused by the router as malformed (e.g. a bad target): what follows it on
                // the connection is not trusted either (an upstream's own 400 keeps it open)
                return closing((response(reply), log));
            }
            (response(reply), log)
        }
    }
}

/// Runs core's `refresh` for a stale-while-revalidate hit in the background, once per key.
#[allow(clippy::too_many_arguments)]
fn spawn_revalidate(
    shared: &Arc<Shared>,
    key: String,
    method: Method,
    host: Option<String>,
    target: String,
    headers: Vec<(String, String)>,
    ip: String,
    body: Bytes,
) {
    {
        let Ok(mut set) = shared.revalidating.lock() else {
            return;
        };
        if !set.insert(key.clone()) {
            return; // already being refreshed
        }
    }
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        let live = shared.live();
        let id = request_id();
        let request = Request {
            method,
            host: host.as_deref(),
            target: &target,
            headers: &headers,
            client_ip: Some(&ip),
            https: false,
            locality: Locality::default(),
            id: &id,
        };
        let lh = LocalHost::new(&shared, &live, body);
        let max_cache_body =
            usize::try_from(live.router.config.server.max_cache_body_bytes).unwrap_or(usize::MAX);
        let reply = driver::refresh(&lh, &live.router, &request, max_cache_body).await;
        // drain a streamed body so the connection returns to the pool
        if let ReplyBody::Stream(b) = reply.body {
            let _ = b.collect().await;
        }
        let path = path_of(&target).to_string();
        log_line(&reply.log, method.as_str(), &path, true);
        if let Ok(mut set) = shared.revalidating.lock() {
            set.remove(&key);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The host without its port, lowercased, from the Host header or an absolute-form target.
    #[test]
    fn host_of_strips_ports_and_brackets_and_lowercases() {
        let cases: &[(&str, Option<&str>)] = &[
            ("example.com", Some("example.com")),
            ("Example.COM:8080", Some("example.com")),
            ("example.com:", Some("example.com")),
            ("example.com:80a", Some("example.com:80a")),
            ("a:b:443", Some("a:b")),
            (":443", Some("")),
            ("443", Some("443")),
            ("[::1]:8787", Some("::1")),
            ("[fe80::1", Some("fe80::1")),
            ("", Some("")),
        ];
        for (raw, want) in cases {
            let headers = vec![(String::from("Host"), String::from(*raw))];
            assert_eq!(host_of(&headers, "/x").as_deref(), *want, "{raw:?}");
        }
        // no Host header: the authority of an absolute-form target, or nothing
        assert_eq!(
            host_of(&[], "http://API.example:9/a?b").as_deref(),
            Some("api.example")
        );
        assert_eq!(host_of(&[], "/relative"), None);
    }

    /// Request ids are 16 lowercase hex digits and never repeat within the process, across
    /// threads (each counts in its own block) as within one.
    #[test]
    fn request_ids_are_unique_across_threads() {
        let threads: Vec<_> = (0..4)
            .map(|_| std::thread::spawn(|| (0..5000).map(|_| request_id()).collect::<Vec<_>>()))
            .collect();
        let mut all = std::collections::HashSet::new();
        for t in threads {
            for id in t.join().expect("thread") {
                assert_eq!(id.len(), 16, "{id}");
                assert!(id
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
                assert!(all.insert(id), "repeated");
            }
        }
        assert_eq!(all.len(), 20_000);
    }
}
