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
#![cfg_attr(not(feature = "std"), no_std)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

extern crate alloc;

pub mod http;
pub mod time;
pub mod webhook;
