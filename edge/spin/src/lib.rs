//! # mosaic-spin
//!
//! The Fermyon Spin host of Mosaic Edge: one `wasi:http/incoming-handler@0.2.0` component
//! (spin-sdk 5.2, WASIp2: what production Spin platforms serve without experimental flags) serving the shared application
//! [`mosaic_providers::app`]. It decides nothing:
//! front door, admin, health, webhooks, `/v1`, proxy routes, problems and log lines all come
//! from the application, exactly as on the other hosts; this crate translates Spin's request,
//! key-value store, variables and clocks ([`host::SpinHost`]) and runs the application's jobs.
//!
//! Per request (Spin creates a fresh instance each time): open the `default` store, load the
//! config ([`config`]), read the state snapshot, [`app::handle`], write the snapshot back if
//! core counted a material change, write the log lines; a webhook delivery gets one quick
//! attempt before the answer; once the answer is written (the response outparam set and its
//! body finished) the handler goes on: stale-while-revalidate refreshes run and a bounded
//! amount of outbox work resumes what earlier requests parked.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use mosaic_core::driver::{Reply, ReplyBody};
use mosaic_core::region::Locality;
use mosaic_providers::app::{self, Inbound, Job, Serving, Window};
use mosaic_providers::hooks::due_pending;
use spin_sdk::http::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse};
use spin_sdk::http::{ResponseOutparam, Scheme};
use spin_sdk::key_value::Store;

pub mod config;
pub mod host;

use host::{header_list, wall_now, SpinHost, UpBody, STORE_KIND};

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

/// Writes the answer: head through the response outparam (Spin sends it at once), then the
/// body — bytes, or the upstream stream chunk by chunk — and finishes it. A body cut short (the
/// upstream stream broke, or the caller left) is left unfinished, so the runtime aborts the
/// response instead of ending it as if it were whole.
async fn respond(out: ResponseOutparam, reply: Reply<UpBody>) {
    let headers = Fields::new();
    for (n, v) in &reply.headers {
        // a name or value wasi:http refuses is dropped, not the answer
        let _ = headers.append(n, v.as_bytes());
    }
    let resp = OutgoingResponse::new(headers);
    let _ = resp.set_status_code(reply.status).or_else(|()| resp.set_status_code(502));
    let Some((stream, body)) = resp.body().ok().and_then(|b| Some((b.write().ok()?, b))) else {
        return out.set(resp);
    };
    out.set(resp);
    let write = |b: &[u8]| b.chunks(4096).try_for_each(|c| stream.blocking_write_and_flush(c));
    let whole = match reply.body {
        ReplyBody::Bytes(b) => write(&b).is_ok(),
        ReplyBody::Stream(mut up) => loop {
            match up.next().await {
                None => break true,
                Some(Ok(chunk)) if write(&chunk).is_ok() => {}
                Some(_) => break false,
            }
        },
    };
    drop(stream);
    if whole {
        let _ = OutgoingBody::finish(body, None);
    }
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

/// Whether the caller used TLS: the request's scheme (or that of `spin-full-url`).
fn caller_https(scheme: Option<Scheme>, headers: &[(String, String)]) -> bool {
    matches!(scheme, Some(Scheme::Https))
        || headers.iter().any(|(n, v)| {
            n.eq_ignore_ascii_case("spin-full-url")
                && v.get(..8).is_some_and(|p| p.eq_ignore_ascii_case("https://"))
        })
}

/// The `wasi:http/incoming-handler@0.2.0` export: spin-sdk's macro glue around [`handle`]
/// (wit-bindgen's export code is the crate's only `unsafe`).
#[allow(unsafe_code)]
mod export {
    #[spin_sdk::http_component]
    async fn entry(req: spin_sdk::http::IncomingRequest, out: spin_sdk::http::ResponseOutparam) {
        super::handle(req, out).await;
    }
}

/// The Spin entry point: never fails (errors are problem+json answers); after the answer it
/// runs the work the application handed back.
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    let started = wall_now();
    let id = format!("{:016x}", random_u64(0x6d6f_7361_6963));
    let all = header_list(req.headers().entries());
    let method = req.method().to_string();
    // the target is the path and query: a wasi:http@0.2 runtime (Spin, `wasmtime serve`) takes
    // the authority of an absolute-form target (or of `Host`) apart (see the README)
    let target = req.path_with_query().unwrap_or_else(|| String::from("/"));
    let ip = client_ip(&all);
    let inbound = Inbound {
        method: &method,
        target: &target,
        https: caller_https(req.scheme(), &all),
        // Spin's own `spin-*` request headers (names are lowercase) describe the platform
        headers: all.iter().filter(|(n, _)| !n.starts_with("spin-")).cloned().collect(),
        body: req,
        framing: None,
        client_ip: ip.as_deref(),
        locality: Locality::default(),
        id: &id,
    };
    let store = Store::open_default()
        .inspect_err(|e| warn(&format!("key-value store `default` unavailable: {e:?}")))
        .ok();
    let (mut reply, after) = match config::open(store, false).await {
        Err(errors) => (app::unconfigured(&target, STORE_KIND, &errors, &id), None),
        Ok(host) => {
            let serving = Serving { router: &host.router, generation: 1 };
            let handled = app::handle(&host, serving, inbound).await;
            handled.lines.iter().for_each(emit);
            // webhook deliveries: one quick attempt before answering; the rest after it
            let (now, later) =
                handled.after.into_iter().partition(|j| matches!(j, Job::Deliver { .. }));
            deliver_once(&host, now).await;
            host.save_state().await;
            (handled.reply, Some((host, later)))
        }
    };
    if reply.log.latency.is_zero() {
        reply.log.latency = wall_now().saturating_since(started);
    }
    if reply.log.status == 0 {
        reply.log.status = reply.status;
    }
    emit(&app::access_line(&reply.log, &method, target.split('?').next().unwrap_or("/"), false));
    respond(out, reply).await;
    if let Some((host, later)) = after {
        after_response(&host, later).await;
    }
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

/// After the response, in the same handler call (Spin keeps the instance until it returns):
/// the stale-while-revalidate refreshes, and the outbox resume when webhooks are configured.
async fn after_response(host: &SpinHost, jobs: Vec<Job>) {
    for job in jobs {
        let seed = random_u64(0x7265_7661);
        emit(&app::run_job(host, &host.router, job, Window::Unbounded, seed).await);
    }
    host.save_state().await;
    if !host.router.config.webhooks.is_empty() {
        resume_due(host).await;
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
