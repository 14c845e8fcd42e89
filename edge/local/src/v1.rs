//! The normalized `/v1` API and the declarative providers, translated for tokio.
//!
//! Every decision is `mosaic_providers::v1`'s: [`serve`] parses and plans the request
//! (`v1::prepare`), runs core's `driver::handle` on the route the plan pins, rewrites each
//! attempt with the attempted provider's plugin (`v1::rewrite_attempt`) and answers with the
//! normalized envelope or the provider's problem (`v1::answer`). `/v1/openapi.json` is
//! `openapi::json()`.
//!
//! Declarative providers live in the store under [`PROVIDERS_KEY`] (JSON, see
//! `mosaic_providers::declarative`): read at start, re-read every [`POLL`] (so a declaration
//! written by another instance through Redis is picked up), and written by
//! `PUT /_mosaic/providers` (admin token). A bad declaration is logged with its key paths and
//! the set in force stays. A change re-installs the plugins' rate-limit headers into the
//! running router, carrying its state over.

use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};

use hyper::header::{HeaderName, HeaderValue};
use hyper::Response;
use mosaic_core::driver::{self, Host, RequestLog, UpstreamResponse};
use mosaic_core::engine::{Attempt, FetchError, Request};
use mosaic_core::http::Method;
use mosaic_core::problem::{Problem, ProblemKind};
use mosaic_core::region::Locality;
use mosaic_core::time::Instant;
use mosaic_core::{snapshot, State};
use mosaic_providers::declarative::Registry;
use mosaic_providers::plugin::Unsupported;
use mosaic_providers::v1::{self, Answer};

use crate::host::{monotonic, wall_now, Body, Live, LocalHost, Shared};
use crate::store::Kv;
use crate::upstream::Clients;

/// Store key of the declarative providers.
pub const PROVIDERS_KEY: &str = "mosaic:providers";
/// How often the store key is re-read.
pub const POLL: Duration = Duration::from_secs(5);
/// Largest declaration accepted by `PUT /_mosaic/providers`.
const MAX_DECLARATIONS: usize = 1 << 20;

/// The plugins in force: built-ins plus the declarations last loaded. Process-wide, like the
/// store it mirrors; swapped whole so a request sees one consistent set.
fn slot() -> &'static RwLock<Arc<Registry>> {
    static REGISTRY: OnceLock<RwLock<Arc<Registry>>> = OnceLock::new();
    REGISTRY.get_or_init(|| RwLock::new(Arc::new(Registry::new())))
}

/// The plugins in force.
pub fn registry() -> Arc<Registry> {
    Arc::clone(
        &slot()
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    )
}

fn install(r: Registry) {
    *slot()
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(r);
}

/// Validates `bytes` as declarations and puts them in force; on error the old set stays.
///
/// # Errors
/// Every problem as `key.path: message`.
fn load(bytes: &[u8]) -> Result<Vec<String>, Vec<String>> {
    let mut next = (*registry()).clone();
    match next.load_kv(bytes) {
        Ok(kinds) => {
            install(next);
            Ok(kinds)
        }
        Err(errs) => Err(errs.0.iter().map(ToString::to_string).collect()),
    }
}

/// Loads the declarations in the store, at start (before the router is built). Returns the
/// bytes read, so the poll loop only reloads on a change.
pub async fn load_from_store(store: &impl Kv) -> Option<Vec<u8>> {
    match store.get(PROVIDERS_KEY).await {
        Ok(Some(bytes)) => {
            match load(&bytes) {
                Ok(kinds) => tracing::info!(kinds = ?kinds, "declarative providers loaded"),
                Err(errors) => tracing::error!(
                    key = PROVIDERS_KEY,
                    errors = ?errors,
                    "declarative providers rejected; only the built-in ones are in force"
                ),
            }
            Some(bytes)
        }
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(error = %e, key = PROVIDERS_KEY, "declarative providers unreadable");
            None
        }
    }
}

/// Re-reads [`PROVIDERS_KEY`] every [`POLL`]; a changed, valid set replaces the one in force.
pub async fn poll(shared: Arc<Shared>, mut last: Option<Vec<u8>>) {
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let bytes = match shared.store.get(PROVIDERS_KEY).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, key = PROVIDERS_KEY, "declarative providers unreadable");
                continue;
            }
        };
        if bytes == last {
            continue;
        }
        match bytes.as_deref().map_or_else(|| load(b"[]"), load) {
            Ok(kinds) => {
                tracing::info!(kinds = ?kinds, "declarative providers reloaded");
                refresh_router(&shared).await;
            }
            Err(errors) => tracing::error!(
                key = PROVIDERS_KEY,
                errors = ?errors,
                "declarative providers rejected; the previous set stays in force"
            ),
        }
        last = bytes;
    }
}

/// Rebuilds the running router so configured providers of a newly declared kind get its
/// rate-limit headers; state carries over (as on reload).
async fn refresh_router(shared: &Shared) {
    let _serial = shared.reload_lock.lock().await;
    let old = shared.live();
    let router = crate::cli::router(old.router.config.clone());
    let mut seed = [0u8; 8];
    let _ = getrandom::fill(&mut seed);
    let state = {
        let s = old.state();
        snapshot::carry_over(
            &old.router.config,
            &s,
            &router.config,
            u64::from_le_bytes(seed),
        )
    };
    for w in v1::warnings(&router.config, &registry()) {
        tracing::warn!(warning = %w, "v1");
    }
    shared.swap(Live {
        router,
        state: Mutex::new(state),
        generation: old.generation + 1,
    });
}

/// `GET /_mosaic/providers` lists the plugins in force; `PUT` validates, stores and loads a
/// declaration set at once (400 with every error's key path, the old set staying).
pub async fn admin(
    shared: &Arc<Shared>,
    method: Method,
    body: crate::conn::RequestBody<'_>,
    id: &str,
) -> Response<Body> {
    match method {
        Method::Get => {
            let reg = registry();
            let v = serde_json::json!({
                "builtin": mosaic_providers::plugins::builtins().iter().map(|b| b.line()).collect::<Vec<_>>(),
                "declared": reg.declared_kinds(),
            });
            json(200, &v.to_string(), "application/json", id)
        }
        Method::Put => {
            let bytes = match Limited::new(body, MAX_DECLARATIONS).collect().await {
                Ok(c) => c.to_bytes(),
                Err(e) => {
                    return problem(
                        &Problem::new(
                            ProblemKind::PayloadTooLarge,
                            format!("declarations: {e} (at most {MAX_DECLARATIONS} bytes)"),
                        ),
                        id,
                    )
                }
            };
            // validate before storing: a bad set never reaches the store
            if let Err(errs) = mosaic_providers::declarative::load_from_kv_bytes(&bytes) {
                let errors: Vec<String> = errs.0.iter().map(ToString::to_string).collect();
                let p = Problem::new(
                    ProblemKind::InvalidConfig,
                    format!(
                        "the declarations were rejected; the ones in force stay: {}",
                        errors.join("; ")
                    ),
                );
                let body = p.to_json_with_errors(id, 400, &errors);
                return json(400, &body, "application/problem+json", id);
            }
            if let Err(e) = shared
                .store
                .put(PROVIDERS_KEY, bytes.to_vec(), None, true)
                .await
            {
                return problem(
                    &Problem::new(
                        ProblemKind::Internal,
                        format!("the declarations could not be stored: {e}"),
                    ),
                    id,
                );
            }
            match load(&bytes) {
                Ok(kinds) => {
                    tracing::info!(kinds = ?kinds, "declarative providers loaded (admin)");
                    refresh_router(shared).await;
                    json(
                        200,
                        &serde_json::json!({ "loaded": kinds }).to_string(),
                        "application/json",
                        id,
                    )
                }
                Err(errors) => problem(
                    &Problem::new(ProblemKind::InvalidConfig, errors.join("; ")),
                    id,
                ),
            }
        }
        _ => problem(
            &Problem::new(
                ProblemKind::NoRoute,
                format!(
                    "{} /_mosaic/providers is not an admin endpoint; try GET or PUT",
                    method.as_str()
                ),
            ),
            id,
        ),
    }
}

fn json(status: u16, body: &str, content_type: &'static str, id: &str) -> Response<Body> {
    answer_response(Answer {
        status,
        headers: vec![
            (String::from("content-type"), String::from(content_type)),
            (String::from("x-mosaic-request-id"), String::from(id)),
        ],
        body: body.as_bytes().to_vec(),
    })
}

fn problem(p: &Problem, id: &str) -> Response<Body> {
    answer_response(Answer::problem(p, id))
}

fn answer_response(a: Answer) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from(a.body))
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() =
        hyper::StatusCode::from_u16(a.status).unwrap_or(hyper::StatusCode::BAD_GATEWAY);
    for (n, v) in a.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(n.as_bytes()),
            HeaderValue::from_str(&v),
        ) {
            r.headers_mut().append(n, v);
        }
    }
    r
}

/// `driver::Host` for one `/v1` request: the local host, with each attempt rewritten by the
/// attempted provider's plugin and sent with the plugin's body.
struct V1Host<'a> {
    inner: LocalHost<'a>,
    live: &'a Live,
    registry: &'a Registry,
    op: &'a mosaic_providers::api::Operation,
    tenant: Option<usize>,
    unsupported: Mutex<Option<Unsupported>>,
}

impl Host for V1Host<'_> {
    type Body = Body;

    fn now(&self) -> Instant {
        wall_now()
    }

    fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.live.state())
    }

    async fn fetch(&self, attempt: &Attempt) -> Result<UpstreamResponse<Body>, FetchError> {
        let (a, body) = match v1::rewrite_attempt(
            &self.live.router,
            self.registry,
            self.op,
            self.tenant,
            attempt,
        ) {
            Ok(x) => x,
            Err(u) => {
                // not an upstream failure: end the call (Forbidden is final) and answer 501/400
                if let Ok(mut slot) = self.unsupported.lock() {
                    *slot = Some(u);
                }
                return Err(FetchError::Forbidden);
            }
        };
        let deadline = tokio::time::Instant::from_std(monotonic(a.deadline));
        let clients = Clients::local().map_err(|e| {
            tracing::error!(error = %e, "no HTTP client");
            FetchError::Connect
        })?;
        clients
            .send_by(&a, Bytes::from(body.unwrap_or_default()), deadline)
            .await
    }

    async fn sleep_until(&self, t: Instant) {
        self.inner.sleep_until(t).await;
    }

    async fn cache_get(&self, key: &str) -> Option<Vec<u8>> {
        self.inner.cache_get(key).await
    }

    async fn cache_put(&self, key: &str, value: Vec<u8>, ttl: Duration) {
        self.inner.cache_put(key, value, ttl).await;
    }

    fn cache_release(&self, key: &str) {
        self.inner.cache_release(key);
    }

    async fn read_body(&self, body: Body, cap: usize) -> Result<Vec<u8>, Body> {
        self.inner.read_body(body, cap).await
    }
}

/// One `/v1` request (the host has read the body within `max_body_bytes`).
#[allow(clippy::too_many_arguments)]
pub async fn serve(
    shared: &Arc<Shared>,
    live: &Arc<Live>,
    method: Method,
    target: &str,
    mut headers: Vec<(String, String)>,
    body: Bytes,
    ip: &str,
    id: &str,
) -> (Response<Body>, RequestLog) {
    let mut log = RequestLog {
        request_id: id.to_string(),
        cache: driver::cache_result::BYPASS,
        route: Some(String::from("v1")),
        ..RequestLog::default()
    };
    if target.split('?').next() == Some("/v1/openapi.json") {
        let resp = if matches!(method, Method::Get | Method::Head) {
            json(
                200,
                &mosaic_providers::openapi::json(),
                "application/json",
                id,
            )
        } else {
            problem(
                &Problem::new(
                    ProblemKind::NoRoute,
                    format!("{} is not allowed on /v1/openapi.json", method.as_str()),
                ),
                id,
            )
        };
        return (resp, log);
    }
    let registry = registry();
    let config = &live.router.config;
    let prepared = match v1::prepare(&live.router, &registry, method, target, &headers, &body, id) {
        Ok(p) => p,
        Err(a) => return (answer_response(a), log),
    };
    prepared.pin_headers(&mut headers);
    let request = Request {
        method,
        host: None,
        target,
        headers: &headers,
        client_ip: Some(ip),
        https: false,
        locality: Locality::default(),
        id,
    };
    let host = V1Host {
        inner: LocalHost::new(shared, live, Bytes::new()),
        live,
        registry: &registry,
        op: &prepared.op,
        tenant: prepared.tenant,
        unsupported: Mutex::new(None),
    };
    let reply = driver::handle(&host, &live.router, &request, 0).await;
    log = reply.log.clone();
    let unsupported = host.unsupported.lock().ok().and_then(|mut u| u.take());
    let answer = if let Some(u) = unsupported {
        Answer::unsupported(&u, id)
    } else if reply.log.problem.is_some() {
        // core's own problem (no route, limits, every provider unavailable): as it is
        let body = match reply.body {
            driver::ReplyBody::Bytes(b) => b,
            driver::ReplyBody::Stream(_) => Vec::new(),
        };
        Answer {
            status: reply.status,
            headers: reply.headers,
            body,
        }
    } else {
        let provider = reply.log.providers.last().cloned().unwrap_or_default();
        let bytes = match reply.body {
            driver::ReplyBody::Bytes(b) => Ok(b),
            driver::ReplyBody::Stream(s) => host
                .read_body(s, v1::MAX_ANSWER_BYTES)
                .await
                .map_err(|_| ()),
        };
        match bytes {
            Ok(b) => v1::answer(
                config,
                &registry,
                &prepared.op,
                &v1::Reply {
                    provider: &provider,
                    status: reply.status,
                    headers: &reply.headers,
                    body: &b,
                },
                id,
            ),
            Err(()) => Answer::problem(
                &Problem::new(
                    ProblemKind::UpstreamError,
                    format!(
                        "{provider} answered with more than {} bytes; too large to normalize",
                        v1::MAX_ANSWER_BYTES
                    ),
                ),
                id,
            ),
        }
    };
    log.status = answer.status;
    (answer_response(answer), log)
}
