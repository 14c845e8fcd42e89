//! The end-to-end suite against the Spin host: the built `edge/spin` component served for real
//! by `scripts/spin-serve` (`wasmtime serve` + the test-only key-value/variables fixture), one
//! fresh instance per request as on Spin, against mock upstreams on 127.0.0.1.
//!
//! Run it with `scripts/test-spin` (builds the component, sets `MOSAIC_SPIN_COMPONENT`). Without
//! that variable, the component or the toolchain every test here fails, saying what to run: a
//! missing build never passes silently (`scripts/test` leaves this binary to `scripts/test-spin`).
//!
//! Scenarios of the local suite not run here, and why:
//! - `concurrent_misses_collapse`: collapsing concurrent misses needs memory shared by the
//!   requests; Spin gives each request its own instance (the host's `tier::Collapse` covers one
//!   instance) and its key-value store has no lock or atomic operation, so N concurrent misses
//!   make up to N upstream requests.
//! - `headers_and_credentials`: it expects `X-Forwarded-For: 127.0.0.1`, which comes from
//!   Spin's `spin-client-addr` header; `wasmtime serve` does not send it. The rest of it is
//!   checked by [`headers_and_credentials_without_client_address`].
//! - Redis sharing, SIGHUP/SIGTERM and the redb file store are features of the local server
//!   (Spin shares state through its key-value store, checked by
//!   [`state_persists_across_requests_and_restarts`]).

use std::time::Duration;

use mosaic_core::webhook::Scheme;
use mosaic_tests::fixtures::{FixtureServer, Reply};
use mosaic_tests::hooks::{
    self, admin, cloud_event as ce, github_headers, issue_body as hook_body, now, post_hook,
};
use mosaic_tests::host::Running;
use mosaic_tests::mock::{Behaviour, Mock};
use mosaic_tests::scenarios::{self, eventually, provider, server, Client, Resp, UPSTREAM_TOKEN};
use mosaic_tests::spin::{SpinComponent, SpinRouter};

/// The component (panics outside scripts/test-spin).
fn spin() -> SpinComponent {
    SpinComponent::from_env()
}

macro_rules! scenario {
    ($name:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let host = spin();
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
    let host = spin();
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
    let host = spin();
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
/// health still answers, 503 JSON (live, not ready) with the same errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_config_is_a_problem_naming_key_paths() {
    let host = spin();
    let bad = "[server]\nadmin_token = \"secret:MOSAIC_TEST_ADMIN\"\n\n[[providers]]\nid = \"p\"\nbase_url = \"ftp://x\"\n\n[[routes]]\nname = \"r\"\nmatch = { path = \"/x\" }\nproviders = [\"p\", \"ghost\"]\nstrategy = \"fastest\"\n";
    let r = host.spawn(bad).expect("start");
    let c = Client::new(&r.base_url());
    let keys = [
        "providers[0].base_url",
        "routes[0].providers[1]",
        "routes[0].strategy",
    ];
    let resp = c.get("/x").await;
    assert_eq!(resp.status, 500, "{resp:?}");
    assert_eq!(
        resp.header("content-type"),
        Some("application/problem+json")
    );
    let v: serde_json::Value = serde_json::from_str(&resp.body).expect("JSON");
    assert_eq!(v["code"], "invalid-config");
    let errors = v["errors"].to_string();
    for key in keys {
        assert!(errors.contains(key), "{key} missing from {errors}");
    }
    let health = c.get("/_mosaic/health").await;
    assert_eq!(health.status, 503, "{health:?}");
    assert_eq!(health.header("content-type"), Some("application/json"));
    let v: serde_json::Value = serde_json::from_str(&health.body).expect("JSON");
    assert_eq!(
        (&v["status"], &v["live"], &v["ready"]),
        (&"unconfigured".into(), &true.into(), &false.into()),
        "{v}"
    );
    assert_eq!(v["store"], "spin-kv");
    for key in keys {
        assert!(
            v["errors"].to_string().contains(key),
            "{key} missing from {v}"
        );
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

/// With no configuration at all (no KV key, no variable), `/_mosaic/health` answers 503 JSON
/// saying where to put one; every other path is 500 problem+json.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_answers_without_a_config() {
    let host = spin();
    let r = host.spawn_with(None, &[]).expect("start");
    let c = Client::new(&r.base_url());
    let health = c.get("/_mosaic/health").await;
    assert_eq!(health.status, 503, "{health:?}\n{}", r.logs());
    let v: serde_json::Value = serde_json::from_str(&health.body).expect("health JSON");
    assert_eq!(
        (&v["status"], &v["live"], &v["ready"]),
        (&"unconfigured".into(), &true.into(), &false.into()),
        "{v}"
    );
    let errors = v["errors"].to_string();
    assert!(
        errors.contains("mosaic:config") && errors.contains("`config`"),
        "{errors}"
    );
    let resp = c.get("/x").await;
    assert_eq!(resp.status, 500, "{resp:?}");
    assert!(resp.body.contains("invalid-config"), "{}", resp.body);
}

/// The config source precedence of every host: the key-value key `mosaic:config` when set, else
/// the Spin variable `config`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_from_the_kv_key_then_the_spin_variable() {
    let host = spin();
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
        .spawn_with(None, &[("config", &cfg("two"))])
        .expect("start");
    let c = Client::new(&r.base_url());
    assert_eq!(
        c.get("/a").await.from(),
        "two",
        "the variable serves without a KV key:\n{}",
        r.logs()
    );
    assert_eq!(c.state().await["config"], "variable");
    r.write_config(&cfg("one")).expect("write");
    assert_eq!(
        c.get("/a").await.from(),
        "one",
        "the KV key wins over the variable"
    );
    assert_eq!(c.state().await["config"], "kv");
    r.write_config("  \n").expect("write");
    assert_eq!(
        c.get("/a").await.from(),
        "two",
        "a blank KV key counts as unset"
    );
}

// ---------------------------------------------------------------------------------------------
// Request-head hardening (issue 7): core's `check_head` and the request target.
// ---------------------------------------------------------------------------------------------

/// Writes `raw` on a fresh connection and returns the answer (head and whatever body arrived
/// before the server closed or 3 s passed).
async fn raw_exchange(port: u16, raw: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    s.write_all(raw).await.expect("write");
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let read = async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(3), read).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn status_of(answer: &str) -> &str {
    answer.split(' ').nth(1).unwrap_or("")
}

/// Oversized heads are 431 problem+json from core's `check_head`; an absolute-form target from
/// a client reaches the component as its path and query only (a `wasi:http@0.2` runtime —
/// Spin and `wasmtime serve` alike — takes its authority apart, as it does `Host`'s), so it is
/// served exactly as the origin-form request it is equivalent to, its authority going nowhere;
/// the smuggling shapes the runtime lets through cannot desynchronise the router and its
/// upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_limits_absolute_form_and_smuggling() {
    let host = spin();
    let up = Mock::start("up", Behaviour::ok()).await;
    let cfg = format!(
        "{}{}[[routes]]\nname = \"r\"\nmatch = {{ path = \"/{{*rest}}\" }}\nproviders = [\"up\"]\n",
        server("max_header_bytes = 4096\nmax_headers = 20"),
        provider("up", &up.url())
    );
    let r = host.spawn(&cfg).expect("start");
    let c = Client::new(&r.base_url());

    // header bytes over the limit
    let big = "y".repeat(5000);
    let resp = c.send("GET", "/a", &[("x-big", &big)], Vec::new()).await;
    assert_eq!(resp.status, 431, "{resp:?}");
    assert_eq!(
        resp.header("content-type"),
        Some("application/problem+json")
    );
    assert!(resp.body.contains("headers-too-large"), "{}", resp.body);
    // too many headers
    let names: Vec<String> = (0..30).map(|i| format!("x-h{i}")).collect();
    let many: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
    let resp = c.send("GET", "/a", &many, Vec::new()).await;
    assert_eq!(resp.status, 431, "{resp:?}");
    assert_eq!(up.hits(), 0, "nothing over a limit reaches an upstream");

    // origin-form is served; an absolute-form target is served as its path and query (the
    // runtime keeps its authority apart), never sent to the authority it names
    let ok = raw_exchange(
        r.port,
        b"GET /a HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&ok), "200", "{ok}");
    let raw = b"GET http://evil.example/abs?q=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    let answer = raw_exchange(r.port, raw).await;
    assert_eq!(status_of(&answer), "200", "{answer}\n{}", r.logs());
    assert_eq!(
        up.seen().last().map(|s| s.target.clone()).as_deref(),
        Some("/abs?q=1"),
        "the upstream gets the path and query, the authority went nowhere"
    );
    let raw = b"GET http://127.0.0.1/_mosaic/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    let answer = raw_exchange(r.port, raw).await;
    assert_eq!(status_of(&answer), "200", "{answer}");
    assert!(answer.contains("\"status\""), "the health answer: {answer}");
    assert_eq!(up.hits(), 2, "the two proxied requests reached the upstream");
    // Spin adds its `spin-*` headers: they describe the platform and are not forwarded
    let spin_like = raw_exchange(
        r.port,
        b"GET /spin-like?q=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nspin-full-url: http://127.0.0.1/spin-like?q=1\r\nspin-path-info: /spin-like\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&spin_like), "200", "{spin_like}");
    assert_eq!(
        up.seen().last().map(|s| s.target.clone()).as_deref(),
        Some("/spin-like?q=1")
    );
    assert!(
        up.seen()
            .last()
            .is_some_and(|s| s.header("spin-full-url").is_none()),
        "Spin's own headers are not forwarded"
    );

    // `Transfer-Encoding: gzip, chunked`: the runtime's HTTP server decodes the chunked framing
    // and drops the header before the component sees it (so core's check cannot see it); the
    // upstream gets exactly the decoded body, framed by the runtime's own client
    let answer = raw_exchange(
        r.port,
        b"POST /smuggle HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /second HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&answer), "200", "{answer}");
    let seen = up.seen();
    let s = seen.last().expect("forwarded");
    assert_eq!(s.target, "/smuggle");
    assert_eq!(&s.body[..], b"hello");
    // the runtime's client frames the body itself (chunked, one coding): never the caller's
    assert!(
        s.header("transfer-encoding")
            .is_none_or(|te| te == "chunked"),
        "{:?}",
        s.header("transfer-encoding")
    );
    assert!(
        !seen.iter().any(|s| s.target == "/second"),
        "the bytes after the chunked body were not read as a request"
    );
    // shapes the runtime refuses itself, before the component: a bare `gzip` coding and
    // conflicting lengths are 400
    for raw in [
        &b"POST /a HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: gzip\r\nConnection: close\r\n\r\nxx"[..],
        &b"POST /a HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\nContent-Length: 6\r\nConnection: close\r\n\r\nhello!"[..],
    ] {
        let answer = raw_exchange(r.port, raw).await;
        assert_eq!(status_of(&answer), "400", "{answer}");
    }
    assert_eq!(up.hits(), 4);
}

// ---------------------------------------------------------------------------------------------
// Webhooks (issue 6) under Spin's per-request model.
// ---------------------------------------------------------------------------------------------

/// The endpoint's GitHub secret (Spin variable `mosaic_test_hook_secret`).
const HOOK_SECRET: &str = "gh-hook-secret-3f9a1c";
/// The destination's Standard Webhooks signing secret (`mosaic_test_dest_secret`).
const DEST_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// One GitHub endpoint `gh` forwarding to `dest` (signed, `attempts` attempts).
fn hook_config(dest: &str, attempts: u32) -> String {
    format!(
        "{}[[webhooks]]\nname = \"gh\"\nscheme = \"github\"\nsecrets = [\"env:MOSAIC_TEST_HOOK_SECRET\"]\nmax_body_bytes = 4096\ndestinations = [{{ url = \"{dest}\", allow_private = true, sign_secret = \"env:MOSAIC_TEST_DEST_SECRET\", attempts = {attempts} }}]\n",
        server("")
    )
}

async fn deliver(c: &Client, n: u32, id: &str) -> Resp {
    hooks::deliver(c, HOOK_SECRET, n, id).await
}

fn start_hooks(host: &SpinComponent, cfg: &str) -> SpinRouter {
    host.spawn_with(
        Some(cfg),
        &[
            ("mosaic_test_hook_secret", HOOK_SECRET),
            ("mosaic_test_dest_secret", DEST_SECRET),
        ],
    )
    .unwrap_or_else(|e| panic!("spin did not start: {e}\nconfig:\n{cfg}"))
}

/// A genuine GitHub delivery is answered 200 and forwarded, as a signed CloudEvent, by the
/// one attempt made before answering; a redelivery is a marked duplicate and not forwarded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_genuine_forwarded_inline_and_duplicate_not_again() {
    let host = spin();
    let dest = Mock::start("dest", Behaviour::ok()).await;
    let r = start_hooks(&host, &hook_config(&format!("{}/events", dest.url()), 3));
    let c = Client::new(&r.base_url());
    let resp = deliver(&c, 7, "d-genuine-1").await;
    assert_eq!(resp.status, 200, "{resp:?}\n{}", r.logs());
    let ack: serde_json::Value = serde_json::from_str(&resp.body).expect("ack JSON");
    assert_eq!(ack["status"], "accepted");
    assert_eq!(ack["id"], "d-genuine-1");
    assert_eq!(ack["destinations"], 1);
    assert!(resp.header("x-mosaic-duplicate").is_none());
    // the attempt is made before the answer: it has arrived already
    assert_eq!(
        dest.hits(),
        1,
        "not forwarded before answering:\n{}",
        r.logs()
    );
    let seen = &dest.seen()[0];
    assert_eq!(seen.target, "/events");
    assert_eq!(
        seen.header("content-type"),
        Some("application/cloudevents+json")
    );
    let ev = ce(seen);
    assert_eq!(ev["id"], "d-genuine-1");
    assert_eq!(ev["type"], "com.github.issues.opened");
    assert_eq!(ev["data"]["issue"]["number"], 7);
    assert_eq!(seen.header("webhook-id"), Some("d-genuine-1"));
    let verified = mosaic_core::webhook::verify(
        &Scheme::StandardWebhooks,
        &[DEST_SECRET.as_bytes()],
        &seen.headers,
        &seen.body,
        None,
        now(),
        None,
    );
    assert!(verified.is_ok(), "{verified:?}");
    assert!(
        r.kv_get("hooks:pending:gh:d-genuine-1:0").is_none(),
        "a delivered event leaves no pending record"
    );

    // the same delivery again, and the same body under a fresh id: duplicates
    for id in ["d-genuine-1", "d-genuine-fresh-id"] {
        let again = deliver(&c, 7, id).await;
        assert_eq!(again.status, 200, "{again:?}");
        assert_eq!(
            again.header("x-mosaic-duplicate"),
            Some("true"),
            "{again:?}"
        );
        let ack: serde_json::Value = serde_json::from_str(&again.body).expect("JSON");
        assert_eq!(ack["status"], "duplicate");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(dest.hits(), 1, "a duplicate was forwarded");
    let logs = r.logs();
    assert!(logs.contains("webhook delivery received"), "{logs}");
    assert!(logs.contains("\"outcome\":\"delivered\""), "{logs}");
    assert!(!logs.contains(HOOK_SECRET) && !logs.contains(DEST_SECRET));
}

/// Forged, wrongly signed and unsigned deliveries are 401 problem+json that never show the
/// secret; an unknown endpoint is 404; nothing is forwarded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_forged_is_401_problem_without_the_secret() {
    let host = spin();
    let dest = Mock::start("dest", Behaviour::ok()).await;
    let r = start_hooks(&host, &hook_config(&format!("{}/events", dest.url()), 3));
    let c = Client::new(&r.base_url());
    let b = hook_body(1);
    let resp = post_hook(
        &c,
        "/hooks/gh",
        &github_headers("not-the-secret", &b, "d-forged"),
        b.clone(),
    )
    .await;
    assert_eq!(resp.status, 401, "{resp:?}\n{}", r.logs());
    assert_eq!(
        resp.header("content-type"),
        Some("application/problem+json")
    );
    let p: serde_json::Value = serde_json::from_str(&resp.body).expect("problem JSON");
    assert_eq!(p["status"], 401);
    assert!(
        p["type"]
            .as_str()
            .is_some_and(|t| t.ends_with("webhook-rejected")),
        "{p}"
    );
    assert!(!resp.body.contains(HOOK_SECRET) && !resp.body.contains("not-the-secret"));
    // a genuine signature over another body
    let resp = post_hook(
        &c,
        "/hooks/gh",
        &github_headers(HOOK_SECRET, &b, "d-forged-2"),
        hook_body(2),
    )
    .await;
    assert_eq!(resp.status, 401, "{resp:?}");
    // no signature at all
    let unsigned = [(String::from("x-github-event"), String::from("issues"))];
    let resp = post_hook(&c, "/hooks/gh", &unsigned, b).await;
    assert_eq!(resp.status, 401, "{resp:?}");
    let resp = c.send("POST", "/hooks/nope", &[], hook_body(1)).await;
    assert_eq!(resp.status, 404, "{resp:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(dest.hits(), 0);
    let logs = r.logs();
    assert!(
        !logs.contains(HOOK_SECRET) && !logs.contains("not-the-secret"),
        "{logs}"
    );
}

/// A destination that fails the attempt made before answering gets the event later: the
/// delivery is parked in the KV outbox and a later, unrelated request resumes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_parked_then_resumed_by_a_later_request() {
    let host = spin();
    let dest = Mock::start("dest", Behaviour::ok()).await;
    dest.script([Behaviour::status(503)]);
    let r = start_hooks(&host, &hook_config(&format!("{}/events", dest.url()), 5));
    let c = Client::new(&r.base_url());
    let resp = deliver(&c, 9, "d-parked").await;
    assert_eq!(resp.status, 200, "{resp:?}\n{}", r.logs());
    assert_eq!(dest.hits(), 1, "one attempt before answering");
    assert!(
        r.kv_get("hooks:pending:gh:d-parked:0").is_some(),
        "the failed delivery is parked in the outbox:\n{}",
        r.logs()
    );
    // nothing runs between requests: later requests (any path) make the progress
    let resumed = eventually(Duration::from_secs(15), || async {
        let _ = c.get("/_mosaic/health").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        dest.answered()
            .iter()
            .any(|(s, st)| *st == Some(200) && ce(s)["id"] == "d-parked")
    })
    .await;
    assert!(resumed, "never resumed:\n{}", r.logs());
    let gone = eventually(Duration::from_secs(3), || async {
        r.kv_get("hooks:pending:gh:d-parked:0").is_none()
    })
    .await;
    assert!(gone, "the pending record stays after delivery");
    assert_eq!(dest.hits(), 2, "resumed exactly once");
    assert!(r.logs().contains("resumed from the outbox"), "{}", r.logs());
}

/// A permanent refusal dead-letters at once; the admin API lists the letter and replays it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_dead_letters_listed_and_replayed() {
    let host = spin();
    let dest = Mock::start("dest", Behaviour::ok()).await;
    dest.script([Behaviour::status(404)]);
    let r = start_hooks(&host, &hook_config(&format!("{}/events", dest.url()), 3));
    let c = Client::new(&r.base_url());
    let resp = deliver(&c, 4, "d/dead").await;
    assert_eq!(resp.status, 200, "{resp:?}");
    let list = admin(&c, "GET", "/_mosaic/hooks/dead?endpoint=gh").await;
    assert_eq!(list.status, 200, "{list:?}");
    let v: serde_json::Value = serde_json::from_str(&list.body).expect("JSON");
    let letters = v["dead_letters"].as_array().cloned().unwrap_or_default();
    assert_eq!(letters.len(), 1, "{v}");
    assert_eq!(letters[0]["id"], "gh:d/dead:0");
    assert_eq!(letters[0]["last_error"], "destination answered 404");
    let unauth = c.get("/_mosaic/hooks/dead").await;
    assert_eq!(unauth.status, 401);
    let replay = admin(&c, "POST", "/_mosaic/hooks/dead/gh:d%2Fdead:0/replay").await;
    assert_eq!(replay.status, 202, "{replay:?}\n{}", r.logs());
    let v: serde_json::Value = serde_json::from_str(&replay.body).expect("JSON");
    // the application's answer on every host; Spin runs the delivery before answering
    assert_eq!(v["status"], "pending", "{v}");
    assert_eq!(dest.hits(), 2, "{}", r.logs());
    assert!(
        r.logs().contains("replayed by the operator"),
        "{}",
        r.logs()
    );
    let again = admin(&c, "POST", "/_mosaic/hooks/dead/gh:d%2Fdead:0/replay").await;
    assert_eq!(again.status, 404, "{again:?}");
    let list = admin(&c, "GET", "/_mosaic/hooks/dead").await;
    assert!(list.body.contains("\"dead_letters\":[]"), "{}", list.body);
}

// ---------------------------------------------------------------------------------------------
// The shared application on Spin: `/v1`, plugin rate limits, declarative providers from KV.
// ---------------------------------------------------------------------------------------------

/// A provider of `kind` at `base`, with the test upstream credential.
fn kind_provider(id: &str, kind: &str, base: &str) -> String {
    format!(
        "[[providers]]\nid = \"{id}\"\nkind = \"{kind}\"\nbase_url = \"{base}\"\nallow_private = true\nauth = {{ scheme = \"bearer\", secret = \"secret:MOSAIC_TEST_UPSTREAM\" }}\n\n"
    )
}

/// GitHub `gh` and a Gitea mirror serving `/v1/git`.
fn v1_pair(gh: &str, mirror: &str) -> String {
    format!(
        "{}{}{}[v1.git]\nproviders = [\"gh\", \"mirror\"]\nretry = {{ attempts = 3, backoff_base_ms = 20, backoff_max_ms = 50 }}\n",
        server(""),
        kind_provider("gh", "github", gh),
        kind_provider("mirror", "gitea", mirror),
    )
}

fn json(r: &Resp) -> serde_json::Value {
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("not JSON ({e}): {r:?}"))
}

/// `/v1/openapi.json` is answered by the router itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_openapi_document_is_served() {
    let host = spin();
    let up = FixtureServer::start().await;
    let r = host.spawn(&v1_pair(&up.url(), &up.url())).expect("start");
    let c = Client::new(&r.base_url());
    let resp = c.get("/v1/openapi.json").await;
    assert_eq!(resp.status, 200, "{resp:?}\n{}", r.logs());
    assert!(
        resp.header("content-type")
            .is_some_and(|t| t.starts_with("application/json")),
        "{resp:?}"
    );
    let v = json(&resp);
    assert!(
        v["openapi"].as_str().is_some_and(|s| s.starts_with("3.")),
        "{v}"
    );
    let paths = v["paths"].as_object().expect("paths");
    for p in [
        "/v1/git/repos/{owner}/{repo}",
        "/v1/ci/runs",
        "/v1/kb/pages",
        "/v1/pm/issues",
    ] {
        assert!(paths.contains_key(p), "{p} missing from {:?}", paths.keys());
    }
    assert_eq!(up.seen().len(), 0, "served by the router itself");
}

/// A `/v1` read fails over from GitHub (503) to the Gitea mirror, each attempt rewritten by its
/// provider's plugin, and both answer with the same normalized envelope; a caller's
/// `x-mosaic-v1-pin` is neither obeyed nor forwarded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_get_repo_fails_over_with_the_normalized_envelope() {
    let host = spin();
    let up = FixtureServer::start().await;
    let (repo_gh, repo_gitea) = (
        "/gh/repos/octocat/Hello-World",
        "/gitea/api/v1/repos/octocat/Hello-World",
    );
    up.on("GET", repo_gh, Reply::fixture(200, "github", "get_repo"));
    up.on("GET", repo_gitea, Reply::fixture(200, "gitea", "get_repo"));
    up.once(
        repo_gh,
        [Reply::json(503, &b"{\"message\":\"unavailable\"}"[..])],
    );
    let r = host
        .spawn(&v1_pair(
            &format!("{}/gh", up.url()),
            &format!("{}/gitea/api/v1", up.url()),
        ))
        .expect("start");
    let c = Client::new(&r.base_url());

    let resp = c.get("/v1/git/repos/octocat/Hello-World").await;
    assert_eq!(resp.status, 200, "{resp:?}\n{}", r.logs());
    let via_mirror = json(&resp);
    assert_eq!(via_mirror["provider"], "mirror", "{via_mirror}");
    assert_eq!((up.hits(repo_gh), up.hits(repo_gitea)), (1, 1));
    let gitea = up
        .seen()
        .into_iter()
        .find(|s| s.target.starts_with("/gitea/"))
        .expect("the mirror was asked");
    assert_eq!(
        gitea.header("authorization"),
        Some(format!("token {UPSTREAM_TOKEN}").as_str()),
        "the attempt was rewritten with Gitea's plugin"
    );

    let resp = c
        .send(
            "GET",
            "/v1/git/repos/octocat/Hello-World",
            &[("x-mosaic-v1-pin", "mirror")],
            Vec::new(),
        )
        .await;
    assert_eq!(resp.status, 200, "{resp:?}");
    let via_github = json(&resp);
    assert_eq!(
        via_github["provider"], "gh",
        "the caller's pin is not obeyed: {via_github}"
    );
    let keys = |v: &serde_json::Value| {
        let mut k: Vec<String> = v["data"]
            .as_object()
            .expect("an object")
            .keys()
            .cloned()
            .collect();
        k.sort();
        k
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
    assert_eq!(via_github["data"]["full_name"], "octocat/Hello-World");
    let seen = up.seen();
    assert_eq!(seen.len(), 3);
    assert!(
        seen.iter().all(|s| s.header("x-mosaic-v1-pin").is_none()),
        "a pin header reached an upstream: {seen:?}"
    );
}

/// The plugins' rate-limit headers are installed on Spin too: a GitHub answer with
/// `x-ratelimit-remaining: 0` cools GitHub down until its reset (kept in the state snapshot),
/// so the next requests, each a fresh instance, go to the other provider before any 429.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_rate_limit_headers_cool_a_provider_down() {
    let host = spin();
    let reset = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + 60;
    let gh = Mock::start(
        "gh",
        Behaviour::ok()
            .header("x-ratelimit-limit", "5000")
            .header("x-ratelimit-remaining", "0")
            .header("x-ratelimit-reset", &reset.to_string()),
    )
    .await;
    let other = Mock::start("other", Behaviour::ok()).await;
    let cfg = format!(
        "{}[[providers]]\nid = \"gh\"\nkind = \"github\"\nbase_url = \"{}\"\nallow_private = true\n\n{}[[routes]]\nname = \"r\"\nmatch = {{ path = \"/r/{{*rest}}\" }}\nproviders = [\"gh\", \"other\"]\n",
        server(""),
        gh.url(),
        provider("other", &other.url()),
    );
    let r = host.spawn(&cfg).expect("start");
    let c = Client::new(&r.base_url());
    assert_eq!(
        c.get("/r/a").await.from(),
        "gh",
        "the last request of the budget is answered"
    );
    for _ in 0..3 {
        assert_eq!(
            c.get("/r/a").await.from(),
            "other",
            "GitHub cools down until its reset:\n{}",
            r.logs()
        );
    }
    assert_eq!(
        gh.hits(),
        1,
        "GitHub is not called again, so it never answers 429"
    );
    let state = c.state().await;
    let cooling = state["providers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["id"] == "gh")
        .and_then(|p| p["cooling_down_ms"].as_u64())
        .unwrap_or(0);
    assert!(
        (50_000..=61_000).contains(&cooling),
        "GitHub cools down until its reset: {cooling} ms"
    );
}

const ACME: &str = r#"{"providers": [{"kind": "acme-git",
    "base_url": "https://git.acme.example/api",
    "auth": {"scheme": "header", "header": "X-Acme-Token"},
    "operations": {"git.get_repo": {"method": "GET", "path": "/v2/projects/{owner}/{repo}",
        "response": {"id": "/uid", "name": "/slug", "full_name": "/path", "owner": "/group"}}}}]}"#;

/// A declarative provider stored with `PUT /_mosaic/providers` serves `/v1` from the next
/// request on (each request loads the stored set from KV); a refused set changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declarative_provider_stored_in_kv_serves_v1() {
    let host = spin();
    let up = FixtureServer::start().await;
    up.on(
        "GET",
        "/acme/v2/projects/team/svc",
        Reply::json(
            200,
            &br#"{"uid": 9, "slug": "svc", "path": "team/svc", "group": "team"}"#[..],
        ),
    );
    let cfg = format!(
        "{}{}[v1.git]\nproviders = [\"acme\"]\n",
        server(""),
        kind_provider("acme", "acme-git", &format!("{}/acme", up.url()))
    );
    let r = host.spawn(&cfg).expect("start");
    let c = Client::new(&r.base_url());
    let resp = c.get("/v1/git/repos/team/svc").await;
    assert_eq!(resp.status, 400, "not declared yet: {resp:?}");
    let auth = format!("Bearer {}", mosaic_tests::host::ADMIN_TOKEN);
    let admin = [("authorization", auth.as_str())];
    let put = |body: &'static str| {
        c.send(
            "PUT",
            "/_mosaic/providers",
            &admin,
            body.as_bytes().to_vec(),
        )
    };
    let resp = put("{not json").await;
    assert_eq!(resp.status, 400, "{resp:?}");
    let resp = put(ACME).await;
    assert_eq!(resp.status, 200, "{resp:?}\n{}", r.logs());
    assert!(
        r.kv_get("providers").is_some(),
        "the declarations are in the store"
    );
    let resp = c.get("/v1/git/repos/team/svc").await;
    assert_eq!(resp.status, 200, "{resp:?}\n{}", r.logs());
    let v = json(&resp);
    assert_eq!(
        (&v["provider"], &v["data"]["full_name"]),
        (&"acme".into(), &"team/svc".into()),
        "{v}"
    );
    let s = up.seen().pop().expect("acme was asked");
    assert_eq!(s.header("x-acme-token"), Some(UPSTREAM_TOKEN));
    let resp = c
        .send("GET", "/_mosaic/providers", &admin, Vec::new())
        .await;
    assert_eq!(json(&resp)["declared"][0], "acme-git", "{resp:?}");
}
