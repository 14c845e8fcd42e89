//! `mosaic_providers::v1`: the host-independent plan (who may answer a `/v1` operation), the
//! per-attempt rewrite with the provider's plugin, and the normalized answer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mosaic_core::config::V1_PIN_HEADER;
use mosaic_core::engine::Attempt;
use mosaic_core::http::Method;
use mosaic_core::{Instant, RawConfig, Router};
use mosaic_providers::api::{encode_cursor, Operation, Selector};
use mosaic_providers::declarative::Registry;
use mosaic_providers::v1::{answer, plan, prepare, rewrite_attempt, serves, Reply};

const CFG: &str = r#"
[[providers]]
id = "gh"
kind = "github"
base_url = "https://api.github.com"
auth = { scheme = "bearer", secret = "env:GH" }
[[providers]]
id = "mirror"
kind = "gitea"
base_url = "https://gitea.example.com/api/v1"
auth = { scheme = "header", header = "X-Engine-Cred", secret = "env:GITEA" }
[[providers]]
id = "ghe"
kind = "github"
base_url = "https://ghe.example.com/api/v3"
[[providers]]
id = "lab"
kind = "gitlab"
base_url = "https://gitlab.com/api/v4"

[v1.git]
providers = ["gh", "mirror", "ghe"]

[v1.ci]
providers = ["lab"]
"#;

fn router() -> Router {
    let raw: RawConfig = toml::from_str(CFG).unwrap();
    let mut cfg = raw.validate().unwrap_or_else(|e| panic!("{e}"));
    Registry::new().install_rate_limits(&mut cfg);
    Router::new(cfg, |r| match r.to_string().as_str() {
        "env:GH" => Some(String::from("gh-secret")),
        "env:GITEA" => Some(String::from("gitea-secret")),
        _ => None,
    })
}

fn target(path: &str, query: Option<&str>) -> String {
    query.map_or_else(|| path.to_string(), |q| format!("{path}?{q}"))
}

fn pin(r: &Router, method: Method, path: &str, query: Option<&str>, body: &[u8]) -> Option<String> {
    prepare(
        r,
        &Registry::new(),
        method,
        &target(path, query),
        &[],
        body,
        "rid",
    )
    .unwrap_or_else(|a| panic!("{}", String::from_utf8_lossy(&a.body)))
    .pin
}

fn status(r: &Router, method: Method, path: &str, query: Option<&str>, body: &[u8]) -> u16 {
    match prepare(
        r,
        &Registry::new(),
        method,
        &target(path, query),
        &[],
        body,
        "rid",
    ) {
        Ok(p) => panic!("expected a refusal, got {p:?}"),
        Err(a) => a.status,
    }
}

#[test]
fn reads_use_the_family_writes_the_primary_and_selectors_narrow() {
    let r = router();
    let repo = "/v1/git/repos/octocat/Hello-World";
    assert_eq!(
        pin(&r, Method::Get, repo, None, b""),
        None,
        "reads: every provider"
    );
    assert_eq!(
        pin(
            &r,
            Method::Post,
            &format!("{repo}/issues"),
            None,
            br#"{"title":"t"}"#
        )
        .as_deref(),
        Some("gh"),
        "writes: the primary only"
    );
    assert_eq!(
        pin(&r, Method::Get, repo, Some("provider=mirror"), b"").as_deref(),
        Some("mirror")
    );
    let c = encode_cursor("github", "2");
    assert_eq!(
        pin(
            &r,
            Method::Get,
            &format!("{repo}/issues"),
            Some(&format!("cursor={c}")),
            b""
        )
        .as_deref(),
        Some("kind:github"),
        "a GitHub cursor continues on the GitHub providers only"
    );
    let c = encode_cursor("gitea", "2");
    assert_eq!(
        pin(
            &r,
            Method::Get,
            &format!("{repo}/issues"),
            Some(&format!("cursor={c}")),
            b""
        )
        .as_deref(),
        Some("mirror")
    );
    // refusals
    assert_eq!(
        status(&r, Method::Get, repo, Some("provider=lab"), b""),
        400
    );
    let c = encode_cursor("gitlab", "2");
    assert_eq!(
        status(
            &r,
            Method::Get,
            &format!("{repo}/issues"),
            Some(&format!("cursor={c}")),
            b""
        ),
        400
    );
    assert_eq!(
        status(&r, Method::Get, "/v1/kb/pages/1", None, b""),
        404,
        "kb not configured"
    );
    assert_eq!(status(&r, Method::Get, "/v1/nope", None, b""), 404);
    // a family with one provider: its route as is
    assert_eq!(
        pin(&r, Method::Get, "/v1/ci/runs/5", Some("project=a%2Fb"), b""),
        None
    );
    // every pin names a generated route
    let git = r.config.v1_family("git").unwrap();
    for p in ["gh", "mirror", "ghe", "kind:github"] {
        assert!(git.pin_route(p).is_some(), "{p}");
    }
}

#[test]
fn providers_that_cannot_map_the_operation_are_left_out() {
    // a provider whose kind has no plugin yet (a declaration not loaded) is skipped
    let raw: RawConfig = toml::from_str(
        r#"
[[providers]]
id = "acme"
kind = "acme-git"
base_url = "https://git.acme.example"
[[providers]]
id = "gh"
kind = "github"
base_url = "https://api.github.com"
[v1.git]
providers = ["acme", "gh"]
"#,
    )
    .unwrap();
    let cfg = raw.validate().unwrap();
    let reg = Registry::new();
    let (op, sel) =
        mosaic_providers::api::parse_v1(Method::Get, "/v1/git/repos/a/b", None, b"").unwrap();
    assert_eq!(
        plan(&cfg, &reg, &op, &sel, "rid").unwrap().as_deref(),
        Some("gh"),
        "acme has no plugin yet: GitHub answers alone"
    );
    let sel = Selector {
        provider: Some(String::from("acme")),
        cursor_kind: None,
    };
    let a = plan(&cfg, &reg, &op, &sel, "rid").unwrap_err();
    assert_eq!(a.status, 400);
    assert!(String::from_utf8_lossy(&a.body).contains("no plugin for provider kind `acme-git`"));
}

fn attempt(r: &Router, provider: &str) -> Attempt {
    Attempt {
        id: 1,
        provider: r.config.provider_index(provider).unwrap(),
        provider_id: provider.to_string(),
        method: Method::Get,
        url: String::from("https://ignored.example/v1/git/repos/a/b"),
        headers: vec![
            (String::from("authorization"), String::from("Bearer engine")),
            (String::from("x-engine-cred"), String::from("engine")),
            (String::from("accept"), String::from("text/html")),
            (String::from("accept-encoding"), String::from("gzip")),
            (String::from("content-type"), String::from("text/plain")),
            (String::from("traceparent"), String::from("00-abc")),
        ],
        deadline: Instant::MAX,
        allow_private: false,
    }
}

#[test]
fn attempts_are_rewritten_with_the_attempted_providers_plugin() {
    let r = router();
    let reg = Registry::new();
    let op = Operation::GitCreateIssue {
        owner: "octocat".into(),
        repo: "Hello-World".into(),
        title: "t".into(),
        body: None,
    };
    let (a, body) = rewrite_attempt(&r, &reg, &op, None, &attempt(&r, "gh")).unwrap();
    assert_eq!(a.method, Method::Post);
    assert_eq!(
        a.url,
        "https://api.github.com/repos/octocat/Hello-World/issues"
    );
    let h = |a: &Attempt, n: &str| -> Vec<String> {
        a.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
            .collect()
    };
    assert_eq!(h(&a, "authorization"), ["Bearer gh-secret"]);
    assert_eq!(h(&a, "accept"), ["application/vnd.github+json"]);
    assert_eq!(h(&a, "content-type"), ["application/json"]);
    assert!(h(&a, "accept-encoding").is_empty());
    assert_eq!(
        h(&a, "traceparent"),
        ["00-abc"],
        "other engine headers stay"
    );
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&body.unwrap()).unwrap()["title"],
        "t"
    );

    // Gitea: the engine's own credential header goes, the plugin's `token` scheme comes
    let (a, _) = rewrite_attempt(&r, &reg, &op, None, &attempt(&r, "mirror")).unwrap();
    assert_eq!(
        a.url,
        "https://gitea.example.com/api/v1/repos/octocat/Hello-World/issues"
    );
    assert!(h(&a, "x-engine-cred").is_empty());
    assert_eq!(h(&a, "authorization"), ["token gitea-secret"]);

    // no secret configured: no credential at all
    let (a, _) = rewrite_attempt(&r, &reg, &op, None, &attempt(&r, "ghe")).unwrap();
    assert!(h(&a, "authorization").is_empty());
    assert!(!a.headers.iter().any(|(n, _)| n == V1_PIN_HEADER));
}

#[test]
fn answers_are_normalized_or_keep_the_providers_error() {
    let r = router();
    let reg = Registry::new();
    let op = Operation::GitGetRepo {
        owner: "octocat".into(),
        repo: "Hello-World".into(),
    };
    let body = std::fs::read(format!(
        "{}/../tests/fixtures/providers/gitea/get_repo.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let reply = Reply {
        provider: "mirror",
        status: 200,
        headers: &[],
        body: &body,
    };
    let a = answer(&r.config, &reg, &op, &reply, "rid");
    assert_eq!(a.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
    assert_eq!(v["provider"], "mirror");
    assert_eq!(v["data"]["full_name"], "octocat/Hello-World");
    assert!(a
        .headers
        .contains(&(String::from("x-mosaic-provider"), String::from("mirror"))));

    let headers = [(
        String::from("content-type"),
        String::from("application/json"),
    )];
    let reply = Reply {
        provider: "gh",
        status: 404,
        headers: &headers,
        body: br#"{"message":"Not Found"}"#,
    };
    let a = answer(&r.config, &reg, &op, &reply, "rid");
    assert_eq!(a.status, 404);
    let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
    assert_eq!(v["provider_message"], "Not Found");
    assert_eq!(v["request_id"], "rid");
}

#[test]
fn only_configured_families_are_served() {
    let r = router();
    assert!(serves(&r.config, "/v1/git/repos/a/b"));
    assert!(serves(&r.config, "/v1/kb/pages"), "a 404 problem, from /v1");
    assert!(serves(&r.config, "/v1/openapi.json"));
    assert!(!serves(&r.config, "/v1beta/x"));
    assert!(!serves(&r.config, "/v1/other/x"));
    let raw: RawConfig =
        toml::from_str("[[providers]]\nid = \"p\"\nbase_url = \"https://example.com\"\n").unwrap();
    assert!(
        !serves(&raw.validate().unwrap(), "/v1/git/repos/a/b"),
        "without [v1], /v1 is proxied as before"
    );
}

#[test]
fn callers_are_authenticated_before_anything_about_the_config_is_told() {
    let raw: RawConfig = toml::from_str(&format!(
        "{CFG}\n[[tenants]]\nname = \"agents\"\nkeys = [\"sha256:{}\"]\n",
        "0".repeat(64)
    ))
    .unwrap();
    let r = Router::new(raw.validate().unwrap(), |_| None);
    for target in [
        "/v1/git/repos/a/b?provider=nope",
        "/v1/kb/pages/1",
        "/v1/nope",
    ] {
        let a = prepare(&r, &Registry::new(), Method::Get, target, &[], b"", "rid").unwrap_err();
        assert_eq!(a.status, 401, "{target}");
        let body = String::from_utf8_lossy(&a.body);
        assert!(!body.contains("gh") && !body.contains("mirror"), "{body}");
    }
}

#[test]
fn a_tenants_own_credential_is_sent_in_the_plugins_scheme() {
    let raw: RawConfig = toml::from_str(&format!(
        "{CFG}\n[[tenants]]\nname = \"agents\"\nkeys = [\"sha256:{}\"]\ncredentials = {{ mirror = \"env:AGENTS_GITEA\" }}\n",
        "0".repeat(64)
    ))
    .unwrap();
    let r = Router::new(raw.validate().unwrap(), |r| match r.to_string().as_str() {
        "env:GITEA" => Some(String::from("gitea-secret")),
        "env:AGENTS_GITEA" => Some(String::from("agents-secret")),
        _ => None,
    });
    let op = Operation::GitGetRepo {
        owner: "octocat".into(),
        repo: "Hello-World".into(),
    };
    let auth = |tenant| {
        let (a, _) =
            rewrite_attempt(&r, &Registry::new(), &op, tenant, &attempt(&r, "mirror")).unwrap();
        a.headers
            .iter()
            .filter(|(n, _)| n == "authorization")
            .map(|(_, v)| v.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(auth(Some(0)), ["token agents-secret"]);
    assert_eq!(auth(None), ["token gitea-secret"]);
}
