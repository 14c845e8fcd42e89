//! GitHub Actions: workflow runs over the GitHub REST API (same base URL, auth, headers,
//! pagination and rate limits as [`super::github`]).
//!
//! - `project` is `owner/repo`.
//! - `ci.trigger_run`: `POST /repos/{owner}/{repo}/actions/workflows/{workflow}/dispatches`
//!   with `{ref, inputs, return_run_details: true}`; GitHub answers 200 with
//!   `{workflow_run_id, run_url, html_url}` (or 204 without details, then the run id is empty).
//! - `ci.get_run`: `GET …/actions/runs/{run_id}`; status from `status` + `conclusion`.
//! - `ci.list_runs`: `GET …/actions/runs` (or `…/actions/workflows/{workflow}/runs`).

use alloc::format;
use alloc::string::String;

use mosaic_core::http::{HeaderList, Method};
use mosaic_core::ratelimit::RateLimitSignals;
use serde_json::{json, Value};

use super::github;
use super::shapes::{array, repo_path};
use crate::api::{run_status, OpName, Operation, Run};
use crate::plugin::{
    items, text, to_value, AuthStyle, Fault, Provider, ProviderError, Unsupported, UpstreamRequest,
};

/// The GitHub Actions plugin.
#[derive(Clone, Copy, Debug, Default)]
pub struct GitHubActions;

fn split(kind: &str, op: OpName, project: &str) -> Result<String, Unsupported> {
    match project.split_once('/') {
        Some((o, r)) if !o.is_empty() && !r.is_empty() && !r.contains('/') => Ok(repo_path(o, r)),
        _ => Err(Unsupported::because(
            kind,
            op,
            "`project` must be `owner/repo`",
        )),
    }
}

fn run(v: &Value) -> Run {
    let status = text(v, "/status").unwrap_or_default();
    let conclusion = text(v, "/conclusion");
    let norm = match (status.as_str(), conclusion.as_deref()) {
        ("completed", Some(c)) => run_status(c),
        (s, _) => run_status(s),
    };
    Run {
        id: text(v, "/id").unwrap_or_default(),
        status: norm.into(),
        raw_status: Some(match conclusion {
            Some(c) => format!("{status}/{c}"),
            None => status,
        }),
        git_ref: text(v, "/head_branch"),
        sha: text(v, "/head_sha"),
        url: text(v, "/html_url"),
        created_at: text(v, "/created_at"),
    }
}

impl Provider for GitHubActions {
    fn kind(&self) -> &str {
        "github-actions"
    }
    fn default_base_url(&self) -> Option<&str> {
        Some("https://api.github.com")
    }
    fn auth_style(&self) -> AuthStyle {
        AuthStyle::Bearer
    }
    fn default_headers(&self) -> HeaderList {
        github::headers()
    }
    fn classify(&self, status: u16, headers: &[(String, String)]) -> Option<Fault> {
        github::classify(status, headers)
    }
    fn rate_limit(&self) -> RateLimitSignals {
        github::signals()
    }
    fn webhook_preset(&self) -> Option<&str> {
        Some("github")
    }
    fn map(&self, op: &Operation) -> Result<UpstreamRequest, Unsupported> {
        let k = self.kind();
        Ok(match op {
            Operation::CiTriggerRun {
                project,
                workflow,
                git_ref,
                inputs,
            } => {
                let base = split(k, op.name(), project)?;
                let wf = workflow
                    .as_deref()
                    .filter(|w| !w.is_empty())
                    .ok_or_else(|| {
                        Unsupported::because(
                            k,
                            op.name(),
                            "`workflow` (file name or id) is required",
                        )
                    })?;
                UpstreamRequest::json(
                    Method::Post,
                    format!(
                        "{base}/actions/workflows/{}/dispatches",
                        crate::api::pct_encode(wf)
                    ),
                    &json!({ "ref": git_ref, "inputs": inputs, "return_run_details": true }),
                )
            }
            Operation::CiGetRun { project, run } => {
                let base = split(k, op.name(), project)?;
                if run.is_empty() || !run.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(Unsupported::because(
                        k,
                        op.name(),
                        "`run` must be a numeric run id",
                    ));
                }
                UpstreamRequest::get(format!("{base}/actions/runs/{run}"))
            }
            Operation::CiListRuns {
                project,
                workflow,
                cursor,
            } => {
                let base = split(k, op.name(), project)?;
                let path = match workflow.as_deref().filter(|w| !w.is_empty()) {
                    Some(w) => format!(
                        "{base}/actions/workflows/{}/runs",
                        crate::api::pct_encode(w)
                    ),
                    None => format!("{base}/actions/runs"),
                };
                let r = UpstreamRequest::get(path).query("per_page", "50");
                match cursor {
                    Some(c) => self.paginate(r, c),
                    None => r,
                }
            }
            _ => return Err(Unsupported::op(k, op.name())),
        })
    }
    fn shape(
        &self,
        op: &Operation,
        _headers: &[(String, String)],
        v: &Value,
    ) -> Result<Value, ProviderError> {
        Ok(match op {
            Operation::CiTriggerRun { git_ref, .. } => to_value(&Run {
                id: text(v, "/workflow_run_id").unwrap_or_default(),
                status: "queued".into(),
                raw_status: None,
                git_ref: Some(git_ref.clone()),
                sha: None,
                url: text(v, "/html_url"),
                created_at: None,
            }),
            Operation::CiGetRun { .. } => to_value(&run(v)),
            Operation::CiListRuns { .. } => {
                let runs = if v.get("workflow_runs").is_some() {
                    items(v, "/workflow_runs")
                } else {
                    array(self.kind(), v)?
                };
                Value::Array(runs.iter().map(|r| to_value(&run(r))).collect())
            }
            _ => v.clone(),
        })
    }
}
