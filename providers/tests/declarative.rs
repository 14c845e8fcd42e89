//! Declarative providers: validation with key paths, loading from KV bytes, atomic swaps, and
//! a declared provider mapping and normalizing like a built-in one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mosaic_core::http::Method;
use mosaic_core::Instant;
use mosaic_providers::api::Operation;
use mosaic_providers::declarative::{load_from_kv_bytes, Registry};
use mosaic_providers::plugin::Provider;
use serde_json::json;

const ACME: &str = r#"{"providers": [{
  "kind": "acme-git",
  "base_url": "https://git.acme.example/api",
  "auth": {"scheme": "header", "header": "X-Acme-Token"},
  "headers": {"accept": "application/json"},
  "rate_limit": {"remaining": ["x-acme-remaining"], "reset": ["x-acme-reset"], "reset_format": "delta"},
  "webhook": "github",
  "pagination": {"param": "p", "next": "/next"},
  "error_message": "/error/text",
  "operations": {
    "git.get_repo": {"method": "GET", "path": "/repos/{owner}/{repo}",
      "response": {"id": "/id", "name": "/name", "full_name": "/path", "owner": "/ns", "private": "/secret"}},
    "git.list_issues": {"method": "GET", "path": "/repos/{owner}/{repo}/issues?state={state}&size=20",
      "items": "/items", "response": {"id": "/id", "title": "/title", "state": "/status"}},
    "git.create_issue": {"method": "POST", "path": "/repos/{owner}/{repo}/issues",
      "body": {"title": "{title}", "text": "{body}", "meta": {"source": "mosaic:{owner}"}},
      "response": {"id": "/id", "title": "/title"}}
  }
}]}"#;

#[test]
fn a_declared_provider_maps_and_normalizes() {
    let ps = load_from_kv_bytes(ACME.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    let p = &ps[0];
    assert_eq!(p.kind(), "acme-git");
    assert_eq!(p.default_base_url(), Some("https://git.acme.example/api"));
    assert_eq!(p.webhook_preset(), Some("github"));
    assert_eq!(
        p.auth_header("k").unwrap(),
        ("x-acme-token".into(), "k".into())
    );
    assert_eq!(p.operations().len(), 3);

    let get = Operation::GitGetRepo {
        owner: "team a".into(),
        repo: "svc".into(),
    };
    let r = p.map(&get).unwrap();
    assert_eq!(
        (r.method, r.path_and_query.as_str()),
        (Method::Get, "/repos/team%20a/svc")
    );
    let n = p
        .normalize(
            &get,
            200,
            &[],
            br#"{"id": 7, "name": "svc", "path": "team-a/svc", "ns": "team-a", "secret": true}"#,
        )
        .unwrap();
    assert_eq!(
        n.data,
        json!({"id": "7", "name": "svc", "full_name": "team-a/svc", "owner": "team-a", "private": true})
    );

    let list = Operation::GitListIssues {
        owner: "a".into(),
        repo: "b".into(),
        state: None,
        cursor: Some("3".into()),
    };
    assert_eq!(
        p.map(&list).unwrap().path_and_query,
        "/repos/a/b/issues?size=20&p=3",
        "an absent {{state}} drops its pair; the cursor goes in `p`"
    );
    let n = p
        .normalize(
            &list,
            200,
            &[],
            br#"{"items": [{"id": 1, "title": "x", "status": "open"}], "next": "4"}"#,
        )
        .unwrap();
    assert_eq!(n.data, json!([{"id": "1", "title": "x", "state": "open"}]));
    assert_eq!(n.next_cursor.as_deref(), Some("4"));

    let create = Operation::GitCreateIssue {
        owner: "a".into(),
        repo: "b".into(),
        title: "T".into(),
        body: None,
    };
    let r = p.map(&create).unwrap();
    assert_eq!(r.method, Method::Post);
    assert_eq!(
        r.body_json().unwrap(),
        json!({"title": "T", "text": null, "meta": {"source": "mosaic:a"}})
    );
    assert!(p.map(&Operation::KbGetPage { id: "1".into() }).is_err());

    let e = p
        .normalize(&get, 404, &[], br#"{"error": {"text": "no such repo"}}"#)
        .unwrap_err();
    assert_eq!(e.message, "no such repo");

    let now = Instant::from_secs(1_700_000_000);
    let h = vec![
        ("X-Acme-Remaining".to_string(), "0".to_string()),
        ("X-Acme-Reset".to_string(), "30".to_string()),
    ];
    assert_eq!(
        p.cooldown(200, &h, now),
        Some(Instant::from_secs(1_700_000_030))
    );
}

#[test]
fn validation_collects_every_error_with_its_key_path() {
    let bad = r#"{"providers": [
      {"kind": "github", "base_url": "ftp://x", "operations": {}},
      {"kind": "acme", "base_url": "https://acme.example",
       "auth": {"scheme": "header"},
       "rate_limit": {"reset_format": "fortnights", "remaining": ["bad name"]},
       "webhook": "carrier-pigeon",
       "pagination": {"next": "somewhere"},
       "operations": {
         "git.get_repo": {"method": "get", "path": "/repos/{own}/{repo}", "response": {"colour": "/c", "id": "id"}},
         "git.frobnicate": {"method": "GET", "path": "/x"},
         "git.list_issues": {"method": "GET", "path": "repos", "items": "items"},
         "kb.get_page": {"method": "GET", "path": "/p/{id}", "body": {"x": "{nope}"}}
       }}
    ]}"#;
    let errs = load_from_kv_bytes(bad.as_bytes()).unwrap_err();
    let got: Vec<(String, String)> = errs
        .0
        .iter()
        .map(|e| (e.path.clone(), e.message.clone()))
        .collect();
    let has = |path: &str, needle: &str| {
        assert!(
            got.iter().any(|(p, m)| p == path && m.contains(needle)),
            "missing {path}: …{needle}… in {got:#?}"
        );
    };
    has("providers[0].kind", "built-in");
    has("providers[0].base_url", "not an http(s) URL");
    has("providers[0].operations", "at least one operation");
    has("providers[1].auth.header", "needs a header name");
    has("providers[1].rate_limit.reset_format", "fortnights");
    has(
        "providers[1].rate_limit.remaining[0]",
        "not a valid header name",
    );
    has("providers[1].webhook", "carrier-pigeon");
    has("providers[1].pagination.next", "somewhere");
    has("providers[1].operations.git.get_repo.method", "uppercase");
    has(
        "providers[1].operations.git.get_repo.path",
        "unknown placeholder {own}",
    );
    has(
        "providers[1].operations.git.get_repo.response.colour",
        "no field `colour`",
    );
    has(
        "providers[1].operations.git.get_repo.response.id",
        "not a JSON pointer",
    );
    has(
        "providers[1].operations.git.frobnicate",
        "unknown operation",
    );
    has(
        "providers[1].operations.git.list_issues.path",
        "must start with `/`",
    );
    has(
        "providers[1].operations.git.list_issues.items",
        "not a JSON pointer",
    );
    has(
        "providers[1].operations.kb.get_page.body",
        "unknown placeholder {nope}",
    );
    has("providers[1].operations.kb.get_page.body", "GET or HEAD");
    assert!(errs
        .to_string()
        .contains("providers[1].operations.git.get_repo.path"));
}

#[test]
fn malformed_kv_values_are_errors_not_panics() {
    for bytes in [
        &b""[..],
        b"null",
        b"42",
        b"{",
        b"\xff\xfe",
        br#"{"providers": 3}"#,
        br#"{"providers": [{"kind": 1}]}"#,
        br#"{"kind": "x", "surprise": true}"#,
        br#"[{"kind": "x"}]"#,
    ] {
        let e = load_from_kv_bytes(bytes).unwrap_err();
        assert!(!e.0.is_empty());
        assert!(e.0.iter().all(|x| x.path.starts_with("providers")), "{e}");
    }
    // a single declaration (no wrapper) and a bare array are accepted
    let one = r#"{"kind": "solo", "base_url": "https://s.example",
                  "operations": {"kb.get_page": {"method": "GET", "path": "/pages/{id}"}}}"#;
    assert_eq!(load_from_kv_bytes(one.as_bytes()).unwrap().len(), 1);
    assert_eq!(
        load_from_kv_bytes(format!("[{one}]").as_bytes())
            .unwrap()
            .len(),
        1
    );
    let twice = format!(r#"{{"providers": [{one}, {one}]}}"#);
    let e = load_from_kv_bytes(twice.as_bytes()).unwrap_err();
    assert!(e.0[0].message.contains("declared twice"), "{e}");
}

#[test]
fn a_bad_update_keeps_the_previous_declarations_in_force() {
    let mut reg = Registry::new();
    assert!(reg.get("acme-git").is_none());
    assert!(reg.get("github").is_some(), "built-ins are always there");
    assert_eq!(reg.load_kv(ACME.as_bytes()).unwrap(), ["acme-git"]);
    assert!(reg.get("acme-git").is_some());
    let bad = ACME.replace("{owner}/{repo}\",", "{owner}/{rpo}\",");
    let e = reg.load_kv(bad.as_bytes()).unwrap_err();
    assert!(e.to_string().contains("unknown placeholder {rpo}"), "{e}");
    assert_eq!(reg.declared_kinds(), ["acme-git"], "the old set stays");
    let renamed = ACME.replace("acme-git", "acme-two");
    reg.load_kv(renamed.as_bytes()).unwrap();
    assert_eq!(reg.declared_kinds(), ["acme-two"]);
    assert!(reg.get("acme-git").is_none());
}
