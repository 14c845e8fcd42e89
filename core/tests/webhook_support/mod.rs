//! Fixtures shared by the webhook tests: one per scheme, each able to sign a delivery the way
//! the provider would and to say which header carries the credential.
#![allow(dead_code, clippy::unwrap_used)]
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

use std::time::Duration;

use mosaic_core::time::Instant;
use mosaic_core::webhook::{ed25519_public_key, sign, verify, Rejection, Scheme, Verified};

pub type HeaderList = Vec<(String, String)>;

/// A fixed "now" for tests: 2021-03-01T00:00:00Z.
pub const T0: u64 = 1_614_556_800;

pub fn at(secs: u64) -> Instant {
    Instant::from_secs(secs)
}

/// One scheme under test, with two unrelated credentials.
#[derive(Clone, Debug)]
pub struct Fixture {
    pub name: &'static str,
    pub scheme: Scheme,
    /// What the provider signs with.
    pub signing: Vec<u8>,
    /// What we verify with (differs from `signing` only for ed25519 schemes).
    pub verifying: Vec<u8>,
    /// An unrelated credential pair.
    pub other_signing: Vec<u8>,
    pub other_verifying: Vec<u8>,
}

/// A delivery as it reaches us.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub headers: HeaderList,
    pub body: Vec<u8>,
    pub target: String,
}

pub const TARGET: &str = "/hooks/demo";

fn seed_hex(byte: u8) -> Vec<u8> {
    hex::encode([byte; 32]).into_bytes()
}

fn pk(seed: &[u8]) -> Vec<u8> {
    ed25519_public_key(seed).unwrap().into_bytes()
}

/// Fixtures and a genuine delivery of each, built once (ed25519 is slow in debug builds).
pub fn cached() -> &'static [(Fixture, Delivery)] {
    static CACHE: std::sync::LazyLock<Vec<(Fixture, Delivery)>> = std::sync::LazyLock::new(|| {
        fixtures()
            .into_iter()
            .map(|fx| {
                let d = fx.deliver(T0);
                (fx, d)
            })
            .collect()
    });
    &CACHE
}

/// Whether signing with this fixture is expensive (ed25519).
pub fn is_asymmetric(fx: &Fixture) -> bool {
    fx.signing != fx.verifying
}

pub fn fixtures() -> Vec<Fixture> {
    let sym = |name, scheme, a: &str, b: &str| Fixture {
        name,
        scheme,
        signing: a.as_bytes().to_vec(),
        verifying: a.as_bytes().to_vec(),
        other_signing: b.as_bytes().to_vec(),
        other_verifying: b.as_bytes().to_vec(),
    };
    let whsk_a = format!("whsk_{}", base64_std(&[3u8; 32]));
    let whsk_b = format!("whsk_{}", base64_std(&[4u8; 32]));
    vec![
        sym(
            "hmac-sha256-prefixed",
            Scheme::hmac_sha256_hex("X-Hub-Signature-256", Some("sha256=")),
            "It's a Secret to Everybody",
            "another secret",
        ),
        sym(
            "hmac-sha256-bare",
            Scheme::hmac_sha256_hex("X-Gitea-Signature", None),
            "gitea-secret",
            "another secret",
        ),
        sym(
            "hmac-sha1",
            Scheme::HmacSha1Hex {
                header: "X-Hub-Signature".into(),
                prefix: Some("sha1=".into()),
            },
            "legacy-secret",
            "another secret",
        ),
        sym(
            "standard-webhooks-v1",
            Scheme::StandardWebhooks,
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_c2VjcmV0LW9mLWEtcm90YXRlZC1lbmRwb2ludA==",
        ),
        Fixture {
            name: "standard-webhooks-v1a",
            scheme: Scheme::StandardWebhooks,
            signing: whsk_a.clone().into_bytes(),
            verifying: pk(whsk_a.as_bytes()),
            other_signing: whsk_b.clone().into_bytes(),
            other_verifying: pk(whsk_b.as_bytes()),
        },
        sym(
            "stripe",
            Scheme::Stripe,
            "whsec_test_secret",
            "whsec_other_secret",
        ),
        sym(
            "slack",
            Scheme::Slack,
            "8f742231b10e8888abcd99yyyzzz85a5",
            "another secret",
        ),
        sym(
            "linear",
            Scheme::Linear,
            "lin_wh_signing_secret",
            "another secret",
        ),
        sym(
            "token-header",
            Scheme::token_header("X-Gitlab-Token"),
            "glpat-webhook-token",
            "another-token",
        ),
        sym(
            "url-secret",
            Scheme::url_secret("token"),
            "s3cr3t-T0ken",
            "another-token",
        ),
        Fixture {
            name: "message-signature",
            scheme: Scheme::message_signature("woodpecker-ci-extensions"),
            signing: seed_hex(5),
            verifying: pk(&seed_hex(5)),
            other_signing: seed_hex(6),
            other_verifying: pk(&seed_hex(6)),
        },
    ]
}

pub fn base64_std(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

impl Fixture {
    /// Whether the scheme signs a timestamp (and so has a replay window).
    pub fn timestamped(&self) -> bool {
        self.scheme.default_tolerance().is_some()
    }

    /// A realistic body signed at `signed_at` (Linear carries its timestamp in the body).
    pub fn body(&self, signed_at: u64) -> Vec<u8> {
        if matches!(self.scheme, Scheme::Linear) {
            format!(
                r#"{{"action":"create","type":"Issue","data":{{"id":"9a1"}},"webhookTimestamp":{}}}"#,
                signed_at * 1000
            )
            .into_bytes()
        } else {
            br#"{"action":"opened","number":42,"repository":{"full_name":"octo/demo"}}"#.to_vec()
        }
    }

    /// The delivery the provider would send with `body`, signed with `secret` at `signed_at`.
    pub fn deliver_with(&self, secret: &[u8], body: Vec<u8>, signed_at: u64) -> Delivery {
        if let Scheme::UrlSecret { param } = &self.scheme {
            let token = std::str::from_utf8(secret).unwrap();
            return Delivery {
                headers: vec![("Content-Type".into(), "application/json".into())],
                body,
                target: format!("{TARGET}?a=1&{param}={token}"),
            };
        }
        let mut headers = sign(
            &self.scheme,
            secret,
            &body,
            Some(TARGET),
            "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
            at(signed_at),
        )
        .unwrap();
        headers.push(("Content-Type".into(), "application/json".into()));
        Delivery {
            headers,
            body,
            target: TARGET.into(),
        }
    }

    /// A genuine delivery signed at `signed_at`.
    pub fn deliver(&self, signed_at: u64) -> Delivery {
        self.deliver_with(&self.signing.clone(), self.body(signed_at), signed_at)
    }

    /// Verifies `d` at `now` against `secrets`.
    pub fn check(&self, secrets: &[&[u8]], d: &Delivery, now: u64) -> Result<Verified, Rejection> {
        self.check_with(secrets, d, now, None)
    }

    pub fn check_with(
        &self,
        secrets: &[&[u8]],
        d: &Delivery,
        now: u64,
        tolerance: Option<Duration>,
    ) -> Result<Verified, Rejection> {
        verify(
            &self.scheme,
            secrets,
            &d.headers,
            &d.body,
            Some(&d.target),
            at(now),
            tolerance,
        )
    }

    /// The header (or query parameter) that carries the signature or token.
    pub fn credential_header(&self) -> Option<&str> {
        self.scheme.signature_header()
    }
}

/// `headers` without `name` (case-insensitive).
pub fn without(headers: &HeaderList, name: &str) -> HeaderList {
    headers
        .iter()
        .filter(|(n, _)| !n.eq_ignore_ascii_case(name))
        .cloned()
        .collect()
}

/// `headers` with `name` set to `value`.
pub fn replaced(headers: &HeaderList, name: &str, value: &str) -> HeaderList {
    let mut out = without(headers, name);
    out.push((name.to_string(), value.to_string()));
    out
}

/// The value of `name` in `headers`.
pub fn value<'a>(headers: &'a HeaderList, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

pub fn code<T>(r: Result<T, Rejection>) -> &'static str {
    match r {
        Ok(_) => "accepted",
        Err(e) => e.code(),
    }
}
