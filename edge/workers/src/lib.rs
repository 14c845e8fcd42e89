//! # mosaic-workers
//!
//! The Cloudflare Workers host of Mosaic Edge: a thin translation layer (crate `worker`) over
//! the shared application [`mosaic_providers::app`]. It decides nothing: every path (front
//! door, `/_mosaic/*`, `/hooks/*`, `/v1/*`, proxy routes), every problem, policy and log line
//! comes from core and providers, exactly as on the other hosts.
//!
//! Per request ([`fetch`]): load the configuration ([`config`], hot-reloaded), turn the Workers
//! request into an [`Inbound`] (origin-form target, headers without the platform's `cf-*`,
//! `cf-connecting-ip`, the URL scheme, `request.cf`'s place), call [`app::handle`] with a
//! [`WorkersHost`], write its log lines and the access line, run each job that follows
//! ([`Job`]) with [`app::run_job`] in `ctx.wait_until` within [`BACKGROUND_WINDOW`], and
//! schedule the state write-behind ([`host::write_behind`]).
//!
//! The Cron Trigger ([`cron`], `[triggers] crons = ["* * * * *"]` in wrangler.toml) delivers
//! the webhook outbox's records whose `wait_until` task is gone ([`due_pending`],
//! [`RESUME_GRACE`]): Workers stops `waitUntil` work 30 s after the response, so a delivery
//! retry due later is parked in KV for it. Workers KV is eventually consistent (about 60 s
//! across colos), so webhook dedup is best-effort there; destinations should dedup on the
//! event id.

use std::rc::Rc;
use std::time::Duration;

use futures_util::future::join_all;
use mosaic_core::driver::{Reply, ReplyBody};
use mosaic_core::region::{Continent, Locality};
use mosaic_core::target::path_of;
use mosaic_providers::app::{self, Inbound, Job, Serving, Window};
use mosaic_providers::hooks::due_pending;
use wasm_bindgen::JsValue;
use worker::js_sys::{Object, Reflect};
use worker::url::Position;
use worker::{event, Context, Env, Headers, KvStore, Request, Response, ResponseBuilder};
use worker::{ScheduleContext, ScheduledEvent};

pub mod config;
pub mod host;

use host::{now, random_u64, write_behind, Live, UpBody, WorkersHost, KV_BINDING, STORE_KIND};

/// The variable that turns the per-request access line off (`"off"`).
pub const ACCESS_LOG_VAR: &str = "MOSAIC_ACCESS_LOG";
/// How long after the response background jobs may run: Workers stops `waitUntil` work 30 s
/// after it (a delivery retry due later is parked for the cron).
pub const BACKGROUND_WINDOW: Duration = Duration::from_secs(25);
/// How late a pending delivery must be before the cron resumes it: longer than a live task can
/// still be working on it (its window plus a POST timeout).
pub const RESUME_GRACE: Duration = Duration::from_secs(60);

/// Writes one JSON log line.
pub fn log(line: serde_json::Value) {
    worker::console_log!("{line}");
}

/// Writes a warning about the platform (a binding or KV operation that failed).
pub fn warn(message: &str) {
    log(app::event("warn", "mosaic::workers", message));
}

/// A response the runtime accepts whatever the reply's status and headers are (never panics).
fn response(reply: Reply<UpBody>) -> Response {
    let status = Some(reply.status).filter(|s| (200..=599).contains(s));
    let status = status.unwrap_or(502);
    let h = Headers::new();
    for (n, v) in &reply.headers {
        let _ = h.append(n, v);
    }
    let b = ResponseBuilder::new().with_status(status).with_headers(h);
    match reply.body {
        _ if matches!(status, 204 | 205 | 304) => b.empty(),
        ReplyBody::Bytes(bytes) | ReplyBody::Stream(UpBody::Bytes(bytes)) => b.fixed(bytes),
        ReplyBody::Stream(UpBody::Js(r)) => b.body(r.into_parts().1),
    }
}

/// The caller's place from `request.cf`, read field by field through `Reflect` (some typed
/// getters of `worker::Cf` panic when a field is missing; `cf` is absent off Cloudflare).
fn locality(req: &Request) -> Locality {
    let raw = Reflect::get(req.inner().as_ref(), &JsValue::from_str("cf"));
    let Some(obj) = raw.ok().filter(JsValue::is_object) else {
        return Locality::default();
    };
    let obj: &Object = wasm_bindgen::JsCast::unchecked_ref(&obj);
    let s = |k: &str| {
        let v = Reflect::get(obj, &JsValue::from_str(k)).ok()?.as_string()?;
        Some(v.to_ascii_uppercase()).filter(|v| !v.is_empty())
    };
    let continent = s("continent").and_then(|c| Continent::parse(&c));
    Locality { colo: s("colo"), country: s("country"), continent }
}

/// Runs `job` in `ctx.wait_until` on a host of its own, then logs its line and schedules the
/// state write-behind.
fn spawn(job: Job, live: &Rc<Live>, env: &Env, kv: Option<KvStore>, ctx: &Rc<Context>) {
    let (ctx_bg, until) = (Rc::clone(ctx), now() + BACKGROUND_WINDOW);
    let host = WorkersHost::new(Rc::clone(live), env, kv.clone(), Some(Rc::clone(ctx)));
    ctx.wait_until(async move {
        let router = &host.live.router;
        log(app::run_job(&host, router, job, Window::Until(until), random_u64()).await);
        write_behind(&host.live, kv.as_ref(), &ctx_bg);
    });
}

/// The Workers entry point: never fails (errors are problem+json answers).
#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> worker::Result<Response> {
    let (started, id, ctx) = (now(), format!("{:016x}", random_u64()), Rc::new(ctx));
    let unbound = |e: worker::Error| warn(&format!("KV binding `{KV_BINDING}` unavailable: {e}"));
    let kv = env.kv(KV_BINDING).map_err(unbound).ok();
    let method = req.method().to_string();
    let url = req.url().ok();
    let target = url.as_ref().map_or("/", |u| &u[Position::BeforePath..Position::AfterQuery]);
    let mut headers: Vec<(String, String)> = req.headers().entries().collect();
    let ip = headers.iter().find(|(n, _)| n.eq_ignore_ascii_case("cf-connecting-ip"));
    let ip = ip.map(|(_, v)| v.trim().to_string()).filter(|v| !v.is_empty());
    // the platform's own `cf-*` request headers describe Cloudflare, not the caller
    headers.retain(|(n, _)| !n.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("cf-")));
    let locality = locality(&req);
    let mut reply = match config::current(&env, kv.as_ref(), false).await {
        Err(errors) => app::unconfigured(target, STORE_KIND, &errors, &id),
        Ok(live) => {
            let host = WorkersHost::new(Rc::clone(&live), &env, kv.clone(), Some(Rc::clone(&ctx)));
            let inbound = Inbound {
                method: &method,
                target,
                headers,
                body: req,
                framing: None,
                client_ip: ip.as_deref(),
                // the caller's scheme as Cloudflare saw it (`http` under `wrangler dev`)
                https: url.as_ref().is_some_and(|u| u.scheme() == "https"),
                locality,
                id: &id,
            };
            let serving = Serving { router: &live.router, generation: live.generation };
            let handled = app::handle(&host, serving, inbound).await;
            drop(host);
            handled.lines.into_iter().for_each(log);
            for job in handled.after {
                spawn(job, &live, &env, kv.clone(), &ctx);
            }
            write_behind(&live, kv.as_ref(), &ctx);
            handled.reply
        }
    };
    if reply.log.latency.is_zero() {
        reply.log.latency = now().saturating_since(started);
    }
    // `MOSAIC_ACCESS_LOG = "off"` drops the access line (measurements; warnings stay)
    if env.var(ACCESS_LOG_VAR).map_or(true, |v| v.to_string().trim() != "off") {
        log(app::access_line(&reply.log, &method, path_of(target), false));
    }
    Ok(response(reply))
}

/// The Cron Trigger: delivers the pending records whose `wait_until` task is gone (parked past
/// its window, or cut off), each within [`BACKGROUND_WINDOW`].
#[event(scheduled)]
async fn cron(_event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    let kv = match env.kv(KV_BINDING) {
        Ok(kv) => kv,
        Err(e) => return warn(&format!("outbox scan skipped: KV binding `{KV_BINDING}`: {e}")),
    };
    let live = match config::current(&env, Some(&kv), false).await {
        Ok(l) if l.router.config.webhooks.is_empty() => return,
        Ok(l) => l,
        Err(errors) => {
            return log(app::errors_line("outbox scan skipped: no valid configuration", &errors))
        }
    };
    let host = WorkersHost::new(Rc::clone(&live), &env, Some(kv), None);
    let due = match due_pending(&host, now(), RESUME_GRACE).await {
        Ok(d) => d,
        Err(e) => return warn(&format!("outbox scan failed: {e}")),
    };
    let window = Window::Until(now() + BACKGROUND_WINDOW);
    let runs = due.into_iter().map(|delivery| {
        let job = Job::Deliver { delivery, why: "resumed by the cron" };
        app::run_job(&host, &live.router, job, window, random_u64())
    });
    join_all(runs).await.into_iter().for_each(log);
}
