//! Woodpecker CI (`https://HOST/api`; no cloud default).
//!
//! - Auth `Authorization: Bearer <personal access token>`.
//! - `project` is the numeric repository id (`/api/repos/{repo_id}/…`); looking an id up from
//!   `owner/name` (`/api/repos/lookup/…`, reference [S]) would need a second request, so it is
//!   not done here.
//! - `ci.trigger_run`: `POST /repos/{id}/pipelines` `{branch, variables}`; `ci.get_run`:
//!   `GET /repos/{id}/pipelines/{number}`; `ci.list_runs`: `GET /repos/{id}/pipelines?page=&perPage=50`.
//! - Pagination has no header: the next page is **inferred** when a full page (50) came back.
//! - Rate limits: none known (reference [U]); the common names are read.

use alloc::format;
use alloc::string::{String, ToString};

use mosaic_core::http::Method;
use serde_json::{json, Value};

use super::shapes::array;
use crate::api::{run_status, OpName, Operation, Run};
use crate::plugin::{
    text, to_value, AuthStyle, Provider, ProviderError, Unsupported, UpstreamRequest,
};

/// The Woodpecker plugin.
#[derive(Clone, Copy, Debug, Default)]
pub struct Woodpecker;

const PER_PAGE: usize = 50;

fn repo(k: &str, op: OpName, p: &str) -> Result<String, Unsupported> {
    if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Unsupported::because(
            k,
            op,
            "`project` must be the numeric Woodpecker repository id",
        ));
    }
    Ok(format!("/repos/{p}"))
}

fn run(v: &Value) -> Run {
    let raw = text(v, "/status");
    Run {
        id: text(v, "/number").unwrap_or_default(),
        status: run_status(raw.as_deref().unwrap_or("")).into(),
        raw_status: raw,
        git_ref: text(v, "/branch").or_else(|| text(v, "/ref")),
        sha: text(v, "/commit"),
        url: text(v, "/forge_url").or_else(|| text(v, "/link_url")),
        created_at: text(v, "/created"),
    }
}

impl Provider for Woodpecker {
    fn kind(&self) -> &str {
        "woodpecker"
    }
    fn auth_style(&self) -> AuthStyle {
        AuthStyle::Bearer
    }
    fn map(&self, op: &Operation) -> Result<UpstreamRequest, Unsupported> {
        let k = self.kind();
        Ok(match op {
            Operation::CiTriggerRun {
                project,
                git_ref,
                inputs,
                ..
            } => UpstreamRequest::json(
                Method::Post,
                format!("{}/pipelines", repo(k, op.name(), project)?),
                &json!({ "branch": git_ref, "variables": inputs }),
            ),
            Operation::CiGetRun { project, run } => {
                if run.is_empty() || !run.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(Unsupported::because(
                        k,
                        op.name(),
                        "`run` must be a pipeline number",
                    ));
                }
                UpstreamRequest::get(format!("{}/pipelines/{run}", repo(k, op.name(), project)?))
            }
            Operation::CiListRuns {
                project, cursor, ..
            } => {
                let r = UpstreamRequest::get(format!("{}/pipelines", repo(k, op.name(), project)?))
                    .query("perPage", "50");
                match cursor {
                    Some(c) => self.paginate(r, c),
                    None => r,
                }
            }
            _ => return Err(Unsupported::op(k, op.name())),
        })
    }
    fn next_cursor(&self, op: &Operation, _h: &[(String, String)], body: &Value) -> Option<String> {
        let full = body.as_array().is_some_and(|a| a.len() >= PER_PAGE);
        let page: u64 = op.cursor().and_then(|c| c.parse().ok()).unwrap_or(1);
        full.then(|| (page + 1).to_string())
    }
    fn shape(
        &self,
        op: &Operation,
        _headers: &[(String, String)],
        v: &Value,
    ) -> Result<Value, ProviderError> {
        Ok(match op.name() {
            OpName::CiTriggerRun | OpName::CiGetRun => to_value(&run(v)),
            OpName::CiListRuns => Value::Array(
                array(self.kind(), v)?
                    .iter()
                    .map(|r| to_value(&run(r)))
                    .collect(),
            ),
            _ => v.clone(),
        })
    }
}
