//! # mosaic-spin
//!
//! The Fermyon Spin host of Mosaic Edge: one `wasi:http/handler@0.3.0` component (spin-sdk 7,
//! WASI p3) serving the shared application [`mosaic_providers::app`]. It decides nothing:
//! front door, admin, health, webhooks, `/v1`, proxy routes, problems and log lines all come
//! from the application, exactly as on the other hosts; this crate translates Spin's request,
//! key-value store, variables and clocks ([`host::SpinHost`]) and runs the application's jobs.
//!
//! Per request (Spin creates a fresh instance each time): open the `default` store, load the
//! config ([`config`]), read the state snapshot, [`app::handle`], write the snapshot back if
//! core counted a material change, write the log lines; a webhook delivery gets one quick
//! attempt before the answer, and after it stale-while-revalidate refreshes run and a bounded
//! amount of outbox work resumes what earlier requests parked.

use std::hash::{BuildHasher, Hasher};
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};
use http_body_util::{Either, Full};
use mosaic_core::driver::{Reply, ReplyBody};
use mosaic_core::region::Locality;
use mosaic_providers::app::{self, Inbound, Job, Serving, Window};
use mosaic_providers::hooks::due_pending;
use spin_sdk::http::Request as SpinRequest;
use spin_sdk::http_service;
use spin_sdk::key_value::Store;

pub mod config;
pub mod host;

use host::{header_list, wall_now, SpinHost, UpBody, STORE_KIND};

/// The body of every answer: bytes, or an upstream stream.
pub type OutBody = Either<Full<Bytes>, UpBody>;

/// What one request may spend on delivery attempts in all, before answering (GitHub gives up
/// after 10 s; the rest of the request needs a little too) and again after it.
pub const INLINE_BUDGET: Duration = Duration::from_secs(2);
/// Most due deliveries one request resumes after its response.
pub const MAX_RESUMED: usize = 2;
/// How late a pending record must be before a later request resumes it: longer than an
/// inline attempt (so the request making that attempt is not raced by another one).
pub const RESUME_GRACE: Duration = Duration::from_secs(3);
/// Least time between two outbox scans, across instances.
pub const SCAN_PERIOD: Duration = Duration::from_secs(2);
/// KV key of the outbox-scan marker (`until` in µs).
pub const SCAN_KEY: &str = "mosaic:hooks-scan";

/// Writes a log line object as one JSON line on stdout (Spin collects it).
pub fn emit(line: &serde_json::Value) {
    println!("{line}");
}

/// Writes a warning of this host as one JSON line on stderr.
pub fn warn(message: &str) {
    eprintln!("{}", app::event("warn", "mosaic::spin", message));
}

/// 64 random bits (the std hasher's per-instance keys come from `wasi:random/insecure-seed`).
pub(crate) fn random_u64(salt: u64) -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(wall_now().as_micros());
    h.write_u64(salt);
    h.finish()
}

fn response(reply: Reply<UpBody>) -> http::Response<OutBody> {
    let body = match reply.body {
        ReplyBody::Bytes(b) => Either::Left(Full::new(Bytes::from(b))),
        ReplyBody::Stream(s) => Either::Right(s),
    };
    let mut r = http::Response::new(body);
    *r.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::BAD_GATEWAY);
    for (n, v) in &reply.headers {
        // a name or value the http crate refuses is dropped, not the answer
        let (Ok(n), Ok(v)) =
            (HeaderName::from_bytes(n.as_bytes()), HeaderValue::from_bytes(v.as_bytes()))
        else {
            continue;
        };
        r.headers_mut().append(n, v);
    }
    r
}

/// The caller's address Spin passes in `spin-client-addr` (`ip:port`).
fn client_ip(headers: &[(String, String)]) -> Option<String> {
    let v = headers.iter().find(|(n, _)| n.eq_ignore_ascii_case("spin-client-addr"))?.1.trim();
    let ip = match v.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => match v.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') && p.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => v,
        },
    };
    (!ip.is_empty()).then(|| ip.to_string())
}

/// Spin's own request headers (`spin-full-url`, `spin-path-info`, …): their presence means the
/// runtime is Spin, which always hands the component an absolute URI built from `Host`.
const SPIN_RUNTIME_HEADERS: [&str; 4] =
    ["spin-full-url", "spin-path-info", "spin-matched-route", "spin-client-addr"];

/// The request target to hand the application. `wasmtime serve` (and any wasi:http runtime
/// that keeps the request as received) gives an origin-form target as a path and a client's
/// absolute-form target as a full URI: the whole URI goes on, and is refused. Spin rewrites
/// *every* request URI to `scheme://Host/path` before the component sees it, so there an
/// absolute URI is the runtime's and only its path and query are the target (see the README).
fn request_target(uri: &http::Uri, headers: &[(String, String)]) -> String {
    let spin_runtime =
        headers.iter().any(|(n, _)| SPIN_RUNTIME_HEADERS.iter().any(|h| n.eq_ignore_ascii_case(h)));
    if uri.authority().is_some() && !spin_runtime {
        uri.to_string()
    } else {
        uri.path_and_query().map_or_else(|| String::from("/"), |pq| pq.as_str().to_string())
    }
}

/// Whether the caller used TLS: the scheme of the URI Spin builds (or of `spin-full-url`);
/// `wasmtime serve` hands an origin-form target over plain HTTP.
fn caller_https(uri: &http::Uri, headers: &[(String, String)]) -> bool {
    uri.scheme_str() == Some("https")
        || headers.iter().any(|(n, v)| {
            n.eq_ignore_ascii_case("spin-full-url")
                && v.get(..8).is_some_and(|p| p.eq_ignore_ascii_case("https://"))
        })
}

/// The Spin entry point: never fails (errors are problem+json answers).
#[http_service]
async fn handle(req: SpinRequest) -> http::Response<OutBody> {
    let started = wall_now();
    let id = format!("{:016x}", random_u64(0x6d6f_7361_6963));
    let (parts, body) = req.into_parts();
    let all = header_list(&parts.headers);
    let target = request_target(&parts.uri, &all);
    let ip = client_ip(&all);
    let inbound = Inbound {
        method: parts.method.as_str(),
        target: &target,
        https: caller_https(&parts.uri, &all),
        // Spin's own `spin-*` request headers (names are lowercase) describe the platform
        headers: all.iter().filter(|(n, _)| !n.starts_with("spin-")).cloned().collect(),
        body,
        head_checked: false,
        client_ip: ip.as_deref(),
        locality: Locality::default(),
        id: &id,
    };
    let store = Store::open_default()
        .await
        .inspect_err(|e| warn(&format!("key-value store `default` unavailable: {e:?}")))
        .ok();
    let mut reply = match config::open(store).await {
        Err(errors) => app::unconfigured(&target, STORE_KIND, &errors, &id),
        Ok(host) => {
            let host = Rc::new(host);
            let serving = Serving { router: &host.router, generation: 1 };
            let handled = app::handle(&*host, serving, inbound).await;
            handled.lines.iter().for_each(emit);
            // webhook deliveries: one quick attempt before answering; the rest after it
            let (now, later) =
                handled.after.into_iter().partition(|j| matches!(j, Job::Deliver { .. }));
            deliver_once(&host, now).await;
            host.save_state().await;
            after_response(host, later);
            handled.reply
        }
    };
    if reply.log.latency.is_zero() {
        reply.log.latency = wall_now().saturating_since(started);
    }
    if reply.log.status == 0 {
        reply.log.status = reply.status;
    }
    emit(&app::access_line(&reply.log, parts.method.as_str(), parts.uri.path(), false));
    response(reply)
}

/// One quick attempt per delivery job, all within [`INLINE_BUDGET`] from now; what fails, or what
/// the budget does not reach, stays pending in the outbox with its next attempt time.
async fn deliver_once(host: &SpinHost, jobs: Vec<Job>) {
    let end = wall_now().saturating_add(INLINE_BUDGET);
    for job in jobs {
        if end <= wall_now() {
            break;
        }
        let seed = random_u64(0x686f_6f6b);
        emit(&app::run_job(host, &host.router, job, Window::Once(end), seed).await);
    }
}

/// After the response (`wit_bindgen::spawn`: the instance lives until its tasks end): the
/// stale-while-revalidate refreshes, and the outbox resume when webhooks are configured.
fn after_response(host: Rc<SpinHost>, jobs: Vec<Job>) {
    for job in jobs {
        let host = Rc::clone(&host);
        spin_sdk::wit_bindgen::spawn(async move {
            let seed = random_u64(0x7265_7661);
            emit(&app::run_job(&*host, &host.router, job, Window::Unbounded, seed).await);
            host.save_state().await;
        });
    }
    if !host.router.config.webhooks.is_empty() {
        spin_sdk::wit_bindgen::spawn(async move { resume_due(&host).await });
    }
}

/// At most [`MAX_RESUMED`] due outbox deliveries get one attempt each, when no other request
/// scanned in the last [`SCAN_PERIOD`] (the scan lists every key of the store).
async fn resume_due(host: &SpinHost) {
    if !host.lease(SCAN_KEY, SCAN_PERIOD).await {
        return;
    }
    let mut due = match due_pending(host, wall_now(), RESUME_GRACE).await {
        Ok(d) => d,
        Err(e) => return warn(&format!("outbox scan failed: {e}")),
    };
    if due.len() > MAX_RESUMED {
        warn(&format!(
            "{} webhook deliveries are due; {MAX_RESUMED} are attempted, the rest wait for later requests (add a cron trigger or a pinger, see the README)",
            due.len()
        ));
        due.truncate(MAX_RESUMED);
    }
    let why = "resumed from the outbox";
    deliver_once(host, due.into_iter().map(|delivery| Job::Deliver { delivery, why }).collect())
        .await;
}
