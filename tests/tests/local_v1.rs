//! The normalized `/v1` API through the real `mosaic` binary against provider stand-ins on
//! 127.0.0.1 that answer with the documented response shapes (`tests/fixtures/providers/`):
//! every built-in plugin maps and normalizes one operation, reads fail over GitHub → Gitea with
//! the same shape, writes stay on the primary, rate-limit headers cool a provider down before
//! any 429, declarative providers load without a restart (admin API, store at start, a shared
//! store polled), `/v1/openapi.json` and `mosaic providers`.
//!
//! Build the binary first (`cargo build -p mosaic-local`).

use std::process::Command;
use std::time::Duration;

use mosaic_tests::fixtures::{FixtureServer, Reply};
use mosaic_tests::host::{
    mosaic_binary, tempdir, LocalBinary, LocalRouter, Redis, Running, ADMIN_TOKEN,
};
use mosaic_tests::mock::closed_port_url;
use mosaic_tests::scenarios::{server, Client, Resp, UPSTREAM_TOKEN};
use serde_json::Value;

/// `Basic base64("upstream-credential")`.
const BASIC: &str = "Basic dXBzdHJlYW0tY3JlZGVudGlhbA==";

fn spawn(config: &str) -> LocalRouter {
    LocalBinary::new()
        .spawn(config, &[])
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A provider at `base`, with the test upstream credential.
fn provider(id: &str, kind: &str, base: &str) -> String {
    format!(
        "[[providers]]\nid = \"{id}\"\nkind = \"{kind}\"\nbase_url = \"{base}\"\nallow_private = true\nauth = {{ scheme = \"bearer\", secret = \"secret:MOSAIC_TEST_UPSTREAM\" }}\n\n"
    )
}

fn json(r: &Resp) -> Value {
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", r.body))
}

fn admin() -> (&'static str, String) {
    ("authorization", format!("Bearer {ADMIN_TOKEN}"))
}

struct Case {
    id: &'static str,
    method: &'static str,
    path: &'static str,
    body: &'static str,
    upstream_method: &'static str,
    upstream_path: &'static str,
    auth: (&'static str, &'static str),
    reply: (u16, &'static str),
    check: (&'static str, &'static str),
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_builtin_provider_serves_an_operation_through_the_local_server() {
    let up = FixtureServer::start().await;
    let bearer = "Bearer upstream-credential";
    let token = "token upstream-credential";
    let cases = [
        Case {
            id: "github",
            method: "GET",
            path: "/v1/git/repos/octocat/Hello-World",
            body: "",
            upstream_method: "GET",
            upstream_path: "/github/repos/octocat/Hello-World",
            auth: ("authorization", bearer),
            reply: (200, "get_repo"),
            check: ("/data/full_name", "octocat/Hello-World"),
        },
        Case {
            id: "gitea",
            method: "GET",
            path: "/v1/git/repos/octocat/Hello-World/issues",
            body: "",
            upstream_method: "GET",
            upstream_path: "/gitea/repos/octocat/Hello-World/issues",
            auth: ("authorization", token),
            reply: (200, "list_issues"),
            check: ("/data/0/title", "Crash on start"),
        },
        Case {
            id: "forgejo",
            method: "GET",
            path: "/v1/git/repos/octocat/Hello-World",
            body: "",
            upstream_method: "GET",
            upstream_path: "/forgejo/repos/octocat/Hello-World",
            auth: ("authorization", token),
            reply: (200, "get_repo"),
            check: ("/data/id", "99"),
        },
        Case {
            id: "gitlab",
            method: "GET",
            path: "/v1/git/repos/diaspora/diaspora-project-site",
            body: "",
            upstream_method: "GET",
            upstream_path: "/gitlab/projects/diaspora%2Fdiaspora-project-site",
            auth: ("private-token", UPSTREAM_TOKEN),
            reply: (200, "get_repo"),
            check: ("/data/full_name", "diaspora/diaspora-project-site"),
        },
        Case {
            id: "github-actions",
            method: "GET",
            path: "/v1/ci/runs/30433642?project=octo-org%2Focto-repo",
            body: "",
            upstream_method: "GET",
            upstream_path: "/github-actions/repos/octo-org/octo-repo/actions/runs/30433642",
            auth: ("authorization", bearer),
            reply: (200, "get_run"),
            check: ("/data/status", "success"),
        },
        Case {
            id: "woodpecker",
            method: "GET",
            path: "/v1/ci/runs?project=42",
            body: "",
            upstream_method: "GET",
            upstream_path: "/woodpecker/repos/42/pipelines",
            auth: ("authorization", bearer),
            reply: (200, "list_runs"),
            check: ("/data/0/id", "92"),
        },
        Case {
            id: "jenkins",
            method: "GET",
            path: "/v1/ci/runs/17?project=deploy",
            body: "",
            upstream_method: "GET",
            upstream_path: "/jenkins/job/deploy/17/api/json",
            auth: ("authorization", BASIC),
            reply: (200, "get_run"),
            check: ("/data/status", "failure"),
        },
        Case {
            id: "notion",
            method: "GET",
            path: "/v1/kb/pages/59833787-2cf9-4fdf-8782-e53db20768a5",
            body: "",
            upstream_method: "GET",
            upstream_path: "/notion/pages/59833787-2cf9-4fdf-8782-e53db20768a5",
            auth: ("authorization", bearer),
            reply: (200, "get_page"),
            check: ("/data/title", "Tuscan kale"),
        },
        Case {
            id: "bookstack",
            method: "GET",
            path: "/v1/kb/pages?query=cats",
            body: "",
            upstream_method: "GET",
            upstream_path: "/bookstack/search",
            auth: ("authorization", "Token upstream-credential"),
            reply: (200, "search_pages"),
            check: ("/data/0/title", "The hows and whys of cats"),
        },
        Case {
            id: "confluence",
            method: "POST",
            path: "/v1/kb/pages",
            body: r#"{"title":"Runbook","body":"First step","space":"98306"}"#,
            upstream_method: "POST",
            upstream_path: "/confluence/wiki/api/v2/pages",
            auth: ("authorization", BASIC),
            reply: (200, "create_page"),
            check: ("/data/id", "65540"),
        },
        Case {
            id: "linear",
            method: "GET",
            path: "/v1/pm/issues/ENG-123",
            body: "",
            upstream_method: "POST",
            upstream_path: "/linear/graphql",
            auth: ("authorization", UPSTREAM_TOKEN),
            reply: (200, "get_issue"),
            check: ("/data/key", "ENG-123"),
        },
        Case {
            id: "plane",
            method: "GET",
            path: "/v1/pm/issues?project=acme%2F4af68566",
            body: "",
            upstream_method: "GET",
            upstream_path: "/plane/workspaces/acme/projects/4af68566/work-items/",
            auth: ("x-api-key", UPSTREAM_TOKEN),
            reply: (200, "list_issues"),
            check: ("/data/0/title", "Checkout fails on Safari"),
        },
        Case {
            id: "jira",
            method: "POST",
            path: "/v1/pm/issues",
            body: r#"{"project":"ED","title":"Broken login","description":"Steps"}"#,
            upstream_method: "POST",
            upstream_path: "/jira/rest/api/3/issue",
            auth: ("authorization", BASIC),
            reply: (201, "create_issue"),
            check: ("/data/key", "ED-24"),
        },
    ];
    let mut cfg = server("");
    for c in &cases {
        cfg.push_str(&provider(c.id, c.id, &format!("{}/{}", up.url(), c.id)));
        up.on(
            c.upstream_method,
            c.upstream_path,
            Reply::fixture(c.reply.0, c.id, c.reply.1),
        );
    }
    cfg.push_str(
        r#"
[v1.git]
providers = ["github", "gitea", "forgejo", "gitlab"]
[v1.ci]
providers = ["github-actions", "woodpecker", "jenkins"]
[v1.kb]
providers = ["notion", "bookstack", "confluence"]
[v1.pm]
providers = ["linear", "plane", "jira"]
"#,
    );
    let router = spawn(&cfg);
    let client = Client::new(&format!("http://127.0.0.1:{}", router.port));
    for c in &cases {
        let sep = if c.path.contains('?') { '&' } else { '?' };
        let path = format!("{}{sep}provider={}", c.path, c.id);
        let before = up.seen().len();
        let r = client
            .send(
                c.method,
                &path,
                &[
                    ("content-type", "application/json"),
                    ("authorization", "Bearer caller-secret"),
                ],
                c.body.as_bytes().to_vec(),
            )
            .await;
        assert_eq!(r.status, c.reply.0, "{}: {}", c.id, r.body);
        let seen = up.seen();
        assert_eq!(seen.len(), before + 1, "{}: one upstream request", c.id);
        let s = &seen[before];
        assert_eq!(s.method, c.upstream_method, "{}", c.id);
        assert_eq!(
            s.target.split('?').next(),
            Some(c.upstream_path),
            "{}",
            c.id
        );
        assert_eq!(s.header(c.auth.0), Some(c.auth.1), "{}: auth header", c.id);
        if c.auth.0 != "authorization" {
            assert_eq!(
                s.header("authorization"),
                None,
                "{}: neither the caller's nor the engine's credential",
                c.id
            );
        }
        let v = json(&r);
        assert_eq!(v["provider"], c.id, "{}", c.id);
        assert_eq!(
            v.pointer(c.check.0).and_then(Value::as_str),
            Some(c.check.1),
            "{}: {v}",
            c.id
        );
        assert_eq!(r.header("x-mosaic-provider"), Some(c.id));
        assert!(r
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/json")));
    }
    // a few details of the mapping the provider sees
    let seen = up.seen();
    let by = |p: &str| {
        seen.iter()
            .find(|s| s.target.starts_with(p))
            .unwrap_or_else(|| panic!("no request to {p}"))
    };
    assert_eq!(
        by("/github/").header("x-github-api-version"),
        Some("2022-11-28")
    );
    assert_eq!(by("/notion/").header("notion-version"), Some("2022-06-28"));
    let jira: Value = serde_json::from_slice(&by("/jira/").body).expect("jira body");
    assert_eq!(jira["fields"]["project"]["key"], "ED");
    assert_eq!(jira["fields"]["summary"], "Broken login");
    let linear: Value = serde_json::from_slice(&by("/linear/").body).expect("graphql body");
    assert_eq!(linear["variables"]["id"], "ENG-123");
    assert!(by("/bookstack/").target.contains("query=cats"));

    // errors keep the provider's own message
    up.once(
        "/github/repos/octocat/missing",
        [Reply::fixture(404, "github", "error_404")],
    );
    let r = client
        .get("/v1/git/repos/octocat/missing?provider=github")
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(r
        .header("content-type")
        .is_some_and(|t| t.starts_with("application/problem+json")));
    let v = json(&r);
    assert_eq!(v["provider"], "github");
    assert_eq!(v["provider_status"], 404);
    assert_eq!(v["provider_message"], "Not Found");
    // an operation the provider does not map, and arguments that are not an operation
    let r = client.get("/v1/ci/runs/1?project=x&provider=notion").await;
    assert_eq!(r.status, 400, "notion is no CI provider: {}", r.body);
    let r = client
        .send("DELETE", "/v1/git/repos/a/b", &[], Vec::new())
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(
        !router.logs().contains(UPSTREAM_TOKEN),
        "secrets never logged"
    );
}

fn pair_config(gh: &str, mirror: &str, extra: &str) -> String {
    format!(
        "{}{}{}[v1.git]\nproviders = [\"gh\", \"mirror\"]\nretry = {{ attempts = 3, backoff_base_ms = 20, backoff_max_ms = 50 }}\n{extra}",
        server(""),
        provider("gh", "github", gh),
        provider("mirror", "gitea", mirror),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_repo_fails_over_from_github_to_gitea_with_the_same_shape() {
    let up = FixtureServer::start().await;
    let gh = format!("{}/gh", up.url());
    let mirror = format!("{}/gitea/api/v1", up.url());
    up.on(
        "GET",
        "/gh/repos/octocat/Hello-World",
        Reply::fixture(200, "github", "get_repo"),
    );
    up.on(
        "GET",
        "/gitea/api/v1/repos/octocat/Hello-World",
        Reply::fixture(200, "gitea", "get_repo"),
    );
    up.once(
        "/gh/repos/octocat/Hello-World",
        [Reply::json(503, &b"{\"message\":\"unavailable\"}"[..])],
    );
    let router = spawn(&pair_config(&gh, &mirror, ""));
    let client = Client::new(&format!("http://127.0.0.1:{}", router.port));

    let r = client.get("/v1/git/repos/octocat/Hello-World").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let via_mirror = json(&r);
    assert_eq!(via_mirror["provider"], "mirror");
    assert_eq!(up.hits("/gh/repos/octocat/Hello-World"), 1);
    assert_eq!(up.hits("/gitea/api/v1/repos/octocat/Hello-World"), 1);
    let gitea = up
        .seen()
        .into_iter()
        .find(|s| s.target.starts_with("/gitea/"))
        .expect("the mirror was asked");
    assert_eq!(
        gitea.header("authorization"),
        Some("token upstream-credential"),
        "the attempt was rewritten with Gitea's plugin"
    );

    let r = client.get("/v1/git/repos/octocat/Hello-World").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let via_github = json(&r);
    assert_eq!(via_github["provider"], "gh");
    let keys = |v: &Value| {
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_go_to_the_primary_only_while_reads_fail_over() {
    let up = FixtureServer::start().await;
    let mirror = format!("{}/gitea", up.url());
    up.on(
        "GET",
        "/gitea/repos/octocat/Hello-World",
        Reply::fixture(200, "gitea", "get_repo"),
    );
    up.on(
        "POST",
        "/gitea/repos/octocat/Hello-World/issues",
        Reply::fixture(201, "github", "create_issue"),
    );
    // the primary refuses connections: an unsent request the engine would retry elsewhere
    let router = spawn(&pair_config(&closed_port_url(), &mirror, ""));
    let client = Client::new(&format!("http://127.0.0.1:{}", router.port));
    let r = client
        .send(
            "POST",
            "/v1/git/repos/octocat/Hello-World/issues",
            &[("content-type", "application/json")],
            br#"{"title":"Found a bug","body":"It crashes"}"#.to_vec(),
        )
        .await;
    assert_eq!(
        r.status, 502,
        "the primary's failure, not the mirror: {}",
        r.body
    );
    assert_eq!(
        up.hits("/gitea/repos/octocat/Hello-World/issues"),
        0,
        "a write never reaches the mirror"
    );
    // a read does fail over
    let r = client.get("/v1/git/repos/octocat/Hello-World").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(json(&r)["provider"], "mirror");
    // `?provider=` sends a write to the provider named, and only there
    let r = client
        .send(
            "POST",
            "/v1/git/repos/octocat/Hello-World/issues?provider=mirror",
            &[("content-type", "application/json")],
            br#"{"title":"Found a bug"}"#.to_vec(),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let s = up
        .seen()
        .into_iter()
        .find(|s| s.method == "POST")
        .expect("the mirror got the write");
    let body: Value = serde_json::from_slice(&s.body).expect("JSON body");
    assert_eq!(body["title"], "Found a bug");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_headers_cool_a_provider_down_before_any_429() {
    let up = FixtureServer::start().await;
    let gh = format!("{}/gh", up.url());
    let mirror = format!("{}/gitea", up.url());
    let reset = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + 60;
    up.on(
        "GET",
        "/gh/repos/octocat/Hello-World",
        Reply::fixture(200, "github", "get_repo")
            .header("x-ratelimit-limit", "5000")
            .header("x-ratelimit-remaining", "0")
            .header("x-ratelimit-reset", &reset.to_string()),
    );
    up.on(
        "GET",
        "/gitea/repos/octocat/Hello-World",
        Reply::fixture(200, "gitea", "get_repo"),
    );
    let router = spawn(&pair_config(&gh, &mirror, ""));
    let client = Client::new(&format!("http://127.0.0.1:{}", router.port));
    let r = client.get("/v1/git/repos/octocat/Hello-World").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        json(&r)["provider"],
        "gh",
        "the last request of the budget is answered"
    );
    for _ in 0..3 {
        let r = client.get("/v1/git/repos/octocat/Hello-World").await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(
            json(&r)["provider"],
            "mirror",
            "GitHub cools down until its reset"
        );
    }
    assert_eq!(
        up.hits("/gh/repos/octocat/Hello-World"),
        1,
        "GitHub is not called again, so it never answers 429"
    );
    let state = client.state().await;
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

const ACME_GOOD: &str = r#"{"providers": [{"kind": "acme-git",
    "base_url": "https://git.acme.example/api",
    "auth": {"scheme": "header", "header": "X-Acme-Token"},
    "operations": {"git.get_repo": {"method": "GET", "path": "/v2/projects/{owner}/{repo}",
        "response": {"id": "/uid", "name": "/slug", "full_name": "/path", "owner": "/group"}}}}]}"#;

const ACME_BAD: &str = r#"{"providers": [{"kind": "acme-git", "base_url": "not a url",
    "operations": {"git.get_repo": {"method": "FETCH", "path": "/v2/projects/{own}"}}}]}"#;

fn acme_config(up: &FixtureServer, store: &str) -> String {
    format!(
        "{}[store]\nkind = \"file\"\npath = \"{store}\"\n\n{}[v1.git]\nproviders = [\"acme\"]\n",
        server(""),
        provider("acme", "acme-git", &format!("{}/acme", up.url())),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declarative_provider_serves_without_a_restart_and_survives_one() {
    let up = FixtureServer::start().await;
    up.on(
        "GET",
        "/acme/v2/projects/team/svc",
        Reply::json(
            200,
            &br#"{"uid": 9, "slug": "svc", "path": "team/svc", "group": "team"}"#[..],
        ),
    );
    let dir = tempdir();
    let store = dir.join("mosaic.redb");
    let cfg = acme_config(&up, &store.to_string_lossy());
    let mut router = spawn(&cfg);
    let client = Client::new(&format!("http://127.0.0.1:{}", router.port));
    let (an, av) = admin();

    let r = client.get("/v1/git/repos/team/svc").await;
    assert_eq!(r.status, 400, "not declared yet: {}", r.body);
    assert!(r.body.contains("acme-git"), "{}", r.body);

    // the admin API needs the token
    let r = client
        .send(
            "PUT",
            "/_mosaic/providers",
            &[],
            ACME_GOOD.as_bytes().to_vec(),
        )
        .await;
    assert_eq!(r.status, 401);
    // a bad declaration: every error with its key path; nothing changes
    let r = client
        .send(
            "PUT",
            "/_mosaic/providers",
            &[(an, &av)],
            ACME_BAD.as_bytes().to_vec(),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let v = json(&r);
    let errors: Vec<String> = v["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e.as_str().map(String::from))
        .collect();
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("providers[0].base_url")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("providers[0].operations.git.get_repo")),
        "{errors:?}"
    );
    // a good one serves at once
    let r = client
        .send(
            "PUT",
            "/_mosaic/providers",
            &[(an, &av)],
            ACME_GOOD.as_bytes().to_vec(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = client.get("/v1/git/repos/team/svc").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = json(&r);
    assert_eq!(v["provider"], "acme");
    assert_eq!(v["data"]["full_name"], "team/svc");
    assert_eq!(v["data"]["id"], "9");
    let s = up.seen().pop().expect("acme was asked");
    assert_eq!(s.header("x-acme-token"), Some(UPSTREAM_TOKEN));
    let r = client
        .send("GET", "/_mosaic/providers", &[(an, &av)], Vec::new())
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(json(&r)["declared"][0], "acme-git");
    // a later bad declaration leaves the good one in force
    let r = client
        .send(
            "PUT",
            "/_mosaic/providers",
            &[(an, &av)],
            b"{not json".to_vec(),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(client.get("/v1/git/repos/team/svc").await.status, 200);

    // the declaration is in the store: a restarted server has it from the start
    assert!(router.terminate(Duration::from_secs(10)).is_some());
    let router = spawn(&cfg);
    let client = Client::new(&format!("http://127.0.0.1:{}", router.port));
    let r = client.get("/v1/git/repos/team/svc").await;
    assert_eq!(r.status, 200, "{}\n{}", r.body, router.logs());
    drop(router);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declaration_written_by_another_instance_is_polled_from_redis() {
    let redis = Redis::start().expect("redis-server (apt-get install redis-server)");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_lists_every_path() {
    let up = FixtureServer::start().await;
    let router = spawn(&pair_config(&up.url(), &up.url(), ""));
    let client = Client::new(&format!("http://127.0.0.1:{}", router.port));
    let r = client.get("/v1/openapi.json").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = json(&r);
    assert!(v["openapi"].as_str().is_some_and(|s| s.starts_with("3.")));
    let paths = v["paths"].as_object().expect("paths");
    for p in [
        "/v1/git/repos/{owner}/{repo}",
        "/v1/git/repos/{owner}/{repo}/issues",
        "/v1/git/repos/{owner}/{repo}/issues/{number}/comments",
        "/v1/git/repos/{owner}/{repo}/pulls",
        "/v1/ci/runs",
        "/v1/ci/runs/{run}",
        "/v1/kb/pages",
        "/v1/kb/pages/{id}",
        "/v1/pm/issues",
        "/v1/pm/issues/{id}",
        "/v1/pm/issues/{id}/comments",
    ] {
        assert!(paths.contains_key(p), "{p} missing from {:?}", paths.keys());
    }
    assert_eq!(up.seen().len(), 0, "served by the router itself");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_continues_on_a_provider_of_its_kind_only() {
    let up = FixtureServer::start().await;
    let gh = format!("{}/gh", up.url());
    let mirror = format!("{}/gitea", up.url());
    up.on(
        "GET",
        "/gh/repos/octocat/Hello-World/issues",
        Reply::fixture(200, "github", "list_issues").header(
            "link",
            "<https://api.github.com/repositories/1296269/issues?page=2>; rel=\"next\"",
        ),
    );
    up.on(
        "GET",
        "/gitea/repos/octocat/Hello-World/issues",
        Reply::fixture(200, "gitea", "list_issues"),
    );
    let router = spawn(&pair_config(&gh, &mirror, ""));
    let client = Client::new(&format!("http://127.0.0.1:{}", router.port));
    let r = client.get("/v1/git/repos/octocat/Hello-World/issues").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = json(&r);
    assert_eq!(v["provider"], "gh");
    let cursor = v["next_cursor"]
        .as_str()
        .expect("a next cursor")
        .to_string();

    // page 2 goes to GitHub with its own page parameter
    let page2 = format!("/v1/git/repos/octocat/Hello-World/issues?cursor={cursor}");
    let r = client.get(&page2).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(json(&r)["provider"], "gh");
    let last = up.seen().pop().expect("GitHub was asked");
    assert!(last.target.contains("page=2"), "{}", last.target);

    // GitHub failing: a GitHub cursor is not sent to the Gitea mirror
    up.once(
        "/gh/repos/octocat/Hello-World/issues",
        (0..3).map(|_| Reply::json(503, &b"{\"message\":\"unavailable\"}"[..])),
    );
    let r = client.get(&page2).await;
    assert_eq!(r.status, 502, "{}", r.body);
    assert_eq!(json(&r)["provider"], "gh");
    assert_eq!(up.hits("/gitea/repos/octocat/Hello-World/issues"), 0);
    // while a first page does fail over
    up.once(
        "/gh/repos/octocat/Hello-World/issues",
        [Reply::json(503, &b"{\"message\":\"unavailable\"}"[..])],
    );
    let r = client.get("/v1/git/repos/octocat/Hello-World/issues").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(json(&r)["provider"], "mirror");
    // and a cursor that is not ours is a clear 400
    let r = client
        .get("/v1/git/repos/octocat/Hello-World/issues?cursor=garbage!")
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
}
