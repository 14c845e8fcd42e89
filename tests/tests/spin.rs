//! The end-to-end suite against the Spin host: the built `edge/spin` component served for real
//! by `scripts/spin-serve` (`wasmtime serve` + the test-only key-value/variables fixture), one
//! fresh instance per request as on Spin, against mock upstreams on 127.0.0.1.
//!
//! Run it with `scripts/test-spin` (builds the component, sets `MOSAIC_SPIN_COMPONENT`). Without
//! that variable every test here prints a notice and passes without running; with it, a missing
//! component or toolchain fails the tests.
//!
//! Scenarios of the local suite not run here, and why:
//! - `concurrent_misses_collapse`: collapsing concurrent misses needs memory shared by the
//!   requests; Spin gives each request its own instance and its key-value store has no lock or
//!   atomic operation, so N concurrent misses make up to N upstream requests.
//! - `headers_and_credentials`: it expects `X-Forwarded-For: 127.0.0.1`, which comes from
//!   Spin's `spin-client-addr` header; `wasmtime serve` does not send it. The rest of it is
//!   checked by [`headers_and_credentials_without_client_address`].
//! - Redis sharing, SIGHUP/SIGTERM and the redb file store are features of the local server
//!   (Spin shares state through its key-value store, checked by
//!   [`state_persists_across_requests_and_restarts`]).

use mosaic_tests::host::Running;
use mosaic_tests::mock::{Behaviour, Mock};
use mosaic_tests::scenarios::{self, provider, server, Client, UPSTREAM_TOKEN};
use mosaic_tests::spin::SpinComponent;

/// The component, or `None` (skip) outside scripts/test-spin.
fn spin() -> Option<SpinComponent> {
    SpinComponent::from_env()
}

macro_rules! scenario {
    ($name:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let Some(host) = spin() else { return };
            scenarios::$name(&host).await;
        }
    };
}

scenario!(failover_on_connection_refused);
scenario!(failover_on_5xx);
scenario!(failover_on_timeout);
scenario!(breaker_opens_probes_and_recovers);
scenario!(retry_after_is_honoured);
scenario!(cache_hit);
scenario!(stale_while_revalidate);
scenario!(stale_if_error);
scenario!(post_retry_safety);
scenario!(limits_and_admin);
scenario!(reload_good_and_bad);

/// Breaker, cooldown and failure counts written by one request are what the next request
/// (a fresh instance) and a restarted server see.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_persists_across_requests_and_restarts() {
    let Some(host) = spin() else { return };
    let bad = Mock::start("bad", Behaviour::status(500)).await;
    let limited = Mock::start(
        "limited",
        Behaviour::status(429).header("retry-after", "600"),
    )
    .await;
    let ok = Mock::start("ok", Behaviour::ok()).await;
    let cfg = format!(
        "{}{}{}{}[[routes]]\nname = \"r\"\nmatch = {{ path = \"/r/{{*rest}}\" }}\nproviders = [\"bad\", \"ok\"]\nretry = {{ on_status = [500] }}\nbreaker = {{ min_calls = 2, size = 4, open_ms = 60000, open_max_ms = 60000 }}\n\
         [[routes]]\nname = \"l\"\nmatch = {{ path = \"/l/{{*rest}}\" }}\nproviders = [\"limited\", \"ok\"]\n",
        server(""),
        provider("bad", &bad.url()),
        provider("limited", &limited.url()),
        provider("ok", &ok.url())
    );
    let mut r = host.spawn(&cfg).expect("start");
    let c = Client::new(&r.base_url());
    // request 1 counts one failure, request 2 (another instance) the second: the breaker opens
    for _ in 0..3 {
        assert_eq!(c.get("/r/a").await.from(), "ok");
    }
    assert_eq!(bad.hits(), 2, "failures are counted across requests");
    assert_eq!(c.breaker("r", "bad").await, "open");
    // a 429 with Retry-After cools the provider down for every later request
    assert_eq!(c.get("/l/a").await.from(), "ok");
    assert_eq!(c.get("/l/a").await.from(), "ok");
    assert_eq!(limited.hits(), 1);
    assert!(
        r.kv_get("mosaic:state")
            .is_some_and(|s| s.starts_with(b"MSNP")),
        "the snapshot is in the store"
    );
    r.restart().expect("restart");
    let c = Client::new(&r.base_url());
    assert_eq!(
        c.breaker("r", "bad").await,
        "open",
        "the breaker survives the restart:\n{}",
        r.logs()
    );
    assert_eq!(c.get("/r/a").await.from(), "ok");
    assert_eq!(c.get("/l/a").await.from(), "ok");
    assert_eq!((bad.hits(), limited.hits()), (2, 1));
}

/// Hop-by-hop headers stripped, forwarding and trace headers set, the caller's credentials
/// replaced by the provider's (Spin variable `mosaic_test_upstream`); no secret in the logs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_and_credentials_without_client_address() {
    let Some(host) = spin() else { return };
    let up = Mock::start("up", Behaviour::ok().header("x-upstream", "1")).await;
    let cfg = format!(
        "{}[[providers]]\nid = \"up\"\nbase_url = \"{}/base\"\nallow_private = true\nauth = {{ scheme = \"bearer\", secret = \"secret:MOSAIC_TEST_UPSTREAM\" }}\n\n\
         [[routes]]\nname = \"r\"\nmatch = {{ path = \"/api/{{*rest}}\" }}\nupstream_path = \"/v1/{{*rest}}\"\nproviders = [\"up\"]\n",
        server(""),
        up.url()
    );
    let r = host.spawn(&cfg).expect("start");
    let c = Client::new(&r.base_url());
    let resp = c
        .send(
            "GET",
            "/api/things?x=1",
            &[
                ("authorization", "Bearer caller-secret"),
                ("x-custom", "kept"),
                ("keep-alive", "timeout=5"),
                ("te", "trailers"),
            ],
            Vec::new(),
        )
        .await;
    assert_eq!(resp.status, 200, "{resp:?}\n{}", r.logs());
    assert_eq!(resp.header("x-upstream"), Some("1"));
    assert!(resp
        .header("x-mosaic-request-id")
        .is_some_and(|v| !v.is_empty()));
    let seen = up.seen();
    let s = seen.last().expect("the upstream saw the request");
    assert_eq!(s.target, "/base/v1/things?x=1");
    assert_eq!(
        s.header("authorization"),
        Some(format!("Bearer {UPSTREAM_TOKEN}").as_str())
    );
    assert_eq!(s.header("x-custom"), Some("kept"));
    assert_eq!(s.header("keep-alive"), None);
    assert_eq!(s.header("te"), None);
    assert_eq!(s.header("traceparent").map(str::len), Some(55));
    let logs = r.logs();
    assert!(!logs.contains("caller-secret") && !logs.contains(UPSTREAM_TOKEN));
}

/// An invalid config with no accepted fallback answers 500 problem+json naming every key path;
/// health is no exception.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_config_is_a_problem_naming_key_paths() {
    let Some(host) = spin() else { return };
    let bad = "[server]\nadmin_token = \"secret:MOSAIC_TEST_ADMIN\"\n\n[[providers]]\nid = \"p\"\nbase_url = \"ftp://x\"\n\n[[routes]]\nname = \"r\"\nmatch = { path = \"/x\" }\nproviders = [\"p\", \"ghost\"]\nstrategy = \"fastest\"\n";
    let r = host.spawn(bad).expect("start");
    let c = Client::new(&r.base_url());
    for path in ["/x", "/_mosaic/health"] {
        let resp = c.get(path).await;
        assert_eq!(resp.status, 500, "{resp:?}");
        assert_eq!(
            resp.header("content-type"),
            Some("application/problem+json")
        );
        let v: serde_json::Value = serde_json::from_str(&resp.body).expect("JSON");
        assert_eq!(v["code"], "invalid-config");
        let errors = v["errors"].to_string();
        for key in [
            "providers[0].base_url",
            "routes[0].providers[1]",
            "routes[0].strategy",
        ] {
            assert!(errors.contains(key), "{key} missing from {errors}");
        }
    }
    r.write_config("[server]\nlistenn = 1\n").expect("write");
    let resp = c.get("/x").await;
    assert_eq!(resp.status, 500);
    assert!(
        resp.body.contains("server.listenn: unknown field"),
        "{}",
        resp.body
    );
}

/// The config can come from the Spin variable `config` instead of the key-value store; the
/// variable wins over the KV key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_from_the_spin_variable() {
    let Some(host) = spin() else { return };
    let one = Mock::start("one", Behaviour::ok()).await;
    let two = Mock::start("two", Behaviour::ok()).await;
    let cfg = |p: &str| {
        format!(
            "{}{}{}[[routes]]\nname = \"r\"\nmatch = {{ path = \"/{{*rest}}\" }}\nproviders = [\"{p}\"]\n",
            server(""),
            provider("one", &one.url()),
            provider("two", &two.url())
        )
    };
    let r = host
        .spawn_with(Some(&cfg("one")), &[("config", &cfg("two"))])
        .expect("start");
    let c = Client::new(&r.base_url());
    assert_eq!(c.get("/a").await.from(), "two", "{}", r.logs());
    assert_eq!(c.state().await["config"], "variable");
}
