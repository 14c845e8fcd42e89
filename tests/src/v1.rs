//! `/v1` and provider-plugin scenarios any host can run: the normalized API, failover inside a
//! family, the pin header, declarative providers and plugin rate-limit headers, against
//! provider stand-ins ([`FixtureServer`]) answering with the documented shapes under
//! `tests/fixtures/providers/`.
//!
//! Each scenario takes a [`HostUnderTest`]; `tests/workers.rs` runs them on the Workers host
//! (the native server's own `/v1` suite is `tests/local_v1.rs`).

use std::time::{SystemTime, UNIX_EPOCH};

use mosaic_core::config::V1_PIN_HEADER;
use serde_json::Value;

use crate::fixtures::{FixtureServer, Reply};
use crate::host::{HostUnderTest, Running, ADMIN_TOKEN};
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
        "/v1/ci/runs",
        "/v1/kb/pages/{id}",
        "/v1/pm/issues",
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
