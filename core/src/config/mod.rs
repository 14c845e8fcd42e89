//! The configuration model and its validation.
//!
//! Hosts parse a file format (TOML natively, a `[vars]` string on Workers, a Spin variable) into
//! [`RawConfig`] with serde; core then validates it in one pass with [`RawConfig::validate`],
//! which collects **every** problem with its key path
//! (`routes[2].strategy: unknown strategy "fastest"; expected one of priority, weighted, …`)
//! instead of stopping at the first. Enum-like fields are strings in the raw model precisely so
//! that a bad value is reported with its path alongside all the others.
//!
//! Secrets never appear in the config text: a secret is a *reference* (`env:NAME`,
//! `file:/path`, `secret:NAME`) that the host resolves.
//!
//! The module has three parts, all re-exported here:
//! - the raw model, [`RawConfig`] and its sections, exactly what serde reads;
//! - the validated model, [`Config`] with its [`Provider`]s, [`Route`]s, [`Tenant`]s,
//!   [`Webhook`]s and `/v1` families ([`V1Family`]), ready for [`crate::engine::Router::new`];
//! - the validation between them, one section at a time in file order (`server`, `store`,
//!   `providers`, `routes`, `v1`, `tenants`, `webhooks`, then the route table's conflicts),
//!   every problem a [`ConfigError`] in [`ConfigErrors`].

mod error;
mod model;
mod raw;
mod validate;

pub use error::{ConfigError, ConfigErrors};
pub use model::{
    parse_key_hash, AuthScheme, BaseUrl, Config, Destination, Provider, Route, SecretRef, Strategy,
    Tenant, V1Family, Webhook, V1_FAMILIES, V1_PIN_HEADER, WEBHOOK_SCHEMES,
};
pub use raw::{
    RawAuth, RawBreaker, RawCache, RawConfig, RawDestination, RawLimit, RawMatch, RawPolicies,
    RawProvider, RawQuota, RawRetry, RawRoute, RawServer, RawStore, RawTenant, RawTimeout, RawV1,
    RawV1Family, RawWebhook,
};
