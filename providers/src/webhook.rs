//! Webhook presets: one per scheme name accepted in configuration and by the
//! `mosaic webhook sign|verify` CLI.
//!
//! A [`Preset`] is plain data: the signature [`Scheme`], the subscription [`Handshake`] if the
//! provider has one, and an [`EventSpec`] saying where the event type, delivery id, source,
//! subject and time are found. A provider declared in configuration builds a `Preset` at run
//! time the same way (every field is a `Cow`).
//!
//! | Name | Scheme | Event type → CloudEvents `type` | Dedup id |
//! |---|---|---|---|
//! | `github` | `X-Hub-Signature-256: sha256=` | `X-GitHub-Event` + body `action` → `com.github.pull_request.opened` | `X-GitHub-Delivery` |
//! | `gitea` | `X-Gitea-Signature` (bare hex) | `X-Gitea-Event` + `action` → `io.gitea.issues.opened` | `X-Gitea-Delivery` |
//! | `forgejo` | `X-Forgejo-Signature` (bare hex) | `X-Forgejo-Event` + `action` → `org.forgejo.push` | `X-Forgejo-Delivery` |
//! | `gitlab` | `X-Gitlab-Token` (shared token) | body `object_kind` + `object_attributes.action` → `com.gitlab.merge_request.open` | `Idempotency-Key`, else body hash |
//! | `gitlab-signing` | Standard Webhooks | as `gitlab` | `webhook-id` |
//! | `notion` | `X-Notion-Signature: sha256=`; handshake | body `type` → `com.notion.page.content_updated` | body `id` |
//! | `linear` | `Linear-Signature` + `webhookTimestamp` | body `type` + `action` → `com.linear.Issue.create` | `Linear-Delivery` |
//! | `plane` | `X-Plane-Signature` (bare hex) | `X-Plane-Event` + body `action` → `so.plane.issue.update` | body hash (`X-Plane-Delivery` changes per retry) |
//! | `jira` | `X-Hub-Signature: sha256=` | body `webhookEvent`, `jira:` stripped → `com.atlassian.jira.issue_created` | `X-Atlassian-Webhook-Identifier` |
//! | `confluence` | `X-Hub-Signature: sha256=` (Data Center) | body `event` → `com.atlassian.confluence.page_created` | body hash |
//! | `bookstack` | URL secret `?token=` | body `event` → `com.bookstackapp.page_update` | body hash (no id) |
//! | `jenkins` | URL secret `?token=` | body `build.phase` + `build.status` → `io.jenkins.build.COMPLETED.SUCCESS` | body hash |
//! | `woodpecker` | RFC 9421 ed25519, `woodpecker-ci-extensions` | `pipeline.event` → `org.woodpecker-ci.extension.push` | body hash |
//! | `standard-webhooks` | Standard Webhooks | body `type` → `com.standardwebhooks.user.created` | `webhook-id` |
//! | `stripe` | `Stripe-Signature` | body `type` → `com.stripe.invoice.paid` | body `id` (`evt_…`) |
//! | `slack` | `X-Slack-Signature`; `url_verification` | body `event.type` or `type` → `com.slack.message` | body `event_id` |
//!
//! GitHub Actions has no webhook channel of its own: `workflow_run`, `workflow_job`,
//! `check_run` and `check_suite` arrive through the `github` preset.
//!
//! Confluence *Cloud* has no signed admin webhooks; the `confluence` preset is for Data Center
//! 7.7+, whose `X-Hub-Signature` prefix is assumed to be `sha256=` like Jira's (unverified).
//!
//! # Notion's handshake
//!
//! When a Notion subscription is created, Notion POSTs an **unsigned** body
//! `{"verification_token": "secret_…"}`: the token must be pasted back into Notion's UI, and it
//! is also the HMAC key of every later delivery. [`verify`] returns
//! [`Outcome::Handshake`] for such a request only when the policy allows it: by default
//! ([`HandshakePolicy::WhenUnconfigured`]) only while the endpoint has **no secret yet**, so that
//! once the token is configured nobody can get an unsigned body past verification by dressing it
//! as a handshake. [`HandshakePolicy::Always`] keeps accepting it (for re-subscribing);
//! [`HandshakePolicy::Never`] treats it as an unsigned delivery. The host should surface the
//! token to the operator (log, admin API) and must not forward it as an event.

use alloc::borrow::Cow;
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use mosaic_core::http::Headers;
use mosaic_core::time::Instant;
use mosaic_core::webhook::{
    self as core_webhook, CloudEvent, EventSpec, Field, Handshake, NormalizeError, Rejection,
    Scheme, SignError, TimeField, TypePart, Verified,
};

/// A named webhook preset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preset {
    /// The scheme name used in configuration and on the command line, e.g. `github`.
    pub name: Cow<'static, str>,
    /// Who sends it, for humans.
    pub title: Cow<'static, str>,
    /// How deliveries are authenticated.
    pub scheme: Scheme,
    /// The provider's subscription handshake, if it has one.
    pub handshake: Option<Handshake>,
    /// Where the CloudEvents attributes come from.
    pub events: EventSpec,
}

const fn hdr(name: &'static str) -> Field {
    Field::header(name)
}
const fn ptr(pointer: &'static str) -> Field {
    Field::body(pointer)
}
const fn list<T: Clone>(items: &'static [T]) -> Cow<'static, [T]> {
    Cow::Borrowed(items)
}
const fn s(text: &'static str) -> Cow<'static, str> {
    Cow::Borrowed(text)
}
/// A `&'static` slice of values whose type has drop glue (`Cow`) cannot be borrowed from a
/// temporary inside a `static`; an inner `const` item can.
macro_rules! fields {
    ($($e:expr),* $(,)?) => {{
        const L: &[Field] = &[$($e),*];
        L
    }};
}
macro_rules! parts {
    ($($e:expr),* $(,)?) => {{
        const L: &[TypePart] = &[$($e),*];
        L
    }};
}
macro_rules! times {
    ($($e:expr),* $(,)?) => {{
        const L: &[TimeField] = &[$($e),*];
        L
    }};
}

const NONE: Cow<'static, [Field]> = Cow::Borrowed(&[]);
const NOW: Cow<'static, [TimeField]> = Cow::Borrowed(&[]);

const GIT_SUBJECT: &[Field] = &[
    ptr("/pull_request/number"),
    ptr("/issue/number"),
    ptr("/release/tag_name"),
    ptr("/ref"),
];

const GITLAB_TYPE: &[TypePart] = &[
    TypePart::required(fields![ptr("/object_kind"), ptr("/event_name"), hdr("X-Gitlab-Event")]),
    TypePart::optional(fields![ptr("/object_attributes/action")]),
];
const GITLAB_SOURCE: &[Field] = &[ptr("/project/web_url"), ptr("/repository/homepage")];
const GITLAB_SUBJECT: &[Field] = &[ptr("/object_attributes/iid"), ptr("/ref")];

/// Every preset, in the order of [`NAMES`].
pub static PRESETS: [Preset; 16] = [
    Preset {
        name: s("github"),
        title: s("GitHub (including GitHub Actions events)"),
        scheme: Scheme::hmac_sha256_hex("X-Hub-Signature-256", Some("sha256=")),
        handshake: None,
        events: EventSpec {
            type_prefix: s("com.github"),
            type_parts: list(parts![
                TypePart::required(fields![hdr("X-GitHub-Event")]),
                TypePart::optional(fields![ptr("/action")]),
            ]),
            delivery: list(fields![hdr("X-GitHub-Delivery")]),
            // Stable: a manual redelivery keeps the same GUID.
            dedup: list(fields![hdr("X-GitHub-Delivery")]),
            source: list(fields![ptr("/repository/html_url")]),
            subject: list(fields![
                ptr("/pull_request/number"),
                ptr("/issue/number"),
                ptr("/discussion/number"),
                ptr("/workflow_run/id"),
                ptr("/workflow_job/id"),
                ptr("/check_run/id"),
                ptr("/check_suite/id"),
                ptr("/release/tag_name"),
                ptr("/ref"),
            ]),
            time: NOW,
        },
    },
    Preset {
        name: s("gitea"),
        title: s("Gitea"),
        scheme: Scheme::hmac_sha256_hex("X-Gitea-Signature", None),
        handshake: None,
        events: EventSpec {
            type_prefix: s("io.gitea"),
            type_parts: list(parts![
                TypePart::required(fields![hdr("X-Gitea-Event"), hdr("X-Gogs-Event")]),
                TypePart::optional(fields![ptr("/action")]),
            ]),
            delivery: list(fields![hdr("X-Gitea-Delivery"), hdr("X-Gogs-Delivery")]),
            dedup: list(fields![hdr("X-Gitea-Delivery"), hdr("X-Gogs-Delivery")]),
            source: list(fields![ptr("/repository/html_url")]),
            subject: list(GIT_SUBJECT),
            time: NOW,
        },
    },
    Preset {
        name: s("forgejo"),
        title: s("Forgejo"),
        scheme: Scheme::hmac_sha256_hex("X-Forgejo-Signature", None),
        handshake: None,
        events: EventSpec {
            type_prefix: s("org.forgejo"),
            type_parts: list(parts![
                TypePart::required(fields![hdr("X-Forgejo-Event"), hdr("X-Gitea-Event")]),
                TypePart::optional(fields![ptr("/action")]),
            ]),
            delivery: list(fields![hdr("X-Forgejo-Delivery"), hdr("X-Gitea-Delivery")]),
            dedup: list(fields![hdr("X-Forgejo-Delivery"), hdr("X-Gitea-Delivery")]),
            source: list(fields![ptr("/repository/html_url")]),
            subject: list(GIT_SUBJECT),
            time: NOW,
        },
    },
    Preset {
        name: s("gitlab"),
        title: s("GitLab (secret token)"),
        scheme: Scheme::token_header("X-Gitlab-Token"),
        handshake: None,
        events: EventSpec {
            type_prefix: s("com.gitlab"),
            type_parts: list(GITLAB_TYPE),
            // Unique per request: traces this attempt.
            delivery: list(fields![hdr("X-Gitlab-Webhook-UUID"), hdr("Idempotency-Key")]),
            // Stable across retries (GitLab 17.4+); older GitLab: body hash.
            dedup: list(fields![hdr("Idempotency-Key")]),
            source: list(GITLAB_SOURCE),
            subject: list(GITLAB_SUBJECT),
            time: NOW,
        },
    },
    Preset {
        name: s("gitlab-signing"),
        title: s("GitLab (signing token, Standard Webhooks)"),
        scheme: Scheme::StandardWebhooks,
        handshake: None,
        events: EventSpec {
            type_prefix: s("com.gitlab"),
            type_parts: list(GITLAB_TYPE),
            delivery: list(fields![hdr("X-Gitlab-Webhook-UUID"), hdr("webhook-id")]),
            dedup: list(fields![hdr("webhook-id"), hdr("Idempotency-Key")]),
            source: list(GITLAB_SOURCE),
            subject: list(GITLAB_SUBJECT),
            time: NOW,
        },
    },
    Preset {
        name: s("notion"),
        title: s("Notion"),
        scheme: Scheme::hmac_sha256_hex("X-Notion-Signature", Some("sha256=")),
        handshake: Some(Handshake::NotionVerificationToken),
        events: EventSpec {
            type_prefix: s("com.notion"),
            type_parts: list(parts![TypePart::required(fields![ptr("/type")])]),
            delivery: list(fields![ptr("/id")]),
            dedup: list(fields![ptr("/id")]),
            source: NONE,
            subject: list(fields![ptr("/entity/id")]),
            time: list(times![TimeField::Rfc3339(s("/timestamp"))]),
        },
    },
    Preset {
        name: s("linear"),
        title: s("Linear"),
        scheme: Scheme::Linear,
        handshake: None,
        events: EventSpec {
            type_prefix: s("com.linear"),
            type_parts: list(parts![
                TypePart::required(fields![ptr("/type"), hdr("Linear-Event")]),
                TypePart::optional(fields![ptr("/action")]),
            ]),
            delivery: list(fields![hdr("Linear-Delivery")]),
            dedup: list(fields![hdr("Linear-Delivery")]),
            source: NONE,
            subject: list(fields![ptr("/data/identifier"), ptr("/data/id")]),
            time: list(times![
                TimeField::Rfc3339(s("/createdAt")),
                TimeField::UnixMillis(s("/webhookTimestamp")),
            ]),
        },
    },
    Preset {
        name: s("plane"),
        title: s("Plane"),
        scheme: Scheme::hmac_sha256_hex("X-Plane-Signature", None),
        handshake: None,
        events: EventSpec {
            type_prefix: s("so.plane"),
            type_parts: list(parts![
                TypePart::required(fields![hdr("X-Plane-Event"), ptr("/event")]),
                TypePart::optional(fields![ptr("/action")]),
            ]),
            // A fresh uuid4 per attempt: good for tracing, useless for dedup.
            delivery: list(fields![hdr("X-Plane-Delivery")]),
            dedup: NONE,
            source: NONE,
            subject: list(fields![ptr("/data/id")]),
            time: NOW,
        },
    },
    Preset {
        name: s("jira"),
        title: s("Jira Cloud"),
        scheme: Scheme::hmac_sha256_hex("X-Hub-Signature", Some("sha256=")),
        handshake: None,
        events: EventSpec {
            type_prefix: s("com.atlassian.jira"),
            type_parts: list(parts![TypePart::required_stripping(
                fields![ptr("/webhookEvent")],
                "jira:",
            )]),
            delivery: list(fields![hdr("X-Atlassian-Webhook-Identifier")]),
            dedup: list(fields![hdr("X-Atlassian-Webhook-Identifier")]),
            source: NONE,
            subject: list(fields![
                ptr("/issue/key"),
                ptr("/comment/id"),
                ptr("/sprint/id"),
                ptr("/project/key"),
            ]),
            time: list(times![TimeField::UnixMillis(s("/timestamp"))]),
        },
    },
    Preset {
        name: s("confluence"),
        title: s("Confluence Data Center"),
        scheme: Scheme::hmac_sha256_hex("X-Hub-Signature", Some("sha256=")),
        handshake: None,
        events: EventSpec {
            type_prefix: s("com.atlassian.confluence"),
            type_parts: list(parts![TypePart::required(fields![
                ptr("/event"),
                ptr("/eventType"),
                ptr("/webhookEvent"),
            ])]),
            delivery: NONE,
            dedup: NONE,
            source: NONE,
            subject: list(fields![
                ptr("/page/id"),
                ptr("/blog/id"),
                ptr("/comment/id"),
                ptr("/space/key"),
            ]),
            time: list(times![TimeField::UnixMillis(s("/timestamp"))]),
        },
    },
    Preset {
        name: s("bookstack"),
        title: s("BookStack (secret in the URL)"),
        scheme: Scheme::url_secret("token"),
        handshake: None,
        events: EventSpec {
            type_prefix: s("com.bookstackapp"),
            type_parts: list(parts![TypePart::required(fields![ptr("/event")])]),
            delivery: NONE,
            dedup: NONE,
            source: NONE,
            subject: list(fields![ptr("/related_item/id")]),
            time: list(times![TimeField::Rfc3339(s("/triggered_at"))]),
        },
    },
    Preset {
        name: s("jenkins"),
        title: s("Jenkins notifications (secret in the URL)"),
        scheme: Scheme::url_secret("token"),
        handshake: None,
        events: EventSpec {
            type_prefix: s("io.jenkins.build"),
            type_parts: list(parts![
                TypePart::optional(fields![ptr("/build/phase")]),
                TypePart::optional(fields![ptr("/build/status")]),
            ]),
            delivery: NONE,
            dedup: NONE,
            source: list(fields![ptr("/build/full_url")]),
            subject: list(fields![ptr("/name")]),
            time: NOW,
        },
    },
    Preset {
        name: s("woodpecker"),
        title: s("Woodpecker CI extension requests (RFC 9421, ed25519)"),
        scheme: Scheme::message_signature("woodpecker-ci-extensions"),
        handshake: None,
        events: EventSpec {
            type_prefix: s("org.woodpecker-ci.extension"),
            type_parts: list(parts![TypePart::optional(fields![ptr("/pipeline/event")])]),
            delivery: NONE,
            dedup: NONE,
            source: list(fields![ptr("/repo/forge_url")]),
            subject: list(fields![ptr("/repo/full_name")]),
            time: NOW,
        },
    },
    Preset {
        name: s("standard-webhooks"),
        title: s("Any Standard Webhooks sender"),
        scheme: Scheme::StandardWebhooks,
        handshake: None,
        events: EventSpec {
            type_prefix: s("com.standardwebhooks"),
            type_parts: list(parts![TypePart::required(fields![ptr("/type")])]),
            delivery: list(fields![hdr("webhook-id")]),
            dedup: list(fields![hdr("webhook-id")]),
            source: NONE,
            subject: NONE,
            time: list(times![TimeField::Rfc3339(s("/timestamp"))]),
        },
    },
    Preset {
        name: s("stripe"),
        title: s("Stripe"),
        scheme: Scheme::Stripe,
        handshake: None,
        events: EventSpec {
            type_prefix: s("com.stripe"),
            type_parts: list(parts![TypePart::required(fields![ptr("/type")])]),
            delivery: list(fields![ptr("/id")]),
            dedup: list(fields![ptr("/id")]),
            source: NONE,
            subject: list(fields![ptr("/data/object/id")]),
            time: list(times![TimeField::UnixSecs(s("/created"))]),
        },
    },
    Preset {
        name: s("slack"),
        title: s("Slack Events API"),
        scheme: Scheme::Slack,
        handshake: Some(Handshake::SlackUrlVerification),
        events: EventSpec {
            type_prefix: s("com.slack"),
            // Optional: interactive and slash-command posts are form-encoded, not JSON.
            type_parts: list(parts![TypePart::optional(fields![ptr("/event/type"), ptr("/type")])]),
            delivery: list(fields![ptr("/event_id")]),
            dedup: list(fields![ptr("/event_id")]),
            source: NONE,
            subject: list(fields![ptr("/event/channel")]),
            time: list(times![TimeField::UnixSecs(s("/event_time"))]),
        },
    },
];

/// Every preset name, as accepted in configuration and on the command line.
pub const NAMES: [&str; 16] = [
    "github",
    "gitea",
    "forgejo",
    "gitlab",
    "gitlab-signing",
    "notion",
    "linear",
    "plane",
    "jira",
    "confluence",
    "bookstack",
    "jenkins",
    "woodpecker",
    "standard-webhooks",
    "stripe",
    "slack",
];

/// The preset called `name` (exact, lowercase).
#[must_use]
pub fn preset_by_name(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name)
}

/// Every preset.
#[must_use]
pub fn presets() -> &'static [Preset] {
    &PRESETS
}

/// When an unsigned subscription handshake (Notion's) is accepted. See the
/// [module docs](self#notions-handshake).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum HandshakePolicy {
    /// Only while the endpoint has no secret configured (the default).
    #[default]
    WhenUnconfigured,
    /// Even when secrets are configured (to re-subscribe or rotate the token).
    Always,
    /// Never: a handshake body is verified like any delivery (and so rejected).
    Never,
}

/// Options of [`verify`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VerifyOptions {
    /// Replaces the scheme's replay tolerance (both directions).
    pub tolerance: Option<Duration>,
    /// When Notion's unsigned handshake is accepted.
    pub handshake: HandshakePolicy,
}

/// What a request to a webhook endpoint turned out to be.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub enum Outcome {
    /// A genuine delivery: dedup it, normalize it, answer 2xx, forward it.
    Verified(Verified),
    /// Notion's unsigned subscription handshake: surface `token` to the operator (it is the
    /// secret to configure), answer 200, forward nothing.
    Handshake {
        /// The `verification_token`.
        token: String,
    },
    /// Slack's signed `url_verification`: answer 200 with `challenge` as the body, forward
    /// nothing.
    Challenge {
        /// The challenge to echo.
        challenge: String,
        /// The verification that passed.
        verified: Verified,
    },
}

/// Verifies a request to a webhook endpoint that uses `preset`: [`mosaic_core::webhook::verify`]
/// plus the preset's handshake.
///
/// # Errors
///
/// A [`Rejection`] if the request is neither a genuine delivery nor an accepted handshake.
pub fn verify<H: Headers + ?Sized>(
    preset: &Preset,
    secrets: &[&[u8]],
    headers: &H,
    body: &[u8],
    target: Option<&str>,
    now: Instant,
    opts: &VerifyOptions,
) -> Result<Outcome, Rejection> {
    if let Some(hs) = preset.handshake.filter(|h| !h.is_signed()) {
        let allowed = match opts.handshake {
            HandshakePolicy::WhenUnconfigured => secrets.is_empty(),
            HandshakePolicy::Always => true,
            HandshakePolicy::Never => false,
        };
        let unsigned = preset
            .scheme
            .signature_header()
            .is_none_or(|h| headers.header(h).is_none());
        if allowed && unsigned {
            if let Some(token) = hs.detect(body) {
                return Ok(Outcome::Handshake { token });
            }
        }
    }
    let verified = core_webhook::verify(
        &preset.scheme,
        secrets,
        headers,
        body,
        target,
        now,
        opts.tolerance,
    )?;
    if let Some(hs) = preset.handshake.filter(|h| h.is_signed()) {
        if let Some(challenge) = hs.detect(body) {
            return Ok(Outcome::Challenge {
                challenge,
                verified,
            });
        }
    }
    Ok(Outcome::Verified(verified))
}

/// The headers `preset`'s provider would send: the scheme's signature headers
/// ([`mosaic_core::webhook::sign`]) plus the delivery-id header (set to `id`) and, if `event` is
/// given, the event-type header, where the preset reads those from headers.
///
/// For `linear` put a current `webhookTimestamp` (Unix ms) in the body before signing; for
/// `bookstack` and `jenkins` the secret goes in the URL, so this fails with
/// [`SignError::NotHeaderBased`].
///
/// # Errors
///
/// [`SignError`] as for [`mosaic_core::webhook::sign`].
pub fn sign(
    preset: &Preset,
    secret: &[u8],
    body: &[u8],
    target: Option<&str>,
    id: &str,
    event: Option<&str>,
    now: Instant,
) -> Result<Vec<(String, String)>, SignError> {
    let mut headers = core_webhook::sign(&preset.scheme, secret, body, target, id, now)?;
    let mut add = |fields: &[Field], value: &str| {
        if let Some(Field::Header(name)) = fields.first() {
            if headers.header(name).is_none() {
                headers.push((String::from(&**name), String::from(value)));
            }
        }
    };
    add(&preset.events.delivery, id);
    add(&preset.events.dedup, id);
    if let (Some(event), Some(part)) = (event, preset.events.type_parts.first()) {
        add(&part.from, event);
    }
    Ok(headers)
}

/// The CloudEvents 1.0 envelope of a verified delivery to an endpoint using `preset`; see
/// [`mosaic_core::webhook::normalize`]. `mosaicprovider` is the preset's name.
///
/// # Errors
///
/// [`NormalizeError::MissingEventType`] if the event type cannot be found.
pub fn normalize<H: Headers + ?Sized>(
    preset: &Preset,
    headers: &H,
    body: &[u8],
    now: Instant,
    tenant: &str,
    endpoint: &str,
) -> Result<CloudEvent, NormalizeError> {
    core_webhook::normalize(
        &preset.events,
        &preset.name,
        headers,
        body,
        now,
        tenant,
        endpoint,
    )
}

/// The dedup key of a delivery to an endpoint using `preset`: its stable delivery id, or
/// `sha256:<hex>` of the body for providers without one (Plane, BookStack, …).
#[must_use]
pub fn dedup_key<H: Headers + ?Sized>(preset: &Preset, headers: &H, body: &[u8]) -> String {
    core_webhook::dedup_key(&preset.events, headers, body)
}
