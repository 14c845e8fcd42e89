//! The async sequence every host shares for webhooks, over the small [`HookHost`] trait.
//!
//! Like core's [`driver`](mosaic_core::driver) it decides nothing: [`receive`] and
//! [`Delivery::next_step`] decide, these functions perform what they say. The trait has no
//! `Send` bound (Workers futures are not `Send`; a native host's are whenever its `HookHost` is).
//!
//! KV layout (values are [`Delivery::encode`] records unless said otherwise):
//!
//! | Key | Value | TTL |
//! |---|---|---|
//! | `hooks:seen:{endpoint}:{dedup key}` | `1` | the endpoint's `dedup_ttl_s` |
//! | `hooks:pending:{endpoint}:{event id}:{dest}` | the delivery in flight (outbox) | none |
//! | `hooks:dead:{endpoint}:{event id}:{dest}` | the dead letter | none |

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::future::Future;
use core::time::Duration;

use mosaic_core::config::{Destination, Webhook};
use mosaic_core::engine::Router;
use mosaic_core::http::{HeaderList, Headers};
use mosaic_core::problem::{Problem, ProblemKind};
use mosaic_core::rng::Rng;
use mosaic_core::secret::Secret;
use mosaic_core::time::Instant;
use mosaic_core::webhook::rfc3339;
use serde::Serialize;

use super::delivery::{outgoing_request, Delivery, DeliveryPolicy, Next, PostError};
use super::receive::{receive, too_large, Received, DUPLICATE_HEADER};
use super::result;

/// Prefix of dedup keys.
pub const SEEN_PREFIX: &str = "hooks:seen:";
/// Prefix of pending (outbox) records.
pub const PENDING_PREFIX: &str = "hooks:pending:";
/// Prefix of dead letters.
pub const DEAD_PREFIX: &str = "hooks:dead:";

/// `hooks:seen:{endpoint}:{key}`.
#[must_use]
pub fn seen_key(endpoint: &str, key: &str) -> String {
    format!("{SEEN_PREFIX}{endpoint}:{key}")
}

/// `hooks:pending:{endpoint}:{event id}:{dest}`.
#[must_use]
pub fn pending_key(d: &Delivery) -> String {
    format!("{PENDING_PREFIX}{}", d.id())
}

/// `hooks:dead:{endpoint}:{event id}:{dest}`.
#[must_use]
pub fn dead_key(d: &Delivery) -> String {
    format!("{DEAD_PREFIX}{}", d.id())
}

/// A KV operation failed; the text is for logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvError(pub String);

impl fmt::Display for KvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "key-value store: {}", self.0)
    }
}

/// What a host provides to the webhook functions.
pub trait HookHost {
    /// The current time (read after every I/O: the Workers clock only moves then).
    fn now(&self) -> Instant;
    /// Reads a value.
    fn kv_get(&self, key: &str) -> impl Future<Output = Result<Option<Vec<u8>>, KvError>>;
    /// Writes a value, expiring after `ttl` if given.
    fn kv_put(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<(), KvError>>;
    /// Deletes a value (deleting a missing key is not an error).
    fn kv_delete(&self, key: &str) -> impl Future<Output = Result<(), KvError>>;
    /// Every key starting with `prefix`, in any order.
    fn kv_list(&self, prefix: &str) -> impl Future<Output = Result<Vec<String>, KvError>>;
    /// Sends `post` (see [`Post`]); gives up at its deadline with [`PostError::Timeout`].
    /// Returns the status (the response body is not needed). Must not follow redirects.
    fn post(&self, post: &Post<'_>) -> impl Future<Output = Result<u16, PostError>>;
    /// Sleeps until `t`.
    fn sleep_until(&self, t: Instant) -> impl Future<Output = ()>;
}

/// One delivery POST, as [`deliver`] decided it: where, what, until when, and whether the
/// destination may be a private address (its `allow_private`, as configured).
#[derive(Clone, Copy, Debug)]
pub struct Post<'a> {
    /// The destination URL.
    pub url: &'a str,
    /// The headers (content type, signature …).
    pub headers: &'a [(String, String)],
    /// The CloudEvent.
    pub body: &'a [u8],
    /// Give up then.
    pub deadline: Instant,
    /// The operator allowed a private address for this destination.
    pub allow_private: bool,
}

/// The answer to a request to `/hooks/{endpoint}`, and what to run after answering.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub struct HookReply {
    /// Status.
    pub status: u16,
    /// Headers.
    pub headers: HeaderList,
    /// Body.
    pub body: Vec<u8>,
    /// For [`Metrics::count_webhook`](mosaic_core::metrics::Metrics::count_webhook): one of
    /// [`super::result`].
    pub result: &'static str,
    /// The event id, when the delivery was genuine.
    pub event_id: Option<String>,
    /// Notion's verification token: show it to the operator (log, admin API), never to the
    /// sender; it is the secret to configure.
    pub handshake_token: Option<Secret>,
    /// Run each with [`deliver`] after answering (`ctx.wait_until` on Workers, a spawned task
    /// natively). Each is already stored as pending, so none is lost if the host cannot.
    pub deliveries: Vec<Delivery>,
}

impl HookReply {
    /// The fields of the log line a host writes for a received delivery of `bytes` bytes at
    /// `endpoint` (named only when `known`, i.e. configured: a name in the URL must not reach
    /// logs or metrics), as a JSON object.
    #[must_use]
    pub fn receipt_log(
        &self,
        request_id: &str,
        endpoint: &str,
        known: bool,
        bytes: usize,
    ) -> serde_json::Value {
        serde_json::json!({
            "level": "info",
            "target": "mosaic::hooks",
            "message": "webhook delivery received",
            "request_id": request_id,
            "endpoint": if known { endpoint } else { "" },
            "result": self.result,
            "status": self.status,
            "event_id": self.event_id.as_deref().unwrap_or(""),
            "destinations": self.deliveries.len(),
            "bytes": bytes,
        })
    }

    fn problem(p: &Problem, request_id: &str, result: &'static str) -> HookReply {
        let mut headers = p.headers();
        headers.push((
            String::from("x-mosaic-request-id"),
            String::from(request_id),
        ));
        HookReply {
            status: p.status(),
            headers,
            body: p.to_json(request_id).into_bytes(),
            result,
            event_id: None,
            handshake_token: None,
            deliveries: Vec::new(),
        }
    }

    fn ok(request_id: &str, content_type: &str, body: Vec<u8>, result: &'static str) -> HookReply {
        HookReply {
            status: 200,
            headers: alloc::vec![
                (String::from("content-type"), String::from(content_type)),
                (
                    String::from("x-mosaic-request-id"),
                    String::from(request_id)
                ),
            ],
            body,
            result,
            event_id: None,
            handshake_token: None,
            deliveries: Vec::new(),
        }
    }
}

#[derive(Serialize)]
struct Ack<'a> {
    status: &'a str,
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(rename = "type")]
    ty: Option<&'a str>,
    destinations: usize,
}

fn webhook<'a>(router: &'a Router, endpoint: &str) -> Option<&'a Webhook> {
    router.config.webhooks.iter().find(|w| w.name == endpoint)
}

/// The largest body `endpoint` accepts, so that a streaming host can stop reading early (and
/// answer [`payload_too_large`]); `None` for an unknown endpoint.
#[must_use]
pub fn body_limit(router: &Router, endpoint: &str) -> Option<u64> {
    webhook(router, endpoint).map(|w| w.max_body_bytes)
}

/// The 413 answer, for a host that stopped reading a body at [`body_limit`].
pub fn payload_too_large(router: &Router, endpoint: &str, request_id: &str) -> HookReply {
    let limit = body_limit(router, endpoint).unwrap_or(0);
    HookReply::problem(&too_large(endpoint, limit), request_id, result::TOO_LARGE)
}

fn storage_problem(e: &KvError) -> Problem {
    // 500 (not 503) because every provider retries a 5xx, and some treat 503 specially.
    Problem::new(
        ProblemKind::Internal,
        format!("the delivery could not be stored, so it was not accepted; retry ({e})"),
    )
    .retry_after(Duration::from_secs(5))
}

/// Handles `POST /hooks/{endpoint}`: [`receive`], then dedup and the outbox in KV, and the
/// answer. `endpoint` is the name after `/hooks/` (a query string is ignored); `target` the
/// request target as received; `body` the raw bytes (a host that streams should stop at
/// [`body_limit`]).
///
/// | Case | Status | Body |
/// |---|---|---|
/// | accepted | 200 | `{"status":"accepted","id":…,"type":…,"destinations":n}` |
/// | duplicate | 200, `x-mosaic-duplicate: true` | `{"status":"duplicate","id":…}` |
/// | Slack challenge | 200 | the challenge, `text/plain` |
/// | Notion handshake | 200 | `{"status":"handshake",…}`; token in [`HookReply::handshake_token`] |
/// | too large | 413 | problem+json `payload-too-large` |
/// | bad/missing signature, stale timestamp | 401 | problem+json `webhook-rejected` |
/// | unknown endpoint | 404 | problem+json `no-route` |
/// | misconfigured endpoint, KV failure | 500 | problem+json `internal` (the provider retries) |
pub async fn handle_hook<H: HookHost, Hd: Headers + ?Sized>(
    host: &H,
    router: &Router,
    endpoint: &str,
    target: &str,
    headers: &Hd,
    body: &[u8],
    request_id: &str,
) -> HookReply {
    let endpoint = endpoint.split('?').next().unwrap_or(endpoint);
    let Some(hook) = webhook(router, endpoint) else {
        return HookReply::problem(
            &Problem::new(
                ProblemKind::NoRoute,
                format!("no webhook endpoint `{endpoint}` is configured"),
            ),
            request_id,
            result::ERROR,
        );
    };
    let tenant = hook
        .tenant
        .and_then(|i| router.config.tenants.get(i))
        .map_or("default", |t| t.name.as_str());
    let secrets: Vec<&[u8]> = hook
        .secrets
        .iter()
        .filter_map(|r| router.secret(r))
        .map(|s| s.expose().as_bytes())
        .collect();
    let now = host.now();
    let accepted = match receive(hook, tenant, &secrets, target, headers, body, now) {
        Received::Rejected(p) => {
            let res = match p.kind {
                ProblemKind::PayloadTooLarge => result::TOO_LARGE,
                ProblemKind::WebhookRejected => result::REJECTED,
                _ => result::ERROR,
            };
            return HookReply::problem(&p, request_id, res);
        }
        Received::Challenge { challenge } => {
            return HookReply::ok(
                request_id,
                "text/plain; charset=utf-8",
                challenge.into_bytes(),
                result::HANDSHAKE,
            );
        }
        Received::Handshake { token } => {
            let mut r = HookReply::ok(
                request_id,
                "application/json",
                Vec::from(&br#"{"status":"handshake","detail":"verification token received; the operator must configure it as this endpoint's secret"}"#[..]),
                result::HANDSHAKE,
            );
            r.handshake_token = Some(token);
            return r;
        }
        Received::Accepted(a) => a,
    };

    let seen = seen_key(endpoint, &accepted.dedup_key);
    let replay = accepted
        .replay_key
        .as_deref()
        .map(|k| seen_key(endpoint, k));
    let mut duplicate = false;
    for key in core::iter::once(&seen).chain(replay.as_ref()) {
        match host.kv_get(key).await {
            Err(e) => return HookReply::problem(&storage_problem(&e), request_id, result::ERROR),
            Ok(found) => duplicate |= found.is_some(),
        }
        if duplicate {
            break;
        }
    }
    if duplicate {
        let body = serde_json::to_vec(&Ack {
            status: "duplicate",
            id: &accepted.event_id,
            ty: None,
            destinations: 0,
        })
        .unwrap_or_default();
        let mut r = HookReply::ok(request_id, "application/json", body, result::DUPLICATE);
        r.headers
            .push((String::from(DUPLICATE_HEADER), String::from("true")));
        r.event_id = Some(accepted.event_id);
        return r;
    }
    // The outbox first: once these are stored the event cannot be lost, so only then is the
    // delivery remembered as seen and answered 2xx.
    for d in &accepted.deliveries {
        if let Err(e) = host.kv_put(&pending_key(d), d.encode(), None).await {
            return HookReply::problem(&storage_problem(&e), request_id, result::ERROR);
        }
    }
    // A failure here only weakens dedup (a redelivery would be forwarded again, with the same
    // event id); the event itself is safe, so the answer stays 200.
    for key in core::iter::once(&seen).chain(replay.as_ref()) {
        let _ = host
            .kv_put(key, Vec::from(&b"1"[..]), Some(accepted.ttl))
            .await;
    }
    let body = serde_json::to_vec(&Ack {
        status: "accepted",
        id: &accepted.event_id,
        ty: Some(&accepted.event_type),
        destinations: accepted.deliveries.len(),
    })
    .unwrap_or_default();
    let mut r = HookReply::ok(request_id, "application/json", body, result::ACCEPTED);
    r.event_id = Some(accepted.event_id);
    r.deliveries = accepted.deliveries;
    r
}

/// How [`deliver`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Delivered {
    /// The destination answered 2xx; the pending record is gone.
    Done,
    /// Given up; stored as a dead letter.
    DeadLettered,
    /// The next attempt is due at `at`, after the `until` the host allowed (or the dead letter
    /// could not be stored): the pending record holds it for [`due_pending`].
    Parked {
        /// When the next attempt is due.
        at: Instant,
    },
}

fn destination<'a>(router: &'a Router, d: &Delivery) -> Option<&'a Destination> {
    let hook = webhook(router, &d.endpoint)?;
    let by_index = usize::try_from(d.dest)
        .ok()
        .and_then(|i| hook.destinations.get(i))
        .filter(|x| x.url == d.url);
    by_index.or_else(|| hook.destinations.iter().find(|x| x.url == d.url))
}

/// The headers for one attempt, or why it cannot be made at all (a configuration problem that
/// retrying will not fix).
fn prepare(router: &Router, d: &Delivery, now: Instant) -> Result<(HeaderList, bool), String> {
    let dest = destination(router, d).ok_or_else(|| {
        format!(
            "destination `{}` is no longer configured for endpoint `{}`",
            d.url, d.endpoint
        )
    })?;
    let secret = match &dest.sign_secret {
        None => None,
        Some(r) => Some(
            router
                .secret(r)
                .ok_or_else(|| format!("signing secret `{r}` is not set"))?,
        ),
    };
    let headers = outgoing_request(d, secret.map(|s| s.expose().as_bytes()), now)
        .map_err(|e| format!("cannot sign the delivery: {e}"))?;
    Ok((headers, dest.allow_private))
}

/// Runs one delivery until it is done, dead-lettered, or its next attempt falls after `until`
/// (the end of the host's background window: about 30 s after the response with
/// `ctx.wait_until` on Workers; `None` natively). Sleeps with [`HookHost::sleep_until`] between
/// attempts, keeps the pending record current after each failure, and returns the final record.
///
/// `rng` draws the jitter; seed it per task from the host's entropy (a fixed seed in tests).
pub async fn deliver<H: HookHost>(
    host: &H,
    router: &Router,
    policy: &DeliveryPolicy,
    mut d: Delivery,
    rng: &mut Rng,
    until: Option<Instant>,
) -> (Delivered, Delivery) {
    loop {
        let mut now = host.now();
        if d.next_at > now {
            if until.is_some_and(|u| d.next_at > u) {
                return (Delivered::Parked { at: d.next_at }, d);
            }
            host.sleep_until(d.next_at).await;
            now = host.now();
        }
        let next = match prepare(router, &d, now) {
            Ok((headers, allow_private)) => {
                let post = Post {
                    url: &d.url,
                    headers: &headers,
                    body: &d.event,
                    deadline: now + policy.timeout,
                    allow_private,
                };
                let outcome = host.post(&post).await;
                now = host.now();
                d.next_step(now, &outcome, &policy.backoff, rng)
            }
            Err(why) => {
                d.attempts = d.attempts.saturating_add(1);
                d.last_error = Some(why);
                d.next_at = now;
                Next::DeadLetter
            }
        };
        match next {
            Next::Done => {
                // If this fails the record is resumed later and delivered again, with the same
                // event id: at-least-once.
                let _ = host.kv_delete(&pending_key(&d)).await;
                return (Delivered::Done, d);
            }
            Next::DeadLetter => {
                if host.kv_put(&dead_key(&d), d.encode(), None).await.is_ok() {
                    let _ = host.kv_delete(&pending_key(&d)).await;
                    return (Delivered::DeadLettered, d);
                }
                let _ = host.kv_put(&pending_key(&d), d.encode(), None).await;
                return (Delivered::Parked { at: d.next_at }, d);
            }
            Next::Retry { .. } => {
                let _ = host.kv_put(&pending_key(&d), d.encode(), None).await;
            }
        }
    }
}

/// Pending deliveries whose task is evidently gone: the next attempt was due more than `grace`
/// ago (so a live task would have made it). Run each with [`deliver`]; call this from a cron,
/// at start-up, or now and then from requests. `grace` must exceed the POST timeout (60 s is a
/// good choice). Undecodable records are skipped.
///
/// # Errors
///
/// [`KvError`] if the keys cannot be listed.
pub async fn due_pending<H: HookHost>(
    host: &H,
    now: Instant,
    grace: Duration,
) -> Result<Vec<Delivery>, KvError> {
    let mut out = Vec::new();
    for key in host.kv_list(PENDING_PREFIX).await? {
        if let Ok(Some(bytes)) = host.kv_get(&key).await {
            if let Some(d) = Delivery::decode(&bytes) {
                if d.next_at.saturating_add(grace) <= now {
                    out.push(d);
                }
            }
        }
    }
    Ok(out)
}

#[derive(Serialize)]
struct Letter<'a> {
    id: String,
    endpoint: &'a str,
    event_id: &'a str,
    #[serde(rename = "type")]
    ty: Option<String>,
    destination: u32,
    url: &'a str,
    attempts: u32,
    accepted_at: String,
    failed_at: String,
    last_error: Option<&'a str>,
    event_bytes: usize,
}

#[derive(Serialize)]
struct Letters<'a> {
    dead_letters: Vec<Letter<'a>>,
    undecodable: Vec<String>,
}

#[derive(serde::Deserialize)]
struct EventType {
    #[serde(rename = "type")]
    ty: Option<String>,
}

/// A URL without its query or fragment (which may carry a token).
fn redact_url(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

/// The dead letters, of one endpoint or all, as JSON for the admin API:
/// `{"dead_letters":[{"id","endpoint","event_id","type","destination","url","attempts",
/// "accepted_at","failed_at","last_error","event_bytes"}…],"undecodable":[keys…]}`, sorted by id.
/// URLs are shown without their query string; event bodies are not included.
///
/// # Errors
///
/// [`KvError`] if the keys cannot be listed.
pub async fn list_dead_letters<H: HookHost>(
    host: &H,
    endpoint: Option<&str>,
) -> Result<String, KvError> {
    let prefix = match endpoint {
        Some(e) => format!("{DEAD_PREFIX}{e}:"),
        None => String::from(DEAD_PREFIX),
    };
    let mut keys = host.kv_list(&prefix).await?;
    keys.sort();
    let mut records = Vec::new();
    let mut undecodable = Vec::new();
    for key in keys {
        // a key gone meanwhile was replayed: skip it
        if let Some(bytes) = host.kv_get(&key).await? {
            match Delivery::decode(&bytes) {
                Some(d) => records.push(d),
                None => undecodable.push(key),
            }
        }
    }
    let letters = records
        .iter()
        .map(|d| Letter {
            id: d.id(),
            endpoint: &d.endpoint,
            event_id: &d.event_id,
            ty: serde_json::from_slice::<EventType>(&d.event)
                .ok()
                .and_then(|e| e.ty),
            destination: d.dest,
            url: redact_url(&d.url),
            attempts: d.attempts,
            accepted_at: rfc3339(d.created),
            failed_at: rfc3339(d.next_at),
            last_error: d.last_error.as_deref(),
            event_bytes: d.event.len(),
        })
        .collect();
    Ok(serde_json::to_string(&Letters {
        dead_letters: letters,
        undecodable,
    })
    .unwrap_or_default())
}

/// Why a replay did not happen.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplayError {
    /// No dead letter has this id (never existed, or already replayed).
    NotFound,
    /// The stored record does not decode.
    Undecodable,
    /// KV failed.
    Kv(KvError),
}

impl ReplayError {
    /// The problem to answer with (404, 500, 500).
    #[must_use]
    pub fn to_problem(&self, id: &str) -> Problem {
        match self {
            ReplayError::NotFound => Problem::new(
                ProblemKind::NoRoute,
                format!("no dead letter `{id}` (it may have been replayed already)"),
            ),
            ReplayError::Undecodable => Problem::new(
                ProblemKind::Internal,
                format!("dead letter `{id}` is stored in a format this version cannot read"),
            ),
            ReplayError::Kv(e) => Problem::new(ProblemKind::Internal, format!("{e}")),
        }
    }
}

impl fmt::Display for ReplayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplayError::NotFound => f.write_str("no such dead letter"),
            ReplayError::Undecodable => f.write_str("the dead letter does not decode"),
            ReplayError::Kv(e) => write!(f, "{e}"),
        }
    }
}

/// Re-enqueues dead letter `id` (`{endpoint}:{event id}:{dest}`, as listed): attempts reset,
/// same event id (so a destination that did get it can dedup), stored as pending, then removed
/// from the dead letters. Run the returned delivery with [`deliver`]. Replaying an id twice
/// gives [`ReplayError::NotFound`] the second time.
///
/// # Errors
///
/// [`ReplayError`].
pub async fn replay_dead_letter<H: HookHost>(host: &H, id: &str) -> Result<Delivery, ReplayError> {
    let key = format!("{DEAD_PREFIX}{id}");
    let bytes = host
        .kv_get(&key)
        .await
        .map_err(ReplayError::Kv)?
        .ok_or(ReplayError::NotFound)?;
    let mut d = Delivery::decode(&bytes).ok_or(ReplayError::Undecodable)?;
    d.reset(host.now());
    host.kv_put(&pending_key(&d), d.encode(), None)
        .await
        .map_err(ReplayError::Kv)?;
    host.kv_delete(&key).await.map_err(ReplayError::Kv)?;
    Ok(d)
}
