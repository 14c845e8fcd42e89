//! The engine: admission (route, tenant, limits), then a per-request state machine that picks
//! providers, retries, fails over and gives up, in the style of quinn-proto.
//!
//! ```text
//! let admitted = router.admit(&mut state, &request, now)?;      // or a Problem to answer
//! let mut call = Call::new(&router, &mut state, &request, admitted, now);
//! loop {
//!     match call.poll(&router, &mut state, now) {
//!         Step::Attempt(a) => { let out = host.fetch(&a).await; now = host.now();
//!                               call.handle_outcome(&router, &mut state, a.id, out, now); }
//!         Step::Sleep(t)   => { host.sleep_until(t).await; now = host.now(); }
//!         Step::Respond(f) => break f,
//!         Step::Wait       => unreachable!("an attempt is in flight"),
//!     }
//! }
//! ```
//!
//! # Retry and failover rules
//! - A retryable result is a status in the route's `retry.on_status`, a 429, or a transport
//!   error (connect, timeout, reset). Anything else is final and passed through.
//! - The next attempt goes to the next provider in the selected order whose breaker admits and
//!   that is not cooling down — immediately, with no backoff: a different provider does not
//!   share the failure. Only when the order wraps round to a provider already tried does the
//!   engine back off (full jitter), or wait for a cooldown to end.
//! - Every retry takes from the route's retry budget; an empty budget ends the request.
//! - Non-idempotent requests (POST, PATCH) are retried only when nothing was sent (connect
//!   refused, DNS, TLS), on a 429, when they carry an `Idempotency-Key`, or when the route
//!   opts in with `retry_non_idempotent`.
//! - No attempt starts after the overall deadline; each attempt's deadline is
//!   `min(now + per_try, overall)`.
//! - A 429 or a `Retry-After` cools the provider down until the given time (not a breaker
//!   failure); so does a rate-limit remaining count at or below the provider's `cooldown_below`.

use alloc::borrow::Cow;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::time::Duration;

use crate::breaker::{Admission, Breaker, CallResult};
use crate::cache;
use crate::config::{AuthScheme, Config, SecretRef};
use crate::counters::Metrics;
use crate::http::{is_hop_by_hop, HeaderList, Headers, Method};
use crate::limit;
use crate::problem::{Problem, ProblemKind};
use crate::region::Locality;
use crate::retry::{parse_retry_after, RetryBudget};
use crate::rng::Rng;
use crate::secret::{key_matches, Secret};
use crate::select::{self, Inputs, RouteSelection};
use crate::stats::ProviderStats;
use crate::target::{join_target, parse_target};
use crate::time::Instant;

pub use crate::attempt::{AttemptResult, FetchError};

/// Longest cooldown a provider's signals can impose.
pub const MAX_COOLDOWN: Duration = Duration::from_secs(3600);
/// Cooldown after a 429 that says nothing about when to come back.
pub const DEFAULT_COOLDOWN: Duration = Duration::from_secs(1);

/// An inbound request as the host sees it.
#[derive(Clone, Debug)]
pub struct Request<'a> {
    /// Method.
    pub method: Method,
    /// Host header / authority without port, if any.
    pub host: Option<&'a str>,
    /// Raw request target, `/path?query`.
    pub target: &'a str,
    /// Request headers.
    pub headers: &'a [(String, String)],
    /// Caller's IP, for `Forwarded`.
    pub client_ip: Option<&'a str>,
    /// Whether the caller reached the host over TLS (`proto=` in `Forwarded`).
    pub https: bool,
    /// Caller's locality (Workers `request.cf`).
    pub locality: Locality,
    /// Host-generated request id (random, unique enough to grep logs).
    pub id: &'a str,
}

/// What the router does with a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint<'a> {
    /// `GET /_mosaic/health`, open to everyone.
    Health,
    /// Another `/_mosaic/…` path: admin token required.
    Admin(&'a str),
    /// `/hooks/{name}`.
    Hook(&'a str),
    /// Everything else: proxied by a route.
    Proxy,
}

/// Classifies a request path.
#[must_use]
pub fn classify(path: &str) -> Endpoint<'_> {
    let path = crate::target::path_of(path);
    if path == "/_mosaic/health" {
        Endpoint::Health
    } else if let Some(rest) = path.strip_prefix("/_mosaic/") {
        Endpoint::Admin(rest)
    } else if let Some(name) = path.strip_prefix("/hooks/") {
        Endpoint::Hook(name)
    } else {
        Endpoint::Proxy
    }
}

/// A configuration with its secrets resolved: immutable, shared by all requests.
pub struct Router {
    /// The validated configuration.
    pub config: Config,
    secrets: BTreeMap<SecretRef, Secret>,
    /// Secrets that could not be resolved, with what that means (for the host to log).
    pub warnings: Vec<String>,
}

impl core::fmt::Debug for Router {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Router")
            .field("routes", &self.config.routes.len())
            .field("providers", &self.config.providers.len())
            .field("secrets", &self.secrets.len())
            .finish()
    }
}

/// Who is calling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantId {
    /// Tenant index, `None` for the implicit `default`/`public` tenant.
    pub index: Option<usize>,
    /// Tenant name (`default` when no tenants are configured, `public` on public routes;
    /// those two are not allocated for every request).
    pub name: Cow<'static, str>,
}

/// A request that passed admission.
#[derive(Clone, Debug)]
pub struct Admitted {
    /// Route index.
    pub route: usize,
    /// Tenant.
    pub tenant: TenantId,
    /// Upstream path (rendered template or the request path).
    pub upstream_path: String,
    /// Query, unchanged.
    pub query: Option<String>,
    /// Cache key when the request may use the cache.
    pub cache_key: Option<String>,
    /// `RateLimit-*` headers to add to the response.
    pub limit_headers: HeaderList,
}

/// One thing the host must do.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub enum Step {
    /// Send this request upstream and report the outcome.
    Attempt(Attempt),
    /// Sleep until this instant, then poll again.
    Sleep(Instant),
    /// Answer the caller.
    Respond(Final),
    /// An attempt is in flight: report its outcome first.
    Wait,
}

/// An upstream request to perform.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// Attempt id within the call (1-based).
    pub id: u32,
    /// Provider index.
    pub provider: usize,
    /// Provider id.
    pub provider_id: String,
    /// Method.
    pub method: Method,
    /// Full URL: the provider's origin, base path, upstream path and query.
    pub url: String,
    /// Headers to send (sanitized caller headers, forwarding headers, credentials).
    pub headers: HeaderList,
    /// Give up on this attempt at this instant (report [`FetchError::Timeout`]).
    pub deadline: Instant,
    /// Whether private/loopback addresses are allowed for this provider.
    pub allow_private: bool,
}

/// What an attempt produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A response head.
    Response {
        /// Status.
        status: u16,
        /// Headers.
        headers: HeaderList,
    },
    /// No response.
    Error(FetchError),
}

/// An [`Outcome`] with borrowed headers.
#[derive(Clone, Copy)]
enum Seen<'a> {
    Response(u16, &'a [(String, String)]),
    Error(FetchError),
}

/// How the call ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Final {
    /// Answer with the response of this attempt (its body is the host's).
    Upstream {
        /// Attempt id.
        attempt: u32,
        /// Its status.
        status: u16,
    },
    /// Answer with a problem.
    Problem(Problem),
}

/// Per-provider state.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProviderState {
    /// Latency/load/success statistics.
    pub stats: ProviderStats,
    /// Refuse until this instant (429, Retry-After, rate-limit headers).
    pub cool_until: Instant,
}

/// Per-route state.
#[derive(Clone, Debug, PartialEq)]
pub struct RouteState {
    /// One breaker per route provider slot.
    pub breakers: Vec<Breaker>,
    /// Selection state.
    pub selection: RouteSelection,
    /// Retry budget.
    pub budget: RetryBudget,
}

/// Daily quota usage of a tenant.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct QuotaUsage {
    /// UTC day number (days since the epoch).
    pub day: u64,
    /// Requests admitted that day.
    pub requests: u64,
    /// Cost units spent that day.
    pub cost: f64,
}

/// All mutable router state: shared by requests, snapshotted by hosts.
#[derive(Clone, Debug)]
pub struct State {
    /// Per provider (config indices).
    pub providers: Vec<ProviderState>,
    /// Per route (config indices).
    pub routes: Vec<RouteState>,
    /// GCRA theoretical arrival times by limiter key.
    pub limiters: BTreeMap<String, Instant>,
    /// Quota usage by tenant name.
    pub quotas: BTreeMap<String, QuotaUsage>,
    /// Seeded RNG.
    pub rng: Rng,
    /// Counters.
    pub metrics: Metrics,
    /// Bumped on every material change (breaker transition or a failure counted toward one,
    /// cooldown, limiter/quota update).
    pub material: u64,
    /// The providers' statistics as [`Call::new`] hands them to selection: kept between
    /// requests so that copying them allocates nothing.
    stats_scratch: Vec<ProviderStats>,
}

impl State {
    /// Fresh state for `config`, seeded.
    #[must_use]
    pub fn new(config: &Config, seed: u64) -> State {
        State {
            providers: alloc::vec![ProviderState::default(); config.providers.len()],
            routes: config
                .routes
                .iter()
                .map(|r| RouteState {
                    breakers: r
                        .providers
                        .iter()
                        .map(|_| Breaker::new(&r.breaker))
                        .collect(),
                    selection: RouteSelection::default(),
                    budget: RetryBudget::default(),
                })
                .collect(),
            limiters: BTreeMap::new(),
            quotas: BTreeMap::new(),
            rng: Rng::seed(seed),
            metrics: Metrics::default(),
            material: 0,
            stats_scratch: Vec::new(),
        }
    }

    /// Whether provider `p` can take an attempt now on route `r`, slot `slot`.
    #[must_use]
    pub fn available(&self, config: &Config, r: usize, slot: usize, now: Instant) -> bool {
        let Some(route) = config.routes.get(r) else {
            return false;
        };
        let Some(&p) = route.providers.get(slot) else {
            return false;
        };
        let cool = self.providers.get(p).is_some_and(|ps| ps.cool_until > now);
        let admits = self.routes[r].breakers[slot].would_admit(&route.breaker, now);
        !cool && admits
    }

    /// When provider slot `slot` of route `r` could next be available.
    #[must_use]
    pub fn available_at(&self, config: &Config, r: usize, slot: usize) -> Instant {
        let route = &config.routes[r];
        let p = route.providers[slot];
        let cool = self.providers[p].cool_until;
        let b = self.routes[r].breakers[slot]
            .retry_at()
            .unwrap_or(Instant::EPOCH);
        cool.max(b)
    }

    /// Drops limiter entries whose TAT is in the past (they would admit a full burst anyway).
    pub fn prune_limiters(&mut self, now: Instant) {
        self.limiters.retain(|_, tat| *tat > now);
    }
}

impl Router {
    /// Builds a router from a validated config, resolving secrets with `resolve`.
    /// Unresolvable secrets become warnings: the admin API stays closed, providers are called
    /// without credentials, webhook endpoints reject everything.
    pub fn new(config: Config, resolve: impl Fn(&SecretRef) -> Option<String>) -> Router {
        let mut secrets = BTreeMap::new();
        let mut warnings = Vec::new();
        for r in config.secret_refs() {
            match resolve(&r) {
                Some(v) if !v.trim().is_empty() => {
                    secrets.insert(r, Secret::new(v));
                }
                _ => warnings.push(format!("secret `{r}` is not set")),
            }
        }
        // a credential sent as it is (Basic encodes its own) must be sendable in a header: the
        // providers' own, and the tenants' for a provider (sent with the provider's scheme)
        let sent_raw = |p: usize| !matches!(config.providers[p].auth, AuthScheme::Basic(_));
        let credentials = config
            .providers
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.auth.secret().map(|r| (i, r, None)))
            .chain(config.tenants.iter().flat_map(|t| {
                t.credentials
                    .iter()
                    .map(move |(&i, r)| (i, r, Some(t.name.as_str())))
            }));
        for (p, r, tenant) in credentials {
            let unsendable = secrets
                .get(r)
                .is_some_and(|s| !crate::head::is_field_value(s.expose()));
            if p < config.providers.len() && sent_raw(p) && unsendable {
                let whose = match tenant {
                    Some(t) => format!(
                        "tenant `{t}`'s credential for provider `{}`",
                        config.providers[p].id
                    ),
                    None => format!("provider `{}`'s credential", config.providers[p].id),
                };
                warnings.push(format!(
                    "secret `{r}` ({whose}) holds a control character such as a line break: it cannot be sent in a header, so every call with it fails until it is fixed"
                ));
            }
        }
        if config.admin_token.is_none() {
            warnings.push(String::from(
                "no admin token configured ([server] admin_token): /_mosaic/* except health answers 401",
            ));
        } else if let Some(r) = &config.admin_token {
            if !secrets.contains_key(r) {
                warnings.push(format!(
                    "admin token `{r}` is not set: /_mosaic/* except health answers 401 until it is"
                ));
            }
        }
        Router {
            config,
            secrets,
            warnings,
        }
    }

    /// A resolved secret.
    #[must_use]
    pub fn secret(&self, r: &SecretRef) -> Option<&Secret> {
        self.secrets.get(r)
    }

    /// Checks the admin token (`Authorization: Bearer …` or `X-Mosaic-Admin-Token`), in
    /// constant time. Tenant keys never pass.
    ///
    /// # Errors
    /// A 401 problem.
    pub fn check_admin<H: Headers + ?Sized>(&self, headers: &H) -> Result<(), Problem> {
        let Some(token) = self
            .config
            .admin_token
            .as_ref()
            .and_then(|r| self.secrets.get(r))
        else {
            return Err(Problem::new(
                ProblemKind::Unauthorized,
                "the admin API is closed: no admin token is configured or set",
            ));
        };
        let presented = headers
            .header("x-mosaic-admin-token")
            .or_else(|| bearer(headers));
        match presented {
            Some(p) if token.matches(p.as_bytes()) => Ok(()),
            Some(_) => Err(Problem::new(
                ProblemKind::Unauthorized,
                "invalid admin token",
            )),
            None => Err(Problem::new(
                ProblemKind::Unauthorized,
                "admin token required (Authorization: Bearer …)",
            )),
        }
    }

    /// Identifies the tenant of a request for `route` (None: not yet routed).
    ///
    /// # Errors
    /// 401 when a key is needed and missing or wrong.
    pub fn authenticate<H: Headers + ?Sized>(
        &self,
        headers: &H,
        public: bool,
    ) -> Result<TenantId, Problem> {
        let tenants = &self.config.tenants;
        if tenants.is_empty() {
            return Ok(TenantId {
                index: None,
                name: Cow::Borrowed("default"),
            });
        }
        let key = headers.header("x-mosaic-key").or_else(|| bearer(headers));
        if let Some(k) = key {
            let mut found = None;
            for (i, t) in tenants.iter().enumerate() {
                // evaluate every tenant: no early exit
                if key_matches(k.as_bytes(), &t.key_hashes) && found.is_none() {
                    found = Some(i);
                }
            }
            if let Some(i) = found {
                return Ok(TenantId {
                    index: Some(i),
                    name: Cow::Owned(tenants[i].name.clone()),
                });
            }
            if !public {
                return Err(Problem::new(ProblemKind::Unauthorized, "invalid API key"));
            }
        }
        if public {
            return Ok(TenantId {
                index: None,
                name: Cow::Borrowed("public"),
            });
        }
        Err(Problem::new(
            ProblemKind::Unauthorized,
            "API key required (Authorization: Bearer <key> or X-Mosaic-Key)",
        ))
    }

    /// Routes, authenticates and rate-limits a proxied request.
    ///
    /// # Errors
    /// The problem to answer with.
    pub fn admit(
        &self,
        state: &mut State,
        req: &Request<'_>,
        now: Instant,
    ) -> Result<Admitted, Problem> {
        let target = parse_target(req.target)
            .map_err(|e| Problem::new(ProblemKind::BadTarget, e.describe()))?;
        let m = self
            .config
            .table
            .lookup(req.method, req.host, target.path, req.headers)
            .ok_or_else(|| {
                Problem::new(
                    ProblemKind::NoRoute,
                    format!("{} {} matches no route", req.method.as_str(), target.path),
                )
            })?;
        let r = m.route;
        let route = &self.config.routes[r];
        let tenant = self.authenticate(req.headers, route.public)?;
        let t = tenant.index.map(|i| &self.config.tenants[i]);
        if let Some(t) = t {
            if t.routes.as_ref().is_some_and(|set| !set.contains(&r)) {
                state.metrics.count_denied(&tenant.name);
                return Err(Problem::new(
                    ProblemKind::Forbidden,
                    format!("tenant `{}` may not use route `{}`", t.name, route.name),
                ));
            }
        }
        // quota
        let day = now.as_secs() / 86_400;
        if let Some(t) = t {
            let u = state.quotas.entry(t.name.clone()).or_default();
            if u.day != day {
                *u = QuotaUsage {
                    day,
                    ..QuotaUsage::default()
                };
            }
            let over_requests = t.requests_per_day.is_some_and(|q| u.requests >= q);
            let over_cost = t.cost_per_day.is_some_and(|q| u.cost >= q);
            if over_requests || over_cost {
                let midnight = Instant::from_secs((day + 1) * 86_400);
                state.metrics.count_rate_limited(&tenant.name);
                return Err(Problem::new(
                    ProblemKind::QuotaExceeded,
                    format!(
                        "tenant `{}` has used its daily {} quota",
                        t.name,
                        if over_requests { "request" } else { "cost" }
                    ),
                )
                .retry_after(midnight - now));
            }
        }
        // rate limits: tenant-wide, then tenant × route; nothing is spent unless both admit
        let mut limit_headers = HeaderList::new();
        let mut updates: Vec<(String, Instant)> = Vec::new();
        let checks = [
            (t.and_then(|t| t.limit), LimitScope::Tenant),
            (route.limit, LimitScope::TenantRoute),
        ];
        let mut tightest: Option<limit::Decision> = None;
        for (l, scope) in checks {
            let Some(l) = l else { continue };
            // keys are built only for limits that exist: most requests have none
            let key = match scope {
                LimitScope::Tenant => format!("t:{}", tenant.name),
                LimitScope::TenantRoute => format!("tr:{}:{}", tenant.name, route.name),
            };
            let d = limit::check(&l, state.limiters.get(&key).copied(), now);
            if !d.allowed {
                state.metrics.count_rate_limited(&tenant.name);
                let mut p = Problem::new(
                    ProblemKind::RateLimited,
                    format!(
                        "rate limit for `{}` exceeded",
                        key.split_once(':').map_or("", |x| x.1)
                    ),
                )
                .retry_after(d.retry_after)
                .rate_limit(l.burst, d.reset);
                p.detail.push_str("; retry after the Retry-After delay");
                return Err(p);
            }
            if tightest.is_none_or(|x| d.remaining < x.remaining) {
                tightest = Some(d);
                limit_headers = alloc::vec![
                    (String::from("ratelimit-limit"), l.burst.to_string()),
                    (String::from("ratelimit-remaining"), d.remaining.to_string()),
                    (
                        String::from("ratelimit-reset"),
                        d.reset.as_secs().to_string()
                    ),
                ];
            }
            updates.push((key, d.tat));
        }
        if !updates.is_empty() {
            state.material = state.material.wrapping_add(1);
        }
        for (k, tat) in updates {
            state.limiters.insert(k, tat);
        }
        if let Some(t) = t {
            if let Some(u) = state.quotas.get_mut(&t.name) {
                u.requests += 1;
                if t.requests_per_day.is_some() {
                    state.material = state.material.wrapping_add(1);
                }
            }
        }
        let upstream_path = match &route.upstream_path {
            Some(tpl) => tpl.render(&m.params),
            None => String::from(target.path),
        };
        let cache_key =
            cache::request_cacheable(&route.cache, req.method, req.headers).then(|| {
                cache::key(
                    &tenant.name,
                    &route.name,
                    req.method,
                    req.host.unwrap_or(""),
                    req.target,
                    &route.cache,
                    req.headers,
                )
            });
        Ok(Admitted {
            route: r,
            tenant,
            upstream_path,
            query: target.query.map(String::from),
            cache_key,
            limit_headers,
        })
    }
}

#[derive(Clone, Copy)]
enum LimitScope {
    Tenant,
    TenantRoute,
}

fn bearer<H: Headers + ?Sized>(h: &H) -> Option<&str> {
    let v = h.header("authorization")?;
    let (scheme, rest) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

/// Caller headers never forwarded unless the route says so.
const CALLER_CREDENTIALS: [&str; 4] = [
    "authorization",
    "cookie",
    "x-mosaic-key",
    "x-mosaic-admin-token",
];
/// Headers the proxy sets itself.
const PROXY_SET: [&str; 7] = [
    "host",
    "content-length",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    // the router answers `100-continue` itself and sends the body it read whole: asked again,
    // an upstream's interim 100 would reach a platform's fetch as the final answer
    "expect",
];

/// Builds the headers sent upstream (without credentials, which are per attempt).
#[must_use]
pub fn upstream_headers(req: &Request<'_>, forward_caller_auth: bool, rng: &mut Rng) -> HeaderList {
    // room for the caller's headers and the four forwarding and tracing ones added below
    let mut out: HeaderList = Vec::with_capacity(req.headers.len() + 4);
    upstream_headers_into(req, forward_caller_auth, rng, &mut out);
    out
}

/// [`upstream_headers`] written into `out`, whose entries' strings are reused (written over)
/// and whose extra entries are dropped: a host that keeps the lists of finished requests
/// saves an allocation per name and per value.
pub fn upstream_headers_into(
    req: &Request<'_>,
    forward_caller_auth: bool,
    rng: &mut Rng,
    out: &mut HeaderList,
) {
    let connection = req.headers.header("connection");
    let mut used = 0;
    out.reserve((req.headers.len() + 4).saturating_sub(out.len()));
    for (n, v) in req.headers.iter() {
        let n = n.as_str();
        let kept = !is_hop_by_hop(n, connection)
            && !PROXY_SET.iter().any(|h| h.eq_ignore_ascii_case(n))
            // ours: the caller's own is continued below, not passed on
            && !n.eq_ignore_ascii_case("traceparent")
            // never forwarded, whatever `forward_caller_auth` says (the tenant key among them)
            && !n
                .get(..9)
                .is_some_and(|p| p.eq_ignore_ascii_case("x-mosaic-"))
            && (forward_caller_auth
                || !CALLER_CREDENTIALS.iter().any(|h| h.eq_ignore_ascii_case(n)));
        if kept {
            next_slot(out, &mut used, n).push_str(v);
        }
    }
    let prior_xff = req.headers.header("x-forwarded-for");
    if let Some(ip) = req.client_ip {
        let host = req.host.unwrap_or("");
        let forwarded = next_slot(out, &mut used, "forwarded");
        forwarded.reserve(28 + ip.len() + host.len());
        forwarded.push_str("for=");
        if ip.contains(':') {
            forwarded.push_str("\"[");
            forwarded.push_str(ip);
            forwarded.push_str("]\"");
        } else {
            forwarded.push_str(ip);
        }
        forwarded.push_str(";host=");
        forwarded.push_str(host);
        forwarded.push_str(if req.https {
            ";proto=https"
        } else {
            ";proto=http"
        });
        let xff = next_slot(out, &mut used, "x-forwarded-for");
        if let Some(p) = prior_xff {
            xff.push_str(p);
            xff.push_str(", ");
        }
        xff.push_str(ip);
    }
    if let Some(h) = req.host {
        next_slot(out, &mut used, "x-forwarded-host").push_str(h);
    }
    // W3C trace context: continue a valid incoming trace, else start one
    let incoming = req
        .headers
        .header("traceparent")
        .filter(|t| valid_traceparent(t));
    // same draw order as ever: span id first, then a new trace id
    let span = rng.next_u64() | 1;
    // built as bytes and checked as text once: `00-{trace id}-{span id}-{flags}`
    let mut tp = *b"00-00000000000000000000000000000000-0000000000000000-01";
    match incoming {
        Some(t) => tp[3..35].copy_from_slice(&t.as_bytes()[3..35]),
        None => {
            tp[3..19].copy_from_slice(&crate::codec::hex16(rng.next_u64() | 1));
            tp[19..35].copy_from_slice(&crate::codec::hex16(rng.next_u64()));
        }
    }
    tp[36..52].copy_from_slice(&crate::codec::hex16(span));
    if let Some(t) = incoming {
        tp[53..55].copy_from_slice(&t.as_bytes()[53..55]);
    }
    // hex digits, dashes and an incoming trace's checked hex: always text
    next_slot(out, &mut used, "traceparent")
        .push_str(core::str::from_utf8(&tp).unwrap_or_default());
    out.truncate(used);
}

/// The value of the next header of `out` (the `used`-th), named `name` and empty: an existing
/// entry's strings are written over, a new entry is added past the end.
fn next_slot<'o>(out: &'o mut HeaderList, used: &mut usize, name: &str) -> &'o mut String {
    let i = *used;
    *used += 1;
    if i < out.len() {
        let (n, v) = &mut out[i];
        n.clear();
        n.push_str(name);
        v.clear();
    } else {
        out.push((String::from(name), String::new()));
    }
    &mut out[i].1
}

fn valid_traceparent(t: &str) -> bool {
    let b = t.as_bytes();
    b.len() == 55
        && &t[0..3] == "00-"
        && b[35] == b'-'
        && b[52] == b'-'
        && t[3..35]
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        && t[36..52]
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        && t[53..55].bytes().all(|c| c.is_ascii_hexdigit())
        && &t[3..35] != "00000000000000000000000000000000"
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    Ready,
    InFlight(u32),
    Sleeping(Instant),
    Done(Final),
}

/// One attempt's record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptRecord {
    /// Id.
    pub id: u32,
    /// Provider index.
    pub provider: usize,
    /// Slot in the route's provider list.
    pub slot: usize,
    /// Started at.
    pub started: Instant,
    /// Admitted as a half-open probe.
    pub probe: bool,
    /// Result: status or error name.
    pub result: Option<AttemptResult>,
    /// Latency.
    pub latency: Duration,
}

/// A request in flight through the engine.
#[derive(Clone, Debug)]
pub struct Call {
    route: usize,
    method: Method,
    retry_unsent_only: bool,
    headers: HeaderList,
    path_and_query: String,
    tenant: Option<usize>,
    order: Vec<usize>,
    cursor: usize,
    attempts: Vec<AttemptRecord>,
    started: Instant,
    deadline: Instant,
    phase: Phase,
    retries: u32,
    tried_all_once: bool,
    give_up_reason: Option<&'static str>,
    /// Whether the next attempt borrows `headers` instead of copying them.
    lending: bool,
    /// Headers lent to the attempt in flight, to be handed back with [`Call::reclaim`].
    lent: Option<Lent>,
}

/// What [`Call::reclaim`] needs to restore the headers lent to an attempt.
#[derive(Clone, Debug)]
struct Lent {
    attempt: u32,
    /// The credential header was appended.
    credential: bool,
    /// Caller headers the credential header displaced.
    displaced: HeaderList,
}

impl Call {
    /// Starts a call: orders the candidates and deposits in the retry budget.
    #[must_use]
    pub fn new(
        router: &Router,
        state: &mut State,
        req: &Request<'_>,
        admitted: &Admitted,
        now: Instant,
    ) -> Call {
        Call::new_reusing(router, state, req, admitted, now, Vec::new())
    }

    /// [`Call::new`], writing the upstream headers over `spare`'s strings (a finished call's
    /// list, from [`Call::take_headers`]) instead of allocating new ones.
    #[must_use]
    pub fn new_reusing(
        router: &Router,
        state: &mut State,
        req: &Request<'_>,
        admitted: &Admitted,
        now: Instant,
        spare: HeaderList,
    ) -> Call {
        let cfg = &router.config;
        let r = admitted.route;
        let route = &cfg.routes[r];
        let mut stats = core::mem::take(&mut state.stats_scratch);
        stats.clear();
        stats.extend(state.providers.iter().map(|p| p.stats));
        let order = {
            let State {
                routes,
                rng,
                providers,
                ..
            } = &mut *state;
            let RouteState {
                breakers,
                selection,
                ..
            } = &mut routes[r];
            let input = Inputs {
                providers: &cfg.providers,
                stats: &stats,
                locality: &req.locality,
                now,
            };
            let breakers = &*breakers;
            let providers = &*providers;
            select::order(
                &route.strategy,
                &route.providers,
                |p| {
                    route
                        .providers
                        .iter()
                        .position(|&x| x == p)
                        .is_some_and(|slot| {
                            breakers[slot].would_admit(&route.breaker, now)
                                && providers[p].cool_until <= now
                        })
                },
                &input,
                selection,
                rng,
            )
        };
        state.stats_scratch = stats;
        state.routes[r].budget.deposit(&route.retry.budget, now);
        let has_key = req.headers.header("idempotency-key").is_some();
        let retry_unsent_only =
            !(req.method.is_idempotent() || has_key || route.retry.non_idempotent);
        let mut headers = spare;
        upstream_headers_into(req, route.forward_caller_auth, &mut state.rng, &mut headers);
        Call {
            route: r,
            method: req.method,
            retry_unsent_only,
            headers,
            path_and_query: join_target("", &admitted.upstream_path, admitted.query.as_deref()),
            tenant: admitted.tenant.index,
            order,
            cursor: 0,
            attempts: Vec::new(),
            started: now,
            deadline: now + route.timeout.total,
            phase: Phase::Ready,
            retries: 0,
            tried_all_once: false,
            give_up_reason: None,
            lending: false,
            lent: None,
        }
    }

    /// Takes the call's upstream header list, for reuse by a later call
    /// ([`Call::new_reusing`]); later attempts of this call would go without headers, so take
    /// it only once the call has answered.
    pub fn take_headers(&mut self) -> HeaderList {
        core::mem::take(&mut self.headers)
    }

    /// The attempts so far.
    #[must_use]
    pub fn attempts(&self) -> &[AttemptRecord] {
        &self.attempts
    }

    /// Route index.
    #[must_use]
    pub fn route(&self) -> usize {
        self.route
    }

    /// Retries taken.
    #[must_use]
    pub fn retries(&self) -> u32 {
        self.retries
    }

    /// The providers in the order selected for this request.
    #[must_use]
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    /// Why the call gave up, if it did before exhausting attempts.
    #[must_use]
    pub fn give_up_reason(&self) -> Option<&'static str> {
        self.give_up_reason
    }

    /// When the call started.
    #[must_use]
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Like [`Call::poll`], but an attempt's headers are lent rather than copied: hand the
    /// attempt back with [`Call::reclaim`] once it has been performed (before polling again),
    /// or later attempts go without them. Saves copying every header for every attempt on the
    /// hot path; the driver loop uses it.
    pub fn poll_lending(&mut self, router: &Router, state: &mut State, now: Instant) -> Step {
        self.lending = true;
        let step = self.poll(router, state, now);
        self.lending = false;
        step
    }

    /// Takes back the headers lent to attempt `a` by [`Call::poll_lending`] (a no-op for an
    /// attempt that did not borrow them).
    pub fn reclaim(&mut self, a: Attempt) {
        let Some(lent) = self.lent.take_if(|l| l.attempt == a.id) else {
            return;
        };
        let mut headers = a.headers;
        if lent.credential {
            headers.pop();
        }
        headers.extend(lent.displaced);
        self.headers = headers;
    }

    /// What the host must do next.
    pub fn poll(&mut self, router: &Router, state: &mut State, now: Instant) -> Step {
        loop {
            match &self.phase {
                Phase::Done(f) => return Step::Respond(f.clone()),
                Phase::InFlight(_) => return Step::Wait,
                Phase::Sleeping(until) => {
                    if now < *until {
                        return Step::Sleep(*until);
                    }
                    self.phase = Phase::Ready;
                }
                Phase::Ready => {
                    if let Some(step) = self.start_attempt(router, state, now) {
                        return step;
                    }
                }
            }
        }
    }

    fn finish(&mut self, state: &mut State, router: &Router, f: Final) {
        let status = match &f {
            Final::Upstream { status, .. } => *status,
            Final::Problem(p) => p.status(),
        };
        state
            .metrics
            .count_request(&router.config.routes[self.route].name, status);
        self.phase = Phase::Done(f);
    }

    fn start_attempt(&mut self, router: &Router, state: &mut State, now: Instant) -> Option<Step> {
        let cfg = &router.config;
        let route = &cfg.routes[self.route];
        if now >= self.deadline {
            self.give_up_reason = Some("deadline");
            let f = self.last_final().unwrap_or_else(|| {
                Final::Problem(Problem::new(
                    ProblemKind::DeadlineExceeded,
                    format!(
                        "route `{}`: deadline of {} ms exceeded",
                        route.name,
                        route.timeout.total.as_millis()
                    ),
                ))
            });
            self.finish(state, router, f);
            return None;
        }
        if self.order.is_empty() {
            let f = self.unavailable(router, state, now);
            self.finish(state, router, f);
            return None;
        }
        // find the next available provider from the cursor, at most one full turn
        let n = self.order.len();
        let mut chosen = None;
        for k in 0..n {
            let p = self.order[(self.cursor + k) % n];
            let Some(slot) = route.providers.iter().position(|&x| x == p) else {
                continue;
            };
            if state.providers[p].cool_until > now {
                continue;
            }
            match state.routes[self.route].breakers[slot].admit(&route.breaker, now) {
                Admission::Allow => {
                    chosen = Some((p, slot, false, k));
                    break;
                }
                Admission::Probe => {
                    state.material = state.material.wrapping_add(1);
                    chosen = Some((p, slot, true, k));
                    break;
                }
                Admission::Reject(_) => {}
            }
        }
        let Some((p, slot, probe, k)) = chosen else {
            // nobody available now: wait for the earliest if it fits the deadline
            let earliest = self
                .order
                .iter()
                .filter_map(|&p| route.providers.iter().position(|&x| x == p))
                .map(|slot| state.available_at(cfg, self.route, slot))
                .min()
                .unwrap_or(Instant::MAX);
            if !self.attempts.is_empty() && earliest > now && earliest < self.deadline {
                self.phase = Phase::Sleeping(earliest);
                return Some(Step::Sleep(earliest));
            }
            let f = self
                .last_final()
                .unwrap_or_else(|| self.unavailable(router, state, now));
            self.finish(state, router, f);
            return None;
        };
        self.cursor = (self.cursor + k) % n;
        let provider = &cfg.providers[p];
        let id = self.attempts.len() as u32 + 1;
        let mut headers = if self.lending {
            core::mem::take(&mut self.headers)
        } else {
            self.headers.clone()
        };
        let cred = self
            .tenant
            .and_then(|t| cfg.tenants[t].credentials.get(&p))
            .and_then(|r| router.secret(r));
        let mut displaced = HeaderList::new();
        let credential = auth_header(router, &provider.auth, cred);
        let has_credential = credential.is_some();
        if let Some(h) = credential {
            // a caller header of the same name gives way (kept aside when lending)
            let mut i = 0;
            while i < headers.len() {
                if headers[i].0.eq_ignore_ascii_case(&h.0) {
                    displaced.push(headers.remove(i));
                } else {
                    i += 1;
                }
            }
            headers.push(h);
        }
        if self.lending {
            self.lent = Some(Lent {
                attempt: id,
                credential: has_credential,
                displaced,
            });
        }
        let prefix = provider.base_url.prefix();
        let mut url = String::with_capacity(prefix.len() + self.path_and_query.len());
        url.push_str(prefix);
        url.push_str(&self.path_and_query);
        let deadline = (now + route.timeout.per_try).min(self.deadline);
        self.attempts.push(AttemptRecord {
            id,
            provider: p,
            slot,
            started: now,
            probe,
            result: None,
            latency: Duration::ZERO,
        });
        state.providers[p].stats.pending = state.providers[p].stats.pending.saturating_add(1);
        if let Some(t) = self.tenant {
            let cost = provider.cost;
            if cost > 0.0 {
                let name = &cfg.tenants[t].name;
                if let Some(u) = state.quotas.get_mut(name) {
                    u.cost += cost;
                    state.material = state.material.wrapping_add(1);
                }
            }
        }
        state
            .metrics
            .count_attempt(&route.name, &provider.id, id > 1);
        self.phase = Phase::InFlight(id);
        Some(Step::Attempt(Attempt {
            id,
            provider: p,
            provider_id: provider.id.clone(),
            method: self.method,
            url,
            headers,
            deadline,
            allow_private: provider.allow_private,
        }))
    }

    fn unavailable(&self, router: &Router, state: &State, now: Instant) -> Final {
        let cfg = &router.config;
        let route = &cfg.routes[self.route];
        let earliest = (0..route.providers.len())
            .map(|slot| state.available_at(cfg, self.route, slot))
            .min()
            .unwrap_or(now);
        let wait = earliest.saturating_since(now).max(Duration::from_secs(1));
        Final::Problem(
            Problem::new(
                ProblemKind::AllProvidersUnavailable,
                format!(
                    "route `{}`: every provider is unavailable (circuit open or cooling down)",
                    route.name
                ),
            )
            .retry_after(wait),
        )
    }

    fn last_final(&self) -> Option<Final> {
        let last = self.attempts.last()?;
        match last.result? {
            AttemptResult::Status(s) => Some(Final::Upstream {
                attempt: last.id,
                status: s,
            }),
            AttemptResult::Error(e) => Some(Final::Problem(self.error_problem(e))),
        }
    }

    fn error_problem(&self, e: FetchError) -> Problem {
        match e {
            FetchError::Timeout => Problem::new(
                ProblemKind::DeadlineExceeded,
                format!("upstream did not answer in time after {} attempt(s)", self.attempts.len()),
            ),
            FetchError::Reset if self.retry_unsent_only => Problem::new(
                ProblemKind::NotRetried,
                "the connection broke after a non-idempotent request was sent; it was not retried (send an Idempotency-Key to allow retries)",
            ),
            e => Problem::new(
                ProblemKind::UpstreamError,
                format!("upstream failed ({}) after {} attempt(s)", e.name(), self.attempts.len()),
            ),
        }
    }

    /// Feeds back what attempt `id` produced.
    pub fn handle_outcome(
        &mut self,
        router: &Router,
        state: &mut State,
        id: u32,
        outcome: Outcome,
        now: Instant,
    ) {
        let seen = match &outcome {
            Outcome::Response { status, headers } => Seen::Response(*status, headers),
            Outcome::Error(e) => Seen::Error(*e),
        };
        self.handle(router, state, id, seen, now);
    }

    /// Feeds back the response head attempt `id` produced, with its headers borrowed: what
    /// [`Call::handle_outcome`] does for [`Outcome::Response`], without the host copying
    /// headers it still needs for the reply.
    pub fn handle_response(
        &mut self,
        router: &Router,
        state: &mut State,
        id: u32,
        status: u16,
        headers: &[(String, String)],
        now: Instant,
    ) {
        self.handle(router, state, id, Seen::Response(status, headers), now);
    }

    fn handle(
        &mut self,
        router: &Router,
        state: &mut State,
        id: u32,
        outcome: Seen<'_>,
        now: Instant,
    ) {
        if self.phase != Phase::InFlight(id) {
            return;
        }
        let cfg = &router.config;
        let route = &cfg.routes[self.route];
        let Some(rec) = self.attempts.iter_mut().find(|a| a.id == id) else {
            return;
        };
        let p = rec.provider;
        let latency = now.saturating_since(rec.started);
        rec.latency = latency;
        let slow = latency >= route.breaker.slow_call;
        let ps = &mut state.providers[p];
        ps.stats.pending = ps.stats.pending.saturating_sub(1);
        let (failure, retryable, sent, result) = match outcome {
            Seen::Response(status, headers) => {
                let pc = &cfg.providers[p];
                let until = match &pc.rate_limit {
                    Some(signals) => crate::ratelimit::cooldown_with(
                        status,
                        headers,
                        signals,
                        pc.cooldown_below,
                        now,
                        DEFAULT_COOLDOWN,
                        MAX_COOLDOWN,
                    ),
                    None => cooldown(status, headers, pc.cooldown_below, now),
                };
                if let Some(until) = until {
                    if until > ps.cool_until {
                        ps.cool_until = until;
                        state.material = state.material.wrapping_add(1);
                    }
                }
                let failure = route.breaker.failure.status_fails(status);
                let retryable = status == 429 || route.retry.retry_on_status.contains(&status);
                (
                    failure,
                    retryable,
                    status != 429,
                    AttemptResult::Status(status),
                )
            }
            Seen::Error(e) => {
                let class = &route.breaker.failure;
                let failure = match e {
                    FetchError::Connect => class.connect,
                    FetchError::Timeout => class.timeouts,
                    FetchError::Reset => class.reset,
                    FetchError::Forbidden => false,
                };
                let retryable = !matches!(e, FetchError::Forbidden);
                (
                    failure,
                    retryable,
                    !matches!(e, FetchError::Connect | FetchError::Forbidden),
                    AttemptResult::Error(e),
                )
            }
        };
        rec.result = Some(result);
        let probe = rec.probe;
        let slot = rec.slot;
        let ok = !failure && !matches!(result, AttemptResult::Status(429));
        state.providers[p].stats.observe(latency, ok, now);
        let breaker = &mut state.routes[self.route].breakers[slot];
        let before = breaker.state();
        breaker.record(&route.breaker, CallResult { failure, slow }, probe, now);
        // a transition, or a failure counted toward one (hosts that persist state per request
        // must keep it: Spin has a fresh instance for every request)
        let counted = matches!(before, crate::breaker::State::Closed) && (failure || slow);
        if counted || core::mem::discriminant(&before) != core::mem::discriminant(&breaker.state())
        {
            state.material = state.material.wrapping_add(1);
        }
        state
            .metrics
            .observe_attempt(&route.name, &cfg.providers[p].id, result, latency);

        if !retryable {
            let f = match result {
                AttemptResult::Status(s) => Final::Upstream {
                    attempt: id,
                    status: s,
                },
                AttemptResult::Error(e) => Final::Problem(self.error_problem(e)),
            };
            self.finish(state, router, f);
            return;
        }
        // may we retry?
        let reason = if self.attempts.len() as u32 >= route.retry.max_attempts {
            Some("attempts")
        } else if now >= self.deadline {
            Some("deadline")
        } else if self.retry_unsent_only && sent {
            Some("not-idempotent")
        } else if !state.routes[self.route]
            .budget
            .withdraw(&route.retry.budget, now)
        {
            Some("budget")
        } else {
            None
        };
        if let Some(r) = reason {
            self.give_up_reason = Some(r);
            let f = self
                .last_final()
                .unwrap_or_else(|| self.unavailable(router, state, now));
            self.finish(state, router, f);
            return;
        }
        self.retries += 1;
        state.metrics.count_retry(&route.name);
        // next provider; back off only when wrapping round to one already tried
        let n = self.order.len().max(1);
        self.cursor = (self.cursor + 1) % n;
        if self.cursor == 0 {
            self.tried_all_once = true;
        }
        let next = self.order.get(self.cursor).copied();
        let already_tried = next.is_some_and(|np| self.attempts.iter().any(|a| a.provider == np));
        if already_tried || self.tried_all_once {
            let delay = route.retry.backoff.delay(self.retries, &mut state.rng);
            // wait for the backoff, or for the next provider's cooldown/open period if longer
            let ready_at = next
                .and_then(|np| route.providers.iter().position(|&x| x == np))
                .map_or(now, |slot| state.available_at(cfg, self.route, slot));
            let until = (now + delay).max(ready_at);
            if until >= self.deadline {
                self.give_up_reason = Some("deadline");
                let f = self
                    .last_final()
                    .unwrap_or_else(|| self.unavailable(router, state, now));
                self.finish(state, router, f);
                return;
            }
            self.phase = Phase::Sleeping(until);
        } else {
            self.phase = Phase::Ready;
        }
    }
}

/// The credential header for a provider (tenant credential first, then the provider's).
fn auth_header(
    router: &Router,
    auth: &AuthScheme,
    tenant_cred: Option<&Secret>,
) -> Option<(String, String)> {
    let secret = tenant_cred.or_else(|| auth.secret().and_then(|r| router.secret(r)))?;
    let v = secret.expose();
    Some(match auth {
        AuthScheme::None | AuthScheme::Bearer(_) => {
            (String::from("authorization"), format!("Bearer {v}"))
        }
        AuthScheme::Token(_) => (String::from("authorization"), format!("token {v}")),
        AuthScheme::Basic(_) => {
            use base64::Engine as _;
            (
                String::from("authorization"),
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(v)
                ),
            )
        }
        AuthScheme::Header(h, _) => (h.to_ascii_lowercase(), String::from(v)),
    })
}

/// Rate-limit header names (remaining, reset) seen across providers.
const REMAINING: [&str; 4] = [
    "x-ratelimit-remaining",
    "ratelimit-remaining",
    "x-ratelimit-requests-remaining",
    "x-rate-limit-remaining",
];
const RESET: [&str; 4] = [
    "x-ratelimit-reset",
    "ratelimit-reset",
    "x-ratelimit-requests-reset",
    "x-rate-limit-reset",
];

/// When a response says to stop calling the provider for a while: a 429 (with `Retry-After`,
/// else the rate-limit reset, else [`DEFAULT_COOLDOWN`]); a 503 with `Retry-After`; or any
/// response whose remaining rate-limit budget is at or below `cooldown_below`.
#[must_use]
pub fn cooldown<H: Headers + ?Sized>(
    status: u16,
    headers: &H,
    cooldown_below: Option<u64>,
    now: Instant,
) -> Option<Instant> {
    let retry_after = headers
        .header("retry-after")
        .and_then(|v| parse_retry_after(v, now));
    let reset = || {
        RESET.iter().find_map(|n| headers.header(n)).and_then(|v| {
            let v = v.trim();
            let n: u64 = v.parse().ok()?;
            // epoch seconds or delta seconds (GitHub sends epoch; IETF drafts send delta)
            Some(if n > 1_000_000_000 {
                Instant::from_secs(n).max(now)
            } else {
                now + Duration::from_secs(n)
            })
        })
    };
    let until = if status == 429 {
        Some(retry_after.or_else(reset).unwrap_or(now + DEFAULT_COOLDOWN))
    } else if status == 503 && retry_after.is_some() {
        retry_after
    } else if let Some(floor) = cooldown_below {
        let remaining = REMAINING
            .iter()
            .find_map(|n| headers.header(n))
            .and_then(|v| v.trim().parse::<u64>().ok());
        match remaining {
            Some(r) if r <= floor => Some(reset().unwrap_or(now + DEFAULT_COOLDOWN)),
            _ => None,
        }
    } else {
        None
    };
    until.map(|u| u.min(now + MAX_COOLDOWN))
}
