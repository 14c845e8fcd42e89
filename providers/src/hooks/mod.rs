//! The delivery half of the webhook path: receive, dedup, forward, retry, dead-letter, replay.
//!
//! ```text
//! POST /hooks/{endpoint}
//!   → size limit (413)                       receive()
//!   → verify signature + replay window (401)  receive()  (webhook::verify)
//!   → Notion handshake / Slack challenge      receive()  → 200, nothing forwarded
//!   → normalize to CloudEvents 1.0            receive()
//!   → dedup: hooks:seen:{endpoint}:{key}      handle_hook() (KV, via HookHost)
//!   → outbox: hooks:pending:{endpoint}:{event}:{dest}, one per destination
//!   → answer 200 within the provider's deadline
//!   → (background) deliver(): POST, retry with backoff + full jitter
//!        → done: pending record deleted
//!        → gave up: hooks:dead:{endpoint}:{event}:{dest}; list and replay from the admin API
//! ```
//!
//! Everything here is sans-IO like the core: [`receive`] and [`Delivery::next_step`] are pure
//! decisions over explicit inputs (`now`, a seeded [`Rng`](mosaic_core::rng::Rng)), and the async
//! functions of [`driver`] only sequence them over the small [`HookHost`] trait that each host
//! implements (KV, an HTTP POST, a clock, a sleep). The same code runs on Workers, Spin, the native
//! server and the virtual-clock tests.
//!
//! # Duplicates: `200` with `x-mosaic-duplicate: true`, not `409`
//!
//! A delivery whose dedup key was already seen is answered **`200 OK` with the header
//! `x-mosaic-duplicate: true`** (and a small JSON body saying so), and is not forwarded again.
//! Why not `409 Conflict`:
//!
//! - providers redeliver *because* they did not see a 2xx (our answer was lost or slow, or an
//!   operator pressed "redeliver"); a duplicate is the expected, successful end of that story;
//! - every provider treats a non-2xx as a failure to retry, and GitHub and GitLab (and Stripe
//!   after days of failures) **disable the hook** after repeated failures, so answering a
//!   harmless duplicate with 409 would eventually cut off every later, genuine event;
//! - the marker header still lets a human or a test tell a duplicate from a first delivery.
//!
//! Only genuine deliveries reach the dedup check (verification comes first), so a forger cannot
//! use the marker to probe which ids were seen.
//!
//! The key is the provider's stable delivery id, or the body's SHA-256 where none is stable
//! ([`webhook::dedup_key`](crate::webhook::dedup_key)). For schemes that sign no timestamp
//! (GitHub, Gitea, Jira, Notion, token schemes …) the id header is not covered by the signature,
//! so the body hash is remembered **as well**
//! ([`Accepted::replay_key`]): a captured delivery replayed under a fresh id is a duplicate too.
//! Timestamped schemes (Standard Webhooks, Stripe, Slack, Linear) have their replay window
//! instead.
//!
//! # Nothing accepted is lost silently
//!
//! Before answering 2xx, [`handle_hook`] writes one *pending* record per destination (an outbox)
//! and only then marks the dedup key as seen. If a KV write fails it answers `503` so that the
//! provider retries; if the host dies while retrying in the background, [`due_pending`] finds the
//! orphaned records so that a later request, a cron or a restart resumes them. A delivery that
//! exhausts its attempts (or meets a permanent refusal such as `404`) becomes a dead letter,
//! listed by [`list_dead_letters`] and re-enqueued by [`replay_dead_letter`].
//!
//! Delivery is at-least-once: a crash between a successful POST and deleting the pending record,
//! a dedup check racing an identical delivery (KV is check-then-set, and Workers KV is eventually
//! consistent), or a replay of a letter that did arrive can all repeat a POST. Every repeat
//! carries the same CloudEvents `id` (and, when signed, the same `webhook-id`), which is what a
//! destination should dedup on.
//!
//! # Retries
//!
//! `2xx` is done. `408`, `425`, `429`, `5xx`, timeouts and connection errors are retried after a
//! full-jitter exponential backoff ([`DeliveryPolicy`]) until the destination's `attempts`
//! ([`Destination::attempts`](mosaic_core::config::Destination::attempts)) were made. Any other status (`3xx`, `4xx`) will not
//! change by retrying and dead-letters at once, where an operator can fix the destination and
//! replay it.
//!
//! # Outgoing requests
//!
//! `POST` to the destination URL with the CloudEvent in structured mode
//! (`content-type: application/cloudevents+json`). When the destination has a `sign_secret`, the
//! request is signed with Standard Webhooks (`webhook-id` = the event id, `webhook-timestamp`,
//! `webhook-signature`), re-signed at every attempt so that a late retry is still within the
//! receiver's replay window. A `whsec_` secret gives HMAC `v1`, a `whsk_` key ed25519 `v1a`.

//! # What each host does
//!
//! - **Native** (`edge/local`): `handle_hook`, answer, then `tokio::spawn` one [`deliver`] per
//!   returned delivery with `until: None`; at start-up and every minute, [`due_pending`] with a
//!   60 s grace and deliver what it returns (this resumes work a restart interrupted).
//! - **Workers**: the same, with `ctx.wait_until` and `until` = about 25 s after the response
//!   (the platform stops `waitUntil` work 30 s after it). A delivery whose next retry falls later
//!   is *parked* in KV; a Cron Trigger calling [`due_pending`] resumes it. KV's ~60 s eventual
//!   consistency makes dedup best-effort across colos (see above).
//! - **Spin**: an instance lives for one request and has no background work after the response,
//!   so nothing can be retried after answering. The host may make one quick attempt per
//!   delivery inline before answering (`until` = now, with a short [`DeliveryPolicy::timeout`]
//!   such as 2 s so the answer stays inside GitHub's 10 s deadline), and relies on the outbox for
//!   the rest: parked deliveries are resumed by [`due_pending`] from a cron-triggered component
//!   (or at the start of later requests). The README should say so.
//!
//! Admin endpoints: `GET /_mosaic/hooks/dead[?endpoint=NAME]` → [`list_dead_letters`];
//! `POST /_mosaic/hooks/dead/{id}/replay` → [`replay_dead_letter`] then [`deliver`]
//! (percent-decode `id`: event ids are printable ASCII and may contain `/`).

mod cli;
mod delivery;
pub mod driver;
mod receive;

pub use cli::{cli_sign, cli_verify, parse_header_line, CliError, DEFAULT_TARGET};
pub use delivery::{
    outgoing_request, Delivery, DeliveryPolicy, Next, PostError, DELIVERY_CONTENT_TYPE,
};
pub use driver::{
    body_limit, dead_key, deliver, due_pending, handle_hook, list_dead_letters, payload_too_large,
    pending_key, replay_dead_letter, seen_key, Delivered, HookHost, HookReply, KvError, Post,
    ReplayError, DEAD_PREFIX, PENDING_PREFIX, SEEN_PREFIX,
};
pub use receive::{receive, Accepted, Received, DUPLICATE_HEADER};

/// Result names for [`Metrics::count_webhook`](mosaic_core::metrics::Metrics::count_webhook).
pub mod result {
    /// Verified, new, accepted for delivery.
    pub const ACCEPTED: &str = "accepted";
    /// Verified, already seen: answered 200 with the duplicate marker, not forwarded.
    pub const DUPLICATE: &str = "duplicate";
    /// Signature, token or timestamp refused.
    pub const REJECTED: &str = "rejected";
    /// Body over the endpoint's limit.
    pub const TOO_LARGE: &str = "too-large";
    /// A subscription handshake or challenge, answered and not forwarded.
    pub const HANDSHAKE: &str = "handshake";
    /// Something on our side (unknown endpoint, KV failure, misconfiguration).
    pub const ERROR: &str = "error";
}
