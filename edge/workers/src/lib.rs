//! # mosaic-workers
//!
//! The Cloudflare Workers host of Mosaic Edge: one `#[event(fetch)]` handler (crate `worker`)
//! that translates the Workers request, KV, Cache API, `request.cf` and clock into
//! mosaic-core's types and runs core's shared request loop ([`mosaic_core::driver`]). It
//! decides nothing: routing, retries, failover, breakers, caching policy and the admin views
//! all come from core, exactly as on the local server.
//!
//! Per request: load the config ([`config`], hot-reloaded), check the request head, answer
//! `/_mosaic/*` or proxy through the driver with a [`host::WorkersHost`], schedule the state
//! write-behind ([`host::write_behind`]) and any stale-while-revalidate refresh with
//! `ctx.wait_until`, and log one JSON line.

use std::rc::Rc;

use mosaic_core::admin::{state_json, CacheStats};
use mosaic_core::driver::{self, Reply, ReplyBody, RequestLog};
use mosaic_core::engine::{classify, Endpoint, Request as CoreRequest};
use mosaic_core::head::{check_head, HeadLimits};
use mosaic_core::http::Method as CoreMethod;
use mosaic_core::problem::{Problem, ProblemKind};
use mosaic_core::region::{Continent, Locality};
use wasm_bindgen::JsValue;
use worker::js_sys::{Object, Reflect};
use worker::{event, Context, Env, Headers, KvStore, Request, Response, ResponseBuilder};

pub mod config;
pub mod hooks;
pub mod host;

use host::{now, random_u64, with_isolate, write_behind, Live, UpBody, WorkersHost, KV_BINDING};

/// The variable that turns the per-request access line off (`"off"`).
pub const ACCESS_LOG_VAR: &str = "MOSAIC_ACCESS_LOG";
/// The store kind shown by health and state.
const STORE_KIND: &str = "workers-kv";

/// Writes one JSON event line (`level`: `warn`, `error`, …).
pub fn log_event(level: &str, message: &str) {
    worker::console_log!(
        "{}",
        serde_json::json!({ "level": level, "target": "mosaic::workers", "message": message })
    );
}

/// Writes one error line listing `errors` (config key paths).
pub fn log_errors(message: &str, errors: &[String]) {
    worker::console_log!(
        "{}",
        serde_json::json!({ "level": "error", "target": "mosaic::config", "message": message, "errors": errors })
    );
}

fn request_id() -> String {
    format!("{:016x}", random_u64())
}

/// Statuses that must not carry a body.
fn null_body(status: u16) -> bool {
    matches!(status, 101 | 204 | 205 | 304)
}

/// A response the runtime accepts whatever `status` and `headers` are (never panics).
fn build(status: u16, headers: &[(String, String)], body: Option<ReplyBody<UpBody>>) -> Response {
    let status = if (200..=599).contains(&status) {
        status
    } else {
        502
    };
    let h = Headers::new();
    for (n, v) in headers {
        let _ = h.append(n, v);
    }
    let b = ResponseBuilder::new().with_status(status).with_headers(h);
    match body {
        _ if null_body(status) => b.empty(),
        Some(ReplyBody::Bytes(bytes) | ReplyBody::Stream(UpBody::Bytes(bytes))) => b.fixed(bytes),
        Some(ReplyBody::Stream(UpBody::Js(r))) => b.body(r.into_parts().1),
        None => b.empty(),
    }
}

fn response(reply: Reply<UpBody>) -> Response {
    build(reply.status, &reply.headers, Some(reply.body))
}

fn bytes_response(status: u16, content_type: &str, body: String, id: &str) -> Response {
    let headers = [
        (String::from("content-type"), content_type.to_string()),
        (String::from("x-mosaic-request-id"), id.to_string()),
    ];
    build(status, &headers, Some(ReplyBody::Bytes(body.into_bytes())))
}

fn problem_response(p: &Problem, id: &str) -> (Response, RequestLog) {
    let reply: Reply<UpBody> = driver::problem(p, id);
    let log = reply.log.clone();
    (response(reply), log)
}

/// A problem+json answer listing config errors.
fn config_problem(
    status: u16,
    detail: &str,
    errors: &[String],
    id: &str,
) -> (Response, RequestLog) {
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
    worker::console_log!(
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

/// The caller's place from `request.cf`, read field by field through `Reflect` (some typed
/// getters of `worker::Cf` panic when a field is missing; `cf` is absent off Cloudflare).
fn locality(req: &Request) -> Locality {
    let raw =
        Reflect::get(req.inner().as_ref(), &JsValue::from_str("cf")).unwrap_or(JsValue::UNDEFINED);
    if !raw.is_object() {
        return Locality::default();
    }
    let obj: &Object = wasm_bindgen::JsCast::unchecked_ref(&raw);
    let s = |k: &str| {
        Reflect::get(obj, &JsValue::from_str(k))
            .ok()
            .and_then(|v| v.as_string())
            .map(|v| v.to_ascii_uppercase())
            .filter(|v| !v.is_empty())
    };
    Locality {
        colo: s("colo"),
        country: s("country"),
        continent: s("continent").and_then(|c| Continent::parse(&c)),
    }
}

/// The Workers entry point: never fails (errors are problem+json answers).
#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> worker::Result<Response> {
    let started = now();
    let id = request_id();
    let method = req.method().to_string();
    let path = req.path();
    let ctx = Rc::new(ctx);
    let (resp, mut log) = serve(req, &env, &ctx, &id).await;
    if log.latency.is_zero() {
        log.latency = now().saturating_since(started);
    }
    if log.status == 0 {
        log.status = resp.status_code();
    }
    // `MOSAIC_ACCESS_LOG = "off"` drops the access line (measurements; warnings stay)
    let access_log = env
        .var(ACCESS_LOG_VAR)
        .map_or(true, |v| v.to_string().trim() != "off");
    if access_log {
        log_line(&log, &method, &path, false);
    }
    Ok(resp)
}

/// The isolate's own figures for `/_mosaic/state` and metrics.
fn isolate_json(live: &Live) -> serde_json::Value {
    let material = live.state.borrow().material;
    with_isolate(|i| {
        serde_json::json!({
            "tiers": { "l1_hits": i.hits.l1, "kv_hits": i.hits.kv, "edge_cache_hits": i.hits.edge },
            "snapshot": {
                "material": material,
                "saved_material": i.saved_material,
                "write_pending": i.write_pending,
                "writes": i.writes,
                "restored_at_start": i.restored,
            },
        })
    })
}

fn cache_stats() -> CacheStats {
    with_isolate(|i| {
        let (entries, bytes, capacity_bytes) = i.l1.stats();
        CacheStats {
            entries,
            bytes,
            capacity_bytes,
            store: STORE_KIND.to_string(),
            collapsed: i.collapsed,
        }
    })
}

#[allow(clippy::too_many_lines)]
async fn admin(
    rest: &str,
    method: CoreMethod,
    live: &Rc<Live>,
    env: &Env,
    kv: Option<&KvStore>,
    id: &str,
) -> Result<Response, (Response, RequestLog)> {
    let rest = rest.split('?').next().unwrap_or(rest);
    Ok(match (method, rest) {
        (CoreMethod::Get, "metrics") => {
            let mut text = mosaic_core::metrics::render(&live.router.config, &live.state.borrow());
            let c = cache_stats();
            text.push_str(&format!(
                "# HELP mosaic_cache_entries Entries in the in-memory cache.\n# TYPE mosaic_cache_entries gauge\nmosaic_cache_entries {}\n\
                 # HELP mosaic_cache_bytes Bytes in the in-memory cache.\n# TYPE mosaic_cache_bytes gauge\nmosaic_cache_bytes {}\n\
                 # HELP mosaic_cache_capacity_bytes Bound of the in-memory cache.\n# TYPE mosaic_cache_capacity_bytes gauge\nmosaic_cache_capacity_bytes {}\n\
                 # HELP mosaic_cache_collapsed_total Misses that waited for another request's fetch.\n# TYPE mosaic_cache_collapsed_total counter\nmosaic_cache_collapsed_total {}\n",
                c.entries, c.bytes, c.capacity_bytes, c.collapsed
            ));
            bytes_response(200, "text/plain; version=0.0.4; charset=utf-8", text, id)
        }
        (CoreMethod::Get, "state") => {
            let mut v = state_json(&live.router, &live.state.borrow(), &cache_stats(), now());
            if let Some(o) = v.as_object_mut() {
                o.insert("generation".into(), live.generation.into());
                o.insert("config".into(), live.source.into());
                o.insert("isolate".into(), isolate_json(live));
            }
            bytes_response(200, "application/json", v.to_string(), id)
        }
        (CoreMethod::Post, "reload") => {
            let reloaded = config::current(env, kv, true).await;
            let rejected = with_isolate(|i| i.rejected.as_ref().map(|(_, e)| e.clone()));
            match (reloaded, rejected) {
                (Ok(l), None) => bytes_response(
                    200,
                    "application/json",
                    serde_json::json!({ "reloaded": true, "generation": l.generation, "source": l.source, "warnings": l.router.warnings }).to_string(),
                    id,
                ),
                (_, Some(errors)) | (Err(errors), None) => {
                    return Err(config_problem(
                        400,
                        "the new configuration was rejected; the old one stays",
                        &errors,
                        id,
                    ))
                }
            }
        }
        _ => {
            return Err(problem_response(
                &Problem::new(
                    ProblemKind::NoRoute,
                    format!(
                        "{} /_mosaic/{rest} is not an admin endpoint; try GET health, GET metrics, GET state, POST reload, GET hooks/dead",
                        method.as_str()
                    ),
                ),
                id,
            ))
        }
    })
}

/// The request's host without a port, lowercase.
fn host_name(req: &Request) -> Option<String> {
    let raw = req.headers().get("host").ok().flatten().or_else(|| {
        req.url()
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
    })?;
    let h = match raw.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or("").to_string(),
        None => match raw.rsplit_once(':') {
            Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h.to_string(),
            _ => raw,
        },
    };
    Some(h.to_ascii_lowercase())
}

#[allow(clippy::too_many_lines)]
async fn serve(mut req: Request, env: &Env, ctx: &Rc<Context>, id: &str) -> (Response, RequestLog) {
    let kv = match env.kv(KV_BINDING) {
        Ok(kv) => Some(kv),
        Err(e) => {
            log_event(
                "warn",
                &format!("KV binding `{KV_BINDING}` unavailable: {e}"),
            );
            None
        }
    };
    let live = match config::current(env, kv.as_ref(), false).await {
        Ok(l) => l,
        Err(errors) => return config_problem(500, "the configuration is invalid", &errors, id),
    };
    let server = &live.router.config.server;
    let plain_log = || RequestLog {
        request_id: id.to_string(),
        route: Some(String::from("_mosaic")),
        cache: driver::cache_result::BYPASS,
        ..RequestLog::default()
    };

    // the head first: nothing else looks at a request that breaks a limit
    let all: Vec<(String, String)> = req.headers().entries().collect();
    let limits = HeadLimits {
        max_headers: server.max_headers as usize,
        max_header_bytes: usize::try_from(server.max_header_bytes).unwrap_or(usize::MAX),
    };
    if let Err(p) = check_head(&all, &limits) {
        return problem_response(&p, id);
    }
    let declared = all
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<u64>().ok());
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
    let method_text = req.method().to_string();
    let Some(method) = CoreMethod::parse(&method_text) else {
        let p = Problem::new(
            ProblemKind::BadRequest,
            format!("method {method_text} is not supported; expected GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS"),
        );
        return problem_response(&p, id);
    };
    let target = match req.url() {
        Ok(u) => match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_string(),
        },
        Err(_) => String::from("/"),
    };
    let ip = all
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("cf-connecting-ip"))
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty());
    // the platform's own `cf-*` request headers describe Cloudflare, not the caller
    let headers: Vec<(String, String)> = all
        .into_iter()
        .filter(|(n, _)| !n.to_ascii_lowercase().starts_with("cf-"))
        .collect();

    match classify(&target) {
        Endpoint::Health => {
            let ready = kv.is_some();
            let mut v = mosaic_core::admin::health_json(&live.router, ready, STORE_KIND);
            v["config"] = live.source.into();
            v["generation"] = live.generation.into();
            let status = if ready { 200 } else { 503 };
            (
                bytes_response(status, "application/json", v.to_string(), id),
                plain_log(),
            )
        }
        Endpoint::Admin(rest) => {
            if let Err(p) = live.router.check_admin(&headers) {
                return problem_response(&p, id);
            }
            if rest.starts_with("hooks/") {
                return hooks::admin(&live, kv.as_ref(), ctx, method, rest, &target, id).await;
            }
            match admin(rest, method, &live, env, kv.as_ref(), id).await {
                Ok(r) => (r, plain_log()),
                Err(answer) => answer,
            }
        }
        Endpoint::Hook(name) => {
            let (kv, t) = (kv.as_ref(), &target);
            hooks::receive(req, &live, kv, ctx, name, t, &headers, declared, id).await
        }
        Endpoint::Proxy => {
            let max_body = usize::try_from(server.max_body_bytes).unwrap_or(usize::MAX);
            let max_cache_body = usize::try_from(server.max_cache_body_bytes).unwrap_or(usize::MAX);
            // bodies are buffered (bounded): failover may need to resend them
            let body = if matches!(method, CoreMethod::Get | CoreMethod::Head) && declared.is_none()
            {
                Vec::new()
            } else {
                match req.bytes().await {
                    Ok(b) if b.len() > max_body => {
                        let p = Problem::new(
                            ProblemKind::PayloadTooLarge,
                            format!("request body exceeds the limit of {max_body} bytes"),
                        );
                        return problem_response(&p, id);
                    }
                    Ok(b) => b,
                    Err(e) => {
                        let p = Problem::new(
                            ProblemKind::BadRequest,
                            format!("could not read the request body: {e}"),
                        );
                        return problem_response(&p, id);
                    }
                }
            };
            let host_name = host_name(&req);
            let locality = locality(&req);
            // the caller's scheme as Cloudflare saw it (`http` under `wrangler dev`)
            let https = req.url().is_ok_and(|u| u.scheme() == "https");
            let body = Rc::new(body);
            let host = WorkersHost::new(
                Rc::clone(&live),
                kv.clone(),
                Rc::clone(ctx),
                Rc::clone(&body),
            );
            let request = CoreRequest {
                method,
                host: host_name.as_deref(),
                target: &target,
                headers: &headers,
                client_ip: ip.as_deref(),
                https,
                locality: locality.clone(),
                id,
            };
            let reply = driver::handle(&host, &live.router, &request, max_cache_body).await;
            let revalidate = reply.revalidate.then(|| host.looked_up()).flatten();
            drop(host);
            if let Some(key) = revalidate {
                if with_isolate(|i| i.revalidating.insert(key.clone())) {
                    let bg = WorkersHost::new(Rc::clone(&live), kv.clone(), Rc::clone(ctx), body);
                    let (live_bg, kv_bg, ctx_bg) = (Rc::clone(&live), kv.clone(), Rc::clone(ctx));
                    let (target, headers) = (target.clone(), headers.clone());
                    ctx.wait_until(async move {
                        let id = request_id();
                        let request = CoreRequest {
                            method,
                            host: host_name.as_deref(),
                            target: &target,
                            headers: &headers,
                            client_ip: ip.as_deref(),
                            https,
                            locality,
                            id: &id,
                        };
                        let reply =
                            driver::refresh(&bg, &live_bg.router, &request, max_cache_body).await;
                        drop(bg);
                        with_isolate(|i| i.revalidating.remove(&key));
                        write_behind(&live_bg, kv_bg.as_ref(), &ctx_bg);
                        let path = target.split('?').next().unwrap_or("");
                        log_line(&reply.log, method.as_str(), path, true);
                    });
                }
            }
            write_behind(&live, kv.as_ref(), ctx);
            let log = reply.log.clone();
            (response(reply), log)
        }
    }
}
