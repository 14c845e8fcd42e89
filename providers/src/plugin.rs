//! The provider plugin trait, in the style of pingora's proxy phases: one essential method
//! ([`Provider::kind`]); everything else has a documented default that suits most REST APIs,
//! and a plugin overrides only what differs about its provider.
//!
//! | Concern | Method | Default |
//! |---|---|---|
//! | identity | [`kind`](Provider::kind) | *required* |
//! | family | [`category`](Provider::category) | from the operations it maps |
//! | base URL | [`default_base_url`](Provider::default_base_url) | none: self-hosted only |
//! | auth | [`auth_header`](Provider::auth_header) | `Authorization: Bearer <secret>` |
//! | fixed headers | [`default_headers`](Provider::default_headers) | `accept: application/json` |
//! | failures | [`classify`](Provider::classify) | 429 rate limited, 408/5xx provider, 4xx caller |
//! | rate limits | [`rate_limit`](Provider::rate_limit), [`cooldown`](Provider::cooldown) | common `x-ratelimit-*` names, reset auto-detected, cool down at 0 remaining |
//! | pagination | [`paginate`](Provider::paginate), [`next_cursor`](Provider::next_cursor) | `page=<n>` query; `Link: rel="next"`'s `page` |
//! | webhooks | [`webhook_preset`](Provider::webhook_preset) | the preset named like the kind, if any |
//! | operations | [`map`](Provider::map), [`shape`](Provider::shape), [`normalize`](Provider::normalize) | nothing mapped; body passed through |
//! | errors | [`provider_error`](Provider::provider_error) | message from `message`, `error`, `errorMessages`, `errors[]`, `detail` |
//!
//! A plugin is plain data and pure functions: it sees bytes and headers the host hands it and
//! never performs I/O.

use alloc::borrow::ToOwned;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use mosaic_core::breaker::FailureClass;
use mosaic_core::config::BaseUrl;
use mosaic_core::engine::{DEFAULT_COOLDOWN, MAX_COOLDOWN};
use mosaic_core::http::{HeaderList, Headers, Method};
use mosaic_core::ratelimit::{cooldown_with, RateLimitSignals, ResetFormat};
use mosaic_core::time::Instant;
use serde_json::Value;

use crate::api::{OpName, Operation};

/// The API family a provider serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    /// Git hosting: repositories, issues, pull requests.
    Git,
    /// CI: pipeline and workflow runs.
    Ci,
    /// Knowledge base: pages.
    Kb,
    /// Project management: issues and comments.
    Pm,
}

impl Category {
    /// `git`, `ci`, `kb` or `pm`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Category::Git => "git",
            Category::Ci => "ci",
            Category::Kb => "kb",
            Category::Pm => "pm",
        }
    }

    /// The category of an operation.
    #[must_use]
    pub fn of(op: OpName) -> Category {
        match op.as_str().split('.').next() {
            Some("git") => Category::Git,
            Some("ci") => Category::Ci,
            Some("kb") => Category::Kb,
            _ => Category::Pm,
        }
    }
}

/// A request to send to the provider, relative to its base URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamRequest {
    /// Method.
    pub method: Method,
    /// Path and query, appended to the base URL's path (starts with `/`).
    pub path_and_query: String,
    /// Headers to add (besides auth and the plugin's default headers).
    pub headers: HeaderList,
    /// Body, if any.
    pub body: Option<Vec<u8>>,
}

impl UpstreamRequest {
    /// A bodiless request.
    #[must_use]
    pub fn new(method: Method, path_and_query: impl Into<String>) -> UpstreamRequest {
        UpstreamRequest {
            method,
            path_and_query: path_and_query.into(),
            headers: Vec::new(),
            body: None,
        }
    }

    /// A GET.
    #[must_use]
    pub fn get(path_and_query: impl Into<String>) -> UpstreamRequest {
        UpstreamRequest::new(Method::Get, path_and_query)
    }

    /// A request with a JSON body (`content-type: application/json`).
    #[must_use]
    pub fn json(
        method: Method,
        path_and_query: impl Into<String>,
        body: &Value,
    ) -> UpstreamRequest {
        UpstreamRequest {
            method,
            path_and_query: path_and_query.into(),
            headers: alloc::vec![(
                String::from("content-type"),
                String::from("application/json")
            )],
            body: Some(body.to_string().into_bytes()),
        }
    }

    /// Appends `name=value` (value percent-encoded) to the query.
    #[must_use]
    pub fn query(mut self, name: &str, value: &str) -> UpstreamRequest {
        let sep = if self.path_and_query.contains('?') {
            '&'
        } else {
            '?'
        };
        self.path_and_query
            .push_str(&format!("{sep}{name}={}", crate::api::pct_encode(value)));
        self
    }

    /// The full URL on `base`.
    #[must_use]
    pub fn url(&self, base: &BaseUrl) -> String {
        format!("{}{}", base.prefix(), self.path_and_query)
    }

    /// The body parsed as JSON (tests and declarative templates).
    #[must_use]
    pub fn body_json(&self) -> Option<Value> {
        serde_json::from_slice(self.body.as_deref()?).ok()
    }
}

/// An operation the provider cannot perform: not mapped at all (`reason: None`), or not with
/// these arguments (`reason: Some`, a missing or malformed argument).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unsupported {
    /// Provider kind.
    pub kind: String,
    /// Operation.
    pub operation: OpName,
    /// Why, when the operation is supported but not with these arguments.
    pub reason: Option<String>,
}

impl Unsupported {
    /// The operation is not mapped.
    #[must_use]
    pub fn op(kind: &str, op: OpName) -> Unsupported {
        Unsupported {
            kind: kind.to_owned(),
            operation: op,
            reason: None,
        }
    }
    /// The operation is mapped but these arguments cannot be.
    #[must_use]
    pub fn because(kind: &str, op: OpName, reason: impl Into<String>) -> Unsupported {
        Unsupported {
            kind: kind.to_owned(),
            operation: op,
            reason: Some(reason.into()),
        }
    }
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reason {
            None => write!(
                f,
                "provider kind `{}` does not support {}",
                self.kind,
                self.operation.as_str()
            ),
            Some(r) => write!(f, "{} on `{}`: {r}", self.operation.as_str(), self.kind),
        }
    }
}

/// A normalized answer: `data` in the shape of [`OpName::shape`] and the provider's next
/// cursor (not yet wrapped, see [`crate::api::envelope`]).
#[derive(Clone, Debug, PartialEq)]
pub struct NormalizedResponse {
    /// The normalized value (an array for list operations).
    pub data: Value,
    /// The provider's own cursor for the next page.
    pub next_cursor: Option<String>,
}

/// Whose fault a failed response is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The provider's (5xx, timeouts): counts toward its breaker, a read may fail over.
    Provider,
    /// The caller's (bad arguments, missing permission): final, no failover.
    Caller,
    /// A rate limit: cool down, try another provider.
    RateLimited,
}

/// An error the provider answered with, keeping its own message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderError {
    /// The provider's status (200 for GraphQL errors).
    pub status: u16,
    /// The provider's own message.
    pub message: String,
    /// The provider's error code, if it has one (`object_not_found`, `RATELIMITED`).
    pub code: Option<String>,
    /// Whose fault.
    pub fault: Fault,
}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.status, self.message)
    }
}

/// How a provider is authenticated, for docs and listings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthStyle {
    /// `Authorization: Bearer <secret>`.
    Bearer,
    /// `Authorization: token <secret>`.
    Token,
    /// `Authorization: Basic base64(<secret>)`, the secret being `user:token`.
    Basic,
    /// `Authorization: <prefix> <secret>` with another prefix (BookStack `Token`).
    Prefixed(&'static str),
    /// `Authorization: <secret>` as is (Linear personal keys).
    Raw,
    /// `<header>: <secret>` (GitLab `PRIVATE-TOKEN`, Plane `X-API-Key`).
    Header(&'static str),
}

impl AuthStyle {
    /// The header for `secret`.
    #[must_use]
    pub fn header(self, secret: &str) -> (String, String) {
        use base64::Engine as _;
        let auth = String::from("authorization");
        match self {
            AuthStyle::Bearer => (auth, format!("Bearer {secret}")),
            AuthStyle::Token => (auth, format!("token {secret}")),
            AuthStyle::Basic => (
                auth,
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(secret)
                ),
            ),
            AuthStyle::Prefixed(p) => (auth, format!("{p} {secret}")),
            AuthStyle::Raw => (auth, String::from(secret)),
            AuthStyle::Header(h) => (h.to_ascii_lowercase(), String::from(secret)),
        }
    }
}

/// The signals most providers send (the engine's own fallback list).
#[must_use]
pub fn common_signals() -> RateLimitSignals {
    RateLimitSignals::new(
        &[
            "x-ratelimit-remaining",
            "ratelimit-remaining",
            "x-rate-limit-remaining",
        ],
        &["x-ratelimit-reset", "ratelimit-reset", "x-rate-limit-reset"],
        ResetFormat::Auto,
        Some(0),
    )
}

/// A provider plugin. Only [`kind`](Provider::kind) is required; see the module docs for what
/// each default does.
pub trait Provider: Sync {
    /// The kind name used in config (`kind = "github"`).
    fn kind(&self) -> &str;

    /// The API family. Default: the family of the first operation it maps, else `Git`.
    fn category(&self) -> Category {
        self.operations()
            .first()
            .map_or(Category::Git, |o| Category::of(*o))
    }

    /// The cloud base URL, used when config gives none; `None` for self-hosted-only providers.
    fn default_base_url(&self) -> Option<&str> {
        None
    }

    /// How the secret is sent. Default: bearer.
    fn auth_style(&self) -> AuthStyle {
        AuthStyle::Bearer
    }

    /// The credential header for `secret`. Default: [`auth_style`](Provider::auth_style).
    fn auth_header(&self, secret: &str) -> Option<(String, String)> {
        Some(self.auth_style().header(secret))
    }

    /// Headers every request carries (API version pins, `accept`).
    fn default_headers(&self) -> HeaderList {
        alloc::vec![(String::from("accept"), String::from("application/json"))]
    }

    /// Whose fault a status is; `None` for success. Default: 2xx/3xx none, 429 rate limited,
    /// 408 and 5xx the provider's, other 4xx the caller's.
    fn classify(&self, status: u16, _headers: &[(String, String)]) -> Option<Fault> {
        match status {
            100..=399 => None,
            429 => Some(Fault::RateLimited),
            408 | 500..=599 => Some(Fault::Provider),
            _ => Some(Fault::Caller),
        }
    }

    /// The statuses [`classify`](Provider::classify) calls the provider's fault, as a breaker
    /// failure class (timeouts, connect and reset errors included).
    fn failure_class(&self) -> FailureClass {
        let mut c = FailureClass::none();
        for s in 400u16..=599 {
            if self.classify(s, &[]) == Some(Fault::Provider) {
                let _ = c.add(&s.to_string());
            }
        }
        for k in ["timeout", "connect", "reset"] {
            let _ = c.add(k);
        }
        c
    }

    /// The rate-limit header names, reset format and cool-down floor. Default:
    /// [`common_signals`].
    fn rate_limit(&self) -> RateLimitSignals {
        common_signals()
    }

    /// When to stop calling this provider after a response: a 429 or 503 with `Retry-After`, or
    /// a remaining budget at the floor — so the provider cools down *before* a 429.
    fn cooldown(&self, status: u16, headers: &[(String, String)], now: Instant) -> Option<Instant> {
        cooldown_with(
            status,
            headers,
            &self.rate_limit(),
            None,
            now,
            DEFAULT_COOLDOWN,
            MAX_COOLDOWN,
        )
    }

    /// Adds a provider cursor to a list request. Default: `page=<cursor>`.
    fn paginate(&self, req: UpstreamRequest, cursor: &str) -> UpstreamRequest {
        req.query("page", cursor)
    }

    /// The provider cursor of the next page. Default: the `page` parameter of the
    /// `Link: <…>; rel="next"` header.
    fn next_cursor(
        &self,
        _op: &Operation,
        headers: &[(String, String)],
        _body: &Value,
    ) -> Option<String> {
        link_next_param(headers, "page")
    }

    /// The webhook preset for this provider's events (see [`crate::webhook`]). Default: the
    /// preset named like the kind.
    fn webhook_preset(&self) -> Option<&str> {
        crate::webhook::preset_by_name(self.kind()).map(|_| self.kind())
    }

    /// Maps a normalized operation to a provider request. Default: unsupported.
    ///
    /// # Errors
    /// [`Unsupported`] for operations the provider lacks or arguments it cannot take.
    fn map(&self, op: &Operation) -> Result<UpstreamRequest, Unsupported> {
        Err(Unsupported::op(self.kind(), op.name()))
    }

    /// The operations [`map`](Provider::map) supports: probed with sample arguments, an
    /// [`Unsupported`] with a `reason` (arguments it cannot take) still counts as supported.
    fn operations(&self) -> Vec<OpName> {
        OpName::ALL
            .into_iter()
            .filter(|o| match self.map(&Operation::sample(*o)) {
                Ok(_) => true,
                Err(u) => u.reason.is_some(),
            })
            .collect()
    }

    /// Turns a successful body into the normalized shape. Default: the body as is.
    ///
    /// # Errors
    /// A [`ProviderError`] when a 2xx body still reports an error (GraphQL) or is unusable.
    fn shape(
        &self,
        _op: &Operation,
        _headers: &[(String, String)],
        body: &Value,
    ) -> Result<Value, ProviderError> {
        Ok(body.clone())
    }

    /// The error a failed response carries. Default: the status, [`classify`](Provider::classify)
    /// and [`error_message`]'s reading of the body.
    fn provider_error(
        &self,
        status: u16,
        headers: &[(String, String)],
        body: &[u8],
    ) -> ProviderError {
        let (message, code) = error_message(body);
        ProviderError {
            status,
            message: message.unwrap_or_else(|| format!("HTTP {status}")),
            code,
            fault: self.classify(status, headers).unwrap_or(Fault::Provider),
        }
    }

    /// Normalizes a response. Default: a non-2xx status is a [`ProviderError`]; otherwise the
    /// body (JSON, empty = `null`) goes through [`shape`](Provider::shape) and
    /// [`next_cursor`](Provider::next_cursor).
    ///
    /// # Errors
    /// The provider's error, with its message kept.
    fn normalize(
        &self,
        op: &Operation,
        status: u16,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<NormalizedResponse, ProviderError> {
        if !(200..=299).contains(&status) {
            return Err(self.provider_error(status, headers, body));
        }
        let v: Value = if body.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            serde_json::from_slice(body).map_err(|e| ProviderError {
                status: 502,
                message: format!(
                    "{} answered {status} with a body that is not JSON: {e}",
                    self.kind()
                ),
                code: None,
                fault: Fault::Provider,
            })?
        };
        let data = self.shape(op, headers, &v)?;
        let next_cursor = if op.name().is_list() {
            self.next_cursor(op, headers, &v)
        } else {
            None
        };
        Ok(NormalizedResponse { data, next_cursor })
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers shared by plugins
// ---------------------------------------------------------------------------------------------

/// The string at a JSON pointer; numbers and booleans are written out, null/absent is `None`.
#[must_use]
pub fn text(v: &Value, ptr: &str) -> Option<String> {
    match v.pointer(ptr)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The unsigned integer at a JSON pointer (numbers or numeric strings).
#[must_use]
pub fn uint(v: &Value, ptr: &str) -> Option<u64> {
    match v.pointer(ptr)? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// The boolean at a JSON pointer, false when absent.
#[must_use]
pub fn flag(v: &Value, ptr: &str) -> bool {
    v.pointer(ptr).and_then(Value::as_bool).unwrap_or(false)
}

/// The array at a JSON pointer (empty when absent).
#[must_use]
pub fn items<'a>(v: &'a Value, ptr: &str) -> &'a [Value] {
    v.pointer(ptr)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// Serializes a shape (serde_json cannot fail on these plain structs; `null` if it did).
#[must_use]
pub fn to_value<T: serde::Serialize>(t: &T) -> Value {
    serde_json::to_value(t).unwrap_or(Value::Null)
}

/// The URL of the `Link` header's `rel="next"` entry (RFC 8288), if any.
#[must_use]
pub fn link_next<H: Headers + ?Sized>(headers: &H) -> Option<String> {
    for value in headers.header_all("link") {
        for part in value.split(',') {
            let mut it = part.split(';');
            let Some(url) = it.next() else { continue };
            let url = url.trim();
            let is_next = it.any(|p| {
                let p = p.trim();
                p.strip_prefix("rel=")
                    .map(|r| r.trim_matches('"').split(' ').any(|r| r == "next"))
                    .unwrap_or(false)
            });
            if is_next {
                if let Some(u) = url.strip_prefix('<').and_then(|u| u.strip_suffix('>')) {
                    return Some(u.to_owned());
                }
            }
        }
    }
    None
}

/// The decoded query parameter `name` of a URL.
#[must_use]
pub fn url_param(url: &str, name: &str) -> Option<String> {
    let q = url.split_once('?')?.1;
    let q = q.split('#').next().unwrap_or(q);
    crate::api::parse_query(q)?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// The query parameter `name` of the `Link` header's next URL.
#[must_use]
pub fn link_next_param<H: Headers + ?Sized>(headers: &H, name: &str) -> Option<String> {
    link_next(headers).and_then(|u| url_param(&u, name))
}

/// The provider's message and code from an error body, trying the common layouts:
/// `{"message"}` (GitHub, Gitea, GitLab, Notion), `{"error": "…" | {"message"}}` (BookStack,
/// Plane), `{"errorMessages": […], "errors": {…}}` (Jira), `{"errors": [{"message" | "title" |
/// "detail"}]}` (GraphQL, Confluence v2), `{"detail"}`; a non-JSON body gives its first line.
#[must_use]
pub fn error_message(body: &[u8]) -> (Option<String>, Option<String>) {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        let s = String::from_utf8_lossy(body);
        let line = s
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('<'))
            .map(|l| l.chars().take(300).collect::<String>());
        return (line, None);
    };
    let code = text(&v, "/code")
        .or_else(|| text(&v, "/error/code"))
        .or_else(|| text(&v, "/errors/0/extensions/code"))
        .or_else(|| text(&v, "/errors/0/code"));
    let msg = |x: &Value| -> Option<String> {
        match x {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Object(_) | Value::Array(_) => Some(x.to_string()),
            _ => None,
        }
    };
    let first_of = |x: Option<&Value>| -> Option<String> {
        let a = x?.as_array()?;
        let parts: Vec<String> = a
            .iter()
            .filter_map(|e| match e {
                Value::String(s) => Some(s.clone()),
                o => text(o, "/message")
                    .or_else(|| text(o, "/title"))
                    .or_else(|| text(o, "/detail")),
            })
            .collect();
        (!parts.is_empty()).then(|| parts.join("; "))
    };
    let jira_fields = || -> Option<String> {
        let o = v.get("errors")?.as_object()?;
        let parts: Vec<String> = o
            .iter()
            .map(|(k, e)| {
                format!(
                    "{k}: {}",
                    e.as_str().map_or_else(|| e.to_string(), str::to_owned)
                )
            })
            .collect();
        (!parts.is_empty()).then(|| parts.join("; "))
    };
    let m = v
        .get("message")
        .and_then(msg)
        .or_else(|| text(&v, "/error/message"))
        .or_else(|| v.get("error").and_then(msg))
        .or_else(|| first_of(v.get("errorMessages")))
        .or_else(jira_fields)
        .or_else(|| first_of(v.get("errors")))
        .or_else(|| v.get("detail").and_then(msg));
    (m, code)
}

/// Splits plain text into paragraphs (blank-line separated, trimmed, empty ones dropped).
#[must_use]
pub fn paragraphs(s: &str) -> Vec<String> {
    s.replace("\r\n", "\n")
        .split("\n\n")
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Escapes text for XML/HTML.
#[must_use]
pub fn escape_xml(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// Plain text as `<p>` paragraphs.
#[must_use]
pub fn text_to_html(s: &str) -> String {
    paragraphs(s)
        .iter()
        .map(|p| format!("<p>{}</p>", escape_xml(p)))
        .collect()
}
