//! End-to-end test support.
//!
//! - [`fixtures`]: provider stand-ins answering with the documented response shapes under
//!   `tests/fixtures/providers/`, recording what the router sent;
//! - [`mock`]: mock upstream servers on 127.0.0.1 (ok, status, slow, scripted, reset, closed port);
//! - [`host`]: [`host::HostUnderTest`] — start a router serving a config, get its base URL —
//!   implemented for the local `mosaic` binary, plus a throwaway `redis-server`;
//! - [`hooks`]: webhook deliveries signed as GitHub signs them, the admin API, CloudEvents;
//! - [`scenarios`]: the host-independent suite (failover, breaker, cache, collapsing, POST
//!   safety, reload, shared state), run by `tests/local.rs` against the local binary and
//!   meant to be run against the Workers and Spin hosts the same way.

pub mod fixtures;
pub mod hooks;
pub mod host;
pub mod mock;
pub mod scenarios;
pub mod spin;
pub mod v1;
pub mod workers;
