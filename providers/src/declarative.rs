//! Declarative providers: a provider described in data and loaded at run time (from KV) without
//! a redeploy.
//!
//! A declaration gives what a built-in plugin's code would: base URL, auth scheme, fixed
//! headers, rate-limit header names, webhook preset, pagination, and one template per
//! supported operation. It is validated like config — every error is collected with its key
//! path — and a [`Registry`] swaps a whole set of declarations atomically, so a bad update is
//! rejected while the previous set stays in force.
//!
//! ```json
//! {"providers": [{
//!   "kind": "acme-git",
//!   "base_url": "https://git.acme.example/api",
//!   "auth": {"scheme": "header", "header": "X-Acme-Token"},
//!   "headers": {"accept": "application/json"},
//!   "rate_limit": {"remaining": ["x-acme-remaining"], "reset": ["x-acme-reset"],
//!                  "reset_format": "epoch", "cooldown_below": 0},
//!   "webhook": "github",
//!   "pagination": {"param": "page", "next": "link"},
//!   "error_message": "/error/text",
//!   "operations": {
//!     "git.get_repo": {"method": "GET", "path": "/repos/{owner}/{repo}",
//!                      "response": {"id": "/id", "name": "/name", "full_name": "/path"}},
//!     "git.list_issues": {"method": "GET", "path": "/repos/{owner}/{repo}/issues?state={state}",
//!                         "items": "/items", "response": {"id": "/id", "title": "/title"}},
//!     "git.create_issue": {"method": "POST", "path": "/repos/{owner}/{repo}/issues",
//!                          "body": {"title": "{title}", "text": "{body}"},
//!                          "response": {"id": "/id", "title": "/title"}}
//!   }
//! }]}
//! ```
//!
//! Templates: `{name}` placeholders take the operation's arguments ([`OpName::fields`]). In a
//! path they are percent-encoded and required; in the query a `k={name}` pair whose argument is
//! absent is dropped. In a body, a string that is exactly `"{name}"` becomes the argument's
//! JSON value (`null` when absent), and other strings are interpolated. A list operation's
//! cursor is appended as `pagination.param` unless the template places `{cursor}` itself.
//!
//! Responses: `items` points at the array of a list answer (default: the body itself);
//! `response` maps each normalized field to a JSON pointer in the provider's object. Fields
//! named `id` or ending in `_id` are written as strings.
//!
//! Format: the no_std loader reads **JSON** ([`load_from_kv_bytes`]). TOML needs `std`; a host
//! with `std` can deserialize [`RawDeclarations`] from TOML itself and call
//! [`RawDeclarations::validate`].

use alloc::borrow::ToOwned;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use mosaic_core::config::{BaseUrl, Config, ConfigError, ConfigErrors};
use mosaic_core::http::{HeaderList, Headers as _, Method};
use mosaic_core::ratelimit::{RateLimitSignals, ResetFormat};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::api::{pct_encode, OpName, Operation};
use crate::plugin::{
    error_message, link_next_param, text, AuthStyle, Fault, Provider, ProviderError, Unsupported,
    UpstreamRequest,
};

/// A set of declarations as stored: `{"providers": [...]}`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDeclarations {
    /// The declarations.
    #[serde(default)]
    pub providers: Vec<RawDeclared>,
}

/// One declared provider, as written.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDeclared {
    /// Kind name, used as `kind` in `[[providers]]`.
    #[serde(default)]
    pub kind: String,
    /// Base URL (also the default for providers of this kind).
    #[serde(default)]
    pub base_url: String,
    /// Auth scheme.
    #[serde(default)]
    pub auth: RawAuthDecl,
    /// Headers sent with every request.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Rate-limit header names.
    #[serde(default)]
    pub rate_limit: RawRateLimitDecl,
    /// Webhook preset name.
    pub webhook: Option<String>,
    /// Pagination.
    #[serde(default)]
    pub pagination: RawPaginationDecl,
    /// JSON pointer to the message in an error body (default: the common layouts).
    pub error_message: Option<String>,
    /// Templates, keyed by operation name (`git.get_repo`).
    #[serde(default)]
    pub operations: BTreeMap<String, RawTemplate>,
}

/// How the secret is sent.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuthDecl {
    /// `bearer` (default), `token`, `basic`, `raw`, `header` or `none`.
    #[serde(default)]
    pub scheme: String,
    /// Header name for `header`.
    pub header: Option<String>,
}

/// Rate-limit header names.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimitDecl {
    /// Remaining-budget header names.
    #[serde(default)]
    pub remaining: Vec<String>,
    /// Reset header names.
    #[serde(default)]
    pub reset: Vec<String>,
    /// `auto` (default), `epoch`, `epoch_ms`, `delta` or `iso8601`.
    pub reset_format: Option<String>,
    /// Cool down at this remaining budget (default 0).
    pub cooldown_below: Option<u64>,
}

/// Pagination.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPaginationDecl {
    /// Query parameter carrying the cursor (default `page`).
    pub param: Option<String>,
    /// Where the next cursor is: `link` (default: the `Link` header's next URL's `param`), a
    /// JSON pointer (`/next_cursor`), or `header:<name>`.
    pub next: Option<String>,
}

/// One operation template, as written.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTemplate {
    /// HTTP method.
    #[serde(default)]
    pub method: String,
    /// Path and query template, relative to the base URL.
    #[serde(default)]
    pub path: String,
    /// JSON body template.
    pub body: Option<Value>,
    /// JSON pointer to the array of a list answer.
    pub items: Option<String>,
    /// Normalized field → JSON pointer.
    #[serde(default)]
    pub response: BTreeMap<String, String>,
}

#[derive(Clone, Debug)]
enum Next {
    Link,
    Pointer(String),
    Header(String),
}

#[derive(Clone, Debug)]
struct Template {
    method: Method,
    path: String,
    body: Option<Value>,
    items: Option<String>,
    response: BTreeMap<String, String>,
}

/// A validated declared provider; implements [`Provider`].
#[derive(Clone, Debug)]
pub struct DeclarativeProvider {
    kind: String,
    base_url: String,
    auth: Option<AuthStyleOwned>,
    headers: HeaderList,
    signals: RateLimitSignals,
    webhook: Option<String>,
    param: String,
    next: Next,
    error_message: Option<String>,
    ops: BTreeMap<OpName, Template>,
}

#[derive(Clone, Debug)]
enum AuthStyleOwned {
    Style(AuthStyle),
    Header(String),
}

/// Field names of each normalized shape, for validating `response` maps.
fn shape_fields(shape: &str) -> &'static [&'static str] {
    match shape {
        "Repository" => &[
            "id",
            "name",
            "full_name",
            "owner",
            "description",
            "default_branch",
            "private",
            "url",
            "clone_url",
        ],
        "Issue" => &[
            "id",
            "number",
            "key",
            "title",
            "body",
            "state",
            "status",
            "author",
            "labels",
            "url",
            "created_at",
            "updated_at",
        ],
        "Comment" => &["id", "body", "author", "url", "created_at"],
        "PullRequest" => &[
            "id",
            "number",
            "title",
            "state",
            "draft",
            "author",
            "source_branch",
            "target_branch",
            "url",
            "created_at",
        ],
        "Run" => &[
            "id",
            "status",
            "raw_status",
            "ref",
            "sha",
            "url",
            "created_at",
        ],
        _ => &[
            "id",
            "title",
            "space",
            "parent",
            "body",
            "url",
            "updated_at",
        ],
    }
}

/// The `{name}` placeholders of a template string; `Err` names an unterminated one.
fn placeholders(s: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find('{') {
        let Some(j) = rest[i..].find('}') else {
            return Err(format!("unterminated placeholder in `{s}`"));
        };
        out.push(&rest[i + 1..i + j]);
        rest = &rest[i + j + 1..];
    }
    Ok(out)
}

fn body_placeholders<'a>(v: &'a Value, out: &mut Vec<&'a str>) -> Result<(), String> {
    match v {
        Value::String(s) => out.extend(placeholders(s)?),
        Value::Array(a) => {
            for x in a {
                body_placeholders(x, out)?;
            }
        }
        Value::Object(o) => {
            for x in o.values() {
                body_placeholders(x, out)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn valid_pointer(p: &str) -> bool {
    p.is_empty() || p.starts_with('/')
}

fn valid_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

impl RawDeclarations {
    /// Validates every declaration, collecting all errors with key paths
    /// (`providers[0].operations.git.get_repo.path: unknown placeholder {own}`).
    ///
    /// # Errors
    /// Every problem found.
    pub fn validate(&self) -> Result<Vec<DeclarativeProvider>, ConfigErrors> {
        let mut errs = Vec::new();
        let mut out = Vec::new();
        let mut seen = BTreeMap::new();
        for (i, raw) in self.providers.iter().enumerate() {
            let at = format!("providers[{i}]");
            if let Some(first) = seen.insert(raw.kind.clone(), i) {
                errs.push(err(
                    &format!("{at}.kind"),
                    format!(
                        "kind `{}` is declared twice (also providers[{first}])",
                        raw.kind
                    ),
                ));
            }
            if let Some(p) = raw.validate_at(&at, &mut errs) {
                out.push(p);
            }
        }
        if errs.is_empty() {
            Ok(out)
        } else {
            Err(ConfigErrors(errs))
        }
    }
}

fn err(path: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        path: path.to_owned(),
        message: message.into(),
    }
}

impl RawDeclared {
    /// Validates this declaration alone (key paths start at `providers[0]`).
    ///
    /// # Errors
    /// Every problem found.
    pub fn validate(&self) -> Result<DeclarativeProvider, ConfigErrors> {
        let mut errs = Vec::new();
        match self.validate_at("providers[0]", &mut errs) {
            Some(p) if errs.is_empty() => Ok(p),
            _ => Err(ConfigErrors(errs)),
        }
    }

    fn validate_at(&self, at: &str, errs: &mut Vec<ConfigError>) -> Option<DeclarativeProvider> {
        let before = errs.len();
        let kind = self.kind.trim();
        if kind.is_empty() {
            errs.push(err(
                &format!("{at}.kind"),
                "missing: a provider kind name is required",
            ));
        } else if !kind
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            errs.push(err(
                &format!("{at}.kind"),
                format!("`{kind}`: use lowercase letters, digits, `-` and `_`"),
            ));
        } else if crate::plugins::builtin(kind).is_some() {
            errs.push(err(
                &format!("{at}.kind"),
                format!("`{kind}` is a built-in provider kind; choose another name"),
            ));
        }
        if self.base_url.is_empty() {
            errs.push(err(
                &format!("{at}.base_url"),
                "missing: a base URL is required",
            ));
        } else if let Err(e) = BaseUrl::parse(&self.base_url) {
            errs.push(err(&format!("{at}.base_url"), e));
        }
        let auth = match (self.auth.scheme.as_str(), self.auth.header.as_deref()) {
            ("" | "bearer", _) => Some(AuthStyleOwned::Style(AuthStyle::Bearer)),
            ("token", _) => Some(AuthStyleOwned::Style(AuthStyle::Token)),
            ("basic", _) => Some(AuthStyleOwned::Style(AuthStyle::Basic)),
            ("raw", _) => Some(AuthStyleOwned::Style(AuthStyle::Raw)),
            ("none", _) => None,
            ("header", Some(h)) if valid_token(h) => {
                Some(AuthStyleOwned::Header(h.to_ascii_lowercase()))
            }
            ("header", Some(h)) => {
                errs.push(err(
                    &format!("{at}.auth.header"),
                    format!("`{h}` is not a valid header name"),
                ));
                None
            }
            ("header", None) => {
                errs.push(err(
                    &format!("{at}.auth.header"),
                    "missing: scheme `header` needs a header name",
                ));
                None
            }
            (s, _) => {
                errs.push(err(
                    &format!("{at}.auth.scheme"),
                    format!(
                        "unknown scheme `{s}`; expected bearer, token, basic, raw, header or none"
                    ),
                ));
                None
            }
        };
        let mut headers = Vec::new();
        for (name, value) in &self.headers {
            if !valid_token(name) {
                errs.push(err(
                    &format!("{at}.headers.{name}"),
                    "not a valid header name",
                ));
            } else if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                errs.push(err(
                    &format!("{at}.headers.{name}"),
                    "header values cannot contain CR, LF or NUL",
                ));
            } else {
                headers.push((name.to_ascii_lowercase(), value.clone()));
            }
        }
        let rl = &self.rate_limit;
        for (j, n) in rl.remaining.iter().chain(rl.reset.iter()).enumerate() {
            if !valid_token(n) {
                let (list, k) = if j < rl.remaining.len() {
                    ("remaining", j)
                } else {
                    ("reset", j - rl.remaining.len())
                };
                errs.push(err(
                    &format!("{at}.rate_limit.{list}[{k}]"),
                    format!("`{n}` is not a valid header name"),
                ));
            }
        }
        let reset_format = match rl.reset_format.as_deref() {
            None => ResetFormat::Auto,
            Some(f) => ResetFormat::parse(f).unwrap_or_else(|| {
                errs.push(err(
                    &format!("{at}.rate_limit.reset_format"),
                    format!(
                        "unknown format `{f}`; expected auto, epoch, epoch_ms, delta or iso8601"
                    ),
                ));
                ResetFormat::Auto
            }),
        };
        if let Some(w) = &self.webhook {
            if crate::webhook::preset_by_name(w).is_none() {
                errs.push(err(
                    &format!("{at}.webhook"),
                    format!(
                        "unknown webhook preset `{w}`; expected one of {}",
                        crate::webhook::NAMES.join(", ")
                    ),
                ));
            }
        }
        let param = self
            .pagination
            .param
            .clone()
            .unwrap_or_else(|| String::from("page"));
        if param.is_empty() || param.contains(['&', '=', '?', '#', ' ']) {
            errs.push(err(
                &format!("{at}.pagination.param"),
                "must be a plain query parameter name",
            ));
        }
        let next = match self.pagination.next.as_deref() {
            None | Some("link") => Next::Link,
            Some(p) if p.starts_with('/') => Next::Pointer(p.to_owned()),
            Some(h) if h.starts_with("header:") && valid_token(&h[7..]) => {
                Next::Header(h[7..].to_ascii_lowercase())
            }
            Some(x) => {
                errs.push(err(
                    &format!("{at}.pagination.next"),
                    format!("`{x}`: expected `link`, a JSON pointer such as `/next_cursor`, or `header:<name>`"),
                ));
                Next::Link
            }
        };
        if let Some(p) = &self.error_message {
            if !valid_pointer(p) {
                errs.push(err(
                    &format!("{at}.error_message"),
                    format!("`{p}` is not a JSON pointer (start with `/`)"),
                ));
            }
        }
        if self.operations.is_empty() {
            errs.push(err(
                &format!("{at}.operations"),
                "missing: declare at least one operation",
            ));
        }
        let mut ops = BTreeMap::new();
        for (name, t) in &self.operations {
            let here = format!("{at}.operations.{name}");
            let Some(op) = OpName::parse(name) else {
                let all: Vec<&str> = OpName::ALL.iter().map(|o| o.as_str()).collect();
                errs.push(err(
                    &here,
                    format!(
                        "unknown operation `{name}`; expected one of {}",
                        all.join(", ")
                    ),
                ));
                continue;
            };
            if let Some(t) = validate_template(op, t, &here, errs) {
                ops.insert(op, t);
            }
        }
        if errs.len() > before {
            return None;
        }
        Some(DeclarativeProvider {
            kind: kind.to_owned(),
            base_url: self.base_url.clone(),
            auth,
            headers,
            signals: RateLimitSignals {
                remaining: rl
                    .remaining
                    .iter()
                    .map(|s| s.to_ascii_lowercase())
                    .collect(),
                reset: rl.reset.iter().map(|s| s.to_ascii_lowercase()).collect(),
                reset_format,
                cooldown_below: Some(rl.cooldown_below.unwrap_or(0)),
            },
            webhook: self.webhook.clone(),
            param,
            next,
            error_message: self.error_message.clone(),
            ops,
        })
    }
}

fn validate_template(
    op: OpName,
    t: &RawTemplate,
    here: &str,
    errs: &mut Vec<ConfigError>,
) -> Option<Template> {
    let before = errs.len();
    let fields = op.fields();
    let method = Method::parse(&t.method);
    if method.is_none() {
        errs.push(err(
            &format!("{here}.method"),
            if t.method.is_empty() {
                String::from("missing: an HTTP method is required")
            } else {
                format!("unknown method `{}` (methods are uppercase)", t.method)
            },
        ));
    }
    if !t.path.starts_with('/') {
        errs.push(err(
            &format!("{here}.path"),
            "must start with `/` (it is appended to the base URL)",
        ));
    }
    let path_part = t.path.split_once('?').map_or(t.path.as_str(), |(p, _)| p);
    if path_part.split('/').any(|s| s == ".." || s == ".") {
        errs.push(err(&format!("{here}.path"), "dot segments are not allowed"));
    }
    match placeholders(&t.path) {
        Err(e) => errs.push(err(&format!("{here}.path"), e)),
        Ok(ps) => {
            for p in ps {
                if !fields.contains(&p) {
                    errs.push(err(
                        &format!("{here}.path"),
                        format!(
                            "unknown placeholder {{{p}}}; {} offers {}",
                            op.as_str(),
                            fields.join(", ")
                        ),
                    ));
                } else if p == "inputs" {
                    errs.push(err(
                        &format!("{here}.path"),
                        "{inputs} is an object and can only be used in a body",
                    ));
                }
            }
        }
    }
    if let Some(b) = &t.body {
        let mut ps = Vec::new();
        match body_placeholders(b, &mut ps) {
            Err(e) => errs.push(err(&format!("{here}.body"), e)),
            Ok(()) => {
                for p in ps {
                    if !fields.contains(&p) {
                        errs.push(err(
                            &format!("{here}.body"),
                            format!(
                                "unknown placeholder {{{p}}}; {} offers {}",
                                op.as_str(),
                                fields.join(", ")
                            ),
                        ));
                    }
                }
            }
        }
        if method.is_some_and(|m| matches!(m, Method::Get | Method::Head)) {
            errs.push(err(
                &format!("{here}.body"),
                "a GET or HEAD request has no body",
            ));
        }
    }
    if let Some(p) = &t.items {
        if !op.is_list() {
            errs.push(err(
                &format!("{here}.items"),
                format!("{} is not a list operation", op.as_str()),
            ));
        } else if !valid_pointer(p) {
            errs.push(err(
                &format!("{here}.items"),
                format!("`{p}` is not a JSON pointer (start with `/`)"),
            ));
        }
    }
    let known = shape_fields(op.shape());
    for (field, ptr) in &t.response {
        if !known.contains(&field.as_str()) {
            errs.push(err(
                &format!("{here}.response.{field}"),
                format!(
                    "{} has no field `{field}`; expected one of {}",
                    op.shape(),
                    known.join(", ")
                ),
            ));
        }
        if !valid_pointer(ptr) {
            errs.push(err(
                &format!("{here}.response.{field}"),
                format!("`{ptr}` is not a JSON pointer (start with `/`)"),
            ));
        }
    }
    if errs.len() > before {
        return None;
    }
    Some(Template {
        method: method.unwrap_or(Method::Get),
        path: t.path.clone(),
        body: t.body.clone(),
        items: t.items.clone(),
        response: t.response.clone(),
    })
}

/// Parses and validates declarations stored in KV: JSON, either `{"providers": [...]}`, an
/// array of declarations, or one declaration.
///
/// # Errors
/// A parse error (path `providers`) or every validation error with its key path.
pub fn load_from_kv_bytes(bytes: &[u8]) -> Result<Vec<DeclarativeProvider>, ConfigErrors> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| {
        ConfigErrors(alloc::vec![err(
            "providers",
            format!("not valid JSON: {e}")
        )])
    })?;
    let raw: RawDeclarations = match v {
        Value::Array(_) => serde_json::from_value::<Vec<RawDeclared>>(v)
            .map(|providers| RawDeclarations { providers }),
        Value::Object(ref o) if o.contains_key("providers") => serde_json::from_value(v),
        Value::Object(_) => serde_json::from_value::<RawDeclared>(v).map(|p| RawDeclarations {
            providers: alloc::vec![p],
        }),
        _ => {
            return Err(ConfigErrors(alloc::vec![err(
                "providers",
                "expected a JSON object or array"
            )]))
        }
    }
    .map_err(|e| ConfigErrors(alloc::vec![err("providers", e.to_string())]))?;
    raw.validate()
}

fn var_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn interpolate(
    s: &str,
    vars: &BTreeMap<&'static str, Value>,
    encode: bool,
) -> Result<String, &'static str> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let Some(j) = rest[i..].find('}') else { break };
        let name = &rest[i + 1..i + j];
        let f = vars.iter().find(|(k, _)| **k == name).map(|(k, v)| (*k, v));
        match f {
            Some((_, v)) => {
                let t = var_text(v);
                out.push_str(&if encode { pct_encode(&t) } else { t });
            }
            None => {
                return Err(OpName::ALL
                    .iter()
                    .flat_map(|o| o.fields().iter())
                    .find(|f| **f == name)
                    .copied()
                    .unwrap_or("argument"))
            }
        }
        rest = &rest[i + j + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn fill_body(t: &Value, vars: &BTreeMap<&'static str, Value>) -> Value {
    match t {
        Value::String(s) => {
            if let Some(name) = s.strip_prefix('{').and_then(|x| x.strip_suffix('}')) {
                if !name.contains(['{', '}']) {
                    return vars
                        .iter()
                        .find(|(k, _)| **k == name)
                        .map_or(Value::Null, |(_, v)| v.clone());
                }
            }
            let mut out = String::new();
            let mut rest = s.as_str();
            while let Some(i) = rest.find('{') {
                out.push_str(&rest[..i]);
                let Some(j) = rest[i..].find('}') else { break };
                let name = &rest[i + 1..i + j];
                if let Some((_, v)) = vars.iter().find(|(k, _)| **k == name) {
                    out.push_str(&var_text(v));
                }
                rest = &rest[i + j + 1..];
            }
            out.push_str(rest);
            Value::String(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| fill_body(x, vars)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| (k.clone(), fill_body(x, vars)))
                .collect(),
        ),
        other => other.clone(),
    }
}

impl DeclarativeProvider {
    fn project(&self, t: &Template, v: &Value) -> Value {
        let mut m = Map::new();
        for (field, ptr) in &t.response {
            let x = if ptr.is_empty() {
                Some(v)
            } else {
                v.pointer(ptr)
            };
            let x = match x {
                Some(Value::Number(n)) if field == "id" || field.ends_with("_id") => {
                    Value::String(n.to_string())
                }
                Some(x) => x.clone(),
                None => Value::Null,
            };
            m.insert(field.clone(), x);
        }
        Value::Object(m)
    }
}

impl Provider for DeclarativeProvider {
    fn kind(&self) -> &str {
        &self.kind
    }
    fn default_base_url(&self) -> Option<&str> {
        Some(&self.base_url)
    }
    fn auth_header(&self, secret: &str) -> Option<(String, String)> {
        match self.auth.as_ref()? {
            AuthStyleOwned::Style(s) => Some(s.header(secret)),
            AuthStyleOwned::Header(h) => Some((h.clone(), secret.to_owned())),
        }
    }
    fn default_headers(&self) -> HeaderList {
        self.headers.clone()
    }
    fn rate_limit(&self) -> RateLimitSignals {
        self.signals.clone()
    }
    fn webhook_preset(&self) -> Option<&str> {
        self.webhook.as_deref()
    }
    fn operations(&self) -> Vec<OpName> {
        self.ops.keys().copied().collect()
    }
    fn paginate(&self, req: UpstreamRequest, cursor: &str) -> UpstreamRequest {
        req.query(&self.param, cursor)
    }
    fn next_cursor(
        &self,
        _op: &Operation,
        headers: &[(String, String)],
        body: &Value,
    ) -> Option<String> {
        match &self.next {
            Next::Link => link_next_param(headers, &self.param),
            Next::Pointer(p) => text(body, p).filter(|c| !c.is_empty()),
            Next::Header(h) => headers
                .header(h)
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(String::from),
        }
    }
    fn map(&self, op: &Operation) -> Result<UpstreamRequest, Unsupported> {
        let name = op.name();
        let t = self
            .ops
            .get(&name)
            .ok_or_else(|| Unsupported::op(&self.kind, name))?;
        let vars = op.vars();
        let (path, query) = t.path.split_once('?').unwrap_or((t.path.as_str(), ""));
        let mut pq = interpolate(path, &vars, true).map_err(|missing| {
            Unsupported::because(
                &self.kind,
                name,
                format!("`{missing}` is required by this provider"),
            )
        })?;
        let mut sep = '?';
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            if let Ok(p) = interpolate(pair, &vars, true) {
                pq.push(sep);
                pq.push_str(&p);
                sep = '&';
            }
        }
        let mut req = match &t.body {
            Some(b) => UpstreamRequest::json(t.method, pq, &fill_body(b, &vars)),
            None => UpstreamRequest::new(t.method, pq),
        };
        if let Some(c) = op.cursor() {
            if !t.path.contains("{cursor}") {
                req = self.paginate(req, c);
            }
        }
        Ok(req)
    }
    fn provider_error(
        &self,
        status: u16,
        headers: &[(String, String)],
        body: &[u8],
    ) -> ProviderError {
        let declared = self.error_message.as_deref().and_then(|p| {
            let v: Value = serde_json::from_slice(body).ok()?;
            text(&v, p)
        });
        let (generic, code) = error_message(body);
        ProviderError {
            status,
            message: declared
                .or(generic)
                .unwrap_or_else(|| format!("HTTP {status}")),
            code,
            fault: self.classify(status, headers).unwrap_or(Fault::Provider),
        }
    }
    fn shape(
        &self,
        op: &Operation,
        _headers: &[(String, String)],
        v: &Value,
    ) -> Result<Value, ProviderError> {
        let Some(t) = self.ops.get(&op.name()) else {
            return Ok(v.clone());
        };
        if t.response.is_empty() {
            return Ok(v.clone());
        }
        if op.name().is_list() {
            let list = match t.items.as_deref() {
                Some("") | None => v,
                Some(p) => v.pointer(p).unwrap_or(&Value::Null),
            };
            let arr = list.as_array().ok_or_else(|| ProviderError {
                status: 502,
                message: format!(
                    "{}: the list answer has no array at `{}`",
                    self.kind,
                    t.items.as_deref().unwrap_or("")
                ),
                code: None,
                fault: Fault::Provider,
            })?;
            Ok(Value::Array(
                arr.iter().map(|x| self.project(t, x)).collect(),
            ))
        } else {
            Ok(self.project(t, v))
        }
    }
}

/// Built-in plugins plus the declared providers currently in force.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    declared: Vec<DeclarativeProvider>,
}

impl Registry {
    /// Built-ins only.
    #[must_use]
    pub fn new() -> Registry {
        Registry::default()
    }

    /// The plugin for `kind`: a built-in, else a declared provider.
    #[must_use]
    pub fn get(&self, kind: &str) -> Option<&dyn Provider> {
        if let Some(b) = crate::plugins::builtin(kind) {
            return Some(b);
        }
        self.declared
            .iter()
            .find(|p| p.kind == kind)
            .map(|p| p as &dyn Provider)
    }

    /// The declared kinds in force.
    #[must_use]
    pub fn declared_kinds(&self) -> Vec<&str> {
        self.declared.iter().map(|p| p.kind.as_str()).collect()
    }

    /// Replaces the declared providers with those in `bytes` (see [`load_from_kv_bytes`]).
    /// All or nothing: on any error the previous set stays in force.
    ///
    /// # Errors
    /// Every error with its key path.
    pub fn load_kv(&mut self, bytes: &[u8]) -> Result<Vec<String>, ConfigErrors> {
        let next = load_from_kv_bytes(bytes)?;
        let kinds = next.iter().map(|p| p.kind.clone()).collect();
        self.declared = next;
        Ok(kinds)
    }

    /// Sets each configured provider's rate-limit signals from its plugin (built-in or
    /// declared). Call after `RawConfig::validate`, before `Router::new`.
    pub fn install_rate_limits(&self, config: &mut Config) {
        for p in &mut config.providers {
            if let Some(plugin) = self.get(&p.kind) {
                p.rate_limit = Some(plugin.rate_limit());
            }
        }
    }
}
