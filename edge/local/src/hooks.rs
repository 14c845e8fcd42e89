//! Webhooks on the native host: `POST /hooks/{endpoint}`, the deliveries that follow, the
//! outbox scan, and the dead-letter admin endpoints. Every decision (size limit, signature,
//! replay window, dedup, what to forward, when to retry, what is dead) is made by
//! `mosaic_providers::hooks`; this module translates: the store becomes its KV
//! ([`LocalHooks`] implements [`HookHost`]), the upstream client its POST, tokio its clock and its
//! background tasks.
//!
//! - A request is read up to [`body_limit`] and no further (beyond it: [`payload_too_large`],
//!   and the connection is closed), then handed to [`handle_hook`]; its answer goes back at
//!   once and each returned delivery runs in its own task ([`deliver`] with `until: None`).
//! - At start-up and every minute, [`due_pending`] (60 s grace) finds outbox records whose task
//!   is gone (a restart, a crash) and runs them again.
//! - Hook keys live in the store under `mosaic:` (`mosaic:hooks:seen:…`, `mosaic:hooks:pending:…`,
//!   `mosaic:hooks:dead:…`). With the `memory` store the outbox and the dead letters end with
//!   the process; use `file` or `redis` to keep them.
//!
//! Logs (target `mosaic::hooks`): one JSON line per delivery received (endpoint, result,
//! status, event id, destinations) and one per delivery outcome (delivered, dead-lettered or
//! parked, attempts, the last error). Never a secret, a signature, a header or a body; URLs
//! without their query. The one exception is Notion's verification token, see
//! [`log_handshake`].

use mosaic_core::target::percent_decode;
use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};

use hyper::header::{HeaderName, HeaderValue, CONNECTION};
use hyper::Response;
use mosaic_core::driver::{cache_result, RequestLog};
use mosaic_core::http::Method;
use mosaic_core::problem::{Problem, ProblemKind};
use mosaic_core::rng::Rng;
use mosaic_core::time::Instant;
use mosaic_core::Router;
use mosaic_providers::hooks::{
    body_limit, deliver, due_pending, handle_hook, list_dead_letters, payload_too_large,
    replay_dead_letter, result, Delivered, Delivery, DeliveryPolicy, HookHost, HookReply, KvError,
    PostError,
};

use crate::host::{wall_now, Body, Live, Shared};
use crate::store::{Kv, StoreError};
use crate::upstream::Clients;

/// Namespace of hook keys in the store.
const NS: &str = "mosaic:";
/// How often the outbox is scanned, and how late a pending record must be to be resumed.
const OUTBOX_PERIOD: Duration = Duration::from_secs(60);

/// [`HookHost`] over the process's store, HTTP clients and clock.
pub struct LocalHooks {
    shared: Arc<Shared>,
}

impl LocalHooks {
    /// The hook host of this process.
    #[must_use]
    pub fn new(shared: Arc<Shared>) -> LocalHooks {
        LocalHooks { shared }
    }
}

fn kv(e: StoreError) -> KvError {
    KvError(e.0)
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

impl HookHost for LocalHooks {
    fn now(&self) -> Instant {
        wall_now()
    }

    async fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.shared
            .store
            .get(&format!("{NS}{key}"))
            .await
            .map_err(kv)
    }

    async fn kv_put(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> Result<(), KvError> {
        // durable: the outbox is what makes an accepted event survive a crash
        self.shared
            .store
            .put(&format!("{NS}{key}"), value, ttl, true)
            .await
            .map_err(kv)
    }

    async fn kv_delete(&self, key: &str) -> Result<(), KvError> {
        self.shared
            .store
            .delete(&format!("{NS}{key}"))
            .await
            .map_err(kv)
    }

    async fn kv_list(&self, prefix: &str) -> Result<Vec<String>, KvError> {
        let keys = self
            .shared
            .store
            .list(&format!("{NS}{prefix}"))
            .await
            .map_err(kv)?;
        Ok(keys
            .into_iter()
            .filter_map(|k| k.strip_prefix(NS).map(str::to_string))
            .collect())
    }

    async fn post(
        &self,
        url: &str,
        headers: &[(String, String)],
        body: &[u8],
        deadline: Instant,
    ) -> Result<u16, PostError> {
        let timeout = deadline.saturating_since(wall_now());
        if timeout.is_zero() {
            return Err(PostError::Timeout);
        }
        let allow_private = allows_private(&self.shared.live().router, url);
        let clients = Clients::local().map_err(PostError::Network)?;
        clients
            .post(url, headers, body, timeout, allow_private)
            .await
    }

    async fn sleep_until(&self, t: Instant) {
        let d = t.saturating_since(wall_now());
        if !d.is_zero() {
            tokio::time::sleep(d).await;
        }
    }
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A response from a status, headers and a body.
fn respond(status: u16, headers: &[(String, String)], body: Vec<u8>) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    for (n, v) in headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(n.as_bytes()),
            HeaderValue::from_bytes(v.as_bytes()),
        ) {
            r.headers_mut().append(n, v);
        }
    }
    r
}

fn problem(p: &Problem, id: &str) -> Response<Body> {
    let mut headers = p.headers();
    headers.push((String::from("x-mosaic-request-id"), String::from(id)));
    respond(p.status(), &headers, p.to_json(id).into_bytes())
}

fn json(status: u16, body: String, id: &str) -> Response<Body> {
    respond(
        status,
        &[
            (
                String::from("content-type"),
                String::from("application/json"),
            ),
            (String::from("x-mosaic-request-id"), String::from(id)),
        ],
        body.into_bytes(),
    )
}

/// A URL without its query or fragment (which may carry a token).
fn redact(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

/// Handles `POST /hooks/{endpoint}`; `endpoint` is the name after `/hooks/`, `target` the
/// request target as received, `headers` the request's headers.
pub async fn receive(
    shared: Arc<Shared>,
    live: &Live,
    req_body: crate::conn::RequestBody<'_>,
    endpoint: &str,
    target: &str,
    headers: &[(String, String)],
    id: &str,
) -> (Response<Body>, RequestLog) {
    let router = &live.router;
    let endpoint = endpoint.split('?').next().unwrap_or(endpoint);
    let mut log = RequestLog {
        request_id: id.to_string(),
        route: Some(String::from("_hooks")),
        cache: cache_result::BYPASS,
        ..RequestLog::default()
    };
    let hooks = LocalHooks::new(Arc::clone(&shared));
    // an unknown endpoint is answered (404) without reading its body
    let (reply, bytes) = match body_limit(router, endpoint) {
        None => (
            handle_hook(&hooks, router, endpoint, target, headers, &[], id).await,
            0,
        ),
        Some(limit) => {
            let declared = mosaic_core::http::Headers::header(headers, "content-length")
                .and_then(|s| s.trim().parse::<u64>().ok());
            let body = if declared.is_some_and(|n| n > limit) {
                Err(payload_too_large(router, endpoint, id))
            } else {
                let cap = usize::try_from(limit).unwrap_or(usize::MAX);
                match Limited::new(req_body, cap).collect().await {
                    Ok(c) => Ok(c.to_bytes()),
                    Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                        Err(payload_too_large(router, endpoint, id))
                    }
                    Err(e) => {
                        let p = Problem::new(
                            ProblemKind::BadRequest,
                            format!("could not read the request body: {e}"),
                        );
                        let mut r = problem(&p, id);
                        r.headers_mut()
                            .insert(CONNECTION, HeaderValue::from_static("close"));
                        return (r, log);
                    }
                }
            };
            match body {
                Ok(body) => (
                    handle_hook(&hooks, router, endpoint, target, headers, &body, id).await,
                    body.len(),
                ),
                Err(too_large) => (too_large, 0),
            }
        }
    };
    let known = body_limit(router, endpoint).is_some();
    if known {
        // only configured endpoints are counted: a name in the URL must not mint metrics
        live.state().metrics.count_webhook(endpoint, reply.result);
        log.route = Some(format!("hooks/{endpoint}"));
    }
    tracing::info!(
        target: "mosaic::hooks",
        request_id = id,
        endpoint = if known { endpoint } else { "" },
        result = reply.result,
        status = reply.status,
        event_id = reply.event_id.as_deref().unwrap_or(""),
        destinations = reply.deliveries.len(),
        bytes,
        "webhook delivery received"
    );
    if let Some(token) = &reply.handshake_token {
        log_handshake(endpoint, token.expose());
    }
    let mut resp = respond(reply.status, &reply.headers, reply.body.clone());
    if reply.result == result::TOO_LARGE {
        // the rest of the body was not read: do not read it as a next request
        resp.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    let HookReply { deliveries, .. } = reply;
    for d in deliveries {
        spawn_delivery(&shared, d);
    }
    (resp, log)
}

/// Shows Notion's verification token to the operator, once, in a warning of its own.
///
/// Notion's subscription handshake is an unsigned request carrying a token that the operator
/// must paste back into Notion and configure as the endpoint's secret; the native host has no
/// other channel to the operator than its log. Logging it is accepted because it is not a
/// secret of ours yet: the library only reports a handshake while the endpoint has no secret
/// configured, so once the token is in the config no later request can make it (or anything
/// else) appear in the log. Until then, treat the log as holding that secret.
fn log_handshake(endpoint: &str, token: &str) {
    tracing::warn!(
        target: "mosaic::operator",
        endpoint,
        verification_token = token,
        "Notion verification token for /hooks/{endpoint}: paste it into Notion's \"Verify\" dialog, then configure it as this endpoint's secret (e.g. secrets = [\"env:NOTION_WEBHOOK_SECRET\"]) and reload; until then this log line holds that secret"
    );
}

/// Delivery ids with a task in this process, so that the outbox scan does not start a second
/// one.
fn in_flight() -> &'static Mutex<HashSet<String>> {
    static SET: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    SET.get_or_init(|| Mutex::new(HashSet::new()))
}

/// Removes a delivery id from [`in_flight`] when its task ends, even by a panic.
struct InFlight(String);

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut s) = in_flight().lock() {
            s.remove(&self.0);
        }
    }
}

fn seed() -> u64 {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        b = wall_now().as_micros().to_le_bytes();
    }
    u64::from_le_bytes(b)
}

/// Runs `d` in a task of its own until it is delivered or dead-lettered, unless this process
/// already runs it.
pub fn spawn_delivery(shared: &Arc<Shared>, d: Delivery) {
    let id = d.id();
    {
        let Ok(mut set) = in_flight().lock() else {
            return;
        };
        if !set.insert(id.clone()) {
            return;
        }
    }
    let guard = InFlight(id);
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        let _guard = guard;
        let started = std::time::Instant::now();
        let live = shared.live();
        let hooks = LocalHooks::new(Arc::clone(&shared));
        let mut rng = Rng::seed(seed());
        let policy = DeliveryPolicy::default();
        let (outcome, d) = deliver(&hooks, &live.router, &policy, d, &mut rng, None).await;
        let (name, at) = match outcome {
            Delivered::Done => ("delivered", None),
            Delivered::DeadLettered => ("dead-lettered", None),
            Delivered::Parked { at } => ("parked", Some(at)),
        };
        let line = |msg: &str| {
            tracing::info!(
                target: "mosaic::hooks",
                delivery = %d.id(),
                endpoint = %d.endpoint,
                event_id = %d.event_id,
                destination = d.dest,
                url = redact(&d.url),
                outcome = name,
                attempts = d.attempts,
                last_error = d.last_error.as_deref().unwrap_or(""),
                next_attempt_at = at.map(|a| a.as_micros() / 1_000_000).unwrap_or(0),
                elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
                "{msg}"
            );
        };
        match outcome {
            Delivered::Done => line("webhook event delivered"),
            Delivered::DeadLettered => line("webhook event dead-lettered: list it with GET /_mosaic/hooks/dead, replay it with POST /_mosaic/hooks/dead/{id}/replay"),
            Delivered::Parked { .. } => line("webhook event parked in the outbox; the outbox scan resumes it"),
        }
    });
}

/// At start-up and every minute: resumes the outbox records whose task is gone.
pub async fn outbox_loop(shared: Arc<Shared>) {
    let hooks = LocalHooks::new(Arc::clone(&shared));
    let mut tick = tokio::time::interval(OUTBOX_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if shared.live().router.config.webhooks.is_empty() {
            continue;
        }
        match due_pending(&hooks, wall_now(), OUTBOX_PERIOD).await {
            Ok(due) => {
                if !due.is_empty() {
                    tracing::info!(
                        target: "mosaic::hooks",
                        resumed = due.len(),
                        "resuming webhook deliveries from the outbox"
                    );
                }
                for d in due {
                    spawn_delivery(&shared, d);
                }
            }
            Err(e) => tracing::warn!(target: "mosaic::hooks", error = %e, "outbox scan failed"),
        }
    }
}

/// `/_mosaic/hooks/…` (the admin token was checked): `GET hooks/dead[?endpoint=NAME]` lists
/// the dead letters, `POST hooks/dead/{id}/replay` re-enqueues one and delivers it (the id
/// percent-decoded: event ids may contain `/`). `rest` is the path after `/_mosaic/`,
/// `target` the whole request target.
pub async fn admin(
    shared: &Arc<Shared>,
    method: Method,
    rest: &str,
    target: &str,
    id: &str,
) -> Response<Body> {
    let hooks = LocalHooks::new(Arc::clone(shared));
    let query = target.split_once('?').map_or("", |(_, q)| q);
    if rest == "hooks/dead" && method == Method::Get {
        let endpoint = url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "endpoint")
            .map(|(_, v)| v.into_owned())
            .filter(|v| !v.is_empty());
        return match list_dead_letters(&hooks, endpoint.as_deref()).await {
            Ok(body) => json(200, body, id),
            Err(e) => problem(&Problem::new(ProblemKind::Internal, e.to_string()), id),
        };
    }
    let replay = rest
        .strip_prefix("hooks/dead/")
        .and_then(|r| r.strip_suffix("/replay"))
        .filter(|r| !r.is_empty());
    if let (Some(raw), Method::Post) = (replay, method) {
        let Some(letter) = percent_decode(raw, false) else {
            return problem(
                &Problem::new(
                    ProblemKind::BadRequest,
                    "the dead-letter id is not valid percent-encoded UTF-8",
                ),
                id,
            );
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
                tracing::info!(target: "mosaic::hooks", delivery = %d.id(), "dead letter replayed by the operator");
                spawn_delivery(shared, d);
                json(202, body, id)
            }
            Err(e) => problem(&e.to_problem(&letter), id),
        };
    }
    problem(
        &Problem::new(
            ProblemKind::NoRoute,
            format!(
                "{} /_mosaic/{rest} is not an admin endpoint; try GET hooks/dead[?endpoint=NAME] or POST hooks/dead/{{id}}/replay",
                method.as_str()
            ),
        ),
        id,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_logged_without_their_query() {
        assert_eq!(
            redact("https://x.example/a?token=s#f"),
            "https://x.example/a"
        );
    }
}
