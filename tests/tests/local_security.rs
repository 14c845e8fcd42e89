//! Security end to end (issue 7) against the real `mosaic` binary: the host-generic scenarios
//! of [`mosaic_tests::scenarios_security`] (SSRF and smuggling corpora over raw TCP, framing
//! edges, header hygiene, tenancy and cross-tenant isolation, GCRA under concurrency,
//! redaction), plus what only the native server has: `mosaic check` and `mosaic explain`, and
//! quotas kept across a restart by the file store.
//!
//! Every upstream is a mock on 127.0.0.1; every wait is bounded. Build the binary first
//! (`cargo build -p mosaic-local`): the harness finds it next to this test executable.

use std::process::Command;
use std::time::Duration;

use mosaic_tests::host::{mosaic_binary, tempdir, LocalBinary, LocalRouter, Running};
use mosaic_tests::mock::{closed_port_url, Behaviour, Mock};
use mosaic_tests::scenarios::{server, Client};
use mosaic_tests::scenarios_security::{
    self, key_hash, problem_code, redaction_config, REDACTION_SECRETS, REDACTION_TENANT_KEY,
};

macro_rules! scenario {
    ($name:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            scenarios_security::$name(&LocalBinary::new()).await;
        }
    };
}

scenario!(ssrf_corpus_is_refused_before_any_upstream_request);
scenario!(names_and_literals_reaching_loopback_are_refused_at_fetch_time);
scenario!(smuggling_corpus_is_refused_or_neutralised);
scenario!(pipelined_request_after_a_refusal_is_never_served);
scenario!(http_framing_edges_are_served_as_the_protocol_says);
scenario!(expect_100_continue_is_answered_before_the_body);
scenario!(caller_credentials_and_hop_by_hop_headers_never_reach_the_upstream);
scenario!(tenants_authenticate_and_admin_scope_is_separate);
scenario!(a_thousand_randomized_requests_stay_within_their_tenant);
scenario!(gcra_admits_the_burst_then_the_rate_under_concurrency);

/// Redaction with debug logging on: the most the router ever logs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_appear_in_logs_problems_metrics_or_state() {
    let host = LocalBinary::with_env(&[("RUST_LOG", "debug")]);
    scenarios_security::secrets_never_appear_in_logs_problems_metrics_or_state(&host).await;
}

fn spawn(cfg: &str, env: &[(&str, &str)]) -> LocalRouter {
    LocalBinary::new()
        .spawn(cfg, env)
        .unwrap_or_else(|e| panic!("mosaic did not start: {e}\nconfig:\n{cfg}"))
}

/// `mosaic explain` (text and JSON) of the redaction config, with the tenant key in a header,
/// shows none of the secrets it resolves.
#[test]
fn explain_never_shows_secrets() {
    let dir = tempdir();
    let cfg = dir.join("redaction.toml");
    std::fs::write(
        &cfg,
        redaction_config(
            "http://127.0.0.1:9",
            "http://127.0.0.1:9",
            &closed_port_url(),
        ),
    )
    .expect("write");
    let run = |args: &[&str], header: String| {
        let out = Command::new(mosaic_binary())
            .args(args)
            .arg("--config")
            .arg(&cfg)
            .arg("-H")
            .arg(header)
            .envs(REDACTION_SECRETS)
            .output()
            .expect("run mosaic explain");
        (
            out.status.success(),
            format!(
                "{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (ok, text) = run(
        &["explain", "--url", "http://127.0.0.1:8787/failing/x"],
        format!("X-Mosaic-Key: {REDACTION_TENANT_KEY}"),
    );
    assert!(ok, "{text}");
    let (ok_json, json) = run(
        &["explain", "--json", "--url", "http://127.0.0.1:8787/ok/x"],
        format!("Authorization: Bearer {REDACTION_TENANT_KEY}"),
    );
    assert!(ok_json, "{json}");
    for s in REDACTION_SECRETS
        .iter()
        .map(|(_, v)| *v)
        .chain([REDACTION_TENANT_KEY])
    {
        assert!(!text.contains(s), "`{s}` in mosaic explain:\n{text}");
        assert!(!json.contains(s), "`{s}` in mosaic explain --json:\n{json}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn check_refuses_private_base_urls_without_allow_private() {
    let dir = tempdir();
    let cfg = dir.join("private.toml");
    let urls = [
        "http://10.0.0.1",
        "http://127.0.0.1:9",
        "http://169.254.169.254/latest",
        "http://192.168.1.1",
        "http://172.16.0.1",
        "http://[::1]:9",
        "http://[fe80::1]",
        "http://localhost:9",
        "http://metadata.google.internal",
        "http://0.0.0.0:9",
    ];
    let mut text = String::new();
    for (i, u) in urls.iter().enumerate() {
        text.push_str(&format!(
            "[[providers]]\nid = \"p{i}\"\nbase_url = \"{u}\"\n\n"
        ));
    }
    let ids: Vec<String> = (0..urls.len()).map(|i| format!("\"p{i}\"")).collect();
    text.push_str(&format!(
        "[[routes]]\nname = \"r\"\nmatch = {{ path = \"/{{*rest}}\" }}\nproviders = [{}]\n",
        ids.join(", ")
    ));
    std::fs::write(&cfg, &text).expect("write");
    let out = Command::new(mosaic_binary())
        .args(["check", "--config"])
        .arg(&cfg)
        .output()
        .expect("run mosaic check");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    for (i, u) in urls.iter().enumerate() {
        assert!(
            err.lines()
                .any(|l| l.contains(&format!("providers[{i}].base_url: "))
                    && l.contains("allow_private")),
            "{u} was not refused:\n{err}"
        );
    }
    // allowed explicitly: accepted
    std::fs::write(
        &cfg,
        text.replace("\"\n\n[[", "\"\nallow_private = true\n\n[[")
            .replace("\"\n\n[[routes", "\"\nallow_private = true\n\n[[routes"),
    )
    .expect("write");
    let out = Command::new(mosaic_binary())
        .args(["check", "--config"])
        .arg(&cfg)
        .output()
        .expect("run mosaic check");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_survive_a_restart() {
    let up = Mock::start("up", Behaviour::ok()).await;
    let db = tempdir().join("quota.redb");
    let cfg = format!(
        "{}[store]\nkind = \"file\"\npath = \"{}\"\n\n\
         [[tenants]]\nname = \"q\"\nkeys = [\"{}\"]\nquota = {{ requests_per_day = 3 }}\n\n\
         [[tenants]]\nname = \"other\"\nkeys = [\"{}\"]\nquota = {{ requests_per_day = 3 }}\n\n\
         [[tenants]]\nname = \"costly\"\nkeys = [\"{}\"]\nquota = {{ cost_per_day = 2.5 }}\n\n\
         [[providers]]\nid = \"up\"\nbase_url = \"{}\"\nallow_private = true\ncost = 1.0\n\n\
         [[routes]]\nname = \"r\"\nmatch = {{ path = \"/{{*rest}}\" }}\nproviders = [\"up\"]\n",
        server(""),
        db.display(),
        key_hash("quota-key"),
        key_hash("other-key"),
        key_hash("costly-key"),
        up.url()
    );
    let mut first = spawn(&cfg, &[]);
    let c = Client::new(&first.base_url());
    let h = [("x-mosaic-key", "quota-key")];
    for i in 0..3 {
        let resp = c.send("GET", &format!("/a{i}"), &h, Vec::new()).await;
        assert_eq!(resp.status, 200, "request {i}: {resp:?}");
    }
    // cost units: 2 of 2.5 spent before the restart
    let costly = [("x-mosaic-key", "costly-key")];
    for i in 0..2 {
        let resp = c.send("GET", &format!("/c{i}"), &costly, Vec::new()).await;
        assert_eq!(resp.status, 200, "costly request {i}: {resp:?}");
    }
    let exited = tokio::task::spawn_blocking(move || {
        let s = first.terminate(Duration::from_secs(8));
        (s, first.logs())
    })
    .await
    .expect("terminate");
    assert!(
        exited.0.is_some_and(|s| s.success()),
        "{:?}\n{}",
        exited.0,
        exited.1
    );
    assert!(exited.1.contains("state persisted"), "{}", exited.1);

    let second = spawn(&cfg, &[]);
    let c = Client::new(&second.base_url());
    let resp = c.send("GET", "/a3", &h, Vec::new()).await;
    assert_eq!(
        resp.status,
        429,
        "the quota must survive the restart: {resp:?}\n{}",
        second.logs()
    );
    assert_eq!(problem_code(&resp), "quota-exceeded", "{resp:?}");
    assert!(resp.header("retry-after").is_some(), "{resp:?}");
    assert_eq!(up.hits(), 5);
    // the spent cost survived too: one more (2 < 2.5) passes, then 3 ≥ 2.5 is refused
    let resp = c.send("GET", "/c2", &costly, Vec::new()).await;
    assert_eq!(resp.status, 200, "{resp:?}");
    let resp = c.send("GET", "/c3", &costly, Vec::new()).await;
    assert_eq!(
        resp.status, 429,
        "the cost spent before the restart counts: {resp:?}"
    );
    assert_eq!(problem_code(&resp), "quota-exceeded", "{resp:?}");
    assert!(resp.body.contains("cost"), "{resp:?}");
    // another tenant's quota is its own
    let resp = c
        .send("GET", "/b", &[("x-mosaic-key", "other-key")], Vec::new())
        .await;
    assert_eq!(resp.status, 200, "{resp:?}");
}
