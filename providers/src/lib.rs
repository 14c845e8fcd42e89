//! # mosaic-providers
//!
//! Provider plugins of Mosaic Edge. A provider knows what differs about one upstream or one
//! webhook sender; everything else (how to verify, retry, cache, normalize) is the default
//! behaviour of `mosaic-core`, driven by the data a provider supplies.
//!
//! - [`webhook`]: one named preset per webhook scheme (`github`, `stripe`, `notion`, …): which
//!   signature [`Scheme`](mosaic_core::webhook::Scheme) it uses, where its event type and
//!   delivery id are, how it maps to CloudEvents, and its subscription handshake if any.
//! - [`v1`]: what a host calls to serve the normalized `/v1` API (plan who answers, rewrite
//!   each attempt with the provider's plugin, normalize the answer), so no host decides.
//!
//! - [`app`]: the one application every host serves (front door, admin, `/hooks`, `/v1`,
//!   proxying), over the small [`app::AppHost`] trait.
//!
//! Like the core, this crate is `#![no_std]` with `alloc`, does no I/O and reads no clock.
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub mod api;
pub mod app;
pub mod declarative;
pub mod hooks;
pub mod openapi;
pub mod plugin;
pub mod plugins;
pub mod v1;
pub mod webhook;
