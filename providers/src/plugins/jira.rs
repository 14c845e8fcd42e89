//! Jira Cloud (`https://SITE.atlassian.net`, REST v3 under `/rest/api/3`; no cloud default).
//!
//! - Auth HTTP Basic `email:api_token` (or a bearer token for OAuth 2.0).
//! - `project` is the project key; issues are addressed by id or key.
//! - `pm.list_issues`: `POST /rest/api/3/search/jql` `{jql, fields, maxResults, nextPageToken}`
//!   (the old `/search` answers 410, reference [S]); the next cursor is `nextPageToken` until
//!   `isLast`.
//! - Descriptions and comments are Atlassian Document Format: text is converted to one
//!   paragraph per blank-line-separated block, and back by collecting text nodes.
//! - `pm.create_issue` creates a `Task` (**inferred** default issue type); `pm.update_issue`
//!   answers 204, so the normalized issue is built from the request.
//! - Rate limits: 429 + `Retry-After`; `X-RateLimit-Remaining` and an ISO 8601
//!   `X-RateLimit-Reset`.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use mosaic_core::http::Method;
use mosaic_core::ratelimit::{RateLimitSignals, ResetFormat};
use serde_json::{json, Map, Value};

use crate::api::{pct_encode, Comment, Issue, OpName, Operation};
use crate::plugin::{
    items, paragraphs, text, to_value, AuthStyle, Provider, ProviderError, Unsupported,
    UpstreamRequest,
};

/// The Jira Cloud plugin.
#[derive(Clone, Copy, Debug, Default)]
pub struct Jira;

const FIELDS: [&str; 7] = [
    "summary",
    "status",
    "description",
    "created",
    "updated",
    "reporter",
    "labels",
];

/// The Atlassian rate-limit signals (shared with Confluence).
pub(crate) fn signals() -> RateLimitSignals {
    RateLimitSignals::new(
        &["x-ratelimit-remaining"],
        &["x-ratelimit-reset"],
        ResetFormat::Iso8601,
        Some(0),
    )
}

/// Plain text as an ADF document.
#[must_use]
pub fn adf(s: &str) -> Value {
    let content: Vec<Value> = paragraphs(s)
        .iter()
        .map(|p| json!({ "type": "paragraph", "content": [ { "type": "text", "text": p } ] }))
        .collect();
    json!({ "type": "doc", "version": 1, "content": content })
}

/// The text of an ADF document: text nodes joined, paragraphs separated by blank lines.
#[must_use]
pub fn adf_text(v: &Value) -> Option<String> {
    fn walk(v: &Value, out: &mut String) {
        if let Some(t) = v.get("text").and_then(Value::as_str) {
            out.push_str(t);
        }
        if v.get("type").and_then(Value::as_str) == Some("hardBreak") {
            out.push('\n');
        }
        for c in items(v, "/content") {
            walk(c, out);
        }
    }
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(_) => {
            let blocks: Vec<String> = items(v, "/content")
                .iter()
                .map(|b| {
                    let mut s = String::new();
                    walk(b, &mut s);
                    s
                })
                .filter(|s| !s.is_empty())
                .collect();
            (!blocks.is_empty()).then(|| blocks.join("\n\n"))
        }
        _ => None,
    }
}

fn browse(v: &Value, key: Option<&str>) -> Option<String> {
    let s = text(v, "/self")?;
    let i = s.find("/rest/")?;
    Some(format!("{}/browse/{}", &s[..i], key?))
}

fn issue(v: &Value) -> Issue {
    let key = text(v, "/key");
    let cat = text(v, "/fields/status/statusCategory/key");
    Issue {
        id: text(v, "/id").unwrap_or_default(),
        number: None,
        key: key.clone(),
        title: text(v, "/fields/summary").unwrap_or_default(),
        body: v.pointer("/fields/description").and_then(adf_text),
        state: if cat.as_deref() == Some("done") {
            "closed"
        } else {
            "open"
        }
        .into(),
        status: text(v, "/fields/status/name"),
        author: text(v, "/fields/reporter/displayName"),
        labels: items(v, "/fields/labels")
            .iter()
            .filter_map(|l| l.as_str().map(String::from))
            .collect(),
        url: browse(v, key.as_deref()),
        created_at: text(v, "/fields/created"),
        updated_at: text(v, "/fields/updated"),
    }
}

fn key_path(k: &str, op: OpName, id: &str) -> Result<String, Unsupported> {
    if id.is_empty() {
        return Err(Unsupported::because(
            k,
            op,
            "an issue id or key is required",
        ));
    }
    Ok(format!("/rest/api/3/issue/{}", pct_encode(id)))
}

impl Provider for Jira {
    fn kind(&self) -> &str {
        "jira"
    }
    fn auth_style(&self) -> AuthStyle {
        AuthStyle::Basic
    }
    fn rate_limit(&self) -> RateLimitSignals {
        signals()
    }
    fn map(&self, op: &Operation) -> Result<UpstreamRequest, Unsupported> {
        let k = self.kind();
        let n = op.name();
        Ok(match op {
            Operation::PmListIssues { project, cursor } => {
                let key = project.replace('\\', "\\\\").replace('"', "\\\"");
                let mut b = json!({
                    "jql": format!("project = \"{key}\" ORDER BY created DESC"),
                    "fields": FIELDS,
                    "maxResults": 50,
                });
                if let (Some(c), Some(o)) = (cursor, b.as_object_mut()) {
                    o.insert("nextPageToken".into(), json!(c));
                }
                UpstreamRequest::json(Method::Post, "/rest/api/3/search/jql", &b)
            }
            Operation::PmGetIssue { id, .. } => {
                UpstreamRequest::get(key_path(k, n, id)?).query("fields", &FIELDS.join(","))
            }
            Operation::PmCreateIssue {
                project,
                title,
                description,
            } => {
                let mut fields = Map::new();
                fields.insert("project".into(), json!({ "key": project }));
                fields.insert("summary".into(), json!(title));
                fields.insert("issuetype".into(), json!({ "name": "Task" }));
                if let Some(d) = description.as_deref().filter(|d| !d.trim().is_empty()) {
                    fields.insert("description".into(), adf(d));
                }
                UpstreamRequest::json(
                    Method::Post,
                    "/rest/api/3/issue",
                    &json!({ "fields": fields }),
                )
            }
            Operation::PmUpdateIssue {
                id,
                title,
                description,
                state,
                ..
            } => {
                if state.is_some() {
                    return Err(Unsupported::because(
                        k,
                        n,
                        "Jira changes state through transitions; `state` is not supported",
                    ));
                }
                let mut fields = Map::new();
                if let Some(t) = title {
                    fields.insert("summary".into(), json!(t));
                }
                if let Some(d) = description {
                    fields.insert("description".into(), adf(d));
                }
                UpstreamRequest::json(
                    Method::Put,
                    key_path(k, n, id)?,
                    &json!({ "fields": fields }),
                )
            }
            Operation::PmComment { id, body, .. } => UpstreamRequest::json(
                Method::Post,
                format!("{}/comment", key_path(k, n, id)?),
                &json!({ "body": adf(body) }),
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
        if body.get("isLast").and_then(Value::as_bool) == Some(true) {
            None
        } else {
            text(body, "/nextPageToken")
        }
    }
    fn shape(
        &self,
        op: &Operation,
        _headers: &[(String, String)],
        v: &Value,
    ) -> Result<Value, ProviderError> {
        Ok(match op {
            Operation::PmListIssues { .. } => Value::Array(
                items(v, "/issues")
                    .iter()
                    .map(|i| to_value(&issue(i)))
                    .collect(),
            ),
            Operation::PmGetIssue { .. } => to_value(&issue(v)),
            Operation::PmCreateIssue {
                title, description, ..
            } => {
                let key = text(v, "/key");
                to_value(&Issue {
                    id: text(v, "/id").unwrap_or_default(),
                    url: browse(v, key.as_deref()),
                    key,
                    title: title.clone(),
                    body: description.clone(),
                    state: "open".into(),
                    ..Issue::default()
                })
            }
            Operation::PmUpdateIssue {
                id,
                title,
                description,
                ..
            } => to_value(&Issue {
                id: id.clone(),
                key: Some(id.clone()),
                title: title.clone().unwrap_or_default(),
                body: description.clone(),
                state: "open".into(),
                ..Issue::default()
            }),
            Operation::PmComment { .. } => to_value(&Comment {
                id: text(v, "/id").unwrap_or_default(),
                body: v.get("body").and_then(adf_text).unwrap_or_default(),
                author: text(v, "/author/displayName"),
                url: None,
                created_at: text(v, "/created"),
            }),
            _ => v.clone(),
        })
    }
}
