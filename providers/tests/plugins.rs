//! Built-in provider plugins: request mapping and response normalization against fixture
//! responses shaped as in each provider's documentation (`tests/fixtures/providers/<kind>/`),
//! pagination cursors, rate-limit cooldowns and error messages.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use mosaic_core::http::Method;
use mosaic_core::Instant;
use mosaic_providers::api::{self, parse_v1, OpName, Operation};
use mosaic_providers::plugin::{Fault, NormalizedResponse, Provider, ProviderError};
use mosaic_providers::plugins::{builtin, builtins};
use serde_json::{json, Value};

fn fixture(kind: &str, name: &str) -> Vec<u8> {
    let p = format!(
        "{}/../tests/fixtures/providers/{kind}/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn plugin(kind: &str) -> &'static dyn Provider {
    builtin(kind).unwrap_or_else(|| panic!("no plugin {kind}"))
}

fn hdrs(h: &[(&str, &str)]) -> Vec<(String, String)> {
    h.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn ok(kind: &str, op: &Operation, name: &str) -> NormalizedResponse {
    ok_h(kind, op, name, &[])
}

fn ok_h(kind: &str, op: &Operation, name: &str, h: &[(&str, &str)]) -> NormalizedResponse {
    plugin(kind)
        .normalize(op, 200, &hdrs(h), &fixture(kind, name))
        .unwrap_or_else(|e| panic!("{kind} {name}: {e}"))
}

fn fail(kind: &str, op: &Operation, status: u16, name: &str) -> ProviderError {
    plugin(kind)
        .normalize(op, status, &[], &fixture(kind, name))
        .expect_err("an error status is an error")
}

fn mapped(kind: &str, op: &Operation) -> (Method, String, Option<Value>) {
    let r = plugin(kind)
        .map(op)
        .unwrap_or_else(|e| panic!("{kind}: {e}"));
    let b = r.body_json();
    (r.method, r.path_and_query, b)
}

fn repo(owner: &str, name: &str) -> Operation {
    Operation::GitGetRepo {
        owner: owner.into(),
        repo: name.into(),
    }
}

fn list_issues(cursor: Option<&str>) -> Operation {
    Operation::GitListIssues {
        owner: "octocat".into(),
        repo: "Hello-World".into(),
        state: None,
        cursor: cursor.map(String::from),
    }
}

fn list_pulls() -> Operation {
    Operation::GitListPulls {
        owner: "octocat".into(),
        repo: "Hello-World".into(),
        state: Some("all".into()),
        cursor: None,
    }
}

fn comment_git() -> Operation {
    Operation::GitCommentIssue {
        owner: "octocat".into(),
        repo: "Hello-World".into(),
        number: 1347,
        body: "Me too".into(),
    }
}

fn keys(v: &Value) -> Vec<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

// ---------------------------------------------------------------------------------------------
// listing
// ---------------------------------------------------------------------------------------------

#[test]
fn thirteen_builtins_each_with_kind_and_operations() {
    let all = builtins();
    let kinds: Vec<&str> = all.iter().map(|b| b.kind).collect();
    assert_eq!(
        kinds,
        [
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
            "jira"
        ]
    );
    for b in &all {
        assert!(b.operations.len() >= 3, "{}: {:?}", b.kind, b.operations);
        assert!(b.line().starts_with(b.kind));
    }
    let ops = |k: &str| all.iter().find(|b| b.kind == k).unwrap().operations.clone();
    assert_eq!(ops("github").len(), 6);
    assert_eq!(ops("gitlab").len(), 9, "GitLab is a git host and a CI");
    assert_eq!(
        ops("jira"),
        [
            OpName::PmListIssues,
            OpName::PmGetIssue,
            OpName::PmCreateIssue,
            OpName::PmUpdateIssue,
            OpName::PmComment
        ]
    );
    assert_eq!(plugin("github").webhook_preset(), Some("github"));
    assert_eq!(plugin("github-actions").webhook_preset(), Some("github"));
    assert_eq!(plugin("forgejo").webhook_preset(), Some("forgejo"));
    assert!(builtin("nope").is_none());
}

#[test]
fn auth_headers_per_provider() {
    let h = |k: &str| plugin(k).auth_header("s3cret").unwrap();
    assert_eq!(
        h("github"),
        ("authorization".into(), "Bearer s3cret".into())
    );
    assert_eq!(h("gitea"), ("authorization".into(), "token s3cret".into()));
    assert_eq!(h("gitlab"), ("private-token".into(), "s3cret".into()));
    assert_eq!(h("linear"), ("authorization".into(), "s3cret".into()));
    assert_eq!(h("plane"), ("x-api-key".into(), "s3cret".into()));
    assert_eq!(
        plugin("bookstack").auth_header("id:sec").unwrap().1,
        "Token id:sec"
    );
    assert_eq!(
        plugin("jira").auth_header("a@b.c:tok").unwrap().1,
        "Basic YUBiLmM6dG9r"
    );
    let gh = plugin("github").default_headers();
    assert!(gh.contains(&("x-github-api-version".into(), "2022-11-28".into())));
    assert!(plugin("notion")
        .default_headers()
        .iter()
        .any(|(n, _)| n == "notion-version"));
}

// ---------------------------------------------------------------------------------------------
// git hosts
// ---------------------------------------------------------------------------------------------

#[test]
fn github_maps_and_normalizes() {
    assert_eq!(
        mapped("github", &repo("octocat", "Hello-World")),
        (Method::Get, "/repos/octocat/Hello-World".into(), None)
    );
    let r = ok("github", &repo("octocat", "Hello-World"), "get_repo");
    assert_eq!(r.data["full_name"], "octocat/Hello-World");
    assert_eq!(r.data["id"], "1296269");
    assert_eq!(r.data["owner"], "octocat");
    assert_eq!(r.data["default_branch"], "main");
    assert_eq!(
        r.data["clone_url"],
        "https://github.com/octocat/Hello-World.git"
    );

    let (m, p, _) = mapped("github", &list_issues(Some("3")));
    assert_eq!(m, Method::Get);
    assert_eq!(
        p,
        "/repos/octocat/Hello-World/issues?state=open&per_page=50&page=3"
    );
    let link = r#"<https://api.github.com/repositories/1296269/issues?state=open&per_page=50&page=4>; rel="next", <https://api.github.com/repositories/1296269/issues?page=9>; rel="last""#;
    let r = ok_h(
        "github",
        &list_issues(Some("3")),
        "list_issues",
        &[("Link", link)],
    );
    let a = r.data.as_array().unwrap();
    assert_eq!(a.len(), 1, "the pull request is dropped from issues");
    assert_eq!(a[0]["number"], 1347);
    assert_eq!(a[0]["labels"], json!(["bug"]));
    assert_eq!(a[0]["author"], "octocat");
    assert_eq!(r.next_cursor.as_deref(), Some("4"));

    let get = Operation::GitGetIssue {
        owner: "octocat".into(),
        repo: "Hello-World".into(),
        number: 1347,
    };
    assert_eq!(
        mapped("github", &get).1,
        "/repos/octocat/Hello-World/issues/1347"
    );
    assert_eq!(ok("github", &get, "get_issue").data["title"], "Found a bug");

    let create = Operation::GitCreateIssue {
        owner: "octocat".into(),
        repo: "Hello-World".into(),
        title: "Created by Mosaic".into(),
        body: Some("hello".into()),
    };
    let (m, p, b) = mapped("github", &create);
    assert_eq!(
        (m, p.as_str()),
        (Method::Post, "/repos/octocat/Hello-World/issues")
    );
    assert_eq!(
        b.unwrap(),
        json!({"title": "Created by Mosaic", "body": "hello"})
    );
    assert_eq!(ok("github", &create, "create_issue").data["number"], 1349);

    let (m, p, b) = mapped("github", &comment_git());
    assert_eq!(
        (m, p.as_str()),
        (
            Method::Post,
            "/repos/octocat/Hello-World/issues/1347/comments"
        )
    );
    assert_eq!(b.unwrap(), json!({"body": "Me too"}));
    let c = ok("github", &comment_git(), "comment_issue").data;
    assert_eq!(
        (c["id"].as_str(), c["body"].as_str()),
        (Some("1"), Some("Me too"))
    );

    assert_eq!(
        mapped("github", &list_pulls()).1,
        "/repos/octocat/Hello-World/pulls?state=all&per_page=50"
    );
    let p = ok("github", &list_pulls(), "list_pulls").data;
    assert_eq!(p[0]["source_branch"], "new-topic");
    assert_eq!(p[0]["state"], "open");
    assert_eq!(p[1]["state"], "merged");

    let e = fail("github", &repo("octocat", "nope"), 404, "error_404");
    assert_eq!(e.message, "Not Found");
    assert_eq!(e.fault, Fault::Caller);
}

#[test]
fn gitea_and_forgejo_map_like_github_and_normalize_to_the_same_shape() {
    for kind in ["gitea", "forgejo"] {
        assert_eq!(
            mapped(kind, &repo("octocat", "Hello-World")).1,
            "/repos/octocat/Hello-World"
        );
        assert_eq!(
            mapped(kind, &list_issues(None)).1,
            "/repos/octocat/Hello-World/issues?state=open&limit=50&type=issues"
        );
    }
    let gt = ok("gitea", &repo("octocat", "Hello-World"), "get_repo").data;
    let gh = ok("github", &repo("octocat", "Hello-World"), "get_repo").data;
    assert_eq!(keys(&gt), keys(&gh));
    assert_eq!(gt["full_name"], gh["full_name"]);
    assert_eq!(gt["owner"], "octocat");
    let fj = ok("forgejo", &repo("octocat", "Hello-World"), "get_repo").data;
    assert_eq!(fj["url"], "https://codeberg.org/octocat/Hello-World");

    let link = r#"<https://gitea.example.com/api/v1/repos/octocat/Hello-World/issues?limit=50&page=2&state=open&type=issues>; rel="next""#;
    let r = ok_h(
        "gitea",
        &list_issues(None),
        "list_issues",
        &[("link", link)],
    );
    assert_eq!(r.data[0]["labels"], json!(["bug"]));
    assert_eq!(r.data[1]["state"], "closed");
    assert_eq!(r.next_cursor.as_deref(), Some("2"));
    assert_eq!(
        keys(&r.data[0]),
        keys(&ok("github", &list_issues(None), "list_issues").data[0])
    );
    assert_eq!(
        ok("gitea", &comment_git(), "comment_issue").data["body"],
        "Fixed in main"
    );
    let p = ok("gitea", &list_pulls(), "list_pulls").data;
    assert_eq!(p[0]["state"], "merged");
    assert_eq!(
        plugin("gitea").auth_header("t").unwrap().1,
        "token t",
        "Gitea's token scheme"
    );
    let e = fail("gitea", &repo("a", "b"), 404, "error_404");
    assert_eq!(e.message, "The target couldn't be found.");
}

#[test]
fn gitlab_maps_projects_notes_and_pipelines() {
    let op = repo("diaspora", "diaspora-project-site");
    assert_eq!(
        mapped("gitlab", &op).1,
        "/projects/diaspora%2Fdiaspora-project-site"
    );
    let r = ok("gitlab", &op, "get_repo").data;
    assert_eq!(r["full_name"], "diaspora/diaspora-project-site");
    assert_eq!(r["private"], true);
    assert_eq!(r["owner"], "diaspora");
    assert_eq!(
        keys(&r),
        keys(&ok("github", &repo("o", "r"), "get_repo").data)
    );

    let op = Operation::GitListIssues {
        owner: "my-group".into(),
        repo: "my-project".into(),
        state: None,
        cursor: Some("2".into()),
    };
    assert_eq!(
        mapped("gitlab", &op).1,
        "/projects/my-group%2Fmy-project/issues?state=opened&per_page=50&page=2"
    );
    let r = ok_h("gitlab", &op, "list_issues", &[("x-next-page", "3")]);
    assert_eq!(r.data[0]["number"], 6);
    assert_eq!(r.data[0]["state"], "open");
    assert_eq!(r.data[0]["status"], "opened");
    assert_eq!(r.data[0]["labels"], json!(["foo", "bar"]));
    assert_eq!(r.next_cursor.as_deref(), Some("3"));
    let last = ok_h("gitlab", &op, "list_issues", &[("x-next-page", "")]);
    assert_eq!(last.next_cursor, None);

    let (m, p, b) = mapped("gitlab", &comment_git());
    assert_eq!(m, Method::Post);
    assert_eq!(p, "/projects/octocat%2FHello-World/issues/1347/notes");
    assert_eq!(b.unwrap()["body"], "Me too");
    assert_eq!(
        ok("gitlab", &comment_git(), "comment_issue").data["author"],
        "jsmith"
    );
    let mr = ok("gitlab", &list_pulls(), "list_pulls").data;
    assert_eq!(
        mapped("gitlab", &list_pulls()).1,
        "/projects/octocat%2FHello-World/merge_requests?state=all&per_page=50"
    );
    assert_eq!(mr[0]["state"], "merged");
    assert_eq!(mr[0]["number"], 1);

    let trig = Operation::CiTriggerRun {
        project: "test-group/test-project".into(),
        workflow: None,
        git_ref: "main".into(),
        inputs: BTreeMap::from([("DEPLOY".to_string(), "1".to_string())]),
    };
    let (m, p, b) = mapped("gitlab", &trig);
    assert_eq!(
        (m, p.as_str()),
        (Method::Post, "/projects/test-group%2Ftest-project/pipeline")
    );
    assert_eq!(
        b.unwrap(),
        json!({"ref": "main", "variables": [{"key": "DEPLOY", "value": "1"}]})
    );
    assert_eq!(ok("gitlab", &trig, "trigger_run").data["status"], "queued");
    let get = Operation::CiGetRun {
        project: "test-group/test-project".into(),
        run: "287".into(),
    };
    assert_eq!(
        mapped("gitlab", &get).1,
        "/projects/test-group%2Ftest-project/pipelines/287"
    );
    let run = ok("gitlab", &get, "get_run").data;
    assert_eq!(
        (run["status"].as_str(), run["raw_status"].as_str()),
        (Some("success"), Some("success"))
    );
    let list = Operation::CiListRuns {
        project: "test-group/test-project".into(),
        workflow: None,
        cursor: None,
    };
    assert_eq!(
        ok("gitlab", &list, "list_runs").data[1]["status"],
        "failure"
    );
    let e = fail("gitlab", &repo("a", "b"), 404, "error_404");
    assert_eq!(e.message, "404 Project Not Found");
}

// ---------------------------------------------------------------------------------------------
// CI
// ---------------------------------------------------------------------------------------------

#[test]
fn github_actions_dispatch_status_and_list() {
    let trig = Operation::CiTriggerRun {
        project: "octo-org/octo-repo".into(),
        workflow: Some("build.yml".into()),
        git_ref: "main".into(),
        inputs: BTreeMap::from([("env".to_string(), "staging".to_string())]),
    };
    let (m, p, b) = mapped("github-actions", &trig);
    assert_eq!(
        (m, p.as_str()),
        (
            Method::Post,
            "/repos/octo-org/octo-repo/actions/workflows/build.yml/dispatches"
        )
    );
    assert_eq!(
        b.unwrap(),
        json!({"ref": "main", "inputs": {"env": "staging"}, "return_run_details": true})
    );
    let r = ok("github-actions", &trig, "trigger_run").data;
    assert_eq!(
        (r["id"].as_str(), r["status"].as_str()),
        (Some("22103631587"), Some("queued"))
    );
    let no_details = plugin("github-actions")
        .normalize(&trig, 204, &[], b"")
        .unwrap();
    assert_eq!(no_details.data["status"], "queued");
    let missing = Operation::CiTriggerRun {
        project: "octo-org/octo-repo".into(),
        workflow: None,
        git_ref: "main".into(),
        inputs: BTreeMap::new(),
    };
    assert!(plugin("github-actions")
        .map(&missing)
        .unwrap_err()
        .reason
        .is_some());

    let get = Operation::CiGetRun {
        project: "octo-org/octo-repo".into(),
        run: "30433642".into(),
    };
    assert_eq!(
        mapped("github-actions", &get).1,
        "/repos/octo-org/octo-repo/actions/runs/30433642"
    );
    let r = ok("github-actions", &get, "get_run").data;
    assert_eq!(r["status"], "success");
    assert_eq!(r["raw_status"], "completed/success");
    assert_eq!(r["ref"], "master");
    let list = Operation::CiListRuns {
        project: "octo-org/octo-repo".into(),
        workflow: None,
        cursor: Some("2".into()),
    };
    assert_eq!(
        mapped("github-actions", &list).1,
        "/repos/octo-org/octo-repo/actions/runs?per_page=50&page=2"
    );
    let runs = ok("github-actions", &list, "list_runs").data;
    assert_eq!(runs[1]["status"], "running");
}

#[test]
fn woodpecker_pipelines() {
    let trig = Operation::CiTriggerRun {
        project: "5".into(),
        workflow: None,
        git_ref: "main".into(),
        inputs: BTreeMap::from([("DEPLOY_TO".to_string(), "prod".to_string())]),
    };
    let (m, p, b) = mapped("woodpecker", &trig);
    assert_eq!((m, p.as_str()), (Method::Post, "/repos/5/pipelines"));
    assert_eq!(
        b.unwrap(),
        json!({"branch": "main", "variables": {"DEPLOY_TO": "prod"}})
    );
    let r = ok("woodpecker", &trig, "trigger_run").data;
    assert_eq!(
        (r["id"].as_str(), r["status"].as_str()),
        (Some("92"), Some("queued"))
    );
    let get = Operation::CiGetRun {
        project: "5".into(),
        run: "91".into(),
    };
    assert_eq!(mapped("woodpecker", &get).1, "/repos/5/pipelines/91");
    let r = ok("woodpecker", &get, "get_run").data;
    assert_eq!(r["status"], "success");
    assert_eq!(r["sha"], "2f7d2a1e9bd4fa5d3c6f1bdf0cfb1d29d3f08b4c");
    let list = Operation::CiListRuns {
        project: "5".into(),
        workflow: None,
        cursor: None,
    };
    assert_eq!(
        mapped("woodpecker", &list).1,
        "/repos/5/pipelines?perPage=50"
    );
    let r = ok("woodpecker", &list, "list_runs");
    assert_eq!(r.data[0]["status"], "running");
    assert_eq!(r.next_cursor, None, "a short page is the last");
    let bad = Operation::CiGetRun {
        project: "octocat/hello".into(),
        run: "1".into(),
    };
    assert!(plugin("woodpecker").map(&bad).is_err());
}

#[test]
fn jenkins_builds_and_queue_items() {
    let trig = Operation::CiTriggerRun {
        project: "folder/deploy".into(),
        workflow: None,
        git_ref: String::new(),
        inputs: BTreeMap::from([("TARGET".to_string(), "prod eu".to_string())]),
    };
    let (m, p, b) = mapped("jenkins", &trig);
    assert_eq!(m, Method::Post);
    assert_eq!(
        p,
        "/job/folder/job/deploy/buildWithParameters?TARGET=prod%20eu"
    );
    assert_eq!(b, None);
    let r = plugin("jenkins")
        .normalize(
            &trig,
            201,
            &hdrs(&[("Location", "https://ci.example.com/queue/item/42/")]),
            b"",
        )
        .unwrap()
        .data;
    assert_eq!(
        (r["id"].as_str(), r["status"].as_str()),
        (Some("queue-42"), Some("queued"))
    );

    let q = Operation::CiGetRun {
        project: "folder/deploy".into(),
        run: "queue-42".into(),
    };
    assert_eq!(mapped("jenkins", &q).1, "/queue/item/42/api/json");
    let r = ok("jenkins", &q, "queue_item").data;
    assert_eq!(
        (r["id"].as_str(), r["status"].as_str()),
        (Some("18"), Some("running"))
    );

    let get = Operation::CiGetRun {
        project: "deploy".into(),
        run: "17".into(),
    };
    assert_eq!(mapped("jenkins", &get).1, "/job/deploy/17/api/json");
    let r = ok("jenkins", &get, "get_run").data;
    assert_eq!(
        (r["status"].as_str(), r["raw_status"].as_str()),
        (Some("failure"), Some("FAILURE"))
    );
    let list = Operation::CiListRuns {
        project: "deploy".into(),
        workflow: None,
        cursor: None,
    };
    assert_eq!(
        mapped("jenkins", &list).1,
        "/job/deploy/api/json?tree=builds%5Bnumber,result,building,url,timestamp%5D%7B0,50%7D"
    );
    let r = ok("jenkins", &list, "list_runs").data;
    assert_eq!(r[0]["status"], "running");
    assert_eq!(r[1]["status"], "failure");
    let e = plugin("jenkins")
        .normalize(
            &get,
            404,
            &[],
            b"<html><body><h2>HTTP ERROR 404 Not Found</h2></body></html>",
        )
        .unwrap_err();
    assert_eq!(e.status, 404);
    assert!(plugin("jenkins")
        .map(&Operation::CiGetRun {
            project: "../x".into(),
            run: "1".into()
        })
        .is_err());
}

// ---------------------------------------------------------------------------------------------
// knowledge bases
// ---------------------------------------------------------------------------------------------

fn search(cursor: Option<&str>) -> Operation {
    Operation::KbSearchPages {
        query: "deploy".into(),
        space: None,
        cursor: cursor.map(String::from),
    }
}

#[test]
fn notion_search_get_create() {
    let (m, p, b) = mapped("notion", &search(Some("abc")));
    assert_eq!((m, p.as_str()), (Method::Post, "/search"));
    assert_eq!(
        b.unwrap(),
        json!({"query": "deploy", "filter": {"property": "object", "value": "page"}, "page_size": 50, "start_cursor": "abc"})
    );
    let r = ok("notion", &search(None), "search_pages");
    assert_eq!(r.data[0]["title"], "Tuscan kale");
    assert_eq!(
        r.next_cursor.as_deref(),
        Some("fe2cc560-036c-44cd-90e8-294d5a74cebc")
    );
    let get = Operation::KbGetPage {
        id: "59833787-2cf9-4fdf-8782-e53db20768a5".into(),
    };
    assert_eq!(
        mapped("notion", &get).1,
        "/pages/59833787-2cf9-4fdf-8782-e53db20768a5"
    );
    let p = ok("notion", &get, "get_page").data;
    assert_eq!(p["parent"], "b55c9c91-384d-452b-81db-d1ef79372b75");
    assert_eq!(p["updated_at"], "2022-07-06T20:25:00.000Z");
    let create = Operation::KbCreatePage {
        title: "Runbook".into(),
        body: "First step\n\nSecond step".into(),
        space: None,
        parent: Some("b55c9c91-384d-452b-81db-d1ef79372b75".into()),
    };
    let (m, p, b) = mapped("notion", &create);
    assert_eq!((m, p.as_str()), (Method::Post, "/pages"));
    let b = b.unwrap();
    assert_eq!(
        b["parent"]["page_id"],
        "b55c9c91-384d-452b-81db-d1ef79372b75"
    );
    assert_eq!(
        b["properties"]["title"]["title"][0]["text"]["content"],
        "Runbook"
    );
    assert_eq!(b["children"].as_array().unwrap().len(), 2);
    assert_eq!(
        ok("notion", &create, "create_page").data["title"],
        "Runbook"
    );
    let e = fail("notion", &get, 404, "error_404");
    assert!(e.message.starts_with("Could not find page with ID"));
    assert_eq!(e.code.as_deref(), Some("object_not_found"));
}

#[test]
fn bookstack_search_get_create() {
    assert_eq!(
        mapped("bookstack", &search(Some("2"))).1,
        "/search?query=deploy%20%7Btype%3Apage%7D&count=50&page=2"
    );
    let r = ok("bookstack", &search(None), "search_pages");
    assert_eq!(r.data.as_array().unwrap().len(), 1, "only pages");
    assert_eq!(r.data[0]["title"], "The hows and whys of cats");
    assert_eq!(r.data[0]["parent"], "84");
    assert_eq!(
        r.next_cursor.as_deref(),
        Some("2"),
        "120 results, 50 a page"
    );
    let r3 = ok("bookstack", &search(Some("3")), "search_pages");
    assert_eq!(r3.next_cursor, None);
    let get = Operation::KbGetPage { id: "306".into() };
    assert_eq!(mapped("bookstack", &get).1, "/pages/306");
    let p = ok("bookstack", &get, "get_page").data;
    assert_eq!(p["body"], "# This is my cool page!");
    assert_eq!(p["space"], "1");
    assert_eq!(p["parent"], Value::Null);
    let create = Operation::KbCreatePage {
        title: "Runbook".into(),
        body: "First step".into(),
        space: Some("1".into()),
        parent: None,
    };
    let (_, p, b) = mapped("bookstack", &create);
    assert_eq!(p, "/pages");
    assert_eq!(
        b.unwrap(),
        json!({"book_id": 1, "name": "Runbook", "markdown": "First step"})
    );
    assert_eq!(ok("bookstack", &create, "create_page").data["id"], "358");
    let e = fail("bookstack", &get, 404, "error_404");
    assert_eq!(e.message, "Page not found");
}

#[test]
fn confluence_search_get_create() {
    let op = Operation::KbSearchPages {
        query: "deploy \"now\"".into(),
        space: Some("OPS".into()),
        cursor: None,
    };
    assert_eq!(
        mapped("confluence", &op).1,
        "/wiki/rest/api/search?cql=type%3Dpage%20AND%20text%20~%20%22deploy%20%5C%22now%5C%22%22%20AND%20space%20%3D%20%22OPS%22&limit=25"
    );
    let r = ok("confluence", &search(None), "search_pages");
    assert_eq!(r.data[0]["id"], "65538");
    assert_eq!(
        r.data[0]["url"],
        "https://example.atlassian.net/wiki/spaces/OPS/pages/65538/Deploy+runbook"
    );
    assert_eq!(r.next_cursor.as_deref(), Some("_f_MjU=_sa_WyJ0ZXN0Il0="));
    let (_, p, _) = mapped("confluence", &search(r.next_cursor.as_deref()));
    assert!(p.ends_with("&cursor=_f_MjU%3D_sa_WyJ0ZXN0Il0%3D"), "{p}");
    let get = Operation::KbGetPage { id: "65538".into() };
    assert_eq!(
        mapped("confluence", &get).1,
        "/wiki/api/v2/pages/65538?body-format=storage"
    );
    let p = ok("confluence", &get, "get_page").data;
    assert_eq!(p["body"], "<p>Step one</p>");
    assert_eq!(p["space"], "98306");
    assert_eq!(p["parent"], "65537");
    let create = Operation::KbCreatePage {
        title: "Runbook".into(),
        body: "First <step>".into(),
        space: Some("98306".into()),
        parent: None,
    };
    let (m, _, b) = mapped("confluence", &create);
    assert_eq!(m, Method::Post);
    assert_eq!(
        b.unwrap(),
        json!({"spaceId": "98306", "status": "current", "title": "Runbook",
               "body": {"representation": "storage", "value": "<p>First &lt;step&gt;</p>"}})
    );
    assert_eq!(
        ok("confluence", &create, "create_page").data["title"],
        "Runbook"
    );
    let e = fail("confluence", &get, 404, "error_404");
    assert_eq!(e.message, "Not Found");
}

// ---------------------------------------------------------------------------------------------
// project management
// ---------------------------------------------------------------------------------------------

#[test]
fn linear_graphql_queries_and_errors() {
    let list = Operation::PmListIssues {
        project: "ENG".into(),
        cursor: Some("abc".into()),
    };
    let (m, p, b) = mapped("linear", &list);
    assert_eq!((m, p.as_str()), (Method::Post, "/graphql"));
    let b = b.unwrap();
    assert!(b["query"]
        .as_str()
        .unwrap()
        .contains("issues(filter: $filter, first: $first, after: $after)"));
    assert_eq!(
        b["variables"],
        json!({"filter": {"team": {"key": {"eq": "ENG"}}}, "first": 50, "after": "abc"})
    );
    let r = ok("linear", &list, "list_issues");
    assert_eq!(r.data[0]["key"], "ENG-123");
    assert_eq!(r.data[0]["state"], "open");
    assert_eq!(r.data[1]["state"], "closed");
    assert_eq!(
        r.next_cursor.as_deref(),
        Some("2f0c2b83-7c7c-4f7e-9d8a-6c3b2c1d0e9f")
    );
    let get = Operation::PmGetIssue {
        project: None,
        id: "ENG-123".into(),
    };
    assert_eq!(
        ok("linear", &get, "get_issue").data["status"],
        "In Progress"
    );
    let team = "9cfb482a-81e3-4154-b5b9-2c805e70a02d";
    let create = Operation::PmCreateIssue {
        project: team.into(),
        title: "New issue".into(),
        description: None,
    };
    let b = mapped("linear", &create).2.unwrap();
    assert_eq!(b["variables"]["input"]["teamId"], team);
    assert_eq!(ok("linear", &create, "create_issue").data["key"], "ENG-124");
    let upd = Operation::PmUpdateIssue {
        project: None,
        id: "ENG-123".into(),
        title: Some("Fix login redirect (SSO)".into()),
        description: None,
        state: None,
    };
    assert_eq!(
        mapped("linear", &upd).2.unwrap()["variables"],
        json!({"id": "ENG-123", "input": {"title": "Fix login redirect (SSO)"}})
    );
    assert_eq!(
        ok("linear", &upd, "update_issue").data["title"],
        "Fix login redirect (SSO)"
    );
    let com = Operation::PmComment {
        project: None,
        id: "ENG-123".into(),
        body: "Reproduced on staging.".into(),
    };
    assert_eq!(ok("linear", &com, "comment").data["author"], "Grace Hopper");
    // GraphQL errors arrive with HTTP 200 and keep their message
    let e = plugin("linear")
        .normalize(&get, 200, &[], &fixture("linear", "error_ratelimited"))
        .unwrap_err();
    assert_eq!((e.status, e.fault), (429, Fault::RateLimited));
    assert_eq!(e.message, "Rate limit exceeded");
    assert_eq!(e.code.as_deref(), Some("RATELIMITED"));
    let e = plugin("linear")
        .normalize(&get, 200, &[], &fixture("linear", "error_not_found"))
        .unwrap_err();
    assert_eq!(
        (e.status, e.message.as_str()),
        (404, "Entity not found: Issue")
    );
}

#[test]
fn plane_work_items() {
    let list = Operation::PmListIssues {
        project: "acme/4af68566-94a4-4eb3-94aa-50dc9427067b".into(),
        cursor: Some("50:1:0".into()),
    };
    assert_eq!(
        mapped("plane", &list).1,
        "/workspaces/acme/projects/4af68566-94a4-4eb3-94aa-50dc9427067b/work-items/?per_page=50&expand=state&cursor=50%3A1%3A0"
    );
    let r = ok("plane", &list, "list_issues");
    assert_eq!(r.data[0]["title"], "Checkout fails on Safari");
    assert_eq!(r.data[0]["number"], 42);
    assert_eq!(r.data[1]["state"], "closed");
    assert_eq!(r.next_cursor.as_deref(), Some("50:1:0"));
    let get = Operation::PmGetIssue {
        project: Some("acme/p1".into()),
        id: "e1c25c8a".into(),
    };
    assert_eq!(
        mapped("plane", &get).1,
        "/workspaces/acme/projects/p1/work-items/e1c25c8a/?expand=state"
    );
    assert_eq!(
        ok("plane", &get, "get_issue").data["body"],
        "Payment button does nothing."
    );
    let create = Operation::PmCreateIssue {
        project: "acme/p1".into(),
        title: "New work item".into(),
        description: Some("Details".into()),
    };
    let (m, p, b) = mapped("plane", &create);
    assert_eq!(
        (m, p.as_str()),
        (Method::Post, "/workspaces/acme/projects/p1/work-items/")
    );
    assert_eq!(
        b.unwrap(),
        json!({"name": "New work item", "description_html": "<p>Details</p>"})
    );
    assert_eq!(ok("plane", &create, "create_issue").data["number"], 61);
    let upd = Operation::PmUpdateIssue {
        project: Some("acme/p1".into()),
        id: "e1c25c8a".into(),
        title: Some("Renamed".into()),
        description: None,
        state: None,
    };
    let (m, p, b) = mapped("plane", &upd);
    assert_eq!(
        (m, p.as_str()),
        (
            Method::Patch,
            "/workspaces/acme/projects/p1/work-items/e1c25c8a/"
        )
    );
    assert_eq!(b.unwrap(), json!({"name": "Renamed"}));
    let com = Operation::PmComment {
        project: Some("acme/p1".into()),
        id: "e1c25c8a".into(),
        body: "On it".into(),
    };
    assert_eq!(
        mapped("plane", &com).1,
        "/workspaces/acme/projects/p1/work-items/e1c25c8a/comments/"
    );
    assert_eq!(ok("plane", &com, "comment").data["body"], "On it");
    let no_project = Operation::PmGetIssue {
        project: None,
        id: "x".into(),
    };
    assert!(plugin("plane")
        .map(&no_project)
        .unwrap_err()
        .reason
        .is_some());
    let e = fail("plane", &get, 404, "error_404");
    assert_eq!(e.message, "The requested resource does not exist.");
}

#[test]
fn jira_search_jql_adf_and_errors() {
    let list = Operation::PmListIssues {
        project: "ED".into(),
        cursor: Some("CAEaAggD".into()),
    };
    let (m, p, b) = mapped("jira", &list);
    assert_eq!((m, p.as_str()), (Method::Post, "/rest/api/3/search/jql"));
    let b = b.unwrap();
    assert_eq!(b["jql"], "project = \"ED\" ORDER BY created DESC");
    assert_eq!(b["nextPageToken"], "CAEaAggD");
    let r = ok("jira", &list, "list_issues");
    assert_eq!(r.data[0]["key"], "ED-1");
    assert_eq!(r.data[0]["body"], "Steps to reproduce:\n\nClick Pay");
    assert_eq!(
        r.data[0]["url"],
        "https://example.atlassian.net/browse/ED-1"
    );
    assert_eq!(r.data[1]["state"], "closed");
    assert_eq!(r.next_cursor.as_deref(), Some("CAEaAggD"));
    let get = Operation::PmGetIssue {
        project: None,
        id: "ED-1".into(),
    };
    assert!(mapped("jira", &get)
        .1
        .starts_with("/rest/api/3/issue/ED-1?fields=summary%2Cstatus"));
    assert_eq!(ok("jira", &get, "get_issue").data["status"], "In Progress");
    let create = Operation::PmCreateIssue {
        project: "ED".into(),
        title: "Checkout".into(),
        description: Some("One\n\nTwo".into()),
    };
    let b = mapped("jira", &create).2.unwrap();
    assert_eq!(b["fields"]["project"]["key"], "ED");
    assert_eq!(
        b["fields"]["description"]["content"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let c = ok("jira", &create, "create_issue").data;
    assert_eq!(
        (c["key"].as_str(), c["title"].as_str()),
        (Some("ED-24"), Some("Checkout"))
    );
    let upd = Operation::PmUpdateIssue {
        project: None,
        id: "ED-1".into(),
        title: Some("New".into()),
        description: None,
        state: None,
    };
    let (m, p, _) = mapped("jira", &upd);
    assert_eq!((m, p.as_str()), (Method::Put, "/rest/api/3/issue/ED-1"));
    let u = plugin("jira").normalize(&upd, 204, &[], b"").unwrap().data;
    assert_eq!(u["title"], "New");
    let com = Operation::PmComment {
        project: None,
        id: "ED-1".into(),
        body: "Looks good.".into(),
    };
    assert_eq!(mapped("jira", &com).1, "/rest/api/3/issue/ED-1/comment");
    assert_eq!(ok("jira", &com, "comment").data["body"], "Looks good.");
    let e = fail("jira", &get, 404, "error_404");
    assert_eq!(
        e.message,
        "Issue does not exist or you do not have permission to see it."
    );
    let e = fail("jira", &create, 400, "error_400");
    assert_eq!(
        e.message,
        "summary: You must specify a summary of the issue."
    );
}

// ---------------------------------------------------------------------------------------------
// cross-cutting: cursors, rate limits, errors, unsupported
// ---------------------------------------------------------------------------------------------

/// (kind, list operation, fixture, response headers)
type PageCase = (
    &'static str,
    Operation,
    &'static str,
    Vec<(&'static str, &'static str)>,
);

#[test]
fn pagination_cursors_round_trip_through_the_v1_api() {
    let cases: [PageCase; 5] = [
        (
            "github",
            list_issues(None),
            "list_issues",
            vec![("link", "<https://api.github.com/x?page=2>; rel=\"next\"")],
        ),
        ("notion", search(None), "search_pages", vec![]),
        (
            "linear",
            Operation::PmListIssues {
                project: "ENG".into(),
                cursor: None,
            },
            "list_issues",
            vec![],
        ),
        (
            "jira",
            Operation::PmListIssues {
                project: "ED".into(),
                cursor: None,
            },
            "list_issues",
            vec![],
        ),
        (
            "plane",
            Operation::PmListIssues {
                project: "a/b".into(),
                cursor: None,
            },
            "list_issues",
            vec![],
        ),
    ];
    for (kind, op, fx, h) in cases {
        let r = ok_h(kind, &op, fx, &h);
        let env = api::envelope("p1", kind, &r);
        let opaque = env["next_cursor"]
            .as_str()
            .unwrap_or_else(|| panic!("{kind} has a next page"));
        assert!(!opaque.contains(r.next_cursor.as_deref().unwrap()) || opaque.len() > 8);
        let (path, q) = match op.name() {
            OpName::GitListIssues => (
                "/v1/git/repos/octocat/Hello-World/issues".to_string(),
                String::new(),
            ),
            OpName::KbSearchPages => ("/v1/kb/pages".to_string(), "query=deploy&".to_string()),
            _ => ("/v1/pm/issues".to_string(), "project=a%2Fb&".to_string()),
        };
        let (next, sel) = parse_v1(
            Method::Get,
            &path,
            Some(&format!("{q}cursor={opaque}")),
            b"",
        )
        .unwrap();
        assert_eq!(sel.cursor_kind.as_deref(), Some(kind));
        assert_eq!(next.cursor(), r.next_cursor.as_deref(), "{kind}");
        plugin(kind)
            .map(&next)
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
    }
}

#[test]
fn garbage_cursors_are_400s_not_panics() {
    for c in [
        "%%%",
        "AAAA",
        "____",
        "AQ",
        "Ag",
        "AQVnaXQ",
        "AQAB",
        &"Z".repeat(5000),
        "AP8",
    ] {
        let r = parse_v1(
            Method::Get,
            "/v1/kb/pages",
            Some(&format!("query=x&cursor={c}")),
            b"",
        );
        let p = r.expect_err(c);
        assert_eq!(p.status(), 400, "{c}");
    }
    // every byte string decodes without panicking
    for n in 0..=255u8 {
        let _ = api::decode_cursor(&String::from_utf8_lossy(&[n, n, b'a']));
    }
}

const NOW: u64 = 1_700_000_000;

#[test]
fn github_remaining_zero_cools_down_until_reset_before_any_429() {
    let now = Instant::from_secs(NOW);
    let reset = (NOW + 120).to_string();
    let h = hdrs(&[
        ("x-ratelimit-remaining", "0"),
        ("x-ratelimit-reset", &reset),
    ]);
    assert_eq!(
        plugin("github").cooldown(200, &h, now),
        Some(Instant::from_secs(NOW + 120))
    );
    let h = hdrs(&[
        ("x-ratelimit-remaining", "4999"),
        ("x-ratelimit-reset", &reset),
    ]);
    assert_eq!(plugin("github").cooldown(200, &h, now), None);
    // GitHub's primary limit answers 403 with remaining 0: a rate limit, not the caller's fault
    let h = hdrs(&[
        ("x-ratelimit-remaining", "0"),
        ("x-ratelimit-reset", &reset),
    ]);
    assert_eq!(plugin("github").classify(403, &h), Some(Fault::RateLimited));
    assert_eq!(plugin("github").classify(403, &[]), Some(Fault::Caller));
}

#[test]
fn each_provider_reads_its_own_rate_limit_names() {
    let now = Instant::from_secs(NOW);
    let later = Instant::from_secs(NOW + 60);
    let cases: [(&str, Vec<(&str, String)>); 5] = [
        (
            "gitlab",
            vec![
                ("RateLimit-Remaining", "0".into()),
                ("RateLimit-Reset", (NOW + 60).to_string()),
            ],
        ),
        (
            "jira",
            vec![
                ("X-RateLimit-Remaining", "0".into()),
                ("X-RateLimit-Reset", "2023-11-14T22:14:20Z".into()),
            ],
        ),
        (
            "confluence",
            vec![
                ("X-RateLimit-Remaining", "0".into()),
                ("X-RateLimit-Reset", "2023-11-14T22:14:20.000Z".into()),
            ],
        ),
        (
            "linear",
            vec![
                ("X-RateLimit-Requests-Remaining", "0".into()),
                (
                    "X-RateLimit-Requests-Reset",
                    ((NOW + 60) * 1000).to_string(),
                ),
            ],
        ),
        (
            "plane",
            vec![
                ("X-RateLimit-Remaining", "0".into()),
                ("X-RateLimit-Reset", (NOW + 60).to_string()),
            ],
        ),
    ];
    for (kind, h) in cases {
        let h: Vec<(String, String)> = h.into_iter().map(|(a, b)| (a.to_string(), b)).collect();
        assert_eq!(plugin(kind).cooldown(200, &h, now), Some(later), "{kind}");
    }
    // Notion only says Retry-After on its 429
    let h = hdrs(&[("Retry-After", "7")]);
    assert_eq!(
        plugin("notion").cooldown(429, &h, now),
        Some(Instant::from_secs(NOW + 7))
    );
    assert_eq!(plugin("notion").cooldown(200, &[], now), None);
}

#[test]
fn failure_classes_put_5xx_on_the_provider_and_4xx_on_the_caller() {
    for b in builtins() {
        let p = plugin(b.kind);
        let c = p.failure_class();
        assert!(c.status_fails(503) && c.status_fails(500), "{}", b.kind);
        assert!(!c.status_fails(404) && !c.status_fails(422) && !c.status_fails(429));
        assert_eq!(p.classify(200, &[]), None);
        assert_eq!(p.classify(429, &[]), Some(Fault::RateLimited));
    }
}

#[test]
fn provider_errors_become_problem_json_keeping_the_message() {
    let e = fail(
        "notion",
        &Operation::KbGetPage { id: "x".into() },
        404,
        "error_404",
    );
    let (status, body) = api::provider_problem("notion-main", &e, "req-9");
    assert_eq!(status, 404);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["type"], "https://mosaic-edge.dev/problems/provider-error");
    assert_eq!(v["provider"], "notion-main");
    assert_eq!(v["provider_status"], 404);
    assert_eq!(v["provider_code"], "object_not_found");
    assert!(v["provider_message"]
        .as_str()
        .unwrap()
        .starts_with("Could not find page"));
    assert!(v["detail"]
        .as_str()
        .unwrap()
        .contains("Could not find page"));
    let e = plugin("github")
        .normalize(
            &repo("a", "b"),
            502,
            &[],
            b"<html>Bad gateway</html>\nupstream down",
        )
        .unwrap_err();
    assert_eq!(api::provider_problem("gh", &e, "r").0, 502);
    assert_eq!(e.message, "upstream down");
    let bad_json = plugin("github")
        .normalize(&repo("a", "b"), 200, &[], b"{not json")
        .unwrap_err();
    assert_eq!(bad_json.fault, Fault::Provider);
}

#[test]
fn unsupported_operations_are_named() {
    let u = plugin("notion").map(&repo("a", "b")).unwrap_err();
    assert_eq!(u.reason, None);
    assert_eq!(
        u.to_string(),
        "provider kind `notion` does not support git.get_repo"
    );
    let (status, body) = api::unsupported_problem(&u, "r1");
    assert_eq!(status, 501);
    assert!(body.contains("unsupported-operation"));
}

#[test]
fn v1_paths_parse_to_operations() {
    let p = |m: Method, path: &str, q: Option<&str>, b: &str| parse_v1(m, path, q, b.as_bytes());
    assert_eq!(
        p(
            Method::Get,
            "/v1/git/repos/octocat/Hello-World/issues/1347",
            None,
            ""
        )
        .unwrap()
        .0
        .name(),
        OpName::GitGetIssue
    );
    assert_eq!(
        p(
            Method::Post,
            "/v1/git/repos/o/r/issues",
            None,
            r#"{"title":"t"}"#
        )
        .unwrap()
        .0
        .name(),
        OpName::GitCreateIssue
    );
    assert_eq!(
        p(
            Method::Post,
            "/v1/ci/runs",
            None,
            r#"{"project":"o/r","ref":"main","workflow":"ci.yml"}"#
        )
        .unwrap()
        .0
        .name(),
        OpName::CiTriggerRun
    );
    assert_eq!(
        p(Method::Get, "/v1/ci/runs/17", Some("project=deploy"), "")
            .unwrap()
            .0,
        Operation::CiGetRun {
            project: "deploy".into(),
            run: "17".into()
        }
    );
    assert_eq!(
        p(
            Method::Patch,
            "/v1/pm/issues/ED-1",
            None,
            r#"{"title":"x"}"#
        )
        .unwrap()
        .0
        .name(),
        OpName::PmUpdateIssue
    );
    assert_eq!(
        p(
            Method::Post,
            "/v1/pm/issues/ED-1/comments",
            None,
            r#"{"body":"hi"}"#
        )
        .unwrap()
        .0
        .name(),
        OpName::PmComment
    );
    assert_eq!(
        p(Method::Get, "/v1/kb/pages", Some("query=a+b"), "")
            .unwrap()
            .0,
        search(None).clone_with_query("a b")
    );
    // bad input is a 400 or 404 problem, never a panic
    assert_eq!(
        p(Method::Post, "/v1/git/repos/o/r/issues", None, "{")
            .unwrap_err()
            .status(),
        400
    );
    assert_eq!(
        p(
            Method::Post,
            "/v1/git/repos/o/r/issues",
            None,
            r#"{"title":" "}"#
        )
        .unwrap_err()
        .status(),
        400
    );
    assert_eq!(
        p(Method::Get, "/v1/ci/runs", None, "")
            .unwrap_err()
            .status(),
        400
    );
    assert_eq!(
        p(Method::Patch, "/v1/pm/issues/x", None, "{}")
            .unwrap_err()
            .status(),
        400
    );
    assert_eq!(
        p(Method::Get, "/v1/nope", None, "").unwrap_err().status(),
        404
    );
    assert_eq!(
        p(Method::Get, "/v1/git/repos/%zz/r", None, "")
            .unwrap_err()
            .status(),
        400
    );
    assert!(p(Method::Delete, "/v1/git/repos/o/r", None, "")
        .unwrap_err()
        .detail
        .contains("not allowed"));
    assert!(Operation::GitGetRepo {
        owner: "o".into(),
        repo: "r".into()
    }
    .is_read());
    assert!(!Operation::sample(OpName::GitCreateIssue).is_read());
}

trait WithQuery {
    fn clone_with_query(&self, q: &str) -> Operation;
}
impl WithQuery for Operation {
    fn clone_with_query(&self, q: &str) -> Operation {
        match self {
            Operation::KbSearchPages { space, cursor, .. } => Operation::KbSearchPages {
                query: q.into(),
                space: space.clone(),
                cursor: cursor.clone(),
            },
            o => o.clone(),
        }
    }
}

#[test]
fn openapi_documents_every_operation() {
    let doc: Value = serde_json::from_str(&mosaic_providers::openapi::json()).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    for op in OpName::ALL {
        let info = mosaic_providers::openapi::operation_path(op);
        let o = &doc["paths"][info.path][info.method];
        assert_eq!(o["operationId"], op.as_str(), "{}", op.as_str());
        assert!(o["responses"]["200"].is_object());
        assert_eq!(
            o["responses"]["502"]["content"]["application/problem+json"]["schema"]["$ref"],
            "#/components/schemas/Problem"
        );
        if op.is_list() {
            assert_eq!(
                o["responses"]["200"]["content"]["application/json"]["schema"]["properties"]
                    ["data"]["type"],
                "array"
            );
        }
        // the documented path parses back to the same operation
        let path = info
            .path
            .replace("{owner}", "o")
            .replace("{repo}", "r")
            .replace("{number}", "1")
            .replace("{run}", "1")
            .replace("{id}", "1");
        let method = Method::parse(&info.method.to_ascii_uppercase()).unwrap();
        let body = match op {
            OpName::GitCreateIssue => r#"{"title":"t"}"#,
            OpName::GitCommentIssue | OpName::PmComment => r#"{"body":"b"}"#,
            OpName::CiTriggerRun => r#"{"project":"p","ref":"main"}"#,
            OpName::KbCreatePage => r#"{"title":"t","body":"b"}"#,
            OpName::PmCreateIssue => r#"{"project":"p","title":"t"}"#,
            OpName::PmUpdateIssue => r#"{"title":"t"}"#,
            _ => "",
        };
        let q = "project=p&query=q";
        let (parsed, _) = parse_v1(method, &path, Some(q), body.as_bytes())
            .unwrap_or_else(|e| panic!("{path}: {e:?}"));
        assert_eq!(parsed.name(), op);
    }
    for s in [
        "Repository",
        "Issue",
        "Comment",
        "PullRequest",
        "Run",
        "Page",
        "Cursor",
        "Problem",
    ] {
        assert!(doc["components"]["schemas"][s].is_object(), "{s}");
    }
}
