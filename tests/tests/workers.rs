//! The end-to-end suite against the Cloudflare Workers host: the worker built by `worker-build`
//! run for real under workerd (`wrangler dev --local`), against mock upstreams on 127.0.0.1.
//!
//! Run it with `scripts/test-workers` (builds the worker, sets `MOSAIC_WORKER_BUILD`). A
//! missing build fails, never passes silently: without that variable, or with a missing build
//! or wrangler, every test here fails with a message saying so (the workspace run of
//! `scripts/test` leaves this binary out).
//!
//! `/v1` (the normalized API, failover inside a family, the pin header), declarative providers
//! and plugin rate-limit headers are the shared application's on every host; the scenarios of
//! [`mosaic_tests::v1`] prove them here under workerd.
//!
//! Every scenario of the local suite runs here except `post_retry_safety`, replaced by
//! [`post_retry_safety_when_refused_is_ambiguous`]: workerd reports a refused connection and a
//! connection that broke after the request was sent with the same error ("Network connection
//! lost."), so the host reports core's ambiguous kind for it (`FetchError::Reset`: "maybe sent")
//! and core's idempotency rule does not fail the POST over (an idempotent request, or a POST
//! with an `Idempotency-Key`, still fails over). Also not run
//! are the features of the native server:
//! Redis sharing (`shared_state_and_cache`: Workers isolates share state through KV, checked by
//! [`state_and_cache_survive_a_restart_through_kv`]), SIGHUP reload and SIGTERM drain (Workers
//! has no signals; reload is `POST /_mosaic/reload`, run by `reload_good_and_bad`) and the redb
//! file store.

use std::time::Duration;

use mosaic_tests::host::Running;
use mosaic_tests::mock::{Behaviour, Mock};
use mosaic_tests::scenarios::{self, eventually, provider, server, Client};
use mosaic_tests::v1;
use mosaic_tests::workers::WorkerBuild;

/// The build (panics outside scripts/test-workers: a missing build never passes).
fn workers() -> WorkerBuild {
    WorkerBuild::from_env()
}

macro_rules! scenario {
    ($name:ident) => {
        scenario!(scenarios, $name);
    };
    ($module:ident, $name:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            $module::$name(&workers()).await;
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
scenario!(concurrent_misses_collapse);
scenario!(headers_and_credentials);
scenario!(limits_and_admin);
scenario!(reload_good_and_bad);
scenario!(v1, openapi_document);
scenario!(v1, v1_read_fails_over_within_the_family);
scenario!(v1, v1_pin_header_is_not_forwarded);
scenario!(v1, plugin_rate_limit_headers_cool_a_provider_down);
scenario!(v1, declared_provider_serves_without_a_redeploy);

/// A POST that reached a provider is not retried unless it carries an `Idempotency-Key` or the
/// route opts in (as on every host); a POST to a refused port is not retried either, because
/// workerd cannot tell "refused" from "broke after sending" (see the module docs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_retry_safety_when_refused_is_ambiguous() {
    let host = workers();
    let bad = Mock::start("bad", Behaviour::status(503)).await;
    let ok = Mock::start("ok", Behaviour::ok()).await;
    let cfg = format!(
        "{}{}{}{}\
         [[routes]]\nname = \"plain\"\nmatch = {{ path = \"/plain\" }}\nproviders = [\"bad\", \"ok\"]\n\
         [[routes]]\nname = \"optin\"\nmatch = {{ path = \"/optin\" }}\nproviders = [\"bad\", \"ok\"]\nretry_non_idempotent = true\n\
         [[routes]]\nname = \"refused\"\nmatch = {{ path = \"/refused\" }}\nproviders = [\"down\", \"ok\"]\n",
        server(""),
        provider("bad", &bad.url()),
        provider("ok", &ok.url()),
        provider("down", &mosaic_tests::mock::closed_port_url())
    );
    let r = host.spawn(&cfg).expect("start");
    let c = Client::new(&r.base_url());
    let resp = c.send("POST", "/plain", &[], b"{}".to_vec()).await;
    assert_eq!(resp.status, 503, "a sent POST is not retried: {resp:?}");
    assert_eq!((bad.hits(), ok.hits()), (1, 0));
    let resp = c
        .send(
            "POST",
            "/plain",
            &[("idempotency-key", "k-1")],
            b"{}".to_vec(),
        )
        .await;
    assert_eq!(
        (resp.status, resp.from()),
        (200, "ok"),
        "with Idempotency-Key: {resp:?}"
    );
    let resp = c.send("POST", "/optin", &[], b"{}".to_vec()).await;
    assert_eq!(
        (resp.status, resp.from()),
        (200, "ok"),
        "the route opts in: {resp:?}"
    );
    let before = ok.hits();
    let resp = c.send("POST", "/refused", &[], b"{\"a\":1}".to_vec()).await;
    assert!(resp.status >= 500, "not failed over: {resp:?}");
    assert_eq!(
        resp.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(ok.hits(), before, "the fallback never saw the POST");
    let resp = c
        .send(
            "POST",
            "/refused",
            &[("idempotency-key", "k-2")],
            b"{\"a\":1}".to_vec(),
        )
        .await;
    assert_eq!(
        (resp.status, resp.from()),
        (200, "ok"),
        "with a key it fails over: {resp:?}"
    );
    let seen = ok.seen();
    assert_eq!(
        seen.last().map(|s| s.body.as_ref()),
        Some(&b"{\"a\":1}"[..]),
        "the body reached the fallback"
    );
    let resp = c.get("/refused").await;
    assert_eq!(
        (resp.status, resp.from()),
        (200, "ok"),
        "a GET fails over: {resp:?}"
    );
}

/// The isolate's snapshot bookkeeping from `/_mosaic/state`.
async fn snapshot(c: &Client) -> serde_json::Value {
    c.state().await["isolate"]["snapshot"].clone()
}

/// Breaker and cooldown state written behind to KV, and a cached entry in KV, survive a
/// `wrangler dev` restart (persisted KV): the cold isolate restores the snapshot once and
/// serves the entry from KV (L2) with an empty L1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_and_cache_survive_a_restart_through_kv() {
    let host = workers();
    let bad = Mock::start("bad", Behaviour::status(500)).await;
    let limited = Mock::start(
        "limited",
        Behaviour::status(429).header("retry-after", "600"),
    )
    .await;
    let ok = Mock::start("ok", Behaviour::ok()).await;
    let cached = Mock::start("cached", Behaviour::ok()).await;
    let cfg = format!(
        "{}{}{}{}{}[[routes]]\nname = \"r\"\nmatch = {{ path = \"/r/{{*rest}}\" }}\nproviders = [\"bad\", \"ok\"]\nretry = {{ on_status = [500] }}\nbreaker = {{ min_calls = 2, size = 4, open_ms = 60000, open_max_ms = 60000 }}\n\
         [[routes]]\nname = \"l\"\nmatch = {{ path = \"/l/{{*rest}}\" }}\nproviders = [\"limited\", \"ok\"]\n\
         [[routes]]\nname = \"c\"\nmatch = {{ methods = [\"GET\"], path = \"/c/{{*rest}}\" }}\nproviders = [\"cached\"]\ncache = {{ enabled = true, ttl_s = 300 }}\n",
        server(""),
        provider("bad", &bad.url()),
        provider("limited", &limited.url()),
        provider("ok", &ok.url()),
        provider("cached", &cached.url())
    );
    let r = host.spawn(&cfg).expect("start");
    let c = Client::new(&r.base_url());
    for _ in 0..3 {
        assert_eq!(c.get("/r/a").await.from(), "ok");
    }
    assert_eq!(bad.hits(), 2);
    assert_eq!(c.breaker("r", "bad").await, "open");
    assert_eq!(c.get("/l/a").await.from(), "ok");
    assert_eq!(c.get("/l/a").await.from(), "ok");
    assert_eq!(limited.hits(), 1);
    let first = c.get("/c/item").await;
    assert_eq!((first.cache(), first.body.as_str()), ("miss", "cached 1"));
    // written behind: at most one write per 5 s, within 5 s of the last change
    let written = eventually(Duration::from_secs(15), || {
        let c = c.clone();
        async move {
            let s = snapshot(&c).await;
            s["material"] == s["saved_material"] && s["write_pending"] == false
        }
    })
    .await;
    assert!(
        written,
        "the snapshot was not written behind: {}\n{}",
        snapshot(&c).await,
        r.logs()
    );
    let writes = snapshot(&c).await["writes"].as_u64().unwrap_or(0);
    assert!(
        (1..=3).contains(&writes),
        "writes are batched, not one per change: {writes}"
    );

    r.restart().expect("restart");
    let c = Client::new(&r.base_url());
    let s = snapshot(&c).await;
    assert_eq!(
        s["restored_at_start"], true,
        "the cold isolate restored the snapshot: {s}"
    );
    assert_eq!(
        c.breaker("r", "bad").await,
        "open",
        "the breaker survives the restart:\n{}",
        r.logs()
    );
    assert_eq!(c.get("/r/a").await.from(), "ok");
    assert_eq!(c.get("/l/a").await.from(), "ok");
    assert_eq!(
        (bad.hits(), limited.hits()),
        (2, 1),
        "no traffic to the failing or cooling provider"
    );
    let again = c.get("/c/item").await;
    assert_eq!(
        (again.cache(), again.body.as_str()),
        ("hit", "cached 1"),
        "{again:?}"
    );
    assert_eq!(cached.hits(), 1);
    let tiers = c.state().await["isolate"]["tiers"].clone();
    assert_eq!(
        tiers["kv_hits"], 1,
        "served from KV after the restart: {tiers}"
    );
    eprintln!("workers: wrangler dev ready after {:?}", r.ready_after());
}

/// `request.cf` feeds the region-nearest strategy: wrangler's local `cf` mock places the
/// caller in DFW, US, North America, so the us-east provider is chosen over the first-listed
/// eu-central one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_cf_feeds_region_nearest() {
    let host = workers();
    let eu = Mock::start("eu", Behaviour::ok()).await;
    let us = Mock::start("us", Behaviour::ok()).await;
    let cfg = format!(
        "{}[[providers]]\nid = \"eu\"\nbase_url = \"{}\"\nallow_private = true\nregion = \"eu-central\"\n\n\
         [[providers]]\nid = \"us\"\nbase_url = \"{}\"\nallow_private = true\nregion = \"us-east\"\n\n\
         [[routes]]\nname = \"r\"\nmatch = {{ path = \"/{{*rest}}\" }}\nproviders = [\"eu\", \"us\"]\nstrategy = \"region-nearest\"\n",
        server(""),
        eu.url(),
        us.url()
    );
    let r = host.spawn(&cfg).expect("start");
    let c = Client::new(&r.base_url());
    for _ in 0..3 {
        let resp = c.get("/a").await;
        assert_eq!(
            (resp.status, resp.from()),
            (200, "us"),
            "{resp:?}\n{}",
            r.logs()
        );
    }
    assert_eq!(eu.hits(), 0);
}

/// An invalid config with no accepted fallback answers 500 problem+json naming every key path;
/// health still answers, 503 JSON (live, not ready) with the same errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_config_is_a_problem_naming_key_paths() {
    let host = workers();
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
    let resp = c.get("/_mosaic/health").await;
    assert_eq!(resp.status, 503, "{resp:?}");
    assert_eq!(resp.header("content-type"), Some("application/json"));
    let v: serde_json::Value = serde_json::from_str(&resp.body).expect("JSON");
    assert_eq!(
        (&v["status"], &v["live"], &v["ready"]),
        (&"unconfigured".into(), &true.into(), &false.into()),
        "{v}"
    );
    let errors = v["errors"].to_string();
    for key in keys {
        assert!(errors.contains(key), "{key} missing from {errors}");
    }
    assert!(
        r.logs().contains("\"target\":\"mosaic::config\""),
        "an error line names the key paths:\n{}",
        r.logs()
    );
}

/// One JSON line per request, with the fields of the local server's access log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_json_log_line_per_request() {
    let host = workers();
    let up = Mock::start("up", Behaviour::ok()).await;
    let cfg = format!(
        "{}{}[[routes]]\nname = \"r\"\nmatch = {{ path = \"/{{*rest}}\" }}\nproviders = [\"up\"]\n",
        server(""),
        provider("up", &up.url())
    );
    let r = host.spawn(&cfg).expect("start");
    let c = Client::new(&r.base_url());
    let resp = c.get("/logged").await;
    let id = resp
        .header("x-mosaic-request-id")
        .unwrap_or_default()
        .to_string();
    let found = eventually(Duration::from_secs(5), || {
        let logs = r.logs();
        let id = id.clone();
        async move { logs.contains(&id) }
    })
    .await;
    assert!(found, "no log line for {id}:\n{}", r.logs());
    let logs = r.logs();
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .filter(|l| l.contains(&id))
        .filter_map(|l| serde_json::from_str(l.trim()).ok())
        .collect();
    assert_eq!(lines.len(), 1, "{logs}");
    let l = &lines[0];
    assert_eq!(l["target"], "mosaic::access");
    assert_eq!(l["status"], 200);
    assert_eq!(l["route"], "r");
    assert_eq!(l["providers"], "up");
    assert_eq!(l["path"], "/logged");
}

/// Webhooks through the Workers host (issue 6): genuine, forged and duplicate deliveries, a
/// destination that fails then recovers, dead letters and replay. The endpoint's GitHub secret
/// is the test binding `MOSAIC_TEST_UPSTREAM` (already in every test's `.dev.vars`); deliveries
/// run in `ctx.wait_until` with the library's default policy (2 s backoff base, full jitter).
mod webhooks {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use mosaic_tests::hooks::{
        self, admin, cloud_event as ce, github_headers, issue_body as body, ok_ids, post_hook,
    };
    use mosaic_tests::host::Running;
    use mosaic_tests::mock::{Behaviour, Mock};
    use mosaic_tests::scenarios::{eventually, server, Client, Resp, UPSTREAM_TOKEN};
    use mosaic_tests::workers::WorkerRouter;

    use super::workers;

    /// The endpoint's secret: the value of the `MOSAIC_TEST_UPSTREAM` binding.
    const HOOK_SECRET: &str = UPSTREAM_TOKEN;

    /// One GitHub endpoint `gh` forwarding to `dest` with `attempts` attempts.
    fn config(dest: &str, attempts: u32) -> String {
        format!(
            "{}[[webhooks]]\nname = \"gh\"\nscheme = \"github\"\nsecrets = [\"secret:MOSAIC_TEST_UPSTREAM\"]\nmax_body_bytes = 4096\ndestinations = [{{ url = \"{dest}\", allow_private = true, attempts = {attempts} }}]\n",
            server("")
        )
    }

    async fn deliver(c: &Client, n: u32, id: &str) -> Resp {
        hooks::deliver(c, HOOK_SECRET, n, id).await
    }

    /// The worker serving `cfg`.
    fn start(cfg: &str) -> WorkerRouter {
        workers()
            .spawn(cfg)
            .unwrap_or_else(|e| panic!("wrangler dev did not start: {e}\nconfig:\n{cfg}"))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn genuine_github_delivery_is_forwarded_once_as_a_cloudevent() {
        let dest = Mock::start("dest", Behaviour::ok()).await;
        let r = start(&config(&format!("{}/events", dest.url()), 3));
        let c = Client::new(&r.base_url());
        let resp = deliver(&c, 7, "w-genuine-1").await;
        assert_eq!(resp.status, 200, "{resp:?}\n{}", r.logs());
        let ack: serde_json::Value = serde_json::from_str(&resp.body).expect("ack JSON");
        assert_eq!(ack["status"], "accepted");
        assert_eq!(ack["id"], "w-genuine-1");
        assert_eq!(ack["destinations"], 1);
        assert!(resp.header("x-mosaic-duplicate").is_none());

        let arrived = eventually(Duration::from_secs(8), || async { dest.hits() >= 1 }).await;
        assert!(arrived, "not forwarded:\n{}", r.logs());
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(dest.hits(), 1, "forwarded more than once");
        let seen = &dest.seen()[0];
        assert_eq!(seen.method, "POST");
        assert_eq!(seen.target, "/events");
        assert_eq!(
            seen.header("content-type"),
            Some("application/cloudevents+json")
        );
        let ev = ce(seen);
        assert_eq!(ev["specversion"], "1.0");
        assert_eq!(ev["id"], "w-genuine-1");
        assert_eq!(ev["type"], "com.github.issues.opened");
        assert_eq!(ev["mosaicprovider"], "github");
        assert_eq!(ev["data"]["issue"]["number"], 7);

        let metrics = admin(&c, "GET", "/_mosaic/metrics").await;
        assert!(
            metrics
                .body
                .contains("mosaic_webhooks_total{endpoint=\"gh\",result=\"accepted\"} 1"),
            "{}",
            metrics.body
        );
        let logged = eventually(Duration::from_secs(5), || {
            let logs = r.logs();
            async move { logs.contains("\"outcome\":\"delivered\"") }
        })
        .await;
        let logs = r.logs();
        assert!(logged, "{logs}");
        assert!(logs.contains("webhook delivery received"), "{logs}");
        assert!(!logs.contains(HOOK_SECRET), "{logs}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn forged_delivery_is_401_problem_without_the_secret() {
        let dest = Mock::start("dest", Behaviour::ok()).await;
        let r = start(&config(&format!("{}/events", dest.url()), 3));
        let c = Client::new(&r.base_url());
        let b = body(1);
        let resp = post_hook(
            &c,
            "/hooks/gh",
            &github_headers("not-the-secret", &b, "w-forged"),
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
        let h = github_headers(HOOK_SECRET, &b, "w-forged-2");
        let resp = post_hook(&c, "/hooks/gh", &h, body(2)).await;
        assert_eq!(resp.status, 401, "{resp:?}");
        // no signature at all
        let resp = post_hook(
            &c,
            "/hooks/gh",
            &[(String::from("x-github-event"), String::from("issues"))],
            b,
        )
        .await;
        assert_eq!(resp.status, 401, "{resp:?}");
        // an endpoint that does not exist
        let resp = c.send("POST", "/hooks/nope", &[], body(1)).await;
        assert_eq!(resp.status, 404, "{resp:?}");

        let metrics = admin(&c, "GET", "/_mosaic/metrics").await;
        assert!(
            metrics
                .body
                .contains("mosaic_webhooks_total{endpoint=\"gh\",result=\"rejected\"} 3"),
            "{}",
            metrics.body
        );
        assert!(!metrics.body.contains("endpoint=\"nope\""));
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(dest.hits(), 0, "nothing forged is forwarded");
        let logs = r.logs();
        assert!(
            !logs.contains(HOOK_SECRET) && !logs.contains("not-the-secret"),
            "{logs}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn duplicate_delivery_is_200_marked_and_not_forwarded_again() {
        let dest = Mock::start("dest", Behaviour::ok()).await;
        let r = start(&config(&format!("{}/events", dest.url()), 3));
        let c = Client::new(&r.base_url());
        let first = deliver(&c, 3, "w-dup").await;
        assert_eq!(first.status, 200, "{first:?}\n{}", r.logs());
        let again = deliver(&c, 3, "w-dup").await;
        assert_eq!(again.status, 200, "{again:?}");
        assert_eq!(again.header("x-mosaic-duplicate"), Some("true"));
        let ack: serde_json::Value = serde_json::from_str(&again.body).expect("JSON");
        assert_eq!(ack["status"], "duplicate");
        // the same captured body under a fresh delivery id is a duplicate too
        let replayed = deliver(&c, 3, "w-dup-fresh-id").await;
        assert_eq!(
            replayed.header("x-mosaic-duplicate"),
            Some("true"),
            "{replayed:?}"
        );
        let arrived = eventually(Duration::from_secs(8), || async { dest.hits() >= 1 }).await;
        assert!(arrived, "{}", r.logs());
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(dest.hits(), 1, "a duplicate was forwarded");
        let metrics = admin(&c, "GET", "/_mosaic/metrics").await;
        assert!(
            metrics
                .body
                .contains("mosaic_webhooks_total{endpoint=\"gh\",result=\"duplicate\"} 2"),
            "{}",
            metrics.body
        );
    }

    /// Within the 25 s `wait_until` window: one 503, then the retry (after up to 2 s) lands.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_destination_that_fails_then_recovers_gets_every_event_exactly_once() {
        let dest = Mock::start("dest", Behaviour::ok()).await;
        // the first attempt (whichever event it carries) fails with 503
        dest.script([Behaviour::status(503)]);
        let r = start(&config(&format!("{}/events", dest.url()), 8));
        let c = Client::new(&r.base_url());
        for (n, id) in [(1, "w-r-1"), (2, "w-r-2")] {
            let resp = deliver(&c, n, id).await;
            assert_eq!(resp.status, 200, "{resp:?}\n{}", r.logs());
        }
        let done = eventually(Duration::from_secs(12), || async { dest.hits() >= 3 }).await;
        assert!(done, "hits {}:\n{}", dest.hits(), r.logs());
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(dest.hits(), 3, "{:?}", dest.seen());
        assert_eq!(
            ok_ids(&dest),
            BTreeMap::from([(String::from("w-r-1"), 1), (String::from("w-r-2"), 1)]),
            "every event exactly once"
        );
        let retried = eventually(Duration::from_secs(3), || {
            let logs = r.logs();
            async move { logs.contains("\"attempts\":2") }
        })
        .await;
        assert!(retried, "{}", r.logs());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_destination_that_stays_down_fills_the_dead_letters_and_replay_delivers() {
        let dest = Mock::start("dest", Behaviour::status(503)).await;
        let r = start(&config(&format!("{}/events", dest.url()), 2));
        let c = Client::new(&r.base_url());
        let resp = deliver(&c, 5, "w-dead-1").await;
        assert_eq!(resp.status, 200, "{resp:?}\n{}", r.logs());
        let listed = eventually(Duration::from_secs(10), || async {
            admin(&c, "GET", "/_mosaic/hooks/dead")
                .await
                .body
                .contains("w-dead-1")
        })
        .await;
        assert!(listed, "no dead letter:\n{}", r.logs());
        assert_eq!(dest.hits(), 2, "two attempts were configured");

        let list = admin(&c, "GET", "/_mosaic/hooks/dead").await;
        assert_eq!(list.status, 200);
        let v: serde_json::Value = serde_json::from_str(&list.body).expect("JSON");
        let letters = v["dead_letters"].as_array().expect("dead_letters");
        assert_eq!(letters.len(), 1, "{v}");
        let l = &letters[0];
        assert_eq!(l["id"], "gh:w-dead-1:0");
        assert_eq!(l["event_id"], "w-dead-1");
        assert_eq!(l["type"], "com.github.issues.opened");
        assert_eq!(l["attempts"], 2);
        assert_eq!(l["last_error"], "destination answered 503");
        let mine = admin(&c, "GET", "/_mosaic/hooks/dead?endpoint=gh").await;
        assert!(mine.body.contains("gh:w-dead-1:0"), "{mine:?}");
        let other = admin(&c, "GET", "/_mosaic/hooks/dead?endpoint=other").await;
        assert_eq!(other.status, 200);
        assert!(!other.body.contains("w-dead-1"), "{}", other.body);
        // the admin token is required
        let open = c.get("/_mosaic/hooks/dead").await;
        assert_eq!(open.status, 401, "{open:?}");
        let open = c
            .send(
                "POST",
                "/_mosaic/hooks/dead/gh%3Aw-dead-1%3A0/replay",
                &[],
                Vec::new(),
            )
            .await;
        assert_eq!(open.status, 401, "{open:?}");

        // the destination comes back; the operator replays (the id percent-encoded)
        dest.set(Behaviour::ok());
        let replay = admin(&c, "POST", "/_mosaic/hooks/dead/gh%3Aw-dead-1%3A0/replay").await;
        assert_eq!(replay.status, 202, "{replay:?}");
        let delivered = eventually(Duration::from_secs(8), || async {
            ok_ids(&dest).contains_key("w-dead-1")
        })
        .await;
        assert!(delivered, "{}", r.logs());
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(ok_ids(&dest).get("w-dead-1"), Some(&1));
        assert_eq!(dest.hits(), 3);
        let after = admin(&c, "GET", "/_mosaic/hooks/dead").await;
        assert!(!after.body.contains("w-dead-1"), "{}", after.body);
        let twice = admin(&c, "POST", "/_mosaic/hooks/dead/gh%3Aw-dead-1%3A0/replay").await;
        assert_eq!(twice.status, 404, "{twice:?}");
        let logs = r.logs();
        assert!(logs.contains("\"outcome\":\"dead-lettered\""), "{logs}");
        assert!(!logs.contains(HOOK_SECRET), "{logs}");
    }
}
