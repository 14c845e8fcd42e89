//! BookStack (`https://HOST/api`; no cloud default).
//!
//! - Auth `Authorization: Token <token_id>:<token_secret>` (the secret is `id:secret`).
//! - `kb.search_pages`: `GET /search?query=…&page=&count=50` with BookStack's `{type:page}`
//!   filter added to the query; `kb.get_page`: `GET /pages/{id}`; `kb.create_page`:
//!   `POST /pages` `{book_id | chapter_id, name, markdown}` (field names reference [U]).
//!   `space` is the book id, `parent` the chapter id.
//! - Pagination: `page` and `count`; the response has `{data, total}`, so a next page exists
//!   while `page × count < total`.
//! - Rate limits: 180 requests/min per user; Laravel's `X-RateLimit-Remaining` and
//!   `Retry-After` (reference [U], inferred from the framework). No reset header, so a spent
//!   budget cools down for the engine's default second unless `Retry-After` says otherwise.

use alloc::string::{String, ToString};

use mosaic_core::http::Method;
use mosaic_core::ratelimit::{RateLimitSignals, ResetFormat};
use serde_json::{json, Map, Value};

use crate::api::{OpName, Operation, Page};
use crate::plugin::{
    items, text, to_value, uint, AuthStyle, Provider, ProviderError, Unsupported, UpstreamRequest,
};

/// The BookStack plugin.
#[derive(Clone, Copy, Debug, Default)]
pub struct BookStack;

const COUNT: u64 = 50;

fn page(v: &Value) -> Page {
    Page {
        id: text(v, "/id").unwrap_or_default(),
        title: text(v, "/name").unwrap_or_default(),
        space: text(v, "/book_id"),
        parent: text(v, "/chapter_id").filter(|c| c != "0"),
        body: text(v, "/markdown")
            .filter(|m| !m.is_empty())
            .or_else(|| text(v, "/html"))
            .or_else(|| text(v, "/preview_html/content")),
        url: text(v, "/url"),
        updated_at: text(v, "/updated_at"),
    }
}

impl Provider for BookStack {
    fn kind(&self) -> &str {
        "bookstack"
    }
    fn auth_style(&self) -> AuthStyle {
        AuthStyle::Prefixed("Token")
    }
    fn rate_limit(&self) -> RateLimitSignals {
        RateLimitSignals::new(
            &["x-ratelimit-remaining"],
            &[],
            ResetFormat::DeltaSeconds,
            Some(0),
        )
    }
    fn map(&self, op: &Operation) -> Result<UpstreamRequest, Unsupported> {
        let k = self.kind();
        let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        Ok(match op {
            Operation::KbSearchPages { query, cursor, .. } => {
                let r = UpstreamRequest::get("/search")
                    .query("query", &alloc::format!("{query} {{type:page}}"))
                    .query("count", &COUNT.to_string());
                match cursor {
                    Some(c) => self.paginate(r, c),
                    None => r,
                }
            }
            Operation::KbGetPage { id } => {
                if !numeric(id) {
                    return Err(Unsupported::because(
                        k,
                        op.name(),
                        "a BookStack page id is numeric",
                    ));
                }
                UpstreamRequest::get(alloc::format!("/pages/{id}"))
            }
            Operation::KbCreatePage {
                title,
                body,
                space,
                parent,
            } => {
                let mut b = Map::new();
                b.insert("name".into(), json!(title));
                b.insert("markdown".into(), json!(body));
                match (
                    parent.as_deref().filter(|p| !p.is_empty()),
                    space.as_deref().filter(|s| !s.is_empty()),
                ) {
                    (Some(c), _) if numeric(c) => {
                        b.insert(
                            "chapter_id".into(),
                            json!(c.parse::<u64>().unwrap_or_default()),
                        );
                    }
                    (None, Some(s)) if numeric(s) => {
                        b.insert(
                            "book_id".into(),
                            json!(s.parse::<u64>().unwrap_or_default()),
                        );
                    }
                    _ => {
                        return Err(Unsupported::because(
                            k,
                            op.name(),
                            "a numeric `space` (book id) or `parent` (chapter id) is required",
                        ))
                    }
                }
                UpstreamRequest::json(Method::Post, "/pages", &Value::Object(b))
            }
            _ => return Err(Unsupported::op(k, op.name())),
        })
    }
    fn next_cursor(&self, op: &Operation, _h: &[(String, String)], body: &Value) -> Option<String> {
        let page: u64 = op.cursor().and_then(|c| c.parse().ok()).unwrap_or(1);
        let total = uint(body, "/total")?;
        (page.saturating_mul(COUNT) < total).then(|| (page + 1).to_string())
    }
    fn shape(
        &self,
        op: &Operation,
        _headers: &[(String, String)],
        v: &Value,
    ) -> Result<Value, ProviderError> {
        Ok(match op.name() {
            OpName::KbSearchPages => Value::Array(
                items(v, "/data")
                    .iter()
                    .filter(|r| {
                        r.get("type")
                            .and_then(Value::as_str)
                            .is_none_or(|t| t == "page")
                    })
                    .map(|r| to_value(&page(r)))
                    .collect(),
            ),
            OpName::KbGetPage | OpName::KbCreatePage => to_value(&page(v)),
            _ => v.clone(),
        })
    }
}
