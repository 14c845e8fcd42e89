//! Confluence Cloud (`https://SITE.atlassian.net`; no cloud default, the site is per tenant).
//!
//! - Auth HTTP Basic `email:api_token` (or configure a bearer token for OAuth 2.0).
//! - `kb.search_pages`: CQL search over the v1 API, `GET /wiki/rest/api/search?cql=…&limit=25`
//!   (v2 has no search; reference [S]); the next page is the `cursor` parameter of the
//!   response's `_links.next` (**inferred**), or of `Link: rel="next"`.
//! - `kb.get_page`: `GET /wiki/api/v2/pages/{id}?body-format=storage`.
//! - `kb.create_page`: `POST /wiki/api/v2/pages` `{spaceId, status: "current", title, parentId,
//!   body: {representation: "storage", value}}` (reference [S]); `space` is the space id, the
//!   text body becomes `<p>` paragraphs.
//! - Rate limits: the Atlassian scheme as for Jira (`X-RateLimit-Remaining`, ISO 8601
//!   `X-RateLimit-Reset`, `Retry-After`) — reference [U] for Confluence.

use alloc::format;
use alloc::string::String;

use mosaic_core::http::Method;
use mosaic_core::ratelimit::RateLimitSignals;
use serde_json::{json, Value};

use crate::api::{pct_encode, OpName, Operation, Page};
use crate::plugin::{
    items, link_next_param, text, text_to_html, to_value, url_param, AuthStyle, Provider,
    ProviderError, Unsupported, UpstreamRequest,
};

/// The Confluence Cloud plugin.
#[derive(Clone, Copy, Debug, Default)]
pub struct Confluence;

fn cql_quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn page_v2(v: &Value) -> Page {
    let webui = text(v, "/_links/webui");
    let base = text(v, "/_links/base");
    Page {
        id: text(v, "/id").unwrap_or_default(),
        title: text(v, "/title").unwrap_or_default(),
        space: text(v, "/spaceId"),
        parent: text(v, "/parentId"),
        body: text(v, "/body/storage/value"),
        url: match (base, webui) {
            (Some(b), Some(w)) => Some(format!("{b}{w}")),
            (None, w) => w,
            (Some(_), None) => None,
        },
        updated_at: text(v, "/version/createdAt").or_else(|| text(v, "/createdAt")),
    }
}

fn search_hit(v: &Value, base: Option<&str>) -> Page {
    let webui = text(v, "/url").or_else(|| text(v, "/content/_links/webui"));
    Page {
        id: text(v, "/content/id").unwrap_or_default(),
        title: text(v, "/content/title")
            .or_else(|| text(v, "/title"))
            .unwrap_or_default(),
        space: text(v, "/resultGlobalContainer/title"),
        parent: None,
        body: text(v, "/excerpt").filter(|e| !e.is_empty()),
        url: webui.map(|w| format!("{}{w}", base.unwrap_or(""))),
        updated_at: text(v, "/lastModified"),
    }
}

impl Provider for Confluence {
    fn kind(&self) -> &str {
        "confluence"
    }
    fn auth_style(&self) -> AuthStyle {
        AuthStyle::Basic
    }
    fn rate_limit(&self) -> RateLimitSignals {
        super::jira::signals()
    }
    fn map(&self, op: &Operation) -> Result<UpstreamRequest, Unsupported> {
        let k = self.kind();
        Ok(match op {
            Operation::KbSearchPages {
                query,
                space,
                cursor,
            } => {
                let mut cql = format!("type=page AND text ~ {}", cql_quote(query));
                if let Some(s) = space.as_deref().filter(|s| !s.is_empty()) {
                    cql.push_str(&format!(" AND space = {}", cql_quote(s)));
                }
                let r = UpstreamRequest::get("/wiki/rest/api/search")
                    .query("cql", &cql)
                    .query("limit", "25");
                match cursor {
                    Some(c) => r.query("cursor", c),
                    None => r,
                }
            }
            Operation::KbGetPage { id } => UpstreamRequest::get(format!(
                "/wiki/api/v2/pages/{}?body-format=storage",
                pct_encode(id)
            )),
            Operation::KbCreatePage {
                title,
                body,
                space,
                parent,
            } => {
                let space = space.as_deref().filter(|s| !s.is_empty()).ok_or_else(|| {
                    Unsupported::because(
                        k,
                        op.name(),
                        "`space` (a Confluence space id) is required",
                    )
                })?;
                let mut b = json!({
                    "spaceId": space,
                    "status": "current",
                    "title": title,
                    "body": { "representation": "storage", "value": text_to_html(body) },
                });
                if let (Some(p), Some(o)) = (
                    parent.as_deref().filter(|p| !p.is_empty()),
                    b.as_object_mut(),
                ) {
                    o.insert("parentId".into(), json!(p));
                }
                UpstreamRequest::json(Method::Post, "/wiki/api/v2/pages", &b)
            }
            _ => return Err(Unsupported::op(k, op.name())),
        })
    }
    fn next_cursor(
        &self,
        _op: &Operation,
        headers: &[(String, String)],
        body: &Value,
    ) -> Option<String> {
        text(body, "/_links/next")
            .and_then(|n| url_param(&n, "cursor"))
            .or_else(|| link_next_param(headers, "cursor"))
    }
    fn shape(
        &self,
        op: &Operation,
        _headers: &[(String, String)],
        v: &Value,
    ) -> Result<Value, ProviderError> {
        Ok(match op.name() {
            OpName::KbSearchPages => {
                let base = text(v, "/_links/base");
                Value::Array(
                    items(v, "/results")
                        .iter()
                        .map(|r| to_value(&search_hit(r, base.as_deref())))
                        .collect(),
                )
            }
            OpName::KbGetPage | OpName::KbCreatePage => to_value(&page_v2(v)),
            _ => v.clone(),
        })
    }
}
