//! Webhooks on Workers: `POST /hooks/{endpoint}`, the deliveries that follow in `wait_until`,
//! the Cron Trigger that resumes parked ones, and the dead-letter admin endpoints. Every
//! decision (size limit, signature, replay window, dedup, what to forward, when to retry, what
//! is dead) is made by `mosaic_providers::hooks`; this module translates: Workers KV becomes
//! its KV ([`WorkersHooks`] implements [`HookHost`]), `fetch` its POST, `Date::now()` its
//! clock, `ctx.wait_until` its background work.
//!
//! - A request is answered as soon as [`handle_hook`] returns (the outbox is in KV by then);
//!   each returned delivery runs in `ctx.wait_until` ([`deliver`] with `until` = now +
//!   [`BACKGROUND_WINDOW`]): Workers stops `waitUntil` work 30 s after the response, so a retry
//!   due later is *parked* in KV.
//! - The Cron Trigger (`[triggers] crons = ["* * * * *"]` in wrangler.toml, [`cron`]) finds
//!   pending records whose task is evidently gone ([`due_pending`], [`RESUME_GRACE`]) and
//!   delivers them, again within [`BACKGROUND_WINDOW`].
//! - KV keys are the library's (`hooks:seen:…` with a TTL of at least 60 s, as KV requires;
//!   `hooks:pending:…`, `hooks:dead:…`). Workers KV is eventually consistent (about 60 s across
//!   colos), so dedup is best-effort there; destinations should dedup on the event id.
//!
//! Logs (target `mosaic::hooks`): one JSON line per delivery received and one per delivery
//! outcome. Never a secret, a signature, a header or a body; URLs without their query.

use mosaic_core::target::percent_decode;
use std::pin::pin;
use std::rc::Rc;
use std::time::Duration;

use futures_util::future::{join_all, select, Either};
use mosaic_core::driver::{cache_result, RequestLog};
use mosaic_core::http::Method as CoreMethod;
use mosaic_core::problem::{Problem, ProblemKind};
use mosaic_core::rng::Rng;
use mosaic_core::target::is_private_host;
use mosaic_core::time::Instant;
use mosaic_core::Router;
use mosaic_providers::hooks::{
    body_limit, deliver, due_pending, handle_hook, list_dead_letters, payload_too_large,
    replay_dead_letter, Delivered, Delivery, DeliveryPolicy, HookHost, HookReply, KvError,
    PostError,
};
use wasm_bindgen::JsValue;
use worker::js_sys::{self, Function, Reflect, Uint8Array};
use worker::{
    event, AbortController, Context, Delay, Env, Fetch, Headers, KvStore, Method, Request,
    RequestInit, RequestRedirect, Response, ScheduleContext, ScheduledEvent,
};

use crate::host::{now, random_u64, Live, KV_BINDING};
use crate::{build, problem_response};
use mosaic_core::driver::ReplyBody;

/// How long after the response background deliveries may run: Workers stops `waitUntil` work
/// 30 s after it, so retries due later are parked for the cron.
pub const BACKGROUND_WINDOW: Duration = Duration::from_secs(25);
/// How late a pending record must be before the cron resumes it: longer than a live task can
/// still be working on it (its window plus a POST timeout).
pub const RESUME_GRACE: Duration = Duration::from_secs(60);
/// Shortest TTL Workers KV accepts.
const KV_MIN_TTL: Duration = Duration::from_secs(60);

/// [`HookHost`] over the `MOSAIC_KV` namespace, `fetch` and `Date::now()`.
pub struct WorkersHooks {
    kv: Option<KvStore>,
    live: Rc<Live>,
}

impl WorkersHooks {
    /// The hook host of one request (or cron run).
    #[must_use]
    pub fn new(kv: Option<KvStore>, live: Rc<Live>) -> WorkersHooks {
        WorkersHooks { kv, live }
    }

    fn kv(&self) -> Result<&KvStore, KvError> {
        self.kv
            .as_ref()
            .ok_or_else(|| KvError(format!("the KV binding `{KV_BINDING}` is unavailable")))
    }
}

fn kv_err(e: impl std::fmt::Display) -> KvError {
    KvError(e.to_string())
}

/// Whether the operator allowed private addresses for destination `url` (as configured: the
/// same URL is what the delivery record carries).
fn allows_private(router: &Router, url: &str) -> bool {
    router
        .config
        .webhooks
        .iter()
        .flat_map(|w| &w.destinations)
        .any(|d| d.url == url && d.allow_private)
}

/// Headers the runtime sets itself or refuses on an outbound request.
fn forbidden_outbound(name: &str) -> bool {
    ["host", "connection", "content-length", "transfer-encoding"]
        .iter()
        .any(|f| name.eq_ignore_ascii_case(f))
}

impl HookHost for WorkersHooks {
    fn now(&self) -> Instant {
        now()
    }

    async fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.kv()?.get(key).bytes().await.map_err(kv_err)
    }

    async fn kv_put(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> Result<(), KvError> {
        let mut put = self.kv()?.put_bytes(key, &value).map_err(kv_err)?;
        if let Some(ttl) = ttl {
            put = put.expiration_ttl(ttl.max(KV_MIN_TTL).as_secs());
        }
        put.execute().await.map_err(kv_err)
    }

    async fn kv_delete(&self, key: &str) -> Result<(), KvError> {
        self.kv()?.delete(key).await.map_err(kv_err)
    }

    async fn kv_list(&self, prefix: &str) -> Result<Vec<String>, KvError> {
        let kv = self.kv()?;
        let mut keys = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut list = kv.list().prefix(prefix.to_string());
            if let Some(c) = cursor.take() {
                list = list.cursor(c);
            }
            let page = list.execute().await.map_err(kv_err)?;
            keys.extend(page.keys.into_iter().map(|k| k.name));
            match page.cursor {
                Some(c) if !page.list_complete && !c.is_empty() => cursor = Some(c),
                _ => return Ok(keys),
            }
        }
    }

    async fn post(
        &self,
        url: &str,
        headers: &[(String, String)],
        body: &[u8],
        deadline: Instant,
    ) -> Result<u16, PostError> {
        let timeout = deadline.saturating_since(now());
        if timeout.is_zero() {
            return Err(PostError::Timeout);
        }
        let parsed = worker::Url::parse(url)
            .map_err(|_| PostError::Refused(String::from("the destination URL does not parse")))?;
        let host = parsed.host_str().unwrap_or("");
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if !allows_private(&self.live.router, url) && is_private_host(host) {
            return Err(PostError::Refused(format!(
                "{host} is a private address and the destination does not set allow_private"
            )));
        }
        let h = Headers::new();
        for (n, v) in headers {
            if !forbidden_outbound(n) {
                let _ = h.append(n, v);
            }
        }
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_headers(h)
            .with_redirect(RequestRedirect::Manual)
            .with_body(Some(Uint8Array::from(body).into()));
        let req = Request::new_with_init(parsed.as_str(), &init)
            .map_err(|e| PostError::Refused(format!("cannot build the request: {e}")))?;
        let controller = AbortController::default();
        let signal = controller.signal();
        let fetch = Fetch::Request(req);
        let send = pin!(fetch.send_with_signal(&signal));
        let delay = pin!(Delay::from(timeout));
        match select(send, delay).await {
            Either::Left((Ok(mut resp), _)) => {
                let status = resp.status_code();
                // drain (bounded by the deadline) so the connection can be reused
                let left = deadline.saturating_since(now());
                let drain = pin!(resp.bytes());
                let _ = select(drain, pin!(Delay::from(left))).await;
                Ok(status)
            }
            Either::Left((Err(e), _)) => Err(PostError::Network(e.to_string())),
            Either::Right(((), _)) => {
                controller.abort();
                Err(PostError::Timeout)
            }
        }
    }

    async fn sleep_until(&self, t: Instant) {
        let d = t.saturating_since(now());
        if !d.is_zero() {
            Delay::from(d).await;
        }
    }
}

/// 64 bits from `crypto.getRandomValues` (the jitter seed), `Math.random` when unavailable.
fn seed() -> u64 {
    let from_crypto = || -> Option<u64> {
        let crypto = Reflect::get(&js_sys::global(), &JsValue::from_str("crypto")).ok()?;
        let f: Function = wasm_bindgen::JsCast::dyn_into(
            Reflect::get(&crypto, &JsValue::from_str("getRandomValues")).ok()?,
        )
        .ok()?;
        let buf = Uint8Array::new_with_length(8);
        f.call1(&crypto, &buf).ok()?;
        let mut b = [0u8; 8];
        buf.copy_to(&mut b);
        Some(u64::from_le_bytes(b))
    };
    from_crypto().unwrap_or_else(random_u64)
}

/// A URL without its query or fragment (which may carry a token).
fn redact(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

/// Runs one delivery until it is done, dead-lettered or parked past [`BACKGROUND_WINDOW`], and
/// logs one line with the outcome.
async fn run(hooks: &WorkersHooks, d: Delivery, why: &str) -> Delivered {
    let started = now();
    let until = started.saturating_add(BACKGROUND_WINDOW);
    let mut rng = Rng::seed(seed());
    let policy = DeliveryPolicy::default();
    let (outcome, d) = deliver(hooks, &hooks.live.router, &policy, d, &mut rng, Some(until)).await;
    let (name, at) = match outcome {
        Delivered::Done => ("delivered", None),
        Delivered::DeadLettered => ("dead-lettered", None),
        Delivered::Parked { at } => ("parked", Some(at)),
    };
    worker::console_log!(
        "{}",
        serde_json::json!({
            "level": "info",
            "target": "mosaic::hooks",
            "message": format!("webhook delivery {name} ({why})"),
            "delivery": d.id(),
            "endpoint": d.endpoint,
            "event_id": d.event_id,
            "destination": d.dest,
            "url": redact(&d.url),
            "outcome": name,
            "attempts": d.attempts,
            "last_error": d.last_error.as_deref().unwrap_or(""),
            "next_attempt_at": at.map_or(0, |a| a.as_micros() / 1_000_000),
            "elapsed_ms": now().saturating_since(started).as_secs_f64() * 1000.0,
        })
    );
    outcome
}

/// Schedules `deliveries` in `ctx.wait_until`, one task each.
fn spawn(
    ctx: &Context,
    kv: Option<&KvStore>,
    live: &Rc<Live>,
    deliveries: Vec<Delivery>,
    why: &'static str,
) {
    for d in deliveries {
        let hooks = WorkersHooks::new(kv.cloned(), Rc::clone(live));
        ctx.wait_until(async move {
            let _ = run(&hooks, d, why).await;
        });
    }
}

fn reply_response(reply: &HookReply) -> Response {
    build(
        reply.status,
        &reply.headers,
        Some(ReplyBody::Bytes(reply.body.clone())),
    )
}

/// Handles `POST /hooks/{endpoint}`: [`handle_hook`], the answer, and one `wait_until`
/// delivery task per returned delivery. `declared` is the request's `content-length`.
#[allow(clippy::too_many_arguments)]
pub async fn receive(
    mut req: Request,
    live: &Rc<Live>,
    kv: Option<&KvStore>,
    ctx: &Context,
    endpoint: &str,
    target: &str,
    headers: &[(String, String)],
    declared: Option<u64>,
    id: &str,
) -> (Response, RequestLog) {
    let endpoint = endpoint.split('?').next().unwrap_or(endpoint);
    let router = &live.router;
    let mut log = RequestLog {
        request_id: id.to_string(),
        route: Some(String::from("_hooks")),
        cache: cache_result::BYPASS,
        ..RequestLog::default()
    };
    let hooks = WorkersHooks::new(kv.cloned(), Rc::clone(live));
    let (reply, bytes) = match body_limit(router, endpoint) {
        // an unknown endpoint is answered (404) without reading its body
        None => (
            handle_hook(&hooks, router, endpoint, target, headers, &[], id).await,
            0,
        ),
        Some(limit) if declared.is_some_and(|n| n > limit) => {
            (payload_too_large(router, endpoint, id), 0)
        }
        Some(limit) => match req.bytes().await {
            Ok(b) if b.len() as u64 > limit => (payload_too_large(router, endpoint, id), 0),
            Ok(b) => (
                handle_hook(&hooks, router, endpoint, target, headers, &b, id).await,
                b.len(),
            ),
            Err(e) => {
                let p = Problem::new(
                    ProblemKind::BadRequest,
                    format!("could not read the request body: {e}"),
                );
                let (resp, mut plog) = problem_response(&p, id);
                plog.route = log.route.take();
                return (resp, plog);
            }
        },
    };
    let known = body_limit(router, endpoint).is_some();
    if known {
        // only configured endpoints are counted: a name in the URL must not mint metrics
        live.state
            .borrow_mut()
            .metrics
            .count_webhook(endpoint, reply.result);
        log.route = Some(format!("hooks/{endpoint}"));
    }
    log.status = reply.status;
    worker::console_log!("{}", reply.receipt_log(id, endpoint, known, bytes));
    if let Some(token) = &reply.handshake_token {
        // Notion's verification token: the operator's only channel is the log (see the local
        // host's `log_handshake`); reported only while no secret is configured
        crate::log_event(
            "warn",
            &format!(
                "Notion verification token for /hooks/{endpoint}: {} — paste it into Notion's \"Verify\" dialog, then configure it as this endpoint's secret; until then this log line holds that secret",
                token.expose()
            ),
        );
    }
    let resp = reply_response(&reply);
    spawn(ctx, kv, live, reply.deliveries, "after answering");
    (resp, log)
}

/// `/_mosaic/hooks/…` (the admin token was checked): `GET hooks/dead[?endpoint=NAME]` lists the
/// dead letters, `POST hooks/dead/{id}/replay` re-enqueues one (the id percent-decoded: event
/// ids may contain `/`) and delivers it in `wait_until` (`202`, `status: "pending"`). `path` is
/// the path after `/_mosaic/`, `target` the whole request target (for the query).
pub async fn admin(
    live: &Rc<Live>,
    kv: Option<&KvStore>,
    ctx: &Context,
    method: CoreMethod,
    path: &str,
    target: &str,
    id: &str,
) -> (Response, RequestLog) {
    let path = path.split('?').next().unwrap_or(path);
    let query = target.split_once('?').map_or("", |(_, q)| q);
    let hooks = WorkersHooks::new(kv.cloned(), Rc::clone(live));
    let log = RequestLog {
        request_id: id.to_string(),
        route: Some(String::from("_mosaic")),
        cache: cache_result::BYPASS,
        ..RequestLog::default()
    };
    let json = |status: u16, body: String| {
        let headers = [
            (
                String::from("content-type"),
                String::from("application/json"),
            ),
            (String::from("x-mosaic-request-id"), id.to_string()),
        ];
        build(status, &headers, Some(ReplyBody::Bytes(body.into_bytes())))
    };
    if path == "hooks/dead" && method == CoreMethod::Get {
        let endpoint = query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == "endpoint")
            .and_then(|(_, v)| percent_decode(v, true))
            .filter(|v| !v.is_empty());
        return match list_dead_letters(&hooks, endpoint.as_deref()).await {
            Ok(body) => (json(200, body), log),
            Err(e) => problem_response(&Problem::new(ProblemKind::Internal, e.to_string()), id),
        };
    }
    let replay = path
        .strip_prefix("hooks/dead/")
        .and_then(|r| r.strip_suffix("/replay"))
        .filter(|r| !r.is_empty());
    if let (Some(raw), CoreMethod::Post) = (replay, method) {
        let Some(letter) = percent_decode(raw, false) else {
            let p = Problem::new(
                ProblemKind::BadRequest,
                "the dead-letter id is not valid percent-encoded UTF-8",
            );
            return problem_response(&p, id);
        };
        return match replay_dead_letter(&hooks, &letter).await {
            Ok(d) => {
                let body = serde_json::json!({
                    "replayed": d.id(),
                    "endpoint": d.endpoint,
                    "event_id": d.event_id,
                    "destination": d.dest,
                    "status": "pending",
                })
                .to_string();
                spawn(ctx, kv, live, vec![d], "replayed by the operator");
                (json(202, body), log)
            }
            Err(e) => problem_response(&e.to_problem(&letter), id),
        };
    }
    let p = Problem::new(
        ProblemKind::NoRoute,
        format!(
            "{} /_mosaic/{path} is not an admin endpoint; try GET hooks/dead[?endpoint=NAME] or POST hooks/dead/{{id}}/replay",
            method.as_str()
        ),
    );
    problem_response(&p, id)
}

/// The Cron Trigger: delivers the pending records whose `wait_until` task is gone (parked past
/// its window, or cut off), each within [`BACKGROUND_WINDOW`].
#[event(scheduled)]
async fn cron(_event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    let kv = match env.kv(KV_BINDING) {
        Ok(kv) => kv,
        Err(e) => {
            crate::log_event(
                "warn",
                &format!("outbox scan skipped: KV binding `{KV_BINDING}` unavailable: {e}"),
            );
            return;
        }
    };
    let live = match crate::config::current(&env, Some(&kv), false).await {
        Ok(l) => l,
        Err(errors) => {
            crate::log_errors("outbox scan skipped: the configuration is invalid", &errors);
            return;
        }
    };
    if live.router.config.webhooks.is_empty() {
        return;
    }
    let hooks = WorkersHooks::new(Some(kv.clone()), Rc::clone(&live));
    let due = match due_pending(&hooks, now(), RESUME_GRACE).await {
        Ok(d) => d,
        Err(e) => {
            crate::log_event("warn", &format!("outbox scan failed: {e}"));
            return;
        }
    };
    let tasks = due.into_iter().map(|d| {
        let hooks = WorkersHooks::new(Some(kv.clone()), Rc::clone(&live));
        async move {
            let _ = run(&hooks, d, "resumed by the cron").await;
        }
    });
    join_all(tasks).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_logged_without_query() {
        assert_eq!(redact("https://x.test/a?token=s#f"), "https://x.test/a");
    }
}
