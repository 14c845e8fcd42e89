//! GitLab REST v4 (`https://gitlab.com/api/v4`, self-hosted `https://HOST/api/v4`): git and CI.
//!
//! - Auth `PRIVATE-TOKEN: <token>`.
//! - A repository is a project addressed by its URL-encoded path (`group%2Fproject`); `{owner}`
//!   may be a nested group. `number` is the issue `iid`; comments are notes.
//! - Pagination: offset (`page`, `per_page` = 50); the next page from the `x-next-page`
//!   header (empty on the last page), else `Link: rel="next"`.
//! - Rate limits: `RateLimit-Remaining` / `RateLimit-Reset` (epoch seconds), `Retry-After`.
//! - CI: `project` is `group/project`; `POST /projects/:id/pipeline` with `{ref, variables}`,
//!   `GET /projects/:id/pipelines/:id`, `GET /projects/:id/pipelines`.
//! - Request-body field names (`description`, `variables: [{key, value}]`) are standard GitLab
//!   knowledge, **inferred** (the reference lists paths, not bodies).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use mosaic_core::http::{Headers as _, Method};
use mosaic_core::ratelimit::{RateLimitSignals, ResetFormat};
use serde_json::{json, Value};

use super::shapes::array;
use crate::api::{
    pct_encode, run_status, Comment, Issue, OpName, Operation, PullRequest, Repository, Run,
};
use crate::plugin::{
    flag, items, link_next_param, text, to_value, uint, AuthStyle, Provider, ProviderError,
    Unsupported, UpstreamRequest,
};

/// The GitLab plugin.
#[derive(Clone, Copy, Debug, Default)]
pub struct GitLab;

fn project(owner: &str, repo: &str) -> String {
    format!("/projects/{}", pct_encode(&format!("{owner}/{repo}")))
}

fn ci_project(k: &str, op: OpName, p: &str) -> Result<String, Unsupported> {
    if p.is_empty() {
        return Err(Unsupported::because(k, op, "`project` is required"));
    }
    Ok(format!("/projects/{}", pct_encode(p)))
}

fn state_param(s: Option<&String>) -> &'static str {
    match s.map(String::as_str) {
        Some("closed") => "closed",
        Some("all") => "all",
        _ => "opened",
    }
}

fn repository(v: &Value) -> Repository {
    Repository {
        id: text(v, "/id").unwrap_or_default(),
        name: text(v, "/path")
            .or_else(|| text(v, "/name"))
            .unwrap_or_default(),
        full_name: text(v, "/path_with_namespace").unwrap_or_default(),
        owner: text(v, "/namespace/full_path").unwrap_or_default(),
        description: text(v, "/description").filter(|d| !d.is_empty()),
        default_branch: text(v, "/default_branch"),
        private: text(v, "/visibility").is_some_and(|s| s != "public"),
        url: text(v, "/web_url"),
        clone_url: text(v, "/http_url_to_repo"),
    }
}

fn issue(v: &Value) -> Issue {
    let raw = text(v, "/state");
    Issue {
        id: text(v, "/id").unwrap_or_default(),
        number: uint(v, "/iid"),
        key: None,
        title: text(v, "/title").unwrap_or_default(),
        body: text(v, "/description").filter(|d| !d.is_empty()),
        state: if raw.as_deref() == Some("closed") {
            "closed"
        } else {
            "open"
        }
        .into(),
        status: raw,
        author: text(v, "/author/username"),
        labels: items(v, "/labels")
            .iter()
            .filter_map(|l| l.as_str().map(String::from).or_else(|| text(l, "/name")))
            .collect(),
        url: text(v, "/web_url"),
        created_at: text(v, "/created_at"),
        updated_at: text(v, "/updated_at"),
    }
}

fn pull(v: &Value) -> PullRequest {
    let state = match text(v, "/state").as_deref() {
        Some("merged") => "merged",
        Some("closed" | "locked") => "closed",
        _ => "open",
    };
    PullRequest {
        id: text(v, "/id").unwrap_or_default(),
        number: uint(v, "/iid").unwrap_or_default(),
        title: text(v, "/title").unwrap_or_default(),
        state: state.into(),
        draft: flag(v, "/draft") || flag(v, "/work_in_progress"),
        author: text(v, "/author/username"),
        source_branch: text(v, "/source_branch"),
        target_branch: text(v, "/target_branch"),
        url: text(v, "/web_url"),
        created_at: text(v, "/created_at"),
    }
}

fn pipeline(v: &Value) -> Run {
    let raw = text(v, "/status");
    Run {
        id: text(v, "/id").unwrap_or_default(),
        status: run_status(raw.as_deref().unwrap_or("")).into(),
        raw_status: raw,
        git_ref: text(v, "/ref"),
        sha: text(v, "/sha"),
        url: text(v, "/web_url"),
        created_at: text(v, "/created_at"),
    }
}

fn paged(r: UpstreamRequest, cursor: Option<&String>) -> UpstreamRequest {
    let r = r.query("per_page", "50");
    match cursor {
        Some(c) => r.query("page", c),
        None => r,
    }
}

impl Provider for GitLab {
    fn kind(&self) -> &str {
        "gitlab"
    }
    fn default_base_url(&self) -> Option<&str> {
        Some("https://gitlab.com/api/v4")
    }
    fn auth_style(&self) -> AuthStyle {
        AuthStyle::Header("PRIVATE-TOKEN")
    }
    fn rate_limit(&self) -> RateLimitSignals {
        RateLimitSignals::new(
            &["ratelimit-remaining"],
            &["ratelimit-reset"],
            ResetFormat::EpochSeconds,
            Some(0),
        )
    }
    fn next_cursor(
        &self,
        _op: &Operation,
        headers: &[(String, String)],
        _b: &Value,
    ) -> Option<String> {
        match headers.header("x-next-page").map(str::trim) {
            Some("") => None,
            Some(n) => Some(n.into()),
            None => link_next_param(headers, "page"),
        }
    }
    fn map(&self, op: &Operation) -> Result<UpstreamRequest, Unsupported> {
        let k = self.kind();
        Ok(match op {
            Operation::GitGetRepo { owner, repo } => UpstreamRequest::get(project(owner, repo)),
            Operation::GitListIssues {
                owner,
                repo,
                state,
                cursor,
            } => paged(
                UpstreamRequest::get(format!("{}/issues", project(owner, repo)))
                    .query("state", state_param(state.as_ref())),
                cursor.as_ref(),
            ),
            Operation::GitGetIssue {
                owner,
                repo,
                number,
            } => UpstreamRequest::get(format!("{}/issues/{number}", project(owner, repo))),
            Operation::GitCreateIssue {
                owner,
                repo,
                title,
                body,
            } => UpstreamRequest::json(
                Method::Post,
                format!("{}/issues", project(owner, repo)),
                &json!({ "title": title, "description": body.as_deref().unwrap_or("") }),
            ),
            Operation::GitCommentIssue {
                owner,
                repo,
                number,
                body,
            } => UpstreamRequest::json(
                Method::Post,
                format!("{}/issues/{number}/notes", project(owner, repo)),
                &json!({ "body": body }),
            ),
            Operation::GitListPulls {
                owner,
                repo,
                state,
                cursor,
            } => paged(
                UpstreamRequest::get(format!("{}/merge_requests", project(owner, repo)))
                    .query("state", state_param(state.as_ref())),
                cursor.as_ref(),
            ),
            Operation::CiTriggerRun {
                project: p,
                git_ref,
                inputs,
                ..
            } => {
                let vars: Vec<Value> = inputs
                    .iter()
                    .map(|(k, v)| json!({ "key": k, "value": v }))
                    .collect();
                UpstreamRequest::json(
                    Method::Post,
                    format!("{}/pipeline", ci_project(k, op.name(), p)?),
                    &json!({ "ref": git_ref, "variables": vars }),
                )
            }
            Operation::CiGetRun { project: p, run } => {
                if run.is_empty() || !run.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(Unsupported::because(
                        k,
                        op.name(),
                        "`run` must be a numeric pipeline id",
                    ));
                }
                UpstreamRequest::get(format!("{}/pipelines/{run}", ci_project(k, op.name(), p)?))
            }
            Operation::CiListRuns {
                project: p, cursor, ..
            } => paged(
                UpstreamRequest::get(format!("{}/pipelines", ci_project(k, op.name(), p)?)),
                cursor.as_ref(),
            ),
            _ => return Err(Unsupported::op(k, op.name())),
        })
    }
    fn shape(
        &self,
        op: &Operation,
        _headers: &[(String, String)],
        v: &Value,
    ) -> Result<Value, ProviderError> {
        let k = self.kind();
        Ok(match op.name() {
            OpName::GitGetRepo => to_value(&repository(v)),
            OpName::GitListIssues => {
                Value::Array(array(k, v)?.iter().map(|i| to_value(&issue(i))).collect())
            }
            OpName::GitGetIssue | OpName::GitCreateIssue => to_value(&issue(v)),
            OpName::GitCommentIssue => to_value(&Comment {
                id: text(v, "/id").unwrap_or_default(),
                body: text(v, "/body").unwrap_or_default(),
                author: text(v, "/author/username"),
                url: None,
                created_at: text(v, "/created_at"),
            }),
            OpName::GitListPulls => {
                Value::Array(array(k, v)?.iter().map(|p| to_value(&pull(p))).collect())
            }
            OpName::CiTriggerRun | OpName::CiGetRun => to_value(&pipeline(v)),
            OpName::CiListRuns => Value::Array(
                array(k, v)?
                    .iter()
                    .map(|p| to_value(&pipeline(p)))
                    .collect(),
            ),
            _ => v.clone(),
        })
    }
}
