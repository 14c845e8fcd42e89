//! The end-to-end suite against the local `mosaic` binary: real servers on 127.0.0.1.
//!
//! Build the binary first (`cargo build -p mosaic-local`); the harness finds it next to this
//! test executable (or at `$MOSAIC_BIN`).

use std::process::Command;
use std::time::Duration;

use mosaic_tests::host::{mosaic_binary, LocalBinary, Redis, Running, ADMIN_TOKEN};
use mosaic_tests::mock::{Behaviour, Mock};
use mosaic_tests::scenarios::{self, provider, server, Client};

fn local() -> LocalBinary {
    LocalBinary::new()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_on_connection_refused() {
    scenarios::failover_on_connection_refused(&local()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_on_5xx() {
    scenarios::failover_on_5xx(&local()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_on_timeout() {
    scenarios::failover_on_timeout(&local()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaker_opens_probes_and_recovers() {
    scenarios::breaker_opens_probes_and_recovers(&local()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured() {
    scenarios::retry_after_is_honoured(&local()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_hit() {
    scenarios::cache_hit(&local()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_while_revalidate() {
    scenarios::stale_while_revalidate(&local()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_if_error() {
    scenarios::stale_if_error(&local()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_collapse() {
    scenarios::concurrent_misses_collapse(&local()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_retry_safety() {
    scenarios::post_retry_safety(&local()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_and_credentials() {
    scenarios::headers_and_credentials(&local()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_and_admin() {
    scenarios::limits_and_admin(&local()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_good_and_bad() {
    scenarios::reload_good_and_bad(&local()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_state_and_cache_through_redis() {
    let redis = Redis::start().expect("redis-server (apt-get install redis-server)");
    scenarios::shared_state_and_cache(&local(), &redis.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_and_sigterm_finishes_in_flight_requests() {
    let one = Mock::start("one", Behaviour::slow(600)).await;
    let two = Mock::start("two", Behaviour::ok()).await;
    let cfg = |p: &str| {
        format!(
            "{}{}{}[[routes]]\nname = \"r\"\nmatch = {{ path = \"/{{*rest}}\" }}\nproviders = [\"{p}\"]\n",
            server("shutdown_grace_ms = 5000"),
            provider("one", &one.url()),
            provider("two", &two.url())
        )
    };
    let mut r = local().spawn(&cfg("two"), &[]).expect("start");
    let c = Client::new(&r.base_url());
    assert_eq!(c.get("/a").await.from(), "two");
    r.write_config(&cfg("one")).expect("write config");
    r.hangup();
    let reloaded = scenarios::eventually(Duration::from_secs(5), || {
        let c = c.clone();
        async move {
            let s = c.state().await;
            s["generation"] == 2
        }
    })
    .await;
    assert!(reloaded, "SIGHUP did not reload:\n{}", r.logs());
    // a slow request in flight when SIGTERM arrives still completes
    let c2 = c.clone();
    let in_flight = tokio::spawn(async move { c2.get("/slow").await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let status = tokio::task::spawn_blocking(move || {
        let s = r.terminate(Duration::from_secs(8));
        (s, r.logs())
    })
    .await
    .expect("terminate");
    let resp = in_flight.await.expect("in-flight request");
    assert_eq!(
        (resp.status, resp.from()),
        (200, "one"),
        "the in-flight request was cut: {resp:?}"
    );
    assert!(
        status.0.is_some_and(|s| s.success()),
        "mosaic did not exit cleanly: {:?}\n{}",
        status.0,
        status.1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_store_persists_breaker_state_across_restarts() {
    let bad = Mock::start("bad", Behaviour::status(500)).await;
    let ok = Mock::start("ok", Behaviour::ok()).await;
    let db = mosaic_tests::host::tempdir().join("state.redb");
    let cfg = format!(
        "{}[store]\nkind = \"file\"\npath = \"{}\"\n\n{}{}[[routes]]\nname = \"r\"\nmatch = {{ path = \"/{{*rest}}\" }}\nproviders = [\"bad\", \"ok\"]\nretry = {{ on_status = [500] }}\nbreaker = {{ min_calls = 2, size = 4, open_ms = 60000, open_max_ms = 60000 }}\n",
        server(""),
        db.display(),
        provider("bad", &bad.url()),
        provider("ok", &ok.url())
    );
    let mut first = local().spawn(&cfg, &[]).expect("start");
    let c = Client::new(&first.base_url());
    for _ in 0..3 {
        assert_eq!(c.get("/a").await.from(), "ok");
    }
    assert_eq!(c.breaker("r", "bad").await, "open");
    let exited = tokio::task::spawn_blocking(move || first.terminate(Duration::from_secs(8)))
        .await
        .expect("terminate");
    assert!(exited.is_some_and(|s| s.success()));
    let second = local().spawn(&cfg, &[]).expect("restart");
    let c = Client::new(&second.base_url());
    assert_eq!(
        c.breaker("r", "bad").await,
        "open",
        "the breaker state survived the restart"
    );
    assert_eq!(c.get("/a").await.from(), "ok");
    assert_eq!(bad.hits(), 2);
}

/// `[server] workers`: that many worker threads serve the connections, the state they decide
/// with is one, and many connections at once are all served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_threads_share_one_state_and_serve_concurrent_connections() {
    let bad = Mock::start("bad", Behaviour::status(500)).await;
    let ok = Mock::start("ok", Behaviour::ok()).await;
    let cfg = format!(
        "{}{}{}[[routes]]\nname = \"r\"\nmatch = {{ path = \"/{{*rest}}\" }}\nproviders = [\"bad\", \"ok\"]\nretry = {{ on_status = [500] }}\nbreaker = {{ min_calls = 2, size = 4, open_ms = 60000, open_max_ms = 60000 }}\n",
        server("workers = 3"),
        provider("bad", &bad.url()),
        provider("ok", &ok.url())
    );
    let r = local().spawn(&cfg, &[]).expect("start");
    #[cfg(target_os = "linux")]
    {
        let pid = r.pid().expect("running");
        let workers = std::fs::read_dir(format!("/proc/{pid}/task"))
            .expect("threads")
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .filter(|name| name.starts_with("mosaic-worker-"))
            .count();
        assert_eq!(workers, 3, "one thread per configured worker");
    }
    // a new connection per request: connections are spread over the workers, and a failure
    // seen by one worker counts for all (the breaker opens after 2, wherever they happened)
    for _ in 0..9 {
        let c = Client::new(&r.base_url());
        let resp = c.get("/a").await;
        assert_eq!((resp.status, resp.from()), (200, "ok"), "{resp:?}");
    }
    assert_eq!(bad.hits(), 2, "one breaker across the worker threads");
    // many connections at once
    let base = r.base_url();
    let mut all = tokio::task::JoinSet::new();
    for i in 0..24 {
        let c = Client::new(&base);
        all.spawn(async move { c.get(&format!("/c/{i}")).await });
    }
    let mut served = 0;
    while let Some(done) = all.join_next().await {
        let resp = done.expect("request task");
        assert_eq!((resp.status, resp.from()), (200, "ok"), "{resp:?}");
        served += 1;
    }
    assert_eq!(served, 24);
    assert_eq!(bad.hits(), 2, "the open breaker kept traffic away");
}

#[test]
fn check_names_the_key_path_of_every_error() {
    let dir = mosaic_tests::host::tempdir();
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[server]\nlisten = \"nowhere\"\n\n[[providers]]\nid = \"p\"\nbase_url = \"ftp://x\"\n\n[[routes]]\nname = \"r\"\nmatch = { path = \"/x\" }\nproviders = [\"p\", \"ghost\"]\nstrategy = \"fastest\"\n",
    )
    .expect("write");
    let out = Command::new(mosaic_binary())
        .args(["check", "--config"])
        .arg(&bad)
        .output()
        .expect("run mosaic check");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    for path in [
        "server.listen",
        "providers[0].base_url",
        "routes[0].providers[1]",
        "routes[0].strategy",
    ] {
        assert!(
            err.contains(&format!("bad.toml: {path}: ")),
            "`{path}` missing from:\n{err}"
        );
    }
    let unknown = dir.join("unknown.toml");
    std::fs::write(&unknown, "[server]\nlistenn = \"127.0.0.1:1\"\n").expect("write");
    let out = Command::new(mosaic_binary())
        .args(["check", "--config"])
        .arg(&unknown)
        .output()
        .expect("run mosaic check");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("server.listenn: unknown field"));
    // a CA file that cannot be read is reported at its key, before anything serves
    let ca = dir.join("ca.toml");
    std::fs::write(
        &ca,
        format!(
            "[server]\nca_file = \"{}\"\n",
            dir.join("no-such-ca.pem").display()
        ),
    )
    .expect("write");
    let out = Command::new(mosaic_binary())
        .args(["check", "--config"])
        .arg(&ca)
        .output()
        .expect("run mosaic check");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ca.toml: server.ca_file: cannot read") && err.contains("no-such-ca.pem"),
        "{err}"
    );
    let good = Command::new(mosaic_binary())
        .args([
            "check",
            "--config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/mosaic.toml"),
        ])
        .output()
        .expect("run mosaic check");
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn explain_shows_route_order_and_reasons() {
    let out = Command::new(mosaic_binary())
        .args([
            "explain",
            "--config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/mosaic.toml"),
            "--url",
            "http://127.0.0.1:8787/repos/rust-lang/rust",
        ])
        .output()
        .expect("run mosaic explain");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("route:    repos (strategy priority)"),
        "{text}"
    );
    assert!(text.contains("[1] github"), "{text}");
    assert!(text.contains("[2] codeberg"), "{text}");
    assert!(
        text.contains("first attempt: https://api.github.com/repos/rust-lang/rust"),
        "{text}"
    );
    let v = Command::new(mosaic_binary())
        .arg("version")
        .output()
        .expect("run mosaic version");
    assert!(String::from_utf8_lossy(&v.stdout).starts_with("mosaic "));
    let _ = ADMIN_TOKEN;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_get_a_clear_503() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = Mock::start("up", Behaviour::ok()).await;
    let cfg = format!(
        "{}{}[[routes]]\nname = \"r\"\nmatch = {{ path = \"/{{*rest}}\" }}\nproviders = [\"up\"]\n",
        server("max_connections = 2"),
        provider("up", &up.url())
    );
    let r = local().spawn(&cfg, &[]).expect("start");
    // the health probe's connection may still be closing: let it go
    tokio::time::sleep(Duration::from_millis(200)).await;
    let addr = format!("127.0.0.1:{}", r.port);
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = tokio::net::TcpStream::connect(&addr)
            .await
            .expect("connect");
        s.write_all(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        let mut buf = vec![0u8; 1024];
        let n = s.read(&mut buf).await.expect("read");
        assert!(
            buf[..n].starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&buf[..n])
        );
        held.push(s); // kept alive: counts against the limit
    }
    let mut s = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    s.write_all(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(
        text.contains("application/problem+json") && text.contains("connection limit reached"),
        "{text}"
    );
    drop(held);
}

/// A newcomer's first requests against the shipped example: `/v1/openapi.json` answers with
/// the normalized API's description (the example enables `[v1.git]`), and health answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_serves_the_normalized_api_description() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/mosaic.toml"
    ))
    .expect("the example config");
    let r = LocalBinary::new()
        .spawn(&text, &[])
        .unwrap_or_else(|e| panic!("the example did not start: {e}"));
    let c = Client::new(&format!("http://127.0.0.1:{}", r.port));
    let resp = c.send("GET", "/v1/openapi.json", &[], Vec::new()).await;
    assert_eq!(resp.status, 200, "{resp:?}");
    let doc: serde_json::Value = serde_json::from_str(&resp.body).expect("JSON");
    assert!(doc["paths"]
        .as_object()
        .is_some_and(|p| p.keys().any(|k| k.starts_with("/v1/git/"))));
    let health = c.send("GET", "/_mosaic/health", &[], Vec::new()).await;
    assert_eq!(health.status, 200, "{health:?}");
}
