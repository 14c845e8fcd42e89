//! Linear (GraphQL only, `https://api.linear.app`, one endpoint `POST /graphql`).
//!
//! - Auth: a personal API key goes as is, `Authorization: <API_KEY>` (no `Bearer`); configure a
//!   bearer scheme for OAuth tokens.
//! - Operations are queries and mutations (`issues`, `issue`, `issueCreate`, `issueUpdate`,
//!   `commentCreate`); `project` is the team: a UUID is matched by id, anything else by key
//!   (`ENG`). `issueCreate` needs the team's UUID.
//! - Pagination: Relay, `first` (50) / `after`; the next cursor is `pageInfo.endCursor` while
//!   `hasNextPage`.
//! - Errors arrive as `{"errors": [{"message", "extensions": {"code"}}]}`, also with HTTP 200;
//!   `RATELIMITED` is a rate limit.
//! - Rate limits: `X-RateLimit-Requests-Remaining` / `X-RateLimit-Requests-Reset` (reference
//!   [S]); the reset is read as epoch **milliseconds** (**inferred**).
//! - Changing an issue's state needs a workflow-state id, so `pm.update_issue` with `state` is
//!   refused.

use alloc::string::String;

use mosaic_core::http::Method;
use mosaic_core::ratelimit::{RateLimitSignals, ResetFormat};
use serde_json::{json, Map, Value};

use crate::api::{Comment, Issue, OpName, Operation};
use crate::plugin::{
    items, text, to_value, AuthStyle, Fault, Provider, ProviderError, Unsupported, UpstreamRequest,
};

/// The Linear plugin.
#[derive(Clone, Copy, Debug, Default)]
pub struct Linear;

const ISSUE_FIELDS: &str = "id identifier number title description url createdAt updatedAt state { name type } creator { name } labels { nodes { name } }";

fn gql(query: &str, variables: Value) -> UpstreamRequest {
    UpstreamRequest::json(
        Method::Post,
        "/graphql",
        &json!({ "query": query, "variables": variables }),
    )
}

fn issue(v: &Value) -> Issue {
    let ty = text(v, "/state/type");
    Issue {
        id: text(v, "/id").unwrap_or_default(),
        number: v.pointer("/number").and_then(Value::as_u64),
        key: text(v, "/identifier"),
        title: text(v, "/title").unwrap_or_default(),
        body: text(v, "/description").filter(|d| !d.is_empty()),
        state: match ty.as_deref() {
            Some("completed" | "canceled") => "closed",
            _ => "open",
        }
        .into(),
        status: text(v, "/state/name"),
        author: text(v, "/creator/name"),
        labels: items(v, "/labels/nodes")
            .iter()
            .filter_map(|l| text(l, "/name"))
            .collect(),
        url: text(v, "/url"),
        created_at: text(v, "/createdAt"),
        updated_at: text(v, "/updatedAt"),
    }
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36 && s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

impl Provider for Linear {
    fn kind(&self) -> &str {
        "linear"
    }
    fn default_base_url(&self) -> Option<&str> {
        Some("https://api.linear.app")
    }
    fn auth_style(&self) -> AuthStyle {
        AuthStyle::Raw
    }
    fn rate_limit(&self) -> RateLimitSignals {
        RateLimitSignals::new(
            &["x-ratelimit-requests-remaining"],
            &["x-ratelimit-requests-reset"],
            ResetFormat::EpochMillis,
            Some(0),
        )
    }
    fn map(&self, op: &Operation) -> Result<UpstreamRequest, Unsupported> {
        let k = self.kind();
        Ok(match op {
            Operation::PmListIssues { project, cursor } => {
                let team = if is_uuid(project) {
                    json!({ "id": { "eq": project } })
                } else {
                    json!({ "key": { "eq": project } })
                };
                gql(
                    &alloc::format!("query Issues($filter: IssueFilter, $first: Int, $after: String) {{ issues(filter: $filter, first: $first, after: $after) {{ nodes {{ {ISSUE_FIELDS} }} pageInfo {{ hasNextPage endCursor }} }} }}"),
                    json!({ "filter": { "team": team }, "first": 50, "after": cursor }),
                )
            }
            Operation::PmGetIssue { id, .. } => gql(
                &alloc::format!("query Issue($id: String!) {{ issue(id: $id) {{ {ISSUE_FIELDS} }} }}"),
                json!({ "id": id }),
            ),
            Operation::PmCreateIssue { project, title, description } => {
                if !is_uuid(project) {
                    return Err(Unsupported::because(k, op.name(), "`project` must be the team's UUID"));
                }
                gql(
                    &alloc::format!("mutation IssueCreate($input: IssueCreateInput!) {{ issueCreate(input: $input) {{ success issue {{ {ISSUE_FIELDS} }} }} }}"),
                    json!({ "input": { "teamId": project, "title": title, "description": description } }),
                )
            }
            Operation::PmUpdateIssue { id, title, description, state, .. } => {
                if state.is_some() {
                    return Err(Unsupported::because(k, op.name(), "Linear sets state by workflow-state id; `state` is not supported"));
                }
                let mut input = Map::new();
                if let Some(t) = title {
                    input.insert("title".into(), json!(t));
                }
                if let Some(d) = description {
                    input.insert("description".into(), json!(d));
                }
                gql(
                    &alloc::format!("mutation IssueUpdate($id: String!, $input: IssueUpdateInput!) {{ issueUpdate(id: $id, input: $input) {{ success issue {{ {ISSUE_FIELDS} }} }} }}"),
                    json!({ "id": id, "input": input }),
                )
            }
            Operation::PmComment { id, body, .. } => gql(
                "mutation CommentCreate($input: CommentCreateInput!) { commentCreate(input: $input) { success comment { id body url createdAt user { name } } } }",
                json!({ "input": { "issueId": id, "body": body } }),
            ),
            _ => return Err(Unsupported::op(k, op.name())),
        })
    }
    fn next_cursor(
        &self,
        _op: &Operation,
        _h: &[(String, String)],
        body: &Value,
    ) -> Option<String> {
        let info = body.pointer("/data/issues/pageInfo")?;
        if info.get("hasNextPage").and_then(Value::as_bool) == Some(true) {
            text(info, "/endCursor")
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
        if let Some(first) = items(v, "/errors").first() {
            let code = text(first, "/extensions/code");
            let message = items(v, "/errors")
                .iter()
                .filter_map(|e| text(e, "/message"))
                .collect::<alloc::vec::Vec<_>>()
                .join("; ");
            let (status, fault) = match code.as_deref() {
                Some("RATELIMITED") => (429, Fault::RateLimited),
                Some("AUTHENTICATION_ERROR") => (401, Fault::Caller),
                Some("FORBIDDEN") => (403, Fault::Caller),
                Some("INTERNAL_SERVER_ERROR") => (502, Fault::Provider),
                _ if message.to_ascii_lowercase().contains("not found") => (404, Fault::Caller),
                _ => (400, Fault::Caller),
            };
            return Err(ProviderError {
                status,
                message,
                code,
                fault,
            });
        }
        let missing = || ProviderError {
            status: 404,
            message: String::from("Linear answered without the requested entity"),
            code: None,
            fault: Fault::Caller,
        };
        Ok(match op.name() {
            OpName::PmListIssues => Value::Array(
                items(v, "/data/issues/nodes")
                    .iter()
                    .map(|i| to_value(&issue(i)))
                    .collect(),
            ),
            OpName::PmGetIssue => {
                let i = v
                    .pointer("/data/issue")
                    .filter(|i| !i.is_null())
                    .ok_or_else(missing)?;
                to_value(&issue(i))
            }
            OpName::PmCreateIssue => to_value(&issue(
                v.pointer("/data/issueCreate/issue").ok_or_else(missing)?,
            )),
            OpName::PmUpdateIssue => to_value(&issue(
                v.pointer("/data/issueUpdate/issue").ok_or_else(missing)?,
            )),
            OpName::PmComment => {
                let c = v
                    .pointer("/data/commentCreate/comment")
                    .ok_or_else(missing)?;
                to_value(&Comment {
                    id: text(c, "/id").unwrap_or_default(),
                    body: text(c, "/body").unwrap_or_default(),
                    author: text(c, "/user/name"),
                    url: text(c, "/url"),
                    created_at: text(c, "/createdAt"),
                })
            }
            _ => v.clone(),
        })
    }
}
