//! The `/v1` API through core's real driver and engine on a `SimHost`: a host wrapper maps each
//! attempt with the provider's plugin (as edge hosts must), so read failover GitHub → Gitea
//! answers the same normalized shape, writes stay on the primary, rate-limit headers cool a
//! provider down before any 429, and a declarative provider loaded from KV serves requests
//! without a restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::time::Duration;

use mosaic_core::driver::{self, Host, Reply, ReplyBody, UpstreamResponse};
use mosaic_core::engine::{Attempt, FetchError, Request};
use mosaic_core::http::Method;
use mosaic_core::region::Locality;
use mosaic_core::sim::{block_on, Behaviour, SimHost};
use mosaic_core::{Instant, RawConfig, Router, State};
use mosaic_providers::api::{envelope, parse_v1, Operation};
use mosaic_providers::declarative::Registry;
use serde_json::Value;

const T0: u64 = 1_700_000_000;

fn fixture(kind: &str, name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../tests/fixtures/providers/{kind}/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

const CFG: &str = r#"
[[providers]]
id = "gh"
kind = "github"
base_url = "https://api.github.com"
[[providers]]
id = "mirror"
kind = "gitea"
base_url = "https://gitea.example.com/api/v1"
[[providers]]
id = "acme"
kind = "acme-git"
base_url = "https://git.acme.example/api"

[[routes]]
name = "v1-git"
match = { path = "/v1/git/{*rest}" }
providers = ["gh", "mirror"]
retry = { attempts = 3, backoff_base_ms = 100, backoff_max_ms = 1000 }
cache = { enabled = false }

[[routes]]
name = "v1-acme"
match = { path = "/v1/acme/{*rest}" }
providers = ["acme"]
cache = { enabled = false }
"#;

fn router(registry: &Registry) -> Router {
    let raw: RawConfig = toml::from_str(CFG).unwrap();
    let mut cfg = raw.validate().unwrap_or_else(|e| panic!("{e}"));
    registry.install_rate_limits(&mut cfg);
    Router::new(cfg, |_| None)
}

/// What an edge host does for `/v1`: rewrite each attempt with the attempted provider's
/// plugin (method, URL on its base, fixed headers), then hand it to the real fetcher.
struct V1Host<'a> {
    sim: &'a SimHost,
    router: &'a Router,
    registry: &'a Registry,
    op: Operation,
}

impl Host for V1Host<'_> {
    type Body = Vec<u8>;
    fn now(&self) -> Instant {
        self.sim.now()
    }
    fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        self.sim.with_state(f)
    }
    fn fetch(
        &self,
        attempt: &Attempt,
    ) -> impl Future<Output = Result<UpstreamResponse<Vec<u8>>, FetchError>> {
        let mut a = attempt.clone();
        let p = &self.router.config.providers[a.provider];
        let plugin = self.registry.get(&p.kind).expect("a plugin for the kind");
        let req = plugin.map(&self.op).expect("mapped");
        a.method = req.method;
        a.url = req.url(&p.base_url);
        a.headers.extend(plugin.default_headers());
        a.headers.extend(req.headers);
        async move { self.sim.fetch(&a).await }
    }
    fn sleep_until(&self, t: Instant) -> impl Future<Output = ()> {
        self.sim.sleep_until(t)
    }
    fn cache_get(&self, key: &str) -> impl Future<Output = Option<Vec<u8>>> {
        self.sim.cache_get(key)
    }
    fn cache_put(&self, key: &str, value: Vec<u8>, ttl: Duration) -> impl Future<Output = ()> {
        self.sim.cache_put(key, value, ttl)
    }
    fn read_body(
        &self,
        body: Vec<u8>,
        cap: usize,
    ) -> impl Future<Output = Result<Vec<u8>, Vec<u8>>> {
        self.sim.read_body(body, cap)
    }
}

fn call(
    sim: &SimHost,
    router: &Router,
    registry: &Registry,
    method: Method,
    target: &str,
    body: &[u8],
) -> (Reply<Vec<u8>>, Operation) {
    let (path, query) = target
        .split_once('?')
        .map_or((target, None), |(p, q)| (p, Some(q)));
    let (op, _sel) = parse_v1(method, path, query, body).unwrap();
    call_op(sim, router, registry, method, target, op)
}

fn call_op(
    sim: &SimHost,
    router: &Router,
    registry: &Registry,
    method: Method,
    target: &str,
    op: Operation,
) -> (Reply<Vec<u8>>, Operation) {
    let headers: Vec<(String, String)> = Vec::new();
    let req = Request {
        method,
        host: Some("edge.test"),
        target,
        headers: &headers,
        client_ip: Some("203.0.113.9"),
        https: true,
        locality: Locality::default(),
        id: "req-1",
    };
    let host = V1Host {
        sim,
        router,
        registry,
        op: op.clone(),
    };
    (block_on(driver::handle(&host, router, &req, 1 << 20)), op)
}

fn body(r: &Reply<Vec<u8>>) -> Vec<u8> {
    match &r.body {
        ReplyBody::Bytes(b) | ReplyBody::Stream(b) => b.clone(),
    }
}

/// Normalizes a reply the way the host answers `/v1`: by the provider that answered.
fn normalized(router: &Router, registry: &Registry, r: &Reply<Vec<u8>>, op: &Operation) -> Value {
    let id = r.log.providers.last().unwrap();
    let p = &router.config.providers[router.config.provider_index(id).unwrap()];
    let plugin = registry.get(&p.kind).unwrap();
    let n = plugin
        .normalize(op, r.status, &r.headers, &body(r))
        .unwrap_or_else(|e| panic!("{e}"));
    envelope(id, &p.kind, &n)
}

fn sim(router: &Router) -> SimHost {
    SimHost::new(State::new(&router.config, 42), Instant::from_secs(T0), 7)
}

fn ok_with(body: &[u8]) -> Behaviour {
    Behaviour::status(200)
        .with_header("content-type", "application/json")
        .with_body(body)
}

#[test]
fn get_repo_fails_over_from_github_to_the_gitea_mirror_with_the_same_shape() {
    let registry = Registry::new();
    let r = router(&registry);
    let h = sim(&r);
    h.script("gh", [Behaviour::status(503)]);
    h.upstream("mirror", ok_with(&fixture("gitea", "get_repo")));
    let (rep, op) = call(
        &h,
        &r,
        &registry,
        Method::Get,
        "/v1/git/repos/octocat/Hello-World",
        b"",
    );
    assert_eq!(rep.status, 200);
    assert_eq!(rep.log.providers, ["gh", "mirror"]);
    let urls: Vec<String> = h.requests().iter().map(|a| a.url.clone()).collect();
    assert_eq!(
        urls,
        [
            "https://api.github.com/repos/octocat/Hello-World",
            "https://gitea.example.com/api/v1/repos/octocat/Hello-World"
        ]
    );
    assert!(h.requests()[0]
        .headers
        .iter()
        .any(|(n, v)| n == "x-github-api-version" && v == "2022-11-28"));
    let via_mirror = normalized(&r, &registry, &rep, &op);

    // the same call when GitHub is healthy
    let h2 = sim(&r);
    h2.upstream("gh", ok_with(&fixture("github", "get_repo")));
    let (rep2, _) = call(
        &h2,
        &r,
        &registry,
        Method::Get,
        "/v1/git/repos/octocat/Hello-World",
        b"",
    );
    let via_github = normalized(&r, &registry, &rep2, &op);
    assert_eq!(via_github["provider"], "gh");
    assert_eq!(via_mirror["provider"], "mirror");
    let keys = |v: &Value| {
        v["data"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        keys(&via_mirror),
        keys(&via_github),
        "same normalized shape"
    );
    assert_eq!(
        via_mirror["data"]["full_name"],
        via_github["data"]["full_name"]
    );
}

#[test]
fn writes_go_to_the_primary_only() {
    let registry = Registry::new();
    let r = router(&registry);
    let h = sim(&r);
    h.script("gh", [Behaviour::status(503)]);
    let (rep, _) = call(
        &h,
        &r,
        &registry,
        Method::Post,
        "/v1/git/repos/octocat/Hello-World/issues",
        br#"{"title": "t"}"#,
    );
    assert_eq!(
        rep.status, 503,
        "the primary's answer, not a retry elsewhere"
    );
    assert_eq!(h.hits("gh"), 1);
    assert_eq!(h.hits("mirror"), 0);
    assert_eq!(h.requests()[0].method, Method::Post);
}

#[test]
fn github_rate_limit_headers_cool_it_down_before_any_429() {
    let registry = Registry::new();
    let r = router(&registry);
    let h = sim(&r);
    let reset = (T0 + 60).to_string();
    h.script(
        "gh",
        [ok_with(&fixture("github", "get_repo"))
            .with_header("x-ratelimit-remaining", "0")
            .with_header("x-ratelimit-reset", &reset)],
    );
    h.upstream("mirror", ok_with(&fixture("gitea", "get_repo")));
    let (first, _) = call(
        &h,
        &r,
        &registry,
        Method::Get,
        "/v1/git/repos/octocat/Hello-World",
        b"",
    );
    assert_eq!(first.status, 200);
    assert_eq!(first.log.providers, ["gh"]);
    let cool = h.state().providers[0].cool_until;
    assert_eq!(
        cool,
        Instant::from_secs(T0 + 60),
        "cooling until GitHub's reset"
    );
    // the next reads skip GitHub without ever seeing its 429
    for _ in 0..3 {
        let (rep, _) = call(
            &h,
            &r,
            &registry,
            Method::Get,
            "/v1/git/repos/octocat/Hello-World",
            b"",
        );
        assert_eq!(rep.status, 200);
        assert_eq!(rep.log.providers, ["mirror"]);
    }
    assert_eq!(h.hits("gh"), 1);
    assert!(h
        .requests()
        .iter()
        .all(|a| a.provider_id != "gh" || a.id == 1));
    // after the reset GitHub is used again
    h.advance(Duration::from_secs(61));
    h.upstream("gh", ok_with(&fixture("github", "get_repo")));
    let (rep, _) = call(
        &h,
        &r,
        &registry,
        Method::Get,
        "/v1/git/repos/octocat/Hello-World",
        b"",
    );
    assert_eq!(rep.log.providers, ["gh"]);
}

#[test]
fn a_declarative_provider_loaded_from_kv_serves_without_a_restart() {
    let mut registry = Registry::new();
    let r = router(&registry);
    let h = sim(&r);
    assert!(registry.get("acme-git").is_none(), "not declared yet");
    // later, an operator writes the declaration to KV; the host reloads it in place
    let decl = r#"{"providers": [{"kind": "acme-git", "base_url": "https://git.acme.example/api",
        "auth": {"scheme": "token"},
        "operations": {"git.get_repo": {"method": "GET", "path": "/v2/projects/{owner}/{repo}",
            "response": {"id": "/uid", "name": "/slug", "full_name": "/path", "owner": "/group"}}}}]}"#;
    registry.load_kv(decl.as_bytes()).unwrap();
    h.upstream(
        "acme",
        ok_with(br#"{"uid": 9, "slug": "svc", "path": "team/svc", "group": "team"}"#),
    );
    // this config mounts the acme route at /v1/acme/…; the operation is git.get_repo
    let (op, _) = parse_v1(Method::Get, "/v1/git/repos/team/svc", None, b"").unwrap();
    let (rep, op) = call_op(
        &h,
        &r,
        &registry,
        Method::Get,
        "/v1/acme/repos/team/svc",
        op,
    );
    assert_eq!(rep.status, 200);
    assert_eq!(
        h.requests()[0].url,
        "https://git.acme.example/api/v2/projects/team/svc"
    );
    let v = normalized(&r, &registry, &rep, &op);
    assert_eq!(v["data"]["full_name"], "team/svc");
    assert_eq!(v["data"]["id"], "9");
    assert_eq!(v["provider"], "acme");
}
