//! End-to-end test support.
//!
//! - [`fixtures`]: provider stand-ins answering with the documented response shapes under
//!   `tests/fixtures/providers/`, recording what the router sent;
//! - [`mock`]: mock upstream servers on 127.0.0.1 (ok, status, slow, scripted, reset, closed
//!   port, echo);
//! - [`host`]: [`host::HostUnderTest`] — start a router serving a config, get its base URL —
//!   implemented for the local `mosaic` binary, plus a throwaway `redis-server`;
//!   [`workers`] and [`spin`] implement it for the Workers and Spin hosts;
//! - [`raw`]: raw HTTP/1.1 over TCP for the corpora that need exact bytes;
//! - [`hooks`]: webhook deliveries signed as GitHub signs them, the admin API, CloudEvents;
//! - the host-generic scenarios, each `pub async fn name(host: &dyn HostUnderTest)`, run by
//!   every suite (`tests/local*.rs`, `tests/workers.rs`, `tests/spin.rs`): [`scenarios`]
//!   (failover, breaker, cache, collapsing, POST safety, reload, headers, limits),
//!   [`scenarios_security`] (SSRF and smuggling corpora, header hygiene, tenancy, GCRA,
//!   redaction), [`scenarios_hooks`] (webhooks) and [`v1`] (the normalized API). A scenario a
//!   host cannot run is a [`skip!`] in that host's suite, with its reason.

pub mod fixtures;
pub mod hooks;
pub mod host;
pub mod mock;
pub mod raw;
pub mod scenarios;
pub mod scenarios_hooks;
pub mod scenarios_security;
pub mod spin;
pub mod v1;
pub mod workers;

/// Defines the test `$name::skipped` for a scenario this suite's host cannot run: it passes,
/// and prints `SKIP $name: $why` where the run's output shows it (see [`skip_notice`]).
///
/// ```ignore
/// mosaic_tests::skip!(shared_state_and_cache, "Redis is a store of the native server");
/// ```
#[macro_export]
macro_rules! skip {
    ($name:ident, $why:expr) => {
        mod $name {
            #[test]
            fn skipped() {
                $crate::skip_notice(module_path!(), $why);
            }
        }
    };
}

/// Prints `SKIP <test>: <why>` on this test's stderr and, since nextest and `cargo test` keep
/// a passing test's output to themselves, on the test runner's own stderr too when that is a
/// terminal or a pipe (not a regular file, whose offset the runner owns), so the skip and its
/// reason show in the run's output. (A nextest profile override with `success-output =
/// "immediate"` for `test(/::skipped$/)` shows it in every case.)
pub fn skip_notice(test: &str, why: &str) {
    let name = test.rsplit("::").next().unwrap_or(test);
    let line = format!("SKIP {name}: {why}\n");
    eprint!("{line}");
    #[cfg(target_os = "linux")]
    {
        use std::io::Write;
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let parent = format!("/proc/{}/fd/2", std::os::unix::process::parent_id());
        let (Ok(mine), Ok(theirs)) = (
            std::fs::metadata("/proc/self/fd/2"),
            std::fs::metadata(&parent),
        ) else {
            return;
        };
        let same = mine.dev() == theirs.dev() && mine.ino() == theirs.ino();
        let kind = theirs.file_type();
        if !same && (kind.is_fifo() || kind.is_char_device()) {
            if let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(&parent) {
                let _ = f.write_all(line.as_bytes());
            }
        }
    }
}
