//! `mosaic`: the native Mosaic Edge server and command line — the embedded default.
//!
//! `cargo run --release` at the repository root serves `examples/mosaic.toml` on
//! `127.0.0.1:8787` with no account, cloud or service. The binary decides nothing itself: it
//! translates sockets, clocks and stores into `mosaic-core`'s types and executes what core asks.
//!
//! Modules, one concern each:
//! - [`alloc`]: the global allocator (mimalloc);
//! - [`ascii`]: header bytes as text;
//! - [`cli`]: the command line (`serve`, `check`, `explain`, `version`) and config loading;
//! - [`server`]: listening, connection limits, graceful shutdown, reload, state sync;
//! - [`app`]: one request: limits, admin endpoints, the proxy path, the log line;
//! - [`hooks`]: webhooks: `/hooks/{endpoint}`, deliveries, the outbox, dead letters;
//! - [`cli_hooks`]: `mosaic webhook sign|verify` and `mosaic key new`;
//! - [`host`]: `mosaic_core::driver::Host` for tokio: fetch, sleep, clock, cache;
//! - [`upstream`]: the HTTP client with its private-address guard;
//! - [`cache`]: the L1 in-memory LRU bounded in bytes and miss collapsing;
//! - [`store`]: the key-value store behind L1 and the state snapshot (memory, redb, Redis);
//! - [`v1`]: the normalized `/v1` API and declarative providers (decisions in
//!   `mosaic_providers::v1`).

mod alloc;
mod app;
mod ascii;
mod cache;
mod cli;
mod cli_hooks;
mod conn;
mod h1;
mod hooks;
mod host;
mod server;
mod store;
mod upstream;
mod v1;

use std::process::ExitCode;

/// mimalloc (see [`alloc`]): a proxy allocates and frees many small buffers per request.
#[global_allocator]
static GLOBAL: alloc::Mimalloc = alloc::Mimalloc;

fn main() -> ExitCode {
    cli::main()
}
