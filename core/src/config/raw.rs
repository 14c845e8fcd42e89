//! The raw model: what serde reads from the configuration file, before validation.
//!
//! Enum-like fields are strings here precisely so that a bad value is reported with its key
//! path alongside all the others (see [`RawConfig::validate`]).

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

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
