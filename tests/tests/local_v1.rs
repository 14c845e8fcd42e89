//! The normalized `/v1` API through the real `mosaic` binary: the host-generic scenarios of
//! [`mosaic_tests::v1`] (every family's operations, read failover, writes on the primary, the
//! pin header, rate-limit headers, cursors, declarative providers, `/v1/openapi.json`), plus
//! what needs the native server: declarations kept by the file store across a restart, polled
//! from a shared Redis, and `mosaic providers`.
//!
//! Build the binary first (`cargo build -p mosaic-local`).

use std::process::Command;
use std::time::Duration;

use mosaic_tests::fixtures::{FixtureServer, Reply};
use mosaic_tests::host::{mosaic_binary, tempdir, LocalBinary, LocalRouter, Redis, Running};
use mosaic_tests::scenarios::{server, Client};
use mosaic_tests::v1::{self, admin, json, provider};

macro_rules! scenario {
    ($name:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            v1::$name(&LocalBinary::new()).await;
        }
    };
}

scenario!(openapi_document);
scenario!(every_family_serves_its_operations);
scenario!(v1_read_fails_over_within_the_family);
scenario!(v1_writes_go_to_the_primary_only_while_reads_fail_over);
scenario!(v1_pin_header_is_not_forwarded);
scenario!(v1_rate_limit_headers_cool_a_provider_down_before_any_429);
scenario!(plugin_rate_limit_headers_cool_a_provider_down);
scenario!(a_cursor_continues_on_a_provider_of_its_kind_only);
scenario!(declared_provider_serves_without_a_redeploy);

fn spawn(config: &str) -> LocalRouter {
    LocalBinary::new()
        .spawn(config, &[])
        .unwrap_or_else(|e| panic!("{e}"))
}

const ACME_GOOD: &str = r#"{"providers": [{"kind": "acme-git",
    "base_url": "https://git.acme.example/api",
    "auth": {"scheme": "header", "header": "X-Acme-Token"},
    "operations": {"git.get_repo": {"method": "GET", "path": "/v2/projects/{owner}/{repo}",
        "response": {"id": "/uid", "name": "/slug", "full_name": "/path", "owner": "/group"}}}}]}"#;

/// A stand-in serving the acme project `team/svc`.
async fn acme() -> FixtureServer {
    let up = FixtureServer::start().await;
    up.on(
        "GET",
        "/acme/v2/projects/team/svc",
        Reply::json(
            200,
            &br#"{"uid": 9, "slug": "svc", "path": "team/svc", "group": "team"}"#[..],
        ),
    );
    up
}

/// A declaration made through the admin API is kept in the file store: a restarted server has
/// it from the start (declaring and validating is [`v1::declared_provider_serves_without_a_redeploy`]).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declarative_provider_survives_a_restart_in_the_file_store() {
    let up = acme().await;
    let dir = tempdir();
    let store = dir.join("mosaic.redb");
    let cfg = format!(
        "{}[store]\nkind = \"file\"\npath = \"{}\"\n\n{}[v1.git]\nproviders = [\"acme\"]\n",
        server(""),
        store.display(),
        provider("acme", "acme-git", &format!("{}/acme", up.url())),
    );
    let mut router = spawn(&cfg);
    let client = Client::new(&format!("http://127.0.0.1:{}", router.port));
    let (an, av) = admin();
    let r = client
        .send(
            "PUT",
            "/_mosaic/providers",
            &[(an, &av)],
            ACME_GOOD.as_bytes().to_vec(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(client.get("/v1/git/repos/team/svc").await.status, 200);
    assert!(router.terminate(Duration::from_secs(10)).is_some());
    let router = spawn(&cfg);
    let client = Client::new(&format!("http://127.0.0.1:{}", router.port));
    let r = client.get("/v1/git/repos/team/svc").await;
    assert_eq!(r.status, 200, "{}\n{}", r.body, router.logs());
    assert_eq!(json(&r)["data"]["full_name"], "team/svc");
    drop(router);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declaration_written_by_another_instance_is_polled_from_redis() {
    let redis = Redis::start().expect("redis-server (apt-get install redis-server)");
    let up = acme().await;
    let cfg = format!(
        "{}[store]\nkind = \"redis\"\nurl = \"{}\"\n\n{}[v1.git]\nproviders = [\"acme\"]\n",
        server(""),
        redis.url(),
        provider("acme", "acme-git", &format!("{}/acme", up.url())),
    );
    let a = spawn(&cfg);
    let b = spawn(&cfg);
    let ca = Client::new(&format!("http://127.0.0.1:{}", a.port));
    let cb = Client::new(&format!("http://127.0.0.1:{}", b.port));
    assert_eq!(cb.get("/v1/git/repos/team/svc").await.status, 400);
    let (an, av) = admin();
    let r = ca
        .send(
            "PUT",
            "/_mosaic/providers",
            &[(an, &av)],
            ACME_GOOD.as_bytes().to_vec(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // the other instance re-reads the store key every 5 s
    let deadline = std::time::Instant::now() + Duration::from_secs(12);
    loop {
        let r = cb.get("/v1/git/repos/team/svc").await;
        if r.status == 200 {
            assert_eq!(json(&r)["data"]["full_name"], "team/svc");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "instance b never loaded the declaration: {}\n{}",
            r.body,
            b.logs()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[test]
fn mosaic_providers_lists_the_thirteen_builtins() {
    let out = Command::new(mosaic_binary())
        .arg("providers")
        .output()
        .expect("run mosaic providers");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 13, "{text}");
    for kind in [
        "github",
        "github-actions",
        "gitea",
        "forgejo",
        "gitlab",
        "woodpecker",
        "jenkins",
        "notion",
        "bookstack",
        "confluence",
        "linear",
        "plane",
        "jira",
    ] {
        let line = lines
            .iter()
            .find(|l| l.split_whitespace().next() == Some(kind))
            .unwrap_or_else(|| panic!("{kind} missing:\n{text}"));
        let ops = line.split_whitespace().nth(2).unwrap_or("");
        assert!(
            ops.split(',').all(|o| o.contains('.')) && !ops.is_empty(),
            "{line}"
        );
    }
    assert!(text.contains("git.get_repo"));
}
