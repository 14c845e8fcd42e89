//! # mosaic-core
//!
//! The routing and resilience core of Mosaic Edge. It is **deterministic and sans-IO**: it never
//! opens a socket, never reads a clock (all time is an input, [`time::Instant`]), never sleeps and
//! never draws entropy (randomness comes from a seed the host supplies, [`rng::Rng`]). Hosts —
//! Cloudflare Workers, Fermyon Spin and the native server — translate their platform's requests,
//! clocks and key-value stores into core's types and execute what core asks for; every decision
//! (which route, which provider, whether to retry, what to cache, whether a webhook is genuine)
//! is made here, so the same behaviour runs on every host and under a virtual clock in tests.
//!
//! The crate is `#![no_std]` with `alloc`; the `std` feature only adds conveniences.
//!
//! Methods are grouped by role, as in quinn-proto: `handle_*` takes input, `poll*` yields what
//! the host must do next, getters observe. Every time-dependent method takes `now`.
//!
//! Cache tiers: [`tier`] (the in-memory tier, retention, shared-tier keys, miss collapsing).
//!
//! Start at [`engine`] (admission and the per-request state machine) and [`driver`] (the async
//! loop the hosts share); [`sim`] is the simulated host the tests drive.
#![cfg_attr(not(feature = "std"), no_std)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]
#![warn(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

extern crate alloc;

pub mod admin;
mod attempt;
pub mod breaker;
pub mod cache;
pub mod codec;
pub mod config;
mod counters;
pub mod driver;
pub mod engine;
pub mod head;
pub mod http;
pub mod httpdate;
pub mod limit;
pub mod metrics;
pub mod problem;
pub mod ratelimit;
pub mod region;
pub mod retry;
pub mod rng;
pub mod route;
pub mod secret;
pub mod select;
pub mod sim;
pub mod snapshot;
pub mod stats;
pub mod target;
pub mod tier;
pub mod time;
pub mod webhook;

pub use config::{Config, ConfigErrors, RawConfig};
pub use engine::{Call, Request, Router, State, Step};
pub use time::Instant;
