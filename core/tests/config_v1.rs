//! The `[v1]` section: which providers serve the normalized `/v1` API, expanded into ordinary
//! routes (`v1.<family>` and `v1.<family>@<pin>`), validated with key paths.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mosaic_core::config::V1_PIN_HEADER;
use mosaic_core::http::Method;
use mosaic_core::RawConfig;

const PROVIDERS: &str = r#"
[[providers]]
id = "gh"
kind = "github"
base_url = "https://api.github.com"
[[providers]]
id = "ghe"
kind = "github"
base_url = "https://ghe.example.com/api/v3"
[[providers]]
id = "mirror"
kind = "gitea"
base_url = "https://gitea.example.com/api/v1"
[[providers]]
id = "linear"
kind = "linear"
base_url = "https://api.linear.app"
"#;

fn errors(extra: &str) -> Vec<String> {
    let raw: RawConfig = toml::from_str(&format!("{PROVIDERS}{extra}")).expect("parses");
    match raw.validate() {
        Ok(_) => vec![],
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn families_expand_into_a_family_route_and_pinned_routes() {
    let raw: RawConfig = toml::from_str(&format!(
        r#"{PROVIDERS}
[[tenants]]
name = "agents"
keys = ["sha256:{}"]
routes = ["v1.git"]

[v1.git]
providers = ["gh", "mirror", "ghe"]
retry = {{ attempts = 3 }}

[v1.pm]
providers = ["linear"]
equivalent_reads = false
"#,
        "0".repeat(64)
    ))
    .unwrap();
    let c = raw.validate().unwrap_or_else(|e| panic!("{e}"));
    let git = c.v1_family("git").unwrap();
    assert!(git.equivalent_reads);
    let names = |ix: &[usize]| {
        ix.iter()
            .map(|&i| c.providers[i].id.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&git.providers), ["gh", "mirror", "ghe"]);
    let family = &c.routes[git.route];
    assert_eq!(family.name, "v1.git");
    assert_eq!(names(&family.providers), ["gh", "mirror", "ghe"]);
    assert!(!family.cache.enabled, "/v1 answers are never cached");
    let pins: Vec<&str> = git.pins.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(pins, ["gh", "mirror", "ghe", "kind:github"]);
    let kind = &c.routes[git.pin_route("kind:github").unwrap()];
    assert_eq!(kind.name, "v1.git@kind:github");
    assert_eq!(names(&kind.providers), ["gh", "ghe"]);
    assert_eq!(
        kind.retry.max_attempts, 3,
        "pins keep the family's policies"
    );

    // the pin header selects the pinned route; without it the family route answers
    let none: Vec<(String, String)> = Vec::new();
    let m = c
        .table
        .lookup(Method::Post, None, "/v1/git/repos/a/b/issues", &none[..])
        .unwrap();
    assert_eq!(m.route, git.route);
    let pinned = [(String::from(V1_PIN_HEADER), String::from("mirror"))];
    let m = c
        .table
        .lookup(Method::Post, None, "/v1/git/repos/a/b/issues", &pinned[..])
        .unwrap();
    assert_eq!(c.routes[m.route].name, "v1.git@mirror");

    // reads stay on the primary when the providers are not equivalent
    let pm = c.v1_family("pm").unwrap();
    assert!(!pm.equivalent_reads);
    assert_eq!(names(&c.routes[pm.route].providers), ["linear"]);
    assert_eq!(c.v1_family("ci").map(|f| f.route), None);

    // a tenant allowed `v1.git` may use every route of the family
    let allowed = c.tenants[0].routes.as_ref().unwrap();
    assert!(allowed.contains(&git.route));
    for (_, r) in &git.pins {
        assert!(allowed.contains(r));
    }
    assert!(!allowed.contains(&pm.route));
}

#[test]
fn family_errors_name_their_key_paths() {
    let e = errors(
        r#"
[v1.git]
providers = ["gh", "nope", "gh"]
strategy = "fastest"
cache = { enabled = true }

[v1.kb]
providers = []
"#,
    );
    let has = |path: &str| e.iter().any(|x| x.starts_with(path));
    assert!(has("v1.git.providers[1]: unknown provider `nope`"), "{e:?}");
    assert!(
        has("v1.git.providers[2]: provider `gh` listed twice"),
        "{e:?}"
    );
    assert!(has("v1.git.strategy: unknown strategy"), "{e:?}");
    assert!(has("v1.git.cache: /v1 answers are not cached"), "{e:?}");
    assert!(
        has("v1.kb.providers: a route needs at least one provider"),
        "{e:?}"
    );
}

#[test]
fn unknown_keys_and_taken_names_are_reported() {
    let raw: Result<RawConfig, _> =
        toml::from_str(&format!("{PROVIDERS}\n[v1.vcs]\nproviders = [\"gh\"]\n"));
    assert!(raw.is_err(), "unknown family");
    let e = errors(
        r#"
[[routes]]
name = "v1.git"
match = { path = "/other/{*rest}" }
providers = ["gh"]
[v1.git]
providers = ["gh"]
"#,
    );
    assert!(
        e.iter()
            .any(|x| x.starts_with("v1.git: route name `v1.git` is taken by routes[0]")),
        "{e:?}"
    );
    let e = errors(
        r#"
[[routes]]
name = "mine"
match = { path = "/v1/git/{*rest}" }
providers = ["gh"]
[v1.git]
providers = ["mirror"]
"#,
    );
    assert!(
        e.iter()
            .any(|x| x.starts_with("v1.git.match: conflicts with route `mine`")),
        "{e:?}"
    );
}
