//! Jenkins (`https://HOST/`; per-object `…/api/json`; no cloud default).
//!
//! - Auth HTTP Basic with `user:apiToken` (no CSRF crumb needed with an API token, reference [S]).
//! - `project` is the job name; folders are written `a/b` and mapped to `/job/a/job/b`.
//! - `ci.trigger_run`: `POST /job/{name}/build`, or `/buildWithParameters?k=v` with inputs.
//!   Jenkins answers 201 with `Location: …/queue/item/{id}/`; the run id is then `queue-{id}`,
//!   which `ci.get_run` resolves through `GET /queue/item/{id}/api/json` (`executable.number`
//!   once the build started, reference [S]).
//! - `ci.get_run`: `GET /job/{name}/{number}/api/json` (`building`, `result`).
//! - `ci.list_runs`: `GET /job/{name}/api/json?tree=builds[…]{start,end}` — the range syntax is
//!   reference [U]; the cursor is the start offset, a next page is **inferred** from a full page.
//! - No rate-limit headers.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use mosaic_core::http::{Headers as _, Method};
use serde_json::Value;

use crate::api::{pct_encode, run_status, OpName, Operation, Run};
use crate::plugin::{
    flag, items, text, to_value, AuthStyle, Provider, ProviderError, Unsupported, UpstreamRequest,
};

/// The Jenkins plugin.
#[derive(Clone, Copy, Debug, Default)]
pub struct Jenkins;

const PAGE: u64 = 50;
const TREE: &str = "number,result,building,url,timestamp";

fn job(k: &str, op: OpName, name: &str) -> Result<String, Unsupported> {
    let parts: Vec<&str> = name.split('/').collect();
    if name.is_empty()
        || parts
            .iter()
            .any(|p| p.is_empty() || *p == "." || *p == "..")
    {
        return Err(Unsupported::because(
            k,
            op,
            "`project` must be a job name (folders as `a/b`)",
        ));
    }
    Ok(parts
        .iter()
        .map(|p| format!("/job/{}", pct_encode(p)))
        .collect())
}

fn build(v: &Value) -> Run {
    let building = flag(v, "/building");
    let result = text(v, "/result");
    let status = if building {
        "running"
    } else {
        result.as_deref().map_or("queued", run_status)
    };
    Run {
        id: text(v, "/number").unwrap_or_default(),
        status: status.into(),
        raw_status: result.or_else(|| building.then(|| String::from("BUILDING"))),
        git_ref: None,
        sha: None,
        url: text(v, "/url"),
        created_at: text(v, "/timestamp"),
    }
}

impl Provider for Jenkins {
    fn kind(&self) -> &str {
        "jenkins"
    }
    fn auth_style(&self) -> AuthStyle {
        AuthStyle::Basic
    }
    fn map(&self, op: &Operation) -> Result<UpstreamRequest, Unsupported> {
        let k = self.kind();
        Ok(match op {
            Operation::CiTriggerRun {
                project, inputs, ..
            } => {
                let j = job(k, op.name(), project)?;
                if inputs.is_empty() {
                    UpstreamRequest::new(Method::Post, format!("{j}/build"))
                } else {
                    inputs.iter().fold(
                        UpstreamRequest::new(Method::Post, format!("{j}/buildWithParameters")),
                        |r, (k, v)| r.query(k, v),
                    )
                }
            }
            Operation::CiGetRun { project, run } => {
                let j = job(k, op.name(), project)?;
                if let Some(q) = run.strip_prefix("queue-") {
                    if q.is_empty() || !q.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(Unsupported::because(k, op.name(), "bad queue item id"));
                    }
                    UpstreamRequest::get(format!("/queue/item/{q}/api/json"))
                } else if !run.is_empty() && run.bytes().all(|b| b.is_ascii_digit()) {
                    UpstreamRequest::get(format!("{j}/{run}/api/json"))
                } else {
                    return Err(Unsupported::because(
                        k,
                        op.name(),
                        "`run` must be a build number or `queue-<id>`",
                    ));
                }
            }
            Operation::CiListRuns {
                project, cursor, ..
            } => {
                let start: u64 = match cursor {
                    Some(c) => c
                        .parse()
                        .map_err(|_| Unsupported::because(k, op.name(), "bad cursor"))?,
                    None => 0,
                };
                UpstreamRequest::get(format!(
                    "{}/api/json?tree=builds%5B{TREE}%5D%7B{start},{}%7D",
                    job(k, op.name(), project)?,
                    start + PAGE
                ))
            }
            _ => return Err(Unsupported::op(k, op.name())),
        })
    }
    fn next_cursor(&self, op: &Operation, _h: &[(String, String)], body: &Value) -> Option<String> {
        let start: u64 = op.cursor().and_then(|c| c.parse().ok()).unwrap_or(0);
        (items(body, "/builds").len() as u64 >= PAGE).then(|| (start + PAGE).to_string())
    }
    fn shape(
        &self,
        op: &Operation,
        headers: &[(String, String)],
        v: &Value,
    ) -> Result<Value, ProviderError> {
        Ok(match op {
            Operation::CiTriggerRun { git_ref, .. } => {
                let loc = headers.header("location").unwrap_or("");
                let id = loc
                    .trim_end_matches('/')
                    .rsplit('/')
                    .next()
                    .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
                to_value(&Run {
                    id: id.map(|i| format!("queue-{i}")).unwrap_or_default(),
                    status: "queued".into(),
                    raw_status: None,
                    git_ref: (!git_ref.is_empty()).then(|| git_ref.clone()),
                    sha: None,
                    url: (!loc.is_empty()).then(|| loc.to_string()),
                    created_at: None,
                })
            }
            Operation::CiGetRun { run, .. } if run.starts_with("queue-") => {
                match v.pointer("/executable/number") {
                    Some(n) if !n.is_null() => to_value(&Run {
                        id: n.to_string(),
                        status: "running".into(),
                        raw_status: Some("STARTED".into()),
                        url: text(v, "/executable/url"),
                        ..Run::default()
                    }),
                    _ => to_value(&Run {
                        id: run.clone(),
                        status: if flag(v, "/cancelled") {
                            "cancelled"
                        } else {
                            "queued"
                        }
                        .into(),
                        raw_status: text(v, "/why"),
                        url: text(v, "/url"),
                        ..Run::default()
                    }),
                }
            }
            Operation::CiGetRun { .. } => to_value(&build(v)),
            Operation::CiListRuns { .. } => Value::Array(
                items(v, "/builds")
                    .iter()
                    .map(|b| to_value(&build(b)))
                    .collect(),
            ),
            _ => v.clone(),
        })
    }
}
