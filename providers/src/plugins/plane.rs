//! Plane (`https://api.plane.so/api/v1`, self-hosted `https://HOST/api/v1`).
//!
//! - Auth `X-API-Key: <token>`.
//! - `project` is `workspace-slug/project-id`; work items live under
//!   `/workspaces/{slug}/projects/{project_id}/work-items/` (trailing slash required).
//! - Pagination: `cursor` + `per_page` (50); the response carries `next_cursor` and
//!   `next_page_results`.
//! - Rate limits: 60 req/min per key; `X-RateLimit-Remaining` / `X-RateLimit-Reset` (reference
//!   [S]); the reset is read as epoch seconds (**inferred**).
//! - Bodies (`name`, `description_html`, `comment_html`) and `expand=state` are **inferred**
//!   from Plane's API conventions; state changes need a state id, so `state` is refused.

use alloc::format;
use alloc::string::String;

use mosaic_core::http::Method;
use mosaic_core::ratelimit::{RateLimitSignals, ResetFormat};
use serde_json::{json, Map, Value};

use crate::api::{pct_encode, Comment, Issue, OpName, Operation};
use crate::plugin::{
    items, text, text_to_html, to_value, uint, AuthStyle, Provider, ProviderError, Unsupported,
    UpstreamRequest,
};

/// The Plane plugin.
#[derive(Clone, Copy, Debug, Default)]
pub struct Plane;

fn base(k: &str, op: OpName, project: Option<&str>) -> Result<String, Unsupported> {
    match project.and_then(|p| p.split_once('/')) {
        Some((ws, p)) if !ws.is_empty() && !p.is_empty() && !p.contains('/') => Ok(format!(
            "/workspaces/{}/projects/{}/work-items/",
            pct_encode(ws),
            pct_encode(p)
        )),
        _ => Err(Unsupported::because(
            k,
            op,
            "`project` must be `workspace-slug/project-id`",
        )),
    }
}

fn issue(v: &Value) -> Issue {
    let group = text(v, "/state/group");
    Issue {
        id: text(v, "/id").unwrap_or_default(),
        number: uint(v, "/sequence_id"),
        key: None,
        title: text(v, "/name").unwrap_or_default(),
        body: text(v, "/description_stripped")
            .or_else(|| text(v, "/description_html"))
            .filter(|d| !d.is_empty()),
        state: match group.as_deref() {
            Some("completed" | "cancelled") => "closed",
            _ => "open",
        }
        .into(),
        status: text(v, "/state/name").or_else(|| text(v, "/state")),
        author: text(v, "/created_by"),
        labels: items(v, "/labels")
            .iter()
            .filter_map(|l| l.as_str().map(String::from).or_else(|| text(l, "/name")))
            .collect(),
        url: None,
        created_at: text(v, "/created_at"),
        updated_at: text(v, "/updated_at"),
    }
}

impl Provider for Plane {
    fn kind(&self) -> &str {
        "plane"
    }
    fn default_base_url(&self) -> Option<&str> {
        Some("https://api.plane.so/api/v1")
    }
    fn auth_style(&self) -> AuthStyle {
        AuthStyle::Header("X-API-Key")
    }
    fn rate_limit(&self) -> RateLimitSignals {
        RateLimitSignals::new(
            &["x-ratelimit-remaining"],
            &["x-ratelimit-reset"],
            ResetFormat::EpochSeconds,
            Some(0),
        )
    }
    fn paginate(&self, req: UpstreamRequest, cursor: &str) -> UpstreamRequest {
        req.query("cursor", cursor)
    }
    fn map(&self, op: &Operation) -> Result<UpstreamRequest, Unsupported> {
        let k = self.kind();
        let n = op.name();
        Ok(match op {
            Operation::PmListIssues { project, cursor } => {
                let r = UpstreamRequest::get(base(k, n, Some(project))?)
                    .query("per_page", "50")
                    .query("expand", "state");
                match cursor {
                    Some(c) => self.paginate(r, c),
                    None => r,
                }
            }
            Operation::PmGetIssue { project, id } => UpstreamRequest::get(format!(
                "{}{}/",
                base(k, n, project.as_deref())?,
                pct_encode(id)
            ))
            .query("expand", "state"),
            Operation::PmCreateIssue {
                project,
                title,
                description,
            } => UpstreamRequest::json(
                Method::Post,
                base(k, n, Some(project))?,
                &json!({ "name": title, "description_html": text_to_html(description.as_deref().unwrap_or("")) }),
            ),
            Operation::PmUpdateIssue {
                project,
                id,
                title,
                description,
                state,
            } => {
                if state.is_some() {
                    return Err(Unsupported::because(
                        k,
                        n,
                        "Plane sets state by state id; `state` is not supported",
                    ));
                }
                let mut b = Map::new();
                if let Some(t) = title {
                    b.insert("name".into(), json!(t));
                }
                if let Some(d) = description {
                    b.insert("description_html".into(), json!(text_to_html(d)));
                }
                UpstreamRequest::json(
                    Method::Patch,
                    format!("{}{}/", base(k, n, project.as_deref())?, pct_encode(id)),
                    &Value::Object(b),
                )
            }
            Operation::PmComment { project, id, body } => UpstreamRequest::json(
                Method::Post,
                format!(
                    "{}{}/comments/",
                    base(k, n, project.as_deref())?,
                    pct_encode(id)
                ),
                &json!({ "comment_html": text_to_html(body) }),
            ),
            _ => return Err(Unsupported::op(k, n)),
        })
    }
    fn next_cursor(
        &self,
        _op: &Operation,
        _h: &[(String, String)],
        body: &Value,
    ) -> Option<String> {
        if body.get("next_page_results").and_then(Value::as_bool) == Some(true) {
            text(body, "/next_cursor")
        } else {
            None
        }
    }
    fn shape(
        &self,
        op: &Operation,
        _headers: &[(String, String)],
        v: &Value,
    ) -> Result<Value, ProviderError> {
        Ok(match op.name() {
            OpName::PmListIssues => Value::Array(
                items(v, "/results")
                    .iter()
                    .map(|i| to_value(&issue(i)))
                    .collect(),
            ),
            OpName::PmGetIssue | OpName::PmCreateIssue | OpName::PmUpdateIssue => {
                to_value(&issue(v))
            }
            OpName::PmComment => to_value(&Comment {
                id: text(v, "/id").unwrap_or_default(),
                body: text(v, "/comment_stripped")
                    .or_else(|| text(v, "/comment_html"))
                    .unwrap_or_default(),
                author: text(v, "/created_by"),
                url: None,
                created_at: text(v, "/created_at"),
            }),
            _ => v.clone(),
        })
    }
}
