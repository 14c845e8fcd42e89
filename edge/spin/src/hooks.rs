//! Webhooks on Spin: `POST /hooks/{endpoint}`, the outbox work later requests pick up, and the
//! dead-letter admin endpoints. Every decision (size limit, signature, replay window, dedup,
//! what to forward, when to retry, what is dead) is made by `mosaic_providers::hooks`; this
//! module translates: the Spin key-value store becomes its KV ([`SpinHooks`] implements
//! [`HookHost`]), spin-sdk's outbound HTTP its POST, `wasi:clocks` its clock.
//!
//! Spin's per-request model shapes what is executed, not what is decided:
//!
//! - an accepted delivery is already in the outbox (KV) when [`handle_hook`] returns; before
//!   answering, each returned delivery gets **one quick attempt** ([`deliver`] with `until` =
//!   now and a POST timeout within [`INLINE_BUDGET`] in all), and what does not succeed stays
//!   parked in KV with its next attempt time;
//! - after any later response ([`spawn_outbox_work`], same `wit_bindgen::spawn` mechanism as
//!   the stale-while-revalidate refresh), at most [`MAX_RESUMED`] due deliveries
//!   ([`due_pending`]) get one attempt each; the scan runs at most once per [`SCAN_PERIOD`]
//!   across instances (a KV marker, check-then-set).
//!
//! KV: the library's keys as they are (`hooks:seen:…`, `hooks:pending:…`, `hooks:dead:…`).
//! Spin's store has no TTL, so a value written with one is stored behind a small header
//! ([`TTL_MAGIC`] + expiry in µs) and read back as missing (and deleted) once expired.

use core::time::Duration;
use mosaic_core::target::percent_decode;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use mosaic_core::driver::{cache_result, RequestLog};
use mosaic_core::http::Method;
use mosaic_core::problem::{Problem, ProblemKind};
use mosaic_core::rng::Rng;
use mosaic_core::target::is_private_host;
use mosaic_core::time::Instant;
use mosaic_core::{Router, State};
use mosaic_providers::hooks::{
    body_limit, deliver, due_pending, handle_hook, list_dead_letters, payload_too_large,
    replay_dead_letter, Delivered, Delivery, DeliveryPolicy, HookHost, HookReply, KvError,
    PostError,
};
use spin_sdk::http::Request as SpinRequest;
use spin_sdk::key_value::Store;

use crate::host::{classify_error, race, wall_now};

/// What one request may spend on inline delivery attempts before answering, in all (GitHub
/// gives up after 10 s; the rest of the request needs a little too).
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
/// First bytes of a value stored with a TTL (then 8 bytes of expiry in µs, little endian).
pub const TTL_MAGIC: &[u8; 4] = b"MTTL";

/// [`HookHost`] over the request's store, spin-sdk's outbound HTTP and the wall clock.
pub struct SpinHooks<'a> {
    store: Option<&'a Store>,
    router: &'a Router,
}

impl<'a> SpinHooks<'a> {
    /// The hook host of one request.
    #[must_use]
    pub fn new(store: Option<&'a Store>, router: &'a Router) -> SpinHooks<'a> {
        SpinHooks { store, router }
    }

    fn store(&self) -> Result<&'a Store, KvError> {
        self.store
            .ok_or_else(|| KvError(String::from("the key-value store `default` is unavailable")))
    }
}

fn kv(e: &spin_sdk::key_value::Error) -> KvError {
    KvError(format!("{e:?}"))
}

/// Whether the operator allowed private addresses for destination `url`.
fn allows_private(router: &Router, url: &str) -> bool {
    router
        .config
        .webhooks
        .iter()
        .flat_map(|w| &w.destinations)
        .any(|d| d.url == url && d.allow_private)
}

/// Splits a stored value into (expiry, value); values without the TTL header never expire.
fn unwrap_ttl(v: &[u8]) -> (Option<Instant>, &[u8]) {
    match v.strip_prefix(TTL_MAGIC.as_slice()) {
        Some(rest) if rest.len() >= 8 => {
            let (at, value) = rest.split_at(8);
            let mut b = [0u8; 8];
            b.copy_from_slice(at);
            (Some(Instant::from_micros(u64::from_le_bytes(b))), value)
        }
        _ => (None, v),
    }
}

impl HookHost for SpinHooks<'_> {
    fn now(&self) -> Instant {
        wall_now()
    }

    async fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let store = self.store()?;
        let Some(v) = store.get(key).await.map_err(|e| kv(&e))? else {
            return Ok(None);
        };
        match unwrap_ttl(&v) {
            (Some(until), _) if until <= wall_now() => {
                let _ = store.delete(key).await;
                Ok(None)
            }
            (_, value) => Ok(Some(value.to_vec())),
        }
    }

    async fn kv_put(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> Result<(), KvError> {
        let store = self.store()?;
        let bytes = match ttl {
            None => value,
            Some(ttl) => {
                let until = wall_now().saturating_add(ttl).as_micros();
                let mut b = Vec::with_capacity(12 + value.len());
                b.extend_from_slice(TTL_MAGIC);
                b.extend_from_slice(&until.to_le_bytes());
                b.extend_from_slice(&value);
                b
            }
        };
        store.set(key, &bytes).await.map_err(|e| kv(&e))
    }

    async fn kv_delete(&self, key: &str) -> Result<(), KvError> {
        self.store()?.delete(key).await.map_err(|e| kv(&e))
    }

    async fn kv_list(&self, prefix: &str) -> Result<Vec<String>, KvError> {
        let keys = self
            .store()?
            .get_keys()
            .await
            .collect()
            .await
            .map_err(|e| kv(&e))?;
        Ok(keys.into_iter().filter(|k| k.starts_with(prefix)).collect())
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
        let uri: http::Uri = url
            .parse()
            .map_err(|_| PostError::Refused(String::from("the destination URL does not parse")))?;
        let host = uri.host().unwrap_or("");
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if !allows_private(self.router, url) && is_private_host(host) {
            return Err(PostError::Refused(format!(
                "{host} is a private address and the destination does not set allow_private"
            )));
        }
        let mut req = http::Request::builder().method("POST").uri(uri);
        for (n, v) in headers {
            if !crate::host::forbidden_outbound(n) {
                req = req.header(n.as_str(), v.as_str());
            }
        }
        let req = req
            .body(Full::new(Bytes::copy_from_slice(body)))
            .map_err(|e| PostError::Refused(format!("cannot build the request: {e}")))?;
        let sent = race(spin_sdk::http::send(req), spin_sdk::time::sleep(timeout)).await;
        match sent {
            Err(()) => Err(PostError::Timeout),
            Ok(Err(e)) => Err(match classify_error(&e) {
                mosaic_core::engine::FetchError::Forbidden => PostError::Refused(format!("{e:?}")),
                mosaic_core::engine::FetchError::Timeout => PostError::Timeout,
                _ => PostError::Network(format!("{e:?}")),
            }),
            Ok(Ok(resp)) => {
                let status = resp.status().as_u16();
                // drain (bounded by the deadline) so the connection can be reused
                let mut b = resp.into_body();
                let drain = async { while let Some(Ok(_)) = b.frame().await {} };
                let left = deadline.saturating_since(wall_now());
                let _ = race(drain, spin_sdk::time::sleep(left)).await;
                Ok(status)
            }
        }
    }

    async fn sleep_until(&self, t: Instant) {
        let d = t.saturating_since(wall_now());
        if !d.is_zero() {
            spin_sdk::time::sleep(d).await;
        }
    }
}

fn seed() -> u64 {
    crate::random_u64(0x686f_6f6b)
}

/// A URL without its query or fragment (which may carry a token).
fn redact(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

/// Makes one attempt at `d` with a POST timeout ending at `deadline` at the latest, and logs
/// the outcome. What fails stays pending in KV with its next attempt time.
async fn attempt_once(
    hooks: &SpinHooks<'_>,
    router: &Router,
    d: Delivery,
    deadline: Instant,
    why: &str,
) -> Delivered {
    let now = wall_now();
    let defaults = DeliveryPolicy::default();
    let policy = DeliveryPolicy {
        timeout: deadline.saturating_since(now).min(defaults.timeout),
        ..defaults
    };
    let mut rng = Rng::seed(seed());
    let (outcome, d) = deliver(hooks, router, &policy, d, &mut rng, Some(now)).await;
    let (name, at) = match outcome {
        Delivered::Done => ("delivered", None),
        Delivered::DeadLettered => ("dead-lettered", None),
        Delivered::Parked { at } => ("parked", Some(at)),
    };
    println!(
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
        })
    );
    outcome
}

/// One quick attempt per delivery, all within [`INLINE_BUDGET`] from now; deliveries the budget
/// does not reach stay pending for a later request.
async fn attempt_inline(hooks: &SpinHooks<'_>, router: &Router, deliveries: Vec<Delivery>) {
    let end = wall_now().saturating_add(INLINE_BUDGET);
    for d in deliveries {
        if end.saturating_since(wall_now()).is_zero() {
            break;
        }
        let _ = attempt_once(hooks, router, d, end, "before answering").await;
    }
}

/// Reads a body of at most `cap` bytes; `Err(true)` when it is longer, `Err(false)` when it
/// cannot be read.
async fn read_body(req: SpinRequest, cap: usize) -> Result<Vec<u8>, bool> {
    let mut body = req.into_body();
    let mut buf: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { return Err(false) };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if buf.len() + data.len() > cap {
            return Err(true);
        }
        buf.extend_from_slice(&data);
    }
    Ok(buf)
}

fn reply_response(reply: &HookReply) -> crate::Out {
    crate::bytes_out(reply.status, &reply.headers, reply.body.clone())
}

/// Handles `POST /hooks/{endpoint}`: [`handle_hook`], then one quick attempt per returned
/// delivery before answering.
#[allow(clippy::too_many_arguments)]
pub async fn receive(
    store: Option<&Store>,
    router: &Router,
    state: &mut State,
    req: SpinRequest,
    endpoint: &str,
    target: &str,
    headers: &[(String, String)],
    declared: Option<u64>,
    id: &str,
) -> (crate::Out, RequestLog) {
    let endpoint = endpoint.split('?').next().unwrap_or(endpoint);
    let mut log = RequestLog {
        request_id: id.to_string(),
        route: Some(String::from("_hooks")),
        cache: cache_result::BYPASS,
        ..RequestLog::default()
    };
    let hooks = SpinHooks::new(store, router);
    let (reply, bytes) = match body_limit(router, endpoint) {
        // an unknown endpoint is answered (404) without reading its body
        None => (
            handle_hook(&hooks, router, endpoint, target, headers, &[], id).await,
            0,
        ),
        Some(limit) if declared.is_some_and(|n| n > limit) => {
            (payload_too_large(router, endpoint, id), 0)
        }
        Some(limit) => {
            let cap = usize::try_from(limit).unwrap_or(usize::MAX);
            match read_body(req, cap).await {
                Ok(body) => (
                    handle_hook(&hooks, router, endpoint, target, headers, &body, id).await,
                    body.len(),
                ),
                Err(true) => (payload_too_large(router, endpoint, id), 0),
                Err(false) => {
                    let p =
                        Problem::new(ProblemKind::BadRequest, "could not read the request body");
                    return (crate::problem_response(&p, id).0, log);
                }
            }
        }
    };
    let known = body_limit(router, endpoint).is_some();
    if known {
        // only configured endpoints are counted: a name in the URL must not mint metrics
        state.metrics.count_webhook(endpoint, reply.result);
        log.route = Some(format!("hooks/{endpoint}"));
    }
    println!("{}", reply.receipt_log(id, endpoint, known, bytes));
    if let Some(token) = &reply.handshake_token {
        // Notion's verification token: the operator's only channel is the log (see the
        // local host's `log_handshake`); it is reported only while no secret is configured
        crate::warn(&format!(
            "Notion verification token for /hooks/{endpoint}: {} — paste it into Notion's \"Verify\" dialog, then configure it as this endpoint's secret; until then this log line holds that secret",
            token.expose()
        ));
    }
    let resp = reply_response(&reply);
    attempt_inline(&hooks, router, reply.deliveries).await;
    (resp, log)
}

/// `/_mosaic/hooks/…` (the admin token was checked): `GET hooks/dead[?endpoint=NAME]` lists the
/// dead letters, `POST hooks/dead/{id}/replay` re-enqueues one and makes one quick attempt
/// (the id percent-decoded: event ids may contain `/`). `rest` is the path after `/_mosaic/`,
/// `target` the whole request target.
pub async fn admin(
    store: Option<&Store>,
    router: &Router,
    method: Method,
    rest: &str,
    target: &str,
    id: &str,
) -> crate::Out {
    let hooks = SpinHooks::new(store, router);
    let query = target.split_once('?').map_or("", |(_, q)| q);
    if rest == "hooks/dead" && method == Method::Get {
        let endpoint = query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == "endpoint")
            .and_then(|(_, v)| percent_decode(v, true))
            .filter(|v| !v.is_empty());
        return match list_dead_letters(&hooks, endpoint.as_deref()).await {
            Ok(body) => crate::bytes_response(200, "application/json", body, id),
            Err(e) => {
                crate::problem_response(&Problem::new(ProblemKind::Internal, e.to_string()), id).0
            }
        };
    }
    let replay = rest
        .strip_prefix("hooks/dead/")
        .and_then(|r| r.strip_suffix("/replay"))
        .filter(|r| !r.is_empty());
    if let (Some(raw), Method::Post) = (replay, method) {
        let Some(letter) = percent_decode(raw, false) else {
            let p = Problem::new(
                ProblemKind::BadRequest,
                "the dead-letter id is not valid percent-encoded UTF-8",
            );
            return crate::problem_response(&p, id).0;
        };
        return match replay_dead_letter(&hooks, &letter).await {
            Ok(d) => {
                let (delivery, endpoint, event_id, dest) =
                    (d.id(), d.endpoint.clone(), d.event_id.clone(), d.dest);
                let end = wall_now().saturating_add(INLINE_BUDGET);
                let outcome =
                    attempt_once(&hooks, router, d, end, "replayed by the operator").await;
                let status = match outcome {
                    Delivered::Done => "delivered",
                    Delivered::DeadLettered => "dead-lettered",
                    Delivered::Parked { .. } => "pending",
                };
                let body = serde_json::json!({
                    "replayed": delivery,
                    "endpoint": endpoint,
                    "event_id": event_id,
                    "destination": dest,
                    "status": status,
                })
                .to_string();
                crate::bytes_response(202, "application/json", body, id)
            }
            Err(e) => crate::problem_response(&e.to_problem(&letter), id).0,
        };
    }
    let p = Problem::new(
        ProblemKind::NoRoute,
        format!(
            "{} /_mosaic/{rest} is not an admin endpoint; try GET hooks/dead[?endpoint=NAME] or POST hooks/dead/{{id}}/replay",
            method.as_str()
        ),
    );
    crate::problem_response(&p, id).0
}

/// Takes the outbox-scan marker: false when another request scanned less than
/// [`SCAN_PERIOD`] ago (check-then-set: two instances racing may both scan; a delivery they
/// both pick is POSTed twice with the same event id, which at-least-once allows).
async fn take_scan_lease(store: &Store) -> bool {
    let now = wall_now();
    if let Ok(Some(v)) = store.get(SCAN_KEY).await {
        let until = core::str::from_utf8(&v)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0);
        if Instant::from_micros(until) > now {
            return false;
        }
    }
    let until = now.saturating_add(SCAN_PERIOD).as_micros().to_string();
    store.set(SCAN_KEY, until.as_bytes()).await.is_ok()
}

/// After the response: resumes at most [`MAX_RESUMED`] due outbox deliveries, one attempt
/// each, when webhooks are configured and no other request scanned in the last
/// [`SCAN_PERIOD`].
pub async fn resume_due(store: &Store, router: &Router) {
    if router.config.webhooks.is_empty() || !take_scan_lease(store).await {
        return;
    }
    let hooks = SpinHooks::new(Some(store), router);
    let due = match due_pending(&hooks, wall_now(), RESUME_GRACE).await {
        Ok(d) => d,
        Err(e) => {
            crate::warn(&format!("outbox scan failed: {e}"));
            return;
        }
    };
    let total = due.len();
    let end = wall_now().saturating_add(INLINE_BUDGET);
    for d in due.into_iter().take(MAX_RESUMED) {
        if end.saturating_since(wall_now()).is_zero() {
            break;
        }
        let _ = attempt_once(&hooks, router, d, end, "resumed from the outbox").await;
    }
    if total > MAX_RESUMED {
        crate::warn(&format!(
            "{total} webhook deliveries are due; {MAX_RESUMED} were attempted, the rest wait for later requests (add a cron trigger or a pinger, see the README)"
        ));
    }
}

/// Spawns [`resume_due`] to run after the response (same mechanism as the
/// stale-while-revalidate refresh), over a store of its own.
pub fn spawn_outbox_work(router: std::rc::Rc<Router>) {
    if router.config.webhooks.is_empty() {
        return;
    }
    spin_sdk::wit_bindgen::spawn(async move {
        match Store::open_default().await {
            Ok(store) => resume_due(&store, &router).await,
            Err(e) => crate::warn(&format!("outbox scan skipped: no key-value store: {e:?}")),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_header_round_trip() {
        let mut v = TTL_MAGIC.to_vec();
        v.extend_from_slice(&7u64.to_le_bytes());
        v.extend_from_slice(b"1");
        assert_eq!(unwrap_ttl(&v), (Some(Instant::from_micros(7)), &b"1"[..]));
        assert_eq!(unwrap_ttl(b"MD\x01"), (None, &b"MD\x01"[..]));
    }
}
