//! Serving `/v1` from any host: the decisions the edge hosts must not make themselves.
//!
//! A host that serves `/v1` does four things, each with one call here, around core's
//! `driver::handle` on the routes core generated from `[v1.<family>]` (see
//! [`mosaic_core::config::V1Family`]):
//!
//! 1. [`prepare`]: parse the request ([`parse_v1`]) and [`plan`] who may answer — every
//!    provider of the family for a read (when declared equivalent), the **primary only** for a
//!    write, only `?provider=` when given, only providers of the cursor's kind when a cursor is
//!    passed, and only providers whose plugin maps the operation. The plan is a *pin*: the value
//!    of [`V1_PIN_HEADER`] that selects the generated route with exactly those providers, so
//!    the engine's breakers, cooldowns, retries and budgets apply unchanged.
//!    [`Prepared::pin_headers`] writes it into the request headers (dropping a caller's).
//! 2. [`rewrite_attempt`], in `Host::fetch`: the engine's attempt becomes the attempted
//!    provider's own request — method, URL on its base, its fixed headers, its auth header, its
//!    body.
//! 3. [`answer`]: the answering provider's response normalized into the `/v1` envelope, or its
//!    error as a problem keeping the provider's message.
//! 4. [`Answer::problem`] / [`Answer::unsupported`] for what fails before or outside the engine.
//!
//! Everything is pure: no I/O, no clock.

use alloc::borrow::ToOwned;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use mosaic_core::config::{AuthScheme, Config, V1Family, V1_PIN_HEADER};
use mosaic_core::engine::{Attempt, Router};
use mosaic_core::http::{HeaderList, Headers as _, Method};
use mosaic_core::problem::{Problem, ProblemKind};

use crate::api::{envelope, parse_v1, provider_problem, unsupported_problem, Operation, Selector};
use crate::declarative::Registry;
use crate::plugin::{Category, Unsupported};

/// Largest provider answer a host buffers to normalize (a larger one is a 502 problem).
pub const MAX_ANSWER_BYTES: usize = 16 << 20;

/// Caller headers never passed to a provider under `/v1`: the body and its framing are the
/// plugin's, and the answer must be a whole, uncompressed, non-conditional JSON body to
/// normalize.
const DROPPED: [&str; 8] = [
    "content-type",
    "content-length",
    "content-encoding",
    "accept-encoding",
    "if-none-match",
    "if-modified-since",
    "range",
    "if-range",
];

/// A complete `/v1` reply for the host to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// Status.
    pub status: u16,
    /// Headers (content type, `x-mosaic-provider`, `x-mosaic-request-id`, …).
    pub headers: HeaderList,
    /// Body.
    pub body: Vec<u8>,
}

impl Answer {
    fn json(status: u16, content_type: &str, body: String, request_id: &str) -> Answer {
        Answer {
            status,
            headers: alloc::vec![
                (String::from("content-type"), String::from(content_type)),
                (
                    String::from("x-mosaic-request-id"),
                    String::from(request_id)
                ),
            ],
            body: body.into_bytes(),
        }
    }

    /// A core problem as `application/problem+json`.
    #[must_use]
    pub fn problem(p: &Problem, request_id: &str) -> Answer {
        let mut a = Answer::json(
            p.status(),
            "application/problem+json",
            p.to_json(request_id),
            request_id,
        );
        a.headers = p.headers();
        a.headers.push((
            String::from("x-mosaic-request-id"),
            String::from(request_id),
        ));
        a
    }

    /// An operation a provider cannot perform (501, or 400 for arguments it cannot take).
    #[must_use]
    pub fn unsupported(u: &Unsupported, request_id: &str) -> Answer {
        let (status, body) = unsupported_problem(u, request_id);
        Answer::json(status, "application/problem+json", body, request_id)
    }
}

/// A parsed `/v1` request and who may answer it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prepared {
    /// The operation.
    pub op: Operation,
    /// The [`V1_PIN_HEADER`] value, `None` for the family route.
    pub pin: Option<String>,
    /// The authenticated tenant's index (`None`: the implicit default/public tenant), whose
    /// own provider credentials [`rewrite_attempt`] prefers.
    pub tenant: Option<usize>,
}

impl Prepared {
    /// Drops any [`V1_PIN_HEADER`] the caller sent and sets the plan's.
    pub fn pin_headers(&self, headers: &mut HeaderList) {
        headers.retain(|(n, _)| !n.eq_ignore_ascii_case(V1_PIN_HEADER));
        if let Some(p) = &self.pin {
            headers.push((String::from(V1_PIN_HEADER), p.clone()));
        }
    }
}

/// Authenticates the caller, parses a `/v1` request and plans it (see [`plan`]). `target` is
/// the raw request target (`/v1/…?…`).
///
/// The caller is authenticated first (as the family route would, honouring its `public`), so
/// that nothing about the configuration — which families, which providers — is told to a
/// caller without a valid key; the tenant's rate limits and route permissions are then
/// applied by core's driver as for any route.
///
/// # Errors
/// The answer to give instead: 401 without a valid key, 404 for an unknown path or an
/// unconfigured family, 400 for bad arguments or selectors, 501 when no provider of the family
/// supports the operation.
pub fn prepare(
    router: &Router,
    registry: &Registry,
    method: Method,
    target: &str,
    headers: &[(String, String)],
    body: &[u8],
    request_id: &str,
) -> Result<Prepared, Answer> {
    let config = &router.config;
    let (path, query) = target
        .split_once('?')
        .map_or((target, None), |(p, q)| (p, Some(q)));
    let public = path
        .strip_prefix("/v1/")
        .and_then(|r| r.split('/').next())
        .and_then(|f| config.v1_family(f))
        .and_then(|f| config.routes.get(f.route))
        .is_some_and(|r| r.public);
    let tenant = router
        .authenticate(headers, public)
        .map_err(|p| Answer::problem(&p, request_id))?
        .index;
    let (op, sel) =
        parse_v1(method, path, query, body).map_err(|p| Answer::problem(&p, request_id))?;
    let pin = plan(config, registry, &op, &sel, request_id)?;
    Ok(Prepared { op, pin, tenant })
}

/// Who may answer `op`: the pin of the generated route whose providers are exactly those
/// allowed (`None`: the family route as configured).
///
/// In order: the family must be configured; `?provider=` keeps only that provider; a cursor
/// keeps only providers of its kind; a write keeps only the primary (unless `?provider=` names
/// another explicitly); reads keep the family route (every provider when
/// `equivalent_reads`, else the primary). Finally providers whose plugin cannot map `op` are
/// left out; when that leaves some, the first of them answers alone.
///
/// # Errors
/// The answer to give instead (see [`prepare`]).
pub fn plan(
    config: &Config,
    registry: &Registry,
    op: &Operation,
    sel: &Selector,
    request_id: &str,
) -> Result<Option<String>, Answer> {
    let family_name = Category::of(op.name()).as_str();
    let problem = |kind, detail: String| Answer::problem(&Problem::new(kind, detail), request_id);
    let Some(family) = config.v1_family(family_name) else {
        return Err(problem(
            ProblemKind::NoRoute,
            format!("no provider serves /v1/{family_name}: configure [v1.{family_name}]"),
        ));
    };
    let id = |p: usize| config.providers[p].id.as_str();
    let kind = |p: usize| config.providers[p].kind.as_str();
    let listed = || {
        family
            .providers
            .iter()
            .map(|&p| id(p))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let primary = family.providers.first().copied();
    let (mut pin, candidates): (Option<String>, Vec<usize>) = if let Some(want) = &sel.provider {
        let Some(p) = family.providers.iter().copied().find(|&p| id(p) == want) else {
            return Err(problem(
                ProblemKind::BadRequest,
                format!(
                    "provider `{want}` does not serve /v1/{family_name}; it is served by {}",
                    listed()
                ),
            ));
        };
        if let Some(k) = sel.cursor_kind.as_deref().filter(|k| *k != kind(p)) {
            return Err(problem(
                ProblemKind::BadRequest,
                format!(
                    "the cursor came from a `{k}` provider; `{want}` is `{}`: drop `provider` or the cursor",
                    kind(p)
                ),
            ));
        }
        (Some(want.clone()), alloc::vec![p])
    } else if let Some(k) = sel.cursor_kind.as_deref() {
        let readers = read_providers(family, config);
        let members: Vec<usize> = readers.into_iter().filter(|&p| kind(p) == k).collect();
        match members.as_slice() {
            [] => {
                return Err(problem(
                    ProblemKind::BadRequest,
                    format!(
                        "the cursor came from a `{k}` provider and none serves /v1/{family_name} here; start the listing again without `cursor`"
                    ),
                ))
            }
            [one] => (Some(id(*one).to_owned()), members),
            _ => (Some(format!("kind:{k}")), members),
        }
    } else if !op.is_read() {
        let p = primary.into_iter().collect::<Vec<_>>();
        (p.first().map(|&p| id(p).to_owned()), p)
    } else {
        (None, read_providers(family, config))
    };
    if pin
        .as_deref()
        .is_some_and(|p| family.pin_route(p).is_none())
    {
        // every provider and every shared kind has a pin; anything else is a bug, not input
        return Err(problem(
            ProblemKind::Internal,
            format!("no /v1 route for `{}`", pin.unwrap_or_default()),
        ));
    }
    let mut first_err: Option<Unsupported> = None;
    let usable: Vec<usize> = candidates
        .iter()
        .copied()
        .filter(|&p| match registry.get(kind(p)) {
            Some(plugin) => match plugin.map(op) {
                Ok(_) => true,
                Err(u) => {
                    first_err.get_or_insert(u);
                    false
                }
            },
            None => {
                first_err.get_or_insert(Unsupported::because(
                    kind(p),
                    op.name(),
                    format!(
                        "no plugin for provider kind `{}` (a declarative provider not loaded?)",
                        kind(p)
                    ),
                ));
                false
            }
        })
        .collect();
    match usable.first() {
        None => {
            let u = first_err.unwrap_or_else(|| Unsupported::op(family_name, op.name()));
            Err(Answer::unsupported(&u, request_id))
        }
        Some(&first) if usable.len() < candidates.len() => {
            pin = Some(id(first).to_owned());
            Ok(pin)
        }
        Some(_) => Ok(pin),
    }
}

/// The providers the family route sends a read to.
fn read_providers(family: &V1Family, config: &Config) -> Vec<usize> {
    config
        .routes
        .get(family.route)
        .map_or_else(Vec::new, |r| r.providers.clone())
}

fn plugin_of<'a>(
    registry: &'a Registry,
    kind: &str,
    op: &Operation,
) -> Result<&'a dyn crate::plugin::Provider, Unsupported> {
    registry.get(kind).ok_or_else(|| {
        Unsupported::because(
            kind,
            op.name(),
            format!("no plugin for provider kind `{kind}`"),
        )
    })
}

/// Why provider `provider` cannot perform `op`, if it cannot: what [`rewrite_attempt`] refuses
/// an attempt to it with (pure: the same answer every time).
#[must_use]
pub fn unsupported(
    router: &Router,
    registry: &Registry,
    op: &Operation,
    provider: usize,
) -> Option<Unsupported> {
    let p = router.config.providers.get(provider)?;
    match plugin_of(registry, &p.kind, op) {
        Ok(plugin) => plugin.map(op).err(),
        Err(u) => Some(u),
    }
}

/// Rewrites the engine's attempt into the attempted provider's own request: its plugin maps
/// `op` (method, path and query on the provider's base URL, headers, body); the plugin's fixed
/// headers replace the caller's of the same name; the engine's credential header is replaced
/// by the plugin's for the secret the engine would use (the tenant's own credential for this
/// provider, else the provider's). Returns the attempt and the body to send.
///
/// # Errors
/// [`Unsupported`] when the provider has no plugin or cannot map `op` (answer it with
/// [`Answer::unsupported`]).
pub fn rewrite_attempt(
    router: &Router,
    registry: &Registry,
    op: &Operation,
    tenant: Option<usize>,
    attempt: &Attempt,
) -> Result<(Attempt, Option<Vec<u8>>), Unsupported> {
    let p = &router.config.providers[attempt.provider];
    let plugin = plugin_of(registry, &p.kind, op)?;
    let req = plugin.map(op)?;
    let mut a = attempt.clone();
    a.method = req.method;
    a.url = req.url(&p.base_url);
    let engine_cred = match &p.auth {
        AuthScheme::Header(h, _) => h.to_ascii_lowercase(),
        _ => String::from("authorization"),
    };
    let tenant_cred = tenant
        .and_then(|t| router.config.tenants.get(t))
        .and_then(|t| t.credentials.get(&attempt.provider));
    let auth = tenant_cred
        .or_else(|| p.auth.secret())
        .and_then(|r| router.secret(r))
        .and_then(|s| plugin.auth_header(s.expose()));
    let mut set: HeaderList = plugin.default_headers();
    set.extend(req.headers);
    set.extend(auth);
    a.headers.retain(|(n, _)| {
        !n.eq_ignore_ascii_case(&engine_cred)
            && !DROPPED.iter().any(|d| n.eq_ignore_ascii_case(d))
            && !set.iter().any(|(s, _)| n.eq_ignore_ascii_case(s))
    });
    a.headers.extend(set);
    Ok((a, req.body))
}

/// What a provider answered, for [`answer`].
#[derive(Clone, Copy, Debug)]
pub struct Reply<'a> {
    /// The answering provider's id (core's `RequestLog::providers`, last).
    pub provider: &'a str,
    /// Its status.
    pub status: u16,
    /// Its headers.
    pub headers: &'a [(String, String)],
    /// Its whole body (at most [`MAX_ANSWER_BYTES`]).
    pub body: &'a [u8],
}

/// The `/v1` answer for what a provider replied: on success the normalized envelope (the
/// provider's 2xx status kept), else the provider's error as a problem with its own message,
/// status and code.
#[must_use]
pub fn answer(
    config: &Config,
    registry: &Registry,
    op: &Operation,
    reply: &Reply<'_>,
    request_id: &str,
) -> Answer {
    let Reply {
        provider,
        status,
        headers,
        body,
    } = *reply;
    let Some(p) = config
        .provider_index(provider)
        .map(|i| &config.providers[i])
    else {
        return Answer::problem(
            &Problem::new(
                ProblemKind::Internal,
                format!("answer from unknown provider `{provider}`"),
            ),
            request_id,
        );
    };
    let Some(plugin) = registry.get(&p.kind) else {
        return Answer::unsupported(
            &Unsupported::because(
                &p.kind,
                op.name(),
                format!("no plugin for provider kind `{}`", p.kind),
            ),
            request_id,
        );
    };
    let mut a = match plugin.normalize(op, status, headers, body) {
        Ok(n) => Answer::json(
            if (200..=299).contains(&status) {
                status
            } else {
                200
            },
            "application/json",
            envelope(&p.id, &p.kind, &n).to_string(),
            request_id,
        ),
        Err(e) => {
            let (s, b) = provider_problem(&p.id, &e, request_id);
            let mut a = Answer::json(s, "application/problem+json", b, request_id);
            if let Some(r) = headers.header("retry-after") {
                a.headers.push((String::from("retry-after"), r.to_string()));
            }
            a
        }
    };
    a.headers
        .push((String::from("x-mosaic-provider"), p.id.clone()));
    a
}

/// Whether `path` is served by the `/v1` API on this config: a configured family's path or
/// `/v1/openapi.json`. Hosts proxy other paths as before.
#[must_use]
pub fn serves(config: &Config, path: &str) -> bool {
    if config.v1.is_empty() {
        return false;
    }
    path == "/v1/openapi.json"
        || path
            .strip_prefix("/v1/")
            .and_then(|r| r.split('/').next())
            .is_some_and(|f| mosaic_core::config::V1_FAMILIES.contains(&f))
}

/// Warnings about `[v1]` for the host to log: a provider whose kind has no plugin (yet: a
/// declarative one may be loaded later) or whose plugin maps no operation of its family.
#[must_use]
pub fn warnings(config: &Config, registry: &Registry) -> Vec<String> {
    let mut out = Vec::new();
    for f in &config.v1 {
        for &p in &f.providers {
            let pc = &config.providers[p];
            match registry.get(&pc.kind) {
                None => out.push(format!(
                    "v1.{}: provider `{}` has kind `{}`, which has no plugin (yet); it answers 501 until a declaration of that kind is loaded",
                    f.family, pc.id, pc.kind
                )),
                Some(plugin) => {
                    if !plugin
                        .operations()
                        .iter()
                        .any(|o| Category::of(*o).as_str() == f.family)
                    {
                        out.push(format!(
                            "v1.{}: provider `{}` (kind `{}`) supports no /v1/{} operation",
                            f.family, pc.id, pc.kind, f.family
                        ));
                    }
                }
            }
        }
    }
    out
}
