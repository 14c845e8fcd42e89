//! # mosaic-spin
//!
//! The Fermyon Spin host of Mosaic Edge: one `wasi:http/handler@0.3.0` component (spin-sdk 7,
//! WASI p3) that translates Spin's request, key-value store, variables and clocks into
//! mosaic-core's types and runs core's shared request loop ([`mosaic_core::driver`]). It
//! decides nothing: routing, retries, failover, breakers, caching policy and the admin views
//! all come from core, exactly as on the local server.
//!
//! Per request (Spin creates a fresh instance each time): open the `default` store, load and
//! validate the config ([`config`]), check the head (core's `head::check_head`), read the state
//! snapshot, serve, write the snapshot back if core counted a material change, log one JSON
//! line; webhooks ([`hooks`]) get one quick delivery attempt before the answer, and after it
//! a bounded amount of outbox work resumes what earlier requests parked.

use std::hash::{BuildHasher, Hasher};
use std::rc::Rc;

use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full};
use mosaic_core::admin::{state_json, CacheStats};
use mosaic_core::driver::{self, Reply, ReplyBody, RequestLog};
use mosaic_core::engine::{classify, Endpoint, Request};
use mosaic_core::head::{check_head, Framing, HeadLimits};
use mosaic_core::http::Method;
use mosaic_core::problem::{Problem, ProblemKind};
use mosaic_core::region::Locality;
use mosaic_core::Router;
use spin_sdk::http::Request as SpinRequest;
use spin_sdk::http_service;
use spin_sdk::key_value::Store;

pub mod config;
pub mod hooks;
pub mod host;

use host::{wall_now, SpinHost, UpBody};

/// The body of every answer: bytes, or an upstream stream.
pub type OutBody = Either<Full<Bytes>, UpBody>;
pub(crate) type Out = http::Response<OutBody>;

/// The store kind shown by health and state.
const STORE_KIND: &str = "spin-kv";

/// Writes a warning as one JSON line on stderr (Spin collects it with the component logs).
pub fn warn(message: &str) {
    eprintln!(
        "{}",
        serde_json::json!({ "level": "warn", "target": "mosaic::spin", "message": message })
    );
}

/// 64 random bits (the std hasher's per-instance keys come from `wasi:random/insecure-seed`).
pub(crate) fn random_u64(salt: u64) -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(wall_now().as_micros());
    h.write_u64(salt);
    h.finish()
}

fn request_id() -> String {
    format!("{:016x}", random_u64(0x6d6f_7361_6963))
}

fn response(reply: Reply<UpBody>) -> Out {
    let body = match reply.body {
        ReplyBody::Bytes(b) => Either::Left(Full::new(Bytes::from(b))),
        ReplyBody::Stream(s) => Either::Right(s),
    };
    let mut r = http::Response::new(body);
    *r.status_mut() =
        http::StatusCode::from_u16(reply.status).unwrap_or(http::StatusCode::BAD_GATEWAY);
    for (n, v) in &reply.headers {
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(n.as_bytes()),
            http::HeaderValue::from_bytes(v.as_bytes()),
        ) {
            r.headers_mut().append(n, v);
        }
    }
    r
}

pub(crate) fn problem_response(p: &Problem, id: &str) -> (Out, RequestLog) {
    let reply: Reply<UpBody> = driver::problem(p, id);
    let log = reply.log.clone();
    (response(reply), log)
}

pub(crate) fn bytes_response(
    status: u16,
    content_type: &'static str,
    body: String,
    id: &str,
) -> Out {
    let mut r = http::Response::new(Either::Left(Full::new(Bytes::from(body))));
    *r.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    if let Ok(v) = http::HeaderValue::from_str(id) {
        r.headers_mut().insert("x-mosaic-request-id", v);
    }
    r
}

/// An answer from a status, headers and bytes (headers that do not parse are dropped).
pub(crate) fn bytes_out(status: u16, headers: &[(String, String)], body: Vec<u8>) -> Out {
    let mut r = http::Response::new(Either::Left(Full::new(Bytes::from(body))));
    *r.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    for (n, v) in headers {
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(n.as_bytes()),
            http::HeaderValue::from_bytes(v.as_bytes()),
        ) {
            r.headers_mut().append(n, v);
        }
    }
    r
}

/// A problem+json answer listing config errors, with `status` overriding the kind's.
fn config_problem(status: u16, detail: &str, errors: &[String], id: &str) -> (Out, RequestLog) {
    let p = Problem::new(
        ProblemKind::InvalidConfig,
        format!("{detail}: {}", errors.join("; ")),
    );
    let body = p.to_json_with_errors(id, status, errors);
    let log = RequestLog {
        request_id: id.to_string(),
        status,
        cache: driver::cache_result::BYPASS,
        problem: Some(ProblemKind::InvalidConfig.slug()),
        ..RequestLog::default()
    };
    (
        bytes_response(status, "application/problem+json", body, id),
        log,
    )
}

fn log_line(log: &RequestLog, method: &str, path: &str, background: bool) {
    println!(
        "{}",
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
    );
}

/// The Spin entry point: never fails (errors are problem+json answers).
#[http_service]
async fn handle(req: SpinRequest) -> Out {
    let started = wall_now();
    let id = request_id();
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let (resp, mut log) = serve(req, &id).await;
    if log.latency.is_zero() {
        log.latency = wall_now().saturating_since(started);
    }
    if log.status == 0 {
        log.status = resp.status().as_u16();
    }
    log_line(&log, &method, &path, false);
    resp
}

/// What a proxied request needs after the reply: the router and the host, shared with a
/// background refresh.
struct Ctx {
    router: Rc<Router>,
    host: SpinHost,
}

/// The caller's address Spin passes in `spin-client-addr` (`ip:port`).
fn client_ip(headers: &[(String, String)]) -> Option<String> {
    let v = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("spin-client-addr"))?
        .1
        .trim();
    let ip = match v.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => match v.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') && p.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => v,
        },
    };
    (!ip.is_empty()).then(|| ip.to_string())
}

async fn serve(req: SpinRequest, id: &str) -> (Out, RequestLog) {
    let store = match Store::open_default().await {
        Ok(s) => Some(s),
        Err(e) => {
            warn(&format!("key-value store `default` unavailable: {e:?}"));
            None
        }
    };
    let loaded = match config::load(store.as_ref()).await {
        Ok(l) => l,
        Err(errors) => return config_problem(500, "the configuration is invalid", &errors, id),
    };
    if let Some(errors) = &loaded.rejected {
        warn(&format!(
            "the configuration source is invalid, serving the last accepted one: {}",
            errors.join("; ")
        ));
    }
    let router = Rc::clone(&loaded.router);
    let out = dispatch(req, id, store, loaded).await;
    // webhook deliveries parked in the outbox make progress only when requests arrive
    hooks::spawn_outbox_work(router);
    out
}

/// Spin's own request headers (`spin-full-url`, `spin-path-info`, …): their presence means the
/// runtime is Spin, which always hands the component an absolute URI built from `Host`.
const SPIN_RUNTIME_HEADERS: [&str; 4] = [
    "spin-full-url",
    "spin-path-info",
    "spin-matched-route",
    "spin-client-addr",
];

/// The request target to hand core. `wasmtime serve` (and any wasi:http runtime that keeps the
/// request as received) gives an origin-form target as a path and a client's absolute-form
/// target as a full URI: the whole URI goes to core, which refuses it. Spin rewrites *every*
/// request URI to `scheme://Host/path` before the component sees it, so there an absolute URI
/// is the runtime's and only its path and query are the target (see the README).
fn request_target(uri: &http::Uri, headers: &[(String, String)]) -> String {
    let spin_runtime = headers.iter().any(|(n, _)| {
        SPIN_RUNTIME_HEADERS
            .iter()
            .any(|h| n.eq_ignore_ascii_case(h))
    });
    if uri.authority().is_some() && !spin_runtime {
        uri.to_string()
    } else {
        uri.path_and_query()
            .map_or_else(|| String::from("/"), |pq| pq.as_str().to_string())
    }
}

/// Whether the caller used TLS: the scheme of the URI Spin builds (or of `spin-full-url`);
/// `wasmtime serve` hands an origin-form target over plain HTTP.
fn caller_https(uri: &http::Uri, headers: &[(String, String)]) -> bool {
    uri.scheme_str() == Some("https")
        || headers.iter().any(|(n, v)| {
            n.eq_ignore_ascii_case("spin-full-url")
                && v.get(..8)
                    .is_some_and(|p| p.eq_ignore_ascii_case("https://"))
        })
}

async fn dispatch(
    req: SpinRequest,
    id: &str,
    store: Option<Store>,
    loaded: config::Loaded,
) -> (Out, RequestLog) {
    let server = loaded.router.config.server.clone();
    let plain_log = || RequestLog {
        request_id: id.to_string(),
        route: Some(String::from("_mosaic")),
        cache: driver::cache_result::BYPASS,
        ..RequestLog::default()
    };

    // limits and framing first (core's `check_head`, as on the local server), over the headers
    // as the component receives them: the runtime has already decoded the framing and drops
    // hop-by-hop headers (`Transfer-Encoding`, `Host`, …) before the component sees them
    let all: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let limits = HeadLimits {
        max_headers: usize::try_from(server.max_headers).unwrap_or(usize::MAX),
        max_header_bytes: usize::try_from(server.max_header_bytes).unwrap_or(usize::MAX),
    };
    let declared = match check_head(&all, &limits) {
        Ok(Framing::Length(n)) => Some(n),
        Ok(_) => None,
        Err(p) => return problem_response(&p, id),
    };
    if let Some(n) = declared.filter(|&n| n > server.max_body_bytes) {
        let p = Problem::new(
            ProblemKind::PayloadTooLarge,
            format!(
                "request body of {n} bytes exceeds the limit of {} bytes",
                server.max_body_bytes
            ),
        );
        return problem_response(&p, id);
    }
    let Some(method) = Method::parse(req.method().as_str()) else {
        let p = Problem::new(
            ProblemKind::BadRequest,
            format!("method {} is not supported; expected GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS", req.method()),
        );
        return problem_response(&p, id);
    };
    let target = request_target(req.uri(), &all);
    let https = caller_https(req.uri(), &all);
    let ip = client_ip(&all);
    // Spin's own `spin-*` request headers describe the platform, not the caller
    let headers: Vec<(String, String)> = all
        .into_iter()
        .filter(|(n, _)| !n.to_ascii_lowercase().starts_with("spin-"))
        .collect();
    let authority = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("host"))
        .map(|(_, v)| v.clone())
        .or_else(|| req.uri().authority().map(|a| a.as_str().to_string()));
    let host_name = authority.map(|a| {
        let h = match a.strip_prefix('[') {
            Some(rest) => rest.split(']').next().unwrap_or("").to_string(),
            None => a.split(':').next().unwrap_or("").to_string(),
        };
        h.to_ascii_lowercase()
    });

    let seed = random_u64(0x73_7461_7465);
    let mut state = SpinHost::load_state(&loaded.router.config, store.as_ref(), seed).await;

    match classify(&target) {
        Endpoint::Health => {
            let ready = store.is_some();
            let mut v = mosaic_core::admin::health_json(&loaded.router, ready, STORE_KIND);
            v["config"] = loaded.source.into();
            let status = if ready { 200 } else { 503 };
            (
                bytes_response(status, "application/json", v.to_string(), id),
                plain_log(),
            )
        }
        Endpoint::Admin(rest) => {
            if let Err(p) = loaded.router.check_admin(&headers) {
                return problem_response(&p, id);
            }
            let rest = rest.split('?').next().unwrap_or(rest);
            let resp = match (method, rest) {
                (Method::Get, "metrics") => bytes_response(
                    200,
                    "text/plain; version=0.0.4; charset=utf-8",
                    mosaic_core::metrics::render(&loaded.router.config, &state),
                    id,
                ),
                (Method::Get, "state") => {
                    let cache = CacheStats {
                        store: STORE_KIND.to_string(),
                        ..CacheStats::default()
                    };
                    let mut v = state_json(&loaded.router, &state, &cache, wall_now());
                    if let Some(o) = v.as_object_mut() {
                        o.insert("config".into(), loaded.source.into());
                    }
                    bytes_response(200, "application/json", v.to_string(), id)
                }
                (m, r) if r.starts_with("hooks/") => {
                    hooks::admin(store.as_ref(), &loaded.router, m, r, &target, id).await
                }
                (Method::Post, "reload") => match (&loaded.rejected, &store) {
                    (Some(errors), _) => {
                        return config_problem(
                            400,
                            "the new configuration was rejected; the last accepted one stays",
                            errors,
                            id,
                        )
                    }
                    (None, Some(s)) => match s.set(config::GOOD_KEY, loaded.text.as_bytes()).await
                    {
                        Ok(()) => bytes_response(
                            200,
                            "application/json",
                            serde_json::json!({ "reloaded": true, "source": loaded.source, "warnings": loaded.router.warnings }).to_string(),
                            id,
                        ),
                        Err(e) => {
                            let p = Problem::new(
                                ProblemKind::Internal,
                                format!("the configuration is valid but could not be recorded as the last accepted one: {e:?}"),
                            );
                            return problem_response(&p, id);
                        }
                    },
                    (None, None) => {
                        let p = Problem::new(
                            ProblemKind::Internal,
                            "the key-value store is unavailable: nothing to reload into",
                        );
                        return problem_response(&p, id);
                    }
                },
                _ => {
                    return problem_response(
                        &Problem::new(
                            ProblemKind::NoRoute,
                            format!(
                                "{} /_mosaic/{rest} is not an admin endpoint; try GET health, GET metrics, GET state, POST reload, GET hooks/dead",
                                method.as_str()
                            ),
                        ),
                        id,
                    )
                }
            };
            (resp, plain_log())
        }
        Endpoint::Hook(name) => {
            hooks::receive(
                store.as_ref(),
                &loaded.router,
                &mut state,
                req,
                name,
                &target,
                &headers,
                declared,
                id,
            )
            .await
        }
        Endpoint::Proxy => {
            let max_body = usize::try_from(server.max_body_bytes).unwrap_or(usize::MAX);
            let max_cache_body = usize::try_from(server.max_cache_body_bytes).unwrap_or(usize::MAX);
            // bodies are buffered (bounded): failover may need to resend them
            let mut body = req.into_body();
            let mut buf: Vec<u8> = Vec::new();
            while let Some(frame) = body.frame().await {
                let data = match frame {
                    Ok(f) => match f.into_data() {
                        Ok(d) => d,
                        Err(_) => continue,
                    },
                    Err(e) => {
                        let p = Problem::new(
                            ProblemKind::BadRequest,
                            format!("could not read the request body: {e:?}"),
                        );
                        return problem_response(&p, id);
                    }
                };
                if buf.len() + data.len() > max_body {
                    let p = Problem::new(
                        ProblemKind::PayloadTooLarge,
                        format!("request body exceeds the limit of {max_body} bytes"),
                    );
                    return problem_response(&p, id);
                }
                buf.extend_from_slice(&data);
            }
            let body = Bytes::from(buf);
            let ctx = Rc::new(Ctx {
                router: loaded.router,
                host: SpinHost::new(state, store, body),
            });
            let request = Request {
                method,
                host: host_name.as_deref(),
                target: &target,
                headers: &headers,
                client_ip: ip.as_deref(),
                https,
                locality: Locality::default(),
                id,
            };
            let reply = driver::handle(&ctx.host, &ctx.router, &request, max_cache_body).await;
            ctx.host.save_state(&ctx.router.config).await;
            let lease = match ctx.host.looked_up() {
                Some(key) if reply.revalidate => {
                    ctx.host.take_refresh_lease(&key).await.then_some(key)
                }
                _ => None,
            };
            if let Some(key) = lease {
                let bg = Rc::clone(&ctx);
                let (host_name, ip) = (host_name.clone(), ip.clone());
                let (target, headers) = (target.clone(), headers.clone());
                spin_sdk::wit_bindgen::spawn(async move {
                    let id = request_id();
                    let request = Request {
                        method,
                        host: host_name.as_deref(),
                        target: &target,
                        headers: &headers,
                        client_ip: ip.as_deref(),
                        https,
                        locality: Locality::default(),
                        id: &id,
                    };
                    let reply =
                        driver::refresh(&bg.host, &bg.router, &request, max_cache_body).await;
                    if let ReplyBody::Stream(mut b) = reply.body {
                        while let Some(Ok(_)) = b.frame().await {}
                    }
                    bg.host.save_state(&bg.router.config).await;
                    bg.host.release_refresh_lease(&key).await;
                    let path = target.split('?').next().unwrap_or("");
                    log_line(&reply.log, method.as_str(), path, true);
                });
            }
            let log = reply.log.clone();
            (response(reply), log)
        }
    }
}
