//! Webhook scenarios any host can run (issue 6): genuine deliveries verified and forwarded
//! once as signed CloudEvents, forged ones refused, duplicates marked and not forwarded,
//! oversize bodies refused, a destination that fails then recovers gets every event exactly
//! once, one that stays down fills the dead letters, and the operator replays them.
//!
//! Deliveries use the library's default policy (2 s backoff base, full jitter). The native
//! server and the Workers host (`ctx.wait_until`) retry in the background; Spin runs one attempt
//! before answering and parks the rest in its key-value outbox, which later requests resume —
//! so every wait here ([`settle`]) sends a request while it polls, which changes nothing on the
//! other hosts and lets Spin make progress.

use std::collections::BTreeMap;
use std::time::Duration;

use mosaic_core::webhook::Scheme;

use crate::hooks::{
    admin, chunked_post, cloud_event as ce, config, deliver, github_headers, issue_body as body,
    now, ok_ids, post_hook, settle, start, DEST_SECRET, HOOK_SECRET, MAX_BODY,
};
use crate::host::HostUnderTest;
use crate::mock::{Behaviour, Mock};
use crate::scenarios::{server, Client, Resp};

async fn hook(c: &Client, n: u32, id: &str) -> Resp {
    deliver(c, HOOK_SECRET, n, id).await
}

/// Why a host's `/_mosaic/metrics` does not count what earlier requests did, if it does not.
fn counters_are_per_request(host: &str) -> Option<&'static str> {
    (host == "spin").then_some(
        "each request is a fresh instance on Spin and its counters are the instance's own, so \
         a later request's /_mosaic/metrics does not count the earlier deliveries",
    )
}

/// Whether `/_mosaic/metrics` counts `n` deliveries of endpoint `gh` with `result` (or the host
/// keeps no counters across requests, which it says once).
async fn counted(host: &dyn HostUnderTest, c: &Client, result: &str, n: u32) -> (bool, String) {
    let metrics = admin(c, "GET", "/_mosaic/metrics").await;
    if let Some(why) = counters_are_per_request(host.name()) {
        crate::skip_notice("webhook counters", why);
        return (metrics.status == 200, metrics.body);
    }
    let line = format!("mosaic_webhooks_total{{endpoint=\"gh\",result=\"{result}\"}} {n}");
    (metrics.body.contains(&line), metrics.body)
}

/// A genuine GitHub delivery is acknowledged (200, `accepted`) and forwarded exactly once as a
/// CloudEvent signed with Standard Webhooks (it verifies with the destination's secret and no
/// other); the metric counts it, the log says so, and no secret is logged.
pub async fn genuine_delivery_is_forwarded_once_as_a_signed_cloudevent(host: &dyn HostUnderTest) {
    let dest = Mock::start("dest", Behaviour::ok()).await;
    let (r, c) = start(host, &config(&format!("{}/events", dest.url()), 3));
    let resp = hook(&c, 7, "d-genuine-1").await;
    assert_eq!(resp.status, 200, "{resp:?}\n{}", r.logs());
    let ack: serde_json::Value = serde_json::from_str(&resp.body).expect("ack JSON");
    assert_eq!(ack["status"], "accepted");
    assert_eq!(ack["id"], "d-genuine-1");
    assert_eq!(ack["destinations"], 1);
    assert!(resp.header("x-mosaic-duplicate").is_none());

    let arrived = settle(&c, Duration::from_secs(8), || async { dest.hits() >= 1 }).await;
    assert!(arrived, "not forwarded:\n{}", r.logs());
    tokio::time::sleep(Duration::from_millis(300)).await;
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
    assert_eq!(ev["id"], "d-genuine-1");
    assert_eq!(ev["type"], "com.github.issues.opened");
    assert_eq!(ev["mosaicprovider"], "github");
    assert_eq!(ev["mosaictenant"], "default");
    assert_eq!(ev["mosaicdelivery"], "d-genuine-1");
    assert_eq!(ev["datacontenttype"], "application/json");
    assert_eq!(ev["data"]["issue"]["number"], 7);
    assert!(ev["source"].as_str().is_some_and(|s| !s.is_empty()), "{ev}");
    assert!(
        ev["time"].as_str().is_some_and(|s| s.ends_with('Z')),
        "{ev}"
    );
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
    let forged = mosaic_core::webhook::verify(
        &Scheme::StandardWebhooks,
        &[b"whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".as_slice()],
        &seen.headers,
        &seen.body,
        None,
        now(),
        None,
    );
    assert!(forged.is_err(), "verifies with any secret");

    let (ok, metrics) = counted(host, &c, "accepted", 1).await;
    assert!(ok, "{metrics}");
    let logged = settle(&c, Duration::from_secs(5), || {
        let logs = r.logs();
        async move { logs.contains("\"outcome\":\"delivered\"") }
    })
    .await;
    let logs = r.logs();
    assert!(logged, "{logs}");
    assert!(logs.contains("webhook delivery received"), "{logs}");
    assert!(
        !logs.contains(HOOK_SECRET) && !logs.contains(DEST_SECRET),
        "{logs}"
    );
}

/// A delivery signed with another secret, a genuine signature over another body and an
/// unsigned one are 401 problem+json (`webhook-rejected`) that never show a secret; an unknown
/// endpoint is 404 and gets no metric; only the genuine delivery is forwarded.
pub async fn forged_delivery_is_401_problem_without_the_secret(host: &dyn HostUnderTest) {
    let dest = Mock::start("dest", Behaviour::ok()).await;
    let (r, c) = start(host, &config(&format!("{}/events", dest.url()), 3));
    let b = body(1);
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
    let h = github_headers(HOOK_SECRET, &b, "d-forged-2");
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
    assert!(!resp.body.contains(HOOK_SECRET));
    // the genuine one, and an endpoint that does not exist
    let resp = hook(&c, 1, "d-x").await;
    assert_eq!(resp.status, 200, "{resp:?}");
    let resp = c.send("POST", "/hooks/nope", &[], body(1)).await;
    assert_eq!(resp.status, 404, "{resp:?}");

    let (ok, metrics) = counted(host, &c, "rejected", 3).await;
    assert!(ok, "{metrics}");
    assert!(!metrics.contains("endpoint=\"nope\""));
    let arrived = settle(&c, Duration::from_secs(8), || async { dest.hits() >= 1 }).await;
    assert!(arrived, "{}", r.logs());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(dest.hits(), 1, "only the genuine delivery is forwarded");
    assert_eq!(ce(&dest.seen()[0])["id"], "d-x");
    let logs = r.logs();
    assert!(
        !logs.contains(HOOK_SECRET) && !logs.contains("not-the-secret"),
        "{logs}"
    );
}

/// The same delivery again, and the same body under a fresh delivery id, are 200 marked
/// `x-mosaic-duplicate: true` (`duplicate`), counted, and not forwarded again.
pub async fn duplicate_delivery_is_200_marked_and_not_forwarded_again(host: &dyn HostUnderTest) {
    let dest = Mock::start("dest", Behaviour::ok()).await;
    let (r, c) = start(host, &config(&format!("{}/events", dest.url()), 3));
    let first = hook(&c, 3, "d-dup").await;
    assert_eq!(first.status, 200, "{first:?}\n{}", r.logs());
    let again = hook(&c, 3, "d-dup").await;
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(again.header("x-mosaic-duplicate"), Some("true"));
    let ack: serde_json::Value = serde_json::from_str(&again.body).expect("JSON");
    assert_eq!(ack["status"], "duplicate");
    let replayed = hook(&c, 3, "d-dup-fresh-id").await;
    assert_eq!(
        replayed.header("x-mosaic-duplicate"),
        Some("true"),
        "{replayed:?}"
    );
    let arrived = settle(&c, Duration::from_secs(8), || async { dest.hits() >= 1 }).await;
    assert!(arrived, "{}", r.logs());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(dest.hits(), 1, "a duplicate was forwarded");
    let (ok, metrics) = counted(host, &c, "duplicate", 2).await;
    assert!(ok, "{metrics}");
}

/// A delivery over the endpoint's body limit is 413 problem+json, with a Content-Length and
/// chunked (read up to the limit only); nothing is forwarded.
pub async fn oversize_delivery_is_413(host: &dyn HostUnderTest) {
    let dest = Mock::start("dest", Behaviour::ok()).await;
    let (r, c) = start(host, &config(&format!("{}/events", dest.url()), 3));
    let mut big = body(1);
    big.truncate(big.len() - 1);
    big.extend_from_slice(format!(",\"pad\":\"{}\"}}", "x".repeat(MAX_BODY)).as_bytes());
    let resp = post_hook(
        &c,
        "/hooks/gh",
        &github_headers(HOOK_SECRET, &big, "d-big"),
        big.clone(),
    )
    .await;
    assert_eq!(resp.status, 413, "{resp:?}\n{}", r.logs());
    assert_eq!(
        resp.header("content-type"),
        Some("application/problem+json")
    );
    let status = chunked_post(
        r.port(),
        "/hooks/gh",
        &github_headers(HOOK_SECRET, &big, "d-big-2"),
        &big,
    )
    .await;
    assert_eq!(status.as_deref(), Some("413"), "{}", r.logs());
    let (ok, metrics) = counted(host, &c, "too-large", 2).await;
    assert!(ok, "{metrics}");
    assert_eq!(dest.hits(), 0);
}

/// A destination whose first attempt fails (503) gets every event exactly once: the failed one
/// is retried after the backoff, the log shows the second attempt.
pub async fn a_destination_that_fails_then_recovers_gets_every_event_exactly_once(
    host: &dyn HostUnderTest,
) {
    let dest = Mock::start("dest", Behaviour::ok()).await;
    // the first attempt (whichever event it carries) fails with 503
    dest.script([Behaviour::status(503)]);
    let (r, c) = start(host, &config(&format!("{}/events", dest.url()), 8));
    for (n, id) in [(1, "d-r-1"), (2, "d-r-2")] {
        let resp = hook(&c, n, id).await;
        assert_eq!(resp.status, 200, "{resp:?}\n{}", r.logs());
    }
    let done = settle(&c, Duration::from_secs(12), || async { dest.hits() >= 3 }).await;
    assert!(done, "hits {}:\n{}", dest.hits(), r.logs());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(dest.hits(), 3, "{:?}", dest.seen());
    assert_eq!(
        ok_ids(&dest),
        BTreeMap::from([(String::from("d-r-1"), 1), (String::from("d-r-2"), 1)]),
        "every event exactly once"
    );
    let retried = settle(&c, Duration::from_secs(3), || {
        let logs = r.logs();
        async move { logs.contains("\"attempts\":2") }
    })
    .await;
    assert!(retried, "{}", r.logs());
}

/// [`dead_letters_and_replay_with_store`] with the host's own store.
pub async fn a_destination_that_stays_down_fills_the_dead_letters_and_replay_delivers(
    host: &dyn HostUnderTest,
) {
    dead_letters_and_replay_with_store(host, "").await;
}

/// A destination that stays down (503 to both attempts) fills the dead-letter list: listed
/// with its fields, filtered by endpoint, behind the admin token; once the destination is back
/// the operator replays it (the id percent-encoded): 202, delivered exactly once, gone from the
/// list, a second replay 404. `store` is a `[store]` section (empty: the host's own).
pub async fn dead_letters_and_replay_with_store(host: &dyn HostUnderTest, store: &str) {
    let dest = Mock::start("dest", Behaviour::status(503)).await;
    let (r, c) = start(
        host,
        &format!("{store}\n{}", config(&format!("{}/events", dest.url()), 2)),
    );
    let resp = hook(&c, 5, "d-dead-1").await;
    assert_eq!(resp.status, 200, "{resp:?}\n{}", r.logs());
    let listed = settle(&c, Duration::from_secs(10), || async {
        admin(&c, "GET", "/_mosaic/hooks/dead")
            .await
            .body
            .contains("d-dead-1")
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
    assert_eq!(l["id"], "gh:d-dead-1:0");
    assert_eq!(l["endpoint"], "gh");
    assert_eq!(l["event_id"], "d-dead-1");
    assert_eq!(l["type"], "com.github.issues.opened");
    assert_eq!(l["attempts"], 2);
    assert_eq!(l["last_error"], "destination answered 503");
    let mine = admin(&c, "GET", "/_mosaic/hooks/dead?endpoint=gh").await;
    assert!(mine.body.contains("gh:d-dead-1:0"), "{mine:?}");
    let other = admin(&c, "GET", "/_mosaic/hooks/dead?endpoint=other").await;
    assert_eq!(other.status, 200);
    assert!(!other.body.contains("d-dead-1"), "{}", other.body);
    let open = c.get("/_mosaic/hooks/dead").await;
    assert_eq!(open.status, 401, "{open:?}");
    let open = c
        .send(
            "POST",
            "/_mosaic/hooks/dead/gh%3Ad-dead-1%3A0/replay",
            &[],
            Vec::new(),
        )
        .await;
    assert_eq!(open.status, 401, "{open:?}");

    dest.set(Behaviour::ok());
    let replay = admin(&c, "POST", "/_mosaic/hooks/dead/gh%3Ad-dead-1%3A0/replay").await;
    assert_eq!(replay.status, 202, "{replay:?}\n{}", r.logs());
    let delivered = settle(&c, Duration::from_secs(8), || async {
        ok_ids(&dest).contains_key("d-dead-1")
    })
    .await;
    assert!(delivered, "{}", r.logs());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(ok_ids(&dest).get("d-dead-1"), Some(&1));
    assert_eq!(dest.hits(), 3);
    let after = admin(&c, "GET", "/_mosaic/hooks/dead").await;
    assert!(!after.body.contains("d-dead-1"), "{}", after.body);
    let twice = admin(&c, "POST", "/_mosaic/hooks/dead/gh%3Ad-dead-1%3A0/replay").await;
    assert_eq!(twice.status, 404, "{twice:?}");
    let logs = r.logs();
    assert!(logs.contains("\"outcome\":\"dead-lettered\""), "{logs}");
    assert!(
        !logs.contains(HOOK_SECRET) && !logs.contains(DEST_SECRET),
        "{logs}"
    );
}

/// Notion's handshake (its first POST carries a `verification_token`) is answered 200 without
/// echoing the token, which is shown to the operator in a warning of the log, and nothing is
/// forwarded.
pub async fn notion_handshake_token_is_shown_to_the_operator_and_not_forwarded(
    host: &dyn HostUnderTest,
) {
    let dest = Mock::start("dest", Behaviour::ok()).await;
    let cfg = format!(
        "{}[[webhooks]]\nname = \"notion\"\nscheme = \"notion\"\ndestinations = [{{ url = \"{}/n\", allow_private = true }}]\n",
        server(""),
        dest.url()
    );
    let (r, c) = start(host, &cfg);
    let resp = c
        .send(
            "POST",
            "/hooks/notion",
            &[("content-type", "application/json")],
            br#"{"verification_token":"secret_handshake_tok_123"}"#.to_vec(),
        )
        .await;
    assert_eq!(resp.status, 200, "{resp:?}\n{}", r.logs());
    assert!(
        !resp.body.contains("secret_handshake_tok_123"),
        "echoed to the sender"
    );
    let shown = settle(&c, Duration::from_secs(5), || async {
        r.logs().contains("secret_handshake_tok_123")
    })
    .await;
    assert!(shown, "{}", r.logs());
    let logs = r.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("secret_handshake_tok_123"))
        .unwrap_or_default();
    assert!(
        line.contains("mosaic::operator") && line.to_ascii_uppercase().contains("WARN"),
        "{line}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(dest.hits(), 0);
}
