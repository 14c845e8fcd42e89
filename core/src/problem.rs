//! RFC 9457 problem details: every error a caller sees, with a stable `type` per cause.

use alloc::string::String;
use core::time::Duration;

use serde::Serialize;

/// Base of every problem `type` URI.
pub const TYPE_BASE: &str = "https://mosaic-edge.dev/problems/";

/// The stable causes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProblemKind {
    /// No route matches the request.
    NoRoute,
    /// The request target is malformed or an SSRF/traversal attempt.
    BadTarget,
    /// The request itself is malformed (headers, smuggling, method).
    BadRequest,
    /// Missing or invalid credentials.
    Unauthorized,
    /// The tenant may not use this route.
    Forbidden,
    /// Rate limit exceeded.
    RateLimited,
    /// Daily quota exhausted.
    QuotaExceeded,
    /// Every provider of the route is unavailable (breakers open, cooling down).
    AllProvidersUnavailable,
    /// The overall deadline passed.
    DeadlineExceeded,
    /// The last attempt failed without a response (connect, reset, timeout).
    UpstreamError,
    /// A non-idempotent request failed after it was sent and is not retried.
    NotRetried,
    /// Body too large.
    PayloadTooLarge,
    /// Headers too large or too many.
    HeadersTooLarge,
    /// Webhook signature missing or invalid.
    WebhookRejected,
    /// Webhook delivery already received.
    DuplicateDelivery,
    /// Configuration rejected (admin reload).
    InvalidConfig,
    /// Something on our side.
    Internal,
}

impl ProblemKind {
    /// The stable slug, last part of the `type` URI.
    #[must_use]
    pub const fn slug(self) -> &'static str {
        match self {
            ProblemKind::NoRoute => "no-route",
            ProblemKind::BadTarget => "bad-target",
            ProblemKind::BadRequest => "bad-request",
            ProblemKind::Unauthorized => "unauthorized",
            ProblemKind::Forbidden => "forbidden",
            ProblemKind::RateLimited => "rate-limited",
            ProblemKind::QuotaExceeded => "quota-exceeded",
            ProblemKind::AllProvidersUnavailable => "all-providers-unavailable",
            ProblemKind::DeadlineExceeded => "deadline-exceeded",
            ProblemKind::UpstreamError => "upstream-error",
            ProblemKind::NotRetried => "not-retried",
            ProblemKind::PayloadTooLarge => "payload-too-large",
            ProblemKind::HeadersTooLarge => "headers-too-large",
            ProblemKind::WebhookRejected => "webhook-rejected",
            ProblemKind::DuplicateDelivery => "duplicate-delivery",
            ProblemKind::InvalidConfig => "invalid-config",
            ProblemKind::Internal => "internal",
        }
    }

    /// HTTP status.
    #[must_use]
    pub const fn status(self) -> u16 {
        match self {
            ProblemKind::NoRoute => 404,
            ProblemKind::BadTarget | ProblemKind::BadRequest | ProblemKind::InvalidConfig => 400,
            ProblemKind::Unauthorized | ProblemKind::WebhookRejected => 401,
            ProblemKind::Forbidden => 403,
            ProblemKind::RateLimited | ProblemKind::QuotaExceeded => 429,
            ProblemKind::AllProvidersUnavailable => 503,
            ProblemKind::DeadlineExceeded => 504,
            ProblemKind::UpstreamError | ProblemKind::NotRetried => 502,
            ProblemKind::PayloadTooLarge => 413,
            ProblemKind::HeadersTooLarge => 431,
            ProblemKind::DuplicateDelivery => 409,
            ProblemKind::Internal => 500,
        }
    }

    /// Short human title.
    #[must_use]
    pub const fn title(self) -> &'static str {
        match self {
            ProblemKind::NoRoute => "No route matches this request",
            ProblemKind::BadTarget => "Request target refused",
            ProblemKind::BadRequest => "Malformed request",
            ProblemKind::Unauthorized => "Missing or invalid credentials",
            ProblemKind::Forbidden => "Not allowed for this tenant",
            ProblemKind::RateLimited => "Rate limit exceeded",
            ProblemKind::QuotaExceeded => "Daily quota exhausted",
            ProblemKind::AllProvidersUnavailable => "All providers are unavailable",
            ProblemKind::DeadlineExceeded => "Deadline exceeded",
            ProblemKind::UpstreamError => "Upstream request failed",
            ProblemKind::NotRetried => "Upstream failed after the request was sent; not retried",
            ProblemKind::PayloadTooLarge => "Request body too large",
            ProblemKind::HeadersTooLarge => "Request headers too large",
            ProblemKind::WebhookRejected => "Webhook delivery rejected",
            ProblemKind::DuplicateDelivery => "Duplicate webhook delivery",
            ProblemKind::InvalidConfig => "Configuration rejected",
            ProblemKind::Internal => "Internal error",
        }
    }
}

/// A problem to answer with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Cause.
    pub kind: ProblemKind,
    /// What happened, for people; never contains secrets.
    pub detail: String,
    /// Retry-After to send.
    pub retry_after: Option<Duration>,
    /// For a refusal by a rate limit: its burst (`RateLimit-Limit`) and the time until it is
    /// full again (`RateLimit-Reset`); `RateLimit-Remaining` is then 0.
    pub rate_limit: Option<(u32, Duration)>,
}

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    type_: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    instance: String,
    request_id: &'a str,
    code: &'a str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    errors: &'a [String],
}

impl Problem {
    /// A problem of `kind` with `detail`.
    #[must_use]
    pub fn new(kind: ProblemKind, detail: impl Into<String>) -> Problem {
        Problem {
            kind,
            detail: detail.into(),
            retry_after: None,
            rate_limit: None,
        }
    }

    /// With the `RateLimit-*` headers of the limit that refused the request.
    #[must_use]
    pub fn rate_limit(mut self, limit: u32, reset: Duration) -> Problem {
        self.rate_limit = Some((limit, reset));
        self
    }

    /// With a Retry-After.
    #[must_use]
    pub fn retry_after(mut self, d: Duration) -> Problem {
        self.retry_after = Some(d);
        self
    }

    /// HTTP status.
    #[must_use]
    pub fn status(&self) -> u16 {
        self.kind.status()
    }

    /// The `application/problem+json` body.
    #[must_use]
    pub fn to_json(&self, request_id: &str) -> String {
        self.body(request_id, self.kind.status(), &[])
    }

    /// The body with an `errors` list (every config error with its key path) and the HTTP
    /// status actually sent, which may differ from the kind's (a rejected reload is 400, an
    /// unusable config 500).
    #[must_use]
    pub fn to_json_with_errors(&self, request_id: &str, status: u16, errors: &[String]) -> String {
        self.body(request_id, status, errors)
    }

    fn body(&self, request_id: &str, status: u16, errors: &[String]) -> String {
        let b = Body {
            type_: alloc::format!("{TYPE_BASE}{}", self.kind.slug()),
            title: self.kind.title(),
            status,
            detail: &self.detail,
            instance: alloc::format!("urn:mosaic:request:{request_id}"),
            request_id,
            code: self.kind.slug(),
            errors,
        };
        serde_json::to_string(&b).unwrap_or_else(|_| String::from("{}"))
    }

    /// Response headers to send with the body (content type, Retry-After).
    #[must_use]
    pub fn headers(&self) -> alloc::vec::Vec<(String, String)> {
        let mut h = alloc::vec![(
            String::from("content-type"),
            String::from("application/problem+json")
        )];
        if let Some(r) = self.retry_after {
            let secs = r.as_secs() + u64::from(r.subsec_nanos() > 0);
            h.push((
                String::from("retry-after"),
                alloc::format!("{}", secs.max(1)),
            ));
        }
        if let Some((limit, reset)) = self.rate_limit {
            let secs = reset.as_secs() + u64::from(reset.subsec_nanos() > 0);
            h.push((String::from("ratelimit-limit"), alloc::format!("{limit}")));
            h.push((String::from("ratelimit-remaining"), String::from("0")));
            h.push((String::from("ratelimit-reset"), alloc::format!("{secs}")));
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limited_refusals_carry_ratelimit_headers() {
        let p = Problem::new(ProblemKind::RateLimited, "rate limit for `t` exceeded")
            .retry_after(Duration::from_millis(200))
            .rate_limit(10, Duration::from_millis(2100));
        let h = p.headers();
        let get = |n: &str| h.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(get("retry-after"), Some("1"));
        assert_eq!(get("ratelimit-limit"), Some("10"));
        assert_eq!(get("ratelimit-remaining"), Some("0"));
        assert_eq!(get("ratelimit-reset"), Some("3"));
        let plain = Problem::new(ProblemKind::NoRoute, "x").headers();
        assert!(plain.iter().all(|(k, _)| !k.starts_with("ratelimit-")));
    }

    #[test]
    fn json_shape() {
        let p = Problem::new(ProblemKind::NoRoute, "GET /x matches no route")
            .retry_after(Duration::from_millis(1500));
        let v: serde_json::Value = serde_json::from_str(&p.to_json("abc")).unwrap();
        assert_eq!(v["type"], "https://mosaic-edge.dev/problems/no-route");
        assert_eq!(v["status"], 404);
        assert_eq!(v["request_id"], "abc");
        assert_eq!(v["detail"], "GET /x matches no route");
        assert!(
            v.get("errors").is_none(),
            "no errors key unless there are errors"
        );
        let errs = [
            String::from("routes[0].name: duplicate"),
            String::from("x: y"),
        ];
        let e: serde_json::Value = serde_json::from_str(
            &Problem::new(ProblemKind::InvalidConfig, "bad").to_json_with_errors("r", 500, &errs),
        )
        .unwrap();
        assert_eq!(e["status"], 500);
        assert_eq!(e["errors"][0], "routes[0].name: duplicate");
        assert_eq!(e["errors"].as_array().map(|a| a.len()), Some(2));
        assert_eq!(e["code"], "invalid-config");
        assert_eq!(
            p.headers()[1],
            (String::from("retry-after"), String::from("2"))
        );
    }
}
