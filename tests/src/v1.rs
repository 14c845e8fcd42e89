//! `/v1` and provider-plugin scenarios any host can run: the normalized API, failover inside a
//! family, the pin header, declarative providers and plugin rate-limit headers, against
//! provider stand-ins ([`FixtureServer`]) answering with the documented shapes under
//! `tests/fixtures/providers/`.
//!
//! Each scenario takes a [`HostUnderTest`]; `tests/local_v1.rs`, `tests/workers.rs` and
//! `tests/spin.rs` run them on every host (what needs the native store — declarations that
//! survive a restart in the file store, polled from Redis — stays in `tests/local_v1.rs`).

use std::time::{SystemTime, UNIX_EPOCH};

use mosaic_core::config::V1_PIN_HEADER;
use serde_json::Value;

use crate::fixtures::{FixtureServer, Reply};
use crate::host::{HostUnderTest, Running, ADMIN_TOKEN};
use crate::mock::closed_port_url;
use crate::scenarios::{server, Client, Resp, UPSTREAM_TOKEN};

/// The repository every git scenario reads.
pub const REPO: &str = "/v1/git/repos/octocat/Hello-World";

/// A `[[providers]]` block of plugin `kind` at `base`, with the test upstream credential.
#[must_use]
pub fn provider(id: &str, kind: &str, base: &str) -> String {
    format!(
        "[[providers]]\nid = \"{id}\"\nkind = \"{kind}\"\nbase_url = \"{base}\"\nallow_private = true\nauth = {{ scheme = \"bearer\", secret = \"secret:MOSAIC_TEST_UPSTREAM\" }}\n\n"
    )
}

/// The body as JSON.
///
/// # Panics
/// When it is not JSON.
#[must_use]
pub fn json(r: &Resp) -> Value {
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("not JSON ({e}): {r:?}"))
}

/// The `authorization` header of an admin request.
#[must_use]
pub fn admin() -> (&'static str, String) {
    ("authorization", format!("Bearer {ADMIN_TOKEN}"))
}

/// Two git providers serving `/v1/git`: `gh` (GitHub at `gh`) first, `mirror` (Gitea at
/// `mirror`) second, three attempts with short backoffs; `extra` is appended.
#[must_use]
pub fn pair_config(gh: &str, mirror: &str, extra: &str) -> String {
    format!(
        "{}{}{}[v1.git]\nproviders = [\"gh\", \"mirror\"]\nretry = {{ attempts = 3, backoff_base_ms = 20, backoff_max_ms = 50 }}\n{extra}",
        server(""),
        provider("gh", "github", gh),
        provider("mirror", "gitea", mirror),
    )
}

/// Unix seconds a minute from now (a rate-limit reset).
#[must_use]
pub fn reset_in_a_minute() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + 60
}

fn start(host: &dyn HostUnderTest, config: &str) -> (Box<dyn Running>, Client) {
    let r = host.start(config).unwrap_or_else(|e| {
        panic!(
            "{}: router did not start: {e}\nconfig:\n{config}",
            host.name()
        )
    });
    let c = Client::new(&r.base_url());
    (r, c)
}

/// A stand-in with GitHub under `/gh` and Gitea under `/gitea` both serving [`REPO`].
async fn git_pair() -> (FixtureServer, String, String) {
    let up = FixtureServer::start().await;
    up.on(
        "GET",
        "/gh/repos/octocat/Hello-World",
        Reply::fixture(200, "github", "get_repo"),
    );
    up.on(
        "GET",
        "/gitea/repos/octocat/Hello-World",
        Reply::fixture(200, "gitea", "get_repo"),
    );
    let (gh, mirror) = (format!("{}/gh", up.url()), format!("{}/gitea", up.url()));
    (up, gh, mirror)
}

/// `GET /v1/openapi.json` is the router's own 200 JSON document listing the `/v1` paths.
pub async fn openapi_document(host: &dyn HostUnderTest) {
    let up = FixtureServer::start().await;
    let (r, c) = start(host, &pair_config(&up.url(), &up.url(), ""));
    let resp = c.get("/v1/openapi.json").await;
    assert_eq!(resp.status, 200, "{resp:?}\n{}", r.logs());
    assert!(
        resp.header("content-type")
            .is_some_and(|t| t.starts_with("application/json")),
        "{resp:?}"
    );
    let v = json(&resp);
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
    assert!(up.seen().is_empty(), "served by the router itself");
}

/// A `/v1` read fails over from a failing GitHub to the Gitea mirror: the attempt is rewritten
/// by Gitea's plugin and the answer is the same normalized envelope GitHub's is.
pub async fn v1_read_fails_over_within_the_family(host: &dyn HostUnderTest) {
    let (up, gh, mirror) = git_pair().await;
    up.once(
        "/gh/repos/octocat/Hello-World",
        [Reply::json(503, &b"{\"message\":\"unavailable\"}"[..])],
    );
    let (r, c) = start(host, &pair_config(&gh, &mirror, ""));
    let resp = c.get(REPO).await;
    assert_eq!(resp.status, 200, "{resp:?}\n{}", r.logs());
    let via_mirror = json(&resp);
    assert_eq!(via_mirror["provider"], "mirror", "{via_mirror}");
    assert_eq!(resp.header("x-mosaic-provider"), Some("mirror"));
    assert_eq!(via_mirror["data"]["full_name"], "octocat/Hello-World");
    assert_eq!(up.hits("/gh/repos/octocat/Hello-World"), 1);
    assert_eq!(up.hits("/gitea/repos/octocat/Hello-World"), 1);
    let seen = up.seen();
    let gitea = seen
        .iter()
        .find(|s| s.target.starts_with("/gitea/"))
        .expect("the mirror was asked");
    assert_eq!(
        gitea.header("authorization"),
        Some(format!("token {UPSTREAM_TOKEN}").as_str()),
        "the attempt was rewritten with Gitea's plugin"
    );
    let github = seen
        .iter()
        .find(|s| s.target.starts_with("/gh/"))
        .expect("GitHub was asked");
    assert_eq!(github.header("x-github-api-version"), Some("2022-11-28"));

    let resp = c.get(REPO).await;
    assert_eq!(resp.status, 200, "{resp:?}");
    let via_github = json(&resp);
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
    assert!(!r.logs().contains(UPSTREAM_TOKEN), "secrets never logged");
}

/// A caller's `x-mosaic-v1-pin` neither picks the provider nor reaches one; `?provider=` does
/// pick it.
pub async fn v1_pin_header_is_not_forwarded(host: &dyn HostUnderTest) {
    let (up, gh, mirror) = git_pair().await;
    let (r, c) = start(host, &pair_config(&gh, &mirror, ""));
    let resp = c
        .send("GET", REPO, &[(V1_PIN_HEADER, "mirror")], Vec::new())
        .await;
    assert_eq!(resp.status, 200, "{resp:?}\n{}", r.logs());
    assert_eq!(json(&resp)["provider"], "gh", "the caller's pin is ignored");
    let resp = c
        .send(
            "GET",
            &format!("{REPO}?provider=mirror"),
            &[(V1_PIN_HEADER, "gh")],
            Vec::new(),
        )
        .await;
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(json(&resp)["provider"], "mirror", "?provider= pins");
    let seen = up.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    for s in &seen {
        assert_eq!(s.header(V1_PIN_HEADER), None, "forwarded: {s:?}");
    }
}

/// A configured provider of a built-in kind gets its plugin's rate-limit headers installed on
/// a plain proxy route: GitHub's `x-ratelimit-remaining: 0` cools it down until its reset, so
/// the next requests go to the fallback without touching GitHub (it never answers 429).
pub async fn plugin_rate_limit_headers_cool_a_provider_down(host: &dyn HostUnderTest) {
    let up = FixtureServer::start().await;
    let path = "/gh/repos/octocat/Hello-World";
    up.on(
        "GET",
        path,
        Reply::fixture(200, "github", "get_repo")
            .header("x-ratelimit-limit", "5000")
            .header("x-ratelimit-remaining", "0")
            .header("x-ratelimit-reset", &reset_in_a_minute().to_string()),
    );
    up.on(
        "GET",
        "/fallback/repos/octocat/Hello-World",
        Reply::json(200, &b"{\"from\":\"fallback\"}"[..]),
    );
    let cfg = format!(
        "{}{}[[providers]]\nid = \"fallback\"\nbase_url = \"{}/fallback\"\nallow_private = true\n\n\
         [[routes]]\nname = \"r\"\nmatch = {{ path = \"/repos/{{*rest}}\" }}\nproviders = [\"gh\", \"fallback\"]\n",
        server(""),
        provider("gh", "github", &format!("{}/gh", up.url())),
        up.url()
    );
    let (r, c) = start(host, &cfg);
    let resp = c.get("/repos/octocat/Hello-World").await;
    assert_eq!(resp.status, 200, "{resp:?}\n{}", r.logs());
    assert_eq!(
        resp.header("x-mosaic-provider"),
        Some("gh"),
        "the last request of the budget is answered"
    );
    for _ in 0..3 {
        let resp = c.get("/repos/octocat/Hello-World").await;
        assert_eq!(resp.status, 200, "{resp:?}");
        assert_eq!(
            resp.header("x-mosaic-provider"),
            Some("fallback"),
            "GitHub cools down until its reset: {resp:?}"
        );
    }
    assert_eq!(up.hits(path), 1, "GitHub is not called again");
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
        "GitHub cools down until its reset: {cooling} ms\n{state}"
    );
}

/// A provider kind declared at run time (`PUT /_mosaic/providers`) serves `/v1` at once;
/// invalid declarations are refused with their key paths and the ones in force stay.
pub async fn declared_provider_serves_without_a_redeploy(host: &dyn HostUnderTest) {
    const GOOD: &str = r#"{"providers": [{"kind": "acme-git",
        "base_url": "https://git.acme.example/api",
        "auth": {"scheme": "header", "header": "X-Acme-Token"},
        "operations": {"git.get_repo": {"method": "GET", "path": "/v2/projects/{owner}/{repo}",
            "response": {"id": "/uid", "name": "/slug", "full_name": "/path", "owner": "/group"}}}}]}"#;
    const BAD: &str = r#"{"providers": [{"kind": "acme-git", "base_url": "not a url",
        "operations": {"git.get_repo": {"method": "FETCH", "path": "/v2/projects/{own}"}}}]}"#;
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
        provider("acme", "acme-git", &format!("{}/acme", up.url())),
    );
    let (r, c) = start(host, &cfg);
    let resp = c.get("/v1/git/repos/team/svc").await;
    assert_eq!(resp.status, 400, "not declared yet: {resp:?}\n{}", r.logs());
    let (an, av) = admin();
    let put = |body: &'static str, auth: bool| {
        let c = c.clone();
        let av = av.clone();
        async move {
            let h: Vec<(&str, &str)> = if auth {
                vec![(an, av.as_str())]
            } else {
                vec![]
            };
            c.send("PUT", "/_mosaic/providers", &h, body.as_bytes().to_vec())
                .await
        }
    };
    assert_eq!(
        put(GOOD, false).await.status,
        401,
        "the admin token is needed"
    );
    let resp = put(BAD, true).await;
    assert_eq!(resp.status, 400, "{resp:?}");
    let errors = json(&resp)["errors"].to_string();
    for key in [
        "providers[0].base_url",
        "providers[0].operations.git.get_repo",
    ] {
        assert!(errors.contains(key), "{key} missing from {errors}");
    }
    let resp = put(GOOD, true).await;
    assert_eq!(resp.status, 200, "{resp:?}\n{}", r.logs());
    let resp = c.get("/v1/git/repos/team/svc").await;
    assert_eq!(resp.status, 200, "{resp:?}\n{}", r.logs());
    let v = json(&resp);
    assert_eq!(
        (&v["provider"], &v["data"]["full_name"]),
        (&"acme".into(), &"team/svc".into())
    );
    let s = up.seen().pop().expect("acme was asked");
    assert_eq!(s.header("x-acme-token"), Some(UPSTREAM_TOKEN));
    let resp = c
        .send("GET", "/_mosaic/providers", &[(an, &av)], Vec::new())
        .await;
    assert_eq!(json(&resp)["declared"][0], "acme-git", "{resp:?}");
    assert_eq!(put("{not json", true).await.status, 400);
    assert_eq!(
        c.get("/v1/git/repos/team/svc").await.status,
        200,
        "the good set stays"
    );
}

/// `Basic base64("upstream-credential")`.
const BASIC: &str = "Basic dXBzdHJlYW0tY3JlZGVudGlhbA==";

/// One operation of one built-in provider: what the caller sends, what the provider must get,
/// what the normalized answer must hold.
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

#[allow(clippy::too_many_lines)]
fn builtin_cases() -> Vec<Case> {
    let bearer = "Bearer upstream-credential";
    let token = "token upstream-credential";
    vec![
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
    ]
}

/// Every built-in provider of every family (git, ci, kb, pm) serves one operation: the request
/// is mapped to the provider's own API with its own auth header (never the caller's), and the
/// answer is the normalized envelope; a provider's error keeps its own message; an operation a
/// provider does not map and a path that is no operation are clear 400 and 404.
pub async fn every_family_serves_its_operations(host: &dyn HostUnderTest) {
    let up = FixtureServer::start().await;
    let cases = builtin_cases();
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
    let (router, client) = start(host, &cfg);
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
        assert_eq!(
            r.status,
            c.reply.0,
            "{}: {}\n{}",
            c.id,
            r.body,
            router.logs()
        );
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

/// A `/v1` write goes to the family's primary only, even when the primary refuses the
/// connection (502, the mirror never sees it), while a read fails over; `?provider=` sends a
/// write to the provider named, and only there.
pub async fn v1_writes_go_to_the_primary_only_while_reads_fail_over(host: &dyn HostUnderTest) {
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
    let (router, client) = start(host, &pair_config(&closed_port_url(), &mirror, ""));
    let r = client
        .send(
            "POST",
            "/v1/git/repos/octocat/Hello-World/issues",
            &[("content-type", "application/json")],
            br#"{"title":"Found a bug","body":"It crashes"}"#.to_vec(),
        )
        .await;
    assert_eq!(
        r.status,
        502,
        "the primary's failure, not the mirror: {}\n{}",
        r.body,
        router.logs()
    );
    assert_eq!(
        up.hits("/gitea/repos/octocat/Hello-World/issues"),
        0,
        "a write never reaches the mirror"
    );
    let r = client.get(REPO).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(json(&r)["provider"], "mirror");
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

/// Inside a `/v1` family, GitHub's `x-ratelimit-remaining: 0` cools it down until its reset:
/// the next reads go to the mirror without touching GitHub, so it never answers 429.
pub async fn v1_rate_limit_headers_cool_a_provider_down_before_any_429(host: &dyn HostUnderTest) {
    let up = FixtureServer::start().await;
    let gh = format!("{}/gh", up.url());
    let mirror = format!("{}/gitea", up.url());
    up.on(
        "GET",
        "/gh/repos/octocat/Hello-World",
        Reply::fixture(200, "github", "get_repo")
            .header("x-ratelimit-limit", "5000")
            .header("x-ratelimit-remaining", "0")
            .header("x-ratelimit-reset", &reset_in_a_minute().to_string()),
    );
    up.on(
        "GET",
        "/gitea/repos/octocat/Hello-World",
        Reply::fixture(200, "gitea", "get_repo"),
    );
    let (router, client) = start(host, &pair_config(&gh, &mirror, ""));
    let r = client.get(REPO).await;
    assert_eq!(r.status, 200, "{}\n{}", r.body, router.logs());
    assert_eq!(
        json(&r)["provider"],
        "gh",
        "the last request of the budget is answered"
    );
    for _ in 0..3 {
        let r = client.get(REPO).await;
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

/// A list's `next_cursor` continues on a provider of the kind that made it: page 2 goes to
/// GitHub with its own page parameter; with GitHub failing, a GitHub cursor is not sent to the
/// Gitea mirror (502) while a first page fails over; a cursor that is not ours is 400.
pub async fn a_cursor_continues_on_a_provider_of_its_kind_only(host: &dyn HostUnderTest) {
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
    let (router, client) = start(host, &pair_config(&gh, &mirror, ""));
    let r = client.get("/v1/git/repos/octocat/Hello-World/issues").await;
    assert_eq!(r.status, 200, "{}\n{}", r.body, router.logs());
    let v = json(&r);
    assert_eq!(v["provider"], "gh");
    let cursor = v["next_cursor"]
        .as_str()
        .expect("a next cursor")
        .to_string();

    let page2 = format!("/v1/git/repos/octocat/Hello-World/issues?cursor={cursor}");
    let r = client.get(&page2).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(json(&r)["provider"], "gh");
    let last = up.seen().pop().expect("GitHub was asked");
    assert!(last.target.contains("page=2"), "{}", last.target);

    up.once(
        "/gh/repos/octocat/Hello-World/issues",
        (0..3).map(|_| Reply::json(503, &b"{\"message\":\"unavailable\"}"[..])),
    );
    let r = client.get(&page2).await;
    assert_eq!(r.status, 502, "{}", r.body);
    assert_eq!(json(&r)["provider"], "gh");
    assert_eq!(up.hits("/gitea/repos/octocat/Hello-World/issues"), 0);
    up.once(
        "/gh/repos/octocat/Hello-World/issues",
        [Reply::json(503, &b"{\"message\":\"unavailable\"}"[..])],
    );
    let r = client.get("/v1/git/repos/octocat/Hello-World/issues").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(json(&r)["provider"], "mirror");
    let r = client
        .get("/v1/git/repos/octocat/Hello-World/issues?cursor=garbage!")
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
}
