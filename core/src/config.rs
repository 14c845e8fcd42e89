//! The configuration model and its validation.
//!
//! Hosts parse a file format (TOML natively, a `[vars]` string on Workers, a Spin variable) into
//! [`RawConfig`] with serde; core then validates it in one pass with [`RawConfig::validate`],
//! which collects **every** problem with its key path
//! (`routes[2].strategy: unknown strategy "fastest"; expected one of priority, weighted, …`)
//! instead of stopping at the first. Enum-like fields are strings in the raw model precisely so
//! that a bad value is reported with its path alongside all the others.
//!
//! Secrets never appear in the config text: a secret is a *reference* (`env:NAME`,
//! `file:/path`, `secret:NAME`) that the host resolves.

use alloc::borrow::ToOwned;
use alloc::collections::BTreeMap;
use alloc::collections::BTreeSet;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

use serde::{Deserialize, Serialize};

use crate::breaker::{BreakerPolicy, FailureClass, Window};
use crate::cache::CachePolicy;
use crate::http::{Method, MethodSet};
use crate::limit::RateLimit;
use crate::region::Region;
use crate::retry::{Backoff, BudgetPolicy, RetryPolicy, TimeoutPolicy};
use crate::route::{PathPattern, RouteTable};
use crate::select::Strategy;

// ---------------------------------------------------------------------------------------------
// Raw model (what serde reads)
// ---------------------------------------------------------------------------------------------

/// The whole configuration file as parsed, before validation.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Server settings used by the hosts (listen address, limits, admin token).
    #[serde(default)]
    pub server: RawServer,
    /// Where state, cache and limits are stored (native host).
    #[serde(default)]
    pub store: RawStore,
    /// Policies applied to every route that does not set its own.
    #[serde(default)]
    pub defaults: RawPolicies,
    /// Tenants and their keys. With no tenant configured every caller is the `default` tenant.
    #[serde(default)]
    pub tenants: Vec<RawTenant>,
    /// Upstream providers.
    #[serde(default)]
    pub providers: Vec<RawProvider>,
    /// Routes, matched by method, host, path and headers.
    #[serde(default)]
    pub routes: Vec<RawRoute>,
    /// Webhook endpoints served at `/hooks/{name}`.
    #[serde(default)]
    pub webhooks: Vec<RawWebhook>,
    /// The normalized `/v1` API: which providers serve each family.
    #[serde(default)]
    pub v1: RawV1,
}

/// `[server]`: settings the hosts apply.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RawServer {
    /// Listen address of the native server, e.g. `127.0.0.1:8787`.
    pub listen: Option<String>,
    /// Secret reference of the admin token that opens `/_mosaic/*`.
    pub admin_token: Option<String>,
    /// Largest accepted request body in bytes (413 above).
    pub max_body_bytes: u64,
    /// Largest accepted request head (all headers) in bytes (431 above).
    pub max_header_bytes: u64,
    /// Most headers accepted on a request (431 above).
    pub max_headers: u32,
    /// Most concurrent connections the native server keeps.
    pub max_connections: u32,
    /// Worker threads of the native server (each a single-threaded runtime serving its
    /// connections); 0 means one per CPU.
    pub workers: u32,
    /// Grace period for in-flight requests on shutdown, in milliseconds.
    pub shutdown_grace_ms: u64,
    /// In-memory (L1) cache bound in bytes.
    pub cache_bytes: u64,
    /// Largest response body buffered for caching, in bytes; larger bodies stream uncached.
    pub max_cache_body_bytes: u64,
    /// A PEM file of extra root certificates the native server trusts for `https` providers
    /// (an internal CA), besides the public web PKI roots.
    pub ca_file: Option<String>,
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            listen: None,
            admin_token: None,
            max_body_bytes: 1 << 20,
            max_header_bytes: 32 << 10,
            max_headers: 100,
            max_connections: 1024,
            workers: 0,
            shutdown_grace_ms: 10_000,
            cache_bytes: 16 << 20,
            max_cache_body_bytes: 1 << 20,
            ca_file: None,
        }
    }
}

/// `[store]`: the native host's key-value store.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RawStore {
    /// `memory` (default), `file` (redb) or `redis`.
    pub kind: String,
    /// Path of the database file for `file`.
    pub path: Option<String>,
    /// Redis URL for `redis`, e.g. `redis://127.0.0.1:6379/0`.
    pub url: Option<String>,
}

impl Default for RawStore {
    fn default() -> Self {
        RawStore {
            kind: "memory".into(),
            path: None,
            url: None,
        }
    }
}

/// Policies a route may set; unset fields fall back to `[defaults]`, then to built-in defaults.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawPolicies {
    /// Retry policy.
    pub retry: Option<RawRetry>,
    /// Timeouts.
    pub timeout: Option<RawTimeout>,
    /// Circuit breaker.
    pub breaker: Option<RawBreaker>,
    /// Cache.
    pub cache: Option<RawCache>,
    /// Rate limit per tenant on this route.
    pub limit: Option<RawLimit>,
}

/// A tenant: a team sharing the deployment.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawTenant {
    /// Unique name.
    pub name: String,
    /// API key hashes, `sha256:<64 hex>` (see `mosaic key new`).
    #[serde(default)]
    pub keys: Vec<String>,
    /// Route names this tenant may use; `["*"]` (default) for all.
    #[serde(default)]
    pub routes: Vec<String>,
    /// Rate limit over all of this tenant's requests.
    pub limit: Option<RawLimit>,
    /// Daily quotas.
    pub quota: Option<RawQuota>,
    /// Provider credentials of this tenant's own: provider id → secret reference.
    #[serde(default)]
    pub credentials: BTreeMap<String, String>,
}

/// Daily quota.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawQuota {
    /// Requests per UTC day.
    pub requests_per_day: Option<u64>,
    /// Cost units per UTC day (sum of the providers' `cost`).
    pub cost_per_day: Option<f64>,
}

/// An upstream provider.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    /// Unique id, used by routes.
    pub id: String,
    /// Plugin kind (`github`, `gitlab`, `gitea`, … or `http` for a plain upstream).
    #[serde(default = "default_kind")]
    pub kind: String,
    /// Base URL, `https://host[:port][/path]`.
    pub base_url: String,
    /// Region, e.g. `eu-west`, `us-east`, `ap-southeast` (feeds region-nearest).
    pub region: Option<String>,
    /// Countries (ISO 3166-1 alpha-2) the provider is in or serves best.
    #[serde(default)]
    pub countries: Vec<String>,
    /// Cloudflare colos (IATA codes) the provider sits next to.
    #[serde(default)]
    pub colos: Vec<String>,
    /// Cost units per request (cost-aware strategy, quotas).
    #[serde(default)]
    pub cost: f64,
    /// Weight for the weighted strategy (default 1).
    pub weight: Option<u32>,
    /// How to authenticate to the provider.
    pub auth: Option<RawAuth>,
    /// Allow private, loopback and link-local addresses (off by default; tests need it).
    #[serde(default)]
    pub allow_private: bool,
    /// Cool the provider down when its remaining rate-limit budget falls to this many requests.
    pub cooldown_below: Option<u64>,
}

fn default_kind() -> String {
    "http".into()
}

/// Provider authentication.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    /// `bearer`, `token`, `basic`, `header` or `none`.
    pub scheme: String,
    /// Secret reference (`env:NAME`, `file:/path`, `secret:NAME`).
    pub secret: Option<String>,
    /// Header name for the `header` scheme (e.g. `PRIVATE-TOKEN`).
    pub header: Option<String>,
}

/// A route.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    /// Unique name.
    pub name: String,
    /// What requests it matches.
    #[serde(rename = "match")]
    pub matcher: RawMatch,
    /// Provider ids, in priority order.
    pub providers: Vec<String>,
    /// Selection strategy (default `priority`).
    pub strategy: Option<String>,
    /// Upstream path template using the pattern's parameters, e.g. `/api/v1/{*rest}`.
    /// Default: the request's path unchanged.
    pub upstream_path: Option<String>,
    /// Allow retrying non-idempotent requests (e.g. LLM completion endpoints).
    #[serde(default)]
    pub retry_non_idempotent: bool,
    /// Forward the caller's `Authorization`/`Cookie` headers (off by default).
    #[serde(default)]
    pub forward_caller_auth: bool,
    /// Serve without a tenant key even when tenants are configured.
    #[serde(default)]
    pub public: bool,
    /// For cost-aware: the latency bound in milliseconds.
    pub max_latency_ms: Option<u64>,
    /// Route policies.
    #[serde(flatten)]
    pub policies: RawPolicies,
}

/// `[v1]`: the providers that serve the normalized `/v1` API, one table per family
/// (`[v1.git]`, `[v1.ci]`, `[v1.kb]`, `[v1.pm]`). A family that is absent answers 404.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawV1 {
    /// `/v1/git/…`: repositories, issues, pull requests.
    pub git: Option<RawV1Family>,
    /// `/v1/ci/…`: runs.
    pub ci: Option<RawV1Family>,
    /// `/v1/kb/…`: pages.
    pub kb: Option<RawV1Family>,
    /// `/v1/pm/…`: issues and comments.
    pub pm: Option<RawV1Family>,
}

/// One `/v1` family: its providers in priority order, the first being the primary.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawV1Family {
    /// Provider ids, in priority order; the first is the primary (writes go there only).
    pub providers: Vec<String>,
    /// Whether the providers answer reads equivalently, so a read may fail over along the
    /// list (default `true`); `false` sends reads to the primary too.
    pub equivalent_reads: Option<bool>,
    /// Selection strategy for reads (default `priority`).
    pub strategy: Option<String>,
    /// Serve without a tenant key even when tenants are configured.
    #[serde(default)]
    pub public: bool,
    /// For cost-aware: the latency bound in milliseconds.
    pub max_latency_ms: Option<u64>,
    /// Policies (`retry`, `timeout`, `breaker`, `limit`; `/v1` answers are not cached).
    #[serde(flatten)]
    pub policies: RawPolicies,
}

/// A route's matcher.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawMatch {
    /// Methods (default: any).
    #[serde(default)]
    pub methods: Vec<String>,
    /// Host (exact, case-insensitive); default any host.
    pub host: Option<String>,
    /// Path pattern: static segments, `{param}`, a trailing `{*rest}`.
    pub path: String,
    /// Header predicates: name → exact value, or `*` for "present".
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// Retry policy.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    /// Most attempts in all, the first included (default 3).
    pub attempts: Option<u32>,
    /// Backoff base in ms (default 25).
    pub backoff_base_ms: Option<u64>,
    /// Backoff cap in ms (default 1000).
    pub backoff_max_ms: Option<u64>,
    /// Statuses that are retried (default 502, 503, 504).
    pub on_status: Option<Vec<u16>>,
    /// Retries allowed as a fraction of recent requests (default 0.2).
    pub budget_ratio: Option<f64>,
    /// Retries per second always allowed (default 10).
    pub budget_min_per_sec: Option<u32>,
}

/// Timeouts.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawTimeout {
    /// Per attempt, ms (default 5000).
    pub per_try_ms: Option<u64>,
    /// Whole request, ms (default 15000).
    pub total_ms: Option<u64>,
}

/// Circuit breaker.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawBreaker {
    /// `count` (default) or `time`.
    pub window: Option<String>,
    /// Calls (count window) or seconds (time window); default 20.
    pub size: Option<u32>,
    /// Calls needed before the rates count (default 5).
    pub min_calls: Option<u32>,
    /// Failure rate that opens, 0..=1 (default 0.5).
    pub failure_rate: Option<f64>,
    /// Slow-call rate that opens, 0..=1 (default 1.0 = off).
    pub slow_rate: Option<f64>,
    /// A call slower than this is slow, ms (default 2000).
    pub slow_ms: Option<u64>,
    /// First open duration, ms (default 5000); doubles on repeated opens.
    pub open_ms: Option<u64>,
    /// Longest open duration, ms (default 60000).
    pub open_max_ms: Option<u64>,
    /// Probe calls admitted half-open (default 1).
    pub half_open_probes: Option<u32>,
    /// What counts as failure: `5xx`, `4xx`, a status such as `429`, `timeout`, `connect`,
    /// `reset` (default `5xx`, `timeout`, `connect`, `reset`).
    pub failure_on: Option<Vec<String>>,
}

/// Cache policy.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawCache {
    /// Cache this route (default false).
    pub enabled: Option<bool>,
    /// Freshness lifetime when the response gives none, s (default 0: only what upstream says).
    pub ttl_s: Option<u64>,
    /// Use `ttl_s` even when the response says otherwise.
    pub override_upstream: Option<bool>,
    /// stale-while-revalidate window, s (default from the response, else 0).
    pub stale_while_revalidate_s: Option<u64>,
    /// stale-if-error window, s (default from the response, else 0).
    pub stale_if_error_s: Option<u64>,
    /// Request headers the key varies on besides the response's `Vary`.
    pub vary: Option<Vec<String>>,
}

/// Rate limit (GCRA).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawLimit {
    /// Sustained requests per second.
    pub rate: f64,
    /// Burst size (default 1).
    pub burst: Option<u32>,
}

/// A webhook endpoint.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawWebhook {
    /// Endpoint name: served at `/hooks/{name}`.
    pub name: String,
    /// Scheme/preset name (`github`, `gitlab`, `stripe`, …).
    pub scheme: String,
    /// Secret references; several for rotation.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// Tenant the events belong to.
    pub tenant: Option<String>,
    /// Replay tolerance in seconds where the scheme signs a timestamp.
    pub tolerance_s: Option<u64>,
    /// Largest accepted body (default 1 MiB).
    pub max_body_bytes: Option<u64>,
    /// How long delivery ids are remembered for dedup, s (default 7 days).
    pub dedup_ttl_s: Option<u64>,
    /// Where events are forwarded.
    #[serde(default)]
    pub destinations: Vec<RawDestination>,
}

/// A webhook destination.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawDestination {
    /// URL events are POSTed to.
    pub url: String,
    /// Secret reference; when set, deliveries are signed with Standard Webhooks.
    pub sign_secret: Option<String>,
    /// Allow private/loopback destination addresses.
    #[serde(default)]
    pub allow_private: bool,
    /// Delivery attempts before dead-lettering (default 8).
    pub attempts: Option<u32>,
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// One validation problem at a key path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// Key path, e.g. `routes[2].strategy`.
    pub path: String,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every validation problem found, in file order.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl core::error::Error for ConfigErrors {}

struct Errs(Vec<ConfigError>);

impl Errs {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigError {
            path: path.into(),
            message: message.into(),
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Validated model
// ---------------------------------------------------------------------------------------------

/// A secret reference, resolved by the host. Never the secret itself.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SecretRef {
    /// An environment variable.
    Env(String),
    /// A file's content (trailing newline trimmed).
    File(String),
    /// A platform secret binding (Workers secret, Spin variable).
    Binding(String),
}

impl SecretRef {
    /// Parses `env:NAME`, `file:/path` or `secret:NAME`.
    ///
    /// # Errors
    /// A message saying what was expected when `s` is not a reference.
    pub fn parse(s: &str) -> Result<SecretRef, String> {
        let (kind, rest) = s.split_once(':').ok_or_else(|| {
            "expected a secret reference `env:NAME`, `file:/path` or `secret:NAME`; secrets are never written in the config itself".to_owned()
        })?;
        if rest.is_empty() && matches!(kind, "env" | "file" | "secret" | "var") {
            return Err(format!("`{kind}:` names nothing"));
        }
        match kind {
            "env" => Ok(SecretRef::Env(rest.into())),
            "file" => Ok(SecretRef::File(rest.into())),
            "secret" | "var" => Ok(SecretRef::Binding(rest.into())),
            // never echo any part of the value: a mistyped reference may be a pasted secret
            _ => Err(String::from(
                "not a secret reference: expected `env:NAME`, `file:/path` or `secret:NAME`; secrets are never written in the config itself",
            )),
        }
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(n) => write!(f, "env:{n}"),
            SecretRef::File(n) => write!(f, "file:{n}"),
            SecretRef::Binding(n) => write!(f, "secret:{n}"),
        }
    }
}

/// How a provider is authenticated to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthScheme {
    /// No credentials.
    None,
    /// `Authorization: Bearer <secret>`.
    Bearer(SecretRef),
    /// `Authorization: token <secret>` (Gitea, GitHub classic).
    Token(SecretRef),
    /// `Authorization: Basic base64(<secret>)`, secret being `user:password`.
    Basic(SecretRef),
    /// `<header>: <secret>`.
    Header(String, SecretRef),
}

impl AuthScheme {
    /// The secret reference, if any.
    #[must_use]
    pub fn secret(&self) -> Option<&SecretRef> {
        match self {
            AuthScheme::None => None,
            AuthScheme::Bearer(s)
            | AuthScheme::Token(s)
            | AuthScheme::Basic(s)
            | AuthScheme::Header(_, s) => Some(s),
        }
    }
}

/// A parsed base URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseUrl {
    /// `http` or `https`.
    pub scheme: String,
    /// Host name or IP literal (IPv6 without brackets), lowercase.
    pub host: String,
    /// Port, explicit or the scheme's default.
    pub port: u16,
    /// Path prefix without a trailing slash (empty for none).
    pub path: String,
    /// `origin()` followed by `path`, computed once: every attempt's URL starts with it.
    prefix: String,
}

impl BaseUrl {
    /// Parses `http(s)://host[:port][/path]`. Userinfo, query and fragment are refused.
    ///
    /// # Errors
    /// A message naming what is wrong.
    pub fn parse(s: &str) -> Result<BaseUrl, String> {
        let (scheme, rest) = if let Some(r) = s.strip_prefix("https://") {
            ("https", r)
        } else if let Some(r) = s.strip_prefix("http://") {
            ("http", r)
        } else {
            return Err(format!("`{s}` is not an http(s) URL"));
        };
        if rest.contains(['?', '#', '@', '\\', ' ']) {
            return Err(format!(
                "`{s}`: a base URL has no userinfo, query, fragment, backslash or space"
            ));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("`{s}`: unterminated IPv6 literal"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p),
                None if after.is_empty() => None,
                None => return Err(format!("`{s}`: junk after IPv6 literal")),
            };
            (h, port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty()
            || !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'_'))
        {
            return Err(format!("`{s}`: invalid host `{host}`"));
        }
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("`{s}`: invalid port `{p}`"))?,
            None if scheme == "https" => 443,
            None => 80,
        };
        let path = path.trim_end_matches('/');
        if path.split('/').any(|seg| seg == ".." || seg == ".") {
            return Err(format!("`{s}`: dot segments are not allowed"));
        }
        let mut url = BaseUrl {
            scheme: scheme.into(),
            host: host.to_ascii_lowercase(),
            port,
            path: path.into(),
            prefix: String::new(),
        };
        url.prefix = url.origin() + &url.path;
        Ok(url)
    }

    /// `scheme://host[:port]/path` without a trailing slash: [`BaseUrl::origin`] followed by
    /// the path prefix. An attempt's URL is this followed by the request's path and query.
    #[must_use]
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The origin, `scheme://host[:port]`, with the port only when not the default.
    #[must_use]
    pub fn origin(&self) -> String {
        let default = matches!(
            (self.scheme.as_str(), self.port),
            ("https", 443) | ("http", 80)
        );
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if default {
            format!("{}://{}", self.scheme, host)
        } else {
            format!("{}://{}:{}", self.scheme, host, self.port)
        }
    }

    /// Whether the host is an IP literal or name that points at a private, loopback,
    /// link-local, unspecified or otherwise internal address.
    #[must_use]
    pub fn is_private(&self) -> bool {
        crate::target::is_private_host(&self.host)
    }
}

/// A validated provider.
#[derive(Clone, Debug)]
pub struct Provider {
    /// Id.
    pub id: String,
    /// Plugin kind.
    pub kind: String,
    /// Base URL.
    pub base_url: BaseUrl,
    /// Location.
    pub region: Region,
    /// Cost units per request.
    pub cost: f64,
    /// Weight (≥ 1).
    pub weight: u32,
    /// Authentication.
    pub auth: AuthScheme,
    /// Private addresses allowed.
    pub allow_private: bool,
    /// Cool down when the remaining rate-limit budget reaches this.
    pub cooldown_below: Option<u64>,
    /// The provider's own rate-limit header names (set by its plugin after validation, see
    /// [`crate::ratelimit`]); `None` reads the engine's common names.
    pub rate_limit: Option<crate::ratelimit::RateLimitSignals>,
}

/// A validated route.
#[derive(Clone, Debug)]
pub struct Route {
    /// Name.
    pub name: String,
    /// Methods matched.
    pub methods: MethodSet,
    /// Host matched (lowercase), any when `None`.
    pub host: Option<String>,
    /// Path pattern.
    pub pattern: PathPattern,
    /// Header predicates: lowercase name → `Some(value)` exact or `None` present.
    pub headers: Vec<(String, Option<String>)>,
    /// Provider indices in priority order.
    pub providers: Vec<usize>,
    /// Strategy.
    pub strategy: Strategy,
    /// Upstream path template.
    pub upstream_path: Option<PathPattern>,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// Timeouts.
    pub timeout: TimeoutPolicy,
    /// Breaker policy.
    pub breaker: BreakerPolicy,
    /// Cache policy.
    pub cache: CachePolicy,
    /// Per-tenant rate limit on this route.
    pub limit: Option<RateLimit>,
    /// Forward caller credentials.
    pub forward_caller_auth: bool,
    /// No tenant key needed.
    pub public: bool,
}

/// A validated tenant.
#[derive(Clone, Debug)]
pub struct Tenant {
    /// Name.
    pub name: String,
    /// SHA-256 digests of the tenant's API keys.
    pub key_hashes: Vec<[u8; 32]>,
    /// Allowed route indices; `None` = all.
    pub routes: Option<BTreeSet<usize>>,
    /// Tenant-wide rate limit.
    pub limit: Option<RateLimit>,
    /// Requests per UTC day.
    pub requests_per_day: Option<u64>,
    /// Cost units per UTC day.
    pub cost_per_day: Option<f64>,
    /// Own credentials: provider index → secret reference.
    pub credentials: BTreeMap<usize, SecretRef>,
}

/// A validated webhook endpoint.
#[derive(Clone, Debug)]
pub struct Webhook {
    /// Endpoint name.
    pub name: String,
    /// Scheme/preset name.
    pub scheme: String,
    /// Secret references.
    pub secrets: Vec<SecretRef>,
    /// Tenant index.
    pub tenant: Option<usize>,
    /// Replay tolerance.
    pub tolerance: Option<Duration>,
    /// Body cap.
    pub max_body_bytes: u64,
    /// Dedup memory.
    pub dedup_ttl: Duration,
    /// Destinations.
    pub destinations: Vec<Destination>,
}

/// A validated webhook destination.
#[derive(Clone, Debug)]
pub struct Destination {
    /// URL.
    pub url: String,
    /// Parsed URL.
    pub base: BaseUrl,
    /// Signing secret.
    pub sign_secret: Option<SecretRef>,
    /// Private allowed.
    pub allow_private: bool,
    /// Attempts before dead-lettering.
    pub attempts: u32,
}

/// A validated `/v1` family. Core expands it into ordinary routes named `v1.<family>` (every
/// provider that may answer a read, in order) and `v1.<family>@<pin>` (one provider, or the
/// providers of one kind), told apart by the [`V1_PIN_HEADER`] predicate that the host sets
/// from `mosaic_providers::v1::plan`: so writes reach the primary only and a cursor continues
/// on a provider of its kind, with the engine's usual breakers, cooldowns and retries.
#[derive(Clone, Debug)]
pub struct V1Family {
    /// `git`, `ci`, `kb` or `pm`.
    pub family: String,
    /// Provider indices as listed; the first is the primary.
    pub providers: Vec<usize>,
    /// Reads may fail over along the list.
    pub equivalent_reads: bool,
    /// Index of the family route (`v1.<family>`).
    pub route: usize,
    /// Pin value ([`V1_PIN_HEADER`]) → route index: a provider id, or `kind:<kind>` for the
    /// providers of one kind when several serve the family.
    pub pins: Vec<(String, usize)>,
}

impl V1Family {
    /// The route index of `pin`, if generated.
    #[must_use]
    pub fn pin_route(&self, pin: &str) -> Option<usize> {
        self.pins.iter().find(|(p, _)| p == pin).map(|(_, r)| *r)
    }
}

/// The request header selecting a `v1.<family>@<pin>` route. Hosts set it from the plan and
/// drop any a caller sent; like every `x-mosaic-*` header it is never sent upstream.
pub const V1_PIN_HEADER: &str = "x-mosaic-v1-pin";

/// The `/v1` families, in path order.
pub const V1_FAMILIES: [&str; 4] = ["git", "ci", "kb", "pm"];

/// A validated configuration, ready for [`crate::engine::Router::new`].
#[derive(Clone, Debug)]
pub struct Config {
    /// Server settings.
    pub server: RawServer,
    /// Store settings.
    pub store: RawStore,
    /// Admin token reference.
    pub admin_token: Option<SecretRef>,
    /// Tenants.
    pub tenants: Vec<Tenant>,
    /// Providers.
    pub providers: Vec<Provider>,
    /// Routes.
    pub routes: Vec<Route>,
    /// Route table (built and conflict-checked).
    pub table: RouteTable,
    /// Webhook endpoints.
    pub webhooks: Vec<Webhook>,
    /// `/v1` families that are configured.
    pub v1: Vec<V1Family>,
}

impl Config {
    /// The `/v1` family named `family`, if configured.
    #[must_use]
    pub fn v1_family(&self, family: &str) -> Option<&V1Family> {
        self.v1.iter().find(|f| f.family == family)
    }

    /// Index of the provider with `id`.
    #[must_use]
    pub fn provider_index(&self, id: &str) -> Option<usize> {
        self.providers.iter().position(|p| p.id == id)
    }
    /// Index of the route named `name`.
    #[must_use]
    pub fn route_index(&self, name: &str) -> Option<usize> {
        self.routes.iter().position(|r| r.name == name)
    }
    /// Every secret reference the configuration uses, deduplicated (for hosts to resolve).
    #[must_use]
    pub fn secret_refs(&self) -> BTreeSet<SecretRef> {
        let mut out = BTreeSet::new();
        out.extend(self.admin_token.iter().cloned());
        for p in &self.providers {
            out.extend(p.auth.secret().cloned());
        }
        for t in &self.tenants {
            out.extend(t.credentials.values().cloned());
        }
        for w in &self.webhooks {
            out.extend(w.secrets.iter().cloned());
            for d in &w.destinations {
                out.extend(d.sign_secret.iter().cloned());
            }
        }
        out
    }
}

/// Webhook scheme names accepted in `webhooks[].scheme` (and by `mosaic webhook sign/verify`).
pub const WEBHOOK_SCHEMES: [&str; 16] = [
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

const STRATEGIES: &str =
    "priority, weighted, round-robin, random, least-latency, cost-aware, region-nearest, adaptive";

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn ms(v: Option<u64>, default: u64) -> Duration {
    Duration::from_millis(v.unwrap_or(default))
}

impl RawConfig {
    /// Validates the whole configuration and builds the route table.
    ///
    /// # Errors
    /// Every problem found, each with its key path.
    pub fn validate(&self) -> Result<Config, ConfigErrors> {
        let mut e = Errs(Vec::new());

        // server / store
        let admin_token = self.server.admin_token.as_ref().and_then(|s| {
            SecretRef::parse(s)
                .map_err(|m| e.push("server.admin_token", m))
                .ok()
        });
        if let Some(l) = &self.server.listen {
            if l.rsplit_once(':')
                .and_then(|(_, p)| p.parse::<u16>().ok())
                .is_none()
            {
                e.push(
                    "server.listen",
                    format!("`{l}` is not an address such as 127.0.0.1:8787"),
                );
            }
        }
        for (key, v) in [
            ("server.max_body_bytes", self.server.max_body_bytes),
            ("server.max_header_bytes", self.server.max_header_bytes),
            ("server.max_headers", u64::from(self.server.max_headers)),
            (
                "server.max_connections",
                u64::from(self.server.max_connections),
            ),
        ] {
            if v == 0 {
                e.push(key, "must be greater than 0");
            }
        }
        if self
            .server
            .ca_file
            .as_deref()
            .is_some_and(|f| f.trim().is_empty())
        {
            e.push(
                "server.ca_file",
                "must be the path of a PEM file of root certificates",
            );
        }
        if self.server.workers > 1024 {
            e.push(
                "server.workers",
                format!(
                    "{} worker threads is too many; use 0 for one per CPU",
                    self.server.workers
                ),
            );
        }
        match self.store.kind.as_str() {
            "memory" => {}
            "file" => {
                if self.store.path.is_none() {
                    e.push(
                        "store.path",
                        "`file` store needs a path, e.g. \"mosaic.redb\"",
                    );
                }
            }
            "redis" => {
                if !self
                    .store
                    .url
                    .as_deref()
                    .is_some_and(|u| u.starts_with("redis://") || u.starts_with("rediss://"))
                {
                    e.push(
                        "store.url",
                        "`redis` store needs a url such as redis://127.0.0.1:6379/0",
                    );
                }
            }
            other => e.push(
                "store.kind",
                format!("unknown store kind \"{other}\"; expected one of memory, file, redis"),
            ),
        }

        // providers
        let mut providers = Vec::new();
        let mut provider_ids: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, p) in self.providers.iter().enumerate() {
            let at = format!("providers[{i}]");
            if !valid_name(&p.id) {
                e.push(
                    format!("{at}.id"),
                    format!(
                        "`{}` is not a valid id (letters, digits, `-`, `_`, `.`; at most 64)",
                        p.id
                    ),
                );
            } else if provider_ids.insert(&p.id, i).is_some() {
                e.push(
                    format!("{at}.id"),
                    format!("duplicate provider id `{}`", p.id),
                );
            }
            let base = match BaseUrl::parse(&p.base_url) {
                Ok(b) => {
                    if b.is_private() && !p.allow_private {
                        e.push(format!("{at}.base_url"), format!("`{}` is a private, loopback or link-local address; set allow_private = true to allow it", p.base_url));
                    }
                    Some(b)
                }
                Err(m) => {
                    e.push(format!("{at}.base_url"), m);
                    None
                }
            };
            let region = match &p.region {
                Some(r) => match Region::parse(r, &p.countries, &p.colos) {
                    Ok(r) => r,
                    Err(m) => {
                        e.push(format!("{at}.region"), m);
                        Region::default()
                    }
                },
                None => Region::parse("", &p.countries, &p.colos).unwrap_or_default(),
            };
            if !(p.cost.is_finite() && p.cost >= 0.0) {
                e.push(format!("{at}.cost"), "must be a finite number ≥ 0");
            }
            if p.weight == Some(0) {
                e.push(format!("{at}.weight"), "must be at least 1");
            }
            let auth = match &p.auth {
                None => AuthScheme::None,
                Some(a) => parse_auth(a, &format!("{at}.auth"), &mut e),
            };
            if let Some(base) = base {
                providers.push(Provider {
                    id: p.id.clone(),
                    kind: p.kind.clone(),
                    base_url: base,
                    region,
                    cost: p.cost,
                    weight: p.weight.unwrap_or(1).max(1),
                    auth,
                    allow_private: p.allow_private,
                    cooldown_below: p.cooldown_below,
                    rate_limit: None,
                });
            }
        }

        // routes
        let mut routes = Vec::new();
        let mut route_names: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, r) in self.routes.iter().enumerate() {
            let at = format!("routes[{i}]");
            if !valid_name(&r.name) {
                e.push(
                    format!("{at}.name"),
                    format!("`{}` is not a valid name", r.name),
                );
            } else if route_names.insert(&r.name, i).is_some() {
                e.push(
                    format!("{at}.name"),
                    format!("duplicate route name `{}`", r.name),
                );
            }
            if let Some(route) = self.validate_route(r, &at, &provider_ids, &mut e) {
                routes.push(route);
            }
        }

        // /v1 families, expanded into routes after the configured ones (see `V1Family`)
        let mut route_paths: Vec<String> =
            (0..routes.len()).map(|i| format!("routes[{i}]")).collect();
        let mut v1 = Vec::new();
        let mut v1_groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        let families = [&self.v1.git, &self.v1.ci, &self.v1.kb, &self.v1.pm];
        for (family, f) in V1_FAMILIES.iter().zip(families) {
            let Some(f) = f else { continue };
            let at = format!("v1.{family}");
            let name = format!("v1.{family}");
            if let Some(i) = route_names.get(name.as_str()) {
                e.push(
                    &at,
                    format!("route name `{name}` is taken by routes[{i}]; rename that route"),
                );
                continue;
            }
            if f.policies.cache.is_some() {
                e.push(
                    format!("{at}.cache"),
                    "/v1 answers are not cached (normalizing needs the provider that answered); remove `cache`",
                );
            }
            let raw = RawRoute {
                name: name.clone(),
                matcher: RawMatch {
                    methods: Vec::new(),
                    host: None,
                    path: format!("/v1/{family}/{{*rest}}"),
                    headers: BTreeMap::new(),
                },
                providers: f.providers.clone(),
                strategy: f.strategy.clone(),
                upstream_path: None,
                retry_non_idempotent: false,
                forward_caller_auth: false,
                public: f.public,
                max_latency_ms: f.max_latency_ms,
                policies: RawPolicies {
                    cache: Some(RawCache {
                        enabled: Some(false),
                        ..RawCache::default()
                    }),
                    ..f.policies.clone()
                },
            };
            let Some(mut family_route) = self.validate_route(&raw, &at, &provider_ids, &mut e)
            else {
                continue;
            };
            let listed = family_route.providers.clone();
            let equivalent_reads = f.equivalent_reads.unwrap_or(true);
            if !equivalent_reads {
                family_route.providers.truncate(1);
            }
            let pinned = |pin: &str, members: Vec<usize>| {
                let mut r = family_route.clone();
                r.name = format!("{name}@{pin}");
                r.headers = alloc::vec![(String::from(V1_PIN_HEADER), Some(String::from(pin)))];
                r.providers = members;
                r
            };
            let mut generated = Vec::new();
            for &p in &listed {
                let id = providers.get(p).map_or("", |x: &Provider| x.id.as_str());
                generated.push((String::from(id), pinned(id, alloc::vec![p])));
            }
            if equivalent_reads {
                let mut kinds: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
                for &p in &listed {
                    if let Some(x) = providers.get(p) {
                        kinds.entry(x.kind.as_str()).or_default().push(p);
                    }
                }
                for (kind, members) in kinds.into_iter().filter(|(_, m)| m.len() > 1) {
                    let pin = format!("kind:{kind}");
                    generated.push((pin.clone(), pinned(&pin, members)));
                }
            }
            let route = routes.len();
            routes.push(family_route);
            route_paths.push(at.clone());
            let mut group = alloc::vec![route];
            let mut pins = Vec::new();
            for (pin, r) in generated {
                pins.push((pin, routes.len()));
                group.push(routes.len());
                routes.push(r);
                route_paths.push(at.clone());
            }
            v1_groups.insert(name, group);
            v1.push(V1Family {
                family: String::from(*family),
                providers: listed,
                equivalent_reads,
                route,
                pins,
            });
        }

        // tenants
        let mut tenants = Vec::new();
        let mut tenant_names = BTreeSet::new();
        for (i, t) in self.tenants.iter().enumerate() {
            let at = format!("tenants[{i}]");
            if !valid_name(&t.name) {
                e.push(
                    format!("{at}.name"),
                    format!("`{}` is not a valid name", t.name),
                );
            } else if !tenant_names.insert(t.name.as_str()) {
                e.push(
                    format!("{at}.name"),
                    format!("duplicate tenant `{}`", t.name),
                );
            }
            let mut key_hashes = Vec::new();
            for (k, h) in t.keys.iter().enumerate() {
                match parse_key_hash(h) {
                    Some(d) => key_hashes.push(d),
                    None => e.push(
                        format!("{at}.keys[{k}]"),
                        "expected `sha256:` followed by 64 hex digits (run `mosaic key new`)",
                    ),
                }
            }
            let allowed = if t.routes.is_empty() || t.routes.iter().any(|r| r == "*") {
                None
            } else {
                let mut set = BTreeSet::new();
                for (k, name) in t.routes.iter().enumerate() {
                    if let Some(group) = v1_groups.get(name.as_str()) {
                        set.extend(group.iter().copied());
                        continue;
                    }
                    match route_names.get(name.as_str()) {
                        Some(ix) => {
                            set.insert(*ix);
                        }
                        None => e.push(
                            format!("{at}.routes[{k}]"),
                            format!("unknown route `{name}`"),
                        ),
                    }
                }
                Some(set)
            };
            let limit = t
                .limit
                .as_ref()
                .and_then(|l| parse_limit(l, &format!("{at}.limit"), &mut e));
            let mut credentials = BTreeMap::new();
            for (pid, s) in &t.credentials {
                let Some(&pix) = provider_ids.get(pid.as_str()) else {
                    e.push(
                        format!("{at}.credentials.{pid}"),
                        format!("unknown provider `{pid}`"),
                    );
                    continue;
                };
                match SecretRef::parse(s) {
                    Ok(r) => {
                        credentials.insert(pix, r);
                    }
                    Err(m) => e.push(format!("{at}.credentials.{pid}"), m),
                }
            }
            let (requests_per_day, cost_per_day) = match &t.quota {
                Some(q) => {
                    if q.cost_per_day.is_some_and(|c| !(c.is_finite() && c >= 0.0)) {
                        e.push(
                            format!("{at}.quota.cost_per_day"),
                            "must be a finite number ≥ 0",
                        );
                    }
                    (q.requests_per_day, q.cost_per_day)
                }
                None => (None, None),
            };
            tenants.push(Tenant {
                name: t.name.clone(),
                key_hashes,
                routes: allowed,
                limit,
                requests_per_day,
                cost_per_day,
                credentials,
            });
        }

        // webhooks
        let mut webhooks = Vec::new();
        let mut hook_names = BTreeSet::new();
        for (i, w) in self.webhooks.iter().enumerate() {
            let at = format!("webhooks[{i}]");
            if !valid_name(&w.name) {
                e.push(
                    format!("{at}.name"),
                    format!("`{}` is not a valid name", w.name),
                );
            } else if !hook_names.insert(w.name.as_str()) {
                e.push(
                    format!("{at}.name"),
                    format!("duplicate webhook endpoint `{}`", w.name),
                );
            }
            if !WEBHOOK_SCHEMES.contains(&w.scheme.as_str()) {
                e.push(
                    format!("{at}.scheme"),
                    format!(
                        "unknown scheme \"{}\"; expected one of {}",
                        w.scheme,
                        WEBHOOK_SCHEMES.join(", ")
                    ),
                );
            }
            let mut secrets = Vec::new();
            for (k, s) in w.secrets.iter().enumerate() {
                match SecretRef::parse(s) {
                    Ok(r) => secrets.push(r),
                    Err(m) => e.push(format!("{at}.secrets[{k}]"), m),
                }
            }
            let tenant = w.tenant.as_ref().and_then(|t| {
                let ix = self.tenants.iter().position(|x| &x.name == t);
                if ix.is_none() {
                    e.push(format!("{at}.tenant"), format!("unknown tenant `{t}`"));
                }
                ix
            });
            let mut destinations = Vec::new();
            for (k, d) in w.destinations.iter().enumerate() {
                let dat = format!("{at}.destinations[{k}]");
                match BaseUrl::parse(&d.url) {
                    Ok(base) => {
                        if base.is_private() && !d.allow_private {
                            e.push(format!("{dat}.url"), format!("`{}` is a private, loopback or link-local address; set allow_private = true to allow it", d.url));
                        }
                        let sign_secret = d.sign_secret.as_ref().and_then(|s| {
                            SecretRef::parse(s)
                                .map_err(|m| e.push(format!("{dat}.sign_secret"), m))
                                .ok()
                        });
                        destinations.push(Destination {
                            url: d.url.clone(),
                            base,
                            sign_secret,
                            allow_private: d.allow_private,
                            attempts: d.attempts.unwrap_or(8).clamp(1, 50),
                        });
                    }
                    Err(m) => e.push(format!("{dat}.url"), m),
                }
            }
            webhooks.push(Webhook {
                name: w.name.clone(),
                scheme: w.scheme.clone(),
                secrets,
                tenant,
                tolerance: w.tolerance_s.map(Duration::from_secs),
                max_body_bytes: w.max_body_bytes.unwrap_or(1 << 20),
                dedup_ttl: Duration::from_secs(w.dedup_ttl_s.unwrap_or(7 * 24 * 3600)),
                destinations,
            });
        }

        // route table (conflicts)
        let table = if e.0.is_empty() {
            match RouteTable::build(&routes) {
                Ok(t) => Some(t),
                Err(conflicts) => {
                    for c in conflicts {
                        e.push(
                            format!(
                                "{}.match",
                                route_paths.get(c.later).map_or("routes", String::as_str)
                            ),
                            format!(
                                "conflicts with route `{}` (routes[{}]): same methods, host, path shape and header predicates",
                                routes.get(c.earlier).map_or("?", |r| r.name.as_str()),
                                c.earlier
                            ),
                        );
                    }
                    None
                }
            }
        } else {
            None
        };

        match table {
            Some(table) if e.0.is_empty() => Ok(Config {
                server: self.server.clone(),
                store: self.store.clone(),
                admin_token,
                tenants,
                providers,
                routes,
                table,
                webhooks,
                v1,
            }),
            _ => Err(ConfigErrors(e.0)),
        }
    }

    fn validate_route(
        &self,
        r: &RawRoute,
        at: &str,
        provider_ids: &BTreeMap<&str, usize>,
        e: &mut Errs,
    ) -> Option<Route> {
        let mut ok = true;
        let mut methods = MethodSet::NONE;
        if r.matcher.methods.is_empty() {
            methods = MethodSet::ANY;
        }
        for (k, m) in r.matcher.methods.iter().enumerate() {
            match Method::parse(&m.to_ascii_uppercase()) {
                Some(m) => methods = methods.with(m),
                None => {
                    ok = false;
                    e.push(
                        format!("{at}.match.methods[{k}]"),
                        format!("unknown method \"{m}\"; expected one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
                    );
                }
            }
        }
        let pattern = match PathPattern::parse(&r.matcher.path) {
            Ok(p) => Some(p),
            Err(m) => {
                e.push(format!("{at}.match.path"), m);
                None
            }
        };
        let upstream_path = match (&r.upstream_path, &pattern) {
            (Some(t), Some(p)) => match PathPattern::parse(t) {
                Ok(u) => {
                    for name in u.param_names() {
                        if !p.param_names().any(|n| n == name) {
                            ok = false;
                            e.push(
                                format!("{at}.upstream_path"),
                                format!(
                                    "`{{{name}}}` is not a parameter of match.path `{}`",
                                    r.matcher.path
                                ),
                            );
                        }
                    }
                    Some(u)
                }
                Err(m) => {
                    ok = false;
                    e.push(format!("{at}.upstream_path"), m);
                    None
                }
            },
            _ => None,
        };
        let mut headers = Vec::new();
        for (name, value) in &r.matcher.headers {
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                ok = false;
                e.push(
                    format!("{at}.match.headers"),
                    format!("`{name}` is not a header name"),
                );
            }
            headers.push((
                name.to_ascii_lowercase(),
                if value == "*" {
                    None
                } else {
                    Some(value.clone())
                },
            ));
        }
        let mut providers = Vec::new();
        if r.providers.is_empty() {
            ok = false;
            e.push(
                format!("{at}.providers"),
                "a route needs at least one provider",
            );
        }
        for (k, p) in r.providers.iter().enumerate() {
            match provider_ids.get(p.as_str()) {
                Some(ix) => {
                    if providers.contains(ix) {
                        ok = false;
                        e.push(
                            format!("{at}.providers[{k}]"),
                            format!("provider `{p}` listed twice"),
                        );
                    }
                    providers.push(*ix);
                }
                None => {
                    ok = false;
                    let known: Vec<&str> = provider_ids.keys().copied().collect();
                    e.push(
                        format!("{at}.providers[{k}]"),
                        format!(
                            "unknown provider `{p}`; configured providers: {}",
                            known.join(", ")
                        ),
                    );
                }
            }
        }
        let strategy = match r.strategy.as_deref().unwrap_or("priority") {
            "priority" | "failover" => Strategy::Priority,
            "weighted" => Strategy::Weighted,
            "round-robin" | "round_robin" => Strategy::RoundRobin,
            "random" => Strategy::Random,
            "least-latency" | "least_latency" => Strategy::LeastLatency,
            "cost-aware" | "cost_aware" => Strategy::CostAware {
                max_latency: Duration::from_millis(r.max_latency_ms.unwrap_or(1_000)),
            },
            "region-nearest" | "region_nearest" => Strategy::RegionNearest,
            "adaptive" => Strategy::Adaptive,
            other => {
                ok = false;
                e.push(
                    format!("{at}.strategy"),
                    format!("unknown strategy \"{other}\"; expected one of {STRATEGIES}"),
                );
                Strategy::Priority
            }
        };
        let retry = pick(&r.policies.retry, &self.defaults.retry);
        let timeout = pick(&r.policies.timeout, &self.defaults.timeout);
        let breaker = pick(&r.policies.breaker, &self.defaults.breaker);
        let cache = pick(&r.policies.cache, &self.defaults.cache);
        let limit = r
            .policies
            .limit
            .clone()
            .or_else(|| self.defaults.limit.clone());

        let retry = parse_retry(&retry, &format!("{at}.retry"), e, r.retry_non_idempotent);
        let timeout = TimeoutPolicy {
            per_try: ms(timeout.per_try_ms, 5_000),
            total: ms(timeout.total_ms, 15_000),
        };
        if timeout.per_try.is_zero() || timeout.total.is_zero() {
            ok = false;
            e.push(format!("{at}.timeout"), "timeouts must be greater than 0");
        }
        let breaker = parse_breaker(&breaker, &format!("{at}.breaker"), e);
        let cache = CachePolicy {
            enabled: cache.enabled.unwrap_or(false),
            ttl: Duration::from_secs(cache.ttl_s.unwrap_or(0)),
            override_upstream: cache.override_upstream.unwrap_or(false),
            stale_while_revalidate: cache.stale_while_revalidate_s.map(Duration::from_secs),
            stale_if_error: cache.stale_if_error_s.map(Duration::from_secs),
            vary: cache
                .vary
                .clone()
                .unwrap_or_default()
                .into_iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
        };
        let limit = limit.and_then(|l| parse_limit(&l, &format!("{at}.limit"), e));
        let host = r.matcher.host.as_ref().map(|h| h.to_ascii_lowercase());
        match (ok, pattern, retry, breaker) {
            (true, Some(pattern), Some(retry), Some(breaker)) => Some(Route {
                name: r.name.clone(),
                methods,
                host,
                pattern,
                headers,
                providers,
                strategy,
                upstream_path,
                retry,
                timeout,
                breaker,
                cache,
                limit,
                forward_caller_auth: r.forward_caller_auth,
                public: r.public,
            }),
            _ => None,
        }
    }
}

fn pick<T: Clone + Default>(route: &Option<T>, default: &Option<T>) -> T {
    route
        .clone()
        .or_else(|| default.clone())
        .unwrap_or_default()
}

fn parse_auth(a: &RawAuth, at: &str, e: &mut Errs) -> AuthScheme {
    let secret = match &a.secret {
        Some(s) => match SecretRef::parse(s) {
            Ok(r) => Some(r),
            Err(m) => {
                e.push(format!("{at}.secret"), m);
                return AuthScheme::None;
            }
        },
        None => None,
    };
    let need = |e: &mut Errs| {
        if secret.is_none() {
            e.push(
                format!("{at}.secret"),
                format!("auth scheme `{}` needs a secret reference", a.scheme),
            );
        }
    };
    match a.scheme.as_str() {
        "none" => AuthScheme::None,
        "bearer" => {
            need(e);
            secret.map_or(AuthScheme::None, AuthScheme::Bearer)
        }
        "token" => {
            need(e);
            secret.map_or(AuthScheme::None, AuthScheme::Token)
        }
        "basic" => {
            need(e);
            secret.map_or(AuthScheme::None, AuthScheme::Basic)
        }
        "header" => {
            need(e);
            let Some(h) = a.header.clone().filter(|h| !h.is_empty()) else {
                e.push(
                    format!("{at}.header"),
                    "auth scheme `header` needs a header name",
                );
                return AuthScheme::None;
            };
            if !crate::head::is_token(&h) {
                // caught here, not as every request's failure to send (which would look like
                // the provider failing and open its breaker)
                e.push(
                    format!("{at}.header"),
                    format!("\"{h}\" is not a valid header name (letters, digits and !#$%&'*+-.^_`|~ only)"),
                );
                return AuthScheme::None;
            }
            secret.map_or(AuthScheme::None, |s| AuthScheme::Header(h, s))
        }
        other => {
            e.push(
                format!("{at}.scheme"),
                format!("unknown auth scheme \"{other}\"; expected one of bearer, token, basic, header, none"),
            );
            AuthScheme::None
        }
    }
}

/// Parses `sha256:<64 hex>` into a digest.
#[must_use]
pub fn parse_key_hash(s: &str) -> Option<[u8; 32]> {
    let hex_part = s.strip_prefix("sha256:")?;
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_part, &mut out).ok()?;
    Some(out)
}

fn parse_limit(l: &RawLimit, at: &str, e: &mut Errs) -> Option<RateLimit> {
    if !(l.rate.is_finite() && l.rate > 0.0 && l.rate <= 1_000_000.0) {
        e.push(
            format!("{at}.rate"),
            "must be a number of requests per second in (0, 1000000]",
        );
        return None;
    }
    let burst = l.burst.unwrap_or(1);
    if burst == 0 {
        e.push(format!("{at}.burst"), "must be at least 1");
        return None;
    }
    Some(RateLimit::new(l.rate, burst))
}

fn parse_retry(r: &RawRetry, at: &str, e: &mut Errs, non_idempotent: bool) -> Option<RetryPolicy> {
    let mut ok = true;
    let attempts = r.attempts.unwrap_or(3);
    if attempts == 0 || attempts > 10 {
        ok = false;
        e.push(
            format!("{at}.attempts"),
            format!("{attempts} is out of range; expected 1..=10"),
        );
    }
    let ratio = r.budget_ratio.unwrap_or(0.2);
    if !(ratio.is_finite() && (0.0..=10.0).contains(&ratio)) {
        ok = false;
        e.push(format!("{at}.budget_ratio"), "must be between 0 and 10");
    }
    let statuses = r
        .on_status
        .clone()
        .unwrap_or_else(|| alloc::vec![502, 503, 504]);
    for (k, s) in statuses.iter().enumerate() {
        if !(100..=599).contains(s) {
            ok = false;
            e.push(
                format!("{at}.on_status[{k}]"),
                format!("{s} is not an HTTP status"),
            );
        }
    }
    let base = ms(r.backoff_base_ms, 25);
    let max = ms(r.backoff_max_ms, 1_000);
    if max < base {
        ok = false;
        e.push(
            format!("{at}.backoff_max_ms"),
            "must be at least backoff_base_ms",
        );
    }
    ok.then(|| RetryPolicy {
        max_attempts: attempts,
        backoff: Backoff { base, max },
        retry_on_status: statuses,
        budget: BudgetPolicy {
            ratio,
            min_per_sec: r.budget_min_per_sec.unwrap_or(10),
            window: Duration::from_secs(10),
        },
        non_idempotent,
    })
}

fn rate(v: Option<f64>, default: f64, at: &str, e: &mut Errs) -> f64 {
    let v = v.unwrap_or(default);
    if !(v.is_finite() && (0.0..=1.0).contains(&v)) {
        e.push(at.to_string(), format!("{v} is not a rate between 0 and 1"));
    }
    v
}

fn parse_breaker(b: &RawBreaker, at: &str, e: &mut Errs) -> Option<BreakerPolicy> {
    let before = e.0.len();
    let size = b.size.unwrap_or(20);
    let window = match b.window.as_deref().unwrap_or("count") {
        "count" => {
            if !(1..=1000).contains(&size) {
                e.push(format!("{at}.size"), "a count window holds 1..=1000 calls");
            }
            Window::Count(size)
        }
        "time" => {
            if !(1..=600).contains(&size) {
                e.push(format!("{at}.size"), "a time window spans 1..=600 seconds");
            }
            Window::Time(size)
        }
        other => {
            e.push(
                format!("{at}.window"),
                format!("unknown window \"{other}\"; expected count or time"),
            );
            Window::Count(size)
        }
    };
    let failure_rate = rate(b.failure_rate, 0.5, &format!("{at}.failure_rate"), e);
    let slow_rate = rate(b.slow_rate, 1.0, &format!("{at}.slow_rate"), e);
    let mut failure = FailureClass::default();
    if let Some(list) = &b.failure_on {
        failure = FailureClass::none();
        for (k, item) in list.iter().enumerate() {
            if let Err(m) = failure.add(item) {
                e.push(format!("{at}.failure_on[{k}]"), m);
            }
        }
    }
    let open = ms(b.open_ms, 5_000);
    let open_max = ms(b.open_max_ms, 60_000);
    if open_max < open {
        e.push(format!("{at}.open_max_ms"), "must be at least open_ms");
    }
    let probes = b.half_open_probes.unwrap_or(1);
    if probes == 0 {
        e.push(format!("{at}.half_open_probes"), "must be at least 1");
    }
    (e.0.len() == before).then(|| BreakerPolicy {
        window,
        min_calls: b.min_calls.unwrap_or(5).max(1),
        failure_rate,
        slow_rate,
        slow_call: ms(b.slow_ms, 2_000),
        open_base: open,
        open_max,
        half_open_probes: probes,
        failure,
    })
}
