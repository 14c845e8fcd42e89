//! The built-in provider plugins, one module each, and their registry.
//!
//! Facts (paths, auth headers, pagination, rate-limit headers) follow
//! `reference/providers.md`; each module's docs say where it infers beyond that reference
//! (marked **inferred**).

use alloc::string::String;
use alloc::vec::Vec;

use mosaic_core::config::Config;

use crate::api::OpName;
use crate::plugin::{Category, Provider};

pub mod bookstack;
pub mod confluence;
pub mod gitea;
pub mod github;
pub mod github_actions;
pub mod gitlab;
pub mod jenkins;
pub mod jira;
pub mod linear;
pub mod notion;
pub mod plane;
pub mod woodpecker;

mod shapes;

/// Every built-in plugin, in listing order.
pub static BUILTINS: [&(dyn Provider + 'static); 13] = [
    &github::GitHub,
    &github_actions::GitHubActions,
    &gitea::GITEA,
    &gitea::FORGEJO,
    &gitlab::GitLab,
    &woodpecker::Woodpecker,
    &jenkins::Jenkins,
    &notion::Notion,
    &bookstack::BookStack,
    &confluence::Confluence,
    &linear::Linear,
    &plane::Plane,
    &jira::Jira,
];

/// The built-in plugin of `kind`.
#[must_use]
pub fn builtin(kind: &str) -> Option<&'static dyn Provider> {
    BUILTINS.iter().copied().find(|p| p.kind() == kind)
}

/// One line of `mosaic providers`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuiltinInfo {
    /// Kind name.
    pub kind: &'static str,
    /// API family.
    pub category: Category,
    /// Cloud base URL, if any.
    pub default_base_url: Option<&'static str>,
    /// Webhook preset name, if any.
    pub webhook_preset: Option<&'static str>,
    /// Supported operations.
    pub operations: Vec<OpName>,
}

impl BuiltinInfo {
    /// `kind  category  op,op,…` as `mosaic providers` prints it.
    #[must_use]
    pub fn line(&self) -> String {
        let ops: Vec<&str> = self.operations.iter().map(|o| o.as_str()).collect();
        alloc::format!(
            "{:<15} {:<4} {}",
            self.kind,
            self.category.as_str(),
            ops.join(",")
        )
    }
}

/// Every built-in plugin with its kind, family and supported operations.
#[must_use]
pub fn builtins() -> Vec<BuiltinInfo> {
    BUILTINS
        .iter()
        .map(|p| BuiltinInfo {
            kind: p.kind(),
            category: p.category(),
            default_base_url: p.default_base_url(),
            webhook_preset: p.webhook_preset(),
            operations: p.operations(),
        })
        .collect()
}

/// Gives every configured provider whose kind has a built-in plugin that plugin's rate-limit
/// header names, so the engine cools it down before a 429. Call after `RawConfig::validate`
/// and before `Router::new`.
pub fn install_rate_limits(config: &mut Config) {
    for p in &mut config.providers {
        if let Some(plugin) = builtin(&p.kind) {
            p.rate_limit = Some(plugin.rate_limit());
        }
    }
}
