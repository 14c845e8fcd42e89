//! Webhook verification and normalization, sans-IO.
//!
//! The webhook path of the edge is: verify the provider's signature over the **raw bytes** →
//! check the replay window → dedup by delivery id → normalize to a CloudEvents 1.0 envelope →
//! answer fast → forward. This module does the pure parts: [`verify`], [`sign`], [`normalize`]
//! and [`dedup_key`]. It reads no clock (every call takes `now`), does no I/O, and never panics on
//! input; header parsers are fuzzed.
//!
//! # Schemes
//!
//! A [`Scheme`] is one primitive way of authenticating a delivery. Named provider presets
//! (`github`, `stripe`, …) live in `mosaic-providers` and pick a scheme plus an [`EventSpec`].
//!
//! | Scheme | Header(s) | Signed content | Key | Replay window |
//! |---|---|---|---|---|
//! | [`Scheme::HmacSha256Hex`] | e.g. `X-Hub-Signature-256: sha256=<hex>` | raw body | secret bytes | none |
//! | [`Scheme::HmacSha1Hex`] | e.g. `X-Hub-Signature: sha1=<hex>` (legacy, opt-in) | raw body | secret bytes | none |
//! | [`Scheme::StandardWebhooks`] | `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<b64> v1a,<b64>` | `id.ts.body` | `whsec_` (base64-decoded) / `whpk_` | ±5 min |
//! | [`Scheme::Stripe`] | `Stripe-Signature: t=…,v1=<hex>[,v1=…]` | `t.body` | whole secret as UTF-8 | 300 s, both ways |
//! | [`Scheme::Slack`] | `X-Slack-Signature: v0=<hex>`, `X-Slack-Request-Timestamp` | `v0:ts:body` | secret bytes | ±5 min |
//! | [`Scheme::Linear`] | `Linear-Signature: <hex>` | raw body; body `webhookTimestamp` (ms) | secret bytes | ±60 s |
//! | [`Scheme::TokenHeader`] | e.g. `X-Gitlab-Token: <secret>` | — (the secret itself) | secret bytes | none |
//! | [`Scheme::UrlSecret`] | query `?token=<secret>` | — (the secret itself) | secret bytes | none |
//! | [`Scheme::MessageSignature`] | RFC 9421 `Signature`, `Signature-Input`, `Content-Digest` | `@request-target`, `content-digest` | ed25519 public key | `created` ±5 min |
//!
//! # Secrets and rotation
//!
//! [`verify`] takes every active secret of the endpoint; the delivery is accepted if any of them
//! verifies it, and [`Verified::key_index`] says which (so an operator can see when the old
//! secret stops being used and retire it). All comparisons of secret-derived values are
//! constant-time (`subtle`); token schemes compare SHA-256 digests so that not even the length of
//! the secret leaks.
//!
//! # Deviations from provider SDKs, on purpose
//!
//! - Stripe's SDK rejects only *old* timestamps; we also reject ones more than the tolerance in
//!   the future, or a signature minted with a future `t` would stay replayable.
//! - Hex signatures must be lowercase (as every provider sends them), so that a signature has
//!   exactly one accepted spelling.
//! - At most 8 candidate signatures are examined per header (bounding work per forged request).
//!
//! # Replays and duplicates
//!
//! Timestamped schemes reject deliveries outside the window. For the others (GitHub, Gitea,
//! Jira, Notion, Plane, token schemes) the only defence is dedup: [`dedup_key`] gives the stable
//! key to remember. Note that for most schemes the delivery-id *header* is not covered by the
//! signature, so a captured delivery can be replayed under a new id; a host that cares can also
//! remember [`body_key`] for a while.

mod civil;
mod error;
mod event;
mod handshake;
mod keys;
mod mac;
mod msgsig;
mod sfv;
mod standard;
mod token;
mod util;

use alloc::borrow::Cow;
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use crate::http::Headers;
use crate::time::Instant;

pub use civil::{is_rfc3339, rfc3339};
pub use error::{Rejection, SignError};
pub use event::{
    body_key, dedup_key, normalize, CloudEvent, EventData, EventSpec, Field, NormalizeError,
    TimeField, TypePart, SPEC_VERSION,
};
pub use handshake::Handshake;

/// One primitive way of authenticating a webhook delivery. See the [module docs](self) for the
/// table of what each signs and how.
///
/// Names are `Cow<'static, str>` so presets can be `static` while providers declared in
/// configuration build schemes at run time.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scheme {
    /// HMAC-SHA256 over the raw body, lowercase hex, in `header`, after `prefix` if any. GitHub
    /// (`X-Hub-Signature-256`, `sha256=`), Gitea (`X-Gitea-Signature`), Forgejo, Plane, Jira
    /// (`X-Hub-Signature`, `sha256=`), Notion (`X-Notion-Signature`, `sha256=`), Confluence DC.
    HmacSha256Hex {
        /// Header carrying the signature.
        header: Cow<'static, str>,
        /// Text before the hex digits, e.g. `sha256=`.
        prefix: Option<Cow<'static, str>>,
    },
    /// HMAC-SHA1 over the raw body, lowercase hex. Legacy (GitHub/Gitea `X-Hub-Signature: sha1=`);
    /// no preset uses it: configure it explicitly only for a sender that cannot do better.
    HmacSha1Hex {
        /// Header carrying the signature.
        header: Cow<'static, str>,
        /// Text before the hex digits, e.g. `sha1=`.
        prefix: Option<Cow<'static, str>>,
    },
    /// Standard Webhooks v1 (`v1` HMAC with a `whsec_` secret, `v1a` ed25519 with a `whpk_` key);
    /// also GitLab's signing token.
    StandardWebhooks,
    /// Stripe: `Stripe-Signature: t=<secs>,v1=<hex>`; key is the whole secret (with `whsec_`)
    /// as UTF-8.
    Stripe,
    /// Slack: `X-Slack-Signature: v0=<hex>` over `v0:{ts}:{body}`, `X-Slack-Request-Timestamp`.
    Slack,
    /// Linear: `Linear-Signature: <hex>` over the raw body, plus the body's `webhookTimestamp`
    /// (Unix ms) within 60 s.
    Linear,
    /// The shared secret itself in a header (GitLab `X-Gitlab-Token`). Authenticates the sender,
    /// not the body.
    TokenHeader {
        /// Header carrying the token.
        header: Cow<'static, str>,
    },
    /// The shared secret in a query parameter of the webhook URL (BookStack, Jenkins, any sender
    /// that cannot sign). Authenticates the sender, not the body.
    UrlSecret {
        /// Query parameter carrying the secret, e.g. `token`.
        param: Cow<'static, str>,
    },
    /// RFC 9421 HTTP Message Signature with ed25519 under signature `label`, which must cover
    /// `@request-target` and `content-digest`; the body is checked against `Content-Digest`
    /// (`sha-256`). Woodpecker CI extensions use label `woodpecker-ci-extensions`.
    MessageSignature {
        /// The signature's label in `Signature`/`Signature-Input`.
        label: Cow<'static, str>,
    },
}

impl Scheme {
    /// GitHub-style HMAC-SHA256 hex in `header`, after `prefix`.
    #[must_use]
    pub const fn hmac_sha256_hex(header: &'static str, prefix: Option<&'static str>) -> Scheme {
        Scheme::HmacSha256Hex {
            header: Cow::Borrowed(header),
            prefix: match prefix {
                Some(p) => Some(Cow::Borrowed(p)),
                None => None,
            },
        }
    }

    /// The shared secret in `header`.
    #[must_use]
    pub const fn token_header(header: &'static str) -> Scheme {
        Scheme::TokenHeader {
            header: Cow::Borrowed(header),
        }
    }

    /// The shared secret in query parameter `param`.
    #[must_use]
    pub const fn url_secret(param: &'static str) -> Scheme {
        Scheme::UrlSecret {
            param: Cow::Borrowed(param),
        }
    }

    /// An RFC 9421 ed25519 message signature under `label`.
    #[must_use]
    pub const fn message_signature(label: &'static str) -> Scheme {
        Scheme::MessageSignature {
            label: Cow::Borrowed(label),
        }
    }

    /// A short stable name of the scheme kind, e.g. `hmac-sha256-hex`.
    #[must_use]
    pub const fn kind(&self) -> &'static str {
        match self {
            Scheme::HmacSha256Hex { .. } => "hmac-sha256-hex",
            Scheme::HmacSha1Hex { .. } => "hmac-sha1-hex",
            Scheme::StandardWebhooks => "standard-webhooks",
            Scheme::Stripe => "stripe",
            Scheme::Slack => "slack",
            Scheme::Linear => "linear",
            Scheme::TokenHeader { .. } => "token-header",
            Scheme::UrlSecret { .. } => "url-secret",
            Scheme::MessageSignature { .. } => "message-signature",
        }
    }

    /// The replay tolerance that applies when none is configured, for schemes that sign a
    /// timestamp; `None` for schemes that sign none.
    #[must_use]
    pub const fn default_tolerance(&self) -> Option<Duration> {
        match self {
            Scheme::StandardWebhooks => Some(standard::TOLERANCE),
            Scheme::Stripe => Some(mac::STRIPE_TOLERANCE),
            Scheme::Slack => Some(mac::SLACK_TOLERANCE),
            Scheme::Linear => Some(mac::LINEAR_TOLERANCE),
            Scheme::MessageSignature { .. } => Some(msgsig::TOLERANCE),
            _ => None,
        }
    }

    /// Whether the credential covers the body (a MAC or signature) rather than being a bare
    /// shared secret.
    #[must_use]
    pub const fn authenticates_body(&self) -> bool {
        !matches!(self, Scheme::TokenHeader { .. } | Scheme::UrlSecret { .. })
    }

    /// The header that carries the signature or token (`None` for [`Scheme::UrlSecret`]).
    #[must_use]
    pub fn signature_header(&self) -> Option<&str> {
        Some(match self {
            Scheme::HmacSha256Hex { header, .. }
            | Scheme::HmacSha1Hex { header, .. }
            | Scheme::TokenHeader { header } => header,
            Scheme::StandardWebhooks => standard::SIGNATURE,
            Scheme::Stripe => mac::STRIPE_SIGNATURE,
            Scheme::Slack => mac::SLACK_SIGNATURE,
            Scheme::Linear => mac::LINEAR_SIGNATURE,
            Scheme::MessageSignature { .. } => msgsig::SIGNATURE,
            Scheme::UrlSecret { .. } => return None,
        })
    }
}

/// A delivery that passed verification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Verified {
    /// Index, in the `secrets` passed to [`verify`], of the secret that matched.
    pub key_index: usize,
    /// The signed timestamp, for schemes that sign one.
    pub timestamp: Option<Instant>,
}

/// Verifies a webhook delivery.
///
/// - `secrets`: every active secret of the endpoint (several during a rotation; none gives
///   [`Rejection::NoSecretConfigured`], an empty one [`Rejection::MalformedSecret`]), as configured:
///   text secrets as their UTF-8 bytes; `whsec_…`/`whpk_…` strings for Standard Webhooks; a PEM,
///   hex or base64 ed25519 public key for [`Scheme::MessageSignature`].
/// - `headers`, `body`: the request exactly as received; the body must be the raw bytes, never
///   re-serialized JSON.
/// - `target`: the request target as received (`/hooks/x?token=…`). Needed by
///   [`Scheme::UrlSecret`] (a bare query string such as `token=…` is accepted too) and
///   [`Scheme::MessageSignature`]; ignored by the others.
/// - `now`: the host's current time.
/// - `tolerance_override`: replaces the scheme's replay tolerance
///   ([`Scheme::default_tolerance`]), in both directions.
///
/// # Errors
///
/// A [`Rejection`] saying why the delivery is not accepted; see [`Rejection::code`].
pub fn verify<H: Headers + ?Sized>(
    scheme: &Scheme,
    secrets: &[&[u8]],
    headers: &H,
    body: &[u8],
    target: Option<&str>,
    now: Instant,
    tolerance_override: Option<Duration>,
) -> Result<Verified, Rejection> {
    if secrets.is_empty() {
        return Err(Rejection::NoSecretConfigured);
    }
    // An empty key would make every HMAC scheme accept signatures anyone can compute (an unset
    // environment variable is the usual cause): refuse it as a configuration error.
    if let Some(index) = secrets.iter().position(|s| s.is_empty()) {
        return Err(Rejection::MalformedSecret {
            index,
            reason: "the secret is empty",
        });
    }
    let tolerance = tolerance_override
        .or(scheme.default_tolerance())
        .unwrap_or(Duration::ZERO);
    match scheme {
        Scheme::HmacSha256Hex { header, prefix } => {
            mac::verify_hex::<mac::HmacSha256, H>(header, prefix.as_deref(), secrets, headers, body)
        }
        Scheme::HmacSha1Hex { header, prefix } => {
            mac::verify_hex::<mac::HmacSha1, H>(header, prefix.as_deref(), secrets, headers, body)
        }
        Scheme::StandardWebhooks => standard::verify(secrets, headers, body, now, tolerance),
        Scheme::Stripe => mac::verify_stripe(secrets, headers, body, now, tolerance),
        Scheme::Slack => mac::verify_slack(secrets, headers, body, now, tolerance),
        Scheme::Linear => mac::verify_linear(secrets, headers, body, now, tolerance),
        Scheme::TokenHeader { header } => token::verify_header(header, secrets, headers),
        Scheme::UrlSecret { param } => token::verify_query(param, secrets, target),
        Scheme::MessageSignature { label } => {
            msgsig::verify(label, secrets, headers, body, target, now, tolerance)
        }
    }
}

/// The headers a provider using `scheme` would send with `body`: for the `mosaic webhook sign`
/// CLI, for tests, and for signing the deliveries we forward (with
/// [`Scheme::StandardWebhooks`]).
///
/// - `secret`: as for [`verify`]; for [`Scheme::StandardWebhooks`] a `whsec_` secret gives a
///   `v1` signature and a `whsk_` private key a `v1a` one; for [`Scheme::MessageSignature`] an
///   ed25519 private key (PEM PKCS#8, hex or base64 seed).
/// - `target`: the request target the delivery will be sent to; required by
///   [`Scheme::MessageSignature`].
/// - `id`: the delivery id (`webhook-id` for Standard Webhooks; other schemes do not sign one).
/// - `now`: the signing time, for schemes that sign a timestamp.
///
/// For [`Scheme::Linear`] the timestamp lives in the body: put a current `webhookTimestamp`
/// (Unix ms) in it before signing.
///
/// # Errors
///
/// [`SignError`] if the secret is unusable, the target is missing, or the scheme's credential is
/// not a header ([`Scheme::UrlSecret`]).
pub fn sign(
    scheme: &Scheme,
    secret: &[u8],
    body: &[u8],
    target: Option<&str>,
    id: &str,
    now: Instant,
) -> Result<Vec<(String, String)>, SignError> {
    if secret.is_empty() {
        return Err(SignError::MalformedSecret {
            reason: "the secret is empty",
        });
    }
    let hmac_refused = SignError::MalformedSecret {
        reason: "refused as an HMAC key",
    };
    match scheme {
        Scheme::HmacSha256Hex { header, prefix } => {
            mac::sign_hex::<mac::HmacSha256>(header, prefix.as_deref(), secret, body)
                .ok_or(hmac_refused)
        }
        Scheme::HmacSha1Hex { header, prefix } => {
            mac::sign_hex::<mac::HmacSha1>(header, prefix.as_deref(), secret, body)
                .ok_or(hmac_refused)
        }
        Scheme::Linear => {
            mac::sign_hex::<mac::HmacSha256>(mac::LINEAR_SIGNATURE, None, secret, body)
                .ok_or(hmac_refused)
        }
        Scheme::StandardWebhooks => standard::sign(secret, body, id, now),
        Scheme::Stripe => mac::sign_stripe(secret, body, now).ok_or(hmac_refused),
        Scheme::Slack => mac::sign_slack(secret, body, now).ok_or(hmac_refused),
        Scheme::TokenHeader { header } => {
            let token = core::str::from_utf8(secret).map_err(|_| SignError::MalformedSecret {
                reason: "a header token must be UTF-8",
            })?;
            Ok(alloc::vec![(String::from(&**header), String::from(token))])
        }
        Scheme::UrlSecret { param } => Err(SignError::NotHeaderBased {
            param: param.clone(),
        }),
        Scheme::MessageSignature { label } => msgsig::sign(
            label,
            secret,
            body,
            target.ok_or(SignError::MissingTarget)?,
            now,
        ),
    }
}

/// The `whpk_` public key that matches a `whsk_` (or PEM/hex/base64) ed25519 private key: what
/// to hand to receivers of deliveries we sign with [`Scheme::StandardWebhooks`] `v1a`.
///
/// # Errors
///
/// [`SignError::MalformedSecret`] if `secret` is not an ed25519 private key.
pub fn ed25519_public_key(secret: &[u8]) -> Result<String, SignError> {
    keys::signing_key(secret)
        .map(|k| keys::whpk(&k.verifying_key()))
        .map_err(|reason| SignError::MalformedSecret { reason })
}
