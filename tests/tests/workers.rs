//! The end-to-end suite against the Cloudflare Workers host: the worker built by `worker-build`
//! run for real under workerd (`wrangler dev --local`), against mock upstreams on 127.0.0.1.
//!
//! Run it with `scripts/test-workers` (builds the worker, sets `MOSAIC_WORKER_BUILD`). A
//! missing build fails, never passes silently: without that variable, or with a missing build
//! or wrangler, every test here fails with a message saying so (the workspace run of
//! `scripts/test` leaves this binary out).
//!
//! Every host-generic scenario runs here: [`mosaic_tests::scenarios`], the security corpora and
//! checks of [`mosaic_tests::scenarios_security`], the webhooks of
//! [`mosaic_tests::scenarios_hooks`] and the `/v1` API of [`mosaic_tests::v1`]. Where workerd's
//! own HTTP front end refuses or normalises a raw request before the worker sees it, the
//! scenario says so case by case. A scenario this host cannot run is a `skip!` below, with its
//! reason, printed as `SKIP name: why` when the suite runs:
//! - `post_retry_safety`: workerd reports a refused connection and a connection that broke
//!   after the request was sent with the same error ("Network connection lost."), so the host
//!   reports core's ambiguous kind (`FetchError::Reset`: "maybe sent") and core's idempotency
//!   rule does not fail the POST over; [`post_retry_safety_when_refused_is_ambiguous`] checks
//!   the rest of it;
//! - `shared_state_and_cache`: Redis is a store of the native server (Workers isolates share
//!   state through KV: [`state_and_cache_survive_a_restart_through_kv`]);
//!
//! Within scenarios, the parts workerd decides itself are stated where they differ: it refuses
//! invalid `Content-Length`, stacked transfer codings, absolute-form targets and malformed `Host`
//! with its own 500; it resolves dot segments before the worker sees the URL; it consumes
//! `Connection`; it keeps connections open (after HTTP/1.0, `Connection: close` and the
//! router's refusals) and frames every request itself; it reads no trailers or chunk
//! extensions. The Workers host reads a request body whole before checking its size.
//!
//! Also not run are the features of the native server: SIGHUP reload and SIGTERM drain (Workers
//! has no signals; reload is `POST /_mosaic/reload`, run by `reload_good_and_bad`), the redb
//! file store and the command line.

use std::time::Duration;

use mosaic_tests::host::Running;
use mosaic_tests::mock::{Behaviour, Mock};
use mosaic_tests::scenarios::{self, eventually, provider, server, Client};
use mosaic_tests::workers::WorkerBuild;
use mosaic_tests::{scenarios_hooks, scenarios_security, v1};

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

macro_rules! skip {
    ($name:ident, $why:expr) => {
        mosaic_tests::skip!($name, $why);
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
scenario!(v1, every_family_serves_its_operations);
scenario!(v1, v1_writes_go_to_the_primary_only_while_reads_fail_over);
scenario!(
    v1,
    v1_rate_limit_headers_cool_a_provider_down_before_any_429
);
scenario!(v1, a_cursor_continues_on_a_provider_of_its_kind_only);
scenario!(
    scenarios_security,
    ssrf_corpus_is_refused_before_any_upstream_request
);
scenario!(
    scenarios_security,
    names_and_literals_reaching_loopback_are_refused_at_fetch_time
);
scenario!(
    scenarios_security,
    smuggling_corpus_is_refused_or_neutralised
);
scenario!(
    scenarios_security,
    pipelined_request_after_a_refusal_is_never_served
);
scenario!(
    scenarios_security,
    http_framing_edges_are_served_as_the_protocol_says
);
scenario!(
    scenarios_security,
    expect_100_continue_is_answered_before_the_body
);
scenario!(
    scenarios_security,
    caller_credentials_and_hop_by_hop_headers_never_reach_the_upstream
);
scenario!(
    scenarios_security,
    tenants_authenticate_and_admin_scope_is_separate
);
scenario!(
    scenarios_security,
    a_thousand_randomized_requests_stay_within_their_tenant
);
scenario!(
    scenarios_security,
    gcra_admits_the_burst_then_the_rate_under_concurrency
);
scenario!(
    scenarios_security,
    secrets_never_appear_in_logs_problems_metrics_or_state
);
scenario!(
    scenarios_hooks,
    genuine_delivery_is_forwarded_once_as_a_signed_cloudevent
);
scenario!(
    scenarios_hooks,
    forged_delivery_is_401_problem_without_the_secret
);
scenario!(
    scenarios_hooks,
    duplicate_delivery_is_200_marked_and_not_forwarded_again
);
scenario!(scenarios_hooks, oversize_delivery_is_413);
scenario!(
    scenarios_hooks,
    a_destination_that_fails_then_recovers_gets_every_event_exactly_once
);
scenario!(
    scenarios_hooks,
    a_destination_that_stays_down_fills_the_dead_letters_and_replay_delivers
);
scenario!(
    scenarios_hooks,
    notion_handshake_token_is_shown_to_the_operator_and_not_forwarded
);

skip!(
    post_retry_safety,
    "workerd reports a refused connection like one that broke after sending (\"Network connection lost.\"), so a POST to a refused port is ambiguous and not failed over; post_retry_safety_when_refused_is_ambiguous checks the rest"
);
skip!(
    shared_state_and_cache,
    "Redis is a store of the native server; Workers isolates share state through KV (state_and_cache_survive_a_restart_through_kv)"
);

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
