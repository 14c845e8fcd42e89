//! GitHub REST (`https://api.github.com`; GitHub Enterprise Server at `https://HOST/api/v3`,
//! **inferred**: the GHES path was not re-read).
//!
//! - Auth `Authorization: Bearer <token>`; every request pins `X-GitHub-Api-Version:
//!   2022-11-28` and `Accept: application/vnd.github+json`.
//! - Pagination: `page` + `per_page` (50 here); the next page is read from `Link: rel="next"`.
//! - Rate limits: `x-ratelimit-remaining` / `x-ratelimit-reset` (epoch seconds); the provider
//!   cools down at 0 remaining. A 403 with `x-ratelimit-remaining: 0` is a rate limit, not the
//!   caller's fault.
//! - `git.list_issues` drops pull requests (GitHub's issues endpoint includes them).

use alloc::string::String;

use mosaic_core::http::HeaderList;
use mosaic_core::ratelimit::{RateLimitSignals, ResetFormat};
use serde_json::Value;

use super::shapes;
use crate::api::Operation;
use crate::plugin::{AuthStyle, Fault, Provider, ProviderError, Unsupported, UpstreamRequest};

/// The GitHub plugin.
#[derive(Clone, Copy, Debug, Default)]
pub struct GitHub;

/// GitHub's fixed headers (shared with GitHub Actions).
pub(crate) fn headers() -> HeaderList {
    alloc::vec![
        (
            String::from("accept"),
            String::from("application/vnd.github+json")
        ),
        (
            String::from("x-github-api-version"),
            String::from("2022-11-28")
        ),
    ]
}

/// GitHub's rate-limit signals (shared with GitHub Actions).
pub(crate) fn signals() -> RateLimitSignals {
    RateLimitSignals::new(
        &["x-ratelimit-remaining"],
        &["x-ratelimit-reset"],
        ResetFormat::EpochSeconds,
        Some(0),
    )
}

/// GitHub's classification (shared with GitHub Actions): primary rate limits answer 403.
pub(crate) fn classify(status: u16, headers: &[(String, String)]) -> Option<Fault> {
    use mosaic_core::http::Headers as _;
    match status {
        100..=399 => None,
        403 if headers.header("x-ratelimit-remaining").map(str::trim) == Some("0") => {
            Some(Fault::RateLimited)
        }
        403 if headers.header("retry-after").is_some() => Some(Fault::RateLimited),
        429 => Some(Fault::RateLimited),
        408 | 500..=599 => Some(Fault::Provider),
        _ => Some(Fault::Caller),
    }
}

impl Provider for GitHub {
    fn kind(&self) -> &str {
        "github"
    }
    fn default_base_url(&self) -> Option<&str> {
        Some("https://api.github.com")
    }
    fn auth_style(&self) -> AuthStyle {
        AuthStyle::Bearer
    }
    fn default_headers(&self) -> HeaderList {
        headers()
    }
    fn classify(&self, status: u16, headers: &[(String, String)]) -> Option<Fault> {
        classify(status, headers)
    }
    fn rate_limit(&self) -> RateLimitSignals {
        signals()
    }
    fn map(&self, op: &Operation) -> Result<UpstreamRequest, Unsupported> {
        shapes::map_git(self.kind(), op, "per_page", None)
    }
    fn shape(
        &self,
        op: &Operation,
        _headers: &[(String, String)],
        body: &Value,
    ) -> Result<Value, ProviderError> {
        shapes::shape_git(self.kind(), op, body)
    }
}
