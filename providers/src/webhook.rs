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
    TypePart::required(fields![
        ptr("/object_kind"),
        ptr("/event_name"),
        hdr("X-Gitlab-Event")
    ]),
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
            delivery: list(fields![
                hdr("X-Gitlab-Webhook-UUID"),
                hdr("Idempotency-Key")
            ]),
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
            type_parts: list(parts![TypePart::optional(fields![
                ptr("/event/type"),
                ptr("/type")
            ])]),
            delivery: list(fields![ptr("/event_id")]),
            dedup: list(fields![ptr("/event_id")]),
            source: NONE,
            subject: list(fields![ptr("/event/channel")]),
            time: list(times![TimeField::UnixSecs(s("/event_time"))]),
        },
    },
];

/// Every preset name, as accepted in configuration and on the command line (core's list, so
/// config validation and the presets cannot drift apart; a test checks each name has a preset).
pub const NAMES: [&str; 16] = mosaic_core::config::WEBHOOK_SCHEMES;

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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::string::ToString;
    use alloc::vec;
    use mosaic_core::webhook::ed25519_public_key;
    use serde_json::Value;

    const T0: u64 = 1_614_556_800;
    fn now() -> Instant {
        Instant::from_secs(T0)
    }

    /// A realistic delivery for one preset and what normalization must make of it.
    struct Sample {
        preset: &'static str,
        /// Headers the provider sends besides the signature.
        headers: Vec<(&'static str, &'static str)>,
        body: String,
        ty: &'static str,
        source: &'static str,
        subject: Option<&'static str>,
        /// `None`: the body hash.
        id: Option<&'static str>,
        time: &'static str,
    }

    const NOW_RFC3339: &str = "2021-03-01T00:00:00Z";

    fn samples() -> Vec<Sample> {
        vec![
            Sample {
                preset: "github",
                headers: vec![
                    ("X-GitHub-Event", "pull_request"),
                    ("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
                    ("X-GitHub-Hook-ID", "292430182"),
                ],
                body: r#"{"action":"opened","number":2,"pull_request":{"number":2,"title":"Update the README"},"repository":{"full_name":"octo/hello","html_url":"https://github.com/octo/hello"},"sender":{"login":"octocat"}}"#.into(),
                ty: "com.github.pull_request.opened",
                source: "https://github.com/octo/hello",
                subject: Some("2"),
                id: Some("72d3162e-cc78-11e3-81ab-4c9367dc0958"),
                time: NOW_RFC3339,
            },
            Sample {
                preset: "github",
                headers: vec![
                    ("X-GitHub-Event", "workflow_run"),
                    ("X-GitHub-Delivery", "0b989ba4-242f-11e5-81e1-c7b6966d2516"),
                ],
                body: r#"{"action":"completed","workflow_run":{"id":30433642,"name":"Build","conclusion":"success"},"repository":{"html_url":"https://github.com/octo/hello"}}"#.into(),
                ty: "com.github.workflow_run.completed",
                source: "https://github.com/octo/hello",
                subject: Some("30433642"),
                id: Some("0b989ba4-242f-11e5-81e1-c7b6966d2516"),
                time: NOW_RFC3339,
            },
            Sample {
                preset: "github",
                headers: vec![("X-GitHub-Event", "push"), ("X-GitHub-Delivery", "d-push")],
                body: r#"{"ref":"refs/heads/main","before":"0000","after":"1111","repository":{"html_url":"https://github.com/octo/hello"}}"#.into(),
                ty: "com.github.push",
                source: "https://github.com/octo/hello",
                subject: Some("refs/heads/main"),
                id: Some("d-push"),
                time: NOW_RFC3339,
            },
            Sample {
                preset: "gitea",
                headers: vec![
                    ("X-Gitea-Event", "issues"),
                    ("X-Gitea-Event-Type", "issues"),
                    ("X-Gitea-Delivery", "f6266f16-1bf3-46a5-9ea4-602e06ead473"),
                ],
                body: r#"{"action":"opened","number":3,"issue":{"number":3,"title":"Bug"},"repository":{"full_name":"me/repo","html_url":"https://gitea.example/me/repo"}}"#.into(),
                ty: "io.gitea.issues.opened",
                source: "https://gitea.example/me/repo",
                subject: Some("3"),
                id: Some("f6266f16-1bf3-46a5-9ea4-602e06ead473"),
                time: NOW_RFC3339,
            },
            Sample {
                preset: "forgejo",
                headers: vec![
                    ("X-Forgejo-Event", "push"),
                    ("X-Forgejo-Delivery", "a1b2c3d4-0000-4000-8000-000000000001"),
                    ("X-Gitea-Event", "push"),
                ],
                body: r#"{"ref":"refs/heads/main","repository":{"html_url":"https://codeberg.org/me/repo"}}"#.into(),
                ty: "org.forgejo.push",
                source: "https://codeberg.org/me/repo",
                subject: Some("refs/heads/main"),
                id: Some("a1b2c3d4-0000-4000-8000-000000000001"),
                time: NOW_RFC3339,
            },
            Sample {
                preset: "gitlab",
                headers: vec![
                    ("X-Gitlab-Event", "Merge Request Hook"),
                    ("Idempotency-Key", "f8c2a6c3-4b1e-4a8e-9d1e-1f2a3b4c5d6e"),
                    ("X-Gitlab-Webhook-UUID", "9b4c3f3e-0000-4000-8000-0000000000aa"),
                ],
                body: r#"{"object_kind":"merge_request","event_type":"merge_request","project":{"id":1,"web_url":"https://gitlab.example.com/group/proj"},"object_attributes":{"iid":7,"action":"open","title":"MR"}}"#.into(),
                ty: "com.gitlab.merge_request.open",
                source: "https://gitlab.example.com/group/proj",
                subject: Some("7"),
                id: Some("f8c2a6c3-4b1e-4a8e-9d1e-1f2a3b4c5d6e"),
                time: NOW_RFC3339,
            },
            Sample {
                preset: "gitlab",
                // Before GitLab 17.4: no Idempotency-Key, so the body hash dedups.
                headers: vec![("X-Gitlab-Event", "Push Hook")],
                body: r#"{"object_kind":"push","ref":"refs/heads/main","project":{"web_url":"https://gitlab.example.com/group/proj"}}"#.into(),
                ty: "com.gitlab.push",
                source: "https://gitlab.example.com/group/proj",
                subject: Some("refs/heads/main"),
                id: None,
                time: NOW_RFC3339,
            },
            Sample {
                preset: "gitlab-signing",
                headers: vec![
                    ("X-Gitlab-Event", "Issue Hook"),
                    ("Idempotency-Key", "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"),
                ],
                body: r#"{"object_kind":"issue","project":{"web_url":"https://gitlab.example.com/g/p"},"object_attributes":{"iid":12,"action":"close"}}"#.into(),
                ty: "com.gitlab.issue.close",
                source: "https://gitlab.example.com/g/p",
                subject: Some("12"),
                id: Some("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"),
                time: NOW_RFC3339,
            },
            Sample {
                preset: "notion",
                headers: vec![],
                body: r#"{"id":"367cba44-b6f3-4c92-81e7-6a2e9659efd4","timestamp":"2024-12-05T23:55:34.285Z","workspace_id":"13950b26-c203-4f3b-b97d-93ec06319565","subscription_id":"29d75c0d-5546-4414-8459-7b7a92f1fc4b","integration_id":"0ef2e755-4912-8096-91c1-00376a88a5ca","type":"page.content_updated","authors":[{"id":"c7c11cca-1d73-471d-9b6e-bdef51470190","type":"person"}],"attempt_number":1,"entity":{"id":"153104cd-477e-809d-8dc4-ff2d96ae3090","type":"page"},"data":{"updated_blocks":[]}}"#.into(),
                ty: "com.notion.page.content_updated",
                source: "/hooks/ep",
                subject: Some("153104cd-477e-809d-8dc4-ff2d96ae3090"),
                id: Some("367cba44-b6f3-4c92-81e7-6a2e9659efd4"),
                time: "2024-12-05T23:55:34.285Z",
            },
            Sample {
                preset: "linear",
                headers: vec![
                    ("Linear-Delivery", "234d1a4e-b617-4388-90fe-adc3633d6b72"),
                    ("Linear-Event", "Issue"),
                ],
                body: format!(
                    r#"{{"action":"create","type":"Issue","createdAt":"2021-03-01T00:00:00.000Z","data":{{"id":"2174add1-f7c8-44e3-bbf3-2d60b5ea8bc9","identifier":"ENG-123","title":"Crash"}},"url":"https://linear.app/acme/issue/ENG-123","organizationId":"o1","webhookId":"w1","webhookTimestamp":{}}}"#,
                    T0 * 1000
                ),
                ty: "com.linear.Issue.create",
                source: "/hooks/ep",
                subject: Some("ENG-123"),
                id: Some("234d1a4e-b617-4388-90fe-adc3633d6b72"),
                time: "2021-03-01T00:00:00.000Z",
            },
            Sample {
                preset: "plane",
                headers: vec![
                    ("X-Plane-Event", "issue"),
                    ("X-Plane-Delivery", "5f3e6a2c-0d6b-4a9e-8f3c-1a2b3c4d5e6f"),
                    ("User-Agent", "Autopilot"),
                ],
                // Python json.dumps separators, exactly as Plane signs and sends.
                body: r#"{"event": "issue", "action": "update", "webhook_id": "w1", "workspace_id": "ws1", "data": {"id": "9d0a7c1e-1111-4222-8333-444455556666", "name": "Fix login"}, "activity": {"field": "state"}}"#.into(),
                ty: "so.plane.issue.update",
                source: "/hooks/ep",
                subject: Some("9d0a7c1e-1111-4222-8333-444455556666"),
                id: None,
                time: NOW_RFC3339,
            },
            Sample {
                preset: "jira",
                headers: vec![
                    ("X-Atlassian-Webhook-Identifier", "1786a2b3-9b04-4c62-8f1e-d2e1a0b1c2d3"),
                    ("X-Atlassian-Webhook-Flow", "Primary"),
                ],
                body: r#"{"timestamp":1614556800123,"webhookEvent":"jira:issue_created","issue_event_type_name":"issue_created","user":{"accountId":"5b10a2844c20165700ede21g"},"issue":{"id":"10001","key":"PROJ-1","self":"https://acme.atlassian.net/rest/api/2/issue/10001","fields":{"summary":"Broken"}}}"#.into(),
                ty: "com.atlassian.jira.issue_created",
                source: "/hooks/ep",
                subject: Some("PROJ-1"),
                id: Some("1786a2b3-9b04-4c62-8f1e-d2e1a0b1c2d3"),
                time: "2021-03-01T00:00:00.123000Z",
            },
            Sample {
                preset: "jira",
                headers: vec![("X-Atlassian-Webhook-Identifier", "c-1")],
                body: r#"{"timestamp":1614556800000,"webhookEvent":"comment_created","comment":{"id":"10100","body":"hi"},"issue":{"key":"PROJ-2"}}"#.into(),
                ty: "com.atlassian.jira.comment_created",
                source: "/hooks/ep",
                subject: Some("PROJ-2"),
                id: Some("c-1"),
                time: NOW_RFC3339,
            },
            Sample {
                preset: "confluence",
                headers: vec![],
                body: r#"{"timestamp":1614556800000,"event":"page_created","userAccountId":"u1","page":{"id":"1234","title":"Runbook","spaceKey":"OPS"}}"#.into(),
                ty: "com.atlassian.confluence.page_created",
                source: "/hooks/ep",
                subject: Some("1234"),
                id: None,
                time: NOW_RFC3339,
            },
            Sample {
                preset: "bookstack",
                headers: vec![],
                body: r#"{"event":"page_update","text":"Benny updated page \"My wonderful updated page\"","triggered_at":"2021-12-11T22:25:10.000000Z","triggered_by":{"id":1,"name":"Benny"},"triggered_by_profile_url":"https://bookstack.local/user/benny","webhook_id":1,"webhook_name":"My Webhook","url":"https://bookstack.local/books/my-awesome-book/page/my-wonderful-updated-page","related_item":{"id":2432,"book_id":13,"name":"My wonderful updated page"}}"#.into(),
                ty: "com.bookstackapp.page_update",
                source: "/hooks/ep",
                subject: Some("2432"),
                id: None,
                time: "2021-12-11T22:25:10.000000Z",
            },
            Sample {
                preset: "jenkins",
                headers: vec![],
                body: r#"{"name":"deploy","url":"job/deploy/","build":{"full_url":"https://ci.example/job/deploy/12/","number":12,"phase":"COMPLETED","status":"SUCCESS"}}"#.into(),
                ty: "io.jenkins.build.COMPLETED.SUCCESS",
                source: "https://ci.example/job/deploy/12/",
                subject: Some("deploy"),
                id: None,
                time: NOW_RFC3339,
            },
            Sample {
                preset: "woodpecker",
                headers: vec![],
                body: r#"{"repo":{"full_name":"me/app","forge_url":"https://codeberg.org/me/app"},"pipeline":{"event":"push","branch":"main","commit":"abc"},"netrc":null}"#.into(),
                ty: "org.woodpecker-ci.extension.push",
                source: "https://codeberg.org/me/app",
                subject: Some("me/app"),
                id: None,
                time: NOW_RFC3339,
            },
            Sample {
                preset: "standard-webhooks",
                headers: vec![],
                body: r#"{"type":"contact.created","timestamp":"2022-11-03T20:26:10.344522Z","data":{"id":"1f81eb52-5198-4599-803e-771906343485"}}"#.into(),
                ty: "com.standardwebhooks.contact.created",
                source: "/hooks/ep",
                subject: None,
                id: Some("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"),
                time: "2022-11-03T20:26:10.344522Z",
            },
            Sample {
                preset: "stripe",
                headers: vec![],
                body: r#"{"id":"evt_1NG8Du2eZvKYlo2CUI79vXWy","object":"event","api_version":"2022-11-15","created":1614556800,"type":"invoice.paid","livemode":false,"data":{"object":{"id":"in_1NG8Du2eZvKYlo2C","object":"invoice","amount_paid":2000}}}"#.into(),
                ty: "com.stripe.invoice.paid",
                source: "/hooks/ep",
                subject: Some("in_1NG8Du2eZvKYlo2C"),
                id: Some("evt_1NG8Du2eZvKYlo2CUI79vXWy"),
                time: NOW_RFC3339,
            },
            Sample {
                preset: "slack",
                headers: vec![("X-Slack-Retry-Num", "1")],
                body: r#"{"token":"XXYYZZ","team_id":"T123ABC456","api_app_id":"A123ABC456","event":{"type":"message","channel":"C123ABC456","user":"U123ABC456","text":"hello","ts":"1614556800.000100"},"type":"event_callback","event_id":"Ev123ABC456","event_time":1614556800}"#.into(),
                ty: "com.slack.message",
                source: "/hooks/ep",
                subject: Some("C123ABC456"),
                id: Some("Ev123ABC456"),
                time: NOW_RFC3339,
            },
        ]
    }

    /// (signing secret, verifying secret) for a preset.
    fn secrets(p: &Preset) -> (Vec<u8>, Vec<u8>) {
        match p.scheme {
            Scheme::StandardWebhooks => (
                b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_vec(),
                b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_vec(),
            ),
            Scheme::MessageSignature { .. } => {
                let seed = "0b".repeat(32).into_bytes();
                let pk = ed25519_public_key(&seed).unwrap().into_bytes();
                (seed, pk)
            }
            _ => (
                format!("{}-secret", p.name).into_bytes(),
                format!("{}-secret", p.name).into_bytes(),
            ),
        }
    }

    struct Request {
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        target: String,
    }

    /// The request the provider would send for `s`.
    fn request(s: &Sample, signing: &[u8]) -> Request {
        let p = preset_by_name(s.preset).unwrap();
        let mut headers: Vec<(String, String)> = s
            .headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        headers.push(("Content-Type".into(), "application/json".into()));
        let mut target = String::from("/hooks/ep");
        // Only the scheme's own headers: the sample says which id headers the provider sends.
        match core_webhook::sign(
            &p.scheme,
            signing,
            s.body.as_bytes(),
            Some(&target),
            s.id.unwrap_or("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"),
            now(),
        ) {
            Ok(signed) => {
                for (n, v) in signed {
                    if headers.header(&n).is_none() {
                        headers.push((n, v));
                    }
                }
            }
            Err(SignError::NotHeaderBased { param }) => {
                target = format!(
                    "{target}?{param}={}",
                    core::str::from_utf8(signing).unwrap()
                );
            }
            Err(e) => panic!("{}: {e}", s.preset),
        }
        Request {
            headers,
            body: s.body.clone().into_bytes(),
            target,
        }
    }

    fn check(p: &Preset, secret: &[u8], r: &Request) -> Result<Outcome, Rejection> {
        verify(
            p,
            &[secret],
            &r.headers,
            &r.body,
            Some(&r.target),
            now(),
            &VerifyOptions::default(),
        )
    }

    #[test]
    fn names_are_the_cli_interface() {
        assert_eq!(
            NAMES,
            [
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
            ]
        );
        for (name, p) in NAMES.iter().zip(presets()) {
            assert_eq!(p.name, *name);
            assert!(core::ptr::eq(preset_by_name(name).unwrap(), p));
            assert!(!p.title.is_empty());
        }
        assert!(preset_by_name("GitHub").is_none());
        assert!(preset_by_name("github-actions").is_none());
        assert!(preset_by_name("").is_none());
    }

    #[test]
    fn every_preset_has_a_realistic_sample() {
        for name in NAMES {
            assert!(samples().iter().any(|s| s.preset == name), "{name}");
        }
    }

    #[test]
    fn presets_use_the_documented_schemes() {
        let scheme = |n| &preset_by_name(n).unwrap().scheme;
        assert_eq!(
            scheme("github").signature_header(),
            Some("X-Hub-Signature-256")
        );
        assert_eq!(
            scheme("gitea").signature_header(),
            Some("X-Gitea-Signature")
        );
        assert_eq!(
            scheme("forgejo").signature_header(),
            Some("X-Forgejo-Signature")
        );
        assert_eq!(
            scheme("plane").signature_header(),
            Some("X-Plane-Signature")
        );
        assert_eq!(scheme("jira").signature_header(), Some("X-Hub-Signature"));
        assert_eq!(
            scheme("notion").signature_header(),
            Some("X-Notion-Signature")
        );
        assert_eq!(scheme("gitlab"), &Scheme::token_header("X-Gitlab-Token"));
        assert_eq!(scheme("gitlab-signing"), &Scheme::StandardWebhooks);
        assert_eq!(scheme("bookstack"), &Scheme::url_secret("token"));
        assert_eq!(scheme("jenkins"), &Scheme::url_secret("token"));
        assert_eq!(
            scheme("woodpecker"),
            &Scheme::message_signature("woodpecker-ci-extensions")
        );
        assert_eq!(scheme("linear"), &Scheme::Linear);
        assert_eq!(scheme("stripe"), &Scheme::Stripe);
        assert_eq!(scheme("slack"), &Scheme::Slack);
        // Nothing uses SHA-1 unless configured explicitly.
        assert!(presets().iter().all(|p| p.scheme.kind() != "hmac-sha1-hex"));
        // The GitHub vector through the preset (reference B.1 #1).
        let headers = [(
            "X-Hub-Signature-256",
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        )];
        let r = verify(
            preset_by_name("github").unwrap(),
            &[b"It's a Secret to Everybody"],
            &headers[..],
            b"Hello, World!",
            None,
            now(),
            &VerifyOptions::default(),
        );
        assert!(matches!(r, Ok(Outcome::Verified(_))), "{r:?}");
    }

    #[test]
    fn every_preset_signs_verifies_and_normalizes_its_sample() {
        for s in samples() {
            let p = preset_by_name(s.preset).unwrap();
            let (signing, verifying) = secrets(p);
            let r = request(&s, &signing);
            let outcome = check(p, &verifying, &r).unwrap_or_else(|e| panic!("{}: {e}", s.preset));
            assert!(
                matches!(outcome, Outcome::Verified(_)),
                "{}: {outcome:?}",
                s.preset
            );

            let ev = normalize(p, &r.headers, &r.body, now(), "acme", "ep")
                .unwrap_or_else(|e| panic!("{}: {e}", s.preset));
            let v: Value = serde_json::from_slice(&ev.to_json().unwrap()).unwrap();
            assert_eq!(v["specversion"], "1.0", "{}", s.preset);
            assert_eq!(v["type"], s.ty, "{}", s.preset);
            assert_eq!(v["source"], s.source, "{}", s.preset);
            assert_eq!(v["subject"].as_str(), s.subject, "{}", s.preset);
            assert_eq!(v["time"], s.time, "{}", s.preset);
            assert_eq!(v["datacontenttype"], "application/json", "{}", s.preset);
            assert_eq!(
                v["data"],
                serde_json::from_str::<Value>(&s.body).unwrap(),
                "{}",
                s.preset
            );
            assert_eq!(v["mosaictenant"], "acme");
            assert_eq!(v["mosaicprovider"], s.preset);
            let body_hash = mosaic_core::webhook::body_key(s.body.as_bytes());
            let want_id = s.id.map_or(body_hash.clone(), String::from);
            assert_eq!(v["id"], want_id.as_str(), "{}", s.preset);
            assert_eq!(dedup_key(p, &r.headers, &r.body), want_id, "{}", s.preset);
        }
    }

    #[test]
    fn every_preset_rejects_wrong_secrets_and_signed_tampering() {
        for s in samples() {
            let p = preset_by_name(s.preset).unwrap();
            let (signing, verifying) = secrets(p);
            let r = request(&s, &signing);
            // Wrong secret (for ed25519: a key that does not match).
            let wrong = match p.scheme {
                Scheme::MessageSignature { .. } => {
                    ed25519_public_key(&[12u8; 32]).unwrap().into_bytes()
                }
                Scheme::StandardWebhooks => {
                    b"whsec_c2VjcmV0LW9mLWEtcm90YXRlZC1lbmRwb2ludA==".to_vec()
                }
                _ => b"wrong".to_vec(),
            };
            let e = check(p, &wrong, &r).unwrap_err();
            assert_eq!(e.code(), "bad-signature", "{}", s.preset);
            // Rotation: the right secret second.
            let rotated = verify(
                p,
                &[&wrong, &verifying],
                &r.headers,
                &r.body,
                Some(&r.target),
                now(),
                &VerifyOptions::default(),
            );
            assert!(
                matches!(rotated, Ok(Outcome::Verified(v)) if v.key_index == 1),
                "{}: {rotated:?}",
                s.preset
            );
            // Tampered body.
            let mut t = Request {
                headers: r.headers.clone(),
                body: r.body.clone(),
                target: r.target.clone(),
            };
            let last = t.body.len() - 2;
            t.body[last] ^= 0x01;
            let got = check(p, &verifying, &t);
            if p.scheme.authenticates_body() {
                assert!(got.is_err(), "{}", s.preset);
            } else {
                assert!(
                    got.is_ok(),
                    "{}: a bare token cannot protect the body",
                    s.preset
                );
            }
            // Unsigned.
            let mut u = Request {
                headers: r.headers.clone(),
                body: r.body.clone(),
                target: r.target.clone(),
            };
            match p.scheme.signature_header() {
                Some(h) => u.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(h)),
                None => u.target = String::from("/hooks/ep"),
            }
            assert_eq!(
                check(p, &verifying, &u).unwrap_err().code(),
                "missing-signature",
                "{}",
                s.preset
            );
        }
    }

    #[test]
    fn timestamped_presets_reject_replays() {
        for s in samples() {
            let p = preset_by_name(s.preset).unwrap();
            let Some(tol) = p.scheme.default_tolerance() else {
                continue;
            };
            let (signing, verifying) = secrets(p);
            let r = request(&s, &signing);
            let late = now() + tol + Duration::from_secs(1);
            let e = verify(
                p,
                &[&verifying],
                &r.headers,
                &r.body,
                Some(&r.target),
                late,
                &VerifyOptions::default(),
            )
            .unwrap_err();
            assert_eq!(e.code(), "stale-timestamp", "{}", s.preset);
            let early = now().saturating_sub(tol + Duration::from_secs(1));
            let e = verify(
                p,
                &[&verifying],
                &r.headers,
                &r.body,
                Some(&r.target),
                early,
                &VerifyOptions::default(),
            )
            .unwrap_err();
            assert_eq!(e.code(), "future-timestamp", "{}", s.preset);
            // A configured tolerance wins.
            let opts = VerifyOptions {
                tolerance: Some(tol * 10),
                ..VerifyOptions::default()
            };
            assert!(verify(
                p,
                &[&verifying],
                &r.headers,
                &r.body,
                Some(&r.target),
                late,
                &opts
            )
            .is_ok());
        }
    }

    #[test]
    fn plane_retries_dedup_by_body_not_by_delivery_header() {
        let p = preset_by_name("plane").unwrap();
        let body = br#"{"event": "issue", "action": "create", "data": {"id": "x"}}"#;
        let first = [
            ("X-Plane-Event", "issue"),
            ("X-Plane-Delivery", "attempt-1"),
        ];
        let retry = [
            ("X-Plane-Event", "issue"),
            ("X-Plane-Delivery", "attempt-2"),
        ];
        assert_eq!(
            dedup_key(p, &first[..], body),
            dedup_key(p, &retry[..], body)
        );
        let a = normalize(p, &first[..], body, now(), "t", "ep").unwrap();
        let b = normalize(p, &retry[..], body, now(), "t", "ep").unwrap();
        assert_eq!(a.id, b.id);
        assert_eq!(
            (a.delivery.as_str(), b.delivery.as_str()),
            ("attempt-1", "attempt-2")
        );
        // BookStack has no id at all.
        let bs = preset_by_name("bookstack").unwrap();
        assert!(dedup_key(bs, &[("X", "y")][..], b"{}").starts_with("sha256:"));
    }

    #[test]
    fn sign_adds_delivery_and_event_headers() {
        let p = preset_by_name("github").unwrap();
        let h = sign(p, b"s", b"{}", None, "d-1", Some("ping"), now()).unwrap();
        assert_eq!(h.header("X-GitHub-Delivery"), Some("d-1"));
        assert_eq!(h.header("X-GitHub-Event"), Some("ping"));
        assert!(h.header("X-Hub-Signature-256").is_some());
        let ev = normalize(p, &h, b"{}", now(), "t", "ep").unwrap();
        assert_eq!(ev.ty, "com.github.ping");
        // Standard Webhooks already sends webhook-id: not duplicated.
        let p = preset_by_name("standard-webhooks").unwrap();
        let h = sign(
            p,
            b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            b"{}",
            None,
            "msg_1",
            None,
            now(),
        )
        .unwrap();
        assert_eq!(h.header_all("webhook-id").count(), 1);
        // Body-typed presets have no event header to add.
        let p = preset_by_name("stripe").unwrap();
        let h = sign(p, b"whsec_x", b"{}", None, "evt", Some("ignored"), now()).unwrap();
        assert_eq!(h.len(), 1);
        // URL-secret presets cannot be signed into headers.
        let e = sign(
            preset_by_name("bookstack").unwrap(),
            b"s",
            b"{}",
            None,
            "i",
            None,
            now(),
        );
        assert_eq!(e.unwrap_err().code(), "not-header-based");
    }

    const NOTION_HANDSHAKE: &[u8] =
        br#"{"verification_token":"secret_tMrlL1qK5vuQAh1b6cZGhFChZTSYJlce98V0pYn7yBl"}"#;

    #[test]
    fn notion_handshake_only_while_unconfigured_by_default() {
        let p = preset_by_name("notion").unwrap();
        let headers = [("Content-Type", "application/json")];
        let run = |secrets: &[&[u8]], policy| {
            verify(
                p,
                secrets,
                &headers[..],
                NOTION_HANDSHAKE,
                None,
                now(),
                &VerifyOptions {
                    tolerance: None,
                    handshake: policy,
                },
            )
        };
        let token = "secret_tMrlL1qK5vuQAh1b6cZGhFChZTSYJlce98V0pYn7yBl".to_string();
        assert_eq!(
            run(&[], HandshakePolicy::WhenUnconfigured),
            Ok(Outcome::Handshake {
                token: token.clone()
            })
        );
        // Once a secret is configured, an unsigned body is not let through.
        assert_eq!(
            run(&[b"secret_x"], HandshakePolicy::WhenUnconfigured)
                .unwrap_err()
                .code(),
            "missing-signature"
        );
        assert_eq!(
            run(&[b"secret_x"], HandshakePolicy::Always),
            Ok(Outcome::Handshake { token })
        );
        assert_eq!(
            run(&[], HandshakePolicy::Never).unwrap_err().code(),
            "no-secret-configured"
        );
        // A body with anything besides the token is an event, not a handshake.
        let event = br#"{"verification_token":"x","type":"page.created"}"#;
        let r = verify(
            p,
            &[],
            &headers[..],
            event,
            None,
            now(),
            &VerifyOptions::default(),
        );
        assert_eq!(r.unwrap_err().code(), "no-secret-configured");
        // A signed request is verified as a delivery even if it looks like a handshake.
        let signed = [("X-Notion-Signature", "sha256=00")];
        let r = verify(
            p,
            &[],
            &signed[..],
            NOTION_HANDSHAKE,
            None,
            now(),
            &VerifyOptions::default(),
        );
        assert_eq!(r.unwrap_err().code(), "no-secret-configured");
        // And the token then works as the HMAC key of real deliveries.
        let key = b"secret_tMrlL1qK5vuQAh1b6cZGhFChZTSYJlce98V0pYn7yBl";
        let body = br#"{"id":"e1","type":"page.created","entity":{"id":"p1","type":"page"}}"#;
        let h = sign(p, key, body, None, "e1", None, now()).unwrap();
        assert!(matches!(
            verify(p, &[key], &h, body, None, now(), &VerifyOptions::default()),
            Ok(Outcome::Verified(_))
        ));
    }

    #[test]
    fn slack_url_verification_is_a_signed_challenge() {
        let p = preset_by_name("slack").unwrap();
        let body = br#"{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
        let h = sign(p, b"slack-secret", body, None, "", None, now()).unwrap();
        let r = verify(
            p,
            &[b"slack-secret"],
            &h,
            body,
            None,
            now(),
            &VerifyOptions::default(),
        );
        assert!(
            matches!(&r, Ok(Outcome::Challenge { challenge, .. }) if challenge == "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"),
            "{r:?}"
        );
        // Unsigned, it is rejected like anything else.
        let r = verify(
            p,
            &[b"slack-secret"],
            &[("X", "y")][..],
            body,
            None,
            now(),
            &VerifyOptions::default(),
        );
        assert_eq!(r.unwrap_err().code(), "missing-signature");
        // Slash commands are form-encoded: still normalized, as data_base64.
        let form = b"command=%2Fweather&text=94070";
        let ev = normalize(
            p,
            &[("Content-Type", "application/x-www-form-urlencoded")][..],
            form,
            now(),
            "t",
            "ep",
        )
        .unwrap();
        assert_eq!(ev.ty, "com.slack");
        assert_eq!(
            ev.datacontenttype(),
            Some("application/x-www-form-urlencoded")
        );
    }

    #[test]
    fn missing_event_type_is_reported() {
        let p = preset_by_name("github").unwrap();
        let e = normalize(
            p,
            &[("X-GitHub-Delivery", "d")][..],
            b"{}",
            now(),
            "t",
            "ep",
        )
        .unwrap_err();
        assert_eq!(e.code(), "missing-event-type");
        assert!(e.to_string().contains("X-GitHub-Event"));
    }
}
