//! The OpenAPI 3.1 document of the `/v1` API, served at `/v1/openapi.json`.
//!
//! Built from [`OpName::ALL`] so that every operation has a path: each operation's method,
//! path, parameters, request body and response shape come from one table here
//! ([`operation_path`]). Errors are `application/problem+json` (RFC 9457); list answers carry
//! an opaque `next_cursor`.

use alloc::string::String;
use alloc::vec::Vec;

use serde_json::{json, Map, Value};

use crate::api::OpName;

/// How an operation appears in the document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathInfo {
    /// HTTP method, lowercase.
    pub method: &'static str,
    /// OpenAPI path template.
    pub path: &'static str,
    /// Query parameters (name, required).
    pub query: &'static [(&'static str, bool)],
    /// Request body schema name, if any.
    pub body: Option<&'static str>,
    /// One-line summary.
    pub summary: &'static str,
}

/// The method, path and parameters of an operation.
#[must_use]
pub const fn operation_path(op: OpName) -> PathInfo {
    const REPO: &str = "/v1/git/repos/{owner}/{repo}";
    let _ = REPO;
    match op {
        OpName::GitGetRepo => PathInfo {
            method: "get",
            path: "/v1/git/repos/{owner}/{repo}",
            query: &[],
            body: None,
            summary: "Get a repository",
        },
        OpName::GitListIssues => PathInfo {
            method: "get",
            path: "/v1/git/repos/{owner}/{repo}/issues",
            query: &[("state", false), ("cursor", false)],
            body: None,
            summary: "List issues (pull requests excluded)",
        },
        OpName::GitCreateIssue => PathInfo {
            method: "post",
            path: "/v1/git/repos/{owner}/{repo}/issues",
            query: &[],
            body: Some("CreateGitIssue"),
            summary: "Create an issue",
        },
        OpName::GitGetIssue => PathInfo {
            method: "get",
            path: "/v1/git/repos/{owner}/{repo}/issues/{number}",
            query: &[],
            body: None,
            summary: "Get an issue",
        },
        OpName::GitCommentIssue => PathInfo {
            method: "post",
            path: "/v1/git/repos/{owner}/{repo}/issues/{number}/comments",
            query: &[],
            body: Some("CreateComment"),
            summary: "Comment on an issue",
        },
        OpName::GitListPulls => PathInfo {
            method: "get",
            path: "/v1/git/repos/{owner}/{repo}/pulls",
            query: &[("state", false), ("cursor", false)],
            body: None,
            summary: "List pull or merge requests",
        },
        OpName::CiTriggerRun => PathInfo {
            method: "post",
            path: "/v1/ci/runs",
            query: &[],
            body: Some("TriggerRun"),
            summary: "Trigger a pipeline or workflow run",
        },
        OpName::CiListRuns => PathInfo {
            method: "get",
            path: "/v1/ci/runs",
            query: &[("project", true), ("workflow", false), ("cursor", false)],
            body: None,
            summary: "List runs",
        },
        OpName::CiGetRun => PathInfo {
            method: "get",
            path: "/v1/ci/runs/{run}",
            query: &[("project", true)],
            body: None,
            summary: "Get a run's status",
        },
        OpName::KbSearchPages => PathInfo {
            method: "get",
            path: "/v1/kb/pages",
            query: &[("query", true), ("space", false), ("cursor", false)],
            body: None,
            summary: "Search pages",
        },
        OpName::KbCreatePage => PathInfo {
            method: "post",
            path: "/v1/kb/pages",
            query: &[],
            body: Some("CreatePage"),
            summary: "Create a page",
        },
        OpName::KbGetPage => PathInfo {
            method: "get",
            path: "/v1/kb/pages/{id}",
            query: &[],
            body: None,
            summary: "Get a page",
        },
        OpName::PmListIssues => PathInfo {
            method: "get",
            path: "/v1/pm/issues",
            query: &[("project", true), ("cursor", false)],
            body: None,
            summary: "List issues of a project",
        },
        OpName::PmCreateIssue => PathInfo {
            method: "post",
            path: "/v1/pm/issues",
            query: &[],
            body: Some("CreatePmIssue"),
            summary: "Create an issue",
        },
        OpName::PmGetIssue => PathInfo {
            method: "get",
            path: "/v1/pm/issues/{id}",
            query: &[("project", false)],
            body: None,
            summary: "Get an issue",
        },
        OpName::PmUpdateIssue => PathInfo {
            method: "patch",
            path: "/v1/pm/issues/{id}",
            query: &[("project", false)],
            body: Some("UpdatePmIssue"),
            summary: "Update an issue",
        },
        OpName::PmComment => PathInfo {
            method: "post",
            path: "/v1/pm/issues/{id}/comments",
            query: &[("project", false)],
            body: Some("CreatePmComment"),
            summary: "Comment on an issue",
        },
    }
}

fn s() -> Value {
    json!({ "type": "string" })
}
fn ns() -> Value {
    json!({ "type": ["string", "null"] })
}
fn obj(required: &[&str], props: &[(&str, Value)]) -> Value {
    let mut p = Map::new();
    for (k, v) in props {
        p.insert((*k).into(), v.clone());
    }
    json!({ "type": "object", "required": required, "properties": p })
}

fn schemas() -> Value {
    let strs = json!({ "type": "array", "items": { "type": "string" } });
    json!({
        "Repository": obj(&["id", "name", "full_name", "owner", "private"], &[
            ("id", s()), ("name", s()), ("full_name", s()), ("owner", s()), ("description", ns()),
            ("default_branch", ns()), ("private", json!({ "type": "boolean" })), ("url", ns()), ("clone_url", ns()),
        ]),
        "Issue": obj(&["id", "title", "state", "labels"], &[
            ("id", s()), ("number", json!({ "type": ["integer", "null"], "minimum": 0 })), ("key", ns()),
            ("title", s()), ("body", ns()), ("state", json!({ "enum": ["open", "closed"] })), ("status", ns()),
            ("author", ns()), ("labels", strs.clone()), ("url", ns()), ("created_at", ns()), ("updated_at", ns()),
        ]),
        "Comment": obj(&["id", "body"], &[
            ("id", s()), ("body", s()), ("author", ns()), ("url", ns()), ("created_at", ns()),
        ]),
        "PullRequest": obj(&["id", "number", "title", "state", "draft"], &[
            ("id", s()), ("number", json!({ "type": "integer", "minimum": 0 })), ("title", s()),
            ("state", json!({ "enum": ["open", "closed", "merged"] })), ("draft", json!({ "type": "boolean" })),
            ("author", ns()), ("source_branch", ns()), ("target_branch", ns()), ("url", ns()), ("created_at", ns()),
        ]),
        "Run": obj(&["id", "status"], &[
            ("id", s()), ("status", json!({ "enum": ["queued", "running", "success", "failure", "cancelled", "skipped", "unknown"] })),
            ("raw_status", ns()), ("ref", ns()), ("sha", ns()), ("url", ns()), ("created_at", ns()),
        ]),
        "Page": obj(&["id", "title"], &[
            ("id", s()), ("title", s()), ("space", ns()), ("parent", ns()), ("body", ns()), ("url", ns()), ("updated_at", ns()),
        ]),
        "Cursor": {
            "type": "string",
            "description": "Opaque: base64url (no padding) of a version byte (1), the provider kind's length and name, and the provider's own cursor. Pass `next_cursor` back unchanged as `cursor`; a cursor only continues on a provider of the kind that issued it.",
            "pattern": "^[A-Za-z0-9_-]+$",
            "maxLength": 4096
        },
        "Problem": {
            "type": "object",
            "description": "RFC 9457 problem details. Provider errors keep the provider's own status, message and code.",
            "required": ["type", "title", "status"],
            "properties": {
                "type": { "type": "string", "format": "uri" }, "title": s(), "status": { "type": "integer" },
                "detail": s(), "instance": s(), "request_id": s(), "code": s(),
                "provider": s(), "provider_status": { "type": "integer" }, "provider_message": s(), "provider_code": ns()
            }
        },
        "CreateGitIssue": obj(&["title"], &[("title", s()), ("body", s())]),
        "CreateComment": obj(&["body"], &[("body", s())]),
        "TriggerRun": obj(&["project", "ref"], &[
            ("project", s()), ("workflow", s()), ("ref", s()),
            ("inputs", json!({ "type": "object", "additionalProperties": { "type": "string" } })),
        ]),
        "CreatePage": obj(&["title", "body"], &[("title", s()), ("body", s()), ("space", s()), ("parent", s())]),
        "CreatePmIssue": obj(&["project", "title"], &[("project", s()), ("title", s()), ("description", s())]),
        "UpdatePmIssue": obj(&[], &[("project", s()), ("title", s()), ("description", s()), ("state", s())]),
        "CreatePmComment": obj(&["body"], &[("project", s()), ("body", s())]),
    })
}

fn envelope(op: OpName) -> Value {
    let one = json!({ "$ref": format_ref(op.shape()) });
    let data = if op.is_list() {
        json!({ "type": "array", "items": one })
    } else {
        one
    };
    json!({
        "type": "object",
        "required": ["data", "next_cursor", "provider"],
        "properties": {
            "data": data,
            "next_cursor": { "oneOf": [ { "$ref": "#/components/schemas/Cursor" }, { "type": "null" } ] },
            "provider": { "type": "string", "description": "Id of the provider that answered" }
        }
    })
}

fn format_ref(name: &str) -> String {
    alloc::format!("#/components/schemas/{name}")
}

fn operation(op: OpName, info: &PathInfo) -> Value {
    let mut params: Vec<Value> = Vec::new();
    let mut rest = info.path;
    while let Some(i) = rest.find('{') {
        let Some(j) = rest[i..].find('}') else { break };
        let name = &rest[i + 1..i + j];
        params.push(json!({ "name": name, "in": "path", "required": true, "schema": if name == "number" { json!({ "type": "integer", "minimum": 0 }) } else { s() } }));
        rest = &rest[i + j + 1..];
    }
    for (q, req) in info.query {
        let schema = if *q == "cursor" {
            json!({ "$ref": "#/components/schemas/Cursor" })
        } else {
            s()
        };
        params.push(json!({ "name": q, "in": "query", "required": req, "schema": schema }));
    }
    params.push(json!({ "name": "provider", "in": "query", "required": false, "schema": s(), "description": "Pin one provider of the route by id" }));
    let problem = json!({ "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } });
    let mut o = json!({
        "operationId": op.as_str(),
        "summary": info.summary,
        "tags": [op.as_str().split('.').next().unwrap_or("")],
        "x-mosaic-read": op.is_read(),
        "parameters": params,
        "responses": {
            "200": { "description": "Normalized answer", "content": { "application/json": { "schema": envelope(op) } } },
            "400": { "description": "Bad arguments, body or cursor", "content": problem.clone() },
            "404": { "description": "Not found (at the provider, or no such /v1 path)", "content": problem.clone() },
            "429": { "description": "Rate limited", "content": problem.clone() },
            "501": { "description": "The provider does not support this operation", "content": problem.clone() },
            "502": { "description": "The provider failed; its message is kept", "content": problem.clone() },
            "503": { "description": "Every provider is unavailable", "content": problem }
        }
    });
    if let (Some(b), Some(m)) = (info.body, o.as_object_mut()) {
        m.insert("requestBody".into(), json!({ "required": true, "content": { "application/json": { "schema": { "$ref": format_ref(b) } } } }));
    }
    o
}

/// The document as a JSON value.
#[must_use]
pub fn document() -> Value {
    let mut paths = Map::new();
    for op in OpName::ALL {
        let info = operation_path(op);
        let entry = paths
            .entry(String::from(info.path))
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(m) = entry.as_object_mut() {
            m.insert(info.method.into(), operation(op, &info));
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Mosaic Edge normalized API",
            "version": "1",
            "description": "One API over git hosts, CI, knowledge bases and project management. Reads may fail over across equivalent providers; writes go to the primary only and are retried only with an Idempotency-Key."
        },
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "securitySchemes": { "tenantKey": { "type": "http", "scheme": "bearer" } }
        },
        "security": [ { "tenantKey": [] } ]
    })
}

/// The document serialized, as served at `/v1/openapi.json`.
#[must_use]
pub fn json() -> String {
    serde_json::to_string(&document()).unwrap_or_default()
}
