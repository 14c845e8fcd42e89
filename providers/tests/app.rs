//! The shared application (`mosaic_providers::app`) on a simulated host: core's `SimHost`
//! (virtual clock, scripted upstreams) behind an `AppHost` with an in-memory KV and a body
//! reader that counts its calls. Every path a host would serve goes through `app::handle`,
//! exactly as the three hosts call it; the end-to-end suites run the same on the real runtimes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::time::Duration;

use mosaic_core::driver::{self, ReplyBody, UpstreamResponse};
use mosaic_core::engine::{Attempt, FetchError, State};
use mosaic_core::sim::{block_on, Behaviour, SimHost};
use mosaic_core::{Instant, Router};
use mosaic_providers::app::{
    self, AppHost, Handled, Inbound, Job, Platform, ReadError, Reloaded, Serving,
};
use mosaic_providers::declarative::Registry;
use mosaic_providers::hooks::{self, Delivery, HookHost, KvError, PostError};
use serde_json::Value;

const T0: u64 = 1_700_000_000;
const ADMIN: &str = "admin-token-for-tests";

struct AppSim {
    sim: SimHost,
    kv: RefCell<BTreeMap<String, Vec<u8>>>,
    registry: Registry,
    installed: RefCell<Option<Registry>>,
    reads: Cell<u32>,
    sent_bodies: RefCell<Vec<Vec<u8>>>,
    looked_up: RefCell<Option<String>>,
}

impl AppSim {
    fn new(router: &Router) -> AppSim {
        AppSim {
            sim: SimHost::new(
                State::new(&router.config, 7),
                Instant::from_micros(T0 * 1_000_000),
                7,
            ),
            kv: RefCell::new(BTreeMap::new()),
            registry: Registry::new(),
            installed: RefCell::new(None),
            reads: Cell::new(0),
            sent_bodies: RefCell::new(Vec::new()),
            looked_up: RefCell::new(None),
        }
    }
}

impl HookHost for AppSim {
    fn now(&self) -> Instant {
        driver::Host::now(&self.sim)
    }
    async fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self.kv.borrow().get(key).cloned())
    }
    async fn kv_put(
        &self,
        key: &str,
        value: Vec<u8>,
        _ttl: Option<Duration>,
    ) -> Result<(), KvError> {
        self.kv.borrow_mut().insert(key.to_string(), value);
        Ok(())
    }
    async fn kv_delete(&self, key: &str) -> Result<(), KvError> {
        self.kv.borrow_mut().remove(key);
        Ok(())
    }
    async fn kv_list(&self, prefix: &str) -> Result<Vec<String>, KvError> {
        Ok(self
            .kv
            .borrow()
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect())
    }
    async fn post(&self, _post: &hooks::Post<'_>) -> Result<u16, PostError> {
        Ok(200)
    }
    async fn sleep_until(&self, t: Instant) {
        driver::Host::sleep_until(&self.sim, t).await;
    }
}

impl AppHost for AppSim {
    type In = Vec<u8>;
    type Body = Vec<u8>;

    async fn read_in(&self, body: Vec<u8>, cap: u64) -> Result<Vec<u8>, ReadError> {
        self.reads.set(self.reads.get() + 1);
        if body.len() as u64 > cap {
            Err(ReadError::TooLarge)
        } else {
            Ok(body)
        }
    }
    async fn send(
        &self,
        attempt: &Attempt,
        body: &[u8],
    ) -> Result<UpstreamResponse<Vec<u8>>, FetchError> {
        self.sent_bodies.borrow_mut().push(body.to_vec());
        driver::Host::fetch(&self.sim, attempt).await
    }
    fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        driver::Host::with_state(&self.sim, f)
    }
    async fn cache_get(&self, key: &str) -> Option<Vec<u8>> {
        *self.looked_up.borrow_mut() = Some(key.to_string());
        driver::Host::cache_get(&self.sim, key).await
    }
    async fn cache_put(&self, key: &str, value: Vec<u8>, ttl: Duration) {
        driver::Host::cache_put(&self.sim, key, value, ttl).await;
    }
    async fn read_body(&self, body: Vec<u8>, cap: usize) -> Result<Vec<u8>, Vec<u8>> {
        driver::Host::read_body(&self.sim, body, cap).await
    }
    fn platform(&self) -> Platform {
        let mut extra = serde_json::Map::new();
        extra.insert("config".into(), "test".into());
        Platform {
            store: "sim-kv",
            ready: true,
            extra,
            metrics: String::from("sim_extra 1\n"),
            ..Platform::default()
        }
    }
    async fn reload(&self) -> Result<Reloaded, Vec<String>> {
        Err(vec![String::from(
            "routes[0].providers[0]: unknown provider `ghost`",
        )])
    }
    fn registry(&self) -> &Registry {
        &self.registry
    }
    async fn install_registry(&self, registry: Registry) {
        *self.installed.borrow_mut() = Some(registry);
    }
    async fn claim_refresh(&self, _key: &str) -> bool {
        true
    }
    async fn release_refresh(&self, _key: &str) {}
    fn looked_up(&self) -> Option<String> {
        self.looked_up.borrow().clone()
    }
}

fn router(extra: &str) -> Router {
    let text = format!(
        "[server]\nadmin_token = \"env:ADMIN\"\nmax_body_bytes = 64\n\n\
         [[providers]]\nid = \"gh\"\nkind = \"github\"\nbase_url = \"https://api.github.com\"\n\
         [[providers]]\nid = \"mirror\"\nkind = \"gitea\"\nbase_url = \"https://gitea.example.com/api/v1\"\n\
         [[providers]]\nid = \"plain\"\nbase_url = \"https://plain.example\"\n\n\
         [v1.git]\nproviders = [\"gh\", \"mirror\"]\nretry = {{ attempts = 3, backoff_base_ms = 10, backoff_max_ms = 20 }}\n\n\
         [[routes]]\nname = \"all\"\nmatch = {{ path = \"/{{*rest}}\" }}\nproviders = [\"plain\"]\n\
         {extra}"
    );
    let raw: mosaic_core::RawConfig = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    let config = raw.validate().unwrap_or_else(|e| panic!("{e}"));
    app::build_router(config, &Registry::new(), |r| {
        (r.to_string() == "env:ADMIN").then(|| ADMIN.to_string())
    })
}

fn request<'a>(
    method: &'a str,
    target: &'a str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Inbound<'a, Vec<u8>> {
    Inbound {
        method,
        target,
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        body: body.to_vec(),
        framing: None,
        client_ip: Some("192.0.2.1"),
        https: false,
        locality: Default::default(),
        id: "req-1",
    }
}

fn run(host: &AppSim, router: &Router, req: Inbound<'_, Vec<u8>>) -> Handled<Vec<u8>> {
    block_on(app::handle(
        host,
        Serving {
            router,
            generation: 3,
        },
        req,
    ))
}

fn body(h: &Handled<Vec<u8>>) -> String {
    match &h.reply.body {
        ReplyBody::Bytes(b) | ReplyBody::Stream(b) => String::from_utf8_lossy(b).into_owned(),
    }
}

fn json(h: &Handled<Vec<u8>>) -> Value {
    serde_json::from_str(&body(h)).unwrap_or_else(|e| panic!("{e}: {}", body(h)))
}

fn header<'a>(h: &'a Handled<Vec<u8>>, name: &str) -> Option<&'a str> {
    h.reply
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

const BEARER: &str = "Bearer admin-token-for-tests";

#[test]
fn health_is_open_and_names_generation_store_and_platform_extras() {
    let r = router("");
    let host = AppSim::new(&r);
    let h = run(&host, &r, request("GET", "/_mosaic/health", &[], b""));
    assert_eq!(h.reply.status, 200);
    let v = json(&h);
    assert_eq!(v["generation"], 3);
    assert_eq!(v["store"], "sim-kv");
    assert_eq!(v["config"], "test");
    assert_eq!(h.reply.log.route.as_deref(), Some("_mosaic"));
}

#[test]
fn without_a_config_health_still_answers_and_other_paths_name_every_error() {
    let errors = vec![String::from(
        "server.listenn: unknown field (line 2, column 1)",
    )];
    let h: mosaic_core::driver::Reply<Vec<u8>> =
        app::unconfigured("/_mosaic/health", "kv", &errors, "id");
    assert_eq!(h.status, 503);
    let other: mosaic_core::driver::Reply<Vec<u8>> = app::unconfigured("/x", "kv", &errors, "id");
    assert_eq!(other.status, 500);
    let ReplyBody::Bytes(b) = other.body else {
        panic!()
    };
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(v["errors"][0], errors[0].as_str(), "{v}");
    assert_eq!(v["status"], 500);
}

#[test]
fn admin_needs_the_token_and_unknown_paths_list_the_endpoints() {
    let r = router("");
    let host = AppSim::new(&r);
    let h = run(&host, &r, request("GET", "/_mosaic/state", &[], b""));
    assert_eq!(h.reply.status, 401);
    let h = run(
        &host,
        &r,
        request("GET", "/_mosaic/nope", &[("authorization", BEARER)], b""),
    );
    assert_eq!(h.reply.status, 404);
    assert!(body(&h).contains("GET|PUT providers"), "{}", body(&h));
    let h = run(
        &host,
        &r,
        request("GET", "/_mosaic/state", &[("authorization", BEARER)], b""),
    );
    assert_eq!(h.reply.status, 200);
    assert_eq!(json(&h)["generation"], 3);
    let h = run(
        &host,
        &r,
        request("GET", "/_mosaic/metrics", &[("authorization", BEARER)], b""),
    );
    assert!(body(&h).contains("mosaic_cache_entries") && body(&h).ends_with("sim_extra 1\n"));
}

#[test]
fn a_refused_reload_is_a_400_problem_listing_each_key_path() {
    let r = router("");
    let host = AppSim::new(&r);
    let h = run(
        &host,
        &r,
        request("POST", "/_mosaic/reload", &[("authorization", BEARER)], b""),
    );
    assert_eq!(h.reply.status, 400);
    assert_eq!(header(&h, "content-type"), Some("application/problem+json"));
    let v = json(&h);
    assert_eq!(
        v["status"], 400,
        "the problem's status is the answer's: {v}"
    );
    assert_eq!(
        v["errors"][0],
        "routes[0].providers[0]: unknown provider `ghost`"
    );
}

#[test]
fn declarations_are_validated_stored_and_installed() {
    let r = router("");
    let host = AppSim::new(&r);
    let auth = [("authorization", BEARER)];
    let h = run(
        &host,
        &r,
        request("PUT", "/_mosaic/providers", &auth, br#"[{"kind": 5}]"#),
    );
    assert_eq!(h.reply.status, 400, "{}", body(&h));
    assert!(host.kv.borrow().is_empty(), "a refused set is not stored");
    assert!(host.installed.borrow().is_none());
    let decl = br#"{"providers": [{"kind": "acme-git", "base_url": "https://git.acme.example/api",
        "auth": {"scheme": "token"},
        "operations": {"git.get_repo": {"method": "GET", "path": "/v2/projects/{owner}/{repo}",
            "response": {"id": "/uid", "name": "/slug", "full_name": "/path", "owner": "/group"}}}}]}"#;
    let h = run(&host, &r, request("PUT", "/_mosaic/providers", &auth, decl));
    assert_eq!(h.reply.status, 200, "{}", body(&h));
    assert_eq!(json(&h)["loaded"], serde_json::json!(["acme-git"]));
    assert_eq!(
        host.kv.borrow().get(app::PROVIDERS_KEY).map(Vec::as_slice),
        Some(&decl[..])
    );
    let installed = host.installed.borrow();
    assert!(installed
        .as_ref()
        .is_some_and(|r| r.get("acme-git").is_some()));
    let h = run(&host, &r, request("GET", "/_mosaic/providers", &auth, b""));
    assert!(json(&h)["builtin"]
        .as_array()
        .is_some_and(|a| a.len() >= 13));
}

#[test]
fn an_unknown_hook_is_404_without_reading_its_body_and_an_oversized_one_is_413_and_closes() {
    let r = router(
        "\n[[webhooks]]\nname = \"gh\"\nscheme = \"github\"\nsecrets = [\"env:ADMIN\"]\nmax_body_bytes = 10\n",
    );
    let host = AppSim::new(&r);
    let h = run(&host, &r, request("POST", "/hooks/unknown", &[], b"{}"));
    assert_eq!(h.reply.status, 404);
    assert_eq!(
        host.reads.get(),
        0,
        "the body of an unknown endpoint is not read"
    );
    let h = run(
        &host,
        &r,
        request("POST", "/hooks/gh", &[("content-length", "100")], b""),
    );
    assert_eq!(h.reply.status, 413);
    assert!(h.close);
    assert_eq!(
        host.reads.get(),
        0,
        "a declared length over the limit is refused unread"
    );
    let h = run(&host, &r, request("POST", "/hooks/gh", &[], &[b'x'; 11]));
    assert_eq!((h.reply.status, h.close), (413, true));
    let h = run(&host, &r, request("POST", "/hooks/gh", &[], b"{}"));
    assert_eq!(h.reply.status, 401, "{}", body(&h));
    assert_eq!(h.reply.log.route.as_deref(), Some("hooks/gh"));
    assert_eq!(h.lines.len(), 1, "one receipt line");
    assert_eq!(h.lines[0]["target"], "mosaic::hooks");
}

#[test]
fn proxied_bodies_are_capped_and_sent_with_every_attempt() {
    let r = router("");
    let host = AppSim::new(&r);
    host.sim.upstream("plain", Behaviour::ok());
    let h = run(&host, &r, request("POST", "/x", &[], &[b'a'; 65]));
    assert_eq!((h.reply.status, h.close), (413, true));
    assert!(host.sent_bodies.borrow().is_empty());
    let h = run(
        &host,
        &r,
        request("POST", "/x", &[("idempotency-key", "k")], b"payload"),
    );
    assert_eq!(h.reply.status, 200);
    assert_eq!(host.sent_bodies.borrow().as_slice(), &[b"payload".to_vec()]);
    assert!(h.headers.is_some(), "the header list comes back for reuse");
}

#[test]
fn malformed_heads_and_methods_are_refused_by_the_application() {
    let r = router("");
    let host = AppSim::new(&r);
    let h = run(
        &host,
        &r,
        request(
            "GET",
            "/x",
            &[("content-length", "1"), ("transfer-encoding", "chunked")],
            b"",
        ),
    );
    assert_eq!((h.reply.status, h.close), (400, true));
    let h = run(&host, &r, request("BREW", "/x", &[], b""));
    assert_eq!(h.reply.status, 400);
    assert!(body(&h).contains("BREW"));
}

#[test]
fn openapi_is_served_and_v1_reads_fail_over_with_the_pin_dropped() {
    let r = router("");
    let host = AppSim::new(&r);
    let h = run(&host, &r, request("GET", "/v1/openapi.json", &[], b""));
    assert_eq!(h.reply.status, 200);
    assert!(json(&h)["openapi"]
        .as_str()
        .is_some_and(|v| v.starts_with('3')));
    let repo = std::fs::read(format!(
        "{}/../tests/fixtures/providers/gitea/get_repo.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    host.sim.upstream("gh", Behaviour::status(503));
    host.sim
        .upstream("mirror", Behaviour::ok().with_body(&repo));
    let h = run(
        &host,
        &r,
        request(
            "GET",
            "/v1/git/repos/o/r",
            &[("x-mosaic-v1-pin", "gh")],
            b"",
        ),
    );
    assert_eq!(h.reply.status, 200, "{}", body(&h));
    assert_eq!(
        h.reply.log.route.as_deref(),
        Some("v1.git"),
        "{:?}",
        h.reply.log
    );
    assert_eq!(
        h.reply.log.providers.last().map(String::as_str),
        Some("mirror")
    );
    for a in host.sim.requests() {
        assert!(
            !a.headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("x-mosaic-v1-pin")),
            "the pin never reaches a provider: {:?}",
            a.headers
        );
    }
    assert!(host.sim.requests().iter().any(|a| a
        .url
        .starts_with("https://gitea.example.com/api/v1/repos/o/r")));
}

#[test]
fn a_replayed_dead_letter_is_pending_and_runs_as_a_job() {
    let r = router(
        "\n[[webhooks]]\nname = \"gh\"\nscheme = \"github\"\nsecrets = [\"env:ADMIN\"]\n[[webhooks.destinations]]\nurl = \"https://dest.example/in\"\n",
    );
    let host = AppSim::new(&r);
    let auth = [("authorization", BEARER)];
    let h = run(
        &host,
        &r,
        request("POST", "/_mosaic/hooks/dead/none/replay", &auth, b""),
    );
    assert_eq!(h.reply.status, 404, "{}", body(&h));
    let h = run(&host, &r, request("GET", "/_mosaic/hooks/dead", &auth, b""));
    assert_eq!(json(&h)["dead_letters"], serde_json::json!([]));
    // a dead letter, as a delivery that gave up leaves it
    let d = Delivery::new(
        "gh",
        "evt/1",
        0,
        "https://dest.example/in",
        3,
        Instant::from_micros(T0 * 1_000_000),
        br#"{"id":"evt/1"}"#.to_vec(),
    );
    host.kv.borrow_mut().insert(hooks::dead_key(&d), d.encode());
    let h = run(
        &host,
        &r,
        request("GET", "/_mosaic/hooks/dead?endpoint=gh", &auth, b""),
    );
    let listed = json(&h);
    assert_eq!(listed["dead_letters"][0]["id"], "gh:evt/1:0", "{listed}");
    assert!(
        !body(&h).contains("token=t"),
        "URLs are listed without their query"
    );
    let h = run(
        &host,
        &r,
        request(
            "POST",
            "/_mosaic/hooks/dead/gh%3Aevt%2F1%3A0/replay",
            &auth,
            b"",
        ),
    );
    assert_eq!(h.reply.status, 202, "{}", body(&h));
    assert_eq!(json(&h)["status"], "pending");
    assert!(
        matches!(h.after.as_slice(), [Job::Deliver { delivery, .. }] if delivery.id() == "gh:evt/1:0")
    );
    assert!(
        host.kv.borrow().contains_key(&hooks::pending_key(&d)),
        "back in the outbox"
    );
    assert!(!host.kv.borrow().contains_key(&hooks::dead_key(&d)));
    // the job delivers it: the outbox record goes
    let Some(job) = h.after.into_iter().next() else {
        unreachable!()
    };
    let line = block_on(app::run_job(&host, &r, job, app::Window::Unbounded, 1));
    assert_eq!(line["outcome"], "delivered", "{line}");
    assert!(!host.kv.borrow().contains_key(&hooks::pending_key(&d)));
    let h = run(
        &host,
        &r,
        request(
            "POST",
            "/_mosaic/hooks/dead/gh%3Aevt%2F1%3A0/replay",
            &auth,
            b"",
        ),
    );
    assert_eq!(h.reply.status, 404, "a letter replays once");
}
