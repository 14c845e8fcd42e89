//! Why a delivery was refused, and why a delivery could not be signed.

use alloc::borrow::Cow;
use core::fmt;

/// Why a webhook delivery was not accepted as genuine.
///
/// Each variant has a stable [`code`](Rejection::code) for metrics, logs and problem+json
/// `type`s, and a human message ([`Display`](fmt::Display)) naming the header or field involved.
/// Neither ever contains secret material, the received signature or the expected one: a message
/// may be shown to whoever sent the request.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    /// The endpoint has no secret (or key) configured, so nothing can be verified.
    NoSecretConfigured,
    /// A configured secret cannot be used with this scheme (e.g. a Standard Webhooks secret that
    /// is not base64, or a public key of the wrong length). `index` is its position in the list.
    MalformedSecret {
        /// Position of the faulty secret in the list passed to `verify`.
        index: usize,
        /// What is wrong with it (never the secret itself).
        reason: &'static str,
    },
    /// The scheme signs the request target (path and query) but the host did not pass it.
    MissingTarget,
    /// The header (or query parameter) carrying the signature or token is absent or empty.
    MissingSignature {
        /// Header name, or `?name` for a query parameter.
        header: Cow<'static, str>,
    },
    /// The signature header is present but cannot be parsed.
    MalformedSignature {
        /// Header name, or `?name` for a query parameter.
        header: Cow<'static, str>,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The signature (or token) is well formed but matches none of the configured secrets.
    BadSignature {
        /// Header name, or `?name` for a query parameter.
        header: Cow<'static, str>,
    },
    /// The signed timestamp is absent.
    MissingTimestamp {
        /// Header name or body field that should carry it.
        field: Cow<'static, str>,
    },
    /// The signed timestamp cannot be parsed.
    MalformedTimestamp {
        /// Header name or body field that carries it.
        field: Cow<'static, str>,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The signed timestamp is older than the tolerance allows (a replay, or a very late retry).
    StaleTimestamp {
        /// How old it is, in whole seconds.
        age_secs: u64,
        /// The tolerance that applied, in whole seconds.
        tolerance_secs: u64,
    },
    /// The signed timestamp is further in the future than the tolerance allows.
    FutureTimestamp {
        /// How far ahead it is, in whole seconds.
        ahead_secs: u64,
        /// The tolerance that applied, in whole seconds.
        tolerance_secs: u64,
    },
    /// The body does not match the signed `Content-Digest`.
    BadDigest,
}

impl Rejection {
    /// The stable, machine-readable code: lowercase words joined by `-`.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            Rejection::NoSecretConfigured => "no-secret-configured",
            Rejection::MalformedSecret { .. } => "malformed-secret",
            Rejection::MissingTarget => "missing-target",
            Rejection::MissingSignature { .. } => "missing-signature",
            Rejection::MalformedSignature { .. } => "malformed-signature",
            Rejection::BadSignature { .. } => "bad-signature",
            Rejection::MissingTimestamp { .. } => "missing-timestamp",
            Rejection::MalformedTimestamp { .. } => "malformed-timestamp",
            Rejection::StaleTimestamp { .. } => "stale-timestamp",
            Rejection::FutureTimestamp { .. } => "future-timestamp",
            Rejection::BadDigest => "bad-digest",
        }
    }

    /// Every code [`code`](Rejection::code) can return.
    pub const CODES: [&'static str; 11] = [
        "no-secret-configured",
        "malformed-secret",
        "missing-target",
        "missing-signature",
        "malformed-signature",
        "bad-signature",
        "missing-timestamp",
        "malformed-timestamp",
        "stale-timestamp",
        "future-timestamp",
        "bad-digest",
    ];

    /// Whether the fault is on our side (configuration or host), not the sender's.
    #[must_use]
    pub const fn is_configuration_error(&self) -> bool {
        matches!(
            self,
            Rejection::NoSecretConfigured
                | Rejection::MalformedSecret { .. }
                | Rejection::MissingTarget
        )
    }

    /// The HTTP status to answer with: `401` when the sender failed to authenticate, `500` when
    /// the endpoint is misconfigured (so that the provider keeps retrying until it is fixed,
    /// instead of disabling the hook as some do after a 4xx).
    #[must_use]
    pub const fn http_status(&self) -> u16 {
        if self.is_configuration_error() {
            500
        } else {
            401
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::NoSecretConfigured => {
                f.write_str("no webhook secret is configured for this endpoint")
            }
            Rejection::MalformedSecret { index, reason } => {
                write!(f, "configured secret #{index} is unusable: {reason}")
            }
            Rejection::MissingTarget => f.write_str(
                "the signature covers the request target, but the host did not supply it",
            ),
            Rejection::MissingSignature { header } => {
                write!(f, "missing or empty `{header}`")
            }
            Rejection::MalformedSignature { header, reason } => {
                write!(f, "malformed `{header}`: {reason}")
            }
            Rejection::BadSignature { header } => {
                write!(f, "`{header}` does not match any configured secret")
            }
            Rejection::MissingTimestamp { field } => {
                write!(f, "missing signed timestamp `{field}`")
            }
            Rejection::MalformedTimestamp { field, reason } => {
                write!(f, "malformed timestamp `{field}`: {reason}")
            }
            Rejection::StaleTimestamp {
                age_secs,
                tolerance_secs,
            } => write!(
                f,
                "signed timestamp is {age_secs} s old; at most {tolerance_secs} s is accepted"
            ),
            Rejection::FutureTimestamp {
                ahead_secs,
                tolerance_secs,
            } => write!(
                f,
                "signed timestamp is {ahead_secs} s in the future; at most {tolerance_secs} s is accepted"
            ),
            Rejection::BadDigest => f.write_str("the body does not match `Content-Digest`"),
        }
    }
}

impl core::error::Error for Rejection {}

/// Why [`sign`](super::sign) could not produce headers.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignError {
    /// The secret cannot be used with this scheme.
    MalformedSecret {
        /// What is wrong with it (never the secret itself).
        reason: &'static str,
    },
    /// The scheme signs the request target; pass it.
    MissingTarget,
    /// The scheme's credential travels in the URL, not in headers (append `?{param}=<secret>`).
    NotHeaderBased {
        /// The query parameter that carries the secret.
        param: Cow<'static, str>,
    },
}

impl SignError {
    /// The stable, machine-readable code.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            SignError::MalformedSecret { .. } => "malformed-secret",
            SignError::MissingTarget => "missing-target",
            SignError::NotHeaderBased { .. } => "not-header-based",
        }
    }
}

impl fmt::Display for SignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignError::MalformedSecret { reason } => write!(f, "unusable signing secret: {reason}"),
            SignError::MissingTarget => {
                f.write_str("this scheme signs the request target; a target is required")
            }
            SignError::NotHeaderBased { param } => write!(
                f,
                "this scheme sends the secret in the URL: append `?{param}=<secret>` instead"
            ),
        }
    }
}

impl core::error::Error for SignError {}
