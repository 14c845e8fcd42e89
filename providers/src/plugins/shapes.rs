//! Normalizers shared by GitHub and the Gitea API (Gitea, Forgejo): their JSON is alike.

use alloc::string::String;
use alloc::vec::Vec;

use serde_json::Value;

use crate::api::{Comment, Issue, OpName, Operation, PullRequest, Repository};
use crate::plugin::{
    flag, items, text, to_value, uint, Fault, ProviderError, Unsupported, UpstreamRequest,
};
use mosaic_core::http::Method;

/// `/repos/{owner}/{repo}` with both parts percent-encoded.
pub(crate) fn repo_path(owner: &str, repo: &str) -> String {
    alloc::format!(
        "/repos/{}/{}",
        crate::api::pct_encode(owner),
        crate::api::pct_encode(repo)
    )
}

fn state_param(state: Option<&String>) -> &str {
    match state.map(String::as_str) {
        Some("closed") => "closed",
        Some("all") => "all",
        _ => "open",
    }
}

/// Maps the git operations for GitHub-like APIs. `per_page` is the page size parameter
/// (`per_page` on GitHub, `limit` on Gitea); `issues_extra` is appended to list-issues queries.
pub(crate) fn map_git(
    kind: &str,
    op: &Operation,
    per_page: &str,
    issues_extra: Option<(&str, &str)>,
) -> Result<UpstreamRequest, Unsupported> {
    Ok(match op {
        Operation::GitGetRepo { owner, repo } => UpstreamRequest::get(repo_path(owner, repo)),
        Operation::GitListIssues {
            owner,
            repo,
            state,
            cursor,
        } => {
            let mut r = UpstreamRequest::get(alloc::format!("{}/issues", repo_path(owner, repo)))
                .query("state", state_param(state.as_ref()))
                .query(per_page, "50");
            if let Some((k, v)) = issues_extra {
                r = r.query(k, v);
            }
            match cursor {
                Some(c) => r.query("page", c),
                None => r,
            }
        }
        Operation::GitGetIssue {
            owner,
            repo,
            number,
        } => UpstreamRequest::get(alloc::format!("{}/issues/{number}", repo_path(owner, repo))),
        Operation::GitCreateIssue {
            owner,
            repo,
            title,
            body,
        } => UpstreamRequest::json(
            Method::Post,
            alloc::format!("{}/issues", repo_path(owner, repo)),
            &serde_json::json!({ "title": title, "body": body.as_deref().unwrap_or("") }),
        ),
        Operation::GitCommentIssue {
            owner,
            repo,
            number,
            body,
        } => UpstreamRequest::json(
            Method::Post,
            alloc::format!("{}/issues/{number}/comments", repo_path(owner, repo)),
            &serde_json::json!({ "body": body }),
        ),
        Operation::GitListPulls {
            owner,
            repo,
            state,
            cursor,
        } => {
            let r = UpstreamRequest::get(alloc::format!("{}/pulls", repo_path(owner, repo)))
                .query("state", state_param(state.as_ref()))
                .query(per_page, "50");
            match cursor {
                Some(c) => r.query("page", c),
                None => r,
            }
        }
        _ => return Err(Unsupported::op(kind, op.name())),
    })
}

pub(crate) fn repository(v: &Value) -> Repository {
    Repository {
        id: text(v, "/id").unwrap_or_default(),
        name: text(v, "/name").unwrap_or_default(),
        full_name: text(v, "/full_name").unwrap_or_default(),
        owner: text(v, "/owner/login").unwrap_or_default(),
        description: text(v, "/description").filter(|d| !d.is_empty()),
        default_branch: text(v, "/default_branch"),
        private: flag(v, "/private"),
        url: text(v, "/html_url"),
        clone_url: text(v, "/clone_url"),
    }
}

pub(crate) fn issue(v: &Value) -> Issue {
    Issue {
        id: text(v, "/id").unwrap_or_default(),
        number: uint(v, "/number"),
        key: None,
        title: text(v, "/title").unwrap_or_default(),
        body: text(v, "/body").filter(|b| !b.is_empty()),
        state: if text(v, "/state").as_deref() == Some("closed") {
            "closed".into()
        } else {
            "open".into()
        },
        status: text(v, "/state"),
        author: text(v, "/user/login"),
        labels: items(v, "/labels")
            .iter()
            .filter_map(|l| text(l, "/name"))
            .collect(),
        url: text(v, "/html_url"),
        created_at: text(v, "/created_at"),
        updated_at: text(v, "/updated_at"),
    }
}

pub(crate) fn comment(v: &Value) -> Comment {
    Comment {
        id: text(v, "/id").unwrap_or_default(),
        body: text(v, "/body").unwrap_or_default(),
        author: text(v, "/user/login"),
        url: text(v, "/html_url"),
        created_at: text(v, "/created_at"),
    }
}

pub(crate) fn pull(v: &Value) -> PullRequest {
    let merged = flag(v, "/merged") || v.pointer("/merged_at").is_some_and(|m| !m.is_null());
    PullRequest {
        id: text(v, "/id").unwrap_or_default(),
        number: uint(v, "/number").unwrap_or_default(),
        title: text(v, "/title").unwrap_or_default(),
        state: if merged {
            "merged".into()
        } else if text(v, "/state").as_deref() == Some("closed") {
            "closed".into()
        } else {
            "open".into()
        },
        draft: flag(v, "/draft"),
        author: text(v, "/user/login"),
        source_branch: text(v, "/head/ref"),
        target_branch: text(v, "/base/ref"),
        url: text(v, "/html_url"),
        created_at: text(v, "/created_at"),
    }
}

/// A list body that is not an array is the provider's fault.
pub(crate) fn array<'a>(kind: &str, v: &'a Value) -> Result<&'a [Value], ProviderError> {
    v.as_array()
        .map(Vec::as_slice)
        .ok_or_else(|| ProviderError {
            status: 502,
            message: alloc::format!(
                "{kind} answered a list request with something that is not a list"
            ),
            code: None,
            fault: Fault::Provider,
        })
}

/// Shapes the git operations of GitHub-like APIs.
pub(crate) fn shape_git(kind: &str, op: &Operation, v: &Value) -> Result<Value, ProviderError> {
    Ok(match op.name() {
        OpName::GitGetRepo => to_value(&repository(v)),
        OpName::GitListIssues => Value::Array(
            array(kind, v)?
                .iter()
                .filter(|i| i.get("pull_request").is_none_or(Value::is_null))
                .map(|i| to_value(&issue(i)))
                .collect(),
        ),
        OpName::GitGetIssue | OpName::GitCreateIssue => to_value(&issue(v)),
        OpName::GitCommentIssue => to_value(&comment(v)),
        OpName::GitListPulls => {
            Value::Array(array(kind, v)?.iter().map(|p| to_value(&pull(p))).collect())
        }
        _ => v.clone(),
    })
}
