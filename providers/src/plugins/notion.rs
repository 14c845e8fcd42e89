//! Notion (`https://api.notion.com/v1`).
//!
//! - Auth `Authorization: Bearer <token>` plus the required `Notion-Version`; this plugin pins
//!   `2022-06-28` (widespread; the SDK default is now `2025-09-03`, which moves databases to
//!   data sources and does not change the page calls used here).
//! - `kb.search_pages`: `POST /search` `{query, filter: {property: "object", value: "page"},
//!   page_size, start_cursor}`; `kb.get_page`: `GET /pages/{id}`; `kb.create_page`:
//!   `POST /pages` with a page parent, a `title` property and one paragraph block per
//!   paragraph. Body field names are reference [U] (from memory, not re-read).
//! - Pagination: body `has_more` / `next_cursor`, sent back as `start_cursor`.
//! - Rate limits: 429 `rate_limited` with `Retry-After` (seconds); no remaining header.
//! - A page's content lives in blocks; `kb.get_page` returns the page's title and metadata
//!   and no body (fetching `/blocks/{id}/children` would be a second request).

use alloc::string::String;
use alloc::vec::Vec;

use mosaic_core::http::{HeaderList, Method};
use mosaic_core::ratelimit::{RateLimitSignals, ResetFormat};
use serde_json::{json, Map, Value};

use crate::api::{pct_encode, OpName, Operation, Page};
use crate::plugin::{
    items, paragraphs, text, to_value, AuthStyle, Provider, ProviderError, Unsupported,
    UpstreamRequest,
};

/// The Notion plugin.
#[derive(Clone, Copy, Debug, Default)]
pub struct Notion;

/// Notion's per-rich-text content limit, in characters (**inferred**: not in the reference).
const CHUNK: usize = 2000;

fn title_of(v: &Value) -> String {
    let Some(props) = v.get("properties").and_then(Value::as_object) else {
        return String::new();
    };
    props
        .values()
        .find(|p| p.get("type").and_then(Value::as_str) == Some("title"))
        .map(|p| {
            items(p, "/title")
                .iter()
                .filter_map(|t| text(t, "/plain_text").or_else(|| text(t, "/text/content")))
                .collect::<String>()
        })
        .unwrap_or_default()
}

fn page(v: &Value) -> Page {
    let parent = text(v, "/parent/page_id")
        .or_else(|| text(v, "/parent/database_id"))
        .or_else(|| text(v, "/parent/data_source_id"));
    Page {
        id: text(v, "/id").unwrap_or_default(),
        title: title_of(v),
        space: None,
        parent,
        body: None,
        url: text(v, "/url"),
        updated_at: text(v, "/last_edited_time"),
    }
}

fn rich_text(s: &str) -> Vec<Value> {
    let chars: Vec<char> = s.chars().collect();
    chars
        .chunks(CHUNK)
        .map(|c| json!({ "type": "text", "text": { "content": c.iter().collect::<String>() } }))
        .collect()
}

impl Provider for Notion {
    fn kind(&self) -> &str {
        "notion"
    }
    fn default_base_url(&self) -> Option<&str> {
        Some("https://api.notion.com/v1")
    }
    fn auth_style(&self) -> AuthStyle {
        AuthStyle::Bearer
    }
    fn default_headers(&self) -> HeaderList {
        alloc::vec![
            (String::from("accept"), String::from("application/json")),
            (String::from("notion-version"), String::from("2022-06-28")),
        ]
    }
    fn rate_limit(&self) -> RateLimitSignals {
        RateLimitSignals::new(&[], &[], ResetFormat::DeltaSeconds, None)
    }
    fn map(&self, op: &Operation) -> Result<UpstreamRequest, Unsupported> {
        let k = self.kind();
        Ok(match op {
            Operation::KbSearchPages { query, cursor, .. } => {
                let mut b = json!({
                    "query": query,
                    "filter": { "property": "object", "value": "page" },
                    "page_size": 50,
                });
                if let (Some(c), Some(o)) = (cursor, b.as_object_mut()) {
                    o.insert("start_cursor".into(), Value::String(c.clone()));
                }
                UpstreamRequest::json(Method::Post, "/search", &b)
            }
            Operation::KbGetPage { id } => {
                UpstreamRequest::get(alloc::format!("/pages/{}", pct_encode(id)))
            }
            Operation::KbCreatePage {
                title,
                body,
                parent,
                ..
            } => {
                let parent = parent.as_deref().filter(|p| !p.is_empty()).ok_or_else(|| {
                    Unsupported::because(k, op.name(), "`parent` (a Notion page id) is required")
                })?;
                let children: Vec<Value> = paragraphs(body)
                    .iter()
                    .map(|p| json!({ "object": "block", "type": "paragraph", "paragraph": { "rich_text": rich_text(p) } }))
                    .collect();
                let mut props = Map::new();
                props.insert("title".into(), json!({ "title": rich_text(title) }));
                UpstreamRequest::json(
                    Method::Post,
                    "/pages",
                    &json!({ "parent": { "page_id": parent }, "properties": props, "children": children }),
                )
            }
            _ => return Err(Unsupported::op(k, op.name())),
        })
    }
    fn next_cursor(
        &self,
        _op: &Operation,
        _h: &[(String, String)],
        body: &Value,
    ) -> Option<String> {
        if body.get("has_more").and_then(Value::as_bool) == Some(true) {
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
            OpName::KbSearchPages => Value::Array(
                items(v, "/results")
                    .iter()
                    .filter(|r| r.get("object").and_then(Value::as_str) != Some("database"))
                    .map(|r| to_value(&page(r)))
                    .collect(),
            ),
            OpName::KbGetPage | OpName::KbCreatePage => to_value(&page(v)),
            _ => v.clone(),
        })
    }
}
