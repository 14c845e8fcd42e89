//! Config validation: every error is reported, each with its key path.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mosaic_core::RawConfig;

fn errors(toml_text: &str) -> Vec<String> {
    let raw: RawConfig = toml::from_str(toml_text).expect("parses");
    match raw.validate() {
        Ok(_) => vec![],
        Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn collects_every_error_with_its_key_path() {
    let e = errors(
        r#"
[server]
admin_token = "plaintext-token"
listen = "nowhere"
workers = 5000
ca_file = " "
[store]
kind = "postgres"
[[providers]]
id = "gh"
base_url = "ftp://github.com"
[[providers]]
id = "gh"
base_url = "https://10.0.0.5"
region = "mars-north"
weight = 0
cost = -1
auth = { scheme = "oauth", secret = "env:X" }
[[routes]]
name = "a"
match = { path = "/a/{x}", methods = ["FETCH"] }
providers = ["gh", "gitlab"]
strategy = "fastest"
retry = { attempts = 0, budget_ratio = 11.0, on_status = [99] }
breaker = { window = "sliding", failure_rate = 1.5, failure_on = ["6xx"] }
[[routes]]
name = "a"
match = { path = "a/b" }
providers = []
[[webhooks]]
name = "gh"
scheme = "gothub"
secrets = ["hunter2"]
tenant = "nobody"
"#,
    );
    let want = [
        "server.admin_token: expected a secret reference",
        "server.listen: `nowhere` is not an address",
        "server.ca_file: must be the path of a PEM file of root certificates",
        "server.workers: 5000 worker threads is too many; use 0 for one per CPU",
        "store.kind: unknown store kind \"postgres\"; expected one of memory, file, redis",
        "providers[0].base_url: `ftp://github.com` is not an http(s) URL",
        "providers[1].id: duplicate provider id `gh`",
        "providers[1].base_url: `https://10.0.0.5` is a private, loopback or link-local address; set allow_private = true",
        "providers[1].region: unknown region \"mars-north\"",
        "providers[1].cost: must be a finite number ≥ 0",
        "providers[1].weight: must be at least 1",
        "providers[1].auth.scheme: unknown auth scheme \"oauth\"; expected one of bearer, token, basic, header, none",
        "routes[0].match.methods[0]: unknown method \"FETCH\"",
        "routes[0].providers[1]: unknown provider `gitlab`",
        "routes[0].strategy: unknown strategy \"fastest\"; expected one of priority, weighted, round-robin, random, least-latency, cost-aware, region-nearest, adaptive",
        "routes[0].retry.attempts: 0 is out of range; expected 1..=10",
        "routes[0].retry.budget_ratio: must be between 0 and 10",
        "routes[0].retry.on_status[0]: 99 is not an HTTP status",
        "routes[0].breaker.window: unknown window \"sliding\"; expected count or time",
        "routes[0].breaker.failure_rate: 1.5 is not a rate between 0 and 1",
        "routes[0].breaker.failure_on[0]: unknown failure class \"6xx\"",
        "routes[1].name: duplicate route name `a`",
        "routes[1].match.path: path pattern `a/b` must start with '/'",
        "routes[1].providers: a route needs at least one provider",
        "webhooks[0].scheme: unknown scheme \"gothub\"; expected one of github, gitea",
        "webhooks[0].secrets[0]: expected a secret reference",
        "webhooks[0].tenant: unknown tenant `nobody`",
    ];
    for w in want {
        assert!(
            e.iter().any(|x| x.starts_with(w)),
            "missing error starting with:\n  {w}\ngot:\n  {}",
            e.join("\n  ")
        );
    }
    assert_eq!(
        e.len(),
        want.len(),
        "exactly these errors:\n  {}",
        e.join("\n  ")
    );
}

#[test]
fn a_valid_config_passes_and_resolves_references() {
    let raw: RawConfig = toml::from_str(
        r#"
[server]
admin_token = "env:MOSAIC_ADMIN_TOKEN"
[defaults]
retry = { attempts = 2 }
[[providers]]
id = "github"
kind = "github"
base_url = "https://api.github.com"
region = "us-east"
auth = { scheme = "bearer", secret = "env:GITHUB_TOKEN" }
[[providers]]
id = "local"
base_url = "http://127.0.0.1:9000"
allow_private = true
[[routes]]
name = "repos"
match = { methods = ["GET"], path = "/repos/{owner}/{repo}" }
providers = ["github", "local"]
strategy = "region-nearest"
[[routes]]
name = "other"
match = { path = "/o/{*rest}", headers = { "x-tier" = "gold" } }
providers = ["local"]
retry = { attempts = 5 }
"#,
    )
    .unwrap();
    let c = raw.validate().unwrap();
    assert_eq!(c.routes[0].retry.max_attempts, 2, "from [defaults]");
    assert_eq!(
        c.routes[1].retry.max_attempts, 5,
        "route overrides defaults"
    );
    assert_eq!(c.routes[0].strategy.name(), "region-nearest");
    let refs: Vec<String> = c.secret_refs().iter().map(|r| r.to_string()).collect();
    assert_eq!(refs, ["env:GITHUB_TOKEN", "env:MOSAIC_ADMIN_TOKEN"]);
}

#[test]
fn conflicting_routes_name_both() {
    let e = errors(
        r#"
[[providers]]
id = "p"
base_url = "https://p.example"
[[routes]]
name = "one"
match = { path = "/x/{id}", methods = ["GET"] }
providers = ["p"]
[[routes]]
name = "two"
match = { path = "/x/{other}" }
providers = ["p"]
"#,
    );
    assert_eq!(e, ["routes[1].match: conflicts with route `one` (routes[0]): same methods, host, path shape and header predicates"]);
}

#[test]
fn upstream_template_must_use_known_params() {
    let e = errors(
        r#"
[[providers]]
id = "p"
base_url = "https://p.example"
[[routes]]
name = "one"
match = { path = "/x/{id}" }
upstream_path = "/y/{nope}"
providers = ["p"]
"#,
    );
    assert_eq!(
        e,
        ["routes[0].upstream_path: `{nope}` is not a parameter of match.path `/x/{id}`"]
    );
}

#[test]
fn unknown_fields_are_refused_by_the_parser() {
    for text in [
        "[[routes]]\nname = \"x\"\nmatch = { path = \"/\" }\nproviders = [\"p\"]\nstrategi = \"priority\"\n",
        "[[providers]]\nid = \"p\"\nbase_url = \"https://x\"\nbase_uri = \"https://y\"\n",
        "[serverr]\nlisten = \"127.0.0.1:1\"\n",
    ] {
        let r: Result<RawConfig, _> = toml::from_str(text);
        let msg = r.expect_err(text).to_string();
        assert!(msg.contains("unknown field"), "{msg}");
    }
}

#[test]
fn a_mistyped_secret_reference_is_never_echoed() {
    let e = errors(
        r#"
[server]
admin_token = "sk_live:abcdef123456"
[[providers]]
id = "p"
base_url = "https://p.example"
auth = { scheme = "bearer", secret = "ghp_0123456789:abcdef" }
"#,
    );
    assert_eq!(e.len(), 2, "{e:?}");
    for m in &e {
        assert!(
            !m.contains("sk_live") && !m.contains("abcdef") && !m.contains("ghp_"),
            "{m}"
        );
    }
}

/// A credential header name that is not a token is a configuration error at its key path, not
/// a failure of every request sent to the provider.
#[test]
fn a_credential_header_name_must_be_a_token() {
    let config = |name: &str| {
        format!(
            r#"
[[providers]]
id = "p"
base_url = "https://p.example"
auth = {{ scheme = "header", header = "{name}", secret = "env:P_KEY" }}
"#
        )
    };
    assert_eq!(
        errors(&config("x api key")),
        ["providers[0].auth.header: \"x api key\" is not a valid header name (letters, digits and !#$%&'*+-.^_`|~ only)"]
    );
    assert_eq!(errors(&config("x-api-key")), Vec::<String>::new());
}

/// A credential that cannot be sent in a header (a line break inside the environment variable)
/// is named in the router's warnings at startup, a provider's own or a tenant's for it; a
/// sendable one, or one Basic auth encodes, is not.
#[test]
fn an_unsendable_credential_is_a_startup_warning() {
    let raw: RawConfig = toml::from_str(
        r#"
[[providers]]
id = "bearer"
base_url = "https://b.example"
auth = { scheme = "bearer", secret = "env:B" }
[[providers]]
id = "custom"
base_url = "https://c.example"
auth = { scheme = "header", header = "x-key", secret = "env:C" }
[[providers]]
id = "basic"
base_url = "https://d.example"
auth = { scheme = "basic", secret = "env:D" }
[[tenants]]
name = "acme"
keys = ["sha256:0000000000000000000000000000000000000000000000000000000000000000"]
credentials = { custom = "env:T", basic = "env:TB" }
"#,
    )
    .unwrap();
    let config = raw.validate().unwrap();
    let router = mosaic_core::Router::new(config, |r| {
        Some(String::from(match r.to_string().as_str() {
            // a trailing line break is trimmed; one inside is not
            "env:B" => "tok\nen\n",
            "env:C" => "fine-token",
            "env:T" => "tenant\ttoken\r\nx",
            _ => "user:pass\nword",
        }))
    });
    let about: Vec<&String> = router
        .warnings
        .iter()
        .filter(|w| w.contains("control character"))
        .collect();
    assert_eq!(about.len(), 2, "{:?}", router.warnings);
    assert!(about[0].starts_with("secret `env:B` (provider `bearer`'s credential)"));
    assert!(
        about[1].starts_with("secret `env:T` (tenant `acme`'s credential for provider `custom`)")
    );
    assert!(
        about.iter().all(|w| !w.contains("tok")),
        "the secret itself is never shown"
    );
}
