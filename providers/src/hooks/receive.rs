//! The pure decision about one inbound delivery.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use mosaic_core::config::Webhook;
use mosaic_core::http::Headers;
use mosaic_core::problem::{Problem, ProblemKind};
use mosaic_core::secret::Secret;
use mosaic_core::time::Instant;
use mosaic_core::webhook::body_key;

use super::delivery::Delivery;
use crate::webhook::{self, HandshakePolicy, Outcome, VerifyOptions};

/// Response header set to `true` on the `200` answer to a duplicate delivery.
pub const DUPLICATE_HEADER: &str = "x-mosaic-duplicate";

/// A genuine, normalized delivery, ready for dedup and forwarding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// The CloudEvents 1.0 envelope, structured-mode JSON.
    pub event: Vec<u8>,
    /// The CloudEvents `id` (equal to [`dedup_key`](Self::dedup_key)).
    pub event_id: String,
    /// The CloudEvents `type`, for logs.
    pub event_type: String,
    /// The key to remember: the provider's stable delivery id, or `sha256:<hex>` of the body.
    pub dedup_key: String,
    /// A second key to remember, `sha256:<hex>` of the body, for schemes that sign no timestamp
    /// and whose delivery id is not the body hash: their id header is not covered by the
    /// signature, so without it a captured delivery could be replayed under a fresh id.
    pub replay_key: Option<String>,
    /// How long to remember them.
    pub ttl: Duration,
    /// One delivery per configured destination, due now.
    pub deliveries: Vec<Delivery>,
}

/// What to do with a request to `/hooks/{endpoint}`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub enum Received {
    /// Genuine: dedup, store the deliveries, answer 2xx, forward.
    Accepted(Accepted),
    /// Notion's unsigned subscription handshake: answer 200, forward nothing, and surface the
    /// token to the operator (it is the secret to configure for this endpoint).
    Handshake {
        /// The `verification_token` (redacted in `Debug`).
        token: Secret,
    },
    /// Slack's signed `url_verification`: answer 200 with the challenge as a `text/plain` body.
    Challenge {
        /// The challenge to echo.
        challenge: String,
    },
    /// Refused: answer with this problem (401 signature, 413 size, 400 unparseable event, 500
    /// misconfigured endpoint). Its detail never contains secret material.
    Rejected(Problem),
}

/// Decides what an inbound delivery is, in the order: size limit → verify (signature and,
/// where the scheme signs a timestamp, the replay window) → handshake → normalize.
///
/// - `hook`: the validated endpoint; `tenant`: its tenant's name (`default` without one).
/// - `secrets`: the endpoint's resolved secrets as bytes, in configuration order (unresolved
///   ones left out: none at all rejects everything with a 500, see
///   [`Rejection::http_status`](mosaic_core::webhook::Rejection::http_status)).
/// - `target`: the request target as received (`/hooks/x?token=…`); `headers`, `body`: raw.
///
/// Dedup is not decided here: it needs KV ([`handle_hook`](super::handle_hook) does it).
pub fn receive<H: Headers + ?Sized>(
    hook: &Webhook,
    tenant: &str,
    secrets: &[&[u8]],
    target: &str,
    headers: &H,
    body: &[u8],
    now: Instant,
) -> Received {
    if u64::try_from(body.len()).unwrap_or(u64::MAX) > hook.max_body_bytes {
        return Received::Rejected(too_large(&hook.name, hook.max_body_bytes));
    }
    let Some(preset) = webhook::preset_by_name(&hook.scheme) else {
        return Received::Rejected(Problem::new(
            ProblemKind::Internal,
            format!(
                "webhook endpoint `{}` uses unknown scheme `{}`",
                hook.name, hook.scheme
            ),
        ));
    };
    let opts = VerifyOptions {
        tolerance: hook.tolerance,
        handshake: HandshakePolicy::WhenUnconfigured,
    };
    match webhook::verify(preset, secrets, headers, body, Some(target), now, &opts) {
        Err(r) => {
            let kind = if r.http_status() == 401 {
                ProblemKind::WebhookRejected
            } else {
                ProblemKind::Internal
            };
            Received::Rejected(Problem::new(
                kind,
                format!(
                    "webhook endpoint `{}` ({}): {} [{}]",
                    hook.name,
                    preset.name,
                    r,
                    r.code()
                ),
            ))
        }
        Ok(Outcome::Handshake { token }) => Received::Handshake {
            token: Secret::new(token),
        },
        Ok(Outcome::Challenge { challenge, .. }) => Received::Challenge { challenge },
        Ok(Outcome::Verified(_)) => {
            match webhook::normalize(preset, headers, body, now, tenant, &hook.name) {
                Err(e) => Received::Rejected(Problem::new(
                    ProblemKind::BadRequest,
                    format!(
                        "webhook endpoint `{}`: genuine delivery, but {} [{}]",
                        hook.name,
                        e,
                        e.code()
                    ),
                )),
                Ok(ce) => match ce.to_json() {
                    Err(_) => Received::Rejected(Problem::new(
                        ProblemKind::Internal,
                        "the event could not be serialized",
                    )),
                    Ok(event) => {
                        let deliveries = hook
                            .destinations
                            .iter()
                            .enumerate()
                            .map(|(i, d)| {
                                Delivery::new(
                                    &hook.name,
                                    &ce.id,
                                    u32::try_from(i).unwrap_or(u32::MAX),
                                    &d.url,
                                    d.attempts,
                                    now,
                                    event.clone(),
                                )
                            })
                            .collect();
                        let replay_key = Some(body_key(body))
                            .filter(|k| preset.scheme.default_tolerance().is_none() && *k != ce.id);
                        Received::Accepted(Accepted {
                            replay_key,
                            dedup_key: ce.id.clone(),
                            event_id: ce.id,
                            event_type: ce.ty,
                            ttl: hook.dedup_ttl,
                            event,
                            deliveries,
                        })
                    }
                },
            }
        }
    }
}

/// The 413 problem for a body over `limit` bytes.
pub(super) fn too_large(endpoint: &str, limit: u64) -> Problem {
    Problem::new(
        ProblemKind::PayloadTooLarge,
        format!("webhook endpoint `{endpoint}` accepts bodies of at most {limit} bytes"),
    )
}
