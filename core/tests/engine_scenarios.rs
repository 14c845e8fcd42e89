//! SimHost scenarios: the exact sequence of attempts (golden transcripts) for failover, retry
//! with backoff, the breaker cycle, Retry-After cooldown, budget exhaustion, deadlines and
//! non-idempotent requests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use mosaic_core::http::Method;
use mosaic_core::sim::Behaviour;
use std::time::Duration;

const TWO: &str = r#"
[[providers]]
id = "a"
base_url = "https://a.example"
[[providers]]
id = "b"
base_url = "https://b.example"

[[routes]]
name = "api"
match = { path = "/api/{*rest}" }
providers = ["a", "b"]
retry = { attempts = 3, backoff_base_ms = 100, backoff_max_ms = 1000 }
timeout = { per_try_ms = 500, total_ms = 3000 }
"#;

#[test]
fn failover_on_connection_refused() {
    let r = router(TWO);
    let h = sim(&r);
    h.upstream("a", Behaviour::Down);
    let rep = get(&h, &r, "/api/x");
    assert_eq!(rep.status, 200);
    assert_eq!(header(&rep, "x-mosaic-provider"), Some("b"));
    assert_eq!(
        h.take_transcript(),
        [
            "0ms #1 a GET -> connect at 0ms",
            "0ms #2 b GET -> 200 at 10ms"
        ]
    );
    assert_eq!(rep.log.providers, ["a", "b"]);
    assert_eq!(rep.log.attempts, 2);
}

/// A host that writes no log line gets the same reply, headers included, with the log's
/// strings left empty and its numbers filled.
#[test]
fn a_host_that_keeps_no_log_gets_the_same_reply_without_log_strings() {
    let r = router(TWO);
    let h = sim(&r);
    h.keep_log(false);
    h.upstream("a", Behaviour::Down);
    let rep = get(&h, &r, "/api/x");
    assert_eq!(rep.status, 200);
    assert_eq!(header(&rep, "x-mosaic-provider"), Some("b"));
    let id = header(&rep, "x-mosaic-request-id").expect("request id header");
    assert!(!id.is_empty());
    assert_eq!(rep.log.attempts, 2);
    assert_eq!(rep.log.status, 200);
    assert!(rep.log.providers.is_empty());
    assert_eq!(rep.log.route, None);
    assert_eq!(rep.log.request_id, "");
    // the same request from a host that keeps its log: the header's id in the log too, and
    // the names filled
    h.keep_log(true);
    let rep = get(&h, &r, "/api/x");
    assert_eq!(header(&rep, "x-mosaic-provider"), Some("b"));
    assert_eq!(
        header(&rep, "x-mosaic-request-id"),
        Some(rep.log.request_id.as_str())
    );
    assert_eq!(rep.log.providers.last().map(String::as_str), Some("b"));
    assert_eq!(rep.log.providers.len(), rep.log.attempts as usize);
    assert_eq!(rep.log.route.as_deref(), Some("api"));
}

/// Hosts share the state between concurrent requests under a lock: a request visits it once
/// per step (admission with the call's first step, then each attempt's result with the next
/// step), not once per engine call.
#[test]
fn a_request_visits_the_shared_state_once_per_step() {
    let r = router(TWO);
    let h = sim(&r);
    assert_eq!(get(&h, &r, "/api/x").status, 200);
    assert_eq!(h.state_visits(), 2, "admit and start, then the answer");
    h.upstream("a", Behaviour::Down);
    assert_eq!(get(&h, &r, "/api/x").status, 200);
    assert_eq!(
        h.state_visits(),
        2 + 3,
        "admit and start, a's failure, b's answer"
    );
}

#[test]
fn failover_on_5xx_and_on_timeout() {
    let r = router(TWO);
    let h = sim(&r);
    h.script("a", [Behaviour::status(503)]);
    assert_eq!(get(&h, &r, "/api/x").status, 200);
    h.script("a", [Behaviour::slow(10_000)]);
    assert_eq!(get(&h, &r, "/api/x").status, 200);
    assert_eq!(
        h.take_transcript(),
        [
            "0ms #1 a GET -> 503 at 10ms",
            "10ms #2 b GET -> 200 at 20ms",
            "20ms #1 a GET -> timeout at 520ms",
            "520ms #2 b GET -> 200 at 530ms",
        ]
    );
}

#[test]
fn retry_same_provider_backs_off_with_full_jitter() {
    let r = router(
        r#"
[[providers]]
id = "a"
base_url = "https://a.example"
[[routes]]
name = "api"
match = { path = "/{*rest}" }
providers = ["a"]
retry = { attempts = 3, backoff_base_ms = 100, backoff_max_ms = 1000 }
"#,
    );
    let h = sim(&r);
    h.script("a", [Behaviour::status(503), Behaviour::status(502)]);
    let rep = get(&h, &r, "/x");
    assert_eq!(rep.status, 200);
    let t = h.take_transcript();
    assert_eq!(t.len(), 5, "{t:?}");
    assert_eq!(t[0], "0ms #1 a GET -> 503 at 10ms");
    assert!(t[1].starts_with("10ms sleep until "), "{t:?}");
    assert!(t[3].contains("sleep until "), "{t:?}");
    // full jitter: the first sleep is in [0, 100) ms, the second in [0, 200) ms
    let until = |line: &str| -> u64 {
        line.rsplit(' ')
            .next()
            .unwrap()
            .trim_end_matches("ms")
            .parse()
            .unwrap()
    };
    let s1 = until(&t[1]) - 10;
    assert!(s1 < 100, "first backoff {s1} ms");
    let start2: u64 = t[2].split("ms").next().unwrap().parse().unwrap();
    assert_eq!(start2, until(&t[1]));
    let end2 = start2 + 10;
    let s2 = until(&t[3]) - end2;
    assert!(s2 < 200, "second backoff {s2} ms");
    // golden: the seeded run is exactly reproducible
    let h2 = sim(&r);
    h2.script("a", [Behaviour::status(503), Behaviour::status(502)]);
    let _ = get(&h2, &r, "/x");
    assert_eq!(h2.take_transcript(), t);
}

#[test]
fn gives_up_after_attempts_and_passes_the_last_response_through() {
    let r = router(TWO);
    let h = sim(&r);
    h.upstream("a", Behaviour::status(503).with_body(b"a is down"));
    h.upstream("b", Behaviour::status(502).with_body(b"b is down"));
    let rep = get(&h, &r, "/api/x");
    assert_eq!(rep.status, 503);
    assert_eq!(body(&rep), "a is down", "the last attempt's response");
    assert_eq!(rep.log.attempts, 3);
    assert_eq!(rep.log.give_up, Some("attempts"));
    let t = h.take_transcript();
    assert_eq!(t[0], "0ms #1 a GET -> 503 at 10ms");
    assert_eq!(t[1], "10ms #2 b GET -> 502 at 20ms");
    assert!(
        t[2].starts_with("20ms sleep until"),
        "wrapping round backs off: {t:?}"
    );
    assert!(t[3].contains("#3 a GET -> 503"), "{t:?}");
}

#[test]
fn breaker_closed_open_half_open_closed() {
    let r = router(
        r#"
[[providers]]
id = "a"
base_url = "https://a.example"
[[routes]]
name = "api"
match = { path = "/{*rest}" }
providers = ["a"]
retry = { attempts = 1 }
breaker = { window = "count", size = 4, min_calls = 2, failure_rate = 0.5, open_ms = 1000, half_open_probes = 1 }
"#,
    );
    let h = sim(&r);
    h.upstream("a", Behaviour::status(500));
    assert_eq!(get(&h, &r, "/x").status, 500);
    assert_eq!(get(&h, &r, "/x").status, 500);
    let breaker = |h: &mosaic_core::sim::SimHost| h.state().routes[0].breakers[0].state().name();
    assert_eq!(breaker(&h), "open");
    // open: refused without touching the upstream
    let rep = get(&h, &r, "/x");
    assert_eq!(rep.status, 503);
    assert_eq!(problem_code(&rep), "all-providers-unavailable");
    assert!(header(&rep, "retry-after").is_some());
    assert_eq!(h.hits("a"), 2);
    // after the open period: one probe; the upstream has recovered
    h.advance(Duration::from_millis(1000));
    h.upstream("a", Behaviour::ok());
    assert_eq!(get(&h, &r, "/x").status, 200);
    assert_eq!(breaker(&h), "closed");
    assert_eq!(h.hits("a"), 3);
    assert_eq!(
        h.take_transcript(),
        [
            "0ms #1 a GET -> 500 at 10ms",
            "10ms #1 a GET -> 500 at 20ms",
            "1020ms #1 a GET -> 200 at 1030ms"
        ]
    );
}

#[test]
fn failed_probe_reopens_for_longer() {
    let r = router(
        r#"
[[providers]]
id = "a"
base_url = "https://a.example"
[[routes]]
name = "api"
match = { path = "/{*rest}" }
providers = ["a"]
retry = { attempts = 1 }
breaker = { size = 2, min_calls = 1, failure_rate = 1.0, open_ms = 1000, open_max_ms = 8000 }
"#,
    );
    let h = sim(&r);
    h.upstream("a", Behaviour::status(500));
    assert_eq!(get(&h, &r, "/x").status, 500);
    h.advance(Duration::from_millis(1000));
    assert_eq!(get(&h, &r, "/x").status, 500, "probe fails");
    let st = h.state().routes[0].breakers[0].state();
    match st {
        mosaic_core::breaker::State::Open { until } => {
            let now = mosaic_core::Instant::from_secs(T0) + Duration::from_millis(1020);
            assert_eq!(
                until - now,
                Duration::from_millis(2000),
                "second open doubles"
            );
        }
        s => panic!("expected open, got {s:?}"),
    }
}

#[test]
fn retry_after_cools_a_provider_down() {
    let r = router(TWO);
    let h = sim(&r);
    h.script(
        "a",
        [Behaviour::status(429).with_header("retry-after", "5")],
    );
    assert_eq!(get(&h, &r, "/api/1").status, 200);
    // within 5 s: a is skipped entirely
    assert_eq!(get(&h, &r, "/api/2").status, 200);
    h.advance(Duration::from_secs(5));
    assert_eq!(get(&h, &r, "/api/3").status, 200);
    assert_eq!(
        h.take_transcript(),
        [
            "0ms #1 a GET -> 429 at 10ms",
            "10ms #2 b GET -> 200 at 20ms",
            "20ms #1 b GET -> 200 at 30ms",
            "5030ms #1 a GET -> 200 at 5040ms",
        ]
    );
    // a 429 is not a breaker failure
    assert_eq!(h.state().routes[0].breakers[0].state().name(), "closed");
}

#[test]
fn single_provider_429_waits_for_retry_after_within_the_deadline() {
    let r = router(
        r#"
[[providers]]
id = "a"
base_url = "https://a.example"
[[routes]]
name = "api"
match = { path = "/{*rest}" }
providers = ["a"]
timeout = { per_try_ms = 500, total_ms = 5000 }
"#,
    );
    let h = sim(&r);
    h.script(
        "a",
        [Behaviour::status(429).with_header("retry-after", "2")],
    );
    assert_eq!(get(&h, &r, "/x").status, 200);
    assert_eq!(
        h.take_transcript(),
        [
            "0ms #1 a GET -> 429 at 10ms",
            "10ms sleep until 2010ms",
            "2010ms #2 a GET -> 200 at 2020ms"
        ]
    );
}

#[test]
fn rate_limit_headers_cool_down_before_any_429() {
    let r = router(
        r#"
[[providers]]
id = "a"
base_url = "https://a.example"
cooldown_below = 1
[[providers]]
id = "b"
base_url = "https://b.example"
[[routes]]
name = "api"
match = { path = "/{*rest}" }
providers = ["a", "b"]
"#,
    );
    let h = sim(&r);
    let reset = (T0 + 60).to_string();
    h.script(
        "a",
        [Behaviour::ok()
            .with_header("x-ratelimit-remaining", "1")
            .with_header("x-ratelimit-reset", &reset)],
    );
    assert_eq!(get(&h, &r, "/x").status, 200);
    assert_eq!(header(&get(&h, &r, "/y"), "x-mosaic-provider"), Some("b"));
    h.advance(Duration::from_secs(60));
    assert_eq!(header(&get(&h, &r, "/z"), "x-mosaic-provider"), Some("a"));
    assert_eq!(h.hits("a"), 2);
}

#[test]
fn empty_budget_stops_retries() {
    let r = router(
        r#"
[[providers]]
id = "a"
base_url = "https://a.example"
[[providers]]
id = "b"
base_url = "https://b.example"
[[routes]]
name = "api"
match = { path = "/{*rest}" }
providers = ["a", "b"]
retry = { attempts = 3, budget_ratio = 0.0, budget_min_per_sec = 0 }
"#,
    );
    let h = sim(&r);
    h.upstream("a", Behaviour::status(503));
    let rep = get(&h, &r, "/x");
    assert_eq!(rep.status, 503);
    assert_eq!(rep.log.give_up, Some("budget"));
    assert_eq!(h.take_transcript(), ["0ms #1 a GET -> 503 at 10ms"]);
}

#[test]
fn budget_ratio_limits_retries_under_sustained_failure() {
    let r = router(
        r#"
[[providers]]
id = "a"
base_url = "https://a.example"
[[providers]]
id = "b"
base_url = "https://b.example"
[[routes]]
name = "api"
match = { path = "/{*rest}" }
providers = ["a", "b"]
retry = { attempts = 2, budget_ratio = 0.25, budget_min_per_sec = 0 }
breaker = { failure_on = [] }
"#,
    );
    let h = sim(&r);
    h.upstream("a", Behaviour::status(503));
    h.upstream("b", Behaviour::status(503));
    for i in 0..40 {
        let _ = get(&h, &r, &format!("/x{i}"));
    }
    let attempts = h.hits("a") + h.hits("b");
    // 40 requests; retries limited to 25 % of them
    assert_eq!(attempts, 40 + 10, "attempts {attempts}");
}

#[test]
fn deadline_exceeded_when_every_try_times_out() {
    let r = router(
        r#"
[[providers]]
id = "a"
base_url = "https://a.example"
[[routes]]
name = "api"
match = { path = "/{*rest}" }
providers = ["a"]
retry = { attempts = 5, backoff_base_ms = 1, backoff_max_ms = 1 }
timeout = { per_try_ms = 60, total_ms = 100 }
"#,
    );
    let h = sim(&r);
    h.upstream("a", Behaviour::slow(1_000));
    let rep = get(&h, &r, "/x");
    assert_eq!(rep.status, 504);
    assert_eq!(problem_code(&rep), "deadline-exceeded");
    let t = h.take_transcript();
    assert_eq!(t[0], "0ms #1 a GET -> timeout at 60ms");
    assert!(
        t.last().unwrap().ends_with("-> timeout at 100ms"),
        "second try is cut at the overall deadline: {t:?}"
    );
}

#[test]
fn post_that_reached_a_provider_is_not_retried() {
    let r = router(TWO);
    let h = sim(&r);
    h.script(
        "a",
        [Behaviour::Reset {
            after: Duration::from_millis(5),
        }],
    );
    let rep = send(&h, &r, Method::Post, "/api/x", &[]);
    assert_eq!(rep.status, 502);
    assert_eq!(problem_code(&rep), "not-retried");
    assert_eq!(h.take_transcript(), ["0ms #1 a POST -> reset at 5ms"]);
    // a 503 to a POST is passed through, not retried
    h.script("a", [Behaviour::status(503)]);
    assert_eq!(send(&h, &r, Method::Post, "/api/x", &[]).status, 503);
    assert_eq!(h.hits("b"), 0);
}

#[test]
fn post_with_idempotency_key_or_refused_at_connect_fails_over() {
    let r = router(TWO);
    let h = sim(&r);
    h.script(
        "a",
        [Behaviour::Reset {
            after: Duration::from_millis(5),
        }],
    );
    let rep = send(
        &h,
        &r,
        Method::Post,
        "/api/x",
        &[("Idempotency-Key", "k-1")],
    );
    assert_eq!(rep.status, 200);
    h.script("a", [Behaviour::Down]);
    let rep = send(&h, &r, Method::Post, "/api/x", &[]);
    assert_eq!(rep.status, 200);
    assert_eq!(
        h.take_transcript(),
        [
            "0ms #1 a POST -> reset at 5ms",
            "5ms #2 b POST -> 200 at 15ms",
            "15ms #1 a POST -> connect at 15ms",
            "15ms #2 b POST -> 200 at 25ms",
        ]
    );
}

#[test]
fn route_opt_in_allows_retrying_posts() {
    let r = router(&TWO.replace(
        "name = \"api\"",
        "name = \"api\"\nretry_non_idempotent = true",
    ));
    let h = sim(&r);
    h.script("a", [Behaviour::status(503)]);
    assert_eq!(send(&h, &r, Method::Post, "/api/x", &[]).status, 200);
    assert_eq!(
        h.take_transcript(),
        [
            "0ms #1 a POST -> 503 at 10ms",
            "10ms #2 b POST -> 200 at 20ms"
        ]
    );
}

#[test]
fn all_providers_down_gives_upstream_error_problem() {
    let r = router(TWO);
    let h = sim(&r);
    h.upstream("a", Behaviour::Down);
    h.upstream("b", Behaviour::Down);
    let rep = get(&h, &r, "/api/x");
    assert_eq!(rep.status, 502);
    assert_eq!(problem_code(&rep), "upstream-error");
    assert_eq!(
        header(&rep, "content-type"),
        Some("application/problem+json")
    );
    let v: serde_json::Value = serde_json::from_str(&body(&rep)).unwrap();
    assert_eq!(v["type"], "https://mosaic-edge.dev/problems/upstream-error");
    assert_eq!(v["request_id"], "req-1");
}

#[test]
fn no_route_and_bad_targets_are_problems() {
    let r = router(TWO);
    let h = sim(&r);
    let rep = get(&h, &r, "/nope");
    assert_eq!((rep.status, problem_code(&rep).as_str()), (404, "no-route"));
    for t in [
        "//evil.com/api/x",
        "/api/../x",
        "/api/%2e%2e/x",
        "/api/a%2fb",
        "http://evil/api/x",
        "/api/@evil",
    ] {
        let rep = get(&h, &r, t);
        assert_eq!(
            (rep.status, problem_code(&rep).as_str()),
            (400, "bad-target"),
            "{t}"
        );
    }
    assert!(h.requests().is_empty(), "nothing reached an upstream");
}

#[test]
fn upstream_url_and_headers_are_built_from_config_only() {
    let r = router(
        r#"
[[providers]]
id = "gh"
base_url = "https://api.github.example/v3/"
auth = { scheme = "bearer", secret = "env:GH" }
[[routes]]
name = "gh"
match = { path = "/gh/{*rest}" }
upstream_path = "/{*rest}"
providers = ["gh"]
"#,
    );
    let h = sim(&r);
    let rep = send(
        &h,
        &r,
        Method::Get,
        "/gh/repos/a/b?per_page=5",
        &[
            ("Authorization", "Bearer caller"),
            ("Cookie", "s=1"),
            ("X-Mosaic-Key", "k"),
            ("Connection", "x-drop"),
            ("X-Drop", "1"),
            ("Accept", "application/json"),
            ("Host", "evil.example"),
        ],
    );
    assert_eq!(rep.status, 200);
    let a = &h.requests()[0];
    assert_eq!(a.url, "https://api.github.example/v3/repos/a/b?per_page=5");
    let get = |n: &str| {
        a.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        get("authorization"),
        ["Bearer secret-of-GH"],
        "provider credential, never the caller's"
    );
    assert!(
        get("cookie").is_empty()
            && get("x-mosaic-key").is_empty()
            && get("x-drop").is_empty()
            && get("connection").is_empty()
            && get("host").is_empty()
    );
    assert_eq!(get("accept"), ["application/json"]);
    assert_eq!(get("x-forwarded-for"), ["203.0.113.9"]);
    assert_eq!(
        get("forwarded"),
        ["for=203.0.113.9;host=edge.test;proto=https"]
    );
    let tp = get("traceparent");
    assert_eq!(tp.len(), 1);
    assert!(tp[0].starts_with("00-") && tp[0].len() == 55, "{tp:?}");
}

#[test]
fn every_attempt_carries_the_same_headers_and_only_its_own_credential() {
    // the driver lends the request's headers to each attempt and takes them back: a
    // credential that displaced a caller header on one attempt must not leak into, or take
    // that header from, the next
    let r = router(
        r#"
[[providers]]
id = "a"
base_url = "https://a.example"
auth = { scheme = "bearer", secret = "env:A" }
[[providers]]
id = "b"
base_url = "https://b.example"
[[providers]]
id = "c"
base_url = "https://c.example"
auth = { scheme = "bearer", secret = "env:C" }
[[routes]]
name = "api"
match = { path = "/api/{*rest}" }
providers = ["a", "b", "c"]
forward_caller_auth = true
retry = { attempts = 3, on_status = [500] }
"#,
    );
    let h = sim(&r);
    h.upstream("a", Behaviour::status(500));
    h.upstream("b", Behaviour::Down);
    let rep = send(
        &h,
        &r,
        Method::Get,
        "/api/x",
        &[("Authorization", "Bearer caller"), ("Accept", "text/plain")],
    );
    assert_eq!(rep.status, 200, "{:?}", h.take_transcript());
    let attempts = h.requests();
    assert_eq!(attempts.len(), 3);
    let auth = |i: usize| {
        attempts[i]
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("authorization"))
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
    };
    assert_eq!(auth(0), ["Bearer secret-of-A"]);
    assert_eq!(
        auth(1),
        ["Bearer caller"],
        "the caller's header is back for b"
    );
    assert_eq!(auth(2), ["Bearer secret-of-C"]);
    let without_auth = |i: usize| {
        let mut v: Vec<(String, String)> = attempts[i]
            .headers
            .iter()
            .filter(|(n, _)| !n.eq_ignore_ascii_case("authorization"))
            .cloned()
            .collect();
        v.sort();
        v
    };
    assert_eq!(without_auth(0), without_auth(1));
    assert_eq!(without_auth(1), without_auth(2));
    assert_eq!(attempts[0].headers.len(), attempts[2].headers.len());
}

#[test]
fn forwarded_says_which_protocol_the_caller_used() {
    let r = router(TWO);
    for (https, proto) in [(true, "https"), (false, "http")] {
        let h = sim(&r);
        let headers = hdrs(&[]);
        let req = mosaic_core::engine::Request {
            method: Method::Get,
            host: Some("edge.test"),
            target: "/api/x",
            headers: &headers,
            client_ip: Some("2001:db8::1"),
            https,
            locality: mosaic_core::region::Locality::default(),
            id: "req-proto",
        };
        let rep = mosaic_core::sim::block_on(mosaic_core::driver::handle(&h, &r, &req, 1 << 20));
        assert_eq!(rep.status, 200);
        let a = &h.requests()[0];
        let fwd: Vec<&str> = a
            .headers
            .iter()
            .filter(|(n, _)| n == "forwarded")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(
            fwd,
            [format!("for=\"[2001:db8::1]\";host=edge.test;proto={proto}").as_str()]
        );
    }
}

#[test]
fn incoming_traceparent_is_continued() {
    let r = router(TWO);
    let h = sim(&r);
    // the traceparent the attempt made by the latest request carried
    let sent = |given: Option<&str>| {
        let hs: Vec<(&str, &str)> = given.map(|g| ("traceparent", g)).into_iter().collect();
        let before = h.requests().len();
        let _ = send(&h, &r, Method::Get, "/api/x", &hs);
        let a = &h.requests()[before];
        let tp = a.headers.iter().find(|(k, _)| k == "traceparent");
        tp.map(|(_, v)| v.clone()).unwrap_or_default()
    };
    let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let tp = sent(Some(incoming));
    assert!(
        tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "{tp}"
    );
    assert_ne!(tp, incoming, "a new span id");
    assert!(tp.ends_with("-01"));
    assert!(is_traceparent(&tp), "{tp}");
    // the caller's flags are kept
    let tp = sent(Some(
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
    ));
    assert!(
        tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-") && tp.ends_with("-00"),
        "{tp}"
    );
    assert!(is_traceparent(&tp), "{tp}");
    // none (or an invalid one): a fresh trace, sampled
    for given in [None, Some("00-XYZ-00f067aa0ba902b7-01")] {
        let tp = sent(given);
        assert!(is_traceparent(&tp) && tp.ends_with("-01"), "{tp}");
        assert!(!tp.contains("4bf92f3577b34da6"), "{tp}");
    }
}

/// `00-{32 lowercase hex, not all zero}-{16 lowercase hex, not all zero}-{2 hex}`.
fn is_traceparent(t: &str) -> bool {
    let hex = |s: &str| {
        s.bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
    };
    let p: Vec<&str> = t.split('-').collect();
    p.len() == 4
        && p[0] == "00"
        && p[1].len() == 32
        && hex(p[1])
        && p[1].bytes().any(|c| c != b'0')
        && p[2].len() == 16
        && hex(p[2])
        && p[2].bytes().any(|c| c != b'0')
        && p[3].len() == 2
        && hex(p[3])
}

/// Upstream headers written over a reused list (longer or shorter than needed, with junk in
/// its strings) are exactly the headers built afresh, with the same random draws.
#[test]
fn upstream_headers_written_over_a_reused_list_match_fresh_ones() {
    use mosaic_core::engine::{upstream_headers, upstream_headers_into, Request};
    use mosaic_core::region::Locality;
    use mosaic_core::rng::Rng;
    let headers = hdrs(&[
        ("Accept", "application/json"),
        ("Connection", "x-drop"),
        ("x-drop", "1"),
        ("Authorization", "Bearer caller"),
        ("X-Forwarded-For", "198.51.100.1"),
        (
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
        ("X-Mosaic-Key", "k"),
        ("User-Agent", "t/1"),
    ]);
    for (https, ip, forward) in [(true, "203.0.113.9", false), (false, "2001:db8::1", true)] {
        let req = Request {
            method: Method::Get,
            host: Some("edge.test"),
            target: "/api/x",
            headers: &headers,
            client_ip: Some(ip),
            https,
            locality: Locality::default(),
            id: "r",
        };
        let fresh = upstream_headers(&req, forward, &mut Rng::seed(5));
        let junk = |n: usize| -> Vec<(String, String)> {
            (0..n)
                .map(|i| {
                    (
                        format!("junk-name-{i}-{}", "z".repeat(i * 7)),
                        "v".repeat(i * 13),
                    )
                })
                .collect()
        };
        for reused in [
            Vec::new(),
            junk(2),
            junk(fresh.len()),
            junk(fresh.len() + 9),
        ] {
            let mut out = reused;
            upstream_headers_into(&req, forward, &mut Rng::seed(5), &mut out);
            assert_eq!(out, fresh);
        }
        assert!(fresh
            .iter()
            .all(|(n, _)| n != "x-mosaic-key" && n != "x-drop"));
        assert_eq!(fresh.iter().filter(|(n, _)| n == "traceparent").count(), 1);
        assert_eq!(
            fresh
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("authorization")),
            forward
        );
    }
}
