//! One inbound request, translated for the shared application (`mosaic_providers::app`):
//! the connection's request becomes its `Inbound`, its `Handled` becomes the connection's
//! answer, its jobs tokio tasks and its log lines JSON lines on stdout.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use mosaic_core::driver::{self, Reply, ReplyBody, RequestLog};
use mosaic_core::problem::Problem;
use mosaic_core::region::Locality;
use mosaic_core::target::path_of;
use mosaic_providers::app::{self, Inbound, Job, Serving, Window};

use crate::conn::{Answer, Request as ConnRequest};
use crate::host::{wall_now, Body, LiveRef, LocalHost, Shared};

/// A request id: 16 lowercase hex digits, kept inline (no allocation per request).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RequestId([u8; 16]);

impl std::ops::Deref for RequestId {
    type Target = str;
    fn deref(&self) -> &str {
        // always hex digits, so this never falls back to the empty string
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self)
    }
}

/// A fresh request id: 16 hex digits, unique within the process and unpredictable across.
#[must_use]
pub fn request_id() -> RequestId {
    static SEED: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let seed = *SEED.get_or_init(|| {
        let mut b = [0u8; 8];
        if getrandom::fill(&mut b).is_err() {
            b = (wall_now().as_micros() ^ u64::from(std::process::id())).to_le_bytes();
        }
        u64::from_le_bytes(b)
    });
    // splitmix64 over seed + counter: distinct for every request of the process. Each thread
    // counts within a block of 2^32 numbers it takes from the shared counter, so that worker
    // threads do not trade the counter's cache line on every request.
    thread_local! {
        static NEXT: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) };
    }
    const BLOCK: u64 = 1 << 32;
    let n = NEXT.with(|c| {
        let (mut next, mut end) = c.get();
        if next == end {
            next = COUNTER.fetch_add(BLOCK, Ordering::Relaxed);
            end = next.wrapping_add(BLOCK);
        }
        c.set((next.wrapping_add(1), end));
        next
    });
    let mut z = seed.wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    RequestId(mosaic_core::codec::hex16(z ^ (z >> 31)))
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// Core's reply as the connection's answer (core's header pairs as they are: no header map).
fn response(reply: Reply<Body>) -> Answer {
    Answer {
        status: reply.status,
        headers: reply.headers,
        body: match reply.body {
            ReplyBody::Bytes(b) => full(b),
            ReplyBody::Stream(s) => s,
        },
    }
}

/// A problem+json answer.
#[must_use]
pub fn problem_answer(p: &Problem, id: &str) -> Answer {
    response(driver::problem(p, id))
}

fn access_line(log: &RequestLog, method: &str, path: &str, background: bool) {
    // the fields of `mosaic_providers::app::access_line`, through tracing: the hot path
    // formats nothing when the line is off
    if !tracing::enabled!(target: "mosaic::access", tracing::Level::INFO) {
        return;
    }
    let providers = log.providers.join(",");
    tracing::info!(
        target: "mosaic::access",
        request_id = %log.request_id,
        method,
        path,
        tenant = log.tenant.as_deref().unwrap_or(""),
        route = log.route.as_deref().unwrap_or(""),
        providers = %providers,
        attempts = log.attempts,
        status = log.status,
        latency_ms = log.latency.as_secs_f64() * 1000.0,
        cache = log.cache,
        problem = log.problem.unwrap_or(""),
        give_up = log.give_up.unwrap_or(""),
        background,
    );
}

/// Writes one of the application's log lines (a JSON object with `level`, `target`,
/// `message`) as the process's other lines are written: one JSON object per line on stdout,
/// with a timestamp and the level in capitals, when the level is enabled.
pub fn write_line(mut line: serde_json::Value) {
    let level = match line.get("level").and_then(|l| l.as_str()) {
        Some("error") => tracing::Level::ERROR,
        Some("warn") => tracing::Level::WARN,
        Some("debug") => tracing::Level::DEBUG,
        _ => tracing::Level::INFO,
    };
    if level > tracing::level_filters::LevelFilter::current() {
        return;
    }
    if let Some(o) = line.as_object_mut() {
        o.insert("level".into(), level.as_str().into());
        o.insert(
            "timestamp".into(),
            mosaic_core::webhook::rfc3339(wall_now()).into(),
        );
    }
    println!("{line}");
}

/// Runs the application's background job in a task of its own (a delivery only once per
/// process: the outbox scan may find one whose task is still running).
pub fn spawn_job(shared: &Arc<Shared>, job: Job) {
    let guard = match &job {
        Job::Deliver { delivery, .. } => match InFlight::take(delivery.id()) {
            Some(g) => Some(g),
            None => return,
        },
        Job::Revalidate(_) => None,
    };
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        let _guard = guard;
        let live = shared.live();
        let host = LocalHost::new(&shared, &live);
        let line = app::run_job(&host, &live.router, job, Window::Unbounded, seed()).await;
        write_line(line);
    });
}

/// 64 bits of the process's entropy (the delivery jitter seed).
fn seed() -> u64 {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        b = wall_now().as_micros().to_le_bytes();
    }
    u64::from_le_bytes(b)
}

/// Delivery ids with a task in this process, removed when the task ends (even by a panic).
struct InFlight(String);

impl InFlight {
    fn set() -> &'static Mutex<HashSet<String>> {
        static SET: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
        SET.get_or_init(|| Mutex::new(HashSet::new()))
    }

    fn take(id: String) -> Option<InFlight> {
        let mut set = InFlight::set().lock().ok()?;
        set.insert(id.clone()).then_some(InFlight(id))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut s) = InFlight::set().lock() {
            s.remove(&self.0);
        }
    }
}

/// Handles one request; never fails (errors are problem+json responses): the shared
/// application decides, this translates.
///
/// `peer_ip` is the client's address as text, formatted once per connection.
/// `live` is the configuration generation the request is served by.
pub async fn handle(
    shared: &Arc<Shared>,
    live: LiveRef,
    req: ConnRequest<'_>,
    peer_ip: &str,
) -> Answer {
    let id = request_id();
    // what the log line needs of the request, kept only when it will be written
    let logged = tracing::enabled!(target: "mosaic::access", tracing::Level::INFO).then(|| {
        let path = path_of(&req.target).to_string();
        (std::time::Instant::now(), req.method.clone(), path)
    });
    let ConnRequest {
        method,
        target,
        headers,
        body,
        framing,
    } = req;
    let mut host = LocalHost::new(shared, &live);
    if logged.is_none() {
        // no log line: core need not copy the route's and providers' names into it
        host = host.without_log();
    }
    let serving = Serving {
        router: &live.router,
        generation: live.generation,
    };
    let inbound = Inbound {
        method: &method,
        target: &target,
        headers,
        body,
        // limits and framing were checked by the connection (core's `check_head`)
        framing: Some(framing),
        client_ip: Some(peer_ip),
        https: false,
        locality: Locality::default(),
        id: &id,
    };
    let mut handled = app::handle(&host, serving, inbound).await;
    drop(host);
    if let Some(list) = handled.headers.take() {
        // the list's strings serve the next head parsed on this thread
        crate::h1::recycle(list);
    }
    // most requests log nothing of their own and leave no work behind
    if !handled.lines.is_empty() {
        handled.lines.drain(..).for_each(write_line);
    }
    if !handled.after.is_empty() {
        for job in handled.after.drain(..) {
            spawn_job(shared, job);
        }
    }
    let mut reply = handled.reply;
    let mut log = std::mem::take(&mut reply.log);
    let answer = if handled.close {
        response(reply).closing()
    } else {
        response(reply)
    };
    if let Some((started, method, path)) = logged {
        if log.latency.is_zero() {
            log.latency = started.elapsed();
        }
        if log.status == 0 {
            log.status = answer.status;
        }
        access_line(&log, &method, &path, false);
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The host without its port, lowercased, from the Host header or an absolute-form target.
    #[test]
    fn host_of_strips_ports_and_brackets_and_lowercases() {
        let cases: &[(&str, Option<&str>)] = &[
            ("example.com", Some("example.com")),
            ("Example.COM:8080", Some("example.com")),
            ("example.com:", Some("example.com")),
            ("example.com:80a", Some("example.com:80a")),
            ("a:b:443", Some("a:b")),
            (":443", Some("")),
            ("443", Some("443")),
            ("[::1]:8787", Some("::1")),
            ("[fe80::1", Some("fe80::1")),
            ("", Some("")),
        ];
        for (raw, want) in cases {
            let headers = vec![(String::from("Host"), String::from(*raw))];
            assert_eq!(app::host_name(&headers, "/x").as_deref(), *want, "{raw:?}");
        }
        // no Host header: the authority of an absolute-form target, or nothing
        assert_eq!(
            app::host_name(&[], "http://API.example:9/a?b").as_deref(),
            Some("api.example")
        );
        assert_eq!(app::host_name(&[], "/relative"), None);
    }

    /// Request ids are 16 lowercase hex digits and never repeat within the process, across
    /// threads (each counts in its own block) as within one.
    #[test]
    fn request_ids_are_unique_across_threads() {
        let threads: Vec<_> = (0..4)
            .map(|_| std::thread::spawn(|| (0..5000).map(|_| request_id()).collect::<Vec<_>>()))
            .collect();
        let mut all = std::collections::HashSet::new();
        for t in threads {
            for id in t.join().expect("thread") {
                assert_eq!(id.len(), 16, "{id}");
                assert!(id
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
                assert!(all.insert(id), "repeated");
            }
        }
        assert_eq!(all.len(), 20_000);
    }
}
