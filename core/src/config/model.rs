//! The validated model: what [`RawConfig::validate`](super::RawConfig::validate) builds and
//! [`crate::engine::Router::new`] runs.

use alloc::borrow::ToOwned;
use alloc::collections::BTreeMap;
use alloc::collections::BTreeSet;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

use super::raw::{RawServer, RawStore};
use crate::breaker::BreakerPolicy;
use crate::cache::CachePolicy;
use crate::http::MethodSet;
use crate::limit::RateLimit;
use crate::region::Region;
use crate::retry::{RetryPolicy, TimeoutPolicy};
use crate::route::{Matcher, PathPattern, RouteTable};

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

impl Matcher for Route {
    fn methods(&self) -> MethodSet {
        self.methods
    }
    fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }
    fn pattern(&self) -> &PathPattern {
        &self.pattern
    }
    fn headers(&self) -> &[(String, Option<String>)] {
        &self.headers
    }
}

/// A selection strategy: the validated `routes[].strategy`, carried out by `select::order`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Strategy {
    /// Configured order; later ones only on failover.
    Priority,
    /// Smooth weighted round robin (nginx's): proportional to weights, evenly interleaved.
    Weighted,
    /// Each provider in turn.
    RoundRobin,
    /// Uniformly random order.
    Random,
    /// Power of two choices on peak-EWMA load cost.
    LeastLatency,
    /// Cheapest healthy provider whose latency estimate is within the bound.
    CostAware {
        /// Latency bound.
        max_latency: Duration,
    },
    /// Nearest to the caller (colo, country, continent, neighbour), ties in configured order.
    RegionNearest,
    /// Epsilon-greedy over success rate and latency: mostly the best scorer, sometimes explore.
    Adaptive,
}

impl Strategy {
    /// The strategy's config name.
    #[must_use]
    pub const fn name(&self) -> &'static str {
        match self {
            Strategy::Priority => "priority",
            Strategy::Weighted => "weighted",
            Strategy::RoundRobin => "round-robin",
            Strategy::Random => "random",
            Strategy::LeastLatency => "least-latency",
            Strategy::CostAware { .. } => "cost-aware",
            Strategy::RegionNearest => "region-nearest",
            Strategy::Adaptive => "adaptive",
        }
    }
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

/// Parses `sha256:<64 hex>` into a digest.
#[must_use]
pub fn parse_key_hash(s: &str) -> Option<[u8; 32]> {
    let hex_part = s.strip_prefix("sha256:")?;
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_part, &mut out).ok()?;
    Some(out)
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
