//! Gitea and Forgejo (the Gitea API, `https://HOST/api/v1`).
//!
//! - Auth `Authorization: token <token>`.
//! - Pagination `page` + `limit` (50 here); next page from `Link: rel="next"`.
//! - Paths as GitHub's (`/repos/{owner}/{repo}/…`); list issues adds `type=issues` so pull
//!   requests are left out.
//! - Rate limits: none by default (reference [U]); the common header names are read in case a
//!   proxy in front adds them.
//! - Cloud defaults are **inferred**: `https://gitea.com/api/v1` for Gitea and
//!   `https://codeberg.org/api/v1` (the largest public Forgejo instance) for Forgejo. Forgejo's
//!   API is taken to be Gitea's (reference: "same as Gitea [U]").

use alloc::string::String;

use serde_json::Value;

use super::shapes;
use crate::api::Operation;
use crate::plugin::{AuthStyle, Provider, ProviderError, Unsupported, UpstreamRequest};

/// A Gitea-API plugin (Gitea or Forgejo).
#[derive(Clone, Copy, Debug)]
pub struct Gitea {
    kind: &'static str,
    base: &'static str,
}

/// Gitea.
pub static GITEA: Gitea = Gitea {
    kind: "gitea",
    base: "https://gitea.com/api/v1",
};

/// Forgejo (Gitea API).
pub static FORGEJO: Gitea = Gitea {
    kind: "forgejo",
    base: "https://codeberg.org/api/v1",
};

impl Provider for Gitea {
    fn kind(&self) -> &str {
        self.kind
    }
    fn default_base_url(&self) -> Option<&str> {
        Some(self.base)
    }
    fn auth_style(&self) -> AuthStyle {
        AuthStyle::Token
    }
    fn map(&self, op: &Operation) -> Result<UpstreamRequest, Unsupported> {
        shapes::map_git(self.kind, op, "limit", Some(("type", "issues")))
    }
    fn shape(
        &self,
        op: &Operation,
        _headers: &[(String, String)],
        body: &Value,
    ) -> Result<Value, ProviderError> {
        shapes::shape_git(self.kind, op, body)
    }
}
