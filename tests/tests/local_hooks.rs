//! Webhooks end to end against the local `mosaic` binary: real deliveries to `/hooks/{name}`,
//! mock destinations on 127.0.0.1, the dead-letter admin API, and the `webhook` and `key`
//! commands.
//!
//! Build the binary first (`cargo build -p mosaic-local`). Retries use the library's default
//! delivery policy (2 s base, full jitter), so the retry tests stay within a few seconds by
//! failing only one or two attempts.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use mosaic_core::webhook::Scheme;
use mosaic_tests::hooks::{
    self, admin, cloud_event as ce, github_headers, issue_body as body, now, ok_ids, post_hook,
};
use mosaic_tests::host::{mosaic_binary, tempdir, LocalBinary, LocalRouter, Redis, Running};
use mosaic_tests::mock::{Behaviour, Mock};
use mosaic_tests::scenarios::{eventually, provider, server, Client, Resp};

/// The endpoint's GitHub secret (bound to `env:MOSAIC_TEST_HOOK_SECRET`).
const HOOK_SECRET: &str = "gh-hook-secret-3f9a1c";
/// The destination's Standard Webhooks signing secret (`env:MOSAIC_TEST_DEST_SECRET`).
const DEST_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const MAX_BODY: usize = 4096;

/// A config with one GitHub endpoint `gh` forwarding to `dest` (signed, `attempts` attempts).
fn config(dest: &str, attempts: u32) -> String {
    format!(
        "{}[[webhooks]]\nname = \"gh\"\nscheme = \"github\"\nsecrets = [\"env:MOSAIC_TEST_HOOK_SECRET\"]\nmax_body_bytes = {MAX_BODY}\ndestinations = [{{ url = \"{dest}\", allow_private = true, sign_secret = \"env:MOSAIC_TEST_DEST_SECRET\", attempts = {attempts} }}]\n",
        server("")
    )
}

async fn deliver(c: &Client, n: u32, id: &str) -> Resp {
    hooks::deliver(c, HOOK_SECRET, n, id).await
}

fn start(cfg: &str) -> LocalRouter {
    LocalBinary::new()
        .spawn(
            cfg,
            &[
                ("MOSAIC_TEST_HOOK_SECRET", HOOK_SECRET),
                ("MOSAIC_TEST_DEST_SECRET", DEST_SECRET),
            ],
        )
        .unwrap_or_else(|e| panic!("mosaic did not start: {e}\nconfig:\n{cfg}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn genuine_github_delivery_is_forwarded_once_as_a_signed_cloudevent() {
    let dest = Mock::start("dest", Behaviour::ok()).await;
    let r = start(&config(&format!("{}/events", dest.url()), 3));
    let c = Client::new(&r.base_url());
    let resp = deliver(&c, 7, "d-genuine-1").await;
    assert_eq!(resp.status, 200, "{resp:?}\n{}", r.logs());
    let ack: serde_json::Value = serde_json::from_str(&resp.body).expect("ack JSON");
    assert_eq!(ack["status"], "accepted");
    assert_eq!(ack["id"], "d-genuine-1");
    assert_eq!(ack["destinations"], 1);
    assert!(resp.header("x-mosaic-duplicate").is_none());

    let arrived = eventually(Duration::from_secs(5), || async { dest.hits() >= 1 }).await;
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
    // the forward is signed with Standard Webhooks and verifies with the destination's secret
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

    let metrics = admin(&c, "GET", "/_mosaic/metrics").await;
    assert!(
        metrics
            .body
            .contains("mosaic_webhooks_total{endpoint=\"gh\",result=\"accepted\"} 1"),
        "{}",
        metrics.body
    );
    let logs = r.logs();
    assert!(logs.contains("webhook delivery received"), "{logs}");
    assert!(logs.contains("\"outcome\":\"delivered\""), "{logs}");
    assert!(!logs.contains(HOOK_SECRET) && !logs.contains(DEST_SECRET));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_delivery_is_401_problem_without_the_secret() {
    let dest = Mock::start("dest", Behaviour::ok()).await;
    let r = start(&config(&format!("{}/events", dest.url()), 3));
    let c = Client::new(&r.base_url());
    let b = body(1);
    // signed with the wrong secret
    let resp = post_hook(
        &c,
        "/hooks/gh",
        &github_headers("not-the-secret", &b, "d-forged"),
        b.clone(),
    )
    .await;
    assert_eq!(resp.status, 401, "{resp:?}");
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
    // an endpoint that does not exist
    let resp = deliver(&c, 1, "d-x").await;
    assert_eq!(resp.status, 200);
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
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(dest.hits(), 1, "only the genuine delivery is forwarded");
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
    let first = deliver(&c, 3, "d-dup").await;
    assert_eq!(first.status, 200, "{first:?}");
    let again = deliver(&c, 3, "d-dup").await;
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(again.header("x-mosaic-duplicate"), Some("true"));
    let ack: serde_json::Value = serde_json::from_str(&again.body).expect("JSON");
    assert_eq!(ack["status"], "duplicate");
    // the same captured body replayed under a fresh delivery id is a duplicate too
    let replayed = deliver(&c, 3, "d-dup-fresh-id").await;
    assert_eq!(
        replayed.header("x-mosaic-duplicate"),
        Some("true"),
        "{replayed:?}"
    );

    let arrived = eventually(Duration::from_secs(5), || async { dest.hits() >= 1 }).await;
    assert!(arrived, "{}", r.logs());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(dest.hits(), 1, "a duplicate was forwarded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_delivery_is_413() {
    let dest = Mock::start("dest", Behaviour::ok()).await;
    let r = start(&config(&format!("{}/events", dest.url()), 3));
    let c = Client::new(&r.base_url());
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
    assert_eq!(resp.status, 413, "{resp:?}");
    assert_eq!(
        resp.header("content-type"),
        Some("application/problem+json")
    );
    // without a Content-Length (chunked): the body is read up to the limit only
    let status = chunked_post(
        r.port,
        "/hooks/gh",
        &github_headers(HOOK_SECRET, &big, "d-big-2"),
        &big,
    )
    .await;
    assert_eq!(status.as_deref(), Some("413"), "{}", r.logs());
    let metrics = admin(&c, "GET", "/_mosaic/metrics").await;
    assert!(
        metrics
            .body
            .contains("mosaic_webhooks_total{endpoint=\"gh\",result=\"too-large\"} 2"),
        "{}",
        metrics.body
    );
    assert_eq!(dest.hits(), 0);
}

/// POSTs `body` with `Transfer-Encoding: chunked` over a raw connection; the answer's status.
async fn chunked_post(
    port: u16,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let mut head =
        format!("POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ntransfer-encoding: chunked\r\n");
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = s.write_all(head.as_bytes()).await;
    for chunk in body.chunks(512) {
        // the server may answer and close before the last chunk: a failed write is expected
        if s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .await
            .is_err()
            || s.write_all(chunk).await.is_err()
            || s.write_all(b"\r\n").await.is_err()
        {
            break;
        }
    }
    let _ = s.write_all(b"0\r\n\r\n").await;
    let mut buf = vec![0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    text.split(' ').nth(1).map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_that_fails_then_recovers_gets_every_event_exactly_once() {
    let dest = Mock::start("dest", Behaviour::ok()).await;
    // the first two attempts (whichever events they carry) fail with 503
    dest.script([Behaviour::status(503), Behaviour::status(503)]);
    let r = start(&config(&format!("{}/events", dest.url()), 8));
    let c = Client::new(&r.base_url());
    for (n, id) in [(1, "d-r-1"), (2, "d-r-2")] {
        let resp = deliver(&c, n, id).await;
        assert_eq!(resp.status, 200, "{resp:?}");
    }
    // two failures then one success per event; retries wait up to 2 s then 4 s (full jitter)
    let done = eventually(Duration::from_secs(12), || async { dest.hits() >= 4 }).await;
    assert!(done, "hits {}:\n{}", dest.hits(), r.logs());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(dest.hits(), 4, "{:?}", dest.seen());
    let ids = ok_ids(&dest);
    assert_eq!(
        ids,
        BTreeMap::from([(String::from("d-r-1"), 1), (String::from("d-r-2"), 1)]),
        "every event exactly once"
    );
    let retried = r.logs().contains("\"attempts\":2") || r.logs().contains("\"attempts\":3");
    assert!(retried, "{}", r.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_that_stays_down_fills_the_dead_letters_and_replay_delivers() {
    dead_letters_and_replay("").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_and_replay_with_the_file_store() {
    let db = tempdir().join("hooks.redb");
    dead_letters_and_replay(&format!(
        "[store]\nkind = \"file\"\npath = \"{}\"\n",
        db.display()
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_and_replay_with_the_redis_store() {
    let redis = Redis::start().expect("redis-server (apt-get install redis-server)");
    dead_letters_and_replay(&format!(
        "[store]\nkind = \"redis\"\nurl = \"{}\"\n",
        redis.url()
    ))
    .await;
}

/// A destination that stays down fills the dead-letter list; the operator replays once it is
/// up. `store` is a `[store]` section (empty: memory).
async fn dead_letters_and_replay(store: &str) {
    let dest = Mock::start("dest", Behaviour::status(503)).await;
    let r = start(&format!(
        "{store}\n{}",
        config(&format!("{}/events", dest.url()), 2)
    ));
    let c = Client::new(&r.base_url());
    let resp = deliver(&c, 5, "d-dead-1").await;
    assert_eq!(resp.status, 200, "{resp:?}");
    let listed = eventually(Duration::from_secs(8), || async {
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
    // filtered by endpoint
    let mine = admin(&c, "GET", "/_mosaic/hooks/dead?endpoint=gh").await;
    assert!(mine.body.contains("gh:d-dead-1:0"));
    let other = admin(&c, "GET", "/_mosaic/hooks/dead?endpoint=other").await;
    assert_eq!(other.status, 200);
    assert!(!other.body.contains("d-dead-1"), "{}", other.body);
    // the admin token is required
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

    // the destination comes back; the operator replays (the id percent-encoded)
    dest.set(Behaviour::ok());
    let replay = admin(&c, "POST", "/_mosaic/hooks/dead/gh%3Ad-dead-1%3A0/replay").await;
    assert_eq!(replay.status, 202, "{replay:?}");
    let delivered = eventually(Duration::from_secs(5), || async {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notion_handshake_token_is_shown_to_the_operator_and_not_forwarded() {
    let dest = Mock::start("dest", Behaviour::ok()).await;
    let cfg = format!(
        "{}[[webhooks]]\nname = \"notion\"\nscheme = \"notion\"\ndestinations = [{{ url = \"{}/n\", allow_private = true }}]\n",
        server(""),
        dest.url()
    );
    let r = start(&cfg);
    let c = Client::new(&r.base_url());
    let resp = c
        .send(
            "POST",
            "/hooks/notion",
            &[("content-type", "application/json")],
            br#"{"verification_token":"secret_handshake_tok_123"}"#.to_vec(),
        )
        .await;
    assert_eq!(resp.status, 200, "{resp:?}");
    assert!(
        !resp.body.contains("secret_handshake_tok_123"),
        "echoed to the sender"
    );
    let shown = eventually(Duration::from_secs(3), || async {
        r.logs().contains("secret_handshake_tok_123")
    })
    .await;
    assert!(shown, "{}", r.logs());
    let line = r
        .logs()
        .lines()
        .find(|l| l.contains("secret_handshake_tok_123"))
        .unwrap_or_default()
        .to_string();
    assert!(
        line.contains("mosaic::operator") && line.contains("WARN"),
        "{line}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(dest.hits(), 0);
}

// ---------------------------------------------------------------------------------------------
// The command line
// ---------------------------------------------------------------------------------------------

fn mosaic(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(mosaic_binary())
        .args(args)
        .output()
        .expect("run mosaic");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn webhook_sign_then_verify_and_the_exit_codes() {
    let dir = tempdir();
    let f = dir.join("body.json");
    std::fs::write(&f, body(9)).expect("write");
    let file = f.to_string_lossy().to_string();
    for (scheme, secret, now) in [
        ("github", "s3cret", None),
        ("standard-webhooks", DEST_SECRET, Some("1700000000")),
        ("stripe", "whsec_stripe", Some("1700000000")),
    ] {
        let mut args = vec![
            "webhook",
            "sign",
            "--scheme",
            scheme,
            "--secret",
            secret,
            "--body-file",
            &file,
        ];
        if let Some(n) = now {
            args.extend(["--now", n]);
        }
        let (code, out, err) = mosaic(&args);
        assert_eq!(code, 0, "{scheme}: {err}");
        let lines: Vec<&str> = out.lines().filter(|l| !l.is_empty()).collect();
        assert!(!lines.is_empty(), "{scheme}: no headers");
        assert!(!out.contains(secret), "{scheme}: the secret was printed");
        let mut v = vec![
            "webhook",
            "verify",
            "--scheme",
            scheme,
            "--secret",
            secret,
            "--body-file",
            &file,
        ];
        for l in &lines {
            v.extend(["--header", l]);
        }
        if let Some(n) = now {
            v.extend(["--now", n]);
        }
        let (code, out, err) = mosaic(&v);
        assert_eq!(code, 0, "{scheme}: genuine refused: {out}{err}");
        assert!(out.contains("genuine"), "{out}");
        // another secret: not genuine, exit 1 with the reason, the secret not echoed
        let mut wrong = v.clone();
        wrong[5] = "another-secret";
        if scheme == "standard-webhooks" {
            wrong[5] = "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        }
        let (code, out, err) = mosaic(&wrong);
        assert_eq!(code, 1, "{scheme}: {out}{err}");
        assert!(err.contains("not genuine"), "{err}");
        assert!(!err.contains(secret) && !out.contains(secret));
        // late: outside the replay window of a timestamped scheme
        if now.is_some() {
            let mut late = v.clone();
            let last = late.len() - 1;
            late[last] = "1700009999";
            let (code, _, err) = mosaic(&late);
            assert_eq!(code, 1, "{scheme}: {err}");
        }
    }
    // a tampered body
    let (_, out, _) = mosaic(&[
        "webhook",
        "sign",
        "--scheme",
        "github",
        "--secret",
        "s3cret",
        "--body-file",
        &file,
    ]);
    let tampered = dir.join("tampered.json");
    std::fs::write(&tampered, body(10)).expect("write");
    let mut v = vec![
        "webhook".to_string(),
        "verify".into(),
        "--scheme".into(),
        "github".into(),
        "--secret".into(),
        "s3cret".into(),
        "--body-file".into(),
        tampered.to_string_lossy().to_string(),
    ];
    for l in out.lines().filter(|l| !l.is_empty()) {
        v.extend(["--header".to_string(), l.to_string()]);
    }
    let args: Vec<&str> = v.iter().map(String::as_str).collect();
    let (code, _, err) = mosaic(&args);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not genuine") && err.contains('['), "{err}");
    // cannot run: exit 2
    let missing = dir.join("missing.json").to_string_lossy().to_string();
    let (code, _, err) = mosaic(&[
        "webhook",
        "sign",
        "--scheme",
        "github",
        "--secret",
        "s",
        "--body-file",
        &missing,
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot read"), "{err}");
    let (code, _, err) = mosaic(&[
        "webhook",
        "verify",
        "--scheme",
        "github",
        "--secret",
        "s",
        "--body-file",
        &missing,
        "--header",
        "X-Hub-Signature-256: sha256=00",
    ]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = mosaic(&[
        "webhook",
        "sign",
        "--scheme",
        "nosuch",
        "--secret",
        "s",
        "--body-file",
        &file,
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("unknown scheme"), "{err}");
    let (code, _, err) = mosaic(&[
        "webhook",
        "verify",
        "--scheme",
        "nosuch",
        "--secret",
        "s",
        "--body-file",
        &file,
        "--header",
        "X: y",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("unknown scheme"), "{err}");
    let (code, _, err) = mosaic(&[
        "webhook",
        "verify",
        "--scheme",
        "github",
        "--secret",
        "s",
        "--body-file",
        &file,
        "--header",
        "no colon here",
    ]);
    assert_eq!(code, 2, "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_new_prints_a_key_whose_hash_line_validates_and_authenticates() {
    let (code, out, err) = mosaic(&["key", "new", "--tenant", "team-a"]);
    assert_eq!(code, 0, "{err}");
    let key = out.lines().next().unwrap_or_default().to_string();
    assert!(key.starts_with("mk_") && key.len() == 3 + 43, "{out}");
    let hash_line = out
        .lines()
        .find(|l| l.starts_with("keys = [\"sha256:"))
        .unwrap_or_else(|| panic!("no hash line in:\n{out}"));
    let hash = hash_line
        .trim_start_matches("keys = [\"")
        .trim_end_matches("\"]");
    assert!(
        mosaic_core::config::parse_key_hash(hash).is_some(),
        "{hash}"
    );
    let (_, again, _) = mosaic(&["key", "new"]);
    assert_ne!(again.lines().next(), Some(key.as_str()), "keys repeat");
    assert!(again.lines().any(|l| l.starts_with("keys = [\"sha256:")));

    // the printed snippet, pasted into a config, validates and authenticates the key
    let up = Mock::start("up", Behaviour::ok()).await;
    let snippet: String = out
        .lines()
        .filter(|l| !l.starts_with("mk_"))
        .map(|l| format!("{l}\n"))
        .collect();
    let cfg = format!(
        "{}{}{snippet}\n[[routes]]\nname = \"r\"\nmatch = {{ path = \"/{{*rest}}\" }}\nproviders = [\"up\"]\n",
        server(""),
        provider("up", &up.url())
    );
    let dir = tempdir();
    let path = dir.join("keys.toml");
    std::fs::write(&path, &cfg).expect("write");
    let (code, out, err) = mosaic(&["check", "--config", &path.to_string_lossy()]);
    assert_eq!(code, 0, "{out}{err}\n{cfg}");
    assert!(out.contains("1 tenant(s)"), "{out}");
    let r = LocalBinary::new().spawn(&cfg, &[]).expect("start");
    let c = Client::new(&r.base_url());
    let denied = c.get("/a").await;
    assert_eq!(denied.status, 401, "{denied:?}");
    let ok = c
        .send(
            "GET",
            "/a",
            &[("authorization", &format!("Bearer {key}"))],
            Vec::new(),
        )
        .await;
    assert_eq!((ok.status, ok.from()), (200, "up"), "{ok:?}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_example_config_with_its_webhook_endpoint_checks() {
    let (code, out, err) = mosaic(&[
        "check",
        "--config",
        concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/mosaic.toml"),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("1 webhook endpoint(s)"), "{out}");
}
